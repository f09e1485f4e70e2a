"""Fixtures for Waddle system tests: a real `waddle serve` on its own loopback address.

- `tls_cert`: a self-signed certificate for example.test made with the openssl CLI (once).
- `make_server(overrides=None, start=True, tls=True, cert=None)`: a new server with its own
  address, run directory, config and log; stopped by PID at the end of the test. `cert` is a
  (certificate, key) pair to use instead of the shared self-signed example.test one.
- `server`: one started server with the default test configuration.

When a test fails, the log of every server it used is attached to the report, and so is
every file a test lists in `request.node._extra_logs` as (title, path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the room tests' shared assertions report like the tests' own (also tests/interop)
pytest.register_assert_rewrite("crowd")

from federation import Federation, Pki  # noqa: E402
from s2s_env import PrivateCA  # noqa: E402
from waddle_server import (  # noqa: E402
    WaddleServer,
    lease_address,
    make_self_signed_cert,
    waddle_binary,
)

@pytest.fixture(scope="session")
def waddle_bin() -> Path:
    path = waddle_binary()
    if not path.exists():
        pytest.fail(f"waddle binary not found at {path}; build it or set WADDLE_BIN",
                    pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not executable", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory) -> tuple[Path, Path]:
    return make_self_signed_cert(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_server(request, tmp_path, tls_cert, waddle_bin):
    servers: list[WaddleServer] = []
    request.node._waddle_servers = servers

    def factory(overrides: dict | None = None, start: bool = True,
                tls: bool = True, cert: tuple[Path, Path] | None = None) -> WaddleServer:
        lease = lease_address()
        run_dir = tmp_path / f"server{len(servers) + 1}"
        cert, key = (cert or tls_cert) if tls else (None, None)
        try:
            srv = WaddleServer(run_dir, lease, cert, key, overrides, binary=waddle_bin)
        except Exception:
            lease.release()
            raise
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory

    crashed = []
    for srv in servers:
        code = srv.died_unexpectedly()
        if code is not None:
            crashed.append(f"{srv.ip}: exit code {code}")
        srv.close()
        # A clean shutdown exits 0: a crash or a sanitizer report while the server tears
        # down (pending work destroyed after what it refers to) does not.
        if getattr(srv, "exit_at_close", None) not in (None, 0):
            crashed.append(f"{srv.ip}: exit code {srv.exit_at_close} when stopped at the end "
                           f"(SIGTERM)\n{srv.log_tail(60)}")
    if crashed:
        pytest.fail("waddle exited during the test without being asked to, or did not stop "
                    "cleanly: " + "; ".join(crashed), pytrace=False)


@pytest.fixture
def server(make_server) -> WaddleServer:
    return make_server()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in getattr(item, "_waddle_servers", []):
            report.sections.append(
                (f"waddle log {srv.domain} {srv.ip} ({report.when})", srv.log_tail()))
        for title, path in getattr(item, "_extra_logs", []):
            try:
                text = Path(path).read_text(errors="replace").splitlines()
            except OSError as e:
                text = [f"({path}: {e})"]
            report.sections.append((f"{title} ({report.when})", "\n".join(text[-200:])))


def pytest_report_header(config):
    return f"waddle binary: {waddle_binary()}"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A private CA (trusted by every federating server of the session) and its certificates."""
    d = tmp_path_factory.mktemp("pki")
    return Pki(PrivateCA(d / "ca"), d)


@pytest.fixture
def fed(make_server, tmp_path, pki, request):
    """Federating Waddles on loopback addresses with their own dnsmasq."""
    f = Federation(make_server, tmp_path, pki, request)
    try:
        yield f
    finally:
        f.close()
