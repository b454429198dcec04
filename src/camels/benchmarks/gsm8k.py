"""GSM8K JSONL files (``{"question", "answer"}`` per line; the answer ends with ``#### N``).

Ids: ``<prefix>:<0-based record>``, the prefix being the split (``test``) for evaluation and the file's stem
for any other file read (so ``test.jsonl`` gives the same ids either way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.io import iter_jsonl


def find_test_file(root: Path) -> Path:
    """``root`` itself when it is a file, else the one ``test.jsonl`` below it."""
    if root.is_file():
        return root
    found = sorted(root.rglob("test.jsonl"))
    if not found:
        raise ConfigError(f"no GSM8K test.jsonl under {root}")
    if len(found) > 1:
        raise ConfigError(f"several GSM8K test.jsonl under {root}: {[str(p) for p in found]}; pass one")
    return found[0]


def read_records(path: Path, prefix: str | None = None) -> list[tuple[str, int, Any]]:
    """``(id, 1-based line, record)`` for each record of a GSM8K JSONL file."""
    prefix = prefix if prefix is not None else Path(path).name.removesuffix(".gz").removesuffix(".jsonl")
    return [(f"{prefix}:{i}", line, obj) for i, (line, obj) in enumerate(iter_jsonl(path))]
