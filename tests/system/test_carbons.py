"""Message Carbons (XEP-0280) with slixmpp's xep_0280 plugin as the client: two devices of one
user see both sides of conversations with a contact on the same server and one on another
Waddle over federation; <private/> and XEP-0334 <no-copy/> are respected; disabling stops the
copies; rooms and errors are not copied. Every message sent is accounted for: each reaches
exactly the clients it should, as an original or as a carbon, and nothing else arrives.
Run: /usr/bin/python3 -m pytest tests/system/test_carbons.py -q
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

from slixmpp.exceptions import IqError

from muc import NS_USER, join
from waddle_client import DOMAIN, PASSWORD, Client, Inbox, bare, error_condition, run

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_CLIENT = "jabber:client"
A, B = "a.test", "b.test"


# --------------------------------------------------------------------------- helpers


async def device(server: Any, jid: str, carbons: bool = True) -> Client:
    """A logged-in, available client with the xep_0280 plugin (carbons enabled if asked).
    The plugin's own events (it checks that a carbon comes from the user's bare JID) fill
    `c.carbons`."""
    c = Client(server, jid, PASSWORD)
    c.register_plugin("xep_0280")
    c.carbons = Inbox(f"a carbon for {jid}")
    c.add_event_handler("carbon_received", lambda m: c.carbons.put(("received", m)))
    c.add_event_handler("carbon_sent", lambda m: c.carbons.put(("sent", m)))
    c.got = []
    await c.start()
    await c.online()
    if carbons:
        await c["xep_0280"].enable(timeout=10)
    return c


def inner(m: Any, kind: str) -> Optional[ET.Element]:
    """The forwarded message of a <sent/> or <received/> carbon."""
    return m.xml.find(f"{{{NS_CARBONS}}}{kind}/{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")


def is_carbon(m: Any) -> bool:
    return any(m.xml.find(f"{{{NS_CARBONS}}}{k}") is not None for k in ("sent", "received"))


def send(client: Client, to: str, body: str, mtype: str = "chat", *extra: ET.Element) -> None:
    m = client.make_message(mto=to, mbody=body, mtype=mtype)
    m["id"] = body
    for el in extra:
        m.append(el)
    m.send()


def private() -> ET.Element:
    return ET.Element(f"{{{NS_CARBONS}}}private")


def no_copy() -> ET.Element:
    return ET.Element(f"{{{NS_HINTS}}}no-copy")


def carbon_body(m: Any, kind: str) -> Optional[str]:
    msg = inner(m, kind)
    return None if msg is None else msg.findtext(f"{{{NS_CLIENT}}}body")


async def expect(client: Client, body: str) -> Any:
    """The original (not a carbon) message with this body, recorded in `client.got`."""
    m = await client.messages.get(lambda m: not is_carbon(m) and m["body"] == body,
                                  what=f"{body!r} for {client.label}")
    client.got.append(body)
    return m


async def expect_carbon(client: Client, kind: str, body: str, frm: str, to: str,
                        mtype: str = "chat") -> None:
    """A carbon of that kind, checked as the XEP says (from the user's bare JID, to the
    device, the original's type, the original inside), recorded in `client.got`."""
    _, m = await client.carbons.get(
        lambda c: c[0] == kind and carbon_body(c[1], kind) == body,
        what=f"a {kind} carbon of {body!r} for {client.label}")
    assert str(m["from"]) == client.boundjid.bare, str(m)
    assert str(m["to"]) == str(client.boundjid), str(m)
    assert m["type"] == mtype, str(m)
    msg = inner(m, kind)
    assert msg.get("from") == frm and msg.get("to") == to, str(m)
    # the raw inbox saw it too: taken, so that only what nobody expected stays there
    assert client.messages.take(lambda x: carbon_body(x, kind) == body) is not None
    client.got.append(f"{kind}:{body}")


def unexpected(client: Client) -> list[str]:
    """What the client received and no step of the test took: messages with a body or a
    carbon, and carbons the plugin reported."""
    return [str(m) for m in client.messages.items if m["body"] or is_carbon(m)] + [
        str(c[1]) for c in client.carbons.items]


# --------------------------------------------------------------------------- tests


def test_two_devices_see_both_sides_locally_and_over_federation(fed):
    """alice has a phone and a laptop, carol is on a.test too, bob on b.test. Carbons copy
    what alice's devices send and receive (from both contacts), not messages to her bare JID,
    not <private/> or <no-copy/> ones, and stop when the laptop disables them."""
    a = fed.server(A, users=("alice", "carol"))
    b = fed.server(B, users=("bob",))
    fed.start()
    alice, carol, bob = f"alice@{A}", f"carol@{A}", f"bob@{B}"
    phone_jid, laptop_jid, carol_jid, bob_jid = (f"{alice}/phone", f"{alice}/laptop",
                                                 f"{carol}/desk", f"{bob}/work")

    async def body():
        phone = await device(a, phone_jid)
        laptop = await device(a, laptop_jid)
        carol_c = await device(a, carol_jid, carbons=False)
        bob_c = await device(b, bob_jid, carbons=False)
        info = await phone["xep_0030"].get_info(jid=A, timeout=10)
        assert NS_CARBONS in info["disco_info"]["features"], str(info)
        # A user of another server cannot enable carbons here (XEP-0280 §4.1).
        iq = bob_c.make_iq_set(ito=A)
        iq.append(ET.Element(f"{{{NS_CARBONS}}}enable"))
        try:
            await iq.send(timeout=10)
            raise AssertionError("a.test enabled carbons for bob@b.test")
        except IqError as e:
            assert error_condition(e.iq) == "not-allowed", str(e.iq)

        # Received and sent, local contact.
        send(carol_c, phone_jid, "c1")
        await expect(phone, "c1")
        await expect_carbon(laptop, "received", "c1", carol_jid, phone_jid)
        send(phone, carol, "a1")
        await expect(carol_c, "a1")
        await expect_carbon(laptop, "sent", "a1", phone_jid, carol)
        # The same over federation, and from the other device.
        send(bob_c, phone_jid, "b1")
        await expect(phone, "b1")
        await expect_carbon(laptop, "received", "b1", bob_jid, phone_jid)
        send(phone, bob, "a2")
        await expect(bob_c, "a2")
        await expect_carbon(laptop, "sent", "a2", phone_jid, bob)
        send(laptop, bob_jid, "a3")
        await expect(bob_c, "a3")
        await expect_carbon(phone, "sent", "a3", laptop_jid, bob_jid)
        # To the bare JID: both devices get the message itself, no carbon.
        send(bob_c, alice, "b2")
        await expect(phone, "b2")
        await expect(laptop, "b2")
        # A normal message with a body is copied too.
        send(carol_c, phone_jid, "c2", "normal")
        await expect(phone, "c2")
        await expect_carbon(laptop, "received", "c2", carol_jid, phone_jid, "normal")

        # <private/> and <no-copy/>: no copies either way; the recipient's server removes
        # <private/> (b.test for bob, a.test for alice's phone).
        send(phone, bob, "p1", "chat", private())
        got = await expect(bob_c, "p1")
        assert got.xml.find(f"{{{NS_CARBONS}}}private") is None, str(got)
        send(bob_c, phone_jid, "p2", "chat", private())
        got = await expect(phone, "p2")
        assert got.xml.find(f"{{{NS_CARBONS}}}private") is None, str(got)
        send(phone, carol, "n1", "chat", no_copy())
        await expect(carol_c, "n1")
        send(bob_c, phone_jid, "n2", "chat", no_copy())
        await expect(phone, "n2")

        # The laptop disables carbons: no more copies for it.
        await laptop["xep_0280"].disable(timeout=10)
        send(carol_c, phone_jid, "c3")
        await expect(phone, "c3")
        send(phone, bob, "a4")
        await expect(bob_c, "a4")
        send(bob_c, phone_jid, "b3")
        await expect(phone, "b3")

        # Everything sent is accounted for: 14 messages make 15 deliveries (b2 reached both
        # devices) and 6 carbons, and nothing else arrived anywhere.
        for c in (phone, laptop, carol_c, bob_c):
            await c.sync()
        want = {
            phone: ["c1", "b1", "sent:a3", "b2", "c2", "p2", "n2", "c3", "b3"],
            laptop: ["received:c1", "sent:a1", "received:b1", "sent:a2", "b2", "received:c2"],
            carol_c: ["a1", "n1"],
            bob_c: ["a2", "a3", "p1", "a4"],
        }
        for c, got in want.items():
            assert c.got == got, f"{c.label}: {c.got}"
            assert unexpected(c) == [], f"{c.label} also got: {unexpected(c)}"
        assert sum(":" not in x for got in want.values() for x in got) == 14 + 1
        assert sum(":" in x for got in want.values() for x in got) == 6
    run(body)


def test_rooms_errors_and_bad_requests(make_server):
    """One server: a room's groupchat is never copied; private messages in a room are copied
    when marked with muc#user (the room marks the ones it relays); errors are not copied;
    enabling twice is fine; a get or an unknown element is a bad request."""
    server = make_server()
    for user in ("alice", "bob"):
        server.adduser(f"{user}@{DOMAIN}", PASSWORD)
    alice, bob = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
    phone_jid, laptop_jid, bob_jid = f"{alice}/phone", f"{alice}/laptop", f"{bob}/desk"
    room = f"carbons@conference.{DOMAIN}"

    async def body():
        phone = await device(server, phone_jid)
        laptop = await device(server, laptop_jid)
        await laptop["xep_0280"].enable(timeout=10)  # a second enable is no error
        iq = laptop.make_iq_set(ito=DOMAIN)  # addressed to the server: the same
        iq.append(ET.Element(f"{{{NS_CARBONS}}}enable"))
        assert (await iq.send(timeout=10))["type"] == "result"
        bob_c = await device(server, bob_jid, carbons=False)

        for payload in ("enable", "disable", "bogus"):
            iq = phone.make_iq_get() if payload != "bogus" else phone.make_iq_set()
            iq.append(ET.Element(f"{{{NS_CARBONS}}}{payload}"))
            try:
                await iq.send(timeout=10)
                raise AssertionError(f"{payload}: accepted")
            except IqError as e:
                assert error_condition(e.iq) == "bad-request", str(e.iq)

        await join(phone, room, "Alice")
        await join(bob_c, room, "Bob")
        send(phone, room, "g1", "groupchat")
        await expect(bob_c, "g1")
        await expect(phone, "g1")  # the room's echo
        # Private messages through the room: from alice unmarked (not copied) and marked
        # (copied); from bob (the room marks what it relays: copied).
        send(phone, f"{room}/Bob", "pm1")
        await expect(bob_c, "pm1")
        send(phone, f"{room}/Bob", "pm2", "chat", ET.Element(f"{{{NS_USER}}}x"))
        await expect(bob_c, "pm2")
        await expect_carbon(laptop, "sent", "pm2", phone_jid, f"{room}/Bob")
        send(bob_c, f"{room}/Alice", "pm3")
        await expect(phone, "pm3")
        await expect_carbon(laptop, "received", "pm3", f"{room}/Bob", phone_jid)
        # An error from another user is not copied.
        send(bob_c, phone_jid, "e1", "error")
        await phone.messages.get(lambda m: m["type"] == "error" and m["id"] == "e1")
        # A forged carbon from a client is never copied as one.
        forged = ET.Element(f"{{{NS_CARBONS}}}received")
        send(phone, bob, "f1", "chat", forged)
        await bob_c.messages.get(lambda m: m["body"] == "f1")

        # To one's own other device: that device gets the message itself, and nobody a copy
        # (the sending device least of all).
        send(phone, laptop_jid, "self1")
        await expect(laptop, "self1")

        for c in (phone, laptop, bob_c):
            await c.sync()
        assert laptop.got == ["sent:pm2", "received:pm3", "self1"], laptop.got
        for c in (phone, laptop):
            assert unexpected(c) == [], f"{c.label} also got: {unexpected(c)}"
        assert bare(phone.boundjid) == alice
    run(body)
