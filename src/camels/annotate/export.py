"""From the store to files: every annotation (CSV and JSONL) and the study's numbers (``results.json``).

``results.json`` (``"kind": "camels.human_pairwise"``) holds one entry per study: the models, counts, and
:func:`camels.annotate.stats.study_results` (acceptance per model, win/tie/loss with intervals, and the
agreement table: annotators with each other, then with each judge whose verdicts were imported). Missing
figures (no item with two annotators, no judge) are ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from camels.annotate.db import Annotation, Assignment, JudgeVerdictRow, Pair, Study, User
from camels.annotate.stats import HumanRecord, outcome, study_results
from camels.core.io import atomic_write, write_json, write_jsonl

SCHEMA_VERSION = 1
PREFERENCE_LABELS = {-2: "a_clearly_better", -1: "a_slightly_better", 0: "tie", 1: "b_slightly_better",
                     2: "b_clearly_better"}
CSV_FIELDS = ["study", "item", "annotator", "model_a", "model_b", "shown_first", "acceptable_a", "acceptable_b",
              "preference", "preference_label", "outcome", "flagged", "comment", "seconds", "revision",
              "created_at", "updated_at"]


def annotation_rows(s: Session, study: Study, *, texts: bool = False) -> list[dict[str, Any]]:
    """One dict per annotation of the study, in study terms (model A / model B), oldest first."""
    q = (select(Annotation, Assignment, Pair, User)
         .join(Assignment, Assignment.id == Annotation.assignment_id)
         .join(Pair, Pair.id == Assignment.pair_id).join(User, User.id == Assignment.user_id)
         .where(Pair.study_id == study.id).order_by(Annotation.created_at, Annotation.id))
    rows = []
    for ann, asg, pair, user in s.execute(q):
        row = {
            "study": study.name, "item": pair.item_key, "annotator": user.username,
            "model_a": study.model_a, "model_b": study.model_b,
            "shown_first": study.model_a if asg.a_first else study.model_b,
            "acceptable_a": ann.acceptable_a, "acceptable_b": ann.acceptable_b, "preference": ann.preference,
            "preference_label": PREFERENCE_LABELS[ann.preference],
            "outcome": {-1: "a", 0: "tie", 1: "b"}[outcome(ann.preference)],
            "flagged": ann.flagged, "comment": ann.comment, "seconds": ann.seconds, "revision": ann.revision,
            "created_at": ann.created_at.isoformat() + "Z", "updated_at": ann.updated_at.isoformat() + "Z",
        }
        if texts:
            row.update(prompt=pair.prompt, output_a=pair.output_a, output_b=pair.output_b)
        rows.append(row)
    return rows


def judge_verdicts(s: Session, study: Study) -> dict[str, dict[str, int]]:
    """judge name -> item key -> -1 (A) / 0 (tie) / 1 (B)."""
    out: dict[str, dict[str, int]] = {}
    q = select(JudgeVerdictRow.judge, Pair.item_key, JudgeVerdictRow.winner).join(Pair).where(
        Pair.study_id == study.id)
    for judge, item, winner in s.execute(q):
        out.setdefault(judge, {})[item] = winner
    return out


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def study_summary(s: Session, study: Study) -> dict[str, Any]:
    rows = annotation_rows(s, study)
    records = [HumanRecord(r["item"], r["annotator"], r["acceptable_a"], r["acceptable_b"], r["preference"])
               for r in rows]
    pairs = len(s.scalars(select(Pair.id).where(Pair.study_id == study.id)).all())
    out = {"study": study.name, "model_a": study.model_a, "model_b": study.model_b, "pairs": pairs,
           "annotators_per_pair": study.annotators_per_pair, "flagged": sum(r["flagged"] for r in rows)}
    out.update(study_results(records, judge_verdicts(s, study)))
    return _finite(out)


def results(s: Session, studies: list[Study]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "kind": "camels.human_pairwise",
            "studies": [study_summary(s, st) for st in studies]}


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def export(s: Session, out_dir: str | Path, study_names: list[str] | None = None) -> dict[str, Any]:
    """Write ``annotations.csv``, ``annotations.jsonl`` (with prompt and both outputs) and ``results.json``
    into ``out_dir``; returns the results."""
    studies = s.scalars(select(Study).order_by(Study.id)).all()
    if study_names:
        missing = sorted(set(study_names) - {st.name for st in studies})
        if missing:
            from camels.core.errors import ConfigError

            raise ConfigError(f"no study named {', '.join(map(repr, missing))}")
        studies = [st for st in studies if st.name in study_names]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for st in studies for r in annotation_rows(s, st, texts=True)]
    with atomic_write(out / "annotations.csv") as f:
        f.write(to_csv(rows))
    write_jsonl(out / "annotations.jsonl", (json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows))
    res = results(s, studies)
    write_json(out / "results.json", res)
    return res
