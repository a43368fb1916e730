"""Bad input raises TypeError / ValueError naming the argument; nothing crashes in a kernel."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan import functional as F

from .conftest import runnable, usable_backends

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastgan.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8, torch.complex64])
def test_non_float_dtype(backend, dtype):
    good = torch.randn(4)
    bad = torch.ones(4, dtype=dtype)
    with pytest.raises(TypeError, match="real"):
        F.hinge_d_loss(bad, good)
    with pytest.raises(TypeError, match="fake"):
        F.bce_d_loss(good, bad)
    with pytest.raises(TypeError, match="fake"):
        F.lsgan_g_loss(bad)
    with pytest.raises(TypeError, match="target"):
        F.binary_cross_entropy_with_logits(good, bad)


def test_not_a_tensor(backend):
    with pytest.raises(TypeError, match="real"):
        F.wasserstein_d_loss([1.0, 2.0], torch.randn(2))
    with pytest.raises(TypeError, match="fake"):
        F.hinge_g_loss(3.0)


def test_different_devices(backend):
    real = torch.randn(4)
    fake = torch.randn(4, device="meta")
    with pytest.raises(ValueError, match="real.*fake"):
        F.hinge_d_loss(real, fake)
    with pytest.raises(ValueError, match="weight"):
        F.binary_cross_entropy_with_logits(real, real, weight=fake)


@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 0])
def test_unknown_reduction(backend, reduction):
    with pytest.raises(ValueError, match="reduction"):
        F.bce_d_loss(torch.randn(3), torch.randn(3), reduction=reduction)
    with pytest.raises(ValueError, match="reduction"):
        F.bce_g_loss(torch.randn(3), reduction=reduction)


@pytest.mark.parametrize("kind", ["vanilla", "wgan", "", None])
def test_unknown_kind(backend, kind):
    with pytest.raises(ValueError, match="kind"):
        F.d_loss(kind, torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match="kind"):
        F.g_loss(kind, torch.randn(3))


def test_bad_scalars(backend):
    x = torch.randn(3)
    with pytest.raises(TypeError, match="real_label"):
        F.bce_d_loss(x, x, real_label="0.9")
    with pytest.raises(TypeError, match="real_label"):
        F.bce_d_loss(x, x, real_label=torch.tensor(0.9))
    with pytest.raises(ValueError, match="margin"):
        F.hinge_d_loss(x, x, margin=float("nan"))
    with pytest.raises(TypeError, match="saturating"):
        F.bce_g_loss(x, saturating=1)
    with pytest.raises(TypeError, match="margin"):
        F.hinge_d_loss(x, x, margin=True)


def test_bce_dropin_shapes(backend):
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="target size"):
        F.binary_cross_entropy_with_logits(x, torch.rand(4))
    with pytest.raises(ValueError, match="weight"):
        F.binary_cross_entropy_with_logits(x, torch.rand(4, 3), weight=torch.rand(4))
    with pytest.raises(ValueError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(x, torch.rand(4, 3), pos_weight=torch.rand(2))


def test_dispatch_by_kind_matches_functions(backend):
    real, fake = torch.randn(5), torch.randn(6)
    assert torch.equal(F.d_loss("hinge", real, fake, margin=0.5), F.hinge_d_loss(real, fake, margin=0.5))
    assert torch.equal(F.g_loss("bce", fake, saturating=True), F.bce_g_loss(fake, saturating=True))
    assert torch.equal(F.d_loss("wasserstein", real, fake), F.wasserstein_d_loss(real, fake))
    assert torch.equal(F.g_loss("lsgan", fake, c=0.5), F.lsgan_g_loss(fake, c=0.5))


def test_new_ops_bad_input_names_the_argument():
    from fastgan import functional as F
    from fastgan.checks import ShapeError
    x = torch.randn(4, 3)
    with pytest.raises(ShapeError, match="batch dimension"):
        F.gaussian_kl(torch.tensor(0.5), torch.tensor(0.1))
    with pytest.raises(ShapeError, match="mu .* and logvar"):
        F.gaussian_kl(x, x[:, :2])
    with pytest.raises(ValueError, match="dim 2 is out of range"):
        F.kl_div_logits(x, x, dim=2)
    with pytest.raises(ValueError, match="dim -1 is out of range"):
        F.js_div_logits(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(TypeError, match="dim must be an int"):
        F.js_div_logits(x, x, dim=True)
    with pytest.raises(ShapeError, match="same shape"):
        F.rpgan_d_loss(x, x[:2])
    with pytest.raises(ValueError, match="reduction"):
        F.ragan_d_loss(x, x, reduction="avg")
    with pytest.raises(TypeError, match="real"):
        F.ragan_g_loss(x.long(), x)
