"""The pipeline config: one YAML file for data -> train -> eval -> report, checked strictly.

A pipeline file (``camels run PIPELINE.yaml``; the full reference is ``docs/pipeline.md``)::

    name: tulu-7b                 # the model's name: its folders and its row in the report
    output: runs/study            # every stage writes below this folder
    data:
      sources:                    # raw files of each source -> one converted file per source
        oasst1: {files: [raw/2023-04-12_oasst_ready.trees.jsonl]}
        dolly:  {source: dolly, files: [raw/databricks-dolly-15k.jsonl]}
      mixture: {seed: 42, sources: {oasst1: {count: all}, dolly: {count: 5000}}}   # or a named mixture
      decontaminate: {benchmarks: {mmlu: bench/mmlu, gsm8k: bench/gsm8k}, n: 13}
    train: {model: meta-llama/Llama-2-7b-hf, num_epochs: 2, ...}   # camels train's fields
    eval: {suite: tulu-v1, data: bench}
    report: {reference: tulu-7b}

It is read with :mod:`camels.core.config`, the loader of every camels config: unknown keys and values of
the wrong type stop the run with the file, the line and the key. The ``train`` section is a
:class:`camels.train.config.TrainConfig` without ``train_files`` and ``output_dir`` (the pipeline sets
them); it is checked by that class when the config is loaded, before any stage runs.

Relative paths are taken from the config file's folder (so a pipeline folder can be moved whole): the
``output``, the raw files, the benchmark folders; for ``train.model``, ``train.tokenizer``, ``eval.data``,
``eval.task_data`` and ``report.reference`` only when that path exists there (else the text is a hub name or
a shipped config name and stays as written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from camels.backends.options import coerce_backend_options
from camels.core import config
from camels.core.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RESERVED = {"sources"}  # folder names the layout uses itself (data/sources/)


def _h(default: Any = None, *, help: str, factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class SourceInput:
    """One source's raw files, converted by ``camels data convert``'s library into one JSONL file."""

    files: list[str] = field(metadata={"help": "Raw files of the source (paths, globs, or hf:org/name)."})
    source: str | None = _h(help="Converter name (alpaca, dolly, oasst1, sharegpt, ...); default: the key.")
    preset: str | None = _h(help="Conversion preset: tulu-v1 (the study's rules, default) or camels.")
    options: dict[str, Any] = _h(factory=dict, help="Converter options (as camels data convert -O key=value).")
    lenient: bool = _h(False, help="Skip bad records (counted by reason in the manifest) instead of stopping.")
    tokenizer: str | None = _h(help="Tokenizer that measures length budgets (ShareGPT's 2048-token chunks); "
                                    "default: whitespace words.")


@dataclass
class MixSource:
    count: int | str | None = _h(help="Conversations to take, or 'all' (default: all).")
    fraction: float | None = _h(help="Share of the source's conversations to take (instead of count).")
    on_short: str = _h("upsample", help="When count exceeds the source: upsample, cap or error.")


@dataclass
class MixtureSection:
    """An inline mixture of the converted sources (the format of ``configs/mixtures``, files filled in)."""

    sources: dict[str, MixSource] = _h(factory=dict, help="Source -> how much of it; empty: every source in full.")
    seed: int = _h(42, help="Seed of the sampling.")
    sampling: str = _h("camels", help="Sampling rule: camels or study.")


@dataclass
class DecontamSection:
    benchmarks: dict[str, str] = field(metadata={"help": "Benchmark name -> its raw files (file or folder)."})
    n: int = _h(13, help="n-gram length.")
    threshold: float = _h(0.0, help="Share of a conversation's n-grams found in a benchmark above which it is "
                                   "dropped (0: any match).")
    min_matches: int = _h(1, help="Matching n-grams needed at least.")
    turns: str = _h("user", help="Which turns are checked: user or all.")


@dataclass
class DataSection:
    sources: dict[str, SourceInput] = field(metadata={"help": "Source name -> its raw files (converted once)."})
    mixture: MixtureSection | str | None = _h(
        help="How the converted sources are mixed: an inline section, or a named mixture / YAML path whose "
             "sources are these (default: every source in full).")
    decontaminate: DecontamSection | None = _h(help="Drop training conversations that overlap benchmarks.")
    seed: int = _h(42, help="Seed of the conversion (sources that sample or split).")
    stats: bool = _h(True, help="Write the dataset table (stats.csv) of the training data.")


@dataclass
class EvalSection:
    suite: str | None = _h(help="Eval suite by name (tulu-v1) or YAML path.")
    tasks: list[str] = _h(factory=list, help="Task names (instead of a suite).")
    options: dict[str, dict[str, Any]] = _h(factory=dict, help="Task or run name -> option overrides.")
    data: str | None = _h(help="Folder (or file) of the benchmarks' raw files.")
    task_data: dict[str, str] = _h(factory=dict, help="Task or run name -> its own data path.")
    backend: str = _h("hf", help="Backend: hf, vllm, api or package.module:Class.")
    backend_options: dict[str, Any] = _h(factory=dict, help="Options of the backend (batch_size, device, ...; "
                                                           "checked against the backend's own).")
    chat_format: str | None = _h(help="Chat format of the evaluated models (default: the checkpoint's).")
    untrained: str | None = _h(help="Also evaluate the base model, as a row of this name (e.g. base).")
    batch_tasks: bool = _h(False, help="Answer all tasks' requests in one pass over the backend.")


@dataclass
class ReportSection:
    enabled: bool = _h(True, help="Build the report (report.md, report.csv, report.html) at the end.")
    title: str = _h("camels report", help="Title of the report.")
    reference: str | None = _h(help="A model folder or a YAML of published numbers (tulu-7b, ...).")
    baseline: str | None = _h(help="Row the paired test compares every other row against.")
    seed: int = _h(0, help="Seed of the bootstrap.")
    n_boot: int = _h(1000, help="Bootstrap resamples.")


@dataclass
class PipelineConfig:
    name: str = field(metadata={"help": "The model's name: its folders and its row in the report."})
    output: str = field(metadata={"help": "Folder below which every stage writes (relative: to this file)."})
    data: DataSection = field(metadata={"help": "Sources, mixture, decontamination."})
    train: dict[str, Any] = field(metadata={"help": "camels train's fields, without train_files and output_dir; "
                                                   "recipe: a training config (tulu-v1) as their defaults."})
    eval: EvalSection = field(metadata={"help": "What the trained model is evaluated on."})
    report: ReportSection = _h(factory=ReportSection, help="The report across the evaluated models.")
    description: str = _h("", help="Free text.")

    def __post_init__(self) -> None:
        check_name("name", self.name)
        if not self.data.sources:
            raise ConfigError("data.sources: expected at least one source")
        for name in self.data.sources:
            check_name(f"data.sources.{name}", name)
        if (self.eval.suite is None) == (not self.eval.tasks):
            raise ConfigError("eval: give a suite or a list of tasks (exactly one)")
        if self.eval.untrained is not None:
            check_name("eval.untrained", self.eval.untrained)
            if self.eval.untrained == self.name:
                raise ConfigError(f"eval.untrained: {self.name!r} is already the trained model's name")
        for key in OWNED:
            if key in self.train:
                raise ConfigError(f"train.{key}: set by the pipeline (the data stage's output, the train "
                                  "folder, resume after an interruption); remove it")
        if "model" not in self.train:
            raise ConfigError("train.model: required key is missing (the base model)")


def check_name(key: str, name: str) -> None:
    if not NAME.match(name) or name in RESERVED:
        raise ConfigError(f"{key}: {name!r} is not usable as a folder name (letters, digits, '.', '_', '-'"
                          f"{'; ' + name + ' is reserved' if name in RESERVED else ''})")


# -- loading ---------------------------------------------------------------------------------------------


def load_pipeline(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> PipelineConfig:
    """Read, check and resolve a pipeline file (see the module docstring); ``overrides`` are ``key=value``."""
    path = Path(path)
    return from_read(config.read_with_overrides(path, overrides), base=path.parent)


def from_read(read: config.Read, *, base: Path | None = None) -> PipelineConfig:
    """Build, check and resolve a :class:`PipelineConfig` from a config as read (overrides applied)."""
    base = base if base is not None else Path.cwd()
    data = read.data
    if isinstance(data.get("train"), Mapping) and "recipe" in data["train"]:
        data["train"] = with_recipe(data["train"], base, read.origin)
    cfg = read.build(PipelineConfig)
    check_train(cfg, read)
    check_eval(cfg, origin=read.origin)
    check_backend_options(cfg, read)
    return resolve_paths(cfg, base)


OWNED = ("train_files", "output_dir", "resume")  # train fields the pipeline sets itself


def with_recipe(train: Mapping[str, Any], base: Path, origin: str) -> dict[str, Any]:
    """``train.recipe`` (a training config file, or the name of a shipped recipe: ``tulu-v1``) as the
    defaults of the ``train`` section: the recipe's fields (but train_files, output_dir, resume), then the
    section's own on top. The resolved config holds the merged fields, so it stands on its own."""
    from camels.train.config import RECIPE_DIR, recipe_path

    name = train["recipe"]
    if not isinstance(name, str):
        raise ConfigError(f"{origin}: train.recipe: expected a recipe name or a YAML path, got {name!r}")
    path = base / name if (base / name).is_file() else Path(recipe_path(name))
    if not path.is_file():
        shipped = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
        raise ConfigError(f"{origin}: train.recipe: {name!r} is neither a file nor a shipped recipe "
                          f"(shipped: {', '.join(shipped)})")
    recipe = {k: v for k, v in config.read_with_overrides(path).data.items() if k not in OWNED}
    return {**recipe, **{k: v for k, v in train.items() if k != "recipe"}}


