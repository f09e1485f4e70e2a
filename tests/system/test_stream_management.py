"""Stream management for clients (XEP-0198) and client state indication (XEP-0352).

A phone (slixmpp with its XEP-0198 plugin) loses its connection in the middle of a conversation:
what the server had written and the phone never read, and what arrived while it was away, reach
it when it resumes, exactly once, and its contact sees no presence change. A session not
resumed in time hands its unacknowledged messages to offline storage. Bad acknowledgements,
unknown or foreign resumption ids and a client that never acknowledges (past the stanza or the
byte bound) get the XEP's answers, and what it did not acknowledge goes elsewhere. An inactive
client gets what was held back once the queue's byte bound is reached.
"""

import asyncio
import xml.etree.ElementTree as ET

import pytest

from federation import await_metric, metric_sum
from rawxmpp import RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, Client, befriend, has_delay, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
NS_SM = "urn:xmpp:sm:3"
NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SM_EVENTS = "waddle_c2s_stream_management_total"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


class Phone(Client):
    """A client with slixmpp's stream management (resumption on) and CSI plugins."""

    def __init__(self, server, jid):
        super().__init__(server, jid, PASSWORD)
        self.register_plugin("xep_0198")
        self.register_plugin("xep_0352")
        self.register_plugin("xep_0085")
        loop = asyncio.get_event_loop()
        self.enabled = loop.create_future()
        self.resumed = loop.create_future()
        self.add_event_handler("sm_enabled", lambda e: self._set(self.enabled, e))
        self.add_event_handler("session_resumed", lambda e: self._set(self.resumed, e))

    @staticmethod
    def _set(fut, value):
        if not fut.done():
            fut.set_result(value)

    async def lose_connection_with_unread_data(self) -> None:
        """The phone stops reading and its connection dies (what the server wrote last stays
        unread in the socket), as when a phone leaves the network."""
        self.transport.pause_reading()

    def drop(self) -> None:
        self.transport.close()
        self.transport.abort()


async def phone_online(server, jid: str) -> Phone:
    phone = Phone(server, jid)
    await phone.start()
    await asyncio.wait_for(phone.enabled, 10)
    assert phone["xep_0198"].sm_id, "the server did not offer resumption"
    await phone.online()
    return phone


def test_phone_that_loses_its_connection_resumes_and_misses_nothing(users):
    async def body():
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        phone = await phone_online(users, f"{ALICE}/phone")
        await befriend(phone, bob)
        for i in range(3):
            bob.chat(ALICE, f"before-{i}")
        for i in range(3):
            await phone.expect_message(frm=f"{BOB}/desk", body=f"before-{i}")

        # Written by the server, never read by the phone: lost with the connection.
        await phone.lose_connection_with_unread_data()
        unread = [f"unread-{i}" for i in range(5)]
        for text in unread:
            bob.chat(ALICE, text)
        await bob.sync()
        phone.drop()
        await await_metric(users, SM_EVENTS, 1, event="hibernated",
                           what="the server noticed the lost connection")
        # Sent while the phone is away: kept for it.
        away = [f"away-{i}" for i in range(3)]
        for text in away:
            bob.chat(ALICE, text)
        await bob.sync()

        phone.connect(address=phone.address)
        await asyncio.wait_for(phone.resumed, 10)
        for text in unread + away:
            await phone.expect_message(frm=f"{BOB}/desk", body=text)
        bob.chat(ALICE, "after")
        await phone.expect_message(frm=f"{BOB}/desk", body="after")
        await phone.sync()
        # Every message exactly once (each expected one was taken from the inbox above).
        twice = [m["body"] for m in phone.messages.items if m["body"]]
        assert twice == [], f"delivered twice: {twice}"
        # The same session, the same JID, no presence change seen by the contact.
        assert str(phone.boundjid) == f"{ALICE}/phone"
        await bob.sync()
        assert bob.presences.take(lambda p: p.xml.get("type") == "unavailable") is None, \
            "the contact saw the phone go offline"
        bob.chat(f"{ALICE}/phone", "to the full JID")
        await phone.expect_message(body="to the full JID")
        assert metric_sum(users, SM_EVENTS, event="resumed") == 1
        assert metric_sum(users, SM_EVENTS, event="expired") == 0
    run(body)


