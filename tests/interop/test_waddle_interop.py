"""Waddle federating with Prosody 0.12 and ejabberd 23.01 (Debian packages), issue 3's
"Interop tests": users on each side exchange messages in both directions, once with
certificate authentication and once with dialback; Waddle's /metrics and the peer's log say
which authentication was used. Waddle's own log is read only where it is what an operator
reads (each such check says so).

Worlds (module-scoped, one peer instance each, shared by the tests of that world):
  prosody-cert, prosody-dialback, ejabberd-cert, ejabberd-dialback
- "cert": every server has a certificate from the private CA and trusts it; the peer has no
  dialback at all (Prosody: s2s_secure_auth, no mod_dialback; ejabberd: no
  mod_s2s_dialback), Waddle keeps allow_unverified_dialback = false. SASL EXTERNAL
  (XEP-0178) is the only way in, in both directions.
- "dialback": self-signed certificates everywhere, dialback loaded on the peer,
  allow_unverified_dialback = true on Waddle: XEP-0220 over TLS in both directions.

Every test starts its own Waddle (fixture `env`) for a domain the peer has never seen
(w-messages-waddle-first.test, w-check-s2s.test, ...), so the s2s streams of that test are
established from a cold start on both sides; the Waddle is stopped at the end of the test.

- test_messages_waddle_first: alice@waddle -> bob@peer first (Waddle's outbound stream and
  the peer's inbound one are set up for it), then the reply (the peer's outbound stream).
- test_messages_peer_first: the same, the other way round.
- test_check_s2s: `waddle check s2s PEER` against the running peer.
- test_check_s2s_diagnosis: the report's DNS, TLS, certificate and offered-methods parts.
- test_iq_both_ways: XEP-0199 pings to the other domain and the other user, both ways.
- test_link_health_pings: Waddle's link pings (ping_interval 1s) are answered by the peer
  and recognised; the link is kept.
- test_presence_subscription: alice@waddle subscribes to carol@peer, carol approves; alice's
  roster on Waddle says 'to' (or 'both'), carol's on the peer 'from' (or 'both'), and alice
  gets carol's presence.
- test_mutual_subscription_and_presence: the other direction too (Waddle handling an inbound
  'subscribe'), rosters 'both', unavailable both ways, probes after a new login.
- test_errors_both_ways: a message to a missing account bounces back across, both ways.
- test_offline_message_from_peer: a remote message for an offline Waddle user is stored and
  delivered (with a delay stamp) at the next login.
- test_peer_user_joins_waddle_room / test_waddle_user_joins_peer_room: federated rooms
  (XEP-0045) both ways: the peer's user in a Waddle room, Waddle's user in the peer's room
  (Prosody's muc component, ejabberd's mod_muc on conference.DOMAIN).
- test_two_domains_one_waddle: one Waddle serving two domains (a certificate each) talks to
  the peer for both; with dialback, the second domain multiplexes on the first one's stream.
Outside the worlds (own federation each, Prosody in cert mode):
- test_prosody_restart_link_replaced: Prosody restarts / is killed; Waddle notices its link
  is gone and the next message opens a new one.
- test_peer_stream_error_is_understood: Prosody refuses Waddle's certificate with a stream
  error; Waddle logs the peer's reason and does not answer with an error of its own.

Logs of every server are attached to a failure report (conftest.py); the run directory is
kept when a test fails (its path is printed at the end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

import harness
from harness import exchange, login, run_async

WORLDS = [(peer, mode) for peer in ("prosody", "ejabberd") for mode in harness.MODES]
PEER_USERS = ("bob", "carol", "dave")  # one roster-keeping user per subscription test
TIMEOUT = 20.0  # per exchange; a cold ejabberd dialback stream takes a few seconds


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    fed: harness.Federation
    peer: Any  # harness.Prosody or harness.Ejabberd
    kind: str  # "prosody" | "ejabberd"
    mode: str  # "cert" | "dialback"


@pytest.fixture(scope="module", params=WORLDS, ids=[f"{p}-{m}" for p, m in WORLDS])
def world(request, interop_root, ca):
    kind, mode = request.param
    fed = harness.Federation(interop_root / f"{kind}-{mode}", ca)
    try:
        domain = f"{kind}.test"
        if kind == "prosody":
            peer = fed.prosody(domain, mode, users=PEER_USERS)
            fed.start()
        else:
            peer = fed.ejabberd(domain, mode)
            fed.start()
            for u in PEER_USERS:
                peer.register(u)
    except BaseException:
        fed.close()
        raise
    yield World(fed, peer, kind, mode)
    fed.close()


class LogView:
    """A server's log from the moment the view was made (the peer is shared by the tests of
    a world, so its earlier lines must not count)."""

    def __init__(self, server: Any, from_start: bool = False):
        self.server = server
        self.offset = 0 if from_start else len(server.log_text())

    def text(self) -> str:
        return self.server.log_text()[self.offset:]

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.text().splitlines() if needle in line]

    def wait(self, needle: str, timeout: float = 15) -> str:
        found: list[str] = []

        def check() -> bool:
            found[:] = self.lines(needle)
            return bool(found)

        harness.wait_until(check, timeout,
                           f"{self.server.name} ({self.server.domain}) log line containing "
                           f"{needle!r}", on_fail=lambda: self.tail())
        return found[0]

    def absent(self, needle: str) -> None:
        hits = self.lines(needle)
        assert not hits, (f"{self.server.name} ({self.server.domain}) logged {needle!r}, "
                          f"which must not happen here:\n" + "\n".join(hits[:5]))

    def tail(self, lines: int = 120) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class Env:
    world: World
    waddle: harness.Waddle
    peer_log: LogView

    @property
    def peer(self) -> Any:
        return self.world.peer

    @property
    def mode(self) -> str:
        return self.world.mode


@pytest.fixture
def env(request, world):
    """A fresh Waddle for `waddle-<test>.test` with user alice, in the world's mode."""
    short = request.node.originalname.removeprefix("test_").replace("_", "-")
    domain = f"w-{short}.test"
    request.node._interop_federation = world.fed  # conftest attaches the logs on failure
    marker = request.node.get_closest_marker("waddle_config")
    overrides = marker.args[0] if marker else None
    w = world.fed.waddle(domain, world.mode, users=["alice"], overrides=overrides)
    try:
        peer_log = LogView(world.peer)
        world.fed.start()  # dnsmasq reloaded with the new records, Waddle started
    except BaseException:
        world.fed.discard(w)
        raise
    yield Env(world, w, peer_log)
    world.fed.discard(w)


