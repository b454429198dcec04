"""Per-source converters on hand-written raw fixtures (tests/fixtures/raw): exact messages and ids."""

from __future__ import annotations

import doctest
import importlib
import json
from collections import Counter

import pytest

from camels.core.errors import RecordError
from camels.data.convert import Tally, iter_conversations
from camels.data.sources import NAMES, SOURCES, Context, Skip, get_source, rng_for
from camels.data.sources.single_turn import NO_INPUT, WITH_INPUT, render


def convs(fixtures, source, name, **options):
    tally = Tally()
    out = list(iter_conversations(source, fixtures / "raw" / name, errors=[], options=options, tally=tally))
    return out, tally


def msgs(conv):
    return [(m.role, m.content) for m in conv.messages]


def ctx(source, **options):
    return Context(source, stem="f", index=3, options={**SOURCES[source].defaults, **options})


def test_registry_has_the_twelve_sources_and_messages():
    assert set(NAMES) == {"superni", "cot", "flan_v2", "dolly", "oasst1", "self_instruct", "unnatural", "alpaca",
                          "code_alpaca", "gpt4_alpaca", "baize", "sharegpt", "messages"}
    assert all(SOURCES[n].name == n for n in NAMES)
    with pytest.raises(Exception, match="unknown source 'vicuna'"):
        get_source("vicuna")


