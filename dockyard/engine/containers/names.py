"""Container names: validation and Docker-style generated names."""

from __future__ import annotations

import re
import secrets
from collections.abc import Set as AbstractSet

from dockyard.errors import InvalidParameter

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Our own word lists: a mood and a shipwright's trade, as in "steady_caulker".
ADJECTIVES = (
    "agile", "amber", "ardent", "bold", "brave", "bright", "brisk", "calm", "candid", "clever",
    "cosmic", "crisp", "daring", "deft", "eager", "earnest", "fearless", "fervent", "festive",
    "fond", "gallant", "gentle", "glad", "golden", "hardy", "hearty", "honest", "humble",
    "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry", "mighty", "modest", "nimble",
    "noble", "patient", "placid", "plucky", "polite", "proud", "quick", "quiet", "rapid",
    "ready", "robust", "rugged", "serene", "sharp", "silent", "sincere", "smooth", "snug",
    "solid", "spry", "stable", "steady", "stoic", "sturdy", "sunny", "swift", "tidy", "tough",
    "tranquil", "trusty", "upbeat", "valiant", "vivid", "warm", "wise", "witty", "zealous",
)
NOUNS = (
    "anchor", "barge", "beacon", "bollard", "bosun", "bowsprit", "buoy", "cable", "capstan",
    "captain", "cargo", "caulker", "chandler", "compass", "coxswain", "crane", "cutter", "davit",
    "deckhand", "dinghy", "docker", "dredger", "ferry", "frigate", "galley", "gantry", "harbor",
    "hawser", "helm", "hull", "jetty", "keel", "ketch", "lantern", "lighter", "lock", "mariner",
    "mast", "mooring", "navigator", "oar", "pier", "pilot", "piling", "porter", "quay",
    "rigger", "rudder", "sail", "schooner", "shipwright", "skiff", "sloop", "spar", "stevedore",
    "tender", "tide", "tiller", "trawler", "tug", "wharf", "winch", "yard", "yawl",
)


def validate_name(name: str) -> str:
    """Return the name without its leading slash, or raise Docker's error."""
    if not VALID_NAME.match(name):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def generate_name(taken: AbstractSet[str]) -> str:
    for attempt in range(50):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
        if attempt >= 10:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return f"{secrets.choice(ADJECTIVES)}_{secrets.token_hex(4)}"
