"""fastgan.functional (also ``fastgan.F``): fused, numerically stable GAN losses.

All losses take raw scores (logits / critic outputs), never probabilities.
``real`` and ``fake`` may have different shapes and sizes and may be
non-contiguous views.

Reductions: a discriminator loss with ``"mean"`` returns ``mean(real terms) +
mean(fake terms)`` (0-d), with ``"sum"`` the sum of both sums, with ``"none"`` the
tuple ``(real_terms, fake_terms)`` each shaped like its input.  Generator losses
reduce as in ``torch.nn.functional``.  Half types accumulate in float32, float64
computes in float64, the result has the input's dtype.

The backend (``fastgan.set_backend``) decides who computes: the fused Triton
kernels, the native extension, or the pure-PyTorch reference.
"""
from __future__ import annotations

import numbers
from typing import Optional

import torch
from torch import Tensor

from . import backends, reference
from .checks import (FLOAT_SET, REDUCTIONS, DTypeError, ShapeError, check_bool, check_number, check_p,  # noqa: F401
                     check_real_tensor, check_reduction, check_same_device, check_tensor)
from .penalties import (approx_r1_penalty, clip_weights_, dragan_penalty, drift_penalty,  # noqa: F401
                        grad_norm_penalty, gradient_penalty, r1_penalty, r2_penalty)
from .registry import D_KINDS, G_KINDS, OPS

__all__ = [
    "bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss", "lsgan_d_loss", "lsgan_g_loss",
    "wasserstein_d_loss", "wasserstein_g_loss", "d_loss", "g_loss", "binary_cross_entropy_with_logits",
    "grad_norm_penalty", "gradient_penalty", "r1_penalty", "r2_penalty", "clip_weights_", "dragan_penalty",
    "drift_penalty",
    "ragan_d_loss", "ragan_g_loss", "rpgan_d_loss", "rpgan_g_loss", "gaussian_kl", "kl_div_logits",
    "js_div_logits", "feature_matching_loss",
    "approx_r1_penalty", "adaptive_weight", "lecam_penalty",
]

def _call(name: str, tensors, kwargs: dict, reduction: str, per_discriminator: bool = False):
    if isinstance(tensors[-1], (list, tuple)) or (len(tensors) == 2 and isinstance(tensors[0], (list, tuple))):
        return _call_list(name, tensors, kwargs, reduction, per_discriminator)
    if per_discriminator is not False:
        check_bool("return_per_discriminator", per_discriminator)
        if per_discriminator:
            out = backends.run(_checked(name, tensors, reduction), tensors, kwargs, reduction)
            return out, [out]
    return backends.run(_checked(name, tensors, reduction), tensors, kwargs, reduction)


def _call_list(name: str, tensors, kwargs: dict, reduction: str, per_discriminator: bool):
    """A loss over lists of score tensors, one per discriminator: the sum of each one's
    reduced loss ("none": the list of each one's terms), and with ``per_discriminator``
    also the list of per-discriminator losses.  Reduced, on a fused backend, one
    multi-tensor op over every tensor (``backends.run_list``)."""
    check_bool("return_per_discriminator", per_discriminator)
    spec = OPS[name]
    for arg, x in zip(spec.args, tensors):
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{name}: {arg} must be a list or tuple of tensors when "
                            f"{' and '.join(spec.args)} are lists; got {type(x).__name__}")
    n = len(tensors[0])
    if any(len(x) != n for x in tensors):
        raise ValueError(f"{name}: " + " and ".join(f"{a} has {len(x)} tensors" for a, x in zip(spec.args, tensors))
                         + "; one per discriminator in each")
    if n == 0:
        raise ValueError(f"{name}: empty lists (no discriminator outputs)")
    check_reduction(reduction)
    first = None
    for i, members in enumerate(zip(*tensors)):
        for arg, x in zip(spec.args, members):
            check_tensor(f"{name}: {arg}[{i}]", x)
            if first is None:
                first = (f"{arg}[{i}]", x.device)
            elif x.device != first[1]:
                raise ValueError(f"{name}: {arg}[{i}] is on {x.device} but {first[0]} is on {first[1]}; "
                                 "move every discriminator's output to one device")
        _checked(name, members, reduction)
    if reduction == "none":
        losses = [backends.run(spec, members, kwargs, reduction) for members in zip(*tensors)]
        return (losses, losses) if per_discriminator else losses
    total, losses = backends.run_list(spec, tensors, kwargs, reduction)
    return (total, losses) if per_discriminator else total


