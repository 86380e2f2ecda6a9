"""Restart policy decisions (moby restartmanager rules) without containers."""

from __future__ import annotations

import pytest

from dockyard.engine.containers.restart import (
    INITIAL_DELAY_S,
    MAX_DELAY_S,
    Policy,
    next_delay,
    policy_wants_restart,
)


def test_policy_of_host_config():
    assert Policy.of({}).is_none
    assert Policy.of({"RestartPolicy": {"Name": ""}}).is_none
    p = Policy.of({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
    assert (p.name, p.max_retries) == ("on-failure", 2)


@pytest.mark.parametrize(("name", "code", "manual", "count", "want"), [
    ("no", 1, False, 0, False),
    ("always", 0, False, 0, True),
    ("always", 0, True, 5, True),          # at daemon start, even after docker stop
    ("unless-stopped", 0, False, 0, True),
    ("unless-stopped", 1, True, 0, False),
    ("on-failure", 0, False, 0, False),
    ("on-failure", 1, False, 100, True),   # 0 = unlimited
])
def test_policy_wants_restart(name, code, manual, count, want):
    assert policy_wants_restart(Policy(name), code, manual, count) is want


def test_on_failure_maximum_retry_count():
    p = Policy("on-failure", 2)
    assert policy_wants_restart(p, 1, False, 0)
    assert policy_wants_restart(p, 1, False, 1)
    assert not policy_wants_restart(p, 1, False, 2)


def test_backoff_doubles_caps_and_resets():
    d = next_delay(0, 0)
    assert d == INITIAL_DELAY_S
    seq = [d]
    for _ in range(12):
        d = next_delay(d, 0.5)
        seq.append(d)
    assert seq[:4] == [0.1, 0.2, 0.4, 0.8]
    assert seq[-1] == MAX_DELAY_S
    assert next_delay(MAX_DELAY_S, 10.0) == INITIAL_DELAY_S
    assert next_delay(0.8, 9.9) == 1.6
