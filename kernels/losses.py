"""Fused Triton kernels for the GAN losses.

Two op families, one generic kernel pair each:

* ``pair``: every discriminator and generator loss.  The per-element term is
  ``term_KIND(s; sgn, t)`` with a ``tl.constexpr`` KIND (``fastgan.registry.Kind``,
  whose docstring tabulates the terms) and two scalars per side (real / fake), so a
  generator loss is a pair loss with an empty real side.

* ``bce``: the drop-in ``binary_cross_entropy_with_logits`` with element-wise
  target, optional weight and pos_weight.

Design (the fewest bytes moved):

* Forward reads each logit once.  The real and fake tensors are one sequence of
  tiles, the real side's then the fake side's, so a single launch computes both
  sides' terms and their per-side sums: program ``p`` owns the tiles
  ``[p·iters, (p+1)·iters)`` (the last program also the one extra tile per-side
  tiling can need beyond the launch plan) and writes one partial
  ``w_r·Σ real terms + w_f·Σ fake terms`` (``w`` = 1/N for mean, 1 for sum).
* Full tiles without a mask: each side is tiled from its own start, so a tile
  inside a side is as aligned as the side's pointer and loads and stores 128 bits
  at a time for any size; only each side's last, partial tile takes the masked
  path (the drop-in BCE and ``sum_partials`` likewise).  ``python -m
  fastgan.tools.aot --ptx`` shows the widths the compiler emits.
  Up to ``SINGLE_PROGRAM_MAX`` elements, one program does everything and writes
  the final scalar (one launch).  Above it, a second, single-program launch sums
  the per-program partials in a fixed order (``sum_partials``).  No atomics, so
  the result is bit-identical run after run.
* Nothing is stored for the backward except the inputs themselves: the backward
  recomputes the per-element derivative from the logits (reads N, writes N),
  where storing the gradient in the forward would write N more and read it back.
* Offsets are int64 (``program_id`` is widened before it is multiplied), so
  tensors of more than 2**31 elements are addressed correctly.
* Half types are computed in float32; float64 in float64 (``F64``).  Float
  parameters (labels, margins, mean weights) are passed as the bits of a float64
  in two int32 halves and rebuilt in the kernel (``common.param``): float64 inputs see
  the exact parameter (a hinge exactly at an fp64 margin is exactly 0), any
  finite value fits, and float32 kernels round it once.
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

from dataclasses import dataclass

import triton
import triton.language as tl

from ..registry import Kind
from .common import (FLOAT_DTYPES, NUM_WARPS, W_PARAMS, bce, block_end, dbce, log1p, mul0,  # noqa: F401
                     pair_dterm, pair_term, param, ptr_type, relu, side_blocks, side_tile, split, tile_load, to_acc)


BLOCK = 1024                        # elements per program per iteration
SINGLE_PROGRAM_MAX = 32 * BLOCK     # up to this many elements: one program, one launch
MAX_PROGRAMS = 1024                 # above it: at most this many partials
PARTIALS_BLOCK = 1024               # the second stage reads the partials in chunks of this


# parameters passed as int32 halves: never value-specialised (a half equal to 1 would
# become a constexpr, one divisible by 16 another specialisation)
PAIR_PARAMS = ["tr_hi", "tr_lo", "wr_hi", "wr_lo", "tf_hi", "tf_lo", "wf_hi", "wf_lo"]


# --------------------------------------------------------------------------- pair family

@triton.jit(do_not_specialize=PAIR_PARAMS)
def pair_fwd_kernel(real_ptr, fake_ptr, out_r_ptr, out_f_ptr, part_ptr,
                    n_real, n_fake, iters,
                    sgn_r, tr_hi, tr_lo, wr_hi, wr_lo,
                    sgn_f, tf_hi, tf_lo, wf_hi, wf_lo, bias,
                    KIND: tl.constexpr, REDUCE: tl.constexpr, FINAL: tl.constexpr,
                    F64: tl.constexpr, BLOCK: tl.constexpr):
    """REDUCE=0: store the terms (out_r, out_f).  REDUCE=1: write this program's
    weighted partial to part_ptr[pid], or, with FINAL, the finished loss (+ bias)
    to part_ptr[0] in the output dtype.

    Tiles: the real side's, then the fake side's, each from its own start; program
    ``p`` takes tiles ``[p·iters, (p+1)·iters)`` (the last program the rest).  A tile
    inside its side loads and stores without a mask (128-bit accesses for any size);
    only each side's last, partial tile takes the masked path."""
    pid = tl.program_id(0).to(tl.int64)
    t_r = param(tr_hi, tr_lo, F64)
    t_f = param(tf_hi, tf_lo, F64)
    acc_r = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    acc_f = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    nb_r, nb = side_blocks(n_real, n_fake, BLOCK)
    b0 = pid * iters
    for b in range(b0, block_end(pid, b0 + iters, nb)):
        is_r, start, offs, n = side_tile(b, nb_r, n_real, n_fake, BLOCK)
        x_ptr = tl.where(is_r, real_ptr, fake_ptr)
        o_ptr = tl.where(is_r, out_r_ptr, out_f_ptr)
        sgn = tl.where(is_r, sgn_r, sgn_f)
        t = tl.where(is_r, t_r, t_f)
        if start + BLOCK <= n:
            v = pair_term(to_acc(tl.load(x_ptr + offs), F64), sgn, t, KIND)
            if not REDUCE:
                tl.store(o_ptr + offs, v.to(out_r_ptr.dtype.element_ty))
        else:
            m = offs < n
            v = pair_term(to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64), sgn, t, KIND)
            if not REDUCE:
                tl.store(o_ptr + offs, v.to(out_r_ptr.dtype.element_ty), mask=m)
            v = tl.where(m, v, 0.0)
        if REDUCE:
            acc_r += tl.where(is_r, v, 0.0)
            acc_f += tl.where(is_r, 0.0, v)
    if REDUCE:
        w_r = param(wr_hi, wr_lo, F64)
        w_f = param(wf_hi, wf_lo, F64)
        partial = w_r * tl.sum(acc_r, axis=0) + w_f * tl.sum(acc_f, axis=0)
        if FINAL:
            tl.store(part_ptr, (partial + bias).to(part_ptr.dtype.element_ty))
        else:
            tl.store(part_ptr + pid, partial)


