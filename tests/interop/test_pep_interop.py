"""Personal eventing (XEP-0163) across federation with Prosody 0.12 (mod_pep): a Waddle user and
a Prosody user see each other's nickname (XEP-0172), avatar (XEP-0084) and OMEMO device list as
their clients would. The clients are slixmpp with its own plugins (xep_0060, xep_0163,
xep_0115, xep_0172, xep_0084); a client asks for a node's notifications by listing
'<node>+notify' in its entity capabilities (XEP-0115), and each server asks the other's clients
for the features behind a 'ver' over S2S.

The harness's Prosody has no PEP by default: every test here loads mod_pep ("pep" in
extra_modules). The contacts befriend Waddle user first (RFC 6121 §3: the Waddle user asks,
the Prosody user approves, then the other way round), so that each server gets the other
user's available presence (with caps) only once the subscription allows it: Prosody's mod_pep
looks at a contact's caps only in presence from a contact it has a 'from' subscription to, and
Waddle sends the last items when it approves a subscription of a resource whose presence it
already has.

- test_prosody_user_publishes_nick_and_avatar_to_waddle_contact: Prosody's PEP -> Waddle user
  (notifications of nick and avatar metadata, forwarded to the Waddle client; the avatar data
  fetched by id from Prosody).
- test_waddle_user_publishes_nick_and_avatar_to_prosody_contact: Waddle's PEP -> Prosody user
  (notifications over S2S; the avatar data fetched by id from Waddle, same bytes).
- test_prosody_contact_online_later_gets_last_item: the last published nick reaches a Prosody
  resource that comes online after it was published (caps asked over S2S), and again one that
  comes online while the Waddle user is offline.
- test_omemo_device_lists_are_read_by_non_contacts: device lists published with
  publish-options access_model=open are read by users on the other server who are in nobody's
  roster, both ways; the Waddle node's options are preconditions afterwards, and a node of the
  default 'presence' model is not readable by the non-contact.

Run (root): /usr/bin/python3 -m pytest tests/interop/test_pep_interop.py -q
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

import harness
from harness import run_async

TIMEOUT = 20.0
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_NICK = "http://jabber.org/protocol/nick"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NODE_DEVICES = "eu.siacs.conversations.axolotl.devicelist"
NS_AXOLOTL = "eu.siacs.conversations.axolotl"  # the payload's namespace (OMEMO 0.3)
PLUGINS = ("xep_0060", "xep_0115", "xep_0163", "xep_0172", "xep_0084")
PROSODY_PEP = ["pep"]  # mod_pep: not in the harness's reduced module set

# An avatar-sized payload (the PNG signature and 1 KiB of varying bytes).
AVATAR = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


# --------------------------------------------------------------------------- helpers


async def pep_client(server: Any, user: str, interests: tuple[str, ...] = (), *,
                     resource: str = "", online: bool = True) -> Any:
    """A logged-in client with slixmpp's PEP plugins whose capabilities ask for the
    notifications of `interests` exactly (XEP-0163 §4.3: '<node>+notify' features), sent with
    its initial presence if `online`."""
    jid = server.jid(user) + (f"/{resource}" if resource else "")
    c = harness.XmppClient(jid, server.users.get(user, harness.PASSWORD), server.c2s_address)
    for p in PLUGINS:
        c.register_plugin(p)
    await c.start()
    # The nick and avatar plugins declare their interests themselves: only those asked for stay.
    for ns in (NS_NICK, NS_AVATAR_META):
        c["xep_0030"].del_feature(feature=f"{ns}+notify")
    for ns in interests:
        c["xep_0030"].add_feature(f"{ns}+notify")
    await c["xep_0115"].update_caps(broadcast=False)  # before the presence that carries them
    if online:
        await c.online()
    return c


async def roster_get(c: Any) -> dict[str, dict]:
    """The roster as the server has it; also makes the resource "interested" (RFC 6121
    §2.1.6), which Prosody wants before it delivers subscription requests."""
    iq = c.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    res = await iq.send(timeout=TIMEOUT)
    return {str(j): dict(v) for j, v in res["roster"]["items"].items()}


def presence_from(bare: str, ptype: str):
    return lambda p: p["type"] == ptype and p["from"].bare == bare


async def befriend(w: Any, p: Any) -> None:
    """Mutual subscription between the Waddle client `w` and the Prosody client `p`: `w` asks
    and `p` approves (`w` gets p's presence), then `p` asks and `w` approves (`p` gets w's
    presence); both rosters end at 'both'."""
    for c in (w, p):
        c.auto_authorize = None
        c.auto_subscribe = False
        await roster_get(c)
    for asker, approver in ((w, p), (p, w)):
        a, b = asker.boundjid.bare, approver.boundjid.bare
        asker.send_presence(pto=b, ptype="subscribe")
        await approver.presences.get(presence_from(a, "subscribe"), TIMEOUT,
                                     f"'subscribe' from {a} at {b}")
        approver.send_presence(pto=a, ptype="subscribed")
        await asker.presences.get(presence_from(b, "subscribed"), TIMEOUT,
                                  f"'subscribed' from {b} at {a}")
        await asker.presences.get(presence_from(b, "available"), TIMEOUT,
                                  f"{b}'s presence at {a} after the approval")
    for x, y in ((w, p), (p, w)):
        items = await roster_get(x)
        sub = items.get(y.boundjid.bare, {}).get("subscription")
        assert sub == "both", f"{x.label}'s roster item for {y.boundjid.bare}: {items}"


def is_event(m: Any, node: str) -> bool:
    ev = m.xml.find(f"{{{NS_EVENT}}}event")
    return ev is not None and any(
        child.tag == f"{{{NS_EVENT}}}items" and child.get("node") == node for child in ev)


async def expect_event(c: Any, owner: str, node: str) -> ET.Element:
    """The next notification of an item of `owner`'s `node` at `c` (a headline message from
    the owner's bare JID to c's full JID); returns its <item/>."""
    m = await c.messages.get(lambda m: m["from"].bare == owner and is_event(m, node), TIMEOUT,
                             f"a notification of {owner}'s {node} for {c.boundjid}")
    assert str(m["from"]) == owner, f"not from the bare JID: {m}"
    assert str(m["to"]) == str(c.boundjid), f"not to the resource: {m}"
    assert m["type"] == "headline", m
    item = m.xml.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items/{{{NS_EVENT}}}item")
    assert item is not None, f"an event without an item: {m}"
    return item


def no_event(c: Any, node: str) -> None:
    """Nothing of `node` is in c's inbox."""
    got = [str(m) for m in c.messages.items if is_event(m, node)]
    assert not got, f"{c.boundjid} got notifications it did not ask for: {got}"


