"""What mode the caller is in: compiling, inside a ``torch.func`` transform, under vmap;
and the backward every fused backend falls back to there, ``reference_vjp``.

The dispatcher (``backends.run``) and the backends' autograd read these; the fused kernels
have no batching or forward-derivative rules, so under a transform the reference
computes instead, and a backward that records a graph is the reference's VJP."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.autograd.forward_ad as _forward_ad
from torch import Tensor

from ..registry import OPS


def compiling() -> bool:
    return torch.compiler.is_compiling()


def transformed() -> bool:
    """Inside a torch.func transform or a forward-mode AD level."""
    return torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0


_is_legacy_batched = getattr(torch._C._functorch, "is_legacy_batchedtensor", lambda t: False)


def vmapped(grads) -> bool:
    """A backward under vmap: a transform, or upstream gradients batched by the legacy vmap
    (``jacobian(vectorize=True)``, ``gradcheck(check_batched_grad=True)``)."""
    return transformed() or any(g is not None and _is_legacy_batched(g) for g in grads)


def reference_vjp(fn, inputs: Sequence[Optional[Tensor]], grads: Sequence[Tensor], needs: Sequence[bool]):
    """The backward as the reference's vector-Jacobian product: one gradient (or None)
    per input, for the inputs whose ``needs`` is set; with a graph when grad mode is on
    (``create_graph=True``: double backward).

    The reference is evaluated on fresh views of the saved inputs, and differentiated
    with respect to those views: each view's gradient is then the partial derivative
    through that argument alone.  Differentiating with respect to the saved tensors
    themselves would also follow the paths between them (a target computed from the
    logits, ``real`` and ``fake`` the same tensor) and autograd would add those paths
    a second time.  With a graph, the views keep it to the saved tensors, so a double
    backward reaches everything they depend on; without one, detached leaves do."""
    create_graph = torch.is_grad_enabled()

    def leaf(x):
        return x.view_as(x) if (create_graph and x.requires_grad) else x.detach().requires_grad_()

    with torch.enable_grad():
        views = [leaf(x) if (x is not None and need) else x for x, need in zip(inputs, needs)]
        out = fn(*views)
        outs = list(out) if isinstance(out, tuple) else [out]
        wrt = [v for v, need in zip(views, needs) if v is not None and need]
        res = iter(torch.autograd.grad(outs, wrt, list(grads), create_graph=create_graph, allow_unused=True))
    return [next(res) if (x is not None and need) else None for x, need in zip(inputs, needs)]


def op_vjp(name: str, kwargs: dict, reduction: str, inputs, grads, needs):
    """``reference_vjp`` of the registry op ``name`` called with ``kwargs`` and ``reduction``
    (the fallback backward of the fused backends' per-op autograd Functions)."""
    ref = OPS[name].reference
    return reference_vjp(lambda *xs: ref(*xs, **kwargs, reduction=reduction), inputs, grads, needs)
