"""Losses over lists of discriminators and feature matching: the sum over discriminators of
each one's reduced loss, against the reference applied per member (float64, every backend),
lists of 1 and of 60 tensors, empty and non-contiguous members, bad input naming the index."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan import functional as F
from fastgan import reference
from fastgan.registry import OPS, Family

from .conftest import runnable, usable_backends

PAIR_OPS = sorted(n for n, s in OPS.items() if s.family is Family.PAIR)
BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]


def _members(spec, count, gen, empty=False, strided=False):
    """``count`` discriminators' outputs of assorted shapes (a PatchGAN map, a vector, ...)."""
    shapes = [(2, 1, 5, 5), (7,), (3, 4), (1,), (2, 1, 9)]
    lists = []
    for _ in spec.args:
        xs = []
        for i in range(count):
            shape = (0,) if empty and i == 1 else shapes[i % len(shapes)]
            x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
            if strided and x.dim() == 2:
                x = torch.randn(shape[1], shape[0], generator=gen, dtype=torch.float64).t()
            xs.append(x)
        lists.append(xs)
    return lists


def _leaves(lists):
    return [[x.detach().clone().requires_grad_() for x in xs] for xs in lists]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", PAIR_OPS)
@pytest.mark.parametrize("count,empty,strided", [(1, False, False), (5, True, True), (60, False, False)])
def test_list_loss_is_the_sum_of_member_losses(name, backend, count, empty, strided):
    spec = OPS[name]
    gen = torch.Generator().manual_seed(count)
    lists = _members(spec, count, gen, empty, strided)
    ours_in, ref_in = _leaves(lists), _leaves(lists)
    with fastgan.use_backend(backend):
        total, per = getattr(F, name)(*ours_in, return_per_discriminator=True)
    want_per = [getattr(reference, name)(*members) for members in zip(*ref_in)]
    want = sum(want_per[1:], want_per[0])
    assert len(per) == count
    if empty:  # a member with no scores: its mean is nan, as torch's; the sum is nan too
        assert total.isnan() and want.isnan()
        return
    torch.testing.assert_close(total, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(per, want_per):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(total, [x for xs in ours_in for x in xs])
    exp = torch.autograd.grad(want, [x for xs in ref_in for x in xs])
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_list_reductions_and_kind_dispatch(reduction):
    gen = torch.Generator().manual_seed(0)
    real = [torch.randn(3, generator=gen), torch.randn(2, 2, generator=gen)]
    fake = [torch.randn(4, generator=gen), torch.randn(1, generator=gen)]
    out = F.d_loss("hinge", real, fake, reduction=reduction, margin=0.5)
    if reduction == "none":
        assert len(out) == 2 and all(isinstance(o, tuple) and len(o) == 2 for o in out)
        torch.testing.assert_close(out[1][0], reference.hinge_d_loss(real[1], fake[1], margin=0.5,
                                                                     reduction="none")[0])
    else:
        torch.testing.assert_close(out, sum(reference.hinge_d_loss(r, f, margin=0.5, reduction="sum")
                                            for r, f in zip(real, fake)))
    g = F.g_loss("bce", tuple(fake), reduction=reduction)
    assert (len(g) == 2) if reduction == "none" else g.dim() == 0


def test_list_errors_name_the_index():
    x = [torch.randn(3), torch.randn(2)]
    with pytest.raises(ValueError, match="real has 2 tensors and fake has 1"):
        F.hinge_d_loss(x, x[:1])
    with pytest.raises(TypeError, match=r"fake\[1\] must be a torch.Tensor"):
        F.hinge_d_loss(x, [torch.randn(2), 3.0])
    with pytest.raises(TypeError, match="fake must be a list"):
        F.hinge_d_loss(x, torch.randn(3))
    with pytest.raises(ValueError, match="empty"):
        F.bce_g_loss([])
    with pytest.raises(TypeError, match="return_per_discriminator"):
        F.bce_g_loss(x, return_per_discriminator="yes")


def _fm_maps(gen, shapes):
    return [[torch.randn(s, generator=gen, dtype=torch.float64) for s in group] for group in shapes]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("detach_real", [True, False])
def test_feature_matching_against_plain_torch(p, detach_real, backend):
    gen = torch.Generator().manual_seed(p)
    shapes = [[(2, 4, 30), (2, 8, 15), (2, 1, 7)], [(2, 4, 3, 3), (2, 16)]]
    real, fake = _fm_maps(gen, shapes), _fm_maps(gen, shapes)
    r1, f1 = _leaves(real), _leaves(fake)
    r2, f2 = _leaves(real), _leaves(fake)
    f1[0][1].data[0, 0] = r1[0][1].data[0, 0]  # one element exactly equal: |·|'(0) = 0
    f2[0][1].data[0, 0] = r2[0][1].data[0, 0]
    with fastgan.use_backend(backend):
        ours = F.feature_matching_loss(r1, f1, weight=2.0, p=p, detach_real=detach_real)
    theirs = 2.0 * sum(((a.detach() if detach_real else a) - b).abs().pow(p).mean()
                       for ra, fa in zip(r2, f2) for a, b in zip(ra, fa))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    leaves1 = [x for xs in r1 + f1 for x in xs]
    leaves2 = [x for xs in r2 + f2 for x in xs]
    g1 = torch.autograd.grad(ours, leaves1, allow_unused=True)
    g2 = torch.autograd.grad(theirs, leaves2, allow_unused=True)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert (g1[0] is None) == detach_real  # the real maps get no gradient by default


def test_feature_matching_shapes_and_errors():
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(F.feature_matching_loss(a, b), (a - b).abs().mean())
    torch.testing.assert_close(F.feature_matching_loss([a, a], [b, b], reduction="sum"), 2 * (a - b).abs().sum())
    nested = F.feature_matching_loss([[a]], [[b]], reduction="none")
    torch.testing.assert_close(nested[0][0], (b - a).abs())
    with pytest.raises(ValueError, match="discriminator 0, map 1"):
        F.feature_matching_loss([[a, a]], [[b, torch.randn(3)]])
    with pytest.raises(ValueError, match="real_feats has 2 discriminators"):
        F.feature_matching_loss([[a], [a]], [[b]])
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        F.feature_matching_loss(a, b, p=3)
    with pytest.raises(TypeError, match=r"fake_feats\[0\]\[0\]"):
        F.feature_matching_loss([[a]], [[b.long()]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [1, 2])
def test_feature_matching_gradgradcheck(p, backend):
    gen = torch.Generator().manual_seed(5)
    r = [torch.randn(3, 2, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)]
    g = [(x + 0.5).requires_grad_() for x in r]  # no element at the kink of |·|
    rr = [x.clone().requires_grad_() for x in r]

    def fn(*xs):
        with fastgan.use_backend(backend):
            return F.feature_matching_loss(list(xs[:2]), list(xs[2:]), p=p, detach_real=False)
    assert torch.autograd.gradcheck(fn, (*rr, *g))
    assert torch.autograd.gradgradcheck(fn, (*rr, *g))


def test_feature_matching_half_and_empty_map():
    a = torch.randn(2, 8, dtype=torch.float16)
    b = torch.randn(2, 8, dtype=torch.float16, requires_grad=True)
    out = F.feature_matching_loss(a, b)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), (a.float() - b.detach().float()).abs().mean(), rtol=2e-3, atol=2e-3)
    assert F.feature_matching_loss([a, a[:0]], [b, b[:0]]).isnan()  # a map with no elements: mean of nothing


