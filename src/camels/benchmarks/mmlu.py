"""MMLU CSV files, in the two published layouts.

The Hugging Face export has a header ``question,choice0,choice1,choice2,choice3,answer`` and answers 0-3; the
original release has no header and answer letters A-D. Files are ``<subject>_<split>.csv`` anywhere below
a folder (``test``, ``dev``, ``val``). Rows: ``{"question", "choices" (4), "answer" (0-3)}``; the id of a
row is ``<subject>_<split>:<0-based data row>`` (the header line is not a row).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError, RecordError
from camels.core.io import open_text

LETTERS = ("A", "B", "C", "D")
HF_HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
SPLITS = ("test", "dev", "val")


def parse_answer(raw: str) -> int:
    """``"B"`` or ``"1"`` -> 1."""
    raw = raw.strip()
    if raw in LETTERS:
        return LETTERS.index(raw)
    if raw in ("0", "1", "2", "3"):
        return int(raw)
    raise ValueError(f"answer must be A-D or 0-3, got {raw!r}")


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of one MMLU CSV in either layout -> ``{"question", "choices", "answer" (0-3)}``; a bad row is a
    :class:`RecordError` naming file and line."""
    rows = []
    with open_text(path) as f:  # a byte-order mark dropped; csv reads CRLF rows itself
        reader = csv.reader(f)
        first = True
        for raw in reader:
            if first:
                first = False
                if [c.strip().lower() for c in raw] == HF_HEADER:
                    continue
            line = reader.line_num
            if len(raw) != 6:
                raise RecordError("bad_row", f"expected 6 columns (question, 4 choices, answer), got {len(raw)}",
                                  file=str(path), line=line)
            try:
                answer = parse_answer(raw[5])
            except ValueError as e:
                raise RecordError("bad_answer", str(e), field="answer", file=str(path), line=line) from None
            rows.append({"question": raw[0], "choices": raw[1:5], "answer": answer})
    return rows


def find_files(root: Path, split: str) -> dict[str, Path]:
    """``subject -> <subject>_<split>.csv`` for every such file below ``root`` (or ``root`` itself)."""
    suffix = f"_{split}.csv"
    candidates = [root] if root.is_file() else sorted(root.rglob(f"*{suffix}"))
    found: dict[str, Path] = {}
    for p in candidates:
        if not p.name.endswith(suffix):
            continue
        subject = p.name[: -len(suffix)]
        if subject in found:
            raise ConfigError(f"two files for MMLU subject {subject!r}: {found[subject]} and {p}")
        found[subject] = p
    return found


def item_id(subject: str, split: str, row: int) -> str:
    """>>> item_id("abstract_algebra", "test", 0)
    'abstract_algebra_test:0'
    """
    return f"{subject}_{split}:{row}"
