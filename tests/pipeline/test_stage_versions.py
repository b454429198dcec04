"""A stage's marker records the camels version that ran it. A stage done by another version is still reused
(its key covers its inputs and config, not camels' version: an upgrade must not train every model again), and
``camels run`` says so with how to run it again; ``--rerun STAGE`` runs that stage afresh and no other."""

from __future__ import annotations

import json
import re

import camels
from camels.cli import main

from .pipeline_helpers import write_pipeline

DATA = ["convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-tiny", "decontaminate-tiny"]


def _files(out):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "data").rglob("*") if p.is_file()}


def test_marker_of_another_version_is_reused_and_said_and_rerun_redoes_one_stage(tmp_path, inputs, capsys):
    path = write_pipeline(tmp_path, inputs, steps=2)
    out = tmp_path / "out"
    assert main(["run", str(path), "--only", "data", "--no-progress"]) == 0
    capsys.readouterr()
    markers = out / ".camels" / "stages"
    assert {json.loads((markers / f"{s}.json").read_text())["camels"] for s in DATA} == {camels.__version__}
    marker = markers / "convert-dolly.json"
    old = json.loads(marker.read_text())
    marker.write_text(json.dumps({**old, "camels": "0.0.1"}))
    said = (f"done with the same key by camels 0.0.1, not camels {camels.__version__}: to run it again, pass "
            f"--rerun convert-dolly or delete {marker}")

    assert main(["run", str(path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    rows = {line.split()[0]: line for line in plan.splitlines()[2:]}
    assert rows["convert-dolly"].split(None, 3)[2:] == ["reuse", f"{said}; convert 1 dolly file(s) -> "
                                                                 f"{out / 'data/sources/dolly.jsonl'}"]
    assert all(" reuse   done with the same key; " in rows[s] for s in DATA if s != "convert-dolly")

    before = _files(out)
    assert main(["run", str(path), "--only", "data"]) == 0
    log = capsys.readouterr().out
    assert f"[camels run] [2/9] convert-dolly: reused ({said}, key {old['key'][:12]})" in log.splitlines()
    assert sum("not camels" in line for line in log.splitlines()) == 1  # one line, for that stage only
    assert _files(out) == before  # reused: nothing written

    # --rerun: that stage runs afresh (new file, same key, marker of this version); the others are reused
    assert main(["run", str(path), "--dry-run", "--rerun", "convert-dolly"]) == 0
    plan = capsys.readouterr().out
    assert [line.split()[0] for line in plan.splitlines()[2:] if " run     " in line] == ["convert-dolly",
                                                                                        "train-tiny", "eval-base",
                                                                                        "eval-tiny", "report"]
    assert re.search(rf"^  convert-dolly +{old['key'][:12]}  run     asked for with --rerun; ", plan, flags=re.M)
    assert main(["run", str(path), "--only", "data", "--no-progress", "--rerun=convert-dolly"]) == 0
    log = capsys.readouterr().out
    assert [line for line in log.splitlines() if ": done in " in line][0].startswith("[camels run] [2/9] "
                                                                                     "convert-dolly: done in ")
    after = _files(out)
    dolly = out / "data/sources/dolly.jsonl"
    assert after[dolly] != before[dolly] and dolly.read_bytes()  # rewritten
    assert {p: s for p, s in after.items() if "dolly" not in p.name} == \
        {p: s for p, s in before.items() if "dolly" not in p.name}  # no other stage's file touched
    assert json.loads(marker.read_text()) | {"seconds": 0} == {**old, "camels": camels.__version__, "seconds": 0}

    # a stage that is not in the run, or not of the kinds asked for, is refused with its name
    assert main(["run", str(path), "--dry-run", "--rerun", "convert-dolly,convert-oasst1"]) == 1
    assert capsys.readouterr().err.startswith("camels: error: --rerun: no stage 'convert-oasst1' in this run "
                                              "(stages: convert-alpaca, convert-dolly, ")
    assert main(["run", str(path), "--only", "data", "--rerun", "train-tiny"]) == 1
    assert "--rerun: stage train-tiny is a train stage" in capsys.readouterr().err
