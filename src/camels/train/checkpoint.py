"""Checkpoints that are never half-written and that resume a run exactly.

Layout of ``output_dir/checkpoints/step-N/`` (everything accelerate's ``save_state`` writes, plus ours)::

    model.safetensors          full finetuning: all weights (absent with LoRA)
    adapter/                   LoRA: the adapter only, as peft writes it (``camels train merge`` reads it)
    optimizer.bin, custom_checkpoint_0.pkl (the LR scheduler), random_states_<rank>.pkl (python, numpy,
                               torch and CUDA generators of every process)
    train_state.json           where the run is: global_step, epoch, step_in_epoch, trained_tokens
    chat_format.json           the chat contract the model was trained with
    config.resolved.yaml/.json the run's full configuration
    provenance.json            sha256 of the training data, package versions
    COMPLETE                   written last: step and the sha256 and size of every file above

**Atomicity.** Every process writes into ``checkpoints/.tmp-step-N-<pid>`` (the main process's pid, named
as its owner in ``owner.json``, see :mod:`camels.core.stale`); the main process adds its files, fsyncs
everything, renames the folder to ``step-N`` and only then writes ``COMPLETE`` (``owner.json`` is removed
before it and is not among the files it lists). :func:`find_latest_checkpoint` only considers ``step-N`` folders whose ``COMPLETE`` lists
files that all exist with their recorded sizes, so a run killed at any moment leaves either the previous
checkpoint or the new one as the latest, never a partial one. Leftovers of interrupted saves are
deleted by the next save: ``step-N`` folders without a marker, and tmp folders whose owner is gone (or is
the saving process itself, whose earlier save failed); a tmp folder of another live process (a second
run writing into the same folder) is left alone, as is one of another host or without an owner file
until nothing in it changed for 24 hours. A checkpoint whose marker
exists but does not hold (a file truncated or missing after it was written) is *damaged*: it is named in a
one-line warning and moved to ``checkpoints/damaged-step-N`` (kept, never deleted by rotation), and the
run resumes from the previous complete one. :func:`load_checkpoint` also checks every file's sha256.

**Exact resume.** The data plan depends only on ``(seed, epoch)`` (see :mod:`camels.train.loop`), so
model + optimizer + scheduler + RNG states + ``(epoch, step_in_epoch)`` are all a run needs to continue
bit-for-bit. Resuming is refused when the training data changed (sha256) or when a field that changes the
math differs (:data:`MATH_FIELDS`); ``resume_force=true`` overrides both, knowingly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.io import fsync_dir
from camels.core.stale import OWNER, owned_folder, remove_stale

CHECKPOINTS = "checkpoints"
MARKER = "COMPLETE"
TMP_PREFIX = ".tmp-step-"
DAMAGED_PREFIX = "damaged-"
ADAPTER_DIR = "adapter"
_STEP_RE = re.compile(r"^step-(\d+)$")
MARKER_VERSION = 1

#: Config fields whose change makes a resumed run differ from an uninterrupted one. Fields that only
#: change how a step is split or computed (packing, attention, micro-batch sizes, logging, saving) are
#: free to change: the loss of a step does not depend on them (tests/train/test_loop.py).
MATH_FIELDS: tuple[str, ...] = (
    "model", "tokenizer", "chat_format", "max_length", "effective_batch_size", "learning_rate",
    "lr_scheduler", "warmup_ratio", "weight_decay", "adam_betas", "adam_eps", "max_grad_norm",
    "num_epochs", "max_steps", "seed", "dtype", "qlora", "lora.enabled", "lora.r", "lora.alpha",
    "lora.dropout", "lora.target_modules",
)


@dataclass
class TrainState:
    """Where a run is in its data plan; saved as ``train_state.json`` in every checkpoint."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    trained_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# -- finding checkpoints ---------------------------------------------------------------------------------


def checkpoints_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINTS


