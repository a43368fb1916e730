"""A bandwidth model of every op: the fewest bytes any implementation moves, and the
time that implies at a GPU's copy bandwidth.  PREDICTIONS, not measurements.

Every op of ``fastgan.registry.OPS`` is memory-bound (a few flops per element), so
its floor is the bytes it must move divided by the bandwidth a plain copy reaches on
the device.  ``fastgan bench --device cuda`` can print the achieved fraction of this
model next to each timing::

    from fastgan.tools import bandwidth
    nbytes = bandwidth.min_bytes("hinge_d_loss", 2**24, 2**24, torch.float32, "fwd+bwd")
    floor_s = bandwidth.predicted_seconds(nbytes, torch.cuda.get_device_name())
    fraction = floor_s / measured_seconds           # 1.0 = at the copy bandwidth
    # or against the copy bandwidth the bench measured on the same device:
    floor_s = bandwidth.predicted_seconds(nbytes, bandwidth=copy_gb_per_s * 1e9)

API
---
``min_bytes(op_name, n_real, n_fake=None, dtype=torch.float32, mode="fwd+bwd",
reduction="mean", batch=None) -> int``
    ``n_real`` / ``n_fake``: element counts of the op's first and second tensor
    argument (``n_fake`` None for a one-tensor op: the generator losses, the
    penalty).  For the drop-in BCE they are the input and the target; for the
    divergences the two parameter tensors; for ``grad_norm_penalty`` ``n_real`` is
    ``B·D`` and ``batch`` is ``B``.  ``mode``: ``"fwd"``, ``"bwd"`` or ``"fwd+bwd"``
    (the modes of ``fastgan bench``).
``shapes_bytes(op_name, shapes, dtype, mode, reduction="mean") -> int``
    the same from the input shapes (``fastgan.tools.bench_cases.Case.shapes``).
``list_bytes(op_name, member_numels, dtype, mode, reduction="mean") -> int``
    a list loss (one multi-tensor launch each way): the concatenation's bytes and one
    loss / upstream gradient per member (the bench's ``hifigan-8-lists`` rows).
``predicted_seconds(nbytes, device_name=None, bandwidth=None) -> float``
    ``nbytes`` at ``bandwidth`` (bytes/s, read + write counted) or at the assumed copy
    bandwidth of the device whose name contains a key of ``COPY_BANDWIDTH``
    (``KeyError`` for another device).
``differentiable(op_name) -> tuple of bool``: which inputs get a gradient (the
    bench's rule, ``OpSpec.grad_args``).
``MODELS``: one byte model per op family; an op whose family has none has no model
    (tests/test_bandwidth.py fails for it).

The bytes (``b`` = the dtype's size, ``a`` = 4, or 8 for float64, the accumulation
dtype; every input read once, every gradient written once, nothing else stored):

* forward: read every input; write the loss (one element), or, with
  ``reduction="none"``, one term per element (per sample for the penalty).  The
  penalty also writes its B squared norms (``a`` bytes each) for the backward.
* backward: read every input (the derivative is recomputed from them, cheaper than
  storing it), write one gradient per differentiable input; read the upstream
  gradient (one element, or one per term with ``"none"``); the penalty reads its B
  norms.
* The relativistic losses and the divergences have a reduction (batch means,
  softmax normaliser) before their element-wise pass; a kernel that keeps the
  inputs on chip between the two reads them once, which is the floor counted here
  (fastgan runs them as compositions that read them more than once).

The bandwidths are ASSUMPTIONS, not measured here (no GPU was available): NVIDIA's
datasheet peaks are 3.35 TB/s (H100 SXM5, HBM3) and 4.8 TB/s (H200, HBM3e); a device
copy typically reaches about 90 % and 83 % of them, so the model uses 3.0 TB/s and
4.0 TB/s (read + write bytes per second).  Replace them with the copy bandwidth
``fastgan bench --device cuda`` measures on the machine (``bandwidth=``).

    python -m fastgan.tools.bandwidth --markdown benchmarks/results/bandwidth-model.md
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..registry import OPS, Family
from .args import OutputFile
from .bench_cases import MODES, cases

# ASSUMPTIONS (bytes read + written per second by a device-to-device copy); see the docstring
COPY_BANDWIDTH: Dict[str, float] = {
    "H100": 3.0e12,   # assumed: ~90 % of the 3.35 TB/s HBM3 datasheet peak (SXM5)
    "H200": 4.0e12,   # assumed: ~83 % of the 4.8 TB/s HBM3e datasheet peak
}
BANDWIDTH_SOURCE = {
    "H100": "ASSUMPTION: 3.0 TB/s, ~90 % of NVIDIA's 3.35 TB/s datasheet peak (H100 SXM5, HBM3); not measured",
    "H200": "ASSUMPTION: 4.0 TB/s, ~83 % of NVIDIA's 4.8 TB/s datasheet peak (HBM3e); not measured",
}


def itemsize(dtype) -> int:
    if isinstance(dtype, str):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}[dtype]
    return torch.empty((), dtype=dtype).element_size()


def _acc_size(dtype) -> int:
    return 8 if itemsize(dtype) == 8 else 4


def differentiable(op_name: str) -> Tuple[bool, ...]:
    """Which tensor arguments get a gradient (the bench's rule)."""
    return OPS[op_name].grad_args


def _sizes(spec, n_real: int, n_fake: Optional[int]) -> List[int]:
    if len(spec.args) == 1:
        if n_fake not in (None, 0):
            raise ValueError(f"{spec.name} takes one tensor: pass n_fake=None")
        return [int(n_real)]
    if n_fake is None:
        raise ValueError(f"{spec.name} takes two tensors: pass n_fake")
    return [int(n_real), int(n_fake)]


def _elementwise(op_name, sizes, b, a, mode, reduction, batch):
    """Losses and the divergences: read the inputs; write the loss (or the terms)."""
    # with "none": a term per element of either side of a two-sided loss, else per element
    # of the first input (an upper bound for the divergences' per-row terms)
    outputs = 1
    if reduction == "none":
        outputs = sum(sizes) if OPS[op_name].is_discriminator else sizes[0]
    read = sum(sizes) * b
    grads = sum(n for n, d in zip(sizes, differentiable(op_name)) if d) * b
    fwd = read + outputs * b
    bwd = read + grads + outputs * b  # the upstream gradient of each output
    return fwd, bwd


def _bce(op_name, sizes, b, a, mode, reduction, batch):
    # the input and the target; only the input gets a gradient
    n = sizes[0]
    outputs = n if reduction == "none" else 1
    read = sum(sizes) * b
    return read + outputs * b, read + n * b + outputs * b


def _penalty(op_name, sizes, b, a, mode, reduction, batch):
    n = sizes[0]
    if batch is None:
        raise ValueError("grad_norm_penalty: pass batch (B; n_real is B*D)")
    outputs = batch if reduction == "none" else 1
    fwd = n * b + batch * a + outputs * b        # read g; write the B squared norms and the penalty
    bwd = n * b + batch * a + n * b + outputs * b  # read g and the norms; write dg; read the upstream
    return fwd, bwd


MODELS: Dict[Family, Callable] = {
    Family.PAIR: _elementwise,
    Family.BCE: _bce,
    Family.PENALTY: _penalty,
    Family.RELATIVISTIC: _elementwise,
    Family.DIVERGENCE: _elementwise,
    Family.FEATURE: _elementwise,
}


def min_bytes(op_name: str, n_real: int, n_fake: Optional[int] = None, dtype=torch.float32,
              mode: str = "fwd+bwd", reduction: str = "mean", batch: Optional[int] = None) -> int:
    """The fewest bytes ``op_name`` moves on inputs of ``n_real`` (and ``n_fake``) elements."""
    spec = OPS[op_name]
    if spec.family not in MODELS:
        raise KeyError(f"no bandwidth model for {op_name} (family {spec.family.name}): "
                       "add one to fastgan.tools.bandwidth.MODELS")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    fwd, bwd = MODELS[spec.family](op_name, _sizes(spec, n_real, n_fake), itemsize(dtype), _acc_size(dtype),
                                   mode, reduction, batch)
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]


