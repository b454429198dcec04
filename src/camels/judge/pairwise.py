"""The pairwise judge: which of two outputs is better, through any camels backend that generates text.

:class:`PairwiseJudge` is the scorer of :class:`~camels.judge.kinds.JudgePairRequest`: it fills the judge
prompt with the instruction and the two outputs in the order given, asks the backend (the
OpenAI-compatible API backend for hosted judges, HF or vLLM for local ones) for the judge's answer, reads
the verdict with the prompt's parser, and asks again, up to ``max_attempts`` in all, while the answer
cannot be parsed; then the verdict is kept as unparsed (``preference=None``) with every raw answer. A
``logprob`` prompt (AlpacaEval 2's weighted judge) is answered instead by one choice request per pair: the
log-probabilities of the two identifier tokens as the judge's first answer token give a weighted
preference (the backend must return next-token log-probabilities: HF, vLLM, or an API with prompt
log-probabilities; token counts are not reported on this path).
Transport faults (429, 5xx, timeouts, truncated bodies) are the backend's to retry; a judge answer that
arrived but is garbled is the judge's.

Position: which output the judge sees first is decided by the task, not here, with
:func:`model_shown_first`: a seeded hash of the item id, reproducible and independent of the order of
items. :func:`unswap` turns a verdict in the order shown back into alpaca_eval's preference of the model
over the reference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from camels.backends.base import BackendError
from camels.core.requests import BackendInfo, ChoiceRequest, GenerateRequest, Generation
from camels.judge.identity import JudgeIdentity
from camels.judge.kinds import JudgePairRequest, PairVerdict
from camels.judge.ledger import CostLedger
from camels.judge.parse import parse_verdict, preference_from_logprobs
from camels.judge.prompts import JudgePrompt


def model_shown_first(item_id: str, seed: int) -> bool:
    """Whether the model's output is shown to the judge first: bit 0 of sha256(``seed:item_id``).

    >>> [model_shown_first(str(i), 0) for i in range(6)]
    [False, True, False, True, False, True]
    """
    return bool(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[0] & 1)


def unswap(preference: float | None, model_first: bool) -> float | None:
    """The verdict as alpaca_eval's preference for the model (2) over the reference (1).

    A verdict in the order shown prefers output_1 (1.0) or output_2 (2.0); when the model was shown first
    the scale is mirrored (``3 - p``); a tie (1.5) stays a tie, None stays None.
    """
    if preference is None:
        return None
    return 3.0 - preference if model_first else preference


class PairwiseJudge:
    """Scorer of ``judge_pair`` requests (see the module doc)."""

    def __init__(self, backend: Any, prompt: JudgePrompt, *, max_attempts: int = 3,
                 ledger: CostLedger | None = None) -> None:
        if prompt.kind != "pairwise":
            raise ValueError(f"judge prompt {prompt.name} is a {prompt.kind} prompt, not pairwise")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.backend = backend
        self.prompt = prompt
        self.max_attempts = max_attempts
        self.temperature = float(prompt.decoding.get("temperature", 0))
        self.max_tokens = int(prompt.decoding.get("max_tokens", 512))
        self.ledger = ledger if ledger is not None else CostLedger(prices=prompt.prices)
        binfo = backend.info
        self.identity = JudgeIdentity(
            backend=binfo.name, model=binfo.model, revision=binfo.fingerprint, prompt=prompt.name,
            prompt_version=str(prompt.version), prompt_sha256=prompt.sha256,
            decoding={"temperature": self.temperature, "max_tokens": self.max_tokens})
        self._judge = self.identity.to_dict()

    @property
    def info(self) -> BackendInfo:
        blob = json.dumps({"judge": self.identity.fingerprint, "max_attempts": self.max_attempts})
        return BackendInfo(name="judge_pair", model=self.identity.model,
                           fingerprint=hashlib.sha256(blob.encode()).hexdigest(),
                           details={"judge": self._judge, "max_attempts": self.max_attempts})

    def _generate(self, r: JudgePairRequest, attempt: int) -> GenerateRequest:
        messages = self.prompt.render(instruction=r.instruction, output_1=r.output_1, output_2=r.output_2)
        # The seed differs per attempt, so a sampling judge (or a server's cache) can answer anew.
        return GenerateRequest(messages=messages, max_tokens=self.max_tokens, temperature=self.temperature,
                               seed=attempt)

    def _record(self, g: Generation, attempt: int) -> tuple[int, int, float]:
        pt, ct = int(g.prompt_tokens), int(sum(g.completion_tokens))
        cost = self.ledger.add(self.identity.model, pt, ct, kind="judge_pair", attempt=attempt + 1)
        return pt, ct, cost

    def _judge_by_logprob(self, requests: Sequence[JudgePairRequest]) -> list[PairVerdict]:
        first, second = self.prompt.parser_options["first"], self.prompt.parser_options["second"]
        choices = [ChoiceRequest(messages=self.prompt.render(instruction=r.instruction, output_1=r.output_1,
                                                             output_2=r.output_2), choices=(first, second))
                   for r in requests]
        out = []
        for res in self.backend.choose(choices):
            a, b = res.logprobs
            cost = self.ledger.add(self.identity.model, 0, 0, kind="judge_pair", attempt=1)
            out.append(PairVerdict(preference=preference_from_logprobs(a, b), raw=(f"logprob {first}={a:.6g} "
                                   f"{second}={b:.6g}",), attempts=1, judge=self._judge, cost_usd=cost))
        return out

    def judge_pair(self, requests: Sequence[JudgePairRequest]) -> list[PairVerdict]:
        """One verdict per request, in order; every request ends parsed or unparsed, none is dropped."""
        self.ledger.check_budget()
        if self.prompt.parser == "logprob":
            return self._judge_by_logprob(requests)
        n = len(requests)
        prefs: list[float | None] = [None] * n
        raws: list[list[str]] = [[] for _ in range(n)]
        tokens = [[0, 0, 0.0] for _ in range(n)]
        pending = list(range(n))
        for attempt in range(self.max_attempts):
            if not pending:
                break
            try:
                gens = self.backend.generate([self._generate(requests[i], attempt) for i in pending])
            except BackendError as e:
                # Calls that were answered before the failure were served (and billed): count them.
                for g in getattr(e, "partial", None) or []:
                    if isinstance(g, Generation):
                        self._record(g, attempt)
                raise
            still = []
            for i, g in zip(pending, gens):
                pt, ct, cost = self._record(g, attempt)
                tokens[i][0] += pt
                tokens[i][1] += ct
                tokens[i][2] += cost
                text = g.texts[0] if g.texts else ""
                raws[i].append(text)
                prefs[i] = parse_verdict(self.prompt.parser, text, self.prompt.parser_options)
                if prefs[i] is None:
                    still.append(i)
            pending = still
        return [PairVerdict(preference=prefs[i], raw=tuple(raws[i]), attempts=len(raws[i]), judge=self._judge,
                            prompt_tokens=tokens[i][0], completion_tokens=tokens[i][1],
                            cost_usd=round(tokens[i][2], 10)) for i in range(n)]
