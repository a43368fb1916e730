"""The fused relativistic kernels (kernels/relativistic.py, csrc/relativistic.cpp) on what
the registry-driven suites miss: sizes above the single-program threshold (multi-program
reductions and their finish), real and fake of very different sizes, "none" gradients
with element-wise upstream, the same tensor as real and fake, fake computed from real
(first and second order), the ±1e4 and logit-0 points, bit-identical repeats, and that
the fused kernels run (not the composition of means and the BCE pair op)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import fastgan
from fastgan import functional as F
from fastgan import reference as R
from fastgan.registry import OPS
from fastgan.backends.triton import relativistic as triton_relativistic

from .conftest import runnable, usable_backends

FUSED = [b for b in usable_backends() if b in ("triton", "native") and runnable(b, "cpu")]
RAGAN = ("ragan_d_loss", "ragan_g_loss")
RPGAN = ("rpgan_d_loss", "rpgan_g_loss")
SINGLE_PROGRAM_MAX = 32 * 1024  # kernels/losses.py (not imported: that would decorate the kernels here)

pytestmark = pytest.mark.skipif(not FUSED, reason="no fused backend usable here")


def _tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _run(backend, name, x, y, reduction, ups=None):
    """Values and gradients of (x, y) on ``backend`` and on the reference, same upstream."""
    outs = []
    for use in (backend, "torch"):
        xs = x.detach().clone().requires_grad_()
        ys = y.detach().clone().requires_grad_()
        with fastgan.use_backend(use):
            out = _tuple(getattr(F, name)(xs, ys, reduction=reduction))
        if ups is None:
            gen = torch.Generator().manual_seed(7)
            ups = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in out]
        grads = torch.autograd.grad(out, (xs, ys), ups)
        outs.append([o.detach() for o in out] + list(grads))
    return outs


def _close(got, want, rtol, atol):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol * scale, equal_nan=True)


TOL = {torch.float64: (1e-10, 1e-12), torch.float32: (2e-5, 2e-6)}


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", RAGAN)
@pytest.mark.parametrize("sizes", [(SINGLE_PROGRAM_MAX + 1000, 7), (3, 2 * SINGLE_PROGRAM_MAX + 5), (1, 1),
                                   (1025, 4099)])
def test_ragan_sizes_and_reductions(backend, name, reduction, sizes):
    gen = torch.Generator().manual_seed(sum(sizes))
    x = torch.randn(sizes[0], dtype=torch.float64, generator=gen) * 3
    y = torch.randn(sizes[1], dtype=torch.float64, generator=gen) * 3 - 1
    got, want = _run(backend, name, x, y, reduction)
    _close(got, want, *TOL[torch.float64])


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", RPGAN)
@pytest.mark.parametrize("n", [2 * SINGLE_PROGRAM_MAX + 3, 1, 1024, 1500])
def test_rpgan_sizes_and_reductions(backend, name, reduction, n):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, dtype=torch.float64, generator=gen) * 3
    y = torch.randn(n, dtype=torch.float64, generator=gen) * 3
    got, want = _run(backend, name, x, y, reduction)
    _close(got, want, *TOL[torch.float64])


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", RAGAN + RPGAN)
def test_multi_dim_and_non_contiguous(backend, name):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, dtype=torch.float64, generator=gen).t()          # non-contiguous
    y = torch.randn(5, 6, dtype=torch.float64, generator=gen) if name in RPGAN else \
        torch.randn(4, 1, 3, 3, dtype=torch.float64, generator=gen)
    for reduction in ("mean", "none"):
        got, want = _run(backend, name, x, y, reduction)
        _close(got, want, *TOL[torch.float64])


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", RAGAN + RPGAN)
def test_special_points(backend, name, dtype):
    """±1e4 logits (saturated sigmoids, BCE linear in the logit) and shifted logits of
    exactly 0 (σ = ½), every reduction, values and gradients."""
    if name in RAGAN:
        x = torch.tensor([1.0, 1e4, -1e4, 1.0, 0.0], dtype=dtype)      # mean 0.2 -> 1e4 - 1 etc.
        y = torch.tensor([1.0, 0.0, 2.0, 1e4, -1e4, -1.0, 3.0], dtype=dtype)
        pairs = [(x, y), (torch.zeros(4, dtype=dtype), torch.zeros(3, dtype=dtype)),
                 (torch.full((3,), 1e4, dtype=dtype), torch.full((5,), -1e4, dtype=dtype))]
    else:
        x = torch.tensor([0.0, 1e4, -1e4, 5.0, 1e4, -3.0], dtype=dtype)
        y = torch.tensor([0.0, -1e4, 1e4, 5.0, 1e4, 2.0], dtype=dtype)
        pairs = [(x, y)]
    for a, b in pairs:
        for reduction in ("mean", "sum", "none"):
            got, want = _run(backend, name, a, b, reduction)
            _close(got, want, *TOL[dtype])
            assert all(torch.isfinite(t).all() for t in got)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", RAGAN + RPGAN)
@pytest.mark.parametrize("build", ["same", "from_real"])
def test_dependent_inputs_first_and_second_order(backend, name, build):
    """real and fake the same tensor, or fake computed from real: the gradient of the
    leaf is the sum over both paths, and the create-graph backward is exact."""
    def fn(x):
        fake = x if build == "same" else torch.tanh(2 * x) - 0.5
        out = getattr(F, name)(x, fake, reduction="mean")
        parts = getattr(F, name)(x, fake, reduction="none")
        return out + sum((p * p).sum() for p in _tuple(parts))

    res = []
    for use in (backend, "torch"):
        x = torch.tensor([0.3, -1.2, 0.0, 2.5, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
        with fastgan.use_backend(use):
            (g1,) = torch.autograd.grad(fn(x), x)
            (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
            (g2,) = torch.autograd.grad((g * g).sum(), x)
        res.append((g1, g.detach(), g2))
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", RAGAN + RPGAN)
def test_only_needed_gradients(backend, name):
    """A detached side gets no gradient and the other side's is still right."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, dtype=torch.float64, generator=gen)
    y = torch.randn(300 if name in RPGAN else 77, dtype=torch.float64, generator=gen)
    for need in ((True, False), (False, True)):
        for reduction in ("mean", "none"):
            grads = []
            for use in (backend, "torch"):
                xs, ys = x.clone().requires_grad_(need[0]), y.clone().requires_grad_(need[1])
                with fastgan.use_backend(use):
                    out = _tuple(getattr(F, name)(xs, ys, reduction=reduction))
                sum(o.sum() for o in out).backward()
                grads.append((xs.grad, ys.grad))
            (gx, gy), (rx, ry) = grads
            assert (gx is None) == (not need[0]) and (gy is None) == (not need[1])
            for a, b in ((gx, rx), (gy, ry)):
                if b is not None:
                    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", RAGAN + RPGAN)
