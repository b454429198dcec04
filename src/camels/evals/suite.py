"""Suites and run planning: which tasks to run, with which data, checked before a model is loaded.

The library behind ``camels eval`` (the CLI only parses and prints) and ``camels demo``:

1. :func:`load_suite` reads a suite YAML (a name in ``configs/eval`` or a path): ``{"name", "version",
   "tasks": [{"name", "task", "options", "status"}]}``; tasks with ``status: pending`` are listed, not run.
2. :func:`plan` turns a suite or a list of task names, plus per-task option overrides and data folders,
   into a :class:`Plan`: the built tasks, each with its data path, and the pending names.
3. :func:`check_data` reads every planned task's data (the pre-check): all problems are reported at once,
   before any model time is spent; the data read is kept for the run (read once).
4. :func:`evaluate` runs the planned tasks with one backend into the runs layout
   (:mod:`camels.core.layout`), through one request cache; with ``batch_tasks`` the model answers all
   tasks' requests in one pass (fuller batches, one call per chunk across tasks), each task then scored
   and written on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core import layout
from camels.core.errors import CamelsError, ConfigError
from camels.core.requests import request_key
from camels.core.results import TaskResult
from camels.evals.cache import RequestCache
from camels.evals.runner import (
    DEFAULT_CHUNK_SIZE,
    RunStats,
    answer_requests,
    finish_task,
    prepare_task,
    run_task,
)
from camels.evals.task import PRESETS, TASKS, Task, TaskData, task_names


def suite_dirs() -> list[Path]:
    """Where named suites are looked up: ``./configs/eval``, then the suites shipped with camels."""
    return [Path.cwd() / "configs" / "eval", Path(__file__).resolve().parents[1] / "configs" / "eval"]


@dataclass(frozen=True, slots=True)
class SuiteTask:
    """One line of a suite: the run's ``name`` (its folder), the task or preset it runs, option overrides,
    and ``status`` (``"pending"``: listed for completeness, not run)."""

    name: str
    task: str
    options: dict[str, Any] = field(default_factory=dict)
    status: str = ""


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    path: Path
    tasks: tuple[SuiteTask, ...]
    version: Any = None
    description: str = ""


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (``tulu-v1``: ``configs/eval/tulu-v1.yaml``, here or shipped) or by YAML path."""
    from camels.core.config import read_yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = next((d / f"{name_or_path}.yaml" for d in suite_dirs() if (d / f"{name_or_path}.yaml").is_file()),
                    path)
    if not path.is_file():
        known = sorted({p.stem for d in suite_dirs() if d.is_dir() for p in d.glob("*.yaml")})
        raise ConfigError(f"no suite {str(name_or_path)!r} (known: {', '.join(known) or 'none'})")
    raw = read_yaml(path)[0] or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
        raise ConfigError(f"{path}: a suite needs a 'tasks' list")
    tasks = []
    for i, t in enumerate(raw["tasks"]):
        if not isinstance(t, dict) or "name" not in t:
            raise ConfigError(f"{path}: tasks[{i}] needs a 'name'")
        options = t.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: tasks[{i}].options must be a mapping")
        tasks.append(SuiteTask(name=str(t["name"]), task=str(t.get("task", t["name"])), options=dict(options),
                               status=str(t.get("status") or "")))
    return Suite(name=str(raw.get("name", path.stem)), path=path, tasks=tuple(tasks), version=raw.get("version"),
                 description=str(raw.get("description", "")))


@dataclass(slots=True)
class Plan:
    """What a run will do: ``tasks`` (built, in order), each task's data path by label, and the
    ``pending`` suite entries that are skipped."""

    tasks: list[Task]
    data: dict[str, str | Path | None]
    pending: list[str] = field(default_factory=list)


def build_task(label: str, task: str, options: Mapping[str, Any] | None = None) -> Task:
    """The task ``task`` (a task or preset name) under the run name ``label``, with ``options`` applied
    after the preset's."""
    task_names()  # load the built-in tasks
    options = dict(options or {})
    if task in PRESETS:
        base, preset = PRESETS[task]
        return TASKS[base](label=label, **{**preset, **options})
    if task in TASKS:
        return TASKS[task](label=label, **options)
    raise ConfigError(f"unknown task {task!r} for {label!r} (known: {', '.join(task_names())})")


