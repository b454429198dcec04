"""Export and dashboard: annotations made over HTTP come out in study terms, with the study's numbers."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select

from camels.annotate.db import Assignment, Pair, Study, User
from camels.annotate.service import Answer, allocate, import_judge, save_annotation
from camels.annotate.sources import JudgeVerdict
from camels.cli import main


def _annotate(store, username, item_answers):
    """Give ``username`` the pairs and answer item -> (acceptable_a, acceptable_b, preference -2..2)."""
    with store.Session() as s:
        uid = s.scalar(select(User.id).where(User.username == username))
        allocate(s, uid, batch=10)
        for asg in s.scalars(select(Assignment).where(Assignment.user_id == uid)):
            key = s.get(Pair, asg.pair_id).item_key
            if key not in item_answers:
                continue
            acc_a, acc_b, pref = item_answers[key]
            # Translate to what the annotator saw (the shown order is per assignment).
            first, second = (acc_a, acc_b) if asg.a_first else (acc_b, acc_a)
            shown = (pref if asg.a_first else -pref) + 3
            save_annotation(s, uid, asg.id, Answer(first, second, shown, comment=f"{username} on {key}"),
                            f"{username}-{key}")


def test_export_files_and_dashboard(tmp_path, store, make_study, make_user, login, capsys):
    make_study(n=3, k=2)
    make_user("u1")
    make_user("u2")
    make_user("boss", admin=True)
    # The hand-computed case of test_stats: q0 A/A, q1 tie/B, q2 B (one annotator).
    _annotate(store, "u1", {"q0": (True, False, -2), "q1": (False, True, 0), "q2": (True, False, 1)})
    _annotate(store, "u2", {"q0": (True, True, -1), "q1": (True, True, 2)})
    with store.Session() as s:
        study = s.scalars(select(Study)).one()
        verdicts = [JudgeVerdict(f"prompt {i}", "model-x", "model-y", f"answer A{i}", f"answer B{i}", "model-x")
                    for i in range(2)] + [JudgeVerdict("prompt 2", "model-y", "model-x", "answer B2", "answer A2",
                                                       None)]
        assert import_judge(s, study, verdicts, judge="gpt4", source="t") == {"matched": 3}

    out = tmp_path / "export"
    assert main(["annotate", "export", "--db", store.url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "x-vs-y: 5 annotations of 3 pairs by 2 annotator(s); acceptable A 80.0% B 60.0%" in printed
    assert "agreement (annotators, 2 items) strict 50.0% relaxed 75.0%" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "camels.human_pairwise" and res["schema"] == 1
    st = res["studies"][0]
    assert (st["model_a"], st["model_b"], st["pairs"], st["annotators_per_pair"]) == ("model-x", "model-y", 3, 2)
    assert [st["preference"][k]["rate"] for k in ("a_wins", "ties", "b_wins")] == [0.4, 0.2, 0.4]
    judge_row = st["agreement"][1]
    assert judge_row["between"] == "annotators and gpt4" and judge_row["items"] == 3
    assert abs(judge_row["strict"] - 1 / 3) < 1e-12 and abs(judge_row["relaxed"] - 1.75 / 3) < 1e-12

    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text())))
    assert len(rows) == 5
    q1 = sorted((r["annotator"], r["outcome"], r["preference_label"]) for r in rows if r["item"] == "q1")
    assert q1 == [("u1", "tie", "tie"), ("u2", "b", "b_clearly_better")]
    lines = [json.loads(x) for x in (out / "annotations.jsonl").read_text().splitlines()]
    assert {x["prompt"] for x in lines} == {"prompt 0", "prompt 1", "prompt 2"}
    assert {x["comment"] for x in lines if x["annotator"] == "u2"} == {"u2 on q0", "u2 on q1"}

    admin = login("boss")
    dash = admin.get("/admin/").text
    assert "Win rate of A, ties as half" in dash and "annotators and gpt4" in dash
    assert "<td>80.0% (37.6%–96.4%)</td>" in dash  # acceptance of A, 4/5 with its Wilson interval
    got = admin.get("/admin/export/results.json")
    assert got.headers["Content-Disposition"] == 'attachment; filename="results.json"'
    assert json.loads(got.text)["studies"][0]["acceptance"] == st["acceptance"]
    assert admin.get("/admin/export/annotations.csv").text.count("\n") == 6
    assert login("u1").get("/admin/export/annotations.csv").status_code == 403
