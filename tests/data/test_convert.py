"""``camels data convert``: readers, strict and lenient handling of bad input, manifest, determinism, CLI."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import pytest

from camels.cli import main
from camels.core.errors import ConfigError, RecordError
from camels.data.convert import convert, detect_format, iter_conversations, parse_option
from camels.data.manifest import read_manifest

GOOD = '{"instruction": "Say hi.", "input": "", "output": "hi"}'

# (kind, second line of an alpaca JSONL file, reason, located message)
BAD_LINES = [
    ("malformed_json", '{"instruction": "x", "output": ', "bad_json", "bad.jsonl:2: malformed JSON"),
    ("missing_field", '{"instruction": "x"}', "missing_field", "bad.jsonl:2: output: required field is missing"),
    ("mistyped_field", '{"instruction": "x", "output": 5}', "bad_type",
     "bad.jsonl:2: output: expected a string, got number"),
    ("empty_turn", '{"instruction": "  ", "output": "x"}', "empty_content",
     "bad.jsonl:2: instruction: text is empty"),
    ("not_an_object", '["x", "y"]', "bad_type", "bad.jsonl:2: expected a JSON object, got array"),
]


def write_bad(tmp_path, line: str | bytes, name="bad.jsonl"):
    path = tmp_path / name
    body = line if isinstance(line, bytes) else line.encode()
    path.write_bytes(GOOD.encode() + b"\n" + body + b"\n" + GOOD.replace("hi", "hello").encode() + b"\n")
    return path


@pytest.mark.parametrize("kind, line, reason, message", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_record_strict_names_file_line_field(tmp_path, kind, line, reason, message):
    path = write_bad(tmp_path, line)
    out = tmp_path / "out.jsonl"
    with pytest.raises(RecordError) as e:
        convert("alpaca", [path], out, progress=False)
    assert e.value.reason == reason
    assert str(e.value).startswith(str(tmp_path / message))
    assert e.value.line == 2
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("kind, line, reason, message", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_record_lenient_counted(tmp_path, kind, line, reason, message):
    path = write_bad(tmp_path, line)
    out = tmp_path / "out.jsonl"
    m = convert("alpaca", [path], out, lenient=True, progress=False)
    assert (m.records_in, m.records_out, dict(m.skipped)) == (3, 2, {reason: 1})
    assert m.records_in == m.records_out + sum(m.skipped.values())
    lines = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["bad:0", "bad:2"]
    written = read_manifest(out)
    assert written["skipped"] == {reason: 1} and written["records_in"] == 3 and written["records_out"] == 2
    assert written["skip_examples"][reason][0].startswith(str(tmp_path / message))
    assert written["output"]["lines"] == 2


def test_invalid_utf8_line(tmp_path):
    path = write_bad(tmp_path, b'{"instruction": "caf\xe9", "output": "x"}')
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: invalid UTF-8 at byte") as e:
        convert("alpaca", [path], tmp_path / "o.jsonl", progress=False)
    assert e.value.reason == "bad_utf8"
    m = convert("alpaca", [path], tmp_path / "o.jsonl", lenient=True, progress=False)
    assert (m.records_in, m.records_out, dict(m.skipped)) == (3, 2, {"bad_utf8": 1})


def test_unknown_role(tmp_path):
    good = '{"id": "a", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    bad = '{"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}'
    path = tmp_path / "chats.jsonl"
    path.write_text(f"{good}\n{bad}\n")
    with pytest.raises(RecordError) as e:
        convert("messages", [path], tmp_path / "o.jsonl", progress=False)
    assert str(e.value) == (f"{path}:2: messages[1].role: unknown role 'bot' "
                            "(expected system, user or assistant)")
    m = convert("messages", [path], tmp_path / "o.jsonl", lenient=True, progress=False)
    assert (m.records_in, m.records_out, dict(m.skipped)) == (2, 1, {"unknown_role": 1})


def test_json_list_errors_name_the_element_index(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ["d"]}]))
    with pytest.raises(RecordError) as e:
        convert("alpaca", [path], tmp_path / "o.jsonl", progress=False)
    assert str(e.value) == f"{path}: [1].output: expected a string, got array"


def test_wrong_format_fails_early_in_both_modes(fixtures, tmp_path):
    for lenient in (False, True):
        with pytest.raises(RecordError) as e:
            convert("oasst1", [fixtures / "raw" / "alpaca.json"], tmp_path / "o.jsonl", lenient=lenient,
                    progress=False)
        assert e.value.reason == "wrong_format"
        assert "[0]: this does not look like oasst1 data: the first record is an object with fields " \
               "instruction, input, output" in str(e.value)
    with pytest.raises(RecordError, match="source alpaca does not read tsv files") as e:
        convert("alpaca", [fixtures / "raw" / "cot.tsv"], tmp_path / "o.jsonl", progress=False)
    with pytest.raises(RecordError, match="does not look like superni data"):
        convert("superni", [fixtures / "raw" / "alpaca.json"], tmp_path / "o.jsonl", progress=False)


def test_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("hello\nworld\n")
    with pytest.raises(RecordError, match=r"notes\.json:1: malformed JSON"):
        convert("alpaca", [path], tmp_path / "o.jsonl", progress=False)


def test_formats_detected_gz_and_jsonl_named_json(fixtures, tmp_path):
    src = fixtures / "raw" / "dolly.jsonl"
    gz = tmp_path / "dolly.jsonl.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    named_json = tmp_path / "dolly.json"
    shutil.copy(src, named_json)
    assert [detect_format(p) for p in (src, gz, named_json, fixtures / "raw" / "alpaca.json",
                                       fixtures / "raw" / "cot.tsv", "hf:org/name:train")] == \
        ["jsonl", "jsonl", "jsonl", "json", "tsv", "hf"]
    expected = [c.to_json() for c in iter_conversations("dolly", src)]
    assert [c.to_json() for c in iter_conversations("dolly", gz)] == expected
    assert [c.to_json() for c in iter_conversations("dolly", named_json)] == expected


def test_parquet_reader(fixtures, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (fixtures / "raw" / "oasst_messages.jsonl").read_text().splitlines()]
    for r in rows:
        r["labels"] = json.dumps(r["labels"])  # keep one column type; labels are not needed here
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "oasst.parquet")
    out = list(iter_conversations("oasst1", tmp_path / "oasst.parquet", errors=[]))
    assert [c.id for c in out] == ["t1#0", "t1#1"]


def test_manifest_and_determinism(fixtures, tmp_path):
    inputs = [fixtures / "raw" / "sharegpt.json"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    m = convert("sharegpt", inputs, a, progress=False)
    convert("sharegpt", inputs, b, progress=False)
    assert a.read_bytes() == b.read_bytes()
    man = read_manifest(a)
    assert (man["kind"], man["records_in"], man["records_out"], man["skipped"], man["conversations_out"]) == \
        ("convert", 5, 2, {"non_alternating": 1, "other_role": 1, "system_turn": 1}, 2)
    assert man["per_source"] == {"sharegpt": 2}
    assert man["config"] == {"source": "sharegpt", "seed": 42, "lenient": False, "preset": "tulu-v1",
                             "options": {"max_tokens": 2048, "overhead": 7, "rules": "study"}, "tasks": None,
                             "tokenizer": "whitespace"}
    assert man["kept"] == {}
    assert man["inputs"][0]["records"] == 5 and len(man["inputs"][0]["sha256"]) == 64
    assert m.records_in == m.records_out + sum(m.skipped.values())


def test_seed_changes_templates_only(fixtures, tmp_path):
    a = convert("code_alpaca", [fixtures / "raw" / "alpaca.json"], tmp_path / "a.jsonl", seed=1, progress=False)
    assert a.records_out == 3
    one = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    convert("code_alpaca", [fixtures / "raw" / "alpaca.json"], tmp_path / "b.jsonl", seed=7, progress=False)
    seven = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["messages"][1] for r in one] == [r["messages"][1] for r in seven]
    assert [r["id"] for r in one] == [r["id"] for r in seven] == ["alpaca:0", "alpaca:1", "alpaca:2"]


def test_record_draw_is_independent_of_chunking_and_order(fixtures, tmp_path):
    """camels' ``draw=record``: a record's template depends on (seed, source, id) only."""
    lines = (fixtures / "raw" / "seed_tasks.jsonl").read_text().splitlines()
    (tmp_path / "part1.jsonl").write_text(lines[1] + "\n")
    (tmp_path / "part2.jsonl").write_text(lines[0] + "\n")
    opts = {"draw": "record"}
    whole = {c.id: c.to_json() for c in iter_conversations("self_instruct", fixtures / "raw" / "seed_tasks.jsonl",
                                                           options=opts)}
    parts = {c.id: c.to_json() for c in iter_conversations("self_instruct", tmp_path, options=opts)}
    assert parts == whole and len(whole) == 3


def test_stream_draw_follows_file_order(tmp_path):
    """The study's ``draw=stream``: one generator seeded with 42, one draw per record in file order, over
    all input files in the order given. Record 0 of the second file takes the stream's 4th draw."""
    import random

    rows = [{"instruction": f"Do {i}.", "input": "", "output": str(i)} for i in range(4)]
    (tmp_path / "a.json").write_text(json.dumps(rows[:3]))
    (tmp_path / "b.json").write_text(json.dumps(rows[3:]))
    out = tmp_path / "o.jsonl"
    convert("alpaca", [tmp_path / "a.json", tmp_path / "b.json"], out, progress=False)
    got = {json.loads(x)["messages"][1]["content"]: json.loads(x)["meta"]["template"]
           for x in out.read_text().splitlines()}
    # the study's 14 templates without input have weights .2 .1 .1 .05 x10 .1; random.choices draws one
    # random() per record and picks the first template whose cumulative weight exceeds random() * total
    weights = [0.2, 0.1, 0.1] + [0.05] * 10 + [0.1]
    rng = random.Random(42)
    expected = [f"tulu-noin-{rng.choices(range(14), weights=weights)[0]}" for _ in range(4)]
    assert got == dict(zip("0123", expected))
    convert("alpaca", [tmp_path / "b.json", tmp_path / "a.json"], out, progress=False)
    swapped = {json.loads(x)["messages"][1]["content"]: json.loads(x)["meta"]["template"]
               for x in out.read_text().splitlines()}
    assert swapped == dict(zip("3012", expected))  # b's record now takes the first draw
    assert len(set(expected)) > 1


