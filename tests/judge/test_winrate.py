"""AlpacaEval win rate: camels' figures equal the alpaca-eval package's on the real annotations.

The pinned reference values were computed by ``alpaca_eval.metrics.get_winrate`` (alpaca-eval 0.6.6,
installed in its own virtual environment because it needs setuptools<81) on the same files, with
``benchmarks/alpaca_eval_metrics.py``, which runs both sides and printed (full precision from that run):

* real file: win_rate 84.22360248447205, standard_error 1.2855613371106336, n_wins 678, n_wins_base 127,
  n_draws 0, n_total 805, discrete_win_rate 84.22360248447205;
* the edited copy (ties, legacy 0 ties, nulls, weighted preferences; rule in that script):
  win_rate 74.24364123159305, standard_error 1.316238688234225, n_wins 475, n_wins_base 113,
  n_draws 159, n_total 747, discrete_win_rate 74.23025435073627;
* the length-controlled win rate of the real file (``get_length_controlled_winrate``, length_controlled_v1)
  with the synthetic df_gamed.csv of that script (seed 0) in place of the hub's: 81.35389360446669, its
  standard error 0.057313621650674385.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from camels.cli import main
from camels.core.errors import RecordError
from camels.judge.annotations import read_annotations, summarize, summarize_file
from camels.judge.identity import JudgeIdentity, MixedJudgeError
from camels.judge.winrate import win_rate_metrics

ROOT = Path(__file__).resolve().parents[2]
REAL = ("alpaca_eval", "results", "tulu-2-dpo-7b", "alpaca_eval_gpt4", "annotations.json")


def _bench():
    spec = importlib.util.spec_from_file_location("aem", ROOT / "benchmarks" / "alpaca_eval_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _edited_rows(rows):
    return _bench().edited_rows(rows)


@pytest.mark.realdata
def test_summarize_real_annotations_equals_alpaca_eval(realdata, tmp_path):
    path = realdata.joinpath(*REAL)
    m = summarize_file(path)
    assert round(m["win_rate"], 4) == round(84.22360248447205, 4)
    assert round(m["standard_error"], 4) == round(1.2855613371106336, 4)
    assert m["win_rate"] == pytest.approx(84.22360248447205, abs=1e-9)
    assert m["standard_error"] == pytest.approx(1.2855613371106336, abs=1e-9)
    assert (m["n_wins"], m["n_losses"], m["n_ties"], m["n_unparsed"], m["n_total"]) == (678, 127, 0, 0, 805)
    assert (m["model"], m["reference"], m["annotator"]) == ("tulu-2-dpo-7b", "text_davinci_003", "alpaca_eval_gpt4")

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(_edited_rows(json.loads(path.read_text()))))
    e = summarize_file(edited)
    assert e["win_rate"] == pytest.approx(74.24364123159305, abs=1e-9)
    assert e["standard_error"] == pytest.approx(1.316238688234225, abs=1e-9)
    assert e["discrete_win_rate"] == pytest.approx(74.23025435073627, abs=1e-9)
    assert (e["n_wins"], e["n_losses"], e["n_ties"], e["n_total"], e["n_unparsed"]) == (475, 113, 159, 747, 58)


@pytest.mark.realdata
def test_cli_summarize_prints_and_writes(realdata, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["judge", "summarize", str(realdata.joinpath(*REAL)), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "win_rate: 84.2236" in printed and "standard_error: 1.2856" in printed
    written = json.loads(out.read_text())
    assert written["n_wins"] == 678 and written["n_losses"] == 127
    assert written["win_rate"] == pytest.approx(84.22360248447205)


def test_win_rate_by_hand():
    # values v = p - 1: 1, 1, 0, .5 (tie), .5 (legacy 0), .75 (weighted); None unparsed
    m = win_rate_metrics([2, 2.0, 1, 1.5, 0, 1.75, None, float("nan")])
    v = [1, 1, 0, 0.5, 0.5, 0.75]
    mean = sum(v) / 6
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / 5)
    assert m["win_rate"] == pytest.approx(100 * mean)
    assert m["standard_error"] == pytest.approx(100 * sd / math.sqrt(6))
    assert (m["n_wins"], m["n_losses"], m["n_ties"], m["n_unparsed"], m["n_total"]) == (3, 1, 2, 2, 6)
    assert m["discrete_win_rate"] == pytest.approx(100 * (1 + 1 + 0 + 0.5 + 0.5 + 1) / 6)
    empty = win_rate_metrics([None])
    assert empty["win_rate"] is None and empty["n_unparsed"] == 1


def _row(pref, annotator="alpaca_eval_gpt4", gen="m", ref="r", judge=None):
    row = {"instruction": "i", "output_1": "a", "generator_1": ref, "output_2": "b", "generator_2": gen,
           "annotator": annotator, "preference": pref}
    if judge is not None:
        row["judge"] = judge
    return row


def test_mixed_judges_are_refused_naming_both():
    with pytest.raises(MixedJudgeError, match="alpaca_eval annotator 'alpaca_eval_gpt4'.*'chatgpt_fn'"):
        summarize([_row(2), _row(1), _row(2, annotator="chatgpt_fn")])
    a = JudgeIdentity("api", "gpt-4-0314", "fp1", "alpaca_eval_gpt4", "1", {"temperature": 0}).to_dict()
    b = dict(a, prompt_version="2")
    with pytest.raises(MixedJudgeError, match=r"prompt alpaca_eval_gpt4 v1.*prompt alpaca_eval_gpt4 v2"):
        summarize([_row(2, judge=a), _row(2, judge=b)])
    with pytest.raises(MixedJudgeError, match="more than one generator_2"):
        summarize([_row(2), _row(2, gen="other")])
    assert summarize([_row(2, judge=a), _row(1, judge=a)])["judge"]["model"] == "gpt-4-0314"


def test_bad_annotations_name_file_record_and_field(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps([_row(2), _row(3)]))
    with pytest.raises(RecordError, match=r"a\.json: preference: record 1: preference must be in \[1, 2\]"):
        read_annotations(bad)
    bad.write_text(json.dumps([_row("2")]))
    with pytest.raises(RecordError, match="record 0: preference must be a number"):
        read_annotations(bad)
    bad.write_text(json.dumps({"preference": 2}))
    with pytest.raises(RecordError, match="expected a JSON list"):
        read_annotations(bad)


def test_cli_summarize_error_is_one_line(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps([_row(2), _row(2, annotator="other")]))
    proc = subprocess.run([sys.executable, "-m", "camels", "judge", "summarize", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("camels: error: ") and "refusing to mix" in proc.stderr


@pytest.mark.realdata
def test_length_controlled_equals_alpaca_eval_on_a_synthetic_gamed_file(realdata, tmp_path):
    gamed = tmp_path / "df_gamed.csv"
    _bench().synthetic_gamed(gamed)
    m = summarize_file(realdata.joinpath(*REAL), lc_data=str(gamed))
    assert m["length_controlled_win_rate"] == pytest.approx(81.35389360446669, abs=1e-6)
    assert m["lc_standard_error"] == pytest.approx(0.057313621650674385, abs=1e-6)
    assert m["length_controlled_note"].startswith("length_controlled_v1 fitted with df_gamed.csv")


def test_length_controlled_unavailable_is_said(tmp_path):
    rows = [_row(2), _row(1), _row(2)]
    m = summarize(rows)
    assert m["length_controlled_win_rate"] is None and "df_gamed.csv" in m["length_controlled_note"]
    m = summarize(rows, lc_data=str(tmp_path / "absent.csv"))
    assert m["length_controlled_win_rate"] is None and m["length_controlled_note"].startswith("not computed:")
    bad = tmp_path / "bad.csv"
    bad.write_text("index,model,preference\n0,x,0.5\n")
    m = summarize(rows, lc_data=str(bad))
    assert "bad.csv:2: bad df_gamed row" in m["length_controlled_note"]
