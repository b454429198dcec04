"""The vLLM backend (``pip install 'camels-instruct[vllm]'``, GPU): the same protocol as the HF backend, served by
vLLM's offline engine. ``vllm`` is imported only when the backend is built.

* Prompts are rendered with the model's chat contract exactly as in :mod:`camels.backends.hf` and sent as
  token ids (``add_special_tokens=False``: the contract writes BOS in the text), so both backends see the
  same tokens.
* Generation maps each request to ``SamplingParams`` (:func:`sampling_params_kwargs`): ``n``,
  temperature, top-p, max tokens, the request's stop strings plus the chat format's end-of-turn strings,
  and the request's seed (vLLM seeds each request on its own, so samples do not depend on the batch).
* Choice and log-likelihood scoring read ``prompt_logprobs``: each (context + scored tokens) sequence is
  sent with ``max_tokens=1``; the log-probability of every prompt token (and its rank, for ``is_greedy``)
  comes back. vLLM's automatic prefix caching computes a shared prefix (MMLU's exemplars) once.

Limits: the vLLM engine owns batching and memory; ``batch_size`` is not used. Tested here only through its
pure parts and a fake engine (no GPU on the test machines).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from camels.backends.base import BackendError, LocalPrompts, cut_at_stop
from camels.backends.tokens import split_at_boundary, split_choices
from camels.core.requests import (
    BackendInfo,
    ChoiceRequest,
    ChoiceResult,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from camels.core.template import ChatFormat


def sampling_params_kwargs(req: GenerateRequest, chat_stops: Sequence[str] = ()) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for a generation request.

    >>> k = sampling_params_kwargs(GenerateRequest([("user", "q")], max_tokens=5, stop=("\\n",)), ("</s>",))
    >>> k["temperature"], k["top_p"], k["stop"], k["max_tokens"], k["seed"]
    (0.0, 1.0, ['\\n', '</s>'], 5, None)
    """
    greedy = req.temperature <= 0
    stops = list(dict.fromkeys([s for s in (*req.stop, *chat_stops) if s]))
    return {
        "n": req.n,
        "temperature": 0.0 if greedy else float(req.temperature),
        "top_p": 1.0 if greedy else float(req.top_p),
        "max_tokens": req.max_tokens,
        "stop": stops,
        "seed": None if greedy else int(req.seed),
        "skip_special_tokens": False,
        "include_stop_str_in_output": False,
    }


def scoring_params_kwargs(top: int = 1) -> dict[str, Any]:
    """``SamplingParams`` for reading prompt log-probabilities (and the top-``top`` token at each place)."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": top, "detokenize": False}


def _lp(entry: Any, token: int) -> tuple[float, int | None]:
    """(log-prob, rank) of ``token`` in one position of vLLM's ``prompt_logprobs``."""
    v = entry[token]
    if isinstance(v, (int, float)):
        return float(v), None
    return float(v.logprob), getattr(v, "rank", None)


def finish_reason(output: Any, req: GenerateRequest) -> str:
    """Map vLLM's ``finish_reason``/``stop_reason`` to camels' ``"stop"``, ``"eos"`` or ``"length"``."""
    if output.finish_reason == "length":
        return "length"
    stop_reason = getattr(output, "stop_reason", None)
    if isinstance(stop_reason, str) and stop_reason in req.stop:
        return "stop"
    return "eos"


