"""Every format of two fixture reports, byte for byte, against files kept in ``tests/report/golden/``.

The golden files were written once by the report code as it stood before the HTML rows, the reference
reading and the CLI's printing were reorganised; they pin the bytes users get, so a refactoring that
changes any of them fails here. Regenerate (only for an intended change of output, said in the commit)
with ``python -c "from tests.report.test_bytes import regenerate; regenerate()"``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from camels.report import build_report

from .helpers import sample_study, two_models

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = ("report.txt", "report.md", "report.csv", "report.html")


def hand_report(root: Path, out: Path) -> None:
    """The hand-checked two-model report with every option on: a reference YAML, a baseline, human
    acceptance (one name matching no row) and a training loss curve."""
    runs = two_models(root)
    human = {"schema": 1, "kind": "camels.human_pairwise", "studies": [
        {"study": "s1", "model_a": "alpha", "model_b": "gpt", "acceptance": {
            "a": {"count": 8, "n": 10}, "b": {"count": 9, "n": 10}}}]}
    (root / "results.json").write_text(json.dumps(human), encoding="utf-8")
    train = root / "train"
    train.mkdir()
    (train / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 / s}) + "\n" for s in (1, 2, 3)),
                                         encoding="utf-8")
    build_report([runs], out, reference=root / "ref.yaml", baseline="beta", human=root / "results.json",
                 training_runs={"alpha": train}, n_boot=2000, seed=0)


def study_report(root: Path, out: Path) -> None:
    """Three synthetic 7B models over every study column, against the shipped Tülu 7B numbers."""
    study = sample_study(root)
    build_report([study["runs"]], out, reference="tulu-7b", baseline="base-7b", training_runs=study["training"],
                 human=study["human"], n_boot=200, seed=1, title="camels report: three 7B models")


SCENARIOS = {"hand": hand_report, "study": study_report}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_format_matches_the_golden_bytes(tmp_path, name):
    SCENARIOS[name](tmp_path / "in", tmp_path / "out")
    for file in FILES:
        got = (tmp_path / "out" / file).read_bytes()
        want = (GOLDEN / name / file).read_bytes()
        assert got == want, f"{name}/{file} differs from the golden file"


def regenerate() -> None:  # pragma: no cover - a maintenance helper, not a test
    import tempfile

    for name, make in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as tmp:
            make(Path(tmp) / "in", Path(tmp) / "out")
            (GOLDEN / name).mkdir(parents=True, exist_ok=True)
            for file in FILES:
                shutil.copyfile(Path(tmp) / "out" / file, GOLDEN / name / file)
