"""What each instruction does to the image being built, as Docker's classic
builder does it, without doing any of it.

A stage's state is the image config being built (Docker's Config, the
builder's "run config") and the current image.  For each instruction this
gives what the driver needs:

- metadata instructions (ENV, LABEL, CMD, ...): the new config and the
  history text (`/bin/sh -c #(nop)  ENV A=1`, exactly as the classic
  builder writes it); the image gets an empty-layer history entry;
- RUN: the container's config (build args in its environment, no
  entrypoint, no health check) and the probe config recorded as the
  step's container config (`|1 A=1 /bin/sh -c make` with build args);
- WORKDIR, COPY and ADD: the probe config, and for COPY/ADD the history
  text carries the content checksum of what is copied.

The probe config is also what the build cache compares (see cachekey.py).
Variables are expanded here with the instruction's rules (shell.py).

Pure (no I/O).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from dockyard.build import instructions as ins
from dockyard.build.buildargs import BuildArgs
from dockyard.build.gofmt import go_list, go_quote_list, healthcheck_q
from dockyard.build.pathmatch import clean
from dockyard.build.ports import exposed_ports
from dockyard.build.shell import ShellLex
from dockyard.errors import InvalidParameter
from dockyard.oci.signals import parse_signal

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILDKIT_ONLY = ("the --{} option requires BuildKit. Refer to "
                 "https://docs.docker.com/go/buildkit/ to learn how to build images with "
                 "BuildKit enabled")


@dataclass
class StageState:
    """One stage being built: its config and image so far."""

    args: BuildArgs
    lex: ShellLex
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    image_id: str = ""
    maintainer: str = ""
    cmd_set: bool = False
    os: str = "linux"
    has_base: bool = False

    def env(self) -> dict[str, str]:
        """The variables instructions expand with: the config's Env, then
        the build args it does not set."""
        own = list(self.config.get("Env") or [])
        out: dict[str, str] = {}
        for item in [*own, *self.args.filter_allowed(own)]:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


@dataclass(frozen=True)
class MetaPlan:
    """A metadata-only step: the image's new config and its history text."""

    config: dict[str, Any]
    probe: dict[str, Any]
    note: str = ""                    # a line for the build output, if any


@dataclass(frozen=True)
class RunPlan:
    container: dict[str, Any]         # the step container's Config
    probe: dict[str, Any]             # recorded as the image's container_config
    command_text: str                 # for "The command '...' returned ..."


def begin_stage(state: StageState, base_config: dict[str, Any] | None,
                base_id: str) -> list[str]:
    """Start a stage on a base image; returns the base's ONBUILD triggers
    (cleared from the new config: they run once, in this stage)."""
    cfg = copy.deepcopy(base_config) if base_config else {}
    env = list(cfg.get("Env") or [])
    if not any(e.partition("=")[0] == "PATH" for e in env):
        env.append(DEFAULT_PATH)
    cfg["Env"] = env
    cfg["OpenStdin"] = False
    cfg["StdinOnce"] = False
    state.config = cfg
    state.image_id = base_id
    state.has_base = True
    triggers = list(cfg.get("OnBuild") or [])
    cfg["OnBuild"] = None
    cfg["Image"] = base_id
    return triggers


def after_step(state: StageState) -> None:
    """moby's updateRunConfig: the config names the image it now builds on."""
    state.config["Image"] = state.image_id


def _nop(state: StageState, config: dict[str, Any], comment: str, single: bool = False
         ) -> dict[str, Any]:
    probe = copy.deepcopy(config)
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    probe["Cmd"] = [*shell, "#(nop) " + comment] if single else [*shell, "#(nop) ", comment]
    return probe


def created_by(probe: dict[str, Any]) -> str:
    return " ".join(probe.get("Cmd") or [])


# ------------------------------------------------------------------ expansion

