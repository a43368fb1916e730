"""The ``"triton"`` backend: launchers for the kernels in ``kernels/``.

Autograd and torch.compile support are shared with the native backend
(``_fused.py``): an ``autograd.Function`` calling these launchers directly in
eager mode and through ``torch.library.custom_op`` wrappers under torch.compile.
"""
from __future__ import annotations

import math
import sys
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import _fused
from ._fused import _acc_dtype
from .._kernels import import_kernels
from ..registry import OpSpec

_kernels = None
_penalty = None
_import_error: Optional[str] = None


def _load():
    """Import the kernels lazily: TRITON_INTERPRET is read when they are decorated."""
    global _kernels, _penalty, _import_error
    if _kernels is None and _import_error is None:
        try:
            _kernels = import_kernels("losses")
            _penalty = import_kernels("penalty")
        except ModuleNotFoundError as exc:
            hint = "; install it with `pip install triton`" if exc.name == "triton" else ""
            _import_error = f"{type(exc).__name__}: {exc}{hint}"
        except Exception as exc:  # a broken triton install
            _import_error = f"{type(exc).__name__}: {exc}"
    return _kernels


def interpreted() -> bool:
    k = _load()
    return k is not None and type(k.pair_fwd_kernel).__name__ == "InterpretedFunction"


_status: Optional[Tuple[bool, str]] = None


def status() -> Tuple[bool, str]:
    """Usable in this process?  Computed once (it cannot change: TRITON_INTERPRET is read at import)."""
    global _status
    if _status is None:
        _status = _compute_status()
    return _status


def _compute_status() -> Tuple[bool, str]:
    k = _load()
    if k is None:
        return False, f"the Triton kernels cannot be imported ({_import_error})"
    import triton
    if interpreted():
        return True, f"triton {triton.__version__} through the interpreter (TRITON_INTERPRET=1): CPU tensors, slow"
    if torch.cuda.is_available():
        return True, f"triton {triton.__version__} on {torch.cuda.get_device_name()}"
    return False, (f"triton {triton.__version__} is installed but there is no CUDA device; "
                   "set TRITON_INTERPRET=1 before importing fastgan to run the kernels on CPU "
                   "through the Triton interpreter (slow, for tests)")


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cuda" or (device.type == "cpu" and interpreted()):
        return None
    if device.type == "cpu":
        return ("the triton backend needs CUDA tensors; for CPU tensors set TRITON_INTERPRET=1 "
                "before importing fastgan (the Triton interpreter), or use backend 'torch'")
    return f"the triton backend does not run on {device.type} tensors; use backend 'torch'"


# --------------------------------------------------------------------------- launchers

def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1) if x.is_contiguous() else x.contiguous().view(-1)


def _side(side, n: int, reduction: str):
    """Kernel scalars of one side: sgn, t_hi, t_lo, w_hi, w_lo."""
    k = _kernels
    sgn, t = side if side is not None else (1.0, 0.0)
    w = 1.0 / n if (reduction == "mean" and n > 0) else 1.0
    return (float(sgn), *k.split(float(t)), *k.split(w))


def _bias(reduction: str, sizes: Sequence[int]) -> float:
    # mean over an empty side is nan, as torch's mean of nothing
    return math.nan if reduction == "mean" and any(n == 0 for n in sizes) else 0.0


