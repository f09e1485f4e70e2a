"""Roster versioning (RFC 6121 §2.6) and the pre-approval stream feature (§3.4): slixmpp
with a roster cache as the real client, raw XML for the exact 'ver' attributes, and a
pre-approved subscription request that the server approves on the user's behalf.
Run: /usr/bin/python3 -m pytest tests/system/test_roster_versioning.py -q
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any, Optional

import pytest

from rawxmpp import NS_BIND, NS_SASL, RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, Client, Inbox, login, run

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
NS_CLIENT = "jabber:client"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


class RosterCache:
    """A slixmpp roster backend kept in memory across connections: the client's cache."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.versions: dict[str, str] = {}

    def entries(self, owner: Optional[str], db_state: Any = None) -> list[str]:
        if owner is None:
            return sorted({o for o, _ in self.items})
        return [j for o, j in self.items if o == owner]

    def load(self, owner: str, jid: str, db_state: Any) -> Optional[dict]:
        return self.items.get((owner, jid))

    def save(self, owner: str, jid: str, state: dict, db_state: Any) -> None:
        self.items[(owner, jid)] = dict(state)

    def version(self, owner: str) -> str:
        return self.versions.get(owner, "")

    def set_version(self, owner: str, ver: str) -> None:
        self.versions[owner] = ver


async def cached_client(server: Any, jid: str, cache: RosterCache) -> Client:
    """A client whose roster lives in `cache`; its roster results are kept in `c.results`."""
    c = Client(server, jid, PASSWORD)
    c.roster.set_backend(cache)
    c.results = Inbox(f"a roster result for {jid}")

    def keep_result(stanza: Any) -> Any:
        # As received: slixmpp's own roster handler adds an empty <query/> when it reads one.
        if (stanza.xml.tag == f"{{{NS_CLIENT}}}iq" and stanza.xml.get("type") == "result"
                and stanza.xml.get("from") is None
                and stanza.xml.find(f"{{{NS_BIND}}}bind") is None):
            c.results.put(copy.deepcopy(stanza.xml))
        return stanza

    c.add_filter("in", keep_result)
    await c.start()
    await c.online()
    return c


def roster_query(iq: Any) -> Optional[ET.Element]:
    xml = iq if isinstance(iq, ET.Element) else iq.xml
    return xml.find(f"{{{NS_ROSTER}}}query")


def test_slixmpp_cache_is_used_when_current_and_replaced_when_stale(users):
    """A client with a cached roster: the first login gets the whole roster with a version;
    a roster push carries the next version; logging in again with it gets an empty result
    (the cache is used); after a change made elsewhere, the whole roster again."""
    cache = RosterCache()

    async def body():
        alice = await cached_client(users, f"{ALICE}/phone", cache)
        assert "rosterver" in alice.features and "preapproval" in alice.features
        first = await alice.results.get()
        q = roster_query(first)
        assert q is not None and q.get("ver"), ET.tostring(first)
        await alice.roster_set(BOB, name="Bob")
        push = await alice.roster_pushes.get()
        pushed_ver = roster_query(push).get("ver")
        assert pushed_ver and pushed_ver != q.get("ver"), str(push)
        await alice.sync()
        assert cache.version(ALICE) == pushed_ver
        await alice.close()

        # Current cache: an empty result, and slixmpp keeps the cached item.
        alice = await cached_client(users, f"{ALICE}/phone", cache)
        again = await alice.results.get()
        assert roster_query(again) is None, ET.tostring(again)
        assert alice.client_roster[BOB]["name"] == "Bob"
        await alice.close()

        # The roster changes while that client is away: it gets the whole roster.
        other = await login(users, f"{ALICE}/laptop", PASSWORD)
        await other.roster_set(BOB, name="Robert")
        await other.close()
        alice = await cached_client(users, f"{ALICE}/phone", cache)
        stale = await alice.results.get()
        q = roster_query(stale)
        assert q is not None and q.get("ver") not in ("", pushed_ver), ET.tostring(stale)
        assert [i.get("name") for i in q] == ["Robert"], ET.tostring(stale)
        assert alice.client_roster[BOB]["name"] == "Robert"
        assert cache.version(ALICE) == q.get("ver")
    run(body)


def raw_login(server: Any, user: str) -> tuple[RawXmpp, ET.Element]:
    """A raw client logged in and bound; also returns the stream features after SASL."""
    raw = RawXmpp(server.ip, server.port, timeout=10)
    raw.tls_stream()
    assert raw.auth_plain(user, PASSWORD).tag == tag(NS_SASL, "success")
    features = raw.open_stream()
    raw.bind("raw")
    return raw, features


