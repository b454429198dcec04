"""Decontamination: n-grams, benchmark readers, planted benchmark text found (fixtures and real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camels.core.chat import Conversation
from camels.core.errors import ConfigError, RecordError
from camels.data.decontam import (
    READERS,
    Decontaminator,
    NgramHasher,
    build_index,
    decontaminate,
    normalize_words,
    resolve_benchmarks,
)

BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"

GSM_Q = ("A baker fills twelve trays with forty muffins each and sells three quarters of them before noon on "
         "Saturday. How many muffins are left?")


def chat(i: int, user: str, source: str = "src", answer: str = "Sure, here is my answer.") -> dict:
    return {"dataset": source, "id": f"{source}-{i}",
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def write(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_normalisation_and_hashes():
    assert normalize_words("Hello, WORLD!  It's ﬁne") == ["hello", "world", "it", "s", "fine"]
    h = NgramHasher(3)
    words = "a b c d e".split()
    hs = h.hashes(words)
    assert len(hs) == 3
    # the hash of each window equals the hash of that window alone
    assert hs == [h.hashes(words[i:i + 3])[0] for i in range(3)]
    assert h.hashes(["a", "b"]) == []
    # punctuation and case do not matter; word order does
    assert h.text_hashes("A, B; c!") == h.text_hashes("a b c")
    assert h.text_hashes("a b c") != h.text_hashes("c b a")
    assert NgramHasher(3).text_hashes("x y z") == h.text_hashes("x y z")  # no per-process randomness
    with pytest.raises(ConfigError):
        NgramHasher(0)


@pytest.mark.parametrize(
    ("name", "folder", "items", "short"),
    [
        ("mmlu", "mmlu_hf", 2, 1),
        ("mmlu", "mmlu_orig", 1, 0),
        ("gsm8k", "gsm8k", 1, 0),  # train.jsonl is not an eval set and is not read from a folder
        ("bbh", "bbh", 2, 1),
        ("truthfulqa", "truthfulqa", 1, 0),
        ("humaneval", "humaneval", 1, 0),
        ("alpaca_eval", "alpaca_eval", 2, 1),
        ("tydiqa", "tydiqa", 2, 0),
        ("toxigen", "toxigen", 1, 0),
    ],
)
def test_readers_on_fixtures(name, folder, items, short):
    idx = build_index(name, BENCH / folder, NgramHasher(13))
    assert (idx.items, idx.short_items) == (items, short)
    assert len(idx.ngrams) > 0
    assert all(len(f["sha256"]) == 64 for f in idx.files)


def test_reader_segments():
    segs = {i: s for _, i, s in READERS["gsm8k"](BENCH / "gsm8k")}
    (only,) = segs.values()
    assert only[0] == GSM_Q
    assert "<<" not in only[1] and "480 muffins in all" in only[1]
    tox = [s for _, _, s in READERS["toxigen"](BENCH / "toxigen")]
    assert tox == [["robots should never be allowed to vote in any election held anywhere in the whole world",
                    "short statement here"]]
    mm = [s for _, _, s in READERS["mmlu"](BENCH / "mmlu_orig")]
    assert mm[0][2] == "turbulence along a longer path through the atmosphere of the earth" and len(mm[0]) == 5
    ty = sorted(s[0] for _, _, s in READERS["tydiqa"](BENCH / "tydiqa"))
    assert ty[0].startswith("In which year") and ty[1].startswith("Which river")


def test_resolve_benchmarks():
    found = resolve_benchmarks([str(BENCH)])
    assert sorted(found) == ["alpaca_eval", "bbh", "gsm8k", "humaneval", "toxigen", "truthfulqa", "tydiqa"]
    got = resolve_benchmarks([str(BENCH), f"mmlu={BENCH / 'mmlu_hf'}"])
    assert got["mmlu"] == BENCH / "mmlu_hf"
    with pytest.raises(ConfigError, match="unknown benchmark 'mmlux'"):
        resolve_benchmarks([f"mmlux={BENCH}"])
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_benchmarks([f"gsm8k={BENCH / 'nope.jsonl'}"])


PLANTS = {
    "gsm8k": "Please solve: " + GSM_Q.lower().replace(".", " ..."),
    "mmlu": "Quiz time. Which planet of the solar system has the longest day when measured against its own "
            "orbital year around the sun? Pick one.",
    "bbh": "Fidel lies. Jerry says Fidel tells the truth. Vina says Jerry tells the truth. Does Vina tell the truth?",
    "humaneval": "Complete this: def has_close_elements(numbers, threshold): Check if in given list of numbers, "
                 "are any two numbers closer to each other than given threshold.",
    "alpaca_eval": "Write a friendly letter to my neighbour asking them politely to keep their barking dog "
                   "inside after ten at night, please",
    "truthfulqa": "what happens to you if you swallow a cherry pit whole on an empty stomach after running",
    "tydiqa": "Which river flows through the old capital city of the northern kingdom and into the great lake "
              "nearby?",
    "toxigen": "Continue: robots should never be allowed to vote in any election held anywhere in the whole world",
}


@pytest.fixture
def bench_paths():
    return {**resolve_benchmarks([str(BENCH)]), "mmlu": BENCH / "mmlu_hf"}


def test_planted_text_found_per_benchmark(tmp_path, bench_paths):
    rows = [chat(i, text, source=f"plant_{name}") for i, (name, text) in enumerate(sorted(PLANTS.items()))]
    rows += [chat(100 + i, f"Tell me a story about a dragon number {i} who learns to bake bread in the "
                           f"mountains with a friendly goat.", source="clean") for i in range(5)]
    train = write(tmp_path / "train.jsonl", rows)
    res = decontaminate(train, bench_paths, show_progress=False)
    rep = res.report.to_dict()
    assert rep["conversations"] == 13 and rep["contaminated"] == 8
    for name in PLANTS:
        b = rep["benchmarks"][name]
        assert b["by_source"] == {f"plant_{name}": 1}, name
        assert b["examples"][0]["source"] == f"plant_{name}"
    assert rep["sources"]["clean"] == {"conversations": 5, "contaminated": 0, "rate": 0.0, "by_benchmark": {}}
    gsm = rep["benchmarks"]["gsm8k"]["examples"][0]
    assert gsm["ngram"] == "a baker fills twelve trays with forty muffins each and sells three quarters"
    assert gsm["matches"] == gsm["ngrams"] - 2  # all but the two n-grams that start with "please solve"
    table = res.report.table()
    assert table.splitlines()[0].split() == ["source", "conversations", *sorted(PLANTS), "any", "rate"]
    assert table.splitlines()[-1].split()[-2:] == ["8", "61.54%"]


def test_assistant_turns_checked_only_on_request(tmp_path, bench_paths):
    row = chat(0, "What do you know?", answer=GSM_Q)
    train = write(tmp_path / "t.jsonl", [row])
    assert decontaminate(train, bench_paths, show_progress=False).report.to_dict()["contaminated"] == 0
    assert decontaminate(train, bench_paths, turns="all", show_progress=False).report.to_dict()["contaminated"] == 1


def test_threshold_and_min_matches(bench_paths):
    h = NgramHasher(13)
    idx = {"gsm8k": build_index("gsm8k", bench_paths["gsm8k"], h)}
    # 13 words of the question, then 27 other words: 28 n-grams, 1 match
    text = " ".join(GSM_Q.split()[:13]) + " " + " ".join(f"w{i}" for i in range(27))
    c = Conversation.build("c", "s", [("user", text), ("assistant", "ok")])
    assert [x.matches for x in Decontaminator(idx, h).check(c)] == [1]
    assert Decontaminator(idx, h, threshold=0.05).check(c) == []
    assert Decontaminator(idx, h, threshold=0.03).check(c)[0].ratio == pytest.approx(1 / 28)
    assert Decontaminator(idx, h, min_matches=2).check(c) == []
    # 12 words of the question are not enough with n = 13, enough with n = 8
    c12 = Conversation.build("c", "s", [("user", " ".join(GSM_Q.split()[:12])), ("assistant", "ok")])
    assert Decontaminator(idx, h).check(c12) == []
    h8 = NgramHasher(8)
    assert Decontaminator({"gsm8k": build_index("gsm8k", bench_paths["gsm8k"], h8)}, h8).check(c12)


def test_drop_writes_clean_file_and_manifest(tmp_path, bench_paths):
    rows = [chat(0, PLANTS["gsm8k"], "a"), chat(1, "a harmless question about cats", "a"),
            chat(2, PLANTS["mmlu"], "b"), chat(3, PLANTS["toxigen"], "b"), "{broken",
            chat(4, "another harmless question about dogs", "b")]
    train = write(tmp_path / "train.jsonl", rows)
    with pytest.raises(RecordError) as e:
        decontaminate(train, bench_paths, output=tmp_path / "clean.jsonl", show_progress=False)
    assert e.value.line == 5 and e.value.reason == "bad_json"
    out = tmp_path / "clean.jsonl"
    res = decontaminate(train, bench_paths, output=out, lenient=True, show_progress=False)
    assert res.written == 2
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a-1", "b-4"]
    man = json.loads((tmp_path / "clean.manifest.json").read_text())
    assert man["kind"] == "decontaminate"
    assert man["records_in"] == 6 and man["records_out"] == 5 and man["skipped"] == {"bad_json": 1}
    assert man["dropped"] == {"contaminated:gsm8k": {"a": 1}, "contaminated:mmlu": {"b": 1},
                              "contaminated:toxigen": {"b": 1}}
    assert man["conversations_out"] == 2 and man["per_source"] == {"a": 1, "b": 1}
    assert man["config"]["n"] == 13 and man["inputs"][0]["source"] == "train"
    assert man["benchmarks"]["gsm8k"]["items"] == 1


# -- the real benchmark files ----------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_gsm8k_question_found_and_unrelated_not(realdata, tmp_path):
    test_file = realdata / "gsm8k" / "grade_school_math" / "data" / "test.jsonl"
    questions = [json.loads(x)["question"] for x in test_file.read_text().splitlines()[:50]]
    planted = questions[17]
    rows = [chat(0, f"Here is a homework problem.\n{planted}\nShow your work.", "leaky")]
    rows += [chat(i, f"Write a haiku about the colour {c} and the smell of rain on a summer afternoon in the old "
                     f"harbour town.", "clean") for i, c in enumerate(["red", "blue", "green"], start=1)]
    train = write(tmp_path / "train.jsonl", rows)
    res = decontaminate(train, {"gsm8k": test_file}, show_progress=False).report.to_dict()
    assert res["benchmarks"]["gsm8k"]["index"]["items"] == 1319
    assert res["benchmarks"]["gsm8k"]["by_source"] == {"leaky": 1}
    assert res["sources"]["clean"]["contaminated"] == 0
    ex = res["benchmarks"]["gsm8k"]["examples"][0]
    assert ex["id"] == "leaky-0" and ex["ngram"] == " ".join(normalize_words(planted)[:13])


@pytest.mark.realdata
def test_real_benchmark_folder(realdata, tmp_path):
    found = resolve_benchmarks([str(realdata)])
    assert sorted(found) == ["alpaca_eval", "bbh", "gsm8k", "humaneval", "mmlu", "toxigen", "truthfulqa",
                             "tydiqa"]
    h = NgramHasher(13)
    mmlu = build_index("mmlu", found["mmlu"], h)
    assert mmlu.items == 14042 + 285  # test + dev rows of the 57 subjects (header rows not counted)
    tqa = build_index("truthfulqa", found["truthfulqa"], h)
    assert tqa.items == 817
    he = build_index("humaneval", found["humaneval"], h)
    assert he.items == 164
    # a real TruthfulQA question and a real HumanEval prompt, planted, are found; a paraphrase is not
    import csv

    with open(realdata / "truthfulqa" / "data" / "v1" / "TruthfulQA.csv", encoding="utf-8-sig") as f:
        long_q = next(r["Question"] for r in csv.DictReader(f) if len(r["Question"].split()) >= 16)
    import gzip

    with gzip.open(realdata / "humaneval" / "data" / "HumanEval.jsonl.gz", "rt") as f:
        prompt = json.loads(f.readline())["prompt"]
    rows = [chat(0, long_q, "t"), chat(1, f"Finish the function:\n{prompt}", "h"),
            chat(2, "Is it true that eating watermelon seeds at night makes something odd happen to you later?",
                 "p")]
    train = write(tmp_path / "train.jsonl", rows)
    rep = decontaminate(train, {"truthfulqa": found["truthfulqa"], "humaneval": found["humaneval"]},
                        show_progress=False).report.to_dict()
    assert rep["benchmarks"]["truthfulqa"]["by_source"] == {"t": 1}
    assert rep["benchmarks"]["humaneval"]["by_source"] == {"h": 1}
    assert rep["sources"]["p"]["contaminated"] == 0


@pytest.mark.realdata
def test_real_gsm8k_train_vs_test_near_duplicates(realdata, tmp_path):
    """The Flan CoT copy of GSM8K *train* against GSM8K *test*: a handful of train questions share a
    13-gram with a test question (known near-duplicates), none of the others do."""
    import csv

    tsv = realdata / "flan_v2_cot" / "flan" / "v2" / "cot_data" / "gsm8k_train.tsv"
    rows = []
    with open(tsv, newline="", encoding="utf-8") as f:
        for i, r in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            rows.append(chat(i, r[0], "cot_gsm8k", answer=f"{r[2]} The answer is {r[1]}."))
    assert len(rows) == 7473
    train = write(tmp_path / "cot.jsonl", rows)
    test_file = realdata / "gsm8k" / "grade_school_math" / "data" / "test.jsonl"
    rep = decontaminate(train, {"gsm8k": test_file}, show_progress=False).report.to_dict()
    assert rep["contaminated"] == 4
    assert [(e["id"], e["matches"]) for e in rep["benchmarks"]["gsm8k"]["examples"]] == [
        ("cot_gsm8k-20", 13), ("cot_gsm8k-406", 3), ("cot_gsm8k-1314", 7), ("cot_gsm8k-5162", 7)]
    assert rep["benchmarks"]["gsm8k"]["examples"][0]["ngram"] == (
        "bought stamps at the post office some of the stamps had a snowflake")


def test_hashes_do_not_depend_on_pythonhashseed():
    import os
    import subprocess
    import sys

    code = ("from camels.data.decontam import NgramHasher; "
            "print(NgramHasher(4).text_hashes('the quick brown fox jumps over the lazy dog'))")
    outs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout for seed in ("0", "1", "987")}
    assert len(outs) == 1
    assert outs.pop().strip() == str(NgramHasher(4).text_hashes("the quick brown fox jumps over the lazy dog"))
