"""Win rate and standard error: ``camels judge summarize`` vs the alpaca-eval package, same files, one run.

The reference is ``alpaca_eval.metrics.get_winrate`` (alpaca-eval 0.6.6). That package needs
``setuptools<81`` and many dependencies, so it lives in its own virtual environment and runs in a
subprocess here::

    python3.11 -m venv /work/venvs/alpaca_eval
    /work/venvs/alpaca_eval/bin/pip install "setuptools<81" alpaca-eval==0.6.6

Files compared:

* ``real``: the real annotations of tulu-2-dpo-7b against text_davinci_003 by alpaca_eval_gpt4
  (``$CAMELS_REALDATA/alpaca_eval/results/tulu-2-dpo-7b/alpaca_eval_gpt4/annotations.json``);
* ``edited``: the same file with, by row index, every 7th preference set to a tie (1.5), every 11th to
  the legacy tie 0, every 13th to null (unparsed) and every 17th to a weighted value 1 + (i % 10) / 10
  (in that order; a later rule overwrites an earlier one), written to a temporary file. It exercises
  ties, unparsed verdicts and probability-weighted preferences, which the real file does not have.

Length-controlled win rate (``alpaca_eval.metrics.get_length_controlled_winrate``, length_controlled_v1) on
the real file: its fit needs alpaca_eval's ``df_gamed.csv`` from the hub, which this machine cannot reach,
so both sides get the same synthetic stand-in written by :func:`synthetic_gamed` (seeded: per-instruction
difficulties and two "gamed" models' annotations); alpaca_eval's download is redirected to that file. The
figure is not AlpacaEval's real LC win rate; the check is that both computations agree.

Each side prints its figures; the script checks they agree to 4 decimals and ends with one line:
``match=... real_win_rate=... real_standard_error=... edited_win_rate=... edited_standard_error=...
synthetic_lc_win_rate=... synthetic_lc_standard_error=...``.
Run: ``.venv/bin/python benchmarks/alpaca_eval_metrics.py [--alpaca-eval-python PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("win_rate", "standard_error", "discrete_win_rate", "n_wins", "n_losses", "n_ties", "n_total")
# alpaca_eval's names for the counts camels calls n_losses and n_ties
PEER_NAMES = {"n_losses": "n_wins_base", "n_ties": "n_draws"}

PEER_SCRIPT = r"""
import json, sys, logging
logging.disable(logging.WARNING)
from alpaca_eval.metrics import get_winrate
from alpaca_eval.metrics import glm_winrate
out = {}
files, gamed = json.loads(sys.argv[1]), sys.argv[2]
for name, path in files.items():
    m = get_winrate(json.load(open(path)))
    out[name] = {k: (float(v) if v == v else None) for k, v in m.items()}
glm_winrate.hf_hub_download = lambda **kw: gamed  # the synthetic stand-in instead of the hub's file
lc = glm_winrate.get_length_controlled_winrate(json.load(open(files["real"])), save_weights_dir=None)
out["lc"] = {k: float(lc[k]) for k in ("length_controlled_winrate", "lc_standard_error")}
print(json.dumps(out))
"""


def synthetic_gamed(path: Path, n: int = 805, seed: int = 0) -> None:
    """A stand-in for alpaca_eval's df_gamed.csv: difficulty per instruction, two gamed models' rows."""
    import csv
    import math
    import random

    rng = random.Random(seed)
    difficulty = [rng.gauss(0, 1) for _ in range(n)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "model", "preference", "std_delta_len", "instruction_difficulty", "not_gamed_baseline"])
        for model, shift in (("gamed_verbose", 1.0), ("gamed_concise", -1.0)):
            for i in range(n):
                delta = rng.gauss(-shift, 1)
                p = 1 / (1 + math.exp(-(0.8 * math.tanh(-delta) + 0.5 * difficulty[i] + rng.gauss(0, 0.5))))
                w.writerow([i, model, round(p, 6), round(delta, 6), round(difficulty[i], 6), False])


def real_file() -> Path:
    base = Path(os.environ.get("CAMELS_REALDATA", ROOT.parent / "shared" / "realdata"))
    path = base / "alpaca_eval" / "results" / "tulu-2-dpo-7b" / "alpaca_eval_gpt4" / "annotations.json"
    if not path.is_file():
        sys.exit(f"annotations not found at {path} (set CAMELS_REALDATA)")
    return path


def edited_rows(rows: list[dict]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if i % 7 == 0:
            row["preference"] = 1.5
        if i % 11 == 0:
            row["preference"] = 0
        if i % 13 == 0:
            row["preference"] = None
        if i % 17 == 0:
            row["preference"] = 1 + (i % 10) / 10
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpaca-eval-python", default="/work/venvs/alpaca_eval/bin/python",
                    help="python of the virtual environment that has alpaca-eval installed")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from camels.judge.annotations import summarize_file

    real = real_file()
    with tempfile.TemporaryDirectory() as tmp:
        edited = Path(tmp) / "annotations_edited.json"
        edited.write_text(json.dumps(edited_rows(json.loads(real.read_text()))))
        gamed = Path(tmp) / "df_gamed.csv"
        synthetic_gamed(gamed)
        files = {"real": str(real), "edited": str(edited)}
        ours = {name: summarize_file(path) for name, path in files.items()}
        ours_lc = summarize_file(real, lc_data=str(gamed))
        proc = subprocess.run([args.alpaca_eval_python, "-c", PEER_SCRIPT, json.dumps(files), str(gamed)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"alpaca_eval side failed:\n{proc.stderr[-2000:]}")
        peer = json.loads(proc.stdout.strip().splitlines()[-1])

    match = True
    for name in files:
        print(f"[{name}] {'metric':<18} {'camels':>14} {'alpaca_eval':>14}")
        for key in KEYS:
            a, b = ours[name][key], peer[name][PEER_NAMES.get(key, key)]
            same = round(a, 4) == round(b, 4)
            match &= same
            print(f"[{name}] {key:<18} {a:>14.6f} {b:>14.6f}{'' if same else '  DIFFERENT'}")
        print(f"[{name}] n_unparsed (camels only): {ours[name]['n_unparsed']}")
    for key, peer_key in (("length_controlled_win_rate", "length_controlled_winrate"),
                          ("lc_standard_error", "lc_standard_error")):
        a, b = ours_lc[key], peer["lc"][peer_key]
        same = a is not None and round(a, 4) == round(b, 4)
        match &= same
        print(f"[synthetic lc] {key:<26} {a if a is None else f'{a:.6f}'} {b:.6f}{'' if same else '  DIFFERENT'}")
    print(f"match={str(match).lower()} real_win_rate={ours['real']['win_rate']:.4f} "
          f"real_standard_error={ours['real']['standard_error']:.4f} "
          f"edited_win_rate={ours['edited']['win_rate']:.4f} "
          f"edited_standard_error={ours['edited']['standard_error']:.4f} "
          f"synthetic_lc_win_rate={ours_lc['length_controlled_win_rate']:.4f} "
          f"synthetic_lc_standard_error={ours_lc['lc_standard_error']:.4f}")


if __name__ == "__main__":
    main()
