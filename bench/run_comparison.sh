#!/bin/sh
# Runs bench/s2s_load.py against Waddle, Prosody and ejabberd, one after another (never
# concurrently: they would compete for the same 2 cores), and prints a table.
#   bench/run_comparison.sh [extra s2s_load.py options, e.g. --messages 20000 --rounds 3]
#   bench/run_comparison.sh --hop    (full hop between two servers of each kind)
#   bench/run_comparison.sh --streams 500    (memory and CPU per idle inbound S2S stream)
#   bench/run_comparison.sh --clients 500    (memory and CPU per idle client session)
#   bench/run_comparison.sh --pep [--quick | pep_load.py options]
#                                            (PEP fan-out: CPU per publish to 250 local + 250
#                                             remote contacts; bench/pep_load.py, all three
#                                             servers in one invocation, which prints the table)
# Results (one JSON object per server) go to $OUT (default bench/results-DATE.jsonl).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
OUT=${OUT:-$HERE/results-$(date +%Y%m%d-%H%M%S).jsonl}
: > "$OUT"
if [ "${1:-}" = "--pep" ]; then
    shift
    # one process runs the servers one after another (so the ratios come from one run),
    # bounded as a whole
    exec timeout 2700 "$PY" "$HERE/pep_load.py" waddle prosody ejabberd --json "$OUT" "$@"
fi
status=0
for server in waddle prosody ejabberd; do
    # each run is bounded: per-round time limit inside the tool, plus a hard cap here
    timeout 900 "$PY" "$HERE/s2s_load.py" "$server" --json "$OUT" "$@" || status=1
done
"$PY" - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print(f"{'server':<10} {'version':<24} {'N':>7} {'µs CPU/msg':>11} {'msgs/s':>9} "
      f"{'srv util':>8} {'RSS before':>11} {'RSS after':>10}  note")
for r in rows:
    if "error" in r:
        print(f"{r['server']:<10} FAILED: {r['error'].splitlines()[0][:100]}")
        continue
    note = "" if r["complete"] else "INCOMPLETE (time limit)"
    if r.get("mode") == "clients":
        print(f"{r['server']:<10} {r['version'][:24]:<24} {r['clients']:>7} sessions: "
              f"{r['kib_per_client']:.1f} KiB RSS and {r['cpu_ms_per_client']:.2f} ms CPU per "
              f"login (RSS {r['rss_kib_before'] / 1024:.1f} -> {r['rss_kib_after'] / 1024:.1f} "
              f"MiB)  {'' if r['complete'] else 'INCOMPLETE'}")
        continue
    if r.get("mode") == "streams":
        print(f"{r['server']:<10} {r['version'][:24]:<24} {r['streams']:>7} streams: "
              f"{r['kib_per_stream']:.1f} KiB RSS and {r['cpu_ms_per_stream']:.2f} ms CPU per "
              f"stream (RSS {r['rss_kib_before'] / 1024:.1f} -> {r['rss_kib_after'] / 1024:.1f} "
              f"MiB)  {'' if r['complete'] else 'INCOMPLETE'}")
        continue
    if r.get("mode") == "hop":
        rss = r["rss_kib_after"]
        print(f"{r['server']:<10} {r['version'][:24]:<24} {r['messages']:>7} "
              f"{r['us_per_msg_sched']:>11.1f} {r['msgs_per_s']:>9.0f} "
              f"  sender {r['sender_us_per_msg_sched']:.1f} + receiver "
              f"{r['receiver_us_per_msg_sched']:.1f} µs; RSS {rss['sender'] / 1024:.1f} / "
              f"{rss['receiver'] / 1024:.1f} MiB  {note}")
        continue
    if r.get("s2s_stream_errors"):
        note += f" stream errors {r['s2s_stream_errors']}"
    print(f"{r['server']:<10} {r['version'][:24]:<24} {r['messages']:>7} "
          f"{r['us_per_msg_stat']:>11.1f} {r['msgs_per_s']:>9.0f} {r['server_cpu_util']:>8.2f} "
          f"{r['rss_kib_before'] / 1024:>8.1f} MiB {r['rss_kib_after'] / 1024:>6.1f} MiB  {note}")
print(f"\n(median of rounds; µs CPU/msg = server CPU / messages (hop: both servers, schedstat); raw data: {sys.argv[1]})")
PYEOF
exit $status
