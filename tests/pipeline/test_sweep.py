"""``camels sweep``: one tiny model per training source, the conversions shared, one report with every row;
with --launcher slurm, one job script per model and nothing run."""

from __future__ import annotations

import json
import re

from camels.cli import main
from camels.pipeline.sweep import load_sweep

from .pipeline_helpers import write_pipeline


def _sweep_file(tmp_path, inputs, extra: str = ""):
    write_pipeline(tmp_path, inputs, name="study", output="unused", steps=3)
    path = tmp_path / "sweep.yaml"
    path.write_text("pipeline: study-unused.yaml\nsources: [alpaca, dolly]\noutput: sweep\n" + extra)
    return path


def test_two_source_sweep_ends_in_one_report(tmp_path, inputs, capsys):
    path = _sweep_file(tmp_path, inputs)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    ids = re.findall(r"^  (\S+)\s+[0-9a-f]{12}  run ", plan, flags=re.M)
    assert ids == ["convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-alpaca", "decontaminate-alpaca",
                   "mix-dolly", "decontaminate-dolly", "train-alpaca", "train-dolly", "eval-base", "eval-alpaca",
                   "eval-dolly", "report"]

    assert main(["sweep", str(path), "--no-progress"]) == 0
    log = capsys.readouterr().out
    assert len(re.findall(r"\] convert-\w+: done", log)) == 3  # each source converted once, for both models
    out = tmp_path / "sweep"
    for name in ("alpaca", "dolly"):  # each model trained on its own source alone
        manifest = json.loads((out / "data" / name / "mix.manifest.json").read_text())
        assert set(manifest["per_source"]) == {name}
        assert (out / "train" / name / "final" / "config.json").is_file()
        assert json.loads((out / f"eval/{name}/instruct_em/metrics.json").read_text())["metrics"]["n"] == 12
    csv = (out / "report" / "report.csv").read_text().splitlines()
    assert csv[0].startswith("model,published,other:instruct_em,")
    assert [line.split(",")[0] for line in csv[1:]] == ["base", "alpaca", "dolly"]  # one report, every row
    scores = {line.split(",")[0]: line.split(",")[2] for line in csv[1:]}
    for name in ("alpaca", "dolly"):
        em = json.loads((out / f"eval/{name}/instruct_em/metrics.json").read_text())["metrics"]["exact_match"]
        assert float(scores[name]) == round(100 * em, 1)

    # adding a model reuses what the first two made
    assert main(["sweep", str(path), "--dry-run", "sources=[alpaca, dolly, sharegpt]"]) == 0
    plan = capsys.readouterr().out
    runs = re.findall(r"^  (\S+)\s+[0-9a-f]{12}  run ", plan, flags=re.M)
    assert runs == ["mix-sharegpt", "decontaminate-sharegpt", "train-sharegpt", "eval-sharegpt", "report"]


def test_slurm_launcher_writes_one_job_per_model(tmp_path, inputs, capsys):
    path = _sweep_file(tmp_path, inputs, "mixtures: {both: {sources: {alpaca: {count: 20}, dolly: {count: all}}}}\n"
                                         "slurm: {gpus_per_node: 4, partition: gpu, setup: [source .venv/bin/activate]}\n")
    assert main(["sweep", str(path), "--launcher", "slurm"]) == 0
    jobs = tmp_path / "sweep" / "jobs"
    assert sorted(p.name for p in jobs.iterdir()) == ["README.md", "alpaca.sbatch", "alpaca.yaml", "both.sbatch",
                                                     "both.yaml", "dolly.sbatch", "dolly.yaml"]
    script = (jobs / "both.sbatch").read_text()
    assert "#SBATCH --gpus-per-node=4\n" in script and "#SBATCH --partition=gpu\n" in script
    assert f"accelerate launch --num_processes 4 -m camels run {jobs / 'both.yaml'} --only train\n" in script
    assert script.index("source .venv/bin/activate") < script.index("--only data") < script.index("--only train")
    assert "camels report " in (jobs / "README.md").read_text()
    assert not (tmp_path / "sweep" / "data").exists()  # nothing ran
    # each job's pipeline file is the model's own pipeline: the same stages and keys as the sweep's
    from camels.pipeline import load_pipeline
    from camels.pipeline.plan import build

    sweep = load_sweep(path)
    whole = {s.id: s.key for s in build(sweep.members, root=sweep.root, report=sweep.report).stages}
    alone = build([load_pipeline(jobs / "both.yaml")]).stages
    assert [s.id for s in alone] == ["convert-alpaca", "convert-dolly", "convert-sharegpt", "mix-both",
                                     "decontaminate-both", "train-both", "eval-both"]
    assert all(whole[s.id] == s.key for s in alone)
    assert load_pipeline(jobs / "alpaca.yaml").eval.untrained == "base"  # the untrained row: first job only
    assert load_pipeline(jobs / "dolly.yaml").eval.untrained is None


def test_bad_sweep_config(tmp_path, inputs, capsys):
    path = _sweep_file(tmp_path, inputs, "per_sorce: true\n")
    assert main(["sweep", str(path)]) == 1
    assert capsys.readouterr().err == f"camels: error: {path}:4: per_sorce: unknown key (did you mean per_source?)\n"
    path = _sweep_file(tmp_path, inputs)
    assert main(["sweep", str(path), "sources=[alpaca, oasst1]"]) == 1
    assert "sources: 'oasst1' is not a source of the pipeline's data.sources" in capsys.readouterr().err


