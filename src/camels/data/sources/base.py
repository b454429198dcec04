"""What every source converter shares: the :class:`Source` record, the per-record :class:`Context`,
field checks and the seeded random generator.

A converter is a pure function ``convert(row, ctx) -> list[Conversation]``: no file is read here (that is
:mod:`camels.data.convert`'s job), so a converter can be tested on a dict written in the test.

Two kinds of "no output" are kept apart:

* :class:`~camels.core.errors.RecordError` — the row is broken (missing or mistyped field, empty turn ...).
  Strict conversion stops on it with file, line and field; lenient conversion counts it by reason.
* :class:`Skip` — the row is valid but the source's rule leaves it out (a ShareGPT chat with a ``bing``
  turn, a Baize transcript with no complete round). It is counted by reason in both modes, never raised.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError

Converter = Callable[[Any, "Context"], list[Conversation]]
TokenCounter = Callable[[str], int]


class Skip(RecordError):
    """A valid record that the source's rule excludes; counted by ``reason``, never fatal."""


def whitespace_tokens(text: str) -> int:
    """Token count used when no tokenizer is given: whitespace-separated words.

    >>> whitespace_tokens("one  two\\nthree")
    3
    """
    return len(text.split())


def rng_for(seed: int, source: str, key: str) -> random.Random:
    """A random generator that depends only on ``(seed, source, key)``.

    ``key`` is a record's own id (or ``<file stem>:<row index>``), so the draw for a record does not depend
    on which other records are converted with it, on their order or on how a file is split in chunks.

    >>> rng_for(42, "dolly", "a:0").random() == rng_for(42, "dolly", "a:0").random()
    True
    """
    digest = hashlib.sha256(f"{seed}\x1f{source}\x1f{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Context:
    """Everything a converter may know about a row besides its content."""

    source: str
    stem: str = "data"
    index: int = 0
    seed: int = 42
    options: Mapping[str, Any] = field(default_factory=dict)
    count_tokens: TokenCounter = whitespace_tokens
    stream: random.Random | None = None

    def base_id(self, own: Any = None) -> str:
        """The row's own id when it has one, else ``<file stem>:<row index>``."""
        if isinstance(own, (str, int)) and not isinstance(own, bool) and str(own).strip():
            return str(own).strip()
        return f"{self.stem}:{self.index}"

    def rng(self, key: str) -> random.Random:
        return rng_for(self.seed, self.source, key)

    def draw(self, key: str) -> random.Random:
        """The generator of this record's random choices, as the ``draw`` option says.

        ``stream`` (the Tülu v1 study's way): one generator seeded with ``seed``, shared by every record of
        a conversion in file order (the reader creates it; a converter called alone gets a fresh one, as
        for a file of one record). ``record``: the record's own generator (:meth:`rng`).
        """
        if self.options.get("draw", "stream") == "record":
            return self.rng(key)
        if self.stream is None:
            object.__setattr__(self, "stream", random.Random(self.seed))
        return self.stream  # type: ignore[return-value]

    def is_study(self, option: str, study_value: Any) -> bool:
        """Whether ``option`` is at the study's value (missing options count as the study's)."""
        return self.options.get(option, study_value) == study_value

    def option(self, name: str) -> Any:
        return self.options[name]


@dataclass(frozen=True)
class Source:
    """A dataset the converter knows: its name, the raw formats it reads and its pure row converter.

    ``detect(row)`` says whether a row has this source's shape; the reader applies it to the first row of
    each file so that a file of another dataset fails at once with a clear message instead of producing
    thousands of ``missing_field`` skips. ``assemble`` (optional) regroups rows before conversion (the
    OpenAssistant flat message table is grouped into trees).
    """

    name: str
    convert: Converter
    detect: Callable[[Any], bool]
    formats: tuple[str, ...] = ("json", "jsonl", "parquet", "hf")
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shape: str = ""
    rule: str = ""
    hub: str | None = None
    assemble: Callable[[Iterable[tuple[Any, Any]]], Iterator[tuple[Any, Any]]] | None = None
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    camels: Mapping[str, Any] = field(default_factory=dict)
    """``choices``: the allowed values of options that take one of a few; ``camels``: the options that
    turn on camels' own behaviour instead of the study's (``--preset camels``)."""


# -- field checks ---------------------------------------------------------------------------------------

def json_type(v: Any) -> str:
    if v is None:
        return "null"
    for t, name in ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (list, "array"),
                    (dict, "object"), (tuple, "array")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def need_object(row: Any) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise RecordError("bad_type", f"expected a JSON object, got {json_type(row)}")
    return row


def text(row: Mapping[str, Any], key: str, *, required: bool = True, where: str = "",
         allow_empty: bool = False) -> str:
    """``row[key]`` as a string; a missing, non-string or (unless ``allow_empty``) blank value raises.

    Optional fields (``required=False``) may be absent or null and then read as ``""``.
    """
    name = f"{where}{key}"
    if key not in row or (row[key] is None and not required):
        if required:
            raise RecordError("missing_field", "required field is missing", field=name)
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise RecordError("bad_type", f"expected a string, got {json_type(value)}", field=name)
    if not allow_empty and required and not value.strip():
        raise RecordError("empty_content", "text is empty", field=name)
    return value


def items(row: Mapping[str, Any], key: str, *, where: str = "", required: bool = True) -> list[Any]:
    """``row[key]`` as a list (missing optional lists read as ``[]``)."""
    name = f"{where}{key}"
    if key not in row or row[key] is None:
        if required:
            raise RecordError("missing_field", "required field is missing", field=name)
        return []
    value = row[key]
    if not isinstance(value, (list, tuple)):
        raise RecordError("bad_type", f"expected an array, got {json_type(value)}", field=name)
    return list(value)


def numbered(base: str, conversations: list[tuple[list[Any], dict[str, Any]]], ctx: Context
             ) -> list[Conversation]:
    """Build conversations from ``(messages, meta)`` pairs; ids are ``base`` or ``base#k`` when several."""
    many = len(conversations) > 1
    return [Conversation.build(f"{base}#{k}" if many else base, ctx.source, msgs, meta)
            for k, (msgs, meta) in enumerate(conversations)]


def has_keys(*alternatives: tuple[str, ...]) -> Callable[[Any], bool]:
    """A ``detect`` function: the row is an object holding all keys of one of the alternatives."""

    def detect(row: Any) -> bool:
        return isinstance(row, Mapping) and any(all(k in row for k in alt) for alt in alternatives)

    return detect
