"""The fuzz lane: a private daemon (own socket, data root and exec root),
fuzzed through Docker's own API description.  `make fuzz` runs it; see
tests/fuzz/README.md."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("schemathesis") is None:
    # the lane's packages come from requirements-fuzz.txt (make fuzz installs them)
    collect_ignore_glob = ["test_*.py"]
else:
    from tests.fuzz import report, seeds, settings
    from tests.fuzz.lane import Lane, current, finish_lane, start_lane


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The stateful run draws from the lane's seed too (hypothesis's own
    pytest option), so a campaign's printed seed replays all of it."""
    if importlib.util.find_spec("schemathesis") is not None and \
            getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = settings.SEED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the fuzz lane needs root")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lane() -> Iterator[Lane]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-fuzz-", dir="/var/tmp"))
    lane = start_lane(base)
    yield lane
    problems = finish_lane(lane)
    # what a wedged seed (a known finding) left is reported, not failed on
    known = [p for p in problems if any(cid in p for cid in lane.broken_ids)]
    report.cleanup_problems.extend(problems)
    report.cleanup_known.extend(known)
    unknown = [p for p in problems if p not in known]
    assert not unknown, "\n".join(unknown)


@pytest.fixture(autouse=True)
def seeded(lane: Lane) -> None:
    """The image and containers of seeds.py are in place before each test."""
    seeds.keep(lane)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A fuzzed operation runs its whole budget; then it fails with every
    distinct new failure it found, or is an expected failure when all of
    them are known."""
    lane = current()
    mark = len(lane.findings) if lane is not None else 0
    result = yield
    lane = current()
    if lane is None:
        return result
    new = lane.findings.since(mark)
    unknown = [f for f in new if not f.known]
    if unknown:
        pytest.fail(report.describe(new), pytrace=False)
    if new:
        pytest.xfail("known: " + "; ".join(f.headline() for f in new))
    return result


def pytest_report_header(config: pytest.Config) -> list[str]:
    if importlib.util.find_spec("schemathesis") is None:
        return ["fuzz lane: schemathesis is not installed (make fuzz installs it)"]
    return [report.budget_line()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if importlib.util.find_spec("schemathesis") is None:
        return
    for line in report.summary():
        terminalreporter.write_line(line)
