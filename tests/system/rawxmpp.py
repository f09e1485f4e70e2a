"""A raw-socket XMPP client for tests that must send bytes no real client would send.

It speaks just enough XMPP to get to the point under test: open a stream, read features,
STARTTLS (certificate verification off), SASL PLAIN, resource binding. Then a test sends
arbitrary bytes and reads until the server closes the connection, with a deadline on every
read. Everything received (decrypted) is kept in `received`; every top-level element of
every server stream is kept, parsed, in `elements`.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections import deque
from typing import Callable, Optional

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

DEFAULT_DOMAIN = "example.test"
DEFAULT_TIMEOUT = 10.0


def tag(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def local_name(t: str) -> str:
    return t.rsplit("}", 1)[-1]


def stream_header(to: str = DEFAULT_DOMAIN, ns: str = NS_CLIENT, stream_ns: str = NS_STREAMS,
                  version: str = "1.0", extra: str = "", xml_decl: bool = True) -> str:
    decl = "<?xml version='1.0'?>" if xml_decl else ""
    to_attr = f" to='{to}'" if to is not None else ""
    return (f"{decl}<stream:stream xmlns='{ns}' xmlns:stream='{stream_ns}'{to_attr}"
            f" version='{version}'{extra}>")


class StreamClosed(AssertionError):
    """The server closed the stream or the connection while we waited for an element."""


class RawXmpp:
    def __init__(self, ip: str, port: int, domain: str = DEFAULT_DOMAIN,
                 timeout: float = DEFAULT_TIMEOUT, direct_tls: bool = False,
                 source: Optional[str] = None, rcvbuf: Optional[int] = None):
        """source: the local address to connect from (a loopback address of its own counts
        apart from every other client in the server's per-address limits); rcvbuf: the
        socket's receive buffer, set before connecting (the kernel then holds at most about
        that much of what the server writes and this client does not read)."""
        self.domain = domain
        self.timeout = timeout
        self.sock: socket.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source:
                self.sock.bind((source, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((ip, port))
        except OSError:
            self.sock.close()
            raise
        self.tls = False
        self.peer_cert_der: Optional[bytes] = None
        self.received = bytearray()  # every byte received, decrypted, all streams
        self.elements: list[ET.Element] = []  # every top-level element, all streams
        self.eof = False  # the connection is closed (FIN, RST, TLS close)
        self.eof_error: Optional[BaseException] = None
        self.send_error: Optional[BaseException] = None
        self.stream_count = 0
        self._reset_parser()
        if direct_tls:
            self._wrap_tls()

    # ------------------------------------------------------------------ plumbing

    def _reset_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: Optional[ET.Element] = None
        self._queue: deque[ET.Element] = deque()
        self.stream_open = False  # the server's <stream:stream> header arrived
        self.stream_attrs: dict[str, str] = {}
        self.stream_closed = False  # the server's </stream:stream> arrived
        self.parse_error: Optional[ET.ParseError] = None

    def _feed(self, data: bytes) -> None:
        if self.parse_error is not None:
            return
        try:
            self._parser.feed(data)
            for event, el in self._parser.read_events():
                if event == "start":
                    if self._depth == 0:
                        self._root = el
                        self.stream_open = True
                        self.stream_attrs = dict(el.attrib)
                        self.stream_count += 1
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        self._queue.append(el)
                        self.elements.append(el)
                        if self._root is not None:
                            self._root.remove(el)
                    elif self._depth == 0:
                        self.stream_closed = True
        except ET.ParseError as e:
            self.parse_error = e

    def _recv(self, timeout: float) -> bool:
        """Reads once. Returns False if nothing arrived within timeout."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            self.eof = True
            self.eof_error = e
            return True
        if not chunk:
            self.eof = True
            return True
        self.received += chunk
        self._feed(chunk)
        return True

    def _readable_now(self) -> bool:
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True  # let recv report the problem
        return bool(r)

    def drain(self) -> None:
        """Reads whatever is available right now without waiting."""
        while not self.eof and self._readable_now():
            if not self._recv(0.2):
                break

    def send(self, data: str | bytes) -> bool:
        """Sends data. Returns False (and records send_error) if the connection broke."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError) as e:
            self.send_error = e
            return False

    def send_chunked(self, data: str | bytes, chunk: int = 16384) -> int:
        """Sends data in chunks, reading between chunks; stops once the server has closed
        the connection or sent a stream error. Returns the number of bytes sent."""
        if isinstance(data, str):
            data = data.encode()
        sent = 0
        while sent < len(data):
            if not self.send(data[sent:sent + chunk]):
                break
            sent += min(chunk, len(data) - sent)
            self.drain()
            if self.eof or self.stream_closed or self.stream_error_conditions():
                break
        return sent

    # ------------------------------------------------------------------ reading

    def next_element(self, timeout: Optional[float] = None) -> ET.Element:
        """The next top-level element of the current server stream."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self._queue:
                return self._queue.popleft()
            if self.stream_closed or self.eof:
                raise StreamClosed(self._describe("stream closed while waiting for an element"))
            if self.parse_error is not None:
                raise AssertionError(self._describe(f"server sent unparsable XML: {self.parse_error}"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(self._describe(f"no element from the server within {timeout}s"))
            self._recv(remaining)

    def expect(self, expected_tag: str, timeout: Optional[float] = None) -> ET.Element:
        el = self.next_element(timeout)
        if el.tag != expected_tag:
            raise AssertionError(self._describe(
                f"expected {expected_tag}, got {el.tag}: {ET.tostring(el).decode()}"))
        return el

    def collect_until(self, done: Callable[["RawXmpp"], bool],
                      timeout: Optional[float] = None) -> bool:
        """Reads until done(self) is true or the connection closes. Returns done(self)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not done(self) and not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._recv(remaining)
        return done(self)

    def collect_until_closed(self, timeout: Optional[float] = None) -> bool:
        """Reads until the server closes the connection. Returns True if it did in time."""
        return self.collect_until(lambda r: r.eof, timeout)

    # ------------------------------------------------------------------ XMPP steps

    def open_stream(self, header: Optional[str] = None, to: str = None,
                    timeout: Optional[float] = None) -> ET.Element:
        """Sends a stream header and returns the server's <stream:features/>."""
        self._reset_parser()
        self.send(header if header is not None else stream_header(to or self.domain))
        return self.expect(tag(NS_STREAMS, "features"), timeout)

    def restart_stream_raw(self, data: str | bytes) -> bool:
        """Starts a new server stream (fresh parser) by sending arbitrary bytes."""
        self._reset_parser()
        return self.send(data)

    def _wrap_tls(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True
        self.peer_cert_der = self.sock.getpeercert(binary_form=True)

    def starttls(self) -> None:
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.expect(tag(NS_TLS, "proceed"))
        self._wrap_tls()

    def auth_plain_request(self, user: str, password: str, authzid: str = "") -> str:
        payload = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
        return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>"

    def auth_plain(self, user: str, password: str) -> ET.Element:
        """Sends SASL PLAIN; returns the server's answer (<success/> or <failure/>)."""
        self.send(self.auth_plain_request(user, password))
        return self.next_element()

    def bind(self, resource: str = "raw") -> str:
        self.send(f"<iq type='set' id='bind-1'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        el = self.next_element()
        if el.tag != tag(NS_CLIENT, "iq") or el.get("type") != "result":
            raise AssertionError(self._describe(f"bind failed: {ET.tostring(el).decode()}"))
        jid = el.find(f"{tag(NS_BIND, 'bind')}/{tag(NS_BIND, 'jid')}")
        return jid.text if jid is not None else ""

    def tls_stream(self) -> ET.Element:
        """Connect-to-TLS: header, features, STARTTLS, new header. Returns the TLS features."""
        if not self.tls:
            self.open_stream()
            self.starttls()
        return self.open_stream()

    def login(self, user: str, password: str, resource: Optional[str] = "raw") -> None:
        """TLS, SASL PLAIN, stream restart, and (unless resource is None) resource binding."""
        self.tls_stream()
        answer = self.auth_plain(user, password)
        if answer.tag != tag(NS_SASL, "success"):
            raise AssertionError(self._describe(
                f"PLAIN login as {user} failed: {ET.tostring(answer).decode()}"))
        self.open_stream()
        if resource is not None:
            self.bind(resource)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # ------------------------------------------------------------------ results

    def stream_error_elements(self) -> list[ET.Element]:
        return [e for e in self.elements if e.tag == tag(NS_STREAMS, "error")]

    def stream_error_conditions(self) -> list[str]:
        conds = []
        for err in self.stream_error_elements():
            for child in err:
                if child.tag.startswith(f"{{{NS_STREAM_ERRORS}}}") and local_name(child.tag) != "text":
                    conds.append(local_name(child.tag))
        return conds

    def received_text(self, limit: int = 3000) -> str:
        text = self.received.decode(errors="replace")
        if len(text) > limit:
            text = "..." + text[-limit:]
        return text

    def _describe(self, what: str) -> str:
        parse = (f"; the server's XML did not parse: {self.parse_error}"
                 f" (a stream error without a stream header?)" if self.parse_error else "")
        return (f"{what}; eof={self.eof} ({self.eof_error!r}), stream_closed={self.stream_closed},"
                f" send_error={self.send_error!r}{parse}; received: {self.received_text()!r}")

    def assert_stream_error(self, condition: str, timeout: Optional[float] = None) -> None:
        """The server sent exactly the stream error `condition`, closed the stream with
        </stream:stream> and closed the connection."""
        self.collect_until_closed(timeout)
        conds = self.stream_error_conditions()
        assert conds == [condition], self._describe(
            f"expected stream error <{condition}/>, got {conds or 'none'}")
        assert self.stream_closed, self._describe(
            "stream error was not followed by </stream:stream>")
        assert self.eof, self._describe("server did not close the connection")
