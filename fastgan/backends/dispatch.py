"""The dispatcher: a lookup, no family branches.

``run`` (one call), ``run_list`` (a pair loss over lists of discriminators) and
``feature_matching`` (every map of every discriminator) find the backend of the current
selection for the tensors' device and mode, look the family up in its ``OPS`` (or
``LIST_OPS``), and ask the op whether it takes the call (``refusal`` for the device and
mode, ``refuses_inputs`` for the tensors).  An op that takes it runs; otherwise the
reference's op (the ``"torch"`` backend's) runs, for the reason the op gave (``plan``
returns it; ``fastgan info --ops`` prints every op's declared reasons).  Under a ``torch.func`` transform every fused op
refuses: the fused kernels have no batching or forward-derivative rules."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from torch import Tensor

from ..registry import OPS, Family, OpSpec
from . import torch_backend
from .interface import NO_TRANSFORMS, FamilyOp, mode_of
from .selection import BACKENDS, for_compile, selected


def backend_of(mode: str, x: Tensor):
    """The backend that runs a call in ``mode`` whose first tensor is ``x``."""
    return for_compile(x) if mode == "compile" else selected(x)


def plan(family: Family, tensors: Sequence[Tensor], lists: bool = False) -> Tuple[Optional[FamilyOp], str]:
    """``(op, "")`` for the op that runs this call, or, with the reason the selected
    backend's op gave, the reference's op (``(None, reason)`` for a list: each member is
    then one ``run``)."""
    x = tensors[0]
    mode = mode_of(x)
    if mode == "transform":  # every fused op refuses; the selection is not resolved
        return (None if lists else torch_backend.OPS[family]), NO_TRANSFORMS
    backend = backend_of(mode, x)
    op = (backend.LIST_OPS if lists else backend.OPS).get(family)
    why = (f"no {family.value} {'list ' if lists else ''}op" if op is None else
           op.refusal(mode, x.device.type) or op.refuses_inputs(tensors))
    if not why:
        return op, ""
    name = next(n for n, b in BACKENDS.items() if b is backend)
    return (None if lists else torch_backend.OPS[family]), f"{name}: {why}"


def run(spec: OpSpec, tensors, kwargs: dict, reduction: str):
    """Run ``spec`` on the backend selected for the tensors' device."""
    return plan(spec.family, tensors)[0].run(spec, tensors, kwargs, reduction)


def run_list(spec: OpSpec, lists, kwargs: dict, reduction: str):
    """A pair loss over lists of score tensors, one per discriminator (``lists`` is
    ``(reals, fakes)`` or ``(fakes,)``), reduced ("mean" or "sum"): ``(total, per-discriminator
    losses)``.  One list op over every tensor where the backend's list op takes the call;
    otherwise each discriminator is one ``run``."""
    op, _ = plan(spec.family, [x for xs in lists for x in xs], lists=True)
    if op is not None:
        per = op.run_list(spec, lists, kwargs, reduction)
        return per.sum(), list(per.unbind(0))
    per = [run(spec, members, kwargs, reduction) for members in zip(*lists)]
    total = per[0]
    for loss in per[1:]:
        total = total + loss
    return total, per


def feature_matching(reals, fakes, p: int, reduction: str, scales=None):
    """Feature matching over flat lists of maps, ``Σ_m s_m · reduce(|g_m − r_m|^p)``, on the
    backend selected for their device ("none": the reference's per-element terms)."""
    op = (torch_backend.OPS[Family.FEATURE] if reduction == "none" else
          plan(Family.FEATURE, [*fakes, *reals])[0])
    return op.run(OPS["feature_matching_loss"], (reals, fakes), {"p": p, "scales": scales}, reduction)
