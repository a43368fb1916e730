"""The public surface as a demanding user meets it (issue 22): half types past 65 504
elements through every Module and compat class, every option value a check accepts on
every backend (functional, lists, Modules), the nesting and reductions the README
promises, and errors at construction.  Registry-driven: a new op or Module is covered
by the tables it already declares (``CASES``, ``fastgan.nn.__all__``)."""
from __future__ import annotations

import math
import numbers

import numpy as np
import pytest
import torch

import fastgan
from fastgan import compat
from fastgan import functional as F
from fastgan import nn as fnn
from fastgan.registry import Family
from fastgan.tools.cases import CASES

from .conftest import runnable, usable_backends
from .helpers import as_tuple, call

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]
HALF = (torch.float16, torch.bfloat16)
BIG = 70_001  # past 65 504: a float16 sum of ~1 per element overflows, a float32 one does not


# --------------------------------------------------------------------------- half types, every Module

def _loss_modules():
    """Every Module of fastgan.nn that wraps a registry op (its ``fn``), with that op's name."""
    out = {}
    for name in fnn.__all__:
        cls = getattr(fnn, name)
        fn = getattr(cls, "fn", None)
        if fn is not None and fn.__name__ in CASES:
            out[name] = (cls, fn.__name__)
    return out


LOSS_MODULES = _loss_modules()
# the Modules without a registry op of their own, each with how to build and call it
OTHER_MODULES = {
    "DLoss": lambda x, y: fnn.DLoss("bce")(x, y),
    "GLoss": lambda x, y: fnn.GLoss("lsgan")(y),
    "BCEWithLogitsLoss": lambda x, y: fnn.BCEWithLogitsLoss()(x, torch.sigmoid(y.float()).to(y.dtype)),
    "FeatureMatchingLoss": lambda x, y: fnn.FeatureMatchingLoss()([[x]], [[y]]),
    "GradientPenalty": lambda x, y: fnn.GradientPenalty()(lambda z: (z * 1e-3).sum(), x.view(4, -1),
                                                        y.view(4, -1)),
    "R1Penalty": lambda x, y: fnn.R1Penalty()(lambda z: (z * 1e-3).sum(), x.view(4, -1)),
    "R2Penalty": lambda x, y: fnn.R2Penalty()(lambda z: (z * 1e-3).sum(), y.view(4, -1)),
    "DRAGANPenalty": lambda x, y: fnn.DRAGANPenalty()(lambda z: (z * 1e-3).sum(), x.view(4, -1),
                                                    noise=torch.zeros_like(x.view(4, -1))),
    "DriftPenalty": lambda x, y: fnn.DriftPenalty()(x),
    "ApproxR1Penalty": lambda x, y: fnn.ApproxR1Penalty()(lambda z: z * 1e-2, x.view(4, -1),
                                                        noise=y.view(4, -1)),
    "LeCamRegularizer": lambda x, y: fnn.LeCamRegularizer(decay=0.5)(x, y),
    "PathLengthRegularizer": lambda x, y: _path_length(x, y),
}


def _path_length(x, y):
    """StyleGAN2's regulariser on a 4×1×125×140 "image" linear in 4×17 500 latents: the
    per-sample sum of 17 500 squared half-type gradients, from the same noise each time."""
    w = x.view(4, -1).detach().requires_grad_()
    img = (w * y.view(4, -1).detach()).view(4, 1, 125, 140)
    torch.manual_seed(0)
    return fnn.PathLengthRegularizer()(img, w)
COMPAT = {
    "Pix2PixGANLoss": [lambda x: compat.Pix2PixGANLoss(m)(x, r) for m in ("lsgan", "vanilla", "wgangp")
                       for r in (True, False)],
    "BasicSRGANLoss": [lambda x, m=m, r=r, d=d: compat.BasicSRGANLoss(m)(x, r, is_disc=d)
                       for m in ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")
                       for r, d in ((True, True), (False, True), (True, False))],
    "SPADEGANLoss": [lambda x, m=m, r=r, d=d: compat.SPADEGANLoss(m)([x, [x]], r, for_discriminator=d)
                     for m in ("ls", "original", "w", "hinge") for r, d in ((True, True), (False, True), (True, False))],
    "hifigan": [lambda x: compat.hifigan_discriminator_loss([x], [x])[0],
                lambda x: compat.hifigan_generator_loss([x])[0],
                lambda x: compat.hifigan_feature_loss([[x]], [[x * 0.5]])],
}


