"""The ``"torch"`` backend: the pure-PyTorch reference (``fastgan.reference``).

Differentiable to any order, runs on every device; the oracle of every test.
Its ``OPS`` runs the op's reference for every family, device and mode."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import reference
from ..registry import Family
from .interface import ReferenceOp


def status() -> Tuple[bool, str]:
    return True, f"pure PyTorch reference (torch {torch.__version__})"


def check_device(device: torch.device) -> Optional[str]:
    return None



class FeatureReference(ReferenceOp):
    """Feature matching over the flat lists of maps the dispatcher passes:
    ``reference.feature_matching_maps``."""

    def run(self, spec, tensors, kwargs, reduction):
        reals, fakes = tensors
        return reference.feature_matching_maps(reals, fakes, p=kwargs["p"], reduction=reduction,
                                               scales=kwargs["scales"])


OPS = {family: ReferenceOp(family) for family in Family}
OPS[Family.FEATURE] = FeatureReference(Family.FEATURE)
LIST_OPS: dict = {}  # a list is one reference call per member
