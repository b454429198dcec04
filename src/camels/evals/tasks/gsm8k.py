"""GSM8K (Cobbe et al., 2021): grade-school math word problems; 8-shot chain of thought or direct (SPEC §4).

Items: the test split (1319 questions), of which ``n`` = 200 are sampled with seed 42, exactly as
``random.Random(42).sample(all_items, 200)`` (the same draw as ``random.seed(42); random.sample(...)``),
keeping the sampled order; ``n = 0`` keeps all 1319. Ids are ``test:<0-based line of test.jsonl>`` and do
not change with sampling.

Prompt: ``"Answer the following questions.\\n\\n"`` then the eight standard exemplars (Wei et al., 2022) as
``"Question: {q}\\nAnswer: {a}"`` blocks separated by blank lines, then ``"Question: {question}"``. With
``cot`` the exemplar answers are the reasoning chains ending "So the answer is N."; without (the direct
variant) just "N" (the 2023 code misspelled "Quesion:" there; camels does not). A plain prompt ends with
``"\\nAnswer:"`` inside the user text and generation stops at a newline, since every exemplar answer is a
single line (``plain_stop``). For chat models ``"Answer:"`` is the assistant prefix; the model ends its
turn itself, and ``"\\nQuestion:"`` is a safety stop so a model that starts the next question does not
add numbers after its answer (``chat_stop``). Greedy, at most 512 new tokens.

Metric: the extracted number equal, as a number, to the number after ``####`` in the gold answer. Two
named extractions are computed for every item and reported side by side (the names lm-evaluation-harness
reports for GSM8K):

* ``flexible-extract`` -- the last number in the output, thousands separators removed (the study's rule;
  ``exact_match``, the headline, uses it by default);
* ``strict-match`` -- the answer only where it is written the way the exemplars write it: with
  chain of thought, the number right after the first "the answer is" (any case); direct, an output that is
  one number and nothing else (a final period allowed). A model that rambles scores 0 here.

``extraction`` chooses which one ``exact_match`` is; ``metrics.json`` holds both under ``extraction``,
and each prediction keeps both extracted answers beside the raw output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.benchmarks.gsm8k import find_test_file, read_records
from camels.core.errors import ConfigError, RecordError
from camels.core.io import sha256_file
from camels.core.requests import Request, Result
from camels.evals.metrics import accuracy, bootstrap_ci, last_number, numbers_equal, stderr
from camels.evals.task import (
    PLAIN,
    Item,
    RequestContext,
    Task,
    TaskData,
    cued_generation,
    generated_text,
    hub_dataset,
    hub_source,
    register_preset,
    register_task,
    sample_items,
)

# The eight chain-of-thought exemplars of Wei et al. (2022), used for GSM8K by the study.
EXEMPLARS: tuple[dict[str, str], ...] = (
    {"question": "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they "
                 "are done, there will be 21 trees. How many trees did the grove workers plant today?",
     "cot": "There are 15 trees originally. Then there were 21 trees after some more were planted. So there "
            "must have been 21 - 15 = 6. So the answer is 6.",
     "short": "6"},
    {"question": "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
                 "parking lot?",
     "cot": "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. So the answer is 5.",
     "short": "5"},
    {"question": "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
                 "left in total?",
     "cot": "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After "
            "eating 35, they had 74 - 35 = 39. So the answer is 39.",
     "short": "39"},
    {"question": "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
                 "lollipops did Jason give to Denny?",
     "cot": "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
            "20 - 12 = 8. So the answer is 8.",
     "short": "8"},
    {"question": "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys "
                 "does he have now?",
     "cot": "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
            "5 + 4 = 9. So the answer is 9.",
     "short": "9"},
    {"question": "There were nine computers in the server room. Five more computers were installed each day, "
                 "from monday to thursday. How many computers are now in the server room?",
     "cot": "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
            "computers were added. 9 + 20 is 29. So the answer is 29.",
     "short": "29"},
    {"question": "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. "
                 "How many golf balls did he have at the end of wednesday?",
     "cot": "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After "
            "losing 2 more, he had 35 - 2 = 33 golf balls. So the answer is 33.",
     "short": "33"},
    {"question": "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "cot": "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has "
            "23 - 15 dollars left. 23 - 15 is 8. So the answer is 8.",
     "short": "8"},
)


@dataclass(frozen=True)
class GSM8KConfig:
    cot: bool = field(default=True, metadata={"help": "chain-of-thought exemplars (false: direct answers)"})
    shots: int = field(default=8, metadata={"help": "exemplars before the question (0-8)"})
    n: int = field(default=200, metadata={"help": "test questions sampled (0: all 1319)"})
    seed: int = field(default=42, metadata={"help": "seed of the sample of test questions"})
    max_tokens: int = field(default=512, metadata={"help": "new tokens at most"})
    plain_stop: tuple[str, ...] = field(default=("\n",), metadata={"help": "stop strings for plain prompts"})
    chat_stop: tuple[str, ...] = field(default=("\nQuestion:",), metadata={"help": "stop strings for chat"})
    extraction: str = field(default="flexible-extract", metadata={
        "help": "which extraction exact_match uses: flexible-extract (last number) or strict-match"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap confidence interval"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples (0: no interval)"})


EXTRACTIONS = ("flexible-extract", "strict-match")
_ANSWER_IS = re.compile(r"the answer is\s*:?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_ONLY_NUMBER = re.compile(r"\$?\s*(-?\d[\d,]*(?:\.\d+)?)\s*\.?")


def strict_answer(text: str, cot: bool) -> str | None:
    """The answer where it is written as the exemplars write it (``None`` otherwise).

    >>> strict_answer("5 + 4 = 9. So the answer is 9. Then 12.", cot=True)
    '9'
    >>> strict_answer("I think 12", cot=False), strict_answer(" 1,250.", cot=False)
    (None, '1250')
    """
    if cot:
        m = _ANSWER_IS.search(text)
    else:
        m = _ONLY_NUMBER.fullmatch(text.strip())
    return m.group(1).replace(",", "") if m else None


def gold_answer(answer: str) -> str:
    """The number after ``####`` in a GSM8K solution, commas removed."""
    if "####" not in answer:
        raise ValueError("no '####' in the answer")
    return answer.split("####")[-1].strip().replace(",", "")


