"""The lane's account of a run: requests sent, operations covered, what each
operation answered, the operations dockyard does not implement, and every
finding.  Printed at the end of the run and written as JSON
(DOCKYARD_FUZZ_REPORT, default fuzz-report.json in the working directory)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.fuzz import settings, spec
from tests.fuzz.findings import Finding
from tests.fuzz.lane import OpStats, current

cleanup_problems: list[str] = []
cleanup_known: list[str] = []


def describe(findings: list[Finding]) -> str:
    parts = []
    for f in findings:
        parts.append(f"--- {f.headline()}\n{f.detail}")
    return "\n".join(parts)


def _hist(st: OpStats | None) -> str:
    if st is None or not st.requests:
        return "not run"
    return " ".join(f"{k}:{v}" for k, v in sorted(st.statuses.items()))


def budget_line() -> str:
    return (f"fuzz lane: seed {settings.SEED} "
            f"({'derandomized' if settings.DETERMINISTIC else 'random'}), "
            f"{settings.EXAMPLES} examples per operation, {settings.STATEFUL} stateful "
            f"scenarios of up to {settings.STEPS} steps")


def summary() -> list[str]:
    lane = current()
    if lane is None:
        return []
    ops = spec.operations(spec.raw_spec())
    covered = [op for op in ops if lane.stats.get(op[2], OpStats()).requests]
    claimed = spec.claimed()
    total = len(lane.ledger.exchanges)
    seconds = time.monotonic() - lane.started
    lines = [
        "",
        "== fuzz lane ==",
        budget_line(),
        (f"{total} requests in {seconds:.0f} s; {len(covered)} of {len(ops)} documented "
         f"operations covered; {len(claimed)} claimed by dockyard"),
        "claimed operations, requests and answers:",
    ]
    for method, path, op_id in sorted(ops, key=lambda o: (o[1], o[0])):
        if op_id in claimed:
            st = lane.stats.get(op_id)
            n = st.requests if st else 0
            lines.append(f"  {method:6} {path:32} {n:5}  {_hist(st)}")
    lines.append(f"not implemented ({len(spec.unclaimed())} operations; each must answer a "
                 "clean 404 or 501):")
    for method, path, op_id in spec.unclaimed():
        st = lane.stats.get(op_id)
        lines.append(f"  {method:6} {path:32} {op_id:26} {_hist(st)}")
    not_done = {op_id: st.messages.get("501", []) for op_id, st in lane.stats.items()
                if st.messages.get("501") and op_id in claimed}
    if not_done:
        lines.append("answered 501 (a part this engine does not implement):")
        for op_id, msgs in sorted(not_done.items()):
            for m in msgs[:3]:
                lines.append(f"  {op_id}: {m.strip()}")
    items = list(lane.findings.items.values())
    unknown = [f for f in items if not f.known]
    lines.append(f"findings: {len(unknown)} new, {len(items) - len(unknown)} known")
    for f in items:
        lines.append(f"  {f.headline()}")
    for note in lane.notes:
        lines.append(f"note: {note}")
    for p in cleanup_problems:
        lines.append(f"cleanup: {p}" + (" [known: a wedged seed]" if p in cleanup_known else ""))
    out = Path(os.environ.get("DOCKYARD_FUZZ_REPORT") or "fuzz-report.json")
    lane.findings.write_json(out, {
        "seed": settings.SEED, "deterministic": settings.DETERMINISTIC,
        "examples": settings.EXAMPLES, "stateful": settings.STATEFUL, "steps": settings.STEPS,
        "requests": total, "seconds": round(seconds, 1),
        "operations": len(ops), "covered": len(covered), "claimed": sorted(claimed),
        "not_implemented": [list(op) for op in spec.unclaimed()],
        "answers": {op_id: dict(st.statuses) for op_id, st in lane.stats.items()},
        "messages": {op_id: st.messages for op_id, st in lane.stats.items() if st.messages},
        "cleanup": cleanup_problems,
        "notes": lane.notes,
    })
    lines.append(f"report: {out}")
    return lines
