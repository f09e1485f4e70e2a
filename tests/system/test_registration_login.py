"""Account registration (XEP-0077), SASL login and TLS requirements on the client port."""

import asyncio
import base64
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

import light_c2s
from rawxmpp import NS_SASL, NS_STREAMS, NS_TLS, RawXmpp, tag
from waddle_client import DOMAIN, PASSWORD, Client, login, run
from waddle_server import C2S_PORT

ALICE = f"alice@{DOMAIN}"


def test_inband_registration_then_login_with_scram_sha_256(server):
    async def body():
        reg = Client(server, f"newbie@{DOMAIN}/reg", PASSWORD, mech="SCRAM-SHA-256",
                     register=True)
        assert await reg.attempt(), f"registration + login failed: {reg.describe()}"
        assert reg.registered, reg.describe()
        assert reg.mech_used == "SCRAM-SHA-256"
        await reg.close()
        # a fresh connection with the new account
        again = await login(server, f"newbie@{DOMAIN}/again", PASSWORD, mech="SCRAM-SHA-256",
                            online=False)
        assert again.mech_used == "SCRAM-SHA-256"
        assert again.boundjid.full == f"newbie@{DOMAIN}/again"
    run(body)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_login_over_starttls_with_each_mechanism(server, mech):
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = await login(server, f"{ALICE}/desk", PASSWORD, mech=mech, online=False)
        assert c.mech_used == mech
        assert c.boundjid.full == f"{ALICE}/desk"
    run(body)


def test_login_over_direct_tls(server):
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = await login(server, f"{ALICE}/direct", PASSWORD, direct_tls=True, online=False)
        assert c.boundjid.full == f"{ALICE}/direct"
    run(body)


def test_bind_without_resource_gets_server_generated_resource(server):
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = await login(server, ALICE, PASSWORD, online=False)
        assert c.boundjid.bare == ALICE
        assert c.boundjid.resource, f"no resource in bound JID {c.boundjid.full!r}"
    run(body)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_wrong_password_is_not_authorized_and_no_session(server, mech):
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = Client(server, f"{ALICE}/x", "wrong password", mech=mech)
        assert not await c.attempt(), "login with a wrong password started a session"
        assert c.auth_failures == ["not-authorized"], c.describe()
        assert c.mech_used is None
    run(body)


def test_unknown_user_is_not_authorized(server):
    async def body():
        c = Client(server, f"nobody@{DOMAIN}/x", PASSWORD)
        assert not await c.attempt()
        assert c.auth_failures == ["not-authorized"], c.describe()
    run(body)


def test_too_many_auth_failures_close_the_stream(server):
    server.adduser(ALICE, PASSWORD)
    max_failures = server.config["c2s"]["max_auth_failures"]
    raw = RawXmpp(server.ip, server.port)
    try:
        raw.tls_stream()
        base = len(raw.elements)
        for attempt in range(1, max_failures + 2):
            seen = len(raw.elements)
            if not raw.send(raw.auth_plain_request("alice", f"wrong-{attempt}")):
                break
            raw.collect_until(lambda r: len(r.elements) > seen or r.eof)
            if raw.eof or raw.stream_closed or raw.stream_error_conditions():
                break
        raw.collect_until_closed(timeout=10)
        answers = raw.elements[base:]
        assert tag(NS_SASL, "success") not in [e.tag for e in answers], raw.received_text()
        failures = [e for e in answers if e.tag == tag(NS_SASL, "failure")]
        assert all(f.find(tag(NS_SASL, "not-authorized")) is not None for f in failures), (
            raw.received_text())
        # the stream stays open for retries below the limit ...
        assert len(failures) >= max_failures - 1, (
            f"stream closed after {len(failures)} failures, before the limit of {max_failures}:"
            f" {raw.received_text()!r}")
        # ... and is closed with a stream error once the limit is reached
        assert raw.eof and raw.stream_closed, (
            f"stream still open after {len(failures)} failed attempts (limit {max_failures}):"
            f" {raw.received_text()!r}")
        assert raw.stream_error_conditions(), (
            f"stream closed without a stream error: {raw.received_text()!r}")
        assert len(failures) <= max_failures
    finally:
        raw.close()


def test_registration_conflict_for_existing_user(server):
    server.adduser(ALICE, PASSWORD)

    async def body():
        reg = Client(server, f"{ALICE}/reg", "another password", register=True)
        started = await reg.attempt()
        assert reg.registration_error == "conflict", reg.describe()
        assert not started, "registration conflict still logged in with the new password"
        await reg.close()
        # the existing account is untouched
        await login(server, f"{ALICE}/after", PASSWORD, online=False)
    run(body)


