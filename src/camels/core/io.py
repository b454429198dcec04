"""Files: streaming JSONL with line numbers, atomic writes, content hashes, versions.

Every reader yields ``(line_number, object)`` so errors can name the line; every writer goes through a
temporary file in the same folder and ``os.replace``, so a crash never leaves a half-written output that a
later step would trust. Files that belong together (an output and its manifest) are published together
(:func:`publish_together`): a reader finds the old pair or the new one, never a mix.

Files as editors save them read as the same data: a UTF-8 byte-order mark at the start of a file is
dropped, and CRLF line ends read like LF, in every reader here (JSON, JSONL, CSV, TSV, plain text).
New files get the permissions the umask allows (as ``open`` would give them), not ``mkstemp``'s 0600; a
file that is replaced keeps its mode.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from camels.core.errors import ConfigError, RecordError, file_error

BOM = "\ufeff"


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a text file for reading, transparently gunzipping ``*.gz``; a leading byte-order mark is
    dropped. Line ends are kept as they are (``newline=""``, what :mod:`csv` wants: it reads CRLF rows
    itself). Invalid UTF-8 raises on read."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="strict", newline="")
    return open(path, encoding="utf-8-sig", errors="strict", newline="")


def read_text(path: str | os.PathLike) -> str:
    """A whole text file (``.gz`` too) as a string: byte-order mark dropped, CRLF and CR read as ``\\n``.
    Invalid UTF-8 is a :class:`RecordError` naming the file."""
    try:
        with open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise RecordError("bad_utf8", f"invalid UTF-8 at byte {e.start}", file=str(path)) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_json(text: str, *, file: str | None = None, line: int | None = None) -> Any:
    """``json.loads`` whose two failures are :class:`RecordError`: malformed JSON (``bad_json``, naming the
    line and column) and nesting deeper than the parser can follow (``too_deep``; the parser raises
    ``RecursionError`` there, which a lenient reader could not count). A leading byte-order mark is
    dropped.

    >>> parse_json('\\ufeff{"a": 1}')
    {'a': 1}
    >>> parse_json("[" * 100000 + "]" * 100000, file="x.jsonl", line=3)
    Traceback (most recent call last):
    ...
    camels.core.errors.RecordError: x.jsonl:3: JSON nested too deeply for the parser (at most a few hundred levels are read)
    """
    if text.startswith(BOM):
        text = text[1:]
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError("bad_json", f"malformed JSON: {e.msg} (column {e.colno})", file=file,
                          line=line if line is not None else (e.lineno if file is not None else None)) from None
    except RecursionError:
        raise RecordError("too_deep", "JSON nested too deeply for the parser (at most a few hundred levels "
                          "are read)", file=file, line=line) from None


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str | RecordError]]:
    """Yield ``(1-based line number, line without its newline)`` for each non-blank line.

    A line that is not valid UTF-8 is yielded as a :class:`RecordError` (reason ``bad_utf8``) naming file and
    line, so a strict caller raises it and a lenient one counts it and goes on with the next line.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, RecordError("bad_utf8", f"invalid UTF-8 at byte {e.start}", file=str(path), line=n)
                continue
            line = line.rstrip("\r\n")
            if line.strip():
                yield n, line


def iter_jsonl(path: str | os.PathLike, *, errors: list[RecordError] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed object)`` for each non-blank line of a JSONL file (``.gz`` too).

    A malformed line (bad JSON, bad UTF-8) raises :class:`RecordError` naming file and line, unless
    ``errors`` is a list: then the error is appended to it and reading goes on (lenient mode).
    """
    for n, line in iter_lines(path):
        if isinstance(line, RecordError):
            err = line
        else:
            try:
                obj = parse_json(line, file=str(path), line=n)
            except RecordError as e:
                err = e
            else:
                yield n, obj
                continue
        if errors is None:
            raise err
        errors.append(err)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; errors name the file, line and column."""
    return parse_json(read_text(path), file=str(Path(path)))


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode a written file gets: the replaced file's mode, else what the umask allows of 0666."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


