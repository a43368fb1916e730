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
    dynamic=True and automatic dynamic shapes (and a float option that changes), one op
    per family, a different one per backend (every op with FASTGAN_FULL_MATRIX=1), every
    argument requiring grad; values and gradients equal eager (tests/compile_fresh.py).
    "auto" is native on CPU: its run is the short one."""
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


FULL = os.environ.get("FASTGAN_FULL_MATRIX") == "1"


def _first_compile_runs():
    """Per family its first op first in a fresh process (every op of the family with
    FASTGAN_FULL_MATRIX=1); then one op under each FASTGAN_BACKEND."""
    from fastgan.registry import OPS
    families = {}
    for name, spec in OPS.items():
        families.setdefault(spec.family.value, []).append(name)
    for family, names in families.items():
        yield pytest.param(names if FULL else names[:1], None, id=family)
    for backend in ("native", "triton", "torch"):
        yield pytest.param(["hinge_d_loss"], backend, id=f"FASTGAN_BACKEND={backend}")


@pytest.mark.parametrize("names,env_backend", list(_first_compile_runs()))
def test_first_call_is_an_inductor_compile_fresh_process(names, env_backend):
    """Issue 22, item 3: as users run it, the first thing a fresh process does is
    torch.compile(fullgraph=True, dynamic=True) with the default inductor backend, with
    no set_backend before (FASTGAN_BACKEND or "auto"); then dynamic=None with a size
    change; lists of discriminators for the pair losses (tests/compile_first.py).  The
    restructure made this fail with SpeculationLogDivergence for every op."""
    if env_backend is not None and env_backend not in BACKENDS:
        pytest.skip(f"{env_backend} is not usable here")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("FASTGAN_BACKEND", None)
    if env_backend is not None:
        env["FASTGAN_BACKEND"] = env_backend
    if env_backend != "triton":
        env.pop("TRITON_INTERPRET", None)
    out = subprocess.run([sys.executable, "-m", "tests.compile_first", *names], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert out.returncode == 0 and not fails, "\n".join(fails) or out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("OK ")
