"""What a Docker Engine with its default networking leaves on the host once
stopped (docker0, its chains and jumps, FORWARD's policy), and taking it out
again: shared by the tests and the benchmarks that start one."""

from __future__ import annotations

import subprocess


def forward_policy() -> str:
    """FORWARD's policy now (a Docker Engine sets it to DROP)."""
    first = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True,
                           text=True).stdout.split("\n")[0].split()
    return first[2] if len(first) > 2 else "ACCEPT"


def remove_docker_networking(policy: str) -> None:
    """What a stopped dockerd leaves on the host: docker0, its chains and jumps."""
    subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True,
                               text=True).stdout.splitlines()
        for rule in rules:
            parts = rule.split()
            if rule.startswith("-A ") and not parts[1].startswith("DOCKER") and (
                    "docker0" in rule or any(p.startswith("DOCKER") and
                                             not p.startswith("DOCKYARD") for p in parts)):
                subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
        for rule in rules:
            if rule.startswith("-N DOCKER") and not rule.startswith("-N DOCKYARD"):
                chain = rule.split()[1]
                subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    subprocess.run(["iptables", "-P", "FORWARD", policy], capture_output=True)
