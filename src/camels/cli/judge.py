"""``camels judge``: judged evaluation outside a full ``camels eval`` run.

* ``camels judge summarize ANNOTATIONS.json [--output metrics.json]``: win rate, standard error and counts
  of an existing annotations file (alpaca_eval's or camels'), with no model.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="judged evaluation: pairwise win rates, judge annotations files",
                       description="Judged evaluation (AlpacaEval-style pairwise judging and its files).")
    jsub = p.add_subparsers(dest="judge_command", metavar="SUBCOMMAND")
    s = jsub.add_parser("summarize", help="metrics of an annotations.json (alpaca_eval's or camels'), no model",
                        description="Win rate (ties as half), standard error and counts of wins, losses, ties "
                                    "and unparsed verdicts of an annotations file; refuses files that mix judges.")
    s.add_argument("annotations", help="annotations.json in alpaca_eval's format")
    s.add_argument("--output", help="write the metrics as JSON here")
    s.set_defaults(func=_summarize)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _summarize(args: argparse.Namespace) -> int:
    from camels.core.io import write_json
    from camels.judge.annotations import summarize_file

    metrics = summarize_file(args.annotations)
    print(f"{metrics['model']} vs {metrics['reference']} judged by {metrics['annotator']}")
    for key in ("win_rate", "standard_error", "discrete_win_rate", "n_wins", "n_losses", "n_ties",
                "n_unparsed", "n_total"):
        print(f"  {key}: {_fmt(metrics[key])}")
    if args.output:
        write_json(args.output, metrics)
        print(f"wrote {args.output}")
    else:
        print(json.dumps({k: metrics[k] for k in ("win_rate", "standard_error")}))
    return 0
