"""User profiles across federation with Prosody 0.12 and ejabberd 23.01: vCards (XEP-0054),
vCard-based avatars (XEP-0153) seen as XEP-0084 avatars through Waddle's conversion
(XEP-0398), vCard4 in PEP (XEP-0292), OMEMO bundles read by non-contacts (XEP-0384) and
bookmarks (XEP-0048 in private XML, XEP-0049, kept as XEP-0402 items) that stay private. The
clients are slixmpp with its own plugins (xep_0054, xep_0153, xep_0060, xep_0084, xep_0115,
xep_0163, xep_0048, xep_0049; slixmpp 1.8 has no XEP-0402 or XEP-0292 plugin, so those
clients use xep_0060 on the nodes those XEPs name).

The helpers and the order of befriending come from test_pep_interop.py (read its docstring):
the Waddle user asks first, the Prosody user approves, then the other way round, so that each
server gets the other user's available presence (with caps) only once the subscription allows
it. A client asks for a node's notifications by listing '<node>+notify' in its entity
capabilities (XEP-0115); `profile_client` keeps exactly the interests a test asks for (the
plugins declare some of their own).

Peer configuration that matters:
- Prosody: the harness's reduced module set has neither vCards nor PEP. "vcard" (mod_vcard:
  vcard-temp kept as it was set, readable by anyone, a set only by the owner without a 'to')
  for the vCard tests; "pep" (mod_pep) for the PEP ones. mod_vcard_legacy, which Debian's
  Prosody 0.12 also ships, is not loaded: it turns vCards into PEP nodes of its own and would
  mix Prosody's conversion into what is tested here.
- ejabberd: mod_vcard (mnesia, search off) in the module list.

- test_vcards_read_across_servers: Prosody user <-> Waddle user vcard-temp, both ways (FN and
  PHOTO bytes), an account without a vCard, a nonexistent account (service-unavailable), a set
  of another server's user's vCard (forbidden).
- test_ejabberd_and_waddle_users_read_each_others_vcards: the same both ways with ejabberd.
- test_waddle_vcard_photo_reaches_prosody_avatar_client: a XEP-0153 client on Waddle sets a
  vCard PHOTO; the Prosody contact asking for avatar metadata is notified with id = SHA-1 of the
  bytes and fetches the same bytes by that id; the open nodes are read by a non-contact too.
- test_waddle_xep0084_avatar_becomes_vcard_photo_for_prosody_reader: the other direction of
  the conversion, read across servers.
- test_vcard4_in_pep_both_ways: XEP-0292 node urn:xmpp:vcard4, notified and fetched both ways.
- test_omemo_bundles_read_by_non_contacts: eu.siacs.conversations.axolotl.bundles:<id> with
  access_model=open, both ways between users in nobody's roster.
- test_bookmarks_stay_private: XEP-0048 bookmarks in private XML become XEP-0402 items that the
  owner's XEP-0402 client is notified of and reads; a Prosody contact's items request is
  refused (not-allowed, closed-node), its private XML request forbidden, and it is never
  notified of them although its caps ask for them.

Run (root): /usr/bin/python3 -m pytest tests/interop/test_profiles_interop.py -q
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks

import harness
from harness import run_async
from test_pep_interop import (AVATAR, NS_AVATAR_DATA, NS_AVATAR_META, NS_EVENT, NS_NICK,
                              assert_metadata, befriend, expect_event, fetch_avatar, is_event,
                              no_event, publish_avatar, publish_options, pubsub_error,
                              result_items, roster_get)

TIMEOUT = 20.0
NS_VCARD = "vcard-temp"
NS_VCARD4_NODE = "urn:xmpp:vcard4"
NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
NS_AXOLOTL = "eu.siacs.conversations.axolotl"
NODE_BUNDLES = NS_AXOLOTL + ".bundles"
NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1"
NS_PRIVATE = "jabber:iq:private"
PLUGINS = ("xep_0054", "xep_0060", "xep_0115", "xep_0163", "xep_0172", "xep_0084")
PROSODY_VCARD = ["vcard"]  # mod_vcard: vcard-temp as stored, not in the harness's set
PROSODY_PEP = ["pep"]
EJABBERD_VCARD = "  mod_vcard: {search: false}\n"  # appended to ejabberd.yml's modules

# Another picture, for the peers' own vCards (a JPEG's start and varying bytes).
PHOTO_2 = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(255, -1, -1)) * 3


# --------------------------------------------------------------------------- helpers


async def profile_client(server: Any, user: str, interests: tuple[str, ...] = (), *,
                         resource: str = "", plugins: tuple[str, ...] = (),
                         online: bool = True) -> Any:
    """A logged-in client with slixmpp's profile plugins (PLUGINS and `plugins`) whose
    capabilities ask for the notifications of `interests` exactly: the '+notify' features
    that the plugins add by themselves are taken out again."""
    jid = server.jid(user) + (f"/{resource}" if resource else "")
    c = harness.XmppClient(jid, server.users.get(user, harness.PASSWORD), server.c2s_address)
    for p in (*PLUGINS, *plugins):
        c.register_plugin(p)
    await c.start()
    info = await c["xep_0030"].get_info(local=True)
    for feature in info["features"]:
        if feature.endswith("+notify"):
            c["xep_0030"].del_feature(feature=feature)
    for ns in interests:
        c["xep_0030"].add_feature(f"{ns}+notify")
    info = await c["xep_0030"].get_info(local=True)
    got = sorted(f for f in info["features"] if f.endswith("+notify"))
    assert got == sorted(f"{ns}+notify" for ns in interests), got
    await c["xep_0115"].update_caps(broadcast=False)  # before the presence that carries them
    if online:
        await c.online()
    return c


def make_vcard(c: Any, fn: str, photo: bytes, mtype: str, nickname: str = "") -> Any:
    v = c["xep_0054"].make_vcard()
    v["FN"] = fn
    if nickname:
        ET.SubElement(v.xml, f"{{{NS_VCARD}}}NICKNAME").text = nickname
    v["PHOTO"]["TYPE"] = mtype
    v["PHOTO"]["BINVAL"] = photo
    return v


def vcard_of(res: Any) -> ET.Element:
    """The <vCard/> of a vcard-temp result."""
    v = res.xml.find(f"{{{NS_VCARD}}}vCard")
    assert v is not None, f"no vCard in the result: {res}"
    return v


def photo_of(vcard: ET.Element) -> tuple[str, bytes]:
    """(TYPE, decoded BINVAL) of a vCard's PHOTO."""
    photo = vcard.find(f"{{{NS_VCARD}}}PHOTO")
    assert photo is not None, ET.tostring(vcard)
    binval = photo.findtext(f"{{{NS_VCARD}}}BINVAL") or ""
    # (XEP-0054 allows line breaks in BINVAL)
    return (photo.findtext(f"{{{NS_VCARD}}}TYPE") or "",
            base64.b64decode("".join(binval.split())))


