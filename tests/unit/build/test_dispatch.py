"""What each instruction does to the image config, and the history it writes."""

from __future__ import annotations

import pytest

from dockyard.build import dispatch as d
from dockyard.build import instructions as ins
from dockyard.build.buildargs import BuildArgs
from dockyard.build.shell import ShellLex
from dockyard.errors import InvalidParameter

BASE = {"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"], "OnBuild": ["RUN echo trig"]}


def stage(text: str, base: dict | None = None, args: dict | None = None
          ) -> tuple[d.StageState, list[ins.Instruction], list[str]]:
    df = ins.parse_dockerfile(("FROM base\n" + text).encode())
    st = d.StageState(args=BuildArgs(args or {}), lex=ShellLex(df.escape))
    triggers = d.begin_stage(st, base if base is not None else BASE, "sha256:base")
    return st, df.stages[0].commands, triggers


def run_meta(text: str, **kw) -> tuple[d.StageState, list[str]]:
    st, cmds, _ = stage(text, **kw)
    texts = []
    for c in cmds:
        c = d.expand(c, st)
        plan = d.plan_meta(c, st)
        texts.append(d.created_by(plan.probe))
        st.image_id = "sha256:" + str(len(texts))
        d.after_step(st)
    return st, texts


def test_begin_stage_defaults_and_triggers():
    st, _, triggers = stage("", base={"Env": ["A=1"], "OnBuild": ["RUN x"]})
    assert triggers == ["RUN x"]
    assert st.config["OnBuild"] is None
    assert st.config["Env"] == ["A=1", d.DEFAULT_PATH]
    assert st.config["Image"] == "sha256:base"
    assert st.config["OpenStdin"] is False
    scratch, _, _ = stage("", base={})
    assert scratch.config["Env"] == [d.DEFAULT_PATH]


def test_history_texts_are_the_classic_builders():
    _, texts = run_meta(
        'ENV A=1 B="two words"\nLABEL k=v\nCMD ["a", "b"]\nCMD echo $A\nENTRYPOINT ["/e"]\n'
        "EXPOSE 80 443/udp\nVOLUME /data /logs\nUSER app\nSTOPSIGNAL SIGTERM\n"
        "ARG X=1 Y\nSHELL [\"/bin/bash\", \"-c\"]\nMAINTAINER me\nONBUILD RUN make\n"
        "HEALTHCHECK --interval=5s CMD true\n")
    assert texts == [
        "/bin/sh -c #(nop)  ENV A=1 B=two words",
        "/bin/sh -c #(nop)  LABEL k=v",
        '/bin/sh -c #(nop)  CMD ["a" "b"]',
        '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo $A"]',
        '/bin/sh -c #(nop)  ENTRYPOINT ["/e"]',
        "/bin/sh -c #(nop)  EXPOSE 443/udp 80",
        "/bin/sh -c #(nop)  VOLUME [/data /logs]",
        "/bin/sh -c #(nop)  USER app",
        "/bin/sh -c #(nop)  STOPSIGNAL SIGTERM",
        "/bin/sh -c #(nop)  ARG X=1 Y",
        "/bin/bash -c #(nop)  SHELL [/bin/bash -c]",    # the new shell already
        "/bin/bash -c #(nop)  MAINTAINER me",
        "/bin/bash -c #(nop)  ONBUILD RUN make",
        ('/bin/bash -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '
        "'\\x00'}"),
    ]


