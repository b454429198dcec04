"""``camels demo``: the whole pipeline on built-in data and a tiny model, on the CPU."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the pipeline on built-in skills data with a tiny model (CPU, about a minute)",
        description="Write built-in skills data in four raw source formats and a tiny randomly initialised "
                    "LLaMA under --out, then `camels run` the shipped pipeline configs/pipelines/demo.yaml "
                    "there: convert, mix, decontaminate, finetune, evaluate the untrained and the trained "
                    "model on held-out items, and write the report (report/report.md, report.html).",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--train-examples", type=int, default=2000, help="training examples (default: 2000)")
    p.add_argument("--eval-examples", type=int, default=40, help="held-out examples (default: 40)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default: 8)")
    p.add_argument("--model-size", type=int, default=128, help="hidden size of the tiny LLaMA (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from camels.demo import run_demo

    run_demo(args.out, n_train=args.train_examples, n_eval=args.eval_examples, epochs=args.epochs,
             model_size=args.model_size, seed=args.seed, progress=not args.no_progress)
    return 0
