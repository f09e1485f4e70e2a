"""Federation test environment: a private CA (openssl CLI) and a real DNS server (dnsmasq)
on a loopback address, for Waddle-to-Waddle tests."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Optional

DNSMASQ = "/usr/sbin/dnsmasq"
DNS_PORT = 5353


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


class PrivateCA:
    """A CA whose certificate the servers trust, issuing one certificate per domain."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "30",
             "-subj", "/CN=Waddle Test CA", cwd=self.dir)

    def issue(self, domain: str, *, san: Optional[list[str]] = None,
              extended_key_usage: str = "serverAuth,clientAuth") -> tuple[Path, Path]:
        """Certificate and key for `domain` (subjectAltName DNS:domain, DNS:*.domain) for the
        purposes `extended_key_usage` (the files are named after both)."""
        stem = domain if extended_key_usage == "serverAuth,clientAuth" else (
            f"{domain}-{extended_key_usage.replace(',', '-')}")
        cert, key, csr = (self.dir / f"{stem}.pem", self.dir / f"{stem}.key",
                          self.dir / f"{stem}.csr")
        ext = self.dir / f"{stem}.ext"
        names = san or [domain, f"*.{domain}"]
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) +
                       f"\nextendedKeyUsage={extended_key_usage}\n")
        _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={domain}", cwd=self.dir)
        _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey",
             str(self.key), "-CAcreateserial", "-out", str(cert), "-days", "30", "-extfile",
             str(ext), cwd=self.dir)
        return cert, key


def self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    cert, key = directory / f"self-{domain}.pem", directory / f"self-{domain}.key"
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj",
         f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain}", cwd=directory)
    return cert, key


class Dnsmasq:
    """dnsmasq answering only for the records it is given (nothing is forwarded)."""

    def __init__(self, directory: Path, ip: str, port: int = DNS_PORT):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip, self.port = ip, port
        self.lines: list[str] = []
        self.proc: Optional[subprocess.Popen] = None

    @property
    def log_path(self) -> Path:
        return self.dir / "dnsmasq.log"

    @property
    def nameserver(self) -> str:
        return f"{self.ip}:{self.port}"

    def a(self, name: str, ip: str) -> None:
        self.lines.append(f"host-record={name},{ip}")

    def srv(self, service: str, domain: str, target: str, port: int, prio: int = 0,
            weight: int = 0) -> None:
        self.lines.append(f"srv-host={service}.{domain},{target},{port},{prio},{weight}")

    def start(self) -> None:
        conf = self.dir / "dnsmasq.conf"
        conf.write_text("\n".join([
            "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "log-queries",
            f"listen-address={self.ip}", f"port={self.port}", "local=/test/",
            f"pid-file={self.dir / 'dnsmasq.pid'}", *self.lines, ""]))
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([DNSMASQ, "--keep-in-foreground", f"--conf-file={conf}",
                                          "--log-facility=-"], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError("dnsmasq exited: " + self.log_path.read_text())
            if self._answers():
                return
            time.sleep(0.05)  # bounded readiness poll (deadline above)
        self.stop()  # never leave it running behind a failed start
        raise RuntimeError("dnsmasq did not answer within 10 s: " + self.log_path.read_text())

    def _answers(self) -> bool:
        # A minimal DNS query (A record for "probe.test") over UDP.
        q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in "probe.test".split(".")) + b"\0"
        q += struct.pack(">HH", 1, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, (self.ip, self.port))
                data, _ = s.recvfrom(512)
                return data[:2] == b"\x12\x34"
            except OSError:
                return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
