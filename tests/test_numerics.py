"""Extreme inputs, kinks, nan/inf, determinism, and the stable-BCE limits."""
from __future__ import annotations

import math

import pytest
import torch

import fastgan
from fastgan import functional as F
from fastgan.tools.cases import CASES

from .conftest import runnable, usable_backends
from .helpers import as_tuple, call

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_extreme_logits_exact(backend, dtype):
    """fp32 logits of ±1e4 give the exact stable BCE values, not inf or nan."""
    s = torch.tensor([1e4, -1e4, 0.0, 30.0, -30.0], dtype=dtype, requires_grad=True)
    with fastgan.use_backend(backend):
        real_terms, fake_terms = F.bce_d_loss(s, s, reduction="none")
        g = torch.autograd.grad(real_terms.sum() + fake_terms.sum(), s)[0]
    exact_real = torch.tensor([0.0, 1e4, math.log(2), math.log1p(math.exp(-30)), 30 + math.log1p(math.exp(-30))],
                              dtype=torch.float64)
    exact_fake = torch.tensor([1e4, 0.0, math.log(2), 30 + math.log1p(math.exp(-30)), math.log1p(math.exp(-30))],
                              dtype=torch.float64)
    rtol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(real_terms.double(), exact_real, rtol=rtol, atol=0)
    torch.testing.assert_close(fake_terms.double(), exact_fake, rtol=rtol, atol=0)
    # d/ds [BCE(s,1) + BCE(s,0)] = 2 sigmoid(s) - 1
    torch.testing.assert_close(g.double(), 2 * torch.sigmoid(s.detach().double()) - 1, rtol=rtol, atol=1e-30)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_infinite_logits_are_the_limits(backend):
    inf = math.inf
    s = torch.tensor([inf, -inf], requires_grad=True)
    with fastgan.use_backend(backend):
        r, f = F.bce_d_loss(s, s, reduction="none")
        g = torch.autograd.grad(r.sum(), s)[0]
        ns = F.bce_g_loss(s, reduction="none")
        drop = F.binary_cross_entropy_with_logits(s, torch.tensor([1.0, 0.0]), reduction="none")
    assert r.tolist() == [0.0, inf]          # BCE(+inf, 1) = 0, BCE(-inf, 1) = inf
    assert f.tolist() == [inf, 0.0]          # BCE(+inf, 0) = inf, BCE(-inf, 0) = 0
    assert g.tolist() == [0.0, -1.0]
    assert ns.tolist() == [0.0, inf]
    assert drop.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_nan_propagates_like_reference(backend, name):
    spec = CASES[name]
    xs = spec.make_inputs([(6,)] * len(spec.args), torch.float32)
    xs[0][2] = math.nan
    if spec.is_discriminator:
        xs[1][4] = math.nan
    xs = [x.requires_grad_() for x in xs]
    with fastgan.use_backend(backend):
        out = as_tuple(call(spec, xs, {}, "none"))
        g = torch.autograd.grad([o.sum() for o in out], xs)
    ref = as_tuple(spec.reference(*xs, reduction="none"))
    gr = torch.autograd.grad([o.sum() for o in ref], xs)
    for o, r in zip(out, ref):
        assert torch.equal(o.isnan(), r.isnan())
        torch.testing.assert_close(o, r, equal_nan=True)
    for a, b in zip(g, gr):
        assert torch.equal(a.isnan(), b.isnan()), (a, b)
        torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hinge_zero_gradient_at_margin(backend):
    real = torch.tensor([1.0, 0.5, 2.0], requires_grad=True)    # margin - x = 0, >0, <0
    fake = torch.tensor([-1.0, -0.5, -2.0], requires_grad=True)  # margin + y = 0, >0, <0
    with fastgan.use_backend(backend):
        loss = F.hinge_d_loss(real, fake, reduction="sum")
    gr, gf = torch.autograd.grad(loss, [real, fake])
    assert gr.tolist() == [0.0, -1.0, 0.0]
    assert gf.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_upstream_gradient(backend):
    real, fake = (torch.randn(100, requires_grad=True) for _ in range(2))
    with fastgan.use_backend(backend):
        loss = F.bce_d_loss(real, fake)
    gr, gf = torch.autograd.grad(loss, [real, fake], torch.zeros(()))
    assert not gr.any() and not gf.any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_deterministic_bitwise(backend, name):
    """Same input, bit-identical output and gradients, including the two-stage reduction."""
    spec = CASES[name]
    n = 3 * 32 * 1024 + 17  # above the single-program size: partials + second stage
    xs = [x.requires_grad_() for x in spec.make_inputs([(n,)] * len(spec.args), torch.float32)]
    results = []
    for _ in range(2):
        with fastgan.use_backend(backend):
            out = call(spec, xs, {}, "mean")
        results.append((out.detach().clone(), torch.autograd.grad(out, xs)))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


