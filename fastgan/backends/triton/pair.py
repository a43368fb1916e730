"""The pair losses on the Triton kernels (``kernels/losses.py``): launchers, the custom ops
``torch.compile`` traces, and the family op.  Forward: one launch (+ one sum of the
partials above one program); backward: one element-wise launch."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

from ...registry import OPS, Family, Kind, PairOptions, Side
from ..interface import FamilyOp, lowered, promoted
from ..modes import compiling
from .launch import acc_dtype, bias, custom_op, fake_like, flat, kernels, weight


def _side_args(k, side: Optional[Side], n: int, reduction: str):
    """One side's kernel scalars: sgn, label (hi, lo), weight (hi, lo)."""
    side = side or Side(1.0, 0.0)  # no real side: no element reads it
    return (float(side.sgn), *k.split(side.label), *k.split(weight(reduction, n)))


def _operands(k, real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str):
    """Flat real and fake (fake again in the real slot without real), their sizes, and
    both sides' kernel scalars."""
    fk = flat(fake)
    rk = flat(real) if real is not None else fk
    n_r = real.numel() if real is not None else 0
    n_f = fake.numel()
    return rk, fk, n_r, n_f, (*_side_args(k, opts.real, n_r, reduction), *_side_args(k, opts.fake, n_f, reduction))


def pair_forward(real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str) -> List[Tensor]:
    """``[loss]``, or with ``"none"`` ``[real terms (empty without real), fake terms]``."""
    k = kernels("losses")
    rk, fk, n_r, n_f, scalars = _operands(k, real, fake, opts, reduction)
    common = dict(KIND=int(opts.kind), F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
        out_f = torch.empty_like(fk)
        if n_r + n_f:
            k.pair_fwd_kernel[(k.elementwise_grid(n_r + n_f),)](
                rk, fk, out_r, out_f, out_f, n_r, n_f, 1, *scalars, 0.0, REDUCE=0, FINAL=0, **common)
        return [out_r.view(real.shape) if real is not None else out_r, out_f.view(fake.shape)]
    b = bias(reduction, (n_r, n_f) if real is not None else (n_f,))
    plan = k.reduce_plan(n_r + n_f)
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.pair_fwd_kernel[(1,)](rk, fk, rk, fk, out, n_r, n_f, plan.iters, *scalars, b,
                                REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=acc_dtype(fake.dtype), device=fake.device)
        k.pair_fwd_kernel[(plan.programs,)](rk, fk, rk, fk, part, n_r, n_f, plan.iters, *scalars, 0.0,
                                            REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, b, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return [out]


def pair_backward(real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str,
                  grads: Sequence[Tensor]) -> List[Tensor]:
    """``[d real (empty without real), d fake]`` for the upstream ``grads`` (one 0-d
    tensor; with ``"none"`` one per output)."""
    k = kernels("losses")
    rk, fk, n_r, n_f, scalars = _operands(k, real, fake, opts, reduction)
    g_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
    g_f = torch.empty_like(fk)
    if reduction == "none":
        up = grads[-1]
        up_r = flat(grads[0].to(rk.dtype)) if real is not None else fk
        up_f = flat(grads[-1].to(fk.dtype))
    else:
        up = grads[0].to(fk.dtype)
        up_r = up_f = fk
    if n_r + n_f:
        k.pair_bwd_kernel[(k.elementwise_grid(n_r + n_f),)](
            rk, fk, up, up_r, up_f, g_r, g_f, n_r, n_f, *scalars, KIND=int(opts.kind),
            ELEMENTWISE_UP=int(reduction == "none"), F64=fk.dtype == torch.float64, BLOCK=k.BLOCK,
            num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if real is not None else g_r, g_f.view(fake.shape)]


# --------------------------------------------------------------------------- custom ops (torch.compile)
# PairOptions crosses as (kind, params) and is rebuilt on the other side.

def _unpack(kind: int, params: Sequence[float], has_real: bool) -> PairOptions:
    real = Side(params[0], params[1]) if has_real else None
    return PairOptions(Kind(kind), real, Side(params[2], params[3]))


@custom_op("fastgan::triton_pair_loss")
def pair_loss_op(real: Optional[Tensor], fake: Tensor, kind: int, params: List[float],
                 reduction: str) -> List[Tensor]:
    return pair_forward(real, fake, _unpack(kind, params, real is not None), reduction)


@pair_loss_op.register_fake
def _(real, fake, kind, params, reduction):
    if reduction == "none":
        return [fake_like(real) if real is not None else fake.new_empty(0), fake_like(fake)]
    return [fake.new_empty(())]


@custom_op("fastgan::triton_pair_loss_backward")
def pair_loss_bwd_op(real: Optional[Tensor], fake: Tensor, kind: int, params: List[float], reduction: str,
                     grads: List[Tensor]) -> List[Tensor]:
    return pair_backward(real, fake, _unpack(kind, params, real is not None), reduction, grads)


@pair_loss_bwd_op.register_fake
def _(real, fake, kind, params, reduction, grads):
    return [fake_like(real) if real is not None else fake.new_empty(0), fake_like(fake)]


# --------------------------------------------------------------------------- the family op

class PairOp(FamilyOp):
    family = Family.PAIR
    implementation = "kernels/losses.py: one launch (+ a sum of partials) forward, one backward; fused.fused"

    def run(self, spec, tensors, kwargs, reduction):
        opts = lowered(spec, kwargs)
        static = (spec.name, tuple(kwargs.items()), opts, reduction)
        if len(tensors) == 1:
            return self.apply(static, None, tensors[0])
        real, fake = promoted(*tensors)
        out = self.apply(static, real, fake)
        if reduction == "none" and tensors[0].dtype != tensors[1].dtype:
            # "none" of inputs of two dtypes: each side's terms in its input's dtype
            return out[0].to(tensors[0].dtype), out[1].to(tensors[1].dtype)
        return out

    @staticmethod
    def forward(static, tensors):
        real, fake = tensors
        _, _, opts, reduction = static
        if compiling():
            outs = pair_loss_op(real, fake, int(opts.kind), opts.params(), reduction)
        else:
            outs = pair_forward(real, fake, opts, reduction)
        if reduction == "none":
            return ((outs[0], outs[1]) if real is not None else outs[1]), ()
        return outs[0], ()

    @staticmethod
    def backward(static, inputs, saved, grads, needs):
        real, fake = inputs
        _, _, opts, reduction = static
        if compiling():
            g_r, g_f = pair_loss_bwd_op(real, fake, int(opts.kind), opts.params(), reduction, list(grads))
        else:
            g_r, g_f = pair_backward(real, fake, opts, reduction, grads)
        return [g_r if real is not None else None, g_f]

    @staticmethod
    def reference(static, real, fake):
        name, kwargs, _, reduction = static
        ref = OPS[name].reference
        if real is None:
            return ref(fake, **dict(kwargs), reduction=reduction)
        return ref(real, fake, **dict(kwargs), reduction=reduction)


OP = PairOp()
