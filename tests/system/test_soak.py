"""Soak (issue 9, docs/security.md "Soak"): two federating Waddles under a bounded run of mixed
traffic, with each server's RSS and open file descriptors sampled every two seconds.

The run lasts WADDLE_SOAK_SECONDS (90 by default, the CI form; 600 is the full form):

  WADDLE_SOAK_SECONDS=600 WADDLE_BIN=build/waddle \\
      /usr/bin/python3 -m pytest tests/system -q -s -k soak

Throughout the run, at a moderate steady rate (about 200 stanzas a second through each server):
- chat across the federation: users of a.test and b.test in pairs send each other numbered
  messages; each must be delivered or bounced to its sender: sent = delivered + bounced;
- a room on a.test, watched by one of its users: users of b.test join it, say something,
  wait for the room's echo and leave, over and over; each of their room messages must reach
  the watcher or bounce;
- reconnects: a user on each server logs in, sends one numbered message across the federation,
  waits until it is delivered or bounced, and logs out;
- bad input, one connection a second, to each server in turn: a stream opened with junk before
  authentication (<not-well-formed/>, <invalid-namespace/>, <host-unknown/>), an unfinished
  element over the limit before authentication (<policy-violation/>), an authenticated raw
  server stream that sends a stanza with a spoofed 'from' (<invalid-from/>, and the stanza is
  not delivered), and connections dropped in the middle of a TLS handshake (after STARTTLS on
  the client or the server port, or on the client direct TLS port).

After the warm-up (the first 20 % of the run), the reconnects and the bad input pause until
their connections are gone, and the descriptor count of each server is read (the reference).
At the end, once the traffic has stopped, every message is settled and the connections that
closed are gone (waited on for up to 30 s), each server's descriptor count must be back at (not
above) its reference, and (on a server not built with AddressSanitizer, whose quarantine holds
freed memory) its RSS at the end of the traffic must be within RSS_GROWTH_KIB of its RSS at
the end of the warm-up.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Optional
from xml.sax.saxutils import escape, quoteattr

import pytest

from crowd import LightClient
from federation import RawS2s, message_xml, metric_sum
from light_c2s import NS_CLIENT, NS_STANZAS, tag
from rawxmpp import NS_SASL, NS_TLS, RawXmpp, stream_header
from waddle_client import PASSWORD, run
from waddle_server import S2S_PORT, WaddleServer, sanitized_server

A, B = "a.test", "b.test"
ROOM = f"soak@conference.{A}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"
C = f"{{{NS_CLIENT}}}"

SECONDS = float(os.environ.get("WADDLE_SOAK_SECONDS", "90"))
WARMUP = 0.2  # of the run
SAMPLE_EVERY = 2.0  # seconds between samples of RSS and descriptors
PAIRS = 4  # chatting pairs: a0..a3@a.test with b0..b3@b.test
CHAT_EVERY = 0.2  # seconds between two messages of one sender: 40 messages a second in all
JOINERS = 4  # m0..m3@b.test join and leave the room
ROOM_MESSAGES = 3  # what a joiner says each time it is in the room
BAD_EVERY = 1.0  # seconds between two bad connections
WAIT = 20.0  # deadline of any one expected answer
PREAUTH_JUNK = 16 * 1024  # more than max_unauthenticated_stanza_size (10 KiB)
# RSS growth allowed from the end of the warm-up to the end of the traffic. Measured on the
# release binary (docs/security.md, "Soak"): 12 to 64 KiB in the 90 s form, 72 to 108 KiB in
# the 600 s one, on an RSS of 16 MiB. The bound leaves room for what is in flight when the
# last sample is taken (a few TLS sessions of the reconnects and the bad input, some 100 KiB
# each at most) and still catches a leak of 12 KiB per connection (some 170 connections to
# each server after the warm-up), or 150 bytes per stanza (some 14,000), in the 90 s form.
RSS_GROWTH_KIB = 2 * 1024
S2S_ACTIVE = "waddle_s2s_connections_active"

SANITIZED = sanitized_server()


# --------------------------------------------------------------------------- /proc


def status_kib(pid: int, key: str = "VmRSS") -> int:
    """A figure of /proc/PID/status in KiB: VmRSS (resident), RssAnon (its anonymous part:
    the heap and the stacks; the rest is mostly code and libraries paged in from files)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Samples:
    """(seconds since the traffic started, RSS in KiB, its anonymous part in KiB, open
    descriptors) of one server."""
    srv: WaddleServer
    rows: list[tuple[float, int, int, int]] = field(default_factory=list)

    def take(self, t: float) -> tuple[float, int, int, int]:
        pid = self.srv.pid
        assert self.srv.running(), f"{self.srv.domain} exited:\n{self.srv.log_tail(60)}"
        self.rows.append((t, status_kib(pid), status_kib(pid, "RssAnon"), fd_count(pid)))
        return self.rows[-1]


