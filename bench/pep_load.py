#!/usr/bin/python3
"""PEP fan-out benchmark: server CPU per PEP publish to a roster of local and remote contacts.

One server under test (Waddle, Prosody with mod_pep, ejabberd with mod_pubsub's pep plugin)
is started as bench/s2s_load.py starts it (tests/interop/harness.py, "cert" mode: a private
CA, SASL EXTERNAL between servers, STARTTLS required, logging at info, no pacing). Then:

  1. accounts owner@DOMAIN, probe@DOMAIN and cK@DOMAIN (K = 1..C) are created (Waddle,
     Prosody: their command-line tools; ejabberd: in-band registration, as ejabberdctl
     starts an Erlang VM per call); the owner and the C local contacts log in over raw c2s
     (STARTTLS, PLAIN, resource "bench" / "r", roster get, available presence without
     caps), the probe too (no roster get, no presence);
  2. the tool plays the remote server load.test: R contacts rK@load.test/r. Stanzas from
     them go over one raw S2S stream the tool opens to the server (s2s_load.LoadS2s:
     STARTTLS, SASL EXTERNAL with a CA-issued certificate for load.test); stanzas to them
     arrive on the stream(s) the server opens to load.test, which the tool accepts on its
     own leased loopback address (DNS A/SRV records in the harness's dnsmasq; STARTTLS with
     the load.test certificate, SASL EXTERNAL offered and taken);
  3. the owner's roster is built by protocol: the owner sends 'subscribe' to all C + R
     contacts, each approves ('subscribed') and asks back ('subscribe'), the owner approves;
     done when the owner's roster pushes show all C + R items with subscription 'both' (a
     roster get confirms it);
  4. every contact resource sends the owner available presence with XEP-0115 caps (sha-1,
     a correct ver) whose features include urn:xmpp:avatar:metadata+notify, and answers the
     server's disco#info query for node#ver (local contacts on their c2s session, remote
     ones on the tool's S2S stream). One contact (r1) goes first and its query is answered
     before the others send theirs: the ver is known, as for a client version in use.
     Warm-up publishes (one every --retry-every seconds) until every contact resource has
     received a notification, bounded by --setup-time; then --warmup more, each of which
     must reach every resource, the last one giving the expected notifications per
     contact;
  5. measured: --rounds rounds of --publishes avatar metadata publishes by the owner, one at
     a time (the next when the previous one's C + R notifications and its result have
     arrived). The tool counts notifications per local session and, on the S2S streams from
     the server, per remote recipient (each must get every publish exactly once, or the run
     fails), and reports the server's CPU per publish and per contact resource notified
     (schedstat, all threads), wall time, fan-out latency (publish sent -> last
     notification read), the publish result's latency, the latency of a ping the probe
     sends right after each publish (is the server still answering others while it fans
     out?), and RSS. The load generator's own CPU is reported too.

Every wait is bounded by a count and a deadline; only processes started here are stopped, by
PID (through the harness); loopback addresses only. Stdlib only; run as root with Debian's
/usr/bin/python3:

    /usr/bin/python3 bench/pep_load.py waddle prosody [ejabberd]     # full: 250 + 250
    /usr/bin/python3 bench/pep_load.py waddle prosody --quick         # CI: 20 + 20
    ... --json results.jsonl   (appends one JSON object per server)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import queue
import re
import secrets
import selectors
import signal
import socket
import ssl
import statistics
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Optional
from xml.sax.saxutils import quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent))

import s2s_load  # noqa: E402  (bench/s2s_load.py; it puts tests/interop and tests/system on the path)
from s2s_load import (LOCAL, LoadS2s, bench_world, proc_cpu, proc_rss_kib,  # noqa: E402
                      self_cpu, server_pid, thread_cpu, version_of)
import harness  # noqa: E402
from rawxmpp import NS_SASL, NS_STREAMS, NS_TLS, RawXmpp, local_name, tag  # noqa: E402

OWNER = "owner"
PROBE = "probe"  # an account of its own whose session pings the server during the publishes
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_ROSTER = "jabber:iq:roster"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_PING = "urn:xmpp:ping"
NS_REGISTER = "jabber:iq:register"
CAPS_NODE = "https://waddle.example/bench/pep_load"
IDENTITY = ("client", "pc", "", "pep_load")  # category, type, xml:lang, name
FEATURES = sorted([NS_CAPS, NS_DISCO_INFO, f"{NS_AVATAR_META}+notify"])
# Occurs once per notification: the item id of every benchmark publish starts with it.
MARK = b"ZqXpep"


def caps_ver(identity: tuple[str, str, str, str], features: list[str]) -> str:
    """XEP-0115 §5.1 verification string hashed with SHA-1 (no data forms)."""
    s = "/".join(identity) + "<" + "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


CAPS_VER = caps_ver(IDENTITY, FEATURES)
CAPS = f"<c xmlns='{NS_CAPS}' hash='sha-1' node='{CAPS_NODE}' ver='{CAPS_VER}'/>"


def disco_answer(node: Optional[str]) -> str:
    node_attr = f" node={quoteattr(node)}" if node else ""
    cat, typ, _, name = IDENTITY
    return (f"<query xmlns='{NS_DISCO_INFO}'{node_attr}><identity category='{cat}' "
            f"type='{typ}' name='{name}'/>" + "".join(f"<feature var='{f}'/>" for f in FEATURES)
            + "</query>")


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def publish_iq(n: int) -> tuple[str, str]:
    """(iq id, stanza): an avatar metadata item with a new id. The item id carries MARK and
    is not the SHA-1 of image data as XEP-0084 asks (no server checks); the info element's
    id is a SHA-1, so MARK occurs once per notification."""
    item = f"{MARK.decode()}{n:09d}"
    info = hashlib.sha1(item.encode()).hexdigest()
    iq_id = f"pub{n}"
    return iq_id, (f"<iq type='set' id='{iq_id}'><pubsub xmlns='{NS_PUBSUB}'><publish "
                   f"node='{NS_AVATAR_META}'><item id='{item}'><metadata xmlns='{NS_AVATAR_META}'>"
                   f"<info bytes='{4096 + n % 1000}' id='{info}' height='64' width='64' "
                   f"type='image/png'/></metadata></item></publish></pubsub></iq>")


# --------------------------------------------------------------------------- servers


EJABBERD_PEP = (
    # (continues the `modules:` mapping of the harness's ejabberd.yml)
    "  mod_caps: {}\n"
    "  mod_pubsub:\n"
    "    plugins: [flat, pep]\n"
    # in-band registration: ejabberdctl register starts an Erlang VM per account (~1.5 s)
    "  mod_register: {}\n"
    "registration_timeout: infinity\n")


def make_pep_server(kind: str, fed: harness.Federation, domain: str):
    """The server of s2s_load.make_server (cert mode, info logs, no pacing) with PEP on."""
    server = s2s_load.make_server(kind, fed, domain)
    if kind == "prosody":
        server.extra_modules.append("pep")
        server.log_level = "info"
        server.write_config()
    elif kind == "ejabberd":
        server.extra_config = EJABBERD_PEP + server.extra_config
        server.write_config()  # the files exist: owner and mode stay as the harness set them
    return server


def create_accounts(kind: str, server, names: list[str], deadline: float) -> None:
    """Accounts for Waddle and Prosody with their command-line tools before start (ejabberd:
    in-band registration at login, see login_contact)."""
    if kind == "ejabberd":
        return
    for name in names:
        if time.monotonic() > deadline:
            raise RuntimeError(f"accounts: {len(server.users)} of {len(names)} within the "
                               f"setup time")
        server.register(name)


def login_contact(kind: str, server, domain: str, user: str, resource: str,
                  register: bool = False, online: bool = True) -> RawXmpp:
    """A raw c2s session (ejabberd: the account registered in-band first); online: a
    roster get (an "interested" resource, RFC 6121 §2.1.6) and available presence without
    caps."""
    c = RawXmpp(server.ip, server.c2s_port, domain=domain, timeout=15)
    try:
        if register:
            c.tls_stream()
            c.send(f"<iq type='set' id='reg'><query xmlns='{NS_REGISTER}'><username>{user}"
                   f"</username><password>{harness.PASSWORD}</password></query></iq>")
            el = c.next_element()
            if el.get("type") != "result":
                raise RuntimeError(c._describe(f"in-band registration of {user} refused"))
            answer = c.auth_plain(user, harness.PASSWORD)  # on the same TLS stream
            if answer.tag != tag(NS_SASL, "success"):
                raise RuntimeError(c._describe(f"PLAIN login as {user} failed"))
            c.open_stream()
            c.bind(resource)
        else:
            c.login(user, harness.PASSWORD, resource=resource)
        if online:
            c.send(f"<iq type='get' id='roster0'><query xmlns='{NS_ROSTER}'/></iq><presence/>")
    except BaseException:
        c.close()
        raise
    return c


# --------------------------------------------------------------------------- load.test side


class AcceptedS2s(RawXmpp):
    """The receiving end of a stream the server under test opens to load.test: STARTTLS
    (certificate for load.test, the peer's client certificate asked for and checked against
    the CA), SASL EXTERNAL offered and accepted, stream restart, empty features. Uses
    RawXmpp's parser and reading on an accepted socket."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, timeout: float = 15.0):
        # RawXmpp.__init__ connects; the attributes it sets, for a socket already connected.
        self.domain = LOCAL
        self.timeout = timeout
        self.sock = sock
        self.sock.settimeout(timeout)
        self.tls = False
        self.peer_cert_der = None
        self.received = bytearray()
        self.elements = []
        self.eof = False
        self.eof_error = None
        self.send_error = None
        self.stream_count = 0
        self._ctx = ctx
        self.peer = "?"
        self._reset_parser()

    def _header(self) -> str:
        return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                f"xmlns:stream='{NS_STREAMS}' xmlns:db='jabber:server:dialback' "
                f"from='{LOCAL}' to={quoteattr(self.peer)} id='{secrets.token_hex(8)}' "
                f"version='1.0'>")

    def _await_header(self) -> None:
        if not self.collect_until(lambda r: r.stream_open, self.timeout):
            raise RuntimeError(self._describe("no stream header from the server"))
        self.peer = self.stream_attrs.get("from", self.peer)

    def handshake(self) -> None:
        self._await_header()
        self.send(self._header() + f"<stream:features><starttls xmlns='{NS_TLS}'><required/>"
                  f"</starttls></stream:features>")
        self.expect(tag(NS_TLS, "starttls"))
        self.send(f"<proceed xmlns='{NS_TLS}'/>")
        self.sock = self._ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self._reset_parser()
        self._await_header()
        self.send(self._header() + f"<stream:features><mechanisms xmlns='{NS_SASL}'>"
                  f"<mechanism>EXTERNAL</mechanism></mechanisms></stream:features>")
        self.expect(tag(NS_SASL, "auth"))
        self.send(f"<success xmlns='{NS_SASL}'/>")
        self._reset_parser()
        self._await_header()
        self.send(self._header() + "<stream:features/>")


