"""TydiQA GoldP: per-language seeded samples, prompts in each language's labels (with and without the
passage, plain and chat), passage truncation, SQuAD EM/F1 and the macro-average over languages."""

from __future__ import annotations

import json
import random

import pytest
from evalfakes import FakeBackend, text_oracle

import camels.evals.tasks.tydiqa  # noqa: F401  (registers tydiqa, tydiqa_goldp, tydiqa_closed_book)
from camels.core.errors import ConfigError, RecordError
from camels.core.requests import Generation, request_key_material
from camels.evals.cache import RequestCache
from camels.evals.metrics import squad_em, squad_f1, stratified_ci
from camels.evals.runner import run_task
from camels.evals.task import PRESETS, RequestContext, get_task
from camels.evals.tasks.tydiqa import LANGUAGES, cut_passage, language_of

EN_INSTR = "Answer the following question based on the information in the given passage."
EVEREST = "Mount Everest is Earth's highest mountain above sea level."
EIFFEL = ("The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was completed in 1889 and is "
          "330 metres tall.")
ALL_IDS = ["arabic--301-0", "arabic--302-0", "arabic--303-0", "english--201-0", "english--202-0",
           "english--203-0", "finnish--101-0", "finnish--102-0", "finnish--103-0", "finnish--104-0",
           "finnish--105-0"]


@pytest.fixture
def root(fixtures):
    return fixtures / "tydiqa"


def _gen(text):
    return [Generation(texts=(text,), finish_reasons=("stop",))]


def _by_id(items):
    return {it.id: it for it in items}


def _words(req):
    """A fake token counter: one token per whitespace word of every turn and the prefix, plus a BOS."""
    return 1 + sum(len(m.content.split()) for m in req.messages) + len(req.assistant_prefix.split())


def _run(task, answer, tmp_path, data, name, chat=False):
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        return run_task(task, FakeBackend(answer, fingerprint=name, chat=chat), tmp_path / name, model=name,
                        cache=cache, data_path=data)


def test_presets_defaults_and_languages():
    assert PRESETS["tydiqa_goldp"] == ("tydiqa", {"closed_book": False})
    assert PRESETS["tydiqa_closed_book"] == ("tydiqa", {"closed_book": True})
    cfg = get_task("tydiqa_goldp").config
    assert (cfg.closed_book, cfg.n, cfg.seed, cfg.shots, cfg.passage_tokens, cfg.max_tokens, cfg.plain_stop,
            cfg.chat_stop) == (False, 100, 42, 1, 512, 50, ("\n",), ("\n\n",))
    assert cfg.languages == ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")
    assert get_task("tydiqa_closed_book").config.closed_book is True
    assert [language_of(i) for i in ("finnish--6473-0", "english-1", "Arabic--2-0", "thai--1-0")] == [
        "fi", "en", "ar", None]
    assert LANGUAGES["fi"].answer == "Vastaus:" and LANGUAGES["ar"].passage == "المقطع:"
    with pytest.raises(ConfigError, match="unknown languages"):
        get_task("tydiqa_goldp", languages="en,xx").load(None)


def test_ids_and_per_language_sample(root):
    data = get_task("tydiqa_goldp", n=0).load(root)
    assert [i.id for i in data.items] == ALL_IDS  # languages in code order, questions in file order
    assert len(data.sources) == 2 and all(len(v) == 64 for v in data.sources.values())
    assert data.items[9].data == {"language": "fi", "question": "Kuka sävelsi Finlandian?",
                                  "answers": ["Jean Sibelius", "Sibelius"],
                                  "context": "Jean Sibelius oli suomalainen säveltäjä, joka sävelsi Finlandian "
                                             "vuonna 1899."}
    sample = get_task("tydiqa_goldp", n=2).load(root).items
    assert [i.id for i in sample] == ["arabic--303-0", "arabic--301-0", "english--201-0", "english--202-0",
                                      "finnish--102-0", "finnish--105-0"]
    # the study's rule: one random.Random(42) stream over the languages in name order, each drawing
    # sample(its questions in file order, n)
    stream = random.Random(42)
    expected = []
    for name in ("arabic", "english", "finnish"):
        expected += stream.sample([i for i in ALL_IDS if i.startswith(name)], 2)
    assert [i.id for i in sample] == expected
    # a language's sample does not depend on which languages are kept
    assert [i.id for i in get_task("tydiqa_goldp", n=2, languages="fi").load(root).items] == expected[4:]
    only = get_task("tydiqa_goldp", n=0, languages="fi,en").load(root)
    assert [i.id for i in only.items][:3] == ["finnish--101-0", "finnish--102-0", "finnish--103-0"]
    assert len(only.items) == 8 and only.skipped == {"other_language": 3}
    # the same folder is found from its parent too
    assert [i.id for i in get_task("tydiqa_goldp", n=0).load(root.parent / "tydiqa" / "goldp").items] == ALL_IDS


