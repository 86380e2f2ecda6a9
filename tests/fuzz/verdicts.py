"""How the fuzz lane judges one answer.

- The daemon still runs and its log has no new traceback.
- An operation dockyard does not claim answers a clean 404 or 501 with a
  JSON `{"message": ...}` body, and nothing else.
- An operation dockyard claims is held to schemathesis's checks (CHECKS
  below: no 5xx, the status codes, content types, headers and bodies the
  description gives, invalid input refused), less the deviations that
  allowances.py lists and explains one by one.
"""

from __future__ import annotations

import json
import re

import schemathesis
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.core.failures import Failure, FailureGroup

from tests.fuzz import allowances, known
from tests.fuzz.findings import Finding, normalize

# Checks run on the answers of claimed operations.  schemathesis's others
# need what the Engine API has not: authentication (ignored_auth,
# object_level_authorization), resources addressed by Location headers
# (use_after_free, ensure_resource_availability), or valid data that always
# names an existing object (positive_data_acceptance: a valid but unknown id
# is a 404 here, as in dockerd).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
)

TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$", re.MULTILINE)
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.MULTILINE)


def operation_id(case: schemathesis.Case) -> str:
    op_id = case.operation.definition.raw.get("operationId")
    assert isinstance(op_id, str)
    return op_id


def reproduction(case: schemathesis.Case, response: schemathesis.Response | None) -> str:
    try:
        curl = case.as_curl_command()
    except Exception:  # noqa: BLE001 - the curl text is a courtesy
        curl = f"{case.method} {case.formatted_path}"
    out = curl.replace("curl ", "curl --unix-socket $SOCK ", 1)
    if response is not None:
        body = response.content[:1500].decode(errors="replace")
        out += f"\n-> {response.status_code} {body}"
    return out


def tracebacks(log_text: str) -> list[str]:
    """Each traceback in a stretch of the daemon's log, with the log line
    that introduced it."""
    out = []
    for m in TRACEBACK.finditer(log_text):
        start = log_text.rfind("\n", 0, max(m.start() - 1, 0)) + 1
        nxt = _LOG_LINE.search(log_text, m.end())
        end = nxt.start() if nxt else len(log_text)
        out.append(log_text[start:end].rstrip())
    return out


def last_line(tb: str) -> str:
    lines = [ln for ln in tb.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else tb


def judge(case: schemathesis.Case, response: schemathesis.Response, claimed: bool,
          new_log: str, transport_kwargs: dict[str, object]) -> list[Finding]:
    op_id = operation_id(case)
    label = case.operation.label
    found: list[Finding] = []
    status = response.status_code
    tbs = tracebacks(new_log)
    for tb in tbs:
        kind = "5xx" if status >= 500 else "traceback"
        found.append(Finding(op_id, label, kind, normalize(last_line(tb)), status,
                             f"{reproduction(case, response)}\n{tb}"))
    if not claimed:
        problem = "" if allowances.unimplemented_ok(case, response) else \
            unimplemented_problem(response)
        if problem:
            found.append(Finding(op_id, label, "not a clean 404/501", problem, status,
                                 reproduction(case, response)))
        return found
    for name in CHECKS:
        if name == "response_schema_conformance" and response.stream_cut_short:
            # a body cut at the deadline is only a stream's first part
            continue
        if name == "not_a_server_error" and tbs and status >= 500:
            continue  # already found, with its traceback
        try:
            case.validate_response(response, checks=[REGISTRY.get_one(name)],
                                   transport_kwargs=transport_kwargs)
        except FailureGroup as group:
            for failure in group.exceptions:
                if allowances.allowed(op_id, name, case, response, failure):
                    continue
                kind = "5xx" if name == "not_a_server_error" else name
                found.append(Finding(op_id, label, kind, failure_key(failure, response),
                                     status, f"{failure}\n{reproduction(case, response)}"))
    for f in found:
        f.known = known.why(f)
    return found


def failure_key(failure: Failure, response: schemathesis.Response) -> str:
    if isinstance(failure, Failure):
        first = failure.message.strip().splitlines()
        detail = next((ln for ln in first if ln.strip().startswith("Invalid component")), "")
        if not detail and response.status_code >= 500:
            detail = response.content[:200].decode(errors="replace")
        return normalize(f"{failure.title}: {detail}" if detail else failure.title)
    return normalize(str(failure))


def unimplemented_problem(response: schemathesis.Response) -> str:
    if response.status_code not in (404, 501):
        return f"answered {response.status_code}"
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return "no JSON message"
    return ""
