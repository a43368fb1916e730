"""The multi-tensor ops on the Triton kernels (``kernels/multi.py``): a pair loss over lists
of discriminators, and feature matching over every map, each one launch forward (+ one
sum) and one backward, whatever the number of tensors.  The kernels read each member's
address, size and scalars from an int64 table copied to the device per call."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...registry import Kind, PairOptions, Side
from ..families import FeatureMatching, PairList
from ..interface import NO_TRANSFORMS
from ..modes import compiling
from .launch import acc_dtype, addresses, custom_op, empty_for, fake_like, flat, kernels, member_weight, table_on

CAPTURE = "the multi-tensor kernels copy a per-call table from host memory, which a CUDA-graph replay would read freed"
MODES = {"eager": None, "compile": None, "transform": NO_TRANSFORMS, "capture": CAPTURE}


def _launch_common(m, like: Tensor, addrs: Sequence[int]) -> dict:
    return dict(F64=like.dtype == torch.float64, ALIGNED=m.aligned(addrs), BLOCK=m.BLOCK, CHUNK=m.CHUNK,
                num_warps=m.NUM_WARPS)


# --------------------------------------------------------------------------- pair loss over lists

def _entries(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions):
    """``(tensor, side, discriminator, input index)`` per entry: per discriminator its real
    tensor (a discriminator loss), then its fake tensor.  Input index: the position in
    ``(*reals, *fakes)``."""
    entries = []
    n = len(fakes)
    for d, fake in enumerate(fakes):
        if reals is not None:
            entries.append((reals[d], opts.real, d, d))
        entries.append((fake, opts.fake, d, d + (n if reals is not None else 0)))
    return entries


def pair_list_forward(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions,
                      reduction: str) -> Tensor:
    """The per-discriminator reduced losses, shape ``(N,)``: one multi-tensor launch over every
    real and fake tensor (a weighted partial per program), one launch summing each
    discriminator's partials in a fixed order."""
    m = kernels("multi")
    like = fakes[0]
    entries = _entries(reals, fakes, opts)
    xs = [flat(x) for x, _, _, _ in entries]  # contiguous copies of strided members live until the launch
    sizes = [x.numel() for x in xs]
    iters, firsts = m.plan(sizes)
    programs = firsts[-1]
    per = 2 if reals is not None else 1
    seg = [firsts[d * per] for d in range(len(fakes))] + [programs]  # each discriminator's programs
    addrs = addresses(xs)
    values = m.pair_table(firsts[:-1], sizes, [member_weight(reduction, n) for n in sizes], addrs,
                          [side.sgn for _, side, _, _ in entries], [side.label for _, side, _, _ in entries],
                          [d for _, _, d, _ in entries], [0] * len(entries), seg)
    meta = table_on(values, like.device)
    part = torch.empty(programs, dtype=acc_dtype(like.dtype), device=like.device)
    out = torch.empty(len(fakes), dtype=like.dtype, device=like.device)
    used = [a for a, n in zip(addrs, sizes) if n]
    m.multi_pair_fwd_kernel[(programs,)](meta, xs[0], part, len(entries), iters, KIND=int(opts.kind),
                                         **_launch_common(m, like, used))
    m.multi_sum_kernel[(len(fakes),)](part, meta[m.PAIR_COLUMNS * len(entries):], out, BLOCK=m.PARTIALS_BLOCK,
                                      num_warps=m.NUM_WARPS)
    return out


