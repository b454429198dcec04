"""The eval section's backend options are checked when the config is read (before the data and training
stages run for hours), against the options the backend takes: a typo or a wrong type is one line naming the
file, the line and the key."""

from __future__ import annotations

import pytest

from camels.core.errors import ConfigError
from camels.pipeline import load_pipeline

from .pipeline_helpers import write_pipeline


def _error(path, *overrides) -> str:
    with pytest.raises(ConfigError) as e:
        load_pipeline(path, list(overrides))
    return str(e.value)


def test_backend_options_checked_when_read(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs)
    text = path.read_text()
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "backend_options" in x)
    path.write_text(text.replace("{batch_size: 16}", "{batchsize: 16}"))
    assert _error(path) == (f"{path}:{line}: eval.backend_options.batchsize: not an option of backend hf "
                            "(did you mean batch_size?)")
    path.write_text(text.replace("{batch_size: 16}", "{batch_size: sixteen}"))
    assert _error(path) == f"{path}:{line}: eval.backend_options.batch_size: expected an integer, got 'sixteen'"
    path.write_text(text)
    assert _error(path, "eval.backend_options.prefix_reuse=maybe").startswith(
        "override: eval.backend_options.prefix_reuse: expected true or false")
    assert _error(path, "eval.backend_options.colour=1").startswith(
        "override: eval.backend_options.colour: not an option of backend hf (known: ")
    cfg = load_pipeline(path, ["eval.backend_options.dtype=float32", "eval.backend_options.max_length=64"])
    assert cfg.eval.backend_options == {"batch_size": 16, "dtype": "float32", "max_length": 64}
    # a backend whose options are open (vLLM passes the rest to its engine) takes any name
    cfg = load_pipeline(path, ["eval.backend=vllm", "eval.backend_options.gpu_memory_utilization=0.8"])
    assert cfg.eval.backend_options["gpu_memory_utilization"] == 0.8


def test_default_backend_options_fit_every_backend(tmp_path, inputs):
    """A pipeline that sets no backend options can switch to the API backend (which has no batch size)."""
    path = write_pipeline(tmp_path, inputs)
    path.write_text(path.read_text().replace("  backend_options: {batch_size: 16}\n", ""))
    assert load_pipeline(path, ["eval.backend=api"]).eval.backend_options == {}
    assert load_pipeline(path).eval.backend_options == {}  # the hf backend's own default batch size then
