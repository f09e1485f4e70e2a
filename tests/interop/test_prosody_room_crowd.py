"""Issue 8 §3, the room scenario with the room on Prosody 0.12: 300 users of one Waddle join
a room of Prosody's muc component at once, then a series of room messages that every one
of them must receive. Prosody runs with its shipped `smacks` module (XEP-0198, also on server
links), as its default configuration has it (the harness loads it).

Each join makes the room send the joiner everyone already there and tell everyone about the
joiner: about 90,000 presences from conference.prosody.test to the one Waddle, then 301
stanzas per room message. The test counts, for every (message, occupant), delivered +
bounced + lost (tests/system/crowd.py says what counts as bounced) and asserts 0 lost, every
join answered with the occupant's own presence, and every occupant seeing every other one.

Parameters (environment): WADDLE_ROOM_OCCUPANTS (300), WADDLE_ROOM_MESSAGES (20). The cases
are those of tests/system/test_room_crowd.py: Waddle's S2S limits as shipped, and with pacing
lifted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import PASSWORD, run_async

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
from crowd import Crowd, LightClient, case  # noqa: E402  (tests/system/crowd.py)

P, W = "prosody.test", "w-crowd.test"
ROOM = f"crowd@conference.{P}"
OCCUPANTS = int(os.environ.get("WADDLE_ROOM_OCCUPANTS", "300"))
MESSAGES = int(os.environ.get("WADDLE_ROOM_MESSAGES", "20"))
LOGIN_DEADLINE = 45.0
JOIN_DEADLINE = 75.0
FORM_DEADLINE = 20.0
SERIES_DEADLINE = 20.0

# Cases that wait for work not yet in this tree; WADDLE_ROOM_RUN_WAITING=1 runs them anyway.
WAITING: dict[str, str] = {}
LIMITS = {
    "default-limits": {},  # the [s2s] pacing limits as shipped
    "unthrottled": {"stanza_rate": 0, "byte_rate": 0},  # pacing lifted
}


@pytest.mark.parametrize("limits", [case(n, WAITING) for n in LIMITS])
def test_prosody_room_of_waddle_users_forms_and_loses_nothing(federation, limits):
    fed = federation
    # Prosody loads smacks, as its default configuration does (harness.Prosody).
    p = fed.prosody(P, "cert", users=["owner"], log_level="info")
    w = fed.waddle(W, "cert", overrides={
        "server": {"log_level": "info"},  # debug would log every one of ~100,000 stanzas
        "c2s": {"allow_registration": True},
        "s2s": LIMITS[limits],
    })
    fed.start()

    async def body():
        crowd = Crowd(ROOM)
        owner = crowd.add(LightClient(p.ip, p.c2s_port, P, "owner", PASSWORD), "Owner")
        members = crowd.add_members(w.ip, w.c2s_port, W, PASSWORD, OCCUPANTS)
        try:
            await crowd.open_room(owner, 15)
            login_s = await crowd.register_all(members, LOGIN_DEADLINE)
            print(f"\n[{limits}] {OCCUPANTS} users of {W} registered and logged in"
                  f" in {login_s:.1f}s")

            joins = await crowd.join_room(members, JOIN_DEADLINE, FORM_DEADLINE,
                                          {"Prosody": p.main_pid(), "Waddle": w.proc.pid})
            print(f"[{limits}] {crowd.describe_joins(joins)}")

            senders = [owner, members[0], members[len(members) // 2], members[-1]]
            t = await crowd.run_series(senders, MESSAGES, SERIES_DEADLINE)
            print(f"[{limits}] {crowd.describe_series(t)}")
            print(f"[{limits}] {W} rate-limit errors:"
                  f" {w.metric('waddle_s2s_errors_total', kind='rate_limit'):g};"
                  f" client streams closed: {len(crowd.closed_streams())}")

            crowd.assert_formed_and_nothing_lost(joins, t)
        finally:
            await crowd.close_all()

    run_async(body, timeout=LOGIN_DEADLINE + JOIN_DEADLINE + FORM_DEADLINE + SERIES_DEADLINE
              + 20)
