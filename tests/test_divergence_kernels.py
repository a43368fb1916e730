"""The fused divergence kernels (gaussian_kl, kl_div_logits, js_div_logits) on every fused
backend, where the registry-driven suites do not reach: rows split across programs
(D above the split size, not a multiple of the block), many short rows, the
distribution dim not last and non-contiguous inputs, ±1e4 logits, one-hot rows and
probabilities that underflow to 0, the same tensor twice, mixed dtypes, determinism,
and that the kernels run at all (not silently the reference)."""
from __future__ import annotations

import math

import pytest
import torch

import fastgan
from fastgan import functional as F
from fastgan import reference
from fastgan.backends.native import divergence as native_divergence, raw as native_raw
from fastgan.backends.triton import divergence as triton_divergence

from .conftest import runnable, usable_backends

FUSED = [b for b in ("triton", "native") if b in usable_backends() and runnable(b, "cpu")]
DISTS = ("kl_div_logits", "js_div_logits")
F64 = dict(rtol=1e-10, atol=1e-12)
F32 = dict(rtol=2e-5, atol=2e-5)


def _run(backend, name, xs, opts, reduction, up_seed=0):
    """Values and gradients (random upstream) of ``backend`` and of the reference, on the
    same inputs."""
    a = [x.detach().clone().requires_grad_() for x in xs]
    b = [x.detach().clone().requires_grad_() for x in xs]
    with fastgan.use_backend(backend):
        out = getattr(F, name)(*a, **opts, reduction=reduction)
    ref = getattr(reference, name)(*b, **opts, reduction=reduction)
    gen = torch.Generator().manual_seed(up_seed)
    up = (torch.randn(ref.shape, dtype=torch.float64, generator=gen) + 1.5).to(ref.dtype)
    ga = torch.autograd.grad(out, a, up)
    gb = torch.autograd.grad(ref, b, up)
    return out, ref, ga, gb


def _check(backend, name, xs, opts=None, reduction="sum", tol=None):
    opts = opts or {}
    tol = tol or (F64 if xs[0].dtype == torch.float64 else F32)
    out, ref, ga, gb = _run(backend, name, xs, opts, reduction)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    scale = max(1.0, float(ref.detach().abs().nan_to_num(0, 0, 0).max())) if ref.numel() else 1.0
    torch.testing.assert_close(out, ref, rtol=tol["rtol"], atol=tol["atol"] * scale, equal_nan=True)
    gmag = max(float(g.abs().nan_to_num(0, 0, 0).max()) for g in gb if g.numel()) if ref.numel() else 1.0
    for g, w in zip(ga, gb):
        assert g.shape == w.shape and g.dtype == w.dtype
        torch.testing.assert_close(g, w, rtol=tol["rtol"], atol=tol["atol"] * max(gmag, 1e-30), equal_nan=True)


def _logits(shape, dtype=torch.float64, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, dtype=torch.float64, generator=gen) * scale).to(dtype)


# --------------------------------------------------------------------------- row layouts

