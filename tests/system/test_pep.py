"""Personal eventing (XEP-0163) on every account, with the XEP-0060 subset PEP clients use.

slixmpp's own plugins are the clients: xep_0060 and xep_0163 for requests, xep_0172 (nick) and
xep_0084 (avatars) for payloads, xep_0115 for the capabilities that ask for notifications
(+notify). What a user sees is asserted: published items arrive as headline <event/> messages
at the resources that want them and may read the node (contacts and the owner's own), the last
item arrives when such a resource comes online, requests get the XEP-0060 results and errors,
and items outlive a restart.

Run: /usr/bin/python3 -m pytest tests/system/test_pep.py -q
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

from federation import await_metric, metric_sum
from waddle_client import DOMAIN, PASSWORD, TIMEOUT, Client, befriend, run

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_NICK = "http://jabber.org/protocol/nick"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_DEVICES = "eu.siacs.conversations.axolotl.devicelist"
ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
CAPS_OK = "waddle_caps_queries_total"
REQUESTS = "waddle_pep_requests_total"
NOTIFICATIONS = "waddle_pep_notifications_total"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)
    return server


async def client(server, jid: str, interests: tuple[str, ...] = (), resource: str = "",
                 online: bool = True) -> Client:
    """A client whose capabilities ask for the notifications of `interests` (XEP-0163 §4.3)."""
    c = Client(server, f"{jid}/{resource}" if resource else jid, PASSWORD)
    for p in ("xep_0060", "xep_0115", "xep_0163", "xep_0172", "xep_0084"):
        c.register_plugin(p)
    await c.start()
    # The nick and avatar plugins declare their interests: only those asked for stay.
    for ns in (NS_NICK, NS_AVATAR_META):
        c["xep_0030"].del_feature(feature=f"{ns}+notify")
    for ns in interests:
        c["xep_0030"].add_feature(f"{ns}+notify")
    await c["xep_0115"].update_caps(broadcast=False)
    if online:
        await c.online()
    return c


def options(**fields: str) -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields.items():
        form.add_field(var=f"pubsub#{var}", value=value)
    return form


def payload(ns: str, name: str, text: str = "", **attrs: str) -> ET.Element:
    el = ET.Element(f"{{{ns}}}{name}", attrs)
    el.text = text or None
    return el


def is_event(m: Any, node: str, kind: str = "items") -> bool:
    ev = m.xml.find(f"{{{NS_EVENT}}}event")
    return ev is not None and any(
        child.tag == f"{{{NS_EVENT}}}{kind}" and child.get("node") == node for child in ev)


async def expect_event(c: Client, owner: str, node: str, kind: str = "items",
                       timeout: float = TIMEOUT) -> ET.Element:
    """The next event of `node` from `owner` (its <items/>, <delete/> or <purge/>)."""
    m = await c.messages.get(lambda m: str(m["from"]) == owner and is_event(m, node, kind),
                             timeout, what=f"a {kind} event of {owner}'s {node} for {c.label}")
    assert m["type"] == "headline", m
    return m.xml.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}{kind}")


def no_event(c: Client, node: str) -> None:
    """Nothing of `node` arrived (call after a sync of `c`: what was sent before is in)."""
    got = c.messages.take(lambda m: is_event(m, node) or is_event(m, node, "purge") or
                          is_event(m, node, "delete"))
    assert got is None, f"{c.label} got an event it should not have: {got}"


def item_ids(result: Any) -> list[str]:
    return [i.get("id") for i in result.xml.iter(f"{{{NS_PUBSUB}}}item")]


async def pubsub_error(coro) -> tuple[str, str, Optional[str]]:
    """(stanza condition, pubsub#errors condition or '', its feature) of a refused request."""
    with pytest.raises(IqError) as refused:
        await coro
    err = refused.value.iq.xml.find("{jabber:client}error")
    specific = [c for c in err if c.tag.startswith(f"{{{NS_ERRORS}}}")]
    name = specific[0].tag.split("}")[1] if specific else ""
    return refused.value.iq["error"]["condition"], name, (
        specific[0].get("feature") if specific else None)


async def caps_known(server, count: int) -> None:
    await await_metric(server, CAPS_OK, at_least=count, result="ok",
                       what="the server read the clients' capabilities")


def test_publish_reaches_the_resources_that_want_it(users):
    """A nick published by alice reaches her contact bob and her own second resource, both
    asking for nick notifications; carol (a contact without the interest) and bob's resource
    without it get nothing. Then bob's interest in avatars brings him the avatar metadata."""
    async def body():
        alice = await client(users, ALICE, resource="phone")
        bob = await client(users, BOB, (NS_NICK, NS_AVATAR_META))
        carol = await client(users, CAROL)
        await befriend(alice, bob)
        await befriend(alice, carol)
        laptop = await client(users, ALICE, (NS_NICK,), resource="laptop")
        bob_plain = await client(users, BOB, resource="plain")
        await caps_known(users, 3)  # three feature sets: without interests, bob's, laptop's
        result = await alice["xep_0172"].publish_nick("Alice A.")
        published = result.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish/"
                                    f"{{{NS_PUBSUB}}}item")
        assert published is not None and published.get("id"), result
        for who in (bob, laptop):
            items = await expect_event(who, ALICE, NS_NICK)
            nick = items.find(f"{{{NS_EVENT}}}item/{{{NS_NICK}}}nick")
            assert nick is not None and nick.text == "Alice A.", ET.tostring(items)
            assert items.find(f"{{{NS_EVENT}}}item").get("id") == published.get("id")
        for who in (carol, bob_plain, alice):
            await who.sync()
            no_event(who, NS_NICK)

        meta = payload(NS_AVATAR_META, "metadata")
        ET.SubElement(meta, f"{{{NS_AVATAR_META}}}info",
                      {"id": "a1b2", "bytes": "3", "type": "image/png"})
        await alice["xep_0060"].publish(None, NS_AVATAR_META, id="a1b2", payload=meta)
        items = await expect_event(bob, ALICE, NS_AVATAR_META)
        assert items.find(f"{{{NS_EVENT}}}item").get("id") == "a1b2"
        await laptop.sync()
        no_event(laptop, NS_AVATAR_META)  # its caps do not ask for avatars
        assert metric_sum(users, NOTIFICATIONS) >= 3
        assert metric_sum(users, REQUESTS, request="publish", result="ok") == 2
    run(body)