@triton.jit(do_not_specialize=PAIR_PARAMS)
def pair_bwd_kernel(real_ptr, fake_ptr, up_ptr, up_r_ptr, up_f_ptr, g_r_ptr, g_f_ptr,
                    n_real, n_fake,
                    sgn_r, tr_hi, tr_lo, wr_hi, wr_lo,
                    sgn_f, tf_hi, tf_lo, wf_hi, wf_lo,
                    KIND: tl.constexpr, ELEMENTWISE_UP: tl.constexpr,
                    F64: tl.constexpr, BLOCK: tl.constexpr):
    """grad = upstream · w · d term / d s, recomputed from the logits.
    ELEMENTWISE_UP: the upstream gradients are tensors (reduction="none"),
    else one scalar read from up_ptr on the device (no host sync).
    Tiles as in pair_fwd (one per program, the last program the rest): unmasked
    inside a side, masked on each side's last, partial tile."""
    pid = tl.program_id(0).to(tl.int64)
    t_r = param(tr_hi, tr_lo, F64)
    t_f = param(tf_hi, tf_lo, F64)
    if ELEMENTWISE_UP:
        uw_r = to_acc(0.0, F64)
        uw_f = to_acc(0.0, F64)
    else:
        u = to_acc(tl.load(up_ptr), F64)
        uw_r = u * param(wr_hi, wr_lo, F64)
        uw_f = u * param(wf_hi, wf_lo, F64)
    nb_r, nb = side_blocks(n_real, n_fake, BLOCK)
    for b in range(pid, block_end(pid, pid + 1, nb)):
        is_r, start, offs, n = side_tile(b, nb_r, n_real, n_fake, BLOCK)
        x_ptr = tl.where(is_r, real_ptr, fake_ptr)
        g_ptr = tl.where(is_r, g_r_ptr, g_f_ptr)
        u_ptr = tl.where(is_r, up_r_ptr, up_f_ptr)
        sgn = tl.where(is_r, sgn_r, sgn_f)
        t = tl.where(is_r, t_r, t_f)
        uw = tl.where(is_r, uw_r, uw_f)
        if start + BLOCK <= n:
            d = pair_dterm(to_acc(tl.load(x_ptr + offs), F64), sgn, t, KIND)
            if ELEMENTWISE_UP:
                g = to_acc(tl.load(u_ptr + offs), F64) * d
            else:
                g = uw * d
            tl.store(g_ptr + offs, g.to(g_r_ptr.dtype.element_ty))
        else:
            m = offs < n
            d = pair_dterm(to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64), sgn, t, KIND)
            if ELEMENTWISE_UP:
                g = to_acc(tl.load(u_ptr + offs, mask=m, other=0.0), F64) * d
            else:
                g = uw * d
            tl.store(g_ptr + offs, g.to(g_r_ptr.dtype.element_ty), mask=m)