def result_items(res: Any) -> list[ET.Element]:
    """The <item/>s of an items result (XEP-0060 §6.5)."""
    return res.xml.findall(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}items/{{{NS_PUBSUB}}}item")


def publish_options(**fields: str) -> Form:
    """A publish-options form (XEP-0223): pubsub#FIELD = value."""
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields.items():
        form.add_field(var=f"pubsub#{var}", value=value)
    return form


def device_list(*ids: int) -> ET.Element:
    devices = ET.Element(f"{{{NS_AXOLOTL}}}list")
    for i in ids:
        ET.SubElement(devices, f"{{{NS_AXOLOTL}}}device", {"id": str(i)})
    return devices


def device_ids(item: ET.Element) -> list[str]:
    return [d.get("id") for d in item.iter(f"{{{NS_AXOLOTL}}}device")]


async def pubsub_error(coro: Any) -> tuple[str, str]:
    """(stanza error condition, pubsub#errors condition or '') of a refused request."""
    with pytest.raises(IqError) as refused:
        await coro
    err = refused.value.iq.xml.find("{jabber:client}error")
    specific = [c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{NS_ERRORS}}}")]
    return refused.value.iq["error"]["condition"], (specific[0] if specific else "")


async def publish_avatar(c: Any) -> str:
    """Publishes AVATAR (data, then metadata) with xep_0084; returns its id (SHA-1)."""
    avatar_id = c["xep_0084"].generate_id(AVATAR)
    await c["xep_0084"].publish_avatar(AVATAR, timeout=TIMEOUT)
    await c["xep_0084"].publish_avatar_metadata(
        # (width and height as text: slixmpp writes the values it is given as they are)
        {"id": avatar_id, "type": "image/png", "bytes": len(AVATAR), "width": "64",
         "height": "64"}, timeout=TIMEOUT)
    return avatar_id


