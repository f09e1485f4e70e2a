"""Room archives (XEP-0313 on rooms) and the room's stanza ids (XEP-0359).

slixmpp's own XEP-0045 and XEP-0313 plugins are the clients: occupants join, talk, and page
through the room's archive; the ids they page by are the stanza ids every occupant saw live.
Filters and paging backwards are checked with raw queries; a non-member of a members-only room
is refused; the archive survives a restart of the server and goes with a destroyed room; an
occupant on a second Waddle server pages the archive over S2S.
"""

import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from federation import await_metric, metric_sum
from muc import configure, groupchat, join
from waddle_client import DOMAIN, PASSWORD, Client, run

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
ROOM = f"lobby@conference.{DOMAIN}"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CLIENT = "jabber:client"
NS_OWNER = "http://jabber.org/protocol/muc#owner"


async def occupant(server, jid: str) -> Client:
    """An online client with slixmpp's MUC and MAM plugins."""
    c = Client(server, jid, PASSWORD)
    c.register_plugin("xep_0045")
    c.register_plugin("xep_0313")
    await c.start()
    await c.online()
    return c


def room_ids(msg, room: str = ROOM) -> list[str]:
    return [e.get("id") for e in msg.xml.findall(f"{{{NS_SID}}}stanza-id") if e.get("by") == room]


async def talk(sender, listener, bodies: list[str], room: str = ROOM) -> list[str]:
    """Each body said in the room by `sender`; returns the room's stanza id of each, as the
    listener received it (exactly one by the room on each message)."""
    ids = []
    for b in bodies:
        groupchat(sender, room, b)
        m = await listener.expect_message(body=b, mtype="groupchat")
        got = room_ids(m, room)
        assert len(got) == 1, str(m)
        ids.append(got[0])
    return ids


async def mam_query(client, to: str = ROOM, form: dict | None = None, rsm: dict | None = None):
    """A raw query; returns (result elements in the order received, the <fin/> element)."""
    iq = client.make_iq_set(ito=to)
    query = ET.Element(f"{{{NS_MAM}}}query", {"queryid": "rq"})
    if form is not None:
        x = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "submit"})
        for var, value in [("FORM_TYPE", NS_MAM)] + list(form.items()):
            field = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": var})
            ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    if rsm is not None:
        s = ET.SubElement(query, f"{{{NS_RSM}}}set")
        for k, v in rsm.items():
            ET.SubElement(s, f"{{{NS_RSM}}}{k}").text = v
    iq.append(query)
    answer = await iq.send(timeout=15)
    results = []
    while (m := client.messages.take(
            lambda m: m.xml.find(f"{{{NS_MAM}}}result[@queryid='rq']") is not None)) is not None:
        assert str(m["from"]) == to, str(m)
        results.append(m.xml.find(f"{{{NS_MAM}}}result"))
    return results, answer.xml.find(f"{{{NS_MAM}}}fin")


def forwarded(result) -> ET.Element:
    return result.find(f"{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")


def body_of(result) -> str:
    return forwarded(result).find(f"{{{NS_CLIENT}}}body").text


async def query_error(client, **kwargs) -> str:
    try:
        await mam_query(client, **kwargs)
    except IqError as e:
        return e.iq["error"]["condition"]
    raise AssertionError("the query was answered, not refused")


async def page_with_plugin(client, room: str = ROOM, page: int = 2) -> tuple[list, list]:
    """The whole archive through slixmpp's XEP-0313 plugin, `page` results at a time."""
    bodies, ids = [], []
    async for msg in client["xep_0313"].iterate(jid=room, rsm={"max": page}):
        bodies.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        ids.append(msg["mam_result"]["id"])
    return bodies, ids


