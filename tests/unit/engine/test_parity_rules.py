"""Pure rules behind the everyday commands' parity with Docker: the init
layer, owner names in archives, log attributes and `--details`."""

from __future__ import annotations

import os
import stat

import pytest

from dockyard.engine.containers.initlayer import INIT_ENTRIES, ensure_init_layer, init_lower
from dockyard.engine.fs.tar import OwnerNames
from dockyard.engine.logs.format import (
    JsonEncoder,
    attrs_member,
    check_tag_template,
    encode_json_record,
    log_attrs,
    parse_json_file_opts,
)
from dockyard.engine.logs.reader import details_prefix
from dockyard.errors import InvalidParameter


def test_init_layer_has_dockers_entries(tmp_path):
    uid, gid = os.getuid(), os.getgid()
    layer = ensure_init_layer(tmp_path / "init", uid, gid)
    found = {}
    for rel, kind in INIT_ENTRIES:
        st = os.lstat(layer / rel)
        found[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
        if kind not in ("dir", "file"):
            assert os.readlink(layer / rel) == kind
    assert found["dev/pts"] == (stat.S_IFDIR, 0o755)
    assert found[".dockerenv"] == (stat.S_IFREG, 0o755)
    assert found["etc/hosts"] == (stat.S_IFREG, 0o755)
    assert found["etc/mtab"][0] == stat.S_IFLNK
    assert stat.S_IMODE(os.stat(layer / "dev").st_mode) == 0o755
    assert os.path.getsize(layer / "etc/hostname") == 0


def test_init_layer_is_completed_not_rewritten(tmp_path):
    layer = tmp_path / "init"
    ensure_init_layer(layer, os.getuid(), os.getgid())
    (layer / "etc/hosts").unlink()
    (layer / "dev/console").write_text("kept")
    ensure_init_layer(layer, os.getuid(), os.getgid())
    assert (layer / "etc/hosts").exists()
    assert (layer / "dev/console").read_text() == "kept"


def test_init_lower_only_when_asked_for_an_old_container(tmp_path):
    assert init_lower(tmp_path) == []
    assert init_lower(tmp_path, create=True) == [str(tmp_path / "init")]
    assert init_lower(tmp_path) == [str(tmp_path / "init")]


def test_owner_names_first_entry_of_each_id():
    names = OwnerNames.parse("root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n"
                             "operator:x:37:37::/:/bin/false\n",
                             "root:x:0:\nlock:x:54:\n# comment\n")
    assert names.users == {0: "root", 37: "operator"}
    assert names.groups == {0: "root", 54: "lock"}


def test_log_attrs_as_dockerd_collects_them():
    opts = {"labels": "a,missing", "labels-regex": "^com\\.", "env": "E1,NOPE",
            "env-regex": "^X", "tag": "{{.Name}}/{{.ID}}"}
    attrs = log_attrs(opts, {"a": "1", "com.x": "2", "other": "3"},
                      ["E1=v1", "X1=x", "Y=y", "BROKEN"], {"Name": "web", "ID": "abc"})
    assert attrs == {"a": "1", "com.x": "2", "E1": "v1", "X1": "x", "tag": "web/abc"}
    assert log_attrs({}, {"a": "1"}, ["E=1"], {}) == {}


def test_attrs_in_a_record_as_go_marshals_them():
    member = attrs_member({"b": "x&y <z>", "a": "1"})
    assert member == '"attrs":{"a":"1","b":"x\\u0026y \\u003cz\\u003e"}'
    enc = JsonEncoder({"a": "1"})
    fast = enc.record("stdout", b"hi\n", 1_700_000_000_000_000_000)
    slow = encode_json_record("stdout", b"hi\n", 1_700_000_000_000_000_000, '"attrs":{"a":"1"}')
    assert fast == slow
    assert fast.startswith(b'{"log":"hi\\n","stream":"stdout","attrs":{"a":"1"},"time":"')
    # the escaping path writes the same member
    assert b'"attrs":{"a":"1"}' in enc.record("stdout", b"<b>\n", 1)


def test_details_prefix():
    assert details_prefix(None) == b" "
    assert details_prefix({"tag": "a/b", "E": "x y"}) == b"E=x+y,tag=a%2Fb "


@pytest.mark.parametrize("tag, text", [
    ("{{.Foo}}", ("template: log-tag:1:2: executing \"log-tag\" at <.Foo>: can't evaluate "
                 "field Foo in type *logger.Info")),
    ("x {{ .Bar }}", ("template: log-tag:1:5: executing \"log-tag\" at <.Bar>: can't evaluate "
                     "field Bar in type *logger.Info")),
])
def test_tag_templates_name_only_known_fields(tag, text):
    with pytest.raises(InvalidParameter) as e:
        check_tag_template(tag)
    assert e.value.message == "failed to initialize logging driver: " + text
    check_tag_template("{{.Name}}-{{.ImageName}}")
    with pytest.raises(InvalidParameter, match="error parsing regexp"):
        parse_json_file_opts({"env-regex": "("})
