"""Conversation -> ``input_ids`` and ``labels``, through the chat format contract and nothing else.

What is trained is decided once, in :mod:`camels.core.template`: ``ChatFormat.render`` gives the text and
the trained character spans, ``tokenize_rendered`` maps them to a per-token mask. This module only turns
that mask into labels (``-100`` where nothing is learned), truncates, and keeps the books:

* **The mask is never derived from token ids.** A padding token that equals EOS (LLaMA-style tokenizers
  often set ``pad = eos``) would otherwise silently stop the model from ever learning to stop (SPEC §5).
  :func:`encode_conversation` checks that every assistant turn that survives truncation ends with a
  trained EOS token.
* **Truncation keeps the start** (the system and first user turn give the context the rest needs). A
  conversation left with no trained token is dropped, and the drop is counted by reason, never silent.

Everything here is pure Python over a Hugging Face-style fast tokenizer: no torch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.chat import Conversation
from camels.core.io import sha256_file
from camels.core.template import ChatFormat, ContractError, tokenize_rendered
from camels.data.records import iter_conversations as read_conversations

IGNORE_INDEX = -100


class Dropped(Exception):
    """A conversation that cannot be trained on; ``reason`` is the slug it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(detail or reason)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One conversation as tokens. ``labels[t]`` is ``input_ids[t]`` where token ``t`` is trained, else -100.

    Tuples when encoded in memory; int64 numpy arrays when read from the token store (same values).

    Labels are *not* shifted (the Hugging Face convention: position ``t`` is predicted from ``< t``);
    packing shifts them per conversation so no conversation is asked to predict its neighbour's first token.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    id: str = ""
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    @property
    def trained_mask(self) -> list[bool]:
        return [x != IGNORE_INDEX for x in self.labels]


def encode_conversation(
    tokenizer: Any,
    chat_format: ChatFormat,
    messages: Sequence[Any],
    max_length: int,
    *,
    id: str = "",
) -> Encoded:
    """Render, tokenize, mask and truncate one conversation; raise :class:`Dropped` if nothing is trained."""
    rendered = chat_format.render(messages)
    ids, trained = tokenize_rendered(tokenizer, rendered)
    _check_eos_trained(tokenizer, chat_format, rendered.trained, ids, trained)
    truncated = len(ids) > max_length
    if truncated:
        ids, trained = ids[:max_length], trained[:max_length]
    if not any(trained):
        raise Dropped("no_trained_token_after_truncation" if truncated else "no_trained_token")
    labels = tuple(t if m else IGNORE_INDEX for t, m in zip(ids, trained))
    return Encoded(tuple(ids), labels, id=id, truncated=truncated)


def _check_eos_trained(
    tokenizer: Any, fmt: ChatFormat, spans: Sequence[tuple[int, int]], ids: list[int], trained: list[bool]
) -> None:
    """Every assistant span ends with the EOS string; it must come out as one trained EOS token.

    This is a property of the tokenizer, not of the data, so a failure raises :class:`ContractError`
    (training would produce a model that never stops) instead of dropping the conversation.
    """
    if fmt.kind == "hf_template":  # the template's own end-of-turn marker may not be the EOS string
        return
    eos_id = getattr(tokenizer, "eos_token_id", None)
    n_eos = sum(1 for t, m in zip(ids, trained) if m and t == eos_id)
    if eos_id is None or n_eos != len(spans):
        raise ContractError(
            f"EOS {fmt.eos_token!r} is not tokenized as one trained token (found {n_eos} trained EOS tokens "
            f"for {len(spans)} assistant turns); the model would never learn to stop"
        )