async def get_vcard(c: Any, jid: str) -> ET.Element:
    """jid's vCard as c's server brings it (an IQ get to jid's bare JID)."""
    res = await c["xep_0054"].get_vcard(jid, cached=False, timeout=TIMEOUT)
    assert res["type"] == "result", str(res)
    return vcard_of(res)


async def iq_error(coro: Any) -> tuple[str, str]:
    """(error type, condition) of a refused IQ."""
    with pytest.raises(IqError) as refused:
        await coro
    return refused.value.iq["error"]["type"], refused.value.iq["error"]["condition"]


def vcard4(fn: str, nick: str, note: str) -> ET.Element:
    """A XEP-0292 <vcard/> with fn, nickname and note."""
    v = ET.Element(f"{{{NS_VCARD4}}}vcard")
    for prop, value in (("fn", fn), ("nickname", nick), ("note", note)):
        ET.SubElement(ET.SubElement(v, f"{{{NS_VCARD4}}}{prop}"),
                      f"{{{NS_VCARD4}}}text").text = value
    return v


def vcard4_texts(item: ET.Element) -> dict[str, str]:
    v = item.find(f"{{{NS_VCARD4}}}vcard")
    assert v is not None, ET.tostring(item)
    return {prop.tag.split("}")[1]: prop.findtext(f"{{{NS_VCARD4}}}text") for prop in v}