def pair_forward(kind: str, real: Optional[Tensor], fake: Tensor, side_r, side_f,
                 reduction: str) -> List[Tensor]:
    k = _load()
    fk = _flat(fake)
    rk = _flat(real) if real is not None else fk
    n_r = real.numel() if real is not None else 0
    n_f = fake.numel()
    scalars = (*_side(side_r, n_r, reduction), *_side(side_f, n_f, reduction))
    f64 = fake.dtype == torch.float64
    common = dict(KIND=k.KINDS[kind], F64=f64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
        out_f = torch.empty_like(fk)
        total = n_r + n_f
        if total:
            k.pair_fwd_kernel[(k.elementwise_grid(total),)](
                rk, fk, out_r, out_f, out_f, n_r, n_f, 1, *scalars, 0.0,
                REDUCE=0, FINAL=0, **common)
        return [out_r.view(real.shape) if real is not None else out_r, out_f.view(fake.shape)]
    sizes = (n_r, n_f) if real is not None else (n_f,)
    bias = _bias(reduction, sizes)
    plan = k.reduce_plan(n_r + n_f)
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.pair_fwd_kernel[(1,)](rk, fk, rk, fk, out, n_r, n_f, plan.iters, *scalars, bias,
                                REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(fake.dtype), device=fake.device)
        k.pair_fwd_kernel[(plan.programs,)](rk, fk, rk, fk, part, n_r, n_f, plan.iters, *scalars, 0.0,
                                            REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK,
                                    num_warps=k.NUM_WARPS)
    return [out]


def pair_backward(kind: str, real: Optional[Tensor], fake: Tensor, side_r, side_f, reduction: str,
                  grads: Sequence[Tensor]) -> List[Tensor]:
    k = _load()
    fk = _flat(fake)
    rk = _flat(real) if real is not None else fk
    n_r = real.numel() if real is not None else 0
    n_f = fake.numel()
    scalars = (*_side(side_r, n_r, reduction), *_side(side_f, n_f, reduction))
    g_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
    g_f = torch.empty_like(fk)
    if reduction == "none":
        up = grads[-1]
        up_r = _flat(grads[0].to(rk.dtype)) if real is not None else fk
        up_f = _flat(grads[-1].to(fk.dtype))
        ew = 1
    else:
        up = grads[0].to(fk.dtype)
        up_r = up_f = fk
        ew = 0
    total = n_r + n_f
    if total:
        k.pair_bwd_kernel[(k.elementwise_grid(total),)](
            rk, fk, up, up_r, up_f, g_r, g_f, n_r, n_f, *scalars,
            KIND=k.KINDS[kind], ELEMENTWISE_UP=ew, F64=fk.dtype == torch.float64,
            BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if real is not None else g_r, g_f.view(fake.shape)]


def _bce_operands(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor]):
    """Flat operands; the target, weight and pos_weight in the accumulation dtype, so a
    weight of 1e5 or 1e-8 or a label of 0.9 is never rounded to a half type first."""
    acc = _acc_dtype(x.dtype)
    xk = _flat(x)
    tk = _flat(t.to(acc))
    wk = _flat(weight.to(acc).expand(x.shape)) if weight is not None else tk
    pk = _flat(pos_weight.to(acc).expand(x.shape)) if pos_weight is not None else tk
    return xk, tk, wk, pk


