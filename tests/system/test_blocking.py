"""Blocking Command (XEP-0191) with spam reports (XEP-0377), with slixmpp's xep_0191 and
xep_0377 plugins as the real client and raw XML for malformed commands.

Where messages flow, every message sent is counted as delivered or bounced (sent = delivered
+ bounced). Waits are on stanzas and /metrics counters, each with a deadline.
Run: /usr/bin/python3 -m pytest tests/system/test_blocking.py -q
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from federation import metric_sum
from rawxmpp import RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, Client, Inbox, bare, befriend, login, run

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_REPORTING = "urn:xmpp:reporting:1"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
BLOCKED = "waddle_blocked_stanzas_total"
REPORTS = "waddle_spam_reports_total"
CACHED = "waddle_blocklists_cached"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)
    return server


async def blocker(server, jid: str, *, expect: frozenset | set = frozenset()) -> Client:
    """A client with the XEP-0191/0377 plugins that has fetched its blocklist (so it gets
    the pushes); pushes are collected in `block_pushes`."""
    c = Client(server, jid, PASSWORD)
    c.register_plugin("xep_0191")
    c.register_plugin("xep_0377")
    c.block_pushes = Inbox(f"a blocklist push for {jid}")
    for event in ("blocked", "unblocked"):
        c.add_event_handler(event, c.block_pushes.put)
    await c.start()
    await c.online()
    assert await blocklist(c) == set(expect)
    return c


async def blocklist(c: Client) -> set[str]:
    result = await c["xep_0191"].get_blocked(timeout=10)
    return {str(j) for j in result["blocklist"]["items"]}


async def push_for(c: Client, kind: str, jids: set[str]):
    return await c.block_pushes.get(
        lambda iq: kind in iq.keys() and {str(j) for j in iq[kind]["items"]} == jids,
        what=f"a {kind} push of {jids} to {c.label}")


async def outcomes(sender: Client, receiver: Client, prefix: str, n: int,
                   expect_bounced: bool) -> tuple[list, list]:
    """Sends `n` messages and waits for the expected outcome of each (bounced to `sender`, or
    delivered to `receiver`); then, after a round trip of the other side, collects what went
    the other way. Returns (delivered, bounced) with len(delivered) + len(bounced) == n."""
    to = receiver.boundjid.bare
    for i in range(n):
        msg = sender.make_message(mto=to, mbody=f"{prefix} {i}", mtype="chat")
        msg["id"] = f"{prefix}-{i}"
        msg.send()

    def is_bounce(m):
        return m["type"] == "error" and m["id"].startswith(prefix + "-")

    def is_delivery(m):
        return m["type"] != "error" and m["body"].startswith(prefix + " ")

    if expect_bounced:
        bounced = [await sender.messages.get(is_bounce, what=f"bounce of {prefix}")
                   for _ in range(n)]
        await receiver.sync()
        delivered = [m for m in receiver.messages.items if is_delivery(m)]
    else:
        delivered = [await receiver.messages.get(is_delivery, what=f"delivery of {prefix}")
                     for _ in range(n)]
        await sender.sync()
        bounced = [m for m in sender.messages.items if is_bounce(m)]
    assert len(delivered) + len(bounced) == n, (prefix, delivered, bounced)
    return delivered, bounced


def condition(stanza) -> str:
    for err in stanza.xml:
        if err.tag.endswith("}error"):
            for child in err:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                    return child.tag.rsplit("}", 1)[1]
    return ""


def has_blocked_child(stanza) -> bool:
    err = stanza.xml.find("{jabber:client}error")
    return err is not None and err.find(f"{{{NS_BLOCKING_ERRORS}}}blocked") is not None


async def nothing_more(c: Client, frm: str) -> None:
    """After a round trip, `c` has received no message or presence from the bare JID `frm`."""
    await c.sync()
    got = [s for s in c.messages.items + c.presences.items if bare(s["from"]) == frm]
    assert not got, f"{c.label} received from {frm}: " + "; ".join(str(s) for s in got)


def wait_gauge_zero(srv, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := metric_sum(srv.metrics_text(), name)) != 0:
        assert time.monotonic() < deadline, f"{name} is still {got} after {timeout}s"
        time.sleep(0.05)  # polling /metrics under the deadline above


async def disco_features(c: Client, to: str) -> set[str]:
    info = await c["xep_0030"].get_info(jid=to, timeout=10)
    return set(info["disco_info"]["features"])


# --------------------------------------------------------------------------- local contacts


def test_block_local_contact_then_unblock(users):
    """Alice blocks Bob: the push reaches her second resource, Bob sees her go offline, his
    messages bounce with service-unavailable, his presence, probes and IQs do not reach her,
    hers to him are refused with <blocked/>; unblocking restores all of it."""
    async def body():
        alice = await blocker(users, f"{ALICE}/home")
        phone = await blocker(users, f"{ALICE}/phone")
        bob = await login(users, f"{BOB}/work", PASSWORD)
        carol = await login(users, f"{CAROL}/distractor", PASSWORD)
        await befriend(alice, bob)
        await bob.expect_presence(frm=f"{ALICE}/phone", ptype="available")
        bob.presences.items.clear()

        for to in (DOMAIN, ALICE):  # the server's and the account's disco#info
            features = await disco_features(alice, to)
            for f in (NS_BLOCKING, NS_REPORTING):
                assert f in features, f"{f} not in disco#info of {to}: {features}"

        await alice["xep_0191"].block(BOB, timeout=10)
        for c in (alice, phone):
            await push_for(c, "block", {BOB})
        for resource in ("home", "phone"):  # §3.3: unavailable from each available resource
            await bob.expect_presence(frm=f"{ALICE}/{resource}", ptype="unavailable")
        assert await blocklist(phone) == {BOB}
        alice.messages.items.clear()
        alice.presences.items.clear()
        phone.presences.items.clear()

        delivered, bounced = await outcomes(bob, alice, "blocked", 5, expect_bounced=True)
        assert not delivered and len(bounced) == 5
        assert all(condition(m) == "service-unavailable" for m in bounced), bounced
        assert not phone.messages.take(lambda m: m["body"].startswith("blocked "))

        bob.send_presence(pstatus="still here")
        bob.send_presence(pto=ALICE, ptype="probe")
        with pytest.raises(IqError) as e:
            await bob["xep_0092"].get_version(f"{ALICE}/home", timeout=10)
        assert e.value.iq["error"]["condition"] == "service-unavailable"
        await nothing_more(bob, ALICE)  # no answer to the probe
        await nothing_more(alice, BOB)
        await nothing_more(phone, BOB)

        # §3.3: what Alice sends to Bob is refused, with the reason
        alice.chat(BOB, "you cannot read this")
        refused = await alice.messages.get(lambda m: m["type"] == "error", what="not-acceptable")
        assert condition(refused) == "not-acceptable" and has_blocked_child(refused), refused
        assert str(refused["from"]) == BOB
        await nothing_more(bob, ALICE)

        await phone["xep_0191"].unblock(BOB, timeout=10)
        for c in (alice, phone):
            await push_for(c, "unblock", {BOB})
        for resource in ("home", "phone"):  # her presence again, and she sees his
            await bob.expect_presence(frm=f"{ALICE}/{resource}", ptype="available")
        await alice.expect_presence(frm=f"{BOB}/work", ptype="available")
        delivered, bounced = await outcomes(bob, alice, "again", 3, expect_bounced=False)
        assert len(delivered) == 3 and not bounced
        assert await blocklist(alice) == set()
        await nothing_more(carol, ALICE)
        await nothing_more(carol, BOB)
        # one list in memory per account with sessions (Alice's two share hers)
        assert metric_sum(await asyncio.to_thread(users.metrics_text), CACHED) == 3
    run(body)
    wait_gauge_zero(users, CACHED)  # every session gone: no list kept
    text = users.metrics_text()
    assert metric_sum(text, BLOCKED, direction="inbound") >= 8, text  # 5 messages, presence...
    assert metric_sum(text, BLOCKED, direction="outbound") == 1, text


def test_block_survives_logout_and_applies_while_offline(users):
    """The list is stored: Bob's message to an offline Alice who blocked him bounces and is
    not kept for her; a domain-wide block covers every user of the domain."""
    async def body():
        alice = await blocker(users, f"{ALICE}/home")
        await alice["xep_0191"].block([BOB], timeout=10)
        await alice.close()
        bob = await login(users, f"{BOB}/work", PASSWORD)
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        for i in range(3):
            msg = bob.make_message(mto=ALICE, mbody=f"offline {i}", mtype="chat")
            msg["id"] = f"offline-{i}"
            msg.send()
        bounced = [await bob.messages.get(lambda m: m["type"] == "error"
                                          and m["id"].startswith("offline-"))
                   for _ in range(3)]
        assert all(condition(m) == "service-unavailable" for m in bounced), bounced
        bob.send_presence(pto=ALICE, ptype="subscribe")  # dropped, not kept for her login
        carol.chat(ALICE, "from carol while offline")  # a distractor: not blocked, stored
        await carol.sync()
        await bob.sync()

        alice = await blocker(users, f"{ALICE}/home", expect={BOB})
        got = await alice.expect_message(frm=f"{CAROL}/desk", body="from carol while offline")
        assert got is not None
        await nothing_more(alice, BOB)  # nothing of Bob's was stored

        # the whole domain (which is the server's own: users, not the server itself)
        await alice["xep_0191"].block([DOMAIN], timeout=10)
        assert await blocklist(alice) == {BOB, DOMAIN}
        delivered, bounced = await outcomes(carol, alice, "domain", 3, expect_bounced=True)
        assert not delivered and len(bounced) == 3
        assert (await disco_features(alice, DOMAIN))  # the server itself still answers
        await alice["xep_0191"].unblock([], timeout=10)  # §3.5: an empty <unblock/>
        assert await blocklist(alice) == set()
        delivered, bounced = await outcomes(carol, alice, "open", 3, expect_bounced=False)
        assert len(delivered) == 3 and not bounced
    run(body)



# --------------------------------------------------------------------------- reports, errors


def test_spam_report_is_counted_and_blocks(users):
    """XEP-0377: a report with reason spam (urn:xmpp:reporting:1, with a text) and one from
    slixmpp's own plugin (its urn:xmpp:reporting:0 form) both block and are counted."""
    async def body():
        alice = await blocker(users, f"{ALICE}/home")
        iq = alice.make_iq_set()
        block = ET.SubElement(iq.xml, tag(NS_BLOCKING, "block"))
        item = ET.SubElement(block, tag(NS_BLOCKING, "item"), {"jid": BOB})
        report = ET.SubElement(item, tag(NS_REPORTING, "report"),
                               {"reason": "urn:xmpp:reporting:spam"})
        ET.SubElement(report, tag(NS_REPORTING, "text")).text = "Buy cheap watches"
        await iq.send(timeout=10)
        await push_for(alice, "block", {BOB})

        iq = alice.make_iq_set()
        iq["block"]["items"] = [CAROL]
        iq["block"]["report"]["abuse"] = True
        iq["block"]["report"]["text"] = "threats"
        await iq.send(timeout=10)
        assert await blocklist(alice) == {BOB, CAROL}
        bob = await login(users, f"{BOB}/work", PASSWORD)
        delivered, bounced = await outcomes(bob, alice, "spam", 2, expect_bounced=True)
        assert not delivered and len(bounced) == 2
    run(body)
    assert metric_sum(users.metrics_text(), REPORTS, reason="spam") == 1
    assert metric_sum(users.metrics_text(), REPORTS, reason="abuse") == 1
    assert users.db_contains("Buy cheap watches")  # kept for the operator


