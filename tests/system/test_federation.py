"""Federation between real Waddle servers (issue 3, component tests): two and three servers on
loopback addresses, a real DNS server (dnsmasq) and a private CA.

Every test builds its own federation (servers, DNS records, accounts), waits only on client
events, on what a raw peer receives or on the servers' /metrics counters, each with a deadline
(log wording is free to change; the one log line checked is one an operator reads, and says
so), and stops everything it started by PID.
Run: /usr/bin/python3 -m pytest tests/system/test_federation.py -q
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl

import pytest
from slixmpp.exceptions import IqError

from federation import (AUTHENTICATED, DIALBACK_METHODS, DIALBACK_VERIFY, ERRORS, FAST_RETRY,
                        PACED, PACED_SECONDS, STREAMS_CLOSED, RawS2s, Trap, await_metric,
                        await_operator_log, message_xml, metric_sum, wait_metric)
from waddle_client import NS_STANZAS, PASSWORD, bare, befriend, login, run

A, B, C = "a.test", "b.test", "c.test"
ALICE, BOB, CAROL = f"alice@{A}", f"bob@{B}", f"carol@{C}"
ALICE_R, BOB_R, CAROL_R = f"{ALICE}/home", f"{BOB}/work", f"{CAROL}/phone"
NOT_FOUND_OR_TIMEOUT = ("remote-server-not-found", "remote-server-timeout")


def error_condition(stanza) -> str:
    """The defined condition of an error stanza, read from the XML (slixmpp 1.8 does not
    know RFC 6120's newer conditions such as policy-violation and reports them as '')."""
    for err in stanza.xml:
        if err.tag.endswith("}error"):
            for child in err:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                    return child.tag.rsplit("}", 1)[1]
    return ""


def error_text(stanza) -> str:
    return stanza["error"]["text"] or ""


async def expect_error(client, mid: str, timeout: float = 15.0):
    """The error message bounced to `client` for the message with id `mid`."""
    return await client.messages.get(
        lambda m: m["type"] == "error" and m["id"] == mid, timeout,
        what=f"an error bounce for message {mid} to {client.label}")


def send(client, to: str, body: str, mid: str) -> None:
    msg = client.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = mid
    msg.send()


async def nothing_from(client, jid_or_domain: str) -> None:
    """After a round trip to its server, `client` has no message (other than error bounces)
    from that bare JID or domain."""
    await client.sync()
    got = [m for m in client.messages.items
           if m["type"] != "error" and (bare(m["from"]) == jid_or_domain
                                        or m["from"].domain == jid_or_domain)]
    assert not got, f"{client.label} received from {jid_or_domain}: " + "; ".join(
        str(m) for m in got)


# --------------------------------------------------------------------------- 1. two servers


def test_two_servers_with_certificates_subscribe_chat_and_query(fed):
    """SRV for a.test (it has no A record), only an A record for b.test (fallback): a mutual
    subscription, presence, chat both ways and IQs across domains, authenticated with SASL
    EXTERNAL in both directions. a.test's certificate is for TLS server authentication only
    (as public CAs issue them), which b.test accepts on the streams a.test opens to it."""
    a = fed.server(A, dns="srv", cert="server-auth", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        await befriend(alice, bob)  # asserts every step, ends with subscription=both

        alice.send_presence(pshow="away", pstatus="lunch")
        await bob.expect_presence(frm=ALICE_R, ptype="available",
                                  where=lambda p: p["show"] == "away" and p["status"] == "lunch")
        bob.send_presence(pstatus="busy")
        await alice.expect_presence(frm=BOB_R, ptype="available",
                                    where=lambda p: p["status"] == "busy")

        alice.chat(BOB, "hello bob, from a.test")
        m = await bob.expect_message(frm=ALICE_R, body="hello bob, from a.test", mtype="chat")
        assert str(m["to"]) in (BOB, BOB_R), str(m)
        bob.chat(ALICE_R, "hi alice, from b.test")
        await alice.expect_message(frm=BOB_R, body="hi alice, from b.test", mtype="chat")
        for i in range(5):  # order is kept across the link
            alice.chat(BOB, f"msg {i}")
        for i in range(5):
            m = await bob.messages.get(lambda m: m["body"].startswith("msg "))
            assert m["body"] == f"msg {i}", str(m)

        for client, domain in ((alice, B), (bob, A)):
            result = await client["xep_0092"].get_version(domain, timeout=10)
            assert str(result["from"]) == domain, str(result)
            assert result["software_version"]["name"] == "Waddle", str(result)

        await bob.close()
        await alice.expect_presence(frm=BOB_R, ptype="unavailable")
    run(body)

    for srv, remote in ((a, B), (b, A)):
        for direction in ("out", "in"):
            wait_metric(srv, AUTHENTICATED, domain=remote, direction=direction,
                        method="sasl_external")
        text = srv.metrics_text()
        assert metric_sum(text, AUTHENTICATED, method=DIALBACK_METHODS) == 0, (
            f"{srv.domain} used dialback:\n{text}")
        assert metric_sum(text, DIALBACK_VERIFY) == 0, f"{srv.domain} verified a key:\n{text}"
    # What a peer negotiates with either server after STARTTLS: TLS 1.3 (the S2S default
    # minimum, for streams in both directions; a TLS 1.2 peer is refused, see below).
    for srv, peer, kind in ((a, B, "ca"), (b, A, "server-auth")):
        raw = RawS2s(srv.ip, peer, srv.domain, *fed.pki.cert(peer, kind), fed.pki.ca.cert)
        try:
            raw.authenticate()
            assert raw.sock.version() == "TLSv1.3", raw.sock.version()
        finally:
            raw.close()
    dns_log = fed.dns.log_path.read_text()
    # b found a.test through SRV (a.test has no A record), a found b.test through the A
    # fallback after asking for its SRV record.
    for query in (r"query\[SRV\] _xmpp-server\._tcp\.a\.test", r"query\[A\] xmpp\.a\.test",
                  r"query\[SRV\] _xmpp-server\._tcp\.b\.test", r"query\[A\] b\.test"):
        assert re.search(query, dns_log), f"no DNS query {query!r}:\n{dns_log[-3000:]}"


# --------------------------------------------------------------------------- 2. SRV order


def test_srv_targets_are_tried_in_priority_order(fed):
    """_xmpp-server._tcp.a.test: priority 0 -> an address where nothing listens, priority 10
    -> the real server. b must fall through to the second target."""
    dead_ip = fed.unused_address()
    a = fed.server(A, dns=None, users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.dns.a("down.a.test", dead_ip)
    fed.dns.a("xmpp.a.test", a.ip)
    fed.dns.srv("_xmpp-server._tcp", A, "down.a.test", 5269, prio=0, weight=0)
    fed.dns.srv("_xmpp-server._tcp", A, "xmpp.a.test", 5269, prio=10, weight=0)
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        bob.chat(ALICE, "via the second SRV target")
        await alice.expect_message(frm=BOB_R, body="via the second SRV target")
        alice.chat(BOB_R, "and back")
        await bob.expect_message(frm=ALICE_R, body="and back")
    run(body)
    wait_metric(b, AUTHENTICATED, domain=A, direction="out", method="sasl_external")
    dns_log = fed.dns.log_path.read_text()
    assert re.search(r"query\[A\] down\.a\.test", dns_log), (
        f"b never looked up the priority-0 target:\n{dns_log[-3000:]}")


def test_srv_lower_priority_target_is_not_used_while_the_first_works(fed):
    """Priority 0 -> the real server, priority 10 -> a listening trap: b connects to the
    real server and never to the trap (RFC 2782: lowest priority first)."""
    trap_ip = fed.unused_address()
    trap = Trap(trap_ip)
    try:
        a = fed.server(A, dns=None, users=("alice",))
        b = fed.server(B, dns="a", users=("bob",))
        fed.dns.a("xmpp.a.test", a.ip)
        fed.dns.a("backup.a.test", trap_ip)
        fed.dns.srv("_xmpp-server._tcp", A, "backup.a.test", 5269, prio=10, weight=0)
        fed.dns.srv("_xmpp-server._tcp", A, "xmpp.a.test", 5269, prio=0, weight=0)
        fed.start()

        async def body():
            alice = await login(a, ALICE_R, PASSWORD)
            bob = await login(b, BOB_R, PASSWORD)
            for i in range(3):
                bob.chat(ALICE, f"first target {i}")
                await alice.expect_message(frm=BOB_R, body=f"first target {i}")
        run(body)
        assert trap.connections() == 0, "b connected to the priority-10 target"
    finally:
        trap.close()


# --------------------------------------------------------------------------- 3. dialback


def test_dialback_with_self_signed_certificates(fed):
    """Self-signed certificates and allow_unverified_dialback on both: dialback (with the
    verification connection to the authoritative server) in both directions."""
    unverified = {"allow_unverified_dialback": True}
    a = fed.server(A, dns="srv", cert="self", s2s=unverified, users=("alice",))
    b = fed.server(B, dns="a", cert="self", s2s=unverified, users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        alice.chat(BOB, "dialback a->b")
        await bob.expect_message(frm=ALICE_R, body="dialback a->b")
        bob.chat(ALICE_R, "dialback b->a")
        await alice.expect_message(frm=BOB_R, body="dialback b->a")
    run(body)

    for srv, remote in ((a, B), (b, A)):
        wait_metric(srv, AUTHENTICATED, domain=remote, direction="out", method="dialback")
        wait_metric(srv, AUTHENTICATED, domain=remote, direction="in", method="dialback")
        # the authoritative role: our key, verified for the peer that asked
        wait_metric(srv, DIALBACK_VERIFY, domain=remote, result="valid")
        text = srv.metrics_text()
        assert metric_sum(text, DIALBACK_VERIFY, result="invalid") == 0, text
        assert metric_sum(text, AUTHENTICATED, method="sasl_external") == 0, (
            f"{srv.domain} used SASL EXTERNAL with self-signed certificates:\n{text}")


def test_dialback_with_untrusted_certificate_refused_by_receiver(fed):
    """The sender allows unverified dialback, the receiver does not: the message is bounced
    to alice with an error whose text says the certificate was the problem."""
    a = fed.server(A, dns="srv", cert="self", users=("alice",),
                   s2s={"allow_unverified_dialback": True, "retry": FAST_RETRY})
    b = fed.server(B, dns="a", cert="self", users=("bob",),
                   s2s={"allow_unverified_dialback": False})
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "refused", "db-refused-1")
        err = await expect_error(alice, "db-refused-1", timeout=20)
        assert error_condition(err) in NOT_FOUND_OR_TIMEOUT, str(err)
        assert str(err["from"]) == BOB, str(err)
        assert "certificate" in error_text(err).lower(), (
            f"the bounce does not say the certificate was refused: {err}")
        await nothing_from(bob, A)
    run(body)
    text = b.metrics_text()
    # Refused before a.test authenticated: counted, under no label a peer could choose.
    assert metric_sum(text, ERRORS, domain="unauthenticated", kind="dialback") >= 1, text
    assert metric_sum(text, ERRORS, domain=A) == 0, text
    assert metric_sum(text, AUTHENTICATED, domain=A, direction="in") == 0, text


# --------------------------------------------------------------------------- 4. three servers


def test_three_servers_message_every_pair(fed):
    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    c = fed.server(C, dns="a", users=("carol",))
    fed.start()

    async def body():
        clients = {
            ALICE: await login(a, ALICE_R, PASSWORD),
            BOB: await login(b, BOB_R, PASSWORD),
            CAROL: await login(c, CAROL_R, PASSWORD),
        }
        for sender, sc in clients.items():
            for rcpt in clients:
                if rcpt != sender:
                    sc.chat(rcpt, f"{sender} -> {rcpt}")
        for rcpt, rc in clients.items():
            for sender, sc in clients.items():
                if rcpt != sender:
                    await rc.expect_message(frm=str(sc.boundjid), body=f"{sender} -> {rcpt}")
    run(body)
    for srv in (a, b, c):
        for other in {A, B, C} - {srv.domain}:
            wait_metric(srv, AUTHENTICATED, domain=other, direction="out",
                        method="sasl_external")


# --------------------------------------------------------------------------- 5. spoofing


@pytest.mark.parametrize("spoofed", ["mallory@evil.test", "admin@b.test"],
                         ids=["foreign-domain", "receivers-own-domain"])
def test_spoofed_from_closes_the_stream_and_is_not_delivered(fed, pki, spoofed):
    """A stream authenticated as a.test (certificate + SASL EXTERNAL) that sends a stanza
    'from' another domain is closed with <invalid-from/>; nothing reaches bob; a legitimate
    a.test stream still works afterwards."""
    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()
    cert, key = pki.cert(A)

    async def body():
        bob = await login(b, BOB_R, PASSWORD)
        alice = await login(a, ALICE_R, PASSWORD)
        raw = RawS2s(b.ip, A, B, cert, key, pki.ca.cert)
        try:
            await asyncio.to_thread(raw.authenticate)
            # control: a.test stanzas are accepted on this stream
            raw.send(message_xml("eve@a.test/raw", BOB, "honest eve", "raw-1"))
            await bob.expect_message(frm="eve@a.test/raw", body="honest eve")
            raw.send(message_xml(f"{spoofed}/x", BOB, "spoofed hello", "raw-2"))
            await asyncio.to_thread(raw.assert_stream_error, "invalid-from", 10)
        finally:
            raw.close()
        await nothing_from(bob, spoofed)
        alice.chat(BOB, "legitimate, after the spoof")
        await bob.expect_message(frm=ALICE_R, body="legitimate, after the spoof")
        assert bob.messages.take(lambda m: m["body"] == "spoofed hello") is None, (
            "the spoofed message was delivered")
    run(body)


# --------------------------------------------------------------------------- 6. unreachable


def test_unreachable_domain_is_bounced_after_the_retries(fed):
    """dead.test resolves to an address where nothing listens: the queued stanzas (two
    messages and an IQ) are bounced with remote-server-not-found naming the connection
    failure, after retries of 100 ms, 200 ms and 400 ms."""
    dead_ip = fed.unused_address()
    a = fed.server(A, dns="srv", users=("alice",), s2s={"retry": FAST_RETRY})
    fed.dns.a("dead.test", dead_ip)
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        send(alice, "user@dead.test", "one", "dead-1")
        send(alice, "user@dead.test/res", "two", "dead-2")
        iq = alice.make_iq_get(queryxmlns="jabber:iq:version", ito="dead.test")
        iq_task = asyncio.ensure_future(iq.send(timeout=20))
        first = await expect_error(alice, "dead-1", timeout=20)
        elapsed = loop.time() - t0
        second = await expect_error(alice, "dead-2")
        with pytest.raises(IqError) as info:
            await iq_task
        for err, frm in ((first, "user@dead.test"), (second, "user@dead.test/res"),
                         (info.value.iq, "dead.test")):
            assert error_condition(err) == "remote-server-not-found", str(err)
            assert str(err["from"]) == frm, str(err)
            text = error_text(err)
            assert "dead.test" in text and "connection refused" in text.lower(), (
                f"the bounce does not say the connection was refused: {err}")
        assert elapsed >= 0.6, f"bounced after {elapsed:.2f}s, before the retries (0.7 s)"
    run(body)

    # The first attempt and max_retries = 3 retries, each refused, then the three bounces.
    text = a.metrics_text()
    assert metric_sum(text, ERRORS, domain="dead.test", kind="connection_refused") == 4, text
    assert metric_sum(text, "waddle_s2s_bounced_total", domain="dead.test",
                      condition="remote-server-not-found") == 3, text


def test_domain_without_dns_records_is_bounced_with_dns_failure(fed):
    a = fed.server(A, dns="srv", users=("alice",), s2s={"retry": FAST_RETRY})
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        send(alice, "user@nowhere.test", "anyone?", "nx-1")
        err = await expect_error(alice, "nx-1", timeout=20)
        assert error_condition(err) == "remote-server-not-found", str(err)
        text = error_text(err)
        assert "nowhere.test" in text and re.search(
            r"DNS|NXDOMAIN|SRV|A/AAAA|resolve", text), (
            f"the bounce does not say DNS found nothing: {err}")
    run(body)


# --------------------------------------------------------------------------- 7. policy


def test_blocklist_refuses_both_directions(fed, pki):
    """a blocks b.test: alice's message to bob is bounced with policy-violation at once;
    b's stream to a is refused with the stream error policy-violation, so bob's message
    comes back to him as an error."""
    a = fed.server(A, dns="srv", users=("alice",),
                   s2s={"policy": "blocklist", "blocked_domains": [B]})
    b = fed.server(B, dns="a", users=("bob",), s2s={"retry": FAST_RETRY})
    fed.start()

    raw = RawS2s(a.ip, B, A, *pki.cert(B), pki.ca.cert)
    try:
        raw.send(raw.header())
        raw.assert_stream_error("policy-violation", 10)
    finally:
        raw.close()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "blocked outbound", "bl-1")
        err = await expect_error(alice, "bl-1")
        assert error_condition(err) == "policy-violation", str(err)
        send(bob, ALICE, "blocked inbound", "bl-2")
        err = await expect_error(bob, "bl-2", timeout=20)
        assert "policy" in error_text(err).lower(), (
            f"bob's bounce does not say policy refused it: {err}")
        await nothing_from(alice, B)
        await nothing_from(bob, A)
    run(body)
    # The raw stream and b's own stream(s), refused for policy before authenticating: counted
    # under domain="unauthenticated", never under the name they claimed.
    wait_metric(a, STREAMS_CLOSED, 2, domain="unauthenticated", direction="in", reason="policy")
    text = a.metrics_text()
    assert metric_sum(text, AUTHENTICATED, domain=B) == 0, text
    assert metric_sum(text, STREAMS_CLOSED, domain=B, direction="in") == 0, text


def test_allowlist_admits_only_listed_domains(fed):
    a = fed.server(A, dns="srv", users=("alice",),
                   s2s={"policy": "allowlist", "allowed_domains": [C]})
    b = fed.server(B, dns="a", users=("bob",), s2s={"retry": FAST_RETRY})
    c = fed.server(C, dns="a", users=("carol",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        carol = await login(c, CAROL_R, PASSWORD)
        alice.chat(CAROL, "allowed a->c")
        await carol.expect_message(frm=ALICE_R, body="allowed a->c")
        carol.chat(ALICE, "allowed c->a")
        await alice.expect_message(frm=CAROL_R, body="allowed c->a")
        send(alice, BOB, "not listed", "al-1")
        err = await expect_error(alice, "al-1")
        assert error_condition(err) == "policy-violation", str(err)
        send(bob, ALICE, "not listed either", "al-2")
        err = await expect_error(bob, "al-2", timeout=20)
        assert "policy" in error_text(err).lower(), (
            f"bob's bounce does not say policy refused it: {err}")
        await nothing_from(alice, B)
        await nothing_from(bob, A)
    run(body)
    wait_metric(a, STREAMS_CLOSED, domain="unauthenticated", direction="in", reason="policy")
    text = a.metrics_text()
    assert metric_sum(text, AUTHENTICATED, domain=B) == 0, text
    assert metric_sum(text, STREAMS_CLOSED, domain=B, direction="in") == 0, text


# --------------------------------------------------------------------------- 8. flood


FLOOD = 3000  # messages
FLOOD_RATE = 250  # b's stanza_rate (and stanza_burst) for each remote domain
PROMPT = 2.0  # seconds: a message beside the flood must arrive within this, ~1/5 of the flood


async def arrival(times: dict, mid: str, timeout: float) -> float:
    """Waits (bounded) until the message `mid` has arrived; its arrival time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while mid not in times:
        assert loop.time() < deadline, f"message {mid} did not arrive within {timeout}s"
        await asyncio.sleep(0.02)  # polling a dict under the deadline above
    return times[mid]


def test_flood_over_the_limit_is_paced_and_loses_nothing_while_others_get_through(fed):
    """b paces each remote domain at 250 stanzas/s (burst 250). alice@a.test sends bob@b.test
    3,000 numbered messages at once (about 11 s at that rate): every one arrives, once and in
    order (sent = delivered, nothing bounced), b never closes a.test's stream, and its pacing
    metrics move. While a.test is paced, a message from carol@c.test (another remote domain)
    and one from dave@b.test (a local user) reach bob within 2 s."""
    a = fed.server(A, dns="a", users=("alice",))
    b = fed.server(B, dns="a", users=("bob", "dave"),
                   s2s={"stanza_rate": FLOOD_RATE, "stanza_burst": FLOOD_RATE})
    c = fed.server(C, dns="a", users=("carol",))
    fed.start()

    async def body():
        loop = asyncio.get_running_loop()
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        carol = await login(c, CAROL_R, PASSWORD)
        dave = await login(b, f"dave@{B}/desk", PASSWORD)
        # Arrival times at bob by id, and the order of the flood (cheap, unlike the inbox's
        # predicate scans, so that bob's client keeps up with the flood).
        times: dict[str, float] = {}
        order: list[str] = []

        def arrived(m) -> None:
            mid = m["id"]
            times.setdefault(mid, loop.time())
            if mid.startswith("fl-") and m["type"] != "error":
                order.append(mid)
        bob.add_event_handler("message", arrived)
        # Both links up before the flood.
        send(alice, BOB, "link up", "up-a")
        send(carol, BOB, "link up", "up-c")
        await arrival(times, "up-a", 15)
        await arrival(times, "up-c", 15)

        t0 = loop.time()
        for i in range(FLOOD):
            send(alice, BOB, f"flood {i}", f"fl-{i}")
        await await_metric(b, PACED, domain=A, timeout=15, what="a.test was never paced")
        behind = FLOOD - len(order)
        sent_at = loop.time()
        send(carol, BOB, "beside the flood", "c-1")
        send(dave, BOB, "beside the flood", "d-1")
        carol_took = await arrival(times, "c-1", 15) - sent_at
        dave_took = await arrival(times, "d-1", 15) - sent_at
        still_behind = FLOOD - len([m for m in order if times[m] <= times["c-1"]])
        assert carol_took < PROMPT, (
            f"carol's message took {carol_took:.2f}s while a.test was paced")
        assert dave_took < PROMPT, f"dave's message took {dave_took:.2f}s while a.test was paced"
        assert still_behind > FLOOD_RATE, (
            f"the flood was nearly over ({still_behind} of {FLOOD} to go, {behind} when pacing"
            " was seen): the messages beside it did not arrive during it")

        deadline = t0 + FLOOD / FLOOD_RATE + 30
        while len(order) < FLOOD and loop.time() < deadline:
            await asyncio.sleep(0.05)  # polling a list under the deadline above
        took = loop.time() - t0
        await alice.sync()
        bounced = [m for m in alice.messages.items
                   if m["type"] == "error" and m["id"].startswith("fl-")]
        print(f"flood: {FLOOD} sent, {len(order)} delivered, {len(bounced)} bounced in"
              f" {took:.1f}s; beside it: carol {carol_took:.3f}s, dave {dave_took:.3f}s")
        assert len(order) == FLOOD and not bounced, (
            f"{FLOOD} sent, {len(order)} delivered, {len(bounced)} bounced within {took:.1f}s")
        assert order == [f"fl-{i}" for i in range(FLOOD)], "the flood arrived out of order"
        # Paced: (3,000 - the burst of 250) at 250 per second is 11 s.
        assert took > (FLOOD - FLOOD_RATE) / FLOOD_RATE * 0.8, f"{took:.1f}s: not paced"
    run(body, timeout=120)
    assert metric_sum(b, STREAMS_CLOSED, domain=A) == 0, "b closed a.test's stream"
    assert metric_sum(a, STREAMS_CLOSED, domain=B) == 0, "a's stream to b.test was closed"
    assert metric_sum(b, ERRORS, domain=A, kind="rate_limit") == 0
    assert metric_sum(b, PACED_SECONDS, domain=A) >= 5
    assert metric_sum(b, PACED, domain=C) == 0, "c.test was paced too"
    assert metric_sum(b, "waddle_s2s_stanzas_received_total", domain=A) >= FLOOD + 1


def test_disconnect_when_paced_for_closes_a_flooding_stream_on_request(fed, pki):
    """Disconnecting is the operator's explicit choice: b paces each domain at 20 stanzas/s and
    closes a domain paced for 1 s. An authenticated a.test stream sends 300 messages at once:
    b delivers the burst and about a second's worth, then closes the stream with
    policy-violation; carol@c.test's messages to bob arrive meanwhile and afterwards."""
    b = fed.server(B, dns="a", users=("bob",),
                   s2s={"stanza_rate": 20, "stanza_burst": 20, "disconnect_when_paced_for": "1s"})
    c = fed.server(C, dns="a", users=("carol",))
    fed.start()
    cert, key = pki.cert(A)
    flood = "".join(message_xml("flooder@a.test/raw", BOB, f"flood {i}", f"fl-{i}")
                    for i in range(300))

    async def body():
        bob = await login(b, BOB_R, PASSWORD)
        carol = await login(c, CAROL_R, PASSWORD)
        carol.chat(BOB, "before the flood")
        await bob.expect_message(frm=CAROL_R, body="before the flood")

        raw = RawS2s(b.ip, A, B, cert, key, pki.ca.cert, timeout=30)
        try:
            await asyncio.to_thread(raw.authenticate)

            def flood_until_closed() -> None:
                raw.send(flood)
                raw.collect_until_closed(30)

            flooding = asyncio.ensure_future(asyncio.to_thread(flood_until_closed))
            carol.chat(BOB, "during the flood")
            await bob.expect_message(frm=CAROL_R, body="during the flood", timeout=10)
            t0 = asyncio.get_running_loop().time()
            await flooding
            waited = asyncio.get_running_loop().time() - t0
            await bob.sync()
            flooded = sum(1 for m in bob.messages.items if m["body"].startswith("flood "))
            conds = raw.stream_error_conditions()
            assert conds == ["policy-violation"], raw._describe(
                f"the flood was not cut off with policy-violation (errors: {conds}; bob got"
                f" {flooded} of the 300 flood messages; waited {waited:.1f}s)")
            assert raw.eof, raw._describe("b did not close the flooding connection")
        finally:
            raw.close()
        carol.chat(BOB, "after the flood")
        await bob.expect_message(frm=CAROL_R, body="after the flood")
        # The burst and a second at the rate were delivered before the close, not all 300.
        assert 20 <= flooded < 300, flooded
    run(body, timeout=120)
    wait_metric(b, STREAMS_CLOSED, domain=A, direction="in", reason="rate_limit")
    wait_metric(b, ERRORS, domain=A, kind="rate_limit")
    assert metric_sum(b, PACED, domain=A) >= 1


# --------------------------------------------------------------------------- 9. idle


def test_idle_link_is_closed_and_reopened(fed):
    a = fed.server(A, dns="srv", users=("alice",), s2s={"idle_timeout": "1s"})
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        alice.chat(BOB, "before idle")
        await bob.expect_message(frm=ALICE_R, body="before idle")
        await await_metric(a, STREAMS_CLOSED, domain=B, direction="out", reason="idle")
        alice.chat(BOB, "after idle")
        await bob.expect_message(frm=ALICE_R, body="after idle")
    run(body)
    wait_metric(a, AUTHENTICATED, 2, domain=B, direction="out", method="sasl_external")


# --------------------------------------------------------------------------- 10. dead peers


def test_killed_peer_is_replaced_after_restart(fed):
    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        alice.chat(BOB, "before the kill")
        await bob.expect_message(frm=ALICE_R, body="before the kill")
        await bob.close()
        b.kill9()
        await await_metric(a, STREAMS_CLOSED, domain=B, direction="out", reason="peer")
        b.start()  # in this thread: the parent-death signal is tied to the starting thread
        bob = await login(b, BOB_R, PASSWORD)
        alice.chat(BOB, "after the restart")
        await bob.expect_message(frm=ALICE_R, body="after the restart", timeout=15)
    run(body)
    wait_metric(a, AUTHENTICATED, 2, domain=B, direction="out", method="sasl_external")


def test_stopped_peer_is_detected_by_ping_and_replaced(fed):
    """ping_interval 1s on a: while b is stopped (SIGSTOP, sockets open) the unanswered ping
    makes a replace the link; after SIGCONT a message queued meanwhile and a new one arrive."""
    a = fed.server(A, dns="srv", users=("alice",), s2s={"ping_interval": "1s"})
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        alice.chat(BOB, "before the stop")
        await bob.expect_message(frm=ALICE_R, body="before the stop")
        # pings on the quiet link are answered while b runs
        await await_metric(a, "waddle_s2s_latency_seconds_count", domain=B,
                           what="b never answered a's XEP-0199 ping on the quiet a->b link")
        text = a.metrics_text()
        assert metric_sum(text, STREAMS_CLOSED, domain=B, reason="ping_timeout") == 0, text
        assert metric_sum(text, ERRORS, domain=B, kind="timeout") == 0, text
        b.freeze()
        try:
            await await_metric(a, STREAMS_CLOSED, domain=B, direction="out",
                               reason="ping_timeout")
            assert metric_sum(a, ERRORS, domain=B, kind="timeout") == 1
            alice.chat(BOB, "while b was stopped")
        finally:
            b.thaw()
        await bob.expect_message(frm=ALICE_R, body="while b was stopped", timeout=15)
        alice.chat(BOB, "after SIGCONT")
        await bob.expect_message(frm=ALICE_R, body="after SIGCONT")
    run(body)
    wait_metric(a, AUTHENTICATED, 2, domain=B, direction="out", method="sasl_external")


# --------------------------------------------------------------------------- reload, metrics


def test_sighup_reload_applies_blocklist_without_restart(fed):
    """Policy is changed by editing the file and sending SIGHUP: the established link to the
    newly blocked domain is closed, later stanzas are bounced with policy-violation, and the
    process keeps running (bob's session on b is untouched)."""
    import signal

    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "before reload", "hup-1")
        await bob.messages.get(lambda m: m["id"] == "hup-1", 15, what="hup-1 at bob")

        since = a.log_size()
        a.config["s2s"]["policy"] = "blocklist"
        a.config["s2s"]["blocked_domains"] = [B]
        a.write_config()
        a.send_signal(signal.SIGHUP)
        # Operator-facing: after sending SIGHUP, this line is how an operator learns that
        # the file was read and applied (or, in its place, why not).
        await await_operator_log(a, r"SIGHUP: reloaded", since=since)
        await await_metric(a, STREAMS_CLOSED, domain=B, direction="out", reason="policy")
        send(alice, BOB, "after reload", "hup-2")
        err = await expect_error(alice, "hup-2")
        assert error_condition(err) == "policy-violation", str(err)
        await nothing_from(bob, A)
    run(body)
    assert a.running()


def test_metrics_endpoint_counts_federation_and_passes_promtool(fed, tmp_path):
    """/metrics on the metrics address shows per-domain S2S counters after real traffic, and
    the exposition passes `promtool check metrics` (Debian package prometheus)."""
    import shutil
    import subprocess

    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        for i in range(3):
            send(alice, BOB, f"m{i}", f"met-{i}")
        for i in range(3):
            await bob.messages.get(lambda m, i=i: m["id"] == f"met-{i}", 15, what=f"met-{i}")
    run(body)

    text_a, text_b = a.metrics_text(), b.metrics_text()
    sent = re.search(r'^waddle_s2s_stanzas_sent_total\{domain="b\.test"\} (\d+)', text_a, re.M)
    assert sent and int(sent.group(1)) >= 3, text_a
    received = re.search(r'^waddle_s2s_stanzas_received_total\{domain="a\.test"\} (\d+)',
                         text_b, re.M)
    assert received and int(received.group(1)) >= 3, text_b
    assert re.search(r'^waddle_s2s_connections_active\{domain="b\.test",direction="out"\} 1',
                     text_a, re.M), text_a
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    for text in (text_a, text_b):
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_direct_tls_srv_record_is_used_first(fed, pki):
    """XEP-0368: b.test publishes only _xmpps-server._tcp (direct TLS on 5270): a reaches it
    with TLS before the stream, and messages flow."""
    a = fed.server(A, dns="srv", users=("alice",))
    b = fed.server(B, dns=None, users=("bob",), s2s={"direct_tls_port": 5270})
    fed.dns.a(f"xmpps.{B}", b.ip)
    fed.dns.srv("_xmpps-server._tcp", B, f"xmpps.{B}", 5270)
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "over direct TLS", "dt-1")
        await bob.messages.get(lambda m: m["id"] == "dt-1", 15, what="dt-1 at bob")
    run(body)
    wait_metric(a, AUTHENTICATED, domain=B, direction="out", method="sasl_external")
    # b's port 5270 speaks TLS from the first byte: a stream opens inside the handshake.
    raw = RawS2s(b.ip, C, B, *pki.cert(C), pki.ca.cert, port=5270, direct_tls=True)
    try:
        features = raw.open_stream(raw.header())
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None, (
            raw._describe("STARTTLS offered inside direct TLS"))
        mechs = [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
        assert mechs == ["EXTERNAL"], raw._describe(f"mechanisms over direct TLS: {mechs}")
    finally:
        raw.close()


def test_disabled_federation_listens_nowhere_and_bounces_with_a_reason(make_server):
    """[s2s] enabled = false: no listener on 5269, and a stanza for another domain comes
    back at once as remote-server-not-found saying federation is off."""
    srv = make_server({"s2s": {"enabled": False}})
    srv.adduser("alice@example.test", PASSWORD)
    with pytest.raises(OSError):
        socket.create_connection((srv.ip, 5269), timeout=5).close()

    async def body():
        alice = await login(srv, "alice@example.test/home", PASSWORD)
        send(alice, "bob@elsewhere.test", "hello?", "off-1")
        err = await expect_error(alice, "off-1")
        assert error_condition(err) == "remote-server-not-found", str(err)
        assert "federation is not enabled" in error_text(err).lower(), str(err)
    run(body)


def test_peer_limited_to_tls_1_2_is_refused_by_the_default_minimum(fed, pki):
    """tls_min_version defaults to 1.3: a peer that offers at most TLS 1.2 after STARTTLS
    fails the handshake, and nothing is negotiated over it."""
    a = fed.server(A, users=("alice",))
    fed.start()
    raw = RawS2s(a.ip, B, A, *pki.cert(B), pki.ca.cert)
    try:
        features = raw.open_stream(raw.header())
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is not None
        raw.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        raw.expect("{urn:ietf:params:xml:ns:xmpp-tls}proceed")
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw.sock.settimeout(10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(raw.sock, server_hostname=A)
    finally:
        raw.close()


def test_bandwidth_limit_slows_reading_without_losing_stanzas(fed, pki):
    """With a total S2S read budget of 4000 bytes/s, ~24 kB sent at once by a peer take at
    least ~4 s to be read, and every message is still delivered, in order (backpressure,
    not loss)."""
    b = fed.server(B, dns="a", users=("bob",),
                   s2s={"bandwidth_limit": 4000, "stanza_rate": 0})
    fed.start()
    cert, key = pki.cert(A)
    padding = "x" * 500
    burst = "".join(message_xml("sender@a.test/raw", BOB, f"bw {i} {padding}", f"bw-{i}")
                    for i in range(40))
    assert len(burst) > 20000

    async def body():
        bob = await login(b, BOB_R, PASSWORD)
        raw = RawS2s(b.ip, A, B, cert, key, pki.ca.cert, timeout=30)
        try:
            await asyncio.to_thread(raw.authenticate)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            raw.send(burst)
            arrived = []
            for i in range(40):
                m = await bob.messages.get(lambda m: m["id"].startswith("bw-"), 30,
                                           what=f"message {i} of the burst at bob")
                arrived.append(m["id"])
            elapsed = loop.time() - t0
        finally:
            raw.close()
        # (24 kB - one second of burst) / 4000 B/s: at least ~4 s; allow slack below.
        assert elapsed >= 3.0, f"40 messages arrived in {elapsed:.2f}s: no backpressure"
        assert arrived == [f"bw-{i}" for i in range(40)], arrived
    run(body, timeout=90)


def test_max_connections_per_domain_never_refuses_a_local_domain_its_stream(fed):
    """a serves a.test and a2.test with max_connections_per_domain = 1: each local domain
    still reaches b.test (on a stream of its own or one shared with the other), since a peer
    that does not multiplex needs one per local domain. Nothing bounces; the first domain's
    stream keeps working."""
    # One certificate for both local domains, so that b.test accepts either.
    cert, key = fed.pki.ca.issue("a2.test", san=[A, f"*.{A}", "a2.test", "*.a2.test"])
    a = fed.server(A, dns="srv", users=("alice",),
                   overrides={"server": {"domains": [A, "a2.test"]},
                              "tls": {"cert": str(cert), "key": str(key)}},
                   s2s={"max_connections_per_domain": 1})
    b = fed.server(B, dns="a", users=("bob",))
    a.adduser("carol@a2.test", PASSWORD)
    fed.start()

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        carol = await login(a, "carol@a2.test/x", PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "first stream", "mc-1")
        await bob.messages.get(lambda m: m["id"] == "mc-1", 15, what="mc-1 at bob")
        send(carol, BOB, "the second local domain", "mc-2")
        await bob.messages.get(lambda m: m["id"] == "mc-2", 15, what="mc-2 at bob")
        send(alice, BOB, "first stream still works", "mc-3")
        await bob.messages.get(lambda m: m["id"] == "mc-3", 15, what="mc-3 at bob")
        await carol.sync()
        assert carol.messages.take(lambda m: m["type"] == "error") is None, carol.messages.items
    run(body)


def test_connection_rate_refuses_excess_new_connections_from_one_address(fed, pki):
    """connection_rate = 3 per minute per address (the harness's start-up probe of the S2S
    port, from 127.0.0.1, is the first): a fourth new connection from the same address within
    the minute gets the stream error policy-violation as soon as it is accepted (whatever
    domain it would claim), while the two authenticated streams go on. The refusal is counted
    under domain="unauthenticated"."""
    b = fed.server(B, dns="a", users=("bob",), s2s={"connection_rate": 3})
    fed.start()
    opened = []
    try:
        for _ in range(2):
            raw = RawS2s(b.ip, A, B, *pki.cert(A), pki.ca.cert)
            opened.append(raw)
            raw.authenticate()
        third = RawS2s(b.ip, C, B, *pki.cert(C), pki.ca.cert)
        opened.append(third)
        third.assert_stream_error("policy-violation", 10)  # nothing sent: refused at accept

        async def body():  # the authenticated streams still deliver
            bob = await login(b, BOB_R, PASSWORD)
            opened[0].send(message_xml(f"x@{A}/r", BOB_R, "after the refusal", "cr-1"))
            await bob.expect_message(frm=f"x@{A}/r", body="after the refusal")
        run(body)
    finally:
        for raw in opened:
            raw.close()
    wait_metric(b, STREAMS_CLOSED, domain="unauthenticated", direction="in", reason="rate_limit")
    text = b.metrics_text()
    assert metric_sum(text, ERRORS, domain="unauthenticated", kind="rate_limit") == 1, text
    assert metric_sum(text, ERRORS, domain=(A, C), kind="rate_limit") == 0, text
    assert metric_sum(text, "waddle_connections_refused_total", listener="s2s",
                      reason="rate") == 1, text
