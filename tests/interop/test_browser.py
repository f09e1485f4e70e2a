"""The bundled web client (Converse.js 14, served by Waddle at https://DOMAIN:5443/chat/) in a
real browser: Debian's headless Chromium driven by Debian's Selenium (python3-selenium,
/usr/bin/chromium, /usr/bin/chromedriver), talking XMPP over WebSocket to a Waddle that
federates with a second Waddle and with Prosody 0.12. The other users are slixmpp clients of
the harness, so every step is checked on both ends.

World (module-scoped, one for all the tests here): Waddle A (w-browser.test, the web client's
files from build/web-client, alice), Waddle B (w-browser-peer.test, bob), Prosody
(prosody-browser.test, carol), all in "cert" mode on their own loopback addresses with the
harness's dnsmasq. Chromium resolves the three domains to those addresses through
--host-resolver-rules and accepts the private CA's certificates (--ignore-certificate-errors);
the page must be HTTPS, as Converse's SCRAM needs a secure context. alice logs in through
Converse's login form once (fixture `converse`); the tests then share that browser session.

- test_chat_with_waddle_and_prosody_users: alice opens chats with bob@B and carol@Prosody from
  "Start a new chat"; each gets her message from the full JID the browser shows for it, and
  their replies appear in the chat views.
- test_federated_room: bob creates a room on B's room service and carol (Prosody) joins it;
  alice joins it from "Add groupchat"; the browser lists both occupants and shows what they
  say, and both get alice's message from her room JID.
- test_image_upload: alice sends a PNG to bob through the paperclip (HTTP File Upload on A's
  web listener): the browser shows the image from https://A:5443/upload/..., loaded at its
  real size, and bob's message carries that URL as body and as XEP-0066 out-of-band URL.
- test_status_page_shows_links_and_failures: the operator status page on the metrics
  listener (http://IP:5280/status) lists A's links to B and Prosody (both directions) after
  traffic, and after a message to a domain that does not resolve (bounced with
  remote-server-not-found) lists a failure for that domain.

A screenshot of every step goes to $WADDLE_ARTIFACTS (default build/artifacts/browser/):
00-login-form.png, 01-logged-in.png, ... 08-status-failure.png; a failing test also leaves
FAILED-<test>.png, its page source and the browser console there.

Needs the web client's files: ninja -C build web-client (build/web-client/dist/converse.min.js).
Run (root): WADDLE_BIN=$PWD/build/waddle /usr/bin/python3 -m pytest tests/interop/test_browser.py -q
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import harness
from harness import exchange, login, run_async

TIMEOUT = 20.0  # any single wait: a delivery, a page element
A, B, P = "w-browser.test", "w-browser-peer.test", "prosody-browser.test"
UNRESOLVABLE = "nowhere-browser.test"  # NXDOMAIN from the harness's dnsmasq
WEB_CLIENT = harness.REPO_ROOT / "build" / "web-client"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_OOB = "jabber:x:oob"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def artifacts_dir() -> Path:
    d = Path(os.environ.get("WADDLE_ARTIFACTS") or harness.REPO_ROOT / "build" / "artifacts"
             / "browser")
    d.mkdir(parents=True, exist_ok=True)
    return d


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid one-colour RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- the browser

# Every message shown in a chat or room view: [data-from, body text].
MESSAGES_JS = """
const box = document.querySelector(arguments[0]);
if (!box) return [];
return [...box.querySelectorAll('.chat-msg')].map(m => [
  m.getAttribute('data-from') || '',
  (m.querySelector('converse-chat-message-body') || {textContent: ''}).textContent.trim()]);
"""

# The nicknames in a room view's occupant list.
OCCUPANTS_JS = """
return [...document.querySelectorAll(arguments[0] + ' .occupant-list li.occupant .occupant-nick')]
  .map(e => e.textContent.trim());
