"""Where evaluation outputs live: the one definition of the runs folder's layout.

::

    <output>/                          --output (default runs/)
      .cache/requests.sqlite           the request cache shared by every run under <output>
      .cache/requests.shard-I-of-N.sqlite   what ``--shard I/N`` computed (merged by ``camels merge-cache``)
      <model-slug>/                    model_slug(--model), or --run-name
        <task label>/                  one run folder: see camels.core.results for its files
        .<task label>.partial-<pid>/   a run being written (or one that died: its config says what it was)

The evaluation engine writes this layout and the report and pipeline read it; all of them import it from
here (``core`` imports no model code, so readers stay light).

A run folder is published whole (:func:`publishing`): its files are written into a staging folder beside it,
which then takes the run folder's place in one atomic step (``renameat2(RENAME_EXCHANGE)`` on Linux), so a
reader finds either the old complete set of files or the new one, never new predictions beside an old
manifest. Where the exchange is not available (other systems, some file systems) the old folder is renamed
aside first, and for that instant the run folder is absent rather than mixed. A folder that holds a
hidden folder of its own (a request cache in ``.cache/``, as ``camels score`` and ``camels judge`` keep
beside their outputs) is never moved: there each file is replaced atomically, one after the other.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from camels.core.errors import ConfigError
from camels.core.results import MANIFEST_FILE, PREDICTIONS_FILE

#: The request cache below an output folder.
CACHE_FILE = ".cache/requests.sqlite"


def model_slug(model: str) -> str:
    """A folder name for a model: the last path part (with its parent for ``checkpoint-*``/``step-*``
    folders), ``org__name`` for hub names; characters outside ``[A-Za-z0-9._-]`` become ``_``.

    >>> model_slug("out/tulu-7b/checkpoint-500"), model_slug("allenai/tulu-7b")
    ('tulu-7b_checkpoint-500', 'allenai__tulu-7b')
    """
    path = Path(model)
    parts = [p for p in path.parts if p not in ("/", ".", "..")]
    if not parts:
        raise ConfigError(f"cannot name a run folder after model {model!r}; pass --run-name")
    if len(parts) >= 2 and re.match(r"^(checkpoint|step|epoch)[-_]?\d+$", parts[-1]):
        slug = f"{parts[-2]}_{parts[-1]}"
    elif len(parts) == 2 and not path.exists() and not model.startswith((".", "/")):
        slug = f"{parts[0]}__{parts[1]}"
    else:
        slug = parts[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", slug)


def model_dir(output: str | Path, model: str, run_name: str | None = None) -> Path:
    """``<output>/<run_name or model_slug(model)>``: the folder of one model's runs."""
    return Path(output) / (run_name or model_slug(model))


def run_dir(output: str | Path, model: str, task_label: str, run_name: str | None = None) -> Path:
    """``<output>/<model-slug>/<task label>``: the run folder of one (model, task)."""
    return model_dir(output, model, run_name) / task_label


def cache_file(output: str | Path) -> Path:
    """``<output>/.cache/requests.sqlite``: the default request cache of an output folder."""
    return Path(output) / CACHE_FILE


def shard_cache_file(cache: str | Path, shard: tuple[int, int]) -> Path:
    """The cache file of shard ``(i, n)`` beside ``cache``: ``requests.shard-<i>-of-<n>.sqlite``."""
    cache = Path(cache)
    i, n = shard
    return cache.with_name(f"{cache.stem}.shard-{i}-of-{n}{cache.suffix}")


def shard_cache_files(cache: str | Path) -> list[Path]:
    """The shard cache files beside ``cache`` (see :func:`shard_cache_file`), sorted."""
    cache = Path(cache)
    return sorted(cache.parent.glob(f"{cache.stem}.shard-*-of-*{cache.suffix}"))


def finished_runs(output: str | Path) -> Iterator[Path]:
    """Every finished run folder under ``output`` (it holds predictions and a manifest), sorted."""
    root = Path(output)
    for manifest in sorted(root.glob(f"*/*/{MANIFEST_FILE}")):
        if (manifest.parent / PREDICTIONS_FILE).is_file():
            yield manifest.parent


# --- publishing a run folder whole ----------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2); False where that is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _pid_of(staging: Path) -> int | None:
    tail = staging.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def publish(staging: Path, target: Path) -> None:
    """Make the folder ``staging`` the folder ``target`` in one step (see the module doc); the old
    ``target``, if any, is deleted afterwards."""
    try:
        os.rename(staging, target)  # no old folder: a plain rename is atomic
        return
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now the old set
        return
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def _in_place(run_dir: Path) -> bool:
    # A folder with a hidden folder inside (a live request cache) is not moved: files are replaced one by one.
    return run_dir.is_dir() and any(e.name.startswith(".") and e.is_dir() for e in run_dir.iterdir())


def stage(run_dir: str | Path, *, start_from_current: bool = False) -> Path:
    """Create and return the staging folder of ``run_dir`` (``.<name>.partial-<pid>`` beside it), after
    removing staging folders of processes that no longer run; with ``start_from_current`` it starts as a
    copy of the current run folder. :func:`commit` publishes it."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    for old in run_dir.parent.glob(f".{run_dir.name}.partial-*"):
        pid = _pid_of(old)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    staging = run_dir.parent / f".{run_dir.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    if start_from_current and run_dir.is_dir() and not _in_place(run_dir):
        shutil.copytree(run_dir, staging)
    else:
        staging.mkdir()
    return staging


def commit(staging: str | Path, run_dir: str | Path) -> None:
    """Publish the staging folder as ``run_dir``: files of the current run folder that the staging folder
    lacks are carried over, then the folders swap in one step (:func:`publish`)."""
    staging, run_dir = Path(staging), Path(run_dir)
    if _in_place(run_dir):
        for entry in sorted(staging.iterdir()):
            os.replace(entry, run_dir / entry.name)
        staging.rmdir()
        return
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            dest = staging / entry.name
            if dest.exists():
                continue
            if entry.is_dir():
                shutil.copytree(entry, dest)
            else:
                shutil.copy2(entry, dest)
    publish(staging, run_dir)


@contextlib.contextmanager
def publishing(run_dir: str | Path, *, start_from_current: bool = False) -> Iterator[Path]:
    """Write a run folder whole: yields a staging folder beside ``run_dir`` (:func:`stage`); when the block
    ends normally it replaces ``run_dir`` (:func:`commit`).

    Files of the current ``run_dir`` that the block did not write are carried over (with
    ``start_from_current`` they are copied in before the block, for rewriting a few files of a run, as
    rescoring does). If the block raises, ``run_dir`` is untouched and the staging folder stays, saying what
    the failed run was; staging folders of processes that no longer run are removed on the next publish.
    """
    staging = stage(run_dir, start_from_current=start_from_current)
    yield staging
    commit(staging, run_dir)
