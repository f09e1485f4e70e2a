"""Start, stop and administer a real `waddle` process for system tests.

Every server gets its own loopback address (127.0.0.40-127.0.0.200) so it can use the
standard ports. Addresses are reserved with a lock file (so concurrent test runs on the
same machine do not collide) and checked by binding the ports before use. Processes are
stopped only by their PID.
"""

from __future__ import annotations

import copy
import ctypes
import fcntl
import json
import mmap
import os
import random
import re
import signal
import socket
import sqlite3
import urllib.request
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "example.test"
C2S_PORT = 5222
DIRECT_TLS_PORT = 5223
S2S_PORT = 5269
METRICS_PORT = 5280  # the metrics listener goes on the server's own address, never 127.0.0.1
WEB_PORT = 5443  # HTTPS (WebSocket, host-meta) on the server's address
WEB_PLAIN_PORT = 5380  # plain HTTP, on the server's own (loopback) address too
ADDRESS_RANGE = range(40, 201)  # 127.0.0.40 .. 127.0.0.200
LOCK_DIR = Path("/tmp/waddle-systest-locks")

START_TIMEOUT = 20.0  # seconds until the port must accept TCP
STOP_TIMEOUT = 10.0  # seconds SIGTERM gets before SIGKILL
CLI_TIMEOUT = 30.0


def waddle_binary() -> Path:
    return Path(os.environ.get("WADDLE_BIN", REPO_ROOT / "build" / "waddle"))


