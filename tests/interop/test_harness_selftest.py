"""Self-tests of the interop harness with the two known-good servers: Prosody and ejabberd
federating with each other (Waddle will later take one side's place).

- DNS: dnsmasq answers the A and SRV records it was given and NXDOMAIN for the rest of .test.
- "cert" mode: both trust the private CA, no dialback anywhere: SASL EXTERNAL both ways.
- "dialback" mode: self-signed certificates, dialback over TLS both ways.
- SRV with a non-default port: the peer listens for s2s only on that port, so a delivered
  message proves the sender followed the SRV record.
Each scenario checks from both servers' logs which authentication was actually used.
"""

from __future__ import annotations

import pytest

import harness
from harness import exchange, login, run_async

P, E = "prosody.test", "ejabberd.test"


def start_pair(fed: harness.Federation, mode: str, *, prosody_s2s: int = harness.S2S_PORT,
               ejabberd_s2s: int = harness.S2S_PORT):
    p = fed.prosody(P, mode, s2s_port=prosody_s2s, users=["alice"])
    e = fed.ejabberd(E, mode, s2s_port=ejabberd_s2s)
    fed.start()
    e.register("bob")
    return p, e


def converse(p: harness.Prosody, e: harness.Ejabberd) -> dict[str, float]:
    """alice@prosody <-> bob@ejabberd, two messages each way (the first ones open the s2s
    streams, the second ones reuse them). Returns the delivery times."""
    times: dict[str, float] = {}

    async def body():
        alice = await login(p, "alice")
        bob = await login(e, "bob")
        times["prosody->ejabberd first"] = await exchange(alice, bob, "hello bob")
        times["ejabberd->prosody first"] = await exchange(bob, alice, "hello alice")
        times["prosody->ejabberd again"] = await exchange(alice, bob, "still there, bob?")
        times["ejabberd->prosody again"] = await exchange(bob, alice, "yes, alice")
        assert not [m for m in alice.messages.items + bob.messages.items
                    if m["type"] == "error"], "unexpected error stanzas"

    run_async(body, timeout=90)
    return times


def test_dns_answers_only_its_records(federation):
    fed = federation
    fed.add_domain("a.test", "127.0.0.201", s2s_port=5270)
    fed.start()
    assert fed.dns.query("a.test") == (0, ["127.0.0.201"])
    assert fed.dns.query("conference.a.test") == (0, ["127.0.0.201"])  # room subdomain
    assert fed.dns.query("_xmpp-server._tcp.a.test", "SRV") == (0, [(0, 5, 5270, "a.test")])
    rcode, answers = fed.dns.query("unknown.test")
    assert (rcode, answers) == (3, []), "names without records must be NXDOMAIN"
    # records added later take effect after reload()
    fed.add_domain("b.test", "127.0.0.202", s2s_port=None)
    fed.start()
    assert fed.dns.query("b.test") == (0, ["127.0.0.202"])
    assert fed.dns.query("_xmpp-server._tcp.b.test", "SRV")[1] == []


def test_federation_certificates(federation):
    """Certificate-only federation: SASL EXTERNAL in both directions, no dialback."""
    p, e = start_pair(federation, "cert")
    times = converse(p, e)
    print("delivery times:", times, "start:", p.start_seconds, e.start_seconds)
    # Prosody: outbound and inbound SASL EXTERNAL
    p.wait_log(f"SASL EXTERNAL with {E} succeeded")
    p.wait_log(f"Accepting SASL EXTERNAL identity from {E}")
    p.wait_log(f"Outgoing s2s connection {P}->{E} complete")
    p.wait_log(f"Incoming s2s connection {E}->{P} complete")
    # ejabberd: both directions authenticated with EXTERNAL
    e.wait_log(f"Accepted inbound s2s EXTERNAL authentication {P} -> {E}")
    e.wait_log(f"Accepted outbound s2s EXTERNAL authentication {E} -> {P}")
    # and no dialback anywhere (neither server even has it loaded)
    assert "Initiating dialback" not in p.log_text()
    assert "verifying that dialback key" not in p.log_text()
    assert "s2s dialback authentication" not in e.log_text()
    assert "Stream encrypted (TLSv1.3" in p.log_text()


