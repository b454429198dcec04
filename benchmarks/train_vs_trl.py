"""camels vs TRL's SFTTrainer: same tiny LLaMA, same conversations, same optimizer steps, on this CPU.

    python benchmarks/train_vs_trl.py            # full run: 3 interleaved repeats, medians (~20 min here)
    python benchmarks/train_vs_trl.py --repeats 1 --trl-configs padded:1,padding_free:2   # shorter
    python benchmarks/train_vs_trl.py --quick    # smoke run

What is compared
* Model: a ~1M-parameter LLaMA from ``camels.tiny`` (hidden 128, 4 layers, vocab 512), same seed, fp32.
* Data: generated conversations with a learnable rule (the assistant reverses, sorts or repeats the
  user's words) and a long-tailed length distribution, like real instruction data. TRL gets them in its
  ``messages`` format with a chat template that renders exactly the Tülu text camels trains on
  (``{% generation %}`` markers around assistant content + EOS, ``assistant_only_loss=True``); the script
  checks that TRL's token ids and loss masks equal camels' before timing anything.
* Optimizer steps: the same conversations in each step. camels draws one seeded permutation per epoch;
  TRL is given the data already in that order (epochs concatenated, one TRL epoch) with
  ``train_sampling_strategy="sequential"``, and ``per_device_train_batch_size x gradient_accumulation_steps``
  equals camels' ``effective_batch_size``. Both normalise the loss by the trained tokens of the whole step.
  TRL's BFD packing builds its own rows, so its steps hold different conversations (noted in the table).
* Hyperparameters: AdamW (fused on both sides), lr, linear schedule, warmup ratio, weight decay 0,
  grad-norm clip 1.0, 2 epochs.
* TRL configurations: its fastest for a CPU, not its defaults: fp32, no gradient checkpointing, no
  tracker, rare logging; padded with small micro-batches (less padding: on this data micro-batches of 8
  or 16 conversations are 3-7x slower than 1-2), padding-free (``padding_free=True``: one row per
  micro-batch with a block-diagonal mask that transformers builds from the position ids) and BFD-packed.
  The fastest one is the reference of the summary line.
* Threads: both systems get the same number of torch threads (``--threads``; default: one per core, torch's
  own default, which is what a user gets). Any other job on the machine slows multi-threaded runs down a
  lot (OpenMP threads wait on each other), so run this on an otherwise idle machine; ``--threads 1`` is
  the less sensitive setting.
* Rows: camels packs each step into rows of ``max_length`` tokens (its default; ``--camels-row``).
* Figures: trained tokens per second (assistant tokens that carry loss; all non-pad tokens are shown as
  well) over the training loop only (camels' ``loop_s``; for TRL a callback from ``on_train_begin`` to
  ``on_train_end``); peak resident memory of the process and its growth during training; final loss =
  mean token loss of the exported model over the whole data set, computed by one shared function.

Each run is its own subprocess (clean peak-memory figures, no shared caches), and the configurations are
run in turn, ``--repeats`` times, so that a busy minute on the shared machine hits every system; the
table gives medians and the spread of trained tokens/s across repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The Tülu format as a Jinja template with TRL's generation markers (assistant content + EOS trained).
TULU_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ m['content'] }}{{ eos_token }}"
    "{% endgeneration %}{% if not loop.last %}\n{% endif %}"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MODEL = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2)
WORDS = ("red blue green cat dog sun moon tree rock sea sky fox owl bee ant cup pen box map key "
         "one two three four five six seven eight nine ten big small hot cold up down left right").split()


# -- data ----------------------------------------------------------------------------------------------


def make_conversations(n: int, seed: int) -> list[dict[str, Any]]:
    """Conversations whose answers follow from the question, with long-tailed lengths like instruction data
    (3 to 450 words a side: median ~140 tokens, mean ~230, longest ~1,800)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = max(3, min(450, int(rng.lognormvariate(3.0, 1.0))))
        words = [rng.choice(WORDS) for _ in range(k)]
        task = rng.choice(("reverse", "sort", "repeat"))
        answer = {"reverse": words[::-1], "sort": sorted(words), "repeat": words}[task]
        out.append({"dataset": "bench", "id": f"b{i}", "messages": [
            {"role": "user", "content": f"{task}: {' '.join(words)}"},
            {"role": "assistant", "content": " ".join(answer)}]})
    return out


