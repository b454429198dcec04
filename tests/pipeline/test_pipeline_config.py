"""Bad pipeline configs stop before any stage runs, with one line naming the file, the line and the key."""

from __future__ import annotations

import pytest

from camels.cli import main
from camels.core.errors import ConfigError
from camels.pipeline import load_pipeline

from .pipeline_helpers import write_pipeline


def _line(path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _error(path, *overrides) -> str:
    with pytest.raises(ConfigError) as e:
        load_pipeline(path, list(overrides))
    return str(e.value)


def test_good_config_resolves_paths(tmp_path, inputs):
    cfg = load_pipeline(write_pipeline(tmp_path, inputs))
    assert cfg.name == "tiny" and cfg.output == str(tmp_path.resolve() / "out")
    assert cfg.data.sources["dolly"].files == [str(inputs / "raw" / "databricks-dolly.jsonl")]
    assert cfg.train["max_steps"] == 6 and cfg.eval.untrained == "base"
    assert load_pipeline(write_pipeline(tmp_path, inputs), ["train.max_steps=9"]).train["max_steps"] == 9


def test_unknown_keys_and_bad_types_name_file_line_and_key(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs, extra="colour: blue\n")
    assert _error(path) == f"{path}:{_line(path, 'colour')}: colour: unknown key (known: data, description, eval, name, output, report, train)"
    path = write_pipeline(tmp_path, inputs)
    text = path.read_text()
    path.write_text(text.replace("  learning_rate: 3.0e-3", "  learnin_rate: 3.0e-3"))
    assert _error(path) == f"{path}:{_line(path, 'learnin_rate')}: train.learnin_rate: unknown key (did you mean learning_rate?)"
    path.write_text(text.replace("  max_steps: 6", "  max_steps: six"))
    assert _error(path) == f"{path}:{_line(path, 'max_steps')}: train.max_steps: expected an integer, got 'six'"
    path.write_text(text.replace("  seed: 0\n  mixture", "  seed: zero\n  mixture"))
    assert _error(path) == f"{path}:{_line(path, 'seed: zero')}: data.seed: expected an integer, got 'zero'"
    path.write_text(text.replace("max_tokens: 8}", "max_tokens: 8, colour: red}"))
    assert _error(path) == f"{path}: eval: task instruct_em: colour: unknown key (known: group_field, max_tokens, " \
        "normalize, plain_stop)"  # task options: checked by the task itself, when the config is read
    assert _error(write_pipeline(tmp_path, inputs), "report.title=[1]") == \
        "override: report.title: expected a string, got list [1]"
    assert _error(write_pipeline(tmp_path, inputs), "train.output_dir=x").startswith(
        f"{path}: train.output_dir: set by the pipeline")


def test_missing_inputs_are_named_with_their_key(tmp_path, inputs):
    from camels.pipeline.plan import build

    path = write_pipeline(tmp_path, inputs)
    path.write_text(path.read_text().replace("databricks-dolly.jsonl", "nothing-here.jsonl"))
    with pytest.raises(ConfigError, match=r"^data\.sources\.dolly\.files: .*nothing-here\.jsonl: no such file$"):
        build([load_pipeline(path)])
    path = write_pipeline(tmp_path, inputs, extra="")
    path.write_text(path.read_text().replace("mixture: {seed: 0}", "mixture: {sources: {oasst1: {count: 3}}}"))
    with pytest.raises(ConfigError, match=r"^data.mixture.sources.oasst1: not a source of data.sources"):
        build([load_pipeline(path)])


def test_cli_bad_config_exits_1_with_one_line(tmp_path, inputs, capsys):
    path = write_pipeline(tmp_path, inputs)
    assert main(["run", str(path), "--dry-run", "train.learnin_rate=1"]) == 1
    err = capsys.readouterr().err
    assert err == "camels: error: override: train.learnin_rate: unknown key (did you mean learning_rate?)\n"
    assert not (tmp_path / "out").exists()


def test_docs_reference_tables_are_current():
    from pathlib import Path

    from camels.pipeline.config import markdown_reference
    from camels.pipeline.sweep import markdown_reference as sweep_reference

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pipeline.md").read_text()
    assert markdown_reference() in doc and sweep_reference() in doc


def test_version_names_the_distribution(capsys):
    import camels

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"camels-instruct {camels.installed_version()}\n"
    assert camels.DISTRIBUTION == "camels-instruct"


def test_recipe_gives_the_train_defaults(tmp_path, inputs):
    path = write_pipeline(tmp_path, inputs)
    text = path.read_text().replace("train:\n", "train:\n  recipe: tiny-cpu\n")
    path.write_text(text)
    cfg = load_pipeline(path)
    assert "recipe" not in cfg.train
    assert cfg.train["max_tokens_per_batch"] == 2048 and cfg.train["num_epochs"] == 20  # from the recipe
    assert cfg.train["max_length"] == 128 and cfg.train["save_every_steps"] == 0  # the section's own win
    path.write_text(text.replace("recipe: tiny-cpu", "recipe: tulu-v9"))
    assert _error(path).startswith(f"{path}: train.recipe: 'tulu-v9' is neither a file nor a shipped recipe "
                                   "(shipped: tiny-cpu, tulu-v1, ")
