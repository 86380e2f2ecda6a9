"""Cache keys and --cache-from history matching."""

from __future__ import annotations

from dockyard.build.cachekey import CacheSource, cache_key, match_history

PROBE = {"Cmd": ["/bin/sh", "-c", "#(nop) ", "ENV A=1"], "Env": ["A=1"], "Image": "sha256:p",
         "Hostname": "", "ExposedPorts": {"80/tcp": {}}, "Labels": {}}


def test_key_depends_on_what_docker_compares():
    k = cache_key("sha256:p", PROBE, "linux/amd64")
    assert cache_key("sha256:p", dict(PROBE, Hostname="other", Labels=None), "linux/amd64") == k
    assert cache_key("sha256:q", PROBE, "linux/amd64") != k
    assert cache_key("sha256:p", PROBE, "linux/arm64") != k
    assert cache_key("sha256:p", dict(PROBE, Env=["A=2"]), "linux/amd64") != k
    assert cache_key("sha256:p", dict(PROBE, User="app"), "linux/amd64") != k
    assert cache_key("sha256:p", dict(PROBE, ExposedPorts={"81/tcp": {}}), "linux/amd64") != k
    assert cache_key("sha256:p", dict(PROBE, Healthcheck={"Test": ["NONE"]}), "linux/amd64") != k


def _img(history: list[str], diffs: list[str], empty: set[int] = frozenset()) -> dict:
    return {"architecture": "amd64", "os": "linux",
            "history": [{"created_by": h, "created": f"t{i}", **(
                {"empty_layer": True} if i in empty else {})} for i, h in enumerate(history)],
            "rootfs": {"type": "layers", "diff_ids": diffs}}


def test_match_history():
    parent = _img(["base"], ["l0"])
    src = CacheSource("sha256:src", _img(["base", "/bin/sh -c make", "x"], ["l0", "l1", "l2"]))
    probe = {"Cmd": ["/bin/sh", "-c", "make"]}
    found = match_history(parent, src, probe)
    assert found is not None and found[0] == ""
    cfg = found[1]
    assert cfg["rootfs"]["diff_ids"] == ["l0", "l1"]
    assert [h["created_by"] for h in cfg["history"]] == ["base", "/bin/sh -c make"]
    assert cfg["config"] == probe
    # the last step is the source itself
    last = CacheSource("sha256:src", _img(["base", "/bin/sh -c make"], ["l0", "l1"]))
    assert match_history(parent, last, probe) == ("sha256:src", None)
    # another command, another parent: no match
    assert match_history(parent, src, {"Cmd": ["/bin/sh", "-c", "other"]}) is None
    assert match_history(_img(["other"], ["l9"]), src, probe) is None


def test_match_history_empty_layer_and_no_parent():
    src = CacheSource("sha256:s", _img(["base", "#(nop) ENV", "run"], ["l0", "l2"], {1}))
    found = match_history(_img(["base"], ["l0"]), src, {"Cmd": ["#(nop) ENV"]})
    assert found is not None and found[1]["rootfs"]["diff_ids"] == ["l0"]
    first = match_history(None, src, {"Cmd": ["base"]})
    assert first is not None and first[1]["rootfs"]["diff_ids"] == ["l0"]
