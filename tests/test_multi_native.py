"""The native list op of the pair losses (issue 13): ``native.multi.PAIR_LIST``, one
autograd node over all the discriminators' score tensors, ``pair_list_fwd`` /
``pair_list_bwd`` in csrc/.  Checked per member against the reference (values and the
gradient of every member, every dtype, "mean" and "sum", lists of 1 and of 60 tensors of
varied shapes: 0-d, empty, non-contiguous, sizes that are not multiples of the vector
width, a member over several 16 384-element chunks), bit for bit against the per-tensor
raw ops, to second order (gradgradcheck, the same tensor as real and fake, tensors
computed from each other), and for determinism (repeated calls, 1 vs 2 threads)."""
from __future__ import annotations

import pytest
import torch

from fastgan.backends import native_loader as nl
from fastgan.registry import OPS, Family
from fastgan.tools.cases import CASES
from fastgan.tools.checking import magnitude, tolerance

if nl.prerequisites() is not None:
    pytest.skip(f"the native extension cannot be built: {nl.prerequisites()}", allow_module_level=True)

from fastgan.backends.native import multi as nm  # noqa: E402

PAIR = [name for name, spec in OPS.items() if spec.family == Family.PAIR]
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
_RED = {"mean": 1, "sum": 2}


@pytest.fixture(scope="module", autouse=True)
def _built():
    nl.module()


def _make(shape, dtype, gen, strided):
    """Scores of ``shape`` (float64 draws rounded to ``dtype``); a non-contiguous view of a
    larger tensor when ``strided``."""
    if strided and len(shape) >= 1:
        base = torch.randn((*shape[:-1], 2 * shape[-1] + 1), dtype=torch.float64, generator=gen) * 3
        return base.to(dtype)[..., 1::2]
    return (torch.randn(shape, dtype=torch.float64, generator=gen) * 3).to(dtype)


def _shapes(count, gen):
    """``count`` (real shape, fake shape, strided): the first ones fixed (0-d, empty, a
    member over several chunks, odd sizes, real and fake of different shapes), the rest
    drawn from ``gen``."""
    fixed = [((), (5,), False), ((0,), (3, 0), False), ((7, 9), (40_001,), False), ((1,), (), False),
             ((4, 5, 3), (17,), True), ((33,), (2, 31), True), ((16, 102), (16, 128), False)]
    out = fixed[:count]
    while len(out) < count:
        def one():
            nd = int(torch.randint(0, 4, (), generator=gen))
            return tuple(int(v) for v in torch.randint(1, 12, (nd,), generator=gen))
        out.append((one(), one(), bool(torch.randint(0, 2, (), generator=gen))))
    return out


