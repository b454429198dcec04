"""Stage keys follow what a stage's output depends on: bookkeeping settings (how often to checkpoint, how
many checkpoints to keep, the backend's batch size, which the results do not depend on) leave every key as
it is; a learning rate, a seed or an eval option changes the key of its stage and of those after it."""

from __future__ import annotations

from camels.pipeline.config import load_pipeline
from camels.pipeline.plan import build

from .pipeline_helpers import write_pipeline


def _keys(path, *overrides) -> dict[str, str]:
    return {s.id: s.key for s in build([load_pipeline(path, list(overrides))], progress=False).stages}


def test_bookkeeping_changes_keep_every_key(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs, steps=4)
    base = _keys(path)
    assert list(base) == ["convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-tiny", "decontaminate-tiny",
                          "train-tiny", "eval-base", "eval-tiny", "report"]
    for change in ("train.save_every_steps=3", "train.keep_last_checkpoints=5", "train.logging_every=1",
                   "eval.backend_options.batch_size=4"):
        assert _keys(path, change) == base, change


def test_output_changes_change_their_stage_and_later_ones(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs, steps=4)
    base = _keys(path)
    for change, changed in (("train.learning_rate=1e-3", {"train-tiny", "eval-tiny", "report"}),
                            ("train.seed=1", {"train-tiny", "eval-tiny", "report"}),
                            ("eval.options.instruct_em.max_tokens=4", {"eval-base", "eval-tiny", "report"}),
                            ("eval.backend_options.dtype=bfloat16", {"eval-base", "eval-tiny", "report"})):
        keys = _keys(path, change)
        assert {s for s in base if keys[s] != base[s]} == changed, change
