"""Stream errors (RFC 6120 4.9): each bad input gets exactly the right stream error, then
</stream:stream> and a closed connection, while two other logged-in clients on the same
server keep exchanging messages."""

import asyncio
from typing import Callable

import pytest

from rawxmpp import NS_SASL, RawXmpp, stream_header, tag
from waddle_client import DOMAIN, PASSWORD, login, run

ALICE, BOB, MALLORY = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"mallory@{DOMAIN}"
MAX_STANZA = 262144  # c2s.limits.max_stanza_size of the test config
TO_BOB = f"to='{BOB}' type='chat'"


@pytest.fixture
def users(server):
    for jid in (ALICE, BOB, MALLORY):
        server.adduser(jid, PASSWORD)
    return server


# ---------------------------------------------------------------- ways to misbehave


def before_tls(payload: str | bytes, header: bool = True) -> Callable:
    """Sends payload as the first bytes (after our own stream header if header)."""
    def provoke(server) -> RawXmpp:
        raw = RawXmpp(server.ip, server.port)
        if header:
            raw.open_stream()
        raw.send(payload)
        return raw
    return provoke


def after_login(payload: str, chunked: bool = False) -> Callable:
    """Logs in as mallory (TLS, PLAIN, bind), then sends payload."""
    def provoke(server) -> RawXmpp:
        raw = RawXmpp(server.ip, server.port)
        raw.login("mallory", PASSWORD)
        if chunked:
            raw.send_chunked(payload)
        else:
            raw.send(payload)
        return raw
    return provoke


def restart_after_auth(document_start: str) -> Callable:
    """TLS and SASL success, then the restarted stream begins with document_start."""
    def provoke(server) -> RawXmpp:
        raw = RawXmpp(server.ip, server.port)
        raw.tls_stream()
        answer = raw.auth_plain("mallory", PASSWORD)
        assert answer.tag == tag(NS_SASL, "success"), raw.received_text()
        raw.restart_stream_raw(document_start)
        return raw
    return provoke


DTD = "<!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]>"
DEEP = 200
ATTRS = 100

CASES = {
    "malformed-mismatched-end-tag": (
        after_login(f"<message {TO_BOB}><body>oops</bdy></message>"), "not-well-formed"),
    "malformed-lt-in-attribute": (
        after_login(f"<message to='{BOB}\"><body>x</body></message>"), "not-well-formed"),
    "malformed-before-tls": (
        before_tls("<foo></bar>"), "not-well-formed"),
    "oversized-stanza": (
        after_login(f"<message {TO_BOB}><body>" + "A" * (2 * MAX_STANZA) + "</body></message>",
                    chunked=True), "policy-violation"),
    "dtd-in-first-stream-header": (
        before_tls("<?xml version='1.0'?>" + DTD + stream_header(xml_decl=False), header=False),
        "restricted-xml"),
    "dtd-in-restarted-stream-after-auth": (
        restart_after_auth("<?xml version='1.0'?>" + DTD + stream_header(xml_decl=False)),
        "restricted-xml"),
    "comment-between-stanzas": (
        after_login("<!-- a comment -->"), "restricted-xml"),
    "comment-inside-stanza": (
        after_login(f"<message {TO_BOB}><!-- hidden --><body>x</body></message>"),
        "restricted-xml"),
    "processing-instruction-between-stanzas": (
        after_login("<?waddle-test hello?>"), "restricted-xml"),
    "processing-instruction-inside-stanza": (
        after_login(f"<message {TO_BOB}><?waddle-test hello?><body>x</body></message>"),
        "restricted-xml"),
    "very-deep-element": (
        after_login(f"<message {TO_BOB}><x xmlns='urn:waddle:test'>" + "<d>" * DEEP
                    + "</d>" * DEEP + "</x></message>"), "policy-violation"),
    "too-many-attributes": (
        after_login(f"<message {TO_BOB}><x xmlns='urn:waddle:test' "
                    + " ".join(f"a{i}='{i}'" for i in range(ATTRS)) + "/></message>"),
        "policy-violation"),
    "oversized-stream-header": (
        before_tls(stream_header(extra=" xml:lang='en' id='" + "h" * 16384 + "'"),
                   header=False), "policy-violation"),
    "wrong-stream-namespace": (
        before_tls(stream_header(stream_ns="http://wrong.example/streams"), header=False),
        "invalid-namespace"),
    "wrong-content-namespace": (
        before_tls(stream_header(ns="jabber:wrong"), header=False), "invalid-namespace"),
    "unknown-host": (
        before_tls(stream_header(to="unknown.example"), header=False), "host-unknown"),
    # RFC 6120 11.6: UTF-8 only (expat used to switch to UTF-16 on the first bytes).
    "utf16-stream": (
        before_tls(stream_header().encode("utf-16-le"), header=False), "unsupported-encoding"),
    "utf16-stream-with-byte-order-mark": (
        before_tls(stream_header().encode("utf-16"), header=False), "unsupported-encoding"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_stream_error_and_others_keep_working(users, case):
    provoke, condition = CASES[case]

    async def body():
        alice = await login(users, f"{ALICE}/bystander", PASSWORD)
        bob = await login(users, f"{BOB}/bystander", PASSWORD)

        raw = await asyncio.to_thread(provoke, users)
        try:
            await asyncio.to_thread(raw.assert_stream_error, condition)
        finally:
            raw.close()

        assert not alice.gone and not bob.gone, (alice.describe(), bob.describe())
        alice.chat(f"{BOB}/bystander", f"still there after {case}?")
        await bob.expect_message(frm=f"{ALICE}/bystander", body=f"still there after {case}?")
        bob.chat(f"{ALICE}/bystander", "yes")
        await alice.expect_message(frm=f"{BOB}/bystander", body="yes")
        # nothing of mallory's bad stanza reached bob
        assert bob.messages.take(lambda m: m["body"] in ("oops", "x")) is None
    run(body)


def test_stanza_just_below_size_limit_is_delivered(users):
    text = "B" * (MAX_STANZA - 4096)

    async def body():
        bob = await login(users, f"{BOB}/big", PASSWORD)
        raw = await asyncio.to_thread(after_login(f"<message {TO_BOB} id='big'><body>{text}"
                                                  f"</body></message>", chunked=True), users)
        try:
            m = await bob.expect_message(frm=f"{MALLORY}/raw", timeout=15)
            assert m["body"] == text, f"body of {len(m['body'])} bytes instead of {len(text)}"
            assert not raw.eof and not raw.stream_error_conditions(), raw.received_text()
        finally:
            raw.close()
    run(body)


def test_handshake_timeout_after_stream_header_gets_connection_timeout(make_server):
    server = make_server({"c2s": {"limits": {"handshake_timeout": "2s"}}})
    server.adduser(ALICE, PASSWORD)
    raw = RawXmpp(server.ip, server.port, timeout=15)
    try:
        raw.open_stream()
        raw.assert_stream_error("connection-timeout", timeout=15)
    finally:
        raw.close()

    async def body():  # the server still serves others
        await login(server, f"{ALICE}/after", PASSWORD)
    run(body)


def test_silent_connection_is_closed_after_handshake_timeout(make_server):
    server = make_server({"c2s": {"limits": {"handshake_timeout": "2s"}}})
    raw = RawXmpp(server.ip, server.port, timeout=15)
    try:
        assert raw.collect_until_closed(timeout=15), (
            "a connection that never sent anything is still open 15s after a 2s handshake"
            " timeout")
    finally:
        raw.close()
