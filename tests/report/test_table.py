"""A report of two run folders whose predictions are known reproduces a table written out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camels.cli import main
from camels.core.errors import ConfigError, RecordError
from camels.report import build_report
from camels.report.load import read_human, read_losses, read_reference

from .helpers import mmlu, two_models, write_run

# Averages: MMLU, BBH and AlpacaEval (ToxiGen and Other are not averaged): alpha (75 + 75 + 62.5) / 3 = 70.8,
# beta (25 + 50) / 2 = 37.5, Ref (50 + 60) / 2 = 55.0.
# % of Ref: alpha (75/50 + 75/60 + (100-25)/(100-20)) / 3 = (1.5 + 1.25 + 0.9375) / 3 = 122.9%;
#           beta (25/50 + 50/60 + 50/80) / 3 = 65.3%.
# Intervals (20000 resamples, so the nearest-rank quantiles are those of the exact bootstrap distribution):
#   alpha MMLU [1,1,0,1]: mean ~ Bin(4, 3/4)/4, P(0) = .004 < .025 <= P(<=.25) = .051 -> [25, 100]
#   beta MMLU [1,0,0,0]: the mirror image -> [0, 75]
#   alpha BBH: subtask a's mean is 0, .5, 1 (1/4, 1/2, 1/4), b always 1 -> macro .5/.75/1 -> [50, 100]
#   beta BBH: a always 0, b always 1 -> [50, 50]
#   alpha ToxiGen [0,0,1,0] -> [0, 75]; beta [1,1,0,0]: P(0) = P(1) = 1/16 > .025 -> [0, 100]
#   alpha AlpacaEval (1, .5, 0, 1): sum of 4 draws in halves, P(T <= 1) = .020 < .025 <= P(T <= 2) -> [25, 100]
#   beta mytask (3, 4): mean 3, 3.5, 4 with 1/4, 1/2, 1/4 -> [3, 4]
# Paired tests, alpha minus beta on shared ids:
#   MMLU d = [0, 100, 0, 100]: 50.00 points; 2 discordant, both for alpha: McNemar p = 2 * 1/4 = 0.5;
#     CI: mean of d ~ Bin(4, 1/2)/4 -> [0, 100]
#   BBH d: a:0 -> 100, a:1 -> 0, b:0 -> 0: macro (50 + 0) / 2 = 25.00; weights 1/4, 1/4, 1/2 differ, so
#     sign flips of the one non-zero weighted difference: p = 1; CI: a's mean 0/50/100 -> macro [0, 50]
#   ToxiGen d = [-100, -100, 100, 0]: -25.00; McNemar b=1, c=2: p = 2 * (1 + 3) / 8 = 1;
#     CI: P(mean = -1) = 1/16 -> -100; P(mean >= .75) = .020 < .025 <= P(mean >= .5) = .074 -> 50
EXPECTED_MD = """\
# camels report

Columns by skill: Factual knowledge: MMLU 0-shot; Reasoning: BBH CoT; Open-ended/safety: ToxiGen (lower is better), AlpacaEval win rate; Other: mytask.

| model | MMLU 0-shot | BBH CoT | ToxiGen (lower is better) | AlpacaEval win rate | mytask | Average | % of Ref |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| alpha | 75.0 | 75.0 | 25.0 | 62.5 | — | 70.8 (3/3) | 122.9% (3) |
| beta | 25.0 | 50.0 | 50.0 | — | 3.5 | 37.5 (2/3) | 65.3% (3) |
| Ref (reference) | 50.0 | 60.0 | 20.0 | — | — | 55.0 (2/3) | — |

## 95% intervals

| model | MMLU 0-shot | BBH CoT | ToxiGen (lower is better) | AlpacaEval win rate | mytask |
| --- | ---: | ---: | ---: | ---: | ---: |
| alpha | [25.0, 100.0] | [50.0, 100.0] | [0.0, 75.0] | [25.0, 100.0] | — |
| beta | [0.0, 75.0] | [50.0, 50.0] | [0.0, 100.0] | — | [3.0, 4.0] |