def expand(inst: ins.Instruction, state: StageState) -> ins.Instruction:
    """The instruction with its words expanded, for those Docker expands."""
    env = state.env()
    word = state.lex.process_word

    def w(s: str) -> str:
        return word(s, env)

    if isinstance(inst, ins.KeyValues):
        if not inst.expand:
            return inst
        return replace(inst, pairs=[(w(k), w(v)) for k, v in inst.pairs])
    if isinstance(inst, ins.Copy):
        return replace(inst, chown=w(inst.chown), chmod=w(inst.chmod),
                       sources=[w(s) for s in inst.sources], dest=w(inst.dest))
    if isinstance(inst, ins.Workdir):
        return replace(inst, path=w(inst.path))
    if isinstance(inst, ins.Word):
        return replace(inst, word=w(inst.word))
    if isinstance(inst, ins.Words) and inst.name == "volume":
        return replace(inst, words=[w(v) for v in inst.words])
    if isinstance(inst, ins.Words) and inst.name == "expose":
        ports: list[str] = []
        for p in inst.words:
            ports.extend(state.lex.process_words(p, env))
        return replace(inst, words=ports)
    if isinstance(inst, ins.Arg):
        return replace(inst, args=[(w(k), None if v is None else w(v))
                                   for k, v in inst.args])
    return inst


# ------------------------------------------------------------------ metadata

def _resolve_cmdline(cmd: ins.Command, state: StageState) -> list[str] | None:
    line = cmd.cmdline
    if cmd.prepend_shell and line is not None:
        return [*state.shell(), *line]
    return None if line is None else list(line)


def plan_meta(inst: ins.Instruction, state: StageState) -> MetaPlan:
    """ENV, LABEL, MAINTAINER, ONBUILD, CMD, ENTRYPOINT, HEALTHCHECK, EXPOSE,
    USER, VOLUME, STOPSIGNAL, ARG, SHELL: the new config and history text.
    Updates the state's config, maintainer, args."""
    cfg = copy.deepcopy(state.config)
    note = ""
    name = inst.name
    if isinstance(inst, ins.KeyValues) and name == "env":
        env = list(cfg.get("Env") or [])
        for k, v in inst.pairs:
            for i, e in enumerate(env):
                if e.partition("=")[0] == k:
                    env[i] = f"{k}={v}"
                    break
            else:
                env.append(f"{k}={v}")
        cfg["Env"] = env
        comment = "ENV " + " ".join(f"{k}={v}" for k, v in inst.pairs)
    elif isinstance(inst, ins.KeyValues):
        labels = dict(cfg.get("Labels") or {})
        for k, v in inst.pairs:
            labels[k] = v
        cfg["Labels"] = labels
        comment = "LABEL " + " ".join(f"{k}={v}" for k, v in inst.pairs)
    elif isinstance(inst, ins.Maintainer):
        state.maintainer = inst.text
        comment = "MAINTAINER " + inst.text
    elif isinstance(inst, ins.Onbuild):
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), inst.expression]
        comment = "ONBUILD " + inst.expression
    elif isinstance(inst, ins.Command) and name == "cmd":
        line = _resolve_cmdline(inst, state)
        cfg["Cmd"] = line
        cfg["ArgsEscaped"] = False
        comment = "CMD " + go_quote_list(line)
        if inst.cmdline:
            state.cmd_set = True
    elif isinstance(inst, ins.Command):
        line = _resolve_cmdline(inst, state)
        cfg["Entrypoint"] = line
        cfg["ArgsEscaped"] = False
        if not state.cmd_set:
            cfg["Cmd"] = None
        comment = "ENTRYPOINT " + go_quote_list(line)
    elif isinstance(inst, ins.Healthcheck):
        old = (cfg.get("Healthcheck") or {}).get("Test") or []
        if old and old[0] != "NONE":
            note = f"Note: overriding previous HEALTHCHECK: {go_list(old)}\n"
        cfg["Healthcheck"] = dict(inst.config)
        comment = "HEALTHCHECK " + healthcheck_q(inst.config)
    elif isinstance(inst, ins.Words) and name == "expose":
        ports = dict(cfg.get("ExposedPorts") or {})
        for p in exposed_ports(inst.words):
            ports[p] = {}
        cfg["ExposedPorts"] = ports
        comment = "EXPOSE " + " ".join(inst.words)
    elif isinstance(inst, ins.Words) and name == "volume":
        vols = dict(cfg.get("Volumes") or {})
        for v in inst.words:
            if v == "":
                raise InvalidParameter("VOLUME specified can not be an empty string")
            vols[v] = {}
        cfg["Volumes"] = vols
        comment = "VOLUME " + go_list(inst.words)
    elif isinstance(inst, ins.Words):
        cfg["Shell"] = list(inst.words)
        comment = "SHELL " + go_list(inst.words)
    elif isinstance(inst, ins.Word) and name == "user":
        cfg["User"] = inst.word
        comment = "USER " + inst.word
    elif isinstance(inst, ins.Word):
        parse_signal(inst.word)
        cfg["StopSignal"] = inst.word
        comment = "STOPSIGNAL " + inst.word
    elif isinstance(inst, ins.Arg):
        parts: list[str] = []
        for key, value in inst.args:
            parts.append(key if value is None else f"{key}={value}")
            state.args.add_arg(key, value)
        comment = "ARG " + " ".join(parts)
    else:
        raise InvalidParameter(f"unsupported command type: {name}")
    state.config = cfg
    return MetaPlan(config=cfg, probe=_nop(state, cfg, comment), note=note)


