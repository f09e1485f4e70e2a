"""Hostile peers against one server (issue 9, docs/security.md "Evidence", "Hostile peers").

One server, scripted raw client and server peers, and real clients run a short version of each
attack of docs/security.md in sequence: an unfinished element over the limit before
authentication, unauthenticated connections over the per-address cap, a client that stops
reading while messages flow to it, a room re-join storm asking for history, invitations with
too many addresses and too often, a decline from a stranger, subscription requests beyond
max_pending_subscriptions, offline messages beyond max_offline_bytes and a burst against
max_offline_pending, a server stream with more db:result elements than may be verified at
once, a server stream spoofing 'from', and messages to IP-literal domains. Each step asserts
the defined error or bound (the same condition, with the same helpers, as the test of that
item alone), and after each step a control pair of users exchanges a message both ways.

Memory: the whole sequence runs once as a warm-up (glibc keeps what the process freed, for
the next allocations), the server's VmRSS is then the baseline, and the sequence runs twice
more; after each step the RSS must come back to within RSS_BOUND_KIB of the baseline within
SETTLE seconds (closing connections take a moment). A sanitized server's RSS includes the
memory it keeps in quarantine: against it the sequence runs once, without the RSS checks.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from dataclasses import dataclass, field

import pytest

from federation import NS_DIALBACK, RawS2s, Trap, await_metric, message_xml, metric_sum
from muc import condition, join, leave, send_join
from rawxmpp import NS_STANZAS, tag
from test_federation import error_condition, expect_error, nothing_from, send
from test_im import requests_shown_at_login, subscription_requests
from test_muc import has_muc_user, mediated
from test_offline import delivered_at_login, send_burst, stored_or_bounced
from test_preauth import REFUSED, connected_pre_auth, refused_at_connect, unfinished_preauth_element
from test_write_limits import (account, bounced_tokens, flood, slow_reader, status_kb,
                               tokens_read)
from waddle_client import DOMAIN, PASSWORD, login, run
from waddle_server import S2S_PORT, lease_address, sanitized_server

SANITIZED = sanitized_server()
PASSES = 1 if SANITIZED else 3  # a warm-up, then two measured passes
# After each step VmRSS is back within RSS_BOUND_KIB of the baseline. Measured on the release
# binary (docs/security.md, "Hostile peers"): at most 708 KiB above the baseline right after a
# step one run at a time and 944 KiB with two or three runs sharing the two cores, from the
# client that stops reading on (what may wait for the flooding sender, bounces included, is
# 4 x 128 KiB, and 128 KiB for the reader; glibc gives most of it back a few steps later).
# Three MiB leaves three times that, and is still under the 4 MiB the reader is sent: a step
# that kept what it handled would show.
RSS_BOUND_KIB = 3 * 1024
SETTLE = 10.0  # seconds for the RSS to come back after a step

CTL1, CTL2 = f"ctl1@{DOMAIN}", f"ctl2@{DOMAIN}"
ALICE, CAROL, BOB = f"alice@{DOMAIN}", f"carol@{DOMAIN}", f"bob@{DOMAIN}"
OLGA, JOE, IVAN, SAM = f"olga@{DOMAIN}", f"joe@{DOMAIN}", f"ivan@{DOMAIN}", f"sam@{DOMAIN}"
DAVE, ERIN = f"dave@{DOMAIN}", f"erin@{DOMAIN}"
SERVICE = f"conference.{DOMAIN}"
PEER = "a.test"  # the raw server peer's domain (certificate from the test CA)
ASKERS = 5  # subscription requests per pass, against max_pending_subscriptions = 3
PENDING = 3
OFFLINE_BYTES = 8192
HISTORY_BYTES = 65536
FLOOD_COUNT, FLOOD_SIZE = 128, 32 * 1024  # 4 MiB to a client that reads nothing
DIALBACK_RESULTS = 20  # db:result elements on one stream; 8 may be verified at once
DIALBACK_PER_STREAM = 8

OVERRIDES = {
    "c2s": {
        "max_unauthenticated_per_address": 3,
        "max_pending_subscriptions": PENDING,
        "max_offline_bytes": OFFLINE_BYTES,
        "max_offline_pending": 1,  # one message in flight to the store
        "limits": {
            # The smallest write queue there can be is twice the largest stanza (c2s or s2s).
            "max_stanza_size": 65536,
            "max_write_queue": "128KiB",
            "write_stall_timeout": "30s",
        },
    },
    "s2s": {
        "enabled": True,
        "port": S2S_PORT,
        "max_stanza_size": 65536,
        # Dialback with a certificate not valid for the claimed domain goes to the
        # authoritative server (through the silent name server below: it never answers).
        "allow_unverified_dialback": True,
        "connect_timeout": "1s",
        "connection_rate": 0,
    },
    "muc": {"history_bytes": HISTORY_BYTES},
}


def users(passes: int) -> list[str]:
    fixed = [CTL1, CTL2, ALICE, CAROL, BOB, OLGA, JOE, IVAN, SAM, DAVE, ERIN]
    per_pass = [j for p in range(passes) for j in [target(p)] + askers(p)]
    return fixed + per_pass


def target(p: int) -> str:
    return f"t{p}@{DOMAIN}"


def askers(p: int) -> list[str]:
    return [f"p{p}a{i}@{DOMAIN}" for i in range(ASKERS)]


class SilentNameServer:
    """A UDP name server on 127.0.0.1 that never answers: every lookup through it waits until
    the server gives up. `asked()` returns the names it was asked for so far."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.names: set[str] = set()

    def asked(self) -> set[str]:
        while True:
            try:
                packet = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return set(self.names)
            labels, i = [], 12  # the question's name follows the 12-byte header
            while i < len(packet) and packet[i] != 0:
                labels.append(packet[i + 1:i + 1 + packet[i]].decode(errors="replace"))
                i += 1 + packet[i]
            self.names.add(".".join(labels).lower())

    def close(self) -> None:
        self.sock.close()