def plan(
    *,
    suite: str | Path | Suite | None = None,
    tasks: Sequence[str] = (),
    options: Mapping[str, Mapping[str, Any]] | None = None,
    data: str | Path | None = None,
    task_data: Mapping[str, str | Path] | None = None,
) -> Plan:
    """Plan a run of a ``suite`` or of named ``tasks`` (exactly one of the two).

    ``options`` maps a run name or a task name to option overrides (``{"mmlu_5shot": {"subjects":
    ["virology"]}}``); a key that matches no planned task is an error. ``data`` is the default data folder
    (each task looks in ``data/<task>`` first), ``task_data`` a folder per run or task name.
    """
    if (suite is None) == (not tasks):
        raise ConfigError("plan a suite or a list of tasks (exactly one)")
    task_names()
    entries: list[tuple[str, str, dict[str, Any]]] = []
    pending: list[str] = []
    if suite is not None:
        s = suite if isinstance(suite, Suite) else load_suite(suite)
        for t in s.tasks:
            if t.status == "pending":
                pending.append(t.name)
            else:
                entries.append((t.name, t.task, dict(t.options)))
    else:
        entries = [(name, name, {}) for name in tasks]
    for label, task, _ in entries:
        if task not in TASKS and task not in PRESETS:
            raise ConfigError(f"unknown task {task!r} for {label!r} (known: {', '.join(task_names())})")
    for key, overrides in (options or {}).items():
        matched = [e for e in entries if key in (e[0], e[1])]
        if not matched:
            raise ConfigError(f"task option for {key!r}: no task {key!r} in this run")
        for e in matched:
            e[2].update(overrides)
    built = [build_task(*e) for e in entries]
    task_data = dict(task_data or {})
    paths = {t.label: task_data.get(t.label, task_data.get(t.name, data)) for t in built}
    return Plan(tasks=built, data=paths, pending=pending)


def check_data(plan: Plan) -> dict[str, TaskData]:
    """Read every planned task's data before a model is loaded; return it by run name.

    A missing or broken benchmark file is reported for all tasks at once, in one :class:`ConfigError`
    (nothing has run), not after the tasks before it have spent model time.
    """
    problems, loaded = [], {}
    for task in plan.tasks:
        try:
            loaded[task.label] = task.load(task.resolve_data_path(plan.data.get(task.label)))
        except CamelsError as e:
            problems.append(f"{task.label}: {e}")
    if problems:
        raise ConfigError("benchmark data problems, found before loading the model (nothing was run):\n  "
                          + "\n  ".join(problems))
    return loaded


def cache_path_for(output: str | Path, cache_path: str | Path | None = None,
                   shard: tuple[int, int] | None = None) -> Path:
    """The cache file a run uses: ``cache_path`` or ``<output>/.cache/requests.sqlite``; for a shard, the
    shard's own file beside it (``requests.shard-I-of-N.sqlite``: SQLite must not be shared over a network
    file system, so each machine writes its own; ``camels merge-cache`` combines them)."""
    path = Path(cache_path) if cache_path is not None else layout.cache_file(output)
    return layout.shard_cache_file(path, shard) if shard is not None else path


@dataclass(slots=True)
class TaskRun:
    """One task's outcome in :func:`evaluate`: its run folder and metrics (``None`` for a shard run)."""

    task: Task
    run_dir: Path
    result: TaskResult | None


