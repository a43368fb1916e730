"""The pure-PyTorch reference: the specification of every fastgan op, in code.

Each function is written plainly from its formula with ordinary torch ops, so it
is differentiable to any order and is the oracle every test, ``fastgan verify``
and ``fastgan bench`` compare against.  It is also the ``"torch"`` backend.

Two deliberate choices, both from the API contract:

* ``0 · ∞ = 0`` in the label products of BCE, so that ``BCEwithlogits(+∞, 1) = 0``
  and ``BCEwithlogits(−∞, 0) = 0`` (what the stable formula means), where a naive
  ``max(s, 0) − s·t`` gives ``∞ − ∞ = nan``.  ``torch.nn.functional`` returns nan
  there; fastgan does not.
* Half-precision inputs are computed in float32 and the result is cast back to
  the input's dtype; float64 stays float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "bce_terms", "reduce_pair", "reduce_one",
    "bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss",
    "lsgan_d_loss", "lsgan_g_loss", "wasserstein_d_loss", "wasserstein_g_loss",
    "binary_cross_entropy_with_logits", "grad_norm_penalty",
]


def _compute_dtype_of(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _compute_dtype(x: Tensor) -> torch.dtype:
    return _compute_dtype_of(x.dtype)


def _up(x: Tensor) -> Tensor:
    return x.to(_compute_dtype(x))


def _mul0(a: Tensor, b: Tensor) -> Tensor:
    """``a · b`` with ``0 · ∞ = 0`` (``a`` a label or a label weight).

    Only the infinite ``b`` is replaced, so the derivative with respect to ``a``
    stays ``b`` wherever ``b`` is finite (a label of exactly 0 or 1 still gets
    its gradient)."""
    return a * torch.where((a == 0) & b.isinf(), torch.zeros_like(b), b)


def softplus(s: Tensor) -> Tensor:
    """``softplus(s) = log(1 + exp(s))``, stable, with the true derivative ``sigmoid(s)``
    at every point, to every order.

    Written ``max(s, 0) + log1p(exp(−|s|))``; autograd's conventions at the kink
    ``s = 0`` (``relu'(0) = 0``, ``abs'(0) = 0``) would give a derivative of 0 there,
    where the function is smooth and the derivative is ½.  So ``|s|`` is
    ``where(s ≥ 0, s, −s)`` (derivative +1 at 0) and ``max(s, 0)`` is
    ``clamp(s, min=0)`` (derivative 1 at the boundary): ``1 − ½ = ½``.  The second
    derivative there is ``¼ = σ(0)·(1 − σ(0))``, and in the tails it underflows to 0,
    never nan (tests/test_oracle.py checks both against closed forms)."""
    a = torch.where(s >= 0, s, -s)
    return torch.clamp(s, min=0) + torch.log1p(torch.exp(-a))


def bce_terms(s: Tensor, t) -> Tensor:
    """``BCEwithlogits(s, t) = max(s, 0) − s·t + log1p(exp(−|s|))``, written as
    ``(1 − t)·softplus(s) + t·softplus(−s)`` (smooth, exact derivative ``sigmoid(s) − t``
    everywhere) with ``0·∞ = 0``, so that ``BCE(+∞, 1) = BCE(−∞, 0) = 0``."""
    if not isinstance(t, Tensor):  # a label: skip the side it multiplies by 0
        if t == 0:
            return softplus(s)
        if t == 1:
            return softplus(-s)
        return (1 - t) * softplus(s) + t * softplus(-s)
    return _mul0(1 - t, softplus(s)) + _mul0(t, softplus(-s))


def reduce_one(terms: Tensor, like: Tensor, reduction: str) -> Tensor:
    """Reduce one tensor of per-element terms and cast to ``like``'s dtype."""
    if reduction == "mean":
        out = terms.mean()
    elif reduction == "sum":
        out = terms.sum()
    else:
        out = terms
    return out.to(like.dtype)


def reduce_pair(real_terms: Tensor, fake_terms: Tensor, real: Tensor, fake: Tensor, reduction: str):
    """Discriminator reduction: ``mean(real) + mean(fake)``, ``sum + sum``, or the tuple."""
    if reduction == "none":
        return real_terms.to(real.dtype), fake_terms.to(fake.dtype)
    if reduction == "mean":
        out = real_terms.mean() + fake_terms.mean()
    else:
        out = real_terms.sum() + fake_terms.sum()
    return out.to(torch.promote_types(real.dtype, fake.dtype))


