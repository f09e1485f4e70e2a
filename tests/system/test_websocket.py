"""XMPP over WebSocket (RFC 7395) and connection discovery (XEP-0156) on the web listener.

A WebSocket client (Debian's python3-websockets) logs in over HTTPS (wss) and over the plain
loopback listener (ws), chats with an ordinary TCP client (slixmpp), resumes a dropped session
with stream management, and is refused the defined way: pages from other origins (403), no
'xmpp' subprotocol (400), a wrong WebSocket version (426), frames RFC 6455 forbids (a close
frame with the status), bad XML (a stream error). Other sessions keep going meanwhile.
host-meta and host-meta.json name the endpoint as the browser reached it.

Run: /usr/bin/python3 -m pytest tests/system/test_websocket.py -q
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import urllib.request
import xml.etree.ElementTree as ET

import pytest
import websockets
import websockets.exceptions  # a submodule: not an attribute until imported

from waddle_client import DOMAIN, PASSWORD, TIMEOUT, login, run
from ws_client import (NS_CLIENT, NS_FRAMING, NS_SM, NS_STREAM, WsClient, insecure_context,
                       ws_url)

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def metric(server, line_start: str) -> float:
    total = 0.0
    for line in server.metrics_text().splitlines():
        if line.startswith(line_start):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("tls", [True, False], ids=["wss", "ws-loopback"])
def test_websocket_client_chats_with_a_tcp_client(make_server, tls):
    server = make_server()
    server.adduser(ALICE, PASSWORD)
    server.adduser(BOB, PASSWORD)

    async def body():
        web = await WsClient.connect(server, tls=tls)
        _, features = await web.open(DOMAIN)
        # RFC 7395 §3.6: no STARTTLS over WebSocket (wss, or a proxy that encrypts).
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
        await web.close()

        web = await WsClient.connect(server, tls=tls)
        bound = await web.login(DOMAIN, "alice", PASSWORD)
        assert bound.find(f"{{{NS_SM}}}sm") is not None  # the same features as over TCP
        assert web.jid == f"{ALICE}/web"
        bob = await login(server, BOB, PASSWORD)
        await web.send(f"<message xmlns='{NS_CLIENT}' to='{BOB}' type='chat'>"
                       "<body>hello from the browser</body></message>")
        got = await bob.expect_message(body="hello from the browser")
        assert str(got["from"]) == web.jid
        bob.send_message(mto=web.jid, mbody="hello back <&>", mtype="chat")
        reply = await web.expect_message("hello back <&>")
        assert reply.get("from") == str(bob.boundjid)
        # Every message was one namespaced element (recv parsed each one on its own).
        assert all(m.lstrip().startswith("<") for m in web.raw)
        assert all("xmlns" in m.split(">", 1)[0] for m in web.raw), web.raw
        assert metric(server, 'waddle_websocket_sessions ') == 1
        await web.send(f"<close xmlns='{NS_FRAMING}'/>")
        closed = await web.expect(lambda e: e.tag == f"{{{NS_FRAMING}}}close", "<close/>")
        assert closed is not None
        # The server ends the WebSocket too (a close frame, then the connection).
        await asyncio.wait_for(web.ws.wait_closed(), TIMEOUT)

    run(body)
    assert metric(server, 'waddle_websocket_upgrades_total{result="ok"}') == 2


def test_stream_management_resumes_a_dropped_websocket(make_server):
    server = make_server()
    server.adduser(ALICE, PASSWORD)
    server.adduser(BOB, PASSWORD)

    async def body():
        web = await WsClient.connect(server)
        await web.login(DOMAIN, "alice", PASSWORD)
        await web.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await web.expect(lambda e: e.tag == f"{{{NS_SM}}}enabled", "<enabled/>")
        previd = enabled.get("id")
        assert previd and enabled.get("resume") == "true"
        bob = await login(server, BOB, PASSWORD)
        bob.send_message(mto=web.jid, mbody="one", mtype="chat")
        await web.expect_message("one")
        # The connection drops (no close frame, no <close/>): the session waits.
        web.ws.transport.abort()
        bob.send_message(mto=f"{ALICE}/web", mbody="two", mtype="chat")
        again = await WsClient.connect(server)
        await again.open(DOMAIN)
        import base64
        creds = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        await again.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                         f"{creds}</auth>")
        await again.expect(lambda e: e.tag.endswith("}success"), "SASL success")
        await again.open(DOMAIN)
        await again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        resumed = await again.expect(lambda e: e.tag == f"{{{NS_SM}}}resumed", "<resumed/>")
        assert resumed.get("previd") == previd
        # Both are sent again: nothing was acknowledged.
        await again.expect_message("one")
        await again.expect_message("two")
        await again.close()

    run(body)


def test_origins_subprotocol_and_version_are_checked(make_server):
    server = make_server({"web": {"allowed_origins": []}})
    server.adduser(ALICE, PASSWORD)

    async def refused(status: int, **kwargs) -> None:
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await WsClient.connect(server, **kwargs)
        assert e.value.status_code == status, e.value

    async def body():
        # A page of another site may not use the user's browser to connect.
        await refused(403, origin="https://evil.example.net")
        await refused(403, tls=True, origin=f"http://{server.ip}:5443")  # scheme differs
        await refused(400, subprotocols=())
        # The server's own pages may (same origin), and clients that are no browser.
        ok = await WsClient.connect(server, origin=f"http://{server.ip}:5380")
        await ok.login(DOMAIN, "alice", PASSWORD)
        await ok.close()
        ok = await WsClient.connect(server, tls=True, origin=f"https://{server.ip}:5443")
        await ok.close()

    run(body)
    # A version other than 13, by hand.
    with socket.create_connection((server.ip, 5380), timeout=TIMEOUT) as s:
        s.sendall(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 426"), head
    assert "Sec-WebSocket-Version: 13" in head, head
    assert metric(server, 'waddle_websocket_upgrades_total{result="origin"}') == 2
    assert metric(server, 'waddle_websocket_upgrades_total{result="protocol"}') == 1
    assert metric(server, 'waddle_websocket_upgrades_total{result="version"}') == 1


def test_configured_origins(make_server):
    server = make_server({"web": {"allowed_origins": ["https://app.example.net"]}})

    async def body():
        ok = await WsClient.connect(server, origin="https://app.example.net")
        await ok.open(DOMAIN)
        await ok.close()
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await WsClient.connect(server, origin=f"http://{server.ip}:5380")
        assert e.value.status_code == 403

    run(body)


def raw_upgrade(server) -> socket.socket:
    s = socket.create_connection((server.ip, 5380), timeout=TIMEOUT)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall(f"GET /xmpp-websocket HTTP/1.1\r\nHost: {server.ip}:5380\r\n"
              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
              "Sec-WebSocket-Protocol: xmpp\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, head
    return s


def frame(opcode: int, payload: bytes, mask: bool = True) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frames(s: socket.socket) -> list[tuple[int, bytes]]:
    """Server frames until the connection closes (bounded by the socket timeout)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    frames, i = [], 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n, i = int.from_bytes(data[i:i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i:i + 8], "big"), i + 8
        frames.append((op, data[i:i + n]))
        i += n
    return frames