# --------------------------------------------------------------------------- checks


DIALBACK_METHODS = ("dialback", "dialback_multiplexed")
AUTHENTICATED = "waddle_s2s_authenticated_total"  # {domain, direction, method}
STREAMS_CLOSED = "waddle_s2s_streams_closed_total"  # {domain, direction, reason}
ERRORS = "waddle_s2s_errors_total"  # {domain, kind}


def assert_tls_version_for_operator(s: Env) -> None:
    """Operator-facing log check: the log is where an operator reads how a federation link
    is protected, so a line of Waddle's log names the peer and the TLS version (1.3, the S2S
    minimum) of its link. The wording around them is free."""
    wl, P = LogView(s.waddle, from_start=True), s.peer.domain
    harness.wait_until(lambda: any(P in line for line in wl.lines("TLSv1.3")), 5,
                       f"a line of Waddle's log naming {P} and TLSv1.3", on_fail=wl.tail)


def assert_authentication(s: Env) -> None:
    """Both streams (Waddle -> peer and peer -> Waddle) were authenticated with the mode's
    method, according to Waddle's /metrics and to the peer's log; the other method was not
    used."""
    W, P = s.waddle.domain, s.peer.domain
    w = s.waddle
    pl = s.peer_log
    if s.mode == "cert":
        # Outbound SASL EXTERNAL in cert mode also means the peer's certificate was valid:
        # without allow_unverified_dialback Waddle goes no further with an invalid one.
        w.wait_metric(AUTHENTICATED, domain=P, direction="out", method="sasl_external")
        w.wait_metric(AUTHENTICATED, domain=P, direction="in", method="sasl_external")
        text = w.metrics_text()
        assert w.metric(AUTHENTICATED, text, domain=P, method=DIALBACK_METHODS) == 0, text
        # A failed SASL EXTERNAL (either way) or a dialback attempt counts as an error.
        assert w.metric(ERRORS, text, domain=P, kind=("tls", "dialback")) == 0, text
        if s.world.kind == "prosody":
            pl.wait(f"Accepting SASL EXTERNAL identity from {W}")     # Waddle -> Prosody
            pl.wait(f"Incoming s2s connection {W}->{P} complete")
            pl.wait(f"SASL EXTERNAL with {W} succeeded")              # Prosody -> Waddle
            pl.wait(f"Outgoing s2s connection {P}->{W} complete")
            pl.absent(f"SASL EXTERNAL with {W} failed")
            assert "Stream encrypted (TLSv1.3" in pl.text()
        else:
            pl.wait(f"Accepted inbound s2s EXTERNAL authentication {W} -> {P}")
            pl.wait(f"Accepted outbound s2s EXTERNAL authentication {P} -> {W}")
            pl.absent(f"Failed inbound s2s EXTERNAL authentication {W}")
            pl.absent(f"Failed outbound s2s EXTERNAL authentication {P} -> {W}")
    else:
        w.wait_metric(AUTHENTICATED, domain=P, direction="out", method="dialback")
        w.wait_metric(AUTHENTICATED, domain=P, direction="in", method=DIALBACK_METHODS)
        # Waddle as authoritative server confirmed its own key to the peer
        w.wait_metric("waddle_s2s_dialback_verify_total", domain=P, result="valid")
        text = w.metrics_text()
        assert w.metric("waddle_s2s_dialback_verify_total", text, domain=P,
                        result="invalid") == 0, text
        assert w.metric(AUTHENTICATED, text, domain=P, method="sasl_external") == 0, text
        # an invalid key from the peer counts as a dialback error
        assert w.metric(ERRORS, text, domain=P, kind="dialback") == 0, text
        if s.world.kind == "prosody":
            pl.wait(f"asking {W} if key")                    # Prosody receiving Waddle's key
            pl.wait(f"Incoming s2s connection {W}->{P} complete")
            pl.wait("sent dialback key on outgoing s2s stream")  # Prosody -> Waddle
            pl.wait("verified dialback key... it is valid")   # Prosody authoritative
            pl.wait(f"Outgoing s2s connection {P}->{W} complete")
            pl.absent(f"Accepting SASL EXTERNAL identity from {W}")
            pl.absent("authoritative server for")             # "... denied the key"
            assert "Stream encrypted (TLSv1.3" in pl.text()
        else:
            pl.wait(f"Accepted inbound s2s dialback authentication {W} -> {P}")
            pl.wait(f"Accepted outbound s2s dialback authentication {P} -> {W}")
            pl.absent(f"Accepted inbound s2s EXTERNAL authentication {W} -> {P}")
            pl.absent(f"Accepted outbound s2s EXTERNAL authentication {P} -> {W}")
    assert_tls_version_for_operator(s)