def test_empty_output_kept_as_the_study_did_and_counted(tmp_path):
    path = write_bad(tmp_path, '{"instruction": "x", "output": "  "}')
    out = tmp_path / "out.jsonl"
    m = convert("alpaca", [path], out, progress=False)
    assert (m.records_in, m.records_out, dict(m.skipped), m.extra["kept"]) == (3, 3, {}, {"empty_answer": 1})
    second = json.loads(out.read_text().splitlines()[1])
    assert second["messages"][1] == {"role": "assistant", "content": ""} and second["meta"]["empty_answer"]
    assert read_manifest(out)["kept"] == {"empty_answer": 1}
    with pytest.raises(RecordError, match="bad.jsonl:2: output: text is empty"):
        convert("alpaca", [path], out, progress=False, preset="camels")
    with pytest.raises(RecordError, match="bad.jsonl:2: output: text is empty"):
        convert("alpaca", [path], out, progress=False, options={"empty_output": "refuse"})


def test_duplicate_ids_across_inputs(fixtures, tmp_path):
    path = fixtures / "raw" / "sharegpt.json"
    with pytest.raises(RecordError, match="conversation id 'ok1' is already in the output"):
        convert("sharegpt", [path, path], tmp_path / "o.jsonl", progress=False)
    m = convert("sharegpt", [path, path], tmp_path / "o.jsonl", lenient=True, progress=False)
    assert (m.records_in, m.records_out, m.skipped["duplicate_id"]) == (10, 2, 2)


