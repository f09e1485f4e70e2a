"""External components (XEP-0114).

A component connects to [components] port with the secret configured for its domain, then
answers for that domain: stanzas for it and its JIDs reach it, and what it sends from its
domain reaches local users. The component here is slixmpp's own ComponentXMPP (with its
disco plugin answering disco#info); raw sockets send what no real component would (a wrong
secret, an unknown domain, a second connection, a foreign 'from'). While the component is not
connected, stanzas for it get service-unavailable: every message a user sends to it is either
delivered or bounced, never lost.

Run: /usr/bin/python3 -m pytest tests/system/test_components.py -q
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import slixmpp

from federation import metric_sum
from rawxmpp import NS_STREAMS, RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, TIMEOUT, error_condition, login, run

GW = f"gw.{DOMAIN}"
SECRET = "s3cret-for-the-gateway"
COMPONENT_PORT = 5347
NS_ACCEPT = "jabber:component:accept"
ALICE = f"alice@{DOMAIN}"
CONNECTED = "waddle_component_connected"
HANDSHAKES = "waddle_component_handshakes_total"
STANZAS = "waddle_component_stanzas_total"
BOUNCED = "waddle_component_bounced_total"


@pytest.fixture
def server(make_server):
    srv = make_server({"components": {"port": COMPONENT_PORT,
                                      "domains": {GW: {"secret": SECRET}}}}, start=False)
    srv.config["components"]["listen"] = [srv.ip]  # the test's own loopback address
    srv.write_config()
    srv.start()
    srv.adduser(ALICE, PASSWORD)
    return srv


async def disconnected(srv) -> None:
    """Waits (bounded) until the server counts the component as gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while metric_sum(srv, CONNECTED, domain=GW) != 0:
        assert loop.time() < deadline, "the component is still counted as connected"
        await asyncio.sleep(0.05)


class Gateway(slixmpp.ComponentXMPP):
    """The component: records the messages it receives, answers disco#info."""

    def __init__(self, srv, secret: str = SECRET):
        super().__init__(GW, secret, srv.ip, COMPONENT_PORT)
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="gateway", itype="test", name="Test gateway")
        self.received: asyncio.Queue = asyncio.Queue()
        self.connected_event = asyncio.Event()
        self.add_event_handler("message", lambda m: self.received.put_nowait(m))
        self.add_event_handler("session_start", lambda _: self.connected_event.set())

    async def start(self) -> None:
        self.connect()
        await asyncio.wait_for(self.connected_event.wait(), TIMEOUT)


def raw_component(srv, domain: str = GW, ns: str = NS_ACCEPT) -> RawXmpp:
    """A raw connection whose component stream header has been answered."""
    raw = RawXmpp(srv.ip, COMPONENT_PORT)
    raw.send(f"<?xml version='1.0'?><stream:stream xmlns='{ns}' "
             f"xmlns:stream='{NS_STREAMS}' to='{domain}'>")
    assert raw.collect_until(lambda r: r.stream_open or r.eof), raw.received_text()
    return raw


def handshake(raw: RawXmpp, secret: str = SECRET) -> None:
    digest = hashlib.sha1((raw.stream_attrs["id"] + secret).encode()).hexdigest()
    raw.send(f"<handshake>{digest}</handshake>")


# --------------------------------------------------------------------------- tests


def test_component_and_user_exchange_stanzas(server):
    async def body():
        gw = Gateway(server)
        await gw.start()
        assert metric_sum(server, CONNECTED, domain=GW) == 1
        alice = await login(server, ALICE, PASSWORD)
        # user -> component: a message to a JID at its domain, from the user's full JID
        alice.send_message(mto=f"bot@{GW}", mbody="hello gateway", mtype="chat")
        m = await asyncio.wait_for(gw.received.get(), TIMEOUT)
        assert str(m["from"]) == str(alice.boundjid)
        assert str(m["to"]) == f"bot@{GW}"
        assert m["body"] == "hello gateway"
        # component -> user: from a JID at its domain, with a payload of its own namespace
        gw.send_message(mto=str(alice.boundjid), mfrom=f"bot@{GW}", mbody="hello alice",
                        mtype="chat")
        got = await alice.messages.get(lambda s: s["body"] == "hello alice")
        assert str(got["from"]) == f"bot@{GW}"
        # user -> component IQ, answered by the component's disco plugin
        info = await alice["xep_0030"].get_info(jid=GW, timeout=TIMEOUT)
        identities = info["disco_info"]["identities"]
        assert ("gateway", "test", None, "Test gateway") in identities, identities
        # the server lists the component among its items
        items = await alice["xep_0030"].get_items(jid=DOMAIN, timeout=TIMEOUT)
        assert GW in [i[0] for i in items["disco_items"]["items"]]
        text = server.metrics_text()
        assert metric_sum(text, STANZAS, domain=GW, direction="out") >= 2  # message, iq
        assert metric_sum(text, STANZAS, domain=GW, direction="in") >= 2
        assert metric_sum(text, HANDSHAKES, domain=GW, result="ok") == 1
        gw.disconnect()
        await disconnected(server)
        alice.disconnect()
    run(body)