def test_shipped_study_sweep_plans_one_model_per_source(tmp_path, capsys):
    """configs/pipelines/tulu-v1-sources.yaml over (empty) raw files under the study's names: 9 models, each
    source converted once, the recipe and the mixtures resolved; nothing runs in a dry run."""
    import shutil
    from pathlib import Path

    import camels
    from camels.pipeline import load_pipeline

    shipped = Path(camels.__file__).parent / "configs" / "pipelines"
    for name in ("tulu-v1-7b.yaml", "tulu-v1-sources.yaml"):
        shutil.copy(shipped / name, tmp_path / name)
    study = load_pipeline(tmp_path / "tulu-v1-7b.yaml")
    for src in study.data.sources.values():
        for f in src.files:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            Path(f).touch()
    # the recipe's fields are the train section's defaults; the section's own come on top
    assert study.train["learning_rate"] == 2e-5 and study.train["effective_batch_size"] == 128
    assert study.train["model"] == "meta-llama/Llama-2-7b-hf" and "recipe" not in study.train
    sweep = load_sweep(tmp_path / "tulu-v1-sources.yaml")
    assert [m.name for m in sweep.members] == ["flan_v2", "oasst1", "dolly", "gpt4_alpaca", "code_alpaca",
                                               "sharegpt", "cot", "human", "tulu-v1"]
    assert main(["sweep", str(tmp_path / "tulu-v1-sources.yaml"), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    ids = re.findall(r"^  (\S+)\s+[0-9a-f]{12}  run ", plan, flags=re.M)
    assert len(ids) == 8 + 9 + 9 + 10 + 1  # conversions, mixtures, trainings, evaluations (+ untrained), report
    assert sum(i.startswith("convert-") for i in ids) == 8 and ids[-1] == "report"
    assert not (tmp_path / "runs").exists()
    assert main(["sweep", str(tmp_path / "tulu-v1-sources.yaml"), "--launcher", "slurm"]) == 0
    jobs = tmp_path / "runs" / "sources" / "jobs"
    assert len(list(jobs.glob("*.sbatch"))) == 9
    assert "--config_file configs/accelerate/deepspeed_zero3.yaml -m camels run" in (jobs / "human.sbatch").read_text()


def test_sweep_overrides_reach_a_pipeline_file(tmp_path, inputs, capsys):
    # `pipeline.KEY=VALUE` on the command line changes every member's pipeline, also when the sweep names a
    # pipeline file; other keys stay the sweep's own, and a bad pipeline key names the pipeline's field
    path = _sweep_file(tmp_path, inputs)
    sweep = load_sweep(path, ["pipeline.train.learning_rate=0.0125", "sources=[dolly]"])
    assert [m.name for m in sweep.members] == ["dolly"]
    assert [m.train["learning_rate"] for m in sweep.members] == [0.0125]
    assert sweep.base.train["learning_rate"] == 0.0125
    inline = tmp_path / "inline.yaml"
    inline.write_text("pipeline:\n" + "".join(f"  {line}\n" for line in
                                              (tmp_path / "study-unused.yaml").read_text().splitlines())
                      + "sources: [alpaca]\noutput: sweep\n")
    assert [m.train["learning_rate"] for m in load_sweep(inline, {"pipeline.train.learning_rate": 0.5}).members] == [0.5]
    assert main(["sweep", str(path), "--dry-run", "pipeline.train.learning_rat=1"]) == 1
    assert "learning_rat" in capsys.readouterr().err


def test_sweep_errors_with_overrides_name_the_line(tmp_path, inputs, capsys):
    # the sweep file is read once: with overrides given, an error in an inline pipeline still names the
    # sweep file's line, a bad override is named as one, and a sweep key's error names its line
    pipeline = write_pipeline(tmp_path, inputs, name="study", output="unused").read_text()
    inline = tmp_path / "inline.yaml"
    inline.write_text("pipeline:\n" + "".join(f"  {line}\n" for line in pipeline.splitlines())
                      .replace("max_steps: 6", "max_steps: six") + "sources: [alpaca]\noutput: sweep\n")
    line = next(i for i, t in enumerate(inline.read_text().splitlines(), 1) if "max_steps: six" in t)
    for overrides in ([], ["pipeline.train.learning_rate=0.5", "output=elsewhere"]):
        assert main(["sweep", str(inline), "--dry-run", *overrides]) == 1
        assert capsys.readouterr().err == (f"camels: error: {inline} (pipeline):{line}: train.max_steps: expected "
                                           "an integer, got 'six'\n")
    assert main(["sweep", str(inline), "--dry-run", "pipeline.train.max_steps=7", "pipeline.data.seed=x"]) == 1
    assert capsys.readouterr().err == "camels: error: override: data.seed: expected an integer, got 'x'\n"
    path = _sweep_file(tmp_path, inputs, "per_source: maybe\n")
    assert main(["sweep", str(path), "--dry-run", "pipeline.train.learning_rate=0.5", "sources=[dolly]"]) == 1
    assert capsys.readouterr().err.startswith(f"camels: error: {path}:4: per_source: expected true or false")
