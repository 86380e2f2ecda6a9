"""docker build through the real docker CLI (classic builder, DOCKER_BUILDKIT=0):
the issue's acceptance lines, output, cache, history, failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.build.buildutil import tar_of


def build(daemon, ctx: Path, *args: str, input: bytes | None = None, timeout: float = 180
          ) -> subprocess.CompletedProcess[bytes]:
    env = daemon.env()
    env["DOCKER_BUILDKIT"] = "0"
    return subprocess.run([os.environ.get("DOCKER", "docker"), "build", *args, str(ctx)],
                          env=env, input=input, capture_output=True, timeout=timeout)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    return d


@pytest.fixture
def tag() -> str:
    return f"bt-{uuid.uuid4().hex[:10]}"


MULTISTAGE = """\
FROM busybox AS stage1
ARG X=0
RUN echo "made in stage one: $X" > /artifact.txt
FROM busybox
RUN echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd && echo "app:x:1000:" >> /etc/group
COPY --from=0 --chown=app /artifact.txt /home/app/artifact.txt
CMD ["sh", "-c", "stat -c '%U %G %a' /home/app/artifact.txt; cat /home/app/artifact.txt"]
"""


def test_multistage_acceptance(daemon, ctx, tag):
    (ctx / "Dockerfile").write_text(MULTISTAGE)
    res = build(daemon, ctx, "-t", tag)
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode() + out
    assert "Step 1/7 : FROM busybox AS stage1" in out
    assert re.search(r"Successfully built [0-9a-f]{12}\n", out)
    assert f"Successfully tagged {tag}:latest" in out
    run = daemon.docker("run", "--rm", tag, check=True).stdout.decode()
    assert run == "app app 644\nmade in stage one: 0\n"
    hist = daemon.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).splitlines()
    assert hist[0].startswith('/bin/sh -c #(nop)  CMD ["sh" "-c" "stat')
    assert hist[1].startswith("/bin/sh -c #(nop) COPY --chown=app file:")
    assert hist[1].endswith(" in /home/app/artifact.txt ")
    assert hist[2].startswith('/bin/sh -c echo "app:x:1000:1000')
    again = build(daemon, ctx, "-t", tag)
    assert again.returncode == 0
    text = again.stdout.decode()
    assert text.count(" ---> Using cache") == 5          # every step but the FROMs
    assert "Running in" not in text
    # the same image id both times
    ids = [re.search(r"Successfully built ([0-9a-f]{12})", t).group(1) for t in (out, text)]
    assert ids[0] == ids[1]


def test_target_and_build_arg(daemon, ctx, tag):
    (ctx / "Dockerfile").write_text(MULTISTAGE)
    res = build(daemon, ctx, "--target", "stage1", "--build-arg", "X=1", "-t", tag)
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode()
    assert "Step 3/3 : RUN" in out and "Step 4/" not in out
    assert daemon.out("run", "--rm", tag, "cat", "/artifact.txt") == "made in stage one: 1\n"
    hist = daemon.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    assert '|1 X=1 /bin/sh -c echo "made in stage one: $X" > /artifact.txt' in hist
    bad = build(daemon, ctx, "--target", "nope", "-t", tag)
    assert bad.returncode == 1
    assert 'target stage "nope" could not be found' in bad.stderr.decode()


def test_failing_run_leaves_no_container(daemon, ctx):
    before = set(daemon.out("ps", "-aq", "--no-trunc").split())
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo before-fail\nRUN false\n")
    res = build(daemon, ctx, "--no-cache")
    assert res.returncode == 1
    assert "The command '/bin/sh -c false' returned a non-zero code: 1" in res.stderr.decode()
    assert "before-fail" in res.stdout.decode()
    assert set(daemon.out("ps", "-aq", "--no-trunc").split()) == before


def test_quiet_iidfile_and_stdin_dockerfile(daemon, ctx, tag, tmp_path):
    (ctx / "Dockerfile").write_text("FROM busybox\nENV Q=1\n")
    iid = tmp_path / "iid"
    res = build(daemon, ctx, "-q", "--iidfile", str(iid), "-t", tag)
    assert res.returncode == 0, res.stderr.decode()
    image_id = iid.read_text().strip()
    assert res.stdout.decode().strip() == image_id
    assert image_id == daemon.out("image", "inspect", "-f", "{{.Id}}", tag).strip()
    env = daemon.env()
    env["DOCKER_BUILDKIT"] = "0"
    piped = subprocess.run(["docker", "build", "-t", tag + "-stdin", "-"], env=env,
                           input=b"FROM busybox\nLABEL from=stdin\n", capture_output=True,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr.decode()
    labels = daemon.out("image", "inspect", "-f", "{{json .Config.Labels}}", tag + "-stdin")
    assert json.loads(labels) == {"from": "stdin"}


def test_dockerfile_flag_nested_and_outside(daemon, ctx, tag, tmp_path):
    (ctx / "sub" / "dir").mkdir(parents=True)
    (ctx / "data.txt").write_text("payload")
    (ctx / "sub" / "dir" / "Build.df").write_text("FROM busybox\nCOPY data.txt /d\n")
    res = build(daemon, ctx, "-f", str(ctx / "sub" / "dir" / "Build.df"), "-t", tag)
    assert res.returncode == 0, res.stderr.decode()
    assert daemon.out("run", "--rm", tag, "cat", "/d") == "payload"
    outside = tmp_path / "Outside.df"
    outside.write_text("FROM busybox\nCOPY . /ctx\n")
    res = build(daemon, ctx, "-f", str(outside), "-t", tag + "-o")
    assert res.returncode == 0, res.stderr.decode()
    listing = daemon.out("run", "--rm", tag + "-o", "ls", "-A", "/ctx").split()
    assert listing == ["data.txt", "sub"]          # the client's copy of the Dockerfile is left out


def test_parse_errors_name_the_line(daemon, ctx):
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\nFROOM x\n")
    res = build(daemon, ctx)
    assert res.returncode == 1
    assert ("dockerfile parse error on line 3: unknown instruction: FROOM (did you mean FROM?)"
            in res.stderr.decode())
    (ctx / "Dockerfile").write_text("RUN true\n")
    assert "no build stage in current context" in build(daemon, ctx).stderr.decode()
    (ctx / "Dockerfile").write_text("# syntax=example.com/my/frontend\nFROM busybox\n")
    assert 'unsupported frontend "example.com/my/frontend"' in build(daemon, ctx).stderr.decode()


def test_missing_base_image_says_so(daemon, ctx):
    (ctx / "Dockerfile").write_text("FROM no-such-image-here:1\n")
    res = build(daemon, ctx)
    assert res.returncode == 1
    # the build pulls the missing base image and ends with the pull's error:
    # here the registry is out of reach (test daemons have a refusing proxy)
    assert "Step 1/1 : FROM no-such-image-here:1" in res.stdout.decode()
    err = res.stderr.decode()
    assert 'Get "https://registry-1.docker.io/v2/"' in err and "connection refused" in err


def test_copy_semantics_and_dockerignore(daemon, ctx, tag):
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "dir" / "a.txt").write_text("a")
    (ctx / "dir" / "sub" / "b.txt").write_text("b")
    (ctx / "dir" / "sub" / "skip.log").write_text("no")
    (ctx / "one.txt").write_text("1")
    (ctx / "two.txt").write_text("2")
    (ctx / "secret.key").write_text("never")
    (ctx / "keep.key").write_text("kept")
    os.symlink("one.txt", ctx / "link.txt")
    (ctx / ".dockerignore").write_text("**/*.log\n*.key\n!keep.key\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nWORKDIR /w\nCOPY dir /copied/\nCOPY *.txt multi/\nCOPY link.txt ./\n"
        "COPY --chmod=700 one.txt /modes/one\nCOPY . /all\n"
        'RUN find /copied /w /modes /all -type f | sort && stat -c "%a" /modes/one\n')
    res = build(daemon, ctx, "-t", tag, "--no-cache")
    assert res.returncode == 0, res.stderr.decode()
    found = daemon.out("run", "--rm", tag, "sh", "-c",
                       "find /copied /w /all -type f | sort; stat -c %a /modes/one; "
                       "cat /w/link.txt").split()
    assert found[:2] == ["/all/.dockerignore", "/all/Dockerfile"]
    assert "/all/dir/sub/skip.log" not in found and "/all/secret.key" not in found
    assert "/all/keep.key" in found
    assert "/copied/a.txt" in found and "/copied/sub/b.txt" in found
    assert {"/w/multi/one.txt", "/w/multi/two.txt", "/w/multi/link.txt"} <= set(found)
    assert found[-2:] == ["700", "1"]


def test_add_local_archive_is_unpacked(daemon, ctx, tag):
    (ctx / "bundle.tar.gz").write_bytes(tar_of({"inner/file.txt": "from the archive"},
                                               mode="w:gz"))
    (ctx / "Dockerfile").write_text("FROM busybox\nADD bundle.tar.gz /opt/\n"
                                    "COPY bundle.tar.gz /raw/\n")
    res = build(daemon, ctx, "-t", tag)
    assert res.returncode == 0, res.stderr.decode()
    assert daemon.out("run", "--rm", tag, "cat", "/opt/inner/file.txt") == "from the archive"
    assert daemon.out("run", "--rm", tag, "ls", "/raw") == "bundle.tar.gz\n"


def test_metadata_instructions_reach_the_config(daemon, ctx, tag):
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nENV A=1 B=\"two words\"\nLABEL l1=v1\nEXPOSE 80 53/udp\nVOLUME /data\n"
        "USER 1000:1000\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\n"
        'ENTRYPOINT ["/bin/sh", "-c"]\nCMD ["echo hi"]\nONBUILD RUN echo triggered > /tmp/t\n')
    res = build(daemon, ctx, "-t", tag, "--label", "extra=1")
    assert res.returncode == 0, res.stderr.decode()
    cfg = json.loads(daemon.out("image", "inspect", "-f", "{{json .Config}}", tag))
    assert "A=1" in cfg["Env"] and "B=two words" in cfg["Env"]
    assert cfg["Labels"] == {"l1": "v1", "extra": "1"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["User"] == "1000:1000" and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000,
                                  "Retries": 2}
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["echo hi"]
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/t"]
    hist = json.loads(daemon.out("image", "inspect", "-f", "{{json .RootFS.Layers}}", tag))
    base = json.loads(daemon.out("image", "inspect", "-f", "{{json .RootFS.Layers}}",
                                 "busybox"))
    assert hist == base                       # metadata only: no layer added
    (ctx / "Dockerfile").write_text(f"FROM {tag}\nUSER root\n")
    child = build(daemon, ctx, "-t", tag + "-child")
    assert child.returncode == 0, child.stderr.decode()
    assert "# Executing 1 build trigger" in child.stdout.decode()
    assert daemon.out("run", "--rm", "--entrypoint", "cat", tag + "-child", "/tmp/t") == \
        "triggered\n"
    assert json.loads(daemon.out("image", "inspect", "-f", "{{json .Config.OnBuild}}",
                                 tag + "-child")) is None


def test_builder_prune(daemon, ctx, tag):
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {tag} > /f\n")
    assert build(daemon, ctx, "-t", tag).returncode == 0
    daemon.docker("rmi", "--no-prune", tag, check=True)
    res = daemon.docker("builder", "prune", "-f")
    assert res.returncode == 0, res.stderr.decode()
    again = build(daemon, ctx, "-t", tag)
    assert "Using cache" not in again.stdout.decode()
