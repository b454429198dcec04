"""The ``tulu-v1`` preset gives the Tülu v1 study's records, record for record.

Expected records are derived here from the study's rules, written out independently of camels' code
(allenai/open-instruct, ``open_instruct/instruction_encode_templates.py`` and ``reformat_datasets.py`` at
e44fcf5, June 2023; the parts used here are unchanged up to 503407e, October 2023):

* the script calls ``random.seed(42)`` once, then converts a source row by row in file order;
* each row draws one template with ``random.choices(templates, weights=...)`` from the 14 "with input"
  templates when ``input.strip() != ""``, else from the 14 "without input" ones;
* the prompt is the template filled with the stripped instruction (and stripped input), the answer the
  stripped output, empty or not (nothing is dropped).

Records are compared as camels stores them: roles, and contents stripped of surrounding whitespace.
The module-level ``random`` functions are methods of one hidden ``random.Random`` instance, so
``random.Random(42)`` gives the same stream as ``random.seed(42)`` without touching global state.
"""

from __future__ import annotations

import json
import random

import pytest

from camels.data.convert import Tally, convert, iter_conversations
from camels.data.sources import SOURCES, Context

# The study's templates (prompt part), in its order, with its weights.
WITH_INPUT = [
    ("{instruction}\n\n{input}\n\n", 0.2),
    ("{instruction}\n{input}\n\n", 0.1),
    ("{instruction}\n{input}\n", 0.1),
    ("{instruction}\n\nInput: {input}\n\nOutput:", 0.05),
    ("{instruction}\nInput: {input}\nOutput:", 0.05),
    ("{instruction}\n{input}\n\nResponse:", 0.05),
    ("{instruction}\n\nAdditional Context:\n{input}\n\nAnswer:", 0.05),
    ("Task: {instruction}\nInput: {input}\nOutput:", 0.05),
    ("Task: {instruction}\n\n{input}\n\n", 0.05),
    ("Task: {instruction}\n\n{input}\n\nAnswer:", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n{input}\n\nAnswer:", 0.05),
    ("{instruction}\n\nNow complete the following instance -\nInput: {input}\nOutput:", 0.05),
    ("Instruction:{instruction}\n\nInput: {input}\n\n", 0.05),
    ("Below is an instruction that describes a task, paired with an input that provides further context. "
     "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
     "### Input:\n{input}\n\n### Response:", 0.1),
]
NO_INPUT = [
    ("{instruction}\n\n", 0.2),
    ("{instruction}\n", 0.1),
    ("{instruction}", 0.1),
    ("{instruction} Output:", 0.05),
    ("{instruction}\nResponse:", 0.05),
    ("{instruction}\n\nAnswer:", 0.05),
    ("Task: {instruction}\n\n", 0.05),
    ("Instruction: {instruction}\n", 0.05),
    ("Instruction: {instruction}\nOutput:", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n", 0.05),
    ("Can you help with this?\n\n{instruction}\n", 0.05),
    ("Plase answer the following request: {instruction}\nAnswer:", 0.05),
    ("Tell me how would you respond to the following request.\n{instruction}\n", 0.05),
    ("Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
     "### Response:", 0.1),
]


def encode(rng: random.Random, instruction: str, input: str | None, output: str) -> list[tuple[str, str]]:
    """The study's ``encode_instruction_example(..., random_template=True)``, as stored by camels."""
    if input is not None and input.strip() != "":
        template = rng.choices(WITH_INPUT, weights=[w for _, w in WITH_INPUT])[0][0]
        prompt = template.format(instruction=instruction.strip(), input=input.strip())
    else:
        template = rng.choices(NO_INPUT, weights=[w for _, w in NO_INPUT])[0][0]
        prompt = template.format(instruction=instruction.strip())
    return [("user", prompt.strip()), ("assistant", output.strip())]


def study(rows: list[tuple[str, str | None, str]]) -> list[list[tuple[str, str]]]:
    rng = random.Random(42)
    return [encode(rng, *row) for row in rows]


def camels_records(source: str, path, **options) -> tuple[list[list[tuple[str, str]]], Tally]:
    tally = Tally()
    out = list(iter_conversations(source, path, options=options, tally=tally))
    return [[(m.role, m.content) for m in c.messages] for c in out], tally


def flat_rows(path, output_key="output", input_key="input"):
    return [(r["instruction"], r[input_key], r[output_key]) for r in json.loads(path.read_text())]


def instance_rows(path):
    """Seed-task files hold one instance per task; the study's readers take the instruction and each
    instance's input and output, in file order (as its Unnatural Instructions reader does)."""
    rows = []
    for line in path.read_text().splitlines():
        task = json.loads(line)
        rows += [(task["instruction"], inst["input"], inst["output"]) for inst in task["instances"]]
    return rows


REAL = [
    # (source, file below the real-data folder, how the study reads a row, records)
    ("code_alpaca", "code_alpaca/data/code_alpaca_2k.json", flat_rows, 2017),
    ("code_alpaca", "code_alpaca/data/new_codealpaca.json", flat_rows, 4535),
    ("self_instruct", "self_instruct/data/seed_tasks.jsonl", instance_rows, 175),
    ("self_instruct", "self_instruct/human_eval/user_oriented_instructions.jsonl", instance_rows, 252),
    ("gpt4_alpaca", "gpt4_alpaca/plots/data/user_oriented_instructions.jsonl", instance_rows, 252),
    ("alpaca", "alpaca/seed_tasks.jsonl", instance_rows, 175),
]


@pytest.mark.realdata
@pytest.mark.parametrize("source, name, reader, n", REAL, ids=[f"{s}:{n.rsplit('/', 1)[1]}" for s, n, _, _ in REAL])
def test_preset_gives_the_study_records_on_real_files(realdata, source, name, reader, n):
    path = realdata / name
    expected = study(reader(path))
    got, tally = camels_records(source, path)
    assert len(expected) == n and tally.records_in == n
    assert got == expected
    # the two sets really were both used, and several templates of each (the draw is not a constant)
    assert len({r[0][1] for r in got}) > n // 2


@pytest.mark.realdata
def test_code_alpaca_keeps_the_two_empty_outputs_as_the_study(realdata):
    path = realdata / "code_alpaca/data/code_alpaca_2k.json"
    got, tally = camels_records("code_alpaca", path)
    assert [i for i, r in enumerate(got) if r[1] == ("assistant", "")] == [237, 1859]
    assert tally.kept == {"empty_answer": 2} and tally.skipped == {}


@pytest.mark.realdata
def test_camels_preset_is_not_the_study(realdata, tmp_path):
    """camels' own options (5 + 4 templates, per-record draw) are kept, and they differ from the study's."""
    path = realdata / "self_instruct/data/seed_tasks.jsonl"
    expected = study(instance_rows(path))
    got, _ = camels_records("self_instruct", path, templates="camels", draw="record", empty_output="refuse")
    assert len(got) == len(expected) and [r[1] for r in got] == [r[1] for r in expected]
    assert sum(g == e for g, e in zip(got, expected)) < len(expected) // 2
    m = convert("self_instruct", [path], tmp_path / "c.jsonl", preset="camels", progress=False)
    assert m.config["options"] == {"template": None, "templates": "camels", "draw": "record",
                                   "empty_output": "refuse"}
    by_preset = [[(m["role"], m["content"]) for m in json.loads(x)["messages"]]
                 for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert by_preset == got


def test_dolly_context_is_the_input(tmp_path):
    """Dolly: ``context`` is the input, ``response`` the output (the study's ``convert_dolly_data``)."""
    rows = [{"instruction": f"Question {i}?", "context": "" if i % 3 else f"Some context {i}.",
             "response": f"Answer {i}.", "category": "open_qa"} for i in range(40)]
    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got, _ = camels_records("dolly", path)
    assert got == study([(r["instruction"], r["context"], r["response"]) for r in rows])


def test_unnatural_constraints_as_the_study_checks_them(tmp_path):
    """Unnatural Instructions: per instance in order, the constraints go on a new line after the instruction
    unless they are falsy or, lower-cased *as written*, "none" or "none." (so " None" with a space is
    appended); the instruction is stripped only after that, by the template."""
    tasks = [
        {"instruction": "Classify the sentence. ", "instances": [
            {"input": "Is it raining?", "output": "Yes", "constraints": "Answer 'Yes' or 'No'."},
            {"input": "It rains.", "output": "No", "constraints": "None."},
            {"input": "Why?", "output": "Yes", "constraints": " None"},
            {"input": "", "output": "No", "constraints": ""}]},
        {"instruction": "Count the vowels.", "instances": [
            {"input": "banana", "output": "3", "constraints": "NONE"}]},
    ]
    path = tmp_path / "core_data.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))

    def instruction_of(instruction, c):
        return instruction + "\n" + c if c and c.lower() not in ["none", "none."] else instruction

    rows = [(instruction_of(t["instruction"], i["constraints"]), i["input"], i["output"])
            for t in tasks for i in t["instances"]]
    assert rows[2][0] == "Classify the sentence. \n None"
    got, _ = camels_records("unnatural", path)
    assert got == study(rows)
    assert "Classify the sentence. \n None" in got[2][0][1]
    camels_way, _ = camels_records("unnatural", path, constraints="stripped")
    assert "None" not in camels_way[2][0][1]


def superni_task(name: str, n_instances: int, n_positive: int) -> dict:
    return {"Definition": [f"Definition of {name}. "],
            "Positive Examples": [{"input": f"{name} ex {k}", "output": f"{name} out {k}", "explanation": "."}
                                  for k in range(n_positive)],
            "Instances": [{"id": f"{name}-{i}", "input": f"{name} in {i}", "output": [f"{name} ans {i}", "alt"]}
                          for i in range(n_instances)]}


def test_superni_as_the_study_samples_it(tmp_path):
    """SuperNI (``convert_super_ni_data``): tasks in the task list's order, ``_mmmlu_`` tasks left out; per
    task ``random.sample(instances, 80)`` when it has more than 80, else all in file order; the first 60
    zero-shot (one template draw each), then for each remaining instance ``random.sample(positives, 2)``
    when there are more than 2, else all of them; the prompt is the stripped definition, then
    ``Input:\\n{in}\\nOutput:\\n{out}`` blocks separated by blank lines, then the instance's ``Input:`` and
    ``Output:`` lines."""
    tasks = {"task002_big": superni_task("task002_big", 130, 5), "task001_small": superni_task("task001_small", 70, 2),
             "task003_mmmlu_x": superni_task("task003_mmmlu_x", 90, 3)}
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, task in tasks.items():
        (folder / f"{name}.json").write_text(json.dumps(task))
    listing = tmp_path / "train_tasks.txt"
    listing.write_text("task002_big\ntask003_mmmlu_x\ntask001_small\n")

    rng = random.Random(42)
    expected = []
    for name in ("task002_big", "task001_small"):  # list order, mmmlu left out
        task = tasks[name]
        instances = task["Instances"]
        if 80 < len(instances):
            instances = rng.sample(instances, k=80)
        definition = task["Definition"][0]
        for inst in instances[:60]:
            expected.append(encode(rng, definition, inst["input"], inst["output"][0]))
        for inst in instances[60:]:
            positives = task["Positive Examples"]
            shots = rng.sample(positives, k=2) if 2 < len(positives) else positives
            prompt = definition.strip() + "\n\n" + "".join(
                f"Input:\n{s['input'].strip()}\nOutput:\n{s['output'].strip()}\n\n" for s in shots)
            prompt += f"Input:\n{inst['input'].strip()}\nOutput:\n"
            expected.append([("user", prompt.strip()), ("assistant", inst["output"][0].strip())])
    out = tmp_path / "superni.jsonl"
    m = convert("superni", [folder], out, options={"tasks": str(listing)}, progress=False)
    got = [[(x["role"], x["content"]) for x in json.loads(line)["messages"]] for line in out.read_text().splitlines()]
    assert len(expected) == 80 + 70 and m.records_in == 2
    assert got == expected
    shots = [json.loads(line)["meta"]["shots"] for line in out.read_text().splitlines()]
    assert shots == [0] * 60 + [2] * 20 + [0] * 60 + [2] * 10


def study_oasst_paths(tree: dict, top_k: int | None) -> list[list[tuple[str, str]]]:
    """The study's ``convert_oasst1_data`` (853377e / 503407e) on one tree: a depth-first walk that skips
    deleted messages; a path is kept when it reaches an assistant message whose ``replies`` list is empty;
    children are the non-deleted replies in file order, with ``top_k`` sorted by quality (absent = 0.0,
    highest first, stable) and cut to k."""
    out: list[list[tuple[str, str]]] = []

    def children(node):
        kids = [c for c in node["replies"] if not c["deleted"]]
        if top_k is None:
            return kids
        # the study sets a missing quality label to 0.0; these real trees have no ``labels`` at all (the study's
        # code would stop with a KeyError on them), so every reply counts as 0.0 and file order decides
        return sorted(kids, key=lambda c: (c.get("labels") or {}).get("quality", {"value": 0.0})["value"],
                      reverse=True)[:top_k]

    def walk(node, path):
        if node["deleted"]:
            return
        role = "assistant" if node["role"] == "assistant" else "user"
        path = [*path, (role, node["text"].strip())]
        if node["role"] == "assistant" and not node["replies"]:
            out.append(path)
            return
        for child in children(node):
            walk(child, path)

    walk(tree["prompt"], [])
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("top_k, n", [(None, 400), (1, 61), (2, 185)])
def test_oasst_paths_as_the_study_walks_the_real_trees(realdata, top_k, n):
    path = realdata / "oasst/model/model_eval/manual/data/en_100_tree.jsonl"
    expected = [p for line in path.read_text().splitlines() for p in study_oasst_paths(json.loads(line), top_k)]
    got, tally = camels_records("oasst1", path, top_k=top_k)
    assert len(expected) == n
    assert got == expected
    # trees where no path reaches an assistant leaf give nothing; they are counted by reason
    assert tally.records_in == 100 and tally.records_out + tally.skipped["no_assistant_reply"] == 100


def test_oasst_top_k_orders_by_quality_not_rank():
    """With ``top_k`` the study keeps the replies of highest ``labels.quality.value`` (absent = 0.0; ties in
    file order), whatever their ``rank``; camels' ``order=rank`` keeps rank 0 first."""
    def reply(text, rank, q=None):
        node = {"role": "assistant", "text": text, "rank": rank, "deleted": False, "replies": [], "labels": {}}
        if q is not None:
            node["labels"]["quality"] = {"value": q, "count": 3}
        return node

    tree = {"message_tree_id": "t", "prompt": {"role": "prompter", "text": "Hi", "deleted": False, "labels": {},
            "replies": [reply("ranked best", 0, 0.2), reply("no label", 1), reply("best quality", 2, 0.9),
                        reply("also 0.2", 3, 0.2)]}}
    for k in (1, 2, 3):
        expected = study_oasst_paths(tree, k)
        got = [[(m.role, m.content) for m in c.messages]
               for c in SOURCES["oasst1"].convert(tree, Context("oasst1", options=SOURCES["oasst1"].defaults | {
                   "top_k": k}))]
        assert got == expected
    assert [p[1][1] for p in study_oasst_paths(tree, 3)] == ["best quality", "ranked best", "also 0.2"]
    by_rank = SOURCES["oasst1"].convert(tree, Context("oasst1", options=SOURCES["oasst1"].defaults | {
        "top_k": 1, "order": "rank"}))
    assert by_rank[0].messages[1].content == "ranked best"


def study_sharegpt(samples: list[dict], max_length: int, fix_last_chunk: bool) -> list[list[tuple[str, str]]]:
    """The study's ShareGPT preparation (``scripts/split_sharegpt_conversations.py``, e44fcf5, then
    ``convert_sharegpt_data``), with its tokenizer's count emulated: ``len(tokenizer(v).input_ids)`` is the
    text's tokens plus LLaMA's BOS; here a token is a whitespace word, so it is ``len(v.split()) + 1``.

    ``fix_last_chunk=False`` is the script as written: when the budget is exceeded at the last pair, the
    chunk holding that pair is never emitted. ``True`` adds it (camels' fix)."""
    chunks = []
    for sample in samples:
        conv = sample["conversations"][: len(sample["conversations"]) // 2 * 2]
        lens = [len(c["value"].split()) + 1 + 6 for c in conv]
        if len(conv) < 2:
            continue
        start, cur = 0, 0
        for i in range(0, len(conv), 2):
            tmp = lens[i] + lens[i + 1]
            if cur + tmp > max_length:
                chunks.append(conv[start:i])
                start = i + 2 if tmp > max_length else i
                cur = 0
                if fix_last_chunk and i == len(conv) - 2 and start == i:
                    chunks.append(conv[i:i + 2])
            elif i == len(conv) - 2:
                chunks.append(conv[start:i + 2])
            cur += tmp
    # filter_invalid_roles: non-empty, speakers exactly human, gpt, human, gpt ...
    valid = [c for c in chunks if c and all(m["from"] == ("human", "gpt")[j % 2] for j, m in enumerate(c))]
    return [[("user" if m["from"] == "human" else "assistant", m["value"].strip()) for m in c] for c in valid]


def sharegpt_samples() -> list[dict]:
    def words(n, tag):
        return " ".join(f"{tag}{k}" for k in range(n))

    def conv(id_, *turns):
        return {"id": id_, "conversations": [{"from": s, "value": v} for s, v in turns]}

    h, g = "human", "gpt"
    return [
        conv("short", (h, words(3, "q")), (g, words(4, "a"))),
        # budget 40, 7 per message: pairs cost 2 * 7 + words; the third pair overflows at the last pair
        conv("split_at_last", (h, words(3, "q")), (g, words(3, "a")), (h, words(2, "r")), (g, words(2, "b")),
             (h, words(5, "s")), (g, words(5, "c"))),
        conv("long_pair", (h, words(2, "q")), (g, words(30, "a")), (h, words(2, "r")), (g, words(2, "b"))),
        conv("long_then_last", (h, words(2, "q")), (g, words(2, "a")), (h, words(40, "r")), (g, words(2, "b")),
             (h, words(2, "s")), (g, words(2, "c"))),
        conv("system_first", ("system", "Be brief."), (h, "Hi"), (g, "Hello"), (h, "Bye")),
        conv("bing_later", (h, words(6, "q")), (g, words(6, "a")), (h, words(6, "r")), ("bing", words(6, "b"))),
        conv("odd", (h, "one"), (g, "two"), (h, "three")),
        conv("user_role", ("user", "x"), ("chatgpt", "y")),
    ]


def test_sharegpt_split_as_the_study_with_the_last_chunk_fixed(tmp_path):
    samples = sharegpt_samples()
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(samples))
    got, tally = camels_records("sharegpt", path, max_tokens=40)
    fixed = study_sharegpt(samples, 40, fix_last_chunk=True)
    assert got == fixed
    as_written = study_sharegpt(samples, 40, fix_last_chunk=False)
    lost = [c for c in fixed if c not in as_written]
    # 40 tokens, 7 per message: "split_at_last" packs pairs of 20 and 18, then its last pair (24) overflows
    # and is lost by the script; "long_pair" drops its first pair (46 > 40) and the script then loses its
    # last pair (18) the same way; "long_then_last" keeps 18, drops 56, loses its last 18
    assert [c[0][1].split()[0] for c in lost] == ["s0", "r0", "s0"] and len(fixed) == len(as_written) + 3
    # "system_first" gives one chunk opening with the system message; "user_role" has no human/gpt speaker;
    # "bing_later" keeps its first chunk and drops its second; the two over-long pairs are counted
    assert tally.skipped == {"system_turn": 1, "other_role": 1}
    assert tally.dropped_parts == {"dropped_chunks": 1, "dropped_pairs": 2}


LOST_AT_40 = 333  # chunks the script as written never emits at this budget (camels emits them)


@pytest.mark.realdata
@pytest.mark.parametrize("budget", [2048, 40])
def test_sharegpt_real_file_as_the_study(realdata, budget):
    """The real ShareGPT-format file (FastChat's 500 identity conversations): at the study's 2048 nothing
    is split; at 40 tokens the split rule is exercised on every longer conversation."""
    path = realdata / "sharegpt_format/data/dummy_conversation.json"
    samples = json.loads(path.read_text())
    got, tally = camels_records("sharegpt", path, max_tokens=budget)
    assert got == study_sharegpt(samples, budget, fix_last_chunk=True)
    lost = len(got) - len(study_sharegpt(samples, budget, fix_last_chunk=False))
    assert (len(got), lost, tally.records_in) == {2048: (500, 0, 500), 40: (997, LOST_AT_40, 500)}[budget]


def study_baize(transcript: str) -> list[tuple[str, str]]:
    """The study's ``convert_baize_data`` on one transcript (raises ValueError on several [|AI|] markers)."""
    messages = []
    for part in transcript.split("[|Human|]")[1:]:
        if not part.strip() or "[|AI|]" not in part:
            continue
        human, assistant = part.split("[|AI|]")
        messages += [("user", human.strip()), ("assistant", assistant.strip())]
    return messages


def test_baize_as_the_study_and_its_departures(tmp_path):
    pre = "The conversation between human and AI assistant.\n"
    rows = [
        {"topic": "two rounds", "input": pre + "[|Human|] Hi\n[|AI|] Hello!\n[|Human|] 2+2?\n[|AI|] 4.\n[|Human|] "},
        {"topic": "no AI part", "input": pre + "[|Human|] First\n[|Human|] Second\n[|AI|] Answer.\n[|Human|] "},
        {"topic": "empty last answer", "input": pre + "[|Human|] Anyone?\n[|AI|] "},
        {"topic": "several markers", "input": pre + "[|Human|] A\n[|AI|] B\n[|AI|] C\n[|Human|] D\n[|AI|] E"},
        {"topic": "empty middle answer", "input": pre + "[|Human|] A\n[|AI|] \n[|Human|] B\n[|AI|] C"},
    ]
    path = tmp_path / "baize.json"
    path.write_text(json.dumps(rows))
    got, tally = camels_records("baize", path)
    # the first three follow the study exactly (the empty last answer is kept, meta.empty_answer)
    assert got[:3] == [study_baize(r["input"]) for r in rows[:3]]
    # several [|AI|] markers: the study's script stops (two values expected); camels drops that round
    with pytest.raises(ValueError):
        study_baize(rows[3]["input"])
    assert got[3] == [("user", "D"), ("assistant", "E")]
    # an empty answer before the last round cannot be a camels turn: that round is dropped
    assert study_baize(rows[4]["input"])[:2] == [("user", "A"), ("assistant", "")]
    assert got[4] == study_baize(rows[4]["input"])[2:]
    assert tally.kept == {"empty_answer": 1} and tally.dropped_parts == {"dropped_rounds": 3}


def test_tulu_v1_mixture_draws_the_study_sample(tmp_path):
    """The shipped ``tulu-v1`` mixture on small synthetic pools of every source, counts scaled down (CoT
    50k + 50k -> 5 + 5, Flan V2 100k -> 8). The study (``reformat_datasets.py``, 503407e, converting CoT
    right after ``random.seed(42)``): ``random.sample(zero_shot_examples, k)``, then
    ``random.sample(few_shot_examples, k)``; every other source whole. Flan V2's file is the study's own
    100k resample (taken whole); a larger Flan pool is sampled after CoT, from the same stream."""
    import dataclasses

    from camels.data.mixture import load_mixture, mix

    def flan_rows(tag, n):
        return [{"inputs": f"{tag} question {i}", "targets": f"{tag} answer {i}"} for i in range(n)]

    raw = {
        "cot_zs": ("cot", "cot_zsopt.jsonl", flan_rows("zs", 23)),
        "cot_fs": ("cot", "cot_fsopt.jsonl", flan_rows("fs", 17)),
        "flan_v2": ("flan_v2", "flan.jsonl", flan_rows("flan", 8)),
        "oasst1": ("oasst1", "oasst.jsonl", [{"message_tree_id": f"t{i}", "prompt": {
            "role": "prompter", "text": f"oasst q {i}", "deleted": False, "labels": {}, "replies": [
                {"role": "assistant", "text": f"oasst a {i}", "deleted": False, "labels": {}, "replies": []}]}}
            for i in range(3)]),
        "dolly": ("dolly", "dolly.jsonl", [{"instruction": f"dolly q {i}", "context": "", "response": f"dolly a {i}"}
                                           for i in range(4)]),
        "gpt4_alpaca": ("gpt4_alpaca", "gpt4.jsonl", [{"instruction": f"gpt4 q {i}", "input": "",
                                                       "output": f"gpt4 a {i}"} for i in range(3)]),
        "code_alpaca": ("code_alpaca", "code.jsonl", [{"instruction": f"code q {i}", "input": "",
                                                       "output": f"code a {i}"} for i in range(3)]),
        "sharegpt": ("sharegpt", "sg.jsonl", [{"id": f"s{i}", "conversations": [
            {"from": "human", "value": f"sg q {i}"}, {"from": "gpt", "value": f"sg a {i}"}]} for i in range(3)]),
    }

    def build(flan_n):
        raw["flan_v2"] = ("flan_v2", "flan.jsonl", flan_rows("flan", flan_n))
        inputs = {}
        for name, (source, fname, rows) in raw.items():
            path = tmp_path / fname
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            convert(source, [path], tmp_path / f"{name}.conv.jsonl", progress=False)
            inputs[name] = str(tmp_path / f"{name}.conv.jsonl")
        tulu = load_mixture("tulu-v1")
        scaled = {"cot_zs": 5, "cot_fs": 5, "flan_v2": 8}
        tulu = dataclasses.replace(tulu, sources=tuple(
            dataclasses.replace(s, count=scaled.get(s.name, s.count)) for s in tulu.sources))
        mix(tulu.with_inputs(inputs), tmp_path / "mix.jsonl", show_progress=False)
        answers: dict[str, set[str]] = {}
        for line in (tmp_path / "mix.jsonl").read_text().splitlines():
            answer = json.loads(line)["messages"][-1]["content"]
            answers.setdefault(answer.split()[0], set()).add(answer)
        return answers

    rng = random.Random(42)
    zs = rng.sample(raw["cot_zs"][2], k=5)
    fs = rng.sample(raw["cot_fs"][2], k=5)
    got = build(8)
    assert got["zs"] == {r["targets"] for r in zs} and got["fs"] == {r["targets"] for r in fs}
    assert got["flan"] == {f"flan answer {i}" for i in range(8)}  # the resampled file, whole
    assert {k: len(v) for k, v in got.items()} == {"zs": 5, "fs": 5, "flan": 8, "oasst": 3, "dolly": 4,
                                                   "gpt4": 3, "code": 3, "sg": 3}
    # a larger Flan pool: CoT's picks do not move, Flan's 8 come next from the same stream
    flan = rng.sample(flan_rows("flan", 30), k=8)
    got = build(30)
    assert got["zs"] == {r["targets"] for r in zs} and got["fs"] == {r["targets"] for r in fs}
    assert got["flan"] == {r["targets"] for r in flan}


def test_cot_and_flan_exports_as_the_study(tmp_path):
    """``convert_cot_data`` / ``convert_flan_v2_data``: the prompt is ``inputs`` (plus a newline unless it
    ends with one or with ":"), the answer ``targets``, every row kept (an empty target too)."""
    rows = [{"inputs": "Q: 2 + 2?\nA:", "targets": "4", "task_name": "cot_gsm8k", "template_type": "zs_opt"},
            {"inputs": "Is ice cold?", "targets": "Ice is frozen water. So the answer is yes."},
            {"inputs": "Say nothing.", "targets": ""}]
    path = tmp_path / "cot_zsopt.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def study(row):
        prompt = row["inputs"]
        if not prompt.endswith("\n") and not prompt.rstrip().endswith(":"):
            prompt += "\n"
        return [("user", prompt.strip()), ("assistant", row["targets"].strip())]

    for source in ("cot", "flan_v2"):
        got, tally = camels_records(source, path)
        assert got == [study(r) for r in rows] and tally.kept == {"empty_answer": 1}
