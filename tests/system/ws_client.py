"""A raw XMPP-over-WebSocket client (RFC 7395) for the system tests, on the `websockets`
library (Debian's python3-websockets): it logs in with SASL PLAIN, binds, and hands out each
received message (one WebSocket message = one element, parsed) with a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import xml.etree.ElementTree as ET
from typing import Any, Callable, Optional

import websockets

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
TIMEOUT = 10.0


def ws_url(server: Any, tls: bool) -> str:
    if tls:
        return f"wss://{server.ip}:5443/xmpp-websocket"
    return f"ws://{server.ip}:5380/xmpp-websocket"


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WsClient:
    def __init__(self, ws: Any):
        self.ws = ws
        self.raw: list[str] = []  # every message received, as text
        self.jid = ""

    @classmethod
    async def connect(cls, server: Any, *, tls: bool = False, origin: Optional[str] = None,
                      subprotocols: tuple = ("xmpp",)) -> "WsClient":
        ws = await asyncio.wait_for(websockets.connect(
            ws_url(server, tls), subprotocols=list(subprotocols), origin=origin,
            ssl=insecure_context() if tls else None, max_size=2**24, ping_interval=None,
            open_timeout=TIMEOUT), TIMEOUT)
        return cls(ws)

    async def send(self, xml: str) -> None:
        await self.ws.send(xml)

    async def recv(self, timeout: float = TIMEOUT) -> ET.Element:
        """The next element; each WebSocket message must hold exactly one, namespaced."""
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(text, str), f"a binary message: {text!r}"
        self.raw.append(text)
        return ET.fromstring(text)  # raises on anything but one well-formed element

    async def expect(self, pred: Callable[[ET.Element], bool], what: str,
                     timeout: float = TIMEOUT) -> ET.Element:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got {self.raw[-5:]}")
            try:
                el = await self.recv(left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {what} within {timeout}s; got {self.raw[-5:]}") from None
            if pred(el):
                return el

    async def open(self, domain: str) -> tuple[ET.Element, ET.Element]:
        await self.send(f"<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>")
        opened = await self.recv()
        assert opened.tag == f"{{{NS_FRAMING}}}open", opened.tag
        features = await self.recv()
        assert features.tag == f"{{{NS_STREAM}}}features", features.tag
        return opened, features

    async def login(self, domain: str, user: str, password: str,
                    resource: str = "web") -> ET.Element:
        """Opens, authenticates (PLAIN), binds; returns the post-bind stream features."""
        _, features = await self.open(domain)
        mechs = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert "PLAIN" in mechs, mechs
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
        outcome = await self.recv()
        assert outcome.tag == f"{{{NS_SASL}}}success", ET.tostring(outcome)
        _, features = await self.open(domain)
        assert features.find(f"{{{NS_BIND}}}bind") is not None
        await self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        result = await self.expect(lambda e: e.get("id") == "bind1", "the bind result")
        assert result.get("type") == "result", ET.tostring(result)
        self.jid = result.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid").text
        return features

    async def expect_message(self, body: str, timeout: float = TIMEOUT) -> ET.Element:
        return await self.expect(
            lambda e: e.tag == f"{{{NS_CLIENT}}}message"
            and e.findtext(f"{{{NS_CLIENT}}}body") == body,
            f"a message with body {body!r}", timeout)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass
