"""The divergences on the Triton kernels (``kernels/divergence.py``).

gaussian_kl: a (B, D) view, forward gkl_partial + penalty_finish (its CENTER_ZERO term is
the row sum itself), backward gkl_bwd: one read of each input, one write of each gradient
asked for.  kl_div_logits / js_div_logits: the distribution dim moved last and made
contiguous (one copy when dim is not last or the input is not contiguous), rows of length
D; forward dist_stats (only when rows are split across programs) + dist_fwd + dist_finish,
the per-row statistics and divergences saved for the one-pass backward dist_bwd.
Launchers, the custom ops ``torch.compile`` traces, the family op."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..families import Divergence
from ..modes import compiling
from .launch import acc_dtype, bias, custom_op, empty_for, f64, fake_like, flat, kernels, rows, weight


# --------------------------------------------------------------------------- gaussian_kl

def gkl_forward(mu: Tensor, lv: Tensor, reduction: str) -> Tensor:
    """``Σ_j ½(mu² + expm1(lv) − lv)`` per sample, reduced over the batch."""
    k = kernels("divergence")
    B, D = rows(mu)
    acc = acc_dtype(mu.dtype)
    plan = k.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=mu.device)
    k.gkl_partial_kernel[plan.grid](flat(mu), flat(lv), part, B, D, plan.splits, plan.iters, F64=f64(mu),
                                    ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    rowsum = torch.empty(B, dtype=acc, device=mu.device)
    out = torch.empty((B,) if reduction == "none" else (), dtype=mu.dtype, device=mu.device)
    k.penalty_finish_kernel[(1,)](part, rowsum, out, out, B, plan.splits, *k.split(0.0),
                                  *k.split(weight(reduction, B)), bias(reduction, (B,)), ONE_SIDED=0,
                                  CENTER_ZERO=1, REDUCE=int(reduction != "none"), F64=f64(mu),
                                  ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out


def gkl_backward(mu: Tensor, lv: Tensor, reduction: str, up: Tensor,
                 needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂mu, ∂logvar]`` (None where not asked for): ``mu·u_b·w``, ``½ expm1(lv)·u_b·w``."""
    k = kernels("divergence")
    B, D = rows(mu)
    mk, lk = flat(mu), flat(lv)
    gmu = torch.empty_like(mk) if needs[0] else None
    glv = torch.empty_like(lk) if needs[1] else None
    plan = k.row_plan(B, D)
    ew = int(reduction == "none")
    upk = flat(up.to(mu.dtype)) if ew else up.to(mu.dtype)
    if mk.numel():
        k.gkl_bwd_kernel[plan.grid](mk, lk, upk, gmu if gmu is not None else mk, glv if glv is not None else lk,
                                    B, D, plan.iters, *k.split(weight(reduction, B)), NEED_MU=int(needs[0]),
                                    NEED_LV=int(needs[1]), ELEMENTWISE_UP=ew, F64=f64(mu), ROWS=plan.rows,
                                    BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.view(mu.shape) if g is not None else None for g in (gmu, glv)]


# --------------------------------------------------------------------------- kl / js

def _dist_rows(x: Tensor, dim: int) -> Tuple[Tensor, int, int]:
    """``x`` with ``dim`` moved last, contiguous (a copy unless it already is), and its
    ``(rows, D)``."""
    xm = x.movedim(dim, -1).contiguous()
    D = xm.shape[-1]
    R = xm.numel() // D if D else int(torch.Size(xm.shape[:-1]).numel())
    return xm, R, D


