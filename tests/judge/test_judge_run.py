"""``camels judge run``: AlpacaEval judging end to end against a loopback judge server.

Faults (429 + Retry-After, 500, timeouts, truncated bodies, garbled verdicts) end as parsed or counted
verdicts; a judge process killed with SIGKILL mid-run resumes with no repeated judge call; the ledger equals
the server's count of tokens served; a folder judged by one judge refuses another.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from judgeserver import JudgeServer, first_wins  # noqa: E402

from camels.cli import main  # noqa: E402
from camels.core.results import read_predictions  # noqa: E402
from camels.evals.judged import judge_outputs  # noqa: E402
from camels.evals.runner import rescore  # noqa: E402
from camels.judge.pairwise import model_shown_first  # noqa: E402

N = 12


@pytest.fixture()
def server():
    s = JudgeServer(timeout_sleep=120.0)  # a "timeout" fault holds its call (until released at the end)
    yield s
    s.release.set()
    s.close()


def write_inputs(folder: Path, special: dict[int, str] | None = None) -> tuple[Path, Path, list, list]:
    special = special or {}
    refs, mods = [], []
    for i in range(N):
        inst = f"Instruction {i}: say something{special.get(i, '')}"
        refs.append({"instruction": inst, "output": f"reference {i} " + "r " * (i % 4), "generator": "ref-model",
                     "dataset": "set"})
        mods.append({"instruction": inst, "output": f"model {i} " + "m " * ((i * 7) % 5) + ("GOOD" if i % 4 == 1 else ""),
                     "generator": "my-model", "dataset": "set"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ref.json").write_text(json.dumps(refs))
    (folder / "model_outputs.json").write_text(json.dumps(mods))
    return folder / "model_outputs.json", folder / "ref.json", refs, mods


def expected_preference(ref: str, mod: str, item_id: str, seed: int = 0) -> float:
    """What the scripted judge decides, un-swapped: 2.0 when the model's answer wins."""
    if model_shown_first(item_id, seed):
        return 2.0 if first_wins(mod, ref) else 1.0
    return 1.0 if first_wins(ref, mod) else 2.0


def test_faults_every_annotation_parsed_or_counted(server, tmp_path):
    mo, ref, refs, mods = write_inputs(tmp_path, {3: " GARBLE", 8: " GARBLE"})
    server.faults[:] = ["429", "500", "timeout", "malformed", "shape", "500", "429", "malformed", "timeout"]
    server.garble = 2
    # A "timeout" call is held for 120 s, so only the client's timeout ends it; every other call is answered
    # at once (the scripted judge runs no model), in milliseconds: 4 s leaves them room on a loaded machine.
    report = judge_outputs(mo, reference=str(ref), output=tmp_path / "out", base_url=server.url,
                           judge_model="judge-model", judge_options={"max_concurrency": "3", "timeout": "4",
                                                                     "backoff_base": "0.001", "backoff_max": "0.01"},
                           chunk_size=4)
    ann = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len(ann) == N  # none lost
    for i, a in enumerate(ann):
        if i in (3, 8):
            assert a["preference"] is None and a["attempts"] == 3 and len(a["raw_completions"][0]) == 3
        else:
            assert a["preference"] == expected_preference(refs[i]["output"], mods[i]["output"], f"alpaca_eval:{i}")
    m = report.metrics
    wins = sum(a["preference"] == 2.0 for a in ann)
    assert (m["n_unparsed"], m["n_total"], m["n_wins"], m["n_losses"]) == (2, N - 2, wins, N - 2 - wins)
    assert m["win_rate"] == pytest.approx(100 * wins / (N - 2))
    ledger = json.loads((tmp_path / "out" / "judge_ledger.json").read_text())
    assert ledger["prompt_tokens"] == server.usage["prompt_tokens"]
    assert ledger["completion_tokens"] == server.usage["completion_tokens"]
    assert ledger["calls"] == server.ok_calls == N + 2 * 2 + 2
    # the run folder rescores from its stored verdicts with no judge at all
    before = server.calls
    assert rescore(tmp_path / "out").metrics["win_rate"] == pytest.approx(m["win_rate"])
    assert server.calls == before
    # alpaca_eval's own fields are all there
    assert {"instruction", "output_1", "generator_1", "output_2", "generator_2", "annotator", "preference",
            "dataset"} <= set(ann[0])
    outs = json.loads((tmp_path / "out" / "model_outputs.json").read_text())
    assert outs[5] == {"instruction": mods[5]["instruction"], "output": mods[5]["output"], "generator": "my-model",
                       "dataset": "set"}


def _cli(mo, ref, out, url, *extra):
    return [sys.executable, "-m", "camels", "judge", "run", str(mo), "--reference", str(ref), "--output", str(out),
            "--base-url", url, "--judge-model", "judge-model", "--judge-option", "max_concurrency=1",
            "--judge-option", "timeout=60", "--chunk-size", "2", *extra]


