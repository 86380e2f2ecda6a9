"""Image references, parsed and normalised the way Docker does.

The grammar is distribution/reference's (name [":" tag] ["@" digest], an
optional registry domain before the first "/"), re-expressed here from its
documented EBNF.  Docker's normalisation rules on top of it:

* no domain, or a first component without "." / ":" that is not
  "localhost" and is lowercase  -> the component belongs to the path and the
  domain is docker.io;
* docker.io with a single-component path gets "library/";
* "index.docker.io" is an alias of docker.io;
* the "familiar" form shown to users strips "docker.io/" and "library/".

Error texts are Docker's exactly, because the CLI and users match on them
(`invalid reference format`, `... must be lowercase`).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_SHA256_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")

INVALID_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalised named reference: domain/path[:tag][@digest]."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The fully qualified repository name: docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")

    @property
    def familiar_name(self) -> str:
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
            path = path[len(OFFICIAL_REPO_PREFIX):]
        return path

    def familiar(self) -> str:
        """What Docker prints: busybox:latest, user/repo@sha256:..."""
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")

    def with_default_tag(self) -> Reference:
        """Docker's TagNameOnly: a bare name means :latest."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag)

    def repository(self) -> Reference:
        return Reference(self.domain, self.path)




def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse_canonical(s: str) -> tuple[str, str, str]:
    """Parse a fully qualified reference (no normalisation); Docker's Parse."""
    m = _REFERENCE_RE.match(s)
    if m is None:
        if not s:
            raise InvalidParameter("repository name must have at least one component")
        if _REFERENCE_RE.match(s.lower()):
            raise InvalidParameter("repository name must be lowercase")
        raise InvalidParameter(INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest:
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and not re.fullmatch(r"[a-f0-9]{64}", hexpart):
            raise InvalidParameter("invalid checksum digest format")
        if algo not in ("sha256", "sha384", "sha512"):
            raise InvalidParameter("unsupported digest algorithm")
    return name, tag, digest


def parse_normalized_named(s: str) -> Reference:
    """Docker's ParseNormalizedNamed: "busybox" -> docker.io/library/busybox."""
    if _IDENTIFIER_RE.match(s):
        raise InvalidParameter(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    tag_sep = remainder.find(":")
    remote = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote.lower() != remote:
        raise InvalidParameter(
            f"{INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    name, tag, digest = _parse_canonical(f"{domain}/{remainder}")
    return Reference(domain, name[len(domain) + 1:], tag, digest)


def parse_any(s: str) -> Reference | str:
    """Docker's ParseAnyReference: a digest/ID string or a named reference.

    Returns "sha256:<hex>" for an ID or digest, else a Reference.
    """
    if _IDENTIFIER_RE.match(s):
        return "sha256:" + s
    if _SHA256_DIGEST_RE.match(s):
        return s
    return parse_normalized_named(s)



def validate_tag(tag: str) -> None:
    if not _TAG_RE.match(tag):
        raise InvalidParameter(INVALID_FORMAT)


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Docker's FamiliarMatch: glob against the familiar string, then the name.

    Go's path.Match treats "/" as a separator that "*" does not cross;
    fnmatch does not, so translate per component.
    """
    return _path_match(pattern, ref.familiar()) or _path_match(pattern, ref.familiar_name)


def _path_match(pattern: str, name: str) -> bool:
    pparts, nparts = pattern.split("/"), name.split("/")
    if len(pparts) != len(nparts):
        return False
    return all(fnmatch.fnmatchcase(n, p) for p, n in zip(pparts, nparts))
