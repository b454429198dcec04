"""Data pipeline throughput and memory: convert -> validate -> mix at 50k, 100k and 200k conversations.

    python benchmarks/data_throughput.py               # 50k, 100k, 200k (a few minutes on 2 cores)
    python benchmarks/data_throughput.py --sizes 5000  # smoke run

What is measured
* Input: generated Dolly-format raw JSONL (``instruction``, ``context``, ``response``, ``category``) with
  a long-tailed length distribution close to the real file (context empty two times in three).
* Stages, each in its own subprocess so that one size or stage cannot inflate another's peak memory:
  ``convert`` (raw Dolly -> unified JSONL + manifest, :func:`camels.data.convert.convert`), ``validate``
  (every converted line parsed and checked, :func:`camels.data.records.iter_conversations`), ``mix`` (a
  two-source mixture of the converted file: 75% down-sampled + 125% up-sampled, seeded shuffle, manifest;
  :func:`camels.data.mixture.mix`), and, side by side with ``mix``, ``mix_inmemory``: the usual script
  approach that loads every record into a list, samples, shuffles and dumps (the same counts, but no
  validation); then ``decontaminate`` (13-grams of the user turns against the real GSM8K, MMLU and BBH
  files when the real-data folder is there, else skipped) and ``stats`` (whitespace tokens).
* Figures: conversations per second (conversations the stage reads, or writes for the mixes, / wall
  seconds; ``convs_per_s`` of the summary = conversations / seconds of convert + validate + mix) and peak resident
  memory (``ru_maxrss``) of the stage's process, absolute and above the process's memory right before the
  stage began (imports done): the growth is what scales with the data.

The machine is shared by several engineers, so timings are those of one run; memory figures are stable.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import realdata_root

WORDS = ("the of and to in is that it for you was with on as have be at by this from or an but not what all "
         "were when we there can more if will one about how which their time would so them some make like "
         "into than then its two way our could write explain list summarize describe river mountain city "
         "history science music language model data plant water energy market school health story").split()
STAGES = ("convert", "validate", "mix", "mix_inmemory", "decontaminate", "stats")


def _text(rng: random.Random, mean_words: int) -> str:
    n = max(1, int(rng.expovariate(1 / mean_words)))
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            row = {
                "instruction": _text(rng, 14),
                "context": _text(rng, 90) if rng.random() < 0.33 else "",
                "response": _text(rng, 70),
                "category": rng.choice(["open_qa", "closed_qa", "brainstorming", "summarization"]),
            }
            f.write(json.dumps(row) + "\n")


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_stage(stage: str, workdir: Path, n: int) -> dict:
    """Inside the child: run one stage, return timing and memory."""
    import os

    os.environ["CAMELS_PROGRESS"] = "0"
    from camels.data.convert import convert
    from camels.data.mixture import mix, mixture_from_dict
    from camels.data.records import iter_conversations

    raw = workdir / f"dolly_raw_{n}.jsonl"
    conv = workdir / f"dolly_{n}.jsonl"
    base = _rss_now_mb()
    t0 = time.perf_counter()
    if stage == "convert":
        convert("dolly", str(raw), conv, progress=False)
        done = n
    elif stage == "validate":
        done = sum(1 for _ in iter_conversations(conv))
    elif stage == "mix":
        m = mixture_from_dict({"name": "bench", "seed": 1, "sources": {
            "down": {"path": str(conv), "fraction": 0.75}, "up": {"path": str(conv), "fraction": 1.25}}})
        res = mix(m, workdir / f"mix_{n}.jsonl", show_progress=False)
        done = 2 * n  # input conversations read (the file is one input of each of the two sources)
        assert res.written == 2 * n
    elif stage == "decontaminate":
        from camels.data.decontam import decontaminate, resolve_benchmarks

        found = resolve_benchmarks([str(realdata_root())])
        bench = {k: found[k] for k in ("gsm8k", "mmlu", "bbh")}
        res = decontaminate(conv, bench, output=workdir / f"clean_{n}.jsonl", show_progress=False)
        done = res.report.to_dict()["conversations"]
    elif stage == "stats":
        from camels.data.stats import compute_stats

        done = compute_stats([conv], show_progress=False).total.instances
    elif stage == "mix_inmemory":
        rng = random.Random(1)
        rows = [json.loads(line) for line in open(conv, encoding="utf-8")]
        out = rng.sample(rows, int(0.75 * len(rows) + 0.5))
        k = int(1.25 * len(rows) + 0.5)
        out += rows * (k // len(rows)) + rng.sample(rows, k % len(rows))
        rng.shuffle(out)
        with open(workdir / f"mixmem_{n}.jsonl", "w", encoding="utf-8") as f:
            for r in out:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
        done = 2 * n
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"stage": stage, "n": n, "seconds": seconds, "convs_per_s": done / seconds, "peak_mb": peak,
            "growth_mb": max(0.0, peak - base)}


def child(stage: str, workdir: Path, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", stage, "--workdir", str(workdir), "--n", str(n)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"stage {stage} n={n} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50000,100000,200000")
    ap.add_argument("--child", choices=STAGES)
    ap.add_argument("--workdir")
    ap.add_argument("--n", type=int)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_stage(a.child, Path(a.workdir), a.n)))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="camels-data-bench-") as tmp:
        workdir = Path(tmp)
        for n in sizes:
            generate(workdir / f"dolly_raw_{n}.jsonl", n)
            for stage in STAGES:
                if stage == "decontaminate" and not (realdata_root() / "gsm8k").is_dir():
                    continue
                r = child(stage, workdir, n)
                results.append(r)
                print(f"{stage:13} n={n:>7}  {r['seconds']:7.2f} s  {r['convs_per_s']:9.0f} conv/s  "
                      f"peak {r['peak_mb']:7.1f} MB  growth {r['growth_mb']:7.1f} MB", flush=True)
            for f in workdir.glob(f"*_{n}*"):
                f.unlink()
    by = {(r["stage"], r["n"]): r for r in results}
    lo, hi = sizes[0], sizes[-1]
    pipeline_s = sum(by[(s, hi)]["seconds"] for s in ("convert", "validate", "mix"))
    print("note: the machine is shared by several engineers; timings are those of this one run.")
    print(
        f"convs_per_s={hi / pipeline_s:.0f} "
        f"convert_cps={by[('convert', hi)]['convs_per_s']:.0f} validate_cps={by[('validate', hi)]['convs_per_s']:.0f} "
        f"mix_cps={by[('mix', hi)]['convs_per_s']:.0f} inmemory_mix_cps={by[('mix_inmemory', hi)]['convs_per_s']:.0f} "
        f"peak_mb_{lo // 1000}k={by[('mix', lo)]['peak_mb']:.0f} peak_mb_{hi // 1000}k={by[('mix', hi)]['peak_mb']:.0f} "
        f"mem_growth={by[('mix', hi)]['peak_mb'] / by[('mix', lo)]['peak_mb']:.2f} "
        f"inmemory_peak_mb_{hi // 1000}k={by[('mix_inmemory', hi)]['peak_mb']:.0f} "
        f"inmemory_mem_growth={by[('mix_inmemory', hi)]['peak_mb'] / by[('mix_inmemory', lo)]['peak_mb']:.2f} "
        f"convert_peak_mb_{hi // 1000}k={by[('convert', hi)]['peak_mb']:.0f} "
        f"stats_cps={by[('stats', hi)]['convs_per_s']:.0f}"
        + (f" decontam_cps={by[('decontaminate', hi)]['convs_per_s']:.0f} "
           f"decontam_peak_mb_{hi // 1000}k={by[('decontaminate', hi)]['peak_mb']:.0f}"
           if ("decontaminate", hi) in by else "")
    )


if __name__ == "__main__":
    main()
