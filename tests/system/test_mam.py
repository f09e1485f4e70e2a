"""Message archives of accounts (XEP-0313) and stanza ids (XEP-0359).

A second device of a user fetches both sides of a conversation with slixmpp's own XEP-0313
plugin, page by page; the ids it pages by are the stanza ids the recipient saw. Filters, paging
backwards, flip-page, preferences and metadata are checked with raw queries; bad queries get
the XEP's errors. The archive survives a restart; chat states no longer fill offline storage.
"""

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from federation import await_metric, metric_sum, wait_metric
from rawxmpp import RawXmpp
from waddle_client import DOMAIN, PASSWORD, Client, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CLIENT = "jabber:client"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


def stanza_ids(msg) -> list:
    return [(e.get("by"), e.get("id")) for e in msg.xml.findall(f"{{{NS_SID}}}stanza-id")]


async def converse(alice, bob, n: int) -> list[str]:
    """n messages, alternating directions; returns the bodies in the order sent."""
    bodies = []
    for i in range(n):
        sender, receiver = (alice, bob) if i % 2 == 0 else (bob, alice)
        body = f"line {i} from {sender.boundjid.user}"
        sender.chat(receiver.boundjid.bare, body)
        await receiver.expect_message(body=body)
        bodies.append(body)
    return bodies


async def mam_query(client, form: dict | None = None, rsm: dict | None = None,
                    flip: bool = False, to: str | None = None):
    """A raw query; returns (result messages in the order received, the <fin/> element)."""
    iq = client.make_iq_set(ito=to)
    query = ET.Element(f"{{{NS_MAM}}}query", {"queryid": "q1"})
    if form is not None:
        x = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "submit"})
        for var, value in [("FORM_TYPE", NS_MAM)] + list(form.items()):
            field = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": var})
            for v in (value if isinstance(value, list) else [value]):
                ET.SubElement(field, f"{{{NS_DATA}}}value").text = v
    if rsm is not None:
        s = ET.SubElement(query, f"{{{NS_RSM}}}set")
        for k, v in rsm.items():
            ET.SubElement(s, f"{{{NS_RSM}}}{k}").text = v
    if flip:
        ET.SubElement(query, f"{{{NS_MAM}}}flip-page")
    iq.append(query)
    answer = await iq.send()
    results = []
    while True:
        m = client.messages.take(
            lambda m: m.xml.find(f"{{{NS_MAM}}}result[@queryid='q1']") is not None)
        if m is None:
            break
        results.append(m.xml.find(f"{{{NS_MAM}}}result"))
    return results, answer.xml.find(f"{{{NS_MAM}}}fin")


def body_of(result) -> str:
    return result.find(f"{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message/"
                       f"{{{NS_CLIENT}}}body").text


async def query_error(client, **kwargs) -> str:
    try:
        await mam_query(client, **kwargs)
    except IqError as e:
        return e.iq["error"]["condition"]
    raise AssertionError("the query was answered, not refused")


def test_second_device_pages_through_both_sides_of_a_conversation(users):
    async def body():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        bodies = await converse(alice, bob, 7)
        phone = Client(users, f"{ALICE}/phone", PASSWORD)
        phone.register_plugin("xep_0313")
        await phone.start()
        info = await phone["xep_0030"].get_info(jid=ALICE)
        for feature in (NS_MAM, "urn:xmpp:mam:2#extended", NS_SID):
            assert feature in info["disco_info"]["features"], feature
        got, ids = [], []
        async for msg in phone["xep_0313"].iterate(with_jid=BOB, rsm={"max": 3}):
            got.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
            ids.append(msg["mam_result"]["id"])
        assert got == bodies, got
        assert len(set(ids)) == len(ids)
        # The id a received message carried is its id in the archive.
        bob.chat(ALICE, "one more")
        m = await alice.expect_message(body="one more")
        assert stanza_ids(m)[0][0] == ALICE
        results, fin = await mam_query(phone, rsm={"max": "1", "before": ""})
        assert results[0].get("id") == stanza_ids(m)[0][1]
        assert fin.get("complete") is None  # more before it
    run(body)