def dist_forward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str) -> Tuple[Tensor, Tensor, Tensor]:
    """``(loss or per-row terms, row statistics (R, 4), row divergences (R, 2))``."""
    k = kernels("divergence")
    xm, R, D = _dist_rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    acc = acc_dtype(p.dtype)
    is64 = f64(p)
    plan = k.row_plan(R, D)
    S = plan.splits
    common = dict(F64=is64, ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    stat = torch.empty(R, k.STATS, dtype=acc, device=p.device)
    div = torch.empty(R * S, k.PARTS, dtype=acc, device=p.device)
    if S > 1:
        part = torch.empty(R * S, k.STATS, dtype=acc, device=p.device)
        k.dist_stats_kernel[plan.grid](xm, ym, part, R, D, S, plan.iters, **common)
    else:
        part = stat  # not read
    k.dist_fwd_kernel[plan.grid](xm, ym, part, stat, div, R, D, S, plan.iters, JS=int(js), SPLIT=int(S > 1),
                                 SPLITS=k.FINISH_SPLITS, **common)
    rowdiv = torch.empty(R, k.PARTS, dtype=acc, device=p.device)
    none = reduction == "none"
    out = torch.empty(xm.shape[:-1] if none else (), dtype=p.dtype, device=p.device)
    k.dist_finish_kernel[(1,)](div, rowdiv, out, out, R, S, *k.split(weight(reduction, R)),
                               bias(reduction, (R,)), JS=int(js), REDUCE=int(not none), F64=is64,
                               ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out, stat, rowdiv


def dist_backward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str, stat: Tensor, rowdiv: Tensor,
                  up: Tensor, needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂p_logits, ∂q_logits]`` (None where not asked for), shaped like the inputs (views
    with ``dim`` moved back)."""
    k = kernels("divergence")
    xm, R, D = _dist_rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    gx = torch.empty_like(xm) if needs[0] else None
    gy = torch.empty_like(ym) if needs[1] else None
    plan = k.row_plan(R, D)
    ew = int(reduction == "none")
    upk = flat(up.to(p.dtype)) if ew else up.to(p.dtype)
    if xm.numel():
        k.dist_bwd_kernel[plan.grid](xm, ym, stat, rowdiv, upk, gx if gx is not None else xm,
                                     gy if gy is not None else ym, R, D, plan.iters, *k.split(weight(reduction, R)),
                                     JS=int(js), NEED_P=int(needs[0]), NEED_Q=int(needs[1]), ELEMENTWISE_UP=ew,
                                     F64=f64(p), ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.movedim(-1, dim) if g is not None else None for g in (gx, gy)]


# --------------------------------------------------------------------------- custom ops (torch.compile)

@custom_op("fastgan::triton_gaussian_kl")
def gkl_op(mu: Tensor, lv: Tensor, reduction: str) -> Tensor:
    return gkl_forward(mu, lv, reduction)


@gkl_op.register_fake
def _(mu, lv, reduction):
    return mu.new_empty((mu.shape[0],) if reduction == "none" else ())


@custom_op("fastgan::triton_gaussian_kl_backward")
def gkl_bwd_op(mu: Tensor, lv: Tensor, reduction: str, up: Tensor, needs: List[bool]) -> List[Tensor]:
    return [empty_for(g, mu) for g in gkl_backward(mu, lv, reduction, up, needs)]


@gkl_bwd_op.register_fake
def _(mu, lv, reduction, up, needs):
    return [fake_like(x) if need else mu.new_empty(0) for x, need in zip((mu, lv), needs)]


@custom_op("fastgan::triton_divergence")
def dist_op(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str) -> List[Tensor]:
    """``[loss or per-row terms, row statistics, row divergences]``."""
    return list(dist_forward(p, q, dim, js, reduction))


@dist_op.register_fake
def _(p, q, dim, js, reduction):
    k = kernels("divergence")
    shape = p.shape[:dim] + p.shape[dim + 1:]
    R = shape.numel()
    acc = acc_dtype(p.dtype)
    out = p.new_empty(shape if reduction == "none" else ())
    return [out, p.new_empty((R, k.STATS), dtype=acc), p.new_empty((R, k.PARTS), dtype=acc)]


def _moved_like(x: Tensor, dim: int) -> Tensor:
    """An empty tensor laid out as the backward writes it: contiguous with ``dim`` last,
    viewed with ``dim`` back in place."""
    return torch.empty_like(x.movedim(dim, -1), memory_format=torch.contiguous_format).movedim(-1, dim)


@custom_op("fastgan::triton_divergence_backward")
def dist_bwd_op(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str, stat: Tensor, rowdiv: Tensor,
                up: Tensor, needs: List[bool]) -> List[Tensor]:
    return [empty_for(g, p) for g in dist_backward(p, q, dim, js, reduction, stat, rowdiv, up, needs)]


@dist_bwd_op.register_fake
def _(p, q, dim, js, reduction, stat, rowdiv, up, needs):
    return [_moved_like(x, dim) if need else p.new_empty(0) for x, need in zip((p, q), needs)]


# --------------------------------------------------------------------------- the family op

class DivergenceOp(Divergence):
    implementation = "kernels/divergence.py: row statistics + one pass + a finisher forward, one pass backward; " \
                     "fused.fused"

    @staticmethod
    def gkl_forward(mu, lv, reduction):
        return (gkl_op if compiling() else gkl_forward)(mu, lv, reduction)

    @staticmethod
    def gkl_backward(mu, lv, reduction, up, needs):
        return (gkl_bwd_op if compiling() else gkl_backward)(mu, lv, reduction, up, needs)

    @staticmethod
    def dist_forward(p, q, dim, js, reduction):
        return (dist_op if compiling() else dist_forward)(p, q, dim, js, reduction)

    @staticmethod
    def dist_backward(p, q, dim, js, reduction, stat, rowdiv, up, needs):
        return (dist_bwd_op if compiling() else dist_backward)(p, q, dim, js, reduction, stat, rowdiv, up, needs)


OP = DivergenceOp()
