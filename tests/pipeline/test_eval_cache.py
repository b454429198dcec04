"""Each evaluated model has a request cache file of its own (``eval/.cache/<row>.sqlite``): the Slurm jobs of a
sweep evaluate their models at the same time on different nodes, and SQLite must not be written by several
machines through a network file system. Nothing is lost: a cached answer is keyed by the model anyway."""

from __future__ import annotations

import json

from camels.pipeline.config import load_pipeline
from camels.pipeline.plan import build

from .pipeline_helpers import write_pipeline


def test_each_row_has_its_own_request_cache(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs, steps=4)
    built = build([load_pipeline(path)], progress=False)
    stage = next(s for s in built.stages if s.id == "eval-base")
    stage.run("run")
    out = tmp_path / "out" / "eval"
    assert sorted(p.name for p in (out / ".cache").iterdir() if p.suffix == ".sqlite") == ["base.sqlite"]
    metrics = json.loads((out / "base" / "instruct_em" / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == 12
    stage.run("resume")  # a rerun takes every answer from that file
    again = json.loads((out / "base" / "instruct_em" / "metrics.json").read_text())
    assert again["metrics"] == metrics["metrics"]
    counts = json.loads((out / "base" / "instruct_em" / "manifest.json").read_text())["counts"]
    assert counts["computed"] == 0 and counts["cache_hits"] == 12
