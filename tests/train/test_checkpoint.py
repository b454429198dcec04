"""Checkpoints: atomic writes (a crash mid-save is never picked up), keep-last-N, exact state round trip."""

from __future__ import annotations

import json
import os
import shutil

import pytest

torch = pytest.importorskip("torch")

from camels.core.errors import ConfigError  # noqa: E402
from camels.core.io import sha256_file  # noqa: E402
from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train import checkpoint as ck  # noqa: E402
from camels.train.checkpoint import (  # noqa: E402
    MATH_FIELDS,
    TrainState,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resume_problems,
    save_checkpoint,
)
from camels.train.config import TrainConfig  # noqa: E402
from camels.train.loop import build_optimizer, build_scheduler  # noqa: E402


def _cfg(tmp_path, **kw):
    base = dict(model="tiny", train_files=["d.jsonl"], output_dir=str(tmp_path / "run"), dtype="fp32",
                learning_rate=1e-2, warmup_ratio=0.0)
    base.update(kw)
    return TrainConfig.from_dict(base)


class Run:
    """A tiny model, AdamW and a schedule behind a real (CPU) Accelerator, stepped on random tokens."""

    def __init__(self, tok, cfg, lora=False):
        from accelerate import Accelerator

        from camels.tiny import tiny_llama
        from camels.train.model import apply_lora

        model = tiny_llama(tok, seed=0).float().train()
        if lora:
            model = apply_lora(model, cfg.lora)
        self.accelerator = Accelerator(cpu=True)
        self.model, self.optimizer = self.accelerator.prepare(model, build_optimizer(model, cfg))
        self.scheduler = build_scheduler(self.optimizer, cfg, 100)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.fmt = chat_format_for_tokenizer(tok, "tulu")
        self.cfg = cfg

    def step(self):
        ids = torch.randint(4, 500, (2, 12))  # draws from the torch RNG: resumed RNG must replay it
        loss = self.model(input_ids=ids, labels=ids).loss
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()

    def save(self, step, keep_last=3, data="d" * 64):
        state = TrainState(global_step=step, epoch=0, step_in_epoch=step, trained_tokens=10 * step)
        return save_checkpoint(self.accelerator, state, self.cfg.output_dir, chat_format=self.fmt,
                               config_dict=self.cfg.to_dict(), data_sha256=data, keep_last=keep_last)

    def weights(self):
        return {k: v.detach().clone() for k, v in self.accelerator.unwrap_model(self.model).state_dict().items()}


def test_checkpoint_holds_everything_and_its_marker_lists_every_file(tiny_tok, tmp_path):
    run = Run(tiny_tok, _cfg(tmp_path))
    run.step()
    path = run.save(1)
    assert path == tmp_path / "run" / "checkpoints" / "step-1"
    marker = json.loads((path / "COMPLETE").read_text())
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and p.name != "COMPLETE")
    assert sorted(marker["files"]) == files
    assert {"model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl", "random_states_0.pkl",
            "train_state.json", "chat_format.json", "config.resolved.yaml", "config.resolved.json",
            "provenance.json"} <= set(files)
    for rel, info in marker["files"].items():
        assert info["sha256"] == sha256_file(path / rel) and info["bytes"] == (path / rel).stat().st_size
    assert marker["step"] == 1
    assert json.loads((path / "train_state.json").read_text()) == {
        "global_step": 1, "epoch": 0, "step_in_epoch": 1, "trained_tokens": 10, "extra": {}}
    assert json.loads((path / "chat_format.json").read_text()) == run.fmt.to_dict()
    assert json.loads((path / "config.resolved.json").read_text()) == run.cfg.to_dict()
    assert json.loads((path / "provenance.json").read_text())["data_sha256"] == "d" * 64
    assert not any(p.name.startswith(".tmp") for p in path.parent.iterdir())