def checkpoint_step(path: str | Path) -> int | None:
    """``N`` for a folder named ``step-N``, else ``None``."""
    m = _STEP_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """The ``COMPLETE`` marker of a checkpoint folder if it is valid (cheap checks: sizes, not hashes)."""
    path = Path(path)
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or "train_state.json" not in files:
        return None
    if marker.get("step") != checkpoint_step(path):
        return None
    for rel, info in files.items():
        try:
            if (path / rel).stat().st_size != info["bytes"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
    return marker


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first (tmp folders and unmarked folders left out)."""
    root = checkpoints_dir(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None and read_marker(p)]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def find_latest_checkpoint(out_dir: str | Path, *, set_aside: bool = False,
                           say: Callable[[str], None] | None = None) -> Path | None:
    """The complete checkpoint with the highest step, or ``None``.

    With ``set_aside`` (the main process only), damaged checkpoints (see :func:`set_aside_damaged`) are
    first named in a warning and moved aside, so the previous complete one is found and none is deleted.
    """
    if set_aside:
        set_aside_damaged(out_dir, say=say)
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def is_damaged(path: Path) -> bool:
    """A ``step-N`` folder whose ``COMPLETE`` marker exists but does not hold: a file is missing, has another
    size (truncated), or the marker itself is unreadable. (A folder with no marker at all is a save that
    was interrupted before it finished: a leftover, not a damaged checkpoint.)"""
    return checkpoint_step(path) is not None and (path / MARKER).exists() and read_marker(path) is None


def set_aside_damaged(out_dir: str | Path, say: Callable[[str], None] | None = None) -> list[Path]:
    """Move damaged checkpoints to ``checkpoints/damaged-step-N`` with a one-line warning each; return the
    new places. They are kept for inspection: neither resume nor rotation ever reads or deletes them."""
    root = checkpoints_dir(out_dir)
    moved: list[Path] = []
    if not root.is_dir():
        return moved
    for p in sorted(root.iterdir(), key=lambda q: checkpoint_step(q) or 0):
        if not (p.is_dir() and is_damaged(p)):
            continue
        aside = root / f"{DAMAGED_PREFIX}{p.name}"
        n = 1
        while aside.exists():
            n += 1
            aside = root / f"{DAMAGED_PREFIX}{p.name}-{n}"
        os.rename(p, aside)
        moved.append(aside)
        (say or print)(f"camels train: WARNING checkpoint {p} is damaged ({_damage(p, aside)}); moved to {aside}, "
                       "it will not be used")
    return moved


def _damage(original: Path, path: Path) -> str:
    """What is wrong with a damaged checkpoint, in a few words (read from its moved copy)."""
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {MARKER} marker"
    if marker.get("step") != checkpoint_step(original):
        return f"its {MARKER} marker is for step {marker.get('step')}"
    for rel, info in sorted(files.items()):
        try:
            size = (path / rel).stat().st_size
        except OSError:
            return f"{rel} is missing"
        if not isinstance(info, dict) or size != info.get("bytes"):
            want = info.get("bytes") if isinstance(info, dict) else "?"
            return f"{rel} has {size} bytes, {want} were written"
    return f"its {MARKER} marker does not list train_state.json"


def clean_stale(out_dir: str | Path, keep: Path | None = None,
                say: Callable[[str], None] | None = None) -> list[Path]:
    """Delete the leftovers of interrupted saves (see the module docstring); return them. Damaged
    checkpoints are moved aside instead (:func:`set_aside_damaged`), never deleted.

    Only the process that writes checkpoints may call this, between its saves (it would delete a
    ``step-N`` folder that a save in progress has renamed but not yet marked).
    """
    set_aside_damaged(out_dir, say=say)
    root = checkpoints_dir(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p != keep and p.is_dir()]
    removed = remove_stale([p for p in found if p.name.startswith(TMP_PREFIX)], own=True)
    for p in found:
        if checkpoint_step(p) is not None and read_marker(p) is None:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def prune(out_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest complete checkpoints; return the deleted ones."""
    ckpts = list_checkpoints(out_dir)
    old = ckpts[:-keep_last] if keep_last > 0 else ckpts
    for p in old:
        # Remove the marker first: a half-deleted folder must never look complete.
        with contextlib.suppress(FileNotFoundError):
            (p / MARKER).unlink()
        shutil.rmtree(p, ignore_errors=True)
    return old


# -- saving ----------------------------------------------------------------------------------------------


def save_checkpoint(
    accelerator: Any,
    state: TrainState,
    out_dir: str | Path,
    *,
    chat_format: Any,
    config_dict: dict[str, Any],
    data_sha256: str,
    keep_last: int,
) -> Path:
    """Write ``checkpoints/step-N`` atomically (see the module docstring); every process must call it."""
    root = checkpoints_dir(out_dir)
    main = accelerator.is_main_process
    if main:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale(out_dir, say=accelerator.print)
    pid = _main_process_pid(accelerator)
    tmp = root / f"{TMP_PREFIX}{state.global_step}-{pid}"
    final = root / f"step-{state.global_step}"
    if main:
        owned_folder(tmp)
    accelerator.wait_for_everyone()
    with _adapter_hooks(accelerator):
        accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if main:
        _write_json(tmp / "train_state.json", state.to_dict())
        _write_json(tmp / "chat_format.json", chat_format.to_dict())
        _write_json(tmp / "config.resolved.json", config_dict)
        _write_text(tmp / "config.resolved.yaml", _yaml(config_dict))
        _write_json(tmp / "provenance.json", {"data_sha256": data_sha256, "num_processes": accelerator.num_processes,
                                              "versions": _versions()})
        files = _describe_files(tmp)
        fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. a resumed run that had nothing left to do)
            (final / MARKER).unlink(missing_ok=True)
            shutil.rmtree(final)
        os.rename(tmp, final)
        (final / OWNER).unlink()  # kept until the rename: a failed save's folder names its owner
        fsync_dir(final)
        fsync_dir(root)
        marker = {"version": MARKER_VERSION, "step": state.global_step, "files": files}
        _write_json(final / MARKER, marker)
        fsync_dir(final)
        prune(out_dir, keep_last)
    accelerator.wait_for_everyone()
    return final


