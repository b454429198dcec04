"""vLLM backend: the pure parts (parameter mapping, prompts, result mapping) through a fake engine that
answers like vLLM from a tiny model; the real engine only when vllm is installed (GPU machines)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.backends.hf import HFBackend  # noqa: E402
from camels.backends.vllm import VLLMBackend, finish_reason, sampling_params_kwargs  # noqa: E402
from camels.core.requests import ChoiceRequest, GenerateRequest, LoglikelihoodRequest  # noqa: E402
from camels.tiny import tiny_llama, tiny_tokenizer  # noqa: E402


class FakeLLM:
    """Answers ``generate`` like vLLM's offline engine: prompt_logprobs from a tiny model, canned texts."""

    def __init__(self, model, tok, text="one two\nthree</s>"):
        self.model, self.tok, self.text = model, tok, text
        self.seen = []

    def get_tokenizer(self):
        return self.tok

    def generate(self, prompts, params, use_tqdm=False):
        outs = []
        for p, sp in zip(prompts, params):
            self.seen.append((p["prompt_token_ids"], sp))
            ids = p["prompt_token_ids"]
            plp = None
            if sp.get("prompt_logprobs") is not None:
                with torch.no_grad():
                    lp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), -1)
                plp = [None]
                for k in range(1, len(ids)):
                    row = lp[k - 1]
                    rank = int((row > row[ids[k]]).sum()) + 1
                    entry = {ids[k]: SimpleNamespace(logprob=float(row[ids[k]]), rank=rank)}
                    best = int(row.argmax())
                    entry.setdefault(best, SimpleNamespace(logprob=float(row[best]), rank=1))
                    plp.append(entry)
            stop_hit = next((s for s in sp.get("stop", []) if s in self.text), None)
            text = self.text[: self.text.find(stop_hit)] if stop_hit else self.text
            o = SimpleNamespace(index=0, text=text, token_ids=[5, 6, 7], finish_reason="stop" if stop_hit else "length",
                                stop_reason=stop_hit)
            outs.append(SimpleNamespace(prompt_logprobs=plp, outputs=[o] * sp["n"]))
        return outs


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_llama(tok), tok


def test_sampling_params_mapping():
    req = GenerateRequest([("user", "q")], max_tokens=7, stop=("\n\n", "Q:"), temperature=0.8, top_p=0.95, n=4, seed=3)
    k = sampling_params_kwargs(req, ("</s>", "\n\n"))
    assert k == {"n": 4, "temperature": 0.8, "top_p": 0.95, "max_tokens": 7, "stop": ["\n\n", "Q:", "</s>"],
                 "seed": 3, "skip_special_tokens": False, "include_stop_str_in_output": False}
    greedy = sampling_params_kwargs(GenerateRequest([("user", "q")], top_p=0.5))
    assert (greedy["temperature"], greedy["top_p"], greedy["seed"], greedy["stop"]) == (0.0, 1.0, None, [])


def test_finish_reason_mapping():
    req = GenerateRequest([("user", "q")], stop=("\n",))
    assert finish_reason(SimpleNamespace(finish_reason="length", stop_reason=None), req) == "length"
    assert finish_reason(SimpleNamespace(finish_reason="stop", stop_reason="\n"), req) == "stop"
    assert finish_reason(SimpleNamespace(finish_reason="stop", stop_reason=None), req) == "eos"
    assert finish_reason(SimpleNamespace(finish_reason="stop", stop_reason="</s>"), req) == "eos"


def test_prompts_are_token_ids_with_one_bos(tiny):
    model, tok = tiny
    fake = FakeLLM(model, tok)
    b = VLLMBackend("tiny", llm=fake, chat_format="tulu")
    out = b.generate([GenerateRequest([("user", "hi")], stop=("\n",), n=2, temperature=1.0)])
    ids, sp = fake.seen[0]
    assert ids == tok("<|user|>\nhi\n<|assistant|>\n")["input_ids"]  # the tokenizer's own single BOS
    assert ids.count(tok.bos_token_id) == 1 and tok.decode(ids).startswith("<s><|user|>")
    assert sp["stop"][0] == "\n" and "\n<|user|>" in sp["stop"] and sp["seed"] == 0
    assert out[0].texts == ("one two", "one two") and out[0].finish_reasons == ("stop", "stop")
    assert out[0].completion_tokens == (3, 3) and out[0].prompt_tokens == len(ids)


def test_scores_match_hf_backend(tiny):
    model, tok = tiny
    b = VLLMBackend("tiny", llm=FakeLLM(model, tok), chat_format="plain")
    hf = HFBackend(model, tokenizer=tok, device="cpu", chat_format="plain")
    reqs = [ChoiceRequest([("user", f"Question {k}?\nAnswer:")], (" A", " B", " C", " D")) for k in range(4)]
    for x, y in zip(b.choose(reqs), hf.choose(reqs)):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)
    ll = [LoglikelihoodRequest([("user", "The sea is")], " wide and blue"),
          LoglikelihoodRequest([("user", "0 1 2")], " 3")]
    for x, y in zip(b.loglikelihood(ll), hf.loglikelihood(ll)):
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
        assert (x.n_tokens, x.is_greedy) == (y.n_tokens, y.is_greedy)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (GPU-only extra)")
def test_real_engine_greedy_matches_hf(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA device")
    from camels.tiny import save_tiny_model

    path = save_tiny_model(tmp_path / "m")
    req = [GenerateRequest([("user", "hello")], max_tokens=8)]
    v = VLLMBackend(str(path), dtype="float32", gpu_memory_utilization=0.2)
    h = HFBackend(str(path), device="cuda")
    assert v.generate(req)[0].texts == h.generate(req)[0].texts
