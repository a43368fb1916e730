"""The relativistic losses on the extension (csrc/relativistic.cpp; the math is in
kernels/relativistic.py's docstring): the autograd ops ``ragan_loss`` / ``rpgan_loss``
(C++ autograd, as the pair losses: ``ragan_fwd`` -> loss and stats = (Σx, Σy, Σa, Σb),
``ragan_bwd`` one element-wise pass; ``rpgan_fwd`` / ``rpgan_bwd`` one pass each way; a
backward that records a graph composed of ATen ops).  CPU kernels only."""
from __future__ import annotations

from ..families import RAGAN_LABELS, RPGAN_GEN, Relativistic
from .raw import CPU_ONLY, REDUCTION, pybind_or_ops


class RelativisticOp(Relativistic):
    implementation = "csrc/relativistic.cpp: sums + one fused pass forward, one pass backward; C++ autograd"
    devices = {"cpu": None, "cuda": CPU_ONLY}

    def call(self, static, real, fake):
        name, reduction = static
        if name in RAGAN_LABELS:
            out = pybind_or_ops().ragan_loss(real, fake, list(RAGAN_LABELS[name]), REDUCTION[reduction])
            return (out[0], out[1]) if reduction == "none" else out[0]
        return pybind_or_ops().rpgan_loss(real, fake, bool(RPGAN_GEN[name]), REDUCTION[reduction])


OP = RelativisticOp()
