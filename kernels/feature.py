"""Fused Triton kernels for feature matching over lists of maps.

``Σ_m w_m · Σ_i |g − r|^P`` (``P`` = 1 or 2; ``w_m`` = 1/numel for a per-map mean, 1 for a
sum), and its gradient ``∂/∂g = u · w_m · sign(g − r)`` (``sign(0) = 0``, torch's
``|·|'(0)``) or ``u · w_m · 2(g − r)``.

Forward: one launch per map writes each program's weighted partial sum into one shared
buffer (the map's partials at its own offset), then ``sum_partials_kernel`` adds all of
them in a fixed order: deterministic, no atomics, each map read once.  Backward: one
launch per map reads the pair once and writes the gradient once.  (One launch per map;
a single launch over a device table of pointers is future work.)
"""
from __future__ import annotations

import triton
import triton.language as tl

from .losses import BLOCK, FLOAT_DTYPES, PARTIALS_BLOCK, W_PARAMS, _acc, _param, _ptr, sum_partials_kernel  # noqa: F401


@triton.jit
def _diff(r_ptr, g_ptr, offs, n, MASKED: tl.constexpr, F64: tl.constexpr):
    """g − r over one tile in the compute dtype; a full tile loads without a mask."""
    if MASKED:
        m = offs < n
        g = tl.load(g_ptr + offs, mask=m, other=0.0)
        r = tl.load(r_ptr + offs, mask=m, other=0.0)
    else:
        g = tl.load(g_ptr + offs)
        r = tl.load(r_ptr + offs)
    return _acc(g, F64) - _acc(r, F64)


@triton.jit(do_not_specialize=W_PARAMS)
def fm_fwd_kernel(r_ptr, g_ptr, part_ptr, offset, n, w_hi, w_lo,
                  P: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """part[offset + pid] = w · Σ over this program's block of |g − r|^P.  A full tile
    without a mask, the last, partial tile masked (zeros there add nothing)."""
    pid = tl.program_id(0).to(tl.int64)
    start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    if start + BLOCK <= n:
        d = _diff(r_ptr, g_ptr, offs, n, False, F64)
    else:
        d = _diff(r_ptr, g_ptr, offs, n, True, F64)
    if P == 1:
        v = tl.abs(d)
    else:
        v = d * d
    tl.store(part_ptr + offset + pid, _param(w_hi, w_lo, F64) * tl.sum(v, axis=0))


@triton.jit
def _grad(d, c, P: tl.constexpr):
    """c · sign(d) (P = 1; 0 where d = 0, nan stays nan) or c · 2d."""
    if P == 1:
        s = tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, tl.where(d != d, d, 0.0)))
    else:
        s = 2.0 * d
    return c * s


@triton.jit(do_not_specialize=W_PARAMS)
def fm_bwd_kernel(r_ptr, g_ptr, up_ptr, out_ptr, n, w_hi, w_lo,
                  P: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """out = u · w · sign(g − r) (P = 1) or u · w · 2(g − r); full tiles unmasked."""
    pid = tl.program_id(0).to(tl.int64)
    start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    c = _acc(tl.load(up_ptr), F64) * _param(w_hi, w_lo, F64)
    if start + BLOCK <= n:
        out = _grad(_diff(r_ptr, g_ptr, offs, n, False, F64), c, P)
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty))
    else:
        out = _grad(_diff(r_ptr, g_ptr, offs, n, True, F64), c, P)
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=offs < n)


def specializations():
    """Yield ``(name, kernel, signature, constexprs)`` for every launchable specialisation."""
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        for p in (1, 2):
            sig = {"r_ptr": _ptr(dt), "g_ptr": _ptr(dt), "part_ptr": _ptr(acc), "offset": "i32", "n": "i32",
                   "w_hi": "i32", "w_lo": "i32"}
            yield f"fm_fwd[{dt},p={p}]", fm_fwd_kernel, sig, {"P": p, "F64": f64, "BLOCK": BLOCK}
            sig = {"r_ptr": _ptr(dt), "g_ptr": _ptr(dt), "up_ptr": _ptr(dt), "out_ptr": _ptr(dt), "n": "i32",
                   "w_hi": "i32", "w_lo": "i32"}
            yield f"fm_bwd[{dt},p={p}]", fm_bwd_kernel, sig, {"P": p, "F64": f64, "BLOCK": BLOCK}
