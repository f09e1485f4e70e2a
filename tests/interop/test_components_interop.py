"""External components (XEP-0114) across federation: a component attached to Waddle (slixmpp's
ComponentXMPP, for a subdomain of Waddle's domain) and users on Prosody 0.12 and ejabberd
23.01 exchange messages and IQs over S2S, as with a local user. The component's domain has
its own DNS records and is covered by Waddle's certificate (its *.domain name).
Run (root): /usr/bin/python3 -m pytest tests/interop/test_components_interop.py -q
"""

from __future__ import annotations

import asyncio

import slixmpp

from harness import dump_toml, login, run_async

TIMEOUT = 20.0
SECRET = "gateway secret"
COMPONENT_PORT = 5347


class Gateway(slixmpp.ComponentXMPP):
    """Echoes every chat message back to its sender, answers disco#info."""

    def __init__(self, domain: str, ip: str):
        super().__init__(domain, SECRET, ip, COMPONENT_PORT)
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="gateway", itype="test", name="Echo")
        self.received: list = []
        self.ready = asyncio.Event()
        self.add_event_handler("session_start", lambda _: self.ready.set())
        self.add_event_handler("message", self.echo)

    def echo(self, m) -> None:
        if m["type"] == "error":
            return
        self.received.append(m)
        self.send_message(mto=m["from"], mfrom=m["to"], mbody=f"echo: {m['body']}",
                          mtype="chat")


def test_prosody_and_ejabberd_users_talk_to_a_waddle_component(federation):
    fed = federation
    p = fed.prosody("prosody.test", "cert", users=["bob"])
    e = fed.ejabberd("ejabberd.test", "cert")
    w = fed.waddle("w-comp.test", "cert")
    gw_domain = "gw.w-comp.test"
    w.config["components"] = {"listen": [w.ip], "port": COMPONENT_PORT,
                              "domains": {gw_domain: {"secret": SECRET}}}
    w.config_path.write_text(dump_toml(w.config))
    fed.add_domain(gw_domain, w.ip)
    fed.start()
    e.register("carol")

    async def body():
        gw = Gateway(gw_domain, w.ip)
        gw.connect()
        await asyncio.wait_for(gw.ready.wait(), TIMEOUT)
        for server, user in ((p, "bob"), (e, "carol")):
            c = await login(server, user)
            c.chat(f"bot@{gw_domain}", f"hi from {user}")
            echo = await c.messages.get(lambda m, u=user: m["body"] == f"echo: hi from {u}",
                                        TIMEOUT, f"the component's echo for {user}")
            assert str(echo["from"]) == f"bot@{gw_domain}", str(echo)
            got = [m for m in gw.received if m["body"] == f"hi from {user}"]
            assert len(got) == 1 and got[0]["from"].bare == f"{user}@{server.domain}", got
            info = await c["xep_0030"].get_info(jid=gw_domain, timeout=TIMEOUT)
            assert ("gateway", "test", None, "Echo") in info["disco_info"]["identities"]
            c.disconnect()
        assert w.metric("waddle_component_stanzas_total", domain=gw_domain,
                        direction="in") >= 4  # two echoes, two disco answers
        gw.disconnect()

    run_async(body, timeout=120)
