"""Every op of the registry x every usable backend x dtype x reduction x shape,
values and gradients against the float64 reference."""
from __future__ import annotations

import math
import zlib

import pytest
import torch

from fastgan.tools.cases import DTYPES, CASES, REDUCTIONS

from .conftest import DEVICES, runnable, usable_backends
from .helpers import as_tuple, call, check_against_reference, sampled

# (real shape, fake shape); single-input ops use the first
SHAPES = {
    "one": ((1,), (1,)),
    "seven": ((7,), (7,)),
    "1000": ((1000,), (1000,)),
    "2^16+3": ((2 ** 16 + 3,), (2 ** 16 + 3,)),
    "patchgan": ((8, 1, 30, 30), (8, 1, 30, 30)),
    "different-sizes": ((64,), (4, 1, 13, 13)),
}


def _shapes(spec, key):
    shapes = SHAPES[key]
    if spec.is_discriminator:
        return shapes
    return tuple(shapes[0] for _ in spec.args)


def _cases():
    for name, spec in CASES.items():
        for oi, opts in enumerate(spec.options):
            yield pytest.param(name, opts, id=f"{name}-opt{oi}")


# per op x option set and backend: 1 in 2 of shape x reduction x dtype (each pair of
# values met), 1 in 6 on the Triton interpreter and "auto" (each value met); in full
# with FASTGAN_FULL_MATRIX=1
@sampled("shape", "reduction", "dtype", every={"triton": 6, "auto": 6, "*": 2}, of="backend")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name,opts", list(_cases()))
def test_against_reference(name, opts, shape, reduction, dtype, backend, device):
    if not runnable(backend, device):
        pytest.skip(f"{backend} does not run on {device}")
    spec = CASES[name]
    if shape == "different-sizes" and not spec.is_discriminator:
        pytest.skip("single-input op")
    # a stable seed (hash() of a str changes with every process: PYTHONHASHSEED)
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name}|{shape}|{reduction}".encode()))
    tensors = spec.make_inputs(_shapes(spec, shape), dtype, device, gen)
    check_against_reference(spec, backend, tensors, opts, reduction, gen)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_non_contiguous(name, reduction, backend, device):
    """Transposed and strided views give the same values and gradients."""
    if not runnable(backend, device):
        pytest.skip(f"{backend} does not run on {device}")
    spec = CASES[name]
    gen = torch.Generator().manual_seed(1)
    base = spec.make_inputs([(16, 24)] * len(spec.args), torch.float32, device, gen)
    views = [t.t()[::2] for t in base]  # 12 x 16, non-contiguous
    assert not views[0].is_contiguous()
    check_against_reference(spec, backend, views, {}, reduction, gen)


def _empty_expected(spec, shape, reduction):
    """What torch gives for an empty batch, written from its rules rather than the
    reference: the mean of nothing is nan, the sum 0, "none" the terms' (empty) shape.
    (A 1-D divergence input is one empty distribution: its sum over nothing is 0.)"""
    from fastgan.registry import Family
    family = spec.spec.family
    if family is Family.DIVERGENCE and spec.name != "gaussian_kl" and len(shape) == 1:
        return [torch.tensor(0.0)] if reduction != "none" else [torch.zeros(())]
    if reduction != "none":
        return [torch.tensor(math.nan if reduction == "mean" else 0.0)]
    if family is Family.PENALTY or spec.name == "gaussian_kl":
        return [torch.zeros(0)]  # per sample
    if family is Family.DIVERGENCE:
        return [torch.zeros(shape[:-1])]  # dim=-1 removed
    return [torch.zeros(shape)] * (2 if spec.is_discriminator else 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (0, 2, 3)], ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_empty(name, shape, reduction, backend, device):
    """Empty batches behave as torch does (mean of nothing is nan, the sum 0, "none" the
    empty terms), without crashing, on every backend, for every rank (``gaussian_kl`` on
    ``zeros(0, 3)`` raised inside the reference: issue 22, item 4)."""
    if not runnable(backend, device):
        pytest.skip(f"{backend} does not run on {device}")
    spec = CASES[name]
    shapes = [shape] * len(spec.args)
    tensors = spec.make_inputs(shapes, torch.float32, device)
    check_against_reference(spec, backend, tensors, {}, reduction, torch.Generator().manual_seed(0))
    import fastgan
    with fastgan.use_backend(backend):
        got = as_tuple(call(spec, tensors, {}, reduction))
    for g, want in zip(got, _empty_expected(spec, shape, reduction)):
        assert g.shape == want.shape, (g.shape, want.shape)
        torch.testing.assert_close(g.cpu().float(), want, equal_nan=True)
    if spec.is_discriminator and len(shape) == 1:  # one side empty, the other not
        tensors = spec.make_inputs([(0,), (5,)], torch.float32, device)
        check_against_reference(spec, backend, tensors, {}, reduction, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("name", [n for n, s in CASES.items() if s.is_discriminator])
def test_mixed_dtypes_promote(name, backend):
    """real and fake of different dtypes promote as real.mean() + fake.mean() does."""
    if not runnable(backend, "cpu"):
        pytest.skip("not on cpu")
    spec = CASES[name]
    real, fake = spec.make_inputs([(33,), (17,)], torch.float32)
    fake = fake.to(torch.bfloat16)
    import fastgan
    with fastgan.use_backend(backend):
        out = getattr(fastgan.F, name)(real, fake)
    ref = spec.reference(real.double(), fake.double())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,opts", list(_cases()))
def test_benchmark_baseline_computes_the_same_loss(name, opts, reduction):
    """The hand-written composition fastgan bench compares against computes the same
    thing as the reference (on finite inputs), so its timings compare like with like."""
    spec = CASES[name]
    xs = spec.make_inputs([(6, 5)] * len(spec.args), torch.float64)
    a = spec.baseline(*xs, **opts, reduction=reduction)
    b = spec.reference(*xs, **opts, reduction=reduction)
    for p, q in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