"""

# The upload's <img> in a chat view once the browser has decoded it (null before).
IMAGE_JS = """
const box = document.querySelector(arguments[0]);
if (!box) return null;
for (const img of box.querySelectorAll('.chat-msg img')) {
  if (!img.src.startsWith(arguments[1])) continue;
  img.scrollIntoView();  // loading="lazy": only images in view are fetched
  if (img.complete && img.naturalWidth > 0)
    return {src: img.src, width: img.naturalWidth, height: img.naturalHeight,
            from: img.closest('.chat-msg').getAttribute('data-from')};
}
return null;
"""


class Browser:
    """Headless Chromium with Converse: synchronous Selenium steps (the async tests call them
    through asyncio.to_thread, so that the slixmpp clients keep running meanwhile). Every wait
    is a WebDriverWait with a deadline."""

    def __init__(self, driver: Any, artifacts: Path):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.d = driver
        self.By = By
        self.WebDriverWait = WebDriverWait
        self.artifacts = artifacts

    # -- plumbing

    def wait(self, what: str, cond: Callable[[Any], Any], timeout: float = TIMEOUT,
             poll: float = 0.1) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        try:
            # Converse re-renders its views: an element found a moment ago may be gone.
            return self.WebDriverWait(self.d, timeout, poll_frequency=poll,
                                      ignored_exceptions=(StaleElementReferenceException,)
                                      ).until(cond)
        except TimeoutException:
            raise AssertionError(f"browser: {what} not within {timeout}s "
                                 f"(page {self.d.current_url})") from None

    def css(self, selector: str) -> list[Any]:
        return self.d.find_elements(self.By.CSS_SELECTOR, selector)

    def visible(self, selector: str) -> Any:
        """The first displayed element matching `selector` (waits for it)."""
        def find(_: Any) -> Any:
            for e in self.css(selector):
                if e.is_displayed():
                    return e
            return None
        return self.wait(f"a visible {selector}", find)

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / name
        assert self.d.save_screenshot(str(path)), f"screenshot {path} not written"
        return path

    def save_failure(self, test: str) -> None:
        self.screenshot(f"FAILED-{test}.png")
        (self.artifacts / f"FAILED-{test}.html").write_text(self.d.page_source)
        try:
            console = self.d.get_log("browser")
        except Exception as e:  # not every driver keeps it
            console = [{"error": str(e)}]
        (self.artifacts / f"FAILED-{test}.console.json").write_text(
            json.dumps(console, indent=1))

    def menu(self, toggle: str, item: str) -> None:
        """Opens a Converse dropdown and clicks one of its entries."""
        self.visible(toggle).click()
        self.visible(item).click()

    # -- Converse

    def log_in(self, url: str, user: str, password: str, jid: str) -> None:
        self.d.get(url)
        self.visible("input[name=jid]").send_keys(user)  # default_domain completes it
        self.visible("input[name=password]").send_keys(password)
        self.screenshot("00-login-form.png")
        self.visible("form button[type=submit]").click()
        self.wait(f"{jid} logged in (profile with the JID, status online)", lambda d: [
            e for e in self.css("converse-user-profile .username") if e.text == jid]
            and self.css("converse-user-profile .xmpp-status [data-value=online]"))
        assert not self.css("input[name=password]"), "the login form is still there"

    def open_chat(self, jid: str) -> str:
        """Opens a one-to-one chat through Contacts > "Start a new chat"; returns the chat
        view's selector."""
        self.menu("#converse-roster converse-dropdown.dropdown--contacts button.dropdown-toggle",
                  "a.new-chat")
        field = self.visible("converse-new-chat-modal input[name=jid]")
        field.clear()
        field.send_keys(jid)
        self.visible("converse-new-chat-modal button[type=submit]").click()
        box = f'converse-chat[jid="{jid}"]'
        self.visible(box + " textarea.chat-textarea")
        self.dialog_closed()
        return box

    def join_room(self, room: str, nick: str) -> str:
        """Joins a room through Groupchats > "Add groupchat"; returns the room view's
        selector once the browser lists `nick` among the occupants."""
        self.menu("#chatrooms converse-dropdown button.dropdown-toggle", "a.show-add-muc-modal")
        self.visible("converse-modals form.add-chatroom input[name=chatroom]").send_keys(room)
        field = self.visible("converse-modals form.add-chatroom input[name=nickname]")
        field.clear()
        field.send_keys(nick)
        self.visible("converse-modals form.add-chatroom input[type=submit][name=join]").click()
        box = f'converse-muc[jid="{room}"]'
        self.dialog_closed()
        self.wait(f"{nick} among the occupants of {room}",
                  lambda d: nick in self.occupants(box))
        return box

    def dialog_closed(self) -> None:
        """Waits until no dialog is shown (a fading one would take the next click)."""
        self.wait("the dialog closed", lambda d: not [
            e for e in self.css("converse-modals .modal.show") if e.is_displayed()])

    def occupants(self, box: str) -> list[str]:
        """The nicknames in the room view's occupant list."""
        return self.d.execute_script(OCCUPANTS_JS, box)

    def send(self, box: str, text: str) -> None:
        self.visible(f"{box} textarea.chat-textarea").send_keys(text)
        self.visible(f"{box} button.send-button").click()

    def messages(self, box: str) -> list[tuple[str, str]]:
        return [tuple(m) for m in self.d.execute_script(MESSAGES_JS, box)]

    def wait_message(self, box: str, body: str) -> str:
        """Waits until the view shows a message with `body`; returns its data-from."""
        found = self.wait(f"{body!r} shown in {box}",
                          lambda d: [f for f, b in self.messages(box) if b == body])
        return found[0]

    def upload(self, box: str, path: Path) -> None:
        """Picks `path` in the chat's hidden file input (the paperclip's)."""
        self.visible(f"{box} converse-chat-toolbar .fa-paperclip")
        self.css(f"{box} input.fileupload")[0].send_keys(str(path))

    def wait_image(self, box: str, url_prefix: str) -> dict:
        return self.wait(f"an image from {url_prefix} loaded in {box}",
                         lambda d: d.execute_script(IMAGE_JS, box, url_prefix))

    def new_tab(self) -> str:
        """Opens a tab and switches to it; returns the handle of the one it came from (so
        that Converse keeps its session there)."""
        back = self.d.current_window_handle
        self.d.switch_to.new_window("tab")
        return back

    def close_tab(self, back: str) -> None:
        self.d.close()
        self.d.switch_to.window(back)

    def reload_until(self, url: str, selector: str, what: str, timeout: float) -> Any:
        """Loads `url` again and again (every 0.5 s) until `selector` matches."""
        def check(d: Any) -> Any:
            d.get(url)
            return self.css(selector)
        return self.wait(what, check, timeout, poll=0.5)


