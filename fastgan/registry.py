"""The one registry of fastgan ops: what each op is, and how a fused kernel runs it.

Each op is declared once here: its name, its tensor arguments, its reference
(``fastgan.reference``, the specification) and its family.  A pair loss also says
how its keyword options lower to the kernels' arguments (``PairOptions``): the
one typed value the Triton launchers and the C++ op both take.

The data the tests, ``fastgan verify`` and ``fastgan bench`` exercise each op with
(option sets, input sampling, tolerances, special points, closed forms, the
hand-written baseline) is declared once per op in ``fastgan.tools.cases``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple


from . import reference


class Kind(enum.IntEnum):
    """The per-element term of a pair loss (kernels/losses.py's ``KIND``; the same numbers as
    ``enum Kind`` in csrc/fastgan.h, checked by tests/test_structure.py).

    ======  ===============================  ==============================
    kind    term(s; sgn, t)                  d term / d s
    ======  ===============================  ==============================
    BCE     sgn · BCEwithlogits(s, t)        sgn · (sigmoid(s) − t)
    HINGE   relu(t + sgn · s)                sgn · [t + sgn · s > 0]
    LSGAN   ½ (s − t)²                       s − t
    LINEAR  sgn · s                          sgn
    ======  ===============================  ==============================
    """
    BCE = 0
    HINGE = 1
    LSGAN = 2
    LINEAR = 3


class Reduction(enum.IntEnum):
    """A reduction as the kernels take it (csrc/fastgan.h's ``enum Reduction``)."""
    NONE = 0
    MEAN = 1
    SUM = 2


class Family(enum.Enum):
    PAIR = "pair"        # the discriminator and generator losses: one Kind, a real and a fake side
    BCE = "bce"          # the drop-in binary_cross_entropy_with_logits
    PENALTY = "penalty"  # the per-sample gradient-norm penalty
    # the relativistic losses (RaGAN, RpGAN): fused kernels of their own (kernels/relativistic.py,
    # csrc/relativistic.cpp): RaGAN's batch sums, then the BCE terms of the shifted scores with the
    # sums of their derivatives in the same pass, so the backward is one element-wise pass; RpGAN
    # one pass over both tensors each way.  The backend's ``relativistic(name, real, fake, reduction)``
    RELATIVISTIC = "relativistic"
    # the divergences (gaussian_kl, kl_div_logits, js_div_logits): their own kernels
    # (kernels/divergence.py, csrc/divergence.cpp), reached through each fused backend's
    # divergence(name, tensors, kwargs, reduction)
    DIVERGENCE = "divergence"
    # feature matching: maps of real and fake features, lists of them as multi-discriminators
    # return them (``backends.feature_matching``: one fused op over every map)
    FEATURE = "feature"


class Side(NamedTuple):
    """One side of a pair loss: the scalars of ``term(s; sgn, t)``."""
    sgn: float
    label: float


class PairOptions(NamedTuple):
    """A pair loss's options, lowered once: the kernel's term and each side's scalars.
    ``real`` is None for a generator loss (it has no real side).  (Named tuples: built
    on every call, at a fraction of a frozen dataclass's cost.)"""
    kind: Kind
    real: Optional[Side]
    fake: Side

    def params(self) -> List[float]:
        """``[sgn_r, t_r, sgn_f, t_f]``, the C++ op's ``params``; an absent real side is
        never read (the op gets no real tensor), its slots are (1, 0)."""
        r = self.real or Side(1.0, 0.0)
        return [float(r.sgn), float(r.label), float(self.fake.sgn), float(self.fake.label)]


@dataclass(frozen=True)
class OpSpec:
    name: str
    family: Family
    args: Tuple[str, ...]                    # tensor arguments, in order
    reference: Callable                      # the specification (fastgan.reference)
    lower: Optional[Callable[..., PairOptions]] = None   # pair family: keyword options -> PairOptions
    two_sided: bool = False                  # a real and a fake tensor of any shapes, "none" gives both sides

    @property
    def grad_args(self) -> Tuple[bool, ...]:
        """Which tensor arguments ``fastgan bench`` differentiates: every score of a
        two-sided loss, else the first argument (the logits, not the drop-in BCE's target;
        the gradient tensor of the penalty), and the fake features (not the detached real
        ones) of feature matching."""
        if self.family is Family.FEATURE:
            return (False, True)
        return tuple(self.two_sided or i == 0 for i in range(len(self.args)))

    @property
    def is_discriminator(self) -> bool:
        """Two sides: a real and a fake tensor of any shapes, reduced per side and added
        ("none" gives the tuple); the discriminator losses and the RaGAN losses."""
        return self.two_sided


OPS: Dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.name in OPS:
        raise ValueError(f"op {spec.name!r} is registered twice")
    OPS[spec.name] = spec
    return spec


def _pair(name: str, args: Tuple[str, ...], lower: Callable[..., PairOptions]) -> OpSpec:
    return register(OpSpec(name, Family.PAIR, args, getattr(reference, name), lower, two_sided=len(args) == 2))


_D, _G = ("real", "fake"), ("fake",)
_pair("bce_d_loss", _D, lambda real_label=1.0, fake_label=0.0:
      PairOptions(Kind.BCE, Side(1.0, real_label), Side(1.0, fake_label)))
_pair("bce_g_loss", _G, lambda saturating=False:
      PairOptions(Kind.BCE, None, Side(-1.0, 0.0) if saturating else Side(1.0, 1.0)))
_pair("hinge_d_loss", _D, lambda margin=1.0: PairOptions(Kind.HINGE, Side(-1.0, margin), Side(1.0, margin)))
_pair("hinge_g_loss", _G, lambda: PairOptions(Kind.LINEAR, None, Side(-1.0, 0.0)))
_pair("lsgan_d_loss", _D, lambda a=0.0, b=1.0: PairOptions(Kind.LSGAN, Side(1.0, b), Side(1.0, a)))
_pair("lsgan_g_loss", _G, lambda c=1.0: PairOptions(Kind.LSGAN, None, Side(1.0, c)))
_pair("wasserstein_d_loss", _D, lambda: PairOptions(Kind.LINEAR, Side(-1.0, 0.0), Side(1.0, 0.0)))
_pair("wasserstein_g_loss", _G, lambda: PairOptions(Kind.LINEAR, None, Side(-1.0, 0.0)))
register(OpSpec("binary_cross_entropy_with_logits", Family.BCE, ("input", "target"),
                reference.binary_cross_entropy_with_logits))
register(OpSpec("grad_norm_penalty", Family.PENALTY, ("grads",), reference.grad_norm_penalty))
for _name, _two in (("ragan_d_loss", True), ("ragan_g_loss", True), ("rpgan_d_loss", False),
                    ("rpgan_g_loss", False)):
    register(OpSpec(_name, Family.RELATIVISTIC, _D, getattr(reference, _name), two_sided=_two))
register(OpSpec("gaussian_kl", Family.DIVERGENCE, ("mu", "logvar"), reference.gaussian_kl))
register(OpSpec("kl_div_logits", Family.DIVERGENCE, ("p_logits", "q_logits"), reference.kl_div_logits))
register(OpSpec("js_div_logits", Family.DIVERGENCE, ("p_logits", "q_logits"), reference.js_div_logits))
register(OpSpec("feature_matching_loss", Family.FEATURE, ("real_feats", "fake_feats"),
                reference.feature_matching_loss))

D_KINDS = {"bce": "bce_d_loss", "hinge": "hinge_d_loss", "lsgan": "lsgan_d_loss",
           "wasserstein": "wasserstein_d_loss"}
G_KINDS = {"bce": "bce_g_loss", "hinge": "hinge_g_loss", "lsgan": "lsgan_g_loss",
           "wasserstein": "wasserstein_g_loss"}
