"""The dataset table: exact values on a hand-built fixture, whitespace and tiny-tokenizer counts."""

from __future__ import annotations

import json

import pytest

from camels.core.errors import RecordError
from camels.data.stats import compute_stats, tokenizer_counter

CONVS = [
    {"dataset": "math", "id": "m0", "messages": [
        {"role": "user", "content": "What is 12 plus 30?"},
        {"role": "assistant", "content": "12 + 30 = 42. The answer is 42."}]},
    {"dataset": "chat", "id": "c0", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate to French: good morning"},
        {"role": "assistant", "content": "bonjour"},
        {"role": "user", "content": "And good night?"},
        {"role": "assistant", "content": "bonne nuit"}]},
    {"dataset": "chat", "id": "c1", "messages": [
        {"role": "user", "content": "Give three tips."},
        {"role": "assistant", "content": "1. Eat well. 2. Sleep enough."}]},
]


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(c) + "\n" for c in CONVS), encoding="utf-8")
    return p


def test_whitespace_values(data, tmp_path):
    t = compute_stats([data], show_progress=False)
    rows = {r["source"]: r for r in t.rows()}
    assert list(rows) == ["chat", "math", "all"]
    assert rows["math"]["instances"] == 1 and rows["math"]["mean_rounds"] == 1.0
    assert rows["math"]["mean_prompt_len"] == 5.0 and rows["math"]["mean_completion_len"] == 9.0
    assert rows["chat"]["instances"] == 2 and rows["chat"]["mean_rounds"] == 1.5
    assert rows["chat"]["mean_prompt_len"] == pytest.approx(11 / 3)  # (5 + 3 + 3) words / 3 user turns
    assert rows["chat"]["mean_completion_len"] == 3.0  # (1 + 2 + 6) / 3
    assert rows["chat"]["system_turns"] == 1
    assert rows["all"]["instances"] == 3 and rows["all"]["mean_rounds"] == pytest.approx(4 / 3)
    assert rows["all"]["mean_prompt_len"] == 4.0 and rows["all"]["mean_completion_len"] == 4.5
    t.write_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "source,instances,mean_rounds,mean_prompt_len,mean_completion_len,tokenizer",
        "chat,2,1.5000,3.6667,3.0000,whitespace",
        "math,1,1.0000,5.0000,9.0000,whitespace",
        "all,3,1.3333,4.0000,4.5000,whitespace",
    ]
    assert t.format().splitlines()[:5] == [
        "source  instances  rounds  prompt len  completion len",
        "------  ---------  ------  ----------  --------------",
        "chat            2    1.50         3.7             3.0",
        "math            1    1.00         5.0             9.0",
        "all             3    1.33         4.0             4.5",
    ]


def test_tiny_tokenizer_values(data, tiny_tok):
    # per-turn token counts of the tiny tokenizer, special tokens not added
    def n(s):
        return len(tiny_tok(s, add_special_tokens=False)["input_ids"])

    assert [n(m["content"]) for c in CONVS for m in c["messages"] if m["role"] != "system"] == [
        6, 12, 7, 3, 9, 8, 5, 11]
    for batch in (1, 3, 512):  # batching does not change the counts
        t = compute_stats([data], count=tokenizer_counter(tiny_tok), tokenizer_name="tiny", batch_size=batch,
                          show_progress=False)
        rows = {r["source"]: r for r in t.rows()}
        assert (rows["math"]["mean_prompt_len"], rows["math"]["mean_completion_len"]) == (6.0, 12.0)
        assert rows["chat"]["mean_prompt_len"] == 7.0  # (7 + 9 + 5) / 3
        assert rows["chat"]["mean_completion_len"] == pytest.approx(22 / 3)  # (3 + 8 + 11) / 3
        assert (rows["all"]["mean_prompt_len"], rows["all"]["mean_completion_len"]) == (6.75, 8.5)
        assert rows["all"]["prompt_tokens"] == 27 and rows["all"]["completion_tokens"] == 34
    assert t.tokenizer == "tiny"


def test_several_files_and_bad_records(data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CONVS[0]) + "\n[1, 2]\n" + '{"dataset": "x", "id": "y", "messages": []}\n',
                   encoding="utf-8")
    with pytest.raises(RecordError) as e:
        compute_stats([data, bad], show_progress=False)
    assert (e.value.file, e.value.line, e.value.reason) == (str(bad), 2, "bad_type")
    t = compute_stats([data, bad], lenient=True, show_progress=False)
    assert t.skipped == {"bad_type": 1, "no_messages": 1}
    rows = {r["source"]: r for r in t.rows()}
    assert rows["math"]["instances"] == 2 and rows["all"]["instances"] == 4
