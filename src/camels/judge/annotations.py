"""alpaca_eval's file formats, read and written: ``model_outputs.json`` and ``annotations.json``.

``model_outputs.json``: a JSON list of ``{"instruction", "output", "generator", "dataset"}``, one per
instruction of the eval set, in its order.

``annotations.json``: a JSON list with one verdict per instruction: ``instruction``, ``output_1`` and
``generator_1`` (the reference), ``output_2`` and ``generator_2`` (the model judged), ``dataset``,
``annotator`` and ``preference`` (see :mod:`camels.judge.winrate` for its encoding; ``null`` when the
judge's answer could not be parsed). alpaca_eval adds ``price_per_example`` and ``time_per_example``;
camels adds ``judge`` (the full :class:`~camels.judge.identity.JudgeIdentity`), ``id``, ``position`` (which
output the judge saw first), the judge's raw answers and token counts. Each tool ignores the other's extra
fields, so alpaca_eval reads camels' files and camels reads alpaca_eval's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import read_json, write_json
from camels.judge.identity import JudgeIdentity, MixedJudgeError, require_one_identity
from camels.judge.length_controlled import length_controlled_win_rate
from camels.judge.winrate import check_preference, win_rate_metrics

OUTPUT_FIELDS = ("instruction", "output", "generator", "dataset")


def _rows(path: Path) -> list[Any]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise RecordError("bad_file", f"expected a JSON list, got {type(rows).__name__}", file=str(path))
    return rows


def read_model_outputs(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``model_outputs.json``; each needs a string ``instruction`` and ``output``."""
    path = Path(path)
    out = []
    for i, row in enumerate(_rows(path)):
        if not isinstance(row, dict):
            raise RecordError("bad_record", f"record {i}: expected an object", file=str(path))
        for key in ("instruction", "output"):
            if not isinstance(row.get(key), str):
                raise RecordError("missing_field", f"record {i}: {key} must be a string", field=key,
                                  file=str(path))
        out.append(row)
    return out


def write_model_outputs(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_json(path, [{k: r[k] for k in OUTPUT_FIELDS if k in r} for r in rows])


def annotation_identity(row: Mapping[str, Any]) -> JudgeIdentity:
    """The judge of one annotation: camels' ``judge`` field, else alpaca_eval's ``annotator`` name."""
    judge = row.get("judge")
    if isinstance(judge, Mapping):
        return JudgeIdentity.from_dict(judge)
    return JudgeIdentity.from_annotator(str(row.get("annotator", "unknown")))


def read_annotations(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an ``annotations.json`` (alpaca_eval's or camels'), each preference checked.

    A row that is not an object, or a preference that is not null, 0 or a number in [1, 2], is an error
    naming the file, the record and the field.
    """
    path = Path(path)
    out = []
    for i, row in enumerate(_rows(path)):
        if not isinstance(row, dict):
            raise RecordError("bad_record", f"record {i}: expected an object", file=str(path))
        if "preference" not in row:
            raise RecordError("missing_field", f"record {i}: no preference", field="preference", file=str(path))
        try:
            check_preference(row["preference"])
        except ValueError as e:
            raise RecordError("bad_preference", f"record {i}: {e}", field="preference", file=str(path)) from None
        out.append(row)
    if not out:
        raise RecordError("bad_file", "no annotations", file=str(path))
    return out


def write_annotations(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_json(path, list(rows))


def _one_value(rows: Sequence[Mapping[str, Any]], key: str, where: str) -> Any:
    values = list(dict.fromkeys(r.get(key) for r in rows))
    if len(values) > 1:
        raise MixedJudgeError(f"{where}: annotations compare more than one {key} ({values[:3]}); a win rate "
                              "is computed for one model against one reference: split the file")
    return values[0]


def summarize(rows: Sequence[Mapping[str, Any]], where: str = "annotations", lc_data: str = "") -> dict[str, Any]:
    """Metrics of one model's annotations against one reference, by one judge (refuses mixtures).

    Returns the win-rate metrics (:func:`camels.judge.winrate.win_rate_metrics`), the model and reference
    names, the judge, the number of annotations, and the length-controlled win rate
    (:mod:`camels.judge.length_controlled`; with ``lc_data``, else a note why it is not computed). The
    annotations' order is the eval set's (row i is instruction i), as in alpaca_eval's files.
    """
    identity = require_one_identity((annotation_identity(r) for r in rows), where)
    model = _one_value(rows, "generator_2", where)
    reference = _one_value(rows, "generator_1", where)
    metrics = win_rate_metrics([r["preference"] for r in rows])
    metrics.update({
        "n_annotations": len(rows),
        "model": model,
        "reference": reference,
        "judge": identity.to_dict(),
        "annotator": identity.annotator,
    })
    metrics.update(length_controlled_win_rate(
        [r["preference"] for r in rows], [len(str(r.get("output_1", ""))) for r in rows],
        [len(str(r.get("output_2", ""))) for r in rows], list(range(len(rows))), lc_data))
    return metrics


def summarize_file(path: str | Path, lc_data: str = "") -> dict[str, Any]:
    """:func:`summarize` of an ``annotations.json`` file."""
    return summarize(read_annotations(path), where=str(path), lc_data=lc_data)
