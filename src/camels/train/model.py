"""Building the model that is trained: base weights, dtype, pad token, LoRA/QLoRA adapters, merging.

:func:`load_model_and_tokenizer` turns the model part of a :class:`TrainConfig` into a ready
``(model, tokenizer)`` pair; the loop never touches ``from_pretrained`` itself. Decisions:

* **Pad token**: a tokenizer without one gets ``pad = eos`` (LLaMA-style). That is safe here because the
  loss mask comes from the chat contract's character spans, never from token ids
  (:mod:`camels.train.encode` checks that every assistant turn still ends with a trained EOS), and
  packed rows have no padding at all.
* **LoRA targets** default to every linear projection inside the transformer blocks (attention
  ``q/k/v/o`` and MLP ``gate/up/down`` on LLaMA), found by walking the model rather than by a per-architecture
  table; the LM head is never adapted (SPEC §3: "all projection layers").
* **QLoRA** needs bitsandbytes and a CUDA GPU. Both are checked before any weight is read, with a
  :class:`ConfigError` that says which one is missing; bitsandbytes is imported lazily so the rest of
  camels works without it.
* **Merging** (:func:`merge_lora`) folds ``B @ A * alpha / r`` into the base weights and returns a plain
  transformers model: what evaluation and export load, with no peft at inference time.

Heavy imports (torch, transformers, peft) happen inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.io import load_pretrained

# Linear layers that are never given adapters even under "all-linear": the output head(s).
_NEVER_ADAPT = ("lm_head", "embed_out", "output_layer", "score", "classifier")


def torch_dtype(name: str) -> Any:
    """``bf16``/``fp16``/``fp32`` -> the torch dtype; ``auto`` -> the string transformers understands."""
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name == "auto":
        return "auto"
    if name not in table:
        raise ConfigError(f"dtype: {name!r} is not one of bf16, fp16, fp32, auto")
    return table[name]


def _check_local(name: str, key: str) -> None:
    """A name that is clearly a path must exist (else transformers reports a confusing hub-name error)."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise ConfigError(f"{key}: {name} does not exist (a local folder was given, not a hub name)")


def load_tokenizer(name: str) -> Any:
    """A fast tokenizer by hub name or folder, with a pad token (``eos`` when it has none)."""
    from transformers import AutoTokenizer

    _check_local(name, "tokenizer")
    try:
        tok = load_pretrained(AutoTokenizer, name)
    except OSError as e:
        raise ConfigError(f"tokenizer: cannot load {name!r} ({e})") from e
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"tokenizer: {name!r} has no fast tokenizer; the chat contract needs token offsets")
    ensure_pad_token(tok)
    return tok


