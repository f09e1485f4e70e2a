"""HTTP File Upload (XEP-0363) served by Waddle's web listener.

slixmpp's own XEP-0363 plugin finds the service and asks for slots; the files are PUT and
fetched over HTTPS (urllib, raw sockets for what urllib would not send). Checked: the disco
identity and limit, a round trip with the headers that keep uploaded content from running
(nosniff, CSP sandbox, attachment for active types) and CORS, ranges, the XEP's slot errors
(too large with the limit, quota, another server's user), the PUT's HTTP errors (unknown or
used slot, wrong size, wrong type, no length), a 100 MiB upload streamed to disk without the
server's memory growing by it, an abandoned and a trickling upload cut off, and nothing else
disturbed meanwhile.

Run: /usr/bin/python3 -m pytest tests/system/test_upload.py -q
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest
from slixmpp.exceptions import IqError

from waddle_client import DOMAIN, PASSWORD, TIMEOUT, login, run
from waddle_server import sanitized_server
from ws_client import insecure_context

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
NS_UPLOAD = "urn:xmpp:http:upload:0"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def upload_server(make_server, **upload):
    server = make_server(start=False)
    server.config["web"]["public_url"] = f"https://{server.ip}:5443"
    server.config["upload"] = {"max_file_size": "200MiB", **upload}
    server.write_config()
    server.start()
    server.adduser(ALICE, PASSWORD)
    server.adduser(BOB, PASSWORD)
    return server


async def client(server, jid=ALICE):
    c = await login(server, jid, PASSWORD)
    c.register_plugin("xep_0363")
    return c


async def slot(c, filename: str, size: int, ctype: str = "image/png") -> str:
    iq = await c["xep_0363"].request_slot(DOMAIN, filename, size, ctype, timeout=TIMEOUT)
    put = iq["http_upload_slot"]["put"]["url"]
    assert put == iq["http_upload_slot"]["get"]["url"]
    return put


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict | None = None):
    """(status, headers, body); HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60, context=insecure_context()) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def metric(server, line_start: str) -> float:
    return sum(float(l.rsplit(" ", 1)[1]) for l in server.metrics_text().splitlines()
               if l.startswith(line_start))


