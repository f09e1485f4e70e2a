"""Room archives (XEP-0313 on rooms) across federation with ejabberd 23.01: a user of ejabberd
joins a room hosted by Waddle and pages through its archive with slixmpp's XEP-0313 plugin;
the query goes out over ejabberd's S2S stream and the results come back over it. The ids it
pages by are the stanza ids (by the room) it saw on the live messages.
Run (root): /usr/bin/python3 -m pytest tests/interop -q -p no:cacheprovider -k muc_mam
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from harness import login, run_async

TIMEOUT = 20.0
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"


async def join(c: Any, room: str, nick: str) -> None:
    p = c.make_presence(pto=f"{room}/{nick}")
    ET.SubElement(p.xml, f"{{{NS_MUC}}}x")
    p.send()
    await c.presences.get(
        lambda p: str(p["from"]) == f"{room}/{nick}" and any(
            s.get("code") == "110" for s in p.xml.iter(f"{{{NS_MUC_USER}}}status")),
        TIMEOUT * 2, f"self-presence in {room} for {c.label}")


def test_ejabberd_occupant_pages_a_waddle_room_archive(federation):
    fed = federation
    e = fed.ejabberd("ejabberd.test", "cert")
    w = fed.waddle("w-mucmam.test", "cert", users=["alice"])
    fed.start()
    e.register("bob")
    room = f"lobby@conference.{w.domain}"

    async def body():
        alice = await login(w, "alice")
        bob = await login(e, "bob")
        bob.register_plugin("xep_0313")
        await join(alice, room, "alice")
        await join(bob, room, "bob")
        info = await bob["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
        assert NS_MAM in info["disco_info"]["features"], str(info)
        said = [f"archived line {i}" for i in range(5)]
        ids = []
        for text in said:
            alice.send_message(mto=room, mbody=text, mtype="groupchat")
            m = await bob.messages.get(lambda m: m["body"] == text and m["type"] == "groupchat",
                                       TIMEOUT, f"{text!r} for bob")
            by_room = [s.get("id") for s in m.xml.findall(f"{{{NS_SID}}}stanza-id")
                       if s.get("by") == room]
            assert len(by_room) == 1, str(m)
            ids.append(by_room[0])
        got, got_ids = [], []
        async for msg in bob["xep_0313"].iterate(jid=room, rsm={"max": 2}):
            got.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
            got_ids.append(msg["mam_result"]["id"])
        assert got == said and got_ids == ids, (got, got_ids)
        # The newest two, paging backwards.
        newest = []
        async for msg in bob["xep_0313"].iterate(jid=room, reverse=True, rsm={"max": 2},
                                                 total=2):
            newest.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        assert sorted(newest) == sorted(said[3:]), newest

    run_async(body, timeout=120)
    # Every page was a query the room answered (none refused, none failed).
    assert w.metric("waddle_muc_mam_queries_total", result="ok") >= 2
    assert w.metric("waddle_muc_mam_queries_total", result="error") == 0