class VLLMBackend(LocalPrompts):
    """vLLM's offline engine behind the backend protocol (see the module docstring).

    ``model``: hub name or local folder. ``chat_format`` as for the HF backend. Engine options
    (``tensor_parallel_size``, ``gpu_memory_utilization``, ``dtype``, ``max_length`` -> ``max_model_len``
    ...) go to ``vllm.LLM``. ``llm`` and ``sampling_params`` let tests pass a fake engine.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tokenizer: Any = None,
        chat_format: Any = "auto",
        dtype: str = "auto",
        max_length: int | None = None,
        seed: int = 0,
        llm: Any = None,
        sampling_params: Callable[..., Any] | None = None,
        batch_size: int | None = None,  # accepted for a uniform CLI; vLLM batches on its own
        **engine_options: Any,
    ) -> None:
        from camels.backends.hf import resolve_chat_format

        self.model_name = str(model)
        if llm is None:
            try:
                from vllm import LLM, SamplingParams
            except ImportError as e:
                raise BackendError("the vllm backend needs vLLM: pip install 'camels-instruct[vllm]' (GPU only)") from e
            llm = LLM(model=self.model_name, tokenizer=tokenizer if isinstance(tokenizer, str) else None,
                      dtype=dtype, max_model_len=max_length, seed=seed, enable_prefix_caching=True,
                      **engine_options)
            sampling_params = sampling_params or SamplingParams
        self.llm = llm
        self._params = sampling_params or dict
        self.tokenizer = tokenizer if tokenizer is not None and not isinstance(tokenizer, str) else llm.get_tokenizer()
        model_dir = Path(self.model_name) if os.path.isdir(self.model_name) else None
        self.chat_format: ChatFormat = resolve_chat_format(chat_format, self.tokenizer, model_dir)
        self.max_length = max_length
        self.dtype = dtype

    @property
    def info(self) -> BackendInfo:
        from camels.backends.hf import WEIGHT_SUFFIXES, _file_digest

        weights = self.model_name
        if os.path.isdir(self.model_name):
            files = sorted(p for p in Path(self.model_name).iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
            weights = ",".join(f"{p.name}:{_file_digest(p)}" for p in files)
        blob = json.dumps({"weights": weights, "chat_format": self.chat_format.fingerprint(), "dtype": self.dtype},
                          sort_keys=True)
        return BackendInfo(name=self.name, model=self.model_name, fingerprint=hashlib.sha256(blob.encode()).hexdigest(),
                           chat_format=self.chat_format.to_dict(), details={"dtype": self.dtype})


    def _run(self, token_lists: Sequence[Sequence[int]], params: Sequence[Any]) -> list[Any]:
        prompts = [{"prompt_token_ids": list(ids)} for ids in token_lists]
        return list(self.llm.generate(prompts, list(params), use_tqdm=False))

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        stops = self.chat_format.stop_strings
        ids = [self.encode(self.prompt_text(r)) for r in requests]
        outs = self._run(ids, [self._params(**sampling_params_kwargs(r, stops)) for r in requests])
        results = []
        for req, prompt_ids, out in zip(requests, ids, outs):
            texts, reasons, counts = [], [], []
            for o in sorted(out.outputs, key=lambda o: getattr(o, "index", 0)):
                text, _ = cut_at_stop(o.text, (*req.stop, *stops))
                texts.append(text)
                reasons.append(finish_reason(o, req))
                counts.append(len(getattr(o, "token_ids", ()) or ()))
            results.append(Generation(tuple(texts), tuple(reasons), prompt_tokens=len(prompt_ids),
                                      completion_tokens=tuple(counts)))
        return results

    def choose(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        seqs: dict[tuple[int, ...], int] = {}
        plan = []
        for ri, req in enumerate(requests):
            per = []
            for ctx, cont in split_choices(self.tokenizer, self.prompt_text(req), req.choices):
                if not ctx or not cont:
                    raise BackendError(f"choice request {ri}: empty context or choice after tokenizing")
                seq = (*ctx, cont[0])
                per.append(seqs.setdefault(seq, len(seqs)))
            plan.append(per)
        order = list(seqs)
        outs = self._run(order, [self._params(**scoring_params_kwargs(0))] * len(order))
        scores = [_lp(out.prompt_logprobs[-1], seq[-1])[0] for seq, out in zip(order, outs)]
        return [ChoiceResult(tuple(scores[i] for i in per)) for per in plan]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        seqs, starts = [], []
        for ri, req in enumerate(requests):
            ctx, cont = split_at_boundary(self.tokenizer, self.prompt_text(req), req.continuation)
            if not ctx or not cont:
                raise BackendError(f"loglikelihood request {ri}: empty context or continuation after tokenizing")
            seqs.append(ctx + cont)
            starts.append(len(ctx))
        outs = self._run(seqs, [self._params(**scoring_params_kwargs(1))] * len(seqs))
        results = []
        for seq, start, out in zip(seqs, starts, outs):
            total, greedy = 0.0, True
            for pos in range(start, len(seq)):
                lp, rank = _lp(out.prompt_logprobs[pos], seq[pos])
                total += lp
                if rank is not None:
                    greedy = greedy and rank == 1
                else:  # plain floats: greedy when no other listed token is more likely
                    greedy = greedy and all(_lp(out.prompt_logprobs[pos], t)[0] <= lp for t in out.prompt_logprobs[pos])
            results.append(LoglikelihoodResult(total, len(seq) - start, greedy))
        return results