def pair_list_backward(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions,
                       reduction: str, up: Tensor, needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """The gradient of each input of ``(*reals, *fakes)`` whose ``needs`` is set (else None)
    for the upstream gradient ``up`` of the ``(N,)`` losses: one launch writing all of them."""
    m = kernels("multi")
    like = fakes[0]
    grads: List[Optional[Tensor]] = [None] * len(needs)
    rows = []
    for x, side, d, i in _entries(reals, fakes, opts):
        if needs[i]:
            grads[i] = torch.empty(x.shape, dtype=x.dtype, device=x.device)
            if x.numel():
                rows.append((flat(x), side, d, grads[i]))
    if rows:
        xs = [x for x, _, _, _ in rows]
        sizes = [x.numel() for x in xs]
        iters, firsts = m.plan(sizes, m.BWD_MAX_PROGRAMS)
        addrs, g_addrs = addresses(xs), addresses([g for _, _, _, g in rows])
        values = m.pair_table(firsts[:-1], sizes, [member_weight(reduction, n) for n in sizes], addrs,
                              [side.sgn for _, side, _, _ in rows], [side.label for _, side, _, _ in rows],
                              [d for _, _, d, _ in rows], g_addrs)
        meta = table_on(values, like.device)
        m.multi_pair_bwd_kernel[(firsts[-1],)](meta, xs[0], up.to(like.dtype).contiguous(), len(rows), iters,
                                               KIND=int(opts.kind), **_launch_common(m, like, addrs + g_addrs))
    return grads


def _options(kind: int, params: Sequence[float], has_real: bool) -> PairOptions:
    return PairOptions(Kind(kind), Side(params[0], params[1]) if has_real else None, Side(params[2], params[3]))


@custom_op("fastgan::triton_pair_list")
def pair_list_op(reals: List[Tensor], fakes: List[Tensor], kind: int, params: List[float],
                 reduction: str) -> Tensor:
    """The ``(N,)`` per-discriminator losses (``reals`` empty for a generator loss)."""
    return pair_list_forward(reals or None, fakes, _options(kind, params, bool(reals)), reduction)


@pair_list_op.register_fake
def _(reals, fakes, kind, params, reduction):
    return fakes[0].new_empty(len(fakes))


@custom_op("fastgan::triton_pair_list_backward")
def pair_list_bwd_op(reals: List[Tensor], fakes: List[Tensor], kind: int, params: List[float], reduction: str,
                     up: Tensor, needs: List[bool]) -> List[Tensor]:
    grads = pair_list_backward(reals or None, fakes, _options(kind, params, bool(reals)), reduction, up, needs)
    return [empty_for(g, fakes[0]) for g in grads]


@pair_list_bwd_op.register_fake
def _(reals, fakes, kind, params, reduction, up, needs):
    return [fake_like(x) if need else fakes[0].new_empty(0) for x, need in zip([*reals, *fakes], needs)]


class PairListOp(PairList):
    implementation = "kernels/multi.py: one multi-tensor launch (+ one sum) forward, one backward; fused.fused"
    modes = MODES

    @staticmethod
    def list_forward(reals, fakes, opts, reduction):
        if compiling():
            return pair_list_op(list(reals), list(fakes), int(opts.kind), opts.params(), reduction)
        return pair_list_forward(reals or None, fakes, opts, reduction)

    @staticmethod
    def list_backward(reals, fakes, opts, reduction, up, needs):
        if compiling():
            return pair_list_bwd_op(list(reals), list(fakes), int(opts.kind), opts.params(), reduction, up, needs)
        return pair_list_backward(reals or None, fakes, opts, reduction, up, needs)


# --------------------------------------------------------------------------- feature matching

def fm_forward(reals: Sequence[Tensor], fakes: Sequence[Tensor], p: int, weights: Sequence[float]) -> Tensor:
    """``Σ_m w_m · Σ |g − r|^p``: one multi-tensor launch over every map (a weighted partial
    per program), one launch summing the partials in a fixed order."""
    m, k = kernels("multi"), kernels("losses")
    like = fakes[0]
    rs, gs = [flat(r) for r in reals], [flat(g) for g in fakes]
    sizes = [g.numel() for g in gs]
    iters, firsts = m.plan(sizes)
    programs = firsts[-1]
    r_addrs, g_addrs = addresses(rs), addresses(gs)
    zeros = [0] * len(gs)
    meta = table_on(m.fm_table(firsts[:-1], sizes, list(weights), r_addrs, g_addrs, zeros, zeros), like.device)
    part = torch.empty(programs, dtype=acc_dtype(like.dtype), device=like.device)
    used = [a for a, n in zip(r_addrs + g_addrs, sizes + sizes) if n]
    m.multi_fm_fwd_kernel[(programs,)](meta, gs[0], part, len(gs), iters, P=p, **_launch_common(m, like, used))
    out = torch.empty((), dtype=like.dtype, device=like.device)
    k.sum_partials_kernel[(1,)](part, out, programs, 0.0, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def fm_backward(reals: Sequence[Tensor], fakes: Sequence[Tensor], p: int, weights: Sequence[float], up: Tensor,
                needs_r: Sequence[bool], needs_g: Sequence[bool]) -> Tuple[List[Optional[Tensor]],
                                                                           List[Optional[Tensor]]]:
    """``(real grads, fake grads)``, each None where not needed: one launch writing every
    fake map's gradient ``u · w · d|g − r|^p / dg`` and the real maps' (its negation)."""
    m = kernels("multi")
    like = fakes[0]
    grads_r: List[Optional[Tensor]] = [None] * len(fakes)
    grads_g: List[Optional[Tensor]] = [None] * len(fakes)
    rows = []
    for i, (r, g) in enumerate(zip(reals, fakes)):
        if needs_r[i]:
            grads_r[i] = torch.empty(g.shape, dtype=g.dtype, device=g.device)
        if needs_g[i]:
            grads_g[i] = torch.empty(g.shape, dtype=g.dtype, device=g.device)
        if (needs_r[i] or needs_g[i]) and g.numel():
            rows.append((flat(r), flat(g), weights[i], grads_g[i], grads_r[i]))
    if rows:
        sizes = [g.numel() for _, g, _, _, _ in rows]
        iters, firsts = m.plan(sizes, m.BWD_MAX_PROGRAMS)
        addrs = [addresses(col) for col in ([r for r, _, _, _, _ in rows], [g for _, g, _, _, _ in rows])]
        outs = [[o.data_ptr() if o is not None else 0 for o in col]
                for col in ([gg for _, _, _, gg, _ in rows], [gr for _, _, _, _, gr in rows])]
        meta = table_on(m.fm_table(firsts[:-1], sizes, [w for _, _, w, _, _ in rows], *addrs, *outs), like.device)
        m.multi_fm_bwd_kernel[(firsts[-1],)](meta, rows[0][1], up.to(like.dtype), len(rows), iters, P=p,
                                             **_launch_common(m, like, [a for col in addrs + outs for a in col]))
    return grads_r, grads_g


def _weights(fakes, reduction: str, scales) -> List[float]:
    return [s * member_weight(reduction, g.numel()) for s, g in zip(scales, fakes)]


@custom_op("fastgan::triton_feature_matching")
def fm_op(reals: List[Tensor], fakes: List[Tensor], p: int, weights: List[float]) -> Tensor:
    return fm_forward(reals, fakes, p, weights)


@fm_op.register_fake
def _(reals, fakes, p, weights):
    return fakes[0].new_empty(())


@custom_op("fastgan::triton_feature_matching_backward")
def fm_bwd_op(reals: List[Tensor], fakes: List[Tensor], p: int, weights: List[float], up: Tensor,
              needs: List[bool]) -> List[Tensor]:
    n = len(fakes)
    grads_r, grads_g = fm_backward(reals, fakes, p, weights, up, needs[:n], needs[n:])
    return [empty_for(g, fakes[0]) for g in (*grads_r, *grads_g)]


@fm_bwd_op.register_fake
def _(reals, fakes, p, weights, up, needs):
    return [fake_like(x) if need else fakes[0].new_empty(0) for x, need in zip([*reals, *fakes], needs)]


class FeatureMatchingOp(FeatureMatching):
    implementation = "kernels/multi.py: one multi-tensor launch (+ one sum) forward, one backward; fused.fused"
    modes = MODES

    @staticmethod
    def maps_forward(reals, fakes, p, reduction, scales):
        return (fm_op if compiling() else fm_forward)(list(reals), list(fakes), p, _weights(fakes, reduction, scales))

    @staticmethod
    def maps_backward(reals, fakes, p, reduction, scales, up, needs):
        weights = _weights(fakes, reduction, scales)
        if compiling():
            return fm_bwd_op(list(reals), list(fakes), p, weights, up, needs)
        grads_r, grads_g = fm_backward(reals, fakes, p, weights, up, needs[:len(reals)], needs[len(reals):])
        return [*grads_r, *grads_g]


PAIR_LIST = PairListOp()
FEATURE = FeatureMatchingOp()
