"""XEP-0045 helpers for system and interop tests: join, leave, read status codes and items,
owner/admin IQs. They build the stanzas by hand (the XML is what the tests check) and wait on
the client's inboxes with deadlines."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = "http://jabber.org/protocol/muc#user"
NS_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_OWNER = "http://jabber.org/protocol/muc#owner"
NS_DATA = "jabber:x:data"
NS_IDENTITY = "urn:waddle:identity"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def codes(stanza: Any) -> set[str]:
    return {s.get("code") for s in stanza.xml.iter(f"{{{NS_USER}}}status")}


def item(stanza: Any) -> Optional[ET.Element]:
    x = stanza.xml.find(f"{{{NS_USER}}}x")
    return None if x is None else x.find(f"{{{NS_USER}}}item")


def condition(stanza: Any) -> str:
    for err in stanza.xml:
        if err.tag.endswith("}error"):
            for child in err:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                    return child.tag.rsplit("}", 1)[1]
    return ""


def error_text(stanza: Any) -> str:
    for err in stanza.xml:
        if err.tag.endswith("}error"):
            t = err.find(f"{{{NS_STANZAS}}}text")
            return "" if t is None else (t.text or "")
    return ""


def send_join(client: Any, room: str, nick: str, *, password: Optional[str] = None,
              maxstanzas: Optional[int] = None, credential: Optional[str] = None,
              muc_x: bool = True) -> None:
    p = client.make_presence(pto=f"{room}/{nick}")
    if muc_x:
        x = ET.SubElement(p.xml, f"{{{NS_MUC}}}x")
        if password is not None:
            ET.SubElement(x, f"{{{NS_MUC}}}password").text = password
        if maxstanzas is not None:
            ET.SubElement(x, f"{{{NS_MUC}}}history").set("maxstanzas", str(maxstanzas))
    if credential is not None:
        ET.SubElement(p.xml, f"{{{NS_IDENTITY}}}credential").text = credential
    p.send()


async def join(client: Any, room: str, nick: str, timeout: float = 15.0, **kw: Any) -> Any:
    """Joins and returns the self-presence (status 110)."""
    send_join(client, room, nick, **kw)
    return await client.expect_presence(
        frm=f"{room}/{nick}", ptype="available", timeout=timeout,
        where=lambda p: "110" in codes(p))


async def join_error(client: Any, room: str, nick: str, timeout: float = 15.0, **kw: Any) -> Any:
    """Tries to join and returns the error presence."""
    send_join(client, room, nick, **kw)
    return await client.expect_presence(frm=f"{room}/{nick}", ptype="error", timeout=timeout)


def leave(client: Any, room: str, nick: str) -> None:
    client.send_presence(pto=f"{room}/{nick}", ptype="unavailable")


def groupchat(client: Any, room: str, body: str) -> None:
    client.send_message(mto=room, mbody=body, mtype="groupchat")


async def admin_set(client: Any, room: str, **attrs: str) -> Any:
    iq = client.make_iq_set(ito=room)
    q = ET.SubElement(iq.xml, f"{{{NS_ADMIN}}}query")
    it = ET.SubElement(q, f"{{{NS_ADMIN}}}item")
    for k, v in attrs.items():
        it.set(k, v)
    return await iq.send(timeout=10)


async def configure(client: Any, room: str, fields: dict[str, str]) -> Any:
    iq = client.make_iq_set(ito=room)
    q = ET.SubElement(iq.xml, f"{{{NS_OWNER}}}query")
    x = ET.SubElement(q, f"{{{NS_DATA}}}x")
    x.set("type", "submit")
    values = {"FORM_TYPE": "http://jabber.org/protocol/muc#roomconfig", **fields}
    for var, value in values.items():
        f = ET.SubElement(x, f"{{{NS_DATA}}}field")
        f.set("var", var)
        ET.SubElement(f, f"{{{NS_DATA}}}value").text = value
    return await iq.send(timeout=10)


def features(disco_result: Any) -> set[str]:
    return {f.get("var") for f in disco_result.xml.iter(
        "{http://jabber.org/protocol/disco#info}feature")}
