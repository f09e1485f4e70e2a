"""TLS certificate selection for clients: per-domain certificates, chosen by SNI or, for a
client that sends no SNI, by the stream header's 'to'."""

from __future__ import annotations

import subprocess

from waddle_server import make_self_signed_cert


def _served_subject(ip: str, host: str, sni: bool) -> str:
    args = ["openssl", "s_client", "-starttls", "xmpp", "-xmpphost", host,
            "-connect", f"{ip}:5222", "-brief"]
    args += ["-servername", host] if sni else ["-noservername"]
    r = subprocess.run(args, input=b"", capture_output=True, timeout=20)
    text = (r.stdout + r.stderr).decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("Peer certificate:"):
            return line
    raise AssertionError("no peer certificate in openssl output:\n" + text)


def test_second_domain_certificate_with_and_without_sni(make_server, tmp_path):
    other_cert, other_key = make_self_signed_cert(tmp_path / "other", "other.test")
    srv = make_server({
        "server": {"domains": ["example.test", "other.test"]},
        "tls": {"domains": {"other.test": {"cert": str(other_cert), "key": str(other_key)}}},
    })
    assert "CN = other.test" in _served_subject(srv.ip, "other.test", sni=True)
    assert "CN = other.test" in _served_subject(srv.ip, "other.test", sni=False)
    assert "CN = example.test" in _served_subject(srv.ip, "example.test", sni=False)