def ensure_pad_token(tokenizer: Any, model: Any = None) -> None:
    """Give ``tokenizer`` a pad token (its EOS) when it has none, and tell ``model``'s config."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("tokenizer: it has neither a pad nor an EOS token; set eos_token first")
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def load_model_and_tokenizer(cfg: Any) -> tuple[Any, Any]:
    """The model to train and its tokenizer, as ``cfg`` (a :class:`TrainConfig`) asks.

    Order matters: quantisation happens at load time, gradient checkpointing is switched on before the
    adapters are added (peft then keeps the inputs of the frozen embeddings differentiable), and LoRA last.
    """
    from transformers import AutoModelForCausalLM

    if cfg.qlora:
        check_qlora_available()
    _check_local(cfg.model, "model")
    tok = load_tokenizer(cfg.tokenizer or cfg.model)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(cfg.dtype)}
    if cfg.qlora:
        kwargs["quantization_config"] = qlora_quantization_config(cfg.dtype)
        kwargs["device_map"] = _local_device_map()
    try:
        model = load_pretrained(AutoModelForCausalLM, cfg.model, **kwargs)
    except OSError as e:
        raise ConfigError(f"model: cannot load {cfg.model!r} ({e})") from e
    ensure_pad_token(tok, model)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        raise ConfigError(f"tokenizer: {len(tok)} tokens but the model's embedding has only "
                          f"{model.get_input_embeddings().weight.shape[0]} rows; they do not belong together")
    if cfg.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        # Non-reentrant checkpointing: works with frozen inputs (LoRA) and does not re-seed dropout wrongly.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.enabled:
        if cfg.gradient_checkpointing and not cfg.qlora:
            model.enable_input_require_grads()
        model = apply_lora(model, cfg.lora)
    return model, tok


# -- LoRA ------------------------------------------------------------------------------------------------


def lora_target_modules(model: Any) -> list[str]:
    """Names (last component) of the linear projections in ``model`` that LoRA adapts under ``all-linear``.

    Every ``nn.Linear`` (or a quantised linear, whose class name ends in ``Linear4bit``/``Linear8bitLt``)
    except the output head. On LLaMA: ``down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj``.
    """
    import torch

    names = set()
    for full, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")
        if not is_linear:
            continue
        last = full.rsplit(".", 1)[-1]
        if last in _NEVER_ADAPT:
            continue
        names.add(last)
    if not names:
        raise ConfigError("lora.target_modules: the model has no linear projection layer to adapt")
    return sorted(names)


def peft_lora_config(model: Any, lora: Any) -> Any:
    """The peft ``LoraConfig`` for ``lora`` (a camels :class:`LoraConfig` section)."""
    from peft import LoraConfig, TaskType

    targets = lora.target_modules
    if targets == "all-linear" or targets == ["all-linear"]:
        targets = lora_target_modules(model)
    elif isinstance(targets, str):
        targets = [targets]
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(f"lora.target_modules: {missing} not found in the model "
                          f"(its linear layers: {lora_target_modules(model)})")
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(targets),
                      bias="none", task_type=TaskType.CAUSAL_LM)


def apply_lora(model: Any, lora: Any) -> Any:
    """Wrap ``model`` with fresh LoRA adapters; only the adapter weights stay trainable."""
    from peft import get_peft_model

    return get_peft_model(model, peft_lora_config(model, lora))


def is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is part of the [train] extra
        return False
    return isinstance(model, PeftModel)


def merge_lora(adapter: str | Path | Any, *, base: str | Path | None = None, dtype: str = "auto") -> Any:
    """A plain transformers model with the LoRA update folded into the base weights.

    ``adapter`` is a peft model in memory (merged in place and unwrapped) or a folder written by peft
    (``adapter_config.json`` + ``adapter_model.safetensors``, e.g. ``checkpoints/step-N/adapter``). For a
    folder the base is ``base`` or the ``base_model_name_or_path`` the adapter records, loaded unquantised
    in ``dtype``: merging into 4-bit weights would round the update away, so a QLoRA adapter is merged
    into a full-precision copy of its base.
    """
    if not isinstance(adapter, (str, Path)):
        if not is_peft_model(adapter):
            raise ConfigError("merge_lora: the model has no LoRA adapter to merge")
        return adapter.merge_and_unload()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = Path(adapter)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ConfigError(f"{folder}: not a LoRA adapter folder (no adapter_config.json)")
    recorded = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    base = base or recorded
    if not base:
        raise ConfigError(f"{config_path}: records no base model; pass the base explicitly")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch_dtype(dtype))
    except OSError as e:
        raise ConfigError(f"merge_lora: cannot load the base model {str(base)!r} ({e})") from e
    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()


# -- QLoRA -----------------------------------------------------------------------------------------------


def check_qlora_available() -> None:
    """Raise :class:`ConfigError` unless bitsandbytes is importable and a CUDA GPU is visible."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("qlora: needs bitsandbytes (pip install 'camels-instruct[qlora]') and a CUDA GPU; "
                          "bitsandbytes is not installed")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("qlora: 4-bit NF4 loading needs a CUDA GPU and none is visible; "
                          "use lora.enabled=true without qlora on this machine")


def qlora_quantization_config(dtype: str = "bf16") -> Any:
    """4-bit NF4 weights, double quantisation, compute in ``dtype`` (bf16 by the QLoRA recipe)."""
    from transformers import BitsAndBytesConfig

    compute = torch_dtype(dtype if dtype in ("bf16", "fp16", "fp32") else "bf16")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _local_device_map() -> dict[str, int]:
    """Each process puts the whole quantised model on its own GPU (DDP-style QLoRA)."""
    import os

    return {"": int(os.environ.get("LOCAL_RANK", "0"))}
