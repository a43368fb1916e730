"""Fused Triton kernels for the divergences: ``gaussian_kl``, ``kl_div_logits``, ``js_div_logits``.

The math (``fastgan.reference`` is the spec; ``u`` is the upstream gradient, ``w`` the
reduction's weight: 1/B for "mean", else 1; per sample / per row ``u_b`` for "none").

gaussian_kl (``mu``, ``logvar`` viewed as ``(B, D)``, dim 0 the batch)::

    t_b  = Σ_j ½ (mu² + expm1(lv) − lv)          (no cancellation of the 1)
    loss = w · Σ_b t_b   (or t_b per sample)
    ∂/∂mu = mu · u_b · w       ∂/∂lv = ½ expm1(lv) · u_b · w

``expm1`` is Kahan's ``(e^z − 1)·z / log(e^z)`` (exact where ``e^z`` rounds to 1, −1 and
inf at the limits): Triton has no portable ``expm1``.

kl_div_logits / js_div_logits (the distribution dim moved last and made contiguous on
the host, ``movedim(dim, -1)``: a non-contiguous layout costs one copy; rows of length D)::

    per row  m = max x,  ls = log Σ exp(x − m),  lp = (x − m) − ls,  P = exp(lp)   (so for q)
    KL(P‖Q)  = Σ_j P_j (lp_j − lq_j),   terms with P_j = 0 are 0 (0·log 0 = 0)
    ∂KL/∂x_j = P_j ((lp_j − lq_j) − KL)   (0 where P_j = 0)
    ∂KL/∂y_j = Q_j − P_j
    JS       = ½ A + ½ B,  A = KL(P‖M) = Σ P (lp − lm),  B = KL(Q‖M),  M = ½(P + Q)
               lp − lm = log 2 − softplus(lq − lp),  lq − lm = log 2 − softplus(lp − lq)
    ∂JS/∂x_j = ½ P_j ((lp_j − lm_j) − A)      ∂JS/∂y_j = ½ Q_j ((lq_j − lm_j) − B)

The JS gradient: with lp free, ∂A/∂lp_i = P_i(lp_i − lm_i) + P_i − P_i·P_i/(2M_i) and
∂B/∂lp_i = −Q_i·P_i/(2M_i) (∂lm_i/∂lp_i = P_i/(2M_i)); their sum is P_i(lp_i − lm_i) since
P_i + Q_i = 2M_i; through log-softmax, ∂/∂x = g − P·Σ g, which gives the line above
(tests/test_divergence_kernels.py checks it against the reference's autograd at ordinary
points, ±1e4 logits and one-hot rows).  ``lm`` is never formed: ``lp − lm`` from the
stable softplus keeps rows of ±1e4 logits finite and exact.

Kernels (every grid from ``kernels.penalty.row_plan``: ROWS rows × a span of
``iters·BLOCK_D`` columns per program; long rows split across programs, short rows
packed several to a program; no atomics, every sum in a fixed order):

* ``gkl_partial_kernel``: one read of mu and logvar, per (row, split) partial sums;
  ``penalty_finish_kernel`` with ``CENTER_ZERO`` (its term is the sum itself) adds each
  row's partials in order and reduces.  ``gkl_bwd_kernel``: one read of each input, one
  write of each gradient asked for.
* ``dist_stats_kernel`` (only when a row is split, S > 1): per (row, split) the online
  max and sum of exponentials of x and y.  ``dist_fwd_kernel``: the row statistics
  (combined from the S partials in a fixed order, or computed in the same program when
  S = 1), stored once per row (m_p, ls_p, m_q, ls_q) for the backward, and the
  divergence partial(s) of its span.  ``dist_finish_kernel``: per row the sum of the
  partials (A, B; stored for the backward), the row's divergence, and the reduction.
* ``dist_bwd_kernel``: one read of x and y, one write of each gradient asked for, from
  the saved row statistics (no recomputed row reduction).

Half types compute in float32, float64 in float64 (``F64``).
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

import math

import triton
import triton.language as tl

from .common import (FLOAT_DTYPES, NUM_WARPS, W_PARAMS, log1p, param, ptr_type, relu, row_body,  # noqa: F401
                     row_bounds, row_ends, split, to_acc, vec)
from .penalty import BLOCK_DS, FINISH_ROWS, FINISH_SPLITS, TILE, penalty_finish_kernel, row_plan  # noqa: F401

LOG2: tl.constexpr = tl.constexpr(math.log(2.0))
STATS = 4          # saved per row: m_p, ls_p, m_q, ls_q
PARTS = 2          # divergence components per row: KL (and 0), or JS's A and B


# --------------------------------------------------------------------------- element formulas

@triton.jit
def _expm1(z):
    # Kahan's expm1 from exp and log: (u − 1)·z / log u, z itself where u rounds to 1
    u = tl.exp(z)
    d = u - 1.0
    one = u == 1.0
    r = tl.where(one, z, d * z / tl.log(tl.where(one, 2.0, u)))
    r = tl.where(d == -1.0, -1.0, r)
    return tl.where(u == float("inf"), u, r)


@triton.jit
def _gkl_term(mu, lv):
    return 0.5 * (mu * mu + _expm1(lv) - lv)


@triton.jit
def _softplus(z):
    return relu(z) + log1p(tl.exp(-tl.abs(z)))


@triton.jit
def _online(m, s, x):
    # running (max, Σ exp(x − max)) per row of the tile x (masked lanes −inf); a row
    # with no finite value yet keeps max −inf and sum 0
    m_new = tl.maximum(m, tl.max(x, axis=1))
    ref = tl.where(m_new == float("-inf"), 0.0, m_new)
    s = s * tl.exp(m - ref) + tl.sum(tl.exp(x - ref[:, None]), axis=1)
    return m_new, s


@triton.jit
def _logs(x, y, mp, lsp, mq, lsq):
    lp = (x - mp[:, None]) - lsp[:, None]
    lq = (y - mq[:, None]) - lsq[:, None]
    return lp, lq


@triton.jit
def _xterm(p, a):
    # p · a with 0 · log 0 = 0: zero where p = 0 (whatever a is)
    return tl.where(p == 0, 0.0, p * a)


# --------------------------------------------------------------------------- gaussian_kl

@triton.jit
def _gkl_tile(mu_ptr, lv_ptr, offs, m, F64: tl.constexpr):
    mu = to_acc(tl.load(mu_ptr + offs, mask=m, other=0.0), F64)
    lv = to_acc(tl.load(lv_ptr + offs, mask=m, other=0.0), F64)
    return _gkl_term(mu, lv)  # 0 at masked lanes


@triton.jit
def gkl_partial_kernel(mu_ptr, lv_ptr, part_ptr, B, D, S, iters,
                       F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    VEC: tl.constexpr = vec(mu_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < B
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    acc = to_acc(tl.zeros([ROWS, BLOCK_D], dtype=tl.float32), F64)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        acc += _gkl_tile(mu_ptr, lv_ptr, offs, m, F64)
    offs, m = row_ends(s, t, A, E, VEC)
    total = tl.sum(acc, axis=1) + tl.sum(_gkl_tile(mu_ptr, lv_ptr, offs, m, F64), axis=1)
    tl.store(part_ptr + rows * S + ps, total, mask=row_ok)


@triton.jit
def _gkl_grad_tile(mu_ptr, lv_ptr, gmu_ptr, glv_ptr, offs, m, u, NEED_MU: tl.constexpr, NEED_LV: tl.constexpr,
                   F64: tl.constexpr):
    if NEED_MU:
        mu = to_acc(tl.load(mu_ptr + offs, mask=m, other=0.0), F64)
        tl.store(gmu_ptr + offs, (u * mu).to(gmu_ptr.dtype.element_ty), mask=m)
    if NEED_LV:
        lv = to_acc(tl.load(lv_ptr + offs, mask=m, other=0.0), F64)
        tl.store(glv_ptr + offs, (u * (0.5 * _expm1(lv))).to(glv_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=W_PARAMS)
def gkl_bwd_kernel(mu_ptr, lv_ptr, up_ptr, gmu_ptr, glv_ptr, B, D, iters, w_hi, w_lo,
                   NEED_MU: tl.constexpr, NEED_LV: tl.constexpr, ELEMENTWISE_UP: tl.constexpr,
                   F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    VEC: tl.constexpr = vec(mu_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < B
    if ELEMENTWISE_UP:
        u = to_acc(tl.load(up_ptr + rows, mask=row_ok, other=0.0), F64)
    else:
        u = to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64) + to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
    u = u[:, None]
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        _gkl_grad_tile(mu_ptr, lv_ptr, gmu_ptr, glv_ptr, offs, m, u, NEED_MU, NEED_LV, F64)
    offs, m = row_ends(s, t, A, E, VEC)
    _gkl_grad_tile(mu_ptr, lv_ptr, gmu_ptr, glv_ptr, offs, m, u, NEED_MU, NEED_LV, F64)


# --------------------------------------------------------------------------- kl / js over rows

@triton.jit
def _span_stats(x_ptr, y_ptr, s, t, A, E, iters, F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
                VEC: tl.constexpr):
    # running (max, Σ exp) of x and y over each row's span: its body tiles, then its ends
    zero = to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
    mp = zero + float("-inf")
    mq = zero + float("-inf")
    sp = zero
    sq = zero
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        mp, sp = _online(mp, sp, to_acc(tl.load(x_ptr + offs, mask=m, other=float("-inf")), F64))
        mq, sq = _online(mq, sq, to_acc(tl.load(y_ptr + offs, mask=m, other=float("-inf")), F64))
    offs, m = row_ends(s, t, A, E, VEC)
    mp, sp = _online(mp, sp, to_acc(tl.load(x_ptr + offs, mask=m, other=float("-inf")), F64))
    mq, sq = _online(mq, sq, to_acc(tl.load(y_ptr + offs, mask=m, other=float("-inf")), F64))
    return mp, sp, mq, sq


@triton.jit
def dist_stats_kernel(x_ptr, y_ptr, part_ptr, R, D, S, iters,
                      F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    """Per (row, split): the running max and Σ exp(· − max) of x and y over its span."""
    VEC: tl.constexpr = vec(x_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < R
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    mp, sp, mq, sq = _span_stats(x_ptr, y_ptr, s, t, A, E, iters, F64, ROWS, BLOCK_D, VEC)
    base = part_ptr + (rows * S + ps) * 4
    tl.store(base + 0, mp, mask=row_ok)
    tl.store(base + 1, sp, mask=row_ok)
    tl.store(base + 2, mq, mask=row_ok)
    tl.store(base + 3, sq, mask=row_ok)


@triton.jit
def _combine(part_ptr, rows, row_ok, S, k, F64: tl.constexpr, ROWS: tl.constexpr, SPLITS: tl.constexpr):
    # (max, sum) of one input over a row's S partials (fields k, k + 1), in a fixed order.
    # The tiles are combined element-wise and reduced once after each loop: a tl.max / tl.sum
    # inside the loop crashes the GPU compile of triton 3.1-3.6 (OptimizeThreadLocality)
    m2 = to_acc(tl.zeros([ROWS, SPLITS], dtype=tl.float32), F64) + float("-inf")
    for s0 in range(0, S, SPLITS):
        cols = s0 + tl.arange(0, SPLITS)
        msk = row_ok[:, None] & (cols < S)[None, :]
        mk = tl.load(part_ptr + (rows[:, None] * S + cols[None, :]) * 4 + k, mask=msk, other=float("-inf"))
        m2 = tl.maximum(m2, mk)
    m = tl.max(m2, axis=1)
    ref = tl.where(m == float("-inf"), 0.0, m)
    s2 = to_acc(tl.zeros([ROWS, SPLITS], dtype=tl.float32), F64)
    for s0 in range(0, S, SPLITS):
        cols = s0 + tl.arange(0, SPLITS)
        msk = row_ok[:, None] & (cols < S)[None, :]
        at = part_ptr + (rows[:, None] * S + cols[None, :]) * 4 + k
        mk = tl.load(at, mask=msk, other=float("-inf"))
        sk = tl.load(at + 1, mask=msk, other=0.0)
        s2 += tl.where(sk == 0, 0.0, sk * tl.exp(mk - ref[:, None]))
    s = tl.sum(s2, axis=1)
    return m, s


@triton.jit
def _div_tile(x_ptr, y_ptr, offs, m, mp, lsp, mq, lsq, JS: tl.constexpr, F64: tl.constexpr):
    # the divergence terms of one tile: (KL, 0) or JS's (A, B); masked lanes add 0 (in a row
    # with no elements lp is nan there, not −inf)
    x = to_acc(tl.load(x_ptr + offs, mask=m, other=float("-inf")), F64)
    y = to_acc(tl.load(y_ptr + offs, mask=m, other=float("-inf")), F64)
    lp, lq = _logs(x, y, mp, lsp, mq, lsq)
    p = tl.exp(lp)
    if JS:
        d = lp - lq
        a = tl.where(m, _xterm(p, LOG2 - _softplus(-d)), 0.0)
        b = tl.where(m, _xterm(tl.exp(lq), LOG2 - _softplus(d)), 0.0)
    else:
        a = tl.where(m, _xterm(p, lp - lq), 0.0)
        b = tl.zeros_like(a)
    return a, b


@triton.jit
def dist_fwd_kernel(x_ptr, y_ptr, part_ptr, stat_ptr, div_ptr, R, D, S, iters,
                    JS: tl.constexpr, SPLIT: tl.constexpr, F64: tl.constexpr, ROWS: tl.constexpr,
                    BLOCK_D: tl.constexpr, SPLITS: tl.constexpr):
    """The row statistics (from dist_stats' partials with SPLIT, else over the whole row
    here: S = 1), stored by the row's first program; this span's divergence partials
    (KL, 0) or (A, B) into div_ptr[(row·S + split)·2 + ·]."""
    VEC: tl.constexpr = vec(x_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < R
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    if SPLIT:
        mp, sp = _combine(part_ptr, rows, row_ok, S, 0, F64, ROWS, SPLITS)
        mq, sq = _combine(part_ptr, rows, row_ok, S, 2, F64, ROWS, SPLITS)
    else:
        mp, sp, mq, sq = _span_stats(x_ptr, y_ptr, s, t, A, E, iters, F64, ROWS, BLOCK_D, VEC)
    lsp = tl.log(sp)
    lsq = tl.log(sq)
    first = row_ok & ((rows * 0 + ps) == 0)
    tl.store(stat_ptr + rows * 4 + 0, mp, mask=first)
    tl.store(stat_ptr + rows * 4 + 1, lsp, mask=first)
    tl.store(stat_ptr + rows * 4 + 2, mq, mask=first)
    tl.store(stat_ptr + rows * 4 + 3, lsq, mask=first)
    acc_a = to_acc(tl.zeros([ROWS, BLOCK_D], dtype=tl.float32), F64)
    acc_b = to_acc(tl.zeros([ROWS, BLOCK_D], dtype=tl.float32), F64)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        a, b = _div_tile(x_ptr, y_ptr, offs, m, mp, lsp, mq, lsq, JS, F64)
        acc_a += a
        if JS:
            acc_b += b
    offs, m = row_ends(s, t, A, E, VEC)
    a, b = _div_tile(x_ptr, y_ptr, offs, m, mp, lsp, mq, lsq, JS, F64)
    base = div_ptr + (rows * S + ps) * 2
    tl.store(base, tl.sum(acc_a, axis=1) + tl.sum(a, axis=1), mask=row_ok)
    tl.store(base + 1, tl.sum(acc_b, axis=1) + tl.sum(b, axis=1), mask=row_ok)


@triton.jit(do_not_specialize=W_PARAMS)
def dist_finish_kernel(div_ptr, rowdiv_ptr, terms_ptr, out_ptr, R, S, w_hi, w_lo, bias,
                       JS: tl.constexpr, REDUCE: tl.constexpr, F64: tl.constexpr,
                       ROWS: tl.constexpr, SPLITS: tl.constexpr):
    """One program: each row's partials summed in order (stored: the backward's KL or
    A, B), the row's divergence, stored ("none") or reduced (w · Σ + bias)."""
    total = to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
    for r0 in range(0, R, ROWS):
        rows = r0 + tl.arange(0, ROWS).to(tl.int64)
        row_ok = rows < R
        # the tiles are summed element-wise and reduced once after the loop: a tl.sum inside
        # this inner loop crashes the GPU compile of triton 3.1-3.6 (OptimizeThreadLocality)
        a2 = to_acc(tl.zeros([ROWS, SPLITS], dtype=tl.float32), F64)
        b2 = to_acc(tl.zeros([ROWS, SPLITS], dtype=tl.float32), F64)
        for s0 in range(0, S, SPLITS):
            cols = s0 + tl.arange(0, SPLITS)
            msk = row_ok[:, None] & (cols < S)[None, :]
            at = div_ptr + (rows[:, None] * S + cols[None, :]) * 2
            a2 += tl.load(at, mask=msk, other=0.0)
            b2 += tl.load(at + 1, mask=msk, other=0.0)
        a = tl.sum(a2, axis=1)
        b = tl.sum(b2, axis=1)
        tl.store(rowdiv_ptr + rows * 2, a, mask=row_ok)
        tl.store(rowdiv_ptr + rows * 2 + 1, b, mask=row_ok)
        if JS:
            v = 0.5 * (a + b)
        else:
            v = a
        if REDUCE:
            total += tl.where(row_ok, v, 0.0)
        else:
            tl.store(terms_ptr + rows, v.to(terms_ptr.dtype.element_ty), mask=row_ok)
    if REDUCE:
        res = param(w_hi, w_lo, F64) * tl.sum(total, axis=0) + bias
        tl.store(out_ptr, res.to(out_ptr.dtype.element_ty))


