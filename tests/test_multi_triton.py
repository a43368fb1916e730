"""The multi-tensor Triton kernels (kernels/multi.py): a pair loss over lists of
discriminators (``triton.multi.PAIR_LIST``) and feature matching, each one
multi-tensor launch forward (+ one sum) and one backward, whatever the number of tensors.

Against the reference applied per member (float64 tight, float32, float16 and bfloat16
with the per-dtype tolerances of ``fastgan.tools.cases``): every pair loss and its
option sets, lists of 1 and 60 tensors of assorted shapes (0-d, empty, sizes not
multiples of BLOCK, several programs per tensor, non-contiguous members, real and
fake of different shapes), "mean" and "sum", the gradient of every member, double
backward, the same tensor as real and fake, members that need no gradient, odd
addresses (the ALIGNED=0 specialisation), determinism, and the launch counts.
"""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan import functional as F
from fastgan import reference
from fastgan.registry import OPS, Family
from fastgan.tools.cases import CASES
from fastgan.tools.checking import magnitude, tolerance

from .conftest import runnable

pytest.importorskip("triton")
if not runnable("triton", "cpu"):  # pragma: no cover - a GPU process runs tests/test_gpu_run.py
    pytest.skip("triton does not run on CPU tensors in this process", allow_module_level=True)

from fastgan.backends.triton import multi as tm  # noqa: E402
from fastgan.kernels import losses as kl  # noqa: E402
from fastgan.kernels import multi as km  # noqa: E402
from fastgan.kernels import penalty as kp  # noqa: E402

PAIR_OPS = sorted(n for n, s in OPS.items() if s.family is Family.PAIR)
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
BLOCK = km.BLOCK

# assorted member shapes: a PatchGAN map, a vector, 0-d, empty, sizes around BLOCK, one
# with several programs
SHAPES = [(2, 1, 5, 5), (7,), (), (3, 4), (BLOCK + 1,), (2, 3, 7), (1,), (2 * BLOCK + 3,), (4, 1, 3), (BLOCK,),
          (5, 2), (BLOCK - 1,)]
BIG = (33 * BLOCK + 5,)  # a member with many programs (once per list: the interpreter is slow)


def _tensor(shape, dtype, gen, strided=False):
    if strided and len(shape) == 2:  # a transposed view
        return (torch.randn(shape[1], shape[0], generator=gen, dtype=torch.float64) * 2).to(dtype).t()
    if strided and len(shape) == 1 and shape[0] > 1:  # every other element
        return (torch.randn(2 * shape[0], generator=gen, dtype=torch.float64) * 2).to(dtype)[::2]
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).to(dtype)


def _members(count, dtype, gen, two_sided, empty=False, strided=False, big=False):
    """``(reals or None, fakes)``: ``count`` discriminators, real and fake of different shapes
    (``big``: the fake of discriminator 5 has many programs)."""
    shapes = SHAPES
    fakes = [_tensor((0,) if empty and i % 7 == 3 else BIG if big and i == 5 else shapes[i % len(shapes)], dtype,
                     gen, strided and i % 3 == 0) for i in range(count)]
    if not two_sided:
        return None, fakes
    reals = [_tensor(shapes[(i + 4) % len(shapes)], dtype, gen, strided and i % 3 == 1) for i in range(count)]
    return reals, fakes


def _leaf(x, dtype=None):
    return x.detach().to(dtype or x.dtype).requires_grad_()


def _inputs(reals, fakes):
    return (list(reals) if reals is not None else []) + list(fakes)


def _split(name, xs):
    n = len(xs) // 2 if OPS[name].two_sided else len(xs)
    return (xs[:n], xs[n:]) if OPS[name].two_sided else (None, xs)


def _ours(name, opts, reduction, reals, fakes):
    return tm.PAIR_LIST.run_list(OPS[name], (reals, fakes) if reals is not None else (fakes,), opts, reduction)


def _reference(name, opts, reduction, reals, fakes):
    members = zip(reals, fakes) if reals is not None else zip(fakes)
    return torch.stack([OPS[name].reference(*m, **opts, reduction=reduction) for m in members])


