"""Gradient penalties (WGAN-GP, one-sided LP, R1, R2, DRAGAN), approximate R1, the drift penalty and WGAN
weight clipping.

Re-exported by ``fastgan.functional`` and at ``fastgan.``.  The common mistakes
these functions make impossible: a norm over the whole batch or over channels
only (the norm is per sample over every non-batch dim), nan from the square
root's derivative at a zero gradient (the gradient there is 0), hard-coded
channel counts or rank (any shape works), forgetting to unscale under AMP
(``scaler=``), and a silently wrong second derivative (gradgradcheck passes on
every backend).  Under DistributedDataParallel a penalty through the DDP module is
averaged over ranks like any loss, also when backpropagated on its own; the set-ups
that cannot be right (static_graph's first iteration, FSDP) raise, naming the fix
(README "Multi-GPU", tests/test_distributed.py).
"""
from __future__ import annotations

import sys
from typing import Iterable, Optional, Union

import torch
from torch import Tensor, nn

from . import backends
from .checks import check_bool, check_number, check_reduction, check_tensor
from .registry import OPS


def grad_norm_penalty(grads: Tensor, *, center: float = 1.0, one_sided: bool = False,
                      reduction: str = "mean") -> Tensor:
    """Per-sample gradient-norm penalty.

    ``n_i = ‖grads[i]‖₂`` over every non-batch dim; the term is ``(n_i − center)²``, or
    ``max(0, n_i − center)²`` if ``one_sided``; ``center = 0`` is the squared norm
    ``Σ_j g_ij²`` (no square root, exact gradient ``2·g``).  At a zero row the gradient
    is 0, never nan.  Reduction over the batch: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).
    """
    check_tensor("grads", grads)
    if grads.dim() < 1:
        raise ValueError("grads must have a batch dimension (shape (B, ...)), got a 0-d tensor")
    kw = {"center": check_number("center", center), "one_sided": check_bool("one_sided", one_sided)}
    check_reduction(reduction)
    return backends.run(OPS["grad_norm_penalty"], (grads,), kw, reduction)


def _check_scaler(scaler):
    """The scaler to use, or None: a disabled GradScaler (``GradScaler(enabled=use_amp)``,
    a CUDA scaler without CUDA) scales nothing, exactly like ``scaler=None``."""
    if scaler is None:
        return None
    if not (callable(getattr(scaler, "scale", None)) and callable(getattr(scaler, "get_scale", None))):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")
    is_enabled = getattr(scaler, "is_enabled", None)
    if callable(is_enabled) and not is_enabled():
        return None
    return scaler


def _ddp_critic(critic) -> bool:
    """Whether ``critic`` is a ``DistributedDataParallel`` module, after refusing the two
    set-ups where a penalty through a wrapped critic cannot be right (tests/test_distributed.py).

    No collective runs here: only ``isinstance`` checks, and only while a process group
    is initialised (DDP and FSDP need one)."""
    if not isinstance(critic, nn.Module) or not (torch.distributed.is_available()
                                                 and torch.distributed.is_initialized()):
        return False
    ddp = getattr(torch.nn.parallel, "DistributedDataParallel", None)
    if ddp is not None and isinstance(critic, ddp):
        if getattr(critic, "static_graph", False) and not getattr(
                critic, "_static_graph_delay_allreduce_enqueued", True):
            raise ValueError(
                "gradient penalty through DistributedDataParallel(static_graph=True) in its first iteration: "
                "DDP all-reduces the first iteration's gradients when the first backward through the "
                "module ends, and that would be the penalty's torch.autograd.grad, before any parameter "
                "has a gradient, so this iteration's gradients would silently not be averaged across "
                "ranks. Fix: construct DDP with static_graph=False (the default; the penalties work with "
                "it), or pass critic.module to the penalty and call backward() on it together with a "
                "loss computed through the DDP critic")
        return True
    fsdp = sys.modules.get("torch.distributed.fsdp")
    kinds = tuple(c for c in (getattr(fsdp, "FullyShardedDataParallel", None), getattr(fsdp, "FSDPModule", None))
                  if c is not None) if fsdp is not None else ()
    if kinds and any(isinstance(m, kinds) for m in critic.modules()):
        raise RuntimeError(
            "gradient penalty through an FSDP-sharded critic: the penalty needs a double backward "
            "(torch.autograd.grad with create_graph=True, then backward through it), and FSDP frees the "
            "unsharded parameters after the first one (torch then fails with 'setStorage: ... out of "
            "bounds for storage of size 0'). Fix: wrap the critic in DistributedDataParallel (FSDP for "
            "the generator is fine), or train without a gradient penalty")
    return False


