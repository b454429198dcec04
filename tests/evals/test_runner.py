"""The runner: crash and resume, cache keys, rescore, scoring outside outputs, the CLI (fake backends)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from evalfakes import CLI_INSTANCES, Crash, FakeBackend, default_answer

from camels.cli import main as camels_main
from camels.core.errors import ConfigError, RecordError
from camels.core.requests import ChoiceRequest, ChoiceResult, request_key
from camels.core.results import Prediction, RunManifest, TaskResult, read_predictions
from camels.evals.cache import RequestCache
from camels.evals.runner import answer_requests, model_slug, rescore, run_task, score_outputs
from camels.evals.task import get_task


@pytest.fixture()
def mmlu_dir(fixtures):
    return fixtures / "evals" / "mmlu_hendrycks"


@pytest.fixture()
def gsm_dir(fixtures):
    return fixtures / "evals" / "gsm8k"


def _run(task, backend, tmp_path, data, cache_name="cache.sqlite", run="run", chunk_size=2):
    with RequestCache(tmp_path / cache_name) as cache:
        return run_task(task, backend, tmp_path / run, model="fake", cache=cache, data_path=data,
                        chunk_size=chunk_size, command=["test"])


def test_crash_and_resume_recomputes_no_finished_request(tmp_path, gsm_dir):
    task = get_task("gsm8k_cot", n=0)  # all 10 fixture questions, one request each
    crashing = FakeBackend(crash_after=5)
    with pytest.raises(Crash):
        _run(task, crashing, tmp_path, gsm_dir, chunk_size=2)
    # chunks of 2: two chunks answered and committed, the third (would reach 6 > 5) lost
    assert len(crashing.answered) == 4
    assert not (tmp_path / "run").exists()  # nothing published; the partial run says what it was
    (partial,) = tmp_path.glob(".run.partial-*")
    assert sorted(p.name for p in partial.iterdir()) == ["config.resolved.json"]

    resumed = FakeBackend()
    result = _run(task, resumed, tmp_path, gsm_dir, chunk_size=2)
    fp = resumed.info.fingerprint
    first = {request_key(r, fp) for r in crashing.answered}
    second = [request_key(r, fp) for r in resumed.answered]
    assert len(second) == 6 and not first & set(second)
    manifest = RunManifest.read(tmp_path / "run" / "manifest.json")
    assert manifest.counts == {"cache_hits": 4, "computed": 6, "items": 10, "requests": 10, "unique_requests": 10,
                               "cache_rejected": 0}
    assert not list(tmp_path.glob(".run.partial-*"))

    # the resumed run's files equal those of a run that never crashed
    clean = _run(task, FakeBackend(), tmp_path, gsm_dir, cache_name="clean.sqlite", run="clean", chunk_size=2)
    assert clean.to_dict() == result.to_dict()
    assert (tmp_path / "clean" / "predictions.jsonl").read_bytes() == (tmp_path / "run" / "predictions.jsonl").read_bytes()


def test_cache_does_not_depend_on_chunk_or_batch_size(tmp_path, mmlu_dir):
    task = get_task("mmlu_5shot")
    first = FakeBackend()
    r1 = _run(task, first, tmp_path, mmlu_dir, chunk_size=3)
    assert len(first.answered) == 8 and first.calls == 3  # 8 questions in chunks of 3
    again = FakeBackend()
    r2 = _run(task, again, tmp_path, mmlu_dir, chunk_size=64, run="run2")
    assert again.calls == 0 and again.answered == []
    assert r1.to_dict() == r2.to_dict()
    # another model fingerprint shares nothing
    other = FakeBackend(fingerprint="fake-v2")
    _run(task, other, tmp_path, mmlu_dir, chunk_size=64, run="run3")
    assert len(other.answered) == 8


def test_duplicate_requests_are_answered_once(tmp_path):
    req = ChoiceRequest([("user", "q")], choices=(" A", " B"))
    other = ChoiceRequest([("user", "q2")], choices=(" A", " B"))
    backend = FakeBackend()
    with RequestCache(tmp_path / "c.sqlite") as cache:
        results, stats = answer_requests(backend, [req, other, req], cache, chunk_size=10)
    assert len(backend.answered) == 2
    assert results[0] == results[2] == default_answer(req)
    assert (stats.requests, stats.unique_requests, stats.computed) == (3, 2, 2)


def test_cache_is_shared_by_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    code = (
        "import sys\n"
        "from camels.evals.cache import RequestCache\n"
        "from camels.core.requests import ChoiceRequest, ChoiceResult\n"
        "c = RequestCache(sys.argv[1])\n"
        "for i in range(60):\n"
        "    r = ChoiceRequest([('user', f'q{i}')], choices=(' A', ' B'))\n"
        "    c.put_many('fp', [r], [ChoiceResult((float(-i), 0.0))])\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    with RequestCache(path) as cache:
        assert len(cache) == 60
        got = cache.get_many("fp", [ChoiceRequest([("user", "q7")], choices=(" A", " B"))])
    assert got == [ChoiceResult((-7.0, 0.0))]


def test_rescore_reproduces_metrics_bytes(tmp_path, mmlu_dir):
    _run(get_task("mmlu_0shot"), FakeBackend(), tmp_path, mmlu_dir)
    run = tmp_path / "run"
    metrics = (run / "metrics.json").read_bytes()
    preds = (run / "predictions.jsonl").read_bytes()
    (run / "metrics.json").write_text("{}")
    result = rescore(run)
    assert (run / "metrics.json").read_bytes() == metrics
    assert (run / "predictions.jsonl").read_bytes() == preds
    assert result.task == "mmlu_0shot" and result.counts == {"items": 8, "scored": 8}


def test_rescore_applies_changed_scoring(tmp_path, gsm_dir):
    _run(get_task("gsm8k_cot", n=0), FakeBackend(), tmp_path, gsm_dir)
    path = tmp_path / "run" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["results"][0]["texts"] = ["So the answer is " + rows[0]["item"]["gold"] + "."]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = TaskResult.read(tmp_path / "run" / "metrics.json").metrics["exact_match"]
    after = rescore(tmp_path / "run").metrics["exact_match"]
    assert after == pytest.approx(before + 1 / 10)
    assert read_predictions(path)[0].scores["exact_match"] == 1.0


def test_predictions_schema_roundtrip(tmp_path, mmlu_dir):
    _run(get_task("mmlu_5shot"), FakeBackend(), tmp_path, mmlu_dir)
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["id"] == "astronomy_test:0" and first["task"] == "mmlu_5shot" and first["schema"] == 1
    assert first["item"]["answer"] == 0 and first["extra"] == {"shots": 5}
    assert first["results"][0]["kind"] == "choice" and first["requests"][0]["kind"] == "choice"
    pred = Prediction.from_dict(first)
    assert Prediction.from_dict(json.loads(pred.to_json())).to_json() == pred.to_json()
    assert pred.output == "ABCD"[pred.results[0].best]
    with pytest.raises(RecordError, match="newer"):
        Prediction.from_dict({**first, "schema": 99})


def _write_outputs(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_outputs_counts_missing_and_unknown(tmp_path, gsm_dir):
    task = get_task("gsm8k_cot", n=0)
    outputs = _write_outputs(tmp_path / "out.jsonl", [
        {"id": "test:0", "output": "3 + 4 = 7. So the answer is 7."},
        {"id": "test:2", "output": "So the answer is $1,250."},
        {"id": "test:9", "output": "It is 3 degrees."},  # gold -3: wrong
        {"id": "test:99", "output": "1"},
        {"id": "train:0", "output": "2"},
    ])
    report = score_outputs(task, outputs, data_path=gsm_dir, output_dir=tmp_path / "scored")
    assert report.result.counts == {"items": 10, "scored": 3, "missing": 7, "unknown": 2, "not_in_sample": 0}
    assert report.result.metrics["exact_match"] == pytest.approx(2 / 3)
    assert report.unknown_ids == ["test:99", "train:0"]
    assert report.missing_ids == ["test:1", "test:3", "test:4", "test:5", "test:6", "test:7", "test:8"]
    coverage = json.loads((tmp_path / "scored" / "coverage.json").read_text())
    assert coverage["unknown_ids"] == ["test:99", "train:0"]
    assert [p.id for p in read_predictions(tmp_path / "scored" / "predictions.jsonl")] == ["test:0", "test:2", "test:9"]
    # a scored folder rescores like a run folder
    assert rescore(tmp_path / "scored").metrics["exact_match"] == pytest.approx(2 / 3)


def test_score_outputs_mmlu_reads_letters(tmp_path, mmlu_dir):
    outputs = _write_outputs(tmp_path / "out.jsonl", [
        {"id": "astronomy_test:0", "output": "A"},
        {"id": "astronomy_test:1", "output": "The answer is (B)."},
        {"id": "virology_test:2", "output": "I am not sure"},
    ])
    report = score_outputs(get_task("mmlu_0shot"), outputs, data_path=mmlu_dir)
    assert [p.scores["correct"] for p in report.predictions] == [1.0, 1.0, 0.0]
    assert report.result.counts["missing"] == 5


def test_score_outputs_bad_lines_name_file_and_line(tmp_path, gsm_dir):
    task = get_task("gsm8k_cot", n=0)
    bad = _write_outputs(tmp_path / "bad.jsonl", [{"id": "test:0", "output": "1"}, {"id": "test:1"}])
    with pytest.raises(RecordError, match=r"bad.jsonl:2: output: missing field") as e:
        score_outputs(task, bad, data_path=gsm_dir)
    assert e.value.line == 2
    dup = _write_outputs(tmp_path / "dup.jsonl", [{"id": "test:0", "output": "1"}, {"id": "test:0", "output": "2"}])
    with pytest.raises(RecordError, match=r"dup.jsonl:2: id: id 'test:0' appears twice"):
        score_outputs(task, dup, data_path=gsm_dir)
    none = _write_outputs(tmp_path / "none.jsonl", [{"id": "x", "output": "1"}])
    with pytest.raises(ConfigError, match="item ids look like 'test:"):
        score_outputs(task, none, data_path=gsm_dir)


def test_model_slug():
    assert model_slug("runs/tulu-7b/checkpoint-1000") == "tulu-7b_checkpoint-1000"
    assert model_slug("allenai/tulu-7b") == "allenai__tulu-7b"
    assert model_slug("/models/llama 7b") == "llama_7b"


# --- CLI ------------------------------------------------------------------------------------------------
def _cli(*argv):
    return camels_main([str(a) for a in argv])


def test_cli_eval_rescore_score(tmp_path, mmlu_dir, gsm_dir, capsys):
    CLI_INSTANCES.clear()
    out = tmp_path / "runs"
    code = _cli("eval", "--model", "org/fake-7b", "--tasks", "mmlu_5shot,gsm8k_direct",
                "--backend", "evalfakes:CLIFakeBackend", "--batch-size", "4", "--chunk-size", "3",
                "--data", f"mmlu_5shot={mmlu_dir}", "--data", f"gsm8k_direct={gsm_dir}",
                "--task-option", "gsm8k_direct.n=6", "--task-option", "mmlu_5shot.subjects=virology",
                "--output", out)
    assert code == 0
    assert CLI_INSTANCES[0].batch_size == 4 and len(CLI_INSTANCES[0].answered) == 3 + 6
    text = capsys.readouterr().out
    assert "mmlu_5shot: accuracy=" in text and "gsm8k_direct: exact_match=" in text
    mmlu_run = out / "org__fake-7b" / "mmlu_5shot"
    assert sorted(p.name for p in mmlu_run.iterdir()) == [
        "config.resolved.json", "manifest.json", "metrics.json", "predictions.jsonl"]
    cfg = json.loads((mmlu_run / "config.resolved.json").read_text())
    assert cfg["task"]["config"]["subjects"] == ["virology"] and cfg["backend"]["options"] == {"batch_size": 4}
    assert (out / ".cache" / "requests.sqlite").is_file()

    # same command again: everything from the cache
    assert _cli("eval", "--model", "org/fake-7b", "--tasks", "mmlu_5shot", "--backend", "evalfakes:CLIFakeBackend",
                "--data", f"mmlu_5shot={mmlu_dir}", "--task-option", "mmlu_5shot.subjects=virology",
                "--output", out) == 0
    assert CLI_INSTANCES[1].answered == []

    before = (mmlu_run / "metrics.json").read_bytes()
    assert _cli("rescore", mmlu_run) == 0
    assert (mmlu_run / "metrics.json").read_bytes() == before

    outputs = _write_outputs(tmp_path / "sys.jsonl", [{"id": "test:0", "output": "The answer is 7."}])
    assert _cli("score", "gsm8k_cot", outputs, "--data", gsm_dir, "--task-option", "n=0") == 0
    text = capsys.readouterr().out
    assert "exact_match=1.0000" in text and "items=10 scored=1 missing=9 unknown=0" in text
    assert (tmp_path / "sys.gsm8k_cot" / "metrics.json").is_file()


def test_cli_suite_reports_pending_and_crash_resume(tmp_path, mmlu_dir, capsys):
    suite = tmp_path / "mini.yaml"
    suite.write_text("name: mini\ntasks:\n  - {name: mmlu_0shot, task: mmlu, options: {shots: 0}}\n"
                     "  - {name: bbh_cot, task: bbh, status: pending}\n")
    args = ["eval", "--model", "fake", "--suite", suite, "--backend", "evalfakes:CLIFakeBackend",
            "--data", mmlu_dir, "--output", tmp_path / "runs", "--chunk-size", "2"]
    CLI_INSTANCES.clear()
    with pytest.raises(Crash):
        _cli(*args, "--backend-option", "crash_after=5")
    assert "pending (not implemented yet, skipped): bbh_cot" in capsys.readouterr().err
    assert _cli(*args) == 0
    assert len(CLI_INSTANCES[0].answered) == 4 and len(CLI_INSTANCES[1].answered) == 4
    assert "pending: bbh_cot" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _cli("eval", "--model", "fake")  # neither --tasks nor --suite
    assert _cli("eval", "--model", "fake", "--tasks", "nope", "--backend", "evalfakes:CLIFakeBackend") == 1
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_cli_checks_every_task_data_before_loading_the_model(tmp_path, mmlu_dir, capsys):
    """A suite whose second and third tasks lack their files fails at once, naming both, and never builds the
    backend (no model time spent on the first task before the error)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    CLI_INSTANCES.clear()
    code = _cli("eval", "--model", "fake", "--tasks", "mmlu_0shot,gsm8k_cot,truthfulqa_mc", "--backend",
                "evalfakes:CLIFakeBackend", "--data", mmlu_dir, "--data", f"gsm8k_cot={empty}",
                "--data", f"truthfulqa_mc={empty}", "--output", tmp_path / "runs")
    err = capsys.readouterr().err
    assert code == 1 and CLI_INSTANCES == []
    assert "found before loading the model" in err and "gsm8k_cot:" in err and "truthfulqa_mc:" in err
    assert "mmlu_0shot:" not in err and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sigkill_midway_then_rerun_recomputes_nothing_finished(tmp_path, gsm_dir):
    """A real process killed with SIGKILL mid-run (no cleanup at all), then the same command again."""
    import os
    import signal
    from pathlib import Path

    here = Path(__file__).resolve().parent
    log = tmp_path / "answered.log"
    args = ["eval", "--model", "fake", "--tasks", "gsm8k_cot", "--task-option", "gsm8k_cot.n=0",
            "--data", str(gsm_dir), "--backend", "evalfakes:CLIFakeBackend", "--chunk-size", "3",
            "--output", str(tmp_path / "runs"), "--backend-option", f"log={log}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "camels", *args, "--backend-option", "kill_after=7"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    first = log.read_text().splitlines()
    assert len(first) == 6  # two chunks of 3 answered and committed; the third died with the process
    proc = subprocess.run([sys.executable, "-m", "camels", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    second = log.read_text().splitlines()[len(first):]
    assert len(second) == 4 and not set(first) & set(second)
    manifest = RunManifest.read(tmp_path / "runs" / "fake" / "gsm8k_cot" / "manifest.json")
    assert (manifest.counts["cache_hits"], manifest.counts["computed"]) == (6, 4)


def test_wrong_answers_from_a_backend_are_never_cached(tmp_path):
    from camels.backends.base import BackendError
    from camels.core.requests import Generation

    reqs = [ChoiceRequest([("user", f"q{i}")], choices=(" A", " B")) for i in range(2)]
    wrong_kind = FakeBackend(lambda r: Generation(("A",), ("stop",)))
    with RequestCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(BackendError, match="answered a choice request with a Generation"):
            answer_requests(wrong_kind, reqs, cache)
        short = FakeBackend()
        short.choose = lambda rs: [ChoiceResult((0.0, -1.0))]
        with pytest.raises(BackendError, match="returned 1 results for 2 choice requests"):
            answer_requests(short, reqs, cache)
        assert len(cache) == 0


def test_shards_fill_the_cache_then_one_run_assembles(tmp_path, gsm_dir):
    task = get_task("gsm8k_cot", n=0)
    backends = [FakeBackend() for _ in range(3)]
    with RequestCache(tmp_path / "c.sqlite") as cache:
        for i, b in enumerate(backends):
            assert run_task(task, b, tmp_path / "run", model="fake", cache=cache, data_path=gsm_dir,
                            shard=(i, 3)) is None
        assert [len(b.answered) for b in backends] == [3, 3, 4]
        assert not (tmp_path / "run").exists()
        final = FakeBackend()
        result = run_task(task, final, tmp_path / "run", model="fake", cache=cache, data_path=gsm_dir)
    assert final.answered == [] and result.counts == {"items": 10, "scored": 10}
    fp = final.info.fingerprint
    assert len({request_key(r, fp) for b in backends for r in b.answered}) == 10


def test_request_context_chat_or_plain():
    from camels.core.requests import BackendInfo
    from camels.evals.runner import request_context

    class B:
        def __init__(self, chat_format):
            self.info = BackendInfo(name="b", model="m", fingerprint="f", chat_format=chat_format)

    assert request_context(B({"kind": "plain"})).chat is False
    assert request_context(B({"kind": "tulu"})).chat is True
    assert request_context(B({})).chat is True  # a chat endpoint rendering with the server's template
    counted = B({"kind": "plain"})
    counted.prompt_text = lambda req: "<s>" + req.messages[0].content
    counted.encode = lambda text: text.split()
    ctx = request_context(counted)
    assert ctx.count_tokens(ChoiceRequest([("user", "a b c")], choices=(" A", " B"))) == 3  # "<s>a", "b", "c"


def test_score_outputs_tells_unsampled_ids_from_unknown_ones_and_refuses_non_string_ids(tmp_path, gsm_dir, capsys):
    task = get_task("gsm8k_cot", n=4, seed=1)  # a 4-question sample of the 10 test questions
    sample = [it.id for it in task.load(gsm_dir).items]
    outside = sorted(f"test:{i}" for i in range(10) if f"test:{i}" not in sample)
    outputs = _write_outputs(tmp_path / "out.jsonl", [
        {"id": sample[0], "output": "The answer is 1."},
        {"id": outside[0], "output": "The answer is 2."},  # an item of the data, not of this sample
        {"id": "test:99", "output": "3"},  # not in the data at all
    ])
    report = score_outputs(task, outputs, data_path=gsm_dir, output_dir=tmp_path / "scored")
    assert report.result.counts == {"items": 4, "scored": 1, "missing": 3, "unknown": 1, "not_in_sample": 1}
    assert report.unknown_ids == ["test:99"] and report.not_in_sample_ids == [outside[0]]
    coverage = json.loads((tmp_path / "scored" / "coverage.json").read_text())
    assert coverage["not_in_sample_ids"] == [outside[0]] and coverage["unknown_ids"] == ["test:99"]
    assert rescore(tmp_path / "scored").counts["not_in_sample"] == 1

    only_outside = _write_outputs(tmp_path / "o.jsonl", [{"id": outside[1], "output": "1"}])
    with pytest.raises(ConfigError, match=r"1 are items of the data outside the task's sample"):
        score_outputs(task, only_outside, data_path=gsm_dir)

    numeric = _write_outputs(tmp_path / "n.jsonl", [{"id": sample[0], "output": "1"}, {"id": 12, "output": "2"}])
    with pytest.raises(RecordError, match=r"n.jsonl:2: id: id must be a string, got int 12"):
        score_outputs(task, numeric, data_path=gsm_dir)

    capsys.readouterr()
    assert camels_main(["score", "gsm8k_cot", str(outputs), "--data", str(gsm_dir), "--task-option", "n=4",
                        "--task-option", "seed=1", "--output", str(tmp_path / "cli")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"camels: warning: {outputs} covers 1 of the 4 items of gsm8k_cot: the metrics are over those 1 only "
        "(missing ids in coverage.json)"]
    assert "missing=3 unknown=1 not_in_sample=1" in captured.out
