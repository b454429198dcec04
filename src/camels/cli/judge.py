"""``camels judge``: judged evaluation outside a full ``camels eval`` run.

* ``camels judge run OUTPUTS --reference REF``: judge a model's AlpacaEval answers (an alpaca_eval
  ``model_outputs.json``, or a camels run folder of the ``alpaca_eval`` task) against a reference's with a
  pairwise judge; writes predictions, metrics, ``model_outputs.json``, ``annotations.json`` and the judge's
  cost ledger to the output folder. Annotations are cached there by content, so a killed run resumes with
  no repeated judge call; a folder already judged by another judge is refused.
* ``camels judge summarize ANNOTATIONS.json [--output metrics.json]``: win rate, standard error and counts
  of an existing annotations file (alpaca_eval's or camels'), with no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="judged evaluation: pairwise win rates, judge annotations files",
                       description="Judged evaluation (AlpacaEval-style pairwise judging and its files).")
    jsub = p.add_subparsers(dest="judge_command", metavar="SUBCOMMAND")
    r = jsub.add_parser("run", help="judge AlpacaEval answers against a reference's (pairwise judge)",
                        description="Judge a model's answers to the AlpacaEval instructions against a "
                                    "reference's answers. OUTPUTS is an alpaca_eval model_outputs.json or a "
                                    "camels run folder of the alpaca_eval task.")
    r.add_argument("outputs", help="model_outputs.json (alpaca_eval format) or an alpaca_eval run folder")
    r.add_argument("--reference", help="reference outputs: a results/ folder name under --data "
                                       "(text_davinci_003, gpt4_1106_preview) or a model_outputs.json path")
    r.add_argument("--data", help="alpaca_eval folder holding results/<reference>/model_outputs.json")
    r.add_argument("--output", help="output folder (default: <folder of OUTPUTS>/<judge prompt>)")
    r.add_argument("--generator", help="the judged model's name in the files (default: from OUTPUTS)")
    r.add_argument("--judge-prompt", default="alpaca_eval_gpt4", help="judge prompt name or YAML path")
    r.add_argument("--judge-model", default="", help="judge model (default: the prompt's)")
    r.add_argument("--judge-backend", default="", help="api (default), hf or vllm")
    r.add_argument("--base-url", default="", help="OpenAI-compatible endpoint of an api judge")
    r.add_argument("--judge-option", action="append", default=[], metavar="KEY=VALUE",
                   help="judge backend option, e.g. max_concurrency=4 or api_key_env=MY_KEY (repeatable)")
    r.add_argument("--max-attempts", type=int, default=3, help="asks per pair while the answer cannot be parsed")
    r.add_argument("--max-cost", type=float, help="stop cleanly once the judge spent this many USD")
    r.add_argument("--both-orders", action="store_true", help="judge each pair in both orders (self-consistency)")
    r.add_argument("--seed", type=int, default=0, help="seed of the A/B position per item id")
    r.add_argument("--chunk-size", type=int, default=8,
                   help="judge calls per batch; each finished batch is cached at once (default 8)")
    r.add_argument("--cache", help="request cache file (default <output>/.cache/requests.sqlite)")
    r.add_argument("--lc-data", default="", metavar="PATH|hub",
                   help="alpaca_eval's df_gamed.csv (or 'hub') for the length-controlled win rate")
    r.set_defaults(func=_run)

    s = jsub.add_parser("summarize", help="metrics of an annotations.json (alpaca_eval's or camels'), no model",
                        description="Win rate (ties as half), standard error and counts of wins, losses, ties "
                                    "and unparsed verdicts of an annotations file; refuses files that mix judges.")
    s.add_argument("annotations", help="annotations.json in alpaca_eval's format")
    s.add_argument("--output", help="write the metrics as JSON here")
    s.add_argument("--lc-data", default="", metavar="PATH|hub",
                   help="alpaca_eval's df_gamed.csv (or 'hub' to fetch it) for the length-controlled win rate")
    s.set_defaults(func=_summarize)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _summarize(args: argparse.Namespace) -> int:
    from camels.core.io import write_json
    from camels.judge.annotations import summarize_file

    metrics = summarize_file(args.annotations, lc_data=args.lc_data)
    print(f"{metrics['model']} vs {metrics['reference']} judged by {metrics['annotator']}")
    for key in ("win_rate", "standard_error", "discrete_win_rate", "n_wins", "n_losses", "n_ties",
                "n_unparsed", "n_total", "length_controlled_win_rate", "lc_standard_error"):
        if key in metrics:
            print(f"  {key}: {_fmt(metrics[key])}")
    print(f"  length controlled: {metrics['length_controlled_note']}")
    if args.output:
        write_json(args.output, metrics)
        print(f"wrote {args.output}")
    else:
        print(json.dumps({k: metrics[k] for k in ("win_rate", "standard_error")}))
    return 0


def _run(args: argparse.Namespace) -> int:
    from camels.evals.judged import judge_outputs
    from camels.judge.ledger import BudgetExceeded

    options: dict[str, str] = {}
    for kv in args.judge_option:
        if "=" not in kv:
            from camels.core.errors import ConfigError

            raise ConfigError(f"--judge-option {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        options[k.strip()] = v
    try:
        report = judge_outputs(
            args.outputs, reference=args.reference, data=args.data, output=args.output, generator=args.generator,
            judge_prompt=args.judge_prompt, judge_model=args.judge_model, judge_backend=args.judge_backend,
            base_url=args.base_url, judge_options=options, max_attempts=args.max_attempts, max_cost=args.max_cost,
            both_orders=args.both_orders, seed=args.seed, chunk_size=args.chunk_size, cache=args.cache,
            lc_data=args.lc_data)
    except BudgetExceeded as e:
        print(f"camels: stopped: {e}", file=sys.stderr)
        return 3
    m = report.metrics
    print(f"{m['model']} vs {m['reference']} judged by {report.judge}")
    for key in ("win_rate", "standard_error", "n_wins", "n_losses", "n_ties", "n_unparsed", "n_total"):
        print(f"  {key}: {_fmt(m[key])}")
    if m.get("self_consistency") is not None:
        print(f"  self_consistency: {_fmt(m['self_consistency'])}")
    t = report.ledger
    print(f"  judge calls: {t['calls']} (this run: {report.computed} annotations judged, {report.cached} cached), "
          f"tokens in {t['prompt_tokens']}, out {t['completion_tokens']}, cost ${t['cost_usd']:.4f}")
    print(f"wrote {report.output}")
    return 0
