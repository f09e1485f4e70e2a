"""Federation loses nothing under load (issue 8, section 3): a client of the sending server
sends numbered chat messages (20,000 at 1,000/s) to a client of the receiving server, a
fault is injected mid-flood, and every message must end up delivered or bounced.

Faults (flood.py): "none" (the flood alone); "kill" (the receiving server SIGKILLed after
5,000 messages and started again; its client logs in again and gets what was stored
offline); "stop" (the receiving server frozen with SIGSTOP for 20 s, then SIGCONT);
"dns" (after 3,000 messages the federation's DNS server is stopped for 20 s, then started
and frozen for 20 s; the receiving server restarts cleanly at the start of each phase, so
the sending server must find it again while DNS refuses and while it does not answer; the
flood lasts until 8 s after DNS is back).

Pairs, sender -> receiver, all authenticating with certificates (SASL EXTERNAL):
Waddle -> Waddle, Prosody -> Waddle, Waddle -> Prosody, ejabberd -> Waddle,
Waddle -> ejabberd; with WADDLE_FLOOD_FULL=1 also Prosody -> ejabberd and
ejabberd -> Prosody, for comparison (figures only, no assertion).

Goal asserted: 0 lost in every scenario whose two servers are Waddle or Prosody. With
ejabberd (no stream management on server links), in either direction, 0 lost where no link
is closed (none, stop); with kill and dns the figures are recorded (see PAIRS for why), as
are those of the comparison pairs.

Peers are configured as shipped where it matters here: Prosody loads smacks (XEP-0198 on
server links, its default) and limits, ejabberd has shapers on its listeners; the rates are
raised to 1 MB/s (five to ten times the flood's bytes) because the shipped ones (Prosody:
10 kB/s per client, 30 kB/s per incoming server stream; ejabberd: 3,000 bytes/s per client)
would pace 20,000 messages over many minutes: pacing delays, it does not lose, and a run
must fit in CI. Waddle runs with its default configuration (log level info).

Results: a table at the end of the pytest output, one line per scenario printed as it ends
(visible with -s), and JSON lines in RUN_DIR/flood-results.jsonl (path printed).
Environment: WADDLE_FLOOD_FULL=1 (comparison pairs), WADDLE_FLOOD_MESSAGES and
WADDLE_FLOOD_RATE (default 20000 and 1000), WADDLE_FLOOD_FAULT_SECONDS (how long a fault
lasts, default 20; CI's short form runs 10000 messages with 10 s faults),
WADDLE_FLOOD_RECORD_ONLY=1 (measure without
asserting, for figures of a server that is known to lose). Select with -m flood, leave out
with -m "not flood".
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import pytest

import flood
import harness
from flood import FloodClient, Plan, Tally

FULL = os.environ.get("WADDLE_FLOOD_FULL") == "1"
RECORD_ONLY = os.environ.get("WADDLE_FLOOD_RECORD_ONLY") == "1"
MESSAGES = int(os.environ.get("WADDLE_FLOOD_MESSAGES", "20000"))
RATE = float(os.environ.get("WADDLE_FLOOD_RATE", "1000"))
PACED_RATE = 1_000_000  # bytes/s for Prosody's limits and ejabberd's shapers
EJABBERD_RETRY_DELAY = 5  # seconds, ejabberd's s2s_max_retry_delay (default 300)

FAULTS = list(flood.FAULTS)  # none, kill, stop, dns
ALL = tuple(FAULTS)
LINK_SURVIVES = ("none", "stop")  # faults in which no link is closed
# pair id -> (sender kind, receiver kind, the faults in which lost must be 0). ejabberd has
# no stream management on server links, so only the faults that close no link are asserted
# with it, either way; kill and dns are figures, as are the comparison pairs. Where a link
# dies, the sender cannot know what the other side had taken from TCP (Waddle -> ejabberd;
# ejabberd -> Waddle when Waddle is killed), and ejabberd loses a few stanzas by itself
# whenever an outgoing connection attempt fails: those routed to it while it was failing
# are neither sent nor bounced.
PAIRS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "waddle->waddle": ("waddle", "waddle", ALL),
    "prosody->waddle": ("prosody", "waddle", ALL),
    "waddle->prosody": ("waddle", "prosody", ALL),
    "ejabberd->waddle": ("ejabberd", "waddle", LINK_SURVIVES),
    "waddle->ejabberd": ("waddle", "ejabberd", LINK_SURVIVES),
    "prosody->ejabberd": ("prosody", "ejabberd", ()),
    "ejabberd->prosody": ("ejabberd", "prosody", ()),
}
COMPARISON = ("prosody->ejabberd", "ejabberd->prosody")

pytestmark = pytest.mark.flood


def plan_for(fault: str, asserted: bool) -> Plan:
    """The flood of a scenario. The count ends after 30 s without news where 0 lost is
    asserted (longer than the default retry delays, 1, 2 and 4 s with jitter, plus
    connect_timeout, 10 s), after 15 s where the figures are only recorded (there, the
    quiet wait is paid on every run)."""
    quiet = 30.0 if asserted else 15.0
    if fault == "none":
        return Plan(MESSAGES, RATE, fault_at=MESSAGES, quiet=quiet)
    if fault == "dns":
        # the flood goes on through the 40 s outage and 8 s beyond it
        fault_at = int(3 * RATE)
        total = max(MESSAGES, fault_at + int((2 * flood.FAULT_SECONDS + 8) * RATE))
        return Plan(total, RATE, fault_at=fault_at, quiet=quiet)
    return Plan(MESSAGES, RATE, fault_at=MESSAGES // 4, quiet=quiet)


@dataclass
class PairWorld:
    name: str
    fed: harness.Federation
    sender: Any
    receiver: Any
    zero_lost: tuple[str, ...]  # faults in which lost must be 0


def _server(fed: harness.Federation, kind: str, domain: str, users: list[str]) -> Any:
    if kind == "waddle":
        return fed.waddle(domain, "cert", users=users,
                          overrides={"server": {"log_level": "info"}})
    if kind == "prosody":
        # "1mb/s": mod_limits reads the unit's first letter as a power of ten (b = 10^1,
        # k = 10^3, m = 10^6), so this is PACED_RATE
        limits = 'limits = { c2s = { rate = "1mb/s" }; s2sin = { rate = "1mb/s" } }'
        return fed.prosody(domain, "cert", users=users, extra_modules=["limits"],
                           extra_config=limits, log_level="info")
    # s2s_max_retry_delay: after a failed connection attempt ejabberd bounces everything
    # for the domain for a random time of up to this many seconds (default 300) before it
    # tries again; at the default it would not try again within the DNS fault's phases.
    return fed.ejabberd(domain, "cert", shaper_rate=PACED_RATE,
                        extra_config=f"s2s_max_retry_delay: {EJABBERD_RETRY_DELAY}\n")


def _pair_params() -> list[Any]:
    params = []
    for name in PAIRS:
        marks = []
        if name in COMPARISON and not FULL:
            marks.append(pytest.mark.skip(reason="comparison pair: WADDLE_FLOOD_FULL=1"))
        params.append(pytest.param(name, marks=marks, id=name.replace("->", "-to-")))
    return params


@pytest.fixture(scope="module", params=_pair_params())
def pair_world(request, interop_root, ca):
    name = request.param
    send_kind, recv_kind, zero_lost = PAIRS[name]
    fed = harness.Federation(interop_root / f"flood-{send_kind}-{recv_kind}", ca)
    try:
        senders = [f"s-{f}" for f in FAULTS]
        receivers = [f"r-{f}" for f in FAULTS]
        sender = _server(fed, send_kind, f"{send_kind}-send.test", senders)
        receiver = _server(fed, recv_kind, f"{recv_kind}-recv.test", receivers)
        fed.start()
        for server, users in ((sender, senders), (receiver, receivers)):
            if server.name == "ejabberd":
                for u in users:
                    server.register(u)
    except BaseException:
        fed.close()
        raise
    yield PairWorld(name, fed, sender, receiver, zero_lost)
    fed.close()


@pytest.fixture(scope="session")
def flood_results(request, interop_root):
    """Where the records go: a list shown at the end of the run, and a JSON lines file."""
    path = interop_root / "flood-results.jsonl"
    rows: list[dict[str, Any]] = []
    request.config._flood_rows = rows
    request.config._flood_results_path = path
    return rows, path


async def _warm_up(sender: FloodClient, receiver: FloodClient, tally: Tally) -> str:
    """Message 0 opens the links (it is not counted). Returns "" once it arrived, else
    what happened to it."""
    tally.bounced.pop(0, None)
    sender.write(tally.stanza(receiver.jid, 0).encode())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while 0 not in tally.delivered and 0 not in tally.bounced:
        tally.changed.clear()
        if loop.time() >= deadline:
            return "not delivered within 30 s"
        try:
            await asyncio.wait_for(tally.changed.wait(), deadline - loop.time())
        except asyncio.TimeoutError:
            pass
    if 0 in tally.bounced:
        return f"bounced with {tally.bounced.pop(0)}"
    tally.delivered.discard(0)
    return ""


async def _establish(pw: PairWorld, sender: FloodClient, receiver: FloodClient,
                     tally: Tally) -> str:
    """Logs both clients in and sends the warm-up message. A sending server that still
    refuses the link after the previous scenario's fault is restarted cleanly, once (this
    is ejabberd: after a failed connection attempt it bounces everything for that domain
    for a random time of up to s2s_max_retry_delay). Returns what was done ("" or
    "sending server restarted: ...")."""
    await receiver.login()
    await sender.login()
    problem = await _warm_up(sender, receiver, tally)
    if not problem:
        return ""
    await sender.close()
    await flood.in_thread(pw.sender.restart)
    await sender.relogin(asyncio.get_running_loop().time() + 30)
    again = await _warm_up(sender, receiver, tally)
    assert not again, f"warm-up message: {problem}; after restarting the sender: {again}"
    return f"sending server restarted: the warm-up message was {problem}"


@pytest.mark.parametrize("fault", FAULTS)
def test_flood(request, pair_world: PairWorld, fault: str, flood_results) -> None:
    pw = pair_world
    request.node._interop_federation = pw.fed  # logs attached to a failure
    rows, path = flood_results
    asserted = fault in pw.zero_lost and not RECORD_ONLY
    plan = plan_for(fault, asserted)
    token = f"f{fault}{random.randrange(1 << 32):08x}"
    s_user, r_user = f"s-{fault}", f"r-{fault}"

    async def body() -> dict[str, Any]:
        tally = Tally(token, pw.sender.jid(s_user))
        sender = FloodClient(pw.sender.jid(s_user), pw.sender.users[s_user],
                             pw.sender.c2s_address, on_message=tally.on_sender_message)
        receiver = FloodClient(pw.receiver.jid(r_user), pw.receiver.users[r_user],
                               pw.receiver.c2s_address, on_message=tally.on_received)
        try:
            setup = await _establish(pw, sender, receiver, tally)
            ctx = flood.FaultContext(flood.Timeline(), asyncio.Event(), pw.receiver, pw.fed)
            if setup:
                ctx.details["setup"] = setup
            return await flood.run_flood(sender=sender, receiver=receiver, tally=tally,
                                         plan=plan, fault=flood.FAULTS[fault], ctx=ctx)
        finally:
            await sender.close()
            await receiver.close()

    before = {s: flood.metrics_snapshot(s) for s in (pw.sender, pw.receiver)}
    result = harness.run_async(body, timeout=plan.messages / plan.rate * 3 + 600)
    for role, server in (("sender", pw.sender), ("receiver", pw.receiver)):
        if server.name == "waddle":
            result[f"{role}_metrics"] = flood.metrics_delta(
                before[server], flood.metrics_snapshot(server))
    if "dns_log_offset" in result:
        result["dns_queries_after_outage"] = flood.dns_queries_since(
            pw.fed.dns, result.pop("dns_log_offset"), pw.receiver.domain)
    record = {"pair": pw.name, "fault": fault, "messages": plan.messages, "rate": plan.rate,
              "asserted": asserted, **result}
    rows.append(record)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print("\n" + "\n".join(flood.table([record])) + f"\n(all records: {path})")

    if not record["asserted"]:
        return
    assert record["flood_ended"] == "done", (
        f"{pw.name} {fault}: the flood did not complete ({record['flood_ended']}); "
        f"{record['timeline']}")
    if fault == "dns":
        assert record["dns_queries_after_outage"] > 0, (
            "dnsmasq logged no query for the receiving domain from the frozen phase on: "
            "the sending server set up its link without asking DNS, so the scenario did not "
            "exercise re-establishment through DNS")
    assert record["lost"] == 0, (
        f"{pw.name} {fault}: {record['lost']} of {record['sent']} messages neither "
        f"delivered nor bounced: {json.dumps(record)}")
