"""torch.func transforms (grad, vmap, jacrev, jvp) and forward-mode AD on every op and
backend.  The fused kernels have no batching or forward-derivative rules, so such
calls run on the reference (fastgan/backends/__init__.py); the answers are checked
against plain reverse-mode autograd of the same backend."""
from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jacrev, jvp, vmap

import fastgan
from fastgan.tools.cases import CASES

from .conftest import runnable, usable_backends
from .helpers import as_tuple, call

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


def _inputs(spec, batch=None):
    shapes = [(5,), (4,)] if spec.is_discriminator else [(3, 4)] * len(spec.args)
    if batch:
        shapes = [(batch, *s) for s in shapes]
    return spec.make_inputs(shapes, torch.float64, "cpu", torch.Generator().manual_seed(5))


def _scalar(spec, reduction="sum"):
    def f(*xs):
        return sum(o.sum() for o in as_tuple(call(spec, xs, {}, reduction)))
    return f


def _eager_grads(spec, xs, backend):
    leaves = [x.detach().clone().requires_grad_() for x in xs]
    with fastgan.use_backend(backend):
        return torch.autograd.grad(_scalar(spec)(*leaves), leaves)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_func_grad(name, backend):
    spec = CASES[name]
    xs = _inputs(spec)
    with fastgan.use_backend(backend):
        got = grad(_scalar(spec), argnums=tuple(range(len(xs))))(*xs)
    for a, b in zip(got, _eager_grads(spec, xs, backend)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_func_vmap(name, backend):
    spec = CASES[name]
    xs = _inputs(spec, batch=3)
    with fastgan.use_backend(backend):
        got = vmap(lambda *a: call(spec, a, {}, "mean"))(*xs)
        want = torch.stack([call(spec, [x[i] for x in xs], {}, "mean") for i in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_func_jacrev(name, backend):
    spec = CASES[name]
    xs = _inputs(spec)
    with fastgan.use_backend(backend):
        jac = jacrev(lambda a: _scalar(spec, "mean")(a, *xs[1:]))(xs[0])
    leaves = [x.detach().clone().requires_grad_() for x in xs]
    with fastgan.use_backend(backend):
        (want,) = torch.autograd.grad(_scalar(spec, "mean")(*leaves), leaves[0])
    torch.testing.assert_close(jac, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_func_jvp_and_forward_ad(name, backend):
    spec = CASES[name]
    xs = _inputs(spec)
    tangents = [torch.randn_like(x) for x in xs]
    want = sum((g * t).sum() for g, t in zip(_eager_grads(spec, xs, backend), tangents))
    with fastgan.use_backend(backend):
        _, got = jvp(_scalar(spec), tuple(xs), tuple(tangents))
        with fwAD.dual_level():
            duals = [fwAD.make_dual(x, t) for x, t in zip(xs, tangents)]
            got_fw = fwAD.unpack_dual(_scalar(spec)(*duals)).tangent
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got_fw, want, rtol=1e-12, atol=1e-14)


def test_plain_calls_still_use_the_fused_backend():
    """The routing is only for transforms: an ordinary call reaches the selected backend."""
    from fastgan import backends
    x = torch.randn(4, requires_grad=True)
    for name in BACKENDS:
        if name in ("auto", "torch"):
            continue
        with fastgan.use_backend(name):
            out = fastgan.F.hinge_d_loss(x, x)
        assert "AddBackward" not in type(out.grad_fn).__name__, (name, out.grad_fn)  # not the reference's graph
    with fastgan.use_backend("torch"):
        assert "AddBackward" in type(fastgan.F.hinge_d_loss(x, x).grad_fn).__name__
    assert backends.transformed() is False
