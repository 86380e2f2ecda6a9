"""`--link` on the default bridge (dockyard.engine.networks.legacy_links): the
link syntax, the checks at start, the /etc/hosts entries and Docker's link
environment variables, on container records built in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dockyard.engine.containers.record import Container, State
from dockyard.engine.networks.legacy_links import (
    Link,
    environment,
    hosts_entries,
    link_names,
    parse_links,
    resolve,
    wanted,
    without_link,
)
from dockyard.errors import InvalidParameter, NotFound

DB_ID = "d" * 12 + "1" * 52
ME_ID = "e" * 12 + "2" * 52


def container(cid: str, name: str, *, ip: str = "", ip6: str = "", running: bool = True,
              config: dict[str, Any] | None = None, host_config: dict[str, Any] | None = None,
              networking: dict[str, Any] | None = None, network: str = "bridge") -> Container:
    c = Container(id=cid, name=name, created=0, image_ref="img", image_id="sha256:x",
                  config={"Hostname": cid[:12], **(config or {})},
                  host_config=host_config or {}, networking_config=networking or {},
                  state=State(status="running" if running else "exited"))
    if ip:
        c.endpoints[network] = {"ip": ip, "ip6": ip6}
    return c


class Store:
    """What resolve() asks of the container store: get by name or id."""

    def __init__(self, *containers: Container) -> None:
        self.containers = containers

    def __iter__(self) -> Iterator[Container]:
        return iter(self.containers)

    def get(self, ref: str) -> Container:
        hits = [c for c in self.containers if ref in (c.name, c.id) or c.id.startswith(ref)]
        if len(hits) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        if not hits:
            raise NotFound(f"No such container: {ref}")
        return hits[0]


# ---------------------------------------------------------------- parse_links
@pytest.mark.parametrize(("value", "want"), [
    ("db:database", Link("db", "database")),
    ("db", Link("db", "db")),
    ("/db", Link("db", "db")),
    # as dockerd stores them in HostConfig.Links
    ("/db:/web/database", Link("db", "database")),
    ("db:/web/database", Link("db", "database")),
    (f"{DB_ID[:12]}:db", Link(DB_ID[:12], "db")),
])
def test_parse_links(value, want):
    assert parse_links([value]) == [want]


def test_parse_links_keeps_order_and_repeats():
    assert parse_links(["a:x", "b", "a:y"]) == [Link("a", "x"), Link("b", "b"), Link("a", "y")]
    assert parse_links([]) == parse_links(None) == []


@pytest.mark.parametrize(("value", "text"), [
    # opts.ParseLink's texts
    ("", "empty string specified for links"),
    ("db:alias:extra", "bad format for links: db:alias:extra"),
    ("a:b:c:d", "bad format for links: a:b:c:d"),
    (":alias", "invalid link format: :alias"),
    ("/:alias", "invalid link format: /:alias"),
])
def test_parse_links_refuses(value, text):
    with pytest.raises(InvalidParameter) as e:
        parse_links(["ok", value])
    assert e.value.message == text


# ---------------------------------------------------------------- wanted
def test_wanted_reads_host_config_and_the_networks_endpoint_config():
    c = container(ME_ID, "me", host_config={"Links": ["db:d"]},
                  networking={"EndpointsConfig": {"net1": {"Links": ["cache:c"]},
                                                  "net2": None}})
    assert wanted(c, "net1") == ["db:d", "cache:c"]
    assert wanted(c, "net2") == ["db:d"]
    assert wanted(c, "bridge") == ["db:d"]
    assert wanted(container(ME_ID, "me"), "bridge") == []


# ---------------------------------------------------------------- resolve
def test_resolve():
    db = container(DB_ID, "db", ip="172.17.0.2")
    me = container(ME_ID, "me", ip="172.17.0.3", host_config={"Links": ["db:database", "db"]})
    assert resolve(Store(db, me), me, "bridge") == [(Link("db", "database"), db),
                                                    (Link("db", "db"), db)]


def test_resolve_unknown_container():
    me = container(ME_ID, "me", ip="172.17.0.3", host_config={"Links": ["nosuch:x"]})
    with pytest.raises(InvalidParameter) as e:
        resolve(Store(me), me, "bridge")
    assert e.value.message == "could not get container for nosuch: No such container: nosuch"


def test_resolve_ambiguous_prefix():
    a = container("abc" + "1" * 61, "a", ip="172.17.0.2")
    b = container("abc" + "2" * 61, "b", ip="172.17.0.4")
    me = container(ME_ID, "me", ip="172.17.0.3", host_config={"Links": ["abc:x"]})
    with pytest.raises(InvalidParameter) as e:
        resolve(Store(a, b, me), me, "bridge")
    assert e.value.message == ("could not get container for abc: multiple IDs found with "
                               "provided prefix: abc")


def test_resolve_stopped_container():
    db = container(DB_ID, "db", running=False)
    me = container(ME_ID, "me", ip="172.17.0.3", host_config={"Links": ["db:database"]})
    with pytest.raises(InvalidParameter) as e:
        resolve(Store(db, me), me, "bridge")
    assert e.value.message == ("Cannot link to a non running container: /db AS "
                               "/me/database")


def test_resolve_container_on_another_network():
    db = container(DB_ID, "db", ip="10.1.0.2", network="other")
    me = container(ME_ID, "me", ip="172.17.0.3", host_config={"Links": ["db"]})
    with pytest.raises(InvalidParameter) as e:
        resolve(Store(db, me), me, "bridge")
    assert e.value.message == "Cannot link to /db, as it does not belong to the default network"


# ---------------------------------------------------------------- hosts entries
def test_hosts_entries_alias_hostname_and_name():
    db = container(DB_ID, "db", ip="172.17.0.2")
    assert hosts_entries([(Link("db", "database"), db)], "bridge") == [
        "database:172.17.0.2", f"{DB_ID[:12]}:172.17.0.2", "db:172.17.0.2"]


def test_hosts_entries_name_only_once_when_it_is_the_alias():
    db = container(DB_ID, "db", ip="172.17.0.2")
    assert hosts_entries([(Link("db", "db"), db)], "bridge") == [
        "db:172.17.0.2", f"{DB_ID[:12]}:172.17.0.2"]


def test_hosts_entries_use_the_linked_containers_hostname():
    # dockerd writes child.Config.Hostname, which --hostname sets
    db = container(DB_ID, "db", ip="172.17.0.2", config={"Hostname": "dbhost"})
    assert hosts_entries([(Link("db", "database"), db)], "bridge") == [
        "database:172.17.0.2", "dbhost:172.17.0.2", "db:172.17.0.2"]


def test_hosts_entries_ipv6_too():
    db = container(DB_ID, "db", ip="172.17.0.2", ip6="fd00::2", config={"Hostname": "h"})
    assert hosts_entries([(Link("db", "d"), db)], "bridge") == [
        "d:172.17.0.2", "h:172.17.0.2", "db:172.17.0.2", "d:fd00::2", "h:fd00::2", "db:fd00::2"]


def test_hosts_entries_of_several_links():
    db = container(DB_ID, "db", ip="172.17.0.2", config={"Hostname": "h1"})
    cache = container("c" * 64, "cache", ip="172.17.0.4", config={"Hostname": "h2"})
    assert hosts_entries([(Link("db", "db"), db), (Link("cache", "kv"), cache)], "bridge") == [
        "db:172.17.0.2", "h1:172.17.0.2", "kv:172.17.0.4", "h2:172.17.0.4",
        "cache:172.17.0.4"]
    assert hosts_entries([], "bridge") == []


# ---------------------------------------------------------------- environment
ME = container(ME_ID, "web", ip="172.17.0.3")


def env_of(alias: str, config: dict[str, Any], ip: str = "172.17.0.2") -> list[str]:
    db = container(DB_ID, "db", ip=ip, config=config)
    return environment([(Link("db", alias), db)], "bridge", ME)


def test_environment_one_port():
    # Docker's links.ToEnv, in its order
    assert env_of("docker", {"ExposedPorts": {"6379/tcp": {}}, "Env": ["PASSWORD=gordon"]}) == [
        "DOCKER_PORT=tcp://172.17.0.2:6379",
        "DOCKER_PORT_6379_TCP=tcp://172.17.0.2:6379",
        "DOCKER_PORT_6379_TCP_ADDR=172.17.0.2",
        "DOCKER_PORT_6379_TCP_PORT=6379",
        "DOCKER_PORT_6379_TCP_PROTO=tcp",
        "DOCKER_NAME=/web/docker",
        "DOCKER_ENV_PASSWORD=gordon",
    ]


def test_environment_without_ports():
    assert env_of("db", {}) == ["DB_NAME=/web/db"]


def test_environment_port_range():
    env = env_of("docker", {"ExposedPorts": {"6381/tcp": {}, "6379/tcp": {}, "6380/tcp": {}}})
    assert env[0] == "DOCKER_PORT=tcp://172.17.0.2:6379"
    assert env[1:13] == [f"DOCKER_PORT_{p}_TCP{suffix}" for p in (6379, 6380, 6381)
                         for suffix in (f"=tcp://172.17.0.2:{p}", "_ADDR=172.17.0.2",
                                        f"_PORT={p}", "_PROTO=tcp")]
    assert env[13:] == [
        "DOCKER_PORT_6379_TCP_START=tcp://172.17.0.2:6379",
        "DOCKER_PORT_6379_TCP_PORT_START=6379",
        "DOCKER_PORT_6379_TCP_END=tcp://172.17.0.2:6381",
        "DOCKER_PORT_6379_TCP_PORT_END=6381",
        "DOCKER_NAME=/web/docker",
    ]


def test_environment_two_ranges_and_a_single_port():
    ports = {f"{p}/tcp": {} for p in (80, 81, 90, 100, 101, 102)}
    env = env_of("a", {"ExposedPorts": ports})
    ranges = [e for e in env if "_START=" in e or "_END=" in e]
    assert ranges == [
        "A_PORT_80_TCP_START=tcp://172.17.0.2:80", "A_PORT_80_TCP_PORT_START=80",
        "A_PORT_80_TCP_END=tcp://172.17.0.2:81", "A_PORT_80_TCP_PORT_END=81",
        "A_PORT_100_TCP_START=tcp://172.17.0.2:100", "A_PORT_100_TCP_PORT_START=100",
        "A_PORT_100_TCP_END=tcp://172.17.0.2:102", "A_PORT_100_TCP_PORT_END=102",
    ]
    # as ToEnv: a range is written when the port after it is, after that
    # port's own variables; the last one after the last port's
    assert env.index("A_PORT_80_TCP_START=tcp://172.17.0.2:80") == \
        env.index("A_PORT_90_TCP_PROTO=tcp") + 1
    assert env.index("A_PORT_100_TCP_START=tcp://172.17.0.2:100") == \
        env.index("A_PORT_102_TCP_PROTO=tcp") + 1
    assert env[-1] == "A_NAME=/web/a"


def test_environment_tcp_first_then_other_protocols():
    # the default port is the lowest tcp one, whatever udp ports are lower
    env = env_of("db", {"ExposedPorts": {"53/udp": {}, "54/udp": {}, "8080/tcp": {},
                                         "53/tcp": {}}})
    assert env[0] == "DB_PORT=tcp://172.17.0.2:53"
    order = [e.split("=")[0] for e in env if e.endswith(("_PROTO=tcp", "_PROTO=udp"))]
    assert order == ["DB_PORT_53_TCP_PROTO", "DB_PORT_8080_TCP_PROTO", "DB_PORT_53_UDP_PROTO",
                     "DB_PORT_54_UDP_PROTO"]
    # 53/tcp then 53/udp is no range: another protocol
    assert "DB_PORT_53_UDP_START=udp://172.17.0.2:53" in env
    assert not any(e.startswith("DB_PORT_53_TCP_START") for e in env)


def test_environment_tcp_before_sctp_for_the_same_number():
    env = env_of("db", {"ExposedPorts": {"9/sctp": {}, "9/tcp": {}}})
    assert env[0] == "DB_PORT=tcp://172.17.0.2:9"


def test_environment_alias_naming():
    # upper case, only '-' replaced (links.ToEnv)
    env = env_of("my-db.v2", {})
    assert env == ["MY_DB.V2_NAME=/web/my-db.v2"]


def test_environment_passes_on_the_linked_containers_env_but_home_and_path():
    env = env_of("db", {"Env": ["PATH=/usr/bin", "HOME=/root", "HOSTNAME=box", "A=1",
                                "B=x=y", "EMPTY=", "NOVALUE"]})
    assert env == ["DB_NAME=/web/db", "DB_ENV_HOSTNAME=box", "DB_ENV_A=1", "DB_ENV_B=x=y",
                   "DB_ENV_EMPTY="]


def test_environment_exposed_keys_as_dockerd_holds_them():
    env = env_of("db", {"ExposedPorts": {"80": {}, "80/TCP": {}, "8000-8010/tcp": {}}})
    assert env == ["DB_PORT=tcp://172.17.0.2:80", "DB_PORT_80_TCP=tcp://172.17.0.2:80",
                   "DB_PORT_80_TCP_ADDR=172.17.0.2", "DB_PORT_80_TCP_PORT=80",
                   "DB_PORT_80_TCP_PROTO=tcp", "DB_NAME=/web/db"]


def test_environment_of_several_links():
    db = container(DB_ID, "db", ip="172.17.0.2", config={"Env": ["X=1"]})
    cache = container("c" * 64, "cache", ip="172.17.0.4",
                      config={"ExposedPorts": {"6379/tcp": {}}})
    env = environment([(Link("db", "db"), db), (Link("cache", "kv"), cache)], "bridge", ME)
    assert env[:2] == ["DB_NAME=/web/db", "DB_ENV_X=1"]
    assert env[2] == "KV_PORT=tcp://172.17.0.4:6379"
    assert env[-1] == "KV_NAME=/web/kv"
    assert environment([], "bridge", ME) == []


# ---------------------------------------------------------------- docker ps, docker rm --link
def test_link_names():
    db = container(DB_ID, "db", ip="172.17.0.2")
    web = container(ME_ID, "web", host_config={"Links": ["db:database", "/db:/web/db2"]})
    api = container("a" * 64, "api", host_config={"NetworkMode": "default", "Links": ["db"]})
    # links on a user-defined network name nothing in docker ps
    user = container("f" * 64, "u", host_config={"NetworkMode": "mynet", "Links": ["db:x"]})
    assert link_names(Store(db, web, api, user)) == {
        DB_ID: ["/api/db", "/web/database", "/web/db2"]}


def test_link_names_pass_over_what_they_cannot_read():
    # links the create request let through but dockerd would refuse, and
    # targets gone or ambiguous, must not make docker ps fail
    db = container(DB_ID, "db")
    a = container("abc" + "1" * 61, "a")
    b = container("abc" + "2" * 61, "b")
    web = container(ME_ID, "web", host_config={"Links": [
        "db:x:y", "", ":alias", "gone:g", "abc:amb", "db:ok"]})
    assert link_names(Store(db, a, b, web)) == {DB_ID: ["/web/ok"]}


def test_without_link():
    c = container(ME_ID, "web", host_config={"Links": ["db:database", "/cache:/web/kv", "x"]})
    assert without_link(c, "kv") == ["db:database", "x"]
    assert without_link(c, "database") == ["/cache:/web/kv", "x"]
    assert without_link(c, "x") == ["db:database", "/cache:/web/kv"]
    assert without_link(c, "db") is None
    assert without_link(container(ME_ID, "web"), "kv") is None


def test_without_link_keeps_links_it_cannot_read():
    c = container(ME_ID, "web", host_config={"Links": ["a:b:c", "db:kv"]})
    assert without_link(c, "kv") == ["a:b:c"]
    assert without_link(c, "b:c") is None
