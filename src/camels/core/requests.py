"""Typed requests a task sends to a backend, and the typed answers it gets back.

A task builds requests from benchmark items and never sees a model; a backend answers a batch of requests,
in order, and never sees a task. A request carries a chat prompt (``messages`` ending with a user turn,
plus an optional ``assistant_prefix``); the backend renders it with the model's chat format contract
(:mod:`camels.core.template`), which for a base model is the ``plain`` format. So the same task serves chat
and base models, and the prompt a model sees is decided in one place.

Every request has a canonical JSON form (:func:`request_key_material`) used by the request cache: the same
request to the same model is never computed twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from camels.core.chat import Message


def _messages(messages: Sequence[Any]) -> tuple[Message, ...]:
    out = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, dict):
            out.append(Message(m["role"], m["content"]))
        else:
            out.append(Message(*m))
    if not out or out[-1].role != "user":
        raise ValueError("a request prompt must end with a user turn")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """Sample ``n`` continuations of the prompt (greedy when ``temperature == 0``).

    Generation of a sequence stops at the model's EOS, at the chat format's end-of-turn strings, at any of
    ``stop`` (the stop string itself is cut from the output) or after ``max_tokens`` new tokens.
    """

    messages: tuple[Message, ...]
    assistant_prefix: str = ""
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0

    kind = "generate"

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _messages(self.messages))
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.n < 1 or self.max_tokens < 1:
            raise ValueError("n and max_tokens must be at least 1")
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 samples need a temperature above 0")


@dataclass(frozen=True, slots=True)
class ChoiceRequest:
    """Score candidate next tokens after the prompt (e.g. MMLU's ``" A"``, ``" B"`` ...).

    Each choice is a string whose *first token* (as it follows the prompt text) is scored; the result holds
    the log-probability of that token under the next-token distribution.
    """

    messages: tuple[Message, ...]
    choices: tuple[str, ...]
    assistant_prefix: str = ""

    kind = "choice"

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _messages(self.messages))
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 2:
            raise ValueError("a choice request needs at least two choices")


@dataclass(frozen=True, slots=True)
class LoglikelihoodRequest:
    """Log-likelihood of a whole ``continuation`` after the prompt (TruthfulQA MC1/MC2 and the like)."""

    messages: tuple[Message, ...]
    continuation: str
    assistant_prefix: str = ""

    kind = "loglikelihood"

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _messages(self.messages))
        if not self.continuation:
            raise ValueError("the continuation must not be empty")


Request = GenerateRequest | ChoiceRequest | LoglikelihoodRequest


@dataclass(frozen=True, slots=True)
class Generation:
    """``n`` generated texts (stop strings cut off) with why each ended: ``"stop"``, ``"eos"``, ``"length"``."""

    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int = 0
    completion_tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ChoiceResult:
    """Log-probability of each choice's first token, in the order of the request's choices."""

    logprobs: tuple[float, ...]

    @property
    def best(self) -> int:
        return max(range(len(self.logprobs)), key=lambda i: self.logprobs[i])


@dataclass(frozen=True, slots=True)
class LoglikelihoodResult:
    """Summed log-probability of the continuation's tokens, their count, and whether greedy decoding
    would have produced exactly the continuation."""

    logprob: float
    n_tokens: int
    is_greedy: bool


Result = Generation | ChoiceResult | LoglikelihoodResult

REQUEST_TYPES = {c.kind: c for c in (GenerateRequest, ChoiceRequest, LoglikelihoodRequest)}
RESULT_TYPES = {"generate": Generation, "choice": ChoiceResult, "loglikelihood": LoglikelihoodResult}


def request_to_dict(req: Request) -> dict[str, Any]:
    # Same dict as ``dataclasses.asdict`` (which deep-copies and is slow for 10^5 requests), built directly.
    d: dict[str, Any] = {f.name: getattr(req, f.name) for f in fields(req)}
    d["messages"] = tuple({"role": m.role, "content": m.content} for m in req.messages)
    d["kind"] = req.kind
    return d


def request_from_dict(d: dict[str, Any]) -> Request:
    d = dict(d)
    cls = REQUEST_TYPES[d.pop("kind")]
    d["messages"] = tuple(Message(m["role"], m["content"]) for m in d["messages"])
    return cls(**d)


def result_to_dict(res: Result) -> dict[str, Any]:
    return {f.name: getattr(res, f.name) for f in fields(res)}


def result_from_dict(kind: str, d: dict[str, Any]) -> Result:
    cls = RESULT_TYPES[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def request_key_material(req: Request) -> str:
    """Canonical JSON of a request: what identifies it in the cache (with the model's fingerprint)."""
    return json.dumps(request_to_dict(req), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(req: Request, model_fingerprint: str) -> str:
    """Content address of (model, request): sha256 hex."""
    h = hashlib.sha256()
    h.update(model_fingerprint.encode())
    h.update(b"\0")
    h.update(request_key_material(req).encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What identifies a backend's answers: two backends with the same fingerprint answer alike."""

    name: str
    model: str
    fingerprint: str
    chat_format: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