def sanitized_server() -> bool:
    """Whether the server under test is built with AddressSanitizer (scripts/run-tests runs
    the system tests against one): several times slower, and its memory figures include
    freed memory held in quarantine, so RSS bounds cannot be checked against it."""
    try:
        with open(waddle_binary(), "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(b"libasan.so") >= 0
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- addresses


class AddressLease:
    """A loopback address reserved for one server (released on close)."""

    def __init__(self, ip: str, lock_fd: int):
        self.ip = ip
        self._fd: Optional[int] = lock_fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def _port_free(ip: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def lease_address(ports=(C2S_PORT, DIRECT_TLS_PORT, S2S_PORT, METRICS_PORT, WEB_PORT,
                         WEB_PLAIN_PORT)) -> AddressLease:
    """Reserves a loopback address whose TCP ports are free (bounded: one pass over the
    range). The default checks every port a server may listen on, so the same lease serves
    c2s-only servers and federating ones."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(ADDRESS_RANGE)
    start = random.randrange(len(candidates))
    candidates = candidates[start:] + candidates[:start]
    for n in candidates:
        ip = f"127.0.0.{n}"
        fd = os.open(LOCK_DIR / f"{ip}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if all(_port_free(ip, p) for p in ports):
            return AddressLease(ip, fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise RuntimeError(
        f"no free loopback address in 127.0.0.{ADDRESS_RANGE.start}-{ADDRESS_RANGE.stop - 1}"
        f" with ports {ports} free"
    )


# --------------------------------------------------------------------------- config


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # "2.0", "0.5": TOML floats
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(tables: dict) -> str:
    """Writes {"section": {"key": value, "sub": {...}}} as TOML tables."""
    out: list[str] = []

    def key(k: str) -> str:  # a bare key, or a quoted one ("gw.example.test" has dots)
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def table(name: str, body: dict) -> None:
        out.append(f"[{name}]")
        for k, v in body.items():
            if not isinstance(v, dict):
                out.append(f"{key(k)} = {toml_value(v)}")
        out.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{key(k)}", v)

    for name, body in tables.items():
        table(name, body)
    return "\n".join(out)


def deep_merge(base: dict, overrides: dict) -> dict:
    """Returns base updated with overrides; a value of None removes the key."""
    result = copy.deepcopy(base)
    for k, v in overrides.items():
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict) and isinstance(result.get(k), dict):
            result[k] = deep_merge(result[k], v)
        else:
            result[k] = copy.deepcopy(v)
    return result


def make_self_signed_cert(directory: Path, domain: str = DOMAIN) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "7",
            "-subj", f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain}",
        ],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


# --------------------------------------------------------------------------- process


def _set_parent_death_signal() -> None:
    # If the test runner dies, the server must not outlive it (PR_SET_PDEATHSIG = 1).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class ServerError(AssertionError):
    pass


class WaddleServer:
    """One waddle instance: its run directory, config, process and log."""

    def __init__(
        self,
        run_dir: Path,
        lease: AddressLease,
        cert: Optional[Path],
        key: Optional[Path],
        overrides: Optional[dict] = None,
        binary: Optional[Path] = None,
    ):
        self.binary = Path(binary or waddle_binary())
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lease = lease
        self.ip = lease.ip
        self.data_dir = self.run_dir / "data"
        self.config_path = self.run_dir / "waddle.toml"
        self.log_path = self.run_dir / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        self._expected_exit = True  # no process yet
        self._frozen = False  # SIGSTOPped by freeze()
        self.starts = 0
        base = {
            "server": {
                "domains": [DOMAIN],
                "listen": [self.ip],
                "log_level": "debug",
                "data_dir": str(self.data_dir),
            },
            "tls": {"cert": str(cert), "key": str(key)} if cert else None,
            "c2s": {
                "port": C2S_PORT,
                "direct_tls_port": DIRECT_TLS_PORT,
                "allow_registration": True,
                "max_auth_failures": 3,
                "limits": {
                    "max_stanza_size": 262144,
                    "max_depth": 64,
                    "max_attributes": 64,
                    "max_header_size": 4096,
                    "handshake_timeout": "30s",
                },
            },
            "s2s": {"enabled": False},
            "metrics": {"address": self.ip},
            "web": {"plain_address": self.ip},
        }
        base = {k: v for k, v in base.items() if v is not None}
        self.config = deep_merge(base, overrides or {})
        # The first served domain (overrides["server"]["domains"] replaces example.test).
        self.domain = self.config["server"]["domains"][0]
        self.write_config()

    # ---- configuration

    @property
    def port(self) -> int:
        return int(self.config["c2s"].get("port", C2S_PORT))

    @property
    def direct_tls_port(self) -> int:
        return int(self.config["c2s"].get("direct_tls_port", 0))

    @property
    def s2s_port(self) -> int:
        """The S2S listener's port, or 0 when federation is off."""
        s2s = self.config.get("s2s", {})
        return int(s2s.get("port", S2S_PORT)) if s2s.get("enabled", True) else 0

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "waddle.db"

    def write_config(self) -> None:
        self.config_path.write_text(dump_toml(self.config))

    # ---- logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"

    def metrics_text(self) -> str:
        """The Prometheus exposition served at /metrics (raises on an HTTP error)."""
        port = self.config.get("metrics", {}).get("port", 5280)
        with urllib.request.urlopen(f"http://{self.ip}:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    def log_size(self) -> int:
        """Current length of the log in bytes: an offset for log_since()."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int = 0) -> str:
        """The log from byte offset on (decoded leniently)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 300) -> str:
        text = self.log_text().splitlines()
        head = f"(full log: {self.log_path}; last {min(lines, len(text))} of {len(text)} lines)"
        return "\n".join([head] + text[-lines:])

    def log_marker(self, what: str) -> None:
        self._log_marker(what)

    def _log_marker(self, what: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(f"===== test harness: {what} at {time.strftime('%H:%M:%S')} =====\n")

    # ---- process control

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Starts the process and waits until its listeners accept TCP. Call it from the
        test's main thread: the child gets SIGKILL when the *thread* that started it ends
        (PR_SET_PDEATHSIG), so a server started from asyncio.to_thread dies with that
        worker thread."""
        if not self.binary.exists():
            raise ServerError(
                f"waddle binary not found at {self.binary} (build it, or set WADDLE_BIN)"
            )
        assert not self.running(), "server already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._log_marker(f"start #{self.starts} on {self.ip}")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--config", str(self.config_path)],
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_set_parent_death_signal,
            )
        finally:
            log.close()
        self._expected_exit = False
        ports = [self.port] + ([self.direct_tls_port] if self.direct_tls_port else [])
        if self.s2s_port:
            ports.append(self.s2s_port)
        self._wait_ports(ports, timeout)

    def _wait_ports(self, ports: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if self.proc.poll() is not None:
                self._expected_exit = True
                raise ServerError(
                    f"waddle exited with code {self.proc.returncode} before listening on "
                    f"{self.ip}:{pending}\n{self.log_tail(100)}"
                )
            port = pending[0]
            try:
                with socket.create_connection((self.ip, port), timeout=2) as sock:
                    if port == self.direct_tls_port:  # complete a handshake: no log noise
                        ctx = ssl.create_default_context()
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                        ctx.wrap_socket(sock, server_hostname=self.domain).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerError(
                    f"waddle did not accept TCP on {self.ip}:{port} within {timeout}s\n"
                    f"{self.log_tail(100)}"
                )
            time.sleep(0.05)  # bounded readiness poll (deadline above)

    def send_signal(self, sig: int) -> None:
        """Sends a signal to this server's PID; the exit it causes counts as expected."""
        assert self.proc is not None
        self._expected_exit = True
        self._log_marker(f"sending {signal.Signals(sig).name} to pid {self.proc.pid}")
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> Optional[int]:
        """Returns the exit code, or None if the process is still running after timeout."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM, wait, then SIGKILL. Returns the exit code (negative = signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(signal.SIGTERM)
            if self._frozen:  # a stopped process handles SIGTERM only once continued
                self.thaw()
            if self.wait_exit(timeout) is None:
                self._log_marker(f"no exit {timeout}s after SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._expected_exit = True
        return self.proc.returncode

    def freeze(self) -> None:
        """SIGSTOP: the process stops answering but keeps its sockets open."""
        assert self.running(), "server not running"
        self._log_marker(f"SIGSTOP to pid {self.proc.pid}")
        os.kill(self.proc.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        self._frozen = False
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self._log_marker(f"SIGCONT to pid {self.proc.pid}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._expected_exit = True
            self._log_marker(f"SIGKILL to pid {self.proc.pid}")
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def restart_after_kill9(self) -> None:
        self.kill9()
        self.start()

    def died_unexpectedly(self) -> Optional[int]:
        """Exit code if the process ended without the harness asking it to, else None."""
        if self.proc is not None and not self._expected_exit and self.proc.poll() is not None:
            return self.proc.returncode
        return None

    def close(self) -> None:
        """Stops the server (SIGTERM) and releases its address; `exit_at_close` keeps the exit
        code when it was running (a sanitizer report at shutdown makes it non-zero)."""
        try:
            running = self.proc is not None and self.proc.poll() is None
            code = self.stop()
            self.exit_at_close = code if running else None
        finally:
            self.lease.release()

    # ---- command line

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT, config: bool = True,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), *args]
        if config:
            cmd += ["--config", str(self.config_path)]
        return subprocess.run(
            cmd, cwd=self.run_dir, capture_output=True, text=True, timeout=timeout,
            input=input if input is not None else "",
        )

    def _password_file(self, password: str) -> Path:
        path = self.run_dir / f"pw-{time.monotonic_ns()}.txt"
        path.write_text(password)
        return path

    def adduser(self, jid: str, password: str, check: bool = True) -> subprocess.CompletedProcess:
        r = self.cli("adduser", jid, "--password-file", str(self._password_file(password)))
        if check and r.returncode != 0:
            raise ServerError(f"waddle adduser {jid} exited {r.returncode}: {r.stderr}")
        return r

    def deluser(self, jid: str, check: bool = True) -> subprocess.CompletedProcess:
        r = self.cli("deluser", jid)
        if check and r.returncode != 0:
            raise ServerError(f"waddle deluser {jid} exited {r.returncode}: {r.stderr}")
        return r

    def passwd(self, jid: str, password: str, check: bool = True) -> subprocess.CompletedProcess:
        r = self.cli("passwd", jid, "--password-file", str(self._password_file(password)))
        if check and r.returncode != 0:
            raise ServerError(f"waddle passwd {jid} exited {r.returncode}: {r.stderr}")
        return r

    # ---- storage inspection (read-only)

    def db_contains(self, token: str, tables: Optional[tuple] = None) -> bool:
        """True if any column of any table in the SQLite database (or of `tables`) contains
        token."""
        if not self.db_path.exists():
            return False
        try:
            con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1)
        except sqlite3.Error:
            return False
        needle = token.encode()
        only = tables
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                if only is not None and t not in only:
                    continue
                for row in con.execute(f'SELECT * FROM "{t}"'):
                    for v in row:
                        if isinstance(v, str) and token in v:
                            return True
                        if isinstance(v, (bytes, memoryview)) and needle in bytes(v):
                            return True
        except sqlite3.Error:
            return False
        finally:
            con.close()
        return False