# --- vanilla GAN (stable BCE with logits) -----------------------------------

def bce_d_loss(real: Tensor, fake: Tensor, *, real_label: float = 1.0, fake_label: float = 0.0,
               reduction: str = "mean"):
    """``BCEwithlogits(x, real_label)`` and ``BCEwithlogits(y, fake_label)``."""
    return reduce_pair(bce_terms(_up(real), real_label), bce_terms(_up(fake), fake_label),
                       real, fake, reduction)


def bce_g_loss(fake: Tensor, *, saturating: bool = False, reduction: str = "mean"):
    """Non-saturating ``softplus(−y)``; saturating (minimax) ``−softplus(y)``."""
    y = _up(fake)
    terms = -softplus(y) if saturating else softplus(-y)
    return reduce_one(terms, fake, reduction)


# --- hinge ------------------------------------------------------------------

def hinge_d_loss(real: Tensor, fake: Tensor, *, margin: float = 1.0, reduction: str = "mean"):
    """``relu(margin − x)`` and ``relu(margin + y)``."""
    return reduce_pair(torch.relu(margin - _up(real)), torch.relu(margin + _up(fake)),
                       real, fake, reduction)


def hinge_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """``−y``."""
    return reduce_one(-_up(fake), fake, reduction)


# --- least squares ----------------------------------------------------------

def lsgan_d_loss(real: Tensor, fake: Tensor, *, a: float = 0.0, b: float = 1.0, reduction: str = "mean"):
    """``½(x − b)²`` and ``½(y − a)²``."""
    return reduce_pair(0.5 * (_up(real) - b) ** 2, 0.5 * (_up(fake) - a) ** 2, real, fake, reduction)


def lsgan_g_loss(fake: Tensor, *, c: float = 1.0, reduction: str = "mean"):
    """``½(y − c)²``."""
    return reduce_one(0.5 * (_up(fake) - c) ** 2, fake, reduction)


# --- Wasserstein --------------------------------------------------------------

def wasserstein_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """``−x`` and ``y``: the critic minimises ``E[D(G(z))] − E[D(x)]``."""
    return reduce_pair(-_up(real), _up(fake), real, fake, reduction)


def wasserstein_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """``−y``."""
    return reduce_one(-_up(fake), fake, reduction)


# --- drop-in binary_cross_entropy_with_logits ---------------------------------

def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """``w · [(1 − t)·s + (1 + (p − 1)·t)·softplus(−s)]`` (torch's formula), ``0·∞ = 0``.

    ``(1 − t)·s + softplus(−s)`` is ``BCEwithlogits(s, t)``, computed as ``bce_terms``
    so that infinite logits give the limits of the math, not nan.  dtypes as torch's
    function: computed in the accumulation dtype of ``input`` and ``target`` promoted
    (weights and labels never rounded to a half type first), the result has
    ``target``'s dtype.
    """
    acc = _compute_dtype_of(torch.promote_types(input.dtype, target.dtype))
    s, t = input.to(acc), target.to(acc)
    terms = bce_terms(s, t)
    if pos_weight is not None:
        # (p − 1)·t·softplus(−s), the extra weight on the positive term
        terms = terms + _mul0((pos_weight.to(acc) - 1) * t, softplus(-s))
    if weight is not None:
        terms = terms * weight.to(acc)
    return reduce_one(terms, target, reduction)


# --- gradient-norm penalty ------------------------------------------------------

def grad_norm_penalty(grads: Tensor, *, center: float = 1.0, one_sided: bool = False,
                      reduction: str = "mean") -> Tensor:
    """Per sample ``n_i = ‖grads[i]‖₂`` over every non-batch dim; ``(n_i − center)²``,
    or ``max(0, n_i − center)²`` if ``one_sided``; ``center = 0`` is the squared norm."""
    g = _up(grads).reshape(grads.shape[0], math.prod(grads.shape[1:]))
    sq = (g * g).sum(dim=1)
    if center == 0:
        terms = sq  # the squared norm, one-sided or not (n ≥ 0); no square root, gradient 2·g
    else:
        # sqrt'(0) = ∞ would give 0·∞ = nan at a zero row; the norm's gradient there is 0.
        zero = sq == 0
        n = torch.where(zero, torch.zeros_like(sq), torch.where(zero, torch.ones_like(sq), sq).sqrt())
        d = n - center
        terms = torch.relu(d) ** 2 if one_sided else d * d
    return reduce_one(terms, grads, reduction)
