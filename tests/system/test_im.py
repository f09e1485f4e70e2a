"""Local instant messaging (RFC 6121) and server IQs (disco#info, ping, version)."""

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from waddle_client import (DOMAIN, NS_PING, PASSWORD, Client, bare, befriend, error_condition,
                           login, run)

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, CAROL):
        server.adduser(jid, PASSWORD)
    return server


def test_two_users_subscribe_to_each_other_and_see_presence(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await befriend(alice, bob)  # asserts every step, ends with subscription=both
        # each sees the other's presence change
        alice.send_presence(pshow="away", pstatus="lunch")
        await bob.expect_presence(frm=f"{ALICE}/home", ptype="available",
                                  where=lambda p: p["show"] == "away" and p["status"] == "lunch")
        bob.send_presence(pstatus="busy")
        await alice.expect_presence(frm=f"{BOB}/work", ptype="available",
                                    where=lambda p: p["status"] == "busy")
    run(body)


def test_subscription_request_pushes_roster_item_with_ask(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        alice.send_presence(pto=BOB, ptype="subscribe")
        await bob.expect_presence(frm=ALICE, ptype="subscribe")
        push = await alice.roster_pushes.get(
            lambda iq: BOB in [str(j) for j in iq["roster"]["items"]])
        item = push["roster"]["items"][BOB]
        assert item["subscription"] == "none" and item["ask"] == "subscribe", str(push)
    run(body)


def test_chat_messages_flow_both_ways(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        carol = await login(users, f"{CAROL}/distractor", PASSWORD)
        await befriend(alice, bob)
        alice.chat(BOB, "hello bob")
        m = await bob.expect_message(frm=f"{ALICE}/home", body="hello bob", mtype="chat")
        assert str(m["to"]) in (f"{BOB}/work", BOB), str(m)
        bob.chat(f"{ALICE}/home", "hi alice")
        await alice.expect_message(frm=f"{BOB}/work", body="hi alice", mtype="chat")
        # several messages keep their order
        for i in range(5):
            alice.chat(BOB, f"msg {i}")
        for i in range(5):
            m = await bob.messages.get(lambda m: m["body"].startswith("msg "))
            assert m["body"] == f"msg {i}"
        # the distractor received nothing
        await carol.sync()
        assert carol.messages.take(lambda m: m["body"]) is None, carol.messages.items
    run(body)


def test_messages_between_users_without_subscription_are_delivered(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        alice.chat(BOB, "no roster needed")
        await bob.expect_message(frm=f"{ALICE}/home", body="no roster needed")
    run(body)


def test_message_to_full_jid_reaches_only_that_resource(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        phone = await login(users, f"{BOB}/phone", PASSWORD)
        laptop = await login(users, f"{BOB}/laptop", PASSWORD)
        alice.chat(f"{BOB}/phone", "for the phone")
        alice.chat(f"{BOB}/laptop", "for the laptop")
        await phone.expect_message(frm=f"{ALICE}/home", body="for the phone")
        await laptop.expect_message(frm=f"{ALICE}/home", body="for the laptop")
        # alice's messages are routed in order, so a misrouted first message would have
        # reached the laptop before the second one
        assert laptop.messages.take(lambda m: m["body"] == "for the phone") is None
        await phone.sync()
        assert phone.messages.take(lambda m: m["body"] == "for the laptop") is None
    run(body)


def test_message_to_unknown_local_user_returns_service_unavailable(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        alice.chat(f"nobody@{DOMAIN}", "anyone there?")
        err = await alice.expect_message(frm=f"nobody@{DOMAIN}", mtype="error")
        assert error_condition(err) == "service-unavailable", str(err)
    run(body)


def test_roster_push_reaches_second_resource(users):
    async def body():
        first = await login(users, f"{ALICE}/first", PASSWORD)
        second = await login(users, f"{ALICE}/second", PASSWORD)
        await first.roster_set(CAROL, name="Carol")
        for c in (first, second):
            push = await c.roster_pushes.get(
                lambda iq: CAROL in [str(j) for j in iq["roster"]["items"]],
                what=f"roster push for carol to {c.boundjid}")
            assert push["roster"]["items"][CAROL]["name"] == "Carol", str(push)
            assert bare(push["from"]) in ("", ALICE), f"push from a foreign JID: {push}"
        items = await second.roster_items()
        assert items.get(CAROL, {}).get("name") == "Carol", items
    run(body)


def test_roster_survives_reconnect(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        await alice.roster_set(CAROL, name="Carol")
        await alice.close()
        again = await login(users, f"{ALICE}/home", PASSWORD)
        items = await again.roster_items()
        assert items.get(CAROL, {}).get("name") == "Carol", items
    run(body)


def test_initial_presence_is_reflected_to_sender_and_other_resources(users):
    async def body():
        first = await login(users, f"{ALICE}/first", PASSWORD)
        await first.expect_presence(frm=f"{ALICE}/first", ptype="available")
        second = await login(users, f"{ALICE}/second", PASSWORD)
        await first.expect_presence(frm=f"{ALICE}/second", ptype="available")
        await second.expect_presence(frm=f"{ALICE}/second", ptype="available")
    run(body)


def test_unavailable_presence_seen_when_contact_disconnects(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await befriend(alice, bob)
        await bob.close()
        await alice.expect_presence(frm=f"{BOB}/work", ptype="unavailable")
    run(body)


def test_unavailable_presence_seen_when_contact_connection_drops(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await befriend(alice, bob)
        bob.abort()  # TCP closed without </stream:stream>
        await alice.expect_presence(frm=f"{BOB}/work", ptype="unavailable")
    run(body)


def test_disco_info_of_server_lists_features(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD, online=False)
        info = await alice["xep_0030"].get_info(jid=DOMAIN, local=False, timeout=10)
        features = set(info["disco_info"]["features"])
        for f in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version"):
            assert f in features, f"{f} not in {sorted(features)}"
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        assert ("server", "im") in identities, identities
    run(body)


def test_ping_to_server_is_answered(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD, online=False)
        iq = alice.make_iq_get(ito=DOMAIN)
        iq.append(ET.Element(f"{{{NS_PING}}}ping"))
        try:
            result = await iq.send(timeout=10)
        except IqError as e:
            raise AssertionError(f"ping answered with an error: {e.iq}") from None
        assert result["type"] == "result"
        assert str(result["from"]) in (DOMAIN, ""), str(result)
    run(body)


def test_software_version_is_waddle(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD, online=False)
        result = await alice["xep_0092"].get_version(DOMAIN, timeout=10)
        version = result["software_version"]
        assert version["name"] == "Waddle", str(result)
        assert version["version"], str(result)
    run(body)


def test_iq_to_unknown_local_user_returns_service_unavailable(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD, online=False)
        iq = alice.make_iq_get(queryxmlns="jabber:iq:version", ito=f"nobody@{DOMAIN}/res")
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert error_condition(exc.value.iq) == "service-unavailable", str(exc.value.iq)
    run(body)


def test_contact_presence_probed_at_login(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await befriend(alice, bob)
        await alice.close()
        # at alice's next initial presence the server probes bob and sends his presence
        again = await login(users, f"{ALICE}/home", PASSWORD)
        await again.expect_presence(frm=f"{BOB}/work", ptype="available")
        await bob.expect_presence(frm=f"{ALICE}/home", ptype="available")
    run(body)


def test_unsubscribed_cancels_contact_subscription(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob = await login(users, f"{BOB}/work", PASSWORD)
        await befriend(alice, bob)
        alice.send_presence(pto=BOB, ptype="unsubscribed")  # bob may no longer see alice
        await bob.expect_presence(frm=ALICE, ptype="unsubscribed")
        await bob.expect_presence(frm=f"{ALICE}/home", ptype="unavailable")
        await bob.roster_pushes.get(
            lambda iq: (iq["roster"]["items"].get(ALICE) or {}).get("subscription") == "from",
            what="roster push with subscription=from")
        assert (await bob.roster_items())[ALICE]["subscription"] == "from"
        assert (await alice.roster_items())[BOB]["subscription"] == "to"
    run(body)


def test_message_to_bare_jid_skips_negative_priority_resource(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        bob_main = await login(users, f"{BOB}/main", PASSWORD)
        bob_neg = await login(users, f"{BOB}/hidden", PASSWORD, online=False)
        await bob_neg.get_roster(timeout=10)
        bob_neg.send_presence(ppriority=-1)
        await bob_neg.sync()
        alice.chat(BOB, "to the bare jid")
        alice.chat(f"{BOB}/hidden", "to the hidden resource")
        await bob_main.expect_message(frm=f"{ALICE}/home", body="to the bare jid")
        await bob_neg.expect_message(frm=f"{ALICE}/home", body="to the hidden resource")
        # RFC 6121 8.5.2.1.1: never to a resource with negative priority
        assert bob_neg.messages.take(lambda m: m["body"] == "to the bare jid") is None
    run(body)


def test_error_message_to_unknown_local_user_is_not_answered(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        err = alice.make_message(mto=f"nobody@{DOMAIN}", mtype="error", mbody="bounce")
        err["id"] = "error-1"
        err["error"]["condition"] = "item-not-found"
        err["error"]["type"] = "cancel"
        err.send()
        chat = alice.make_message(mto=f"nobody@{DOMAIN}", mtype="chat", mbody="hello")
        chat["id"] = "chat-2"
        chat.send()
        bounce = await alice.messages.get(lambda m: m["type"] == "error")
        assert bounce["id"] == "chat-2", f"an error stanza was answered with an error: {bounce}"
    run(body)


def test_disco_info_of_own_account(users):
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD, online=False)
        info = await alice["xep_0030"].get_info(jid=ALICE, local=False, timeout=10)
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        assert ("account", "registered") in identities, identities
    run(body)


def test_same_resource_twice_leaves_one_reachable_session(users):
    """RFC 6120 7.7.2.2: the server either replaces the old session (conflict stream error),
    gives the new one another resource, or refuses the new bind; in every case one session
    owns the full JID."""
    async def body():
        alice = await login(users, f"{ALICE}/home", PASSWORD)
        first = await login(users, f"{BOB}/same", PASSWORD)
        second = Client(users, f"{BOB}/same", PASSWORD)
        started = await second.attempt()
        if started and second.boundjid.resource == "same":
            await first.wait_disconnected()
            assert "conflict" in first.stream_errors, first.describe()
            owner = second
        elif started:
            owner = first
        else:
            owner = first
        assert not owner.gone, owner.describe()
        await owner.sync()
        alice.chat(f"{BOB}/same", "who has it?")
        await owner.expect_message(frm=f"{ALICE}/home", body="who has it?")
    run(body)


def test_pending_subscription_requests_are_bounded(make_server):
    """[c2s] max_pending_subscriptions bounds the unanswered requests an account keeps from
    contacts not in its roster (each is stored until answered): one more bounces to its
    sender with resource-constraint. The user sees every request that was kept, at login."""
    server = make_server({"c2s": {"max_pending_subscriptions": 3}})
    askers = [f"asker{i}@{DOMAIN}" for i in range(5)]
    for jid in [ALICE] + askers:
        server.adduser(jid, PASSWORD)

    outcome = run(lambda: subscription_requests(server, askers, ALICE))
    kept = [j for j, o in outcome.items() if o == "kept"]
    bounced = [j for j, o in outcome.items() if o == "resource-constraint"]
    assert len(kept) == 3 and len(bounced) == 2, outcome
    run(lambda: requests_shown_at_login(server, f"{ALICE}/home", kept, bounced))


async def subscription_requests(server, askers: list[str], target: str) -> dict[str, str]:
    """Each of `askers` (accounts no one else uses) logs in, asks `target` (offline) for a
    subscription and logs out once the request was processed: {asker: "kept" or the error
    condition it was bounced with}."""
    outcome = {}
    for jid in askers:
        c = await login(server, f"{jid}/r", PASSWORD)
        c.send_presence(pto=target, ptype="subscribe")
        # Processed either way within the deadline: stored in the target's roster (the only
        # place the asker's JID is written) or bounced back.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            err = c.presences.take(lambda p: p.xml.get("type") == "error")
            if err is not None:
                outcome[jid] = error_condition(err)
                break
            if await asyncio.to_thread(server.db_contains, jid):
                outcome[jid] = "kept"
                break
            assert loop.time() < deadline, f"the request of {jid} was neither kept nor bounced"
            await asyncio.sleep(0.05)
        await c.close()
    return outcome


async def requests_shown_at_login(server, jid: str, kept: list[str], bounced: list[str]):
    """`jid` logs in and is shown every kept subscription request, none that bounced.
    Returns the client."""
    client = await login(server, jid, PASSWORD)
    for asker in kept:
        await client.expect_presence(frm=asker, ptype="subscribe")
    await client.sync()
    assert client.presences.take(
        lambda p: p.xml.get("type") == "subscribe" and bare(p["from"]) in bounced) is None
    return client
