"""Hundreds of light XMPP clients in one asyncio loop, for room load tests.

slixmpp builds a stanza object tree and runs its handler machinery for every stanza; a room
of 300 occupants sends each of them 300 presences, so 300 slixmpp clients in one process
spend minutes of the test's own CPU on what the servers do in seconds. A `LightClient`
speaks just enough c2s to be a real user (the login of light_c2s.py: STARTTLS without
certificate verification, optional XEP-0077 registration, SASL PLAIN, resource binding; then
initial presence) and then hands every top-level element to a handler; `RoomView` is such a
handler that keeps what one occupant saw of one room.

`Crowd` runs the room scenario of issue 8 ("a room with 300 occupants from another server
... that all join and then receive every one of a series of room messages") against any
server hosting the room: every member joins at once, then a series of numbered groupchat
messages is sent, and for every (message, occupant) the outcome is counted:

  delivered  the occupant received the message;
  bounced    the sender received an error for the message (it never reached the room), or
             the room removed the occupant as unreachable (status 333, which every other
             occupant sees) -- a visible outcome, not a silent one;
  lost       neither: sent = delivered + bounced + lost.

The phases the room tests of tests/system and tests/interop share are here too, with what
they print and assert: `open_room()`, `register_all()`, `join_room()` (-> `Joins`),
`run_series()` (-> `Tally`), `describe_joins()`, `describe_series()` and
`assert_formed_and_nothing_lost()`; also `case()`, a test case's pytest parameter.

Every wait has a deadline; nothing sleeps in hope.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from xml.sax.saxutils import escape, quoteattr

import pytest

from light_c2s import NS_CLIENT, NS_STANZAS, LightC2s, tag

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

C = f"{{{NS_CLIENT}}}"


# --------------------------------------------------------------------------- one client


class LightClient(LightC2s):
    """One c2s session: `await login()`, then `send()`; every top-level element received
    after login goes to `on_element` (a callable taking the element)."""

    def __init__(self, ip: str, port: int, domain: str, user: str, password: str,
                 resource: str = "crowd", timeout: float = 20.0):
        super().__init__(ip, port, domain, user, password, resource)
        self.timeout = timeout
        self.jid = f"{user}@{domain}/{resource}"
        self.on_element: Callable[[ET.Element], None] = lambda el: None
        self.closed_reason = ""  # set when the server ended the stream or connection
        self._task: Optional[asyncio.Task] = None

    async def login(self, register: bool = False, presence: bool = True) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        self.jid = await self.negotiate(deadline, register=register)
        if presence:
            self._writer.write(b"<presence/>")
        for el in self.take_pending():  # anything that came with the last answer
            self.on_element(el)
        self._task = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    self.closed_reason = self.closed_reason or "connection closed"
                    return
                for el in self._feed(data):
                    self.on_element(el)
                if self.stream_ended:
                    self.closed_reason = self.closed_reason or "the server closed the stream"
        except (OSError, ssl.SSLError, ET.ParseError) as e:
            self.closed_reason = f"{type(e).__name__}: {e}"

    def send(self, data: str) -> None:
        self._writer.write(data.encode())

    async def drain(self) -> None:
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            self._writer.write(b"</stream:stream>")
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 5)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _condition(stanza: ET.Element) -> str:
    err = stanza.find(C + "error")
    if err is None:
        return ""
    for child in err:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            return child.tag.rsplit("}", 1)[1]
    return "?"


# --------------------------------------------------------------------------- one occupant


@dataclass
class RoomView:
    """What one occupant saw of the room `room` (a bare JID)."""
    room: str
    nick: str
    joined_at: Optional[float] = None  # monotonic time of the self-presence (110)
    join_error: str = ""
    present: set[str] = field(default_factory=set)  # nicks currently available
    removed_333: set[str] = field(default_factory=set)
    bodies: Counter = field(default_factory=Counter)  # groupchat bodies received
    errors: dict[str, str] = field(default_factory=dict)  # message id -> error condition
    changed: Optional[asyncio.Event] = None

    def __call__(self, el: ET.Element) -> None:
        frm = el.get("from", "")
        if el.tag == C + "presence" and frm.startswith(self.room + "/"):
            self._presence(el, frm[len(self.room) + 1:])
        elif el.tag == C + "message":
            if el.get("type") == "error":
                self.errors[el.get("id", "")] = _condition(el)
            elif el.get("type") == "groupchat" and frm.startswith(self.room + "/"):
                body = el.findtext(C + "body")
                if body is not None:
                    self.bodies[body] += 1
        else:
            return
        if self.changed is not None:
            self.changed.set()

    def _presence(self, el: ET.Element, nick: str) -> None:
        ptype = el.get("type", "")
        codes = {s.get("code") for s in el.iter(tag(NS_MUC_USER, "status"))}
        if ptype == "error":
            if nick == self.nick:
                self.join_error = _condition(el) or "error"
            return
        if ptype == "unavailable":
            self.present.discard(nick)
            if "333" in codes:
                self.removed_333.add(nick)
            return
        self.present.add(nick)
        if nick == self.nick and "110" in codes and self.joined_at is None:
            self.joined_at = time.monotonic()


# --------------------------------------------------------------------------- the scenario


@dataclass
class Occupant:
    client: LightClient
    view: RoomView


@dataclass
class Tally:
    """Outcome of a series of room messages: one row per message."""
    sent: int = 0  # (message, recipient) pairs
    delivered: int = 0
    bounced: int = 0
    duplicates: int = 0
    per_message: list[tuple[str, int, int, int]] = field(default_factory=list)
    settled: bool = False  # every (message, occupant) delivered or bounced in time
    seconds: float = 0.0  # from the first message sent until settled (or the deadline)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered - self.bounced


@dataclass
class Joins:
    """Outcome of the join phase: `group` joined at once, then each had to see every other
    occupant."""
    group: list[Occupant]
    deadline: float  # seconds allowed for every join to be answered
    joined: int
    refused: int
    last_join: float  # seconds until the last join was answered
    formed: bool  # every joined occupant saw every other one
    seconds: float  # from the joins sent until formed (or not)
    cpu: dict[str, float]  # CPU seconds each server spent meanwhile

    @property
    def unanswered(self) -> int:
        return len(self.group) - self.joined - self.refused

    def join_errors(self) -> list[str]:
        return sorted({o.view.join_error for o in self.group if o.view.join_error})


class Crowd:
    """Occupants of `room`: add them with `add()`, log them in with `login_all()`, then
    `join_all()`, `send_series()` and `tally()`."""

    def __init__(self, room: str):
        self.room = room
        self.occupants: list[Occupant] = []
        self.changed = asyncio.Event()

    def add(self, client: LightClient, nick: str) -> Occupant:
        view = RoomView(self.room, nick, changed=self.changed)
        client.on_element = view
        occ = Occupant(client, view)
        self.occupants.append(occ)
        return occ

    def add_members(self, ip: str, port: int, domain: str, password: str,
                    count: int) -> list[Occupant]:
        """`count` clients of the server at ip:port, users u000, u001, ... of `domain`, with
        the nicks "Member 000", "Member 001", ..."""
        return [self.add(LightClient(ip, port, domain, f"u{i:03d}", password),
                         f"Member {i:03d}") for i in range(count)]

    async def open_room(self, owner: Occupant, timeout: float) -> None:
        """The owner logs in and creates the room by joining it first."""
        await owner.client.login()
        joined, _, _ = await self.join_all(timeout, [owner])
        assert joined == 1, f"the owner could not create {self.room}: {owner.view.join_error}"

    async def register_all(self, group: list[Occupant], timeout: float) -> float:
        """Registers and logs in the clients of `group` within `timeout`; returns the
        seconds it took."""
        return await asyncio.wait_for(self.login_all(group, register=True), timeout)

    async def login_all(self, group: list[Occupant], register: bool = False,
                        parallel: int = 16) -> float:
        """Logs the clients of `group` in (at most `parallel` handshakes at a time);
        returns the seconds it took."""
        t0 = time.monotonic()
        gate = asyncio.Semaphore(parallel)

        async def one(occ: Occupant) -> None:
            async with gate:
                await occ.client.login(register=register)

        await asyncio.gather(*(one(o) for o in group))
        return time.monotonic() - t0

    async def wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        """Waits until done() is true, waking on every stanza any occupant receives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except asyncio.TimeoutError:
                pass  # re-check: a client's stream may have closed without a stanza
        return True

    def join_stanza(self, occ: Occupant) -> str:
        return (f"<presence to={quoteattr(self.room + '/' + occ.view.nick)}>"
                f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>")

    async def join_all(self, timeout: float, occupants: Optional[list[Occupant]] = None
                       ) -> tuple[int, int, float]:
        """Every occupant (or those given) sends its join at once; waits until each has its
        self-presence or an error. Returns (joined, refused, seconds until the last join)."""
        group = occupants if occupants is not None else self.occupants
        t0 = time.monotonic()
        for occ in group:
            occ.client.send(self.join_stanza(occ))
        await self.wait_for(lambda: all(o.view.joined_at or o.view.join_error for o in group),
                            timeout)
        joined = [o for o in group if o.view.joined_at is not None]
        refused = sum(1 for o in group if o.view.join_error)
        last = max((o.view.joined_at for o in joined), default=t0) - t0
        return len(joined), refused, last

    def missing_presences(self) -> int:
        """(occupant, other occupant) pairs where the first does not see the second."""
        nicks = {o.view.nick for o in self.occupants if o.view.joined_at is not None}
        return sum(len(nicks - o.view.present) for o in self.occupants
                   if o.view.joined_at is not None)

    async def wait_room_formed(self, timeout: float) -> bool:
        """Waits until every joined occupant sees every other one (the cheap count first:
        this is evaluated after every burst of stanzas)."""
        members = [o for o in self.occupants if o.view.joined_at is not None]

        def formed() -> bool:
            return (all(len(o.view.present) >= len(members) for o in members)
                    and self.missing_presences() == 0)

        return await self.wait_for(formed, timeout)

    @staticmethod
    def body(i: int) -> str:
        return f"room message {i:05d}"

    @staticmethod
    def message_id(i: int) -> str:
        return f"room-msg-{i:05d}"

    def send_series(self, senders: list[Occupant], count: int) -> None:
        """Message i is sent by senders[i % len(senders)], all back to back."""
        for i in range(count):
            occ = senders[i % len(senders)]
            occ.client.send(f"<message type='groupchat' to={quoteattr(self.room)} "
                            f"id={quoteattr(self.message_id(i))}>"
                            f"<body>{escape(self.body(i))}</body></message>")

    def _settled(self, count: int, senders: list[Occupant]) -> bool:
        gone = self.removed()
        bounced = self._bounced_ids(senders)
        for o in self.occupants:
            if o.view.joined_at is None or o.view.nick in gone:
                continue
            for i in range(count):
                if not o.view.bodies[self.body(i)] and self.message_id(i) not in bounced:
                    return False
        return True

    async def wait_series(self, senders: list[Occupant], count: int, timeout: float) -> bool:
        return await self.wait_for(lambda: self._settled(count, senders), timeout)

    def removed(self) -> set[str]:
        """Nicks the room removed as unreachable (status 333), as any occupant saw it."""
        out: set[str] = set()
        for o in self.occupants:
            out |= o.view.removed_333
        return out

    @staticmethod
    def _bounced_ids(senders: list[Occupant]) -> set[str]:
        return {mid for s in senders for mid in s.view.errors}

    def tally(self, senders: list[Occupant], count: int) -> Tally:
        t = Tally()
        gone = self.removed()
        bounced_ids = self._bounced_ids(senders)
        members = [o for o in self.occupants if o.view.joined_at is not None]
        for i in range(count):
            body, mid = self.body(i), self.message_id(i)
            delivered = bounced = 0
            for o in members:
                got = o.view.bodies[body]
                t.duplicates += max(got - 1, 0)
                if got:
                    delivered += 1
                elif mid in bounced_ids or o.view.nick in gone:
                    bounced += 1
            t.sent += len(members)
            t.delivered += delivered
            t.bounced += bounced
            t.per_message.append((mid, delivered, bounced, len(members) - delivered - bounced))
        return t

    async def join_room(self, group: list[Occupant], join_deadline: float,
                        form_deadline: float, pids: dict[str, int]) -> Joins:
        """The join phase: `group` joins at once (join_all), then, if every one joined, the
        room must form (wait_room_formed); measures the CPU of the servers in `pids` (name
        -> process id) meanwhile."""
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        joined, refused, last = await self.join_all(join_deadline, group)
        formed = await self.wait_room_formed(form_deadline) if joined == len(group) else False
        seconds = time.monotonic() - t0
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        return Joins(group, join_deadline, joined, refused, last, formed, seconds, cpu)

    def describe_joins(self, j: Joins) -> str:
        cpu = ", ".join(f"{name} {s:.1f}s" for name, s in j.cpu.items())
        return (f"joins: {j.joined} of {len(j.group)} joined, {j.refused} refused,"
                f" {j.unanswered} unanswered; last join after {j.last_join:.1f}s;"
                f" room formed: {j.formed} after {j.seconds:.1f}s"
                f" ({self.missing_presences()} presences missing); server CPU {cpu}")

    async def run_series(self, senders: list[Occupant], count: int, timeout: float) -> Tally:
        """The message phase: `count` room messages (send_series), waited for until every
        (message, occupant) is delivered or bounced or `timeout` passed, then counted."""
        t0 = time.monotonic()
        self.send_series(senders, count)
        settled = await self.wait_series(senders, count, timeout)
        seconds = time.monotonic() - t0
        t = self.tally(senders, count)
        t.settled, t.seconds = settled, seconds
        return t

    def describe_series(self, t: Tally) -> str:
        return (f"{len(t.per_message)} room messages to {len(self.occupants)} occupants"
                f" ({'settled' if t.settled else 'NOT settled'} after {t.seconds:.1f}s):"
                f" sent {t.sent} = delivered {t.delivered} + bounced {t.bounced}"
                f" + lost {t.lost} (duplicates {t.duplicates})")

    def assert_formed_and_nothing_lost(self, j: Joins, t: Tally) -> None:
        """What every room test asserts with no fault injected: no client stream closed,
        every join answered with the occupant's own presence, every occupant seeing every
        other one, and every (message, occupant) delivered: none lost, none bounced."""
        assert not self.closed_streams(), self.closed_streams()[:5]
        assert j.joined == len(j.group), (
            f"{j.joined} of {len(j.group)} joined within {j.deadline}s ({j.refused} refused:"
            f" {j.join_errors()})")
        assert j.formed, f"{self.missing_presences()} occupant presences never arrived"
        assert t.lost == 0, (f"{t.lost} of {t.sent} lost; per message (id, delivered,"
                             f" bounced, lost): {t.per_message}")
        assert t.bounced == 0, f"{t.bounced} bounced without any fault injected"

    def closed_streams(self) -> list[str]:
        return [f"{o.client.jid}: {o.client.closed_reason}" for o in self.occupants
                if o.client.closed_reason]

    async def close_all(self) -> None:
        await asyncio.gather(*(o.client.close() for o in self.occupants),
                             return_exceptions=True)


# --------------------------------------------------------------------------- the tests' parts


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def case(name: str, waiting: dict[str, str]) -> Any:
    """The pytest parameter of a room test case, skipped with the reason where the case
    waits for work not yet in this tree (`waiting`: case -> what it waits for), unless
    WADDLE_ROOM_RUN_WAITING=1."""
    reason = waiting.get(name)
    run_anyway = os.environ.get("WADDLE_ROOM_RUN_WAITING") == "1"
    marks = [pytest.mark.skip(reason=f"waits for {reason}")] if reason and not run_anyway \
        else []
    return pytest.param(name, id=name, marks=marks)
