"""The results table: models as rows, benchmarks as columns grouped by skill, and what it says in words.

:func:`build_table` computes everything (intervals, averages, share of a reference, paired tests) from the
rows that :mod:`camels.report.load` read; :func:`to_text`, :func:`to_markdown` and :func:`to_csv` print it.
Numbers are percent with one decimal; a missing cell is "—" (empty in CSV), never 0.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from camels.report.columns import COLUMNS, HUMAN, OTHER, SKILLS, Column, short_header
from camels.report.load import ModelRuns
from camels.report.stats import PairedResult, Share, grouped_ci, macro_mean, paired_test, share_of_reference

MISSING = "—"


@dataclass
class Paired:
    row: str
    baseline: str
    column: Column
    result: PairedResult


@dataclass
class Table:
    """The computed report: ``rows`` (each a :class:`ModelRuns` with cells), the ``columns`` shown (in skill
    order), each row's average and share of the reference, paired tests against the baseline, notes."""

    title: str
    rows: list[ModelRuns]
    columns: list[Column]
    averages: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    shares: dict[str, Share] = field(default_factory=dict)
    reference: str | None = None
    baseline: str | None = None
    paired: list[Paired] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_boot: int = 1000
    seed: int = 0

    @property
    def average_columns(self) -> list[Column]:
        return [c for c in self.columns if c.in_average and c.known_scale]

    def groups(self) -> list[tuple[str, list[Column]]]:
        out: list[tuple[str, list[Column]]] = []
        for col in self.columns:
            if out and out[-1][0] == col.skill:
                out[-1][1].append(col)
            else:
                out.append((col.skill, [col]))
        return out


def _shown_columns(rows: list[ModelRuns]) -> list[Column]:
    keys = {k for r in rows for k in r.cells}
    cols = [c for c in COLUMNS if c.key in keys]
    others: dict[str, Column] = {}
    for r in rows:
        for k, c in r.others.items():
            others.setdefault(k, c)
    return cols + [others[k] for k in sorted(others)]


def build_table(rows: list[ModelRuns], *, title: str = "camels report", reference: ModelRuns | None = None,
                baseline: str | None = None, n_boot: int = 1000, seed: int = 0) -> Table:
    """Compute intervals (per cell with per-item scores), averages, shares of ``reference`` and paired
    tests of every row against ``baseline`` (a row label). The reference is shown as a row too (unless it
    already is one)."""
    labels = [r.label for r in rows]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        from camels.core.errors import ConfigError

        raise ConfigError(f"two rows are named {', '.join(map(repr, dup))}: give them names (names= / --name)")
    all_rows = list(rows)
    if reference is not None and reference.label not in labels:
        all_rows.append(reference)
    table = Table(title=title, rows=all_rows, columns=_shown_columns(all_rows), n_boot=n_boot, seed=seed,
                  reference=reference.label if reference is not None else None, baseline=baseline)
    for row in all_rows:
        table.notes.extend(row.notes)
        for col in table.columns:
            cell = row.cells.get(col.key)
            if cell is None or not cell.items:
                continue
            values = list(cell.items.values())
            groups = [cell.groups[i] for i in cell.items] if cell.groups is not None else None
            cell.ci = grouped_ci(values, groups, n_boot=n_boot, seed=seed)
            mean = macro_mean(values, groups)
            if cell.value is not None and not math.isclose(mean, cell.value, rel_tol=1e-6, abs_tol=1e-6):
                table.notes.append(f"{row.label}: {col.header}: the per-item scores average {mean:.4f}, "
                                   f"{cell.source}/metrics.json says {cell.value:.4f}; the interval is of the "
                                   "per-item scores")
    for col in table.columns:
        _note_item_sets(table, col)
    avg_cols = table.average_columns
    for row in all_rows:
        vals = [row.cells[c.key].value for c in avg_cols if c.key in row.cells and row.cells[c.key].value is not None]
        table.averages[row.label] = (math.fsum(vals) / len(vals) if vals else None, len(vals))
    if reference is not None:
        share_cols = [c for c in table.columns if c.known_scale and c.skill != OTHER]
        lower = [c.key for c in share_cols if c.lower_is_better]
        ref_scores = {c.key: reference.cells[c.key].value for c in share_cols if c.key in reference.cells}
        for row in all_rows:
            if row.label == reference.label:
                continue
            scores = {c.key: row.cells[c.key].value for c in share_cols if c.key in row.cells}
            share = share_of_reference(scores, ref_scores, lower)
            table.shares[row.label] = share
            for key in share.skipped:
                table.notes.append(f"{row.label}: share of reference leaves out {key} (reference score at the "
                                   "end of the scale, the ratio is undefined)")
    if baseline is not None:
        if baseline not in [r.label for r in all_rows]:
            from camels.core.errors import ConfigError

            raise ConfigError(f"baseline {baseline!r} is not a row (rows: {', '.join(r.label for r in all_rows)})")
        base = next(r for r in all_rows if r.label == baseline)
        untested: dict[str, list[str]] = {}
        if base.published:
            table.notes.append(f"no paired tests against {baseline}: published numbers have no per-item scores")
        for row in all_rows:
            if row is base:
                continue
            for col in table.columns:
                a, b = row.cells.get(col.key), base.cells.get(col.key)
                if a is None or b is None or a.value is None or b.value is None:
                    continue
                if not a.items or not b.items:
                    if not row.published and not base.published:
                        untested.setdefault(row.label, []).append(col.header)
                    continue
                groups = {**(b.groups or {}), **(a.groups or {})} if col.group_by else None
                res = paired_test(a.items, b.items, groups, n_boot=n_boot, seed=seed)
                if res is not None:
                    table.paired.append(Paired(row.label, baseline, col, res))
        for label, headers_ in untested.items():
            table.notes.append(f"{label}: no paired test against {baseline} on {', '.join(headers_)} (one of the two "
                               "runs has no per-item scores in predictions.jsonl)")
    return table


