"""The XEP-0479 table of docs/clients.md against the running server.

Every specification of a row whose status starts with "yes" has a check here that asks the
server what a client would look for: service discovery (of the server, the account, the room
service, a room), the stream features before and after authentication, the Direct TLS port,
a configured component in the server's items. A row that claims a specification without a
check fails the test, so that the table cannot drift from the code.

Run: /usr/bin/python3 -m pytest tests/system/test_compliance_table.py -q
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import pytest

from rawxmpp import NS_CLIENT, NS_TLS, RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD

TABLE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_MUC = "http://jabber.org/protocol/muc"
ROOMS = f"conference.{DOMAIN}"
ROOM = f"checks@{ROOMS}"
COMPONENT = f"gw.{DOMAIN}"


def claimed_specifications() -> list[tuple[str, str]]:
    """(row feature, specification) for every specification of a row marked "yes"."""
    text = TABLE.read_text()
    section = text.split("## Where Waddle stands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| Feature |")]  # no header
    claimed = []
    for row in rows:
        feature, spec, _suite, status = [c.strip() for c in row.strip("|").split("|")]
        if not status.startswith("yes"):
            continue
        for s in re.findall(r"(?:RFC \d+|XEP-\d{4})(?: for rooms)?", spec):
            claimed.append((feature, s))
    return claimed


class Server:
    """What the checks read from a server, asked once each."""

    def __init__(self, srv):
        self.srv = srv
        raw = RawXmpp(srv.ip, srv.port)
        self.before_tls = raw.open_stream()
        raw.starttls()
        self.before_auth = raw.open_stream()
        raw.auth_plain("alice", PASSWORD)
        self.after_auth = raw.open_stream()
        self.jid = raw.bind("checks")
        self.raw = raw
        self.info: dict[str, ET.Element] = {}
        self.items: dict[str, ET.Element] = {}

    def iq(self, to: str, payload: str) -> ET.Element:
        ident = f"c{len(self.raw.elements)}"
        self.raw.send(f"<iq type='get' id='{ident}' to='{to}'>{payload}</iq>")
        while True:
            el = self.raw.next_element()
            if el.tag == tag(NS_CLIENT, "iq") and el.get("id") == ident:
                assert el.get("type") == "result", ET.tostring(el).decode()
                return el

    def features(self, jid: str) -> set[str]:
        if jid not in self.info:
            self.info[jid] = self.iq(jid, f"<query xmlns='{NS_INFO}'/>")
        return {f.get("var") for f in self.info[jid].iter(tag(NS_INFO, "feature"))}

    def identities(self, jid: str) -> set[tuple[str, str]]:
        self.features(jid)
        return {(i.get("category"), i.get("type"))
                for i in self.info[jid].iter(tag(NS_INFO, "identity"))}

    def item_jids(self, jid: str) -> set[str]:
        if jid not in self.items:
            self.items[jid] = self.iq(jid, f"<query xmlns='{NS_ITEMS}'/>")
        return {i.get("jid") for i in self.items[jid].iter(tag(NS_ITEMS, "item"))}

    def room(self) -> str:
        """A room, created (and so configured by default) on first use."""
        if ROOM not in self.info:
            self.raw.send(f"<presence to='{ROOM}/checker'><x xmlns='{NS_MUC}'/></presence>")
            while True:
                el = self.raw.next_element()
                if el.tag == tag(NS_CLIENT, "presence") and el.get("from") == f"{ROOM}/checker":
                    break
        return ROOM


def stream_feature(stage: str, name: str, ns: str) -> Callable[[Server], None]:
    def check(s: Server) -> None:
        features = getattr(s, stage)
        assert features.find(tag(ns, name)) is not None, (
            f"no <{name} xmlns='{ns}'/> among the stream features {stage}: "
            f"{ET.tostring(features).decode()}")
    return check


def feature(which: Callable[[Server], str], var: str) -> Callable[[Server], None]:
    def check(s: Server) -> None:
        jid = which(s)
        assert var in s.features(jid), f"{jid} does not advertise {var}: {s.features(jid)}"
    return check


def both(*checks: Callable[[Server], None]) -> Callable[[Server], None]:
    def check(s: Server) -> None:
        for c in checks:
            c(s)
    return check


def direct_tls(s: Server) -> None:
    raw = RawXmpp(s.srv.ip, s.srv.direct_tls_port, direct_tls=True)
    features = raw.open_stream()
    assert raw.tls and features.find(tag(NS_TLS, "starttls")) is None
    raw.close()


def extdisco(s: Server) -> None:
    """XEP-0215: with [turn] configured (as this test's server is), the feature is advertised."""
    feature(SERVER, "urn:xmpp:extdisco:2")(s)


def pep_service(s: Server) -> None:
    """XEP-0163 §5: the account is a PEP service ('pubsub'/'pep') that auto-creates nodes."""
    account = ACCOUNT(s)
    assert ("pubsub", "pep") in s.identities(account), s.identities(account)
    for f in ("publish", "auto-create", "publish-options", "access-presence"):
        feature(ACCOUNT, f"http://jabber.org/protocol/pubsub#{f}")(s)


def component_listed(s: Server) -> None:
    assert COMPONENT in s.item_jids(DOMAIN), s.item_jids(DOMAIN)


def muc_service(s: Server) -> None:
    assert ROOMS in s.item_jids(DOMAIN), s.item_jids(DOMAIN)
    assert ("conference", "text") in s.identities(ROOMS), s.identities(ROOMS)
    assert NS_MUC in s.features(ROOMS)


def direct_invitation(s: Server) -> None:
    """XEP-0249 has nothing to discover: an invitation is a message from one client to another,
    which must arrive whole (here without a body)."""
    bob = RawXmpp(s.srv.ip, s.srv.port)
    bob.login("bob", PASSWORD, resource="invited")
    s.raw.send(f"<message to='bob@{DOMAIN}/invited' id='inv1'><x xmlns='jabber:x:conference' "
               f"jid='{ROOM}' reason='join us'/></message>")
    while True:
        m = bob.next_element()
        if m.tag == tag(NS_CLIENT, "message") and m.get("id") == "inv1":
            break
    x = m.find("{jabber:x:conference}x")
    assert x is not None and x.get("jid") == ROOM and x.get("reason") == "join us", \
        ET.tostring(m).decode()
    bob.close()


SERVER = lambda s: DOMAIN  # noqa: E731
ACCOUNT = lambda s: s.jid.split("/")[0]  # noqa: E731
A_ROOM = lambda s: s.room()  # noqa: E731

def websocket(s: Server) -> None:
    """RFC 7395: the loopback web listener upgrades to the 'xmpp' subprotocol and answers
    <open/> with <open/>."""
    import base64
    import os
    import socket
    with socket.create_connection((s.srv.ip, 5380), timeout=10) as c:
        key = base64.b64encode(os.urandom(16)).decode()
        c.sendall(f"GET /xmpp-websocket HTTP/1.1\r\nHost: {s.srv.ip}:5380\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: xmpp\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            assert chunk, f"no upgrade: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Protocol: xmpp" in head, head
        payload = (f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' "
                   "version='1.0'/>").encode()
        mask = os.urandom(4)
        c.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        data = head.split(b"\r\n\r\n", 1)[1]
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            data += c.recv(4096)
        assert data[0] == 0x81, data
        opened = ET.fromstring(data[2:2 + (data[1] & 0x7F)])
        assert opened.tag == "{urn:ietf:params:xml:ns:xmpp-framing}open", opened.tag


def host_meta(s: Server) -> None:
    """XEP-0156: host-meta.json names the WebSocket endpoint."""
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://{s.srv.ip}:5380/.well-known/host-meta.json",
                                timeout=10) as r:
        links = json.loads(r.read())["links"]
    assert any(l["rel"] == "urn:xmpp:alt-connections:websocket" for l in links), links


def upload_service(s: Server) -> None:
    """XEP-0363 §3: the domain is a store/file service with the feature and max-file-size."""
    assert ("store", "file") in s.identities(SERVER(s)), s.identities(SERVER(s))
    feature(SERVER, "urn:xmpp:http:upload:0")(s)


CHECKS: dict[str, Callable[[Server], None]] = {
    "RFC 7395": websocket,
    "XEP-0156": host_meta,
    "XEP-0363": upload_service,
    "RFC 6120": stream_feature("after_auth", "bind", "urn:ietf:params:xml:ns:xmpp-bind"),
    "RFC 7590": stream_feature("before_tls", "starttls", NS_TLS),
    "RFC 6121": both(stream_feature("after_auth", "ver", "urn:xmpp:features:rosterver"),
                     stream_feature("after_auth", "sub", "urn:xmpp:features:pre-approval")),
    "XEP-0030": both(feature(SERVER, NS_INFO), feature(SERVER, NS_ITEMS)),
    "XEP-0114": component_listed,
    "XEP-0368": direct_tls,
    "XEP-0115": stream_feature("after_auth", "c", "http://jabber.org/protocol/caps"),
    "XEP-0280": feature(SERVER, "urn:xmpp:carbons:2"),
    "XEP-0045": muc_service,
    "XEP-0249": direct_invitation,
    "XEP-0191": feature(SERVER, "urn:xmpp:blocking"),
    "XEP-0313 for rooms": feature(A_ROOM, "urn:xmpp:mam:2"),
    "XEP-0410": feature(A_ROOM, "http://jabber.org/protocol/muc#self-ping-optimization"),
    "XEP-0198": stream_feature("after_auth", "sm", "urn:xmpp:sm:3"),
    "XEP-0313": feature(ACCOUNT, "urn:xmpp:mam:2"),
    "XEP-0359": feature(ACCOUNT, "urn:xmpp:sid:0"),
    "XEP-0352": stream_feature("after_auth", "csi", "urn:xmpp:csi:0"),
    "XEP-0357": feature(ACCOUNT, "urn:xmpp:push:0"),
    "XEP-0163": pep_service,
    "XEP-0215": extdisco,
    "XEP-0054": both(feature(SERVER, "vcard-temp"), feature(ACCOUNT, "vcard-temp")),
    "XEP-0398": feature(ACCOUNT, "urn:xmpp:pep-vcard-conversion:0"),
    # XEP-0153 clients set vCards, which XEP-0398 converts.
    "XEP-0153": both(feature(ACCOUNT, "vcard-temp"),
                     feature(ACCOUNT, "urn:xmpp:pep-vcard-conversion:0")),
    "XEP-0049": feature(SERVER, "jabber:iq:private"),
    "XEP-0048": feature(ACCOUNT, "urn:xmpp:bookmarks:1#compat"),
    "XEP-0402": both(feature(ACCOUNT, "urn:xmpp:bookmarks:1#compat"),
                     feature(ACCOUNT, "http://jabber.org/protocol/pubsub#publish-options")),
    # XEP-0223 §2: publish-options with the whitelist access model and persistent items.
    "XEP-0223": both(feature(ACCOUNT, "http://jabber.org/protocol/pubsub#publish-options"),
                     feature(ACCOUNT, "http://jabber.org/protocol/pubsub#access-whitelist"),
                     feature(ACCOUNT, "http://jabber.org/protocol/pubsub#persistent-items")),
}


@pytest.fixture(scope="module")
def claims() -> list[tuple[str, str]]:
    found = claimed_specifications()
    assert len(found) >= 18, f"the table in {TABLE} was not read: {found}"
    return found


def test_every_claimed_specification_has_a_check(claims):
    missing = [f"{spec} ({feature})" for feature, spec in claims
               if spec not in CHECKS]
    assert not missing, ("docs/clients.md claims these without a check in "
                         f"test_compliance_table.py: {missing}")


def test_the_server_advertises_what_the_table_claims(make_server, claims):
    srv = make_server({"components": {"domains": {COMPONENT: {"secret": "x"}},
                                      "port": 5347},
                       "turn": {"host": "turn.example.test", "secret": "x"}}, start=False)
    srv.config["components"]["listen"] = [srv.ip]
    srv.write_config()
    srv.start()
    srv.adduser(f"alice@{DOMAIN}", PASSWORD)
    srv.adduser(f"bob@{DOMAIN}", PASSWORD)
    s = Server(srv)
    failures = []
    for feature_name, spec in claims:
        try:
            CHECKS[spec](s)
        except AssertionError as e:
            failures.append(f"{spec} ({feature_name}): {e}")
    assert not failures, "\n".join(failures)
