"""``camels run``: every stage once, then reused; --dry-run says what would run and why; keys follow inputs."""

from __future__ import annotations

import json
import re
import shutil

from camels.cli import main

from .pipeline_helpers import write_pipeline

STAGES = ["convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-tiny", "decontaminate-tiny", "train-tiny",
          "eval-base", "eval-tiny", "report"]


def _plan(capsys, path, *overrides) -> dict[str, tuple[str, str]]:
    """--dry-run's table as stage -> (action, why)."""
    assert main(["run", str(path), "--dry-run", *overrides]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines()[2:]:
        m = re.match(r"^  (\S+)\s+([0-9a-f]{12})  (\S+)\s+(.*)$", line)
        assert m, line
        rows[m.group(1)] = (m.group(3), m.group(4).split(";")[0])
    assert list(rows) == STAGES
    return rows


def test_run_reuse_and_dry_run(tmp_path, inputs, capsys):
    path = write_pipeline(tmp_path, inputs, steps=4)
    out = tmp_path / "out"
    plan = _plan(capsys, path)
    assert plan == {s: ("run", "not run before") for s in STAGES}
    assert not out.exists()  # a dry run writes nothing

    assert main(["run", str(path), "--no-progress"]) == 0
    log = capsys.readouterr().out
    assert [m for m in re.findall(r"\] (\S+): done in", log)] == STAGES
    # every stage's files: converted sources, the mixture without the 2 planted items, model, runs, report
    assert json.loads((out / "data/tiny/train.manifest.json").read_text())["dropped"] == \
        {"contaminated:alpaca_eval": {"sharegpt": 2}}
    assert (out / "train/tiny/final/config.json").is_file()
    for row in ("base", "tiny"):
        assert json.loads((out / f"eval/{row}/instruct_em/metrics.json").read_text())["metrics"]["n"] == 12
    csv = (out / "report/report.csv").read_text().splitlines()
    assert csv[0].startswith("model,published,other:instruct_em,")
    assert [line.split(",")[0] for line in csv[1:]] == ["base", "tiny"]
    assert [line.split(",")[5] for line in csv[1:]] == ["12", "12"]  # items behind each score
    assert "## Paired tests against base" in (out / "report/report.md").read_text()
    marker = json.loads((out / ".camels/stages/train-tiny.json").read_text())
    assert marker["stage"] == "train-tiny" and len(marker["key"]) == 64
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and ".camels" not in p.parts}

    # a second run reuses every stage and rewrites no output
    assert _plan(capsys, path) == {s: ("reuse", "done with the same key") for s in STAGES}
    assert main(["run", str(path)]) == 0
    assert re.findall(r"\] (\S+): reused", capsys.readouterr().out) == STAGES
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # a training change: data reused, training and what depends on it run again (the untrained row not)
    plan = _plan(capsys, path, "train.learning_rate=1e-3")
    assert {s for s, (a, _) in plan.items() if a == "reuse"} == set(STAGES[:5]) | {"eval-base"}
    assert plan["train-tiny"][1].startswith("key changed (was ")
    assert plan["report"][0] == "run"
    # a changed raw file changes that source's key and everything downstream of it, not the other sources
    raw = inputs / "raw" / "databricks-dolly.jsonl"
    original = raw.read_bytes()
    try:
        raw.write_bytes(original.replace(b'"category"', b'"category" ', 1))
        plan = _plan(capsys, path)
        assert [s for s, (a, _) in plan.items() if a == "reuse"] == ["convert-alpaca", "convert-sharegpt",
                                                                      "eval-base"]
    finally:
        raw.write_bytes(original)
    # a missing output runs its stage again, with the same key (so nothing after it changes)
    (out / "data/sources/alpaca.jsonl").unlink()
    plan = _plan(capsys, path)
    assert plan["convert-alpaca"] == ("run", f"output missing: {out / 'data/sources/alpaca.jsonl'}")
    assert {a for s, (a, _) in plan.items() if s != "convert-alpaca"} == {"reuse"}


def test_only_needs_earlier_stages_done(tmp_path, inputs, capsys):
    path = write_pipeline(tmp_path, inputs, steps=2)
    assert main(["run", str(path), "--only", "train"]) == 1
    assert capsys.readouterr().err.startswith("camels: error: stage convert-alpaca (data) is not done (not run "
                                              "before); it comes before the stages asked for with --only")
    assert main(["run", str(path), "--only", "data"]) == 0
    log = capsys.readouterr().out
    assert "train-tiny" not in log and (tmp_path / "out/data/tiny/train.jsonl").is_file()
    assert not (tmp_path / "out/train").exists()


def test_interrupted_evaluation_resumes_from_the_request_cache(tmp_path, inputs, capsys):
    path = write_pipeline(tmp_path, inputs, steps=2)
    out = tmp_path / "out"
    assert main(["run", str(path), "--no-progress"]) == 0
    first = json.loads((out / "eval/tiny/instruct_em/manifest.json").read_text())["counts"]
    assert first["computed"] == 12 and first["cache_hits"] == 0
    predictions = (out / "eval/tiny/instruct_em/predictions.jsonl").read_bytes()
    # as a process killed while evaluating leaves it: the stage started (its key noted), not done, the run
    # folder not yet published; the answers it had computed are in the request cache
    stages = out / ".camels/stages"
    key = json.loads((stages / "eval-tiny.json").read_text())["key"]
    (stages / "eval-tiny.json").unlink()
    (stages / "eval-tiny.started.json").write_text(json.dumps({"stage": "eval-tiny", "key": key}))
    shutil.rmtree(out / "eval/tiny/instruct_em")
    capsys.readouterr()
    plan = _plan(capsys, path)
    assert plan["eval-tiny"] == ("resume", "interrupted run of the same key")
    assert {a for s, (a, _) in plan.items() if s != "eval-tiny"} == {"reuse"}
    assert main(["run", str(path), "--no-progress"]) == 0
    again = json.loads((out / "eval/tiny/instruct_em/manifest.json").read_text())["counts"]
    assert again["computed"] == 0 and again["cache_hits"] == 12  # nothing answered twice
    assert (out / "eval/tiny/instruct_em/predictions.jsonl").read_bytes() == predictions
    assert not (stages / "eval-tiny.started.json").exists() and (stages / "eval-tiny.json").exists()
