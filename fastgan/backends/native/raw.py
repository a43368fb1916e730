"""The extension's raw forward/backward ops, ``torch.ops.fastgan_native`` (registered by
csrc/*.cpp with CPU, CUDA where there is a kernel, and Meta kernels), for the families
that run them under ``fused.fused``."""
from __future__ import annotations

import torch

from ...registry import Reduction
from .. import native_loader
from ..modes import compiling

REDUCTION = {r.name.lower(): int(r) for r in Reduction}
CPU_ONLY = "csrc has no CUDA kernel for this family; on CUDA 'auto' runs the Triton kernels"


def ops():
    """``torch.ops.fastgan_native``, the extension built and loaded (its ops registered) first."""
    native_loader.module()
    return torch.ops.fastgan_native


def pybind_or_ops():
    """The pybind11 functions eagerly (one unboxed dispatcher call, cheaper per call than
    the boxed ``torch.ops`` call: benchmarks/results/native-cpu.md), ``torch.ops`` under
    compile, for the ops the extension exposes both ways (the autograd ops, the list ops)."""
    return torch.ops.fastgan_native if compiling() else native_loader.module()
