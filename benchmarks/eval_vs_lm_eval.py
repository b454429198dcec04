"""5-shot MMLU: camels' HF backend vs lm-evaluation-harness's HF backend, same model, same prompts, one run.

Setup (both sides identical):

* the real MMLU files (``$CAMELS_REALDATA/mmlu`` or ``../shared/realdata/mmlu``), a fixed subset of five
  subjects (723 test questions), the first five dev rows of each subject as exemplars;
* one random-init LLaMA of about 1M parameters (seed 0) and the tiny byte-level tokenizer of
  :mod:`camels.tiny`, saved to a temporary folder and loaded from there by both sides, on the CPU, in
  float32 and then in bfloat16 (both sides in the same dtype);
* the same prompt text: camels' MMLU task builds the requests; the lm-evaluation-harness task is defined
  in this script over the same local CSV files (a ``multiple_choice`` task whose ``doc_to_text`` writes
  camels' item format, with the subject header as description and the dev split as ``first_n`` shots).
  Before timing, the script checks that every lm-evaluation-harness context equals camels' prompt text.

camels runs at its defaults (``HFBackend(model, dtype=...)``: batch size, prefix reuse and block size as
shipped). lm-evaluation-harness runs at batch sizes 1, 4 and 16 and its fastest is the reference. The
machine may be shared: each lm-eval run is followed by a camels run, and camels' median counts.

Measured: the predicted letter of every question on both sides (agreement), and questions per second
of the evaluation proper (request building + model calls; model loading and CSV reading excluded on both
sides). Output: one line per dtype,
``dtype=... speedup=... agreement=... camels_qps=... lm_eval_best_qps=... scoring_path=... ceiling=...``.

``ceiling`` is the most any exact prefix-sharing method could gain over the lm-eval run measured here
with this model's kernels: lm-eval's time divided by the time of the least exact work (every distinct
prompt-prefix token once, attending to each of its predecessors once), priced by a cost per token and a
cost per attention score fitted on plain causal forwards of the same model, dtype and threads
(:func:`fit_costs`). ``token_ratio`` and ``score_ratio`` are lm-eval's tokens and causal attention scores
over that least work.
Run: ``.venv/bin/python benchmarks/eval_vs_lm_eval.py [--dtypes float32,bfloat16] [--lm-eval-batch-sizes 1,4,16]``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile
import time
from pathlib import Path

from _common import build_eval_model, realdata

SUBJECTS = ("abstract_algebra", "anatomy", "astronomy", "college_physics", "marketing")
LETTERS = ("A", "B", "C", "D")


# -- camels side ------------------------------------------------------------------------------------------
def camels_items(data: Path):
    """camels' MMLU task: items and a function item -> ChoiceRequest."""
    from camels.evals.tasks.mmlu import MMLU

    task = MMLU(shots=5, subjects=SUBJECTS)
    items = task.load(data).items
    return items, (lambda item: task.requests(item)[0]), (lambda item: item.data["answer"])


def camels_contexts(backend, items, make_request) -> list[tuple[int, ...]]:
    """The token ids every question's choices are scored after (the prompt, as camels splits it)."""
    from camels.backends.tokens import split_choices_shared

    requests = [make_request(it) for it in items]
    prompts = [backend.prompt_text(r) for r in requests]
    splits = split_choices_shared(backend.tokenizer, prompts, [r.choices for r in requests])
    return [tuple(split[0][0]) for split in splits]


def run_camels(model_dir: Path, data: Path, dtype: str):
    """camels at its defaults (only the dtype chosen, as on the lm-eval side)."""
    from camels.backends.hf import HFBackend

    backend = HFBackend(str(model_dir), device="cpu", dtype=dtype)
    items, make_request, gold = camels_items(data)
    t0 = time.perf_counter()
    requests = [make_request(it) for it in items]
    results = backend.choose(requests)
    elapsed = time.perf_counter() - t0
    preds = {it.id: LETTERS[r.best] for it, r in zip(items, results)}
    prompts = {it.id: req.messages[0].content for it, req in zip(items, requests)}
    golds = {it.id: LETTERS[gold(it)] for it in items}
    return preds, prompts, golds, elapsed, backend


# -- lm-evaluation-harness side --------------------------------------------------------------------------
DOC_TO_TEXT = ("{{question}}\nA. {{choice0}}\nB. {{choice1}}\nC. {{choice2}}\nD. {{choice3}}\nAnswer:")


