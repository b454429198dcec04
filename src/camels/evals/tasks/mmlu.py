"""MMLU (Hendrycks et al., 2021): 57 subjects of four-way multiple choice; 0-shot and 5-shot (SPEC §4).

Prompt (the study's, kept exact): a header ``"The following are multiple choice questions (with answers)
about  {subject words}.\\n\\n"`` -- two spaces after "about", because the study's code (like the original
MMLU code it copies) builds the subject as ``" " + " ".join(words)`` and puts it after "about "
(``header="single"`` gives the one space of lm-evaluation-harness) -- then ``shots`` solved examples from the subject's dev split, each
``"{question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer: {letter}\\n\\n"``, then the test question in the
same form ending with ``"Answer:"``. The whole prompt is one user turn, so the header and the exemplars
are a prefix shared by every question of a subject (a backend computes it once and reuses its KV cache).
Chat models get the assistant prefix ``"The answer is:"``; base models continue right after ``"Answer:"``.

Scoring: a :class:`~camels.core.requests.ChoiceRequest` over ``" A"``, ``" B"``, ``" C"``, ``" D"``: the
letters with a leading space, because that is how a letter follows ``"Answer:"`` in running text and so
the token the model would actually produce; the predicted answer is the letter of highest next-token
probability. Accuracy is micro-averaged over questions, and also reported per subject, per subcategory
(17) and per category (4), with the subject table of the MMLU authors.

Fitting the context: when the backend can count tokens, exemplars are dropped from the end (5, 4, ...)
until the rendered prompt plus one answer token fits ``min(max_prompt_tokens, model context)``; the
number of shots used is stored in each prediction (``extra.shots``). Without token counting (API models)
all shots are kept.

Data: ``--data`` is a folder containing ``*_test.csv`` (and ``*_dev.csv`` for shots) anywhere below it, in
either layout: the Hugging Face export (header ``question,choice0,choice1,choice2,choice3,answer``, answer
0-3) or the original release (no header, answer letter A-D). Without ``--data``, ``cais/mmlu`` from the hub.
Item ids: ``<subject>_test:<0-based data row>`` (files read by :mod:`camels.benchmarks.mmlu`, the reader
decontamination uses too). Each item carries its subject's exemplars by reference (``Item.shared``, not
stored in predictions), so ``requests()`` works on any task instance, loaded or not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.benchmarks.mmlu import LETTERS, find_files, item_id, read_csv
from camels.core.errors import ConfigError
from camels.core.io import sha256_file
from camels.core.requests import ChoiceRequest, ChoiceResult, Generation, Request, Result
from camels.evals.metrics import accuracy, bootstrap_ci, stderr
from camels.evals.task import (
    PLAIN,
    Item,
    RequestContext,
    Task,
    TaskData,
    hub_dataset,
    hub_source,
    register_preset,
    register_task,
)

CHOICES = tuple(f" {letter}" for letter in LETTERS)

# subject -> subcategory (17 subcategories), from the MMLU authors' categorisation.
SUBCATEGORIES: dict[str, str] = {
    "abstract_algebra": "math", "anatomy": "health", "astronomy": "physics", "business_ethics": "business",
    "clinical_knowledge": "health", "college_biology": "biology", "college_chemistry": "chemistry",
    "college_computer_science": "computer science", "college_mathematics": "math",
    "college_medicine": "health", "college_physics": "physics", "computer_security": "computer science",
    "conceptual_physics": "physics", "econometrics": "economics", "electrical_engineering": "engineering",
    "elementary_mathematics": "math", "formal_logic": "philosophy", "global_facts": "other",
    "high_school_biology": "biology", "high_school_chemistry": "chemistry",
    "high_school_computer_science": "computer science", "high_school_european_history": "history",
    "high_school_geography": "geography", "high_school_government_and_politics": "politics",
    "high_school_macroeconomics": "economics", "high_school_mathematics": "math",
    "high_school_microeconomics": "economics", "high_school_physics": "physics",
    "high_school_psychology": "psychology", "high_school_statistics": "math",
    "high_school_us_history": "history", "high_school_world_history": "history", "human_aging": "health",
    "human_sexuality": "culture", "international_law": "law", "jurisprudence": "law",
    "logical_fallacies": "philosophy", "machine_learning": "computer science", "management": "business",
    "marketing": "business", "medical_genetics": "health", "miscellaneous": "other",
    "moral_disputes": "philosophy", "moral_scenarios": "philosophy", "nutrition": "health",
    "philosophy": "philosophy", "prehistory": "history", "professional_accounting": "other",
    "professional_law": "law", "professional_medicine": "health", "professional_psychology": "psychology",
    "public_relations": "politics", "security_studies": "politics", "sociology": "culture",
    "us_foreign_policy": "politics", "virology": "health", "world_religions": "philosophy",
}
# category (4) -> its subcategories.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "STEM": ("physics", "chemistry", "biology", "computer science", "math", "engineering"),
    "humanities": ("history", "philosophy", "law"),
    "social sciences": ("politics", "culture", "economics", "geography", "psychology"),
    "other (business, health, misc.)": ("other", "business", "health"),
}
SUBJECTS: tuple[str, ...] = tuple(sorted(SUBCATEGORIES))
_CATEGORY_OF_SUB = {sub: cat for cat, subs in CATEGORIES.items() for sub in subs}


def category(subject: str) -> str:
    return _CATEGORY_OF_SUB[SUBCATEGORIES[subject]]


@dataclass(frozen=True)
class MMLUConfig:
    shots: int = field(default=5, metadata={"help": "solved dev examples before each question (0-5)"})
    subjects: tuple[str, ...] = field(default=(), metadata={"help": "subjects to evaluate (empty: all 57)"})
    header: str = field(default="study", metadata={
        "help": "subject header: 'study' (two spaces after 'about', as the study and the original MMLU code) "
                "or 'single' (one space, as lm-evaluation-harness)"})
    answer_prefix: str = field(default="The answer is:",
                               metadata={"help": "assistant prefix for chat models (not used for plain)"})
    max_prompt_tokens: int = field(default=2048,
                                   metadata={"help": "drop shots until the prompt fits this many tokens"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap confidence interval"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples (0: no interval)"})


def subject_words(subject: str) -> str:
    """``"high_school_us_history"`` -> ``"high school us history"`` (as in the header)."""
    return " ".join(subject.split("_"))


HEADERS = ("study", "single")


def header(subject: str, style: str = "study") -> str:
    """The first line of every prompt of ``subject`` and the blank line after it.

    >>> header("high_school_us_history")
    'The following are multiple choice questions (with answers) about  high school us history.\\n\\n'
    >>> header("virology", "single")
    'The following are multiple choice questions (with answers) about virology.\\n\\n'
    """
    if style not in HEADERS:
        raise ConfigError(f"mmlu: header must be one of {', '.join(HEADERS)}, got {style!r}")
    words = " " + subject_words(subject) if style == "study" else subject_words(subject)
    return f"The following are multiple choice questions (with answers) about {words}.\n\n"


def format_question(question: str, choices: Sequence[str], answer: int | None = None) -> str:
    """One item: question, the four lettered options, ``"Answer:"`` (and `` X\\n\\n`` when solved)."""
    text = question + "".join(f"\n{letter}. {c}" for letter, c in zip(LETTERS, choices)) + "\nAnswer:"
    if answer is not None:
        text += f" {LETTERS[answer]}\n\n"
    return text


@register_task
class MMLU(Task):
    name = "mmlu"
    version = "1"
    Config = MMLUConfig
    primary_metric = "accuracy"
    data_dir = "mmlu"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # subject -> solved dev examples, as load() read them. Items carry the same list by reference
        # (Item.shared, not stored in predictions: the requests hold the exact prompt anyway), so requests()
        # works on any instance with the same config, loaded or not.
        self.exemplars: dict[str, list[dict[str, Any]]] = {}
        self._prefixes: dict[tuple[str, int], str] = {}

    def _subjects(self, available: Sequence[str]) -> list[str]:
        wanted = list(self.config.subjects) or list(SUBJECTS)
        unknown = [s for s in wanted if s not in SUBCATEGORIES]
        if unknown:
            raise ConfigError(f"unknown MMLU subjects {unknown}")
        missing = [s for s in wanted if s not in available]
        if missing and self.config.subjects:
            raise ConfigError(f"MMLU data has no test file for {missing}")
        return [s for s in wanted if s in available]

    def load(self, data_path: str | Path | None = None) -> TaskData:
        if not 0 <= self.config.shots <= 5:
            raise ConfigError(f"mmlu: shots must be 0-5 (the dev split has 5 per subject), got {self.config.shots}")
        self.exemplars.clear()
        self._prefixes.clear()
        if data_path is None:
            return self._load_hub()
        root = Path(data_path)
        tests = find_files(root, "test")
        if not tests:
            raise ConfigError(f"no MMLU *_test.csv files under {root}")
        devs = find_files(root, "dev") if self.config.shots else {}
        items: list[Item] = []
        sources: dict[str, str] = {}
        for subject in self._subjects(list(tests)):
            shots: list[dict[str, Any]] = []
            if self.config.shots:
                if subject not in devs:
                    raise ConfigError(f"{self.config.shots}-shot MMLU needs {subject}_dev.csv under {root}")
                shots = read_csv(devs[subject])[: self.config.shots]
                sources[str(devs[subject].resolve())] = sha256_file(devs[subject])
            for i, row in enumerate(read_csv(tests[subject])):
                items.append(self._item(subject, i, row, shots))
            self.exemplars[subject] = shots
            sources[str(tests[subject].resolve())] = sha256_file(tests[subject])
        return TaskData(items=items, sources=sources)

    def _load_hub(self) -> TaskData:
        items: list[Item] = []
        sources: dict[str, str] = {}
        for subject in self._subjects(SUBJECTS):
            shots: list[dict[str, Any]] = []
            if self.config.shots:
                dev = hub_dataset("cais/mmlu", subject, "dev")
                shots = [{"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"])}
                         for r in dev][: self.config.shots]
                k, v = hub_source(dev, "cais/mmlu", subject, "dev")
                sources[k] = v
            test = hub_dataset("cais/mmlu", subject, "test")
            for i, r in enumerate(test):
                row = {"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"])}
                items.append(self._item(subject, i, row, shots))
            self.exemplars[subject] = shots
            k, v = hub_source(test, "cais/mmlu", subject, "test")
            sources[k] = v
        return TaskData(items=items, sources=sources)

    @staticmethod
    def _item(subject: str, row: int, data: dict[str, Any], shots: list[dict[str, Any]]) -> Item:
        return Item(item_id(subject, "test", row), {"subject": subject, **data}, {"exemplars": shots})

    # -- requests ----------------------------------------------------------------------------------------
    def prompt_text(self, item: Item, k: int | None = None) -> str:
        """The user-turn text with the first ``k`` exemplars (all configured ones by default)."""
        d = item.data
        self._shots_of(d["subject"], item)  # read the item's exemplars when this instance has not yet
        return self.prefix(d["subject"], k) + format_question(d["question"], d["choices"])

    def prefix(self, subject: str, k: int | None = None) -> str:
        """Header and the first ``k`` solved exemplars: the part shared by every question of a subject."""
        shots = self._shots_of(subject)
        k = len(shots) if k is None else k
        key = (subject, k)
        if key not in self._prefixes:
            self._prefixes[key] = header(subject, self.config.header) + "".join(
                format_question(s["question"], s["choices"], s["answer"]) for s in shots[:k])
        return self._prefixes[key]

    def _request(self, item: Item, k: int, ctx: RequestContext) -> ChoiceRequest:
        return ChoiceRequest(messages=[("user", self.prompt_text(item, k))], choices=CHOICES,
                             assistant_prefix=self.config.answer_prefix if ctx.chat else "")

    def _shots_of(self, subject: str, item: Item | None = None) -> list[dict[str, Any]]:
        """The subject's exemplars: those the item carries, else those this instance loaded."""
        if self.config.shots == 0:
            return []
        carried = item.shared.get("exemplars") if item is not None else None
        if carried is not None and self.exemplars.get(subject) is not carried:
            # a list another instance (or an earlier load) made: use it, and forget prefixes built before
            self.exemplars[subject] = carried if len(carried) <= self.config.shots else carried[: self.config.shots]
            self._prefixes = {k: v for k, v in self._prefixes.items() if k[0] != subject}
        if subject not in self.exemplars:
            raise ConfigError(f"mmlu: no exemplars for {subject!r}: build items with load() (an item read back "
                              "from predictions.jsonl carries none)")
        return self.exemplars[subject]

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        k = len(self._shots_of(item.data["subject"], item))
        req = self._request(item, k, ctx)
        while k > 0 and not ctx.fits(req, self.config.max_prompt_tokens):
            k -= 1
            req = self._request(item, k, ctx)
        return [req]

    # -- scoring -------------------------------------------------------------------------------------------
    @staticmethod
    def _predicted(result: Result) -> int | None:
        if isinstance(result, ChoiceResult):
            return result.best
        if isinstance(result, Generation):
            return letter_from_text(result.texts[0] if result.texts else "")
        raise TypeError(f"MMLU cannot score a {type(result).__name__}")

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        pred = self._predicted(results[0])
        return {
            "correct": float(pred == item.data["answer"]),
            "predicted": LETTERS[pred] if pred is not None else None,
            "gold": LETTERS[item.data["answer"]],
        }

    def request_extra(self, item: Item, requests: Sequence[Request]) -> dict[str, Any]:
        """How many exemplars the prompt kept (fewer than configured when the context was too short)."""
        text = requests[0].messages[0].content
        for k in range(len(self._shots_of(item.data["subject"], item)), -1, -1):
            if self.prompt_text(item, k) == text:
                return {"shots": k}
        return {}

    def output_text(self, item: Item, results: Sequence[Result]) -> str | None:
        pred = self._predicted(results[0])
        return LETTERS[pred] if pred is not None else None

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        correct = [float(s["correct"]) for s in scores]
        groups: dict[str, dict[str, list[float]]] = {"per_subject": {}, "per_subcategory": {}, "per_category": {}}
        for item, c in zip(items, correct):
            subject = item.data["subject"]
            groups["per_subject"].setdefault(subject, []).append(c)
            groups["per_subcategory"].setdefault(SUBCATEGORIES[subject], []).append(c)
            groups["per_category"].setdefault(category(subject), []).append(c)
        out: dict[str, Any] = {"accuracy": accuracy(correct), "accuracy_stderr": stderr(correct), "n": len(correct)}
        if self.config.bootstrap_resamples:
            lo, hi = bootstrap_ci(correct, n_resamples=self.config.bootstrap_resamples, seed=self.config.bootstrap_seed)
            out["accuracy_ci95"] = [lo, hi]
        for name, group in groups.items():
            out[name] = {k: {"accuracy": accuracy(v), "n": len(v)} for k, v in sorted(group.items())}
        out["macro_accuracy_subjects"] = sum(v["accuracy"] for v in out["per_subject"].values()) / len(out["per_subject"])
        return out


def letter_from_text(text: str) -> int | None:
    """The answer letter in a free-text answer: the first of A-D standing alone (``"B"``, ``"(C)"``,
    ``"The answer is: D."``), after any ``"answer is"``; ``None`` when there is none.

    >>> letter_from_text(" B"), letter_from_text("The answer is (C)."), letter_from_text("I think A. Yes")
    (1, 2, 0)
    """
    low = text
    m = re.search(r"answer is\s*:?\s*", low, re.IGNORECASE)
    if m:
        low = low[m.end():]
    found = re.search(r"(?<![A-Za-z])([ABCD])(?![A-Za-z])", low)
    return LETTERS.index(found.group(1)) if found else None


register_preset("mmlu_0shot", "mmlu", shots=0)
register_preset("mmlu_5shot", "mmlu", shots=5)
