"""BBH: per-subtask seeded samples, the official prompt text, plain and chat prompts, extraction, metrics."""

from __future__ import annotations

import json
import random

import pytest
from evalfakes import FakeBackend, text_oracle

import camels.evals.tasks.bbh  # noqa: F401  (registers bbh, bbh_cot, bbh_direct)
from camels.core.errors import ConfigError, RecordError
from camels.core.requests import Generation, request_key_material
from camels.evals.cache import RequestCache
from camels.evals.runner import run_task
from camels.evals.task import PRESETS, RequestContext, get_task
from camels.evals.tasks.bbh import answers_match, extract_answer, parse_prompt

SPORTS_HEAD = (
    "Determine whether an artificially constructed sentence relating to sports is plausible or not.\n\n"
    "Q: Is the following sentence plausible? \"Bam Adebayo scored a reverse layup in the Western Conference "
    "Finals.\"\n"
    "A: Let's think step by step. Bam Adebayo is an American basketball player. Scoring a reverse layup in the "
    "Western Conference Finals is part of the NBA Finals. So the answer is yes.\n\n"
    "Q: Is the following sentence plausible? \"Santi Cazorla scored a touchdown.\"\n"
)


@pytest.fixture(scope="module")
def bbh_root(realdata):
    return realdata / "bbh"


def _gen(text):
    return [Generation(texts=(text,), finish_reasons=("stop",))]


def _run(task, answer, tmp_path, data, name, chat=False):
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        return run_task(task, FakeBackend(answer, fingerprint=name, chat=chat), tmp_path / name, model=name,
                        cache=cache, data_path=data)


def test_presets_and_defaults():
    assert PRESETS["bbh_cot"] == ("bbh", {"cot": True})
    assert PRESETS["bbh_direct"] == ("bbh", {"cot": False})
    cfg = get_task("bbh_direct").config
    assert (cfg.cot, cfg.n, cfg.seed, cfg.max_tokens, cfg.plain_stop, cfg.chat_stop) == (
        False, 40, 42, 512, ("\n\n",), ("\n\nQ:",))
    with pytest.raises(ConfigError, match="not on the hub"):
        get_task("bbh_cot").load(None)


def test_fixture_ids_prompts_and_stops(fixtures):
    task = get_task("bbh_cot", n=0)
    data = task.load(fixtures / "bbh")
    assert [i.id for i in data.items] == ["close_brackets:0", "close_brackets:1", "close_brackets:2",
                                          "color_pick:0", "color_pick:1", "color_pick:2", "color_pick:3",
                                          "color_pick:4"]
    assert len(data.sources) == 4 and all(len(v) == 64 for v in data.sources.values())
    # the same folder is found from its parent, itself, or its bbh/ subfolder
    assert [i.id for i in get_task("bbh_cot", n=0).load(fixtures / "bbh" / "bbh").items] == \
           [i.id for i in data.items]
    item = data.items[3]
    (plain,) = task.requests(item)
    expected = (
        "Pick the color that fits the question.\n\n"
        "Q: Which color is a banana?\nOptions:\n(A) yellow\n(B) blue\n"
        "A: Let's think step by step. Bananas are yellow when ripe. So the answer is (A).\n\n"
        "Q: Which color is the night sky?\nOptions:\n(A) white\n(B) black\n"
        "A: Let's think step by step. At night the sky is dark.\nDark means black. So the answer is (B).\n\n"
        "Q: Which color is the sky on a clear day?\nOptions:\n(A) green\n(B) blue"
    )
    assert plain.messages[0].content == expected + "\nA:"
    assert (plain.stop, plain.max_tokens, plain.temperature, plain.assistant_prefix) == (("\n\n",), 512, 0.0, "")
    (chat,) = task.requests(item, RequestContext(chat=True))
    assert chat.messages[0].content == expected
    assert (chat.assistant_prefix, chat.stop) == ("A:", ("\n\nQ:",))

    direct = get_task("bbh_direct", n=0)
    direct.load(fixtures / "bbh")
    assert direct.requests(item)[0].messages[0].content == (
        "Pick the color that fits the question.\n\n"
        "Q: Which color is a banana?\nOptions:\n(A) yellow\n(B) blue\nA: (A)\n\n"
        "Q: Which color is the night sky?\nOptions:\n(A) white\n(B) black\nA: (B)\n\n"
        "Q: Which color is the sky on a clear day?\nOptions:\n(A) green\n(B) blue\nA:"
    )
    brackets = direct.requests(data.items[0])[0].messages[0].content
    assert "\nA: } )\n\n" in brackets and "\nA: ] ]\n\n" in brackets

    sub = get_task("bbh_cot", n=2, subtasks="color_pick").load(fixtures / "bbh").items
    assert [i.id for i in sub] == [f"color_pick:{k}" for k in random.Random(42).sample(range(5), 2)]
    with pytest.raises(ConfigError, match="nope"):
        get_task("bbh_cot", subtasks="nope").load(fixtures / "bbh")