def shapes_bytes(op_name: str, shapes: Sequence[Sequence[int]], dtype=torch.float32, mode: str = "fwd+bwd",
                 reduction: str = "mean") -> int:
    """``min_bytes`` from the input shapes (one per tensor argument)."""
    numels = [math.prod(int(d) for d in s) for s in shapes]
    batch = int(shapes[0][0]) if OPS[op_name].family == Family.PENALTY else None
    return min_bytes(op_name, numels[0], numels[1] if len(numels) > 1 else None, dtype, mode, reduction, batch)


def list_bytes(op_name: str, member_numels: Sequence[int], dtype=torch.float32, mode: str = "fwd+bwd",
               reduction: str = "mean") -> int:
    """A list loss (``F.<op>`` on lists, one multi-tensor launch each way): the bytes of the
    concatenation of the members (each argument's member ``i`` has ``member_numels[i]``
    elements), plus one loss per member written by the forward and one upstream gradient
    per member read by the backward (reduction "mean" or "sum")."""
    if reduction == "none":
        raise ValueError("list_bytes: reduction 'none' is not modelled (one tensor of terms per member)")
    total = sum(int(n) for n in member_numels)
    two = len(OPS[op_name].args) == 2
    base = min_bytes(op_name, total, total if two else None, dtype, mode, reduction)
    per_member = {"fwd": 1, "bwd": 1, "fwd+bwd": 2}[mode]
    return base + (len(member_numels) - 1) * per_member * itemsize(dtype)