def test_registration_refused_when_disabled(make_server):
    server = make_server({"c2s": {"allow_registration": False}})

    async def body():
        reg = Client(server, f"newbie@{DOMAIN}/reg", PASSWORD, register=True)
        started = await reg.attempt()
        assert not started
        assert reg.registration_error in ("not-allowed", "service-unavailable",
                                          "forbidden"), reg.describe()
    run(body)


def test_password_change_then_only_new_password_works(server):
    server.adduser(ALICE, PASSWORD)
    new_password = "a brand new password"

    async def body():
        c = await login(server, f"{ALICE}/x", PASSWORD, online=False)
        await c["xep_0077"].change_password(new_password, timeout=10)
        await c.close()
        old = Client(server, f"{ALICE}/old", PASSWORD)
        assert not await old.attempt(), "old password still accepted"
        assert old.auth_failures == ["not-authorized"], old.describe()
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
            new = await login(server, f"{ALICE}/new-{mech}", new_password, mech=mech,
                              online=False)
            await new.close()
    run(body)


def test_account_removal_then_login_fails(server):
    server.adduser(ALICE, PASSWORD)

    async def body():
        c = await login(server, f"{ALICE}/x", PASSWORD, online=False)
        # XEP-0077 3.2: IQ result; the server may then close the stream.
        fut = asyncio.ensure_future(c["xep_0077"].cancel_registration(timeout=10))
        await asyncio.wait({fut, c._gone}, return_when=asyncio.FIRST_COMPLETED, timeout=12)
        if fut.done():
            try:
                fut.result()
            except IqError as e:
                raise AssertionError(f"account removal refused: {e.iq}") from None
        else:
            fut.cancel()
            assert c.gone, "neither an IQ result nor a disconnect after <remove/>"
        await c.close()
        gone = Client(server, f"{ALICE}/y", PASSWORD)
        assert not await gone.attempt(), "removed account can still log in"
        assert gone.auth_failures == ["not-authorized"], gone.describe()
    run(body)


def test_features_before_tls_offer_only_required_starttls(server):
    raw = RawXmpp(server.ip, server.port)
    try:
        features = raw.open_stream()
        children = [c.tag for c in features]
        assert children == [tag(NS_TLS, "starttls")], ET.tostring(features).decode()
        assert features.find(f"{tag(NS_TLS, 'starttls')}/{tag(NS_TLS, 'required')}") \
            is not None, ET.tostring(features).decode()
    finally:
        raw.close()


def _scram_first_message(user: str) -> str:
    return base64.b64encode(f"n,,n={user},r=abcdefghijklmnop".encode()).decode()


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_before_tls_is_refused(server, mech):
    server.adduser(ALICE, PASSWORD)
    raw = RawXmpp(server.ip, server.port)
    try:
        raw.open_stream()
        if mech == "PLAIN":
            raw.send(raw.auth_plain_request("alice", PASSWORD))
        else:
            raw.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>"
                     f"{_scram_first_message('alice')}</auth>")

        def answered(r):
            return any(e.tag in (tag(NS_SASL, "failure"), tag(NS_SASL, "success"),
                                 tag(NS_SASL, "challenge"), tag(NS_STREAMS, "error"))
                       for e in r.elements)
        raw.collect_until(answered, timeout=10)
        tags = [e.tag for e in raw.elements]
        assert tag(NS_SASL, "success") not in tags, raw.received_text()
        assert tag(NS_SASL, "challenge") not in tags, raw.received_text()
        failure = next((e for e in raw.elements if e.tag == tag(NS_SASL, "failure")), None)
        refused_by_failure = (failure is not None
                              and failure.find(tag(NS_SASL, "encryption-required")) is not None)
        refused_by_stream_error = bool(raw.stream_error_conditions())
        assert refused_by_failure or refused_by_stream_error, (
            f"SASL {mech} before TLS was not refused with <encryption-required/> or a stream"
            f" error: {raw.received_text()!r}")
        if refused_by_stream_error:
            raw.collect_until_closed(timeout=10)
            assert raw.stream_closed and raw.eof, raw.received_text()
    finally:
        raw.close()


def test_session_after_binding_is_answered(server):
    """RFC 3921 §3: older clients still establish a session once bound. RFC 6121 made that a
    no-op which the server advertises as optional and answers with a result, never an error."""
    async def body():
        c = light_c2s.LightC2s(server.ip, C2S_PORT, DOMAIN, "oldclient", PASSWORD, "legacy")
        deadline = asyncio.get_running_loop().time() + 20
        await c.negotiate(deadline, register=True)
        c._send_raw(f"<iq type='set' id='sess-1'><session xmlns='{light_c2s.NS_SESSION}'/></iq>")
        while True:
            el = await c._next(deadline)
            if el.tag == light_c2s.tag(light_c2s.NS_CLIENT, "iq") and el.get("id") == "sess-1":
                return el

    answer = run(body)
    assert answer.get("type") == "result", ET.tostring(answer)