def test_upload_and_fetch_with_safe_headers(make_server):
    server = upload_server(make_server)

    async def body():
        c = await client(server)
        info = await c["xep_0030"].get_info(jid=DOMAIN, timeout=TIMEOUT)
        assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
        assert NS_UPLOAD in info["disco_info"]["features"]
        forms = [f["values"] for f in info["disco_info"].iterables]
        assert {"FORM_TYPE": [NS_UPLOAD], "max-file-size": str(200 * 1024 * 1024)} in [
            {k: v for k, v in f.items()} for f in forms], forms
        url = await slot(c, "a picture (1).png", len(PNG))
        assert re.fullmatch(rf"https://{re.escape(server.ip)}:5443/upload/[0-9a-f]{{32}}/"
                            r"a%20picture%20%281%29\.png", url), url
        # Not there before the PUT.
        assert http(url)[0] == 404
        status, headers, _ = http(url, "PUT", PNG, {"Content-Type": "image/png"})
        assert status == 201
        assert headers["Access-Control-Allow-Origin"] == "*"
        status, headers, got = http(url)
        assert status == 200 and got == PNG
        assert headers["Content-Type"] == "image/png"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
        assert headers["Content-Disposition"].startswith("inline")
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert headers["Accept-Ranges"] == "bytes"
        status, headers, got = http(url, headers={"Range": "bytes=8-15"})
        assert status == 206 and got == PNG[8:16]
        assert headers["Content-Range"] == f"bytes 8-15/{len(PNG)}"
        status, headers, _ = http(url, headers={"Range": f"bytes={len(PNG)}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(PNG)}"
        status, headers, got = http(url, "HEAD")
        assert status == 200 and got == b"" and int(headers["Content-Length"]) == len(PNG)
        status, headers, _ = http(url, "OPTIONS")
        assert status == 204 and "PUT" in headers["Access-Control-Allow-Methods"]
        # A page is never served as one: HTML comes as a download.
        page = b"<script>alert(1)</script>"
        html_url = await slot(c, "x.html", len(page), "text/html")
        assert http(html_url, "PUT", page, {"Content-Type": "text/html"})[0] == 201
        status, headers, got = http(html_url)
        assert got == page and headers["Content-Disposition"].startswith("attachment")
        assert headers["X-Content-Type-Options"] == "nosniff"

    run(body)
    assert metric(server, 'waddle_upload_puts_total{result="ok"}') == 2
    assert metric(server, "waddle_upload_files ") == 2


def test_slot_errors_of_the_xep(make_server):
    server = upload_server(make_server, max_file_size="1MiB", quota_per_user="1536KiB")

    async def body():
        c = await client(server)
        with pytest.raises(IqError) as e:
            await slot(c, "big.bin", 1024 * 1024 + 1, "application/octet-stream")
        err = e.value.iq["error"]
        assert err["condition"] == "not-acceptable" and err["type"] == "modify"
        limit = err.xml.find(f"{{{NS_UPLOAD}}}file-too-large/{{{NS_UPLOAD}}}max-file-size")
        assert limit is not None and limit.text == str(1024 * 1024)
        await slot(c, "one.bin", 1024 * 1024, "application/octet-stream")
        with pytest.raises(IqError) as e:  # 1 MiB reserved of 1.5 MiB
            await slot(c, "two.bin", 600 * 1024, "application/octet-stream")
        assert e.value.iq["error"]["condition"] == "resource-constraint"
        # Another user has a quota of their own.
        b = await client(server, BOB)
        await slot(b, "two.bin", 600 * 1024, "application/octet-stream")
        bad = c.make_iq_get(ito=DOMAIN)
        bad.append(ET_request(filename="", size="1"))
        with pytest.raises(IqError) as e:
            await bad.send(timeout=TIMEOUT)
        assert e.value.iq["error"]["condition"] == "bad-request"

    run(body)
    assert metric(server, 'waddle_upload_slots_total{result="too_large"}') == 1
    assert metric(server, 'waddle_upload_slots_total{result="quota"}') == 1


def ET_request(**attrs):
    from slixmpp.xmlstream import ET
    return ET.Element(f"{{{NS_UPLOAD}}}request", attrs)


def test_put_errors_get_their_http_status(make_server):
    server = upload_server(make_server)

    async def body():
        c = await client(server)
        url = await slot(c, "f.png", len(PNG))
        base = url.rsplit("/", 2)[0]
        assert http(f"{base}/{'0' * 32}/f.png", "PUT", PNG,
                    {"Content-Type": "image/png"})[0] == 403
        assert http(url.replace("f.png", "g.png"), "PUT", PNG,
                    {"Content-Type": "image/png"})[0] == 403
        assert http(url, "PUT", PNG + b"x", {"Content-Type": "image/png"})[0] == 413
        assert http(url, "PUT", PNG[:-1], {"Content-Type": "image/png"})[0] == 400
        assert http(url, "PUT", PNG, {"Content-Type": "text/html"})[0] == 415
        assert http(url, "DELETE")[0] == 405
        # No length: a chunked body, by hand.
        status = raw_put(server, url, b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        assert status == 411
        # The refusals left the slot usable; once used, it is used.
        assert http(url, "PUT", PNG, {"Content-Type": "image/png"})[0] == 201
        assert http(url, "PUT", PNG, {"Content-Type": "image/png"})[0] == 409
        # Everything else went on: a message still arrives.
        c.send_message(mto=c.boundjid.full, mbody="still fine")
        await c.expect_message(body="still fine")

    run(body)
    assert metric(server, 'waddle_upload_puts_total{result="refused"}') >= 7


def tls_socket(server):
    raw = socket.create_connection((server.ip, 5443), timeout=TIMEOUT)
    return insecure_context().wrap_socket(raw, server_hostname=DOMAIN)


def raw_put(server, url: str, extra_headers: bytes, body: bytes) -> int:
    path = "/" + url.split("/", 3)[3]
    with tls_socket(server) as s:
        s.sendall(b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  + extra_headers + b"Connection: close\r\n\r\n" + body)
        head = s.recv(4096).decode()
    return int(head.split(" ", 2)[1])


def server_memory(server) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the server process, bytes."""
    fields = {}
    for line in open(f"/proc/{server.pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


@pytest.mark.memory
def test_100_mib_upload_streams_to_disk(make_server):
    server = upload_server(make_server)
    size = 100 * 1024 * 1024
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256(chunk * 100).hexdigest()

    async def body():
        c = await client(server)
        return await slot(c, "big.bin", size, "application/octet-stream")

    url = run(body)
    _, hwm_before = server_memory(server)
    path = "/" + url.split("/", 3)[3]
    started = time.monotonic()
    with tls_socket(server) as s:
        s.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        for _ in range(100):
            s.sendall(chunk)
        head = s.recv(4096).decode()
    elapsed = time.monotonic() - started
    assert head.startswith("HTTP/1.1 201"), head
    _, hwm_after = server_memory(server)
    growth = hwm_after - hwm_before
    print(f"100 MiB upload in {elapsed:.2f} s; server peak memory grew {growth / 2**20:.1f} MiB")
    if not sanitized_server():  # the sanitizer's quarantine keeps freed memory around
        assert growth < 16 * 2**20, f"peak memory grew {growth} bytes during a 100 MiB upload"
    stored = [f for f in (server.data_dir / "uploads").iterdir() if f.suffix == ".data"]
    assert len(stored) == 1 and stored[0].stat().st_size == size
    h = hashlib.sha256()
    status, headers, _ = 0, None, None
    req = urllib.request.Request(url)
    with urllib.request.urlopen(req, timeout=120, context=insecure_context()) as r:
        status = r.status
        while True:
            block = r.read(1 << 20)
            if not block:
                break
            h.update(block)
    assert status == 200 and h.hexdigest() == digest
    assert metric(server, 'waddle_upload_bytes_total{direction="in"}') == size
    assert metric(server, 'waddle_upload_bytes_total{direction="out"}') == size


def test_abandoned_and_trickling_uploads_are_cut_off(make_server):
    server = make_server(start=False)
    server.config["web"]["public_url"] = f"https://{server.ip}:5443"
    server.config["c2s"]["limits"]["handshake_timeout"] = "2s"
    server.config["upload"] = {"min_upload_rate": "100KiB"}
    server.write_config()
    server.start()
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = await client(server)
        return (await slot(c, "a.bin", 200 * 1024, "application/octet-stream"),
                await slot(c, "b.bin", 200 * 1024, "application/octet-stream"))

    abandoned, trickling = run(body)
    head = (f"Content-Type: application/octet-stream\r\nContent-Length: {200 * 1024}\r\n\r\n")

    def put_start(url):
        s = tls_socket(server)
        s.sendall(f"PUT /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: x\r\n{head}".encode())
        return s

    # Abandoned: a few bytes, then nothing: closed after the 2 s idle timeout.
    started = time.monotonic()
    with put_start(abandoned) as s:
        s.sendall(b"x" * 100)
        s.settimeout(15)
        try:
            assert s.recv(4096) == b""  # closed without an answer
        except ssl.SSLEOFError:  # closed without a TLS close_notify: the same
            pass
    assert time.monotonic() - started < 10
    # Trickling: 1 KiB every 0.2 s never lets the idle timer fire, but 200 KiB at 5 KiB/s is
    # far below 100 KiB/s: cut off after 2 s + 2 s.
    started = time.monotonic()
    with put_start(trickling) as s:
        s.settimeout(0.2)
        closed = False
        while time.monotonic() - started < 15 and not closed:
            try:
                s.sendall(b"y" * 1024)
                if s.recv(4096) == b"":
                    closed = True
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                closed = True
    assert closed, "a trickling upload was not cut off"
    assert 3 <= time.monotonic() - started < 12
    assert metric(server, 'waddle_upload_puts_total{result="aborted"}') == 2
    # The slot is still good for a proper upload.
    data = b"z" * (200 * 1024)
    assert http(abandoned, "PUT", data, {"Content-Type": "application/octet-stream"})[0] == 201
    assert not [f for f in (server.data_dir / "uploads").iterdir() if f.suffix == ".part"]


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_users_of_other_servers_only_when_allowed(fed, allow):
    a = fed.server("a.test", users=("alice",), overrides={"upload": {"allow_remote": allow}})
    fed.server("b.test", users=("bob",))
    fed.start()

    async def body():
        bob = await login(fed.servers["b.test"], "bob@b.test", PASSWORD)
        bob.register_plugin("xep_0363")
        ask = bob["xep_0363"].request_slot("a.test", "r.png", len(PNG), "image/png",
                                           timeout=TIMEOUT)
        if not allow:
            with pytest.raises(IqError) as e:
                await ask
            assert e.value.iq["error"]["condition"] == "not-allowed"
            return
        iq = await ask
        url = iq["http_upload_slot"]["put"]["url"]
        assert url.startswith("https://a.test:5443/upload/"), url
        # a.test is not in the test machine's resolver: the request goes to its address.
        local = url.replace("https://a.test:5443", f"https://{a.ip}:5443")
        assert http(local, "PUT", PNG, {"Content-Type": "image/png"})[0] == 201
        assert http(local)[2] == PNG

    run(body)
