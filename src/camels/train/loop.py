"""The one training loop: conversations -> optimizer steps, on accelerate.

Read :func:`train` top to bottom: setup, plan, loop, export, each a function below it; the pieces they
use are small functions above it, each tested alone.

Decisions (SPEC §3, §5):

* **An optimizer step is a fixed set of conversations** (``effective_batch_size``) taken from a seeded
  permutation of the data, one per epoch (:func:`epoch_order`). The plan depends only on the seed and the
  data, so resuming at ``(epoch, step_in_epoch)`` replays exactly the batches an uninterrupted run sees,
  and every process computes the same plan without talking to the others.
* **Loss = sum of token losses / trained tokens of the whole step** (all micro-batches, all processes).
  The count is known from the plan before any forward pass, so it is the same number on every process
  with no communication; each micro-batch's backward uses it, and DDP's gradient averaging is undone by
  multiplying by the number of processes. Results therefore do not depend on the micro-batch split,
  accumulation or world size (the 2023 code's per-micro-batch mean did).
* **Logits only where there is a target** (``logits_to_keep`` with a boolean mask): the LM head and the
  cross entropy run on trained positions only, not on every prompt token.
* **The data is read from the token store** (:mod:`camels.train.store`): lengths and target counts from
  its index, each step's tokens from the memory map, so no process holds the encoded data set.
* **No per-micro-batch host syncs**: losses stay on the device and are read every ``logging_every`` steps.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.train.config import TrainConfig
from camels.train.encode import IGNORE_INDEX, Encoded, EncodedDataset
from camels.train.pack import (
    Batch,
    first_fit_decreasing,
    packed_batch,
    padded_batch,
    split_across_processes,
)
from camels.train.store import TokenStore

# -- the data plan ---------------------------------------------------------------------------------


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of the ``n`` conversations in ``epoch``: a permutation drawn from ``(seed, epoch)`` only."""
    return list(_epoch_order(n, seed, epoch))


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(f"camels:{seed}:{epoch}").shuffle(order)
    return tuple(order)


