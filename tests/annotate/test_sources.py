"""Reading two systems' outputs (camels runs, alpaca_eval files) and a judge's verdicts."""

from __future__ import annotations

import json

import pytest

from camels.annotate.sources import (
    pair_outputs,
    read_judge_annotations,
    read_outputs,
    verdict_winner,
)
from camels.core.errors import RecordError


def _run(tmp_path, model: str, rows: list[dict]):
    folder = tmp_path / "runs" / model / "alpaca_eval"
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def _pred(i, output, **item):
    return {"schema": 1, "id": f"i{i}", "task": "t", "item": item, "requests": [], "results": [], "output": output}


def test_camels_runs_pair_by_id_with_prompt_from_item(tmp_path):
    a = _run(tmp_path, "tulu-7b", [_pred(0, "A0", instruction="Say hi", input="to Bob"),
                                   _pred(1, "A1", prompt="Count"), _pred(2, "A2", question="Why?")])
    b = _run(tmp_path, "llama-7b", [_pred(2, "B2", question="Why?"), _pred(0, "B0", instruction="Say hi",
                                                                           input="to Bob"), _pred(3, "B3", prompt="x")])
    sa, sb = read_outputs(a), read_outputs(b)
    assert (sa.model, sb.model) == ("tulu-7b", "llama-7b")  # the run folder's model name
    p = pair_outputs(sa, sb)
    assert [(x.key, x.prompt, x.output_a, x.output_b) for x in p.items] == [
        ("i0", "Say hi\n\nto Bob", "A0", "B0"), ("i2", "Why?", "A2", "B2")]
    assert p.skipped == {"only_in_a": 1, "only_in_b": 1}


def test_alpaca_outputs_pair_by_instruction(tmp_path):
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps([{"instruction": "p1", "output": "a1", "generator": "ga"},
                              {"instruction": "p2", "output": "a2", "generator": "ga"}]))
    fb.write_text(json.dumps([{"instruction": "p2", "output": "b2", "generator": "gb"}]))
    p = pair_outputs(read_outputs(fa), read_outputs(fb))
    assert (p.model_a, p.model_b) == ("ga", "gb")
    assert [(x.prompt, x.output_a, x.output_b) for x in p.items] == [("p2", "a2", "b2")]
    assert p.skipped == {"only_in_a": 1}


def test_bad_inputs_name_file_line_and_field(tmp_path):
    a = _run(tmp_path, "m", [_pred(0, "x", instruction="p"), {"id": "i1", "item": {"prompt": "q"}, "output": 3}])
    with pytest.raises(RecordError) as e:
        read_outputs(a)
    assert str(e.value).endswith("predictions.jsonl:2: output: the output is not a string (was the run a "
                                 "generation task?)")
    b = _run(tmp_path, "n", [_pred(0, "x", text="no prompt field")])
    with pytest.raises(RecordError, match=r"predictions.jsonl:1: item: no prompt"):
        read_outputs(b)
    f = tmp_path / "o.json"
    f.write_text(json.dumps([{"instruction": "p", "output": "o", "generator": "g"}, {"instruction": "q"}]))
    with pytest.raises(RecordError, match=r"o.json: \[1\].output: missing"):
        read_outputs(f)
    same = tmp_path / "same.json"
    same.write_text(json.dumps([{"instruction": "p", "output": "o", "generator": "g"}]))
    with pytest.raises(RecordError, match="both inputs name the model 'g'"):
        pair_outputs(read_outputs(same), read_outputs(same))


def test_judge_preferences():
    assert verdict_winner(1, "x", "y") == ("x", True)
    assert verdict_winner(1.2, "x", "y") == ("x", True)
    assert verdict_winner(1.5, "x", "y") == (None, True)
    assert verdict_winner(1.9, "x", "y") == ("y", True)
    assert verdict_winner(0, "x", "y") == (None, True)  # alpaca_eval's legacy tie
    assert verdict_winner(None, "x", "y") == (None, False)
    assert verdict_winner(float("nan"), "x", "y") == (None, False)
    for bad in (True, "1", 3, 0.5):
        with pytest.raises(ValueError, match="expected a number in"):
            verdict_winner(bad, "x", "y")


def test_read_judge_annotations_counts_unusable(tmp_path):
    rows = [{"instruction": "p", "output_1": "a", "output_2": "b", "generator_1": "x", "generator_2": "y",
             "preference": p} for p in (1, 2, 1.5, None, 0)]
    f = tmp_path / "annotations.json"
    f.write_text(json.dumps(rows))
    verdicts, skipped = read_judge_annotations(f)
    assert [v.winner for v in verdicts] == ["x", "y", None, None]
    assert skipped == {"unparsed": 1}
    rows[1]["preference"] = "2"
    f.write_text(json.dumps(rows))
    with pytest.raises(RecordError, match=r"annotations.json: \[1\].preference: expected a number"):
        read_judge_annotations(f)


@pytest.mark.realdata
def test_real_alpaca_eval_files_pair_all_805(realdata):
    res = realdata / "alpaca_eval" / "results"
    p = pair_outputs(read_outputs(res / "tulu-2-dpo-7b" / "model_outputs.json"),
                     read_outputs(res / "text_davinci_003" / "model_outputs.json"))
    assert (p.model_a, p.model_b, len(p.items), p.skipped) == ("tulu-2-dpo-7b", "text_davinci_003", 805, {})
    verdicts, skipped = read_judge_annotations(res / "tulu-2-dpo-7b" / "alpaca_eval_gpt4" / "annotations.json")
    assert len(verdicts) == 805 and skipped == {}
    assert sum(v.winner == "tulu-2-dpo-7b" for v in verdicts) == 678
