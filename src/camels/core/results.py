"""The files an evaluation run leaves behind, and their schema: what reports, judges and the web app read.

A run folder (``runs/<model-slug>/<task>/``) holds:

* ``predictions.jsonl`` -- one :class:`Prediction` per item, in item order: the item's stable id, the
  fields needed to score it again (``item``), the exact requests sent and the results received, the
  scoring requests (code to execute, texts to classify or judge) and their ``verdicts``, the readable
  ``output``, the per-item ``scores`` and free ``extra`` fields. Scoring needs nothing else, so ``camels
  rescore`` works without a model, a sandbox, a judge, a GPU or the benchmark files.
* ``metrics.json`` -- a :class:`TaskResult`: the task's aggregate metrics (no clock time, so rescoring
  reproduces the file byte for byte).
* ``manifest.json`` -- a :class:`RunManifest`: model, backend fingerprint, task name/version/config, seeds,
  package versions, sha256 of the data files, timing and counts.
* ``config.resolved.json`` -- every option of the run after defaults were applied.

Every file carries ``"schema": SCHEMA_VERSION``; readers refuse a newer schema with a clear error.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import iter_jsonl, read_json, write_json, write_jsonl
from camels.core.requests import (
    REQUEST_TYPES,
    RESULT_TYPES,
    Request,
    Result,
    request_from_dict,
    request_to_dict,
    result_from_dict,
    result_kind,
    result_to_dict,
)

SCHEMA_VERSION = 1

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.resolved.json"


def _check_schema(obj: dict[str, Any], where: str) -> None:
    v = obj.get("schema", SCHEMA_VERSION)
    if not isinstance(v, int) or v > SCHEMA_VERSION:
        raise RecordError("bad_schema", f"schema {v!r} is newer than this camels reads ({SCHEMA_VERSION})",
                          field="schema", file=where)


def _build(cls: Any, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise RecordError("bad_record", f"expected a JSON object for {cls.__name__}", file=where)
    names = {f.name for f in fields(cls)}
    required = [f.name for f in fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in required:
        if name not in d:
            raise RecordError("missing_field", f"missing field {name!r}", field=name, file=where)
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(slots=True)
class Prediction:
    """One benchmark item as it was asked and answered.

    ``results[i]`` answers ``requests[i]`` (each result is stored with its ``kind``; outputs scored with
    ``camels score`` have results but no requests, since the prompts were made elsewhere); ``output`` is the
    text a person would read (the first generation, or the chosen option's label); ``scores`` maps metric
    names to per-item values (``{"correct": 1.0}``); ``item`` holds the item's own fields (question, gold
    answer, subject ...), enough to score it again.

    ``scoring_requests`` are what the task asked, after seeing the results, of something besides the model
    (run this program, classify this text, judge this answer); ``verdicts[i]`` answers
    ``scoring_requests[i]``. Both are empty for tasks scored by a pure function (exact match).
    """

    id: str
    task: str
    item: dict[str, Any]
    requests: list[Request]
    results: list[Result]
    output: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    scoring_requests: list[Any] = field(default_factory=list)
    verdicts: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "task": self.task,
            "item": self.item,
            "requests": [_request_out(r) for r in self.requests],
            "results": [_result_out(r) for r in self.results],
            "scoring_requests": [_request_out(r) for r in self.scoring_requests],
            "verdicts": [_result_out(r) for r in self.verdicts],
            "output": self.output,
            "scores": self.scores,
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "<prediction>") -> Prediction:
        _check_schema(d, where)
        try:
            requests = [_request(r) for r in d["requests"]]
            results = [_result(r) for r in d["results"]]
            scoring = [_request(r) for r in d.get("scoring_requests", [])]
            verdicts = [_result(r) for r in d.get("verdicts", [])]
            if len(verdicts) != len(scoring):
                raise ValueError(f"{len(verdicts)} verdicts for {len(scoring)} scoring requests")
            return cls(
                id=str(d["id"]),
                task=d["task"],
                item=d.get("item", {}),
                requests=requests,
                results=results,
                output=d.get("output"),
                scores=d.get("scores", {}),
                extra=d.get("extra", {}),
                scoring_requests=scoring,
                verdicts=verdicts,
            )
        except KeyError as e:
            raise RecordError("missing_field", f"missing field {e.args[0]!r}", field=str(e.args[0])) from None
        except (TypeError, ValueError) as e:
            raise RecordError("bad_prediction", str(e)) from None


@dataclass(frozen=True, slots=True)
class UnregisteredKind:
    """A stored request or result of a kind that no imported module has registered (e.g. a report reading
    HumanEval predictions without importing the sandbox): kept as read, written back unchanged, so readers
    of prediction files need only ``core``. Scoring needs the real kind: the task's module registers it."""

    kind: str
    data: dict[str, Any]


