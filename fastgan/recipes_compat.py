"""The GAN-loss part of today's training codebases, one call each, on fastgan's fused pieces
(issue 25).  Each keeps its codebase's conventions (½ factors, divisions by the number of
discriminators, the weights of its default configuration) and gives the same values and
gradients as that codebase's loss code; tests/test_codebases.py checks each against a
plain-torch transcription of the file named here.  No code is taken from the projects.

Image tokenizers:

* taming-transformers (``CompVis/taming-transformers``, ``taming/modules/losses/vqperceptual.py``,
  ``VQLPIPSWithDiscriminator``): ``taming_d_loss`` (hinge with ½, or "vanilla" softplus with ½,
  times the ``disc_start`` gate) and ``taming_g_loss`` (``−mean(logits)``, VQGAN's adaptive
  weight times ``disc_weight``, the gate).
* Open-MAGVIT2 (``TencentARC/Open-MAGVIT2``, ``src/Open_MAGVIT2/modules/losses/vqperceptual.py``):
  ``OpenMAGVIT2GANLoss`` — the generator's BCE of the per-sample mean of the logits, LeCam
  (weight 0.05 in its configs) with its EMAs kept on the device instead of ``.item()``.
* LlamaGen (``FoundationVision/LlamaGen``, ``tokenizer/tokenizer_image/vq_loss.py``):
  ``llamagen_d_loss`` / ``llamagen_g_loss``; its "non-saturating" losses call
  ``binary_cross_entropy_with_logits(ones, logits)`` with the arguments swapped:
  ``swapped_bce=False`` (default) gives the intended loss, ``swapped_bce=True`` LlamaGen's.

Audio codecs and vocoders (scores and feature maps as lists per discriminator):

* DAC (``descriptinc/descript-audio-codec``, ``dac/nn/loss.py`` ``GANLoss``): ``dac_discriminator_loss``,
  ``dac_generator_loss`` (LSGAN without ½ summed over discriminators; the feature loss, which
  DAC's ``conf/base.yml`` weights by λ = 2).
* audiocraft / EnCodec (``facebookresearch/audiocraft``, ``audiocraft/adversarial/losses.py``,
  ``audiocraft/solvers/compression.py``, ``config/solver/compression/default.yaml``):
  ``audiocraft_discriminator_loss``, ``audiocraft_generator_loss`` (÷ number of
  discriminators, feature loss ÷ maps; ``relative=True`` the EnCodec paper's normalised
  feature loss) and ``encodec_balancer`` (``fastgan.GradBalancer`` with the default weights).
* BigVGAN (``NVIDIA/BigVGAN``, ``loss.py``): ``bigvgan_discriminator_loss``,
  ``bigvgan_generator_loss``, ``bigvgan_feature_loss`` — the per-discriminator losses returned
  as detached 0-d tensors instead of BigVGAN's ``.item()`` floats (no host synchronisation).
* vocos (``gemelo-ai/vocos``, ``vocos/loss.py`` and ``vocos/experiment.py``): ``vocos_discriminator_loss``,
  ``vocos_generator_loss`` (hinge generator ``mean(relu(1 − f))``), ``vocos_feature_loss``, each
  divided by the number of sub-discriminators as ``experiment.py`` does.

GAN revivals:

* R3GAN (``brownvc/R3GAN``, ``R3GAN/Trainer.py``): ``r3gan_d_loss`` (RpGAN + γ/2·(R1 + R2) from one
  critic evaluation per side) and ``r3gan_g_loss``; γ from ``fastgan.schedules.cosine_decay``.

StyleGAN2/3 and DMD2/LADD need no function of their own: see the README's recipes table.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from . import functional as F
from .checks import check_bool, check_number, check_tensor
from .compat import check_mode, hinge_side
from .recipes import GradBalancer, LeCamRegularizer, adaptive_weight
from .schedules import adopt_weight

__all__ = ["taming_d_loss", "taming_g_loss", "OpenMAGVIT2GANLoss", "llamagen_d_loss", "llamagen_g_loss",
           "dac_discriminator_loss", "dac_generator_loss", "audiocraft_discriminator_loss",
           "audiocraft_generator_loss", "encodec_balancer", "ENCODEC_LOSS_WEIGHTS", "bigvgan_discriminator_loss",
           "bigvgan_generator_loss", "bigvgan_feature_loss", "vocos_discriminator_loss", "vocos_generator_loss",
           "vocos_feature_loss", "r3gan_d_loss", "r3gan_g_loss"]

_SOFTPLUS_1 = math.log1p(math.e)  # softplus(1) = BCEwithlogits(input=1, target=0)


def _list(name: str, xs) -> list:
    if isinstance(xs, Tensor) or not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"{name} must be a non-empty list or tuple (one entry per discriminator), "
                        f"got {type(xs).__name__}")
    return list(xs)


# --------------------------------------------------------------------------- taming-transformers

def taming_d_loss(logits_real: Tensor, logits_fake: Tensor, *, global_step=0, disc_start=0,
                  disc_factor: float = 1.0, disc_loss: str = "hinge"):
    """taming's discriminator loss: ``adopt_weight(disc_factor, global_step, disc_start) ·
    ½(mean relu(1 − real) + mean relu(1 + fake))`` (``"vanilla"``: ``½(mean softplus(−real) +
    mean softplus(fake))``).  ``global_step`` may be a 0-d tensor (no host synchronisation)."""
    check_mode("disc_loss", disc_loss, ("hinge", "vanilla"))
    loss = F.hinge_d_loss(logits_real, logits_fake) if disc_loss == "hinge" else \
        F.bce_d_loss(logits_real, logits_fake)
    return adopt_weight(disc_factor, global_step, disc_start) * (0.5 * loss)


def taming_g_loss(nll_loss: Tensor, logits_fake: Tensor, last_layer: Tensor, *, global_step=0, disc_start=0,
                  disc_factor: float = 1.0, disc_weight: float = 1.0):
    """taming's generator GAN term: ``g = −mean(logits_fake)``, ``d_weight =
    adaptive_weight(nll_loss, g, last_layer) · disc_weight`` (0 when there is no graph, as taming
    in evaluation), returns ``(d_weight · adopt_weight(disc_factor, global_step, disc_start) · g,
    d_weight, g)``; add the first to ``nll_loss`` and the codebook loss as taming does."""
    g = F.hinge_g_loss(logits_fake)
    d_weight = adaptive_weight(nll_loss, g, last_layer) * check_number("disc_weight", disc_weight)
    return d_weight * adopt_weight(disc_factor, global_step, disc_start) * g, d_weight, g


# --------------------------------------------------------------------------- Open-MAGVIT2

def _per_sample_mean(logits: Tensor) -> Tensor:
    check_tensor("logits", logits)
    if logits.dim() < 1:
        raise ValueError(f"logits must have a batch dimension, got shape {tuple(logits.shape)}")
    return logits.reshape(logits.shape[0], -1).mean(dim=-1)


class OpenMAGVIT2GANLoss(nn.Module):
    """Open-MAGVIT2's GAN part of ``VQLPIPSWithDiscriminator`` (same arguments):
    ``d_loss(logits_real, logits_fake, global_step)`` and
    ``g_loss(nll_loss, logits_fake, global_step, last_layer=None)``.

    - generator: ``mean BCE(per-sample mean of logits_fake, 1)`` = ``bce_g_loss`` of the per-sample
      means, times ``d_weight`` (``gen_loss_weight``, as Open-MAGVIT2 a float32 0-d tensor, or the
      adaptive weight times ``disc_weight`` when it is None) and the ``disc_start`` gate;
      returns ``(term, d_weight)``.
    - discriminator: ``gate · (lecam_loss_weight · LeCam + disc_loss)`` with ``disc_loss`` hinge
      (½), vanilla (½) or non_saturate (per-sample means, BCE, no ½); LeCam's EMAs are updated
      before the term (decay 0.999, from 0) as Open-MAGVIT2's ``LeCAM_EMA``, held in
      ``self.lecam`` (a ``fastgan.nn.LeCamRegularizer``) without its ``.item()``.  Its EMAs are
      Python floats (float64); these are float32 buffers, because torch 2.13's compile drops
      the in-place update of a 0-d float64 buffer: call ``self.lecam.double()`` for float64
      EMAs in eager mode (bit for bit Open-MAGVIT2's).  ``lecam_sync=True`` averages the
      batch means over DDP ranks (Open-MAGVIT2 does not)."""

    def __init__(self, disc_start, disc_factor: float = 1.0, disc_weight: float = 1.0, disc_loss: str = "hinge",
                 gen_loss_weight: Optional[float] = None, lecam_loss_weight: Optional[float] = None,
                 lecam_sync: bool = False):
        super().__init__()
        self.disc_start = disc_start
        self.disc_factor = check_number("disc_factor", disc_factor)
        self.disc_weight = check_number("disc_weight", disc_weight)
        self.disc_loss = check_mode("disc_loss", disc_loss, ("hinge", "vanilla", "non_saturate"))
        self.gen_loss_weight = None if gen_loss_weight is None else check_number("gen_loss_weight", gen_loss_weight)
        self.lecam_loss_weight = None if lecam_loss_weight is None else \
            check_number("lecam_loss_weight", lecam_loss_weight)
        self.lecam = LeCamRegularizer(decay=0.999, update_first=True, sync=check_bool("lecam_sync", lecam_sync)) \
            if self.lecam_loss_weight is not None else None

    def d_loss(self, logits_real: Tensor, logits_fake: Tensor, global_step=0) -> Tensor:
        if self.disc_loss == "non_saturate":
            loss = F.bce_d_loss(_per_sample_mean(logits_real), _per_sample_mean(logits_fake))
        else:
            loss = 0.5 * (F.hinge_d_loss(logits_real, logits_fake) if self.disc_loss == "hinge"
                          else F.bce_d_loss(logits_real, logits_fake))
        if self.lecam is not None:
            loss = self.lecam(logits_real, logits_fake) * self.lecam_loss_weight + loss
        return adopt_weight(self.disc_factor, global_step, self.disc_start) * loss

    def g_loss(self, nll_loss: Tensor, logits_fake: Tensor, global_step=0,
               last_layer: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        g = F.bce_g_loss(_per_sample_mean(logits_fake))
        if self.gen_loss_weight is None:
            if last_layer is None:
                raise ValueError("last_layer is needed for the adaptive weight (gen_loss_weight is None)")
            d_weight = adaptive_weight(nll_loss, g, last_layer) * self.disc_weight
        else:  # Open-MAGVIT2: torch.tensor(gen_loss_weight), a float32 0-d tensor
            d_weight = torch.full((), self.gen_loss_weight, dtype=torch.float32, device=logits_fake.device)
        return d_weight * adopt_weight(self.disc_factor, global_step, self.disc_start) * g, d_weight


# --------------------------------------------------------------------------- LlamaGen

def llamagen_d_loss(logits_real: Tensor, logits_fake: Tensor, *, disc_loss: str = "hinge",
                    swapped_bce: bool = False) -> Tensor:
    """LlamaGen's discriminator losses, each ``½(real part + fake part)``: ``"hinge"``,
    ``"vanilla"`` (softplus) and ``"non-saturating"``.  LlamaGen's non-saturating loss calls
    ``binary_cross_entropy_with_logits(ones_like(x), x)``, the logits as the *target*:
    ``swapped_bce=True`` reproduces that, ``½(softplus(1) − mean(real) + log 2)`` (the fake half
    is the constant ``log 2``, with zero gradient: the discriminator never sees the fakes);
    ``swapped_bce=False`` gives the intended ``½(mean softplus(−real) + mean softplus(fake))``.
    Multiply by ``adopt_weight(disc_weight, global_step, disc_start)`` as LlamaGen does."""
    check_mode("disc_loss", disc_loss, ("hinge", "vanilla", "non-saturating"))
    check_bool("swapped_bce", swapped_bce)
    if disc_loss == "hinge":
        return 0.5 * F.hinge_d_loss(logits_real, logits_fake)
    if disc_loss == "vanilla" or not swapped_bce:
        return 0.5 * F.bce_d_loss(logits_real, logits_fake)
    # BCE(input=1, target=r) = softplus(1) − r; BCE(input=0, target=f) = log 2 − 0·f
    real = _SOFTPLUS_1 + F.wasserstein_g_loss(logits_real)
    fake = math.log(2.0) - (logits_fake * 0.0).mean()
    return 0.5 * (real + fake)


def llamagen_g_loss(logits_fake: Tensor, *, gen_adv_loss: str = "hinge", swapped_bce: bool = False) -> Tensor:
    """LlamaGen's generator losses: ``"hinge"`` ``−mean(f)``; ``"non-saturating"`` the intended
    ``mean softplus(−f)``, or with ``swapped_bce=True`` LlamaGen's
    ``binary_cross_entropy_with_logits(ones_like(f), f)`` = ``softplus(1) − mean(f)`` (a linear
    loss like hinge's, offset by a constant).  Multiply by its adaptive weight (when
    ``disc_adaptive_weight``) and the gated ``disc_weight`` as LlamaGen does."""
    check_mode("gen_adv_loss", gen_adv_loss, ("hinge", "non-saturating"))
    check_bool("swapped_bce", swapped_bce)
    if gen_adv_loss == "hinge":
        return F.hinge_g_loss(logits_fake)
    if not swapped_bce:
        return F.bce_g_loss(logits_fake)
    return _SOFTPLUS_1 + F.hinge_g_loss(logits_fake)


# --------------------------------------------------------------------------- DAC

def _scores_and_maps(name: str, outputs) -> Tuple[List[Tensor], List[List[Tensor]]]:
    """DAC-style discriminator outputs: per discriminator a list of tensors, the score last."""
    outputs = _list(name, outputs)
    scores, maps = [], []
    for d, out in enumerate(outputs):
        if isinstance(out, Tensor) or not isinstance(out, (list, tuple)) or not out:
            raise TypeError(f"{name}[{d}] must be a non-empty list (feature maps, then the score last)")
        scores.append(out[-1])
        maps.append(list(out[:-1]))
    return scores, maps


def dac_discriminator_loss(d_fake, d_real) -> Tensor:
    """DAC's ``GANLoss.discriminator_loss`` on its discriminator's outputs (per discriminator a
    list whose last tensor is the score): ``Σ_d mean(fake_d²) + mean((1 − real_d)²)``, twice
    fastgan's ``lsgan_d_loss`` over the lists (one fused op)."""
    fs, _ = _scores_and_maps("d_fake", d_fake)
    rs, _ = _scores_and_maps("d_real", d_real)
    return 2.0 * F.lsgan_d_loss(rs, fs)


def dac_generator_loss(d_fake, d_real) -> Tuple[Tensor, Tensor]:
    """DAC's ``GANLoss.generator_loss``: ``(Σ_d mean((1 − fake_d)²), Σ_d Σ_maps l1(fake, real.detach()))``
    over every map but the score.  DAC's training weights the feature term by λ = 2
    (``lambdas["adv/feat_loss"]``) and the adversarial one by 1."""
    fs, fmaps = _scores_and_maps("d_fake", d_fake)
    _, rmaps = _scores_and_maps("d_real", d_real)
    return 2.0 * F.lsgan_g_loss(fs), F.feature_matching_loss(rmaps, fmaps)


# --------------------------------------------------------------------------- audiocraft / EnCodec

ENCODEC_LOSS_WEIGHTS = {"adv": 4.0, "feat": 4.0, "l1": 0.1, "msspec": 2.0}
"""audiocraft's ``config/solver/compression/default.yaml`` ``losses`` with a weight > 0 (``mel``
and ``sisnr`` are 0 there: metrics only)."""


def audiocraft_discriminator_loss(logits_real: Sequence[Tensor], logits_fake: Sequence[Tensor], *,
                                  loss: str = "hinge", normalize: bool = True) -> Tensor:
    """audiocraft's ``AdversarialLoss.train_adv`` loss: ``Σ_d loss_fake(f_d) + loss_real(r_d)``,
    divided by the number of discriminators when ``normalize``; ``"hinge"``/``"hinge2"``:
    ``mean relu(1 + f) + mean relu(1 − r)``; ``"mse"``: ``mean(f²) + mean((r − 1)²)``."""
    check_mode("loss", loss, ("mse", "hinge", "hinge2"))
    rs, fs = _list("logits_real", logits_real), _list("logits_fake", logits_fake)
    out = F.hinge_d_loss(rs, fs) if loss != "mse" else 2.0 * F.lsgan_d_loss(rs, fs)
    return out / len(fs) if check_bool("normalize", normalize) else out


def audiocraft_generator_loss(logits_fake: Sequence[Tensor], fmaps_real, fmaps_fake, *, loss: str = "hinge",
                              normalize: bool = True, relative: bool = False) -> Tuple[Tensor, Tensor]:
    """audiocraft's ``AdversarialLoss.forward``: ``(adv, feat)`` with ``adv = Σ_d loss(f_d)``
    (``"hinge"``: ``−mean(f)``; ``"hinge2"``: ``mean relu(1 − f)``; ``"mse"``: ``mean((f − 1)²)``) and
    ``feat = Σ_d (Σ_maps L1(fake, real) / maps)``, both divided by the number of discriminators
    when ``normalize`` (its default, and ``FeatureMatchingLoss(normalize=True)``).
    ``relative=True``: each map's L1 divided by ``mean|real|``, the EnCodec paper's normalised
    feature loss (audiocraft computes that ``feat_scale`` and does not apply it)."""
    check_mode("loss", loss, ("mse", "hinge", "hinge2"))
    fs = _list("logits_fake", logits_fake)
    if loss == "hinge":
        adv = F.hinge_g_loss(fs)
    elif loss == "hinge2":
        adv = sum((hinge_side(f, True) for f in fs[1:]), hinge_side(fs[0], True))
    else:
        adv = 2.0 * F.lsgan_g_loss(fs)
    normalize = check_bool("normalize", normalize)
    feat = F.feature_matching_loss(fmaps_real, fmaps_fake, over_maps="mean", relative=relative,
                                   over_discriminators="mean" if normalize else "sum")
    return (adv / len(fs) if normalize else adv), feat


def encodec_balancer(adversaries: Sequence[str] = ("msstftd",), weights: Optional[dict] = None,
                     **balancer) -> GradBalancer:
    """The balancer of audiocraft's compression solver: ``fastgan.GradBalancer`` with
    ``ENCODEC_LOSS_WEIGHTS`` (or ``weights``), the ``adv``/``feat`` weights repeated per adversary
    as ``adv_<name>``/``feat_<name>``, and ``balance_grads=True, total_norm=1, ema_decay=0.999,
    per_batch_item=True`` (override with keywords)."""
    out = {}
    for name, w in (ENCODEC_LOSS_WEIGHTS if weights is None else weights).items():
        if name in ("adv", "feat"):
            out.update({f"{name}_{a}": w for a in adversaries})
        elif w > 0:
            out[name] = w
    opts = {"balance_grads": True, "total_norm": 1.0, "ema_decay": 0.999, "per_batch_item": True, **balancer}
    return GradBalancer(out, **opts)


# --------------------------------------------------------------------------- BigVGAN

def bigvgan_discriminator_loss(disc_real_outputs: Sequence[Tensor], disc_generated_outputs: Sequence[Tensor]
                               ) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """BigVGAN's (HiFi-GAN's) ``discriminator_loss``: ``Σ_d mean((1 − r_d)²) + mean(g_d²)``, with
    the per-discriminator real and fake losses as detached 0-d tensors (BigVGAN calls
    ``.item()`` on each: a host synchronisation per discriminator).  Two fused list ops."""
    rs, gs = _list("disc_real_outputs", disc_real_outputs), _list("disc_generated_outputs", disc_generated_outputs)
    if len(rs) != len(gs):
        raise ValueError(f"disc_real_outputs has {len(rs)} discriminators, disc_generated_outputs {len(gs)}")
    r_total, r_per = F.lsgan_g_loss(rs, c=1.0, return_per_discriminator=True)
    g_total, g_per = F.lsgan_g_loss(gs, c=0.0, return_per_discriminator=True)
    return 2.0 * (r_total + g_total), [2.0 * x.detach() for x in r_per], [2.0 * x.detach() for x in g_per]


def bigvgan_generator_loss(disc_outputs: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    """BigVGAN's ``generator_loss``: ``Σ_d mean((1 − g_d)²)`` and the per-discriminator losses."""
    total, per = F.lsgan_g_loss(_list("disc_outputs", disc_outputs), c=1.0, return_per_discriminator=True)
    return 2.0 * total, [2.0 * x for x in per]


def bigvgan_feature_loss(fmap_r, fmap_g) -> Tensor:
    """BigVGAN's ``feature_loss``: ``2 · Σ_d Σ_m mean|r − g|`` (λ = 2; the real maps keep their graph)."""
    return F.feature_matching_loss(fmap_r, fmap_g, weight=2.0, detach_real=False)


# --------------------------------------------------------------------------- vocos

def vocos_discriminator_loss(disc_real_outputs: Sequence[Tensor], disc_generated_outputs: Sequence[Tensor]
                             ) -> Tensor:
    """vocos' ``DiscriminatorLoss`` divided by the number of sub-discriminators as its
    ``experiment.py`` does: ``Σ_d (mean relu(1 − r_d) + mean relu(1 + g_d)) / D`` (without the
    ``.item()`` lists).  Per discriminator family (MPD, MRD); weight MRD's by ``mrd_loss_coeff``."""
    rs, gs = _list("disc_real_outputs", disc_real_outputs), _list("disc_generated_outputs", disc_generated_outputs)
    return F.hinge_d_loss(rs, gs) / len(rs)


def vocos_generator_loss(disc_outputs: Sequence[Tensor]) -> Tensor:
    """vocos' ``GeneratorLoss`` (hinge: ``mean relu(1 − g_d)``, not ``−mean``) divided by the number
    of sub-discriminators: ``Σ_d mean relu(1 − g_d) / D``."""
    gs = _list("disc_outputs", disc_outputs)
    return sum((hinge_side(g, True) for g in gs[1:]), hinge_side(gs[0], True)) / len(gs)


def vocos_feature_loss(fmap_r, fmap_g) -> Tensor:
    """vocos' ``FeatureMatchingLoss`` divided by the number of sub-discriminators:
    ``Σ_d Σ_m mean|r − g| / D`` (the real maps keep their graph, as vocos')."""
    return F.feature_matching_loss(fmap_r, fmap_g, over_discriminators="mean", detach_real=False)


# --------------------------------------------------------------------------- R3GAN

def _zero_centered(x: Tensor, logits: Tensor) -> Tensor:
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return F.grad_norm_penalty(g, center=0.0)  # mean_i ‖g_i‖², the squared norm without a root


def r3gan_d_loss(critic, real: Tensor, fake: Tensor, gamma, *, r1: bool = True, r2: bool = True) -> Tensor:
    """R3GAN's discriminator loss (``AccumulateDiscriminatorGradients``):
    ``mean(softplus(D(fake) − D(real))) + γ/2 · mean‖∂D(real)/∂real‖² + γ/2 · mean‖∂D(fake)/∂fake‖²``,
    ``real`` and ``fake`` detached (``fake`` is the generator's output), each side's critic
    evaluated once for both its adversarial term and its penalty, as R3GAN does.  ``critic``
    returns one logit per sample (shape ``(B,)``); wrap conditions in a lambda.  ``gamma`` may be
    a 0-d tensor (``fastgan.schedules.cosine_decay`` of a tensor step)."""
    check_tensor("real", real)
    check_tensor("fake", fake)
    r1, r2 = check_bool("r1", r1), check_bool("r2", r2)
    if not isinstance(gamma, Tensor):
        gamma = check_number("gamma", gamma)
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    x_r = real.detach().requires_grad_(r1)
    x_f = fake.detach().requires_grad_(r2)
    lr, lf = critic(x_r), critic(x_f)
    loss = F.rpgan_d_loss(lr, lf)
    if r1:
        loss = loss + (gamma / 2) * _zero_centered(x_r, lr)
    if r2:
        loss = loss + (gamma / 2) * _zero_centered(x_f, lf)
    return loss


def r3gan_g_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """R3GAN's generator loss (``AccumulateGeneratorGradients``): ``mean softplus(D(real) − D(fake))``."""
    return F.rpgan_g_loss(real_logits, fake_logits)