def test_float64_parameters_keep_full_precision():
    """Labels reach float64 kernels with ~48 bits, not rounded to float32."""
    if "triton" not in BACKENDS:
        pytest.skip("triton backend not usable")
    x = torch.randn(50, dtype=torch.float64)
    with fastgan.use_backend("triton"):
        out = F.bce_d_loss(x, x, real_label=0.9, fake_label=0.1)
    ref = fastgan.reference.bce_d_loss(x, x, real_label=0.9, fake_label=0.1)
    torch.testing.assert_close(out, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_dropin_matches_torch(backend):
    """Same values and gradients as torch.nn.functional on finite inputs, with weight,
    pos_weight (broadcast along the last dim) and every reduction, gradients of all four."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 5, generator=gen, dtype=torch.float64) * 4)
    t = torch.rand(4, 5, generator=gen, dtype=torch.float64)
    w = torch.rand(5, generator=gen, dtype=torch.float64) + 0.5
    pw = torch.rand(5, generator=gen, dtype=torch.float64) * 3
    for reduction in ("mean", "sum", "none"):
        for kw in ({}, {"weight": w}, {"pos_weight": pw}, {"weight": w, "pos_weight": pw}):
            a = [v.clone().requires_grad_() for v in (x, t)]
            b = [v.clone().requires_grad_() for v in (x, t)]
            ka = dict(kw)
            kb = dict(kw)
            with fastgan.use_backend(backend):
                out = F.binary_cross_entropy_with_logits(*a, reduction=reduction, **ka)
            ref = torch.nn.functional.binary_cross_entropy_with_logits(*b, reduction=reduction, **kb)
            torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
            up = torch.rand_like(ref) + 0.5
            ga = torch.autograd.grad(out, a, up)
            gb = torch.autograd.grad(ref, b, up)
            for p, q in zip(ga, gb):
                torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    # legacy size_average / reduce
    with fastgan.use_backend(backend):
        out = F.binary_cross_entropy_with_logits(x, t, size_average=False)
    torch.testing.assert_close(out, torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="sum"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_dropin_weight_gradients(backend):
    """Unlike torch, weight and pos_weight are differentiable (gradcheck and gradgradcheck)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    pw = (torch.rand(3, 1, generator=gen, dtype=torch.float64) * 3).requires_grad_()

    def fn(*a):
        return F.binary_cross_entropy_with_logits(a[0], a[1], weight=a[2], pos_weight=a[3])

    with fastgan.use_backend(backend):
        assert torch.autograd.gradcheck(fn, (x, t, w, pw))
        assert torch.autograd.gradgradcheck(fn, (x, t, w, pw))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_dropin_target_gradient_at_hard_labels(backend):
    """d/dt of the drop-in BCE is w·(−s) also at t = 0 and t = 1 exactly (as torch's)."""
    x = torch.tensor([3.0, -2.0, 0.5, 4.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        out = F.binary_cross_entropy_with_logits(x, t, reduction="sum")
    (gt,) = torch.autograd.grad(out, t)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="sum")
    (gr,) = torch.autograd.grad(ref, t)
    torch.testing.assert_close(gt, gr)
    torch.testing.assert_close(gt, -x.detach())
