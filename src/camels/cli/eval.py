"""``camels eval``, ``camels rescore RUN_DIR`` and ``camels score TASK OUTPUTS.jsonl``.

The backend (and with it torch) is imported only inside ``camels eval``; rescoring and scoring outside
outputs need neither a model nor torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on tasks or a suite (runs/<model>/<task>/: predictions, metrics, manifest)",
        description=(
            "Evaluate a model: camels eval --model out/tulu-7b --suite tulu-v1 --data ../shared/realdata. "
            "Answers are cached by content, so a rerun after a crash recomputes nothing that finished."
        ),
    )
    p.add_argument("--model", required=True, help="model folder (a camels checkpoint or HF model) or hub name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--tasks", help="comma-separated task or preset names (e.g. mmlu_5shot,gsm8k_cot)")
    which.add_argument("--suite", help="suite name in configs/eval (e.g. tulu-v1) or a suite YAML path")
    p.add_argument("--backend", default="hf", help="hf (default), vllm or api")
    p.add_argument("--data", action="append", default=[], metavar="[TASK=]PATH",
                   help="local folder of raw benchmark files (each task looks in PATH/<task> first); "
                        "TASK=PATH for one task; repeatable. Default: the Hugging Face hub")
    p.add_argument("--limit", type=int, help="evaluate only the first N items of each task (smoke tests)")
    p.add_argument("--batch-size", type=int, help="backend batch size (results do not depend on it)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="requests per backend call; each answered chunk is cached at once (default 64)")
    p.add_argument("--shard", metavar="I/N",
                   help="only compute the I-th of N slices of the requests (one process per GPU or machine) "
                        "into a cache file of its own (<cache>.shard-I-of-N.sqlite); then `camels merge-cache` "
                        "and one run without --shard write the run folders")
    p.add_argument("--batch-tasks", action="store_true",
                   help="answer the model requests of all tasks in one pass over the backend (same results; "
                        "fuller batches across task boundaries)")
    p.add_argument("--output", default="runs", help="runs folder (default runs/)")
    p.add_argument("--run-name", help="folder name for the model (default: derived from --model)")
    p.add_argument("--cache", help="request cache file (default <output>/.cache/requests.sqlite)")
    p.add_argument("--task-option", action="append", default=[], metavar="TASK.KEY=VALUE",
                   help="override a task option, e.g. mmlu_5shot.subjects=anatomy,virology (repeatable)")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra backend option, e.g. device=cuda or base_url=http://... (repeatable)")
    p.set_defaults(func=_eval)

    r = sub.add_parser("rescore", help="recompute scores and metrics of a run folder from its predictions",
                       description="Recompute predictions' scores and metrics.json without a model.")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) holding predictions.jsonl")
    r.set_defaults(func=_rescore)

    s = sub.add_parser("score", help="score outputs produced elsewhere (one {\"id\", \"output\"} per line)",
                       description="Score another system's outputs against a task's items; reports how many "
                                   "items are missing and which ids are unknown.")
    s.add_argument("task", help="task or preset name (e.g. gsm8k_cot)")
    s.add_argument("outputs", help="JSONL with one {\"id\": ..., \"output\": \"...\"} per line")
    s.add_argument("--data", help="local folder of the benchmark's raw files (default: the hub)")
    s.add_argument("--output", help="folder for predictions/metrics/coverage (default: OUTPUTS.<task>/)")
    s.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a task option, e.g. n=0 (repeatable)")
    s.set_defaults(func=_score)

    m = sub.add_parser("merge-cache", help="combine shard cache files (from `camels eval --shard`) into one cache",
                       description="Copy the verified answers of shard cache files into the request cache of "
                                   "an output folder, before the run without --shard writes the run folders. "
                                   "Rows that do not verify are not copied (counted).")
    m.add_argument("shards", nargs="*", metavar="SHARD",
                   help="shard cache files (default: <output>/.cache/requests.shard-*-of-*.sqlite)")
    m.add_argument("--output", default="runs", help="runs folder whose cache receives them (default runs/)")
    m.add_argument("--cache", help="the cache file to merge into (default <output>/.cache/requests.sqlite)")
    m.add_argument("--keep", action="store_true", help="keep the shard files after merging (default: delete)")
    m.set_defaults(func=_merge_cache)


# --- helpers ----------------------------------------------------------------------------------------------
def _kv(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"{what} {text!r}: expected KEY=VALUE")
    k, v = text.split("=", 1)
    return k.strip(), v


def _yaml_value(v: str) -> Any:
    from camels.core.config import parse_value  # YAML 1.2 scalars: only true/false are booleans

    return parse_value(v)


def _data_paths(values: list[str]) -> tuple[str | None, dict[str, str]]:
    default, per_task = None, {}
    for v in values:
        if "=" in v and not Path(v).exists():
            k, path = v.split("=", 1)
            per_task[k] = path
        elif default is None:
            default = v
        else:
            raise ConfigError("--data given twice without TASK=; use TASK=PATH for per-task folders")
    return default, per_task


def _plan(args: argparse.Namespace):
    """The run's :class:`camels.evals.suite.Plan` from the command line."""
    from camels.evals.suite import plan

    options: dict[str, dict[str, Any]] = {}
    for opt in args.task_option:
        key, value = _kv(opt, "--task-option")
        if "." not in key:
            raise ConfigError(f"--task-option {opt!r}: expected TASK.KEY=VALUE")
        label, field = key.split(".", 1)
        options.setdefault(label, {})[field] = _yaml_value(value)
    default_data, per_task_data = _data_paths(args.data)
    tasks = [n.strip() for n in args.tasks.split(",") if n.strip()] if args.tasks else []
    if args.tasks and not tasks:
        raise ConfigError("nothing to run")
    return plan(suite=args.suite, tasks=tasks, options=options, data=default_data, task_data=per_task_data)


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def _summary(result) -> str:
    score = result.score
    if isinstance(score, float):
        score = f"{score:.4f}"
    ci = result.metrics.get(f"{result.primary_metric}_ci95")
    ci_text = f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""
    return f"{result.task}: {result.primary_metric}={score}{ci_text} n={result.counts.get('scored')}"


