"""predictions.jsonl byte for byte the same whatever --batch-size and --chunk-size (issue: batch invariance).

Every run starts from a fresh cache, so each one really computes every request with its own batch and chunk
sizes: MMLU (choice requests, 5-shot prompts sharing a prefix per subject) and TruthfulQA MC
(log-likelihood requests) on a tiny random LLaMA, float32 and bfloat16.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.cli import main as camels_main  # noqa: E402
from camels.core.results import RunManifest  # noqa: E402

TASKS = ("mmlu_5shot", "truthfulqa_mc")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from camels.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", seed=5)


def _run(model, out, fixtures, realdata, dtype, batch, chunk):
    assert camels_main([
        "eval", "--model", str(model), "--backend", "hf", "--tasks", ",".join(TASKS),
        "--data", f"mmlu_5shot={fixtures / 'evals' / 'mmlu_hendrycks'}",
        "--data", f"truthfulqa_mc={realdata / 'truthfulqa'}", "--limit", "6",
        "--backend-option", "device=cpu", "--backend-option", f"dtype={dtype}",
        "--batch-size", str(batch), "--chunk-size", str(chunk), "--output", str(out)]) == 0
    folder = out / "tiny-llama"
    manifests = {t: RunManifest.read(folder / t / "manifest.json") for t in TASKS}
    for m in manifests.values():  # a fresh cache: everything computed in this run
        assert m.counts["cache_hits"] == 0 and m.counts["computed"] > 0
        assert m.backend["details"]["scoring_path"] == "prefix_blocks" and m.backend["details"]["dtype"] == dtype
    return {t: (folder / t / "predictions.jsonl").read_bytes() for t in TASKS}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_predictions_byte_identical_across_batch_and_chunk_sizes(tiny_model, fixtures, realdata, tmp_path, dtype):
    sizes = [(1, 64), (16, 5), (3, 1)]
    runs = [_run(tiny_model, tmp_path / f"b{b}c{c}", fixtures, realdata, dtype, b, c) for b, c in sizes]
    assert b'"logprobs"' in runs[0]["mmlu_5shot"] and b'"logprob"' in runs[0]["truthfulqa_mc"]
    for (b, c), run in zip(sizes[1:], runs[1:]):
        for task in TASKS:
            assert run[task] == runs[0][task], f"{task}: batch size {b}, chunk size {c} changed predictions.jsonl"
