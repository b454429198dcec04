"""``camels demo``: the whole system on a laptop CPU, on built-in data, in about a minute.

The demo is a ``camels run`` of the shipped pipeline ``configs/pipelines/demo.yaml`` on small data it writes
itself (:mod:`camels.demo.skills`):

1. **data**: raw files in four source formats (Alpaca JSON, Dolly JSONL, OpenAssistant trees, ShareGPT)
   -> converted one by one -> mixed -> decontaminated against the held-out set, with three held-out items
   planted in the training data on purpose so that they are found and dropped -> the dataset table;
2. **train**: a randomly initialised tiny LLaMA (2 layers, hidden size 128, about 0.4M parameters, with a
   byte-level BPE tokenizer trained offline) is finetuned on the mixture with the Tülu chat format;
3. **eval**: the ``instruct_em`` task (exact match on the held-out skills) through the HF backend, for the
   untrained (row ``base``) and the trained model (row ``trained``), with the same chat format;
4. **report**: ``report/report.md``, ``report.csv`` and ``report.html`` across both rows.

``--out`` holds ``raw/``, ``base-model/``, ``pipeline.yaml`` (the copy that ran) and the pipeline's folders
(data/, train/, eval/, report/): run ``camels run <out>/pipeline.yaml`` again and every stage is reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from camels.core.io import atomic_write, read_json, write_json
from camels.core.layout import run_dir
from camels.core.results import METRICS_FILE
from camels.data.manifest import read_manifest

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


def demo_config() -> Path:
    """The shipped pipeline file of the demo."""
    return Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "demo.yaml"


def run_demo(out: str | Path = "demo_out", *, n_train: int = 2000, n_eval: int = 40, epochs: int = 8,
             seed: int = 0, batch_size: int = 16, learning_rate: float = 3e-3, model_size: int = 128,
             progress: bool = True) -> DemoResult:
    """Write the demo's raw data and base model into ``out``, run the demo pipeline there, and return its
    headline figures."""
    import torch

    from camels.demo.skills import prompt_text, write_raw
    from camels.pipeline import load_pipeline, run_pipeline
    from camels.report.load import read_losses
    from camels.tiny import save_tiny_model

    t0 = time.time()
    torch.set_num_threads(1)  # a 0.4M-parameter model: more threads cost more than they give
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    out = Path(out)
    raw = out / "raw"
    _say(f"writing built-in skills data ({n_train} training examples, {n_eval} held out) to {raw}")
    paths = write_raw(raw, n_train=n_train, n_eval=n_eval, seed=seed, planted=PLANTED)
    # The held-out set, in the AlpacaEval file layout (a JSON list of {"instruction"}), is the benchmark
    # that decontamination checks the training data against.
    heldout = [json.loads(line) for line in paths["heldout"].read_text(encoding="utf-8").splitlines()]
    bench = raw / "heldout_benchmark"
    bench.mkdir(exist_ok=True)
    write_json(bench / "heldout.json", [{"instruction": prompt_text(e)} for e in heldout])
    base = out / "base-model"
    if not (base / "config.json").exists():
        save_tiny_model(base, seed=seed, hidden_size=model_size, intermediate_size=2 * model_size)
    config = out / "pipeline.yaml"
    with atomic_write(config) as f:
        f.write(demo_config().read_text(encoding="utf-8"))
    overrides = {"data.seed": seed, "data.mixture.seed": seed, "train.seed": seed, "train.num_epochs": epochs,
                 "train.effective_batch_size": batch_size, "train.learning_rate": learning_rate}
    _say(f"running the demo pipeline: camels run {config} "
         + " ".join(f"{k}={v}" for k, v in overrides.items()))
    cfg = load_pipeline(config, overrides)
    built = run_pipeline(cfg, progress=progress, command=["camels", "demo"]).built

    untrained, train_file = cfg.eval.untrained, built.train_files[cfg.name]
    metrics = {row: read_json(run_dir(built.layout.eval, str(built.models[row]), "instruct_em", run_name=row)
                              / METRICS_FILE)["metrics"] for row in (untrained, cfg.name)}
    per_group = {g: (metrics[untrained]["per_group"][g]["exact_match"], v["exact_match"])
                 for g, v in metrics[cfg.name]["per_group"].items()}
    losses = [loss for _, loss in read_losses(built.training_runs[cfg.name])]
    mixture = train_file.parent / "mix.jsonl"
    demo = DemoResult(out=out, mixture=mixture, conversations=(read_manifest(mixture) or {})["conversations_out"],
                      contaminated_dropped=sum(sum(c.values()) for c in _dropped(train_file).values()),
                      final_model=built.models[cfg.name], base_score=metrics[untrained]["exact_match"],
                      trained_score=metrics[cfg.name]["exact_match"], per_group=per_group,
                      first_loss=losses[0] if losses else float("nan"),
                      final_loss=losses[-1] if losses else float("nan"), seconds=time.time() - t0)
    print(_summary(demo), flush=True)
    return demo


def _dropped(output: Path) -> dict[str, dict[str, int]]:
    manifest = read_manifest(output) or {}
    return manifest.get("dropped", {})


def _summary(d: DemoResult) -> str:
    """The demo's headline figures: what decontamination found, and the margin training bought."""
    rows = "\n".join(f"  {g:8s} {b:9.3f} {t:7.3f}" for g, (b, t) in sorted(d.per_group.items()))
    return f"""
camels demo: {d.conversations} conversations mixed; decontamination dropped {d.contaminated_dropped} (the demo
planted {PLANTED} held-out items in the training data to show them found).
Training loss {d.first_loss:.3f} at the first logged step -> {d.final_loss:.3f} at the end; model: {d.final_model}
Held-out exact match (greedy, Tülu chat format), untrained -> trained:
  skill    untrained trained
{rows}
  all      {d.base_score:9.3f} {d.trained_score:7.3f}   (margin {d.trained_score - d.base_score:+.3f})
The report: {d.out / "report" / "report.md"} and report.html beside it. Finished in {d.seconds:.0f} s.
"""
