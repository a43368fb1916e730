"""fastgan.nn: one ``torch.nn.Module`` per functional loss and penalty, as ``torch.nn``
mirrors ``torch.nn.functional``.

The keyword options of the function are the constructor's arguments (checked when the
module is built, so a typo fails at ``__init__``, not at the first step); the tensors
are ``forward``'s.  Each ``forward`` is the function, nothing else::

    criterion = fastgan.nn.HingeDLoss(margin=1.0)
    loss_d = criterion(d_real, d_fake)        # == fastgan.F.hinge_d_loss(d_real, d_fake, margin=1.0)

The penalties take the critic in ``forward`` (``GradientPenalty()(critic, real, fake)``).
``LeCamRegularizer`` and ``PathLengthRegularizer`` keep moving averages as buffers.
``BCEWithLogitsLoss`` is the drop-in for ``torch.nn.BCEWithLogitsLoss`` (``weight`` and
``pos_weight`` registered as buffers, as torch's are).
"""
from __future__ import annotations

import numbers
from typing import Optional

from torch import Tensor, nn

from . import functional as F
from .checks import check_bool, check_number, check_p, check_reduction
from .recipes import LeCamRegularizer, PathLengthRegularizer
from .registry import D_KINDS, G_KINDS

__all__ = [
    "BCEDLoss", "BCEGLoss", "HingeDLoss", "HingeGLoss", "LSGANDLoss", "LSGANGLoss", "WassersteinDLoss",
    "WassersteinGLoss", "DLoss", "GLoss", "BCEWithLogitsLoss", "RaGANDLoss", "RaGANGLoss", "RpGANDLoss",
    "RpGANGLoss", "GaussianKL", "KLDivLogits", "JSDivLogits", "GradNormPenalty", "GradientPenalty",
    "R1Penalty", "R2Penalty", "FeatureMatchingLoss", "DRAGANPenalty", "DriftPenalty", "ApproxR1Penalty",
    "LeCamRegularizer", "PathLengthRegularizer",
]


class _Options(nn.Module):
    """A module holding a function's keyword options, checked by the subclass's
    ``__init__`` before they get here: each is an attribute (``module.margin``), and
    ``options`` (what ``forward`` passes) and ``repr`` are read from them."""

    def __init__(self, **options):
        super().__init__()
        self._option_names = tuple(options)
        for name, value in options.items():
            setattr(self, name, value)

    @property
    def options(self) -> dict:
        return {name: getattr(self, name) for name in self._option_names}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


class _Pair(_Options):
    """A loss of ``(real, fake)``."""
    fn = None

    def forward(self, real: Tensor, fake: Tensor):
        return type(self).fn(real, fake, **self.options)


class _One(_Options):
    """A generator loss of ``fake`` alone."""
    fn = None

    def forward(self, fake: Tensor):
        return type(self).fn(fake, **self.options)


def _common(reduction, return_per_discriminator) -> dict:
    """The options every D/G loss takes (``return_per_discriminator`` kept only when set)."""
    out = {"reduction": check_reduction(reduction)}
    if check_bool("return_per_discriminator", return_per_discriminator):
        out["return_per_discriminator"] = True
    return out


# --------------------------------------------------------------------------- the classic losses

class BCEDLoss(_Pair):
    """``fastgan.F.bce_d_loss``: vanilla GAN discriminator loss on logits."""
    fn = staticmethod(F.bce_d_loss)

    def __init__(self, *, real_label: float = 1.0, fake_label: float = 0.0, reduction: str = "mean",
                 return_per_discriminator: bool = False):
        super().__init__(real_label=check_number("real_label", real_label),
                         fake_label=check_number("fake_label", fake_label),
                         **_common(reduction, return_per_discriminator))


