"""``camels report RUN_DIRS... [--reference X] [--baseline NAME] [--out DIR]``: the study's results table.

Reads run folders only (no model): prints the terminal table and writes ``report.txt``, ``report.md``,
``report.csv`` and ``report.html`` to ``--out``. See docs/report.md.
"""

from __future__ import annotations

import argparse
import sys

from camels.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the results table of evaluation runs (Markdown, CSV, HTML)",
                       description="The study's results table from evaluation run folders: models as rows, "
                                   "benchmarks grouped by skill, bootstrap intervals, a paired test against a "
                                   "baseline and the share of a reference model's scores.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a model folder of run folders (runs/<model>/), or a folder holding several")
    p.add_argument("--out", "--output", dest="out", default="report", help="output folder (default: report/)")
    p.add_argument("--reference", metavar="RUN_DIR_OR_YAML",
                   help="reference model: a model folder, a YAML of published numbers (FILE.yaml[:NAME]) or a "
                        "shipped reference name (tulu-7b, tulu-30b)")
    p.add_argument("--baseline", metavar="NAME", help="row to test every other row against (paired tests)")
    p.add_argument("--name", action="append", default=[], metavar="DIR=LABEL",
                   help="row label of a model folder (repeatable; default: the folder's name)")
    p.add_argument("--training", action="append", default=[], metavar="LABEL=DIR",
                   help="training output folder of a row, for its loss curve (repeatable)")
    p.add_argument("--human", metavar="RESULTS_JSON", help="annotate export results.json (human acceptance)")
    p.add_argument("--title", default="camels report", help="the report's title")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--lenient", action="store_true",
                   help="show a run whose predictions.jsonl is truncated or has a bad line as a missing cell "
                        "(said in the notes) instead of stopping")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    p.set_defaults(func=_run)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _run(args: argparse.Namespace) -> int:
    from camels.report import build_report

    outs = build_report(args.runs, args.out, names=_pairs(args.name, "--name"), reference=args.reference,
                        baseline=args.baseline, training_runs=_pairs(args.training, "--training") or None,
                        human=args.human, title=args.title, seed=args.seed, n_boot=args.n_boot,
                        lenient=args.lenient)
    if not args.quiet:
        sys.stdout.write(outs.rendered_text)
    print(f"camels: report written to {outs.markdown}, {outs.csv}, {outs.html}", file=sys.stderr)
    return 0
