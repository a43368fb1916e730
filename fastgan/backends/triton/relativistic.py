"""The relativistic losses (RaGAN, RpGAN) on the Triton kernels (``kernels/relativistic.py``,
whose docstring has the math): RaGAN's batch sums, then the fused BCE terms of the
shifted scores with Σa, Σb in the same pass, then one element-wise backward; RpGAN one
pass over both tensors each way.  Every scalar stays on the device.  Launchers, the
custom ops ``torch.compile`` traces, the family op."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..families import RAGAN_LABELS, RPGAN_GEN, Relativistic
from ..modes import compiling
from .launch import acc_dtype, bias, custom_op, empty_for, fake_like, flat, kernels, one_pass, weight

def _ragan_params(k, labels: Tuple[float, float], reduction: str, n_r: int, n_f: int):
    return (*k.split(labels[0]), *k.split(weight(reduction, n_r)),
            *k.split(labels[1]), *k.split(weight(reduction, n_f)))


def ragan_forward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str):
    """``(outs, stats)``: ``outs`` is ``[loss]`` or, with ``"none"``, ``[real terms, fake
    terms]``; ``stats`` (accumulation dtype, on the device) is ``(Σx, Σy, Σa, Σb)``
    (``Σa``, ``Σb`` only when reduced), what the backward reads."""
    k = kernels("relativistic")
    rk, fk = flat(real), flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    acc = acc_dtype(fake.dtype)
    common = dict(F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    finish = dict(BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    stats = torch.empty(4, dtype=acc, device=fake.device)
    ab = stats[2:]
    plan = k.reduce_plan(n_r + n_f)
    part = None
    # stage 1: Σx, Σy
    if plan.final:
        k.side_sums_kernel[(1,)](rk, fk, stats, n_r, n_f, plan.iters, 1, **common)
    else:
        part = torch.empty(3 * plan.programs, dtype=acc, device=fake.device)
        k.side_sums_kernel[(plan.programs,)](rk, fk, part, n_r, n_f, plan.iters, plan.programs, **common)
        k.sum_rows_kernel[(2,)](part, stats, stats[1:], plan.programs, 0.0, **finish)
    params = _ragan_params(k, labels, reduction, n_r, n_f)
    if reduction == "none":
        out_r, out_f = torch.empty_like(rk), torch.empty_like(fk)
        if n_r + n_f:
            k.ragan_kernel[(k.elementwise_grid(n_r + n_f),)](
                rk, fk, stats, rk, fk, out_r, out_f, ab, stats, n_r, n_f, 1, 1, *params, 0.0,
                MODE=k.MODE_TERMS, FINAL=0, **common)
        return [out_r.view(real.shape), out_f.view(fake.shape)], stats
    # stages 2 and 3: the loss, Σa, Σb
    b = bias(reduction, (n_r, n_f))
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.ragan_kernel[(1,)](rk, fk, stats, rk, fk, out, out, ab, ab, n_r, n_f, plan.iters, 1, *params, b,
                             MODE=k.MODE_LOSS, FINAL=1, **common)
    else:
        k.ragan_kernel[(plan.programs,)](rk, fk, stats, rk, fk, out, out, ab, part, n_r, n_f, plan.iters,
                                         plan.programs, *params, 0.0, MODE=k.MODE_LOSS, FINAL=0, **common)
        k.sum_rows_kernel[(3,)](part, out, ab, plan.programs, b, **finish)
    return [out], stats


def ragan_backward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str, stats: Tensor,
                   grads: Sequence[Tensor], needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[d real, d fake]`` (None where ``needs`` is unset) for the upstream ``grads``
    (one 0-d tensor; with ``"none"`` one per output)."""
    k = kernels("relativistic")
    rk, fk = flat(real), flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    common = dict(F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    params = _ragan_params(k, labels, reduction, n_r, n_f)
    ew = reduction == "none"
    if ew:
        # Σ g_r·a and Σ g_f·b: one reduction launch (and its finish above one program)
        up = fk
        up_r, up_f = flat(grads[0].to(rk.dtype)), flat(grads[1].to(fk.dtype))
        ab = torch.empty(2, dtype=stats.dtype, device=fake.device)
        plan = k.reduce_plan(n_r + n_f)
        if plan.final:
            k.ragan_kernel[(1,)](rk, fk, stats, up_r, up_f, rk, fk, ab, ab, n_r, n_f, plan.iters, 1, *params, 0.0,
                                 MODE=k.MODE_DOT, FINAL=1, **common)
        else:
            part = torch.empty(2 * plan.programs, dtype=stats.dtype, device=fake.device)
            k.ragan_kernel[(plan.programs,)](rk, fk, stats, up_r, up_f, rk, fk, ab, part, n_r, n_f, plan.iters,
                                             plan.programs, *params, 0.0, MODE=k.MODE_DOT, FINAL=0, **common)
            k.sum_rows_kernel[(2,)](part, ab, ab[1:], plan.programs, 0.0, BLOCK=k.PARTIALS_BLOCK,
                                    num_warps=k.NUM_WARPS)
    else:
        up = grads[0].to(fk.dtype)
        up_r = up_f = fk
        ab = stats[2:]
    need_r, need_f = needs
    g_r = torch.empty_like(rk) if need_r else None
    g_f = torch.empty_like(fk) if need_f else None
    nb_r = k.elementwise_grid(n_r) if n_r else 0
    # the tiles of the sides whose gradient is needed
    if need_r and need_f:
        b_first, b_stop, grid = 0, nb_r + (k.elementwise_grid(n_f) if n_f else 0), k.elementwise_grid(n_r + n_f)
    elif need_r:
        b_first, b_stop, grid = 0, nb_r, nb_r
    else:
        b_first, b_stop = nb_r, nb_r + (k.elementwise_grid(n_f) if n_f else 0)
        grid = b_stop - b_first
    if b_stop > b_first:
        k.ragan_bwd_kernel[(grid,)](
            rk, fk, stats, ab, up, up_r, up_f, g_r if need_r else fk, g_f if need_f else fk,
            n_r, n_f, b_first, b_stop, *params, ELEMENTWISE_UP=int(ew), **common)
    return [g_r.view(real.shape) if need_r else None, g_f.view(fake.shape) if need_f else None]


# --------------------------------------------------------------------------- RpGAN launchers

def rpgan_forward(real: Tensor, fake: Tensor, gen: int, reduction: str) -> Tensor:
    k = kernels("relativistic")
    rk, fk = flat(real), flat(fake)
    n = rk.numel()
    common = dict(GEN=gen, F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    out = one_pass(k, k.rpgan_fwd_kernel, (rk, fk), n, reduction, fake, common)
    return out.view(real.shape) if reduction == "none" else out


def rpgan_backward(real: Tensor, fake: Tensor, gen: int, reduction: str, up: Tensor,
                   needs: Sequence[bool]) -> List[Optional[Tensor]]:
    k = kernels("relativistic")
    rk, fk = flat(real), flat(fake)
    n = rk.numel()
    ew = reduction == "none"
    upk = flat(up.to(fk.dtype)) if ew else up.to(fk.dtype)
    need_r, need_f = needs
    g_r = torch.empty_like(rk) if need_r else None
    g_f = torch.empty_like(fk) if need_f else None
    if n:
        k.rpgan_bwd_kernel[(k.elementwise_grid(n),)](
            rk, fk, upk, g_r if need_r else fk, g_f if need_f else fk, n, *k.split(weight(reduction, n)),
            GEN=gen, ELEMENTWISE_UP=int(ew), NEED_R=int(need_r), NEED_F=int(need_f),
            F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if need_r else None, g_f.view(fake.shape) if need_f else None]


# --------------------------------------------------------------------------- custom ops (torch.compile)

@custom_op("fastgan::triton_ragan")
def ragan_op(real: Tensor, fake: Tensor, labels: List[float], reduction: str) -> List[Tensor]:
    """``[loss or both sides' terms..., stats]``."""
    outs, stats = ragan_forward(real, fake, (labels[0], labels[1]), reduction)
    return [*outs, stats]


@ragan_op.register_fake
def _(real, fake, labels, reduction):
    stats = fake.new_empty(4, dtype=acc_dtype(fake.dtype))
    if reduction == "none":
        return [fake_like(real), fake_like(fake), stats]
    return [fake.new_empty(()), stats]


@custom_op("fastgan::triton_ragan_backward")
def ragan_bwd_op(real: Tensor, fake: Tensor, labels: List[float], reduction: str, stats: Tensor,
                 grads: List[Tensor], needs: List[bool]) -> List[Tensor]:
    res = ragan_backward(real, fake, (labels[0], labels[1]), reduction, stats, grads, needs)
    return [empty_for(g, fake) for g in res]


@ragan_bwd_op.register_fake
def _(real, fake, labels, reduction, stats, grads, needs):
    return [fake_like(x) if need else fake.new_empty(0) for x, need in zip((real, fake), needs)]


@custom_op("fastgan::triton_rpgan")
def rpgan_op(real: Tensor, fake: Tensor, gen: int, reduction: str) -> Tensor:
    return rpgan_forward(real, fake, gen, reduction)


@rpgan_op.register_fake
def _(real, fake, gen, reduction):
    return fake_like(real) if reduction == "none" else fake.new_empty(())


@custom_op("fastgan::triton_rpgan_backward")
def rpgan_bwd_op(real: Tensor, fake: Tensor, gen: int, reduction: str, up: Tensor,
                 needs: List[bool]) -> List[Tensor]:
    return [empty_for(g, fake) for g in rpgan_backward(real, fake, gen, reduction, up, needs)]


@rpgan_bwd_op.register_fake
def _(real, fake, gen, reduction, up, needs):
    return [fake_like(x) if need else fake.new_empty(0) for x, need in zip((real, fake), needs)]


# --------------------------------------------------------------------------- the family op

class RelativisticOp(Relativistic):
    implementation = "kernels/relativistic.py: sums + one fused pass forward, one pass backward; fused.fused"

    @staticmethod
    def forward(static, tensors):
        name, reduction = static
        real, fake = tensors
        if name in RAGAN_LABELS:
            if compiling():
                *outs, stats = ragan_op(real, fake, list(RAGAN_LABELS[name]), reduction)
            else:
                outs, stats = ragan_forward(real, fake, RAGAN_LABELS[name], reduction)
            return ((outs[0], outs[1]) if reduction == "none" else outs[0]), (stats,)
        return (rpgan_op if compiling() else rpgan_forward)(real, fake, RPGAN_GEN[name], reduction), ()

    @staticmethod
    def backward(static, inputs, saved, grads, needs):
        name, reduction = static
        real, fake = inputs
        if name in RAGAN_LABELS:
            if compiling():
                return ragan_bwd_op(real, fake, list(RAGAN_LABELS[name]), reduction, saved[0], list(grads),
                                    list(needs))
            return ragan_backward(real, fake, RAGAN_LABELS[name], reduction, saved[0], grads, needs)
        if compiling():
            return rpgan_bwd_op(real, fake, RPGAN_GEN[name], reduction, grads[0], list(needs))
        return rpgan_backward(real, fake, RPGAN_GEN[name], reduction, grads[0], needs)


OP = RelativisticOp()
