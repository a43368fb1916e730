"""torch.compile of the native extension's C++ autograd ops, called as torch.ops.fastgan_native.*:
the raw kernels have Meta kernels (fake tensors reach them through the dispatcher), and the
compiled forward and backward equal the eager op's, with static and dynamic shapes.
torch.library.opcheck checks every raw op (schema, fake-tensor shapes / dtypes / strides
against the real kernel, AOT dispatch with dynamic shapes)."""
from __future__ import annotations

import itertools

import pytest
import torch

from fastgan.backends import native_loader as nb

if nb.prerequisites() is not None:
    pytest.skip(f"the native extension cannot be built: {nb.prerequisites()}", allow_module_level=True)

pytestmark = pytest.mark.slow  # builds the extension (once per cache)

KINDS = range(4)  # BCE, HINGE, LSGAN, LINEAR (csrc/fastgan.h)
REDUCTIONS = range(3)  # none, mean, sum
PARAMS = {0: [1.0, 0.9, 1.0, 0.1], 1: [-1.0, 1.0, 1.0, 1.0], 2: [1.0, 1.0, 1.0, 0.0], 3: [-1.0, 0.0, 1.0, 0.0]}


@pytest.fixture(scope="module")
def ops():
    nb.build()
    return torch.ops.fastgan_native


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)


def _check(fn, inputs, wrt, dynamic):
    """fn (returning a list of tensors) compiled with fullgraph=True against eager: values,
    shapes, dtypes, and torch.autograd.grad of a weighted sum of the outputs."""
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic)
    want, got = fn(*inputs), compiled(*inputs)
    assert len(got) == len(want)
    tol = _tol(wrt[0].dtype)
    for w, g in zip(want, got):
        assert g.shape == w.shape and g.dtype == w.dtype
        torch.testing.assert_close(g, w, **tol)

    def weighted(outs):
        return sum((o * (1.0 + 0.25 * i)).sum() for i, o in enumerate(outs))

    g_want = torch.autograd.grad(weighted(want), wrt)
    g_got = torch.autograd.grad(weighted(got), wrt)
    for w, g in zip(g_want, g_got):
        torch.testing.assert_close(g, w, **tol)


CASES = [(torch.float32, False), (torch.float32, True), (torch.float64, False)]  # float64 dynamic: as float32


@pytest.mark.parametrize("dtype,dynamic", CASES)
@pytest.mark.parametrize("has_real", [True, False])
def test_pair_loss_compiles(ops, dtype, dynamic, has_real):
    """Every kind x reduction in one graph; the reduced BCE takes the CPU saving path
    (pair_fwd_saving + pair_scale) under compile as in eager."""
    gen = torch.Generator().manual_seed(0)
    real = (torch.randn(5, 7, generator=gen, dtype=dtype) * 3).requires_grad_()
    fake = (torch.randn(13, generator=gen, dtype=dtype) * 3).requires_grad_()

    def fn(r, f):
        out = []
        for kind, red in itertools.product(KINDS, REDUCTIONS):
            out += list(ops.pair_loss(r if has_real else None, f, kind, PARAMS[kind], red))
        return out

    _check(fn, (real, fake), [real, fake] if has_real else [fake], dynamic)


@pytest.mark.parametrize("dtype,dynamic", CASES)
@pytest.mark.parametrize("others_grad", [False, True])
def test_bce_loss_compiles(ops, dtype, dynamic, others_grad):
    """With and without weight / pos_weight; the target and weights requiring grad too
    (their gradients come from the ATen rule in ops.cpp)."""
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 6, generator=gen, dtype=dtype) * 3).requires_grad_()
    t = torch.rand(4, 6, generator=gen, dtype=dtype).requires_grad_(others_grad)
    w = torch.rand(6, generator=gen, dtype=dtype).requires_grad_(others_grad)
    pw = (torch.rand(6, generator=gen, dtype=dtype) * 2).requires_grad_(others_grad)

    def fn(x, t, w, pw):
        return [ops.bce_loss(x, t, ww, pp, red)
                for red, ww, pp in itertools.product(REDUCTIONS, (None, w), (None, pw))]

    _check(fn, (x, t, w, pw), [x, t, w, pw] if others_grad else [x], dynamic)