class Publication:
    """Files written beside each other and published together (an output and its manifest).

    Each file is written to a temporary file in its folder (:meth:`open`); :meth:`commit` then renames
    them into place. Everything that can run out of space or permission happens before the first
    rename, so a failure leaves the old files as they were. For a crash between the renames, a small
    journal (``.<first name>.publish.json``, written atomically before them and removed after) lists
    the renames still to do; :func:`finish_publication` (called by readers of the pair and by the next
    writer) completes them, so a reader finds the old set or the new one.
    """

    def __init__(self, *paths: str | os.PathLike) -> None:
        if not paths:
            raise ValueError("Publication needs at least one path")
        self.paths = [Path(p) for p in paths]
        self.temps: dict[Path, Path] = {}
        self._journaled = False  # once the journal names the temps, they are the new content: keep them
        finish_publication(self.paths[0])

    def temp(self, path: str | os.PathLike) -> Path:
        """The temporary file that holds ``path``'s new content (created on first use)."""
        path = Path(path)
        if path not in self.paths:
            raise ValueError(f"{path} is not one of this publication's files")
        if path not in self.temps:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                try:
                    os.fchmod(fd, new_file_mode(path))
                finally:
                    os.close(fd)
            except OSError as e:
                raise file_error(e, path, "cannot write") from None
            self.temps[path] = Path(tmp)
        return self.temps[path]

    @contextlib.contextmanager
    def open(self, path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
        """Write ``path``'s new content (flushed and fsynced on leaving); OS errors name ``path``."""
        path = Path(path)
        tmp = self.temp(path)
        binary = "b" in mode
        try:
            with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else "\n") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            if e.filename is not None:  # raised by the caller's own file work (an input), not this write
                raise
            raise file_error(e, path, "cannot write") from None

    def commit(self) -> None:
        missing = [str(p) for p in self.paths if p not in self.temps]
        if missing:
            raise ValueError(f"publication of {self.paths[0]}: nothing written for {', '.join(missing)}")
        pairs = [(self.temps[p], p) for p in self.paths]
        journal = _journal(self.paths[0]) if len(pairs) > 1 else None
        if journal is not None:
            try:
                fd, jtmp = tempfile.mkstemp(prefix=journal.name, suffix=".tmp", dir=journal.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump([[str(t), str(p)] for t, p in pairs], f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(jtmp, journal)
                self._journaled = True
            except OSError as e:
                with contextlib.suppress(OSError, UnboundLocalError):
                    os.unlink(jtmp)
                raise file_error(e, self.paths[0], "cannot write") from None
        try:
            for tmp, path in pairs:
                os.replace(tmp, path)
            for folder in {p.parent for p in self.paths}:
                fsync_dir(folder)
            if journal is not None:
                journal.unlink()
                self._journaled = False
        except OSError as e:
            raise file_error(e, self.paths[0], "cannot publish") from None
        self.temps.clear()

    def abort(self) -> None:
        if self._journaled:  # interrupted between the renames: the next reader or writer finishes them
            self.temps.clear()
            return
        for tmp in self.temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.temps.clear()


def _journal(path: Path) -> Path:
    return path.with_name(f".{path.name}.publish.json")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``folder`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def finish_publication(path: str | os.PathLike) -> bool:
    """Complete a publication of ``path`` (and its companions) that a crash interrupted between its
    renames; return whether there was one. Its files were complete and synced before the journal was
    written, so finishing it yields the new set."""
    journal = _journal(Path(path))
    if not journal.exists():
        return False
    try:
        pairs = json.loads(journal.read_text(encoding="utf-8"))
        for tmp, final in pairs:
            if os.path.exists(tmp):
                os.replace(tmp, final)
        journal.unlink()
    except OSError as e:
        raise file_error(e, path, "cannot finish an interrupted write (run the step again)") from None
    except (ValueError, TypeError):
        raise RecordError("bad_journal", f"unreadable publication journal {journal}: delete it and run the "
                          "step that writes this file again", file=str(path)) from None
    return True


@contextlib.contextmanager
def publish_together(*paths: str | os.PathLike) -> Iterator[Publication]:
    """``with publish_together(out, manifest) as pub:`` write each through ``pub.open(path)``; on a clean
    exit all are published together, on an error none is (the old files stay)."""
    pub = Publication(*paths)
    try:
        yield pub
        pub.commit()
    except BaseException:
        pub.abort()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to ``path`` all-or-nothing: a temp file in the same folder, fsync, then ``os.replace``.
    OS errors (disk full, permission denied, read-only file system) are one :class:`FileError` naming
    ``path``."""
    with publish_together(path) as pub, pub.open(path, mode, encoding) as f:
        yield f


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable bytes for the same object)."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Atomically write one compact JSON object per line; return the number of lines."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def versions(*packages: str) -> dict[str, str]:
    """Versions of python, camels and the named packages that are installed (for manifests)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": sys.platform}
    from camels import installed_version

    out["camels"] = installed_version()  # distribution camels-instruct (a bare checkout: the source's version)
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hub_revision(name: str | os.PathLike) -> tuple[str, str | None]:
    """``ORG/NAME@REVISION`` -> ``("ORG/NAME", "REVISION")``: a hub model or tokenizer pinned to a commit,
    branch or tag. A name without ``@``, or a local path that exists, comes back whole, with no revision."""
    text = str(name)
    if "@" not in text or Path(text).expanduser().exists():
        return text, None
    repo, _, revision = text.rpartition("@")
    if not repo or not revision or "@" in repo:
        raise ConfigError(f"{text!r}: a hub name pinned to a revision reads ORG/NAME@REVISION")
    return repo, revision


def load_pretrained(cls: Any, name: str | os.PathLike, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` (a transformers or peft class) for a folder or a hub name, with the revision of
    ``ORG/NAME@REVISION`` passed as ``revision=`` (see :func:`hub_revision`)."""
    repo, revision = hub_revision(name)
    if revision is not None:
        kwargs["revision"] = revision
    return cls.from_pretrained(repo, **kwargs)