def _lists(name, count, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = _shapes(count, gen)
    reals = [_make(r, dtype, gen, s) for r, _, s in shapes]
    fakes = [_make(f, dtype, gen, s) for _, f, s in shapes]
    return (reals if OPS[name].is_discriminator else None), fakes


def _call(name, opts, reduction, reals, fakes):
    return nm.PAIR_LIST.run_list(OPS[name], (reals, fakes) if reals is not None else (fakes,), opts, reduction)


def _ref(name, opts, reduction, r, f):
    ref = OPS[name].reference
    return ref(r, f, **opts, reduction=reduction) if r is not None else ref(f, **opts, reduction=reduction)


@pytest.mark.parametrize("count", [1, 60])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", PAIR)
def test_against_the_reference_per_member(name, dtype, reduction, count):
    """Each discriminator's loss and the gradient of every member against the float64
    reference on the same (rounded) inputs, with the tolerances of the per-tensor tests
    (the absolute part scaled by the member's magnitude); a different upstream gradient
    per discriminator; an empty member's mean is nan."""
    case = CASES[name]
    for opts in case.options:
        reals, fakes = _lists(name, count, dtype)
        leaves = [x.detach().requires_grad_() for x in (reals or []) + fakes]
        rs, fs = (leaves[:count], leaves[count:]) if reals is not None else (None, leaves)
        out = _call(name, opts, reduction, rs, fs)
        assert out.shape == (count,) and out.dtype == dtype
        gen = torch.Generator().manual_seed(1)
        ups = torch.rand(count, dtype=torch.float64, generator=gen) + 0.5
        grads = torch.autograd.grad(out, leaves, ups.to(dtype))
        n_r = count if reals is not None else 0
        for d in range(count):
            r64 = leaves[d].detach().double().requires_grad_() if n_r else None
            f64 = leaves[n_r + d].detach().double().requires_grad_()
            want = _ref(name, opts, reduction, r64, f64)
            where = f"{name} {opts} {dtype} {reduction} member {d} of {count}"
            rtol, atol = tolerance(case, dtype, magnitude(case, [x for x in (r64, f64) if x is not None], opts,
                                                          reduction))
            torch.testing.assert_close(out[d].double(), want.detach().to(dtype).double(), rtol=rtol, atol=atol,
                                       equal_nan=True, msg=lambda m: f"{where}: {m}")
            wrt = [x for x in (r64, f64) if x is not None]
            if not want.requires_grad:
                continue
            gw = torch.autograd.grad(want * ups[d], wrt)
            got = ([grads[d]] if n_r else []) + [grads[n_r + d]]
            gmag = max((float(g.abs().nan_to_num(0, 0, 0).max()) for g in gw if g.numel()), default=0.0)
            fi = torch.finfo(dtype)
            g_atol = case.tolerances[dtype][1] * max(gmag, 1e-30) + 2 * fi.tiny * fi.eps
            for a, b, x in zip(got, gw, wrt):
                assert a.shape == x.shape and a.dtype == dtype, where
                torch.testing.assert_close(a.double(), b.to(dtype).double(), rtol=case.tolerances[dtype][0],
                                           atol=g_atol, equal_nan=True, msg=lambda m: f"{where} grad: {m}")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("name", PAIR)
def test_bit_identical_to_the_per_tensor_ops(name, dtype, reduction):
    """The list op sums each tensor in the same chunks, in the same order, as pair_fwd, and
    scales the same derivative as pair_bwd: the same bits, member by member."""
    ops = torch.ops.fastgan_native
    opts = CASES[name].options[-1]
    o = OPS[name].lower(**opts)
    kind, params = int(o.kind), o.params()
    reals, fakes = _lists(name, 60, dtype, seed=3)
    rl = reals or []
    out = ops.pair_list_fwd(rl, fakes, kind, params, _RED[reduction])
    up = (torch.rand(60, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) + 0.5).to(dtype)
    grads = ops.pair_list_bwd(rl, fakes, kind, params, _RED[reduction], up)
    for d in range(60):
        r = reals[d] if reals is not None else None
        want = ops.pair_fwd(r, fakes[d], kind, params, _RED[reduction])[0]
        assert torch.equal(out[d], want) or (want.isnan() and out[d].isnan()), (d, out[d], want)
        g = ops.pair_bwd(r, fakes[d], kind, params, _RED[reduction], [up[d]])
        if r is not None:
            assert torch.equal(grads[d], g[0]), d
        assert torch.equal(grads[len(rl) + d], g[1]), d


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", PAIR)
def test_gradgradcheck(name, reduction):
    """Second derivatives (the create_graph backward is the reference's VJP), in float64,
    through a list with a 0-d member and members of different shapes."""
    opts = CASES[name].options[-1]
    gen = torch.Generator().manual_seed(5)
    shapes = [((), (3,)), ((2, 3), (4,)), ((5,), (1, 2))]
    two = OPS[name].is_discriminator
    xs = []
    for r, f in shapes:
        if two:
            xs.append(torch.randn(r, dtype=torch.float64, generator=gen).mul(2).requires_grad_())
    for r, f in shapes:
        xs.append(torch.randn(f, dtype=torch.float64, generator=gen).mul(2).requires_grad_())
    n = len(shapes)

    def fn(*t):
        return _call(name, opts, reduction, list(t[:n]) if two else None, list(t[n:] if two else t))

    assert torch.autograd.gradcheck(fn, xs)
    assert torch.autograd.gradgradcheck(fn, xs)


def _dependent(name, build):
    """First derivatives, create_graph derivatives and a second derivative of a loss over a
    list whose members are built from one leaf by ``build(x) -> (reals, fakes)``, on the
    list op and on the reference."""
    x = torch.tensor([0.3, -1.2, 0.0, 2.5, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
    opts = CASES[name].options[-1]
    w = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)

    def native(x):
        r, f = build(x)
        return (_call(name, opts, "sum", r, f) * w[:len(f)]).sum()

    def reference(x):
        r, f = build(x)
        return sum(_ref(name, opts, "sum", r[d] if r is not None else None, f[d]) * w[d] for d in range(len(f)))

    res = []
    for fn in (native, reference):
        (g1,) = torch.autograd.grad(fn(x), x)
        (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
        g2 = torch.autograd.grad((g * g).sum(), x)[0] if g.requires_grad else None
        res.append((g1, g.detach(), g2))
    return res


@pytest.mark.parametrize("name", PAIR)
def test_same_tensor_and_tensors_computed_from_each_other(name):
    """Real and fake of one discriminator the same tensor, two views of one, one computed
    from the other, and one tensor in two discriminators: the gradients add as the
    reference's, to second order."""
    if OPS[name].is_discriminator:
        builds = [lambda x: ([x], [x]),
                  lambda x: ([x[:3], x], [x[3:], x * x]),
                  lambda x: ([x, 2 * x, x.view(2, 3)], [x.exp(), x, x.view(2, 3).t()])]
    else:
        builds = [lambda x: (None, [x, x]), lambda x: (None, [x[:2], x * x, x.view(3, 2).t()])]
    for build in builds:
        got, want = _dependent(name, build)
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-14)
        assert (got[2] is None) == (want[2] is None)
        if want[2] is not None:
            torch.testing.assert_close(got[2], want[2], rtol=1e-10, atol=1e-12)


def test_only_the_members_that_need_a_gradient():
    """Members without requires_grad get no gradient;
    the raw backward returns an empty placeholder for a tensor whose flag is off and the
    same gradient as without flags for the others."""
    name = "bce_d_loss"
    reals, fakes = _lists(name, 4, torch.float64, seed=6)
    fakes = [f.requires_grad_() for f in fakes]
    reals[1].requires_grad_()
    out = _call(name, {}, "mean", reals, fakes)
    out.sum().backward()
    assert reals[0].grad is None and reals[2].grad is None and reals[1].grad is not None
    assert all(f.grad is not None and f.grad.shape == f.shape for f in fakes)
    ops = torch.ops.fastgan_native
    o = OPS[name].lower()
    up = torch.rand(4, dtype=torch.float64)
    full = ops.pair_list_bwd(reals, fakes, int(o.kind), o.params(), 1, up)
    needs = [False, True, False, False, True, True, True, True]
    part = ops.pair_list_bwd(reals, fakes, int(o.kind), o.params(), 1, up, needs)
    for k, need in enumerate(needs):
        if need:
            assert torch.equal(part[k], full[k])
        else:
            assert part[k].numel() == 0


def _big_lists(dtype):
    """Enough elements (about 1.4 M over 12 members of uneven sizes) for the list op to run in parallel."""
    gen = torch.Generator().manual_seed(7)
    sizes = [200_003, 17, 150_001, 0, 99_999, 1, 131_072, 5, 180_000, 3, 120_000, 77_777]
    reals = [(torch.randn(n, dtype=torch.float64, generator=gen) * 3).to(dtype) for n in sizes]
    fakes = [(torch.randn(n + 7, dtype=torch.float64, generator=gen) * 3).to(dtype) for n in sizes]
    return reals, fakes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_deterministic_across_calls_and_thread_counts(dtype):
    """Fixed chunks, partials added in a fixed order: repeated calls and 1 vs 2 threads give
    the same bits, losses and gradients."""
    ops = torch.ops.fastgan_native
    reals, fakes = _big_lists(dtype)
    up = torch.linspace(0.5, 2.0, len(fakes), dtype=dtype)

    def run():
        out = []
        for name in ("bce_d_loss", "lsgan_d_loss"):
            o = OPS[name].lower(**CASES[name].options[-1])
            for red in (1, 2):
                out.append(ops.pair_list_fwd(reals, fakes, int(o.kind), o.params(), red))
                out += list(ops.pair_list_bwd(reals, fakes, int(o.kind), o.params(), red, up))
        return out

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a, b = run(), run()
        torch.set_num_threads(1)
        c = run()
    finally:
        torch.set_num_threads(before)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) or (x.isnan() == y.isnan()).all() and torch.equal(x.nan_to_num(), y.nan_to_num())
        assert torch.equal(x.nan_to_num(), z.nan_to_num()) and torch.equal(x.isnan(), z.isnan())


def _raw_cases():
    r, f = [torch.randn(5, 7), torch.randn(()), torch.randn(0)], [torch.randn(13), torch.randn(2, 3), torch.randn(4)]
    p0 = [1.0, 0.9, 1.0, 0.1]
    up = torch.rand(3)
    ops = torch.ops.fastgan_native
    # (opcheck compares outputs without equal_nan: no mean over an empty member here)
    return [(ops.pair_list_fwd, (r, f, 0, p0, 2)), (ops.pair_list_fwd, ([], f, 2, p0, 1)),
            (ops.pair_list_fwd, ([x.double() for x in r], [x.double() for x in f], 1, p0, 2)),
            (ops.pair_list_fwd, (r[:2] + [torch.randn(3, 1).t()], f, 0, p0, 1)),
            (ops.pair_list_bwd, (r, f, 0, p0, 1, up)), (ops.pair_list_bwd, ([], f, 3, p0, 2, up)),
            (ops.pair_list_bwd, (r, f, 1, p0, 2, up, [True, False, True, False, True, True]))]


def test_meta_kernels_and_opcheck():
    """The Meta kernels give the CPU kernels' shapes, dtypes and strides; opcheck passes."""
    def to_meta(a):
        if isinstance(a, torch.Tensor):
            return a.to("meta")
        if isinstance(a, list):
            return [to_meta(v) for v in a]
        return a

    for op, args in _raw_cases():
        cpu = op(*args)
        meta = op(*[to_meta(a) for a in args])
        cpu, meta = (list(cpu), list(meta)) if isinstance(cpu, (list, tuple)) else ([cpu], [meta])
        assert len(cpu) == len(meta)
        for c, m in zip(cpu, meta):
            assert (m.shape, m.dtype, m.stride()) == (c.shape, c.dtype, c.stride()), (op, args)
        result = torch.library.opcheck(op, args, raise_exception=False)
        assert all(v == "SUCCESS" for v in result.values()), (op, result)
