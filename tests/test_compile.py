"""torch.compile(fullgraph=True) of a function calling the losses: no graph breaks,
forward and backward give the eager values."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import fastgan
from fastgan import functional as F

from .conftest import runnable, usable_backends

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


def d_step(real, fake, x, t):
    return (F.hinge_d_loss(real, fake) + F.bce_d_loss(real, fake, real_label=0.9)
            + F.lsgan_d_loss(real, fake, reduction="sum") + F.wasserstein_d_loss(real, fake)
            + F.binary_cross_entropy_with_logits(x, t))


def g_step(fake):
    return (F.bce_g_loss(fake) + F.bce_g_loss(fake, saturating=True) + F.hinge_g_loss(fake)
            + F.lsgan_g_loss(fake, reduction="sum") + F.wasserstein_g_loss(fake))


def none_step(real, fake):
    r, f = F.bce_d_loss(real, fake, reduction="none")
    return r.sum() * 2 + f.mean()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_fullgraph_matches_eager(backend):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(64, generator=gen, requires_grad=True)
    fake = torch.randn(8, 1, 5, 5, generator=gen, requires_grad=True)
    x = torch.randn(16, generator=gen, requires_grad=True)
    t = torch.rand(16, generator=gen)
    with fastgan.use_backend(backend):
        for fn, args in ((d_step, (real, fake, x, t)), (g_step, (fake,)), (none_step, (real, fake))):
            eager = fn(*args)
            ge = torch.autograd.grad(eager, [a for a in args if a.requires_grad])
            compiled = torch.compile(fn, fullgraph=True)
            out = compiled(*args)
            gc = torch.autograd.grad(out, [a for a in args if a.requires_grad])
            torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
            for a, b in zip(gc, ge):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("backend", ["torch", "native", "triton", "auto"])
def test_compile_every_differentiable_argument_fresh_process(backend):
    """In a fresh process, with no eager call first: fullgraph=True with dynamic=False,
    dynamic=True and automatic dynamic shapes (and a float option that changes), every
    op, every argument requiring grad; values and gradients equal eager
    (tests/compile_fresh.py).  "auto" is native on CPU: its run is the short one."""
    if backend not in BACKENDS:
        pytest.skip(f"{backend} is not usable here")
    env = dict(os.environ, PYTHONPATH=ROOT)
    if backend != "triton":
        env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, "-m", "tests.compile_fresh", backend] + (["--quick"] if backend == "auto" else [])
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert out.returncode == 0 and not fails, "\n".join(fails) or out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("OK ")
