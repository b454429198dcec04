"""The one training loop: conversations -> optimizer steps, on accelerate.

Read :func:`train` top to bottom; the pieces it uses are small functions above it, each tested alone.

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
    with last_layer_on_rows(model, keep, batch.attention) as extra:
        out = model(**batch.model_inputs(), **extra, logits_to_keep=keep)
    logits = out.logits
    if logits.dim() == 3:  # a model that ignores a boolean logits_to_keep
        logits = logits[keep]
    return F.cross_entropy(logits.float(), batch.targets[keep], reduction="sum")


def _last_decoder_layer(model: Any) -> Any | None:
    """The last decoder layer of a recognised causal LM (plain, PEFT- or DDP-wrapped), else None."""
    m = model
    for _ in range(4):  # DDP -> PeftModel -> the transformers model
        if type(m).__name__ == "DistributedDataParallel":
            m = m.module
        elif hasattr(m, "get_base_model"):
            m = m.get_base_model()
        else:
            break
    if not type(m).__name__.endswith("ForCausalLM") or getattr(m.config, "output_hidden_states", False):
        return None
    try:
        layers = m.get_decoder().layers
        layer = layers[-1]
    except (AttributeError, IndexError, TypeError):
        return None
    if not type(layer).__name__.endswith("DecoderLayer") or getattr(layer, "gradient_checkpointing", False):
        return None  # a wrapped layer, or one recomputed in the backward pass (after the MLP is put back)
    if getattr(m, "is_activation_checkpointing", False):
        return None
    mlp = getattr(layer, "mlp", None)
    if mlp is None or not type(mlp).__name__.endswith("MLP"):  # dense MLPs only (no mixture of experts)
        return None
    return layer


_ROWS_MODULE: Any = None


def _rows_module() -> Any:
    global _ROWS_MODULE
    if _ROWS_MODULE is None:
        import torch

        class RowsOnly(torch.nn.Module):
            """Runs ``inner`` on the rows of ``keep`` only; zeros elsewhere."""

            def __init__(self, inner: Any, keep: Any) -> None:
                super().__init__()
                self.inner = inner
                self.keep = keep

            def forward(self, x: Any) -> Any:
                kept = self.inner(x[self.keep])
                out = kept.new_zeros(x.shape[:-1] + kept.shape[-1:])
                return out.index_put((self.keep,), kept)

        _ROWS_MODULE = RowsOnly
    return _ROWS_MODULE


class last_layer_on_rows:  # noqa: N801 (a context manager used like a function)
    """Within the block, the last decoder layer computes its output only at the positions of ``keep``.

    The last layer's output is used only through the final norm and the LM head, which are per position
    and (with ``logits_to_keep``) computed at the trained positions alone; its output elsewhere is never
    read, so computing it there is wasted work (a quarter of all MLP work with 4 layers, ~70% of it for
    chat data). So its MLP runs on the rows of ``keep`` only (zeros elsewhere), and with the ``varlen``
    attention its attention has queries at those rows only (keys and values still at every position; the
    extra model keyword ``camels_query_rows`` returned by ``__enter__`` tells the attention which layer and
    rows). Loss and gradients are unchanged. A model whose structure is not recognised runs unchanged.
    """

    def __init__(self, model: Any, keep: Any, attention: str = "padded") -> None:
        self.layer = _last_decoder_layer(model)
        self.keep = keep
        self.attention = attention
        self.mlp = None

    def __enter__(self) -> dict[str, Any]:
        if self.layer is None:
            return {}
        self.mlp = self.layer.mlp
        self.layer.mlp = _rows_module()(self.mlp, self.keep)
        layer_idx = getattr(getattr(self.layer, "self_attn", None), "layer_idx", None)
        if self.attention == "varlen" and layer_idx is not None and self.keep.shape[0] == 1:
            return {"camels_query_rows": (layer_idx, self.keep[0])}
        return {}

    def __exit__(self, *exc: Any) -> None:
        if self.mlp is not None:
            self.layer.mlp = self.mlp
            self.mlp = None


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


# -- model, checkpoints, export: thin calls into camels.train.model / checkpoint / export -------------


def _load_model_and_tokenizer(cfg: TrainConfig) -> tuple[Any, Any]:
    from camels.train.model import load_model_and_tokenizer

    return load_model_and_tokenizer(cfg)


def _state_cls() -> Any:
    from camels.train.checkpoint import TrainState

    return TrainState


def _find_latest(out_dir: Path) -> Path | None:
    from camels.train.checkpoint import find_latest_checkpoint

    return find_latest_checkpoint(out_dir)


def _load(accelerator: Any, path: Path, cfg: TrainConfig, data_sha256: str) -> Any:
    """Restore a checkpoint after checking that its data and math-relevant settings match this run."""
    from camels.train.checkpoint import load_checkpoint

    return load_checkpoint(accelerator, path, config_dict=cfg.to_dict(), data_sha256=data_sha256,
                           force=cfg.resume_force)


def _save(accelerator: Any, state: Any, out_dir: Path, *, chat_format: Any, config_dict: dict,
          data_sha256: str, keep_last: int) -> Path:
    from camels.train.checkpoint import save_checkpoint

    return save_checkpoint(accelerator, state, out_dir, chat_format=chat_format, config_dict=config_dict,
                           data_sha256=data_sha256, keep_last=keep_last)


def _export(accelerator: Any, model: Any, tokenizer: Any, out_dir: Path, chat_format: Any, cfg: TrainConfig,
            data_sha256: str | None = None) -> Path:
    from camels.train.export import export_model

    return export_model(accelerator, model, tokenizer, out_dir / "final", chat_format=chat_format,
                        config_dict=cfg.to_dict(), data_sha256=data_sha256)


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
    and export the result."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from camels.core.template import chat_format_for_tokenizer
    from camels.train.metrics import MetricsLogger
    from camels.train.pack import resolve_attention, set_model_attention
    from camels.train.store import open_or_build

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.output_dir)
    trackers = None if cfg.report_to == "none" else cfg.report_to
    accelerator = Accelerator(log_with=trackers, project_dir=str(out_dir))
    say = accelerator.print

    # 1. Refuse to silently overwrite or silently ignore an earlier run in the same folder.
    latest = _find_latest(out_dir)
    if cfg.resume and latest is None:
        raise ConfigError(f"resume: no checkpoint found in {out_dir}; nothing to resume from")
    if not cfg.resume and latest is not None:
        raise ConfigError(f"output_dir: {out_dir} already holds checkpoint {latest.name}; "
                          "set resume=true to continue it or choose another output_dir")

    # 2. Model, tokenizer and the chat contract that goes into every checkpoint.
    set_seed(cfg.seed)
    model, tokenizer = _load_model_and_tokenizer(cfg)
    chat_format = chat_format_for_tokenizer(tokenizer, cfg.chat_format)
    attention = resolve_attention(cfg.attention, accelerator.device.type) if cfg.packing else "padded"
    if attention != "padded":
        set_model_attention(model, attention)
    model.config.use_cache = False  # a KV cache is useless in training and disables packed-mask inference
    if cfg.fuse_norms and not cfg.compile:
        from camels.train.fused import fuse_rms_norms

        fuse_rms_norms(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    # 3. Data: encoded once into the token store (drops counted by reason), memory-mapped by every process.
    if dataset is None:
        root = Path(cfg.token_cache) if cfg.token_cache else out_dir / "token_store"
        dataset = open_or_build(root, cfg.train_files, tokenizer, chat_format, cfg.max_length,
                                build=accelerator.is_local_main_process, say=say)
    if not len(dataset):
        raise ConfigError(f"train_files: no trainable conversation (dropped: {dict(dataset.dropped)})")
    say(f"camels train: {len(dataset)} conversations, {dataset.n_tokens} tokens "
        f"({dataset.n_trained} trained), dropped {dict(dataset.dropped) or 'none'}, attention={attention}")

    # 4. Steps, optimizer, schedule. The scheduler is not handed to accelerate (which would step it once
    #    per process); it is registered so that checkpoints save and restore it.
    n = len(dataset)
    per_epoch = steps_per_epoch(n, cfg.effective_batch_size)
    total_steps = cfg.max_steps or cfg.num_epochs * per_epoch
    num_epochs = -(-total_steps // per_epoch)
    model.train()
    optimizer = build_optimizer(model, cfg)
    deepspeed_plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if deepspeed_plugin is not None:  # camels feeds its own micro-batches; DeepSpeed asks for a number anyway
        deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 1
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    accelerator.register_for_checkpointing(scheduler)
    if cfg.compile:
        compile_blocks(model)

    # 5. Resume: restores model, optimizer, scheduler and RNG, and where in the data plan we were.
    state = _state_cls()(global_step=0, epoch=0, step_in_epoch=0, trained_tokens=0, extra={})
    if cfg.resume:
        state = _load(accelerator, latest, cfg, dataset.data_sha256)
        say(f"camels train: RESUMING from {latest} at step {state.global_step} "
            f"(epoch {state.epoch}, step {state.step_in_epoch} of {per_epoch})")
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        config_path = cfg.save(out_dir)
        (out_dir / "chat_format.json").write_text(json.dumps(chat_format.to_dict(), indent=2), encoding="utf-8")
        if trackers:
            accelerator.init_trackers("camels", config=_flat(cfg.to_dict()))
    else:
        config_path = out_dir / "config.resolved.yaml"
    metrics_path = out_dir / "metrics.jsonl"
    log = MetricsLogger(metrics_path if accelerator.is_main_process else None, total_steps=total_steps,
                        start_step=state.global_step, every=cfg.logging_every, accelerator=accelerator,
                        use_trackers=bool(trackers))

    def checkpoint() -> Path:
        return _save(accelerator, state, out_dir, chat_format=chat_format, config_dict=cfg.to_dict(),
                     data_sha256=dataset.data_sha256, keep_last=cfg.keep_last_checkpoints)

    # 6. The loop: one iteration = one optimizer step over `effective_batch_size` conversations.
    last_ckpt: Path | None = None
    device = accelerator.device
    trainable = [p for p in model.parameters() if p.requires_grad]
    targets_per_example = dataset.n_targets  # from the index: not recounted at every step
    while state.global_step < total_steps and state.epoch < num_epochs:
        idx = step_indices(n, cfg.seed, state.epoch, state.step_in_epoch, cfg.effective_batch_size)
        step_examples = [dataset[i] for i in idx]
        global_trained = int(sum(targets_per_example[i] for i in idx))
        batches = micro_batches(step_examples, cfg, attention=attention, pad_id=pad_id,
                                num_processes=accelerator.num_processes, process_index=accelerator.process_index)
        loss = backward_step(model, batches, global_trained, accelerator=accelerator, device=device)
        if cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        # Advance the position in the data plan (what a checkpoint must record to replay exactly).
        state.global_step += 1
        state.step_in_epoch += 1
        if state.step_in_epoch >= per_epoch:
            state.epoch += 1
            state.step_in_epoch = 0
        state.trained_tokens += global_trained
        log.step(state.global_step, loss, lr, sum(len(e) for e in step_examples), global_trained, state.epoch)
        if cfg.save_every_steps and state.global_step % cfg.save_every_steps == 0 \
                and state.global_step < total_steps:
            last_ckpt = checkpoint()

    # 7. Final checkpoint (resumable) and the exported model (LoRA merged, chat contract inside).
    log.flush(state.global_step, scheduler.get_last_lr()[0], state.epoch)
    log.close()
    loop_s = log.elapsed
    last_ckpt = checkpoint()
    final_model = (_export(accelerator, model, tokenizer, out_dir, chat_format, cfg, dataset.data_sha256)
                   if cfg.export else None)
    if trackers:
        accelerator.end_training()
    say(f"camels train: done, {state.global_step} steps, final loss {log.last_loss:.4f}, "
        f"{log.total_trained} trained tokens in {log.elapsed:.1f}s")
    return TrainResult(
        final_loss=log.last_loss,
        steps=state.global_step,
        trained_tokens=state.trained_tokens,
        tokens=log.total_tokens,
        output_dir=out_dir,
        final_model=final_model,
        metrics_path=metrics_path,
        config_path=config_path,
        last_checkpoint=last_ckpt,
        resumed_from=latest if cfg.resume else None,
        elapsed_s=log.elapsed,
        loop_s=loop_s,
        data=dataset.summary(),
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
