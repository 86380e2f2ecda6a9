"""The engine's iptables rules as `iptables-restore --noflush` input
(dockyard.network.firewall.render, pure) and the names of its chains."""

from __future__ import annotations

import re

import pytest

from dockyard.network.firewall import DEFAULT_PREFIX, BridgeRules, Chains, PortForward, render

A = BridgeRules("br-a", "10.1.0.0/16")
B = BridgeRules("br-b", "10.2.0.0/16")
WEB = PortForward("tcp", "", 8080, "10.1.0.2", 80, "br-a")
DNS = PortForward("udp", "127.0.0.1", 5353, "10.1.0.3", 53, "br-a")

FWD, ISO1, ISO2 = "DOCKYARD-FORWARD", "DOCKYARD-ISOLATION-1", "DOCKYARD-ISOLATION-2"
DNAT, POST = "DOCKYARD-DNAT", "DOCKYARD-POSTROUTING"


def tables(text: str) -> dict[str, list[str]]:
    """{table: its lines between `*table` and COMMIT}, checking the restore
    file's shape on the way: each table opens with its chain declarations and
    ends with COMMIT, nothing stands outside a table, the file ends with a
    newline."""
    assert text.endswith("COMMIT\n")
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            assert current is None, "a table opened inside another"
            current = out.setdefault(line[1:], [])
        elif line == "COMMIT":
            assert current is not None
            current = None
        else:
            assert current is not None, f"a line outside any table: {line}"
            current.append(line)
    assert current is None, "a table without COMMIT"
    for name, lines in out.items():
        decls = [i for i, line in enumerate(lines) if line.startswith(":")]
        assert decls == list(range(len(decls))), f"{name}: chain declarations not first"
        assert all(re.fullmatch(r":\S+ - \[0:0\]", lines[i]) for i in decls)
        assert all(line.startswith("-A ") for line in lines[len(decls):])
    return out


def rules(text: str, table: str, chain: str | None = None) -> list[str]:
    lines = [x for x in tables(text)[table] if x.startswith("-A ")]
    return [x for x in lines if chain is None or x.split()[1] == chain]


def interfaces(rule: str) -> set[str]:
    """The interfaces a rule names with -i / -o (negated or not)."""
    words = rule.split()
    return {words[i + 1] for i, w in enumerate(words) if w in ("-i", "-o")}


# ---------------------------------------------------------------- chains
def test_chain_names():
    c = Chains()
    assert c.prefix == DEFAULT_PREFIX == "DOCKYARD"
    assert (c.forward, c.isolation1, c.isolation2, c.dnat, c.postrouting) == (
        FWD, ISO1, ISO2, DNAT, POST)


def test_chain_names_of_another_engine():
    c = Chains("DOCKYARD-1a2b3c")
    assert c.forward == "DOCKYARD-1a2b3c-FORWARD"
    assert c.isolation1 == "DOCKYARD-1a2b3c-ISOLATION-1"
    assert c.isolation2 == "DOCKYARD-1a2b3c-ISOLATION-2"
    assert c.dnat == "DOCKYARD-1a2b3c-DNAT"
    assert c.postrouting == "DOCKYARD-1a2b3c-POSTROUTING"
    assert Chains("X") != Chains() and Chains() == Chains(DEFAULT_PREFIX)


def test_jumps_from_the_built_in_chains():
    assert Chains("P").jumps() == (
        ("filter", "FORWARD", ("-j", "P-FORWARD")),
        ("nat", "PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL", "-j", "P-DNAT")),
        ("nat", "OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL", "-j", "P-DNAT")),
        ("nat", "POSTROUTING", ("-j", "P-POSTROUTING")),
    )


def test_chain_names_fit_iptables():
    # iptables refuses chain names longer than 28 characters
    c = Chains(f"{DEFAULT_PREFIX}-abcdef")
    assert max(len(n) for n in (c.forward, c.isolation1, c.isolation2, c.dnat,
                                c.postrouting)) <= 28


