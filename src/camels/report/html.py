"""The self-contained HTML page of a report: the table with its intervals, the plots, the paired tests and
the notes. No script, no network: styles are inline and every plot is an SVG drawn by
:mod:`camels.report.svg`, embedded as a ``data:`` image."""

from __future__ import annotations

import html as _html

from camels.report.columns import OTHER
from camels.report.svg import GREY, bar_chart, colour, data_uri, line_chart, radar_chart
from camels.report.table import (
    MISSING,
    PAIRED_HEADERS,
    Table,
    body,
    fmt_ci,
    headers,
    intervals,
    legend,
    paired_rows,
)

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;background:#fff;max-width:1500px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 10px}
table{border-collapse:collapse;font-size:12px;margin-bottom:8px}
th,td{border:1px solid #d0d0d0;padding:3px 5px;text-align:right;vertical-align:top}
td{white-space:nowrap}
th{background:#f2f4f7}th.skill{background:#e4e9f0;text-align:center}
td.model,th.model{text-align:left;white-space:nowrap}
tr.published td{font-style:italic;background:#fafafa}
.ci{display:block;color:#777;font-size:11px;white-space:nowrap}
.missing{color:#aaa}.plots img{margin:0 18px 18px 0;vertical-align:top;border:1px solid #eee}
p.note{font-size:13px;margin:4px 0}ul.notes{font-size:13px}
"""


def esc(text: str) -> str:
    return _html.escape(text, quote=True)


def _img(svg: str, alt: str) -> str:
    return f'<img src="{data_uri(svg)}" alt="{esc(alt)}">'


def results_table(table: Table) -> str:
    """The results table: the same header and row strings as the text and Markdown tables
    (:func:`camels.report.table.headers`, :func:`~camels.report.table.body`), skills spanning their
    columns, each cell with its interval below it."""
    head, n = headers(table), len(table.columns)
    out = ["<table>", f'<tr><th class="model" rowspan="2">{esc(head[0])}</th>']
    for skill, cols in table.groups():
        out.append(f'<th class="skill" colspan="{len(cols)}">{esc(skill)}</th>')
    out += [f'<th rowspan="2">{esc(text)}</th>' for text in head[1 + n:]]
    out.append("</tr><tr>" + "".join(f"<th>{esc(text)}</th>" for text in head[1:1 + n]) + "</tr>")
    for row, texts in zip(table.rows, body(table)):
        cls = ' class="published"' if row.published else ""
        cells = [f'<td class="model">{esc(texts[0])}</td>']
        for text, ci in zip(texts[1:1 + n], intervals(table, row)):
            if text == MISSING:
                cells.append(f'<td class="missing">{MISSING}</td>')
                continue
            span = f'<span class="ci">{esc(fmt_ci(ci))}</span>' if ci else ""
            cells.append(f"<td>{esc(text)}{span}</td>")
        cells += [f"<td>{esc(text)}</td>" for text in texts[1 + n:]]
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def skill_plots(table: Table) -> list[str]:
    """One bar chart per skill (columns of a known scale), bars per model with their intervals."""
    out = []
    series = [r.label for r in table.rows]
    colours = [GREY if r.label == table.reference else colour(i) for i, r in enumerate(table.rows)]
    for skill, cols in table.groups():
        cols = [c for c in cols if c.known_scale]
        if not cols:
            continue
        values = [[r.cells[c.key].value if c.key in r.cells else None for c in cols] for r in table.rows]
        cis = [[r.cells[c.key].ci if c.key in r.cells else None for c in cols] for r in table.rows]
        headers = [c.header for c in cols]
        out.append(_img(bar_chart(skill, headers, series, values, cis, colours=colours), f"{skill}: bars per model"))
    return out


def radar_plots(table: Table) -> list[str]:
    """A radar chart per model over the columns of a known scale (ToxiGen as 100 - toxic, so that outward is
    better everywhere), with the reference's polygon dashed when there is one."""
    cols = [c for c in table.columns if c.known_scale and c.skill != OTHER]
    if len(cols) < 3:
        return []
    axes = [("ToxiGen (100 - toxic)" if c.lower_is_better else c.header) for c in cols]

    def values(row):
        out = []
        for c in cols:
            cell = row.cells.get(c.key)
            v = None if cell is None or cell.value is None else cell.value
            out.append(None if v is None else (100.0 - v if c.lower_is_better else v))
        return out

    ref = next((r for r in table.rows if r.label == table.reference), None)
    out = []
    for i, row in enumerate(table.rows):
        if row is ref:
            continue
        polys = [(row.label, values(row), colour(i), False)]
        if ref is not None:
            polys.append((ref.label, values(ref), GREY, True))
        out.append(_img(radar_chart(row.label, axes, polys), f"radar chart of {row.label}"))
    return out


def to_html(table: Table, losses: dict[str, list[tuple[int, float]]] | None = None) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(table.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{esc(table.title)}</h1>", results_table(table)]
    parts += [f'<p class="note">{esc(line)}</p>' for line in legend(table)]
    bars = skill_plots(table)
    if bars:
        parts += ["<h2>By skill</h2>", '<div class="plots">', *bars, "</div>"]
    radars = radar_plots(table)
    if radars:
        parts += ["<h2>Per model</h2>", '<div class="plots">', *radars, "</div>"]
    if losses:
        chart = line_chart("Training loss", [(label, [(float(s), v) for s, v in pts]) for label, pts in losses.items()])
        parts += ["<h2>Training</h2>", '<div class="plots">', _img(chart, "training loss curves"), "</div>"]
    if table.paired:
        head = "".join(f"<th>{esc(h)}</th>" for h in PAIRED_HEADERS)
        rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in paired_rows(table))
        parts += [f"<h2>Paired tests against {esc(table.baseline or '')}</h2>", f"<table><tr>{head}</tr>{rows}</table>"]
    if table.notes:
        parts += ["<h2>Notes</h2>", '<ul class="notes">'] + [f"<li>{esc(n)}</li>" for n in table.notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