@triton.jit
def sum_partials_kernel(part_ptr, out_ptr, n, bias, BLOCK: tl.constexpr):
    """Second stage: out = Σ partials + bias, in a fixed order (deterministic).
    Full tiles without a mask, then the partial tail tile masked."""
    acc = tl.zeros([BLOCK], dtype=part_ptr.dtype.element_ty)
    n_full = (n // BLOCK) * BLOCK
    for start in range(0, n_full, BLOCK):
        acc += tl.load(part_ptr + start + tl.arange(0, BLOCK))
    if n_full < n:
        offs = n_full + tl.arange(0, BLOCK)
        acc += tl.load(part_ptr + offs, mask=offs < n, other=0.0)
    total = tl.sum(acc, axis=0) + bias
    tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))


# --------------------------------------------------------------------------- bce drop-in family

@triton.jit
def _bce_full(s, t, w_ptr, pw_ptr, offs, m, HAS_W: tl.constexpr, HAS_PW: tl.constexpr, F64: tl.constexpr,
              MASKED: tl.constexpr):
    v = bce(s, t)
    if HAS_PW:
        p = to_acc(tile_load(pw_ptr, offs, m, 1.0, MASKED), F64)
        v += mul0((p - 1.0) * t, relu(-s) + log1p(tl.exp(-tl.abs(s))))
    if HAS_W:
        v *= to_acc(tile_load(w_ptr, offs, m, 0.0, MASKED), F64)
    return v


@triton.jit
def _bce_fwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, out_ptr, offs, m, HAS_W: tl.constexpr, HAS_PW: tl.constexpr,
                  REDUCE: tl.constexpr, F64: tl.constexpr, MASKED: tl.constexpr):
    s = to_acc(tile_load(x_ptr, offs, m, 0.0, MASKED), F64)
    t = to_acc(tile_load(t_ptr, offs, m, 0.0, MASKED), F64)
    v = _bce_full(s, t, w_ptr, pw_ptr, offs, m, HAS_W, HAS_PW, F64, MASKED)
    if not REDUCE:
        if MASKED:
            tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=m)
        else:
            tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty))
    if MASKED:
        v = tl.where(m, v, 0.0)
    return v


@triton.jit(do_not_specialize=W_PARAMS)
def bce_fwd_kernel(x_ptr, t_ptr, w_ptr, pw_ptr, out_ptr, n, iters, w_hi, w_lo, bias,
                   HAS_W: tl.constexpr, HAS_PW: tl.constexpr, REDUCE: tl.constexpr,
                   FINAL: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """w · [(1 − t)·s + (1 + (p − 1)·t)·softplus(−s)] per element; REDUCE/FINAL as in pair_fwd.
    Full tiles without a mask, the last, partial tile masked."""
    pid = tl.program_id(0).to(tl.int64)
    acc = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    base = pid * iters * BLOCK
    for i in range(0, iters):
        start = base + i * BLOCK
        offs = start + tl.arange(0, BLOCK)
        if start + BLOCK <= n:
            v = _bce_fwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, out_ptr, offs, offs, HAS_W, HAS_PW, REDUCE, F64, False)
        else:
            v = _bce_fwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, out_ptr, offs, offs < n, HAS_W, HAS_PW, REDUCE, F64,
                              True)
        if REDUCE:
            acc += v
    if REDUCE:
        partial = param(w_hi, w_lo, F64) * tl.sum(acc, axis=0)
        if FINAL:
            tl.store(out_ptr, (partial + bias).to(out_ptr.dtype.element_ty))
        else:
            tl.store(out_ptr + pid, partial)


