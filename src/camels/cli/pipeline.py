"""``camels run`` and ``camels sweep``: the whole study from one config (library: camels.pipeline)."""

from __future__ import annotations

import argparse

from camels.pipeline.stages import KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="data -> train -> eval -> report from one pipeline config, resuming where a run stopped",
        description="Run the stages of PIPELINE.yaml (convert each source, mix, decontaminate, train, evaluate, "
                    "report). A stage whose complete output exists with the same key (a hash of its inputs and "
                    "config) is reused; a run killed during training resumes from its last checkpoint, and "
                    "evaluation from its request cache. See docs/pipeline.md.",
    )
    p.add_argument("config", help="the pipeline YAML file")
    _flags(p)
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="changes to the config, e.g. train.learning_rate=1e-5 eval.untrained=base")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "sweep",
        help="one model per training source (and per mixture) through the pipeline, then one report",
        description="Make one model per data source of the sweep's pipeline (and per extra mixture), from the "
                    "same base model and recipe, each through the pipeline's stages in one output folder (each "
                    "source is converted once for all), then one report across all of them. With --launcher "
                    "slurm: write one Slurm job per model (accelerate launch) and how to collect the report; "
                    "run nothing. See docs/pipeline.md.",
    )
    p.add_argument("config", help="the sweep YAML file")
    _flags(p, sweep=True)
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="changes to the sweep file, e.g. sources=[dolly,oasst1]")
    p.set_defaults(func=_sweep)


def _flags(p: argparse.ArgumentParser, sweep: bool = False) -> argparse.ArgumentParser:
    p.add_argument("--dry-run", action="store_true",
                   help="print the stages, their keys and what would be reused or run (and why); run nothing")
    p.add_argument("--only", action="append", choices=KINDS, default=[],
                   help="run only stages of this kind (repeatable); earlier stages must be done")
    p.add_argument("--rerun", action="append", default=[], metavar="STAGE[,STAGE]",
                   help="run these stages again though done with the same key (e.g. after upgrading camels); "
                        "later stages stay reused unless named too (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if sweep:
        p.add_argument("--launcher", choices=("slurm",), default=None,
                       help="write one cluster job per model instead of running (slurm)")
    return p


def _split(args: argparse.Namespace, sweep: bool = False) -> argparse.Namespace:
    """Flags given after the config file (which argparse leaves among the overrides) taken out."""
    rest = argparse.ArgumentParser(prog=f"camels {'sweep' if sweep else 'run'}", add_help=False)
    _flags(rest, sweep).add_argument("overrides", nargs="*")
    more = rest.parse_intermixed_args(args.overrides)
    if sweep:
        args.launcher = args.launcher or more.launcher
    args.dry_run = args.dry_run or more.dry_run
    args.only = [*args.only, *more.only]
    args.rerun = [s.strip() for v in [*args.rerun, *more.rerun] for s in v.split(",") if s.strip()]
    args.no_progress = args.no_progress or more.no_progress
    args.overrides = more.overrides
    return args


def _run(args: argparse.Namespace) -> int:
    from camels.pipeline import run_pipeline

    args = _split(args)

    run_pipeline(args.config, args.overrides, dry_run=args.dry_run, only=args.only, rerun=args.rerun,
                 progress=not args.no_progress, command=["camels", "run", args.config, *args.overrides])
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from camels.pipeline.sweep import run_sweep

    args = _split(args, sweep=True)
    run_sweep(args.config, args.overrides, dry_run=args.dry_run, launcher=args.launcher, only=args.only,
              rerun=args.rerun, progress=not args.no_progress)
    return 0
