"""Building a run's stages does each piece of work once: one eval plan (one suite load) for every row that
shares it, one content hash of each input file (the report's reference too), one YAML rendering per config."""

from __future__ import annotations

import yaml

import camels.evals.suite as suite_module
import camels.pipeline.stages as stages_module
from camels.core.config import dump
from camels.pipeline.config import load_pipeline
from camels.pipeline.plan import build
from camels.pipeline.sweep import load_sweep

from .pipeline_helpers import write_pipeline


def _counting(monkeypatch, module, name: str) -> list:
    calls = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _with_suite(tmp_path, inputs, **kw):
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\ntasks:\n  - {name: instruct_em}\n")
    path = write_pipeline(tmp_path, inputs, **kw)
    path.write_text(path.read_text().replace("tasks: [instruct_em]", f"suite: {suite}"))
    return path, suite


def test_eval_plan_built_once_per_run(tmp_path, inputs, monkeypatch):
    path, suite = _with_suite(tmp_path, inputs)
    cfg = load_pipeline(path)
    loads = _counting(monkeypatch, suite_module, "load_suite")
    built = build([cfg], progress=False)
    assert [s.id for s in built.stages if s.kind == "eval"] == ["eval-base", "eval-tiny"]
    assert loads == [str(suite)]  # two rows, one suite load (it was four: twice per row)
    # a sweep of two models: still one
    write_pipeline(tmp_path, inputs, name="study", output="unused")
    (tmp_path / "study-unused.yaml").write_text(path.read_text().replace("name: tiny", "name: study"))
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("pipeline: study-unused.yaml\nsources: [alpaca, dolly]\noutput: sweep\n")
    sweep = load_sweep(sweep_file)
    loads.clear()
    built = build(sweep.members, root=sweep.root, report=sweep.report, progress=False)
    assert [s.id for s in built.stages if s.kind == "eval"] == ["eval-base", "eval-alpaca", "eval-dolly"]
    assert loads == [str(suite)]


def test_report_reference_hashed_by_the_shared_hasher(tmp_path, inputs, monkeypatch):
    ref = tmp_path / "published.yaml"
    ref.write_text("scale: percent\nmodels: {them: {label: Them, scores: {instruct_em: 50.0}}}\n")
    path = write_pipeline(tmp_path, inputs)
    first = build([load_pipeline(path, [f"report.reference={ref}"])], progress=False)
    assert str(ref.resolve()) in first.hasher._known  # remembered with the other inputs
    first.write_configs()
    hashed = _counting(monkeypatch, stages_module, "sha256_file")
    again = build([load_pipeline(path, [f"report.reference={ref}"])], progress=False)
    assert hashed == []  # every input, the reference too, known from the memo: nothing read again
    assert {s.id: s.key for s in again.stages} == {s.id: s.key for s in first.stages}


def test_write_configs_renders_each_config_once(tmp_path, inputs, monkeypatch):
    built = build([load_pipeline(write_pipeline(tmp_path, inputs))], progress=False)
    target = built.layout.root / "pipeline.tiny.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("name: an older config\n")
    expected = dump(built.configs[0])
    rendered = _counting(monkeypatch, yaml, "safe_dump")
    built.write_configs()
    assert len(rendered) == 1 and target.read_text() == expected
    stamp = target.stat().st_mtime_ns
    built.write_configs()  # unchanged: left as it is
    assert len(rendered) == 2 and target.stat().st_mtime_ns == stamp
