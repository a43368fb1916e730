"""The test-and-verify helpers: one comparison for ``fastgan verify`` and the test suite.

``compare`` runs an op on a backend and on the float64 reference with the same
(already rounded) inputs and reports values and gradients against the per-dtype
tolerances of ``cases.CASES``; ``check_against_reference`` is the same comparison,
asserted (what the tests call).  ``sample`` draws an op's inputs from a seed
(``OpCases.make_inputs``) and returns the generator, which ``compare`` goes on to
draw the upstream gradient from.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch

from .. import backends

__all__ = ["as_tuple", "call", "tolerance", "magnitude", "errors", "compare", "check_against_reference",
           "shapes_for", "sample", "compare_lists"]


def as_tuple(out) -> tuple:
    """An op's result as a tuple (``reduction="none"`` of a pair op returns two tensors)."""
    return tuple(out) if isinstance(out, tuple) else (out,)


def call(spec, tensors, opts, reduction):
    """``fastgan.F.<op>(*tensors, **opts, reduction=reduction)`` with the selected backend."""
    from .. import functional as F
    return getattr(F, spec.name)(*tensors, **{**getattr(spec, "fixed", {}), **opts}, reduction=reduction)


def tolerance(spec, dtype, magnitude: float) -> Tuple[float, float]:
    """(rtol, atol) for ``dtype``: the op's, the absolute part scaled by the L1 size
    of what was summed, plus one subnormal ulp for half types."""
    rtol, atol = spec.tolerances[dtype]
    fi = torch.finfo(dtype)
    return rtol, atol * max(1.0, magnitude) + 2 * fi.tiny * fi.eps


def magnitude(spec, refs, opts, reduction) -> float:
    """The size of what the reduction sums: mean or sum of |terms|, or the largest |term|."""
    terms = as_tuple(spec.reference(*[r.detach() for r in refs], **opts, reduction="none"))
    finite = [t.abs().nan_to_num(0, 0, 0) for t in terms if t.numel()]
    if not finite:
        return 0.0
    if reduction == "mean":
        return sum(float(t.mean()) for t in finite)
    if reduction == "sum":
        return sum(float(t.sum()) for t in finite)
    return max(float(t.max()) for t in finite)


def errors(a: torch.Tensor, b: torch.Tensor) -> Tuple[float, float]:
    """(max abs, max rel) error of ``a`` against ``b`` over the finite entries; inf when
    their non-finite entries (nan, ±inf) differ."""
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
    the gradients (with a random upstream gradient drawn from ``gen``); ``ok`` uses the
    op's tolerances for the inputs' dtype."""
    dtype = tensors[0].dtype
    xs = [t.detach().clone().requires_grad_(grads) for t in tensors]
    refs = [t.detach().double().requires_grad_(grads) for t in tensors]
    with backends.use_backend(backend):
        out = as_tuple(call(spec, xs, opts, reduction))
    ref = as_tuple(spec.reference(*refs, **opts, reduction=reduction))
    mag = magnitude(spec, refs, opts, reduction)
    rows = []
    worst = (0.0, 0.0, True, "")
    for o, r in zip(out, ref):
        if o.dtype != dtype or o.shape != r.shape:
            worst = (math.inf, math.inf, False, f"got {o.dtype} {tuple(o.shape)}, expected {dtype} {tuple(r.shape)}")
            break
        rtol, atol = tolerance(spec, dtype, mag)
        expect = r.detach().to(dtype)
        ok = bool(torch.isclose(o.detach().double(), expect.double(), rtol=rtol, atol=atol, equal_nan=True).all())
        ea, er = errors(o, expect)
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
        if a is None and b is None:  # an argument the op does not differentiate (detached real features)
            continue
        if a is None or b is None or a.dtype != x.dtype or a.shape != x.shape:
            worst = (math.inf, math.inf, False, "missing or misshapen gradient")
            break
        rtol, atol = tolerance(spec, dtype, 0.0)
        fi = torch.finfo(dtype)
        atol = spec.tolerances[dtype][1] * max(gmag, 1e-30) + 2 * fi.tiny * fi.eps
        expect = b.to(dtype)
        ok = bool(torch.isclose(a.double(), expect.double(), rtol=rtol, atol=atol, equal_nan=True).all())
        ea, er = errors(a, expect)
        worst = (max(worst[0], ea), max(worst[1], er), worst[2] and ok, worst[3])
    rows.append(("grads", *worst))
    return rows


def check_against_reference(spec, backend, tensors, opts, reduction, gen, grads=True) -> None:
    """``compare``, asserted: values and gradients of ``backend`` against the reference
    evaluated in float64 on the same (already rounded) inputs, with a random upstream
    gradient and per-dtype tolerances."""
    for what, max_abs, max_rel, ok, note in compare(spec, backend, tensors, opts, reduction, gen, grads):
        assert ok, (f"{spec.name} [{backend}, {tensors[0].dtype}, {reduction}, {opts}] {what}: "
                    f"max abs {max_abs:.3e}, max rel {max_rel:.3e} {note}")


def shapes_for(spec, table: dict) -> list:
    """The input shapes of ``spec`` from a table ``{"pair": [real, fake], "one": [shape]}``:
    a pair op takes the pair, any other op one shape per tensor argument."""
    return table["pair"] if spec.is_discriminator else table["one"] * len(spec.args)


def sample(spec, shapes, dtype, device, seed: int):
    """Inputs of ``spec`` drawn from ``seed`` (``OpCases.make_inputs``), and the generator,
    to draw the upstream gradient of ``compare`` from."""
    gen = torch.Generator().manual_seed(seed)
    return spec.make_inputs(shapes, dtype, device, gen), gen


def compare_lists(spec, backend: str, lists: Sequence[Sequence[torch.Tensor]], opts: dict, reduction: str,
                  gen: torch.Generator) -> List[tuple]:
    """A pair loss over lists of score tensors (one per discriminator) on ``backend``
    against the reference applied per member, float64: rows ``(what, max_abs, max_rel,
    ok, note)`` for the per-discriminator losses and for every member's gradient (a
    random upstream gradient on the total)."""
    from .. import functional as F
    xs = [[t.detach().clone().requires_grad_() for t in ts] for ts in lists]
    refs = [[t.detach().clone().requires_grad_() for t in ts] for ts in lists]
    with backends.use_backend(backend):
        total, per = getattr(F, spec.name)(*xs, **opts, reduction=reduction, return_per_discriminator=True)
    want = [spec.reference(*members, **opts, reduction=reduction) for members in zip(*refs)]
    rtol, atol = spec.tolerances[torch.float64]
    ok = len(per) == len(want)
    worst = (0.0, 0.0)
    for a, b in zip([total, *per], [sum(want[1:], want[0]), *want]):
        ea, er = errors(a, b)
        worst = (max(worst[0], ea), max(worst[1], er))
        ok = ok and bool(torch.isclose(a.detach(), b.detach(), rtol=rtol, atol=atol, equal_nan=True).all())
    rows = [("values", *worst, ok, "")]
    up = torch.randn((), dtype=torch.float64, generator=gen).to(total.device) + 1.5
    got = torch.autograd.grad(total, [t for ts in xs for t in ts], up)
    exp = torch.autograd.grad(sum(want[1:], want[0]), [t for ts in refs for t in ts], up)
    worst, ok = (0.0, 0.0), True
    for a, b in zip(got, exp):
        ea, er = errors(a, b)
        worst = (max(worst[0], ea), max(worst[1], er))
        ok = ok and a.shape == b.shape and bool(torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True).all())
    rows.append(("grads", *worst, ok, ""))
    return rows