def test_the_last_item_arrives_when_a_resource_comes_online(users):
    """XEP-0163 §4.3.2: bob's client coming online with the interest gets alice's current nick
    (the last one published, not the earlier), and a new resource of alice's own gets it too."""
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB)
        await befriend(alice, bob)
        await alice["xep_0172"].publish_nick("first")
        await alice["xep_0172"].publish_nick("second")
        await bob.close()
        bob2 = await client(users, BOB, (NS_NICK,), resource="later")
        items = await expect_event(bob2, ALICE, NS_NICK)
        assert items.find(f"{{{NS_EVENT}}}item/{{{NS_NICK}}}nick").text == "second"
        own = await client(users, ALICE, (NS_NICK,), resource="other")
        items = await expect_event(own, ALICE, NS_NICK)
        assert items.find(f"{{{NS_EVENT}}}item/{{{NS_NICK}}}nick").text == "second"
        # Once only: a presence update of the same resource brings nothing again.
        bob2.send_presence(pstatus="away")
        # Storage jobs run in order: two roster requests after the presence are answered
        # after its broadcast, and after whatever that broadcast would have made.
        await bob2.roster_items()
        await bob2.roster_items()
        await bob2.sync()
        no_event(bob2, NS_NICK)
    run(body)


def test_items_by_id_and_max_under_each_access_model(users):
    """Items newest first, by id and by max_items; open nodes are read by anyone, presence
    nodes by subscribed contacts, roster nodes by the groups named, whitelist by the owner,
    with the XEP-0060 §6.5 errors for the others."""
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB)
        carol = await client(users, CAROL)  # not in alice's roster
        await befriend(alice, bob)
        await alice.roster_set(BOB)  # keeps bob without groups
        pub = alice["xep_0060"]
        for i in range(4):
            await pub.publish(None, "urn:test:open", id=f"i{i}",
                              payload=payload("urn:test", "n", str(i)),
                              options=options(access_model="open", max_items="3"))
        got = await carol["xep_0060"].get_items(ALICE, "urn:test:open")
        assert item_ids(got) == ["i3", "i2", "i1"]  # max_items 3: i0 went
        got = await carol["xep_0060"].get_items(ALICE, "urn:test:open", max_items=1)
        assert item_ids(got) == ["i3"]
        got = await carol["xep_0060"].get_items(ALICE, "urn:test:open", item_ids=["i1", "zz"])
        assert item_ids(got) == ["i1"]

        await pub.publish(None, "urn:test:presence", id="p", payload=payload("urn:test", "n"))
        assert item_ids(await bob["xep_0060"].get_items(ALICE, "urn:test:presence")) == ["p"]
        assert await pubsub_error(carol["xep_0060"].get_items(ALICE, "urn:test:presence")) == (
            "not-authorized", "presence-subscription-required", None)

        await pub.publish(None, "urn:test:white", id="w", payload=payload("urn:test", "n"),
                          options=options(access_model="whitelist"))
        assert await pubsub_error(bob["xep_0060"].get_items(ALICE, "urn:test:white")) == (
            "not-allowed", "closed-node", None)
        assert item_ids(await alice["xep_0060"].get_items(ALICE, "urn:test:white")) == ["w"]

        await pub.publish(None, "urn:test:roster", id="r", payload=payload("urn:test", "n"),
                          options=options(access_model="roster",
                                          roster_groups_allowed="friends"))
        assert await pubsub_error(bob["xep_0060"].get_items(ALICE, "urn:test:roster")) == (
            "not-authorized", "not-in-roster-group", None)
        iq = alice.make_iq_set()
        query = ET.Element("{jabber:iq:roster}query")
        item = ET.SubElement(query, "{jabber:iq:roster}item", {"jid": BOB})
        ET.SubElement(item, "{jabber:iq:roster}group").text = "friends"
        iq.append(query)
        await iq.send()
        assert item_ids(await bob["xep_0060"].get_items(ALICE, "urn:test:roster")) == ["r"]

        # Nodes and accounts that do not exist.
        assert (await pubsub_error(bob["xep_0060"].get_items(ALICE, "urn:test:none")))[0] == \
            "item-not-found"
        assert (await pubsub_error(bob["xep_0060"].get_items(f"nobody@{DOMAIN}", "x")))[0] == \
            "service-unavailable"
    run(body)