def test_extraction_on_tricky_outputs():
    assert extract_answer("Let's think step by step. So the answer is (B).") == "(B)"
    assert extract_answer("The answer is (A). Wait, no: the answer is (C).") == "(C)"
    assert extract_answer("THE ANSWER IS Yes.") == "Yes"
    assert extract_answer("So the answer is (B). Because the sky is blue.") == "(B)"
    assert extract_answer("So the answer is 3.5.") == "3.5"
    assert extract_answer("So the answer is -219.\nQ: next question") == "-219"
    assert extract_answer("So the answer is ] ) }.") == "] ) }"
    assert extract_answer("  (A).  ") == "(A)"  # no phrase: the raw output, trailing period removed
    assert extract_answer("no idea") == "no idea"
    assert extract_answer("") == ""
    assert answers_match("(b)", "(B)") and answers_match("B", "(B)") and answers_match("yes", "Yes")
    assert answers_match("Monsters Inc", "Monsters, Inc") and answers_match("-219", "-219")
    assert not answers_match("(C)", "(B)") and not answers_match("219", "-219")
    assert answers_match("-219", "-219") and answers_match("Well-known", "wellknown")
    # punctuation-only targets keep their punctuation; whitespace does not count
    assert answers_match("])}", "] ) }") and answers_match("] )  }", "] ) }")
    assert not answers_match(") ]", "] )") and not answers_match("", "] )")


def test_scores_and_macro_average_on_the_fixture(fixtures, tmp_path):
    task = get_task("bbh_cot", n=0)
    items = task.load(fixtures / "bbh").items
    assert task.score(items[3], _gen("The sky is blue. So the answer is (b).")) == {
        "exact_match": 1.0, "extracted": "(b)", "gold": "(B)", "phrase": True}
    assert task.score(items[7], _gen("No.")) == {"exact_match": 1.0, "extracted": "No", "gold": "No",
                                                 "phrase": False}
    assert task.score(items[0], _gen("So the answer is ) ]."))["exact_match"] == 0.0

    # right on close_brackets 0 and 1 (2 of 3), right on color_pick 0 only (1 of 5)
    right = {"close_brackets:0": "So the answer is ] ).", "close_brackets:1": "the answer is ) }",
             "color_pick:0": "So the answer is (B)."}
    answers = {request_key_material(task.requests(it)[0]): right.get(it.id, "So the answer is (Z).")
               for it in items}
    m = _run(task, text_oracle(answers), tmp_path, fixtures / "bbh", "mixed").metrics
    assert m["per_task"] == {"close_brackets": pytest.approx(2 / 3), "color_pick": 0.2}
    assert m["exact_match"] == pytest.approx((2 / 3 + 0.2) / 2)
    assert m["exact_match_micro"] == pytest.approx(3 / 8)
    assert (m["n"], m["n_tasks"], m["no_answer_phrase"]) == (8, 2, 0)
    lo, hi = m["exact_match_ci95"]
    assert 0.0 <= lo < m["exact_match"] < hi <= 1.0
    again = _run(task, text_oracle(answers), tmp_path, fixtures / "bbh", "mixed-again").metrics
    assert again["exact_match_ci95"] == m["exact_match_ci95"]


def test_bad_files_are_named(tmp_path, fixtures):
    (tmp_path / "bbh").mkdir()
    (tmp_path / "cot-prompts").mkdir()
    (tmp_path / "cot-prompts" / "t.txt").write_text((fixtures / "bbh" / "cot-prompts" / "color_pick.txt")
                                                    .read_text())
    (tmp_path / "bbh" / "t.json").write_text(json.dumps({"examples": [{"input": "q", "target": "a"},
                                                                      {"input": "q2"}]}))
    with pytest.raises(RecordError, match=r"t.json: examples\[1\]: example 1 needs"):
        get_task("bbh_cot").load(tmp_path)
    (tmp_path / "bbh" / "t.json").write_text(json.dumps({"examples": [{"input": "q", "target": "a"}]}))
    (tmp_path / "cot-prompts" / "t.txt").write_text("header\n-----\nDo it.\n\nQ: x\nA: y without the phrase")
    with pytest.raises(RecordError, match=r"t.txt: prompt: exemplar 1 has no 'So the answer is'"):
        get_task("bbh_cot").load(tmp_path)


