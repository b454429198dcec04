"""The fused RMSNorm gives the module's own values and gradients, and is swapped in only where it does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from camels.train.fused import fuse_rms_norms, rms_norm_function  # noqa: E402


def _llama_norm(dtype=torch.float32, size=16):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    norm = LlamaRMSNorm(size, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, size))
    return norm.to(dtype)


def _values_and_grads(norm, x, grad):
    x = x.clone().requires_grad_(True)
    norm.weight.grad = None
    y = norm(x)
    y.backward(grad)
    return y.detach(), x.grad.clone(), norm.weight.grad.clone()


def test_fused_function_matches_llama_norm_values_and_gradients():
    norm = _llama_norm()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((2, 7, 16), generator=gen) * 4
    grad = torch.randn((2, 7, 16), generator=gen)
    want = _values_and_grads(norm, x, grad)
    assert fuse_rms_norms(norm) == 1
    got = _values_and_grads(norm, x, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # the row's scale really is normalised away: y / weight has unit root mean square per row
    rms = (got[0] / norm.weight.detach()).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)


def test_fused_function_in_bf16_returns_bf16_like_the_module():
    norm = _llama_norm(torch.bfloat16)
    x = torch.randn((3, 16)).to(torch.bfloat16)
    want = norm(x)
    assert fuse_rms_norms(norm) == 1
    got = norm(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), atol=0, rtol=0)


def test_norms_with_other_maths_are_left_alone():
    class OffsetRMSNorm(torch.nn.Module):  # Gemma-style: scales by (1 + weight)
        def __init__(self, size):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(size))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    odd = OffsetRMSNorm(8)
    plain = torch.nn.LayerNorm(8)
    assert fuse_rms_norms(torch.nn.Sequential(odd, plain)) == 0
    assert "forward" not in vars(odd) and "forward" not in vars(plain)


def test_fused_model_gives_same_loss_and_gradients(tiny_tok):
    from camels.tiny import tiny_llama

    ids = torch.tensor([[5, 9, 14, 3, 22, 7, 11, 2, 30, 4]])
    losses, grads = [], []
    for fuse in (False, True):
        model = tiny_llama(tiny_tok, seed=0).float()
        if fuse:
            assert fuse_rms_norms(model) == 2 * model.config.num_hidden_layers + 1
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-6, rtol=1e-5, msg=name)


def test_frozen_norm_is_fused_and_gets_no_weight_gradient():
    norm = _llama_norm()
    norm.weight.requires_grad_(False)  # as under LoRA
    x = torch.randn((4, 16))
    want = norm(x.clone().requires_grad_(True))
    assert fuse_rms_norms(norm) == 1
    xg = x.clone().requires_grad_(True)
    got = norm(xg)
    got.sum().backward()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert norm.weight.grad is None and xg.grad is not None
    y = rms_norm_function().apply(xg, norm.weight, 1e-6)
    assert y.requires_grad


def test_partitioned_weight_is_left_alone():
    """Under DeepSpeed ZeRO-3 a module's weight is an empty placeholder until gathered: not checked, not fused."""
    norm = _llama_norm()
    norm.weight = torch.nn.Parameter(torch.empty(0))
    assert fuse_rms_norms(norm) == 0
    assert "forward" not in vars(norm)