def test_every_module_and_compat_callable_is_in_the_half_type_table():
    covered = set(LOSS_MODULES) | set(OTHER_MODULES)
    assert covered == set(fnn.__all__), f"Modules without a half-type case: {set(fnn.__all__) - covered}"
    names = {n for n in compat.__all__}
    have = {"Pix2PixGANLoss", "BasicSRGANLoss", "SPADEGANLoss", "hifigan_discriminator_loss",
            "hifigan_generator_loss", "hifigan_feature_loss"}
    assert names == have, f"compat callables without a half-type case: {names ^ have}"


def _big_pair(dtype, gen):
    x = torch.randn(BIG, generator=gen, dtype=torch.float64)
    y = torch.randn(BIG, generator=gen, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def _module_inputs(op, dtype, gen):
    spec = CASES[op]
    if spec.spec.family in (Family.PENALTY, Family.DIVERGENCE):
        # per-sample / per-distribution values of a few units (a float16 result must be
        # representable), BIG of them: their float16 sum is past 65 504
        shapes = [(BIG, 3)] * len(spec.args)
    else:
        shapes = [(BIG,)] * len(spec.args)
    return spec.make_inputs(shapes, dtype, "cpu", gen)


def _close_to_float32(half_out, f32_out, what):
    for h, f in zip(as_tuple(half_out), as_tuple(f32_out)):
        assert torch.isfinite(h).all(), f"{what}: {h} (float32 gives {f})"
        torch.testing.assert_close(h.float(), f.float(), rtol=2e-2, atol=2e-2, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(LOSS_MODULES))
def test_modules_accumulate_half_types_in_float32(name, dtype):
    """The mean of > 65 504 half-type terms is finite and equals float32's (a float16
    sum of them is inf): every Module wrapping a registry op, on the default backend."""
    cls, op = LOSS_MODULES[name]
    xs = _module_inputs(op, dtype, torch.Generator().manual_seed(0))
    module = cls()
    _close_to_float32(module(*xs), module(*[x.float() for x in xs]), f"{name} {dtype}")


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(OTHER_MODULES))
def test_other_modules_accumulate_half_types_in_float32(name, dtype):
    x, y = _big_pair(dtype, torch.Generator().manual_seed(1))
    x, y = x[:BIG - BIG % 4], y[:BIG - BIG % 4]
    fn = OTHER_MODULES[name]
    _close_to_float32(fn(x, y), fn(x.float(), y.float()), f"{name} {dtype}")


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(COMPAT))
def test_compat_accumulates_half_types_in_float32(name, dtype):
    """Issue 22, item 2: ``Pix2PixGANLoss("vanilla")`` of a 64×1×40×40 float16 map was inf."""
    x = torch.zeros(64, 1, 40, 40, dtype=dtype)
    y, _ = _big_pair(dtype, torch.Generator().manual_seed(2))
    for i, fn in enumerate(COMPAT[name]):
        _close_to_float32(fn(x), fn(x.float()), f"{name}[{i}] {dtype} zeros")
        _close_to_float32(fn(y), fn(y.float()), f"{name}[{i}] {dtype} randn")


def test_pix2pix_float16_equals_torch():
    x = torch.zeros(64, 1, 40, 40, dtype=torch.float16)
    want = torch.nn.functional.binary_cross_entropy_with_logits(x, torch.ones_like(x))
    assert compat.Pix2PixGANLoss("vanilla")(x, True) == want


# --------------------------------------------------------------------------- every accepted option value

