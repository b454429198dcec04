"""``camels sweep``: the study's core experiment, one model per training source (and per mixture).

A sweep file names a pipeline (the base model, the recipe, the data sources, the evaluation) and which models
to make from it::

    pipeline: study.yaml          # a pipeline file (relative to this file), or the pipeline inline
    per_source: true              # one model per source of the pipeline's data.sources, that source alone
    sources: [dolly, oasst1]      # only these (default: every source)
    mixtures:                     # more models: name -> a mixture (inline, or a named mixture / YAML path)
      tulu-v1-mix: tulu-v1
    output: runs/sweep            # default: the pipeline's output
    report: {reference: tulu-7b}  # default: the pipeline's report section

Every model is the pipeline with its own ``name`` and ``data.mixture``; all of them write into one output
folder, so the conversion of each source (and the untrained model's evaluation) is one stage shared by every
model, run once. Then one report across all models. On one machine :func:`run_sweep` runs the stages in
order; with ``launcher="slurm"`` it writes one job per model (:func:`write_slurm_jobs`) and runs nothing.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core import config
from camels.core.errors import ConfigError
from camels.core.io import atomic_write
from camels.pipeline.config import (
    MixSource,
    MixtureSection,
    PipelineConfig,
    ReportSection,
    check_name,
    from_read,
    load_pipeline,
)

LAUNCHERS = ("slurm",)


@dataclass
class SlurmSection:
    gpus_per_node: int = field(default=8, metadata={"help": "GPUs of one job (accelerate's processes)."})
    partition: str | None = field(default=None, metadata={"help": "Slurm partition."})
    time: str = field(default="48:00:00", metadata={"help": "Time limit of one job."})
    accelerate_config: str | None = field(default=None, metadata={
        "help": "accelerate config file for training (configs/accelerate/...); default: accelerate's own."})
    sbatch: list[str] = field(default_factory=list, metadata={"help": "More #SBATCH options, e.g. --mem=0."})
    setup: list[str] = field(default_factory=list, metadata={
        "help": "Shell lines run first in each job (module load ..., source .venv/bin/activate)."})


@dataclass
class SweepConfig:
    pipeline: str | dict[str, Any] = field(metadata={"help": "The pipeline file (or the pipeline inline)."})
    per_source: bool = field(default=True, metadata={"help": "One model per data source, trained on it alone."})
    sources: list[str] = field(default_factory=list, metadata={"help": "Per-source models of these only."})
    mixtures: dict[str, MixtureSection | str] = field(default_factory=dict, metadata={
        "help": "More models: name -> a mixture of the pipeline's sources."})
    output: str | None = field(default=None, metadata={"help": "Output folder (default: the pipeline's)."})
    report: ReportSection | None = field(default=None, metadata={"help": "The report across all models."})
    slurm: SlurmSection = field(default_factory=SlurmSection, metadata={"help": "With --launcher slurm."})


@dataclass
class Sweep:
    config: SweepConfig
    path: Path
    base: PipelineConfig
    members: list[PipelineConfig]
    root: Path
    report: ReportSection


def load_sweep(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Sweep:
    """Read a sweep file and make one pipeline config per model."""
    path = Path(path)
    # `pipeline.KEY=VALUE` changes the pipeline (a file or inline alike); every other key is the sweep's
    pairs = config.override_pairs(overrides)
    prefix = "pipeline."
    to_pipeline = {k[len(prefix):]: v for k, v in pairs if k.startswith(prefix)}
    read = config.read_with_overrides(path, {k: v for k, v in pairs if not k.startswith(prefix)})
    sweep = read.build(SweepConfig)
    here = path.resolve().parent
    if isinstance(sweep.pipeline, str):
        p = Path(sweep.pipeline)
        base = load_pipeline(p if p.is_absolute() else here / p, to_pipeline)
    else:  # inline: errors name the sweep file's lines
        inline = read.section("pipeline", origin=f"{path} (pipeline)")
        base = from_read(inline.override(to_pipeline), base=here)
    root = Path(sweep.output).expanduser() if sweep.output else Path(base.output)
    root = (root if root.is_absolute() else here / root).resolve()
    mixtures: dict[str, MixtureSection | str] = {}
    if sweep.per_source:
        chosen = sweep.sources or sorted(base.data.sources)
        for s in chosen:
            if s not in base.data.sources:
                raise ConfigError(f"{path}: sources: {s!r} is not a source of the pipeline's data.sources "
                                  f"(known: {', '.join(sorted(base.data.sources))})")
            seed = base.data.mixture.seed if isinstance(base.data.mixture, MixtureSection) else 42
            mixtures[s] = MixtureSection(sources={s: MixSource(count="all")}, seed=seed)
    for name, m in sweep.mixtures.items():
        if name in mixtures:
            raise ConfigError(f"{path}: mixtures.{name}: a per-source model has that name already")
        mixtures[name] = (str(here / m) if isinstance(m, str) and m.endswith((".yaml", ".yml"))
                          and not Path(m).is_absolute() else m)
    if not mixtures:
        raise ConfigError(f"{path}: no model to train (per_source is false and mixtures is empty)")
    members = []
    for name, mixture in mixtures.items():
        check_name(f"{path}: model {name!r}", name)
        if name == base.eval.untrained:
            raise ConfigError(f"{path}: model {name!r} has the name of the untrained row (eval.untrained)")
        m = copy.deepcopy(base)
        m.name, m.data.mixture, m.output = name, mixture, str(root)
        m.report = ReportSection(**{**config.to_dict(base.report), "enabled": False})
        members.append(m)
    return Sweep(sweep, path, base, members, root, sweep.report or base.report)


def run_sweep(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = (), *, dry_run: bool = False,
              launcher: str | None = None, only: Iterable[str] = (), rerun: Iterable[str] = (),
              progress: bool = True) -> Any:
    """Run every model of the sweep through the pipeline, then one report; or write Slurm jobs."""
    from camels.pipeline import run_built
    from camels.pipeline.plan import build

    sweep = load_sweep(path, overrides)
    if launcher is not None:
        if launcher not in LAUNCHERS:
            raise ConfigError(f"--launcher: unknown launcher {launcher!r} (known: {', '.join(LAUNCHERS)})")
        if rerun:
            raise ConfigError("--rerun: not with --launcher (the jobs run stages; give --rerun to camels run in a "
                              "job's script)")
        return write_slurm_jobs(sweep, dry_run=dry_run)
    built = build(sweep.members, root=sweep.root, report=sweep.report, progress=progress,
                  command=["camels", "sweep", str(path)])
    return run_built(built, dry_run=dry_run, only=only, rerun=rerun,
                     title=f"camels sweep ({', '.join(m.name for m in sweep.members)})")


# -- Slurm --------------------------------------------------------------------------------------------------


def write_slurm_jobs(sweep: Sweep, *, dry_run: bool = False) -> list[Path]:
    """One batch script per model under ``<output>/jobs/`` (with the model's own pipeline file beside it),
    and ``jobs/README.md`` saying how to submit them and collect the report. Nothing is submitted."""
    jobs = sweep.root / "jobs"
    s = sweep.config.slurm
    written = []
    for i, member in enumerate(sweep.members):
        m = copy.deepcopy(member)
        if i > 0:
            m.eval.untrained = None  # the untrained model is evaluated once, in the first job
        cfg_path = jobs / f"{m.name}.yaml"
        script = jobs / f"{m.name}.sbatch"
        cfg_q = shlex.quote(str(cfg_path))
        launch = ["accelerate", "launch", "--num_processes", str(s.gpus_per_node)]
        if s.accelerate_config:
            launch += ["--config_file", s.accelerate_config]
        header = ["#!/bin/bash", f"#SBATCH --job-name=camels-{m.name}",
                  f"#SBATCH --output={jobs}/{m.name}-%j.log", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
                  f"#SBATCH --gpus-per-node={s.gpus_per_node}", f"#SBATCH --time={s.time}"]
        if s.partition:
            header.append(f"#SBATCH --partition={s.partition}")
        header += [f"#SBATCH {x}" for x in s.sbatch]
        body = [
            "set -euo pipefail",
            *s.setup,
            f"# model {m.name} of the sweep {sweep.path.name}: {m.data.mixture if isinstance(m.data.mixture, str) else 'sources ' + ', '.join(sorted(m.data.mixture.sources))}",  # noqa: E501
            "# 1. data (convert, mix, decontaminate): one process; stages another job finished are reused",
            f"camels run {cfg_q} --only data",
            "# 2. training on every GPU of the node; a requeued job resumes from the last checkpoint",
            f"{' '.join(launch)} -m camels run {cfg_q} --only train",
            "# 3. evaluation of the trained model (one process; the request cache makes a rerun cheap)",
            f"camels run {cfg_q}",
        ]
        written.append(script)
        if dry_run:
            continue
        jobs.mkdir(parents=True, exist_ok=True)
        config.write_resolved(m, cfg_path)
        with atomic_write(script) as f:
            f.write("\n".join(header + [""] + body) + "\n")
        script.chmod(0o755)
    note = jobs / "README.md"
    rows = " ".join(shlex.quote(str(sweep.root / "eval" / r)) for r in _rows(sweep))
    rep = sweep.report
    flags = "".join([f" --reference {shlex.quote(rep.reference)}" if rep.reference else "",
                     f" --baseline {shlex.quote(rep.baseline)}" if rep.baseline else "",
                     f" --title {shlex.quote(rep.title)}",
                     *(f" \\\n  --training {shlex.quote(m.name + '=' + str(sweep.root / 'train' / m.name))}"
                       for m in sweep.members)])
    text = f"""# Jobs of the sweep {sweep.path.name}

One Slurm batch script per model, each with the pipeline file it runs (`<model>.yaml`): its data stages,
then its training through `accelerate launch` on {s.gpus_per_node} GPU(s), then its evaluation. All jobs
write into `{sweep.root}`; a stage that another job (or an earlier attempt) finished with the same key is
reused, so jobs can run in any order, at the same time, and be resubmitted after a failure.

Submit them all:

```bash
for job in {shlex.quote(str(jobs))}/*.sbatch; do sbatch "$job"; done
```

When every job has finished, collect the one report across all models:

```bash
camels report {rows}{flags} --out {shlex.quote(str(sweep.root / 'report'))}
```

(or run `camels sweep {shlex.quote(str(sweep.path.resolve()))}` on one machine: every stage is reused and the report
stage runs.)
"""
    if not dry_run:
        with atomic_write(note) as f:
            f.write(text)
    print(f"camels sweep: {'would write' if dry_run else 'wrote'} {len(written)} Slurm job(s) under {jobs} "
          f"({', '.join(p.name for p in written)}); see {note} for how to submit them and collect the report",
          flush=True)
    return written


def _rows(sweep: Sweep) -> list[str]:
    rows = [sweep.base.eval.untrained] if sweep.base.eval.untrained else []
    return rows + [m.name for m in sweep.members]


def markdown_reference() -> str:
    """The sweep file's reference table in ``docs/pipeline.md``."""
    from camels.pipeline.config import _table

    return _table(config.field_help(SweepConfig))