@triton.jit
def _bce_bwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, up_ptr, g_ptr, offs, m, uw, HAS_W: tl.constexpr,
                  HAS_PW: tl.constexpr, ELEMENTWISE_UP: tl.constexpr, F64: tl.constexpr, MASKED: tl.constexpr):
    s = to_acc(tile_load(x_ptr, offs, m, 0.0, MASKED), F64)
    t = to_acc(tile_load(t_ptr, offs, m, 0.0, MASKED), F64)
    d = dbce(s, t)
    if HAS_PW:
        # sigmoid(-s) = -(sigmoid(s) - 1), accurate in both tails
        p = to_acc(tile_load(pw_ptr, offs, m, 1.0, MASKED), F64)
        d -= (p - 1.0) * t * -dbce(s, 1.0)
    if HAS_W:
        d *= to_acc(tile_load(w_ptr, offs, m, 0.0, MASKED), F64)
    if ELEMENTWISE_UP:
        u = to_acc(tile_load(up_ptr, offs, m, 0.0, MASKED), F64)
    else:
        u = uw
    if MASKED:
        tl.store(g_ptr + offs, (u * d).to(g_ptr.dtype.element_ty), mask=m)
    else:
        tl.store(g_ptr + offs, (u * d).to(g_ptr.dtype.element_ty))


@triton.jit(do_not_specialize=W_PARAMS)
def bce_bwd_kernel(x_ptr, t_ptr, w_ptr, pw_ptr, up_ptr, g_ptr, n, w_hi, w_lo,
                   HAS_W: tl.constexpr, HAS_PW: tl.constexpr, ELEMENTWISE_UP: tl.constexpr,
                   F64: tl.constexpr, BLOCK: tl.constexpr):
    """d/ds = w · [sigmoid(s) − t − (p − 1)·t·sigmoid(−s)] times the upstream gradient.
    A full tile without a mask, the last, partial tile masked."""
    pid = tl.program_id(0).to(tl.int64)
    start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    if ELEMENTWISE_UP:
        uw = to_acc(0.0, F64)
    else:
        uw = to_acc(tl.load(up_ptr), F64) * param(w_hi, w_lo, F64)
    if start + BLOCK <= n:
        _bce_bwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, up_ptr, g_ptr, offs, offs, uw, HAS_W, HAS_PW, ELEMENTWISE_UP,
                      F64, False)
    else:
        _bce_bwd_tile(x_ptr, t_ptr, w_ptr, pw_ptr, up_ptr, g_ptr, offs, offs < n, uw, HAS_W, HAS_PW,
                      ELEMENTWISE_UP, F64, True)


# --------------------------------------------------------------------------- launch plans

@dataclass(frozen=True)
class Plan:
    programs: int
    iters: int

    @property
    def final(self) -> bool:
        return self.programs == 1


def reduce_plan(total: int) -> Plan:
    """How a reduction over ``total`` elements is split into programs.  Depends on
    the size alone, never on the device, so results are reproducible everywhere."""
    nblocks = max(1, triton.cdiv(total, BLOCK))
    if total <= SINGLE_PROGRAM_MAX:
        return Plan(1, nblocks)
    iters = triton.cdiv(nblocks, MAX_PROGRAMS)
    return Plan(triton.cdiv(nblocks, iters), iters)


def elementwise_grid(total: int) -> int:
    return max(1, triton.cdiv(total, BLOCK))