def _checked(name: str, tensors, reduction: str):
    """``OPS[name]``, once its tensors and reduction are checked."""
    # the checks are written for the per-call cost (a few µs matter at 4096 logits,
    # benchmarks/results/native-cpu.md); the check_* functions raise the errors
    spec = OPS[name]
    for arg, x in zip(spec.args, tensors):
        if not isinstance(x, Tensor) or x.dtype not in FLOAT_SET:
            check_tensor(arg, x)
    if len(tensors) == 2:
        if not (tensors[0].is_cpu and tensors[1].is_cpu):
            check_same_device(spec.args, tensors)
    elif len(tensors) > 2:
        check_same_device(spec.args, tensors)
    if reduction not in REDUCTIONS:
        check_reduction(reduction)
    return spec


# --------------------------------------------------------------------------- losses

def bce_d_loss(real: Tensor, fake: Tensor, *, real_label: float = 1.0, fake_label: float = 0.0,
               reduction: str = "mean",
               return_per_discriminator: bool = False):
    """Vanilla GAN discriminator loss, stable BCE with logits.

    ``BCEwithlogits(x, real_label) + BCEwithlogits(y, fake_label)`` per element, where
    ``BCEwithlogits(s, t) = max(s, 0) − s·t + log1p(exp(−|s|))`` (``0·∞ = 0``, so
    ``BCEwithlogits(+∞, 1) = 0``).  ``real_label < 1`` is one-sided label smoothing.
    """
    kw = {"real_label": check_number("real_label", real_label),
          "fake_label": check_number("fake_label", fake_label)}
    return _call("bce_d_loss", (real, fake), kw, reduction, return_per_discriminator)


def bce_g_loss(fake: Tensor, *, saturating: bool = False, reduction: str = "mean",
               return_per_discriminator: bool = False):
    """Vanilla GAN generator loss.

    Non-saturating (default): ``softplus(−y) = −log D(G(z))``.
    Saturating (minimax, ``log(1 − D(G(z)))``): ``−softplus(y)``; its gradient vanishes
    when the discriminator confidently rejects the fakes.
    """
    kw = {"saturating": check_bool("saturating", saturating)}
    return _call("bce_g_loss", (fake,), kw, reduction, return_per_discriminator)


def hinge_d_loss(real: Tensor, fake: Tensor, *, margin: float = 1.0, reduction: str = "mean",
                 return_per_discriminator: bool = False):
    """Hinge discriminator loss: ``relu(margin − x)`` and ``relu(margin + y)``.
    The gradient is zero exactly at the margin (``relu'(0) = 0``)."""
    kw = {"margin": check_number("margin", margin)}
    return _call("hinge_d_loss", (real, fake), kw, reduction, return_per_discriminator)


def hinge_g_loss(fake: Tensor, *, reduction: str = "mean",
                 return_per_discriminator: bool = False):
    """Hinge generator loss: ``−y``."""
    return _call("hinge_g_loss", (fake,), {}, reduction, return_per_discriminator)


def lsgan_d_loss(real: Tensor, fake: Tensor, *, a: float = 0.0, b: float = 1.0, reduction: str = "mean",
                 return_per_discriminator: bool = False):
    """Least-squares discriminator loss: ``½(x − b)²`` and ``½(y − a)²``."""
    kw = {"a": check_number("a", a), "b": check_number("b", b)}
    return _call("lsgan_d_loss", (real, fake), kw, reduction, return_per_discriminator)