def steps_per_epoch(n: int, effective_batch_size: int) -> int:
    """The last, smaller step of an epoch is kept (its loss is normalised by its own token count)."""
    return -(-n // effective_batch_size)


def step_indices(n: int, seed: int, epoch: int, step_in_epoch: int, effective_batch_size: int) -> list[int]:
    """The conversations of one optimizer step (the epoch's permutation is computed once and cached)."""
    order = _epoch_order(n, seed, epoch)
    return list(order[step_in_epoch * effective_batch_size:(step_in_epoch + 1) * effective_batch_size])


def n_targets(e: Encoded) -> int:
    """Trained targets after the per-conversation shift (the first token is never a target)."""
    return sum(1 for x in e.labels[1:] if x != IGNORE_INDEX)


def micro_batches(
    examples: Sequence[Encoded],
    cfg: TrainConfig,
    *,
    attention: str,
    pad_id: int,
    num_processes: int = 1,
    process_index: int = 0,
) -> list[Batch]:
    """This process's micro-batches for one optimizer step over ``examples`` (the step's conversations).

    Conversations are dealt to processes balancing tokens; with packing each micro-batch is one row of at
    most ``cfg.tokens_per_row`` tokens (first-fit decreasing), else ``per_device_batch_size`` padded rows.
    """
    lengths = [len(e) for e in examples]
    mine = split_across_processes(lengths, num_processes)[process_index]
    if cfg.packing:
        bins = first_fit_decreasing([lengths[i] for i in mine], cfg.tokens_per_row)
        return [packed_batch([examples[mine[j]] for j in sorted(b)], attention) for b in bins]
    size = cfg.per_device_batch_size
    return [padded_batch([examples[i] for i in mine[k:k + size]], pad_id) for k in range(0, len(mine), size)]


# -- the loss ----------------------------------------------------------------------------------------


def loss_sum(model: Any, batch: Batch) -> Any:
    """Sum of the cross entropy over the batch's trained targets (fp32), computed on those positions only."""
    import torch.nn.functional as F

    keep = batch.targets != IGNORE_INDEX
    logits = model(**batch.model_inputs(), logits_to_keep=keep).logits
    if logits.dim() == 3:  # a model that ignores a boolean logits_to_keep
        logits = logits[keep]
    return F.cross_entropy(logits.float(), batch.targets[keep], reduction="sum")


def backward_step(
    model: Any,
    batches: Sequence[Batch],
    global_trained: int,
    *,
    accelerator: Any = None,
    device: Any = None,
) -> Any:
    """Forward and backward every micro-batch of one optimizer step; return this process's share of the
    step's mean token loss (a device tensor; summed over processes it is the step's mean token loss).

    Each micro-batch contributes ``sum of its token losses / global_trained`` (times the number of
    processes, which DDP divides back out), so the accumulated gradient is the gradient of the mean token
    loss of the whole step, however the step is split. Gradients are all-reduced once, on the last
    micro-batch (``no_sync`` on the others; under DeepSpeed, whose engine steps inside ``backward``, the
    engine is told that only the last micro-batch ends the step).
    """
    import contextlib

    import torch

    world = accelerator.num_processes if accelerator is not None else 1
    deepspeed = accelerator is not None and getattr(accelerator, "distributed_type", None) == "DEEPSPEED"
    scale = world / max(global_trained, 1)
    total = torch.zeros((), device=device)
    for i, b in enumerate(batches):
        last = i == len(batches) - 1
        ctx = accelerator.no_sync(model) if (accelerator is not None and not last) else contextlib.nullcontext()
        if deepspeed:
            accelerator.gradient_state._set_sync_gradients(last)
        with ctx:
            if device is not None:
                b = b.to(device)
            loss = loss_sum(model, b) * scale
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
        total = total + loss.detach()
    if not batches and accelerator is not None and world > 1:
        # This process got no conversation in this (small, last) step, but it must still take part in the
        # gradient all-reduce: a forward through the wrapped model on one token, times zero (its gradient is
        # exactly 0, so the step's gradient is that of the other processes' conversations).
        if deepspeed:
            accelerator.gradient_state._set_sync_gradients(True)
        dummy = torch.zeros((1, 1), dtype=torch.long, device=device)
        accelerator.backward(model(input_ids=dummy, use_cache=False).logits.sum() * 0.0)
    return total / world


def compile_blocks(model: Any) -> int:
    """``torch.compile`` the MLP and RMSNorm modules of the model, in place; return how many.

    Regional, not whole-model: packed rows change length at every step and the varlen attention loops over
    a per-row list of conversation lengths, which would make a whole-model graph recompile or break at
    every step. The MLP and the norms are where the elementwise work is (SiLU, gating, normalisation) that
    compilation fuses. Measured on this CPU for the 1M LLaMA of the benchmark: steps 1.5x faster once
    compiled, after about 100 s of compilation, so it pays off on long runs only.
    """
    n = 0
    for module in model.modules():
        name = type(module).__name__
        if name.endswith("MLP") or name.endswith("RMSNorm"):
            module.compile(dynamic=True)
            n += 1
    return n


# -- optimizer and schedule ----------------------------------------------------------------------------


def build_optimizer(model: Any, cfg: TrainConfig) -> Any:
    """AdamW; no weight decay on biases and normalisation weights (1-D parameters).

    The fused kernel (one pass per parameter instead of a dozen elementwise ops) is used whenever every
    trainable parameter is a float tensor on a device that has it (CPU and CUDA): the same update rule,
    3x faster than the per-tensor loop on a CPU, and the largest step-time cost after forward/backward
    for small models.
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate,
                             betas=tuple(cfg.adam_betas), eps=cfg.adam_eps, fused=fused)


def build_scheduler(optimizer: Any, cfg: TrainConfig, total_steps: int) -> Any:
    """Warmup of ``ceil(warmup_ratio * total_steps)`` steps, then linear/cosine decay to 0 (or constant)."""
    import torch

    warmup = math.ceil(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if cfg.lr_scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.lr_scheduler == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -- the loop ------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a run produced."""

    final_loss: float
    steps: int
    trained_tokens: int
    tokens: int
    output_dir: Path
    final_model: Path | None
    metrics_path: Path
    config_path: Path
    last_checkpoint: Path | None
    resumed_from: Path | None
    elapsed_s: float  # the loop plus the final checkpoint and export
    loop_s: float  # the optimizer steps only (what throughput figures use)
    data: dict[str, Any]

    @property
    def trained_tokens_per_s(self) -> float:
        return self.trained_tokens / max(self.loop_s, 1e-9)


def train(cfg: TrainConfig, *, dataset: EncodedDataset | TokenStore | None = None) -> TrainResult:
    """Finetune ``cfg.model`` on ``cfg.train_files`` (through the token store, or a pre-encoded ``dataset``)
    and export the result: setup, plan, loop, export."""
    run = _setup(cfg)
    data = dataset if dataset is not None else _token_store(cfg, run)
    plan = _plan(cfg, run, data)
    state = _start_or_resume(cfg, run, plan, data)
    config_path, log = _open_outputs(cfg, run, plan, state)
    last_ckpt = _loop(cfg, run, plan, state, data, log)
    return _finish(cfg, run, state, data, log, config_path, last_ckpt)


@dataclass
class _Run:
    """What the setup made: the process group, the model and its tokenizer, the chat contract."""

    accelerator: Any
    model: Any
    tokenizer: Any
    chat_format: Any
    attention: str
    pad_id: int
    out_dir: Path
    latest: Path | None  # the checkpoint to resume from
    trackers: str | None

    def say(self, text: str) -> None:
        self.accelerator.print(text)


@dataclass
class _Plan:
    """The optimizer steps: fixed before the first one, from the data's size and the config alone."""

    n: int
    per_epoch: int
    total_steps: int
    num_epochs: int
    optimizer: Any
    scheduler: Any


def _setup(cfg: TrainConfig) -> _Run:
    """Process group, the earlier run in ``output_dir`` checked, model + tokenizer + chat contract."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from camels.core.template import chat_format_for_tokenizer
    from camels.train.checkpoint import find_latest_checkpoint
    from camels.train.model import load_model_and_tokenizer
    from camels.train.pack import resolve_attention, set_model_attention

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.output_dir)
    trackers = None if cfg.report_to == "none" else cfg.report_to
    accelerator = Accelerator(log_with=trackers, project_dir=str(out_dir))

    # Refuse to silently overwrite or silently ignore an earlier run in the same folder.
    latest = find_latest_checkpoint(out_dir, set_aside=accelerator.is_main_process, say=accelerator.print)
    if cfg.resume and latest is None:
        raise ConfigError(f"resume: no checkpoint found in {out_dir}; nothing to resume from")
    if not cfg.resume and latest is not None:
        raise ConfigError(f"output_dir: {out_dir} already holds checkpoint {latest.name}; "
                          "set resume=true to continue it or choose another output_dir")

    set_seed(cfg.seed)
    model, tokenizer = load_model_and_tokenizer(cfg)
    chat_format = chat_format_for_tokenizer(tokenizer, cfg.chat_format)
    attention = resolve_attention(cfg.attention, accelerator.device.type) if cfg.packing else "padded"
    if attention != "padded":
        set_model_attention(model, attention)
    model.config.use_cache = False  # a KV cache is useless in training and disables packed-mask inference
    if cfg.fuse_norms and not cfg.compile:
        from camels.train.fused import fuse_rms_norms

        fuse_rms_norms(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return _Run(accelerator, model, tokenizer, chat_format, attention, pad_id, out_dir, latest if cfg.resume else None,
                trackers)


def _token_store(cfg: TrainConfig, run: _Run) -> TokenStore:
    """The training data, encoded once per machine into the token store (each local process a share, as
    ``encode_processes`` says)."""
    from camels.train.store import encoding_processes, local_group, open_or_build

    root = Path(cfg.token_cache) if cfg.token_cache else run.out_dir / "token_store"
    shard = local_group(run.accelerator, encoding_processes(cfg.encode_processes, cfg.train_files))
    return open_or_build(root, cfg.train_files, run.tokenizer, run.chat_format, cfg.max_length,
                         build=run.accelerator.is_local_main_process, shard=shard, say=run.say)


def _plan(cfg: TrainConfig, run: _Run, data: EncodedDataset | TokenStore) -> _Plan:
    """Steps, optimizer and schedule. The scheduler is not handed to accelerate (which would step it once
    per process); it is registered so that checkpoints save and restore it."""
    if not len(data):
        raise ConfigError(f"train_files: no trainable conversation (dropped: {dict(data.dropped)})")
    run.say(f"camels train: {len(data)} conversations, {data.n_tokens} tokens ({data.n_trained} trained), "
            f"dropped {dict(data.dropped) or 'none'}, attention={run.attention}")
    n = len(data)
    per_epoch = steps_per_epoch(n, cfg.effective_batch_size)
    total_steps = cfg.max_steps or cfg.num_epochs * per_epoch
    accelerator = run.accelerator
    run.model.train()
    optimizer = build_optimizer(run.model, cfg)
    deepspeed_plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if deepspeed_plugin is not None:  # camels feeds its own micro-batches; DeepSpeed asks for a number anyway
        deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 1
    run.model, optimizer = accelerator.prepare(run.model, optimizer)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    accelerator.register_for_checkpointing(scheduler)
    if cfg.compile:
        compile_blocks(run.model)
    return _Plan(n, per_epoch, total_steps, -(-total_steps // per_epoch), optimizer, scheduler)


def _start_or_resume(cfg: TrainConfig, run: _Run, plan: _Plan, data: EncodedDataset | TokenStore) -> Any:
    """Step 0, or the checkpoint's model, optimizer, scheduler, RNG and place in the data plan."""
    from camels.train.checkpoint import TrainState, load_checkpoint

    if run.latest is None:
        return TrainState(global_step=0, epoch=0, step_in_epoch=0, trained_tokens=0, extra={})
    state = load_checkpoint(run.accelerator, run.latest, config_dict=cfg.to_dict(), data_sha256=data.data_sha256,
                            force=cfg.resume_force)
    run.say(f"camels train: RESUMING from {run.latest} at step {state.global_step} "
            f"(epoch {state.epoch}, step {state.step_in_epoch} of {plan.per_epoch})")
    return state


def _open_outputs(cfg: TrainConfig, run: _Run, plan: _Plan, state: Any) -> tuple[Path, Any]:
    """The resolved config and chat contract in the run folder, and the metrics logger."""
    from camels.train.metrics import MetricsLogger

    accelerator, out_dir = run.accelerator, run.out_dir
    config_path = out_dir / "config.resolved.yaml"
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        config_path = cfg.save(out_dir)
        (out_dir / "chat_format.json").write_text(json.dumps(run.chat_format.to_dict(), indent=2), encoding="utf-8")
        if run.trackers:
            accelerator.init_trackers("camels", config=_flat(cfg.to_dict()))
    log = MetricsLogger(out_dir / "metrics.jsonl" if accelerator.is_main_process else None,
                        total_steps=plan.total_steps, start_step=state.global_step, every=cfg.logging_every,
                        accelerator=accelerator, use_trackers=bool(run.trackers))
    return config_path, log


def _checkpoint(cfg: TrainConfig, run: _Run, state: Any, data: EncodedDataset | TokenStore) -> Path:
    from camels.train.checkpoint import save_checkpoint

    return save_checkpoint(run.accelerator, state, run.out_dir, chat_format=run.chat_format,
                           config_dict=cfg.to_dict(), data_sha256=data.data_sha256,
                           keep_last=cfg.keep_last_checkpoints)


def _loop(cfg: TrainConfig, run: _Run, plan: _Plan, state: Any, data: EncodedDataset | TokenStore,
          log: Any) -> Path | None:
    """One iteration = one optimizer step over ``effective_batch_size`` conversations of the plan."""
    accelerator, model = run.accelerator, run.model
    last_ckpt: Path | None = None
    trainable = [p for p in model.parameters() if p.requires_grad]
    targets_per_example = data.n_targets  # from the index: not recounted at every step
    while state.global_step < plan.total_steps and state.epoch < plan.num_epochs:
        idx = step_indices(plan.n, cfg.seed, state.epoch, state.step_in_epoch, cfg.effective_batch_size)
        step_examples = [data[i] for i in idx]
        global_trained = int(sum(targets_per_example[i] for i in idx))
        batches = micro_batches(step_examples, cfg, attention=run.attention, pad_id=run.pad_id,
                                num_processes=accelerator.num_processes, process_index=accelerator.process_index)
        loss = backward_step(model, batches, global_trained, accelerator=accelerator, device=accelerator.device)
        if cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
        lr = plan.scheduler.get_last_lr()[0]
        plan.optimizer.step()
        plan.scheduler.step()
        plan.optimizer.zero_grad(set_to_none=True)

        # Advance the position in the data plan (what a checkpoint must record to replay exactly).
        state.global_step += 1
        state.step_in_epoch += 1
        if state.step_in_epoch >= plan.per_epoch:
            state.epoch += 1
            state.step_in_epoch = 0
        state.trained_tokens += global_trained
        log.step(state.global_step, loss, lr, sum(len(e) for e in step_examples), global_trained, state.epoch)
        if cfg.save_every_steps and state.global_step % cfg.save_every_steps == 0 \
                and state.global_step < plan.total_steps:
            last_ckpt = _checkpoint(cfg, run, state, data)
    log.flush(state.global_step, plan.scheduler.get_last_lr()[0], state.epoch)
    log.close()
    return last_ckpt


def _finish(cfg: TrainConfig, run: _Run, state: Any, data: EncodedDataset | TokenStore, log: Any,
            config_path: Path, last_ckpt: Path | None) -> TrainResult:
    """The final checkpoint (resumable) and the exported model (LoRA merged, chat contract inside)."""
    from camels.train.export import export_model

    loop_s = log.elapsed
    last_ckpt = _checkpoint(cfg, run, state, data)
    final_model = None
    if cfg.export:
        final_model = export_model(run.accelerator, run.model, run.tokenizer, run.out_dir / "final",
                                   chat_format=run.chat_format, config_dict=cfg.to_dict(),
                                   data_sha256=data.data_sha256)
    if run.trackers:
        run.accelerator.end_training()
    run.say(f"camels train: done, {state.global_step} steps, final loss {log.last_loss:.4f}, "
            f"{log.total_trained} trained tokens in {log.elapsed:.1f}s")
    return TrainResult(
        final_loss=log.last_loss,
        steps=state.global_step,
        trained_tokens=state.trained_tokens,
        tokens=log.total_tokens,
        output_dir=run.out_dir,
        final_model=final_model,
        metrics_path=run.out_dir / "metrics.jsonl",
        config_path=config_path,
        last_checkpoint=last_ckpt,
        resumed_from=run.latest,
        elapsed_s=log.elapsed,
        loop_s=loop_s,
        data=data.summary(),
    )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat scalars for trackers (lists as strings)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
