"""What the fuzz lane found, one entry per distinct failure.

A fuzzed operation goes on through its whole budget after a failure; each
distinct failure (operation, kind, key) is kept once with its first
reproduction and a count, and the test of that operation fails at its end
with all of them.  Known failures are never hidden: an entry in
known.py only marks a finding as known (the area another branch is fixing),
it is still reported and still fails the run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

_VOLATILE = re.compile(r"[0-9a-f]{12,64}|\b\d+\b|'[^']*'|\"[^\"]*\"")


def normalize(text: str) -> str:
    """A message with ids, numbers and quoted values taken out, for keys."""
    return _VOLATILE.sub("_", text.strip())[:200]


@dataclass
class Finding:
    op_id: str
    label: str
    kind: str          # "5xx", "traceback", "daemon exited", "hung", or a check's name
    key: str
    status: int | None
    detail: str        # the first reproduction: request, answer, traceback
    count: int = 1
    known: str = ""    # why it is known, when it is

    def headline(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        known = f" [known: {self.known}]" if self.known else ""
        return f"{self.label}: {self.kind}{status}: {self.key} (x{self.count}){known}"


@dataclass
class Findings:
    items: dict[tuple[str, str, str], Finding] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        k = (finding.op_id, finding.kind, finding.key)
        if k in self.items:
            self.items[k].count += 1
        else:
            self.items[k] = finding

    def __len__(self) -> int:
        return len(self.items)

    def since(self, mark: int) -> list[Finding]:
        return list(self.items.values())[mark:]

    def write_json(self, path: Path, extra: dict[str, object]) -> None:
        data = {**extra, "findings": [asdict(f) for f in self.items.values()]}
        path.write_text(json.dumps(data, indent=1) + "\n")
