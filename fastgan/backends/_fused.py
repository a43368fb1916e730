"""Autograd and torch.compile glue shared by the fused backends (triton, native).

A backend registers its launchers (``pair_forward``, ``pair_backward``, ``bce_forward``,
``bce_backward``, ``penalty_forward``, ``penalty_backward``) under a name with
``register_impl``; ``run(name, spec, ...)`` gives them autograd.

* Each op is a plain ``torch.autograd.Function``.  In eager mode its forward and
  backward call the launchers directly, which keeps the per-call cost at the
  ``autograd.Function`` floor.  Under ``torch.compile`` the same Function calls the
  launchers through ``torch.library.custom_op`` wrappers (``fastgan::*``) with fake
  implementations, so Dynamo captures the whole loss without graph breaks; the
  custom-op round trip is only paid at trace time.  Measured: see
  benchmarks/results/overhead-cpu.md.
* First-order gradients come from the fused backward kernel.  When a graph of the
  backward is requested (``create_graph=True``: double backward) the backward is
  instead the vector-Jacobian product of the reference (``fastgan.reference``),
  which is differentiable to any order; its first derivatives equal the kernel's
  (tested), so second derivatives are never silently wrong.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.autograd.forward_ad as _forward_ad
from torch import Tensor

from ..registry import OPS, OpSpec

IMPLS = {}


def register_impl(name: str, launchers) -> None:
    IMPLS[name] = launchers


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------- custom ops (torch.compile)

def _fake_like(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("fastgan::pair_loss", mutates_args=())
def _pair_loss_op(real: Optional[Tensor], fake: Tensor, kind: str, params: List[float],
                  reduction: str, impl: str) -> List[Tensor]:
    side_r, side_f = _unpack(params)
    return IMPLS[impl].pair_forward(kind, real, fake, side_r, side_f, reduction)


@_pair_loss_op.register_fake
def _(real, fake, kind, params, reduction, impl):
    if reduction == "none":
        return [_fake_like(real) if real is not None else fake.new_empty(0), _fake_like(fake)]
    return [fake.new_empty(())]


@torch.library.custom_op("fastgan::pair_loss_backward", mutates_args=())
def _pair_loss_bwd_op(real: Optional[Tensor], fake: Tensor, kind: str, params: List[float],
                      reduction: str, grads: List[Tensor], impl: str) -> List[Tensor]:
    side_r, side_f = _unpack(params)
    return IMPLS[impl].pair_backward(kind, real, fake, side_r, side_f, reduction, grads)


@_pair_loss_bwd_op.register_fake
def _(real, fake, kind, params, reduction, grads, impl):
    return [_fake_like(real) if real is not None else fake.new_empty(0), _fake_like(fake)]


@torch.library.custom_op("fastgan::bce_with_logits", mutates_args=())
def _bce_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
            reduction: str, impl: str) -> Tensor:
    return IMPLS[impl].bce_forward(x, t, weight, pos_weight, reduction)[0]


@_bce_op.register_fake
def _(x, t, weight, pos_weight, reduction, impl):
    return _fake_like(x) if reduction == "none" else x.new_empty(())


@torch.library.custom_op("fastgan::bce_with_logits_backward", mutates_args=())
def _bce_bwd_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                reduction: str, up: Tensor, needs: List[bool], impl: str) -> List[Tensor]:
    """The gradients ``needs`` asks for, in the order (input, target, weight, pos_weight);
    an empty tensor where none is asked for.  The input's alone come from the fused
    kernel; the others from the reference's VJP, evaluated here, outside the trace."""
    if not any(needs[1:]):
        grads = [IMPLS[impl].bce_backward(x, t, weight, pos_weight, reduction, up), None, None, None]
    else:
        # torch.func's vjp: plain autograd is switched off inside a custom op
        from .. import reference
        args = [v for v in (x, t, weight, pos_weight) if v is not None]

        def loss(*a):
            full = iter(a)
            x_, t_, w_, p_ = [next(full) if v is not None else None for v in (x, t, weight, pos_weight)]
            return reference.binary_cross_entropy_with_logits(x_, t_, w_, reduction, p_)

        res = iter(torch.func.vjp(loss, *args)[1](up))
        grads = [next(res) if v is not None else None for v in (x, t, weight, pos_weight)]
        grads = [g if need else None for g, need in zip(grads, needs)]
    # contiguous, as the fake implementation says (the VJP keeps a transposed input's strides)
    return [g.contiguous() if g is not None else x.new_empty(0) for g in grads]


