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


def test_eval_key_covers_the_folder_each_task_reads(tmp_path, inputs, fixtures):
    """A benchmarks root (``eval.data: ../shared/realdata``) holds every benchmark: each task's key covers
    only the folder it reads (ROOT/<task's folder>), so adding or editing another benchmark's files leaves
    the evaluation as it is, and editing the task's own file runs it again."""
    import shutil

    root = tmp_path / "bench"
    shutil.copytree(fixtures / "evals" / "gsm8k", root / "gsm8k")
    (root / "toxigen").mkdir()
    (root / "toxigen" / "prompts.txt").write_text("one\n")
    path = write_pipeline(tmp_path, inputs, steps=4)
    over = ["eval.tasks=[instruct_em, gsm8k_direct]", f"eval.task_data.gsm8k_direct={root}"]
    base = _keys(path, *over)
    (root / "toxigen" / "prompts.txt").write_text("one\ntwo\n")
    (root / "notes.md").write_text("a new file beside the benchmarks\n")
    assert _keys(path, *over) == base
    test = root / "gsm8k" / "test.jsonl"
    test.write_text(test.read_text().replace("\n", "\n\n", 1))
    keys = _keys(path, *over)
    assert {s for s in base if keys[s] != base[s]} == {"eval-base", "eval-tiny", "report"}
