"""Converters on real raw files (../shared/realdata, read through the ``realdata`` fixture)."""

from __future__ import annotations

import json

import pytest

from camels.core.errors import RecordError
from camels.data.convert import Tally, convert, iter_conversations

pytestmark = pytest.mark.realdata

OASST = "oasst/model/model_eval/manual/data"


def msgs(conv):
    return [(m.role, m.content) for m in conv.messages]


def test_oasst_trees_camels_paths(realdata):
    """camels' own rule (paths cut before an unanswered user turn); the study's is in test_study_fidelity."""
    path = realdata / OASST / "en_100_tree.jsonl"
    tally = Tally()
    out = list(iter_conversations("oasst1", path, tally=tally, options={"paths": "cut", "order": "rank"}))
    # oracle: distinct root-to-leaf paths with a trailing prompter turn cut, counted straight from the file
    def paths(node):
        if not node["replies"]:
            return [[node]]
        return [[node, *p] for child in node["replies"] for p in paths(child)]

    expected = 0
    for line in path.read_text().splitlines():
        tree = json.loads(line)
        cut = {tuple(m["message_id"] for m in (p[:-1] if p[-1]["role"] == "prompter" else p))
               for p in paths(tree["prompt"])}
        expected += len(cut)
    assert (tally.records_in, tally.records_out, tally.conversations) == (100, 100, 564) and expected == 564
    first = out[0]
    assert first.id == "054e1df3-35e0-4bb8-a585-607dbdcd24e0#0"
    assert msgs(first)[0] == ("user", "How can I find the best 401k plan for my needs?")
    assert msgs(first)[1][1].startswith("The first step is to research your options.")
    assert {len(c.messages) for c in out} == {2, 4, 6}


def test_oasst_message_export_gives_the_same_conversations(realdata):
    for opts in ({}, {"paths": "cut", "order": "rank"}):
        trees = [c.to_json() for c in iter_conversations("oasst1", realdata / OASST / "en_100_tree.jsonl",
                                                         options=opts)]
        messages = [c.to_json() for c in iter_conversations("oasst1", realdata / OASST / "en_100_message.jsonl",
                                                            options=opts)]
        assert messages == trees and len(trees) == (400 if not opts else 564)
    top1 = list(iter_conversations("oasst1", realdata / OASST / "en_100_tree.jsonl",
                                   options={"top_k": 1, "paths": "cut", "order": "rank"}))
    assert len(top1) == 100 and len({c.id for c in top1}) == 100


def test_code_alpaca_2k(realdata, tmp_path):
    path = realdata / "code_alpaca/data/code_alpaca_2k.json"
    # the study kept the two rows with an empty output (elements 237 and 1859); so does the default preset
    m = convert("code_alpaca", [path], tmp_path / "o.jsonl", progress=False)
    assert (m.records_in, m.records_out, dict(m.skipped), m.extra["kept"]) == (2017, 2017, {}, {"empty_answer": 2})
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows if r["messages"][1]["content"] == ""] == ["code_alpaca_2k:237",
                                                                            "code_alpaca_2k:1859"]
    # camels' own preset refuses them
    with pytest.raises(RecordError) as e:
        convert("code_alpaca", [path], tmp_path / "o.jsonl", progress=False, preset="camels")
    assert str(e.value) == f"{path}: [237].output: text is empty"
    m = convert("code_alpaca", [path], tmp_path / "o.jsonl", lenient=True, progress=False, preset="camels")
    assert (m.records_in, m.records_out, dict(m.skipped)) == (2017, 2015, {"empty_content": 2})
    first = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert first["id"] == "code_alpaca_2k:0"
    assert first["messages"][1] == {"role": "assistant",
                                    "content": "The distinct values from the given list are 3, 5, 7 and 9."}
    assert "What are the distinct values from the given list?" in first["messages"][0]["content"]
    assert "dataList = [3, 9, 3, 5, 7, 9, 5]" in first["messages"][0]["content"]


