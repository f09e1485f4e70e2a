"""The `waddle` command line: version, help, config checking, account administration,
start-up failures and graceful shutdown on SIGTERM/SIGINT."""

import asyncio
import re
import signal
import subprocess
import time

import pytest

from rawxmpp import RawXmpp
from waddle_client import DOMAIN, PASSWORD, Client, login, run

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
SHUTDOWN_BOUND = 10.0  # seconds from SIGTERM to exit


def not_a_crash(r: subprocess.CompletedProcess | int) -> None:
    code = r if isinstance(r, int) else r.returncode
    assert code > 0, f"expected an error exit, got {code}" + (
        " (killed by a signal: a crash)" if code < 0 else "")


def write_config(server, text: str):
    server.config_path.write_text(text)
    return server.config_path


def test_version_prints_name_and_version(make_server):
    server = make_server(start=False)
    r = server.cli("--version", config=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"(?i)waddle", out), out
    assert re.search(r"\d+\.\d+", out), out


def test_help_lists_commands(make_server):
    server = make_server(start=False)
    r = server.cli("--help", config=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for word in ("serve", "adduser", "deluser", "passwd", "check"):
        assert word in out, f"{word!r} missing from --help:\n{out}"


def test_check_config_accepts_valid_config(make_server):
    server = make_server(start=False)
    r = server.cli("check", "config")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"


def test_check_config_rejects_unknown_key_naming_file_line_and_key(make_server):
    server = make_server(start=False)
    lines = server.config_path.read_text().splitlines()
    index = lines.index("[c2s]") + 1
    lines.insert(index, "bogus_option = 1")
    path = write_config(server, "\n".join(lines) + "\n")
    line_no = index + 1
    r = server.cli("check", "config")
    not_a_crash(r)
    pattern = re.escape(str(path)) + rf":{line_no}:\d+: c2s\.bogus_option: "
    assert re.search(pattern, r.stderr), (
        f"expected '{path}:{line_no}:COL: c2s.bogus_option: problem' in stderr:\n{r.stderr}")


def test_check_config_rejects_wrong_type(make_server):
    server = make_server(start=False)
    text = server.config_path.read_text().replace("port = 5222", 'port = "five"')
    path = write_config(server, text)
    line_no = text.splitlines().index('port = "five"') + 1
    r = server.cli("check", "config")
    not_a_crash(r)
    assert re.search(re.escape(str(path)) + rf":{line_no}:\d+: c2s\.port: ", r.stderr), r.stderr


def test_check_config_rejects_unknown_nested_key(make_server):
    server = make_server(start=False)
    text = server.config_path.read_text().replace("max_depth = 64", "max_depth = 64\nmax_dept = 3")
    path = write_config(server, text)
    line_no = text.splitlines().index("max_dept = 3") + 1
    r = server.cli("check", "config")
    not_a_crash(r)
    assert re.search(re.escape(str(path)) + rf":{line_no}:\d+: c2s\.limits\.max_dept: ",
                     r.stderr), r.stderr


def test_check_config_rejects_missing_file(make_server, tmp_path):
    server = make_server(start=False)
    missing = tmp_path / "does-not-exist.toml"
    r = server.cli("check", "config", "--config", str(missing), config=False)
    not_a_crash(r)
    assert str(missing) in r.stderr, r.stderr


def test_check_config_rejects_missing_certificate(make_server, tmp_path):
    server = make_server({"tls": {"cert": str(tmp_path / "nope.pem")}}, start=False)
    r = server.cli("check", "config")
    not_a_crash(r)
    assert re.search(re.escape(str(server.config_path)) + r":\d+:\d+: tls\.cert: ", r.stderr), \
        r.stderr


def test_serve_refuses_bad_config_without_crashing(make_server):
    server = make_server(start=False)
    text = server.config_path.read_text().replace("[s2s]", "[s2s]\nfederate_everything = true")
    write_config(server, text)
    r = server.cli("serve", timeout=20)
    not_a_crash(r)
    assert "s2s.federate_everything" in r.stderr, r.stderr


def test_serve_refuses_unreadable_certificate(make_server, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    server = make_server({"tls": {"cert": str(garbage)}}, start=False)
    r = server.cli("serve", timeout=20)
    not_a_crash(r)
    assert "tls.cert" in r.stderr, r.stderr


def test_self_signed_certificate_generated_when_none_configured(make_server):
    server = make_server(tls=False)
    server.adduser(ALICE, PASSWORD)
    certs = server.data_dir / "certs"
    assert certs.is_dir() and any(certs.iterdir()), f"nothing generated in {certs}"

    def peer_cert():
        raw = RawXmpp(server.ip, server.port)
        try:
            raw.tls_stream()
            return raw.peer_cert_der
        finally:
            raw.close()

    first = peer_cert()

    async def body():
        await login(server, f"{ALICE}/x", PASSWORD, online=False)
    run(body)
    server.restart()
    assert peer_cert() == first, "a new certificate was generated on restart"


def test_adduser_duplicate_fails(make_server):
    server = make_server(start=False)
    assert server.adduser(ALICE, PASSWORD).returncode == 0
    r = server.adduser(ALICE, "other", check=False)
    not_a_crash(r)


def test_adduser_account_can_log_in_and_deluser_removes_it(server):
    server.adduser(ALICE, PASSWORD)

    async def can_login():
        c = Client(server, f"{ALICE}/x", PASSWORD)
        ok = await c.attempt()
        await c.close()
        return ok, c
    ok, c = run(can_login)
    assert ok, c.describe()
    server.deluser(ALICE)
    ok, c = run(can_login)
    assert not ok, "deleted account can still log in"
    assert c.auth_failures == ["not-authorized"], c.describe()


def test_passwd_changes_password(server):
    server.adduser(ALICE, PASSWORD)
    server.passwd(ALICE, "new secret")

    async def body():
        old = Client(server, f"{ALICE}/old", PASSWORD)
        assert not await old.attempt(), "old password still works after passwd"
        await login(server, f"{ALICE}/new", "new secret", online=False)
    run(body)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_gracefully(server, sig):
    server.adduser(ALICE, PASSWORD)
    server.adduser(BOB, PASSWORD)

    async def body():
        alice = await login(server, f"{ALICE}/home", PASSWORD)
        raw = RawXmpp(server.ip, server.port, timeout=SHUTDOWN_BOUND + 5)
        await asyncio.to_thread(raw.login, "bob", PASSWORD)
        try:
            t0 = time.monotonic()
            server.send_signal(sig)
            await asyncio.to_thread(raw.assert_stream_error, "system-shutdown", SHUTDOWN_BOUND)
            await alice.wait_disconnected(SHUTDOWN_BOUND)
            assert "system-shutdown" in alice.stream_errors, alice.describe()
            code = await asyncio.to_thread(server.wait_exit, SHUTDOWN_BOUND)
            elapsed = time.monotonic() - t0
            assert code is not None, f"still running {SHUTDOWN_BOUND}s after {sig.name}"
            assert code == 0, f"exit code {code} after {sig.name}"
            assert elapsed < SHUTDOWN_BOUND
        finally:
            raw.close()
    run(body)
