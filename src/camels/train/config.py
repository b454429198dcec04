"""The training configuration: one typed, documented dataclass.

The same :class:`TrainConfig` feeds the YAML loader, the ``key=value`` overrides of ``camels train``,
validation and the config reference in ``docs/training.md`` (generated from the ``help`` texts below), so
a field cannot be documented in one place and behave differently in another. The resolved config is
written next to every output as ``config.resolved.yaml``: a run folder says exactly what produced it.

Defaults are the Tülu v1 recipe (SPEC §3): AdamW, lr 2e-5, linear decay, 3% warmup, weight decay 0,
2 epochs, 128 conversations per optimizer step, 2048 tokens, bf16.

This module imports no torch, so the CLI can load and check a config before anything heavy starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from camels.core import config
from camels.core.errors import ConfigError

CHAT_FORMATS = ("tulu", "auto", "hf_template", "plain")
DTYPES = ("bf16", "fp16", "fp32", "auto")
SCHEDULERS = ("linear", "cosine", "constant")
REPORTERS = ("none", "tensorboard", "wandb")
ATTENTION = ("auto", "varlen", "sdpa_mask", "flash_attention_2")


def _f(default: Any = dataclasses.MISSING, *, help: str, factory: Any = None) -> Any:
    """A dataclass field with a help text (kept in ``metadata`` for the CLI and the docs)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    if default is dataclasses.MISSING:
        return field(metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class LoraConfig:
    """Low-rank adapters (the paper's LoRA recipe: rank 64-256, alpha 16-256, dropout 0.05, all projections)."""

    enabled: bool = _f(False, help="Train LoRA adapters instead of all weights.")
    r: int = _f(64, help="LoRA rank.")
    alpha: int = _f(16, help="LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = _f(0.05, help="Dropout on the LoRA input.")
    target_modules: str | list[str] = _f(
        "all-linear", help="Modules that get adapters: 'all-linear' (every projection but the LM head) or a list."
    )


@dataclass
class TrainConfig:
    """Everything a finetuning run needs; see ``docs/training.md`` for the recipes."""

    # -- what to train on what ----------------------------------------------------------------------
    model: str = _f(help="Base model: a local folder or a hub name (resolved by the model loader).")
    train_files: list[str] = _f(help="Unified conversation JSONL files (SPEC §1), read in this order.")
    output_dir: str = _f(help="Run folder: checkpoints, metrics.jsonl, config.resolved.yaml, final model.")
    tokenizer: str | None = _f(None, help="Tokenizer folder or name; default: the model's.")
    chat_format: str = _f(
        "tulu", help="Chat format written into the checkpoint: tulu, auto (the tokenizer's template if any), "
        "hf_template or plain (base models)."
    )
    token_cache: str | None = _f(
        None, help="Folder where encoded training data (token stores) is kept and shared between runs, one "
        "sub-folder per data + tokenizer + chat format; default: output_dir/token_store."
    )
    encode_processes: int | Literal["auto"] = _f(
        "auto", help="Processes of a machine that encode the token store, a share each: auto (all of them when "
        "the training files hold at least 2 MB, else the main process alone: on less data sharing measured "
        "slower, docs/training.md), 1 (the main process alone) or N (at most N). The store is the same byte "
        "for byte whatever the setting."
    )
    # -- sequence handling --------------------------------------------------------------------------
    max_length: int = _f(2048, help="Tokens per conversation; longer ones are cut at the end (start kept).")
    packing: bool = _f(
        True, help="Padding-free packing: several conversations per row, attention isolated between them."
    )
    max_tokens_per_batch: int | None = _f(
        None, help="With packing: tokens per micro-batch row on one device (default: max_length; never less). "
        "Larger rows mean fewer, bigger kernels (the GPU recipes use 8192); on a CPU, rows of max_length "
        "trained faster than longer ones (docs/training.md, Speed)."
    )
    per_device_batch_size: int = _f(
        8, help="Without packing: conversations per padded micro-batch on one device."
    )
    attention: str = _f(
        "auto", help="How packed conversations are kept apart: varlen (per-conversation attention, exact, "
        "CPU/any), sdpa_mask (explicit block-diagonal causal mask), flash_attention_2 (GPU, cu_seqlens), "
        "auto (flash_attention_2 when installed on GPU, else varlen)."
    )
    # -- optimisation -------------------------------------------------------------------------------
    effective_batch_size: int = _f(
        128, help="Conversations per optimizer step, summed over micro-batches and processes."
    )
    gradient_accumulation: int | None = _f(
        None, help="Without packing: micro-batches per step (default: derived from effective_batch_size, "
        "per_device_batch_size and the number of processes; checked when given)."
    )
    learning_rate: float = _f(2e-5, help="Peak learning rate of AdamW.")
    lr_scheduler: str = _f("linear", help="linear (decay to 0), cosine or constant, after the warmup.")
    warmup_ratio: float = _f(0.03, help="Share of the optimizer steps spent warming up linearly from 0.")
    weight_decay: float = _f(0.0, help="AdamW weight decay (not applied to biases and norms).")
    adam_betas: list[float] = _f(factory=lambda: [0.9, 0.999], help="AdamW betas.")
    adam_eps: float = _f(1e-8, help="AdamW epsilon.")
    max_grad_norm: float = _f(0.0, help="Clip the gradient norm to this value; 0 turns clipping off.")
    num_epochs: int = _f(2, help="Passes over the data.")
    max_steps: int | None = _f(None, help="Stop after this many optimizer steps (overrides num_epochs).")
    seed: int = _f(42, help="Seed of the data order (one permutation per epoch) and of initialisation.")
    # -- model building (read by camels.train.model) --------------------------------------------------
    dtype: str = _f("bf16", help="Weight/compute dtype: bf16, fp16, fp32 or auto (the checkpoint's).")
    gradient_checkpointing: bool = _f(False, help="Recompute activations in the backward pass to save memory.")
    lora: LoraConfig = _f(factory=LoraConfig, help="LoRA adapters (nested: lora.enabled=true, lora.r=...).")
    qlora: bool = _f(False, help="Load the base model in 4-bit NF4 with double quantisation (needs lora).")
    compile: bool = _f(
        False, help="torch.compile the MLP and norm blocks (attention stays eager). On a CPU: 1.5x faster "
        "steps after about 100 s of compilation for a 1M model; for long runs only."
    )
    fuse_norms: bool = _f(
        False, help="Opt-in: give the model's RMSNorm modules a fused forward/backward (the same values, "
        "checked per module at start; other norms keep theirs). Measured only on a CPU with a 1M-parameter "
        "model (docs/training.md, Speed); ignored with compile, which fuses them itself."
    )
    num_threads: int | None = _f(
        None, help="CPU threads torch uses in each process (null: torch's default, one per core). On a "
        "machine shared with other jobs, 1 avoids threads waiting on each other (docs/training.md, Speed)."
    )
    # -- bookkeeping --------------------------------------------------------------------------------
    save_every_steps: int = _f(0, help="Checkpoint every N optimizer steps (0: only at the end).")
    keep_last_checkpoints: int = _f(2, help="Checkpoints kept on disk; older ones are deleted.")
    logging_every: int = _f(10, help="Log loss, learning rate and tokens/s every N optimizer steps.")
    report_to: str = _f("none", help="Extra trackers besides metrics.jsonl: none, tensorboard or wandb.")
    resume: bool = _f(False, help="Resume from the latest checkpoint in output_dir (an error if there is none).")
    resume_force: bool = _f(
        False, help="With resume: continue even if the training data (sha256) or a field that changes the "
        "math differs from the checkpoint's (the result is then not what an uninterrupted run gives)."
    )
    export: bool = _f(True, help="Write the final model (LoRA merged) as a Hugging Face folder in output_dir/final.")

    # -- validation ---------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if isinstance(self.lora, Mapping):
            self.lora = config.build(LoraConfig, self.lora, origin="lora")
        if isinstance(self.train_files, str):
            self.train_files = [self.train_files]
        self.validate()

    def validate(self) -> None:
        """Check values that types alone cannot; every error names the key."""
        _choice("chat_format", self.chat_format, CHAT_FORMATS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _choice("report_to", self.report_to, REPORTERS)
        _choice("attention", self.attention, ATTENTION)
        if not self.train_files:
            raise ConfigError("train_files: at least one JSONL file is needed")
        for key in ("max_length", "per_device_batch_size", "effective_batch_size", "num_epochs",
                    "logging_every", "keep_last_checkpoints"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        if self.encode_processes != "auto" and self.encode_processes < 1:
            raise ConfigError(f"encode_processes: must be auto or at least 1, got {self.encode_processes}")
        for key in ("max_steps", "gradient_accumulation", "num_threads"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"{key}: must be at least 1 (or unset), got {v}")
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < self.max_length:
            raise ConfigError(
                f"max_tokens_per_batch: must be at least max_length ({self.max_length}), "
                f"got {self.max_tokens_per_batch}"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate: must be positive, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.save_every_steps < 0:
            raise ConfigError("weight_decay, max_grad_norm and save_every_steps must not be negative")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"adam_betas: expected two numbers, got {self.adam_betas}")
        if self.qlora and not self.lora.enabled:
            raise ConfigError("qlora: QLoRA trains adapters; set lora.enabled=true as well")
        if self.lora.r < 1 or not 0.0 <= self.lora.dropout < 1.0:
            raise ConfigError("lora.r must be at least 1 and lora.dropout in [0, 1)")

    # -- derived values -----------------------------------------------------------------------------
    @property
    def tokens_per_row(self) -> int:
        """Capacity of one packed micro-batch row."""
        return self.max_tokens_per_batch or self.max_length

    def micro_batches_per_step(self, num_processes: int = 1) -> int:
        """Without packing: micro-batches per optimizer step on each process (checks an explicit value)."""
        per_step = self.per_device_batch_size * num_processes
        derived = -(-self.effective_batch_size // per_step)
        if self.gradient_accumulation is not None and not self.packing:
            if self.gradient_accumulation * per_step != self.effective_batch_size:
                raise ConfigError(
                    f"gradient_accumulation: {self.gradient_accumulation} x per_device_batch_size "
                    f"{self.per_device_batch_size} x {num_processes} process(es) != effective_batch_size "
                    f"{self.effective_batch_size}; leave gradient_accumulation unset to derive it"
                )
            return self.gradient_accumulation
        return derived

    # -- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return config.to_dict(self)

    def to_yaml(self) -> str:
        return config.dump(self)

    def save(self, path: str | Path) -> Path:
        """Write ``config.resolved.yaml`` (atomically; into ``path`` when it is a folder) and return its path."""
        return config.write_resolved(self, path)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "") -> TrainConfig:
        return config.build(cls, d, origin=origin)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Sequence[str] = (), **kw: Any) -> TrainConfig:
        """Load a YAML file (optional), then apply ``key=value`` overrides (``lora.r=16``), then ``kw``
        (the rules of :mod:`camels.core.config`)."""
        return config.load(cls, path, overrides, **kw)


RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"  # the shipped recipes (<name>.yaml)


def recipe_path(config: str) -> str:
    """A config path as given, or the recipe of that name shipped with camels (``tulu-v1``, ``tiny-cpu``)."""
    shipped = RECIPE_DIR / f"{config}.yaml"
    return str(shipped) if not Path(config).exists() and shipped.is_file() else config


# -- help and docs -------------------------------------------------------------------------------------


def field_help(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(key, type, default, help)`` for every field, nested ones as ``lora.r``; feeds docs and CLI help."""
    return config.field_help(cls, prefix)


def markdown_reference() -> str:
    """The config reference table of ``docs/training.md``."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, help_ in field_help():
        d = default if isinstance(default, str) and default == "(required)" else f"`{default!r}`"
        lines.append(f"| `{key}` | {tp} | {d} | {help_} |")
    return "\n".join(lines)


def _choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
