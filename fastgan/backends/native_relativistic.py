"""The ``"native"`` backend's relativistic losses (RaGAN, RpGAN): a section of
``native_backend.py`` once merged.

CPU tensors: the fused raw ops of ``csrc/relativistic.cpp`` (registered with
``TORCH_LIBRARY_FRAGMENT(fastgan_native)``), called through ``torch.ops`` from a
Python ``autograd.Function``:

* ``ragan_fwd(real, fake, labels, reduction) -> [loss or terms..., stats]``: the two
  batch sums, then one pass computing the BCE terms of the shifted scores and, when
  reduced, ``Σa``, ``Σb`` (``a = σ(x − ȳ) − t_r``, ``b = σ(y − x̄) − t_f``); ``stats`` =
  ``(Σx, Σy, Σa, Σb)`` in the accumulation dtype.
* ``ragan_bwd(real, fake, labels, reduction, stats, grads, needs) -> [d real, d fake]``:
  one element-wise pass (with ``"none"``, a reduction of the upstream-weighted
  derivatives first).
* ``rpgan_fwd(real, fake, gen, reduction)`` / ``rpgan_bwd(real, fake, gen, reduction,
  up, needs)``: one pass each way over both tensors.

The math is in ``kernels/relativistic.py``'s docstring.  A backward that records a
graph (``create_graph=True``) or runs under vmap is the reference's VJP, so second
derivatives are exact.

CUDA tensors keep the composition (the batch means, then the fused BCE pair op of the
extension; for RpGAN the difference, then the non-saturating BCE op): the CUDA path
of the fused relativistic kernels is the Triton backend.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..registry import OPS, Reduction
from . import native_backend, native_loader
from .modes import vmapped
from .triton_backend import _reference_vjp

_REDUCTION = {r.name.lower(): int(r) for r in Reduction}
RAGAN_LABELS = {"ragan_d_loss": [1.0, 0.0], "ragan_g_loss": [0.0, 1.0]}
RPGAN_GEN = {"rpgan_d_loss": False, "rpgan_g_loss": True}


def _raw():
    native_loader.module()  # loaded (and its ops registered) before torch.ops is used
    return torch.ops.fastgan_native


def _vjp(name: str, reduction: str, real: Tensor, fake: Tensor, grads: Sequence[Tensor], needs):
    ref = OPS[name].reference
    return _reference_vjp(lambda a, b: ref(a, b, reduction=reduction), [real, fake], grads, needs)


class _RaGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        outs = _raw().ragan_fwd(real, fake, RAGAN_LABELS[name], _REDUCTION[reduction])
        ctx.meta = (name, reduction)
        ctx.stats = outs[-1]
        ctx.save_for_backward(real, fake)
        return (outs[0], outs[1]) if reduction == "none" else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped(grads):
            g_r, g_f = _vjp(name, reduction, real, fake, grads, needs)
        else:
            g_r, g_f = _raw().ragan_bwd(real, fake, RAGAN_LABELS[name], _REDUCTION[reduction], ctx.stats,
                                        list(grads), list(needs))
        return None, None, (g_r if needs[0] else None), (g_f if needs[1] else None)


class _RpGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        ctx.meta = (name, reduction)
        ctx.save_for_backward(real, fake)
        return _raw().rpgan_fwd(real, fake, RPGAN_GEN[name], _REDUCTION[reduction])

    @staticmethod
    def backward(ctx, up):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped([up]):
            g_r, g_f = _vjp(name, reduction, real, fake, [up], needs)
        else:
            g_r, g_f = _raw().rpgan_bwd(real, fake, RPGAN_GEN[name], _REDUCTION[reduction], up, list(needs))
        return None, None, (g_r if needs[0] else None), (g_f if needs[1] else None)


def _acc(x: Tensor) -> Tensor:
    """Half types in float32 (the shifted scores are not rounded to a half type)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def composed(name: str, real: Tensor, fake: Tensor, reduction: str):
    """The composition: the batch means (RaGAN) or the paired difference (RpGAN) in ATen,
    then the extension's fused BCE pair op; the result in the inputs' dtype."""
    x, y = _acc(real), _acc(fake)
    if name in RAGAN_LABELS:
        t_r, t_f = RAGAN_LABELS[name]
        kwargs = {"real_label": t_r, "fake_label": t_f}
        out = native_backend.pair_loss("bce_d_loss", kwargs, OPS["bce_d_loss"].lower(**kwargs), reduction,
                                       x - y.mean(), y - x.mean())
        if reduction == "none":
            return out[0].to(real.dtype), out[1].to(fake.dtype)
        return out.to(real.dtype)
    d = y - x if RPGAN_GEN[name] else x - y
    # the non-saturating BCE generator term softplus(−d): softplus(y − x) for D, softplus(x − y) for G
    return native_backend.pair_loss("bce_g_loss", {}, OPS["bce_g_loss"].lower(), reduction, None, d).to(real.dtype)


def relativistic(name: str, real: Tensor, fake: Tensor, reduction: str):
    """A relativistic loss with autograd; ``real`` and ``fake`` in one dtype
    (``backends.run`` promotes).  CPU: the fused ops; CUDA: the composition."""
    if not real.is_cpu:
        return composed(name, real, fake, reduction)
    if name in RAGAN_LABELS:
        return _RaGAN.apply(name, reduction, real, fake)
    return _RpGAN.apply(name, reduction, real, fake)
