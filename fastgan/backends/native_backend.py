"""The ``"native"`` backend: the C++/CUDA extension in ``csrc/``.

Not built yet: the extension is its own piece of work (see the README's roadmap).
Until it lands this backend reports itself unusable, ``"auto"`` never picks it,
and naming it explicitly raises an error that says so."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

REASON = "not built yet: the C++/CUDA extension in csrc/ has not landed; use backend 'auto', 'triton' or 'torch'"


def status() -> Tuple[bool, str]:
    return False, REASON


def check_device(device: torch.device) -> Optional[str]:
    return REASON


def run(spec, tensors, kwargs, reduction):
    raise RuntimeError(f"fastgan backend 'native' cannot run: {REASON}")