@pytest.mark.parametrize("module", [f"camels.data.sources.{n}" for n in (*NAMES, "base", "single_turn")]
                         + ["camels.data.convert"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0


# -- single-turn sources ------------------------------------------------------------------------------------

def test_alpaca_forced_template_exact(fixtures):
    out, tally = convs(fixtures, "alpaca", "alpaca.json", templates="camels", template="sections")
    assert [c.id for c in out] == ["alpaca:0", "alpaca:1", "alpaca:2"]
    assert {c.dataset for c in out} == {"alpaca"}
    assert msgs(out[0]) == [("user", "### Instruction:\nGive three tips for staying healthy.\n\n### Response:"),
                            ("assistant", "1. Eat well.\n2. Sleep enough.\n3. Move every day.")]
    assert msgs(out[1]) == [("user", "### Instruction:\nTranslate to French.\n\n### Input:\ngood morning\n\n"
                                     "### Response:"), ("assistant", "bonjour")]
    assert (tally.records_in, tally.records_out, tally.conversations) == (3, 3, 3)


def test_camels_random_templates_are_seeded_per_record(fixtures):
    out, _ = convs(fixtures, "alpaca", "alpaca.json", templates="camels", draw="record")
    assert [c.meta["template"] for c in out] == ["sections", "input_output", "plain"]
    assert msgs(out[1])[0] == ("user", "Translate to French.\nInput: good morning\nOutput:")
    # a record's draw depends on (seed, source, id) only
    assert rng_for(42, "alpaca", "alpaca:1").random() == rng_for(42, "alpaca", "alpaca:1").random()
    assert rng_for(42, "alpaca", "alpaca:1").random() != rng_for(43, "alpaca", "alpaca:1").random()
    # over many records the draw follows the weights
    counts = Counter(render("do", "x", rng_for(0, "a", str(i)), templates="camels")[1] for i in range(4000))
    total = sum(t.weight for t in WITH_INPUT)
    for t in WITH_INPUT:
        assert abs(counts[t.name] / 4000 - t.weight / total) < 0.03
    assert {render("do", "", rng_for(0, "a", str(i)), templates="camels")[1]
            for i in range(200)} == {t.name for t in NO_INPUT}


def test_unknown_template_option_is_an_error():
    with pytest.raises(RecordError, match="unknown template 'fancy'"):
        SOURCES["alpaca"].convert({"instruction": "a", "output": "b"}, ctx("alpaca", template="fancy"))


def test_dolly_uses_context_as_input(fixtures):
    out, _ = convs(fixtures, "dolly", "dolly.jsonl", template="tulu-in-0")  # the study's fixed prompt
    assert [c.id for c in out] == ["dolly:0", "dolly:1"]
    assert msgs(out[0]) == [("user", "When did the first moon landing happen?\n\nApollo 11 landed on the Moon on "
                                     "20 July 1969."), ("assistant", "On 20 July 1969.")]
    assert msgs(out[1]) == [("user", "Name a primary colour."), ("assistant", "Red.")]


def test_self_instruct_three_shapes(fixtures):
    flat, _ = convs(fixtures, "self_instruct", "self_instruct.jsonl", template="tulu-in-4")
    assert msgs(flat[1]) == [("user", "Sort the list.\nInput: 3, 1, 2\nOutput:"), ("assistant", "1, 2, 3")]
    tuned, _ = convs(fixtures, "self_instruct", "self_instruct_finetune.jsonl")
    assert [c.id for c in tuned] == ["self_instruct_finetune:0"]
    assert msgs(tuned[0]) == [("user", "Sort the list.\n\nInput: 3, 1, 2\n\nOutput:"), ("assistant", "1, 2, 3")]
    assert tuned[0].meta == {}
    seeds, tally = convs(fixtures, "self_instruct", "seed_tasks.jsonl", template="tulu-in-0")
    assert [c.id for c in seeds] == ["seed_task_7#0", "seed_task_7#1", "seed_task_8"]
    assert msgs(seeds[1]) == [("user", "Give the opposite word.\n\nup"), ("assistant", "down")]
    assert (tally.records_in, tally.records_out, tally.conversations) == (2, 2, 3)


def test_unnatural_appends_constraints_unless_none(fixtures):
    out, _ = convs(fixtures, "unnatural", "unnatural.jsonl", template="tulu-in-0")
    assert [c.id for c in out] == ["unnatural:0#0", "unnatural:0#1", "unnatural:1"]
    assert msgs(out[0]) == [("user", "You are given a sentence. Is it a question?\nAnswer 'Yes' or 'No'.\n\n"
                                     "Sentence: Is it raining?"), ("assistant", "Yes")]
    assert msgs(out[1])[0] == ("user", "You are given a sentence. Is it a question?\n\nSentence: It rains.")
    assert msgs(out[2]) == [("user", "Count the vowels in the word.\n\nbanana"), ("assistant", "3")]


def test_flan_v2_and_cot_jsonl(fixtures):
    out, _ = convs(fixtures, "flan_v2", "flan_v2.jsonl")
    assert [c.id for c in out] == ["flan_v2:0", "flan_v2:1"]
    assert msgs(out[0]) == [("user", "Translate to German: thank you"), ("assistant", "danke")]
    assert out[0].meta == {"task_name": "wmt_translate", "template_type": "zs_opt"}
    assert msgs(out[1]) == [("user", "Q: Is the sky blue?\nA:"), ("assistant", "yes")]
    cot, _ = convs(fixtures, "cot", "cot.jsonl")
    assert msgs(cot[0]) == [("user", "Answer with reasoning: what is 3 * 4?"),
                            ("assistant", "3 * 4 = 12. The answer is 12.")]
    assert cot[0].dataset == "cot"


def test_cot_tsv_rows(fixtures):
    out, tally = convs(fixtures, "cot", "cot.tsv", tsv_templates="camels", draw="record")
    assert [c.id for c in out] == ["cot:0", "cot:1"]
    assert msgs(out[0]) == [("user", "What is 2 + 3?\nLet's think step by step."),
                            ("assistant", "Two plus three is five. So the answer is 5.")]
    # the TSV's escaped "\n" becomes a real line break
    assert msgs(out[1])[1] == ("assistant", "Ice is frozen water.\nFrozen water is cold. So the answer is yes.")
    with pytest.raises(RecordError, match="expected 3 tab-separated columns") as e:
        SOURCES["cot"].convert(("q", "a"), ctx("cot"))
    assert e.value.reason == "bad_columns"
    # FLAN's templates are chosen by the file's dataset name; this file's name is no FLAN dataset
    _, tally = convs(fixtures, "cot", "cot.tsv")
    assert tally.skipped == {"unknown_cot_dataset": 2}
    assert "use --option tsv_templates=camels" in tally.examples["unknown_cot_dataset"][0]


def test_cot_tsv_with_flan_templates(fixtures, tmp_path):
    (tmp_path / "creak_train.tsv").write_bytes((fixtures / "raw" / "cot.tsv").read_bytes())
    out = list(iter_conversations("cot", tmp_path / "creak_train.tsv"))
    # random.Random(42).randrange(10) gives 1, then 0: FLAN's cot_creak templates 1 and 0
    assert [c.meta["template"] for c in out] == ["flan:cot_creak:1", "flan:cot_creak:0"]
    assert msgs(out[0]) == [("user", "My question: What is 2 + 3?\nPlease think gradually:"),
                            ("assistant", "Two plus three is five\nThus, the answer is 5.")]  # FLAN adds no "."
    assert msgs(out[1])[0][1].startswith("Given the following question, let's solve step-by-step. ")
    assert msgs(out[1])[1][1] == "Ice is frozen water.\nFrozen water is cold.\nThe final answer: yes."


# -- multi-turn sources -------------------------------------------------------------------------------------

def test_oasst_camels_paths_ranked_and_deleted_skipped(fixtures):
    out, tally = convs(fixtures, "oasst1", "oasst_trees.jsonl", paths="cut", order="rank")
    assert [c.id for c in out] == ["t1#0", "t1#1", "t1#2", "t2"]
    assert msgs(out[0]) == [("user", "What is a camel?"), ("assistant", "A desert mammal with humps."),
                            ("user", "How many humps?"), ("assistant", "One or two.")]
    # the path ending with the unanswered "Thanks!" loses that turn
    assert msgs(out[1]) == [("user", "What is a camel?"), ("assistant", "A desert mammal with humps.")]
    assert msgs(out[2]) == [("user", "What is a camel?"), ("assistant", "A mammal.")]
    assert all("Spam" not in m.content for c in out for m in c.messages)
    assert (tally.records_in, tally.records_out, tally.conversations) == (2, 2, 4)
    # the study's rule drops the path that ends with the unanswered "Thanks!" instead of cutting it, and
    # visits replies in file order ("A mammal." comes first in the file), not by rank
    study, _ = convs(fixtures, "oasst1", "oasst_trees.jsonl")
    assert [msgs(c) for c in study] == [msgs(out[2]), msgs(out[0]), msgs(out[3])]


def test_oasst_options(fixtures):
    top1, _ = convs(fixtures, "oasst1", "oasst_trees.jsonl", top_k=1, paths="cut", order="rank")
    # the best reply at every level (prompter replies too): one path per tree
    assert [c.id for c in top1] == ["t1", "t2"]
    assert [m.content for m in top1[0].messages] == ["What is a camel?", "A desert mammal with humps.",
                                                     "How many humps?", "One or two."]
    with_deleted, _ = convs(fixtures, "oasst1", "oasst_trees.jsonl", skip_deleted=False, paths="cut", order="rank")
    assert msgs(with_deleted[3]) == [("user", "What is a camel?"), ("assistant", "Spam spam.")]
    english, tally = convs(fixtures, "oasst1", "oasst_trees.jsonl", lang="en", paths="cut", order="rank")
    assert [c.id for c in english] == ["t1#0", "t1#1", "t1#2"]
    assert tally.skipped == {"other_language": 1}


def test_oasst_flat_message_table(fixtures):
    out, tally = convs(fixtures, "oasst1", "oasst_messages.jsonl", paths="cut", order="rank")
    assert [c.id for c in out] == ["t1#0", "t1#1"]
    assert msgs(out[0]) == [("user", "What is a camel?"), ("assistant", "A desert mammal with humps."),
                            ("user", "How many humps?"), ("assistant", "One or two.")]
    assert msgs(out[1]) == [("user", "What is a camel?"), ("assistant", "A mammal.")]
    # one tree and one orphan row are the records
    assert (tally.records_in, tally.records_out, tally.skipped) == (2, 1, {"orphan_message": 1})
    assert "oasst_messages.jsonl:4: parent_id: parent 'gone' is not in the file" in tally.examples[
        "orphan_message"][0]


def test_oasst_quality_breaks_rank_ties():
    tree = {"message_tree_id": "q", "prompt": {"role": "prompter", "text": "Hi", "replies": [
        {"role": "assistant", "text": "low", "labels": {"quality": {"value": 0.1}}},
        {"role": "assistant", "text": "high", "labels": {"name": ["quality"], "value": [0.8]}}]}}
    out = SOURCES["oasst1"].convert(tree, ctx("oasst1", top_k=1, order="rank"))
    assert [msgs(c) for c in out] == [[("user", "Hi"), ("assistant", "high")]]
    out = SOURCES["oasst1"].convert(tree, ctx("oasst1", top_k=1))  # the study's order: quality only
    assert [msgs(c) for c in out] == [[("user", "Hi"), ("assistant", "high")]]


def test_oasst_bad_role_names_its_field():
    tree = {"message_tree_id": "q", "prompt": {"role": "prompter", "text": "Hi", "replies": [
        {"role": "assistant", "text": "ok", "replies": [{"role": "bot", "text": "?"}]}]}}
    with pytest.raises(RecordError) as e:
        SOURCES["oasst1"].convert(tree, ctx("oasst1"))
    assert (e.value.reason, e.value.field) == ("unknown_role", "prompt.replies[0].replies[0].role")


def test_baize_rounds(fixtures):
    out, tally = convs(fixtures, "baize", "baize.json", rules="camels")
    assert [c.id for c in out] == ["baize:0", "baize:1"]
    assert msgs(out[0]) == [("user", "Hi there!"), ("assistant", "Hello! How can I help?"),
                            ("user", "What is 2 + 2?"), ("assistant", "4.")]
    assert out[0].meta == {"topic": "greetings"}
    assert msgs(out[1]) == [("user", "Second question"), ("assistant", "An answer.")]
    assert out[1].meta == {"dropped_rounds": 2, "topic": "broken"}
    assert tally.skipped == {"no_complete_round": 1}
    assert (tally.records_in, tally.records_out) == (3, 2)
    # the study's rule keeps an empty answer in the last round ("broken" and "empty" end with one)
    study, tally = convs(fixtures, "baize", "baize.json")
    assert [msgs(c) for c in study[1:]] == [
        [("user", "Second question"), ("assistant", "An answer."), ("user", "A question never answered"),
         ("assistant", "")], [("user", "Anyone?"), ("assistant", "")]]
    assert study[1].meta == {"dropped_rounds": 1, "empty_answer": True, "topic": "broken"}
    assert (tally.records_out, tally.kept) == (3, {"empty_answer": 2})


def test_sharegpt_roles_skips_and_trailing_user(fixtures):
    out, tally = convs(fixtures, "sharegpt", "sharegpt.json", rules="camels")
    assert [c.id for c in out] == ["ok1", "sys1", "long1"]
    assert msgs(out[1]) == [("system", "Be brief."), ("user", "Capital of France?"), ("assistant", "Paris.")]
    assert tally.skipped == {"other_role": 1, "non_alternating": 1}
    assert "[2].conversations[1].from: speaker 'bing'" in tally.examples["other_role"][0]


def test_sharegpt_splits_on_whole_pairs_under_budget(fixtures):
    out, _ = convs(fixtures, "sharegpt", "sharegpt.json", max_tokens=12, rules="camels", overhead=0)
    long = [c for c in out if c.id.startswith("long1")]
    # pairs of 8, 4 and 12 whitespace tokens: [8 + 4], [12]
    assert [c.id for c in long] == ["long1#0", "long1#1"]
    assert msgs(long[0]) == [("user", "a b c d"), ("assistant", "e f g h"), ("user", "i j"), ("assistant", "k l")]
    assert msgs(long[1]) == [("user", "m n o p q r"), ("assistant", "s t u v w x")]
    assert long[1].meta == {}
    tiny, _ = convs(fixtures, "sharegpt", "sharegpt.json", max_tokens=5, rules="camels", overhead=0)
    long = [c for c in tiny if c.id.startswith("long1")]
    assert [len(c.messages) for c in long] == [2, 2, 2]
    assert [c.meta.get("over_budget", False) for c in long] == [True, False, True]


def test_sharegpt_system_repeats_in_every_chunk_and_tokenizer_counts():
    row = {"id": "s", "conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "q1"},
                                        {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                                        {"from": "gpt", "value": "a2"}]}
    chars = Context("sharegpt", options={"max_tokens": 7, "rules": "camels"}, count_tokens=len)  # characters
    out = SOURCES["sharegpt"].convert(row, chars)
    assert [msgs(c) for c in out] == [[("system", "sys"), ("user", "q1"), ("assistant", "a1")],
                                      [("system", "sys"), ("user", "q2"), ("assistant", "a2")]]
    one = SOURCES["sharegpt"].convert(row, Context("sharegpt", options={"max_tokens": 11, "rules": "camels"},
                                                   count_tokens=len))
    assert [c.id for c in one] == ["s"]


def test_superni_camels_ratio_zero_and_few_shot(fixtures):
    out, tally = convs(fixtures, "superni", "superni", split="ratio", draw="record", templates="camels")
    assert sorted(c.id for c in out) == ["task999-a", "task999-b", "task999-c", "task999-d", "task999-e"]
    few = [c for c in out if c.meta["shots"] == 2]
    assert len(few) == 1  # 5 instances: 60:20 ratio -> 4 zero-shot + 1 few-shot
    inst = {"task999-a": "2 2", "task999-b": "3 4", "task999-c": "10 1", "task999-d": "6 6", "task999-e": "9 0"}
    assert msgs(few[0])[0] == ("user", "Add the two numbers and answer with the sum.\n\nInput:\n1 2\nOutput:\n3\n\n"
                                       f"Input:\n5 5\nOutput:\n10\n\nInput:\n{inst[few[0].id]}\nOutput:")
    b = next(c for c in out if c.id == "task999-b")
    assert msgs(b)[1] == ("assistant", "7")  # output[0]
    assert {c.meta["task"] for c in out} == {"task999_add_numbers"}
    assert (tally.records_in, tally.records_out, tally.conversations) == (1, 1, 5)
    # the study's split: a task of 5 instances (fewer than 60 + 20) gives all 5, zero-shot, in file order
    study, _ = convs(fixtures, "superni", "superni")
    assert [(c.id, c.meta["shots"]) for c in study] == [(f"task999-{x}", 0) for x in "abcde"]


def test_superni_counts_on_a_large_task():
    task = {"Definition": ["Echo."], "Positive Examples": [{"input": "x", "output": "x"}] * 3,
            "Instances": [{"id": f"t-{i}", "input": f"in {i}", "output": [f"out {i}"]} for i in range(200)]}
    out = SOURCES["superni"].convert(task, ctx("superni"))
    assert Counter(c.meta["shots"] for c in out) == {0: 60, 2: 20}
    assert len({c.id for c in out}) == 80
    again = SOURCES["superni"].convert(task, ctx("superni"))
    assert [c.to_json() for c in again] == [c.to_json() for c in out]


def test_messages_keeps_dataset_and_id(fixtures):
    out, _ = convs(fixtures, "messages", "messages.jsonl")
    assert [(c.dataset, c.id) for c in out] == [("oasst1", "oasst1_17"), ("messages", "messages:1")]
    assert msgs(out[0]) == [("user", "Hello"), ("assistant", "Hi!")]


def test_rule_skips_are_skip_errors():
    with pytest.raises(Skip) as e:
        SOURCES["sharegpt"].convert({"id": "x", "conversations": [{"from": "human", "value": "hi"},
                                                                   {"from": "bing", "value": "hi"}]}, ctx("sharegpt"))
    assert e.value.reason == "other_role"


def test_output_lines_are_unified_records(fixtures):
    out, _ = convs(fixtures, "oasst1", "oasst_trees.jsonl", paths="cut", order="rank")
    assert json.loads(out[3].to_json()) == {
        "dataset": "oasst1", "id": "t2",
        "messages": [{"role": "user", "content": "Hola"}, {"role": "assistant", "content": "¡Hola!"}]}


def test_source_modules_do_no_file_io():
    import ast
    from pathlib import Path

    import camels.data.sources as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n in ("os", "pathlib", "io", "gzip", "camels.core.io", "camels.data.convert")
                               for n in names), (path.name, names)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", path.name


def test_sharegpt_budget_with_a_real_tokenizer(tiny_tok):
    from camels.data.convert import token_counter

    count = token_counter(tiny_tok)
    text = "The sea is wide and blue."
    assert count(text) == len(tiny_tok(text, add_special_tokens=False)["input_ids"]) > 0
    row = {"id": "t", "conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": text}
                                        for i in range(6)]}
    budget = 2 * (count(text) + 7) * 2  # with the study's 7 tokens per message, two pairs fit, the third not
    out = SOURCES["sharegpt"].convert(row, Context("sharegpt", options={"max_tokens": budget},
                                                   count_tokens=count))
    assert [len(c.messages) for c in out] == [4, 2] and [c.id for c in out] == ["t#0", "t#1"]
