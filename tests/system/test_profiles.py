"""Profiles and private data: private XML (XEP-0049), bookmarks kept in sync between XEP-0048
and XEP-0402, vcard-temp (XEP-0054) and its conversion to and from XEP-0084 avatars
(XEP-0398, so XEP-0153 clients and PEP clients see each other's pictures).

slixmpp's own plugins are the clients where it has them (xep_0049, xep_0048, xep_0054,
xep_0060, xep_0084); what a client of either kind sees is asserted.

Run: /usr/bin/python3 -m pytest tests/system/test_profiles.py -q
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0048 import Bookmarks

from test_pep import NS_AVATAR_DATA, NS_AVATAR_META, NS_EVENT, NS_PUBSUB, expect_event, item_ids
from waddle_client import DOMAIN, PASSWORD, TIMEOUT, Client, befriend, run

NS_PRIVATE = "jabber:iq:private"
NS_BOOKMARKS = "storage:bookmarks"
NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1"
NS_VCARD = "vcard-temp"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


async def client(server, jid: str, interests: tuple[str, ...] = (), resource: str = "") -> Client:
    c = Client(server, f"{jid}/{resource}" if resource else jid, PASSWORD)
    for p in ("xep_0049", "xep_0048", "xep_0054", "xep_0060", "xep_0115", "xep_0163"):
        c.register_plugin(p)
    await c.start()
    for ns in interests:
        c["xep_0030"].add_feature(f"{ns}+notify")
    await c["xep_0115"].update_caps(broadcast=False)
    await c.online()
    return c


def condition(refused: pytest.ExceptionInfo) -> str:
    return refused.value.iq["error"]["condition"]


async def private(c: Client, ptype: str, *elements: ET.Element, to: str = "") -> ET.Element:
    iq = c.make_iq_set() if ptype == "set" else c.make_iq_get()
    if to:
        iq["to"] = to
    query = ET.SubElement(iq.xml, f"{{{NS_PRIVATE}}}query")
    for e in elements:
        query.append(e)
    result = await iq.send(timeout=TIMEOUT)
    return result.xml.find(f"{{{NS_PRIVATE}}}query")


async def vcard(c: Client, ptype: str, jid: str, card: ET.Element | None = None) -> ET.Element:
    iq = c.make_iq_set(ito=jid) if ptype == "set" else c.make_iq_get(ito=jid)
    iq.xml.append(card if card is not None else ET.Element(f"{{{NS_VCARD}}}vCard"))
    result = await iq.send(timeout=TIMEOUT)
    return result.xml.find(f"{{{NS_VCARD}}}vCard")


def vcard_with(fn: str, photo: bytes | None) -> ET.Element:
    card = ET.Element(f"{{{NS_VCARD}}}vCard")
    ET.SubElement(card, f"{{{NS_VCARD}}}FN").text = fn
    if photo is not None:
        p = ET.SubElement(card, f"{{{NS_VCARD}}}PHOTO")
        ET.SubElement(p, f"{{{NS_VCARD}}}TYPE").text = "image/png"
        # Folded as vCards often are: the server reads through the line breaks.
        b64 = base64.b64encode(photo).decode()
        ET.SubElement(p, f"{{{NS_VCARD}}}BINVAL").text = "\n".join(
            b64[i:i + 76] for i in range(0, len(b64), 76))
    return card


def photo_of(card: ET.Element) -> bytes | None:
    binval = card.findtext(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}BINVAL")
    return base64.b64decode("".join(binval.split())) if binval else None


def test_private_xml_is_per_namespace_and_the_owners_only(users):
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB)
        a = ET.Element("{urn:test:a}prefs", {"v": "1"})
        ET.SubElement(a, "{urn:test:a}x").text = "kept"
        await private(alice, "set", a, ET.Element("{urn:test:b}other"))
        got = await private(alice, "get", ET.Element("{urn:test:a}prefs"))
        assert got.find("{urn:test:a}prefs/{urn:test:a}x").text == "kept"
        assert got.find("{urn:test:a}prefs").get("v") == "1"
        # Nothing stored: the empty element.
        empty = await private(alice, "get", ET.Element("{urn:test:c}none"))
        assert len(list(empty.find("{urn:test:c}none"))) == 0
        # Replaced as a whole.
        await private(alice, "set", ET.Element("{urn:test:a}prefs", {"v": "2"}))
        got = await private(alice, "get", ET.Element("{urn:test:a}prefs"))
        assert got.find("{urn:test:a}prefs").get("v") == "2"
        assert got.find("{urn:test:a}prefs/{urn:test:a}x") is None
        # §3: another user's data, the protocol's own namespaces, nothing to get.
        with pytest.raises(IqError) as refused:
            await private(bob, "get", ET.Element("{urn:test:a}prefs"), to=ALICE)
        assert condition(refused) == "forbidden"
        with pytest.raises(IqError) as refused:
            await private(alice, "set", ET.Element("{jabber:iq:roster}query"))
        assert condition(refused) == "not-acceptable"
        with pytest.raises(IqError) as refused:
            await private(alice, "get")
        assert condition(refused) == "bad-request"
    run(body)


def test_bookmarks_stay_in_sync_between_xep_0048_and_xep_0402(users):
    """A client of XEP-0048 (in private XML) and one of XEP-0402 (PEP) of the same account see
    the same rooms: the first's set is published as XEP-0402 items (the second is notified),
    the second's publish and retract are what the first reads back; <url/>s stay."""
    async def body():
        legacy = await client(users, ALICE, resource="legacy")
        modern = await client(users, ALICE, (NS_BOOKMARKS2,), resource="modern")
        info = await modern["xep_0030"].get_info(jid=ALICE)
        assert f"{NS_BOOKMARKS2}#compat" in info["disco_info"]["features"]

        marks = Bookmarks()
        marks.add_conference("one@conference.example.test", "al", name="One", autojoin=True)
        marks.add_conference("two@conference.example.test", "al2")
        marks.add_url("https://example.test/", name="site")
        await legacy["xep_0048"].set_bookmarks(marks)
        seen = set()
        for _ in range(2):
            items = await expect_event(modern, ALICE, NS_BOOKMARKS2)
            seen.add(items.find(f"{{{NS_EVENT}}}item").get("id"))
        assert seen == {"one@conference.example.test", "two@conference.example.test"}
        got = await modern["xep_0060"].get_items(ALICE, NS_BOOKMARKS2)
        confs = {i.get("id"): i.find(f"{{{NS_BOOKMARKS2}}}conference")
                 for i in got.xml.iter(f"{{{NS_PUBSUB}}}item")}
        assert confs["one@conference.example.test"].get("name") == "One"
        assert confs["one@conference.example.test"].get("autojoin") in ("true", "1")
        assert confs["one@conference.example.test"].findtext(f"{{{NS_BOOKMARKS2}}}nick") == "al"

        # The XEP-0402 client adds a room and removes one, as XEP-0402 §3 says.
        conf = ET.Element(f"{{{NS_BOOKMARKS2}}}conference", {"name": "Three", "autojoin": "true"})
        ET.SubElement(conf, f"{{{NS_BOOKMARKS2}}}nick").text = "al3"
        form = Form()
        form["type"] = "submit"
        form.add_field(var="FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/pubsub#publish-options")
        form.add_field(var="pubsub#access_model", value="whitelist")
        await modern["xep_0060"].publish(None, NS_BOOKMARKS2, id="three@conference.example.test",
                                         payload=conf, options=form)
        await modern["xep_0060"].retract(None, NS_BOOKMARKS2, "two@conference.example.test",
                                         notify=True)
        result = await legacy["xep_0048"].get_bookmarks()
        storage = result.xml.find(f"{{{NS_PRIVATE}}}query/{{{NS_BOOKMARKS}}}storage")
        rooms = {c.get("jid"): c for c in storage.findall(f"{{{NS_BOOKMARKS}}}conference")}
        assert set(rooms) == {"one@conference.example.test", "three@conference.example.test"}
        assert rooms["three@conference.example.test"].findtext(f"{{{NS_BOOKMARKS}}}nick") == "al3"
        assert rooms["three@conference.example.test"].get("autojoin") in ("true", "1")
        assert [u.get("url") for u in storage.findall(f"{{{NS_BOOKMARKS}}}url")] == [
            "https://example.test/"]

        # The legacy client removes "one": retracted for the XEP-0402 client.
        marks = Bookmarks()
        marks.add_conference("three@conference.example.test", "al3", name="Three",
                             autojoin=True)
        await legacy["xep_0048"].set_bookmarks(marks)
        # (Events of the earlier changes come first: the publish of three, the retract of two.)
        def retract_of(items):
            r = items.find(f"{{{NS_EVENT}}}retract")
            return r.get("id") if r is not None else None
        retracted = await expect_event(modern, ALICE, NS_BOOKMARKS2)
        while retract_of(retracted) != "one@conference.example.test":
            assert retract_of(retracted) in (None, "two@conference.example.test"), \
                ET.tostring(retracted)
            retracted = await expect_event(modern, ALICE, NS_BOOKMARKS2)
        assert item_ids(await modern["xep_0060"].get_items(ALICE, NS_BOOKMARKS2)) == [
            "three@conference.example.test"]
        # The node is the owner's only (XEP-0402 §3: whitelist).
        bob = await client(users, BOB)
        with pytest.raises(IqError) as refused:
            await bob["xep_0060"].get_items(ALICE, NS_BOOKMARKS2)
        assert condition(refused) == "not-allowed"
    run(body)