def _variants(value):
    """The values of other types a user may pass for ``value``: its int or float form and
    numpy scalars (what the check accepts decides), and a bool, which no numeric option
    accepts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return []
    out = [float(value), np.float64(value), np.float32(value)]
    if float(value).is_integer():
        out += [int(value), np.int64(int(value))]
    return out + [True]


def _option_cases():
    for name, spec in CASES.items():
        for oi, opts in enumerate(spec.options):
            for key, value in opts.items():
                for vi, v in enumerate(_variants(value)):
                    yield pytest.param(name, oi, key, vi, id=f"{name}-{oi}-{key}-{type(v).__name__}{vi}")


OPTION_CASES = list(_option_cases())


def _outcome(fn):
    try:
        return "ok", fn()
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("name,oi,key,vi", OPTION_CASES)
def test_every_accepted_option_value_works_on_every_backend(name, oi, key, vi):
    """Issue 22, item 5: ``feature_matching_loss(p=2.0)`` passed the check and failed in the
    native binding.  Every value of every option, in every type a check may accept, gives
    the canonical value's result on every backend, through lists and the Module; or the
    same argument error everywhere (a bool for a number), never a crash further in."""
    spec = CASES[name]
    opts = {**spec.fixed, **spec.options[oi]}
    v = _variants(spec.options[oi][key])[vi]
    varied = {**opts, key: v}
    gen = torch.Generator().manual_seed(3)
    xs = spec.make_inputs([(6, 5)] * len(spec.args), torch.float64, "cpu", gen)
    # what the canonical Python value gives (np.float32(0.9) is 0.9 rounded to float32)
    canonical = {**opts, key: v if isinstance(v, bool) else type(spec.options[oi][key])(v)}
    outcomes = {}
    for backend in BACKENDS:
        with fastgan.use_backend(backend):
            outcomes[backend] = _outcome(lambda: as_tuple(call(spec, xs, varied, "mean")))
            if spec.is_discriminator and spec.spec.family is Family.PAIR:
                outcomes[backend + " lists"] = _outcome(
                    lambda: (getattr(F, name)([xs[0], xs[0][:3]], [xs[1], xs[1][:2]], **varied),))
    kinds = {k: o[0] for k, o in outcomes.items()}
    assert len(set(kinds.values())) == 1, f"{name} {key}={v!r}: backends disagree: {outcomes}"
    kind = next(iter(kinds.values()))
    if isinstance(v, bool):
        assert kind == "TypeError" and key in next(iter(outcomes.values()))[1], outcomes
        return
    if kind != "ok":  # refused alike everywhere: a clear argument error naming the option
        assert key in next(iter(outcomes.values()))[1], outcomes
        assert not isinstance(spec.options[oi][key], float) or not isinstance(v, numbers.Integral), \
            f"{name}: {key}={v!r} refused, though a float option takes an int: {outcomes}"
        return
    want = as_tuple(spec.reference(*xs, **canonical, reduction="mean"))
    for k, (_, got) in outcomes.items():
        if k.endswith("lists"):
            members = ((xs[0], xs[1]), (xs[0][:3], xs[1][:2]))
            per = [as_tuple(spec.reference(*m, **canonical, reduction="mean"))[0] for m in members]
            torch.testing.assert_close(got[0], per[0] + per[1], rtol=1e-10, atol=1e-12)
        else:
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("name,oi,key,vi", OPTION_CASES)
def test_every_accepted_option_value_works_in_the_module(name, oi, key, vi):
    spec = CASES[name]
    mods = [cls for cls, op in LOSS_MODULES.values() if op == name]
    if name == "feature_matching_loss":
        mods = [fnn.FeatureMatchingLoss]
    if not mods:
        pytest.skip(f"{name} has no Module of its own")
    opts = {**spec.fixed, **spec.options[oi]}
    v = _variants(spec.options[oi][key])[vi]
    xs = spec.make_inputs([(6, 5)] * len(spec.args), torch.float64, "cpu", torch.Generator().manual_seed(4))
    if isinstance(v, bool):
        with pytest.raises(TypeError, match=key):
            mods[0](**{**opts, key: v})
        return
    try:
        F_ok = _outcome(lambda: call(spec, xs, {**opts, key: v}, "mean"))[0] == "ok"
        module = mods[0](**{**opts, key: v})
    except (TypeError, ValueError) as exc:
        assert not F_ok, f"the Module refuses {key}={v!r} that the function takes: {exc}"
        return
    assert F_ok, f"the Module takes {key}={v!r} that the function refuses"
    got = module(*xs)
    want = mods[0](**{**opts, key: type(spec.options[oi][key])(v)})(*xs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# --------------------------------------------------------------------------- nesting, reductions, construction

def test_feature_matching_none_nests_as_the_input():
    """Issue 22, item 6: a flat list gave ``[[t1], [t2]]``."""
    a, b, c = torch.randn(3), torch.randn(2, 4), torch.randn(5)
    flat = F.feature_matching_loss([a, b], [a * 2, b * 2], reduction="none")
    assert isinstance(flat, list) and len(flat) == 2 and all(isinstance(t, torch.Tensor) for t in flat)
    assert flat[1].shape == b.shape
    nested = F.feature_matching_loss([[a, b], [c]], [[a, b], [c]], reduction="none")
    assert [len(x) for x in nested] == [2, 1] and isinstance(nested[1][0], torch.Tensor)
    mixed = F.feature_matching_loss([a, [c]], [a, [c]], reduction="none")
    assert isinstance(mixed[0], torch.Tensor) and isinstance(mixed[1], list)
    assert isinstance(F.feature_matching_loss(a, a, reduction="none"), torch.Tensor)
    ref = fastgan.reference.feature_matching_loss([a, b], [a * 2, b * 2], reduction="none")
    assert [t.shape for t in ref] == [t.shape for t in flat]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["kl_div_logits", "js_div_logits"])
def test_divergence_mean_is_per_distribution(op, backend):
    """Issue 22, item 7, decided: "mean" averages over the distributions (every position
    but ``dim``), which is torch's "batchmean" for 2-D logits with dim=-1 only."""
    gen = torch.Generator().manual_seed(5)
    p, q = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64), torch.randn(3, 5, 4, generator=gen,
                                                                              dtype=torch.float64)
    fn = getattr(F, op)
    with fastgan.use_backend(backend):
        per = fn(p, q, reduction="none")
        assert per.shape == (3, 5)
        torch.testing.assert_close(fn(p, q), per.sum() / 15)
        torch.testing.assert_close(fn(p, q, dim=1), fn(p, q, dim=1, reduction="none").mean())
        if op == "kl_div_logits":
            lp, lq = torch.log_softmax(p, -1), torch.log_softmax(q, -1)
            torch.testing.assert_close(fn(p, q, reduction="sum"), torch.nn.functional.kl_div(
                lq, lp, reduction="sum", log_target=True))
            p2, q2 = p[0], q[0]
            torch.testing.assert_close(fn(p2, q2), torch.nn.functional.kl_div(
                torch.log_softmax(q2, -1), torch.log_softmax(p2, -1), reduction="batchmean", log_target=True))


