"""Model building: dtype, pad token, LoRA targets, QLoRA checks, merging, and LoRA training that learns."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from camels.core.errors import ConfigError  # noqa: E402
from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train import model as model_mod  # noqa: E402
from camels.train.config import LoraConfig, TrainConfig  # noqa: E402
from camels.train.encode import encode_conversation  # noqa: E402
from camels.train.model import (  # noqa: E402
    apply_lora,
    check_qlora_available,
    load_model_and_tokenizer,
    lora_target_modules,
    merge_lora,
    peft_lora_config,
    qlora_quantization_config,
)

LLAMA_PROJECTIONS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from camels.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _cfg(model_dir, tmp_path, *overrides):
    return TrainConfig.load(None, [f"model={model_dir}", "train_files=[x.jsonl]", f"output_dir={tmp_path}",
                                   *overrides])


def _randomise_lora_b(model, seed=0):
    """LoRA's B starts at zero (the adapter is a no-op); give it values so merging has something to do."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_full_finetuning_load_dtype_and_checkpointing(model_dir, tmp_path):
    model, tok = load_model_and_tokenizer(_cfg(model_dir, tmp_path, "dtype=bf16", "gradient_checkpointing=true"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(p.requires_grad for p in model.parameters())
    assert model.is_gradient_checkpointing
    assert tok.pad_token == "<pad>" and model.config.pad_token_id == tok.pad_token_id == 3
    model, _ = load_model_and_tokenizer(_cfg(model_dir, tmp_path, "dtype=fp32"))
    assert {p.dtype for p in model.parameters()} == {torch.float32} and not model.is_gradient_checkpointing


def test_a_missing_local_model_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"model: .*missing does not exist \(a local folder was given"):
        load_model_and_tokenizer(_cfg(tmp_path / "missing", tmp_path))


def test_a_tokenizer_without_pad_gets_eos_and_still_trains_eos(model_dir, tmp_path):
    from transformers import AutoTokenizer

    no_pad = tmp_path / "nopad"
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.pad_token = None
    tok.save_pretrained(no_pad)
    model, tok = load_model_and_tokenizer(_cfg(model_dir, tmp_path, f"tokenizer={no_pad}", "dtype=fp32"))
    assert tok.pad_token == tok.eos_token == "</s>" and tok.pad_token_id == tok.eos_token_id == 2
    fmt = chat_format_for_tokenizer(tok, "tulu")
    enc = encode_conversation(tok, fmt, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                         {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ok"}], 64)
    eos_positions = [t for t, x in enumerate(enc.input_ids) if x == 2]
    assert len(eos_positions) == 2 and all(enc.labels[t] == 2 for t in eos_positions)


def test_lora_targets_every_projection_and_trains_only_adapters(model_dir, tmp_path):
    from camels.tiny import tiny_llama

    assert lora_target_modules(tiny_llama(seed=0)) == LLAMA_PROJECTIONS
    model, _ = load_model_and_tokenizer(_cfg(model_dir, tmp_path, "dtype=fp32", "lora.enabled=true", "lora.r=4",
                                             "lora.alpha=8", "gradient_checkpointing=true"))
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # 2 layers x (q 64->64, k 64->32, v 64->32, o 64->64, gate 64->128, up 64->128, down 128->64), r=4:
    per_layer = sum(4 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)])
    assert sum(trainable.values()) == 2 * per_layer
    cfg = model.peft_config["default"]
    assert sorted(cfg.target_modules) == LLAMA_PROJECTIONS and cfg.r == 4 and cfg.lora_alpha == 8
    assert cfg.lora_dropout == 0.05
    # gradient checkpointing with frozen embeddings still gives the adapters a gradient
    ids = torch.tensor([[1, 40, 41, 42, 43, 2]])
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if p.requires_grad and "lora_B" in n)  # (A gets none while B is still zero)


def test_explicit_lora_targets_are_checked(tmp_path):
    from camels.tiny import tiny_llama

    m = tiny_llama(seed=0)
    assert peft_lora_config(m, LoraConfig(target_modules=["q_proj", "v_proj"])).target_modules == {"q_proj", "v_proj"}
    with pytest.raises(ConfigError, match=r"lora.target_modules: \['qkv'\] not found"):
        peft_lora_config(m, LoraConfig(target_modules=["q_proj", "qkv"]))


