"""Waddle federating with Prosody 0.12 and ejabberd 23.01 (Debian packages), issue 3's
"Interop tests": users on each side exchange messages in both directions, once with
certificate authentication and once with dialback, and the logs of both servers say which
authentication was used.

Worlds (module-scoped, one peer instance each, shared by the tests of that world):
  prosody-cert, prosody-dialback, ejabberd-cert, ejabberd-dialback
- "cert": every server has a certificate from the private CA and trusts it; the peer has no
  dialback at all (Prosody: s2s_secure_auth, no mod_dialback; ejabberd: no
  mod_s2s_dialback), Waddle keeps allow_unverified_dialback = false. SASL EXTERNAL
  (XEP-0178) is the only way in, in both directions.
- "dialback": self-signed certificates everywhere, dialback loaded on the peer,
  allow_unverified_dialback = true on Waddle: XEP-0220 over TLS in both directions.

Every test starts its own Waddle for a domain the peer has never seen (w-messages-waddle-first.test,
w-check-s2s.test, ...), so the s2s streams of that test are established from a cold start on
both sides; the Waddle is stopped at the end of the test.

- test_messages_waddle_first: alice@waddle -> bob@peer first (Waddle's outbound stream and
  the peer's inbound one are set up for it), then the reply (the peer's outbound stream).
- test_messages_peer_first: the same, the other way round.
- test_check_s2s: `waddle check s2s PEER` against the running peer.
- test_presence_subscription: alice@waddle subscribes to carol@peer, carol approves; alice's
  roster on Waddle says 'to' (or 'both'), carol's on the peer 'from' (or 'both'), and alice
  gets carol's presence.

Logs of every server are attached to a failure report (conftest.py); the run directory is
kept when a test fails (its path is printed at the end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

import harness
from harness import exchange, login, run_async

WORLDS = [(peer, mode) for peer in ("prosody", "ejabberd") for mode in harness.MODES]
PEER_USERS = ("bob", "carol")
TIMEOUT = 20.0  # per exchange; a cold ejabberd dialback stream takes a few seconds


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    fed: harness.Federation
    peer: Any  # harness.Prosody or harness.Ejabberd
    kind: str  # "prosody" | "ejabberd"
    mode: str  # "cert" | "dialback"
    waddles: list = field(default_factory=list)


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
                          f"which this mode must not use:\n" + "\n".join(hits[:5]))

    def tail(self, lines: int = 120) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class Setup:
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
def setup(request, world):
    """A fresh Waddle for `waddle-<test>.test` with user alice, in the world's mode."""
    short = request.node.originalname.removeprefix("test_").replace("_", "-")
    domain = f"w-{short}.test"
    request.node._interop_federation = world.fed  # conftest attaches the logs on failure
    w = world.fed.waddle(domain, world.mode, users=["alice"])
    try:
        peer_log = LogView(world.peer)
        world.fed.start()  # dnsmasq reloaded with the new records, Waddle started
    except BaseException:
        world.fed.discard(w)
        raise
    yield Setup(world, w, peer_log)
    world.fed.discard(w)


# --------------------------------------------------------------------------- checks


def assert_authentication(s: Setup) -> None:
    """Both streams (Waddle -> peer and peer -> Waddle) were authenticated with the mode's
    method, according to Waddle's log and to the peer's log; the other method was not used."""
    W, P = s.waddle.domain, s.peer.domain
    wl = LogView(s.waddle, from_start=True)
    pl = s.peer_log
    if s.mode == "cert":
        out = wl.wait(f"s2s {W} -> {P}: authenticated with SASL EXTERNAL over ")
        assert "over TLSv1.3" in out and "(peer certificate valid)" in out, out
        inb = wl.wait(f"s2s in {P} -> {W}: authenticated with SASL EXTERNAL over ")
        assert "over TLSv1.3" in inb, inb
        wl.absent(f"s2s in {P} -> {W}: dialback")
        wl.absent(f"s2s {W} -> {P}: authenticated with dialback")
        wl.absent("SASL EXTERNAL failed")
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
        out = wl.wait(f"s2s {W} -> {P}: authenticated with dialback over ")
        assert "over TLSv1.3" in out and "(peer certificate not verified)" in out, out
        inb = wl.wait(f"s2s in {P} -> {W}: dialback valid over ")
        assert "over TLSv1.3" in inb, inb
        # Waddle as authoritative server confirmed its own key to the peer
        wl.wait(f"s2s: dialback verify from {P} for {W}")
        assert all(line.endswith(": valid") for line in
                   wl.lines(f"s2s: dialback verify from {P} for {W}")), \
            wl.lines("dialback verify")
        wl.absent(f"s2s in {P} -> {W}: authenticated with SASL EXTERNAL")
        wl.absent(f"s2s {W} -> {P}: authenticated with SASL EXTERNAL")
        wl.absent(f"s2s in {P} -> {W}: dialback invalid")
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