def test_publish_options_are_preconditions_and_errors_are_the_xeps(users):
    """XEP-0223: options create a node so configured and must match it afterwards; XEP-0060
    errors for what is not allowed or malformed, counted in /metrics."""
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB)
        await befriend(alice, bob)
        pub = alice["xep_0060"]
        devices = payload(NS_DEVICES, "list")
        ET.SubElement(devices, f"{{{NS_DEVICES}}}device", {"id": "12345"})
        await pub.publish(None, NS_DEVICES, id="current", payload=devices,
                          options=options(access_model="open"))
        # The same options again: met.
        await pub.publish(None, NS_DEVICES, id="current", payload=devices,
                          options=options(access_model="open"))
        assert await pubsub_error(pub.publish(None, NS_DEVICES, id="current", payload=devices,
                                              options=options(access_model="presence"))) == (
            "conflict", "precondition-not-met", None)
        # The node is as it was created: open.
        config = await pub.get_node_config(None, NS_DEVICES)
        form = config.xml.find(".//{jabber:x:data}x")
        values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form}
        assert values["pubsub#access_model"] == "open", values
        # Options the node cannot take refuse a new node too.
        assert (await pubsub_error(pub.publish(None, "urn:test:bad", payload=payload("u", "n"),
                                               options=options(access_model="authorize"))))[:2] == (
            "conflict", "precondition-not-met")
        # Only the owner publishes; subscriptions are not PEP's.
        assert (await pubsub_error(bob["xep_0060"].publish(ALICE, NS_DEVICES, id="x",
                                                           payload=devices)))[0] == "forbidden"
        assert await pubsub_error(bob["xep_0060"].subscribe(ALICE, NS_DEVICES)) == (
            "feature-not-implemented", "unsupported", "subscribe")
        # A publish without a node.
        iq = alice.make_iq_set()
        ps = ET.SubElement(iq.xml, f"{{{NS_PUBSUB}}}pubsub")
        ET.SubElement(ET.SubElement(ps, f"{{{NS_PUBSUB}}}publish"), f"{{{NS_PUBSUB}}}item")
        assert await pubsub_error(iq.send()) == ("bad-request", "nodeid-required", None)
        text = users.metrics_text()
        # Refused by the node: the two preconditions and bob's publish; refused as read (the
        # subscription and the publish without a node): "invalid".
        assert metric_sum(text, REQUESTS, request="publish", result="error") == 3
        assert metric_sum(text, REQUESTS, request="invalid", result="error") == 2
        assert metric_sum(text, REQUESTS, request="publish", result="ok") == 2
    run(body)


