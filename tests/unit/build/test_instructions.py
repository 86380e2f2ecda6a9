"""Dockerfile text -> stages and typed instructions, with Docker's error texts."""

from __future__ import annotations

import pytest

from dockyard.build import instructions as ins
from dockyard.build.instructions import DockerfileError, parse_dockerfile, parse_trigger


def parse(text: str) -> ins.Dockerfile:
    return parse_dockerfile(text.encode())


def error(text: str, name: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile(text.encode(), name)
    assert e.value.status == 400
    return e.value.message


def test_stages_meta_args_and_codes():
    df = parse("ARG V=1\nARG B\nFROM busybox:${V} AS Build\nRUN echo $V && \\\n  echo hi\n"
               "FROM --platform=linux/amd64 scratch\nCOPY --from=build /a /b\n")
    assert [a.args for a in df.meta_args] == [[("V", "1")], [("B", None)]]
    assert [(s.name, s.base, s.platform) for s in df.stages] == [
        ("build", "busybox:${V}", ""), ("", "scratch", "linux/amd64")]
    assert df.stages[0].code == "FROM busybox:${V} AS Build"
    run = df.stages[0].commands[0]
    assert isinstance(run, ins.Command) and run.cmdline == ["echo $V &&   echo hi"]
    assert run.line == 4 and run.prepend_shell
    cp = df.stages[1].commands[0]
    assert isinstance(cp, ins.Copy) and cp.from_ == "build" and cp.sources == ["/a"]
    assert df.stage_index("BUILD") == 0 and df.stage_index("nope") is None


def test_forms_of_each_instruction():
    df = parse('FROM x\nCMD ["a", "b"]\nENTRYPOINT x y\nENTRYPOINT []\nENV A=1 B="2 3"\n'
               "ENV C 4\nLABEL a=b\nEXPOSE 90 80/udp\nVOLUME /b /c\nVOLUME [\"/d\"]\n"
               'SHELL ["/bin/bash", "-c"]\nUSER app:app\nSTOPSIGNAL SIGKILL\nWORKDIR /w\n'
               "MAINTAINER me <m@x>\nONBUILD RUN echo hi\nARG A B=2\n"
               "HEALTHCHECK --interval=5s --retries=3 CMD true\nHEALTHCHECK NONE\n"
               "ADD --chown=1:2 a b\n")
    c = df.stages[0].commands
    assert (c[0].cmdline, c[0].prepend_shell) == (["a", "b"], False)
    assert c[1].cmdline == ["x y"] and c[2].cmdline is None
    assert c[3].pairs == [("A", "1"), ("B", '"2 3"')] and c[4].pairs == [("C", "4")]
    assert c[5].pairs == [("a", "b")]
    assert c[6].words == ["80/udp", "90"]                    # sorted, as Docker sorts them
    assert c[7].words == ["/b", "/c"] and c[8].words == ["/d"]
    assert c[9].words == ["/bin/bash", "-c"]
    assert c[10].word == "app:app" and c[11].word == "SIGKILL" and c[12].path == "/w"
    assert c[13].text == "me <m@x>" and c[14].expression == "RUN echo hi"
    assert c[15].args == [("A", None), ("B", "2")]
    assert c[16].config == {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9,
                            "Timeout": 0, "StartPeriod": 0, "StartInterval": 0, "Retries": 3}
    assert c[17].config == {"Test": ["NONE"]}
    assert (c[18].name, c[18].chown, c[18].sources, c[18].dest) == ("add", "1:2", ["a"], "b")


def test_healthcheck_exec_form():
    df = parse('FROM x\nHEALTHCHECK --timeout=1s CMD ["/bin/check", "-q"]\n')
    assert df.stages[0].commands[0].config["Test"] == ["CMD", "/bin/check", "-q"]


@pytest.mark.parametrize(("text", "msg"), [
    ("FROM x\nFOO bar\n", ("dockerfile parse error on line 2: unknown instruction: FOO "
                          "(did you mean FROM?)")),
    ("FROM x\nBOGUS bar\n", "dockerfile parse error on line 2: unknown instruction: BOGUS"),
    ("FROM x\nCOPPY a b\n",
     "dockerfile parse error on line 2: unknown instruction: COPPY (did you mean COPY?)"),
    ("FROM x\nrum a\n", ("dockerfile parse error on line 2: unknown instruction: rum "
                        "(did you mean run?)")),
    ("FROM x\nCOPY a\n", ("dockerfile parse error on line 2: COPY requires at least two "
                         "arguments, but only one was provided. Destination could not be "
                         "determined")),
    ("FROM x\nCOPY --frm=a b c\n",
     "dockerfile parse error on line 2: unknown flag: --frm (did you mean from?)"),
    ("FROM x\nCOPY --from a b\n", ("dockerfile parse error on line 2: missing a value on "
                                  "flag: --from")),
    ("FROM x\nCOPY --from=a --from=b c d\n",
     "dockerfile parse error on line 2: duplicate flag specified: --from"),
    ("FROM x\nADD --link=maybe a b\n", ("dockerfile parse error on line 2: expecting boolean "
                                       "value for flag --link, not: maybe")),
    ("FROM x AS 1y\n", ('dockerfile parse error on line 1: invalid name for build stage: "1y", '
                       "name can't start with a number or contain symbols")),
    ("FROM x y\n", ("dockerfile parse error on line 1: FROM requires either one or three "
                   "arguments")),
    ("FROM x\nWORKDIR\n", ("dockerfile parse error on line 2: WORKDIR requires exactly one "
                          "argument")),
    ("FROM x\nSHELL sh -c\n", ("dockerfile parse error on line 2: SHELL requires the "
                              "arguments to be in JSON form")),
    ("FROM x\nEXPOSE\n", ("dockerfile parse error on line 2: EXPOSE requires at least one "
                         "argument")),
    ("FROM x\nVOLUME\n", ("dockerfile parse error on line 2: VOLUME requires at least one "
                         "argument")),
    ("FROM x\nARG =1\n", "dockerfile parse error on line 2: ARG names can not be blank"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", ("dockerfile parse error on line 2: Chaining ONBUILD "
                                        "via `ONBUILD ONBUILD` isn't allowed")),
    ("FROM x\nONBUILD FROM y\n", ("dockerfile parse error on line 2: FROM isn't allowed as an "
                                 "ONBUILD trigger")),
    ("FROM x\nHEALTHCHECK --interval=5 CMD a\n",
     'dockerfile parse error on line 2: time: missing unit in duration "5"'),
    ("FROM x\nHEALTHCHECK --interval=1ns CMD a\n",
     'dockerfile parse error on line 2: Interval "interval" cannot be less than 1ms'),
    ("FROM x\nHEALTHCHECK --retries=-1 CMD a\n",
     "dockerfile parse error on line 2: --retries cannot be negative (-1)"),
    ("FROM x\nHEALTHCHECK CMD\n", ("dockerfile parse error on line 2: Missing command after "
                                  "HEALTHCHECK CMD")),
    ("FROM x\nHEALTHCHECK BOGUS x\n", ('dockerfile parse error on line 2: Unknown type "BOGUS" '
                                      "in HEALTHCHECK (try CMD)")),
    ("FROM x\nHEALTHCHECK NONE x\n", ("dockerfile parse error on line 2: HEALTHCHECK NONE takes "
                                     "no arguments")),
    ("FROM x\nENV --x=1 A=b\n", "dockerfile parse error on line 2: unknown flag: --x"),
    ("RUN echo\n", "no build stage in current context"),
    ("FROM x\nENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
    ("   \n# only a comment\n", "failed to parse Dockerfile: file with no instructions"),
    ("FROM x\nRUN <<EOF\nno end\n", "failed to parse Dockerfile: unterminated heredoc"),
    ("# escape=x\nFROM a\n", ("failed to parse Dockerfile: invalid escape token 'x' does not "
                             "match ` or \\")),
    ("# escape=`\n# escape=\\\nFROM a\n", ("failed to parse Dockerfile: only one escape parser "
                                          "directive can be used")),
])
def test_errors(text, msg):
    assert error(text) == msg


def test_empty_file_and_name_in_errors():
    assert error("", "sub/custom.dockerfile") == \
        "the Dockerfile (sub/custom.dockerfile) cannot be empty"
    assert error("FROM x\nENV A\n", "x.df") == "failed to parse x.df: ENV must have two arguments"


def test_syntax_directive():
    assert parse("# syntax=docker/dockerfile:1\nFROM a\n").syntax == "docker/dockerfile:1"
    parse("# syntax = docker.io/docker/dockerfile:1.7-labs\nFROM a\n")
    parse("#syntax=docker/dockerfile-upstream:master\nFROM a\n")
    msg = error("# syntax=example.com/frontend:1\nFROM a\n")
    assert msg.startswith('unsupported frontend "example.com/frontend:1" in the syntax parser '
                          "directive")
    # a comment after the first instruction is no directive
    parse("FROM a\n# syntax=example.com/frontend:1\n")
    # nor one after an ordinary comment
    parse("# hello\n# syntax=example.com/frontend:1\nFROM a\n")


def test_escape_directive_changes_continuations_and_token():
    df = parse("# escape=`\nFROM a\nRUN echo C:\\dir `\n  more\n")
    assert df.escape == "`"
    assert df.stages[0].commands[0].cmdline == ["echo C:\\dir   more"]


def test_run_flags_and_heredocs():
    df = parse("FROM a\nRUN --mount=type=cache,target=/c ls\nRUN <<EOF\necho hi\nEOF\n"
               "RUN <<-'X' sh\n\tcat $A\nX\n")
    run, doc, chomped = df.stages[0].commands
    assert run.flags_used == ["mount"]
    assert [(h.name, h.content, h.expand) for h in doc.heredocs] == [("EOF", "echo hi\n", True)]
    assert [(h.content, h.expand, h.chomp) for h in chomped.heredocs] == [
        ("cat $A\n", False, True)]
    assert error("FROM a\nRUN --bogus ls\n") == \
        "dockerfile parse error on line 2: unknown flag: --bogus"


def test_copy_heredoc_sources_and_unsupported_flags():
    df = parse("FROM a\nCOPY <<EOF /x\nhello\nEOF\nCOPY --link --exclude=*.md a b/\n")
    inline, linked = df.stages[0].commands
    assert inline.sources == [] and [h.content for h in inline.inline] == ["hello\n"]
    assert linked.unsupported == ["link", "exclude"]
    assert error("FROM a\nCOPY a <<EOF\nx\nEOF\n") == \
        "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"


def test_onbuild_expression_and_trigger_parse():
    df = parse("FROM a\nonbuild   COPY --from=x a b\n")
    assert df.stages[0].commands[0].expression == "COPY --from=x a b"
    t = parse_trigger("COPY --from=x a b")
    assert isinstance(t, ins.Copy) and t.from_ == "x"
    with pytest.raises(DockerfileError, match="FROM isn't allowed"):
        parse_trigger("FROM busybox")


def test_lowercase_instructions_and_as():
    df = parse("from x as One\nrun true\n")
    assert df.stages[0].name == "one"
    assert df.stages[0].commands[0].name == "run"
