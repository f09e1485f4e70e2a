"""Floods of numbered chat messages across a federation link, with a fault injected
mid-flood, and the count that says whether anything was lost (issue 8, section 3).

- ``FloodClient``: a light asyncio XMPP client (the login of tests/system/light_c2s.py:
  STARTTLS, SASL PLAIN, resource binding; then presence) that keeps up with 1,000 messages
  a second each way, which slixmpp does not. It hands every received message to a callback,
  answers the server's IQs, and can log in again after its server restarted.
- ``Tally``: what a run counts. ``sent`` numbered messages written by the sending client;
  ``delivered``, the distinct numbers the receiving client got (offline messages delivered
  at its next login included); ``duplicates``, numbers it got more than once; ``bounced``,
  the numbers whose error reply came back to the sender (matched by id);
  ``lost = sent - |delivered or bounced|``, neither delivered nor bounced. A number both
  delivered and bounced (an error for a message that did arrive) counts once and is
  reported as ``delivered_and_bounced``.
- ``run_flood()``: one scenario: the flood, the fault, the wait until everything is
  accounted for (bounded), the record.

Every wait has a deadline; the flood is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import ssl
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
from light_c2s import (NS_CLIENT, NS_STANZAS, NS_STREAMS, LightC2s,  # noqa: E402
                       LoginFailed, tag)

log = logging.getLogger("waddle.interop.flood")

NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"


def _xml_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


class FloodClient(LightC2s):
    """One c2s connection at a time to `address` for `jid`; ``login()`` opens it,
    ``relogin(deadline)`` opens a new one after the old one ended (retrying while the
    server comes back). ``on_message(element)`` is called for every <message/> received.
    ``connected`` is false between a connection's end and the next login; ``gone`` is an
    event set when a connection ends."""

    def __init__(self, jid: str, password: str, address: tuple[str, int], *,
                 resource: str = "flood",
                 on_message: Callable[[ET.Element], None] = lambda el: None):
        user, domain = jid.split("@", 1)
        super().__init__(address[0], address[1], domain, user, password, resource)
        self.jid, self.address = jid, address
        self.on_message = on_message
        self.connected = False
        self.logins = 0
        self.end_reason = ""
        self.gone = asyncio.Event()
        self._read_task: Optional[asyncio.Task] = None
        self._iqs: dict[str, asyncio.Future] = {}
        self._iq_seq = 0

    async def login(self, timeout: float = 20.0) -> "FloodClient":
        """Connects, negotiates, binds, sends initial presence and waits until the server
        answered an IQ sent after it (so the presence was processed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.negotiate(deadline)
        self.connected = True
        self.gone.clear()
        self.end_reason = ""
        self.logins += 1
        self._read_task = asyncio.ensure_future(self._read_loop(self.take_pending()))
        self._send_raw("<presence/>")
        await self.sync(max(deadline - loop.time(), 0.1))
        return self

    async def relogin(self, deadline: float, interval: float = 0.25) -> None:
        """Logs in again (after the connection ended), retrying until `deadline` (loop
        time) while the server is not back yet."""
        loop = asyncio.get_running_loop()
        last: Optional[BaseException] = None
        while loop.time() < deadline:
            try:
                await self.login(timeout=max(min(deadline - loop.time(), 20.0), 0.1))
                return
            except (OSError, asyncio.TimeoutError, LoginFailed, ssl.SSLError) as e:
                last = e
            await asyncio.sleep(interval)
        raise LoginFailed(f"{self.jid} could not log in again in time: {last!r}")

    async def sync(self, timeout: float) -> None:
        """A ping to the server, answered (result or error) within `timeout`."""
        self._iq_seq += 1
        iq_id = f"sync-{self._iq_seq}"
        fut = asyncio.get_running_loop().create_future()
        self._iqs[iq_id] = fut
        self._send_raw(f"<iq type='get' id='{iq_id}' to='{self.domain}'>"
                       f"<ping xmlns='{NS_PING}'/></iq>")
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._iqs.pop(iq_id, None)

    async def _read_loop(self, pending: list[ET.Element]) -> None:
        try:
            for el in pending:
                self._dispatch(el)
            while True:
                data = await self._reader.read(262144)
                if not data:
                    self.end_reason = "connection closed"
                    break
                for el in self._feed(data):
                    self._dispatch(el)
                if self.stream_ended:
                    self.end_reason = "stream closed by the server"
                    break
        except (OSError, ssl.SSLError, ET.ParseError) as e:
            self.end_reason = f"{type(e).__name__}: {e}"
        except asyncio.CancelledError:
            self.end_reason = "closed here"
            raise
        finally:
            self.connected = False
            self._abort()
            self.gone.set()

    def _dispatch(self, el: ET.Element) -> None:
        name = el.tag
        if name == tag(NS_CLIENT, "message"):
            self.on_message(el)
        elif name == tag(NS_CLIENT, "iq"):
            kind, iq_id = el.get("type"), el.get("id", "")
            if kind in ("result", "error"):
                fut = self._iqs.get(iq_id)
                if fut is not None and not fut.done():
                    fut.set_result(el)
            elif kind in ("get", "set"):
                self._answer_iq(el)
        elif name == tag(NS_STREAMS, "error"):
            conds = [c.tag.rsplit("}", 1)[-1] for c in el]
            self.end_reason = f"stream error {conds}"
            log.info("%s: stream error %s", self.jid, conds)

    def _answer_iq(self, iq: ET.Element) -> None:
        to = iq.get("from", self.domain)
        iq_id = _xml_escape(iq.get("id", ""))
        if iq.find(tag(NS_PING, "ping")) is not None:
            self._send_raw(f"<iq type='result' id='{iq_id}' to='{_xml_escape(to)}'/>")
        else:
            self._send_raw(f"<iq type='error' id='{iq_id}' to='{_xml_escape(to)}'>"
                           f"<error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/>"
                           "</error></iq>")

    # ------------------------------------------------------------------ sending

    def write(self, data: bytes) -> None:
        if self._writer is not None and self.connected:
            self._writer.write(data)

    def buffered(self) -> int:
        if self._writer is None or self._writer.transport is None:
            return 0
        return self._writer.transport.get_write_buffer_size()

    async def drain(self, timeout: float) -> bool:
        """Waits until the server took what was written (False on timeout or closure)."""
        if self._writer is None or not self.connected:
            return False
        try:
            await asyncio.wait_for(self._writer.drain(), max(timeout, 0.01))
            return True
        except (asyncio.TimeoutError, OSError, ssl.SSLError):
            return False

    async def close(self) -> None:
        if self._read_task is not None and not self._read_task.done():
            self._send_raw("</stream:stream>")
            self._read_task.cancel()
            await asyncio.gather(self._read_task, return_exceptions=True)
        self._abort()
        self.connected = False


# --------------------------------------------------------------------------- counting


@dataclass
class Tally:
    """The numbers of one flood (see the module docstring)."""
    token: str
    sender_bare: str
    sent: int = 0
    delivered: set = field(default_factory=set)
    duplicates: int = 0
    offline: int = 0  # deliveries that carried a delay stamp (stored offline first)
    bounced: dict = field(default_factory=dict)  # number -> error condition
    bounce_duplicates: int = 0
    strays: int = 0  # error replies or messages this flood did not send
    last_news: float = 0.0  # loop time of the last new delivery or bounce
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _accounted: int = 0  # numbers >= 1 delivered or bounced, kept up to date

    def msg_id(self, n: int) -> str:
        return f"{self.token}-{n}"

    def stanza(self, to: str, n: int) -> str:
        return (f"<message to='{to}' type='chat' id='{self.token}-{n}'>"
                f"<body>{self.token} {n}</body></message>")

    def _news(self) -> None:
        self.last_news = asyncio.get_running_loop().time()
        self.changed.set()

    def on_received(self, el: ET.Element) -> None:
        """Receiving client: a message."""
        if el.get("type") == "error":
            self.strays += 1
            return
        body = el.findtext(tag(NS_CLIENT, "body")) or ""
        token, _, num = body.partition(" ")
        if token != self.token or not num.isdigit():
            self.strays += 1
            return
        n = int(num)
        if n in self.delivered:
            self.duplicates += 1
            return
        self.delivered.add(n)
        if n > 0 and n not in self.bounced:
            self._accounted += 1
        if el.find(tag(NS_DELAY, "delay")) is not None:
            self.offline += 1
        self._news()

    def on_sender_message(self, el: ET.Element) -> None:
        """Sending client: an error reply for one of its numbered messages."""
        msg_id = el.get("id", "")
        token, _, num = msg_id.rpartition("-")
        if el.get("type") != "error" or token != self.token or not num.isdigit():
            self.strays += 1
            return
        n = int(num)
        if n in self.bounced:
            self.bounce_duplicates += 1
            return
        self.bounced[n] = error_condition(el)
        if n > 0 and n not in self.delivered:
            self._accounted += 1
        self._news()

    def accounted(self) -> int:
        """Numbered messages (the warm-up message 0 aside) delivered or bounced."""
        return self._accounted

    def lost(self) -> int:
        return self.sent - self.accounted()

    def lost_ranges(self, limit: int = 20) -> list[list[int]]:
        """The first `limit` runs [first, last] of consecutive lost numbers (where in the
        flood the losses were)."""
        missing = sorted(set(range(1, self.sent + 1)) - self.delivered - self.bounced.keys())
        ranges: list[list[int]] = []
        for n in missing:
            if ranges and n == ranges[-1][1] + 1:
                ranges[-1][1] = n
            elif len(ranges) == limit:
                break
            else:
                ranges.append([n, n])
        return ranges

    def counts(self) -> dict[str, Any]:
        """The record of the numbered messages (the warm-up message 0 left out)."""
        delivered, bounced = self.delivered - {0}, self.bounced.keys() - {0}
        conditions: dict[str, int] = {}
        for n, c in self.bounced.items():
            if n:
                conditions[c] = conditions.get(c, 0) + 1
        return {
            "sent": self.sent, "delivered": len(delivered),
            "duplicates": self.duplicates, "bounced": len(bounced),
            "lost": self.lost(),
            "delivered_and_bounced": len(delivered & bounced),
            "offline": self.offline, "bounce_conditions": conditions,
            "strays": self.strays, "lost_ranges": self.lost_ranges(),
        }


def error_condition(el: ET.Element) -> str:
    err = el.find(tag(NS_CLIENT, "error"))
    if err is None:
        return "(no error element)"
    for child in err:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            return child.tag.rsplit("}", 1)[-1]
    return "(no condition)"


# --------------------------------------------------------------------------- one scenario


@dataclass
class Plan:
    """The shape of one run: `messages` numbered messages at `rate` per second; the fault
    starts once `fault_at` of them were sent. After the flood and the fault, the run waits
    until every message is accounted for, or nothing new arrived for `quiet` seconds, or
    `deadline` seconds passed since the flood and the fault ended."""
    messages: int
    rate: float
    fault_at: int
    quiet: float = 30.0
    deadline: float = 150.0


class Timeline:
    """Events of a run, in seconds since the flood started (for the record)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def mark(self, what: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((round(t, 2), what))
        log.info("flood t=%.2fs: %s", t, what)


async def flood(sender: FloodClient, to: str, tally: Tally, plan: Plan,
                reached_fault: asyncio.Event, time_limit: float) -> str:
    """Writes the numbered messages at plan.rate (in batches every few milliseconds,
    keeping to the schedule), waiting when the client's server stops reading. Returns how
    it ended: "done", "time limit" or "sender disconnected"."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + time_limit
    to = _xml_escape(to)
    while tally.sent < plan.messages:
        now = loop.time()
        if now >= end:
            return "time limit"
        if not sender.connected:
            return "sender disconnected"
        due = min(plan.messages, int((now - t0) * plan.rate) + 1)
        if due > tally.sent:
            batch = "".join(tally.stanza(to, n) for n in range(tally.sent + 1, due + 1))
            sender.write(batch.encode())
            tally.sent = due
            if tally.sent >= plan.fault_at:
                reached_fault.set()
            if sender.buffered() > 1 << 20:  # the server is not reading: wait for it
                await sender.drain(end - loop.time())
        next_due = t0 + tally.sent / plan.rate
        await asyncio.sleep(min(max(next_due - loop.time(), 0.001), 0.02))
    return "done"


async def keep_online(client: FloodClient, server_up: asyncio.Event, until: asyncio.Event,
                      timeline: Timeline, deadline: float) -> None:
    """Logs the receiving client in again whenever its connection ends, once its server
    is up (server_up is cleared while a fault holds the server down)."""
    loop = asyncio.get_running_loop()
    while not until.is_set() and loop.time() < deadline:
        gone = asyncio.ensure_future(client.gone.wait())
        stop = asyncio.ensure_future(until.wait())
        await asyncio.wait({gone, stop}, timeout=deadline - loop.time(),
                           return_when=asyncio.FIRST_COMPLETED)
        for f in (gone, stop):
            f.cancel()
        if until.is_set() or not client.gone.is_set():
            continue
        timeline.mark(f"receiving client disconnected ({client.end_reason})")
        try:
            await asyncio.wait_for(server_up.wait(), max(deadline - loop.time(), 0.1))
            await client.relogin(deadline)
            timeline.mark("receiving client logged in again")
        except (asyncio.TimeoutError, LoginFailed) as e:
            timeline.mark(f"receiving client could not log in again: {e}")
            return


async def account(tally: Tally, plan: Plan) -> str:
    """Waits until every sent message is delivered or bounced, or nothing new came for
    plan.quiet seconds, or plan.deadline passed. Returns which."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tally.last_news = max(tally.last_news, start)
    while True:
        if tally.accounted() >= tally.sent:
            return "complete"
        now = loop.time()
        if now - start >= plan.deadline:
            return "deadline"
        if now - tally.last_news >= plan.quiet:
            return "quiet"
        tally.changed.clear()
        wait = min(plan.deadline - (now - start), plan.quiet - (now - tally.last_news))
        try:
            await asyncio.wait_for(tally.changed.wait(), max(wait, 0.05))
        except asyncio.TimeoutError:
            pass


# A fault: given the run's context, does its damage and repairs it (blocking work in
# threads), clearing ctx.server_up while the receiving server is down.
Fault = Callable[["FaultContext"], Awaitable[None]]


@dataclass
class FaultContext:
    timeline: Timeline
    server_up: asyncio.Event
    receiver_server: Any
    fed: Any
    details: dict = field(default_factory=dict)


# Blocking fault work (stopping and starting servers) runs in this thread, which lives as
# long as the test process: a Waddle started from a thread gets SIGKILL when that thread
# ends (harness: PR_SET_PDEATHSIG follows the thread that forked), so a pool that ends its
# threads with each event loop would kill a restarted server after its scenario.
_FAULT_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                      thread_name_prefix="flood-fault")


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_FAULT_THREAD, fn)


async def run_flood(*, sender: FloodClient, receiver: FloodClient, tally: Tally, plan: Plan,
                    fault: Optional[Fault], ctx: FaultContext) -> dict[str, Any]:
    """Runs one scenario with logged-in clients; returns the counts and the timings."""
    loop = asyncio.get_running_loop()
    timeline = ctx.timeline
    reached_fault = asyncio.Event()
    finished = asyncio.Event()
    ctx.server_up.set()
    hard_end = loop.time() + plan.messages / plan.rate * 3 + 180 + plan.deadline
    keeper = asyncio.ensure_future(
        keep_online(receiver, ctx.server_up, finished, timeline, hard_end))
    send_limit = plan.messages / plan.rate * 3 + 60
    timeline.mark(f"flood of {plan.messages} at {plan.rate:g}/s starts")
    flooding = asyncio.ensure_future(
        flood(sender, receiver.jid, tally, plan, reached_fault, send_limit))

    async def inject() -> None:
        if fault is None:
            return
        await reached_fault.wait()
        timeline.mark(f"fault starts after {tally.sent} messages")
        await fault(ctx)
        timeline.mark("fault over")

    injecting = asyncio.ensure_future(inject())
    try:
        ended = await flooding
        timeline.mark(f"flood {ended}: {tally.sent} sent")
        if not reached_fault.is_set():
            reached_fault.set()  # a flood that ended early still gets its fault
        await injecting
        t_flood = time.monotonic() - timeline.t0
        # the receiving client must be back before the count can finish
        if not receiver.connected:
            await asyncio.wait_for(_until(lambda: receiver.connected), 90)
        how = await account(tally, plan)
        timeline.mark(f"accounting ended: {how}")
    finally:
        finished.set()
        for t in (flooding, injecting):
            if not t.done():
                t.cancel()
        await asyncio.gather(flooding, injecting, return_exceptions=True)
        await asyncio.gather(keeper, return_exceptions=True)
    return {**tally.counts(), "flood_ended": ended, "accounting": how,
            "seconds_flood_and_fault": round(t_flood, 1),
            "seconds_total": round(time.monotonic() - timeline.t0, 1),
            "receiver_logins": receiver.logins, "timeline": timeline.events,
            **ctx.details}


async def _until(pred: Callable[[], bool], interval: float = 0.05) -> None:
    while not pred():
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- faults

# How long a frozen server or an absent DNS server stays so (WADDLE_FLOOD_FAULT_SECONDS; CI's
# short form uses 10).
FAULT_SECONDS = float(os.environ.get("WADDLE_FLOOD_FAULT_SECONDS", "20"))


async def fault_kill(ctx: FaultContext) -> None:
    """The receiving server is SIGKILLed and started again at once (same address, data)."""
    ctx.server_up.clear()
    ctx.timeline.mark(f"SIGKILL to {ctx.receiver_server.name}, then start it again")
    await in_thread(lambda: ctx.receiver_server.restart(kill=True))
    ctx.timeline.mark(f"{ctx.receiver_server.name} is up again")
    ctx.server_up.set()


async def fault_stop(ctx: FaultContext) -> None:
    """The receiving server is frozen (SIGSTOP) for FAULT_SECONDS, then continued: its
    sockets stay open, nothing reads them."""
    ctx.receiver_server.kill_stop()
    ctx.timeline.mark(f"SIGSTOP to {ctx.receiver_server.name}")
    try:
        await asyncio.sleep(FAULT_SECONDS)  # the length of the fault itself
    finally:
        ctx.receiver_server.kill_cont()
        ctx.timeline.mark(f"SIGCONT to {ctx.receiver_server.name}")


async def fault_dns(ctx: FaultContext) -> None:
    """The federation's DNS server is stopped for FAULT_SECONDS (queries are refused:
    ICMP port unreachable), then started and at once frozen (SIGSTOP) for FAULT_SECONDS
    (queries time out), then continued. At the start of each phase the receiving server
    restarts cleanly: its streams close, so the sending server must set up a new link to
    it while DNS is out, once while it refuses and once while it does not answer. The
    records have TTL 0, so no resolver may answer from its cache; a server may still fall
    back on what it resolved before (serve stale, RFC 8767) once its query failed.
    Recorded: the bytes waiting in the frozen server's socket when it continues
    ("dns_bytes_waiting_when_continued"), and the queries naming the receiving domain that
    dnsmasq logged from its restart on ("dns_queries_after_outage": those of the frozen
    phase, logged when it continues, and any later ones)."""
    loop = asyncio.get_running_loop()
    dns = ctx.fed.dns
    await in_thread(dns.stop)
    stopped_at = loop.time()
    ctx.timeline.mark("DNS server stopped")
    await _restart_receiver(ctx)
    await asyncio.sleep(max(stopped_at + FAULT_SECONDS - loop.time(), 0))
    ctx.details["dns_log_offset"] = dns.log_path.stat().st_size if dns.log_path.exists() else 0
    await in_thread(dns.start)
    os.kill(dns.proc.pid, signal.SIGSTOP)
    frozen_at = loop.time()
    ctx.timeline.mark("DNS server started and frozen (SIGSTOP)")
    try:
        await _restart_receiver(ctx)
        await asyncio.sleep(max(frozen_at + FAULT_SECONDS - loop.time(), 0))
    finally:
        ctx.details["dns_bytes_waiting_when_continued"] = udp_receive_queue(dns.ip, dns.port)
        os.kill(dns.proc.pid, signal.SIGCONT)
        ctx.timeline.mark("DNS server continued (SIGCONT)")


async def _restart_receiver(ctx: FaultContext) -> None:
    server = ctx.receiver_server
    ctx.server_up.clear()
    await in_thread(lambda: server.restart(kill=False))
    ctx.timeline.mark(f"{server.name} restarted cleanly (SIGTERM, start)")
    ctx.server_up.set()


def udp_receive_queue(ip: str, port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to ip:port (from
    /proc/net/udp): queries that reached a frozen DNS server and wait for it."""
    a, b, c, d = (int(x) for x in ip.split("."))
    local = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"
    try:
        lines = open("/proc/net/udp").read().splitlines()[1:]
    except OSError:
        return -1
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and fields[1] == local:
            return int(fields[4].split(":")[1], 16)
    return 0


