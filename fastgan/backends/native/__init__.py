"""The ``"native"`` backend: the C++/CUDA extension in ``csrc/`` (built and loaded by
``native_loader``), one module per family, each with its family op (the one interface of
``backends.interface``).

* ``classic``: the pair losses, the drop-in BCE and the penalty: the extension's own
  autograd (a ``torch::autograd::Function`` per op, csrc/ops.cpp), CPU and CUDA.
* ``multi`` / ``relativistic`` / ``divergence``: raw forward/backward ops
  (``torch.ops.fastgan_native``, with Meta kernels so ``torch.compile`` traces them) under
  the Python autograd rule every Triton family uses, ``fused.fused``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ...registry import Family
from .. import native_loader
from . import classic, divergence, multi, relativistic

OPS = {Family.PAIR: classic.PAIR, Family.BCE: classic.BCE, Family.PENALTY: classic.PENALTY,
       Family.RELATIVISTIC: relativistic.OP, Family.DIVERGENCE: divergence.OP, Family.FEATURE: multi.FEATURE}
LIST_OPS = {Family.PAIR: multi.PAIR_LIST}


def status() -> Tuple[bool, str]:
    return native_loader.status()


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if torch.version.cuda is None:
            return "this torch has no CUDA"
        if native_loader.nvcc() is None:
            return "no CUDA toolkit (nvcc) found: the CUDA part of the extension cannot be built; use 'triton'"
        return None
    return f"the native backend has no kernels for {device.type} tensors"