# --- commands ---------------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from camels.backends import load_backend
    from camels.core import layout
    from camels.evals.cache import RequestCache
    from camels.evals.runner import DEFAULT_CHUNK_SIZE
    from camels.evals.suite import cache_path_for, check_data, evaluate

    run_plan = _plan(args)
    if run_plan.pending:
        print(f"camels: pending (not implemented yet, skipped): {', '.join(run_plan.pending)}", file=sys.stderr)
    if not run_plan.tasks:
        raise ConfigError("nothing to run")
    loaded = check_data(run_plan)
    backend_options: dict[str, Any] = {k: _yaml_value(v) for k, v in (_kv(o, "--backend-option")
                                                                      for o in args.backend_option)}
    if args.batch_size is not None:
        backend_options["batch_size"] = args.batch_size
    from camels.backends.options import coerce_backend_options  # a typo named before any file or model

    backend_options = coerce_backend_options(args.backend, backend_options, label=lambda k: f"--backend-option {k}")
    shard = _parse_shard(args.shard) if args.shard else None
    cache_path = cache_path_for(args.output, args.cache, shard)
    if shard is None and layout.shard_cache_files(cache_path):
        print(f"camels: note: unmerged shard cache files beside {cache_path} (run camels merge-cache first to "
              "use their answers)", file=sys.stderr)
    cache = RequestCache(cache_path)  # a corrupt or foreign cache file is named before the model loads
    try:
        backend = load_backend(args.backend, args.model, **backend_options)
    except BaseException:
        cache.close()
        raise

    def report(run) -> None:
        if run.result is None:
            print(f"{run.task.label}: shard {args.shard} cached in {cache_path}; merge the shards "
                  f"(camels merge-cache) and run without --shard to write {run.run_dir}")
        else:
            print(f"{_summary(run.result)} -> {run.run_dir}")

    with cache:
        evaluate(run_plan, backend, model=args.model, output=args.output, run_name=args.run_name, loaded=loaded,
                 cache=cache, limit=args.limit, chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
                 backend_options=backend_options, command=sys.argv,
                 shard=shard, on_result=report, batch_tasks=args.batch_tasks)
    if run_plan.pending:
        print(f"pending: {', '.join(run_plan.pending)}")
    return 0


def _merge_cache(args: argparse.Namespace) -> int:
    from camels.core import layout
    from camels.evals.cache import merge_caches

    target = Path(args.cache) if args.cache else layout.cache_file(args.output)
    shards = [Path(s) for s in args.shards] or layout.shard_cache_files(target)
    if not shards:
        raise ConfigError(f"no shard cache files beside {target} (pass them as arguments)")
    total = 0
    for src, copied, rejected in merge_caches(target, shards, remove=not args.keep):
        total += copied
        print(f"{src}: {copied} answers merged" + (f", {rejected} rows rejected (checksum)" if rejected else ""))
    print(f"{target}: {total} answers added from {len(shards)} shard file(s)")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from camels.evals.runner import rescore

    for run_dir in args.run_dirs:
        print(f"{_summary(rescore(run_dir))} <- {run_dir}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from camels.evals.runner import score_outputs
    from camels.evals.task import get_task

    options = {k: _yaml_value(v) for k, v in (_kv(o, "--task-option") for o in args.task_option)}
    task = get_task(args.task, **options)
    outputs = Path(args.outputs)
    out_dir = Path(args.output) if args.output else outputs.with_name(f"{outputs.stem}.{task.label}")
    # A task whose outputs come several per item (HumanEval's samples) reads its own file format.
    score_file = getattr(task, "score_file", None)
    if score_file is not None:
        report = score_file(outputs, data_path=args.data, output_dir=out_dir)
    else:
        report = score_outputs(task, outputs, data_path=args.data, output_dir=out_dir)
    c = report.result.counts
    if c["missing"]:
        print(f"camels: warning: {outputs} covers {c['scored']} of the {c['items']} items of {task.label}: "
              f"the metrics are over those {c['scored']} only (missing ids in coverage.json)", file=sys.stderr)
    print(_summary(report.result))
    print(f"items={c['items']} scored={c['scored']} missing={c['missing']} unknown={c['unknown']} "
          f"not_in_sample={c['not_in_sample']}"
          + (f" (unknown ids, first ones: {report.unknown_ids[:5]})" if report.unknown_ids else "")
          + (f" (ids of the data outside the task's sample, first ones: {report.not_in_sample_ids[:5]})"
             if report.not_in_sample_ids else ""))
    print(json.dumps({"metrics": out_dir.as_posix() + "/metrics.json"}))
    return 0
