"""Shared fixtures: the real data folder (skips when absent) and tiny offline models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def realdata_dir() -> Path:
    """``$CAMELS_REALDATA`` or ``../shared/realdata`` beside the project root."""
    return Path(os.environ.get("CAMELS_REALDATA", ROOT.parent / "shared" / "realdata")).resolve()


@pytest.fixture(scope="session")
def realdata() -> Path:
    path = realdata_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set CAMELS_REALDATA to use another)")
    return path


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_tok():
    pytest.importorskip("transformers")
    from camels.tiny import tiny_tokenizer

    return tiny_tokenizer()
