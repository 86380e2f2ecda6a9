"""Diff and commit-layer computation on synthetic upper/lower trees."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.engine.fs.commit import commit_tar, merge_config
from dockyard.engine.fs.diff import Skips, compute_changes, mount_points
from dockyard.images.layers import apply_layer_tar

is_root = os.geteuid() == 0

T0 = 1_700_000_000


def mk(root: Path, rel: str, data: str | None = None, mode: int | None = None) -> Path:
    p = root / rel
    if data is None:
        p.mkdir(parents=True, exist_ok=True)
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    if mode is not None:
        p.chmod(mode)
    return p


def freeze(*roots: Path) -> None:
    """Same mtimes everywhere, so only real changes differ."""
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for n in dirs + files:
                os.utime(Path(dirpath) / n, (T0, T0), follow_symlinks=False)


def whiteout(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(p, 0o020000, os.makedev(0, 0))


def diff(upper: Path, lowers: list[Path], skips: Skips | None = None) -> list[str]:
    kinds = "CAD"
    return [f"{kinds[c['Kind']]} {c['Path']}"
            for c in compute_changes(upper, [str(x) for x in lowers], skips or Skips.of([]))]


@pytest.fixture
def trees(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "tmp", "usr/bin", "var/log"):
        mk(lower, d)
    mk(lower, "etc/passwd", "root\n")
    mk(lower, "etc/group", "root\n")
    mk(lower, "usr/bin/tool", "t")
    upper.mkdir()
    return lower, upper


def test_walk_order_and_parent_rule(trees):
    lower, upper = trees
    mk(upper, "etc/passwd", "root\nx\n")
    mk(upper, "opt/app/bin", "")
    mk(upper, "tmp/new", "")
    freeze(lower, upper)
    assert diff(upper, [lower]) == [
        "C /etc", "C /etc/passwd", "A /opt", "A /opt/app", "A /opt/app/bin", "C /tmp", "A /tmp/new"]


def test_changed_directory_metadata(trees):
    lower, upper = trees
    mk(upper, "var/log", mode=0o700)
    freeze(lower, upper)
    assert diff(upper, [lower]) == ["C /var", "C /var/log"]


def test_every_ancestor_of_a_change_is_modified(trees):
    # mkdir /var/spool/newdir: Docker (ChangesDirs) reports /var as well
    lower, upper = trees
    mk(lower, "var/spool")
    mk(upper, "var/spool/newdir")
    freeze(lower, upper)
    os.utime(upper / "var/spool", (T0 + 5, T0 + 5))
    assert diff(upper, [lower]) == ["C /var", "C /var/spool", "A /var/spool/newdir"]


def test_directory_mtime_alone_is_not_a_change(trees):
    # a file made and removed again leaves only a newer mtime on its directory
    lower, upper = trees
    mk(upper, "tmp")
    freeze(lower)
    os.utime(upper / "tmp", (T0 + 5, T0 + 5))
    assert diff(upper, [lower]) == []


def test_file_compared_by_stat(trees):
    lower, upper = trees
    mk(upper, "etc/passwd", "root\n")           # copied up, unchanged
    mk(upper, "etc/group", "ROOT\n")            # same size, newer mtime
    freeze(lower, upper)
    os.utime(upper / "etc/group", (T0 + 1, T0 + 1))
    assert diff(upper, [lower]) == ["C /etc", "C /etc/group"]


def test_mount_point_parent_missing_from_image(tmp_path):
    # a scratch-like image: the runtime made /etc only to hold the stubs
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    mk(lower, "app", "x")
    mk(upper, "etc/hosts", "")
    skips = Skips.of(mount_points({}, {}))
    assert diff(upper, [lower], skips) == []
    mk(upper, "etc/new", "")
    assert diff(upper, [lower], skips) == ["C /etc", "A /etc/new"]


def test_mount_point_stubs_are_not_changes(trees):
    lower, upper = trees
    mk(upper, "etc")
    for f in ("hosts", "hostname", "resolv.conf"):
        mk(upper, f"etc/{f}", "")
    mk(upper, "data/file", "v")          # a volume's mount point, with content below
    freeze(lower)
    os.utime(upper / "etc", (T0 + 5, T0 + 5))    # the stub creation bumped /etc's mtime
    skips = Skips.of(mount_points({"Volumes": {"/data": {}}}, {}))
    assert diff(upper, [lower], skips) == []


def test_mount_points_from_config():
    mp = mount_points({"Volumes": {"/v": {}}},
                      {"Binds": ["/h:/b:ro"], "Mounts": [{"Target": "/m/"}],
                       "Tmpfs": {"/run": ""}})
    assert {"/v", "/b", "/m", "/run", "/etc/hosts", "/proc", "/dev/shm"} <= mp


def test_lower_layers_merge(tmp_path):
    base, mid, upper = tmp_path / "base", tmp_path / "mid", tmp_path / "upper"
    mk(base, "a/old", "1")
    mk(mid, "a/new", "2")
    mk(upper, "a/old", "changed")
    mk(upper, "a/new", "changed")
    freeze(base, mid, upper)
    assert diff(upper, [mid, base]) == ["C /a", "C /a/new", "C /a/old"]


@pytest.mark.root
def test_whiteouts_are_deletions(trees):
    if not is_root:
        pytest.skip("whiteouts need root")
    lower, upper = trees
    mk(upper, "etc")
    whiteout(upper, "etc/group")
    mk(upper, "etc/passwd", "root\nx\n")
    mk(upper, "tmp/new", "")
    mk(upper, "etc/hosts", "")
    freeze(lower, upper)
    os.utime(upper / "etc", (T0 + 5, T0 + 5))
    os.utime(upper / "tmp", (T0 + 5, T0 + 5))
    skips = Skips.of(mount_points({}, {}))
    # the acceptance list, exactly
    assert diff(upper, [lower], skips) == [
        "C /etc", "D /etc/group", "C /etc/passwd", "C /tmp", "A /tmp/new"]


@pytest.mark.root
def test_opaque_directory(trees):
    if not is_root:
        pytest.skip("opaque dirs need root (trusted.* xattr)")
    lower, upper = trees
    mk(lower, "usr/lib/x", "x")
    d = mk(upper, "usr")
    os.setxattr(d, "trusted.overlay.opaque", b"y")
    mk(upper, "usr/bin/tool", "new")
    mk(upper, "usr/share", "")
    freeze(lower, upper)
    assert diff(upper, [lower]) == [
        "C /usr", "C /usr/bin", "C /usr/bin/tool", "D /usr/lib", "A /usr/share"]


@pytest.mark.root
def test_whiteout_in_lower_layer_hides_file(tmp_path):
    if not is_root:
        pytest.skip("whiteouts need root")
    base, mid, upper = tmp_path / "base", tmp_path / "mid", tmp_path / "upper"
    mk(base, "a/f", "1")
    mk(mid, "a")
    whiteout(mid, "a/f")
    mk(upper, "a/f", "again")
    freeze(base, mid, upper)
    # hidden by the whiteout below: Added again (and its parent, by Docker's rule)
    assert diff(upper, [mid, base]) == ["C /a", "A /a/f"]


def _names(chunks) -> list[str]:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getnames()


def test_commit_tar_of_stub_only_upper_is_the_empty_tar(trees):
    lower, upper = trees
    mk(upper, "etc/hosts", "")
    data = b"".join(commit_tar(upper, [str(lower)], Skips.of(mount_points({}, {}))))
    assert data == b"\0" * 1024


def test_commit_tar_keeps_real_changes(trees):
    lower, upper = trees
    mk(upper, "etc/hosts", "")
    mk(upper, "etc/passwd", "new")
    mk(upper, "tmp/new", "")
    names = _names(commit_tar(upper, [str(lower)], Skips.of(mount_points({}, {}))))
    assert names == ["etc", "etc/passwd", "tmp", "tmp/new"]


@pytest.mark.root
def test_commit_tar_whiteouts(trees):
    if not is_root:
        pytest.skip("whiteouts need root")
    lower, upper = trees
    whiteout(upper, "etc/group")
    d = mk(upper, "var")
    os.setxattr(d, "trusted.overlay.opaque", b"y")
    names = _names(commit_tar(upper, [str(lower)], Skips.of([])))
    assert names == ["etc", "etc/.wh.group", "var", "var/.wh..wh..opq"]


def test_merge_config_fills_from_container():
    user = {"Cmd": None, "Env": ["A=1"], "Labels": {"x": "1"}}
    image = {"Cmd": ["sh"], "Env": ["A=0", "PATH=/bin"], "Labels": {"x": "0", "y": "2"},
             "WorkingDir": "/w", "User": "u", "ExposedPorts": {"80/tcp": {}}}
    out = merge_config(user, image)
    assert out["Cmd"] == ["sh"] and out["Env"] == ["A=1", "PATH=/bin"]
    assert out["Labels"] == {"x": "1", "y": "2"}
    assert out["WorkingDir"] == "/w" and out["User"] == "u"
    assert out["ExposedPorts"] == {"80/tcp": {}}
    assert merge_config({"Entrypoint": ["e"]}, image).get("Cmd") is None


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need CAP_MKNOD")
def test_commit_tar_round_trips_through_layer_extraction(tmp_path: Path) -> None:
    """The committed layer re-applies to the same overlay upper state."""
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d/f").write_bytes(b"data")
    os.link(upper / "d/f", upper / "d/g")
    os.symlink("f", upper / "d/s")
    os.mknod(upper / "deleted", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    data = b"".join(commit_tar(upper, [], Skips.of([])))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = {m.name: m for m in tf.getmembers()}
    assert ".wh.deleted" in names
    assert "opaque/.wh..wh..opq" in names
    assert names["d/g"].islnk() and names["d/g"].linkname == "d/f" or \
        names["d/f"].islnk()
    assert names["d/s"].issym()
    assert not any("trusted.overlay" in k for m in names.values() for k in m.pax_headers)
    # and back: the layer tar re-applies to the same overlay upper state
    root = tmp_path / "again"
    root.mkdir()
    (tmp_path / "u.tar").write_bytes(data)
    apply_layer_tar(tmp_path / "u.tar", root)
    assert stat.S_ISCHR((root / "deleted").lstat().st_mode)
    assert os.getxattr(root / "opaque", "trusted.overlay.opaque") == b"y"
    assert (root / "d/f").read_bytes() == b"data"


def test_order_is_by_components(trees):
    lower, upper = trees
    mk(upper, "opt/a/b", "")
    mk(upper, "opt/a-b", "")
    mk(upper, "opt/a.c/d", "")
    freeze(lower, upper)
    assert diff(upper, [lower]) == [
        "A /opt", "A /opt/a", "A /opt/a/b", "A /opt/a-b", "A /opt/a.c", "A /opt/a.c/d"]
