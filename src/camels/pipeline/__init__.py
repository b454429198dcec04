"""``camels run``: data -> train -> eval -> report from one config, resumable stage by stage.

:func:`run_pipeline` reads a pipeline file (:mod:`camels.pipeline.config`), builds its stages
(:mod:`camels.pipeline.plan`), and runs the ones whose output is not already there with the same key
(:mod:`camels.pipeline.stages`); ``dry_run`` only says what it would do. :mod:`camels.pipeline.sweep` does the
same for one model per training source or mixture, with one report across them (``camels sweep``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camels.pipeline.config import PipelineConfig, load_pipeline
from camels.pipeline.plan import Built, _say, build
from camels.pipeline.stages import Stage, Status, execute, is_main_process, plan_table

__all__ = ["PipelineConfig", "RunResult", "load_pipeline", "run_built", "run_pipeline"]


@dataclass
class RunResult:
    """What a run did: each stage with its status (reuse/run/resume), and where things are."""

    built: Built
    statuses: list[tuple[Stage, Status]]
    dry_run: bool

    @property
    def root(self) -> Path:
        return self.built.layout.root

    def action(self, stage_id: str) -> str:
        return next(st.action for s, st in self.statuses if s.id == stage_id)


def run_built(built: Built, *, dry_run: bool = False, only: Iterable[str] = (), rerun: Iterable[str] = (),
              title: str = "", say: Callable[[str], None] = _say) -> RunResult:
    """Run (or plan) the stages of ``built``; with ``dry_run`` print the plan and write nothing. ``only``:
    stage kinds to run; ``rerun``: stage ids run again though done (:func:`camels.pipeline.stages.execute`)."""
    if dry_run:
        statuses = execute(built.stages, built.layout.root, dry_run=True, only=only, rerun=rerun)
        n_run = sum(st.action != "reuse" for _, st in statuses)
        print(f"{title or 'plan'}: {len(statuses)} stages under {built.layout.root}, "
              f"{len(statuses) - n_run} reused, {n_run} to run", flush=True)
        print(plan_table([s for s, _ in statuses], [st for _, st in statuses]), flush=True)
        return RunResult(built, statuses, True)
    if is_main_process():  # under accelerate launch every process runs this; the first one writes and says
        built.write_configs()
        say(f"{title or 'run'}: {len(built.stages)} stages under {built.layout.root}")
    return RunResult(built, execute(built.stages, built.layout.root, only=only, rerun=rerun, say=say), False)


def run_pipeline(config: str | Path | PipelineConfig, overrides: Sequence[str] | Mapping[str, Any] = (), *,
                 dry_run: bool = False, only: Iterable[str] = (), rerun: Iterable[str] = (), progress: bool = True,
                 command: Sequence[str] | None = None) -> RunResult:
    """Run the pipeline of ``config`` (a file, with ``key=value`` ``overrides``, or a loaded config)."""
    cfg = config if isinstance(config, PipelineConfig) else load_pipeline(config, overrides)
    built = build([cfg], progress=progress, command=command or ["camels", "run", str(config)])
    return run_built(built, dry_run=dry_run, only=only, rerun=rerun, title=f"camels run {cfg.name}")
