"""--change parsing and filter helpers."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.images.changes import apply_changes, parse_go_duration, split_words
from dockyard.images.filters import created_ts, labels_match, parse_timestamp


def test_split_words_quotes_and_escapes() -> None:
    assert split_words('A="x y" B=\'z w\' C=a\\ b') == ["A=x y", "B=z w", "C=a b"]


def test_exec_and_shell_forms() -> None:
    cfg = apply_changes({}, ['ENTRYPOINT ["/init", "--x"]', "cmd echo $HOME"])
    assert cfg["Entrypoint"] == ["/init", "--x"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    assert apply_changes({}, ["CMD [not json"])["Cmd"] == ["/bin/sh", "-c", "[not json"]


def test_env_replaces_existing_and_healthcheck() -> None:
    cfg = apply_changes({"Env": ["A=0", "B=1"]}, ["ENV A=2"])
    assert cfg["Env"] == ["B=1", "A=2"]
    hc = apply_changes({}, ["HEALTHCHECK --interval=5s --retries=2 CMD curl -f x"])["Healthcheck"]
    assert hc == {"Interval": 5_000_000_000, "Retries": 2, "Test": ["CMD-SHELL", "curl -f x"]}
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


def test_invalid_change() -> None:
    with pytest.raises(InvalidParameter, match="^run is not a valid change command$"):
        apply_changes({}, ["RUN true"])
    with pytest.raises(InvalidParameter):
        apply_changes({}, ["ENV A=1 B"])


def test_durations_and_timestamps() -> None:
    assert parse_go_duration("1h30m") == 5400 * 10**9
    assert parse_go_duration("1.5s") == 1_500_000_000
    with pytest.raises(InvalidParameter):
        parse_go_duration("5x")
    assert parse_timestamp("10m", now=1000.0) == 400.0
    assert parse_timestamp("1700000000") == 1700000000.0
    assert parse_timestamp("2020-01-01T00:00:00Z") == 1577836800.0
    assert created_ts("2020-01-01T00:00:00.5Z") == 1577836800.5
    assert created_ts("2026-11-28T23:42:16.745217913Z") > 0


def test_labels_match() -> None:
    labels = {"a": "1", "b": ""}
    assert labels_match(labels, {"label": ["a", "a=1", "b"]})
    assert not labels_match(labels, {"label": ["a=2"]})
    assert not labels_match(labels, {"label!": ["a"]})
    assert labels_match(labels, {"label!": ["a=2", "c"]})


def test_entrypoint_keeps_a_cmd_set_in_the_same_changes() -> None:
    # moby's dispatchState.cmdSet: only an inherited CMD is reset by ENTRYPOINT
    cfg = apply_changes({}, ['CMD ["echo","imported"]', 'ENTRYPOINT ["/bin/sh","-c"]'])
    assert cfg["Cmd"] == ["echo", "imported"] and cfg["Entrypoint"] == ["/bin/sh", "-c"]
    cfg = apply_changes({"Cmd": ["sh"]}, ['CMD ["a"]', 'ENTRYPOINT ["b"]'])
    assert (cfg["Cmd"], cfg["Entrypoint"]) == (["a"], ["b"])
    assert "Cmd" not in apply_changes({"Cmd": ["sh"]}, ['ENTRYPOINT ["b"]'])
    assert apply_changes({"Cmd": ["sh"]}, ['ENTRYPOINT ["b"]', 'CMD ["a"]'])["Cmd"] == ["a"]
