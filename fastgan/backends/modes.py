"""What mode the caller is in: compiling, inside a ``torch.func`` transform, under vmap.

The dispatcher (``backends.run``) and the Triton autograd read these; the fused kernels
have no batching or forward-derivative rules, so under a transform the reference
computes instead."""
from __future__ import annotations

import torch
import torch.autograd.forward_ad as _forward_ad


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
