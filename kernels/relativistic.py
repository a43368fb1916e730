"""Fused Triton kernels for the relativistic losses, RaGAN and RpGAN.

The per-element formulas are those of ``kernels/common.py`` (``bce``, ``dbce``);
this module only adds the loops that feed them the relativistic logits.

RaGAN (relativistic average GAN) on real scores ``x`` (``n_r`` of them) and fake
scores ``y`` (``n_f``), labels ``(t_r, t_f)`` = (1, 0) for D and (0, 1) for G,
reduction weights ``w_r, w_f`` (1/n for "mean", 1 for "sum")::

    x̄ = Σx / n_r,   ȳ = Σy / n_f,   u_i = x_i − ȳ,   v_j = y_j − x̄
    L = w_r Σ_i BCE(u_i, t_r) + w_f Σ_j BCE(v_j, t_f)

With ``a_i = σ(u_i) − t_r`` and ``b_j = σ(v_j) − t_f`` (``dbce``), and since
``∂u_i/∂x_k = δ_ik``, ``∂u_i/∂y_k = −1/n_f``, ``∂v_j/∂y_k = δ_jk``, ``∂v_j/∂x_k = −1/n_r``::

    ∂L/∂x_k = w_r a_k − (w_f / n_r) Σ_j b_j
    ∂L/∂y_k = w_f b_k − (w_r / n_f) Σ_i a_i

times the upstream scalar.  With reduction "none" the outputs are the two term
tensors and the upstream gradients ``g_r``, ``g_f`` are element-wise::

    ∂/∂x_k = g_r,k a_k − (1/n_r) Σ_j g_f,j b_j,   ∂/∂y_k = g_f,k b_k − (1/n_f) Σ_i g_r,i a_i

The launch sequence (no host sync: every scalar stays on the device):

1. ``side_sums_kernel``: Σx and Σy in one launch over both tensors (per-program
   partials), finished by ``sum_rows_kernel`` in a fixed order above one program.
2. ``ragan_kernel``: the BCE terms of the shifted scores, the means read from the
   device.  Reduced ("mean"/"sum"): the loss partials and, in the same pass,
   ``Σa`` and ``Σb`` (saved for the backward, two scalars); "none": the terms.
3. ``sum_rows_kernel`` finishes the loss, ``Σa`` and ``Σb`` (above one program).

The backward (``ragan_bwd_kernel``) is then one element-wise pass over both
tensors.  With "none" it needs ``Σ g_f b`` and ``Σ g_r a``, which depend on the
upstream gradients: one reduction launch first (``ragan_kernel`` in its DOT mode).

RpGAN (relativistic pairing GAN) on same-shaped ``x``, ``y``: ``s = σ_D·(x − y)``
with ``σ_D = +1`` for D and ``−1`` for G, term ``BCE(s, 1) = softplus(−s)``
(``softplus(y − x)`` for D, ``softplus(x − y)`` for G), and
``∂/∂x = σ_D·(σ(s) − 1)·w·up = −∂/∂y``.  The forward reads ``x`` and ``y`` once in
one pass (reduced as in ``pair_fwd``), the backward writes both gradients in one pass.

As in ``kernels/losses.py``: each side tiled from its own start, full tiles
unmasked and the last tile of a side masked; int64 offsets; half types computed
in float32, float64 in float64; partial sums combined in a fixed order, no
atomics, so results are bit-identical run after run.
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

import triton
import triton.language as tl

from .common import (FLOAT_DTYPES, NUM_WARPS, bce, block_end, dbce, param, ptr_type, side_blocks,  # noqa: F401
                     side_tile, split, to_acc)
from .losses import BLOCK, PARTIALS_BLOCK, elementwise_grid, reduce_plan, sum_partials_kernel  # noqa: F401

# ragan_kernel's modes: ints for the launchers, constexprs for the kernels
MODE_TERMS, MODE_LOSS, MODE_DOT = 0, 1, 2
TERMS: tl.constexpr = tl.constexpr(MODE_TERMS)  # reduction "none": store the terms
LOSS: tl.constexpr = tl.constexpr(MODE_LOSS)    # reduced: loss partial, Σa and Σb
DOT: tl.constexpr = tl.constexpr(MODE_DOT)      # backward of "none": Σ g_r·a and Σ g_f·b

RA_PARAMS = ["tr_hi", "tr_lo", "wr_hi", "wr_lo", "tf_hi", "tf_lo", "wf_hi", "wf_lo"]
RP_PARAMS = ["w_hi", "w_lo"]


# --------------------------------------------------------------------------- shared pieces

@triton.jit
def _means(sums_ptr, n_real, n_fake, F64: tl.constexpr):
    # (x̄, ȳ) from the device sums (a mean over nothing is nan, as torch's)
    mx = to_acc(tl.load(sums_ptr), F64) / n_real
    my = to_acc(tl.load(sums_ptr + 1), F64) / n_fake
    return mx, my


@triton.jit
def sum_rows_kernel(part_ptr, out_ptr, rows_ptr, n, bias, BLOCK: tl.constexpr):
    """Program k sums row k of ``part`` (``n`` partials per row) in a fixed order
    (``sum_partials``): row 0 into ``out_ptr[0]`` (+ bias, in its dtype), row k ≥ 1
    into ``rows_ptr[k − 1]``."""
    k = tl.program_id(0)
    if k == 0:
        sum_partials_kernel(part_ptr, out_ptr, n, bias, BLOCK)
    else:
        sum_partials_kernel(part_ptr + k * n, rows_ptr + (k - 1), n, 0.0, BLOCK)


# --------------------------------------------------------------------------- RaGAN

@triton.jit
def side_sums_kernel(real_ptr, fake_ptr, part_ptr, n_real, n_fake, iters, stride,
                     F64: tl.constexpr, BLOCK: tl.constexpr):
    """Stage 1: program p writes Σ of its real tiles to ``part[p]`` and Σ of its fake
    tiles to ``part[stride + p]`` (one program: ``part`` is the sums, stride 1)."""
    pid = tl.program_id(0).to(tl.int64)
    acc_r = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    acc_f = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    nb_r, nb = side_blocks(n_real, n_fake, BLOCK)
    b0 = pid * iters
    for b in range(b0, block_end(pid, b0 + iters, nb)):
        is_r, start, offs, n = side_tile(b, nb_r, n_real, n_fake, BLOCK)
        x_ptr = tl.where(is_r, real_ptr, fake_ptr)
        if start + BLOCK <= n:
            v = to_acc(tl.load(x_ptr + offs), F64)
        else:
            v = to_acc(tl.load(x_ptr + offs, mask=offs < n, other=0.0), F64)
        acc_r += tl.where(is_r, v, 0.0)
        acc_f += tl.where(is_r, 0.0, v)
    tl.store(part_ptr + pid, tl.sum(acc_r, axis=0))
    tl.store(part_ptr + stride + pid, tl.sum(acc_f, axis=0))


@triton.jit(do_not_specialize=RA_PARAMS)
def ragan_kernel(real_ptr, fake_ptr, sums_ptr, up_r_ptr, up_f_ptr, out_r_ptr, out_f_ptr, ab_ptr, part_ptr,
                 n_real, n_fake, iters, stride,
                 tr_hi, tr_lo, wr_hi, wr_lo, tf_hi, tf_lo, wf_hi, wf_lo, bias,
                 MODE: tl.constexpr, FINAL: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """Stage 2 on ``u = x − ȳ`` (real tiles) and ``v = y − x̄`` (fake tiles).

    MODE TERMS: store ``BCE(u, t_r)``, ``BCE(v, t_f)`` to out_r / out_f.
    MODE LOSS: program p writes ``w_r Σ BCE(u) + w_f Σ BCE(v)``, ``Σa``, ``Σb`` to
    ``part[p]``, ``part[stride + p]``, ``part[2·stride + p]``; with FINAL (one
    program) the loss (+ bias) to ``out_r[0]`` in its dtype and Σa, Σb to ``ab[0:2]``.
    MODE DOT: ``Σ g_r·a``, ``Σ g_f·b`` (g the upstream tensors up_r / up_f) to
    ``part[p]``, ``part[stride + p]``, or with FINAL to ``ab[0:2]``.
    Tiles as in ``pair_fwd``."""
    pid = tl.program_id(0).to(tl.int64)
    t_r = param(tr_hi, tr_lo, F64)
    t_f = param(tf_hi, tf_lo, F64)
    mx, my = _means(sums_ptr, n_real, n_fake, F64)
    acc_r = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    acc_f = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    acc_a = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    acc_b = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    nb_r, nb = side_blocks(n_real, n_fake, BLOCK)
    b0 = pid * iters
    for b in range(b0, block_end(pid, b0 + iters, nb)):
        is_r, start, offs, n = side_tile(b, nb_r, n_real, n_fake, BLOCK)
        x_ptr = tl.where(is_r, real_ptr, fake_ptr)
        o_ptr = tl.where(is_r, out_r_ptr, out_f_ptr)
        u_ptr = tl.where(is_r, up_r_ptr, up_f_ptr)
        shift = tl.where(is_r, my, mx)
        t = tl.where(is_r, t_r, t_f)
        if start + BLOCK <= n:
            s = to_acc(tl.load(x_ptr + offs), F64) - shift
            if MODE == TERMS:
                tl.store(o_ptr + offs, bce(s, t).to(out_r_ptr.dtype.element_ty))
            elif MODE == LOSS:
                v = bce(s, t)
                d = dbce(s, t)
            else:
                d = to_acc(tl.load(u_ptr + offs), F64) * dbce(s, t)
        else:
            m = offs < n
            s = to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64) - shift
            if MODE == TERMS:
                tl.store(o_ptr + offs, bce(s, t).to(out_r_ptr.dtype.element_ty), mask=m)
            elif MODE == LOSS:
                v = tl.where(m, bce(s, t), 0.0)
                d = tl.where(m, dbce(s, t), 0.0)
            else:
                d = tl.where(m, to_acc(tl.load(u_ptr + offs, mask=m, other=0.0), F64) * dbce(s, t), 0.0)
        if MODE == LOSS:
            acc_r += tl.where(is_r, v, 0.0)
            acc_f += tl.where(is_r, 0.0, v)
        if MODE != TERMS:
            acc_a += tl.where(is_r, d, 0.0)
            acc_b += tl.where(is_r, 0.0, d)
    if MODE != TERMS:
        sa = tl.sum(acc_a, axis=0)
        sb = tl.sum(acc_b, axis=0)
        if MODE == LOSS:
            loss = (param(wr_hi, wr_lo, F64) * tl.sum(acc_r, axis=0)
                    + param(wf_hi, wf_lo, F64) * tl.sum(acc_f, axis=0))
            if FINAL:
                tl.store(out_r_ptr, (loss + bias).to(out_r_ptr.dtype.element_ty))
                tl.store(ab_ptr, sa)
                tl.store(ab_ptr + 1, sb)
            else:
                tl.store(part_ptr + pid, loss)
                tl.store(part_ptr + stride + pid, sa)
                tl.store(part_ptr + 2 * stride + pid, sb)
        else:
            if FINAL:
                tl.store(ab_ptr, sa)
                tl.store(ab_ptr + 1, sb)
            else:
                tl.store(part_ptr + pid, sa)
                tl.store(part_ptr + stride + pid, sb)


@triton.jit(do_not_specialize=RA_PARAMS)
def ragan_bwd_kernel(real_ptr, fake_ptr, sums_ptr, ab_ptr, up_ptr, up_r_ptr, up_f_ptr, g_r_ptr, g_f_ptr,
                     n_real, n_fake, b_first, b_stop,
                     tr_hi, tr_lo, wr_hi, wr_lo, tf_hi, tf_lo, wf_hi, wf_lo,
                     ELEMENTWISE_UP: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """``∂/∂x_k = c_r·a_k − k_r``, ``∂/∂y_k = c_f·b_k − k_f`` in one element-wise pass.

    Reduced: ``c_r = up·w_r``, ``k_r = up·w_f·Σb / n_r`` (``ab = (Σa, Σb)`` from the
    forward), symmetrically for the fake side.  ELEMENTWISE_UP ("none"): ``c = g``
    element-wise and ``ab = (Σ g_r·a, Σ g_f·b)`` from the DOT pass.  Program p takes
    tile ``b_first + p`` (the last program the rest up to ``b_stop``): the tiles of
    the sides whose gradient is needed."""
    pid = tl.program_id(0).to(tl.int64)
    t_r = param(tr_hi, tr_lo, F64)
    t_f = param(tf_hi, tf_lo, F64)
    mx, my = _means(sums_ptr, n_real, n_fake, F64)
    sa = to_acc(tl.load(ab_ptr), F64)
    sb = to_acc(tl.load(ab_ptr + 1), F64)
    if ELEMENTWISE_UP:
        c_r = to_acc(1.0, F64)
        c_f = to_acc(1.0, F64)
        k_r = sb / n_real
        k_f = sa / n_fake
    else:
        u = to_acc(tl.load(up_ptr), F64)
        c_r = u * param(wr_hi, wr_lo, F64)
        c_f = u * param(wf_hi, wf_lo, F64)
        k_r = c_f * sb / n_real
        k_f = c_r * sa / n_fake
    nb_r, nb = side_blocks(n_real, n_fake, BLOCK)
    b0 = b_first + pid
    last = tl.where(pid == tl.num_programs(0) - 1, b_stop, tl.minimum(b0 + 1, b_stop))
    for b in range(b0, last):
        is_r, start, offs, n = side_tile(b, nb_r, n_real, n_fake, BLOCK)
        x_ptr = tl.where(is_r, real_ptr, fake_ptr)
        g_ptr = tl.where(is_r, g_r_ptr, g_f_ptr)
        u_ptr = tl.where(is_r, up_r_ptr, up_f_ptr)
        shift = tl.where(is_r, my, mx)
        t = tl.where(is_r, t_r, t_f)
        c = tl.where(is_r, c_r, c_f)
        k = tl.where(is_r, k_r, k_f)
        if start + BLOCK <= n:
            d = dbce(to_acc(tl.load(x_ptr + offs), F64) - shift, t)
            if ELEMENTWISE_UP:
                g = to_acc(tl.load(u_ptr + offs), F64) * d - k
            else:
                g = c * d - k
            tl.store(g_ptr + offs, g.to(g_r_ptr.dtype.element_ty))
        else:
            m = offs < n
            d = dbce(to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64) - shift, t)
            if ELEMENTWISE_UP:
                g = to_acc(tl.load(u_ptr + offs, mask=m, other=0.0), F64) * d - k
            else:
                g = c * d - k
            tl.store(g_ptr + offs, g.to(g_r_ptr.dtype.element_ty), mask=m)


# --------------------------------------------------------------------------- RpGAN

@triton.jit
def _paired(x_ptr, y_ptr, offs, m, GEN: tl.constexpr, F64: tl.constexpr, MASKED: tl.constexpr):
    # s = σ_D·(x − y): x − y for D, y − x for G
    if MASKED:
        x = to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64)
        y = to_acc(tl.load(y_ptr + offs, mask=m, other=0.0), F64)
    else:
        x = to_acc(tl.load(x_ptr + offs), F64)
        y = to_acc(tl.load(y_ptr + offs), F64)
    if GEN:
        s = y - x
    else:
        s = x - y
    return s


@triton.jit(do_not_specialize=RP_PARAMS)
def rpgan_fwd_kernel(real_ptr, fake_ptr, out_ptr, n, iters, w_hi, w_lo, bias,
                     GEN: tl.constexpr, REDUCE: tl.constexpr, FINAL: tl.constexpr, F64: tl.constexpr,
                     BLOCK: tl.constexpr):
    """``softplus(−s) = BCE(s, 1)`` per pair, ``s = σ_D·(x − y)``; REDUCE / FINAL as in
    ``pair_fwd`` (program p: tiles ``[p·iters, (p+1)·iters)``).  Full tiles unmasked."""
    pid = tl.program_id(0).to(tl.int64)
    acc = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    base = pid * iters * BLOCK
    for i in range(0, iters):
        start = base + i * BLOCK
        offs = start + tl.arange(0, BLOCK)
        if start + BLOCK <= n:
            v = bce(_paired(real_ptr, fake_ptr, offs, offs, GEN, F64, False), 1.0)
            if not REDUCE:
                tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty))
        else:
            m = offs < n
            v = bce(_paired(real_ptr, fake_ptr, offs, m, GEN, F64, True), 1.0)
            if not REDUCE:
                tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=m)
            v = tl.where(m, v, 0.0)
        if REDUCE:
            acc += v
    if REDUCE:
        partial = param(w_hi, w_lo, F64) * tl.sum(acc, axis=0)
        if FINAL:
            tl.store(out_ptr, (partial + bias).to(out_ptr.dtype.element_ty))
        else:
            tl.store(out_ptr + pid, partial)


@triton.jit(do_not_specialize=RP_PARAMS)
def rpgan_bwd_kernel(real_ptr, fake_ptr, up_ptr, g_r_ptr, g_f_ptr, n, w_hi, w_lo,
                     GEN: tl.constexpr, ELEMENTWISE_UP: tl.constexpr, NEED_R: tl.constexpr,
                     NEED_F: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """``∂/∂x = σ_D·(σ(s) − 1)·up·w``, ``∂/∂y = −∂/∂x``: one pass reading x, y (and the
    upstream tensor with ELEMENTWISE_UP), writing the gradients NEED_R / NEED_F ask for."""
    pid = tl.program_id(0).to(tl.int64)
    start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    if GEN:
        sgn = -1.0
    else:
        sgn = 1.0
    if start + BLOCK <= n:
        d = dbce(_paired(real_ptr, fake_ptr, offs, offs, GEN, F64, False), 1.0)
        if ELEMENTWISE_UP:
            g = (sgn * to_acc(tl.load(up_ptr + offs), F64)) * d
        else:
            g = (sgn * to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64)) * d
        if NEED_R:
            tl.store(g_r_ptr + offs, g.to(g_r_ptr.dtype.element_ty))
        if NEED_F:
            tl.store(g_f_ptr + offs, (-g).to(g_f_ptr.dtype.element_ty))
    else:
        m = offs < n
        d = dbce(_paired(real_ptr, fake_ptr, offs, m, GEN, F64, True), 1.0)
        if ELEMENTWISE_UP:
            g = (sgn * to_acc(tl.load(up_ptr + offs, mask=m, other=0.0), F64)) * d
        else:
            g = (sgn * to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64)) * d
        if NEED_R:
            tl.store(g_r_ptr + offs, g.to(g_r_ptr.dtype.element_ty), mask=m)
        if NEED_F:
            tl.store(g_f_ptr + offs, (-g).to(g_f_ptr.dtype.element_ty), mask=m)


# --------------------------------------------------------------------------- specialisations

NEEDS = ((1, 1), (1, 0), (0, 1))


def specializations():
    """Yield ``(name, kernel, signature, constexprs)`` for every launchable specialisation
    (``fastgan.tools.aot`` compiles them for real GPU targets)."""
    i32, f32 = "i32", "fp32"
    ra_params = {p: i32 for p in RA_PARAMS}
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        yield (f"side_sums[{dt}]", side_sums_kernel,
               {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "n_real": i32,
                "n_fake": i32, "iters": i32, "stride": i32}, {"F64": f64, "BLOCK": BLOCK})
        for out in {acc, dt}:
            yield (f"sum_rows[{acc}->{out}]", sum_rows_kernel,
                   {"part_ptr": ptr_type(acc), "out_ptr": ptr_type(out), "rows_ptr": ptr_type(acc), "n": i32, "bias": f32},
                   {"BLOCK": PARTIALS_BLOCK})
        for mode, finals in ((MODE_TERMS, (0,)), (MODE_LOSS, (0, 1)), (MODE_DOT, (0, 1))):
            for final in finals:
                sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "sums_ptr": ptr_type(acc), "up_r_ptr": ptr_type(dt),
                       "up_f_ptr": ptr_type(dt), "out_r_ptr": ptr_type(dt), "out_f_ptr": ptr_type(dt), "ab_ptr": ptr_type(acc),
                       "part_ptr": ptr_type(acc), "n_real": i32, "n_fake": i32, "iters": i32, "stride": i32,
                       **ra_params, "bias": f32}
                yield (f"ragan[{dt},mode={mode},final={final}]", ragan_kernel, sig,
                       {"MODE": mode, "FINAL": final, "F64": f64, "BLOCK": BLOCK})
        for ew in (0, 1):
            sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "sums_ptr": ptr_type(acc), "ab_ptr": ptr_type(acc),
                   "up_ptr": ptr_type(dt), "up_r_ptr": ptr_type(dt), "up_f_ptr": ptr_type(dt), "g_r_ptr": ptr_type(dt),
                   "g_f_ptr": ptr_type(dt), "n_real": i32, "n_fake": i32, "b_first": i32, "b_stop": i32, **ra_params}
            yield (f"ragan_bwd[{dt},elementwise_up={ew}]", ragan_bwd_kernel, sig,
                   {"ELEMENTWISE_UP": ew, "F64": f64, "BLOCK": BLOCK})
        for gen in (0, 1):
            for reduce_, final in ((0, 0), (1, 0), (1, 1)):
                out = dt if (reduce_ == 0 or final) else acc
                sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "out_ptr": ptr_type(out), "n": i32, "iters": i32,
                       "w_hi": i32, "w_lo": i32, "bias": f32}
                yield (f"rpgan_fwd[{dt},gen={gen},reduce={reduce_},final={final}]", rpgan_fwd_kernel, sig,
                       {"GEN": gen, "REDUCE": reduce_, "FINAL": final, "F64": f64, "BLOCK": BLOCK})
            for ew in (0, 1):
                for need_r, need_f in NEEDS:
                    sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "up_ptr": ptr_type(dt), "g_r_ptr": ptr_type(dt),
                           "g_f_ptr": ptr_type(dt), "n": i32, "w_hi": i32, "w_lo": i32}
                    yield (f"rpgan_bwd[{dt},gen={gen},elementwise_up={ew},need={need_r}{need_f}]",
                           rpgan_bwd_kernel, sig, {"GEN": gen, "ELEMENTWISE_UP": ew, "NEED_R": need_r,
                                                   "NEED_F": need_f, "F64": f64, "BLOCK": BLOCK})