def lsgan_g_loss(fake: Tensor, *, c: float = 1.0, reduction: str = "mean",
                 return_per_discriminator: bool = False):
    """Least-squares generator loss: ``½(y − c)²``."""
    kw = {"c": check_number("c", c)}
    return _call("lsgan_g_loss", (fake,), kw, reduction, return_per_discriminator)


def wasserstein_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean",
                       return_per_discriminator: bool = False):
    """Wasserstein critic loss: ``−x`` and ``y`` (the critic minimises ``E[D(G(z))] − E[D(x)]``)."""
    return _call("wasserstein_d_loss", (real, fake), {}, reduction, return_per_discriminator)


def wasserstein_g_loss(fake: Tensor, *, reduction: str = "mean",
                       return_per_discriminator: bool = False):
    """Wasserstein generator loss: ``−y``."""
    return _call("wasserstein_g_loss", (fake,), {}, reduction, return_per_discriminator)


def _kind(kind, table) -> str:
    if not isinstance(kind, str) or kind not in table:
        raise ValueError(f"kind must be one of {tuple(table)}, got {kind!r}")
    return table[kind]


def d_loss(kind: str, real: Tensor, fake: Tensor, **kw):
    """Discriminator loss by name: ``kind`` in ``{"bce", "hinge", "lsgan", "wasserstein"}``."""
    return globals()[_kind(kind, D_KINDS)](real, fake, **kw)


def g_loss(kind: str, fake: Tensor, **kw):
    """Generator loss by name: ``kind`` in ``{"bce", "hinge", "lsgan", "wasserstein"}``."""
    return globals()[_kind(kind, G_KINDS)](fake, **kw)


# --------------------------------------------------------------------------- relativistic losses

def _ragan(name: str, real: Tensor, fake: Tensor, reduction: str):
    return backends.run(_checked(name, (real, fake), reduction), (real, fake), {}, reduction)