@dataclass
class Figures:
    baseline: int = 0  # VmRSS after the warm-up, KiB
    peak: int = 0  # VmHWM after the warm-up, KiB
    # (pass, step, VmRSS right after the step, VmRSS checked against the bound, seconds it
    # took to come within the bound), VmRSS in KiB
    rows: list[tuple[int, str, int, int, float]] = field(default_factory=list)
    control_sent: int = 0
    control_delivered: int = 0


class Sequence:
    """The steps, run against one server with its logged-in users."""

    def __init__(self, server, pki, trap: Trap, trap_ip: str, dns: SilentNameServer):
        self.srv = server
        self.pki = pki
        self.dns = dns
        self.trap = trap
        self.trap_ip = trap_ip
        self.hostile_source = server.ip  # the unauthenticated connections come from here
        self.sent_again = 0  # offline messages sent again after a busy store
        self.c: dict[str, object] = {}

    async def login_all(self) -> None:
        for jid in (CTL1, CTL2, ALICE, CAROL, OLGA, JOE, IVAN, SAM):
            self.c[jid] = await login(self.srv, f"{jid}/hostile", PASSWORD)

    def steps(self):
        return [
            ("pre-auth element", self.preauth_element),
            ("unauthenticated connections", self.unauthenticated_connections),
            ("client that stops reading", self.stops_reading),
            ("re-join storm", self.rejoin_storm),
            ("invitations", self.invitations),
            ("declines", self.declines),
            ("subscription requests", self.subscription_requests),
            ("offline bytes", self.offline_bytes),
            ("offline burst", self.offline_burst),
            ("db:result flood", self.dialback_results),
            ("spoofed from", self.spoofed_from),
            ("IP-literal domains", self.ip_literals),
        ]

    # ------------------------------------------------------------------ control pair

    async def control(self, figures: Figures, label: str) -> None:
        a, b = self.c[CTL1], self.c[CTL2]
        for x, y, to in ((a, b, CTL2), (b, a, CTL1)):
            text = f"control {label} {uuid.uuid4().hex[:8]}"
            x.chat(to, text)
            figures.control_sent += 1
            await y.expect_message(body=text, timeout=15)
            figures.control_delivered += 1

    # ------------------------------------------------------------------ steps

    async def preauth_element(self, p: int) -> None:
        """Three TLS connections each send 100 KB of an unfinished <auth>: policy-violation
        at the 10 KiB limit before authentication."""
        junk = "A" * (100 * 1024)
        for _ in range(3):
            raw = await asyncio.to_thread(unfinished_preauth_element, self.srv.ip, self.srv.port,
                                          junk)
            try:
                await asyncio.to_thread(raw.assert_stream_error, "policy-violation", 15)
            finally:
                raw.close()

    async def unauthenticated_connections(self, p: int) -> None:
        """From one address, three connections that never authenticate are served; a fourth,
        on either client port, is refused and counted."""
        ip, src = self.srv.ip, self.hostile_source
        before = await asyncio.to_thread(metric_sum, self.srv, REFUSED, listener="c2s",
                                         reason="unauthenticated_per_address")
        held = []
        try:
            # Connections of the pass before may still be closing (bounded retries).
            deadline = time.monotonic() + 10
            while len(held) < 3:
                try:
                    held.append(await asyncio.to_thread(connected_pre_auth, ip, self.srv.port,
                                                        src))
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            got = await asyncio.to_thread(refused_at_connect, ip, self.srv.port, False, src)
            assert got == "policy-violation", got
            got = await asyncio.to_thread(refused_at_connect, ip, self.srv.direct_tls_port, True,
                                          src)
            assert got == "closed", got
            await await_metric(self.srv, REFUSED, before + 2, listener="c2s",
                               reason="unauthenticated_per_address")
        finally:
            for raw in held:
                raw.close()

    async def stops_reading(self, p: int) -> None:
        """Bob logs in and reads nothing while Alice sends him 4 MiB: his session is closed at
        the byte cap, and every message is read by him or bounced to Alice (offline storage
        keeps none: each is larger than max_offline_bytes)."""
        alice, carol = self.c[ALICE], self.c[CAROL]
        before = await asyncio.to_thread(metric_sum, self.srv, "waddle_c2s_write_limit_total",
                                         reason="queue_full")
        bob = await asyncio.to_thread(slow_reader, self.srv, f"slow{p}", 8192)
        try:
            alice.messages.items.clear()
            await flood(alice, carol, f"{BOB}/slow{p}", FLOOD_COUNT, FLOOD_SIZE)
            await await_metric(self.srv, "waddle_c2s_write_limit_total", before + 1, timeout=30,
                               reason="queue_full",
                               what="the session that read nothing was not closed at the cap")
            assert await asyncio.to_thread(bob.collect_until_closed, 30), \
                "the slow session was not closed"
            read = tokens_read(bob)
        finally:
            bob.close()
        # The bounces of what was routed again come as offline storage refuses it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(read) + len(bounced_tokens(alice)) < FLOOD_COUNT and loop.time() < deadline:
            await asyncio.sleep(0.05)
        bounced = bounced_tokens(alice)
        account(FLOOD_COUNT, read, bounced)
        assert len(read) + len(bounced) == FLOOD_COUNT, (len(read), len(bounced))
        self.flood_figures = (len(read), len(bounced))
        alice.messages.items.clear()

    def room(self, p: int) -> str:
        return f"storm{p}@{SERVICE}"

    async def rejoin_storm(self, p: int) -> None:
        """Olga fills a new room's history with 10 messages of 10 kB; Joe joins asking for 20
        and gets the newest 6 (history_bytes = 64 KiB), then sends his join 30 times more,
        each asking for the whole history, and gets the room state 30 times and no history."""
        olga, joe = self.c[OLGA], self.c[JOE]
        room = self.room(p)
        await join(olga, room, "Olga")
        big = "h" * 10_000
        for i in range(10):
            olga.send_message(mto=room, mbody=f"m{i:02d} {big}", mtype="groupchat")
        await olga.messages.get(lambda m: (m["body"] or "").startswith("m09"), timeout=15,
                                what="the last history message's echo")
        joe.messages.items.clear()
        await join(joe, room, "Joe", maxstanzas=20)

        def is_subject(m) -> bool:
            return m.xml.find("{jabber:client}subject") is not None

        await joe.messages.get(is_subject, timeout=15, what="subject after the history")
        got = [m["body"] for m in joe.messages.items if m["body"]]
        assert [b[:3] for b in got] == [f"m{i:02d}" for i in range(4, 10)], [b[:3] for b in got]
        assert sum(len(b) for b in got) <= HISTORY_BYTES
        joe.messages.items.clear()
        rejoins = 30
        for _ in range(rejoins):
            send_join(joe, room, "Joe", maxstanzas=20)
        for n in range(rejoins):  # the subject comes after whatever history there is
            await joe.messages.get(is_subject, timeout=15, what=f"subject {n + 1} of {rejoins}")
        replayed = [m["body"][:3] for m in joe.messages.items if m["body"]]
        assert replayed == [], replayed

    async def invitations(self, p: int) -> None:
        """Eleven invitations in one message: policy-violation, none sent. Then twenty (two
        messages of ten) arrive, and one more within the minute is refused."""
        olga, ivan = self.c[OLGA], self.c[IVAN]
        room = self.room(p)
        ivan.messages.items.clear()
        olga.messages.items.clear()
        mediated(olga, room, [("invite", {"to": IVAN})] * 11)
        err = await olga.messages.get(lambda m: m["type"] == "error", what="invitation error")
        assert condition(err) == "policy-violation", str(err)
        for _ in range(2):
            mediated(olga, room, [("invite", {"to": IVAN})] * 10)
        for n in range(20):
            await ivan.messages.get(lambda m: has_muc_user(m, "invite"), timeout=15,
                                    what=f"invitation {n + 1} of 20")
        mediated(olga, room, [("invite", {"to": IVAN})])
        err = await olga.messages.get(lambda m: m["type"] == "error", what="rate error")
        assert condition(err) == "policy-violation", str(err)
        await ivan.sync()
        extra = [m for m in ivan.messages.items if has_muc_user(m, "invite")]
        assert extra == [], f"{len(extra)} invitations beyond the 20 a minute"

    async def declines(self, p: int) -> None:
        """Sam, neither an occupant nor invited, declines 'to' Olga: not-acceptable, and Olga
        gets nothing; Ivan's decline of his invitation reaches her. Then the room empties."""
        olga, joe, ivan, sam = self.c[OLGA], self.c[JOE], self.c[IVAN], self.c[SAM]
        room = self.room(p)
        olga.messages.items.clear()
        mediated(sam, room, [("decline", {"to": OLGA, "reason": "forged"})])
        err = await sam.messages.get(lambda m: m["type"] == "error", what="decline error")
        assert condition(err) == "not-acceptable", str(err)
        mediated(ivan, room, [("decline", {"to": OLGA, "reason": "busy"})])
        dec = await olga.messages.get(lambda m: has_muc_user(m, "decline"), what="decline")
        assert dec.xml.find(".//{http://jabber.org/protocol/muc#user}decline").get("from") == \
            IVAN, str(dec)
        assert [m for m in olga.messages.items if has_muc_user(m, "decline")] == []
        for client, nick in ((joe, "Joe"), (olga, "Olga")):
            leave(client, room, nick)
            await client.expect_presence(frm=f"{room}/{nick}", ptype="unavailable")

    async def subscription_requests(self, p: int) -> None:
        """Five strangers ask an offline user for a subscription (max_pending_subscriptions =
        3): three are kept and shown at login, two bounce with resource-constraint."""
        outcome = await subscription_requests(self.srv, askers(p), target(p))
        kept = [j for j, o in outcome.items() if o == "kept"]
        bounced = [j for j, o in outcome.items() if o == "resource-constraint"]
        assert len(kept) == PENDING and len(bounced) == ASKERS - PENDING, outcome
        client = await requests_shown_at_login(self.srv, f"{target(p)}/r", kept, bounced)
        await client.close()

    async def offline_bytes(self, p: int) -> None:
        """Twelve messages of ~1.6 KB to an offline user, one at a time (max_offline_bytes =
        8 KiB): some stored, the rest bounced with service-unavailable (cancel); the stored
        ones are delivered at the next login."""
        alice = self.c[ALICE]
        filler = "x" * 1500
        bodies = [f"big {p} {i} {uuid.uuid4().hex} {filler}" for i in range(12)]
        bounced = []
        for text in bodies:
            # One at a time; still, the store may not have released the message before (it is
            # committed a moment before): a resource-constraint of type wait is sent again, as
            # its type says.
            for _ in range(10):
                alice.chat(DAVE, text)
                bounces = await stored_or_bounced(self.srv, alice, [text])
                kinds = [(error_condition(e), e["error"]["type"]) for e in bounces]
                if kinds != [("resource-constraint", "wait")]:
                    break
                self.sent_again += 1
                await alice.sync()
            assert kinds in ([], [("service-unavailable", "cancel")]), kinds
            bounced += [e["body"] for e in bounces]
        assert 0 < len(bounced) < len(bodies), f"{len(bounced)} of {len(bodies)} bounced"
        kept = [t for t in bodies if t not in bounced]
        assert sum(len(t) for t in kept) <= OFFLINE_BYTES, len(kept)
        client = await delivered_at_login(self.srv, f"{DAVE}/r", kept, bounced)
        await client.close()

    async def offline_burst(self, p: int) -> None:
        """A burst of 40 short messages (one write) to an offline user with one message in
        flight to the store at most: some bounce with resource-constraint (wait), those beyond
        the bytes with service-unavailable; every message is stored and delivered, or
        bounced."""
        alice = self.c[ALICE]
        refused = "waddle_offline_messages_refused_total"
        before = await asyncio.to_thread(metric_sum, self.srv, refused, reason="busy")
        bodies = [f"burst {p} {i} {uuid.uuid4().hex} {'y' * 100}" for i in range(40)]
        send_burst(alice, ERIN, bodies)
        bounces = await stored_or_bounced(self.srv, alice, bodies)
        kinds = [(error_condition(e), e["error"]["type"]) for e in bounces]
        busy = [k for k in kinds if k == ("resource-constraint", "wait")]
        assert busy, f"no bounce for a busy store: {kinds}"
        assert all(k in (("resource-constraint", "wait"), ("service-unavailable", "cancel"))
                   for k in kinds), kinds
        after = await asyncio.to_thread(metric_sum, self.srv, refused, reason="busy")
        assert after - before == len(busy), (before, after, kinds)
        bounced = [e["body"] for e in bounces]
        kept = [t for t in bodies if t not in bounced]
        client = await delivered_at_login(self.srv, f"{ERIN}/r", kept, bounced)
        await client.close()

    def raw_peer(self) -> RawS2s:
        return RawS2s(self.srv.ip, PEER, DOMAIN, *self.pki.cert(PEER), self.pki.ca.cert,
                      timeout=15)

    async def dialback_results(self, p: int) -> None:
        """One server stream sends 20 db:result elements, each for another domain its
        certificate does not cover: 8 verifications start (their name server never answers,
        so they end invalid at connect_timeout), the other 12 are answered
        resource-constraint at once, and not even looked up; no claimed domain becomes a
        metrics label."""
        raw = self.raw_peer()

        def flood_results() -> list:
            raw.open_stream(raw.header())
            raw.starttls()
            raw.open_stream(raw.header())
            raw.send("".join(
                f"<db:result from='x{p}-{i}.test' to='{DOMAIN}'>{uuid.uuid4().hex}</db:result>"
                for i in range(DIALBACK_RESULTS)))

            def answers(r) -> list:
                return [e for e in r.elements if e.tag == tag(NS_DIALBACK, "result")]
            raw.collect_until(lambda r: len(answers(r)) >= DIALBACK_RESULTS, timeout=15)
            return answers(raw)

        try:
            got = await asyncio.to_thread(flood_results)
        finally:
            raw.close()
        refused = [e for e in got if e.get("type") == "error" and
                   e.find(f".//{tag(NS_STANZAS, 'resource-constraint')}") is not None]
        invalid = [e for e in got if e.get("type") == "invalid"]
        assert len(got) == DIALBACK_RESULTS, f"{len(got)} answers: {raw.received_text()}"
        assert len(refused) == DIALBACK_RESULTS - DIALBACK_PER_STREAM, raw.received_text()
        assert len(invalid) == DIALBACK_PER_STREAM, raw.received_text()
        assert not raw.stream_error_conditions(), raw.received_text()
        claimed = re.compile(rf"(?:^|\.)(x{p}-\d+\.test)$")
        looked_up = {m.group(1) for m in map(claimed.search, self.dns.asked()) if m}
        assert looked_up == {e.get("to") for e in invalid}, (
            f"looked up {sorted(looked_up)}; refused {sorted(e.get('to') for e in refused)}")
        # Metrics labels carry authenticated domains only: none of the claimed ones.
        text = await asyncio.to_thread(self.srv.metrics_text)
        assert f"x{p}-" not in text, [line for line in text.splitlines() if f"x{p}-" in line]

    async def spoofed_from(self, p: int) -> None:
        """A stream authenticated as a.test delivers a.test's stanzas, and is closed with
        invalid-from when it sends one 'from' another domain, which reaches nobody."""
        ctl2 = self.c[CTL2]
        raw = self.raw_peer()
        try:
            await asyncio.to_thread(raw.authenticate)
            raw.send(message_xml(f"eve@{PEER}/raw", CTL2, f"honest {p}", f"raw-{p}-1"))
            await ctl2.expect_message(frm=f"eve@{PEER}/raw", body=f"honest {p}")
            raw.send(message_xml("mallory@evil.test/x", CTL2, "spoofed", f"raw-{p}-2"))
            await asyncio.to_thread(raw.assert_stream_error, "invalid-from", 10)
        finally:
            raw.close()
        await nothing_from(ctl2, "evil.test")
        ctl2.messages.items.clear()

    async def ip_literals(self, p: int) -> None:
        """Messages to user@TRAP_IP and user@[::1] bounce with policy-violation, and nothing
        connects to the trap's address."""
        alice = self.c[ALICE]
        for n, to in enumerate((f"user@{self.trap_ip}", "user@[::1]")):
            send(alice, to, "hello inside", f"ip-{p}-{n}")
            err = await expect_error(alice, f"ip-{p}-{n}", timeout=10)
            assert error_condition(err) == "policy-violation", str(err)
        assert self.trap.connections() == 0, "the server connected to an IP literal's address"
        alice.messages.items.clear()


