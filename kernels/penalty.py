"""Fused Triton kernels for the per-sample gradient-norm penalty.

``grads`` is viewed as ``(B, D)`` (every non-batch dim flattened).  Per sample
``sq_i = Σ_j g_ij²``, ``n_i = sqrt(sq_i)``, and the term is ``(n_i − c)²``, or
``relu(n_i − c)²`` one-sided, or ``sq_i`` itself for ``c = 0`` (no square root).

Forward, two launches, deterministic (no atomics):

1. ``sqnorm_partial_kernel``: a 2-d grid (row tiles × column splits).  Each
   program owns ``ROWS`` rows and a contiguous span of ``iters·BLOCK_D`` columns
   and writes one partial sum of squares per row.  Long rows (a 3×256×256 image)
   are split across programs so small batches still fill the GPU; short rows
   are packed ``ROWS`` to a program so large batches do too.  ``BLOCK_D`` (and
   ``ROWS = TILE // BLOCK_D``) is chosen from D.
2. ``penalty_finish_kernel``: one program sums each row's partials in a fixed
   order, stores ``sq_i`` (B values, kept for the backward), the per-sample
   terms (reduction ``"none"``) and the reduced penalty.

Backward, one launch (``penalty_bwd_kernel``): ``∂/∂g_ij = u_i · w · k_i · g_ij``
with ``k_i = 2 (n_i − c) / n_i`` (``2`` for ``c = 0``; ``0`` where ``n_i = 0``, so a
zero row has a finite, zero gradient).  It reads ``g`` once and writes ``∂g``
once — the minimum bytes.

Rows start at multiples of D, so each program's span of each of its rows is read
as a body between the span's first and last 16-byte boundaries (128-bit loads and
stores, masked per vector) and a head and tail of fewer than 16 bytes each
(``common.row_bounds``, ``row_body``, ``row_ends``): 128-bit accesses for any D, with
one row per program (``BLOCK_D`` 1024, rows longer than 256) or several.
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

from dataclasses import dataclass

import triton
import triton.language as tl

from .common import (FLOAT_DTYPES, NUM_WARPS, param, ptr_type, row_body, row_bounds, row_ends, split,  # noqa: F401
                     to_acc, vec)

TILE = 1024                          # elements per program per iteration
BLOCK_DS = (16, 64, 256, 1024)       # column block; ROWS = TILE // BLOCK_D
TARGET_PROGRAMS = 1024               # split long rows until about this many programs
FINISH_ROWS = 64                     # rows per iteration of the finishing program
FINISH_SPLITS = 16                   # partial columns per iteration of the finishing program


@triton.jit
def sqnorm_partial_kernel(g_ptr, part_ptr, B, D, S, iters,
                          F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    VEC: tl.constexpr = vec(g_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < B
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    acc = to_acc(tl.zeros([ROWS, BLOCK_D], dtype=tl.float32), F64)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        x = to_acc(tl.load(g_ptr + offs, mask=m, other=0.0), F64)
        acc += x * x
    offs, m = row_ends(s, t, A, E, VEC)
    x = to_acc(tl.load(g_ptr + offs, mask=m, other=0.0), F64)
    tl.store(part_ptr + rows * S + ps, tl.sum(acc, axis=1) + tl.sum(x * x, axis=1), mask=row_ok)


@triton.jit
def _term(sq, c, ONE_SIDED: tl.constexpr, CENTER_ZERO: tl.constexpr):
    if CENTER_ZERO:
        v = sq
    else:
        d = tl.sqrt(sq) - c
        if ONE_SIDED:
            d = tl.where(d < 0, 0.0, d)
        v = d * d
    return v


@triton.jit(do_not_specialize=["c_hi", "c_lo", "w_hi", "w_lo"])
def penalty_finish_kernel(part_ptr, sq_ptr, terms_ptr, out_ptr, B, S,
                          c_hi, c_lo, w_hi, w_lo, bias,
                          ONE_SIDED: tl.constexpr, CENTER_ZERO: tl.constexpr, REDUCE: tl.constexpr,
                          F64: tl.constexpr, ROWS: tl.constexpr, SPLITS: tl.constexpr):
    c = param(c_hi, c_lo, F64)
    acc = to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
    for r0 in range(0, B, ROWS):
        rows = r0 + tl.arange(0, ROWS).to(tl.int64)
        row_ok = rows < B
        sq = to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
        for s0 in range(0, S, SPLITS):
            cols = s0 + tl.arange(0, SPLITS)
            m = row_ok[:, None] & (cols < S)[None, :]
            sq += tl.sum(tl.load(part_ptr + rows[:, None] * S + cols[None, :], mask=m, other=0.0), axis=1)
        tl.store(sq_ptr + rows, sq, mask=row_ok)
        v = _term(sq, c, ONE_SIDED, CENTER_ZERO)
        if REDUCE:
            acc += tl.where(row_ok, v, 0.0)
        else:
            tl.store(terms_ptr + rows, v.to(terms_ptr.dtype.element_ty), mask=row_ok)
    if REDUCE:
        total = param(w_hi, w_lo, F64) * tl.sum(acc, axis=0) + bias
        tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))


@triton.jit(do_not_specialize=["c_hi", "c_lo", "w_hi", "w_lo"])
def penalty_bwd_kernel(g_ptr, sq_ptr, up_ptr, dg_ptr, B, D, S, iters,
                       c_hi, c_lo, w_hi, w_lo,
                       ONE_SIDED: tl.constexpr, CENTER_ZERO: tl.constexpr, ELEMENTWISE_UP: tl.constexpr,
                       F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < B
    sq = tl.load(sq_ptr + rows, mask=row_ok, other=0.0)
    if CENTER_ZERO:
        k = 2.0 + tl.zeros_like(sq)
    else:
        c = param(c_hi, c_lo, F64)
        n = tl.sqrt(sq)
        d = n - c
        if ONE_SIDED:
            d = tl.where(d < 0, 0.0, d)
        k = tl.where(sq == 0, 0.0, 2.0 * d / tl.where(sq == 0, 1.0, n))
    if ELEMENTWISE_UP:
        u = to_acc(tl.load(up_ptr + rows, mask=row_ok, other=0.0), F64)
    else:
        u = to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64)
    coef = (u * k)[:, None]
    VEC: tl.constexpr = vec(g_ptr)
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        x = to_acc(tl.load(g_ptr + offs, mask=m, other=0.0), F64)
        tl.store(dg_ptr + offs, (coef * x).to(dg_ptr.dtype.element_ty), mask=m)
    offs, m = row_ends(s, t, A, E, VEC)
    x = to_acc(tl.load(g_ptr + offs, mask=m, other=0.0), F64)
    tl.store(dg_ptr + offs, (coef * x).to(dg_ptr.dtype.element_ty), mask=m)


# --------------------------------------------------------------------------- launch plans

@dataclass(frozen=True)
class RowPlan:
    block_d: int
    rows: int
    row_programs: int
    splits: int
    iters: int

    @property
    def grid(self):
        return (self.row_programs, self.splits)


def row_plan(B: int, D: int) -> RowPlan:
    """Tiling of a (B, D) gradient; depends on the shape alone (reproducible everywhere)."""
    block_d = next((b for b in BLOCK_DS if b >= D), BLOCK_DS[-1])
    rows = TILE // block_d
    row_programs = max(1, triton.cdiv(B, rows))
    col_blocks = max(1, triton.cdiv(D, block_d))
    want = max(1, min(col_blocks, triton.cdiv(TARGET_PROGRAMS, row_programs)))
    iters = triton.cdiv(col_blocks, want)
    return RowPlan(block_d, rows, row_programs, triton.cdiv(col_blocks, iters), iters)


def specializations():
    """Every ``(name, kernel, signature, constexprs)`` the penalty launchers can produce."""
    f32 = "fp32"
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        for block_d in BLOCK_DS:
            ce = {"F64": f64, "ROWS": TILE // block_d, "BLOCK_D": block_d}
            sig = {"g_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "B": "i32", "D": "i32", "S": "i32", "iters": "i32"}
            yield f"sqnorm_partial[{dt},block_d={block_d}]", sqnorm_partial_kernel, sig, ce
        for one_sided in (0, 1):
            for center_zero in (0, 1):
                if center_zero and one_sided:
                    continue  # the launcher maps c = 0 to the squared norm, one-sided or not
                for reduce_ in (0, 1):
                    sig = {"part_ptr": ptr_type(acc), "sq_ptr": ptr_type(acc), "terms_ptr": ptr_type(dt), "out_ptr": ptr_type(dt),
                           "B": "i32", "S": "i32", "c_hi": "i32", "c_lo": "i32", "w_hi": "i32", "w_lo": "i32", "bias": f32}
                    ce = {"ONE_SIDED": one_sided, "CENTER_ZERO": center_zero, "REDUCE": reduce_, "F64": f64,
                          "ROWS": FINISH_ROWS, "SPLITS": FINISH_SPLITS}
                    yield (f"penalty_finish[{dt},one_sided={one_sided},center0={center_zero},reduce={reduce_}]",
                           penalty_finish_kernel, sig, ce)
                for ew in (0, 1):
                    for block_d in BLOCK_DS:
                        sig = {"g_ptr": ptr_type(dt), "sq_ptr": ptr_type(acc), "up_ptr": ptr_type(dt), "dg_ptr": ptr_type(dt),
                               "B": "i32", "D": "i32", "S": "i32", "iters": "i32",
                               "c_hi": "i32", "c_lo": "i32", "w_hi": "i32", "w_lo": "i32"}
                        ce = {"ONE_SIDED": one_sided, "CENTER_ZERO": center_zero, "ELEMENTWISE_UP": ew,
                              "F64": f64, "ROWS": TILE // block_d, "BLOCK_D": block_d}
                        yield (f"penalty_bwd[{dt},one_sided={one_sided},center0={center_zero},"
                               f"elementwise_up={ew},block_d={block_d}]", penalty_bwd_kernel, sig, ce)
