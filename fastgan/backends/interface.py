"""The one op interface: what each backend's family op declares, and what the dispatcher asks.

Every backend (``torch_backend``, ``triton``, ``native``) has ``OPS``, a dict from
``Family`` to its ``FamilyOp``.  A family op declares, per device type and per call mode,
whether it runs its fused implementation or why not; ``backends.run`` looks the family
up, asks ``refusal(...)``, and runs the op or, with the reason, the reference (what the
``"torch"`` backend runs, differentiable in every mode).  ``fastgan info --ops`` prints
the same declarations as a table (``support_table``).

Modes of a call (``mode_of``):

* ``eager``: plain autograd;
* ``compile``: inside a ``torch.compile`` trace (the op must be a custom op with a fake
  implementation, or a traceable composition of ATen ops);
* ``transform``: inside a ``torch.func`` transform or forward-mode AD (no fused op has
  batching or forward-derivative rules: every fused op refuses, the reference computes);
* ``capture``: a CUDA graph is being captured (ops that copy a per-call host table refuse).

A backend's ``LIST_OPS`` holds its list ops: a pair loss over lists of discriminators in
one op (``run_list``); where one refuses, each member is one ``run``.  Feature matching is
the ``FEATURE`` family of ``OPS``: every map of every discriminator in one op.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import functools

import torch
from torch import Tensor

from ..registry import OPS, Family, OpSpec
from .fused import distinct, fused
from .modes import transformed

MODES = ("eager", "compile", "transform", "capture")
DEVICES = ("cpu", "cuda")

# what every fused op says under a torch.func transform
NO_TRANSFORMS = "no batching or forward-derivative rules: the reference computes under torch.func"


def mode_of(x: Tensor) -> str:
    """The mode of a call whose first tensor is ``x``."""
    if torch.compiler.is_compiling():
        return "compile"
    if transformed():
        return "transform"
    if x.is_cuda and torch.cuda.is_current_stream_capturing():
        return "capture"
    return "eager"


def promoted(a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
    """``a`` and ``b`` in one dtype, as torch promotes ``a.mean() + b.mean()`` (the fused
    ops take one dtype; the conversions are differentiable)."""
    if a.dtype == b.dtype:
        return a, b
    dt = torch.promote_types(a.dtype, b.dtype)
    return a.to(dt), b.to(dt)


@functools.lru_cache(maxsize=1024)
def _lowered(name: str, options: tuple):
    return OPS[name].lower(**dict(options))


def lowered(spec: OpSpec, kwargs: dict):
    """``spec.lower(**kwargs)``, a pair loss's ``PairOptions``: remembered eagerly (a training
    loop passes the same options every step, and building them costs most of a
    microsecond); lowered in the trace under compile (the options may be symbolic)."""
    if torch.compiler.is_compiling():
        return spec.lower(**kwargs)
    return _lowered(spec.name, tuple(kwargs.items()))


class FamilyOp:
    """One family's implementation on one backend.

    Declarations (class attributes, read by ``refusal`` and ``fastgan info --ops``):

    * ``family``: the registry family;
    * ``implementation``: one line, what runs (kernels, extension ops, autograd);
    * ``devices``: device type -> None (runs there) or the reason it does not;
    * ``modes``: mode -> None (fused in that mode) or the reason the reference runs (a
      list op: the reason each member runs alone).
    (The defaults: every device, every mode but a transform.)

    ``run(spec, tensors, kwargs, reduction)`` runs one call the op accepted (a list op:
    ``run_list(spec, lists, kwargs, reduction)``)."""

    family: Family
    implementation: str = ""
    # by default: fused on every device and in every mode but a torch.func transform
    devices: Dict[str, Optional[str]] = {"cpu": None, "cuda": None}
    modes: Dict[str, Optional[str]] = {"eager": None, "compile": None, "transform": NO_TRANSFORMS, "capture": None}

    def __init__(self):
        self.autograd = fused(self)  # the op's torch.autograd.Function (fused.fused's rule)

    def apply(self, static, *tensors):
        """The op with autograd: ``self.autograd.apply`` on distinct input tensors; the
        forward alone where no gradient is recorded (no autograd node to build; and
        Dynamo mis-traces a variadic ``autograd.Function`` whose inputs need no gradient
        when an option is symbolic)."""
        if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
            return self.forward(static, tensors)[0]
        return self.autograd.apply(static, *distinct(tensors))

    def refusal(self, mode: str, device: str) -> Optional[str]:
        """None if this op runs a call in ``mode`` on ``device``, else the reason it does not."""
        why = self.devices.get(device, f"no {device} implementation")
        if why is not None:
            return why
        return self.modes.get(mode, f"not declared for {mode}")

    def refuses_inputs(self, tensors: Sequence[Tensor]) -> Optional[str]:
        """None if the op takes these inputs (a list op: every member's tensors, flat),
        else the reason it does not; by default every input the checks let through."""
        return None

    def run(self, spec: OpSpec, tensors: Sequence[Tensor], kwargs: dict, reduction: str):
        raise NotImplementedError


class ReferenceOp(FamilyOp):
    """The reference of any family: every device, every mode (the ``"torch"`` backend)."""

    implementation = "fastgan.reference: ATen ops, differentiable to any order"
    devices = {d: None for d in DEVICES}
    modes = {m: None for m in MODES}

    def __init__(self, family: Family):
        super().__init__()
        self.family = family

    def run(self, spec, tensors, kwargs, reduction):
        return spec.reference(*tensors, **kwargs, reduction=reduction)


def support_table(backends: Dict[str, object]) -> str:
    """The support matrix (family × backend, per device and mode), from the declarations."""
    rows = [("family", "backend", *DEVICES, *MODES[1:])]
    notes: Dict[str, int] = {}

    def cell(why: Optional[str]) -> str:
        if why is None:
            return "fused"
        if why not in notes:
            notes[why] = len(notes) + 1
        return f"ref [{notes[why]}]"

    def row(label: str, name: str, op) -> tuple:
        if isinstance(op, ReferenceOp):
            return (label, name, *["reference"] * (len(DEVICES) + len(MODES) - 1))
        return (label, name, *[cell(op.devices.get(d, f"no {d} implementation")) for d in DEVICES],
                *[cell(op.modes.get(m, f"not declared for {m}")) for m in MODES[1:]])

    for family in Family:
        for name, backend in backends.items():
            if family in backend.OPS:
                rows.append(row(family.value, name, backend.OPS[family]))
        for name, backend in backends.items():
            if family in backend.LIST_OPS:
                rows.append(row(f"{family.value} lists", name, backend.LIST_OPS[family]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("fused: the backend's own kernels or extension ops (eager mode: the device columns).")
    lines.append("ref [n]: the reference runs there (a list: each member is one call), because")
    lines.extend(f"  [{n}] {why}" for why, n in notes.items())
    return "\n".join(lines)
