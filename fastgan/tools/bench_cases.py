"""The cases of ``fastgan bench`` and who is timed on them.

A ``Case`` is one op of the registry (``tools/cases.py``) at one size, or a list case (HiFi-GAN
V1's 8 discriminators' scores, one tensor per discriminator, for the pair losses).  ``cases()``
lists them all (the quick run: one small size per op); ``min_bytes`` is the least traffic any
implementation needs.  The providers (``PROVIDERS``) and the callable each one times on a case
(``provider_fn``) are here too; ``benchmarks/`` runs the same cases under pytest-benchmark, and
``tools/bandwidth.py`` models the bytes of the same sizes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .. import backends
from ..registry import Family
from .cases import CASES

MODES = ("fwd", "bwd", "fwd+bwd")
LOSS_SIZES = (("256", 256), ("patchgan-64x1x30x30", 64 * 30 * 30), ("2^20", 2 ** 20), ("2^24", 2 ** 24))
PENALTY_SHAPES = ((64, 3, 64, 64), (256, 3, 128, 128))
QUICK_LOSS_SIZES = (("4096", 4096),)
QUICK_PENALTY_SHAPES = ((16, 3, 16, 16),)
BANDWIDTH_MIN_NUMEL = 2 ** 20


# the score tensors of HiFi-GAN V1's 8 discriminators (5 multi-period, 3 multi-scale) at batch
# 16 and 8 192-sample segments: a list case of each pair loss (one tensor per discriminator)
HIFIGAN_SCORES = ((16, 102), (16, 102), (16, 105), (16, 105), (16, 110), (16, 128), (16, 65), (16, 33))


@dataclass
class Case:
    op: str
    label: str
    shapes: List[tuple]
    opts: dict = field(default_factory=dict)
    # a list case: ``shapes`` are one discriminator's each, every tensor argument is a list of
    # one tensor per shape; eager and compile loop over the discriminators
    lists: bool = False

    def arg_numels(self) -> List[int]:
        """The elements of each tensor argument (a list argument: of all its tensors)."""
        if self.lists:
            return [sum(math.prod(s) for s in self.shapes)] * len(CASES[self.op].args)
        return [math.prod(s) for s in self.shapes]

    @property
    def numel(self) -> int:
        return sum(self.arg_numels())

    @property
    def differentiable(self) -> List[bool]:
        """Which inputs get a gradient (``OpSpec.grad_args``)."""
        return list(CASES[self.op].spec.grad_args)

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"

    def inputs(self, device, dtype=torch.float32, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        spec = CASES[self.op]
        if self.lists:
            members = [spec.make_inputs([s] * len(spec.args), dtype, device, gen) for s in self.shapes]
            return [[m[i].requires_grad_(d) for m in members] for i, d in enumerate(self.differentiable)]
        xs = spec.make_inputs(self.shapes, dtype, device, gen)
        return [x.requires_grad_(d) for x, d in zip(xs, self.differentiable)]


def leaves(xs) -> list:
    """The tensors of a case's inputs that take a gradient (list arguments flattened)."""
    flat = [y for x in xs for y in (x if isinstance(x, list) else [x])]
    return [x for x in flat if x.requires_grad]


def cases(quick: bool = False, ops: Optional[Sequence[str]] = None) -> List[Case]:
    """Every benchmark case: each op of the registry over its size sweep."""
    out = []
    for name, spec in CASES.items():
        if ops and name not in ops:
            continue
        if spec.name == "grad_norm_penalty":
            for shape in (QUICK_PENALTY_SHAPES if quick else PENALTY_SHAPES):
                out.append(Case(name, "x".join(map(str, shape)), [shape]))
        else:
            for label, n in (QUICK_LOSS_SIZES if quick else LOSS_SIZES):
                out.append(Case(name, label, [(n,)] * len(spec.args)))
        if spec.spec.family is Family.PAIR:
            out.append(Case(name, "hifigan-8-lists", list(HIFIGAN_SCORES), lists=True))
    return out


def min_bytes(case: Case, mode: str, itemsize: int = 4) -> int:
    """The least traffic any implementation needs: the forward reads the inputs,
    the backward reads them and writes one gradient per differentiable input."""
    read = case.numel * itemsize
    grads = sum(n for n, diff in zip(case.arg_numels(), case.differentiable) if diff) * itemsize
    return {"fwd": read, "bwd": read + grads, "fwd+bwd": 2 * read + grads}[mode]


# --------------------------------------------------------------------------- providers

def _baseline_fn(case: Case) -> Callable:
    ref = CASES[case.op].baseline
    opts = dict(case.opts)
    if case.lists:  # the loop over discriminators the multi-discriminator codebases write
        def loop(*xs):
            total = 0
            for members in zip(*xs):
                total = total + ref(*members, **opts)
            return total
        return loop

    def fn(*xs):
        return ref(*xs, **opts)
    return fn


def _fastgan_fn(case: Case, backend: str) -> Callable:
    from .. import functional as F
    public = getattr(F, case.op)
    opts = dict(case.opts)

    def fn(*xs):
        with backends.use_backend(backend):
            return public(*xs, **opts)
    return fn


FALLBACK = "fastgan-torch"  # the reference backend "auto" falls back to
PROVIDERS = {
    "eager": "the hand-written composition (the op's baseline in tools/cases.py)",
    "compile": "torch.compile of that composition",
    "fastgan-native": "fastgan, backend native (C++ extension): what auto runs on CPU once it builds",
    "fastgan-triton": "fastgan, backend triton (Triton kernels): what auto runs on CUDA",
    FALLBACK: "fastgan, backend torch: the reference fallback, what auto runs when no fused backend can",
}


def provider_label(provider: str) -> str:
    """The name shown in the table and the plot: the fallback says it is one."""
    return f"{provider} (fallback)" if provider == FALLBACK else provider


def providers(device: str) -> Dict[str, Optional[str]]:
    """Provider name -> None if it runs here, else the reason it does not.  The fused
    backends first, the fallback (``fastgan-torch``) last."""
    out: Dict[str, Optional[str]] = {"eager": None, "compile": None}
    order = sorted(backends.BACKENDS, key=lambda name: f"fastgan-{name}" == FALLBACK)
    for name in order:
        b = backends.BACKENDS[name]
        ok, reason = b.status()
        problem = None if ok else reason
        if problem is None:
            problem = b.check_device(torch.device(device))
        if problem is None and name == "triton" and device == "cpu":
            problem = "the Triton interpreter is not timed"
        out[f"fastgan-{name}"] = problem
    return out


def provider_fn(provider: str, case: Case) -> Callable:
    """The callable ``provider`` times on ``case``: ``fn(*case.inputs(device))`` -> the loss."""
    if provider == "eager":
        return _baseline_fn(case)
    if provider == "compile":
        return torch.compile(_baseline_fn(case), dynamic=False)
    return _fastgan_fn(case, provider.split("-", 1)[1])
