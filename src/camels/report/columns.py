"""The report's columns: which run folder fills which column, and how its numbers are read.

The table follows the study's layout, grouped by skill. Each column names the task (the registered name a
run's manifest records as ``task.task``) and the option values that select it, the metric shown (the task's
primary metric), the per-item score that the metric averages, how items group for a macro-average, whether
lower is better, and the scale the task writes its metric in:

==================  ========================  ==============================  ==============================
skill               column (suite name)       metric (per-item score)         notes
==================  ========================  ==============================  ==============================
Factual knowledge   MMLU 0-shot, 5-shot       accuracy (correct)              micro-average over questions
Reasoning           GSM8K direct, CoT         exact_match (exact_match)       micro
Reasoning           BBH direct, CoT           exact_match (exact_match)       macro over the 27 subtasks
Multilinguality     TydiQA GP, CB             f1 (f1)                         macro over the 9 languages
Coding              Codex-Eval P@1, P@10      pass@k (per-problem pass@k)     mean over problems
Open-ended/safety   ToxiGen                   toxic (toxic)                   lower is better
Open-ended/safety   TruthfulQA MC2            mc2 (mc2)                       micro
Open-ended/safety   TruthfulQA T*I            truthful_informative (same)     judged; task writes percent
Open-ended/safety   AlpacaEval                win_rate (preference - 1)       ties half; task writes percent
Human acceptance    Acceptance                share of outputs acceptable     from an annotate export
==================  ========================  ==============================  ==============================

Everything is shown in percent (0-100): tasks that write fractions are multiplied by 100. A run of a task
the report does not know, or of a known task with other options (MMLU 3-shot), still appears, in the
"Other" group under its folder's name; a known task keeps its scale, an unknown one is shown as written (not
rescaled). Other columns are kept out of the averages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FACTUAL, REASONING, MULTILINGUAL, CODING, OPEN, HUMAN, OTHER = (
    "Factual knowledge", "Reasoning", "Multilinguality", "Coding", "Open-ended/safety", "Human acceptance",
    "Other")
SKILLS = (FACTUAL, REASONING, MULTILINGUAL, CODING, OPEN, HUMAN, OTHER)


@dataclass(frozen=True)
class Column:
    """One column of the table.

    ``key`` is the column's stable name (the suite's task name, e.g. ``mmlu_0shot``; CSV headers and the
    reference YAML use it); ``header`` what the table prints; ``task`` and ``options`` select the run
    folders that fill it (``None``: any value); ``metric`` the key of ``metrics.json`` shown; ``item_key``
    the per-item score averaged by ``metric`` (``None``: derived, see :func:`camels.report.load`);
    ``group_by`` where an item's group is for a macro-average (``"item.task"``, ``"scores.language"``) or
    None for a micro-average; ``scale`` 100 when the task writes a fraction, 1 when it writes percent, None
    when unknown (shown as written); ``in_average`` whether the row average counts it."""

    key: str
    header: str
    skill: str
    task: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    metric: str = ""
    item_key: str | None = None
    group_by: str | None = None
    lower_is_better: bool = False
    scale: float | None = 100.0
    in_average: bool = True

    @property
    def known_scale(self) -> bool:
        return self.scale is not None


COLUMNS: tuple[Column, ...] = (
    Column("mmlu_0shot", "MMLU 0-shot", FACTUAL, "mmlu", (("shots", 0),), "accuracy", "correct"),
    Column("mmlu_5shot", "MMLU 5-shot", FACTUAL, "mmlu", (("shots", 5),), "accuracy", "correct"),
    Column("gsm8k_direct", "GSM8K direct", REASONING, "gsm8k", (("cot", False),), "exact_match", "exact_match"),
    Column("gsm8k_cot", "GSM8K CoT", REASONING, "gsm8k", (("cot", True),), "exact_match", "exact_match"),
    Column("bbh_direct", "BBH direct", REASONING, "bbh", (("cot", False),), "exact_match", "exact_match",
           "item.task"),
    Column("bbh_cot", "BBH CoT", REASONING, "bbh", (("cot", True),), "exact_match", "exact_match", "item.task"),
    Column("tydiqa_goldp", "TydiQA GP", MULTILINGUAL, "tydiqa", (("closed_book", False),), "f1", "f1",
           "scores.language"),
    Column("tydiqa_closed_book", "TydiQA CB", MULTILINGUAL, "tydiqa", (("closed_book", True),), "f1", "f1",
           "scores.language"),
    Column("codex_eval_pass1", "Codex-Eval P@1", CODING, "humaneval", (("primary_k", 1),), "pass@1", "pass@1"),
    Column("codex_eval_pass10", "Codex-Eval P@10", CODING, "humaneval", (("primary_k", 10),), "pass@10",
           "pass@10"),
    Column("toxigen", "ToxiGen (lower is better)", OPEN, "toxigen", (), "toxic", "toxic", lower_is_better=True,
           in_average=False),
    Column("truthfulqa_mc", "TruthfulQA MC2", OPEN, "truthfulqa", (), "mc2", "mc2"),
    Column("truthfulqa_gen", "TruthfulQA T*I", OPEN, "truthfulqa_gen", (), "truthful_informative",
           "truthful_informative", scale=1.0),
    Column("alpaca_eval", "AlpacaEval win rate", OPEN, "alpaca_eval", (), "win_rate", None, scale=1.0),
    Column("human_acceptance", "Human acceptance", HUMAN, None, (), "acceptance", None, in_average=False),
)
#: Known tasks outside the study's columns that still have a known scale (shown in "Other").
OTHER_SCALES = {"instruct_em": ("exact_match", 100.0)}

BY_KEY = {c.key: c for c in COLUMNS}
SHORT = {"toxigen": "ToxiGen", "codex_eval_pass1": "Codex P@1", "codex_eval_pass10": "Codex P@10",
         "alpaca_eval": "AlpacaEval", "human_acceptance": "Accepted"}  # short headers of the terminal table


def short_header(col: Column) -> str:
    return SHORT.get(col.key, col.header)


def match(task: Mapping[str, Any]) -> Column | None:
    """The study column a run fills, from its manifest's ``task`` entry (``{"name", "task", "config"}``):
    the registered task and the selecting option values must agree; None when no column fits."""
    base = task.get("task") or task.get("name")
    config = task.get("config") or {}
    for col in COLUMNS:
        if col.task is None or col.task != base:
            continue
        if all(key in config and _same(config[key], want) for key, want in col.options):
            return col
    return None


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, bool):
        return got is want or got == want
    return type(got) is not bool and got == want


def other_column(label: str, task: Mapping[str, Any], primary: str) -> Column:
    """The "Other" column of a run no study column takes (named after its folder). A known task with other
    options (MMLU 3-shot, a second MMLU 0-shot run) keeps what is known of its metric (scale, per-item key,
    grouping, direction); an unknown task is shown as written. Other columns are never averaged."""
    base = task.get("task") or task.get("name") or label
    known = next((c for c in COLUMNS if c.task == base and c.metric == primary), None)
    if known is not None:
        return Column(f"other:{label}", label, OTHER, base, (), primary, known.item_key, known.group_by,
                      known.lower_is_better, known.scale, in_average=False)
    metric, scale = OTHER_SCALES.get(base, (primary, None))
    if metric != primary:
        scale = None
    return Column(f"other:{label}", label, OTHER, base, (), primary, primary, None, False, scale,
                  in_average=False)