def test_superni_task_list(fixtures, tmp_path):
    tasks = tmp_path / "train_tasks.txt"
    tasks.write_text("task001_other\ntask999_add_numbers\n")
    m = convert("superni", [fixtures / "raw" / "superni"], tmp_path / "o.jsonl", options={"tasks": str(tasks)},
                progress=False)
    assert (m.records_in, m.conversations_out) == (1, 5)
    tasks.write_text("task001_other\n")
    with pytest.raises(ConfigError, match="none of the 1 input files is a listed task"):
        convert("superni", [fixtures / "raw" / "superni"], tmp_path / "o.jsonl", options={"tasks": str(tasks)})


def test_options_checked_and_parsed(fixtures, tmp_path):
    with pytest.raises(ConfigError, match="source sharegpt has no option 'top_k' \\(options: max_tokens, overhead, rules\\)"):
        convert("sharegpt", [fixtures / "raw" / "sharegpt.json"], tmp_path / "o.jsonl", options={"top_k": 1})
    assert parse_option("max_tokens=4096") == ("max_tokens", 4096)
    assert parse_option("template=plain") == ("template", "plain")
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_option("oops")


def test_missing_input_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        convert("alpaca", [tmp_path / "nope.json"], tmp_path / "o.jsonl")


def test_cli_convert_prints_summary(fixtures, tmp_path, capsys):
    out = tmp_path / "oasst.jsonl"
    code = main(["data", "convert", "oasst1", str(fixtures / "raw" / "oasst_trees.jsonl"), "-o", str(out),
                 "--option", "top_k=1", "--no-progress"])
    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"oasst1: records in=2 out=2 skipped=0 (none); conversations=2 -> {out}")
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["t1", "t2"]
    assert read_manifest(out)["config"]["options"]["top_k"] == 1


