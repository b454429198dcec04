"""The pairwise judge through the API backend against a real loopback server that injects faults."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from judgeserver import JudgeServer, first_wins  # noqa: E402

from camels.backends.api import APIBackend  # noqa: E402
from camels.judge.annotations import summarize  # noqa: E402
from camels.judge.identity import MixedJudgeError  # noqa: E402
from camels.judge.kinds import JudgePairRequest  # noqa: E402
from camels.judge.ledger import BudgetExceeded, CostLedger  # noqa: E402
from camels.judge.pairwise import PairwiseJudge, model_shown_first, unswap  # noqa: E402
from camels.judge.parse import parse_identifier, parse_ranking  # noqa: E402
from camels.judge.prompts import load_prompt  # noqa: E402

JUDGE_MODEL = "judge-model"


@pytest.fixture(scope="module")
def server():
    s = JudgeServer(timeout_sleep=1.0)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def reset(server):
    server.faults.clear()
    server.garble = 0
    server.bias_first = False
    yield


def api(server, model=JUDGE_MODEL, **kw):
    opts = dict(base_url=server.url, max_concurrency=4, max_retries=6, timeout=0.5, backoff_base=0.001,
                backoff_max=0.01)
    opts.update(kw)
    b = APIBackend(model, **opts)
    return b


def pairs(n):
    out = []
    for i in range(n):
        a = f"answer {i} " + "word " * (i % 4) + ("GOOD" if i % 3 == 0 else "")
        b = f"reply {i} " + "word " * ((i + 2) % 5)
        inst = f"instruction {i}" + (" GARBLE" if i in (4, 9) else "")
        out.append(JudgePairRequest(inst, a, b))
    return out


def test_faults_and_garbles_every_verdict_parsed_or_counted(server, tmp_path):
    ledger_path = tmp_path / "ledger.jsonl"
    prompt = load_prompt("alpaca_eval_gpt4")
    judge = PairwiseJudge(api(server), prompt, max_attempts=3,
                          ledger=CostLedger(ledger_path, prices={JUDGE_MODEL: {"prompt": 10.0, "completion": 30.0}}))
    before = dict(server.usage), server.ok_calls
    server.faults[:] = ["429", "500", "timeout", "malformed", "shape", "500", "429", "malformed"]
    server.garble = 3  # three transient garbled answers, parsed on a later attempt
    reqs = pairs(12)
    verdicts = judge.judge_pair(reqs)

    assert len(verdicts) == 12
    for i, (r, v) in enumerate(zip(reqs, verdicts)):
        if i in (4, 9):  # always garbled: kept as unparsed after 3 attempts, every answer stored
            assert v.preference is None and v.attempts == 3 and len(v.raw) == 3
            assert all(t == "Model 2 looks better to me." for t in v.raw)
        else:
            assert v.preference == (1.0 if first_wins(r.output_1, r.output_2) else 2.0)
            assert v.attempts == len(v.raw) >= 1
        assert v.judge["model"] == JUDGE_MODEL and v.judge["prompt"] == "alpaca_eval_gpt4"
        assert v.judge["prompt_version"] == "1" and v.judge["decoding"] == {"max_tokens": 100, "temperature": 0.0}
    assert sum(v.attempts for v in verdicts) == 12 + 2 * 2 + 3  # GARBLE items twice more, 3 transient garbles
    # the ledger equals the server's own count of what it served whole
    served_pt = server.usage["prompt_tokens"] - before[0]["prompt_tokens"]
    served_ct = server.usage["completion_tokens"] - before[0]["completion_tokens"]
    t = judge.ledger.totals()
    assert (t["calls"], t["prompt_tokens"], t["completion_tokens"]) == (server.ok_calls - before[1], served_pt,
                                                                        served_ct)
    assert t["cost_usd"] == pytest.approx((served_pt * 10.0 + served_ct * 30.0) / 1e6)
    assert sum(v.prompt_tokens for v in verdicts) == served_pt
    rows = [json.loads(x) for x in ledger_path.read_text().splitlines()]
    assert len(rows) == t["calls"] and sum(r["completion_tokens"] for r in rows) == served_ct
    # a ledger opened again on the file starts from its totals
    assert CostLedger(ledger_path).totals()["prompt_tokens"] == served_pt


def test_budget_stops_before_the_next_batch(server, tmp_path):
    prompt = load_prompt("alpaca_eval_gpt4")
    judge = PairwiseJudge(api(server), prompt, ledger=CostLedger(prices={JUDGE_MODEL: {"prompt": 1e4}},
                                                                 max_cost=0.5))
    first = judge.judge_pair(pairs(3)[:2])
    assert all(v.preference is not None for v in first)
    spent = judge.ledger.totals()["cost_usd"]
    assert spent >= 0.5
    calls = server.ok_calls
    with pytest.raises(BudgetExceeded, match=r"spending limit reached: \$.* of --max-cost \$0.5000"):
        judge.judge_pair(pairs(3)[2:])
    assert server.ok_calls == calls  # nothing was sent


def test_identity_changes_with_model_or_prompt_version(server, tmp_path):
    p1 = load_prompt("alpaca_eval_gpt4")
    p2 = load_prompt("alpaca_eval_gpt4", version=2)
    a = PairwiseJudge(api(server), p1)
    b = PairwiseJudge(api(server, model="other-judge"), p1)
    c = PairwiseJudge(api(server), p2)
    assert len({a.info.fingerprint, b.info.fingerprint, c.info.fingerprint}) == 3
    va = a.judge_pair(pairs(1))[0]
    vb = b.judge_pair(pairs(1))[0]
    rows = [{"generator_1": "ref", "generator_2": "m", "preference": v.preference, "judge": v.judge}
            for v in (va, vb)]
    with pytest.raises(MixedJudgeError, match=r"api:judge-model.*api:other-judge"):
        summarize(rows)


def test_position_is_seeded_by_item_id_and_unswapped():
    ids = [f"alpaca_eval:{i}" for i in range(400)]
    first = [model_shown_first(i, 0) for i in ids]
    assert first == [model_shown_first(i, 0) for i in ids]  # reproducible
    assert 160 < sum(first) < 240  # about half the items each way
    assert first != [model_shown_first(i, 1) for i in ids]  # the seed matters
    # shown (model, reference): the judge prefers output_1 (1.0) -> the model wins (2.0)
    assert unswap(1.0, True) == 2.0 and unswap(2.0, True) == 1.0 and unswap(1.5, True) == 1.5
    assert unswap(1.0, False) == 1.0 and unswap(None, True) is None and unswap(1.25, True) == 1.75


def test_parsers():
    assert parse_ranking("[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]") == 1.0
    assert parse_ranking(" [{'model': 'model_2', 'rank': 1}, {'model': 'model_1', 'rank': 2}]\n") == 2.0
    for bad in ("", "model_1", "[{'model': 'model_1', 'rank': 3}]", "Sure! [{'model': 'model_1', 'rank': 1}]",
                "[{'model': 'model_1', 'rank': True}]", "{'model': 'model_1', 'rank': 1}", "[" * 500):
        assert parse_ranking(bad) is None, bad
    assert parse_identifier("m", "m", "M") == 1.0 and parse_identifier("M ", "m", "M") == 2.0
    assert parse_identifier("mM", "m", "M") is None


def test_weighted_judge_reads_the_identifier_probabilities(tiny_tok):
    from camels.backends.hf import HFBackend
    from camels.core.requests import ChoiceRequest
    from camels.tiny import tiny_llama

    hf = HFBackend(tiny_llama(tiny_tok, seed=5), tokenizer=tiny_tok, chat_format="tulu", device="cpu")
    prompt = load_prompt("alpaca_eval_clf_gpt4_turbo")
    judge = PairwiseJudge(hf, prompt)
    reqs = pairs(4)
    verdicts = judge.judge_pair(reqs)
    for r, v in zip(reqs, verdicts):
        lp = hf.choose([ChoiceRequest(prompt.render(instruction=r.instruction, output_1=r.output_1,
                                                    output_2=r.output_2), ("m", "M"))])[0].logprobs
        pm, pM = math.exp(lp[0]), math.exp(lp[1])
        assert v.preference == pytest.approx(1 + pM / (pm + pM), abs=1e-6)
        assert 1 < v.preference < 2 and v.attempts == 1 and v.raw[0].startswith("logprob m=")
    assert judge.identity.prompt == "alpaca_eval_clf_gpt4_turbo" and judge.ledger.totals()["calls"] == 4
