"""fastgan.nn (a Module per functional) and fastgan.compat (the GANLoss classes people copy):
values and gradients against fastgan.F and against plain torch compositions written
here from each project's documented convention."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as tF

import fastgan
from fastgan import compat
from fastgan import functional as F
from fastgan import nn as fnn

MODULES = {
    "bce_d_loss": (fnn.BCEDLoss, {"real_label": 0.9}), "bce_g_loss": (fnn.BCEGLoss, {"saturating": True}),
    "hinge_d_loss": (fnn.HingeDLoss, {"margin": 0.5}), "hinge_g_loss": (fnn.HingeGLoss, {}),
    "lsgan_d_loss": (fnn.LSGANDLoss, {"a": -1.0}), "lsgan_g_loss": (fnn.LSGANGLoss, {"c": 0.0}),
    "wasserstein_d_loss": (fnn.WassersteinDLoss, {}), "wasserstein_g_loss": (fnn.WassersteinGLoss, {}),
    "ragan_d_loss": (fnn.RaGANDLoss, {}), "ragan_g_loss": (fnn.RaGANGLoss, {}),
    "rpgan_d_loss": (fnn.RpGANDLoss, {}), "rpgan_g_loss": (fnn.RpGANGLoss, {}),
    "gaussian_kl": (fnn.GaussianKL, {"reduction": "sum"}), "kl_div_logits": (fnn.KLDivLogits, {"dim": 0}),
    "js_div_logits": (fnn.JSDivLogits, {}), "grad_norm_penalty": (fnn.GradNormPenalty, {"one_sided": True}),
    "binary_cross_entropy_with_logits": (fnn.BCEWithLogitsLoss, {}),
}
LISTS = {"feature_matching_loss": fnn.FeatureMatchingLoss}
CRITIC_PENALTIES = {"gradient_penalty": fnn.GradientPenalty, "r1_penalty": fnn.R1Penalty,
                    "r2_penalty": fnn.R2Penalty, "dragan_penalty": fnn.DRAGANPenalty,
                    "drift_penalty": fnn.DriftPenalty, "approx_r1_penalty": fnn.ApproxR1Penalty}
# functionals whose Module keeps state between calls (tests/test_recipes.py checks them)
STATEFUL = {"lecam_penalty": fnn.LeCamRegularizer}
MODULE_ONLY = {"PathLengthRegularizer"}  # StyleGAN2's regulariser exists only as a Module (its pl_mean)
# dispatchers (DLoss/GLoss), an in-place utility, and VQGAN's adaptive weight (a weight, not a loss)
NOT_LOSSES = {"d_loss", "g_loss", "clip_weights_", "adaptive_weight"}


def test_every_functional_has_a_module():
    have = set(MODULES) | set(CRITIC_PENALTIES) | set(LISTS) | set(STATEFUL) | NOT_LOSSES
    assert set(F.__all__) == have, f"functional without a Module in fastgan.nn: {set(F.__all__) - have}"
    assert set(fnn.__all__) == {c.__name__ for c, _ in MODULES.values()} | {
        c.__name__ for c in CRITIC_PENALTIES.values()} | {c.__name__ for c in LISTS.values()} | {
        c.__name__ for c in STATEFUL.values()} | MODULE_ONLY | {"DLoss", "GLoss"}


def _inputs(name, gen):
    if name == "binary_cross_entropy_with_logits":
        return [torch.randn(6, 3, generator=gen, dtype=torch.float64), torch.rand(6, 3, generator=gen,
                                                                                   dtype=torch.float64)]
    spec = fastgan.OPS[name]
    shapes = [(7,), (5,)] if spec.is_discriminator else [(4, 3)] * len(spec.args)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_equals_functional(name):
    cls, opts = MODULES[name]
    gen = torch.Generator().manual_seed(1)
    xs = _inputs(name, gen)
    a = [x.clone().requires_grad_() for x in xs]
    b = [x.clone().requires_grad_() for x in xs]
    got = cls(**opts)(*a)
    want = getattr(F, name)(*b, **opts)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for ga, gb in zip(torch.autograd.grad(got, a, allow_unused=True), torch.autograd.grad(want, b, allow_unused=True)):
        if ga is not None or gb is not None:
            torch.testing.assert_close(ga, gb, rtol=0, atol=0)
    assert repr(cls(**opts))  # extra_repr shows the options


def test_kind_modules_and_bad_options():
    x, y = torch.randn(5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    assert fnn.DLoss("hinge", margin=0.5)(x, y) == F.hinge_d_loss(x, y, margin=0.5)
    assert fnn.GLoss("lsgan", c=0.0)(y) == F.lsgan_g_loss(y, c=0.0)
    with pytest.raises(ValueError, match="kind"):
        fnn.DLoss("nope")
    with pytest.raises(ValueError, match="reduction"):
        fnn.HingeDLoss(reduction="avg")
    with pytest.raises(TypeError, match="margin"):
        fnn.HingeDLoss(margin="1")


def test_bce_with_logits_module_matches_torch_module():
    gen = torch.Generator().manual_seed(2)
    x, t = torch.randn(4, 3, generator=gen), torch.rand(4, 3, generator=gen)
    w, p = torch.rand(3, generator=gen), torch.rand(3, generator=gen) * 3
    ours = fnn.BCEWithLogitsLoss(weight=w, pos_weight=p, reduction="sum")
    theirs = torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=p, reduction="sum")
    torch.testing.assert_close(ours(x, t), theirs(x, t))
    assert set(dict(ours.named_buffers())) == set(dict(theirs.named_buffers())) == {"weight", "pos_weight"}


def test_penalty_modules_equal_functionals():
    critic = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen,
                                                                                     dtype=torch.float64)
    alpha = torch.rand(5, generator=gen, dtype=torch.float64)
    assert fnn.GradientPenalty(one_sided=True)(critic, real, fake, alpha) == \
        F.gradient_penalty(critic, real, fake, one_sided=True, alpha=alpha)
    assert fnn.R1Penalty(gamma=2.0)(critic, real) == F.r1_penalty(critic, real, gamma=2.0)
    assert fnn.R2Penalty(gamma=2.0)(critic, fake) == F.r2_penalty(critic, fake, gamma=2.0)
    noise = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    assert fnn.DRAGANPenalty(c=0.3)(critic, real, alpha, noise=noise) == \
        F.dragan_penalty(critic, real, c=0.3, alpha=alpha, noise=noise)
    assert fnn.DriftPenalty(eps=0.1)(real) == F.drift_penalty(real, eps=0.1)
    noise = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    assert fnn.ApproxR1Penalty(sigma=0.2)(critic, real, noise=noise) == \
        F.approx_r1_penalty(critic, real, sigma=0.2, noise=noise)


# --------------------------------------------------------------------------- compat: plain torch conventions

def _pix2pix(mode, pred, is_real, real_label=1.0, fake_label=0.0):
    target = torch.full_like(pred, real_label if is_real else fake_label)
    if mode == "lsgan":
        return torch.nn.MSELoss()(pred, target)
    if mode == "vanilla":
        return torch.nn.BCEWithLogitsLoss()(pred, target)
    return -pred.mean() if is_real else pred.mean()


def _basicsr(gan_type, x, is_real, is_disc, loss_weight, real_val=1.0, fake_val=0.0):
    target = torch.full_like(x, real_val if is_real else fake_val)
    if gan_type == "vanilla":
        loss = tF.binary_cross_entropy_with_logits(x, target)
    elif gan_type == "lsgan":
        loss = tF.mse_loss(x, target)
    elif gan_type == "wgan":
        loss = -x.mean() if is_real else x.mean()
    elif gan_type == "wgan_softplus":
        loss = tF.softplus(-x).mean() if is_real else tF.softplus(x).mean()
    elif is_disc:
        loss = torch.relu(1 - (x if is_real else -x)).mean()
    else:
        loss = -x.mean()
    return loss if is_disc else loss * loss_weight


def _spade_one(mode, x, is_real, for_d):
    if mode == "original":
        return tF.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if is_real else 0.0))
    if mode == "ls":
        return tF.mse_loss(x, torch.full_like(x, 1.0 if is_real else 0.0))
    if mode == "w":
        return -x.mean() if is_real else x.mean()
    if for_d:
        return -torch.mean(torch.min(x - 1, torch.zeros_like(x))) if is_real \
            else -torch.mean(torch.min(-x - 1, torch.zeros_like(x)))
    return -torch.mean(x)


def _check(ours_fn, theirs_fn, *shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(s, generator=gen, dtype=torch.float64) * 2 for s in shapes]
    a = [x.clone().requires_grad_() for x in xs]
    b = [x.clone().requires_grad_() for x in xs]
    ours, theirs = ours_fn(*a), theirs_fn(*b)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for ga, gb in zip(torch.autograd.grad(ours, a, allow_unused=True),
                      torch.autograd.grad(theirs, b, allow_unused=True)):
        assert (ga is None) == (gb is None)
        if ga is not None:
            torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "wgangp"])
@pytest.mark.parametrize("is_real", [True, False])
def test_pix2pix(mode, is_real):
    crit = compat.Pix2PixGANLoss(mode, target_real_label=0.9, target_fake_label=0.1)
    _check(lambda x: crit(x, is_real), lambda x: _pix2pix(mode, x, is_real, 0.9, 0.1), (4, 1, 6, 6))


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan", "wgan", "wgan_softplus", "hinge"])
@pytest.mark.parametrize("is_real,is_disc", [(True, True), (False, True), (True, False)])
def test_basicsr(gan_type, is_real, is_disc):
    crit = compat.BasicSRGANLoss(gan_type, loss_weight=0.1)
    _check(lambda x: crit(x, is_real, is_disc=is_disc), lambda x: _basicsr(gan_type, x, is_real, is_disc, 0.1),
           (3, 1, 8, 8))


@pytest.mark.parametrize("mode", ["ls", "original", "w", "hinge"])
@pytest.mark.parametrize("is_real,for_d", [(True, True), (False, True), (True, False)])
def test_spade_multiscale(mode, is_real, for_d):
    crit = compat.SPADEGANLoss(mode)

    def ours(f1, s1, f2, s2):  # pix2pixHD-style: per scale a list of features, the score last
        return crit([[f1, s1], [f2, s2]], is_real, for_discriminator=for_d)

    def theirs(f1, s1, f2, s2):
        # SPADE's models/networks/loss.py GANLoss.__call__ with a list: per scale
        # torch.mean(loss.view(bs, -1), dim=1) with bs = 1 for a 0-d loss, so shape (1,)
        return ((_spade_one(mode, s1, is_real, for_d).view(1, -1).mean(dim=1)
                 + _spade_one(mode, s2, is_real, for_d).view(1, -1).mean(dim=1)) / 2)

    _check(ours, theirs, (2, 8, 4, 4), (2, 1, 6, 6), (2, 8, 2, 2), (2, 1, 3, 3))


def test_hifigan_functions():
    shapes_d = [(2, 1, 40), (2, 1, 17), (2, 1, 9)]

    def theirs_d(*xs):
        r, g = xs[:3], xs[3:]
        return sum(torch.mean((1 - dr) ** 2) + torch.mean(dg ** 2) for dr, dg in zip(r, g))

    _check(lambda *xs: compat.hifigan_discriminator_loss(xs[:3], xs[3:])[0], theirs_d, *shapes_d, *shapes_d)
    _check(lambda *xs: compat.hifigan_generator_loss(xs)[0],
           lambda *xs: sum(torch.mean((1 - dg) ** 2) for dg in xs), *shapes_d)
    fm = [(2, 4, 30), (2, 8, 15), (2, 4, 20)]
    _check(lambda a, b, c, d, e, f: compat.hifigan_feature_loss([[a, b], [c]], [[d, e], [f]]),
           lambda a, b, c, d, e, f: 2 * sum(torch.mean(torch.abs(r - g)) for r, g in ((a, d), (b, e), (c, f))),
           *fm, *fm)
    loss, r_losses, g_losses = compat.hifigan_discriminator_loss([torch.ones(3)], [torch.zeros(3)])
    assert float(loss) == 0.0 and r_losses == [0.0] and g_losses == [0.0]


def test_compat_errors_name_the_argument():
    with pytest.raises(ValueError, match="gan_mode"):
        compat.Pix2PixGANLoss("wgan")
    with pytest.raises(ValueError, match="gan_type"):
        compat.BasicSRGANLoss("lsgan2")
    with pytest.raises(ValueError, match="target_is_real=True"):
        compat.SPADEGANLoss("hinge")(torch.randn(3), False, for_discriminator=False)
    with pytest.raises(ValueError, match="discriminator 0, map 1"):
        compat.hifigan_feature_loss([[torch.zeros(2), torch.zeros(3)]], [[torch.zeros(2), torch.zeros(4)]])
    with pytest.raises(ValueError, match="discriminators"):
        compat.hifigan_discriminator_loss([torch.zeros(2)], [])
