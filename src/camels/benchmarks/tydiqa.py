"""TyDi QA GoldP files in SQuAD format (``tydiqa-goldp-v1.1-dev.json``, ``-train.json``).

Ids: the dataset's own question ids (``"finnish--6473...-0"``; the language is the part before the first
``-``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import read_json

DEV_FILE = "tydiqa-goldp-v1.1-dev.json"
TRAIN_FILE = "tydiqa-goldp-v1.1-train.json"


def squad_rows(obj: Any, where: str) -> list[dict[str, Any]]:
    """Flatten a SQuAD-format JSON object into ``{"id", "context", "question", "answers"}`` rows."""
    rows = []
    try:
        data = obj["data"]
        for a, article in enumerate(data):
            for p, para in enumerate(article["paragraphs"]):
                for q, qa in enumerate(para["qas"]):
                    fld = f"data[{a}].paragraphs[{p}].qas[{q}]"
                    answers = [x["text"] for x in qa.get("answers", [])]
                    if not isinstance(qa.get("id"), str) or not isinstance(qa.get("question"), str):
                        raise RecordError("bad_item", "a question needs string 'id' and 'question'", field=fld,
                                          file=where)
                    if not answers or not all(isinstance(t, str) for t in answers):
                        raise RecordError("bad_item", f"question {qa['id']} has no text answers", field=fld,
                                          file=where)
                    rows.append({"id": qa["id"], "context": para["context"], "question": qa["question"],
                                 "answers": answers})
    except (KeyError, TypeError) as e:
        raise RecordError("bad_json", f"not SQuAD format: missing or wrong {e}", field="data",
                          file=where) from None
    return rows


def read_squad(path: Path) -> list[dict[str, Any]]:
    return squad_rows(read_json(path), str(path))