def test_half_and_mixed_dtypes(backend, name):
    """Half inputs accumulate in float32; the result dtype is the reference's."""
    gen = torch.Generator().manual_seed(11)
    base_x = torch.randn(2000, generator=gen)
    base_y = torch.randn(2000 if name in RPGAN else 900, generator=gen)
    for dx, dy in ((torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16),
                   (torch.float16, torch.float32), (torch.float32, torch.float64)):
        x, y = base_x.to(dx), base_y.to(dy)
        for reduction in ("mean", "none"):
            with fastgan.use_backend(backend):
                got = _tuple(getattr(F, name)(x, y, reduction=reduction))
            want = _tuple(getattr(R, name)(x, y, reduction=reduction))
            for a, b in zip(got, want):
                assert a.dtype == b.dtype and a.shape == b.shape
                tol = 1e-2 if a.dtype in (torch.float16, torch.bfloat16) else 1e-5
                torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", RAGAN + RPGAN)
def test_deterministic(backend, name):
    """Multi-program reductions: bit-identical values and gradients run after run."""
    gen = torch.Generator().manual_seed(2)
    n = 2 * SINGLE_PROGRAM_MAX + 17
    x = torch.randn(n, generator=gen)
    y = torch.randn(n if name in RPGAN else n // 3, generator=gen)
    runs = []
    for _ in range(2):
        xs, ys = x.clone().requires_grad_(), y.clone().requires_grad_()
        with fastgan.use_backend(backend):
            out = getattr(F, name)(xs, ys, reduction="sum")
        out.backward()
        runs.append((out.detach(), xs.grad, ys.grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


class _Counting:
    """Wraps an object's callables and counts their calls by name."""

    def __init__(self, target):
        self.target, self.calls = target, {}

    def __getattr__(self, name):
        fn = getattr(self.target, name)

        def counted(*a, **k):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*a, **k)
        return counted


def _forbid(*a, **k):
    raise AssertionError("the reference was called instead of the fused kernels")


@pytest.mark.parametrize("backend", FUSED)
def test_fused_kernels_are_used(backend, monkeypatch):
    """The fused forward and backward run, and nothing else: not the reference.  Native:
    the C++ autograd functions (RaganFn, RpganFn), which call the raw ops in C++."""
    for name in RAGAN + RPGAN:
        monkeypatch.setitem(OPS, name, dataclasses.replace(OPS[name], reference=_forbid))
    x = torch.randn(10, requires_grad=True)
    y = torch.randn(10, requires_grad=True)
    if backend == "native":
        with fastgan.use_backend(backend):
            for name, node in (("ragan_d_loss", "RaganFn"), ("rpgan_g_loss", "RpganFn")):
                out = getattr(F, name)(x, y)
                assert node in out.grad_fn.name(), out.grad_fn.name()
                out.backward()
        return
    counter = _Counting(triton_relativistic)
    for fn in ("ragan_forward", "ragan_backward", "rpgan_forward", "rpgan_backward"):
        monkeypatch.setattr(triton_relativistic, fn, getattr(counter, fn))
    with fastgan.use_backend(backend):
        for name in RAGAN + RPGAN:
            getattr(F, name)(x, y).backward()
    assert counter.calls == {"ragan_forward": 2, "ragan_backward": 2, "rpgan_forward": 2, "rpgan_backward": 2}