@triton.jit
def _dist_grad_tile(x_ptr, y_ptr, gx_ptr, gy_ptr, offs, m, mp, lsp, mq, lsq, a, b, u, JS: tl.constexpr,
                    NEED_P: tl.constexpr, NEED_Q: tl.constexpr, F64: tl.constexpr):
    x = to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64)
    y = to_acc(tl.load(y_ptr + offs, mask=m, other=0.0), F64)
    lp, lq = _logs(x, y, mp, lsp, mq, lsq)
    p = tl.exp(lp)
    q = tl.exp(lq)
    if JS:
        d = lp - lq
        gx = _xterm(p, (LOG2 - _softplus(-d)) - a)
        gy = _xterm(q, (LOG2 - _softplus(d)) - b)
    else:
        gx = _xterm(p, (lp - lq) - a)
        gy = q - p
    if NEED_P:
        tl.store(gx_ptr + offs, (u * gx).to(gx_ptr.dtype.element_ty), mask=m)
    if NEED_Q:
        tl.store(gy_ptr + offs, (u * gy).to(gy_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=W_PARAMS)
def dist_bwd_kernel(x_ptr, y_ptr, stat_ptr, rowdiv_ptr, up_ptr, gx_ptr, gy_ptr, R, D, iters, w_hi, w_lo,
                    JS: tl.constexpr, NEED_P: tl.constexpr, NEED_Q: tl.constexpr, ELEMENTWISE_UP: tl.constexpr,
                    F64: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    """KL: ∂x = u·P((lp − lq) − KL), ∂y = u·(Q − P); JS: ∂x = ½u·P((lp − lm) − A),
    ∂y = ½u·Q((lq − lm) − B); from the saved row statistics, P = 0 terms 0."""
    VEC: tl.constexpr = vec(x_ptr)
    pr = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1).to(tl.int64)
    rows = pr * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_ok = rows < R
    mp = tl.load(stat_ptr + rows * 4 + 0, mask=row_ok, other=0.0)
    lsp = tl.load(stat_ptr + rows * 4 + 1, mask=row_ok, other=0.0)
    mq = tl.load(stat_ptr + rows * 4 + 2, mask=row_ok, other=0.0)
    lsq = tl.load(stat_ptr + rows * 4 + 3, mask=row_ok, other=0.0)
    a = tl.load(rowdiv_ptr + rows * 2, mask=row_ok, other=0.0)[:, None]
    b = tl.load(rowdiv_ptr + rows * 2 + 1, mask=row_ok, other=0.0)[:, None]
    if ELEMENTWISE_UP:
        u = to_acc(tl.load(up_ptr + rows, mask=row_ok, other=0.0), F64)
    else:
        u = to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64) + to_acc(tl.zeros([ROWS], dtype=tl.float32), F64)
    if JS:
        u = 0.5 * u
    u = u[:, None]
    col0 = ps * iters * BLOCK_D
    s, t, A, E = row_bounds(rows, row_ok, D, col0, col0 + iters * BLOCK_D, VEC)
    for i in range(0, iters):
        offs, m = row_body(A, E, i, BLOCK_D)
        _dist_grad_tile(x_ptr, y_ptr, gx_ptr, gy_ptr, offs, m, mp, lsp, mq, lsq, a, b, u, JS, NEED_P, NEED_Q, F64)
    offs, m = row_ends(s, t, A, E, VEC)
    _dist_grad_tile(x_ptr, y_ptr, gx_ptr, gy_ptr, offs, m, mp, lsp, mq, lsq, a, b, u, JS, NEED_P, NEED_Q, F64)


