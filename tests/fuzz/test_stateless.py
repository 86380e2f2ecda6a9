"""Every documented operation, one at a time: its examples, the coverage
phase (boundary and invalid values of every parameter), then random inputs."""

from __future__ import annotations

import schemathesis

from tests.fuzz.lane import Lane
from tests.fuzz.settings import load_schema

schema = load_schema()


@schema.parametrize()
def test_operation(case: schemathesis.Case, lane: Lane) -> None:
    response = lane.send(case)
    if response is not None:
        lane.judge(case, response)
