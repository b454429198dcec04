"""The engine with the real HF backend on a tiny random LLaMA: the CLI end to end, resume, batch size."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.cli import main as camels_main  # noqa: E402
from camels.core.results import RunManifest, read_predictions  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from camels.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", seed=3)


def _eval(model, out, fixtures, *extra):
    return camels_main([
        "eval", "--model", str(model), "--backend", "hf", "--tasks", "mmlu_5shot,gsm8k_cot",
        "--data", f"mmlu_5shot={fixtures / 'evals' / 'mmlu_hendrycks'}",
        "--data", f"gsm8k_cot={fixtures / 'evals' / 'gsm8k'}",
        "--task-option", "gsm8k_cot.n=4", "--task-option", "gsm8k_cot.max_tokens=8",
        "--backend-option", "device=cpu", "--output", str(out), *extra])


@pytest.mark.slow
def test_eval_with_hf_backend_is_resumable_and_batch_size_free(tiny_model, fixtures, tmp_path):
    out = tmp_path / "runs"
    assert _eval(tiny_model, out, fixtures, "--batch-size", "1") == 0
    mmlu = out / "tiny-llama" / "mmlu_5shot"
    preds = read_predictions(mmlu / "predictions.jsonl")
    assert [p.id for p in preds][:2] == ["astronomy_test:0", "astronomy_test:1"] and len(preds) == 8
    assert all(p.output in "ABCD" and len(p.results[0].logprobs) == 4 for p in preds)
    manifest = RunManifest.read(mmlu / "manifest.json")
    assert manifest.counts["computed"] == 8 and manifest.backend["name"] == "hf"
    assert len(manifest.backend["fingerprint"]) == 64 and "torch" in manifest.versions
    gsm = read_predictions(out / "tiny-llama" / "gsm8k_cot" / "predictions.jsonl")
    assert len(gsm) == 4 and all(p.results[0].completion_tokens[0] <= 8 for p in gsm)

    # a second run with another batch size: every request comes from the cache, same files
    before = {t: (out / "tiny-llama" / t / "predictions.jsonl").read_bytes() for t in ("mmlu_5shot", "gsm8k_cot")}
    assert _eval(tiny_model, out, fixtures, "--batch-size", "8") == 0
    assert RunManifest.read(mmlu / "manifest.json").counts["computed"] == 0
    after = {t: (out / "tiny-llama" / t / "predictions.jsonl").read_bytes() for t in before}
    assert after == before

    # a fresh cache with batch size 8 computes the same answers (the backend's batch-size invariance)
    assert _eval(tiny_model, tmp_path / "runs8", fixtures, "--batch-size", "8") == 0
    fresh = read_predictions(tmp_path / "runs8" / "tiny-llama" / "mmlu_5shot" / "predictions.jsonl")
    assert [p.output for p in fresh] == [p.output for p in preds]
    for a, b in zip(fresh, preds):
        assert a.results[0].logprobs == pytest.approx(b.results[0].logprobs, abs=1e-4)
    metrics = json.loads((mmlu / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == 8 and metrics["primary_metric"] == "accuracy"
