"""``camels data mix | decontaminate | stats`` end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camels.cli import main

BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
GSM_Q = ("A baker fills twelve trays with forty muffins each and sells three quarters of them before noon on "
         "Saturday. How many muffins are left?")


def write_source(path: Path, source: str, n: int, plant: str | None = None) -> Path:
    rows = []
    for i in range(n):
        user = plant if (plant and i == 0) else f"question number {i} from {source}"
        rows.append({"dataset": source, "id": f"{source}-{i}", "messages": [
            {"role": "user", "content": user}, {"role": "assistant", "content": f"the answer is {i}"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CAMELS_PROGRESS", "0")


def test_mix_named_mixture_with_inputs(tmp_path, capsys):
    ins = {s: write_source(tmp_path / f"{s}.jsonl", s, n) for s, n in
           [("flan_v2", 30), ("cot_zs", 20), ("cot_fs", 10), ("dolly", 4), ("oasst1", 3)]}
    args = ["data", "mix", "human", "-o", str(tmp_path / "mix.jsonl"), "--seed", "5"]
    for s, p in ins.items():
        args += ["--input", f"{s}={p}"]
    assert main(args) == 0
    out = capsys.readouterr()
    # flan_v2 wants 100000, CoT 50000 of each export: up-sampled, and said so
    assert "flan_v2: up-sampled 30 -> 100000" in out.err
    lines = (tmp_path / "mix.jsonl").read_text().splitlines()
    assert len(lines) == 200007
    man = json.loads((tmp_path / "mix.manifest.json").read_text())
    assert man["per_source"] == {"cot_fs": 50000, "cot_zs": 50000, "dolly": 4, "flan_v2": 100000, "oasst1": 3}
    assert man["mixture"] == {"name": "human", "seed": 5, "version": 2}
    assert man["duplicates"] == {"cot_fs": 49990, "cot_zs": 49980, "flan_v2": 99970}
    assert "wrote 200007 conversations" in out.out
    assert out.out.splitlines()[0].split() == ["source", "available", "out", "downsampled", "duplicates",
                                               "skipped"]


def test_mix_single_and_errors(tmp_path, capsys):
    p = write_source(tmp_path / "dolly.jsonl", "dolly", 10)
    assert main(["data", "mix", "single:dolly:4", "--input", f"dolly={p}", "-o", str(tmp_path / "o.jsonl")]) == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 4
    capsys.readouterr()
    assert main(["data", "mix", "single:dolly", "-o", str(tmp_path / "o2.jsonl")]) == 1
    assert "give --input dolly=PATH" in capsys.readouterr().err
    assert main(["data", "mix", "single:dolly", "--input", "nope", "-o", str(tmp_path / "o2.jsonl")]) == 1
    assert "expected SOURCE=PATH" in capsys.readouterr().err
    assert main(["data", "mix", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "tulu-v1\t" in listed and "human\t" in listed


def test_mix_strict_error_names_file_line_field(tmp_path, capsys):
    p = tmp_path / "d.jsonl"
    p.write_text('{"dataset": "d", "id": "1", "messages": [{"role": "user", "content": ""}]}\n')
    assert main(["data", "mix", "single:d", "--input", f"d={p}", "-o", str(tmp_path / "o.jsonl")]) == 1
    assert f"{p}:1: messages[0].content: content is empty after stripping" in capsys.readouterr().err
    assert main(["data", "mix", "single:d", "--input", f"d={p}", "-o", str(tmp_path / "o.jsonl"),
                 "--lenient"]) == 1  # nothing valid left to take: a clear error, not an empty file
    assert "no valid records" in capsys.readouterr().err


def test_decontaminate_cli(tmp_path, capsys):
    train = write_source(tmp_path / "t.jsonl", "src", 5, plant=f"Solve this: {GSM_Q}")
    report = tmp_path / "r.json"
    rc = main(["data", "decontaminate", str(train), "--benchmarks", f"gsm8k={BENCH / 'gsm8k'}",
               f"bbh={BENCH / 'bbh'}", "--drop", "-o", str(tmp_path / "clean.jsonl"), "--report", str(report)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "gsm8k: 1 items" in out
    row = next(x for x in out.splitlines() if x.startswith("src "))
    assert row.split() == ["src", "5", "0", "1", "1", "20.00%"]
    assert len((tmp_path / "clean.jsonl").read_text().splitlines()) == 4
    rep = json.loads(report.read_text())
    assert rep["contaminated"] == 1 and rep["benchmarks"]["gsm8k"]["examples"][0]["id"] == "src-0"
    man = json.loads((tmp_path / "clean.manifest.json").read_text())
    assert man["dropped"] == {"contaminated:gsm8k": {"src": 1}}
    assert main(["data", "decontaminate", str(train), "-b", str(BENCH), "--drop"]) == 1
    assert "--drop needs -o" in capsys.readouterr().err


def test_stats_cli(tmp_path, capsys):
    p = write_source(tmp_path / "s.jsonl", "s", 3)
    assert main(["data", "stats", str(p), "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split() == ["s", "3", "1.00", "5.0", "4.0"]
    assert (tmp_path / "s.csv").read_text().splitlines()[1] == "s,3,1.0000,5.0000,4.0000,whitespace"
    assert main(["data", "stats", str(p), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[-1]["source"] == "all" and rows[-1]["instances"] == 3
