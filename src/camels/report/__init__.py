"""The study's results table from evaluation run folders: ``camels report`` and :func:`build_report`.

Reads files only (run folders as :mod:`camels.core.results` describes them, reference YAMLs, annotate
exports, training ``metrics.jsonl``) and writes ``report.txt``, ``report.md``, ``report.csv`` and a
self-contained ``report.html``. See docs/report.md for the columns and the statistics.
"""

from camels.report.build import ReportOutputs, build_report

__all__ = ["ReportOutputs", "build_report"]
