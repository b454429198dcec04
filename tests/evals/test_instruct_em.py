"""instruct_em: exact match on a user's JSONL file; prompts, ids, per-group metrics, bad lines."""

from __future__ import annotations

import json

import pytest
from evalfakes import FakeBackend

from camels.core.errors import ConfigError, RecordError
from camels.core.requests import Generation
from camels.evals.runner import open_cache, run_task
from camels.evals.task import RequestContext, get_task

ROWS = [
    {"id": "a", "instruction": "Reverse the words.", "input": "sun sea", "output": "sea sun", "skill": "rev"},
    {"instruction": "Count from 1 to 3.", "output": "1 2 3", "skill": "count"},
    {"instruction": "Count from 4 to 6.", "input": "", "output": "4 5 6", "skill": "count"},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_items_prompts_and_per_group_scores(tmp_path):
    data = _write(tmp_path / "my_set.jsonl", ROWS)
    task = get_task("instruct_em", group_field="skill")
    items = task.load(data).items
    assert [i.id for i in items] == ["a", "my_set:1", "my_set:2"]
    req = task.requests(items[0], RequestContext(chat=True))[0]
    assert req.messages[-1].content == "Reverse the words.\n\nsun sea" and req.stop == ()
    assert task.requests(items[1])[0].stop == ("\n\n",)  # plain prompts stop at a blank line

    answers = {"Reverse the words.\n\nsun sea": " sea sun\n", "Count from 1 to 3.": "1 2 3 4",
               "Count from 4 to 6.": "4 5 6"}
    backend = FakeBackend(lambda r: Generation(texts=(answers[r.messages[-1].content],),
                                               finish_reasons=("stop",)), chat=True)
    res = run_task(task, backend, tmp_path / "run", model="fake", cache=open_cache(tmp_path), data_path=data)
    m = res.metrics
    assert m["exact_match"] == pytest.approx(2 / 3) and m["n"] == 3
    assert m["per_group"] == {"count": {"exact_match": 0.5, "n": 2}, "rev": {"exact_match": 1.0, "n": 1}}


def test_normalized_comparison(tmp_path):
    data = _write(tmp_path / "s.jsonl", [{"instruction": "Say hi.", "output": "Hello, world"}])
    item = get_task("instruct_em").load(data).items[0]
    gen = [Generation(texts=("hello world!",), finish_reasons=("stop",))]
    assert get_task("instruct_em").score(item, gen)["exact_match"] == 0.0
    assert get_task("instruct_em", normalize=True).score(item, gen)["exact_match"] == 1.0


def test_bad_lines_name_file_line_and_field(tmp_path):
    data = _write(tmp_path / "bad.jsonl", [ROWS[0], {"instruction": "x"}])
    with pytest.raises(RecordError) as e:
        get_task("instruct_em").load(data)
    assert e.value.line == 2 and e.value.field == "output" and "bad.jsonl" in str(e.value)
    data = _write(tmp_path / "bad2.jsonl", [{"instruction": 3, "output": "y"}])
    with pytest.raises(RecordError) as e:
        get_task("instruct_em").load(data)
    assert e.value.field == "instruction" and e.value.reason == "bad_type"
    with pytest.raises(ConfigError, match="--data"):
        get_task("instruct_em").load(None)
