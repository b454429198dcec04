"""``camels data convert SOURCE INPUT... -o OUT.jsonl``: raw dataset files -> unified conversations."""

from __future__ import annotations

import argparse
import sys


def register(group: argparse._SubParsersAction) -> None:
    from camels.data.sources import NAMES

    p = group.add_parser(
        "convert",
        help="convert raw files of one source into unified conversations (JSONL + manifest)",
        description="Convert raw files of one source into unified conversations. Writes OUT.jsonl and "
                    "OUT.manifest.json (inputs with hashes, records in/out, skips by reason).",
    )
    p.add_argument("source", choices=NAMES, metavar="SOURCE", help=f"one of: {', '.join(NAMES)}")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="raw files or folders (.json, .jsonl, .tsv, .parquet, .gz), or hf:org/name[:split]")
    p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="output JSONL file")
    p.add_argument("--lenient", action="store_true",
                   help="skip broken records and count them by reason in the manifest (default: stop at "
                        "the first one with its file, line and field)")
    p.add_argument("--seed", type=int, default=None, help="seed of the prompt-template and sampling draws "
                   "(default 42, the study's)")
    p.add_argument("--preset", choices=("tulu-v1", "camels"), default="tulu-v1",
                   help="tulu-v1 (default): the Tülu v1 study's conversion rules, record for record; camels: "
                        "camels' own options (see docs/data.md); --option values override either")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="source option, repeatable (e.g. top_k=1 for oasst1, max_tokens=4096 for sharegpt, "
                        "template=plain, tasks=train_tasks.txt for superni)")
    p.add_argument("--tokenizer", default=None, metavar="NAME_OR_PATH",
                   help="tokenizer that measures ShareGPT's chunk budget (default: whitespace words)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camels.data.convert import DEFAULT_SEED, convert, parse_option

    options = dict(parse_option(o) for o in args.option)
    manifest = convert(
        args.source, args.inputs, args.output, lenient=args.lenient,
        seed=DEFAULT_SEED if args.seed is None else args.seed, options=options, tokenizer=args.tokenizer,
        progress=not args.no_progress, preset=args.preset,
    )
    for warning in manifest.extra.get("warnings", []):
        print(f"camels: warning: {warning}", file=sys.stderr)
    print(f"{args.source}: {manifest.extra['summary']} -> {args.output}", file=sys.stdout)
    return 0
