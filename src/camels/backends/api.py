"""OpenAI-compatible HTTP backend: reference models, judges, and models served elsewhere (vLLM, TGI ...).

* **Endpoints.** ``endpoint="chat"`` sends the request's messages to ``/chat/completions`` (the server
  applies its own chat template); ``endpoint="completions"`` renders the prompt here with a chat format
  (``plain`` by default, no BOS: servers add their own) and sends text to ``/completions``. Choice and
  log-likelihood requests need prompt log-probabilities: they go to ``/completions`` with ``echo`` and
  ``logprobs``; a server that refuses raises :class:`UnsupportedRequest`.
* **Bounded concurrency.** At most ``max_concurrency`` HTTP calls are in flight (a thread pool); results
  come back in request order.
* **Retries.** 429, 5xx, timeouts, connection errors and malformed bodies are retried up to
  ``max_retries`` times with exponential backoff and full jitter (``backoff_base * 2**attempt``, capped at
  ``backoff_max``); a ``Retry-After`` header is obeyed. Other 4xx answers are not retried. When a request
  runs out of retries the others still finish, then a :class:`BackendError` names the request and its
  last error; the answers that did arrive are on the exception (``error.partial``, ``None`` where
  missing) so a caller can keep them.
* **Ledger.** Every successful call's ``usage`` (prompt and completion tokens) is added per model, priced
  with ``prices`` (USD per million tokens, ``{"model": {"prompt": 0.5, "completion": 1.5}}``), and, with
  ``ledger_path``, appended as one JSON line per call.
* **Key.** Read from the environment variable ``api_key_env`` (``OPENAI_API_KEY`` by default) and sent as a
  bearer token; never written to results, fingerprints or the ledger.

Limits: a served model can change behind the same name; the fingerprint covers the URL, model name,
endpoint and prompt format only, so pin server versions yourself. Sampled results are reproducible only
when the server honours ``seed``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from camels.backends.base import BackendError, UnsupportedRequest, cut_at_stop
from camels.core.io import read_text
from camels.core.requests import (
    BackendInfo,
    ChoiceRequest,
    ChoiceResult,
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from camels.core.template import ChatFormat, PlainFormat, chat_format_from_dict

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_OPENAI_STOPS = 4


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Refused(Exception):
    """A 4xx answer that retrying will not change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Ledger:
    """Prompt/completion tokens and cost per model; optionally one JSON line per call in ``path``."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None, path: str | Path | None = None):
        self.prices = {k: dict(v) for k, v in (prices or {}).items()}
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._totals: dict[str, dict[str, float]] = {}

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        p = self.prices.get(model)
        if p is None:
            return None
        return (prompt_tokens * p.get("prompt", 0.0) + completion_tokens * p.get("completion", 0.0)) / 1e6

    def add(self, model: str, endpoint: str, usage: Mapping[str, Any] | None, *, request: int, attempts: int) -> None:
        pt = int((usage or {}).get("prompt_tokens") or 0)
        ct = int((usage or {}).get("completion_tokens") or 0)
        cost = self.cost(model, pt, ct)
        with self._lock:
            t = self._totals.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                                "cost_usd": 0.0, "calls_without_usage": 0})
            t["calls"] += 1
            t["prompt_tokens"] += pt
            t["completion_tokens"] += ct
            t["cost_usd"] += cost or 0.0
            t["calls_without_usage"] += usage is None
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                row = {"time": time.time(), "model": model, "endpoint": endpoint, "request": request,
                       "attempts": attempts, "prompt_tokens": pt, "completion_tokens": ct, "cost_usd": cost}
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")

    def totals(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {k: dict(v) for k, v in self._totals.items()}


def load_prices(prices: Any) -> dict[str, dict[str, float]]:
    """A price table from a dict or a JSON/YAML file: ``{model: {"prompt": usd/M, "completion": usd/M}}``."""
    if prices is None:
        return {}
    if isinstance(prices, Mapping):
        return {k: dict(v) for k, v in prices.items()}
    path = Path(prices)
    text = read_text(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return dict(yaml.safe_load(text) or {})
    return dict(json.loads(text))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _preview(req: Any) -> str:
    text = req.messages[-1].content.replace("\n", " ")
    return text[:60] + ("..." if len(text) > 60 else "")


class APIBackend:
    """An OpenAI-compatible server behind the backend protocol (see the module docstring)."""

    name = "api"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        endpoint: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        chat_format: Any = None,
        max_concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 120.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        prices: Any = None,
        ledger_path: str | Path | None = None,
        assistant_prefill: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint
        self.api_key_env = api_key_env
        if chat_format is None or chat_format == "plain":
            self.chat_format: ChatFormat = PlainFormat(bos_token=None, eos_token="</s>", add_bos=False)
        elif isinstance(chat_format, ChatFormat):
            self.chat_format = chat_format
        else:
            self.chat_format = chat_format_from_dict(chat_format)
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ledger = Ledger(load_prices(prices), ledger_path)
        self.assistant_prefill = assistant_prefill
        self.extra_body = dict(extra_body or {})
        self.seed = seed
        self.max_length = None
        self._sleep: Callable[[float], None] = time.sleep
        self._rng = random.Random()
        self.calls = 0

    @property
    def info(self) -> BackendInfo:
        ident = {"base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                 "chat_format": self.chat_format.fingerprint() if self.endpoint == "completions" else None,
                 "extra_body": self.extra_body}
        fp = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
        return BackendInfo(name=self.name, model=self.model, fingerprint=fp,
                           chat_format=self.chat_format.to_dict() if self.endpoint == "completions" else {},
                           details={"base_url": self.base_url, "endpoint": self.endpoint})

    # -- HTTP with retries -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _post_once(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        req = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(), headers=self._headers(),
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            if e.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {e.code}: {detail}", _retry_after(e.headers.get("Retry-After"))) from None
            raise _Refused(e.code, f"HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise _Retryable(f"connection error: {type(reason).__name__}: {reason}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise _Retryable(f"malformed response body (not JSON): {raw[:80]!r}") from None
        if not isinstance(data, dict):
            raise _Retryable(f"malformed response body (not an object): {raw[:80]!r}")
        return data

    def _call(self, index: int, req: Any, path: str, body: Mapping[str, Any],
              parse: Callable[[dict[str, Any]], Any]) -> Any:
        """POST with retries; ``parse`` turns the body into a result and raises KeyError/TypeError/ValueError
        (a malformed body: retried) or :class:`UnsupportedRequest`."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                data = self._post_once(path, body)
                try:
                    result = parse(data)
                except UnsupportedRequest:
                    raise
                except (KeyError, IndexError, TypeError, ValueError) as e:
                    raise _Retryable(f"malformed response body ({type(e).__name__}: {e}): "
                                     f"{json.dumps(data)[:120]}") from None
                self.ledger.add(self.model, path, data.get("usage"), request=index, attempts=attempt + 1)
                return result
            except _Refused as e:
                if e.status in (400, 404, 422) and body.get("echo"):
                    raise UnsupportedRequest(
                        f"{self.base_url}{path} refused prompt log-probabilities (echo + logprobs) for request "
                        f"{index}: {e}; choice and log-likelihood requests need a server that returns them"
                    ) from None
                raise BackendError(f"{req.kind} request {index} ({_preview(req)!r}) was refused by "
                                   f"{self.base_url}{path}: {e}") from None
            except _Retryable as e:
                last = str(e)
                if attempt == self.max_retries:
                    break
                if e.retry_after is not None:
                    delay = e.retry_after
                else:
                    delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt))
                self._sleep(delay)
        raise BackendError(f"{req.kind} request {index} ({_preview(req)!r}) failed after {self.max_retries + 1} "
                           f"attempts at {self.base_url}{path}; last error: {last}")

    def _run(self, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run jobs with bounded concurrency; results in order; the first failure is raised after all end."""
        results: list[Any] = [None] * len(jobs)
        errors: list[tuple[int, BaseException]] = []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(jobs)))) as pool:
            futures = [pool.submit(job) for job in jobs]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below with the partial results
                    errors.append((i, e))
        if errors:
            err = errors[0][1]
            if isinstance(err, BackendError):
                err.partial = results  # type: ignore[attr-defined]
                if len(errors) > 1:
                    err.args = (f"{err.args[0]} (and {len(errors) - 1} more failed requests)",)
            raise err
        return results

    # -- generation ------------------------------------------------------------------------------------------
    def _sampling(self, req: GenerateRequest, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": req.max_tokens, "temperature": req.temperature,
                                "top_p": req.top_p, "n": n}
        if req.stop:
            body["stop"] = list(req.stop[:MAX_OPENAI_STOPS])
        seed = self.seed if self.seed is not None else req.seed
        body["seed"] = seed
        body.update(self.extra_body)
        return body

    def _gen_body(self, req: GenerateRequest) -> tuple[str, dict[str, Any]]:
        body = self._sampling(req, req.n)
        if self.endpoint == "completions":
            body["prompt"] = self.chat_format.prompt(req.messages, req.assistant_prefix)
            return "/completions", body
        msgs = [{"role": m.role, "content": m.content} for m in req.messages]
        if req.assistant_prefix:
            if not self.assistant_prefill:
                raise UnsupportedRequest(
                    "the chat endpoint cannot continue an assistant prefix; use endpoint='completions' or "
                    "assistant_prefill=True (for servers that accept a final partial assistant message)")
            msgs.append({"role": "assistant", "content": req.assistant_prefix})
            body.setdefault("continue_final_message", True)
            body.setdefault("add_generation_prompt", False)
        body["messages"] = msgs
        return "/chat/completions", body

    def _parse_generation(self, req: GenerateRequest, chat: bool) -> Callable[[dict[str, Any]], Generation]:
        def parse(data: dict[str, Any]) -> Generation:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != req.n:
                raise ValueError(f"expected {req.n} choices, got {len(choices)}")
            texts, reasons = [], []
            for c in choices:
                text = c["message"]["content"] if chat else c["text"]
                if not isinstance(text, str):
                    raise TypeError("choice text is not a string")
                cut, hit = cut_at_stop(text, req.stop)
                server = c.get("finish_reason")
                if hit or isinstance(c.get("stop_reason"), str):
                    reason = "stop"
                elif server == "length":
                    reason = "length"
                else:
                    reason = "eos"
                texts.append(cut)
                reasons.append(reason)
            usage = data.get("usage") or {}
            per = int(usage.get("completion_tokens") or 0) // max(1, req.n)
            return Generation(tuple(texts), tuple(reasons), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=tuple([per] * req.n))
        return parse

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        jobs = []
        for i, req in enumerate(requests):
            path, body = self._gen_body(req)
            parse = self._parse_generation(req, path == "/chat/completions")
            jobs.append(lambda i=i, req=req, path=path, body=body, parse=parse: self._call(i, req, path, body, parse))
        return self._run(jobs)

    # -- prompt log-probabilities ----------------------------------------------------------------------------
    def _echo(self, index: int, req: Any, prompt: str, continuation: str) -> tuple[list[float], bool]:
        """Log-probs of the tokens covering ``continuation`` after ``prompt``, and whether each was the top
        token, from ``/completions`` with ``echo``."""
        text = prompt + continuation
        body = {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True,
                "logprobs": 1, **self.extra_body}

        def parse(data: dict[str, Any]) -> tuple[list[float], bool]:
            lp = data["choices"][0]["logprobs"]
            if lp is None:
                raise UnsupportedRequest(f"{self.base_url}/completions returned no logprobs for request {index}")
            tokens, offsets, lps = lp["tokens"], lp["text_offset"], lp["token_logprobs"]
            tops = lp.get("top_logprobs") or [None] * len(tokens)
            if not (len(tokens) == len(offsets) == len(lps)):
                raise ValueError("logprobs arrays differ in length")
            out, greedy = [], True
            for k, off in enumerate(offsets):
                end = offsets[k + 1] if k + 1 < len(offsets) else off + len(tokens[k])
                if off >= len(text):  # the generated token(s) after the echo
                    break
                if end <= len(prompt):
                    continue
                if lps[k] is None:
                    raise ValueError(f"no log-probability for prompt token {k}")
                out.append(float(lps[k]))
                top = tops[k]
                if top:
                    greedy = greedy and max(top, key=top.get) == tokens[k]
            if not out:
                raise ValueError("no token covers the continuation")
            return out, greedy

        return self._call(index, req, "/completions", body, parse)

    def choose(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        jobs, owners = [], []
        for i, req in enumerate(requests):
            prompt = self.chat_format.prompt(req.messages, req.assistant_prefix)
            for choice in req.choices:
                jobs.append(lambda i=i, req=req, prompt=prompt, choice=choice: self._echo(i, req, prompt, choice))
                owners.append(i)
        flat = self._run(jobs)
        per: list[list[float]] = [[] for _ in requests]
        for i, (lps, _) in zip(owners, flat):
            per[i].append(lps[0])  # the first token of the choice, as it follows the prompt
        return [ChoiceResult(tuple(x)) for x in per]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        jobs = [lambda i=i, req=req: self._echo(i, req, self.chat_format.prompt(req.messages, req.assistant_prefix),
                                                req.continuation) for i, req in enumerate(requests)]
        return [LoglikelihoodResult(float(sum(lps)), len(lps), greedy) for lps, greedy in self._run(jobs)]
