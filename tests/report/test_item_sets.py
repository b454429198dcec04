"""Rows scored on different items (a run made with --limit, an older benchmark file) are not comparable cell
by cell: the report says so in a note naming the column, each row's item count and the items they share."""

from __future__ import annotations

from camels.report import build_report

from .helpers import mmlu, toxigen


def test_rows_on_different_items_are_noted(tmp_path):
    runs = tmp_path / "runs"
    mmlu(runs / "alpha", [1, 1, 0, 1])          # items q0..q3
    mmlu(runs / "beta", [1, 0])                 # items q0, q1 only
    toxigen(runs / "alpha", [0, 1])
    toxigen(runs / "beta", [1, 1])              # same items t0, t1: no note
    out = build_report([runs], tmp_path / "out", n_boot=50)
    notes = [n for n in out.table.notes if "different items" in n]
    assert notes == ["MMLU 0-shot: rows scored on different items (alpha 4, beta 2; 2 shared by all): compare "
                     "them on the shared items (paired tests with --baseline)"]
    assert f"- {notes[0]}" in out.markdown.read_text()
    # the same items in another order: no note
    mmlu(runs / "beta", [1, 0, 0, 0])
    assert not [n for n in build_report([runs], tmp_path / "out2", n_boot=50).table.notes if "different" in n]


def test_paired_tests_left_out_are_said(tmp_path):
    """A baseline without per-item scores (published numbers, a run without predictions.jsonl) gets no paired
    test, and the report says why instead of leaving the section out silently."""
    runs = tmp_path / "runs"
    mmlu(runs / "alpha", [1, 1, 0, 1])
    (tmp_path / "ref.yaml").write_text("models:\n  ref:\n    label: Ref\n    scores: {mmlu_0shot: 50}\n")
    out = build_report([runs], tmp_path / "out", reference=tmp_path / "ref.yaml", baseline="Ref", n_boot=50)
    assert out.table.paired == []
    assert [n for n in out.table.notes if "paired" in n] == [
        "no paired tests against Ref: published numbers have no per-item scores"]
    # a run without predictions.jsonl: named with its columns
    mmlu(runs / "beta", [1, 0, 0, 0])
    (runs / "beta" / "mmlu_0shot" / "predictions.jsonl").unlink()
    out = build_report([runs], tmp_path / "out", baseline="alpha", n_boot=50)
    assert [n for n in out.table.notes if "paired" in n] == [
        "beta: no paired test against alpha on MMLU 0-shot (one of the two runs has no per-item scores in "
        "predictions.jsonl)"]


def test_cli_takes_output_like_camels_eval(tmp_path, capsys):
    """``camels eval --output`` names its folder so; ``camels report`` takes the same spelling as --out."""
    from camels.cli import main

    runs = tmp_path / "runs"
    mmlu(runs / "alpha", [1, 1, 0, 1])
    assert main(["report", str(runs), "--output", str(tmp_path / "rep"), "--quiet", "--n-boot", "20"]) == 0
    assert (tmp_path / "rep" / "report.csv").read_text().splitlines()[1].startswith("alpha,no,75.0,")