OPEN = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>".encode()


@pytest.mark.parametrize("bad,status", [
    (frame(0x2, b"<x/>"), 1003),  # binary: XMPP is text
    (frame(0x1, OPEN, mask=False), 1002),  # a client must mask
    (frame(0x1, b"x" * 300000), 1009),  # beyond the largest stanza
    # Before authentication the bound is the unauthenticated one (c2s.limits
    # max_unauthenticated_stanza_size), as for TCP clients: 100 KB is refused from its header.
    (frame(0x1, OPEN) + frame(0x1, b"x" * 100000)[:14], 1009),
], ids=["binary", "unmasked", "too-big", "too-big-before-auth"])
def test_frames_rfc6455_forbids_close_with_their_status(make_server, bad, status):
    server = make_server()
    server.adduser(BOB, PASSWORD)

    async def body():
        bob = await login(server, BOB, PASSWORD)
        loop = asyncio.get_running_loop()

        def exchange():
            with raw_upgrade(server) as s:
                s.sendall(bad)
                return read_frames(s)

        frames = await loop.run_in_executor(None, exchange)
        closes = [p for op, p in frames if op == 0x8]
        assert closes and int.from_bytes(closes[0][:2], "big") == status, frames
        # Nobody else noticed.
        bob.send_message(mto=bob.boundjid.full, mbody="still here")
        await bob.expect_message(body="still here")

    run(body)


