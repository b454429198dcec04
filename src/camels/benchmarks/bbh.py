"""BIG-Bench Hard task files: ``bbh/<subtask>.json`` holding ``{"examples": [{"input", "target"}, ...]}``.

Ids: ``<subtask>:<0-based index in the file's examples>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import read_json


def read_examples(path: Path) -> list[dict[str, Any]]:
    """The examples of one subtask file; a file of another shape is a :class:`RecordError` (``bad_file``)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise RecordError("bad_file", "expected an object with an 'examples' list", field="examples",
                          file=str(path))
    return data["examples"]


def item_id(subtask: str, index: int) -> str:
    return f"{subtask}:{index}"
