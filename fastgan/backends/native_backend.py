"""The ``"native"`` backend: the C++/CUDA extension in ``csrc/``, built and loaded by
``native_loader``.

Autograd is the extension's own: a ``torch::autograd::Function`` per op, registered
for the Autograd dispatch key (csrc/ops.cpp).  First derivatives come from the
backward kernels; a backward that records a graph (``create_graph=True``) is
composed of differentiable ATen ops instead (the native double-backward rule,
tested against the reference like every other derivative).  An eager call reaches
the autograd op through the extension's pybind11 functions, cheaper per call than
the boxed ``torch.ops`` call (benchmarks/results/native-cpu.md); under
``torch.compile`` the very same op is called through ``torch.ops.fastgan_native``,
which its Meta kernels make traceable.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..registry import OPS, PairOptions, Reduction
from . import native_loader
from .modes import compiling

_REDUCTION = {r.name.lower(): int(r) for r in Reduction}


def status() -> Tuple[bool, str]:
    return native_loader.status()


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if torch.version.cuda is None:
            return "this torch has no CUDA"
        if native_loader._nvcc() is None:
            return "no CUDA toolkit (nvcc) found: the CUDA part of the extension cannot be built; use 'triton'"
        return None
    return f"the native backend has no kernels for {device.type} tensors"


def _ops():
    """The autograd ops: pybind11 functions eagerly, ``torch.ops`` under compile (built by
    then: ``backends.run`` resolves the backend at trace time)."""
    return torch.ops.fastgan_native if compiling() else native_loader.module()


# --------------------------------------------------------------------------- entry points

def pair_loss(name: str, kwargs: dict, opts: PairOptions, reduction: str, real: Optional[Tensor], fake: Tensor):
    """A pair loss with autograd; ``real`` and ``fake`` in one dtype (``backends.run``
    promotes).  ``name`` and ``kwargs`` are not needed here (the Triton backend's
    reference VJP uses them)."""
    out = _ops().pair_loss(real, fake, int(opts.kind), opts.params(), _REDUCTION[reduction])
    if reduction == "none" and real is not None:
        return out[0], out[1]
    return out[0]


def bce_loss(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor], reduction: str):
    return _ops().bce_loss(x, t, weight, pos_weight, _REDUCTION[reduction])


def penalty(g: Tensor, center: float, one_sided: bool, reduction: str):
    return _ops().penalty(g, center, one_sided, _REDUCTION[reduction])


class _FeatureMatching(torch.autograd.Function):
    """Feature matching over lists of maps in one node: the raw ops ``fm_fwd`` (one read
    of each map) and ``fm_bwd`` (one read of each pair, one write of each gradient).  A
    backward that records a graph (``create_graph=True``) is composed of differentiable
    ATen ops instead (``sign(g − r)`` or ``2(g − r)`` times the scale), so the second
    derivatives are exact.  (A Python autograd node, once per call over all maps; the
    per-tensor losses keep theirs in C++.)"""

    @staticmethod
    def forward(ctx, p: int, scales, n: int, *maps):
        reals, fakes = list(maps[:n]), list(maps[n:])
        ctx.p, ctx.scales, ctx.n = p, scales, n
        ctx.reals_need_grad = [r.requires_grad for r in reals]
        ctx.save_for_backward(*maps)
        return torch.ops.fastgan_native.fm_fwd(reals, fakes, p, scales)

    @staticmethod
    def backward(ctx, up):
        maps = ctx.saved_tensors
        reals, fakes = list(maps[:ctx.n]), list(maps[ctx.n:])
        if torch.is_grad_enabled():  # create_graph: differentiable ATen ops
            grads = []
            for r, g, c in zip(reals, fakes, ctx.scales):
                d = g - r
                grads.append((d.sign() if ctx.p == 1 else 2 * d) * (up * c).to(g.dtype))
        else:
            grads = list(torch.ops.fastgan_native.fm_bwd(reals, fakes, ctx.p, ctx.scales, up))
        real_grads = [(-g if need else None) for g, need in zip(grads, ctx.reals_need_grad)]
        return (None, None, None, *real_grads, *grads)


def feature_matching(reals, fakes, p: int, reduction: str):
    """``Σ_m reduce(|g_m − r_m|^p)`` over flat lists of same-shaped, same-dtype maps
    ("mean" or "sum"); one autograd node over all maps."""
    native_loader.module()  # loaded (and its ops registered) before torch.ops is used
    scales = [1.0 / g.numel() if (reduction == "mean" and g.numel()) else
              (float("inf") if reduction == "mean" else 1.0) for g in fakes]
    return _FeatureMatching.apply(p, scales, len(reals), *reals, *fakes)


class _PairLossList(torch.autograd.Function):
    """A pair loss over lists of score tensors, one per discriminator, in one node: the raw
    ops ``pair_list_fwd`` (one parallel pass over all the tensors, the N per-discriminator
    losses) and ``pair_list_bwd`` (the gradients of the tensors that need one, in one pass).
    A backward that records a graph (``create_graph=True``) is the reference's
    vector-Jacobian product per discriminator instead, so second derivatives are exact.
    The tensors are inputs of their own, so real and fake of one discriminator may be the
    same tensor or computed from each other: autograd adds the paths."""

    @staticmethod
    def forward(ctx, name: str, kwargs: dict, kind: int, params, reduction: str, nr: int, *tensors):
        ctx.meta = (name, kwargs, kind, params, reduction, nr)
        ctx.save_for_backward(*tensors)
        return _ops().pair_list_fwd(list(tensors[:nr]), list(tensors[nr:]), kind, params, _REDUCTION[reduction])

    @staticmethod
    def backward(ctx, up):
        name, kwargs, kind, params, reduction, nr = ctx.meta
        tensors = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[6:])
        if torch.is_grad_enabled():  # create_graph: the reference's VJP, differentiable
            grads = _reference_list_vjp(name, kwargs, reduction, nr, tensors, up, needs)
        else:
            grads = list(_ops().pair_list_bwd(list(tensors[:nr]), list(tensors[nr:]), kind, params,
                                              _REDUCTION[reduction], up, needs))
        return (None,) * 6 + tuple(g if need else None for g, need in zip(grads, needs))


def _reference_list_vjp(name: str, kwargs: dict, reduction: str, nr: int, tensors, up: Tensor, needs):
    """The reference's VJP over the discriminators that have a tensor needing a gradient
    (triton_backend's rule: each argument a fresh view, so paths between the tensors are
    not counted twice), with a graph."""
    from .triton_backend import _reference_vjp
    ref = OPS[name].reference
    n = len(tensors) - nr
    ds = [d for d in range(n) if needs[nr + d] or (nr and needs[d])]
    inputs = ([tensors[d] for d in ds] if nr else []) + [tensors[nr + d] for d in ds]
    wanted = ([needs[d] for d in ds] if nr else []) + [needs[nr + d] for d in ds]
    m = len(ds)

    def losses(*xs):
        if nr:
            return tuple(ref(xs[i], xs[m + i], **kwargs, reduction=reduction) for i in range(m))
        return tuple(ref(xs[i], **kwargs, reduction=reduction) for i in range(m))

    res = _reference_vjp(losses, inputs, [up[d] for d in ds], wanted)
    grads = [None] * len(tensors)
    for i, d in enumerate(ds):
        if nr:
            grads[d] = res[i]
        grads[nr + d] = res[(m if nr else 0) + i]
    return grads


def pair_loss_list(name: str, kwargs: dict, opts: PairOptions, reduction: str,
                   reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor]) -> Tensor:
    """A pair loss over lists, one discriminator per index: the N reduced losses
    (``reduction`` "mean" or "sum") as a 1-D tensor, differentiable, one autograd node and
    one native call forward and backward.  ``reals`` is None for a generator loss; all
    tensors in one dtype on one device (the caller promotes and checks); any shapes,
    empty, 0-d or non-contiguous members.  Eager only (compile and torch.func take the
    per-member path)."""
    nr = 0 if reals is None else len(reals)
    tensors = (*(reals or ()), *fakes)
    return _PairLossList.apply(name, kwargs, int(opts.kind), opts.params(), reduction, nr, *tensors)
