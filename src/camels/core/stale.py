"""Temporary folders that name their owner, and the removal of those whose owner is gone.

Work that is published by renaming a folder into place (the token store, an export, a checkpoint)
first writes a temporary folder beside the target. A process killed mid-way leaves that folder behind.
To tell such a leftover from a folder that another process is still writing, the writer puts a small
``owner.json`` in it first: host name, process id and the process's start time (from ``/proc`` where
there is one, so a reused process id is not mistaken for the owner).

:func:`remove_stale` then removes a folder only when

* its owner ran on this host and is no longer running (or a different process now holds its id), or
* it cannot be judged from here (another host on a shared file system, or no owner file) and nothing in
  it has changed for ``max_age_s`` (24 h by default): a live writer on another machine is never removed
  while it is still writing.

Limits: liveness is ``kill(pid, 0)``; a host name shared by two machines on one file system would make
one judge the other's processes (as if they were its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from camels.core.io import write_json

OWNER = "owner.json"
MAX_AGE_S = 24 * 3600


def host() -> str:
    """This machine's host name."""
    return socket.gethostname()


def tag(pid: int | None = None) -> str:
    """``<host>-<pid>`` (this process by default), usable in a file name: what a temporary folder's name
    carries so that two writers, on one host or on two that share a file system, never pick the same one."""
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', host())[:40]}-{os.getpid() if pid is None else pid}"


def beside(target: str | Path, kind: str, pid: int | None = None) -> Path:
    """``.<kind>-<target's name>-<tag>`` beside ``target``: the temporary folder of this process (or of
    process ``pid`` of this host) for work published at ``target``."""
    target = Path(target)
    return target.parent / f".{kind}-{target.name}-{tag(pid)}"


def leftovers(target: str | Path, *kinds: str) -> list[Path]:
    """Every folder :func:`beside` ``target`` of these ``kinds``, whatever its process."""
    target = Path(target)
    return [p for kind in kinds for p in target.parent.glob(f".{kind}-{target.name}-*")]


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in parentheses may hold spaces


def alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, when ``start`` is given, is the one started then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    except OSError:
        return False
    if start is not None:
        now = process_start(pid)
        return now is None or now == start
    return True


def write_owner(folder: str | Path, **extra: Any) -> None:
    """Name this process (host, pid, start time) as the owner of ``folder``."""
    pid = os.getpid()
    write_json(Path(folder) / OWNER, {"host": host(), "pid": pid, "start": process_start(pid), **extra})


def owned_folder(folder: str | Path, **extra: Any) -> Path:
    """``folder``, new and empty, with this process named as its owner (:func:`write_owner`). Its name is
    meant to carry this process's :func:`tag` (as :func:`beside` gives): a folder of that name can only be
    the leftover of a gone process of this host that had this pid, and is removed first."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    write_owner(folder, **extra)
    return folder


def read_owner(folder: str | Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((Path(folder) / OWNER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def is_stale(folder: str | Path, *, max_age_s: float = MAX_AGE_S, now: float | None = None,
             own: bool = False) -> bool:
    """Whether ``folder`` is a leftover (see the module docstring). With ``own``, a folder of this very
    process is one too: for a writer that writes one such folder at a time and is not writing now (a save
    of its own that failed half-way left it)."""
    folder = Path(folder)
    owner = read_owner(folder)
    if owner is not None and owner.get("host") == host() and isinstance(owner.get("pid"), int):
        if own and owner["pid"] == os.getpid() and owner.get("start") == process_start(os.getpid()):
            return True
        return not alive(owner["pid"], owner.get("start"))
    return (time.time() if now is None else now) - last_change(folder) > max_age_s


def last_change(folder: Path) -> float:
    """The newest modification time of ``folder`` and the entries directly in it."""
    newest = 0.0
    with contextlib.suppress(OSError):
        newest = folder.stat().st_mtime
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def remove_stale(folders: Iterable[Path], *, max_age_s: float = MAX_AGE_S, own: bool = False) -> list[Path]:
    """Remove the stale ones of ``folders`` (``own``: see :func:`is_stale`); return those removed."""
    removed = []
    for folder in folders:
        if folder.is_dir() and is_stale(folder, max_age_s=max_age_s, own=own):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed
