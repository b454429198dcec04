"""``camels demo``: the whole system on a laptop CPU, on built-in data, in a few minutes.

The demo runs the real pipeline, stage by stage, on small data it writes itself (:mod:`camels.demo.skills`):

1. **data**: raw files in four source formats (Alpaca JSON, Dolly JSONL, OpenAssistant trees, ShareGPT)
   -> ``camels data convert`` for each -> ``camels data mix`` (a mixture config written next to the data)
   -> ``camels data decontaminate`` against the held-out set, with three held-out items planted in the
   training data on purpose so that the report shows them found and dropped -> ``camels data stats``;
2. **train**: a randomly initialised tiny LLaMA (2 layers, hidden size 128, about 0.4M parameters, with a
   byte-level BPE tokenizer trained offline) is finetuned on the mixture with the Tülu chat format;
3. **eval**: the ``instruct_em`` task (exact match on the held-out skills) through the HF backend, for the
   untrained and the trained model, with the same chat format;
4. **report**: ``report.md`` with the data table, the training curve's ends and the scores per skill.

Every stage writes the same files, manifests and run folders as the real commands, under ``--out``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camels.core.io import atomic_write, write_json

SOURCES = {"alpaca": "alpaca", "dolly": "dolly", "oasst1": "oasst1", "sharegpt": "sharegpt"}
PLANTED = 3  # held-out items copied into the training data, for decontamination to find


@dataclass
class DemoResult:
    out: Path
    mixture: Path
    conversations: int
    contaminated_dropped: int
    final_model: Path
    base_score: float
    trained_score: float
    per_group: dict[str, tuple[float, float]]
    first_loss: float
    final_loss: float
    seconds: float


def _say(msg: str) -> None:
    print(f"[camels demo] {msg}", flush=True)


def run_demo(out: str | Path = "demo_out", *, n_train: int = 2000, n_eval: int = 40, epochs: int = 8,
             seed: int = 0, batch_size: int = 16, learning_rate: float = 3e-3, model_size: int = 128,
             progress: bool = True) -> DemoResult:
    """Run the demo pipeline into ``out`` and return its headline figures."""
    import torch

    from camels.backends import load_backend
    from camels.data.convert import convert
    from camels.data.decontam import decontaminate
    from camels.data.mixture import load_mixture, mix
    from camels.data.stats import compute_stats
    from camels.evals.suite import check_data, evaluate, plan
    from camels.tiny import save_tiny_model
    from camels.train.config import TrainConfig
    from camels.train.loop import train

    t0 = time.time()
    torch.set_num_threads(1)  # a 0.4M-parameter model: more threads cost more than they give
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    out = Path(out)
    raw, data = out / "raw", out / "data"
    data.mkdir(parents=True, exist_ok=True)

    # 1. data ------------------------------------------------------------------------------------------
    from camels.demo.skills import prompt_text, write_raw

    _say(f"writing built-in skills data ({n_train} training examples, {n_eval} held out) to {raw}")
    paths = write_raw(raw, n_train=n_train, n_eval=n_eval, seed=seed, planted=PLANTED)
    converted = {}
    for name, source in SOURCES.items():
        target = data / f"{name}.jsonl"
        m = convert(source, [paths[name]], target, seed=seed, progress=progress)
        converted[name] = target
        _say(f"convert {source:9s} {paths[name].name:24s} -> {m.conversations_out:5d} conversations "
             f"({m.records_in} records, {sum(m.skipped.values())} skipped)")
    mixture_file = data / "demo-mixture.yaml"
    mixture_file.write_text(_mixture_yaml(converted, seed), encoding="utf-8")
    mixed = data / "mix.jsonl"
    mres = mix(load_mixture(str(mixture_file)), mixed, show_progress=progress)
    _say(f"mix -> {mixed} ({mres.written} conversations)")

    # The held-out set, in the AlpacaEval file layout (a JSON list of {"instruction"}), is the benchmark.
    bench = data / "heldout_benchmark"
    bench.mkdir(exist_ok=True)
    heldout = [json.loads(line) for line in paths["heldout"].read_text(encoding="utf-8").splitlines()]
    write_json(bench / "heldout.json", [{"instruction": prompt_text(e)} for e in heldout])
    clean = data / "train.jsonl"
    dres = decontaminate(mixed, {"alpaca_eval": bench}, n=5, threshold=1.0, output=clean,
                         show_progress=progress)
    dropped = sum(sum(c.values()) for c in _dropped(clean).values())
    _say(f"decontaminate (5-grams vs the held-out set) -> {clean}: dropped {dropped} contaminated "
         f"conversations ({PLANTED} were planted)")
    write_json(data / "decontamination.json", dres.report.to_dict())
    table = compute_stats([clean], show_progress=False)
    table.write_csv(data / "stats.csv")
    print(table.format(), flush=True)

    # 2. train -----------------------------------------------------------------------------------------
    base = out / "base-model"
    if not (base / "config.json").exists():
        save_tiny_model(base, seed=seed, hidden_size=model_size, intermediate_size=2 * model_size)
    run = out / "train"
    cfg = TrainConfig.from_dict({
        "model": str(base), "train_files": [str(clean)], "output_dir": str(run), "chat_format": "tulu",
        "max_length": 256, "packing": True, "effective_batch_size": batch_size, "learning_rate": learning_rate,
        "lr_scheduler": "linear", "warmup_ratio": 0.03, "weight_decay": 0.0, "num_epochs": epochs,
        "seed": seed, "dtype": "fp32", "save_every_steps": 0, "keep_last_checkpoints": 1, "logging_every": 5,
        "report_to": "none", "num_threads": 1, "resume": (run / "checkpoints").is_dir(),
    })
    if cfg.resume and (run / "final" / "config.json").exists():
        _say(f"train: {run} already finished; reusing its model")
        final = run / "final"
    else:
        _say(f"train: tiny LLaMA ({base}) for {epochs} epochs on {clean.name}")
        result = train(cfg)
        final = result.final_model or run / "final"
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]

    # 3. eval ------------------------------------------------------------------------------------------
    evals = out / "eval"
    # the same planning, data check and run layout as `camels eval` (runs under eval/<base|trained>/)
    eval_plan = plan(tasks=["instruct_em"], options={"instruct_em": {"group_field": "skill", "max_tokens": 32}},
                     data=paths["heldout"])
    loaded = check_data(eval_plan)
    scores: dict[str, Any] = {}
    for label, model in (("base", base), ("trained", final)):
        backend = load_backend("hf", str(model), chat_format="tulu", batch_size=16)
        (run,) = evaluate(eval_plan, backend, model=str(model), output=evals, run_name=label, loaded=loaded,
                          command=["camels", "demo"])
        res = run.result
        scores[label] = res.metrics
        _say(f"eval {label:7s}: exact match {res.metrics['exact_match']:.3f} on {res.metrics['n']} held-out items")

    per_group = {g: (scores["base"]["per_group"][g]["exact_match"], v["exact_match"])
                 for g, v in scores["trained"]["per_group"].items()}
    demo = DemoResult(out=out, mixture=mixed, conversations=mres.written, contaminated_dropped=dropped,
                      final_model=Path(final), base_score=scores["base"]["exact_match"],
                      trained_score=scores["trained"]["exact_match"], per_group=per_group,
                      first_loss=losses[0] if losses else float("nan"),
                      final_loss=losses[-1] if losses else float("nan"), seconds=time.time() - t0)
    report = _report(demo, table.format())
    with atomic_write(out / "report.md") as f:
        f.write(report)
    print(report, flush=True)
    return demo


def _dropped(output: Path) -> dict[str, dict[str, int]]:
    from camels.data.manifest import read_manifest

    manifest = read_manifest(output) or {}
    return manifest.get("dropped", {})


def _mixture_yaml(files: dict[str, Path], seed: int) -> str:
    lines = ["# The demo's mixture: every converted source in full.", "name: demo", "version: 1",
             f"seed: {seed}", "sources:"]
    lines += [f"  {name}: {{path: {json.dumps(str(path))}, count: all}}" for name, path in files.items()]
    return "\n".join(lines) + "\n"


def _report(d: DemoResult, table: str) -> str:
    rows = "\n".join(f"| {g} | {b:.3f} | {t:.3f} |" for g, (b, t) in sorted(d.per_group.items()))
    return f"""# camels demo report

Built-in skills data -> convert (4 source formats) -> mix -> decontaminate -> train a tiny LLaMA on the
CPU -> evaluate on held-out items it never saw. Everything is under `{d.out}`.

## Data
{d.conversations} conversations mixed; decontamination dropped {d.contaminated_dropped} (the demo planted
{PLANTED} held-out items in the training data to show them found).

```
{table}
```

## Training
Loss {d.first_loss:.3f} at the first logged step -> {d.final_loss:.3f} at the end. Final model (a Hugging
Face folder with the chat format inside): `{d.final_model}`.

## Held-out exact match (greedy, Tülu chat format)

| skill | untrained | trained |
|---|---|---|
{rows}
| **all** | **{d.base_score:.3f}** | **{d.trained_score:.3f}** |

Finished in {d.seconds:.0f} s.
"""