def test_filters_paging_backwards_and_flip_page(users):
    async def body():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        bodies = await converse(alice, bob, 6)
        results, fin = await mam_query(alice, form={"with": BOB})
        assert [body_of(r) for r in results] == bodies
        assert fin.get("complete") == "true"
        ids = [r.get("id") for r in results]
        first, last = fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}first").text, \
            fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}last").text
        assert (first, last) == (ids[0], ids[-1])
        # The last page, then the page before it.
        page, fin = await mam_query(alice, rsm={"max": "2", "before": ""})
        assert [body_of(r) for r in page] == bodies[4:]
        page, fin = await mam_query(alice, rsm={"max": "2", "before": ids[4]})
        assert [body_of(r) for r in page] == bodies[2:4]
        assert fin.get("complete") is None
        page, fin = await mam_query(alice, rsm={"max": "10", "before": ids[2]})
        assert [body_of(r) for r in page] == bodies[:2] and fin.get("complete") == "true"
        # after-id / before-id and ids (urn:xmpp:mam:2#extended), flip-page.
        page, _ = await mam_query(alice, form={"after-id": ids[0], "before-id": ids[3]})
        assert [body_of(r) for r in page] == bodies[1:3]
        page, _ = await mam_query(alice, form={"ids": [ids[5], ids[1]]})
        assert [body_of(r) for r in page] == [bodies[1], bodies[5]]
        page, _ = await mam_query(alice, rsm={"max": "3"}, flip=True)
        assert [body_of(r) for r in page] == bodies[2::-1]
        # A time window that ends before anything was archived.
        page, fin = await mam_query(alice, form={"end": "2000-01-01T00:00:00Z"})
        assert page == [] and fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count").text == "0"
    run(body)


