"""Peak memory per training process against data set size: the token store vs encoding in memory.

    python benchmarks/train_memory.py             # ~2M and ~20M tokens, 2 processes (about 10 min here)
    python benchmarks/train_memory.py --quick     # ~0.2M and ~2M tokens
    python benchmarks/train_memory.py --sides store   # camels only

What is measured
* Launch: ``accelerate launch`` with the shipped ``configs/accelerate/ddp.yaml``, 2 processes, on the CPU
  (``ACCELERATE_USE_CPU=1``: gloo), exactly as a user starts a multi-GPU run.
* Data: generated conversations (the long-tailed lengths of ``train_vs_trl.py``: median ~140 tokens,
  mean ~230) in two sizes, about 2M and 20M tokens with the tiny tokenizer of ``camels.tiny``.
* Model: the tiny 2-layer LLaMA of ``camels.tiny``; a few optimizer steps (``--steps``). The data set size,
  not the model, is what changes between the runs, so growth in memory is the data's.
* Sides: ``store``, camels as it trains (the first process encodes once into the memory-mapped token
  store; every process reads lengths from its index and tokens from the map), and ``memory``, each
  process encoding the whole data set into Python objects (``train(cfg, dataset=encode_files(...))``, how
  camels read its data before the store), as the reference.
* Figures: peak resident set size (``ru_maxrss``) of each process at the end of its run, the larger of the
  two ranks; encode time (the store's, written by the encoding process; for ``memory`` the time each rank
  spent encoding). Runs of the sides are interleaved (``--repeats``: medians of the encode times).

Summary line: ``rss_mb_small= rss_mb_large= growth=`` for the store (growth = large / small; the goal is
at most 1.2), the same for the in-memory reference, and the encode times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DDP = HERE.parent / "src" / "camels" / "configs" / "accelerate" / "ddp.yaml"


def _worker(side: str, config: str) -> None:
    """One rank: train, then print its peak RSS (and, for the in-memory side, its encode time)."""
    from camels.train.config import TrainConfig
    from camels.train.loop import train

    cfg = TrainConfig.load(config)
    encode_s = None
    if side == "memory":
        from transformers import AutoTokenizer

        from camels.core.template import chat_format_for_tokenizer
        from camels.train.encode import encode_files

        tok = AutoTokenizer.from_pretrained(cfg.model)
        t = time.perf_counter()
        ds = encode_files(cfg.train_files, tok, chat_format_for_tokenizer(tok, cfg.chat_format), cfg.max_length)
        encode_s = time.perf_counter() - t
        res = train(cfg, dataset=ds)
    else:
        res = train(cfg)
    rank = int(os.environ.get("RANK", "0"))
    result = {"rank": rank, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "encode_s": encode_s, "tokens": res.data["tokens"], "conversations": res.data["conversations"],
              "store": res.data.get("token_store")}
    (Path(cfg.output_dir) / f"rss-rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(path: Path, target_tokens: int, seed: int) -> None:
    """Generated conversations of about ``target_tokens`` tokens (4.4 characters per token, measured)."""
    sys.path.insert(0, str(HERE))
    from train_vs_trl import make_conversations

    n = max(1, int(target_tokens / 227))  # mean tokens per conversation with the tiny tokenizer
    with open(path, "w", encoding="utf-8") as f:
        for c in make_conversations(n, seed):
            f.write(json.dumps(c) + "\n")


def run(side: str, workdir: Path, model_dir: Path, data: Path, name: str, steps: int) -> dict:
    out = workdir / f"out-{side}-{name}"
    config = workdir / f"{side}-{name}.yaml"
    config.write_text(
        f"model: {model_dir}\ntrain_files: [{data}]\noutput_dir: {out}\ndtype: fp32\nmax_length: 2048\n"
        f"effective_batch_size: 16\nmax_steps: {steps}\nlogging_every: 1000\nexport: false\n"
        f"token_cache: {workdir / 'cache' / side / name}\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP), "--num_processes", "2",
           "--main_process_port", str(_free_port()), str(Path(__file__).resolve()), "--worker", side, str(config)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CAMELS_PROGRESS": "0",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{side} {name} failed:\n{proc.stderr[-4000:]}")
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rss-rank*.json"))]
    assert len(ranks) == 2, proc.stdout[-2000:]
    if side == "store":
        store = Path(ranks[0]["store"])
        encode_s = json.loads((store / "build.json").read_text())["encode_s"]
    else:
        encode_s = max(r["encode_s"] for r in ranks)
    return {"rss_mb": max(r["rss_mb"] for r in ranks), "rss_by_rank": [round(r["rss_mb"]) for r in ranks],
            "encode_s": encode_s, "tokens": ranks[0]["tokens"], "conversations": ranks[0]["conversations"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=float, default=2e6, help="tokens of the small data set")
    p.add_argument("--large", type=float, default=2e7, help="tokens of the large data set")
    p.add_argument("--quick", action="store_true", help="0.2M and 2M tokens")
    p.add_argument("--sides", default="store,memory", help="store, memory or both")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps of each run")
    p.add_argument("--repeats", type=int, default=1, help="interleaved runs of each side and size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        _worker(*a.worker)
        return
    if a.quick:
        a.small, a.large = 2e5, 2e6
    sides = [s.strip() for s in a.sides.split(",") if s.strip()]
    from camels.tiny import save_tiny_model

    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="camels-mem-") as tmp:
        workdir = Path(tmp)
        model_dir = save_tiny_model(workdir / "model", seed=0)
        data = {}
        for name, tokens in (("small", a.small), ("large", a.large)):
            data[name] = workdir / f"{name}.jsonl"
            make_data(data[name], int(tokens), a.seed)
        for rep in range(a.repeats):
            for side in sides:
                for name in ("small", "large"):
                    r = run(side, workdir, model_dir, data[name], f"{name}-{rep}", a.steps)
                    results.setdefault((side, name), []).append(r)
                    print(f"  run {rep + 1}/{a.repeats} {side:6} {name:5} {r['tokens']:>10} tokens "
                          f"{r['conversations']:>7} conversations: peak RSS per rank {r['rss_by_rank']} MB, "
                          f"encode {r['encode_s']:.1f}s", file=sys.stderr, flush=True)

    print(f"{'side':7} {'data':6} {'tokens':>10} {'convs':>7} {'peak RSS MB (max rank)':>22} {'encode s':>9}")
    summary = {}
    for side in sides:
        for name in ("small", "large"):
            rs = results[(side, name)]
            rss = max(r["rss_mb"] for r in rs)
            enc = statistics.median(r["encode_s"] for r in rs)
            summary[(side, name)] = (rss, enc)
            print(f"{side:7} {name:6} {rs[0]['tokens']:>10} {rs[0]['conversations']:>7} {rss:22.0f} {enc:9.1f}")
    print("2 processes (accelerate launch, shipped DDP config, CPU/gloo); peak RSS is the larger rank's; "
          "shared machine")
    parts = []
    if "store" in sides:
        (s_rss, s_enc), (l_rss, l_enc) = summary[("store", "small")], summary[("store", "large")]
        parts.append(f"rss_mb_small={s_rss:.0f} rss_mb_large={l_rss:.0f} growth={l_rss / s_rss:.2f} "
                     f"encode_s_small={s_enc:.1f} encode_s_large={l_enc:.1f}")
    if "memory" in sides:
        (s_rss, _), (l_rss, l_enc) = summary[("memory", "small")], summary[("memory", "large")]
        parts.append(f"memory_rss_mb_small={s_rss:.0f} memory_rss_mb_large={l_rss:.0f} "
                     f"memory_growth={l_rss / s_rss:.2f} memory_encode_s_large={l_enc:.1f}")
    large_tokens = results[(sides[0], "large")][0]["tokens"]
    small_tokens = results[(sides[0], "small")][0]["tokens"]
    print(" ".join(parts) + f" tokens_small={small_tokens} tokens_large={large_tokens} repeats={a.repeats}")


if __name__ == "__main__":
    main()