@dataclass
class EncodedDataset:
    """Encoded conversations in memory, with what was dropped and a content hash of the inputs.

    Training reads its data from a :class:`camels.train.store.TokenStore` (on disk, memory-mapped), which
    offers the same ``len``, indexing, ``lengths``, ``n_targets`` and ``summary``; this in-memory form is
    for small sets (tests, benchmarks, ``train(cfg, dataset=...)``).
    """

    examples: list[Encoded]
    dropped: Counter = field(default_factory=Counter)
    truncated: int = 0
    data_sha256: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Encoded:
        return self.examples[i]

    @property
    def lengths(self) -> list[int]:
        """Tokens per conversation (what packing plans with); the token store keeps the same in an array."""
        return [len(e) for e in self.examples]

    @property
    def n_targets(self) -> list[int]:
        """Trained targets per conversation after the per-conversation shift (the first token never is one)."""
        return [sum(1 for x in e.labels[1:] if x != IGNORE_INDEX) for e in self.examples]

    @property
    def n_tokens(self) -> int:
        return sum(len(e) for e in self.examples)

    @property
    def n_trained(self) -> int:
        return sum(e.n_trained for e in self.examples)

    def summary(self) -> dict[str, Any]:
        return {
            "conversations": len(self.examples),
            "tokens": self.n_tokens,
            "trained_tokens": self.n_trained,
            "truncated": self.truncated,
            "dropped": dict(self.dropped),
            "data_sha256": self.data_sha256,
        }


def iter_conversations(
    paths: Iterable[str | Path],
    dropped: Counter | None = None,
    *,
    ranges: Sequence[tuple[int, int] | None] | None = None,
) -> Iterable[Conversation]:
    """Conversations of unified JSONL files, in file order. Invalid records are counted (``record:<reason>``)
    in ``dropped`` when it is given, else raised with file and line (the reader of :mod:`camels.data`).

    ``ranges`` (one per file) limits each file to its records ``start`` to ``stop - 1`` (non-blank lines,
    0-based); an empty range skips the file without opening it."""
    for i, path in enumerate(paths):
        records = None if ranges is None or ranges[i] is None else tuple(ranges[i])
        if records is not None and records[0] >= records[1]:
            continue
        skipped: Counter = Counter()
        for _, conv in read_conversations(path, lenient=dropped is not None, skipped=skipped,
                                          records=records):  # type: ignore[arg-type]
            yield conv
        for reason, n in skipped.items():
            dropped[f"record:{reason}"] += n  # type: ignore[index]


def encode_files(
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    *,
    strict: bool = False,
) -> EncodedDataset:
    """Encode every conversation of ``paths``; drops are counted by reason (``strict`` raises bad records)."""
    dropped: Counter = Counter()
    examples: list[Encoded] = []
    truncated = 0
    for conv in iter_conversations(paths, None if strict else dropped):
        try:
            enc = encode_conversation(tokenizer, chat_format, conv.messages, max_length, id=conv.id)
        except Dropped as d:
            dropped[d.reason] += 1
            continue
        truncated += enc.truncated
        examples.append(enc)
    return EncodedDataset(examples, dropped, truncated, data_sha256(paths))


def data_sha256(paths: Sequence[str | Path]) -> str:
    """The data hash recorded in checkpoints: sha256 over the sha256 of each file, in order."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(sha256_file(p).encode())
    return digest.hexdigest()


# -- making the mask visible ---------------------------------------------------------------------------


def show_encoded(tokenizer: Any, enc: Encoded, *, color: bool = False) -> str:
    """The conversation's text with trained tokens made visible.

    Trained runs are wrapped in ``[[ ... ]]`` (or shown green on a terminal with ``color``), so one look tells
    whether the headers are masked and the EOS is learned.
    """
    open_, close = ("\x1b[42;30m", "\x1b[0m") if color else ("[[", "]]")
    out: list[str] = []
    run: list[int] = []
    run_trained = False

    def flush() -> None:
        if run:
            text = tokenizer.decode(run, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            out.append(f"{open_}{text}{close}" if run_trained else text)
            run.clear()

    for tok, lab in zip(enc.input_ids, enc.labels):
        t = lab != IGNORE_INDEX
        if t != run_trained:
            flush()
            run_trained = t
        run.append(tok)
    flush()
    return "".join(out)


def inspect_report(tokenizer: Any, enc: Encoded, *, color: bool = False) -> str:
    """:func:`show_encoded` plus the counts a reviewer checks: tokens, trained tokens, EOS trained."""
    eos = getattr(tokenizer, "eos_token_id", None)
    n_eos = sum(1 for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX and t == eos)
    first = enc.input_ids[0] if enc.input_ids else None
    bos = getattr(tokenizer, "bos_token_id", None)
    head = (
        f"id={enc.id or '-'} tokens={len(enc)} trained={enc.n_trained} trained_eos={n_eos} "
        f"starts_with_bos={first is not None and first == bos} truncated={enc.truncated}"
    )
    return head + "\n" + show_encoded(tokenizer, enc, color=color)
