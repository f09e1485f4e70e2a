"""External services for calls (XEP-0215) and contact addresses (XEP-0157), from config.

A client asks the server for its STUN and TURN services and gets TURN credentials that a
coturn configured with use-auth-secret and the same secret accepts: the username is the expiry
and the user's JID, the password the base64 HMAC-SHA1 of the username keyed with the secret
(checked here as coturn computes it). Users of other servers get nothing (the credentials
grant the operator's relay). The server's disco#info carries the contact addresses.

Run: /usr/bin/python3 -m pytest tests/system/test_external_services.py -q
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from waddle_client import DOMAIN, PASSWORD, TIMEOUT, login, run

NS_EXT = "urn:xmpp:extdisco:2"
NS_DATA = "jabber:x:data"
ALICE = f"alice@{DOMAIN}"
SECRET = "shared-with-coturn"
TURN = {"host": "turn.example.test", "port": 3478, "tls_port": 5349, "tcp": True,
        "secret": SECRET, "ttl": "2h"}
CONTACT = {"abuse": ["mailto:abuse@example.test"],
           "admin": ["xmpp:admin@example.test", "mailto:admin@example.test"]}


async def ask(c, payload: ET.Element, to: str = DOMAIN) -> ET.Element:
    iq = c.make_iq_get(ito=to)
    iq.xml.append(payload)
    result = await iq.send(timeout=TIMEOUT)
    return result.xml


def services(t: str = "") -> ET.Element:
    return ET.Element(f"{{{NS_EXT}}}services", {"type": t} if t else {})


def coturn_accepts(service: ET.Element, user: str, ttl: int) -> None:
    username, password = service.get("username"), service.get("password")
    expiry, _, who = username.partition(":")
    now = time.time()
    assert who == user, username
    assert now + ttl - 60 <= int(expiry) <= now + ttl + 60, (username, now)
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected, service.attrib
    assert service.get("restricted") in ("1", "true") and service.get("expires"), service.attrib


def test_stun_and_turn_services_with_credentials_coturn_accepts(make_server):
    server = make_server({"turn": TURN, "contact": CONTACT})
    server.adduser(ALICE, PASSWORD)

    async def body():
        alice = await login(server, ALICE, PASSWORD)
        info = await alice["xep_0030"].get_info(jid=DOMAIN)
        assert NS_EXT in info["disco_info"]["features"]
        # XEP-0157: the addresses in the serverinfo form.
        forms = [{f.get("var"): [v.text for v in f.findall(f"{{{NS_DATA}}}value")]
                  for f in x.findall(f"{{{NS_DATA}}}field")}
                 for x in info.xml.findall(".//{%s}x" % NS_DATA)]
        fields = next(f for f in forms
                      if f["FORM_TYPE"] == ["http://jabber.org/network/serverinfo"])
        assert fields["abuse-addresses"] == CONTACT["abuse"]
        assert fields["admin-addresses"] == CONTACT["admin"]
        assert "sales-addresses" not in fields

        got = (await ask(alice, services())).find(f"{{{NS_EXT}}}services")
        offered = {(s.get("type"), s.get("transport"), s.get("port"))
                   for s in got.findall(f"{{{NS_EXT}}}service")}
        assert offered == {("stun", "udp", "3478"), ("stun", "tcp", "3478"),
                           ("turn", "udp", "3478"), ("turn", "tcp", "3478"),
                           ("turns", "tcp", "5349")}, offered
        for s in got.findall(f"{{{NS_EXT}}}service"):
            assert s.get("host") == "turn.example.test"
            if s.get("type") == "stun":
                assert s.get("username") is None and s.get("password") is None
            else:
                coturn_accepts(s, ALICE, 7200)
        # The type filter, and credentials asked for one service (§3.3).
        turn = (await ask(alice, services("turn"))).find(f"{{{NS_EXT}}}services")
        assert {s.get("type") for s in turn} == {"turn"} and len(turn) == 2
        creds = ET.Element(f"{{{NS_EXT}}}credentials")
        ET.SubElement(creds, f"{{{NS_EXT}}}service", {"host": "turn.example.test", "type": "turn"})
        got = (await ask(alice, creds)).find(f"{{{NS_EXT}}}credentials/{{{NS_EXT}}}service")
        coturn_accepts(got, ALICE, 7200)
        creds = ET.Element(f"{{{NS_EXT}}}credentials")
        ET.SubElement(creds, f"{{{NS_EXT}}}service", {"host": "other.test", "type": "turn"})
        with pytest.raises(IqError) as refused:
            await ask(alice, creds)
        assert refused.value.iq["error"]["condition"] == "item-not-found"
    run(body)


def test_stun_only_without_a_secret_and_nothing_without_a_host(make_server):
    stun_only = make_server({"turn": {"host": "stun.example.test"}})
    stun_only.adduser(ALICE, PASSWORD)
    nothing = make_server()
    nothing.adduser(ALICE, PASSWORD)

    async def body():
        alice = await login(stun_only, ALICE, PASSWORD)
        got = (await ask(alice, services())).find(f"{{{NS_EXT}}}services")
        assert [(s.get("type"), s.get("transport")) for s in got] == [("stun", "udp")]
        other = await login(nothing, ALICE, PASSWORD)
        info = await other["xep_0030"].get_info(jid=DOMAIN)
        assert NS_EXT not in info["disco_info"]["features"]
        # No [contact]: no serverinfo form (the upload service's form may be there).
        form_types = [v.text for v in info.xml.findall(
            ".//{%s}field[@var='FORM_TYPE']/{%s}value" % (NS_DATA, NS_DATA))]
        assert "http://jabber.org/network/serverinfo" not in form_types, form_types
        with pytest.raises(IqError) as refused:
            await ask(other, services())
        assert refused.value.iq["error"]["condition"] == "service-unavailable"
    run(body)


def test_users_of_other_servers_get_no_credentials(fed):
    a = fed.server("a.test", users=("alice",), overrides={"turn": TURN})
    fed.server("b.test", users=("bob",))
    fed.start()

    async def body():
        bob = await login(fed.servers["b.test"], "bob@b.test", PASSWORD)
        with pytest.raises(IqError) as refused:
            await ask(bob, services(), to="a.test")
        assert refused.value.iq["error"]["condition"] == "forbidden"
        alice = await login(a, "alice@a.test", PASSWORD)
        got = (await ask(alice, services("turn"), to="a.test")).find(f"{{{NS_EXT}}}services")
        coturn_accepts(got[0], "alice@a.test", 7200)
    run(body)