@pytest.mark.realdata
def test_real_samples_are_seeded_per_subtask(bbh_root):
    items = get_task("bbh_cot").load(bbh_root).items
    subtasks = sorted(p.stem for p in (bbh_root / "bbh").glob("*.json"))
    assert len(subtasks) == 18 and len(items) == 18 * 40
    sports = [i.id for i in items if i.data["task"] == "sports_understanding"]
    assert sports[:5] == ["sports_understanding:163", "sports_understanding:28", "sports_understanding:6",
                          "sports_understanding:189", "sports_understanding:70"]
    for sub in subtasks:
        examples = json.loads((bbh_root / "bbh" / f"{sub}.json").read_text(encoding="utf-8"))["examples"]
        got = [it for it in items if it.data["task"] == sub]
        # the documented rule: a fresh random.Random(42).sample of 40 per subtask, in sampled order
        assert [int(it.id.split(":")[1]) for it in got] == random.Random(42).sample(range(len(examples)), 40)
        assert all(it.data["input"] == examples[int(it.id.split(":")[1])]["input"] for it in got)
    every = get_task("bbh_cot", n=0).load(bbh_root).items
    assert len(every) == 250 * 16 + 187 + 178
    assert every[0].id == "boolean_expressions:0" and every[-1].id == "web_of_lies:249"


@pytest.mark.realdata
def test_real_prompt_text(bbh_root):
    task = get_task("bbh_cot")
    items = task.load(bbh_root).items
    item = next(i for i in items if i.id == "sports_understanding:163")
    text = task.requests(item)[0].messages[0].content
    assert text.startswith(SPORTS_HEAD)
    assert text.endswith("So the answer is yes.\n\nQ: " + item.data["input"] + "\nA:")
    assert text.count("\nA: Let's think step by step.") == 3 and "canary" not in text
    # the CoT prefix is the official file below its header, byte for byte, for every subtask
    for path in sorted((bbh_root / "cot-prompts").glob("*.txt")):
        body = path.read_text(encoding="utf-8").split("\n-----\n", 1)[1]
        assert task.prefix(path.stem) == body.strip() + "\n\n"
        # no exemplar answer holds a blank line, so the plain stop "\n\n" never cuts a well-formed answer
        assert all("\n\n" not in e.cot for e in parse_prompt(path.read_text(encoding="utf-8")).exemplars)
        assert [e.short for e in parse_prompt(path.read_text(encoding="utf-8")).exemplars] == [
            b.rsplit("So the answer is", 1)[1].strip().removesuffix(".") for b in body.split("\n\nQ: ")[1:]]
    direct = get_task("bbh_direct")
    direct.load(bbh_root)
    dtext = direct.requests(item)[0].messages[0].content
    assert dtext == (
        "Determine whether an artificially constructed sentence relating to sports is plausible or not.\n\n"
        "Q: Is the following sentence plausible? \"Bam Adebayo scored a reverse layup in the Western "
        "Conference Finals.\"\nA: yes\n\n"
        "Q: Is the following sentence plausible? \"Santi Cazorla scored a touchdown.\"\nA: no\n\n"
        "Q: Is the following sentence plausible? \"DeMar DeRozan was called for the goal tend.\"\nA: yes\n\n"
        "Q: " + item.data["input"] + "\nA:")


@pytest.mark.realdata
def test_gold_oracle_scores_one_and_a_wrong_one_zero(bbh_root, tmp_path):
    for preset, chat in (("bbh_cot", False), ("bbh_direct", True)):
        task = get_task(preset)
        items = task.load(bbh_root).items
        ctx = RequestContext(chat=chat)
        gold = {request_key_material(task.requests(it, ctx)[0]): f"Step by step. So the answer is "
                f"{it.data['target']}." for it in items}
        m = _run(task, text_oracle(gold), tmp_path, bbh_root, f"{preset}-gold", chat=chat).metrics
        assert (m["exact_match"], m["exact_match_micro"], m["n"], m["n_tasks"]) == (1.0, 1.0, 720, 18)
        assert m["exact_match_ci95"] == [1.0, 1.0] and set(m["per_task"].values()) == {1.0}
    raw = {request_key_material(task.requests(it, ctx)[0]): it.data["target"] for it in items}
    m = _run(task, text_oracle(raw), tmp_path, bbh_root, "raw-gold", chat=True).metrics
    assert m["exact_match"] == 1.0 and m["no_answer_phrase"] == 720
    wrong = {k: f"So the answer is {v}{v}." for k, v in raw.items()}
    m = _run(task, text_oracle(wrong), tmp_path, bbh_root, "wrong", chat=True).metrics
    assert m["exact_match"] == 0.0 and m["exact_match_ci95"] == [0.0, 0.0]
