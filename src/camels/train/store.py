"""The token store: a run's conversations encoded once, on disk, memory-mapped by every process.

Holding the encoded data set as Python tuples costs about 48 bytes per token on every process (5 GB per
100M tokens per rank), and every rank encodes the whole set again. Instead the training data is encoded
once per machine, streaming, into a folder::

    tokens.bin      the token ids of every conversation, end to end (uint16 when the vocabulary fits,
                    else int32), read through ``numpy.memmap``
    trained.bin     one byte per token: 1 where the token is trained (its label is the token), 0 where not
    offsets.npy     int64, where each conversation starts in tokens.bin (in tokens)
    lengths.npy     int32, tokens per conversation
    targets.npy     int32, trained targets per conversation after the shift (what the loss divides by)
    meta.json       counts, drops by reason, the data sha256 and what the key was made of
    COMPLETE        written last: the byte size of every file above
    build.json      how this copy was built: seconds, records encoded by each process, stale folders
                    removed (not content: it differs between builds and the marker does not cover it)

Packing and the step plan read ``lengths`` and ``targets`` (a few bytes per conversation); a micro-batch
reads its conversations' tokens from the map. A process's memory therefore does not grow with the data
set: pages of the map are read from the OS page cache, which all processes share.

**Keyed by what it was made from**: the sha256 of each data file (in order), the tokenizer (its full
serialisation), the chat format's fingerprint, ``max_length`` and the encoder version. A changed input,
tokenizer or chat format gives another key and so another store; the same inputs find the store again,
so a resumed run and every rank reuse it. Stores live in ``output_dir/token_store/<key>/`` or, with
``token_cache`` set, in ``<token_cache>/<key>/`` where several runs share them.

**Encoded by the processes of the machine**: with several processes (``accelerate launch``), the records
(non-blank lines of all files, in order) are cut into one contiguous share per local process (at most
``encode_processes`` of them; with ``auto``, only when the data is large enough for sharing to pay, see
:func:`encoding_processes`). Each process encodes its share into part files of the temporary folder; the
local main process then checks every part against its counts and joins them in order. The files are byte for byte those of a one-process build, so
the key and training are unchanged. The tokenizer's own thread pool is off meanwhile (unless
``TOKENIZERS_PARALLELISM`` is set) and only the main process shows a progress bar.

**Atomic**: a store is written into ``.tmp-<key>-<host>-<pid>/`` beside its final place (``owner.json``
in it names the process), fsynced, given its ``COMPLETE`` marker (by the joiner, once every part is
there and checked) and renamed into place; a store whose marker is missing or whose files do not have the
recorded sizes is never used (it is moved aside to ``<key>.damaged-<n>`` with a warning and rebuilt).
A failed or killed process never leaves a store that looks complete: a failing helper tells the joiner,
which fails too; each side also stops when it sees the other's process gone. Temporary folders left by
killed builds are removed by the next build of that store when their process is gone
(:mod:`camels.core.stale`). Two machines that build the same store at once both finish; the second rename
loses and its copy is discarded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camels.core.io import fsync_dir, iter_lines, write_json
from camels.core.progress import progress
from camels.core.stale import OWNER, alive, beside, host, leftovers, owned_folder, remove_stale
from camels.core.template import ChatFormat
from camels.train.encode import (
    IGNORE_INDEX,
    Dropped,
    Encoded,
    data_sha256,
    encode_conversation,
    iter_conversations,
)

STORE_VERSION = 1
MARKER = "COMPLETE"
FILES = ("tokens.bin", "trained.bin", "offsets.npy", "lengths.npy", "targets.npy", "meta.json")
BUILD = "build.json"  # how this copy was built (times, parts): not part of the content, not in the marker
PLAN = "plan.json"  # in the temporary folder only: the parts, for the helper processes
_FLUSH_TOKENS = 1 << 20  # tokens buffered before a write (8 MB at most)
#: ``encode_processes: auto`` shares the encoding from this many bytes of training files on (measured with
#: benchmarks/store_encode.py: below about 1.5 MB, the cost of sharing exceeded the time it saved).
AUTO_SHARE_BYTES = 2_000_000


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of everything about a tokenizer that changes the ids it produces."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer: its full JSON (vocab, merges, normalizer, added tokens...)
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    special = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    h.update(json.dumps([special, getattr(tokenizer, "chat_template", None)], sort_keys=True).encode())
    return h.hexdigest()


def store_key(data_hash: str, tokenizer: Any, chat_format: ChatFormat, max_length: int) -> dict[str, Any]:
    """What a store is made from, and its key (``key``: 24 hex digits of the sha256 of the rest)."""
    parts = {"version": STORE_VERSION, "data_sha256": data_hash, "tokenizer": tokenizer_fingerprint(tokenizer),
             "chat_format": chat_format.fingerprint(), "max_length": max_length}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return {**parts, "key": key}


class TokenStore:
    """A complete store, opened read-only. ``store[i]`` is conversation ``i`` as an :class:`Encoded` whose
    ``input_ids``/``labels`` are int64 numpy arrays (labels -100 where nothing is trained)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if read_marker(self.path) is None:
            raise ValueError(f"{self.path}: not a complete token store")
        self.meta = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
        dtype = np.dtype(self.meta["dtype"])
        n_tok = self.meta["tokens"]
        self._tokens = _map(self.path / "tokens.bin", dtype, n_tok)
        self._trained = _map(self.path / "trained.bin", np.uint8, n_tok)
        self.offsets = np.load(self.path / "offsets.npy")
        self.lengths = np.load(self.path / "lengths.npy")
        self.n_targets = np.load(self.path / "targets.npy")
        self.dropped = Counter(self.meta["dropped"])
        self.truncated = int(self.meta["truncated"])
        self.data_sha256 = self.meta["data_sha256"]

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> Encoded:
        start = int(self.offsets[i])
        end = start + int(self.lengths[i])
        ids = np.asarray(self._tokens[start:end], dtype=np.int64)
        labels = np.where(self._trained[start:end] != 0, ids, IGNORE_INDEX)
        return Encoded(ids, labels)  # type: ignore[arg-type]

    @property
    def n_tokens(self) -> int:
        return int(self.meta["tokens"])

    @property
    def n_trained(self) -> int:
        return int(self.meta["trained_tokens"])

    def summary(self) -> dict[str, Any]:
        return {"conversations": len(self), "tokens": self.n_tokens, "trained_tokens": self.n_trained,
                "truncated": self.truncated, "dropped": dict(self.dropped), "data_sha256": self.data_sha256,
                "token_store": str(self.path)}


