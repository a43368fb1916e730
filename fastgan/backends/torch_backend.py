"""The ``"torch"`` backend: the pure-PyTorch reference (``fastgan.reference``).

Differentiable to any order, runs on every device; the oracle of every test.
``backends.run`` calls the op's reference directly when this backend is selected."""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def status() -> Tuple[bool, str]:
    return True, f"pure PyTorch reference (torch {torch.__version__})"


def check_device(device: torch.device) -> Optional[str]:
    return None