def test_session_not_resumed_in_time_sends_its_messages_to_offline_storage(make_server):
    server = make_server({"c2s": {"resume_timeout": "1s"}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)

    async def body():
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        phone = await phone_online(server, f"{ALICE}/phone")
        await befriend(phone, bob)
        await phone.lose_connection_with_unread_data()
        sent = [f"unread-{i}" for i in range(4)]
        for text in sent:
            bob.chat(ALICE, text)
        await bob.sync()
        phone.drop()
        await await_metric(server, SM_EVENTS, 1, event="hibernated")
        for i in range(2):
            sent.append(f"away-{i}")
            bob.chat(ALICE, sent[-1])
        await bob.sync()
        # Not resumed: the contact now sees the phone go, and the messages are stored.
        await bob.expect_presence(frm=f"{ALICE}/phone", ptype="unavailable")
        await await_metric(server, SM_EVENTS, 1, event="expired")
        await await_metric(server, "waddle_offline_messages_stored_total", len(sent))
        again = await login(server, f"{ALICE}/laptop", PASSWORD)
        for text in sent:
            m = await again.expect_message(frm=f"{BOB}/desk", body=text)
            assert has_delay(m) is not None, "an offline message without its delay stamp"
        await again.sync()
        assert [m["body"] for m in again.messages.items if m["type"] != "error"] == []
        assert bob.messages.take(lambda m: m["type"] == "error") is None, "a message bounced"
    run(body)


def test_server_stopping_with_a_session_waiting_to_be_resumed_keeps_its_messages(users):
    async def body():
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        phone = await phone_online(users, f"{ALICE}/phone")
        await phone.lose_connection_with_unread_data()
        bob.chat(ALICE, "unread")
        await bob.sync()
        phone.drop()
        await await_metric(users, SM_EVENTS, 1, event="hibernated")
        bob.chat(ALICE, "away")
        await bob.sync()
    run(body)
    assert users.stop() == 0
    users.start()

    async def after():
        alice = await login(users, f"{ALICE}/phone", PASSWORD)
        for text in ("unread", "away"):
            await alice.expect_message(frm=f"{BOB}/desk", body=text)
    run(after)


# --------------------------------------------------------------------------- raw XML


def raw_login(server, user: str, resource="raw") -> RawXmpp:
    raw = RawXmpp(server.ip, server.port)
    raw.login(user, PASSWORD, resource=resource)
    return raw


def enable(raw: RawXmpp, resume: bool = True) -> ET.Element:
    extra = " resume='true'" if resume else ""
    raw.send(f"<enable xmlns='{NS_SM}'{extra}/>")
    return raw.expect(tag(NS_SM, "enabled"))


def failed_condition(el: ET.Element) -> str:
    assert el.tag == tag(NS_SM, "failed"), ET.tostring(el).decode()
    return [c.tag.split("}")[1] for c in el if c.tag.startswith(f"{{{NS_STANZAS}}}")][0]


def test_stream_features_and_answers_to_requests(users):
    raw = RawXmpp(users.ip, users.port)
    raw.tls_stream()
    assert raw.auth_plain("alice", PASSWORD).tag.endswith("success")
    features = raw.open_stream()
    assert features.find(tag(NS_SM, "sm")) is not None
    assert features.find(tag("urn:xmpp:csi:0", "csi")) is not None
    # <enable/> before binding a resource: unexpected-request, and the stream goes on.
    raw.send(f"<enable xmlns='{NS_SM}'/>")
    assert failed_condition(raw.next_element()) == "unexpected-request"
    raw.bind("raw")
    enabled = enable(raw)
    assert enabled.get("resume") == "true" and enabled.get("id")
    assert int(enabled.get("max")) == 300
    # Three stanzas handled: <r/> is answered with h=3.
    for i in range(3):
        raw.send(f"<iq type='get' id='p{i}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
    raw.send(f"<r xmlns='{NS_SM}'/>")
    raw.collect_until(lambda r: any(e.tag == tag(NS_SM, "a") for e in r.elements))
    acks = [e for e in raw.elements if e.tag == tag(NS_SM, "a")]
    assert acks[-1].get("h") == "3", raw.received_text()
    # The server asks for acknowledgements of what it sent (the three results).
    assert any(e.tag == tag(NS_SM, "r") for e in raw.elements), raw.received_text()
    raw.send(f"<a xmlns='{NS_SM}' h='3'/>")
    # A second <enable/>: unexpected-request.
    raw.send(f"<enable xmlns='{NS_SM}'/>")
    raw.collect_until(lambda r: any(e.tag == tag(NS_SM, "failed") for e in r.elements))
    assert failed_condition([e for e in raw.elements if e.tag == tag(NS_SM, "failed")][0]) == \
        "unexpected-request"
    # Acknowledging more than was sent ends the stream.
    raw.send(f"<a xmlns='{NS_SM}' h='4000'/>")
    raw.assert_stream_error("undefined-condition")


def test_resumption_with_an_unknown_or_foreign_id_fails_and_binding_goes_on(users):
    alice = raw_login(users, "alice")
    alice_id = enable(alice).get("id")
    for previd in ("no-such-session", alice_id):
        bob = RawXmpp(users.ip, users.port)
        bob.login("bob", PASSWORD, resource=None)
        bob.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        assert failed_condition(bob.next_element()) == "item-not-found"
        assert bob.bind("after-failed-resume") == f"{BOB}/after-failed-resume"
        bob.close()
    # Alice's session was not touched: it still answers.
    alice.send(f"<r xmlns='{NS_SM}'/>")
    alice.collect_until(lambda r: any(e.tag == tag(NS_SM, "a") for e in r.elements))
    assert metric_sum(users, SM_EVENTS, event="resume_failed") == 2
    alice.close()


def test_client_that_never_acknowledges_is_closed_and_loses_nothing(make_server):
    server = make_server({"c2s": {"max_unacked_stanzas": 10}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    raw = raw_login(server, "alice", "silent")
    enable(raw, resume=False)
    raw.send("<presence/>")

    async def body():
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        sent = [f"m-{i}" for i in range(15)]
        for text in sent:
            bob.chat(f"{ALICE}/silent", text)
        await bob.sync()
        await asyncio.to_thread(raw.assert_stream_error, "policy-violation")
        await await_metric(server, SM_EVENTS, 1, event="overflow")
        await await_metric(server, "waddle_offline_messages_stored_total", len(sent))
        # None was acknowledged: all of them come again, from offline storage.
        alice = await login(server, f"{ALICE}/again", PASSWORD)
        for text in sent:
            await alice.expect_message(frm=f"{BOB}/desk", body=text)
        assert bob.messages.take(lambda m: m["type"] == "error") is None
    run(body)


def stanzas_since(raw: RawXmpp, enabled: ET.Element) -> int:
    """The stanzas the server sent after <enabled/>: the client's h."""
    after = raw.elements[raw.elements.index(enabled) + 1:]
    return sum(1 for e in after if e.tag.startswith(f"{{{NS_CLIENT}}}"))


async def answered_request(raw: RawXmpp) -> None:
    """Sends <r/> and waits for the server's <a/>."""
    def answers(r: RawXmpp) -> int:
        return sum(1 for e in r.elements if e.tag == tag(NS_SM, "a"))
    before = answers(raw)
    raw.send(f"<r xmlns='{NS_SM}'/>")
    done = await asyncio.to_thread(raw.collect_until, lambda r: answers(r) > before)
    assert done, raw.received_text(500)


def messages_received(raw: RawXmpp) -> list[str]:
    return [e.findtext(tag(NS_CLIENT, "body")) for e in raw.elements
            if e.tag == tag(NS_CLIENT, "message")]


@pytest.mark.parametrize("elsewhere", ["other_resource", "offline"])
def test_client_that_never_acknowledges_large_messages_is_closed_at_the_byte_bound(
        make_server, elsewhere):
    # 64 KiB may be left unacknowledged (in force: twice the largest stanza is less); the
    # stanza bound (5,000) is far away.
    server = make_server({"c2s": {"max_unacked_bytes": "64KiB",
                                  "limits": {"max_stanza_size": 16384}},
                          "s2s": {"max_stanza_size": 16384}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    raw = raw_login(server, "alice", "silent")
    enabled = enable(raw, resume=False)
    raw.send("<presence/>")
    big = "x" * 8000  # some 8.1 KB a message as written: 8 fit in 64 KiB, 9 do not

    def batch(name: str, n: int) -> list[str]:
        return [f"{name}-{i}-{big}" for i in range(n)]

    async def read(texts: list[str]) -> None:
        def done(r: RawXmpp) -> bool:
            return all(t in messages_received(r) for t in texts)
        assert await asyncio.to_thread(raw.collect_until, done), raw.received_text(500)

    async def body():
        desk = None
        if elsewhere == "other_resource":
            desk = await login(server, f"{ALICE}/desk", PASSWORD)
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        # Six messages (~49 KB), read and acknowledged: they no longer count.
        acked = batch("acked", 6)
        for text in acked:
            bob.chat(f"{ALICE}/silent", text)
        await read(acked)
        # The acknowledgement, and a request whose answer says the server has taken it (it
        # reads the stream in order) before the next messages come on another stream.
        raw.send(f"<a xmlns='{NS_SM}' h='{stanzas_since(raw, enabled)}'/>")
        await answered_request(raw)
        # Six more, read and never acknowledged: ~49 KB kept (~97 KB if the acknowledged
        # ones still counted, past the bound): the session stays.
        unacked = batch("unacked", 6)
        for text in unacked:
            bob.chat(f"{ALICE}/silent", text)
        await read(unacked)
        await answered_request(raw)
        assert not raw.stream_error_conditions(), raw.received_text(500)
        # Six more: past 64 KiB unacknowledged, the session ends.
        over = batch("over", 6)
        for text in over:
            bob.chat(f"{ALICE}/silent", text)
        await bob.sync()
        await asyncio.to_thread(raw.assert_stream_error, "policy-violation")
        await await_metric(server, SM_EVENTS, 1, event="overflow_bytes")
        # Every message the silent client did not acknowledge reaches the other resource (or,
        # without one, offline storage), once; none of those it acknowledged comes again.
        stored = 0
        if desk is None:
            stored = len(unacked + over)
            await await_metric(server, "waddle_offline_messages_stored_total", stored)
            desk = await login(server, f"{ALICE}/later", PASSWORD)
        for text in unacked + over:
            await desk.expect_message(frm=f"{BOB}/desk", body=text)
        await desk.sync()
        delivered = len(unacked + over) - stored  # each taken from the inbox above
        again = [m["body"][:12] for m in desk.messages.items if m["body"]]
        assert again == [], f"delivered twice or acknowledged before: {again}"
        sent = len(acked) + len(unacked) + len(over)
        assert sent == len(acked) + delivered + stored
        assert metric_sum(server, "waddle_offline_messages_stored_total") == stored
        assert bob.messages.take(lambda m: m["type"] == "error") is None, "a message bounced"
        assert metric_sum(server, SM_EVENTS, event="overflow") == 0
        # At least the seven that were kept when the bound was passed were handed over (the
        # rest may have reached the session after it left).
        rerouted = metric_sum(server, "waddle_c2s_unwritten_stanzas_total", outcome="rerouted")
        assert len(unacked) + 1 <= rerouted <= len(unacked + over), rerouted
    run(body)


def test_session_waiting_to_be_resumed_ends_at_the_byte_bound(make_server):
    server = make_server({"c2s": {"max_unacked_bytes": "64KiB",
                                  "limits": {"max_stanza_size": 16384}},
                          "s2s": {"max_stanza_size": 16384}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    big = "x" * 8000

    async def body():
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        phone = await phone_online(server, f"{ALICE}/phone")
        await befriend(phone, bob)
        phone.drop()
        await await_metric(server, SM_EVENTS, 1, event="hibernated")
        # Kept for the phone while it is away, until more than 64 KiB wait: the session ends
        # long before resume_timeout, and everything goes to offline storage.
        sent = [f"away-{i}-{big}" for i in range(10)]
        for text in sent:
            bob.chat(ALICE, text)
        await bob.sync()
        await await_metric(server, SM_EVENTS, 1, event="overflow_bytes")
        await bob.expect_presence(frm=f"{ALICE}/phone", ptype="unavailable")
        await await_metric(server, "waddle_offline_messages_stored_total", len(sent))
        later = await login(server, f"{ALICE}/later", PASSWORD)
        for text in sent:
            await later.expect_message(frm=f"{BOB}/desk", body=text)
        await later.sync()
        assert [m["body"][:8] for m in later.messages.items if m["body"]] == []
        assert metric_sum(server, "waddle_offline_messages_stored_total") == len(sent)
        assert bob.messages.take(lambda m: m["type"] == "error") is None, "a message bounced"
        assert metric_sum(server, SM_EVENTS, event="expired") == 0
        assert metric_sum(server, SM_EVENTS, event="overflow") == 0
    run(body)


# --------------------------------------------------------------------------- XEP-0352


def test_inactive_client_gets_presence_and_chat_states_later_and_only_the_latest(users):
    async def body():
        bob = Client(users, f"{BOB}/desk", PASSWORD)
        bob.register_plugin("xep_0085")
        await (await bob.start()).online()
        alice = await phone_online(users, f"{ALICE}/phone")
        await befriend(alice, bob)
        alice["xep_0352"].send_inactive()
        await alice.sync()  # the server has taken the state
        bob.send_presence(pshow="away")
        bob.send_presence(pshow="dnd")
        for state in ("composing", "paused"):
            msg = bob.make_message(mto=ALICE, mtype="chat")
            msg["chat_state"] = state
            msg.send()
        await bob.sync()
        await await_metric(users, "waddle_c2s_csi_stanzas_total", 4, outcome="held",
                           what="two presence updates and two chat states held back")
        # A message with a body goes at once, after what was held (only the latest of each).
        bob.chat(ALICE, "wake up")
        await alice.expect_message(frm=f"{BOB}/desk", body="wake up")
        await alice.sync()
        shows = [p["show"] for p in alice.presences.items if str(p["from"]) == f"{BOB}/desk"]
        assert shows == ["dnd"], shows
        states = [m["chat_state"] for m in alice.messages.items if not m["body"]]
        assert states == ["paused"], states
        assert metric_sum(users, "waddle_c2s_csi_stanzas_total", outcome="replaced") >= 1
        alice.presences.items.clear()
        # Active again: what was held comes at once.
        bob.send_presence(pshow="xa")
        await bob.sync()
        await await_metric(users, "waddle_c2s_csi_stanzas_total", 5, outcome="held")
        alice["xep_0352"].send_active()
        await alice.expect_presence(frm=f"{BOB}/desk", where=lambda p: p["show"] == "xa")
    run(body)


def test_inactive_client_gets_what_was_held_when_the_byte_bound_is_reached(make_server):
    server = make_server({"c2s": {"csi_queue_bytes": 1024}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)

    async def body():
        bob = Client(server, f"{BOB}/desk", PASSWORD)
        bob.register_plugin("xep_0085")
        await (await bob.start()).online()
        alice = await phone_online(server, f"{ALICE}/phone")
        await befriend(alice, bob)
        laptop = await login(server, f"{BOB}/laptop", PASSWORD)
        await alice.expect_presence(frm=f"{BOB}/laptop")
        alice["xep_0352"].send_inactive()
        await alice.sync()
        status = "s" * 600  # some 700 bytes a presence as written
        bob.send_presence(pstatus=status)
        msg = bob.make_message(mto=ALICE, mtype="chat")
        msg["chat_state"] = "composing"
        msg.send()
        await bob.sync()
        await await_metric(server, "waddle_c2s_csi_stanzas_total", 2, outcome="held")
        # A third sender's presence would put more than 1 KiB in the queue: what was held is
        # sent (the client is still inactive), then it.
        laptop.send_presence(pstatus=status)
        await alice.expect_presence(frm=f"{BOB}/desk", where=lambda p: p["status"] == status)
        m = await alice.expect_message(frm=f"{BOB}/desk")
        assert m["chat_state"] == "composing" and not m["body"]
        await alice.expect_presence(frm=f"{BOB}/laptop", where=lambda p: p["status"] == status)
        assert metric_sum(server, "waddle_c2s_csi_stanzas_total", outcome="overflow_bytes") == 2
        assert metric_sum(server, "waddle_c2s_csi_stanzas_total", outcome="overflow") == 0
        assert metric_sum(server, "waddle_c2s_csi_stanzas_total", outcome="held") == 2
    run(body)