def test_merge_gives_the_logits_of_adapter_plus_base(tmp_path, tiny_tok):
    from transformers import AutoModelForCausalLM

    from camels.tiny import save_tiny_model

    base_dir = save_tiny_model(tmp_path / "base", seed=5)
    peft_model = apply_lora(AutoModelForCausalLM.from_pretrained(base_dir),
                            LoraConfig(enabled=True, r=8, alpha=16, dropout=0.0))
    _randomise_lora_b(peft_model)
    peft_model.eval()
    ids = tiny_tok("<|user|>\nWhat is 12 plus 30?\n<|assistant|>\n42.</s>", add_special_tokens=False,
                   return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base_dir)(input_ids=ids).logits
    assert (expected - base_logits).abs().max() > 1e-3  # the adapter does change the output
    peft_model.save_pretrained(tmp_path / "adapter")

    # from a folder (the base is the one the adapter records), and in memory
    merged = merge_lora(tmp_path / "adapter").eval()
    assert type(merged).__name__ == "LlamaForCausalLM" and not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, rtol=0, atol=1e-5)
        in_memory = merge_lora(peft_model)
        torch.testing.assert_close(in_memory(input_ids=ids).logits, expected, rtol=0, atol=1e-5)

    # the CLI: camels train merge ADAPTER -o OUT writes a folder transformers loads
    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-m", "camels", "train", "merge", str(tmp_path / "adapter"),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"-> {out}" in proc.stdout
    with torch.no_grad():
        cli_logits = AutoModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
    torch.testing.assert_close(cli_logits, expected, rtol=0, atol=1e-5)
    assert json.loads((out / "chat_format.json").read_text())["kind"] == "tulu"


def test_merge_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not a LoRA adapter folder"):
        merge_lora(tmp_path)
    from camels.tiny import tiny_llama

    with pytest.raises(ConfigError, match="no LoRA adapter"):
        merge_lora(tiny_llama(seed=0))


def test_qlora_without_bitsandbytes_or_gpu_is_a_clear_config_error(monkeypatch, model_dir, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="qlora: needs bitsandbytes.*not installed"):
        check_qlora_available()
    cfg = _cfg(model_dir, tmp_path, "lora.enabled=true", "qlora=true")
    with pytest.raises(ConfigError, match="bitsandbytes"):
        load_model_and_tokenizer(cfg)  # refused before any weight is read

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "bitsandbytes" else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU and none is visible"):
        check_qlora_available()


def test_qlora_quantisation_config_is_the_recipe():
    q = qlora_quantization_config("bf16")
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant is True
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert qlora_quantization_config("auto").bnb_4bit_compute_dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="qlora: QLoRA trains adapters"):
        TrainConfig.load(None, ["model=m", "train_files=[x]", "output_dir=o", "qlora=true"])


@pytest.mark.gpu
def test_qlora_loads_in_4bit_on_a_gpu(model_dir, tmp_path):
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("QLoRA needs a CUDA GPU and bitsandbytes; this machine has "
                    f"cuda={torch.cuda.is_available()}, bitsandbytes={importlib.util.find_spec('bitsandbytes') is not None}")
    model, _ = load_model_and_tokenizer(_cfg(model_dir, tmp_path, "lora.enabled=true", "qlora=true", "lora.r=4"))
    assert getattr(model.get_base_model(), "is_loaded_in_4bit", False)
    assert {type(m).__name__ for m in model.modules()} >= {"Linear4bit"}


def test_lora_training_loss_falls(tmp_path, monkeypatch):
    """A learnable toy task (a repeated pattern) with adapters only: the loss must fall by more than half.

    The base is initialised with a larger scale than the default (0.2, not 0.02): with a frozen random LM
    head of the default scale the logits cannot get sharp enough for the loss to halve, whatever the adapters do.
    """
    from camels.tiny import save_tiny_model
    from camels.train.loop import train

    model_dir = save_tiny_model(tmp_path / "model", seed=0, initializer_range=0.2)

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    data = tmp_path / "pattern.jsonl"
    data.write_text("".join(json.dumps({"dataset": "toy", "id": str(i), "messages": [
        {"role": "user", "content": "Say the pattern."},
        {"role": "assistant", "content": "a b c a b c a b c"}]}) + "\n" for i in range(8)))
    cfg = _cfg(model_dir, tmp_path / "run", f"train_files=[{data}]", "dtype=fp32", "lora.enabled=true",
               "lora.r=8", "lora.alpha=16", "learning_rate=2e-2", "effective_batch_size=4", "num_epochs=6",
               "warmup_ratio=0.0", "logging_every=1")
    result = train(cfg)
    rows = [json.loads(x) for x in result.metrics_path.read_text().splitlines()]
    assert len(rows) == result.steps == 12
    assert result.final_loss < 0.5 * rows[0]["loss"], (rows[0]["loss"], result.final_loss)
    assert (result.last_checkpoint / "adapter" / "adapter_config.json").is_file()
    assert model_mod.is_peft_model(None) is False

    # `camels train merge` on the checkpoint's adapter == the merged model the run exported
    from safetensors.torch import load_file

    from camels.cli.train import _merge, _merge_parser

    out = tmp_path / "merged"
    assert _merge(_merge_parser().parse_args([str(result.last_checkpoint / "adapter"), "-o", str(out)])) == 0
    assert (out / "chat_format.json").read_text() == (result.last_checkpoint / "chat_format.json").read_text()
    merged, exported = load_file(str(out / "model.safetensors")), load_file(str(result.final_model / "model.safetensors"))
    assert merged.keys() == exported.keys()
    for k in merged:
        torch.testing.assert_close(merged[k], exported[k], rtol=0, atol=1e-6)
