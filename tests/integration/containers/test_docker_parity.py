"""Everyday docker commands, as a daily user runs them, answered as Docker
Engine answers them.

Each test runs the same commands against dockyard and checks Docker's
output, kept here as text.  When Debian's dockerd is installed, the same
commands also run against a private Docker Engine (tests/integration/
refengine.py) and both outputs are compared live; where that engine (20.10)
differs from current Docker on purpose (the exec exit codes of a command
that is not found), the test says so.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.integration.refengine import reference_dockerd


@dataclass
class Engine:
    """One engine the same commands run against."""

    name: str
    run: Callable[..., subprocess.CompletedProcess[bytes]]

    def out(self, *args: str, input: bytes | None = None) -> str:
        res = self.run(*args, input=input)
        assert res.returncode == 0, f"{self.name}: docker {' '.join(args)}: {res.stderr!r}"
        return res.stdout.decode()


@pytest.fixture(scope="module")
def reference(daemon, tmp_path_factory) -> Iterator[Engine | None]:  # type: ignore[no-untyped-def]
    with reference_dockerd(tmp_path_factory.mktemp("parity-ref")) as cli:
        if cli is None:
            yield None
            return
        # the same busybox image (same ID) in both engines
        saved = daemon.docker("save", "busybox", check=True).stdout
        subprocess.run([*cli, "load"], input=saved, capture_output=True, check=True)

        def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([*cli, *args], input=input, capture_output=True,
                                  timeout=120, check=False)

        yield Engine("docker", run)


@pytest.fixture
def engines(daemon, reference) -> list[Engine]:  # type: ignore[no-untyped-def]
    ours = Engine("dockyard", lambda *a, input=None: daemon.docker(*a, input=input))
    return [ours] + ([reference] if reference is not None else [])


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


def one_file_tar(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(payload)
        tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def cleanup(eng: Engine, tag: str) -> None:
    ids = eng.out("ps", "-aq", "--filter", f"label=parity={tag}").split()
    if ids:
        eng.run("rm", "-f", *ids)
    # by name: a parity image can be another name of busybox's image, which
    # a removal by id would take away from every later test
    for ref in eng.out("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                       f"reference=parity-{tag}*").split():
        eng.run("rmi", ref)


# ------------------------------------------------------------------ ps -l / -n
def test_ps_last_and_n_list_the_newest_in_any_state(engines, tag):
    for eng in engines:
        try:
            eng.out("run", "--label", f"parity={tag}", "--name", f"true-{tag}",
                    "busybox", "true")
            full = eng.out("inspect", "-f", "{{.Id}}", f"true-{tag}").strip()
            assert eng.out("ps", "-lq").split() == [full[:12]], eng.name
            assert eng.out("ps", "--last", "1", "-q", "--no-trunc").split() == [full]
            # not listed without -l / -n / -a: it has exited
            assert full[:12] not in eng.out("ps", "-q").split()
            eng.out("run", "-d", "--label", f"parity={tag}", "--name", f"up-{tag}",
                    "busybox", "sleep", "60")
            assert eng.run("run", "--label", f"parity={tag}", "--name", f"ex-{tag}",
                           "busybox", "sh", "-c", "exit 3").returncode == 3
            eng.out("create", "--label", f"parity={tag}", "--name", f"new-{tag}", "busybox")
            listed = eng.out("ps", "-n", "3", "--format", "{{.Names}} {{.State}}")
            assert listed.splitlines() == [f"new-{tag} created", f"ex-{tag} exited",
                                           f"up-{tag} running"], eng.name
            assert eng.out("ps", "-l", "--format", "{{.Names}}").split() == [f"new-{tag}"]
        finally:
            cleanup(eng, tag)


# ------------------------------------------------------------------ ancestor
def test_ancestor_filter_follows_committed_children(engines, tag):
    label = f"label=parity={tag}"
    expected = {
        "busybox": {"base", "child", "grand"},
        "busybox:latest": {"base", "child", "grand"},
        f"parity-{tag}-child": {"child", "grand"},
        f"parity-{tag}-child:latest": {"child", "grand"},
        f"parity-{tag}-grand": {"grand"},
        f"parity-{tag}-nosuch": set(),
    }
    for eng in engines:
        try:
            run = ("run", "-d", "--label", f"parity={tag}")
            eng.out(*run, "--name", f"base-{tag}", "busybox", "sleep", "60")
            eng.out("commit", f"base-{tag}", f"parity-{tag}-child")
            eng.out(*run, "--name", f"child-{tag}", f"parity-{tag}-child", "sleep", "60")
            eng.out("commit", f"child-{tag}", f"parity-{tag}-grand")
            eng.out(*run, "--name", f"grand-{tag}", f"parity-{tag}-grand", "sleep", "60")
            eng.out("create", "--label", f"parity={tag}", "--name", f"stopped-{tag}",
                    f"parity-{tag}-grand")
            busybox_id = eng.out("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
            cases = {**expected, busybox_id: expected["busybox"],
                     busybox_id.removeprefix("sha256:")[:12]: expected["busybox"]}

            def names(*flags: str, eng: Engine = eng) -> set[str]:
                out = eng.out("ps", *flags, "--filter", label, "--format", "{{.Names}}")
                return {n.removesuffix(f"-{tag}") for n in out.split()}

            for ref, want in cases.items():
                assert names("--filter", f"ancestor={ref}") == want, (eng.name, ref)
            assert names("-a", "--filter", "ancestor=busybox") == \
                {"base", "child", "grand", "stopped"}
            assert names("--filter", f"ancestor=parity-{tag}-grand",
                         "--filter", f"ancestor=parity-{tag}-child") == {"child", "grand"}
        finally:
            cleanup(eng, tag)


# ------------------------------------------------------------------ export
# Docker's init layer as `docker export` shows it, in every state:
# name -> (type, mode, owner, link target)
INIT_LAYER = {
    ".dockerenv": (tarfile.REGTYPE, 0o755, "root/root", ""),
    "dev": (tarfile.DIRTYPE, 0o755, "root/root", ""),
    "dev/console": (tarfile.REGTYPE, 0o755, "root/root", ""),
    "dev/pts": (tarfile.DIRTYPE, 0o755, "root/root", ""),
    "dev/shm": (tarfile.DIRTYPE, 0o755, "root/root", ""),
    "etc/hostname": (tarfile.REGTYPE, 0o755, "root/root", ""),
    "etc/hosts": (tarfile.REGTYPE, 0o755, "root/root", ""),
    "etc/mtab": (tarfile.SYMTYPE, 0o777, "root/root", "/proc/mounts"),
    "etc/resolv.conf": (tarfile.REGTYPE, 0o755, "root/root", ""),
}


def listing(archive: bytes) -> dict[str, tuple[bytes, int, str, str, int]]:
    # permission bits only: dockerd 20.10 also puts the file type in the
    # mode field, which Docker stopped doing in 24.0 (dockyard: neither)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        return {m.name.rstrip("/"): (m.type, m.mode & 0o7777, f"{m.uname}/{m.gname}",
                                     m.linkname, m.size) for m in tf.getmembers()}


def test_export_has_the_init_layer_in_every_state(engines, tag):
    payload = os.urandom(3 << 20)
    data = one_file_tar("payload.bin", payload)
    listings = {}
    for eng in engines:
        try:
            c = f"exp-{tag}"
            eng.out("create", "--label", f"parity={tag}", "--name", c, "busybox",
                    "sleep", "60")
            eng.out("cp", "-", f"{c}:/tmp", input=data)
            for state in ("created", "running", "exited"):
                if state == "running":
                    eng.out("start", c)
                elif state == "exited":
                    eng.out("kill", c)
                    eng.out("wait", c)
                archive = eng.run("export", c).stdout
                found = listing(archive)
                got = {k: v[:4] for k, v in found.items() if k in INIT_LAYER}
                assert got == INIT_LAYER, (eng.name, state)
                with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
                    f = tf.extractfile("tmp/payload.bin")
                    assert f is not None
                    assert hashlib.sha256(f.read()).digest() == hashlib.sha256(payload).digest()
                listings[(eng.name, state)] = {k: v[0] for k, v in found.items()}
        finally:
            cleanup(eng, tag)
    if len(engines) == 2:
        # the same entries with the same types, whatever the state
        for state in ("created", "running", "exited"):
            assert listings[("dockyard", state)] == listings[("docker", state)], state


# ------------------------------------------------------------------ exec failures
# (arguments, Docker's text on the exec's output, Docker's exit code); the
# reference dockerd 20.10 gives every failure 126, Docker since 28.0 gives
# 127 to a command not found
EXEC_FAILURES = [
    (["-u", "nosuch", "{c}", "true"],
     "unable to find user nosuch: no matching entries in passwd file", 126),
    (["-u", "0:nosuchgrp", "{c}", "true"],
     "unable to find group nosuchgrp: no matching entries in group file", 126),
    (["{c}", "nosuchcmd"],
     ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
     '"nosuchcmd": executable file not found in $PATH: unknown'), 127),
    (["{c}", "/nonexistent"],
     ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
     '"/nonexistent": stat /nonexistent: no such file or directory: unknown'), 127),
    (["-w", "/nonexist", "{c}", "true"],
     ('OCI runtime exec failed: exec failed: unable to start container process: chdir to '
     'cwd ("/nonexist") set in config.json failed: no such file or directory: unknown'), 126),
    (["-w", "/etc/passwd", "{c}", "true"],
     ('OCI runtime exec failed: exec failed: unable to start container process: chdir to '
     'cwd ("/etc/passwd") set in config.json failed: not a directory: unknown: Are you '
     'trying to mount a directory onto a file (or vice-versa)? Check if the specified '
     'host path exists and is the expected type'), 126),
    (["{c}", "/etc/passwd"],
     ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
     '"/etc/passwd": permission denied: unknown'), 126),
    (["{c}", "/etc"],
     ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
     '"/etc": permission denied: unknown'), 126),
    (["{c}", "noexec"],
     ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
     '"noexec": executable file not found in $PATH: unknown'), 127),
]


def test_exec_failures_exit_and_say_as_docker(engines, tag):
    texts: dict[str, list[str]] = {}
    for eng in engines:
        try:
            c = f"exf-{tag}"
            eng.out("run", "-d", "--label", f"parity={tag}", "--name", c, "busybox", "sh",
                    "-c", "touch /bin/noexec; sleep 60")
            eng.out("exec", c, "test", "-e", "/bin/noexec")
            got = []
            for args, text, code in EXEC_FAILURES:
                res = eng.run("exec", *[a.format(c=c) for a in args])
                got.append(res.stdout.decode().strip())
                if eng.name == "dockyard":
                    assert (res.returncode, got[-1]) == (code, text), args
                    assert res.stderr == b"", args
                else:
                    assert res.returncode in (code, 126), args
            texts[eng.name] = got
            # the container is unharmed and a good exec still works
            assert eng.out("exec", c, "echo", "fine") == "fine\n"
        finally:
            cleanup(eng, tag)
    if "docker" in texts:
        assert texts["dockyard"] == texts["docker"]


def test_exec_failure_through_docker_py(client, name):
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name=name)
    try:
        code, out = c.exec_run(["nosuchcmd"])
        assert code == 127
        assert b'exec: "nosuchcmd": executable file not found in $PATH' in out
        code, out = c.exec_run(["true"], user="nosuch")
        assert code == 126
        assert out.strip() == b"unable to find user nosuch: no matching entries in passwd file"
    finally:
        c.remove(force=True)


# ------------------------------------------------------------------ run failures
RUN_FAILURES = [
    (["busybox", "/nonexistent"],
     'exec: "/nonexistent": stat /nonexistent: no such file or directory: unknown', 127),
    (["busybox", "nosuchcmd"],
     'exec: "nosuchcmd": executable file not found in $PATH: unknown', 127),
    (["busybox", "/etc"], 'exec: "/etc": permission denied: unknown', 126),
    (["-w", "/etc/passwd", "busybox", "true"],
     "Error response from daemon: Cannot mkdir: /etc/passwd is not a directory", 125),
]


def test_run_failures_say_what_docker_says(engines):
    for eng in engines:
        for args, text, code in RUN_FAILURES:
            res = eng.run("run", "--rm", *args)
            assert res.returncode == code, (eng.name, args)
            first = res.stderr.decode().splitlines()[0]
            assert first.endswith(text), (eng.name, first)


# ------------------------------------------------------------------ groups
def test_supplementary_groups_are_listed_once(engines, tag):
    setup = ("echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd; "
             "echo app:x:1000: >> /etc/group; "
             "sed -i -e 's/^wheel:x:10:root$/wheel:x:10:root,app/' "
             "-e 's/^users:x:100:$/users:x:100:app/' /etc/group")
    cases = [
        (["--user", "app", "--group-add", "wheel"],
         "uid=1000(app) gid=1000(app) groups=10(wheel),100(users),1000(app)"),
        (["--user", "app", "--group-add", "wheel", "--group-add", "10", "--group-add",
          "users", "--group-add", "app"],
         "uid=1000(app) gid=1000(app) groups=10(wheel),100(users),1000(app)"),
        (["--user", "app:wheel", "--group-add", "wheel"],
         "uid=1000(app) gid=10(wheel) groups=10(wheel)"),
        (["--group-add", "root", "--group-add", "wheel"],
         "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
    ]
    for eng in engines:
        try:
            image = f"parity-{tag}-app"
            eng.out("run", "--label", f"parity={tag}", "--name", f"mk-{tag}", "busybox",
                    "sh", "-c", setup)
            eng.out("commit", f"mk-{tag}", image)
            for flags, want in cases:
                out = eng.out("run", "--rm", *flags, image, "sh", "-c",
                              "id; grep ^Groups: /proc/self/status")
                ident, groups = out.splitlines()
                assert ident == want, (eng.name, flags)
                # the kernel's list has each group once too
                listed = groups.split()[1:]
                assert len(listed) == len(set(listed)), (eng.name, flags, groups)
            res = eng.run("run", "--rm", "--group-add", "nogrp", "busybox", "true")
            assert res.returncode == 125
            assert "Unable to find group nogrp: no matching entries in group file" in \
                res.stderr.decode(), eng.name
        finally:
            cleanup(eng, tag)


# ------------------------------------------------------------------ cp owner names
def test_cp_archives_carry_owner_names_from_the_container(engines, tag):
    payload = os.urandom(2 << 20)
    upload = one_file_tar("big.bin", payload)
    seen: dict[str, dict[str, tuple[str, str, int, int]]] = {}
    for eng in engines:
        try:
            c = f"cp-{tag}"
            eng.out("run", "-d", "--label", f"parity={tag}", "--name", c, "busybox", "sleep",
                    "60")
            eng.out("exec", c, "mkdir", "/srv")
            eng.out("cp", "-", f"{c}:/srv", input=upload)
            eng.out("exec", c, "sh", "-c", "mkdir /srv/d && touch /srv/d/g /srv/d/h && "
                    "chown 37:37 /srv/big.bin && chown 1:54 /srv/d/g && "
                    "chown 4321:4321 /srv/d/h")
            archive = eng.run("cp", f"{c}:/srv", "-").stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
                seen[eng.name] = {m.name: (m.uname, m.gname, m.uid, m.gid)
                                  for m in tf.getmembers()}
                f = tf.extractfile("srv/big.bin")
                assert f is not None and f.read() == payload
            assert seen[eng.name] == {
                "srv": ("root", "root", 0, 0),
                "srv/big.bin": ("operator", "operator", 37, 37),
                "srv/d": ("root", "root", 0, 0),
                "srv/d/g": ("daemon", "lock", 1, 54),
                "srv/d/h": ("", "", 4321, 4321),
            }, eng.name
            # `tar tv` of a single file, as the issue shows it
            one = eng.run("cp", f"{c}:/srv/d/g", "-").stdout
            with tarfile.open(fileobj=io.BytesIO(one)) as tf:
                m = tf.getmembers()[0]
                assert (m.name, m.uname, m.gname) == ("g", "daemon", "lock")
        finally:
            cleanup(eng, tag)
    if "docker" in seen:
        assert seen["dockyard"] == seen["docker"]


# ------------------------------------------------------------------ logs --details
def test_logs_details_show_the_log_options_attributes(engines, tag):
    run = ["run", "--label", f"parity={tag}", "--label", "b=x&y <z>", "-e", "E1=v1",
           "-e", "E2=v2", "--log-opt", "labels=parity,b,nolabel", "--log-opt", "env=E1",
           "--log-opt", "env-regex=^E2", "--log-opt", "tag={{.Name}}/{{.ImageName}}"]
    attrs = f"E1=v1,E2=v2,b=x%26y+%3Cz%3E,parity={tag},tag=lg-{tag}%2Fbusybox"
    for eng in engines:
        try:
            eng.out(*run, "--name", f"lg-{tag}", "busybox", "echo", 'a<b>&"c"')
            assert eng.out("logs", "--details", f"lg-{tag}") == f'{attrs} a<b>&"c"\n', eng.name
            stamped = eng.out("logs", "--details", "-t", f"lg-{tag}")
            assert stamped.split(" ", 1)[1] == f'{attrs} a<b>&"c"\n'
            # the json-file record as dockerd writes it, byte for byte but the time
            log_path = eng.out("inspect", "-f", "{{.LogPath}}", f"lg-{tag}").strip()
            with open(log_path, "rb") as f:
                record = f.read()
            assert record.startswith(
                b'{"log":"a\\u003cb\\u003e\\u0026\\"c\\"\\n","stream":"stdout","attrs":'
                b'{"E1":"v1","E2":"v2","b":"x\\u0026y \\u003cz\\u003e","parity":"'
                + tag.encode() + b'","tag":"lg-' + tag.encode() + b'/busybox"},"time":"')
            # without attributes: a space before each line all the same
            eng.out("run", "--label", f"parity={tag}", "--name", f"plain-{tag}", "busybox",
                    "echo", "plain")
            assert eng.out("logs", "--details", f"plain-{tag}") == " plain\n"
            bad = eng.run("run", "--rm", "--log-opt", "tag={{.Foo}}", "busybox", "true")
            assert bad.returncode == 125
            assert ("failed to initialize logging driver: template: log-tag:1:2: executing "
                    '"log-tag" at <.Foo>: can\'t evaluate field Foo in type *logger.Info') \
                in bad.stderr.decode(), eng.name
        finally:
            cleanup(eng, tag)