def test_a_vcard_photo_becomes_the_avatar_and_an_avatar_the_vcard_photo(users):
    """XEP-0398: bob sets a vCard with a photo (XEP-0153 client); alice, whose client asks for
    avatar metadata (XEP-0084 client), is notified of an avatar whose id is the photo's SHA-1
    and fetches the same bytes. Then bob publishes a new avatar with XEP-0084: his vCard's
    photo is the new one. Anyone reads a vCard; only its owner sets it."""
    async def body():
        alice = await client(users, ALICE, (NS_AVATAR_META,))
        bob = await client(users, BOB)
        await befriend(alice, bob)
        info = await alice["xep_0030"].get_info(jid=BOB)
        assert "urn:xmpp:pep-vcard-conversion:0" in info["disco_info"]["features"]
        # No vCard yet: an empty one.
        empty = await vcard(alice, "get", BOB)
        assert empty is not None and len(list(empty)) == 0

        await vcard(bob, "set", BOB, vcard_with("Bob B.", PNG))
        sha = hashlib.sha1(PNG).hexdigest()
        items = await expect_event(alice, BOB, NS_AVATAR_META)
        info_el = items.find(f"{{{NS_EVENT}}}item/{{{NS_AVATAR_META}}}metadata/"
                             f"{{{NS_AVATAR_META}}}info")
        assert info_el.get("id") == sha and info_el.get("bytes") == str(len(PNG))
        data = await alice["xep_0060"].get_items(BOB, NS_AVATAR_DATA, item_ids=[sha])
        text = data.xml.find(f".//{{{NS_AVATAR_DATA}}}data").text
        assert base64.b64decode(text) == PNG
        card = await vcard(alice, "get", BOB)
        assert card.findtext(f"{{{NS_VCARD}}}FN") == "Bob B." and photo_of(card) == PNG
        # The same vCard again: the avatar is that one already, nothing is published.
        await vcard(bob, "set", BOB, vcard_with("Bob B.", PNG))

        # XEP-0084 publish (data, then metadata): the vCard follows.
        new = b"\x89PNG\r\n\x1a\n" + b"new picture"
        new_sha = hashlib.sha1(new).hexdigest()
        data_el = ET.Element(f"{{{NS_AVATAR_DATA}}}data")
        data_el.text = base64.b64encode(new).decode()
        await bob["xep_0060"].publish(None, NS_AVATAR_DATA, id=new_sha, payload=data_el)
        meta = ET.Element(f"{{{NS_AVATAR_META}}}metadata")
        ET.SubElement(meta, f"{{{NS_AVATAR_META}}}info",
                      {"id": new_sha, "bytes": str(len(new)), "type": "image/png"})
        await bob["xep_0060"].publish(None, NS_AVATAR_META, id=new_sha, payload=meta)
        items = await expect_event(alice, BOB, NS_AVATAR_META)
        assert items.find(f"{{{NS_EVENT}}}item").get("id") == new_sha, (
            "the unchanged vCard must not have published the avatar again")
        card = await vcard(alice, "get", BOB)
        assert photo_of(card) == new and card.findtext(f"{{{NS_VCARD}}}FN") == "Bob B."

        with pytest.raises(IqError) as refused:
            await vcard(alice, "set", BOB, vcard_with("not bob", None))
        assert condition(refused) == "forbidden"
        with pytest.raises(IqError) as refused:
            await vcard(alice, "get", f"nobody@{DOMAIN}")
        assert condition(refused) == "service-unavailable"

        # A vCard without a photo: the avatar is withdrawn (empty metadata, XEP-0084 §4.2).
        await vcard(bob, "set", BOB, vcard_with("Bob B.", None))
        items = await expect_event(alice, BOB, NS_AVATAR_META)
        meta = items.find(f"{{{NS_EVENT}}}item/{{{NS_AVATAR_META}}}metadata")
        assert meta is not None and meta.find(f"{{{NS_AVATAR_META}}}info") is None
    run(body)


