"""The families whose fused ops run under ``fused.fused`` on both fused backends: what a
call of each family is (its ``static``, the hashable options the autograd rule carries),
how it is promoted and shaped, and its reference.  A backend's op subclasses one of these
and adds ``forward`` / ``backward`` (its kernels or extension ops)."""
from __future__ import annotations

from typing import Optional

import torch

from .. import reference
from ..registry import OPS, Family
from .interface import FamilyOp, lowered, promoted


def one_dtype_and_device(tensors) -> Optional[str]:
    g = tensors[0]
    if all(x.dtype == g.dtype and x.device == g.device for x in tensors):
        return None
    return "the members are of several dtypes or devices"


# RaGAN labels (t_r, t_f); RpGAN: generator (s = y − x, 1) or discriminator (s = x − y, 0)
RAGAN_LABELS = {"ragan_d_loss": (1.0, 0.0), "ragan_g_loss": (0.0, 1.0)}
RPGAN_GEN = {"rpgan_d_loss": 0, "rpgan_g_loss": 1}


class Relativistic(FamilyOp):
    """RaGAN / RpGAN: ``static = (name, reduction)``; ``call(static, real, fake)`` runs the
    op with autograd (``fused.fused`` unless the backend has its own)."""

    family = Family.RELATIVISTIC

    def call(self, static, real, fake):
        return self.apply(static, real, fake)

    def run(self, spec, tensors, kwargs, reduction):
        real, fake = promoted(*tensors)
        out = self.call((spec.name, reduction), real, fake)
        if reduction == "none" and spec.two_sided and tensors[0].dtype != tensors[1].dtype:
            return out[0].to(tensors[0].dtype), out[1].to(tensors[1].dtype)
        return out

    @staticmethod
    def reference(static, real, fake):
        name, reduction = static
        return OPS[name].reference(real, fake, reduction=reduction)


class Divergence(FamilyOp):
    """gaussian_kl, kl_div_logits, js_div_logits: ``static = (name, dim, reduction)``, ``dim``
    non-negative (None for gaussian_kl).  A backend supplies ``gkl_forward(mu, logvar,
    reduction)``, ``gkl_backward(mu, logvar, reduction, up, needs)``, ``dist_forward(p, q,
    dim, js, reduction) -> (out, row stats, row divergences)`` and ``dist_backward(p, q, dim,
    js, reduction, stats, divergences, up, needs)``."""

    family = Family.DIVERGENCE

    def run(self, spec, tensors, kwargs, reduction):
        a, b = promoted(*tensors)
        dim = None if spec.name == "gaussian_kl" else kwargs.get("dim", -1) % a.dim()
        return self.apply((spec.name, dim, reduction), a, b)

    def forward(self, static, tensors):
        name, dim, reduction = static
        a, b = tensors
        if name == "gaussian_kl":
            return self.gkl_forward(a, b, reduction), ()
        out, stat, rowdiv = self.dist_forward(a, b, dim, name == "js_div_logits", reduction)
        return out, (stat, rowdiv)

    def backward(self, static, inputs, saved, grads, needs):
        name, dim, reduction = static
        a, b = inputs
        if name == "gaussian_kl":
            return self.gkl_backward(a, b, reduction, grads[0], list(needs))
        return self.dist_backward(a, b, dim, name == "js_div_logits", reduction, *saved, grads[0], list(needs))

    @staticmethod
    def reference(static, a, b):
        name, dim, reduction = static
        kw = {} if name == "gaussian_kl" else {"dim": dim}
        return OPS[name].reference(a, b, **kw, reduction=reduction)


class PairList(FamilyOp):
    """A pair loss over lists of score tensors (one real and one fake per discriminator; a
    generator loss: fakes only), all of one dtype and device, any shapes: the ``(N,)``
    per-discriminator losses in one node.  ``static = (name, options, PairOptions,
    reduction, number of reals)``; the inputs ``(*reals, *fakes)``.  A backend supplies
    ``list_forward(reals, fakes, opts, reduction)`` (reals empty for a generator loss) and
    ``list_backward(reals, fakes, opts, reduction, up, needs)``."""

    family = Family.PAIR

    def refuses_inputs(self, tensors):
        return one_dtype_and_device(tensors)

    def run_list(self, spec, lists, kwargs, reduction):
        nr = len(lists[0]) if len(lists) == 2 else 0
        static = (spec.name, tuple(kwargs.items()), lowered(spec, kwargs), reduction, nr)
        return self.apply(static, *[x for xs in lists for x in xs])

    def forward(self, static, tensors):
        _, _, opts, reduction, nr = static
        return self.list_forward(tensors[:nr], tensors[nr:], opts, reduction), ()

    def backward(self, static, inputs, saved, grads, needs):
        _, _, opts, reduction, nr = static
        return self.list_backward(inputs[:nr], inputs[nr:], opts, reduction, grads[0], list(needs))

    @staticmethod
    def reference(static, *xs):
        name, kwargs, _, reduction, nr = static
        ref = OPS[name].reference
        members = zip(xs[:nr], xs[nr:]) if nr else zip(xs)
        return torch.stack([ref(*mem, **dict(kwargs), reduction=reduction) for mem in members])


class FeatureMatching(FamilyOp):
    """``Σ_m s_m · reduce(|g_m − r_m|^p)`` over flat lists of same-shaped maps of one dtype
    ("mean" or "sum"; ``s_m`` the per-map scales): one node over every map.  ``static =
    (p, reduction, scales, number of maps)``; the inputs ``(*reals, *fakes)``.  A backend
    supplies ``maps_forward(reals, fakes, p, reduction, scales)`` and ``maps_backward(reals,
    fakes, p, reduction, scales, up, needs)`` (the reals' gradients, then the fakes')."""

    family = Family.FEATURE

    def refuses_inputs(self, tensors):
        return one_dtype_and_device(tensors)

    def run(self, spec, tensors, kwargs, reduction):
        reals, fakes = tensors
        scales = tuple(kwargs["scales"] or [1.0] * len(fakes))
        return self.apply((kwargs["p"], reduction, scales, len(reals)), *reals, *fakes)

    def forward(self, static, tensors):
        p, reduction, scales, n = static
        return self.maps_forward(tensors[:n], tensors[n:], p, reduction, scales), ()

    def backward(self, static, inputs, saved, grads, needs):
        p, reduction, scales, n = static
        return self.maps_backward(inputs[:n], inputs[n:], p, reduction, scales, grads[0], list(needs))

    @staticmethod
    def reference(static, *xs):
        p, reduction, scales, n = static
        return reference.feature_matching_maps(xs[:n], xs[n:], p=p, reduction=reduction, scales=scales)
