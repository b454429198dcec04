"""The stages of a pipeline (or of a sweep: several pipelines over one output folder), built from configs.

Layout of an output folder (one model, or every model of a sweep)::

    <output>/
      pipeline.<name>.yaml          the resolved config of each model's pipeline
      data/sources/<source>.jsonl   converted sources (+ manifests), shared by every model
      data/<name>/mix.jsonl         the model's mixture; train.jsonl: after decontamination; stats.csv
      train/<name>/                 camels train's run folder (checkpoints/, metrics.jsonl, final/)
      eval/<name>/<task>/           camels eval's run folders; eval/.cache/<name>.sqlite its request cache
      report/                       report.md, report.csv, report.html
      .camels/stages/               the done-markers (camels.pipeline.stages)

Every stage calls the library function of its ``camels`` command (convert, mix, decontaminate, train,
evaluate, build_report): the pipeline adds keys and order, not another way of doing the work.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camels.core.config import dump, to_dict
from camels.core.errors import ConfigError
from camels.core.io import atomic_write
from camels.core.layout import run_dir
from camels.core.results import METRICS_FILE
from camels.pipeline.config import MixtureSection, PipelineConfig, ReportSection
from camels.pipeline.config import eval_plan as config_eval_plan
from camels.pipeline.stages import STATE_DIR, Hasher, Stage, is_main_process, stage_key


@dataclass
class Layout:
    root: Path

    @property
    def sources(self) -> Path:
        return self.root / "data" / "sources"

    def source(self, name: str) -> Path:
        return self.sources / f"{name}.jsonl"

    def data(self, name: str) -> Path:
        return self.root / "data" / name

    def train(self, name: str) -> Path:
        return self.root / "train" / name

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"


@dataclass
class Built:
    """The stages of a run and what they produce, by model name."""

    stages: list[Stage]
    layout: Layout
    models: dict[str, Path]  # row -> evaluated model folder (or hub name)
    training_runs: dict[str, Path]
    train_files: dict[str, Path]
    configs: list[PipelineConfig]
    hasher: Hasher

    def write_configs(self) -> None:
        """The resolved config of each model's pipeline, and the remembered input hashes."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        for cfg in self.configs:
            path = self.layout.root / f"pipeline.{cfg.name}.yaml"
            text = dump(cfg)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:  # unchanged: left as it is
                with atomic_write(path) as f:
                    f.write(text)
        self.hasher.save()


def _say(msg: str) -> None:
    if is_main_process():  # under accelerate launch: once, not once per process
        print(f"[camels run] {msg}", flush=True)