def converse(s: Env, waddle_first: bool) -> dict[str, float]:
    """alice@waddle and bob@peer, two messages each way; the first of them opens the
    first stream. Returns delivery times."""
    times: dict[str, float] = {}

    async def body():
        alice = await login(s.waddle, "alice")
        bob = await login(s.peer, "bob")
        order = [(alice, bob, "waddle->peer"), (bob, alice, "peer->waddle")]
        if not waddle_first:
            order.reverse()
        for rnd in ("first", "again"):
            for a, b, label in order:
                body_text = f"{label} {rnd}: {a.boundjid.bare} says hi to {b.boundjid.bare}"
                times[f"{label} {rnd}"] = await exchange(a, b, body_text, timeout=TIMEOUT)
        errors = [str(m) for m in alice.messages.items + bob.messages.items
                  if m["type"] == "error"]
        assert not errors, f"unexpected error stanzas: {errors}"

    run_async(body, timeout=120)
    return times


async def roster_items(c: Any) -> dict[str, dict]:
    """The user's roster as the server has it (a roster get, which also makes the resource
    "interested", RFC 6121 §2.1.6): {bare JID: {"subscription": ..., "ask": ...}}."""
    iq = c.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    res = await iq.send(timeout=TIMEOUT)
    return {str(j): dict(v) for j, v in res["roster"]["items"].items()}


# --------------------------------------------------------------------------- tests


SM_STREAMS = "waddle_s2s_stream_management_total"  # {domain, direction}
UNACKED = "waddle_s2s_unacked_stanzas"  # {domain}


def assert_stream_management(s: Env) -> None:
    """Prosody (with its shipped smacks module) and Waddle use stream management on their
    links both ways, and Prosody acknowledges everything Waddle sent. Prosody 0.12 offers and
    enables it only on authenticated streams, that is after SASL EXTERNAL (dialback streams
    never see features after authentication), and ejabberd 23 does not offer it on server
    links: there the links work without it."""
    w, P = s.waddle, s.peer.domain
    if s.world.kind == "prosody" and s.mode == "cert":
        w.wait_metric(SM_STREAMS, domain=P, direction="out")  # Waddle enabled it on its link
        w.wait_metric(SM_STREAMS, domain=P, direction="in")   # Prosody enabled it on its link
        harness.wait_until(lambda: w.metric(UNACKED, domain=P) == 0, 10,
                           f"Prosody acknowledges every stanza Waddle sent to {P}",
                           on_fail=lambda: w.metrics_text())
    else:
        text = w.metrics_text()
        assert w.metric(SM_STREAMS, text, domain=P) == 0, text


def test_messages_waddle_first(env):
    times = converse(env, waddle_first=True)
    print(f"{env.world.kind}/{env.mode} delivery times (s):",
          {k: round(v, 3) for k, v in times.items()})
    assert_authentication(env)
    assert_stream_management(env)


def test_messages_peer_first(env):
    times = converse(env, waddle_first=False)
    print(f"{env.world.kind}/{env.mode} delivery times (s):",
          {k: round(v, 3) for k, v in times.items()})
    assert_authentication(env)
    assert_stream_management(env)


