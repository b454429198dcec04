"""Typed requests a task sends to a backend, and the typed answers it gets back.

A task builds requests from benchmark items and never sees a model; a backend answers a batch of requests,
in order, and never sees a task. A request carries a chat prompt (``messages`` ending with a user turn,
plus an optional ``assistant_prefix``); the backend renders it with the model's chat format contract
(:mod:`camels.core.template`), which for a base model is the ``plain`` format. So the same task serves chat
and base models, and the prompt a model sees is decided in one place.

Every request has a canonical JSON form (:func:`request_key_material`) used by the request cache: the same
request to the same model is never computed twice.

Request kinds are open. A kind is a pair of frozen dataclasses registered with :func:`register_kind`: the
request class names its ``kind`` (unique, e.g. ``"execute"``) and the ``method`` of the object that answers
a list of such requests (``backend.generate(requests)``, ``sandbox.execute(requests)``); the result class
is what that method returns, one per request, in order. The model kinds (``generate``, ``choice``,
``loglikelihood``, answered by ``generate``/``choose``/``loglikelihood``) are registered the same way as
the scoring kinds other modules define (code execution, classifiers, judges), and serialisation, cache keys
and dispatch are generic over the registry, so adding a kind edits no backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from camels.core.chat import Message

#: Registered request classes and result classes, by kind (filled by :func:`register_kind`).
REQUEST_TYPES: dict[str, type] = {}
RESULT_TYPES: dict[str, type] = {}
#: Result class -> its kind (the kind a stored result is written with).
RESULT_KINDS: dict[type, str] = {}


def register_kind(request_cls: type, result_cls: type) -> type:
    """Make a request kind known: serialisation, cache keys and dispatch then work for it.

    ``request_cls`` is a frozen dataclass with class attributes ``kind`` (a unique name) and ``method`` (the
    name of the answering object's method, which takes a list of these requests and returns a list of
    ``result_cls``, same length, same order). Both classes hold JSON-like fields: str, int, float, bool,
    None, tuples (a list read back from JSON becomes a tuple), dicts, and dataclasses (written as dicts; a
    request class rebuilds them in ``__post_init__``, as the model kinds rebuild their ``messages``).
    Registering the same pair again is a no-op; another pair under a taken kind is an error. Returns
    ``request_cls``, so it can be used after the class definition or as a helper in a decorator.
    """
    for cls, what in ((request_cls, "request"), (result_cls, "result")):
        if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
            raise TypeError(f"{what} class {cls!r} of a request kind must be a dataclass")
    kind, method = getattr(request_cls, "kind", None), getattr(request_cls, "method", None)
    if not isinstance(kind, str) or not kind or not isinstance(method, str) or not method:
        raise TypeError(f"{request_cls.__name__} needs class attributes 'kind' and 'method' (non-empty strings)")
    known = REQUEST_TYPES.get(kind), RESULT_TYPES.get(kind)
    if known != (None, None) and known != (request_cls, result_cls):
        raise ValueError(f"request kind {kind!r} is already registered "
                         f"({known[0].__name__} -> {known[1].__name__})")
    if result_cls in RESULT_KINDS and RESULT_KINDS[result_cls] != kind:
        raise ValueError(f"{result_cls.__name__} already answers kind {RESULT_KINDS[result_cls]!r}")
    REQUEST_TYPES[kind] = request_cls
    RESULT_TYPES[kind] = result_cls
    RESULT_KINDS[result_cls] = kind
    return request_cls


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
    method = "generate"

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
    method = "choose"

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
    method = "loglikelihood"

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _messages(self.messages))
        if not self.continuation:
            raise ValueError("the continuation must not be empty")


# The model kinds, for type hints. Scoring kinds registered elsewhere are requests too: code that handles
# any kind types it ``Request`` and reads ``request.kind``; ``Request`` stays the model union for checkers.
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

for _req, _res in ((GenerateRequest, Generation), (ChoiceRequest, ChoiceResult),
                   (LoglikelihoodRequest, LoglikelihoodResult)):
    register_kind(_req, _res)


def _plain(value: Any) -> Any:
    # ``dataclasses.asdict``'s output (nested dataclasses as dicts, tuples kept), built without its deep copy
    # (which is slow for 10^5 requests).
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _frozen(value: Any) -> Any:
    # JSON read back: lists become tuples at every depth (registered kinds hold sequences as tuples).
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _registered(kind: Any, table: dict[str, type], what: str) -> type:
    try:
        return table[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} kind {kind!r} (registered: {', '.join(sorted(table))}); the module "
                         "that defines it must be imported first") from None


def request_to_dict(req: Any) -> dict[str, Any]:
    """A request as a JSON-ready dict (its fields plus ``"kind"``); equal to ``dataclasses.asdict`` + kind."""
    d: dict[str, Any] = {f.name: _plain(getattr(req, f.name)) for f in fields(req)}
    d["kind"] = req.kind
    return d


def request_from_dict(d: dict[str, Any]) -> Any:
    """The request a :func:`request_to_dict` dict describes (any registered kind)."""
    d = dict(d)
    cls = _registered(d.pop("kind", None), REQUEST_TYPES, "request")
    return cls(**{k: _frozen(v) for k, v in d.items()})


def result_to_dict(res: Any) -> dict[str, Any]:
    """A result's fields as a JSON-ready dict (without its kind)."""
    return {f.name: _plain(getattr(res, f.name)) for f in fields(res)}


def result_from_dict(kind: str, d: dict[str, Any]) -> Any:
    """The result of kind ``kind`` that a :func:`result_to_dict` dict describes."""
    cls = _registered(kind, RESULT_TYPES, "result")
    return cls(**{k: _frozen(v) for k, v in d.items()})


def result_kind(res: Any) -> str:
    """The registered kind a result answers (``"choice"`` for a :class:`ChoiceResult`)."""
    try:
        return RESULT_KINDS[type(res)]
    except KeyError:
        raise ValueError(f"{type(res).__name__} is not the result class of a registered kind") from None


def request_key_material(req: Any) -> str:
    """Canonical JSON of a request: what identifies it in the cache (with the model's fingerprint)."""
    return json.dumps(request_to_dict(req), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(req: Any, model_fingerprint: str) -> str:
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