def test_flan_cot_tsv(realdata):
    """Raw TSVs rendered with FLAN's own zero-shot CoT templates of the file's dataset, one drawn per row
    with ``random.Random(42).randrange(n)`` in file order (a new stream per conversion)."""
    import random

    from camels.data.sources.cot_templates import FLAN_COT_TEMPLATES

    folder = realdata / "flan_v2_cot/flan/v2/cot_data"
    tally = Tally()
    out = list(iter_conversations("cot", folder / "strategyqa_train.tsv", tally=tally))
    qasc = list(iter_conversations("cot", folder / "qasc_train.tsv", tally=tally))
    assert (tally.records_in, tally.records_out, tally.conversations) == (2061 + 1084, 3145, 3145)
    first = out[0]
    assert first.id == "strategyqa_train:0"
    # the stream's first draw is 1: FLAN's cot_strategyqa template 1, "{question} Please answer step by step:"
    assert first.messages[0].content == ("Are more people today related to Genghis Khan than Julius Caesar? "
                                         "Please answer step by step:")
    assert first.messages[1].content.startswith("Julius Caesar had three children.")
    assert first.messages[1].content.endswith("\nSo, the final answer is yes.")
    for convs, key in ((out, "cot_strategyqa"), (qasc, "cot_qasc")):
        rng = random.Random(42)
        draws = [rng.randrange(len(FLAN_COT_TEMPLATES[key])) for _ in convs]
        assert [c.meta["template"] for c in convs] == [f"flan:{key}:{k}" for k in draws]
    assert not any("\\n" in m.content for c in out for m in c.messages)
    camels_way = list(iter_conversations("cot", folder / "strategyqa_train.tsv", options={"tsv_templates": "camels"}))
    assert camels_way[0].messages[1].content.endswith("So the answer is yes.")


def test_sharegpt_format_dummy(realdata):
    tally = Tally()
    out = list(iter_conversations("sharegpt", realdata / "sharegpt_format/data/dummy_conversation.json",
                                  tally=tally))
    assert (tally.records_in, tally.records_out, tally.conversations) == (500, 500, 500)
    assert out[0].id == "identity_0"
    assert msgs(out[0]) == [("user", "Who are you?"), ("assistant", "I am Vicuna, a language model trained by "
                            "researchers from Large Model Systems Organization (LMSYS)."),
                            ("user", "Have a nice day!"), ("assistant", "You too!")]


def test_self_instruct_files(realdata):
    seeds = list(iter_conversations("self_instruct", realdata / "self_instruct/data/seed_tasks.jsonl"))
    assert len(seeds) == 175 and seeds[0].id == "seed_task_0"
    # the stream's first draw (seed 42) picks the study's "Instruction: {instruction}\n" template
    assert seeds[0].messages[0].content.startswith("Instruction: Is there anything I can eat for a breakfast")
    assert seeds[0].messages[1].content.startswith("Yes, you can have 1 oatmeal banana protein shake")
    user = list(iter_conversations("self_instruct", realdata / "self_instruct/human_eval/"
                                   "user_oriented_instructions.jsonl"))
    assert len(user) == 252 and user[0].id == "user_oriented_task_0"
    assert user[0].messages[1].content == ("If you have any questions about my rate or find it necessary to "
                                           "increase or decrease this project's scope, please let me know.")
    tuned = list(iter_conversations("self_instruct", realdata / "self_instruct/data/finetuning/t0_train_50k/"
                                    "data_per_template/ag_news_classify.jsonl"))
    assert len(tuned) == 200 and msgs(tuned[0])[1] == ("assistant", "Business")
    assert tuned[0].messages[0].content.endswith("What label best describes this news article?")


def test_gpt4_alpaca_and_alpaca_seed_tasks(realdata):
    gpt4 = list(iter_conversations("gpt4_alpaca", realdata / "gpt4_alpaca/plots/data/user_oriented_instructions.jsonl"))
    assert len(gpt4) == 252 and {c.dataset for c in gpt4} == {"gpt4_alpaca"}
    alpaca = list(iter_conversations("alpaca", realdata / "alpaca/seed_tasks.jsonl"))
    assert len(alpaca) == 175 and alpaca[0].id == "seed_task_0" and alpaca[0].dataset == "alpaca"


def test_flan_cot_all_tsv_files_convert_whole(realdata, tmp_path):
    folder = realdata / "flan_v2_cot/flan/v2/cot_data"
    m = convert("cot", [folder], tmp_path / "cot.jsonl", progress=False)
    per_file = {p["path"].rsplit("/", 1)[1]: p["records"] for p in m.inputs}
    assert per_file == {"aqua_train.tsv": 2728, "creak_train.tsv": 6915, "ecqa_train.tsv": 7112,
                        "gsm8k_train.tsv": 7473, "qasc_train.tsv": 1084, "sensemaking_train.tsv": 6070,
                        "strategyqa_train.tsv": 2061}
    assert (m.records_in, m.records_out, m.conversations_out, dict(m.skipped)) == (33443, 33443, 33443, {})
    gsm = json.loads((tmp_path / "cot.jsonl").read_text().splitlines()[2728 + 6915 + 7112])
    assert gsm["id"] == "gsm8k_train:0"
    assert gsm["meta"]["template"].startswith("flan:cot_gsm8k:")
    assert gsm["messages"][1]["content"].startswith("Natalia sold 48 / 2 = 24 clips in May. Natalia sold 48 + 24 = 72 "
                                                    "clips altogether in April and May.")
