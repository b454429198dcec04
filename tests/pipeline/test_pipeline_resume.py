"""A ``camels run`` killed with SIGKILL during training, run again: the data stages are reused as they are,
training resumes from its checkpoint, and the report is byte for byte an uninterrupted run's."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from .pipeline_helpers import camels_subprocess, write_pipeline

STEPS = 60


def _checkpoints(run_dir):
    root = run_dir / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / "COMPLETE").exists()) if root.is_dir() else []


@pytest.mark.slow
def test_kill_during_training_then_resume_matches_uninterrupted(tmp_path, inputs):
    from camels.pipeline import run_pipeline

    path = write_pipeline(tmp_path, inputs, output="killed", steps=STEPS, save_every=2)
    out = tmp_path / "killed"
    run_dir = out / "train" / "tiny"
    log = tmp_path / "first.log"
    proc = camels_subprocess(["run", str(path), "--no-progress"], cwd=tmp_path, log=log)
    try:
        deadline = time.time() + 120
        while not _checkpoints(run_dir):
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        first = log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "train-tiny: run (not run before)" in first and "train-tiny: done" not in first
    assert not (out / ".camels/stages/train-tiny.json").exists()
    assert (out / ".camels/stages/train-tiny.started.json").exists()
    data = sorted(p for p in (out / "data").rglob("*") if p.is_file())
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in data}

    log = tmp_path / "second.log"
    proc = camels_subprocess(["run", str(path), "--no-progress"], cwd=tmp_path, log=log)
    proc.wait(timeout=300)
    second = log.read_text()
    assert proc.returncode == 0, second
    for stage in ("convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-tiny", "decontaminate-tiny"):
        assert re.search(rf"\] {stage}: reused \(done with the same key", second), second
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in data} == stamps  # not recomputed
    assert "train-tiny: resume (interrupted run of the same key)" in second
    resumed = re.search(r"RESUMING from \S+ at step (\d+)", second)
    assert resumed, second
    assert 2 <= int(resumed.group(1)) < STEPS
    assert f"train tiny: resumed from step-{resumed.group(1)}, now at step {STEPS}" in second

    # the same pipeline, never interrupted (in this process), into another folder
    clean = write_pipeline(tmp_path, inputs, output="clean", steps=STEPS, save_every=2)
    run_pipeline(clean, progress=False)
    for name in ("report.md", "report.csv"):
        a, b = (tmp_path / "killed/report" / name).read_bytes(), (tmp_path / "clean/report" / name).read_bytes()
        assert a == b and b"tiny" in a
    weights = "train/tiny/final/model.safetensors"
    assert (tmp_path / "killed" / weights).read_bytes() == (tmp_path / "clean" / weights).read_bytes()
    # the training log (the report's loss curve) holds each step once, with the uninterrupted run's losses
    curves = [[(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / d / "train/tiny/metrics.jsonl")
                                                      .read_text().splitlines())] for d in ("killed", "clean")]
    assert curves[0] == curves[1] and [s for s, _ in curves[0]] == sorted({s for s, _ in curves[0]})


@pytest.mark.slow
def test_training_stage_under_accelerate_launch(tmp_path, inputs):
    """The Slurm jobs' middle step: `accelerate launch -m camels run --only train` with 2 CPU processes
    trains once, writes the stage marker once, and the next `camels run` reuses that training."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from camels.cli import main

    path = write_pipeline(tmp_path, inputs, steps=4)
    assert main(["run", str(path), "--only", "data", "--no-progress"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ddp = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "ddp.yaml"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ddp),
                           "--num_processes", "2", "--main_process_port", str(port), "-m", "camels", "run",
                           str(path), "--only", "train", "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("train-tiny: run (not run before)") == 1 and out.count("train-tiny: done in") == 1
    assert out.count("camels run tiny: 9 stages") == 1 and "convert-" not in out and "eval-" not in out
    assert (tmp_path / "out/.camels/stages/train-tiny.json").is_file()
    assert (tmp_path / "out/train/tiny/final/model.safetensors").is_file()
    assert main(["run", str(path), "--dry-run"]) == 0
    log = tmp_path / "after.log"
    proc = camels_subprocess(["run", str(path), "--no-progress"], cwd=tmp_path, log=log)
    assert proc.wait(timeout=300) == 0, log.read_text()
    text = log.read_text()
    assert "train-tiny: reused (done with the same key" in text and "report: done in" in text
