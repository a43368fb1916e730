"""``fastgan verify``: every op × usable backend × device against the float64 reference.

Checks per (op, backend, device), driven by the op registry and each op's test data
(``cases.CASES``):

* ``values-fp64``: values and gradients (random upstream gradient) in float64, every
  option set and reduction of the op;
* ``gradcheck`` and ``gradgradcheck`` in float64 on small shapes;
* ``float32`` and ``bfloat16`` on a larger shape, against the reference in float64
  on the same rounded inputs, with the op's per-dtype tolerances (``cases``);
* the pair losses also over lists of score tensors of different shapes (one per
  discriminator: the multi-tensor op), float64 values, gradients, gradcheck and
  gradgradcheck, against the reference per member.

The comparison (``checking.compare``) is the one the test suite asserts with.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from .. import backends
from .cases import CASES
from ..registry import Family
from .checking import call, compare, compare_lists, sample, shapes_for

SMALL = {"pair": [(5,), (3, 2)], "one": [(2, 3)]}
LARGE = {"pair": [(4096,), (8, 1, 30, 30)], "one": [(64, 3, 16, 16)]}


@dataclass
class Result:
    op: str
    backend: str
    device: str
    check: str
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


def run_checks(op: str, backend: str, device: str, quick: bool = False) -> List[Result]:
    spec = CASES[op]
    out: List[Result] = []

    def add(check, rows):
        for what, ea, er, ok, note in rows:
            out.append(Result(op, backend, device, f"{check}/{what}", ea, er, ok, note))

    def guard(check, fn):
        try:
            fn()
        except Exception as exc:  # a crash is a failure, reported, not a traceback
            out.append(Result(op, backend, device, check, math.inf, math.inf, False,
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))

    def values():
        for oi, opts in enumerate(spec.options):
            for red in spec.reductions:
                xs, gen = sample(spec, shapes_for(spec, SMALL), torch.float64, device, 100 + oi)
                add(f"values-fp64[{red},opt{oi}]", compare(spec, backend, xs, opts, red, gen))

    def grad_checks():
        for oi, opts in enumerate(spec.options):
            xs, _ = sample(spec, shapes_for(spec, SMALL), torch.float64, device, 200 + oi)
            xs = [x.detach().requires_grad_() for x in xs]

            def fn(*ts):
                return call(spec, ts, opts, "mean")

            with backends.use_backend(backend):
                ok1 = torch.autograd.gradcheck(fn, xs, raise_exception=False)
                ok2 = torch.autograd.gradgradcheck(fn, xs, raise_exception=False)
            out.append(Result(op, backend, device, f"gradcheck[opt{oi}]", 0.0, 0.0, bool(ok1)))
            out.append(Result(op, backend, device, f"gradgradcheck[opt{oi}]", 0.0, 0.0, bool(ok2)))

    def lowp():
        for dtype in (torch.float32, torch.bfloat16):
            for red in ("mean", "none"):
                xs, gen = sample(spec, shapes_for(spec, LARGE), dtype, device, 300)
                name = str(dtype).split(".")[-1]
                add(f"{name}[{red}]", compare(spec, backend, xs, spec.options[-1], red, gen))

    def lists():
        # multi-discriminator lists: members of different shapes (a PatchGAN map, a 0-d
        # score, a vector past one kernel block, a transposed view), one fused op over all
        gen = torch.Generator().manual_seed(400)
        shapes = [(2, 1, 5, 5), (), (1100,), (3, 4)]
        members = [[torch.randn(s, generator=gen, dtype=torch.float64).to(device) * 2 for s in shapes]
                   for _ in spec.args]
        members = [[x.t() if x.dim() == 2 else x for x in xs] for xs in members]
        for oi, opts in enumerate(spec.options):
            for red in ("mean", "sum"):
                add(f"lists-fp64[{red},opt{oi}]", compare_lists(spec, backend, members, opts, red, gen))
        small = [[(torch.randn(s, generator=gen, dtype=torch.float64).to(device) + 0.3).requires_grad_()
                  for s in ((3,), (2, 2))] for _ in spec.args]

        def fn(*ts):
            k = len(ts) // len(spec.args)
            return call(spec, [list(ts[i * k:(i + 1) * k]) for i in range(len(spec.args))], spec.options[-1], "mean")
        flat = [x for xs in small for x in xs]
        with backends.use_backend(backend):
            ok1 = torch.autograd.gradcheck(fn, flat, raise_exception=False)
            ok2 = torch.autograd.gradgradcheck(fn, flat, raise_exception=False)
        out.append(Result(op, backend, device, "lists-gradcheck", 0.0, 0.0, bool(ok1)))
        out.append(Result(op, backend, device, "lists-gradgradcheck", 0.0, 0.0, bool(ok2)))

    guard("values-fp64", values)
    guard("gradcheck", grad_checks)
    if spec.spec.family is Family.PAIR:
        guard("lists", lists)
    if not quick:
        guard("low-precision", lowp)
    return out


def plan(backend_filter=None, device_filter=None, op_filter=None):
    """The (op, backend, device) triples to verify, and the skipped backends with reasons."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if device_filter:
        devices = [d for d in devices if d in device_filter]
    names = list(backends.BACKENDS)
    if backend_filter:
        names = [b for b in names if b in backend_filter]
    ops = [o for o in CASES if not op_filter or o in op_filter]
    todo, skipped = [], []
    for b in names:
        ok, reason = backends.BACKENDS[b].status()
        for d in devices:
            problem = None if ok else reason
            if problem is None:
                problem = backends.BACKENDS[b].check_device(torch.device(d))
            if problem:
                skipped.append((b, d, problem))
                continue
            todo.extend((o, b, d) for o in ops)
    return todo, skipped


