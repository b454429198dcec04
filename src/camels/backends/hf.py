"""The transformers backend: batches of typed requests answered by a local causal LM.

What it guarantees, and how:

* **The prompt the model saw in training.** Prompts are rendered with the checkpoint's chat contract
  (``chat_format.json`` in a camels checkpoint or export), else the tokenizer's own chat template, else the
  ``plain`` format for base models. The contract writes BOS into the text and every text is tokenized with
  ``add_special_tokens=False``, so there is exactly one BOS.
* **Scores that do not depend on the batch, to the bit.** A scoring request is computed in blocks that its
  own tokens define (:meth:`HFBackend._block_ends`: a block ends at a blank line once it has 16 tokens, and
  after ``block_size`` tokens at the latest). A block of ``n`` tokens starting at ``s`` runs as one row of
  a forward of :func:`_padded_width` ``(n)`` queries after the ``s`` cached keys/values of its earlier
  blocks, padded on the right, in a forward that takes only rows of the same start and width. Every row
  has a shape and inputs set by its own request, whatever else is in the batch, so the floats of a score
  do not depend on ``batch_size`` nor on how the runner chunks requests (tested byte for byte on
  ``predictions.jsonl``, float32 and bfloat16, on the CPU).
* **Shared prefixes computed once.** A block is named by all the tokens up to its end, so requests that
  share a prompt prefix (5-shot MMLU: the header and exemplars of a subject, about 85% of each prompt)
  share its blocks, which end where the exemplars do: each is computed once, kept while later blocks need
  it, and broadcast into the cache of every row that continues it (transformers' ``DynamicCache``, a 4D
  additive mask and explicit ``position_ids``: public APIs only, any dtype, CPU or GPU). Scores equal
  those of one plain forward per prompt up to float rounding, and with ``prefix_reuse`` off (the same
  blocks, none shared) they are bit-identical. The path that ran is ``info.details["scoring_path"]``
  (copied into every run's manifest). The shared prompt text is tokenized once per group
  (:func:`camels.backends.tokens.split_choices_shared`).
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
Each row's earlier blocks are copied into the batch's cache (memory ``batch_size`` times a prompt's KV);
prompts that share no prefix and have blank lines at different places run their later blocks in smaller
forwards.
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
from camels.core.io import load_pretrained
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


@dataclass(eq=False)
class _Node:
    """A block of prompt tokens ``[start, end)`` after the blocks of ``parent``; shared by every prompt with
    the same tokens up to ``end`` (see :meth:`HFBackend._block_ends`)."""

    parent: _Node | None
    start: int
    end: int
    tokens: tuple[int, ...]
    depth: int
    width: int  # queries in its forward (its length rounded up, :func:`_padded_width`)
    children: dict[tuple[int, ...], _Node] = field(default_factory=dict)
    kv: Any = None  # keys/values of positions [0, end) per layer, while a later block needs them


@dataclass
class _BlockStore:
    """The tree of blocks of the prompts seen so far; ``held`` lists the nodes whose keys/values are kept."""

    root: dict[tuple[int, ...], _Node] = field(default_factory=dict)
    held: list[_Node] = field(default_factory=list)


@dataclass(eq=False)
class _ScoreItem:
    """One prompt to run: ``ids``; read log-probs at positions ``first..`` of ``targets[k]`` (k-th position)."""

    ids: tuple[int, ...]
    first: int  # the first position whose next-token distribution is needed
    targets: tuple[tuple[int, ...], ...]  # per needed position, the token ids whose log-probs are read
    logprobs: list[list[float]] = field(default_factory=list)
    argmax: list[int] = field(default_factory=list)
    prefill: bool = False  # generation: keep the logits after the last token and the prompt's keys/values
    logits: Any = None
    kv: Any = None
    nodes: list[_Node] = field(default_factory=list)


class HFBackend(LocalPrompts, GenerationLoop):
    """A transformers causal LM behind the backend protocol.

    ``model`` is a hub name, a local folder, or an already loaded model object (then pass ``tokenizer``
    too). ``chat_format`` is ``auto`` (checkpoint's contract, else tokenizer template, else plain),
    ``tulu``, ``plain``, ``template``, or a ChatFormat/dict. ``batch_size`` rows per forward; ``dtype``
    ``auto`` (float32 on CPU, the checkpoint's dtype on GPU) or a torch dtype name; ``device`` ``auto``
    (CUDA when available); ``max_length`` the context size (default: the model config's);
    ``prefix_reuse`` turns the reuse of shared prompt prefixes on or off (scores are the same either way);
    ``block_size`` is the most tokens per scoring block (see :meth:`_run_wave`).
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
        block_size: int = 256,
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

            self.tokenizer = load_pretrained(AutoTokenizer, self.tokenizer)
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
        self._nl_flags: tuple[Any, Any, Any] | None = None
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
            model = load_pretrained(AutoModelForCausalLM, name, dtype=torch_dtype, trust_remote_code=trust_remote_code)
            tok = tokenizer if tokenizer is not None else load_pretrained(
                AutoTokenizer, name, trust_remote_code=trust_remote_code)
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
        """Fill ``logprobs``/``argmax`` of every item (see :meth:`_run_wave`).

        Items are sorted by token ids, so items that share a prefix are neighbours, and scored in waves
        (:meth:`_waves`). Between waves only the stored blocks that begin the next wave's first item are
        kept: by the sort, no later item can share any other block with the items already scored.
        """
        if not items:
            return
        if self._whole:
            for it in items:
                self._score_alone(it)
            return
        ordered = sorted(items, key=lambda it: it.ids)
        store = _BlockStore()
        for wave, following in self._waves(ordered, store):
            self._run_wave(wave, store, following)

    # -- blocks ----------------------------------------------------------------------------------------
    def _blank_line_flags(self) -> tuple[Any, Any]:
        """Per token id: whether its text ends with a newline, and whether it ends a blank line by itself
        (ends with two newlines, or is only newlines: then a blank line ends if the token before it ended
        with a newline). Computed once from the tokenizer."""
        if self._nl_flags is None:
            import numpy as np

            n = max(len(self.tokenizer), int(getattr(self.model.config, "vocab_size", 0) or 0))
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))],
                                                skip_special_tokens=False, clean_up_tokenization_spaces=False)
            ends = np.zeros(n, dtype=bool)
            blank = np.zeros(n, dtype=bool)
            only = np.zeros(n, dtype=bool)
            for i, t in enumerate(texts):
                if t.endswith("\n"):
                    ends[i] = True
                    blank[i] = t.endswith("\n\n")
                    only[i] = not t.strip("\n")
            self._nl_flags = (ends, blank, only)
        return self._nl_flags

    def _block_ends(self, ids: Sequence[int]) -> list[int]:
        """Where the blocks of a token sequence end: after a token that ends a blank line (the usual
        separator of few-shot exemplars) once the block has at least 16 tokens, and at the latest after
        ``block_size`` tokens. The rule reads only the tokens up to the cut, so sequences that share a prefix
        share its blocks (and a block that ends where two prompts part is shared whole, with nothing run
        twice)."""
        import numpy as np

        n = len(ids)
        ends_nl, blank, only_nl = self._blank_line_flags()
        arr = np.fromiter(ids, dtype=np.int64, count=n)
        arr = np.clip(arr, 0, len(ends_nl) - 1)
        hit = blank[arr].copy()
        if n > 1:
            hit[1:] |= only_nl[arr[1:]] & ends_nl[arr[:-1]]
        cuts = (np.flatnonzero(hit) + 1).tolist()
        out, start, c = [], 0, 0
        while start < n:
            while c < len(cuts) and cuts[c] - start < 16:
                c += 1
            limit = min(start + self.block_size, n)
            end = cuts[c] if c < len(cuts) and cuts[c] <= limit else limit
            out.append(end)
            start = end
        return out

    def _plan(self, it: _ScoreItem, store: _BlockStore) -> None:
        """``it.nodes``: its blocks (shared nodes of ``store``'s tree) up to the one holding its last read."""
        need = it.first + len(it.targets)  # tokens that must go through the model
        children = store.root if self.prefix_reuse else {}
        parent, start, nodes = None, 0, []
        for end in self._block_ends(it.ids[:need]):
            toks = it.ids[start:end]
            node = children.get(toks)
            if node is None:
                node = children[toks] = _Node(parent, start, end, toks, len(nodes), _padded_width(end - start))
            nodes.append(node)
            parent, start, children = node, end, node.children
        it.nodes = nodes

    def _waves(self, ordered: list[_ScoreItem], store: _BlockStore) -> Any:
        """Consecutive items scored together, with the first item of the next wave (or None).

        A wave grows while the keys/values it must hold for later blocks (blocks not shared with items
        already in it) stay within ``batch_size`` prompts, and up to ``16 * batch_size`` items: items that
        share a long prefix (a few-shot header) cost one prompt however many they are, so their last blocks
        run together in large forwards."""
        wave: list[_ScoreItem] = []
        seen: set[int] = set()
        held, longest = 0, 0
        for it in ordered:
            self._plan(it, store)
            fresh = max((nd.end for nd in it.nodes[:-1] if nd.kv is None and id(nd) not in seen), default=0)
            longest_next = max(longest, len(it.ids))
            if wave and (held + fresh > self.batch_size * longest_next or len(wave) >= 16 * self.batch_size):
                yield wave, it
                wave, seen, held, longest_next = [], set(), 0, len(it.ids)
                fresh = max((nd.end for nd in it.nodes[:-1] if nd.kv is None), default=0)
            wave.append(it)
            seen.update(id(nd) for nd in it.nodes)
            held += fresh
            longest = longest_next
        if wave:
            yield wave, None

    def _run_wave(self, wave: list[_ScoreItem], store: _BlockStore, following: _ScoreItem | None) -> None:
        """Score a few items block by block, shallow blocks first.

        Every block that is not stored, or holds a position some item reads, runs once (shared by every item
        whose prompt has the same tokens up to its end) as one row of a forward of ``width`` queries (its
        length rounded up, :func:`_padded_width`) after the keys/values of its earlier blocks. A forward
        takes only blocks of the same start and width: each row has the same shape whatever else is in the
        batch, which is what makes the scores independent of batch size and of which requests arrive
        together (see docs/backends.md, "Batch invariance")."""
        for it in wave:
            it.logprobs = [[] for _ in it.targets]
            it.argmax = [0] * len(it.targets)
        keep = {id(nd) for nd in following.nodes} if following is not None and self.prefix_reuse else set()
        reads: dict[int, list[tuple[_ScoreItem, int, int]]] = {}  # node -> (item, k, column)
        run: dict[int, _Node] = {}
        for it in wave:
            j = 0  # the read positions rise, so the block holding each is found by walking forward once
            for k in range(len(it.targets)):
                p = it.first + k
                while it.nodes[j].end <= p:
                    j += 1
                node = it.nodes[j]
                reads.setdefault(id(node), []).append((it, k, p - node.start))
            for nd in it.nodes:
                self.stats["prefix_tokens_reused"] += nd.width
                if nd.kv is None or id(nd) in reads:
                    run[id(nd)] = nd
        # which computed blocks must keep their keys/values: those a block run later continues, the blocks
        # the next wave starts with, and a prefilled prompt's last block
        wanted = {id(nd.parent) for nd in run.values() if nd.parent is not None} | keep
        finals = {id(it.nodes[-1]) for it in wave if it.prefill}
        wanted |= finals
        by_depth: dict[int, list[_Node]] = {}
        for nd in run.values():
            by_depth.setdefault(nd.depth, []).append(nd)
            self.stats["prefix_tokens_reused"] -= nd.width
        for depth in sorted(by_depth):
            groups: dict[tuple[int, int], list[_Node]] = {}
            for nd in by_depth[depth]:
                groups.setdefault((nd.start, nd.width), []).append(nd)
            for (start, width), nodes in sorted(groups.items()):
                nodes.sort(key=lambda nd: id(nd.parent))
                for b in range(0, len(nodes), self.batch_size):
                    self._run_blocks(nodes[b:b + self.batch_size], start, width, reads, wanted, store)
            for nd in by_depth[depth]:  # their parents served every block of this depth
                if nd.parent is not None and id(nd.parent) not in keep | finals:
                    nd.parent.kv = None
        for it in wave:
            if it.prefill:
                it.kv = it.nodes[-1].kv
        for nd in store.held:
            if id(nd) not in keep:
                nd.kv = None
        store.held = [nd for nd in store.held if nd.kv is not None]

    def _run_blocks(self, nodes: list[_Node], start: int, width: int,
                    reads: dict[int, list[tuple[_ScoreItem, int, int]]], wanted: set[int], store: _BlockStore) -> None:
        """One forward of blocks that all start at ``start`` and are ``width`` queries wide; keeps the
        keys/values of the ``wanted`` ones and fills the log-probs read in them."""
        import torch

        n = len(nodes)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        for r, nd in enumerate(nodes):
            ids[r, :nd.end - nd.start] = torch.tensor(nd.tokens)
        ids = ids.to(self.device)
        cache = None
        if start > 0:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            parents = [nd.parent for nd in nodes]
            one = all(p is parents[0] for p in parents)
            for layer in range(len(parents[0].kv)):
                if one:
                    k, v = parents[0].kv[layer]
                    k, v = k.unsqueeze(0).expand(n, -1, -1, -1), v.unsqueeze(0).expand(n, -1, -1, -1)
                else:
                    k = torch.stack([p.kv[layer][0] for p in parents])
                    v = torch.stack([p.kv[layer][1] for p in parents])
                cache.update(k, v, layer)
        positions = (torch.arange(width, device=self.device) + start).expand(n, -1)
        at = [(r, col, it, k) for r, nd in enumerate(nodes) for it, k, col in reads.get(id(nd), ())]
        with torch.inference_mode():
            full, hidden, out_cache = self._forward(ids, self._block_mask(n, start, width), positions, cache,
                                                    want_hidden=True)
            for r, nd in enumerate(nodes):
                if id(nd) in wanted:
                    nd.kv = [(layer.keys[r, :, :nd.end].clone(), layer.values[r, :, :nd.end].clone())
                             for layer in out_cache.layers]
                    store.held.append(nd)
            if not at:
                return
            at_r = torch.tensor([x[0] for x in at], device=self.device)
            at_c = torch.tensor([x[1] for x in at], device=self.device)
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
        for m, (_, _, it, k) in enumerate(at):
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

    def _block_store(self) -> _BlockStore:
        """A store of computed blocks that lives across the batches of one ``generate`` call."""
        return _BlockStore()

    def _prefill(self, prompts: list[tuple[int, ...]], store: _BlockStore, following: tuple[int, ...] | None
                 ) -> tuple[Any, Any, Any, Any]:
        """Prefill for generation, through the scoring blocks: blocks shared with earlier prompts come from
        ``store``. Returns the logits after each prompt's last token ``(n, vocab)``, a cache with the
        prompts' keys/values left-padded to one width, its 2D padding mask and each row's next position.
        ``following`` is the next batch's first prompt: the stored blocks that begin it are kept."""
        import torch
        from transformers import DynamicCache

        if self._whole:
            return self._prefill_plain(prompts)
        items = [_ScoreItem(p, len(p) - 1, ((),), prefill=True) for p in prompts]
        for it in items:
            self._plan(it, store)
        nxt = None
        if following is not None:
            nxt = _ScoreItem(following, len(following) - 1, ((),))
            self._plan(nxt, store)
        self._run_wave(items, store, nxt)
        width = max(len(p) for p in prompts)
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(items[0].kv)):
            ks, vs = [], []
            for it in items:
                k, v = it.kv[layer]
                pad = width - k.shape[-2]  # left padding: every row's last token in the same column
                ks.append(torch.cat([k.new_zeros((k.shape[0], pad, k.shape[2])), k], dim=-2) if pad else k)
                vs.append(torch.cat([v.new_zeros((v.shape[0], pad, v.shape[2])), v], dim=-2) if pad else v)
            cache.update(torch.stack(ks), torch.stack(vs), layer)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, it in enumerate(items):
            mask[i, width - len(it.ids):] = 1
            it.kv = None
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

    def _block_mask(self, n: int, start: int, width: int) -> Any:
        """The attention mask of blocks of ``width`` queries after ``start`` cached positions.

        For SDPA and eager attention: one additive float mask ``(1, 1, width, start + width)`` broadcast over
        the rows: each query sees every earlier position. A block is padded on the right, so a real query
        never sees a padding key and no per-row mask is needed (PyTorch's CPU attention also runs markedly
        faster with a float mask than with the boolean one transformers would build). Other attention
        implementations (flash attention ...) build their causal mask themselves (None)."""
        import torch

        if not self._float_mask:
            return None
        dtype = next(self.model.parameters()).dtype
        m = torch.zeros((1, 1, width, start + width), dtype=dtype, device=self.device)
        hide = torch.ones((width, width), dtype=torch.bool, device=self.device).triu(1)
        m[0, 0, :, start:].masked_fill_(hide, torch.finfo(dtype).min)
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


def _padded_width(n: int) -> int:
    """The query width of a block of ``n`` tokens: at least 16, rounded up to a quarter of its power of two
    (16, 32, 48, 64, 80 ... 128, 160 ... 256, 320 ...), so blocks of similar lengths share a forward and
    padding stays under a quarter."""
    q = max(16, 1 << max(0, n.bit_length() - 3))
    return -(-n // q) * q


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