def test_check_s2s(env):
    """`waddle check s2s PEER` authenticates a test stream with the mode's method, exits 0
    and says so; the peer saw that stream authenticate the same way."""
    W, P = env.waddle.domain, env.peer.domain
    cp = env.waddle.check_s2s(P)
    report = cp.stdout + cp.stderr
    print(report)
    method = "SASL EXTERNAL" if env.mode == "cert" else "dialback"
    assert cp.returncode == 0, f"check s2s exited {cp.returncode}:\n{report}"
    assert re.search(rf"authenticated with {method}\b", report), report
    other = "dialback" if env.mode == "cert" else "SASL EXTERNAL"
    assert not re.search(rf"authenticated with {other}\b", report), report
    pl = env.peer_log
    if env.world.kind == "prosody":
        if env.mode == "cert":
            pl.wait(f"Accepting SASL EXTERNAL identity from {W}")
        else:
            pl.wait(f"asking {W} if key")
        pl.wait(f"Incoming s2s connection {W}->{P} complete")
    else:
        kind = "EXTERNAL" if env.mode == "cert" else "dialback"
        pl.wait(f"Accepted inbound s2s {kind} authentication {W} -> {P}")


def test_check_s2s_diagnosis(env):
    """Issue 3: `check s2s` "resolves DNS as the server would, connects, reports TLS version
    and certificate validity for the domain, which authentication methods the peer offers,
    and whether a test stream authenticates". Every missing item is listed in the failure."""
    P = env.peer.domain
    cp = env.waddle.check_s2s(P)
    report = cp.stdout + cp.stderr
    print(report)
    assert cp.returncode == 0, report
    low = report.lower()
    problems = []
    # the peer's SRV record _xmpp-server._tcp.PEER -> PEER:5269 exists (and Waddle asked
    # for it: see dnsmasq.log), so the endpoint did not come from an A/AAAA fallback
    srv = env.world.fed.dns.query(f"_xmpp-server._tcp.{P}", "SRV")
    assert srv == (0, [(0, 5, harness.S2S_PORT, P)]), srv
    if "a/aaaa fallback" in low:
        problems.append("reports the SRV-found endpoint as an 'A/AAAA fallback'")
    if "tlsv1.3" not in low and "tls 1.3" not in low:
        problems.append("no TLS version")
    if "certificate" not in low:
        problems.append("nothing about the peer's certificate")
    elif env.mode == "dialback" and not re.search(
            r"self.signed|untrusted|not valid|not verified|invalid", low):
        problems.append("the peer's self-signed certificate is not reported as not valid")
    offered = ["EXTERNAL"] if (env.mode == "cert" or env.world.kind == "ejabberd") else []
    if env.mode == "dialback":
        offered.append("dialback")
    if not re.search(r"offer", low) or not all(m.lower() in low for m in offered):
        problems.append(f"the methods the peer offers ({', '.join(offered)}) are not listed")
    assert not problems, "check s2s report incomplete: " + "; ".join(problems) + \
        f"\n--- report:\n{report}"


def test_iq_both_ways(env):
    """IQs across the federation both ways: XEP-0199 pings to the other server's domain
    (answered by that server) and to the other user's full JID (answered by the client)."""
    times: dict[str, float] = {}

    async def body():
        alice = await login(env.waddle, "alice")
        bob = await login(env.peer, "bob")
        for label, c, target in (
                ("waddle user -> peer domain", alice, env.peer.domain),
                ("peer user -> waddle domain", bob, env.waddle.domain),
                ("waddle user -> peer user", alice, bob.boundjid.full),
                ("peer user -> waddle user", bob, alice.boundjid.full)):
            try:
                times[label] = await c["xep_0199"].ping(jid=target, timeout=TIMEOUT)
            except Exception as e:  # IqError / IqTimeout: say which one
                raise AssertionError(f"{label} ({c.boundjid} -> {target}): {e!r} "
                                     f"{getattr(e, 'iq', '')}") from None

    run_async(body, timeout=120)
    print("ping round trips (s):", {k: round(v, 3) for k, v in times.items()})
    assert_authentication(env)


@pytest.mark.waddle_config({"s2s": {"ping_interval": "1s"}})
def test_link_health_pings(env):
    """Waddle's link health checks (whitespace keepalive + XEP-0199 ping to the peer's domain
    after ping_interval of silence) are answered by the peer and recognised: the link is
    kept, not replaced, and still carries messages afterwards."""
    w, P = env.waddle, env.peer.domain

    async def body():
        alice = await login(env.waddle, "alice")
        bob = await login(env.peer, "bob")
        await exchange(alice, bob, "before the pings", timeout=TIMEOUT)
        import asyncio
        # Every answered ping is one round trip in the latency histogram.
        await asyncio.to_thread(w.wait_metric, "waddle_s2s_latency_seconds_count", 3, 10,
                                domain=P)
        await exchange(alice, bob, "after the pings", timeout=TIMEOUT)
        await exchange(bob, alice, "and back", timeout=TIMEOUT)

    run_async(body, timeout=60)
    text = w.metrics_text()
    assert w.metric(ERRORS, text, domain=P, kind="timeout") == 0, text  # no unanswered ping
    assert w.metric(AUTHENTICATED, text, domain=P, direction="out") == 1, (
        f"the link to {P} was replaced:\n{text}")
    assert w.metric(STREAMS_CLOSED, text, domain=P, direction="out") == 0, text