def _note_item_sets(table: Table, col: Column) -> None:
    """A note when the rows of ``col`` were scored on different items (their cells are then not comparable
    one to one; the paired tests compare the shared items)."""
    sets = [(r.label, set(r.cells[col.key].items)) for r in table.rows
            if col.key in r.cells and r.cells[col.key].items]
    if len(sets) < 2 or all(ids == sets[0][1] for _, ids in sets[1:]):
        return
    shared = set.intersection(*(ids for _, ids in sets))
    counts = ", ".join(f"{label} {len(ids)}" for label, ids in sets)
    table.notes.append(f"{col.header}: rows scored on different items ({counts}; {len(shared)} shared by all): "
                       "compare them on the shared items (paired tests with --baseline)")


# --- formatting ----------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return MISSING
    out = f"{value:.{digits}f}"
    return "0.0" if out == "-0.0" and digits == 1 else out


def fmt_ci(ci: tuple[float, float] | None) -> str:
    return MISSING if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def fmt_p(p: float) -> str:
    if p < 0.0001:
        return "<0.0001"
    return f"{p:.4f}"


def cell_text(table: Table, row: ModelRuns, col: Column) -> str:
    cell = row.cells.get(col.key)
    if cell is None or cell.value is None:
        return MISSING
    return fmt(cell.value) if col.known_scale else f"{cell.value:.4g}"


def average_text(table: Table, row: ModelRuns) -> str:
    value, k = table.averages.get(row.label, (None, 0))
    n = len(table.average_columns)
    return MISSING if value is None else f"{fmt(value)} ({k}/{n})"


def share_text(table: Table, row: ModelRuns) -> str:
    share = table.shares.get(row.label)
    if share is None or share.mean is None:
        return MISSING
    return f"{fmt(100 * share.mean)}% ({share.n})"


def headers(table: Table, short: bool = False) -> list[str]:
    out = ["model"] + [short_header(c) if short else c.header for c in table.columns]
    if table.average_columns:
        out.append("Average")
    if table.reference is not None:
        out.append(f"% of {table.reference}")
    return out


def body(table: Table) -> list[list[str]]:
    """The table's rows as text, one list per row of :attr:`Table.rows`: the label (``(reference)``
    added), a cell per column, then the average and the share of the reference when the table has them.
    Every format prints these same strings."""
    out = []
    for row in table.rows:
        label = row.label + (" (reference)" if row.label == table.reference else "")
        cells = [label] + [cell_text(table, row, c) for c in table.columns]
        if table.average_columns:
            cells.append(average_text(table, row))
        if table.reference is not None:
            cells.append(MISSING if row.label == table.reference else share_text(table, row))
        out.append(cells)
    return out


def intervals(table: Table, row: ModelRuns) -> list[tuple[float, float] | None]:
    """The 95% interval of each of ``row``'s cells, in column order (None: none)."""
    return [row.cells[c.key].ci if c.key in row.cells else None for c in table.columns]


def interval_rows(table: Table) -> list[list[str]]:
    out = []
    for row in table.rows:
        cis = intervals(table, row)
        if any(ci is not None for ci in cis):
            out.append([row.label] + [fmt_ci(ci) for ci in cis])
    return out


def paired_rows(table: Table) -> list[list[str]]:
    return [[p.row, p.baseline, p.column.header, str(p.result.n), fmt(p.result.difference, 2), fmt_ci(p.result.ci),
             fmt_p(p.result.p_value), p.result.test] for p in table.paired]


PAIRED_HEADERS = ["model", "baseline", "benchmark", "n shared", "difference", "95% CI", "p", "test"]