def test_goldp_prompt_plain_and_chat(root):
    task = get_task("tydiqa_goldp", n=0)
    items = _by_id(task.load(root).items)
    expected = (f"{EN_INSTR}\n\nPassage: {EVEREST}\nQuestion: What is Earth's highest mountain?\n"
                f"Answer: Mount Everest\n\nPassage: {EIFFEL}\nQuestion: When was the Eiffel Tower completed?")
    (plain,) = task.requests(items["english--201-0"])
    assert plain.messages[0].content == expected + "\nAnswer:"
    assert (plain.stop, plain.max_tokens, plain.temperature, plain.assistant_prefix) == (("\n",), 50, 0.0, "")
    (chat,) = task.requests(items["english--201-0"], RequestContext(chat=True))
    assert chat.messages[0].content == expected
    assert (chat.assistant_prefix, chat.stop) == ("Answer:", ("\n\n",))
    assert task.request_extra(items["english--201-0"], [plain]) == {"shots": 1}
    # Finnish: its own labels, its first train question as the shot
    fi = task.requests(items["finnish--104-0"])[0].messages[0].content
    assert fi == ("Vastaa seuraavaan kysymykseen annetun kappaleen tiedon perusteella.\n\n"
                  "Kappale: Turku on Suomen vanhin kaupunki.\nKysymys: Mikä on Suomen vanhin kaupunki?\n"
                  "Vastaus: Turku\n\nKappale: Jean Sibelius oli suomalainen säveltäjä, joka sävelsi Finlandian "
                  "vuonna 1899.\nKysymys: Kuka sävelsi Finlandian?\nVastaus:")
    zero = get_task("tydiqa_goldp", n=0, shots=0)
    zero.load(root)
    assert zero.requests(items["english--201-0"])[0].messages[0].content == (
        f"{EN_INSTR}\n\nPassage: {EIFFEL}\nQuestion: When was the Eiffel Tower completed?\nAnswer:")


def test_closed_book_prompt_plain_and_chat(root):
    task = get_task("tydiqa_closed_book", n=0)
    items = _by_id(task.load(root).items)
    ar = "أجب على السؤال التالي.\n\nالسؤال: ما هي عاصمة السعودية؟\nالإجابة: الرياض\n\nالسؤال: ما هي عاصمة مصر؟"
    (plain,) = task.requests(items["arabic--301-0"])
    assert plain.messages[0].content == ar + "\nالإجابة:" and plain.stop == ("\n",)
    (chat,) = task.requests(items["arabic--301-0"], RequestContext(chat=True))
    assert (chat.messages[0].content, chat.assistant_prefix) == (ar, "الإجابة:")
    en = task.requests(items["english--202-0"])[0].messages[0].content
    assert en == ("Answer the following question.\n\nQuestion: What is Earth's highest mountain?\n"
                  "Answer: Mount Everest\n\nQuestion: In which city is the Eiffel Tower?\nAnswer:")
    assert "Passage" not in en


