"""Attention for scoring many suffixes after one shared prefix, with the prefix's keys and values stored once.

The HF backend runs a shared prefix (5-shot MMLU: the subject header and exemplars) once, then a batch of
suffixes. Going through the model's own cache would copy the prefix's keys and values into every row of
every batch and pass a padding mask, which sends PyTorch's attention to slower kernels. Here instead the
decoder runs the suffixes *without* a cache, and this attention function, registered with transformers'
attention interface, adds the prefix itself:

* **prefix part**: every query of the batch attends to the same prefix keys with no mask, so the batch
  (and the query heads that share a key head) is folded into the query length: one attention call with
  batch 1, no copy of the prefix;
* **suffix part**: causal attention inside each row. Rows are padded on the right, so a real query never
  sees a padding key and no padding mask is needed (padding positions produce values nobody reads);
* the two parts are merged exactly with their log-sum-exp: ``out = sum_i exp(lse_i - lse) * out_i``;
* **last layer**: only the positions whose next-token distribution is read (for a choice request, the
  last token of each row) attend at all; the other positions of that layer feed nothing that is read.

The result equals attention over ``prefix + suffix`` up to float rounding. The backend checks this on its
own model at load (:meth:`camels.backends.hf.HFBackend`) and keeps the plain cache path for any model whose
layers do not go through the attention interface this way.
"""

from __future__ import annotations

from typing import Any

NAME = "camels_prefix"


def register() -> str:
    """Register the attention function with transformers (idempotent); return its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, prefix_attention)
    return NAME


def _attend(q: Any, k: Any, v: Any, *, causal: bool, scale: float) -> tuple[Any, Any]:
    """Attention output ``(B, H, S, D)`` and log-sum-exp ``(B, H, S)`` (natural log) of the scores."""
    import torch

    if q.device.type == "cpu" and q.dtype == torch.float32:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)[:2]
        return out, lse
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if causal:
        n, m = scores.shape[-2:]
        hide = torch.ones((n, m), dtype=torch.bool, device=q.device).triu(m - n + 1)
        scores = scores.masked_fill(hide, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), v.float()).to(q.dtype)
    return out, lse


def _merge(out_a: Any, lse_a: Any, out_b: Any, lse_b: Any) -> Any:
    """Attention over the union of two key sets from the attention over each (exact up to rounding)."""
    import torch

    lse = torch.logaddexp(lse_a, lse_b)
    wa = torch.exp(lse_a - lse).unsqueeze(-1).to(out_a.dtype)
    wb = torch.exp(lse_b - lse).unsqueeze(-1).to(out_b.dtype)
    return out_a * wa + out_b * wb


def _last_layer(query: Any, key: Any, value: Any, prefix: Any, rows: Any, cols: Any, scale: float) -> Any:
    """Attention output ``(B, H, S, D)`` where only the queries at ``(rows[n], cols[n])`` are computed (the
    others are zero): in the last layer nothing else is read, so the rest of its attention is skipped."""
    import torch

    b, h, s, d = query.shape
    kvh = key.shape[1]
    g = h // kvh
    n = rows.shape[0]
    q = query[rows, :, cols].reshape(n, kvh, g, d)  # (N, KV, g, D)
    # suffix keys of each query's own row, up to and including its position
    scores = torch.einsum("nkgd,nksd->nkgs", q.float(), key[rows].float()) * scale
    hide = torch.arange(s, device=query.device).unsqueeze(0) > cols.unsqueeze(1)  # (N, S)
    scores = scores.masked_fill(hide[:, None, None, :], float("-inf"))
    lse_s = torch.logsumexp(scores, dim=-1)
    out_s = torch.einsum("nkgs,nksd->nkgd", torch.exp(scores - lse_s.unsqueeze(-1)), value[rows].float())
    out_s = out_s.to(query.dtype)
    if prefix is not None:
        kp, vp = prefix
        qf = q.permute(1, 0, 2, 3).reshape(1, kvh, n * g, d)
        out_p, lse_p = _attend(qf, kp, vp, causal=False, scale=scale)
        out_p = out_p.reshape(kvh, n, g, d).permute(1, 0, 2, 3)
        lse_p = lse_p.reshape(kvh, n, g).permute(1, 0, 2)
        out_s = _merge(out_p, lse_p, out_s, lse_s)
    out = torch.zeros_like(query)
    out[rows, :, cols] = out_s.reshape(n, h, d)
    return out


def prefix_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                     dropout: float = 0.0, camels_prefix: Any = None, camels_read: Any = None,
                     **kwargs: Any) -> tuple[Any, None]:
    """transformers attention function: ``query`` ``(B, H, S, D)``, ``key``/``value`` ``(B, KV, S, D)`` of the
    suffixes; ``camels_prefix[layer]`` the prefix's ``(1, KV, P, D)`` keys and values (or None: causal only);
    ``camels_read`` = ``(last_layer, rows, cols)``: the only positions read after the last layer (or None).
    Returns ``(B, S, H, D)`` like transformers' own attention functions."""

    b, h, s, d = query.shape
    kvh = key.shape[1]
    g = h // kvh
    scale = scaling if scaling is not None else d ** -0.5
    if camels_read is not None and module.layer_idx == camels_read[0]:
        prefix = camels_prefix[module.layer_idx] if camels_prefix is not None else None
        return _last_layer(query, key, value, prefix, camels_read[1], camels_read[2], scale).transpose(1, 2), None
    ks, vs = (key, value) if g == 1 else (key.repeat_interleave(g, 1), value.repeat_interleave(g, 1))
    out_s, lse_s = _attend(query, ks, vs, causal=True, scale=scale)
    if camels_prefix is None:
        return out_s.transpose(1, 2).contiguous(), None
    kp, vp = camels_prefix[module.layer_idx]
    # (B, KV*g, S, D) -> (1, KV, B*g*S, D): all rows and the heads sharing a key head become one long query
    qf = query.reshape(b, kvh, g, s, d).transpose(0, 1).reshape(1, kvh, b * g * s, d)
    out_p, lse_p = _attend(qf, kp, vp, causal=False, scale=scale)
    out_p = out_p.reshape(kvh, b, g, s, d).transpose(0, 1).reshape(b, h, s, d)
    lse_p = lse_p.reshape(kvh, b, g, s).transpose(0, 1).reshape(b, h, s)
    return _merge(out_p, lse_p, out_s, lse_s).transpose(1, 2).contiguous(), None
