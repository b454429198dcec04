"""Suites and run planning as library code: suite files, plans, the data pre-check, the runs layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
from evalfakes import FakeBackend

from camels.core import layout
from camels.core.errors import ConfigError
from camels.core.results import RunManifest
from camels.evals.suite import Suite, check_data, evaluate, load_suite, plan


def test_the_shipped_suite_loads_by_name():
    suite = load_suite("tulu-v1")
    assert isinstance(suite, Suite) and suite.name == "tulu-v1" and suite.version == 1
    names = [t.name for t in suite.tasks]
    assert names[:3] == ["mmlu_0shot", "mmlu_5shot", "gsm8k_cot"]
    assert suite.tasks[2].task == "gsm8k" and suite.tasks[2].options == {"cot": True, "shots": 8, "n": 200,
                                                                           "seed": 42}
    assert all(t.status in ("", "pending") for t in suite.tasks)
    planned = plan(suite="tulu-v1")
    assert planned.pending == [t.name for t in suite.tasks if t.status == "pending"]
    assert [t.label for t in planned.tasks] == [t.name for t in suite.tasks if t.status != "pending"]
    with pytest.raises(ConfigError, match=r"no suite 'nope' \(known: .*tulu-v1"):
        load_suite("nope")


def test_plan_of_a_suite_applies_options_and_lists_pending(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text("name: mini\ntasks:\n  - {name: m0, task: mmlu, options: {shots: 0}}\n"
                    "  - {name: g, task: gsm8k_direct}\n  - {name: later, task: humaneval, status: pending}\n")
    p = plan(suite=path, options={"m0": {"subjects": ["virology"]}, "gsm8k_direct": {"n": 3}},
             data="/d", task_data={"g": "/g"})
    assert [(t.label, t.name) for t in p.tasks] == [("m0", "mmlu"), ("g", "gsm8k")]
    assert p.tasks[0].config.shots == 0 and p.tasks[0].config.subjects == ("virology",)
    assert p.tasks[1].config.n == 3 and p.tasks[1].config.cot is False  # the preset's options, then ours
    assert p.data == {"m0": "/d", "g": "/g"} and p.pending == ["later"]
    with pytest.raises(ConfigError, match="no task 'bbh' in this run"):
        plan(suite=path, options={"bbh": {"n": 1}})
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        plan(tasks=["nope"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntasks:\n  - {task: mmlu}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tasks\[0\] needs a 'name'"):
        load_suite(bad)


def test_check_data_reports_every_problem_at_once(tmp_path, fixtures):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = plan(tasks=["mmlu_0shot", "gsm8k_cot", "truthfulqa_mc"], data=fixtures / "evals" / "mmlu_hendrycks",
             task_data={"gsm8k_cot": empty, "truthfulqa_mc": empty})
    with pytest.raises(ConfigError) as e:
        check_data(p)
    text = str(e.value)
    assert "gsm8k_cot:" in text and "truthfulqa_mc:" in text and "mmlu_0shot:" not in text
    ok = plan(tasks=["mmlu_0shot"], data=fixtures / "evals" / "mmlu_hendrycks")
    assert [len(v.items) for v in check_data(ok).values()] == [8]


def test_evaluate_writes_the_runs_layout(tmp_path, fixtures):
    p = plan(tasks=["mmlu_0shot", "gsm8k_direct"], options={"gsm8k_direct": {"n": 4}},
             task_data={"mmlu_0shot": fixtures / "evals" / "mmlu_hendrycks",
                        "gsm8k_direct": fixtures / "evals" / "gsm8k"})
    seen = []
    runs = evaluate(p, FakeBackend(), model="org/fake-7b", output=tmp_path / "runs", loaded=check_data(p),
                    on_result=lambda r: seen.append(r.task.label))
    assert seen == ["mmlu_0shot", "gsm8k_direct"]
    assert [r.run_dir for r in runs] == [tmp_path / "runs" / "org__fake-7b" / "mmlu_0shot",
                                         tmp_path / "runs" / "org__fake-7b" / "gsm8k_direct"]
    assert runs[1].result.counts == {"items": 4, "scored": 4}
    assert layout.cache_file(tmp_path / "runs").is_file()
    assert list(layout.finished_runs(tmp_path / "runs")) == sorted(r.run_dir for r in runs)
    assert RunManifest.read(runs[0].run_dir / "manifest.json").model == "org/fake-7b"
    named = evaluate(p, FakeBackend(), model="org/fake-7b", output=tmp_path / "runs", run_name="mine")
    assert named[0].run_dir == tmp_path / "runs" / "mine" / "mmlu_0shot"


def test_layout_and_planning_import_without_the_cli():
    code = ("import sys, camels.core.layout, camels.evals.suite\n"
            "print(sorted(m for m in sys.modules if m.startswith(('camels.cli', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert layout.model_slug("runs/tulu-7b/checkpoint-1000") == "tulu-7b_checkpoint-1000"
    assert layout.run_dir("runs", "allenai/tulu-7b", "mmlu_5shot") == layout.model_dir("runs", "allenai/tulu-7b") / "mmlu_5shot"
