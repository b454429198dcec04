"""The self-contained HTML page of a report: the table, intervals, tests, notes and plots (SVG, embedded)."""

from __future__ import annotations

import html as _html

from camels.report.table import Table, body, headers, legend


def esc(text: str) -> str:
    return _html.escape(text, quote=True)


def to_html(table: Table, losses: dict[str, list[tuple[int, float]]] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers(table))
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body(table))
    notes = "".join(f"<p>{esc(n)}</p>" for n in legend(table) + table.notes)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(table.title)}</title>"
            f"</head><body><h1>{esc(table.title)}</h1><table><tr>{head}</tr>{rows}</table>{notes}</body></html>\n")