def test_bad_queries_get_the_xeps_errors_and_the_session_goes_on(make_server):
    server = make_server({"mam": {"max_page_size": 3}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)

    async def body():
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        await converse(alice, bob, 5)
        assert await query_error(alice, form={"FORM_TYPE": "urn:other"}) == "bad-request"
        assert await query_error(alice, form={"colour": "blue"}) == "feature-not-implemented"
        assert await query_error(alice, form={"start": "yesterday"}) == "bad-request"
        assert await query_error(alice, form={"with": "a@b@c"}) == "jid-malformed"
        assert await query_error(alice, rsm={"max": "-1"}) == "bad-request"
        assert await query_error(alice, rsm={"after": "no-such-id"}) == "item-not-found"
        # Another user's archive, local or over a 'to' of the bare JID.
        assert await query_error(alice, to=BOB) == "forbidden"
        # An absurd page size gets the configured page, and paging goes on.
        page, fin = await mam_query(alice, rsm={"max": "1000000"})
        assert len(page) == 3 and fin.get("complete") is None
        assert metric_sum(server, "waddle_mam_queries_total", result="error") == 6
        # Nothing else broke: the session still chats.
        bob.chat(ALICE, "still here")
        await alice.expect_message(body="still here")
    run(body)


def test_a_stanza_id_claiming_the_recipient_is_removed(users):
    async def body():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        msg = bob.make_message(mto=ALICE, mbody="forged", mtype="chat")
        for by in (ALICE, "someone@else.example"):
            ET.SubElement(msg.xml, f"{{{NS_SID}}}stanza-id", {"by": by, "id": "forged-id"})
        msg.send()
        m = await alice.expect_message(body="forged")
        ids = stanza_ids(m)
        assert ("someone@else.example", "forged-id") in ids  # not ours to judge
        assert [i for by, i in ids if by == ALICE] != ["forged-id"]
        assert len([1 for by, _ in ids if by == ALICE]) == 1
    run(body)


def test_preferences_and_metadata(users):
    async def body():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        await converse(alice, bob, 2)
        iq = alice.make_iq_get()
        iq.append(ET.Element(f"{{{NS_MAM}}}metadata"))
        md = (await iq.send()).xml.find(f"{{{NS_MAM}}}metadata")
        start, end = md.find(f"{{{NS_MAM}}}start"), md.find(f"{{{NS_MAM}}}end")
        assert start.get("id") and end.get("id") and start.get("id") != end.get("id")
        # Never archive, except with one JID: nothing with bob is kept any more.
        iq = alice.make_iq_set()
        prefs = ET.SubElement(iq.xml, f"{{{NS_MAM}}}prefs", {"default": "never"})
        ET.SubElement(ET.SubElement(prefs, f"{{{NS_MAM}}}always"), f"{{{NS_MAM}}}jid").text = \
            "carol@example.test"
        answer = (await iq.send()).xml.find(f"{{{NS_MAM}}}prefs")
        assert answer.get("default") == "never"
        assert [j.text for j in answer.iter(f"{{{NS_MAM}}}jid")] == ["carol@example.test"]
        skipped = metric_sum(users, "waddle_mam_messages_total", outcome="skipped")
        alice.chat(BOB, "off the record")
        await bob.expect_message(body="off the record")
        await await_metric(users, "waddle_mam_messages_total", skipped + 1, outcome="skipped")
        page, _ = await mam_query(alice)
        assert "off the record" not in [body_of(r) for r in page]
        assert len(page) == 2
        # Bad preferences.
        iq = alice.make_iq_set()
        ET.SubElement(iq.xml, f"{{{NS_MAM}}}prefs", {"default": "sometimes"})
        with pytest.raises(IqError) as err:
            await iq.send()
        assert err.value.iq["error"]["condition"] == "bad-request"
    run(body)


def test_archive_survives_a_restart_and_chat_states_stay_out_of_offline_storage(users):
    async def before():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        bob = Client(users, f"{BOB}/desk", PASSWORD)
        bob.register_plugin("xep_0085")
        await (await bob.start()).online()
        await converse(alice, bob, 3)
        await alice.close()
        # alice is offline: a chat state alone is not stored, a message is (and archived).
        state = bob.make_message(mto=ALICE, mtype="chat")
        state["chat_state"] = "composing"
        state.send()
        bob.chat(ALICE, "while you were away")
        await bob.sync()
        await await_metric(users, "waddle_offline_messages_stored_total", 1)
        assert metric_sum(users, "waddle_offline_messages_stored_total") == 1
    run(before)
    users.restart()

    async def after():
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        m = await alice.expect_message(body="while you were away")
        assert stanza_ids(m), "the offline message lost its stanza id"
        await alice.sync()
        assert [x for x in alice.messages.items if not x["body"]] == [], \
            "a chat state was stored offline"
        page, _ = await mam_query(alice)
        assert [body_of(r) for r in page][-1] == "while you were away"
        assert len(page) == 4
    run(after)


def test_the_oldest_messages_beyond_the_limit_are_removed(make_server):
    server = make_server({"mam": {"max_messages_per_account": 3, "cleanup_interval": "1s"}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)

    async def body():
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        bodies = await converse(alice, bob, 5)
        # 5 in each archive, 3 kept: 4 removed in all.
        await await_metric(server, "waddle_mam_messages_total", 4, outcome="expired")
        page, _ = await mam_query(alice)
        assert [body_of(r) for r in page] == bodies[2:]
    run(body)


def pipeline(server, n: int, word: str) -> None:
    """alice pipelines n chat messages ("<word> i") to bob's one raw session in a single write;
    returns once bob has received all n (bounded wait)."""
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    bob = RawXmpp(server.ip, server.port, timeout=20.0)
    alice = RawXmpp(server.ip, server.port, timeout=20.0)
    mark = f"{word} ".encode()
    try:
        bob.login("bob", PASSWORD, resource="desk")
        bob.send("<presence/>")
        alice.login("alice", PASSWORD, resource="laptop")
        alice.send("".join(f"<message to='{BOB}' type='chat' id='{word}{i}'><body>{word} {i}"
                           "</body></message>" for i in range(n)))
        assert bob.collect_until(lambda r: r.received.count(mark) >= n, timeout=60), (
            f"{bob.received.count(mark)} of {n} delivered")
    finally:
        alice.close()
        bob.close()


def test_a_flood_is_paced_and_every_copy_is_archived(make_server):
    """A client pipelines far more messages than may wait for the storage thread
    ([mam] max_pending 40): instead of dropping archive copies, its stream is read more slowly
    until the storage thread has caught up. Every message is delivered and archived twice
    (the sender's and the recipient's archive): sent = delivered = archived / 2."""
    n = 3000
    server = make_server({"mam": {"max_pending": 40}})
    pipeline(server, n, "flood")
    wait_metric(server, "waddle_mam_messages_total", 2 * n, outcome=("archived", "dropped"))
    text = server.metrics_text()
    assert metric_sum(text, "waddle_mam_messages_total", outcome="dropped") == 0
    assert metric_sum(text, "waddle_mam_messages_total", outcome="archived") == 2 * n
    assert metric_sum(text, "waddle_mam_paced_total") > 0


def test_every_copy_delivered_before_a_stop_is_in_the_archive_after_it(make_server):
    """The storage thread writes archive batches as messages keep arriving; a server stopped
    (SIGTERM) right after the last delivery still writes every copy before it exits. After the
    restart, each side pages through its archive (XEP-0059, 250 per page): n messages each, in
    the order sent."""
    n = 1200
    server = make_server()
    pipeline(server, n, "stop")
    assert server.stop() == 0
    server.start()

    async def pages(jid: str) -> list[str]:
        client = await login(server, f"{jid}/check", PASSWORD)
        bodies: list[str] = []
        after = None
        for _ in range(n // 250 + 2):
            rsm = {"max": "250"} if after is None else {"max": "250", "after": after}
            page, fin = await mam_query(client, rsm=rsm)
            bodies += [body_of(r) for r in page]
            if fin.get("complete") == "true" or not page:
                break
            after = page[-1].get("id")
        await client.close()
        return bodies

    async def body():
        expected = [f"stop {i}" for i in range(n)]
        for jid in (ALICE, BOB):
            got = await pages(jid)
            assert got == expected, f"{jid}: {len(got)} of {n} archived"
    run(body, timeout=120)
