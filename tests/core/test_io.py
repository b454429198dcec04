from __future__ import annotations

import gzip

import pytest

from camels.core.errors import RecordError
from camels.core.io import atomic_write, iter_jsonl, sha256_file, write_jsonl


def test_iter_jsonl_line_numbers_skip_blank(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_jsonl(p)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_bad_json_strict_and_lenient(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": \n\xff\xfe\n{"a": 4}\n')
    with pytest.raises(RecordError) as e:
        list(iter_jsonl(p))
    assert e.value.reason == "bad_json" and e.value.line == 2 and str(p) in str(e.value)
    errors: list = []
    assert list(iter_jsonl(p, errors=errors)) == [(1, {"a": 1}), (4, {"a": 4})]
    assert [(x.reason, x.line) for x in errors] == [("bad_json", 2), ("bad_utf8", 3)]


def test_gz_reading(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"x": "é"}\n')
    assert list(iter_jsonl(p)) == [(1, {"x": "é"})]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [{"a": 1}])
    before = sha256_file(p)
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("partial")
        raise RuntimeError("crash")
    assert sha256_file(p) == before
    assert [x.name for x in tmp_path.iterdir()] == ["out.jsonl"]
