"""Reading what the report shows: run folders, reference numbers, human acceptance, training losses.

Files only: ``metrics.json``, ``manifest.json`` and ``predictions.jsonl`` of each run folder (their schema
is :mod:`camels.core.results`, their places :mod:`camels.core.layout`), a YAML of published numbers, an
annotate export's ``results.json`` and a training run's ``metrics.jsonl``. Nothing here loads a model or
a task. Everything not used is said in :attr:`ModelRuns.notes`, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.config import read_yaml
from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_jsonl, read_json
from camels.core.results import MANIFEST_FILE, METRICS_FILE, PREDICTIONS_FILE, RunManifest, TaskResult
from camels.core.stats import pass_at_k
from camels.report.columns import BY_KEY, Column, match, other_column

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "configs" / "reference"
#: Run folder names that fill a column when a run has no manifest to say its task and options.
ALIASES = {"humaneval_pass1": "codex_eval_pass1", "humaneval_pass10": "codex_eval_pass10"}


@dataclass
class Cell:
    """One model's figure in one column, in the column's display scale (percent for known columns).

    ``items`` maps item id -> per-item score (same scale) and ``groups`` item id -> group for a
    macro-averaged column; both empty when the run has no usable per-item scores (no interval then).
    ``ci`` is filled by the table; ``n`` counts the items behind the value; ``source`` the run folder."""

    value: float | None
    n: int | None = None
    items: dict[str, float] = field(default_factory=dict)
    groups: dict[str, str] | None = None
    ci: tuple[float, float] | None = None
    source: str = ""


@dataclass
class ModelRuns:
    """One row: a label, its cells by column key, the columns of its "Other" runs, and notes."""

    label: str
    cells: dict[str, Cell] = field(default_factory=dict)
    others: dict[str, Column] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    published: bool = False


def _is_run(path: Path) -> bool:
    return (path / METRICS_FILE).is_file()


def _is_model(path: Path) -> bool:
    return path.is_dir() and any(_is_run(p) for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def model_folders(paths: list[str | Path], notes: list[str] | None = None) -> list[Path]:
    """Expand the inputs into model folders, in the order given: a model folder (holding run folders)
    stays; a runs root (holding model folders) gives its model folders sorted by name (its other folders
    are named in ``notes``); a run folder gives its model folder. Anything else is an error naming the
    path."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            raise ConfigError(f"{p}: no such folder (give model folders of runs, or a folder holding them)")
        if _is_run(p):
            found = [p.parent]
        elif _is_model(p):
            found = [p]
        else:
            subs = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
            found = [c for c in subs if _is_model(c)]
            if notes is not None:
                notes.extend(f"{c.name}: no finished run folder inside; not shown" for c in subs if c not in found)
            if not found:
                raise ConfigError(f"{p}: holds no run folder (a folder with {METRICS_FILE}) nor model folders "
                                  "of them")
        for f in found:
            if f not in out:
                out.append(f)
    return out


def _group_of(where: str, pred: Mapping[str, Any]) -> str | None:
    part, _, key = where.partition(".")
    src = pred.get(part) or {}
    value = src.get(key) if isinstance(src, Mapping) else None
    return None if value is None else str(value)


def _item_score(col: Column, scores: Mapping[str, Any], file: str, line: int) -> float | None:
    """The per-item score a column averages, in the task's own per-item scale (fractions), or None for an
    item the metric leaves out (an unparsed judge verdict)."""
    if col.task == "alpaca_eval" and col.metric == "win_rate":
        pref = scores.get("preference")
        if pref is None:
            return None
        pref = float(pref)
        if pref == 0:  # alpaca_eval's legacy tie
            pref = 1.5
        return pref - 1.0
    key = col.item_key
    if key is not None and key in scores and scores[key] is not None:
        value = scores[key]
    elif key is not None and key.startswith("pass@") and "n" in scores and "correct" in scores:
        value = pass_at_k(int(scores["n"]), int(scores["correct"]), int(key[5:]))
    else:
        raise RecordError("missing_field", f"no per-item score {key!r} for column {col.header}",
                          field=f"scores.{key}", file=file, line=line)
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError("bad_value", f"per-item score {key!r} is not a finite number: {value!r}",
                          field=f"scores.{key}", file=file, line=line)
    return float(value)


