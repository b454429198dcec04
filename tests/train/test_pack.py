"""Packing changes speed, never the math: same loss and gradients as unpacked, no leak between rows."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

from camels.core.template import chat_format_for_tokenizer  # noqa: E402
from camels.train.encode import IGNORE_INDEX, Encoded, encode_conversation  # noqa: E402
from camels.train.loop import loss_sum  # noqa: E402
from camels.train.pack import (  # noqa: E402
    block_causal_mask,
    first_fit_decreasing,
    packed_batch,
    padded_batch,
    set_model_attention,
    shift_labels,
    split_across_processes,
)


def _convs(n=4):
    return [
        [{"role": "user", "content": f"question {i} " + "abc " * (2 * i + 1)},
         {"role": "assistant", "content": f"answer {i} " + "xyz " * (i + 2)},
         {"role": "user", "content": "more"},
         {"role": "assistant", "content": "done"}]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def encoded(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    return [encode_conversation(tiny_tok, fmt, c, 512) for c in _convs()]


@pytest.fixture()
def model(tiny_tok):
    from camels.tiny import tiny_llama

    m = tiny_llama(tiny_tok, seed=0).float()
    m.train()
    return m


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = loss_sum(model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_shift_labels_is_per_conversation():
    assert shift_labels([-100, -100, 7, 8]) == [-100, 7, 8, -100]


def test_first_fit_decreasing_is_deterministic_and_respects_capacity():
    lengths = [5, 9, 3, 7, 2, 9, 4]
    bins = first_fit_decreasing(lengths, 10)
    assert bins == [[1], [5], [3, 2], [0, 6], [4]]
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert first_fit_decreasing([12, 1], 10) == [[0], [1]]  # too long for a bin: alone


def test_split_across_processes_balances_tokens():
    shares = split_across_processes([10, 9, 8, 1, 1, 1], 2)
    assert shares == [[0, 3, 4, 5], [1, 2]]  # loads 13 and 17: longest first to the lightest
    assert sorted(i for s in shares for i in s) == list(range(6))


def test_block_causal_mask_values():
    m = block_causal_mask([2, 1], dtype=torch.float32)[0, 0]
    allowed = (m == 0).int().tolist()
    assert allowed == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m[0, 1].item() == torch.finfo(torch.float32).min


def test_packed_batch_layout(encoded):
    b = packed_batch(encoded[:2])
    n0, n1 = len(encoded[0]), len(encoded[1])
    assert b.input_ids.shape == (1, n0 + n1) and b.seq_lens == [n0, n1]
    assert b.position_ids[0].tolist() == list(range(n0)) + list(range(n1))
    assert b.targets[0, n0 - 1].item() == IGNORE_INDEX  # no target across the boundary
    assert b.n_trained == sum(1 for x in b.targets[0].tolist() if x != IGNORE_INDEX)
    assert b.n_trained == encoded[0].n_trained + encoded[1].n_trained  # BOS is never a target


@pytest.mark.parametrize("attention", ["varlen", "sdpa_mask"])
def test_packed_equals_unpacked_loss_and_gradients(model, encoded, tiny_tok, attention):
    set_model_attention(model, "sdpa")
    ref_loss, ref_grads = _loss_and_grads(model, padded_batch(encoded, tiny_tok.pad_token_id))
    # also against one conversation at a time (no padding at all)
    singles = [_loss_and_grads(model, padded_batch([e], tiny_tok.pad_token_id)) for e in encoded]
    single_loss = sum(s[0] for s in singles)
    set_model_attention(model, attention)
    loss, grads = _loss_and_grads(model, packed_batch(encoded, attention))
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    assert loss.item() == pytest.approx(single_loss.item(), rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-5, msg=name)
        torch.testing.assert_close(g, sum(s[1][name] for s in singles), rtol=1e-4, atol=1e-5, msg=name)


def _logits_of_b(model, a, b, attention):
    set_model_attention(model, attention)
    batch = packed_batch([a, b], attention)
    with torch.no_grad():
        out = model(**batch.model_inputs())
    return out.logits[0, len(a):]


@pytest.mark.parametrize("attention", ["varlen", "sdpa_mask"])
def test_conversations_in_a_row_are_isolated(model, encoded, tiny_tok, attention):
    a, b = encoded[0], encoded[1]
    # a different conversation A of the same length: every token changed
    other = tiny_tok.convert_tokens_to_ids(tiny_tok.tokenize("q"))[0]
    a2 = Encoded(tuple(other for _ in a.input_ids), a.labels)
    base = _logits_of_b(model, a, b, attention)
    changed = _logits_of_b(model, a2, b, attention)
    torch.testing.assert_close(base, changed, rtol=0, atol=1e-6)
    # and B alone gives the same logits as B packed behind A
    set_model_attention(model, "sdpa")
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([b.input_ids]), use_cache=False).logits[0]
    torch.testing.assert_close(base, alone, rtol=1e-5, atol=1e-5)


def test_without_isolation_the_test_would_see_the_leak(model, encoded, tiny_tok):
    """Negative control: one plain causal sequence lets A change B's logits, so the test above has teeth."""
    a, b = encoded[0], encoded[1]
    other = tiny_tok.convert_tokens_to_ids(tiny_tok.tokenize("q"))[0]
    a2 = Encoded(tuple(other for _ in a.input_ids), a.labels)
    set_model_attention(model, "sdpa")

    def logits_b(first):
        ids = torch.tensor([list(first.input_ids) + list(b.input_ids)])
        with torch.no_grad():
            return model(input_ids=ids, use_cache=False).logits[0, len(first):]

    assert (logits_b(a) - logits_b(a2)).abs().max().item() > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None,
                    reason="flash_attention_2 varlen path needs a CUDA GPU and flash-attn")
def test_flash_attention_varlen_matches_unpacked(tiny_tok, encoded):  # pragma: no cover - GPU only
    from camels.tiny import tiny_llama

    m = tiny_llama(tiny_tok, seed=0).to("cuda", torch.bfloat16)
    set_model_attention(m, "sdpa")
    ref = loss_sum(m, padded_batch(encoded, tiny_tok.pad_token_id).to("cuda"))
    set_model_attention(m, "flash_attention_2")
    got = loss_sum(m, packed_batch(encoded, "flash_attention_2").to("cuda"))
    assert got.item() == pytest.approx(ref.item(), rel=2e-2)