# --------------------------------------------------------------------------- accounting


class Tally:
    """Numbered messages: each is delivered (its receiver got it) or bounced (its sender got
    an error for it), once. What arrives and was never sent is kept in `strays`."""

    def __init__(self, what: str):
        self.what = what
        self.sent: dict[str, asyncio.Event] = {}
        self.delivered: set[str] = set()
        self.bounced: dict[str, str] = {}  # id -> condition
        self.twice: list[str] = []
        self.strays: list[str] = []
        self._changed = asyncio.Event()

    def sending(self, mid: str) -> asyncio.Event:
        assert mid not in self.sent, mid
        self.sent[mid] = asyncio.Event()
        return self.sent[mid]

    def _settle(self, mid: str) -> bool:
        if mid not in self.sent:
            self.strays.append(mid)
            return False
        if mid in self.delivered or mid in self.bounced:
            self.twice.append(mid)
            return False
        self.sent[mid].set()
        self._changed.set()
        return True

    def deliver(self, mid: str) -> None:
        if self._settle(mid):
            self.delivered.add(mid)

    def bounce(self, mid: str, condition: str) -> None:
        if self._settle(mid):
            self.bounced[mid] = condition

    @property
    def lost(self) -> int:
        return len(self.sent) - len(self.delivered) - len(self.bounced)

    async def settled(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.lost > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    def summary(self) -> str:
        return (f"{self.what}: sent {len(self.sent)}, delivered {len(self.delivered)}, "
                f"bounced {len(self.bounced)}, lost {self.lost}")

    def check(self) -> None:
        unsettled = sorted(m for m, ev in self.sent.items() if not ev.is_set())
        assert self.lost == 0, f"{self.summary()}; e.g. {unsettled[:10]}"
        assert not self.twice, f"{self.what}: delivered or bounced twice: {self.twice[:10]}"
        assert not self.strays, f"{self.what}: received but never sent: {self.strays[:10]}"


def error_condition(el: ET.Element) -> str:
    err = el.find(C + "error")
    if err is not None:
        for child in err:
            if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                return child.tag.rsplit("}", 1)[1]
    return "?"


def soak_id(el: ET.Element) -> Optional[str]:
    """The number of a test message: its id, or (on a bounce that lost it) its body."""
    mid = el.get("id", "")
    if mid.startswith(("c-", "r-", "g-")):
        return mid
    body = el.findtext(C + "body") or ""
    return body[len("soak:"):] if body.startswith("soak:") else None


# --------------------------------------------------------------------------- clients


class SoakClient(LightClient):
    """A light client that answers XEP-0199 pings (a silent session is pinged after
    ping_interval), hands numbered chat messages and their bounces to a Tally, and lets a
    caller wait for an element it is about to cause."""

    def __init__(self, srv: WaddleServer, user: str, resource: str, chats: Tally,
                 spoofed: list[str]):
        super().__init__(srv.ip, srv.port, srv.domain, user, PASSWORD, resource=resource,
                         timeout=WAIT)
        self.chats = chats
        self.spoofed = spoofed
        self.waiters: list[tuple[Callable[[ET.Element], bool], asyncio.Future]] = []
        self.on_element = self._element

    def _element(self, el: ET.Element) -> None:
        if (el.tag == C + "iq" and el.get("type") == "get"
                and el.find(tag(NS_PING, "ping")) is not None):
            to = f" to={quoteattr(el.get('from'))}" if el.get("from") else ""
            self.send(f"<iq type='result' id={quoteattr(el.get('id', ''))}{to}/>")
            return
        if el.tag == C + "message":
            if "spoof" in (el.findtext(C + "body") or ""):
                self.spoofed.append(f"{self.jid} got {ET.tostring(el).decode()[:300]}")
            mid = soak_id(el)
            if mid is not None and mid.startswith("c-"):
                if el.get("type") == "error":
                    self.chats.bounce(mid, error_condition(el))
                else:
                    self.chats.deliver(mid)
        for pred, fut in list(self.waiters):
            if not fut.done() and pred(el):
                fut.set_result(el)
                self.waiters.remove((pred, fut))

    def expect(self, pred: Callable[[ET.Element], bool]) -> asyncio.Future:
        """A future for the first element after now that matches pred (register it before
        sending what causes the element)."""
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((pred, fut))
        return fut

    async def wait(self, fut: asyncio.Future, what: str,
                   timeout: float = WAIT) -> ET.Element:
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.jid}: no {what} within {timeout}s"
                                 f" ({self.closed_reason or 'connected'})") from None

    async def close(self) -> None:
        if self._writer is not None:
            await super().close()
            self._writer = None

    def chat(self, to: str, mid: str) -> None:
        self.send(f"<message to={quoteattr(to)} type='chat' id={quoteattr(mid)}>"
                  f"<body>soak:{escape(mid)}</body></message>")


