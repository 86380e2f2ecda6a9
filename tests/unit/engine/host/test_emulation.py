"""Emulation decisions without root: binfmt.d parsing, what the host can run,
and the error texts, against a fake binfmt_misc directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.engine.host.emulation import Emulation, parse_binfmt_conf
from dockyard.errors import InvalidParameter

AARCH64 = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
           r"\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff"
           r"\xfe\xff\xff\xff:{interp}:{flags}")


def _fake(tmp_path: Path, flags: str = "OP") -> tuple[Path, Path, Path]:
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    (binfmt / "register").write_text("")
    (binfmt / "status").write_text("enabled\n")
    conf = tmp_path / "binfmt.d"
    conf.mkdir()
    interp = tmp_path / "qemu-aarch64-static"
    interp.write_text("")
    (conf / "qemu-aarch64.conf").write_text(
        "# comment\n" + AARCH64.format(interp=interp, flags=flags) + "\n")
    (conf / "qemu-x86_64.conf").write_text(AARCH64.replace("aarch64", "x86_64").format(
        interp=interp, flags=flags) + "\n")
    return binfmt, conf, interp


def test_parse_and_fix_binary_flag(tmp_path):
    (e,) = parse_binfmt_conf(AARCH64.format(interp="/usr/bin/q", flags="OP"))
    assert (e.name, e.arch, e.interpreter, e.flags) == ("qemu-aarch64", "arm64", "/usr/bin/q",
                                                        "OP")
    fixed = e.with_fix_binary()
    assert fixed.flags == "OPF" and fixed.line.endswith(":/usr/bin/q:OPF")
    assert fixed.with_fix_binary() is fixed


def test_setup_registers_foreign_arches_only(tmp_path):
    binfmt, conf, _ = _fake(tmp_path)
    emu = Emulation(True, "amd64", binfmt_dir=binfmt, conf_dirs=(conf,))
    emu.setup()
    # the host's own arch is never registered; the F flag is added
    assert emu.registered_by_us == ["qemu-aarch64"]
    assert (binfmt / "register").read_text().endswith(":OPF")


def test_disabled_registers_nothing_and_says_how_to_enable(tmp_path):
    binfmt, conf, _ = _fake(tmp_path)
    emu = Emulation(False, "amd64", binfmt_dir=binfmt, conf_dirs=(conf,))
    emu.setup()
    assert (binfmt / "register").read_text() == ""
    emu.check_can_run({"os": "linux", "architecture": "amd64"})
    with pytest.raises(InvalidParameter) as e:
        emu.check_can_run({"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert e.value.message.startswith(
        "image platform linux/arm64/v8 does not match the host platform linux/amd64 and "
        "emulation is not enabled (start the daemon with --emulation")


def _kernel_entry(binfmt: Path, flags: str) -> None:
    (binfmt / "qemu-aarch64").write_text(
        f"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: {flags}\noffset 0\n")


def test_existing_handler_with_f_flag_is_used(tmp_path):
    binfmt, conf, _ = _fake(tmp_path)
    _kernel_entry(binfmt, "POCF")
    emu = Emulation(False, "amd64", binfmt_dir=binfmt, conf_dirs=(conf,))
    emu.setup()
    emu.check_can_run({"architecture": "arm64"})


def test_handler_without_f_flag_does_not_count(tmp_path):
    binfmt, conf, _ = _fake(tmp_path)
    _kernel_entry(binfmt, "OC")
    emu = Emulation(True, "amd64", binfmt_dir=binfmt, conf_dirs=(conf,))
    emu.setup()
    assert emu.registered_by_us == []      # an existing entry is never replaced
    with pytest.raises(InvalidParameter) as e:
        emu.check_can_run({"architecture": "arm64"})
    assert "cannot be emulated" in e.value.message


def test_enabled_without_qemu_names_the_package(tmp_path):
    binfmt, conf, interp = _fake(tmp_path)
    interp.unlink()
    emu = Emulation(True, "amd64", binfmt_dir=binfmt, conf_dirs=(conf,))
    emu.setup()
    with pytest.raises(InvalidParameter) as e:
        emu.check_can_run({"architecture": "arm64"})
    assert "install the qemu-user-static package" in e.value.message
    assert emu.info_warnings()
