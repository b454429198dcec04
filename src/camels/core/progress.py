"""Progress bars for long work: tqdm on a terminal, quiet in logs unless asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it",
             **kw: Any) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr; disabled when stderr is not a terminal unless
    ``CAMELS_PROGRESS=1`` (and forced off by ``CAMELS_PROGRESS=0``)."""
    from tqdm.auto import tqdm

    env = os.environ.get("CAMELS_PROGRESS")
    disable = (env == "0") or (env != "1" and not sys.stderr.isatty())
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True, **kw))
