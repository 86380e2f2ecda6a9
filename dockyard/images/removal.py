"""`docker rmi` and `docker image prune`, with dockerd's conflict rules.

Follows moby's daemon/images/image_delete.go: removing by reference untags
first and deletes the image only when no reference is left; removing by ID
removes a single repository's references; hard conflicts (a running
container, dependent child images) cannot be forced, soft ones (a stopped
container, other references) can.  Synchronous: runs in a thread under the
service lock.  Events are collected for the service to emit afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard.errors import Conflict, DockyardError
from dockyard.images.filters import created_ts
from dockyard.images.reference import Reference, parse_any
from dockyard.images.store import ImageRecord, ImageStore

ContainersUsing = Callable[[str], list[tuple[str, bool]]]


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _is_single_reference(refs: list[Reference]) -> bool:
    """One tag (plus digests of the same repository) - dockerd's isSingleReference."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    names: set[str] = set()
    for r in refs:
        if r.digest:
            names.add(r.name)
        elif single is None:
            names.add(r.name)
            single = r
        else:
            return False
    single = single or refs[0]
    return len(names) == 1 and single.name in names


class _DeleteConflict(Conflict):
    def __init__(self, image_id: str, message: str, hard: bool, used: bool) -> None:
        force = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {_short(image_id)} ({force}) - {message}")
        self.hard, self.used = hard, used


class Remover:
    def __init__(self, store: ImageStore, containers_using: ContainersUsing) -> None:
        self.store = store
        self.containers_using = containers_using
        self.events: list[tuple[str, str, dict[str, str]]] = []

    def _event(self, action: str, rec: ImageRecord) -> None:
        self.events.append((action, rec.id, {**rec.labels, "name": rec.id}))

    def _untag(self, ref: Reference, rec: ImageRecord, records: list[dict[str, str]]) -> None:
        self.store.remove_ref(ref)
        records.append({"Untagged": ref.familiar()})
        self._event("untag", rec)

    def delete(self, name: str, force: bool, prune: bool) -> list[dict[str, str]]:
        rec = self.store.resolve(name)
        records: list[dict[str, str]] = []
        refs = self.store.refs_of(rec.id)
        parsed = parse_any(name)
        by_id = isinstance(parsed, str) or rec.id.split(":", 1)[1].startswith(
            name.removeprefix("sha256:"))
        if not by_id:
            assert isinstance(parsed, Reference)
            ref = parsed.with_default_tag()
            if not force and _is_single_reference(refs):
                users = self.containers_using(rec.id)
                if users:
                    raise Conflict(
                        f"conflict: unable to remove repository reference \"{name}\" "
                        f"(must force) - container {users[0][0][:12]} is using its "
                        f"referenced image {_short(rec.id)}")
            self._untag(ref, rec, records)
            refs = self.store.refs_of(rec.id)
            if not ref.digest and not any(
                    not r.digest and r.name == ref.name for r in refs):
                # the last tag of a repository takes its digest references along
                for r in [r for r in refs if r.digest and r.name == ref.name]:
                    self._untag(r, rec, records)
                refs = self.store.refs_of(rec.id)
            if refs:
                return records
            self._delete_helper(rec, records, force, prune, quiet=True)
            return records
        if _is_single_reference(refs):
            self._check_conflict(rec, force, references=False)
            for r in refs:
                self._untag(r, rec, records)
        self._delete_helper(rec, records, force, prune, quiet=False)
        return records

    def _check_conflict(self, rec: ImageRecord, force: bool, references: bool = True) -> None:
        """dockerd's checkImageDeleteConflict; hard conflicts always, soft unless forced."""
        if self.store.children(rec.id):
            raise _DeleteConflict(rec.id, "image has dependent child images", True, False)
        users = self.containers_using(rec.id)
        running = [c for c, is_running in users if is_running]
        if running:
            raise _DeleteConflict(
                rec.id, f"image is being used by running container {running[0][:12]}",
                True, True)
        if force:
            return
        if references and self.store.refs_of(rec.id):
            raise _DeleteConflict(rec.id, "image is referenced in multiple repositories",
                                  False, False)
        if users:
            raise _DeleteConflict(
                rec.id, f"image is being used by stopped container {users[0][0][:12]}",
                False, True)

    def _delete_helper(self, rec: ImageRecord, records: list[dict[str, str]], force: bool,
                       prune: bool, quiet: bool) -> None:
        try:
            self._check_conflict(rec, force)
        except _DeleteConflict as c:
            dangling = not self.store.refs_of(rec.id)
            if quiet and (not dangling or c.used):
                return                 # the untag was the whole job
            raise
        parent = rec.parent
        for r in self.store.refs_of(rec.id):
            self._untag(r, rec, records)
        if self.containers_using(rec.id):
            # forced past a stopped container: keep the layers it runs on
            self.store.set_hidden(rec, True)
            removed: list[str] = []
        else:
            removed = self.store.delete_image(rec.id)
        self._event("delete", rec)
        records.append({"Deleted": rec.id})
        records.extend({"Deleted": c} for c in removed)
        if prune and parent and parent in self.store.images:
            prec = self.store.images[parent]
            if not self.store.refs_of(parent) and not self.store.children(parent):
                try:
                    self._delete_helper(prec, records, False, True, quiet=True)
                except DockyardError:
                    pass

    def collect_hidden(self) -> None:
        """Drop images hidden by a forced rmi once no container uses them."""
        for rec in [r for r in self.store.images.values() if r.hidden]:
            if not self.containers_using(rec.id):
                self.store.delete_image(rec.id)

    def prune(self, dangling_only: bool, until: list[float],
              label_ok: Callable[[ImageRecord], bool]) -> dict[str, Any]:
        self.collect_hidden()
        st = self.store
        sizes_before = dict(st.layer_sizes)
        deleted: list[dict[str, str]] = []
        candidates = [r for r in st.images.values() if not r.hidden
                      and (not dangling_only or not st.children(r.id))]
        for rec in candidates:
            if rec.id not in st.images:
                continue
            refs = st.refs_of(rec.id)
            if not refs and st.children(rec.id):
                continue
            if any(created_ts(rec.created) >= u for u in until) or not label_ok(rec):
                continue
            names: list[str]
            if refs:
                if dangling_only and any(not r.digest for r in refs):
                    continue
                names = [str(r) for r in refs]
            else:
                names = [rec.id.split(":", 1)[1]]
            for n in names:
                try:
                    deleted += self.delete(n, False, True)
                except (Conflict, DockyardError):
                    continue
        reclaimed = sum(sizes_before.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