def test_room_messages_are_archived_with_the_ids_occupants_saw(make_server):
    server = make_server()
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)

    async def body():
        alice = await occupant(server, f"{ALICE}/laptop")
        bob = await occupant(server, f"{BOB}/desk")
        await alice["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=10)
        await bob["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=10)
        info = await bob["xep_0030"].get_info(jid=ROOM)
        for feature in (NS_MAM, f"{NS_MAM}#extended", NS_SID):
            assert feature in info["disco_info"]["features"], feature
        said = [f"line {i}" for i in range(5)]
        ids = await talk(alice, bob, said[:4])
        ids += await talk(bob, alice, said[4:])
        # Alice's own copy carries the same id as Bob's.
        mine = [m for m in alice.messages.items if m["body"] == said[0]]
        assert mine and room_ids(mine[0]) == [ids[0]]
        # Paged with the plugin, 2 at a time: every message, with the ids seen live.
        got, got_ids = await page_with_plugin(bob)
        assert got == said and got_ids == ids
        # The forwarded message is the room's: from the occupant JID, with its delay.
        results, fin = await mam_query(bob)
        assert [r.get("id") for r in results] == ids and fin.get("complete") == "true"
        first = forwarded(results[0])
        assert first.get("from") == f"{ROOM}/Alice" and first.get("type") == "groupchat"
        assert results[0].find(f"{{{NS_FORWARD}}}forwarded/{{urn:xmpp:delay}}delay") is not None
        # Paging backwards from the end, and by id.
        page, fin = await mam_query(bob, rsm={"max": "2", "before": ""})
        assert [body_of(r) for r in page] == said[3:] and fin.get("complete") is None
        page, fin = await mam_query(bob, rsm={"max": "2", "before": ids[3]})
        assert [body_of(r) for r in page] == said[1:3]
        page, _ = await mam_query(bob, rsm={"max": "2", "after": ids[2]})
        assert [body_of(r) for r in page] == said[3:]
        # 'with' is an occupant JID of the room; another JID is not supported.
        page, _ = await mam_query(bob, form={"with": f"{ROOM}/Bob"})
        assert [body_of(r) for r in page] == said[4:]
        assert await query_error(bob, form={"with": ALICE}) == "feature-not-implemented"
        assert await query_error(bob, rsm={"after": "no-such-id"}) == "item-not-found"
        assert metric_sum(server, "waddle_muc_mam_queries_total", result="error") == 2
        await await_metric(server, "waddle_muc_mam_messages_total", 5, outcome="archived")
        # A stanza-id an occupant makes up in the room's name does not reach anyone.
        msg = bob.make_message(mto=ROOM, mbody="forged", mtype="groupchat")
        ET.SubElement(msg.xml, f"{{{NS_SID}}}stanza-id", {"by": ROOM, "id": "forged-id"})
        msg.send()
        m = await alice.expect_message(body="forged", mtype="groupchat")
        assert len(room_ids(m)) == 1 and room_ids(m) != ["forged-id"]
        results, _ = await mam_query(alice, rsm={"max": "1", "before": ""})
        assert [r.get("id") for r in results] == room_ids(m)
        # Nothing bounced along the way.
        for c in (alice, bob):
            await c.sync()
            assert [str(x) for x in c.messages.items if x["type"] == "error"] == []
    run(body)


def test_members_only_rooms_and_archiving_switched_off(make_server):
    server = make_server()
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)

    async def body():
        alice = await occupant(server, f"{ALICE}/laptop")
        carol = await occupant(server, f"{CAROL}/desk")
        await alice["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=10)
        await talk(alice, alice, ["members only"])
        # Bad input gets the XEP's errors, and the room goes on.
        assert await query_error(carol, form={"FORM_TYPE": "urn:other"}) == "bad-request"
        assert await query_error(carol, form={"colour": "blue"}) == "feature-not-implemented"
        assert await query_error(carol, to=f"nowhere@conference.{DOMAIN}") == "item-not-found"
        iq = carol.make_iq_get(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_MAM}}}query")
        vars_ = [f.get("var") for f in (await iq.send(timeout=10)).xml.iter(f"{{{NS_DATA}}}field")]
        assert {"FORM_TYPE", "with", "start", "end", "after-id", "before-id"} <= set(vars_)
        iq = carol.make_iq_get(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_MAM}}}metadata")
        try:
            await iq.send(timeout=10)
            raise AssertionError("metadata of a room archive was answered")
        except IqError as e:
            assert e.iq["error"]["condition"] == "feature-not-implemented"
        # An outcast may not read it; in a members-only room, neither may a non-member.
        await alice["xep_0045"].set_affiliation(ROOM, "outcast", jid=BOB)
        bob = await occupant(server, f"{BOB}/desk")
        assert await query_error(bob) == "forbidden"
        await configure(alice, ROOM, {"muc#roomconfig_membersonly": "1"})
        assert await query_error(carol) == "forbidden"
        # A member may read it without joining.
        await alice["xep_0045"].set_affiliation(ROOM, "member", jid=CAROL)
        page, _ = await mam_query(carol)
        assert [body_of(r) for r in page] == ["members only"]
        # Archiving switched off in the configuration form: no stanza id, no archive.
        iq = alice.make_iq_get(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_OWNER}}}query")
        form = (await iq.send(timeout=10)).xml.find(f"{{{NS_OWNER}}}query/{{{NS_DATA}}}x")
        fields = {f.get("var"): f.findtext(f"{{{NS_DATA}}}value") for f in form}
        assert fields.get("muc#roomconfig_enablearchiving") == "1", fields
        await configure(alice, ROOM, {"muc#roomconfig_enablearchiving": "0"})
        groupchat(alice, ROOM, "not kept")
        m = await alice.expect_message(body="not kept", mtype="groupchat")
        assert room_ids(m) == []
        info = await alice["xep_0030"].get_info(jid=ROOM)
        assert NS_MAM not in info["disco_info"]["features"]
        assert await query_error(alice) == "service-unavailable"
    run(body)


