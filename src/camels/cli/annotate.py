"""``camels annotate ...``: the human pairwise evaluation app (import, accounts, serve, export).

Flask, SQLAlchemy and the app are imported inside each command, so ``camels --help`` stays fast.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from camels.core.errors import ConfigError

DEFAULT_DB = "annotate.sqlite"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="human pairwise evaluation: a web app where annotators compare two runs' responses",
        description="Import two runs, invite annotators, serve the annotation app, export the results. "
                    "See docs/human-eval.md.",
    )
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    cmds = p.add_subparsers(dest="annotate_command", metavar="ACTION")

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help, description=help)
        c.add_argument("--db", default=os.environ.get("CAMELS_ANNOTATE_DB", DEFAULT_DB),
                       help=f"SQLite file or SQLAlchemy URL (default $CAMELS_ANNOTATE_DB or {DEFAULT_DB})")
        c.set_defaults(func=func)
        return c

    c = add("import", "pair two runs' outputs on the same prompts into a new study", _import)
    c.add_argument("run_a", metavar="RUN_A",
                   help="camels run folder (predictions.jsonl) or alpaca_eval model_outputs.json")
    c.add_argument("run_b", metavar="RUN_B", help="the same for the other model")
    c.add_argument("--name", help="study name (default: MODEL_A-vs-MODEL_B)")
    c.add_argument("--model-a", help="model name of RUN_A (default: from the file or folder)")
    c.add_argument("--model-b", help="model name of RUN_B")
    c.add_argument("-k", "--annotators-per-pair", type=int, default=1,
                   help="how many annotators see each pair (default 1; 2 or more gives agreement figures)")
    c.add_argument("--limit", type=int, help="only the first N pairs of the seeded shuffle")
    c.add_argument("--seed", type=int, default=0, help="seed of the order pairs are handed out in")

    c = add("import-judge", "attach an LLM judge's verdicts (alpaca_eval annotations.json) to a study",
            _import_judge)
    c.add_argument("annotations", help="annotations.json with instruction, output_1/2, generator_1/2, "
                                       "preference")
    c.add_argument("--study", required=True, help="study name")
    c.add_argument("--judge", help="judge name (default: the file's parent folder name)")

    c = add("create-admin", "create an admin account (asks for the password; there is no default)",
            _create_admin)
    c.add_argument("username")
    c.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    c = add("invite", "print a one-time invitation link for a new annotator", _invite)
    c.add_argument("--base-url", default="http://127.0.0.1:8000", help="where annotators reach the app")
    c.add_argument("--note", default="", help="who the link is for (shown on the dashboard)")
    c.add_argument("--days", type=int, default=7, help="days the link stays valid (default 7)")

    c = add("export", "write annotations.csv, annotations.jsonl and results.json (acceptance, win/tie/loss, "
                      "agreement between annotators and with judges)", _export)
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--study", action="append", help="only this study (repeatable; default all)")

    c = add("serve", "serve the app (waitress, a production WSGI server)", _serve)
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    c.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    c.add_argument("--batch", type=int, default=50, help="pairs handed to an annotator at a time (default 50)")
    c.add_argument("--secure-cookies", action="store_true",
                   help="send the session cookie over https only (set when behind a TLS proxy)")


def _open(args):
    from camels.annotate.store import open_store

    return open_store(args.db)


def _import(args) -> int:
    from camels.annotate.service import import_study
    from camels.annotate.sources import pair_outputs, read_outputs

    a = read_outputs(args.run_a, args.model_a)
    b = read_outputs(args.run_b, args.model_b)
    pairing = pair_outputs(a, b)
    name = args.name or f"{pairing.model_a}-vs-{pairing.model_b}"
    store = _open(args)
    with store.Session() as s:
        study = import_study(s, pairing, name=name, sources=(a.source, b.source), k=args.annotators_per_pair,
                             seed=args.seed, limit=args.limit)
        n = args.limit if args.limit is not None else len(pairing.items)
        n = min(n, len(pairing.items))
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(pairing.skipped.items())) or "none"
    print(f"study {study.name!r}: {n} pairs of {pairing.model_a} (A) vs {pairing.model_b} (B), "
          f"{args.annotators_per_pair} annotator(s) per pair; not paired: {skipped}")
    return 0


def _import_judge(args) -> int:
    from pathlib import Path

    from sqlalchemy import select

    from camels.annotate.db import Study
    from camels.annotate.service import import_judge
    from camels.annotate.sources import read_judge_annotations

    verdicts, skipped = read_judge_annotations(args.annotations)
    judge = args.judge or Path(args.annotations).resolve().parent.name
    store = _open(args)
    with store.Session() as s:
        study = s.scalar(select(Study).where(Study.name == args.study))
        if study is None:
            raise ConfigError(f"no study named {args.study!r}")
        counts = import_judge(s, study, verdicts, judge=judge, source=str(args.annotations))
    counts.update(skipped)
    print(f"judge {judge!r} on study {args.study!r}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


def _create_admin(args) -> int:
    from camels.annotate.service import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("password again: "):
            raise ConfigError("the two passwords differ")
    store = _open(args)
    with store.Session() as s:
        user = create_user(s, args.username, password, is_admin=True)
    print(f"admin {user.username!r} created")
    return 0


def _invite(args) -> int:
    from camels.annotate.service import create_invitation

    store = _open(args)
    with store.Session() as s:
        token = create_invitation(s, note=args.note, days=args.days)
    print(f"{args.base_url.rstrip('/')}/invite/{token}")
    return 0


def _export(args) -> int:
    from camels.annotate.export import export

    store = _open(args)
    with store.Session() as s:
        res = export(s, args.out, args.study)
    for st in res["studies"]:
        pref, acc = st["preference"], st["acceptance"]
        line = (f"{st['study']}: {st['annotations']} annotations of {st['items']} pairs by {st['annotators']} "
                f"annotator(s); acceptable A {_pct(acc['a']['rate'])} B {_pct(acc['b']['rate'])}; "
                f"A wins {_pct(pref['a_wins']['rate'])} ties {_pct(pref['ties']['rate'])} "
                f"B wins {_pct(pref['b_wins']['rate'])}")
        for row in st["agreement"]:
            line += f"; agreement ({row['between']}, {row['items']} items) strict {_pct(row['strict'])} " \
                    f"relaxed {_pct(row['relaxed'])}"
        print(line)
    print(f"wrote {args.out}/annotations.csv, annotations.jsonl, results.json")
    return 0


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _serve(args) -> int:
    from waitress import create_server

    from camels.annotate.app import create_app

    app = create_app(args.db, BATCH=args.batch, SESSION_COOKIE_SECURE=args.secure_cookies)
    server = create_server(app, host=args.host, port=args.port, threads=args.threads)
    print(f"camels annotate: serving on http://{args.host}:{server.effective_port}", flush=True)
    try:
        server.run()
    finally:
        server.close()
    return 0
