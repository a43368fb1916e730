"""The one registry of fastgan ops.

Each op is declared once here: its name, its tensor arguments, its reference
(``fastgan.reference``), how a fused kernel family lowers its options, the
option sets worth exercising, how to draw sample inputs, and its tolerances per
dtype.  Backends implement entries of it; the tests, ``fastgan verify`` and
``fastgan bench`` iterate it, so a new op is one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from . import reference

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
REDUCTIONS = ("mean", "sum", "none")

# (rtol, atol) of a backend's result against the float64 reference evaluated on the
# same (already rounded) inputs.  Half types: one rounding of the output plus float32
# accumulation; float32: accumulation order; float64: a few ulps of the same formula.
TOLERANCES: Dict[torch.dtype, Tuple[float, float]] = {
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float32: (2e-5, 2e-5),
    torch.float64: (1e-10, 1e-12),
}

# A side of a pair loss: (sgn, t) for the kernel's term(s; sgn, t) (see kernels/losses.py).
Side = Optional[Tuple[float, float]]
Lowered = Tuple[str, Side, Side]


def _logits(shape, dtype, device, gen, scale=3.0):
    x = torch.randn(shape, dtype=torch.float64, generator=gen) * scale
    return x.to(device=device, dtype=dtype)


def _unit(shape, dtype, device, gen):
    return torch.rand(shape, dtype=torch.float64, generator=gen).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class OpSpec:
    name: str
    family: str                              # "pair" (D/G losses), "bce" (drop-in), "penalty"
    args: Tuple[str, ...]                    # tensor arguments, in order
    reference: Callable
    options: Tuple[dict, ...] = ({},)        # keyword sets the tests and verify exercise
    lower: Optional[Callable[..., Lowered]] = None   # pair family: options -> (kind, real side, fake side)
    reductions: Tuple[str, ...] = REDUCTIONS
    sample: Optional[Callable] = None        # (shapes, dtype, device, gen) -> list of tensors
    eager: Optional[Callable] = None         # what a user writes by hand (the benchmark baseline)
    tolerances: Dict[torch.dtype, Tuple[float, float]] = field(default_factory=lambda: dict(TOLERANCES))

    @property
    def baseline(self) -> Callable:
        """The hand-written eager composition ``fastgan bench`` compares against
        (the reference where the two coincide)."""
        return self.eager or self.reference

    @property
    def is_pair(self) -> bool:
        return len(self.args) == 2 and self.family == "pair"

    def make_inputs(self, shapes: Sequence, dtype, device="cpu", gen=None):
        """Sample inputs: ``shapes`` has one shape per tensor argument."""
        if gen is None:
            gen = torch.Generator().manual_seed(0)
        if self.sample is not None:
            return self.sample(shapes, dtype, device, gen)
        return [_logits(s, dtype, device, gen) for s in shapes]


def _bce_sample(shapes, dtype, device, gen):
    shape = shapes[0]
    x = _logits(shape, dtype, device, gen)
    t = _unit(shape, dtype, device, gen)
    return [x, t]


# --- the hand-written compositions users replace (benchmark baselines) -----------
_tF = torch.nn.functional


def _eager_bce_d(real, fake, real_label=1.0, fake_label=0.0, reduction="mean"):
    r = _tF.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label), reduction=reduction)
    f = _tF.binary_cross_entropy_with_logits(fake, torch.full_like(fake, fake_label), reduction=reduction)
    return (r, f) if reduction == "none" else r + f


def _eager_bce_g(fake, saturating=False, reduction="mean"):
    terms = -_tF.softplus(fake) if saturating else _tF.softplus(-fake)
    return terms if reduction == "none" else getattr(terms, reduction)()


def _eager_bce(input, target, weight=None, reduction="mean", pos_weight=None):
    return _tF.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction, pos_weight=pos_weight)


def _eager_penalty(grads, center=1.0, one_sided=False, reduction="mean"):
    d = grads.flatten(1).norm(dim=1) - center
    terms = (torch.relu(d) if one_sided else d) ** 2
    return terms if reduction == "none" else getattr(terms, reduction)()


OPS: Dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.name in OPS:
        raise ValueError(f"op {spec.name!r} is registered twice")
    OPS[spec.name] = spec
    return spec


register(OpSpec(
    "bce_d_loss", "pair", ("real", "fake"), reference.bce_d_loss,
    options=({}, {"real_label": 0.9}, {"real_label": 0.9, "fake_label": 0.1}),
    lower=lambda real_label=1.0, fake_label=0.0: ("bce", (1.0, real_label), (1.0, fake_label)),
    eager=_eager_bce_d))
register(OpSpec(
    "bce_g_loss", "pair", ("fake",), reference.bce_g_loss,
    options=({}, {"saturating": True}),
    lower=lambda saturating=False: ("bce", None, (-1.0, 0.0) if saturating else (1.0, 1.0)),
    eager=_eager_bce_g))
register(OpSpec(
    "hinge_d_loss", "pair", ("real", "fake"), reference.hinge_d_loss,
    options=({}, {"margin": 0.5}),
    lower=lambda margin=1.0: ("hinge", (-1.0, margin), (1.0, margin))))
register(OpSpec(
    "hinge_g_loss", "pair", ("fake",), reference.hinge_g_loss,
    lower=lambda: ("linear", None, (-1.0, 0.0))))
register(OpSpec(
    "lsgan_d_loss", "pair", ("real", "fake"), reference.lsgan_d_loss,
    options=({}, {"a": -1.0, "b": 1.0}),
    lower=lambda a=0.0, b=1.0: ("lsgan", (1.0, b), (1.0, a))))
register(OpSpec(
    "lsgan_g_loss", "pair", ("fake",), reference.lsgan_g_loss,
    options=({}, {"c": 0.0}),
    lower=lambda c=1.0: ("lsgan", None, (1.0, c))))
register(OpSpec(
    "wasserstein_d_loss", "pair", ("real", "fake"), reference.wasserstein_d_loss,
    lower=lambda: ("linear", (-1.0, 0.0), (1.0, 0.0))))
register(OpSpec(
    "wasserstein_g_loss", "pair", ("fake",), reference.wasserstein_g_loss,
    lower=lambda: ("linear", None, (-1.0, 0.0))))
register(OpSpec(
    "binary_cross_entropy_with_logits", "bce", ("input", "target"),
    reference.binary_cross_entropy_with_logits, sample=_bce_sample, eager=_eager_bce))

register(OpSpec(
    "grad_norm_penalty", "penalty", ("grads",), reference.grad_norm_penalty,
    options=({}, {"center": 0.0}, {"one_sided": True}, {"center": 0.5, "one_sided": True}),
    eager=_eager_penalty))

D_KINDS = {"bce": "bce_d_loss", "hinge": "hinge_d_loss", "lsgan": "lsgan_d_loss",
           "wasserstein": "wasserstein_d_loss"}
G_KINDS = {"bce": "bce_g_loss", "hinge": "hinge_g_loss", "lsgan": "lsgan_g_loss",
           "wasserstein": "wasserstein_g_loss"}
