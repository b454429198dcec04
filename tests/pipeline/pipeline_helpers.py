"""Helpers of the pipeline tests: a pipeline file over the session's inputs, ``camels`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


PIPELINE = """\
name: {name}
output: {output}
data:
  sources:
    alpaca: {{files: [{inputs}/raw/alpaca_data.json]}}
    dolly: {{files: [{inputs}/raw/databricks-dolly.jsonl]}}
    sharegpt: {{files: [{inputs}/raw/sharegpt.json]}}
  seed: 0
  mixture: {{seed: 0}}
  decontaminate: {{benchmarks: {{alpaca_eval: {inputs}/raw/heldout_benchmark}}, n: 5, threshold: 1.0}}
train:
  model: {inputs}/base-model
  chat_format: tulu
  max_length: 128
  effective_batch_size: 4
  learning_rate: 3.0e-3
  max_steps: {steps}
  seed: 0
  dtype: fp32
  save_every_steps: {save_every}
  keep_last_checkpoints: 2
  logging_every: 2
  num_threads: 1
eval:
  tasks: [instruct_em]
  options: {{instruct_em: {{group_field: skill, max_tokens: 8}}}}
  data: {inputs}/raw/heldout.jsonl
  chat_format: tulu
  backend_options: {{batch_size: 16}}
  untrained: base
report: {{title: pipeline test, baseline: base}}
"""


def write_pipeline(folder: Path, inputs: Path, name: str = "tiny", output: str = "out", steps: int = 6,
                   save_every: int = 0, extra: str = "") -> Path:
    """A pipeline file in ``folder`` over the session's ``inputs``; its outputs go to ``folder/output``."""
    path = folder / f"{name}-{output.replace('/', '_')}.yaml"
    path.write_text(PIPELINE.format(name=name, output=output, steps=steps, save_every=save_every,
                                    inputs=inputs) + extra)
    return path


def camels_subprocess(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``camels ARGS`` (this tree's) in a new process and process group (to kill it whole), its output
    going to ``log`` (a file, not a pipe: a pipe nobody reads while the test waits could block it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "camels", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
