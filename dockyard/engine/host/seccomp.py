"""Which seccomp profile containers get by default (daemon `seccomp-profile`).

As dockerd: `builtin` (or unset) is Docker Engine's own default profile,
`unconfined` runs containers without a filter, anything else is the path of
a profile file, read once at start (a file that cannot be read or translated
stops the start, with dockerd's words).

Docker's profile is not shipped in this repository: `make setup`
(scripts/fetch-seccomp-profile.sh) takes it out of Debian's
golang-github-docker-docker-dev package into `dockyard/oci/profiles/` and
checks it against the checksum recorded there.  Where it is missing the
daemon says so at start and uses containers-common's profile instead, which
refuses less (an unprivileged user namespace, for one); with neither, it
refuses to start rather than run containers unfiltered unasked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dockyard.oci
from dockyard.errors import InvalidParameter
from dockyard.oci.caps import ALL_CAPS
from dockyard.oci.seccomp import build_seccomp
from dockyard.oci.security import SECCOMP_BUILTIN, SECCOMP_UNCONFINED

log = logging.getLogger("dockyard.host")

PROFILE_DIR = Path(dockyard.oci.__file__).parent / "profiles"
DOCKER_PROFILE = PROFILE_DIR / "docker-default.json"
DOCKER_PROFILE_SUM = PROFILE_DIR / "docker-default.json.sha256"
# the same file, where Debian's golang-github-docker-docker-dev is installed
DEBIAN_DOCKER_PROFILE = Path(
    "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json")
CONTAINERS_COMMON_PROFILE = Path("/usr/share/containers/seccomp.json")


@dataclass(frozen=True)
class SeccompDefault:
    """The daemon's choice: `name` is what `docker info` shows (builtin,
    unconfined or a path), `profile` what a container without `seccomp=`
    gets (None: no filter), `builtin` what `seccomp=builtin` asks for."""
    name: str
    profile: dict[str, Any] | None
    builtin: dict[str, Any] | None
    origin: str
    warnings: tuple[str, ...] = field(default=())


def recorded_sha256() -> str:
    try:
        return DOCKER_PROFILE_SUM.read_text().split()[0]
    except (OSError, IndexError):
        return ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_profile(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a decoding error
    # a profile the translation refuses would fail every container: fail now
    build_seccomp(data, ALL_CAPS)
    return data


def docker_profile() -> tuple[dict[str, Any] | None, str, list[str]]:
    """Docker's default profile, where it came from, and what is wrong."""
    problems: list[str] = []
    want = recorded_sha256()
    for path in (DOCKER_PROFILE, DEBIAN_DOCKER_PROFILE):
        if not path.exists():
            continue
        try:
            got = _sha256(path)
            data = _read_profile(path)
        except (OSError, ValueError, InvalidParameter) as e:
            problems.append(f"{path}: {getattr(e, 'message', e)}")
            continue
        if got != want:
            problems.append(f"{path} has sha256 {got}, not the recorded {want}")
            origin = f"Docker's default profile at {path} (sha256 {got}, modified)"
        else:
            origin = f"Docker's default profile at {path} (sha256 verified)"
        return data, origin, problems
    if not problems:
        problems.append(f"Docker's default seccomp profile is missing ({DOCKER_PROFILE}; "
                        "make setup fetches it)")
    return None, "", problems


def select_seccomp(setting: str | None, kernel_has_seccomp: bool = True) -> SeccompDefault:
    """The daemon's default profile for `setting`; InvalidParameter when a
    configured profile cannot be used (the daemon does not start)."""
    builtin, origin, problems = docker_profile()
    warnings = list(problems)
    if builtin is None:
        try:
            builtin = _read_profile(CONTAINERS_COMMON_PROFILE)
            origin = (f"containers-common's profile at {CONTAINERS_COMMON_PROFILE}, "
                      "in place of Docker's, which is missing")
        except (OSError, ValueError, InvalidParameter):
            builtin = None
    name = setting or SECCOMP_BUILTIN
    if name == SECCOMP_UNCONFINED:
        return SeccompDefault(name, None, builtin, "unconfined (daemon option)",
                              tuple(warnings))
    if name != SECCOMP_BUILTIN:
        path = Path(name)
        try:
            data = _read_profile(path)
        except OSError as e:
            raise InvalidParameter(
                f"opening seccomp profile ({name}) failed: {e.strerror or e}") from None
        except (ValueError, InvalidParameter) as e:
            raise InvalidParameter(f"decoding seccomp profile ({name}) failed: "
                                   f"{getattr(e, 'message', e)}") from None
        return SeccompDefault(name, data, builtin, f"file {path} (daemon option)",
                              tuple(warnings))
    if builtin is None and kernel_has_seccomp:
        raise InvalidParameter(
            "no default seccomp profile: " + "; ".join(warnings)
            + f"; neither is containers-common's at {CONTAINERS_COMMON_PROFILE}. Run make "
            "setup, or set seccomp-profile to a profile's path or to unconfined")
    return SeccompDefault(name, builtin, builtin, origin, tuple(warnings))