def lm_eval_task_configs(data: Path) -> list[dict]:
    """One lm-evaluation-harness task per subject over the same CSV files (all columns read as strings)."""
    from datasets import Features, Value

    features = Features({k: Value("string") for k in ("question", "choice0", "choice1", "choice2", "choice3")}
                        | {"answer": Value("int64")})
    configs = []
    for s in SUBJECTS:
        configs.append({
            "task": f"camels_bench_mmlu_{s}",
            "dataset_path": "csv",
            "dataset_kwargs": {
                "data_files": {"test": str(data / "test" / f"{s}_test.csv"), "dev": str(data / "dev" / f"{s}_dev.csv")},
                "features": features,
                "keep_default_na": False,
            },
            "test_split": "test",
            "fewshot_split": "dev",
            "fewshot_config": {"sampler": "first_n"},
            "num_fewshot": 5,
            "output_type": "multiple_choice",
            # the study's header: two spaces after "about" (camels' default, header="study")
            "description": f"The following are multiple choice questions (with answers) about  {' '.join(s.split('_'))}.\n\n",
            "doc_to_text": DOC_TO_TEXT,
            "doc_to_choice": list(LETTERS),
            "doc_to_target": "answer",
            "target_delimiter": " ",
            "fewshot_delimiter": "\n\n",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        })
    return configs


def lm_eval_tasks(data: Path):
    from lm_eval.tasks import TaskManager, get_task_dict

    return get_task_dict(lm_eval_task_configs(data), TaskManager())


def lm_eval_contexts(task_dict) -> dict[str, str]:
    out = {}
    for name, task in task_dict.items():
        subject = name.removeprefix("camels_bench_mmlu_")
        for i, doc in enumerate(task.test_docs()):
            out[f"{subject}_test:{i}"] = task.fewshot_context(doc, 5)
    return out