def test_config_after_metadata_instructions():
    st, _ = run_meta("ENV PATH=/x:$PATH C=$HOME/c\nLABEL \"a b\"=c\nEXPOSE 80\nVOLUME [\"/v\"]\n"
                     "ENTRYPOINT [\"/e\"]\nUSER 1000:1000\nMAINTAINER m\n")
    cfg = st.config
    assert cfg["Env"] == ["PATH=/x:/bin", "HOME=/root", "C=/root/c"]
    assert cfg["Labels"] == {"a b": "c"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["Volumes"] == {"/v": {}}
    assert cfg["Entrypoint"] == ["/e"] and cfg["Cmd"] is None   # ENTRYPOINT resets the CMD
    assert cfg["User"] == "1000:1000"
    assert st.maintainer == "m"
    assert cfg["Image"] == "sha256:7"


def test_cmd_then_entrypoint_keeps_cmd():
    st, _ = run_meta('CMD ["x"]\nENTRYPOINT ["/e"]\n')
    assert st.config["Cmd"] == ["x"] and st.config["Entrypoint"] == ["/e"]


def test_args_expand_only_after_declaration():
    st, _ = run_meta("ENV A=$V\nARG V\nENV B=$V C=${U:-dflt}\n", args={"V": "given", "U": None})
    assert st.config["Env"][-3:] == ["A=", "B=given", "C=dflt"]


def test_healthcheck_override_note():
    st, cmds, _ = stage("HEALTHCHECK CMD a\nHEALTHCHECK CMD b\n")
    assert d.plan_meta(cmds[0], st).note == ""
    assert d.plan_meta(cmds[1], st).note == "Note: overriding previous HEALTHCHECK: [CMD-SHELL a]\n"


def test_stopsignal_and_expose_are_checked():
    st, cmds, _ = stage("STOPSIGNAL NOPE\nEXPOSE $P\n")
    with pytest.raises(InvalidParameter, match="invalid signal: NOPE"):
        d.plan_meta(d.expand(cmds[0], st), st)
    st.config["Env"].append("P=80 90/udp")
    plan = d.plan_meta(d.expand(cmds[1], st), st)
    assert plan.config["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert d.created_by(plan.probe).endswith("EXPOSE 80 90/udp")


def test_run_plan_with_build_args():
    st, cmds, _ = stage("ARG A\nRUN echo $A\n", args={"A": "1", "HTTP_PROXY": "p"})
    d.plan_meta(cmds[0], st)
    plan = d.plan_run(cmds[1], st)
    assert plan.probe["Cmd"] == ["|1", "A=1", "/bin/sh", "-c", "echo $A"]
    assert d.created_by(plan.probe) == "|1 A=1 /bin/sh -c echo $A"
    assert plan.probe["Entrypoint"] is None
    assert plan.container["Cmd"] == ["/bin/sh", "-c", "echo $A"]
    assert plan.container["Env"][-2:] == ["A=1", "HTTP_PROXY=p"]
    assert plan.container["Entrypoint"] == [""]
    assert plan.container["Healthcheck"] == {"Test": ["NONE"]}
    assert plan.command_text == "/bin/sh -c echo $A"
    assert "Healthcheck" not in plan.probe or plan.probe.get("Healthcheck") is None


def test_run_plan_exec_form_and_no_args():
    st, cmds, _ = stage('RUN ["/bin/false", "x"]\nSHELL ["/bin/bash", "-c"]\nRUN true\n')
    assert d.plan_run(cmds[0], st).probe["Cmd"] == ["/bin/false", "x"]
    d.plan_meta(cmds[1], st)
    assert d.plan_run(cmds[2], st).container["Cmd"] == ["/bin/bash", "-c", "true"]


def test_run_flags_need_buildkit():
    st, cmds, _ = stage("RUN --network=host true\n")
    with pytest.raises(InvalidParameter) as e:
        d.plan_run(cmds[0], st)
    assert e.value.message.startswith("the --network option requires BuildKit.")


def test_run_heredoc_script():
    st, cmds, _ = stage("RUN <<EOF\necho a\necho b\nEOF\nRUN cat <<X > /f\nhi\nX\n")
    assert d.plan_run(cmds[0], st).container["Cmd"] == ["/bin/sh", "-c", "echo a\necho b\n"]
    assert d.plan_run(cmds[1], st).container["Cmd"] == ["/bin/sh", "-c",
                                                         "cat <<X > /f\nhi\nX\n"]


def test_workdir():
    st, cmds, _ = stage("WORKDIR /a\nWORKDIR b/../c\nWORKDIR $HOME\n")
    texts = []
    for c in cmds:
        plan = d.plan_workdir(d.expand(c, st), st)
        texts.append(d.created_by(plan.probe))
    assert texts == ["/bin/sh -c #(nop) WORKDIR /a", "/bin/sh -c #(nop) WORKDIR /a/c",
                     "/bin/sh -c #(nop) WORKDIR /root"]
    assert d.normalize_workdir("/x", "y/") == "/x/y"


def test_copy_destination_and_probe():
    assert d.copy_destination("/w", "rel/") == "/w/rel/"
    assert d.copy_destination("/w", ".") == "/w"
    assert d.copy_destination("", "x") == "/x"
    assert d.copy_destination("/w", "/abs") == "/abs"
    st, cmds, _ = stage("COPY --chown=app:app a /d/\n")
    plan = d.plan_copy(cmds[0], st, "file:abc")
    assert d.created_by(plan.probe) == "/bin/sh -c #(nop) COPY --chown=app:app file:abc in /d/ "


def test_copy_unsupported_flags():
    _st, cmds, _ = stage("COPY --link a b\n")
    with pytest.raises(InvalidParameter, match="the --link option requires BuildKit"):
        d.check_copy_flags(cmds[0])


def test_expand_leaves_unexpanded_forms_alone():
    st, cmds, _ = stage("CMD echo $HOME\nONBUILD RUN $X\nCOPY --from=$S $HOME/x /y\n")
    assert d.expand(cmds[0], st) is cmds[0]
    assert d.expand(cmds[1], st) is cmds[1]
    cp = d.expand(cmds[2], st)
    assert cp.from_ == "$S" and cp.sources == ["/root/x"]
