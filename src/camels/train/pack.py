"""Padding-free packing: several conversations in one row, each attending only to itself.

Why: instruction data is short and uneven (a Dolly answer is 60 tokens, a ShareGPT chunk 2,000). Padding
each micro-batch to its longest conversation wastes most of the compute; packing concatenates
conversations into one row with no padding at all. Packing must not change the math, so three things are
done per conversation inside a row:

1. ``position_ids`` restart at 0 (rotary embeddings see the same positions as unpacked);
2. attention is isolated: a token attends only to earlier tokens of its own conversation;
3. targets are shifted *per conversation* (:func:`shift_labels`): the last token of a conversation never
   learns to predict the first token of the next one.

Isolation has three implementations (``TrainConfig.attention``):

* ``varlen`` (default on CPU and without flash-attn): an attention function registered with transformers'
  ``AttentionInterface`` that runs causal SDPA on each conversation's slice of the row. Exact, needs no
  mask, and costs ``sum(len_i^2)`` instead of ``L^2``: this is where most of the CPU speed comes from.
* ``sdpa_mask``: an explicit block-diagonal causal 4D mask handed to the model's SDPA/eager attention.
  Simple and portable, but quadratic in the row length; kept as the reference the tests compare against.
* ``flash_attention_2`` (GPU): transformers' flash-attn varlen path fed with ``cu_seq_lens``; imported
  lazily, skipped in the CPU tests.

transformers 5 can also infer a block-diagonal mask from restarting ``position_ids``, but not when a KV
cache is passed; camels does not rely on the inference and always calls the model with ``use_cache=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from camels.train.encode import IGNORE_INDEX, Encoded

VARLEN_ATTENTION = "camels_varlen"


# -- planning (pure Python) ----------------------------------------------------------------------------


def shift_labels(labels: Sequence[int]) -> list[int]:
    """Targets for next-token prediction inside one conversation: ``out[t] = labels[t + 1]``, last is -100."""
    return [*labels[1:], IGNORE_INDEX]


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins (lists of indices into ``lengths``) holding at most ``capacity`` tokens each.

    Longest first, each into the first bin with room; ties broken by index, so the plan depends only on the
    lengths (deterministic across processes and resumes). An item longer than ``capacity`` gets its own bin.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for b, r in enumerate(room):
            if n <= r:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return bins


def split_across_processes(lengths: Sequence[int], num_processes: int) -> list[list[int]]:
    """Deal a step's conversations to processes, balancing tokens (longest first to the lightest process)."""
    shares: list[list[int]] = [[] for _ in range(num_processes)]
    load = [0] * num_processes
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        p = min(range(num_processes), key=lambda q: (load[q], q))
        shares[p].append(i)
        load[p] += lengths[i]
    return [sorted(s) for s in shares]


# -- batches (torch) -----------------------------------------------------------------------------------


