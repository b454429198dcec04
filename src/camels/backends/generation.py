"""The generation loop of the local HF backend: batched decoding over a KV cache, each row stopping alone.

A batch of prompts is prefilled once (identical prompts once, their cache rows copied to every sample;
the backend's ``_prefill`` computes a prefix shared with earlier prompts only once), then decoded one
token per step. A row ends at an EOS token, at one of its stop strings (the request's
own, or the chat format's end-of-turn strings; the text is cut before it) or when its token budget is
spent; finished rows leave the batch at once and their cache rows are dropped, so the remaining rows
keep running at the batch size they need. Greedy rows take the argmax; sampled rows draw from their own
``torch.Generator`` seeded from (request seed, sample index), so a sample does not depend on what else
is in the batch.

:class:`GenerationLoop` is a mixin: the backend that uses it provides ``encode``, ``_forward``,
``_prefill``, ``tokenizer``, ``chat_format``, ``batch_size``, ``max_length``, ``pad_id``, ``eos_ids`` and
``device``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from camels.backends.base import BackendError, cut_at_stop
from camels.backends.tokens import stop_hit
from camels.core.requests import GenerateRequest, Generation


@dataclass
class _Row:
    """One sample being generated."""

    req_index: int
    sample: int
    prompt_ids: list[int]
    req: GenerateRequest
    stops: tuple[str, ...]
    budget: int
    generator: Any = None
    out_ids: list[int] = field(default_factory=list)
    text: str = ""
    reason: str = ""


class GenerationLoop:
    """``generate_from_prompts`` for a backend that provides a cached forward (see the module text)."""

    def generate_from_prompts(self, prompts: Sequence[str], params: Sequence[GenerateRequest]) -> list[Generation]:
        """Generate from already rendered prompt texts; ``params[i]`` gives the decoding parameters.

        Used by :meth:`generate` and by servers that receive raw completion prompts.
        """
        import torch

        rows: list[_Row] = []
        prompt_tokens = []
        chat_stops = tuple(s for s in self.chat_format.stop_strings if s)
        for ri, (text, req) in enumerate(zip(prompts, params)):
            ids = self.encode(text)
            if not ids:
                raise BackendError(f"generate request {ri}: the prompt is empty")
            if len(ids) >= self.max_length:
                raise BackendError(
                    f"generate request {ri}: the prompt has {len(ids)} tokens, the model's context is "
                    f"{self.max_length}; nothing can be generated")
            prompt_tokens.append(len(ids))
            budget = min(req.max_tokens, self.max_length - len(ids))
            for s in range(req.n):
                gen = None
                if req.temperature > 0:
                    gen = torch.Generator(device="cpu")
                    gen.manual_seed(_sample_seed(req.seed, s))
                rows.append(_Row(ri, s, ids, req, tuple(req.stop) + chat_stops, budget, gen))
        # sorted by prompt tokens: prompts sharing a prefix (the shots of a few-shot prompt) side by side, so
        # the prefix's stored blocks serve batch after batch; identical prompts share their prefill
        order = sorted(range(len(rows)), key=lambda i: (rows[i].prompt_ids, i))
        store = self._block_store()
        for start in range(0, len(order), self.batch_size):
            following = order[start + self.batch_size:start + self.batch_size + 1]
            self._generate_batch([rows[i] for i in order[start:start + self.batch_size]], store,
                                 tuple(rows[following[0]].prompt_ids) if following else None)
        out: list[Generation] = []
        by_req: dict[int, list[_Row]] = {}
        for r in rows:
            by_req.setdefault(r.req_index, []).append(r)
        for ri in range(len(prompts)):
            rs = sorted(by_req[ri], key=lambda r: r.sample)
            out.append(Generation(
                texts=tuple(r.text for r in rs),
                finish_reasons=tuple(r.reason for r in rs),
                prompt_tokens=prompt_tokens[ri],
                completion_tokens=tuple(len(r.out_ids) for r in rs),
            ))
        return out

    def _generate_batch(self, batch: list[_Row], store: Any, following: tuple[int, ...] | None) -> None:
        import torch

        # prefill each distinct prompt once (blocks shared with other prompts come from ``store``), then
        # give every sample its prompt's cache row
        uniq: dict[tuple[int, ...], int] = {}
        src = []
        for r in batch:
            src.append(uniq.setdefault(tuple(r.prompt_ids), len(uniq)))
        logits, cache, mask, next_pos = self._prefill(list(uniq), store, following)
        index = torch.tensor(src, device=self.device)
        if len(uniq) != len(batch) or src != list(range(len(batch))):
            cache.batch_select_indices(index)
            logits, mask, next_pos = logits[index], mask[index], next_pos[index]
        cache = with_room(cache, max(r.budget for r in batch))
        active = list(batch)
        while True:
            tokens = self._pick(logits, active)
            keep = []
            for k, (row, tok) in enumerate(zip(active, tokens)):
                if self._advance(row, tok):
                    keep.append(k)
            if not keep:
                return
            if len(keep) != len(active):  # free the finished rows' batch slots and cache rows
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                mask, next_pos = mask[sel], next_pos[sel]
                active = [active[k] for k in keep]
                tokens = [tokens[k] for k in keep]
            step_ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            with torch.inference_mode():
                logits, _, cache = self._forward(step_ids, mask, next_pos.unsqueeze(1), cache, want_hidden=False)
            logits = logits[:, -1]
            next_pos = next_pos + 1

    def _pick(self, logits: Any, rows: list[_Row]) -> list[int]:
        import torch

        logits = logits.float()
        picks = logits.argmax(dim=-1).tolist()
        for k, row in enumerate(rows):
            req = row.req
            if req.temperature <= 0:
                continue
            probs = torch.softmax(logits[k] / req.temperature, dim=-1).cpu()
            if req.top_p < 1.0:
                sorted_p, sorted_i = probs.sort(descending=True)
                cum = sorted_p.cumsum(0)
                cut = (cum - sorted_p) >= req.top_p  # drop tokens once the mass before them reaches top_p
                sorted_p[cut] = 0.0
                probs = torch.zeros_like(probs).scatter_(0, sorted_i, sorted_p)
            picks[k] = int(torch.multinomial(probs, 1, generator=row.generator).item())
        return picks

    def _advance(self, row: _Row, tok: int) -> bool:
        """Append ``tok`` to the row; return whether the row goes on.

        Stop strings are looked for in the decoded text of the row's last ``stop_window`` tokens only (a
        stop that the new token completes lies within them), so a step costs the same however long the
        output is; the whole output is decoded only when a stop may have been hit and when the row ends.
        """
        row.out_ids.append(tok)
        if tok in self.eos_ids:  # the EOS token itself is not part of the text
            row.text, _ = cut_at_stop(self._decode(row.out_ids[:-1]), row.stops)
            row.reason = "eos"
            return False
        if row.stops and stop_hit(self._decode(row.out_ids[-stop_window(row.stops):]), row.stops) != -1:
            text = self._decode(row.out_ids)
            cut, hit = cut_at_stop(text, row.stops)
            if hit:
                # "stop" when one of the request's own stop strings ends the text, "eos" for end-of-turn
                own, own_hit = cut_at_stop(text, row.req.stop)
                row.text, row.reason = cut, ("stop" if own_hit and len(own) == len(cut) else "eos")
                return False
        if len(row.out_ids) >= row.budget:
            row.text, row.reason = self._decode(row.out_ids), "length"
            return False
        return True

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


_ROOMY: Any = None


def with_room(cache: Any, room: int) -> Any:
    """``cache`` (a transformers ``DynamicCache``) with room for ``room`` more positions in every layer.

    A ``DynamicCache`` layer concatenates each decoding step's keys/values to the cache, which copies the
    whole cache at every step; here each layer keeps its keys/values in a buffer with room to spare and
    writes the new positions in place (the layer's ``keys``/``values`` are views of the filled part: the
    same values in the same order, so attention computes exactly what it computed before). Caches of other
    kinds, or of a transformers version without cache layers, are returned unchanged."""
    global _ROOMY
    layers = getattr(cache, "layers", None)
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # pragma: no cover - a transformers version without cache layers
        return cache
    if not layers or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return cache
    if _ROOMY is None:
        _ROOMY = _roomy_layer_class(DynamicLayer)
    cache.layers = [_ROOMY(layer.keys, layer.values, room) for layer in layers]
    return cache


def _roomy_layer_class(base: Any) -> Any:
    class RoomyLayer(base):
        """A ``DynamicLayer`` whose keys/values are views of buffers with room for more positions."""

        def __init__(self, keys: Any, values: Any, room: int) -> None:
            super().__init__()
            self.is_initialized = True
            self.device = keys.device
            self.dtype = keys.dtype
            self.length = keys.shape[-2]
            self._set(keys, values, self.length + room)

        def _set(self, keys: Any, values: Any, capacity: int) -> None:
            n, h, length, d = keys.shape
            self.kbuf = keys.new_empty((n, h, capacity, d))
            self.vbuf = values.new_empty((n, values.shape[1], capacity, values.shape[3]))
            self.kbuf[:, :, :length] = keys
            self.vbuf[:, :, :length] = values
            self.keys, self.values = self.kbuf[:, :, :length], self.vbuf[:, :, :length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            end = self.length + key_states.shape[-2]
            if end > self.kbuf.shape[-2]:
                self._set(self.keys, self.values, 2 * end)
            self.kbuf[:, :, self.length:end] = key_states
            self.vbuf[:, :, self.length:end] = value_states
            self.length = end
            self.keys, self.values = self.kbuf[:, :, :end], self.vbuf[:, :, :end]
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
            self.keys, self.values = self.kbuf[:, :, :self.length], self.vbuf[:, :, :self.length]

    return RoomyLayer


def stop_window(stops: Sequence[str]) -> int:
    """Tokens whose decoded text surely holds any stop string that the last of them completes: a token
    adds at least one character except byte pieces of one character (at most four per character)."""
    return 4 * max((len(s) for s in stops), default=0) + 4


def _sample_seed(seed: int, sample: int) -> int:
    """A 63-bit seed for sample ``sample`` of a request with ``seed``, independent of everything else."""
    digest = hashlib.sha256(f"camels-sample:{seed}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
