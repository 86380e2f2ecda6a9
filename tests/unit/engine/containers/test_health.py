"""Health check rules without containers: probe parsing, schedule, results."""

from __future__ import annotations

from dockyard.engine.containers.health import (
    DEFAULT_RETRIES,
    LimitedOutput,
    Probe,
    apply_result,
    go_duration,
    next_wait_ns,
    probe_of,
    probe_process,
)
from dockyard.engine.containers.record import HealthState

S = 1_000_000_000


def probe(**kw: int) -> Probe:
    base = {"interval_ns": 1 * S, "timeout_ns": 30 * S, "start_period_ns": 0,
            "start_interval_ns": 5 * S, "retries": 3}
    base.update(kw)
    return Probe(argv=["true"], **base)


def test_probe_forms_and_defaults():
    assert probe_of({}) is None
    assert probe_of({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert probe_of({"Healthcheck": {"Test": ["BOGUS", "x"]}}) is None
    p = probe_of({"Healthcheck": {"Test": ["CMD-SHELL", "test -f /x"]}})
    assert p is not None
    assert p.argv == ["/bin/sh", "-c", "test -f /x"]
    assert (p.interval_ns, p.timeout_ns, p.start_period_ns, p.start_interval_ns, p.retries) == \
        (30 * S, 30 * S, 0, 5 * S, DEFAULT_RETRIES)
    p = probe_of({"Healthcheck": {"Test": ["CMD", "curl", "-f", "x"], "Interval": 2 * S,
                                  "Retries": 7}})
    assert p is not None and p.argv == ["curl", "-f", "x"] and p.retries == 7
    assert p.interval_ns == 2 * S
    p = probe_of({"Shell": ["/bin/bash", "-ec"], "Healthcheck": {"Test": ["CMD-SHELL", "x"]}})
    assert p is not None and p.argv == ["/bin/bash", "-ec", "x"]


def test_schedule_follows_start_period():
    p = probe(interval_ns=30 * S, start_period_ns=60 * S, start_interval_ns=5 * S)
    assert next_wait_ns(p, 0, "starting") == 5 * S
    assert next_wait_ns(p, 0, "healthy") == 30 * S
    # never past the end of the start period
    assert next_wait_ns(p, 50 * S, "starting") == 10 * S
    assert next_wait_ns(p, 61 * S, "starting") == 30 * S
    assert next_wait_ns(probe(), 0, "starting") == 1 * S


def result(code: int) -> dict:
    return {"Start": "", "End": "", "ExitCode": code, "Output": ""}


def test_retries_then_unhealthy_then_healthy():
    h = HealthState()
    p = probe(retries=2)
    assert not apply_result(h, p, result(1), 10 * S, 0)
    assert (h.status, h.failing_streak) == ("starting", 1)
    assert apply_result(h, p, result(1), 11 * S, 0)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    assert apply_result(h, p, result(0), 12 * S, 0)
    assert (h.status, h.failing_streak) == ("healthy", 0)
    # a healthy container needs Retries failures too
    assert not apply_result(h, p, result(1), 13 * S, 0)
    assert h.status == "healthy"


def test_failures_in_start_period_do_not_count_until_first_success():
    h = HealthState()
    p = probe(start_period_ns=10 * S, retries=1)
    assert not apply_result(h, p, result(1), 5 * S, 0)
    assert (h.status, h.failing_streak) == ("starting", 0)
    assert apply_result(h, p, result(1), 11 * S, 0)
    assert h.status == "unhealthy"
    h = HealthState()
    apply_result(h, p, result(0), 1 * S, 0)
    assert apply_result(h, p, result(1), 2 * S, 0)   # healthy: the start period is over
    assert h.status == "unhealthy"


def test_log_keeps_last_five():
    h = HealthState()
    for i in range(8):
        apply_result(h, probe(), {**result(0), "Output": str(i)}, S, 0)
    assert [e["Output"] for e in h.log] == ["3", "4", "5", "6", "7"]


def test_output_limit():
    o = LimitedOutput()
    o.write(b"a" * 4000)
    o.write(b"b" * 200)
    assert o.text() == "a" * 4000 + "b" * 96 + "..."
    o = LimitedOutput()
    o.write(b"x" * 4096)
    assert o.text() == "x" * 4096


def test_go_duration():
    assert go_duration(500_000_000) == "500ms"
    assert go_duration(1 * S) == "1s"
    assert go_duration(1_500_000_000) == "1.5s"
    assert go_duration(90 * S) == "1m30s"
    assert go_duration(3600 * S) == "1h0m0s"
    assert go_duration(30 * S) == "30s"
    assert go_duration(1_500) == "1.5µs"
    assert go_duration(0) == "0s"


def test_probe_process_keeps_container_settings():
    spec = {"args": ["sleep", "1"], "terminal": True, "consoleSize": {"height": 1, "width": 1},
            "user": {"uid": 1000, "gid": 1000}, "env": ["A=1"], "cwd": "/w"}
    proc = probe_process(spec, ["true"])
    assert proc == {"args": ["true"], "terminal": False, "user": {"uid": 1000, "gid": 1000},
                    "env": ["A=1"], "cwd": "/w"}
    assert spec["args"] == ["sleep", "1"]
