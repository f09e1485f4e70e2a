#!/usr/bin/python3
"""Federated-message load benchmark: server CPU per inbound S2S message.

The tool plays a remote server "load.test". It starts one server under test (Waddle,
Prosody or ejabberd) on a leased loopback address with a private CA (the harness of
tests/interop), logs a raw c2s reader in as user@DOMAIN (online, initial presence), opens a
raw S2S stream to the server (TCP, STARTTLS, SASL EXTERNAL with a CA-issued certificate for
load.test) and pipelines N chat messages to user@DOMAIN as fast as TCP lets it. It measures
the wall time until the reader has received all N, and the server process's CPU time over
the same window:

  - utime+stime from /proc/PID/stat (clock ticks, 10 ms resolution), and
  - the sum of /proc/PID/task/*/schedstat run times (ns, threads alive at both ends),

giving microseconds of server CPU per message, messages per second, and VmRSS before and
after. The load generator's own CPU (getrusage) is reported too: if it is close to the wall
time, the generator, not the server, set the pace.

Every loop is bounded by a count and a deadline; only processes started here are stopped,
by PID (harness.py). Stdlib only; run with /usr/bin/python3 as root (the harness needs
unshare/mount for Prosody and ejabberd, runuser for ejabberd).

    /usr/bin/python3 bench/s2s_load.py waddle   [--messages 20000] [--rounds 3]
    /usr/bin/python3 bench/s2s_load.py prosody
    /usr/bin/python3 bench/s2s_load.py ejabberd
    ... --json results.jsonl   (appends one JSON object per server)
    /usr/bin/python3 bench/s2s_load.py waddle --hop --archive-ratio [--pairs 3]
        [--baseline-bin OLD/waddle]   (the hop with archiving off and on, alternating)
    /usr/bin/python3 bench/s2s_load.py waddle --clients 1000 --websocket-clients 1000
        (idle sessions over TCP c2s, then over WebSocket: wss and plain ws; RSS per session)
"""

from __future__ import annotations

import argparse
import contextlib
import base64
import hashlib
import json
import os
import resource
import shutil
import socket
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path
import xml.etree.ElementTree as ET
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
sys.path.insert(0, str(REPO / "tests" / "system"))

import harness  # noqa: E402  (tests/interop/harness.py)
from rawxmpp import NS_SASL, NS_TLS, RawXmpp, stream_header, tag  # noqa: E402

LOCAL = "load.test"
USER = "user"
NS_SERVER = "jabber:server"
MARK = b"ZqXbench"  # appears once per benchmark message body; the reader counts it
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- raw S2S