# --------------------------------------------------------------------------- specialisations
#
# Every (kernel, signature, constexprs) the launchers can produce.  The launchers
# below only pass constexpr values drawn from these sets; tests/test_aot_compile.py
# compiles every entry for real GPU targets.

def specializations():
    """Yield ``(name, kernel, signature, constexprs)`` for every launchable specialisation."""
    f32 = "fp32"
    i32 = "i32"
    pair_scalars = {"sgn_r": f32, "tr_hi": i32, "tr_lo": i32, "wr_hi": i32, "wr_lo": i32,
                    "sgn_f": f32, "tf_hi": i32, "tf_lo": i32, "wf_hi": i32, "wf_lo": i32}
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        for kind in Kind:
            kind_name = kind.name.lower()
            for reduce_, final in ((0, 0), (1, 0), (1, 1)):
                out = dt if (reduce_ == 0 or final) else acc
                sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "out_r_ptr": ptr_type(dt),
                       "out_f_ptr": ptr_type(dt), "part_ptr": ptr_type(out),
                       "n_real": "i32", "n_fake": "i32", "iters": "i32", **pair_scalars, "bias": f32}
                ce = {"KIND": int(kind), "REDUCE": reduce_, "FINAL": final, "F64": f64, "BLOCK": BLOCK}
                yield (f"pair_fwd[{kind_name},{dt},reduce={reduce_},final={final}]",
                       pair_fwd_kernel, sig, ce)
            for ew in (0, 1):
                sig = {"real_ptr": ptr_type(dt), "fake_ptr": ptr_type(dt), "up_ptr": ptr_type(dt),
                       "up_r_ptr": ptr_type(dt), "up_f_ptr": ptr_type(dt), "g_r_ptr": ptr_type(dt),
                       "g_f_ptr": ptr_type(dt), "n_real": "i32", "n_fake": "i32", **pair_scalars}
                ce = {"KIND": int(kind), "ELEMENTWISE_UP": ew, "F64": f64, "BLOCK": BLOCK}
                yield f"pair_bwd[{kind_name},{dt},elementwise_up={ew}]", pair_bwd_kernel, sig, ce
        sig = {"part_ptr": ptr_type(acc), "out_ptr": ptr_type(dt), "n": "i32", "bias": f32}
        yield f"sum_partials[{acc}->{dt}]", sum_partials_kernel, sig, {"BLOCK": PARTIALS_BLOCK}
        for has_w in (0, 1):
            for has_pw in (0, 1):
                for reduce_, final in ((0, 0), (1, 0), (1, 1)):
                    out = dt if (reduce_ == 0 or final) else acc
                    sig = {"x_ptr": ptr_type(dt), "t_ptr": ptr_type(acc), "w_ptr": ptr_type(acc), "pw_ptr": ptr_type(acc),
                           "out_ptr": ptr_type(out), "n": "i32", "iters": "i32",
                           "w_hi": i32, "w_lo": i32, "bias": f32}
                    ce = {"HAS_W": has_w, "HAS_PW": has_pw, "REDUCE": reduce_, "FINAL": final,
                          "F64": f64, "BLOCK": BLOCK}
                    yield (f"bce_fwd[{dt},w={has_w},pw={has_pw},reduce={reduce_},final={final}]",
                           bce_fwd_kernel, sig, ce)
                for ew in (0, 1):
                    sig = {"x_ptr": ptr_type(dt), "t_ptr": ptr_type(acc), "w_ptr": ptr_type(acc), "pw_ptr": ptr_type(acc),
                           "up_ptr": ptr_type(dt), "g_ptr": ptr_type(dt), "n": "i32", "w_hi": i32, "w_lo": i32}
                    ce = {"HAS_W": has_w, "HAS_PW": has_pw, "ELEMENTWISE_UP": ew, "F64": f64, "BLOCK": BLOCK}
                    yield f"bce_bwd[{dt},w={has_w},pw={has_pw},elementwise_up={ew}]", bce_bwd_kernel, sig, ce