class LoadTestListener(threading.Thread):
    """Accepts (bounded) the streams the server under test opens to load.test, each
    authenticated in a thread of its own; the ready ones are taken with take()."""

    def __init__(self, ip: str, cert: harness.CertPair, ca_file: Path, max_streams: int = 8):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert.cert), str(cert.key))
        self.ctx.load_verify_locations(str(ca_file))
        self.ctx.verify_mode = ssl.CERT_OPTIONAL  # the client certificate SASL EXTERNAL uses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, harness.S2S_PORT))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.max_streams = max_streams
        self.accepted = 0
        self.ready: list[AcceptedS2s] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.streams: list[AcceptedS2s] = []

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.accepted > self.max_streams:
                self.errors.append(f"stream {self.accepted} from the server refused "
                                   f"(more than {self.max_streams})")
                conn.close()
                continue
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        s = AcceptedS2s(conn, self.ctx)
        with self.lock:
            self.streams.append(s)
        try:
            s.handshake()
        except Exception as e:  # noqa: BLE001 (reported by the run)
            self.errors.append(f"handshake of a stream from the server: {e}"[:2000])
            s.close()
            return
        with self.lock:
            self.ready.append(s)

    def take(self) -> list[AcceptedS2s]:
        with self.lock:
            out, self.ready = self.ready, []
        return out

    def close(self) -> None:
        self.stop_flag.set()
        self.join(2)
        self.sock.close()
        with self.lock:
            for s in self.streams:
                s.close()


# --------------------------------------------------------------------------- the world


class Conn:
    """One socket the tool reads: the owner, a local contact, a stream from the server to
    load.test, or the tool's own stream to the server."""

    def __init__(self, role: str, obj: RawXmpp, index: int = 0):
        self.role, self.obj, self.index = role, obj, index
        self.count = 0  # MARK occurrences (measuring mode)
        self.tail = b""
        # what arrived while counting (local and s2s_out), for the per-recipient check
        self.keep: Optional[bytearray] = bytearray() if role in ("local", "s2s_out") else None
        self.bytes = 0
        self.counting = False


