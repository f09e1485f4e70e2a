"""Interop harness: real Prosody and ejabberd (Debian packages) federating on loopback
addresses, with a private CA and a real DNS server (dnsmasq).

Everything here follows ../../../shared/docs/testing-network.md:

- every server gets its own address in 127.0.0.0/8 (leased from 127.0.0.100-199 through
  lock files shared with the Waddle system tests, so concurrent runs do not collide);
- DNS for the test domains comes from a dnsmasq on port 53 of its own loopback address;
  Prosody and ejabberd read /etc/resolv.conf, so each runs in its own mount namespace
  (``unshare -m``) in which a private resolv.conf is bind-mounted over /etc/resolv.conf;
- processes are stopped by the PID (or process group) this module started, never by name;
- every wait has a deadline, and failures carry the tail of the relevant log.

Building blocks (each documented below):

- ``PrivateCA(dir)``: CA + per-domain certificates, and untrusted self-signed ones.
- ``Dnsmasq(dir, ip)``: A and SRV records, NXDOMAIN for anything else in the test zone.
- ``Prosody(dir, domain, ip, dns_ip, ca, mode)`` and ``Ejabberd(...)``: a peer server in
  mode ``"cert"`` (certificates only, SASL EXTERNAL) or ``"dialback"`` (dialback over TLS
  with untrusted self-signed certificates).
- ``XmppClient`` / ``login()`` / ``run_async()``: slixmpp clients with deadline-based waits.
- ``Federation(dir, ca)``: one test's world (dnsmasq + servers + leases), torn down by
  ``close()``; conftest.py wraps it as the ``federation`` fixture. A Waddle instance joins
  with ``fed.waddle(domain, mode, users=[...])`` (or by hand: ``ip = fed.lease()``,
  ``fed.add_domain("waddle.test", ip)``, ``[dns]`` pointed at ``fed.dns_ip`` port 53);
  ``fed.discard(server)`` stops one server and frees its address.
- ``Waddle(dir, domain, ip, dns_ip, ca, mode)``: the server under test (build/waddle or
  $WADDLE_BIN) configured like the peers for "cert" or "dialback" mode.
- ``lease_address()``, ``lease_port()``: exclusive loopback addresses and ports.

Traps found while building this (details at the places they are handled):

- libunbound (Prosody's resolver) answers NXDOMAIN for every ``*.test`` name without asking
  anyone; Prosody's config needs ``unbound = { options = { ["local-zone:"] =
  "test. transparent" } }`` (the trailing colon is part of the option name).
- ejabberd 23.01 crashes the inbound s2s stream during SASL EXTERNAL if the peer's
  certificate carries an XmppAddr otherName, so CA certificates have DNS names only unless
  asked otherwise (``PrivateCA.issue(domain, xmpp_addr=True)``).
- ejabberd refuses root and cannot enter pytest's 0700 tmp directories: the run directory is
  a 0755 directory under /tmp and each instance directory belongs to the ejabberd user.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

log = logging.getLogger("waddle.interop")

DNSMASQ = "/usr/sbin/dnsmasq"
PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"
EJABBERDCTL = "/usr/sbin/ejabberdctl"
EJABBERD_USER = "ejabberd"

C2S_PORT = 5222
S2S_PORT = 5269
DNS_PORT = 53

# Loopback addresses for interop tests (the Waddle system tests lease 40-200 through the
# same lock directory, so an address held here is skipped there and vice versa).
ADDRESS_RANGE = range(100, 200)
LOCK_DIR = Path("/tmp/waddle-systest-locks")
# Erlang distribution ports for ejabberd instances (bound to 127.0.0.1 only).
ERL_DIST_PORTS = range(42100, 42200)

PASSWORD = "interop secret 42"

MODES = ("cert", "dialback")


# --------------------------------------------------------------------------- small helpers


class HarnessError(RuntimeError):
    """A server or tool of the harness failed; the message carries the log tail."""


def _run(args: list[str], *, cwd: Optional[Path] = None, timeout: float = 60,
         env: Optional[dict] = None, check: bool = True) -> subprocess.CompletedProcess:
    """Runs a command with a deadline; on failure raises with its output."""
    try:
        cp = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"{args} did not finish within {timeout}s: {e.stdout} {e.stderr}")
    if check and cp.returncode != 0:
        raise HarnessError(f"{args} exited {cp.returncode}:\n{cp.stdout}\n{cp.stderr}")
    return cp


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a text file ('' if it does not exist)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def tcp_open(ip: str, port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ip:port."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05, on_fail: Callable[[], str] = lambda: "") -> None:
    """Polls pred() until it is true; raises HarnessError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() >= deadline:
            raise HarnessError(f"{what}: not within {timeout}s\n{on_fail()}")
        time.sleep(interval)