def prepare(workdir: Path, n: int, seed: int) -> tuple[Path, Path]:
    from camels.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer(chat_template=TULU_TEMPLATE)
    model = tiny_llama(tok, seed=seed, **MODEL)
    model_dir = workdir / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = workdir / "data.jsonl"
    data.write_text("".join(json.dumps(c) + "\n" for c in make_conversations(n, seed)))
    return model_dir, data


# -- the shared measurements ---------------------------------------------------------------------------


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def encode(model_dir: Path, data: Path, max_length: int) -> Any:
    from transformers import AutoTokenizer

    from camels.core.template import chat_format_for_tokenizer
    from camels.train.encode import encode_files

    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok, encode_files([data], tok, chat_format_for_tokenizer(tok, "tulu"), max_length)


def final_loss(model_path: Path, examples: list[Any], pad_id: int) -> float:
    """Mean token loss of a saved model over all conversations (same function for both systems)."""
    import torch
    from transformers import AutoModelForCausalLM

    from camels.train.loop import loss_sum
    from camels.train.pack import padded_batch

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(examples), 32):
            b = padded_batch(examples[k:k + 32], pad_id)
            total += loss_sum(model, b).item()
            count += b.n_trained
    return total / count


# -- the runners (one per subprocess) -----------------------------------------------------------------


def run_camels(a: argparse.Namespace) -> dict[str, Any]:
    """camels at its defaults: ``train(cfg)`` reads the files through the token store, as ``camels train`` does;
    only what both systems share (model, data, step size, schedule, clipping) is set."""
    import torch

    from camels.train.config import TrainConfig
    from camels.train.loop import train

    torch.set_num_threads(a.threads)
    out = Path(a.workdir) / "out-camels"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run folder for every repeat (camels never overwrites one)
    cfg = TrainConfig.from_dict(dict(
        model=str(a.model_dir), train_files=[str(a.data)], output_dir=str(out), dtype="fp32",
        max_length=a.max_length, max_tokens_per_batch=a.camels_row or None, effective_batch_size=a.batch,
        learning_rate=a.lr, warmup_ratio=a.warmup, max_grad_norm=1.0, num_epochs=a.epochs, seed=a.seed,
        logging_every=10_000, compile=a.compile,
    ))
    rss0 = rss_mb()
    res = train(cfg)
    rss1 = rss_mb()
    tok, ds = encode(a.model_dir, a.data, a.max_length)  # for the shared final-loss function only
    return dict(system="camels", config=f"defaults, packed rows<={cfg.tokens_per_row}",
                steps=res.steps, seconds=res.loop_s, trained_tokens=res.trained_tokens, tokens=res.tokens,
                peak_mb=rss1, peak_growth_mb=rss1 - rss0,
                final_loss=final_loss(res.final_model, ds.examples, tok.pad_token_id), same_steps=True)


def _LoopClock() -> Any:
    """A callback timing TRL's training loop only (from its first step's setup to its end), the same span
    as camels' ``loop_s``: model loading, tokenisation and trainer construction are left out on both sides."""
    from transformers import TrainerCallback

    class LoopClock(TrainerCallback):
        t0 = t1 = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t1 = time.perf_counter()

        @property
        def seconds(self) -> float:
            return self.t1 - self.t0

    return LoopClock()