def ragan_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic average GAN (RaGAN, Jolicoeur-Martineau 2018), discriminator, on logits:
    ``BCE(x − mean(y), 1)`` and ``BCE(y − mean(x), 0)``, reduced per side and added like
    the other discriminator losses.  ESRGAN / BasicSR use the same terms times ½.

    Fused (``kernels/relativistic.py``, ``csrc/relativistic.cpp``): the two batch sums in
    one pass over both tensors, then one pass computing the BCE terms of the shifted
    scores and, in the same pass, the sums of their derivatives, so the backward is one
    element-wise pass (the batch means' contribution is a scalar per side).  Half types
    accumulate in float32; the result has the promoted input dtype."""
    return _ragan("ragan_d_loss", real, fake, reduction)


def ragan_g_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """RaGAN generator loss: the labels swapped, ``BCE(x − mean(y), 0)`` and
    ``BCE(y − mean(x), 1)``.  It needs the real scores (the gradient flows to the fakes
    through both terms).  Fused like ``ragan_d_loss``."""
    return _ragan("ragan_g_loss", real, fake, reduction)


def _rpgan(name: str, real: Tensor, fake: Tensor, reduction: str):
    spec = _checked(name, (real, fake), reduction)
    check_same_device(("real", "fake"), (real, fake))
    if real.shape != fake.shape:
        raise ShapeError(f"{name}: real and fake are paired element by element and must have the same "
                         f"shape; got real {tuple(real.shape)} and fake {tuple(fake.shape)}")
    return backends.run(spec, (real, fake), {}, reduction)


def rpgan_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic pairing GAN (RpGAN, Jolicoeur-Martineau 2018; the loss of R3GAN, Huang et
    al. 2024), discriminator: ``softplus(y − x)`` per pair of same-shaped scores.  Fused: one
    pass reads both tensors (no difference tensor), the backward writes both gradients in
    one pass."""
    return _rpgan("rpgan_d_loss", real, fake, reduction)


def rpgan_g_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """RpGAN generator loss: ``softplus(x − y)`` per pair, fused like ``rpgan_d_loss``."""
    return _rpgan("rpgan_g_loss", real, fake, reduction)


# --------------------------------------------------------------------------- divergences

def gaussian_kl(mu: Tensor, logvar: Tensor, *, reduction: str = "mean"):
    """The VAE's KL term, KL(N(mu, exp(logvar)) ‖ N(0, I)) (Kingma & Welling 2014, app. B):
    per sample ``−½ Σ_j (1 + logvar − mu² − exp(logvar))`` over every non-batch dim (dim 0
    is the batch), then reduced over the batch ("none": one value per sample).

    Fused (one read of mu and logvar; the backward one write of each gradient):
    ``kernels/divergence.py`` on the triton backend, ``csrc/divergence.cpp`` on the native
    backend's CPU path."""
    spec = _checked("gaussian_kl", (mu, logvar), reduction)
    check_same_device(spec.args, (mu, logvar))
    if mu.shape != logvar.shape:
        raise ShapeError(f"gaussian_kl: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have "
                         "the same shape")
    if mu.dim() == 0:
        raise ShapeError("gaussian_kl: mu and logvar need a batch dimension (dim 0); got 0-d tensors")
    return backends.run(spec, (mu, logvar), {}, reduction)


def _distributions(name: str, p_logits: Tensor, q_logits: Tensor, dim, reduction: str):
    spec = _checked(name, (p_logits, q_logits), reduction)
    check_same_device(spec.args, (p_logits, q_logits))
    if p_logits.shape != q_logits.shape:
        raise ShapeError(f"{name}: p_logits {tuple(p_logits.shape)} and q_logits {tuple(q_logits.shape)} "
                         "must have the same shape")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name}: dim must be an int, got {type(dim).__name__}")
    dim = int(dim)  # numpy integers too: the kernels and the C++ op take a Python int
    if p_logits.dim() == 0 or not -p_logits.dim() <= dim < p_logits.dim():
        raise ValueError(f"{name}: dim {dim} is out of range for logits of shape {tuple(p_logits.shape)}")
    return backends.run(spec, (p_logits, q_logits), {"dim": dim}, reduction)


def kl_div_logits(p_logits: Tensor, q_logits: Tensor, *, dim: int = -1, reduction: str = "mean"):
    """KL(P ‖ Q) between ``softmax(p_logits)`` and ``softmax(q_logits)`` along ``dim``:
    ``Σ P·(log P − log Q)``, stable at logits of ±1e4, ``0·log 0 = 0``.  "mean" averages over
    the distributions, i.e. every position but ``dim`` (for 2-D logits with ``dim=-1`` that
    is torch's ``kl_div(log Q, log P, reduction="batchmean", log_target=True)``; for 3-D
    logits torch's "batchmean" divides by the first dim alone, fastgan by the number of
    distributions, e.g. per token of a ``B×T×V`` tensor); "sum" sums them; "none" has
    ``dim`` removed.  Fused over the distribution dim (``dim`` moved last: one copy when it is
    not last or the input is not contiguous; long rows split across programs on the
    triton backend); the backward reads the forward's saved per-row log-normalisers."""
    return _distributions("kl_div_logits", p_logits, q_logits, dim, reduction)


def js_div_logits(p_logits: Tensor, q_logits: Tensor, *, dim: int = -1, reduction: str = "mean"):
    """Jensen–Shannon divergence ``½ KL(P ‖ M) + ½ KL(Q ‖ M)``, ``M = ½(P + Q)``, between the
    softmax distributions along ``dim`` (natural log, so at most ``log 2``); reductions as
    ``kl_div_logits``.  Fused as ``kl_div_logits`` is."""
    return _distributions("js_div_logits", p_logits, q_logits, dim, reduction)


# --------------------------------------------------------------------------- feature matching

