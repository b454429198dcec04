"""Errors that say where bad input is: file, line and field.

Every reader in camels raises :class:`RecordError` for a bad record, so the CLI can print one line like
``data/oasst.jsonl:17: messages[2].role: unknown role 'bot' (expected system, user or assistant)`` and
lenient modes can count skips by :attr:`RecordError.reason`.
"""

from __future__ import annotations


class CamelsError(Exception):
    """Base class of errors that camels reports to users as one clear line."""


class RecordError(CamelsError):
    """A record (a line, a row, an item) that cannot be used.

    ``reason`` is a short stable slug (``"bad_json"``, ``"missing_field"``, ``"empty_content"`` ...) used to
    count skips in manifests; ``detail`` is the human sentence.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        field: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        self.file = file
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.detail}"

    def located(self, *, file: str | None = None, line: int | None = None) -> RecordError:
        """Return a copy that also names the file and line (keeps what is already known)."""
        return RecordError(
            self.reason,
            self.detail,
            field=self.field,
            file=self.file if self.file is not None else file,
            line=self.line if self.line is not None else line,
        )

    def under(self, prefix: str) -> RecordError:
        """Return a copy whose field is nested under ``prefix`` (e.g. ``messages[2]`` + ``role``)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return RecordError(self.reason, self.detail, field=field, file=self.file, line=self.line)


class ConfigError(CamelsError):
    """A configuration (YAML, CLI override) that cannot be used."""


class FileError(CamelsError):
    """A file that cannot be read or written for a reason of the operating system (disk full, permission
    denied, read-only file system ...): the message names the file and says what to do."""


_HINTS = {
    "ENOSPC": "the disk is full: free space there or write the output to another disk",
    "EDQUOT": "the disk quota is exhausted: free space there or write the output elsewhere",
    "EACCES": "permission denied: check the permissions of the file and its folder, or write elsewhere",
    "EPERM": "operation not permitted: check the permissions of the file and its folder, or write elsewhere",
    "EROFS": "the file system is read-only: write the output to a writable folder",
    "ENOENT": "no such file or folder: check the path",
    "EISDIR": "this is a folder, not a file: give a file path",
    "ENOTDIR": "a part of this path is a file, not a folder: check the path",
    "EMFILE": "too many open files: raise the limit (ulimit -n) and run again",
    "EIO": "input/output error: the disk or network file system failed; check it and run again",
}


def file_error(err: OSError, path: object = None, action: str | None = None) -> FileError:
    """One clear line for an :class:`OSError`: ``PATH: cannot write: the disk is full: free space ...``.

    ``path`` is the file the caller was working on (an ``OSError`` raised by ``write`` carries no name).
    """
    import errno

    where = path if path is not None else (err.filename or "?")
    code = errno.errorcode.get(err.errno or 0, "")
    hint = _HINTS.get(code) or (err.strerror or str(err) or type(err).__name__)
    action = f"{action}: " if action else ""
    return FileError(f"{where}: {action}{hint}" + (f" [{code}]" if code else ""))
