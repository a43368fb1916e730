"""fastgan.compat: one-line replacements for the GAN-loss classes and functions people copy.

Each keeps its original's call convention and gives the same values and gradients as
the formulas that original documents (written here from those conventions, tested in
tests/test_nn_compat.py against plain torch compositions; no code is taken from the
projects):

* ``Pix2PixGANLoss(gan_mode, target_real_label=1.0, target_fake_label=0.0)`` — pix2pix /
  CycleGAN's ``GANLoss``, called ``criterion(prediction, target_is_real)``.  ``"lsgan"``
  is ``MSELoss`` against the label (no ½), ``"vanilla"`` is ``BCEWithLogitsLoss``,
  ``"wgangp"`` is ``−mean(x)`` for real and ``mean(x)`` for fake.
* ``BasicSRGANLoss(gan_type, real_label_val=1.0, fake_label_val=0.0, loss_weight=1.0)`` —
  BasicSR's ``GANLoss``, called ``criterion(input, target_is_real, is_disc=False)``;
  ``gan_type`` in ``{"vanilla", "lsgan", "wgan", "wgan_softplus", "hinge"}``, and
  ``loss_weight`` scales the generator's loss only.
* ``SPADEGANLoss(gan_mode, target_real_label=1.0, target_fake_label=0.0)`` — SPADE's
  ``GANLoss``, ``criterion(input, target_is_real, for_discriminator=True)``, where
  ``input`` may be a list (multiscale discriminators; each entry a tensor or a list whose
  last tensor is the score): the mean over discriminators.  ``"hinge"`` for the
  discriminator is ``−mean(min(x − 1, 0))`` (real) and ``−mean(min(−x − 1, 0))`` (fake);
  for the generator ``−mean(x)``.  ``"original"`` is BCE with logits, ``"ls"`` MSE, ``"w"``
  ``∓mean(x)``.  A list input gives shape ``(1,)`` and a tensor a 0-d loss, as SPADE's.
  One difference, at a measure-zero set: exactly at ``x = ±1`` SPADE's ``torch.min(x − 1, 0)``
  splits the tie and gives half the subgradient (``−1/(2n)``), fastgan's fused hinge
  follows ``relu'(0) = 0`` (gradient 0 there); elsewhere values and gradients are equal.
* ``hifigan_discriminator_loss(real_outputs, fake_outputs)``,
  ``hifigan_generator_loss(fake_outputs)``, ``hifigan_feature_loss(fmap_r, fmap_g)`` —
  HiFi-GAN's functions: LSGAN without ½ summed over discriminators (returning the
  per-discriminator values as HiFi-GAN does), and feature matching ``2·Σ mean|r − g|``.

The scores go through fastgan's fused losses (one fused call per discriminator) and the
feature maps through the fused ``feature_matching_loss``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from . import functional as F
from .checks import check_number

__all__ = ["Pix2PixGANLoss", "BasicSRGANLoss", "SPADEGANLoss", "hifigan_discriminator_loss",
           "hifigan_generator_loss", "hifigan_feature_loss"]


def check_mode(name: str, value, allowed) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError naming ``name``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def _one_side(loss, x: Tensor, real: bool, **options) -> Tensor:
    """The mean of one side's terms of the fused pair loss ``loss`` (the other side empty).
    Half types: the terms summed in float32 (their float16 sum passes 65 504 at ~10^5
    terms), as torch's own mean does; float32/64: the fused sum over ``numel``."""
    none = x.new_empty(0)
    args = (x, none) if real else (none, x)
    if x.dtype in (torch.float16, torch.bfloat16):
        terms = loss(*args, reduction="none", **options)[0 if real else 1]
        return (terms.sum(dtype=torch.float32) / x.numel()).to(x.dtype)
    return loss(*args, reduction="sum", **options) / x.numel()


def _bce(x: Tensor, label: float) -> Tensor:
    """``mean BCEwithlogits(x, label)`` (one side of the fused pair loss)."""
    return _one_side(F.bce_d_loss, x, True, real_label=label)


def hinge_side(x: Tensor, real: bool) -> Tensor:
    """``mean relu(1 − x)`` (real) or ``mean relu(1 + x)`` (fake): one side of the fused hinge."""
    return _one_side(F.hinge_d_loss, x, real)


def _mse(x: Tensor, label: float) -> Tensor:
    """``mean (x − label)²``: twice the fused ``½(x − c)²``."""
    return 2.0 * F.lsgan_g_loss(x, c=label)


class Pix2PixGANLoss(nn.Module):
    """pix2pix / CycleGAN ``GANLoss``: ``criterion(prediction, target_is_real)``."""

    def __init__(self, gan_mode: str, target_real_label: float = 1.0, target_fake_label: float = 0.0):
        super().__init__()
        self.gan_mode = check_mode("gan_mode", gan_mode, ("lsgan", "vanilla", "wgangp"))
        self.real_label = check_number("target_real_label", target_real_label)
        self.fake_label = check_number("target_fake_label", target_fake_label)

    def forward(self, prediction: Tensor, target_is_real: bool) -> Tensor:
        label = self.real_label if target_is_real else self.fake_label
        if self.gan_mode == "lsgan":
            return _mse(prediction, label)
        if self.gan_mode == "vanilla":
            return _bce(prediction, label)
        return F.wasserstein_g_loss(prediction) if target_is_real else -F.wasserstein_g_loss(prediction)


class BasicSRGANLoss(nn.Module):
    """BasicSR ``GANLoss``: ``criterion(input, target_is_real, is_disc=False)``; ``loss_weight``
    applies to the generator only."""

    def __init__(self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0,
                 loss_weight: float = 1.0):
        super().__init__()
        self.gan_type = check_mode("gan_type", gan_type, ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge"))
        self.real_label_val = check_number("real_label_val", real_label_val)
        self.fake_label_val = check_number("fake_label_val", fake_label_val)
        self.loss_weight = check_number("loss_weight", loss_weight)

    def forward(self, input: Tensor, target_is_real: bool, is_disc: bool = False) -> Tensor:
        label = self.real_label_val if target_is_real else self.fake_label_val
        if self.gan_type == "vanilla":
            loss = _bce(input, label)
        elif self.gan_type == "lsgan":
            loss = _mse(input, label)
        elif self.gan_type == "wgan":
            loss = F.wasserstein_g_loss(input) if target_is_real else -F.wasserstein_g_loss(input)
        elif self.gan_type == "wgan_softplus":
            # softplus(−x) for real, softplus(x) for fake: the non-saturating BCE terms
            loss = F.bce_g_loss(input if target_is_real else -input)
        elif is_disc:  # hinge, discriminator: relu(1 − x) for real, relu(1 + x) for fake
            loss = hinge_side(input, target_is_real)
        else:  # hinge, generator: −mean(x)
            loss = F.hinge_g_loss(input)
        return loss if is_disc else loss * self.loss_weight


def _scores(input) -> List[Tensor]:
    """SPADE / pix2pixHD multiscale outputs: a tensor, or a list of per-discriminator entries,
    each a tensor or a list whose last tensor is the score."""
    if isinstance(input, Tensor):
        return [input]
    return [entry[-1] if isinstance(entry, (list, tuple)) else entry for entry in input]


class SPADEGANLoss(nn.Module):
    """SPADE ``GANLoss``: ``criterion(input, target_is_real, for_discriminator=True)``; list
    inputs are averaged over discriminators."""

    def __init__(self, gan_mode: str, target_real_label: float = 1.0, target_fake_label: float = 0.0):
        super().__init__()
        self.gan_mode = check_mode("gan_mode", gan_mode, ("ls", "original", "w", "hinge"))
        self.real_label = check_number("target_real_label", target_real_label)
        self.fake_label = check_number("target_fake_label", target_fake_label)

    def _one(self, x: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        label = self.real_label if target_is_real else self.fake_label
        if self.gan_mode == "original":
            return _bce(x, label)
        if self.gan_mode == "ls":
            return _mse(x, label)
        if self.gan_mode == "w":
            return F.wasserstein_g_loss(x) if target_is_real else -F.wasserstein_g_loss(x)
        if not for_discriminator:
            if not target_is_real:
                raise ValueError("SPADE's hinge generator loss needs target_is_real=True")
            return F.hinge_g_loss(x)
        # −mean(min(x − 1, 0)) = mean relu(1 − x); −mean(min(−x − 1, 0)) = mean relu(1 + x)
        return hinge_side(x, target_is_real)

    def forward(self, input, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        if isinstance(input, Tensor):
            return self._one(input, target_is_real, for_discriminator)
        scores = _scores(input)
        total = sum(self._one(x, target_is_real, for_discriminator) for x in scores)
        return (total / len(scores)).reshape(1)  # SPADE's list result has shape (1,)


def hifigan_discriminator_loss(real_outputs: Sequence[Tensor], fake_outputs: Sequence[Tensor]
                               ) -> Tuple[Tensor, List[float], List[float]]:
    """HiFi-GAN's ``discriminator_loss``: ``Σ_d mean((1 − r_d)²) + mean(g_d²)``; returns the
    loss and the per-discriminator real and fake losses (Python floats, as HiFi-GAN's
    ``.item()`` lists)."""
    if len(real_outputs) != len(fake_outputs):
        raise ValueError(f"real_outputs has {len(real_outputs)} discriminators, fake_outputs {len(fake_outputs)}")
    loss, r_losses, g_losses = 0.0, [], []
    for r, g in zip(real_outputs, fake_outputs):
        r_loss, g_loss = _mse(r, 1.0), _mse(g, 0.0)
        loss = loss + r_loss + g_loss
        r_losses.append(r_loss.item())
        g_losses.append(g_loss.item())
    return loss, r_losses, g_losses


def hifigan_generator_loss(fake_outputs: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    """HiFi-GAN's ``generator_loss``: ``Σ_d mean((1 − g_d)²)``; returns the loss and the list of
    per-discriminator losses (tensors)."""
    losses = [_mse(g, 1.0) for g in fake_outputs]
    if not losses:
        raise ValueError("fake_outputs is empty: no discriminator outputs")
    return sum(losses[1:], losses[0]), losses


def hifigan_feature_loss(fmap_r: Sequence[Sequence[Tensor]], fmap_g: Sequence[Sequence[Tensor]]) -> Tensor:
    """HiFi-GAN's ``feature_loss``: ``2 · Σ_d Σ_l mean|r − g|``, the fused
    ``feature_matching_loss`` (the real maps keep their gradient, as in HiFi-GAN, where
    they come from the discriminator's forward in the generator step)."""
    return F.feature_matching_loss(fmap_r, fmap_g, weight=2.0, detach_real=False)