@pytest.mark.slow
def test_kill_9_while_judging_then_rerun_repeats_no_call(server, tmp_path):
    mo, ref, refs, mods = write_inputs(tmp_path, {6: " HANG"})
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(mo, ref, out, server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.hanging.wait(120), proc.communicate(timeout=5)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(out / ".cache" / "requests.sqlite") as db:
        cached = db.execute("SELECT COUNT(*) FROM results WHERE kind = 'judge_pair'").fetchone()[0]
    assert cached == 6  # chunks of two: items 0-5 committed; 6 (in flight) and the rest not
    first_run = [s[0] for s in server.served]
    assert len(first_run) == 6 and all(f"Instruction {i}:" in first_run[i] for i in range(6))

    server.release.set()
    served_before = len(server.served)
    done = subprocess.run(_cli(mo, ref, out, server.url), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    second_run = [s[0] for s in server.served[served_before:]]
    assert sorted(second_run) == sorted(f"Instruction {i}: say something" + (" HANG" if i == 6 else "")
                                        for i in range(6, N))  # zero repeated calls
    assert "6 cached" in done.stdout
    ann = json.loads((out / "annotations.json").read_text())
    assert [a["preference"] for a in ann] == [
        expected_preference(refs[i]["output"], mods[i]["output"], f"alpaca_eval:{i}") for i in range(N)]
    # the ledger (both runs) equals what the server served whole
    rows = [json.loads(x) for x in (out / "judge_ledger.jsonl").read_text().splitlines()]
    assert len(rows) == server.ok_calls == N
    assert sum(r["prompt_tokens"] for r in rows) == server.usage["prompt_tokens"]
    assert sum(r["completion_tokens"] for r in rows) == server.usage["completion_tokens"]
    assert len(read_predictions(out / "predictions.jsonl")) == N


def test_another_judge_model_or_prompt_version_is_refused(server, tmp_path, capsys):
    mo, ref, _, _ = write_inputs(tmp_path)
    out = tmp_path / "out"
    args = ["judge", "run", str(mo), "--reference", str(ref), "--output", str(out), "--base-url", server.url,
            "--judge-model", "judge-model"]
    assert main(args) == 0
    assert "win_rate:" in capsys.readouterr().out
    calls = server.calls
    assert main([*args[:-1], "judge-model-2"]) == 1
    err = capsys.readouterr().err
    assert "holds annotations by another judge: [api:judge-model," in err
    assert "this run's judge is [api:judge-model-2," in err and "Refusing to mix" in err
    # the same prompt with its version bumped is another judge too
    from camels.judge.prompts import JUDGES_DIR

    v2 = tmp_path / "alpaca_eval_gpt4.yaml"
    v2.write_text((JUDGES_DIR / "alpaca_eval_gpt4.yaml").read_text().replace("version: 1", "version: 2"))
    assert main([*args, "--judge-prompt", str(v2), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "prompt alpaca_eval_gpt4 v1" in err and "prompt alpaca_eval_gpt4 v2" in err
    assert server.calls == calls  # refused before any judge call


def test_max_cost_stops_cleanly_and_keeps_finished_annotations(server, tmp_path, capsys):
    mo, ref, refs, mods = write_inputs(tmp_path)
    prompt = tmp_path / "priced.yaml"
    from camels.judge.prompts import JUDGES_DIR

    prompt.write_text((JUDGES_DIR / "alpaca_eval_gpt4.yaml").read_text().replace(
        "  gpt-4: {prompt: 30.0, completion: 60.0}", "  judge-model: {prompt: 1000.0, completion: 0.0}"))
    out = tmp_path / "out"
    args = ["judge", "run", str(mo), "--reference", str(ref), "--output", str(out), "--base-url", server.url,
            "--judge-model", "judge-model", "--judge-prompt", str(prompt), "--chunk-size", "4",
            "--judge-option", "max_concurrency=1"]
    assert main([*args, "--max-cost", "0.3"]) == 3
    assert "judge spending limit reached" in capsys.readouterr().err
    with sqlite3.connect(out / ".cache" / "requests.sqlite") as db:
        kept = db.execute("SELECT COUNT(*) FROM results WHERE kind = 'judge_pair'").fetchone()[0]
    # every prompt is ~180 words: 4 calls cost ~$0.72 > $0.3, so one batch of four is judged and kept
    assert kept == 4 and server.ok_calls == 4
    assert main([*args, "--max-cost", "100"]) == 0  # a higher limit judges only the rest
    assert server.ok_calls == N
    ledger = json.loads((out / "judge_ledger.json").read_text())
    assert ledger["calls"] == N and ledger["cost_usd"] == pytest.approx(server.usage["prompt_tokens"] * 1000 / 1e6)
