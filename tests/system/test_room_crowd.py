"""Issue 8 §3, the room scenario between Waddles: a room on a.test that 300 users of b.test
join at once, then a series of room messages that every one of them must receive.

Each join makes the room send the joiner the presence of everyone already there and tell
everyone else about the joiner, so 300 joins put about 90,000 presences on the one S2S link
from a.test to b.test, and each room message becomes 301 stanzas (one per occupant). The test
counts, for every (message, occupant), delivered + bounced + lost (crowd.py says what counts
as bounced) and asserts 0 lost, every join answered with the occupant's own presence, and
every occupant seeing every other one.

The clients are crowd.LightClient (one asyncio loop, the standard library's expat), not
slixmpp: 300 slixmpp clients would spend more CPU than the servers under test.

Parameters (environment): WADDLE_ROOM_OCCUPANTS (300; 100 against a sanitizer build),
WADDLE_ROOM_MESSAGES (20). The cases (CASES): the S2S limits an operator gets by default;
pacing lifted, so that the room and the links are measured on their own; the same with a
home server that vouches for no one; and links that are pinged while quiet. Cases that wait
for work not yet done are skipped with the reason (WAITING); WADDLE_ROOM_RUN_WAITING=1 runs
them anyway.
"""

from __future__ import annotations

import os

import pytest

from crowd import Crowd, LightClient, case
from federation import ERRORS, await_metric, metric_sum
from waddle_client import PASSWORD, run
from waddle_server import C2S_PORT, sanitized_server

A, B = "a.test", "b.test"
ROOM = f"crowd@conference.{A}"




OCCUPANTS = int(os.environ.get("WADDLE_ROOM_OCCUPANTS",
                               "100" if sanitized_server() else "300"))
MESSAGES = int(os.environ.get("WADDLE_ROOM_MESSAGES", "20"))
LOGIN_DEADLINE = 45.0
JOIN_DEADLINE = 75.0  # every join answered
FORM_DEADLINE = 20.0  # then every occupant sees every other one
SERIES_DEADLINE = 20.0  # every message delivered or bounced
PING_DEADLINE = 20.0  # a link's ping answered (it waits behind what was written before it)
LATENCY = "waddle_s2s_latency_seconds_count"  # ping round trips, per remote domain

UNPACED = {"stanza_rate": 0, "byte_rate": 0}
# Each case: the S2S limits of both servers, and b.test's own settings.
CASES = {
    # What an operator gets: the [s2s] pacing limits as shipped.
    "default-limits": ({}, {}),
    # Pacing lifted (stanzas and bytes), to measure the room and the links alone.
    "unthrottled": (UNPACED, {}),
    # b.test vouches for no one (as Prosody and ejabberd do): the joins are not held while
    # b.test asks the room service about credentials, so they reach the room before its
    # stream to b.test is up, and what the room answers waits in that link's queue.
    "unthrottled-no-credentials": (UNPACED, {"identity": {"enabled": False}}),
    # Links pinged when quiet for a second (XEP-0199, [s2s] ping_interval) while the members'
    # server paces the join storm: a ping waits behind everything written before it, as it
    # would behind a storm longer than the default 60 s.
    "quiet-links": ({"ping_interval": "1s"}, {}),
}
# Cases that wait for work not yet in this tree; WADDLE_ROOM_RUN_WAITING=1 runs them anyway.
WAITING: dict[str, str] = {}


@pytest.mark.parametrize("limits", [case(n, WAITING) for n in CASES])
def test_room_of_remote_occupants_forms_and_loses_nothing(fed, limits):
    s2s, b_settings = CASES[limits]
    quiet = {"server": {"log_level": "info"}}  # debug would log every one of ~100,000 stanzas
    a = fed.server(A, users=("alice",), s2s=s2s,
                   overrides={**quiet, "muc": {"max_occupants": OCCUPANTS + 10}})
    b = fed.server(B, s2s=s2s, overrides={**quiet, **b_settings})
    fed.start()

    async def body():
        crowd = Crowd(ROOM)
        alice = crowd.add(LightClient(a.ip, C2S_PORT, A, "alice", PASSWORD), "Alice")
        members = crowd.add_members(b.ip, C2S_PORT, B, PASSWORD, OCCUPANTS)
        try:
            await crowd.open_room(alice, 10)
            login_s = await crowd.register_all(members, LOGIN_DEADLINE)
            print(f"\n[{limits}] {OCCUPANTS} users of {B} registered and logged in"
                  f" in {login_s:.1f}s")

            joins = await crowd.join_room(members, JOIN_DEADLINE, FORM_DEADLINE,
                                          {s.domain: s.pid for s in (a, b)})
            print(f"[{limits}] {crowd.describe_joins(joins)}")

            if "ping_interval" in s2s:  # both links answered a ping before the messages
                await await_metric(a, LATENCY, domain=B, timeout=PING_DEADLINE,
                                   what="a ping from the room's link")
                await await_metric(b, LATENCY, domain=f"conference.{A}", timeout=PING_DEADLINE,
                                   what="a ping from the members' link")
            senders = [alice, members[0], members[len(members) // 2], members[-1]]
            t = await crowd.run_series(senders, MESSAGES, SERIES_DEADLINE)
            print(f"[{limits}] {crowd.describe_series(t)}")
            text_a, text_b = a.metrics_text(), b.metrics_text()
            stream_errors = {A: metric_sum(text_a, ERRORS, kind="stream_error"),
                             B: metric_sum(text_b, ERRORS, kind="stream_error")}
            print(f"[{limits}] {A} waddle_s2s_bounced_total:"
                  f" {metric_sum(text_a, 'waddle_s2s_bounced_total'):g}; {B} rate-limit"
                  f" errors: {metric_sum(text_b, ERRORS, kind='rate_limit'):g}; S2S stream"
                  f" errors {stream_errors}; client streams closed:"
                  f" {len(crowd.closed_streams())}")

            crowd.assert_formed_and_nothing_lost(joins, t)
            assert t.duplicates == 0, f"{t.duplicates} room messages arrived twice"
            assert not any(stream_errors.values()), f"S2S stream errors: {stream_errors}"
        finally:
            await crowd.close_all()

    run(body, timeout=LOGIN_DEADLINE + JOIN_DEADLINE + FORM_DEADLINE + 2 * PING_DEADLINE +
        SERIES_DEADLINE + 20)
