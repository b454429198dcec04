"""While ``camels.report`` is not in the tree, the demo's report stage uses the pipeline tests' stand-in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def report_standin(monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
    try:
        import standin_report
    finally:
        sys.path.pop(0)
    module = standin_report.module()
    if module is not None:
        monkeypatch.setitem(sys.modules, "camels.report", module)
    yield
