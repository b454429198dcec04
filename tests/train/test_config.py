"""TrainConfig: typed loading, overrides, errors that name the key, the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from camels.core.errors import ConfigError
from camels.train.config import LoraConfig, TrainConfig, field_help, markdown_reference

ROOT = Path(__file__).resolve().parents[2]
REQ = ["model=m", "train_files=[a.jsonl]", "output_dir=out"]


def test_defaults_are_the_tulu_recipe():
    c = TrainConfig.load(None, REQ)
    assert (c.learning_rate, c.lr_scheduler, c.warmup_ratio, c.weight_decay) == (2e-5, "linear", 0.03, 0.0)
    assert (c.num_epochs, c.effective_batch_size, c.max_length, c.dtype) == (2, 128, 2048, "bf16")
    assert c.chat_format == "tulu" and c.packing and not c.resume
    assert c.lora == LoraConfig(enabled=False, r=64, alpha=16, dropout=0.05, target_modules="all-linear")


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: base\ntrain_files: [x.jsonl]\noutput_dir: o\nlearning_rate: 2e-5\nlora:\n  r: 8\n")
    c = TrainConfig.load(p, ["learning_rate=1e-4", "lora.enabled=true", "lora.alpha=32", "max_steps=7",
                             "train_files=[a.jsonl, b.jsonl]", "lora.target_modules=[q_proj, v_proj]"])
    assert c.learning_rate == 1e-4 and isinstance(c.learning_rate, float)
    assert (c.lora.enabled, c.lora.r, c.lora.alpha) == (True, 8, 32)
    assert c.lora.target_modules == ["q_proj", "v_proj"]
    assert c.max_steps == 7 and c.train_files == ["a.jsonl", "b.jsonl"]


@pytest.mark.parametrize("override,message", [
    ("max_length=abc", "max_length: expected an integer, got 'abc'"),
    ("packing=maybe", "packing: expected true or false"),
    ("lora.rr=3", "lora.rr: unknown key (did you mean lora.r?)"),
    ("learning_rat=1", "learning_rat: unknown key (did you mean learning_rate?)"),
    ("dtype=fp8", "dtype: 'fp8' is not one of bf16, fp16, fp32, auto"),
    ("warmup_ratio=1.5", "warmup_ratio: must be in [0, 1)"),
    ("max_tokens_per_batch=100", "max_tokens_per_batch: must be at least max_length (2048)"),
    ("qlora=true", "qlora: QLoRA trains adapters"),
    ("encode_processes=0", "encode_processes: must be auto or at least 1, got 0"),
    ("encode_processes=all", "encode_processes: expected int | 'auto', got 'all'"),
    ("nonsense", "expected key=value"),
])
def test_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.load(None, [*REQ, override])
    assert message in str(e.value)


def test_missing_required_key_is_named():
    with pytest.raises(ConfigError, match="output_dir: required key is missing"):
        TrainConfig.load(None, ["model=m", "train_files=[a]"])


def test_gradient_accumulation_is_derived_or_checked():
    c = TrainConfig.load(None, [*REQ, "packing=false", "per_device_batch_size=8"])
    assert c.micro_batches_per_step(num_processes=4) == 4  # 128 / (8 x 4)
    bad = TrainConfig.load(None, [*REQ, "packing=false", "per_device_batch_size=8", "gradient_accumulation=3"])
    with pytest.raises(ConfigError, match="gradient_accumulation: 3 x per_device_batch_size 8"):
        bad.micro_batches_per_step(num_processes=4)


def test_resolved_config_round_trips(tmp_path):
    c = TrainConfig.load(None, [*REQ, "lora.enabled=true", "seed=7"])
    path = c.save(tmp_path)
    assert path.name == "config.resolved.yaml"
    assert TrainConfig.load(path) == c


@pytest.mark.parametrize("name", ["tulu-v1", "tulu-v1-lora", "tulu-v1-qlora", "tiny-cpu"])
def test_shipped_recipes_load(name):
    c = TrainConfig.load(ROOT / "configs" / "train" / f"{name}.yaml")
    if name.startswith("tulu-v1"):
        assert (c.warmup_ratio, c.num_epochs, c.effective_batch_size, c.max_length) == (0.03, 2, 128, 2048)
        assert c.dtype == "bf16" and c.lr_scheduler == "linear" and c.weight_decay == 0.0
    assert c.learning_rate == {"tulu-v1": 2e-5, "tulu-v1-lora": 1e-4, "tulu-v1-qlora": 1e-4,
                               "tiny-cpu": 3e-3}[name]
    assert c.lora.enabled == ("lora" in name) and c.qlora == (name == "tulu-v1-qlora")


def test_every_field_has_help_and_is_in_the_docs():
    rows = field_help()
    keys = [r[0] for r in rows]
    assert "lora.r" in keys and "learning_rate" in keys
    assert all(r[3] for r in rows)
    table = markdown_reference()
    assert all(f"`{k}`" in table for k in keys)
    doc = (ROOT / "docs" / "training.md")
    if doc.exists():
        text = doc.read_text()
        assert all(f"`{k}`" in text for k in keys), "docs/training.md is stale: regenerate the table"


def test_shipped_recipes_are_found_by_name(tmp_path, monkeypatch):
    from camels.cli.train import recipe_path

    monkeypatch.chdir(tmp_path)
    assert recipe_path("tulu-v1").endswith("camels/configs/train/tulu-v1.yaml")
    assert TrainConfig.load(recipe_path("tulu-v1-lora")).lora.enabled
    (tmp_path / "tulu-v1").write_text("model: x\n")  # a file of that name wins over the shipped recipe
    assert recipe_path("tulu-v1") == "tulu-v1"
    assert recipe_path("mine.yaml") == "mine.yaml"