def test_limits_of_items_and_nodes(make_server):
    """[pep] max_item_bytes and max_nodes: a larger payload gets not-acceptable with
    payload-too-big; a node beyond the limit not-allowed with max-nodes-exceeded; max_items
    beyond [pep] max_items is refused."""
    server = make_server({"pep": {"max_item_bytes": 200, "max_nodes": 2, "max_items": 5}})
    server.adduser(ALICE, PASSWORD)

    async def body():
        alice = await client(server, ALICE)
        pub = alice["xep_0060"]
        assert await pubsub_error(pub.publish(None, "urn:test:a", payload=payload(
            "urn:test", "n", "x" * 300))) == ("not-acceptable", "payload-too-big", None)
        await pub.publish(None, "urn:test:a", payload=payload("urn:test", "n", "x" * 100))
        await pub.publish(None, "urn:test:b", payload=payload("urn:test", "n"))
        assert await pubsub_error(pub.publish(None, "urn:test:c", payload=payload(
            "urn:test", "n"))) == ("not-allowed", "max-nodes-exceeded", None)
        assert (await pubsub_error(pub.publish(None, "urn:test:a", payload=payload("u", "n"),
                                               options=options(max_items="6"))))[:2] == (
            "conflict", "precondition-not-met")
        # Deleting one makes room.
        await pub.delete_node(None, "urn:test:b")
        await pub.publish(None, "urn:test:c", payload=payload("urn:test", "n"))
    run(body)


def test_retract_purge_and_delete_notify_and_disco_lists_nodes(users):
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB, ("urn:test:n",))
        carol = await client(users, CAROL)
        await befriend(alice, bob)
        await caps_known(users, 1)
        pub = alice["xep_0060"]
        for i in ("a", "b"):
            await pub.publish(None, "urn:test:n", id=i, payload=payload("urn:test", "n"),
                              options=options(max_items="10"))
            await expect_event(bob, ALICE, "urn:test:n")
        await pub.publish(None, "urn:test:hidden", id="h", payload=payload("urn:test", "n"),
                          options=options(access_model="whitelist"))

        # XEP-0163 §5 / XEP-0030: the account is a PEP service, and lists what one may read.
        info = await bob["xep_0030"].get_info(jid=ALICE)
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        features = set(info["disco_info"]["features"])
        assert ("pubsub", "pep") in identities, identities
        for f in ("publish", "publish-options", "auto-create", "access-open", "retract-items",
                  "retrieve-items", "persistent-items", "last-published", "filtered-notifications",
                  "delete-nodes", "purge-nodes", "config-node"):
            assert f"{NS_PUBSUB}#{f}" in features, f
        nodes = await bob["xep_0030"].get_items(jid=ALICE)
        assert {i[1] for i in nodes["disco_items"]["items"]} == {"urn:test:n"}
        own = await alice["xep_0030"].get_items(jid=ALICE)
        assert {i[1] for i in own["disco_items"]["items"]} == {"urn:test:n", "urn:test:hidden"}

        await pub.retract(None, "urn:test:n", "a")
        items = await expect_event(bob, ALICE, "urn:test:n")
        assert items.find(f"{{{NS_EVENT}}}retract").get("id") == "a"
        assert (await pubsub_error(pub.retract(None, "urn:test:n", "a")))[0] == "item-not-found"
        await pub.purge(None, "urn:test:n")
        await expect_event(bob, ALICE, "urn:test:n", "purge")
        assert item_ids(await bob["xep_0060"].get_items(ALICE, "urn:test:n")) == []
        await pub.delete_node(None, "urn:test:n")
        await expect_event(bob, ALICE, "urn:test:n", "delete")
        assert (await pubsub_error(bob["xep_0060"].get_items(ALICE, "urn:test:n")))[0] == \
            "item-not-found"
        await carol.sync()
        no_event(carol, "urn:test:n")
    run(body)


def test_items_outlive_a_restart(users):
    async def body():
        alice = await client(users, ALICE)
        await alice["xep_0172"].publish_nick("kept")
    run(body)
    users.restart()

    async def after():
        alice = await client(users, ALICE)
        got = await alice["xep_0060"].get_items(ALICE, NS_NICK)
        nick = got.xml.find(f".//{{{NS_NICK}}}nick")
        assert nick is not None and nick.text == "kept"
    run(after)
