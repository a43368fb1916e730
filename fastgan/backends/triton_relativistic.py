"""The ``"triton"`` backend's relativistic losses (RaGAN, RpGAN): launchers and autograd
for ``kernels/relativistic.py`` (a section of ``triton_backend.py`` once merged).

* ``ragan_forward`` / ``ragan_backward``: the batch sums, the fused BCE terms on the
  shifted scores with ``Σa``, ``Σb`` in the same pass, then one element-wise backward
  (the math is in the kernel module's docstring); every scalar stays on the device.
* ``rpgan_forward`` / ``rpgan_backward``: one pass over ``x`` and ``y`` each way.
* ``relativistic``: the entry point ``fastgan.backends.run`` calls (eager only:
  under ``torch.compile`` and ``torch.func`` transforms ``run`` uses the reference).
  A backward that records a graph (``create_graph=True``) or runs under vmap is the
  reference's VJP (``_reference_vjp``), so second derivatives are exact.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..registry import OPS
from .modes import vmapped
from .triton_backend import _acc_dtype, _bias, _flat, _reference_vjp, _weight

# RaGAN labels (t_r, t_f); RpGAN: generator (s = y − x) or discriminator (s = x − y)
RAGAN_LABELS = {"ragan_d_loss": (1.0, 0.0), "ragan_g_loss": (0.0, 1.0)}
RPGAN_GEN = {"rpgan_d_loss": 0, "rpgan_g_loss": 1}


def _rel_kernels():
    """``fastgan.kernels.relativistic``, imported on first use (``TRITON_INTERPRET`` is read
    when the kernels are decorated)."""
    from ..kernels import relativistic
    return relativistic


# --------------------------------------------------------------------------- RaGAN launchers

def _ragan_params(k, labels: Tuple[float, float], reduction: str, n_r: int, n_f: int):
    return (*k.split(labels[0]), *k.split(_weight(reduction, n_r)),
            *k.split(labels[1]), *k.split(_weight(reduction, n_f)))


def ragan_forward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str):
    """``(outs, stats)``: ``outs`` is ``[loss]`` or, with ``"none"``, ``[real terms, fake
    terms]``; ``stats`` (accumulation dtype, on the device) is ``(Σx, Σy, Σa, Σb)``
    (``Σa``, ``Σb`` only when reduced), what the backward reads."""
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    acc = _acc_dtype(fake.dtype)
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
    bias = _bias(reduction, (n_r, n_f))
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.ragan_kernel[(1,)](rk, fk, stats, rk, fk, out, out, ab, ab, n_r, n_f, plan.iters, 1, *params, bias,
                             MODE=k.MODE_LOSS, FINAL=1, **common)
    else:
        k.ragan_kernel[(plan.programs,)](rk, fk, stats, rk, fk, out, out, ab, part, n_r, n_f, plan.iters,
                                         plan.programs, *params, 0.0, MODE=k.MODE_LOSS, FINAL=0, **common)
        k.sum_rows_kernel[(3,)](part, out, ab, plan.programs, bias, **finish)
    return [out], stats


def ragan_backward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str, stats: Tensor,
                   grads: Sequence[Tensor], needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[d real, d fake]`` (None where ``needs`` is unset) for the upstream ``grads``
    (one 0-d tensor; with ``"none"`` one per output)."""
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    common = dict(F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    params = _ragan_params(k, labels, reduction, n_r, n_f)
    ew = reduction == "none"
    if ew:
        # Σ g_r·a and Σ g_f·b: one reduction launch (and its finish above one program)
        up = fk
        up_r, up_f = _flat(grads[0].to(rk.dtype)), _flat(grads[1].to(fk.dtype))
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
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n = rk.numel()
    common = dict(GEN=gen, F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out = torch.empty_like(rk)
        if n:
            k.rpgan_fwd_kernel[(k.elementwise_grid(n),)](rk, fk, out, n, 1, *k.split(1.0), 0.0,
                                                         REDUCE=0, FINAL=0, **common)
        return out.view(real.shape)
    w = k.split(_weight(reduction, n))
    bias = _bias(reduction, (n,))
    plan = k.reduce_plan(n)
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.rpgan_fwd_kernel[(1,)](rk, fk, out, n, plan.iters, *w, bias, REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(fake.dtype), device=fake.device)
        k.rpgan_fwd_kernel[(plan.programs,)](rk, fk, part, n, plan.iters, *w, 0.0, REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def rpgan_backward(real: Tensor, fake: Tensor, gen: int, reduction: str, up: Tensor,
                   needs: Sequence[bool]) -> List[Optional[Tensor]]:
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n = rk.numel()
    ew = reduction == "none"
    upk = _flat(up.to(fk.dtype)) if ew else up.to(fk.dtype)
    need_r, need_f = needs
    g_r = torch.empty_like(rk) if need_r else None
    g_f = torch.empty_like(fk) if need_f else None
    if n:
        k.rpgan_bwd_kernel[(k.elementwise_grid(n),)](
            rk, fk, upk, g_r if need_r else fk, g_f if need_f else fk, n, *k.split(_weight(reduction, n)),
            GEN=gen, ELEMENTWISE_UP=int(ew), NEED_R=int(need_r), NEED_F=int(need_f),
            F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if need_r else None, g_f.view(fake.shape) if need_f else None]


# --------------------------------------------------------------------------- autograd

def _vjp(name: str, reduction: str, real: Tensor, fake: Tensor, grads, needs):
    ref = OPS[name].reference
    return _reference_vjp(lambda a, b: ref(a, b, reduction=reduction), [real, fake], grads, needs)


class _RaGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        outs, stats = ragan_forward(real, fake, RAGAN_LABELS[name], reduction)
        ctx.meta = (name, reduction)
        ctx.stats = stats
        ctx.save_for_backward(real, fake)
        return (outs[0], outs[1]) if reduction == "none" else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped(grads):
            g_r, g_f = _vjp(name, reduction, real, fake, grads, needs)
        else:
            g_r, g_f = ragan_backward(real, fake, RAGAN_LABELS[name], reduction, ctx.stats, grads, needs)
        return None, None, g_r, g_f


class _RpGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        ctx.meta = (name, reduction)
        ctx.save_for_backward(real, fake)
        return rpgan_forward(real, fake, RPGAN_GEN[name], reduction)

    @staticmethod
    def backward(ctx, up):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped([up]):
            g_r, g_f = _vjp(name, reduction, real, fake, [up], needs)
        else:
            g_r, g_f = rpgan_backward(real, fake, RPGAN_GEN[name], reduction, up, needs)
        return None, None, g_r, g_f


# --------------------------------------------------------------------------- entry point

def relativistic(name: str, real: Tensor, fake: Tensor, reduction: str):
    """A relativistic loss (``ragan_d_loss``, ``ragan_g_loss``, ``rpgan_d_loss``,
    ``rpgan_g_loss``) with autograd, fused forward and backward; ``real`` and ``fake``
    in one dtype (``backends.run`` promotes).  ``"none"``: RaGAN the tuple of both
    sides' terms, RpGAN the paired terms."""
    if name in RAGAN_LABELS:
        return _RaGAN.apply(name, reduction, real, fake)
    return _RpGAN.apply(name, reduction, real, fake)