def run_lm_eval(model_dir: Path, data: Path, batch_size: int, dtype: str):
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device="cpu", dtype=dtype)
    task_dict = lm_eval_tasks(data)
    t0 = time.perf_counter()
    out = evaluator.evaluate(lm, task_dict, log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    elapsed = time.perf_counter() - t0
    preds = {}
    for name, samples in out["samples"].items():
        subject = name.removeprefix("camels_bench_mmlu_")
        for s in samples:
            lls = [r[0] for r in s["filtered_resps"]]
            preds[f"{subject}_test:{s['doc_id']}"] = LETTERS[max(range(4), key=lambda k: lls[k])]
    return preds, elapsed


def count_rows(data: Path) -> dict[str, int]:
    counts = {}
    for s in SUBJECTS:
        with open(data / "test" / f"{s}_test.csv", encoding="utf-8", newline="") as f:
            counts[s] = sum(1 for _ in csv.reader(f)) - 1
    return counts


def least_work(contexts: list[tuple[int, ...]]) -> dict[str, int]:
    """Tokens and causal attention scores (query-key pairs) of scoring every context whole, and of the least
    exact prefix-sharing computation: each distinct prefix token once (the nodes of the contexts' trie)."""
    from camels.backends.tokens import common_prefix_len

    whole_tokens = sum(len(c) for c in contexts)
    whole_scores = sum(len(c) * (len(c) + 1) // 2 for c in contexts)
    least_tokens = least_scores = 0
    prev: tuple[int, ...] = ()
    for c in sorted(set(contexts)):
        shared = common_prefix_len(prev, c)
        least_tokens += len(c) - shared
        least_scores += (len(c) * (len(c) + 1) - shared * (shared + 1)) // 2
        prev = c
    return {"whole_tokens": whole_tokens, "whole_scores": whole_scores,
            "least_tokens": least_tokens, "least_scores": least_scores}


def fit_costs(model_dir: Path, dtype: str, repeats: int = 5) -> tuple[float, float]:
    """Seconds per causal attention score and per token of plain forwards of the model (no padding, no
    cache, PyTorch's causal attention), fastest of ``repeats``: the token cost from 64 rows of 32 tokens
    (attention negligible), the score cost from one row of 2,048 tokens minus its tokens' cost.
    Returns ``(a, b)``."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).eval()
    gen = torch.Generator().manual_seed(0)

    def fastest(rows: int, n: int) -> float:
        ids = torch.randint(0, model.config.vocab_size, (rows, n), generator=gen)
        times = []
        with torch.inference_mode():
            for _ in range(repeats + 1):  # the first is a warm-up
                t0 = time.perf_counter()
                model(input_ids=ids, use_cache=False, logits_to_keep=1)
                times.append(time.perf_counter() - t0)
        return min(times[1:])

    b = fastest(64, 32) / (64 * 32)
    n = 2048
    a = max(0.0, fastest(1, n) - b * n) / (n * (n + 1) / 2)
    return a, b


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def compare(model_dir: Path, data: Path, dtype: str, lm_batch_sizes: list[int]) -> str:
    preds_c, prompts_c, golds, t_c, backend = run_camels(model_dir, data, dtype)
    n = len(preds_c)
    # the same prompt text on both sides, checked question by question
    contexts = lm_eval_contexts(lm_eval_tasks(data))
    same_prompt = sum(contexts.get(k) == v for k, v in prompts_c.items())
    print(f"[{dtype}] prompt text identical for {same_prompt}/{n} questions")
    if same_prompt != n:
        bad = next(k for k, v in prompts_c.items() if contexts.get(k) != v)
        print(f"first difference at {bad}:\ncamels:  {prompts_c[bad][-300:]!r}\nlm_eval: {contexts.get(bad, '')[-300:]!r}")
    st, details = backend.stats, backend.info.details
    total = st["forward_tokens"] + st["prefix_tokens_reused"]
    print(f"[{dtype}] camels: batch size {details['batch_size']}, scoring path {details['scoring_path']} "
          f"(blocks of {details['block_size']}), {n / t_c:.1f} q/s ({t_c:.2f}s); forward tokens "
          f"{st['forward_tokens']:,}, reused {st['prefix_tokens_reused']:,} ({st['prefix_tokens_reused'] / total:.0%})")
    camels_times, pair_ratios, lm_runs = [t_c], [], {}
    for bs in lm_batch_sizes:
        preds_l, t_l = run_lm_eval(model_dir, data, bs, dtype)
        lm_runs[bs] = (preds_l, t_l)
        print(f"[{dtype}] lm-eval: bs={bs} {len(preds_l) / t_l:.1f} q/s ({t_l:.2f}s)")
        preds_again, _, _, t_again, _ = run_camels(model_dir, data, dtype)
        camels_times.append(t_again)
        pair_ratios.append(t_l / t_again)
        print(f"[{dtype}] camels: {n / t_again:.1f} q/s ({t_again:.2f}s); same predictions as its first run: "
              f"{preds_again == preds_c}")
    best_bs = min(lm_runs, key=lambda b: lm_runs[b][1])
    preds_l, t_l = lm_runs[best_bs]
    t_c = median(camels_times)
    work = least_work(camels_contexts(backend, *camels_items(data)[:2]))
    a, b = fit_costs(model_dir, dtype)
    least_t = a * work["least_scores"] + b * work["least_tokens"]
    token_ratio = work["whole_tokens"] / work["least_tokens"]
    score_ratio = work["whole_scores"] / work["least_scores"]
    print(f"[{dtype}] least exact work: {work['least_tokens']:,} tokens, {work['least_scores']:,} scores (whole prompts: "
          f"{work['whole_tokens']:,} and {work['whole_scores']:,}); fitted cost {b * 1e6:.2f} us/token, {a * 1e9:.2f} "
          f"ns/score, so {least_t:.2f}s at best, of which attention {a * work['least_scores'] / least_t:.0%}")
    agree = sum(preds_c[k] == preds_l.get(k) for k in preds_c) / n
    acc_c = sum(preds_c[k] == golds[k] for k in preds_c) / n
    acc_l = sum(preds_l.get(k) == golds[k] for k in preds_c) / n
    print(f"[{dtype}] accuracy (random model): camels {acc_c:.4f}, lm-eval {acc_l:.4f}; lm-eval best batch size "
          f"{best_bs}; camels median of {len(camels_times)} runs; paired ratios (lm-eval run / the camels run "
          f"right after it): {', '.join(f'{r:.1f}' for r in pair_ratios)}")
    return (f"dtype={dtype} speedup={t_l / t_c:.1f} agreement={agree:.3f} camels_qps={n / t_c:.1f} "
            f"lm_eval_best_qps={n / t_l:.1f} questions={n} prompt_match={same_prompt / n:.3f} "
            f"paired_speedup_median={median(pair_ratios):.1f} scoring_path={details['scoring_path']} "
            f"ceiling={t_l / least_t:.1f} token_ratio={token_ratio:.2f} score_ratio={score_ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--lm-eval-batch-sizes", default="1,4,16")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch CPU threads for both sides (default: one per core, torch's own default)")
    args = ap.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(args.threads)
    data = realdata("mmlu", "data", "mmlu", what="MMLU files")
    counts = count_rows(data)
    print(f"subjects: {', '.join(f'{s} ({n})' for s, n in counts.items())}; questions: {sum(counts.values())}")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny-llama"
        n_params = build_eval_model(model_dir)
        print(f"model: random-init LLaMA, {n_params:,} parameters, CPU, {torch.get_num_threads()} threads")
        for dtype in args.dtypes.split(","):
            lines.append(compare(model_dir, data, dtype, [int(x) for x in args.lm_eval_batch_sizes.split(",")]))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
