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

Each side prints its figures; the script checks they agree to 4 decimals and ends with one line:
``match=... real_win_rate=... real_standard_error=... edited_win_rate=... edited_standard_error=...``.
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
out = {}
for name, path in json.loads(sys.argv[1]).items():
    m = get_winrate(json.load(open(path)))
    out[name] = {k: (float(v) if v == v else None) for k, v in m.items()}
print(json.dumps(out))
"""


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
        files = {"real": str(real), "edited": str(edited)}
        ours = {name: summarize_file(path) for name, path in files.items()}
        proc = subprocess.run([args.alpaca_eval_python, "-c", PEER_SCRIPT, json.dumps(files)],
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
    print(f"match={str(match).lower()} real_win_rate={ours['real']['win_rate']:.4f} "
          f"real_standard_error={ours['real']['standard_error']:.4f} "
          f"edited_win_rate={ours['edited']['win_rate']:.4f} "
          f"edited_standard_error={ours['edited']['standard_error']:.4f}")


if __name__ == "__main__":
    main()
