"""The divergences on the extension (csrc/divergence.cpp: at::parallel_for over samples /
rows, at::vec inner loops; the forward saves the per-row log-normalisers and divergences,
the backward is one pass; half types converted to float32 once on entry):
``gaussian_kl_fwd`` / ``gaussian_kl_bwd`` and ``divergence_fwd`` / ``divergence_bwd``,
under ``fused.fused``.  CPU kernels only."""
from __future__ import annotations

from ..families import Divergence
from .raw import CPU_ONLY, REDUCTION, ops


class DivergenceOp(Divergence):
    implementation = "csrc/divergence.cpp: row statistics + divergences forward, one pass backward; fused.fused"
    devices = {"cpu": None, "cuda": CPU_ONLY}

    @staticmethod
    def gkl_forward(mu, lv, reduction):
        return ops().gaussian_kl_fwd(mu, lv, REDUCTION[reduction])

    @staticmethod
    def gkl_backward(mu, lv, reduction, up, needs):
        return ops().gaussian_kl_bwd(mu, lv, REDUCTION[reduction], up, needs[0], needs[1])

    @staticmethod
    def dist_forward(p, q, dim, js, reduction):
        return ops().divergence_fwd(p, q, dim, js, REDUCTION[reduction])

    @staticmethod
    def dist_backward(p, q, dim, js, reduction, stat, rowdiv, up, needs):
        return ops().divergence_bwd(p, q, dim, js, REDUCTION[reduction], stat, rowdiv, up, needs[0], needs[1])


OP = DivergenceOp()
