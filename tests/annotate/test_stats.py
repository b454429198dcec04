"""Acceptance, win/tie/loss and agreement against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from camels.annotate.stats import (
    HumanRecord,
    acceptance,
    inter_annotator,
    judge_agreement,
    outcome,
    preference,
    study_results,
    wilson,
)

R = HumanRecord
# Two items with two annotators, one with one (worked through in the comments below).
RECORDS = [
    R("i1", "u1", True, False, -2),   # A clearly better
    R("i1", "u2", True, True, -1),    # A slightly better  -> i1: outcomes agree
    R("i2", "u1", False, True, 0),    # tie
    R("i2", "u2", True, True, 2),     # B clearly better   -> i2: tie vs B = half in relaxed
    R("i3", "u1", True, False, 1),    # B slightly better (single annotation)
]


def test_outcome_collapses_the_five_point_scale():
    assert [outcome(p) for p in (-2, -1, 0, 1, 2)] == [-1, -1, 0, 1, 1]


def test_wilson_interval_textbook_values():
    assert wilson(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_acceptance_rate_per_model():
    acc = acceptance(RECORDS)
    # A acceptable in 4 of 5 annotations, B in 3 of 5.
    assert (acc["a"]["count"], acc["a"]["n"], acc["a"]["rate"]) == (4, 5, 0.8)
    assert (acc["b"]["count"], acc["b"]["rate"]) == (3, 0.6)
    assert (acc["a"]["low"], acc["a"]["high"]) == pytest.approx(wilson(4, 5))


def test_win_tie_loss_and_win_rate():
    pref = preference(RECORDS)
    # Outcomes A, A, tie, B, B.
    assert [pref[k]["rate"] for k in ("a_wins", "ties", "b_wins")] == [0.4, 0.2, 0.4]
    assert pref["answers"] == {"-2": 1, "-1": 1, "0": 1, "1": 1, "2": 1}
    # Scores 1, 1, .5, 0, 0: mean .5; sample sd .5; half-width 1.96 * .5 / sqrt(5) = .43826.
    w = pref["win_rate_a"]
    assert w["rate"] == 0.5
    assert (w["low"], w["high"]) == pytest.approx((0.5 - 0.43826, 0.5 + 0.43826), abs=1e-5)


def test_inter_annotator_agreement_strict_and_ties_as_half():
    ag = inter_annotator(RECORDS)
    # i1: A/A agree (1, 1); i2: tie/B (0, .5). i3 has one annotator and does not count.
    assert (ag["items"], ag["pairs"]) == (2, 2)
    assert (ag["strict"], ag["relaxed"]) == (0.5, 0.75)
    # Acceptance: i1 agrees on A, not on B; i2 agrees on B, not on A.
    assert (ag["acceptance_a"], ag["acceptance_b"], ag["acceptance"]) == (0.5, 0.5, 0.5)


def test_agreement_with_three_annotators_averages_their_pairs():
    rows = [R("x", "u1", True, True, -1), R("x", "u2", True, True, -2), R("x", "u3", False, True, 0),
            R("y", "u1", True, True, 1), R("y", "u2", True, True, -1)]
    ag = inter_annotator(rows)
    # x: pairs (A,A)=1/1, (A,tie)=0/.5, (A,tie)=0/.5 -> 1/3, 2/3; y: (B,A) -> 0, 0.
    assert ag["items"] == 2 and ag["pairs"] == 4
    assert ag["strict"] == pytest.approx((1 / 3 + 0) / 2)
    assert ag["relaxed"] == pytest.approx((2 / 3 + 0) / 2)
    assert ag["acceptance_a"] == pytest.approx((1 / 3 + 1) / 2) and ag["acceptance_b"] == 1.0


def test_no_item_with_two_annotators_gives_no_agreement():
    ag = inter_annotator([R("a", "u1", True, True, 0), R("b", "u1", True, True, 0)])
    assert ag["items"] == 0 and math.isnan(ag["strict"]) and math.isnan(ag["acceptance"])


def test_agreement_with_a_judge():
    judge = {"i1": -1, "i2": -1, "i3": 0, "elsewhere": 1}
    ag = judge_agreement(RECORDS, judge, "gpt4")
    # i1: A,A vs A -> strict 1, relaxed 1; i2: tie,B vs A -> (0,.5),(0,0) -> 0, .25; i3: B vs tie -> 0, .5.
    assert (ag["items"], ag["pairs"]) == (3, 5)
    assert ag["strict"] == pytest.approx(1 / 3)
    assert ag["relaxed"] == pytest.approx((1 + 0.25 + 0.5) / 3)
    assert (ag["judge_a_wins"], ag["judge_ties"], ag["judge_b_wins"]) == pytest.approx((2 / 3, 1 / 3, 0))


def test_study_results_puts_annotators_and_judges_in_one_table():
    res = study_results(RECORDS, {"gpt4": {"i1": -1}, "claude": {"i2": 1}})
    assert (res["annotations"], res["items"], res["annotators"]) == (5, 3, 2)
    assert [row["between"] for row in res["agreement"]] == ["annotators", "annotators and claude",
                                                             "annotators and gpt4"]
    assert res["agreement"][1]["strict"] == 0.5  # i2: tie vs B = 0, B vs B = 1
