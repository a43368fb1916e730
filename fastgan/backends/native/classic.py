"""The pair losses, the drop-in BCE and the gradient-norm penalty on the extension's
autograd ops (csrc/ops.cpp: a ``torch::autograd::Function`` per op, registered for the
Autograd dispatch key; first derivatives from the backward kernels, a backward that
records a graph composed of differentiable ATen ops).

An eager call reaches the autograd op through the extension's pybind11 functions, cheaper
per call than the boxed ``torch.ops`` call (benchmarks/results/native-cpu.md); under
``torch.compile`` the very same op is called through ``torch.ops.fastgan_native``, which
its Meta kernels make traceable."""
from __future__ import annotations

from ...registry import Family
from ..interface import FamilyOp, lowered, promoted
from .raw import REDUCTION, pybind_or_ops as autograd_ops


class PairOp(FamilyOp):
    family = Family.PAIR
    implementation = "csrc/ops.cpp pair_loss: C++ autograd, one pass each way (cpu.cpp, cuda.cu)"

    def run(self, spec, tensors, kwargs, reduction):
        opts = lowered(spec, kwargs)
        if len(tensors) == 1:
            real, fake = None, tensors[0]
        else:
            real, fake = promoted(*tensors)
        out = autograd_ops().pair_loss(real, fake, int(opts.kind), opts.params(), REDUCTION[reduction])
        if reduction == "none" and real is not None:
            if tensors[0].dtype != tensors[1].dtype:
                # "none" of inputs of two dtypes: each side's terms in its input's dtype
                return out[0].to(tensors[0].dtype), out[1].to(tensors[1].dtype)
            return out[0], out[1]
        return out[0]


class BCEOp(FamilyOp):
    family = Family.BCE
    implementation = "csrc/ops.cpp bce_loss: C++ autograd, one pass each way"

    def run(self, spec, tensors, kwargs, reduction):
        x, t = promoted(*tensors)
        out = autograd_ops().bce_loss(x, t, kwargs["weight"], kwargs["pos_weight"], REDUCTION[reduction])
        return out.to(tensors[1].dtype)  # torch's drop-in: the result has the target's dtype


class PenaltyOp(FamilyOp):
    family = Family.PENALTY
    implementation = "csrc/ops.cpp penalty: C++ autograd, row norms + one pass backward"

    def run(self, spec, tensors, kwargs, reduction):
        return autograd_ops().penalty(tensors[0], float(kwargs.get("center", 1.0)),
                                      bool(kwargs.get("one_sided", False)), REDUCTION[reduction])


PAIR, BCE, PENALTY = PairOp(), BCEOp(), PenaltyOp()
