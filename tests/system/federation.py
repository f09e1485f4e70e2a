"""Waddle-to-Waddle federation on one machine, for tests/system/test_federation.py.

- `Federation`: servers for test domains (a.test, b.test, ...) on their own loopback
  addresses, each with [s2s] on (and allow_internal_addresses, since every peer is on a
  loopback address) and its resolver pointed at one dnsmasq that holds the test's records
  (SRV and/or A per domain), certificates from a private CA (or self-signed).
  Create the servers, add records, then `start()` (dnsmasq first, then every server).
- `RawS2s`: a raw server-to-server stream that authenticates as a domain with a client
  certificate (STARTTLS, SASL EXTERNAL, stream restart), for sending what no honest server
  sends (spoofed 'from', floods).
- `wait_metric` / `await_metric` / `metric_sum`: wait (with a deadline) on, or read, a
  server's /metrics counters, summed over the series whose labels match.
- `await_operator_log`: wait for a server log line, only for lines an operator reads.

Addresses are leased like the servers' (waddle_server.lease_address); processes are stopped
by their PID only.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union
from xml.sax.saxutils import escape, quoteattr

from rawxmpp import NS_SASL, NS_TLS, RawXmpp, stream_header, tag
from s2s_env import DNS_PORT, Dnsmasq, PrivateCA, self_signed
from waddle_client import PASSWORD
from waddle_server import S2S_PORT, WaddleServer, deep_merge, lease_address

NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"
WAIT_TIMEOUT = 10.0

# Retries fast enough for a test: 100 ms, 200 ms, 400 ms.
FAST_RETRY = {"max_retries": 3, "initial_delay": "100ms", "max_delay": "30s",
              "backoff_multiplier": 2.0}


# --------------------------------------------------------------------------- certificates


@dataclass
class Pki:
    """The private CA with one certificate per domain, and self-signed certificates."""
    ca: PrivateCA
    dir: Path
    issued: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    self_signed: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    server_auth: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    def cert(self, domain: str, kind: str = "ca") -> tuple[Path, Path]:
        """kind: "ca" (issued by the CA for TLS server and client authentication), "server-auth"
        (issued by the CA for TLS server authentication only, as public CAs issue them) or
        "self" (self-signed)."""
        if kind == "ca":
            if domain not in self.issued:
                self.issued[domain] = self.ca.issue(domain)
            return self.issued[domain]
        if kind == "server-auth":
            if domain not in self.server_auth:
                self.server_auth[domain] = self.ca.issue(domain, extended_key_usage="serverAuth")
            return self.server_auth[domain]
        if kind == "self":
            if domain not in self.self_signed:
                self.self_signed[domain] = self_signed(self.dir, domain)
            return self.self_signed[domain]
        raise ValueError(f"certificate kind {kind!r}: expected 'ca', 'server-auth' or 'self'")


# --------------------------------------------------------------------------- metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

LabelValue = Union[str, tuple[str, ...]]


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` in a Prometheus text exposition: (labels, value)."""
    samples = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            labels = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _LABEL.findall(m.group(2) or "")}
            samples.append((labels, float(m.group(3))))
    return samples


def _matches(labels: dict[str, str], want: dict[str, LabelValue]) -> bool:
    for key, value in want.items():
        accepted = value if isinstance(value, tuple) else (value,)
        if labels.get(key) not in accepted:
            return False
    return True


def metric_sum(text_or_srv: Union[str, WaddleServer], name: str, **labels: LabelValue) -> float:
    """Sum of the samples of `name` whose labels have the given values (a tuple accepts any
    of its values); 0 when there is none. Reads the server's /metrics, or a text read before."""
    text = text_or_srv if isinstance(text_or_srv, str) else text_or_srv.metrics_text()
    return sum(v for lab, v in metric_samples(text, name) if _matches(lab, labels))


def _metric_failure(srv: WaddleServer, name: str, labels: dict, at_least: float, got: float,
                    timeout: float, what: str) -> AssertionError:
    text = srv.metrics_text()
    lines = "\n".join(line for line in text.splitlines() if line.startswith(name))
    return AssertionError(
        (f"{what}: " if what else "") +
        f"{srv.domain} ({srv.ip}): {name}{labels} is {got:g}, not >= {at_least:g} within"
        f" {timeout}s; its series:\n{lines or '(none)'}\n{srv.log_tail(60)}")


