"""The runner: items -> requests -> cache -> backend -> predictions.jsonl -> scores -> metrics.json.

One folder per (model, task): ``<output>/<model-slug>/<task label>/`` with

* ``config.resolved.json`` -- task name, version and full config, model, backend and its options, data
  path, limit, chunk size (written first, so even a crashed run says what it was);
* ``predictions.jsonl`` -- one :class:`camels.core.results.Prediction` per item, in item order;
* ``metrics.json`` -- the :class:`camels.core.results.TaskResult` (no clock time in it);
* ``manifest.json`` -- the :class:`camels.core.results.RunManifest` (written last: its presence means the
  run finished).

Why nothing is computed twice: requests are deduplicated by content key, looked up in the
:class:`~camels.evals.cache.RequestCache`, and only the missing ones go to the backend, in chunks of
``chunk_size`` requests; each answered chunk is committed to the cache before the next one starts. A run
killed midway loses at most the chunk in flight, and the rerun finds everything else in the cache. Keys
do not contain the batch size or the chunking, so changing either never recomputes anything.

Requests go to the backend in item order (grouped by kind), so requests that share a prompt prefix (the
5-shot MMLU exemplars of one subject) arrive together and a backend can reuse the prefix's KV cache.

Two phases. The model answers the task's requests; then, for tasks with ``scoring_kinds``, the task builds
scoring requests from each item's results (run this program, judge this answer) and the runner answers
them with the task's scorers (:mod:`camels.evals.scoring`) through the same :func:`answer_requests` and the
same cache, keyed by the scorer's fingerprint. A run killed while scoring resumes without repeating a
committed scoring chunk, and the verdicts are stored in ``predictions.jsonl`` beside the results::

    items --requests()--> model requests --answer_requests(backend)--> results
          --scoring_requests()--> scoring requests --answer_requests(scorer)--> verdicts
          --score(item, results, verdicts)--> scores --aggregate()--> metrics.json

Dispatch is generic: a request of kind ``k`` goes to ``getattr(answerer, REQUEST_TYPES[k].method)``.

:func:`rescore` recomputes scores and metrics from ``predictions.jsonl`` alone; :func:`score_outputs`
scores answers produced elsewhere (``{"id", "output"}`` per line).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from camels.backends.base import BackendError, UnsupportedRequest
from camels.core import layout
from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_jsonl, read_json, versions, write_json
from camels.core.layout import CACHE_FILE, model_slug
from camels.core.progress import progress
from camels.core.requests import (
    REQUEST_TYPES,
    RESULT_TYPES,
    Request,
    Result,
    request_key,
    request_key_material,
    result_from_dict,
)
from camels.core.results import (
    CONFIG_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    Prediction,
    RunManifest,
    TaskResult,
    read_predictions,
    write_predictions,
)
from camels.evals.cache import RequestCache
from camels.evals.scoring import build_scorers, scorer_info
from camels.evals.task import TASKS, Item, RequestContext, Task, TaskData, get_task

DEFAULT_CHUNK_SIZE = 64
COVERAGE_FILE = "coverage.json"
_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "vllm")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def request_context(backend: Any) -> RequestContext:
    """What tasks may know of the model: chat or plain prompts, and token counting if the backend has it."""
    # No chat format at all means the backend does not render prompts itself (an API chat endpoint that
    # applies the server's template): a chat model. Only an explicit "plain" means raw text continuation.
    kind = (backend.info.chat_format or {}).get("kind", "server_chat")
    count = getattr(backend, "count_prompt_tokens", None)
    if count is None and hasattr(backend, "prompt_text") and hasattr(backend, "encode"):
        def count(request: Request) -> int:  # the rendered prompt's tokens, BOS included
            return len(backend.encode(backend.prompt_text(request)))
    return RequestContext(chat=kind != "plain", count_tokens=count, max_length=getattr(backend, "max_length", None))


def dispatch(answerer: Any, kind: str, requests: Sequence[Any]) -> list[Any]:
    """Answer ``requests`` (all of ``kind``) with ``answerer``'s method for that kind, checking the answers.

    The method is the request class's ``method`` (``generate``, ``choose``, ``loglikelihood``, ``execute``
    ...); an answerer without it cannot serve the kind (:class:`UnsupportedRequest`, naming both). The
    answers must be as many as the requests and of the kind's result type, or nothing is cached.
    """
    cls = REQUEST_TYPES.get(kind)
    if cls is None:
        raise ConfigError(f"unknown request kind {kind!r} (registered: {', '.join(sorted(REQUEST_TYPES))})")
    method = getattr(answerer, cls.method, None)
    if not callable(method):
        info = getattr(answerer, "info", None)
        name = getattr(info, "name", type(answerer).__name__)
        raise UnsupportedRequest(f"{name} cannot answer {kind!r} requests: it has no {cls.method}() method")
    results = list(method(list(requests)))
    if len(results) != len(requests):
        raise BackendError(f"backend returned {len(results)} results for {len(requests)} {kind} requests")
    expected = RESULT_TYPES[kind]
    for r in results:  # never cache an answer of the wrong kind
        if not isinstance(r, expected):
            raise BackendError(f"backend answered a {kind} request with a {type(r).__name__}")
    return results


@dataclass(slots=True)
class RunStats:
    """Counts of one phase: requests, distinct ones, cache hits (found, or computed meanwhile by another
    process), computed here, and cached rows ``rejected`` because their checksum did not verify."""

    items: int = 0
    requests: int = 0
    unique_requests: int = 0
    cache_hits: int = 0
    computed: int = 0
    cache_rejected: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    # which keys were computed here and which cached rows were rejected (to split counts between tasks
    # answered in one pass); not written to manifests
    computed_keys: set[str] = field(default_factory=set)
    rejected_keys: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        d = {k: getattr(self, k) for k in ("items", "requests", "unique_requests", "cache_hits", "computed",
                                           "cache_rejected")}
        d.update({f"skipped_{k}": v for k, v in sorted(self.skipped.items())})
        return d

    def add(self, other: RunStats) -> None:
        for name in ("requests", "unique_requests", "cache_hits", "computed", "cache_rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.computed_keys |= other.computed_keys
        self.rejected_keys |= other.rejected_keys


def answer_requests(
    backend: Any,
    requests: Sequence[Request],
    cache: RequestCache,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    desc: str = "requests",
    shard: tuple[int, int] | None = None,
    poll_seconds: float = 0.2,
) -> tuple[list[Result] | None, RunStats]:
    """Answer ``requests`` (in order) from the cache, asking the backend only for what is missing.

    ``backend`` is a model backend or a scorer: anything with ``info.fingerprint`` and the methods of the
    requests' kinds (:func:`dispatch`).

    Each chunk of at most ``chunk_size`` new requests is leased in the cache, computed, and committed with
    its answers (releasing the lease) before the next chunk starts. Requests another live process has
    leased are left to it: this process computes the rest and then waits for those answers (taking over
    the lease if that process dies), so two runs on one cache compute every request once in total. A cached
    row whose checksum does not verify is recomputed and counted (``cache_rejected``), never used.

    With ``shard=(i, n)`` only the i-th of n contiguous slices of the distinct requests is computed (one
    process per GPU); the results are then ``None``: a later run without a shard finds everything in the
    cache.
    """
    if chunk_size < 1:
        raise ConfigError("chunk_size must be at least 1")
    fp = backend.info.fingerprint
    keys = [request_key(r, fp) for r in requests]
    unique: dict[str, Request] = {}
    for k, r in zip(keys, requests):
        unique.setdefault(k, r)
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ConfigError(f"shard {i}/{n}: need 0 <= i < n")
        ordered = list(unique.items())
        lo, hi = len(ordered) * i // n, len(ordered) * (i + 1) // n
        unique = dict(ordered[lo:hi])
    found, rejected = cache.lookup(unique)
    stats = RunStats(requests=len(requests), unique_requests=len(unique), cache_hits=len(found),
                     cache_rejected=len(rejected), rejected_keys=set(rejected))
    by_key: dict[str, Result] = {k: result_from_dict(kind, json.loads(js)) for k, (kind, js) in found.items()}

    queues: dict[str, list[str]] = {}
    for k, r in unique.items():
        if k not in by_key:
            queues.setdefault(r.kind, []).append(k)
    total_chunks = sum(-(-len(q) // chunk_size) for q in queues.values())
    for _ in progress(_computed_chunks(backend, unique, queues, by_key, stats, cache, chunk_size, poll_seconds,
                                       rejected),
                      desc=desc, total=total_chunks, unit="chunk"):
        pass
    if shard is not None:
        return None, stats
    return [by_key[k] for k in keys], stats


def _computed_chunks(backend: Any, unique: dict[str, Request], queues: dict[str, list[str]],
                     by_key: dict[str, Result], stats: RunStats, cache: RequestCache, chunk_size: int,
                     poll_seconds: float, rejected_before: Sequence[str]) -> Iterator[int]:
    """Claim, compute and commit chunks until every queued key has an answer; yield after each chunk."""
    fp = backend.info.fingerprint
    wait, told = poll_seconds, False
    counted_rejected = set(rejected_before)
    while any(queues.values()):
        progressed = False
        for kind, queue in queues.items():
            while queue:
                claimed, found, rejected = cache.claim(queue, chunk_size)
                stats.cache_rejected += len(set(rejected) - counted_rejected)  # rows damaged meanwhile
                counted_rejected.update(rejected)
                stats.rejected_keys.update(rejected)
                for k, (res_kind, js) in found.items():
                    by_key[k] = result_from_dict(res_kind, json.loads(js))
                stats.cache_hits += len(found)
                if claimed:
                    reqs = [unique[k] for k in claimed]
                    try:
                        results = dispatch(backend, kind, reqs)
                        cache.put_many(fp, reqs, results, keys=claimed)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            cache.release(claimed)
                        raise
                    by_key.update(zip(claimed, results))
                    stats.computed += len(claimed)
                    stats.computed_keys.update(claimed)
                done = set(claimed) | set(found)
                if not done:
                    break  # the rest of this kind is leased by another live process
                queue[:] = [k for k in queue if k not in done]
                progressed = True
                if claimed:
                    yield len(claimed)
        if not progressed and any(queues.values()):
            if not told:
                waiting = [k for q in queues.values() for k in q]
                holders = cache.lease_holders(waiting)
                print(f"camels: waiting for {len(waiting)} requests that another process "
                      f"({', '.join(holders) or 'gone'}) is computing", file=sys.stderr, flush=True)
                told = True
            time.sleep(wait)
            wait = min(wait * 1.5, 2.0)
        else:
            wait = poll_seconds


def _check_ids(items: Sequence[Item], label: str) -> None:
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise RecordError("duplicate_id", f"{label}: item id {it.id!r} appears twice", field="id")
        seen.add(it.id)


def answer_scoring(
    task: Task,
    scoring: Sequence[Sequence[Any]],
    scorers: dict[str, Any],
    cache: RequestCache,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[list[list[Any]], RunStats]:
    """The second phase: answer each item's scoring requests with the scorer of their kind, through
    :func:`answer_requests` (so through the cache); return the verdicts grouped per item and the counts."""
    flat = [r for reqs in scoring for r in reqs]
    by_kind: dict[str, list[int]] = {}
    for i, r in enumerate(flat):
        kind = getattr(r, "kind", None)
        if kind not in scorers:
            raise ConfigError(f"{task.label}: scoring_requests() returned a {kind!r} request, but the task's "
                              f"scoring_kinds are {list(task.scoring_kinds)}")
        by_kind.setdefault(kind, []).append(i)
    answers: list[Any] = [None] * len(flat)
    total = RunStats()
    for kind, positions in by_kind.items():
        res, st = answer_requests(scorers[kind], [flat[i] for i in positions], cache, chunk_size=chunk_size,
                                  desc=f"{task.label} {kind}")
        for i, v in zip(positions, res):
            answers[i] = v
        total.add(st)
    grouped, pos = [], 0
    for reqs in scoring:
        grouped.append(answers[pos : pos + len(reqs)])
        pos += len(reqs)
    return grouped, total


def _score_all(task: Task, items: Sequence[Item], results: Sequence[Sequence[Result]],
               requests: Sequence[Sequence[Request]] | None = None,
               extras: Sequence[dict[str, Any]] | None = None,
               scoring: Sequence[Sequence[Any]] | None = None,
               verdicts: Sequence[Sequence[Any]] | None = None) -> list[Prediction]:
    preds = []
    for i, (item, res) in enumerate(zip(items, results)):
        item_verdicts = list(verdicts[i]) if verdicts is not None else []
        preds.append(Prediction(
            id=item.id,
            task=task.label,
            item=item.data,
            requests=list(requests[i]) if requests is not None else [],
            results=list(res),
            output=task.output_text(item, res),
            scores=task.score(item, res, item_verdicts) if task.scoring_kinds else task.score(item, res),
            extra=extras[i] if extras is not None else {},
            scoring_requests=list(scoring[i]) if scoring is not None else [],
            verdicts=item_verdicts,
        ))
    return preds


def _task_result(task: Task, items: Sequence[Item], preds: Sequence[Prediction],
                 counts: dict[str, int]) -> TaskResult:
    if not preds:
        raise ConfigError(f"{task.label}: no items to score")
    metrics = task.aggregate(items, [p.scores for p in preds])
    return TaskResult(task=task.label, task_version=task.version, primary_metric=task.primary_metric,
                      metrics=metrics, counts=counts)


def resolved_config(task: Task, **run: Any) -> dict[str, Any]:
    return {"schema": 1, "task": {"name": task.label, "task": task.name, "version": task.version,
                                  "config": task.config_dict()}, **run}


def run_task(
    task: Task,
    backend: Any,
    run_dir: str | Path,
    *,
    model: str,
    cache: RequestCache,
    data_path: str | Path | None = None,
    limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend_options: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
    loaded: TaskData | None = None,
    scorers: Mapping[str, Any] | None = None,
) -> TaskResult | None:
    """Evaluate ``task`` with ``backend`` and write the run folder ``run_dir``; return its metrics.

    ``loaded`` is the task's data when the caller already read it from ``data_path`` (not read again).
    ``scorers`` maps scoring kinds to the objects that answer them; a kind of ``task.scoring_kinds`` not
    given is built by its registered factory (:func:`camels.evals.scoring.build_scorers`), before any
    request is answered, so a missing scorer fails before model time is spent.

    The run folder is published whole (:func:`camels.core.layout.publishing`): a reader finds the previous
    run's complete files or this run's, never a mix; until it finishes, this run's files (its
    ``config.resolved.json`` first) are in ``.<task>.partial-<pid>/`` beside it.

    With ``shard=(i, n)`` only fill the cache with the i-th slice of the requests and return ``None``
    (nothing is written to ``run_dir``); run again without a shard to write the folder from the cache.
    """
    prep = dict(model=model, data_path=data_path, limit=limit, chunk_size=chunk_size,
                backend_options=backend_options, loaded=loaded, scorers=scorers)
    if shard is not None:
        p = prepare_task(task, backend, None, **prep)
        answer_requests(backend, p.requests, cache, chunk_size=chunk_size, desc=task.label, shard=shard)
        return None
    with layout.publishing(run_dir) as stage:
        p = prepare_task(task, backend, stage, **prep)
        results, stats = answer_requests(backend, p.requests, cache, chunk_size=chunk_size, desc=task.label)
        return finish_task(p, backend, results, stats, cache, command=command)


@dataclass(slots=True)
class PreparedTask:
    """A task ready for its model phase: items, their requests (``per_item``, and flat in ``requests``),
    its scorers, and the staging ``folder`` its files go to (``None`` for a shard run)."""

    task: Task
    folder: Path | None
    model: str
    loaded: TaskData
    items: list[Item]
    per_item: list[list[Request]]
    scorers: dict[str, Any]
    chunk_size: int
    started: str
    t0: float

    @property
    def requests(self) -> list[Request]:
        return [r for reqs in self.per_item for r in reqs]


def prepare_task(task: Task, backend: Any, folder: Path | None, *, model: str, data_path: str | Path | None = None,
                 limit: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 backend_options: dict[str, Any] | None = None, loaded: TaskData | None = None,
                 scorers: Mapping[str, Any] | None = None) -> PreparedTask:
    """Everything of :func:`run_task` before the model answers: write ``config.resolved.json`` into
    ``folder`` (first, so a crashed run says what it was), read the data (unless ``loaded``), build the
    scorers (a missing one fails here, before model time) and the requests."""
    t0 = time.time()
    started = _now()
    data = task.resolve_data_path(data_path)
    info = backend.info
    if folder is not None:
        write_json(folder / CONFIG_FILE, resolved_config(
            task, model=model, backend={"name": info.name, "options": backend_options or {}},
            data=str(data) if data else None, limit=limit, chunk_size=chunk_size))
    if loaded is None:
        loaded = task.load(data)
    used_scorers = build_scorers(task, scorers) if task.scoring_kinds else {}
    items = loaded.items[:limit] if limit is not None else loaded.items
    _check_ids(items, task.label)
    ctx = request_context(backend)
    per_item = [task.requests(item, ctx) for item in items]
    return PreparedTask(task=task, folder=folder, model=model, loaded=loaded, items=list(items), per_item=per_item,
                        scorers=used_scorers, chunk_size=chunk_size, started=started, t0=t0)


def finish_task(p: PreparedTask, backend: Any, results: Sequence[Result], stats: RunStats, cache: RequestCache,
                *, command: Sequence[str] | None = None) -> TaskResult:
    """Everything of :func:`run_task` after the model answered (``results`` in the order of
    ``p.requests``): the scoring phase, scores, metrics, and the files in ``p.folder``."""
    task, items, folder = p.task, p.items, p.folder
    assert folder is not None
    info = backend.info
    grouped, pos = [], 0
    for reqs in p.per_item:
        grouped.append(list(results[pos : pos + len(reqs)]))
        pos += len(reqs)
    stats.items = len(items)
    stats.skipped = dict(p.loaded.skipped)

    extras = [task.request_extra(item, reqs) for item, reqs in zip(items, p.per_item)]
    scoring = [task.scoring_requests(item, res) for item, res in zip(items, grouped)]
    verdicts = None
    run_counts = stats.counts()
    if task.scoring_kinds:
        verdicts, sstats = answer_scoring(task, scoring, p.scorers, cache, chunk_size=p.chunk_size)
        run_counts.update({f"scoring_{k}": v for k, v in sstats.counts().items() if k != "items"})
    elif any(scoring):
        raise ConfigError(f"{task.label}: scoring_requests() returned requests but scoring_kinds is empty")
    preds = _score_all(task, items, grouped, p.per_item, extras, scoring, verdicts)
    counts = {"items": len(items), "scored": len(preds)}
    result = _task_result(task, items, preds, counts)
    write_predictions(folder / PREDICTIONS_FILE, preds)
    for name, obj in task.extra_files(preds, p.model).items():
        write_json(folder / name, obj)
    result.write(folder / METRICS_FILE)
    seeds = {k: v for k, v in task.config_dict().items() if "seed" in k and isinstance(v, int)}
    RunManifest(
        model=p.model,
        backend={"name": info.name, "model": info.model, "fingerprint": info.fingerprint,
                 "chat_format": info.chat_format, "details": info.details},
        task={"name": task.label, "task": task.name, "version": task.version, "config": task.config_dict()},
        seeds=seeds,
        versions=versions(*_PACKAGES),
        data=dict(p.loaded.sources),
        timing={"started": p.started, "finished": _now(), "seconds": round(time.time() - p.t0, 3)},
        counts=run_counts,
        command=list(command if command is not None else sys.argv),
        scorers=scorer_info(p.scorers),
    ).write(folder / MANIFEST_FILE)
    return result


def task_from_run(run_dir: str | Path) -> Task:
    """Rebuild the task of a run folder from its ``config.resolved.json``."""
    cfg = read_json(Path(run_dir) / CONFIG_FILE)
    t = cfg.get("task") or {}
    base = t.get("task") or t.get("name")
    get_task(base)  # loads the built-in tasks; raises a clear error for unknown names
    if base not in TASKS:
        raise ConfigError(f"{run_dir}: unknown task {base!r}")
    task = TASKS[base](label=t.get("name"), **(t.get("config") or {}))
    if t.get("version") and t["version"] != task.version:
        print(f"camels: note: {run_dir} was made with {base} version {t['version']}; "
              f"scoring with version {task.version}", file=sys.stderr)
    return task


def rescore(run_dir: str | Path) -> TaskResult:
    """Recompute per-item scores and ``metrics.json`` from ``predictions.jsonl`` (no model, no data).

    Scoring requests are not answered again: the stored verdicts are handed to ``Task.score``, so no code
    runs in a sandbox and no judge is called. The task builds each item's scoring requests again from the
    stored results; where they differ from the stored ones (the scoring code changed what it asks), the
    stored verdicts do not answer them and rescoring stops with an error that says to rerun ``camels eval``
    (which answers only the new requests and finds the rest in the cache).

    Rewrites ``predictions.jsonl`` (new scores) and ``metrics.json``; with unchanged scoring code the
    bytes of both are reproduced exactly.
    """
    run_dir = Path(run_dir)
    pred_path = run_dir / PREDICTIONS_FILE
    if not pred_path.is_file():
        raise ConfigError(f"{run_dir}: no {PREDICTIONS_FILE} (is this a run folder?)")
    task = task_from_run(run_dir)
    old = read_predictions(pred_path)
    items = [Item(p.id, p.item) for p in old]
    for item, p in zip(items, old):
        now = [request_key_material(r) for r in task.scoring_requests(item, p.results)]
        if now != [request_key_material(r) for r in p.scoring_requests]:
            raise ConfigError(f"{pred_path}: item {p.id!r}: the task now asks {len(now)} scoring request(s) that "
                              f"differ from the {len(p.scoring_requests)} stored; rescoring cannot answer them "
                              "(it calls nothing): run camels eval again, which reuses the cached answers")
    preds = _score_all(task, items, [p.results for p in old], [p.requests for p in old], [p.extra for p in old],
                       [p.scoring_requests for p in old], [p.verdicts for p in old])
    counts = {"items": len(items), "scored": len(preds)}
    coverage = run_dir / COVERAGE_FILE
    if coverage.is_file():  # a folder made by score_outputs: the task had items that were not answered
        cov = read_json(coverage)
        counts = {"items": len(items) + len(cov["missing_ids"]), "scored": len(preds),
                  "missing": len(cov["missing_ids"]), "unknown": len(cov["unknown_ids"]),
                  "not_in_sample": len(cov.get("not_in_sample_ids", []))}
    result = _task_result(task, items, preds, counts)
    model = str(read_json(run_dir / CONFIG_FILE).get("model") or "")
    with layout.publishing(run_dir, start_from_current=True) as stage:
        write_predictions(stage / PREDICTIONS_FILE, preds)
        for name, obj in task.extra_files(preds, model).items():
            write_json(stage / name, obj)
        result.write(stage / METRICS_FILE)
    return result


@dataclass(slots=True)
class ScoreReport:
    """What :func:`score_outputs` found: the metrics over the items present, and the coverage."""

    result: TaskResult
    predictions: list[Prediction]
    missing_ids: list[str]
    unknown_ids: list[str]
    not_in_sample_ids: list[str] = field(default_factory=list)


def score_outputs(
    task: Task,
    outputs_path: str | Path,
    *,
    data_path: str | Path | None = None,
    output_dir: str | Path | None = None,
    cache: RequestCache | None = None,
    scorers: Mapping[str, Any] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ScoreReport:
    """Score answers produced elsewhere: one JSON line per item, ``{"id": ..., "output": "..."}``.

    Scores the task's items that are present; ``counts`` in the result says how many of the task's items
    are ``missing`` and how many lines name ``unknown`` ids (not items of this task). A line without a
    string ``id`` or ``output``, or an id given twice, is an error naming the file and line. With
    ``output_dir``, writes ``predictions.jsonl``, ``metrics.json``, ``coverage.json`` (the missing and
    unknown ids) and ``config.resolved.json`` there.

    A task with ``scoring_kinds`` has its scoring requests answered as in :func:`run_task` (``scorers``,
    else the registered factories), through ``cache``; without one, through
    ``<output_dir>/.cache/requests.sqlite`` (or a temporary cache when there is no ``output_dir``).
    """
    outputs_path = Path(outputs_path)
    data = task.resolve_data_path(data_path)
    loaded = task.load(data)
    by_id = {it.id: it for it in loaded.items}
    answers: dict[str, str] = {}
    unknown: list[str] = []
    for line, obj in iter_jsonl(outputs_path):
        where = {"file": str(outputs_path), "line": line}
        if not isinstance(obj, dict):
            raise RecordError("bad_record", "expected a JSON object with 'id' and 'output'", **where)
        for key in ("id", "output"):
            if key not in obj:
                raise RecordError("missing_field", f"missing field {key!r}", field=key, **where)
        if not isinstance(obj["output"], str):
            raise RecordError("bad_type", "output must be a string", field="output", **where)
        if not isinstance(obj["id"], str):  # 12 and "12" are different ids: refuse rather than guess
            raise RecordError("bad_type", f"id must be a string, got {type(obj['id']).__name__} "
                              f"{obj['id']!r}", field="id", **where)
        item_id = obj["id"]
        if item_id in answers or item_id in unknown:
            raise RecordError("duplicate_id", f"id {item_id!r} appears twice", field="id", **where)
        if item_id in by_id:
            answers[item_id] = obj["output"]
        else:
            unknown.append(item_id)
    items = [it for it in loaded.items if it.id in answers]
    missing = [it.id for it in loaded.items if it.id not in answers]
    results = [task.results_from_output(it, answers[it.id]) for it in items]
    scoring = [task.scoring_requests(it, res) for it, res in zip(items, results)]
    verdicts = None
    if task.scoring_kinds:
        used = build_scorers(task, scorers)
        with contextlib.ExitStack() as stack:
            if cache is None:
                where = Path(output_dir) if output_dir is not None else Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="camels-score-")))
                cache = stack.enter_context(open_cache(where))
            verdicts, _ = answer_scoring(task, scoring, used, cache, chunk_size=chunk_size)
    preds = _score_all(task, items, results, None, None, scoring, verdicts)
    unsampled = set(loaded.unsampled)
    not_in_sample = [i for i in unknown if i in unsampled]  # items of the data the task's sample left out
    unknown = [i for i in unknown if i not in unsampled]
    counts = {"items": len(loaded.items), "scored": len(preds), "missing": len(missing),
              "unknown": len(unknown), "not_in_sample": len(not_in_sample)}
    if not preds:
        sample = (f"; {len(not_in_sample)} are items of the data outside the task's sample (e.g. "
                  f"{not_in_sample[:3]}): score with the same sample options (e.g. --task-option n=0)"
                  if not_in_sample else "")
        raise ConfigError(f"{outputs_path}: none of its {len(unknown) + len(not_in_sample)} ids is an item of "
                          f"{task.label} (ids not in the data: {len(unknown)}, e.g. {unknown[:3]}{sample}); "
                          f"item ids look like {loaded.items[0].id!r}")
    result = _task_result(task, items, preds, counts)
    if output_dir is not None:
        out = Path(output_dir)
        with layout.publishing(out) as stage:
            write_json(stage / CONFIG_FILE, resolved_config(task, outputs=str(outputs_path),
                                                            data=str(data) if data else None))
            write_predictions(stage / PREDICTIONS_FILE, preds)
            result.write(stage / METRICS_FILE)
            write_json(stage / COVERAGE_FILE, {"missing_ids": missing, "unknown_ids": unknown,
                                                 "not_in_sample_ids": not_in_sample,
                                                 "data": dict(loaded.sources)})
    return ScoreReport(result=result, predictions=preds, missing_ids=missing, unknown_ids=unknown,
                       not_in_sample_ids=not_in_sample)


def run_dir_for(output: str | Path, model: str, task: Task, run_name: str | None = None) -> Path:
    """The run folder of ``task`` (see :mod:`camels.core.layout`)."""
    return layout.run_dir(output, model, task.label, run_name)


def open_cache(output: str | Path, cache_path: str | Path | None = None) -> RequestCache:
    """The request cache: ``cache_path``, or ``<output>/.cache/requests.sqlite`` shared by all runs there."""
    return RequestCache(cache_path if cache_path is not None else layout.cache_file(output))


__all__ = ["CACHE_FILE", "DEFAULT_CHUNK_SIZE", "answer_requests", "answer_scoring", "dispatch", "model_slug",
           "open_cache", "request_context", "rescore", "run_dir_for", "run_task", "score_outputs"]
