"""Stanzas to domains this server does not serve go to the router's remote path; with
federation off they are answered with <remote-server-not-found/>, never dropped."""

import pytest
from slixmpp.exceptions import IqError

from waddle_client import DOMAIN, PASSWORD, error_condition, login, run

ALICE = f"alice@{DOMAIN}"
REMOTE_TARGETS = ["user@remote.example", "user@remote.example/phone", "remote.example"]


@pytest.fixture
def alice_account(server):
    server.adduser(ALICE, PASSWORD)
    return server


@pytest.mark.parametrize("target", REMOTE_TARGETS)
def test_message_to_remote_domain_gets_remote_server_not_found(alice_account, target):
    async def body():
        alice = await login(alice_account, f"{ALICE}/home", PASSWORD)
        alice.chat(target, "hello over there")
        err = await alice.messages.get(lambda m: m["type"] == "error",
                                       what=f"error bounce for message to {target}")
        assert error_condition(err) == "remote-server-not-found", str(err)
        assert str(err["from"]) == target, f"bounce should come from {target}: {err}"
        assert str(err["to"]) == f"{ALICE}/home", str(err)
    run(body)


@pytest.mark.parametrize("target", REMOTE_TARGETS)
def test_iq_to_remote_domain_gets_remote_server_not_found(alice_account, target):
    async def body():
        alice = await login(alice_account, f"{ALICE}/home", PASSWORD)
        iq = alice.make_iq_get(queryxmlns="jabber:iq:version", ito=target)
        try:
            result = await iq.send(timeout=10)
        except IqError as e:
            assert error_condition(e.iq) == "remote-server-not-found", str(e.iq)
            assert e.iq["type"] == "error"
        else:
            raise AssertionError(f"IQ to {target} answered with a result: {result}")
    run(body)


def test_error_message_to_remote_domain_is_not_answered(alice_account):
    """RFC 6120 8.3.1: an error stanza is never answered with another error."""
    async def body():
        alice = await login(alice_account, f"{ALICE}/home", PASSWORD)
        msg = alice.make_message(mto="user@remote.example", mtype="error", mbody="bounce")
        msg["id"] = "error-1"
        msg["error"]["condition"] = "item-not-found"
        msg["error"]["type"] = "cancel"
        msg.send()
        chat = alice.make_message(mto="user@remote.example", mtype="chat", mbody="after")
        chat["id"] = "chat-2"
        chat.send()
        err = await alice.messages.get(lambda m: m["type"] == "error")
        assert err["id"] == "chat-2", f"error stanza was answered with an error: {err}"
        assert error_condition(err) == "remote-server-not-found", str(err)
    run(body)


def test_presence_subscription_to_remote_domain_gets_remote_server_not_found(alice_account):
    async def body():
        alice = await login(alice_account, f"{ALICE}/home", PASSWORD)
        alice.send_presence(pto="user@remote.example", ptype="subscribe")
        err = await alice.expect_presence(frm="user@remote.example", ptype="error")
        assert error_condition(err) == "remote-server-not-found", str(err)
    run(body)