def build(configs: Sequence[PipelineConfig], *, root: str | Path | None = None,
          report: ReportSection | None = None, progress: bool = True,
          command: Sequence[str] | None = None) -> Built:
    """The stages of the pipelines ``configs`` (one per model; the first one's data sources, eval and report
    settings are shared) over the output folder ``root`` (default: the first config's ``output``)."""
    if not configs:
        raise ConfigError("no model to run")
    first = configs[0]
    layout = Layout(Path(root if root is not None else first.output).resolve())
    hasher = Hasher(layout.root / STATE_DIR / "hashes.json")
    stages: dict[str, Stage] = {}
    command = list(command or ["camels", "run"])

    def add(stage: Stage) -> None:
        seen = stages.get(stage.id)
        if seen is not None and seen.key != stage.key:
            raise ConfigError(f"stage {stage.id}: two models define it differently (the data sources and the "
                              "untrained model must be the same for every model of a run)")
        stages.setdefault(stage.id, stage)

    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two models named {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    models: dict[str, Path] = {}
    runs: dict[str, Path] = {}
    files: dict[str, Path] = {}
    eval_keys: dict[str, str] = {}
    plans = EvalPlans(hasher)
    for cfg in configs:
        converts = _convert_stages(cfg, layout, hasher, progress)
        for st in converts.values():
            add(st)
        data_stages = _data_stages(cfg, layout, hasher, {n: s.key for n, s in converts.items()}, progress)
        for st in data_stages:
            add(st)
        train_file = layout.data(cfg.name) / ("train.jsonl" if cfg.data.decontaminate else "mix.jsonl")
        train_stage = _train_stage(cfg, layout, hasher, data_stages[-1].key, train_file)
        add(train_stage)
        files[cfg.name] = train_file
        runs[cfg.name] = layout.train(cfg.name)
        final = layout.train(cfg.name) / "final"
        if cfg.eval.untrained is not None:
            base = cfg.train["model"]
            st = _eval_stage(cfg, layout, plans.get(cfg), cfg.eval.untrained, base, f"model:{hasher.model(base)}",
                             command)
            add(st)
            models[cfg.eval.untrained] = Path(base)
            eval_keys[cfg.eval.untrained] = st.key
        st = _eval_stage(cfg, layout, plans.get(cfg), cfg.name, str(final), f"train:{train_stage.key}", command)
        add(st)
        models[cfg.name] = final
        eval_keys[cfg.name] = st.key
    rep = report if report is not None else first.report
    if rep.enabled:
        add(_report_stage(rep, layout, hasher, eval_keys, {n: stages[f"train-{n}"].key for n in runs}, runs))
    # train before eval before report, each model's data before its training; conversions first
    order = {"data": 0, "train": 1, "eval": 2, "report": 3}
    ordered = sorted(stages.values(), key=lambda s: order[s.kind])  # stable: data stages keep their order
    return Built(ordered, layout, models, runs, files, list(configs), hasher)


# -- data ------------------------------------------------------------------------------------------------


def _convert_stages(cfg: PipelineConfig, layout: Layout, hasher: Hasher, progress: bool) -> dict[str, Stage]:
    from camels.data.convert import expand_inputs

    out = {}
    for name, src in sorted(cfg.data.sources.items()):
        try:
            inputs = expand_inputs(src.files)
        except ConfigError as e:
            raise ConfigError(f"data.sources.{name}.files: {e}") from None
        hashes = [f if f.startswith("hf:") else hasher.file(f) for f in inputs]
        source = src.source or name
        key = stage_key("convert", source=source, inputs=hashes, options=src.options, preset=src.preset,
                        lenient=src.lenient, seed=cfg.data.seed,
                        tokenizer=hasher.model(src.tokenizer) if src.tokenizer else None)
        target = layout.source(name)

        def run(action: str, source: str = source, inputs: list[str] = inputs, target: Path = target,
                src: Any = src) -> None:
            from camels.data.convert import convert

            target.parent.mkdir(parents=True, exist_ok=True)
            m = convert(source, inputs, target, lenient=src.lenient, seed=cfg.data.seed, options=src.options,
                        preset=src.preset, tokenizer=src.tokenizer, progress=progress)
            _say(f"convert {source}: {m.conversations_out} conversations from {m.records_in} records "
                 f"({sum(m.skipped.values())} skipped) -> {target}")

        out[name] = Stage(id=f"convert-{name}", kind="data", key=key, outputs=[target], run=run,
                          what=f"convert {len(inputs)} {source} file(s) -> {target}")
    return out


def _mixture(cfg: PipelineConfig, layout: Layout) -> Any:
    """The model's mixture over the converted sources."""
    from camels.data.mixture import load_mixture, mixture_from_dict

    spec = cfg.data.mixture
    if spec is None:
        spec = MixtureSection()
    if isinstance(spec, MixtureSection):
        chosen = spec.sources or {n: None for n in cfg.data.sources}
        sources = {}
        for n, s in chosen.items():
            if n not in cfg.data.sources:
                raise ConfigError(f"data.mixture.sources.{n}: not a source of data.sources "
                                  f"(known: {', '.join(sorted(cfg.data.sources))})")
            entry: dict[str, Any] = {"path": str(layout.source(n))}
            if s is not None:
                entry.update({k: v for k, v in (("count", s.count), ("fraction", s.fraction)) if v is not None})
                entry["on_short"] = s.on_short
            sources[n] = entry
        return mixture_from_dict({"name": cfg.name, "seed": spec.seed, "sampling": spec.sampling,
                                  "sources": sources}, origin="data.mixture")
    mixture = load_mixture(spec)
    unknown = sorted({s.name for s in mixture.sources} - set(cfg.data.sources))
    if unknown:
        raise ConfigError(f"data.mixture: mixture {spec!r} uses source {unknown[0]!r}, which data.sources "
                          f"does not define (defined: {', '.join(sorted(cfg.data.sources))})")
    return mixture.with_inputs({s.name: str(layout.source(s.name)) for s in mixture.sources})


def _data_stages(cfg: PipelineConfig, layout: Layout, hasher: Hasher, convert_keys: dict[str, str],
                 progress: bool) -> list[Stage]:
    folder = layout.data(cfg.name)
    mixture = _mixture(cfg, layout)
    recipe = mixture.to_dict()
    for name, s in recipe["sources"].items():  # files stand for their convert stage's key
        s["files"] = [convert_keys[name]]
    recipe.pop("name", None)
    mixed = folder / "mix.jsonl"
    dec = cfg.data.decontaminate
    last_out = folder / ("train.jsonl" if dec else "mix.jsonl")
    stats = folder / "stats.csv"

    def write_stats() -> None:
        if cfg.data.stats:
            from camels.data.stats import compute_stats

            table = compute_stats([last_out], show_progress=False)
            table.write_csv(stats)
            print(table.format(), flush=True)

    def run_mix(action: str) -> None:
        from camels.data.mixture import mix

        folder.mkdir(parents=True, exist_ok=True)
        res = mix(mixture, mixed, show_progress=progress)
        _say(f"mix -> {mixed} ({res.written} conversations)")
        if not dec:
            write_stats()

    mix_key = stage_key("mix", recipe=recipe, stats=cfg.data.stats and not dec)
    out = [Stage(id=f"mix-{cfg.name}", kind="data", key=mix_key,
                 outputs=[mixed] + ([stats] if cfg.data.stats and not dec else []), run=run_mix,
                 what=f"mix {', '.join(sorted(recipe['sources']))} -> {mixed}")]
    if dec:
        benches = {}
        for name, path in sorted(dec.benchmarks.items()):
            if not Path(path).exists():
                raise ConfigError(f"data.decontaminate.benchmarks.{name}: {path} does not exist")
            benches[name] = hasher.path(path)
        report_path = folder / "decontamination.json"

        def run_dec(action: str) -> None:
            from camels.data.decontam import decontaminate

            res = decontaminate(mixed, dec.benchmarks, n=dec.n, threshold=dec.threshold,
                                min_matches=dec.min_matches, turns=dec.turns, output=last_out,
                                report_path=report_path, show_progress=progress)
            dropped = sum(res.report.contaminated.values())
            _say(f"decontaminate -> {last_out}: {res.written} conversations kept, {dropped} dropped as "
                 f"contaminated ({report_path.name} lists them)")
            write_stats()

        key = stage_key("decontaminate", mix=mix_key, benchmarks=benches, n=dec.n, threshold=dec.threshold,
                        min_matches=dec.min_matches, turns=dec.turns, stats=cfg.data.stats)
        out.append(Stage(id=f"decontaminate-{cfg.name}", kind="data", key=key,
                         outputs=[last_out, report_path] + ([stats] if cfg.data.stats else []), run=run_dec,
                         what=f"decontaminate {mixed.name} against {', '.join(sorted(benches))} -> {last_out}"))
    return out


# -- train -------------------------------------------------------------------------------------------------


def train_config(cfg: PipelineConfig, train_file: Path, output_dir: Path, resume: bool) -> Any:
    from camels.train.config import TrainConfig

    return TrainConfig.from_dict({**copy.deepcopy(cfg.train), "train_files": [str(train_file)],
                                  "output_dir": str(output_dir), "resume": resume})


def _train_stage(cfg: PipelineConfig, layout: Layout, hasher: Hasher, data_key: str, train_file: Path) -> Stage:
    train_dir = layout.train(cfg.name)
    resolved = train_config(cfg, train_file, train_dir, False).to_dict()
    for k in ("train_files", "output_dir", "resume", "model", "tokenizer", "token_cache", "report_to",
              "logging_every", "save_every_steps", "keep_last_checkpoints"):
        resolved.pop(k, None)  # paths and bookkeeping: not what the model becomes (checkpoints: same weights)
    model_key = hasher.model(cfg.train["model"])
    tok = cfg.train.get("tokenizer")
    key = stage_key("train", data=data_key, model=model_key, tokenizer=hasher.model(tok) if tok else None,
                    config=resolved)

    def can_resume() -> bool:
        from camels.train.checkpoint import list_checkpoints

        return bool(list_checkpoints(train_dir))

    def run(action: str) -> None:
        from camels.train.loop import train

        tc = train_config(cfg, train_file, train_dir, action == "resume")
        res = train(tc)
        if res.resumed_from is not None:
            _say(f"train {cfg.name}: resumed from {res.resumed_from.name}, now at step {res.steps}")
        _say(f"train {cfg.name}: {res.steps} steps, final loss {res.final_loss:.4f} -> {res.final_model}")

    return Stage(id=f"train-{cfg.name}", kind="train", key=key, outputs=[train_dir / "final" / "config.json"],
                 run=run, what=f"train {cfg.train['model']} on {train_file.name} -> {train_dir}",
                 clean=[train_dir], resumable=True, can_resume=can_resume)


# -- eval ---------------------------------------------------------------------------------------------------


#: Backend options the answers do not depend on (``camels eval --batch-size``: same results): not in the key.
UNKEYED_BACKEND_OPTIONS = ("batch_size",)


@dataclass
class EvalInputs:
    """What every row evaluated with one eval section shares: the plan (tasks built, options checked) and
    the key parts of its tasks, suite and benchmark files."""

    plan: Any
    tasks: dict[str, Any]
    suite: dict[str, str] | None
    data: dict[str, str | None]


class EvalPlans:
    """The eval plan of each distinct eval section, built once per run (its suite loaded and its benchmark
    folders hashed once, however many rows and models share it)."""

    def __init__(self, hasher: Hasher) -> None:
        self.hasher = hasher
        self._built: dict[str, EvalInputs] = {}

    def get(self, cfg: PipelineConfig) -> EvalInputs:
        ev = cfg.eval
        known = json.dumps([ev.suite, ev.tasks, ev.options, ev.data, ev.task_data], sort_keys=True, default=str)
        if known not in self._built:
            self._built[known] = self._make(cfg)
        return self._built[known]

    def _make(self, cfg: PipelineConfig) -> EvalInputs:
        from camels.evals.suite import load_suite

        suite = load_suite(cfg.eval.suite) if cfg.eval.suite is not None else None
        plan = config_eval_plan(cfg, suite)
        # each task by the folder it reads (ROOT/<its folder> under a benchmarks root), not the whole root
        data = {t.label: self.hasher.path(t.resolve_data_path(p)) if p is not None and Path(p).exists()
                else (str(p) if p else None) for t, p in ((t, plan.data.get(t.label)) for t in plan.tasks)}
        tasks = {t.label: {"task": t.name, "version": getattr(t, "version", None), "config": to_dict(t.config)}
                 for t in plan.tasks}
        return EvalInputs(plan, tasks, None if suite is None else {"name": suite.name,
                                                                   "file": self.hasher.file(suite.path)}, data)


def _eval_stage(cfg: PipelineConfig, layout: Layout, inputs: EvalInputs, row: str, model: str, model_key: str,
                command: Sequence[str]) -> Stage:
    ev = cfg.eval
    eval_plan = inputs.plan
    labels = [t.label for t in eval_plan.tasks]
    key = stage_key("eval", model=model_key, tasks=inputs.tasks, suite=inputs.suite, data=inputs.data,
                    backend=ev.backend,
                    backend_options={k: v for k, v in ev.backend_options.items() if k not in UNKEYED_BACKEND_OPTIONS},
                    chat_format=ev.chat_format, pending=eval_plan.pending)
    runs = [run_dir(layout.eval, model, label, run_name=row) for label in labels]

    def run(action: str) -> None:
        from camels.backends import load_backend
        from camels.evals.suite import check_data, evaluate

        loaded = check_data(eval_plan)
        options = dict(ev.backend_options)
        if ev.chat_format is not None:
            options["chat_format"] = ev.chat_format
        backend = load_backend(ev.backend, model, **options)

        def said(r: Any) -> None:
            if r.result is not None:
                m = r.result.metrics
                primary = getattr(r.task, "primary_metric", None)
                value = m.get(primary) if primary else None
                _say(f"eval {row} {r.task.label}: " + (f"{primary} {value:.4f}" if isinstance(value, float)
                                                       else "done") + f" -> {r.run_dir}")

        # one cache file per model: the jobs of a sweep evaluate at once on several machines, and SQLite must
        # not be written by several of them over a network file system (answers are keyed by model anyway)
        evaluate(eval_plan, backend, model=model, output=layout.eval, run_name=row, loaded=loaded,
                 command=list(command), on_result=said, batch_tasks=ev.batch_tasks,
                 cache_path=layout.eval / ".cache" / f"{row}.sqlite")

    return Stage(id=f"eval-{row}", kind="eval", key=key, outputs=[r / METRICS_FILE for r in runs], run=run,
                 what=f"evaluate {row} on {', '.join(labels)} -> {layout.eval / row}", resumable=True)


# -- report -------------------------------------------------------------------------------------------------


def _report_stage(rep: ReportSection, layout: Layout, hasher: Hasher, eval_keys: dict[str, str],
                  train_keys: dict[str, str], runs: dict[str, Path]) -> Stage:
    rows = list(eval_keys)
    ref = rep.reference
    ref_key = None
    if ref is not None:
        ref_key = hasher.path(ref) if Path(ref).exists() else ref
    key = stage_key("report", rows=eval_keys, training=train_keys, reference=ref_key, baseline=rep.baseline,
                    title=rep.title, seed=rep.seed, n_boot=rep.n_boot)
    out = layout.report

    def run(action: str) -> None:
        from camels.report import build_report

        outs = build_report([layout.eval / r for r in rows], out, reference=rep.reference, baseline=rep.baseline,
                            training_runs={r: runs[r] for r in rows if r in runs}, title=rep.title, seed=rep.seed,
                            n_boot=rep.n_boot)
        _say(f"report -> {outs.markdown}, {outs.csv}, {outs.html}")

    return Stage(id="report", kind="report", key=key, outputs=[out / "report.md", out / "report.csv"], run=run,
                 what=f"report of {', '.join(rows)} -> {out}")