## Paired tests against beta

| model | baseline | benchmark | n shared | difference | 95% CI | p | test |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| alpha | beta | MMLU 0-shot | 4 | 50.00 | [0.0, 100.0] | 0.5000 | mcnemar-exact |
| alpha | beta | BBH CoT | 3 | 25.00 | [0.0, 50.0] | 1.0000 | sign-flip-exact |
| alpha | beta | ToxiGen (lower is better) | 4 | -25.00 | [-100.0, 50.0] | 1.0000 | mcnemar-exact |

Scores in percent; — = no result (never counted as 0).
Intervals: 95% percentile bootstrap of the per-item scores (20000 resamples, seed 0); resampled BBH within subtasks (macro-averaged metrics).
Average: mean of the row's cells among MMLU 0-shot, BBH CoT, AlpacaEval; (k/N) = cells present of N.
ToxiGen: share of toxic generations, lower is better; not in the average.
Other: runs outside the study's columns (other tasks or options, second runs), not averaged; known tasks in percent, unknown ones as the task wrote them.
% of Ref: per benchmark score / reference score, averaged over the benchmarks both have (count in brackets); lower-is-better ToxiGen compares (100 - score) / (100 - reference).
Paired tests: row minus baseline on the items both have (matched by item id), in percent points; paired bootstrap CI; p two-sided, McNemar exact for 0/1 scores, else a sign-flip permutation test (exact up to 16 differing items, else 10000 seeded flips).
"""

EXPECTED_CSV = """\
model,published,mmlu_0shot,mmlu_0shot_lo,mmlu_0shot_hi,mmlu_0shot_n,bbh_cot,bbh_cot_lo,bbh_cot_hi,bbh_cot_n,\
toxigen,toxigen_lo,toxigen_hi,toxigen_n,alpaca_eval,alpaca_eval_lo,alpaca_eval_hi,alpaca_eval_n,\
other:mytask,other:mytask_lo,other:mytask_hi,other:mytask_n,average,average_n,share_of_reference,share_n
alpha,no,75.0,25.0,100.0,4,75.0,50.0,100.0,3,25.0,0.0,75.0,4,62.5,25.0,100.0,4,,,,,70.833333,3,122.916667,3
beta,no,25.0,0.0,75.0,4,50.0,50.0,50.0,3,50.0,0.0,100.0,4,,,,,3.5,3.0,4.0,2,37.5,2,65.277778,3
Ref,yes,50.0,,,,60.0,,,,20.0,,,,,,,,,,,,55.0,2,,
"""


def test_two_runs_reproduce_the_hand_written_table(tmp_path):
    runs = two_models(tmp_path)
    outs = build_report([runs], tmp_path / "out", reference=tmp_path / "ref.yaml", baseline="beta",
                        n_boot=20000, seed=0)
    assert outs.markdown.read_text(encoding="utf-8") == EXPECTED_MD
    assert outs.csv.read_text(encoding="utf-8") == EXPECTED_CSV
    text = outs.text.read_text(encoding="utf-8")
    assert text.splitlines()[2:6] == [
        "                 Factual knowledge  Reasoning  Open-ended/safety    Other",
        "model                  MMLU 0-shot    BBH CoT  ToxiGen  AlpacaEval  mytask     Average    % of Ref",
        "alpha                         75.0       75.0     25.0        62.5       —  70.8 (3/3)  122.9% (3)",
        "beta                          25.0       50.0     50.0           —     3.5  37.5 (2/3)   65.3% (3)"]


def test_outputs_are_byte_identical_and_path_free(tmp_path):
    runs = two_models(tmp_path)
    first = build_report([runs / "alpha", runs / "beta"], tmp_path / "o1", reference=tmp_path / "ref.yaml",
                         baseline="alpha", n_boot=300)
    second = build_report([runs / "alpha", runs / "beta"], tmp_path / "o2", reference=tmp_path / "ref.yaml",
                          baseline="alpha", n_boot=300)
    for name in ("report.md", "report.csv", "report.txt", "report.html"):
        one, two = (first.markdown.parent / name).read_bytes(), (second.markdown.parent / name).read_bytes()
        assert one == two, name
        assert str(tmp_path).encode() not in one, name


def test_cli_prints_the_table_and_names_rows(tmp_path, capsys):
    runs = two_models(tmp_path)
    rc = main(["report", str(runs / "alpha"), str(runs / "beta"), "--out", str(tmp_path / "out"),
               "--name", f"{runs / 'alpha'}=tuned", "--reference", str(tmp_path / "ref.yaml"), "--n-boot", "200"])
    out = capsys.readouterr()
    assert rc == 0
    assert "tuned" in out.out and "% of Ref" in out.out and "report written to" in out.err
    csv_lines = (tmp_path / "out" / "report.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["tuned", "beta", "Ref"]
    rc = main(["report", str(runs), "--out", str(tmp_path / "o2"), "--baseline", "nobody"])
    assert rc == 1 and "baseline 'nobody' is not a row" in capsys.readouterr().err


def test_cli_prints_the_text_it_wrote(tmp_path, capsys, monkeypatch):
    runs = two_models(tmp_path)
    real_read_text = Path.read_text

    def no_read_back(self, *args, **kwargs):  # the printed table is the rendered one, not the file read back
        assert self.name != "report.txt", "camels report read report.txt back"
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_read_back)
    rc = main(["report", str(runs), "--out", str(tmp_path / "out"), "--reference", str(tmp_path / "ref.yaml"),
               "--baseline", "beta", "--n-boot", "200"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.encode("utf-8") == (tmp_path / "out" / "report.txt").read_bytes()
    assert out.startswith("camels report\n") and "Paired tests against beta" in out


def test_bad_prediction_names_file_and_line(tmp_path):
    runs = two_models(tmp_path)
    pred = runs / "alpha" / "mmlu_0shot" / "predictions.jsonl"
    lines = pred.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[2])
    del obj["scores"]["correct"]
    lines[2] = json.dumps(obj)
    pred.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as e:
        build_report([runs], tmp_path / "out")
    assert str(e.value).startswith(f"{pred}:3: scores.correct: no per-item score 'correct'")


def test_missing_and_skipped_runs_are_said(tmp_path):
    runs = two_models(tmp_path)
    (runs / "alpha" / ".gsm8k_cot.partial-999999").mkdir()
    (runs / "alpha" / "broken").mkdir()
    (runs / "beta" / "toxigen" / "predictions.jsonl").unlink()
    (runs / "gamma" / ".mmlu_0shot.partial-999999").mkdir(parents=True)  # a model whose only run died
    outs = build_report([runs], tmp_path / "out", n_boot=100)
    md = outs.markdown.read_text(encoding="utf-8")
    assert "- alpha: unfinished run folder .gsm8k_cot.partial-999999 not shown" in md
    assert "- alpha: broken has no metrics.json; not shown" in md
    assert "- beta: toxigen has no predictions.jsonl; no interval" in md
    assert "- gamma: no finished run folder inside; not shown" in md
    assert "| beta | 25.0 | 50.0 | 50.0 | — | 3.5 | 37.5 (2/3) |" in md  # the value stays, from metrics.json
    with pytest.raises(ConfigError, match="no such folder"):
        build_report([tmp_path / "nowhere"], tmp_path / "out")


def test_shipped_reference_rows():
    ref = read_reference("tulu-7b")
    assert ref.label == "Tülu 7B (published)" and ref.published
    assert {k: c.value for k, c in ref.cells.items()} == {
        "mmlu_0shot": 44.5, "mmlu_5shot": 47.0, "gsm8k_direct": 6.0, "gsm8k_cot": 27.0, "bbh_direct": 38.1,
        "bbh_cot": 39.2, "tydiqa_goldp": 45.7, "tydiqa_closed_book": 7.7, "codex_eval_pass1": 17.5,
        "codex_eval_pass10": 27.8, "alpaca_eval": 48.3}
    big = read_reference("tulu-30b")
    assert big.cells["gsm8k_cot"].value == 51.0 and big.cells["alpaca_eval"].value == 63.5
    with pytest.raises(ConfigError, match="no shipped reference model of that name"):
        read_reference("tulu-65b")


def test_published_rows_average_and_share(tmp_path):
    runs = tmp_path / "runs"
    mmlu(runs / "mine", [1, 0, 1, 0, 1, 0, 1, 0])   # 50.0 on MMLU 0-shot only
    outs = build_report([runs], tmp_path / "out", reference="tulu-7b", n_boot=100)
    md = outs.markdown.read_text(encoding="utf-8")
    # the 11 published cells average (44.5 + 47 + 6 + 27 + 38.1 + 39.2 + 45.7 + 7.7 + 17.5 + 27.8 + 48.3) / 11
    assert "| Tülu 7B (published) (reference) | 44.5 | 47.0 | 6.0 | 27.0 | 38.1 | 39.2 | 45.7 | 7.7 | 17.5 | " \
           "27.8 | 48.3 | 31.7 (11/11) | — |" in md
    # mine: one shared benchmark, 50 / 44.5 = 112.4%
    assert "| mine | 50.0 | — | — | — | — | — | — | — | — | — | — | 50.0 (1/11) | 112.4% (1) |" in md


def test_human_acceptance_and_losses(tmp_path):
    runs = two_models(tmp_path)
    results = {"schema": 1, "kind": "camels.human_pairwise", "studies": [
        {"study": "s1", "model_a": "alpha", "model_b": "gpt", "acceptance": {
            "a": {"rate": 0.8, "count": 8, "n": 10}, "b": {"rate": 0.9, "count": 9, "n": 10}}},
        {"study": "s2", "model_a": "beta", "model_b": "alpha", "acceptance": {
            "a": {"rate": 0.5, "count": 5, "n": 10}, "b": {"rate": 0.6, "count": 6, "n": 10}}}]}
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert read_human(tmp_path / "results.json") == {"alpha": (14, 20), "gpt": (9, 10), "beta": (5, 10)}
    train = tmp_path / "train"
    train.mkdir()
    rows = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 2.5}, {"step": 3, "loss": 1.0}]
    (train / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_losses(train) == [(1, 3.0), (2, 2.5), (3, 1.0)]  # a resumed run's repeated step: the last
    outs = build_report([runs], tmp_path / "out", human=tmp_path / "results.json", n_boot=100,
                        training_runs={"alpha": train})
    md = outs.markdown.read_text(encoding="utf-8")
    # alpha 14/20 = 70.0 (Wilson [48.1, 85.5]), beta 5/10 = 50.0 (Wilson [23.7, 76.3])
    assert "| alpha | 75.0 | 75.0 | 25.0 | 62.5 | 70.0 | — |" in md
    assert "| beta | 25.0 | 50.0 | 50.0 | — | 50.0 | 3.5 |" in md
    assert "[48.1, 85.5]" in md and "[23.7, 76.3]" in md
    assert "- human acceptance of 'gpt' (9/10) matches no row (rows are named alpha, beta)" in md


def test_each_reference_is_read_once(tmp_path, monkeypatch):
    import camels.report.load as load
    from camels.core.results import TaskResult

    runs = two_models(tmp_path)
    reads: dict[str, int] = {}
    real_result, real_jsonl, real_yaml = TaskResult.read.__func__, load.iter_jsonl, load.read_yaml

    def count(path):
        reads[str(path)] = reads.get(str(path), 0) + 1

    monkeypatch.setattr(TaskResult, "read", classmethod(lambda cls, path: (count(path), real_result(cls, path))[1]))
    monkeypatch.setattr(load, "iter_jsonl", lambda path, **kw: (count(path), real_jsonl(path, **kw))[1])
    monkeypatch.setattr(load, "read_yaml", lambda path: (count(path), real_yaml(path))[1])
    # a reference folder that is also a row: its runs are read once, and the row is the reference
    outs = build_report([runs], tmp_path / "o1", reference=runs / "beta", n_boot=20)
    assert outs.table.reference == "beta" and [r.label for r in outs.table.rows] == ["alpha", "beta"]
    assert reads and set(reads.values()) == {1}, {k: v for k, v in reads.items() if v != 1}
    assert sum(k.endswith("metrics.json") for k in reads) == 8  # 4 runs each
    reads.clear()
    build_report([runs / "alpha"], tmp_path / "o2", reference="tulu-7b", n_boot=20)  # a shipped reference YAML
    shipped = [k for k in reads if k.endswith("tulu-v1-published.yaml")]
    assert len(shipped) == 1 and reads[shipped[0]] == 1
    # a folder named like a row but holding other numbers cannot be told from it in the table
    (tmp_path / "other" / "alpha").mkdir(parents=True)
    mmlu(tmp_path / "other" / "alpha", [0, 0])
    with pytest.raises(ConfigError, match="the reference and a row are both named 'alpha'"):
        build_report([runs / "alpha"], tmp_path / "o3", reference=tmp_path / "other" / "alpha", n_boot=20)


def test_reference_forms_and_column_matching(tmp_path):
    runs = two_models(tmp_path)
    # a model folder as the reference: beta's runs; alpha's share over MMLU, BBH, ToxiGen (Other is left out)
    outs = build_report([runs / "alpha"], tmp_path / "o1", reference=runs / "beta", n_boot=50)
    share = outs.table.shares["alpha"]
    assert share.ratios == {"bbh_cot": 1.5, "mmlu_0shot": 3.0, "toxigen": 1.5}  # tox: (100-25)/(100-50)
    assert "| beta (reference) | 25.0 | 50.0 | 50.0 | — | 3.5 | 37.5 (2/3) | — |" in outs.markdown.read_text("utf-8")
    # FILE.yaml:NAME picks one model of several
    two = tmp_path / "two.yaml"
    two.write_text("models:\n  x: {scores: {mmlu_0shot: 10}}\n  y: {label: Why, scores: {mmlu_0shot: 20}}\n",
                   encoding="utf-8")
    assert read_reference(f"{two}:y").cells["mmlu_0shot"].value == 20.0
    with pytest.raises(ConfigError, match="holds 2 models"):
        read_reference(two)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x:\n    scores:\n      mmlu_0shot: 10\n      mmlu_9shot: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: models.x.scores.mmlu_9shot: unknown column"):
        read_reference(bad)
    # a second run for a column (a manifest saying mmlu 0-shot under another name) goes to Other, said so;
    # an MMLU run with other options (3 shots) also lands in Other; a run without manifest named after a
    # column fills it
    write_run(runs / "alpha", "zz_mmlu_again", "mmlu", {"shots": 0}, "accuracy", {"accuracy": 0.25},
              [("q0", {}, {"correct": 0.0}), ("q1", {}, {"correct": 1.0})])
    mmlu(runs / "alpha", [1, 1, 1, 1], shots=3)
    nomani = mmlu(runs / "beta", [1, 1, 0, 0], shots=5)
    (nomani / "manifest.json").unlink()
    outs = build_report([runs], tmp_path / "o2", n_boot=50)
    cols = [c.key for c in outs.table.columns]
    assert cols == ["mmlu_0shot", "mmlu_5shot", "bbh_cot", "toxigen", "alpaca_eval", "other:mmlu_3shot",
                    "other:mytask", "other:zz_mmlu_again"]
    md = outs.markdown.read_text("utf-8")
    assert "- alpha: zz_mmlu_again is a second run for MMLU 0-shot (first: mmlu_0shot); shown under Other" in md
    # known tasks in Other keep their scale (percent); the zz run's metrics.json disagrees with its items
    assert "| alpha | 75.0 | — | 75.0 | 25.0 | 62.5 | 100.0 | — | 25.0 | 70.8 (3/4) |" in md
    assert ("- alpha: zz_mmlu_again: the per-item scores average 50.0000, zz_mmlu_again/metrics.json says 25.0000; "
            "the interval is of the per-item scores") in md
    beta = next(r for r in outs.table.rows if r.label == "beta")
    assert beta.cells["mmlu_5shot"].value == 50.0 and beta.cells["mmlu_5shot"].ci is not None


def test_only_other_columns_has_no_average(tmp_path):
    write_run(tmp_path / "runs" / "m", "skills", "instruct_em", {}, "exact_match", {"exact_match": 0.5},
              [("s0", {}, {"exact_match": 1.0}), ("s1", {}, {"exact_match": 0.0})])
    outs = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=100)
    md = outs.markdown.read_text("utf-8")
    assert "| model | skills |\n| --- | ---: |\n| m | 50.0 |\n" in md  # instruct_em: a fraction, shown in percent
    assert "Average" not in md and "Average" not in outs.html.read_text("utf-8")
    assert outs.csv.read_text("utf-8").splitlines()[1] == "m,no,50.0,0.0,100.0,2,,0,,"


def test_truncated_predictions_stop_the_report_unless_lenient(tmp_path, capsys):
    runs = two_models(tmp_path)
    pred = runs / "alpha" / "mmlu_0shot" / "predictions.jsonl"
    whole = pred.read_bytes()
    assert whole.count(b"\n") == 4 and whole.endswith(b"\n")
    pred.write_bytes(whole[:-40])  # a copy killed inside the 4th line
    args = ["report", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "50", "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"camels: error: {pred}:4: the last line is cut off (malformed JSON: ")
    assert err.endswith("no newline at its end): the file looks truncated (a run or a copy stopped midway); run or "
                        "copy it again, or give --lenient to show the cell as missing\n")
    assert not (tmp_path / "out").exists()
    assert main(args + ["--lenient"]) == 0
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| alpha | — | 75.0 | 25.0 | 62.5 | — | 68.8 (2/3) |" in md  # MMLU missing, not 0, not averaged
    note = md.split("## Notes\n\n")[1].splitlines()
    assert note[0].startswith("- alpha: mmlu_0shot/predictions.jsonl:4: the last line is cut off (malformed JSON")
    assert note[0].endswith("no newline at its end): the file looks truncated (a run or a copy stopped midway); "
                            "shown as missing (lenient)")
    # cut exactly at a line's end: every line parses, but metrics.json counts 4 scored items
    pred.write_bytes(whole[:whole.rindex(b"\n", 0, len(whole) - 1) + 1])
    with pytest.raises(RecordError) as e:
        build_report([runs], tmp_path / "o2", n_boot=50)
    assert str(e.value) == (f"{pred}:4: the file ends after 3 records but metrics.json counts 4 scored items: the file "
                            "looks truncated (a run or a copy stopped midway); run or copy it again, or give --lenient "
                            "to show the cell as missing")
    pred.write_bytes(whole)
    # an unknown task's file is refused as well (it used to give no interval, silently)
    other = runs / "beta" / "mytask" / "predictions.jsonl"
    other.write_bytes(other.read_bytes()[:-5])
    with pytest.raises(RecordError, match=r"mytask/predictions.jsonl:2: the last line is cut off"):
        build_report([runs], tmp_path / "o3", n_boot=50)
    outs = build_report([runs], tmp_path / "o3", n_boot=50, lenient=True)
    beta = next(r for r in outs.table.rows if r.label == "beta")
    assert beta.cells["other:mytask"].value is None and beta.cells["mmlu_0shot"].value == 25.0


def test_unknown_task_without_per_item_scores_says_so(tmp_path):
    write_run(tmp_path / "runs" / "m", "judged", "judged", {}, "rating", {"rating": 7.5},
              [("j0", {}, {"verdict": "good"}), ("j1", {}, {"verdict": "bad"})])
    outs = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=20)
    assert outs.table.rows[0].cells["other:judged"].value == 7.5
    assert outs.table.notes == ["m: judged: no interval (predictions.jsonl line 1: no per-item score 'rating' for "
                                "column judged)"]