# --------------------------------------------------------------------------- specialisations

def specializations():
    """Every ``(name, kernel, signature, constexprs)`` the divergence launchers can produce
    (``penalty_finish`` with ``CENTER_ZERO`` is listed by ``kernels.penalty``)."""
    i32, f32 = "i32", "fp32"
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        for block_d in BLOCK_DS:
            rows = TILE // block_d
            ce = {"F64": f64, "ROWS": rows, "BLOCK_D": block_d}
            sig = {"mu_ptr": ptr_type(dt), "lv_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "B": i32, "D": i32, "S": i32,
                   "iters": i32}
            yield f"gkl_partial[{dt},block_d={block_d}]", gkl_partial_kernel, sig, ce
            for need in ((1, 1), (1, 0), (0, 1)):
                for ew in (0, 1):
                    sig = {"mu_ptr": ptr_type(dt), "lv_ptr": ptr_type(dt), "up_ptr": ptr_type(dt), "gmu_ptr": ptr_type(dt),
                           "glv_ptr": ptr_type(dt), "B": i32, "D": i32, "iters": i32, "w_hi": i32, "w_lo": i32}
                    ce2 = {"NEED_MU": need[0], "NEED_LV": need[1], "ELEMENTWISE_UP": ew, **ce}
                    yield (f"gkl_bwd[{dt},need={need[0]}{need[1]},elementwise_up={ew},block_d={block_d}]",
                           gkl_bwd_kernel, sig, ce2)
            sig = {"x_ptr": ptr_type(dt), "y_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "R": i32, "D": i32, "S": i32,
                   "iters": i32}
            yield f"dist_stats[{dt},block_d={block_d}]", dist_stats_kernel, sig, ce
            for js in (0, 1):
                for split_ in (0, 1):
                    sig = {"x_ptr": ptr_type(dt), "y_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "stat_ptr": ptr_type(acc),
                           "div_ptr": ptr_type(acc), "R": i32, "D": i32, "S": i32, "iters": i32}
                    ce2 = {"JS": js, "SPLIT": split_, **ce, "SPLITS": FINISH_SPLITS}
                    yield f"dist_fwd[{dt},js={js},split={split_},block_d={block_d}]", dist_fwd_kernel, sig, ce2
                for need in ((1, 1), (1, 0), (0, 1)):
                    for ew in (0, 1):
                        sig = {"x_ptr": ptr_type(dt), "y_ptr": ptr_type(dt), "stat_ptr": ptr_type(acc), "rowdiv_ptr": ptr_type(acc),
                               "up_ptr": ptr_type(dt), "gx_ptr": ptr_type(dt), "gy_ptr": ptr_type(dt), "R": i32, "D": i32,
                               "iters": i32, "w_hi": i32, "w_lo": i32}
                        ce2 = {"JS": js, "NEED_P": need[0], "NEED_Q": need[1], "ELEMENTWISE_UP": ew, **ce}
                        yield (f"dist_bwd[{dt},js={js},need={need[0]}{need[1]},elementwise_up={ew},"
                               f"block_d={block_d}]", dist_bwd_kernel, sig, ce2)
        for js in (0, 1):
            for reduce_ in (0, 1):
                sig = {"div_ptr": ptr_type(acc), "rowdiv_ptr": ptr_type(acc), "terms_ptr": ptr_type(dt), "out_ptr": ptr_type(dt),
                       "R": i32, "S": i32, "w_hi": i32, "w_lo": i32, "bias": f32}
                ce = {"JS": js, "REDUCE": reduce_, "F64": f64, "ROWS": FINISH_ROWS, "SPLITS": FINISH_SPLITS}
                yield f"dist_finish[{dt},js={js},reduce={reduce_}]", dist_finish_kernel, sig, ce