def test_federation_dialback(federation):
    """Untrusted self-signed certificates: SASL EXTERNAL fails, dialback over TLS succeeds
    in both directions."""
    p, e = start_pair(federation, "dialback")
    times = converse(p, e)
    print("delivery times:", times, "start:", p.start_seconds, e.start_seconds)
    # Prosody tried EXTERNAL, fell back to dialback; as authoritative server it verified
    # ejabberd's key; and it accepted ejabberd's inbound dialback.
    p.wait_log(f"SASL EXTERNAL with {E} failed")
    p.wait_log("SASL EXTERNAL failed, falling back to dialback")
    p.wait_log("verified dialback key... it is valid")
    p.wait_log(f"Outgoing s2s connection {P}->{E} complete")
    p.wait_log(f"Incoming s2s connection {E}->{P} complete")
    assert "Accepting SASL EXTERNAL identity" not in p.log_text()
    # ejabberd: both directions authenticated with dialback
    e.wait_log(f"Accepted inbound s2s dialback authentication {P} -> {E}")
    e.wait_log(f"Accepted outbound s2s dialback authentication {E} -> {P}")
    assert "s2s EXTERNAL authentication" not in e.log_text().replace(
        "Failed inbound s2s EXTERNAL", "").replace("Failed outbound s2s EXTERNAL", "")
    assert "Stream encrypted (TLSv1.3" in p.log_text()


@pytest.mark.parametrize("side", ["ejabberd", "prosody"])
def test_srv_nondefault_port(federation, side):
    """side="ejabberd": ejabberd's s2s listens only on 5275 and its SRV record says so;
    Prosody must follow the SRV record to reach it (and the reverse for side="prosody")."""
    port = 5275
    if side == "ejabberd":
        p, e = start_pair(federation, "cert", ejabberd_s2s=port)
        target, sender = e, p
    else:
        p, e = start_pair(federation, "cert", prosody_s2s=port)
        target, sender = p, e
    assert not harness.tcp_open(target.ip, harness.S2S_PORT), "5269 must be closed"
    assert harness.tcp_open(target.ip, port)
    assert federation.dns.query(f"_xmpp-server._tcp.{target.domain}", "SRV") == (
        0, [(0, 5, port, target.domain)])
    times = converse(p, e)
    print("delivery times:", times)
    if side == "ejabberd":
        p.wait_log(f"Next target to try is {e.ip}:{port}")
    # the sender asked for the SRV record (dnsmasq logs every query)
    dns_log = federation.dns.log_path.read_text()
    assert f"query[SRV] _xmpp-server._tcp.{target.domain}" in dns_log
    print(f"{sender!r} reached {target!r} on port {port}")


def test_prosody_needs_unbound_test_zone_fix(federation):
    """Documents the libunbound trap: without ``local-zone: "test. transparent"`` Prosody
    answers NXDOMAIN for every *.test name itself, never asks dnsmasq, and bounces the
    stanza with remote-server-not-found. (No ejabberd needed: nothing gets that far.)"""
    p = federation.prosody(P, "cert", users=["alice"], unbound_test_zone_fix=False)
    federation.add_domain(E, "127.0.0.199")  # a record exists, but is never asked for
    federation.start()

    async def body():
        alice = await login(p, "alice")
        alice.chat(f"bob@{E}", "anyone?")
        err = await alice.messages.get(lambda m: m["type"] == "error", timeout=15)
        return err["error"]["condition"]

    assert run_async(body, timeout=30) == "remote-server-not-found"
    p.wait_log(f"Results for _xmpp-server._tcp.{E} IN SRV: NXDomain")
    assert E not in federation.dns.log_path.read_text(), "the query should never leave Prosody"
