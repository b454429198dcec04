"""Result files' schema, request dicts, the task registry and config overrides."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from camels.core.errors import ConfigError, RecordError
from camels.core.requests import (
    ChoiceRequest,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    request_key,
    request_to_dict,
    result_to_dict,
)
from camels.core.results import RunManifest, TaskResult
from camels.evals.cache import RequestCache
from camels.evals.task import get_task, task_names


def test_request_dicts_equal_dataclasses_asdict():
    reqs = [
        GenerateRequest([("system", "s"), ("user", "u")], assistant_prefix="A:", stop=("\n",), max_tokens=7,
                        temperature=0.8, top_p=0.95, n=3, seed=2),
        ChoiceRequest([("user", "q")], choices=(" A", " B")),
        LoglikelihoodRequest([("user", "q")], continuation=" yes"),
    ]
    for r in reqs:
        expected = dataclasses.asdict(r)
        expected["kind"] = r.kind
        assert request_to_dict(r) == expected
    assert result_to_dict(Generation(("a",), ("stop",), 3, (1,))) == {
        "texts": ("a",), "finish_reasons": ("stop",), "prompt_tokens": 3, "completion_tokens": (1,)}
    # the content address depends on the model and on every decoding parameter
    g = reqs[0]
    assert request_key(g, "m1") != request_key(g, "m2")
    assert request_key(g, "m1") != request_key(dataclasses.replace(g, seed=3), "m1")
    assert request_key(g, "m1") == request_key(GenerateRequest(**{**dataclasses.asdict(g)}), "m1")


def test_task_result_and_manifest_roundtrip(tmp_path):
    r = TaskResult(task="t", task_version="1", primary_metric="accuracy", metrics={"accuracy": 0.5},
                   counts={"items": 2})
    r.write(tmp_path / "m.json")
    assert TaskResult.read(tmp_path / "m.json") == r and r.score == 0.5
    m = RunManifest(model="x", backend={"name": "fake"}, task={"name": "t"}, seeds={"seed": 1})
    m.write(tmp_path / "man.json")
    assert RunManifest.read(tmp_path / "man.json") == m
    (tmp_path / "bad.json").write_text(json.dumps({"task": "t", "schema": 1}))
    with pytest.raises(RecordError, match="bad.json: task_version: missing field"):
        TaskResult.read(tmp_path / "bad.json")


def test_cache_roundtrip_and_atomic_chunks(tmp_path):
    reqs = [ChoiceRequest([("user", f"q{i}")], choices=(" A", " B")) for i in range(3)]
    with RequestCache(tmp_path / "c.sqlite") as c:
        with pytest.raises(ValueError):
            c.put_many("fp", reqs, [])
        assert len(c) == 0  # nothing half-written
        assert c.get_many("fp", reqs) == [None, None, None]


def test_registry_and_config_overrides():
    assert {"mmlu", "mmlu_0shot", "mmlu_5shot", "gsm8k", "gsm8k_cot", "gsm8k_direct", "bbh", "bbh_cot",
            "bbh_direct", "truthfulqa", "truthfulqa_mc", "tydiqa", "tydiqa_goldp", "tydiqa_closed_book"} <= set(task_names())
    t = get_task("mmlu_0shot", subjects="anatomy, virology", max_prompt_tokens="1024")
    assert (t.label, t.name, t.config.shots) == ("mmlu_0shot", "mmlu", 0)
    assert t.config.subjects == ("anatomy", "virology") and t.config.max_prompt_tokens == 1024
    g = get_task("gsm8k_direct", cot="true", n="0", plain_stop=["\n\n"])
    assert (g.config.cot, g.config.n, g.config.plain_stop) == (True, 0, ("\n\n",))
    with pytest.raises(ConfigError, match=r"task mmlu: shotz: unknown key \(did you mean shots\?\)"):
        get_task("mmlu", shotz=3)
    with pytest.raises(ConfigError, match="expected an integer"):
        get_task("mmlu", shots="five")
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        get_task("no_such_task")


class _FakeSplit(list):
    _fingerprint = "fp123"


def test_hub_loading_through_datasets(monkeypatch):
    """The hub path (no --data) with a stand-in ``datasets`` module: ids, rows and sources."""
    import sys
    import types

    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if path == "openai/gsm8k":
            return _FakeSplit([{"question": f"q{i}", "answer": f"w\n#### {i}"} for i in range(5)])
        rows = [{"question": f"{name} {split} {i}", "choices": ["a", "b", "c", "d"], "answer": i % 4}
                for i in range(3 if split == "test" else 5)]
        return _FakeSplit(rows)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    g = get_task("gsm8k_cot", n=3).load(None)
    assert sorted(i.id for i in g.items) == sorted(f"test:{i}" for i in random.Random(42).sample(range(5), 3))
    assert g.sources == {"hf://openai/gsm8k/main/test": "fp123"}
    task = get_task("mmlu_5shot", subjects="anatomy")
    m = task.load(None)
    assert [i.id for i in m.items] == ["anatomy_test:0", "anatomy_test:1", "anatomy_test:2"]
    assert calls[-2:] == [("cais/mmlu", "anatomy", "dev"), ("cais/mmlu", "anatomy", "test")]
    assert set(m.sources) == {"hf://cais/mmlu/anatomy/dev", "hf://cais/mmlu/anatomy/test"}
    text = task.requests(m.items[1])[0].messages[0].content
    assert text.count("\nAnswer: ") == 5 and text.endswith("anatomy test 1\nA. a\nB. b\nC. c\nD. d\nAnswer:")


def test_hub_without_datasets_says_what_to_do(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"pip install 'camels-instruct\[hub\]'"):
        get_task("gsm8k_cot").load(None)
