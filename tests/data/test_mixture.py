"""Mixtures: exact counts with up/down-sampling, fractions, determinism, manifest, bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from camels.core.errors import ConfigError, RecordError
from camels.data.mixture import SourceSpec, load_mixture, mix, mixture_from_dict, select

ROOT = Path(__file__).resolve().parents[2]


def conv(source: str, i: int, text: str | None = None) -> dict:
    return {"dataset": source, "id": f"{source}-{i}",
            "messages": [{"role": "user", "content": text or f"question {i} of {source}"},
                         {"role": "assistant", "content": f"answer {i}"}]}


def write_source(path: Path, source: str, n: int) -> Path:
    path.write_text("".join(json.dumps(conv(source, i)) + "\n" for i in range(n)), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def three(tmp_path):
    return {
        "big": write_source(tmp_path / "big.jsonl", "big", 50),
        "small": write_source(tmp_path / "small.jsonl", "small", 7),
        "whole": write_source(tmp_path / "whole.jsonl", "whole", 10),
    }


def make(paths, **counts) -> object:
    return mixture_from_dict({"name": "t", "version": 3, "seed": 7,
                              "sources": {k: {"path": str(paths[k]), **v} for k, v in counts.items()}})


def test_exact_counts_down_up_all(three, tmp_path):
    m = make(three, big={"count": 20}, small={"count": 23}, whole={"count": "all"})
    out = tmp_path / "mix.jsonl"
    res = mix(m, out, show_progress=False)
    rows = lines(out)
    per = Counter(r["dataset"] for r in rows)
    assert per == {"big": 20, "small": 23, "whole": 10}
    assert res.written == 53
    # down-sampling: 20 distinct records of 50
    big_ids = [r["id"] for r in rows if r["dataset"] == "big"]
    assert len(set(big_ids)) == 20
    # up-sampling 7 -> 23: every record 3 times (21) plus 2 distinct records a 4th time
    small = Counter(r["id"] for r in rows if r["dataset"] == "small")
    assert sorted(small.values()) == [3, 3, 3, 3, 3, 4, 4]
    whole = Counter(r["id"] for r in rows if r["dataset"] == "whole")
    assert whole == {f"whole-{i}": 1 for i in range(10)}
    assert any("small: up-sampled 7 -> 23" in w for w in res.warnings)

    man = json.loads((tmp_path / "mix.manifest.json").read_text())
    assert man["kind"] == "mix"
    assert man["records_in"] == 67 and man["records_out"] == 67 and man["skipped"] == {}
    assert man["conversations_out"] == 53
    assert man["per_source"] == {"big": 20, "small": 23, "whole": 10}
    assert man["dropped"] == {"downsampled": {"big": 30}}
    assert man["duplicates"] == {"small": 16}
    assert man["sources"]["small"]["available"] == 7 and man["sources"]["small"]["out"] == 23
    assert man["sources"]["big"]["downsampled"] == 30
    assert man["mixture"] == {"name": "t", "version": 3, "seed": 7}
    assert man["config"]["sources"]["whole"]["count"] == "all"
    assert [i["source"] for i in man["inputs"]] == ["big", "small", "whole"]
    assert all(len(i["sha256"]) == 64 for i in man["inputs"])
    assert man["output"]["lines"] == 53
    for name, s in man["sources"].items():  # the invariant, read back from the file
        assert s["available"] - s["downsampled"] + s["duplicates"] == s["out"] == man["per_source"][name]


def test_fractions_round_half_up(three, tmp_path):
    m = make(three, big={"fraction": 0.25}, small={"fraction": 0.5}, whole={"fraction": 2.5})
    mix(m, tmp_path / "f.jsonl", show_progress=False)
    per = Counter(r["dataset"] for r in lines(tmp_path / "f.jsonl"))
    # 50 * 0.25 = 12.5 -> 13; 7 * 0.5 = 3.5 -> 4; 10 * 2.5 = 25 (two copies + 5)
    assert per == {"big": 13, "small": 4, "whole": 25}


def test_select_rules():
    sel = select(SourceSpec("s", ("x",), count=10), 4, seed=1)
    assert sorted(Counter(sel.picked).values()) == [2, 2, 3, 3] and sel.duplicates == 6
    sel = select(SourceSpec("s", ("x",), count=6), 10, seed=1)
    assert len(set(sel.picked)) == 6 and all(0 <= i < 10 for i in sel.picked) and sel.downsampled == 4
    sel = select(SourceSpec("s", ("x",), count=10, on_short="cap"), 4, seed=1)
    assert list(sel.picked) == [0, 1, 2, 3] and sel.short == 6 and sel.duplicates == 0
    with pytest.raises(ConfigError, match="10 conversations wanted but only 4"):
        select(SourceSpec("s", ("x",), count=10, on_short="error"), 4, seed=1)
    with pytest.raises(ConfigError, match="no valid records"):
        select(SourceSpec("s", ("x",), count=1), 0, seed=1)
    assert len(select(SourceSpec("s", ("x",), count=0), 5, seed=1).picked) == 0
    # the sample depends on the seed and the source name only
    a = select(SourceSpec("s", ("x",), count=5), 100, seed=1).picked
    assert a == select(SourceSpec("s", ("y",), count=5), 100, seed=1).picked
    assert a != select(SourceSpec("s", ("x",), count=5), 100, seed=2).picked


def test_byte_identical_and_seed_dependent(three, tmp_path):
    m = make(three, big={"count": 20}, small={"count": 23}, whole={"count": "all"})
    mix(m, tmp_path / "a.jsonl", show_progress=False)
    mix(m, tmp_path / "b.jsonl", show_progress=False)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    mix(m.with_seed(8), tmp_path / "c.jsonl", show_progress=False)
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    # the YAML's key order does not matter
    rev = make(three, whole={"count": "all"}, small={"count": 23}, big={"count": 20})
    mix(rev, tmp_path / "d.jsonl", show_progress=False)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "d.jsonl").read_bytes()


def test_byte_identical_across_processes_and_hash_seeds(three, tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "name: t\nversion: 1\nseed: 3\nsources:\n"
        + "".join(f"  {k}: {{path: {p}, count: {c}}}\n" for (k, p), c in zip(sorted(three.items()), (20, 23, 5))),
        encoding="utf-8",
    )
    outs = []
    for hashseed in ("0", "12345"):
        out = tmp_path / f"p{hashseed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "CAMELS_PROGRESS": "0"}
        r = subprocess.run([sys.executable, "-m", "camels", "data", "mix", str(cfg), "-o", str(out)],
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 48


def test_output_is_canonical(tmp_path):
    p = tmp_path / "loose.jsonl"
    rec = {"messages": [{"content": "  hi  ", "role": "user"}, {"role": "assistant", "content": "yo\n"}],
           "id": "l-0", "dataset": "loose"}
    p.write_text(json.dumps(rec, indent=None) + "\n\n", encoding="utf-8")
    mix(make({"loose": p}, loose={}), tmp_path / "o.jsonl", show_progress=False)
    assert (tmp_path / "o.jsonl").read_text(encoding="utf-8") == (
        '{"dataset":"loose","id":"l-0","messages":[{"role":"user","content":"hi"},'
        '{"role":"assistant","content":"yo"}]}\n'
    )


def test_gzip_input(tmp_path):
    p = tmp_path / "g.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        for i in range(6):
            f.write(json.dumps(conv("g", i)) + "\n")
    mix(make({"g": p}, g={"count": 4}), tmp_path / "o.jsonl", show_progress=False)
    assert Counter(r["dataset"] for r in lines(tmp_path / "o.jsonl")) == {"g": 4}
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".")]  # temporary files are gone


def test_bad_record_strict_and_lenient(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = [json.dumps(conv("b", i)) for i in range(4)]
    bad_role = json.dumps({"dataset": "b", "id": "x", "messages": [{"role": "bot", "content": "a"}]})
    p.write_text("\n".join([good[0], "{not json", good[1], bad_role, good[2], good[3]]) + "\n", encoding="utf-8")
    m = make({"b": p}, b={"count": "all"})
    with pytest.raises(RecordError) as e:
        mix(m, tmp_path / "o.jsonl", show_progress=False)
    assert e.value.line == 2 and e.value.file == str(p) and e.value.reason == "bad_json"
    assert not (tmp_path / "o.jsonl").exists()

    p.write_text("\n".join([good[0], good[1], bad_role, good[2]]) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as e:
        mix(m, tmp_path / "o.jsonl", show_progress=False)
    assert e.value.line == 3 and e.value.field == "messages[0].role"
    assert f"{p}:3: messages[0].role: unknown role 'bot'" in str(e.value)

    p.write_text("\n".join([good[0], "{not json", good[1], bad_role, good[2], good[3]]) + "\n", encoding="utf-8")
    mix(m, tmp_path / "o.jsonl", lenient=True, show_progress=False)
    assert [r["id"] for r in sorted(lines(tmp_path / "o.jsonl"), key=lambda r: r["id"])] == [
        "b-0", "b-1", "b-2", "b-3"]
    man = json.loads((tmp_path / "o.manifest.json").read_text())
    assert man["records_in"] == 6 and man["records_out"] == 4
    assert man["skipped"] == {"bad_json": 1, "unknown_role": 1}
    assert man["sources"]["b"]["skipped"] == {"bad_json": 1, "unknown_role": 1}


def test_config_errors(tmp_path, three):
    with pytest.raises(ConfigError, match="sources.a.cuont: unknown key"):
        mixture_from_dict({"name": "x", "sources": {"a": {"path": "p", "cuont": 3}}})
    with pytest.raises(ConfigError, match="either count or fraction"):
        mixture_from_dict({"name": "x", "sources": {"a": {"count": 3, "fraction": 0.5}}})
    with pytest.raises(ConfigError, match="count: expected a non-negative integer"):
        mixture_from_dict({"name": "x", "sources": {"a": {"count": -1}}})
    with pytest.raises(ConfigError, match="on_short"):
        mixture_from_dict({"name": "x", "sources": {"a": {"on_short": "loop"}}})
    m = make(three, big={"count": 2})
    with pytest.raises(ConfigError, match="has no source 'nope'"):
        m.with_inputs({"nope": "x.jsonl"})
    with pytest.raises(ConfigError, match="does not exist"):
        mix(m.with_inputs({"big": str(tmp_path / "missing.jsonl")}), tmp_path / "o.jsonl", show_progress=False)
    with pytest.raises(ConfigError, match="unknown mixture"):
        load_mixture("no-such-mixture")


def test_named_mixtures_match_the_study():
    tulu = load_mixture(str(ROOT / "configs" / "mixtures" / "tulu-v1.yaml"))
    rules = [(s.name, s.count, s.fraction) for s in tulu.sources]
    assert rules == [("cot_zs", 50000, None), ("cot_fs", 50000, None), ("flan_v2", 100000, None),
                     ("oasst1", None, None), ("dolly", None, None), ("gpt4_alpaca", None, None),
                     ("code_alpaca", None, None), ("sharegpt", None, None)]
    assert (tulu.sampling, tulu.seed) == ("study", 42)
    human = load_mixture(str(ROOT / "configs" / "mixtures" / "human.yaml"))
    assert [s.name for s in human.sources] == ["cot_zs", "cot_fs", "flan_v2", "dolly", "oasst1"]
    assert human.sampling == "study"
    single = load_mixture("single:dolly:500")
    assert [(s.name, s.count, s.files) for s in single.sources] == [("dolly", 500, ())]
    assert load_mixture("single:dolly").sources[0].count is None


def test_upstream_manifest_recorded(tmp_path):
    from camels.core.chat import Conversation
    from camels.data.manifest import Manifest

    p = tmp_path / "conv.jsonl"
    p.write_text("".join(Conversation.from_dict(conv("c", i)).to_json() + "\n" for i in range(3)), encoding="utf-8")
    up = Manifest(kind="convert")
    up.records_in = up.records_out = 3
    up.write(p)
    mix(make({"c": p}, c={}), tmp_path / "o.jsonl", show_progress=False)
    man = json.loads((tmp_path / "o.manifest.json").read_text())
    assert man["inputs"][0]["upstream_manifest"]["kind"] == "convert"
    assert man["inputs"][0]["upstream_manifest"]["matches_input"] is True
    assert sorted((tmp_path / "o.jsonl").read_text().splitlines()) == sorted(p.read_text().splitlines())

    # the file changed after its manifest was written: recorded as stale, and lines are re-serialised
    p.write_text("".join(json.dumps(conv("c", i)) + "\n" for i in range(3)), encoding="utf-8")
    mix(make({"c": p}, c={}), tmp_path / "o.jsonl", show_progress=False)
    man = json.loads((tmp_path / "o.manifest.json").read_text())
    assert man["inputs"][0]["upstream_manifest"]["matches_input"] is False
    assert sorted((tmp_path / "o.jsonl").read_text().splitlines()) == sorted(
        Conversation.from_dict(conv("c", i)).to_json() for i in range(3))


@pytest.mark.realdata
def test_convert_then_mix_real_code_alpaca(realdata, tmp_path):
    """Real Code-Alpaca (2k file, two records with an empty output, kept) converted, then mixed up to 3000 and
    down to 500: exact counts, the convert manifest is recognised, and the output is the converted lines
    themselves."""
    from camels.data.convert import convert

    raw = realdata / "code_alpaca" / "data" / "code_alpaca_2k.json"
    conv_path = tmp_path / "code_alpaca.jsonl"
    made = convert("code_alpaca", str(raw), conv_path, progress=False)  # two empty answers kept, as the study
    n = len(conv_path.read_text(encoding="utf-8").splitlines())
    assert n == made.conversations_out == 2017 and made.extra["kept"] == {"empty_answer": 2}
    m = load_mixture("single:code_alpaca:3000").with_inputs({"code_alpaca": str(conv_path)})
    res = mix(m, tmp_path / "up.jsonl", show_progress=False)
    assert res.written == 3000 and res.selections["code_alpaca"].duplicates == 983
    man = json.loads((tmp_path / "up.manifest.json").read_text())
    assert man["inputs"][0]["upstream_manifest"] == {
        "path": str(tmp_path / "code_alpaca.manifest.json"), "kind": "convert", "matches_input": True}
    src_lines = set(conv_path.read_text(encoding="utf-8").splitlines())
    out_lines = (tmp_path / "up.jsonl").read_text(encoding="utf-8").splitlines()
    assert set(out_lines) == src_lines  # every record at least once, nothing else
    assert sorted(Counter(out_lines).values()) == [1] * (2017 - 983) + [2] * 983
    mix(load_mixture("single:code_alpaca:500").with_inputs({"code_alpaca": str(conv_path)}),
        tmp_path / "down.jsonl", show_progress=False)
    down = (tmp_path / "down.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(down) == len(set(down)) == 500 and set(down) <= src_lines
    assert json.loads((tmp_path / "down.manifest.json").read_text())["dropped"] == {
        "downsampled": {"code_alpaca": 1517}}
