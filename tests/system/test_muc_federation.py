"""Federated rooms and identity verification between real Waddle servers (spec "Federated MUC"
and "Identity Verification"): users of another server join rooms over S2S, rooms track them as
remote occupants, a room can demand a federated credential signed by the user's home server
and confirmed by it over S2S, forged or borrowed credentials are refused, and an occupant whose
server dies is removed. Private CA, dnsmasq, loopback addresses; waits have deadlines and are
on what clients see or on /metrics, except one log line that an operator reads (it says so)."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from federation import (AUTHENTICATED, FAST_RETRY, RawS2s, await_metric, await_operator_log,
                        metric_sum, wait_metric)
from muc import (NS_IDENTITY, codes, condition, error_text, groupchat, item, join, join_error,
                 leave)
from waddle_client import PASSWORD, login, run

A, B, C = "a.test", "b.test", "c.test"
ALICE, BOB, CAROL = f"alice@{A}", f"bob@{B}", f"carol@{C}"
ROOM = f"lobby@conference.{A}"


def servers_a_and_b(fed):
    """Started Waddles for a.test (user alice, the room service) and b.test (user bob)."""
    a = fed.server(A, users=("alice",))
    b = fed.server(B, users=("bob",))
    fed.start()
    return a, b


def metric(srv, name: str, labels: str = "") -> float:
    text = srv.metrics_text()
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert m, f"{name}{labels} not in /metrics:\n{text}"
    return float(m.group(1))


# Federated credentials a room service checked ({result="valid"|"refused"}). With
# verify_with_home_server (the default), "valid" counts only once the user's home server has
# answered the room's <verify/> with an <identity/> for that user.
CREDENTIALS = "waddle_identity_credentials_checked_total"


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def fetch_credential(client, audience: str = "") -> str:
    iq = client.make_iq_get(ito=client.boundjid.domain)
    q = ET.SubElement(iq.xml, f"{{{NS_IDENTITY}}}credential")
    if audience:
        q.set("audience", audience)
    result = await iq.send(timeout=10)
    return result.xml.find(f"{{{NS_IDENTITY}}}credential").text


def test_remote_user_joins_local_room_and_chats(fed):
    a, b = servers_a_and_b(fed)

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        groupchat(alice, ROOM, "before bob")
        await alice.expect_message(frm=f"{ROOM}/Alice", body="before bob")

        # Bob joins over S2S: he gets Alice's presence, his own, the history and the subject.
        own = await join(bob, ROOM, "Bob", timeout=20)
        assert item(own).get("role") == "participant", str(own)
        await bob.expect_presence(frm=f"{ROOM}/Alice", ptype="available")
        hist = await bob.expect_message(frm=f"{ROOM}/Alice", body="before bob")
        assert hist.xml.find("{urn:xmpp:delay}delay") is not None
        seen = await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        assert item(seen).get("jid") == f"{BOB}/work", str(seen)  # Alice moderates

        groupchat(bob, ROOM, "hello from b")
        groupchat(alice, ROOM, "hello from a")
        for c in (alice, bob):
            await c.expect_message(frm=f"{ROOM}/Bob", body="hello from b", mtype="groupchat")
            await c.expect_message(frm=f"{ROOM}/Alice", body="hello from a", mtype="groupchat")
        # Private message to the remote occupant and back.
        alice.send_message(mto=f"{ROOM}/Bob", mbody="psst", mtype="chat")
        await bob.expect_message(frm=f"{ROOM}/Alice", body="psst")
        bob.send_message(mto=f"{ROOM}/Alice", mbody="yes?", mtype="chat")
        await alice.expect_message(frm=f"{ROOM}/Bob", body="yes?")

        # The room tracks Bob as a remote occupant; his home server vouched for him.
        assert metric(a, "waddle_muc_occupants", '{origin="remote"}') == 1
        assert metric(a, "waddle_muc_occupants", '{origin="local"}') == 1
        await await_metric(a, CREDENTIALS, result="valid")

        leave(bob, ROOM, "Bob")
        gone = await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
        assert "110" not in codes(gone)
        assert metric(a, "waddle_muc_occupants", '{origin="remote"}') == 0
    run(body)


def test_iq_to_a_remote_occupant_crosses_both_servers_and_returns(fed):
    """XEP-0045 §17.4 across federation: Alice's software-version query to room/Bob leaves
    the room for Bob's server and his client; the answer comes back over S2S to the room and
    on to Alice from room/Bob. Bob's vCard query to room/Alice reaches Alice's account on the
    room's own server, and its answer goes out to Bob over S2S."""
    a, b = servers_a_and_b(fed)

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob", timeout=20)
        version = await alice["xep_0092"].get_version(f"{ROOM}/Bob", timeout=20)
        assert str(version["from"]) == f"{ROOM}/Bob", str(version)
        assert version["software_version"]["name"], str(version)
        # Alice's vCard, kept by her server (XEP-0054), is what Bob's lookup finds.
        own = alice.make_iq_set()
        ET.SubElement(ET.SubElement(own.xml, "{vcard-temp}vCard"), "{vcard-temp}FN").text = "A."
        await own.send(timeout=20)
        iq = bob.make_iq_get(ito=f"{ROOM}/Alice")
        ET.SubElement(iq.xml, "{vcard-temp}vCard")
        answer = await iq.send(timeout=20)
        assert str(answer["from"]) == f"{ROOM}/Alice", str(answer)
        assert answer.xml.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "A.", str(answer)
    run(body)


