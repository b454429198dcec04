"""Reading unified conversation files: every line parsed and validated, errors located or counted.

Shared by mix, decontaminate and stats, so the three agree on what a bad record is: a line that is not
UTF-8 (``bad_utf8``), not JSON (``bad_json``), nested too deeply for the parser (``too_deep``) or not a
valid conversation (the reasons of
:meth:`camels.core.chat.Conversation.from_dict`). Blank lines are ignored everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.core.io import iter_lines, parse_json
from camels.core.progress import progress


def parse_line(raw: bytes | str, *, check_canonical: bool = True) -> tuple[Conversation, bool]:
    """Parse and validate one JSONL line; return the conversation and whether the line is already in
    canonical form (``Conversation.to_json``), i.e. could be copied byte for byte. With
    ``check_canonical=False`` the caller knows it is (and the comparison is skipped)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError("bad_utf8", f"invalid UTF-8 at byte {e.start}") from None
    obj = parse_json(raw)
    conv = Conversation.from_dict(obj)
    return conv, (not check_canonical) or conv.to_json() == raw.rstrip("\r\n")


def iter_conversations(
    path: str | Path,
    *,
    lenient: bool = False,
    skipped: Counter | None = None,
    show_progress: bool = False,
    desc: str | None = None,
    records: tuple[int, int] | None = None,
) -> Iterator[tuple[int, Conversation]]:
    """Yield ``(line number, conversation)`` for each valid line of a unified JSONL file (``.gz`` too).

    Strict: the first bad line raises :class:`RecordError` naming file, line and field. Lenient: it is
    counted in ``skipped`` by reason and reading goes on. ``records=(start, stop)`` reads only the
    non-blank lines ``start`` to ``stop - 1`` (0-based); the lines before are skipped without parsing.
    """
    lines: Iterator[tuple[int, str | RecordError]] = iter_lines(path)
    if records is not None:
        lines = islice(lines, *records)
    if show_progress:
        lines = progress(lines, desc=desc or Path(path).name, unit="conv")
    for n, raw in lines:
        try:
            if isinstance(raw, RecordError):
                raise raw
            conv, _ = parse_line(raw, check_canonical=False)
        except RecordError as e:
            if not lenient:
                raise e.located(file=str(path), line=n) from None
            if skipped is not None:
                skipped[e.reason] += 1
            continue
        yield n, conv


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table: first column left-aligned, the others right-aligned.

    >>> print(format_table(["a", "bb"], [["x", "1"], ["yy", "22"]]))
    a   bb
    --  --
    x    1
    yy  22
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])
