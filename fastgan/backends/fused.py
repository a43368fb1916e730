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

``fused(op)`` is that rule as the op's ``torch.autograd.Function`` (``op.autograd``, made
once per op: the op is closed over, not passed to ``apply``, so Dynamo traces it also
when the options are symbolic).  Under ``torch.compile`` the op's ``forward`` /
``backward`` call its custom ops (opaque to Dynamo, with fake implementations), so the
same Function traces without graph breaks.
"""
from __future__ import annotations

import torch

from .modes import compiling, reference_vjp, vmapped


def distinct(tensors) -> list:
    """``tensors`` with a repeated tensor replaced by a view of it: ``real`` and ``fake`` may
    be the same tensor, which ``torch.compile`` refuses as two inputs of one
    ``autograd.Function``; autograd adds the paths through the view."""
    seen = set()
    out = []
    for t in tensors:
        if t is not None:
            if id(t) in seen:
                t = t.view_as(t)
            else:
                seen.add(id(t))
        out.append(t)
    return out


def fused(op) -> type:
    """The ``torch.autograd.Function`` of ``op``: ``apply(static, *tensors)``, ``op.forward``
    forward, ``op.backward`` or the reference's VJP backward (see the module docstring)."""

    class Fused(torch.autograd.Function):
        @staticmethod
        def forward(ctx, static, *tensors):
            out, saved = op.forward(static, tensors)
            ctx.static, ctx.n = static, len(tensors)
            ctx.save_for_backward(*tensors, *saved)
            return out

        @staticmethod
        def backward(ctx, *grads):
            xs = ctx.saved_tensors
            inputs, saved = xs[:ctx.n], xs[ctx.n:]
            needs = ctx.needs_input_grad[1:]
            static = ctx.static
            if not compiling() and (torch.is_grad_enabled() or vmapped(grads)):
                res = reference_vjp(lambda *a: op.reference(static, *a), inputs, grads, needs)
            else:
                res = op.backward(static, inputs, saved, grads, needs)
            return (None, *[g if need else None for g, need in zip(res, needs)])

    Fused.__name__ = Fused.__qualname__ = f"Fused{type(op).__name__}"  # grad_fn: <FusedPairOpBackward>
    return Fused