#: Errors that say the file itself cannot be read (rather than that its items lack a per-item score).
UNREADABLE = ("bad_json", "bad_utf8", "too_deep", "truncated")
TRUNCATED = "the file looks truncated (a run or a copy stopped midway)"
#: What the error of a truncated file advises (left out of the note when ``lenient`` shows the cell missing).
ADVICE = "; run or copy it again, or give --lenient to show the cell as missing"


def _records(path: Path, scored: int | None) -> Iterator[tuple[int, Any]]:
    """:func:`iter_jsonl` of a predictions file that refuses a truncated one: a last line cut off (no
    newline at its end and not readable as JSON) or, when ``metrics.json`` counts ``scored`` items, fewer
    records than that (a cut at a line's end). Both are a ``truncated`` :class:`RecordError` naming the
    file and the line where it stops."""
    count = last = 0
    try:
        for last, obj in iter_jsonl(path):
            count += 1
            yield last, obj
    except RecordError as e:
        if e.reason in ("bad_json", "bad_utf8") and e.line is not None and _is_cut_line(path, e.line):
            raise RecordError("truncated", f"the last line is cut off ({e.detail}, no newline at its end): "
                              f"{TRUNCATED}{ADVICE}", file=str(path), line=e.line) from None
        raise
    if scored is not None and count < scored:
        raise RecordError("truncated", f"the file ends after {count} records but metrics.json counts {scored} "
                          f"scored items: {TRUNCATED}{ADVICE}", file=str(path), line=last + 1)


def _is_cut_line(path: Path, line: int) -> bool:
    """Whether ``line`` is the file's last line and has no newline at its end."""
    with open(path, "rb") as f:
        data = f.read()
    return not data.endswith(b"\n") and data.count(b"\n") + 1 == line


def read_items(run: Path, col: Column, scored: int | None = None) -> tuple[dict[str, float], dict[str, str] | None, int]:
    """Per-item scores (item id -> score x 100 for fractions) and groups of a run's predictions; the
    count of items the metric leaves out is returned third. ``scored``: the items ``metrics.json``
    counts, to tell a file cut at a line's end (see :func:`_records`)."""
    path = run / PREDICTIONS_FILE
    items: dict[str, float] = {}
    groups: dict[str, str] | None = {} if col.group_by else None
    left_out = 0
    factor = 100.0 if col.known_scale else 1.0  # per-item scores are fractions for every known column
    for line, obj in _records(path, scored):
        if not isinstance(obj, dict) or "id" not in obj:
            raise RecordError("missing_field", "missing field 'id'", field="id", file=str(path), line=line)
        scores = obj.get("scores") or {}
        value = _item_score(col, scores, str(path), line)
        if value is None:
            left_out += 1
            continue
        item_id = str(obj["id"])
        if item_id in items:
            raise RecordError("duplicate_id", f"item id {item_id!r} appears twice", field="id", file=str(path),
                              line=line)
        items[item_id] = value * factor
        if groups is not None:
            g = _group_of(col.group_by or "", obj)
            if g is None:
                raise RecordError("missing_field", f"no {col.group_by} to group the macro-average by",
                                  field=col.group_by, file=str(path), line=line)
            groups[item_id] = g
    return items, groups, left_out


def read_model(folder: Path, label: str, *, lenient: bool = False) -> ModelRuns:
    """Every finished run folder of one model folder, each into its column. A run whose
    ``predictions.jsonl`` cannot be read (cut off, a malformed line, a missing per-item score) stops the
    report with an error naming the file and line; with ``lenient`` its cell is shown as missing and the
    error goes to the notes."""
    row = ModelRuns(label=label)
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        if run.name.startswith("."):
            if ".partial-" in run.name:
                row.notes.append(f"{label}: unfinished run folder {run.name} not shown")
            continue
        if not _is_run(run):
            row.notes.append(f"{label}: {run.name} has no {METRICS_FILE}; not shown")
            continue
        result = TaskResult.read(run / METRICS_FILE)
        manifest_path = run / MANIFEST_FILE
        if manifest_path.is_file():
            task = RunManifest.read(manifest_path).task
        else:
            task = {"name": result.task, "task": result.task, "config": {}}
        col = match(task)
        if col is None and not manifest_path.is_file():
            col = BY_KEY.get(ALIASES.get(run.name, run.name))
            if col is not None and col.metric != result.primary_metric:
                col = None
        if col is not None and col.key in row.cells:
            row.notes.append(f"{label}: {run.name} is a second run for {col.header} (first: "
                             f"{row.cells[col.key].source}); shown under Other")
            col = None
        if col is None:
            col = other_column(run.name, task, result.primary_metric)
            row.others[col.key] = col
        row.cells[col.key] = _cell(run, col, result, row, lenient)
    return row


