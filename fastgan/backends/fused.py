"""The one autograd rule of the Python-side fused ops (every Triton family, and the native
families whose extension ops are raw forward/backward pairs).

A fused family op provides three methods over a hashable ``static`` (its lowered options):

* ``forward(static, tensors) -> (output, saved)``: the fused forward; ``saved`` is a
  tuple of extra tensors (statistics) the backward reads;
* ``backward(static, inputs, saved, grads, needs) -> gradients``: the fused backward, one
  gradient (or None) per input;
* ``reference(static, *tensors)``: the op's reference, whose vector-Jacobian product is
  the backward wherever the fused one does not apply: a backward that records a graph
  (``create_graph=True``) or runs under vmap.  Differentiable to any order, the same
  rule as the ``"torch"`` backend.

Under ``torch.compile`` the op's ``forward``/``backward`` call its custom ops (opaque to
Dynamo, with fake implementations), so the same Function traces without graph breaks.
"""
from __future__ import annotations

import torch

from .modes import compiling, reference_vjp, vmapped


class Fused(torch.autograd.Function):
    """``Fused.apply(op, static, *tensors)``: ``op.forward`` forward, ``op.backward`` or the
    reference's VJP backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, op, static, *tensors):
        out, saved = op.forward(static, tensors)
        ctx.op, ctx.static, ctx.n = op, static, len(tensors)
        ctx.save_for_backward(*tensors, *saved)
        return out

    @staticmethod
    def backward(ctx, *grads):
        xs = ctx.saved_tensors
        inputs, saved = xs[:ctx.n], xs[ctx.n:]
        needs = ctx.needs_input_grad[2:]
        op, static = ctx.op, ctx.static
        if not compiling() and (torch.is_grad_enabled() or vmapped(grads)):
            res = reference_vjp(lambda *a: op.reference(static, *a), inputs, grads, needs)
        else:
            res = op.backward(static, inputs, saved, grads, needs)
        return (None, None, *[g if need else None for g, need in zip(res, needs)])
