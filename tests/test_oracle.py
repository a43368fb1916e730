"""The reference is the spec, so it is checked too: against closed forms and plain
torch.nn.functional compositions written independently of it (the registry's
``special`` and ``closed_form``), at the points random inputs never land on: a logit
of exactly 0, ±1e4, ±inf, the hinge exactly at its margin, labels 0 and 1,
zero-norm penalty rows.  Values, first derivatives and the diagonal of the Hessian.
Then every backend against the reference at the same points, to second order."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan.tools.cases import CASES

from .conftest import runnable, usable_backends
from .helpers import as_tuple, call

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]
POINTS = [pytest.param(name, i, id=f"{name}-{i}")
         for name, spec in CASES.items() for i in range(len(spec.special(torch.float64)))]


def test_every_op_declares_its_oracle():
    """A new op must come with its special points and closed forms."""
    missing = [name for name, spec in CASES.items() if spec.special is None or spec.closed_form is None]
    assert not missing, f"ops without special points / closed forms in the registry: {missing}"


def _case(name, i, dtype):
    spec = CASES[name]
    tensors, opts, diff = spec.special(dtype)[i]
    return spec, tensors, opts, diff


def _derivatives(fn, tensors, diff):
    """First derivative of the scalar ``fn(*tensors)`` and the diagonal of the Hessian,
    per differentiated argument (element by element, so it is exact for any op)."""
    xs = [x.detach().clone().requires_grad_(d) for x, d in zip(tensors, diff)]
    wrt = [x for x, d in zip(xs, diff) if d]
    grads = torch.autograd.grad(fn(*xs), wrt, create_graph=True)
    out = []
    for x, g in zip(wrt, grads):
        diag = torch.zeros_like(x).reshape(-1)
        if g.requires_grad:
            flat = g.reshape(-1)
            for j in range(flat.numel()):
                (h,) = torch.autograd.grad(flat[j], x, retain_graph=True, allow_unused=True)
                diag[j] = 0.0 if h is None else h.reshape(-1)[j]
        out.append((g.detach(), diag.reshape(x.shape)))
    return out


def _assert_close(got, want, what, tol):
    torch.testing.assert_close(got, want, equal_nan=True, msg=lambda m: f"{what}: {m}", **tol)


F64 = dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,i", POINTS)
def test_reference_against_closed_form(name, i):
    spec, tensors, opts, diff = _case(name, i, torch.float64)
    terms, derivs = spec.closed_form(tensors, opts)
    ref_terms = as_tuple(spec.reference(*tensors, **opts, reduction="none"))
    for got, want in zip(ref_terms, as_tuple(terms)):
        _assert_close(got, want, f"{name} {opts} values", F64)
    got = _derivatives(lambda *xs: sum(o.sum() for o in as_tuple(spec.reference(*xs, **opts, reduction="sum"))),
                       tensors, diff)
    want = [d for d, flag in zip(derivs, diff) if flag]
    for k, ((g1, g2), (w1, w2)) in enumerate(zip(got, want)):
        _assert_close(g1, w1, f"{name} {opts} d/d{spec.args[k]}", F64)
        _assert_close(g2, w2, f"{name} {opts} d2/d{spec.args[k]}2", F64)


def test_reference_bce_against_torch_at_logit_zero():
    """The independent oracle at the kink that broke: torch's own BCE (sigmoid-based
    derivative) at a logit of exactly 0, labels 0 and 1."""
    from fastgan import reference
    s = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 1.0, 0.5, 1.0], dtype=torch.float64)
    ours = torch.autograd.grad(reference.binary_cross_entropy_with_logits(s, t, reduction="sum"), s)[0]
    theirs = torch.autograd.grad(torch.nn.functional.binary_cross_entropy_with_logits(s, t, reduction="sum"), s)[0]
    assert ours.tolist() == theirs.tolist() == [0.5, -0.5, 0.0, -0.5]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,i", POINTS)
def test_backend_against_reference_at_special_points(name, i, backend):
    """float64: values, first and second derivatives of every backend equal the
    reference's; float32: values and first derivatives within float32 rounding."""
    spec, tensors, opts, diff = _case(name, i, torch.float64)
    for reduction in ("none", "sum", "mean"):
        with fastgan.use_backend(backend):
            got = as_tuple(call(spec, tensors, opts, reduction))
        want = as_tuple(spec.reference(*tensors, **opts, reduction=reduction))
        for a, b in zip(got, want):
            _assert_close(a, b, f"{name} {opts} {reduction} values [{backend}]", F64)

    def total(*xs):
        return sum(o.sum() for o in as_tuple(call(spec, xs, opts, "sum")))

    with fastgan.use_backend(backend):
        got = _derivatives(total, tensors, diff)
    with fastgan.use_backend("torch"):
        want = _derivatives(total, tensors, diff)
    for k, ((g1, g2), (w1, w2)) in enumerate(zip(got, want)):
        _assert_close(g1, w1, f"{name} {opts} d/d{spec.args[k]} [{backend}]", F64)
        _assert_close(g2, w2, f"{name} {opts} d2/d{spec.args[k]}2 [{backend}]", F64)

    # float32 kernels at the same points, against the reference in float32 (at a kink the
    # float64 reference on the rounded inputs can sit on the other side of it)
    t32 = [x.float() for x in tensors]
    o32 = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in opts.items()}
    xs = [x.clone().requires_grad_(d) for x, d in zip(t32, diff)]
    with fastgan.use_backend(backend):
        out = as_tuple(call(spec, xs, o32, "none"))
        g = torch.autograd.grad([o.sum() for o in out], [x for x in xs if x.requires_grad])
    ref_in = [x.clone().requires_grad_(d) for x, d in zip(t32, diff)]
    ref = as_tuple(spec.reference(*ref_in, **o32, reduction="none"))
    gr = torch.autograd.grad([o.sum() for o in ref], [x for x in ref_in if x.requires_grad])
    for a, b in zip(out, ref):
        _assert_close(a.double(), b.double(), f"{name} {opts} float32 values [{backend}]",
                      dict(rtol=2e-6, atol=2e-6))
    for a, b in zip(g, gr):
        _assert_close(a.double(), b.double(), f"{name} {opts} float32 grads [{backend}]",
                      dict(rtol=2e-6, atol=2e-6))


@pytest.mark.parametrize("name,i", POINTS)
def test_torch_func_at_special_points(name, i):
    """``torch.func.grad`` (what vmap/jacrev users and compile's functionalisation run: the
    reference's derivative) equals the closed form at the special points too; the
    divergences' zero-probability entries gave nan there (issue 22, item 1)."""
    spec, tensors, opts, diff = _case(name, i, torch.float64)
    _, derivs = spec.closed_form(tensors, opts)
    argnums = tuple(k for k, d in enumerate(diff) if d)

    def total(*xs):
        return sum(o.sum() for o in as_tuple(call(spec, xs, opts, "sum")))

    got = torch.func.grad(total, argnums=argnums)(*tensors)
    want = [d for d, flag in zip(derivs, diff) if flag]
    for k, (g, (w, _)) in zip(argnums, zip(got, want)):
        _assert_close(g, w, f"{name} {opts} torch.func d/d{spec.args[k]}", F64)