def run_trl(a: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from camels.train.loop import epoch_order, n_targets

    torch.set_num_threads(a.threads)
    tok, ds = encode(a.model_dir, a.data, a.max_length)
    convs = [json.loads(x) for x in Path(a.data).read_text().splitlines()]
    # The data in camels' step order: epoch permutations concatenated, trained as one sequential TRL epoch.
    order = [i for e in range(a.epochs) for i in epoch_order(len(convs), a.seed, e)]
    rows = [{"messages": convs[i]["messages"]} for i in order]
    mode = a.trl_mode
    micro = a.trl_micro
    if mode == "packed":
        # BFD rows of max_length tokens; as many rows per step as it takes to hold ~`batch` conversations.
        mean_len = sum(len(e) for e in ds.examples) / len(ds.examples)
        micro = 1
        accum = max(1, round(a.batch * mean_len / a.max_length))
    else:
        if a.batch % micro:
            raise SystemExit(f"--trl-configs: micro-batch {micro} does not divide --batch {a.batch}")
        accum = a.batch // micro
    cfg = SFTConfig(
        output_dir=str(Path(a.workdir) / f"out-trl-{mode}"), per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum, learning_rate=a.lr, lr_scheduler_type="linear",
        warmup_steps=a.warmup, weight_decay=0.0, max_grad_norm=1.0, num_train_epochs=1, seed=a.seed,
        bf16=False, fp16=False, gradient_checkpointing=False, logging_steps=10_000, report_to="none",
        save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        train_sampling_strategy="sequential", assistant_only_loss=True,
        max_length=None if mode == "padding_free" else a.max_length,
        padding_free=mode == "padding_free", packing=mode == "packed",
    )
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation="sdpa")
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
    if mode != "packed":  # the same tokens and the same loss mask as camels, or the comparison is void
        first = trainer.train_dataset[0]
        ref = ds.examples[order[0]]
        assert list(first["input_ids"]) == list(ref.input_ids), "TRL tokenized differently"
        assert list(first["labels"]) == list(ref.labels), "TRL masks differently"
    clock = _LoopClock()
    trainer.add_callback(clock)
    rss0 = rss_mb()
    trainer.train()
    seconds = clock.seconds
    rss1 = rss_mb()
    final = Path(a.workdir) / f"final-trl-{mode}"
    trainer.save_model(str(final))
    trained = sum(n_targets(ds.examples[i]) for i in order)
    tokens = sum(len(ds.examples[i]) for i in order)
    return dict(system="trl", config=f"{mode} micro={micro} accum={accum}", micro=micro,
                steps=trainer.state.global_step,
                seconds=seconds, trained_tokens=trained, tokens=tokens, peak_mb=rss1, peak_growth_mb=rss1 - rss0,
                final_loss=final_loss(final, ds.examples, tok.pad_token_id), same_steps=mode != "packed")


# -- the driver ----------------------------------------------------------------------------------------


