"""Shutdown with work still pending (issue 9, docs/security.md "Correctness"): when
server.shutdown_timeout ends the wait for streams to close, the reactor stops with coroutines
still suspended (a session flushing its last bytes to a client that reads nothing). Those are
destroyed while the services they refer to still exist, and the process exits 0; against the
sanitized server of CI, a use after free there is a report and a non-zero exit.

The make_server fixture also checks, for every system test, that the server exits 0 when it
is stopped at the end.
"""

from __future__ import annotations

import time

from rawxmpp import RawXmpp
from waddle_client import DOMAIN, PASSWORD, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


def test_shutdown_timeout_with_a_session_still_flushing_exits_cleanly(make_server):
    # A queue bound far above what the flood leaves unread, so only shutdown ends the session;
    # a shutdown_timeout shorter than the 2 s a closing stream gets to flush its last bytes.
    srv = make_server({"server": {"shutdown_timeout": "1s"},
                       "c2s": {"limits": {"max_write_queue": "64MiB",
                                          "write_stall_timeout": "120s"}}})
    for jid in (ALICE, BOB):
        srv.adduser(jid, PASSWORD)
    bob = RawXmpp(srv.ip, srv.port, timeout=20.0)
    bob.login("bob", PASSWORD, resource="stuck")  # reads nothing from now on

    async def flood():
        alice = await login(srv, f"{ALICE}/desk", PASSWORD)
        filler = "x" * (64 * 1024)
        for i in range(96):  # 6 MiB: more than the socket buffers of both sides hold
            alice.chat(f"{BOB}/stuck", f"{i}:{filler}")
        await alice.sync(timeout=60)
        await alice.close()
    run(flood, timeout=120)
    try:
        started = time.monotonic()
        code = srv.stop(timeout=20)
        took = time.monotonic() - started
    finally:
        bob.close()
    assert code == 0, f"exit code {code} after SIGTERM:\n{srv.log_tail(80)}"
    # shutdown_timeout (1 s) bounds the wait; well under the 2 s flush the session had left.
    assert took < 10, f"shutdown took {took:.1f}s"
