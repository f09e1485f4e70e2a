"""Entity capabilities (XEP-0115).

The server announces its own <c/> among the stream features once a client has authenticated,
and answers disco#info for that node#ver with what hashes to it. It follows the capabilities
its clients send in presence (slixmpp's own xep_0115 plugin here): a 'ver' it does not know is
asked once, with disco#info to the resource, and every later resource with the same 'ver' is
known without a question; an answer that does not hash to its 'ver' is not believed (§5.4).

Run: /usr/bin/python3 -m pytest tests/system/test_caps.py -q
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ET

from federation import await_metric, metric_sum
from rawxmpp import NS_CLIENT, RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, TIMEOUT, Client, run

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
ALICE = f"alice@{DOMAIN}"
QUERIES = "waddle_caps_queries_total"
CACHED = "waddle_caps_cached"


def verstring(query: ET.Element) -> str:
    """XEP-0115 §5.1: identities, features and extended information forms (XEP-0128; the
    server's answer holds the upload service's form, XEP-0363)."""
    ids = sorted((i.get("category", ""), i.get("type", ""),
                  i.get("{http://www.w3.org/XML/1998/namespace}lang", ""), i.get("name", ""))
                 for i in query.findall(tag(NS_INFO, "identity")))
    features = sorted(f.get("var") for f in query.findall(tag(NS_INFO, "feature")))
    s = "".join("/".join(i) + "<" for i in ids) + "".join(f + "<" for f in features)
    forms = []
    for x in query.findall(tag(NS_DATA, "x")):
        fields = {f.get("var"): sorted(v.text or "" for v in f.findall(tag(NS_DATA, "value")))
                  for f in x.findall(tag(NS_DATA, "field"))}
        form_type = fields.pop("FORM_TYPE")[0]
        forms.append((form_type, "".join(var + "<" + "".join(v + "<" for v in values)
                                         for var, values in sorted(fields.items()))))
    s += "".join(t + "<" + rest for t, rest in sorted(forms))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def iq_answer(raw: RawXmpp, ident: str) -> ET.Element:
    while True:
        el = raw.next_element()
        if el.tag == tag(NS_CLIENT, "iq") and el.get("id") == ident:
            return el


def test_the_server_announces_its_caps_and_answers_for_them(server):
    server.adduser(ALICE, PASSWORD)
    raw = RawXmpp(server.ip, server.port)
    raw.tls_stream()
    raw.auth_plain("alice", PASSWORD)
    features = raw.open_stream()
    c = features.find(tag(NS_CAPS, "c"))
    assert c is not None, ET.tostring(features).decode()
    assert c.get("hash") == "sha-1" and c.get("node") == "urn:waddle:server", c.attrib
    raw.bind("caps")
    node = f"{c.get('node')}#{c.get('ver')}"
    raw.send(f"<iq type='get' id='i1' to='{DOMAIN}'><query xmlns='{NS_INFO}' node='{node}'/></iq>")
    answer = iq_answer(raw, "i1")
    query = answer.find(tag(NS_INFO, "query"))
    assert answer.get("type") == "result" and query is not None, ET.tostring(answer).decode()
    assert query.get("node") == node
    assert verstring(query) == c.get("ver")


def test_a_ver_is_asked_once_and_known_for_every_resource_that_sends_it(server):
    server.adduser(ALICE, PASSWORD)

    async def with_caps() -> Client:
        c = Client(server, ALICE, PASSWORD)
        c.register_plugin("xep_0115")
        await c.start()
        await c["xep_0115"].update_caps(broadcast=False)  # hashes its own features
        await c.online()
        return c

    async def body():
        phone = await with_caps()
        await await_metric(server, QUERIES, at_least=1, result="ok")
        laptop = await with_caps()
        # The phone sees the laptop's presence, sent after the server has read its caps.
        await phone.expect_presence(frm=str(laptop.boundjid), ptype="available")
        text = server.metrics_text()
        assert metric_sum(text, QUERIES, result="ok") == 1
        assert metric_sum(text, QUERIES, result=("mismatch", "error")) == 0
        assert metric_sum(text, CACHED) == 1
        phone.disconnect()
        laptop.disconnect()
    run(body)


# ... nor is an answer from anyone but the resource asked.
def test_an_answer_that_does_not_hash_to_its_ver_is_not_believed(server):
    server.adduser(ALICE, PASSWORD)
    server.adduser(f"mallory@{DOMAIN}", PASSWORD)
    raw = RawXmpp(server.ip, server.port)
    raw.login("alice", PASSWORD, resource="liar")
    mallory = RawXmpp(server.ip, server.port)
    mallory.login("mallory", PASSWORD)
    for ver, answer in (("bm90IHRoZSBoYXNoIG9mIGl0AAA=", "result"), ("ZXJyb3IgYW5zd2VyAAAAAAAAAAA=",
                                                                       "error")):
        raw.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='urn:example' "
                 f"ver='{ver}'/></presence>")
        while True:
            q = raw.next_element()
            if q.tag == tag(NS_CLIENT, "iq") and q.get("type") == "get":
                break
        query = q.find(tag(NS_INFO, "query"))
        assert query is not None and query.get("node") == f"urn:example#{ver}", \
            ET.tostring(q).decode()
        assert q.get("from") == DOMAIN, q.attrib
        # Someone else answers first, with the question's id: not taken as the answer.
        mallory.send(f"<iq type='error' id='{q.get('id')}' to='{DOMAIN}'><error type='cancel'>"
                     f"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        # ... and has been read before alice answers: a ping behind it on the same stream.
        mallory.send(f"<iq type='get' id='p-{ver}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert iq_answer(mallory, f"p-{ver}").get("type") == "result"
        if answer == "result":
            raw.send(f"<iq type='result' id='{q.get('id')}' to='{DOMAIN}'>"
                     f"<query xmlns='{NS_INFO}' node='urn:example#{ver}'>"
                     f"<identity category='client' type='pc'/><feature var='urn:x'/>"
                     f"</query></iq>")
        else:
            raw.send(f"<iq type='error' id='{q.get('id')}' to='{DOMAIN}'>"
                     f"<error type='cancel'><item-not-found "
                     f"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")

    async def counted():
        await await_metric(server, QUERIES, at_least=1, result="mismatch")
        await await_metric(server, QUERIES, at_least=1, result="error")
    asyncio.run(asyncio.wait_for(counted(), TIMEOUT))
    text = server.metrics_text()
    assert metric_sum(text, CACHED) == 0
    assert metric_sum(text, QUERIES, result="ok") == 0
    # mallory's two forged answers are not counted: one mismatch and one error, alice's own.
    assert metric_sum(text, QUERIES, result="mismatch") == 1
    assert metric_sum(text, QUERIES, result="error") == 1
