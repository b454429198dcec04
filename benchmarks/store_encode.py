"""Encoding the token store with one process against two processes of one machine, each a share.

    python benchmarks/store_encode.py              # ~2M tokens, 3 interleaved repeats of each side
    python benchmarks/store_encode.py --tokens 2e5 --repeats 1   # smoke run

What is measured
* Launch: ``accelerate launch`` with the shipped ``configs/accelerate/ddp.yaml`` on the CPU
  (``ACCELERATE_USE_CPU=1``), ``--num_processes 1`` or ``2``; each process loads the tokenizer and calls
  :func:`camels.train.store.open_or_build` with its share (:func:`camels.train.store.local_group`), as
  ``camels train`` does before its first step. Every run writes a new store (its own folder).
* Data: generated conversations (the long-tailed lengths of ``train_vs_trl.py``), about ``--tokens`` tokens
  with the tiny tokenizer of ``camels.tiny``; ``max_length`` 2048.
* Figure: the build's wall seconds as the store's ``build.json`` records them (``encode_s``: from the
  joiner's start, counting the records, encoding, waiting for the other share and joining, to the store
  in place; process start-up and imports are not in it). Sides are interleaved; medians over ``--repeats``.
  The two stores are also compared byte for byte (``identical``).

Summary line: ``encode_s_1proc= encode_s_2proc= encode_speedup=`` (1-process seconds / 2-process seconds),
``tokens=``, ``data_mb=`` (the data file's size, what ``encode_processes: auto`` decides by),
``repeats=``, ``identical=``. The speed-up can only be as good as the free cores: on a
machine whose cores other work is using, it is lower than on an idle one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DDP = HERE.parent / "src" / "camels" / "configs" / "accelerate" / "ddp.yaml"
MAX_LENGTH = 2048


def _worker(root: str, tokenizer_dir: str, data: str) -> None:
    """One process: its share of the store (the whole store when it runs alone)."""
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from camels.core.template import chat_format_for_tokenizer
    from camels.train.store import local_group, open_or_build

    accelerator = Accelerator(cpu=True)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    open_or_build(root, [data], tok, chat_format_for_tokenizer(tok, "tulu"), MAX_LENGTH,
                  build=accelerator.is_local_main_process, shard=local_group(accelerator), say=lambda _: None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, root: Path, tokenizer_dir: Path, data: Path) -> dict:
    from camels.train.store import BUILD, FILES

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP),
           "--num_processes", str(processes), "--main_process_port", str(_free_port()),
           str(Path(__file__).resolve()), "--worker", str(root), str(tokenizer_dir), str(data)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CAMELS_PROGRESS": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{processes}-process encode failed:\n{proc.stderr[-4000:]}")
    (store,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    build = json.loads((store / BUILD).read_text())
    meta = json.loads((store / "meta.json").read_text())
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((store / name).read_bytes())
    return {"encode_s": build["encode_s"], "encoded_by": build["encoded_by"], "tokens": meta["tokens"],
            "sha256": digest.hexdigest()}


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # one process of a launched run
        _worker(*sys.argv[2:5])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=float, default=2e6, help="tokens of the generated data set")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of each side")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    sys.path.insert(0, str(HERE))
    from camels.tiny import tiny_tokenizer
    from train_memory import make_data

    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="camels-encode-") as tmp:
        workdir = Path(tmp)
        tiny_tokenizer().save_pretrained(workdir / "tokenizer")
        data = workdir / "data.jsonl"
        make_data(data, int(a.tokens), a.seed)
        data_mb = data.stat().st_size / 1e6
        for rep in range(a.repeats):
            for processes in (1, 2):
                r = run(processes, workdir / f"stores-{processes}-{rep}", workdir / "tokenizer", data)
                results[processes].append(r)
                print(f"  run {rep + 1}/{a.repeats} {processes} process(es): {r['tokens']} tokens in "
                      f"{r['encode_s']:.2f}s, records by process {r['encoded_by']}", file=sys.stderr, flush=True)
    one = statistics.median(r["encode_s"] for r in results[1])
    two = statistics.median(r["encode_s"] for r in results[2])
    identical = len({r["sha256"] for rs in results.values() for r in rs}) == 1
    print(f"{'processes':>9} {'encode s (median)':>18}")
    print(f"{1:>9} {one:18.2f}\n{2:>9} {two:18.2f}")
    print(f"encode_s_1proc={one:.2f} encode_s_2proc={two:.2f} encode_speedup={one / two:.2f} "
          f"tokens={results[1][0]['tokens']} data_mb={data_mb:.2f} repeats={a.repeats} "
          f"identical={str(identical).lower()}")


if __name__ == "__main__":
    main()
