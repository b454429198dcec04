"""The fast loss path (logits and the last layer's MLP at trained positions only) equals the plain one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train.encode import IGNORE_INDEX, encode_conversation  # noqa: E402
from camels.train.loop import _last_decoder_layer, loss_sum  # noqa: E402
from camels.train.pack import packed_batch, padded_batch, set_model_attention  # noqa: E402


@pytest.fixture(scope="module")
def examples(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    convs = [[{"role": "user", "content": f"item {i} " + "pq " * (i % 5)},
              {"role": "assistant", "content": "r " * (1 + 3 * (i % 4)) + f"end {i}"}] for i in range(6)]
    return [encode_conversation(tiny_tok, fmt, c, 256) for c in convs]


def _plain_loss(model, batch):
    """The reference: full logits at every position, then the trained targets."""
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
def test_fast_loss_equals_full_logits_loss(tiny_tok, examples, lora, attention):
    model = _model(tiny_tok, lora)
    if attention == "padded":
        batch = padded_batch(examples, tiny_tok.pad_token_id)
    else:
        set_model_attention(model, attention)
        batch = packed_batch(examples, attention)
    layer = _last_decoder_layer(model)
    base = model.get_base_model() if lora else model
    assert layer is base.model.layers[-1]
    mlp = layer.mlp
    fast, g_fast = _loss_and_grads(model, batch, loss_sum)
    assert layer.mlp is mlp  # the MLP is put back after the forward
    plain, g_plain = _loss_and_grads(model, batch, _plain_loss)
    assert abs(fast.item() - plain.item()) < 1e-6
    assert set(g_fast) == set(g_plain) and len(g_fast) > 0
    if lora:
        assert all("lora_" in n for n in g_fast)
    for n in g_plain:
        assert torch.allclose(g_fast[n], g_plain[n], rtol=0, atol=1e-6), (n, (g_fast[n] - g_plain[n]).abs().max())
    # the last MLP's weights get a gradient from the trained rows (it did take part)
    name = next(n for n in g_fast if ".layers.1.mlp." in n)
    assert g_fast[name].abs().sum() > 0


def test_unrecognised_models_use_the_plain_path(tiny_tok):
    model = _model(tiny_tok, False)
    assert _last_decoder_layer(model.model) is None  # a base model (no LM head) is not touched
    model.config.output_hidden_states = True
    assert _last_decoder_layer(model) is None  # every layer's output is wanted: nothing may be skipped


def test_gradient_checkpointing_uses_the_plain_path(tiny_tok, examples):
    # recomputation in the backward pass would run the full MLP again: the fast path must stay off
    model = _model(tiny_tok, False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    assert _last_decoder_layer(model) is None
    batch = packed_batch(examples, "sdpa_mask")
    fast, g_fast = _loss_and_grads(model, batch, loss_sum)
    plain, g_plain = _loss_and_grads(model, batch, _plain_loss)
    assert abs(fast.item() - plain.item()) < 1e-6
    for n in g_plain:
        assert torch.allclose(g_fast[n], g_plain[n], rtol=0, atol=1e-6), (n, (g_fast[n] - g_plain[n]).abs().max())


def test_varlen_attention_with_query_rows_matches_at_those_rows():
    from types import SimpleNamespace

    from camels.train.pack import varlen_attention

    g = torch.Generator().manual_seed(0)
    lens = [5, 7, 4]
    q = torch.randn(1, 4, 16, 8, generator=g)
    k = torch.randn(1, 2, 16, 8, generator=g)
    v = torch.randn(1, 2, 16, 8, generator=g)
    keep = torch.zeros(16, dtype=torch.bool)
    keep[[2, 4, 5, 6, 7, 8, 9, 10, 11]] = True  # some rows of the 1st, all of the 2nd, none of the 3rd
    module = SimpleNamespace(training=False, layer_idx=3)
    full, _ = varlen_attention(module, q, k, v, None, camels_seq_lens=lens)
    part, _ = varlen_attention(module, q, k, v, None, camels_seq_lens=lens, camels_query_rows=(3, keep))
    other, _ = varlen_attention(module, q, k, v, None, camels_seq_lens=lens, camels_query_rows=(1, keep))
    assert part.shape == full.shape == (1, 16, 4, 8)
    assert torch.allclose(part[0, keep], full[0, keep], rtol=0, atol=1e-6)
    assert torch.count_nonzero(part[0, ~keep]) == 0
    assert torch.equal(other, full)  # another layer's attention is untouched


def test_fast_loss_under_bf16_autocast(tiny_tok, examples):
    """Mixed precision (e.g. ``accelerate launch --mixed_precision bf16``) runs the MLP in bf16 while the
    residual stream stays float32: the last layer's rows-only MLP must scatter its bf16 output as is."""
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
