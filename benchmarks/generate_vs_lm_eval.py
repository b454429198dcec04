"""GSM8K 8-shot chain-of-thought generation: camels' HF backend vs lm-evaluation-harness's HF backend.

Setup (both sides identical):

* real GSM8K test questions (``$CAMELS_REALDATA/gsm8k`` or ``../shared/realdata/gsm8k``), the first
  ``--questions`` of camels' seeded sample (seed 42), each with camels' 8-shot CoT prompt (the study's
  exemplars: about 1,500 tokens shared by every prompt, then the question);
* one random-init LLaMA of about 1M parameters (seed 0) with the tiny byte-level tokenizer of
  :mod:`camels.tiny`, saved to a temporary folder and loaded from there by both sides, float32, CPU;
* greedy decoding, the same stop strings (the GSM8K task's, for a plain model) and the same maximum of new
  tokens (``--max-tokens``) on both sides. The script checks that both sides tokenize every prompt to the
  same ids; lm-evaluation-harness gets camels' rendered prompt texts through ``HFLM.generate_until``.

camels runs at its defaults (``HFBackend(model)``). lm-evaluation-harness runs at batch sizes 1, 4 and 16
and its fastest is the reference. The machine may be shared: each lm-eval run is followed by a camels run,
and camels' median counts. Outputs are compared text by text (lm-evaluation-harness drops special tokens
when it decodes; camels keeps them, so they are removed from camels' text before comparing).

Output ends with one line: ``speedup=... agreement=... camels_qps=... lm_eval_best_qps=...``.
Run: ``.venv/bin/python benchmarks/generate_vs_lm_eval.py [--questions 64] [--max-tokens 128]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from _common import build_eval_model, realdata

SPECIALS = ("<s>", "</s>", "<pad>", "<unk>")


def camels_requests(backend, data: Path, questions: int, max_tokens: int):
    from camels.evals.runner import request_context
    from camels.evals.tasks.gsm8k import GSM8K

    task = GSM8K(shots=8, cot=True, max_tokens=max_tokens)
    items = task.load(data).items[:questions]
    ctx = request_context(backend)
    return [task.requests(it, ctx)[0] for it in items]


def run_camels(model_dir: Path, data: Path, questions: int, max_tokens: int):
    from camels.backends.hf import HFBackend

    backend = HFBackend(str(model_dir), device="cpu")
    requests = camels_requests(backend, data, questions, max_tokens)
    t0 = time.perf_counter()
    out = backend.generate(requests)
    elapsed = time.perf_counter() - t0
    return [g.texts[0] for g in out], requests, elapsed, backend


def run_lm_eval(model_dir: Path, contexts: list[str], gen_kwargs: dict, batch_size: int):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
    reqs = [Instance(request_type="generate_until", doc={}, arguments=(c, dict(gen_kwargs)), idx=0)
            for c in contexts]
    t0 = time.perf_counter()
    out = lm.generate_until(reqs, disable_tqdm=True)
    return out, time.perf_counter() - t0, lm


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def strip_specials(text: str) -> str:
    for s in SPECIALS:
        text = text.replace(s, "")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--lm-eval-batch-sizes", default="1,4,16")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(args.threads)
    data = realdata("gsm8k", what="GSM8K files")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny-llama"
        n_params = build_eval_model(model_dir)
        print(f"model: random-init LLaMA, {n_params:,} parameters, float32, CPU, {torch.get_num_threads()} threads")
        texts_c, requests, t_c, backend = run_camels(model_dir, data, args.questions, args.max_tokens)
        n = len(texts_c)
        contexts = [backend.prompt_text(r) for r in requests]
        stops = sorted({s for r in requests for s in r.stop} | {s for s in backend.chat_format.stop_strings if s})
        gen_kwargs = {"until": stops, "max_gen_toks": args.max_tokens, "do_sample": False, "temperature": 0.0}
        lengths = [len(backend.encode(c)) for c in contexts]
        st = backend.stats
        print(f"questions: {n}; prompt tokens {min(lengths)}-{max(lengths)}; stops {stops!r}; "
              f"max new tokens {args.max_tokens}; camels batch size {backend.batch_size}, "
              f"{sum(len(t) for t in texts_c) / n:.0f} characters per output on average")
        print(f"camels: {n / t_c:.2f} q/s ({t_c:.2f}s); prefill tokens run {st['forward_tokens']:,} "
              f"(decoding steps included), prompt tokens reused {st['prefix_tokens_reused']:,}")
        camels_times, pair_ratios, lm_runs = [t_c], [], {}
        same_ids = None
        for bs in [int(x) for x in args.lm_eval_batch_sizes.split(",")]:
            texts_l, t_l, lm = run_lm_eval(model_dir, contexts, gen_kwargs, bs)
            if same_ids is None:
                same_ids = sum(lm.tok_encode(c) == backend.encode(c) for c in contexts)
                print(f"prompt token ids identical on both sides for {same_ids}/{n} prompts")
            lm_runs[bs] = (texts_l, t_l)
            print(f"lm-eval: bs={bs} {n / t_l:.2f} q/s ({t_l:.2f}s); same outputs as camels: "
                  f"{sum(strip_specials(a) == b for a, b in zip(texts_c, texts_l))}/{n}")
            again, _, t_again, _ = run_camels(model_dir, data, args.questions, args.max_tokens)
            camels_times.append(t_again)
            pair_ratios.append(t_l / t_again)
            print(f"camels: {n / t_again:.2f} q/s ({t_again:.2f}s); same outputs as its first run: {again == texts_c}")
    best_bs = min(lm_runs, key=lambda b: lm_runs[b][1])
    texts_l, t_l = lm_runs[best_bs]
    t_c = median(camels_times)
    agree = sum(strip_specials(a) == b for a, b in zip(texts_c, texts_l)) / n
    print(f"lm-eval best batch size {best_bs}; camels median of {len(camels_times)} runs; paired ratios (lm-eval "
          f"run / the camels run right after it): {', '.join(f'{r:.1f}' for r in pair_ratios)}")
    print(f"speedup={t_l / t_c:.1f} agreement={agree:.3f} camels_qps={n / t_c:.2f} lm_eval_best_qps={n / t_l:.2f} "
          f"questions={n} max_new_tokens={args.max_tokens} prompt_ids_match={same_ids / n:.3f} "
          f"paired_speedup_median={median(pair_ratios):.1f}")


if __name__ == "__main__":
    main()