class BCEGLoss(_One):
    """``fastgan.F.bce_g_loss``: non-saturating (default) or saturating generator loss."""
    fn = staticmethod(F.bce_g_loss)

    def __init__(self, *, saturating: bool = False, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(saturating=check_bool("saturating", saturating), **_common(reduction, return_per_discriminator))


class HingeDLoss(_Pair):
    """``fastgan.F.hinge_d_loss``: ``relu(margin − x)`` and ``relu(margin + y)``."""
    fn = staticmethod(F.hinge_d_loss)

    def __init__(self, *, margin: float = 1.0, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(margin=check_number("margin", margin), **_common(reduction, return_per_discriminator))


class HingeGLoss(_One):
    """``fastgan.F.hinge_g_loss``: ``−y``."""
    fn = staticmethod(F.hinge_g_loss)

    def __init__(self, *, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(**_common(reduction, return_per_discriminator))


class LSGANDLoss(_Pair):
    """``fastgan.F.lsgan_d_loss``: ``½(x − b)²`` and ``½(y − a)²``."""
    fn = staticmethod(F.lsgan_d_loss)

    def __init__(self, *, a: float = 0.0, b: float = 1.0, reduction: str = "mean",
                 return_per_discriminator: bool = False):
        super().__init__(a=check_number("a", a), b=check_number("b", b), **_common(reduction, return_per_discriminator))


class LSGANGLoss(_One):
    """``fastgan.F.lsgan_g_loss``: ``½(y − c)²``."""
    fn = staticmethod(F.lsgan_g_loss)

    def __init__(self, *, c: float = 1.0, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(c=check_number("c", c), **_common(reduction, return_per_discriminator))


class WassersteinDLoss(_Pair):
    """``fastgan.F.wasserstein_d_loss``: ``−x`` and ``y``."""
    fn = staticmethod(F.wasserstein_d_loss)

    def __init__(self, *, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(**_common(reduction, return_per_discriminator))


class WassersteinGLoss(_One):
    """``fastgan.F.wasserstein_g_loss``: ``−y``."""
    fn = staticmethod(F.wasserstein_g_loss)

    def __init__(self, *, reduction: str = "mean", return_per_discriminator: bool = False):
        super().__init__(**_common(reduction, return_per_discriminator))


def _by_kind(kind, table: dict):
    if not isinstance(kind, str) or kind not in table:
        raise ValueError(f"kind must be one of {tuple(table)}, got {kind!r}")
    return table[kind]


_D_MODULES = {"bce": BCEDLoss, "hinge": HingeDLoss, "lsgan": LSGANDLoss, "wasserstein": WassersteinDLoss}
_G_MODULES = {"bce": BCEGLoss, "hinge": HingeGLoss, "lsgan": LSGANGLoss, "wasserstein": WassersteinGLoss}
assert set(_D_MODULES) == set(D_KINDS) and set(_G_MODULES) == set(G_KINDS)


class DLoss(_Pair):
    """``fastgan.F.d_loss(kind, ...)``: the discriminator loss named by ``kind``; the options
    are checked at construction by the module of that kind (``DLoss("hinge", margin=2.0)``
    checks as ``HingeDLoss(margin=2.0)`` does: an unknown or bad option fails here)."""

    def __init__(self, kind: str, **options):
        super().__init__(**_by_kind(kind, _D_MODULES)(**options).options)
        self.kind = kind

    def forward(self, real: Tensor, fake: Tensor):
        return F.d_loss(self.kind, real, fake, **self.options)

    def extra_repr(self) -> str:
        return ", ".join([repr(self.kind)] + [f"{k}={v!r}" for k, v in self.options.items()])


class GLoss(_One):
    """``fastgan.F.g_loss(kind, ...)``: the generator loss named by ``kind``, its options
    checked at construction as ``DLoss``'s are."""

    def __init__(self, kind: str, **options):
        super().__init__(**_by_kind(kind, _G_MODULES)(**options).options)
        self.kind = kind

    def forward(self, fake: Tensor):
        return F.g_loss(self.kind, fake, **self.options)

    def extra_repr(self) -> str:
        return ", ".join([repr(self.kind)] + [f"{k}={v!r}" for k, v in self.options.items()])


class BCEWithLogitsLoss(nn.Module):
    """Drop-in for ``torch.nn.BCEWithLogitsLoss``: same constructor, buffers and values
    (``fastgan.F.binary_cross_entropy_with_logits``)."""

    def __init__(self, weight: Optional[Tensor] = None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight: Optional[Tensor] = None):
        super().__init__()
        if size_average is not None or reduce is not None:
            from torch.nn import _reduction
            reduction = _reduction.legacy_get_string(size_average, reduce)
        self.reduction = check_reduction(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


# --------------------------------------------------------------------------- relativistic losses, divergences

class RaGANDLoss(_Pair):
    """``fastgan.F.ragan_d_loss``: relativistic average GAN, discriminator."""
    fn = staticmethod(F.ragan_d_loss)

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction=check_reduction(reduction))


class RaGANGLoss(_Pair):
    """``fastgan.F.ragan_g_loss``: relativistic average GAN, generator (takes the real scores too)."""
    fn = staticmethod(F.ragan_g_loss)

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction=check_reduction(reduction))


class RpGANDLoss(_Pair):
    """``fastgan.F.rpgan_d_loss``: relativistic pairing GAN, discriminator."""
    fn = staticmethod(F.rpgan_d_loss)

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction=check_reduction(reduction))


class RpGANGLoss(_Pair):
    """``fastgan.F.rpgan_g_loss``: relativistic pairing GAN, generator."""
    fn = staticmethod(F.rpgan_g_loss)

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction=check_reduction(reduction))


class GaussianKL(_Pair):
    """``fastgan.F.gaussian_kl``: the VAE's KL term; ``forward(mu, logvar)``."""
    fn = staticmethod(F.gaussian_kl)

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction=check_reduction(reduction))


class _Divergence(_Pair):
    def __init__(self, *, dim: int = -1, reduction: str = "mean"):
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        super().__init__(dim=int(dim), reduction=check_reduction(reduction))


class KLDivLogits(_Divergence):
    """``fastgan.F.kl_div_logits``: KL(P ‖ Q) of two logit tensors along ``dim``."""
    fn = staticmethod(F.kl_div_logits)


class JSDivLogits(_Divergence):
    """``fastgan.F.js_div_logits``: Jensen–Shannon divergence of two logit tensors along ``dim``."""
    fn = staticmethod(F.js_div_logits)


class FeatureMatchingLoss(_Pair):
    """``fastgan.F.feature_matching_loss``; ``forward(real_feats, fake_feats)`` with nested lists."""
    fn = staticmethod(F.feature_matching_loss)

    def __init__(self, *, reduction: str = "mean", weight: float = 1.0, detach_real: bool = True, p: int = 1,
                 over_maps: str = "sum", over_discriminators: str = "sum", relative: bool = False):
        super().__init__(reduction=check_reduction(reduction), weight=check_number("weight", weight),
                         detach_real=check_bool("detach_real", detach_real), p=check_p(p),
                         over_maps=F._combine("over_maps", over_maps),
                         over_discriminators=F._combine("over_discriminators", over_discriminators),
                         relative=check_bool("relative", relative))


# --------------------------------------------------------------------------- penalties

class _Penalty(_Options):
    """A penalty: ``forward``'s arguments (the critic, tensors, per-call options) then the
    module's options."""
    fn = None

    def forward(self, *args, **per_call):
        return type(self).fn(*args, **per_call, **self.options)


class GradNormPenalty(_Penalty):
    """``fastgan.F.grad_norm_penalty``; ``forward(grads)``."""
    fn = staticmethod(F.grad_norm_penalty)

    def __init__(self, *, center: float = 1.0, one_sided: bool = False, reduction: str = "mean"):
        super().__init__(center=check_number("center", center), one_sided=check_bool("one_sided", one_sided),
                         reduction=check_reduction(reduction))


class GradientPenalty(_Penalty):
    """``fastgan.F.gradient_penalty`` (WGAN-GP; ``one_sided=True`` is the LP variant);
    ``forward(critic, real, fake, alpha=None, scaler=None)``."""
    fn = staticmethod(F.gradient_penalty)

    def __init__(self, *, weight: float = 10.0, center: float = 1.0, one_sided: bool = False):
        super().__init__(weight=check_number("weight", weight), center=check_number("center", center),
                         one_sided=check_bool("one_sided", one_sided))

    def forward(self, critic, real: Tensor, fake: Tensor, alpha: Optional[Tensor] = None, scaler=None) -> Tensor:
        return super().forward(critic, real, fake, alpha=alpha, scaler=scaler)


class R1Penalty(_Penalty):
    """``fastgan.F.r1_penalty``: ``gamma/2 · E‖∇D(real)‖²``; ``forward(critic, real, scaler=None)``."""
    fn = staticmethod(F.r1_penalty)

    def __init__(self, *, gamma: float = 10.0):
        super().__init__(gamma=check_number("gamma", gamma))

    def forward(self, critic, real: Tensor, scaler=None) -> Tensor:
        return super().forward(critic, real, scaler=scaler)


class R2Penalty(_Penalty):
    """``fastgan.F.r2_penalty``: R1 on the fakes; ``forward(critic, fake, scaler=None)``."""
    fn = staticmethod(F.r2_penalty)

    def __init__(self, *, gamma: float = 10.0):
        super().__init__(gamma=check_number("gamma", gamma))

    def forward(self, critic, fake: Tensor, scaler=None) -> Tensor:
        return super().forward(critic, fake, scaler=scaler)


class DRAGANPenalty(_Penalty):
    """``fastgan.F.dragan_penalty``; ``forward(critic, real, alpha=None, scaler=None, noise=None)``."""
    fn = staticmethod(F.dragan_penalty)

    def __init__(self, *, weight: float = 10.0, c: float = 0.5):
        super().__init__(weight=check_number("weight", weight), c=check_number("c", c))

    def forward(self, critic, real: Tensor, alpha: Optional[Tensor] = None, scaler=None,
                noise: Optional[Tensor] = None) -> Tensor:
        return super().forward(critic, real, alpha=alpha, scaler=scaler, noise=noise)


class DriftPenalty(_Penalty):
    """``fastgan.F.drift_penalty``: ``eps · mean(x²)``; ``forward(real_scores)``."""
    fn = staticmethod(F.drift_penalty)

    def __init__(self, *, eps: float = 1e-3):
        super().__init__(eps=check_number("eps", eps))

    def forward(self, real_scores: Tensor) -> Tensor:
        return super().forward(real_scores)


class ApproxR1Penalty(_Penalty):
    """``fastgan.F.approx_r1_penalty``: R1 without a double backward (APT / FastGen);
    ``forward(critic, real, noise=None)``."""
    fn = staticmethod(F.approx_r1_penalty)

    def __init__(self, *, sigma: float = 0.1, weight: float = 1.0):
        super().__init__(sigma=check_number("sigma", sigma), weight=check_number("weight", weight))

    def forward(self, critic, real: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        return super().forward(critic, real, noise=noise)


# LeCamRegularizer (fastgan.F.lecam_penalty with its moving averages as buffers) and
# PathLengthRegularizer (StyleGAN2's, with pl_mean as a buffer) live in fastgan/recipes.py.
