"""slixmpp as the real client for Waddle system tests.

`Client` connects to a test server's loopback address, accepts its self-signed certificate,
uses one chosen SASL mechanism, and records everything it receives so that tests can wait
for it with a deadline (`await client.messages.get(pred)`), never with sleeps.

Each test runs its asyncio code in its own event loop through `run()`, which also closes
every client the test left open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import xml.etree.ElementTree as ET
from typing import Any, Callable, Optional

import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import StreamFeatures
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

log = logging.getLogger("waddle.systest.client")

TIMEOUT = 10.0  # default deadline for one expected event
PASSWORD = "correct horse battery staple"
DOMAIN = "example.test"
# Mechanism of clients that do not ask for one. Overridable only to validate this harness
# against another server (e.g. Prosody 0.12, which lacks SCRAM-SHA-256).
DEFAULT_MECH = os.environ.get("WADDLE_SYSTEST_MECH", "SCRAM-SHA-256")
NS_CLIENT = "jabber:client"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"

_LIVE: list["Client"] = []  # clients of the running test, closed by run()


# --------------------------------------------------------------------------- waiting


class Inbox:
    """Received stanzas; get() takes the first one matching a predicate, waiting with a
    deadline if none has arrived yet."""

    def __init__(self, what: str):
        self.what = what
        self.items: list[Any] = []
        self._waiters: list[asyncio.Future] = []

    def put(self, item: Any) -> None:
        self.items.append(item)
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    def take(self, pred: Optional[Callable[[Any], bool]] = None) -> Optional[Any]:
        """The first matching item already received (removed), or None. Never waits."""
        for i, item in enumerate(self.items):
            if pred is None or pred(item):
                return self.items.pop(i)
        return None

    async def get(self, pred: Optional[Callable[[Any], bool]] = None,
                  timeout: float = TIMEOUT, what: str = "") -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            item = self.take(pred)
            if item is not None:
                return item
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = "\n  ".join(str(i) for i in self.items) or "(nothing)"
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or self.what}; "
                    f"received but not matching:\n  {seen}")
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                pass


def bare(jid: Any) -> str:
    return JID(str(jid)).bare


def error_condition(stanza: Any) -> str:
    return stanza["error"]["condition"]


def has_delay(stanza: Any) -> Optional[ET.Element]:
    return stanza.xml.find(f"{{{NS_DELAY}}}delay")


# --------------------------------------------------------------------------- client


class Client(slixmpp.ClientXMPP):
    def __init__(self, server: Any, jid: str, password: str, *,
                 mech: Optional[str] = DEFAULT_MECH, direct_tls: bool = False,
                 register: bool = False):
        super().__init__(jid, password, sasl_mech=mech)
        self.waddle = server
        self.label = jid
        self.wanted_mech = mech
        self.direct_tls = direct_tls
        self.address = (server.ip, server.direct_tls_port if direct_tls else server.port)
        # The test certificate is self-signed: no verification.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in ("xep_0030", "xep_0077", "xep_0092", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)
        # Subscriptions are answered by the tests themselves.
        self.auto_authorize = None
        self.auto_subscribe = False
        # SCRAM without channel binding ("n" GS2 flag): tests pick plain SCRAM-SHA-*.
        mechs = self["feature_mechanisms"]
        default_creds = mechs.sasl_callback

        def creds(required, optional):
            result = default_creds(required, optional)
            result.pop("channel_binding", None)
            return result

        mechs.sasl_callback = creds

        self.messages = Inbox(f"a message for {jid}")
        self.presences = Inbox(f"a presence for {jid}")
        self.roster_pushes = Inbox(f"a roster push for {jid}")
        self.auth_failures: list[str] = []
        self.stream_errors: list[str] = []
        self.mech_used: Optional[str] = None
        self.registration_error: Optional[str] = None
        self.registered = False
        self.disconnect_reason: Any = None
        self._session: asyncio.Future = asyncio.get_event_loop().create_future()
        self._gone: asyncio.Future = asyncio.get_event_loop().create_future()

        self.register_handler(Callback(
            "systest messages", MatchXPath(f"{{{NS_CLIENT}}}message"), self.messages.put))
        self.register_handler(Callback(
            "systest presences", MatchXPath(f"{{{NS_CLIENT}}}presence"), self.presences.put))
        self.add_event_handler("roster_update", self._on_roster_update)
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("no_auth", self._on_no_auth)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("connection_failed", self._on_connection_failed)

        if register:
            # slixmpp 1.8.3 queues every IQ until the session starts, which makes in-band
            # registration (an IQ before authentication) hang; let IQs through.
            self._always_send_everything = True
            # Try registration even if the feature is not advertised (so that a server with
            # registration off must refuse it), and record errors of the form request too.
            self.add_filter("in", self._force_register_feature)
            self.unregister_feature("register", self["xep_0077"].order)
            self.register_feature("register", self._register_feature, restart=False,
                                  order=self["xep_0077"].order)
        _LIVE.append(self)

    # ---- event handlers

    def _on_roster_update(self, iq: Any) -> None:
        if iq["type"] == "set":
            self.roster_pushes.put(iq)

    def _on_session_start(self, _: Any) -> None:
        if not self._session.done():
            self._session.set_result(True)

    def _on_auth_success(self, _: Any) -> None:
        mech = self["feature_mechanisms"].mech
        self.mech_used = mech.name if mech is not None else None

    def _on_failed_auth(self, failure: Any) -> None:
        self.auth_failures.append(failure["condition"])

    def _on_no_auth(self, _: Any) -> None:
        offered = sorted(self["feature_mechanisms"].mech_list)
        self.auth_failures.append(f"(no usable mechanism: wanted {self.wanted_mech},"
                                  f" offered {offered})")

    def _on_stream_error(self, error: Any) -> None:
        self.stream_errors.append(error["condition"])

    def _on_disconnected(self, reason: Any) -> None:
        self.disconnect_reason = reason
        if not self._gone.done():
            self._gone.set_result(reason)

    def _on_connection_failed(self, reason: Any) -> None:
        self.disconnect_reason = f"connection failed: {reason}"
        self.cancel_connection_attempt()  # no reconnection loop
        if not self._gone.done():
            self._gone.set_result(self.disconnect_reason)

    def _force_register_feature(self, stanza: Any) -> Any:
        # (slixmpp's own force_registration misses asyncio's TLS transport)
        if (isinstance(stanza, StreamFeatures) and "mechanisms" not in self.features
                and isinstance(self.socket, (ssl.SSLSocket, ssl.SSLObject))):
            stanza.enable("register")
        return stanza

    async def _register_feature(self, features: Any) -> bool:
        if "mechanisms" in self.features:
            return False  # already authenticated
        try:
            await self["xep_0077"].get_registration(timeout=TIMEOUT)
        except IqError as e:
            self.registration_error = error_condition(e.iq)
            return False
        except IqTimeout:
            self.registration_error = "timeout"
            return False
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        try:
            await iq.send(timeout=TIMEOUT)
            self.registered = True
        except IqError as e:
            self.registration_error = error_condition(e.iq)
        except IqTimeout:
            self.registration_error = "timeout"
        return False

    # ---- DNS: never resolve example.test; connect to the fixture's address

    async def get_dns_records(self, domain, port=None):  # noqa: D401 - slixmpp override
        return [(domain, self.address[0], self.address[1])]

    # ---- connecting

    def describe(self) -> str:
        return (f"{self.label}: mech_used={self.mech_used} auth_failures={self.auth_failures}"
                f" stream_errors={self.stream_errors} registration_error={self.registration_error}"
                f" disconnect_reason={self.disconnect_reason!r}")

    async def attempt(self, timeout: float = TIMEOUT) -> bool:
        """Connects and logs in. True once the session started; False if the server ended
        the attempt (auth failure, stream error, disconnect)."""
        self.connect(address=self.address, use_ssl=self.direct_tls)
        done, _ = await asyncio.wait({self._session, self._gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise AssertionError(f"login neither succeeded nor failed within {timeout}s; "
                                 f"{self.describe()}")
        return self._session.done()

    async def start(self, timeout: float = TIMEOUT) -> "Client":
        if not await self.attempt(timeout):
            raise AssertionError(f"login failed: {self.describe()}")
        return self

    async def online(self, timeout: float = TIMEOUT) -> "Client":
        """Requests the roster, sends initial presence, and waits until the server has
        processed both (an IQ round trip after them)."""
        await self.get_roster(timeout=timeout)
        self.send_presence()
        await self.sync(timeout)
        return self

    async def sync(self, timeout: float = TIMEOUT) -> None:
        """Round trip to the server: everything sent before has been processed, and
        everything the server sent before its answer has been received."""
        iq = self.make_iq_get(queryxmlns=None, ito=self.boundjid.domain)
        iq.append(ET.Element(f"{{{NS_PING}}}ping"))
        try:
            await iq.send(timeout=timeout)
        except IqError:
            pass  # an error answer is an answer too

    async def wait_disconnected(self, timeout: float = TIMEOUT) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(self._gone), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.label} still connected after {timeout}s") from None

    @property
    def gone(self) -> bool:
        return self._gone.done()

    async def close(self, timeout: float = 5.0) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        self.cancel_connection_attempt()
        if self.transport is not None and not self._gone.done():
            try:
                await asyncio.wait_for(self.disconnect(wait=2), timeout)
            except (asyncio.TimeoutError, Exception):
                self.abort()
        elif self.transport is not None:
            self.abort()

    # ---- stanzas

    def chat(self, to: str, body: str, mtype: str = "chat") -> None:
        self.send_message(mto=to, mbody=body, mtype=mtype)

    async def roster_set(self, jid: str, name: Optional[str] = None,
                         timeout: float = TIMEOUT) -> Any:
        iq = self.make_iq_set()
        query = ET.Element(f"{{{NS_ROSTER}}}query")
        item = ET.SubElement(query, f"{{{NS_ROSTER}}}item", {"jid": jid})
        if name:
            item.set("name", name)
        iq.append(query)
        return await iq.send(timeout=timeout)

    async def roster_items(self, timeout: float = TIMEOUT) -> dict[str, dict]:
        """Fetches the roster: {bare jid: {"subscription": ..., "ask": ..., "name": ...}}."""
        iq = self.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        result = await iq.send(timeout=timeout)
        items = {}
        for el in result.xml.iter(f"{{{NS_ROSTER}}}item"):
            items[el.get("jid")] = {"subscription": el.get("subscription", "none"),
                                    "ask": el.get("ask"), "name": el.get("name")}
        return items

    async def expect_message(self, frm: Optional[str] = None, body: Optional[str] = None,
                             mtype: Optional[str] = None, timeout: float = TIMEOUT) -> Any:
        def pred(m):
            if frm is not None and str(m["from"]) != frm and bare(m["from"]) != frm:
                return False
            if body is not None and m["body"] != body:
                return False
            if mtype is not None and m["type"] != mtype:
                return False
            return True
        return await self.messages.get(
            pred, timeout, what=f"message from={frm} body={body!r} type={mtype} to {self.label}")

    async def expect_presence(self, frm: Optional[str] = None, ptype: Optional[str] = None,
                              timeout: float = TIMEOUT,
                              where: Optional[Callable[[Any], bool]] = None) -> Any:
        """ptype: 'available' for presence without a type, else the type attribute;
        where: a further condition on the stanza."""
        def pred(p):
            if frm is not None and str(p["from"]) != frm and bare(p["from"]) != frm:
                return False
            if where is not None and not where(p):
                return False
            actual = p.xml.get("type") or "available"
            return ptype is None or actual == ptype
        return await self.presences.get(
            pred, timeout, what=f"presence from={frm} type={ptype} to {self.label}")


# --------------------------------------------------------------------------- helpers


async def login(server: Any, jid: str, password: str, *, online: bool = True,
                **kwargs: Any) -> Client:
    """A logged-in client (with roster fetched and initial presence sent if online)."""
    c = Client(server, jid, password, **kwargs)
    await c.start()
    if online:
        await c.online()
    return c


async def befriend(a: Client, b: Client) -> None:
    """Mutual subscription between two online clients, following RFC 6121 section 3,
    asserting each step (roster pushes, subscription requests, approvals, presence)."""
    a_bare, b_bare = a.boundjid.bare, b.boundjid.bare
    for (x, y, x_bare, y_bare) in ((a, b, a_bare, b_bare), (b, a, b_bare, a_bare)):
        # x adds y to its roster and asks for a subscription
        await x.roster_set(y_bare)
        x.send_presence(pto=y_bare, ptype="subscribe")
        sub = await y.expect_presence(frm=x_bare, ptype="subscribe")
        assert bare(sub["from"]) == x_bare
        # y approves
        y.send_presence(pto=x_bare, ptype="subscribed")
        await x.expect_presence(frm=y_bare, ptype="subscribed")
        # x now receives y's current presence (RFC 6121 3.1.6: presence of all y's resources)
        await x.expect_presence(frm=str(y.boundjid), ptype="available")
    for x, y_bare in ((a, b_bare), (b, a_bare)):
        items = await x.roster_items()
        assert y_bare in items, f"{y_bare} missing from {x.label}'s roster: {items}"
        assert items[y_bare]["subscription"] == "both", (
            f"{x.label}'s roster item for {y_bare}: {items[y_bare]}")


def run(body: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Runs a test's async body in a fresh event loop with an overall deadline, then
    closes every client it left open."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        try:
            return loop.run_until_complete(asyncio.wait_for(body(), timeout))
        except asyncio.TimeoutError:
            raise AssertionError(f"test body did not finish within {timeout}s") from None
    finally:
        try:
            for c in list(_LIVE):
                try:
                    loop.run_until_complete(c.close())
                except Exception:  # closing must not hide the test's own failure
                    log.exception("closing %s", c.label)
            _LIVE.clear()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