def test_passage_truncation(root):
    ctx = RequestContext(count_tokens=_words)
    # 1 + words: the empty turn's BOS is subtracted, so a passage's tokens are its words
    assert cut_passage(EIFFEL, 5, ctx) == ("The Eiffel Tower is a", True)
    assert cut_passage(EIFFEL, 100, ctx) == (EIFFEL, False)
    assert cut_passage(EIFFEL, 0, ctx) == ("", True)
    double = RequestContext(count_tokens=lambda r: 2 * _words(r))  # two tokens a word: half the words fit
    assert cut_passage(EIFFEL, 5, double) == ("The Eiffel", True)
    assert cut_passage(EIFFEL, 6, double) == ("The Eiffel Tower", True)
    # no counter: the same limit in whitespace words; the original spacing of the kept part is kept
    assert cut_passage("one  two\nthree four", 3, RequestContext()) == ("one  two\nthree", True)
    assert cut_passage("one two", 3, RequestContext()) == ("one two", False)

    task = get_task("tydiqa_goldp", n=0, passage_tokens=4)
    items = _by_id(task.load(root).items)
    text = task.requests(items["english--201-0"], ctx)[0].messages[0].content
    assert text == (f"{EN_INSTR}\n\nPassage: Mount Everest is Earth's\nQuestion: What is Earth's highest "
                    "mountain?\nAnswer: Mount Everest\n\nPassage: The Eiffel Tower is\n"
                    "Question: When was the Eiffel Tower completed?\nAnswer:")
    # a context too short for the shot plus 50 new tokens: the shot is dropped
    short = RequestContext(count_tokens=_words, max_length=50 + 30)
    (req,) = task.requests(items["english--201-0"], short)
    assert req.messages[0].content == (f"{EN_INSTR}\n\nPassage: The Eiffel Tower is\n"
                                       "Question: When was the Eiffel Tower completed?\nAnswer:")
    assert task.request_extra(items["english--201-0"], [req]) == {"shots": 0}


def test_em_f1_hand_computed(root):
    # pred "eiffel tower in paris" vs gold "eiffel tower": P = 2/4, R = 1, F1 = 2/3
    assert squad_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    assert squad_em("The Eiffel Tower.", "Eiffel tower") == 1.0
    # Finnish: 3 of 4 predicted tokens in the 3-token gold: F1 = 2 * 0.75 * 1 / 1.75 = 6/7
    assert squad_f1("noin 660 000 ihmistä", "noin 660 000") == pytest.approx(6 / 7)
    # Arabic: "القاهرة مصر" vs "القاهرة": P = 1/2, R = 1, F1 = 2/3; ASCII "." is dropped, Arabic "،" is not
    assert squad_f1("القاهرة مصر", "القاهرة") == pytest.approx(2 / 3)
    assert squad_em("القاهرة.", "القاهرة") == 1.0 and squad_f1("القاهرة، مصر", "القاهرة") == 0.0

    task = get_task("tydiqa_goldp", n=0)
    items = _by_id(task.load(root).items)
    assert task.score(items["english--202-0"], _gen("  Paris, France\nIt is in Europe.")) == {
        "f1": 1.0, "em": 1.0, "answer": "Paris, France", "language": "en"}
    assert task.score(items["english--202-0"], _gen("\nin Paris")) == {
        "f1": pytest.approx(2 / 3), "em": 0.0, "answer": "in Paris", "language": "en"}
    s = task.score(items["finnish--104-0"], _gen("Sibelius sävelsi sen"))  # best over "Jean Sibelius", "Sibelius"
    assert (s["f1"], s["em"]) == (pytest.approx(0.5), 0.0)
    assert task.score(items["arabic--302-0"], _gen("النيل"))["f1"] == pytest.approx(2 / 3)
    assert task.score(items["arabic--302-0"], _gen(""))["f1"] == 0.0


