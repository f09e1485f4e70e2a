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

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from harness import PASSWORD, run_async

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
from crowd import Crowd, LightClient  # noqa: E402  (tests/system/crowd.py)

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


def _case(name: str):
    waiting = WAITING.get(name)
    run_anyway = os.environ.get("WADDLE_ROOM_RUN_WAITING") == "1"
    marks = [pytest.mark.skip(reason=f"waits for {waiting}")] if waiting and not run_anyway \
        else []
    return pytest.param(name, id=name, marks=marks)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("limits", [_case(n) for n in LIMITS])
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
        members = [crowd.add(LightClient(w.ip, w.c2s_port, W, f"u{i:03d}", PASSWORD),
                             f"Member {i:03d}") for i in range(OCCUPANTS)]
        try:
            await owner.client.login()
            joined, _, _ = await crowd.join_all(15, [owner])
            assert joined == 1, f"the owner could not create {ROOM}: {owner.view.join_error}"
            login_s = await asyncio.wait_for(crowd.login_all(members, register=True),
                                             LOGIN_DEADLINE)
            print(f"\n[{limits}] {OCCUPANTS} users of {W} registered and logged in"
                  f" in {login_s:.1f}s")

            cpu0 = {"prosody": cpu_seconds(p.main_pid()), "waddle": cpu_seconds(w.proc.pid)}
            joined, refused, join_s = await crowd.join_all(JOIN_DEADLINE, members)
            formed = await crowd.wait_room_formed(FORM_DEADLINE) if joined == OCCUPANTS \
                else False
            cpu = {"prosody": cpu_seconds(p.main_pid()) - cpu0["prosody"],
                   "waddle": cpu_seconds(w.proc.pid) - cpu0["waddle"]}
            print(f"[{limits}] joins: {joined} of {OCCUPANTS} joined, {refused} refused,"
                  f" {OCCUPANTS - joined - refused} unanswered; last join after {join_s:.1f}s;"
                  f" room formed: {formed} ({crowd.missing_presences()} presences missing);"
                  f" CPU Prosody {cpu['prosody']:.1f}s, Waddle {cpu['waddle']:.1f}s")

            senders = [owner, members[0], members[len(members) // 2], members[-1]]
            t0 = time.monotonic()
            crowd.send_series(senders, MESSAGES)
            settled = await crowd.wait_series(senders, MESSAGES, SERIES_DEADLINE)
            t = crowd.tally(senders, MESSAGES)
            print(f"[{limits}] {MESSAGES} room messages to {len(crowd.occupants)} occupants"
                  f" ({'settled' if settled else 'NOT settled'} after"
                  f" {time.monotonic() - t0:.1f}s): sent {t.sent} = delivered {t.delivered}"
                  f" + bounced {t.bounced} + lost {t.lost} (duplicates {t.duplicates})")
            print(f"[{limits}] {W} rate-limit errors:"
                  f" {w.metric('waddle_s2s_errors_total', kind='rate_limit'):g};"
                  f" client streams closed: {len(crowd.closed_streams())}")

            assert not crowd.closed_streams(), crowd.closed_streams()[:5]
            assert joined == OCCUPANTS, (
                f"{joined} of {OCCUPANTS} joined within {JOIN_DEADLINE}s ({refused} refused:"
                f" {sorted({o.view.join_error for o in members if o.view.join_error})})")
            assert formed, f"{crowd.missing_presences()} occupant presences never arrived"
            assert t.lost == 0, (f"{t.lost} of {t.sent} lost; per message (id, delivered,"
                                 f" bounced, lost): {t.per_message}")
            assert t.bounced == 0, f"{t.bounced} bounced without any fault injected"
        finally:
            await crowd.close_all()

    run_async(body, timeout=LOGIN_DEADLINE + JOIN_DEADLINE + FORM_DEADLINE + SERIES_DEADLINE
              + 20)