def converse(s: Setup, waddle_first: bool) -> dict[str, float]:
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


# --------------------------------------------------------------------------- tests


def test_messages_waddle_first(setup):
    times = converse(setup, waddle_first=True)
    print(f"{setup.world.kind}/{setup.mode} delivery times (s):",
          {k: round(v, 3) for k, v in times.items()})
    assert_authentication(setup)


def test_messages_peer_first(setup):
    times = converse(setup, waddle_first=False)
    print(f"{setup.world.kind}/{setup.mode} delivery times (s):",
          {k: round(v, 3) for k, v in times.items()})
    assert_authentication(setup)


def test_check_s2s(setup):
    """`waddle check s2s PEER` authenticates a test stream with the mode's method, exits 0
    and says so; the peer saw that stream authenticate the same way."""
    W, P = setup.waddle.domain, setup.peer.domain
    cp = setup.waddle.check_s2s(P)
    report = cp.stdout + cp.stderr
    print(report)
    method = "SASL EXTERNAL" if setup.mode == "cert" else "dialback"
    assert cp.returncode == 0, f"check s2s exited {cp.returncode}:\n{report}"
    assert re.search(rf"authenticated with {method}\b", report), report
    other = "dialback" if setup.mode == "cert" else "SASL EXTERNAL"
    assert not re.search(rf"authenticated with {other}\b", report), report
    pl = setup.peer_log
    if setup.world.kind == "prosody":
        if setup.mode == "cert":
            pl.wait(f"Accepting SASL EXTERNAL identity from {W}")
        else:
            pl.wait(f"asking {W} if key")
        pl.wait(f"Incoming s2s connection {W}->{P} complete")
    else:
        kind = "EXTERNAL" if setup.mode == "cert" else "dialback"
        pl.wait(f"Accepted inbound s2s {kind} authentication {W} -> {P}")


def test_check_s2s_reports_tls_and_certificate(setup):
    """Issue 3: the diagnosis reports the TLS version, whether the peer's certificate is valid
    for its domain, and which authentication methods the peer offers."""
    P = setup.peer.domain
    cp = setup.waddle.check_s2s(P)
    report = cp.stdout + cp.stderr
    print(report)
    assert cp.returncode == 0, report
    assert "TLSv1.3" in report, f"no TLS version in the report:\n{report}"
    low = report.lower()
    assert "certificate" in low, f"nothing about the peer's certificate:\n{report}"
    if setup.mode == "cert":
        assert "EXTERNAL" in report
    else:
        assert re.search(r"self.signed|untrusted|not valid|not verified|invalid", low), \
            f"the self-signed certificate of {P} is not reported as such:\n{report}"
        assert "dialback" in low


def test_presence_subscription(setup):
    """alice@waddle subscribes to carol@peer; carol approves. RFC 6121 §3.1: alice's roster
    (on Waddle) gets subscription 'to', carol's (on the peer) 'from', and the peer sends
    carol's current presence to alice."""
    W, P = setup.waddle.domain, setup.peer.domain
    result: dict[str, Any] = {}

    async def roster_items(c) -> dict[str, dict]:
        iq = c.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        res = await iq.send(timeout=TIMEOUT)
        return {str(j): dict(v) for j, v in res["roster"]["items"].items()}

    async def body():
        alice = await login(setup.waddle, "alice")
        carol = await login(setup.peer, "carol")
        for c in (alice, carol):  # the test answers subscription requests itself
            c.auto_authorize = None
            c.auto_subscribe = False
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
