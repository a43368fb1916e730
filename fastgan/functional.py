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

import math
import numbers
from typing import Optional

import torch
from torch import Tensor

from . import backends
from .registry import D_KINDS, G_KINDS, OPS, REDUCTIONS

__all__ = [
    "bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss", "lsgan_d_loss", "lsgan_g_loss",
    "wasserstein_d_loss", "wasserstein_g_loss", "d_loss", "g_loss", "binary_cross_entropy_with_logits",
    "grad_norm_penalty", "gradient_penalty", "r1_penalty", "r2_penalty", "clip_weights_",
]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------- argument checks

def check_tensor(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), "
                        f"got dtype {x.dtype}")
    return x


def check_same_device(names, tensors) -> None:
    first = tensors[0].device
    for name, x in zip(names[1:], tensors[1:]):
        if x.device != first:
            raise ValueError(f"{names[0]} is on {first} but {name} is on {x.device}; fastgan never copies "
                             f"across devices: move them to one device first")


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_number(name: str, v) -> float:
    if type(v) is float and math.isfinite(v):  # the common case, without the ABC check
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float), got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def check_bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return v


_FLOAT_SET = frozenset(FLOAT_DTYPES)


def _call(name: str, tensors, kwargs: dict, reduction: str):
    # the checks are written for the per-call cost (a few µs matter at 4096 logits,
    # benchmarks/results/native-cpu.md); the check_* functions raise the errors
    spec = OPS[name]
    for arg, x in zip(spec.args, tensors):
        if not isinstance(x, Tensor) or x.dtype not in _FLOAT_SET:
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
    ``input``'s shape, ``weight`` and ``pos_weight`` broadcast to it.  One difference:
    infinite logits give the limits of the math (``(+∞, t=1) → 0``) where torch gives nan.
    """
    if size_average is not None or reduce is not None:
        from torch.nn import _reduction
        reduction = _reduction.legacy_get_string(size_average, reduce)
    check_tensor("input", input)
    check_tensor("target", target)
    names, tensors = ["input", "target"], [input, target]
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None:
            names.append(name)
            tensors.append(check_tensor(name, v))
    check_same_device(names, tensors)
    if target.shape != input.shape:
        raise ValueError(f"target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)})")
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None and not _broadcasts_to(v.shape, input.shape):
            raise ValueError(f"{name} of shape {tuple(v.shape)} does not broadcast to the input's shape "
                             f"{tuple(input.shape)}")
    check_reduction(reduction)
    spec = OPS["binary_cross_entropy_with_logits"]
    return backends.run(spec, (input, target), {"weight": weight, "pos_weight": pos_weight}, reduction)


# the penalties live in fastgan/penalties.py and are part of this namespace (the contract)
from .penalties import clip_weights_, gradient_penalty, grad_norm_penalty, r1_penalty, r2_penalty  # noqa: E402
