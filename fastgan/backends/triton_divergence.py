"""The ``"triton"`` backend's divergences (``gaussian_kl``, ``kl_div_logits``,
``js_div_logits``): launchers and autograd for ``kernels/divergence.py``.

A self-contained section of ``triton_backend.py`` (to be merged into it): it imports
that module's helpers.

* ``gaussian_kl``: ``(B, D)`` view (every non-batch dim flattened); forward
  ``gkl_partial`` + ``penalty_finish`` (its ``CENTER_ZERO`` term is the row sum itself);
  backward ``gkl_bwd``, one read of each input, one write of each gradient asked for.
* ``kl_div_logits`` / ``js_div_logits``: the distribution dim moved last and made
  contiguous (``movedim(dim, -1).contiguous()``: one copy when ``dim`` is not last or
  the input is not contiguous), rows of length D.  Forward ``dist_stats`` (only when
  rows are split across programs) + ``dist_fwd`` + ``dist_finish``; the per-row
  statistics and divergences are saved for the backward, ``dist_bwd``, one read of
  each input and one write of each gradient asked for.
* Autograd: the backward is the fused kernel, except where a graph of the backward is
  requested (``create_graph=True``) or under vmap: there it is the reference's VJP
  (``triton_backend._reference_vjp``), so double backward is exact.  Under
  ``torch.compile`` and ``torch.func`` transforms ``backends.run`` calls the reference,
  never this module.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..registry import OPS
from .modes import vmapped
from .triton_backend import _acc_dtype, _bias, _flat, _reference_vjp, _weight


def _kernels():
    """``fastgan.kernels.divergence``, imported on first use (``TRITON_INTERPRET`` is read
    when the kernels are decorated)."""
    from ..kernels import divergence
    return divergence


def _f64(x: Tensor) -> bool:
    return x.dtype == torch.float64


# --------------------------------------------------------------------------- gaussian_kl

def _batch_rows(x: Tensor) -> Tuple[int, int]:
    B = x.shape[0]
    return B, (x.numel() // B if B else 0)


def gkl_forward(mu: Tensor, lv: Tensor, reduction: str) -> Tensor:
    """``Σ_j ½(mu² + expm1(lv) − lv)`` per sample, reduced over the batch."""
    k = _kernels()
    B, D = _batch_rows(mu)
    acc = _acc_dtype(mu.dtype)
    plan = k.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=mu.device)
    k.gkl_partial_kernel[plan.grid](_flat(mu), _flat(lv), part, B, D, plan.splits, plan.iters, F64=_f64(mu),
                                    ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    rowsum = torch.empty(B, dtype=acc, device=mu.device)
    out = torch.empty((B,) if reduction == "none" else (), dtype=mu.dtype, device=mu.device)
    k.penalty_finish_kernel[(1,)](part, rowsum, out, out, B, plan.splits, *k.split(0.0),
                                  *k.split(_weight(reduction, B)), _bias(reduction, (B,)), ONE_SIDED=0,
                                  CENTER_ZERO=1, REDUCE=int(reduction != "none"), F64=_f64(mu),
                                  ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out


def gkl_backward(mu: Tensor, lv: Tensor, reduction: str, up: Tensor,
                 needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂mu, ∂logvar]`` (None where not asked for): ``mu·u_b·w``, ``½ expm1(lv)·u_b·w``."""
    k = _kernels()
    B, D = _batch_rows(mu)
    mk, lk = _flat(mu), _flat(lv)
    gmu = torch.empty_like(mk) if needs[0] else None
    glv = torch.empty_like(lk) if needs[1] else None
    plan = k.row_plan(B, D)
    ew = int(reduction == "none")
    upk = _flat(up.to(mu.dtype)) if ew else up.to(mu.dtype)
    if mk.numel():
        k.gkl_bwd_kernel[plan.grid](mk, lk, upk, gmu if gmu is not None else mk, glv if glv is not None else lk,
                                    B, D, plan.iters, *k.split(_weight(reduction, B)), NEED_MU=int(needs[0]),
                                    NEED_LV=int(needs[1]), ELEMENTWISE_UP=ew, F64=_f64(mu), ROWS=plan.rows,
                                    BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.view(mu.shape) if g is not None else None for g in (gmu, glv)]


