"""The one record type of camels: a conversation.

On disk a conversation is one JSON line (SPEC §1)::

    {"dataset": "oasst1", "id": "oasst1:6ab2...", "messages": [{"role": "user", "content": "..."}, ...]}

Rules, checked by :func:`validate` and enforced by :meth:`Conversation.from_dict`:

* ``messages`` is a non-empty list of ``{"role", "content"}`` objects;
* roles are ``system``, ``user``, ``assistant``; an optional ``system`` turn comes first only;
* after it, roles alternate ``user``, ``assistant``, ``user`` ... starting with ``user``;
* there is at least one ``user`` and one ``assistant`` turn (by default the last turn is the assistant's:
  a conversation ending with a user turn has nothing to learn after it);
* content is a non-empty string once stripped; camels stores it stripped; it holds no NUL character (an
  escaped ``\\u0000`` in JSON is a NUL too: no tokenizer or C library treats it as text). One exception: a record whose
  ``meta`` has ``"empty_answer": true`` may end with an empty assistant turn (a source's rule kept a row
  whose answer is empty, as the Tülu v1 study kept Code-Alpaca's two empty outputs; the model then learns
  to end its turn at once).
* ``id`` is a non-empty string without control characters or path separators (``/``, ``\\``): ids name
  items in reports, predictions and file names, where such characters break or hide things.

``meta`` carries provenance (source file, row, template used ...); it travels with the record end to end
and is written only when non-empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from camels.core.errors import RecordError

ROLES = ("system", "user", "assistant")
EMPTY_ANSWER = "empty_answer"  # meta key: the final assistant turn is empty on purpose


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Conversation:
    """A validated conversation with its provenance."""

    id: str
    dataset: str
    messages: tuple[Message, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        id: str,
        dataset: str,
        messages: Iterable[Mapping[str, Any] | Message | tuple[str, str]],
        meta: Mapping[str, Any] | None = None,
        *,
        require_final_assistant: bool = True,
    ) -> Conversation:
        """Build from loose messages (dicts, Message or (role, content) pairs), stripping and validating."""
        msgs: list[Message] = []
        empty_ok = bool((meta or {}).get(EMPTY_ANSWER))
        for i, m in enumerate(messages):
            if isinstance(m, Message):
                role, content = m.role, m.content
            elif isinstance(m, tuple):
                role, content = m
            elif isinstance(m, Mapping):
                role, content = m.get("role"), m.get("content")
            else:
                raise RecordError("bad_type", f"expected an object, got {type(m).__name__}", field=f"messages[{i}]")
            msgs.append(_make_message(role, content, i, empty_ok=empty_ok))
        check_id(str(id))
        conv = cls(id=str(id), dataset=str(dataset), messages=tuple(msgs), meta=dict(meta or {}))
        validate(conv.messages, require_final_assistant=require_final_assistant, empty_answer=empty_ok)
        return conv

    @classmethod
    def from_dict(cls, obj: Any, *, require_final_assistant: bool = True) -> Conversation:
        """Parse and validate one unified record (the JSON object of one line)."""
        if not isinstance(obj, Mapping):
            raise RecordError("bad_type", f"expected a JSON object, got {_json_type(obj)}")
        for key in ("id", "dataset", "messages"):
            if key not in obj:
                raise RecordError("missing_field", "required field is missing", field=key)
        for key in ("id", "dataset"):
            if not isinstance(obj[key], str) or not obj[key]:
                raise RecordError("bad_type", f"expected a non-empty string, got {_json_type(obj[key])}", field=key)
        check_id(obj["id"])
        raw = obj["messages"]
        if not isinstance(raw, list):
            raise RecordError("bad_type", f"expected a list, got {_json_type(raw)}", field="messages")
        meta = obj.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise RecordError("bad_type", f"expected an object, got {_json_type(meta)}", field="meta")
        msgs = []
        empty_ok = bool(meta.get(EMPTY_ANSWER))
        for i, m in enumerate(raw):
            if not isinstance(m, Mapping):
                raise RecordError("bad_type", f"expected an object, got {_json_type(m)}", field=f"messages[{i}]")
            for key in ("role", "content"):
                if key not in m:
                    raise RecordError("missing_field", "required field is missing", field=f"messages[{i}].{key}")
            msgs.append(_make_message(m["role"], m["content"], i, empty_ok=empty_ok))
        validate(msgs, require_final_assistant=require_final_assistant, empty_answer=empty_ok)
        return cls(id=obj["id"], dataset=obj["dataset"], messages=tuple(msgs), meta=dict(meta))

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
        }
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    def to_json(self) -> str:
        """One canonical JSON line (no trailing newline): stable key order, UTF-8 kept as is."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    # -- views --------------------------------------------------------------------------------------
    @property
    def rounds(self) -> int:
        """Number of user turns (the study's "rounds")."""
        return sum(1 for m in self.messages if m.role == "user")

    def with_meta(self, **extra: Any) -> Conversation:
        return Conversation(self.id, self.dataset, self.messages, {**self.meta, **extra})


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__
    )


