#!/usr/bin/python3
"""Archive query benchmark: how long a client waits for the newest page of a large archive.

The tool starts one Waddle (harness of tests/interop, on a leased loopback address), stops
it, fills its SQLite database with N archived messages for one account (default 1,000,000,
written with Python's sqlite3 into the server's own archive table, in the shape the server
writes them: 100 correspondents, ordered stanza ids, a 60-byte body), starts it again and
logs the account in over c2s. It then times XEP-0313 queries from the client's side (IQ sent
to <fin/> received, all results read):

  - newest: the newest page (RSM <before/>, <max>50</max>): what a client asks on connecting;
  - older:  the page before that one (RSM <before>ID</before>): scrolling back;
  - with:   the newest page of one correspondent (form field 'with').

Each is run --queries times; median and 95th percentile are reported, with the database size
per message. Every loop is bounded by a count and a deadline; only processes started here are
stopped, by PID. Stdlib only; run with /usr/bin/python3.

    /usr/bin/python3 bench/mam_fetch.py [--messages 1000000] [--queries 30] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
sys.path.insert(0, str(REPO / "tests" / "system"))
sys.path.insert(0, str(REPO / "bench"))

import harness  # noqa: E402
from rawxmpp import RawXmpp  # noqa: E402
from s2s_load import bench_world  # noqa: E402

DOMAIN = "mam.test"
USER = "user"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_CLIENT = "jabber:client"
START_US = 1_700_000_000_000_000


def fill(db_path: Path, owner: str, n: int) -> float:
    """Appends n archived messages for `owner`; returns the seconds it took."""
    db = sqlite3.connect(db_path, isolation_level=None)
    t0 = time.monotonic()

    def number(jid: str) -> int:  # its row in archive_jids (schema step 9)
        db.execute("INSERT OR IGNORE INTO archive_jids (jid) VALUES (?)", (jid,))
        return db.execute("SELECT id FROM archive_jids WHERE jid = ?", (jid,)).fetchone()[0]
    owner_id = number(owner)
    peers = [f"friend{k}@other.test" for k in range(100)]
    peer_ids = [number(p) for p in peers]
    rows = []
    for i in range(n):
        t = START_US + i * 1000
        peer = peers[i % 100]
        sid = f"{t:016x}{os.urandom(6).hex()}"
        body = f"message {i:09d} " + "x" * 44
        stanza = (f"<message xmlns='{NS_CLIENT}' from='{peer}/phone' to='{owner}' type='chat' "
                  f"id='m{i}'><body>{body}</body><stanza-id xmlns='urn:xmpp:sid:0' id='{sid}' "
                  f"by='{owner}'/></message>")
        # As the server writes it (schema step 10): the row id is the stanza-id's number.
        rows.append((t, owner_id, sid, t, peer_ids[i % 100], "phone", stanza))
        if len(rows) == 10_000 or i == n - 1:
            db.execute("BEGIN")
            db.executemany("INSERT INTO archive (id, owner, sid, time_us, with_bare, resource,"
                           " stanza, sid_indexed) VALUES (?,?,?,?,?,?,?,0)", rows)
            db.execute("COMMIT")
            rows.clear()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.monotonic() - t0


def query(client: RawXmpp, n: int, rsm: str, form: str = "", timeout: float = 10) -> tuple:
    """One MAM query; returns (seconds, result ids, complete) once <fin/> has arrived."""
    qid = f"q{n}"
    iq = (f"<iq type='set' id='{qid}'><query xmlns='{NS_MAM}' queryid='{qid}'>{form}"
          f"<set xmlns='{NS_RSM}'>{rsm}</set></query></iq>")
    t0 = time.perf_counter()
    client.send(iq)
    ids = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        el = client.next_element(timeout=deadline - time.monotonic())
        result = el.find(f"{{{NS_MAM}}}result")
        if result is not None and result.get("queryid") == qid:
            ids.append(result.get("id"))
            continue
        if el.tag == f"{{{NS_CLIENT}}}iq" and el.get("id") == qid:
            elapsed = time.perf_counter() - t0
            if el.get("type") != "result":
                raise RuntimeError(f"query {qid} failed: {el.get('type')}")
            fin = el.find(f"{{{NS_MAM}}}fin")
            return elapsed, ids, fin is not None and fin.get("complete") == "true"
    raise RuntimeError(f"query {qid}: no answer within {timeout}s")


def with_form(jid: str) -> str:
    return ("<x xmlns='jabber:x:data' type='submit'>"
            f"<field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>"
            f"<field var='with'><value>{jid}</value></field></x>")


def summary(label: str, times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    out = {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(p95, 2)}
    print(f"  {label:7} median {out['median_ms']:.2f} ms, p95 {out['p95_ms']:.2f} ms "
          f"({len(ms)} queries)", flush=True)
    return out


def run(args) -> dict:
    result: dict = {"messages": args.messages, "page": 50}
    with bench_world("mam", args) as (_ca, fed):
        srv = fed.waddle(DOMAIN, "cert", users=[USER],
                         overrides={"server": {"log_level": "info"},
                                    "mam": {"max_page_size": 250}})
        fed.start()
        owner = srv.jid(USER)
        srv._halt(signal.SIGTERM)  # the schema exists; fill it while the server is down
        db_path = srv.data / "waddle.db"
        took = fill(db_path, owner, args.messages)
        size = sum(f.stat().st_size for f in srv.data.glob("waddle.db*")
                   if not f.name.endswith("-shm"))
        result["database_bytes_per_message"] = round(size / args.messages, 1)
        print(f"  filled {args.messages} messages in {took:.1f}s; database "
              f"{size / 1e6:.1f} MB = {result['database_bytes_per_message']} bytes per message",
              flush=True)
        srv.start()
        client = RawXmpp(srv.ip, srv.c2s_port, domain=DOMAIN, timeout=15)
        client.login(USER, harness.PASSWORD, resource="bench")
        try:
            # Warm-up (the page cache of a running server), not measured.
            query(client, 0, "<max>50</max><before/>")
            newest, older, peer = [], [], []
            for i in range(args.queries):
                t, ids, _ = query(client, 3 * i + 1, "<max>50</max><before/>")
                if len(ids) != 50:
                    raise RuntimeError(f"newest page: {len(ids)} results")
                newest.append(t)
                t, ids2, _ = query(client, 3 * i + 2, f"<max>50</max><before>{ids[0]}</before>")
                if len(ids2) != 50 or ids2[-1] >= ids[0]:
                    raise RuntimeError("older page: wrong results")
                older.append(t)
                t, ids3, _ = query(client, 3 * i + 3, "<max>50</max><before/>",
                                   with_form(f"friend{i % 100}@other.test"))
                if len(ids3) != 50:
                    raise RuntimeError(f"with page: {len(ids3)} results")
                peer.append(t)
            result["newest"] = summary("newest", newest)
            result["older"] = summary("older", older)
            result["with"] = summary("with", peer)
        finally:
            client.close()
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    result["nproc"] = os.cpu_count()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", "-n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    print("== waddle archive queries", flush=True)
    res = run(args)
    print(json.dumps(res), flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