async def browse(fn: Callable[..., Any], *args: Any) -> Any:
    """Runs a synchronous browser step without blocking the clients' event loop."""
    return await asyncio.to_thread(fn, *args)


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    fed: harness.Federation
    wa: harness.Waddle  # alice's server, serving the web client
    wb: harness.Waddle
    prosody: harness.Prosody


def _preflight() -> None:
    if importlib.util.find_spec("selenium") is None:
        pytest.fail("python3-selenium is not installed")
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} is not installed (chromium, chromium-driver)")
    if not (WEB_CLIENT / "dist" / "converse.min.js").exists():
        pytest.fail(f"the web client is missing ({WEB_CLIENT}/dist/converse.min.js): "
                    "run ninja -C build web-client")


@pytest.fixture(scope="module")
def world(interop_root, ca):
    _preflight()
    fed = harness.Federation(interop_root / "browser", ca)
    try:
        wa = fed.waddle(A, "cert", users=["alice"],
                        overrides={"web": {"client_dir": str(WEB_CLIENT)}})
        wb = fed.waddle(B, "cert", users=["bob"])
        prosody = fed.prosody(P, "cert", users=["carol"])
        fed.start()
    except BaseException:
        fed.close()
        raise
    yield World(fed, wa, wb, prosody)
    fed.close()