def _map(path: Path, dtype: Any, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def read_marker(path: Path) -> dict[str, Any] | None:
    """The ``COMPLETE`` marker if it is valid and every file has its recorded size, else None."""
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        for name in FILES:
            if (path / name).stat().st_size != marker["bytes"][name]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return marker


# -- building -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """One process's share of a store that all the processes of one machine encode together.

    ``index`` 0 is the joiner: it plans the parts, encodes the first, joins them and publishes the store.
    ``pids`` are the processes of the group by index (all on this host: the joiner watches the others and
    they watch it). ``build_id`` is the same in every process of the group and names the build in its plan,
    so that a leftover folder of a dead process whose pid came back is never taken for this build's.
    """

    index: int
    count: int
    pids: tuple[int, ...]
    build_id: str

    @classmethod
    def alone(cls) -> Shard:
        return cls(0, 1, (os.getpid(),), secrets.token_hex(8))


def encoding_processes(setting: int | str, paths: Sequence[str | Path]) -> int | None:
    """How many processes of a machine encode a store, from the ``encode_processes`` setting: ``N`` (at most
    N), or with ``auto`` all of them (None) when ``paths`` hold at least :data:`AUTO_SHARE_BYTES`, else 1.

    The same in every process (it reads the settings and the files' sizes only), so that all of them take
    part in :func:`local_group`'s collective, or none does.
    """
    if setting != "auto":
        return int(setting)
    return None if sum(os.path.getsize(p) for p in paths) >= AUTO_SHARE_BYTES else 1


def local_group(accelerator: Any, encoders: int | None = None) -> Shard | None:
    """This process's share when the processes of its machine encode a part each; None when it encodes
    alone or not at all (``build`` of :func:`open_or_build` then says which).

    ``encoders``: at most that many processes of a machine encode (those of the lowest local indexes; the
    others wait for the store); None: all of them. With one encoder, or one process, there is no collective.
    Else one, before any encoding: every process gives its host, local index, pid and a random id; the
    processes of a host form a group whose local main process (index 0) joins. Hosts that share a name
    (local indexes that are not 0..n-1) get None: the local main process encodes alone, as with one process.
    """
    if accelerator.num_processes == 1 or encoders == 1:
        return None
    from accelerate.utils import gather_object

    me = (host(), accelerator.local_process_index, os.getpid(), secrets.token_hex(8))
    group = sorted(tuple(e) for e in gather_object([me]) if e[0] == me[0])
    if [e[1] for e in group] != list(range(len(group))):
        return None
    group = group[:encoders]
    if len(group) == 1 or me[1] >= len(group):
        return None
    return Shard(me[1], len(group), tuple(e[2] for e in group), group[0][3])


def build_store(
    path: str | Path,
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    *,
    key: dict[str, Any],
    strict: bool = False,
    shard: Shard | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 0.2,
) -> Path:
    """Encode ``paths`` into a new store at ``path`` (atomically, see the module docstring); return ``path``.

    This process is the joiner: it removes the store's stale temporary folders, plans one part per process
    of ``shard`` (one part without), encodes the first, waits for the others (each written by
    :func:`encode_share` in its process), checks each against its counts, joins them in order and publishes.
    Streams: conversations are read, encoded and appended one at a time; only the per-conversation index
    (17 bytes each) is kept in memory until the end.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    group = shard or Shard.alone()
    start = time.perf_counter()
    removed = remove_stale(leftovers(path, "tmp"))
    if removed:
        say(f"camels train: removed {len(removed)} stale temporary folder(s) of the token store (their "
            f"process is gone): {', '.join(p.name for p in removed)}")
    tmp = owned_folder(_tmp_path(path, os.getpid()), build=group.build_id)
    dtype = _dtype(tokenizer)
    try:
        plan = _plan(paths, group.count)
        write_json(tmp / PLAN, {"build": group.build_id, "parts": plan})
        _encode_part(tmp, 0, plan[0], paths, tokenizer, chat_format, max_length, dtype, strict, bar=True)
        if not _await_parts(path, tmp, group, poll_s):
            shutil.rmtree(tmp, ignore_errors=True)  # another builder published the same store meanwhile
            return path
        parts = [_verified_part(tmp, i, plan[i], dtype) for i in range(group.count)]
        _join(tmp, group.count)
        dropped: Counter = sum((Counter(p["dropped"]) for p in parts), Counter())
        meta = {"key": key, "dtype": dtype.name, "conversations": sum(p["conversations"] for p in parts),
                "tokens": sum(p["tokens"] for p in parts), "data_sha256": key["data_sha256"],
                "trained_tokens": sum(p["trained_tokens"] for p in parts), "dropped": dict(dropped),
                "truncated": sum(p["truncated"] for p in parts), "files": [str(p) for p in paths]}
        write_json(tmp / "meta.json", meta)
        for name in (OWNER, PLAN):
            (tmp / name).unlink()
        write_json(tmp / BUILD, {"encode_s": round(time.perf_counter() - start, 3), "processes": group.count,
                                 "encoded_by": {str(p["index"]): p["records"] for p in parts},
                                 "encode_s_by": {str(p["index"]): p["encode_s"] for p in parts},
                                 "host": host(), "stale_tmp_removed": len(removed)})
        write_json(tmp / MARKER, {"version": STORE_VERSION, "bytes": {n: (tmp / n).stat().st_size for n in FILES}})
        fsync_dir(tmp)
        try:
            os.rename(tmp, path)
        except OSError:
            if read_marker(path) is None:  # not another builder's complete copy: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same store first
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def encode_share(
    path: str | Path,
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    shard: Shard,
    *,
    strict: bool = False,
    poll_s: float = 0.2,
) -> None:
    """A helper process's part of the build its joiner (``shard.pids[0]``) leads; nothing when the store is
    complete. On an error, a ``part-<index>.failed`` file tells the joiner (which then fails too)."""
    path = Path(path)
    tmp = _tmp_path(path, shard.pids[0])
    while True:
        if read_marker(path) is not None:
            return
        plan = _read_json(tmp / PLAN)
        if plan is not None and plan.get("build") == shard.build_id:
            break
        if not alive(shard.pids[0]):
            raise RuntimeError(f"token store {path}: the process that builds it (pid {shard.pids[0]}) has ended")
        time.sleep(poll_s)
    try:
        _encode_part(tmp, shard.index, plan["parts"][shard.index], paths, tokenizer, chat_format, max_length,
                     _dtype(tokenizer), strict)
    except BaseException as e:
        if isinstance(e, OSError) and read_marker(path) is not None:
            return  # the joiner dropped its build: another builder published the same store
        with contextlib.suppress(OSError):
            (tmp / f"part-{shard.index}.failed").write_text(f"{type(e).__name__}: {e}\n", encoding="utf-8")
        raise


def _tmp_path(path: Path, pid: int) -> Path:
    """Where the store is built by the process ``pid`` of this host."""
    return beside(path, "tmp", pid)


def _dtype(tokenizer: Any) -> np.dtype:
    return np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plan(paths: Sequence[str | Path], count: int) -> list[dict[str, Any]]:
    """``count`` contiguous shares of the records (non-blank lines) of all files, in order: each as
    ``records`` [start, stop) over all files and ``ranges``, the same per file. One part reads everything."""
    if count == 1:
        return [{"records": None, "ranges": None}]
    per_file = [sum(1 for _ in iter_lines(p)) for p in paths]
    bounds = [sum(per_file) * i // count for i in range(count + 1)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        ranges, first = [], 0
        for n in per_file:
            ranges.append([min(max(lo - first, 0), n), min(max(hi - first, 0), n)])
            first += n
        parts.append({"records": [lo, hi], "ranges": ranges})
    return parts


def _encode_part(
    tmp: Path,
    index: int,
    part: dict[str, Any],
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    dtype: np.dtype,
    strict: bool,
    *,
    bar: bool = False,
) -> None:
    """Encode the records of ``part`` into ``part-<index>.{tokens,trained,lengths,targets}`` and, last, its
    counts into ``part-<index>.json`` (what says the part is there)."""
    start = time.perf_counter()
    code = "H" if dtype == np.uint16 else "i"
    lengths, targets = array("i"), array("i")
    dropped: Counter = Counter()
    seen = truncated = n_tok = n_trained = 0
    buf_ids, buf_mask = array(code), bytearray()
    convs = iter_conversations(paths, None if strict else dropped, ranges=part["ranges"])
    if bar:  # the joiner's share only: one bar per machine
        total = None if part["records"] is None else part["records"][1] - part["records"][0]
        convs = progress(convs, desc="encode", total=total, unit="conv")
    name = tmp / f"part-{index}"
    with open(f"{name}.tokens", "wb") as f_ids, open(f"{name}.trained", "wb") as f_mask:
        for conv in convs:
            seen += 1
            try:
                enc = encode_conversation(tokenizer, chat_format, conv.messages, max_length, id=conv.id)
            except Dropped as d:
                dropped[d.reason] += 1
                continue
            mask = [lab != IGNORE_INDEX for lab in enc.labels]
            lengths.append(len(enc))
            targets.append(sum(mask[1:]))  # the first token is never a target
            truncated += enc.truncated
            n_tok += len(enc)
            n_trained += sum(mask)
            buf_ids.extend(enc.input_ids)
            buf_mask.extend(mask)
            if len(buf_ids) >= _FLUSH_TOKENS:
                buf_ids.tofile(f_ids)
                f_mask.write(buf_mask)
                buf_ids, buf_mask = array(code), bytearray()
        buf_ids.tofile(f_ids)
        f_mask.write(buf_mask)
        for f in (f_ids, f_mask):
            f.flush()
            os.fsync(f.fileno())
    for suffix, arr in (("lengths", lengths), ("targets", targets)):
        with open(f"{name}.{suffix}", "wb") as f:
            arr.tofile(f)
            f.flush()
            os.fsync(f.fileno())
    records = seen + sum(n for reason, n in dropped.items() if reason.startswith("record:"))
    write_json(tmp / f"part-{index}.json", {
        "index": index, "records": records, "conversations": len(lengths), "tokens": n_tok,
        "trained_tokens": n_trained, "truncated": truncated, "dropped": dict(dropped),
        "encode_s": round(time.perf_counter() - start, 3)})


def _await_parts(path: Path, tmp: Path, group: Shard, poll_s: float) -> bool:
    """Wait until every other part's ``part-<i>.json`` is there: True. False if, meanwhile, another builder
    published the store. Raises when a helper failed or ended without its part."""
    waiting = set(range(1, group.count))
    while True:
        for i in sorted(waiting):
            if (tmp / f"part-{i}.json").exists():
                waiting.discard(i)
            elif (failed := tmp / f"part-{i}.failed").exists():
                raise RuntimeError(f"token store {path}: process {i} failed while encoding its part: "
                                   f"{failed.read_text(encoding='utf-8').strip()}")
            elif not alive(group.pids[i]) and not (tmp / f"part-{i}.json").exists():
                raise RuntimeError(f"token store {path}: process {i} (pid {group.pids[i]}) ended without "
                                   "writing its part")
        if not waiting:
            return True
        if read_marker(path) is not None:
            return False
        time.sleep(poll_s)


def _verified_part(tmp: Path, index: int, planned: dict[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """Part ``index``'s counts, once its files are checked against them, and its record count against the
    plan (a part that lost records or wrote half a file fails the build)."""
    info = json.loads((tmp / f"part-{index}.json").read_text(encoding="utf-8"))
    name = tmp / f"part-{index}"
    expected = {"tokens": info["tokens"] * dtype.itemsize, "trained": info["tokens"],
                "lengths": 4 * info["conversations"], "targets": 4 * info["conversations"]}
    found = {s: os.path.getsize(f"{name}.{s}") for s in expected}
    problems = [f"{s}: {found[s]} bytes, expected {n}" for s, n in expected.items() if found[s] != n]
    if not problems and int(np.fromfile(f"{name}.lengths", dtype=np.int32).sum(dtype=np.int64)) != info["tokens"]:
        problems.append("lengths do not add up to its tokens")
    if planned["records"] is not None and info["records"] != planned["records"][1] - planned["records"][0]:
        problems.append(f"{info['records']} records read, {planned['records']} planned")
    if problems:
        raise RuntimeError(f"token store {tmp}: part {index} does not match its counts: {'; '.join(problems)}")
    return info


def _join(tmp: Path, count: int) -> None:
    """The parts' files, in order, as the store's files (the part files are removed)."""
    for suffix, final in (("tokens", "tokens.bin"), ("trained", "trained.bin")):
        os.replace(tmp / f"part-0.{suffix}", tmp / final)
        with open(tmp / final, "ab") as out:
            for i in range(1, count):
                with open(tmp / f"part-{i}.{suffix}", "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
                (tmp / f"part-{i}.{suffix}").unlink()
            out.flush()
            os.fsync(out.fileno())
    lengths, targets = (np.concatenate([np.fromfile(tmp / f"part-{i}.{s}", dtype=np.int32) for i in range(count)])
                        for s in ("lengths", "targets"))
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], dtype=np.int64, out=offsets[1:])
    for name, arr in (("offsets.npy", offsets), ("lengths.npy", lengths), ("targets.npy", targets)):
        with open(tmp / name, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
    for i in range(count):
        for part_file in (f"part-{i}.lengths", f"part-{i}.targets", f"part-{i}.json"):
            (tmp / part_file).unlink()


@contextlib.contextmanager
def _quiet_tokenizer_threads(shard: Shard | None) -> Iterator[None]:
    """With several processes encoding on one machine, the tokenizer's own thread pool in each would add
    threads on cores that are already busy: unless the user set ``TOKENIZERS_PARALLELISM``, it is off while
    this process encodes."""
    if shard is None or shard.count == 1 or "TOKENIZERS_PARALLELISM" in os.environ:
        yield
        return
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)


def open_or_build(
    root: str | Path,
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    *,
    build: bool = True,
    shard: Shard | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 0.2,
) -> TokenStore:
    """The store of ``paths`` under ``root``: reused when complete, else built here (``build``) or awaited.

    With ``shard`` (see :func:`local_group`), every process of the machine encodes its part of a missing
    store and the one of index 0 joins them (``build`` is then not used).

    A process that does not join waits for the ``COMPLETE`` marker by looking at the file system (not
    through a collective, whose timeout a long encoding could exceed); it fails if the joiner's process
    ends first, and the joiner fails if a helper does. Under a launcher, one failed process stops them all.
    """
    key = store_key(data_sha256(paths), tokenizer, chat_format, max_length)
    path = Path(root) / key["key"]
    if shard is not None and shard.index > 0:
        with _quiet_tokenizer_threads(shard):
            encode_share(path, paths, tokenizer, chat_format, max_length, shard, poll_s=poll_s)
        _await_store(path, shard.pids[0], poll_s, tmp=_tmp_path(path, shard.pids[0]))
    elif build or shard is not None:
        if path.exists() and read_marker(path) is None:
            aside = _move_aside(path)
            say(f"camels train: WARNING token store {path} is incomplete or damaged; moved to {aside}, "
                "encoding again")
        if not path.exists():
            start = time.perf_counter()
            by = f" ({shard.count} processes, a part each)" if shard is not None and shard.count > 1 else ""
            say(f"camels train: encoding {len(paths)} file(s) into the token store {path}{by}")
            with _quiet_tokenizer_threads(shard):
                build_store(path, paths, tokenizer, chat_format, max_length, key=key, shard=shard, say=say,
                            poll_s=poll_s)
            say(f"camels train: token store written in {time.perf_counter() - start:.1f}s")
    else:
        _await_store(path, None, poll_s)
    return TokenStore(path)


def _await_store(path: Path, builder: int | None, poll_s: float, tmp: Path | None = None) -> None:
    """Wait for the store's marker. With the ``builder`` process (a pid of this host) and its temporary
    folder ``tmp``: raise if the process ends, or the folder goes, without the store being published."""
    while read_marker(path) is None:
        gone = builder is not None and not alive(builder)
        if (gone or (tmp is not None and not tmp.exists())) and read_marker(path) is None:
            raise RuntimeError(f"token store {path}: the process that builds it (pid {builder}) "
                               f"{'ended' if gone else 'gave up'} before the store was complete")
        time.sleep(poll_s)


def _move_aside(path: Path) -> Path:
    n = 1
    while (aside := path.with_name(f"{path.name}.damaged-{n}")).exists():
        n += 1
    os.rename(path, aside)
    return aside