# --------------------------------------------------------------------------- kl / js

def _rows(x: Tensor, dim: int) -> Tuple[Tensor, int, int]:
    """``x`` with ``dim`` moved last, contiguous (a copy unless it already is), and its
    ``(rows, D)``."""
    xm = x.movedim(dim, -1).contiguous()
    D = xm.shape[-1]
    R = xm.numel() // D if D else int(torch.Size(xm.shape[:-1]).numel())
    return xm, R, D


def dist_forward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str) -> Tuple[Tensor, Tensor, Tensor]:
    """``(loss or per-row terms, row statistics (R, 4), row divergences (R, 2))``."""
    k = _kernels()
    xm, R, D = _rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    acc = _acc_dtype(p.dtype)
    f64 = _f64(p)
    plan = k.row_plan(R, D)
    S = plan.splits
    common = dict(F64=f64, ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
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
    k.dist_finish_kernel[(1,)](div, rowdiv, out, out, R, S, *k.split(_weight(reduction, R)),
                               _bias(reduction, (R,)), JS=int(js), REDUCE=int(not none), F64=f64,
                               ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out, stat, rowdiv


def dist_backward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str, stat: Tensor, rowdiv: Tensor,
                  up: Tensor, needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂p_logits, ∂q_logits]`` (None where not asked for), shaped like the inputs (views
    with ``dim`` moved back)."""
    k = _kernels()
    xm, R, D = _rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    gx = torch.empty_like(xm) if needs[0] else None
    gy = torch.empty_like(ym) if needs[1] else None
    plan = k.row_plan(R, D)
    ew = int(reduction == "none")
    upk = _flat(up.to(p.dtype)) if ew else up.to(p.dtype)
    if xm.numel():
        k.dist_bwd_kernel[plan.grid](xm, ym, stat, rowdiv, upk, gx if gx is not None else xm,
                                     gy if gy is not None else ym, R, D, plan.iters, *k.split(_weight(reduction, R)),
                                     JS=int(js), NEED_P=int(needs[0]), NEED_Q=int(needs[1]), ELEMENTWISE_UP=ew,
                                     F64=_f64(p), ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.movedim(-1, dim) if g is not None else None for g in (gx, gy)]


# --------------------------------------------------------------------------- autograd

class _Divergence(torch.autograd.Function):
    """One op of the three: forward and backward the fused kernels; a backward that
    records a graph, or runs under vmap, is the reference's VJP."""

    @staticmethod
    def forward(ctx, name: str, dim: int, reduction: str, a, b):
        if name == "gaussian_kl":
            out = gkl_forward(a, b, reduction)
            saved = ()
        else:
            out, stat, rowdiv = dist_forward(a, b, dim, name == "js_div_logits", reduction)
            saved = (stat, rowdiv)
        ctx.meta = (name, dim, reduction)
        ctx.save_for_backward(a, b, *saved)
        return out

    @staticmethod
    def backward(ctx, up):
        name, dim, reduction = ctx.meta
        a, b, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled() or vmapped([up]):
            ref = OPS[name].reference
            kw = {} if name == "gaussian_kl" else {"dim": dim}
            grads = _reference_vjp(lambda x, y: ref(x, y, **kw, reduction=reduction), [a, b], [up], needs)
        elif name == "gaussian_kl":
            grads = gkl_backward(a, b, reduction, up, needs)
        else:
            grads = dist_backward(a, b, dim, name == "js_div_logits", reduction, *saved, up, needs)
        return (None, None, None, *grads)


def divergence(name: str, tensors: tuple, kwargs: dict, reduction: str) -> Tensor:
    """``name`` (``gaussian_kl``, ``kl_div_logits``, ``js_div_logits``) on the fused kernels,
    with autograd; the two tensors in one dtype (``backends.run`` promotes)."""
    a, b = tensors
    dim = kwargs.get("dim", -1)
    if name != "gaussian_kl":
        dim = dim % a.dim()
    return _Divergence.apply(name, dim, reduction, a, b)