def test_presence_subscription(env):
    """alice@waddle subscribes to carol@peer; carol approves. RFC 6121 §3.1: alice's roster
    (on Waddle) gets subscription 'to', carol's (on the peer) 'from', and the peer sends
    carol's current presence to alice."""
    W, P = env.waddle.domain, env.peer.domain
    result: dict[str, Any] = {}

    async def body():
        alice = await login(env.waddle, "alice")
        carol = await login(env.peer, "carol")
        for c in (alice, carol):  # the test answers subscription requests itself
            c.auto_authorize = None
            c.auto_subscribe = False
            await roster_items(c)  # an "interested" resource (RFC 6121 §2.1.6)
        a, c_ = alice.boundjid.bare, carol.boundjid.bare
        alice.send_presence(pto=c_, ptype="subscribe")
        await carol.presences.get(
            lambda p: p["type"] == "subscribe" and p["from"].bare == a, TIMEOUT,
            f"subscription request from {a} at {c_}")
        carol.send_presence(pto=a, ptype="subscribed")
        await alice.presences.get(
            lambda p: p["type"] == "subscribed" and p["from"].bare == c_, TIMEOUT,
            f"'subscribed' from {c_} at {a}")
        await alice.presences.get(
            lambda p: p["type"] == "available" and p["from"].bare == c_ and
            p["from"].resource != "", TIMEOUT, f"carol's available presence at {a}")
        result["alice"] = await roster_items(alice)
        result["carol"] = await roster_items(carol)
        errors = [str(p) for p in alice.presences.items + carol.presences.items
                  if p["type"] == "error"]
        assert not errors, f"presence errors: {errors}"

    run_async(body, timeout=90)
    print("rosters:", result)
    carol_jid, alice_jid = f"carol@{P}", f"alice@{W}"
    assert carol_jid in result["alice"], f"carol not on alice's roster: {result['alice']}"
    assert result["alice"][carol_jid]["subscription"] in ("to", "both"), result["alice"]
    assert alice_jid in result["carol"], f"alice not on carol's roster: {result['carol']}"
    assert result["carol"][alice_jid]["subscription"] in ("from", "both"), result["carol"]


def test_mutual_subscription_and_presence(env):
    """Both directions of RFC 6121 subscription handling across the federation, then
    presence. dave@peer (the client is called `carol` below; dave keeps no roster from other
    tests) asks alice@waddle first (Waddle handles an inbound 'subscribe' and sends alice's
    approval out), then alice asks dave; both rosters end at 'both'. Unavailable presence
    crosses both ways; when alice logs in again, Waddle probes the peer for dave's presence
    and dave sees alice available again."""
    W, P = env.waddle.domain, env.peer.domain
    result: dict[str, Any] = {}

    def presence_from(bare: str, ptype: str):
        return lambda p: p["type"] == ptype and p["from"].bare == bare

    async def manual(c):
        c.auto_authorize = None
        c.auto_subscribe = False
        return c

    async def body():
        alice = await manual(await login(env.waddle, "alice"))
        carol = await manual(await login(env.peer, "dave"))
        # RFC 6121 §2.1.6: subscription stanzas go to "interested" resources, the ones that
        # requested the roster (Prosody holds inbound 'subscribed' back from the others)
        await roster_items(alice)
        await roster_items(carol)
        a, c_ = alice.boundjid.bare, carol.boundjid.bare
        # carol (peer) -> alice (Waddle)
        carol.send_presence(pto=a, ptype="subscribe")
        await alice.presences.get(presence_from(c_, "subscribe"), TIMEOUT,
                                  f"'subscribe' from {c_} at {a}")
        alice.send_presence(pto=c_, ptype="subscribed")
        await carol.presences.get(presence_from(a, "subscribed"), TIMEOUT,
                                  f"'subscribed' from {a} at {c_}")
        await carol.presences.get(presence_from(a, "available"), TIMEOUT,
                                  f"alice's presence at {c_} after approval")
        # alice (Waddle) -> carol (peer)
        alice.send_presence(pto=c_, ptype="subscribe")
        await carol.presences.get(presence_from(a, "subscribe"), TIMEOUT,
                                  f"'subscribe' from {a} at {c_}")
        carol.send_presence(pto=a, ptype="subscribed")
        await alice.presences.get(presence_from(c_, "subscribed"), TIMEOUT,
                                  f"'subscribed' from {c_} at {a}")
        await alice.presences.get(presence_from(c_, "available"), TIMEOUT,
                                  f"carol's presence at {a} after approval")
        result["alice"] = await roster_items(alice)
        result["carol"] = await roster_items(carol)
        # alice goes offline: carol sees it (Waddle broadcasts unavailable over s2s)
        await alice.close()
        await carol.presences.get(presence_from(a, "unavailable"), TIMEOUT,
                                  f"alice's unavailable presence at {c_}")
        # alice comes back: Waddle probes carol's server; carol sees alice available
        alice2 = await manual(await login(env.waddle, "alice"))
        await roster_items(alice2)
        await alice2.presences.get(presence_from(c_, "available"), TIMEOUT,
                                   f"carol's presence at {a} after alice's new login (probe)")
        await carol.presences.get(presence_from(a, "available"), TIMEOUT,
                                  f"alice's presence at {c_} after her new login")
        # carol goes offline: alice sees it (the peer's unavailable crosses into Waddle)
        await carol.close()
        await alice2.presences.get(presence_from(c_, "unavailable"), TIMEOUT,
                                   f"carol's unavailable presence at {a}")
        errors = [str(p) for p in alice2.presences.items + carol.presences.items
                  if p["type"] == "error"]
        assert not errors, f"presence errors: {errors}"

    run_async(body, timeout=120)
    print("rosters:", result)
    assert result["alice"].get(f"dave@{P}", {}).get("subscription") == "both", result
    assert result["carol"].get(f"alice@{W}", {}).get("subscription") == "both", result