def bce_forward(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                reduction: str) -> List[Tensor]:
    k = _load()
    xk, tk, wk, pk = _bce_operands(x, t, weight, pos_weight)
    n = x.numel()
    common = dict(HAS_W=int(weight is not None), HAS_PW=int(pos_weight is not None),
                  F64=x.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out = torch.empty_like(xk)
        if n:
            k.bce_fwd_kernel[(k.elementwise_grid(n),)](xk, tk, wk, pk, out, n, 1, 1.0, 0.0, 0.0,
                                                       REDUCE=0, FINAL=0, **common)
        return [out.view(x.shape)]
    w = k.split(1.0 / n if (reduction == "mean" and n) else 1.0)
    bias = _bias(reduction, (n,))
    plan = k.reduce_plan(n)
    out = torch.empty((), dtype=x.dtype, device=x.device)
    if plan.final:
        k.bce_fwd_kernel[(1,)](xk, tk, wk, pk, out, n, plan.iters, *w, bias, REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(x.dtype), device=x.device)
        k.bce_fwd_kernel[(plan.programs,)](xk, tk, wk, pk, part, n, plan.iters, *w, 0.0,
                                           REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK,
                                    num_warps=k.NUM_WARPS)
    return [out]


def bce_backward(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                 reduction: str, up: Tensor) -> Tensor:
    k = _load()
    xk, tk, wk, pk = _bce_operands(x, t, weight, pos_weight)
    n = x.numel()
    g = torch.empty_like(xk)
    ew = int(reduction == "none")
    upk = _flat(up.to(x.dtype)) if ew else up.to(x.dtype)
    w = k.split(1.0 / n if (reduction == "mean" and n) else 1.0)
    if n:
        k.bce_bwd_kernel[(k.elementwise_grid(n),)](
            xk, tk, wk, pk, upk, g, n, *w, HAS_W=int(weight is not None),
            HAS_PW=int(pos_weight is not None), ELEMENTWISE_UP=ew, F64=x.dtype == torch.float64,
            BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return g.view(x.shape)


def _rows(g: Tensor):
    B = g.shape[0]
    return B, (g.numel() // B if B else 0)


def _center(center: float, one_sided: bool):
    # c = 0 is the squared norm, whether one-sided or not (n >= 0)
    zero = center == 0
    return zero, (0 if zero else int(one_sided))


def penalty_forward(g: Tensor, center: float, one_sided: bool, reduction: str) -> List[Tensor]:
    """Returns ``[penalty (or per-sample terms), per-sample squared norms]``."""
    _load()
    kp = _penalty
    B, D = _rows(g)
    gk = _flat(g)
    acc = _acc_dtype(g.dtype)
    f64 = g.dtype == torch.float64
    plan = kp.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=g.device)
    kp.sqnorm_partial_kernel[plan.grid](gk, part, B, D, plan.splits, plan.iters, F64=f64, ROWS=plan.rows,
                                        BLOCK_D=plan.block_d, num_warps=kp.NUM_WARPS)
    sq = torch.empty(B, dtype=acc, device=g.device)
    center_zero, one = _center(center, one_sided)
    if reduction == "none":
        terms = torch.empty(B, dtype=g.dtype, device=g.device)
        out = terms
    else:
        out = torch.empty((), dtype=g.dtype, device=g.device)
        terms = out
    w = 1.0 / B if (reduction == "mean" and B) else 1.0
    kp.penalty_finish_kernel[(1,)](part, sq, terms, out, B, plan.splits, *kp.split(float(center)), *kp.split(w),
                                   _bias(reduction, (B,)), ONE_SIDED=one, CENTER_ZERO=int(center_zero),
                                   REDUCE=int(reduction != "none"), F64=f64, ROWS=kp.FINISH_ROWS,
                                   SPLITS=kp.FINISH_SPLITS, num_warps=kp.NUM_WARPS)
    return [out, sq]


def penalty_backward(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str,
                     up: Tensor) -> Tensor:
    _load()
    kp = _penalty
    B, D = _rows(g)
    gk = _flat(g)
    dg = torch.empty_like(gk)
    plan = kp.row_plan(B, D)
    center_zero, one = _center(center, one_sided)
    ew = int(reduction == "none")
    w = 1.0 / B if (reduction == "mean" and B) else 1.0
    upk = up.to(g.dtype).contiguous()
    if gk.numel():
        kp.penalty_bwd_kernel[plan.grid](gk, sq, upk, dg, B, D, plan.splits, plan.iters,
                                         *kp.split(float(center)), *kp.split(w), ONE_SIDED=one,
                                         CENTER_ZERO=int(center_zero), ELEMENTWISE_UP=ew,
                                         F64=g.dtype == torch.float64, ROWS=plan.rows, BLOCK_D=plan.block_d,
                                         num_warps=kp.NUM_WARPS)
    return dg.view(g.shape)


def run(spec: OpSpec, tensors: Sequence[Tensor], kwargs: dict, reduction: str):
    return _fused.run("triton", spec, tensors, kwargs, reduction)


_fused.register_impl("triton", sys.modules[__name__])
