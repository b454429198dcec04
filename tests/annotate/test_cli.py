"""``camels annotate`` commands: import, create-admin (no default password), invite, import-judge."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from camels.annotate.db import JudgeVerdictRow, Pair, Study, User
from camels.annotate.store import open_store
from camels.cli import main

from .annotate_helpers import PASSWORD


def _outputs(path, generator, outputs):
    path.write_text(json.dumps([{"instruction": f"p{i}", "output": o, "generator": generator}
                                for i, o in enumerate(outputs)]))
    return path


def test_import_create_admin_invite_and_judge(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "a.sqlite")
    a = _outputs(tmp_path / "a.json", "ma", ["a0", "a1", "a2"])
    b = _outputs(tmp_path / "b.json", "mb", ["b0", "b1", "b2"])
    assert main(["annotate", "import", str(a), str(b), "--db", db, "-k", "2"]) == 0
    assert "study 'ma-vs-mb': 3 pairs of ma (A) vs mb (B), 2 annotator(s) per pair" in capsys.readouterr().out
    assert main(["annotate", "import", str(a), str(b), "--db", db]) == 1  # the name is taken
    assert "a study named 'ma-vs-mb' exists already" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["annotate", "create-admin", "boss", "--db", db, "--password-stdin"]) == 1  # no empty password
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["annotate", "create-admin", "boss", "--db", db, "--password-stdin"]) == 0

    assert main(["annotate", "invite", "--db", db, "--base-url", "https://eval.lab/"]) == 0
    link = capsys.readouterr().out.strip().splitlines()[-1]
    assert link.startswith("https://eval.lab/invite/") and len(link) > len("https://eval.lab/invite/") + 30

    judge_dir = tmp_path / "gpt4_judge"
    judge_dir.mkdir()
    rows = [{"instruction": "p0", "output_1": "b0", "output_2": "a0", "generator_1": "mb", "generator_2": "ma",
             "preference": 2},
            {"instruction": "p1", "output_1": "a1", "output_2": "b1", "generator_1": "ma", "generator_2": "mb",
             "preference": 1.5},
            {"instruction": "p2", "output_1": "a2", "output_2": "other text", "generator_1": "ma",
             "generator_2": "mb", "preference": 1},
            {"instruction": "p9", "output_1": "x", "output_2": "y", "generator_1": "ma", "generator_2": "mb",
             "preference": 1}]
    (judge_dir / "annotations.json").write_text(json.dumps(rows))
    assert main(["annotate", "import-judge", str(judge_dir / "annotations.json"), "--study", "ma-vs-mb",
                 "--db", db]) == 0
    assert "matched=2, no_pair=1, output_mismatch=1" in capsys.readouterr().out

    store = open_store(db)
    with store.Session() as s:
        study = s.scalars(select(Study)).one()
        assert (study.model_a, study.model_b, study.annotators_per_pair) == ("ma", "mb", 2)
        assert sorted(s.scalars(select(Pair.output_a))) == ["a0", "a1", "a2"]
        users = s.scalars(select(User)).all()
        assert [(u.username, u.is_admin) for u in users] == [("boss", True)]
        verdicts = s.execute(select(Pair.item_key, JudgeVerdictRow.judge, JudgeVerdictRow.winner)
                             .join(Pair)).all()
        assert sorted(verdicts) == [("p0", "gpt4_judge", -1), ("p1", "gpt4_judge", 0)]


def test_annotate_without_action_prints_help(capsys):
    assert main(["annotate"]) == 2
    assert "import-judge" in capsys.readouterr().out


def test_bad_database_url_is_one_clear_error(capsys):
    assert main(["annotate", "invite", "--db", "nota://url/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("camels: error: database 'nota://url/x': ") and len(err.splitlines()) == 1


@pytest.mark.realdata
def test_real_alpaca_eval_study_and_judge(realdata, tmp_path, capsys):
    """The real files: 805 pairs; the GPT-4 judge's annotations.json pairs with them by instruction, but
    its text_davinci_003 outputs differ from that model's model_outputs.json on 785 of 805 instructions,
    so only 20 verdicts judged the very texts the annotators see (the rest are counted, not attached)."""
    res = realdata / "alpaca_eval" / "results"
    db = str(tmp_path / "real.sqlite")
    assert main(["annotate", "import", str(res / "tulu-2-dpo-7b" / "model_outputs.json"),
                 str(res / "text_davinci_003" / "model_outputs.json"), "--db", db, "-k", "2"]) == 0
    assert "805 pairs of tulu-2-dpo-7b (A) vs text_davinci_003 (B)" in capsys.readouterr().out
    assert main(["annotate", "import-judge", str(res / "tulu-2-dpo-7b" / "alpaca_eval_gpt4" / "annotations.json"),
                 "--study", "tulu-2-dpo-7b-vs-text_davinci_003", "--db", db]) == 0
    assert capsys.readouterr().out.strip().endswith("matched=20, output_mismatch=785")
