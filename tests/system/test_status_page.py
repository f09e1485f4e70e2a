"""The operator's status page (/status on the metrics listener).

Two federating Waddles chat; a.test's page then lists b.test connected in both directions with
how each stream authenticated and its TLS version, and b.test's traffic. A message to a domain
that does not exist (no DNS records) bounces, and the page names that domain among the recent
failures with the reason, marked failing. The page is HTML without scripts; values are
escaped.

Run: /usr/bin/python3 -m pytest tests/system/test_status_page.py -q
"""

from __future__ import annotations

import asyncio
import re
import urllib.request

from waddle_client import PASSWORD, TIMEOUT, login, run

A, B = "a.test", "b.test"
NOWHERE = "nowhere.test"


def status(server) -> tuple[str, dict]:
    with urllib.request.urlopen(f"http://{server.ip}:5280/status", timeout=TIMEOUT) as r:
        return r.read().decode(), dict(r.headers)


async def page_until(server, pred, what: str, timeout: float = TIMEOUT) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        page, _ = await loop.run_in_executor(None, status, server)
        if pred(page):
            return page
        if loop.time() > deadline:
            raise AssertionError(f"the status page never showed {what}:\n{page}")
        await asyncio.sleep(0.2)  # polling a page with a deadline; no event to wait on


def test_status_page_shows_links_and_failures(fed):
    a = fed.server(A, users=("alice",))
    fed.server(B, users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, f"alice@{A}/r", PASSWORD)
        bob = await login(fed.servers[B], f"bob@{B}/r", PASSWORD)
        alice.send_message(mto=f"bob@{B}/r", mbody="over the link", mtype="chat")
        await bob.expect_message(body="over the link")
        bob.send_message(mto=f"alice@{A}/r", mbody="and back", mtype="chat")
        await alice.expect_message(body="and back")
        page = await page_until(
            a, lambda p: f'data-domain="{B}" data-direction="out"' in p
            and f'data-domain="{B}" data-direction="in"' in p, "both links")
        for direction in ("out", "in"):
            row = re.search(rf'<tr data-domain="{re.escape(B)}" data-direction="{direction}">'
                            r'(.*?)</tr>', page).group(1)
            assert "TLSv1.3" in row, row
            assert re.search(r"sasl_external|dialback", row), row
        assert re.search(rf'<tr data-domain="{re.escape(B)}"><td>.*?class="ok">connected', page)
        assert "<script" not in page

        alice.send_message(mto=f"someone@{NOWHERE}", mbody="into the void", mtype="chat")
        bounce = await alice.messages.get(lambda m: m["type"] == "error", TIMEOUT,
                                          what="the bounce")
        assert bounce["error"]["condition"] == "remote-server-not-found"
        page = await page_until(a, lambda p: f'<li data-domain="{NOWHERE}">' in p, "the failure")
        item = re.search(rf'<li data-domain="{re.escape(NOWHERE)}">(.*?)</li>', page).group(1)
        assert "dns" in item, item
        assert re.search(rf'<tr data-domain="{re.escape(NOWHERE)}"><td>.*?class="failing"', page)

    run(body)
    _, headers = status(a)
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