def test_the_archive_survives_a_restart_and_goes_with_the_room(make_server):
    server = make_server()
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    said = ["before the restart", "still there"]

    async def before():
        alice = await occupant(server, f"{ALICE}/laptop")
        await alice["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=10)
        await configure(alice, ROOM, {"muc#roomconfig_persistentroom": "1"})
        ids = await talk(alice, alice, said)
        await await_metric(server, "waddle_muc_mam_messages_total", 2, outcome="archived")
        return ids
    ids = run(before)
    server.restart()

    async def after():
        bob = await occupant(server, f"{BOB}/desk")
        got, got_ids = await page_with_plugin(bob)
        assert got == said and got_ids == ids
        # Destroyed: its archive goes with it; a new room of that name starts empty.
        alice = await occupant(server, f"{ALICE}/laptop")
        iq = alice.make_iq_set(ito=ROOM)
        ET.SubElement(ET.SubElement(iq.xml, f"{{{NS_OWNER}}}query"), f"{{{NS_OWNER}}}destroy")
        await iq.send(timeout=10)
        await await_metric(server, "waddle_muc_mam_messages_total", 2, outcome="deleted")
        await join(alice, ROOM, "Alice")
        page, fin = await mam_query(alice)
        assert page == [] and fin.get("complete") == "true"
    run(after)


def test_a_remote_occupant_pages_the_archive_over_s2s(fed):
    a = fed.server("a.test", users=("alice",))
    b = fed.server("b.test", users=("bob",))
    fed.start()
    room = "lobby@conference.a.test"

    async def body():
        alice = await occupant(a, "alice@a.test/home")
        bob = await occupant(b, "bob@b.test/work")
        await alice["xep_0045"].join_muc_wait(room, "Alice", timeout=10)
        await bob["xep_0045"].join_muc_wait(room, "Bob", timeout=20)
        said = [f"over s2s {i}" for i in range(5)]
        ids = await talk(alice, bob, said, room)
        got, got_ids = await page_with_plugin(bob, room)
        assert got == said and got_ids == ids
        page, fin = await mam_query(bob, to=room, rsm={"max": "2", "before": ""})
        assert [body_of(r) for r in page] == said[3:] and fin.get("complete") is None
        assert metric_sum(a, "waddle_muc_mam_queries_total", result="ok") >= 2
    run(body)