def _port_free(ip: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


@dataclass
class Lease:
    """An exclusively held resource (flock on a file in LOCK_DIR); release() frees it."""
    value: Any
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


def _try_lock(name: str) -> int:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / name, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return -1
    return fd


def lease_address(tcp_ports: Iterable[int] = (C2S_PORT, S2S_PORT),
                  udp_ports: Iterable[int] = ()) -> Lease:
    """An address in 127.0.0.100-199 that nobody else holds and whose ports are free.
    One bounded pass over the range from a random start."""
    tcp_ports, udp_ports = tuple(tcp_ports), tuple(udp_ports)
    candidates = list(ADDRESS_RANGE)
    start = random.randrange(len(candidates))
    for n in candidates[start:] + candidates[:start]:
        ip = f"127.0.0.{n}"
        fd = _try_lock(f"{ip}.lock")
        if fd < 0:
            continue
        if (all(_port_free(ip, p) for p in tcp_ports)
                and all(_port_free(ip, p, socket.SOCK_DGRAM) for p in udp_ports)):
            return Lease(ip, fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise HarnessError(f"no free address in 127.0.0.{ADDRESS_RANGE.start}-"
                       f"{ADDRESS_RANGE.stop - 1} with TCP {tcp_ports} UDP {udp_ports} free")


def lease_port(ip: str = "127.0.0.1", ports: range = ERL_DIST_PORTS) -> Lease:
    """A free TCP port on ip from `ports`, held exclusively (one bounded pass)."""
    candidates = list(ports)
    start = random.randrange(len(candidates))
    for port in candidates[start:] + candidates[:start]:
        fd = _try_lock(f"port-{ip}-{port}.lock")
        if fd < 0:
            continue
        if _port_free(ip, port):
            return Lease(port, fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise HarnessError(f"no free port on {ip} in {ports.start}-{ports.stop - 1}")


def make_run_root(prefix: str = "waddle-interop-") -> Path:
    """A fresh directory under /tmp that the ejabberd user can traverse (mode 0755; pytest's
    own tmp_path lives under a 0700 directory, which ejabberd could not enter)."""
    import tempfile
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    return root


def _stop_process(proc: Optional[subprocess.Popen], *, group: bool, timeout: float = 10,
                  sig: int = signal.SIGTERM) -> None:
    """Stops a process this module started: `sig`, then SIGKILL after `timeout`. With
    group=True the whole process group it leads (start_new_session=True) is signalled; that
    group contains only what that process started."""
    if proc is None:
        return

    def send(s: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, s)
            else:
                proc.send_signal(s)
        except ProcessLookupError:
            pass

    if proc.poll() is None:
        send(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait(5)
    if group:
        # Children that outlived the leader (e.g. beam.smp under ejabberdctl's shell).
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        send(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        send(signal.SIGKILL)


def in_private_resolv(resolv_conf: Path, argv: list[str]) -> list[str]:
    """argv run in a new mount namespace where `resolv_conf` is /etc/resolv.conf (the host's
    file is untouched; util-linux unshare makes the namespace's mounts private)."""
    quoted = " ".join(_shquote(a) for a in argv)
    return ["unshare", "-m", "sh", "-c",
            f"mount --bind {_shquote(str(resolv_conf))} /etc/resolv.conf && exec {quoted}"]


def _shquote(s: str) -> str:
    return shlex.quote(s)


# --------------------------------------------------------------------------- certificates


@dataclass
class CertPair:
    cert: Path
    key: Path
    domain: str
    trusted: bool  # issued by the PrivateCA (True) or self-signed (False)

    def combined(self, path: Path) -> Path:
        """cert + key in one PEM file (what ejabberd's certfiles likes best)."""
        path.write_text(self.cert.read_text() + self.key.read_text())
        return path


class PrivateCA:
    """A private CA made with the openssl CLI in `directory`.

    - ``issue(domain)``: a certificate signed by the CA with subjectAltName DNS:domain and
      DNS:*.domain (covers the room subdomain), serverAuth+clientAuth so it serves for both
      s2s directions; ``issue(domain, xmpp_addr=True)`` adds an XmppAddr otherName
      (RFC 6120 13.7.1.4) -- see issue() for why that is not the default.
    - ``self_signed(domain)``: a self-signed certificate with the same names, not trusted by
      anybody: for dialback-with-untrusted-certificate tests.
    - ``cert``: the CA certificate file to configure as trusted.
    Results are cached per domain, so asking twice costs nothing.
    """

    def __init__(self, directory: Path, key_type: str = "ec"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.key_type = key_type
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        self._issued: dict[tuple[str, str], CertPair] = {}
        if not self.cert.exists():
            _run(["openssl", "req", "-x509", *self._newkey(), "-nodes",
                  "-keyout", str(self.key), "-out", str(self.cert), "-days", "30",
                  "-subj", "/O=Waddle interop/CN=Waddle Interop Test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], cwd=self.dir)
        self.cert.chmod(0o644)

    def _newkey(self) -> list[str]:
        if self.key_type == "rsa":
            return ["-newkey", "rsa:2048"]
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]

    @staticmethod
    def _names(domain: str, extra: Iterable[str], xmpp_addr: bool) -> str:
        names = [f"DNS:{domain}", f"DNS:*.{domain}"] + [f"DNS:{n}" for n in extra]
        if xmpp_addr:
            names.append(f"otherName:1.3.6.1.5.5.7.8.5;UTF8:{domain}")
        return ",".join(names)

    def issue(self, domain: str, extra_names: Iterable[str] = (),
              xmpp_addr: bool = False) -> CertPair:
        """Certificate and key for `domain`, signed by this CA.

        xmpp_addr=True adds an XmppAddr otherName. Off by default: ejabberd 23.01 (Debian's
        erlang-xmpp) crashes the inbound s2s stream on SASL EXTERNAL when the peer's
        certificate has one (badarg in xmpp_stream_pkix:get_cert_domains/1), so the
        connection just closes."""
        tag = "xmppaddr" if xmpp_addr else "dns"
        if (domain, tag) in self._issued:
            return self._issued[(domain, tag)]
        stem = f"{domain}.xmppaddr" if xmpp_addr else domain
        cert, key = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        csr, ext = self.dir / f"{stem}.csr", self.dir / f"{stem}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={self._names(domain, extra_names, xmpp_addr)}\n")
        _run(["openssl", "req", *self._newkey(), "-nodes", "-keyout", str(key),
              "-out", str(csr), "-subj", f"/CN={domain}"], cwd=self.dir)
        _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert),
              "-CAkey", str(self.key), "-CAcreateserial", "-out", str(cert), "-days", "30",
              "-extfile", str(ext)], cwd=self.dir)
        pair = CertPair(cert, key, domain, trusted=True)
        self._issued[(domain, tag)] = pair
        return pair

    def self_signed(self, domain: str, extra_names: Iterable[str] = ()) -> CertPair:
        """A self-signed certificate for `domain` (valid names, untrusted issuer)."""
        if (domain, "self") in self._issued:
            return self._issued[(domain, "self")]
        sub = self.dir / "self-signed"
        sub.mkdir(exist_ok=True)
        sub.chmod(0o755)
        cert, key = sub / f"{domain}.crt", sub / f"{domain}.key"
        _run(["openssl", "req", "-x509", *self._newkey(), "-nodes", "-keyout", str(key),
              "-out", str(cert), "-days", "30", "-subj", f"/CN={domain}",
              "-addext", f"subjectAltName={self._names(domain, extra_names, False)}",
              "-addext", "extendedKeyUsage=serverAuth,clientAuth"], cwd=sub)
        pair = CertPair(cert, key, domain, trusted=False)
        self._issued[(domain, "self")] = pair
        return pair

    def for_mode(self, domain: str, mode: str) -> CertPair:
        """The certificate a server in `mode` uses: CA-issued for "cert", self-signed for
        "dialback"."""
        _check_mode(mode)
        return self.issue(domain) if mode == "cert" else self.self_signed(domain)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


# --------------------------------------------------------------------------- DNS


def dns_query(server: str, name: str, qtype: str = "A", port: int = DNS_PORT,
              timeout: float = 1.0) -> tuple[int, list[Any]]:
    """One UDP DNS query: (rcode, answers). Answers are IPv4 strings for A and
    (priority, weight, port, target) tuples for SRV. For checks in tests."""
    types = {"A": 1, "SRV": 33}
    qid = random.randrange(1 << 16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", types[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid:
        raise HarnessError("DNS answer with the wrong id")
    rcode = flags & 0xF

    def skip_name(off: int) -> int:
        while True:
            ln = data[off]
            if ln == 0:
                return off + 1
            if ln & 0xC0 == 0xC0:
                return off + 2
            off += ln + 1

    def read_name(off: int) -> str:
        labels = []
        for _ in range(128):
            ln = data[off]
            if ln == 0:
                break
            if ln & 0xC0 == 0xC0:
                off = ((ln & 0x3F) << 8) | data[off + 1]
                continue
            labels.append(data[off + 1:off + 1 + ln].decode())
            off += ln + 1
        return ".".join(labels)

    off = 12
    for _ in range(qd):
        off = skip_name(off) + 4
    answers: list[Any] = []
    for _ in range(an):
        off = skip_name(off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        rdata = data[off:off + rdlen]
        if rtype == 1:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == 33:
            prio, weight, port_ = struct.unpack(">HHH", rdata[:6])
            answers.append((prio, weight, port_, read_name(off + 6)))
        off += rdlen
    return rcode, answers


class Dnsmasq:
    """A dnsmasq serving only the records it is given, on port 53 of a loopback address.

    - ``add_a(name, ip)``: A record (``address=/name/ip``; dnsmasq's address= also matches
      subdomains, which is what a room subdomain wants).
    - ``add_srv(domain, target, port, prio=0, weight=5, service="_xmpp-server._tcp")``.
    - ``start()`` / ``stop()`` / ``restart()``. dnsmasq re-reads only hosts files on SIGHUP,
      so records added while it runs take effect with ``reload()``, which restarts it.
    - ``local=/ZONE/`` for each zone in `zones` (default "test"): names in the test zone
      that have no record are answered NXDOMAIN at once, never forwarded (and ``no-resolv``
      means there is no upstream anyway).
    Logs every query to dnsmasq.log, which tests can read to see what a server asked.
    """

    def __init__(self, directory: Path, ip: str, port: int = DNS_PORT,
                 zones: Iterable[str] = ("test",)):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip, self.port = ip, port
        self.zones = list(zones)
        self.records: list[str] = []
        self.proc: Optional[subprocess.Popen] = None
        self.conf = self.dir / "dnsmasq.conf"
        self.log_path = self.dir / "dnsmasq.log"

    def add_a(self, name: str, ip: str) -> "Dnsmasq":
        self.records.append(f"address=/{name}/{ip}")
        return self

    def add_srv(self, domain: str, target: str, port: int, prio: int = 0, weight: int = 5,
                service: str = "_xmpp-server._tcp") -> "Dnsmasq":
        self.records.append(f"srv-host={service}.{domain},{target},{port},{prio},{weight}")
        return self

    def resolv_conf(self, path: Path) -> Path:
        """Writes a resolv.conf naming this server (port 53 is the only one it can say)."""
        if self.port != 53:
            raise HarnessError("resolv.conf can only point at port 53")
        path.write_text(f"nameserver {self.ip}\noptions timeout:1 attempts:2\n")
        path.chmod(0o644)
        return path

    def write_config(self) -> None:
        lines = ["no-resolv", "no-hosts", "no-poll", "bind-interfaces", "log-queries",
                 "cache-size=0",  # records change between restarts; never serve stale ones
                 f"listen-address={self.ip}", f"port={self.port}",
                 f"pid-file={self.dir / 'dnsmasq.pid'}",
                 *(f"local=/{z}/" for z in self.zones), *self.records, ""]
        self.conf.write_text("\n".join(lines))

    def start(self, timeout: float = 10) -> "Dnsmasq":
        self.write_config()
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", f"--conf-file={self.conf}",
                 "--log-facility=-"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            logf.close()

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"dnsmasq exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            try:
                dns_query(self.ip, "probe.invalid.test", port=self.port, timeout=0.2)
                return True
            except (OSError, HarnessError):
                return False

        wait_until(answers, timeout, f"dnsmasq on {self.ip}:{self.port} answering",
                   on_fail=lambda: tail(self.log_path))
        return self

    def reload(self) -> None:
        """Makes added records effective (restart: SIGHUP would not re-read them)."""
        self.restart()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        _stop_process(self.proc, group=False, timeout=5)
        self.proc = None

    def query(self, name: str, qtype: str = "A") -> tuple[int, list[Any]]:
        return dns_query(self.ip, name, qtype, self.port)


# --------------------------------------------------------------------------- servers


class PeerServer:
    """Common parts of Prosody and Ejabberd: addresses, certificates, resolv.conf, logs."""

    name = "peer"

    def __init__(self, directory: Path, domain: str, ip: str, dns_ip: str, ca: PrivateCA,
                 mode: str, *, s2s_port: int = S2S_PORT, c2s_port: int = C2S_PORT):
        _check_mode(mode)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.domain, self.ip, self.dns_ip = domain, ip, dns_ip
        self.ca, self.mode = ca, mode
        self.s2s_port, self.c2s_port = s2s_port, c2s_port
        self.certs = ca.for_mode(domain, mode)
        self.resolv = self.dir / "resolv.conf"
        self.resolv.write_text(f"nameserver {dns_ip}\noptions timeout:1 attempts:2\n")
        self.resolv.chmod(0o644)
        self.proc: Optional[subprocess.Popen] = None
        self.users: dict[str, str] = {}
        self.start_seconds: Optional[float] = None  # set by Federation.start()

    # log of the server, for failure reports and auth-method assertions
    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return tail(self.log_path, lines)

    def wait_log(self, needle: str, timeout: float = 15) -> str:
        """Waits until the server's log contains `needle`; returns the matching line."""
        found: list[str] = []

        def check() -> bool:
            for line in self.log_text().splitlines():
                if needle in line:
                    found.append(line)
                    return True
            return False

        wait_until(check, timeout, f"{self.name} log line containing {needle!r}",
                   on_fail=self.log_tail)
        return found[0]

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    @property
    def c2s_address(self) -> tuple[str, int]:
        return (self.ip, self.c2s_port)

    def kill_stop(self) -> None:
        """Freezes the server (SIGSTOP) without closing its sockets (fault injection)."""
        os.kill(self.main_pid(), signal.SIGSTOP)

    def kill_cont(self) -> None:
        os.kill(self.main_pid(), signal.SIGCONT)

    def main_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def restart(self, kill: bool = False) -> None:
        """Stops the server and starts it again with the same address, ports, leases and
        data: a clean shutdown (SIGTERM), or with kill=True a crash (SIGKILL to the main
        process, nothing closed cleanly)."""
        self._halt(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc = None
        self.start()

    def _halt(self, sig: int) -> None:
        """Ends the running process with `sig` (SIGKILL after 10 s), keeping the leases."""
        _stop_process(self.proc, group=True, sig=sig)

    def __repr__(self) -> str:
        return f"<{self.name} {self.domain} {self.ip} mode={self.mode}>"


class Prosody(PeerServer):
    """Prosody 0.12 on `ip` for `domain`, DNS from `dns_ip`.

    mode "cert": ``s2s_secure_auth = true`` and no dialback module: SASL EXTERNAL with a
    certificate from the private CA is the only way in or out.
    mode "dialback": a self-signed certificate, ``s2s_secure_auth = false`` and mod_dialback:
    certificate validation fails, so both directions use dialback over TLS.
    The modules are a reduced set (roster, saslauth, tls, disco, ping, posix, smacks; offline
    is loaded automatically); ``extra_modules`` adds more (e.g. "limits", which Debian's
    shipped configuration enables), ``extra_config`` adds global options.

    ``register(user, password)`` works before and after start; ``start()`` waits until c2s and
    s2s accept TCP; ``stop()`` sends SIGTERM to the PID it started.
    Logs at debug level (``log_level``) to prosody.log. Lines that tell which s2s
    authentication was used:
      inbound SASL EXTERNAL:   "Accepting SASL EXTERNAL identity from DOMAIN" (info)
      outbound SASL EXTERNAL:  "SASL EXTERNAL with DOMAIN succeeded" (debug)
      outbound dialback:       "SASL EXTERNAL with DOMAIN failed: error<...>" (info), then
                               "SASL EXTERNAL failed, falling back to dialback",
                               "sent dialback key on outgoing s2s stream" (debug)
      authoritative dialback:  "verified dialback key... it is valid" (debug)
      certificate checks:      "certificate chain validation result: valid|invalid",
                               "certificate identity validation result: ..." (debug)
      every stream:            "Stream encrypted (TLSv1.3 with TLS_AES_256_GCM_SHA384)" and
                               "Outgoing|Incoming s2s connection A->B complete" (info)
      DNS / connect target:    "Results for _xmpp-server._tcp.DOMAIN IN SRV: ...",
                               "Next target to try is IP:PORT" (debug)
    """

    name = "prosody"

    def __init__(self, directory: Path, domain: str, ip: str, dns_ip: str, ca: PrivateCA,
                 mode: str, *, s2s_port: int = S2S_PORT, c2s_port: int = C2S_PORT,
                 extra_config: str = "", unbound_test_zone_fix: bool = True,
                 extra_modules: Iterable[str] = (), log_level: str = "debug"):
        super().__init__(directory, domain, ip, dns_ip, ca, mode, s2s_port=s2s_port,
                         c2s_port=c2s_port)
        self.unbound_test_zone_fix = unbound_test_zone_fix  # False only to show the trap
        self.extra_modules = list(extra_modules)  # e.g. "limits"
        self.log_level = log_level  # "info" for load tests: debug logs every stanza
        self.config = self.dir / "prosody.cfg.lua"
        self.log_path = self.dir / "prosody.log"
        self.stdout_path = self.dir / "prosody.stdout"
        self.data = self.dir / "data"
        self.data.mkdir(exist_ok=True)
        certdir = self.dir / "certs"
        certdir.mkdir(exist_ok=True)
        self.cert = Path(shutil.copy(self.certs.cert, certdir / f"{domain}.crt"))
        self.key = Path(shutil.copy(self.certs.key, certdir / f"{domain}.key"))
        self.extra_config = extra_config
        self.write_config()

    def write_config(self) -> None:
        q = lua_str
        dialback = self.mode == "dialback"
        zone_fix = ('options = { ["local-zone:"] = "test. transparent" };'
                    if self.unbound_test_zone_fix else "-- (test zone fix left out)")
        # "smacks" as Debian's prosody.cfg.lua ships it: stream management (XEP-0198), which
        # Prosody also uses on server links.
        modules = ["roster", "saslauth", "tls", "disco", "ping", "posix", "smacks",
                   *self.extra_modules]
        if dialback:
            modules.append("dialback")
        self.config.write_text(textwrap.dedent(f"""\
            -- Written by tests/interop/harness.py ({self.mode} mode)
            run_as_root = true
            daemonize = false
            pidfile = {q(self.dir / "prosody.pid")}
            data_path = {q(self.data)}
            interfaces = {{ {q(self.ip)} }}
            local_interfaces = {{ {q(self.ip)} }}
            c2s_ports = {{ {self.c2s_port} }}
            s2s_ports = {{ {self.s2s_port} }}
            c2s_direct_tls_ports = {{ }}
            s2s_direct_tls_ports = {{ }}
            log = {{ {{ levels = {{ min = {q(self.log_level)} }}, to = "file", filename = {q(self.log_path)} }} }}
            authentication = "internal_plain"
            storage = "internal"
            modules_enabled = {{ {", ".join(q(m) for m in modules)} }}
            modules_disabled = {{ {'' if dialback else q("dialback")} }}
            c2s_require_encryption = true
            s2s_require_encryption = true
            s2s_secure_auth = {"false" if dialback else "true"}
            s2s_timeout = 20
            -- trust the private CA (in dialback mode the peers' self-signed certificates
            -- then fail validation, which is the point)
            ssl = {{ cafile = {q(self.ca.cert)} }}
            certificates = {q(self.dir / "certs")}
            -- libunbound answers NXDOMAIN for *.test by itself (RFC 6761 special-use zone)
            -- unless the zone is made transparent; resolvconf names the test DNS server
            -- (the same file is also bind-mounted on /etc/resolv.conf).
            unbound = {{
                resolvconf = {q(self.resolv)};
                hoststxt = false;
                {zone_fix}
            }}
            network_settings = {{ nagle = false }}
            {self.extra_config}

            VirtualHost {q(self.domain)}
                ssl = {{ certificate = {q(self.cert)}, key = {q(self.key)} }}

            -- rooms (XEP-0045), for the federated room tests; the certificate covers
            -- *.{self.domain}
            Component {q("conference." + self.domain)} "muc"
                ssl = {{ certificate = {q(self.cert)}, key = {q(self.key)} }}
                muc_room_locking = false
                restrict_room_creation = false
            """))

    def prosodyctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return _run([PROSODYCTL, "--config", str(self.config), *args], timeout=timeout)

    def register(self, user: str, password: str = PASSWORD) -> str:
        """Creates an account (prosodyctl; works whether or not the server runs)."""
        self.prosodyctl("register", user, self.domain, password)
        self.users[user] = password
        return self.jid(user)

    def start(self, timeout: float = 15) -> "Prosody":
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen(
                in_private_resolv(self.resolv, [PROSODY, "-F", "--config", str(self.config)]),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            out.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"prosody exited {self.proc.returncode}:\n"
                                   f"{tail(self.stdout_path)}\n{self.log_tail()}")
            return tcp_open(self.ip, self.c2s_port) and tcp_open(self.ip, self.s2s_port)

        wait_until(up, timeout, f"prosody {self.domain} listening on {self.ip}",
                   on_fail=lambda: tail(self.stdout_path) + "\n" + self.log_tail())
        return self

    def stop(self) -> None:
        # SIGTERM is Prosody's clean shutdown (closes streams); the group catches helpers.
        _stop_process(self.proc, group=True, timeout=10)


def lua_str(v: Any) -> str:
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


class Ejabberd(PeerServer):
    """ejabberd 23.01 on `ip` for `domain`, DNS from `dns_ip`, as the `ejabberd` user.

    mode "cert": no mod_s2s_dialback: SASL EXTERNAL with a certificate from the private CA is
    the only s2s authentication. mode "dialback": a self-signed certificate and
    mod_s2s_dialback. Both: ``s2s_use_starttls: required``, ``ca_file`` = the private CA,
    ``outgoing_s2s_families: [ipv4]``. No shapers, unless ``shaper_rate`` (bytes/s) is
    given: then the client and server listeners are shaped at that rate, the way Debian's
    shipped configuration shapes them at 3,000 and 200,000 bytes/s.

    The Erlang VM needs no epmd: a fixed ERL_DIST_PORT (leased from 42100-42199, bound to
    127.0.0.1 through ``inet_dist_use_interface``) and a unique node name per instance, set in
    the instance's own ejabberdctl.cfg, which every ``ejabberdctl --config-dir DIR`` call
    reads. The instance directory (config, spool, logs, copies of certificate and key) is
    owned by the ejabberd user; HOME points into it and the cookie is set explicitly, so
    nothing under /var/lib/ejabberd is touched.

    ``start()`` waits for the listeners and ``ejabberdctl status`` (30 s);
    ``register(user, password)`` needs the running node.
    Logs (loglevel info) to logs/ejabberd.log; lines that tell the s2s authentication:
      "Accepted inbound s2s EXTERNAL authentication A -> B (IP)"
      "Accepted outbound s2s EXTERNAL authentication A -> B (IP)"
      "Accepted inbound|outbound s2s dialback authentication A -> B (IP)"
      "Failed inbound s2s EXTERNAL authentication A -> B (IP): self signed certificate"
      "Failed outbound s2s EXTERNAL authentication ...: Peer provided no SASL mechanisms..."
      "Retrying with s2s dialback authentication: A -> B (IP)"
    (The start-up probe of the s2s port shows up as one "Closing inbound s2s connection
    127.0.0.1 -> DOMAIN: Connection failed: connection closed".)
    """

    name = "ejabberd"

    def __init__(self, directory: Path, domain: str, ip: str, dns_ip: str, ca: PrivateCA,
                 mode: str, *, s2s_port: int = S2S_PORT, c2s_port: int = C2S_PORT,
                 loglevel: str = "info", extra_config: str = "",
                 shaper_rate: Optional[int] = None):
        super().__init__(directory, domain, ip, dns_ip, ca, mode, s2s_port=s2s_port,
                         c2s_port=c2s_port)
        self.loglevel = loglevel
        self.shaper_rate = shaper_rate
        self.extra_config = extra_config
        self.spool = self.dir / "spool"
        self.logs = self.dir / "logs"
        self.home = self.dir / "home"
        for d in (self.spool, self.logs, self.home):
            d.mkdir(exist_ok=True)
        self.log_path = self.logs / "ejabberd.log"
        self.stdout_path = self.logs / "foreground.out"
        self.certfile = self.certs.combined(self.dir / f"{domain}.pem")
        self.cafile = Path(shutil.copy(ca.cert, self.dir / "ca.pem"))
        self.dist_lease = lease_port()
        self.dist_port: int = self.dist_lease.value
        # unique node name: no two instances (here or in another run) share one
        self.node = f"ejabberd-{self.dist_port}-{os.getpid()}@localhost"
        self.cookie = f"waddleinterop{random.randrange(1 << 48):x}"
        self.write_config()
        pw = pwd.getpwnam(EJABBERD_USER)
        for root, dirs, files in os.walk(self.dir):
            for n in [root, *(os.path.join(root, d) for d in dirs),
                      *(os.path.join(root, f) for f in files)]:
                os.chown(n, pw.pw_uid, pw.pw_gid)
        for f in (self.certfile, self.dir / "ejabberdctl.cfg"):
            f.chmod(0o600)

    def write_config(self) -> None:
        dialback = self.mode == "dialback"
        modules = ["mod_roster: {}", "mod_disco: {}", "mod_ping: {}", "mod_offline: {}",
                   # rooms (XEP-0045) on conference.DOMAIN, for the federated room tests
                   'mod_muc: {host: "conference.@HOST@", access_create: all}']
        if dialback:
            modules.append("mod_s2s_dialback: {}")
        # (joined after dedent: a multi-line value inside the template would defeat dedent)
        module_lines = "".join(f"  {m}\n" for m in modules)
        # Shapers as in Debian's shipped configuration (c2s_shaper on the client listener,
        # s2s_shaper on the server one), at shaper_rate bytes/s; none without shaper_rate.
        c2s_shaper = s2s_shaper = ""
        shapers = "shaper_rules: {}\n"
        if self.shaper_rate is not None:
            indent = "\n" + " " * 16  # the template's indentation before dedent
            c2s_shaper = f"{indent}shaper: c2s_shaper"
            s2s_shaper = f"{indent}shaper: s2s_shaper"
            shapers = (f"shaper:\n  paced:\n    rate: {self.shaper_rate}\n"
                       f"    burst_size: {2 * self.shaper_rate}\n"
                       "shaper_rules:\n  c2s_shaper: paced\n  s2s_shaper: paced\n")
        (self.dir / "ejabberd.yml").write_text(textwrap.dedent(f"""\
            # Written by tests/interop/harness.py ({self.mode} mode)
            hosts:
              - "{self.domain}"
            loglevel: {self.loglevel}
            log_rotate_count: 0
            hide_sensitive_log_data: false
            certfiles:
              - "{self.certfile}"
            ca_file: "{self.cafile}"
            define_macro: {{}}
            acme:
              auto: false
            listen:
              - port: {self.c2s_port}
                ip: "{self.ip}"
                module: ejabberd_c2s
                starttls_required: true
                max_stanza_size: 262144
                backlog: 64{c2s_shaper}
              - port: {self.s2s_port}
                ip: "{self.ip}"
                module: ejabberd_s2s_in
                max_stanza_size: 524288
                backlog: 64{s2s_shaper}
            s2s_use_starttls: required
            s2s_access: all
            s2s_timeout: 60
            s2s_dns_timeout: 5
            s2s_dns_retries: 1
            outgoing_s2s_families: [ipv4]
            outgoing_s2s_timeout: 15
            auth_method: internal
            auth_password_format: plain
            default_db: mnesia
            acl:
              local:
                user_regexp: ""
            access_rules:
              local:
                allow: local
              c2s:
                allow: all
            """) + shapers + "modules:\n" + module_lines + self.extra_config + "\n")
        (self.dir / "ejabberdctl.cfg").write_text(textwrap.dedent(f"""\
            # Written by tests/interop/harness.py: one instance, no epmd
            ERLANG_NODE={self.node}
            ERL_DIST_PORT={self.dist_port}
            ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie {self.cookie} -kernel inet_dist_use_interface {{127,0,0,1}}"
            EJABBERD_PID_PATH={self.dir / "ejabberd.pid"}
            EJABBERD_BYPASS_WARNINGS=true
            CONTRIB_MODULES_PATH={self.home / "modules"}
            """))
        # the inetrc that ejabberdctl passes as ERL_INETRC (Debian's, verbatim)
        (self.dir / "inetrc").write_text(
            '{lookup,["file","native"]}.\n'
            '{host,{127,0,0,1}, ["localhost","hostalias"]}.\n'
            '{file, resolv, "/etc/resolv.conf"}.\n')

    def _ctl_argv(self, *args: str) -> list[str]:
        return ["runuser", "-u", EJABBERD_USER, "--", "env", f"HOME={self.home}", EJABBERDCTL,
                "--config-dir", str(self.dir), "--spool", str(self.spool),
                "--logs", str(self.logs), *args]

    def ctl(self, *args: str, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess:
        """ejabberdctl against this instance (as the ejabberd user)."""
        return _run(self._ctl_argv(*args), cwd=self.dir, timeout=timeout, check=check)

    def start(self, timeout: float = 30) -> "Ejabberd":
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen(
                in_private_resolv(self.resolv, self._ctl_argv("foreground")),
                cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + timeout

        def diag() -> str:
            return f"{tail(self.stdout_path, 30)}\n{self.log_tail()}"

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"ejabberd exited {self.proc.returncode}:\n{diag()}")
            return (tcp_open("127.0.0.1", self.dist_port) and tcp_open(self.ip, self.c2s_port)
                    and tcp_open(self.ip, self.s2s_port))

        wait_until(listening, timeout, f"ejabberd {self.domain} listening on {self.ip}",
                   interval=0.1, on_fail=diag)
        # Listeners are up; `status` confirms the node has finished starting (each call
        # starts a small Erlang VM, so poll slowly).
        while True:
            remaining = deadline - time.monotonic()
            cp = self.ctl("status", timeout=max(remaining, 5), check=False)
            if cp.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                raise HarnessError(f"ejabberdctl status failed ({cp.returncode}): "
                                   f"{cp.stdout}{cp.stderr}\n{diag()}")
            time.sleep(0.3)

    def register(self, user: str, password: str = PASSWORD) -> str:
        """Creates an account (needs the running node)."""
        self.ctl("register", user, self.domain, password)
        self.users[user] = password
        return self.jid(user)

    def stop(self, use_ctl: bool = False) -> None:
        """Stops the instance: SIGTERM to its beam.smp PID (the Erlang VM treats SIGTERM as
        a clean init:stop(), ~1 s), or with use_ctl=True ``ejabberdctl stop`` (~4 s: it
        boots a second VM to ask). If the node is still there after 15 s, or was never
        found, the process group this harness started gets SIGTERM, then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                if use_ctl:
                    self.ctl("stop", timeout=15, check=False)
                else:
                    os.kill(self.main_pid(), signal.SIGTERM)
                self.proc.wait(15)
            except (HarnessError, OSError, subprocess.TimeoutExpired) as e:
                log.warning("clean stop of ejabberd %s failed: %s", self.domain, e)
        _stop_process(self.proc, group=True, timeout=10)
        self.dist_lease.release()

    def _halt(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.main_pid(), sig)  # the VM: SIGTERM is a clean init:stop()
                self.proc.wait(15)
            except (HarnessError, OSError, subprocess.TimeoutExpired) as e:
                log.warning("ending ejabberd %s with signal %d: %s", self.domain, sig, e)
        _stop_process(self.proc, group=True, timeout=10)

    def main_pid(self) -> int:
        """PID of the beam.smp VM (the process to SIGSTOP/SIGKILL for fault tests): the
        process in our process group whose command is beam.smp."""
        assert self.proc is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.proc.pid:
                    continue
                exe = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, ProcessLookupError):
                continue
            if exe.endswith(b"beam.smp"):
                return int(entry.name)
        raise HarnessError(f"no beam.smp in process group {self.proc.pid}")


# --------------------------------------------------------------------------- Waddle

REPO_ROOT = Path(__file__).resolve().parents[2]
METRICS_PORT = 5280
WEB_PORT = 5443  # HTTPS (WebSocket, host-meta), on the server's own address
WEB_PLAIN_PORT = 5380  # plain HTTP, on the server's own (loopback) address too
# One sample of the Prometheus text exposition, and one label in it.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def waddle_binary() -> Path:
    """The waddle binary under test ($WADDLE_BIN, default build/waddle of this checkout)."""
    return Path(os.environ.get("WADDLE_BIN", REPO_ROOT / "build" / "waddle"))


def _toml_value(v: Any) -> str:
    import json
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(tables: dict) -> str:
    """{"section": {"key": value, "sub": {...}}} as TOML tables (sub-tables dotted)."""
    out: list[str] = []

    import re

    def key(k: str) -> str:  # bare key, or a quoted one ("example.org" has dots)
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)

    def table(name: str, body: dict) -> None:
        out.append(f"[{name}]")
        out.extend(f"{key(k)} = {_toml_value(v)}" for k, v in body.items()
                   if not isinstance(v, dict))
        out.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{key(k)}", v)

    for name, body in tables.items():
        table(name, body)
    return "\n".join(out)


def _merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in, table by table; a value None removes the key (for a
    binary that does not know it)."""
    out = dict(base)
    for k, v in overrides.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _parent_death_signal() -> None:
    # The server must not outlive the test runner (PR_SET_PDEATHSIG = 1).
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class Waddle(PeerServer):
    """The server under test, federating in `mode` like the peers:

    mode "cert": a certificate from the private CA; ``allow_unverified_dialback = false``
    (the default policy), so a peer must present a certificate valid for its domain.
    mode "dialback": a self-signed certificate and ``allow_unverified_dialback = true``.
    Both: ``tls.ca_file`` = the private CA, ``[dns] nameservers`` = the harness's dnsmasq,
    ``s2s.allow_internal_addresses = true`` (the peers are on loopback addresses), log level
    debug, metrics on the server's own address, ``tls_min_version`` as given
    (default: Waddle's own default, "1.3").

    ``adduser(user)`` works before start (``waddle adduser``); ``start()`` waits until c2s
    and s2s accept TCP; ``stop()`` sends SIGTERM to the PID it started (SIGKILL after 10 s)
    and releases the address lease it was given. ``check_s2s(domain)`` runs
    ``waddle check s2s DOMAIN`` with the same configuration.
    How the s2s streams were authenticated is read from /metrics (``metric``,
    ``wait_metric``; docs/metrics.md): ``waddle_s2s_authenticated_total{domain,direction,
    method}``, ``waddle_s2s_dialback_verify_total{domain,result}``,
    ``waddle_s2s_streams_closed_total{domain,direction,reason}``, not from the log.
    """

    name = "waddle"

    def __init__(self, directory: Path, domain: str, ip: str, dns_ip: str, ca: PrivateCA,
                 mode: str, *, s2s_port: int = S2S_PORT, c2s_port: int = C2S_PORT,
                 tls_min_version: Optional[str] = None, overrides: Optional[dict] = None,
                 extra_domains: Iterable[str] = (), lease: Optional[Lease] = None,
                 binary: Optional[Path] = None):
        super().__init__(directory, domain, ip, dns_ip, ca, mode, s2s_port=s2s_port,
                         c2s_port=c2s_port)
        self.extra_domains = list(extra_domains)
        self.binary = Path(binary or waddle_binary())
        self.lease = lease
        self.config_path = self.dir / "waddle.toml"
        self.log_path = self.dir / "waddle.log"
        self.data = self.dir / "data"
        # allow_internal_addresses: every peer of the harness is on a loopback address.
        s2s: dict = {"enabled": True, "port": s2s_port,
                     "allow_unverified_dialback": mode == "dialback",
                     "allow_internal_addresses": True}
        if tls_min_version is not None:
            s2s["tls_min_version"] = tls_min_version
        tls: dict = {"cert": str(self.certs.cert), "key": str(self.certs.key),
                     "ca_file": str(ca.cert)}
        if self.extra_domains:  # one certificate per domain, chosen by SNI
            tls["domains"] = {}
            for d in [domain, *self.extra_domains]:
                pair = ca.for_mode(d, mode)
                tls["domains"][d] = {"cert": str(pair.cert), "key": str(pair.key)}
        self.config = _merge({
            "server": {"domains": [domain, *self.extra_domains], "listen": [ip],
                       "log_level": "debug", "data_dir": str(self.data)},
            "tls": tls,
            "c2s": {"port": c2s_port},
            "s2s": s2s,
            "dns": {"nameservers": [f"{dns_ip}:{DNS_PORT}"]},
            "metrics": {"address": ip, "port": METRICS_PORT},
            "web": {"plain_address": ip},
        }, overrides or {})
        self.config_path.write_text(dump_toml(self.config))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`waddle --config FILE ARGS...` (never raises for a non-zero exit)."""
        if not self.binary.exists():
            raise HarnessError(f"waddle binary not found at {self.binary} (set WADDLE_BIN)")
        return _run([str(self.binary), "--config", str(self.config_path), *args],
                    cwd=self.dir, timeout=timeout, check=False)

    def adduser(self, user: str, password: str = PASSWORD) -> str:
        """Creates user@domain, or the full JID if `user` contains '@' (other domains)."""
        jid = user if "@" in user else self.jid(user)
        pw = self.dir / f"password-{jid}"
        pw.write_text(password + "\n")
        pw.chmod(0o600)
        cp = self.cli("adduser", jid, "--password-file", str(pw))
        if cp.returncode != 0:
            raise HarnessError(f"waddle adduser {jid} exited {cp.returncode}:\n"
                               f"{cp.stdout}{cp.stderr}")
        self.users[user] = password
        return jid

    register = adduser

    def jid(self, user: str) -> str:
        return user if "@" in user else f"{user}@{self.domain}"

    def check_s2s(self, domain: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.cli("check", "s2s", domain, timeout=timeout)

    def start(self, timeout: float = 20) -> "Waddle":
        if not self.binary.exists():
            raise HarnessError(f"waddle binary not found at {self.binary} (set WADDLE_BIN)")
        self.data.mkdir(exist_ok=True)
        out = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config_path), "serve"], cwd=self.dir,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_parent_death_signal)
        finally:
            out.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"waddle exited {self.proc.returncode}:\n{self.log_tail()}")
            return tcp_open(self.ip, self.c2s_port) and tcp_open(self.ip, self.s2s_port)

        wait_until(up, timeout, f"waddle {self.domain} listening on {self.ip}",
                   on_fail=self.log_tail)
        return self

    def _halt(self, sig: int) -> None:
        _stop_process(self.proc, group=False, timeout=10, sig=sig)

    def stop(self) -> None:
        _stop_process(self.proc, group=False, timeout=10)
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]

    def metrics_text(self) -> str:
        """The Prometheus exposition served at /metrics (raises on an HTTP error)."""
        port = self.config["metrics"]["port"]
        with urllib.request.urlopen(f"http://{self.ip}:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, text: Optional[str] = None, **labels: Any) -> float:
        """Sum of the samples of metric `name` whose labels have the given values (a tuple
        accepts any of its values); 0 when there is none. `text`: an exposition read before."""
        text = self.metrics_text() if text is None else text
        total = 0.0
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if not m or m.group(1) != name:
                continue
            have = dict(_LABEL.findall(m.group(2) or ""))
            if all(have.get(k) in (v if isinstance(v, tuple) else (v,))
                   for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def wait_metric(self, name: str, at_least: float = 1, timeout: float = 15,
                    **labels: Any) -> float:
        """Waits (bounded) until metric(name, **labels) >= at_least; returns it."""
        got = [0.0]

        def reached() -> bool:
            got[0] = self.metric(name, **labels)
            return got[0] >= at_least

        wait_until(reached, timeout, f"waddle {self.domain}: {name}{labels} >= {at_least:g}",
                   on_fail=lambda: f"(it is {got[0]:g})\n" + "\n".join(
                       line for line in self.metrics_text().splitlines()
                       if line.startswith(name)) + "\n" + self.log_tail())
        return got[0]



# --------------------------------------------------------------------------- federation


class Federation:
    """One test's world: a dnsmasq on its own loopback address plus peer servers, each on
    its own leased address with A and SRV records for its domain.

        fed = Federation(run_dir, ca)
        p = fed.prosody("prosody.test", "cert")          # leases an address, adds records
        e = fed.ejabberd("ejabberd.test", "cert", s2s_port=5275)  # SRV names port 5275
        fed.start()            # dnsmasq, then every server not yet running
        ...
        fed.close()            # stops everything it started, releases every lease

    ``lease()`` hands out further addresses (e.g. for a Waddle instance) that close()
    releases; ``add_domain()`` adds records for servers started by other code.
    close() never raises for an individual failure: it stops the rest and reports them.
    """

    def __init__(self, directory: Path, ca: PrivateCA, zones: Iterable[str] = ("test",)):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.ca = ca
        self._leases: list[Lease] = []
        dns_lease = self.lease(tcp_ports=(DNS_PORT,), udp_ports=(DNS_PORT,))
        self.dns = Dnsmasq(self.dir / "dns", dns_lease, zones=zones)
        self.servers: list[PeerServer] = []
        self._dns_dirty = True

    @property
    def dns_ip(self) -> str:
        return self.dns.ip

    def lease(self, tcp_ports: Iterable[int] = (C2S_PORT, S2S_PORT),
              udp_ports: Iterable[int] = ()) -> str:
        """A loopback address of 127.0.0.100-199 held until close()."""
        lease = lease_address(tcp_ports, udp_ports)
        self._leases.append(lease)
        return lease.value

    def add_domain(self, domain: str, ip: str, s2s_port: Optional[int] = S2S_PORT,
                   srv_target: Optional[str] = None, prio: int = 0, weight: int = 5) -> None:
        """A record domain -> ip and, unless s2s_port is None, an _xmpp-server._tcp SRV
        record pointing at srv_target (default: the domain itself) and s2s_port."""
        self.dns.add_a(domain, ip)
        if s2s_port is not None:
            self.dns.add_srv(domain, srv_target or domain, s2s_port, prio, weight)
        self._dns_dirty = True

    def _server(self, cls: type, domain: str, mode: str, s2s_port: int, srv: bool,
                **kwargs: Any) -> Any:
        ip = self.lease(tcp_ports=(C2S_PORT, s2s_port))
        server = cls(self.dir / domain, domain, ip, self.dns_ip, self.ca, mode,
                     s2s_port=s2s_port, **kwargs)
        self.servers.append(server)
        self.add_domain(domain, ip, s2s_port if srv else None)
        return server

    def prosody(self, domain: str, mode: str, *, s2s_port: int = S2S_PORT, srv: bool = True,
                users: Iterable[str] = (), **kwargs: Any) -> Prosody:
        """A Prosody for `domain` (not started; accounts in `users` registered now)."""
        p = self._server(Prosody, domain, mode, s2s_port, srv, **kwargs)
        for u in users:
            p.register(u)
        return p

    def ejabberd(self, domain: str, mode: str, *, s2s_port: int = S2S_PORT,
                 srv: bool = True, **kwargs: Any) -> Ejabberd:
        """An ejabberd for `domain` (not started; register users after start())."""
        return self._server(Ejabberd, domain, mode, s2s_port, srv, **kwargs)

    def waddle(self, domain: str, mode: str, *, users: Iterable[str] = (),
               **kwargs: Any) -> Waddle:
        """A Waddle for `domain` on its own leased address (c2s, s2s and metrics ports free)
        with A and SRV records; not started; accounts in `users` created now. Its lease is
        released when it stops, so ``discard()`` frees everything it held."""
        lease = lease_address(tcp_ports=(C2S_PORT, S2S_PORT, METRICS_PORT, WEB_PORT,
                                         WEB_PLAIN_PORT))
        try:
            w = Waddle(self.dir / domain, domain, lease.value, self.dns_ip, self.ca, mode,
                       lease=lease, **kwargs)
            for u in users:
                w.adduser(u)
        except BaseException:
            lease.release()
            raise
        self.servers.append(w)
        for d in [domain, *w.extra_domains]:
            self.add_domain(d, w.ip)
        return w

    def discard(self, server: PeerServer) -> None:
        """Stops `server` and forgets it (its DNS records stay)."""
        try:
            server.stop()
        finally:
            if server in self.servers:
                self.servers.remove(server)

    def start(self) -> "Federation":
        """(Re)starts dnsmasq if records changed, then starts servers not yet running."""
        if self._dns_dirty:
            if self.dns.proc is None:
                self.dns.start()
            else:
                self.dns.reload()
            self._dns_dirty = False
        for s in self.servers:
            if s.proc is None:
                t0 = time.monotonic()
                s.start()
                s.start_seconds = time.monotonic() - t0
                log.info("%r started in %.1fs", s, s.start_seconds)
        return self

    def logs(self, lines: int = 60) -> str:
        """Tails of every log, for failure reports."""
        parts = [f"==== dnsmasq {self.dns.ip}\n{tail(self.dns.log_path, lines)}"]
        for s in self.servers:
            parts.append(f"==== {s!r} {s.log_path}\n{s.log_tail(lines)}")
        return "\n".join(parts)

    def close(self) -> None:
        errors = []
        for s in reversed(self.servers):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{s!r}: {e}")
        try:
            self.dns.stop()
        except Exception as e:
            errors.append(f"dnsmasq: {e}")
        for lease in self._leases:
            lease.release()
        self._leases.clear()
        if errors:
            raise HarnessError("teardown problems: " + "; ".join(errors))


# --------------------------------------------------------------------------- clients


TIMEOUT = 15.0


class Inbox:
    """Received stanzas; ``get(pred, timeout)`` returns the first matching one, waiting for
    it with a deadline (never a sleep)."""

    def __init__(self, what: str):
        self.what = what
        self.items: list[Any] = []
        self._changed: Optional[asyncio.Event] = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def put(self, item: Any) -> None:
        self.items.append(item)
        self._event().set()

    async def get(self, pred: Optional[Callable[[Any], bool]] = None,
                  timeout: float = TIMEOUT, what: str = "") -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, item in enumerate(self.items):
                if pred is None or pred(item):
                    return self.items.pop(i)
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = "\n  ".join(str(i) for i in self.items) or "(nothing)"
                raise AssertionError(f"timed out after {timeout}s waiting for "
                                     f"{what or self.what}; received instead:\n  {seen}")
            ev = self._event()
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def _slixmpp():
    import slixmpp  # Debian's python3-slixmpp: run the tests with /usr/bin/python3
    return slixmpp


_LIVE_CLIENTS: list[Any] = []


def _client_class():
    slixmpp = _slixmpp()
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    class XmppClient(slixmpp.ClientXMPP):
        """A c2s client for a peer server: connects straight to (ip, port) (no DNS),
        certificate verification off unless `cafile` is given, SASL `mech` (PLAIN over TLS
        by default: both Prosody and ejabberd offer it; SCRAM-*-PLUS channel binding in
        slixmpp 1.8 is unreliable with TLS 1.3). Received messages and errors go to
        ``messages``; ``expect_message()`` waits for one with a deadline."""

        def __init__(self, jid: str, password: str, address: tuple[str, int], *,
                     mech: str = "PLAIN", cafile: Optional[Path] = None):
            super().__init__(jid, password, sasl_mech=mech)
            self.address = address
            self.label = jid
            if cafile is None:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
            else:
                self.ssl_context.load_verify_locations(cafile=str(cafile))
            self.register_plugin("xep_0030")
            self.register_plugin("xep_0199")
            self.messages = Inbox(f"a message for {jid}")
            self.presences = Inbox(f"a presence for {jid}")
            self.failures: list[str] = []
            loop = asyncio.get_event_loop()
            self._session = loop.create_future()
            self._gone = loop.create_future()
            self.register_handler(Callback("interop messages",
                                           MatchXPath("{jabber:client}message"),
                                           self.messages.put))
            self.register_handler(Callback("interop presences",
                                           MatchXPath("{jabber:client}presence"),
                                           self.presences.put))
            self.add_event_handler("session_start", self._on_session)
            self.add_event_handler("failed_auth", lambda f: self.failures.append(
                f"auth: {f['condition']}"))
            self.add_event_handler("stream_error", lambda e: self.failures.append(
                f"stream error: {e['condition']}"))
            self.add_event_handler("disconnected", self._on_gone)
            self.add_event_handler("connection_failed", self._on_failed)
            _LIVE_CLIENTS.append(self)

        def _on_session(self, _: Any) -> None:
            if not self._session.done():
                self._session.set_result(True)

        def _on_gone(self, reason: Any) -> None:
            if not self._gone.done():
                self._gone.set_result(f"disconnected: {reason}")

        def _on_failed(self, reason: Any) -> None:
            self.cancel_connection_attempt()
            if not self._gone.done():
                self._gone.set_result(f"connection failed: {reason}")

        async def get_dns_records(self, domain, port=None):  # slixmpp override: no DNS
            return [(domain, self.address[0], self.address[1])]

        async def start(self, timeout: float = TIMEOUT) -> "XmppClient":
            """Connects and waits for session_start (or fails with the reason)."""
            self.connect(address=self.address)
            done, _ = await asyncio.wait({self._session, self._gone}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if self._session.done():
                return self
            reason = self._gone.result() if self._gone.done() else "no answer"
            raise AssertionError(f"{self.label} could not log in to {self.address} within "
                                 f"{timeout}s: {reason} {self.failures}")

        async def online(self, timeout: float = TIMEOUT) -> "XmppClient":
            """Sends initial presence and makes sure the server processed it (a ping
            round trip), so messages to the bare JID are delivered, not stored."""
            self.send_presence()
            await self.sync(timeout)
            return self

        async def sync(self, timeout: float = TIMEOUT) -> None:
            from slixmpp.exceptions import IqError
            try:
                await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=timeout)
            except IqError:
                pass  # an error answer is an answer

        def chat(self, to: str, body: str) -> str:
            """Sends a chat message; returns its id."""
            m = self.make_message(mto=to, mbody=body, mtype="chat")
            m["id"] = m["id"] or self.new_id()
            m.send()
            return m["id"]

        async def expect_message(self, frm: Optional[str] = None, body: Optional[str] = None,
                                 timeout: float = TIMEOUT) -> Any:
            """The first received message matching (bare or full) `frm` and `body`."""
            def pred(m: Any) -> bool:
                if frm is not None and str(m["from"]) != frm and m["from"].bare != frm:
                    return False
                return body is None or m["body"] == body
            return await self.messages.get(pred, timeout,
                                           f"message from {frm} {body!r} to {self.label}")

        async def close(self, timeout: float = 5.0) -> None:
            if self in _LIVE_CLIENTS:
                _LIVE_CLIENTS.remove(self)
            self.cancel_connection_attempt()
            if self.transport is not None and not self._gone.done():
                try:
                    await asyncio.wait_for(self.disconnect(wait=2), timeout)
                except Exception:
                    self.abort()

    return XmppClient


_XMPP_CLIENT = None


def XmppClient(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - acts as the class
    """Creates an XmppClient (see _client_class) in the running event loop."""
    global _XMPP_CLIENT
    if _XMPP_CLIENT is None:
        _XMPP_CLIENT = _client_class()
    return _XMPP_CLIENT(*args, **kwargs)


async def login(server: PeerServer, user: str, *, password: Optional[str] = None,
                online: bool = True, **kwargs: Any) -> Any:
    """A logged-in client of `server` for `user` (initial presence sent if online)."""
    pw = password if password is not None else server.users.get(user, PASSWORD)
    c = XmppClient(server.jid(user), pw, server.c2s_address, **kwargs)
    await c.start()
    if online:
        await c.online()
    return c


async def exchange(a: Any, b: Any, body: str, timeout: float = TIMEOUT) -> float:
    """a sends `body` to b's bare JID; waits until b has it. Returns the seconds it took.
    Fails at once if an error comes back to `a` for that message (same id), and on timeout;
    either way the failure names the error stanzas `a` got."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    mid = a.chat(b.boundjid.bare, body)
    delivered = asyncio.ensure_future(
        b.expect_message(frm=a.boundjid.bare, body=body, timeout=timeout))
    bounced = asyncio.ensure_future(a.messages.get(
        lambda m: m["type"] == "error" and m["id"] == mid, timeout + 1, "an error"))
    try:
        await asyncio.wait({delivered, bounced}, return_when=asyncio.FIRST_COMPLETED)
        if delivered.done() and delivered.exception() is None:
            return loop.time() - t0
        errors = [str(m) for m in a.messages.items if m["type"] == "error"]
        if bounced.done() and bounced.exception() is None:
            errors.insert(0, str(bounced.result()))
            raise AssertionError(f"{a.label} -> {b.boundjid.bare} {body!r}: an error came "
                                 f"back after {loop.time() - t0:.2f}s instead of delivery:\n"
                                 + "\n".join(errors))
        raise AssertionError(f"{delivered.exception()}\nerrors returned to {a.label}: "
                             f"{errors or 'none'}")
    finally:
        for f in (delivered, bounced):
            if not f.done():
                f.cancel()
        await asyncio.gather(delivered, bounced, return_exceptions=True)


def run_async(body: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Runs a test's async body in a fresh event loop with an overall deadline, then closes
    every client it left open."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        try:
            return loop.run_until_complete(asyncio.wait_for(body(), timeout))
        except asyncio.TimeoutError:
            raise AssertionError(f"test body did not finish within {timeout}s") from None
    finally:
        try:
            for c in list(_LIVE_CLIENTS):
                try:
                    loop.run_until_complete(c.close())
                except Exception:
                    log.exception("closing %s", c.label)
            _LIVE_CLIENTS.clear()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
