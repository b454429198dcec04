"""Files: streaming JSONL with line numbers, atomic writes, content hashes, versions.

Every reader yields ``(line_number, object)`` so errors can name the line; every writer goes through a
temporary file in the same folder and ``os.replace``, so a crash never leaves a half-written output that a
later step would trust.
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

from camels.core.errors import RecordError


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a text file for reading, transparently gunzipping ``*.gz``. Invalid UTF-8 raises on read."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict", newline="")
    return open(path, encoding="utf-8", errors="strict", newline="")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str | RecordError]]:
    """Yield ``(1-based line number, line without its newline)`` for each non-blank line.

    A line that is not valid UTF-8 is yielded as a :class:`RecordError` (reason ``bad_utf8``) naming file and
    line, so a strict caller raises it and a lenient one counts it and goes on with the next line.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
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
                yield n, json.loads(line)
                continue
            except json.JSONDecodeError as e:
                err = RecordError("bad_json", f"malformed JSON: {e.msg} (column {e.colno})", file=str(path), line=n)
        if errors is None:
            raise err
        errors.append(err)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; errors name the file, line and column."""
    path = Path(path)
    try:
        with open_text(path) as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise RecordError("bad_utf8", f"invalid UTF-8 at byte {e.start}", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise RecordError("bad_json", f"malformed JSON: {e.msg} (column {e.colno})", file=str(path),
                          line=e.lineno) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to ``path`` all-or-nothing: a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, newline=None if "b" in mode else "\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    for name in ("camels", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