# --------------------------------------------------------------------------- the list path, every way users call it

def _mixed(count, gen, dtype, device="cpu"):
    """``count`` real and fake score tensors of assorted shapes (a PatchGAN map, a 0-d score,
    a vector longer than a kernel block, a transposed view), in ``dtype``."""
    shapes = [(2, 1, 7, 7), (), (1500,), (3, 5), (1,)]
    out = []
    for _ in range(2):
        xs = []
        for i in range(count):
            x = torch.randn(shapes[i % len(shapes)], generator=gen, dtype=torch.float64) * 3
            if x.dim() == 2:
                x = x.t()  # non-contiguous
            xs.append(x.to(device=device, dtype=dtype))
        out.append(xs)
    return out


LOW = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (1.6e-2, 1.6e-2), torch.float16: (2e-3, 2e-3)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", PAIR_OPS)
def test_list_loss_low_precision(name, dtype, backend):
    """Half types and float32 through the list path, against the float64 reference on the
    same rounded inputs: the total, each discriminator's loss and every member's gradient."""
    spec = OPS[name]
    gen = torch.Generator().manual_seed(7)
    lists = _mixed(7, gen, dtype)[:len(spec.args)]
    ours = _leaves(lists)
    refs = [[x.detach().double().requires_grad_() for x in xs] for xs in lists]
    with fastgan.use_backend(backend):
        total, per = getattr(F, name)(*ours, return_per_discriminator=True)
    want_per = [getattr(reference, name)(*members) for members in zip(*refs)]
    want = sum(want_per[1:], want_per[0])
    rtol, atol = LOW[dtype]
    scale = max(1.0, float(sum(w.detach().abs() for w in want_per)))
    assert total.dtype == dtype and all(p.dtype == dtype for p in per)
    torch.testing.assert_close(total.double(), want.detach(), rtol=rtol, atol=atol * scale)
    for a, b in zip(per, want_per):
        torch.testing.assert_close(a.double(), b.detach(), rtol=rtol, atol=atol * max(1.0, float(b.detach().abs())))
    up = torch.tensor(1.7, dtype=torch.float64)
    got = torch.autograd.grad(total, [x for xs in ours for x in xs], up.to(dtype))
    exp = torch.autograd.grad(want, [x for xs in refs for x in xs], up)
    for a, b in zip(got, exp):
        assert a.dtype == dtype and a.shape == b.shape
        torch.testing.assert_close(a.double(), b, rtol=rtol, atol=atol * max(1e-30, float(b.abs().max())))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["bce_d_loss", "hinge_d_loss", "lsgan_g_loss", "wasserstein_d_loss"])