class _ReachParameters(torch.autograd.Function):
    """The penalty, unchanged; its backward also sends an exact zero gradient into the
    critic's outputs, so that every parameter that produced them receives a gradient
    in the penalty's backward (zero for those, like the last bias, that ∂out/∂x does not
    depend on).  DDP averages gradients only once every parameter has one: without this,
    a penalty backpropagated on its own (lazy regularisation) ends in DDP's "Expected to
    have finished reduction in the prior iteration" at the next forward.  StyleGAN2-ADA
    adds ``0 * logits`` for the same reason."""

    @staticmethod
    def forward(ctx, penalty, *outs):
        ctx.out_meta = [(out.shape, out.dtype, out.device) for out in outs]
        return penalty.clone()

    @staticmethod
    def backward(ctx, grad):
        return (grad, *(torch.zeros(shape, dtype=dtype, device=device) for shape, dtype, device in ctx.out_meta))


def _critic_outputs(out) -> list:
    """The critic's output as a list of tensors: one tensor, or a list or tuple of them
    (multi-scale or multi-head critics, GigaGAN)."""
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if not outs:
        raise TypeError("critic returned an empty list: there is no output to penalise")
    for i, o in enumerate(outs):
        where = f"critic's output [{i}]" if isinstance(out, (list, tuple)) else "critic's output"
        if not isinstance(o, Tensor):
            raise TypeError(f"critic must return a tensor or a list or tuple of tensors; the {where} is a "
                            f"{type(o).__name__}")
        if not o.is_floating_point():
            raise TypeError(f"critic must return floating-point tensors; the {where} is {o.dtype}")
    return outs


def _input_grads(critic, x: Tensor, scaler, arg: str):
    """``(∂ sum(critic(x)) / ∂x`` with a graph, ``finish``): the gradient, AMP-correct when a
    GradScaler is given (``scaler`` as returned by ``_check_scaler``), and the function that
    turns the penalty into the one to return (under DDP, linked to the critic's outputs).
    A critic returning a list or tuple of tensors: the gradient of the sum of every
    output's sum."""
    ddp = _ddp_critic(critic)
    outs = _critic_outputs(critic(x))
    no_grad = ValueError(f"the critic's output does not depend on its input ({arg}): there is no gradient "
                         "to penalise" + ("" if torch.is_grad_enabled() else " (gradients are disabled here: "
                                          "torch.no_grad or inference_mode)"))
    live = [o for o in outs if o.requires_grad]
    if not live:  # no graph at all: autograd.grad would raise its generic error
        raise no_grad
    sums = [o.float().sum() if o.dtype in (torch.float16, torch.bfloat16) else o.sum() for o in live]
    total = sums[0]
    for s in sums[1:]:
        total = total + s
    if scaler is not None:
        # PyTorch's gradient-penalty recipe for GradScaler: scale the outputs before
        # autograd.grad, unscale the gradients out of place.  The scale stays on the
        # device (no host sync).
        total = scaler.scale(total)
    (g,) = torch.autograd.grad(total, x, create_graph=True, allow_unused=True)
    if g is None:
        raise no_grad
    if scaler is not None:
        scale = scaler._get_scale_async() if hasattr(scaler, "_get_scale_async") else scaler.get_scale()
        # unscale in float32: a half gradient cannot hold the scale (65536 > fp16 max)
        g = g.float() / (scale.float() if isinstance(scale, Tensor) else float(scale))
    return g, ((lambda pen: _ReachParameters.apply(pen, *live)) if ddp else (lambda pen: pen))


def _alpha(alpha: Optional[Tensor], real: Tensor, dtype: torch.dtype) -> Tensor:
    """The per-sample interpolation weights, shaped to broadcast over ``real``'s sample
    dims: ``alpha`` checked (shape ``(B,)``, ``real``'s device), or drawn from U[0, 1)."""
    B = real.shape[0]
    if alpha is None:
        alpha = torch.rand(B, device=real.device, dtype=dtype)
    else:
        check_tensor("alpha", alpha)
        if alpha.shape != (B,):
            raise ValueError(f"alpha must have shape (B,) = ({B},), one value per sample; got {tuple(alpha.shape)}")
        if alpha.device != real.device:
            raise ValueError(f"alpha is on {alpha.device} but real is on {real.device}")
    return alpha.detach().to(dtype).view(B, *([1] * (real.dim() - 1)))


def _check_critic(critic):
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or a function), got {type(critic).__name__}")


