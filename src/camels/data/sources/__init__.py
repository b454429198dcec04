"""One pure converter per source: raw row -> conversations (no I/O).

:data:`SOURCES` maps a source name to its :class:`~camels.data.sources.base.Source`. Adding a dataset is
adding one small module with a ``convert(row, ctx)`` function and a ``SOURCE`` record, and its name here.
"""

from __future__ import annotations

import importlib

from camels.core.errors import ConfigError
from camels.data.sources.base import Context, Skip, Source, rng_for, whitespace_tokens

NAMES = (
    "superni", "cot", "flan_v2", "dolly", "oasst1", "self_instruct", "unnatural", "alpaca", "code_alpaca",
    "gpt4_alpaca", "baize", "sharegpt", "messages",
)

SOURCES: dict[str, Source] = {
    name: importlib.import_module(f"camels.data.sources.{name}").SOURCE for name in NAMES
}


def get_source(name: str) -> Source:
    """The source called ``name``; a :class:`ConfigError` listing the known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r} (known: {', '.join(NAMES)})") from None


__all__ = ["NAMES", "SOURCES", "Context", "Skip", "Source", "get_source", "rng_for", "whitespace_tokens"]