def _maps(name: str, feats) -> list:
    """Feature maps as discriminators return them: a tensor, a list of tensors, or a list
    (per discriminator) of lists of tensors; as a list of lists."""
    if isinstance(feats, Tensor):
        return [[feats]]
    if not isinstance(feats, (list, tuple)):
        raise TypeError(f"{name} must be a tensor or a (nested) list of tensors, got {type(feats).__name__}")
    return [list(f) if isinstance(f, (list, tuple)) else [f] for f in feats]


_COMBINE = ("sum", "mean")


def _combine(name: str, value) -> str:
    if not isinstance(value, str) or value not in _COMBINE:
        raise ValueError(f"{name} must be one of {_COMBINE}, got {value!r}")
    return value


def feature_matching_loss(real_feats, fake_feats, *, reduction: str = "mean", weight: float = 1.0,
                          detach_real: bool = True, p: int = 1, over_maps: str = "sum",
                          over_discriminators: str = "sum", relative: bool = False):
    """Feature matching (pix2pixHD, MelGAN, HiFi-GAN): per feature map ``mean(|f_r − f_g|^p)``
    (``p = 1``: L1; ``p = 2``: squared L2), combined over maps and discriminators, times
    ``weight``.  ``real_feats``/``fake_feats`` are nested lists as multi-discriminators
    return them (per discriminator a list of maps), flat lists (one map per discriminator),
    or tensors.  ``reduction="sum"`` sums each map instead of averaging it.

    How the per-map terms combine (the conventions of today's codebases):

    - ``over_maps``: ``"sum"`` (default) or ``"mean"`` over each discriminator's maps;
    - ``over_discriminators``: ``"sum"`` (default) or ``"mean"`` over discriminators;
    - ``relative=True``: each map's term divided by ``mean(|f_r|)`` of its real map
      (EnCodec's normalised feature loss; no epsilon, as EnCodec: a real map of zeros
      divides by 0).

    HiFi-GAN / BigVGAN: ``weight=2``; DAC: ``weight=2`` (its λ); vocos:
    ``over_discriminators="mean"``; audiocraft: ``over_maps="mean",
    over_discriminators="mean"``; EnCodec: those and ``relative=True``.

    ``reduction="none"`` returns the per-element terms times the same factors as each
    map's reduced term (``weight``, ``1/maps``, ``1/discriminators``, ``1/mean|f_r|``):
    nested as the inputs, a tensor for tensors; the "mean" loss is the sum over maps of
    the mean of these terms.  The real maps are targets: detached unless
    ``detach_real=False`` (then, with ``relative``, the denominators are differentiated too).

    On the native and Triton backends the forward reads every map once and the backward
    reads each pair once more and writes each gradient, in one autograd node over all
    maps (Triton: one multi-tensor launch each way); ``over_maps``/``over_discriminators``
    become per-map factors of that op (one launch per distinct factor on Triton).
    ``relative=True`` is not fused yet: a composition of torch ops over the maps (its
    denominators depend on the data), without a host synchronisation."""
    check_reduction(reduction)
    weight = check_number("weight", weight)
    detach_real = check_bool("detach_real", detach_real)
    p = check_p(p)
    over_maps = _combine("over_maps", over_maps)
    over_discriminators = _combine("over_discriminators", over_discriminators)
    relative = check_bool("relative", relative)
    reals, fakes = _maps("real_feats", real_feats), _maps("fake_feats", fake_feats)
    if len(reals) != len(fakes):
        raise ValueError(f"real_feats has {len(reals)} discriminators, fake_feats {len(fakes)}")
    flat_r, flat_g = [], []
    for d, (rs, gs) in enumerate(zip(reals, fakes)):
        if len(rs) != len(gs):
            raise ValueError(f"discriminator {d}: real_feats has {len(rs)} maps, fake_feats {len(gs)}")
        if not gs and over_maps == "mean":
            raise ValueError(f"over_maps='mean': discriminator {d} has no feature maps to average")
        for m, (r, g) in enumerate(zip(rs, gs)):
            check_tensor(f"real_feats[{d}][{m}]", r)
            check_tensor(f"fake_feats[{d}][{m}]", g)
            check_same_device((f"real_feats[{d}][{m}]", f"fake_feats[{d}][{m}]"), (r, g))
            if r.shape != g.shape:
                raise ShapeError(f"discriminator {d}, map {m}: real_feats {tuple(r.shape)} and fake_feats "
                                 f"{tuple(g.shape)} differ in shape")
            if flat_g and g.device != flat_g[0].device:
                raise ValueError(f"fake_feats[{d}][{m}] is on {g.device} but fake_feats[0][0] is on "
                                 f"{flat_g[0].device}; move them to one device")
            r = r.detach() if detach_real else r
            flat_r.append(r if r.dtype == g.dtype else r.to(g.dtype))
            flat_g.append(g)
    if not flat_g:
        raise ValueError("feature_matching_loss: no feature maps")
    scales = reference.feature_matching_scales([len(gs) for gs in fakes], over_maps, over_discriminators)
    if relative:  # data-dependent denominators: torch ops over the maps (not fused yet)
        out = reference.feature_matching_relative(flat_r, flat_g, p=p, reduction=reduction, scales=scales)
    elif reduction == "none":
        out = [o * s if s != 1.0 else o
               for o, s in zip(backends.feature_matching(flat_r, flat_g, p, reduction), scales)]
    else:
        plain = all(s == 1.0 for s in scales)
        out = backends.feature_matching(flat_r, flat_g, p, reduction, scales=None if plain else scales)
    if reduction == "none":
        out = [o * weight for o in out] if weight != 1.0 else out
        return reference.nest_like(fake_feats, out)
    return out * weight if weight != 1.0 else out