def bundle(device_id: int, prekeys: int = 100) -> ET.Element:
    """An OMEMO (0.3, legacy namespace) bundle of made-up keys: 33-byte public keys, a
    64-byte signature, `prekeys` one-time pre-keys (a real client publishes about 100)."""
    def key(*seed: int) -> str:
        return base64.b64encode(
            b"\x05" + hashlib.sha256(repr((device_id, *seed)).encode()).digest()).decode()

    b = ET.Element(f"{{{NS_AXOLOTL}}}bundle")
    ET.SubElement(b, f"{{{NS_AXOLOTL}}}signedPreKeyPublic",
                  {"signedPreKeyId": "1"}).text = key(1)
    ET.SubElement(b, f"{{{NS_AXOLOTL}}}signedPreKeySignature").text = base64.b64encode(
        hashlib.sha512(str(device_id).encode()).digest()).decode()
    ET.SubElement(b, f"{{{NS_AXOLOTL}}}identityKey").text = key(0)
    pks = ET.SubElement(b, f"{{{NS_AXOLOTL}}}prekeys")
    for i in range(1, prekeys + 1):
        ET.SubElement(pks, f"{{{NS_AXOLOTL}}}preKeyPublic", {"preKeyId": str(i)}).text = \
            key(2, i)
    return b


def bundle_summary(item: ET.Element) -> tuple[str, str, list[tuple[str, str]]]:
    """(identity key, signed pre-key, [(pre-key id, key)]) of a bundle item."""
    b = item.find(f"{{{NS_AXOLOTL}}}bundle")
    assert b is not None, ET.tostring(item)
    return (b.findtext(f"{{{NS_AXOLOTL}}}identityKey"),
            b.findtext(f"{{{NS_AXOLOTL}}}signedPreKeyPublic"),
            [(k.get("preKeyId"), k.text) for k in b.iter(f"{{{NS_AXOLOTL}}}preKeyPublic")])


def event_items(m: Any, node: str) -> list[ET.Element]:
    return [i for items in m.xml.iter(f"{{{NS_EVENT}}}items") if items.get("node") == node
            for i in items.findall(f"{{{NS_EVENT}}}item")]


def no_errors(*clients: Any) -> None:
    errors = [str(m) for c in clients for m in c.messages.items if m["type"] == "error"]
    assert not errors, f"error stanzas: {errors}"


# --------------------------------------------------------------------------- tests


