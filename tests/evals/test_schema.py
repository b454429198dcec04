"""Result files' schema, request dicts, the task registry and config overrides."""

from __future__ import annotations

import dataclasses
import json

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
    assert {"mmlu", "mmlu_0shot", "mmlu_5shot", "gsm8k", "gsm8k_cot", "gsm8k_direct"} <= set(task_names())
    t = get_task("mmlu_0shot", subjects="anatomy, virology", max_prompt_tokens="1024")
    assert (t.label, t.name, t.config.shots) == ("mmlu_0shot", "mmlu", 0)
    assert t.config.subjects == ("anatomy", "virology") and t.config.max_prompt_tokens == 1024
    g = get_task("gsm8k_direct", cot="true", n="0", plain_stop=["\n\n"])
    assert (g.config.cot, g.config.n, g.config.plain_stop) == (True, 0, ("\n\n",))
    with pytest.raises(ConfigError, match="unknown option 'shotz'"):
        get_task("mmlu", shotz=3)
    with pytest.raises(ConfigError, match="expected an integer"):
        get_task("mmlu", shots="five")
    with pytest.raises(ConfigError, match="unknown task 'bbh'"):
        get_task("bbh")
