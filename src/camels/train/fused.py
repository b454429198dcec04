"""A fused RMSNorm for training, swapped in only where it is checked to give the module's own values.

The RMS norm of the LLaMA family (``weight * x / sqrt(mean(x^2) + eps)``, computed in float32) is written
in transformers as five tensor operations; autograd then records each of them and runs about fifteen
more in the backward pass, every one a full pass over the activations. Per packed row of the benchmark
model that made the norms about a sixth of a training step on a CPU. :class:`RMSNormFunction` computes
the same forward in four passes and its gradient in five, from the normalised input it saves.

:func:`fuse_rms_norms` replaces the ``forward`` of a norm module only after comparing, on a random input,
its output and the gradients of the input and the weight with the module's own forward; a norm with
different maths (Gemma's ``1 + weight``, a bias, another epsilon attribute) is left alone.
"""

from __future__ import annotations

import types
from typing import Any

_FUNCTION: Any = None


def rms_norm_function() -> Any:
    """The autograd function (built on first use, so that importing this module needs no torch)."""
    global _FUNCTION
    if _FUNCTION is None:
        import torch

        class RMSNormFunction(torch.autograd.Function):
            """``y = weight * (x * r).to(x.dtype)`` with ``r = rsqrt(mean(x^2) + eps)`` in float32."""

            @staticmethod
            def forward(ctx: Any, x: Any, weight: Any, eps: float) -> Any:
                xf = x.float()
                r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True).add_(eps))
                xhat = (xf * r).to(x.dtype)
                ctx.save_for_backward(xhat, r, weight)
                ctx.x_dtype = x.dtype
                return weight * xhat

            @staticmethod
            def backward(ctx: Any, grad: Any) -> tuple[Any, Any, None]:
                xhat, r, weight = ctx.saved_tensors
                grad_w = None
                if ctx.needs_input_grad[1]:
                    grad_w = (grad * xhat).reshape(-1, grad.shape[-1]).sum(0).to(weight.dtype)
                grad_x = None
                if ctx.needs_input_grad[0]:
                    g = (grad * weight).float()
                    xf = xhat.float()
                    # d/dx of x * r: r * (g - xhat * mean(g * xhat))
                    grad_x = g.sub_(xf * (g * xf).mean(-1, keepdim=True)).mul_(r).to(ctx.x_dtype)
                return grad_x, grad_w, None

        _FUNCTION = RMSNormFunction
    return _FUNCTION


def _fused_forward(self: Any, hidden_states: Any) -> Any:
    return rms_norm_function().apply(hidden_states, self.weight, self.variance_epsilon)


def _agrees(module: Any) -> bool:
    """Whether the fused forward gives this module's output and gradients on a random input."""
    import torch

    weight = module.weight
    gen = torch.Generator(device="cpu").manual_seed(0)
    x0 = torch.randn((3, 5, weight.shape[0]), generator=gen).to(weight.device, weight.dtype) * 3
    grad = torch.randn(x0.shape, generator=gen).to(weight.device, weight.dtype)
    results = []
    for fwd in (module.forward, types.MethodType(_fused_forward, module)):
        x = x0.clone().requires_grad_(True)
        w_before = None if weight.grad is None else weight.grad.clone()
        weight.grad = None
        y = fwd(x)
        y.backward(grad)
        w_grad = weight.grad.float() if weight.grad is not None else torch.zeros(())
        results.append((y.detach().float(), x.grad.float(), w_grad))
        weight.grad = w_before
    tol = dict(atol=1e-5, rtol=1e-4) if weight.dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    return all(torch.allclose(a, b, **tol) for a, b in zip(*results))


def fuse_rms_norms(model: Any) -> int:
    """Give every LLaMA-style RMSNorm module of ``model`` the fused forward where it agrees; return how many.

    A module qualifies when its class name ends in ``RMSNorm``, it has a 1-D trainable ``weight`` and a
    ``variance_epsilon``, and :func:`_agrees` holds (a frozen weight, as under LoRA, gets no gradient).
    Only the instance's ``forward`` is replaced.
    """
    import torch

    n = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (not type(module).__name__.endswith("RMSNorm") or not isinstance(weight, torch.nn.Parameter)
                or weight.dim() != 1 or weight.numel() == 0  # empty: partitioned (ZeRO-3), left alone
                or not isinstance(getattr(module, "variance_epsilon", None), float)
                or getattr(module, "bias", None) is not None):
            continue
        try:
            ok = _agrees(module)
        except Exception:  # noqa: BLE001 - any module this cannot run on keeps its own forward
            ok = False
        if ok:
            module.forward = types.MethodType(_fused_forward, module)
            n += 1
    return n