def test_list_loss_gradcheck_and_gradgradcheck(name, backend):
    """First and second derivatives of the list losses (per-discriminator losses as the
    outputs, so every row of the Jacobian is checked), float64."""
    spec = OPS[name]
    gen = torch.Generator().manual_seed(11)
    shapes = [(3, 2), (4,), ()]
    xs = [(torch.randn(s, generator=gen, dtype=torch.float64) * 2 + 0.3).requires_grad_()
          for _ in spec.args for s in shapes]
    k = len(shapes)

    def fn(*ts):
        lists = [list(ts[i * k:(i + 1) * k]) for i in range(len(spec.args))]
        with fastgan.use_backend(backend):
            total, per = getattr(F, name)(*lists, return_per_discriminator=True)
        return (total, *per)
    assert torch.autograd.gradcheck(fn, xs)
    assert torch.autograd.gradgradcheck(fn, xs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_members_that_depend_on_each_other(backend):
    """The same tensor as every discriminator's real and fake, and fakes computed from the
    reals: each path's gradient is counted once, as with the per-member reference."""
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(6, generator=gen, dtype=torch.float64)

    def loss(b, fn):
        x = b * 1.5
        reals = [x, x[:4], x.view(2, 3)]
        fakes = [x, (x[:4] * 2).tanh(), x.view(3, 2).t()]
        return fn(reals, fakes)

    a = base.clone().requires_grad_()
    with fastgan.use_backend(backend):
        got = torch.autograd.grad(loss(a, lambda r, f: F.bce_d_loss(r, f, real_label=0.9)), a)[0]
    b = base.clone().requires_grad_()
    want = torch.autograd.grad(loss(b, lambda r, f: sum(reference.bce_d_loss(x, y, real_label=0.9)
                                                         for x, y in zip(r, f))), b)[0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_loss_is_deterministic(backend):
    gen = torch.Generator().manual_seed(4)
    reals, fakes = _mixed(9, gen, torch.float32)
    reals[2] = torch.randn(3 * 32 * 1024 + 17, generator=gen)  # above one program: partial sums
    runs = []
    for _ in range(2):
        leaves = _leaves([reals, fakes])
        with fastgan.use_backend(backend):
            total = F.lsgan_d_loss(*leaves)
        runs.append((total.detach(), torch.autograd.grad(total, [x for xs in leaves for x in xs])))
    assert torch.equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        assert torch.equal(a, b)


def test_list_mixed_devices_name_the_index():
    x = [torch.randn(3), torch.randn(2)]
    y = [torch.randn(3), torch.randn(2, device="meta")]
    with pytest.raises(ValueError, match=r"fake\[1\] is on meta but real\[0\] is on cpu"):
        F.hinge_d_loss(x, y)


def test_list_mixed_dtypes_promote_per_discriminator():
    """Members of different dtypes: each discriminator's loss in its promoted dtype, as the
    per-member call gives (the multi-tensor op needs one dtype; this runs per member)."""
    r = [torch.randn(4), torch.randn(3, dtype=torch.float64)]
    f = [torch.randn(5, dtype=torch.bfloat16), torch.randn(2)]
    total, per = F.bce_d_loss(r, f, return_per_discriminator=True)
    assert [p.dtype for p in per] == [torch.float32, torch.float64] and total.dtype == torch.float64
    torch.testing.assert_close(per[1], reference.bce_d_loss(r[1], f[1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_losses_and_feature_matching_compile_fullgraph(backend):
    """A HiFi-GAN-style loss step (list D loss, list G loss, feature matching) under
    torch.compile(fullgraph=True): values and gradients as eager."""
    gen = torch.Generator().manual_seed(8)
    reals = [torch.randn(2, 9, generator=gen), torch.randn(2, 1, 4, 4, generator=gen)]
    fakes = [torch.randn(2, 9, generator=gen), torch.randn(2, 1, 4, 4, generator=gen)]
    fr = [[torch.randn(2, 3, 5, generator=gen), torch.randn(2, 4, generator=gen)], [torch.randn(7, generator=gen)]]
    fg = [[torch.randn(2, 3, 5, generator=gen), torch.randn(2, 4, generator=gen)], [torch.randn(7, generator=gen)]]

    def step(reals, fakes, fr, fg):
        d, per = F.lsgan_d_loss(reals, fakes, return_per_discriminator=True)
        g = F.lsgan_g_loss(fakes, reduction="sum")
        return d + per[1] + g + F.feature_matching_loss(fr, fg, weight=2.0)

    def leaves():
        return ([x.clone().requires_grad_() for x in reals], [x.clone().requires_grad_() for x in fakes],
                [[x.clone() for x in grp] for grp in fr], [[x.clone().requires_grad_() for x in grp] for grp in fg])

    torch._dynamo.reset()
    with fastgan.use_backend(backend):
        a = leaves()
        out = torch.compile(step, fullgraph=True, backend="aot_eager")(*a)
        b = leaves()
        want = step(*b)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    flat = [x for grp in (a[0], a[1], *a[3]) for x in grp]
    flat_b = [x for grp in (b[0], b[1], *b[3]) for x in grp]
    for x, y in zip(torch.autograd.grad(out, flat), torch.autograd.grad(want, flat_b)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("native", "triton")])
def test_fused_backends_run_one_multi_tensor_op(backend, monkeypatch):
    """On a fused backend a reduced list loss is one call of its list op (one forward and
    one backward over every tensor), not one call per discriminator; "none", mixed dtypes
    and the reference go per member, through the family's per-call op."""
    from fastgan.backends import BACKENDS as MODULES
    from fastgan.registry import Family
    list_op, one_op = MODULES[backend].LIST_OPS[Family.PAIR], MODULES[backend].OPS[Family.PAIR]
    calls, singles = [], []
    orig_list, orig_one = list_op.run_list, one_op.run
    monkeypatch.setattr(list_op, "run_list", lambda spec, *a: (calls.append(spec.name), orig_list(spec, *a))[1])
    monkeypatch.setattr(one_op, "run", lambda spec, *a: (singles.append(spec.name), orig_one(spec, *a))[1])
    xs = [torch.randn(3), torch.randn(2, 2), torch.randn(())]
    with fastgan.use_backend(backend):
        F.hinge_d_loss(xs, xs)
        F.bce_g_loss(xs, reduction="sum", return_per_discriminator=True)
        assert calls == ["hinge_d_loss", "bce_g_loss"] and singles == []
        F.lsgan_g_loss(xs, reduction="none")
        F.lsgan_g_loss([xs[0], xs[1].double()])
    assert calls == ["hinge_d_loss", "bce_g_loss"] and singles == ["lsgan_g_loss"] * 5


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("native", "triton")])
def test_cuda_graph_capture_goes_per_member(backend, monkeypatch):
    """While a CUDA graph is captured the list ops (the Triton one copies a per-call table
    that a replay would read from a freed host buffer; the native one is not verified
    there) are not used: each discriminator is one call."""
    from fastgan.backends import BACKENDS as MODULES, dispatch
    from fastgan.registry import Family
    calls = []
    monkeypatch.setattr(dispatch, "mode_of", lambda x: "capture")
    monkeypatch.setattr(MODULES[backend].LIST_OPS[Family.PAIR], "run_list", lambda *a: calls.append(a))
    xs = [torch.randn(3), torch.randn(2, 2)]
    with fastgan.use_backend(backend):
        total = F.hinge_d_loss(xs, xs)
    assert calls == []
    torch.testing.assert_close(total, sum(reference.hinge_d_loss(x, x) for x in xs))