def device_key(device_name: str) -> str:
    for key in COPY_BANDWIDTH:
        if key.lower() in device_name.lower():
            return key
    raise KeyError(f"no assumed copy bandwidth for {device_name!r} (known: {', '.join(COPY_BANDWIDTH)}); "
                   "pass bandwidth= (the copy bandwidth fastgan bench measured)")


def predicted_seconds(nbytes: int, device_name: Optional[str] = None, bandwidth: Optional[float] = None) -> float:
    """Seconds to move ``nbytes`` at ``bandwidth`` bytes/s, or at the assumed copy
    bandwidth of ``device_name`` (a name such as torch.cuda.get_device_name() gives)."""
    if bandwidth is None:
        if device_name is None:
            raise ValueError("pass device_name or bandwidth")
        bandwidth = COPY_BANDWIDTH[device_key(device_name)]
    return nbytes / bandwidth


def bench_cases() -> List[Tuple[str, str, List[tuple]]]:
    """``(op, size label, shapes)`` for every case of ``fastgan bench``'s size sweep (its list
    cases left out: their bytes are those of the concatenation, ``min_bytes`` of the sums)."""
    return [(c.op, c.label, list(c.shapes)) for c in cases() if not c.lists]


def list_cases() -> List[Tuple[str, str, List[int]]]:
    """``(op, size label, member element counts)`` for the list cases of ``fastgan bench``
    (the pair losses over HiFi-GAN's 8 score tensors)."""
    return [(c.op, c.label, [math.prod(s) for s in c.shapes]) for c in cases() if c.lists]


def _fmt_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def _fmt_us(s: float) -> str:
    us = s * 1e6
    return f"{us:.3g}" if us < 1000 else f"{us:,.0f}"


def to_markdown(dtypes=("fp32", "bf16")) -> str:
    lines = [
        "# Bandwidth model: PREDICTIONS (not measurements)",
        "",
        "Generated by `python -m fastgan.tools.bandwidth --markdown benchmarks/results/bandwidth-model.md`.",
        "The fewest bytes each op moves at the `fastgan bench` sizes (reduction \"mean\"; `fwd` reads",
        "the inputs, `bwd` reads them and writes the gradients, see fastgan/tools/bandwidth.py),",
        "and the time that takes at an assumed copy bandwidth:",
        "",
    ]
    for key in COPY_BANDWIDTH:
        lines.append(f"* {key}: {BANDWIDTH_SOURCE[key]}.")
    lines += [
        "",
        "These are floors for a memory-bound op: no kernel moving the inputs through memory",
        "beats them, and at the small sizes (256 elements, a few kB) the launch latency",
        "(several µs per kernel) dominates instead, so the µs there are not reachable.",
        "`fastgan bench --device cuda` reports the achieved fraction of this model.",
        "",
        "| op | size | dtype | bytes fwd | bytes bwd | bytes fwd+bwd | H100 µs fwd / bwd / both | "
        "H200 µs fwd / bwd / both |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(name, label, lambda dt, m, name=name, shapes=shapes: shapes_bytes(name, shapes, dt, m))
            for name, label, shapes in bench_cases()]
    rows += [(name, label, lambda dt, m, name=name, numels=numels: list_bytes(name, numels, dt, m))
             for name, label, numels in list_cases()]
    for name, label, nbytes in rows:
        for dt in dtypes:
            b = {m: nbytes(dt, m) for m in MODES}
            cells = []
            for key in ("H100", "H200"):
                cells.append(" / ".join(_fmt_us(predicted_seconds(b[m], key)) for m in MODES))
            lines.append(f"| {name} | {label} | {dt} | {_fmt_bytes(b['fwd'])} | {_fmt_bytes(b['bwd'])} | "
                         f"{_fmt_bytes(b['fwd+bwd'])} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastgan.tools.bandwidth",
                                description="The bandwidth model: minimum bytes and predicted times "
                                            "(PREDICTIONS at assumed copy bandwidths).")
    p.add_argument("--markdown", type=OutputFile(), help="write the table here (else print it)")
    a = p.parse_args(argv)
    text = to_markdown()
    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {a.markdown}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
