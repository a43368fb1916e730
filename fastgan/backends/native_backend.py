"""The ``"native"`` backend: the C++/CUDA extension in ``csrc/``, built and loaded by
``native_loader``.

Autograd is the extension's own: a ``torch::autograd::Function`` per op, registered
for the Autograd dispatch key (csrc/ops.cpp).  First derivatives come from the
backward kernels; a backward that records a graph (``create_graph=True``) is
composed of differentiable ATen ops instead (the native double-backward rule,
tested against the reference like every other derivative).  An eager call reaches
the autograd op through the extension's pybind11 functions, cheaper per call than
the boxed ``torch.ops`` call (benchmarks/results/native-cpu.md); under
``torch.compile`` the very same op is called through ``torch.ops.fastgan_native``,
which its Meta kernels make traceable.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..registry import PairOptions, Reduction
from . import native_loader
from .modes import compiling

_REDUCTION = {r.name.lower(): int(r) for r in Reduction}


def status() -> Tuple[bool, str]:
    return native_loader.status()


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if torch.version.cuda is None:
            return "this torch has no CUDA"
        if native_loader._nvcc() is None:
            return "no CUDA toolkit (nvcc) found: the CUDA part of the extension cannot be built; use 'triton'"
        return None
    return f"the native backend has no kernels for {device.type} tensors"


def _ops():
    """The autograd ops: pybind11 functions eagerly, ``torch.ops`` under compile (built by
    then: ``backends.run`` resolves the backend at trace time)."""
    return torch.ops.fastgan_native if compiling() else native_loader.module()


# --------------------------------------------------------------------------- entry points

def pair_loss(name: str, kwargs: dict, opts: PairOptions, reduction: str, real: Optional[Tensor], fake: Tensor):
    """A pair loss with autograd; ``real`` and ``fake`` in one dtype (``backends.run``
    promotes).  ``name`` and ``kwargs`` are not needed here (the Triton backend's
    reference VJP uses them)."""
    out = _ops().pair_loss(real, fake, int(opts.kind), opts.params(), _REDUCTION[reduction])
    if reduction == "none" and real is not None:
        return out[0], out[1]
    return out[0]


def bce_loss(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor], reduction: str):
    return _ops().bce_loss(x, t, weight, pos_weight, _REDUCTION[reduction])


def penalty(g: Tensor, center: float, one_sided: bool, reduction: str):
    return _ops().penalty(g, center, one_sided, _REDUCTION[reduction])