def assert_metadata(item: ET.Element, avatar_id: str) -> None:
    assert item.get("id") == avatar_id, ET.tostring(item)
    info = item.find(f"{{{NS_AVATAR_META}}}metadata/{{{NS_AVATAR_META}}}info")
    assert info is not None, ET.tostring(item)
    assert (info.get("id"), info.get("type"), info.get("bytes")) == (
        avatar_id, "image/png", str(len(AVATAR))), ET.tostring(item)


def assert_nick(item: ET.Element, nick: str) -> None:
    got = item.find(f"{{{NS_NICK}}}nick")
    assert got is not None and got.text == nick, ET.tostring(item)


async def fetch_avatar(c: Any, owner: str, avatar_id: str) -> bytes:
    """The avatar data item `avatar_id` of `owner`, asked for by id (XEP-0084 §4.2.2)."""
    res = await c["xep_0084"].retrieve_avatar(owner, avatar_id, timeout=TIMEOUT)
    items = result_items(res)
    assert [i.get("id") for i in items] == [avatar_id], str(res)
    data = items[0].find(f"{{{NS_AVATAR_DATA}}}data")
    assert data is not None and data.text, str(res)
    return base64.b64decode(data.text)


# --------------------------------------------------------------------------- tests


def test_prosody_user_publishes_nick_and_avatar_to_waddle_contact(federation):
    """bob@prosody publishes his nick and avatar (data, then metadata); alice@waddle, his
    contact, whose client asks for nick and avatar-metadata notifications, gets both
    notifications from Prosody's PEP service through Waddle, with bob's payloads, and not the
    data one she did not ask for. She then fetches the avatar data by id from bob's PEP
    service on Prosody and gets the bytes bob published."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-pep.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await pep_client(w, "alice", (NS_NICK, NS_AVATAR_META))
        bob = await pep_client(p, "bob")
        await befriend(alice, bob)
        B = bob.boundjid.bare

        avatar_id = await publish_avatar(bob)
        assert avatar_id == hashlib.sha1(AVATAR).hexdigest()
        await bob["xep_0172"].publish_nick("Bob from Prosody", timeout=TIMEOUT)

        assert_metadata(await expect_event(alice, B, NS_AVATAR_META), avatar_id)
        assert_nick(await expect_event(alice, B, NS_NICK), "Bob from Prosody")
        no_event(alice, NS_AVATAR_DATA)  # published before the others: it would be here

        assert await fetch_avatar(alice, B, avatar_id) == AVATAR
        errors = [str(m) for m in alice.messages.items + bob.messages.items
                  if m["type"] == "error"]
        assert not errors, f"error stanzas: {errors}"

    run_async(body, timeout=150)


def test_waddle_user_publishes_nick_and_avatar_to_prosody_contact(federation):
    """alice@waddle publishes her avatar (data, then metadata) and nick; bob@prosody, her
    contact, whose client asks for nick and avatar-metadata notifications, gets both over S2S
    (Waddle sends them to his resource on Prosody: it learnt his caps by asking him), and not
    the data one he did not ask for. He then fetches the avatar data by id from alice's
    urn:xmpp:avatar:data node on Waddle (an items request over S2S; the node's default access
    model 'presence' lets a contact read it) and gets the same bytes."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-pep.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await pep_client(w, "alice")
        bob = await pep_client(p, "bob", (NS_NICK, NS_AVATAR_META))
        await befriend(alice, bob)
        A = alice.boundjid.bare

        avatar_id = await publish_avatar(alice)
        await alice["xep_0172"].publish_nick("Alice from Waddle", timeout=TIMEOUT)

        assert_metadata(await expect_event(bob, A, NS_AVATAR_META), avatar_id)
        assert_nick(await expect_event(bob, A, NS_NICK), "Alice from Waddle")
        no_event(bob, NS_AVATAR_DATA)  # published before the others: it would be here

        assert await fetch_avatar(bob, A, avatar_id) == AVATAR
        errors = [str(m) for m in alice.messages.items + bob.messages.items
                  if m["type"] == "error"]
        assert not errors, f"error stanzas: {errors}"

    run_async(body, timeout=150)


