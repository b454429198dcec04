"""Pure helpers shared by the local backends: split prompt/continuation tokens, group shared prefixes.

No torch here, so the vLLM backend and the tests can use them without a model.

Two decisions live in this file:

* **Where a continuation starts** (:func:`split_at_boundary`): the prompt and the continuation are tokenized
  *together* (``add_special_tokens=False``: the chat contract already wrote any BOS into the text), and the
  continuation starts at the first token whose characters reach past the end of the prompt text. So a
  choice ``" A"`` after ``"Answer:"`` is scored as the token ``" A"`` the model would really produce there,
  and if the tokenizer merges a trailing prompt space into the continuation (``"Answer: "`` + ``"A"`` ->
  ``" A"``), the merged token is scored and the context loses that space, never the other way around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def split_at_boundary(tokenizer: Any, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt + continuation`` split into (context, continuation) at the prompt's end.

    The continuation starts at the first token that ends after ``len(prompt)``. Needs a fast tokenizer
    (character offsets); without offsets the prompt is tokenized alone and must be a token prefix.
    """
    text = prompt + continuation
    boundary = len(prompt)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError):
        offsets = None
        enc = tokenizer(text, add_special_tokens=False)
    ids = list(enc["input_ids"])
    if offsets is None:
        ctx = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if ids[: len(ctx)] != ctx:
            ctx = ids[: max(0, len(ctx) - 1)]
        return ctx, ids[len(ctx):]
    j = len(ids)
    for t, (_, end) in enumerate(offsets):
        if end > boundary:
            j = t
            break
    return ids[:j], ids[j:]


def split_choices(
    tokenizer: Any, prompt: str, continuations: Sequence[str], window: int = 24
) -> list[tuple[list[int], list[int]]]:
    """:func:`split_at_boundary` for several continuations of one long prompt, tokenizing the prompt once.

    Only the last ``window`` tokens of the prompt are re-tokenized with each continuation. That is exact
    when the cut before them is a stable token boundary, which is checked: the text after the cut must
    tokenize, on its own, into exactly the prompt's last ``window`` tokens, and the text before it into
    the others; otherwise every continuation is tokenized with the whole prompt.
    """
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    c = len(ids) - window
    if c <= 0 or len(continuations) < 2:
        return [split_at_boundary(tokenizer, prompt, x) for x in continuations]
    cut = offsets[c][0]
    head, tail = prompt[:cut], prompt[cut:]
    stable = (offsets[c - 1][1] <= cut
              and list(tokenizer(tail, add_special_tokens=False)["input_ids"]) == ids[c:]
              and list(tokenizer(head[-200:] if len(head) > 200 else head, add_special_tokens=False,
                                 return_offsets_mapping=True)["input_ids"])[-4:] == ids[max(0, c - 4):c])
    if not stable:
        return [split_at_boundary(tokenizer, prompt, x) for x in continuations]
    out = []
    for x in continuations:
        ctx, cont = split_at_boundary(tokenizer, tail, x)
        out.append((ids[:c] + ctx, cont))
    return out