# ---------------------------------------------------------------- structure
def test_empty_state():
    text = render([], [])
    assert text == (
        "*filter\n"
        f":{FWD} - [0:0]\n:{ISO1} - [0:0]\n:{ISO2} - [0:0]\n"
        f"-A {FWD} -j {ISO1}\n"
        f"-A {ISO1} -j RETURN\n"
        f"-A {ISO2} -j RETURN\n"
        "COMMIT\n"
        "*nat\n"
        f":{DNAT} - [0:0]\n:{POST} - [0:0]\n"
        "COMMIT\n")


def test_every_table_declares_every_chain_it_uses_and_nothing_else():
    text = render([A, B, BridgeRules("br-c", "10.3.0.0/16", internal=True)], [WEB, DNS])
    t = tables(text)
    assert list(t) == ["filter", "nat"]
    assert t["filter"][:3] == [f":{FWD} - [0:0]", f":{ISO1} - [0:0]", f":{ISO2} - [0:0]"]
    assert t["nat"][:2] == [f":{DNAT} - [0:0]", f":{POST} - [0:0]"]
    for table, lines in t.items():
        declared = {line[1:].split()[0] for line in lines if line.startswith(":")}
        used = {line.split()[1] for line in lines if line.startswith("-A ")}
        assert used == declared, table
        # the built-in chains are only jumped into, never rewritten here
        assert not any(x.split()[1] in ("FORWARD", "PREROUTING", "OUTPUT", "POSTROUTING",
                                        "INPUT") for x in lines if x.startswith("-A "))


def test_the_forward_chain_starts_with_isolation_and_the_isolation_chains_end_in_return():
    text = render([A, B], [WEB])
    assert rules(text, "filter", FWD)[0] == f"-A {FWD} -j {ISO1}"
    assert rules(text, "filter", ISO1)[-1] == f"-A {ISO1} -j RETURN"
    assert rules(text, "filter", ISO2)[-1] == f"-A {ISO2} -j RETURN"


def test_rules_of_one_bridge_never_mention_another_outside_isolation():
    bridges = [A, B, BridgeRules("br-c", "10.3.0.0/16", internal=True, icc=False),
               BridgeRules("br-d", "10.4.0.0/16", masquerade=False)]
    forwards = [WEB, DNS, PortForward("tcp", "", 9000, "10.4.0.2", 9000, "br-d"),
                PortForward("tcp", "", 9001, "10.3.0.2", 9001, "br-c")]
    text = render(bridges, forwards)
    for table in ("filter", "nat"):
        for rule in rules(text, table):
            if rule.split()[1] in (ISO1, ISO2):
                continue
            assert len(interfaces(rule)) <= 1, rule


def test_chains_of_another_engine_are_used_throughout():
    c = Chains("DOCKYARD-abc123")
    text = render([A, B], [WEB, DNS], c)
    names = {c.forward, c.isolation1, c.isolation2, c.dnat, c.postrouting}
    for table in ("filter", "nat"):
        for rule in rules(text, table):
            words = rule.split()
            assert words[1] in names
            if "-j" in words:
                target = words[words.index("-j") + 1]
                assert target in names | {"ACCEPT", "DROP", "RETURN", "DNAT", "MASQUERADE"}
    # no chain of the default engine is touched
    assert not re.search(r"DOCKYARD-(FORWARD|ISOLATION|DNAT|POSTROUTING)", text)


def test_render_is_deterministic_and_takes_any_iterable_of_forwards():
    first = render([A, B], [WEB, DNS])
    assert render([A, B], iter([WEB, DNS])) == first
    assert render([A, B], (f for f in [WEB, DNS])) == first


