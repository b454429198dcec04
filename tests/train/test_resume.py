"""Exact resume: a run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from camels.core.errors import ConfigError  # noqa: E402
from camels.train.checkpoint import find_latest_checkpoint, list_checkpoints  # noqa: E402
from camels.train.config import TrainConfig  # noqa: E402


def _data(path, n=24):
    rows = [{"dataset": "toy", "id": f"t{i}", "messages": [
        {"role": "user", "content": f"What comes after {i}?"},
        {"role": "assistant", "content": f"{i + 1} comes after {i}." + " ok" * (i % 3)}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs by {(a[k] - b[k]).abs().max().item()}"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_same_final_weights(tmp_path):
    from camels.tiny import save_tiny_model

    # Dropout on: a resumed run that did not restore the RNG states would train differently.
    model_dir = save_tiny_model(tmp_path / "model", seed=0, attention_dropout=0.1)
    data = _data(tmp_path / "data.jsonl")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {model_dir}\ntrain_files: [{data}]\ndtype: fp32\nmax_length: 128\neffective_batch_size: 4\n"
        "learning_rate: 3.0e-3\nnum_epochs: 2\nwarmup_ratio: 0.1\nsave_every_steps: 2\nkeep_last_checkpoints: 2\n"
        "logging_every: 5\n"
    )
    env = {**os.environ, "CAMELS_PROGRESS": "0"}

    def camels_train(out, *extra):
        cmd = [sys.executable, "-m", "camels", "train", str(config), f"output_dir={out}", *extra]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    full = camels_train(tmp_path / "full")  # the uninterrupted reference, running alongside
    victim = camels_train(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while find_latest_checkpoint(tmp_path / "killed") is None:
        assert victim.poll() is None, "the run ended before its first checkpoint: " + victim.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "final").exists()  # it really died mid-run
    killed_at = find_latest_checkpoint(tmp_path / "killed")
    steps = json.loads((killed_at / "train_state.json").read_text())["global_step"]
    assert 2 <= steps < 12

    resumed = camels_train(tmp_path / "killed", "resume=true")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"RESUMING from {killed_at} at step {steps}" in out
    full_out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, full_out
    assert "steps=12" in full_out and "steps=12" in out

    _assert_identical(_weights(tmp_path / "killed" / "final"), _weights(tmp_path / "full" / "final"))
    a, b = (torch.load(p / "checkpoints" / "step-12" / "optimizer.bin", weights_only=False)
            for p in (tmp_path / "full", tmp_path / "killed"))
    for sa, sb in zip(a["state"].values(), b["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    # only complete checkpoints, the last two, and no crash leftovers
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step-10", "step-12"]


def _cfg(tmp_path, model_dir, data, *overrides):
    return TrainConfig.load(None, [
        f"model={model_dir}", f"train_files=[{data}]", f"output_dir={tmp_path / 'run'}", "dtype=fp32",
        "max_length=128", "effective_batch_size=4", "learning_rate=1e-2", "warmup_ratio=0.0", "logging_every=2",
        *overrides])


def test_lora_resume_from_an_earlier_checkpoint_is_exact(tmp_path, monkeypatch):
    """In one process: run 12 steps, roll back to step 4 (as if killed there), resume, compare."""
    from camels.tiny import save_tiny_model
    from camels.train.loop import train

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    data = _data(tmp_path / "data.jsonl", n=16)
    lora = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.dropout=0.1"]  # dropout: RNG matters
    cfg = _cfg(tmp_path, model_dir, data, *lora, "num_epochs=3", "save_every_steps=4", "keep_last_checkpoints=3")
    first = train(cfg)
    assert first.steps == 12
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == ["step-4", "step-8", "step-12"]
    reference = _weights(first.final_model)
    reference_adapter = _weights_adapter(run / "checkpoints" / "step-12")
    shutil.rmtree(run / "checkpoints" / "step-12")
    shutil.rmtree(run / "checkpoints" / "step-8")
    shutil.rmtree(run / "final")

    second = train(_cfg(tmp_path, model_dir, data, *lora, "num_epochs=3", "save_every_steps=4",
                        "keep_last_checkpoints=3", "resume=true"))
    assert second.resumed_from == run / "checkpoints" / "step-4" and second.steps == 12
    _assert_identical(_weights_adapter(run / "checkpoints" / "step-12"), reference_adapter)
    _assert_identical(_weights(second.final_model), reference)


def test_truncated_newest_checkpoint_warns_and_resumes_from_the_previous_one(tmp_path, monkeypatch, capsys):
    """The newest checkpoint cut short (a full disk, a bad copy): one warning line names it, it is moved
    aside and kept, and the run resumes exactly from the one before."""
    from camels.tiny import save_tiny_model
    from camels.train.loop import train

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    data = _data(tmp_path / "data.jsonl", n=12)
    args = ["num_epochs=2", "save_every_steps=2", "keep_last_checkpoints=2"]
    first = train(_cfg(tmp_path, model_dir, data, *args))
    assert first.steps == 6
    ckpts = tmp_path / "run" / "checkpoints"
    reference = _weights(first.final_model)
    with open(ckpts / "step-6" / "model.safetensors", "r+b") as f:
        f.truncate(64)
    shutil.rmtree(first.final_model)
    capsys.readouterr()
    second = train(_cfg(tmp_path, model_dir, data, *args, "resume=true"))
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "WARNING" in line]
    assert warnings == [f"camels train: WARNING checkpoint {ckpts / 'step-6'} is damaged (model.safetensors has "
                        f"64 bytes, {warnings[0].split('64 bytes, ')[1].split(' ')[0]} were written); moved to "
                        f"{ckpts / 'damaged-step-6'}, it will not be used"]
    assert second.resumed_from == ckpts / "step-4" and second.steps == 6
    _assert_identical(_weights(second.final_model), reference)
    assert sorted(p.name for p in ckpts.iterdir()) == ["damaged-step-6", "step-4", "step-6"]
    assert (ckpts / "damaged-step-6" / "model.safetensors").stat().st_size == 64


def _weights_adapter(ckpt):
    from safetensors.torch import load_file

    return load_file(str(ckpt / "adapter" / "adapter_model.safetensors"))


def test_resume_refuses_changed_data_or_settings(tmp_path, monkeypatch, capsys):
    from camels.tiny import save_tiny_model
    from camels.train.loop import train

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    data = _data(tmp_path / "data.jsonl", n=8)
    train(_cfg(tmp_path, model_dir, data, "max_steps=2", "export=false"))
    step2 = tmp_path / "run" / "checkpoints" / "step-2"
    before = json.loads((step2 / "COMPLETE").read_text())

    with pytest.raises(ConfigError, match=r"fields that change the math differ: learning_rate: 0\.01 -> 0\.02"):
        train(_cfg(tmp_path, model_dir, data, "max_steps=2", "export=false", "resume=true", "learning_rate=2e-2"))

    _data(data, n=9)  # one more conversation: the data plan is no longer the one the checkpoint was in
    with pytest.raises(ConfigError, match=r"training data changed \(sha256 .*resume_force=true"):
        train(_cfg(tmp_path, model_dir, data, "max_steps=2", "export=false", "resume=true"))
    assert json.loads((step2 / "COMPLETE").read_text()) == before  # refused before touching anything

    capsys.readouterr()
    result = train(_cfg(tmp_path, model_dir, data, "max_steps=2", "export=false", "resume=true",
                        "resume_force=true"))
    assert "WARNING resuming despite: the training data changed" in capsys.readouterr().out
    assert result.steps == 2 and result.last_checkpoint == step2
    after = json.loads((step2 / "COMPLETE").read_text())
    assert json.loads((step2 / "provenance.json").read_text())["data_sha256"] == result.data["data_sha256"]
    assert after["files"]["provenance.json"] != before["files"]["provenance.json"]


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_checkpoint_and_resume_are_exact(tmp_path):
    """2 CPU processes (gloo): both write into one checkpoint folder; resuming from it is bit-identical."""
    from camels.tiny import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    data = _data(tmp_path / "data.jsonl")
    env = {**os.environ, "CAMELS_PROGRESS": "0", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {model_dir}\ntrain_files: [{data}]\ndtype: fp32\nmax_length: 128\neffective_batch_size: 4\n"
        "learning_rate: 1.0e-2\nnum_epochs: 1\nsave_every_steps: 2\nkeep_last_checkpoints: 3\n"
        "lora: {enabled: true, r: 4, dropout: 0.1}\n"
    )

    def launch(out, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "camels", "train", str(config), f"output_dir={out}", *extra]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    launch(tmp_path / "full")
    step4 = tmp_path / "full" / "checkpoints" / "step-4"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in step4.iterdir()}
    assert json.loads((step4 / "provenance.json").read_text())["num_processes"] == 2
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-6")
    shutil.rmtree(tmp_path / "resumed" / "final")
    out = launch(tmp_path / "resumed", "resume=true")
    assert "RESUMING from" in out and "at step 4" in out
    _assert_identical(_weights(tmp_path / "resumed" / "final"), _weights(tmp_path / "full" / "final"))