# Every message sent to the component is delivered while it is connected and bounced with
# service-unavailable while it is not: sent = delivered + bounced.
def test_messages_to_an_absent_component_bounce_and_none_is_lost(server):
    async def body():
        alice = await login(server, ALICE, PASSWORD)
        sent, delivered, bounced = 0, 0, 0

        async def send_batch(n: int, gw) -> None:
            nonlocal sent, delivered, bounced
            first = sent
            for i in range(n):
                alice.send_message(mto=f"bot@{GW}", mbody=f"m{first + i}", mtype="chat")
            sent += n
            for i in range(n):
                if gw is None:
                    err = await alice.messages.get(
                        lambda s, b=f"m{first + i}": s["type"] == "error" and s["body"] == b)
                    assert error_condition(err) == "service-unavailable"
                    bounced += 1
                else:
                    m = await asyncio.wait_for(gw.received.get(), TIMEOUT)
                    assert m["body"] == f"m{first + i}"
                    delivered += 1

        await send_batch(5, None)
        gw = Gateway(server)
        await gw.start()
        await send_batch(5, gw)
        gw.disconnect()
        await disconnected(server)
        await send_batch(5, None)
        assert (sent, delivered, bounced) == (15, 5, 10)
        assert metric_sum(server, BOUNCED, domain=GW) == 10
        alice.disconnect()
    run(body)


def test_handshake_errors(server):
    # a wrong secret
    raw = raw_component(server)
    handshake(raw, "wrong")
    raw.assert_stream_error("not-authorized")
    # a domain no component is configured for, and a domain of users
    for domain in (f"other.{DOMAIN}", DOMAIN):
        raw = raw_component(server, domain=domain)
        raw.assert_stream_error("host-unknown")
    # a client stream on the component port
    raw = raw_component(server, ns="jabber:client")
    raw.assert_stream_error("invalid-namespace")
    # something else than the handshake first
    raw = raw_component(server)
    raw.send(f"<message from='{GW}' to='{ALICE}'/>")
    raw.assert_stream_error("not-authorized")
    # the right secret; then a second connection while the first is connected
    first = raw_component(server)
    handshake(first)
    first.expect(tag(NS_ACCEPT, "handshake"))
    second = raw_component(server)
    handshake(second)
    second.assert_stream_error("conflict")
    assert metric_sum(server, CONNECTED, domain=GW) == 1
    # the first one still works: it pings the server
    first.send(f"<iq type='get' id='p1' from='{GW}' to='{DOMAIN}'>"
               f"<ping xmlns='urn:xmpp:ping'/></iq>")
    pong = first.expect(tag(NS_ACCEPT, "iq"))
    assert pong.get("type") == "result" and pong.get("id") == "p1", pong.attrib
    text = server.metrics_text()
    assert metric_sum(text, HANDSHAKES, domain=GW, result="not_authorized") == 2
    assert metric_sum(text, HANDSHAKES, domain=GW, result="conflict") == 1
    assert metric_sum(text, HANDSHAKES, domain=GW, result="ok") == 1
    first.send("</stream:stream>")
    assert first.collect_until_closed()
    assert first.stream_closed


def test_a_component_sends_from_its_own_domain_only(server):
    raw = raw_component(server)
    handshake(raw)
    raw.expect(tag(NS_ACCEPT, "handshake"))
    # no 'to': answered with bad-request, the stream stays
    raw.send(f"<message id='m1' from='bot@{GW}'><body>x</body></message>")
    err = raw.expect(tag(NS_ACCEPT, "message"))
    assert err.get("type") == "error" and err.get("id") == "m1", err.attrib
    assert err.find(f"{{{NS_ACCEPT}}}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}bad-request") \
        is not None
    # a 'from' outside its domain closes the stream
    raw.send(f"<message from='{ALICE}' to='{ALICE}'><body>spoofed</body></message>")
    raw.assert_stream_error("invalid-from")


# A component that reconnects (the gateway restarted) is reachable again at once.
def test_a_component_that_reconnects_is_reachable_again(server):
    async def body():
        for _ in range(2):
            gw = Gateway(server)
            await gw.start()
            alice = await login(server, ALICE, PASSWORD)
            alice.send_message(mto=GW, mbody="ping", mtype="chat")
            m = await asyncio.wait_for(gw.received.get(), TIMEOUT)
            assert m["body"] == "ping"
            alice.disconnect()
            gw.disconnect()
            await disconnected(server)
    run(body)