def check_id(value: str, field: str = "id") -> None:
    """Refuse an id with a control character or a path separator (reason ``bad_id``).

    >>> check_id("oasst1:6ab2")
    >>> check_id("a/b")
    Traceback (most recent call last):
    ...
    camels.core.errors.RecordError: id: '/' (a path separator) is not allowed in an id: 'a/b'
    """
    for ch in value:
        if ch in "/\\":
            raise RecordError("bad_id", f"{ch!r} (a path separator) is not allowed in an id: {value!r}",
                              field=field)
        if ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029":
            raise RecordError("bad_id", f"a control character ({ch!r}) is not allowed in an id: {value!r}",
                              field=field)


def _make_message(role: Any, content: Any, i: int, *, empty_ok: bool = False) -> Message:
    if not isinstance(role, str):
        raise RecordError("bad_type", f"expected a string, got {_json_type(role)}", field=f"messages[{i}].role")
    if role not in ROLES:
        raise RecordError(
            "unknown_role", f"unknown role {role!r} (expected system, user or assistant)", field=f"messages[{i}].role"
        )
    if not isinstance(content, str):
        raise RecordError(
            "bad_type", f"expected a string, got {_json_type(content)}", field=f"messages[{i}].content"
        )
    if "\x00" in content:
        raise RecordError("nul_in_content", "content holds a NUL character (\\u0000)",
                          field=f"messages[{i}].content")
    content = content.strip()
    if not content and not (empty_ok and role == "assistant"):
        raise RecordError("empty_content", "content is empty after stripping", field=f"messages[{i}].content")
    return Message(role, content)


def validate(messages: Sequence[Message], *, require_final_assistant: bool = True,
             empty_answer: bool = False) -> None:
    """Check roles and turn order; raise :class:`RecordError` naming the offending message.

    ``empty_answer``: the last turn may be an empty assistant turn (see the module docstring).
    """
    if not messages:
        raise RecordError("no_messages", "a conversation needs at least one user and one assistant turn",
                          field="messages")
    start = 1 if messages[0].role == "system" else 0
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            raise RecordError("unknown_role", f"unknown role {m.role!r}", field=f"messages[{i}].role")
        allowed_empty = empty_answer and not m.content and m.role == "assistant" and i == len(messages) - 1
        if not allowed_empty and (not m.content or m.content != m.content.strip()):
            raise RecordError("empty_content" if not m.content.strip() else "unstripped",
                              "content must be non-empty stripped text", field=f"messages[{i}].content")
        if i < start:
            continue
        if m.role == "system":
            raise RecordError("misplaced_system", "a system turn may only come first", field=f"messages[{i}].role")
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if m.role != expected:
            raise RecordError(
                "bad_alternation", f"expected a {expected} turn here, got {m.role}", field=f"messages[{i}].role"
            )
    turns = len(messages) - start
    if turns < 2:
        raise RecordError("no_assistant", "a conversation needs at least one user and one assistant turn",
                          field="messages")
    if require_final_assistant and messages[-1].role != "assistant":
        raise RecordError("ends_with_user", "the last turn must be the assistant's",
                          field=f"messages[{len(messages) - 1}].role")
