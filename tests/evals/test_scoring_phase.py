"""Scoring as a second, cached request phase: open request kinds, generic dispatch, scorers, resume, rescore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from evalfakes import FakeBackend
from scoringfakes import Arith, CalcRequest, CalcResult, Calculator

from camels.backends.base import UnsupportedRequest
from camels.cli import main as camels_main
from camels.core.errors import ConfigError
from camels.core.requests import (
    REQUEST_TYPES,
    GenerateRequest,
    Generation,
    register_kind,
    request_from_dict,
    request_key,
    request_to_dict,
    result_from_dict,
    result_to_dict,
)
from camels.core.results import Prediction, RunManifest, read_predictions
from camels.evals.cache import RequestCache
from camels.evals.runner import answer_requests, dispatch, rescore, run_task, score_outputs

HERE = Path(__file__).resolve().parent


def _right_on_even_items(req):
    """The model: the right value for even items, one off for odd ones."""
    q = req.messages[-1].content
    i = int(q.split()[2])
    value = i * 7 + 3 - i + (i % 2)
    return Generation(texts=(f"It is {value}.",), finish_reasons=("stop",))


def _run(tmp_path, *, scorers=None, chunk_size=3, run="run", cache="c.sqlite", n=10):
    with RequestCache(tmp_path / cache) as c:
        return run_task(Arith(n=n), FakeBackend(_right_on_even_items), tmp_path / run, model="fake", cache=c,
                        chunk_size=chunk_size, command=["test"], scorers=scorers)


def test_model_kinds_are_registered_like_any_other():
    assert {k: (c.__name__, c.method) for k, c in REQUEST_TYPES.items() if k in ("generate", "choice",
            "loglikelihood")} == {"generate": ("GenerateRequest", "generate"),
                                  "choice": ("ChoiceRequest", "choose"),
                                  "loglikelihood": ("LoglikelihoodRequest", "loglikelihood")}
    assert REQUEST_TYPES["calc"] is CalcRequest
    register_kind(CalcRequest, CalcResult)  # the same pair again: a no-op

    @dataclass(frozen=True)
    class Other:
        expression: str
        kind = "calc"
        method = "calculate"

    with pytest.raises(ValueError, match="'calc' is already registered"):
        register_kind(Other, CalcResult)

    @dataclass(frozen=True)
    class NoMethod:
        x: int
        kind = "nomethod"

    with pytest.raises(TypeError, match="needs class attributes 'kind' and 'method'"):
        register_kind(NoMethod, CalcResult)


def test_generic_serialisation_of_a_registered_kind():
    req = CalcRequest("1 + 2")
    d = request_to_dict(req)
    assert d == {"expression": "1 + 2", "kind": "calc"}
    assert request_from_dict(json.loads(json.dumps(d))) == req
    assert result_from_dict("calc", json.loads(json.dumps(result_to_dict(CalcResult("3", True))))) == \
        CalcResult("3", True)
    # the scorer's fingerprint is part of the key, as a model's is
    assert request_key(req, "calc-v1") != request_key(req, "calc-v2")
    with pytest.raises(ValueError, match="unknown request kind 'nope'"):
        request_from_dict({"kind": "nope"})


def test_dispatch_is_by_the_kind_method_and_names_a_missing_one(tmp_path):
    calc = Calculator()
    assert dispatch(calc, "calc", [CalcRequest("2 * 3"), CalcRequest("2 +")]) == [
        CalcResult("6", True), CalcResult("invalid syntax (<unknown>, line 1)", False)]
    with pytest.raises(UnsupportedRequest, match="fake cannot answer 'calc' requests: it has no calculate"):
        dispatch(FakeBackend(), "calc", [CalcRequest("1")])
    with RequestCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(UnsupportedRequest):
            answer_requests(Calculator(), [GenerateRequest([("user", "hi")])], cache)
        assert len(cache) == 0


def test_scoring_phase_is_cached_stored_and_rescored_without_calls(tmp_path):
    calc = Calculator()
    result = _run(tmp_path, scorers={"calc": calc})
    assert result.metrics == {"accuracy": 0.5, "n": 10}
    assert calc.calls == 4 and len(calc.answered) == 10  # chunks of 3
    preds = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert preds[3].scoring_requests == [CalcRequest("(22) == (3 * 7 + 3 - 3)")]
    assert preds[3].verdicts == [CalcResult("False", True)] and preds[3].scores == {"correct": 0.0}
    assert preds[4].verdicts == [CalcResult("True", True)] and preds[4].scores == {"correct": 1.0}
    line = json.loads((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()[0])
    assert line["scoring_requests"] == [{"kind": "calc", "expression": "(3) == (0 * 7 + 3 - 0)"}]
    assert line["verdicts"] == [{"kind": "calc", "value": "True", "ok": True}]
    manifest = RunManifest.read(tmp_path / "run" / "manifest.json")
    assert manifest.scorers == {"calc": {"name": "calculator", "model": "python-ast", "fingerprint": "calc-v1",
                                         "details": {"ops": "+-*=="}}}
    assert manifest.counts == {"items": 10, "requests": 10, "unique_requests": 10, "cache_hits": 0,
                               "computed": 10, "cache_rejected": 0, "scoring_requests": 10,
                               "scoring_unique_requests": 10, "scoring_cache_hits": 0, "scoring_computed": 10,
                               "scoring_cache_rejected": 0}

    # a second run: the registered factory builds the scorer, and the cache answers everything
    Calculator.BUILT.clear()
    _run(tmp_path, run="again")
    assert [c.calls for c in Calculator.BUILT] == [0]
    assert (tmp_path / "again" / "predictions.jsonl").read_bytes() == (tmp_path / "run" / "predictions.jsonl").read_bytes()
    # another scorer fingerprint shares nothing
    other = Calculator(fingerprint="calc-v2")
    _run(tmp_path, run="v2", scorers={"calc": other})
    assert len(other.answered) == 10

    # rescore: no scorer is built or called, the bytes come back
    Calculator.BUILT.clear()
    metrics = (tmp_path / "run" / "metrics.json").read_bytes()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert rescore(tmp_path / "run").metrics == {"accuracy": 0.5, "n": 10}
    assert Calculator.BUILT == [] and (tmp_path / "run" / "metrics.json").read_bytes() == metrics


def test_rescore_uses_stored_verdicts_and_refuses_unanswered_requests(tmp_path):
    _run(tmp_path, scorers={"calc": Calculator()})
    path = tmp_path / "run" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["verdicts"][0]["value"] = "True"  # an edited verdict is what rescoring believes
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rescore(tmp_path / "run").metrics["accuracy"] == 0.6
    rows[2]["results"][0]["texts"] = ["It is 17."]  # new results need a new scoring request
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"item 'arith:2'.*run camels eval again"):
        rescore(tmp_path / "run")


def test_a_task_without_a_scorer_fails_before_any_model_request(tmp_path, monkeypatch):
    from camels.evals import scoring

    monkeypatch.delitem(scoring.SCORERS, "calc")
    backend = FakeBackend(_right_on_even_items)
    with RequestCache(tmp_path / "c.sqlite") as c, pytest.raises(ConfigError, match="arith: no scorer for 'calc'"):
        run_task(Arith(), backend, tmp_path / "run", model="fake", cache=c)
    assert backend.calls == 0


def test_score_outputs_answers_scoring_requests_through_a_cache(tmp_path):
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"id": "arith:2", "output": "15"}) + "\n"
                       + json.dumps({"id": "arith:3", "output": "no idea"}) + "\n")
    calc = Calculator()
    report = score_outputs(Arith(), outputs, output_dir=tmp_path / "scored", scorers={"calc": calc})
    assert [p.scores["correct"] for p in report.predictions] == [1.0, 0.0] and len(calc.answered) == 2
    again = Calculator()
    score_outputs(Arith(), outputs, output_dir=tmp_path / "scored", scorers={"calc": again})
    assert again.calls == 0  # <output>/.cache answered them
    assert rescore(tmp_path / "scored").metrics["accuracy"] == 0.5


def test_prediction_roundtrip_with_verdicts():
    p = Prediction(id="a", task="t", item={}, requests=[], results=[Generation(("x",), ("stop",))],
                   scoring_requests=[CalcRequest("1")], verdicts=[CalcResult("1", True)])
    back = Prediction.from_dict(json.loads(p.to_json()))
    assert back == p and back.to_json() == p.to_json()
    d = json.loads(p.to_json())
    d["verdicts"] = []
    with pytest.raises(Exception, match="0 verdicts for 1 scoring requests"):
        Prediction.from_dict(d)


@pytest.mark.slow
def test_sigkill_while_scoring_then_rerun_repeats_no_scoring_request(tmp_path):
    """A real ``camels eval`` process killed with SIGKILL during its third scoring chunk, run again: no scoring
    request is answered twice and no model request is recomputed; ``camels rescore`` then runs none."""
    calc_log, model_log = tmp_path / "calc.log", tmp_path / "model.log"
    args = ["eval", "--model", "fake", "--tasks", "arith", "--backend", "evalfakes:CLIFakeBackend",
            "--backend-option", f"log={model_log}", "--chunk-size", "3", "--output", str(tmp_path / "runs")]
    env = {**os.environ, "CALC_LOG": str(calc_log),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    script = [sys.executable, str(HERE / "scoringfakes.py")]
    proc = subprocess.run([*script, *args], env={**env, "CALC_KILL_AT_CALL": "3"}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    first = calc_log.read_text().splitlines()
    assert len(first) == 6  # two scoring chunks of 3 answered and committed; the third died with the process
    assert len(model_log.read_text().splitlines()) == 10
    run = tmp_path / "runs" / "fake" / "arith"
    assert not (run / "metrics.json").exists()

    proc = subprocess.run([*script, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    second = calc_log.read_text().splitlines()[len(first):]
    assert len(second) == 4 and not set(first) & set(second)
    assert len(model_log.read_text().splitlines()) == 10  # the model phase came from the cache
    counts = RunManifest.read(run / "manifest.json").counts
    assert (counts["cache_hits"], counts["computed"]) == (10, 0)
    assert (counts["scoring_cache_hits"], counts["scoring_computed"]) == (6, 4)

    before = calc_log.read_text()
    preds = (run / "predictions.jsonl").read_bytes()
    Calculator.BUILT.clear()
    assert camels_main(["rescore", str(run)]) == 0
    assert calc_log.read_text() == before and Calculator.BUILT == []
    assert (run / "predictions.jsonl").read_bytes() == preds


def test_predictions_of_an_unregistered_kind_are_read_and_written_back_unchanged():
    line = json.dumps({"schema": 1, "id": "x", "task": "t", "item": {}, "requests": [], "output": None,
                       "results": [{"kind": "generate", "texts": ["a"], "finish_reasons": ["stop"],
                                    "prompt_tokens": 0, "completion_tokens": []}],
                       "scoring_requests": [{"kind": "not_imported_here", "program": "print(1)", "n": [1, 2]}],
                       "verdicts": [{"kind": "not_imported_here", "passed": True}], "scores": {}, "extra": {}},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    p = Prediction.from_dict(json.loads(line))
    assert p.scoring_requests[0].kind == "not_imported_here" and p.verdicts[0].data == {"passed": True}
    assert p.to_json() == line