@pytest.mark.parametrize("dtype,dynamic", CASES)
def test_penalty_compiles(ops, dtype, dynamic):
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(6, 3, 4, generator=gen, dtype=dtype)
    g[0] = 0  # a zero row: finite, zero gradient
    g.requires_grad_()

    def fn(g):
        return [ops.penalty(g, center, one_sided, red)
                for red, center, one_sided in itertools.product(REDUCTIONS, (0.0, 1.0), (False, True))]

    _check(fn, (g,), [g], dynamic)


def _raw_cases(ops):
    r, f, up0 = torch.randn(5, 7), torch.randn(13), torch.tensor(0.7)
    x, t, w, pw = torch.randn(4, 6), torch.rand(4, 6), torch.rand(6), torch.rand(6) * 2
    g = torch.randn(6, 3, 4)
    sq = (g * g).sum((1, 2))
    p0, p1 = PARAMS[0], PARAMS[1]
    return [
        (ops.pair_fwd, (r, f, 0, p0, 1)), (ops.pair_fwd, (None, f, 1, p1, 0)), (ops.pair_fwd, (r, f, 2, p0, 0)),
        (ops.pair_fwd, (r.double(), f.double(), 3, p0, 2)),
        (ops.pair_bwd, (r, f, 0, p0, 1, [up0])), (ops.pair_bwd, (None, f, 1, p1, 0, [torch.rand(13)])),
        (ops.pair_bwd, (r, f, 2, p0, 0, [torch.rand(5, 7), torch.rand(13)])),
        (ops.pair_fwd_saving, (r, f, 0, p0, 1)), (ops.pair_fwd_saving, (None, f.double(), 0, p0, 2)),
        (ops.pair_scale, (torch.randn(5, 7), up0, 1, torch.float32)),
        (ops.pair_scale, (torch.randn(5, 7), up0, 2, torch.bfloat16)),
        (ops.bce_fwd, (x, t, w, pw, 0)), (ops.bce_fwd, (x, t, None, None, 1)),
        (ops.bce_bwd, (x, t, w, None, 1, up0)), (ops.bce_bwd, (x, t, None, pw, 0, torch.rand(4, 6))),
        (ops.penalty_fwd, (g, 1.0, False, 1)), (ops.penalty_fwd, (g.bfloat16(), 0.0, True, 0)),
        (ops.penalty_bwd, (g, sq, 1.0, False, 1, up0)), (ops.penalty_bwd, (g, sq, 0.0, False, 0, torch.rand(6))),
    ]


def test_raw_ops_opcheck(ops):
    failed = []
    for op, args in _raw_cases(ops):
        result = torch.library.opcheck(op, args, raise_exception=False)
        bad = {k: v for k, v in result.items() if v != "SUCCESS"}
        if bad:
            failed.append((str(op), bad))
    assert not failed, failed


def test_meta_outputs_equal_the_cpu_kernels(ops):
    """Shapes, dtypes and strides of the Meta kernels, op by op (opcheck's fake-tensor check, spelled out)."""
    for op, args in _raw_cases(ops):
        def to_meta(a):
            if isinstance(a, torch.Tensor):
                return a.to("meta")
            if isinstance(a, list):
                return [to_meta(v) for v in a]
            return a
        cpu = op(*args)
        meta = op(*[to_meta(a) for a in args])
        cpu, meta = (list(cpu), list(meta)) if isinstance(cpu, (list, tuple)) else ([cpu], [meta])
        assert len(cpu) == len(meta), op
        for c, m in zip(cpu, meta):
            assert (m.shape, m.dtype, m.stride()) == (c.shape, c.dtype, c.stride()), (op, args)