@_bce_bwd_op.register_fake
def _(x, t, weight, pos_weight, reduction, up, needs, impl):
    likes = (x, t, weight, pos_weight)
    return [_fake_like(v) if (need and v is not None) else x.new_empty(0) for v, need in zip(likes, needs)]


@torch.library.custom_op("fastgan::grad_norm_penalty", mutates_args=())
def _penalty_op(g: Tensor, center: float, one_sided: bool, reduction: str, impl: str) -> List[Tensor]:
    return IMPLS[impl].penalty_forward(g, center, one_sided, reduction)


@_penalty_op.register_fake
def _(g, center, one_sided, reduction, impl):
    acc = _acc_dtype(g.dtype)
    B = g.shape[0]
    out = g.new_empty((B,)) if reduction == "none" else g.new_empty(())
    return [out, g.new_empty((B,), dtype=acc)]


@torch.library.custom_op("fastgan::grad_norm_penalty_backward", mutates_args=())
def _penalty_bwd_op(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str,
                    up: Tensor, impl: str) -> Tensor:
    return IMPLS[impl].penalty_backward(g, sq, center, one_sided, reduction, up)


@_penalty_bwd_op.register_fake
def _(g, sq, center, one_sided, reduction, up, impl):
    return _fake_like(g)


def _pack(side_r, side_f) -> List[float]:
    # a missing real side (generator losses) is marked by a nan sgn
    r = list(side_r) if side_r is not None else [math.nan, 0.0]
    return [float(v) for v in (*r, *side_f)]


def _unpack(params: Sequence[float]):
    side_r = None if math.isnan(params[0]) else (params[0], params[1])
    return side_r, (params[2], params[3])


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def transformed() -> bool:
    """Inside a torch.func transform or a forward-mode AD level: the fused kernels have no
    batching or forward-derivative rules, so the reference computes instead (forward in
    ``backends.run``, backward here, for a graph recorded outside the transform)."""
    return torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0


_is_legacy_batched = getattr(torch._C._functorch, "is_legacy_batchedtensor", lambda t: False)


def _vmapped(grads) -> bool:
    """A backward under vmap: a transform, or upstream gradients batched by the legacy vmap
    (``jacobian(vectorize=True)``, ``gradcheck(check_batched_grad=True)``)."""
    return transformed() or any(g is not None and _is_legacy_batched(g) for g in grads)


# --------------------------------------------------------------------------- autograd

def _reference_vjp(fn, inputs: Sequence[Optional[Tensor]], grads: Sequence[Tensor], needs: Sequence[bool]):
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


class _PairLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, impl: str, name: str, kwargs: dict, reduction: str, real, fake):
        kind, side_r, side_f = OPS[name].lower(**kwargs)
        ctx.meta = (impl, name, kwargs, reduction, kind, side_r, side_f)
        ctx.save_for_backward(real, fake)
        if _compiling():
            outs = _pair_loss_op(real, fake, kind, _pack(side_r, side_f), reduction, impl)
        else:
            outs = IMPLS[impl].pair_forward(kind, real, fake, side_r, side_f, reduction)
        if reduction == "none":
            return (outs[0], outs[1]) if real is not None else outs[1]
        return outs[0]

    @staticmethod
    def backward(ctx, *grads):
        impl, name, kwargs, reduction, kind, side_r, side_f = ctx.meta
        real, fake = ctx.saved_tensors
        if _compiling():
            g_r, g_f = _pair_loss_bwd_op(real, fake, kind, _pack(side_r, side_f), reduction, list(grads), impl)
        elif torch.is_grad_enabled() or _vmapped(grads):
            ref = OPS[name].reference
            inputs = [real, fake] if real is not None else [fake]
            needs = ctx.needs_input_grad[4:] if real is not None else ctx.needs_input_grad[5:]
            res = _reference_vjp(lambda *xs: ref(*xs, **kwargs, reduction=reduction), inputs, grads, needs)
            g_r, g_f = res if real is not None else (None, res[0])
        else:
            g_r, g_f = IMPLS[impl].pair_backward(kind, real, fake, side_r, side_f, reduction, grads)
        return None, None, None, None, (g_r if real is not None else None), g_f


