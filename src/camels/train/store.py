"""The token store: a run's conversations encoded once, on disk, memory-mapped by every process.

Holding the encoded data set as Python tuples costs about 48 bytes per token on every process (5 GB per
100M tokens per rank), and every rank encodes the whole set again. Instead the training data is encoded
once (by the first process of each machine), streaming, into a folder::

    tokens.bin      the token ids of every conversation, end to end (uint16 when the vocabulary fits,
                    else int32), read through ``numpy.memmap``
    trained.bin     one byte per token: 1 where the token is trained (its label is the token), 0 where not
    offsets.npy     int64, where each conversation starts in tokens.bin (in tokens)
    lengths.npy     int32, tokens per conversation
    targets.npy     int32, trained targets per conversation after the shift (what the loss divides by)
    meta.json       counts, drops by reason, the data sha256 and what the key was made of
    COMPLETE        written last: the byte size of every file above

Packing and the step plan read ``lengths`` and ``targets`` (a few bytes per conversation); a micro-batch
reads its conversations' tokens from the map. A process's memory therefore does not grow with the data
set: pages of the map are read from the OS page cache, which all processes share.

**Keyed by what it was made from**: the sha256 of each data file (in order), the tokenizer (its full
serialisation), the chat format's fingerprint, ``max_length`` and the encoder version. A changed input,
tokenizer or chat format gives another key and so another store; the same inputs find the store again,
so a resumed run and every rank reuse it. Stores live in ``output_dir/token_store/<key>/`` or, with
``token_cache`` set, in ``<token_cache>/<key>/`` where several runs share them.

**Atomic**: a store is written into ``.tmp-<key>-<pid>/`` beside its final place, fsynced, given its
``COMPLETE`` marker and renamed into place; a store whose marker is missing or whose files do not have the
recorded sizes is never used (it is moved aside to ``<key>.damaged-<n>`` with a warning and rebuilt).
Two machines that build the same store at once both finish; the second rename loses and its copy is
discarded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from camels.core.io import fsync_dir, write_json
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
_FLUSH_TOKENS = 1 << 20  # tokens buffered before a write (8 MB at most)


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


def build_store(
    path: str | Path,
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    *,
    key: dict[str, Any],
    strict: bool = False,
) -> Path:
    """Encode ``paths`` into a new store at ``path`` (atomically, see the module docstring); return ``path``.

    Streams: conversations are read, encoded and appended one at a time; only the per-conversation index
    (17 bytes each) is kept in memory until the end.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    vocab = len(tokenizer)
    dtype = np.dtype(np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.int32)
    code = "H" if dtype == np.uint16 else "i"
    offsets, lengths, targets = array("q"), array("i"), array("i")
    dropped: Counter = Counter()
    truncated = n_tok = n_trained = 0
    buf_ids, buf_mask = array(code), bytearray()
    start = time.perf_counter()
    try:
        with open(tmp / "tokens.bin", "wb") as f_ids, open(tmp / "trained.bin", "wb") as f_mask:
            for conv in iter_conversations(paths, None if strict else dropped):
                try:
                    enc = encode_conversation(tokenizer, chat_format, conv.messages, max_length, id=conv.id)
                except Dropped as d:
                    dropped[d.reason] += 1
                    continue
                mask = [lab != IGNORE_INDEX for lab in enc.labels]
                offsets.append(n_tok)
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
        for name, arr, np_type in (("offsets.npy", offsets, np.int64), ("lengths.npy", lengths, np.int32),
                                   ("targets.npy", targets, np.int32)):
            with open(tmp / name, "wb") as f:
                np.save(f, np.frombuffer(arr, dtype=np_type) if len(arr) else np.zeros(0, dtype=np_type))
                f.flush()
                os.fsync(f.fileno())
        meta = {"key": key, "dtype": dtype.name, "conversations": len(lengths), "tokens": n_tok,
                "trained_tokens": n_trained, "truncated": truncated, "dropped": dict(dropped),
                "data_sha256": key["data_sha256"], "files": [str(p) for p in paths],
                "encode_s": round(time.perf_counter() - start, 3)}
        write_json(tmp / "meta.json", meta)
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


def open_or_build(
    root: str | Path,
    paths: Sequence[str | Path],
    tokenizer: Any,
    chat_format: ChatFormat,
    max_length: int,
    *,
    build: bool = True,
    say: Callable[[str], None] = print,
    poll_s: float = 0.2,
) -> TokenStore:
    """The store of ``paths`` under ``root``: reused when complete, else built here (``build``) or awaited.

    A process that does not build waits for the builder's ``COMPLETE`` marker by looking at the file system
    (not through a collective, whose timeout a long encoding could exceed); if the builder fails, the
    launcher stops every process.
    """
    key = store_key(data_sha256(paths), tokenizer, chat_format, max_length)
    path = Path(root) / key["key"]
    if build:
        if path.exists() and read_marker(path) is None:
            aside = _move_aside(path)
            say(f"camels train: WARNING token store {path} is incomplete or damaged; moved to {aside}, "
                "encoding again")
        if not path.exists():
            start = time.perf_counter()
            say(f"camels train: encoding {len(paths)} file(s) into the token store {path}")
            build_store(path, paths, tokenizer, chat_format, max_length, key=key)
            say(f"camels train: token store written in {time.perf_counter() - start:.1f}s")
    else:
        while read_marker(path) is None:
            time.sleep(poll_s)
    return TokenStore(path)


def _move_aside(path: Path) -> Path:
    n = 1
    while (aside := path.with_name(f"{path.name}.damaged-{n}")).exists():
        n += 1
    os.rename(path, aside)
    return aside

