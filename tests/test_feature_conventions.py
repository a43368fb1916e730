"""``feature_matching_loss``'s ``over_maps`` / ``over_discriminators`` / ``relative`` (issue 25,
item 5) against each codebase's convention written out here in plain torch, on every
backend, float32 and float64, values and gradients, ``reduction="none"``, the Module,
argument errors and ``torch.compile(fullgraph=True)``.

The conventions, as the codebases write them (each transcribed below, loops and all):

- HiFi-GAN / BigVGAN (``NVIDIA/BigVGAN`` ``loss.py`` ``feature_loss``): ``2 · Σ_d Σ_m mean|r − g|``;
- DAC (``descriptinc/descript-audio-codec`` ``dac/nn/loss.py`` ``GANLoss.generator_loss``, the score
  being the last entry of each discriminator's list; λ = 2 from its ``conf/base.yml``):
  ``2 · Σ_d Σ_{m < last} l1_loss(g, r.detach())``;
- vocos (``gemelo-ai/vocos`` ``vocos/loss.py`` ``FeatureMatchingLoss``, divided in
  ``vocos/experiment.py`` by ``len(fmap_rs)``): ``Σ_d Σ_m mean|r − g| / D``;
- audiocraft (``facebookresearch/audiocraft`` ``audiocraft/adversarial/losses.py``,
  ``FeatureMatchingLoss(normalize=True)`` inside ``AdversarialLoss(normalize=True)``):
  ``Σ_d (Σ_m L1(g, r) / M_d) / D``;
- EnCodec's normalised loss (Défossez et al. 2022, eq. 2; the ``feat_scale`` audiocraft computes
  and never applies): ``Σ_d (Σ_m L1(g, r) / mean|r| / M_d) / D``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import fastgan
from fastgan import functional as F
from fastgan import nn as fnn

from .conftest import runnable, usable_backends

BACKENDS = [b for b in usable_backends() if runnable(b, "cpu")]
DTYPES = [torch.float32, torch.float64]


def _feats(dtype, seed=0, counts=(3, 2, 4)):
    """Per discriminator a list of maps of assorted shapes (an audio discriminator's conv
    stack), the real maps and the fake ones."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, 4, 7), (2, 8, 3), (2, 1, 5, 3), (2, 6), (2, 2, 9)]
    real, fake = [], []
    for d, n in enumerate(counts):
        real.append([(torch.randn(shapes[(d + m) % 5], generator=gen, dtype=torch.float64) * 2).to(dtype)
                     for m in range(n)])
        fake.append([(torch.randn(shapes[(d + m) % 5], generator=gen, dtype=torch.float64) * 2).to(dtype)
                     for m in range(n)])
    return real, fake


def _leaves(feats):
    return [[x.detach().clone().requires_grad_() for x in d] for d in feats]


# --------------------------------------------------------------------------- the codebases, transcribed

def bigvgan_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl - gl))
    return loss * 2


def dac_feature_loss(d_fake, d_real):  # lists per discriminator: maps, then the score last
    loss_feature = 0
    for i in range(len(d_fake)):
        for j in range(len(d_fake[i]) - 1):
            loss_feature += TF.l1_loss(d_fake[i][j], d_real[i][j].detach())
    return 2.0 * loss_feature  # lambdas["adv/feat_loss"] = 2.0


def vocos_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl - gl))
    return loss / len(fmap_r)


def audiocraft_feature_loss(fmap_real_all, fmap_fake_all, normalized=False):
    # audiocraft starts from float32 zeros (a float64 loss would be cast to float32): the data dtype here
    feat = torch.zeros((), dtype=fmap_fake_all[0][0].dtype)
    for fmap_fake, fmap_real in zip(fmap_fake_all, fmap_real_all):
        feat_loss = torch.zeros((), dtype=fmap_fake[0].dtype)
        n_fmaps = 0
        for feat_fake, feat_real in zip(fmap_fake, fmap_real):
            n_fmaps += 1
            term = torch.nn.L1Loss()(feat_fake, feat_real)
            if normalized:
                term = term / torch.mean(torch.abs(feat_real))
            feat_loss = feat_loss + term
        feat = feat + feat_loss / n_fmaps
    return feat / len(fmap_fake_all)


