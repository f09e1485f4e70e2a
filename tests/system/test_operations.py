"""Running Waddle as a service (docs/operations.md).

- SIGHUP reloads the certificates: new connections get the renewed certificate, open ones keep
  theirs; a renewal half done (a certificate with a key that does not match) changes nothing
  and is counted as failed (waddle_reloads_total).
- Under systemd (JOURNAL_STREAM set) every log line starts with its syslog priority ("<6>"),
  without a time stamp: the journal records both.
- The shipped systemd unit (dist/systemd/waddle.service) passes `systemd-analyze verify`.

Run: /usr/bin/python3 -m pytest tests/system/test_operations.py -q
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from waddle_client import TIMEOUT
from waddle_server import REPO_ROOT, make_self_signed_cert


def served_certificate(server) -> str:
    """SHA-256 of the certificate a new direct-TLS client connection is given."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((server.ip, server.direct_tls_port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=server.domain) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def reloads(server, what: str, result: str) -> float:
    key = f'waddle_reloads_total{{what="{what}",result="{result}"}}'
    for line in server.metrics_text().splitlines():
        if line.startswith(key):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_reloads(server, what: str, result: str, count: float) -> None:
    deadline = time.monotonic() + TIMEOUT
    while reloads(server, what, result) < count:
        assert time.monotonic() < deadline, f"no {what} reload ({result}) counted"
        time.sleep(0.05)


def test_sighup_reloads_certificates(make_server, tmp_path):
    certs = tmp_path / "certs"
    cert, key = make_self_signed_cert(certs / "first")
    live_cert, live_key = certs / "live.crt", certs / "live.key"
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    server = make_server({"tls": {"cert": str(live_cert), "key": str(live_key)}})
    first = served_certificate(server)
    # A connection opened before the renewal.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((server.ip, server.direct_tls_port), timeout=TIMEOUT)
    old = ctx.wrap_socket(raw, server_hostname=server.domain)

    # The renewal: new files in place, then SIGHUP.
    new_cert, new_key = make_self_signed_cert(certs / "second")
    shutil.copy(new_cert, live_cert)
    shutil.copy(new_key, live_key)
    server.send_signal(signal.SIGHUP)
    wait_reloads(server, "certificates", "ok", 1)
    second = served_certificate(server)
    assert second != first
    assert second == hashlib.sha256(
        ssl.PEM_cert_to_DER_cert(new_cert.read_text())).hexdigest()
    # The connection from before still works with its certificate.
    assert hashlib.sha256(old.getpeercert(binary_form=True)).hexdigest() == first
    old.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "
                b"version='1.0'>")
    assert b"<stream:stream" in old.recv(4096)
    old.close()

    # Half a renewal: the certificate replaced, the key not. Nothing changes.
    third_cert, _ = make_self_signed_cert(certs / "third")
    shutil.copy(third_cert, live_cert)
    server.send_signal(signal.SIGHUP)
    wait_reloads(server, "certificates", "failed", 1)
    assert served_certificate(server) == second
    assert server.running()


def test_journal_gets_priorities_without_time_stamps(make_server):
    server = make_server(start=False)
    env = dict(os.environ, JOURNAL_STREAM="8:12345")
    proc = subprocess.Popen([str(server.binary), "serve", "--config", str(server.config_path)],
                            cwd=server.run_dir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if not line:
                break
            lines.append(line)
            if "started" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
        lines += rest.decode().splitlines(keepends=True)
    assert any(l.startswith("<6>waddle ") and "started" in l for l in lines), lines
    assert all(l[:3] in ("<7>", "<6>", "<4>", "<3>", "<2>") for l in lines if l.strip()), lines
    assert proc.returncode == 0


def test_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (scripts/deps installs systemd)"
    unit = (REPO_ROOT / "dist" / "systemd" / "waddle.service").read_text()
    binary = Path(os.environ.get("WADDLE_BIN", REPO_ROOT / "build" / "waddle")).resolve()
    assert "ExecStart=/usr/local/bin/waddle " in unit
    copy = tmp_path / "waddle.service"
    copy.write_text(unit.replace("/usr/local/bin/waddle", str(binary)))
    r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                       timeout=60)
    problems = [l for l in (r.stdout + r.stderr).splitlines()
                if "waddle.service" in l and "Documentation" not in l]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    # The sandbox the issue asks for is there.
    for option in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                   "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=waddle"):
        assert option in unit, option
