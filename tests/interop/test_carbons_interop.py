"""Message Carbons (XEP-0280) across federation with Prosody 0.12: a Waddle user's two devices
(slixmpp with its xep_0280 plugin) see both sides of a conversation with a user on Prosody;
<private/> from the Prosody side is respected and removed before delivery. Every message is
accounted for on every client.
Run (root): /usr/bin/python3 -m pytest tests/interop/test_carbons_interop.py -q
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

from harness import login, run_async

TIMEOUT = 20.0
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CLIENT = "jabber:client"


def carbon_body(m: Any, kind: str) -> Optional[str]:
    inner = m.xml.find(f"{{{NS_CARBONS}}}{kind}/{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")
    return None if inner is None else inner.findtext(f"{{{NS_CLIENT}}}body")


def is_carbon(m: Any) -> bool:
    return any(m.xml.find(f"{{{NS_CARBONS}}}{k}") is not None for k in ("sent", "received"))


async def expect_carbon(c: Any, kind: str, body: str) -> Any:
    m = await c.messages.get(lambda m: carbon_body(m, kind) == body, TIMEOUT,
                             f"a {kind} carbon of {body!r} for {c.boundjid}")
    assert str(m["from"]) == c.boundjid.bare and str(m["to"]) == str(c.boundjid), str(m)
    return m


async def expect_original(c: Any, body: str) -> Any:
    return await c.messages.get(lambda m: not is_carbon(m) and m["body"] == body, TIMEOUT,
                                f"{body!r} for {c.boundjid}")


def test_two_waddle_devices_see_both_sides_with_prosody(federation):
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"])
    w = fed.waddle("w-carbons.test", "cert", users=["alice"])
    fed.start()

    async def body():
        phone = await login(w, "alice")
        laptop = await login(w, "alice")
        for c in (phone, laptop):
            c.register_plugin("xep_0280")
            await c["xep_0280"].enable(timeout=TIMEOUT)
        bob = await login(p, "bob")
        phone_jid = str(phone.boundjid)

        bob.chat(phone_jid, "from prosody")
        await expect_original(phone, "from prosody")
        m = await expect_carbon(laptop, "received", "from prosody")
        assert m["type"] == "chat", str(m)
        phone.chat(bob.boundjid.bare, "from waddle")
        await expect_original(bob, "from waddle")
        await expect_carbon(laptop, "sent", "from waddle")
        laptop.chat(str(bob.boundjid), "from the laptop")
        await expect_original(bob, "from the laptop")
        await expect_carbon(phone, "sent", "from the laptop")

        secret = bob.make_message(mto=phone_jid, mbody="private from prosody", mtype="chat")
        secret.append(ET.Element(f"{{{NS_CARBONS}}}private"))
        secret.send()
        got = await expect_original(phone, "private from prosody")
        assert got.xml.find(f"{{{NS_CARBONS}}}private") is None, str(got)

        # 4 messages, 4 deliveries, 3 carbons, nothing else.
        for c in (phone, laptop, bob):
            await c.sync()
            left = [str(m) for m in c.messages.items if m["body"] or is_carbon(m)]
            assert not left, f"{c.boundjid} also got: {left}"

    run_async(body, timeout=90)