# ---------------------------------------------------------------- isolation
def test_isolation_between_bridges():
    text = render([A, B], [])
    assert rules(text, "filter", ISO1) == [
        f"-A {ISO1} -i br-a ! -o br-a -j {ISO2}",
        f"-A {ISO1} -i br-b ! -o br-b -j {ISO2}",
        f"-A {ISO1} -j RETURN",
    ]
    assert rules(text, "filter", ISO2) == [
        f"-A {ISO2} -o br-a -j DROP",
        f"-A {ISO2} -o br-b -j DROP",
        f"-A {ISO2} -j RETURN",
    ]


# ---------------------------------------------------------------- one bridge
def test_a_bridge_forward_rules_in_order():
    text = render([A], [])
    assert rules(text, "filter", FWD) == [
        f"-A {FWD} -j {ISO1}",
        # replies to what the containers started
        f"-A {FWD} -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        # containers of one network talk to each other
        f"-A {FWD} -i br-a -o br-a -j ACCEPT",
        # and out of it
        f"-A {FWD} -i br-a ! -o br-a -j ACCEPT",
        # nothing else gets in, whatever the host's FORWARD policy
        f"-A {FWD} -o br-a -j DROP",
    ]


def test_masquerade_of_what_leaves_the_subnet():
    text = render([A, B], [])
    post = rules(text, "nat", POST)
    assert f"-A {POST} -s 10.1.0.0/16 ! -o br-a -j MASQUERADE" in post
    assert f"-A {POST} -s 10.2.0.0/16 ! -o br-b -j MASQUERADE" in post
    # host-originated traffic into a bridge (127.0.0.1 DNATed) is masqueraded
    assert f"-A {POST} -o br-a -m addrtype --src-type LOCAL -j MASQUERADE" in post
    assert f"-A {POST} -o br-b -m addrtype --src-type LOCAL -j MASQUERADE" in post


def test_masquerade_off():
    text = render([BridgeRules("br-a", "10.1.0.0/16", masquerade=False)], [WEB])
    post = rules(text, "nat", POST)
    assert not any("-s 10.1.0.0/16" in r for r in post)
    # published ports still work, hairpin included
    assert f"-A {DNAT} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80" in \
        rules(text, "nat")
    assert (f"-A {POST} -s 10.1.0.2/32 -d 10.1.0.2/32 -p tcp -m tcp --dport 80 "
            "-j MASQUERADE") in post


def test_icc_off():
    text = render([BridgeRules("br-a", "10.1.0.0/16", icc=False)], [])
    fwd = rules(text, "filter", FWD)
    assert f"-A {FWD} -i br-a -o br-a -j DROP" in fwd
    assert f"-A {FWD} -i br-a -o br-a -j ACCEPT" not in fwd
    # the containers still reach the outside
    assert f"-A {FWD} -i br-a ! -o br-a -j ACCEPT" in fwd


def test_internal_network():
    c = BridgeRules("br-c", "10.3.0.0/16", internal=True)
    text = render([c], [PortForward("tcp", "", 9001, "10.3.0.2", 80, "br-c")])
    fwd = rules(text, "filter", FWD)
    assert fwd == [
        f"-A {FWD} -j {ISO1}",
        f"-A {FWD} -i br-c ! -o br-c -j DROP",
        f"-A {FWD} -o br-c ! -i br-c -j DROP",
        f"-A {FWD} -o br-c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A {FWD} -i br-c -o br-c -j ACCEPT",
        f"-A {FWD} -o br-c -j DROP",
    ]
    # no route out: no masquerade, no way in: no published port
    nat = rules(text, "nat")
    assert not any("-s 10.3.0.0/16" in r for r in nat)
    assert rules(text, "nat", DNAT) == []
    assert not any("10.3.0.2" in r for r in nat)


def test_internal_network_with_icc_off():
    text = render([BridgeRules("br-c", "10.3.0.0/16", internal=True, icc=False)], [])
    fwd = rules(text, "filter", FWD)
    assert f"-A {FWD} -i br-c -o br-c -j DROP" in fwd
    assert not any(r.endswith("-j ACCEPT") and "conntrack" not in r for r in fwd)


