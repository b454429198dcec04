"""The transformers backend: batches of typed requests answered by a local causal LM.

What it guarantees, and how:

* **The prompt the model saw in training.** Prompts are rendered with the checkpoint's chat contract
  (``chat_format.json`` in a camels checkpoint or export), else the tokenizer's own chat template, else the
  ``plain`` format for base models. The contract writes BOS into the text and every text is tokenized with
  ``add_special_tokens=False``, so there is exactly one BOS.
* **Scores that do not depend on the batch, to the bit.** A scoring request is computed in blocks of
  ``block_size`` tokens at fixed positions (0, 64, 128, ... by default): block ``j`` of a request runs as
  one row of a forward of ``block_size`` queries after the ``j * block_size`` cached keys/values of its
  earlier blocks, the last block padded on the right. Every row of every forward has that same shape
  whatever else is in the batch and whichever requests arrive together, so the floats of a score do not
  depend on ``batch_size`` nor on how the runner chunks requests (tested byte for byte on
  ``predictions.jsonl``, float32 and bfloat16, on the CPU).
* **Shared prefixes computed once.** A block is named by all the tokens up to its end, so requests that
  share a prompt prefix (5-shot MMLU: the header and exemplars of a subject, about 80% of each prompt)
  share its full blocks: each is computed once, stored, and gathered into the cache of every row that
  continues it (transformers' ``DynamicCache``, a 4D additive mask and explicit ``position_ids``: public
  APIs only, any dtype, CPU or GPU). Scores equal those of one plain forward per prompt up to float
  rounding, and with ``prefix_reuse`` off (the same blocks, none shared) they are bit-identical. The path
  that ran is ``info.details["scoring_path"]`` (copied into every run's manifest). The shared prompt text
  is tokenized once per group (:func:`camels.backends.tokens.split_choices_shared`).
* **Generation** pads on the left with position ids counted from each row's first real token. Sampling
  uses one ``torch.Generator`` per sample, seeded from the request's seed and the sample index, so a
  sample is the same whatever else is in the batch (up to float rounding of the logits).
* **Each sequence stops on its own.** Generation is camels' own loop over the KV cache
  (:mod:`camels.backends.generation`): a row ends at EOS, at the chat format's end-of-turn strings, at one
  of its request's stop strings (cut from the text) or after ``max_tokens``; finished rows leave the batch
  and their cache rows are dropped.

Limits: one device, no tensor parallelism (use the vLLM backend for large models); the model must accept
a KV cache and ``position_ids`` like the decoder-only models of transformers. Models with sliding-window
attention score each request alone in one plain forward (``scoring_path`` ``whole``: no prefix reuse).
Each row's earlier blocks are copied into the batch's cache (memory ``batch_size`` times a prompt's KV).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.backends.base import BackendError, LocalPrompts
from camels.backends.generation import GenerationLoop
from camels.backends.tokens import split_at_boundary, split_choices_shared
from camels.core.requests import (
    BackendInfo,
    ChoiceRequest,
    ChoiceResult,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from camels.core.template import (
    ChatFormat,
    ContractError,
    chat_format_for_tokenizer,
    chat_format_from_dict,
)

CHAT_FORMAT_OPTIONS = ("auto", "tulu", "plain", "template")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def resolve_chat_format(choice: Any, tokenizer: Any, model_dir: Path | None) -> ChatFormat:
    """The chat contract for a model: ``choice`` is auto|tulu|plain|template, a dict or a ChatFormat.

    ``auto``: the ``chat_format.json`` of a camels checkpoint/export folder, else the tokenizer's own chat
    template, else ``plain`` (a base model).
    """
    if isinstance(choice, ChatFormat):
        return choice
    if isinstance(choice, dict):
        return chat_format_from_dict(choice)
    if choice not in CHAT_FORMAT_OPTIONS:
        raise ContractError(f"unknown chat_format {choice!r} (choose one of {', '.join(CHAT_FORMAT_OPTIONS)})")
    if choice == "auto":
        if model_dir is not None and (model_dir / "chat_format.json").is_file():
            return chat_format_from_dict(json.loads((model_dir / "chat_format.json").read_text("utf-8")))
        template = getattr(tokenizer, "chat_template", None)
        choice = "template" if isinstance(template, str) and template else "plain"
    return chat_format_for_tokenizer(tokenizer, "hf_template" if choice == "template" else choice)


def _tokenizer_digest(tokenizer: Any) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    """sha256 of a weights file; a hub cache blob is already named by its sha256, so it is not re-read."""
    real = path.resolve()
    if real.parent.name == "blobs" and len(real.name) == 64 and all(c in "0123456789abcdef" for c in real.name):
        return real.name
    from camels.core.io import sha256_file

    return sha256_file(real)


def _weights_digest_files(model_dir: Path) -> str:
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise BackendError(f"{model_dir}: no weights files ({', '.join(WEIGHT_SUFFIXES)}) to fingerprint")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{_file_digest(p)}\n".encode())
    return h.hexdigest()


def _weights_digest_state(model: Any) -> str:
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class _ScoreItem:
    """One forward to run: ``ids``; read log-probs at positions ``first..`` of ``targets[k]`` (k-th position)."""

    ids: tuple[int, ...]
    first: int  # the first position whose next-token distribution is needed
    targets: tuple[tuple[int, ...], ...]  # per needed position, the token ids whose log-probs are read
    logprobs: list[list[float]] = field(default_factory=list)
    argmax: list[int] = field(default_factory=list)
    prefill: bool = False  # generation: keep the logits after the last token and the last block's keys/values
    logits: Any = None
    tail: Any = None


class HFBackend(LocalPrompts, GenerationLoop):
    """A transformers causal LM behind the backend protocol.

    ``model`` is a hub name, a local folder, or an already loaded model object (then pass ``tokenizer``
    too). ``chat_format`` is ``auto`` (checkpoint's contract, else tokenizer template, else plain),
    ``tulu``, ``plain``, ``template``, or a ChatFormat/dict. ``batch_size`` rows per forward; ``dtype``
    ``auto`` (float32 on CPU, the checkpoint's dtype on GPU) or a torch dtype name; ``device`` ``auto``
    (CUDA when available); ``max_length`` the context size (default: the model config's);
    ``prefix_reuse`` turns the reuse of shared prompt prefixes on or off (scores are the same either way);
    ``block_size`` is the number of tokens per scoring block (see :meth:`_score_wave`).
    """

    name = "hf"

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        chat_format: Any = "auto",
        batch_size: int = 16,
        dtype: str = "auto",
        device: str = "auto",
        max_length: int | None = None,
        prefix_reuse: bool = True,
        block_size: int = 64,
        trust_remote_code: bool = False,
        progress: bool = False,
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        if block_size < 16:
            raise ValueError("block_size must be at least 16")
        self.prefix_reuse = prefix_reuse
        self.block_size = block_size
        self.progress = progress
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        model_dir: Path | None = None
        if isinstance(model, (str, os.PathLike)):
            model_name = str(model)
            model_dir = Path(model) if Path(model).is_dir() else None
            self.model, self.tokenizer = self._load(model_name, tokenizer, dtype, trust_remote_code)
        else:
            if tokenizer is None:
                raise ValueError("an in-memory model needs its tokenizer (tokenizer=...)")
            model_name = getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__
            self.model = model
            self.tokenizer = tokenizer
            if dtype != "auto":
                self.model.to(getattr(torch, dtype))
            self.model.to(self.device)
        if isinstance(self.tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer))
        self.model.eval()
        self.model_name = model_name
        self.chat_format = resolve_chat_format(chat_format, self.tokenizer, model_dir)
        self.max_length = max_length or self._context_size()
        self.eos_ids = self._eos_ids()
        self.pad_id = self._pad_id()
        self._weights = _weights_digest_files(model_dir) if model_dir is not None else _weights_digest_state(
            self.model)
        # transformers 5.x renamed ``past_key_values`` to ``cache``; use whichever this version takes
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._fast_head = self._check_fast_head()
        # scoring batches pass their own 4D additive mask where the attention implementation accepts one
        self._attn_impl = str(getattr(self.model.config, "_attn_implementation", None) or "eager")
        self._float_mask = self._attn_impl in ("sdpa", "eager")
        self.stats = {"forward_tokens": 0, "prefix_tokens_reused": 0, "forwards": 0}
        cfg = self.model.config
        # sliding-window layers keep only the window in their cache: such models score each request alone
        self._whole = bool(getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True))
        if self._whole:
            self.prefix_reuse = False

    # -- loading -------------------------------------------------------------------------------------
    def _load(self, name: str, tokenizer: Any, dtype: str, trust_remote_code: bool) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype == "auto":
            torch_dtype: Any = torch.float32 if self.device.type == "cpu" else "auto"
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, trust_remote_code=trust_remote_code)
            tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
                name, trust_remote_code=trust_remote_code)
        except OSError as e:
            raise BackendError(f"cannot load model {name!r}: {e}") from e
        model.to(self.device)
        return model, tok

    def _context_size(self) -> int:
        cfg = getattr(self.model, "config", None)
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return v
        v = getattr(self.tokenizer, "model_max_length", None)
        return v if isinstance(v, int) and 0 < v < 1_000_000 else 2048

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (self.tokenizer, getattr(self.model, "generation_config", None)):
            v = getattr(src, "eos_token_id", None)
            if isinstance(v, int):
                ids.add(v)
            elif isinstance(v, (list, tuple)):
                ids.update(int(x) for x in v)
        eos_tok = self.tokenizer.convert_tokens_to_ids(self.chat_format.eos_token)
        if isinstance(eos_tok, int) and eos_tok != getattr(self.tokenizer, "unk_token_id", None):
            ids.add(eos_tok)
        return ids

    def _pad_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = next(iter(sorted(self.eos_ids)), 0)
        return int(pad)

    def _check_fast_head(self) -> bool:
        """Whether decoder + output embeddings reproduce the logits (then only needed positions go
        through the head; models with logit soft-capping or scaling fall back to full logits)."""
        import torch

        try:
            decoder, head = self.model.get_decoder(), self.model.get_output_embeddings()
        except (AttributeError, NotImplementedError):
            return False
        if decoder is None or head is None:
            return False
        ids = torch.tensor([self.tokenizer("a b c", add_special_tokens=False)["input_ids"] or [0]],
                           device=self.device)
        params = inspect.signature(decoder.forward).parameters
        self._decoder_cache_kw = "cache" if "cache" in params else "past_key_values"
        try:
            with torch.inference_mode():
                full = self.model(input_ids=ids).logits.float()
                fast = head(decoder(input_ids=ids).last_hidden_state).float()
        except Exception:  # noqa: BLE001 - any model that does not fit this path uses full logits
            return False
        return full.shape == fast.shape and bool(torch.allclose(full, fast, atol=1e-4, rtol=1e-4))

    @property
    def scoring_path(self) -> str:
        """How scoring requests are computed: ``prefix_blocks`` (blocks of ``block_size`` tokens, full blocks
        shared between requests computed once), ``blocks`` (the same blocks, none shared: ``prefix_reuse``
        off) or ``whole`` (one plain forward per request: sliding-window models)."""
        if self._whole:
            return "whole"
        return "prefix_blocks" if self.prefix_reuse else "blocks"

    # -- protocol --------------------------------------------------------------------------------------
    @property
    def info(self) -> BackendInfo:
        dtype = str(next(self.model.parameters()).dtype).replace("torch.", "")
        blob = json.dumps({"weights": self._weights, "tokenizer": _tokenizer_digest(self.tokenizer),
                           "chat_format": self.chat_format.fingerprint(), "dtype": dtype}, sort_keys=True)
        return BackendInfo(
            name=self.name,
            model=self.model_name,
            fingerprint=hashlib.sha256(blob.encode()).hexdigest(),
            chat_format=self.chat_format.to_dict(),
            details={"dtype": dtype, "device": str(self.device), "max_length": self.max_length,
                     "batch_size": self.batch_size, "prefix_reuse": self.prefix_reuse,
                     "scoring_path": self.scoring_path, "block_size": self.block_size,
                     "attention": self._attn_impl},
        )


    def choose(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        items: dict[tuple[int, ...], _ScoreItem] = {}
        plan: list[list[tuple[tuple[int, ...], int]]] = []  # per request, per choice: (context, target)
        prompts = [self.prompt_text(req) for req in requests]
        splits = split_choices_shared(self.tokenizer, prompts, [req.choices for req in requests])
        for ri, (req, split) in enumerate(zip(requests, splits)):
            per_choice = []
            for choice, (ctx, cont) in zip(req.choices, split):
                if not cont:
                    raise BackendError(f"choice request {ri}: choice {choice!r} has no token")
                if not ctx:
                    raise BackendError(f"choice request {ri}: empty prompt context")
                per_choice.append((tuple(ctx), cont[0]))
            plan.append(per_choice)
            for ctx, _ in per_choice:
                self._check_fits(ri, "choice", len(ctx))
                items.setdefault(ctx, _ScoreItem(ctx, len(ctx) - 1, ((),)))
        # each context is scored once, for the union of its requested targets
        wanted: dict[tuple[int, ...], set[int]] = {}
        for per_choice in plan:
            for ctx, tgt in per_choice:
                wanted.setdefault(ctx, set()).add(tgt)
        for ctx, item in items.items():
            item.targets = (tuple(sorted(wanted[ctx])),)
        self._score(list(items.values()))
        out = []
        for per_choice in plan:
            lps = []
            for ctx, tgt in per_choice:
                item = items[ctx]
                lps.append(item.logprobs[0][item.targets[0].index(tgt)])
            out.append(ChoiceResult(tuple(lps)))
        return out

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        items: list[_ScoreItem] = []
        for ri, req in enumerate(requests):
            ctx, cont = split_at_boundary(self.tokenizer, self.prompt_text(req), req.continuation)
            if not ctx or not cont:
                raise BackendError(f"loglikelihood request {ri}: empty context or continuation after tokenizing")
            ids = tuple(ctx + cont)
            self._check_fits(ri, "loglikelihood", len(ids))
            items.append(_ScoreItem(ids, len(ctx) - 1, tuple((t,) for t in cont)))
        self._score(items)
        out = []
        for it in items:
            targets = [t[0] for t in it.targets]
            out.append(LoglikelihoodResult(
                logprob=float(sum(lp[0] for lp in it.logprobs)),
                n_tokens=len(targets),
                is_greedy=all(a == t for a, t in zip(it.argmax, targets)),
            ))
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return self.generate_from_prompts([self.prompt_text(r) for r in requests], requests)

    # -- scoring -----------------------------------------------------------------------------------------
    def _check_fits(self, ri: int, kind: str, n: int) -> None:
        if n > self.max_length:
            raise BackendError(
                f"{kind} request {ri}: {n} tokens do not fit the model's context of {self.max_length} tokens "
                "(shorten the prompt, e.g. fewer shots)")

    def _score(self, items: list[_ScoreItem]) -> None:
        """Fill ``logprobs``/``argmax`` of every item (see :meth:`_score_wave`).

        Items are sorted by token ids, so items that share a prefix are neighbours, and scored in waves of
        ``batch_size`` items. Between waves only the stored blocks that begin the next wave's first item are
        kept: by the sort, no later item can use any other.
        """
        if not items:
            return
        if self._whole:
            for it in items:
                self._score_alone(it)
            return
        order = sorted(range(len(items)), key=lambda i: items[i].ids)
        store: dict[Any, list[tuple[Any, Any]]] = {}
        for start in range(0, len(order), self.batch_size):
            self._score_wave([items[i] for i in order[start:start + self.batch_size]], store)
            following = order[start + self.batch_size:start + self.batch_size + 1]
            if not self.prefix_reuse or not following:
                store.clear()
                continue
            nxt = items[following[0]].ids
            for key in [k for k in store if nxt[:len(k)] != k]:
                del store[key]

    def _score_wave(self, wave: list[_ScoreItem], store: dict[Any, list[tuple[Any, Any]]]) -> None:
        """Score a few items block by block: level ``j`` runs, for every item that reads a position at or
        after ``j * block_size``, its tokens ``[j * block_size, (j + 1) * block_size)`` (the last block
        right-padded) after the keys/values of its earlier blocks.

        A block is named by the tokens up to its end, so items sharing a prefix share its full blocks: they
        are computed once (``store``) and only gathered into each row's cache. Every forward has the same
        shape per row (``block_size`` queries after ``j * block_size`` cached positions), whatever else is
        in the batch, which is what makes the scores independent of batch size and of which requests
        arrive together (see docs/backends.md, "Batch invariance")."""

        blk = self.block_size
        for it in wave:
            it.logprobs = [[] for _ in it.targets]
            it.argmax = [0] * len(it.targets)
        last = [(it.first + len(it.targets) - 1) // blk for it in wave]

        def key(w: int, end: int) -> Any:
            return self._block_key(wave[w], end)

        for j in range(max(last) + 1):
            rows: dict[Any, list[int]] = {}  # block name -> wave members that need it
            for w, it in enumerate(wave):
                if last[w] >= j:
                    rows.setdefault(key(w, min(len(it.ids), (j + 1) * blk)), []).append(w)
            todo = [(k, ws) for k, ws in rows.items() if k not in store or _reads_in(wave, ws, j, blk)]
            run = {k for k, _ in todo}
            self.stats["prefix_tokens_reused"] += sum(
                (min(len(wave[ws[0]].ids), (j + 1) * blk) - j * blk) * (len(ws) - (k in run))
                for k, ws in rows.items())
            for b in range(0, len(todo), self.batch_size):
                self._score_block(wave, todo[b:b + self.batch_size], j, store, key)

    def _block_key(self, it: _ScoreItem, end: int) -> Any:
        """The name of the block of ``it`` that ends at ``end``: its tokens up to there (shared by every
        request with the same tokens), or a name of its own when prefix reuse is off."""
        return it.ids[:end] if self.prefix_reuse else (id(it), end)

    def _score_block(self, wave: list[_ScoreItem], rows: list[tuple[Any, list[int]]], j: int,
                     store: dict[Any, list[tuple[Any, Any]]], key: Any) -> None:
        """One forward of block ``j`` for ``rows`` (block name, wave members); stores the full blocks'
        keys/values and fills the members' log-probs read in this block."""
        import torch

        blk = self.block_size
        n = len(rows)
        ids = torch.full((n, blk), self.pad_id, dtype=torch.long)
        for r, (_, ws) in enumerate(rows):
            toks = wave[ws[0]].ids[j * blk:(j + 1) * blk]
            ids[r, :len(toks)] = torch.tensor(toks)
        ids = ids.to(self.device)
        cache = None
        if j > 0:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            for layer in range(len(store[key(rows[0][1][0], blk)])):
                ks, vs = [], []
                for _, ws in rows:
                    parts = [store[key(ws[0], (t + 1) * blk)][layer] for t in range(j)]
                    ks.append(torch.cat([p[0] for p in parts], dim=-2))
                    vs.append(torch.cat([p[1] for p in parts], dim=-2))
                cache.update(torch.stack(ks), torch.stack(vs), layer)
        positions = (torch.arange(blk, device=self.device) + j * blk).expand(n, -1)
        # reads: (row, column, member, k) for every position read in this block
        reads = []
        for r, (_, ws) in enumerate(rows):
            for w in ws:
                it = wave[w]
                for k in range(len(it.targets)):
                    p = it.first + k
                    if j * blk <= p < (j + 1) * blk:
                        reads.append((r, p - j * blk, w, k))
        with torch.inference_mode():
            full, hidden, out_cache = self._forward(ids, self._block_mask(n, j), positions, cache, want_hidden=True)
            for r, (name, ws) in enumerate(rows):
                if len(wave[ws[0]].ids) >= (j + 1) * blk and name not in store:  # a full block: later ones need it
                    store[name] = [(layer.keys[r, :, j * blk:].clone(), layer.values[r, :, j * blk:].clone())
                                   for layer in out_cache.layers]
            for r, (_, ws) in enumerate(rows):
                for w in ws:
                    it = wave[w]
                    if it.prefill and (len(it.ids) - 1) // blk == j:  # its last block: keep the real part
                        n_real = len(it.ids) - j * blk
                        it.tail = [(layer.keys[r, :, j * blk:j * blk + n_real].clone(),
                                    layer.values[r, :, j * blk:j * blk + n_real].clone())
                                   for layer in out_cache.layers]
            if not reads:
                return
            at_r = torch.tensor([x[0] for x in reads], device=self.device)
            at_c = torch.tensor([x[1] for x in reads], device=self.device)
            if hidden is not None:
                # the head over at least 16 rows: small matrix products take other kernels (other rounding)
                h = hidden[at_r, at_c]
                pad = max(0, 16 - h.shape[0])
                logits = self.model.get_output_embeddings()(torch.cat([h, h.new_zeros((pad, h.shape[1]))]))
                logits = logits[: h.shape[0]]
            else:
                logits = full[at_r, at_c]
            logp = torch.log_softmax(logits.float(), dim=-1)
            best = logp.argmax(dim=-1).tolist()
        logp_cpu = logp.cpu()
        for m, (_, _, w, k) in enumerate(reads):
            it = wave[w]
            if it.prefill:
                it.logits = logits[m]
                continue
            it.logprobs[k] = [float(logp_cpu[m, t]) for t in it.targets[k]]
            it.argmax[k] = best[m]

    def _score_alone(self, it: _ScoreItem) -> None:
        """One plain forward of one item (batch 1, the model's own causal mask)."""
        import torch

        ids = torch.tensor([it.ids], device=self.device)
        with torch.inference_mode():
            full, hidden, _ = self._forward(ids, None, None, None, want_hidden=True)
            cols = torch.arange(it.first, it.first + len(it.targets), device=self.device)
            logits = self._logits_at(full, hidden, torch.zeros_like(cols), cols)
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        it.logprobs = [[float(logp[k, t]) for t in ts] for k, ts in enumerate(it.targets)]
        it.argmax = logp.argmax(dim=-1).tolist()

    def _prefill(self, prompts: list[tuple[int, ...]], store: dict[Any, Any], following: tuple[int, ...] | None
                 ) -> tuple[Any, Any, Any, Any]:
        """Prefill for generation, through the scoring blocks: full blocks shared with earlier prompts come
        from ``store``. Returns the logits after each prompt's last token ``(n, vocab)``, a cache with the
        prompts' keys/values left-padded to one width, its 2D padding mask and each row's next position.
        ``following`` is the next batch's first prompt: the stored blocks that begin it are kept."""
        import torch
        from transformers import DynamicCache

        if self._whole:
            return self._prefill_plain(prompts)
        items = [_ScoreItem(p, len(p) - 1, ((),), prefill=True) for p in prompts]
        self._score_wave(items, store)
        blk = self.block_size
        width = max(len(p) for p in prompts)
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(items[0].tail)):
            ks, vs = [], []
            for it in items:
                parts = [store[self._block_key(it, (t + 1) * blk)][layer] for t in range((len(it.ids) - 1) // blk)]
                parts.append(it.tail[layer])
                k = torch.cat([p[0] for p in parts], dim=-2)
                v = torch.cat([p[1] for p in parts], dim=-2)
                pad = width - k.shape[-2]  # left padding: every row's last token in the same column
                ks.append(torch.cat([k.new_zeros((k.shape[0], pad, k.shape[2])), k], dim=-2))
                vs.append(torch.cat([v.new_zeros((v.shape[0], pad, v.shape[2])), v], dim=-2))
            cache.update(torch.stack(ks), torch.stack(vs), layer)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, it in enumerate(items):
            mask[i, width - len(it.ids):] = 1
        if not self.prefix_reuse or following is None:
            store.clear()
        else:
            for name in [k for k in store if following[:len(k)] != k]:
                del store[name]
        logits = torch.stack([it.logits for it in items])
        return logits, cache, mask.to(self.device), torch.tensor([len(p) for p in prompts], device=self.device)

    def _prefill_plain(self, prompts: list[tuple[int, ...]]) -> tuple[Any, Any, Any, Any]:
        """Prefill in one left-padded forward (models whose cache is not a plain full cache)."""
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits, _, cache = self._forward(ids, mask, positions, None, want_hidden=False)
        return logits[:, -1], cache, mask, positions[:, -1] + 1

    def _block_mask(self, n: int, j: int) -> Any:
        """The attention mask of a block of ``block_size`` queries after ``j`` stored blocks.

        For SDPA and eager attention: one additive float mask ``(1, 1, block, (j + 1) * block)`` broadcast over
        the rows: each query sees every earlier position. A last block is padded on the right, so a real
        query never sees a padding key and no per-row mask is needed (PyTorch's CPU attention also runs
        markedly faster with a float mask than with the boolean one transformers would build). Other
        attention implementations (flash attention ...) build their causal mask themselves (None)."""
        import torch

        if not self._float_mask:
            return None
        blk = self.block_size
        dtype = next(self.model.parameters()).dtype
        m = torch.zeros((1, 1, blk, (j + 1) * blk), dtype=dtype, device=self.device)
        hide = torch.ones((blk, blk), dtype=torch.bool, device=self.device).triu(1)
        m[0, 0, :, j * blk:].masked_fill_(hide, torch.finfo(dtype).min)
        return m.expand(n, -1, -1, -1)

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any, *, want_hidden: bool) -> tuple:
        """One forward -> (logits, hidden, cache). With ``want_hidden`` (and a verified head) only the decoder
        runs and ``hidden`` is returned; otherwise the logits of the last position only."""
        from transformers import DynamicCache

        self.stats["forwards"] += 1
        self.stats["forward_tokens"] += int(ids.numel())
        cache = cache if cache is not None else DynamicCache(config=self.model.config)
        kwargs = {"input_ids": ids, "attention_mask": mask, self._cache_kw: cache, "use_cache": True}
        if positions is not None:
            kwargs["position_ids"] = positions
        if want_hidden and self._fast_head:
            kwargs[self._decoder_cache_kw] = kwargs.pop(self._cache_kw)
            out = self.model.get_decoder()(**kwargs)
            return None, out.last_hidden_state, _out_cache(out)
        if not want_hidden:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        return out.logits, None, _out_cache(out)

    def _logits_at(self, logits: Any, hidden: Any, rows: Any, cols: Any) -> Any:
        if hidden is not None:
            return self.model.get_output_embeddings()(hidden[rows, cols])
        return logits[rows, cols]


def _reads_in(wave: list[_ScoreItem], members: list[int], j: int, blk: int) -> bool:
    """Whether any of ``members`` reads a position of block ``j``."""
    return any(it.first < (j + 1) * blk and it.first + len(it.targets) > j * blk for it in (wave[w] for w in members))


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