def format_table(results: List[Result]) -> str:
    head = f"{'op':<34} {'backend':<7} {'device':<6} {'check':<30} {'max abs':>10} {'max rel':>10}  result"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.op:<34} {r.backend:<7} {r.device:<6} {r.check:<30} {r.max_abs:>10.2e} {r.max_rel:>10.2e}  "
                     f"{'pass' if r.ok else 'FAIL'}{'  ' + r.note if r.note else ''}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fastgan verify", description=__doc__.splitlines()[0])
    p.add_argument("--backend", action="append", choices=list(backends.BACKENDS), help="only this backend (repeatable)")
    p.add_argument("--device", action="append", choices=["cpu", "cuda"], help="only this device (repeatable)")
    p.add_argument("--op", action="append", choices=list(CASES), help="only this op (repeatable)")
    p.add_argument("--quick", action="store_true", help="skip the float32/bfloat16 comparisons")
    p.add_argument("--failures-only", action="store_true", help="print only failing rows")
    a = p.parse_args(argv)
    if a.device and "cuda" in a.device and not torch.cuda.is_available():
        print("fastgan verify: --device cuda asked for, but there is no CUDA device", file=sys.stderr)
        return 2
    todo, skipped = plan(a.backend, a.device, a.op)
    t0 = time.perf_counter()
    results: List[Result] = []
    with warnings.catch_warnings():
        # the Triton interpreter computes both sides of tl.where with numpy: its overflow and
        # invalid-value RuntimeWarnings are about values the kernels discard, not results
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\.")
        for i, (op, b, d) in enumerate(todo, 1):
            if sys.stderr.isatty():
                print(f"\r[{i}/{len(todo)}] {op} {b} {d}".ljust(70), end="", file=sys.stderr, flush=True)
            results.extend(run_checks(op, b, d, quick=a.quick))
    if sys.stderr.isatty():
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)
    shown = [r for r in results if not r.ok] if a.failures_only else results
    print(format_table(shown))
    for b, d, why in skipped:
        print(f"skipped: backend {b} on {d}: {why}")
    failed = sum(not r.ok for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed ({len(todo)} op x backend x device cases, "
          f"{time.perf_counter() - t0:.1f} s)")
    if not todo:
        print("nothing verified: no usable backend matches the filters", file=sys.stderr)
        return 2
    return 1 if failed else 0
