"""The final model as a Hugging Face folder that transformers (and camels eval) load as is.

``output_dir/final/`` holds::

    config.json, generation_config.json, model.safetensors   the weights (LoRA merged into the base)
    tokenizer files + chat_template.jinja                    the tokenizer, with the chat contract as its template
    chat_format.json                                         the contract itself (what camels eval reads)
    camels_train.json                                        resolved config, data sha256, package versions

**The chat template is generated from the contract** (:func:`hf_chat_template`), so
``tokenizer.apply_chat_template(messages, tokenize=False)`` renders exactly the text camels trained on
(BOS, headers, stripped contents, EOS after every assistant turn); the test suite checks this on
multi-turn conversations. Tokenize that text with ``add_special_tokens=False`` (transformers'
``apply_chat_template(tokenize=True)`` does), or BOS is doubled.

**Atomic**: the folder is written as ``.tmp-final-<host>-<pid>`` beside the target, fsynced, and renamed;
an older export is replaced only once the new one is complete (it is first moved into
``.old-final-<host>-<pid>/``, then removed). Both folders name their owner (``owner.json``, see
:mod:`camels.core.stale`, removed before the rename into place); an export removes only the leftovers
of exports whose process is gone, never the folder of another export still running on the same file
system.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.stale import OWNER, beside, leftovers, owned_folder, remove_stale


def _lit(s: str) -> str:
    """``s`` as a Jinja string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def hf_chat_template(chat_format: Any) -> str:
    """A Jinja chat template that renders like ``chat_format`` (a camels ``ChatFormat``).

    For a conversation, the template's text equals ``chat_format.render(messages).text``; with
    ``add_generation_prompt=True`` it continues that text with the assistant header, keeping the EOS after
    earlier assistant turns (exactly the context the model was trained on).
    """
    kind = chat_format.kind
    # No whitespace control around the BOS: it must not eat the first characters of a tokenizer's template.
    bos = f"{{{{ {_lit(chat_format.bos_token)} }}}}" if chat_format.add_bos and chat_format.bos_token else ""
    eos = _lit(chat_format.eos_token)
    check_roles = (
        "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
        "{{- raise_exception('unknown role ' + message['role'] + '; expected system, user or assistant') -}}"
        "{%- endif -%}"
    )
    if kind == "tulu":
        return (
            bos + "{%- for message in messages -%}" + check_roles
            + "{{- '<|' + message['role'] + '|>\\n' + (message['content'] | trim) -}}"
            + "{%- if message['role'] == 'assistant' -%}{{- " + eos + " -}}{%- endif -%}"
            + "{%- if not loop.last or add_generation_prompt -%}{{- '\\n' -}}{%- endif -%}"
            + "{%- endfor -%}"
            + "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
        )
    if kind == "plain":
        return (
            bos + "{%- for message in messages -%}" + check_roles
            + "{%- if not loop.first -%}{{- '\\n\\n' -}}{%- endif -%}"
            + "{{- message['content'] | trim -}}"
            + "{%- if message['role'] == 'assistant' -%}{{- " + eos + " -}}{%- endif -%}"
            + "{%- endfor -%}"
            + "{%- if add_generation_prompt and messages | length > 1 -%}{{- '\\n\\n' -}}{%- endif -%}"
        )
    if kind == "hf_template":
        return bos + chat_format.template
    raise ConfigError(f"export: no chat template for chat format kind {kind!r}")


def export_model(
    accelerator: Any,
    model: Any,
    tokenizer: Any,
    target: str | Path,
    *,
    chat_format: Any,
    config_dict: dict[str, Any],
    data_sha256: str | None = None,
) -> Path:
    """Write the trained model to ``target`` (every process must call it; the main process writes).

    A LoRA model is merged in place (it is a plain model afterwards), so export is the last thing a run
    does with it. Under FSDP/DeepSpeed the full state dict is gathered from all processes first.
    """
    from camels.train.model import is_peft_model

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    state_dict = None
    if not is_peft_model(unwrapped) and str(accelerator.distributed_type) in (
            "DistributedType.FSDP", "DistributedType.DEEPSPEED", "FSDP", "DEEPSPEED"):
        state_dict = accelerator.get_state_dict(model)
    target = Path(target)
    if accelerator.is_main_process:
        write_model_folder(unwrapped, tokenizer, target, chat_format=chat_format, config_dict=config_dict,
                           data_sha256=data_sha256, state_dict=state_dict)
    accelerator.wait_for_everyone()
    return target


