"""The cost ledger of judge calls: tokens in and out, and cost, per call; totals; a spending limit.

With a ``path`` (``<run>/judge_ledger.jsonl``), every call the judge makes is appended as one JSON line
(model, tokens in, tokens out, cost, attempt) as soon as its answer arrives, and the totals are read back
from that file when a ledger is opened on it again, so the totals of a run folder cover every run that
judged into it (a resumed run adds only the calls it really made). Prices are USD per million tokens by
model, from the judge prompt's config (``prices``) or given by the user; a call of a model without a
price counts its tokens and ``calls_without_price``.

``max_cost``: :meth:`CostLedger.check_budget` raises :class:`BudgetExceeded` once the total reached it.
The judges check it before each batch, so a run stops cleanly between batches, after every finished
annotation was kept; the limit can be passed by at most one batch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from camels.core.errors import CamelsError


class BudgetExceeded(CamelsError):
    """The judge's spending limit was reached; finished annotations are kept (cached)."""


class CostLedger:
    def __init__(self, path: str | Path | None = None, prices: Mapping[str, Mapping[str, float]] | None = None,
                 max_cost: float | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.prices = {k: dict(v) for k, v in (prices or {}).items()}
        self.max_cost = max_cost
        self._lock = threading.Lock()
        self._totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
                        "calls_without_price": 0}
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        try:
                            self._count(json.loads(line))
                        except (ValueError, KeyError, TypeError):
                            continue  # a line cut by a kill: its call is not counted twice either way

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        p = self.prices.get(model)
        if p is None:
            return None
        return (prompt_tokens * p.get("prompt", 0.0) + completion_tokens * p.get("completion", 0.0)) / 1e6

    def _count(self, row: Mapping[str, Any]) -> None:
        t = self._totals
        t["calls"] += 1
        t["prompt_tokens"] += int(row["prompt_tokens"])
        t["completion_tokens"] += int(row["completion_tokens"])
        if row.get("cost_usd") is None:
            t["calls_without_price"] += 1
        else:
            t["cost_usd"] += float(row["cost_usd"])

    def add(self, model: str, prompt_tokens: int, completion_tokens: int, **info: Any) -> float:
        """Record one call; return its cost (0.0 without a price)."""
        cost = self.cost(model, prompt_tokens, completion_tokens)
        row = {"model": model, "prompt_tokens": int(prompt_tokens), "completion_tokens": int(completion_tokens),
               "cost_usd": cost, **info}
        with self._lock:
            self._count(row)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row, sort_keys=True) + "\n")
        return cost or 0.0

    def totals(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._totals)
        out["cost_usd"] = round(out["cost_usd"], 8)
        if self.max_cost is not None:
            out["max_cost"] = self.max_cost
        return out

    def check_budget(self) -> None:
        if self.max_cost is None:
            return
        spent = self.totals()["cost_usd"]
        if spent >= self.max_cost:
            raise BudgetExceeded(f"judge spending limit reached: ${spent:.4f} spent of --max-cost ${self.max_cost:.4f}"
                                 f" ({self.totals()['calls']} calls); every finished annotation is kept in the "
                                 "cache: rerun with a higher limit to judge the rest")
