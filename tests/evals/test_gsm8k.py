"""GSM8K: the seeded 200-question sample, prompt text, stops for plain and chat prompts, oracles."""

from __future__ import annotations

import json
import random

import pytest
from evalfakes import FakeBackend, text_oracle

from camels.core.errors import ConfigError, RecordError
from camels.core.requests import Generation, request_key_material
from camels.evals.cache import RequestCache
from camels.evals.runner import run_task
from camels.evals.task import RequestContext, get_task
from camels.evals.tasks.gsm8k import EXEMPLARS, gold_answer

FIRST_BLOCK = (
    "Answer the following questions.\n\n"
    "Question: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they "
    "are done, there will be 21 trees. How many trees did the grove workers plant today?\n"
    "Answer: There are 15 trees originally. Then there were 21 trees after some more were planted. So there "
    "must have been 21 - 15 = 6. So the answer is 6.\n\n"
    "Question: If there are 3 cars in the parking lot"
)


@pytest.fixture(scope="module")
def gsm_root(realdata):
    return realdata / "gsm8k"


@pytest.mark.realdata
def test_sample_of_200_with_seed_42_is_stable(gsm_root):
    items = get_task("gsm8k_cot").load(gsm_root).items
    assert len(items) == 200
    assert [i.id for i in items[:8]] == ["test:1309", "test:228", "test:51", "test:563", "test:501",
                                         "test:457", "test:285", "test:209"]
    # the documented rule: random.Random(42).sample over the 1319 test rows, in sampled order
    expected = random.Random(42).sample(range(1319), 200)
    assert [int(i.id.split(":")[1]) for i in items] == expected
    lines = (gsm_root / "grade_school_math" / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert items[0].data["question"] == json.loads(lines[1309])["question"]
    assert items[0].data["gold"] == gold_answer(json.loads(lines[1309])["answer"])
    every = get_task("gsm8k_cot", n=0).load(gsm_root).items
    assert len(every) == 1319 and every[0].id == "test:0" and every[-1].id == "test:1318"


@pytest.mark.realdata
def test_prompts_for_plain_and_chat_models(gsm_root):
    task = get_task("gsm8k_cot")
    item = task.load(gsm_root).items[0]
    (plain,) = task.requests(item)
    text = plain.messages[0].content
    assert text.startswith(FIRST_BLOCK)
    assert text.count("\nAnswer: ") == 8 and text.count("So the answer is") == 8
    assert text.endswith("\n\nQuestion: " + item.data["question"].strip() + "\nAnswer:")
    assert (plain.stop, plain.max_tokens, plain.temperature, plain.assistant_prefix) == (("\n",), 512, 0.0, "")

    (chat,) = task.requests(item, RequestContext(chat=True))
    assert chat.messages[0].content == text[: -len("\nAnswer:")]
    assert (chat.assistant_prefix, chat.stop) == ("Answer:", ("\nQuestion:",))

    direct = get_task("gsm8k_direct").requests(item)[0].messages[0].content
    assert "Question: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n" \
           "Answer: 8\n\n" in direct
    assert "So the answer is" not in direct
    assert [e["short"] for e in EXEMPLARS] == ["6", "5", "39", "8", "9", "29", "33", "8"]
    assert all(e["cot"].endswith(f"So the answer is {e['short']}.") for e in EXEMPLARS)
    zero = get_task("gsm8k_cot", shots=0).requests(item)[0].messages[0].content
    assert zero == "Answer the following question.\n\nQuestion: " + item.data["question"].strip() + "\nAnswer:"


def _run(task, answer, tmp_path, data, name):
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        return run_task(task, FakeBackend(answer, fingerprint=name), tmp_path / name, model=name, cache=cache,
                        data_path=data)


@pytest.mark.realdata
def test_gold_oracle_scores_one_and_a_wrong_one_zero(gsm_root, tmp_path):
    for preset in ("gsm8k_cot", "gsm8k_direct"):
        task = get_task(preset)
        items = task.load(gsm_root).items
        # the gold solution text itself ("... #### 18"): its last number is the gold answer
        gold = {request_key_material(task.requests(it)[0]): it.data["answer"] for it in items}
        result = _run(task, text_oracle(gold), tmp_path, gsm_root, f"{preset}-gold")
        assert result.metrics["exact_match"] == 1.0 and result.metrics["n"] == 200
        assert result.metrics["exact_match_ci95"] == [1.0, 1.0] and result.metrics["no_number"] == 0
    off_by_one = {k: f"The answer is {int(float(v.split('####')[-1].replace(',', ''))) + 1}" for k, v in gold.items()}
    wrong = _run(get_task("gsm8k_direct"), text_oracle(off_by_one), tmp_path, gsm_root, "wrong")
    assert wrong.metrics["exact_match"] == 0.0


def test_scoring_extracts_the_last_number(fixtures):
    task = get_task("gsm8k_cot", n=0)
    items = task.load(fixtures / "evals" / "gsm8k").items
    assert [i.data["gold"] for i in items] == ["7", "60", "1250", "180", "5", "21", "4", "90", "8", "-3"]

    def score(i, text):
        return task.score(items[i], [Generation(texts=(text,), finish_reasons=("stop",))])

    assert score(0, "3 + 4 = 7. So the answer is 7.") == {
        "exact_match": 1.0, "extracted": "7", "gold": "7", "flexible-extract": 1.0, "extracted_flexible": "7",
        "strict-match": 1.0, "extracted_strict": "7"}
    assert score(2, "1,500 - 250 = 1,250")["exact_match"] == 1.0
    assert score(9, "5 - 8 = -3 degrees")["exact_match"] == 1.0
    assert score(9, "It is 3 degrees")["exact_match"] == 0.0
    assert score(1, "12 * 5 = 60.0")["exact_match"] == 1.0
    assert score(1, "no idea")["exact_match"] == 0.0 and score(1, "no idea")["extracted"] is None


def test_strict_and_flexible_extraction(fixtures):
    """Both named extractions per item and in the metrics; ``extraction`` picks the headline one."""
    data = get_task("gsm8k_cot", n=0).load(fixtures / "evals" / "gsm8k")
    outputs = {0: "3 + 4 = 7. So the answer is 7.",  # both find 7
               1: "The answer is 60, or maybe 61",  # strict 60 (right), flexible 61 (wrong)
               2: "1,500 - 250 = 1,250",  # no answer phrase: strict finds nothing, flexible 1250
               9: "So the answer is $-3."}  # both -3
    for extraction, headline in (("flexible-extract", 0.75), ("strict-match", 0.75)):
        task = get_task("gsm8k_cot", n=0, extraction=extraction)
        items = [it for it in data.items if int(it.id.split(":")[1]) in outputs]
        scores = [task.score(it, [Generation(texts=(outputs[int(it.id.split(":")[1])],), finish_reasons=("stop",))])
                  for it in items]
        assert [(s["extracted_strict"], s["extracted_flexible"]) for s in scores] == [
            ("7", "7"), ("60", "61"), (None, "1250"), ("-3", "-3")]
        m = task.aggregate(items, scores)
        assert m["extraction"] == {"flexible-extract": {"exact_match": 0.75, "no_answer": 0},
                                   "strict-match": {"exact_match": 0.75, "no_answer": 1}}
        assert m["exact_match"] == headline and m["extraction_used"] == extraction
        assert [s["exact_match"] for s in scores] == [s[extraction] for s in scores]
    direct = get_task("gsm8k_direct", n=0)
    item = data.items[1]
    assert direct.score(item, [Generation(texts=(" 60.",), finish_reasons=("stop",))])["strict-match"] == 1.0
    assert direct.score(item, [Generation(texts=("60 apples",), finish_reasons=("stop",))])["strict-match"] == 0.0
    with pytest.raises(ConfigError, match="extraction must be one of"):
        get_task("gsm8k_cot", extraction="loose").score(item, [Generation(texts=("1",), finish_reasons=("stop",))])


def test_bad_answer_line_is_named(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"question": "q", "answer": "x\\n#### 1"}\n{"question": "q2", "answer": "no marker"}\n')
    with pytest.raises(RecordError, match=r"test.jsonl:2: answer: cannot read"):
        get_task("gsm8k_cot", n=0).load(tmp_path)
