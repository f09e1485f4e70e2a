"""The login of the light asyncio c2s clients that load tests run by the hundred or at a
thousand messages a second, where slixmpp is too slow: crowd.LightClient (room crowds) and
tests/interop/flood.py's FloodClient (floods across federation links).

`LightC2s.negotiate()` connects and logs in under one deadline: STARTTLS (RFC 6120 §5,
without certificate verification), optional in-band registration (XEP-0077), SASL PLAIN
(RFC 6120 §6), resource binding (§7) and, where a server still requires it, a session
(RFC 3921 §3). What a client does once logged in (presence, its read loop) is its own; the
top-level elements parsed with the last answer are left in `take_pending()`.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import xml.etree.ElementTree as ET
from typing import Optional
from xml.sax.saxutils import escape

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_REGISTER = "jabber:iq:register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def tag(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


class LoginFailed(AssertionError):
    """The server refused the login, ended it, or did not answer in time."""


_TLS: Optional[ssl.SSLContext] = None


def tls_context() -> ssl.SSLContext:
    """One context for every client, without certificate verification (test servers have
    self-signed or private-CA certificates). ssl.create_default_context() would load the
    system's CA store for each client: most of a login's CPU."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _TLS.check_hostname = False
        _TLS.verify_mode = ssl.CERT_NONE
    return _TLS


class LightC2s:
    """One c2s connection at a time to ip:port as user@domain/resource. `jid` names the
    client in errors (subclasses may set it to what suits them)."""

    def __init__(self, ip: str, port: int, domain: str, user: str, password: str,
                 resource: str):
        self.ip, self.port, self.domain = ip, port, domain
        self.user, self.password, self.resource = user, password, resource
        self.jid = f"{user}@{domain}"
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reset_parser()

    # ---------------------------------------------------------------- parsing

    def _reset_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: Optional[ET.Element] = None
        self._pending: list[ET.Element] = []  # parsed during login, not yet taken
        self.stream_ended = False  # the server's </stream:stream> arrived

    def _feed(self, data: bytes) -> list[ET.Element]:
        """Parses `data`; returns the top-level elements it completed."""
        out = []
        self._parser.feed(data)
        for event, el in self._parser.read_events():
            if event == "start":
                if self._depth == 0:
                    self._root = el
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth == 1:
                out.append(el)
                if self._root is not None:
                    self._root.remove(el)  # keep memory flat over long streams
            elif self._depth == 0:
                self.stream_ended = True
        return out

    async def _next(self, deadline: float) -> ET.Element:
        """During login: the next top-level element (reads as needed)."""
        loop = asyncio.get_running_loop()
        while not self._pending:
            if self.stream_ended:
                raise LoginFailed(f"{self.jid}: the server ended the stream")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LoginFailed(f"{self.jid}: no answer from {self.ip}:{self.port} in time")
            data = await asyncio.wait_for(self._reader.read(65536), remaining)
            if not data:
                raise LoginFailed(f"{self.jid}: connection closed during login")
            self._pending.extend(self._feed(data))
        return self._pending.pop(0)

    async def _expect(self, name: str, deadline: float) -> ET.Element:
        el = await self._next(deadline)
        if el.tag != name:
            raise LoginFailed(f"{self.jid}: expected {name}, got "
                              f"{ET.tostring(el).decode()[:500]}")
        return el

    def take_pending(self) -> list[ET.Element]:
        """Elements that came with the login's last answer (for the client's handler)."""
        pending, self._pending = self._pending, []
        return pending

    # ---------------------------------------------------------------- connection

    def _send_raw(self, data: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data.encode())

    def _abort(self) -> None:
        if self._writer is not None:
            transport = self._writer.transport
            if transport is not None:
                transport.abort()
        self._writer = None

    async def _open_stream(self, deadline: float) -> ET.Element:
        self._reset_parser()
        self._send_raw(f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
                       f"xmlns:stream='{NS_STREAMS}' to='{self.domain}' version='1.0'>")
        return await self._expect(tag(NS_STREAMS, "features"), deadline)

    async def negotiate(self, deadline: float, register: bool = False) -> str:
        """Connects and logs in by `deadline` (loop time), registering the account first if
        asked (an existing one is fine); returns the bound full JID. On failure the
        connection is aborted and LoginFailed (or the connection's error) raised."""
        loop = asyncio.get_running_loop()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.ip, self.port), max(deadline - loop.time(), 0.1))
        try:
            await self._starttls(deadline)
            if register:
                await self._register(deadline)
            await self._authenticate(deadline)
            return await self._bind(deadline)
        except BaseException:
            self._abort()
            raise

    async def _starttls(self, deadline: float) -> None:
        features = await self._open_stream(deadline)
        if features.find(tag(NS_TLS, "starttls")) is None:
            raise LoginFailed(f"{self.jid}: no STARTTLS offered")
        self._send_raw(f"<starttls xmlns='{NS_TLS}'/>")
        await self._expect(tag(NS_TLS, "proceed"), deadline)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(self._writer.start_tls(tls_context(), server_hostname=self.domain),
                               max(deadline - loop.time(), 0.1))
        await self._open_stream(deadline)

    async def _register(self, deadline: float) -> None:
        self._send_raw(f"<iq type='set' id='reg'><query xmlns='{NS_REGISTER}'><username>"
                       f"{escape(self.user)}</username><password>{escape(self.password)}"
                       f"</password></query></iq>")
        answer = await self._expect(tag(NS_CLIENT, "iq"), deadline)
        conflict = answer.find(f"{tag(NS_CLIENT, 'error')}/{tag(NS_STANZAS, 'conflict')}")
        if answer.get("type") != "result" and conflict is None:  # conflict: a rerun
            raise LoginFailed(f"{self.jid}: registration refused: "
                              f"{ET.tostring(answer).decode()}")

    async def _authenticate(self, deadline: float) -> None:
        token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
        self._send_raw(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        answer = await self._next(deadline)
        if answer.tag != tag(NS_SASL, "success"):
            raise LoginFailed(f"{self.jid}: authentication failed: "
                              f"{ET.tostring(answer).decode()[:300]}")

    async def _bind(self, deadline: float) -> str:
        features = await self._open_stream(deadline)
        self._send_raw(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>"
                       f"{escape(self.resource)}</resource></bind></iq>")
        answer = await self._expect(tag(NS_CLIENT, "iq"), deadline)
        bound = answer.findtext(f"{tag(NS_BIND, 'bind')}/{tag(NS_BIND, 'jid')}")
        if answer.get("type") != "result" or not bound:
            raise LoginFailed(f"{self.jid}: bind failed: {ET.tostring(answer).decode()}")
        session = features.find(tag(NS_SESSION, "session"))
        if session is not None and session.find(tag(NS_SESSION, "optional")) is None:
            self._send_raw(f"<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>")
            await self._next(deadline)
        return bound