def _cell(run: Path, col: Column, result: TaskResult, row: ModelRuns, lenient: bool = False) -> Cell:
    raw = result.metrics.get(col.metric)
    if raw is None or isinstance(raw, bool) or not isinstance(raw, (int, float)):
        row.notes.append(f"{row.label}: {run.name}/{METRICS_FILE} has no number {col.metric!r}; shown as missing")
        return Cell(None, source=run.name)
    factor = col.scale if col.scale is not None else 1.0
    cell = Cell(float(raw) * factor, source=run.name)
    if not (run / PREDICTIONS_FILE).is_file():
        row.notes.append(f"{row.label}: {run.name} has no {PREDICTIONS_FILE}; no interval")
        return cell
    scored = result.counts.get("scored")
    scored = scored if isinstance(scored, int) and not isinstance(scored, bool) else None
    try:
        if col.scale is None:
            items, groups, left = _try_items(run, col, scored, row)
        else:
            items, groups, left = read_items(run, col, scored)
    except RecordError as e:
        if not lenient:
            raise
        where = RecordError(e.reason, e.detail.removesuffix(ADVICE), field=e.field,
                            file=f"{run.name}/{PREDICTIONS_FILE}", line=e.line)
        row.notes.append(f"{row.label}: {where}; shown as missing (lenient)")
        return Cell(None, source=run.name)
    if left:
        row.notes.append(f"{row.label}: {run.name}: {left} item(s) without a parsed verdict left out, as the "
                         "metric leaves them out")
    cell.items, cell.groups, cell.n = items, groups, len(items) or result.metrics.get("n")
    return cell


def _try_items(run: Path, col: Column, scored: int | None, row: ModelRuns
               ) -> tuple[dict[str, float], dict[str, str] | None, int]:
    """Per-item scores of an unknown task: its primary metric's key when every item has it as a number
    (else no interval, said in the notes). A file that cannot be read is an error as for any column."""
    try:
        return read_items(run, col, scored)
    except RecordError as e:
        if e.reason in UNREADABLE:
            raise
        row.notes.append(f"{row.label}: {run.name}: no interval ({PREDICTIONS_FILE} line {e.line}: {e.detail})")
        return {}, None, 0


# --- reference numbers ------------------------------------------------------------------------------------
def read_reference_yaml(path: Path, name: str | None = None) -> ModelRuns:
    """One model's published numbers from a reference YAML (see ``configs/reference/``): ``scale``
    (``percent`` or ``fraction``) and ``models: {name: {label, scores: {column key: number}}}``; ``name``
    picks the model when the file has several."""
    data, lines = read_yaml(path)
    return _reference_of(data, lines, path, name)


def _reference_of(data: Any, lines: Mapping[str, int], path: Path, name: str | None) -> ModelRuns:
    """The reference row of a parsed reference YAML (``data`` and its key -> line map, read from ``path``)."""
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
        raise ConfigError(f"{where}: a reference file needs a 'models' mapping of model name -> scores")
    scale = data.get("scale", "percent")
    if scale not in ("percent", "fraction"):
        raise ConfigError(f"{where}:{lines.get('scale', 1)}: scale: expected percent or fraction, got {scale!r}")
    factor = 100.0 if scale == "fraction" else 1.0
    models = data["models"]
    if name is None:
        if len(models) != 1:
            raise ConfigError(f"{where}: holds {len(models)} models ({', '.join(models)}); pick one with "
                              f"{path.name}:NAME")
        name = next(iter(models))
    if name not in models:
        raise ConfigError(f"{where}: no model {name!r} (has {', '.join(models)})")
    entry = models[name] or {}
    scores = entry.get("scores") if isinstance(entry, dict) else None
    if not isinstance(scores, dict):
        raise ConfigError(f"{where}:{lines.get(f'models.{name}', 1)}: models.{name}.scores: expected a mapping")
    row = ModelRuns(label=str(entry.get("label", name)), published=True)
    for key, value in scores.items():
        line = lines.get(f"models.{name}.scores.{key}", 1)
        if key not in BY_KEY:
            raise ConfigError(f"{where}:{line}: models.{name}.scores.{key}: unknown column (known: "
                              f"{', '.join(BY_KEY)})")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}:{line}: models.{name}.scores.{key}: expected a number, got {value!r}")
        row.cells[key] = Cell(float(value) * factor, source=f"{path.name}:{name}")
    return row


