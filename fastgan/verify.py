"""``fastgan verify``: every op × usable backend × device against the float64 reference.

Checks per (op, backend, device), driven by the op registry:

* ``values-fp64``: values and gradients (random upstream gradient) in float64, every
  option set and reduction of the op;
* ``gradcheck`` and ``gradgradcheck`` in float64 on small shapes;
* ``float32`` and ``bfloat16`` on a larger shape, against the reference in float64
  on the same rounded inputs, with the registry's per-dtype tolerances.

The comparison (``compare``) is the one the test suite asserts with.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from . import backends
from .registry import OPS

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


def _as_tuple(out):
    return tuple(out) if isinstance(out, tuple) else (out,)


def call(spec, tensors, opts, reduction):
    from . import functional as F
    return getattr(F, spec.name)(*tensors, **opts, reduction=reduction)


def tolerance(spec, dtype, magnitude: float):
    """(rtol, atol) for ``dtype``: the registry's, the absolute part scaled by the
    L1 size of what was summed, plus one subnormal ulp for half types."""
    rtol, atol = spec.tolerances[dtype]
    fi = torch.finfo(dtype)
    return rtol, atol * max(1.0, magnitude) + 2 * fi.tiny * fi.eps


def _magnitude(spec, refs, opts, reduction) -> float:
    terms = _as_tuple(spec.reference(*[r.detach() for r in refs], **opts, reduction="none"))
    finite = [t.abs().nan_to_num(0, 0, 0) for t in terms if t.numel()]
    if not finite:
        return 0.0
    if reduction == "mean":
        return sum(float(t.mean()) for t in finite)
    if reduction == "sum":
        return sum(float(t.sum()) for t in finite)
    return max(float(t.max()) for t in finite)


def _errors(a: torch.Tensor, b: torch.Tensor):
    a, b = a.detach().double(), b.detach().double()
    both = torch.isfinite(a) & torch.isfinite(b)
    same_special = ((a == b) | (a.isnan() & b.isnan())) | both
    if not bool(same_special.all()):
        return math.inf, math.inf
    if not a.numel() or not bool(both.any()):
        return 0.0, 0.0
    d = (a - b).abs()[both]
    rel = d / b.abs()[both].clamp_min(torch.finfo(torch.float64).tiny)
    return float(d.max()), float(rel.max())


def compare(spec, backend: str, tensors: Sequence[torch.Tensor], opts: dict, reduction: str,
            gen: torch.Generator, grads: bool = True) -> List[tuple]:
    """Values and gradients of ``backend`` against the float64 reference on the same inputs.

    Returns ``[(what, max_abs, max_rel, ok, message)]``: one row for the values, one for
    the gradients; ``ok`` uses the registry's tolerances for the inputs' dtype."""
    dtype = tensors[0].dtype
    xs = [t.detach().clone().requires_grad_(grads) for t in tensors]
    refs = [t.detach().double().requires_grad_(grads) for t in tensors]
    with backends.use_backend(backend):
        out = _as_tuple(call(spec, xs, opts, reduction))
    ref = _as_tuple(spec.reference(*refs, **opts, reduction=reduction))
    mag = _magnitude(spec, refs, opts, reduction)
    rows = []
    worst = (0.0, 0.0, True, "")
    for o, r in zip(out, ref):
        if o.dtype != dtype or o.shape != r.shape:
            worst = (math.inf, math.inf, False, f"got {o.dtype} {tuple(o.shape)}, expected {dtype} {tuple(r.shape)}")
            break
        rtol, atol = tolerance(spec, dtype, mag)
        expect = r.detach().to(dtype)
        ok = bool(torch.isclose(o.detach().double(), expect.double(), rtol=rtol, atol=atol, equal_nan=True).all())
        ea, er = _errors(o, expect)
        worst = (max(worst[0], ea), max(worst[1], er), worst[2] and ok, worst[3])
    rows.append(("values", *worst))
    if not grads:
        return rows
    ups = [torch.randn(r.shape, dtype=torch.float64, generator=gen).to(r.device) + 1.5 for r in ref]
    g = torch.autograd.grad(out, xs, [u.to(o.dtype) for u, o in zip(ups, out)], allow_unused=True)
    gr = torch.autograd.grad(ref, refs, ups, allow_unused=True)
    gmag = max((float(b.abs().nan_to_num(0, 0, 0).max()) for b in gr if b is not None and b.numel()), default=0.0)
    worst = (0.0, 0.0, True, "")
    for a, b, x in zip(g, gr, xs):
        if a is None or b is None or a.dtype != x.dtype or a.shape != x.shape:
            worst = (math.inf, math.inf, False, "missing or misshapen gradient")
            break
        rtol, atol = tolerance(spec, dtype, 0.0)
        fi = torch.finfo(dtype)
        atol = spec.tolerances[dtype][1] * max(gmag, 1e-30) + 2 * fi.tiny * fi.eps
        expect = b.to(dtype)
        ok = bool(torch.isclose(a.double(), expect.double(), rtol=rtol, atol=atol, equal_nan=True).all())
        ea, er = _errors(a, expect)
        worst = (max(worst[0], ea), max(worst[1], er), worst[2] and ok, worst[3])
    rows.append(("grads", *worst))
    return rows


def _shapes(spec, table):
    return table["pair"] if spec.is_pair else table["one"] * len(spec.args)


def _inputs(spec, shapes, dtype, device, seed):
    gen = torch.Generator().manual_seed(seed)
    return spec.make_inputs(shapes, dtype, device, gen), gen


def run_checks(op: str, backend: str, device: str, quick: bool = False) -> List[Result]:
    spec = OPS[op]
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
                xs, gen = _inputs(spec, _shapes(spec, SMALL), torch.float64, device, 100 + oi)
                add(f"values-fp64[{red},opt{oi}]", compare(spec, backend, xs, opts, red, gen))

    def grad_checks():
        for oi, opts in enumerate(spec.options):
            xs, _ = _inputs(spec, _shapes(spec, SMALL), torch.float64, device, 200 + oi)
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
                xs, gen = _inputs(spec, _shapes(spec, LARGE), dtype, device, 300)
                name = str(dtype).split(".")[-1]
                add(f"{name}[{red}]", compare(spec, backend, xs, spec.options[-1], red, gen))

    guard("values-fp64", values)
    guard("gradcheck", grad_checks)
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
    ops = [o for o in OPS if not op_filter or o in op_filter]
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
    p.add_argument("--op", action="append", choices=list(OPS), help="only this op (repeatable)")
    p.add_argument("--quick", action="store_true", help="skip the float32/bfloat16 comparisons")
    p.add_argument("--failures-only", action="store_true", help="print only failing rows")
    a = p.parse_args(argv)
    if a.device and "cuda" in a.device and not torch.cuda.is_available():
        print("fastgan verify: --device cuda asked for, but there is no CUDA device", file=sys.stderr)
        return 2
    todo, skipped = plan(a.backend, a.device, a.op)
    t0 = time.perf_counter()
    results: List[Result] = []
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
