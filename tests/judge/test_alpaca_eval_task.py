"""The alpaca_eval task: real items, the two request phases, position un-swapping, both orders."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from camels.core.errors import ConfigError
from camels.core.requests import BackendInfo, Generation
from camels.core.results import read_predictions
from camels.evals.cache import RequestCache
from camels.evals.runner import rescore, run_task
from camels.evals.task import get_task
from camels.judge.annotations import summarize_file
from camels.judge.pairwise import PairwiseJudge, model_shown_first
from camels.judge.prompts import load_prompt

ROOT = Path(__file__).resolve().parents[2]
ANSWER = re.compile(r'"answer": """(.*?)"""', re.S)


class ScriptedJudge:
    """An in-process judge backend: the longer answer wins (or, biased, the one shown first)."""

    def __init__(self, bias_first: bool = False) -> None:
        self.bias_first = bias_first
        self.calls = 0

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(name="scripted", model="scripted-judge", fingerprint=f"scripted-{self.bias_first}")

    def generate(self, requests):
        out = []
        for r in requests:
            self.calls += 1
            o1, o2 = ANSWER.findall(r.messages[-1].content)
            first = self.bias_first or len(o1) >= len(o2)
            ranks = (1, 2) if first else (2, 1)
            text = f"[{{'model': 'model_1', 'rank': {ranks[0]}}}, {{'model': 'model_2', 'rank': {ranks[1]}}}]"
            out.append(Generation((text,), ("stop",), prompt_tokens=10, completion_tokens=(5,)))
        return out


class Model:
    """The model under test: answers instruction i with a text of length 3 + (7 * i) % 11."""

    info = BackendInfo(name="fake", model="fake-model", fingerprint="m1", chat_format={"kind": "tulu"})

    def generate(self, requests):
        out = []
        for r in requests:
            i = int(r.messages[-1].content.split()[1])
            out.append(Generation(("x" * (3 + (7 * i) % 11),), ("eos",)))
        return out


def reference_file(tmp_path, n=10):
    rows = [{"instruction": f"instruction {i} please", "output": "r" * 8, "generator": "ref", "dataset": "d"}
            for i in range(n)]
    path = tmp_path / "ref" / "model_outputs.json"
    path.parent.mkdir()
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.realdata
def test_items_from_the_real_reference_outputs(realdata):
    task = get_task("alpaca_eval")
    data = task.load(task.resolve_data_path(realdata))
    assert len(data.items) == 805 and data.items[0].id == "alpaca_eval:0" and data.items[-1].id == "alpaca_eval:804"
    ann = json.loads(realdata.joinpath("alpaca_eval", "results", "tulu-2-dpo-7b", "alpaca_eval_gpt4",
                                       "annotations.json").read_text())
    assert [it.data["instruction"] for it in data.items] == [a["instruction"] for a in ann]
    # the reference outputs are those of results/text_davinci_003 (the tulu-2 annotations judged an older
    # generation of text-davinci-003's answers: 785 of 805 differ, so they are not compared here)
    ref = json.loads(realdata.joinpath("alpaca_eval", "results", "text_davinci_003", "model_outputs.json").read_text())
    assert [it.data["reference_output"] for it in data.items] == [r["output"] for r in ref]
    v2 = get_task("alpaca_eval", reference="gpt4_1106_preview").load(realdata / "alpaca_eval")
    assert len(v2.items) == 805 and v2.items[3].data["reference_generator"] == "gpt4_1106_preview"
    req = task.requests(data.items[0])[0]
    assert req.messages[-1].content == ann[0]["instruction"] and req.temperature == 0 and req.max_tokens == 8192


@pytest.mark.parametrize("bias", [False, True])
def test_run_both_orders_unswapped_and_self_consistency(tmp_path, bias):
    ref = reference_file(tmp_path)
    task = get_task("alpaca_eval", reference=str(ref), both_orders=True)
    judge = ScriptedJudge(bias_first=bias)
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        result = run_task(task, Model(), tmp_path / "run", model="m", cache=cache,
                          scorers={"judge_pair": PairwiseJudge(judge, load_prompt("alpaca_eval_gpt4"))})
    lengths = [3 + (7 * i) % 11 for i in range(10)]
    m = result.metrics
    if bias:  # always the first shown: each order says the opposite, so every item is a tie
        assert m["self_consistency"] == 0.0 and m["n_ties"] == 10 and m["win_rate"] == 50.0
    else:  # the longer answer wins in both orders (a tie of lengths goes to the first shown)
        wins = sum(n > 8 for n in lengths)
        losses = sum(n < 8 for n in lengths)
        assert (m["n_wins"], m["n_losses"], m["n_ties"]) == (wins, losses, 10 - wins - losses)
        assert m["self_consistency"] == pytest.approx((wins + losses) / 10)
        assert m["win_rate"] == pytest.approx(100 * (wins + 0.5 * (10 - wins - losses)) / 10)
    assert judge.calls == 20
    assert m["position_model_first"] == sum(model_shown_first(f"alpaca_eval:{i}", 0) for i in range(10))
    assert m["judge"]["model"] == "scripted-judge" and m["judge_cost"]["prompt_tokens"] == 200
    assert m["length_controlled_win_rate"] is None and "df_gamed.csv" in m["length_controlled_note"]
    # rescoring reads the stored verdicts: no judge is needed
    assert rescore(tmp_path / "run").metrics == m
    # alpaca_eval's files beside the predictions
    outs = json.loads((tmp_path / "run" / "model_outputs.json").read_text())
    assert outs[2] == {"instruction": "instruction 2 please", "output": "x" * (3 + 14 % 11), "generator": "m",
                       "dataset": "d"}
    ann = json.loads((tmp_path / "run" / "annotations.json").read_text())
    assert [a["preference"] for a in ann] == [s.scores["preference"] for s in read_predictions(tmp_path / "run"
                                                                                               / "predictions.jsonl")]
    assert ann[0]["generator_1"] == "ref" and ann[0]["annotator"] == "alpaca_eval_gpt4@1"


def test_single_order_preference_follows_position(tmp_path):
    ref = reference_file(tmp_path)
    spec = importlib.util.spec_from_file_location("aem", ROOT / "benchmarks" / "alpaca_eval_metrics.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.synthetic_gamed(tmp_path / "df_gamed.csv", n=10)
    task = get_task("alpaca_eval", reference=str(ref), seed=3, lc_data=str(tmp_path / "df_gamed.csv"))
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        result = run_task(task, Model(), tmp_path / "run", model="m", cache=cache,
                          scorers={"judge_pair": PairwiseJudge(ScriptedJudge(bias_first=True),
                                                               load_prompt("alpaca_eval_gpt4"))})
    firsts = [model_shown_first(f"alpaca_eval:{i}", 3) for i in range(10)]
    # a judge that always picks the first shown gives the model exactly the items it was shown first
    assert result.metrics["n_wins"] == sum(firsts) and result.metrics["n_losses"] == 10 - sum(firsts)
    # the length-controlled fit over the run's items equals the one over its annotations.json
    lc = summarize_file(tmp_path / "run" / "annotations.json", lc_data=str(tmp_path / "df_gamed.csv"))
    assert 0 < result.metrics["length_controlled_win_rate"] < 100
    assert result.metrics["length_controlled_win_rate"] == pytest.approx(lc["length_controlled_win_rate"])


@pytest.mark.realdata
def test_position_as_alpaca_eval_draws_it(realdata):
    """position=alpaca_eval: the model's answer is shown first exactly where alpaca_eval 0.3.1 (the version
    the study pinned) switches its reference-first pair, a draw seeded by "is_switched_outputs" + the
    instruction + the annotator seed (0); the default stays the hash of the item id."""
    task = get_task("alpaca_eval", position="alpaca_eval")
    items = task.load(task.resolve_data_path(realdata)).items
    firsts = [task.model_first(it) for it in items]
    # alpaca_eval's draws for the first 16 instructions of the eval set, and its count over all 805
    assert [int(f) for f in firsts[:16]] == [1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0]
    assert sum(firsts) == 406
    shown = task.scoring_requests(items[0], [Generation(("my answer",), ("eos",))])[0]
    assert (shown.output_1, shown.output_2) == ("my answer", items[0].data["reference_output"])
    shown = task.scoring_requests(items[3], [Generation(("my answer",), ("eos",))])[0]
    assert (shown.output_1, shown.output_2) == (items[3].data["reference_output"], "my answer")
    default = get_task("alpaca_eval")
    assert [default.model_first(it) for it in items[:6]] == [model_shown_first(f"alpaca_eval:{i}", 0) for i in range(6)]
    with pytest.raises(ConfigError, match="position must be one of hash, alpaca_eval"):
        get_task("alpaca_eval", position="random").load(realdata / "alpaca_eval")