def test_remote_users_cannot_create_rooms_and_get_defined_errors(fed):
    a, b = servers_a_and_b(fed)

    async def body():
        bob = await login(b, f"{BOB}/work", PASSWORD)
        err = await join_error(bob, f"new@conference.{A}", "Bob", timeout=20)
        assert condition(err) == "not-allowed", str(err)
        groupchat(bob, f"nowhere@conference.{A}", "hi")
        err = await bob.messages.get(lambda m: m["type"] == "error", what="item-not-found")
        assert condition(err) == "item-not-found", str(err)
    run(body)


def test_room_requiring_credentials_checks_them_with_the_home_server(fed):
    a = fed.server(A, users=("alice",), overrides={"muc": {"require_credential": True}})
    b = fed.server(B, users=("bob",))
    c = fed.server(C, users=("carol",), overrides={"identity": {"enabled": False}})
    fed.start()

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        carol = await login(c, f"{CAROL}/desk", PASSWORD)
        await join(alice, ROOM, "Alice")  # local users need no credential

        # b.test vouches for Bob: a.test fetches b.test's key over S2S, checks the signature,
        # and asks b.test to confirm (urn:waddle:identity verify).
        await join(bob, ROOM, "Bob", timeout=20)
        # Checked, and confirmed by b.test when asked over S2S (see CREDENTIALS).
        assert metric(a, CREDENTIALS, '{result="valid"}') == 1

        # c.test issues no credentials: Carol is refused with the reason.
        err = await join_error(carol, ROOM, "Carol", timeout=20)
        assert condition(err) == "not-authorized", str(err)
        assert "credential" in error_text(err), str(err)

        # A credential whose signature was altered is refused.
        leave(bob, ROOM, "Bob")
        await bob.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable")
        token = await fetch_credential(bob, audience=f"conference.{A}")
        claims = jwt_claims(token)
        assert claims["iss"] == B and claims["sub"] == BOB, claims
        head, payload, sig = token.split(".")
        forged = ".".join((head, payload, ("A" if sig[0] != "A" else "B") + sig[1:]))
        err = await join_error(bob, ROOM, "Bob", credential=forged, timeout=20)
        assert condition(err) == "not-authorized" and "signature" in error_text(err), str(err)

        # Bob's credential presented by Carol is refused: b.test did not issue it for her.
        err = await join_error(carol, ROOM, "Carol", credential=token, timeout=20)
        assert condition(err) == "not-authorized", str(err)
        assert not [p for p in alice.presences.items if str(p["from"]) == f"{ROOM}/Carol"]

        # The genuine one works.
        await join(bob, ROOM, "Bob", credential=token, timeout=20)
        assert metric(a, "waddle_identity_credentials_checked_total", '{result="refused"}') >= 3
    run(body)


def test_home_server_publishes_its_identity_key_over_s2s(fed):
    a, b = servers_a_and_b(fed)

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        iq = alice.make_iq_get(ito=B)
        ET.SubElement(iq.xml, f"{{{NS_IDENTITY}}}key")
        result = await iq.send(timeout=20)
        key = result.xml.find(f"{{{NS_IDENTITY}}}key")
        assert key is not None and key.get("algorithm") == "Ed25519", str(result)
        assert len(base64.b64decode(key.text)) == 32
        # Credentials are issued only to the server's own users.
        iq = alice.make_iq_get(ito=B)
        ET.SubElement(iq.xml, f"{{{NS_IDENTITY}}}credential")
        with pytest.raises(IqError) as e:
            await iq.send(timeout=20)
        assert e.value.condition == "forbidden"
    run(body)


