"""The chat format contract: the single definition of how a conversation becomes model text.

Training and evaluation both go through a :class:`ChatFormat`; it is serialised into every checkpoint
(:meth:`ChatFormat.to_dict`) and read back by evaluation (:func:`chat_format_from_dict`), so the two can
never disagree about BOS, EOS or the assistant header.

Two decisions define the contract:

1. **The rendered text is exactly what the model sees.** BOS and EOS appear in the text as the tokenizer's
   special-token strings (``"<s>"``, ``"</s>"`` ...), and the text is always tokenized with
   ``add_special_tokens=False``. Nothing else adds a BOS, so it can be neither missing nor doubled.
2. **What is trained is a set of character spans of that text** (:attr:`Rendered.trained`): each assistant
   turn's content and its EOS (or its end-of-turn marker, for a tokenizer's own template). Headers, user
   and system turns are never trained. :func:`tokenize_rendered` maps spans to tokens through the fast
   tokenizer's offsets, so the mask follows the tokenization of the whole text, with no boundary effects.

Formats:

* ``tulu`` (SPEC §3): ``<|system|>\\n{c}\\n``, ``<|user|>\\n{c}\\n``, ``<|assistant|>\\n{c}{eos}\\n``, the whole
  string stripped, BOS first when the tokenizer adds one. A generation prompt ends with ``<|assistant|>\\n``.
  Unlike the 2023 code, the ``\\n`` after an assistant's EOS is not trained (it carries no signal).
* ``hf_template``: the tokenizer's own Jinja chat template, rendered here with Jinja2 the way
  transformers does; assistant spans are found by rendering prefixes of the conversation.
* ``plain``: for base models: turns joined by a blank line, no markers; assistant text + EOS trained.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from camels.core.chat import Message
from camels.core.errors import CamelsError


class ContractError(CamelsError):
    """The chat format cannot be applied (template not prefix-stable, EOS not a single token ...)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A conversation as model text plus the character spans ``[start, end)`` that carry loss."""

    text: str
    trained: tuple[tuple[int, int], ...]

    def trained_text(self) -> list[str]:
        return [self.text[s:e] for s, e in self.trained]


def _as_messages(messages: Sequence[Any]) -> list[Message]:
    out = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, Mapping):
            out.append(Message(m["role"], m["content"]))
        else:
            role, content = m
            out.append(Message(role, content))
    return out


class ChatFormat(ABC):
    """Base of the formats. Subclasses are immutable value objects; equality is by :meth:`to_dict`."""

    kind: ClassVar[str]
    version: ClassVar[int] = 1

    def __init__(self, *, bos_token: str | None, eos_token: str, add_bos: bool) -> None:
        if not eos_token:
            raise ContractError("a chat format needs an EOS token string")
        if add_bos and not bos_token:
            raise ContractError("add_bos is set but the tokenizer has no BOS token")
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos = add_bos

    # -- the two operations -------------------------------------------------------------------------
    @abstractmethod
    def render(self, messages: Sequence[Any]) -> Rendered:
        """Render a whole conversation for training: text and trained spans."""

    @abstractmethod
    def prompt(self, messages: Sequence[Any], assistant_prefix: str = "") -> str:
        """Render a conversation that ends with a user turn as a generation prompt.

        ``assistant_prefix`` is text the assistant has already "said" (e.g. MMLU's ``"The answer is:"``);
        the model continues after it.
        """

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Strings that end an assistant turn in generated text (besides the EOS token id)."""
        return (self.eos_token,)

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "add_bos": self.add_bos,
            **self._extra_dict(),
        }

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def fingerprint(self) -> str:
        """sha256 of the canonical serialisation: two formats with the same fingerprint render alike."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatFormat) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bos={self.bos_token!r}, eos={self.eos_token!r}, add_bos={self.add_bos})"

    def _bos(self) -> str:
        return self.bos_token if (self.add_bos and self.bos_token) else ""


class TuluFormat(ChatFormat):
    kind = "tulu"
    HEADERS: ClassVar[dict[str, str]] = {
        "system": "<|system|>\n",
        "user": "<|user|>\n",
        "assistant": "<|assistant|>\n",
    }

    def render(self, messages: Sequence[Any]) -> Rendered:
        parts: list[str] = [self._bos()]
        pos = len(parts[0])
        spans: list[tuple[int, int]] = []
        for m in _as_messages(messages):
            header = self.HEADERS[m.role]
            content = m.content.strip()
            parts.append(header)
            pos += len(header)
            if m.role == "assistant":
                body = content + self.eos_token
                spans.append((pos, pos + len(body)))
            else:
                body = content
            parts.append(body + "\n")
            pos += len(body) + 1
        text = "".join(parts)
        # "the whole string stripped": only the trailing newline can go (the BOS and headers come first).
        stripped = text.rstrip()
        return Rendered(stripped, tuple((s, min(e, len(stripped))) for s, e in spans))

    def prompt(self, messages: Sequence[Any], assistant_prefix: str = "") -> str:
        msgs = _as_messages(messages)
        if not msgs or msgs[-1].role != "user":
            raise ContractError("a generation prompt must end with a user turn")
        # Earlier turns exactly as training rendered them (EOS after each assistant turn), then the header.
        return self.render(msgs).text + "\n" + self.HEADERS["assistant"] + assistant_prefix

    @property
    def stop_strings(self) -> tuple[str, ...]:
        # A model that never learned EOS tends to start the next turn itself.
        return (self.eos_token, "\n<|user|>", "\n<|system|>", "\n<|assistant|>")


class PlainFormat(ChatFormat):
    """No markers: for base models. Turns are joined by a blank line."""

    kind = "plain"
    SEP = "\n\n"

    def render(self, messages: Sequence[Any]) -> Rendered:
        text = self._bos()
        spans = []
        for i, m in enumerate(_as_messages(messages)):
            if i:
                text += self.SEP
            if m.role == "assistant":
                body = m.content.strip() + self.eos_token
                spans.append((len(text), len(text) + len(body)))
                text += body
            else:
                text += m.content.strip()
        return Rendered(text, tuple(spans))

    def prompt(self, messages: Sequence[Any], assistant_prefix: str = "") -> str:
        msgs = _as_messages(messages)
        if not msgs or msgs[-1].role != "user":
            raise ContractError("a generation prompt must end with a user turn")
        # Earlier turns exactly as training rendered them (EOS after each assistant turn).
        text = self.render(msgs).text
        if len(msgs) > 1:
            text += self.SEP
        return text + assistant_prefix


class HFTemplateFormat(ChatFormat):
    """A tokenizer's own Jinja chat template, rendered with Jinja2 as transformers does."""

    kind = "hf_template"

    def __init__(
        self,
        template: str,
        *,
        bos_token: str | None,
        eos_token: str,
        add_bos: bool | None = None,
        extra_tokens: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.extra_tokens = dict(extra_tokens or {})
        self._compiled = _compile(template)
        super().__init__(bos_token=bos_token, eos_token=eos_token, add_bos=False)
        if add_bos is None:
            # Many templates write the BOS themselves; add one only when the template does not.
            probe = self._render_raw([Message("user", "x")], add_generation_prompt=True)
            add_bos = bool(bos_token) and not probe.startswith(bos_token or "\0")
        if add_bos and not bos_token:
            raise ContractError("add_bos is set but the tokenizer has no BOS token")
        self.add_bos = add_bos

    def _extra_dict(self) -> dict[str, Any]:
        return {"template": self.template, "extra_tokens": self.extra_tokens}

    def _render_raw(self, messages: Sequence[Message], *, add_generation_prompt: bool) -> str:
        try:
            return self._compiled.render(
                messages=[m.to_dict() for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "",
                eos_token=self.eos_token,
                **self.extra_tokens,
            )
        except ContractError:
            raise
        except Exception as e:  # jinja errors of a template we did not write
            raise ContractError(f"the chat template failed to render: {e}") from e

    def render(self, messages: Sequence[Any]) -> Rendered:
        msgs = _as_messages(messages)
        full = self._render_raw(msgs, add_generation_prompt=False)
        spans = []
        for i, m in enumerate(msgs):
            if m.role != "assistant":
                continue
            before = self._render_raw(msgs[:i], add_generation_prompt=True)
            upto = self._render_raw(msgs[: i + 1], add_generation_prompt=False)
            if not full.startswith(upto) or not upto.startswith(before):
                raise ContractError(
                    "the chat template is not prefix-stable (rendering a prefix of the conversation does not "
                    "give a prefix of the text), so assistant turns cannot be located; use format 'tulu'"
                )
            segment = upto[len(before):]
            if m.content.strip() not in segment:
                raise ContractError("the chat template changes assistant content; cannot locate it")
            end = len(before) + len(segment.rstrip())
            spans.append((len(before), end))
        bos = self._bos()
        return Rendered(bos + full, tuple((s + len(bos), e + len(bos)) for s, e in spans))

    def prompt(self, messages: Sequence[Any], assistant_prefix: str = "") -> str:
        msgs = _as_messages(messages)
        if not msgs or msgs[-1].role != "user":
            raise ContractError("a generation prompt must end with a user turn")
        return self._bos() + self._render_raw(msgs, add_generation_prompt=True) + assistant_prefix



def _compile(template: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise ContractError(f"the chat template refused the conversation: {message}")

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:  # deterministic on purpose: renders must not depend on the clock
        return "1970-01-01" if "%Y" in fmt else ""

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise ContractError(f"the chat template does not compile: {e}") from e


FORMATS: dict[str, type[ChatFormat]] = {c.kind: c for c in (TuluFormat, PlainFormat, HFTemplateFormat)}


def chat_format_from_dict(d: Mapping[str, Any]) -> ChatFormat:
    """Inverse of :meth:`ChatFormat.to_dict` (as stored in checkpoints)."""
    kind = d.get("kind")
    if kind not in FORMATS:
        raise ContractError(f"unknown chat format kind {kind!r} (known: {', '.join(FORMATS)})")
    if d.get("version", 1) > FORMATS[kind].version:
        raise ContractError(f"chat format {kind} version {d['version']} is newer than this camels understands")
    if kind == "hf_template":
        return HFTemplateFormat(
            d["template"], bos_token=d.get("bos_token"), eos_token=d["eos_token"], add_bos=d.get("add_bos"),
            extra_tokens=d.get("extra_tokens"),
        )
    return FORMATS[kind](bos_token=d.get("bos_token"), eos_token=d["eos_token"], add_bos=bool(d.get("add_bos")))


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` puts a BOS in front of text by default (LLaMA yes, GPT-2 no)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos_id


def chat_format_for_tokenizer(tokenizer: Any, kind: str = "tulu") -> ChatFormat:
    """Build the contract for a (duck-typed, Hugging Face style) tokenizer.

    ``kind`` is ``"tulu"``, ``"plain"``, ``"hf_template"`` (the tokenizer's own template) or ``"auto"``
    (the tokenizer's template when it has one, else Tülu).
    """
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        raise ContractError("the tokenizer has no EOS token; set one (tokenizer.eos_token = ...) before training")
    bos = getattr(tokenizer, "bos_token", None)
    template = getattr(tokenizer, "chat_template", None)
    if kind == "auto":
        kind = "hf_template" if isinstance(template, str) and template else "tulu"
    if kind == "hf_template":
        if not isinstance(template, str) or not template:
            raise ContractError("the tokenizer has no chat template of its own; use format 'tulu'")
        return HFTemplateFormat(template, bos_token=bos, eos_token=eos)
    if kind not in FORMATS:
        raise ContractError(f"unknown chat format {kind!r} (known: {', '.join(FORMATS)}, auto)")
    return FORMATS[kind](bos_token=bos, eos_token=eos, add_bos=tokenizer_adds_bos(tokenizer))


def tokenize_rendered(tokenizer: Any, rendered: Rendered) -> tuple[list[int], list[bool]]:
    """Token ids of ``rendered.text`` and, per token, whether it is trained.

    A token is trained when its characters lie inside a trained span. Needs a fast tokenizer
    (offsets). The EOS string of each trained span must come out as one token: that is checked, because a
    tokenizer that splits ``"</s>"`` into pieces would silently never learn to stop.
    """
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    trained = [False] * len(ids)
    spans = rendered.trained
    j = 0
    for t, (s, e) in enumerate(offsets):
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        if j < len(spans) and e > s and s >= spans[j][0] and e <= spans[j][1]:
            trained[t] = True
    return ids, trained