def _request(d: dict[str, Any]) -> Any:
    if isinstance(d, dict) and isinstance(d.get("kind"), str) and d["kind"] not in REQUEST_TYPES:
        return UnregisteredKind(d["kind"], {k: v for k, v in d.items() if k != "kind"})
    return request_from_dict(d)


def _result(d: dict[str, Any]) -> Any:
    d = dict(d)
    kind = d.pop("kind")
    if isinstance(kind, str) and kind not in RESULT_TYPES:
        return UnregisteredKind(kind, d)
    return result_from_dict(kind, d)


def _request_out(r: Any) -> dict[str, Any]:
    return {**r.data, "kind": r.kind} if isinstance(r, UnregisteredKind) else request_to_dict(r)


def _result_out(r: Any) -> dict[str, Any]:
    return {"kind": r.kind, **r.data} if isinstance(r, UnregisteredKind) else {"kind": result_kind(r),
                                                                               **result_to_dict(r)}


def write_predictions(path: str | Path, predictions: list[Prediction]) -> int:
    return write_jsonl(path, (p.to_json() for p in predictions))


def read_predictions(path: str | Path) -> list[Prediction]:
    out = []
    for line, obj in iter_jsonl(path):
        try:
            out.append(Prediction.from_dict(obj, where=str(path)))
        except RecordError as e:
            raise e.located(file=str(path), line=line) from None
    return out


@dataclass(slots=True)
class TaskResult:
    """A task's aggregate scores: ``metrics.json``.

    ``metrics`` is the task's own dict (e.g. ``{"accuracy": 0.47, "per_subject": {...}}``);
    ``primary_metric`` names the headline number a report shows; ``counts`` holds item counts (scored,
    missing, unknown ids ...). Nothing time-dependent lives here.
    """

    task: str
    task_version: str
    primary_metric: str
    metrics: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def score(self) -> Any:
        return self.metrics.get(self.primary_metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "<metrics>") -> TaskResult:
        _check_schema(d, where)
        return _build(cls, d, where)

    def write(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> TaskResult:
        return cls.from_dict(read_json(path), where=str(path))


@dataclass(slots=True)
class RunManifest:
    """Everything that produced a run folder, for provenance and for deciding whether two runs compare.

    * ``model``: what the user named (path or hub name); ``backend``: name, fingerprint, chat format and
      details as the backend reported them (:class:`camels.core.requests.BackendInfo`).
    * ``task``: ``{"name", "version", "config"}``; ``seeds``: every seed that shaped the run.
    * ``versions``: python, camels, torch, transformers ... ; ``data``: source (file path or hub id) ->
      sha256 (or revision).
    * ``timing``: ``started``/``finished`` (UTC ISO) and ``seconds``; ``counts``: items, requests, cache hits,
      computed requests (and ``scoring_*`` the same for scoring requests, when the task has any).
    * ``scorers``: for each scoring kind the task asked for, the info of what answered it (name, model,
      fingerprint, details), as ``backend`` is for the model.
    """

    model: str
    backend: dict[str, Any]
    task: dict[str, Any]
    seeds: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    scorers: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "<manifest>") -> RunManifest:
        _check_schema(d, where)
        return _build(cls, d, where)

    def write(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> RunManifest:
        return cls.from_dict(read_json(path), where=str(path))