@dataclass
class Batch:
    """One micro-batch, ready for :meth:`model_inputs`. ``targets`` are already shifted per conversation."""

    input_ids: Any
    targets: Any
    position_ids: Any | None = None
    attention_mask: Any | None = None
    seq_lens: list[int] | None = None  # packed rows: conversation lengths in the (single) row
    attention: str = "padded"
    n_trained: int = 0
    n_tokens: int = 0

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for ``model(**inputs)`` (without labels: the loss is computed by camels)."""
        out: dict[str, Any] = {"input_ids": self.input_ids, "use_cache": False}
        if self.position_ids is not None:
            out["position_ids"] = self.position_ids
        if self.attention_mask is not None:
            out["attention_mask"] = self.attention_mask
        if self.attention == "varlen":
            out["camels_seq_lens"] = self.seq_lens
        elif self.attention == "flash_attention_2":
            import torch

            cu = torch.tensor([0, *_cumsum(self.seq_lens or [])], dtype=torch.int32, device=self.input_ids.device)
            longest = max(self.seq_lens or [0])
            out.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)
        return out

    def to(self, device: Any) -> Batch:
        def mv(x: Any) -> Any:
            return x.to(device, non_blocking=True) if x is not None else None

        return Batch(mv(self.input_ids), mv(self.targets), mv(self.position_ids), mv(self.attention_mask),
                     self.seq_lens, self.attention, self.n_trained, self.n_tokens)


def _cumsum(xs: Sequence[int]) -> list[int]:
    out, s = [], 0
    for x in xs:
        s += x
        out.append(s)
    return out


def _shifted(labels: Any) -> Any:
    """:func:`shift_labels` on a numpy array."""
    import numpy as np

    out = np.empty(len(labels), dtype=np.int64)
    out[:-1] = labels[1:]
    out[-1:] = IGNORE_INDEX
    return out


def packed_batch(examples: Sequence[Encoded], attention: str = "varlen", dtype: Any = None) -> Batch:
    """Concatenate ``examples`` into one row (batch size 1, no padding)."""
    import numpy as np
    import torch

    ids = np.concatenate([np.asarray(e.input_ids, dtype=np.int64) for e in examples])
    targets = np.concatenate([_shifted(np.asarray(e.labels, dtype=np.int64)) for e in examples])
    pos = np.concatenate([np.arange(len(e), dtype=np.int64) for e in examples])
    lens = [len(e) for e in examples]
    mask = None
    if attention == "sdpa_mask":
        mask = block_causal_mask(lens, dtype=dtype or torch.float32)
    return Batch(
        input_ids=torch.from_numpy(ids)[None],
        targets=torch.from_numpy(targets)[None],
        position_ids=torch.from_numpy(pos)[None],
        attention_mask=mask,
        seq_lens=lens,
        attention=attention,
        n_trained=int((targets != IGNORE_INDEX).sum()),
        n_tokens=len(ids),
    )


def padded_batch(examples: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-padded rows with a 2D attention mask: the unpacked reference (and ``packing: false``)."""
    import numpy as np
    import torch

    width = max(len(e) for e in examples)
    ids = np.full((len(examples), width), pad_id, dtype=np.int64)
    targets = np.full((len(examples), width), IGNORE_INDEX, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.int64)
    for r, e in enumerate(examples):
        n = len(e)
        ids[r, :n] = np.asarray(e.input_ids, dtype=np.int64)
        targets[r, :n] = _shifted(np.asarray(e.labels, dtype=np.int64))
        mask[r, :n] = 1
    pos = torch.arange(width).unsqueeze(0).expand(len(examples), -1).contiguous()
    return Batch(torch.from_numpy(ids), torch.from_numpy(targets), pos, torch.from_numpy(mask), None, "padded",
                 int((targets != IGNORE_INDEX).sum()), sum(len(e) for e in examples))


def block_causal_mask(seq_lens: Sequence[int], dtype: Any = None) -> Any:
    """A ``(1, 1, L, L)`` additive mask: 0 where token i may attend to j (same conversation, j <= i), else
    the dtype's minimum. transformers passes a 4D mask to the attention as is."""
    import torch

    dtype = dtype or torch.float32
    seg = torch.repeat_interleave(torch.arange(len(seq_lens)), torch.tensor(list(seq_lens)))
    n = seg.numel()
    allowed = (seg[:, None] == seg[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()
    mask = torch.zeros(n, n, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


# -- the varlen attention for CPU / SDPA ---------------------------------------------------------------


def varlen_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    camels_seq_lens: Sequence[int] | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Causal attention computed separately on each conversation of a packed row.

    ``query`` is ``(1, heads, L, dim)``, ``key``/``value`` ``(1, kv_heads, L, dim)`` (grouped-query attention
    is expanded by SDPA). Without ``camels_seq_lens`` the row is one sequence (plain causal attention),
    so generation and evaluation with this implementation set still work.
    """
    import torch
    import torch.nn.functional as F

    gqa = query.shape[1] != key.shape[1]
    if attention_mask is not None and camels_seq_lens is None:
        # A padded batch (e.g. evaluation): defer to the standard SDPA path with its mask.
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    lens = list(camels_seq_lens) if camels_seq_lens is not None else [query.shape[2]]
    if query.shape[0] != 1 and camels_seq_lens is not None:
        raise ValueError("varlen attention expects one packed row (batch size 1)")
    p = dropout if module.training else 0.0
    outs = [F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p, scale=scaling, enable_gqa=gqa)
            for q, k, v in zip(query.split(lens, dim=2), key.split(lens, dim=2), value.split(lens, dim=2))]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_varlen_attention() -> str:
    """Register :func:`varlen_attention` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention)
    return VARLEN_ATTENTION


def resolve_attention(requested: str, device_type: str) -> str:
    """``auto`` -> ``flash_attention_2`` on CUDA when flash-attn is installed, else ``varlen``."""
    if requested != "auto":
        return requested
    if device_type == "cuda":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "varlen"


def set_model_attention(model: Any, attention: str) -> None:
    """Point the model's attention at the implementation packing needs (works through PEFT wrappers)."""
    if attention == "varlen":
        impl = register_varlen_attention()
    elif attention == "sdpa_mask":
        impl = "sdpa"
    else:
        impl = attention
    target = model
    for attr in ("get_base_model",):
        if hasattr(target, attr):
            target = getattr(target, attr)()
    target.set_attn_implementation(impl)
