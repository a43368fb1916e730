"""The ``"native"`` backend's divergences (``gaussian_kl``, ``kl_div_logits``,
``js_div_logits``): the raw ops of ``csrc/divergence.cpp`` with a Python autograd node.

A self-contained section of ``native_backend.py`` (to be merged into it).

* CPU tensors: ``fastgan_native::gaussian_kl_fwd`` / ``gaussian_kl_bwd`` and
  ``divergence_fwd`` / ``divergence_bwd`` (``at::parallel_for`` over samples / rows,
  ``at::vec`` inner loops; the forward saves the per-row log-normalisers and
  divergences, the backward is one pass).  Half types are converted to float32 once
  on entry (a copy), computed in float32, and the results converted back.
* CUDA tensors: the reference (ATen ops on the GPU); the CUDA path of these ops is the
  Triton backend's kernels (``triton_divergence``), which ``auto`` picks on CUDA.
* Autograd: one ``torch.autograd.Function`` per call; its backward is the backward op,
  except where a graph of the backward is requested (``create_graph=True``) or under
  vmap: there the reference's VJP (``triton_backend._reference_vjp``), so second
  derivatives are exact and batched gradients work.
"""
from __future__ import annotations

from torch import Tensor
import torch

from ..registry import OPS, Reduction
from . import native_loader
from .modes import vmapped
from .triton_backend import _reference_vjp

_REDUCTION = {r.name.lower(): int(r) for r in Reduction}


def _ops():
    native_loader.module()  # built and loaded (its ops registered) before torch.ops is used
    return torch.ops.fastgan_native


class _Divergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, dim: int, reduction: str, a, b):
        ops = _ops()
        red = _REDUCTION[reduction]
        if name == "gaussian_kl":
            out = ops.gaussian_kl_fwd(a, b, red)
            saved = ()
        else:
            out, stat, rowdiv = ops.divergence_fwd(a, b, dim, name == "js_div_logits", red)
            saved = (stat, rowdiv)
        ctx.meta = (name, dim, reduction)
        ctx.save_for_backward(a, b, *saved)
        return out

    @staticmethod
    def backward(ctx, up):
        name, dim, reduction = ctx.meta
        a, b, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled() or vmapped([up]):
            ref = OPS[name].reference
            kw = {} if name == "gaussian_kl" else {"dim": dim}
            grads = _reference_vjp(lambda x, y: ref(x, y, **kw, reduction=reduction), [a, b], [up], needs)
            return (None, None, None, *grads)
        ops = _ops()
        red = _REDUCTION[reduction]
        if name == "gaussian_kl":
            g = ops.gaussian_kl_bwd(a, b, red, up, needs[0], needs[1])
        else:
            g = ops.divergence_bwd(a, b, dim, name == "js_div_logits", red, saved[0], saved[1], up,
                                   needs[0], needs[1])
        return (None, None, None, g[0] if needs[0] else None, g[1] if needs[1] else None)


def divergence(name: str, tensors: tuple, kwargs: dict, reduction: str) -> Tensor:
    """``name`` (``gaussian_kl``, ``kl_div_logits``, ``js_div_logits``) on the native ops,
    with autograd; the two tensors in one dtype (``backends.run`` promotes).  CUDA
    tensors: the reference."""
    a, b = tensors
    if not a.is_cpu:
        return OPS[name].reference(a, b, **kwargs, reduction=reduction)
    dim = kwargs.get("dim", -1)
    if name != "gaussian_kl":
        dim = dim % a.dim()
    return _Divergence.apply(name, dim, reduction, a, b)
