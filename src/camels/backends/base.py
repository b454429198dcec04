"""The narrow protocol every backend implements: a batch of typed requests in, results out, in order.

A backend owns batching, prompt rendering (through the model's chat format contract) and tokenization;
it never knows which task a request came from. Backends that cannot serve a kind of request (an API
without log-probabilities, say) raise :class:`UnsupportedRequest` with a clear sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from camels.core.errors import CamelsError
from camels.core.requests import (
    BackendInfo,
    ChoiceRequest,
    ChoiceResult,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)


class UnsupportedRequest(CamelsError):
    """This backend cannot answer this kind of request."""


class BackendError(CamelsError):
    """A backend failed for good (retries exhausted, model missing ...)."""


@runtime_checkable
class Backend(Protocol):
    @property
    def info(self) -> BackendInfo: ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    def choose(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]: ...


class LocalPrompts:
    """Prompt rendering and token counting for backends that hold a ``tokenizer`` and a ``chat_format``.

    The chat format writes BOS into the text when the model wants one, so text is always tokenized with
    ``add_special_tokens=False``: exactly one BOS, never two.
    """

    tokenizer: Any
    chat_format: Any

    def prompt_text(self, req: Any) -> str:
        """The exact text the model sees for a request (BOS included when the contract adds one)."""
        return self.chat_format.prompt(req.messages, req.assistant_prefix)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, req: Any) -> int:
        """Tokens of the request's rendered prompt, BOS included (tasks use it to fit few-shot prompts)."""
        return len(self.encode(self.prompt_text(req)))


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest occurrence of any stop string; return (text, whether a stop was found).

    >>> cut_at_stop("4\\nQuestion: next", ["\\nQuestion:", "\\n\\n"])
    ('4', True)
    """
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1 and i < cut:
                cut = i
    return text[:cut], cut < len(text)
