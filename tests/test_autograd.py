"""gradcheck / gradgradcheck in float64 for every op x option x reduction x backend,
and first derivatives of the double-backward path equal to the kernel's."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan.tools.cases import CASES, REDUCTIONS

from .conftest import DEVICES, runnable, usable_backends
from .helpers import as_tuple, call


def _cases():
    for name, spec in CASES.items():
        for oi, opts in enumerate(spec.options):
            yield pytest.param(name, opts, id=f"{name}-opt{oi}")


def _inputs(spec, device):
    shapes = [(5,), (3, 2)] if spec.is_discriminator else [(2, 3)] * len(spec.args)
    xs = spec.make_inputs(shapes, torch.float64, device, torch.Generator().manual_seed(3))
    # keep hinge points away from the kink, where finite differences straddle it
    return [x.detach().requires_grad_(True) for x in xs]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,opts", list(_cases()))
def test_gradcheck_gradgradcheck(name, opts, reduction, backend, device):
    if not runnable(backend, device):
        pytest.skip(f"{backend} does not run on {device}")
    spec = CASES[name]
    xs = _inputs(spec, device)

    def fn(*ts):
        return call(spec, ts, opts, reduction)

    with fastgan.use_backend(backend):
        assert torch.autograd.gradcheck(fn, xs)
        assert torch.autograd.gradgradcheck(fn, xs)


@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("name", list(CASES))
def test_create_graph_grads_equal_kernel_grads(name, backend):
    """The differentiable backward (create_graph=True) gives the same first derivatives
    as the fused backward kernel."""
    if not runnable(backend, "cpu"):
        pytest.skip("not on cpu")
    spec = CASES[name]
    xs = _inputs(spec, "cpu")
    with fastgan.use_backend(backend):
        out = call(spec, xs, {}, "mean")
        g1 = torch.autograd.grad(out, xs)
        out = call(spec, xs, {}, "mean")
        g2 = torch.autograd.grad(out, xs, create_graph=True)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_reference_third_order(name):
    """The reference (the torch backend) is differentiable beyond second order."""
    spec = CASES[name]
    xs = _inputs(spec, "cpu")
    out = as_tuple(spec.reference(*xs, reduction="sum"))
    x = xs[0]
    (g,) = torch.autograd.grad(sum((o * o).sum() for o in out), x, create_graph=True)
    (gg,) = torch.autograd.grad((g * g).sum(), x, create_graph=True)
    (ggg,) = torch.autograd.grad(gg.sum(), x)
    assert torch.isfinite(ggg).all()
