"""The demo pipeline end to end, small: every stage's files and figures, and that training lowered the loss."""

from __future__ import annotations

import json

import pytest

from camels.demo import PLANTED, run_demo
from camels.demo.skills import _words, split, write_raw


def test_skills_split_is_disjoint_and_deterministic(tmp_path):
    train, held = split(400, 40, seed=3)
    assert len(train) == 400 and len(held) == 40
    held_words = [_words(e) for e in held]
    for e in train:  # no training prompt is a held-out prompt nor a run of its words
        w = _words(e)
        assert not any(w in h or h in w for h in held_words)
    assert split(400, 40, seed=3) == (train, held)
    a = write_raw(tmp_path / "a", 40, 8, seed=1, planted=2)
    b = write_raw(tmp_path / "b", 40, 8, seed=1, planted=2)
    for name in ("alpaca", "dolly", "oasst1", "sharegpt", "heldout"):
        assert a[name].read_bytes() == b[name].read_bytes()
    chats = json.loads(a["sharegpt"].read_text())
    planted = [c for c in chats if c["id"].startswith("demo-planted-")]
    assert len(planted) == 2
    heldout = [json.loads(x) for x in a["heldout"].read_text().splitlines()]
    assert planted[0]["conversations"][1]["value"] == heldout[0]["output"]


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path):
    # half the default training (about 30 s): enough for the trained model to beat the untrained one
    res = run_demo(tmp_path, n_train=2000, n_eval=20, epochs=4, progress=False)
    data = tmp_path / "data" / "trained"
    # data: 4 sources converted, mixed, the planted held-out items (and only those) dropped
    mix_manifest = json.loads((data / "mix.manifest.json").read_text())
    assert mix_manifest["conversations_out"] == res.conversations
    assert set(mix_manifest["per_source"]) == {"alpaca", "dolly", "oasst1", "sharegpt"}
    clean = json.loads((data / "train.manifest.json").read_text())
    assert res.contaminated_dropped == PLANTED
    assert clean["dropped"] == {"contaminated:alpaca_eval": {"sharegpt": PLANTED}}
    ids = [json.loads(x)["id"] for x in (data / "train.jsonl").read_text().splitlines()]
    assert len(ids) == res.conversations - PLANTED
    assert not any("demo-planted" in i for i in ids)
    assert (data / "stats.csv").read_text().splitlines()[0].startswith("source,")
    # train: a loadable model folder with the chat contract, and a falling loss
    assert (res.final_model / "chat_format.json").exists()
    assert res.final_loss < res.first_loss
    # eval: both models scored on every held-out item, per skill
    for label in ("base", "trained"):
        metrics = json.loads((tmp_path / "eval" / label / "instruct_em" / "metrics.json").read_text())
        assert metrics["metrics"]["n"] == 20
        assert set(metrics["metrics"]["per_group"]) == {"count", "reverse", "spell", "upper"}
    # the margin training bought: nothing right before, some held-out items right after
    assert res.base_score == 0.0 and res.trained_score >= 0.1
    assert res.trained_score == sum(t for _, t in res.per_group.values()) / 4  # 5 items per skill
    # the report across both rows, from the pipeline's last stage, with the same scores
    csv = (tmp_path / "report" / "report.csv").read_text().splitlines()
    assert [line.split(",")[:3] for line in csv[1:]] == [["base", "no", "0.0"],
                                                          ["trained", "no", f"{100 * res.trained_score:.1f}"]]
    assert "loss curves" in (tmp_path / "report" / "report.html").read_text()
    # the demo is a pipeline run: running its config again reuses every stage
    from camels.pipeline import run_pipeline

    again = run_pipeline(tmp_path / "pipeline.trained.yaml", dry_run=True)
    assert {st.action for _, st in again.statuses} == {"reuse"}
