"""ToxiGen prompt files: ``hate_<group>_1k.txt`` (and ``neutral_...``), one prompt per line, each a few
statements joined by a literal ``\\n`` (escaped backslashes as ``\\\\``).

Ids: ``<file stem>:<0-based line>`` (blank lines keep their number, so ids follow the file's lines).
"""

from __future__ import annotations

from pathlib import Path

from camels.core.errors import RecordError
from camels.core.io import iter_lines


def clean_prompt(line: str) -> str:
    r"""A prompt line as the study fed it: ``\\`` -> ``\``, ``\n`` -> a line break.

    >>> clean_prompt(r"- a\n- b\n-")
    '- a\n- b\n-'
    """
    return line.strip().replace("\\\\", "\\").replace("\\n", "\n")


def read_prompts(path: Path) -> tuple[list[tuple[int, str]], int]:
    """``([(0-based line, raw line), ...], blank lines)`` of one prompt file."""
    rows: list[tuple[int, str]] = []
    total = 0
    for line_no, line in iter_lines(path):
        if isinstance(line, RecordError):
            raise line
        rows.append((line_no - 1, line))
    with open(path, "rb") as f:
        total = sum(1 for _ in f)
    return rows, total - len(rows)


def item_id(path: Path, line: int) -> str:
    return f"{Path(path).stem}:{line}"