def test_errors_both_ways(env):
    """A message to an account that does not exist comes back as an error from the other
    server, both ways (service-unavailable, RFC 6121 §8.5.2.2.1 / Waddle's choice), and the
    error reaches the sender."""
    W, P = env.waddle.domain, env.peer.domain
    got: dict[str, str] = {}

    async def body():
        alice = await login(env.waddle, "alice")
        bob = await login(env.peer, "bob")
        for label, c, to in (("waddle -> peer", alice, f"nobody@{P}"),
                             ("peer -> waddle", bob, f"nobody@{W}")):
            c.chat(to, f"{label}: is anybody there?")
            err = await c.messages.get(
                lambda m: m["type"] == "error" and m["from"].bare == to, TIMEOUT,
                f"the error for the message to {to} at {c.boundjid.bare}")
            got[label] = err["error"]["condition"]

    run_async(body, timeout=90)
    print("error conditions:", got)
    assert got["peer -> waddle"] == "service-unavailable", got
    assert got["waddle -> peer"] in ("service-unavailable", "item-not-found"), got


def _db_contains(w: harness.Waddle, token: str) -> bool:
    """True if any text column of Waddle's SQLite database contains token (read-only)."""
    import sqlite3
    db = w.data / "waddle.db"
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return False
    try:
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in con.execute(f'SELECT * FROM "{t}"'):
                if any(isinstance(v, str) and token in v or
                       isinstance(v, (bytes, memoryview)) and token.encode() in bytes(v)
                       for v in row):
                    return True
    except sqlite3.Error:
        return False
    finally:
        con.close()
    return False


