"""fastgan.schedules against the original code's conventions, written out here by hand:

- ``adopt_weight``: taming-transformers, ``taming/modules/losses/vqperceptual.py``
  (``adopt_weight(weight, global_step, threshold=0, value=0.)``: ``value`` while
  ``global_step < threshold``);
- ``cosine_decay``: R3GAN (brownvc/R3GAN), ``training/training_loop.py``
  ``cosine_decay_with_warmup`` with ``warmup_value = 0`` and ``hold_base_value_nimg = 0``
  (numpy float64 arithmetic).

Python steps and float64 tensor steps to 1e-10; integer tensor steps in float32."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastgan import schedules


def taming_adopt_weight(weight, global_step, threshold=0, value=0.0):
    return value if global_step < threshold else weight


def r3gan_cosine(cur_nimg, base_value, total_nimg, final_value, warmup_nimg=0):
    """R3GAN's schedule, in numpy as R3GAN computes it (no hold, warm-up from 0)."""
    cos = np.cos(np.pi * (cur_nimg - warmup_nimg) / float(total_nimg - warmup_nimg))
    value = base_value + (1 - 0.5 * (1 + cos)) * (final_value - base_value)
    if warmup_nimg > 0:
        value = np.where(cur_nimg < warmup_nimg, base_value / warmup_nimg * cur_nimg, value)
    return float(np.where(cur_nimg > total_nimg, final_value, value))


def test_adopt_weight_python_and_tensor_steps():
    for step in (0, 9, 10, 11, 10**6):
        assert schedules.adopt_weight(0.7, step, 10) == taming_adopt_weight(0.7, step, threshold=10)
        assert schedules.adopt_weight(0.7, step, 10, value=0.2) == taming_adopt_weight(0.7, step, 10, 0.2)
    steps = torch.tensor([0, 9, 10, 11, 10**6])
    got = schedules.adopt_weight(0.7, steps, 10, value=0.2)
    assert got.dtype == torch.get_default_dtype()
    assert got.tolist() == pytest.approx([taming_adopt_weight(0.7, int(s), 10, 0.2) for s in steps])
    w = torch.tensor(0.7, dtype=torch.float64)
    got = schedules.adopt_weight(w, torch.tensor(3), torch.tensor(2))
    assert got.dtype == torch.float64 and got == w
    with pytest.raises(TypeError, match="step"):
        schedules.adopt_weight(1.0, True, 3)


CASES = [(10, 1.0, 0.1, 0), (10, 1.0, 0.1, 3), (20_000_000, 0.05, 0.005, 0), (1000, 0.9, 0.99, 100),
         (7, -2.0, 3.0, 6)]


@pytest.mark.parametrize("total,start,end,warmup", CASES)
def test_cosine_decay_is_r3gans(total, start, end, warmup):
    steps = sorted({0, 1, warmup - 1, warmup, warmup + 1, total // 3, total // 2, total - 1, total, total + 1,
                    2 * total} - {-1})
    for s in steps:
        want = r3gan_cosine(s, start, total, end, warmup)
        assert math.isclose(schedules.cosine_decay(s, total, start, end, warmup=warmup), want, rel_tol=0,
                            abs_tol=1e-10 * max(1.0, abs(start), abs(end))), s
    t = torch.tensor(steps, dtype=torch.float64)
    got = schedules.cosine_decay(t, total, start, end, warmup=warmup)
    want = torch.tensor([r3gan_cosine(s, start, total, end, warmup) for s in steps], dtype=torch.float64)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * max(1.0, abs(start), abs(end)))
    got32 = schedules.cosine_decay(torch.tensor(steps), total, start, end, warmup=warmup)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32, want.float(), rtol=1e-5, atol=1e-6 * max(1.0, abs(start), abs(end)))


def test_cosine_decay_zero_dim_step_and_errors():
    got = schedules.cosine_decay(torch.tensor(5.0, dtype=torch.float64), 10, 1.0, 0.0)
    assert got.shape == () and float(got) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="total"):
        schedules.cosine_decay(1, 5, 1.0, 0.0, warmup=5)
    with pytest.raises(ValueError, match="warmup"):
        schedules.cosine_decay(1, 5, 1.0, 0.0, warmup=-1)
    with pytest.raises(TypeError, match="start_value"):
        schedules.cosine_decay(1, 5, "1", 0.0)