def dns_queries_since(dns: Any, offset: int, domain: str) -> int:
    """Queries naming `domain` that dnsmasq logged after byte `offset` of its log (the
    harness's own start-up probe names another domain)."""
    try:
        with open(dns.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if "query[" in line and domain in line)


FAULTS: dict[str, Optional[Fault]] = {
    "none": None, "kill": fault_kill, "stop": fault_stop, "dns": fault_dns,
}


# --------------------------------------------------------------------------- report

COLUMNS = [("pair", "pair", 18), ("fault", "fault", 5), ("sent", "sent", 6),
           ("delivered", "delivered", 9), ("duplicates", "dup", 5), ("bounced", "bounced", 7),
           ("lost", "lost", 6), ("offline", "offline", 7), ("accounting", "ended", 8),
           ("seconds_total", "s", 5)]


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The counts of each scenario as a fixed-width table, plus the bounce conditions."""
    head = " ".join(f"{title:>{w}}" if i > 1 else f"{title:<{w}}"
                    for i, (_, title, w) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for i, (key, _, w) in enumerate(COLUMNS):
            v = str(r.get(key, ""))
            cells.append(f"{v:>{w}}" if i > 1 else f"{v:<{w}}")
        conds = ", ".join(f"{c} {n}" for c, n in sorted(r.get("bounce_conditions", {}).items()))
        lines.append(" ".join(cells) + (f"  [{conds}]" if conds else ""))
    return lines


# --------------------------------------------------------------------------- Waddle's view

# Series of Waddle's /metrics that explain a flood's outcome (docs/metrics.md).
EXPLAINING_METRICS = ("waddle_s2s_connections_total", "waddle_s2s_streams_closed_total",
                      "waddle_s2s_bounced_total", "waddle_s2s_errors_total")


def metrics_snapshot(server: Any) -> dict[str, float]:
    """The EXPLAINING_METRICS series of a Waddle, by 'name{labels}' ({} for a peer or a
    server that does not answer)."""
    if server.name != "waddle":
        return {}
    try:
        text = server.metrics_text()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(EXPLAINING_METRICS):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed during a run (a server restarted during the run starts from 0)."""
    out = {}
    for key, value in after.items():
        prev = before.get(key, 0.0)
        delta = value - prev if value >= prev else value
        if delta:
            out[key] = delta
    return out


PAIR_NAMES = {"waddle": "Waddle", "prosody": "Prosody", "ejabberd": "ejabberd"}


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """The records as the results table of docs/federation.md."""
    lines = ["| pair | fault | sent | delivered | dup | bounced | lost |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        send, recv = r["pair"].split("->")
        pair = f"{PAIR_NAMES.get(send, send)} → {PAIR_NAMES.get(recv, recv)}"
        if "waddle" not in (send, recv):
            pair += " (comparison)"
        lines.append(f"| {pair} | {r['fault']} | {r['sent']:,} | {r['delivered']:,} | "
                     f"{r['duplicates']:,} | {r['bounced']:,} | **{r['lost']:,}** |")
    return lines


if __name__ == "__main__":
    # python3 tests/interop/flood.py RUN_DIR/flood-results.jsonl: the docs' results table
    import json
    import sys
    with open(sys.argv[1]) as f:
        print("\n".join(markdown_table([json.loads(line) for line in f if line.strip()])))