@register_task
class GSM8K(Task):
    name = "gsm8k"
    version = "2"
    Config = GSM8KConfig
    primary_metric = "exact_match"
    data_dir = "gsm8k"

    def load(self, data_path: str | Path | None = None) -> TaskData:
        if not 0 <= self.config.shots <= len(EXEMPLARS):
            raise ConfigError(f"gsm8k: shots must be 0-{len(EXEMPLARS)}, got {self.config.shots}")
        if data_path is None:
            ds = hub_dataset("openai/gsm8k", "main", "test")
            rows = [(i, {"question": r["question"], "answer": r["answer"]}) for i, r in enumerate(ds)]
            key, fp = hub_source(ds, "openai/gsm8k", "main", "test")
            sources, where = {key: fp}, key
        else:
            path = find_test_file(Path(data_path))
            rows = [(i, obj) for i, (_, _, obj) in enumerate(read_records(path, "test"))]
            sources, where = {str(path.resolve()): sha256_file(path)}, str(path)
        items = []
        for i, obj in rows:
            try:
                gold = gold_answer(obj["answer"])
            except (KeyError, TypeError, ValueError) as e:
                raise RecordError("bad_item", f"cannot read question/answer: {e}", field="answer",
                                  file=where, line=i + 1) from None
            items.append(Item(f"test:{i}", {"question": obj["question"], "answer": obj["answer"], "gold": gold}))
        items, unsampled = sample_items(items, self.config.n, self.config.seed)
        return TaskData(items=items, sources=sources, unsampled=unsampled)

    def prefix(self) -> str:
        key = "cot" if self.config.cot else "short"
        blocks = [f"Question: {e['question']}\nAnswer: {e[key]}" for e in EXEMPLARS[: self.config.shots]]
        if not blocks:
            return "Answer the following question.\n\n"
        return "Answer the following questions.\n\n" + "\n\n".join(blocks) + "\n\n"

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        text = self.prefix() + "Question: " + item.data["question"].strip()
        return [cued_generation(text, "Answer:", ctx, max_tokens=self.config.max_tokens,
                                plain_stop=self.config.plain_stop, chat_stop=self.config.chat_stop)]

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        if self.config.extraction not in EXTRACTIONS:
            raise ConfigError(f"gsm8k: extraction must be one of {', '.join(EXTRACTIONS)}, "
                              f"got {self.config.extraction!r}")
        text = generated_text(results, "GSM8K")
        gold = item.data["gold"]
        flexible, strict = last_number(text), strict_answer(text, self.config.cot)
        by_name = {"flexible-extract": flexible, "strict-match": strict}
        extracted = by_name[self.config.extraction]
        return {"exact_match": float(numbers_equal(extracted, gold)), "extracted": extracted, "gold": gold,
                "flexible-extract": float(numbers_equal(flexible, gold)), "extracted_flexible": flexible,
                "strict-match": float(numbers_equal(strict, gold)), "extracted_strict": strict}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        em = [float(s["exact_match"]) for s in scores]
        out: dict[str, Any] = {"exact_match": accuracy(em), "exact_match_stderr": stderr(em), "n": len(em),
                               "no_number": sum(1 for s in scores if s["extracted"] is None),
                               "extraction_used": self.config.extraction}
        if scores and "strict-match" in scores[0]:  # predictions scored before the variants existed lack them
            out["extraction"] = {
                name: {"exact_match": accuracy([float(s[name]) for s in scores]),
                       "no_answer": sum(1 for s in scores if s[f"extracted_{key}"] is None)}
                for name, key in (("flexible-extract", "flexible"), ("strict-match", "strict"))}
        if self.config.bootstrap_resamples:
            lo, hi = bootstrap_ci(em, n_resamples=self.config.bootstrap_resamples, seed=self.config.bootstrap_seed)
            out["exact_match_ci95"] = [lo, hi]
        return out


register_preset("gsm8k_cot", "gsm8k", cot=True)
register_preset("gsm8k_direct", "gsm8k", cot=False)
