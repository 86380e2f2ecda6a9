"""The fuzz lane's daemon and its one way of sending a request.

Every generated request goes through `Lane.send`: over the daemon's unix
socket, bounded in time (transport.py), counted per operation; every answer
through `Lane.judge` (verdicts.py), which records what it finds.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests
import schemathesis
from schemathesis.checks import load_all_checks

from dockyard.engine.networks.store import HostNames
from tests.fuzz import known, seeds, spec, verdicts
from tests.fuzz.findings import Finding, Findings
from tests.fuzz.transport import BoundedUnixAdapter, Ledger, Timeout, make_session
from tests.integration.conftest import (
    Daemon,
    container_cgroups,
    host_network_objects,
    leftovers,
    remove_host_networking,
    start_daemon,
)

# Operations whose answer may be a stream that only the client ends, or a
# large archive: their bodies are read for STREAM_SECONDS, then cut.
STREAMING = frozenset({
    "SystemEvents", "ContainerLogs", "ContainerStats", "ContainerAttach",
    "ContainerAttachWebsocket", "ExecStart", "ContainerWait", "ContainerExport",
    "ImageGet", "ImageGetAll", "ContainerArchive", "ImageCreate", "ImageLoad", "ImagePush",
})
# Operations that may rightly give no answer head for as long as the lane
# waits: a wait for a running container's exit, a stop or restart within
# a long grace period, an attach or exec start on a running process.  Any
# other operation that gives no answer in REQUEST_SECONDS has hung.
MAY_BLOCK = frozenset({
    "ContainerWait", "ContainerStop", "ContainerRestart", "ContainerAttach",
    "ContainerAttachWebsocket", "ExecStart", "SystemEvents", "ContainerLogs",
    "ContainerStats",
})
STREAM_SECONDS = 1.5
REQUEST_SECONDS = 20.0


@dataclass
class OpStats:
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    # distinct error messages by status, a few of each, for the report
    messages: dict[str, list[str]] = field(default_factory=dict)

    def note(self, response: schemathesis.Response) -> None:
        status = str(response.status_code)
        self.statuses[status] += 1
        if response.status_code >= 400:
            seen = self.messages.setdefault(status, [])
            text = response.content[:200].decode(errors="replace")
            if len(seen) < 8 and text not in seen:
                seen.append(text)


@dataclass
class Lane:
    daemon: Daemon
    session: requests.Session
    adapter: BoundedUnixAdapter
    ledger: Ledger
    findings: Findings = field(default_factory=Findings)
    stats: dict[str, OpStats] = field(default_factory=lambda: defaultdict(OpStats))
    started: float = field(default_factory=time.monotonic)
    log_offset: int = 0
    cgroups_before: set[Path] = field(default_factory=set)
    # the lane's own requests (set-up and clean-up), not counted as fuzzing
    own: requests.Session = field(default_factory=requests.Session)
    own_adapter: BoundedUnixAdapter | None = None
    busybox_tar: bytes = b""
    # seeds the daemon could not put back (a finding); left alone after
    broken_seeds: set[str] = field(default_factory=set)
    broken_ids: set[str] = field(default_factory=set)
    # what the run wants said in the summary besides findings
    notes: list[str] = field(default_factory=list)
    # every container id seen in the data root, for the cgroup check
    container_ids: set[str] = field(default_factory=set)

    def note_containers(self) -> None:
        with contextlib.suppress(OSError):
            self.container_ids.update(p.name for p in
                                      (self.daemon.data_root / "containers").iterdir())

    def own_call(self, method: str, path: str, seconds: float = 60.0,
                 data: bytes | None = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        """A request of the lane's own, not counted as fuzzing."""
        assert self.own_adapter is not None
        self.own_adapter.deadline = seconds
        return self.own.request(method, f"{spec.BASE_URL}{path}", data=data, headers=headers)

    def transport_kwargs(self) -> dict[str, object]:
        return {"session": self.session, "base_url": spec.BASE_URL}

    def send(self, case: schemathesis.Case) -> schemathesis.Response | None:
        """Send one case; None when it got no answer in time (recorded)."""
        op_id = verdicts.operation_id(case)
        self.adapter.deadline = STREAM_SECONDS if op_id in STREAMING else REQUEST_SECONDS
        st = self.stats[op_id]
        st.requests += 1
        try:
            resp = case.call(**self.transport_kwargs())
        except Timeout as e:
            st.statuses["no answer"] += 1
            if op_id not in MAY_BLOCK:
                self.record(Finding(op_id, case.operation.label, "hung", str(e), None,
                                    verdicts.reproduction(case, None)))
            self.look_at_daemon(case, None)
            return None
        st.note(resp)
        return resp

    def judge(self, case: schemathesis.Case, response: schemathesis.Response) -> None:
        new_log = self.look_at_daemon(case, response)
        for f in verdicts.judge(case, response, verdicts.operation_id(case) in spec.claimed(),
                                new_log, self.transport_kwargs()):
            self.record(f)

    def look_at_daemon(self, case: schemathesis.Case | None,
                       response: schemathesis.Response | None) -> str:
        """The log the daemon wrote since the last look; a finding when it
        is no longer running."""
        with open(self.daemon.log_path, "rb") as f:
            f.seek(self.log_offset)
            new = f.read()
        self.log_offset += len(new)
        text = new.decode(errors="replace")
        if self.daemon.proc.poll() is not None:
            op_id = verdicts.operation_id(case) if case is not None else "-"
            label = case.operation.label if case is not None else "-"
            repro = verdicts.reproduction(case, response) if case is not None else ""
            self.record(Finding(op_id, label, "daemon exited", f"exit {self.daemon.proc.returncode}",
                                None, f"{repro}\n{text[-4000:]}"))
            raise RuntimeError("the daemon exited; the lane cannot go on")
        if case is None:
            for tb in verdicts.tracebacks(text):
                self.record(Finding("-", "-", "traceback", verdicts.last_line(tb), None, tb))
        elif response is None:
            for tb in verdicts.tracebacks(text):
                self.record(Finding(verdicts.operation_id(case), case.operation.label,
                                    "traceback", verdicts.last_line(tb), None,
                                    f"{verdicts.reproduction(case, None)}\n{tb}"))
        return text

    def record(self, finding: Finding) -> None:
        finding.known = finding.known or known.why(finding)
        self.findings.add(finding)


