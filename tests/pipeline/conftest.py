"""Fixtures of the pipeline tests: the inputs of a small pipeline (the demo's skills data in three raw
formats, the held-out set, a tiny LLaMA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    """Raw data in three source formats, the held-out set (+ its AlpacaEval-layout copy) and a tiny model."""
    pytest.importorskip("transformers")
    from camels.core.io import write_json
    from camels.demo.skills import prompt_text, write_raw
    from camels.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("pipeline") / "inputs"
    paths = write_raw(root / "raw", n_train=160, n_eval=12, seed=0, planted=2)
    held = [json.loads(x) for x in paths["heldout"].read_text().splitlines()]
    (root / "raw" / "heldout_benchmark").mkdir()
    write_json(root / "raw" / "heldout_benchmark" / "heldout.json", [{"instruction": prompt_text(e)} for e in held])
    save_tiny_model(root / "base-model", seed=0, hidden_size=64, intermediate_size=128)
    return root
