"""Sequences of linked calls over the operations dockyard claims: a created
container is inspected, started, attached to, exec'd into, committed,
stopped and removed with the id the create gave (links in spec.py), and the
containers of seeds.py are reached through `GET /containers/json`."""

from __future__ import annotations

from typing import Any, ClassVar

import hypothesis
from hypothesis import strategies as st
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from tests.fuzz import seeds, settings, spec
from tests.fuzz.lane import Lane

schema = settings.load_schema(json_bodies=True).include(operation_id=sorted(spec.claimed()))

# Random valid bodies seldom make a container or an exec that runs: the
# image must exist and the command must be one.  Half the creates and execs
# of a scenario are runnable ones, so the links lead to running processes.
COMMANDS = [["true"], ["sh", "-c", "echo out; echo err >&2; exit 7"], ["sleep", "2"], ["cat"],
            seeds.LOOP, ["no-such-binary"]]
_FLAGS = {name: st.booleans() for name in
          ("Tty", "OpenStdin", "AttachStdin", "AttachStdout", "AttachStderr")}
RUNNABLE_CREATE = st.fixed_dictionaries(
    {"Image": st.sampled_from(seeds.IMAGE_NAMES), "Cmd": st.sampled_from(COMMANDS)},
    optional={**_FLAGS, "StopTimeout": st.integers(0, 2),
              "HostConfig": st.fixed_dictionaries({}, optional={
                  "Init": st.booleans(), "AutoRemove": st.booleans(),
                  "RestartPolicy": st.fixed_dictionaries(
                      {"Name": st.sampled_from(["no", "on-failure", "always"])})})})
RUNNABLE_EXEC = st.fixed_dictionaries(
    {"Cmd": st.sampled_from(COMMANDS)},
    optional={**_FLAGS, "Detach": st.booleans(), "Privileged": st.booleans(),
              "User": st.sampled_from(["", "root", "1000:1000", "nobody"]),
              "WorkingDir": st.sampled_from(["", "/", "/tmp", "/nonexistent"])})


@schema.hook.apply_to(operation_id="ContainerCreate")
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(body), RUNNABLE_CREATE)


@schema.hook.apply_to(operation_id="ContainerExec")  # type: ignore[no-redef]
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:  # noqa: F811
    return st.one_of(st.just(body), RUNNABLE_EXEC)


Base: Any = schema.as_state_machine()


class Workflow(Base):  # type: ignore[misc]
    lane: ClassVar[Lane]
    scenarios: ClassVar[int] = 0

    def setup(self) -> None:
        Workflow.scenarios += 1

    def step(self, input: StepInput) -> StepOutput | None:
        response = self.lane.send(input.case)
        if response is None:
            return None
        self.lane.judge(input.case, response)
        return StepOutput(response, input.case)


MAX_SUITES = 20


def test_stateful(lane: Lane) -> None:
    """The scenarios run as suites of the lane's seed, then seed + 1, ...:
    a suite ends early when the daemon answered the same inputs differently
    (ids, timing), which hypothesis calls flaky generation; the next suite
    goes on with the scenarios left."""
    Workflow.lane = lane
    Workflow.scenarios = 0
    suites = 0
    while Workflow.scenarios < settings.STATEFUL and suites < MAX_SUITES:
        suite = hypothesis.seed(settings.SEED + suites)(type("Suite", (Workflow,), {}))
        suites += 1
        try:
            suite.run(settings=hypothesis.settings(
                max_examples=settings.STATEFUL - Workflow.scenarios,
                stateful_step_count=settings.STEPS,
                database=None,
                deadline=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            ))
            break
        except hypothesis.errors.Flaky:
            lane.notes.append(f"stateful suite {suites} ended after {Workflow.scenarios} "
                              "scenarios: the daemon answered the same inputs differently")
    lane.notes.append(f"stateful: {Workflow.scenarios} scenarios in {suites} suite(s)")
