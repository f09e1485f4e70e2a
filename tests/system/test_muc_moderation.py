"""Moderated rooms (XEP-0045 §7.13, §8.6): a visitor asks for voice, the moderators get the
request as a form, one approves it and the visitor may speak.

Run: /usr/bin/python3 -m pytest tests/system/test_muc_moderation.py -q
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from muc import NS_DATA, codes, configure, condition, groupchat, item, join
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
