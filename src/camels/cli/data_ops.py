"""``camels data mix | decontaminate | stats``: the steps after conversion.

Examples::

    camels data mix tulu-v1 --input flan_v2=data/flan.jsonl --input cot_zs=data/cot_zsopt.jsonl \\
        --input cot_fs=data/cot_fsopt.jsonl ... -o mix.jsonl
    camels data mix single:dolly --input dolly=data/dolly.jsonl -o dolly-only.jsonl
    camels data decontaminate mix.jsonl --benchmarks gsm8k=data/gsm8k/test.jsonl mmlu=data/mmlu/test \\
        --drop -o mix.clean.jsonl --report decontam.json
    camels data stats mix.jsonl --tokenizer meta-llama/Llama-2-7b-hf --csv table.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camels.core.errors import ConfigError


def register(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "mix",
        help="build a named mixture (tulu-v1, human, single:SOURCE) or a mixture YAML into one JSONL",
        description="Sample each source (seeded down-/up-sampling), shuffle, and write one JSONL with a "
        "manifest (OUT.manifest.json). Same config + same inputs -> byte-identical output.",
    )
    p.add_argument("mixture", nargs="?", help="mixture name (tulu-v1, human), single:SOURCE[:COUNT], or a YAML path")
    p.add_argument("--input", "-i", action="append", default=[], metavar="SOURCE=PATH",
                   help="file of a source, replacing the config's path (repeat; several files: a,b)")
    p.add_argument("-o", "--output", help="output JSONL (the manifest goes beside it)")
    p.add_argument("--seed", type=int, default=None, help="override the mixture's seed")
    p.add_argument("--lenient", action="store_true",
                   help="skip bad records and count them by reason in the manifest (default: stop on the first)")
    p.add_argument("--list", action="store_true", help="list the named mixtures and exit")
    p.set_defaults(func=_mix)

    d = group.add_parser(
        "decontaminate",
        help="find training conversations that share word n-grams with evaluation sets",
        description="Index the benchmarks' n-grams, check every conversation, print a table and optionally "
        "write a JSON report and a cleaned file (--drop -o OUT.jsonl) whose manifest counts what was dropped.",
    )
    d.add_argument("train", help="unified conversation JSONL")
    d.add_argument("--benchmarks", "-b", nargs="+", required=True, metavar="NAME=PATH|DIR",
                   help="benchmark files: NAME=PATH with NAME in alpaca_eval, bbh, gsm8k, humaneval, mmlu, "
                   "toxigen, truthfulqa, tydiqa; or a folder holding folders with those names")
    d.add_argument("--n", type=int, default=13, help="n-gram size in words (default 13)")
    d.add_argument("--threshold", type=float, default=0.0,
                   help="share of a conversation's n-grams that must match (default 0: any match)")
    d.add_argument("--min-matches", type=int, default=1, help="matching n-grams needed (default 1)")
    d.add_argument("--turns", choices=("user", "all"), default="user",
                   help="check user (and system) turns only (default) or all turns")
    d.add_argument("--drop", action="store_true", help="write the clean conversations to -o")
    d.add_argument("-o", "--output", help="cleaned output JSONL (with --drop)")
    d.add_argument("--report", help="write the full report as JSON here")
    d.add_argument("--examples", type=int, default=5, help="example ids kept per benchmark (default 5)")
    d.add_argument("--lenient", action="store_true", help="skip bad records (counted) instead of stopping")
    d.set_defaults(func=_decontaminate)

    s = group.add_parser(
        "stats",
        help="the dataset table: instances, rounds, prompt and completion lengths per source",
        description="Per source (the records' dataset field): instances, mean rounds, mean tokens per user "
        "turn and per assistant turn. Tokens of --tokenizer, else whitespace words.",
    )
    s.add_argument("inputs", nargs="+", help="unified conversation JSONL files")
    s.add_argument("--tokenizer", help="tokenizer name or folder (transformers); default: whitespace words")
    s.add_argument("--csv", help="also write the table as CSV here")
    s.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    s.add_argument("--lenient", action="store_true", help="skip bad records (counted) instead of stopping")
    s.set_defaults(func=_stats)


def _parse_inputs(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--input {item!r}: expected SOURCE=PATH")
        out.setdefault(name.strip(), []).extend(p for p in path.split(",") if p)
    return out


def _mix(args: argparse.Namespace) -> int:
    from camels.data.mixture import load_mixture, mix, named_mixtures

    if args.list:
        for name, path in sorted(named_mixtures().items()):
            print(f"{name}\t{path}")
        print("single:SOURCE[:COUNT]\t(one source; give --input SOURCE=PATH)")
        return 0
    if not args.mixture or not args.output:
        raise ConfigError("camels data mix: give a MIXTURE and -o OUT.jsonl (or --list)")
    mixture = load_mixture(args.mixture).with_inputs(_parse_inputs(args.input)).with_seed(args.seed)
    result = mix(mixture, args.output, lenient=args.lenient)
    for w in result.warnings:
        print(f"camels: warning: {w}", file=sys.stderr)
    from camels.core.io import read_json
    from camels.data.records import format_table

    m = read_json(result.manifest)
    rows = [[name, str(s["available"]), str(s["out"]), str(s["downsampled"]), str(s["duplicates"]),
             str(sum(s["skipped"].values()))] for name, s in m["sources"].items()]
    rows.append(["all", str(sum(s["available"] for s in m["sources"].values())), str(result.written),
                 *(str(sum(s[k] for s in m["sources"].values())) for k in ("downsampled", "duplicates")),
                 str(m["skipped_total"])])
    print(format_table(["source", "available", "out", "downsampled", "duplicates", "skipped"], rows))
    print(f"wrote {result.written} conversations to {result.output} (manifest: {result.manifest})")
    return 0


def _decontaminate(args: argparse.Namespace) -> int:
    from camels.data.decontam import decontaminate, resolve_benchmarks

    if args.drop and not args.output:
        raise ConfigError("--drop needs -o OUT.jsonl for the cleaned file")
    if args.output and not args.drop:
        raise ConfigError("-o is for the cleaned file: add --drop")
    benchmarks = resolve_benchmarks(args.benchmarks)
    result = decontaminate(
        args.train, benchmarks, n=args.n, threshold=args.threshold, min_matches=args.min_matches,
        turns=args.turns, output=args.output if args.drop else None, report_path=args.report, lenient=args.lenient,
        max_examples=args.examples,
    )
    report = result.report
    if report.conversations.total() == 0 and not report.skipped:
        print(f"camels: warning: {args.train}: no records in this input (an empty file?)", file=sys.stderr)
    for name, info in report.benchmarks.items():
        print(f"{name}: {info['items']} items, {info['ngrams']} distinct {args.n}-grams, "
              f"{info['short_items']} items shorter than {args.n} words ({info['path']})")
    print(report.table())
    if args.report:
        print(f"report: {args.report}")
    if result.written is not None:
        print(f"wrote {result.written} clean conversations to {args.output} (manifest: {result.manifest})")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from camels.data.stats import compute_stats, load_counter

    count, name = load_counter(args.tokenizer)
    for path in args.inputs:
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            print(f"camels: warning: {path}: no records in this input (an empty file)", file=sys.stderr)
    table = compute_stats(args.inputs, count=count, tokenizer_name=name, lenient=args.lenient)
    if args.json:
        print(json.dumps({"tokenizer": table.tokenizer, "rows": table.rows(), "skipped": table.skipped},
                         indent=2))
    else:
        print(table.format())
        if table.skipped:
            print(f"skipped: {table.skipped}")
    if args.csv:
        table.write_csv(args.csv)
        print(f"csv: {args.csv}", file=sys.stderr if args.json else sys.stdout)
    return 0
