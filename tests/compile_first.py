"""Run by tests/test_compile.py in a fresh process, as a user's first call would be:
``python -m tests.compile_first OP [OP ...]``.  No fastgan call and no ``set_backend``
before (the backend comes from ``FASTGAN_BACKEND`` or "auto"): the first thing the
process does is ``torch.compile(fullgraph=True, dynamic=True)`` with the default
(inductor) backend of OP's loss, forward and backward; then ``dynamic=None`` with a size
change (automatic dynamic shapes recompile).  The other OPs follow in the same process,
each after ``torch._dynamo.reset()``.  A pair loss also runs over lists of
discriminators.  Prints ``FAIL ...`` lines and ``OK <count>``."""
from __future__ import annotations

import sys

import torch

import fastgan.functional as F
from fastgan.registry import OPS, Family

from .compile_fresh import check_compiled


def _inputs(spec, n, gen):
    if spec.name == "binary_cross_entropy_with_logits":
        return [torch.randn(n, generator=gen), torch.rand(n, generator=gen)]
    if spec.family is Family.PENALTY or spec.family is Family.DIVERGENCE:
        return [torch.randn(n, 3, generator=gen) for _ in spec.args]
    if spec.two_sided:
        return [torch.randn(n, generator=gen), torch.randn(n + 3, generator=gen)]
    return [torch.randn(n, generator=gen) for _ in spec.args]


def _loss(spec, lists: bool):
    fn = getattr(F, spec.name)
    fixed = {"detach_real": False} if spec.family is Family.FEATURE else {}

    def loss(*xs):
        if lists:  # two discriminators: the member and a slice of it
            xs = [[x, x[1:]] for x in xs]
        out = fn(*xs, **fixed)
        return out.sum()
    return loss


def main(names) -> int:
    gen = torch.Generator().manual_seed(0)
    failures, count = [], 0
    for k, name in enumerate(names):
        spec = OPS[name]
        variants = [False] + ([True] if spec.family is Family.PAIR else [])
        for lists in variants:
            for dynamic, sizes in ((True, (9, 14)), (None, (7, 12))):
                if k or lists or dynamic is not True:
                    torch._dynamo.reset()
                tag = f"{name}{' lists' if lists else ''} dynamic={dynamic}"
                fn = _loss(spec, lists)
                compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic)
                try:
                    for n in sizes:
                        check_compiled(f"{tag} n={n}", fn, compiled, _inputs(spec, n, gen), failures)
                        count += 1
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    failures.append(f"{tag}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    for line in failures:
        print("FAIL", line)
    print(f"OK {count}" if not failures else f"FAILED {len(failures)} of {count}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