class LoadS2s(RawXmpp):
    """A raw S2S stream LOCAL -> remote authenticated with SASL EXTERNAL (as in
    tests/system/federation.py RawS2s), whose socket is then used for bulk writes."""

    def __init__(self, ip: str, remote: str, cert: Path, key: Path, ca_file: Path,
                 port: int = harness.S2S_PORT, timeout: float = 10.0, local: str = LOCAL):
        self._cert, self._key, self._ca = cert, key, ca_file
        self.local = local
        super().__init__(ip, port, domain=remote, timeout=timeout)

    def header(self) -> str:
        return stream_header(to=self.domain, ns=NS_SERVER,
                             extra=f" from='{self.local}' xmlns:db='jabber:server:dialback'")

    def _wrap_tls(self) -> None:
        import ssl
        ctx = ssl.create_default_context(cafile=str(self._ca))
        ctx.load_cert_chain(str(self._cert), str(self._key))
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def authenticate(self) -> None:
        features = self.open_stream(self.header())
        if features.find(tag(NS_TLS, "starttls")) is None:
            raise RuntimeError(self._describe("no STARTTLS offered"))
        self.starttls()
        features = self.open_stream(self.header())
        mechs = [m.text for m in features.iter(tag(NS_SASL, "mechanism"))]
        if "EXTERNAL" not in mechs:
            raise RuntimeError(self._describe(f"SASL EXTERNAL not offered: {mechs}"))
        authzid = base64.b64encode(self.local.encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
        answer = self.next_element()
        if answer.tag != tag(NS_SASL, "success"):
            raise RuntimeError(self._describe("SASL EXTERNAL refused"))
        self.open_stream(self.header())


# --------------------------------------------------------------------------- reader


class Reader(threading.Thread):
    """Reads the c2s stream of the online user and counts MARK occurrences (one per
    benchmark message) without parsing XML, so it is cheap enough not to set the pace."""

    def __init__(self, client: RawXmpp):
        super().__init__(daemon=True)
        self.sock = client.sock
        self.count = 0
        self.target = 0
        self.deadline = 0.0
        self.last_at = 0.0
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.stop_flag = False
        self.recvs = 0  # reads that returned data (diagnostic: bytes per read)
        self.bytes = 0
        self._tail = b""

    def arm(self, target: int, deadline: float) -> None:
        self.count, self.target, self.deadline = 0, target, deadline
        self.done.clear()

    def cpu(self) -> float:
        """CPU seconds of this thread so far (utime+stime of its /proc task)."""
        if not getattr(self, "tid", None):
            return 0.0
        stat = Path(f"/proc/self/task/{self.tid}/stat").read_text()
        f = stat[stat.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK

    def run(self) -> None:
        self.tid = threading.get_native_id()
        self.sock.settimeout(0.2)
        keep = len(MARK) - 1
        # recv_into a reused buffer: SSLSocket.recv(256 KiB) allocates (mmap) a fresh
        # buffer per call, ~100 µs each, which made the reader the bottleneck when the
        # server writes one small TLS record per stanza.
        buf = bytearray(262144)
        view = memoryview(buf)
        while not self.stop_flag:
            try:
                got = self.sock.recv_into(view)
                chunk = bytes(view[:got])
            except (socket.timeout, TimeoutError):
                chunk = None
            except Exception as e:  # noqa: BLE001 (reported by the caller)
                self.error = e
                self.done.set()
                return
            if chunk == b"":
                self.error = ConnectionError("server closed the c2s stream")
                self.done.set()
                return
            if chunk:
                self.recvs += 1
                self.bytes += len(chunk)
                data = self._tail + chunk
                n = data.count(MARK)
                if n:
                    self.count += n
                    self.last_at = time.monotonic()
                self._tail = data[-keep:]
            if self.target and (self.count >= self.target or time.monotonic() > self.deadline):
                self.done.set()


# --------------------------------------------------------------------------- /proc


def proc_cpu(pid: int) -> tuple[float, float]:
    """(utime+stime seconds from /proc/PID/stat, sum of thread run time from schedstat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK, ns / 1e9


def thread_cpu(pid: int, name: str) -> float:
    """Run time (schedstat, seconds) of the process's threads called `name` (comm)."""
    ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == name:
                ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return ns / 1e9


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------- servers


def make_server(kind: str, fed: harness.Federation, domain: str):
    """A server of `kind` in "cert" mode (trusts the CA, SASL EXTERNAL), logging at info
    level, without stanza or byte rate limits (no pacing) and without a connection rate (every
    load stream comes from one address, 127.0.0.1)."""
    if kind == "waddle":
        s2s = {"stanza_rate": 0, "byte_rate": 0, "bandwidth_limit": 0, "connection_rate": 0}
        old_binary = os.environ.get("WADDLE_BENCH_NO_BYTE_RATE") == "1"
        if old_binary:
            del s2s["byte_rate"]  # a binary from before pacing, which has no such key
        if old_binary or os.environ.get("WADDLE_BENCH_NO_INTERNAL_SWITCH") == "1":
            # A binary from before allow_internal_addresses connects to loopback peers anyway.
            s2s["allow_internal_addresses"] = None  # left out of its configuration
        overrides = {"server": {"log_level": "info"}, "s2s": s2s}
        if os.environ.get("WADDLE_BENCH_NO_WEB") == "1":
            overrides["web"] = None  # a binary from before the [web] listener
        if os.environ.get("WADDLE_BENCH_MAM") in ("0", "1"):
            # Message archives (XEP-0313) on or off, to measure what archiving costs.
            overrides["mam"] = {"enabled": os.environ["WADDLE_BENCH_MAM"] == "1"}
        return fed.waddle(domain, "cert", users=[USER], overrides=overrides)
    if kind == "prosody":
        p = fed.prosody(domain, "cert", users=[USER])
        # The harness logs at debug level (one line per stanza): info for a fair comparison.
        text = p.config.read_text().replace('levels = { min = "debug" }',
                                            'levels = { min = "info" }')
        p.config.write_text(text)
        return p
    if kind == "ejabberd":
        # No shapers are defined (shaper_rules: {}), so neither s2s_in nor c2s is shaped;
        # max_fsm_queue raised so a pipelined burst cannot overflow a process queue.
        return fed.ejabberd(domain, "cert", extra_config="max_fsm_queue: 1000000\n")
    raise SystemExit(f"unknown server {kind!r} (waddle, prosody, ejabberd)")


def server_pid(kind: str, server) -> int:
    pid = server.main_pid()  # beam.smp for ejabberd; prosody/waddle: the process started
    return pid


def version_of(kind: str, server) -> str:
    try:
        if kind == "waddle":
            cp = server.cli("--version", timeout=10)
            return (cp.stdout or cp.stderr).strip().splitlines()[0]
        if kind == "prosody":
            cp = harness._run([harness.PROSODYCTL, "about"], check=False, timeout=30)
            for line in cp.stdout.splitlines():
                if line.strip().startswith("Prosody"):
                    return line.strip()
            return "prosody"
        if kind == "ejabberd":
            cp = server.ctl("status", check=False, timeout=30)
            for line in cp.stdout.splitlines():
                if "ejabberd" in line and "running" in line:
                    words = line.split()
                    i = words.index("ejabberd") if "ejabberd" in words else 0
                    return " ".join(words[i:i + 2])
            return "ejabberd"
    except Exception:  # noqa: BLE001 (a version string is a nicety)
        pass
    return kind


# --------------------------------------------------------------------------- load


@contextlib.contextmanager
def bench_world(label: str, args):
    """A run directory with a private CA and a harness Federation (DNS, servers); on the way
    out everything started is stopped (by PID) and the directory removed unless --keep."""
    root = harness.make_run_root(prefix=f"waddle-bench-{label}-")
    ca = harness.PrivateCA(root / "ca")
    fed = harness.Federation(root / "fed", ca)
    try:
        yield ca, fed
    finally:
        try:
            fed.close()
        finally:
            if args.keep:
                print(f"  run directory kept: {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)


def start_server(kind: str, fed: harness.Federation, domains: list[str]) -> list:
    """Servers of `kind` for `domains`, started, with the benchmark account on each."""
    servers = [make_server(kind, fed, d) for d in domains]
    fed.start()
    if kind == "ejabberd":
        for srv in servers:
            srv.register(USER)
    return servers


def online_reader(server, domain: str) -> tuple[RawXmpp, Reader]:
    """USER logged in over c2s (resource "bench", initial presence) with a counting reader."""
    client = RawXmpp(server.ip, server.c2s_port, domain=domain, timeout=15)
    client.login(USER, harness.PASSWORD, resource="bench")
    client.send("<presence/>")
    time.sleep(0.3)
    client.drain()
    reader = Reader(client)
    reader.start()
    return client, reader


def close_all(reader: Optional[Reader], connections) -> None:
    if reader is not None:
        reader.stop_flag = True
    for c in connections:
        if c is not None:
            c.close()
    if reader is not None:
        reader.join(2)


def build_batches(domain: str, n: int, body_size: int, batch: int, start: int = 0,
                  sender: Optional[str] = f"u@{LOCAL}/r", prefix: str = "b") -> list[bytes]:
    """N chat messages to user@domain, `batch` per write. sender=None: as a logged-in client
    sends them (no from: its server stamps it)."""
    pad = "x" * max(0, body_size - len(MARK) - 8)
    to = f"{USER}@{domain}"
    from_attr = f" from='{sender}'" if sender else ""
    out, cur = [], []
    for i in range(start, start + n):
        cur.append(f"<message{from_attr} to='{to}' type='chat' id='{prefix}{i}'>"
                   f"<body>{MARK.decode()} {i:07d}{pad}</body></message>")
        if len(cur) == batch:
            out.append("".join(cur).encode())
            cur = []
    if cur:
        out.append("".join(cur).encode())
    return out


def send_round(s2s: LoadS2s, reader: Reader, batches: list[bytes], n: int,
               time_limit: float) -> tuple[float, float, int]:
    """Sends the batches (bounded by time_limit) and waits for the reader to count n.
    Returns (t_start, t_end, received)."""
    t0 = time.monotonic()
    deadline = t0 + time_limit
    reader.arm(n, deadline)
    s2s.sock.settimeout(max(1.0, time_limit))
    for b in batches:
        if time.monotonic() > deadline:
            break
        s2s.sock.sendall(b)
    reader.done.wait(max(0.0, deadline - time.monotonic()) + 0.5)
    end = reader.last_at if reader.count >= n else time.monotonic()
    return t0, end, reader.count


def warm_up(conn, reader: Reader, batches: list[bytes], n: int, args, *servers) -> None:
    """Sends unmeasured messages and fails (with the servers' log tails) unless all arrive."""
    _, _, got = send_round(conn, reader, batches, n, args.time_limit)
    if got < n:
        tails = "\n".join(srv.log_tail(20) for srv in servers)
        raise RuntimeError(f"warm-up: only {got}/{n} messages arrived"
                           f"{'; reader: ' + repr(reader.error) if reader.error else ''}"
                           f"\n{tails}")


def run_server(kind: str, args) -> dict:
    domain = f"{kind}.test"
    result: dict = {"server": kind, "messages": args.messages, "body_size": args.body_size}
    client = s2s = reader = None
    with bench_world(kind, args) as (ca, fed):
        try:
            [server] = start_server(kind, fed, [domain])
            pid = server_pid(kind, server)
            result["version"] = version_of(kind, server)
            result["pid_comm"] = Path(f"/proc/{pid}/comm").read_text().strip()
            load_cert = ca.issue(LOCAL)

            client, reader = online_reader(server, domain)

            s2s = LoadS2s(server.ip, domain, load_cert.cert, load_cert.key, ca.cert, timeout=15)
            s2s.authenticate()

            # Warm-up: link set up, caches and allocators primed; not measured.
            warm = build_batches(domain, args.warmup, args.body_size, args.batch, start=0)
            warm_up(s2s, reader, warm, args.warmup, args, server)

            rounds = []
            for r in range(args.rounds):
                batches = build_batches(domain, args.messages, args.body_size, args.batch,
                                        start=(r + 1) * 10_000_000)
                rss0 = proc_rss_kib(pid)
                tick0, sched0 = proc_cpu(pid)
                me0 = self_cpu()
                recvs0, bytes0, rcpu0 = reader.recvs, reader.bytes, reader.cpu()
                t0, t1, got = send_round(s2s, reader, batches, args.messages, args.time_limit)
                tick1, sched1 = proc_cpu(pid)
                me1 = self_cpu()
                rcpu1 = reader.cpu()
                rss1 = proc_rss_kib(pid)
                wall = max(t1 - t0, 1e-9)
                n = max(got, 1)
                rd = {
                    "round": r + 1, "sent_target": args.messages, "received": got,
                    "complete": got >= args.messages, "wall_s": round(wall, 4),
                    "msgs_per_s": round(got / wall, 1),
                    "cpu_s_stat": round(tick1 - tick0, 3),
                    "cpu_s_sched": round(sched1 - sched0, 4),
                    "us_per_msg_stat": round((tick1 - tick0) / n * 1e6, 2),
                    "us_per_msg_sched": round((sched1 - sched0) / n * 1e6, 2),
                    "server_cpu_util": round((sched1 - sched0) / wall, 2),
                    "loadgen_cpu_s": round(me1 - me0, 3),
                    "reader_cpu_s": round(rcpu1 - rcpu0, 3),
                    "reader_reads": reader.recvs - recvs0,
                    "reader_bytes": reader.bytes - bytes0,
                    "rss_kib_before": rss0, "rss_kib_after": rss1,
                }
                rounds.append(rd)
                print(f"  {kind} round {r + 1}: {got}/{args.messages} in {wall:.3f}s "
                      f"= {rd['msgs_per_s']:.0f} msg/s; server CPU {rd['us_per_msg_stat']:.1f} "
                      f"µs/msg (stat), {rd['us_per_msg_sched']:.1f} µs/msg (schedstat), "
                      f"util {rd['server_cpu_util']:.2f}; load generator CPU "
                      f"{rd['loadgen_cpu_s']:.2f}s (reader {rd['reader_cpu_s']:.2f}s, {rd['reader_reads']} reads); RSS {rss0} -> {rss1} KiB", flush=True)
                if not rd["complete"]:
                    break
            # Anything the server said on the S2S stream (e.g. a stream error) is worth knowing.
            s2s.drain()
            errors = s2s.stream_error_conditions()
            if errors:
                result["s2s_stream_errors"] = errors
            result["rounds"] = rounds
            done = [x for x in rounds if x["complete"]] or rounds
            for key in ("us_per_msg_stat", "us_per_msg_sched", "msgs_per_s", "wall_s",
                        "server_cpu_util", "loadgen_cpu_s"):
                result[key] = round(statistics.median(x[key] for x in done), 2)
            result["complete"] = all(x["complete"] for x in rounds)
            result["rss_kib_before"] = rounds[0]["rss_kib_before"]
            result["rss_kib_after"] = rounds[-1]["rss_kib_after"]
            return result
        finally:
            close_all(reader, (s2s, client))


def build_c2s_batches(to_domain: str, n: int, body_size: int, batch: int,
                      start: int = 0) -> list[bytes]:
    return build_batches(to_domain, n, body_size, batch, start, sender=None, prefix="h")


def archiving(kind: str) -> bool:
    return kind == "waddle" and os.environ.get("WADDLE_BENCH_MAM") == "1"


def archive_outcomes(server) -> dict:
    """waddle_mam_messages_total by outcome (docs/metrics.md)."""
    text = server.metrics_text()
    return {o: server.metric("waddle_mam_messages_total", text, outcome=o)
            for o in ("archived", "skipped", "dropped")}


def wait_archived(archives: dict, seen: dict, n: int, timeout: float = 60) -> dict:
    """Waits (bounded) until every server has handled `n` more archive copies (written,
    skipped or dropped) than `seen`, which it then advances; returns the round's counts."""
    out = {"archive_dropped": 0}
    deadline = time.monotonic() + timeout
    for k, srv in archives.items():
        while True:
            now = archive_outcomes(srv)
            if sum(now.values()) - sum(seen[k].values()) >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{k}: archive copies not written within {timeout}s: "
                                   f"{now} (before the round: {seen[k]})")
            time.sleep(0.01)
        out[f"{k}_archived"] = int(now["archived"] - seen[k]["archived"])
        out["archive_dropped"] += int(now["dropped"] - seen[k]["dropped"])
        seen[k] = now
    return out


def database_bytes(server) -> int:
    """The size of a Waddle's SQLite database with its WAL."""
    return sum(f.stat().st_size for f in server.data.glob("waddle.db*")
               if f.is_file() and not f.name.endswith("-shm"))


def run_hop(kind: str, args) -> dict:
    """A full federated hop between two servers of the same kind: a client of KIND-a.test
    pipelines N messages to user@KIND-b.test; a reader on KIND-b.test counts them. Both
    servers' CPU is measured: the sender's (c2s input, routing, outbound S2S) and the
    receiver's (inbound S2S, routing, c2s output)."""
    da, db = f"{kind}-a.test", f"{kind}-b.test"
    result: dict = {"server": kind, "mode": "hop", "messages": args.messages,
                    "body_size": args.body_size}
    sender = receiver = reader = None
    with bench_world(f"hop-{kind}", args) as (ca, fed):
        try:
            a, b = start_server(kind, fed, [da, db])
            pids = {"sender": server_pid(kind, a), "receiver": server_pid(kind, b)}
            print(f"  pids: sender {pids['sender']}, receiver {pids['receiver']}", flush=True)
            result["version"] = version_of(kind, a)

            receiver, reader = online_reader(b, db)
            sender = RawXmpp(a.ip, a.c2s_port, domain=da, timeout=15)
            sender.login(USER, harness.PASSWORD, resource="bench")

            # Warm-up: one message sets up the S2S stream (stanzas sent meanwhile wait in a
            # bounded queue, 1000 by default, and beyond it are bounced), then a burst; neither
            # is measured.
            first = build_c2s_batches(db, 1, args.body_size, 1, start=9_999_999)
            warm_up(sender, reader, first, 1, args, a, b)
            warm = build_c2s_batches(db, args.warmup, args.body_size, args.batch, start=0)
            warm_up(sender, reader, warm, args.warmup, args, a, b)
            # With [mam] on (WADDLE_BENCH_MAM=1), each server archives its user's copy.
            archives = {"sender": a, "receiver": b} if archiving(kind) else {}
            archived = {k: archive_outcomes(srv) for k, srv in archives.items()}
            if archives:
                wait_archived(archives, archived, 0)  # the warm-up's copies are written
                db0 = {k: database_bytes(srv) for k, srv in archives.items()}
            rounds = []
            for r in range(args.rounds):
                batches = build_c2s_batches(db, args.messages, args.body_size, args.batch,
                                            start=(r + 1) * 10_000_000)
                before = {k: (proc_cpu(p), proc_rss_kib(p)) for k, p in pids.items()}
                storage0 = {k: thread_cpu(p, "waddle-storage") for k, p in pids.items()}
                me0 = self_cpu()
                t0, t1, got = send_round(sender, reader, batches, args.messages, args.time_limit)
                if archives:
                    # The archive copies are written after delivery, from the storage thread:
                    # their cost counts only once each server has written this round's.
                    rd_archive = wait_archived(archives, archived, got)
                me1 = self_cpu()
                after = {k: (proc_cpu(p), proc_rss_kib(p)) for k, p in pids.items()}
                storage1 = {k: thread_cpu(p, "waddle-storage") for k, p in pids.items()}
                wall = max(t1 - t0, 1e-9)
                n = max(got, 1)
                rd = {"round": r + 1, "received": got, "complete": got >= args.messages,
                      "wall_s": round(wall, 4), "msgs_per_s": round(got / wall, 1),
                      "loadgen_cpu_s": round(me1 - me0, 3)}
                if archives:
                    rd.update(rd_archive)
                for k in pids:
                    (tick0, sched0), rss0 = before[k]
                    (tick1, sched1), rss1 = after[k]
                    rd[f"{k}_us_per_msg_stat"] = round((tick1 - tick0) / n * 1e6, 2)
                    rd[f"{k}_us_per_msg_sched"] = round((sched1 - sched0) / n * 1e6, 2)
                    rd[f"{k}_rss_kib"] = [rss0, rss1]
                    if kind == "waddle":  # of which the storage thread's
                        rd[f"{k}_storage_us_per_msg"] = round((storage1[k] - storage0[k]) / n * 1e6, 2)
                rd["us_per_msg_sched"] = round(rd["sender_us_per_msg_sched"] +
                                               rd["receiver_us_per_msg_sched"], 2)
                rd["us_per_msg_stat"] = round(rd["sender_us_per_msg_stat"] +
                                              rd["receiver_us_per_msg_stat"], 2)
                rounds.append(rd)
                print(f"  {kind} hop round {r + 1}: {got}/{args.messages} in {wall:.3f}s = "
                      f"{rd['msgs_per_s']:.0f} msg/s; server CPU per message (schedstat): sender "
                      f"{rd['sender_us_per_msg_sched']:.1f} µs + receiver "
                      f"{rd['receiver_us_per_msg_sched']:.1f} µs = {rd['us_per_msg_sched']:.1f} µs; "
                      f"load generator CPU {rd['loadgen_cpu_s']:.2f}s; RSS sender "
                      f"{rd['sender_rss_kib'][1]} KiB, receiver {rd['receiver_rss_kib'][1]} KiB",
                      flush=True)
                if archives:
                    print(f"  archive copies written: sender {rd['sender_archived']}, receiver "
                          f"{rd['receiver_archived']}, dropped {rd['archive_dropped']}; storage "
                          f"thread {rd['sender_storage_us_per_msg']:.1f} + "
                          f"{rd['receiver_storage_us_per_msg']:.1f} µs per message", flush=True)
                if not rd["complete"]:
                    break
            result["rounds"] = rounds
            if archives:
                written = sum(x["received"] for x in rounds)
                result["archive_bytes_per_message"] = {
                    k: round((database_bytes(srv) - db0[k]) / max(written, 1), 1)
                    for k, srv in archives.items()}
                print(f"  archive size: {result['archive_bytes_per_message']} bytes per message "
                      f"(database and WAL growth over {written} messages)", flush=True)
            done = [x for x in rounds if x["complete"]] or rounds
            for key in ("us_per_msg_stat", "us_per_msg_sched", "sender_us_per_msg_sched",
                        "receiver_us_per_msg_sched", "msgs_per_s", "wall_s", "loadgen_cpu_s"):
                result[key] = round(statistics.median(x[key] for x in done), 2)
            result["complete"] = all(x["complete"] for x in rounds)
            result["rss_kib_after"] = {k: rounds[-1][f"{k}_rss_kib"][1] for k in pids}
            return result
        finally:
            close_all(reader, (sender, receiver))


def run_archive_ratio(args) -> dict:
    """What archiving costs the full hop (issue 10's budget: at most twice the CPU per message
    of the hop without it): hop runs of Waddle with [mam] off and on, alternating `--pairs`
    times in one invocation so that both see the same machine, each run `--rounds` rounds.
    With --baseline-bin, a third arm runs that binary (archives off; for example the build
    from before archives existed, which has no [mam] section). Reports the median CPU per
    message of each arm and the ratios."""
    arms = [("off", None, "0"), ("on", None, "1")]
    if args.baseline_bin:
        arms.insert(0, ("baseline", str(args.baseline_bin), None))
    saved = {k: os.environ.get(k) for k in ("WADDLE_BIN", "WADDLE_BENCH_MAM", "WADDLE_BENCH_NO_WEB")}
    per_round: dict = {name: [] for name, _, _ in arms}
    storage: list = []
    try:
        for pair in range(args.pairs):
            for name, binary, mam in arms:
                # The baseline (a build from before archives) has no [web] listener either.
                for k, v in (("WADDLE_BIN", binary or saved["WADDLE_BIN"]),
                             ("WADDLE_BENCH_MAM", mam),
                             ("WADDLE_BENCH_NO_WEB", "1" if binary else None)):
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
                print(f"-- pair {pair + 1}/{args.pairs}: {name}", flush=True)
                res = run_hop("waddle", args)
                done = [x for x in res["rounds"] if x["complete"]]
                if len(done) != len(res["rounds"]):
                    raise RuntimeError(f"{name}: a round did not deliver every message")
                per_round[name] += [x["us_per_msg_sched"] for x in done]
                if name == "on":
                    storage += [x["sender_storage_us_per_msg"] + x["receiver_storage_us_per_msg"]
                                for x in done]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    med = {name: round(statistics.median(v), 2) for name, v in per_round.items()}
    # A shared VM's speed drifts within a run: each pair's arms ran minutes apart at most, so
    # the ratio is taken per pair (of the pair's medians), then its median over the pairs.
    r = args.rounds

    def pair_ratios(num: str, den: str) -> list:
        return [round(statistics.median(per_round[num][i * r:(i + 1) * r]) /
                      statistics.median(per_round[den][i * r:(i + 1) * r]), 2)
                for i in range(args.pairs)]
    ratios = {"on/off": pair_ratios("on", "off")}
    if "baseline" in med:
        ratios["on/baseline"] = pair_ratios("on", "baseline")
    result = {"server": "waddle", "mode": "archive-ratio", "messages": args.messages,
              "pairs": args.pairs, "rounds": args.rounds, "us_per_msg_sched": med,
              "storage_us_per_msg_on": round(statistics.median(storage), 2),
              "ratios_per_pair": ratios,
              "ratio": {k: statistics.median(v) for k, v in ratios.items()},
              "complete": True, "per_round": per_round}
    print("== archive ratio (median CPU per message, sender + receiver, schedstat): "
          + ", ".join(f"{k} {v} µs" for k, v in med.items())
          + f"; storage threads (on) {result['storage_us_per_msg_on']} µs; per pair: "
          + "; ".join(f"{k} {v} (median {statistics.median(v)})" for k, v in ratios.items()),
          flush=True)
    return result


def run_streams(kind: str, args) -> dict:
    """Many idle inbound S2S streams: N remote servers sK.load.test (one certificate with
    the name *.load.test) each open one stream, STARTTLS, SASL EXTERNAL, and stay idle. The
    server's RSS growth and CPU per stream are measured once all N are authenticated; one
    message over the last stream checks that the server still serves."""
    domain = f"{kind}.test"
    n = args.streams
    result: dict = {"server": kind, "mode": "streams", "streams": n}
    client = reader = None
    streams: list[LoadS2s] = []
    with bench_world(f"streams-{kind}", args) as (ca, fed):
        try:
            [server] = start_server(kind, fed, [domain])
            pid = server_pid(kind, server)
            result["version"] = version_of(kind, server)
            cert = ca.issue(LOCAL, extra_names=[f"*.{LOCAL}"])
            client, reader = online_reader(server, domain)
            # One stream first, so that one-time allocations are not counted per stream.
            first = LoadS2s(server.ip, domain, cert.cert, cert.key, ca.cert, timeout=15,
                            local=f"s0.{LOCAL}")
            first.authenticate()
            streams.append(first)
            time.sleep(0.5)
            rss0 = proc_rss_kib(pid)
            tick0, sched0 = proc_cpu(pid)
            t0 = time.monotonic()
            deadline = t0 + args.time_limit
            for k in range(1, n + 1):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {k - 1} of {n} streams within {args.time_limit} s")
                s2s = LoadS2s(server.ip, domain, cert.cert, cert.key, ca.cert, timeout=15,
                              local=f"s{k}.{LOCAL}")
                s2s.authenticate()
                streams.append(s2s)
            wall = time.monotonic() - t0
            tick1, sched1 = proc_cpu(pid)
            time.sleep(1.0)  # let the server finish whatever follows the last handshake
            rss1 = proc_rss_kib(pid)
            # Still serving: a message over the newest stream reaches the client.
            reader.arm(1, time.monotonic() + 15)
            last = streams[-1]
            last.sock.sendall(f"<message from='u@{last.local}/r' to='{USER}@{domain}' "
                              f"type='chat' id='alive'><body>{MARK.decode()} alive</body>"
                              f"</message>".encode())
            reader.done.wait(15.5)
            alive = reader.count >= 1
            open_at_end = sum(1 for s2s in streams if s2s.sock.fileno() >= 0)
            result.update({
                "wall_s": round(wall, 2),
                "rss_kib_before": rss0, "rss_kib_after": rss1,
                "kib_per_stream": round((rss1 - rss0) / n, 1),
                "cpu_ms_per_stream": round((sched1 - sched0) / n * 1e3, 3),
                "delivered_after": alive, "complete": alive and open_at_end == n + 1,
            })
            print(f"  {kind}: {n} idle S2S streams in {wall:.1f}s; RSS {rss0} -> {rss1} KiB = "
                  f"{result['kib_per_stream']:.1f} KiB per stream; server CPU "
                  f"{result['cpu_ms_per_stream']:.2f} ms per stream set-up (schedstat); "
                  f"message delivered afterwards: {alive}", flush=True)
            return result
        finally:
            close_all(reader, [*streams, client])


# --------------------------------------------------------------------------- WebSocket

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_WS_TLS: Optional[ssl.SSLContext] = None


def ws_tls_context() -> ssl.SSLContext:
    """One client context for every wss connection (certificate not verified, as RawXmpp)."""
    global _WS_TLS
    if _WS_TLS is None:
        _WS_TLS = ssl.create_default_context()
        _WS_TLS.check_hostname = False
        _WS_TLS.verify_mode = ssl.CERT_NONE
    return _WS_TLS


class RawWs:
    """A minimal blocking XMPP-over-WebSocket client (RFC 7395 on RFC 6455 frames): one
    socket (TLS for wss), the HTTP upgrade with subprotocol "xmpp", masked text frames out,
    one element per message in. Stdlib only; an idle connection costs the load generator one
    file descriptor and one socket (no thread, no task), as RawXmpp does for TCP."""

    MAX_MESSAGE = 1 << 20  # a message from the server larger than this fails the connection
    MAX_SKIPPED = 50       # messages skipped while waiting for an expected one

    def __init__(self, ip: str, port: int, *, tls: bool, domain: str, timeout: float = 15.0,
                 path: str = "/xmpp-websocket"):
        self.domain, self.timeout = domain, timeout
        sock = socket.create_connection((ip, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                sock = ws_tls_context().wrap_socket(sock, server_hostname=domain)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.buf = bytearray()
        self.jid = ""
        try:
            self._upgrade(f"{ip}:{port}", path)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- bytes and frames

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _upgrade(self, host: str, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.settimeout(self.timeout)
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n"
                           f"\r\n").encode())
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 16384:
                raise RuntimeError("upgrade response header too large")
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise RuntimeError(f"WebSocket upgrade refused: {head[:500]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise RuntimeError(f"bad Sec-WebSocket-Accept: {headers}")
        if headers.get("sec-websocket-protocol", "").lower() != "xmpp":
            raise RuntimeError(f"subprotocol xmpp not accepted: {headers}")

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        """A client frame (FIN set, masked as RFC 6455 §5.3 requires)."""
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        return head + mask + masked

    def send(self, text: str) -> None:
        """One XMPP element (or <open/>) as one text message."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(self._frame(0x1, text.encode()))

    def recv_message(self, timeout: Optional[float] = None) -> str:
        """The next text message (fragments reassembled; pings answered)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts: list[bytes] = []
        size = 0
        while True:
            while len(self.buf) < 2:
                self._fill(deadline)
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise RuntimeError("the server masked a frame")
            n, at = b1 & 0x7F, 2
            if n >= 126:
                at = 4 if n == 126 else 10
                while len(self.buf) < at:
                    self._fill(deadline)
                n = int.from_bytes(self.buf[2:at], "big")
            size += n
            if size > self.MAX_MESSAGE:
                raise RuntimeError(f"message of more than {self.MAX_MESSAGE} bytes")
            while len(self.buf) < at + n:
                self._fill(deadline)
            payload = bytes(self.buf[at:at + n])
            del self.buf[:at + n]
            opcode = b0 & 0x0F
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise ConnectionError(f"the server closed the WebSocket ({code}): {payload[2:]!r}")
            if opcode == 0x9:  # ping
                self.sock.sendall(self._frame(0xA, payload))
                size -= n
                continue
            if opcode == 0xA:  # pong
                size -= n
                continue
            if opcode not in (0x0, 0x1):
                raise RuntimeError(f"unexpected frame opcode {opcode}")
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def element(self, timeout: Optional[float] = None) -> ET.Element:
        return ET.fromstring(self.recv_message(timeout))

    def expect(self, pred, what: str, timeout: Optional[float] = None) -> ET.Element:
        """The first element (of at most MAX_SKIPPED) for which pred holds, in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for _ in range(self.MAX_SKIPPED):
            el = self.element(max(0.001, deadline - time.monotonic()))
            if pred(el):
                return el
        raise RuntimeError(f"no {what} among {self.MAX_SKIPPED} messages")

    # ---------------------------------------------------------------- XMPP

    def open(self) -> ET.Element:
        """<open/>, the server's <open/> and its features (returned)."""
        self.send(f"<open xmlns='{NS_FRAMING}' to='{self.domain}' version='1.0'/>")
        opened = self.element()
        if opened.tag != tag(NS_FRAMING, "open"):
            raise RuntimeError(f"expected <open/>, got {ET.tostring(opened)[:300]!r}")
        features = self.element()
        if features.tag != tag(NS_STREAMS, "features"):
            raise RuntimeError(f"expected features, got {ET.tostring(features)[:300]!r}")
        return features

    def login(self, user: str, password: str, resource: str) -> None:
        """SASL PLAIN, the stream restart (a new <open/>), resource binding; no presence."""
        features = self.open()
        mechs = [m.text for m in features.iter(tag(NS_SASL, "mechanism"))]
        if "PLAIN" not in mechs:
            raise RuntimeError(f"PLAIN not offered over WebSocket: {mechs}")
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
        answer = self.element()
        if answer.tag != tag(NS_SASL, "success"):
            raise RuntimeError(f"PLAIN login refused: {ET.tostring(answer)[:300]!r}")
        features = self.open()
        if features.find(tag(NS_BIND, "bind")) is None:
            raise RuntimeError("no resource binding offered after authentication")
        self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        result = self.expect(lambda e: e.get("id") == "b", "bind result")
        if result.get("type") != "result":
            raise RuntimeError(f"bind failed: {ET.tostring(result)[:300]!r}")
        self.jid = result.findtext(f"{tag(NS_BIND, 'bind')}/{tag(NS_BIND, 'jid')}") or ""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- idle sessions

# Transports of the idle-session modes: TCP c2s (STARTTLS), WebSocket over HTTPS (wss, the
# server's listen address, port 5443) and over plain HTTP (ws, [web] plain_address = the
# server's loopback address in the harness, port 5380).
WS_TRANSPORTS = ("wss", "ws")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def raise_nofile(needed: int) -> None:
    """Raises the soft RLIMIT_NOFILE to `needed` (up to the hard limit) before any server is
    started, so the server (which inherits it) and this process hold every connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed} descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def run_idle_sessions(kind: str, args, transport: str = "tcp") -> dict:
    """Many idle client sessions of one account on a server of its own: N connections
    (transport "tcp": raw c2s, STARTTLS; "wss"/"ws": XMPP over WebSocket, RFC 7395, with or
    without TLS), each SASL PLAIN and a resource, no presence (so no broadcast between them),
    stay idle. The server's RSS growth and CPU per session are measured once all N are
    bound; a message from the newest session to itself must still come back."""
    domain = f"{kind}.test"
    ws = transport != "tcp"
    n = args.websocket_clients if ws else args.clients
    result: dict = ({"server": kind, "mode": "websocket-clients", "transport": transport,
                     "clients": n} if ws else {"server": kind, "mode": "clients", "clients": n})
    clients: list = []
    with bench_world(f"{'ws' if ws else 'clients'}-{kind}", args) as (ca, fed):
        try:
            [server] = start_server(kind, fed, [domain])
            pid = server_pid(kind, server)
            result["version"] = version_of(kind, server)
            if kind == "waddle":
                # The binary this server runs (build/ may be rebuilt during an invocation).
                result["binary_sha256"] = file_sha256(Path(f"/proc/{pid}/exe"))

            def login(k: int):
                if ws:
                    c = RawWs(server.ip, harness.WEB_PORT if transport == "wss"
                              else harness.WEB_PLAIN_PORT, tls=transport == "wss",
                              domain=domain, timeout=15)
                    try:
                        c.login(USER, harness.PASSWORD, resource=f"r{k}")
                    except BaseException:
                        c.close()
                        raise
                    return c
                c = RawXmpp(server.ip, server.c2s_port, domain=domain, timeout=15)
                c.login(USER, harness.PASSWORD, resource=f"r{k}")
                return c

            clients.append(login(0))  # one first: one-time allocations are not per session
            time.sleep(0.5)
            rss0 = proc_rss_kib(pid)
            tick0, sched0 = proc_cpu(pid)
            t0 = time.monotonic()
            for k in range(1, n + 1):
                if time.monotonic() > t0 + args.time_limit:
                    raise RuntimeError(f"only {k - 1} of {n} sessions within {args.time_limit} s")
                clients.append(login(k))
            wall = time.monotonic() - t0
            tick1, sched1 = proc_cpu(pid)
            time.sleep(1.0)
            rss1 = proc_rss_kib(pid)
            last = clients[-1]
            me = f"{USER}@{domain}/r{n}"
            alive = False
            if ws:
                last.send(f"<message xmlns='{NS_CLIENT}' to='{me}' type='chat' id='alive'>"
                          f"<body>{MARK.decode()}</body></message>")
                try:
                    last.expect(lambda e: e.tag == tag(NS_CLIENT, "message")
                                and e.get("id") == "alive", "the message to itself", 15)
                    alive = True
                except Exception:  # noqa: BLE001 (timeout or closed: not alive)
                    pass
            else:
                last.drain()
                last.send(f"<message to='{me}' type='chat' id='alive'><body>{MARK.decode()}"
                          f"</body></message>")
                deadline = time.monotonic() + 15
                while not alive and time.monotonic() < deadline:
                    try:
                        el = last.next_element(timeout=max(0.1, deadline - time.monotonic()))
                    except Exception:  # noqa: BLE001 (timeout or closed: not alive)
                        break
                    alive = el.tag.endswith("}message") and el.get("id") == "alive"
            result.update({
                "wall_s": round(wall, 2),
                "rss_kib_before": rss0, "rss_kib_after": rss1,
                "kib_per_client": round((rss1 - rss0) / n, 1),
                "cpu_ms_per_client": round((sched1 - sched0) / n * 1e3, 3),
                "delivered_after": alive, "complete": alive,
            })
            what = f"idle WebSocket sessions ({transport})" if ws else "idle client sessions"
            print(f"  {kind}: {n} {what} in {wall:.1f}s; RSS {rss0} -> {rss1} KiB = "
                  f"{result['kib_per_client']:.1f} KiB per session; server CPU "
                  f"{result['cpu_ms_per_client']:.2f} ms per login (schedstat); message delivered "
                  f"afterwards: {alive}", flush=True)
            return result
        finally:
            close_all(None, clients)


def run_clients(kind: str, args) -> dict:
    """--clients N: idle TCP client sessions (run_idle_sessions)."""
    return run_idle_sessions(kind, args, "tcp")


def run_idle(kind: str, args) -> dict:
    """--clients N and/or --websocket-clients N: idle sessions over TCP c2s, then over each
    WebSocket transport (Waddle only: the harness configures no WebSocket listener for the
    others), each on a fresh server. A single run returns its own result (for --clients
    alone, the object it always was); several return one object with each run and each
    WebSocket transport's RSS per session relative to TCP's, printed side by side."""
    plan = ["tcp"] if args.clients else []
    if args.websocket_clients:
        if kind == "waddle":
            plan += args.websocket_transports
        else:
            print(f"  {kind}: WebSocket sessions not measured (no WebSocket listener "
                  f"configured for it by the harness)", flush=True)
    if not plan:
        raise RuntimeError("no idle-session run for this server")
    runs = [run_idle_sessions(kind, args, t) for t in plan]
    if len(runs) == 1:
        return runs[0]
    per = {r.get("transport", "tcp"): r["kib_per_client"] for r in runs}
    cpu = {r.get("transport", "tcp"): r["cpu_ms_per_client"] for r in runs}
    result = {"server": kind, "mode": "idle-sessions", "version": runs[0].get("version"),
              "clients": args.clients, "websocket_clients": args.websocket_clients,
              "kib_per_session": per, "cpu_ms_per_login": cpu,
              "complete": all(r.get("complete") for r in runs), "runs": runs}
    if "tcp" in per and per["tcp"] > 0:
        result["kib_ratio_to_tcp"] = {t: round(v / per["tcp"], 2) for t, v in per.items()
                                      if t != "tcp"}
    print(f"== {kind} idle sessions, RSS per session: "
          + ", ".join(f"{'TCP c2s' if t == 'tcp' else t} {v:.1f} KiB" for t, v in per.items())
          + ("; relative to TCP: " + ", ".join(f"{t} {v:.2f}" for t, v in
                                                result["kib_ratio_to_tcp"].items())
             if "kib_ratio_to_tcp" in result else "")
          + "; login CPU: " + ", ".join(f"{t} {v:.2f} ms" for t, v in cpu.items()), flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("servers", nargs="+", choices=("waddle", "prosody", "ejabberd"))
    ap.add_argument("--messages", "-n", type=int, default=20000,
                    help="messages per measured round (default 20000)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=2000, help="unmeasured warm-up messages")
    ap.add_argument("--time-limit", type=float, default=60.0,
                    help="seconds allowed per round (sending + delivery); default 60")
    ap.add_argument("--body-size", type=int, default=64, help="body length in characters")
    ap.add_argument("--batch", type=int, default=64, help="stanzas per write")
    ap.add_argument("--json", type=Path, help="append one JSON object per server here")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    ap.add_argument("--hop", action="store_true",
                    help="full hop between two servers of the same kind (client -> A -> S2S "
                         "-> B -> client); both servers' CPU per message")
    ap.add_argument("--streams", type=int, default=0,
                    help="instead of messages: N idle inbound S2S streams from distinct "
                         "domains; RSS and CPU per stream")
    ap.add_argument("--clients", type=int, default=0,
                    help="instead of messages: N idle client sessions of one account; RSS "
                         "and CPU per session")
    ap.add_argument("--websocket-clients", type=int, default=0,
                    help="instead of messages: N idle XMPP-over-WebSocket sessions of one "
                         "account (Waddle), over each of --websocket-transports; with "
                         "--clients the TCP run comes first, each run on a fresh server")
    ap.add_argument("--websocket-transports", default="wss,ws",
                    help="with --websocket-clients: wss (HTTPS, port 5443), ws (plain HTTP "
                         "on the loopback listener, port 5380) or both (default wss,ws)")
    ap.add_argument("--archive-ratio", action="store_true",
                    help="Waddle only: hop runs with archiving off and on, alternating "
                         "--pairs times; median CPU per message of each and the ratio")
    ap.add_argument("--pairs", type=int, default=3,
                    help="with --archive-ratio: alternations (default 3)")
    ap.add_argument("--baseline-bin", type=Path,
                    help="with --archive-ratio: also run this waddle binary (archives off)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (the harness uses unshare/mount and runuser)", file=sys.stderr)
        return 2
    if not (0 < args.messages <= 1_000_000 and 0 < args.rounds <= 20
            and 0 < args.time_limit <= 600 and 0 <= args.warmup <= 100_000
            and 0 <= args.streams <= 900 and 0 <= args.clients <= 4000
            and 0 <= args.websocket_clients <= 4000 and 0 < args.pairs <= 10):
        print("bounds: messages 1..1e6, rounds 1..20, time-limit 0..600 s, streams 0..900, "
              "clients and websocket-clients 0..4000, pairs 1..10",
              file=sys.stderr)
        return 2
    transports = [t.strip() for t in args.websocket_transports.split(",") if t.strip()]
    if not transports or any(t not in WS_TRANSPORTS for t in transports):
        print("--websocket-transports: wss, ws or wss,ws", file=sys.stderr)
        return 2
    args.websocket_transports = list(dict.fromkeys(transports))
    # Every session holds a descriptor here and one in the server (which inherits the limit).
    raise_nofile(max(args.clients, args.websocket_clients, args.streams) + 1024)
    rc = 0
    for kind in args.servers:
        print(f"== {kind}", flush=True)
        try:
            if args.archive_ratio:
                if kind != "waddle":
                    raise RuntimeError("--archive-ratio measures Waddle only")
                res = run_archive_ratio(args)
            elif args.clients or args.websocket_clients:
                res = run_idle(kind, args)
            elif args.streams:
                res = run_streams(kind, args)
            else:
                res = run_hop(kind, args) if args.hop else run_server(kind, args)
        except Exception as e:  # noqa: BLE001 (report and go on with the next server)
            print(f"  {kind} FAILED: {e}", file=sys.stderr, flush=True)
            res = {"server": kind, "error": str(e)[:2000]}
            rc = 1
        if "error" not in res and not res.get("complete"):
            rc = 1  # a round did not deliver every message in time
        res["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        res["nproc"] = os.cpu_count()
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(res) + "\n")
        elif "error" not in res:
            print(json.dumps({k: v for k, v in res.items() if k != "rounds"}))
    return rc


if __name__ == "__main__":
    sys.exit(main())
