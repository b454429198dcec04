"""Export: a Hugging Face folder that transformers loads as is, with the chat contract as its template."""

from __future__ import annotations

import json
import os
import time

import pytest

torch = pytest.importorskip("torch")

from camels.core.stale import host, process_start  # noqa: E402
from camels.core.template import (  # noqa: E402
    HFTemplateFormat,
    chat_format_for_tokenizer,
    chat_format_from_dict,
)
from camels.train import export as export_mod  # noqa: E402
from camels.train.export import hf_chat_template, read_export_info, write_model_folder  # noqa: E402

CONVERSATION = [
    {"role": "system", "content": "  You are terse. "},
    {"role": "user", "content": "What is 2 + 2?\n"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 'three' times \"three\"?"},
    {"role": "assistant", "content": " Nine.\n\nDone. "},
]

# A tokenizer-style template (prefix-stable) to check that hf_template contracts survive export too.
CHATML = ("\n{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _tok_with_template(tok, fmt):
    from camels.tiny import tiny_tokenizer

    t = tiny_tokenizer()
    t.chat_template = hf_chat_template(fmt)
    return t


@pytest.mark.parametrize("kind", ["tulu", "plain", "hf_template"])
def test_transformers_renders_the_camels_text(tiny_tok, kind):
    if kind == "hf_template":
        fmt = HFTemplateFormat(CHATML, bos_token=tiny_tok.bos_token, eos_token=tiny_tok.eos_token)
    else:
        fmt = chat_format_for_tokenizer(tiny_tok, kind)
    tok = _tok_with_template(tiny_tok, fmt)
    for n in (2, 3, 5):  # ends with an assistant turn, a user turn, an assistant turn
        msgs = CONVERSATION[:n]
        assert tok.apply_chat_template(msgs, tokenize=False) == fmt.render(msgs).text
    # a generation prompt after one user turn is the contract's prompt
    single = [{"role": "user", "content": " Hi there "}]
    assert tok.apply_chat_template(single, tokenize=False, add_generation_prompt=True) == fmt.prompt(single)


def test_tulu_template_text_is_exact(tiny_tok):
    tok = _tok_with_template(tiny_tok, chat_format_for_tokenizer(tiny_tok, "tulu"))
    text = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert text == ("<s><|system|>\nYou are terse.\n<|user|>\nWhat is 2 + 2?\n<|assistant|>\n4.</s>\n"
                    "<|user|>\nAnd 'three' times \"three\"?\n<|assistant|>\nNine.\n\nDone.</s>")
    prompt = tok.apply_chat_template(CONVERSATION[:4], tokenize=False, add_generation_prompt=True)
    assert prompt == text.split("Nine.")[0]  # the training text up to where the answer starts
    # tokenized the way transformers does it: exactly the tokens camels trains on (one BOS)
    ids = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and ids.count(tok.bos_token_id) == 1
    with pytest.raises(Exception, match="unknown role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_exported_folder_loads_as_is_and_gives_the_same_logits(tiny_tok, tmp_path, dead_pid):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from camels.tiny import tiny_llama
    from camels.train.config import LoraConfig
    from camels.train.model import apply_lora

    torch.manual_seed(0)
    model = apply_lora(tiny_llama(tiny_tok, seed=3).float(), LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0))
    with torch.no_grad():  # a trained-looking adapter (B is zero at init, which would hide a merge bug)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.eval()
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    ids = tiny_tok(fmt.render(CONVERSATION).text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    target = tmp_path / "final"
    target.mkdir()
    (target / "stale.txt").write_text("from an older export")
    (tmp_path / ".tmp-final-99999").mkdir()  # an export killed midway
    (tmp_path / ".tmp-final-99999" / "owner.json").write_text(json.dumps({"host": host(), "pid": dead_pid}))
    write_model_folder(model, tiny_tok, target, chat_format=fmt, config_dict={"model": "tiny", "lr": 1e-3},
                       data_sha256="a" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # replaced atomically, no tmp left
    assert not (target / "stale.txt").exists()
    names = {p.name for p in target.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_format.json", "camels_train.json"} <= names
    assert not any("adapter" in n for n in names)  # merged: no peft needed to load
    config = json.loads((target / "config.json").read_text())
    assert config["use_cache"] is True and "varlen" not in json.dumps(config)

    loaded = AutoModelForCausalLM.from_pretrained(target).eval()
    assert type(loaded).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        got = loaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(target)
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == fmt.render(CONVERSATION).text
    assert chat_format_from_dict(json.loads((target / "chat_format.json").read_text())) == fmt
    info = read_export_info(target)
    assert info["config"] == {"model": "tiny", "lr": 1e-3} and info["data_sha256"] == "a" * 64
    assert info["lora_merged"] is True and info["chat_format_fingerprint"] == fmt.fingerprint()
    assert tiny_tok.chat_template is None  # the caller's tokenizer is left as it was


def test_an_export_removes_only_the_leftovers_of_exports_whose_process_is_gone(tiny_tok, tmp_path, dead_pid,
                                                                               live_pid, monkeypatch):
    from camels.tiny import tiny_llama

    def folder(name, owner, hours_old=0.0):
        f = tmp_path / name
        f.mkdir()
        (f / "model.safetensors").write_bytes(b"half written")
        if owner is not None:
            (f / "owner.json").write_text(json.dumps(owner))
        when = time.time() - hours_old * 3600
        for p in (*f.iterdir(), f):
            os.utime(p, (when, when))
        return f

    mine = {"host": host()}
    folders = {
        "dead": folder(".tmp-final-h-1", {**mine, "pid": dead_pid}),
        "dead old": folder(".old-final-h-2", {**mine, "pid": dead_pid, "start": None}),
        "live": folder(".tmp-final-h-3", {**mine, "pid": live_pid, "start": process_start(live_pid)}),
        "live old": folder(".old-final-h-4", {**mine, "pid": live_pid}),
        "pid reused": folder(".tmp-final-h-5", {**mine, "pid": live_pid, "start": "1"}),
        "other host": folder(".tmp-final-h-6", {"host": "elsewhere", "pid": dead_pid}),
        "other host, a day old": folder(".tmp-final-h-7", {"host": "elsewhere", "pid": dead_pid}, hours_old=25),
        "no owner": folder(".tmp-final-h-8", None),
        "no owner, a day old": folder(".tmp-final-h-9", None, hours_old=25),
        "another target": folder(".tmp-finale-h-10", {**mine, "pid": dead_pid}),
    }
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    target = tmp_path / "final"
    write_model_folder(tiny_llama(tiny_tok, seed=0), tiny_tok, target, chat_format=fmt)
    left = {name for name, f in folders.items() if f.exists()}
    assert left == {"live", "live old", "other host", "no owner", "another target"}
    assert (folders["live"] / "model.safetensors").read_bytes() == b"half written"
    assert "owner.json" not in {p.name for p in target.iterdir()}
    first = (target / "model.safetensors").read_bytes()

    # A failed rename into place puts the previous export back and leaves no folder of its own.
    real_rename = os.rename

    def fails_into_place(src, dst):
        if str(src).startswith(str(tmp_path / ".tmp-final-")):
            raise OSError("no space left")
        real_rename(src, dst)

    monkeypatch.setattr(export_mod.os, "rename", fails_into_place)
    with pytest.raises(OSError, match="no space left"):
        write_model_folder(tiny_llama(tiny_tok, seed=1), tiny_tok, target, chat_format=fmt)
    monkeypatch.undo()
    assert (target / "model.safetensors").read_bytes() == first
    assert {p.name for p in tmp_path.iterdir()} == {"final", *(folders[n].name for n in left)}
    # and a new export replaces it, through a folder of its own that it removes
    write_model_folder(tiny_llama(tiny_tok, seed=1), tiny_tok, target, chat_format=fmt)
    assert (target / "model.safetensors").read_bytes() != first
    assert {p.name for p in tmp_path.iterdir()} == {"final", *(folders[n].name for n in left)}


def test_train_exports_a_loadable_model(tmp_path, monkeypatch):
    """End to end: the folder `camels train` writes loads with plain transformers and matches the checkpoint."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from camels.tiny import save_tiny_model
    from camels.train.config import TrainConfig
    from camels.train.loop import train

    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    model_dir = save_tiny_model(tmp_path / "model")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"dataset": "toy", "id": str(i), "messages": [
        {"role": "user", "content": f"count {i}"}, {"role": "assistant", "content": f"{i} {i + 1}"}]}) + "\n"
        for i in range(6)))
    cfg = TrainConfig.load(None, [f"model={model_dir}", f"train_files=[{data}]", f"output_dir={tmp_path / 'run'}",
                                  "dtype=fp32", "effective_batch_size=3", "num_epochs=1", "learning_rate=1e-3"])
    result = train(cfg)
    final = result.final_model
    info = read_export_info(final)
    assert info["data_sha256"] == result.data["data_sha256"] and info["config"] == cfg.to_dict()
    saved = load_file(str(result.last_checkpoint / "model.safetensors"))
    loaded = AutoModelForCausalLM.from_pretrained(final)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, saved[k]), k
