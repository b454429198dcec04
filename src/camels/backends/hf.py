"""The transformers backend: batches of typed requests answered by a local causal LM.

What it guarantees, and how:

* **The prompt the model saw in training.** Prompts are rendered with the checkpoint's chat contract
  (``chat_format.json`` in a camels checkpoint or export), else the tokenizer's own chat template, else the
  ``plain`` format for base models. The contract writes BOS into the text and every text is tokenized with
  ``add_special_tokens=False``, so there is exactly one BOS.
* **Answers that do not depend on the batch.** Requests are sorted by length, answered in batches and
  returned in request order. Scoring pads on the right (causal attention never looks at the padding);
  generation pads on the left with position ids counted from each row's first real token. Sampling uses
  one ``torch.Generator`` per sample, seeded from the request's seed and the sample index, so a sample is
  the same whatever else is in the batch (up to float rounding of the logits).
* **Shared prefixes computed once.** Scoring requests are grouped by their longest common token prefix
  (5-shot MMLU: the header and exemplars of a subject, about 80% of each prompt); the prefix runs once
  and only the suffixes run. On models that pass the check at load (decoder-only models whose layers use
  transformers' attention interface, e.g. LLaMA), the prefix's keys/values are stored once and a dedicated
  attention function (:mod:`camels.backends.prefix_attention`) attends to them from every row with no
  cache copy and no mask; the last layer computes attention and MLP only at the positions that are read.
  Other models get the prefix's KV cache expanded over each batch. Either way scores equal those of a
  full forward up to float rounding. The shared prompt text is tokenized once per group
  (:func:`camels.backends.tokens.split_choices_shared`).
* **Each sequence stops on its own.** Generation is camels' own loop over the KV cache
  (:mod:`camels.backends.generation`): a row ends at EOS, at the chat format's end-of-turn strings, at one
  of its request's stop strings (cut from the text) or after ``max_tokens``; finished rows leave the batch
  and their cache rows are dropped.

Limits: one device, no tensor parallelism (use the vLLM backend for large models); the model must accept
a KV cache and ``position_ids`` like the decoder-only models of transformers. Prefix reuse is turned off
for models with sliding-window attention. On the expanded-cache path (models that fail the check) the
prefix cache is copied into each batch of suffixes, which costs memory ``batch_size`` times its KV size.
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
from camels.backends.tokens import group_by_prefix, split_at_boundary, split_choices_shared
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


class HFBackend(LocalPrompts, GenerationLoop):
    """A transformers causal LM behind the backend protocol.

    ``model`` is a hub name, a local folder, or an already loaded model object (then pass ``tokenizer``
    too). ``chat_format`` is ``auto`` (checkpoint's contract, else tokenizer template, else plain),
    ``tulu``, ``plain``, ``template``, or a ChatFormat/dict. ``batch_size`` rows per forward; ``dtype``
    ``auto`` (float32 on CPU, the checkpoint's dtype on GPU) or a torch dtype name; ``device`` ``auto``
    (CUDA when available); ``max_length`` the context size (default: the model config's);
    ``prefix_reuse`` turns shared-prefix KV reuse for scoring on or off; ``min_prefix`` is the shortest
    shared prefix (tokens) worth reusing.
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
        min_prefix: int = 16,
        trust_remote_code: bool = False,
        progress: bool = False,
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.prefix_reuse = prefix_reuse
        self.min_prefix = min_prefix
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
        self.stats = {"forward_tokens": 0, "prefix_tokens_reused": 0, "forwards": 0}
        self._fast_head = self._check_fast_head()
        # suffixes after a shared prefix: the prefix's keys/values stored once, no cache copies, no mask
        self._last_layer = getattr(self.model.config, "num_hidden_layers", None)
        self._last_layer = self._last_layer - 1 if isinstance(self._last_layer, int) else -1
        self._prefix_attn = self._fast_head and self._last_layer >= 0 and self._check_prefix_attention()
        # scoring batches pass their own 4D additive mask where the attention implementation accepts one
        self._float_mask = getattr(self.model.config, "_attn_implementation", None) in ("sdpa", "eager")
        self.stats = {"forward_tokens": 0, "prefix_tokens_reused": 0, "forwards": 0}
        if prefix_reuse and getattr(self.model.config, "sliding_window", None):
            # the expanded prefix cache is a plain full cache; sliding-window layers would need their own
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

    def _check_prefix_attention(self) -> bool:
        """Whether :mod:`camels.backends.prefix_attention` reproduces full forwards on this model: a prefix
        and two right-padded suffixes of different lengths, compared with plain forwards at every real
        position (any model whose layers do not fit keeps the cache path)."""
        import torch

        ids = self.tokenizer("The sea is wide and blue, and it shines.", add_special_tokens=False)["input_ids"]
        if len(ids) < 9:
            return False
        p, suffixes = 5, [ids[5:], ids[5:8]]
        batch = torch.full((2, len(ids) - p), self.pad_id, dtype=torch.long)
        for r, x in enumerate(suffixes):
            batch[r, : len(x)] = torch.tensor(x)
        try:
            with torch.inference_mode():
                prefix = torch.tensor([ids[:p]], device=self.device)
                _, _, cache = self._forward(prefix, torch.ones_like(prefix), None, None, want_hidden=False)
                rows = [r for r, x in enumerate(suffixes) for _ in x]
                cols = [c for x in suffixes for c in range(len(x))]
                hidden = self._suffix_hidden(batch.to(self.device), p, _prefix_kv(cache), rows, cols)
                got = self.model.get_output_embeddings()(hidden[rows, cols]).float()
                want = torch.cat([self.model(input_ids=torch.tensor([ids[:p] + x], device=self.device)).logits[0, p:]
                                  for x in suffixes])
                if not torch.allclose(got, want.float(), atol=1e-4, rtol=1e-4):
                    return False
        except Exception:  # noqa: BLE001 - any model that does not fit this path keeps the cache path
            return False
        return True

    def _suffix_hidden(self, ids: Any, prefix_len: int, prefix_kv: Any, rows: list[int], cols: list[int]) -> Any:
        """Decoder hidden states of right-padded suffixes ``ids`` placed after a prefix of ``prefix_len``
        tokens whose per-layer keys/values are ``prefix_kv`` (None: no prefix). Only the positions
        ``(rows[n], cols[n])`` are valid: the last layer computes nothing else."""
        import torch

        from camels.backends.prefix_attention import register

        self.stats["forwards"] += 1
        self.stats["forward_tokens"] += int(ids.numel())
        # one row of positions, broadcast over the batch: the rotary tables are computed once, not per row
        positions = (torch.arange(ids.shape[1], device=self.device) + prefix_len).unsqueeze(0)
        config = self.model.config
        before = config._attn_implementation
        config._attn_implementation = register()
        read = (self._last_layer, torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device))
        hooks = []
        mlp = self._last_mlp()
        if mlp is not None:
            # the last layer's MLP (per position) runs only at the read positions; the others get zeros
            def gather(module: Any, args: tuple) -> tuple:
                return (args[0][read[1], read[2]].unsqueeze(0), *args[1:])

            def scatter(module: Any, args: tuple, out: Any) -> Any:
                full = out.new_zeros((*ids.shape, out.shape[-1]))
                full[read[1], read[2]] = out[0]
                return full

            hooks = [mlp.register_forward_pre_hook(gather), mlp.register_forward_hook(scatter)]
        try:
            out = self.model.get_decoder()(input_ids=ids, position_ids=positions, use_cache=False,
                                           camels_prefix=prefix_kv, camels_read=read)
        finally:
            config._attn_implementation = before
            for h in hooks:
                h.remove()
        return out.last_hidden_state

    def _last_mlp(self) -> Any:
        """The last decoder layer's ``mlp`` module when the model has the usual layout, else None."""
        layers = getattr(self.model.get_decoder(), "layers", None)
        try:
            mlp = getattr(layers[self._last_layer], "mlp", None) if layers is not None else None
        except (IndexError, TypeError):
            return None
        return mlp if callable(mlp) else None

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
                     "batch_size": self.batch_size, "prefix_reuse": self.prefix_reuse},
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
        """Fill ``logprobs``/``argmax`` of every item, reusing shared prefixes when enabled."""
        if not items:
            return
        if self.prefix_reuse:
            groups = group_by_prefix([it.ids for it in items], [it.first for it in items],
                                     min_prefix=self.min_prefix)
        else:
            groups = []
        singles = [g.members[0] for g in groups if g.prefix_len == 0]
        if not self.prefix_reuse:
            singles = list(range(len(items)))
        for g in groups:
            if g.prefix_len > 0:
                self._score_with_prefix([items[i] for i in g.members], g.prefix_len)
        self._score_batches([items[i] for i in singles], prefix=None, prefix_len=0)

    def _score_with_prefix(self, items: list[_ScoreItem], prefix_len: int) -> None:
        import torch

        prefix = torch.tensor([items[0].ids[:prefix_len]], device=self.device)
        with torch.inference_mode():
            _, _, cache = self._forward(prefix, torch.ones_like(prefix), None, None, want_hidden=False)
        self.stats["prefix_tokens_reused"] += prefix_len * (len(items) - 1)
        self._score_batches(items, prefix=_prefix_kv(cache) if self._prefix_attn else cache, prefix_len=prefix_len)

    def _score_batches(self, items: list[_ScoreItem], *, prefix: Any, prefix_len: int) -> None:
        import torch

        order = sorted(range(len(items)), key=lambda i: -len(items[i].ids))
        for start in range(0, len(order), self.batch_size):
            batch = [items[i] for i in order[start:start + self.batch_size]]
            suffixes = [it.ids[prefix_len:] for it in batch]
            width = max(len(s) for s in suffixes)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            for r, s in enumerate(suffixes):
                ids[r, : len(s)] = torch.tensor(s)
            ids = ids.to(self.device)
            cache = None
            positions = None
            mask = None  # the stored-prefix attention needs none (rows are right-padded)
            if not self._prefix_attn and self._float_mask:
                mask = self._mask_4d([len(x) for x in suffixes], prefix_len, width)
            elif not self._prefix_attn:
                mask = torch.zeros((len(batch), prefix_len + width), dtype=torch.long)
                mask[:, :prefix_len] = 1
                for r, s in enumerate(suffixes):
                    mask[r, prefix_len: prefix_len + len(s)] = 1
                mask = mask.to(self.device)
            if prefix is not None and not self._prefix_attn:
                cache = self._expand_cache(prefix, len(batch))
                positions = (torch.arange(width, device=self.device) + prefix_len).expand(len(batch), -1)
            # rows and positions whose next-token distributions are read
            rows, cols, owners = [], [], []
            for r, it in enumerate(batch):
                for k in range(len(it.targets)):
                    rows.append(r)
                    cols.append(it.first + k - prefix_len)
                    owners.append((it, k))
            with torch.inference_mode():
                if self._prefix_attn:
                    full, hidden = None, self._suffix_hidden(ids, prefix_len, prefix, rows, cols)
                else:
                    full, hidden, _ = self._forward(ids, mask, positions, cache, want_hidden=True)
                if hidden is None and full.shape[1] != ids.shape[1]:
                    raise BackendError("internal: scoring needs the logits of every position")
                logits = self._logits_at(full, hidden, torch.tensor(rows, device=self.device),
                                         torch.tensor(cols, device=self.device))
                logp = torch.log_softmax(logits.float(), dim=-1)
                best = logp.argmax(dim=-1).tolist()
            logp_cpu = logp.cpu()
            for it in batch:
                it.logprobs, it.argmax = [], []
            for n, (it, k) in enumerate(owners):
                it.logprobs.append([float(logp_cpu[n, t]) for t in it.targets[k]])
                it.argmax.append(best[n])

    def _mask_4d(self, lengths: list[int], prefix_len: int, width: int) -> Any:
        """Additive float mask ``(rows, 1, width, prefix_len + width)`` for right-padded suffixes after a shared
        prefix: each query sees the whole prefix and the suffix up to itself (padding queries see the same as
        the row's last token, so no row is ever fully masked). PyTorch's CPU attention runs markedly faster
        with an additive float mask than with the boolean one transformers builds from a 2D mask."""
        import torch

        dtype = next(self.model.parameters()).dtype
        allowed = torch.ones((width, width), dtype=torch.bool, device=self.device).tril()
        m = torch.zeros((len(lengths), 1, width, prefix_len + width), dtype=dtype, device=self.device)
        neg = torch.finfo(dtype).min
        for r, n in enumerate(lengths):
            row = allowed.clone()
            row[:, n:] = False  # padding keys are never seen
            m[r, 0, :, prefix_len:].masked_fill_(~row, neg)
        return m

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

    def _expand_cache(self, prefix_cache: Any, batch: int) -> Any:
        from transformers import DynamicCache

        data = [(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
                for layer in prefix_cache.layers]
        return DynamicCache(ddp_cache_data=data)

def _prefix_kv(cache: Any) -> list[tuple[Any, Any]]:
    """Per layer, the (keys, values) a cache holds (batch 1: one prefix)."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