def muc_codes(el: ET.Element) -> set[str]:
    return {s.get("code") for s in el.iter(tag(NS_MUC_USER, "status"))}


def self_presence(nick: str, available: bool) -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        if el.tag != C + "presence" or el.get("from") != f"{ROOM}/{nick}":
            return False
        if el.get("type") == "error":
            return True
        return ((el.get("type") == "unavailable") != available) and "110" in muc_codes(el)
    return pred


# --------------------------------------------------------------------------- pausing


class Gate:
    """Lets the reconnects and the bad input pause at a quiet point: `pause()` waits until
    every actor has finished its current round (and holds the next ones) until `resume()`."""

    def __init__(self):
        self.open = asyncio.Event()
        self.open.set()
        self.busy = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def enter(self) -> None:
        await self.open.wait()
        self.busy += 1
        self.idle.clear()

    def leave(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self.idle.set()

    async def pause(self, timeout: float) -> None:
        self.open.clear()
        await asyncio.wait_for(self.idle.wait(), timeout)

    def resume(self) -> None:
        self.open.set()


# --------------------------------------------------------------------------- bad input


def client_hello(server_name: str) -> bytes:
    """The first flight of a TLS client (its ClientHello), made without a socket."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def drop_mid_tls(sock: socket.socket, domain: str, whole_hello: bool) -> None:
    """Half a ClientHello and close; or the whole of it, read (some of) the server's answer
    and close."""
    hello = client_hello(domain)
    sock.settimeout(10)
    if whole_hello:
        sock.sendall(hello)
        data = sock.recv(4096)
        assert data, "the server closed the connection instead of answering the ClientHello"
    else:
        sock.sendall(hello[:len(hello) // 2])
    sock.close()


@dataclass
class BadInput:
    servers: dict[str, WaddleServer]
    pki: object
    refused: dict[str, int] = field(default_factory=dict)  # stream error -> count
    dropped: dict[str, int] = field(default_factory=dict)  # where -> count
    round: int = 0

    def other(self, domain: str) -> str:
        return B if domain == A else A

    def _refused(self, raw: RawXmpp, condition: str) -> None:
        raw.assert_stream_error(condition, 10)
        self.refused[condition] = self.refused.get(condition, 0) + 1

    def junk(self, srv: WaddleServer, variant: int) -> None:
        """Junk before authentication: a malformed element after a good stream header, a
        header in the wrong namespace, or one for a domain the server does not serve."""
        condition = ("not-well-formed", "invalid-namespace", "host-unknown")[variant % 3]
        raw = RawXmpp(srv.ip, srv.port, domain=srv.domain, timeout=10)
        try:
            if condition == "not-well-formed":
                raw.open_stream()
                raw.send("<foo></bar>")
            elif condition == "invalid-namespace":
                raw.send(stream_header(to=srv.domain, ns="jabber:wrong"))
            else:
                raw.send(stream_header(to="unknown.example"))
            self._refused(raw, condition)
        finally:
            raw.close()

    def oversized(self, srv: WaddleServer, variant: int) -> None:
        raw = RawXmpp(srv.ip, srv.port, domain=srv.domain, timeout=10)
        try:
            raw.tls_stream()
            raw.send_chunked(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>" + "A" * PREAUTH_JUNK,
                             chunk=4096)
            self._refused(raw, "policy-violation")
        finally:
            raw.close()

    def spoof(self, srv: WaddleServer, variant: int) -> None:
        """An authenticated stream from the other domain whose stanza claims another one."""
        local = self.other(srv.domain)
        frm = "mallory@evil.test/x" if variant % 2 == 0 else f"admin@{srv.domain}/x"
        raw = RawS2s(srv.ip, local, srv.domain, *self.pki.cert(local), self.pki.ca.cert)
        try:
            raw.authenticate()
            to = f"{'a' if srv.domain == A else 'b'}0@{srv.domain}/soak"
            raw.send(message_xml(frm, to, f"spoof {self.round}", f"spoof-{self.round}"))
            self._refused(raw, "invalid-from")
        finally:
            raw.close()

    def mid_tls(self, srv: WaddleServer, variant: int) -> None:
        whole = (variant // 3) % 2 == 1
        kind = ("c2s-starttls", "c2s-direct-tls", "s2s-starttls")[variant % 3]
        if kind == "c2s-direct-tls":
            sock = socket.create_connection((srv.ip, srv.direct_tls_port), timeout=10)
        else:
            if kind == "c2s-starttls":
                raw = RawXmpp(srv.ip, srv.port, domain=srv.domain, timeout=10)
                raw.open_stream()
            else:
                raw = RawXmpp(srv.ip, S2S_PORT, domain=srv.domain, timeout=10)
                raw.open_stream(stream_header(
                    to=srv.domain, ns="jabber:server",
                    extra=f" from='{self.other(srv.domain)}'"
                          " xmlns:db='jabber:server:dialback'"))
            raw.send(f"<starttls xmlns='{NS_TLS}'/>")
            raw.expect(tag(NS_TLS, "proceed"))
            sock = raw.sock
        try:
            drop_mid_tls(sock, srv.domain, whole)
        finally:
            sock.close()
        key = f"{kind}{' (after the ClientHello)' if whole else ''}"
        self.dropped[key] = self.dropped.get(key, 0) + 1

    def next(self) -> None:
        """One bad connection: the servers in turn, each getting junk, an oversized element,
        a spoofed stanza and a dropped handshake in turn (variants cycling within each)."""
        i = self.round
        srv = self.servers[(A, B)[i % 2]]
        kinds = (self.junk, self.oversized, self.spoof, self.mid_tls)
        kinds[(i // 2) % len(kinds)](srv, i // (2 * len(kinds)))
        self.round += 1


# --------------------------------------------------------------------------- the run


def wait_fds(srv: WaddleServer, done: Callable[[int], bool], timeout: float) -> int:
    """Polls the descriptor count (bounded) until done(count); returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = fd_count(srv.pid)
        if done(n) or time.monotonic() >= deadline:
            return n
        time.sleep(0.1)  # polling /proc under the deadline above


def steady_fds(srv: WaddleServer, timeout: float = 15.0) -> int:
    """The descriptor count once it has not changed for a second (bounded)."""
    deadline = time.monotonic() + timeout
    last, since = fd_count(srv.pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)  # polling /proc under the deadline above
        n = fd_count(srv.pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return n
    raise AssertionError(f"{srv.domain}: the descriptor count did not settle within "
                         f"{timeout}s (last {last})")


def fd_kinds(pid: int) -> str:
    """What the descriptors are (for a failure message): counts by kind."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = os.path.basename(target) if target.startswith("/") else target.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))


@pytest.mark.soak
@pytest.mark.memory
def test_soak_mixed_federated_traffic_keeps_memory_and_descriptors_flat(fed, pki):
    assert SECONDS >= 30, "WADDLE_SOAK_SECONDS: at least 30"
    chatters_a = [f"a{i}" for i in range(PAIRS)]
    chatters_b = [f"b{i}" for i in range(PAIRS)]
    joiners = [f"m{i}" for i in range(JOINERS)]
    quiet = {"server": {"log_level": "info"}}  # debug would write ~100 lines a second
    a = fed.server(A, overrides=quiet, users=(*chatters_a, "host", "ra"))
    b = fed.server(B, overrides=quiet, users=(*chatters_b, *joiners, "rb"))
    fed.start()
    servers = {A: a, B: b}
    samples = {d: Samples(s) for d, s in servers.items()}
    bad = BadInput(servers, pki)
    counts = {"room joins": 0, "reconnects": 0}
    figures: dict[str, dict] = {A: {}, B: {}}

    async def body():
        clients: list[SoakClient] = []
        try:
            await soak(clients)
        finally:
            for c in clients:
                await c.close()

    async def soak(clients: list[SoakClient]) -> None:
        chats = Tally("chat")
        room = Tally("room")
        spoofed: list[str] = []
        stop = asyncio.Event()
        gate = Gate()

        def client(srv, user, resource="soak") -> SoakClient:
            clients.append(SoakClient(srv, user, resource, chats, spoofed))
            return clients[-1]

        # ---- the steady part: chatters, the room's watcher on a.test, joiners on b.test
        stable = [client(a, u) for u in chatters_a] + [client(b, u) for u in chatters_b]
        host = client(a, "host")
        members = [client(b, u) for u in joiners]
        for c in stable + [host] + members:
            await c.login()

        def on_room(el: ET.Element) -> None:  # the watcher counts what the joiners said
            if (el.tag == C + "message" and el.get("type") == "groupchat"
                    and el.find(tag(NS_DELAY, "delay")) is None):
                mid = soak_id(el)
                if mid is not None:
                    room.deliver(mid)
        host_handler = host.on_element
        host.on_element = lambda el: (host_handler(el), on_room(el))
        joined = host.expect(self_presence("host", True))
        host.send(f"<presence to='{ROOM}/host'><x xmlns='{NS_MUC}'/></presence>")
        el = await host.wait(joined, "self-presence in the new room")
        assert el.get("type") != "error", ET.tostring(el).decode()

        loop = asyncio.get_running_loop()
        t0 = loop.time()

        def now() -> float:
            return loop.time() - t0

        async def chatter(c: SoakClient, to: str) -> None:
            n = 0
            while not stop.is_set():
                mid = f"c-{c.user}-{n}"
                chats.sending(mid)
                c.chat(to, mid)
                n += 1
                await asyncio.sleep(CHAT_EVERY)  # the pace of this sender

        async def joiner(c: SoakClient) -> None:
            nick, n = c.user, 0
            while not stop.is_set():
                joined = c.expect(self_presence(nick, True))
                c.send(f"<presence to={quoteattr(f'{ROOM}/{nick}')}>"
                       f"<x xmlns='{NS_MUC}'/></presence>")
                el = await c.wait(joined, "self-presence after joining the room")
                assert el.get("type") != "error", ET.tostring(el).decode()
                counts["room joins"] += 1
                echoes = []
                for _ in range(ROOM_MESSAGES):
                    mid = f"g-{nick}-{n}"
                    n += 1
                    echoes.append(c.expect(
                        lambda el, mid=mid: el.tag == C + "message" and soak_id(el) == mid))
                    room.sending(mid)
                    c.send(f"<message to='{ROOM}' type='groupchat' id='{mid}'>"
                           f"<body>soak:{mid}</body></message>")
                    await asyncio.sleep(0.3)  # the pace of this occupant
                for fut in echoes:
                    el = await c.wait(fut, "echo of a room message")
                    if el.get("type") == "error":
                        room.bounce(soak_id(el), error_condition(el))
                left = c.expect(self_presence(nick, False))
                c.send(f"<presence to={quoteattr(f'{ROOM}/{nick}')} type='unavailable'/>")
                await c.wait(left, "self-presence after leaving the room")
                await asyncio.sleep(0.5)  # between two visits

        async def reconnecter(srv: WaddleServer, user: str, to: str) -> None:
            n = 0
            while not stop.is_set():
                await gate.enter()
                try:
                    c = client(srv, user, f"r{n}")
                    await c.login()
                    counts["reconnects"] += 1
                    mid = f"c-{user}-{n}"
                    settled = chats.sending(mid)
                    c.chat(to, mid)
                    n += 1
                    try:
                        await asyncio.wait_for(settled.wait(), WAIT)
                    except asyncio.TimeoutError:
                        raise AssertionError(f"{mid} neither delivered nor bounced "
                                             f"within {WAIT}s") from None
                    await c.close()
                    clients.remove(c)
                finally:
                    gate.leave()
                await asyncio.sleep(0.5)  # between two sessions

        async def bad_input() -> None:
            while not stop.is_set():
                await gate.enter()
                try:
                    await asyncio.to_thread(bad.next)
                finally:
                    gate.leave()
                await asyncio.sleep(BAD_EVERY)

        actors = [asyncio.ensure_future(chatter(ca, f"{cb.user}@{B}/soak"))
                  for ca, cb in zip(stable[:PAIRS], stable[PAIRS:])]
        actors += [asyncio.ensure_future(chatter(cb, f"{ca.user}@{A}/soak"))
                   for ca, cb in zip(stable[:PAIRS], stable[PAIRS:])]
        actors += [asyncio.ensure_future(joiner(m)) for m in members]
        actors += [asyncio.ensure_future(reconnecter(a, "ra", f"b0@{B}/soak")),
                   asyncio.ensure_future(reconnecter(b, "rb", f"a0@{A}/soak")),
                   asyncio.ensure_future(bad_input())]

        async def watch(until: float) -> None:
            """Samples until `until` (seconds into the run); an actor that failed ends it."""
            while now() < until:
                for s in samples.values():
                    await asyncio.to_thread(s.take, now())
                failed = [t for t in actors if t.done()]
                if failed:
                    await failed[0]  # raises its exception
                    raise AssertionError("an actor ended before the run did")
                await asyncio.sleep(min(SAMPLE_EVERY, max(until - now(), 0)))

        try:
            warm = SECONDS * WARMUP
            await watch(warm)
            # The reference: reconnects and bad input paused, their connections gone.
            await gate.pause(60)
            for d, srv in servers.items():
                figures[d]["fds_ref"] = await asyncio.to_thread(steady_fds, srv)
                figures[d]["s2s_ref"] = metric_sum(srv, S2S_ACTIVE)
                _, figures[d]["rss_ref"], figures[d]["anon_ref"], _ = samples[d].take(now())
            gate.resume()
            await watch(SECONDS)
            for d, srv in servers.items():
                _, figures[d]["rss_end"], figures[d]["anon_end"], _ = samples[d].take(now())
        finally:
            stop.set()
            gate.resume()
            done, pending = await asyncio.wait(actors, timeout=3 * WAIT)
            for t in pending:
                t.cancel()
        for t in done:
            if t.exception() is not None:
                raise t.exception()
        assert not pending, f"{len(pending)} actors did not stop within {3 * WAIT}s"
        counts["seconds"] = now()
        settled = await chats.settled(30) and await room.settled(30)
        print(f"soak: {chats.summary()}; {room.summary()}")
        assert settled, f"not settled 30 s after the traffic stopped: {chats.summary()}; " \
                        f"{room.summary()}"
        chats.check()
        room.check()
        assert not spoofed, f"a spoofed stanza was delivered: {spoofed[:3]}"
        counts.update(chats=chats.summary(), room=room.summary(),
                      bounce_conditions=sorted(set(chats.bounced.values())
                                               | set(room.bounced.values())))
        # The closed connections are gone: each server is back at its reference.
        for d, srv in servers.items():
            ref = figures[d]["fds_ref"]
            figures[d]["fds_end"] = await asyncio.to_thread(
                wait_fds, srv, lambda n, ref=ref: n <= ref, 30)
            figures[d]["rss_quiet"] = status_kib(srv.pid)
            figures[d]["fd_kinds"] = fd_kinds(srv.pid)
            text = srv.metrics_text()
            figures[d]["refused"] = metric_sum(text, "waddle_connections_refused_total")
            figures[d]["s2s_end"] = metric_sum(text, S2S_ACTIVE)
            figures[d]["stanzas"] = "c2s in {:g}, s2s in {:g}, s2s out {:g}".format(*(
                metric_sum(text, f"waddle_{m}_total") for m in (
                    "c2s_stanzas_received", "s2s_stanzas_received", "s2s_stanzas_sent")))

    run(body, timeout=SECONDS + 300)

    lines = []
    for d, s in samples.items():
        f = figures[d]
        rows = s.rows
        peak = max(r[1] for r in rows)
        fds = [r[3] for r in rows]
        tenths = [min(rows, key=lambda r, k=k: abs(r[0] - k * SECONDS / 10))[1]
                  for k in range(11)]
        lines.append(
            f"{d}: RSS start {rows[0][1]} KiB, after warm-up {f['rss_ref']} KiB, peak {peak} "
            f"KiB, end {f['rss_end']} KiB ({f['rss_end'] - f['rss_ref']:+d} KiB), quiet "
            f"{f['rss_quiet']} KiB (by tenths of the run: {' '.join(map(str, tenths))}); "
            f"anonymous after warm-up {f['anon_ref']} KiB, end {f['anon_end']} KiB "
            f"({f['anon_end'] - f['anon_ref']:+d} KiB); "
            f"fds after warm-up {f['fds_ref']}, during {min(fds)}.."
            f"{max(fds)}, end {f['fds_end']} ({f['fd_kinds']}); S2S streams {f['s2s_ref']:g} "
            f"after warm-up, {f['s2s_end']:g} at the end; refused by caps "
            f"{f['refused']:g}; stanzas {f['stanzas']}")
    print(f"soak {counts['seconds']:.0f} s ({'sanitized' if SANITIZED else 'release'}): "
          f"{counts['chats']}; {counts['room']}; room joins {counts['room joins']}; "
          f"reconnects {counts['reconnects']}; bad connections refused {sum(bad.refused.values())}"
          f" {bad.refused}, dropped mid-TLS {sum(bad.dropped.values())} {bad.dropped}; "
          f"bounces {counts['bounce_conditions']}\n  " + "\n  ".join(lines))
    for d, srv in servers.items():
        f = figures[d]
        assert f["refused"] == 0, f"{d} refused connections at its caps: {srv.metrics_text()}"
        assert f["fds_end"] <= f["fds_ref"], (
            f"{d}: {f['fds_end']} descriptors open 30 s after the traffic stopped, "
            f"{f['fds_ref']} after the warm-up ({f['fd_kinds']}; S2S streams open "
            f"{f['s2s_ref']:g} after the warm-up, {f['s2s_end']:g} at the end)")
        grown = f["rss_end"] - f["rss_ref"]
        assert SANITIZED or grown < RSS_GROWTH_KIB, (
            f"{d}: RSS grew by {grown} KiB from the end of the warm-up ({f['rss_ref']} KiB) "
            f"to the end of the traffic ({f['rss_end']} KiB)")