def test_a_crash_mid_save_leaves_the_previous_checkpoint_as_latest(tiny_tok, tmp_path, monkeypatch):
    run = Run(tiny_tok, _cfg(tmp_path))
    good = run.save(2)
    root = good.parent
    # 1. Killed before the rename: a tmp folder with all files in it.
    monkeypatch.setattr(ck.os, "rename", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        run.save(4)
    monkeypatch.undo()
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-step-4-")]
    # 2. Killed after the rename but before the marker: step-6 without COMPLETE.
    shutil.copytree(good, root / "step-6")
    (root / "step-6" / "COMPLETE").unlink()
    # 3. A marker whose files do not match (a file cut short), and a marker of another step.
    shutil.copytree(good, root / "step-8")
    with open(root / "step-8" / "optimizer.bin", "r+b") as f:
        f.truncate(10)
    shutil.copytree(good, root / "step-10")
    assert find_latest_checkpoint(tmp_path / "run") == good
    assert list_checkpoints(tmp_path / "run") == [good]
    # The next save deletes the leftovers of interrupted saves, sets the damaged ones aside (kept, named)
    # and becomes the latest.
    new = run.save(3)
    assert sorted(p.name for p in root.iterdir()) == ["damaged-step-10", "damaged-step-8", "step-2", "step-3"]
    assert find_latest_checkpoint(tmp_path / "run") == new


def test_a_save_removes_only_the_tmp_folders_whose_process_is_gone(tiny_tok, tmp_path, dead_pid, live_pid):
    from camels.core.stale import host, process_start

    run = Run(tiny_tok, _cfg(tmp_path))
    root = run.save(2).parent
    leftovers = {"dead": {"host": host(), "pid": dead_pid},
                 "live": {"host": host(), "pid": live_pid, "start": process_start(live_pid)},
                 "no-owner": None}  # judged by its age: kept for 24 hours
    for name, owner in leftovers.items():
        (root / f".tmp-step-3-{name}").mkdir()
        (root / f".tmp-step-3-{name}" / "optimizer.bin").write_bytes(b"half")
        if owner is not None:
            (root / f".tmp-step-3-{name}" / "owner.json").write_text(json.dumps(owner))
    run.save(4)
    assert sorted(p.name for p in root.iterdir()) == [".tmp-step-3-live", ".tmp-step-3-no-owner", "step-2",
                                                      "step-4"]
    assert (root / ".tmp-step-3-live" / "optimizer.bin").read_bytes() == b"half"
    assert "owner.json" not in {p.name for p in (root / "step-4").iterdir()}


def test_a_damaged_newest_checkpoint_is_named_and_set_aside_not_erased(tiny_tok, tmp_path):
    run = Run(tiny_tok, _cfg(tmp_path))
    run.save(2, keep_last=2)
    newest = run.save(4, keep_last=2)
    root = newest.parent
    with open(newest / "model.safetensors", "r+b") as f:  # cut short after it was written
        f.truncate(100)
    said: list[str] = []
    latest = find_latest_checkpoint(tmp_path / "run", set_aside=True, say=said.append)
    assert latest == root / "step-2"  # resume from the previous one
    aside = root / "damaged-step-4"
    assert said == [f"camels train: WARNING checkpoint {newest} is damaged (model.safetensors has 100 bytes, "
                    f"{json.loads((aside / 'COMPLETE').read_text())['files']['model.safetensors']['bytes']} "
                    f"were written); moved to {aside}, it will not be used"]
    assert (aside / "model.safetensors").stat().st_size == 100 and (aside / "optimizer.bin").is_file()
    # rotation never deletes it: three more saves keeping only the last one
    for step in (3, 4, 5):
        run.save(step, keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["damaged-step-4", "step-5"]
    # a second damaged copy of the same step gets its own name
    with open(root / "step-5" / "optimizer.bin", "r+b") as f:
        f.truncate(1)
    run.save(6, keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["damaged-step-4", "damaged-step-5", "step-6"]


def test_keep_last_n(tiny_tok, tmp_path):
    run = Run(tiny_tok, _cfg(tmp_path))
    for s in range(1, 6):
        run.save(s, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-4", "step-5"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-4", "step-5"]


@pytest.mark.parametrize("lora", [False, True])
def test_load_restores_weights_optimizer_schedule_and_rng_exactly(tiny_tok, tmp_path, lora):
    cfg = _cfg(tmp_path, **({"lora": {"enabled": True, "r": 4, "dropout": 0.1}} if lora else {}))
    run = Run(tiny_tok, cfg, lora=lora)
    run.step()
    path = run.save(1)
    if lora:  # the checkpoint holds the adapter, not the frozen base
        assert (path / "adapter" / "adapter_model.safetensors").is_file()
        assert not (path / "model.safetensors").exists()
    run.step()
    run.step()
    expected = run.weights()  # two steps after the checkpoint
    expected_lr = run.scheduler.get_last_lr()

    other = Run(tiny_tok, cfg, lora=lora)  # a fresh process would start like this
    torch.manual_seed(1234)  # and with another RNG state
    state = load_checkpoint(other.accelerator, path, config_dict=cfg.to_dict(), data_sha256="d" * 64)
    assert state == TrainState(global_step=1, epoch=0, step_in_epoch=1, trained_tokens=10)
    other.step()
    other.step()
    got = other.weights()
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert other.scheduler.get_last_lr() == expected_lr


def test_a_damaged_file_is_named_on_load(tiny_tok, tmp_path):
    run = Run(tiny_tok, _cfg(tmp_path))
    path = run.save(1)
    data = bytearray((path / "optimizer.bin").read_bytes())
    data[-1] ^= 0xFF  # same size: the cheap checks pass, the sha256 does not
    (path / "optimizer.bin").write_bytes(bytes(data))
    assert find_latest_checkpoint(tmp_path / "run") == path
    with pytest.raises(ConfigError, match=r"optimizer\.bin: file content does not match its sha256"):
        load_checkpoint(run.accelerator, path)


def test_resume_checks_data_and_math_fields(tiny_tok, tmp_path):
    cfg = _cfg(tmp_path)
    run = Run(tiny_tok, cfg)
    path = run.save(1)
    assert resume_problems(path, cfg.to_dict(), "d" * 64) == []
    # settings that only change how a step is computed are free to change
    free = _cfg(tmp_path, packing=False, per_device_batch_size=2, logging_every=1, save_every_steps=7)
    assert resume_problems(path, free.to_dict(), "d" * 64) == []
    changed = _cfg(tmp_path, learning_rate=5e-3, seed=7)
    (problem,) = resume_problems(path, changed.to_dict(), "d" * 64)
    assert problem == "fields that change the math differ: learning_rate: 0.01 -> 0.005, seed: 42 -> 7"
    (problem,) = resume_problems(path, cfg.to_dict(), "e" * 64)
    assert problem.startswith("the training data changed (sha256 dddddddddddd... when saved, eeeeeeeeeeee...")
    with pytest.raises(ConfigError, match="training data changed.*resume_force=true"):
        load_checkpoint(run.accelerator, path, config_dict=cfg.to_dict(), data_sha256="e" * 64)
    state = load_checkpoint(run.accelerator, path, config_dict=changed.to_dict(), data_sha256="e" * 64,
                            force=True)
    assert state.global_step == 1
    assert {"learning_rate", "seed", "lora.r", "dtype", "effective_batch_size"} <= set(MATH_FIELDS)


def test_tmp_folder_name_carries_the_writer_pid(tiny_tok, tmp_path, monkeypatch):
    run = Run(tiny_tok, _cfg(tmp_path))
    seen = []
    real = run.accelerator.save_state
    monkeypatch.setattr(run.accelerator, "save_state", lambda d: (seen.append(d), real(d))[1])
    run.save(3)
    assert seen == [str(tmp_path / "run" / "checkpoints" / f".tmp-step-3-{os.getpid()}")]
