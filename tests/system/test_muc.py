"""Multi-user chat (XEP-0045) on one server: room service discovery, creation, joining,
presence and groupchat broadcast, history, subject, nickname conflicts and changes, private
messages, configuration and persistence, kick and ban, self-ping, and occupants leaving when
their session ends. Real slixmpp clients, waits on stanzas with deadlines."""

import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from muc import (NS_DATA, NS_OWNER, admin_set, codes, condition, configure, error_text, features,
                 groupchat, item, join, join_error, leave, send_join)
from waddle_client import DOMAIN, PASSWORD, login, run

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
SERVICE = f"conference.{DOMAIN}"
ROOM = f"lobby@{SERVICE}"
NS_OCC = "urn:xmpp:occupant-id:0"


def occupant_id(stanza) -> str:
    el = stanza.xml.find(f"{{{NS_OCC}}}occupant-id")
    return "" if el is None else el.get("id")


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)
    return server


async def alice_in_room_and_bob(server):
    """Alice (resource home) and Bob (work) logged in; Alice has joined ROOM as "Alice"."""
    alice = await login(server, f"{ALICE}/home", PASSWORD)
    bob = await login(server, f"{BOB}/work", PASSWORD)
    await join(alice, ROOM, "Alice")
    return alice, bob


def test_room_service_is_discoverable(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        items = await alice["xep_0030"].get_items(jid=DOMAIN, timeout=10)
        assert SERVICE in [i[0] for i in items["disco_items"]["items"]], str(items)
        info = await alice["xep_0030"].get_info(jid=SERVICE, timeout=10)
        assert "http://jabber.org/protocol/muc" in features(info), str(info)
        ids = info["disco_info"]["identities"]
        assert any(i[0] == "conference" and i[1] == "text" for i in ids), str(info)
    run(body)


def test_create_join_chat_history_and_subject(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        own = await join(alice, ROOM, "Alice")
        assert {"110", "201"} <= codes(own), str(own)  # created, and it is her
        alice_id = occupant_id(own)
        assert alice_id, str(own)
        it = item(own)
        assert it.get("affiliation") == "owner" and it.get("role") == "moderator", str(own)

        # Alice sets a subject and speaks before Bob arrives.
        m = alice.make_message(mto=ROOM, mtype="groupchat")
        ET.SubElement(m.xml, "{jabber:client}subject").text = "Welcome"
        m.send()
        await alice.messages.get(lambda m: m["subject"] == "Welcome", what="subject echo")
        groupchat(alice, ROOM, "first")
        await alice.expect_message(frm=f"{ROOM}/Alice", body="first", mtype="groupchat")

        # Bob joins: Alice's presence first, then his own (110), then history, then subject.
        send_join(bob, ROOM, "Bob")
        p = await bob.expect_presence(frm=f"{ROOM}/Alice", ptype="available")
        assert item(p).get("affiliation") == "owner", str(p)
        assert item(p).get("jid") is None, "semi-anonymous room revealed a real JID: " + str(p)
        own = await bob.expect_presence(frm=f"{ROOM}/Bob", where=lambda p: "110" in codes(p))
        assert item(own).get("role") == "participant" and "201" not in codes(own), str(own)
        hist = await bob.expect_message(frm=f"{ROOM}/Alice", body="first", mtype="groupchat")
        assert hist.xml.find("{urn:xmpp:delay}delay") is not None, str(hist)
        subj = await bob.messages.get(lambda m: m["subject"] == "Welcome", what="subject")
        assert str(subj["from"]) == f"{ROOM}/Alice", str(subj)
        # Alice (a moderator) sees Bob join, with his real JID.
        p = await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        assert item(p).get("jid") == f"{BOB}/work", str(p)

        # XEP-0421: the room stamps an occupant id of its own (a client's is dropped).
        m = bob.make_message(mto=ROOM, mbody="hello all", mtype="groupchat")
        ET.SubElement(m.xml, f"{{{NS_OCC}}}occupant-id").set("id", "forged")
        m.send()
        ids = set()
        for c in (alice, bob):
            got = await c.expect_message(frm=f"{ROOM}/Bob", body="hello all", mtype="groupchat")
            occ = got.xml.findall(f"{{{NS_OCC}}}occupant-id")
            assert len(occ) == 1 and occ[0].get("id") != "forged", str(got)
            ids.add(occ[0].get("id"))
        assert ids == {occupant_id(p)}, (ids, str(p))
        assert occupant_id(p) != alice_id, "two users share an occupant id"
    run(body)


def test_history_limit_and_live_messages_not_duplicated(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        for i in range(5):
            groupchat(alice, ROOM, f"m{i}")
        await alice.expect_message(frm=f"{ROOM}/Alice", body="m4")
        await join(bob, ROOM, "Bob", maxstanzas=2)
        await bob.messages.get(lambda m: m["subject"] == "" and m["type"] == "groupchat"
                               and m.xml.find("{jabber:client}subject") is not None,
                               what="empty subject")
        bodies = [m["body"] for m in bob.messages.items if m["body"]]
        assert bodies == ["m3", "m4"], bodies
    run(body)


def test_join_errors(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        err = await join_error(bob, ROOM, "Alice")
        assert condition(err) == "conflict", str(err)
        # No nickname.
        bob.send_presence(pto=ROOM)
        err = await bob.expect_presence(frm=ROOM, ptype="error")
        assert condition(err) == "jid-malformed", str(err)
        # Groupchat from a non-occupant, and to a room that does not exist.
        groupchat(bob, ROOM, "let me in")
        err = await bob.messages.get(lambda m: m["type"] == "error", what="not-acceptable")
        assert condition(err) == "not-acceptable", str(err)
        groupchat(bob, f"nowhere@{SERVICE}", "anyone?")
        err = await bob.messages.get(lambda m: m["type"] == "error", what="item-not-found")
        assert condition(err) == "item-not-found", str(err)
        # Alice did not see any of it as room traffic.
        assert not [m for m in alice.messages.items if m["body"] in ("let me in", "anyone?")]
    run(body)


def test_nick_change_private_message_and_leave(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        await join(bob, ROOM, "Bob")
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")

        send_join(bob, ROOM, "Robert")
        gone = await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
        assert "303" in codes(gone) and item(gone).get("nick") == "Robert", str(gone)
        await alice.expect_presence(frm=f"{ROOM}/Robert", ptype="available")
        await bob.expect_presence(frm=f"{ROOM}/Robert", where=lambda p: "110" in codes(p))

        # A private message goes to the occupant only, from the sender's room JID.
        alice.send_message(mto=f"{ROOM}/Robert", mbody="psst", mtype="chat")
        pm = await bob.expect_message(frm=f"{ROOM}/Alice", body="psst", mtype="chat")
        assert pm.xml.find("{http://jabber.org/protocol/muc#user}x") is not None, str(pm)

        leave(bob, ROOM, "Robert")
        own = await bob.expect_presence(frm=f"{ROOM}/Robert", ptype="unavailable")
        assert "110" in codes(own), str(own)
        await alice.expect_presence(frm=f"{ROOM}/Robert", ptype="unavailable")
        # After everyone leaves, a temporary room is gone.
        leave(alice, ROOM, "Alice")
        await alice.expect_presence(frm=f"{ROOM}/Alice", ptype="unavailable")
        with pytest.raises(IqError) as e:
            await alice["xep_0030"].get_info(jid=ROOM, timeout=10)
        assert e.value.condition == "item-not-found"
    run(body)


def test_occupant_leaves_when_session_ends(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        await join(bob, ROOM, "Bob")
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        await bob.close()
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
    run(body)


def test_self_ping(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        await alice["xep_0199"].send_ping(f"{ROOM}/Alice", timeout=10)
        with pytest.raises(IqError) as e:
            await bob["xep_0199"].send_ping(f"{ROOM}/Alice", timeout=10)
        assert e.value.condition == "not-acceptable"
    run(body)


def test_configuration_persistence_members_only_kick_and_ban(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        await join(alice, ROOM, "Alice")
        iq = alice.make_iq_get(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_OWNER}}}query")
        form = await iq.send(timeout=10)
        fields = {f.get("var") for f in form.xml.iter(f"{{{NS_DATA}}}field")}
        assert {"muc#roomconfig_persistentroom", "muc#roomconfig_membersonly"} <= fields
        await configure(alice, ROOM, {"muc#roomconfig_persistentroom": "1",
                                      "muc#roomconfig_roomname": "The Lobby",
                                      "muc#roomconfig_membersonly": "1"})
        # Bob (not an owner) may not configure.
        bob = await login(users, f"{BOB}/work", PASSWORD)
        with pytest.raises(IqError) as e:
            await configure(bob, ROOM, {"muc#roomconfig_membersonly": "0"})
        assert e.value.condition == "forbidden"
    run(body)

    users.restart()  # the room survives a restart

    async def after_restart():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        info = await bob["xep_0030"].get_info(jid=ROOM, timeout=10)
        assert {"muc_persistent", "muc_membersonly"} <= features(info), str(info)
        assert "The Lobby" in [i[3] for i in info["disco_info"]["identities"]], str(info)
        err = await join_error(bob, ROOM, "Bob")
        assert condition(err) == "registration-required", str(err)
        await join(alice, ROOM, "Alice")
        await admin_set(alice, ROOM, jid=BOB, affiliation="member")
        await admin_set(alice, ROOM, jid=CAROL, affiliation="member")
        await join(bob, ROOM, "Bob")
        await join(carol, ROOM, "Carol")
        # Kick Bob: he and the others learn it (307).
        await admin_set(alice, ROOM, nick="Bob", role="none")
        kicked = await bob.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
        assert {"307", "110"} <= codes(kicked), str(kicked)
        seen = await carol.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
        assert "307" in codes(seen), str(seen)
        # Ban Carol: removed (301) and cannot come back.
        await admin_set(alice, ROOM, jid=CAROL, affiliation="outcast")
        banned = await carol.expect_presence(frm=f"{ROOM}/Carol", ptype="unavailable")
        assert "301" in codes(banned), str(banned)
        err = await join_error(carol, ROOM, "Carol")
        assert condition(err) == "forbidden", str(err)
        # Bob, a participant, may not kick the owner.
        await join(bob, ROOM, "Bob")
        with pytest.raises(IqError) as e:
            await admin_set(bob, ROOM, nick="Alice", role="none")
        assert e.value.condition in ("forbidden", "not-allowed")
        # The room is listed in the directory.
        items = await bob["xep_0030"].get_items(jid=SERVICE, timeout=10)
        assert ROOM in [i[0] for i in items["disco_items"]["items"]]
    run(after_restart)


def test_password_protected_room(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        await configure(alice, ROOM, {"muc#roomconfig_passwordprotectedroom": "1",
                                      "muc#roomconfig_roomsecret": "s3cret"})
        err = await join_error(bob, ROOM, "Bob")
        assert condition(err) == "not-authorized", str(err)
        err = await join_error(bob, ROOM, "Bob", password="wrong")
        assert condition(err) == "not-authorized" and error_text(err), str(err)
        await join(bob, ROOM, "Bob", password="s3cret")
    run(body)


def test_mediated_invitation(users):
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        # Mediated invitation (XEP-0045 7.8.2).
        m = alice.make_message(mto=ROOM)
        x = ET.SubElement(m.xml, "{http://jabber.org/protocol/muc#user}x")
        ET.SubElement(x, "{http://jabber.org/protocol/muc#user}invite").set("to", BOB)
        m.send()
        inv = await bob.messages.get(
            lambda m: m.xml.find(".//{http://jabber.org/protocol/muc#user}invite") is not None,
            what="invitation")
        assert str(inv["from"]) == ROOM, str(inv)
        assert inv.xml.find(".//{http://jabber.org/protocol/muc#user}invite").get("from") == ALICE
    run(body)


def test_join_again_from_a_joined_resource_resends_the_room_state_but_not_the_history(users):
    """A client that reconnects (or lost track) and joins again from the same full JID gets
    the occupant list, its own presence and the subject again (XEP-0045 §17.3), but not the
    history it was sent less than a minute ago: a join presence of 150 bytes must not make
    the room send its whole history again and again. Nobody sees a second occupant."""
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        groupchat(alice, ROOM, "remember me")
        await alice.expect_message(frm=f"{ROOM}/Alice", body="remember me")
        await join(bob, ROOM, "Bob")
        await bob.expect_message(frm=f"{ROOM}/Alice", body="remember me")
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        for _ in range(3):
            bob.messages.items.clear()
            bob.presences.items.clear()
            await join(bob, ROOM, "Bob")
            await bob.expect_presence(frm=f"{ROOM}/Alice", ptype="available")
            # The subject comes after the history: whatever history there is has arrived.
            await bob.messages.get(lambda m: m.xml.find("{jabber:client}subject") is not None,
                                   what="subject")
            replayed = [m["body"] for m in bob.messages.items if m["body"]]
            assert replayed == [], replayed
        # Alice sees Bob's presence again (an update), still one Bob.
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        iq = alice.make_iq_get(ito=ROOM)
        q = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#admin}query")
        ET.SubElement(q, "{http://jabber.org/protocol/muc#admin}item").set("role", "participant")
        result = await iq.send(timeout=10)
        items = result.xml.findall(".//{http://jabber.org/protocol/muc#admin}item")
        assert [i.get("nick") for i in items] == ["Bob"], str(result)
        # Live messages still reach him once.
        groupchat(alice, ROOM, "live")
        await bob.expect_message(frm=f"{ROOM}/Alice", body="live")
    run(body)


def test_history_kept_is_bounded_in_bytes(users):
    """20 messages of 40 kB each: a joiner gets only the newest that fit in the room's
    history budget (`[muc] history_bytes`, 256 KiB by default), not 800 kB."""
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        big = "x" * 40_000
        for i in range(20):
            groupchat(alice, ROOM, f"m{i:02d} {big}")
        await alice.messages.get(lambda m: m["body"].startswith("m19"), what="m19 echo")
        await join(bob, ROOM, "Bob")
        await bob.messages.get(lambda m: m.xml.find("{jabber:client}subject") is not None,
                               what="subject")
        got = [m["body"] for m in bob.messages.items if m["body"]]
        assert [b[:3] for b in got] == [f"m{i:02d}" for i in range(14, 20)], [b[:3] for b in got]
        assert sum(len(b) for b in got) <= 256 * 1024
    run(body)


def mediated(client, room: str, children: list[tuple[str, dict]]) -> None:
    """Sends a message to the room with a muc#user x holding (name, attributes) children."""
    m = client.make_message(mto=room)
    x = ET.SubElement(m.xml, "{http://jabber.org/protocol/muc#user}x")
    for name, attrs in children:
        el = ET.SubElement(x, f"{{http://jabber.org/protocol/muc#user}}{name}")
        for k, v in attrs.items():
            if k == "reason":
                ET.SubElement(el, "{http://jabber.org/protocol/muc#user}reason").text = v
            else:
                el.set(k, v)
    m.send()


def has_muc_user(m, name: str) -> bool:
    return m.xml.find(f".//{{http://jabber.org/protocol/muc#user}}{name}") is not None


def test_invitation_with_too_many_invites_is_refused_and_none_sent(users):
    """Eleven invitations in one message: the inviter gets policy-violation and no invitee
    gets anything; the next, valid invitation is the first Bob sees."""
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        invitees = [BOB, CAROL] + [f"u{i}@{DOMAIN}" for i in range(9)]
        mediated(alice, ROOM, [("invite", {"to": j}) for j in invitees])
        err = await alice.messages.get(lambda m: m["type"] == "error", what="invitation error")
        assert condition(err) == "policy-violation", str(err)
        mediated(alice, ROOM, [("invite", {"to": BOB, "reason": "control"})])
        inv = await bob.messages.get(lambda m: has_muc_user(m, "invite"), what="invitation")
        assert inv.xml.find(".//{http://jabber.org/protocol/muc#user}reason").text == "control", \
            str(inv)
        assert [m for m in carol.messages.items if has_muc_user(m, "invite")] == []
    run(body)


def test_invitation_limits_come_from_the_configuration(make_server):
    """[muc] invitations_per_message = 2: three addresses in one invitation are refused with
    policy-violation and nobody gets anything; two go through."""
    server = make_server({"muc": {"invitations_per_message": 2}})
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)

    async def body():
        alice, bob = await alice_in_room_and_bob(server)
        carol = await login(server, f"{CAROL}/desk", PASSWORD)
        mediated(alice, ROOM, [("invite", {"to": j}) for j in (BOB, CAROL, f"u0@{DOMAIN}")])
        err = await alice.messages.get(lambda m: m["type"] == "error", what="invitation error")
        assert condition(err) == "policy-violation", str(err)
        mediated(alice, ROOM, [("invite", {"to": j}) for j in (BOB, CAROL)])
        await bob.messages.get(lambda m: has_muc_user(m, "invite"), what="Bob's invitation")
        await carol.messages.get(lambda m: has_muc_user(m, "invite"), what="Carol's invitation")
        # Had the refused one gone out, it would have come first and one would be left over.
        await bob.sync()
        assert [m for m in bob.messages.items if has_muc_user(m, "invite")] == []
    run(body)


def test_decline_is_forwarded_only_to_a_pending_inviter(users):
    """A decline from someone the room never invited, naming any address, is refused
    (not-acceptable) and reaches nobody; the invitee's decline reaches the inviter."""
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        mediated(carol, ROOM, [("decline", {"to": ALICE, "reason": "forged"})])
        err = await carol.messages.get(lambda m: m["type"] == "error", what="decline error")
        assert condition(err) == "not-acceptable", str(err)
        mediated(alice, ROOM, [("invite", {"to": BOB})])
        await bob.messages.get(lambda m: has_muc_user(m, "invite"), what="invitation")
        mediated(bob, ROOM, [("decline", {"to": ALICE, "reason": "busy"})])
        dec = await alice.messages.get(lambda m: has_muc_user(m, "decline"), what="decline")
        d = dec.xml.find(".//{http://jabber.org/protocol/muc#user}decline")
        assert d.get("from") == BOB, str(dec)
        assert d.find("{http://jabber.org/protocol/muc#user}reason").text == "busy", str(dec)
        # The forged one never arrived before it.
        assert [m for m in alice.messages.items if has_muc_user(m, "decline")] == []
    run(body)


def test_iq_to_an_occupant_reaches_it_and_the_answer_returns(users):
    """A software-version query to room/Bob reaches Bob's client (from Alice's occupant JID)
    and its answer comes back from room/Bob; a vCard query goes to Bob's account (his server
    answers); someone not in the room gets not-acceptable."""
    async def body():
        alice, bob = await alice_in_room_and_bob(users)
        carol = await login(users, f"{CAROL}/desk", PASSWORD)
        await join(bob, ROOM, "Bob")
        version = await alice["xep_0092"].get_version(f"{ROOM}/Bob", timeout=10)
        assert str(version["from"]) == f"{ROOM}/Bob", str(version)
        assert version["software_version"]["name"], str(version)
        # Bob's vCard, kept by his server (XEP-0054), is what a lookup through the room finds.
        own = bob.make_iq_set()
        ET.SubElement(ET.SubElement(own.xml, "{vcard-temp}vCard"), "{vcard-temp}FN").text = "B."
        await own.send(timeout=10)
        iq = alice.make_iq_get(ito=f"{ROOM}/Bob")
        ET.SubElement(iq.xml, "{vcard-temp}vCard")
        answer = await iq.send(timeout=10)
        assert str(answer["from"]) == f"{ROOM}/Bob", str(answer)
        assert answer.xml.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "B.", str(answer)
        iq = carol.make_iq_get(ito=f"{ROOM}/Bob")
        ET.SubElement(iq.xml, "{jabber:iq:version}query")
        with pytest.raises(IqError) as refused:
            await iq.send(timeout=10)
        assert condition(refused.value.iq) == "not-acceptable", str(refused.value.iq)
    run(body)
