"""Outbound connections inside the operator's network (issue 9, [s2s] allow_internal_addresses):
whoever writes a JID picks where the server connects. By default a JID whose domain is an IP
literal, or a domain whose DNS answers are loopback or private addresses, bounces without any
connection attempt; with the switch on (a private deployment, and every other federation test,
whose peers are on loopback addresses), the same messages federate.

Each message sent is accounted for: delivered, or bounced with the documented error. "No
connection" is asserted with a listening socket on the address that nothing may reach (Trap)
and with the peer's own /metrics.
Run: /usr/bin/python3 -m pytest tests/system/test_internal_addresses.py -q
"""

from __future__ import annotations

import asyncio

from federation import ERRORS, FAST_RETRY, Trap, metric_sum
from muc import groupchat, join
from test_federation import error_condition, error_text, expect_error, nothing_from, send
from waddle_client import PASSWORD, login, run

A, B = "a.test", "b.test"
ALICE_R, BOB, BOB_R = f"alice@{A}/home", f"bob@{B}", f"bob@{B}/work"
INSIDE = "inside.test"  # resolves to the trap's loopback address
SWITCH = "set [s2s] allow_internal_addresses = true to federate inside a private network"
BOUNCED = "waddle_s2s_bounced_total"  # {domain, condition}
CONNECTIONS = "waddle_s2s_connections_total"  # {domain, direction}


def test_internal_addresses_are_refused_by_default_without_connecting(fed):
    """a.test keeps the default (allow_internal_addresses = false). A message to b.test (a
    real Waddle, A record on a loopback address) and one to inside.test (A record on the
    trap's address) bounce with remote-server-not-found naming the address and the switch;
    messages to the IP literals user@TRAP_IP and user@[::1] bounce with policy-violation.
    No retry waits (the bounce is immediate although retries are configured), the trap and
    b.test see no connection, and `waddle check s2s` refuses the same way."""
    trap_ip = fed.unused_address()
    trap = Trap(trap_ip)
    a = fed.server(A, dns="srv", users=("alice",),
                   s2s={"allow_internal_addresses": False,
                        "retry": {**FAST_RETRY, "initial_delay": "5s"}})
    b = fed.server(B, dns="a", users=("bob",))
    fed.dns.a(INSIDE, trap_ip)
    fed.start()
    sent = {  # id -> (to, condition, what the text says)
        "in-1": (BOB, "remote-server-not-found",
                 f"b.test resolves only to internal addresses ({b.ip}); {SWITCH}"),
        "in-2": (f"user@{INSIDE}", "remote-server-not-found",
                 f"inside.test resolves only to internal addresses ({trap_ip}); {SWITCH}"),
        "in-3": (f"user@{trap_ip}", "policy-violation",
                 f"{trap_ip} is an IP address, and this server only connects to domain names; "
                 f"{SWITCH}"),
        "in-4": ("user@[::1]", "policy-violation", "[::1] is an IP address"),
    }

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for mid, (to, _, _) in sent.items():
            send(alice, to, f"hello {mid}", mid)
        for mid, (to, condition, text) in sent.items():
            err = await expect_error(alice, mid, timeout=10)
            assert error_condition(err) == condition, str(err)
            assert text in error_text(err), f"the bounce does not say '{text}': {err}"
        # The first retry would come after 5 s: these bounces did not wait for it.
        assert loop.time() - t0 < 4, f"bounced after {loop.time() - t0:.1f}s"
        await nothing_from(bob, A)  # sent 4 = delivered 0 + bounced 4
    run(body)

    assert trap.connections() == 0, "a.test connected to the trap's address"
    trap.close()
    text = a.metrics_text()
    assert metric_sum(text, ERRORS, kind="dns") == 2, text  # one attempt each, no retry
    assert metric_sum(text, BOUNCED, condition="remote-server-not-found") == 2, text
    assert metric_sum(text, BOUNCED, condition="policy-violation") == 2, text
    assert metric_sum(text, CONNECTIONS, direction="out") == 0, text
    assert metric_sum(b, CONNECTIONS, direction="in") == 0, "b.test was connected to"

    check = a.cli("check", "s2s", B)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"FAILED (dns): b.test resolves only to internal addresses ({b.ip})" in check.stdout, (
        check.stdout)
    assert f"DNS: skipped {b.ip} (loopback): an internal address" in check.stdout, check.stdout
    check = a.cli("check", "s2s", trap_ip)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"FAILED (policy): {trap_ip} is an IP address" in check.stdout, check.stdout
    assert metric_sum(b, CONNECTIONS, direction="in") == 0, "`check s2s` connected to b.test"


def test_internal_addresses_federate_with_the_switch(fed):
    """The same with allow_internal_addresses = true (the federation fixture's default for
    loopback peers): the message to b.test is delivered, `waddle check s2s b.test` succeeds,
    and a message to user@TRAP_IP connects to that address (the trap accepts, then closes:
    the message bounces with remote-server-not-found after the retries, not with
    policy-violation)."""
    trap_ip = fed.unused_address()
    trap = Trap(trap_ip)
    a = fed.server(A, dns="srv", users=("alice",), s2s={"retry": FAST_RETRY})
    b = fed.server(B, dns="a", users=("bob",))
    fed.start()
    assert a.config["s2s"]["allow_internal_addresses"] is True

    async def body():
        alice = await login(a, ALICE_R, PASSWORD)
        bob = await login(b, BOB_R, PASSWORD)
        send(alice, BOB, "hello over loopback", "on-1")
        await bob.expect_message(frm=ALICE_R, body="hello over loopback", mtype="chat")

        send(alice, f"user@{trap_ip}", "hello IP literal", "on-2")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while trap.connections() == 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)  # polling the trap's accept queue under the deadline
        assert trap.connections() >= 1, "a.test did not connect to the IP literal"
        trap.close()  # the accepted connection ends, and the retries find nothing listening
        err = await expect_error(alice, "on-2", timeout=15)
        assert error_condition(err) == "remote-server-not-found", str(err)
        assert trap_ip in error_text(err), str(err)
    run(body)

    check = a.cli("check", "s2s", B)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK: a test stream authenticated with SASL EXTERNAL" in check.stdout, check.stdout


def test_embedded_default_domain_is_served_locally_with_the_default_switch(make_server):
    """The README's quick start serves `localhost` with federation on and the switch at its
    default: its users chat and use a room on conference.localhost, none of which goes
    through federation (no S2S error, bounce or connection)."""
    srv = make_server({"server": {"domains": ["localhost"]}, "s2s": {"enabled": True}},
                      start=False)
    assert "allow_internal_addresses" not in srv.config["s2s"]
    for user in ("alice", "bob"):
        srv.adduser(f"{user}@localhost", PASSWORD)
    srv.start()

    async def body():
        alice = await login(srv, "alice@localhost/home", PASSWORD)
        bob = await login(srv, "bob@localhost/work", PASSWORD)
        alice.chat("bob@localhost", "hello from localhost")
        await bob.expect_message(frm="alice@localhost/home", body="hello from localhost")
        room = "lobby@conference.localhost"
        await join(alice, room, "Alice")
        await join(bob, room, "Bob")
        groupchat(alice, room, "hello room")
        await bob.expect_message(frm=f"{room}/Alice", body="hello room", mtype="groupchat")
    run(body)

    text = srv.metrics_text()
    for name in (ERRORS, BOUNCED, CONNECTIONS):
        assert metric_sum(text, name) == 0, f"{name}:\n{text}"
