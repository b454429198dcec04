"""The study's dataset table: per source, instances, rounds, prompt and completion lengths.

Definitions (one row per ``dataset`` value of the records, plus an ``all`` row):

* ``instances``: conversations;
* ``mean_rounds``: user-assistant pairs per conversation (assistant turns that follow a user turn);
* ``mean_prompt_len``: tokens per user turn, averaged over all user turns of the source;
* ``mean_completion_len``: tokens per assistant turn, averaged over all assistant turns.

System turns are counted in ``system_turns`` only (they are neither prompt nor completion). Tokens are
those of a tokenizer (``transformers.AutoTokenizer`` by name or folder, imported only when asked; special
tokens not added) or, without one, whitespace-separated words.

Reading streams the files and keeps only sums per source, so memory does not grow with the input.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.chat import Conversation
from camels.core.io import atomic_write, load_pretrained
from camels.data.records import format_table, iter_conversations

CountFn = Callable[[list[str]], list[int]]  # a batch of texts -> token counts
COLUMNS = ("source", "instances", "mean_rounds", "mean_prompt_len", "mean_completion_len")


def whitespace_counter(texts: list[str]) -> list[int]:
    """Whitespace tokens of each text.

    >>> whitespace_counter(["a b  c", "d"])
    [3, 1]
    """
    return [len(t.split()) for t in texts]


def tokenizer_counter(tokenizer: Any) -> CountFn:
    """Token counts from a Hugging Face tokenizer object (batched; special tokens not added)."""

    def count(texts: list[str]) -> list[int]:
        enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in enc]

    return count


def load_counter(tokenizer: str | None) -> tuple[CountFn, str]:
    """A counter for ``--tokenizer NAME_OR_PATH`` (lazy ``transformers`` import), or whitespace words."""
    if not tokenizer:
        return whitespace_counter, "whitespace"
    from transformers import AutoTokenizer

    return tokenizer_counter(load_pretrained(AutoTokenizer, tokenizer)), tokenizer


@dataclass
class SourceStats:
    """Running sums for one source."""

    source: str
    instances: int = 0
    rounds: int = 0
    system_turns: int = 0
    user_turns: int = 0
    assistant_turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def merge(self, other: SourceStats) -> None:
        for f in ("instances", "rounds", "system_turns", "user_turns", "assistant_turns", "prompt_tokens",
                  "completion_tokens"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @property
    def mean_rounds(self) -> float:
        return self.rounds / self.instances if self.instances else 0.0

    @property
    def mean_prompt_len(self) -> float:
        return self.prompt_tokens / self.user_turns if self.user_turns else 0.0

    @property
    def mean_completion_len(self) -> float:
        return self.completion_tokens / self.assistant_turns if self.assistant_turns else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "instances": self.instances,
            "mean_rounds": self.mean_rounds,
            "mean_prompt_len": self.mean_prompt_len,
            "mean_completion_len": self.mean_completion_len,
            "user_turns": self.user_turns,
            "assistant_turns": self.assistant_turns,
            "system_turns": self.system_turns,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass
class StatsTable:
    tokenizer: str
    sources: dict[str, SourceStats] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> SourceStats:
        t = SourceStats("all")
        for s in self.sources.values():
            t.merge(s)
        return t

    def rows(self) -> list[dict[str, Any]]:
        return [self.sources[k].row() for k in sorted(self.sources)] + [self.total.row()]

    def format(self) -> str:
        """Aligned text table (lengths with one decimal, as in the paper's table)."""
        header = ["source", "instances", "rounds", "prompt len", "completion len"]
        rows = [[r["source"], f"{r['instances']:,}", f"{r['mean_rounds']:.2f}", f"{r['mean_prompt_len']:.1f}",
                 f"{r['mean_completion_len']:.1f}"] for r in self.rows()]
        return format_table(header, rows) + f"\n(lengths in tokens of: {self.tokenizer})"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*COLUMNS, "tokenizer"])
        for r in self.rows():
            w.writerow([r["source"], r["instances"], f"{r['mean_rounds']:.4f}", f"{r['mean_prompt_len']:.4f}",
                        f"{r['mean_completion_len']:.4f}", self.tokenizer])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> None:
        with atomic_write(path) as f:
            f.write(self.to_csv())


def compute_stats(
    files: Sequence[str | Path],
    *,
    count: CountFn = whitespace_counter,
    tokenizer_name: str = "whitespace",
    lenient: bool = False,
    batch_size: int = 512,
    show_progress: bool = True,
) -> StatsTable:
    """Stream ``files`` (unified JSONL) and compute the table. Bad records raise (file, line, field) or,
    with ``lenient``, are counted in ``skipped`` by reason."""
    table = StatsTable(tokenizer_name)
    pending: list[tuple[SourceStats, str, str]] = []  # (stats, role, text) waiting for a batched count

    def flush() -> None:
        counts = count([t for _, _, t in pending])
        for (st, role, _), c in zip(pending, counts):
            if role == "user":
                st.prompt_tokens += c
            else:
                st.completion_tokens += c
        pending.clear()

    skipped: Counter = Counter()
    for conv in _conversations(files, lenient, skipped, show_progress):
        st = table.sources.get(conv.dataset)
        if st is None:
            st = table.sources[conv.dataset] = SourceStats(conv.dataset)
        st.instances += 1
        prev = None
        for m in conv.messages:
            if m.role == "system":
                st.system_turns += 1
            elif m.role == "user":
                st.user_turns += 1
                pending.append((st, "user", m.content))
            else:
                st.assistant_turns += 1
                if prev == "user":
                    st.rounds += 1
                pending.append((st, "assistant", m.content))
            prev = m.role
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    table.skipped = dict(sorted(skipped.items()))
    return table


def _conversations(files: Iterable[str | Path], lenient: bool, skipped: Counter,
                   show_progress: bool) -> Iterator[Conversation]:
    for f in files:
        for _, conv in iter_conversations(f, lenient=lenient, skipped=skipped, show_progress=show_progress,
                                          desc=f"stats {Path(f).name}"):
            yield conv
