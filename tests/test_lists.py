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
    with pytest.raises(TypeError, match=r"fake\[1\] must be a Tensor"):
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
