"""Content-addressed request cache: the same request to the same model is never computed twice.

Key: :func:`camels.core.requests.request_key` -- sha256 of the backend fingerprint and the request's
canonical JSON (prompt messages, assistant prefix, decoding parameters, seed). Batch size, chunking, the
order of requests and the number of processes are not part of the key, so none of them can change what
is found.

Storage: one SQLite database (stdlib ``sqlite3``) in WAL mode, one row per answered request. Why SQLite
rather than JSONL shards: a transaction is atomic and durable, so a run killed midway (even by SIGKILL or a
power cut) leaves every committed chunk readable and nothing half-written; several processes (``camels
eval`` on different tasks or different GPUs) can read and write the same file at once, with writers
waiting on a lock (``busy_timeout``) instead of interleaving lines. The runner commits after every chunk a
backend answers, so a crash loses at most the chunk in flight. ``INSERT OR IGNORE`` makes concurrent
writers of the same key harmless (the first answer stays).

Limits: SQLite locking needs a local filesystem (not NFS); put the cache on local disk and copy runs.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from camels.core.requests import Request, Result, request_key, result_from_dict, result_to_dict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class RequestCache:
    """A request -> result store keyed by content (see the module doc).

    >>> import tempfile, os
    >>> from camels.core.requests import ChoiceRequest, ChoiceResult
    >>> c = RequestCache(os.path.join(tempfile.mkdtemp(), "cache.sqlite"))
    >>> req = ChoiceRequest([("user", "2+2=")], choices=(" 4", " 5"))
    >>> c.put_many("fp", [req], [ChoiceResult((-0.1, -2.3))])
    1
    >>> c.get_many("fp", [req])
    [ChoiceResult(logprobs=(-0.1, -2.3))]
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def key(fingerprint: str, request: Request) -> str:
        return request_key(request, fingerprint)

    def get_many(self, fingerprint: str, requests: Sequence[Request]) -> list[Result | None]:
        """The cached result of each request, ``None`` where there is none."""
        keys = [request_key(r, fingerprint) for r in requests]
        found = self.lookup_keys(keys)
        out: list[Result | None] = []
        for k in keys:
            row = found.get(k)
            out.append(None if row is None else result_from_dict(row[0], json.loads(row[1])))
        return out

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``key -> (kind, result JSON)`` for the keys present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, tuple[str, str]] = {}
        step = 500  # stay under SQLite's bound-parameter limit
        for i in range(0, len(keys), step):
            part = keys[i : i + step]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT key, kind, result FROM results WHERE key IN ({marks})", part)
            for key, kind, result in rows:
                found[key] = (kind, result)
        return found

    def put_many(self, fingerprint: str, requests: Sequence[Request], results: Sequence[Result],
                 keys: Sequence[str] | None = None) -> int:
        """Store results in one transaction (all or nothing); return the number of new rows.

        ``keys`` may pass the requests' keys when the caller has them already.
        """
        if len(requests) != len(results) or (keys is not None and len(keys) != len(requests)):
            raise ValueError("requests, results and keys differ in length")
        if keys is None:
            keys = [request_key(req, fingerprint) for req in requests]
        now = time.time()
        rows = [
            (key, req.kind, fingerprint, json.dumps(result_to_dict(res), separators=(",", ":")), now)
            for key, req, res in zip(keys, requests, results)
        ]
        with self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO results (key, kind, fingerprint, result, created) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            return self._conn.total_changes - before

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