def _broadcasts_to(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    """Drop-in for ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Same signature, values and broadcasting: per element
    ``weight · [(1 − t)·s + (1 + (pos_weight − 1)·t)·softplus(−s)]``; ``target`` has
    ``input``'s shape, ``weight`` and ``pos_weight`` broadcast to it and may be integer
    tensors.  As torch's: the result has ``target``'s dtype, and under autocast the loss
    runs in float32.  Errors where torch raises ``RuntimeError`` (an integer target,
    shapes that do not broadcast) are ``DTypeError`` / ``ShapeError``, which are
    ``RuntimeError`` too.  One difference: infinite logits give the limits of the math
    (``(+∞, t=1) → 0``) where torch gives nan.
    """
    if size_average is not None or reduce is not None:
        from torch.nn import _reduction
        reduction = _reduction.legacy_get_string(size_average, reduce)
    check_tensor("input", input, DTypeError)
    check_tensor("target", target, DTypeError)
    names, tensors = ["input", "target"], [input, target]
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None:
            names.append(name)
            tensors.append(check_real_tensor(name, v))
    check_same_device(names, tensors)
    if target.shape != input.shape:
        raise ShapeError(f"target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)})")
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None and not _broadcasts_to(v.shape, input.shape):
            raise ShapeError(f"{name} of shape {tuple(v.shape)} does not broadcast to the input's shape "
                             f"{tuple(input.shape)}")
    check_reduction(reduction)
    if torch.is_autocast_enabled(input.device.type):  # torch runs this loss in float32 under autocast
        input, target = input.float(), target.float()
    weight, pos_weight = _as_float(weight, input), _as_float(pos_weight, input)
    spec = OPS["binary_cross_entropy_with_logits"]
    return backends.run(spec, (input, target), {"weight": weight, "pos_weight": pos_weight}, reduction)


def _as_float(v: Optional[Tensor], like: Tensor) -> Optional[Tensor]:
    """An integer or bool weight as a float tensor (torch promotes them the same way)."""
    if v is None or v.is_floating_point():
        return v
    return v.to(torch.float64 if like.dtype == torch.float64 else torch.float32)


# --------------------------------------------------------------------------- recipe pieces (issue 25)
# plain-torch compositions for now, in fastgan/recipes.py: VQGAN's adaptive weight and LeCam
from .recipes import adaptive_weight, lecam_penalty  # noqa: E402,F401