@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize("shape", [(2, 5000), (1, 3 * 1024 + 17), (3, 2048)], ids=["2x5000", "1x3089", "3x2048"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_long_rows_split_across_programs(backend, name, shape, dtype, reduction):
    from fastgan.kernels import penalty
    assert penalty.row_plan(*shape).splits > 1  # the Triton plan splits these rows
    xs = [_logits(shape, dtype, 1), _logits(shape, dtype, 2)]
    _check(backend, name, xs, reduction=reduction)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("shape", [(2, 5000), (1, 3 * 1024 + 17), (300, 7), (4, 3, 5, 5), (9,)],
                         ids=["2x5000", "1x3089", "300x7", "4x3x5x5", "9"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_kl_shapes(backend, shape, reduction):
    xs = [_logits(shape, seed=1, scale=1.0), _logits(shape, seed=2, scale=1.5)]
    _check(backend, "gaussian_kl", xs, reduction=reduction)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize("shape", [(300, 7), (1000, 3), (70, 20)], ids=["300x7", "1000x3", "70x20"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_many_short_rows(backend, name, shape, reduction):
    xs = [_logits(shape, seed=3), _logits(shape, seed=4)]
    _check(backend, name, xs, reduction=reduction)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize("dim", [0, 1, -2, 2])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_dim_not_last(backend, name, dim, reduction):
    xs = [_logits((4, 9, 6), seed=5), _logits((4, 9, 6), seed=6)]
    _check(backend, name, xs, {"dim": dim}, reduction)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_non_contiguous_inputs(backend, name, reduction):
    base = [_logits((40, 30), seed=7), _logits((40, 30), seed=8)]
    views = [x.t()[::2] for x in base]  # 15 x 40, strided
    assert not views[0].is_contiguous()
    _check(backend, name, views, reduction=reduction)
    if name != "gaussian_kl":
        _check(backend, name, views, {"dim": 0}, reduction)


# --------------------------------------------------------------------------- extreme points

def _extreme_rows(dtype):
    """Rows with ±1e4 logits (probabilities that underflow to exactly 0), one-hot rows
    in floating point, equal rows, and an ordinary row."""
    p = torch.tensor([[1e4, -1e4, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0], [1e4, 0.0, 0.0, 0.0],
                      [-1e4, -1e4, 3.0, -1e4], [0.5, -1.0, 2.0, 0.0], [1e4, 1e4, -1e4, -1e4],
                      [200.0, 0.0, -200.0, 30.0]], dtype=dtype)
    q = torch.tensor([[-1e4, 1e4, 0.0, 5.0], [1e4, -1e4, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                      [3.0, -1e4, -1e4, -1e4], [0.5, -1.0, 2.0, 0.0], [-1e4, 1e4, 1e4, -1e4],
                      [0.0, 200.0, 30.0, -200.0]], dtype=dtype)
    return p, q


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_extreme_logits_and_underflow(backend, name, dtype, reduction):
    """Values and gradients equal the reference's (float32 against the float32 reference:
    the spec's own rounding at 1e4)."""
    p, q = _extreme_rows(dtype)
    tol = F64 if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    _check(backend, name, [p, q], reduction=reduction, tol=tol)
    _check(backend, name, [q, p], reduction=reduction, tol=tol)
    _check(backend, name, [p.t().contiguous(), q.t().contiguous()], {"dim": 0}, reduction, tol)


@pytest.mark.parametrize("backend", FUSED)
def test_extreme_values_are_finite_and_exact(backend):
    """KL of a one-hot row against its opposite at ±1e4 is exactly 2e4; JS there is log 2;
    no nan anywhere, gradients 0 where P underflows."""
    p = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[-1e4, 1e4, 0.0]], dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        kl = F.kl_div_logits(p, q, reduction="sum")
        js = F.js_div_logits(p, q, reduction="sum")
        gp, gq = torch.autograd.grad(kl, [p, q])
        hp, hq = torch.autograd.grad(js, [p, q])
    assert kl.item() == 2e4
    assert js.item() == pytest.approx(math.log(2.0), rel=1e-15, abs=0)
    assert gp.tolist() == [[0.0, 0.0, 0.0]]
    assert gq.tolist() == [[-1.0, 1.0, 0.0]]
    for g in (hp, hq):
        assert torch.isfinite(g).all() and g.abs().max() < 1e-12


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gaussian_kl_extremes(backend, dtype):
    mu = torch.tensor([[0.0, 0.0, 1e4], [1e4, -1e4, 0.5], [3.0, -0.5, 1e-8], [0.0, 1e-8, -2.0]], dtype=dtype)
    lv = torch.tensor([[0.0, 1e-8, -1e-8], [0.0, -30.0, 80.0], [30.0, -2.0, -80.0], [-1e-8, 5.0, 1e-30]],
                      dtype=dtype)
    tol = F64 if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    for reduction in ("sum", "none"):
        _check(backend, "gaussian_kl", [mu, lv], reduction=reduction, tol=tol)
    # expm1 near 0 keeps full relative precision: ½ expm1(1e-8) is 5e-9, not 0 or 5.0000000e-9 ± 1e-16
    x = torch.tensor([[0.0]], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([[1e-8]], dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        (g,) = torch.autograd.grad(F.gaussian_kl(x, v, reduction="sum"), v)
    assert g.item() == pytest.approx(0.5 * math.expm1(1e-8), rel=1e-15, abs=0)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_nan_rows_stay_in_their_row(backend, name):
    """A nan makes its own row (sample) nan, as in the reference, and no other."""
    xs = [_logits((3, 5), seed=9), _logits((3, 5), seed=10)]
    xs[0][1, 2] = math.nan
    _check(backend, name, xs, reduction="none")


# --------------------------------------------------------------------------- combinations

@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_same_tensor_twice(backend, name):
    """Both arguments one tensor: the gradient is the sum through both."""
    x = _logits((5, 8), seed=11)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    with fastgan.use_backend(backend):
        (ga,) = torch.autograd.grad(getattr(F, name)(a, a * 1.5 if name == "gaussian_kl" else a.flip(-1),
                                                     reduction="sum"), a)
    (gb,) = torch.autograd.grad(getattr(reference, name)(b, b * 1.5 if name == "gaussian_kl" else b.flip(-1),
                                                         reduction="sum"), b)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)
    c = x.clone().requires_grad_()
    with fastgan.use_backend(backend):
        out = getattr(F, name)(c, c, reduction="sum")
        (gc,) = torch.autograd.grad(out, c)
    d = x.clone().requires_grad_()
    (gd,) = torch.autograd.grad(getattr(reference, name)(d, d, reduction="sum"), d)
    torch.testing.assert_close(gc, gd, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.bfloat16, torch.float32),
                                    (torch.float16, torch.float16)], ids=["f32+f64", "bf16+f32", "f16"])
def test_mixed_and_half_dtypes(backend, name, dtypes):
    """Promoted like the reference; the result has the reference's dtype and value."""
    a = _logits((6, 33), dtypes[0], seed=12, scale=1.0)
    b = _logits((6, 33), dtypes[1], seed=13, scale=1.0)
    for reduction in ("mean", "none"):
        with fastgan.use_backend(backend):
            out = getattr(F, name)(a, b, reduction=reduction)
        ref = getattr(reference, name)(a, b, reduction=reduction)
        assert out.dtype == ref.dtype and out.shape == ref.shape
        tol = 2e-3 if torch.float16 in dtypes else (1.6e-2 if torch.bfloat16 in dtypes else 1e-6)
        torch.testing.assert_close(out.double(), ref.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_only_the_gradients_asked_for(backend, name):
    a = _logits((4, 6), seed=14).requires_grad_()
    b = _logits((4, 6), seed=15)
    with fastgan.use_backend(backend):
        (ga,) = torch.autograd.grad(getattr(F, name)(a, b), a)
        out = getattr(F, name)(b, a)
        (gb,) = torch.autograd.grad(out, a)
    ra = a.detach().clone().requires_grad_()
    torch.testing.assert_close(ga, torch.autograd.grad(getattr(reference, name)(ra, b), ra)[0], **F64)
    torch.testing.assert_close(gb, torch.autograd.grad(getattr(reference, name)(b, ra), ra)[0], **F64)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS)
def test_gradgradcheck_dim_not_last(backend, name):
    """Double backward (the reference's VJP when the backward records a graph), dim 0."""
    xs = [_logits((3, 2, 2), seed=16).requires_grad_(), _logits((3, 2, 2), seed=17).requires_grad_()]
    with fastgan.use_backend(backend):
        def fn(p, q):
            return getattr(F, name)(p, q, dim=0, reduction="none")
        assert torch.autograd.gradcheck(fn, xs)
        assert torch.autograd.gradgradcheck(fn, xs)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_deterministic_bitwise_split_rows(backend, name):
    xs = [_logits((3, 5000), torch.float32, 18).requires_grad_(), _logits((3, 5000), torch.float32, 19)]
    results = []
    for _ in range(2):
        with fastgan.use_backend(backend):
            out = getattr(F, name)(*xs)
        results.append((out.detach().clone(), torch.autograd.grad(out, xs[0])[0]))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


# --------------------------------------------------------------------------- the kernels run

class _Spy:
    def __init__(self, target):
        self.target, self.calls = target, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.target, name)


@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_triton_kernels_are_used(name, monkeypatch):
    if "triton" not in FUSED:
        pytest.skip("triton is not usable on cpu here")
    spy = _Spy(triton_divergence.kernels("divergence"))
    monkeypatch.setattr(triton_divergence, "kernels", lambda name: spy)
    a = _logits((2, 5000), seed=20).requires_grad_()
    b = _logits((2, 5000), seed=21).requires_grad_()
    with fastgan.use_backend("triton"):
        out = getattr(F, name)(a, b)
        torch.autograd.grad(out, [a, b])
    if name == "gaussian_kl":
        assert {"gkl_partial_kernel", "penalty_finish_kernel", "gkl_bwd_kernel"} <= set(spy.calls)
    else:
        assert {"dist_stats_kernel", "dist_fwd_kernel", "dist_finish_kernel", "dist_bwd_kernel"} <= set(spy.calls)


@pytest.mark.parametrize("name", DISTS + ("gaussian_kl",))
def test_native_ops_are_used(name, monkeypatch):
    if "native" not in FUSED:
        pytest.skip("native is not usable here")
    spy = _Spy(native_raw.ops())
    monkeypatch.setattr(native_divergence, "ops", lambda: spy)
    a = _logits((4, 50), seed=22).requires_grad_()
    b = _logits((4, 50), seed=23).requires_grad_()
    for backend in ("native", "auto"):
        spy.calls.clear()
        with fastgan.use_backend(backend):
            out = getattr(F, name)(a, b)
            torch.autograd.grad(out, [a, b])
        prefix = "gaussian_kl" if name == "gaussian_kl" else "divergence"
        assert spy.calls == [f"{prefix}_fwd", f"{prefix}_bwd"], (backend, spy.calls)


def test_triton_launch_constants_are_listed_for_aot():
    """The constants the divergence launchers use are among ``specializations()``."""
    from fastgan.kernels import divergence as kd, penalty as kp
    listed = {(n.split("[")[0], ce.get("BLOCK_D"), ce.get("ROWS")) for n, _, _, ce in kd.specializations()}
    for R, D in ((1, 1), (300, 7), (70, 20), (256, 1000), (64, 32000), (1, 65539)):
        plan = kp.row_plan(R, D)
        for kernel in ("gkl_partial", "gkl_bwd", "dist_stats", "dist_fwd", "dist_bwd"):
            assert (kernel, plan.block_d, plan.rows) in listed
    assert any(n.startswith("dist_finish[") for n, _, _, _ in kd.specializations())


def _native_raw_cases():
    ops = native_raw.ops()
    x, y = _logits((4, 6), torch.float32, 24), _logits((4, 6), torch.float32, 25)
    z, w = _logits((3, 5, 2), torch.float64, 26), _logits((3, 5, 2), torch.float64, 27)
    up0 = torch.tensor(0.7)
    _, st, dv = ops.divergence_fwd(z, w, 1, True, 2)
    _, st2, dv2 = ops.divergence_fwd(x, y, 1, False, 0)
    return [
        (ops.gaussian_kl_fwd, (x, y, 1)), (ops.gaussian_kl_fwd, (z.bfloat16(), w.bfloat16(), 0)),
        (ops.gaussian_kl_bwd, (x, y, 1, up0, True, True)), (ops.gaussian_kl_bwd, (z, w, 0, torch.rand(3), False, True)),
        (ops.divergence_fwd, (x, y, 1, False, 1)), (ops.divergence_fwd, (z, w, 1, True, 0)),
        (ops.divergence_fwd, (x.half(), y.half(), 0, True, 2)),
        (ops.divergence_bwd, (z, w, 1, True, 2, st, dv, up0, True, True)),
        (ops.divergence_bwd, (x, y, 1, False, 0, st2, dv2, torch.rand(4), True, False)),
    ]


def test_native_raw_ops_opcheck_and_meta():
    """The native divergence ops' schemas, Meta kernels (shapes, dtypes, strides) and CPU
    kernels agree (torch.library.opcheck, then op by op on meta tensors)."""
    if "native" not in FUSED:
        pytest.skip("native is not usable here")
    for op, args in _native_raw_cases():
        result = torch.library.opcheck(op, args, raise_exception=False)
        assert all(v == "SUCCESS" for v in result.values()), (op, result)
        cpu = op(*args)
        meta = op(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
        cpu, meta = (list(cpu), list(meta)) if isinstance(cpu, (list, tuple)) else ([cpu], [meta])
        for c, m in zip(cpu, meta):
            assert (m.shape, m.dtype, m.stride()) == (c.shape, c.dtype, c.stride()), (op, args)
