"""Lazy regularisation (StyleGAN2): the scaled penalty on every k-th call, no work on the
others, and the optimiser compensation."""
from __future__ import annotations

import math

import pytest
import torch

import fastgan


def test_lazy_regularizer_scales_and_skips():
    calls = []

    def penalty(x):
        calls.append(1)
        return x.square().mean()

    reg = fastgan.LazyRegularizer(penalty, every=4)
    x = torch.tensor([1.0, 2.0, 3.0])
    out = [reg(x) for _ in range(9)]
    assert [o is not None for o in out] == [True, False, False, False, True, False, False, False, True]
    assert len(calls) == 3  # the penalty ran only on the due steps
    assert float(out[0]) == pytest.approx(4 * 14 / 3)
    assert reg.step == 9 and not reg.due
    reg.step = 12
    assert reg.due


def test_lazy_regularizer_gradient_is_every_times_the_penalty_gradient():
    critic = torch.nn.Linear(3, 1)
    real = torch.randn(5, 3)
    reg = fastgan.LazyRegularizer(lambda r: fastgan.r1_penalty(critic, r, gamma=1.0), every=16)
    (g_lazy,) = torch.autograd.grad(reg(real), critic.weight)
    (g_one,) = torch.autograd.grad(fastgan.r1_penalty(critic, real, gamma=1.0), critic.weight)
    torch.testing.assert_close(g_lazy, 16 * g_one)


def test_lazy_adam_hparams_match_stylegan2():
    lr, (b1, b2) = fastgan.lazy_adam_hparams(0.0025, (0.0, 0.99), every=16)
    c = 16 / 17
    assert lr == pytest.approx(0.0025 * c) and b1 == 0.0 and b2 == pytest.approx(math.exp(c * math.log(0.99)))
    lr, betas = fastgan.lazy_adam_hparams(1e-3, (0.5, 0.9), every=1)
    assert lr == pytest.approx(5e-4) and betas == pytest.approx((0.5 ** 0.5, 0.9 ** 0.5))


def test_lazy_errors_name_the_argument():
    with pytest.raises(ValueError, match="every"):
        fastgan.LazyRegularizer(lambda: 0, every=0)
    with pytest.raises(TypeError, match="penalty_fn"):
        fastgan.LazyRegularizer(3)
    with pytest.raises(ValueError, match="betas"):
        fastgan.lazy_adam_hparams(1e-3, (0.9,), every=4)
    with pytest.raises(TypeError, match="lr"):
        fastgan.lazy_adam_hparams("fast", (0.0, 0.99), every=4)