def gradient_penalty(critic, real: Tensor, fake: Tensor, *, weight: float = 10.0, center: float = 1.0,
                     one_sided: bool = False, alpha: Optional[Tensor] = None, scaler=None) -> Tensor:
    """WGAN-GP (Gulrajani et al.): ``weight · mean_i (‖∇x̂ D(x̂)_i‖₂ − center)²``.

    ``x̂ = alpha·real + (1 − alpha)·fake`` with a per-sample ``alpha`` of shape ``(B,)``
    (drawn from U[0, 1) when None), interpolated in one ``torch.lerp``; the critic's output
    (any shape, e.g. a PatchGAN map) is summed; ``one_sided=True`` penalises only norms
    above ``center`` (the Lipschitz penalty).  ``x̂`` is detached from real and fake: the
    penalty trains the critic only.  ``scaler`` (a ``torch.amp.GradScaler``) makes it
    AMP-correct.  A critic returning a list or tuple of tensors (multi-scale or multi-head,
    GigaGAN): the gradient of the sum of every output's sum.
    """
    _check_critic(critic)
    check_tensor("real", real)
    check_tensor("fake", fake)
    if real.device != fake.device:
        raise ValueError(f"real is on {real.device} but fake is on {fake.device}; move them to one device")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape to interpolate, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    if real.dim() < 1 or real.shape[0] == 0:
        raise ValueError(f"real must have a non-empty batch dimension, got shape {tuple(real.shape)}")
    w = check_number("weight", weight)
    scaler = _check_scaler(scaler)
    dtype = torch.promote_types(real.dtype, fake.dtype)
    a = _alpha(alpha, real, dtype)
    x_hat = torch.lerp(fake.detach().to(dtype), real.detach().to(dtype), a).requires_grad_(True)
    g, finish = _input_grads(critic, x_hat, scaler, "x_hat")
    return finish(w * grad_norm_penalty(g, center=center, one_sided=one_sided))


def _noise(noise: Optional[Tensor], x: Tensor, draw) -> Tensor:
    """The perturbation of ``x``: ``noise`` checked against ``x``'s shape and device, or
    ``draw(x)`` (the global generator) when None."""
    if noise is None:
        return draw(x)
    check_tensor("noise", noise)
    if noise.shape != x.shape or noise.device != x.device:
        raise ValueError(f"noise must have real's shape {tuple(x.shape)} and device {x.device}; got "
                         f"{tuple(noise.shape)} on {noise.device}")
    return noise


def dragan_penalty(critic, real: Tensor, *, weight: float = 10.0, c: float = 0.5, alpha: Optional[Tensor] = None,
                   scaler=None, noise: Optional[Tensor] = None) -> Tensor:
    """DRAGAN (Kodali et al. 2017): the gradient penalty around perturbed real data,
    ``weight · mean_i (‖∇x̂ D(x̂)_i‖₂ − 1)²`` at ``x̂ = real + alpha·c·std(real)·noise``.

    That is the authors' implementation's form: perturbed samples ``x_p = x + c·std(x)·u``
    with ``u ~ U[0, 1)`` per element (``noise``; drawn when None) and ``std`` over the whole
    batch as the authors' numpy code takes it (``X.std()``: the population std, ddof 0;
    torch's default would be the unbiased one), then a per-sample ``alpha ~ U[0, 1)`` (shape
    ``(B,)``) between ``x`` and ``x_p``.  Pass ``alpha`` and ``noise`` to reproduce a run
    (e.g. the same draws on every rank).  ``scaler`` as in ``gradient_penalty``."""
    _check_critic(critic)
    check_tensor("real", real)
    if real.dim() < 1 or real.shape[0] == 0:
        raise ValueError(f"real must have a non-empty batch dimension, got shape {tuple(real.shape)}")
    w, c = check_number("weight", weight), check_number("c", c)
    scaler = _check_scaler(scaler)
    x = real.detach()
    noise = _noise(noise, x, torch.rand_like)
    a = _alpha(alpha, x, x.dtype)
    # one population std over the batch (numpy's X.std(), ddof 0: one element has std 0)
    x_hat = (x + a * (c * x.std(correction=0)) * noise.detach().to(x.dtype)).requires_grad_(True)
    g, finish = _input_grads(critic, x_hat, scaler, "x_hat")
    return finish(w * grad_norm_penalty(g, center=1.0))


def drift_penalty(real_scores: Tensor, *, eps: float = 1e-3) -> Tensor:
    """ProGAN's drift penalty (Karras et al. 2018, sec. A.1): ``eps · mean(x²)`` of the
    critic's scores on real data, which keeps them from drifting away from 0.  Computed as
    ``2·eps`` times the fused ``½(x − 0)²`` (``lsgan_g_loss`` with ``c = 0``): one pass
    each way."""
    e = check_number("eps", eps)
    check_tensor("real_scores", real_scores)
    return (2.0 * e) * backends.run(OPS["lsgan_g_loss"], (real_scores,), {"c": 0.0}, "mean")