def _scram_sha256_login(raw: RawXmpp, user: str, password: str,
                        initial_response: bool = True) -> ET.Element:
    """A whole SCRAM-SHA-256 exchange (RFC 5802, RFC 7677) on `raw`, the client-first message
    in the <auth/> or (RFC 6120 §6.4.2: `=`, a zero-length initial response) in the first
    <response/>; returns the server's last answer (<success/> once the proof and the server
    signature check out)."""
    import hashlib
    import hmac
    import os

    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user},r={nonce}"
    client_first = base64.b64encode(("n,," + bare).encode()).decode()
    if initial_response:
        raw.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{client_first}</auth>")
    else:
        raw.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>=</auth>")
        empty = raw.next_element()
        if empty.tag != tag(NS_SASL, "challenge") or (empty.text or "").strip("="):
            return empty
        raw.send(f"<response xmlns='{NS_SASL}'>{client_first}</response>")
    challenge = raw.next_element()
    if challenge.tag != tag(NS_SASL, "challenge"):
        return challenge
    server_first = base64.b64decode(challenge.text).decode()
    fields = dict(p.split("=", 1) for p in server_first.split(","))
    assert fields["r"].startswith(nonce), server_first
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    raw.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final.encode()).decode()}</response>")
    answer = raw.next_element()
    if answer.tag == tag(NS_SASL, "success"):
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        expected = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        got = base64.b64decode(base64.b64decode(answer.text).decode().split("v=", 1)[1])
        assert got == expected, "server signature does not verify"
    return answer


@pytest.mark.parametrize("initial_response", [True, False], ids=["initial", "empty-initial"])
def test_scram_restarts_after_abort(server, initial_response):
    """RFC 6120 §6.4.4: the client may abort an exchange and start another; the aborted one
    is answered with <aborted/> and the next one, with or without an initial response,
    succeeds with the right password."""
    server.adduser(ALICE, PASSWORD)
    raw = RawXmpp(server.ip, server.port)
    try:
        raw.tls_stream()
        raw.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                 f"{_scram_first_message('alice')}</auth>")
        assert raw.next_element().tag == tag(NS_SASL, "challenge"), raw.received_text()
        raw.send(f"<abort xmlns='{NS_SASL}'/>")
        aborted = raw.next_element()
        assert aborted.tag == tag(NS_SASL, "failure"), raw.received_text()
        assert aborted.find(tag(NS_SASL, "aborted")) is not None, raw.received_text()
        answer = _scram_sha256_login(raw, "alice", PASSWORD, initial_response)
        assert answer.tag == tag(NS_SASL, "success"), raw.received_text()
        raw.open_stream()
        assert raw.bind("after-abort").startswith(f"{ALICE}/"), raw.received_text()
    finally:
        raw.close()


def test_plain_takes_as_long_for_an_unknown_account_as_for_a_wrong_password(server):
    """Whether an account exists must not show in how long PLAIN takes to fail: a wrong
    password costs the server a key derivation (PBKDF2, 4096 rounds), so an unknown account
    must cost one too. Compared by the fastest of many interleaved attempts (the least
    disturbed by load), with a wide margin: without the derivation the unknown account is
    answered in a fraction of the time."""
    import time
    server.adduser(ALICE, PASSWORD)
    per_stream = max(1, server.config["c2s"]["max_auth_failures"] - 1)
    timings = {"alice": [], "nobody": []}
    for _ in range(10):
        raw = RawXmpp(server.ip, server.port)
        try:
            raw.tls_stream()
            for i in range(per_stream):
                user = ("alice", "nobody")[i % 2]
                started = time.perf_counter()
                answer = raw.auth_plain(user, "not-the-password")
                timings[user].append(time.perf_counter() - started)
                assert answer.find(tag(NS_SASL, "not-authorized")) is not None, (
                    raw.received_text())
        finally:
            raw.close()
    known, unknown = min(timings["alice"]), min(timings["nobody"])
    assert len(timings["nobody"]) >= 6, timings
    assert unknown >= 0.5 * known, (
        f"an unknown account fails in {unknown * 1e3:.2f} ms, a wrong password in"
        f" {known * 1e3:.2f} ms: the difference tells whether the account exists")
