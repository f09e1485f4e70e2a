"""Offline messages (XEP-0160): stored while the recipient has no available resource,
delivered at its next initial presence, and kept across a crash (kill -9) and restart."""

import asyncio
import uuid
from xml.sax.saxutils import escape, quoteattr

import pytest

from waddle_client import DOMAIN, PASSWORD, NS_DELAY, has_delay, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
STORE_TIMEOUT = 10.0


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    return server


async def wait_stored(server, token: str, timeout: float = STORE_TIMEOUT) -> None:
    """Bounded poll of the SQLite database until the message is committed there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(server.db_contains, token, ("offline",)):
        if loop.time() > deadline:
            raise AssertionError(
                f"offline message {token} not found in {server.db_path} within {timeout}s")
        await asyncio.sleep(0.05)


def send_while_bob_offline(server, bodies: list[str]) -> None:
    async def body():
        alice = await login(server, f"{ALICE}/home", PASSWORD)
        for text in bodies:
            alice.chat(BOB, text)
        await alice.sync()
        # nothing bounced: an offline message to an existing account is stored, not refused
        assert alice.messages.take(lambda m: m["type"] == "error") is None, \
            alice.messages.items
        for text in bodies:
            await wait_stored(server, text)
    run(body)


async def stored_or_bounced(server, sender, bodies: list[str],
                            timeout: float = STORE_TIMEOUT) -> list:
    """After `sender` sent messages with these bodies to an account without an available
    resource: waits (bounded) until each one is either committed to offline storage or
    bounced back to the sender. Returns the bounces (error messages, taken from the sender's
    inbox)."""
    await sender.sync()
    bounces = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # The bounces come back as the store refuses them; the stored ones are committed.
    while True:
        err = sender.messages.take(lambda m: m["type"] == "error" and m["body"] in bodies)
        if err is not None:
            bounces.append(err)
            continue
        bounced = [e["body"] for e in bounces]
        stored = [t for t in bodies if t not in bounced
                  and await asyncio.to_thread(server.db_contains, t, ("offline",))]
        if len(stored) + len(bounces) == len(bodies):
            return bounces
        assert loop.time() < deadline, (
            f"{len(stored)} stored and {len(bounces)} bounced of {len(bodies)}")
        await asyncio.sleep(0.05)


def send_burst(sender, to: str, bodies: list[str]) -> None:
    """Chat messages with these bodies to `to`, in one write: the server reads them together,
    faster than any store can write one (sent one by one, each may be stored before the next
    arrives)."""
    sender.send_raw("".join(f"<message to={quoteattr(to)} type='chat'><body>{escape(t)}</body>"
                            "</message>" for t in bodies))


async def delivered_at_login(server, jid: str, kept: list[str], bounced: list[str]):
    """`jid` logs in: every message kept offline arrives, none that bounced. Returns the
    client."""
    client = await login(server, jid, PASSWORD)
    for text in kept:
        await client.messages.get(lambda m, t=text: m["body"] == t, what="an offline message")
    await client.sync()
    assert client.messages.take(lambda m: m["body"] in bounced) is None
    return client


def assert_delivered_at_initial_presence(server, bodies: list[str]) -> None:
    async def body():
        bob = await login(server, f"{BOB}/phone", PASSWORD)  # roster + initial presence
        for text in bodies:  # in the order they were sent
            m = await bob.messages.get(lambda m: m["body"] in bodies,
                                       what=f"offline message {text!r}")
            assert m["body"] == text, f"offline messages out of order: got {m['body']!r}" \
                f" while expecting {text!r}"
            assert m["from"].bare == ALICE, str(m)
            delay = has_delay(m)
            assert delay is not None, f"no <delay xmlns='{NS_DELAY}'/> in {m}"
            assert delay.get("stamp"), f"delay without stamp in {m}"
            assert m["to"].bare == BOB, str(m)
    run(body)


def test_offline_message_delivered_after_kill9_and_restart(users):
    text = f"while you were out {uuid.uuid4()}"
    send_while_bob_offline(users, [text])
    users.restart_after_kill9()
    assert_delivered_at_initial_presence(users, [text])


def test_offline_messages_keep_order_after_graceful_restart(users):
    texts = [f"offline {i} {uuid.uuid4()}" for i in range(3)]
    send_while_bob_offline(users, texts)
    users.restart()
    assert_delivered_at_initial_presence(users, texts)


def test_offline_message_waits_for_initial_presence(users):
    text = f"deliver me on presence {uuid.uuid4()}"
    send_while_bob_offline(users, [text])

    async def body():
        bob = await login(users, f"{BOB}/phone", PASSWORD, online=False)
        await bob.get_roster(timeout=10)
        await bob.sync()
        assert bob.messages.take(lambda m: m["body"] == text) is None, (
            "offline message delivered before initial presence")
        bob.send_presence()
        m = await bob.expect_message(frm=ALICE, body=text)
        assert has_delay(m) is not None, str(m)
    run(body)


def test_offline_message_delivered_once(users):
    text = f"only once {uuid.uuid4()}"
    send_while_bob_offline(users, [text])
    assert_delivered_at_initial_presence(users, [text])

    async def body():
        bob = await login(users, f"{BOB}/again", PASSWORD)
        await bob.sync()
        assert bob.messages.take(lambda m: m["body"] == text) is None, (
            "offline message delivered a second time")
    run(body)


def test_offline_storage_is_counted_in_metrics(users):
    """waddle_offline_messages_stored_total counts what was stored for offline accounts."""
    import re

    bodies = [f"counted {uuid.uuid4().hex}" for _ in range(2)]
    send_while_bob_offline(users, bodies)
    text = users.metrics_text()
    m = re.search(r"^waddle_offline_messages_stored_total (\d+)", text, re.M)
    assert m and int(m.group(1)) == 2, text


def test_offline_storage_is_bounded_in_bytes(make_server):
    """[c2s] max_offline_bytes bounds what one account keeps offline, whatever the count:
    beyond it a message bounces to its sender (service-unavailable) instead of being stored.
    Every message sent is either delivered at the next login or bounced."""
    server = make_server({"c2s": {"max_offline_bytes": 8192}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    filler = "x" * 1500
    bodies = [f"big {i} {uuid.uuid4().hex} {filler}" for i in range(12)]  # ~19 KB in all

    async def send():
        alice = await login(server, f"{ALICE}/home", PASSWORD)
        for text in bodies:
            alice.chat(BOB, text)
        bounces = await stored_or_bounced(server, alice, bodies)
        for err in bounces:
            assert err["error"]["condition"] == "service-unavailable", str(err)
        return [err["body"] for err in bounces]
    bounced = run(send)
    assert 0 < len(bounced) < len(bodies), f"{len(bounced)} of {len(bodies)} bounced"
    kept = [t for t in bodies if t not in bounced]
    assert sum(len(t) for t in kept) <= 8192, len(kept)

    run(lambda: delivered_at_login(server, f"{BOB}/phone", kept, bounced))


def test_offline_writes_waiting_for_the_store_are_bounded(make_server):
    """[c2s] max_offline_pending bounds what waits to be written to offline storage (all
    accounts together): a sender faster than the store hears resource-constraint (type wait)
    for what does not fit, instead of the server queueing it without bound. Here the bound
    is one message in flight, so a burst meets it. Every message is stored (and delivered at
    the next login) or bounced, and the bounces are counted in /metrics."""
    from federation import metric_sum

    server = make_server({"c2s": {"max_offline_pending": 1}})
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    bodies = [f"burst {i} {uuid.uuid4().hex} {'y' * 400}" for i in range(60)]

    async def send():
        alice = await login(server, f"{ALICE}/home", PASSWORD)
        send_burst(alice, BOB, bodies)
        bounces = await stored_or_bounced(server, alice, bodies)
        for err in bounces:
            assert err["error"]["condition"] == "resource-constraint", str(err)
            assert err["error"]["type"] == "wait", str(err)
        return [err["body"] for err in bounces]

    bounced = run(send)
    assert 0 < len(bounced) < len(bodies), f"{len(bounced)} of {len(bodies)} bounced"
    assert metric_sum(server, "waddle_offline_messages_refused_total",
                      reason="busy") == len(bounced)
    kept = [t for t in bodies if t not in bounced]

    run(lambda: delivered_at_login(server, f"{BOB}/phone", kept, bounced))
