"""Deterministic fake backends for engine tests: they count every call and every request they answer."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable, Sequence

from camels.core.requests import (
    BackendInfo,
    ChoiceRequest,
    ChoiceResult,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    request_key_material,
)


class Crash(RuntimeError):
    """Raised by a fake backend to simulate a run dying midway."""


def _h(req: Request) -> int:
    return int(hashlib.sha256(request_key_material(req).encode()).hexdigest()[:8], 16)


def default_answer(req: Request) -> Result:
    """A pseudo-random but deterministic answer derived from the request's content."""
    h = _h(req)
    if isinstance(req, ChoiceRequest):
        return ChoiceResult(tuple(-float((h >> (4 * i)) % 16) - 0.5 * i for i in range(len(req.choices))))
    if isinstance(req, GenerateRequest):
        return Generation(texts=(f"The answer is {h % 100}.",), finish_reasons=("stop",))
    return LoglikelihoodResult(logprob=-float(h % 50), n_tokens=3, is_greedy=False)


class FakeBackend:
    """Answers with ``answer(request)``; counts calls; raises :class:`Crash` once ``crash_after`` requests
    have been answered (the chunk that would pass that mark is lost, as a killed process would lose it)."""

    def __init__(self, answer: Callable[[Request], Result] = default_answer, *, chat: bool = False,
                 fingerprint: str = "fake-v1", crash_after: int | None = None,
                 count_tokens: Callable[[Request], int] | None = None, max_length: int | None = None):
        self.answer = answer
        self.calls = 0
        self.answered: list[Request] = []
        self.crash_after = crash_after
        self._info = BackendInfo(name="fake", model="fake-model", fingerprint=fingerprint,
                                 chat_format={"kind": "tulu" if chat else "plain"})
        if count_tokens is not None:
            self.count_prompt_tokens = count_tokens
        self.max_length = max_length

    @property
    def info(self) -> BackendInfo:
        return self._info

    def _run(self, requests: Sequence[Request]) -> list[Result]:
        self.calls += 1
        if self.crash_after is not None and len(self.answered) + len(requests) > self.crash_after:
            raise Crash(f"simulated crash after {len(self.answered)} requests")
        self.answered.extend(requests)
        return [self.answer(r) for r in requests]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return self._run(requests)

    def choose(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        return self._run(requests)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return self._run(requests)


def choice_oracle(gold: dict[str, int]) -> Callable[[Request], Result]:
    """Answers a choice request with the gold option (by the prompt's canonical JSON)."""

    def answer(req: Request) -> Result:
        g = gold[request_key_material(req)]
        return ChoiceResult(tuple(0.0 if i == g else -5.0 for i in range(len(req.choices))))

    return answer


def constant_choice(index: int) -> Callable[[Request], Result]:
    def answer(req: Request) -> Result:
        return ChoiceResult(tuple(0.0 if i == index else -5.0 for i in range(len(req.choices))))

    return answer


def text_oracle(texts: dict[str, str]) -> Callable[[Request], Result]:
    def answer(req: Request) -> Result:
        return Generation(texts=(texts[request_key_material(req)],), finish_reasons=("stop",))

    return answer


# Instances made through the CLI (``--backend evalfakes:CLIFakeBackend``), so a test can inspect them.
CLI_INSTANCES: list[FakeBackend] = []


class CLIFakeBackend(FakeBackend):
    """The fake as ``load_backend`` builds backends: ``Class(model, **options)``."""

    def __init__(self, model: str, batch_size: int | None = None, crash_after: int | None = None,
                 chat: bool = False, kill_after: int | None = None, log: str | None = None,
                 delay: float = 0.0):
        super().__init__(crash_after=crash_after, chat=chat)
        self.delay = delay  # seconds per call, so two processes overlap in a test
        self.batch_size = batch_size
        self.kill_after = kill_after
        self.log = log
        CLI_INSTANCES.append(self)

    def _run(self, requests):
        if self.kill_after is not None and len(self.answered) + len(requests) > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # die like an OOM kill: no cleanup, no exception
        if self.delay:
            time.sleep(self.delay)
        out = super()._run(requests)
        if self.log:  # one line per answered request, so a parent process can count them
            with open(self.log, "a", encoding="utf-8") as f:
                f.writelines(request_key_material(r) + "\n" for r in requests)
        return out