def check_train(cfg: PipelineConfig, read: config.Read) -> None:
    """Check the ``train`` section with :class:`TrainConfig` itself (train_files/output_dir stand-ins);
    ``read`` is the pipeline as read (where each key came from)."""
    from camels.train.config import TrainConfig

    origin = read.origin
    train = replace(read.section("train"), data={**cfg.train, "train_files": ["<data stage output>"],
                                                 "output_dir": "<train>"})
    try:
        train.build(TrainConfig)
    except ConfigError as e:
        # name the key as the pipeline file spells it: train.<key>
        text = re.sub(rf"^((?:{re.escape(origin)}(?::\d+)?|{config.OVERRIDE}): )?",
                      lambda m: (m.group(1) or "") + "train.", str(e), count=1)
        raise ConfigError(text) from None


def eval_plan(cfg: PipelineConfig, suite: Any = None) -> Any:
    """The evaluation plan of ``cfg`` (:func:`camels.evals.suite.plan`: tasks built, options checked);
    ``suite``: ``cfg.eval.suite`` already loaded (:func:`camels.evals.suite.load_suite`)."""
    from camels.evals.suite import plan

    ev = cfg.eval
    if ev.suite is not None:
        return plan(suite=suite if suite is not None else ev.suite, options=ev.options, data=ev.data,
                    task_data=ev.task_data)
    return plan(tasks=ev.tasks, options=ev.options, data=ev.data, task_data=ev.task_data)


