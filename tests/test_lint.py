"""Style and architecture checks run as tests, so the one test command covers them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(ROOT / ".venv" / "bin" / name)
    if not shutil.which(exe):
        pytest.fail(f"{name} is not installed: install the [dev] extra")
    return exe


def test_ruff_clean():
    paths = [p for p in ("src", "tests", "benchmarks") if (ROOT / p).is_dir()]
    out = subprocess.run([_tool("ruff"), "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_layers():
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_help_does_not_import_torch():
    code = "import sys; from camels.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
