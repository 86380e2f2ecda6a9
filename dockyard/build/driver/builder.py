"""The classic builder's run: a parsed Dockerfile carried out step by step.

For each stage: its base image (a local image, an earlier stage, `scratch`,
or one the engine pulls), the base's ONBUILD triggers, then each
instruction.  A step whose result the cache has is reused (` ---> Using
cache`); otherwise metadata instructions commit a child image with no
layer, RUN runs an ordinary container of the engine and commits it,
COPY, ADD and WORKDIR write into a writable layer over the current image.
The output is what Docker's classic builder writes (`Step 2/5 : RUN ...`,
` ---> Running in <id>`, ` ---> Removed intermediate container <id>`,
` ---> <id>`); a failing RUN ends with `The command '...' returned a
non-zero code: N`.  Step containers are removed as `rm`/`forcerm` say,
and always when the build is cancelled.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.build import context as ctx
from dockyard.build import dispatch as d
from dockyard.build import instructions as ins
from dockyard.build.buildargs import BuildArgs
from dockyard.build.cachekey import CacheSource, cache_key, match_history
from dockyard.build.driver import copier
from dockyard.build.driver.fetch import fetch_url, is_url
from dockyard.build.driver.protocol import Layer, StepCommit, StepEngine
from dockyard.build.driver.receive import Context
from dockyard.build.driver.trees import CacheIndex, image_root, image_tree
from dockyard.build.shell import ShellLex
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.util.cancel import run_in_thread

log = logging.getLogger("dockyard.build")

Emit = Callable[[dict[str, Any]], None]


class StepFailed(DockyardError):
    """A RUN step's command failed: Docker's error record with its code."""

    status = 400

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildRequest:
    """What the builder is asked to do (the request's options, checked)."""

    dockerfile: ins.Dockerfile
    context: Context
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    remove: bool = True
    force_remove: bool = False
    cache_from: list[str] = field(default_factory=list)
    host_config: dict[str, Any] = field(default_factory=dict)
    platform: str = ""                      # asked for (--platform), or ""
    cache_platform: str = "linux/amd64"     # what the cache keys name
    auth: dict[str, dict[str, Any]] = field(default_factory=dict)
    aux: bool = True


@dataclass
class _StageResult:
    name: str
    image_id: str
    config: dict[str, Any]


def short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class Builder:
    def __init__(self, engine: StepEngine, req: BuildRequest, emit: Emit, workdir: Path,
                 cache: CacheIndex) -> None:
        self.engine = engine
        self.req = req
        self._emit = emit
        self.emitted = False
        self.workdir = workdir
        self.cache = cache
        self.containers: list[str] = []
        self.cache_busted = False
        self.sources: list[CacheSource] | None = None
        self.stages: list[_StageResult] = []
        self.lex = ShellLex(req.dockerfile.escape)

    # ------------------------------------------------------------ output
    def emit(self, record: dict[str, Any]) -> None:
        self.emitted = True
        self._emit(record)

    def out(self, text: str) -> None:
        self.emit({"stream": text})

    def process_output(self, stream: int, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if stream == 2:
            text = f"\x1b[91m{text}\x1b[0m"
        self.emit({"stream": text})

    # ------------------------------------------------------------ the run
    async def run(self) -> str:
        df = self.req.dockerfile
        stages = list(df.stages)
        if self.req.target:
            idx = df.stage_index(self.req.target)
            if idx is None:
                raise InvalidParameter(f'target stage "{self.req.target}" could not be found')
            stages = stages[:idx + 1]
        if stages and self.req.labels:
            last = stages[-1]
            extra = [ins.KeyValues("label", f"LABEL {k}={v}", 0, pairs=[(k, v)], expand=False)
                     for k, v in sorted(self.req.labels.items())]
            stages[-1] = ins.Stage(last.name, last.base, last.platform, last.code, last.line,
                                   [*last.commands, *extra])
        if self.req.cache_from and not self.req.no_cache:
            self.sources = self._cache_sources()
        args = BuildArgs(self.req.build_args)
        total = len(df.meta_args) + sum(1 + len(s.commands) for s in stages)
        n = 0
        for meta in df.meta_args:
            n += 1
            self.out(f"Step {n}/{total} : {meta.code}\n")
            env = args.all_allowed()
            for k, v in meta.args:
                value = None if v is None else self.lex.process_word(v, env)
                key = self.lex.process_word(k, env)
                args.add_arg(key, value)
                args.add_meta(key, value)
        state: d.StageState | None = None
        for stage in stages:
            if stage.name and any(s.name == stage.name for s in self.stages):
                raise InvalidParameter(f"{stage.name} stage name already used")
            n += 1
            self.out(f"Step {n}/{total} : {stage.code}\n")
            state = d.StageState(args=args.clone_for_stage(), lex=self.lex, name=stage.name)
            await self._begin(state, stage)
            self.out(f" ---> {short(state.image_id)}\n")
            for inst in stage.commands:
                n += 1
                self.out(f"Step {n}/{total} : {inst.code}\n")
                await self._dispatch(state, inst)
                d.after_step(state)
                self.out(f" ---> {short(state.image_id)}\n")
            if self.req.aux and state.image_id:
                self.emit({"aux": {"ID": state.image_id}})
            args.merge_referenced(state.args)
            self.stages.append(_StageResult(stage.name, state.image_id, state.config))
        warning = args.unused_warning()
        if warning:
            self.out(warning)
        if state is None or not state.image_id:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    async def cleanup(self) -> None:
        for cid in list(self.containers):
            await self._remove(cid, quiet=True)

    # ------------------------------------------------------------ stages
    def _stage_by_name_or_index(self, ref: str) -> _StageResult | None:
        for s in self.stages:
            if s.name and s.name == ref.lower():
                return s
        if ref.isdigit():
            i = int(ref)
            if i == len(self.stages):
                raise InvalidParameter("refers to current build stage")
            if i > len(self.stages):
                raise InvalidParameter("index out of bounds")
            return self.stages[i]
        return None

    async def _begin(self, state: d.StageState, stage: ins.Stage) -> None:
        meta = state.args.all_meta()
        name = self.lex.process_word(stage.base, meta)
        if name == "":
            raise InvalidParameter(f"base name ({stage.base}) should not be blank")
        platform = self.req.platform or self.req.cache_platform
        if stage.platform:
            platform = self.lex.process_word(stage.platform, meta)
        prior = next((s for s in self.stages if s.name and s.name == name.lower()), None)
        if prior is not None:
            base: dict[str, Any] | None = self.engine.image(prior.image_id).config
            base_id = prior.image_id
        elif name == "scratch":
            base, base_id = None, ""
            self.scratch_base = {"os": "linux", "architecture": platform.split("/")[1]
                                 if "/" in platform else "amd64"}
        else:
            wanted = platform if (stage.platform or self.req.platform) else ""
            img = await self.engine.ensure_base_image(name, wanted,
                                                      self.req.pull, self.req.auth, self.emit)
            base, base_id = img.config, img.id
        self.cache_busted = False
        triggers = d.begin_stage(state, (base or {}).get("config") or {}, base_id)
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}\n")
            for t in triggers:
                d.after_step(state)
                await self._dispatch(state, ins.parse_trigger(t))

    # ------------------------------------------------------------ one instruction
    async def _dispatch(self, state: d.StageState, inst: ins.Instruction) -> None:
        try:
            inst = d.expand(inst, state)
            if isinstance(inst, ins.Command) and inst.name == "run":
                await self._run(state, inst)
            elif isinstance(inst, ins.Copy):
                await self._copy(state, inst)
            elif isinstance(inst, ins.Workdir):
                plan = d.plan_workdir(inst, state)
                await self._layer_step(state, plan.probe,
                                       lambda root: copier.make_workdir(
                                           root, plan.config["WorkingDir"]))
            else:
                plan = d.plan_meta(inst, state)
                if plan.note:
                    self.out(plan.note)
                await self._meta_step(state, plan.probe)
        finally:
            if self.req.force_remove or self.req.remove:
                await self._remove_all()

    def _step(self, state: d.StageState, probe: dict[str, Any], container: str = ""
              ) -> StepCommit:
        base = getattr(self, "scratch_base", {}) if not state.image_id else {}
        return StepCommit(config=copy.deepcopy(state.config), container_config=probe,
                          author=state.maintainer, container=container, base=base)

    async def _probe(self, state: d.StageState, probe: dict[str, Any]) -> bool:
        """Use a cached result if there is one (and the cache is not busted)."""
        if self.req.no_cache or self.cache_busted or not state.has_base:
            return False
        found = await self._lookup(state.image_id, probe)
        if found is None:
            self.cache_busted = True
            return False
        self.out(" ---> Using cache\n")
        state.image_id = found
        return True

    async def _lookup(self, parent: str, probe: dict[str, Any]) -> str | None:
        key = cache_key(parent, probe, self.req.cache_platform)
        hit = self.cache.get(key)
        if hit:
            info = self.engine.find_image(hit)
            if info is None or info.parent != parent:
                hit = None
        if self.sources is None:
            return hit
        if hit and any(self._is_ancestor(hit, s.id) for s in self.sources):
            return hit
        parent_info = self.engine.find_image(parent) if parent else None
        parent_cfg = parent_info.config if parent_info is not None else None
        for src in self.sources:
            m = match_history(parent_cfg, src, probe)
            if m is None:
                continue
            found, cfg = m
            if cfg is not None:
                found = await self.engine.add_image_config(cfg, parent)
            self.sources = [src]
            return found
        return None

    def _is_ancestor(self, image_id: str, of: str) -> bool:
        cur: str = of
        seen = 0
        while cur and seen < 10000:
            if cur == image_id:
                return True
            info = self.engine.find_image(cur)
            cur = info.parent if info else ""
            seen += 1
        return False

    def _cache_sources(self) -> list[CacheSource]:
        out = []
        for ref in self.req.cache_from:
            try:
                info = self.engine.image(ref)
            except NotFound:
                log.info("build: --cache-from %s: no such image, skipped", ref)
                continue
            out.append(CacheSource(info.id, info.config))
        return out

    def _record(self, parent: str, probe: dict[str, Any], image_id: str) -> None:
        self.cache.put(cache_key(parent, probe, self.req.cache_platform), image_id)

    async def _meta_step(self, state: d.StageState, probe: dict[str, Any]) -> None:
        if not state.has_base:
            raise InvalidParameter("Please provide a source image with `from` prior to commit")
        if await self._probe(state, probe):
            return
        parent = state.image_id
        state.image_id = await self.engine.commit_metadata(parent, self._step(state, probe))
        self._record(parent, probe, state.image_id)

    async def _layer_step(self, state: d.StageState, probe: dict[str, Any],
                          write: Callable[[Path], None]) -> None:
        if await self._probe(state, probe):
            return
        parent = state.image_id
        layer: Layer = await self.engine.open_layer(parent)
        try:
            await run_in_thread(lambda _token: write(layer.root))
            state.image_id = await self.engine.commit_layer(layer, self._step(state, probe))
        finally:
            await self.engine.release_layer(layer)
        self._record(parent, probe, state.image_id)

    # ------------------------------------------------------------ RUN
    async def _run(self, state: d.StageState, inst: ins.Command) -> None:
        plan = d.plan_run(inst, state)
        if await self._probe(state, plan.probe):
            return
        body = {k: plan.container.get(k) for k in (
            "Cmd", "Entrypoint", "Env", "User", "WorkingDir", "Healthcheck", "ArgsEscaped")}
        body.update({"Image": state.image_id or "scratch", "AttachStdout": True,
                     "AttachStderr": True})
        if not state.image_id:
            raise InvalidParameter(f"cannot RUN '{plan.command_text}' on an empty file system "
                                   "(FROM scratch, nothing copied yet): there is no shell")

        def created(cid: str) -> None:
            self.containers.append(cid)
            self.out(f" ---> Running in {cid[:12]}\n")

        cid, code = await self.engine.run_step(body, self.req.host_config,
                                               self.process_output, created)
        if code != 0:
            raise StepFailed(f"The command '{plan.command_text}' returned a non-zero code: "
                             f"{code}", code)
        parent = state.image_id
        state.image_id = await self.engine.commit_container(
            cid, parent, self._step(state, plan.probe, container=cid))
        self._record(parent, plan.probe, state.image_id)

    async def _remove(self, cid: str, quiet: bool = False) -> None:
        try:
            await self.engine.remove_container(cid)
        except NotFound:
            pass
        except DockyardError as e:
            if not quiet:
                self.out(f"Removing intermediate container {cid[:12]}: {e.message}\n")
            return
        with contextlib.suppress(ValueError):
            self.containers.remove(cid)
        if not quiet:
            self.out(f" ---> Removed intermediate container {cid[:12]}\n")

    async def _remove_all(self) -> None:
        for cid in list(self.containers):
            await self._remove(cid)

    # ------------------------------------------------------------ COPY / ADD
    async def _copy(self, state: d.StageState, inst: ins.Copy) -> None:
        d.check_copy_flags(inst)
        cmd = inst.name.upper()
        if inst.chmod:
            copier.parse_chmod(inst.chmod)
        if inst.inline:
            raise InvalidParameter(f"{cmd} with a heredoc source is not supported by this "
                                   "builder; put the file in the build context")
        if inst.from_:
            await self._copy_from(state, inst)
            return
        context = self.req.context
        tree = context.tree
        fetched: list[ctx.Source] = []
        local = [s for s in inst.sources if not is_url(s)]
        if inst.name == "copy" and len(local) != len(inst.sources):
            raise InvalidParameter("COPY failed: source can't be a URL for COPY")
        for url in (s for s in inst.sources if is_url(s)):
            fetched.append(await fetch_url(url, inst.dest, self.workdir, self.emit))
        found = await run_in_thread(lambda _t: ctx.sources(tree, local, cmd, context.digest)
                                    if local else [])
        await self._copy_step(state, inst, [*found, *fetched], context, keep_owner=False)

    async def _copy_from(self, state: d.StageState, inst: ins.Copy) -> None:
        cmd = inst.name.upper()
        try:
            stage = self._stage_by_name_or_index(inst.from_)
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid from flag value {inst.from_}: {e.message}") from None
        if stage is not None:
            image_id = stage.image_id
        else:
            try:
                image_id = (await self.engine.ensure_base_image(
                    inst.from_, "", self.req.pull, self.req.auth, self.emit)).id
            except DockyardError as e:
                # as dockerd's classic builder: whatever the lookup or the
                # pull said, under the flag's name
                raise InvalidParameter(f"invalid from flag value {inst.from_}: "
                                       f"{e.message}") from None
        mnt = self.workdir / f"from-{secrets.token_hex(4)}"
        lowers = self.engine.lower_dirs(image_id) if image_id else []
        with image_root(lowers, mnt) as root:
            tree = await run_in_thread(lambda _t: image_tree(root))
            context = Context(tree, self.req.context.spool)
            found = await run_in_thread(lambda _t: ctx.sources(
                tree, inst.sources, cmd, context.digest, from_image=True))
            await self._copy_step(state, inst, found, context, keep_owner=True)

    async def _copy_step(self, state: d.StageState, inst: ins.Copy, found: list[ctx.Source],
                         context: Context, keep_owner: bool) -> None:
        cmd = inst.name.upper()
        dest = d.copy_destination(state.config.get("WorkingDir") or "", inst.dest)
        if len(found) > 1 and not inst.dest.endswith("/"):
            raise InvalidParameter(f"When using {cmd} with more than one source file, the "
                                   "destination must be a directory and end with a /")
        plan = d.plan_copy(inst, state, ctx.sources_hash(found))
        job = copier.CopyJob(cmd, found, dest, chown=inst.chown, chmod=inst.chmod,
                             keep_owner=keep_owner, unpack=inst.name == "add")
        await self._layer_step(state, plan.probe,
                               lambda root: copier.copy_into(root, job, context))
