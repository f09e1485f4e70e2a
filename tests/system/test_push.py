"""Push notifications (XEP-0357).

A user's client registers an app server (a JID and a node); while every client of the account
is away (a phone whose connection dropped, waiting to resume with stream management, or no
session at all), each message worth keeping sends the app server a pubsub publish with the
urn:xmpp:push:summary form: the count of messages waiting and the last sender, the body only
when the user opted in and the server allows it. The app servers here are plain slixmpp
clients (this slixmpp has no XEP-0357 plugin: the commands are sent as raw XML payloads) that
answer with a result, an error, or nothing, and record what they received. An app server on
another Waddle is reached over S2S. While a notification waits for its answer, the ones due
meanwhile coalesce into one. Errors of type cancel (also an app server whose domain does not
resolve) and unanswered notifications end the registration; bad commands get the XEP's errors.
Where messages flow, every message sent reaches the user when they come back.

Run: /usr/bin/python3 -m pytest tests/system/test_push.py -q
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Optional

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from federation import await_metric, metric_sum
from rawxmpp import RawXmpp, tag
from test_stream_management import SM_EVENTS, phone_online
from waddle_client import DOMAIN, PASSWORD, TIMEOUT, Client, Inbox, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
APP = f"app@{DOMAIN}/push"
NS_CLIENT = "jabber:client"
NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
OPT_IN = "urn:waddle:push:0#include-body"  # Waddle's opt-in field (docs/clients.md)
PUSH = "waddle_push_notifications_total"
REGISTRATIONS = "waddle_push_registrations"
STORED = "waddle_offline_messages_stored_total"
SESSIONS = "waddle_c2s_sessions_active"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, f"app@{DOMAIN}"):
        server.adduser(jid, PASSWORD)
    return server


# --------------------------------------------------------------------------- helpers


def form_fields(x: Optional[ET.Element]) -> dict[str, str]:
    if x is None:
        return {}
    return {f.get("var"): f.findtext(f"{{{NS_DATA}}}value") or ""
            for f in x.findall(f"{{{NS_DATA}}}field")}


class Notification:
    def __init__(self, iq):
        self.frm = str(iq["from"])
        ps = iq.xml.find(f"{{{NS_PUBSUB}}}pubsub")
        publish = ps.find(f"{{{NS_PUBSUB}}}publish")
        self.node = publish.get("node")
        self.summary = form_fields(publish.find(
            f"{{{NS_PUBSUB}}}item/{{{NS_PUSH}}}notification/{{{NS_DATA}}}x"))
        self.options = form_fields(ps.find(f"{{{NS_PUBSUB}}}publish-options/{{{NS_DATA}}}x"))

    def __repr__(self) -> str:
        return f"Notification(from={self.frm} node={self.node} {self.summary} {self.options})"


class AppServer(Client):
    """A push app server: answers each notification with a result, an error of type cancel
    ("cancel"), nothing ("silent"), or a result when the test says so ("later": held until
    answer_held()), and records it."""

    def __init__(self, server, jid: str, answer: str = "result"):
        super().__init__(server, jid, PASSWORD)
        self.answer = answer
        self.notifications = Inbox(f"a push notification for {jid}")
        self.held: list = []
        self.register_handler(Callback(
            "push publish", MatchXPath(f"{{{NS_CLIENT}}}iq/{{{NS_PUBSUB}}}pubsub"),
            self._on_publish))

    def _on_publish(self, iq) -> None:
        if iq["type"] != "set":
            return
        self.notifications.put(Notification(iq))
        if self.answer == "result":
            iq.reply(clear=True).send()
        elif self.answer == "cancel":
            reply = iq.reply(clear=True)
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
            reply.send()
        elif self.answer == "later":
            self.held.append(iq)

    def answer_held(self) -> None:
        for iq in self.held:
            iq.reply(clear=True).send()
        self.held.clear()


async def app_server(server, jid: str = APP, answer: str = "result") -> AppServer:
    return await AppServer(server, jid, answer).start()


def command(name: str, jid: Optional[str], node: Optional[str],
            fields: Optional[dict[str, str]] = None) -> ET.Element:
    el = ET.Element(f"{{{NS_PUSH}}}{name}")
    if jid is not None:
        el.set("jid", jid)
    if node is not None:
        el.set("node", node)
    if fields is not None:
        x = ET.SubElement(el, f"{{{NS_DATA}}}x", {"type": "submit"})
        for var, value in {"FORM_TYPE": PUBLISH_OPTIONS, **fields}.items():
            f = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": var})
            ET.SubElement(f, f"{{{NS_DATA}}}value").text = value
    return el


async def enable(client: Client, jid: str, node: str,
                 fields: Optional[dict[str, str]] = None) -> None:
    iq = client.make_iq_set()
    iq.append(command("enable", jid, node, fields))
    await iq.send(timeout=TIMEOUT)


async def disable(client: Client, jid: str, node: Optional[str] = None) -> None:
    iq = client.make_iq_set()
    iq.append(command("disable", jid, node))
    await iq.send(timeout=TIMEOUT)


async def await_sessions(srv, count: int) -> None:
    """Until the server has exactly `count` client sessions (a closed one is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        got = await asyncio.to_thread(metric_sum, srv, SESSIONS)
        if got == count:
            return
        assert loop.time() < deadline, f"{got:g} client sessions, not {count}"
        await asyncio.sleep(0.05)  # polling /metrics under the deadline above


def summary(count: int, sender: str, body: Optional[str] = None) -> dict[str, str]:
    s = {"FORM_TYPE": "urn:xmpp:push:summary", "message-count": str(count),
         "last-message-sender": sender}
    if body is not None:
        s["last-message-body"] = body
    return s


# --------------------------------------------------------------------------- tests


def test_hibernated_phone_is_notified_then_resumes_with_every_message(users):
    async def body():
        app = await app_server(users)
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        phone = await phone_online(users, f"{ALICE}/phone")
        await enable(phone, APP, "phone-node")
        phone.drop()  # the connection dies without the stream being closed
        await await_metric(users, SM_EVENTS, 1, event="hibernated")

        bob.chat(ALICE, "first")
        n = await app.notifications.get()
        assert (n.frm, n.node) == (ALICE, "phone-node"), n
        assert n.summary == summary(1, BOB), n  # no body: the user did not opt in
        assert n.options == {}, n
        bob.chat(ALICE, "second")
        n = await app.notifications.get()
        assert n.summary == summary(2, BOB), n
        # A chat state alone is not worth a notification.
        state = bob.make_message(mto=ALICE, mtype="chat")
        state.append(ET.Element("{http://jabber.org/protocol/chatstates}composing"))
        state.send()
        await bob.sync()

        phone.connect(address=phone.address)
        await asyncio.wait_for(phone.resumed, 10)
        for text in ("first", "second"):
            await phone.expect_message(frm=f"{BOB}/desk", body=text)
        await await_metric(users, PUSH, 2, outcome="answered")
        text = users.metrics_text()
        assert metric_sum(text, PUSH, outcome="sent") == 2, text
        assert metric_sum(text, PUSH, outcome=("failed", "disabled")) == 0, text
        assert metric_sum(text, REGISTRATIONS) == 1, text
        # Back online: a message is not worth a notification any more.
        bob.chat(ALICE, "third")
        await phone.expect_message(frm=f"{BOB}/desk", body="third")
        assert metric_sum(users, PUSH, outcome="sent") == 2
        assert app.notifications.items == []
    run(body)


def test_notifications_due_while_one_is_unanswered_coalesce_into_one(users):
    async def body():
        app = await app_server(users, answer="later")
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        await enable(alice, APP, "n")
        await alice.close()
        bob = await login(users, f"{BOB}/desk", PASSWORD)
        await await_sessions(users, 2)
        bob.chat(ALICE, "m1")
        n = await app.notifications.get()
        assert n.summary == summary(1, BOB), n
        for text in ("m2", "m3"):
            bob.chat(ALICE, text)
        await await_metric(users, STORED, 3)
        await await_metric(users, PUSH, 2, outcome="coalesced")
        assert app.notifications.items == []  # nothing more while the first is unanswered
        app.answer_held()
        n = await app.notifications.get()
        assert n.summary == summary(3, BOB), n
        app.answer_held()
        await await_metric(users, PUSH, 2, outcome="answered")
        assert metric_sum(users, PUSH, outcome="sent") == 2
        alice = await login(users, f"{ALICE}/laptop", PASSWORD)
        for text in ("m1", "m2", "m3"):
            await alice.expect_message(frm=f"{BOB}/desk", body=text)
    run(body)


def test_offline_account_is_notified_body_only_after_opt_in(make_server):
    server = make_server({"push": {"allow_body": True}})
    for jid in (ALICE, BOB, f"app@{DOMAIN}"):
        server.adduser(jid, PASSWORD)

    async def body():
        app = await app_server(server)
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        await enable(alice, APP, "n1", {"secret": "s3cret"})
        await alice.close()
        await await_sessions(server, 1)
        bob = await login(server, f"{BOB}/desk", PASSWORD)

        bob.chat(ALICE, "not for the app server")
        n = await app.notifications.get()
        assert n.summary == summary(1, BOB), n
        assert n.options == {"FORM_TYPE": PUBLISH_OPTIONS, "secret": "s3cret"}, n

        # The same jid and node again, with the opt-in: replaces the registration.
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        await alice.expect_message(frm=f"{BOB}/desk", body="not for the app server")
        await enable(alice, APP, "n1", {"secret": "s3cret", OPT_IN: "true"})
        await alice.close()
        await await_sessions(server, 2)
        bob.chat(ALICE, "hello again")
        n = await app.notifications.get()
        # Counted from the user's last session; the opt-in is not forwarded.
        assert n.summary == summary(1, BOB, "hello again"), n
        assert n.options == {"FORM_TYPE": PUBLISH_OPTIONS, "secret": "s3cret"}, n
        await await_metric(server, PUSH, 2, outcome="answered")
        assert metric_sum(server, REGISTRATIONS) == 1
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        await alice.expect_message(frm=f"{BOB}/desk", body="hello again")
    run(body)


def test_app_server_on_another_server_over_s2s(fed):
    # No retries: the link to the domain that does not resolve fails at once.
    a = fed.server("a.test", users=("alice", "bob"), s2s={"retry": {"max_retries": 0}})
    b = fed.server("b.test", users=("app",))
    fed.start()
    app_jid = "app@b.test/push"

    async def body():
        app = await app_server(b, app_jid)
        alice = await login(a, "alice@a.test/laptop", PASSWORD)
        await enable(alice, app_jid, "remote-node")
        # An app server whose domain does not resolve: remote-server-not-found (cancel).
        await enable(alice, "app@nowhere.test/push", "lost-node")
        await alice.close()
        await await_sessions(a, 0)
        bob = await login(a, "bob@a.test/desk", PASSWORD)
        bob.chat("alice@a.test", "over there")
        n = await app.notifications.get(timeout=20)
        assert (n.frm, n.node) == ("alice@a.test", "remote-node"), n
        assert n.summary == summary(1, "bob@a.test"), n
        await await_metric(a, PUSH, 1, outcome="answered", what="the result came back over S2S")
        await await_metric(a, PUSH, 1, outcome="disabled", what="the unreachable one is removed")
        assert metric_sum(a, REGISTRATIONS) == 1
    run(body)


def test_refusing_or_silent_app_servers_lose_the_registration_and_disable_works(make_server):
    server = make_server({"push": {"notify_timeout": "1s"}})
    for jid in (ALICE, BOB, f"app@{DOMAIN}"):
        server.adduser(jid, PASSWORD)
    refusing, silent, good = (f"app@{DOMAIN}/{r}" for r in ("refusing", "silent", "good"))

    async def body():
        apps = {jid: await app_server(server, jid, answer)
                for jid, answer in ((refusing, "cancel"), (silent, "silent"), (good, "result"))}
        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        for jid in apps:
            # The opt-in has no effect while push.allow_body is off (the default).
            await enable(alice, jid, "n", {OPT_IN: "true"})
        await alice.close()
        bob = await login(server, f"{BOB}/desk", PASSWORD)
        await await_sessions(server, len(apps) + 1)

        bob.chat(ALICE, "one")
        for app in apps.values():
            n = await app.notifications.get()
            assert n.summary == summary(1, BOB), n
        await await_metric(server, PUSH, 2, outcome="disabled",
                           what="a cancel error and a timeout end their registrations")
        await await_metric(server, PUSH, 1, outcome="answered")
        assert metric_sum(server, REGISTRATIONS) == 1
        sent = metric_sum(server, PUSH, outcome="sent")
        assert sent == 3

        bob.chat(ALICE, "two")
        await await_metric(server, STORED, 2)
        n = await apps[good].notifications.get()
        assert n.summary == summary(2, BOB), n
        await await_metric(server, PUSH, 2, outcome="answered")
        assert metric_sum(server, PUSH, outcome="sent") == sent + 1
        assert apps[refusing].notifications.items == [] and apps[silent].notifications.items == []

        alice = await login(server, f"{ALICE}/laptop", PASSWORD)
        for text in ("one", "two"):
            await alice.expect_message(frm=f"{BOB}/desk", body=text)
        await disable(alice, good)
        await alice.close()
        await await_sessions(server, len(apps) + 1)
        bob.chat(ALICE, "three")
        await await_metric(server, STORED, 3)
        text = server.metrics_text()
        assert metric_sum(text, PUSH, outcome="sent") == sent + 1, text
        assert metric_sum(text, REGISTRATIONS) == 0, text
        assert apps[good].notifications.items == []
        assert bob.messages.take(lambda m: m["type"] == "error") is None, "a message bounced"
    run(body)


def test_bad_commands_get_the_xep_errors(users):
    """Raw XML: a missing node or jid is bad-request, a command to another account is
    forbidden; the account's disco#info lists the feature and the stream stays up."""
    raw = RawXmpp(users.ip, users.port)
    try:
        raw.login("alice", PASSWORD, resource="raw")
        x = ET.tostring
        cases = {
            "no-node": (x(command("enable", "push.example", None)), "", "bad-request"),
            "no-jid": (x(command("enable", None, "n")), "", "bad-request"),
            "bad-jid": (x(command("enable", "a@b@c", "n")), "", "bad-request"),
            "disable-no-jid": (x(command("disable", None, None)), "", "bad-request"),
            "not-options": ("<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'>"
                            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                            "<value>urn:other</value></field></x></enable>", "", "bad-request"),
            "other-user": (x(command("enable", "push.example", "n")), BOB, "forbidden"),
            "other-user-disable": (x(command("disable", "push.example", None)), BOB,
                                   "forbidden"),
        }
        for iq_id, (payload, to, _) in cases.items():
            payload = payload.decode() if isinstance(payload, bytes) else payload
            to_attr = f" to='{to}'" if to else ""
            raw.send(f"<iq type='set' id='{iq_id}'{to_attr}>{payload}</iq>")
        raw.send(f"<iq type='get' id='disco'><query xmlns='{NS_DISCO_INFO}'/></iq>")
        raw.send(f"<iq type='set' id='ok'>{x(command('enable', 'push.example', 'n')).decode()}"
                 "</iq>")
        answers = {}
        wanted = set(cases) | {"disco", "ok"}
        for _ in range(50):  # answers come in any order (some wait for storage)
            if wanted <= answers.keys():
                break
            el = raw.next_element()
            if el.tag == tag(NS_CLIENT, "iq"):
                answers[el.get("id")] = el
        for iq_id, (_, _, expected) in cases.items():
            el = answers[iq_id]
            err = el.find(tag(NS_CLIENT, "error"))
            assert el.get("type") == "error" and err is not None, x(el)
            assert err.find(tag(NS_STANZAS, expected)) is not None, (iq_id, x(el))
        features = [f.get("var") for f in answers["disco"].iter(tag(NS_DISCO_INFO, "feature"))]
        assert NS_PUSH in features, features
        assert answers["ok"].get("type") == "result", x(answers["ok"])
    finally:
        raw.close()
    assert metric_sum(users, REGISTRATIONS) == 1
    assert metric_sum(users, PUSH) == 0