def _bce_reference_vjp(x, t, weight, pos_weight, reduction: str, up: Tensor, needs) -> List[Optional[Tensor]]:
    from .. import reference
    return _reference_vjp(lambda a, b, w, p: reference.binary_cross_entropy_with_logits(a, b, w, reduction, p),
                          [x, t, weight, pos_weight], [up], needs)


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, impl: str, reduction: str, x, t, weight, pos_weight):
        ctx.impl, ctx.reduction = impl, reduction
        ctx.save_for_backward(x, t, weight, pos_weight)
        if _compiling():
            return _bce_op(x, t, weight, pos_weight, reduction, impl)
        return IMPLS[impl].bce_forward(x, t, weight, pos_weight, reduction)[0]

    @staticmethod
    def backward(ctx, up):
        x, t, weight, pos_weight = ctx.saved_tensors
        impl, reduction = ctx.impl, ctx.reduction
        needs = ctx.needs_input_grad[2:]
        if _compiling():
            grads = _bce_bwd_op(x, t, weight, pos_weight, reduction, up, list(needs), impl)
            return (None, None, *[g if need else None for g, need in zip(grads, needs)])
        if any(needs[1:]) or torch.is_grad_enabled() or _vmapped([up]):
            # gradients of target / weight / pos_weight, or a graph of the backward
            return (None, None, *_bce_reference_vjp(x, t, weight, pos_weight, reduction, up, needs))
        return None, None, IMPLS[impl].bce_backward(x, t, weight, pos_weight, reduction, up), None, None, None


class _GradNormPenalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, impl: str, center: float, one_sided: bool, reduction: str, g):
        if _compiling():
            out, sq = _penalty_op(g, center, one_sided, reduction, impl)
        else:
            out, sq = IMPLS[impl].penalty_forward(g, center, one_sided, reduction)
        ctx.meta = (impl, center, one_sided, reduction)
        ctx.save_for_backward(g, sq)
        return out

    @staticmethod
    def backward(ctx, up):
        impl, center, one_sided, reduction = ctx.meta
        g, sq = ctx.saved_tensors
        if _compiling():
            return None, None, None, None, _penalty_bwd_op(g, sq, center, one_sided, reduction, up, impl)
        if torch.is_grad_enabled() or _vmapped([up]):
            from .. import reference
            (dg,) = _reference_vjp(lambda x: reference.grad_norm_penalty(
                x, center=center, one_sided=one_sided, reduction=reduction), [g], [up], [True])
            return None, None, None, None, dg
        return None, None, None, None, IMPLS[impl].penalty_backward(g, sq, center, one_sided, reduction, up)


# --------------------------------------------------------------------------- backend entry

def common_dtype(a: Tensor, b: Tensor):
    """``a`` and ``b`` in one dtype, as torch promotes ``a.mean() + b.mean()`` (the
    kernels take one dtype; the conversions are differentiable)."""
    if a.dtype == b.dtype:
        return a, b
    dt = torch.promote_types(a.dtype, b.dtype)
    return a.to(dt), b.to(dt)


def as_input_dtypes(out, reduction: str, real: Tensor, fake: Tensor):
    """A pair loss's result for inputs of two dtypes: with ``"none"`` each side's terms
    in its input's dtype (the contract); reduced, the promoted dtype."""
    if reduction == "none" and real.dtype != fake.dtype:
        return out[0].to(real.dtype), out[1].to(fake.dtype)
    return out


def run(impl: str, spec: OpSpec, tensors: Sequence[Tensor], kwargs: dict, reduction: str):
    """Run ``spec`` with the launchers registered as ``impl``, with autograd."""
    if spec.family == "pair":
        if len(tensors) == 1:
            return _PairLoss.apply(impl, spec.name, kwargs, reduction, None, tensors[0])
        real, fake = common_dtype(*tensors)
        out = _PairLoss.apply(impl, spec.name, kwargs, reduction, real, fake)
        return as_input_dtypes(out, reduction, *tensors)
    if spec.family == "bce":
        x, t = common_dtype(*tensors)
        out = _BCEWithLogits.apply(impl, reduction, x, t, kwargs.get("weight"), kwargs.get("pos_weight"))
        return out.to(tensors[1].dtype)  # torch's drop-in: the result has the target's dtype
    if spec.family == "penalty":
        return _GradNormPenalty.apply(impl, kwargs.get("center", 1.0), kwargs.get("one_sided", False), reduction,
                                      tensors[0])
    raise NotImplementedError(f"the {impl} backend has no kernel for op {spec.name!r}")
