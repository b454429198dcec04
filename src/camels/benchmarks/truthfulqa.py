"""TruthfulQA files: ``mc_task.json`` (the multiple-choice file evaluation reads) and ``TruthfulQA.csv``.

Ids: ``mc_task:<i>`` (the i-th question of the JSON list); ``TruthfulQA:<0-based data row>`` for the CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import read_json, read_text

MC_FILE = "mc_task.json"


def read_mc(path: Path) -> list[Any]:
    """The raw question objects of ``mc_task.json`` (checked by the task that uses them)."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise RecordError("bad_file", "expected a JSON list of questions", file=str(path))
    return rows


def mc_prefix(path: Path) -> str:
    """``mc_task.json`` -> ``mc_task`` (the prefix of the ids)."""
    return Path(path).name.split(".")[0]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of ``TruthfulQA.csv`` (``Type, Category, Question, Best Answer, ...``)."""
    reader = csv.DictReader(io.StringIO(read_text(path)))
    if not reader.fieldnames or "Question" not in reader.fieldnames:
        raise RecordError("missing_field", "no Question column", file=str(path), field="Question")
    return list(reader)