def evaluate(
    plan: Plan,
    backend: Any,
    *,
    model: str,
    output: str | Path,
    run_name: str | None = None,
    loaded: Mapping[str, TaskData] | None = None,
    cache_path: str | Path | None = None,
    cache: RequestCache | None = None,
    limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend_options: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
    scorers: Mapping[str, Any] | None = None,
    on_result: Callable[[TaskRun], None] | None = None,
    batch_tasks: bool = False,
) -> list[TaskRun]:
    """Run every planned task with ``backend`` into ``<output>/<model slug or run_name>/<task>/``.

    One request cache serves all tasks: ``cache`` when given (opened by the caller, e.g. before it loads
    the model, so a bad cache file is reported first), else :func:`cache_path_for` (``cache_path``, default
    ``<output>/.cache/requests.sqlite``, or the shard's own file).
    ``loaded`` is what :func:`check_data` returned (read again where absent). ``on_result`` is called after
    each task (the CLI prints a line there).

    ``batch_tasks``: answer the model requests of all tasks in one pass over the backend (requests shared by
    tasks are computed once; chunks span task boundaries), then score and write each task. The answers, the
    files and the per-task counts in each manifest are those of running the tasks one by one; only how
    requests are grouped into backend calls differs. With a shard, the shard slices all tasks' requests
    together.
    """
    runs = []
    with contextlib.ExitStack() as stack:
        if cache is None:
            cache = stack.enter_context(RequestCache(cache_path_for(output, cache_path, shard)))
        if batch_tasks and len(plan.tasks) > 1:
            return _evaluate_batched(plan, backend, cache, model=model, output=output, run_name=run_name,
                                     loaded=loaded or {}, limit=limit, chunk_size=chunk_size,
                                     backend_options=backend_options, command=command, shard=shard,
                                     scorers=scorers, on_result=on_result)
        for task in plan.tasks:
            folder = layout.run_dir(output, model, task.label, run_name)
            result = run_task(task, backend, folder, model=model, cache=cache, data_path=plan.data.get(task.label),
                              loaded=(loaded or {}).get(task.label), limit=limit, chunk_size=chunk_size,
                              backend_options=backend_options, command=command, shard=shard, scorers=scorers)
            run = TaskRun(task=task, run_dir=folder, result=result)
            runs.append(run)
            if on_result is not None:
                on_result(run)
    return runs


def _evaluate_batched(plan: Plan, backend: Any, cache: RequestCache, *, model: str, output: str | Path,
                      run_name: str | None, loaded: Mapping[str, TaskData], limit: int | None, chunk_size: int,
                      backend_options: dict[str, Any] | None, command: Sequence[str] | None,
                      shard: tuple[int, int] | None, scorers: Mapping[str, Any] | None,
                      on_result: Callable[[TaskRun], None] | None) -> list[TaskRun]:
    folders = [layout.run_dir(output, model, t.label, run_name) for t in plan.tasks]
    stages = [None if shard is not None else layout.stage(f) for f in folders]
    prepared = [prepare_task(t, backend, st, model=model, data_path=plan.data.get(t.label), limit=limit,
                             chunk_size=chunk_size, backend_options=backend_options, loaded=loaded.get(t.label),
                             scorers=scorers)
                for t, st in zip(plan.tasks, stages)]
    per_task = [p.requests for p in prepared]
    results, stats = answer_requests(backend, [r for reqs in per_task for r in reqs], cache, chunk_size=chunk_size,
                                     desc="+".join(t.label for t in plan.tasks), shard=shard)
    runs = []
    fp = backend.info.fingerprint
    pos = 0
    attributed: set[str] = set()
    for p, folder, st, reqs in zip(prepared, folders, stages, per_task):
        part = results[pos : pos + len(reqs)] if results is not None else None
        pos += len(reqs)
        result = None
        if part is not None and st is not None:
            result = finish_task(p, backend, part, _task_stats(reqs, fp, stats, attributed), cache, command=command)
            layout.commit(st, folder)
        run = TaskRun(task=p.task, run_dir=folder, result=result)
        runs.append(run)
        if on_result is not None:
            on_result(run)
    return runs


def _task_stats(requests: Sequence[Any], fingerprint: str, total: RunStats, attributed: set[str]) -> RunStats:
    """One task's share of a pass answered for several tasks: a request computed in the pass counts as
    computed for the first task that asked it, and as a cache hit for the others (as if run one by one)."""
    unique = {request_key(r, fingerprint) for r in requests}
    computed = (unique & total.computed_keys) - attributed
    rejected = (unique & total.rejected_keys) - attributed
    attributed |= computed | rejected
    return RunStats(requests=len(requests), unique_requests=len(unique), cache_hits=len(unique) - len(computed),
                    computed=len(computed), cache_rejected=len(rejected))