_LANE: Lane | None = None


def current() -> Lane | None:
    return _LANE


def start_lane(base: Path) -> Lane:
    global _LANE
    load_all_checks()
    before = container_cgroups()
    d = start_daemon(base)
    ledger = Ledger()
    session, adapter = make_session(d.socket, ledger)
    own, own_adapter = make_session(d.socket, Ledger())
    _LANE = Lane(d, session, adapter, ledger, cgroups_before=before, own=own,
                 own_adapter=own_adapter)
    seeds.keep(_LANE)
    return _LANE


def finish_lane(lane: Lane) -> list[str]:
    """Remove every container the lane made, stop the daemon, remove its
    roots; what of its containers was left on the host."""
    problems: list[str] = []
    d = lane.daemon
    try:
        if d.proc.poll() is None:
            lane.note_containers()
            problems += remove_all_containers(lane)
            problems += [f"left behind: {what}" for what in leftovers(d)]
            lane.look_at_daemon(None, None)
    finally:
        lane.session.close()
        lane.own.close()
        if d.proc.poll() is None:
            d.proc.terminate()
            try:
                d.proc.wait(15)
            except subprocess.TimeoutExpired:
                problems.append("the daemon did not stop on SIGTERM in 15 s")
                d.proc.kill()
                d.proc.wait()
        # its bridges, firewall chains, name server and netns mount: the
        # host is shared, and this daemon's data root goes now
        remove_host_networking(d)
        for m in reversed(_mounts_under(d.data_root.parent, d.exec_root)):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(d.exec_root, ignore_errors=True)
        shutil.rmtree(d.data_root.parent, ignore_errors=True)
    names = HostNames.for_data_root(d.data_root)
    problems += [f"left on the host: {o}" for o in sorted(host_network_objects())
                 if o.split(" ", 1)[1].startswith((names.chain_prefix + "-",
                                                   names.default_bridge))]
    problems += [f"cgroup left behind: {cg}"
                 for cg in sorted(container_cgroups() - lane.cgroups_before)
                 if cg.name in lane.container_ids]
    return problems


def remove_all_containers(lane: Lane) -> list[str]:
    """`docker rm -f` of every container, through the API."""
    ids = [c["Id"] for c in lane.own_call("GET", "/containers/json?all=1").json()]
    problems = []
    for cid in ids:
        try:
            lane.own_call("DELETE", f"/containers/{cid}?force=1&v=1", seconds=30)
        except (requests.RequestException, Timeout) as e:
            problems.append(f"rm -f {cid}: {e}")
    deadline = time.monotonic() + 30
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [c["Id"] for c in lane.own_call("GET", "/containers/json?all=1").json()]
        if not left:
            return problems
        time.sleep(0.2)
    return problems + [f"container not removed: {cid}" for cid in left]


def _mounts_under(*roots: Path) -> list[str]:
    prefixes = tuple(str(r) for r in roots)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith(prefixes):
            out.append(target)
    return sorted(out)