def test_vcards_and_private_xml_outlive_a_restart(users):
    async def body():
        alice = await client(users, ALICE)
        await vcard(alice, "set", ALICE, vcard_with("Alice", PNG))
        await private(alice, "set", ET.Element("{urn:test:a}prefs", {"v": "kept"}))
    run(body)
    users.restart()

    async def after():
        bob = await client(users, BOB)
        card = await vcard(bob, "get", ALICE)
        assert card.findtext(f"{{{NS_VCARD}}}FN") == "Alice" and photo_of(card) == PNG
        alice = await client(users, ALICE)
        got = await private(alice, "get", ET.Element("{urn:test:a}prefs"))
        assert got.find("{urn:test:a}prefs").get("v") == "kept"
    run(after)


NS_UPDATE = "vcard-temp:x:update"


def photo_hash(presence):
    x = presence.xml.find(f"{{{NS_UPDATE}}}x")
    if x is None:
        return None
    return x.findtext(f"{{{NS_UPDATE}}}photo")


def test_the_server_puts_the_avatar_hash_into_presence(users):
    """XEP-0398 §4: once bob has an avatar, his available presence carries its hash, to his
    contacts, to himself and in directed presence (a room join), even when his client sends
    none; a client saying <photo/> (no avatar) is left alone."""
    async def body():
        alice = await client(users, ALICE)
        bob = await client(users, BOB)
        await befriend(alice, bob)
        await vcard(bob, "set", BOB, vcard_with("Bob", PNG))
        sha = hashlib.sha1(PNG).hexdigest()
        bob.send_presence(pstatus="with a picture")
        seen = await alice.expect_presence(frm=str(bob.boundjid),
                                           where=lambda p: p["status"] == "with a picture")
        assert photo_hash(seen) == sha, str(seen)
        own = await bob.expect_presence(frm=str(bob.boundjid),
                                        where=lambda p: p["status"] == "with a picture")
        assert photo_hash(own) == sha, str(own)
        # A new session of bob's: its first presence carries the hash too.
        phone = await client(users, BOB, resource="phone")
        seen = await alice.expect_presence(frm=str(phone.boundjid), ptype="available")
        assert photo_hash(seen) == sha, str(seen)
        # <photo/>: the client says it has none; the server does not contradict it.
        p = bob.make_presence(pstatus="no picture")
        ET.SubElement(ET.SubElement(p.xml, f"{{{NS_UPDATE}}}x"), f"{{{NS_UPDATE}}}photo")
        p.send()
        seen = await alice.expect_presence(frm=str(bob.boundjid),
                                           where=lambda p: p["status"] == "no picture")
        assert photo_hash(seen) == "", str(seen)
        # Directed presence: a room join.
        room = f"pics@conference.{DOMAIN}"
        join = bob.make_presence(pto=f"{room}/Bob")
        ET.SubElement(join.xml, "{http://jabber.org/protocol/muc}x")
        join.send()
        self_presence = await bob.expect_presence(frm=f"{room}/Bob", ptype="available")
        assert photo_hash(self_presence) == sha, str(self_presence)
    run(body)