def r1_penalty(critic, real: Tensor, *, gamma: float = 10.0, scaler=None) -> Tensor:
    """R1 (Mescheder et al.; StyleGAN2 convention): ``gamma/2 · mean_i ‖∂ sum(D(real)) / ∂real_i‖²``.
    A critic returning a list or tuple of tensors (multi-scale or multi-head, GigaGAN):
    ``D(real)`` is the sum of every output's sum."""
    return _r_penalty(critic, real, gamma, scaler, "real")


def r2_penalty(critic, fake: Tensor, *, gamma: float = 10.0, scaler=None) -> Tensor:
    """R2: the R1 penalty on fake samples, ``gamma/2 · mean_i ‖∂ sum(D(fake)) / ∂fake_i‖²``."""
    return _r_penalty(critic, fake, gamma, scaler, "fake")


def approx_r1_penalty(critic, real: Tensor, *, sigma: float = 0.1, weight: float = 1.0,
                      noise: Optional[Tensor] = None) -> Tensor:
    """Approximate R1 without a double backward (APT, Lin et al. 2025, "adversarial
    post-training"; NVlabs FastGen's ``_compute_r1_regularization`` in its LADD and DMD2
    methods): ``weight · mean((critic(real) − critic(real + sigma·ε))²)`` with ``ε ~ N(0, I)``
    drawn like ``real`` from the global generator, or ``noise`` (``real``'s shape and device).

    The mean is over every element of the critic's output, batch and any per-sample
    outputs (a PatchGAN map, several logits) alike: FastGen takes
    ``F.mse_loss(D(x), D(x + σε), reduction="mean")``.  Gradients flow into the critic
    through both evaluations; ``real`` is detached (the penalty trains the critic only).
    For small ``sigma`` the term is about ``sigma² · E‖∇D‖²`` per output element, so
    ``weight`` plays the role of R1's ``gamma / (2·sigma²)``.  Half types: the squared
    differences are averaged in float32, the result has the output's dtype.  A critic
    returning a list or tuple is refused (TypeError): average its outputs yourself."""
    _check_critic(critic)
    check_tensor("real", real)
    sigma, w = check_number("sigma", sigma), check_number("weight", weight)
    x = real.detach()
    noise = _noise(noise, x, torch.randn_like)
    clean, noisy = critic(x), critic(x + sigma * noise.detach().to(x.dtype))
    for o in (clean, noisy):
        if not isinstance(o, Tensor):
            raise TypeError(f"critic must return a tensor, got {type(o).__name__}")
        if not o.is_floating_point():
            raise TypeError(f"critic must return a floating-point tensor, got {o.dtype}")
    out = torch.promote_types(clean.dtype, noisy.dtype)
    acc = torch.float32 if out in (torch.float16, torch.bfloat16) else out
    return (w * (clean.to(acc) - noisy.to(acc)).square().mean()).to(out)


def _r_penalty(critic, x: Tensor, gamma, scaler, arg: str) -> Tensor:
    _check_critic(critic)
    check_tensor(arg, x)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{arg} must have a non-empty batch dimension, got shape {tuple(x.shape)}")
    g_ = check_number("gamma", gamma)
    scaler = _check_scaler(scaler)
    x = x.detach().requires_grad_(True)
    g, finish = _input_grads(critic, x, scaler, arg)
    return finish((g_ / 2) * grad_norm_penalty(g, center=0.0))


def clip_weights_(params_or_module: Union[nn.Module, Iterable[Tensor]], clip: float = 0.01) -> None:
    """WGAN weight clipping in place: every parameter clamped to ``[−clip, clip]``.

    On GPUs one fused ``torch._foreach`` launch per bound for all parameters of a device
    and dtype; on CPU (where ``_foreach`` is a loop of two passes) one ``clamp_`` pass per
    tensor.  Returns nothing."""
    clip = check_number("clip", clip)
    if clip < 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    if isinstance(params_or_module, nn.Module):
        params = list(params_or_module.parameters())
    elif isinstance(params_or_module, Tensor):
        params = [params_or_module]
    else:
        params = list(params_or_module)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"params_or_module[{i}] must be a tensor, got {type(p).__name__}")
    groups = {}
    with torch.no_grad():
        for p in params:
            if not p.is_floating_point():
                continue
            if p.device.type == "cpu":
                # on CPU the _foreach ops are a loop of two passes (min, then max): one clamp_
                # pass per tensor is cheaper (benchmarks/results/penalty-step-cpu.md)
                p.clamp_(-clip, clip)
            else:
                groups.setdefault((p.device, p.dtype), []).append(p)
        for group in groups.values():
            torch._foreach_clamp_min_(group, -clip)
            torch._foreach_clamp_max_(group, clip)
