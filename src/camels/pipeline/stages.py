"""Stages, their keys and their done-markers: what makes a rerun pick up where the last one stopped.

A stage (convert one source, mix, decontaminate, train, evaluate one model, report) has a **key**: the
sha256 of its kind, its part of the config, and its inputs, where an input is either a file or folder that
the pipeline does not write (raw data, benchmark files, a base model: hashed by content) or the output of an
earlier stage (represented by that stage's key, not by its bytes). Keys are therefore known before anything
runs, which is what ``--dry-run`` prints.

When a stage finishes, a marker ``<output>/.camels/stages/<stage>.json`` holding its key (and the version
of camels that ran it) is written atomically, after its outputs are complete. A stage is **reused** when its
marker holds the current key and its outputs exist; otherwise it runs. camels' own version is not part of a
key (an upgrade would otherwise train every model again): a stage done by another version is reused, and its
status says so and how to run it again (``rerun``: ``camels run --rerun STAGE``). While it runs, a ``<stage>.started.json`` marker holds the key, so a
rerun after a crash knows whether what it finds belongs to the same inputs: training then **resumes** from
its latest checkpoint and evaluation takes every answer it already has from the request cache; output of
other inputs is cleared first.

Content hashes of input files are remembered in ``<output>/.camels/hashes.json`` by (path, size, mtime,
ctime: a file replaced by another version with its old mtime put back is read again),
so a base model of many gigabytes is read once, not at every run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels import __version__
from camels.core.errors import ConfigError
from camels.core.io import read_json, sha256_file, sha256_text, write_json

FORMAT = 1  # changes when what a key covers changes: every stage then runs again
STATE_DIR = ".camels"
KINDS = ("data", "train", "eval", "report")


def stage_key(kind: str, **parts: Any) -> str:
    """The key of a stage: sha256 of its kind and parts as canonical JSON."""
    text = json.dumps({"format": FORMAT, "kind": kind, **parts}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=str)
    return sha256_text(text)


class Hasher:
    """Content hashes of input files and folders, remembered by (path, size, mtime) between runs."""

    def __init__(self, memo: Path | None = None) -> None:
        self.memo = memo
        self._known: dict[str, list[Any]] = {}
        self._dirty = False
        if memo is not None and memo.is_file():
            try:
                self._known = dict(read_json(memo))
            except Exception:  # noqa: BLE001 (a damaged memo only costs re-hashing)
                self._known = {}

    def file(self, path: str | Path) -> str:
        p = Path(path).resolve()
        st = p.stat()
        seen = self._known.get(str(p))
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]  # ctime: no copy or unpacking tool sets it back
        if seen and len(seen) == 4 and seen[:3] == stamp:
            return str(seen[3])
        digest = sha256_file(p)
        self._known[str(p)] = [*stamp, digest]
        self._dirty = True
        return digest

    def path(self, path: str | Path) -> str:
        """A file's hash, or a folder's: the hash of its files' relative names and hashes (hidden entries,
        such as a request cache in ``.cache/``, are left out)."""
        p = Path(path)
        if p.is_file():
            return self.file(p)
        if not p.is_dir():
            raise ConfigError(f"{p}: no such file or folder")
        entries = []
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                f = Path(root) / name
                entries.append([f.relative_to(p).as_posix(), self.file(f)])
        return stage_key("folder", entries=entries)

    def model(self, name: str) -> str:
        """A local model folder by content; a hub name by its name only (``ORG/NAME@COMMIT`` ties the key to
        exact weights; see docs/pipeline.md)."""
        return self.path(name) if Path(name).exists() else f"hub:{name}"

    def save(self) -> None:
        if self.memo is not None and self._dirty:
            self.memo.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.memo, self._known)
            self._dirty = False


@dataclass
class Stage:
    """One step of a pipeline. ``run(action)`` does the work (``action`` is ``run`` or ``resume``);
    ``outputs`` must exist for the stage to count as done; ``clean`` is removed before a fresh run."""

    id: str
    kind: str
    key: str
    outputs: list[Path]
    run: Callable[[str], Any]
    what: str
    clean: list[Path] = field(default_factory=list)
    resumable: bool = False  # an interrupted run of the same key continues (training, evaluation)
    can_resume: Callable[[], bool] = lambda: True


@dataclass
class Status:
    action: str  # reuse | run | resume
    reason: str


class StageState:
    """The markers of one output folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / STATE_DIR / "stages"

    def done(self, stage_id: str) -> dict[str, Any] | None:
        return _read(self.marker(stage_id))

    def started(self, stage_id: str) -> dict[str, Any] | None:
        return _read(self.marker(stage_id, started=True))

    def mark_started(self, stage: Stage) -> None:
        write_json(self.marker(stage.id, started=True), {"stage": stage.id, "key": stage.key})

    def marker(self, stage_id: str, *, started: bool = False) -> Path:
        """The done-marker of ``stage_id``; ``started``: the marker of its run under way."""
        return self.dir / (f"{stage_id}.started.json" if started else f"{stage_id}.json")

    def mark_done(self, stage: Stage, seconds: float) -> None:
        write_json(self.marker(stage.id), {"stage": stage.id, "key": stage.key, "kind": stage.kind,
                                           "seconds": round(seconds, 3), "camels": __version__})
        self.marker(stage.id, started=True).unlink(missing_ok=True)

    def forget(self, stage_id: str) -> None:
        self.marker(stage_id).unlink(missing_ok=True)

    def status(self, stage: Stage) -> Status:
        done = self.done(stage.id)
        missing = [p for p in stage.outputs if not p.exists()]
        if done is not None and done.get("key") == stage.key:
            if missing:
                return Status("run", f"output missing: {missing[0]}")
            version = done.get("camels")
            if version == __version__:
                return Status("reuse", "done with the same key")
            by = f"camels {version}" if version else "an earlier camels (its version not recorded)"
            return Status("reuse", f"done with the same key by {by}, not camels {__version__}: to run it again, "
                                   f"pass --rerun {stage.id} or delete {self.marker(stage.id)}")
        started = self.started(stage.id)
        if started is not None and started.get("key") == stage.key and stage.resumable and stage.can_resume():
            return Status("resume", "interrupted run of the same key")
        if done is not None:
            return Status("run", f"key changed (was {str(done.get('key'))[:12]}): inputs or config differ")
        if started is not None and started.get("key") != stage.key:
            return Status("run", "an interrupted run of other inputs is discarded")
        if started is not None:
            return Status("run", "interrupted before it could resume (no checkpoint)")
        return Status("run", "not run before")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = read_json(path)
    except Exception:  # noqa: BLE001 (absent or damaged marker: as if not there)
        return None
    return obj if isinstance(obj, dict) else None


