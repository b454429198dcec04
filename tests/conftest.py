"""Shared fixtures: the real data folder (skips when absent) and tiny offline models."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    """The pid of a child process that sleeps until the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
