"""Hosts, TLS options and their daemon.json keys, decided as dockerd decides
them: which listeners, which TLS mode, which plain-TCP setups are refused."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from dockyard.certs import make_certs
from dockyard.cli import build_config, main
from dockyard.config import DaemonConfig
from dockyard.errors import InvalidParameter
from dockyard.listeners import (
    INSECURE_WARNINGS,
    Host,
    TlsSettings,
    parse_host,
    plan_listeners,
    server_context,
    tls_settings,
)


def daemon_config(*argv: str) -> DaemonConfig:
    import argparse

    from dockyard.cli import _daemon_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    _daemon_parser(sub)
    return build_config(parser.parse_args(["daemon", *argv]))


@pytest.mark.parametrize("value, host", [
    ("tcp://127.0.0.1:2376", Host("tcp", "127.0.0.1", 2376)),
    ("tcp://:2376", Host("tcp", "localhost", 2376)),
    ("tcp://", Host("tcp", "localhost", 2375)),
    ("tcp://0.0.0.0", Host("tcp", "0.0.0.0", 2375)),
    ("tcp://[::1]:2376", Host("tcp", "::1", 2376)),
    ("127.0.0.1:2376", Host("tcp", "127.0.0.1", 2376)),
    ("unix:///run/x.sock", Host("unix", "/run/x.sock")),
])
def test_parse_host(value: str, host: Host):
    assert parse_host(value) == host


@pytest.mark.parametrize("value, error", [
    ("tcp://h:0", "invalid bind address (tcp://h:0): invalid port: 0"),
    ("tcp://h:99999", "invalid port: 99999"),
    ("tcp://h:x", "invalid port: x"),
    ("tcp://h:1/x", "should not contain a path element"),
    ("udp://h:1", "invalid bind address (udp://h:1): unsupported proto 'udp'"),
    ("fd://", "not supported"),
])
def test_parse_host_errors(value: str, error: str):
    with pytest.raises(InvalidParameter, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_host(value)


def test_tls_modes_follow_dockerd():
    assert tls_settings(daemon_config()) is None
    assert tls_settings(daemon_config("--tls=false")) is None
    # --tlsverify, and --tls alone (dockerd >= 20.10): client certificates required
    assert tls_settings(daemon_config("--tlsverify")).verify is True     # type: ignore[union-attr]
    assert tls_settings(daemon_config("--tls")).verify is True           # type: ignore[union-attr]
    # encryption only: --tlsverify=false, with or without --tls
    for argv in (["--tls", "--tlsverify=false"], ["--tlsverify=false"]):
        t = tls_settings(daemon_config(*argv))
        assert t is not None and t.verify is False and "encryption only" in t.mode


def test_default_certificate_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    t = tls_settings(daemon_config("--tlsverify"))
    assert t == TlsSettings(True, str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"),
                            str(tmp_path / "key.pem"))


def test_plain_tcp_is_refused_without_acknowledgment(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    cfg = daemon_config("-H", "unix:///run/x.sock", "-H", "tcp://127.0.0.1:2375")
    with pytest.raises(InvalidParameter, match="refusing to listen on tcp://127.0.0.1:2375 "
                                               "without TLS"):
        plan_listeners(cfg)
    text = caplog.text
    assert INSECURE_WARNINGS[0] in text and "--tls=false" in text
    # --tls=false is dockerd's explicit "I know": the warnings, then it listens
    caplog.clear()
    hosts, tls = plan_listeners(daemon_config("-H", "tcp://127.0.0.1:2375", "--tls=false"))
    assert hosts == [Host("tcp", "127.0.0.1", 2375)] and tls is None
    assert INSECURE_WARNINGS[0] in caplog.text


def test_a_non_loopback_address_is_never_bound_silently(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    plan_listeners(daemon_config("-H", "tcp://0.0.0.0:2375", "--tls=false"))
    assert "not a loopback address" in caplog.text and INSECURE_WARNINGS[1] in caplog.text


def test_unix_sockets_need_no_tls(caplog: pytest.LogCaptureFixture):
    hosts, tls = plan_listeners(daemon_config("-H", "unix:///run/a.sock"))
    assert hosts == [Host("unix", "/run/a.sock")] and tls is None
    assert not caplog.records


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_files_are_checked_before_anything_listens(tmp_path: Path):
    make_certs(tmp_path, ["localhost"], days=2)
    ok = TlsSettings(True, str(tmp_path / "ca.pem"), str(tmp_path / "server-cert.pem"),
                     str(tmp_path / "server-key.pem"))
    server_context(ok)
    with pytest.raises(InvalidParameter, match="invalid TLS configuration: could not load "
                                               "X509 key pair"):
        server_context(TlsSettings(True, ok.cacert, str(tmp_path / "missing.pem"), ok.key))
    with pytest.raises(InvalidParameter, match="could not load X509 key pair"):
        # a key that is not the certificate's
        server_context(TlsSettings(True, ok.cacert, ok.cert, str(tmp_path / "key.pem")))
    with pytest.raises(InvalidParameter, match="could not read CA certificate"):
        server_context(TlsSettings(True, str(tmp_path / "nope.pem"), ok.cert, ok.key))
    # encryption only needs no CA
    server_context(TlsSettings(False, str(tmp_path / "nope.pem"), ok.cert, ok.key))
    cfg = daemon_config("-H", "tcp://127.0.0.1:1", "--tlsverify", "--tlscacert",
                        str(tmp_path / "nope.pem"), "--tlscert", ok.cert, "--tlskey", ok.key)
    with pytest.raises(InvalidParameter, match="could not read CA certificate"):
        plan_listeners(cfg)


def test_daemon_json_tls_keys(tmp_path: Path):
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"hosts": ["unix:///run/a.sock", "tcp://127.0.0.1:2376"],
                             "tlsverify": True, "tlscacert": "/c/ca.pem",
                             "tlscert": "/c/s.pem", "tlskey": "/c/k.pem"}))
    cfg = daemon_config("--config-file", str(f))
    assert cfg.hosts == ["unix:///run/a.sock", "tcp://127.0.0.1:2376"]
    assert tls_settings(cfg) == TlsSettings(True, "/c/ca.pem", "/c/s.pem", "/c/k.pem")
    # a key given both ways is refused, as dockerd refuses it
    with pytest.raises(InvalidParameter, match="specified both as a flag and in the "
                                               "configuration file: tlsverify"):
        daemon_config("--config-file", str(f), "--tlsverify")
    f.write_text(json.dumps({"tls": "yes"}))
    with pytest.raises(InvalidParameter, match='tls in the configuration file: "yes" is not '
                                               "a bool"):
        daemon_config("--config-file", str(f))
    f.write_text(json.dumps({"hosts": "tcp://127.0.0.1:2376"}))
    with pytest.raises(InvalidParameter, match=r"is not a \[\]string"):
        daemon_config("--config-file", str(f))


def test_go_style_boolean_flags():
    assert daemon_config("--tls=false").tls is False
    assert daemon_config("--tls=1").tls is True
    assert daemon_config("--tlsverify").tlsverify is True
    with pytest.raises(SystemExit):
        daemon_config("--tls=maybe")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_certs_command_makes_a_working_set(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["certs", "--dir", str(tmp_path / "c"), "--host", "127.0.0.1"]) == 0
    names = {Path(p).name for p in capsys.readouterr().out.split()}
    assert names == {"ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem",
                     "cert.pem", "key.pem"}
    d = tmp_path / "c"
    for key in ("ca-key.pem", "server-key.pem", "key.pem"):
        assert (d / key).stat().st_mode & 0o777 == 0o600
    server_context(TlsSettings(True, str(d / "ca.pem"), str(d / "server-cert.pem"),
                               str(d / "server-key.pem")))
    # a second run keeps the CA and signs new certificates with it
    ca = (d / "ca.pem").read_bytes()
    assert main(["certs", "--dir", str(d), "--no-server"]) == 0
    assert (d / "ca.pem").read_bytes() == ca