def test_internal_network_drops_come_before_its_accepts():
    text = render([BridgeRules("br-c", "10.3.0.0/16", internal=True)], [])
    fwd = rules(text, "filter", FWD)
    drops = [i for i, r in enumerate(fwd) if "! -o br-c -j DROP" in r or "! -i br-c -j DROP" in r]
    accepts = [i for i, r in enumerate(fwd) if r.endswith("-j ACCEPT")]
    assert drops and accepts and max(drops) < min(accepts)


# ---------------------------------------------------------------- published ports
def test_published_port_tcp_on_every_address():
    text = render([A], [WEB])
    assert rules(text, "nat", DNAT) == [
        f"-A {DNAT} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80"]
    fwd = rules(text, "filter", FWD)
    accept = f"-A {FWD} -d 10.1.0.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT"
    assert accept in fwd
    # before the bridge's final DROP
    assert fwd.index(accept) < fwd.index(f"-A {FWD} -o br-a -j DROP")


def test_published_port_udp_on_one_host_address():
    text = render([A], [DNS])
    assert rules(text, "nat", DNAT) == [
        (f"-A {DNAT} -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT "
         "--to-destination 10.1.0.3:53")]
    assert (f"-A {FWD} -d 10.1.0.3/32 ! -i br-a -o br-a -p udp -m udp --dport 53 -j ACCEPT"
            in rules(text, "filter", FWD))
    assert not any("tcp" in r for r in rules(text, "nat") + rules(text, "filter"))


def test_hairpin_masquerade():
    # a container reaching its own published port comes back to itself
    text = render([A], [WEB, DNS])
    post = rules(text, "nat", POST)
    assert (f"-A {POST} -s 10.1.0.2/32 -d 10.1.0.2/32 -p tcp -m tcp --dport 80 "
            "-j MASQUERADE") in post
    assert (f"-A {POST} -s 10.1.0.3/32 -d 10.1.0.3/32 -p udp -m udp --dport 53 "
            "-j MASQUERADE") in post


def test_one_container_port_on_several_host_ports():
    forwards = [PortForward("tcp", "", 8080, "10.1.0.2", 80, "br-a"),
                PortForward("tcp", "192.0.2.10", 8081, "10.1.0.2", 80, "br-a")]
    text = render([A], forwards)
    assert rules(text, "nat", DNAT) == [
        f"-A {DNAT} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80",
        (f"-A {DNAT} -d 192.0.2.10/32 -p tcp -m tcp --dport 8081 -j DNAT "
         "--to-destination 10.1.0.2:80"),
    ]


def test_published_ports_go_to_their_own_bridge():
    forwards = [WEB, PortForward("tcp", "", 9090, "10.2.0.5", 90, "br-b")]
    text = render([A, B], forwards)
    fwd = rules(text, "filter", FWD)
    b_accept = f"-A {FWD} -d 10.2.0.5/32 ! -i br-b -o br-b -p tcp -m tcp --dport 90 -j ACCEPT"
    assert b_accept in fwd
    # inside br-b's block: after its RELATED rule, before its DROP
    assert fwd.index(f"-A {FWD} -o br-b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT") \
        < fwd.index(b_accept) < fwd.index(f"-A {FWD} -o br-b -j DROP")
    # and after all of br-a's
    assert fwd.index(f"-A {FWD} -o br-a -j DROP") < fwd.index(b_accept)
    assert not any("10.2.0.5" in r and "br-a" in r for r in fwd)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_protocol_appears_as_match_and_protocol(proto):
    text = render([A], [PortForward(proto, "", 1000, "10.1.0.9", 2000, "br-a")])
    for r in rules(text, "nat") + rules(text, "filter"):
        if "10.1.0.9" in r:
            assert f"-p {proto} -m {proto}" in r
