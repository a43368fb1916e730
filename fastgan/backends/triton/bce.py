"""The drop-in ``binary_cross_entropy_with_logits`` on the Triton kernels
(``kernels/losses.py``): launchers, custom ops, the family op.  The kernels differentiate
the input; gradients of the target, weight or pos_weight are the reference's VJP."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from ... import reference
from ...registry import Family
from ..interface import FamilyOp, promoted
from ..modes import compiling, reference_vjp
from .launch import acc_dtype, custom_op, fake_like, flat, kernels, one_pass, weight


def _operands(x: Tensor, t: Tensor, w: Optional[Tensor], pw: Optional[Tensor]):
    """Flat operands; the target, weight and pos_weight in the accumulation dtype, so a
    weight of 1e5 or 1e-8 or a label of 0.9 is never rounded to a half type first."""
    acc = acc_dtype(x.dtype)
    tk = flat(t.to(acc))
    wk = flat(w.to(acc).expand(x.shape)) if w is not None else tk
    pk = flat(pw.to(acc).expand(x.shape)) if pw is not None else tk
    return flat(x), tk, wk, pk


def bce_forward(x: Tensor, t: Tensor, w: Optional[Tensor], pw: Optional[Tensor], reduction: str) -> Tensor:
    k = kernels("losses")
    xk, tk, wk, pk = _operands(x, t, w, pw)
    n = x.numel()
    common = dict(HAS_W=int(w is not None), HAS_PW=int(pw is not None),
                  F64=x.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    out = one_pass(k, k.bce_fwd_kernel, (xk, tk, wk, pk), n, reduction, x, common)
    return out.view(x.shape) if reduction == "none" else out


def bce_backward(x: Tensor, t: Tensor, w: Optional[Tensor], pw: Optional[Tensor], reduction: str,
                 up: Tensor) -> Tensor:
    """The gradient of the input (the kernel has no other)."""
    k = kernels("losses")
    xk, tk, wk, pk = _operands(x, t, w, pw)
    n = x.numel()
    g = torch.empty_like(xk)
    ew = int(reduction == "none")
    upk = flat(up.to(x.dtype)) if ew else up.to(x.dtype)
    if n:
        k.bce_bwd_kernel[(k.elementwise_grid(n),)](
            xk, tk, wk, pk, upk, g, n, *k.split(weight(reduction, n)), HAS_W=int(w is not None),
            HAS_PW=int(pw is not None), ELEMENTWISE_UP=ew, F64=x.dtype == torch.float64,
            BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return g.view(x.shape)


def _reference(reduction: str):
    return lambda x, t, w, pw: reference.binary_cross_entropy_with_logits(x, t, w, reduction, pw)


# --------------------------------------------------------------------------- custom ops (torch.compile)

@custom_op("fastgan::triton_bce_with_logits")
def bce_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
           reduction: str) -> Tensor:
    return bce_forward(x, t, weight, pos_weight, reduction)


@bce_op.register_fake
def _(x, t, weight, pos_weight, reduction):
    return fake_like(x) if reduction == "none" else x.new_empty(())


@custom_op("fastgan::triton_bce_with_logits_backward")
def bce_bwd_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
               reduction: str, up: Tensor, needs: List[bool]) -> List[Tensor]:
    """The gradients ``needs`` asks for, in the order (input, target, weight, pos_weight);
    an empty tensor where none is asked for.  The input's alone come from the fused
    kernel; the others from the reference's VJP, evaluated here, outside the trace."""
    if not any(needs[1:]):
        grads = [bce_backward(x, t, weight, pos_weight, reduction, up), None, None, None]
    else:
        # torch.func's vjp: plain autograd is switched off inside a custom op
        given = [v for v in (x, t, weight, pos_weight) if v is not None]

        def loss(*a):
            it = iter(a)
            return _reference(reduction)(*[next(it) if v is not None else None for v in (x, t, weight, pos_weight)])

        res = iter(torch.func.vjp(loss, *given)[1](up))
        grads = [next(res) if v is not None else None for v in (x, t, weight, pos_weight)]
        grads = [g if need else None for g, need in zip(grads, needs)]
    # contiguous, as the fake implementation says (the VJP keeps a transposed input's strides)
    return [g.contiguous() if g is not None else x.new_empty(0) for g in grads]


@bce_bwd_op.register_fake
def _(x, t, weight, pos_weight, reduction, up, needs):
    likes = (x, t, weight, pos_weight)
    return [fake_like(v) if (need and v is not None) else x.new_empty(0) for v, need in zip(likes, needs)]


# --------------------------------------------------------------------------- the family op

class BCEOp(FamilyOp):
    family = Family.BCE
    implementation = "kernels/losses.py: one launch (+ a sum of partials) forward, one backward; fused.fused"

    def run(self, spec, tensors, kwargs, reduction):
        x, t = promoted(*tensors)
        out = self.apply(reduction, x, t, kwargs["weight"], kwargs["pos_weight"])
        return out.to(tensors[1].dtype)  # torch's drop-in: the result has the target's dtype

    @staticmethod
    def forward(reduction, tensors):
        if compiling():
            return bce_op(*tensors, reduction), ()
        return bce_forward(*tensors, reduction), ()

    @staticmethod
    def backward(reduction, inputs, saved, grads, needs):
        (up,) = grads
        if compiling():
            return bce_bwd_op(*inputs, reduction, up, list(needs))
        if any(needs[1:]):  # gradients of target / weight / pos_weight
            return reference_vjp(_reference(reduction), inputs, grads, needs)
        return [bce_backward(*inputs, reduction, up), None, None, None]

    @staticmethod
    def reference(reduction, x, t, w, pw):
        return _reference(reduction)(x, t, w, pw)


OP = BCEOp()