def child(a: argparse.Namespace, which: str, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", which, *extra]
    env = {**os.environ, "CAMELS_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(a.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{which} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (128 conversations, 1 repeat)")
    p.add_argument("--n", type=int, default=256, help="conversations")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="conversations per optimizer step (both systems)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.03)
    p.add_argument("--max-length", type=int, default=2048, help="the study's value; no conversation is cut")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads per system (default: one per core; 1 is less sensitive to other jobs "
                        "on the machine)")
    p.add_argument("--repeats", type=int, default=3, help="runs of every configuration, interleaved; medians")
    p.add_argument("--camels-row", type=int, default=0,
                   help="camels: tokens per packed micro-batch row (default 0: camels' default, max_length)")
    p.add_argument("--trl-configs", default="padded:1,padded:2,padding_free:2,packed",
                   help="TRL variants: MODE:MICRO_BATCH (padded, padding_free) or packed (BFD)")
    p.add_argument("--compile", action="store_true", help="camels: torch.compile the model")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--trl-mode", help=argparse.SUPPRESS)
    p.add_argument("--trl-micro", type=int, default=8, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.n, a.repeats = 128, 1
    if a.child:
        a.model_dir, a.data = Path(a.workdir) / "model", Path(a.workdir) / "data.jsonl"
        res = run_camels(a) if a.child == "camels" else run_trl(a)
        print(json.dumps(res))
        return

    common = ["--n", str(a.n), "--epochs", str(a.epochs), "--batch", str(a.batch), "--lr", str(a.lr),
              "--warmup", str(a.warmup), "--max-length", str(a.max_length), "--seed", str(a.seed),
              "--threads", str(a.threads), "--camels-row", str(a.camels_row)]
    if a.compile:
        common.append("--compile")
    variants: list[tuple[str, list[str]]] = [("camels", [])]
    for spec in a.trl_configs.split(","):
        mode, _, micro = spec.partition(":")
        variants.append(("trl", ["--trl-mode", mode, "--trl-micro", micro or "1"]))
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(variants))}
    with tempfile.TemporaryDirectory(prefix="camels-bench-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, a.n, a.seed)
        common += ["--workdir", str(workdir)]
        for rep in range(a.repeats):  # interleaved, so that a busy minute on the machine hits every system
            for i, (which, extra) in enumerate(variants):
                r = child(a, which, [*common, *extra])
                r["tps"] = r["trained_tokens"] / r["seconds"]
                runs[i].append(r)
                print(f"  run {rep + 1}/{a.repeats} {which:6} {r['config']:32} {r['tps']:8.0f} trained tok/s",
                      file=sys.stderr, flush=True)

    results = []
    for i in range(len(variants)):
        rs = runs[i]
        r = dict(rs[0])
        r["tps"] = statistics.median(x["tps"] for x in rs)
        r["seconds"] = statistics.median(x["seconds"] for x in rs)
        r["peak_mb"] = max(x["peak_mb"] for x in rs)
        r["peak_growth_mb"] = max(x["peak_growth_mb"] for x in rs)
        r["spread"] = (max(x["tps"] for x in rs) - min(x["tps"] for x in rs)) / r["tps"]
        if len({x["final_loss"] for x in rs}) != 1:
            print(f"warning: {r['config']}: final loss differs between repeats: {[x['final_loss'] for x in rs]}",
                  file=sys.stderr)
        results.append(r)

    print(f"{'system':7} {'config':32} {'steps':>5} {'loop s':>7} {'trained tok/s':>13} {'spread':>6} "
          f"{'tok/s':>7} {'peak MB':>8} {'+MB':>5} {'final loss':>10}")
    for r in results:
        print(f"{r['system']:7} {r['config']:32} {r['steps']:>5} {r['seconds']:7.1f} {r['tps']:13.0f} "
              f"{r['spread']:6.0%} {r['tokens'] / r['seconds']:7.0f} {r['peak_mb']:8.0f} {r['peak_growth_mb']:5.0f} "
              f"{r['final_loss']:10.4f}{'' if r['same_steps'] else '  (own packed steps)'}")
    cam = results[0]
    best = max(results[1:], key=lambda r: r["tps"])
    rel = abs(cam["final_loss"] - best["final_loss"]) / best["final_loss"]
    print(f"medians of {a.repeats} interleaved run(s) on a shared machine; spread = (max - min) / median; "
          f"{a.threads} thread(s) per system")
    print(f"speedup={cam['tps'] / best['tps']:.2f} camels_tok_s={cam['tps']:.0f} trl_best_tok_s={best['tps']:.0f} "
          f"trl_best_config={best['config'].split()[0]}:{best['micro']} loss_camels={cam['final_loss']:.4f} "
          f"loss_trl={best['final_loss']:.4f} loss_rel_diff={rel:.4f} peak_mb_camels={cam['peak_mb']:.0f} "
          f"peak_mb_trl={best['peak_mb']:.0f} threads={a.threads} repeats={a.repeats}")


if __name__ == "__main__":
    main()
