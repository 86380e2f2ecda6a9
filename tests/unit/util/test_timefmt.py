"""Docker's (Go's) time texts: one implementation for inspect, logs, stats, cp."""

from datetime import UTC, datetime

from dockyard.util.timefmt import ZERO_TIME, rfc3339, rfc3339_nano, rfc3339_nano_fixed

T = int(datetime(2026, 11, 28, 23, 1, 20, tzinfo=UTC).timestamp()) * 10**9


def test_rfc3339_nano_trims_trailing_zeros():
    assert rfc3339_nano(T + 989985460) == "2026-11-28T23:01:20.98998546Z"
    assert rfc3339_nano(T + 500_000_000) == "2026-11-28T23:01:20.5Z"
    assert rfc3339_nano(T) == "2026-11-28T23:01:20Z"
    assert rfc3339_nano(0) == "1970-01-01T00:00:00Z"


def test_rfc3339_zero_is_gos_zero_time():
    assert rfc3339(0) == rfc3339(None) == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert rfc3339(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"


def test_rfc3339_nano_fixed_keeps_nine_digits():
    assert rfc3339_nano_fixed(T + 989985462) == "2026-11-28T23:01:20.989985462Z"
    assert rfc3339_nano_fixed(T + 500) == "2026-11-28T23:01:20.000000500Z"
    assert rfc3339_nano_fixed(T) == "2026-11-28T23:01:20.000000000Z"
