"""Training metrics: ``metrics.jsonl`` always, a progress bar on a terminal, trackers when asked.

Why a file of its own: the loop should read as the algorithm. Everything that only *reports* lives here,
and it is designed not to slow training down: the loop hands over detached loss tensors and this logger
turns them into numbers (one device sync) only every ``logging_every`` steps.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from camels.core.io import atomic_write


def _keep_rows_up_to(path: Path, step: int) -> None:
    """Before a resumed run appends to ``path``: drop the rows of steps after ``step`` (the checkpoint).

    A run killed after its last checkpoint logged steps that the resumed run trains again; without this, the
    file would hold those steps twice. A line cut short by the kill is dropped too. A fresh run (``step``
    0) starts from an empty file.
    """
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the torn last line of a killed run
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
        with atomic_write(path) as f:
            f.writelines(kept)


class MetricsLogger:
    """Collects per-step figures and writes them every ``every`` steps (main process only)."""

    def __init__(
        self,
        path: Path | None,
        *,
        total_steps: int,
        start_step: int,
        every: int,
        accelerator: Any = None,
        use_trackers: bool = False,
    ) -> None:
        self.path = path
        self.every = every
        self.total_steps = total_steps
        self.accelerator = accelerator
        self.use_trackers = use_trackers
        if path is not None:
            _keep_rows_up_to(path, start_step)
        self._file = open(path, "a", encoding="utf-8") if path is not None else None
        self._losses: list[Any] = []
        self._tokens = 0
        self._trained = 0
        self._t0 = time.perf_counter()
        self._window_t0 = self._t0
        self._start_step = start_step
        self.total_trained = 0
        self.total_tokens = 0
        self.last_loss = math.nan
        self.bar = _bar(total_steps, start_step) if path is not None else None

    def step(self, step: int, loss: Any, lr: float, tokens: int, trained: int, epoch: int) -> None:
        """Record optimizer step ``step`` (1-based); ``loss`` may be a device tensor (no sync here)."""
        self._losses.append(loss)
        self._tokens += tokens
        self._trained += trained
        self.total_tokens += tokens
        self.total_trained += trained
        if self.bar is not None:
            self.bar.update(1)
        if step % self.every == 0 or step == self.total_steps:
            self.flush(step, lr, epoch)

    def flush(self, step: int, lr: float, epoch: int) -> None:
        if not self._losses:
            return
        losses = _to_list(self._losses, self.accelerator)
        self.last_loss = losses[-1]
        now = time.perf_counter()
        dt = max(now - self._window_t0, 1e-9)
        row = {
            "step": step,
            "epoch": epoch,
            "loss": sum(losses) / len(losses),
            "lr": lr,
            "tokens": self._tokens,
            "trained_tokens": self._trained,
            "tokens_per_s": self._tokens / dt,
            "trained_tokens_per_s": self._trained / dt,
            "elapsed_s": now - self._t0,
        }
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
            if self.use_trackers and self.accelerator is not None:
                self.accelerator.log({k: v for k, v in row.items() if k != "step"}, step=step)
        self._losses.clear()
        self._tokens = self._trained = 0
        self._window_t0 = now

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.bar is not None:
            self.bar.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


def _to_list(values: list[Any], accelerator: Any = None) -> list[float]:
    """The logged steps' losses as floats: one device transfer for the whole window, and with several
    processes one all-reduce (sum) of the window, since each process holds only its share of a step's loss.
    Every process calls this at the same steps, so the collective always matches."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is there whenever training runs
        return [float(v) for v in values]
    if not all(isinstance(v, torch.Tensor) for v in values):
        return [float(v) for v in values]
    stacked = torch.stack([v.detach().float().reshape(()) for v in values])
    if accelerator is not None and getattr(accelerator, "num_processes", 1) > 1:
        stacked = accelerator.reduce(stacked, reduction="sum")
    return [float(x) for x in stacked.cpu().tolist()]


def _bar(total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    env = os.environ.get("CAMELS_PROGRESS")
    disable = (env == "0") or (env != "1" and not sys.stderr.isatty())
    # tqdm's own rate and remaining-time estimate give steps/s and the ETA.
    return tqdm(total=total, initial=initial, desc="train", unit="step", disable=disable, dynamic_ncols=True)