def test_kind_modules_check_options_at_construction():
    """Issue 22, item 8."""
    with pytest.raises(TypeError, match="margn"):
        fnn.DLoss("hinge", margn=1.0)
    with pytest.raises(TypeError, match="margin"):
        fnn.DLoss("hinge", margin="x")
    with pytest.raises(ValueError, match="c must be finite"):
        fnn.GLoss("lsgan", c=math.inf)
    with pytest.raises(TypeError, match="saturating"):
        fnn.GLoss("bce", saturating=1)
    assert repr(fnn.DLoss("hinge", margin=2.0)) == "DLoss('hinge', margin=2.0, reduction='mean')"


def test_modules_show_their_options_and_take_per_discriminator():
    """Issue 22, item 16."""
    assert repr(fnn.GaussianKL(reduction="sum")) == "GaussianKL(reduction='sum')"
    assert "p=2" in repr(fnn.FeatureMatchingLoss(p=2)) and "weight=2.0" in repr(fnn.FeatureMatchingLoss(weight=2.0))
    assert repr(fnn.DriftPenalty(eps=0.5)) == "DriftPenalty(eps=0.5)"
    r, f = [torch.randn(3), torch.randn(4)], [torch.randn(5), torch.randn(2)]
    total, per = fnn.HingeDLoss(return_per_discriminator=True)(r, f)
    want, want_per = F.hinge_d_loss(r, f, return_per_discriminator=True)
    assert total == want and len(per) == 2
    m = fnn.HingeDLoss(margin=0.5)
    m.margin = 2.0  # the options are the attributes
    assert m(r[0], f[0]) == F.hinge_d_loss(r[0], f[0], margin=2.0)


def test_list_dtype_error_names_the_index():
    """Issue 22, item 13."""
    with pytest.raises(TypeError, match=r"real\[1\] must be a floating-point"):
        F.hinge_d_loss([torch.randn(3), torch.ones(3, dtype=torch.int64)], [torch.randn(3)] * 2)


def test_spade_shapes_and_its_kink():
    """Issue 22, items 14 and 15: a list gives shape (1,) as SPADE's; at x = 1 exactly the
    documented difference (relu'(0) = 0, SPADE's torch.min splits the tie)."""
    crit = compat.SPADEGANLoss("hinge")
    x = torch.randn(2, 1, 4, 4)
    assert crit([x, [x]], True).shape == (1,) and crit(x, True).shape == ()
    one = torch.ones(4, requires_grad=True)
    (g,) = torch.autograd.grad(crit(one, True), one)
    assert g.tolist() == [0.0] * 4
    assert "half the subgradient" in compat.__doc__


def test_lazy_adam_hparams_checks_its_ranges():
    from fastgan.lazy import lazy_adam_hparams
    with pytest.raises(ValueError, match="lr"):
        lazy_adam_hparams(-1e-3, (0.0, 0.99), 16)
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        lazy_adam_hparams(1e-3, (1.5, 0.99), 16)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        lazy_adam_hparams(1e-3, (0.0, 1.0), 16)
