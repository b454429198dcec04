"""The scoring request kinds of judged evaluation, and their results.

Each is a frozen dataclass with ``kind`` (its name in the cache and in predictions) and ``method`` (the
scorer method that answers a list of them). A request holds only content; the judge that answers it is
the scorer, whose identity fingerprint is part of the cache key. So an annotation's key is
(judge identity, prompt version, the two outputs in the order shown): the same pair in the same order by
the same judge is never judged twice, and anything else is a different key.

* :class:`JudgePairRequest` -> :class:`PairVerdict`: which of two outputs is better, as alpaca_eval's
  preference in the order shown (1.0 the first, 2.0 the second, 1.5 a tie, None unparsed).
* :class:`JudgeYesNoRequest` -> :class:`YesNoVerdict`: P(yes) of a question/answer judge; ``judge`` names
  which of the task's judges answers (``truth``, ``info``).
* :class:`ClassifyRequest` -> :class:`ClassifyResult`: class probabilities of a text.

Every result carries the judge identity that produced it (``judge``), so a stored verdict says who
judged, and aggregation refuses verdicts of two identities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from camels.core.requests import register_kind


@dataclass(frozen=True, slots=True)
class JudgePairRequest:
    """Judge ``output_1`` (shown first) against ``output_2`` (shown second) for ``instruction``."""

    instruction: str
    output_1: str
    output_2: str

    kind: ClassVar[str] = "judge_pair"
    method: ClassVar[str] = "judge_pair"


@dataclass(frozen=True, slots=True)
class PairVerdict:
    """The verdict on a pair, in the order shown; ``raw`` holds the judge's answer of every attempt.

    ``preference`` is None when no attempt could be parsed (``attempts`` were made). Token counts and cost
    add up all attempts.
    """

    preference: float | None
    raw: tuple[str, ...] = ()
    attempts: int = 1
    judge: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class JudgeYesNoRequest:
    """Ask the task's judge ``judge`` (e.g. ``truth``) whether ``answer`` to ``question`` deserves a yes."""

    judge: str
    question: str
    answer: str

    kind: ClassVar[str] = "judge_yesno"
    method: ClassVar[str] = "judge_yesno"


@dataclass(frozen=True, slots=True)
class YesNoVerdict:
    """P(yes) and P(no): the probabilities of the two answer tokens (not renormalised), and the decision."""

    p_yes: float
    p_no: float
    yes: bool
    judge: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClassifyRequest:
    """Class probabilities of ``text``."""

    text: str

    kind: ClassVar[str] = "classify"
    method: ClassVar[str] = "classify"


@dataclass(frozen=True, slots=True)
class ClassifyResult:
    """Softmax probabilities over the classifier's ``labels``; ``positive`` is the decision for the positive
    class (e.g. toxic) and ``p_positive`` its probability."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]
    positive: bool
    p_positive: float = 0.0
    judge: dict[str, Any] = field(default_factory=dict)


KINDS = ((JudgePairRequest, PairVerdict), (JudgeYesNoRequest, YesNoVerdict), (ClassifyRequest, ClassifyResult))

for _req, _res in KINDS:
    register_kind(_req, _res)