# ------------------------------------------------------------------ RUN, WORKDIR, COPY

def plan_run(inst: ins.Command, state: StageState) -> RunPlan:
    if inst.flags_used:
        raise InvalidParameter(BUILDKIT_ONLY.format(inst.flags_used[0]))
    cfg = state.config
    line = _resolve_cmdline(inst, state) or []
    if inst.heredocs and inst.prepend_shell:
        line = _heredoc_command(inst, state.shell())
    build_env = state.args.filter_allowed(list(cfg.get("Env") or []))
    save = list(line)
    if build_env:
        kept = sorted(e for e in build_env
                      if state.args.is_referenced_or_not_builtin(e.partition("=")[0]))
        save = [f"|{len(kept)}", *kept, *line]
    probe = copy.deepcopy(cfg)
    probe["Cmd"] = save
    probe["ArgsEscaped"] = False
    if save:
        probe["Entrypoint"] = None
    container = copy.deepcopy(cfg)
    container["Cmd"] = line
    container["ArgsEscaped"] = False
    container["Env"] = [*(cfg.get("Env") or []), *build_env]
    if save:
        container["Entrypoint"] = [""]
    container["Healthcheck"] = {"Test": ["NONE"]}
    return RunPlan(container=container, probe=probe, command_text=" ".join(line))


def _heredoc_command(inst: ins.Command, shell: list[str]) -> list[str]:
    """RUN with heredocs: a lone `<<EOF` runs its body as the script; other
    forms go to the shell whole, which reads the heredocs itself."""
    text = (inst.cmdline or [""])[0]
    doc = inst.heredocs[0]
    if len(inst.heredocs) == 1 and ins.parse_heredoc_word(text.strip()) is not None:
        return [*shell, doc.content]
    body = "".join(f"{h.content}{h.name}\n" for h in inst.heredocs)
    return [*shell, f"{text}\n{body}"]


def normalize_workdir(current: str, requested: str) -> str:
    if requested == "":
        raise InvalidParameter("cannot normalize nothing")
    if not requested.startswith("/"):
        return clean("/" + current + "/" + requested)
    return clean(requested)


def plan_workdir(inst: ins.Workdir, state: StageState) -> MetaPlan:
    cfg = copy.deepcopy(state.config)
    cfg["WorkingDir"] = normalize_workdir(cfg.get("WorkingDir") or "", inst.path)
    state.config = cfg
    return MetaPlan(config=cfg, probe=_nop(state, cfg, "WORKDIR " + cfg["WorkingDir"],
                                           single=True))


def copy_destination(workdir: str, dest: str) -> str:
    """moby's normalizeDest: relative to WORKDIR, a trailing slash kept."""
    if dest.startswith("/"):
        return dest
    out = clean("/" + (workdir or "") + "/" + dest)
    if dest.endswith("/") and not out.endswith("/"):
        out += "/"
    return out


def plan_copy(inst: ins.Copy, state: StageState, source_hash: str) -> MetaPlan:
    """The probe of a COPY/ADD whose sources hash to `source_hash`."""
    chown = f"--chown={inst.chown} " if inst.chown else ""
    chmod = f"--chmod={inst.chmod} " if inst.chmod else ""
    comment = f"{inst.name.upper()} {chown}{chmod}{source_hash} in {inst.dest} "
    return MetaPlan(config=state.config, probe=_nop(state, state.config, comment, single=True))


def check_copy_flags(inst: ins.Copy) -> None:
    if inst.unsupported:
        raise InvalidParameter(BUILDKIT_ONLY.format(inst.unsupported[0]))