@pytest.fixture(scope="module")
def converse(world):
    """Chromium logged in to Converse as alice@A (screenshots 00 and 01)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    rules = ", ".join(f"MAP {s.domain} {s.ip}" for s in (world.wa, world.wb, world.prosody))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--ignore-certificate-errors", "--window-size=1280,900",
                f"--host-resolver-rules={rules}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_path=str(world.fed.dir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        browser = Browser(driver, artifacts_dir())
        try:
            browser.log_in(f"https://{A}:{harness.WEB_PORT}/chat/", "alice", harness.PASSWORD,
                           world.wa.jid("alice"))
        except BaseException:
            browser.save_failure("login")
            raise
        browser.screenshot("01-logged-in.png")
        yield browser
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _report(request, world):
    """Attaches the servers' logs to a failure (conftest.py) and leaves the browser's state
    of a failed test in the artefacts."""
    request.node._interop_federation = world.fed
    failed_before = request.session.testsfailed
    yield
    browser = request.node.funcargs.get("converse")
    if browser is not None and request.session.testsfailed > failed_before:
        browser.save_failure(request.node.name)


# --------------------------------------------------------------------------- tests


def test_chat_with_waddle_and_prosody_users(world, converse):
    br = converse

    async def body():
        bob = await login(world.wb, "bob")
        carol = await login(world.prosody, "carol")
        alice_jid = world.wa.jid("alice")
        for n, peer in ((2, bob), (3, carol)):
            who = peer.boundjid.bare
            box = await browse(br.open_chat, who)
            text = f"hello {peer.boundjid.user} from the browser"
            await browse(br.send, box, text)
            shown_from = await browse(br.wait_message, box, text)
            got = await peer.expect_message(frm=alice_jid, body=text, timeout=TIMEOUT)
            # From the browser's own session (the full JID Converse shows for its message).
            assert got["from"].resource and str(got["from"]) == shown_from, (
                f"{who} got {got['from']}, the browser shows {shown_from}")
            assert got["type"] == "chat", str(got)
            reply = f"{peer.boundjid.user} answers alice"
            peer.chat(str(got["from"]), reply)
            reply_from = await browse(br.wait_message, box, reply)
            assert reply_from == str(peer.boundjid), (reply_from, str(peer.boundjid))
            await browse(br.screenshot, f"0{n}-chat-{peer.boundjid.user}.png")
            errors = [str(m) for m in peer.messages.items if m["type"] == "error"]
            assert not errors, f"errors at {who}: {errors}"

    run_async(body, timeout=60)


async def _join(c: Any, room: str, nick: str) -> Any:
    p = c.make_presence(pto=f"{room}/{nick}")
    ET.SubElement(p.xml, f"{{{NS_MUC}}}x")
    p.send()
    return await c.presences.get(
        lambda x: str(x["from"]) == f"{room}/{nick}" and any(
            s.get("code") == "110" for s in x.xml.iter(f"{{{NS_MUC_USER}}}status")),
        TIMEOUT, f"self-presence in {room} for {c.label}")


def test_federated_room(world, converse):
    br = converse
    room = f"lounge@conference.{B}"

    async def body():
        bob = await login(world.wb, "bob")
        carol = await login(world.prosody, "carol")
        await _join(bob, room, "bob")  # creates it
        await _join(carol, room, "carol")  # over Prosody -> B
        box = await browse(br.join_room, room, "alice")
        # The browser lists the remote occupants, and they see alice come in.
        occupants = await browse(br.occupants, box)
        assert {"alice", "bob", "carol"} <= set(occupants), occupants
        for c in (bob, carol):
            await c.presences.get(lambda x: str(x["from"]) == f"{room}/alice"
                                  and x["type"] != "unavailable", TIMEOUT,
                                  f"alice's presence in {room} for {c.label}")
        await browse(br.screenshot, "04-room-joined.png")

        for c, nick in ((bob, "bob"), (carol, "carol")):
            text = f"{nick} says hello to the room"
            c.send_message(mto=room, mbody=text, mtype="groupchat")
            shown_from = await browse(br.wait_message, box, text)
            assert shown_from == f"{room}/{nick}", shown_from

        text = "alice answers the room from the browser"
        await browse(br.send, box, text)
        for c in (bob, carol):
            got = await c.messages.get(
                lambda m: m["body"] == text and m["type"] == "groupchat", TIMEOUT,
                f"{text!r} for {c.label}")
            assert str(got["from"]) == f"{room}/alice", str(got)
        assert await browse(br.wait_message, box, text) == f"{room}/alice"
        await browse(br.screenshot, "05-room-conversation.png")

    run_async(body, timeout=60)


def test_image_upload(world, converse, tmp_path):
    br = converse
    image = tmp_path / "waddle-test-image.png"
    image.write_bytes(png(64, 48, (200, 30, 90)))
    upload_prefix = f"https://{A}:{harness.WEB_PORT}/upload/"

    async def body():
        bob = await login(world.wb, "bob")
        box = await browse(br.open_chat, bob.boundjid.bare)
        await browse(br.upload, box, image)
        shown = await browse(br.wait_image, box, upload_prefix)
        await browse(br.screenshot, "06-upload.png")
        url = shown["src"]
        assert url.startswith(upload_prefix) and url.endswith("/" + image.name), url
        assert (shown["width"], shown["height"]) == (64, 48), shown  # our PNG, decoded
        assert shown["from"].startswith(world.wa.jid("alice") + "/"), shown
        got = await bob.messages.get(lambda m: m["body"] == url, TIMEOUT,
                                     f"a message with {url} for bob")
        assert got["from"].bare == world.wa.jid("alice"), str(got)
        oob = got.xml.find(f"{{{NS_OOB}}}x/{{{NS_OOB}}}url")
        assert oob is not None and oob.text == url, f"no out-of-band URL {url}: {got}"

    run_async(body, timeout=60)


def test_status_page_shows_links_and_failures(world, converse):
    br = converse
    wa = world.wa
    status = f"http://{wa.ip}:{harness.METRICS_PORT}/status"
    failure = f'ul#failures li[data-domain="{UNRESOLVABLE}"]'

    def link(domain: str, direction: str) -> str:
        return f'table#links tr[data-domain="{domain}"][data-direction="{direction}"]'

    async def body():
        # Traffic both ways with each peer: A has an outbound and an inbound link to each.
        alice = await login(wa, "alice")
        bob = await login(world.wb, "bob")
        carol = await login(world.prosody, "carol")
        for peer in (bob, carol):
            await exchange(alice, peer, f"to {peer.boundjid.bare}", timeout=TIMEOUT)
            await exchange(peer, alice, f"from {peer.boundjid.bare}", timeout=TIMEOUT)

        # In a tab of its own: Converse stays logged in in the first one.
        converse_tab = await browse(br.new_tab)
        try:
            await check_page(alice)
        except BaseException:
            await browse(br.save_failure, "status-page")  # this tab, not Converse's
            raise
        finally:
            await browse(br.close_tab, converse_tab)

    async def check_page(alice: Any) -> None:
        await browse(br.d.get, status)
        title = await browse(lambda: br.d.title)
        await browse(br.screenshot, "07-status-links.png")
        assert title == "Waddle status", (
            f"{status}: title {title!r}, the page says: {br.d.page_source[:300]}")
        for domain in (B, P):
            for direction in ("out", "in"):
                rows = await browse(br.css, link(domain, direction))
                assert rows, f"{status}: no {direction} link to {domain}\n{br.d.page_source}"
        assert not await browse(br.css, failure), f"a failure for {UNRESOLVABLE} already"

        # A message to a domain that does not resolve comes back, and the page says why.
        mid = alice.chat(f"nobody@{UNRESOLVABLE}", "anyone there?")
        bounce = await alice.messages.get(
            lambda m: m["type"] == "error" and m["id"] == mid, 30,
            f"the bounce from {UNRESOLVABLE}")
        assert bounce.xml.find(f"{{jabber:client}}error/{{{STANZAS}}}remote-server-not-found") \
            is not None, str(bounce)
        items = await browse(br.reload_until, status, failure,
                             f"a failure for {UNRESOLVABLE} on {status}", TIMEOUT)
        await browse(br.screenshot, "08-status-failure.png")
        reason = await browse(lambda: items[0].text.strip())
        assert reason.replace(UNRESOLVABLE, "").strip(), (
            f"the failure item for {UNRESOLVABLE} gives no reason: {reason!r}")
        # The links are still listed next to it.
        assert await browse(br.css, link(B, "out")), f"the link to {B} went away"

    run_async(body, timeout=75)
