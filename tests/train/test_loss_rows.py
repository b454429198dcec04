"""The loss path (logits and cross entropy at trained positions only, ``logits_to_keep``) equals the plain
one: full logits at every position, then the trained targets."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train.encode import IGNORE_INDEX, encode_conversation  # noqa: E402
from camels.train.loop import loss_sum  # noqa: E402
from camels.train.pack import packed_batch, padded_batch, set_model_attention  # noqa: E402


@pytest.fixture(scope="module")
def examples(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    convs = [[{"role": "user", "content": f"item {i} " + "pq " * (i % 5)},
              {"role": "assistant", "content": "r " * (1 + 3 * (i % 4)) + f"end {i}"}] for i in range(6)]
    return [encode_conversation(tiny_tok, fmt, c, 256) for c in convs]


def _plain_loss(model, batch):
    logits = model(**batch.model_inputs()).logits
    keep = batch.targets != IGNORE_INDEX
    return torch.nn.functional.cross_entropy(logits[keep].float(), batch.targets[keep], reduction="sum")


def _loss_and_grads(model, batch, fn):
    """The mean token loss (what a step trains on) and its gradients."""
    model.zero_grad(set_to_none=True)
    loss = fn(model, batch) / batch.n_trained
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _model(tiny_tok, lora):
    from camels.tiny import tiny_llama

    model = tiny_llama(tiny_tok, seed=3)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                                                 target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"]))
    model.config.use_cache = False
    return model


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("attention", ["varlen", "sdpa_mask", "padded"])
def test_loss_at_trained_positions_equals_full_logits_loss(tiny_tok, examples, lora, attention):
    model = _model(tiny_tok, lora)
    if attention == "padded":
        batch = padded_batch(examples, tiny_tok.pad_token_id)
    else:
        set_model_attention(model, attention)
        batch = packed_batch(examples, attention)
    fast, g_fast = _loss_and_grads(model, batch, loss_sum)
    plain, g_plain = _loss_and_grads(model, batch, _plain_loss)
    assert abs(fast.item() - plain.item()) < 1e-6
    assert set(g_fast) == set(g_plain) and len(g_fast) > 0
    if lora:
        assert all("lora_" in n for n in g_fast)
    for n in g_plain:
        assert torch.allclose(g_fast[n], g_plain[n], rtol=0, atol=1e-6), (n, (g_fast[n] - g_plain[n]).abs().max())


def test_loss_under_bf16_autocast(tiny_tok, examples):
    """Mixed precision (e.g. ``accelerate launch --mixed_precision bf16``): the loss is still float32."""
    model = _model(tiny_tok, lora=False)
    set_model_attention(model, "varlen")
    batch = packed_batch(examples, "varlen")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = loss_sum(model, batch)
        plain = _plain_loss(model, batch)
    assert fast.dtype == torch.float32
    assert fast.item() == pytest.approx(plain.item(), rel=2e-2)
    fast.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