def legend(table: Table) -> list[str]:
    """The sentences under the table: scales, what the intervals, averages and shares are."""
    tasks = {c.task for c in table.columns}
    within = [text for task, text in (("bbh", "BBH within subtasks"), ("tydiqa", "TydiQA within languages"))
              if task in tasks]
    intervals = f"Intervals: 95% percentile bootstrap of the per-item scores ({table.n_boot} resamples, seed {table.seed})"
    if within:
        intervals += f"; resampled {' and '.join(within)} (macro-averaged metrics)"
    if "humaneval" in tasks:
        intervals += "; Codex-Eval from per-problem pass@k"
    if any(c.skill == HUMAN for c in table.columns):
        intervals += "; human acceptance: Wilson interval"
    out = [f"Scores in percent; {MISSING} = no result (never counted as 0).", intervals + "."]
    if table.average_columns:
        avg = ", ".join(short_header(c) for c in table.average_columns)
        out.append(f"Average: mean of the row's cells among {avg}; (k/N) = cells present of N.")
    if any(c.lower_is_better for c in table.columns):
        out.append("ToxiGen: share of toxic generations, lower is better; not in the average.")
    if any(c.skill == HUMAN for c in table.columns):
        out.append("Human acceptance: share of outputs annotators accepted (annotate export), not in the average.")
    if any(c.skill == OTHER for c in table.columns):
        out.append("Other: runs outside the study's columns (other tasks or options, second runs), not averaged; "
                   "known tasks in percent, unknown ones as the task wrote them.")
    if table.reference is not None:
        out.append(f"% of {table.reference}: per benchmark score / reference score, averaged over the benchmarks "
                   "both have (count in brackets); lower-is-better ToxiGen compares (100 - score) / "
                   "(100 - reference).")
    if table.paired:
        out.append("Paired tests: row minus baseline on the items both have (matched by item id), in percent "
                   "points; paired bootstrap CI; p two-sided, McNemar exact for 0/1 scores, else a sign-flip "
                   "permutation test (exact up to 16 differing items, else 10000 seeded flips).")
    return out


# --- renderers -------------------------------------------------------------------------------------------
def _align(rows: list[list[str]], widths: list[int] | None = None) -> list[str]:
    widths = widths or [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(parts).rstrip())
    return out


def to_text(table: Table) -> str:
    """The terminal table: skill names above their columns, then the figures, intervals and notes."""
    head = headers(table, short=True)
    rows = [head] + body(table)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    line = " " * widths[0]
    pos = 1
    for skill, cols in table.groups():
        last = pos + len(cols) - 1
        span = sum(widths[pos:last + 1]) + 2 * (len(cols) - 1)
        if len(skill) > span:  # widen the group's last column so that its skill name fits
            widths[last] += len(skill) - span
            span = len(skill)
        line += "  " + skill.ljust(span)
        pos = last + 1
    out = [table.title, "", line.rstrip()] + _align(rows, widths)
    ints = interval_rows(table)
    if ints:
        out += ["", "95% intervals"] + _align([["model"] + head[1:1 + len(table.columns)]] + ints)
    if table.paired:
        out += ["", f"Paired tests against {table.baseline}"] + _align([PAIRED_HEADERS] + paired_rows(table))
    out += [""] + legend(table)
    if table.notes:
        out += ["", "Notes:"] + [f"- {n}" for n in table.notes]
    return "\n".join(out) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    sep = ["---"] + ["---:"] * (len(head) - 1)
    return [_md_row(head), "| " + " | ".join(sep) + " |"] + [_md_row(r) for r in rows]


def to_markdown(table: Table) -> str:
    out = [f"# {table.title}", ""]
    out.append("Columns by skill: " + "; ".join(f"{skill}: {', '.join(c.header for c in cols)}"
                                                for skill, cols in table.groups()) + ".")
    out += [""] + _md_table(headers(table), body(table))
    ints = interval_rows(table)
    if ints:
        out += ["", "## 95% intervals", ""] + _md_table(["model"] + [c.header for c in table.columns], ints)
    if table.paired:
        out += ["", f"## Paired tests against {table.baseline}", ""] + _md_table(PAIRED_HEADERS, paired_rows(table))
    out += [""] + legend(table)
    if table.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in table.notes]
    return "\n".join(out) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None else repr(round(value, 6))


def to_csv(table: Table) -> str:
    """One line per model: for each column ``key``, ``key_lo``, ``key_hi`` (95% interval) and ``key_n``
    (items); then ``average``, ``average_n`` and ``share_of_reference`` (percent), ``share_n``. Numbers in
    percent, rounded to 6 decimals; missing = empty."""
    head = ["model", "published"]
    for c in table.columns:
        head += [c.key, f"{c.key}_lo", f"{c.key}_hi", f"{c.key}_n"]
    head += ["average", "average_n", "share_of_reference", "share_n"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in table.rows:
        line = [row.label, "yes" if row.published else "no"]
        for c in table.columns:
            cell = row.cells.get(c.key)
            if cell is None:
                line += ["", "", "", ""]
                continue
            lo, hi = cell.ci if cell.ci is not None else (None, None)
            line += [_num(cell.value), _num(lo), _num(hi), "" if cell.n is None else str(cell.n)]
        avg, k = table.averages.get(row.label, (None, 0))
        share = table.shares.get(row.label)
        line += [_num(avg), str(k),
                 _num(100 * share.mean) if share is not None and share.mean is not None else "", str(share.n) if share is not None else ""]
        w.writerow(line)
    return buf.getvalue()


__all__ = ["Table", "build_table", "to_text", "to_markdown", "to_csv", "legend", "SKILLS"]