class PepWorld:
    """The owner, the contacts and the streams, read through one selector. In parsing mode
    every top-level element is handled (roster, caps, disco, warm-up); in counting mode the
    contacts' sockets are read without parsing and MARK is counted (the owner's stream is
    still parsed: one result per publish)."""

    def __init__(self, domain: str, n_local: int, n_remote: int):
        self.domain = domain
        self.owner_jid = f"{OWNER}@{domain}"
        self.n_local, self.n_remote = n_local, n_remote
        self.local_jids = [f"c{k}@{domain}" for k in range(1, n_local + 1)]
        self.remote_jids = [f"r{k}@{LOCAL}" for k in range(1, n_remote + 1)]
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.owner: Optional[RawXmpp] = None
        self.probe: Optional[RawXmpp] = None  # the owner's second session: pings, timed
        self.pongs: dict[str, float] = {}
        self.ack_at: dict[str, float] = {}
        self.timer: Optional["Timer"] = None
        self.last_count_at = 0.0  # when a contact's socket last brought a notification
        # the timer thread wakes the main loop through this pair when it records an answer
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self.s2s_in: Optional[LoadS2s] = None
        self.listener: Optional[LoadTestListener] = None
        # protocol state
        self.roster: dict[str, str] = {}  # owner's roster pushes: jid -> subscription
        self.owner_presence: set[str] = set()  # contacts whose available presence it got
        self.owner_caps: set[str] = set()  # ... with caps
        self.acks: dict[str, str] = {}  # publish iq id -> result/error text
        self.asked: set[str] = set()  # contacts that sent 'subscribe' back already
        self.caps_queries = {"local": 0, "remote": 0}
        self.caps_query_nodes: set[str] = set()
        self.event_seen: set[str] = set()  # contacts (bare) that got a notification
        self.events_parsed = 0
        # notifications parsed, by contact (bare) and by the 'to' they were addressed to
        self.tally: dict[str, int] = {}
        self.tally_to: dict[str, int] = {}
        self.unexpected: list[str] = []
        self.s2s_out_count = 0
        self.counting = False

    # ------------------------------------------------------------------ plumbing

    def add(self, conn: Conn) -> None:
        self.conns.append(conn)
        self.sel.register(conn.obj.sock, selectors.EVENT_READ, conn)

    def adopt_streams(self) -> None:
        if self.listener is None:
            return
        for s in self.listener.take():
            self.s2s_out_count += 1
            conn = Conn("s2s_out", s)
            self.add(conn)
            self._drain_queue(conn)  # stanzas parsed along with the last stream header
            if self.counting:
                self.unexpected.append(f"a new stream from the server to {LOCAL} while "
                                       f"measuring")
                self._count_on(conn)

    def _fail_if_closed(self, conn: Conn) -> bool:
        """Raises if a stream ended, except a stream from the server to load.test outside
        the measured rounds (ejabberd closes one it thinks idle): it is dropped and True is
        returned (the server opens a new one when it has something to send)."""
        o = conn.obj
        if conn.role == "s2s_out" and (o.eof or o.stream_closed):
            self.unexpected.append(f"a stream from the server to {LOCAL} ended (errors "
                                   f"{o.stream_error_conditions()}); a new one is accepted")
            self.sel.unregister(o.sock)
            self.conns.remove(conn)
            o.close()
            return True
        if o.eof or o.stream_closed or o.parse_error is not None:
            raise RuntimeError(f"{conn.role} {conn.index} stream ended: " + o._describe(
                f"errors {o.stream_error_conditions()}")[:3000])

    def pump(self, timeout: float) -> int:
        """Reads what arrives within `timeout` (once something arrived, what is ready now);
        returns the number of reads that returned data."""
        self.adopt_streams()
        reads = 0
        events = self.sel.select(timeout)
        # the owner's and the probe's streams first: their answers are timed
        events.sort(key=lambda e: e[0].data is None or e[0].data.role not in ("owner", "probe"))
        for key, _ in events:
            conn: Optional[Conn] = key.data
            if conn is None:  # the timer thread's wake-up
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
                continue
            reads += self._read(conn)
        return reads

    def wake_main(self) -> None:
        if self.timer is not None:
            try:
                self._wake_w.send(b"!")
            except OSError:
                pass

    def _read(self, conn: Conn) -> int:
        if conn.counting:
            return self._read_counting(conn)
        o = conn.obj
        reads = 0
        while True:
            if not o._recv(0.001):
                break
            reads += 1
            self._drain_queue(conn)
            if self._fail_if_closed(conn):
                break
            if not (isinstance(o.sock, ssl.SSLSocket) and o.sock.pending()):
                break
        return reads

    def _read_counting(self, conn: Conn) -> int:
        sock = conn.obj.sock
        buf = self._buf
        reads = 0
        keep = len(MARK) - 1
        while True:
            try:
                got = sock.recv_into(buf)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                break
            except (OSError, ssl.SSLError) as e:
                raise RuntimeError(f"{conn.role} {conn.index}: {e!r}")
            if got == 0:
                raise RuntimeError(f"{conn.role} {conn.index}: the server closed the stream")
            reads += 1
            chunk = bytes(self._view[:got])
            data = conn.tail + chunk
            n = data.count(MARK)
            if n:
                conn.count += n
                self.last_count_at = time.monotonic()
            conn.tail = data[-keep:]
            conn.bytes += got
            if conn.keep is not None:
                conn.keep += chunk
            if b"</stream:stream>" in chunk:
                raise RuntimeError(f"{conn.role} {conn.index}: the server closed the stream: "
                                   f"{chunk[-500:]!r}")
        return reads

    def start_counting(self) -> None:
        self._buf = bytearray(262144)
        self._view = memoryview(self._buf)
        self.counting = True
        for conn in self.conns:
            if conn.role in ("local", "s2s_out"):
                self._count_on(conn)

    def _count_on(self, conn: Conn) -> None:
        conn.counting = True
        conn.obj.sock.setblocking(False)
        if conn.obj._queue:  # parsed already: cannot be counted
            self.unexpected.append(f"{len(conn.obj._queue)} stanzas parsed before counting")

    def s2s_count(self) -> int:
        return sum(c.count for c in self.conns if c.role == "s2s_out")

    def quiet(self, idle: float, limit: float) -> bool:
        """Pumps until nothing arrived for `idle` seconds (True) or `limit` passed."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end:
            if self.pump(min(0.1, max(0.0, end - time.monotonic()))):
                last = time.monotonic()
            elif time.monotonic() - last >= idle:
                return True
        return False

    def pump_until(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return done()
            self.pump(min(0.2, left))
        return True

    def _drain_queue(self, conn: Conn) -> None:
        q = conn.obj._queue
        while q:
            el = q.popleft()
            if conn.role == "owner":
                self._owner(el)
            elif conn.role == "probe":
                if local_name(el.tag) == "iq" and el.get("id", "").startswith("ping"):
                    self.pongs[el.get("id")] = time.monotonic()
                    self.wake_main()
                else:
                    reply = self._iq_error(el)
                    if reply:
                        self.probe.send(reply)
            elif conn.role == "local":
                self._local(conn, el)
            elif conn.role == "s2s_out":
                self._remote(el)
            else:  # the tool's own stream to the server: nothing is expected on it
                self.unexpected.append(f"on the stream to the server: {ET.tostring(el)[:300]!r}")

    # ------------------------------------------------------------------ sending

    def send_owner(self, data: str) -> None:
        if not self.owner.send(data):
            raise RuntimeError(self.owner._describe("owner: send failed"))

    def send_s2s(self, data: str) -> None:
        if not self.s2s_in.send(data):
            raise RuntimeError(self.s2s_in._describe("stream to the server: send failed"))

    def send_local(self, conn: Conn, data: str) -> None:
        if not conn.obj.send(data):
            raise RuntimeError(conn.obj._describe(f"local contact {conn.index}: send failed"))

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _iq_error(el: ET.Element, frm: Optional[str] = None) -> Optional[str]:
        """The reply to an iq get/set nobody here handles (ping: a result)."""
        if el.get("type") not in ("get", "set"):
            return None
        f = f" from={quoteattr(frm)}" if frm else ""
        to = f" to={quoteattr(el.get('from'))}" if el.get("from") else ""
        if el.find(tag(NS_PING, "ping")) is not None or (
                el.get("type") == "set" and el.find(tag(NS_ROSTER, "query")) is not None):
            return f"<iq type='result' id={quoteattr(el.get('id', ''))}{to}{f}/>"
        return (f"<iq type='error' id={quoteattr(el.get('id', ''))}{to}{f}><error type='cancel'>"
                f"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")

    def _is_event(self, el: ET.Element) -> bool:
        ev = el.find(tag(NS_EVENT, "event"))
        if ev is None:
            return False
        items = ev.find(tag(NS_EVENT, "items"))
        return items is not None and items.get("node") == NS_AVATAR_META

    def _owner(self, el: ET.Element) -> None:
        name, typ, frm = local_name(el.tag), el.get("type"), el.get("from", "")
        if name == "presence":
            b = bare(frm)
            if typ == "subscribe":
                self.send_owner(f"<presence to={quoteattr(b)} type='subscribed'/>")
            elif typ is None:
                self.owner_presence.add(b)
                if el.find(tag(NS_CAPS, "c")) is not None:
                    self.owner_caps.add(b)
        elif name == "iq":
            q = el.find(tag(NS_ROSTER, "query"))
            if typ == "set" and q is not None:
                for item in q.findall(tag(NS_ROSTER, "item")):
                    self.roster[item.get("jid", "")] = item.get("subscription", "none")
                self.send_owner(f"<iq type='result' id={quoteattr(el.get('id', ''))}/>")
            elif typ in ("result", "error") and el.get("id", "").startswith("pub"):
                self.acks[el.get("id")] = typ if typ == "result" else ET.tostring(el).decode()
                self.ack_at[el.get("id")] = time.monotonic()
                self.wake_main()
            elif typ in ("get", "set"):
                reply = self._iq_error(el)
                if reply:
                    self.send_owner(reply)

    def _local(self, conn: Conn, el: ET.Element) -> None:
        name, typ, frm = local_name(el.tag), el.get("type"), el.get("from", "")
        if name == "presence":
            if typ == "subscribe" and bare(frm) == self.owner_jid:
                self.send_local(conn, f"<presence to='{self.owner_jid}' type='subscribed'/>"
                                      f"<presence to='{self.owner_jid}' type='subscribe'/>")
        elif name == "iq":
            q = el.find(tag(NS_DISCO_INFO, "query"))
            if typ == "get" and q is not None:
                self.caps_queries["local"] += 1
                self.caps_query_nodes.add(q.get("node", ""))
                to = f" to={quoteattr(frm)}" if frm else ""
                self.send_local(conn, f"<iq type='result' id={quoteattr(el.get('id', ''))}{to}>"
                                      f"{disco_answer(q.get('node'))}</iq>")
            else:
                reply = self._iq_error(el)
                if reply:
                    self.send_local(conn, reply)
        elif name == "message" and self._is_event(el):
            self.note_event(self.local_jids[conn.index - 1], el.get("to", ""))

    def _remote(self, el: ET.Element) -> None:
        name, typ = local_name(el.tag), el.get("type")
        frm, to = el.get("from", ""), el.get("to", "")
        contact = bare(to)
        if name == "presence":
            if typ == "subscribe" and bare(frm) == self.owner_jid:
                self.send_s2s(f"<presence from='{contact}' to='{self.owner_jid}' type='subscribed'/>"
                              f"<presence from='{contact}' to='{self.owner_jid}' type='subscribe'/>")
        elif name == "iq":
            q = el.find(tag(NS_DISCO_INFO, "query"))
            if typ == "get" and q is not None:
                self.caps_queries["remote"] += 1
                self.caps_query_nodes.add(q.get("node", ""))
                self.send_s2s(f"<iq type='result' id={quoteattr(el.get('id', ''))} "
                              f"from={quoteattr(to)} to={quoteattr(frm)}>"
                              f"{disco_answer(q.get('node'))}</iq>")
            else:
                reply = self._iq_error(el, frm=to)
                if reply:
                    self.send_s2s(reply)
        elif name == "message" and self._is_event(el):
            self.note_event(contact, to)

    def note_event(self, contact: str, to: str) -> None:
        self.events_parsed += 1
        self.event_seen.add(contact)
        self.tally[contact] = self.tally.get(contact, 0) + 1
        self.tally_to[to] = self.tally_to.get(to, 0) + 1

    # ------------------------------------------------------------------ phases

    def all_contacts(self) -> list[str]:
        return self.local_jids + self.remote_jids

    def roster_complete(self) -> bool:
        return sum(1 for j in self.all_contacts() if self.roster.get(j) == "both") == \
            self.n_local + self.n_remote

    def roster_summary(self) -> str:
        counts: dict[str, int] = {}
        for j in self.all_contacts():
            s = self.roster.get(j, "(no push)")
            counts[s] = counts.get(s, 0) + 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))

    def missing_events(self) -> list[str]:
        return [j for j in self.all_contacts() if j not in self.event_seen]

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()
        for c in self.conns:
            c.obj.close()
        if self.listener is not None:
            self.listener.close()
        self._wake_r.close()
        self._wake_w.close()


class Timer(threading.Thread):
    """During the measured rounds, all I/O of the owner's and the probe's sessions: it sends
    each publish and the probe's ping when asked, reads their answers and notes when they
    arrived, while the main thread reads the notifications. (A thread of its own, so that an
    answer is timed when it arrives, not when the main thread is done reading 500
    notifications; the sessions' TLS objects are used by this thread only meanwhile.)"""

    def __init__(self, world: PepWorld):
        super().__init__(daemon=True)
        self.world = world
        self.q: queue.Queue = queue.Queue()
        self.sent_at: dict[str, float] = {}
        self.error: Optional[BaseException] = None
        self.stop_flag = False
        self._wake_r, self._wake_w = socket.socketpair()
        self.conns = [c for c in world.conns if c.role in ("owner", "probe")]
        for c in self.conns:
            world.sel.unregister(c.obj.sock)

    def submit(self, iq_id: str, publish: str, ping: str) -> None:
        self.q.put((iq_id, publish, ping))
        self._wake_w.send(b"!")

    def run(self) -> None:
        import select
        by_sock = {c.obj.sock: c for c in self.conns}
        try:
            while not self.stop_flag:
                ready, _, _ = select.select([self._wake_r, *by_sock], [], [], 0.2)
                for sock in ready:
                    if sock is self._wake_r:
                        self._wake_r.recv(4096)
                        while not self.q.empty():
                            iq_id, publish, ping = self.q.get_nowait()
                            self.sent_at[iq_id] = time.monotonic()
                            self.world.send_owner(publish)
                            if not self.world.probe.send(ping):
                                raise RuntimeError(self.world.probe._describe("probe: send"))
                    else:
                        self.world._read(by_sock[sock])
        except BaseException as e:  # noqa: BLE001 (the main thread reports it)
            self.error = e
            self.world.wake_main()

    def close(self) -> None:
        self.stop_flag = True
        self._wake_w.send(b"!")
        self.join(2)
        self._wake_r.close()
        self._wake_w.close()


def owner_roster_get(world: PepWorld, deadline: float) -> dict[str, str]:
    """The owner's roster as the server has it (a roster get, read in the world's loop)."""
    got: dict[str, str] = {}
    done = threading.Event()
    orig = world._owner

    def hook(el: ET.Element) -> None:
        q = el.find(tag(NS_ROSTER, "query"))
        if local_name(el.tag) == "iq" and el.get("id") == "roster-check" and q is not None:
            for item in q.findall(tag(NS_ROSTER, "item")):
                got[item.get("jid", "")] = item.get("subscription", "none")
            done.set()
        else:
            orig(el)

    world._owner = hook
    try:
        world.send_owner(f"<iq type='get' id='roster-check'><query xmlns='{NS_ROSTER}'/></iq>")
        world.pump_until(done.is_set, deadline)
    finally:
        world._owner = orig
    if not done.is_set():
        raise RuntimeError("the owner's roster get was not answered in time")
    return got


# --------------------------------------------------------------------------- one server


def recipients(data: bytes) -> dict[str, int]:
    """Notifications per addressee ('to' as written: a full or a bare JID) in bytes a
    session or stream received: MARK occurrences attributed to the 'to' of the <message>
    they are in."""
    out: dict[str, int] = {}
    for part in data.split(b"<message")[1:]:
        n = part.count(MARK)
        if not n:
            continue
        head = part[:part.find(b">")]
        m = re.search(rb"""\sto=(['"])([^'"]+)\1""", head)
        key = m.group(2).decode() if m else "?"
        out[key] = out.get(key, 0) + n
    return out


def run_server(kind: str, args) -> dict:
    domain = f"{kind}.test"
    C, R = args.contacts, args.remote
    result: dict = {"server": kind, "mode": "pep", "local_contacts": C, "remote_contacts": R,
                    "publishes": args.publishes}
    world = PepWorld(domain, C, R)
    with bench_world(f"pep-{kind}", args) as (ca, fed):
        try:
            t_setup = time.monotonic()
            setup_deadline = t_setup + args.setup_time
            # load.test: its own loopback address, A and SRV records, before the servers start
            load_ip = fed.lease(tcp_ports=(harness.S2S_PORT,))
            fed.add_domain(LOCAL, load_ip)
            load_cert = ca.issue(LOCAL)
            world.listener = LoadTestListener(load_ip, load_cert, ca.cert)
            world.listener.start()

            server = make_pep_server(kind, fed, domain)
            contacts = [f"c{k}" for k in range(1, C + 1)]
            t0 = time.monotonic()
            create_accounts(kind, server, [OWNER, PROBE] + contacts, setup_deadline)
            fed.start()
            if kind == "ejabberd":
                server.register(OWNER)
            pid = server_pid(kind, server)
            result["version"] = version_of(kind, server)
            result["pid_comm"] = Path(f"/proc/{pid}/comm").read_text().strip()
            print(f"  {kind} (pid {pid}, {result['version']}) up; accounts in "
                  f"{time.monotonic() - t0:.1f}s", flush=True)

            # ---- sessions and streams
            t0 = time.monotonic()
            world.owner = login_contact(kind, server, domain, OWNER, "bench")
            world.add(Conn("owner", world.owner))
            # Another account's session, without presence: during each measured publish it
            # pings the server and the answer is timed. (Not a second session of the owner:
            # ejabberd sends PEP notifications by the caps one of the owner's sessions has
            # seen, and may pick a session without presence, which has seen none.)
            world.probe = login_contact(kind, server, domain, PROBE, "probe",
                                        register=kind == "ejabberd", online=False)
            world.add(Conn("probe", world.probe))
            for k, name in enumerate(contacts, 1):
                if time.monotonic() > setup_deadline:
                    raise RuntimeError(f"only {k - 1} of {C} contacts logged in in time")
                c = login_contact(kind, server, domain, name, "r", register=kind == "ejabberd")
                world.add(Conn("local", c, k))
                if k % 50 == 0:
                    world.pump(0)
            world.s2s_in = LoadS2s(server.ip, domain, load_cert.cert, load_cert.key, ca.cert,
                                   timeout=15)
            world.s2s_in.authenticate()
            world.add(Conn("s2s_in", world.s2s_in))
            world.quiet(0.3, 5)
            rss_logged_in = proc_rss_kib(pid)
            print(f"  owner and {C} local contacts logged in, stream from {LOCAL} up in "
                  f"{time.monotonic() - t0:.1f}s", flush=True)

            # ---- roster by protocol
            t0 = time.monotonic()
            targets = world.all_contacts()
            for i in range(0, len(targets), 50):
                world.send_owner("".join(f"<presence to='{j}' type='subscribe'/>"
                                         for j in targets[i:i + 50]))
                world.pump(0.01)
            if not world.pump_until(world.roster_complete, setup_deadline):
                raise RuntimeError(
                    f"roster not complete within {args.setup_time}s: the owner's roster pushes "
                    f"say {world.roster_summary()}; streams from the server to {LOCAL}: "
                    f"{world.s2s_out_count} (listener: {world.listener.errors})\n"
                    + server.log_tail(40))
            roster = owner_roster_get(world, setup_deadline)
            both = sum(1 for j in targets if roster.get(j) == "both")
            if both != C + R:
                raise RuntimeError(f"roster get: {both} of {C + R} items with subscription "
                                   f"'both'")
            result["roster_s"] = round(time.monotonic() - t0, 2)
            print(f"  roster of {C + R} contacts (subscription both) in {result['roster_s']}s",
                  flush=True)

            # ---- caps presence, disco answers, warm-up publishes
            t0 = time.monotonic()
            # One contact first, so that the server knows the ver before the others send it,
            # as for a client version already in use: without this, Prosody asks each
            # local contact for its own features too while the ver is unknown, and every
            # local contact whose answer comes in before the first one is processed has its
            # bare JID added to the owner's notifications (mod_pep's "fiddle with other
            # local users"), a number that varies from run to run.
            first = world.remote_jids[0] if R else None
            if first:
                world.send_s2s(f"<presence from='{first}/r' to='{world.owner_jid}'>{CAPS}"
                               f"</presence>")
            else:
                world.send_local(next(c for c in world.conns if c.role == "local"),
                                 f"<presence>{CAPS}</presence>")
            world.pump_until(lambda: sum(world.caps_queries.values()) > 0,
                             min(setup_deadline, time.monotonic() + 15))
            world.quiet(0.5, 10)
            for conn in world.conns:
                if conn.role == "local" and (first or conn.index > 1):
                    world.send_local(conn, f"<presence>{CAPS}</presence>")
                    if conn.index % 50 == 0:
                        world.pump(0)
            for i in range(1, R, 50):
                world.send_s2s("".join(
                    f"<presence from='{j}/r' to='{world.owner_jid}'>{CAPS}</presence>"
                    for j in world.remote_jids[i:i + 50]))
                world.pump(0.01)
            world.quiet(0.5, 10)
            warm = 0
            seq = 0
            while world.missing_events():
                if time.monotonic() > setup_deadline or warm >= args.max_warmup:
                    miss = world.missing_events()
                    raise RuntimeError(
                        f"after {warm} warm-up publishes, {len(miss)} of {C + R} contact "
                        f"resources got no notification (local: "
                        f"{sum(1 for j in miss if not j.endswith(LOCAL))}, remote: "
                        f"{sum(1 for j in miss if j.endswith(LOCAL))}; e.g. {miss[:5]}); caps "
                        f"queries answered: {world.caps_queries} for nodes "
                        f"{sorted(world.caps_query_nodes)}; available presence at the owner "
                        f"from {len(world.owner_presence)}, with caps from "
                        f"{len(world.owner_caps)}; acks {list(world.acks.values())[-3:]}"
                        + pep_metrics(kind, server) + "\n" + server.log_tail(40))
                seq += 1
                warm += 1
                iq_id, stanza = publish_iq(seq)
                world.send_owner(stanza)
                world.pump_until(lambda: not world.missing_events(),
                                 min(setup_deadline, time.monotonic() + args.retry_every))
                if world.acks.get(iq_id, "result") != "result":
                    raise RuntimeError(f"warm-up publish refused: {world.acks[iq_id]}")
            result["known_s"] = round(time.monotonic() - t0, 2)
            # More warm-up publishes, each of which must reach every resource; what the last
            # one delivered (notifications per contact, and to which address) is the shape
            # every measured publish must have.
            world.quiet(0.5, 10)
            for w in range(args.warmup):
                seq += 1
                world.event_seen.clear()
                world.tally.clear()
                world.tally_to.clear()
                iq_id, stanza = publish_iq(seq)
                world.send_owner(stanza)
                if not world.pump_until(
                        lambda: not world.missing_events() and iq_id in world.acks,
                        min(setup_deadline, time.monotonic() + args.publish_timeout)):
                    miss = world.missing_events()
                    raise RuntimeError(f"warm-up publish {w + 1} (once every resource was "
                                       f"known): no notification for {len(miss)} contacts "
                                       f"(e.g. {miss[:5]}); result: {world.acks.get(iq_id)}"
                                       + pep_metrics(kind, server))
                world.quiet(0.5, 10)
            shape = dict(world.tally)  # contact (bare) -> notifications per publish
            per_publish = sum(shape.values())
            full = sum(v for t, v in world.tally_to.items() if "/" in t)
            result["notifications_per_publish"] = {
                "to_full_jid": full, "to_bare_jid": per_publish - full,
                "local": sum(shape.get(j, 0) for j in world.local_jids),
                "remote": sum(shape.get(j, 0) for j in world.remote_jids)}
            if per_publish != C + R:
                print(f"  note: one publish delivers {per_publish} notification stanzas for "
                      f"{C + R} contact resources: {result['notifications_per_publish']}",
                      flush=True)
            result["caps_queries"] = dict(world.caps_queries)
            result["warmup_publishes"] = warm + args.warmup
            result["streams_from_server"] = world.s2s_out_count
            result["setup_s"] = round(time.monotonic() - t_setup, 2)
            print(f"  caps known: every contact resource notified after {warm} publish(es) "
                  f"({result['known_s']}s after the caps presence; disco#info queries answered: local "
                  f"{world.caps_queries['local']}, remote {world.caps_queries['remote']}; "
                  f"streams from the server to {LOCAL}: {world.s2s_out_count}); "
                  f"{args.warmup} more warm-up publishes", flush=True)
            if world.unexpected:
                print(f"  note: {world.unexpected[:3]}", flush=True)

            # ---- measured rounds
            world.start_counting()
            timer = world.timer = Timer(world)
            timer.start()
            locals_ = [c for c in world.conns if c.role == "local"]
            fan = C + R
            rounds = []
            for r in range(args.rounds):
                outs = [c for c in world.conns if c.role == "s2s_out"]
                for c in locals_ + outs:
                    c.count = 0
                    if c.keep is not None:
                        c.keep = bytearray()
                    c.bytes = 0
                world.acks.clear()
                metrics0 = waddle_pep_notifications(kind, server)
                loadavg = Path("/proc/loadavg").read_text().split()[0]
                rss0 = proc_rss_kib(pid)
                storage0 = thread_cpu(pid, "waddle-storage") if kind == "waddle" else 0.0
                tick0, sched0 = proc_cpu(pid)
                me0 = self_cpu()
                t_round = time.monotonic()
                round_deadline = t_round + args.time_limit
                latencies, acks_ms, pings_ms = [], [], []
                done = 0
                failure = ""
                for i in range(args.publishes):
                    seq += 1
                    iq_id, stanza = publish_iq(seq)
                    want = (done + 1) * per_publish
                    tp = time.monotonic()
                    ping_id = f"ping{seq}"
                    timer.submit(iq_id, stanza, f"<iq type='get' id='{ping_id}' to='{domain}'>"
                                                f"<ping xmlns='{NS_PING}'/></iq>")

                    def finished() -> bool:
                        if timer.error is not None:
                            raise RuntimeError(f"owner or probe session: {timer.error!r}")
                        return iq_id in world.ack_at and ping_id in world.pongs and sum(
                            c.count for c in locals_) + world.s2s_count() >= want

                    ok = world.pump_until(finished, min(round_deadline,
                                                        tp + args.publish_timeout))
                    if world.acks.get(iq_id, "result") != "result":
                        failure = f"publish {i + 1} refused: {world.acks[iq_id][:500]}"
                        break
                    if not ok:
                        got = sum(c.count for c in locals_) + world.s2s_count()
                        failure = (f"publish {i + 1}: {got - done * per_publish} of "
                                   f"{per_publish} notifications "
                                   f"and {'a' if iq_id in world.acks else 'no'} result within "
                                   f"{min(args.publish_timeout, round_deadline - tp):.0f}s")
                        break
                    done += 1
                    t_sent = timer.sent_at[iq_id]
                    latencies.append((world.last_count_at - t_sent) * 1e3)
                    acks_ms.append((world.ack_at[iq_id] - t_sent) * 1e3)
                    pings_ms.append((world.pongs[ping_id] - t_sent) * 1e3)
                t_end = time.monotonic()
                tick1, sched1 = proc_cpu(pid)
                me1 = self_cpu()
                rss1 = proc_rss_kib(pid)
                # Late or duplicate notifications would show in the per-recipient counts; CPU
                # the server spends after the round (deferred writes, timers; for ejabberd
                # also the Erlang schedulers' busy wait) is reported apart, not counted.
                world.quiet(0.3, 3)
                _, sched2 = proc_cpu(pid)
                storage1 = thread_cpu(pid, "waddle-storage") if kind == "waddle" else 0.0
                metrics1 = waddle_pep_notifications(kind, server)
                # Per recipient: a local session's notifications (to its full JID or its
                # bare JID) and a remote contact's (over any stream) must be `done` times
                # what the last warm-up publish delivered to it.
                outs = [c for c in world.conns if c.role == "s2s_out"]  # (and any new one)
                per_local = {c.index: c.count for c in locals_}
                to_local: dict[str, int] = {}
                for c in locals_:
                    for k, v in recipients(bytes(c.keep)).items():
                        to_local[k] = to_local.get(k, 0) + v
                to_remote: dict[str, int] = {}
                for c in outs:
                    for k, v in recipients(bytes(c.keep)).items():
                        to_remote[k] = to_remote.get(k, 0) + v
                per_remote: dict[str, int] = {}
                for k, v in to_remote.items():
                    per_remote[bare(k)] = per_remote.get(bare(k), 0) + v
                bad_local = {world.local_jids[k - 1]: v for k, v in per_local.items()
                             if v != done * shape.get(world.local_jids[k - 1], 1)}
                bad_remote = {j: per_remote.get(j, 0) for j in world.remote_jids
                              if per_remote.get(j, 0) != done * shape.get(j, 1)}
                stray = {j: v for j, v in per_remote.items() if j not in world.remote_jids}
                wall = max(t_end - t_round, 1e-9)
                n = max(done, 1)
                cpu_sched = sched1 - sched0
                rd = {
                    "round": r + 1, "publishes": done, "complete": done == args.publishes
                    and not bad_local and not bad_remote and not stray,
                    "notifications_local": sum(per_local.values()),
                    "notifications_remote": sum(per_remote.values()),
                    "local_to_full_jid": sum(v for k, v in to_local.items() if "/" in k),
                    "remote_to_full_jid": sum(v for k, v in to_remote.items() if "/" in k),
                    "wall_s": round(wall, 3), "publishes_per_s": round(done / wall, 1),
                    "cpu_s_stat": round(tick1 - tick0, 3), "cpu_s_sched": round(cpu_sched, 4),
                    "us_per_publish": round(cpu_sched / n * 1e6, 1),
                    "us_per_publish_stat": round((tick1 - tick0) / n * 1e6, 1),
                    "us_per_notification": round(cpu_sched / (n * fan) * 1e6, 3),
                    "after_round_ms": round((sched2 - sched1) * 1e3, 2),
                    "server_cpu_util": round(cpu_sched / wall, 2),
                    "fanout_ms_median": round(statistics.median(latencies), 2) if latencies else None,
                    "fanout_ms_max": round(max(latencies), 2) if latencies else None,
                    "result_ms_median": round(statistics.median(acks_ms), 2) if acks_ms else None,
                    "ping_ms_median": round(statistics.median(pings_ms), 2) if pings_ms else None,
                    "ping_ms_max": round(max(pings_ms), 2) if pings_ms else None,
                    "loadgen_cpu_s": round(me1 - me0, 3),
                    "s2s_bytes_per_notification": round(sum(c.bytes for c in outs) /
                                                        max(sum(per_remote.values()), 1), 1),
                    "c2s_bytes_per_notification": round(sum(c.bytes for c in locals_) /
                                                        max(sum(per_local.values()), 1), 1),
                    "rss_kib_before": rss0, "rss_kib_after": rss1,
                    "loadavg_before": loadavg,
                }
                if kind == "waddle":  # of which the storage thread (to the settle's end)
                    rd["storage_us_per_publish"] = round((storage1 - storage0) / n * 1e6, 1)
                if metrics1 is not None and metrics0 is not None:
                    rd["waddle_pep_notifications"] = {k: metrics1.get(k, 0) - metrics0.get(k, 0)
                                                      for k in metrics1}
                if failure or bad_local or bad_remote or stray:
                    rd["failure"] = failure
                    rd["bad_local"] = dict(list(bad_local.items())[:10])
                    rd["bad_local_count"] = len(bad_local)
                    rd["bad_remote"] = dict(list(bad_remote.items())[:10])
                    rd["bad_remote_count"] = len(bad_remote)
                    rd["stray_remote"] = dict(list(stray.items())[:10])
                rounds.append(rd)
                print(f"  {kind} round {r + 1}: {done}/{args.publishes} publishes x {fan} "
                      f"notifications ({rd['notifications_local']} local + "
                      f"{rd['notifications_remote']} over S2S) in {wall:.2f}s; server CPU "
                      f"{rd['us_per_publish']:.0f} µs/publish = {rd['us_per_notification']:.2f} "
                      f"µs/notification (schedstat; stat {rd['us_per_publish_stat']:.0f} µs), "
                      f"util {rd['server_cpu_util']:.2f}; fan-out median "
                      f"{rd['fanout_ms_median']} ms, max {rd['fanout_ms_max']} ms (result "
                      f"{rd['result_ms_median']} ms; ping from another account "
                      f"{rd['ping_ms_median']} ms, max {rd['ping_ms_max']} ms); load generator CPU "
                      f"{rd['loadgen_cpu_s']:.2f}s; server CPU in the 0.3 s after the round "
                      f"{rd['after_round_ms']} ms; RSS {rss0} -> {rss1} KiB", flush=True)
                if not rd["complete"]:
                    print(f"  INCOMPLETE: {failure}; local sessions with a wrong count "
                          f"{len(bad_local)} {rd['bad_local']}; remote recipients with a "
                          f"wrong count {len(bad_remote)} {rd['bad_remote']}; stray "
                          f"{rd['stray_remote']}", flush=True)
                    rd["log_tail"] = server.log_tail(30)
                    break
            result["rounds"] = rounds
            good = [x for x in rounds if x["complete"]] or rounds
            for key in ("us_per_publish", "us_per_publish_stat", "us_per_notification",
                        "wall_s", "publishes_per_s", "server_cpu_util", "fanout_ms_median",
                        "fanout_ms_max", "result_ms_median", "ping_ms_median", "ping_ms_max",
                        "loadgen_cpu_s",
                        "s2s_bytes_per_notification", "c2s_bytes_per_notification",
                        "after_round_ms", "storage_us_per_publish"):
                vals = [x[key] for x in good if x.get(key) is not None]
                result[key] = round(statistics.median(vals), 3) if vals else None
            result["complete"] = bool(rounds) and all(x["complete"] for x in rounds)
            # other work on the machine shows here (the 1-minute load average)
            result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
            result["rss_kib_logged_in"] = rss_logged_in
            result["rss_kib_before"] = rounds[0]["rss_kib_before"]
            result["rss_kib_after"] = rounds[-1]["rss_kib_after"]
            if world.listener.errors:
                result["listener_errors"] = world.listener.errors[:5]
            if world.unexpected:
                result["notes"] = world.unexpected[:10]
            return result
        finally:
            world.close()


def waddle_pep_notifications(kind: str, server) -> Optional[dict]:
    """waddle_pep_notifications_total by its labels (docs/metrics.md), Waddle only; read
    outside the measured window."""
    if kind != "waddle":
        return None
    try:
        text = server.metrics_text()
    except Exception:  # noqa: BLE001 (a cross-check only)
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("waddle_pep_notifications_total"):
            name, _, value = line.rpartition(" ")
            label = name[len("waddle_pep_notifications_total"):] or "total"
            out[label] = float(value)
    return out


def pep_metrics(kind: str, server) -> str:
    if kind != "waddle":
        return ""
    try:
        text = server.metrics_text()
    except Exception as e:  # noqa: BLE001
        return f"; metrics unreadable: {e}"
    keep = [line for line in text.splitlines()
            if line.startswith(("waddle_pep_", "waddle_caps_"))]
    return "\nwaddle metrics:\n" + "\n".join(keep[:40])


# --------------------------------------------------------------------------- report


def table(results: list[dict]) -> str:
    ok = {r["server"]: r for r in results if "error" not in r}
    base = ok.get("waddle")
    lines = [f"{'server':<10} {'version':<22} {'C+R':>9} {'µs CPU/publish':>15} "
             f"{'µs/notification':>16} {'× Waddle':>9} {'fan-out ms':>11} {'ping ms':>8} "
             f"{'RSS after':>10}  note"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['server']:<10} FAILED: {r['error'].splitlines()[0][:110]}")
            continue
        ratio = (f"{r['us_per_publish'] / base['us_per_publish']:.1f}"
                 if base and base.get("us_per_publish") else "-")
        lines.append(
            f"{r['server']:<10} {r.get('version', '')[:22]:<22} "
            f"{r['local_contacts']:>4}+{r['remote_contacts']:<4} {r['us_per_publish']:>15.0f} "
            f"{r['us_per_notification']:>16.2f} {ratio:>9} {r['fanout_ms_median']:>11.1f} "
            f"{r['ping_ms_median']:>8.1f} {r['rss_kib_after'] / 1024:>6.1f} MiB  {'' if r['complete'] else 'INCOMPLETE'}")
    for other in ("prosody", "ejabberd"):
        if base and other in ok and ok[other].get("us_per_publish"):
            lines.append(f"Waddle/{other.capitalize()} CPU per publish: "
                         f"{base['us_per_publish'] / ok[other]['us_per_publish']:.3f} "
                         f"({ok[other]['us_per_publish'] / base['us_per_publish']:.1f}x less)")
    lines.append("(median of rounds; server CPU from /proc/PID/task/*/schedstat, per publish "
                 "and per contact resource notified; fan-out: publish sent -> last notification "
                 "read, one publish at a time; ping: another account's session pings the server "
                 "right after each publish, sent -> answer read)")
    return "\n".join(lines)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    return f"{os.cpu_count()} cores ({model}), Debian {debian}, kernel {os.uname().release}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("servers", nargs="+", choices=("waddle", "prosody", "ejabberd"))
    ap.add_argument("--contacts", type=int, default=250, help="local contacts (default 250)")
    ap.add_argument("--remote", type=int, default=250,
                    help=f"contacts on {LOCAL}, played by the tool (default 250)")
    ap.add_argument("--publishes", "-n", type=int, default=100,
                    help="publishes per measured round (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="unmeasured publishes once every resource is known (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="CI form: 20 local + 20 remote contacts, 20 publishes, 2 rounds")
    ap.add_argument("--setup-time", type=float, default=300.0,
                    help="seconds for accounts, logins, roster and caps (default 300)")
    ap.add_argument("--retry-every", type=float, default=3.0,
                    help="while not every resource is known: seconds between warm-up "
                         "publishes (default 3)")
    ap.add_argument("--max-warmup", type=int, default=30,
                    help="warm-up publishes at most before giving up (default 30)")
    ap.add_argument("--publish-timeout", type=float, default=30.0,
                    help="seconds for one publish's notifications (default 30)")
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="seconds per measured round (default 300)")
    ap.add_argument("--json", type=Path, help="append one JSON object per server here")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args()
    # SIGTERM (run_comparison.sh's timeout) ends the run through the finally blocks, which
    # stop the servers started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.warmup = max(args.warmup, 1)  # the last warm-up publish gives the expected shape
    if args.quick:
        args.contacts, args.remote, args.publishes, args.rounds = 20, 20, 20, 2
        args.warmup = 2
    if os.geteuid() != 0:
        print("needs root (the harness uses unshare/mount and runuser)", file=sys.stderr)
        return 2
    if not (0 <= args.contacts <= 900 and 0 <= args.remote <= 5000
            and 0 < args.contacts + args.remote and 0 < args.publishes <= 100_000
            and 0 < args.rounds <= 20 and 0 <= args.warmup <= 1000
            and 0 < args.setup_time <= 1800 and 0 < args.time_limit <= 1800
            and 0 < args.publish_timeout <= 300 and 0 < args.max_warmup <= 1000
            and 0 < args.retry_every <= 60):
        print("bounds: contacts 0..900, remote 0..5000 (not both 0), publishes 1..1e5, rounds "
              "1..20, warmup 0..1000, setup-time and time-limit up to 1800 s, publish-timeout "
              "up to 300 s", file=sys.stderr)
        return 2
    print(f"== PEP fan-out: {args.contacts} local + {args.remote} remote contacts, "
          f"{args.rounds} x {args.publishes} publishes; {machine()}", flush=True)
    rc = 0
    results = []
    for kind in args.servers:
        print(f"== {kind}", flush=True)
        try:
            res = run_server(kind, args)
        except Exception as e:  # noqa: BLE001 (report and go on with the next server)
            print(f"  {kind} FAILED: {e}", file=sys.stderr, flush=True)
            res = {"server": kind, "mode": "pep", "error": str(e)[:6000]}
            rc = 1
        if "error" not in res and not res.get("complete"):
            rc = 1
        res["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        res["nproc"] = os.cpu_count()
        res["machine"] = machine()
        results.append(res)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(res) + "\n")
    print()
    print(table(results))
    return rc


if __name__ == "__main__":
    sys.exit(main())