def _check(name, opts, reduction, reals, fakes, gen):
    """Values and every member's gradient against the float64 reference per member."""
    spec = CASES[name]
    dtype = fakes[0].dtype
    xs = [_leaf(x) for x in _inputs(reals, fakes)]
    refs = [_leaf(x, torch.float64) for x in xs]
    out = _ours(name, opts, reduction, *_split(name, xs))
    r_refs, f_refs = _split(name, refs)
    want = _reference(name, opts, reduction, r_refs, f_refs)
    assert out.dtype == dtype and out.shape == (len(fakes),)
    members = list(zip(r_refs, f_refs)) if r_refs is not None else [(f,) for f in f_refs]
    for d, m in enumerate(members):
        rtol, atol = tolerance(spec, dtype, magnitude(spec, list(m), opts, reduction))
        a, b = out[d].detach().double(), want[d].detach().to(dtype).double()
        assert torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True), (name, reduction, dtype, d, a, b)
    up = torch.randn(len(fakes), generator=gen, dtype=torch.float64) + 1.5
    got = torch.autograd.grad(out, xs, up.to(dtype))
    exp = torch.autograd.grad(want, refs, up)
    gmag = max((float(b.abs().nan_to_num(0, 0, 0).max()) for b in exp if b.numel()), default=0.0)
    rtol, atol_rel = spec.tolerances[dtype]
    fi = torch.finfo(dtype)
    for i, (a, b, x) in enumerate(zip(got, exp, xs)):
        assert a.shape == x.shape and a.dtype == dtype, (i, a.shape, x.shape, a.dtype)
        ok = torch.isclose(a.double(), b.to(dtype).double(), rtol=rtol, atol=atol_rel * max(gmag, 1e-30)
                           + 2 * fi.tiny * fi.eps, equal_nan=True)
        assert bool(ok.all()), (name, reduction, dtype, i, tuple(x.shape), (a.double() - b).abs().max())
    return out


# --------------------------------------------------------------------------- pair losses over lists

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", PAIR_OPS)
def test_pair_list_float64_every_option(name, reduction):
    """60 members, strided ones included, every option set of the op: float64, tight."""
    gen = torch.Generator().manual_seed(len(name))
    reals, fakes = _members(60, torch.float64, gen, OPS[name].two_sided, strided=True, big=True)
    for opts in CASES[name].options:
        _check(name, opts, reduction, reals, fakes, gen)


# 60 members in float32 (and float64 above); the half types 1 and 12 (the interpreter is slow)
DTYPE_COUNTS = [(dt, c) for dt in DTYPES[1:] for c in (1, 12, 60) if c < 60 or dt == torch.float32]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype,count", DTYPE_COUNTS, ids=lambda v: str(v))
@pytest.mark.parametrize("name", PAIR_OPS)
def test_pair_list_dtypes(name, dtype, reduction, count):
    """float32, float16, bfloat16 against the float64 reference, per-dtype tolerances."""
    gen = torch.Generator().manual_seed(count * 31 + len(name))
    reals, fakes = _members(count, dtype, gen, OPS[name].two_sided, strided=True)
    _check(name, CASES[name].options[-1], reduction, reals, fakes, gen)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["hinge_d_loss", "bce_g_loss"])
def test_pair_list_empty_members(name, reduction):
    """An empty member: its discriminator's mean is nan (torch's mean of nothing), the
    others are unaffected; with "sum" it adds 0.  Its gradient is an empty tensor."""
    gen = torch.Generator().manual_seed(3)
    reals, fakes = _members(12, torch.float64, gen, OPS[name].two_sided, empty=True)
    out = _check(name, {}, reduction, reals, fakes, gen)
    empty = [d for d, f in enumerate(fakes) if f.numel() == 0]
    assert empty and all(out[d].isnan() == (reduction == "mean") for d in empty)
    assert not out[[d for d in range(12) if d not in empty]].isnan().any()
    # every member empty
    xs = [x.reshape(-1)[:0] for x in _inputs(reals, fakes)]
    out = _ours(name, {}, reduction, *_split(name, xs))
    assert (out.isnan() if reduction == "mean" else out == 0).all()


@pytest.mark.parametrize("name", PAIR_OPS)
def test_pair_list_gradgradcheck(name):
    """Double backward (the reference's VJP with a graph) and the fused first backward."""
    gen = torch.Generator().manual_seed(11)
    fakes = [_tensor(s, torch.float64, gen) for s in [(2,), (), (1, 3)]]
    reals = [_tensor(s, torch.float64, gen) for s in [(3,), (2, 2), ()]] if OPS[name].two_sided else None
    xs = [_leaf(x) for x in _inputs(reals, fakes)]
    opts = CASES[name].options[-1]
    for reduction in ("mean", "sum"):
        def fn(*a):
            return _ours(name, opts, reduction, *_split(name, list(a)))
        assert torch.autograd.gradcheck(fn, xs, fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, xs, fast_mode=True)


