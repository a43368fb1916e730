"""The divergences on the extension (csrc/divergence.cpp: at::parallel_for over samples /
rows, at::vec inner loops; the forward saves the per-row log-normalisers and divergences,
the backward is one pass; half types converted to float32 once on entry):
``gaussian_kl_fwd`` / ``gaussian_kl_bwd`` and ``divergence_fwd`` / ``divergence_bwd``,
under ``fused.Fused``.  CPU kernels only."""
from __future__ import annotations

from ..families import Divergence
from ..interface import NO_TRANSFORMS
from .raw import CPU_ONLY, REDUCTION, ops


class DivergenceOp(Divergence):
    implementation = "csrc/divergence.cpp: row statistics + divergences forward, one pass backward; fused.Fused"
    devices = {"cpu": None, "cuda": CPU_ONLY}
    modes = {"eager": None, "compile": None, "transform": NO_TRANSFORMS, "capture": None}

    @staticmethod
    def forward(static, tensors):
        name, dim, reduction = static
        a, b = tensors
        if name == "gaussian_kl":
            return ops().gaussian_kl_fwd(a, b, REDUCTION[reduction]), ()
        out, stat, rowdiv = ops().divergence_fwd(a, b, dim, name == "js_div_logits", REDUCTION[reduction])
        return out, (stat, rowdiv)

    @staticmethod
    def backward(static, inputs, saved, grads, needs):
        name, dim, reduction = static
        a, b = inputs
        if name == "gaussian_kl":
            return ops().gaussian_kl_bwd(a, b, REDUCTION[reduction], grads[0], needs[0], needs[1])
        return ops().divergence_bwd(a, b, dim, name == "js_div_logits", REDUCTION[reduction], *saved, grads[0],
                                    needs[0], needs[1])


OP = DivergenceOp()