def encode_with_offsets(tokenizer: Any, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """Token ids and character offsets of each text (``add_special_tokens=False``), in one call.

    A fast tokenizer with no truncation or padding set is called through its Rust ``backend_tokenizer``
    (the same encoding, without the Python conversion of every result into a ``BatchEncoding``); any other
    tokenizer through its ``__call__``."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (backend is not None and backend.truncation is None and backend.padding is None
            and bool(getattr(backend, "encode_special_tokens", False))
            == bool(getattr(tokenizer, "split_special_tokens", False))):
        encs = backend.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encs], [e.offsets for e in encs]
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    return [list(x) for x in enc["input_ids"]], [list(x) for x in enc["offset_mapping"]]


def _split_many(tokenizer: Any, prompt: str, continuations: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """:func:`split_at_boundary` for each continuation, in one tokenizer call (a fast tokenizer)."""
    try:
        all_ids, all_offsets = encode_with_offsets(tokenizer, [prompt + x for x in continuations])
    except (NotImplementedError, ValueError, TypeError):
        return [split_at_boundary(tokenizer, prompt, x) for x in continuations]
    out = []
    boundary = len(prompt)
    for ids, offsets in zip(all_ids, all_offsets):
        ids = list(ids)
        j = len(ids)
        for t, (_, end) in enumerate(offsets):
            if end > boundary:
                j = t
                break
        out.append((ids[:j], ids[j:]))
    return out


def _last_lines_texts(prompt: str, continuations: Sequence[str], keep: int) -> tuple[int, list[str]] | None:
    """Where :func:`_split_last_lines_many` cuts ``prompt`` and the texts it tokenizes there, or None."""
    cut = prompt.rfind("\n", 0, len(prompt) - keep)
    if cut <= 0 or len(continuations) < 2:
        return None
    lines = prompt[cut:]
    return cut, [prompt, prompt[:cut], *(lines + x for x in continuations)]


def _last_lines_finish(prompt: str, cut: int, all_ids: Sequence[Sequence[int]], all_offsets: Sequence[Any],
                       margin: int) -> list[tuple[list[int], list[int]]] | None:
    """The splits of one prompt in :func:`_split_last_lines_many` from the tokenized texts of :func:`_last_lines_texts`."""
    ids, offsets = list(all_ids[0]), all_offsets[0]
    c = next((t for t, (start, _) in enumerate(offsets) if start >= cut), len(ids))
    if c == 0 or c >= len(ids) or offsets[c][0] != cut or offsets[c - 1][1] > cut:
        return None
    if list(all_ids[1]) != ids[:c]:
        return None
    check = ids[c:len(ids) - margin]
    n_lines = len(prompt) - cut
    out = []
    for x_ids, x_offsets in zip(all_ids[2:], all_offsets[2:]):
        x_ids = list(x_ids)
        if x_ids[:len(check)] != check:
            return None
        j = next((t for t, (_, end) in enumerate(x_offsets) if end > n_lines), len(x_ids))
        out.append((ids[:c] + x_ids[:j], x_ids[j:]))
    return out


def _split_last_lines_many(tokenizer: Any, prompts: Sequence[str], continuations: Sequence[Sequence[str]], *,
                           keep: int = 48, margin: int = 4) -> list[list[tuple[list[int], list[int]]] | None]:
    """:func:`split_at_boundary` for each continuation of each prompt, with only each prompt's last lines
    (from the last newline at least ``keep`` characters before its end) re-tokenized per continuation.

    Per prompt, the texts tokenized are the whole prompt, the text before that newline and each
    ``lines + continuation``; the newline must be a stable token boundary (the text before it tokenizes
    alone into exactly the prompt's tokens before it, and each ``lines + continuation`` starts with the
    prompt's own tokens after it, all but the last ``margin``), else that prompt gets None. All prompts go
    through one tokenizer call (a fast tokenizer encodes the batch in parallel, with one call's overhead).
    """
    plans = [_last_lines_texts(p, c, keep) for p, c in zip(prompts, continuations)]
    texts = [t for plan in plans if plan is not None for t in plan[1]]
    out: list[list[tuple[list[int], list[int]]] | None] = [None] * len(prompts)
    if not texts:
        return out
    try:
        all_ids, all_offsets = encode_with_offsets(tokenizer, texts)
    except (NotImplementedError, ValueError, TypeError):
        return out
    at = 0
    for i, plan in enumerate(plans):
        if plan is None:
            continue
        cut, mine = plan
        span = slice(at, at + len(mine))
        at += len(mine)
        out[i] = _last_lines_finish(prompts[i], cut, all_ids[span], all_offsets[span], margin)
    return out


@dataclass(frozen=True)
class _Anchor:
    """A text prefix shared by several prompts, tokenized once and cut at a stable token boundary."""

    ids: list[int]  # tokens of text[:cut]
    cut: int  # character position of the cut
    check: list[int]  # tokens right after the cut that each prompt's own tail must start with

    @classmethod
    def build(cls, tokenizer: Any, text: str, window: int, margin: int = 4) -> _Anchor | None:
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        except (NotImplementedError, ValueError, TypeError):
            return None
        c = len(ids) - window
        if c <= 0:
            return None
        cut = offsets[c][0]
        # text[:cut] alone tokenizes into exactly the tokens before the cut
        if offsets[c - 1][1] > cut or list(tokenizer(text[:cut], add_special_tokens=False)["input_ids"]) != ids[:c]:
            return None
        return cls(ids[:c], cut, ids[c:len(ids) - margin])

    def split_many(self, tokenizer: Any, prompts: Sequence[str], continuations: Sequence[Sequence[str]]
                   ) -> list[list[tuple[list[int], list[int]]] | None]:
        """The splits of each prompt (which must start with the anchor's text), or None for a prompt whose
        own tokens after the cut do not start as the anchor's did (then the cut is not safe for it)."""
        tails = [p[self.cut:] for p in prompts]
        fast = _split_last_lines_many(tokenizer, tails, continuations)
        n = len(self.check)
        out: list[list[tuple[list[int], list[int]]] | None] = []
        for tail, conts, splits in zip(tails, continuations, fast):
            if splits is None:
                splits = _split_many(tokenizer, tail, conts)
            out.append(None if any(ctx[:n] != self.check for ctx, _ in splits)
                       else [(self.ids + ctx, cont) for ctx, cont in splits])
        return out


def split_choices_shared(
    tokenizer: Any, prompts: Sequence[str], continuations: Sequence[Sequence[str]], *,
    min_chars: int = 256, window: int = 32,
) -> list[list[tuple[list[int], list[int]]]]:
    """:func:`split_choices` for many prompts, tokenizing each long shared text prefix once.

    Prompts are sorted; neighbours sharing at least ``min_chars`` characters form a group whose common text
    is tokenized once and cut ``window`` tokens before its end. That cut is used only when it is a stable
    token boundary: the text before it tokenizes alone into exactly the tokens before it, and for each prompt
    the text after it, tokenized with each continuation, starts with the same tokens the common text had
    there (all but its last few). Otherwise, and for prompts in no group, :func:`split_choices` runs on the
    whole prompt. For 5-shot MMLU the header and exemplars are tokenized once per subject.
    """
    out: list[list[tuple[list[int], list[int]]] | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    i = 0
    while i < len(order):
        j, common = i + 1, len(prompts[order[i]])
        while j < len(order):
            c = common_prefix_len(prompts[order[j - 1]], prompts[order[j]])
            if c < min_chars:
                break
            common = min(common, c)
            j += 1
        members = order[i:j]
        anchor = _Anchor.build(tokenizer, prompts[members[0]][:common], window) if len(members) > 1 else None
        got = (anchor.split_many(tokenizer, [prompts[m] for m in members], [continuations[m] for m in members])
               if anchor is not None else [None] * len(members))
        for m, splits in zip(members, got):
            out[m] = splits if splits is not None else split_choices(tokenizer, prompts[m], continuations[m])
        i = j
    return [x for x in out if x is not None]


def common_prefix_len(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common prefix of two sequences (lists, tuples or strings).

    >>> common_prefix_len("abcd", "abxy"), common_prefix_len([1, 2], [1, 2, 3])
    (2, 2)
    """
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # binary search on slices: C-speed comparisons instead of a Python loop per element
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def stop_hit(text: str, stops: Sequence[str], scan_from: int = 0) -> int:
    """Index of the earliest stop string found in ``text`` starting at or after ``scan_from``, or -1."""
    best = -1
    for s in stops:
        if s:
            i = text.find(s, max(0, scan_from))
            if i != -1 and (best == -1 or i < best):
                best = i
    return best