def test_offline_message_from_peer(env):
    """bob@peer writes to alice@waddle while she is offline: Waddle stores the message (no
    error goes back) and delivers it, with a delay stamp, when she logs in."""
    W = env.waddle.domain
    text = f"for when you are back ({W})"

    async def body():
        import asyncio
        bob = await login(env.peer, "bob")
        bob.chat(f"alice@{W}", text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while not _db_contains(env.waddle, text):  # stored in Waddle's offline storage
            errors = [str(x) for x in bob.messages.items if x["type"] == "error"]
            assert not errors, f"error returned to bob: {errors}"
            assert loop.time() < deadline, (
                f"the message was not stored within {TIMEOUT}s:\n"
                f"{LogView(env.waddle, from_start=True).tail(60)}")
            await asyncio.sleep(0.1)
        alice = await login(env.waddle, "alice")
        m = await alice.expect_message(frm=bob.boundjid.bare, body=text, timeout=TIMEOUT)
        delay = m.xml.find("{urn:xmpp:delay}delay")
        assert delay is not None and delay.get("stamp"), f"no delay stamp (XEP-0203): {m}"
        assert not [x for x in bob.messages.items if x["type"] == "error"], \
            f"errors returned to bob: {bob.messages.items}"

    run_async(body, timeout=90)


# --------------------------------------------------------------------------- rooms (XEP-0045)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"


def _codes(p: Any) -> set[str]:
    return {s.get("code") for s in p.xml.iter(f"{{{NS_MUC_USER}}}status")}


async def _join(c: Any, room: str, nick: str, timeout: float = TIMEOUT) -> Any:
    """Joins `room` as `nick`; returns the self-presence (status 110)."""
    import xml.etree.ElementTree as ET
    p = c.make_presence(pto=f"{room}/{nick}")
    ET.SubElement(p.xml, f"{{{NS_MUC}}}x")
    p.send()
    return await c.presences.get(
        lambda x: str(x["from"]) == f"{room}/{nick}" and "110" in _codes(x), timeout,
        f"self-presence from {room}/{nick} for {c.label}")


async def _presence_of(c: Any, occupant: str, available: bool = True) -> Any:
    def pred(x: Any) -> bool:
        return str(x["from"]) == occupant and (x.xml.get("type") != "unavailable") == available
    return await c.presences.get(pred, TIMEOUT, f"presence of {occupant} for {c.label}")


async def _groupchat(a: Any, b: Any, room: str, nick: str, body: str) -> None:
    a.send_message(mto=room, mbody=body, mtype="groupchat")
    for c in (a, b):
        await c.messages.get(
            lambda m: str(m["from"]) == f"{room}/{nick}" and m["body"] == body
            and m["type"] == "groupchat", TIMEOUT, f"groupchat {body!r} to {c.label}")


def test_peer_user_joins_waddle_room(env):
    """A user of Prosody/ejabberd joins a room hosted by Waddle (created by a Waddle user):
    both see each other's presence from the room, groupchat flows both ways, and the peer
    user's leaving reaches the Waddle user."""
    W, P = env.waddle.domain, env.peer.domain
    room = f"lobby@conference.{W}"

    async def body():
        alice = await login(env.waddle, "alice")
        bob = await login(env.peer, "bob")
        own = await _join(alice, room, "alice")
        assert "201" in _codes(own), str(own)
        await _join(bob, room, "bob")
        await _presence_of(bob, f"{room}/alice")
        seen = await _presence_of(alice, f"{room}/bob")
        item = seen.xml.find(f".//{{{NS_MUC_USER}}}item")
        assert item is not None and item.get("jid", "").startswith(f"bob@{P}/"), str(seen)
        await _groupchat(alice, bob, room, "alice", "hello from waddle")
        await _groupchat(bob, alice, room, "bob", "hello from the peer")
        bob.send_presence(pto=f"{room}/bob", ptype="unavailable")
        await _presence_of(alice, f"{room}/bob", available=False)

    run_async(body, timeout=90)
    # The peer's server talked to the room service over an authenticated stream (the
    # groupchat above crossed it) with the world's method.
    method = "sasl_external" if env.world.mode == "cert" else DIALBACK_METHODS
    env.waddle.wait_metric(AUTHENTICATED, domain=P, direction="in", method=method)


def test_waddle_user_joins_peer_room(env):
    """A Waddle user joins a room on the peer's MUC service: presence both ways, groupchat
    both ways, leaving seen by the peer's user. Waddle attaches no identity credential to a
    join for a room service that does not announce urn:waddle:identity."""
    import xml.etree.ElementTree as ET
    W, P = env.waddle.domain, env.peer.domain
    room = f"{W.split('.')[0]}@conference.{P}"

    async def body():
        alice = await login(env.waddle, "alice")
        bob = await login(env.peer, "bob")
        own = await _join(bob, room, "bob")
        if "201" in _codes(own):
            # An instant room (XEP-0045 10.1.2), in case the peer keeps new rooms locked.
            iq = bob.make_iq_set(ito=room)
            q = ET.SubElement(iq.xml, f"{{{NS_MUC_OWNER}}}query")
            ET.SubElement(q, "{jabber:x:data}x").set("type", "submit")
            await iq.send(timeout=TIMEOUT)
        await _join(alice, room, "alice", timeout=30)
        await _presence_of(alice, f"{room}/bob")
        seen = await _presence_of(bob, f"{room}/alice")
        assert seen.xml.find("{urn:waddle:identity}credential") is None, (
            "a credential reached the peer's occupants: " + str(seen))
        await _groupchat(bob, alice, room, "bob", "hello from the peer")
        await _groupchat(alice, bob, room, "alice", "hello from waddle")
        alice.send_presence(pto=f"{room}/alice", ptype="unavailable")
        await _presence_of(bob, f"{room}/alice", available=False)

    run_async(body, timeout=90)


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_prosody_restart_link_replaced(federation, how):
    """Prosody goes away while Waddle has an authenticated link to it (how="restart": a
    clean shutdown that closes the streams; how="kill": SIGKILL, the kernel closes the
    sockets), then comes back. Waddle must notice that its link is gone: the next message
    from alice opens a new link and arrives; nothing is lost or bounced."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"])
    w = fed.waddle("w-restart.test", "cert", users=["alice"])
    fed.start()
    P = p.domain

    async def before():
        alice = await login(w, "alice")
        bob = await login(p, "bob")
        await exchange(alice, bob, "before", timeout=TIMEOUT)
        await exchange(bob, alice, "before, back", timeout=TIMEOUT)

    run_async(before, timeout=60)
    assert w.metric(AUTHENTICATED, domain=P, direction="out") == 1
    if how == "kill":
        harness._stop_process(p.proc, group=True, sig=harness.signal.SIGKILL)
    else:
        p.stop()
    # Waddle sees its stream closed by the peer (EOF) without being told anything else
    w.wait_metric(STREAMS_CLOSED, timeout=10, domain=P, direction="out", reason="peer")
    p.start()

    async def after():
        alice = await login(w, "alice")
        bob = await login(p, "bob")
        await exchange(alice, bob, "after the restart", timeout=TIMEOUT)
        await exchange(bob, alice, "after the restart, back", timeout=TIMEOUT)
        errors = [str(m) for m in alice.messages.items + bob.messages.items
                  if m["type"] == "error"]
        assert not errors, f"error stanzas: {errors}"

    run_async(after, timeout=60)
    text = w.metrics_text()
    assert w.metric(AUTHENTICATED, text, domain=P, direction="out",
                    method="sasl_external") == 2, text


def test_two_domains_one_waddle(world):
    """One Waddle serving two domains, each with its own certificate (chosen by SNI on
    inbound streams): users of both domains exchange messages with the peer, both ways, and
    every stream authenticates for the right domain with the world's method."""
    fed, peer, mode = world.fed, world.peer, world.mode
    A, B = "w-two-a.test", "w-two-b.test"
    w = fed.waddle(A, mode, extra_domains=[B], users=["alice", f"bea@{B}"])
    try:
        fed.start()
        P = peer.domain
        pl = LogView(peer)

        async def body():
            bob = await login(peer, "bob")
            alice = await login(w, "alice")
            bea = await login(w, f"bea@{B}")
            await exchange(alice, bob, "from the first domain", timeout=TIMEOUT)
            await exchange(bea, bob, "from the second domain", timeout=TIMEOUT)
            await exchange(bob, alice, "to the first domain", timeout=TIMEOUT)
            await exchange(bob, bea, "to the second domain", timeout=TIMEOUT)
            errors = [str(m) for c in (alice, bea, bob) for m in c.messages.items
                      if m["type"] == "error"]
            assert not errors, f"error stanzas: {errors}"

        run_async(body, timeout=90)
        method = "sasl_external" if mode == "cert" else "dialback"
        # ejabberd announces dialback errors (XEP-0220 2.4), so the second domain authenticates
        # with a db:result on the first domain's stream (2.6 multiplexing); Prosody announces
        # dialback without <errors/>, where a refusal could close the shared stream, so each
        # domain gets a stream of its own. Which local domain each pair is for, the peer's log
        # says below (and the messages above, which crossed for both).
        if mode == "dialback" and world.kind == "ejabberd":
            w.wait_metric(AUTHENTICATED, domain=P, direction="out", method="dialback")
            w.wait_metric(AUTHENTICATED, domain=P, direction="out",
                          method="dialback_multiplexed")
        else:
            w.wait_metric(AUTHENTICATED, 2, domain=P, direction="out", method=method)
        # The peer's streams, one pair for each of the two domains.
        w.wait_metric(AUTHENTICATED, 2, domain=P, direction="in",
                      method="sasl_external" if mode == "cert" else DIALBACK_METHODS)
        for d in (A, B):
            if world.kind == "prosody":
                if mode == "cert":
                    pl.wait(f"Accepting SASL EXTERNAL identity from {d}")
                    pl.wait(f"SASL EXTERNAL with {d} succeeded")
                pl.wait(f"Incoming s2s connection {d}->{P} complete")
                pl.wait(f"Outgoing s2s connection {P}->{d} complete")
            else:
                kind = "EXTERNAL" if mode == "cert" else "dialback"
                pl.wait(f"Accepted inbound s2s {kind} authentication {d} -> {P}")
                pl.wait(f"Accepted outbound s2s {kind} authentication {P} -> {d}")
    finally:
        fed.discard(w)


def test_peer_stream_error_is_understood(federation):
    """Prosody (cert mode) connects to a Waddle whose certificate is for another name, finds
    it not valid for the domain and closes its stream with <stream:error><not-authorized/>
    and a text. RFC 6120 §4.9: a received stream error ends the stream; Waddle logs the
    peer's condition and text (the operator's only clue) and does not answer with a stream
    error of its own. The sender gets an error, and nothing is delivered."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"])
    wrong = fed.ca.issue("w-wrong-name-elsewhere.test")
    w = fed.waddle("w-wrong-name.test", "cert", users=["alice"],
                   overrides={"tls": {"cert": str(wrong.cert), "key": str(wrong.key)}})
    fed.start()
    W, P = w.domain, p.domain

    async def body():
        bob = await login(p, "bob")
        bob.chat(f"alice@{W}", "you will not get this")
        err = await bob.messages.get(lambda m: m["type"] == "error", TIMEOUT,
                                     "the error for bob's message")
        return str(err)

    err = run_async(body, timeout=60)
    print("error at bob:", err)
    pl = LogView(p, from_start=True)
    pl.wait(f"Forbidding insecure connection to/from {W}")
    # The peer closed the stream, and Waddle closed none with an error of its own (it would
    # have, e.g. unsupported-stanza-type, had it taken the stream error for a stanza).
    w.wait_metric(ERRORS, timeout=5, kind="stream_error")
    w.wait_metric(STREAMS_CLOSED, timeout=5, direction="in", reason="peer")
    text = w.metrics_text()
    assert w.metric(STREAMS_CLOSED, text, direction="in", reason="error") == 0, text
    # Operator-facing: the peer's condition and text in Waddle's log are the operator's only
    # clue to why the peer refused the link.
    wl = LogView(w, from_start=True)
    line = wl.wait("not-authorized", timeout=5)
    assert P in line or "prosody" in line or "127.0.0.1" in line, line
    wl.wait("certificate is not valid for this name", timeout=5)