def test_bad_xml_gets_a_stream_error(make_server):
    server = make_server()

    def exchange():
        with raw_upgrade(server) as s:
            s.sendall(frame(0x1, OPEN) + frame(0x1, b"<message><body>unclosed</message>"))
            return read_frames(s)

    frames = exchange()
    texts = [p.decode() for op, p in frames if op == 0x1]
    elements = [ET.fromstring(t) for t in texts]
    errors = [e for e in elements if e.tag == f"{{{NS_STREAM}}}error"]
    assert errors, texts
    assert errors[0].find("{urn:ietf:params:xml:ns:xmpp-streams}not-well-formed") is not None, texts
    assert elements[-1].tag == f"{{{NS_FRAMING}}}close", texts
    assert [op for op, _ in frames][-1] == 0x8


def fetch(url: str, method: str = "GET", headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    ctx = insecure_context() if url.startswith("https") else None
    with urllib.request.urlopen(req, timeout=TIMEOUT, context=ctx) as r:
        return r.status, dict(r.headers), r.read()


def test_host_meta_names_the_websocket_endpoint(make_server):
    server = make_server()
    status, headers, body = fetch(f"https://{server.ip}:5443/.well-known/host-meta")
    assert status == 200
    assert headers["Content-Type"].startswith("application/xrd+xml")
    assert headers["Access-Control-Allow-Origin"] == "*"
    links = ET.fromstring(body).findall(f"{{{NS_XRD}}}Link")
    assert [(l.get("rel"), l.get("href")) for l in links] == [
        ("urn:xmpp:alt-connections:websocket", ws_url(server, tls=True))]
    status, headers, body = fetch(f"http://{server.ip}:5380/.well-known/host-meta.json")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"links": [{"rel": "urn:xmpp:alt-connections:websocket",
                                           "href": ws_url(server, tls=False)}]}
    # Behind the operator's proxy, which says the browser used https.
    _, _, body = fetch(f"http://{server.ip}:5380/.well-known/host-meta.json",
                       headers={"X-Forwarded-Proto": "https", "Host": "chat.example.test"})
    assert json.loads(body)["links"][0]["href"] == "wss://chat.example.test/xmpp-websocket"
    # HEAD and the CORS preflight.
    status, headers, body = fetch(f"http://{server.ip}:5380/.well-known/host-meta", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, headers, _ = fetch(f"http://{server.ip}:5380/.well-known/host-meta", "OPTIONS")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(f"http://{server.ip}:5380/nothing-here")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(f"http://{server.ip}:5380/xmpp-websocket")  # not an upgrade
    assert e.value.code == 426
    assert metric(server, 'waddle_http_requests_total{endpoint="host_meta",code="200"}') == 4


def test_host_meta_uses_the_public_url(make_server):
    server = make_server({"web": {"public_url": "https://chat.example.test/"}})
    _, _, body = fetch(f"http://{server.ip}:5380/.well-known/host-meta.json")
    assert json.loads(body)["links"][0]["href"] == "wss://chat.example.test/xmpp-websocket"