@pytest.mark.parametrize(("preset", "chat"), [("tydiqa_goldp", False), ("tydiqa_closed_book", True)])
def test_oracle_wrong_and_macro_average(root, tmp_path, preset, chat):
    task = get_task(preset, n=0)
    items = task.load(root).items
    ctx = RequestContext(chat=chat)
    keys = {it.id: request_key_material(task.requests(it, ctx)[0]) for it in items}
    gold = {keys[it.id]: it.data["answers"][0] for it in items}
    m = _run(task, text_oracle(gold), tmp_path, root, "gold", chat=chat).metrics
    assert (m["f1"], m["em"], m["f1_micro"], m["n"], m["n_languages"]) == (1.0, 1.0, 1.0, 11, 3)
    assert m["f1_ci95"] == [1.0, 1.0] and m["em_ci95"] == [1.0, 1.0]
    assert m["per_language"] == {"ar": {"f1": 1.0, "em": 1.0, "n": 3}, "en": {"f1": 1.0, "em": 1.0, "n": 3},
                                 "fi": {"f1": 1.0, "em": 1.0, "n": 5}}
    wrong = {k: "xyzzy" for k in gold}
    m = _run(task, text_oracle(wrong), tmp_path, root, "wrong", chat=chat).metrics
    assert (m["f1"], m["em"], m["f1_ci95"]) == (0.0, 0.0, [0.0, 0.0])

    # English all right, Finnish 1 of 5 right, Arabic half right on one question (F1 2/3), else wrong
    right = {"english--201-0": "1889", "english--202-0": "Paris", "english--203-0": "330 metres",
             "finnish--101-0": "Helsinki", "arabic--302-0": "النيل"}
    mixed = {keys[it.id]: right.get(it.id, "xyzzy") for it in items}
    m = _run(task, text_oracle(mixed), tmp_path, root, "mixed", chat=chat).metrics
    assert m["per_language"]["ar"] == {"f1": pytest.approx(2 / 9), "em": 0.0, "n": 3}
    assert m["per_language"]["fi"] == {"f1": pytest.approx(0.2), "em": pytest.approx(0.2), "n": 5}
    assert m["f1"] == pytest.approx((1 + 0.2 + 2 / 9) / 3)
    assert m["em"] == pytest.approx((1 + 0.2 + 0) / 3)
    assert m["f1_micro"] == pytest.approx((4 + 2 / 3) / 11) and m["em_micro"] == pytest.approx(4 / 11)
    lo, hi = m["f1_ci95"]
    assert 0.0 <= lo < m["f1"] < hi <= 1.0
    # the interval redraws within languages: constant groups give the macro-average itself
    assert stratified_ci([[1.0, 1.0], [0.0, 0.0, 0.0]], n_resamples=50) == (0.5, 0.5)
    again = _run(task, text_oracle(mixed), tmp_path, root, "mixed-again", chat=chat).metrics
    assert again["f1_ci95"] == m["f1_ci95"]


def test_bad_files_are_named(tmp_path, root):
    with pytest.raises(ConfigError, match="no tydiqa-goldp-v1.1-dev.json"):
        get_task("tydiqa_goldp").load(tmp_path)
    dev = tmp_path / "tydiqa-goldp-v1.1-dev.json"
    qa = {"id": "klingon--1-0", "question": "q", "answers": [{"text": "a", "answer_start": 0}]}
    dev.write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [qa]}]}]}))
    with pytest.raises(RecordError, match=r"tydiqa-goldp-v1.1-dev.json.*klingon--1-0"):
        get_task("tydiqa_goldp").load(tmp_path)
    qa.update(id="english--1-0", answers=[])
    dev.write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [qa]}]}]}))
    with pytest.raises(RecordError, match=r"data\[0\].paragraphs\[0\].qas\[0\].*no text answers"):
        get_task("tydiqa_goldp").load(tmp_path)
    dev.write_text(json.dumps({"data": [{"no_paragraphs": []}]}))
    with pytest.raises(RecordError, match="not SQuAD format"):
        get_task("tydiqa_goldp").load(tmp_path)
    qa.update(answers=[{"text": "a", "answer_start": 0}])
    dev.write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [qa]}]}]}))
    with pytest.raises(ConfigError, match="no tydiqa-goldp-v1.1-train.json"):
        get_task("tydiqa_goldp").load(tmp_path)
    assert [i.id for i in get_task("tydiqa_goldp", shots=0).load(tmp_path).items] == ["english--1-0"]
    (tmp_path / "tydiqa-goldp-v1.1-train.json").write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "c", "qas": [{"id": "finnish--9-0", "question": "q", "answers": [{"text": "c"}]}]}]}]}))
    with pytest.raises(ConfigError, match="no english question"):
        get_task("tydiqa_goldp").load(tmp_path)
