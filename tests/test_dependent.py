"""Inputs computed from each other, the way users combine ops: a target, weight or
pos_weight computed from the logits, real and fake the same tensor or two views of
one, a label tensor that depends on the scores.  First and second order, every
backend, against the reference (itself checked against torch.nn.functional here
where torch can differentiate the same thing)."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan import functional as F

from .conftest import runnable, usable_backends

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]
tF = torch.nn.functional


def _scenarios():
    """name -> fn(x) building a loss from one leaf x (float64, 6 elements)."""
    base = {
        "bce(x, sigmoid(x))": lambda x: F.binary_cross_entropy_with_logits(x, torch.sigmoid(x)),
        "bce(x, t, weight=|x|)": lambda x: F.binary_cross_entropy_with_logits(
            x, torch.linspace(0, 1, x.numel(), dtype=x.dtype), weight=x.abs()),
        "bce(x, sigmoid(x), pos_weight=exp(x))": lambda x: F.binary_cross_entropy_with_logits(
            x, torch.sigmoid(x), pos_weight=x.exp(), reduction="sum"),
        "bce(x, sigmoid(2x), weight=x^2) none": lambda x: F.binary_cross_entropy_with_logits(
            x, torch.sigmoid(2 * x), weight=x * x, reduction="none").sum(),
        "bce_d(x, x)": lambda x: F.bce_d_loss(x, x),
        "bce_d(x, 2x) smoothed": lambda x: F.bce_d_loss(x, 2 * x, real_label=0.9),
        "bce_d(views of one tensor)": lambda x: F.bce_d_loss(x[:3], x[3:]),
        "bce_d(overlapping views)": lambda x: F.bce_d_loss(x[:4], x[2:], reduction="sum"),
        "hinge_d(x, x)": lambda x: F.hinge_d_loss(x, x),
        "hinge_d(x, x*x)": lambda x: F.hinge_d_loss(x, x * x, margin=0.5),
        "lsgan_d(x, exp(x))": lambda x: F.lsgan_d_loss(x, x.exp()),
        "lsgan_d(x, x) none": lambda x: sum(t.sum() for t in F.lsgan_d_loss(x, x, reduction="none")),
        "wasserstein_d(x, x.t())": lambda x: F.wasserstein_d_loss(x.view(2, 3), x.view(2, 3).t()),
        "bce_g(x) + bce_d(x, x)": lambda x: F.bce_g_loss(x) + F.bce_d_loss(x.detach() * 0 + x, x),
        "grad_norm_penalty(x*x)": lambda x: F.grad_norm_penalty((x * x).view(2, 3)),
    }
    return base


SCENARIOS = _scenarios()


def _grads(fn, backend):
    x = torch.tensor([0.3, -1.2, 0.0, 2.5, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        loss = fn(x)
        (g1,) = torch.autograd.grad(loss, x)
        loss = fn(x)
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        g2 = torch.autograd.grad((g * g).sum(), x)[0] if g.requires_grad else None
    return g1, g.detach(), g.requires_grad, g2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_dependent_inputs_first_and_second_order(name, backend):
    fn = SCENARIOS[name]
    got = _grads(fn, backend)
    want = _grads(fn, "torch")
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-14, msg=lambda m: f"first order: {m}")
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-14, msg=lambda m: f"with a graph: {m}")
    assert got[2] == want[2], "the create_graph gradient is differentiable on one backend and not the other"
    if want[3] is not None:
        torch.testing.assert_close(got[3], want[3], rtol=1e-10, atol=1e-12, msg=lambda m: f"second order: {m}")


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n.startswith("bce(x, sigmoid(x))")])
def test_reference_dependent_target_matches_torch(name):
    """The oracle for the dependent-target case is torch's own function."""
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend("torch"):
        (ours,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(x, torch.sigmoid(x)), x)
    (theirs,) = torch.autograd.grad(tF.binary_cross_entropy_with_logits(x, torch.sigmoid(x)), x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_tensor_twice_equals_sum_of_sides(backend):
    """bce_d_loss(x, x) is BCE(x, 1) + BCE(x, 0): its gradient is the sum of both sides'."""
    x = torch.randn(7, dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        (g,) = torch.autograd.grad(F.bce_d_loss(x, x, reduction="sum"), x)
    want = (torch.sigmoid(x) - 1) + torch.sigmoid(x)
    torch.testing.assert_close(g, want.detach(), rtol=1e-12, atol=1e-14)