def test_cli_lenient_summary_counts_reasons(tmp_path, capsys):
    path = write_bad(tmp_path, '{"instruction": "x"}')
    code = main(["data", "convert", "alpaca", str(path), "-o", str(tmp_path / "o.jsonl"), "--lenient",
                 "--no-progress"])
    assert code == 0
    assert "records in=3 out=2 skipped=1 (missing_field=1); conversations=2" in capsys.readouterr().out


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    path = write_bad(tmp_path, '{"instruction": "x", "output": 5}')
    proc = subprocess.run([sys.executable, "-m", "camels", "data", "convert", "alpaca", str(path), "-o",
                           str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"camels: error: {path}:2: output: expected a string, got number"]
    assert not (tmp_path / "o.jsonl").exists()


def test_hub_loading_path_with_a_stand_in_datasets_module(monkeypatch, tmp_path):
    import types

    calls = []

    def load_dataset(name, config=None, *, split, streaming):
        calls.append((name, config, split, streaming))
        return iter([{"instruction": "Say hi.", "input": "", "output": "hi"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    m = convert("alpaca", ["hf:tatsu-lab/alpaca"], tmp_path / "o.jsonl", progress=False)
    assert calls == [("tatsu-lab/alpaca", None, "train", True)]
    assert m.inputs == [{"path": "hf:tatsu-lab/alpaca", "source": "alpaca", "hub": True}]
    assert json.loads((tmp_path / "o.jsonl").read_text())["id"] == "tatsu-lab__alpaca:0"  # no path separator in an id
    list(iter_conversations("self_instruct", "hf:yizhongw/self_instruct:self_instruct:validation"))
    assert calls[-1] == ("yizhongw/self_instruct", "self_instruct", "validation", True)


def test_cli_tokenizer_by_path(fixtures, tmp_path, tiny_tok, capsys):
    tiny_tok.save_pretrained(tmp_path / "tok")
    out = tmp_path / "sg.jsonl"
    code = main(["data", "convert", "sharegpt", str(fixtures / "raw" / "sharegpt.json"), "-o", str(out),
                 "--tokenizer", str(tmp_path / "tok"), "--option", "max_tokens=1", "--no-progress",
                 "--preset", "camels"])
    assert code == 0
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert ids == ["ok1#0", "ok1#1", "sys1", "long1#0", "long1#1", "long1#2"]
    assert read_manifest(out)["config"]["tokenizer"] == str(tmp_path / "tok")
