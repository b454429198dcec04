"""One reader per benchmark: decontamination and evaluation name an item by the same id.

On the real MMLU files: training conversations that quote a test question (and a dev exemplar) are
decontaminated; the report names the benchmark items, and a run of the task writes predictions.jsonl
whose ids are the same strings for the same questions. And: MMLU's requests() works on a task instance
that never ran load().
"""

from __future__ import annotations

import json

import pytest
from evalfakes import FakeBackend, constant_choice

from camels.benchmarks import mmlu as mmlu_files
from camels.core.results import read_predictions
from camels.data.decontam import decontaminate
from camels.evals.cache import RequestCache
from camels.evals.runner import run_task
from camels.evals.task import RequestContext, get_task


@pytest.fixture(scope="module")
def mmlu_root(realdata):
    return realdata / "mmlu"


def _long_rows(path, words=16):
    return [(i, r) for i, r in enumerate(mmlu_files.read_csv(path)) if len(r["question"].split()) >= words]


@pytest.mark.realdata
def test_decontamination_report_and_predictions_name_the_same_item(mmlu_root, tmp_path):
    subject = "high_school_us_history"
    test_file = mmlu_files.find_files(mmlu_root, "test")[subject]
    dev_file = mmlu_files.find_files(mmlu_root, "dev")[subject]
    (i, row), (j, _) = _long_rows(test_file)[3], _long_rows(test_file)[7]
    (k, dev_row) = _long_rows(dev_file, 10)[0]
    rows = [
        {"dataset": "leak", "id": "leak-0", "messages": [
            {"role": "user", "content": "Please answer this: " + row["question"]},
            {"role": "assistant", "content": "Sure."}]},
        {"dataset": "leak", "id": "leak-1", "messages": [
            {"role": "user", "content": dev_row["question"]}, {"role": "assistant", "content": "An exemplar."}]},
        {"dataset": "clean", "id": "clean-0", "messages": [
            {"role": "user", "content": "Tell me about the weather on a quiet Sunday afternoon in spring."},
            {"role": "assistant", "content": "Mild."}]},
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = decontaminate(train, {"mmlu": mmlu_root}, output=tmp_path / "clean.jsonl",
                           report_path=tmp_path / "report.json", show_progress=False).report.to_dict()
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == report
    bench = report["benchmarks"]["mmlu"]
    test_id, dev_id = f"{subject}_test:{i}", f"{subject}_dev:{k}"
    assert test_id in bench["contaminated_items"] and dev_id in bench["contaminated_items"]
    by_conv = {ex["id"]: ex["items"] for ex in bench["examples"]}
    assert test_id in by_conv["leak-0"] and dev_id in by_conv["leak-1"]
    assert f"{subject}_test:{j}" not in bench["contaminated_items"]
    assert (tmp_path / "clean.jsonl").read_text().count("\n") == 1

    # the same question, evaluated: predictions.jsonl calls it by the same id
    task = get_task("mmlu_5shot", subjects=subject)
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        run_task(task, FakeBackend(constant_choice(0), fingerprint="f"), tmp_path / "run", model="m",
                 cache=cache, data_path=mmlu_root)
    preds = {p.id: p for p in read_predictions(tmp_path / "run" / "predictions.jsonl")}
    assert preds[test_id].item["question"] == row["question"]
    assert test_id in [p for p in preds if p in bench["contaminated_items"]]


@pytest.mark.realdata
def test_mmlu_requests_do_not_need_load_on_the_instance(mmlu_root):
    loaded = get_task("mmlu_5shot", subjects="virology,astronomy")
    items = loaded.load(mmlu_root).items
    fresh = get_task("mmlu_5shot", subjects="virology,astronomy")  # never loaded
    chat = RequestContext(chat=True)
    for it in (items[0], items[-1]):
        assert fresh.requests(it) == loaded.requests(it)
        assert fresh.requests(it, chat) == loaded.requests(it, chat)
        assert fresh.request_extra(it, fresh.requests(it)) == {"shots": 5}
    assert "Answer: " in fresh.requests(items[0])[0].messages[0].content  # the exemplars are there
    assert get_task("mmlu_0shot").requests(items[0])[0].messages[0].content.startswith(
        "The following are multiple choice questions (with answers) about  virology.\n\n")


def test_toxigen_and_truthfulqa_ids_agree_between_decontamination_and_evaluation(fixtures):
    """The same reader on both sides: a prompt file line and a TruthfulQA question have one id."""
    from camels.benchmarks.texts import READERS

    bench = fixtures / "benchmarks"
    decon = [item_id for _, item_id, _ in READERS["toxigen"](bench / "toxigen")]
    evald = [it.id for it in get_task("toxigen", n=0, groups="all").load(bench / "toxigen").items]
    assert decon and sorted(decon) == sorted(evald)
    mc = [item_id for _, item_id, _ in READERS["truthfulqa"](fixtures / "truthfulqa")]
    assert mc == [it.id for it in get_task("truthfulqa_mc").load(fixtures / "truthfulqa").items]
