"""fastgan.functional (also ``fastgan.F``): fused, numerically stable GAN losses.

All losses take raw scores (logits / critic outputs), never probabilities.
``real`` and ``fake`` may have different shapes and sizes and may be
non-contiguous views.

Reductions: a discriminator loss with ``"mean"`` returns ``mean(real terms) +
mean(fake terms)`` (0-d), with ``"sum"`` the sum of both sums, with ``"none"`` the
tuple ``(real_terms, fake_terms)`` each shaped like its input.  Generator losses
reduce as in ``torch.nn.functional``.  Half types accumulate in float32, float64
computes in float64, the result has the input's dtype.

The backend (``fastgan.set_backend``) decides who computes: the fused Triton
kernels, the native extension, or the pure-PyTorch reference.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import backends
from .checks import (FLOAT_SET, REDUCTIONS, DTypeError, ShapeError, check_bool, check_number,  # noqa: F401
                     check_real_tensor, check_reduction, check_same_device, check_tensor)
from .penalties import clip_weights_, grad_norm_penalty, gradient_penalty, r1_penalty, r2_penalty
from .registry import D_KINDS, G_KINDS, OPS

__all__ = [
    "bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss", "lsgan_d_loss", "lsgan_g_loss",
    "wasserstein_d_loss", "wasserstein_g_loss", "d_loss", "g_loss", "binary_cross_entropy_with_logits",
    "grad_norm_penalty", "gradient_penalty", "r1_penalty", "r2_penalty", "clip_weights_",
]

def _call(name: str, tensors, kwargs: dict, reduction: str):
    # the checks are written for the per-call cost (a few µs matter at 4096 logits,
    # benchmarks/results/native-cpu.md); the check_* functions raise the errors
    spec = OPS[name]
    for arg, x in zip(spec.args, tensors):
        if not isinstance(x, Tensor) or x.dtype not in FLOAT_SET:
            check_tensor(arg, x)
    if len(tensors) == 2:
        if not (tensors[0].is_cpu and tensors[1].is_cpu):
            check_same_device(spec.args, tensors)
    elif len(tensors) > 2:
        check_same_device(spec.args, tensors)
    if reduction not in REDUCTIONS:
        check_reduction(reduction)
    return backends.run(spec, tensors, kwargs, reduction)


# --------------------------------------------------------------------------- losses

def bce_d_loss(real: Tensor, fake: Tensor, *, real_label: float = 1.0, fake_label: float = 0.0,
               reduction: str = "mean"):
    """Vanilla GAN discriminator loss, stable BCE with logits.

    ``BCEwithlogits(x, real_label) + BCEwithlogits(y, fake_label)`` per element, where
    ``BCEwithlogits(s, t) = max(s, 0) − s·t + log1p(exp(−|s|))`` (``0·∞ = 0``, so
    ``BCEwithlogits(+∞, 1) = 0``).  ``real_label < 1`` is one-sided label smoothing.
    """
    kw = {"real_label": check_number("real_label", real_label),
          "fake_label": check_number("fake_label", fake_label)}
    return _call("bce_d_loss", (real, fake), kw, reduction)


def bce_g_loss(fake: Tensor, *, saturating: bool = False, reduction: str = "mean"):
    """Vanilla GAN generator loss.

    Non-saturating (default): ``softplus(−y) = −log D(G(z))``.
    Saturating (minimax, ``log(1 − D(G(z)))``): ``−softplus(y)``; its gradient vanishes
    when the discriminator confidently rejects the fakes.
    """
    kw = {"saturating": check_bool("saturating", saturating)}
    return _call("bce_g_loss", (fake,), kw, reduction)


def hinge_d_loss(real: Tensor, fake: Tensor, *, margin: float = 1.0, reduction: str = "mean"):
    """Hinge discriminator loss: ``relu(margin − x)`` and ``relu(margin + y)``.
    The gradient is zero exactly at the margin (``relu'(0) = 0``)."""
    kw = {"margin": check_number("margin", margin)}
    return _call("hinge_d_loss", (real, fake), kw, reduction)


def hinge_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """Hinge generator loss: ``−y``."""
    return _call("hinge_g_loss", (fake,), {}, reduction)


def lsgan_d_loss(real: Tensor, fake: Tensor, *, a: float = 0.0, b: float = 1.0, reduction: str = "mean"):
    """Least-squares discriminator loss: ``½(x − b)²`` and ``½(y − a)²``."""
    kw = {"a": check_number("a", a), "b": check_number("b", b)}
    return _call("lsgan_d_loss", (real, fake), kw, reduction)


def lsgan_g_loss(fake: Tensor, *, c: float = 1.0, reduction: str = "mean"):
    """Least-squares generator loss: ``½(y − c)²``."""
    kw = {"c": check_number("c", c)}
    return _call("lsgan_g_loss", (fake,), kw, reduction)


def wasserstein_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Wasserstein critic loss: ``−x`` and ``y`` (the critic minimises ``E[D(G(z))] − E[D(x)]``)."""
    return _call("wasserstein_d_loss", (real, fake), {}, reduction)


def wasserstein_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """Wasserstein generator loss: ``−y``."""
    return _call("wasserstein_g_loss", (fake,), {}, reduction)


def _kind(kind, table) -> str:
    if not isinstance(kind, str) or kind not in table:
        raise ValueError(f"kind must be one of {tuple(table)}, got {kind!r}")
    return table[kind]


def d_loss(kind: str, real: Tensor, fake: Tensor, **kw):
    """Discriminator loss by name: ``kind`` in ``{"bce", "hinge", "lsgan", "wasserstein"}``."""
    return globals()[_kind(kind, D_KINDS)](real, fake, **kw)


def g_loss(kind: str, fake: Tensor, **kw):
    """Generator loss by name: ``kind`` in ``{"bce", "hinge", "lsgan", "wasserstein"}``."""
    return globals()[_kind(kind, G_KINDS)](fake, **kw)


def _broadcasts_to(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    """Drop-in for ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Same signature, values and broadcasting: per element
    ``weight · [(1 − t)·s + (1 + (pos_weight − 1)·t)·softplus(−s)]``; ``target`` has
    ``input``'s shape, ``weight`` and ``pos_weight`` broadcast to it and may be integer
    tensors.  As torch's: the result has ``target``'s dtype, and under autocast the loss
    runs in float32.  Errors where torch raises ``RuntimeError`` (an integer target,
    shapes that do not broadcast) are ``DTypeError`` / ``ShapeError``, which are
    ``RuntimeError`` too.  One difference: infinite logits give the limits of the math
    (``(+∞, t=1) → 0``) where torch gives nan.
    """
    if size_average is not None or reduce is not None:
        from torch.nn import _reduction
        reduction = _reduction.legacy_get_string(size_average, reduce)
    check_tensor("input", input, DTypeError)
    check_tensor("target", target, DTypeError)
    names, tensors = ["input", "target"], [input, target]
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None:
            names.append(name)
            tensors.append(check_real_tensor(name, v))
    check_same_device(names, tensors)
    if target.shape != input.shape:
        raise ShapeError(f"target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)})")
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None and not _broadcasts_to(v.shape, input.shape):
            raise ShapeError(f"{name} of shape {tuple(v.shape)} does not broadcast to the input's shape "
                             f"{tuple(input.shape)}")
    check_reduction(reduction)
    if torch.is_autocast_enabled(input.device.type):  # torch runs this loss in float32 under autocast
        input, target = input.float(), target.float()
    weight, pos_weight = _as_float(weight, input), _as_float(pos_weight, input)
    spec = OPS["binary_cross_entropy_with_logits"]
    return backends.run(spec, (input, target), {"weight": weight, "pos_weight": pos_weight}, reduction)


def _as_float(v: Optional[Tensor], like: Tensor) -> Optional[Tensor]:
    """An integer or bool weight as a float tensor (torch promotes them the same way)."""
    if v is None or v.is_floating_point():
        return v
    return v.to(torch.float64 if like.dtype == torch.float64 else torch.float32)
