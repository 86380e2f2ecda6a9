"""One network's aardvark-dns configuration file (dockyard.network.dns.render_network):

    <gateway>[,<gateway6>] [<upstream>,...]
    <container id> <ipv4>[,...] <ipv6>[,...] <name>[,<alias>...] [<resolver>,...]

fields split on single spaces, lists on commas, as aardvark-dns reads them."""

from __future__ import annotations

import pytest

from dockyard.network.dns import DnsRecord, render_network

CID = "a" * 64
CID2 = "b" * 64


def parse(text: str) -> tuple[list[str], list[str], list[tuple[str, list[str], list[str],
                                                                list[str], list[str]]]]:
    """The file as aardvark-dns's parse_config reads it (refusing what it refuses)."""
    assert text.endswith("\n")
    lines = [line for line in text.split("\n") if line]
    head = lines[0].split(" ")
    assert 1 <= len(head) <= 2
    gateways = head[0].split(",")
    upstream = head[1].split(",") if len(head) == 2 else []
    entries = []
    for line in lines[1:]:
        parts = line.split(" ")
        assert 4 <= len(parts) <= 5, line
        entries.append((parts[0],
                        parts[1].split(",") if parts[1] else [],
                        parts[2].split(",") if parts[2] else [],
                        parts[3].split(","),
                        parts[4].split(",") if len(parts) == 5 and parts[4] else []))
    return gateways, upstream, entries


def test_no_containers():
    assert render_network(["10.1.0.1"], [], []) == "10.1.0.1\n"


def test_gateways_of_both_families_and_upstream_resolvers():
    text = render_network(["10.1.0.1", "fd00:1::1"], ["192.0.2.53", "2001:db8::53"], [])
    assert text == "10.1.0.1,fd00:1::1 192.0.2.53,2001:db8::53\n"


def test_one_container():
    rec = DnsRecord(CID, ["10.1.0.2"], [], ["web", "www", "aaaaaaaaaaaa"])
    assert render_network(["10.1.0.1"], [], [rec]) == (
        "10.1.0.1\n"
        f"{CID} 10.1.0.2  web,www,aaaaaaaaaaaa\n")


def test_addresses_of_both_families_and_the_containers_own_resolvers():
    rec = DnsRecord(CID, ["10.1.0.2", "10.1.0.3"], ["fd00:1::2"], ["web"],
                    upstream=["192.0.2.53", "192.0.2.54"])
    text = render_network(["10.1.0.1", "fd00:1::1"], [], [rec])
    assert text.splitlines()[1] == f"{CID} 10.1.0.2,10.1.0.3 fd00:1::2 web 192.0.2.53,192.0.2.54"
    _, _, entries = parse(text)
    assert entries == [(CID, ["10.1.0.2", "10.1.0.3"], ["fd00:1::2"], ["web"],
                        ["192.0.2.53", "192.0.2.54"])]


def test_ipv6_only_container():
    text = render_network(["fd00:1::1"], [], [DnsRecord(CID, [], ["fd00:1::2"], ["v6"])])
    assert text.splitlines()[1] == f"{CID}  fd00:1::2 v6"
    assert parse(text)[2] == [(CID, [], ["fd00:1::2"], ["v6"], [])]


def test_names_are_lowercased_and_deduplicated_in_order():
    rec = DnsRecord(CID, ["10.1.0.2"], [], ["Web", "DB", "web", "db", "WEB", "cache", "Db"])
    text = render_network(["10.1.0.1"], [], [rec])
    assert text.splitlines()[1].split(" ")[3] == "web,db,cache"


def test_empty_names_are_skipped():
    rec = DnsRecord(CID, ["10.1.0.2"], [], ["", "web", ""])
    assert render_network(["10.1.0.1"], [], [rec]).splitlines()[1].endswith(" web")


@pytest.mark.parametrize("bad", ["my alias", "a,b", "line\nbreak", "tab\there", " lead",
                                 "trail ", "nb\u00a0sp", "\r"])
def test_a_name_the_file_cannot_hold_is_left_out(bad):
    # an alias is any string: one with a separator in it must not break the
    # file aardvark-dns reads for every network (it refuses the whole file)
    recs = [DnsRecord(CID, ["10.1.0.2"], [], ["web", bad, "w2"]),
            DnsRecord(CID2, ["10.1.0.3"], [], ["db"], upstream=["192.0.2.53"])]
    text = render_network(["10.1.0.1"], [], recs)
    _, _, entries = parse(text)
    assert entries == [(CID, ["10.1.0.2"], [], ["web", "w2"], []),
                       (CID2, ["10.1.0.3"], [], ["db"], ["192.0.2.53"])]


def test_several_containers_in_the_given_order():
    recs = (r for r in [DnsRecord(CID2, ["10.1.0.3"], [], ["db"]),
                        DnsRecord(CID, ["10.1.0.2"], [], ["web"])])
    text = render_network(["10.1.0.1"], ["192.0.2.53"], recs)
    assert text == (
        "10.1.0.1 192.0.2.53\n"
        f"{CID2} 10.1.0.3  db\n"
        f"{CID} 10.1.0.2  web\n")
    gateways, upstream, entries = parse(text)
    assert (gateways, upstream) == (["10.1.0.1"], ["192.0.2.53"])
    assert [e[0] for e in entries] == [CID2, CID]


def test_upstream_column_only_where_there_are_resolvers():
    recs = [DnsRecord(CID, ["10.1.0.2"], [], ["web"], upstream=[]),
            DnsRecord(CID2, ["10.1.0.3"], [], ["db"], upstream=["192.0.2.53"])]
    lines = render_network(["10.1.0.1"], [], recs).splitlines()
    assert len(lines[1].split(" ")) == 4
    assert lines[2].split(" ")[4] == "192.0.2.53"


def test_the_same_name_on_two_containers_is_kept_for_both():
    # round-robin: aardvark answers a name with every address that has it
    recs = [DnsRecord(CID, ["10.1.0.2"], [], ["svc"]), DnsRecord(CID2, ["10.1.0.3"], [], ["svc"])]
    _, _, entries = parse(render_network(["10.1.0.1"], [], recs))
    assert [e[3] for e in entries] == [["svc"], ["svc"]]
