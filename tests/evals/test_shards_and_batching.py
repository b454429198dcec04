"""Tasks of a suite answered in one pass over the backend; ``--shard`` cache files merged before the run."""

from __future__ import annotations

import json
import sqlite3

from evalfakes import CLI_INSTANCES, FakeBackend

from camels.cli import main as camels_main
from camels.core.results import RunManifest
from camels.evals.suite import check_data, evaluate, plan


def _plan(fixtures):
    gsm = fixtures / "evals" / "gsm8k"
    return plan(tasks=["gsm8k_cot", "gsm8k_direct", "mmlu_0shot"], options={"gsm8k_cot": {"n": 0}},
                task_data={"gsm8k_cot": gsm, "gsm8k_direct": gsm, "mmlu_0shot": fixtures / "evals" / "mmlu_hendrycks"})


def _files(runs):
    return {p.relative_to(runs).as_posix(): p.read_bytes() for p in sorted(runs.glob("*/*/*"))
            if p.name != "manifest.json"}


def test_batched_tasks_share_backend_calls_and_write_the_same_files(tmp_path, fixtures):
    p = _plan(fixtures)
    one_by_one = FakeBackend()
    evaluate(p, one_by_one, model="m", output=tmp_path / "a", loaded=check_data(p), chunk_size=64)
    batched = FakeBackend()
    runs = evaluate(p, batched, model="m", output=tmp_path / "b", loaded=check_data(p), chunk_size=64,
                    batch_tasks=True)
    # gsm8k_cot (10) and gsm8k_direct (10) generations go in one call; mmlu's choices in another
    assert (one_by_one.calls, batched.calls) == (3, 2)
    assert len(batched.answered) == len(one_by_one.answered) == 28
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for r in runs:
        a = RunManifest.read(tmp_path / "a" / "m" / r.task.label / "manifest.json").counts
        b = RunManifest.read(r.run_dir / "manifest.json").counts
        assert a == b, r.task.label
    # a second batched run: everything from the cache, counted as hits per task
    again = FakeBackend()
    runs = evaluate(p, again, model="m", output=tmp_path / "b", chunk_size=64, batch_tasks=True)
    assert again.calls == 0
    assert RunManifest.read(runs[1].run_dir / "manifest.json").counts["cache_hits"] == 10


def _cli(*argv):
    return camels_main([str(a) for a in argv])


def test_shards_write_their_own_cache_files_then_merge_then_one_run(tmp_path, fixtures, capsys):
    gsm = fixtures / "evals" / "gsm8k"
    out = tmp_path / "runs"
    base = ["eval", "--model", "fake", "--tasks", "gsm8k_cot,gsm8k_direct", "--task-option", "gsm8k_cot.n=0",
            "--data", gsm, "--backend", "evalfakes:CLIFakeBackend", "--output", out, "--batch-tasks"]
    CLI_INSTANCES.clear()
    for i in range(3):
        assert _cli(*base, "--shard", f"{i}/3") == 0
    assert [len(b.answered) for b in CLI_INSTANCES] == [6, 7, 7]  # 20 requests over all tasks, in 3 slices
    cache_dir = out / ".cache"
    assert sorted(p.name for p in cache_dir.glob("*.sqlite")) == [
        "requests.shard-0-of-3.sqlite", "requests.shard-1-of-3.sqlite", "requests.shard-2-of-3.sqlite"]
    assert not (out / "fake").exists()

    # a damaged row in one shard file is not carried over
    db = sqlite3.connect(cache_dir / "requests.shard-1-of-3.sqlite")
    db.execute("UPDATE results SET result = ? WHERE key = (SELECT MIN(key) FROM results)",
               (json.dumps({"texts": ["The answer is 1234."], "finish_reasons": ["stop"], "prompt_tokens": 0,
                            "completion_tokens": []}, separators=(",", ":")),))
    db.commit()
    db.close()
    capsys.readouterr()
    assert _cli("merge-cache", "--output", out) == 0
    text = capsys.readouterr().out
    assert "requests.shard-1-of-3.sqlite: 6 answers merged, 1 rows rejected (checksum)" in text
    assert f"{cache_dir / 'requests.sqlite'}: 19 answers added from 3 shard file(s)" in text
    assert sorted(p.name for p in cache_dir.glob("*.sqlite")) == ["requests.sqlite"]

    assert _cli(*base) == 0
    final = CLI_INSTANCES[-1]
    assert len(final.answered) == 1  # only the rejected row is computed again
    for task in ("gsm8k_cot", "gsm8k_direct"):
        counts = RunManifest.read(out / "fake" / task / "manifest.json").counts
        assert counts["items"] == 10
    clean = tmp_path / "clean"
    assert _cli(*base[:-3], "--output", clean) == 0
    for task in ("gsm8k_cot", "gsm8k_direct"):
        assert (out / "fake" / task / "predictions.jsonl").read_bytes() == \
            (clean / "fake" / task / "predictions.jsonl").read_bytes()


def test_an_unmerged_shard_file_is_noted_and_a_bad_one_named(tmp_path, fixtures, capsys):
    gsm = fixtures / "evals" / "gsm8k"
    out = tmp_path / "runs"
    base = ["eval", "--model", "fake", "--tasks", "gsm8k_direct", "--data", gsm, "--backend",
            "evalfakes:CLIFakeBackend", "--output", out]
    assert _cli(*base, "--shard", "0/2") == 0
    capsys.readouterr()
    assert _cli(*base) == 0
    assert "unmerged shard cache files" in capsys.readouterr().err
    (out / ".cache" / "requests.shard-1-of-2.sqlite").write_bytes(b"garbage" * 100)
    assert _cli("merge-cache", "--output", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requests.shard-" in err[0] and err[0].startswith("camels: error:")


def test_evaluate_with_a_shard_uses_the_shards_own_cache_file(tmp_path, fixtures):
    p = _plan(fixtures)
    runs = evaluate(p, FakeBackend(), model="m", output=tmp_path / "runs", shard=(1, 2))
    assert [r.result for r in runs] == [None, None, None]
    assert [f.name for f in (tmp_path / "runs" / ".cache").glob("*.sqlite")] == ["requests.shard-1-of-2.sqlite"]