def wait_metric(srv: WaddleServer, name: str, at_least: float = 1, timeout: float = WAIT_TIMEOUT,
                what: str = "", **labels: LabelValue) -> float:
    """Waits (bounded) until metric_sum(srv, name, **labels) >= at_least; returns it.
    `what` explains the expectation in the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        got = metric_sum(srv, name, **labels)
        if got >= at_least:
            return got
        if time.monotonic() >= deadline:
            raise _metric_failure(srv, name, labels, at_least, got, timeout, what)
        time.sleep(0.05)  # polling /metrics under the deadline above


async def await_metric(srv: WaddleServer, name: str, at_least: float = 1,
                       timeout: float = WAIT_TIMEOUT, what: str = "",
                       **labels: LabelValue) -> float:
    """wait_metric for async test bodies (clients keep running meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await asyncio.to_thread(metric_sum, srv, name, **labels)
        if got >= at_least:
            return got
        if loop.time() >= deadline:
            raise _metric_failure(srv, name, labels, at_least, got, timeout, what)
        await asyncio.sleep(0.05)  # polling /metrics under the deadline above


# Series of the S2S metrics (docs/metrics.md) the tests wait on.
AUTHENTICATED = "waddle_s2s_authenticated_total"  # {domain, direction, method}
DIALBACK_VERIFY = "waddle_s2s_dialback_verify_total"  # {domain, result}
STREAMS_CLOSED = "waddle_s2s_streams_closed_total"  # {domain, direction, reason}
ERRORS = "waddle_s2s_errors_total"  # {domain, kind}
PACED = "waddle_s2s_paced_total"  # {domain}
PACED_SECONDS = "waddle_s2s_paced_seconds_total"  # {domain}
DIALBACK_METHODS = ("dialback", "dialback_multiplexed")


# --------------------------------------------------------------------------- logs
# Only for lines an operator reads (each use says why); everything else waits on behaviour
# or on /metrics, so that log wording can change freely.


def _log_failure(srv: WaddleServer, pattern: str, timeout: float, since: int, found: int,
                 count: int, what: str) -> AssertionError:
    return AssertionError(
        (f"{what}: " if what else "") +
        f"{srv.domain} ({srv.ip}): {found} of {count} log line(s) matching {pattern!r}"
        f" within {timeout}s (log from byte {since}):\n{srv.log_tail(80)}")


async def await_operator_log(srv: WaddleServer, pattern: str, timeout: float = WAIT_TIMEOUT,
                             since: int = 0, count: int = 1, what: str = "") -> list[re.Match]:
    """Waits (bounded) until the log from byte `since` has `count` lines matching pattern."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        matches = list(re.finditer(pattern, srv.log_since(since)))
        if len(matches) >= count:
            return matches
        if loop.time() >= deadline:
            raise _log_failure(srv, pattern, timeout, since, len(matches), count, what)
        await asyncio.sleep(0.05)  # polling a file under the deadline above


# --------------------------------------------------------------------------- federation


class Federation:
    def __init__(self, make_server, tmp_path: Path, pki: Pki, request):
        self._make_server = make_server
        self.dir = Path(tmp_path)
        self.pki = pki
        self._leases = []
        dns_lease = lease_address(ports=(DNS_PORT,))
        self._leases.append(dns_lease)
        self.dns = Dnsmasq(self.dir / "dns", dns_lease.ip)
        extra = getattr(request.node, "_extra_logs", [])
        extra.append(("dnsmasq log", self.dns.log_path))
        request.node._extra_logs = extra
        self.servers: dict[str, WaddleServer] = {}

    def server(self, domain: str, *, dns: Optional[str] = "a", cert: str = "ca",
               s2s: Optional[dict] = None, overrides: Optional[dict] = None,
               users: tuple[str, ...] = ()) -> WaddleServer:
        """A (not yet started) Waddle serving `domain`.

        dns: "a" (A record for the domain), "srv" (SRV _xmpp-server._tcp.DOMAIN ->
        xmpp.DOMAIN:5269 and an A record for xmpp.DOMAIN only, so only SRV finds it) or None
        (the test adds records itself). cert: "ca" (issued by the private CA, which every
        server trusts), "server-auth" (the same, for TLS server authentication only) or "self"
        (self-signed). users: local parts of accounts to create.
        """
        cert_key = self.pki.cert(domain, cert)
        config = {
            "server": {"domains": [domain]},
            "tls": {"ca_file": str(self.pki.ca.cert)},
            # Every test server is on a loopback address: federating with it needs the switch.
            "s2s": deep_merge({"enabled": True, "port": S2S_PORT,
                               "allow_internal_addresses": True}, s2s or {}),
            "dns": {"nameservers": [self.dns.nameserver]},
        }
        srv = self._make_server(deep_merge(config, overrides or {}), start=False,
                                cert=cert_key)
        if dns == "srv":
            self.dns.a(f"xmpp.{domain}", srv.ip)
            self.dns.srv("_xmpp-server._tcp", domain, f"xmpp.{domain}", S2S_PORT)
            self.dns.srv("_xmpp-server._tcp", f"conference.{domain}", f"xmpp.{domain}", S2S_PORT)
        elif dns == "a":
            self.dns.a(domain, srv.ip)
            self.dns.a(f"conference.{domain}", srv.ip)  # the room service
        elif dns is not None:
            raise ValueError(f"dns={dns!r}: expected 'a', 'srv' or None")
        for user in users:
            srv.adduser(f"{user}@{domain}", PASSWORD)
        self.servers[domain] = srv
        return srv

    def unused_address(self) -> str:
        """A leased loopback address on which nothing listens on the S2S port."""
        lease = lease_address(ports=(S2S_PORT,))
        self._leases.append(lease)
        return lease.ip

    def start(self) -> None:
        self.dns.start()
        for srv in self.servers.values():
            srv.start()

    def close(self) -> None:
        try:
            self.dns.stop()
        finally:
            for lease in self._leases:
                lease.release()
            self._leases.clear()


class Trap:
    """A listening socket where no server should connect; `connections()` tells whether one
    did (accepts without waiting)."""

    def __init__(self, ip: str, port: int = S2S_PORT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return len(self.accepted)
            self.accepted.append(conn)

    def close(self) -> None:
        for c in self.accepted:
            c.close()
        self.sock.close()


# --------------------------------------------------------------------------- raw S2S


def message_xml(frm: str, to: str, body: str, mid: str = "", mtype: str = "chat") -> str:
    id_attr = f" id={quoteattr(mid)}" if mid else ""
    return (f"<message from={quoteattr(frm)} to={quoteattr(to)} type={quoteattr(mtype)}"
            f"{id_attr}><body>{escape(body)}</body></message>")


class RawS2s(RawXmpp):
    """A raw S2S stream from `local` to `remote` (the server at ip:port), authenticated with
    a client certificate for `local` over STARTTLS and SASL EXTERNAL. The receiving server's
    certificate is verified against the CA."""

    def __init__(self, ip: str, local: str, remote: str, cert: Path, key: Path, ca_file: Path,
                 port: int = S2S_PORT, timeout: float = 10.0, direct_tls: bool = False):
        self.local = local
        self._cert, self._key, self._ca = cert, key, ca_file
        super().__init__(ip, port, domain=remote, timeout=timeout, direct_tls=direct_tls)

    def header(self) -> str:
        return stream_header(to=self.domain, ns=NS_SERVER,
                             extra=f" from='{self.local}' xmlns:db='{NS_DIALBACK}'")

    def _wrap_tls(self) -> None:
        ctx = ssl.create_default_context(cafile=str(self._ca))
        ctx.load_cert_chain(str(self._cert), str(self._key))
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True
        self.peer_cert_der = self.sock.getpeercert(binary_form=True)

    def authenticate(self) -> None:
        """STARTTLS, SASL EXTERNAL (authzid = local domain), stream restart."""
        features = self.open_stream(self.header())
        assert features.find(tag(NS_TLS, "starttls")) is not None, self._describe(
            "no STARTTLS offered")
        self.starttls()
        features = self.open_stream(self.header())
        mechs = [m.text for m in features.iter(tag(NS_SASL, "mechanism"))]
        assert "EXTERNAL" in mechs, self._describe(
            f"SASL EXTERNAL not offered to {self.local} with a valid certificate: {mechs}")
        authzid = base64.b64encode(self.local.encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
        answer = self.next_element()
        assert answer.tag == tag(NS_SASL, "success"), self._describe("SASL EXTERNAL refused")
        self.open_stream(self.header())
        assert self.stream_attrs.get("from") in (None, self.domain), self._describe(
            "stream header from the wrong domain")
