"""The HiFi-GAN-style training step of benchmarks/hifigan_step.py: HiFi-GAN's loss loops and
fastgan's list losses give the same parameter gradients (float64) on real modules, on every
backend; and the check fails when the two differ."""
from __future__ import annotations

import os
import sys

import pytest
import torch

import fastgan

from .conftest import runnable, usable_backends

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import hifigan_step  # noqa: E402

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_parameter_gradients_as_the_loops(backend):
    segment = 8192 if backend != "triton" else 2048  # the interpreter is slow; shapes stay real-like
    with fastgan.use_backend(backend):
        assert hifigan_step.check(batch=1, segment=segment, div=32) <= 1e-10


def test_the_check_can_fail(monkeypatch):
    """A fastgan side that forgets HiFi-GAN's missing ½ (×1 instead of ×2) is caught."""
    monkeypatch.setitem(hifigan_step.LOSSES, "fastgan",
                        (lambda rs, gs: fastgan.F.lsgan_d_loss(rs, gs), hifigan_step.fused_g))
    with pytest.raises(AssertionError, match="differ"):
        hifigan_step.check(batch=1, segment=2048, div=32)


def test_models_have_the_real_shapes():
    """8 score tensors and 54 feature maps; the periods fold the waveform as HiFi-GAN's MPD."""
    d = hifigan_step.Discriminators(32)
    rs, gs, frs, fgs = d(torch.zeros(1, 1, 8192), torch.zeros(1, 1, 8192))
    assert len(rs) == 8 and sum(len(f) for f in frs) == 54
    assert [r.shape[1] for r in rs[:5]] == [51 * 2, 34 * 3, 21 * 5, 15 * 7, 10 * 11]
