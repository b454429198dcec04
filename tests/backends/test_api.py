"""API backend against a real OpenAI-compatible HTTP server on loopback that serves a tiny model.

The server (below, in the test) answers ``/v1/chat/completions`` and ``/v1/completions`` (with ``echo`` and
``logprobs``) from a tiny random LLaMA through the HF backend, and can be told to fail the next calls with
a 429, a 500, a timeout, a malformed body or a body of the wrong shape.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.backends.api import APIBackend, Ledger  # noqa: E402
from camels.backends.base import BackendError, UnsupportedRequest  # noqa: E402
from camels.backends.hf import HFBackend  # noqa: E402
from camels.core.requests import ChoiceRequest, GenerateRequest, LoglikelihoodRequest  # noqa: E402
from camels.tiny import tiny_llama, tiny_tokenizer  # noqa: E402

MODEL = "tiny-llama"


class TinyServer:
    """A minimal OpenAI-compatible server for one tiny model, with injectable faults."""

    def __init__(self, timeout_sleep: float = 4.0) -> None:
        self.tok = tiny_tokenizer()
        self.model = tiny_llama(self.tok, seed=0)
        self.hf = HFBackend(self.model, tokenizer=self.tok, device="cpu", chat_format="plain")
        self.lock = threading.Lock()
        self.faults: list[str] = []
        self.calls = 0
        self.ok_calls = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.timeout_sleep = timeout_sleep
        self.release = threading.Event()  # set: a held "timeout" fault answers at once
        self.memo: dict[tuple[str, str], dict] | None = None  # when a dict: answers kept by request body
        self.support_echo = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls += 1
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, b'{"error": "boom"}')
                if fault == "timeout":
                    server.release.wait(server.timeout_sleep)
                    return self._send(503, b"{}")
                if fault == "malformed":
                    return self._send(200, b'{"choices": [ {"tex')
                if fault == "shape":
                    return self._send(200, b'{"object": "text_completion", "choices": []}')
                key = (self.path, json.dumps(body, sort_keys=True))
                try:
                    with server.lock:  # one model, one forward at a time
                        out = server.memo.get(key) if server.memo is not None else None
                        if out is None:
                            out = server.answer(self.path, body)
                            if server.memo is not None:
                                server.memo[key] = out
                except ValueError as e:
                    return self._send(400, json.dumps({"error": str(e)}).encode())
                with server.lock:
                    server.ok_calls += 1
                    for k in server.usage:
                        server.usage[k] += out["usage"][k]
                self._send(200, json.dumps(out).encode())

            def _send(self, code, payload, headers=None):
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the model side ------------------------------------------------------------------------------------
    def answer(self, path: str, body: dict) -> dict:
        params = GenerateRequest([("user", "x")], max_tokens=body.get("max_tokens", 16),
                                 stop=tuple(body.get("stop") or ()), temperature=body.get("temperature", 0.0),
                                 top_p=body.get("top_p", 1.0), n=body.get("n", 1), seed=body.get("seed", 0))
        if path == "/v1/chat/completions":
            req = GenerateRequest(body["messages"], max_tokens=params.max_tokens, stop=params.stop,
                                  temperature=params.temperature, top_p=params.top_p, n=params.n, seed=params.seed)
            g = self.hf.generate([req])[0]
            choices = [{"index": k, "message": {"role": "assistant", "content": t}, "finish_reason":
                        "length" if r == "length" else "stop"} for k, (t, r) in enumerate(zip(g.texts, g.finish_reasons))]
            return {"choices": choices, "usage": {"prompt_tokens": g.prompt_tokens,
                                                  "completion_tokens": sum(g.completion_tokens)}}
        if path != "/v1/completions":
            raise ValueError(f"unknown path {path}")
        prompt = "<s>" + body["prompt"]  # the server adds its BOS, as real servers do
        if body.get("echo"):
            if not self.support_echo:
                raise ValueError("echo is not supported")
            return self.echo(prompt, body["prompt"])
        g = self.hf.generate_from_prompts([prompt], [params])[0]
        choices = [{"index": k, "text": t, "logprobs": None, "finish_reason": "length" if r == "length" else "stop"}
                   for k, (t, r) in enumerate(zip(g.texts, g.finish_reasons))]
        return {"choices": choices, "usage": {"prompt_tokens": g.prompt_tokens,
                                              "completion_tokens": sum(g.completion_tokens)}}

    def echo(self, full: str, text: str) -> dict:
        enc = self.tok(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        with torch.no_grad():
            lp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), dim=-1)
        tokens, token_lps, tops, text_offset = [], [], [], []
        for k in range(1, len(ids)):  # the BOS has no log-probability and is not echoed
            s, e = offsets[k]
            tokens.append(full[s:e])
            text_offset.append(s - 3)
            token_lps.append(float(lp[k - 1, ids[k]]))
            best = int(lp[k - 1].argmax())
            best_str = full[s:e] if best == ids[k] else self.tok.decode([best])
            tops.append({best_str: float(lp[k - 1, best])})
        nxt = int(lp[-1].argmax())  # one generated token (max_tokens=1)
        tokens.append(self.tok.decode([nxt]))
        text_offset.append(len(text))
        token_lps.append(float(lp[-1, nxt]))
        tops.append({tokens[-1]: token_lps[-1]})
        logprobs = {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": text_offset}
        return {"choices": [{"index": 0, "text": text + tokens[-1], "logprobs": logprobs, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": 1}}


@pytest.fixture(scope="module")
def server():
    s = TinyServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def reset(server):
    server.faults.clear()
    server.support_echo = True
    server.release.clear()
    yield
    server.memo = None
    server.release.set()  # a fault still held answers now, so its handler thread ends


def client(server, **kw):
    opts = dict(base_url=server.url, max_concurrency=4, max_retries=4, timeout=30.0, backoff_base=0.001,
                backoff_max=0.01)
    opts.update(kw)
    return APIBackend(MODEL, **opts)


GEN = [GenerateRequest([("user", p)], max_tokens=6) for p in
       ["Write a short poem", "def add(a, b):", "Give three tips", "The answer is", "hi", "0 1 2 3", "Summarize"]]


def test_chat_generation_in_order_and_ledger(server, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    b = client(server, prices={MODEL: {"prompt": 2.0, "completion": 10.0}}, ledger_path=ledger)
    before = dict(server.usage)
    out = b.generate(GEN)
    want = server.hf.generate(GEN)
    assert [g.texts for g in out] == [g.texts for g in want]
    rows = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert sorted(r["request"] for r in rows) == list(range(len(GEN)))
    pt = sum(g.prompt_tokens for g in want)
    ct = sum(sum(g.completion_tokens) for g in want)
    assert server.usage["prompt_tokens"] - before["prompt_tokens"] == pt
    t = b.ledger.totals()[MODEL]
    assert (t["calls"], t["prompt_tokens"], t["completion_tokens"]) == (len(GEN), pt, ct)
    assert t["cost_usd"] == pytest.approx((pt * 2.0 + ct * 10.0) / 1e6)
    assert sum(r["prompt_tokens"] for r in rows) == pt


def test_faults_are_retried_nothing_lost(server):
    # Real answers are computed once beforehand and then served from memory, so the client's short timeout
    # only ever fires on the "timeout" fault, which holds its answer far longer, however loaded the machine.
    server.memo = {}
    client(server).generate(GEN)
    server.timeout_sleep = 120.0
    b = client(server, timeout=3.0)
    slept = []
    b._sleep = slept.append
    server.faults[:] = ["429", "500", "timeout", "malformed", "shape", "500", "429"]
    calls_before, ok_before = server.calls, server.ok_calls
    out = b.generate(GEN)
    want = server.hf.generate(GEN)
    assert [g.texts for g in out] == [g.texts for g in want]
    assert server.ok_calls - ok_before == len(GEN)
    assert server.calls - calls_before == len(GEN) + 7
    assert b.ledger.totals()[MODEL]["calls"] == len(GEN)  # failed attempts cost nothing in the ledger
    assert slept.count(0.0) == 2  # Retry-After: 0 obeyed for both 429s
    assert len(slept) == 7 and all(0 <= s <= 0.01 for s in slept)


def test_completions_endpoint_matches_local_backend(server):
    b = client(server, endpoint="completions")
    out = b.generate(GEN[:3])
    want = server.hf.generate(GEN[:3])  # plain format, BOS from the server
    assert [g.texts for g in out] == [g.texts for g in want]


def test_choice_and_loglikelihood_via_echo(server):
    b = client(server)
    reqs = [ChoiceRequest([("user", f"Question {k}: is it?\nAnswer:")], (" A", " B", " C", " D")) for k in range(5)]
    server.faults[:] = ["500", "malformed"]
    got = b.choose(reqs)
    want = server.hf.choose(reqs)
    for g, w in zip(got, want):
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
    ll = [LoglikelihoodRequest([("user", "The sea is")], " wide and blue"),
          LoglikelihoodRequest([("user", "def add(a, b):")], "\n    return a + b")]
    got_ll, want_ll = b.loglikelihood(ll), server.hf.loglikelihood(ll)
    for g, w in zip(got_ll, want_ll):
        assert g.logprob == pytest.approx(w.logprob, abs=1e-3)
        assert (g.n_tokens, g.is_greedy) == (w.n_tokens, w.is_greedy)


def test_server_without_echo_is_unsupported(server):
    server.support_echo = False
    with pytest.raises(UnsupportedRequest, match="echo"):
        client(server).choose([ChoiceRequest([("user", "q")], (" A", " B"))])


def test_retries_exhausted_is_a_clear_error(server):
    b = client(server, max_retries=2)
    b._sleep = lambda s: None
    server.faults[:] = ["500"] * 3
    with pytest.raises(BackendError) as e:
        b.generate(GEN[:1])
    msg = str(e.value)
    assert "generate request 0" in msg and "'Write a short poem'" in msg
    assert "failed after 3 attempts" in msg and "HTTP 500" in msg
    assert e.value.partial == [None]


def test_partial_results_kept_when_one_request_fails(server):
    b = client(server, max_retries=1, max_concurrency=1)
    b._sleep = lambda s: None
    server.faults[:] = ["500", "500"]  # the first request fails twice, the others succeed
    with pytest.raises(BackendError, match="request 0") as e:
        b.generate(GEN[:3])
    partial = e.value.partial
    assert partial[0] is None and [g.texts for g in partial[1:]] == [g.texts for g in server.hf.generate(GEN[1:3])]


def test_connection_refused_retried_then_error():
    b = APIBackend(MODEL, base_url="http://127.0.0.1:9/v1", max_retries=1, timeout=0.2)
    b._sleep = lambda s: None
    with pytest.raises(BackendError, match="failed after 2 attempts.*connection error"):
        b.generate(GEN[:1])


def test_api_key_from_env_and_not_in_info(monkeypatch):
    monkeypatch.setenv("CAMELS_TEST_KEY", "sk-secret")
    b = APIBackend(MODEL, base_url="http://127.0.0.1:9/v1", api_key_env="CAMELS_TEST_KEY")
    assert b._headers()["Authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in json.dumps(b.info.details) + b.info.fingerprint
    monkeypatch.delenv("CAMELS_TEST_KEY")
    assert "Authorization" not in b._headers()


def test_chat_prefix_needs_prefill_option():
    b = APIBackend(MODEL, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(UnsupportedRequest, match="assistant prefix"):
        b._gen_body(GenerateRequest([("user", "q")], assistant_prefix="The answer is:"))
    path, body = APIBackend(MODEL, base_url="http://x/v1", assistant_prefill=True)._gen_body(
        GenerateRequest([("user", "q")], assistant_prefix="The answer is:", stop=("a", "b", "c", "d", "e")))
    assert path == "/chat/completions" and body["messages"][-1] == {"role": "assistant", "content": "The answer is:"}
    assert body["stop"] == ["a", "b", "c", "d"] and body["continue_final_message"] is True


def test_ledger_costs():
    led = Ledger({"m": {"prompt": 1.0, "completion": 3.0}})
    led.add("m", "/x", {"prompt_tokens": 1000, "completion_tokens": 10}, request=0, attempts=1)
    led.add("other", "/x", None, request=1, attempts=2)
    t = led.totals()
    assert t["m"]["cost_usd"] == pytest.approx(0.00103)
    assert t["other"]["calls_without_usage"] == 1 and t["other"]["cost_usd"] == 0.0
