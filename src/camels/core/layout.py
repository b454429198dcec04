"""Where evaluation outputs live: the one definition of the runs folder's layout.

::

    <output>/                          --output (default runs/)
      .cache/requests.sqlite           the request cache shared by every run under <output>
      <model-slug>/                    model_slug(--model), or --run-name
        <task label>/                  one run folder: see camels.core.results for its files

The evaluation engine writes this layout and the report and pipeline read it; all of them import it from
here (``core`` imports no model code, so readers stay light).
"""

from __future__ import annotations

import re
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


def finished_runs(output: str | Path) -> Iterator[Path]:
    """Every finished run folder under ``output`` (it holds predictions and a manifest), sorted."""
    root = Path(output)
    for manifest in sorted(root.glob(f"*/*/{MANIFEST_FILE}")):
        if (manifest.parent / PREDICTIONS_FILE).is_file():
            yield manifest.parent