def test_occupant_whose_server_died_is_removed(fed):
    a = fed.server(A, users=("alice",), s2s={"retry": FAST_RETRY})
    b = fed.server(B, users=("bob",))
    fed.start()

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob", timeout=20)
        await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="available")
        b.kill9()
        # The next message cannot reach Bob; the bounce removes the ghost (status 333).
        groupchat(alice, ROOM, "anyone there?")
        gone = await alice.expect_presence(frm=f"{ROOM}/Bob", ptype="unavailable", timeout=30)
        assert "333" in codes(gone), str(gone)
        assert metric(a, "waddle_muc_occupants", '{origin="remote"}') == 0
    run(body)


def test_room_service_multiplexes_on_the_domains_stream(fed):
    """XEP-0220 2.6: the room service's traffic to b.test rides on the stream a.test already
    has to b.test (a db:result for the new pair), instead of a second connection."""
    a, b = servers_a_and_b(fed)

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        alice.send_message(mto=f"{BOB}/work", mbody="hi bob", mtype="chat")
        await bob.expect_message(frm=f"{ALICE}/home", body="hi bob", timeout=20)
        await await_metric(a, AUTHENTICATED, domain=B, direction="out", method="sasl_external")
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob", timeout=20)
        await await_metric(a, AUTHENTICATED, domain=B, direction="out",
                           method="dialback_multiplexed")
        await await_metric(b, AUTHENTICATED, domain=f"conference.{A}", direction="in",
                           method="dialback_multiplexed")
        groupchat(alice, ROOM, "over one stream")
        await bob.expect_message(frm=f"{ROOM}/Alice", body="over one stream")
        # b.test accepted one stream from a.test's server, not two.
        text_a, text_b = a.metrics_text(), b.metrics_text()
        assert metric_sum(text_a, AUTHENTICATED, direction="out",
                          method="sasl_external") == 1, text_a
        assert metric_sum(text_b, AUTHENTICATED, direction="in",
                          method="sasl_external") == 1, text_b
        assert metric_sum(text_b, "waddle_s2s_connections_total", direction="in") == 1, text_b
    run(body)


