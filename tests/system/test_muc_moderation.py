"""Moderated rooms (XEP-0045 §7.13, §8.6): a visitor asks for voice, the moderators get the
request as a form, one approves it and the visitor may speak.

Run: /usr/bin/python3 -m pytest tests/system/test_muc_moderation.py -q
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from muc import NS_DATA, admin_set, codes, configure, condition, groupchat, item, join
from waddle_client import DOMAIN, PASSWORD, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
ROOM = f"stage@conference.{DOMAIN}"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


def voice_form(ftype: str, **fields: str) -> ET.Element:
    x = ET.Element(f"{{{NS_DATA}}}x", {"type": ftype})
    for var, value in {"FORM_TYPE": NS_REQUEST, **fields}.items():
        f = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": var})
        ET.SubElement(f, f"{{{NS_DATA}}}value").text = value
    return x


def form_fields(message) -> dict[str, str]:
    x = message.xml.find(f"{{{NS_DATA}}}x")
    return {f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
            for f in x.findall(f"{{{NS_DATA}}}field")}


def test_a_visitor_asks_for_voice_and_a_moderator_grants_it(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await configure(alice, ROOM, {"muc#roomconfig_moderatedroom": "1"})
        own = await join(bob, ROOM, "Bob")
        assert item(own).get("role") == "visitor", str(own)
        # A visitor may not speak.
        groupchat(bob, ROOM, "may I?")
        refused = await bob.messages.get(lambda m: m["type"] == "error")
        assert condition(refused) == "forbidden"

        request = bob.make_message(mto=ROOM)
        request.xml.append(voice_form("submit", **{"muc#role": "participant"}))
        request.send()
        asked = await alice.messages.get(
            lambda m: str(m["from"]) == ROOM and m.xml.find(f"{{{NS_DATA}}}x") is not None)
        fields = form_fields(asked)
        assert asked.xml.find(f"{{{NS_DATA}}}x").get("type") == "form"
        assert fields["FORM_TYPE"] == NS_REQUEST and fields["muc#roomnick"] == "Bob"
        assert fields["muc#jid"].split("/")[0] == BOB and fields["muc#request_allow"] == "false"
        # Asking again at once is refused rather than sent on.
        again = bob.make_message(mto=ROOM)
        again.xml.append(voice_form("submit", **{"muc#role": "participant"}))
        again.send()
        refused = await bob.messages.get(lambda m: m["type"] == "error")
        assert condition(refused) == "resource-constraint"
        # Only moderators approve.
        forged = bob.make_message(mto=ROOM)
        forged.xml.append(voice_form("submit", **{"muc#roomnick": "Bob",
                                                 "muc#request_allow": "true"}))
        forged.send()
        refused = await bob.messages.get(lambda m: m["type"] == "error")
        assert condition(refused) == "forbidden"

        approval = alice.make_message(mto=ROOM)
        approval.xml.append(voice_form("submit", **{"muc#role": "participant",
                                                   "muc#roomnick": "Bob",
                                                   "muc#request_allow": "true"}))
        approval.send()
        voiced = await bob.expect_presence(
            frm=f"{ROOM}/Bob", where=lambda p: item(p) is not None and
            item(p).get("role") == "participant")
        assert "110" in codes(voiced)
        await alice.expect_presence(
            frm=f"{ROOM}/Bob", where=lambda p: item(p) is not None and
            item(p).get("role") == "participant")
        groupchat(bob, ROOM, "thank you")
        await alice.expect_message(frm=f"{ROOM}/Bob", body="thank you", mtype="groupchat")
    run(body)


NS_MOD0, NS_MOD1 = "urn:xmpp:message-moderate:0", "urn:xmpp:message-moderate:1"
NS_RETRACT0, NS_RETRACT1 = "urn:xmpp:message-retract:0", "urn:xmpp:message-retract:1"
NS_FASTEN = "urn:xmpp:fasten:0"


def retraction_of(m) -> str:
    """The message id a moderation notice retracts (the :1 form), or ''."""
    r = m.xml.find(f"{{{NS_RETRACT1}}}retract")
    return "" if r is None else r.get("id")


def test_a_moderator_retracts_messages_in_both_versions_and_the_archive_keeps_tombstones(
        make_server):
    """XEP-0425: slixmpp's own plugin (version 0, with <apply-to/>) and a raw version 1 request
    retract bob's messages; every occupant is told in both forms; the archive and the history
    a later joiner gets hold tombstones without the bodies; only moderators retract, and only
    messages the room has."""
    from test_muc_mam import mam_query, occupant, room_ids, talk
    server = make_server()
    for jid in (ALICE, BOB, f"carol@{DOMAIN}"):
        server.adduser(jid, PASSWORD)

    async def body():
        alice = await occupant(server, ALICE)
        alice.register_plugin("xep_0425")
        bob = await occupant(server, BOB)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob")
        info = await alice["xep_0030"].get_info(jid=ROOM)
        assert {NS_MOD0, NS_MOD1} <= set(info["disco_info"]["features"])
        spam, worse, fine = await talk(bob, alice, ["buy now", "buy more", "hello all"], room=ROOM)

        await alice["xep_0425"].moderate(JID(ROOM), spam, reason="spam")
        for who in (alice, bob):
            notice = await who.messages.get(lambda m: retraction_of(m) == spam)
            assert str(notice["from"]) == ROOM and notice["type"] == "groupchat"
            mod1 = notice.xml.find(f"{{{NS_RETRACT1}}}retract/{{{NS_MOD1}}}moderated")
            assert mod1.get("by") == f"{ROOM}/Alice", str(notice)
            apply = notice.xml.find(f"{{{NS_FASTEN}}}apply-to")
            assert apply.get("id") == spam
            assert apply.find(f"{{{NS_MOD0}}}moderated/{{{NS_RETRACT0}}}retract") is not None
            assert notice.xml.findtext(f"{{{NS_RETRACT1}}}retract/{{{NS_RETRACT1}}}reason") == \
                "spam"

        iq = alice.make_iq_set(ito=ROOM)
        mod = ET.SubElement(iq.xml, f"{{{NS_MOD1}}}moderate", {"id": worse})
        ET.SubElement(mod, f"{{{NS_RETRACT1}}}retract")
        await iq.send(timeout=10)
        await bob.messages.get(lambda m: retraction_of(m) == worse)

        # Bob is no moderator; an id the room never gave is not found.
        for client, target, expected in ((bob, fine, "forbidden"),
                                         (alice, "no-such-id", "item-not-found")):
            iq = client.make_iq_set(ito=ROOM)
            mod = ET.SubElement(iq.xml, f"{{{NS_MOD1}}}moderate", {"id": target})
            ET.SubElement(mod, f"{{{NS_RETRACT1}}}retract")
            with pytest.raises(IqError) as refused:
                await iq.send(timeout=10)
            assert refused.value.iq["error"]["condition"] == expected

        # The archive: tombstones in place, the last message whole.
        results, _ = await mam_query(bob, to=ROOM)
        by_id = {r.get("id"): r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
                 for r in results}
        for gone in (spam, worse):
            m = by_id[gone]
            assert m.find("{jabber:client}body") is None, ET.tostring(m)
            assert m.find(f"{{{NS_RETRACT1}}}retracted/{{{NS_MOD1}}}moderated") is not None
        assert by_id[fine].findtext("{jabber:client}body") == "hello all"

        # A later joiner's history: the same.
        carol = await occupant(server, f"carol@{DOMAIN}")
        await join(carol, ROOM, "Carol")
        seen = {}
        for _ in range(3):
            m = await carol.messages.get(lambda m: m["type"] == "groupchat" and room_ids(m, ROOM))
            seen[room_ids(m, ROOM)[0]] = m
        assert seen[spam]["body"] == "" and seen[fine]["body"] == "hello all"
        assert seen[spam].xml.find(f"{{{NS_RETRACT1}}}retracted") is not None
    run(body)


NS_HATS = "urn:xmpp:hats:0"


def hat_of(presence) -> tuple[str, str] | None:
    hat = presence.xml.find(f"{{{NS_HATS}}}hats/{{{NS_HATS}}}hat")
    return None if hat is None else (hat.get("title"), hat.get("uri"))


def test_hats_named_by_the_room_configuration(users):
    """XEP-0317: the owner names hats for affiliations in the room's configuration; occupants
    of those affiliations are seen wearing them (the room re-announces them), the others
    not; the hats stay with a persistent room across a restart."""
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob")
        await configure(alice, ROOM, {"muc#roomconfig_persistentroom": "1",
                                      "waddle#hat_owner": "Host",
                                      "waddle#hat_member": "Regular"})
        seen = await bob.expect_presence(frm=f"{ROOM}/Alice", where=lambda p: hat_of(p))
        assert hat_of(seen) == ("Host", "urn:waddle:hat:owner")
        # Bob, no member yet, wears nothing; made a member, he wears the members' hat.

        await admin_set(alice, ROOM, jid=BOB, affiliation="member")
        bob_seen = await alice.expect_presence(frm=f"{ROOM}/Bob", where=lambda p: hat_of(p))
        assert hat_of(bob_seen) == ("Regular", "urn:waddle:hat:member")
        info = await bob["xep_0030"].get_info(jid=ROOM)
        assert NS_HATS in info["disco_info"]["features"]
        # A title too long is refused.
        with pytest.raises(IqError):
            await configure(alice, ROOM, {"waddle#hat_admin": "x" * 65})
    run(body)
    users.restart()

    async def after():
        carol = await login(users, f"{ALICE}/again", PASSWORD)
        own = await join(carol, ROOM, "Alice")
        assert hat_of(own) == ("Host", "urn:waddle:hat:owner"), str(own)
    run(after)