def test_prosody_contact_online_later_gets_last_item(federation):
    """XEP-0163 §4.3.2 across federation: bob@prosody (befriended, then offline) comes online
    with a client that asks for nick notifications after alice@waddle published two nicks; his
    new resource gets the last one (Waddle asks it for its features over S2S, then sends the
    node's last item). Then alice goes offline and bob comes online with another resource (caps
    Waddle knows already): it gets the nick again, from alice's service while she is away."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-pep.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await pep_client(w, "alice")
        bob = await pep_client(p, "bob")  # no interests: this one wants nothing
        await befriend(alice, bob)
        A, B = alice.boundjid.bare, bob.boundjid.bare
        await bob.close()
        await alice.presences.get(presence_from(B, "unavailable"), TIMEOUT,
                                  f"{B}'s unavailable presence at {A}")

        await alice["xep_0172"].publish_nick("first", timeout=TIMEOUT)
        await alice["xep_0172"].publish_nick("second", timeout=TIMEOUT)

        later = await pep_client(p, "bob", (NS_NICK,), resource="later")
        assert_nick(await expect_event(later, A, NS_NICK), "second")

        await alice.close()
        await later.presences.get(presence_from(A, "unavailable"), TIMEOUT,
                                  f"{A}'s unavailable presence at {B}")
        await later.close()
        again = await pep_client(p, "bob", (NS_NICK,), resource="again")
        assert_nick(await expect_event(again, A, NS_NICK), "second")
        # Only the last item, never the one it replaced (max_items 1).
        await again.sync()
        for c in (later, again):  # (later is closed: all it got is in its inbox)
            stale = [str(m) for m in c.messages.items if is_event(m, NS_NICK) and
                     m.xml.findtext(f".//{{{NS_NICK}}}nick") != "second"]
            assert not stale, f"{c.boundjid} got an older nick than the last: {stale}"

    run_async(body, timeout=150)


def test_omemo_device_lists_are_read_by_non_contacts(federation):
    """OMEMO (XEP-0384, legacy namespace): alice@waddle publishes her device list to
    eu.siacs.conversations.axolotl.devicelist (item 'current') with publish-options
    pubsub#access_model=open; bob@prosody, in nobody's roster, reads it with an items request
    over S2S. The other way round, bob publishes his on Prosody the same way and alice reads
    it. On Waddle, publishing again with other options is refused as a failed precondition
    (conflict + precondition-not-met) and the node stays open; a node of the default
    'presence' model (alice's nick) is refused to bob."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-pep.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await pep_client(w, "alice")
        bob = await pep_client(p, "bob")
        A, B = alice.boundjid.bare, bob.boundjid.bare
        for c in (alice, bob):
            assert await roster_get(c) == {}, f"{c.label} has contacts"

        # Waddle -> Prosody
        await alice["xep_0060"].publish(None, NODE_DEVICES, id="current",
                                        payload=device_list(1111, 2222),
                                        options=publish_options(access_model="open"),
                                        timeout=TIMEOUT)
        res = await bob["xep_0060"].get_items(A, NODE_DEVICES, timeout=TIMEOUT)
        items = result_items(res)
        assert [i.get("id") for i in items] == ["current"], str(res)
        assert device_ids(items[0]) == ["1111", "2222"], str(res)

        # Prosody -> Waddle
        await bob["xep_0060"].publish(None, NODE_DEVICES, id="current",
                                      payload=device_list(3333),
                                      options=publish_options(access_model="open"),
                                      timeout=TIMEOUT)
        res = await alice["xep_0060"].get_items(B, NODE_DEVICES, timeout=TIMEOUT)
        items = result_items(res)
        assert [i.get("id") for i in items] == ["current"], str(res)
        assert device_ids(items[0]) == ["3333"], str(res)

        # XEP-0223 on Waddle: the options are preconditions of the existing node.
        assert await pubsub_error(alice["xep_0060"].publish(
            None, NODE_DEVICES, id="current", payload=device_list(1111),
            options=publish_options(access_model="presence"), timeout=TIMEOUT)) == (
            "conflict", "precondition-not-met")
        await alice["xep_0060"].publish(None, NODE_DEVICES, id="current",
                                        payload=device_list(1111, 2222, 4444),
                                        options=publish_options(access_model="open"),
                                        timeout=TIMEOUT)
        res = await bob["xep_0060"].get_items(A, NODE_DEVICES, timeout=TIMEOUT)
        assert [device_ids(i) for i in result_items(res)] == [["1111", "2222", "4444"]], \
            str(res)

        # The default access model, 'presence', keeps a node from a non-contact.
        await alice["xep_0172"].publish_nick("Alice", timeout=TIMEOUT)
        assert await pubsub_error(bob["xep_0060"].get_items(A, NS_NICK, timeout=TIMEOUT)) == (
            "not-authorized", "presence-subscription-required")

    run_async(body, timeout=150)