def test_two_local_domains_dialing_at_once_share_one_stream(fed, pki):
    """a.test and its room service need a stream to b.test at the same moment (each answers
    an IQ that arrived over its own inbound stream): the second waits for the stream the first
    is opening and multiplexes on it, so b.test accepts one connection from a's server."""
    a, b = servers_a_and_b(fed)
    raws = [RawS2s(a.ip, B, to, *pki.cert(B), pki.ca.cert) for to in (A, f"conference.{A}")]
    try:
        for r in raws:
            r.authenticate()
        # Back to back: both answers are due while a's server has no stream to b.test yet.
        for i, (r, to) in enumerate(zip(raws, (A, f"conference.{A}"))):
            r.send(f"<iq type='get' id='both-{i}' from='{BOB}/raw' to='{to}'>"
                   f"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        # Whichever of the two opened the stream, the other multiplexed on it.
        wait_metric(a, AUTHENTICATED, domain=B, direction="out", method="dialback_multiplexed")
        wait_metric(b, AUTHENTICATED, domain=(A, f"conference.{A}"), direction="in",
                    method="dialback_multiplexed")
        text_a, text_b = a.metrics_text(), b.metrics_text()
        assert metric_sum(text_a, AUTHENTICATED, domain=B, direction="out",
                          method="sasl_external") == 1, text_a
        assert metric_sum(text_b, AUTHENTICATED, direction="in",
                          method="sasl_external") == 1, text_b
        assert metric_sum(text_b, "waddle_s2s_connections_total", direction="in") == 1, text_b
    finally:
        for r in raws:
            r.close()


def test_occupants_are_told_when_the_room_server_shuts_down(fed):
    a, b = servers_a_and_b(fed)

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob", timeout=20)
        a.send_signal(15)
        for c, nick in ((alice, "Alice"), (bob, "Bob")):
            p = await c.expect_presence(frm=f"{ROOM}/{nick}", ptype="unavailable")
            assert {"110", "332"} <= codes(p), str(p)
        assert a.wait_exit(10) == 0
    run(body)


def test_atproto_did_travels_in_the_credential_and_is_confirmed(fed):
    """An account linked to an ATProto DID (waddle did JID DID) is vouched for with that DID;
    the room server learns it, and the home server confirms it only while it is linked."""
    did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    a = fed.server(A, users=("alice",), overrides={"muc": {"require_credential": True}})
    b = fed.server(B, users=("bob",))
    bad = b.cli("did", BOB, "not-a-did")
    assert bad.returncode == 1 and "is not a DID" in bad.stderr, bad
    linked = b.cli("did", BOB, did)
    assert linked.returncode == 0, linked
    assert b.cli("did", BOB).stdout.strip() == did
    fed.start()

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        token = await fetch_credential(bob, audience=f"conference.{A}")
        assert jwt_claims(token)["did"] == did
        await join(bob, ROOM, "Bob", timeout=20)
        assert metric(a, CREDENTIALS, '{result="valid"}') == 1
        # Operator-facing: the room server's log is where its operator reads which DID a
        # verified occupant has (Waddle shows it nowhere else).
        await await_operator_log(a, rf"identity of {re.escape(BOB)} verified .*"
                                    rf"\({re.escape(did)}\)")
    run(body)

    # Unlinked meanwhile: the home server no longer confirms the old credential.
    assert b.cli("did", BOB, "-").returncode == 0

    async def after_unlink():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        await join(alice, ROOM, "Alice")  # the temporary room went away with everyone
        bob = await login(b, f"{BOB}/work2", PASSWORD)
        err = await join_error(bob, ROOM, "Bobby", credential=token_holder[0], timeout=20)
        assert condition(err) == "not-authorized", str(err)
        assert "DID" in error_text(err), str(err)
    token_holder = []

    async def grab():
        bob = await login(b, f"{BOB}/work3", PASSWORD)
        token_holder.append(await fetch_credential(bob, audience=f"conference.{A}"))
    # A credential issued while linked (the new session reads the DID at login)...
    assert b.cli("did", BOB, did).returncode == 0
    run(grab)
    assert jwt_claims(token_holder[0])["did"] == did
    assert b.cli("did", BOB, "-").returncode == 0
    run(after_unlink)


def test_a_moderation_reaches_an_occupant_on_another_server(fed):
    """XEP-0425 across federation: bob (b.test) speaks in a room of a.test; his own request to
    retract it, over S2S, is refused (he is no moderator); the owner retracts it, and the
    room's notice reaches bob over S2S."""
    a, b = servers_a_and_b(fed)
    ns_retract = "urn:xmpp:message-retract:1"
    ns_moderate = "urn:xmpp:message-moderate:1"

    async def body():
        alice = await login(a, f"{ALICE}/home", PASSWORD)
        bob = await login(b, f"{BOB}/work", PASSWORD)
        await join(alice, ROOM, "Alice")
        await join(bob, ROOM, "Bob", timeout=20)
        groupchat(bob, ROOM, "an unwanted line")
        seen = await alice.expect_message(body="an unwanted line", mtype="groupchat")
        sid = next(e.get("id") for e in seen.xml.findall("{urn:xmpp:sid:0}stanza-id")
                   if e.get("by") == ROOM)
        # Bob, from his server, may not retract it.
        iq = bob.make_iq_set(ito=ROOM)
        ET.SubElement(ET.SubElement(iq.xml, f"{{{ns_moderate}}}moderate", {"id": sid}),
                      f"{{{ns_retract}}}retract")
        with pytest.raises(IqError) as refused:
            await iq.send(timeout=20)
        assert refused.value.iq["error"]["condition"] == "forbidden"
        iq = alice.make_iq_set(ito=ROOM)
        ET.SubElement(ET.SubElement(iq.xml, f"{{{ns_moderate}}}moderate", {"id": sid}),
                      f"{{{ns_retract}}}retract")
        await iq.send(timeout=20)
        notice = await bob.messages.get(
            lambda m: m.xml.find(f"{{{ns_retract}}}retract[@id='{sid}']") is not None,
            timeout=20)
        assert str(notice["from"]) == ROOM, str(notice)
    run(body)
