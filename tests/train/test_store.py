"""The token store: the same tokens as in-memory encoding, keyed by its inputs, never used half-written."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train import store as store_mod  # noqa: E402
from camels.train.encode import IGNORE_INDEX, encode_files  # noqa: E402
from camels.train.store import (  # noqa: E402
    Shard,
    TokenStore,
    encoding_processes,
    local_group,
    open_or_build,
    read_marker,
)


def _rows(n, long_every=7):
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"question {i}: " + "x y " * (i % 6)},
                {"role": "assistant", "content": " ".join(str(i * k) for k in range(1 + i % 5))}]
        if i % 4 == 0:
            msgs += [{"role": "user", "content": "more"}, {"role": "assistant", "content": f"yes {i}"}]
        if i % long_every == 3:  # long: truncated at max_length, or left with nothing trained
            msgs = [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]
        rows.append({"dataset": "toy", "id": f"r{i}", "messages": msgs})
    return rows


def _write(path, rows, bad_line=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if bad_line:
        text += '{"dataset": "toy", "id": "bad", "messages": []}\n'
    path.write_text(text)
    return path


@pytest.fixture()
def data(tmp_path):
    return [_write(tmp_path / "a.jsonl", _rows(30), bad_line=True), _write(tmp_path / "b.jsonl", _rows(9)[::-1])]


def test_store_holds_exactly_the_in_memory_encoding(tmp_path, tiny_tok, data):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    mem = encode_files(data, tiny_tok, fmt, 48)
    st = open_or_build(tmp_path / "cache", data, tiny_tok, fmt, 48, say=lambda _: None)
    assert dict(mem.dropped) == {"no_trained_token_after_truncation": 5, "record:no_messages": 1}
    assert len(st) == len(mem) == 34 and mem.truncated == 4
    for i in range(len(mem)):
        assert st[i].input_ids.tolist() == list(mem[i].input_ids)
        assert st[i].labels.tolist() == list(mem[i].labels)
    assert st.lengths.tolist() == mem.lengths and st.n_targets.tolist() == mem.n_targets
    summary = st.summary()
    assert summary.pop("token_store") == str(st.path)
    assert summary == mem.summary() and summary["truncated"] > 0 and summary["dropped"]
    assert st._tokens.dtype == np.uint16  # a 512-token vocabulary: two bytes per token on disk
    assert os.path.getsize(st.path / "tokens.bin") == 2 * mem.n_tokens
    assert (st[0].labels == IGNORE_INDEX).any() and (st[0].labels != IGNORE_INDEX).any()


def test_store_is_reused_and_rekeyed_by_data_tokenizer_and_format(tmp_path, tiny_tok, data, monkeypatch):
    from camels.tiny import tiny_tokenizer

    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    first = open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=lambda _: None).path

    def no_build(*a, **k):
        raise AssertionError("a complete store was encoded again")

    monkeypatch.setattr(store_mod, "build_store", no_build)
    assert open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=lambda _: None).path == first
    # a waiting process (not the builder) opens the same store
    assert open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, build=False).path == first
    monkeypatch.undo()

    keys = {first.name}
    changed = tmp_path / "changed.jsonl"
    _write(changed, _rows(30)[:-1])
    for args in [([changed, data[1]], tiny_tok, fmt, 48),  # data
                 (data, tiny_tokenizer(vocab_size=300), chat_format_for_tokenizer(tiny_tok, "tulu"), 48),  # tok
                 (data, tiny_tok, chat_format_for_tokenizer(tiny_tok, "plain"), 48),  # chat format
                 (data, tiny_tok, fmt, 40)]:  # truncation
        keys.add(open_or_build(tmp_path / "c", *args, say=lambda _: None).path.name)
    assert len(keys) == 5


def test_half_written_or_damaged_store_is_never_used(tmp_path, tiny_tok, data):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    said: list[str] = []
    good = open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=said.append)
    expected = [good[i].input_ids.tolist() for i in range(len(good))]
    # a crash before the marker: the folder is there, the marker is not
    (good.path / "COMPLETE").unlink()
    with pytest.raises(ValueError, match="not a complete token store"):
        TokenStore(good.path)
    said.clear()
    again = open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=said.append)
    assert "incomplete or damaged" in said[0] and f"{good.path.name}.damaged-1" in said[0]
    assert (tmp_path / "c" / f"{good.path.name}.damaged-1").is_dir()
    assert [again[i].input_ids.tolist() for i in range(len(again))] == expected
    # a truncated token file under a valid-looking marker
    with open(again.path / "tokens.bin", "r+b") as f:
        f.truncate(10)
    assert read_marker(again.path) is None
    third = open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=said.append)
    assert [third[i].input_ids.tolist() for i in range(len(third))] == expected
    assert (tmp_path / "c" / f"{good.path.name}.damaged-2").is_dir()
    assert not list((tmp_path / "c").glob(".tmp-*"))  # nothing half-written left behind


def test_a_failed_build_leaves_no_store(tmp_path, tiny_tok, data, monkeypatch):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    calls = {"n": 0}
    real = store_mod.encode_conversation

    def dies_late(*a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(store_mod, "encode_conversation", dies_late)
    with pytest.raises(KeyboardInterrupt):
        open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, say=lambda _: None)
    assert list((tmp_path / "c").iterdir()) == []


def test_training_from_the_store_equals_training_from_memory(tmp_path, tiny_tok, data):
    """Bit-identical final weights: the run that reads the memory-mapped store, and the run handed the
    conversations encoded in memory (how every run read its data before the store)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from camels.tiny import save_tiny_model
    from camels.train.config import TrainConfig
    from camels.train.loop import train

    model_dir = save_tiny_model(tmp_path / "model", seed=0, attention_dropout=0.1)
    common = [f"model={model_dir}", f"train_files=[{data[0]}, {data[1]}]", "dtype=fp32", "max_length=48",
              "effective_batch_size=8", "num_epochs=2", "learning_rate=3e-3", "logging_every=1",
              "max_tokens_per_batch=96", "export=true"]
    os.environ.setdefault("CAMELS_PROGRESS", "0")
    stored = train(TrainConfig.load(None, [*common, f"output_dir={tmp_path / 's'}",
                                           f"token_cache={tmp_path / 'shared'}"]))
    assert stored.data["token_store"].startswith(str(tmp_path / "shared"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    mem = encode_files(data, tok, chat_format_for_tokenizer(tok, "tulu"), 48)
    memory = train(TrainConfig.load(None, [*common, f"output_dir={tmp_path / 'm'}"]), dataset=mem)
    a = load_file(str(stored.final_model / "model.safetensors"))
    b = load_file(str(memory.final_model / "model.safetensors"))
    init = load_file(str(model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3  # it trained
    assert [json.loads(x)["loss"] for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()] == \
        [json.loads(x)["loss"] for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]


# -- encoding split over the processes of a machine ------------------------------------------------------


def _build_in_parts(root, data, tok, fmt, count, *, pids=None, fail_in=None):
    """The store built by ``count`` encoders: the joiner here, the helpers in threads of this process
    (each with its own copy of the tokenizer), exactly as the processes of one machine do it."""
    pids = pids or (os.getpid(),) * count
    errors: dict[int, BaseException] = {}

    def helper(i):
        try:
            open_or_build(root, data, copy.deepcopy(tok), fmt, 48, shard=Shard(i, count, pids, "b1"), poll_s=0.01)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors[i] = e

    threads = [threading.Thread(target=helper, args=(i,), name=f"helper-{i}", daemon=True) for i in range(1, count)]
    for t in threads:
        t.start()
    try:
        return open_or_build(root, data, tok, fmt, 48, shard=Shard(0, count, pids, "b1"), say=lambda _: None,
                             poll_s=0.01), errors
    finally:
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a helper never finished"


def _store_bytes(path):
    return {name: (path / name).read_bytes() for name in (*store_mod.FILES, store_mod.MARKER)}


@pytest.mark.parametrize("count", [2, 3])
def test_a_store_encoded_in_parts_is_byte_identical_to_one_encoder(tmp_path, tiny_tok, data, count):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    one = open_or_build(tmp_path / "one", data, tiny_tok, fmt, 48, say=lambda _: None)
    parts, errors = _build_in_parts(tmp_path / "parts", data, tiny_tok, fmt, count)
    assert errors == {}
    assert parts.path.name == one.path.name  # the same key
    assert _store_bytes(parts.path) == _store_bytes(one.path)
    # 40 records (a.jsonl: 30 and a bad line, b.jsonl: 9), cut in contiguous shares; with 3 the last share
    # spans both files
    build = json.loads((parts.path / "build.json").read_text())
    assert build["encoded_by"] == ({"0": 20, "1": 20} if count == 2 else {"0": 13, "1": 13, "2": 14})
    assert build["processes"] == count and build["stale_tmp_removed"] == 0
    assert json.loads((one.path / "build.json").read_text())["encoded_by"] == {"0": 40}
    assert sorted(p.name for p in parts.path.iterdir()) == sorted([*store_mod.FILES, "COMPLETE", "build.json"])
    assert not list((tmp_path / "parts").glob(".tmp-*"))


class _Local:
    """What :func:`local_group` reads of an Accelerator: process ``index`` of ``count``, all on this machine."""

    def __init__(self, index, count):
        self.num_processes, self.local_process_index, self.is_local_main_process = count, index, index == 0


def _build_as_processes(root, data, tok, fmt, count, setting, monkeypatch):
    """The store as ``count`` processes of one machine build it with ``encode_processes=setting`` (as
    ``camels train`` does; each process a thread, accelerate's gather_object a barrier); and the number of
    collectives run."""
    import accelerate.utils

    barrier, lock, gathered, calls = threading.Barrier(count), threading.Lock(), [], []

    def gather_object(items):
        with lock:
            gathered.extend(items)
            calls.append(1)
        barrier.wait(timeout=60)
        return list(gathered)

    monkeypatch.setattr(accelerate.utils, "gather_object", gather_object)
    stores, errors = {}, {}

    def process(i):
        try:
            shard = local_group(_Local(i, count), encoding_processes(setting, data))
            stores[i] = open_or_build(root, data, tok if i == 0 else copy.deepcopy(tok), fmt, 48, build=i == 0,
                                      shard=shard, say=lambda _: None, poll_s=0.01)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors[i] = e

    threads = [threading.Thread(target=process, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a process never finished"
    assert errors == {}
    assert {st.path for st in stores.values()} == {stores[0].path}
    return stores[0], len(calls)


def test_encode_processes_says_who_encodes_and_the_store_is_the_same_bytes(tmp_path, tiny_tok, data,
                                                                              monkeypatch):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    one = open_or_build(tmp_path / "one", data, tiny_tok, fmt, 48, say=lambda _: None)
    size = sum(os.path.getsize(p) for p in data)
    assert size < store_mod.AUTO_SHARE_BYTES  # small data: auto encodes in the main process alone
    # 3 processes on the machine; 40 records
    for setting, encoded_by, collectives in [(1, {"0": 40}, 0), ("auto", {"0": 40}, 0),
                                             (2, {"0": 20, "1": 20}, 3), (8, {"0": 13, "1": 13, "2": 14}, 3)]:
        st, n = _build_as_processes(tmp_path / f"s-{setting}", data, tiny_tok, fmt, 3, setting, monkeypatch)
        assert _store_bytes(st.path) == _store_bytes(one.path), setting
        assert json.loads((st.path / "build.json").read_text())["encoded_by"] == encoded_by, setting
        assert n == collectives, setting
    # auto shares from AUTO_SHARE_BYTES of training files on
    monkeypatch.setattr(store_mod, "AUTO_SHARE_BYTES", size)
    assert encoding_processes("auto", data) is None and encoding_processes(3, data) == 3
    st, n = _build_as_processes(tmp_path / "s-auto-large", data, tiny_tok, fmt, 3, "auto", monkeypatch)
    assert _store_bytes(st.path) == _store_bytes(one.path)
    assert json.loads((st.path / "build.json").read_text())["encoded_by"] == {"0": 13, "1": 13, "2": 14}
    monkeypatch.setattr(store_mod, "AUTO_SHARE_BYTES", size + 1)
    assert encoding_processes("auto", data) == 1


def test_a_failed_helper_leaves_no_store(tmp_path, tiny_tok, data, monkeypatch):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    real = store_mod.encode_conversation

    def fails_in_helper(*a, **k):
        if threading.current_thread().name == "helper-1":
            raise ValueError("bad tokenizer state")
        return real(*a, **k)

    monkeypatch.setattr(store_mod, "encode_conversation", fails_in_helper)
    with pytest.raises(RuntimeError, match="process 1 failed while encoding its part: ValueError: bad tokenizer"):
        _build_in_parts(tmp_path / "c", data, tiny_tok, fmt, 2)
    assert list((tmp_path / "c").iterdir()) == []  # no store, no marker, no temporary folder


def test_a_helper_gone_without_its_part_fails_the_build(tmp_path, tiny_tok, data, dead_pid):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    shard = Shard(0, 2, (os.getpid(), dead_pid), "b2")
    with pytest.raises(RuntimeError, match=r"process 1 \(pid \d+\) ended without writing its part"):
        open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, shard=shard, say=lambda _: None, poll_s=0.01)
    assert list((tmp_path / "c").iterdir()) == []
    # and a helper whose joiner is gone does not wait for ever
    with pytest.raises(RuntimeError, match="the process that builds it .* has ended"):
        open_or_build(tmp_path / "c", data, tiny_tok, fmt, 48, shard=Shard(1, 2, (dead_pid, os.getpid()), "b3"),
                      poll_s=0.01)


def test_a_part_that_lost_records_fails_the_build(tmp_path, tiny_tok, data, monkeypatch):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    real = store_mod.iter_conversations

    def loses_one(paths, dropped=None, *, ranges=None):
        convs = list(real(paths, dropped, ranges=ranges))
        return convs[:-1] if threading.current_thread().name == "helper-1" else convs

    monkeypatch.setattr(store_mod, "iter_conversations", loses_one)
    with pytest.raises(RuntimeError, match=r"part 1 does not match its counts: 19 records read, \[20, 40\] planned"):
        _build_in_parts(tmp_path / "c", data, tiny_tok, fmt, 2)
    assert list((tmp_path / "c").iterdir()) == []


# -- temporary folders left by killed builds ---------------------------------------------------------------


def test_stale_temporary_folders_of_the_store_are_removed(tmp_path, tiny_tok, data, dead_pid):
    from camels.core.stale import host, process_start
    from camels.train.encode import data_sha256

    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    key = store_mod.store_key(data_sha256(data), tiny_tok, fmt, 48)["key"]
    root = tmp_path / "c"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        folders = {}
        for name, owner in [("dead", {"host": host(), "pid": dead_pid}),
                            ("live", {"host": host(), "pid": sleeper.pid, "start": process_start(sleeper.pid)}),
                            ("reused", {"host": host(), "pid": sleeper.pid, "start": "1"}),  # pid of another process now
                            ("remote-new", {"host": "elsewhere", "pid": 1}),
                            ("remote-old", {"host": "elsewhere", "pid": 1}),
                            ("no-owner-old", None),
                            ("other-key", {"host": host(), "pid": dead_pid})]:
            folder = root / (f".tmp-{key}-{name}" if name != "other-key" else f".tmp-{'0' * 24}-x")
            folder.mkdir(parents=True)
            (folder / "part-0.tokens").write_bytes(b"\0\0")
            if owner is not None:
                (folder / "owner.json").write_text(json.dumps(owner))
            if name.endswith("-old"):
                old = time.time() - 25 * 3600
                for p in (*folder.iterdir(), folder):
                    os.utime(p, (old, old))
            folders[name] = folder
        said: list[str] = []
        st = open_or_build(root, data, tiny_tok, fmt, 48, say=said.append)
        left = {name for name, folder in folders.items() if folder.exists()}
        assert left == {"live", "remote-new", "other-key"}
        assert json.loads((st.path / "build.json").read_text())["stale_tmp_removed"] == 4
        assert any("removed 4 stale temporary folder(s)" in s for s in said)
    finally:
        sleeper.kill()
        sleeper.wait()