CONVENTIONS = {
    # name: (transcription(real, fake), fastgan options, whether the real maps keep their graph)
    "hifigan_bigvgan": (bigvgan_feature_loss, {"weight": 2.0, "detach_real": False}, True),
    "vocos": (vocos_feature_loss, {"over_discriminators": "mean", "detach_real": False}, True),
    "audiocraft": (audiocraft_feature_loss, {"over_maps": "mean", "over_discriminators": "mean",
                                             "detach_real": False}, True),
    "encodec_relative": (lambda r, g: audiocraft_feature_loss(r, g, normalized=True),
                         {"over_maps": "mean", "over_discriminators": "mean", "relative": True,
                          "detach_real": False}, True),
}


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_conventions_values_and_gradients(name, backend, dtype):
    theirs_fn, options, _ = CONVENTIONS[name]
    real, fake = _feats(dtype, seed=len(name))
    r1, g1, r2, g2 = _leaves(real), _leaves(fake), _leaves(real), _leaves(fake)
    with fastgan.use_backend(backend):
        ours = F.feature_matching_loss(r1, g1, **options)
        ours_grads = torch.autograd.grad(ours, [x for d in r1 + g1 for x in d])
    theirs = theirs_fn(r2, g2)
    theirs_grads = torch.autograd.grad(theirs, [x for d in r2 + g2 for x in d])
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, theirs.to(dtype), **_tol(dtype))
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dac_convention(backend, dtype):
    """DAC's discriminators return per discriminator its maps then its score (last): the
    maps without the score, real detached (the default), weight 2."""
    real, fake = _feats(dtype, seed=11, counts=(4, 3, 5, 2))
    g1, g2 = _leaves(fake), _leaves(fake)
    with fastgan.use_backend(backend):
        ours = F.feature_matching_loss([d[:-1] for d in real], [d[:-1] for d in g1], weight=2.0)
        ours_grads = torch.autograd.grad(ours, [x for d in g1 for x in d[:-1]])
    theirs = dac_feature_loss(g2, real)
    theirs_grads = torch.autograd.grad(theirs, [x for d in g2 for x in d[:-1]])
    torch.testing.assert_close(ours, theirs, **_tol(dtype))
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b, **_tol(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_options_with_sum_and_none(backend, reduction):
    """"sum" sums each map; "none" gives each map's terms times the same factors as its
    reduced term, so the "mean" loss is the sum of each map's mean of them."""
    real, fake = _feats(torch.float64, seed=5)
    opts = {"over_maps": "mean", "over_discriminators": "mean", "weight": 3.0}
    for relative in (False, True):
        with fastgan.use_backend(backend):
            out = F.feature_matching_loss(real, fake, reduction=reduction, relative=relative, **opts)
            mean = F.feature_matching_loss(real, fake, relative=relative, **opts)
        want_maps = []
        for rs, gs in zip(real, fake):
            for r, g in zip(rs, gs):
                t = (g - r).abs() * 3.0 / len(rs) / len(real)
                want_maps.append(t / r.abs().mean() if relative else t)
        if reduction == "sum":
            torch.testing.assert_close(out, sum(t.sum() for t in want_maps), rtol=1e-12, atol=1e-12)
        else:
            flat = [t for d in out for t in d]
            assert [len(d) for d in out] == [len(d) for d in fake]
            for a, b in zip(flat, want_maps):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(sum(t.mean() for t in flat), mean, rtol=1e-12, atol=1e-12)


def test_defaults_keep_todays_values():
    real, fake = _feats(torch.float64, seed=3)
    want = sum((g - r).abs().mean() for rs, gs in zip(real, fake) for r, g in zip(rs, gs))
    torch.testing.assert_close(F.feature_matching_loss(real, fake), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(F.feature_matching_loss(real, fake, over_maps="sum", over_discriminators="sum",
                                                       relative=False), want, rtol=0, atol=0)


def test_flat_list_is_one_map_per_discriminator():
    """A flat list is one map per discriminator (as its "none" nesting says): over_maps
    changes nothing, over_discriminators divides by the number of maps."""
    a, b, c, d = torch.randn(3), torch.randn(4), torch.randn(3), torch.randn(4)
    want = (a - c).abs().mean() + (b - d).abs().mean()
    torch.testing.assert_close(F.feature_matching_loss([a, b], [c, d], over_maps="mean"), want)
    torch.testing.assert_close(F.feature_matching_loss([a, b], [c, d], over_discriminators="mean"), want / 2)
    torch.testing.assert_close(F.feature_matching_loss([[a, b]], [[c, d]], over_maps="mean"), want / 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_relative_half_types_accumulate_in_float32(dtype):
    real, fake = _feats(torch.float32, seed=9)
    opts = {"over_maps": "mean", "over_discriminators": "mean", "relative": True}
    half = F.feature_matching_loss([[x.to(dtype) for x in d] for d in real],
                                   [[x.to(dtype) for x in d] for d in fake], **opts)
    assert half.dtype == dtype
    want = F.feature_matching_loss([[x.to(dtype).float() for x in d] for d in real],
                                   [[x.to(dtype).float() for x in d] for d in fake], **opts)
    torch.testing.assert_close(half.float(), want, rtol=1e-2, atol=1e-2)


def test_module_takes_the_options():
    real, fake = _feats(torch.float64, seed=4)
    opts = {"over_maps": "mean", "over_discriminators": "mean", "relative": True, "weight": 2.0}
    mod = fnn.FeatureMatchingLoss(**opts)
    assert "over_maps='mean'" in repr(mod) and "relative=True" in repr(mod)
    torch.testing.assert_close(mod(real, fake), F.feature_matching_loss(real, fake, **opts), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs,error,name", [
    ({"over_maps": "avg"}, ValueError, "over_maps"), ({"over_maps": None}, ValueError, "over_maps"),
    ({"over_discriminators": "max"}, ValueError, "over_discriminators"),
    ({"relative": 1}, TypeError, "relative"), ({"relative": "yes"}, TypeError, "relative"),
])
def test_bad_options_name_the_argument(kwargs, error, name):
    real, fake = _feats(torch.float64)
    with pytest.raises(error, match=name):
        F.feature_matching_loss(real, fake, **kwargs)
    with pytest.raises(error, match=name):
        fnn.FeatureMatchingLoss(**kwargs)


def test_mean_over_an_empty_discriminator_is_refused():
    a = torch.randn(3)
    with pytest.raises(ValueError, match="over_maps"):
        F.feature_matching_loss([[a], []], [[a], []], over_maps="mean")
    torch.testing.assert_close(F.feature_matching_loss([[a], []], [[a * 2], []], over_discriminators="mean"),
                               a.abs().mean() / 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_options_compile_fullgraph(backend):
    """The new options under ``torch.compile(fullgraph=True)``: no graph break (so no host
    synchronisation), values and gradients as eager."""
    real, fake = _feats(torch.float32, seed=6)

    def step(r, g):
        a = F.feature_matching_loss(r, g, over_maps="mean", over_discriminators="mean")
        b = F.feature_matching_loss(r, g, over_maps="mean", over_discriminators="mean", relative=True)
        c = F.feature_matching_loss(r, g, over_discriminators="mean", weight=2.0, reduction="sum")
        return a + b + c

    torch._dynamo.reset()
    with fastgan.use_backend(backend):
        g1, g2 = _leaves(fake), _leaves(fake)
        out = torch.compile(step, fullgraph=True, backend="aot_eager")(real, g1)
        want = step(real, g2)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(out, [x for d in g1 for x in d]),
                    torch.autograd.grad(want, [x for d in g2 for x in d])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
