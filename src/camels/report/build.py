"""``build_report``: run folders in, ``report.txt``/``.md``/``.csv``/``.html`` out (``camels report``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from camels.core.errors import ConfigError
from camels.core.io import atomic_write
from camels.report.columns import BY_KEY
from camels.report.load import (
    Cell,
    ModelRuns,
    model_folders,
    read_human,
    read_losses,
    read_model,
    read_reference,
)
from camels.report.stats import wilson_ci
from camels.report.table import Table, build_table, to_csv, to_markdown, to_text


@dataclass(frozen=True)
class ReportOutputs:
    """Where the report landed, the computed table, and the terminal table as written to ``text``
    (``rendered_text``: what ``camels report`` prints, without reading the file back)."""

    markdown: Path
    csv: Path
    html: Path
    text: Path
    table: Table
    rendered_text: str


def _add_human(rows: list[ModelRuns], human: Mapping[str, tuple[int, int]], notes: list[str]) -> None:
    col = BY_KEY["human_acceptance"]
    by_label = {r.label: r for r in rows}
    for model in sorted(human):
        count, n = human[model]
        row = by_label.get(model)
        if row is None:
            notes.append(f"human acceptance of {model!r} ({count}/{n}) matches no row (rows are named "
                         f"{', '.join(by_label)})")
            continue
        if n == 0:
            continue
        lo, hi = wilson_ci(count, n)
        row.cells[col.key] = Cell(100.0 * count / n, n=n, ci=(100.0 * lo, 100.0 * hi), source="human")


def load_rows(runs: list[str | Path] | str | Path, names: Mapping[str, str] | None = None,
              notes: list[str] | None = None, *, lenient: bool = False) -> dict[Path, ModelRuns]:
    """The rows of the given model folders / runs roots (see :func:`camels.report.load.model_folders`), by
    resolved model folder in the order given, each named after its folder or ``names[path]`` (a path as
    given, or the folder's name). ``lenient``: see :func:`camels.report.load.read_model`."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    names = dict(names or {})
    resolved = {str(Path(k).resolve()): v for k, v in names.items()}
    rows: dict[Path, ModelRuns] = {}
    for folder in model_folders(list(runs), notes):
        key = folder.resolve()
        if key not in rows:
            rows[key] = read_model(folder, resolved.get(str(key)) or names.get(folder.name) or folder.name,
                                   lenient=lenient)
    return rows


def build_report(runs: list[str | Path] | str | Path, out_dir: str | Path, *, names: dict[str, str] | None = None,
                 reference: str | Path | None = None, baseline: str | None = None,
                 training_runs: dict[str, str | Path] | None = None, human: str | Path | None = None,
                 title: str = "camels report", seed: int = 0, n_boot: int = 1000,
                 lenient: bool = False) -> ReportOutputs:
    """Read the runs, compute the table and write ``report.txt``, ``report.md``, ``report.csv`` and
    ``report.html`` into ``out_dir`` (atomically; identical inputs give identical bytes).

    ``runs``: model folders (``<output>/<model-slug>/``) or folders holding them; each model folder is a
    row. ``reference``: a model folder, a reference YAML (``file.yaml[:NAME]``) or a shipped reference
    name (``tulu-7b``). ``baseline``: a row label to test every other row against. ``training_runs``: row
    label -> training output folder, for loss curves. ``human``: an annotate export ``results.json``.
    A run whose ``predictions.jsonl`` is truncated or has a bad line stops the report with an error naming
    the file and line; ``lenient`` shows its cell as missing instead and says why in the notes.
    """
    if n_boot < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot}")
    extra_notes: list[str] = []
    by_folder = load_rows(runs, names, extra_notes, lenient=lenient)
    rows = list(by_folder.values())
    if not rows:
        raise ConfigError("no model folder to report on")
    ref = read_reference(reference, by_folder, lenient=lenient) if reference is not None else None
    extra_ref = ref is not None and all(r is not ref for r in rows)  # a reference that is not also a row
    if extra_ref and ref.label in {r.label for r in rows}:
        raise ConfigError(f"the reference and a row are both named {ref.label!r} but hold other numbers: rename "
                          "the row (--name DIR=LABEL)")
    if human is not None:
        _add_human(rows + ([ref] if extra_ref else []), read_human(human), extra_notes)
    table = build_table(rows, title=title, reference=ref, baseline=baseline, n_boot=n_boot, seed=seed)
    table.notes.extend(extra_notes)
    losses = {}
    for label in sorted(training_runs or {}):
        losses[label] = read_losses((training_runs or {})[label])
    from camels.report.html import to_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"text": out / "report.txt", "markdown": out / "report.md", "csv": out / "report.csv",
             "html": out / "report.html"}
    contents = {"text": to_text(table), "markdown": to_markdown(table), "csv": to_csv(table),
                "html": to_html(table, losses)}
    for key, path in paths.items():
        with atomic_write(path) as f:
            f.write(contents[key])
    return ReportOutputs(markdown=paths["markdown"], csv=paths["csv"], html=paths["html"], text=paths["text"],
                         table=table, rendered_text=contents["text"])
