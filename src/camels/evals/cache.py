"""Content-addressed request cache: the same request to the same model is never computed twice.

Key: :func:`camels.core.requests.request_key` -- sha256 of the backend (or scorer) fingerprint and the
request's canonical JSON (prompt messages, assistant prefix, decoding parameters, seed). Batch size,
chunking, the order of requests and the number of processes are not part of the key, so none of them can
change what is found.

Storage: one SQLite database (stdlib ``sqlite3``) in WAL mode, one row per answered request. Why SQLite
rather than JSONL shards: a transaction is atomic and durable, so a run killed midway (even by SIGKILL or a
power cut) leaves every committed chunk readable and nothing half-written; several processes can read and
write the same file at once, with writers waiting on a lock (``busy_timeout``) instead of interleaving lines.
The runner commits after every chunk it has answered, so a crash loses at most the chunk in flight.

What the cache guarantees:

* **It cannot lie.** Every row carries a checksum, sha256 of (key, kind, fingerprint, result JSON), written
  with it. A row that does not verify (edited by hand, copied under another key, damaged) is never used:
  the lookup reports it as *rejected*, the runner recomputes the request, counts it (``cache_rejected`` in
  the run manifest) and the good answer replaces the row.
* **A bad file is named before any work.** Opening checks that the file is a SQLite database holding a
  camels request cache (``PRAGMA quick_check`` and the table layout); a corrupt, foreign or newer file
  raises :class:`CacheError`, one line naming the file and what to do. The eval command opens the cache
  before it loads the model.
* **Two processes never compute one request twice.** A process *leases* the requests of a chunk before
  computing them (``claim``); another process skips leased requests, works on the rest, and then waits for
  the leased ones to appear. A lease held by a process that died (its pid is gone, or the pid now belongs
  to a process started later) is taken over. Leases are released with the chunk's answers, in the same
  transaction.

Limits: SQLite locking needs a local filesystem, not NFS: put the cache on local disk (one file per machine;
``camels merge-cache`` combines files made on several machines). Leases from other hosts expire after
``lease_seconds``. A cache made before checksums existed (no ``meta`` table) is upgraded in place when
opened: its rows are trusted once, as they were before, and get their checksums then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from camels.core.errors import ConfigError
from camels.core.requests import Request, Result, request_key, result_from_dict, result_to_dict

FORMAT = "camels-request-cache"
VERSION = 2
_RESULT_COLUMNS = ("key", "kind", "fingerprint", "result", "created")

_TABLES = (
    """CREATE TABLE IF NOT EXISTS results (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        created REAL NOT NULL,
        checksum TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS leases (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started REAL,
        expires REAL NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class CacheError(ConfigError):
    """The cache file cannot be used (corrupt, foreign, newer, unwritable): one line naming it."""


def row_checksum(key: str, kind: str, fingerprint: str, result_json: str) -> str:
    """What binds a stored answer to its request key: sha256 of the four fields, NUL-separated."""
    return hashlib.sha256("\0".join((key, kind, fingerprint, result_json)).encode()).hexdigest()


def _process_start(pid: int) -> float | None:
    # Start time of a process in clock ticks since boot (Linux /proc); tells a live lease holder from a
    # later process that reused its pid. None where unknown.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return float(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


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

    def __init__(self, path: str | Path, *, timeout: float = 60.0, check: bool = True,
                 lease_seconds: float = 3600.0) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = _process_start(self.pid)
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self._conn: sqlite3.Connection | None = None
        with self._errors("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            # Look before changing anything: a foreign or damaged file is named and left as it was.
            if check:
                bad = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check(3)")]
                if bad != ["ok"]:
                    problems = " ".join("; ".join(bad).split())  # one line
                    raise sqlite3.DatabaseError(f"integrity check failed: {problems[:200]}")
            self._inspect()
            self._while_locked(timeout, lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._while_locked(timeout, self._setup)

    # -- opening ------------------------------------------------------------------------------------------
    @staticmethod
    def _while_locked(timeout: float, step) -> None:
        """Run ``step``, again while SQLite says the database is locked, for up to ``timeout`` seconds.

        SQLite answers "database is locked" at once, without waiting for ``busy_timeout``, where waiting could
        deadlock: switching a new file to WAL while another process opens it, or a transaction that began by
        reading and then writes. Processes opening one cache together (``camels eval`` twice on one folder)
        meet exactly these, so the opening steps are retried here."""
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except CacheError:
            self._close_quietly()
            raise
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            text = str(e)
            if isinstance(e, sqlite3.OperationalError) and not any(
                    w in text for w in ("malformed", "not a database", "integrity")):
                raise CacheError(f"{self.path}: cannot {doing} the request cache ({text}); free space, fix "
                                 "permissions, or pass --cache with a file elsewhere") from None
            raise CacheError(f"{self.path}: not a usable camels request cache ({text}); move it aside or delete "
                             "it (its answers are then recomputed), or pass --cache with another file") from None
        except OSError as e:
            self._close_quietly()
            raise CacheError(f"{self.path}: cannot {doing} the request cache ({e.strerror or e}); free space or "
                             "fix permissions, or pass --cache with a file elsewhere") from None

    def _close_quietly(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _inspect(self) -> bool:
        """Raise :class:`CacheError` unless the file is empty or a camels cache this version reads; return
        whether it is already set up (has its ``meta`` table)."""
        assert self._conn is not None
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            meta = dict(self._conn.execute("SELECT name, value FROM meta"))
            if meta.get("format") != FORMAT:
                raise CacheError(f"{self.path}: a SQLite file but not a camels request cache (format "
                                 f"{meta.get('format')!r}); pass --cache with another file")
            if int(meta.get("version", 0)) > VERSION:
                raise CacheError(f"{self.path}: made by a newer camels (cache version {meta['version']}, "
                                 f"this one reads {VERSION}); upgrade camels or pass --cache with another file")
            return True
        if tables - {"results"}:
            raise CacheError(f"{self.path}: a SQLite file but not a camels request cache (tables: "
                             f"{', '.join(sorted(tables))}); pass --cache with another file")
        if "results" in tables:
            cols = [r[1] for r in self._conn.execute("PRAGMA table_info(results)")]
            if tuple(cols) != _RESULT_COLUMNS:
                raise CacheError(f"{self.path}: a SQLite file whose 'results' table is not a camels cache's "
                                 f"(columns {cols}); pass --cache with another file")
        return False

    def _setup(self) -> None:
        assert self._conn is not None
        with self._transaction():
            if self._inspect():  # (again, inside the write lock: another process may have set it up)
                for ddl in _TABLES:
                    self._conn.execute(ddl)
                return
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "results" in tables:  # a cache from before checksums (columns checked above): add them
                self._conn.execute("ALTER TABLE results ADD COLUMN checksum TEXT")
                rows = self._conn.execute("SELECT key, kind, fingerprint, result FROM results").fetchall()
                self._conn.executemany("UPDATE results SET checksum = ? WHERE key = ?",
                                       [(row_checksum(*r), r[0]) for r in rows])
            for ddl in _TABLES:
                self._conn.execute(ddl)
            self._conn.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                                   [("format", FORMAT), ("version", str(VERSION))])

    def close(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(sqlite3.Error):  # leases of a process that ends are free again
            self._conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))
        self._close_quietly()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------------
    @staticmethod
    def key(fingerprint: str, request: Request) -> str:
        return request_key(request, fingerprint)

    def get_many(self, fingerprint: str, requests: Sequence[Request]) -> list[Result | None]:
        """The cached result of each request, ``None`` where there is none (or its row does not verify)."""
        keys = [request_key(r, fingerprint) for r in requests]
        found = self.lookup_keys(keys)
        out: list[Result | None] = []
        for k in keys:
            row = found.get(k)
            out.append(None if row is None else result_from_dict(row[0], json.loads(row[1])))
        return out

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``key -> (kind, result JSON)`` for the keys present whose rows verify."""
        return self.lookup(keys)[0]

    def lookup(self, keys: Iterable[str]) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """``(found, rejected)``: ``key -> (kind, result JSON)`` for the rows that verify, and the keys whose
        rows do not (never to be used; :meth:`put_many` replaces them)."""
        with self._errors("read"):
            return self._lookup(list(dict.fromkeys(keys)))

    def _lookup(self, keys: list[str]) -> tuple[dict[str, tuple[str, str]], list[str]]:
        assert self._conn is not None
        found: dict[str, tuple[str, str]] = {}
        rejected: list[str] = []
        step = 500  # stay under SQLite's bound-parameter limit
        for i in range(0, len(keys), step):
            part = keys[i : i + step]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT key, kind, fingerprint, result, checksum FROM results WHERE key IN ({marks})", part)
            for key, kind, fingerprint, result, checksum in rows:
                if checksum == row_checksum(key, kind, fingerprint, result):
                    found[key] = (kind, result)
                else:
                    rejected.append(key)
        return found, rejected

    # -- writing ------------------------------------------------------------------------------------------
    def put_many(self, fingerprint: str, requests: Sequence[Request], results: Sequence[Result],
                 keys: Sequence[str] | None = None) -> int:
        """Store results in one transaction (all or nothing) and release their leases; return the number of
        rows written. A row already there that verifies stays (the first answer wins); one that does not
        verify is replaced. ``keys`` may pass the requests' keys when the caller has them already.
        """
        if len(requests) != len(results) or (keys is not None and len(keys) != len(requests)):
            raise ValueError("requests, results and keys differ in length")
        if keys is None:
            keys = [request_key(req, fingerprint) for req in requests]
        now = time.time()
        rows = []
        for key, req, res in zip(keys, requests, results):
            js = json.dumps(result_to_dict(res), separators=(",", ":"))
            rows.append((key, req.kind, fingerprint, js, now, row_checksum(key, req.kind, fingerprint, js)))
        with self._errors("write"), self._transaction():
            assert self._conn is not None
            _, bad = self._lookup(list(keys))
            self._delete("results", bad)
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO results (key, kind, fingerprint, result, created, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?)", rows)
            written = self._conn.total_changes - before
            self._conn.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])
            return written

    def put_rows(self, rows: Iterable[tuple[str, str, str, str, float, str]]) -> tuple[int, int]:
        """Copy stored rows ``(key, kind, fingerprint, result, created, checksum)`` from another cache file in
        one transaction; rows that do not verify are not copied. Returns ``(copied, rejected)``."""
        good, rejected = [], 0
        for key, kind, fingerprint, result, created, checksum in rows:
            if checksum == row_checksum(key, kind, fingerprint, result):
                good.append((key, kind, fingerprint, result, created, checksum))
            else:
                rejected += 1
        with self._errors("write"), self._transaction():
            assert self._conn is not None
            _, bad = self._lookup([r[0] for r in good])
            self._delete("results", bad)
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO results (key, kind, fingerprint, result, created, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?)", good)
            return self._conn.total_changes - before, rejected

    def rows(self) -> Iterator[tuple[str, str, str, str, float, str]]:
        """Every stored row, as :meth:`put_rows` takes them."""
        with self._errors("read"):
            assert self._conn is not None
            yield from self._conn.execute(
                "SELECT key, kind, fingerprint, result, created, checksum FROM results ORDER BY key")

    def discard(self, keys: Iterable[str]) -> None:
        """Delete the rows of ``keys`` (e.g. rows that did not verify)."""
        with self._errors("write"), self._transaction():
            self._delete("results", list(keys))

    def _delete(self, table: str, keys: list[str]) -> None:
        assert self._conn is not None
        self._conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in keys])

    # -- leases -------------------------------------------------------------------------------------------
    def _lease_live(self, owner: str, host: str, pid: int, started: float | None, expires: float) -> bool:
        if owner == self.owner or (host == self.host and pid == self.pid):
            return False  # ours, or another cache object of this process: never wait for ourselves
        if host != self.host:
            return expires > time.time()
        if not _pid_alive(pid):
            return False
        now_started = _process_start(pid)
        return started is None or now_started is None or now_started == started

    def claim(self, keys: Sequence[str], limit: int) -> tuple[list[str], dict[str, tuple[str, str]], list[str]]:
        """Lease up to ``limit`` of ``keys`` (in order) for this process, in one transaction.

        Returns ``(claimed, found, rejected)``: the keys now leased to this process (compute them, then
        :meth:`put_many` releases them), the keys of ``keys`` scanned on the way that already have a verified
        answer (``key -> (kind, result JSON)``), and the keys whose rows did not verify (they are claimed
        like missing ones). Keys leased by another live process are skipped.
        """
        claimed: list[str] = []
        found: dict[str, tuple[str, str]] = {}
        rejected: list[str] = []
        now = time.time()
        with self._errors("write"), self._transaction():
            assert self._conn is not None
            step = 500
            for i in range(0, len(keys), step):
                part = list(keys[i : i + step])
                got, bad = self._lookup(part)
                found.update(got)
                rejected.extend(bad)
                marks = ",".join("?" * len(part))
                leases = {r[0]: r[1:] for r in self._conn.execute(
                    f"SELECT key, owner, host, pid, started, expires FROM leases WHERE key IN ({marks})", part)}
                take = []
                for k in part:
                    if k in got or (k in leases and self._lease_live(*leases[k])):
                        continue
                    take.append(k)
                    if len(claimed) + len(take) >= limit:
                        break
                self._conn.executemany(
                    "INSERT OR REPLACE INTO leases (key, owner, host, pid, started, expires) VALUES (?, ?, ?, ?, ?, ?)",
                    [(k, self.owner, self.host, self.pid, self.started, now + self.lease_seconds) for k in take])
                claimed.extend(take)
                if len(claimed) >= limit:
                    break
        return claimed, found, rejected

    def release(self, keys: Iterable[str]) -> None:
        """Give up this process's leases on ``keys`` (a chunk that failed)."""
        with self._errors("write"), self._transaction():
            assert self._conn is not None
            self._conn.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])

    def lease_holders(self, keys: Iterable[str]) -> list[str]:
        """The other live processes (``host:pid``) holding leases on any of ``keys``."""
        with self._errors("read"):
            assert self._conn is not None
            keys = list(keys)
            holders = set()
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                marks = ",".join("?" * len(part))
                for owner, host, pid, started, expires in self._conn.execute(
                        f"SELECT owner, host, pid, started, expires FROM leases WHERE key IN ({marks})", part):
                    if self._lease_live(owner, host, pid, started, expires):
                        holders.add(f"{host}:{pid}")
            return sorted(holders)

    def __len__(self) -> int:
        with self._errors("read"):
            assert self._conn is not None
            return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def merge_caches(target: str | Path, sources: Sequence[str | Path], *, remove: bool = False) -> list[tuple[Path, int, int]]:
    """Copy every verified row of the ``sources`` (cache files made by ``--shard`` runs, possibly on other
    machines) into the cache ``target``; return ``(source, rows copied, rows rejected)`` per source.

    Each source is checked as it is opened (a corrupt or foreign file is a :class:`CacheError` naming it,
    before anything is copied from it) and copied in one transaction; rows already in ``target`` stay.
    With ``remove``, a source is deleted once its rows are committed.
    """
    out = []
    with RequestCache(target) as into:
        for src in sources:
            src = Path(src)
            if src.resolve() == into.path.resolve():
                raise CacheError(f"{src}: cannot merge a cache into itself")
            if not src.is_file():
                raise CacheError(f"{src}: no such cache file")
            with RequestCache(src) as cache:
                copied, rejected = into.put_rows(cache.rows())
            out.append((src, copied, rejected))
            if remove:
                for extra in (src, src.with_name(src.name + "-wal"), src.with_name(src.name + "-shm")):
                    with contextlib.suppress(FileNotFoundError):
                        extra.unlink()
    return out
