"""The gradient-norm penalty on the Triton kernels (``kernels/penalty.py``): per-sample
squared norms (rows split across programs when long), the finisher, one backward pass;
launchers, custom ops, the family op."""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

from ... import reference
from ...registry import Family
from ..interface import FamilyOp
from ..modes import compiling
from .launch import acc_dtype, bias, custom_op, fake_like, flat, kernels, rows, weight


def _center_flags(center: float, one_sided: bool) -> Tuple[int, int]:
    # c = 0 is the squared norm, whether one-sided or not (n >= 0)
    return int(center == 0), (0 if center == 0 else int(one_sided))


def penalty_forward(g: Tensor, center: float, one_sided: bool, reduction: str) -> List[Tensor]:
    """``[penalty (or per-sample terms), per-sample squared norms]``."""
    kp = kernels("penalty")
    B, D = rows(g)
    acc = acc_dtype(g.dtype)
    f64 = g.dtype == torch.float64
    plan = kp.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=g.device)
    kp.sqnorm_partial_kernel[plan.grid](flat(g), part, B, D, plan.splits, plan.iters, F64=f64, ROWS=plan.rows,
                                        BLOCK_D=plan.block_d, num_warps=kp.NUM_WARPS)
    sq = torch.empty(B, dtype=acc, device=g.device)
    center_zero, one = _center_flags(center, one_sided)
    out = torch.empty((B,) if reduction == "none" else (), dtype=g.dtype, device=g.device)
    kp.penalty_finish_kernel[(1,)](part, sq, out, out, B, plan.splits, *kp.split(center),
                                   *kp.split(weight(reduction, B)), bias(reduction, (B,)), ONE_SIDED=one,
                                   CENTER_ZERO=center_zero, REDUCE=int(reduction != "none"), F64=f64,
                                   ROWS=kp.FINISH_ROWS, SPLITS=kp.FINISH_SPLITS, num_warps=kp.NUM_WARPS)
    return [out, sq]


def penalty_backward(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str,
                     up: Tensor) -> Tensor:
    kp = kernels("penalty")
    B, D = rows(g)
    gk = flat(g)
    dg = torch.empty_like(gk)
    plan = kp.row_plan(B, D)
    center_zero, one = _center_flags(center, one_sided)
    if gk.numel():
        kp.penalty_bwd_kernel[plan.grid](gk, sq, up.to(g.dtype).contiguous(), dg, B, D, plan.splits, plan.iters,
                                         *kp.split(center), *kp.split(weight(reduction, B)), ONE_SIDED=one,
                                         CENTER_ZERO=center_zero, ELEMENTWISE_UP=int(reduction == "none"),
                                         F64=g.dtype == torch.float64, ROWS=plan.rows, BLOCK_D=plan.block_d,
                                         num_warps=kp.NUM_WARPS)
    return dg.view(g.shape)


# --------------------------------------------------------------------------- custom ops (torch.compile)

@custom_op("fastgan::triton_grad_norm_penalty")
def penalty_op(g: Tensor, center: float, one_sided: bool, reduction: str) -> List[Tensor]:
    return penalty_forward(g, center, one_sided, reduction)


@penalty_op.register_fake
def _(g, center, one_sided, reduction):
    B = g.shape[0]
    out = g.new_empty((B,)) if reduction == "none" else g.new_empty(())
    return [out, g.new_empty((B,), dtype=acc_dtype(g.dtype))]


@custom_op("fastgan::triton_grad_norm_penalty_backward")
def penalty_bwd_op(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str, up: Tensor) -> Tensor:
    return penalty_backward(g, sq, center, one_sided, reduction, up)


@penalty_bwd_op.register_fake
def _(g, sq, center, one_sided, reduction, up):
    return fake_like(g)


# --------------------------------------------------------------------------- the family op

class PenaltyOp(FamilyOp):
    family = Family.PENALTY
    implementation = "kernels/penalty.py: row sums + a finisher forward, one pass backward; fused.fused"

    def run(self, spec, tensors, kwargs, reduction):
        static = (float(kwargs.get("center", 1.0)), bool(kwargs.get("one_sided", False)), reduction)
        return self.apply(static, tensors[0])

    @staticmethod
    def forward(static, tensors):
        (g,) = tensors
        out, sq = (penalty_op if compiling() else penalty_forward)(g, *static)
        return out, (sq,)

    @staticmethod
    def backward(static, inputs, saved, grads, needs):
        return [(penalty_bwd_op if compiling() else penalty_backward)(inputs[0], saved[0], *static, grads[0])]

    @staticmethod
    def reference(static, g):
        center, one_sided, reduction = static
        return reference.grad_norm_penalty(g, center=center, one_sided=one_sided, reduction=reduction)


OP = PenaltyOp()