def roster_get(raw: RawXmpp, iq_id: str, ver: Optional[str]) -> ET.Element:
    attr = "" if ver is None else f" ver='{ver}'"
    raw.send(f"<iq type='get' id='{iq_id}'><query xmlns='{NS_ROSTER}'{attr}/></iq>")
    while True:
        el = raw.next_element()
        if el.tag == tag(NS_CLIENT, "iq") and el.get("id") == iq_id:
            return el


def test_raw_ver_attributes_and_stream_features(users):
    """The exact XML: both stream features after authentication, 'ver' on results and
    pushes, an empty result for the current version, the whole roster for any other."""
    raw, features = raw_login(users, "alice")
    try:
        assert features.find(tag(NS_ROSTERVER, "ver")) is not None, ET.tostring(features)
        assert features.find(tag(NS_PREAPPROVAL, "sub")) is not None, ET.tostring(features)
        r = roster_get(raw, "g1", None)  # a client without versioning still gets one
        q = r.find(tag(NS_ROSTER, "query"))
        assert r.get("type") == "result" and q is not None and len(q) == 0, ET.tostring(r)
        v0 = q.get("ver")
        assert v0, ET.tostring(r)
        raw.send(f"<iq type='set' id='s1'><query xmlns='{NS_ROSTER}'>"
                 f"<item jid='{BOB}' name='Bob'/></query></iq>")
        push = raw.next_element()
        assert push.get("type") == "set", ET.tostring(push)
        v1 = push.find(tag(NS_ROSTER, "query")).get("ver")
        assert v1 and v1 != v0, ET.tostring(push)
        assert raw.next_element().get("id") == "s1"

        current = roster_get(raw, "g2", v1)
        assert current.get("type") == "result" and len(current) == 0, ET.tostring(current)
        for i, ver in enumerate((v0, "", "no-such-version", "9999999")):
            full = roster_get(raw, f"g{3 + i}", ver)
            q = full.find(tag(NS_ROSTER, "query"))
            assert q is not None and q.get("ver") == v1, ET.tostring(full)
            assert [it.get("jid") for it in q] == [BOB], ET.tostring(full)

        raw.send(f"<iq type='set' id='s2'><query xmlns='{NS_ROSTER}'>"
                 f"<item jid='{BOB}' subscription='remove'/></query></iq>")
        push = raw.next_element()
        v2 = push.find(tag(NS_ROSTER, "query")).get("ver")
        assert v2 not in (v0, v1), ET.tostring(push)
        assert roster_get(raw, "g9", v2).find(tag(NS_ROSTER, "query")) is None
    finally:
        raw.close()


def test_pre_approved_subscription_request_is_approved_by_the_server(users):
    """RFC 6121 §3.4: alice approves bob before he asks; his request is then answered with
    'subscribed' by her server, and she is not asked."""
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        assert "preapproval" in alice.features
        alice.send_presence(pto=BOB, ptype="subscribed")
        push = await alice.roster_pushes.get()
        item = push.xml.find(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
        assert item.get("jid") == BOB and item.get("approved") == "true", str(push)

        await bob.roster_set(ALICE)
        bob.send_presence(pto=ALICE, ptype="subscribe")
        await bob.expect_presence(frm=ALICE, ptype="subscribed")
        await bob.expect_presence(frm=f"{ALICE}/home", ptype="available")
        push = await alice.roster_pushes.get(
            lambda p: p.xml.find(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item").get(
                "subscription") == "from")
        item = push.xml.find(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
        assert item.get("approved") is None, str(push)
        items = await bob.roster_items()
        assert items[ALICE]["subscription"] == "to", items
        await alice.sync()
        asked = alice.presences.take(lambda p: p["type"] == "subscribe")
        assert asked is None, f"alice was asked although she had approved: {asked}"
    run(body)


def test_roster_versions_survive_a_restart(users):
    """The version is stored with the roster: after a restart the same version is current."""
    raw, _ = raw_login(users, "alice")
    try:
        roster_get(raw, "g0", "")  # asks for the roster, so gets pushes
        raw.send(f"<iq type='set' id='s1'><query xmlns='{NS_ROSTER}'>"
                 f"<item jid='{BOB}'/></query></iq>")
        ver = raw.next_element().find(tag(NS_ROSTER, "query")).get("ver")
        assert raw.next_element().get("id") == "s1"
    finally:
        raw.close()
    users.restart()
    raw, _ = raw_login(users, "alice")
    try:
        r = roster_get(raw, "g1", ver)
        assert r.get("type") == "result" and len(r) == 0, ET.tostring(r)
    finally:
        raw.close()

