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
from .modes import compiling, op_vjp, reference_vjp, vmapped

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

    res = reference_vjp(losses, inputs, [up[d] for d in ds], wanted)
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


# --------------------------------------------------------------------------- relativistic losses (RaGAN, RpGAN)
#
# CPU: the fused raw ops of csrc/relativistic.cpp (TORCH_LIBRARY_FRAGMENT(fastgan_native)),
# ragan_fwd -> [loss or terms..., stats = (Σx, Σy, Σa, Σb)], ragan_bwd (one element-wise pass;
# with "none" a reduction of the upstream-weighted derivatives first), rpgan_fwd / rpgan_bwd
# (one pass each way), behind Python autograd.Functions; the math is in
# kernels/relativistic.py's docstring.  CUDA tensors keep the composition (the batch means
# or the paired difference, then the extension's fused BCE pair op): the CUDA path of the
# fused relativistic kernels is the Triton backend.

RAGAN_LABELS = {"ragan_d_loss": [1.0, 0.0], "ragan_g_loss": [0.0, 1.0]}
RPGAN_GEN = {"rpgan_d_loss": False, "rpgan_g_loss": True}


def _raw():
    native_loader.module()  # loaded (and its ops registered) before torch.ops is used
    return torch.ops.fastgan_native


class _RaGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        outs = _raw().ragan_fwd(real, fake, RAGAN_LABELS[name], _REDUCTION[reduction])
        ctx.meta = (name, reduction)
        ctx.stats = outs[-1]
        ctx.save_for_backward(real, fake)
        return (outs[0], outs[1]) if reduction == "none" else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped(grads):
            g_r, g_f = op_vjp(name, {}, reduction, [real, fake], grads, needs)
        else:
            g_r, g_f = _raw().ragan_bwd(real, fake, RAGAN_LABELS[name], _REDUCTION[reduction], ctx.stats,
                                        list(grads), list(needs))
        return None, None, (g_r if needs[0] else None), (g_f if needs[1] else None)


class _RpGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        ctx.meta = (name, reduction)
        ctx.save_for_backward(real, fake)
        return _raw().rpgan_fwd(real, fake, RPGAN_GEN[name], _REDUCTION[reduction])

    @staticmethod
    def backward(ctx, up):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped([up]):
            g_r, g_f = op_vjp(name, {}, reduction, [real, fake], [up], needs)
        else:
            g_r, g_f = _raw().rpgan_bwd(real, fake, RPGAN_GEN[name], _REDUCTION[reduction], up, list(needs))
        return None, None, (g_r if needs[0] else None), (g_f if needs[1] else None)


def _acc(x: Tensor) -> Tensor:
    """Half types in float32 (the shifted scores are not rounded to a half type)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def composed(name: str, real: Tensor, fake: Tensor, reduction: str):
    """The composition: the batch means (RaGAN) or the paired difference (RpGAN) in ATen,
    then the extension's fused BCE pair op; the result in the inputs' dtype."""
    x, y = _acc(real), _acc(fake)
    if name in RAGAN_LABELS:
        t_r, t_f = RAGAN_LABELS[name]
        kwargs = {"real_label": t_r, "fake_label": t_f}
        out = pair_loss("bce_d_loss", kwargs, OPS["bce_d_loss"].lower(**kwargs), reduction,
                                       x - y.mean(), y - x.mean())
        if reduction == "none":
            return out[0].to(real.dtype), out[1].to(fake.dtype)
        return out.to(real.dtype)
    d = y - x if RPGAN_GEN[name] else x - y
    # the non-saturating BCE generator term softplus(−d): softplus(y − x) for D, softplus(x − y) for G
    return pair_loss("bce_g_loss", {}, OPS["bce_g_loss"].lower(), reduction, None, d).to(real.dtype)


def relativistic(name: str, real: Tensor, fake: Tensor, reduction: str):
    """A relativistic loss with autograd; ``real`` and ``fake`` in one dtype
    (``backends.run`` promotes).  CPU: the fused ops; CUDA: the composition."""
    if not real.is_cpu:
        return composed(name, real, fake, reduction)
    if name in RAGAN_LABELS:
        return _RaGAN.apply(name, reduction, real, fake)
    return _RpGAN.apply(name, reduction, real, fake)


# --------------------------------------------------------------------------- divergences
#
# CPU: fastgan_native::gaussian_kl_fwd / gaussian_kl_bwd and divergence_fwd / divergence_bwd
# (csrc/divergence.cpp: at::parallel_for over samples / rows, at::vec inner loops; the forward
# saves the per-row log-normalisers and divergences, the backward is one pass); half types
# are converted to float32 once on entry.  CUDA tensors: the reference (ATen ops on the GPU);
# the CUDA path of these ops is the Triton backend's kernels, which auto picks on CUDA.

def _div_ops():
    native_loader.module()  # built and loaded (its ops registered) before torch.ops is used
    return torch.ops.fastgan_native


class _Divergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, dim: int, reduction: str, a, b):
        ops = _div_ops()
        red = _REDUCTION[reduction]
        if name == "gaussian_kl":
            out = ops.gaussian_kl_fwd(a, b, red)
            saved = ()
        else:
            out, stat, rowdiv = ops.divergence_fwd(a, b, dim, name == "js_div_logits", red)
            saved = (stat, rowdiv)
        ctx.meta = (name, dim, reduction)
        ctx.save_for_backward(a, b, *saved)
        return out

    @staticmethod
    def backward(ctx, up):
        name, dim, reduction = ctx.meta
        a, b, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled() or vmapped([up]):
            kw = {} if name == "gaussian_kl" else {"dim": dim}
            grads = op_vjp(name, kw, reduction, [a, b], [up], needs)
            return (None, None, None, *grads)
        ops = _div_ops()
        red = _REDUCTION[reduction]
        if name == "gaussian_kl":
            g = ops.gaussian_kl_bwd(a, b, red, up, needs[0], needs[1])
        else:
            g = ops.divergence_bwd(a, b, dim, name == "js_div_logits", red, saved[0], saved[1], up,
                                   needs[0], needs[1])
        return (None, None, None, g[0] if needs[0] else None, g[1] if needs[1] else None)


def divergence(name: str, tensors: tuple, kwargs: dict, reduction: str) -> Tensor:
    """``name`` (``gaussian_kl``, ``kl_div_logits``, ``js_div_logits``) on the native ops,
    with autograd; the two tensors in one dtype (``backends.run`` promotes).  CUDA
    tensors: the reference."""
    a, b = tensors
    if not a.is_cpu:
        return OPS[name].reference(a, b, **kwargs, reduction=reduction)
    dim = kwargs.get("dim", -1)
    if name != "gaussian_kl":
        dim = dim % a.dim()
    return _Divergence.apply(name, dim, reduction, a, b)