def test_malformed_commands_get_the_xep_errors(users):
    """Raw XML: an empty <block/> is bad-request, an item with an invalid or missing JID is
    jid-malformed (block and unblock), a <blocklist/> set is bad-request; nothing changes and
    the stream stays up."""
    raw = RawXmpp(users.ip, users.port)
    try:
        raw.login("alice", PASSWORD, resource="raw")
        cases = {
            "empty": ("<block xmlns='urn:xmpp:blocking'/>", "set", "bad-request"),
            "badjid": ("<block xmlns='urn:xmpp:blocking'><item jid='a@b@c'/></block>", "set",
                       "jid-malformed"),
            "nojid": ("<block xmlns='urn:xmpp:blocking'><item jid='ok@example.test'/><item/>"
                      "</block>", "set", "jid-malformed"),
            "unblockbad": ("<unblock xmlns='urn:xmpp:blocking'><item jid='@x'/></unblock>",
                           "set", "jid-malformed"),
            "setlist": ("<blocklist xmlns='urn:xmpp:blocking'/>", "set", "bad-request"),
            "getblock": ("<block xmlns='urn:xmpp:blocking'><item jid='x@y.test'/></block>",
                         "get", "bad-request"),
        }
        for iq_id, (payload, kind, _) in cases.items():
            raw.send(f"<iq type='{kind}' id='{iq_id}'>{payload}</iq>")
        raw.send("<iq type='get' id='list'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        answers = {}
        for _ in range(50):
            if "list" in answers:
                break
            el = raw.next_element()
            if el.tag == tag("jabber:client", "iq"):
                answers[el.get("id")] = el
        for iq_id, (_, _, expected) in cases.items():
            el = answers[iq_id]
            err = el.find(tag("jabber:client", "error"))
            assert el.get("type") == "error" and err is not None, ET.tostring(el)
            assert err.find(tag(NS_STANZAS, expected)) is not None, ET.tostring(el)
        listed = answers["list"].find(tag(NS_BLOCKING, "blocklist"))
        assert answers["list"].get("type") == "result" and len(listed) == 0, ET.tostring(
            answers["list"])
    finally:
        raw.close()


# --------------------------------------------------------------------------- federation

A, B = "a.test", "b.test"


def test_block_remote_user_and_domain(fed):
    """Alice on a.test blocks Bob on b.test, then all of b.test: Bob's messages come back
    with service-unavailable across the federation link and his presence stops; unblocking
    all lets them through again."""
    a = fed.server(A, users=("alice",))
    b = fed.server(B, users=("bob",))
    fed.start()
    alice_jid, bob_jid = f"alice@{A}", f"bob@{B}"

    async def body():
        alice = await blocker(a, f"{alice_jid}/home")
        bob = await login(b, f"{bob_jid}/work", PASSWORD)
        await befriend(alice, bob)
        delivered, _ = await outcomes(bob, alice, "before", 2, expect_bounced=False)
        assert len(delivered) == 2

        await alice["xep_0191"].block(bob_jid, timeout=10)
        await bob.expect_presence(frm=f"{alice_jid}/home", ptype="unavailable")
        alice.presences.items.clear()
        delivered, bounced = await outcomes(bob, alice, "user", 3, expect_bounced=True)
        assert not delivered and len(bounced) == 3
        assert all(condition(m) == "service-unavailable" for m in bounced), bounced
        bob.send_presence(pstatus="remote status")
        await nothing_more(alice, bob_jid)

        await alice["xep_0191"].unblock([], timeout=10)
        await alice.expect_presence(frm=f"{bob_jid}/work", ptype="available")
        await alice["xep_0191"].block(B, timeout=10)  # the whole domain
        delivered, bounced = await outcomes(bob, alice, "domain", 3, expect_bounced=True)
        assert not delivered and len(bounced) == 3

        await alice["xep_0191"].unblock(B, timeout=10)
        delivered, bounced = await outcomes(bob, alice, "after", 3, expect_bounced=False)
        assert len(delivered) == 3 and not bounced
    run(body)
    assert metric_sum(a.metrics_text(), BLOCKED, direction="inbound") >= 6


def test_first_stanzas_of_a_session_wait_for_the_stored_list(users):
    """A session whose very first stanzas go to a blocked and to an allowed JID (the list is
    still being read): the first is refused with <blocked/>, the second delivered."""
    async def body():
        alice = await blocker(users, f"{ALICE}/home")
        await alice["xep_0191"].block(BOB, timeout=10)
        await alice.close()
        await asyncio.to_thread(wait_gauge_zero, users, CACHED)  # Alice's list left memory
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        raw = RawXmpp(users.ip, users.port)
        try:
            await asyncio.to_thread(raw.login, "alice", PASSWORD, "raw")
            raw.send(f"<message to='{BOB}' id='m1' type='chat'><body>first</body></message>"
                     f"<message to='{CAROL}' id='m2' type='chat'><body>second</body></message>")
            el = await asyncio.to_thread(raw.expect, tag("jabber:client", "message"))
            assert el.get("id") == "m1" and el.get("type") == "error", ET.tostring(el)
            err = el.find(tag("jabber:client", "error"))
            assert err.find(tag(NS_STANZAS, "not-acceptable")) is not None, ET.tostring(el)
            assert err.find(tag(NS_BLOCKING_ERRORS, "blocked")) is not None, ET.tostring(el)
            await carol.expect_message(frm=f"{ALICE}/raw", body="second")
        finally:
            raw.close()
    run(body)