def _hash_file(path: Path, fsync: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
        if fsync:
            os.fsync(f.fileno())
    return h.hexdigest()


def _hash_files(paths: list[Path], fsync: bool = False) -> list[str]:
    """sha256 of each file, several files at once (hashlib releases the GIL: weights and optimizer
    state of a large model hash in parallel rather than one after the other)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) <= 1:
        return [_hash_file(p, fsync) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        return list(pool.map(lambda p: _hash_file(p, fsync), paths))


def _describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` for every file under ``folder`` but its owner file (each
    fsynced)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p != folder / OWNER]
    digests = _hash_files(files, fsync=True)
    out = {p.relative_to(folder).as_posix(): {"sha256": d, "bytes": p.stat().st_size} for p, d in zip(files, digests)}
    for d in sorted({p.parent for p in folder.rglob("*")}):
        fsync_dir(d)
    return out


def _main_process_pid(accelerator: Any) -> int:
    """The main process's pid, known to every process (they all write into the same tmp folder)."""
    if accelerator.num_processes == 1:
        return os.getpid()
    from accelerate.utils import broadcast_object_list

    box = [os.getpid() if accelerator.is_main_process else 0]
    broadcast_object_list(box, from_process=0)
    return int(box[0])


# -- loading ---------------------------------------------------------------------------------------------


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check the marker and the sha256 of every file it lists; return the marker or raise ConfigError."""
    path = Path(path)
    marker = read_marker(path)
    if marker is None:
        raise ConfigError(f"{path}: not a complete checkpoint (no valid {MARKER} marker)")
    rels = sorted(marker["files"])
    for rel, digest in zip(rels, _hash_files([path / r for r in rels])):
        if digest != marker["files"][rel]["sha256"]:
            raise ConfigError(f"{path / rel}: file content does not match its sha256 in {MARKER} "
                              "(the checkpoint was changed or damaged after it was written)")
    return marker


def resume_problems(path: str | Path, config_dict: dict[str, Any] | None, data_sha256: str | None) -> list[str]:
    """What differs between a checkpoint and the run that wants to resume it (empty: compatible)."""
    path = Path(path)
    problems = []
    if data_sha256 is not None:
        saved = _read_json(path / "provenance.json").get("data_sha256")
        if saved != data_sha256:
            problems.append(f"the training data changed (sha256 {str(saved)[:12]}... when saved, "
                            f"{data_sha256[:12]}... now)")
    if config_dict is not None:
        saved_cfg = _read_json(path / "config.resolved.json")
        diffs = []
        for key in MATH_FIELDS:
            if key.startswith("lora.") and key != "lora.enabled" \
                    and not (_get(saved_cfg, "lora.enabled") or _get(config_dict, "lora.enabled")):
                continue  # adapter settings do not matter when neither run uses adapters
            a, b = _get(saved_cfg, key), _get(config_dict, key)
            if a != b:
                diffs.append(f"{key}: {a!r} -> {b!r}")
        if diffs:
            problems.append("fields that change the math differ: " + ", ".join(diffs))
    return problems


def load_checkpoint(
    accelerator: Any,
    path: str | Path,
    *,
    config_dict: dict[str, Any] | None = None,
    data_sha256: str | None = None,
    force: bool = False,
    verify: bool = True,
) -> TrainState:
    """Restore model (or adapter), optimizer, scheduler and RNG states; return where the run was.

    With ``config_dict``/``data_sha256`` the checkpoint is first checked against the resuming run
    (:func:`resume_problems`); a difference is a :class:`ConfigError` unless ``force``.
    """
    path = Path(path)
    problems = resume_problems(path, config_dict, data_sha256)
    if problems and not force:
        raise ConfigError(f"resume: cannot continue {path} exactly: " + "; ".join(problems)
                          + ". Restore the original data/settings, or set resume_force=true to continue "
                          "anyway (the result is then not what an uninterrupted run would give).")
    if problems:
        accelerator.print("camels train: WARNING resuming despite: " + "; ".join(problems))
    saved_world = _read_json(path / "provenance.json").get("num_processes", 1)
    if saved_world != accelerator.num_processes:
        # The data plan is the same, but each process has its own RNG stream (dropout): not bit-identical.
        accelerator.print(f"camels train: WARNING {path.name} was saved by {saved_world} process(es) and is "
                          f"resumed by {accelerator.num_processes}; random streams (dropout) will differ")
    if verify and accelerator.is_main_process:
        verify_checkpoint(path)
    accelerator.wait_for_everyone()
    with _adapter_hooks(accelerator):
        accelerator.load_state(str(path))
    return TrainState.from_dict(_read_json(path / "train_state.json"))


# -- LoRA: the checkpoint holds the adapter, not the frozen base -------------------------------------------


@contextlib.contextmanager
def _adapter_hooks(accelerator: Any) -> Iterator[None]:
    """Make ``save_state``/``load_state`` store a peft model's adapter (in ``adapter/``) instead of all weights."""
    from camels.train.model import is_peft_model

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        for i in reversed(range(len(weights))):
            unwrapped = accelerator.unwrap_model(models[i])
            if is_peft_model(unwrapped):
                weights.pop(i)
                unwrapped.save_pretrained(str(Path(output_dir) / ADAPTER_DIR),
                                          is_main_process=accelerator.is_main_process)

    def load_hook(models: list, input_dir: str) -> None:
        for i in reversed(range(len(models))):
            unwrapped = accelerator.unwrap_model(models[i])
            if is_peft_model(unwrapped):
                _load_adapter(unwrapped, Path(input_dir) / ADAPTER_DIR)
                models.pop(i)

    handles = [accelerator.register_save_state_pre_hook(save_hook),
               accelerator.register_load_state_pre_hook(load_hook)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _load_adapter(model: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = folder / "adapter_model.safetensors"
    if not file.is_file():
        raise ConfigError(f"{folder}: the checkpoint holds no LoRA adapter, but the run trains one "
                          "(was it saved by a full-finetuning run?)")
    result = set_peft_model_state_dict(model, load_file(str(file)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ConfigError(f"{file}: adapter weights that the model does not have: {unexpected[:5]}")


# -- small file helpers ----------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, obj: Any) -> None:
    from camels.core.io import write_json

    write_json(path, obj)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from e


def _yaml(d: dict[str, Any]) -> str:
    from camels.core.config import dump

    return dump(d)



def _get(d: dict[str, Any], dotted: str) -> Any:
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _versions() -> dict[str, str]:
    from camels.core.io import versions

    return versions("torch", "transformers", "accelerate", "peft")