def _shipped() -> dict[str, tuple[Path, Any, Mapping[str, int]]]:
    """model name -> (shipped reference YAML holding it, its parsed data, its line map); each file read once."""
    out: dict[str, tuple[Path, Any, Mapping[str, int]]] = {}
    for path in sorted(REFERENCE_DIR.glob("*.yaml")):
        data, lines = read_yaml(path)
        for name in (data or {}).get("models", {}) or {}:
            out.setdefault(str(name), (path, data, lines))
    return out


def shipped_references() -> dict[str, Path]:
    """model name -> shipped reference YAML holding it (``configs/reference/*.yaml``)."""
    return {name: path for name, (path, _, _) in _shipped().items()}


def read_reference(spec: str | Path, rows: Mapping[Path, ModelRuns] | None = None, *,
                   lenient: bool = False) -> ModelRuns:
    """A reference row from a model folder, a YAML file (``file.yaml`` or ``file.yaml:NAME``), or the name
    of a model in a shipped reference file (``tulu-7b``). ``rows``: rows already read, by resolved model
    folder; a reference folder among them is that row (not read again). ``lenient``: as for
    :func:`read_model`."""
    text = str(spec)
    p = Path(text)
    if p.is_dir():
        folders = model_folders([p])
        if len(folders) != 1:
            raise ConfigError(f"{p}: a reference must be one model folder, found {len(folders)}")
        known = (rows or {}).get(folders[0].resolve())
        return known if known is not None else read_model(folders[0], folders[0].name, lenient=lenient)
    if p.is_file():
        return read_reference_yaml(p)
    head, sep, name = text.rpartition(":")
    if sep and Path(head).is_file():
        return read_reference_yaml(Path(head), name)
    shipped = _shipped()
    if text in shipped:
        path, data, lines = shipped[text]
        return _reference_of(data, lines, path, text)
    raise ConfigError(f"reference {text!r}: no such folder or file, and no shipped reference model of that name "
                      f"(shipped: {', '.join(shipped) or 'none'})")


# --- human acceptance -------------------------------------------------------------------------------------
def read_human(path: str | Path) -> dict[str, tuple[int, int]]:
    """model name -> (acceptable, judged) pooled over the studies of an annotate ``results.json``
    (``kind: camels.human_pairwise``: each study's ``model_a``/``model_b`` and ``acceptance.a``/``.b`` with
    ``count`` and ``n``)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or data.get("kind") != "camels.human_pairwise":
        raise RecordError("bad_kind", "not an annotate export (kind camels.human_pairwise)", field="kind",
                          file=str(path))
    out: dict[str, tuple[int, int]] = {}
    for i, study in enumerate(data.get("studies") or []):
        for side in ("a", "b"):
            where = f"studies[{i}].acceptance.{side}"
            try:
                model = str(study[f"model_{side}"])
                acc = study["acceptance"][side]
                count, n = int(acc["count"]), int(acc["n"])
            except (KeyError, TypeError, ValueError):
                raise RecordError("missing_field", "needs model_a/model_b and acceptance.a/.b with count and n",
                                  field=where, file=str(path)) from None
            c0, n0 = out.get(model, (0, 0))
            out[model] = (c0 + count, n0 + n)
    return out


# --- training losses --------------------------------------------------------------------------------------
def read_losses(output_dir: str | Path) -> list[tuple[int, float]]:
    """(step, loss) of a training run's ``metrics.jsonl`` (see :mod:`camels.train.metrics`), by step; a step
    logged twice (a resumed run logs again from its checkpoint) keeps its last line."""
    path = Path(output_dir)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no training metrics (metrics.jsonl) there")
    by_step: dict[int, float] = {}
    for line, obj in iter_jsonl(path):
        try:
            step, loss = int(obj["step"]), float(obj["loss"])
        except (KeyError, TypeError, ValueError):
            raise RecordError("missing_field", "needs a numeric 'step' and 'loss'", field="loss", file=str(path),
                              line=line) from None
        if math.isfinite(loss):
            by_step[step] = loss
    return sorted(by_step.items())