def check_eval(cfg: PipelineConfig, *, origin: str) -> None:
    """Check the tasks and their options now (a typo in a task option stops the run before the data stage)."""
    try:
        eval_plan(cfg)
    except ConfigError as e:
        raise ConfigError(f"{origin}: eval: {e}") from None


def check_backend_options(cfg: PipelineConfig, read: config.Read) -> None:
    """Check ``eval.backend_options`` against the options the backend takes, when the config is read (an
    unknown option or a wrong type would otherwise surface only at the eval stage, after the training)."""
    cfg.eval.backend_options = coerce_backend_options(cfg.eval.backend, cfg.eval.backend_options,
                                                      label=lambda k: f"eval.backend_options.{k}",
                                                      where=read.where)


def _rel(base: Path, p: str) -> str:
    if p.startswith("hf:"):
        return p
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else base / q)


def _rel_if_exists(base: Path, p: str | None) -> str | None:
    if p is None or p.startswith("hf:"):
        return p
    q = Path(p).expanduser()
    if q.is_absolute():
        return str(q)
    return str(base / q) if (base / q).exists() else p


def resolve_paths(cfg: PipelineConfig, base: Path) -> PipelineConfig:
    """Relative paths of ``cfg`` made absolute against ``base`` (the rules of the module docstring)."""
    base = base.resolve()
    cfg.output = _rel(base, cfg.output)
    for s in cfg.data.sources.values():
        s.files = [_rel(base, f) for f in s.files]
        s.tokenizer = _rel_if_exists(base, s.tokenizer)
    if isinstance(cfg.data.mixture, str):
        m = cfg.data.mixture
        cfg.data.mixture = _rel(base, m) if m.endswith((".yaml", ".yml")) else m
    if cfg.data.decontaminate is not None:
        cfg.data.decontaminate.benchmarks = {k: _rel(base, v) for k, v in cfg.data.decontaminate.benchmarks.items()}
    for key in ("model", "tokenizer", "token_cache"):
        if isinstance(cfg.train.get(key), str):
            cfg.train[key] = _rel_if_exists(base, cfg.train[key]) if key != "token_cache" \
                else _rel(base, cfg.train[key])
    cfg.eval.data = _rel_if_exists(base, cfg.eval.data)
    cfg.eval.task_data = {k: _rel_if_exists(base, v) or v for k, v in cfg.eval.task_data.items()}
    if cfg.eval.suite is not None and cfg.eval.suite.endswith((".yaml", ".yml")):
        cfg.eval.suite = _rel(base, cfg.eval.suite)
    cfg.report.reference = _rel_if_exists(base, cfg.report.reference)
    return cfg


# -- docs ------------------------------------------------------------------------------------------------


def _table(rows: list[tuple[str, str, Any, str]]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, help_ in rows:
        d = default if isinstance(default, str) and default == "(required)" else f"`{default!r}`"
        lines.append(f"| `{key}` | {tp.replace('|', '&#124;')} | {d} | {help_} |")
    return "\n".join(lines)


def markdown_reference() -> str:
    """The config reference tables of ``docs/pipeline.md`` (from the fields' help texts)."""
    rows = []
    nested = {"data.sources": (SourceInput, "data.sources.<name>."),
              "data.mixture": (MixtureSection, "data.mixture."),
              "data.decontaminate": (DecontamSection, "data.decontaminate.")}
    for row in config.field_help(PipelineConfig):
        rows.append(row)
        if row[0] in nested:
            cls, prefix = nested[row[0]]
            for sub in config.field_help(cls, prefix):
                rows.append(sub)
                if sub[0] == "data.mixture.sources":
                    rows.extend(config.field_help(MixSource, "data.mixture.sources.<name>."))
    return _table(rows)