def write_model_folder(
    model: Any,
    tokenizer: Any,
    target: str | Path,
    *,
    chat_format: Any,
    config_dict: dict[str, Any] | None = None,
    data_sha256: str | None = None,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Single-process export (what :func:`export_model` runs on the main process)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(leftovers(target, "tmp", "old"))
    tmp = owned_folder(beside(target, "tmp"))
    try:
        _write_folder(model, tokenizer, tmp, chat_format=chat_format, config_dict=config_dict,
                      data_sha256=data_sha256, state_dict=state_dict)
        (tmp / OWNER).unlink()
        _fsync_tree(tmp)
        _replace(target, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_folder(model: Any, tokenizer: Any, tmp: Path, *, chat_format: Any, config_dict: dict[str, Any] | None,
                  data_sha256: str | None, state_dict: dict[str, Any] | None) -> None:
    """The export's files, written into ``tmp``."""
    from camels.core.io import versions, write_json
    from camels.train.model import is_peft_model

    merged = False
    if is_peft_model(model):
        model = _merge_for_export(model, tmp, config_dict or {})
        merged = True
    _save_weights(model, tmp, state_dict)
    template = hf_chat_template(chat_format)
    old_template = getattr(tokenizer, "chat_template", None)
    tokenizer.chat_template = template
    try:
        tokenizer.save_pretrained(str(tmp))
    finally:
        tokenizer.chat_template = old_template
    write_json(tmp / "chat_format.json", chat_format.to_dict())
    write_json(tmp / "camels_train.json", {
        "config": config_dict,
        "data_sha256": data_sha256,
        "chat_format_fingerprint": chat_format.fingerprint(),
        "lora_merged": merged,
        "versions": versions("torch", "transformers", "accelerate", "peft"),
    })


def _replace(target: Path, tmp: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved into an owned ``.old-`` folder first
    (and put back if the rename fails), then removed."""
    old = None
    if target.exists():
        old = owned_folder(beside(target, "old"))
        os.rename(target, old / target.name)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    _fsync_tree(target.parent, files=False)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _merge_for_export(model: Any, tmp: Path, config_dict: dict[str, Any]) -> Any:
    """Fold the adapter into the base. A 4-bit (QLoRA) base is reloaded unquantised first."""
    from camels.train.model import merge_lora

    base = model.get_base_model()
    quantised = bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_quantized", False))
    if not quantised:
        return merge_lora(model)
    adapter = tmp / "merge-adapter"  # inside the export's folder: removed with it if the process is killed
    model.save_pretrained(str(adapter))
    try:
        dtype = config_dict.get("dtype", "bf16")
        return merge_lora(adapter, base=config_dict.get("model"), dtype=dtype if dtype != "auto" else "bf16")
    finally:
        shutil.rmtree(adapter, ignore_errors=True)


def _save_weights(model: Any, folder: Path, state_dict: dict[str, Any] | None) -> None:
    """``save_pretrained`` with inference settings (KV cache on, standard attention) in the saved config."""
    config = model.config
    saved = (getattr(config, "use_cache", None), getattr(config, "_attn_implementation", None))
    config.use_cache = True
    try:
        if saved[1] not in (None, "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"):
            model.set_attn_implementation("sdpa")  # the training-only varlen function is not registered elsewhere
        kw = {"state_dict": state_dict} if state_dict is not None else {}
        model.save_pretrained(str(folder), **kw)
    finally:
        config.use_cache = saved[0]
        if saved[1] is not None and getattr(config, "_attn_implementation", None) != saved[1]:
            model.set_attn_implementation(saved[1])


def _fsync_tree(folder: Path, files: bool = True) -> None:
    paths = list(folder.rglob("*")) if files else []
    for p in paths:
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    for d in {folder, *(p.parent for p in paths)}:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_export_info(folder: str | Path) -> dict[str, Any]:
    """``camels_train.json`` of an exported folder (config, data hash, versions)."""
    return json.loads((Path(folder) / "camels_train.json").read_text(encoding="utf-8"))