async def wait_rss(pid: int, limit: int, timeout: float) -> tuple[int, float]:
    """Waits until VmRSS is at most `limit` KiB, or `timeout` seconds: (the last VmRSS, the
    seconds waited)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        rss = status_kb(pid, "VmRSS")
        if rss <= limit or loop.time() - start > timeout:
            return rss, loop.time() - start
        await asyncio.sleep(0.1)  # polling /proc under the deadline above


@pytest.mark.memory
def test_hostile_peers_meet_their_bounds_while_a_control_pair_chats(make_server, pki):
    # Every lookup of a domain a peer claims waits (and is seen).
    silent_dns = SilentNameServer()
    trap_lease = lease_address(ports=(S2S_PORT,))
    trap = Trap(trap_lease.ip)
    figures = Figures()
    try:
        overrides = dict(OVERRIDES, tls={"ca_file": str(pki.ca.cert)},
                         dns={"nameservers": [silent_dns.address]})
        srv = make_server(overrides, start=False, cert=pki.cert(DOMAIN))
        for jid in users(PASSES):
            srv.adduser(jid, PASSWORD)
        srv.start()
        seq = Sequence(srv, pki, trap, trap_lease.ip, silent_dns)
        t0 = time.monotonic()

        async def body():
            await seq.login_all()
            await seq.control(figures, "start")
            for p in range(PASSES):
                measured = p > 0 and not SANITIZED
                for name, step in seq.steps():
                    await step(p)
                    await seq.control(figures, f"{p} {name}")
                    if measured:
                        after = status_kb(srv.pid, "VmRSS")
                        checked, waited = await wait_rss(
                            srv.pid, figures.baseline + RSS_BOUND_KIB, SETTLE)
                        figures.rows.append((p, name, after, checked, round(waited, 1)))
                        assert checked <= figures.baseline + RSS_BOUND_KIB, (
                            f"VmRSS {checked} KiB, {checked - figures.baseline} KiB above the "
                            f"baseline ({figures.baseline} KiB), {SETTLE}s after '{name}' in "
                            f"pass {p}; (pass, step, KiB after, KiB checked, s): {figures.rows}")
                if p == 0:
                    figures.baseline = status_kb(srv.pid, "VmRSS")
                    figures.peak = status_kb(srv.pid, "VmHWM")
                    print(f"first pass (the warm-up): {time.monotonic() - t0:.1f}s; VmRSS "
                          f"{figures.baseline} KiB (the baseline), VmHWM {figures.peak} KiB")

        run(body, timeout=240)
        peak = status_kb(srv.pid, "VmHWM")
    finally:
        trap.close()
        trap_lease.release()
        silent_dns.close()
    read, bounced = seq.flood_figures
    print(f"{PASSES} passes in {time.monotonic() - t0:.1f}s; VmHWM {peak} KiB at the end; the "
          f"client that stopped reading: {read} messages read, {bounced} bounced (last pass); "
          f"{seq.sent_again} offline messages sent again after a busy store")
    base = figures.baseline
    for p, name, after, checked, waited in figures.rows:
        print(f"pass {p} {name:28} VmRSS {after:6d} KiB ({after - base:+5d}); checked "
              f"{checked:6d} KiB ({checked - base:+5d}) {waited:.1f}s later")
    assert figures.control_sent == figures.control_delivered
