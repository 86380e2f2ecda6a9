"""docker-compose's `build:` sections against dockyard (compose 1.29, which
builds through docker-py's API client)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed "
                                            "(scripts/setup-host.sh installs it for tests)")
def test_compose_build_section(daemon, tmp_path: Path):
    project = f"c{uuid.uuid4().hex[:8]}"
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        "FROM busybox\nARG GREETING=hi\nCOPY msg.txt /msg.txt\n"
        'RUN echo "$GREETING from compose" > /greeting\n'
        'CMD ["sh", "-c", "cat /greeting /msg.txt"]\n')
    (app / "msg.txt").write_text("payload\n")
    (app / "ignored.txt").write_text("no\n")
    (app / ".dockerignore").write_text("ignored.txt\n")
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3.8"\nservices:\n  app:\n    build:\n      context: ./app\n'
        f"      args:\n        GREETING: hello\n    image: {project}-app:latest\n")
    env = daemon.env()
    res = subprocess.run([COMPOSE, "-p", project, "build"], cwd=tmp_path, env=env,
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode() + res.stdout.decode()
    assert f"Successfully tagged {project}-app:latest" in res.stdout.decode()
    out = daemon.out("run", "--rm", f"{project}-app:latest")
    assert out == "hello from compose\npayload\n"
    assert daemon.docker("run", "--rm", f"{project}-app:latest", "ls", "/ignored.txt"
                         ).returncode != 0
    daemon.docker("rmi", f"{project}-app:latest")