def test_vcards_read_across_servers(federation):
    """vcard-temp across federation with Prosody (mod_vcard). alice@waddle and bob@prosody,
    in nobody's roster, each set a vCard with FN and PHOTO; each reads the other's with an IQ
    get to the other's bare JID over S2S and gets the FN, the photo's type and its bytes.
    bob also reads carol@waddle, who never set one (an empty <vCard/>), and nobody@waddle, who
    does not exist (service-unavailable); his set of alice's vCard is refused (forbidden)
    and hers is unchanged."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_VCARD)
    w = fed.waddle("w-prof.test", "cert", users=["alice", "carol"])
    fed.start()

    async def body():
        alice = await profile_client(w, "alice")
        bob = await profile_client(p, "bob")
        A, B = alice.boundjid.bare, bob.boundjid.bare
        await alice["xep_0054"].publish_vcard(
            make_vcard(alice, "Alice of Waddle", AVATAR, "image/png", "alice"), timeout=TIMEOUT)
        await bob["xep_0054"].publish_vcard(
            make_vcard(bob, "Bob of Prosody", PHOTO_2, "image/jpeg"), timeout=TIMEOUT)

        v = await get_vcard(bob, A)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Alice of Waddle", ET.tostring(v)
        assert v.findtext(f"{{{NS_VCARD}}}NICKNAME") == "alice", ET.tostring(v)
        assert photo_of(v) == ("image/png", AVATAR)

        v = await get_vcard(alice, B)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Bob of Prosody", ET.tostring(v)
        assert photo_of(v) == ("image/jpeg", PHOTO_2)

        v = await get_vcard(bob, w.jid("carol"))
        assert len(v) == 0 and not (v.text or "").strip(), ET.tostring(v)

        assert await iq_error(bob["xep_0054"].get_vcard(
            w.jid("nobody"), cached=False, timeout=TIMEOUT)) == ("cancel",
                                                                 "service-unavailable")

        assert (await iq_error(bob["xep_0054"].publish_vcard(
            make_vcard(bob, "Not Alice", PHOTO_2, "image/jpeg"), jid=A, timeout=TIMEOUT))
            )[1] == "forbidden"
        v = await get_vcard(bob, A)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Alice of Waddle", ET.tostring(v)
        no_errors(alice, bob)

    run_async(body, timeout=150)


def test_ejabberd_and_waddle_users_read_each_others_vcards(federation):
    """vcard-temp across federation with ejabberd (mod_vcard): dave@ejabberd and
    alice@waddle, strangers, set vCards with photos and read each other's over S2S; dave's
    request for nobody@waddle gets service-unavailable."""
    fed = federation
    e = fed.ejabberd("ejabberd.test", "cert", extra_config=EJABBERD_VCARD)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()
    e.register("dave")

    async def body():
        alice = await profile_client(w, "alice")
        dave = await profile_client(e, "dave")
        A, D = alice.boundjid.bare, dave.boundjid.bare
        await alice["xep_0054"].publish_vcard(
            make_vcard(alice, "Alice of Waddle", AVATAR, "image/png"), timeout=TIMEOUT)
        await dave["xep_0054"].publish_vcard(
            make_vcard(dave, "Dave of ejabberd", PHOTO_2, "image/jpeg"), timeout=TIMEOUT)

        v = await get_vcard(dave, A)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Alice of Waddle", ET.tostring(v)
        assert photo_of(v) == ("image/png", AVATAR)
        v = await get_vcard(alice, D)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Dave of ejabberd", ET.tostring(v)
        assert photo_of(v) == ("image/jpeg", PHOTO_2)
        assert (await iq_error(dave["xep_0054"].get_vcard(
            w.jid("nobody"), cached=False, timeout=TIMEOUT)))[1] == "service-unavailable"
        no_errors(alice, dave)

    run_async(body, timeout=150)


def test_waddle_vcard_photo_reaches_prosody_avatar_client(federation):
    """XEP-0153 client to XEP-0084 client across servers (XEP-0398 on Waddle). alice@waddle's
    client (slixmpp's xep_0153) sets her avatar the XEP-0153 way: a vCard with a PHOTO. bob,
    her contact on Prosody, whose client asks for urn:xmpp:avatar:metadata+notify only, gets
    the metadata notification: item id = SHA-1 of the photo, <info/> with that id, the type and
    the size; nothing of the data node. He fetches urn:xmpp:avatar:data by that id from
    alice's PEP service on Waddle and gets the photo's bytes; alice's presence reaching him
    carries the photo's XEP-0153 hash. The nodes the conversion publishes are open:
    carol@prosody, in nobody's roster, reads the metadata and the data too."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob", "carol"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await profile_client(w, "alice", plugins=("xep_0153",))
        bob = await profile_client(p, "bob", (NS_AVATAR_META,))
        carol = await profile_client(p, "carol")
        await befriend(alice, bob)
        A = alice.boundjid.bare
        avatar_id = hashlib.sha1(AVATAR).hexdigest()

        await alice["xep_0153"].set_avatar(avatar=AVATAR, mtype="image/png", timeout=TIMEOUT)

        item = await expect_event(bob, A, NS_AVATAR_META)
        assert_metadata(item, avatar_id)
        no_event(bob, NS_AVATAR_DATA)  # published before the metadata: it would be here
        assert await fetch_avatar(bob, A, avatar_id) == AVATAR

        # XEP-0153: the photo's hash in alice's available presence, as bob's client sees it
        pres = await bob.presences.get(
            lambda p: p["from"].bare == A and p["type"] == "available" and
            p.xml.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == avatar_id,
            TIMEOUT, f"{A}'s presence with the photo hash at bob")
        assert pres["from"].resource, str(pres)

        res = await carol["xep_0060"].get_items(A, NS_AVATAR_META, timeout=TIMEOUT)
        assert [i.get("id") for i in result_items(res)] == [avatar_id], str(res)
        assert_metadata(result_items(res)[0], avatar_id)
        assert await fetch_avatar(carol, A, avatar_id) == AVATAR
        no_errors(alice, bob, carol)

    run_async(body, timeout=150)


def test_waddle_xep0084_avatar_becomes_vcard_photo_for_prosody_reader(federation):
    """The other direction of XEP-0398: alice@waddle's XEP-0084 client publishes avatar data,
    then metadata naming it; bob@prosody (a stranger, Prosody with mod_vcard) reads alice's
    vCard over S2S and finds that picture as its PHOTO, with the metadata's type."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"],
                    extra_modules=PROSODY_PEP + PROSODY_VCARD)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await profile_client(w, "alice")
        bob = await profile_client(p, "bob")
        await alice["xep_0054"].publish_vcard(
            make_vcard(alice, "Alice of Waddle", PHOTO_2, "image/jpeg"), timeout=TIMEOUT)
        await publish_avatar(alice)
        v = await get_vcard(bob, alice.boundjid.bare)
        assert photo_of(v) == ("image/png", AVATAR), ET.tostring(v)
        assert v.findtext(f"{{{NS_VCARD}}}FN") == "Alice of Waddle", ET.tostring(v)
        no_errors(alice, bob)

    run_async(body, timeout=150)


def test_vcard4_in_pep_both_ways(federation):
    """XEP-0292 vCard4 in PEP, both ways. alice@waddle publishes <vcard/> to her
    urn:xmpp:vcard4 node (item 'current'); bob@prosody, her contact, whose client asks for
    urn:xmpp:vcard4+notify, is notified with the whole vCard and reads the node with an items
    request. Then bob publishes his to Prosody's PEP; alice, whose client asks for the same, is
    notified through Waddle and reads his node on Prosody."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await profile_client(w, "alice", (NS_VCARD4_NODE,))
        bob = await profile_client(p, "bob", (NS_VCARD4_NODE,))
        await befriend(alice, bob)
        A, B = alice.boundjid.bare, bob.boundjid.bare
        mine = {"fn": "Alice of Waddle", "nickname": "alice", "note": "federated vCard4"}
        his = {"fn": "Bob of Prosody", "nickname": "bob", "note": "from Prosody's PEP"}

        await alice["xep_0060"].publish(None, NS_VCARD4_NODE, id="current",
                                        payload=vcard4(*mine.values()), timeout=TIMEOUT)
        item = await expect_event(bob, A, NS_VCARD4_NODE)
        assert item.get("id") == "current" and vcard4_texts(item) == mine, ET.tostring(item)
        res = await bob["xep_0060"].get_items(A, NS_VCARD4_NODE, timeout=TIMEOUT)
        assert [(i.get("id"), vcard4_texts(i)) for i in result_items(res)] == [
            ("current", mine)], str(res)

        await bob["xep_0060"].publish(None, NS_VCARD4_NODE, id="current",
                                      payload=vcard4(*his.values()), timeout=TIMEOUT)
        item = await expect_event(alice, B, NS_VCARD4_NODE)
        assert item.get("id") == "current" and vcard4_texts(item) == his, ET.tostring(item)
        res = await alice["xep_0060"].get_items(B, NS_VCARD4_NODE, timeout=TIMEOUT)
        assert [(i.get("id"), vcard4_texts(i)) for i in result_items(res)] == [
            ("current", his)], str(res)
        no_errors(alice, bob)

    run_async(body, timeout=150)


def test_omemo_bundles_read_by_non_contacts(federation):
    """OMEMO (XEP-0384, legacy namespace) bundles: alice@waddle publishes the bundle of her
    device 1111 (about 100 pre-keys, some 6 KB) to eu.siacs.conversations.axolotl.bundles:1111
    with publish-options pubsub#access_model=open; bob@prosody, in nobody's roster, reads it
    with an items request over S2S and gets every key as published. The other way round, bob
    publishes the bundle of his device 2222 on Prosody the same way and alice reads it."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()

    async def body():
        alice = await profile_client(w, "alice")
        bob = await profile_client(p, "bob")
        for c in (alice, bob):
            assert await roster_get(c) == {}, f"{c.label} has contacts"

        for owner, reader, device in ((alice, bob, 1111), (bob, alice, 2222)):
            node = f"{NODE_BUNDLES}:{device}"
            published = bundle(device)
            await owner["xep_0060"].publish(None, node, id="current", payload=published,
                                            options=publish_options(access_model="open"),
                                            timeout=TIMEOUT)
            res = await reader["xep_0060"].get_items(owner.boundjid.bare, node,
                                                     timeout=TIMEOUT)
            items = result_items(res)
            assert [i.get("id") for i in items] == ["current"], str(res)
            wrapper = ET.Element("item")
            wrapper.append(published)
            assert bundle_summary(items[0]) == bundle_summary(wrapper), str(res)
            assert len(bundle_summary(items[0])[2]) == 100
        no_errors(alice, bob)

    run_async(body, timeout=150)


def test_bookmarks_stay_private(federation):
    """Bookmarks are the owner's alone. alice@waddle's XEP-0048 client stores two room
    bookmarks (and a URL) in private XML (XEP-0049); Waddle keeps the rooms as XEP-0402 items
    of urn:xmpp:bookmarks:1. Her XEP-0402 client (another resource, asking for
    urn:xmpp:bookmarks:1+notify) is notified of both rooms and reads them with an items
    request: one item per room JID with name, autojoin, nick and password. bob@prosody, her
    contact, whose client asks for urn:xmpp:bookmarks:1+notify (and the nick), is refused the
    node (not-allowed with closed-node, also by item id) and alice's private XML (forbidden),
    and is never notified of the bookmarks: the nick alice publishes afterwards reaches him with
    nothing of them before it."""
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"], extra_modules=PROSODY_PEP)
    w = fed.waddle("w-prof.test", "cert", users=["alice"])
    fed.start()
    rooms = {f"lobby@conference.{w.domain}": ("Lobby", True, "ally", None),
             "secret@conference.prosody.test": ("Secret", False, "al", "s3cret")}

    async def body():
        legacy = await profile_client(w, "alice", resource="legacy",
                                      plugins=("xep_0048", "xep_0049"))
        bob = await profile_client(p, "bob", (NS_BOOKMARKS2, NS_NICK))
        await befriend(legacy, bob)
        modern = await profile_client(w, "alice", (NS_BOOKMARKS2,), resource="modern")
        A = legacy.boundjid.bare

        marks = Bookmarks()
        for room, (name, autojoin, nick, password) in rooms.items():
            marks.add_conference(room, nick, name=name, autojoin=autojoin, password=password)
        marks.add_url("https://waddle.example/", name="Home")
        await legacy["xep_0048"].set_bookmarks(marks, method="xep_0049", timeout=TIMEOUT)

        # The XEP-0402 client: notified of each room, then reads them all.
        notified: dict[str, ET.Element] = {}
        while set(notified) != set(rooms):
            m = await modern.messages.get(lambda m: is_event(m, NS_BOOKMARKS2), TIMEOUT,
                                          "the XEP-0402 notifications of alice's rooms")
            assert m["from"].bare == A, str(m)
            notified.update((i.get("id"), i) for i in event_items(m, NS_BOOKMARKS2))
        res = await modern["xep_0060"].get_items(None, NS_BOOKMARKS2, timeout=TIMEOUT)
        items = {i.get("id"): i for i in result_items(res)}
        assert set(items) == set(rooms), str(res)
        for room, (name, autojoin, nick, password) in rooms.items():
            for i in (items[room], notified[room]):
                conf = i.find(f"{{{NS_BOOKMARKS2}}}conference")
                assert conf is not None, ET.tostring(i)
                assert conf.get("name") == name, ET.tostring(i)
                assert conf.get("autojoin", "false") in (("true", "1") if autojoin
                                                         else ("false", "0")), ET.tostring(i)
                assert conf.findtext(f"{{{NS_BOOKMARKS2}}}nick") == nick, ET.tostring(i)
                assert conf.findtext(f"{{{NS_BOOKMARKS2}}}password") == password, \
                    ET.tostring(i)
        # The XEP-0048 client reads back what it stored (the URL from private XML).
        res = await legacy["xep_0048"].get_bookmarks(method="xep_0049", timeout=TIMEOUT)
        back = res["private"]["bookmarks"]
        assert sorted(c["jid"] for c in back["conferences"]) == sorted(rooms), str(res)
        assert [u["url"] for u in back["urls"]] == ["https://waddle.example/"], str(res)

        # bob, her contact, is refused.
        assert await pubsub_error(bob["xep_0060"].get_items(
            A, NS_BOOKMARKS2, timeout=TIMEOUT)) == ("not-allowed", "closed-node")
        assert await pubsub_error(bob["xep_0060"].get_item(
            A, NS_BOOKMARKS2, f"lobby@conference.{w.domain}", timeout=TIMEOUT)) == (
            "not-allowed", "closed-node")
        iq = bob.make_iq_get(ito=A)
        ET.SubElement(iq.xml, f"{{{NS_PRIVATE}}}query").append(
            ET.Element("{storage:bookmarks}storage"))
        assert (await iq_error(iq.send(timeout=TIMEOUT)))[1] == "forbidden"

        # ... and never notified: the nick published after the bookmarks comes alone.
        await legacy["xep_0172"].publish_nick("Alice", timeout=TIMEOUT)
        nick = await expect_event(bob, A, NS_NICK)
        assert nick.findtext(f"{{{NS_NICK}}}nick") == "Alice", ET.tostring(nick)
        no_event(bob, NS_BOOKMARKS2)
        no_errors(legacy, modern, bob)

    run_async(body, timeout=150)