@pytest.mark.parametrize("name", ["hinge_d_loss", "bce_d_loss", "lsgan_d_loss", "wasserstein_d_loss"])
def test_pair_list_same_tensor_and_dependent_inputs(name):
    """real and fake the same tensor, or computed from each other: autograd adds the paths."""
    gen = torch.Generator().manual_seed(5)
    xs = [_leaf(_tensor(s, torch.float64, gen)) for s in [(3, 4), (BLOCK + 2,), ()]]
    opts = CASES[name].options[-1]
    for reals, fakes in ((xs, xs), (xs, [2 * x + 0.25 for x in xs]), ([x.t() if x.dim() == 2 else x for x in xs],
                                                                        xs[::-1])):
        out = _ours(name, opts, "mean", reals, fakes)
        want = _reference(name, opts, "mean", reals, fakes)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
        up = torch.randn(3, generator=gen, dtype=torch.float64)
        for a, b in zip(torch.autograd.grad(out, xs, up, retain_graph=True), torch.autograd.grad(want, xs, up)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_pair_list_only_needed_gradients():
    """Members that need no gradient get none (and are not in the backward's table)."""
    gen = torch.Generator().manual_seed(6)
    reals, fakes = _members(5, torch.float64, gen, True)
    xs = [_leaf(x) if i % 2 else x for i, x in enumerate(_inputs(reals, fakes))]
    out = _ours("bce_d_loss", {}, "mean", xs[:5], xs[5:])
    out.sum().backward()
    ref_xs = [_leaf(x) for x in xs]
    exp = torch.autograd.grad(_reference("bce_d_loss", {}, "mean", ref_xs[:5], ref_xs[5:]).sum(), ref_xs)
    for i, x in enumerate(xs):
        if i % 2:
            torch.testing.assert_close(x.grad, exp[i], rtol=1e-12, atol=1e-12)
        else:
            assert x.grad is None


def test_pair_list_deterministic():
    """Two calls: bit-identical losses and gradients (partials summed in a fixed order)."""
    gen = torch.Generator().manual_seed(7)
    reals, fakes = _members(20, torch.float32, gen, True)
    runs = []
    for _ in range(2):
        xs = [_leaf(x) for x in _inputs(reals, fakes)]
        out = _ours("lsgan_d_loss", {"a": -1.0, "b": 1.0}, "mean", xs[:20], xs[20:])
        runs.append((out.detach(), torch.autograd.grad(out.sum(), xs)))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


# --------------------------------------------------------------------------- launches and alignment

@pytest.fixture
def launches(monkeypatch):
    """Every kernel launch of kernels/ as ``(kernel name, grid, constexpr keywords)``."""
    log = []
    with fastgan.use_backend("triton"):  # resolved (and cached) before the kernels are wrapped
        fastgan.backends.resolve(torch.device("cpu"))

    class Counted:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            launch = self.kernel[grid]

            def run(*args, **kw):
                log.append((self.name, grid, kw))
                return launch(*args, **kw)
            return run

    for mod in (kl, km, kp):
        for name, v in list(vars(mod).items()):
            if name.endswith("_kernel") and getattr(getattr(v, "fn", None), "__module__", None) == mod.__name__:
                monkeypatch.setattr(mod, name, Counted(name, v))
    return log


@pytest.mark.parametrize("count", [1, 8, 60])
def test_pair_list_launch_count(launches, count):
    """Forward: one multi-tensor launch and one sum; backward: one launch; for any N."""
    gen = torch.Generator().manual_seed(count)
    reals, fakes = _members(count, torch.float32, gen, True, strided=True)
    xs = [_leaf(x) for x in _inputs(reals, fakes)]
    out = _ours("hinge_d_loss", {}, "mean", xs[:count], xs[count:])
    assert [name for name, _, _ in launches] == ["multi_pair_fwd_kernel", "multi_sum_kernel"]
    assert launches[1][1] == (count,)
    launches.clear()
    out.sum().backward()
    assert [name for name, _, _ in launches] == ["multi_pair_bwd_kernel"]


def test_alignment_flag():
    """ALIGNED=1 only when every address is a multiple of 16 bytes; a member at an odd
    address (a view with a storage offset) runs the ALIGNED=0 kernel, correctly."""
    assert km.aligned([0, 16, 4096]) == 1 and km.aligned([16, 20]) == 0
    gen = torch.Generator().manual_seed(8)
    base = torch.randn(3 * BLOCK + 7, generator=gen)
    for offset, flag in ((0, 1), (1, 0), (4, 1)):
        x = _leaf(base[offset:offset + 2 * BLOCK + 3])
        assert (x.data_ptr() % 16 == 0) == bool(flag)
        seen = []
        orig = km.multi_pair_fwd_kernel

        class Spy:
            def __getitem__(self, grid):
                def run(*a, **kw):
                    seen.append(kw["ALIGNED"])
                    return orig[grid](*a, **kw)
                return run
        km.multi_pair_fwd_kernel = Spy()
        try:
            out = _ours("bce_g_loss", {}, "sum", None, [x])
        finally:
            km.multi_pair_fwd_kernel = orig
        assert seen == [flag]
        torch.testing.assert_close(out[0], reference.bce_g_loss(x, reduction="sum"), rtol=2e-5, atol=2e-5)


def _odd(n, gen, dtype=torch.float32):
    """A contiguous view of ``n`` elements at an address not 16-byte aligned."""
    x = _tensor((n + 1,), dtype, gen)[1:]
    assert x.data_ptr() % 16 != 0
    return x


def test_mixed_alignment_in_one_call():
    """ALIGNED=0 (one member at an odd address) with aligned members beside it: each program
    checks its own entry's addresses (the aligned ones take the 128-bit path on a GPU), and
    every loss and gradient is the reference's, for the pair kernels and feature matching."""
    gen = torch.Generator().manual_seed(21)
    f32 = torch.float32
    fakes = [_tensor((BLOCK + 5,), f32, gen), _odd(2 * BLOCK + 3, gen), _tensor((3 * BLOCK + 1,), f32, gen)]
    reals = [_odd(BLOCK - 1, gen), _tensor((7,), f32, gen), _tensor((2 * BLOCK,), f32, gen)]
    assert km.aligned([x.data_ptr() for x in reals + fakes]) == 0
    for reduction in ("mean", "sum"):
        _check("lsgan_d_loss", {}, reduction, reals, fakes, gen)
        _check("bce_g_loss", {}, reduction, None, fakes, gen)
    real = [[_tensor((2 * BLOCK + 3,), f32, gen), _odd(BLOCK + 1, gen)], [_odd(3 * BLOCK - 2, gen)]]
    fake = [[_tensor((2 * BLOCK + 3,), f32, gen), _tensor((BLOCK + 1,), f32, gen)], [_odd(3 * BLOCK - 2, gen)]]
    for detach_real in (True, False):
        _fm_check(real, fake, 1, "mean", detach_real, f32)


# --------------------------------------------------------------------------- feature matching

def _maps(gen, shapes, dtype, strided=False):
    return [[_tensor(s, dtype, gen, strided) for s in group] for group in shapes]


FM_SHAPES = [[(2, 4, 30), (2, 8, 15), (), (2, 1, 7)], [(BLOCK + 3,), (3, 5), (0,)], [(33 * BLOCK + 1,), (7,)]]


def _fm_check(real, fake, p, reduction, detach_real, dtype):
    r1, f1 = [[_leaf(x) for x in g] for g in real], [[_leaf(x) for x in g] for g in fake]
    r2 = [[_leaf(x, torch.float64) for x in g] for g in real]
    f2 = [[_leaf(x, torch.float64) for x in g] for g in fake]
    with fastgan.use_backend("triton"):
        ours = F.feature_matching_loss(r1, f1, p=p, reduction=reduction, weight=2.0, detach_real=detach_real)
    flat_r2 = [x if not detach_real else x.detach() for g in r2 for x in g]
    theirs = 2.0 * reference.feature_matching_maps(flat_r2, [x for g in f2 for x in g], p=p, reduction=reduction)
    rtol, atol = CASES["lsgan_g_loss"].tolerances[dtype]
    mag = float(sum((a - b).detach().abs().pow(p).sum() / (max(a.numel(), 1) if reduction == "mean" else 1)
                    for a, b in zip(flat_r2, [x for g in f2 for x in g])).nan_to_num(0))
    assert ours.dtype == dtype
    assert torch.isclose(ours.double(), theirs.to(dtype).double(), rtol=rtol, atol=atol * max(1.0, mag),
                         equal_nan=True), (ours, theirs)
    leaves1 = [x for g in r1 + f1 for x in g]
    leaves2 = [x for g in r2 + f2 for x in g]
    g1 = torch.autograd.grad(ours, leaves1, allow_unused=True)
    g2 = torch.autograd.grad(theirs, leaves2, allow_unused=True)
    gmag = max((float(b.abs().max()) for b in g2 if b is not None and b.numel()), default=0.0)
    for i, (a, b) in enumerate(zip(g1, g2)):
        assert (a is None) == (b is None), i
        if a is not None:
            assert a.dtype == dtype and a.shape == b.shape
            ok = torch.isclose(a.double(), b.to(dtype).double(), rtol=rtol, atol=atol * max(gmag, 1e-30))
            assert bool(ok.all()), (i, (a.double() - b).abs().max())
    return ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("p", [1, 2])
def test_feature_matching_multi(p, reduction, dtype):
    gen = torch.Generator().manual_seed(p * 10 + len(reduction))
    shapes = [[s for s in g if s != (0,)] for g in FM_SHAPES]  # the empty map: its own test
    real, fake = _maps(gen, shapes, dtype), _maps(gen, shapes, dtype, strided=True)
    fake[0][1].data[0, 0] = real[0][1][0, 0]  # one element exactly equal: |·|'(0) = 0
    for detach_real in (True, False):
        _fm_check(real, fake, p, reduction, detach_real, dtype)


def test_feature_matching_multi_empty_map_and_same_tensor():
    gen = torch.Generator().manual_seed(12)
    real, fake = _maps(gen, FM_SHAPES, torch.float64), _maps(gen, FM_SHAPES, torch.float64)
    assert _fm_check(real, fake, 1, "mean", False, torch.float64).isnan()  # mean of an empty map
    _fm_check(real, fake, 2, "sum", False, torch.float64)
    x = _leaf(_tensor((BLOCK + 5,), torch.float64, gen))
    with fastgan.use_backend("triton"):
        out = F.feature_matching_loss([x, x], [x, 2 * x], p=2, detach_real=False)
    want = reference.feature_matching_maps([x, x], [x, 2 * x], p=2, reduction="mean")
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(out, x)[0], torch.autograd.grad(want, x)[0], rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_feature_matching_multi_gradgradcheck(p):
    gen = torch.Generator().manual_seed(13)
    r = [_tensor(s, torch.float64, gen) for s in [(3, 2), (4,), ()]]
    g = [(x + 0.5).requires_grad_() for x in r]  # no element at the kink of |·|
    rr = [x.clone().requires_grad_() for x in r]

    def fn(*xs):
        with fastgan.use_backend("triton"):
            return F.feature_matching_loss(list(xs[:3]), list(xs[3:]), p=p, detach_real=False)
    assert torch.autograd.gradcheck(fn, (*rr, *g))
    assert torch.autograd.gradgradcheck(fn, (*rr, *g))


@pytest.mark.parametrize("maps", [1, 5, 54])
def test_feature_matching_launch_count(launches, maps):
    """One forward launch over every map (+ one sum) and one backward launch, for any
    number of maps (HiFi-GAN: 54)."""
    gen = torch.Generator().manual_seed(maps)
    shapes = [SHAPES[i % len(SHAPES)] for i in range(maps)]
    real = [_tensor(s, torch.float32, gen) for s in shapes]
    fake = [_leaf(_tensor(s, torch.float32, gen)) for s in shapes]
    with fastgan.use_backend("triton"):
        out = F.feature_matching_loss(real, fake, weight=2.0)
    assert [name for name, _, _ in launches] == ["multi_fm_fwd_kernel", "sum_partials_kernel"]
    launches.clear()
    out.backward()
    assert [name for name, _, _ in launches] == ["multi_fm_bwd_kernel"]
    want = 2.0 * reference.feature_matching_maps(real, [f.detach() for f in fake], p=1, reduction="mean")
    torch.testing.assert_close(out, want, rtol=2e-5, atol=2e-5)


def test_feature_matching_deterministic():
    gen = torch.Generator().manual_seed(14)
    real, fake = _maps(gen, FM_SHAPES[:1] + FM_SHAPES[2:], torch.float32), \
        _maps(gen, FM_SHAPES[:1] + FM_SHAPES[2:], torch.float32)
    runs = []
    for _ in range(2):
        f = [[_leaf(x) for x in g] for g in fake]
        with fastgan.use_backend("triton"):
            out = F.feature_matching_loss(real, f)
        runs.append((out.detach(), torch.autograd.grad(out, [x for g in f for x in g])))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_plan():
    """Each entry at least one program, big ones several, at most MAX_PROGRAMS + entries."""
    iters, firsts = km.plan([0, 1, BLOCK, BLOCK + 1, 5 * BLOCK])
    assert iters == 1 and firsts == [0, 1, 2, 3, 5, 10]
    sizes = [2 ** 24, 3, 2 ** 20 + 1]
    for cap in (km.MAX_PROGRAMS, km.BWD_MAX_PROGRAMS):
        iters, firsts = km.plan(sizes, cap)
        assert firsts[-1] <= cap + len(sizes) and iters > 1
        for n, a, b in zip(sizes, firsts, firsts[1:]):
            assert (b - a) * iters * BLOCK >= n and (b - a - 1) * iters * BLOCK < max(n, 1)