def is_main_process() -> bool:
    """Under ``accelerate launch`` every process runs the command; only the first writes markers and says."""
    return os.environ.get("RANK", "0") == "0"


def plan_table(stages: Sequence[Stage], statuses: Sequence[Status]) -> str:
    """The dry-run view: one line per stage with its key, its action and why."""
    width = max([len(s.id) for s in stages] + [5])
    lines = [f"  {'stage':{width}s}  {'key':12s}  {'action':7s} why"]
    for s, st in zip(stages, statuses):
        lines.append(f"  {s.id:{width}s}  {s.key[:12]}  {st.action:7s} {st.reason}; {s.what}")
    return "\n".join(lines)


def execute(stages: Sequence[Stage], root: Path, *, dry_run: bool = False, only: Iterable[str] = (),
            rerun: Iterable[str] = (), say: Callable[[str], None] = print) -> list[tuple[Stage, Status]]:
    """Run (or with ``dry_run`` only plan) ``stages`` in order; returns each stage with its status.

    ``only``: stage kinds (data, train, eval, report) to run; every earlier stage of another kind must be
    done already (an error names it), later ones are left for another call. ``rerun``: stage ids run afresh
    even when done with the same key (stale output, another camels version); their keys stay the same, so the
    stages after them are still reused unless named too.
    """
    state = StageState(root)
    only = set(only)
    unknown = only - set(KINDS)
    if unknown:
        raise ConfigError(f"--only: unknown stage kind {sorted(unknown)[0]!r} (known: {', '.join(KINDS)})")
    rerun = set(rerun)
    ids = [s.id for s in stages]
    absent = sorted(rerun - set(ids))
    if absent:
        raise ConfigError(f"--rerun: no stage {absent[0]!r} in this run (stages: {', '.join(ids)})")
    for s in stages:
        if s.id in rerun and only and s.kind not in only:
            raise ConfigError(f"--rerun: stage {s.id} is a {s.kind} stage, not of the kinds asked for with --only")
    statuses = [Status("run", "asked for with --rerun") if s.id in rerun else state.status(s) for s in stages]
    if dry_run:
        return list(zip(stages, statuses))
    main = is_main_process()
    last = max((i for i, s in enumerate(stages) if not only or s.kind in only), default=-1)
    n = len(stages)
    for i, (stage, st) in enumerate(zip(stages, statuses), 1):
        if only and stage.kind not in only:
            if i - 1 < last and st.action != "reuse":
                raise ConfigError(f"stage {stage.id} ({stage.kind}) is not done ({st.reason}); it comes "
                                  f"before the stages asked for with --only: run it first")
            continue
        if st.action == "reuse":
            if main:
                say(f"[{i}/{n}] {stage.id}: reused ({st.reason}, key {stage.key[:12]})")
            continue
        if main:
            say(f"[{i}/{n}] {stage.id}: {st.action} ({st.reason}): {stage.what}")
            if st.action == "run":
                for p in stage.clean:
                    if p.exists():
                        say(f"[{i}/{n}] {stage.id}: removing {p} (output of other inputs or an unfinished run)")
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
            state.forget(stage.id)
            state.mark_started(stage)
        t0 = time.time()
        stage.run(st.action)
        seconds = time.time() - t0
        if main:
            state.mark_done(stage, seconds)
            say(f"[{i}/{n}] {stage.id}: done in {seconds:.1f}s")
    return list(zip(stages, statuses))
