"""Build judges from names: a prompt name, a model name, a backend and its options.

Tasks keep their judge setup as plain config fields (prompt, model, backend, backend options); these
functions turn them into scorers. An empty model or backend means the prompt file's default (e.g.
``gpt-4-0314`` through ``api`` for ``alpaca_eval_gpt4``). Backend options come as ``{key: value}`` with
values as text or typed (``max_concurrency: "4"`` works); they go to :func:`camels.backends.load_backend`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camels.core.config import parse_value
from camels.judge.classifier import HFClassifier
from camels.judge.ledger import CostLedger
from camels.judge.pairwise import PairwiseJudge
from camels.judge.pointwise import YesNoJudge
from camels.judge.prompts import load_prompt


def _options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: parse_value(v) if isinstance(v, str) else v for k, v in (options or {}).items()}


def pairwise_judge(prompt: str, *, model: str = "", backend: str = "", base_url: str = "",
                   options: Mapping[str, Any] | None = None, max_attempts: int = 3, ledger: str = "",
                   max_cost: float | None = None, prices: Mapping[str, Mapping[str, float]] | None = None
                   ) -> PairwiseJudge:
    """A pairwise judge; ``ledger`` is the path of its per-call ledger (empty: totals in memory only)."""
    from camels.backends import load_backend

    p = load_prompt(prompt)
    opts = _options(options)
    backend = backend or p.backend
    if base_url:
        opts["base_url"] = base_url
    judge_backend = load_backend(backend, model or p.model, **opts)
    costs = CostLedger(ledger or None, prices={**p.prices, **(prices or {})}, max_cost=max_cost)
    return PairwiseJudge(judge_backend, p, max_attempts=max_attempts, ledger=costs)


def yesno_judge(prompt: str, *, model: str = "", backend: str = "", options: Mapping[str, Any] | None = None
                ) -> YesNoJudge:
    """A yes/no judge; a local causal LM judge reads the prompt as plain text (no chat format)."""
    from camels.backends import load_backend

    p = load_prompt(prompt)
    opts = _options(options)
    backend = backend or p.backend
    if backend in ("hf", "vllm"):
        opts.setdefault("chat_format", "plain")
    return YesNoJudge(load_backend(backend, model or p.model, **opts), p)


def classifier(prompt: str, *, model: str = "", device: str = "cpu", batch_size: int = 32,
               max_length: int = 512) -> HFClassifier:
    """A Hugging Face sequence classifier loaded by name (or from a folder)."""
    p = load_prompt(prompt)
    return HFClassifier(model or p.model, p, device=device, batch_size=batch_size, max_length=max_length)
