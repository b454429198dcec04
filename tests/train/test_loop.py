"""The loop: step-level loss normalisation, deterministic data plan, schedule, and that training learns."""

from __future__ import annotations

import contextlib
import json

import pytest

torch = pytest.importorskip("torch")

from camels.core.errors import ConfigError  # noqa: E402
from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train.config import TrainConfig  # noqa: E402
from camels.train.encode import encode_conversation  # noqa: E402
from camels.train.loop import (  # noqa: E402
    backward_step,
    build_optimizer,
    build_scheduler,
    epoch_order,
    micro_batches,
    n_targets,
    step_indices,
    train,
)
from camels.train.pack import set_model_attention  # noqa: E402


def _cfg(tmp_path, **kw):
    base = dict(model="unused", train_files=["unused.jsonl"], output_dir=str(tmp_path / "out"), dtype="fp32")
    base.update(kw)
    return TrainConfig.from_dict(base)


@pytest.fixture(scope="module")
def examples(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    convs = [[{"role": "user", "content": f"item {i} " + "pq " * (i % 5)},
              {"role": "assistant", "content": "r " * (1 + 3 * (i % 4)) + f"end {i}"}] for i in range(8)]
    return [encode_conversation(tiny_tok, fmt, c, 256) for c in convs]


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("packing,split", [(False, 8), (False, 2), (True, None)])
def test_gradient_does_not_depend_on_the_micro_batch_split(tiny_tok, examples, tmp_path, packing, split):
    """1 micro-batch of 8 conversations == 4 accumulated micro-batches of 2 == packed rows."""
    from camels.tiny import tiny_llama

    model = tiny_llama(tiny_tok, seed=1).float().train()
    total = sum(n_targets(e) for e in examples)
    # reference: one padded micro-batch with all 8 conversations
    ref_cfg = _cfg(tmp_path, packing=False, per_device_batch_size=8, effective_batch_size=8)
    ref_batches = micro_batches(examples, ref_cfg, attention="padded", pad_id=tiny_tok.pad_token_id)
    assert len(ref_batches) == 1
    ref_loss = backward_step(model, ref_batches, total)
    ref = _grads(model)
    model.zero_grad(set_to_none=True)

    if packing:  # rows of at most 40 tokens: several packed micro-batches
        cfg = _cfg(tmp_path, packing=True, max_length=40, max_tokens_per_batch=40, effective_batch_size=8)
        set_model_attention(model, "varlen")
        batches = micro_batches(examples, cfg, attention="varlen", pad_id=tiny_tok.pad_token_id)
    else:
        cfg = _cfg(tmp_path, packing=False, per_device_batch_size=split, effective_batch_size=8)
        batches = micro_batches(examples, cfg, attention="padded", pad_id=tiny_tok.pad_token_id)
    assert len(batches) == (8 // split if split else len(batches)) and len(batches) >= 1
    if packing:
        assert len(batches) > 1
    assert sum(b.n_trained for b in batches) == total
    loss = backward_step(model, batches, total)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, ref[name], rtol=1e-5, atol=1e-6, msg=name)


class _FakeAccelerator:
    """Two processes simulated in one: backward only, DDP's averaging done by the test."""

    def __init__(self, num_processes):
        self.num_processes = num_processes

    def no_sync(self, model):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()


def test_gradient_does_not_depend_on_world_size(tiny_tok, examples, tmp_path):
    from camels.tiny import tiny_llama

    cfg = _cfg(tmp_path, packing=True, max_length=64, max_tokens_per_batch=64, effective_batch_size=8)
    total = sum(n_targets(e) for e in examples)
    model = tiny_llama(tiny_tok, seed=2).float().train()
    set_model_attention(model, "varlen")
    backward_step(model, micro_batches(examples, cfg, attention="varlen", pad_id=0), total)
    ref = _grads(model)
    per_process = []
    for rank in range(2):
        model.zero_grad(set_to_none=True)
        mine = micro_batches(examples, cfg, attention="varlen", pad_id=0, num_processes=2, process_index=rank)
        backward_step(model, mine, total, accelerator=_FakeAccelerator(2))
        per_process.append(_grads(model))
    for name, g in ref.items():  # DDP all-reduce = mean over processes
        torch.testing.assert_close((per_process[0][name] + per_process[1][name]) / 2, g, rtol=1e-5, atol=1e-6)


def test_data_order_is_a_seeded_permutation_per_epoch():
    a0, a1 = epoch_order(50, seed=3, epoch=0), epoch_order(50, seed=3, epoch=1)
    assert a0 == epoch_order(50, seed=3, epoch=0) and sorted(a0) == list(range(50))
    assert a0 != a1 and a0 != epoch_order(50, seed=4, epoch=0)
    steps = [step_indices(50, 3, 0, s, 16) for s in range(4)]
    assert [len(s) for s in steps] == [16, 16, 16, 2] and sum(steps, []) == a0


def test_linear_schedule_with_warmup(tiny_tok, tmp_path):
    from camels.tiny import tiny_llama

    cfg = _cfg(tmp_path, learning_rate=1.0, warmup_ratio=0.2, weight_decay=0.1)
    model = tiny_llama(tiny_tok, seed=0)
    opt = build_optimizer(model, cfg)
    # weight decay only on matrices
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(p.dim() >= 2 for p in opt.param_groups[0]["params"])
    sched = build_scheduler(opt, cfg, total_steps=10)  # warmup ceil(2.0) = 2 steps
    lrs = []
    for _ in range(10):
        lrs.append(round(sched.get_last_lr()[0], 6))
        opt.step()
        sched.step()
    assert lrs == [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def _toy_data(path, n=12):
    rows = [{"dataset": "toy", "id": f"t{i}", "messages": [
        {"role": "user", "content": f"What comes after {i}?"},
        {"role": "assistant", "content": f"{i + 1} comes after {i}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_learns_and_writes_its_outputs(tmp_path, monkeypatch):
    from camels.tiny import save_tiny_model

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    data = _toy_data(tmp_path / "data.jsonl")
    cfg = TrainConfig.load(None, [
        f"model={model_dir}", f"train_files=[{data}]", f"output_dir={tmp_path / 'run'}", "dtype=fp32",
        "effective_batch_size=4", "learning_rate=3e-3", "num_epochs=15", "warmup_ratio=0.05",
        "logging_every=3", "max_length=128", "max_tokens_per_batch=128",
    ])
    result = train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == 45 and [r["step"] for r in rows] == list(range(3, 46, 3))
    assert rows[0]["loss"] > 4.0  # random init over a 512-token vocabulary: about ln(512) = 6.2
    assert result.final_loss < 0.25 * rows[0]["loss"]
    assert {"loss", "lr", "trained_tokens", "tokens_per_s"} <= set(rows[0])
    assert result.trained_tokens == sum(r["trained_tokens"] for r in rows)
    assert TrainConfig.load(result.config_path).to_dict() == cfg.to_dict()
    assert (result.final_model / "config.json").is_file()
    assert result.last_checkpoint is not None and result.last_checkpoint.exists()
    # the run folder now holds a checkpoint: training again without resume must refuse, not overwrite
    with pytest.raises(ConfigError, match="resume=true"):
        train(cfg)


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    cfg = _cfg(tmp_path, resume=True)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(cfg)


def test_the_tiny_cpu_recipe_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """``camels train configs/train/tiny-cpu.yaml`` as its header says: tiny model made once, shipped demo data."""
    import shutil
    from pathlib import Path

    from camels.cli import main
    from camels.tiny import save_tiny_model

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)
    save_tiny_model(tmp_path / "runs" / "tiny-model")
    (tmp_path / "data" / "demo").mkdir(parents=True)
    shutil.copy(repo / "data" / "demo" / "train.jsonl", tmp_path / "data" / "demo" / "train.jsonl")
    threads = torch.get_num_threads()
    try:
        assert main(["train", str(repo / "configs" / "train" / "tiny-cpu.yaml")]) == 0
    finally:
        torch.set_num_threads(threads)  # the recipe asks for 1 thread; leave the test process as it was
    out = capsys.readouterr().out
    assert "steps=240 " in out and "output_dir=runs/tiny-demo" in out
    rows = [json.loads(x) for x in (tmp_path / "runs" / "tiny-demo" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 48 and rows[-1]["step"] == 240 and rows[-1]["epoch"] == 20
    assert sum(r["trained_tokens"] for r in rows) == 20 * 958  # 958 trained tokens per epoch, 20 epochs
    assert rows[0]["loss"] > 5.5 and rows[-1]["loss"] < 0.6  # ln(512) = 6.2 at random init; it learns
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny-demo" / "checkpoints").iterdir()) == \
        ["step-200", "step-240"]  # every 50 steps, last 2 kept
    assert (tmp_path / "runs" / "tiny-demo" / "final" / "model.safetensors").is_file()


def test_compile_is_regional(tiny_tok):
    """compile=true compiles the MLP and norm blocks only (no forward here: compiling takes minutes on CPU)."""
    from camels.tiny import tiny_llama
    from camels.train.loop import compile_blocks

    model = tiny_llama(tiny_tok, seed=0)  # 2 layers: 2 MLPs, 4 layer norms, 1 final norm
    assert compile_blocks(model) == 7
    compiled = {type(m).__name__ for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None}
    assert compiled == {"LlamaMLP", "LlamaRMSNorm"}
    assert model.model.layers[0].self_attn._compiled_call_impl is None
