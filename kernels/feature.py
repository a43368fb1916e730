"""The feature-matching formulas of the Triton kernels, written once.

Per map ``Σ_i |g − r|^P`` (``P`` = 1 or 2), and its gradient ``∂/∂g = c · sign(g − r)``
(``sign(0) = 0``, torch's ``|·|'(0)``; nan stays nan) or ``c · 2(g − r)``, ``∂/∂r`` its
negation.  The kernel that runs them over every map of a call in one launch is
``kernels/multi.py`` (``multi_fm_fwd_kernel``, ``multi_fm_bwd_kernel``).
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

import triton
import triton.language as tl

from .common import to_acc


@triton.jit
def diff(r_ptr, g_ptr, offs, n, MASKED: tl.constexpr, F64: tl.constexpr):
    """g − r over one tile in the compute dtype; a full tile loads without a mask
    (the masked lanes of a tail tile are 0 − 0 = 0)."""
    if MASKED:
        m = offs < n
        g = tl.load(g_ptr + offs, mask=m, other=0.0)
        r = tl.load(r_ptr + offs, mask=m, other=0.0)
    else:
        g = tl.load(g_ptr + offs)
        r = tl.load(r_ptr + offs)
    return to_acc(g, F64) - to_acc(r, F64)


@triton.jit
def fm_term(d, P: tl.constexpr):
    """|d|^P."""
    if P == 1:
        v = tl.abs(d)
    else:
        v = d * d
    return v


@triton.jit
def grad(d, c, P: tl.constexpr):
    """c · sign(d) (P = 1; 0 where d = 0, nan stays nan) or c · 2d."""
    if P == 1:
        s = tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, tl.where(d != d, d, 0.0)))
    else:
        s = 2.0 * d
    return c * s
