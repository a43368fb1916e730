"""Issue 25's recipes against the codebases they reproduce: each codebase's GAN-loss code is
transcribed here in plain torch (loops, ``.item()`` and all, from the file named at each
transcription), and fastgan's one-call recipe (``fastgan.recipes_compat``, or the README
block for StyleGAN2 and DMD2/LADD) must give the same values and gradients in float64 (to
1e-10), with no host synchronisation (``torch.compile(fullgraph=True)`` of the loss
functions at the end)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as TF

import fastgan
from fastgan import functional as F
from fastgan import recipes_compat as rc
from fastgan import schedules

TOL = dict(rtol=1e-10, atol=1e-10)
f64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, scale=1.5):
    return torch.randn(*shape, generator=_gen(seed), dtype=f64) * scale


def _close(a, b):
    torch.testing.assert_close(a, b, **TOL)


def _grads_close(loss_a, params_a, loss_b, params_b):
    ga = torch.autograd.grad(loss_a, params_a, allow_unused=True)
    gb = torch.autograd.grad(loss_b, params_b, allow_unused=True)
    for a, b in zip(ga, gb):
        if a is None or b is None:
            assert a is None and b is None or (a if b is None else b).abs().max() == 0
            continue
        _close(a, b)


def _leaf(x):
    return x.detach().clone().requires_grad_()


# --------------------------------------------------------------------------- taming-transformers
# CompVis/taming-transformers, taming/modules/losses/vqperceptual.py

def taming_adopt_weight(weight, global_step, threshold=0, value=0.):
    if global_step < threshold:
        weight = value
    return weight


def taming_hinge_d_loss(logits_real, logits_fake):
    loss_real = torch.mean(TF.relu(1. - logits_real))
    loss_fake = torch.mean(TF.relu(1. + logits_fake))
    return 0.5 * (loss_real + loss_fake)


def taming_vanilla_d_loss(logits_real, logits_fake):
    return 0.5 * (torch.mean(TF.softplus(-logits_real)) + torch.mean(TF.softplus(logits_fake)))


def taming_calculate_adaptive_weight(nll_loss, g_loss, last_layer, discriminator_weight):
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    d_weight = torch.clamp(d_weight, 0.0, 1e4).detach()
    return d_weight * discriminator_weight


def _vq_models(seed=0):
    torch.manual_seed(seed)
    dec = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2 * 3 * 4)).double()
    disc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 9)).double()  # a 3×3 "PatchGAN" map
    return dec, disc


def _vq_step(dec, disc, z, target):
    rec = dec(z).view(-1, 2, 3, 4)
    nll = (target - rec).abs().mean()
    return rec, nll, disc(rec).view(-1, 1, 3, 3)


@pytest.mark.parametrize("step", [0, 5])
def test_taming_generator_and_discriminator(step):
    z, target = _randn(4, 6, seed=1), _randn(4, 2, 3, 4, seed=2)
    dec_a, disc_a = _vq_models()
    dec_b, disc_b = _vq_models()
    _, nll, logits = _vq_step(dec_a, disc_a, z, target)
    term, d_weight, g = rc.taming_g_loss(nll, logits, dec_a[2].weight, global_step=step, disc_start=3,
                                         disc_factor=0.8, disc_weight=0.6)
    ours = nll + term
    _, nll_b, logits_b = _vq_step(dec_b, disc_b, z, target)
    g_b = -torch.mean(logits_b)
    d_weight_b = taming_calculate_adaptive_weight(nll_b, g_b, dec_b[2].weight, 0.6)
    theirs = nll_b + d_weight_b * taming_adopt_weight(0.8, step, threshold=3) * g_b
    _close(d_weight, d_weight_b)
    _close(ours, theirs)
    _grads_close(ours, list(dec_a.parameters()), theirs, list(dec_b.parameters()))
    # discriminator step, both losses
    real = _randn(4, 2, 3, 4, seed=3)
    for kind, fn in (("hinge", taming_hinge_d_loss), ("vanilla", taming_vanilla_d_loss)):
        lr, lf = disc_a(real).view(-1, 1, 3, 3), disc_a(_vq_step(dec_a, disc_a, z, target)[0].detach()).view(-1, 1, 3, 3)
        ours = rc.taming_d_loss(lr, lf, global_step=step, disc_start=3, disc_factor=0.8, disc_loss=kind)
        lr_b, lf_b = disc_b(real).view(-1, 1, 3, 3), disc_b(_vq_step(dec_b, disc_b, z, target)[0].detach()).view(-1, 1, 3, 3)
        theirs = taming_adopt_weight(0.8, step, threshold=3) * fn(lr_b, lf_b)
        _close(ours, theirs)
        if step >= 3:
            _grads_close(ours, list(disc_a.parameters()), theirs, list(disc_b.parameters()))


def test_taming_evaluation_weight_is_zero():
    """taming catches autograd's RuntimeError in evaluation and uses d_weight = 0."""
    dec, disc = _vq_models()
    with torch.no_grad():
        _, nll, logits = _vq_step(dec, disc, _randn(4, 6), _randn(4, 2, 3, 4, seed=2))
        term, d_weight, _ = rc.taming_g_loss(nll, logits, dec[2].weight, global_step=10)
    assert d_weight == 0 and term == 0


# --------------------------------------------------------------------------- Open-MAGVIT2
# TencentARC/Open-MAGVIT2, src/Open_MAGVIT2/modules/losses/vqperceptual.py

def magvit2_sigmoid_ce(labels, logits):
    zeros = torch.zeros_like(logits, dtype=logits.dtype)
    condition = (logits >= zeros)
    relu_logits = torch.where(condition, logits, zeros)
    neg_abs_logits = torch.where(condition, -logits, logits)
    return relu_logits - logits * labels + torch.log1p(torch.exp(neg_abs_logits))


def magvit2_non_saturate_gen_loss(logits_fake):
    B = logits_fake.shape[0]
    logits_fake = torch.mean(logits_fake.reshape(B, -1), dim=-1)
    return torch.mean(magvit2_sigmoid_ce(torch.ones_like(logits_fake), logits_fake))


def magvit2_non_saturate_d_loss(logits_real, logits_fake):
    B = logits_fake.shape[0]
    logits_real = logits_real.reshape(B, -1).mean(dim=-1)
    logits_fake = logits_fake.reshape(B, -1).mean(dim=-1)
    real_loss = magvit2_sigmoid_ce(torch.ones_like(logits_real), logits_real)
    fake_loss = magvit2_sigmoid_ce(torch.zeros_like(logits_fake), logits_fake)
    return real_loss.mean() + fake_loss.mean()


class MAGVIT2LeCamEMA:
    def __init__(self, init=0., decay=0.999):
        self.logits_real_ema = init
        self.logits_fake_ema = init
        self.decay = decay

    def update(self, logits_real, logits_fake):
        self.logits_real_ema = self.logits_real_ema * self.decay + torch.mean(logits_real).item() * (1 - self.decay)
        self.logits_fake_ema = self.logits_fake_ema * self.decay + torch.mean(logits_fake).item() * (1 - self.decay)


def magvit2_lecam_reg(real_pred, fake_pred, lecam_ema):
    return torch.mean(TF.relu(real_pred - lecam_ema.logits_fake_ema).pow(2)) + \
        torch.mean(TF.relu(lecam_ema.logits_real_ema - fake_pred).pow(2))


@pytest.mark.parametrize("ema_dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("disc_loss", ["hinge", "non_saturate"])
def test_open_magvit2_discriminator_with_lecam(disc_loss, ema_dtype):
    """float64 EMAs (``.lecam.double()``): bit for bit Open-MAGVIT2's Python floats; the default
    float32 buffers: to float32's rounding."""
    ours_mod = rc.OpenMAGVIT2GANLoss(disc_start=2, disc_loss=disc_loss, lecam_loss_weight=0.05)
    ours_mod.lecam.to(ema_dtype)
    tol = TOL if ema_dtype == f64 else dict(rtol=1e-7, atol=1e-7)
    ema = MAGVIT2LeCamEMA()
    their_d = taming_hinge_d_loss if disc_loss == "hinge" else magvit2_non_saturate_d_loss
    for step in range(5):
        lr, lf = _randn(3, 1, 4, 4, seed=10 + step) + 0.3 * step, _randn(3, 1, 4, 4, seed=20 + step)
        a, b = (_leaf(lr), _leaf(lf)), (_leaf(lr), _leaf(lf))
        ours = ours_mod.d_loss(*a, global_step=step)
        ema.update(*b)
        theirs = taming_adopt_weight(1.0, step, threshold=2) * (magvit2_lecam_reg(*b, ema) * 0.05 + their_d(*b))
        torch.testing.assert_close(ours, theirs, **tol)
        for x, y in zip(torch.autograd.grad(ours, list(a)), torch.autograd.grad(theirs, list(b))):
            torch.testing.assert_close(x, y, **tol)
    if ema_dtype == f64:  # the EMAs bit for bit
        assert ours_mod.lecam.ema_real.item() == ema.logits_real_ema
        assert ours_mod.lecam.ema_fake.item() == ema.logits_fake_ema
    torch.testing.assert_close(ours_mod.lecam.ema_real.item(), ema.logits_real_ema, rtol=1e-6, atol=0)
    assert "lecam.ema_real" in ours_mod.state_dict()


@pytest.mark.parametrize("gen_loss_weight", [0.1, None])
def test_open_magvit2_generator(gen_loss_weight):
    z, target = _randn(4, 6, seed=4), _randn(4, 2, 3, 4, seed=5)
    dec_a, disc_a = _vq_models(1)
    dec_b, disc_b = _vq_models(1)
    mod = rc.OpenMAGVIT2GANLoss(disc_start=0, gen_loss_weight=gen_loss_weight, disc_weight=0.7)
    _, nll, logits = _vq_step(dec_a, disc_a, z, target)
    term, _ = mod.g_loss(nll, logits, global_step=1, last_layer=dec_a[2].weight)
    ours = nll + term
    _, nll_b, logits_b = _vq_step(dec_b, disc_b, z, target)
    g_b = magvit2_non_saturate_gen_loss(logits_b)
    if gen_loss_weight is None:
        d_weight = taming_calculate_adaptive_weight(nll_b, g_b, dec_b[2].weight, 0.7)
    else:
        d_weight = torch.tensor(gen_loss_weight)
    theirs = nll_b + d_weight * taming_adopt_weight(1.0, 1, threshold=0) * g_b
    _close(ours, theirs)
    _grads_close(ours, list(dec_a.parameters()), theirs, list(dec_b.parameters()))


# --------------------------------------------------------------------------- LlamaGen
# FoundationVision/LlamaGen, tokenizer/tokenizer_image/vq_loss.py

def llamagen_non_saturating_d_loss(logits_real, logits_fake):  # as written: the arguments swapped
    loss_real = torch.mean(TF.binary_cross_entropy_with_logits(torch.ones_like(logits_real), logits_real))
    loss_fake = torch.mean(TF.binary_cross_entropy_with_logits(torch.zeros_like(logits_fake), logits_fake))
    return 0.5 * (loss_real + loss_fake)


def llamagen_non_saturating_gen_loss(logit_fake):  # as written: the arguments swapped
    return torch.mean(TF.binary_cross_entropy_with_logits(torch.ones_like(logit_fake), logit_fake))


def llamagen_intended_gen_loss(logit_fake):
    return torch.mean(TF.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake)))


def llamagen_intended_d_loss(logits_real, logits_fake):
    return 0.5 * (torch.mean(TF.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real)))
                  + torch.mean(TF.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))))


@pytest.mark.parametrize("swapped", [False, True])
def test_llamagen(swapped):
    lr, lf = _randn(4, 1, 5, 5, seed=7), _randn(4, 1, 5, 5, seed=8)
    cases = [
        (lambda r, f: rc.llamagen_d_loss(r, f, disc_loss="hinge", swapped_bce=swapped), taming_hinge_d_loss),
        (lambda r, f: rc.llamagen_d_loss(r, f, disc_loss="vanilla", swapped_bce=swapped), taming_vanilla_d_loss),
        (lambda r, f: rc.llamagen_d_loss(r, f, disc_loss="non-saturating", swapped_bce=swapped),
         llamagen_non_saturating_d_loss if swapped else llamagen_intended_d_loss),
        (lambda r, f: rc.llamagen_g_loss(f, gen_adv_loss="hinge", swapped_bce=swapped), lambda r, f: -torch.mean(f)),
        (lambda r, f: rc.llamagen_g_loss(f, gen_adv_loss="non-saturating", swapped_bce=swapped),
         lambda r, f: (llamagen_non_saturating_gen_loss if swapped else llamagen_intended_gen_loss)(f)),
    ]
    for ours_fn, theirs_fn in cases:
        a, b = (_leaf(lr), _leaf(lf)), (_leaf(lr), _leaf(lf))
        ours, theirs = ours_fn(*a), theirs_fn(*b)
        _close(ours, theirs)
        _grads_close(ours, list(a), theirs, list(b))


def test_llamagen_swapped_generator_is_linear():
    """What the switch documents: the swapped BCE is softplus(1) − mean(f), so its gradient
    is −1/n whatever the logits (hinge's), not the non-saturating −sigmoid(−f)/n."""
    f = _leaf(_randn(8, seed=9))
    (g,) = torch.autograd.grad(rc.llamagen_g_loss(f, gen_adv_loss="non-saturating", swapped_bce=True), f)
    _close(g, torch.full_like(g, -1 / 8))


# --------------------------------------------------------------------------- DAC
# descriptinc/descript-audio-codec, dac/nn/loss.py (GANLoss)

def dac_discriminator_loss(d_fake, d_real):
    loss_d = 0
    for x_fake, x_real in zip(d_fake, d_real):
        loss_d += torch.mean(x_fake[-1] ** 2)
        loss_d += torch.mean((1 - x_real[-1]) ** 2)
    return loss_d


def dac_generator_loss(d_fake, d_real):
    loss_g = 0
    for x_fake in d_fake:
        loss_g += torch.mean((1 - x_fake[-1]) ** 2)
    loss_feature = 0
    for i in range(len(d_fake)):
        for j in range(len(d_fake[i]) - 1):
            loss_feature += TF.l1_loss(d_fake[i][j], d_real[i][j].detach())
    return loss_g, loss_feature


def _audio_outputs(seed, counts=(4, 4, 3, 5, 2, 3, 6, 3), score_last=True):
    """Per discriminator: feature maps then (DAC) its score, shapes of a 1-d/2-d conv stack."""
    gen = _gen(seed)
    shapes = [(2, 4, 9), (2, 8, 5), (2, 1, 6, 4), (2, 3, 7), (2, 2, 5, 3)]
    out = []
    for d, n in enumerate(counts):
        out.append([torch.randn(shapes[(d + m) % 5], generator=gen, dtype=f64) for m in range(n)])
    return out


def _leaves(nested):
    return [[_leaf(x) for x in d] for d in nested]


def _flat(nested):
    return [x for d in nested for x in d]


def test_dac():
    fake, real = _audio_outputs(30), _audio_outputs(31)
    fa, ra, fb, rb = _leaves(fake), _leaves(real), _leaves(fake), _leaves(real)
    _close(rc.dac_discriminator_loss(fa, ra), dac_discriminator_loss(fb, rb))
    _grads_close(rc.dac_discriminator_loss(fa, ra), _flat(fa) + _flat(ra),
                 dac_discriminator_loss(fb, rb), _flat(fb) + _flat(rb))
    g, feat = rc.dac_generator_loss(fa, ra)
    g_b, feat_b = dac_generator_loss(fb, rb)
    _close(g, g_b)
    _close(feat, feat_b)
    # DAC's generator step: lambdas adv/gen_loss 1, adv/feat_loss 2
    _grads_close(g + 2.0 * feat, _flat(fa) + _flat(ra), g_b + 2.0 * feat_b, _flat(fb) + _flat(rb))


# --------------------------------------------------------------------------- audiocraft / EnCodec
# facebookresearch/audiocraft, audiocraft/adversarial/losses.py; audiocraft/solvers/compression.py

def ac_mse_real(x):
    return TF.mse_loss(x, torch.tensor(1., dtype=x.dtype).expand_as(x))


def ac_mse_fake(x):
    return TF.mse_loss(x, torch.tensor(0., dtype=x.dtype).expand_as(x))


def ac_hinge_real(x):
    return -torch.mean(torch.min(x - 1, torch.tensor(0., dtype=x.dtype).expand_as(x)))


def ac_hinge_fake(x):
    return -torch.mean(torch.min(-x - 1, torch.tensor(0., dtype=x.dtype).expand_as(x)))


AC_G = {"mse": lambda x: TF.mse_loss(x, torch.tensor(1., dtype=x.dtype).expand_as(x)),
        "hinge": lambda x: -x.mean(),
        "hinge2": lambda x: -torch.mean(torch.min(x - 1, torch.tensor(0., dtype=x.dtype).expand_as(x)))}
AC_REAL = {"mse": ac_mse_real, "hinge": ac_hinge_real, "hinge2": ac_hinge_real}
AC_FAKE = {"mse": ac_mse_fake, "hinge": ac_hinge_fake, "hinge2": ac_hinge_fake}


def ac_feature_matching(fmap_fake, fmap_real, normalized=False):  # FeatureMatchingLoss(normalize=True)
    feat_loss = torch.zeros((), dtype=fmap_fake[0].dtype)  # audiocraft: float32 zeros; float64 kept here
    n_fmaps = 0
    for feat_fake, feat_real in zip(fmap_fake, fmap_real):
        n_fmaps += 1
        term = torch.nn.L1Loss()(feat_fake, feat_real)
        # EnCodec's normalised loss: the feat_scale audiocraft computes, applied per map
        feat_loss += term / torch.mean(torch.abs(feat_real)) if normalized else term
    return feat_loss / n_fmaps


def ac_train_adv_loss(logits_fake, logits_real, loss_type):
    loss = torch.zeros((), dtype=logits_fake[0].dtype)
    for f, r in zip(logits_fake, logits_real):
        loss += AC_FAKE[loss_type](f) + AC_REAL[loss_type](r)
    return loss / len(logits_fake)


def ac_forward(logits_fake, fmaps_fake, fmaps_real, loss_type, normalized=False):
    adv = torch.zeros((), dtype=logits_fake[0].dtype)
    feat = torch.zeros((), dtype=logits_fake[0].dtype)
    for f in logits_fake:
        adv += AC_G[loss_type](f)
    for ff, fr in zip(fmaps_fake, fmaps_real):
        feat += ac_feature_matching(ff, fr, normalized)
    return adv / len(logits_fake), feat / len(logits_fake)


@pytest.mark.parametrize("loss_type", ["hinge", "hinge2", "mse"])
@pytest.mark.parametrize("relative", [False, True])
def test_audiocraft(loss_type, relative):
    n = 5  # msstftd: five STFT discriminators
    lr, lf = [_randn(2, 1, 7, 3, seed=40 + i) for i in range(n)], [_randn(2, 1, 7, 3, seed=50 + i) for i in range(n)]
    fr, ff = _audio_outputs(60, counts=(5,) * n), _audio_outputs(61, counts=(5,) * n)
    la, lb = [_leaf(x) for x in lr + lf], [_leaf(x) for x in lr + lf]
    ours = rc.audiocraft_discriminator_loss(la[:n], la[n:], loss=loss_type)
    theirs = ac_train_adv_loss(lb[n:], lb[:n], loss_type)
    _close(ours, theirs)
    _grads_close(ours, la, theirs, lb)
    ga, gb = [_leaf(x) for x in lf], [_leaf(x) for x in lf]
    ffa, ffb = _leaves(ff), _leaves(ff)
    adv, feat = rc.audiocraft_generator_loss(ga, fr, ffa, loss=loss_type, relative=relative)
    adv_b, feat_b = ac_forward(gb, ffb, fr, loss_type, normalized=relative)
    _close(adv, adv_b)
    _close(feat, feat_b)
    _grads_close(adv + 3 * feat, ga + _flat(ffa), adv_b + 3 * feat_b, gb + _flat(ffb))


def test_audiocraft_without_normalize():
    """``normalize=False``: the sums over discriminators (the feature loss still ÷ maps, its
    FeatureMatchingLoss(normalize=True))."""
    lr, lf = [_randn(2, 5, seed=200 + i) for i in range(3)], [_randn(2, 5, seed=210 + i) for i in range(3)]
    fr, fg = _audio_outputs(220, counts=(2, 3, 4)), _audio_outputs(221, counts=(2, 3, 4))
    _close(rc.audiocraft_discriminator_loss(lr, lf, normalize=False), 3 * ac_train_adv_loss(lf, lr, "hinge"))
    adv, feat = rc.audiocraft_generator_loss(lf, fr, fg, normalize=False)
    adv_b, feat_b = ac_forward(lf, fg, fr, "hinge")
    _close(adv, 3 * adv_b)
    _close(feat, 3 * feat_b)


def test_encodec_balancer_has_the_solvers_weights():
    """audiocraft's CompressionSolver: adv/feat weights per adversary, the others when > 0,
    with config/solver/compression/default.yaml's losses and balancer options."""
    losses = {"adv": 4., "feat": 4., "l1": 0.1, "mel": 0., "msspec": 2., "sisnr": 0.}
    adv_losses = ["msstftd"]
    loss_weights = dict()
    for loss_name, weight in losses.items():
        if loss_name in ['adv', 'feat']:
            for adv_name in adv_losses:
                loss_weights[f'{loss_name}_{adv_name}'] = weight
        elif weight > 0:
            loss_weights[loss_name] = weight
    bal = rc.encodec_balancer()
    assert bal.weights == loss_weights
    assert (bal.balance_grads, bal.total_norm, bal.ema_decay, bal.per_batch_item) == (True, 1.0, 0.999, True)
    assert rc.encodec_balancer(("msd", "mpd")).weights["feat_mpd"] == 4.0


# --------------------------------------------------------------------------- BigVGAN
# NVIDIA/BigVGAN, loss.py

def bigvgan_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl - gl))
    return loss * 2


def bigvgan_discriminator_loss(disc_real_outputs, disc_generated_outputs):
    loss = 0
    r_losses, g_losses = [], []
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        r_loss = torch.mean((1 - dr) ** 2)
        g_loss = torch.mean(dg ** 2)
        loss += r_loss + g_loss
        r_losses.append(r_loss.item())
        g_losses.append(g_loss.item())
    return loss, r_losses, g_losses


def bigvgan_generator_loss(disc_outputs):
    loss = 0
    gen_losses = []
    for dg in disc_outputs:
        l = torch.mean((1 - dg) ** 2)  # noqa: E741
        gen_losses.append(l)
        loss += l
    return loss, gen_losses


def test_bigvgan():
    n = 8  # MPD's 5 periods + MRD's 3 resolutions
    real, fake = [_randn(2, 1, 6 + i, seed=70 + i) for i in range(n)], [_randn(2, 1, 6 + i, seed=80 + i) for i in range(n)]
    a, b = [_leaf(x) for x in real + fake], [_leaf(x) for x in real + fake]
    loss, r_l, g_l = rc.bigvgan_discriminator_loss(a[:n], a[n:])
    loss_b, r_lb, g_lb = bigvgan_discriminator_loss(b[:n], b[n:])
    _close(loss, loss_b)
    _close(torch.stack(r_l), torch.tensor(r_lb, dtype=f64))
    _close(torch.stack(g_l), torch.tensor(g_lb, dtype=f64))
    assert all(not x.requires_grad for x in r_l + g_l)
    _grads_close(loss, a, loss_b, b)
    g, per = rc.bigvgan_generator_loss(a[n:])
    g_b, per_b = bigvgan_generator_loss(b[n:])
    _close(g, g_b)
    _close(torch.stack(per), torch.stack(per_b))
    fr, fg = _audio_outputs(90, counts=(6,) * 5 + (4,) * 3), _audio_outputs(91, counts=(6,) * 5 + (4,) * 3)
    fra, fga, frb, fgb = _leaves(fr), _leaves(fg), _leaves(fr), _leaves(fg)
    feat, feat_b = rc.bigvgan_feature_loss(fra, fga), bigvgan_feature_loss(frb, fgb)
    _close(feat, feat_b)
    _grads_close(g + feat, a[n:] + _flat(fra) + _flat(fga), g_b + feat_b, b[n:] + _flat(frb) + _flat(fgb))


# --------------------------------------------------------------------------- vocos
# gemelo-ai/vocos, vocos/loss.py (the classes) and vocos/experiment.py (the divisions)

def vocos_generator_loss(disc_outputs):
    loss = 0
    gen_losses = []
    for dg in disc_outputs:
        l = torch.mean(torch.clamp(1 - dg, min=0))  # noqa: E741
        gen_losses.append(l)
        loss += l
    return loss, gen_losses


def vocos_discriminator_loss(disc_real_outputs, disc_generated_outputs):
    loss = 0
    r_losses, g_losses = [], []
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        r_loss = torch.mean(torch.clamp(1 - dr, min=0))
        g_loss = torch.mean(torch.clamp(1 + dg, min=0))
        loss += r_loss + g_loss
        r_losses.append(r_loss.item())
        g_losses.append(g_loss.item())
    return loss, r_losses, g_losses


def vocos_feature_matching_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl - gl))
    return loss


def test_vocos():
    mrd_loss_coeff = 0.1
    mp = [_randn(2, 1, 5 + i, seed=100 + i) for i in range(5)], [_randn(2, 1, 5 + i, seed=110 + i) for i in range(5)]
    mrd = [_randn(2, 1, 4, 3 + i, seed=120 + i) for i in range(3)], [_randn(2, 1, 4, 3 + i, seed=130 + i) for i in range(3)]
    a = [[_leaf(x) for x in grp] for grp in (*mp, *mrd)]
    b = [[_leaf(x) for x in grp] for grp in (*mp, *mrd)]
    # experiment.py's discriminator step
    ours = rc.vocos_discriminator_loss(a[0], a[1]) + mrd_loss_coeff * rc.vocos_discriminator_loss(a[2], a[3])
    loss_mp, loss_mp_real, _ = vocos_discriminator_loss(b[0], b[1])
    loss_mrd, loss_mrd_real, _ = vocos_discriminator_loss(b[2], b[3])
    theirs = loss_mp / len(loss_mp_real) + mrd_loss_coeff * (loss_mrd / len(loss_mrd_real))
    _close(ours, theirs)
    _grads_close(ours, _flat(a), theirs, _flat(b))
    # experiment.py's generator step, adversarial and feature parts
    fr_mp, fg_mp = _audio_outputs(140, counts=(5,) * 5), _audio_outputs(141, counts=(5,) * 5)
    fr_mrd, fg_mrd = _audio_outputs(142, counts=(4,) * 3), _audio_outputs(143, counts=(4,) * 3)
    fga, fgb = _leaves(fg_mp) + _leaves(fg_mrd), _leaves(fg_mp) + _leaves(fg_mrd)
    ours = (rc.vocos_generator_loss(a[1]) + mrd_loss_coeff * rc.vocos_generator_loss(a[3])
            + rc.vocos_feature_loss(fr_mp, fga[:5]) + mrd_loss_coeff * rc.vocos_feature_loss(fr_mrd, fga[5:]))
    loss_gen_mp, list_loss_gen_mp = vocos_generator_loss(b[1])
    loss_gen_mrd, list_loss_gen_mrd = vocos_generator_loss(b[3])
    theirs = (loss_gen_mp / len(list_loss_gen_mp) + mrd_loss_coeff * (loss_gen_mrd / len(list_loss_gen_mrd))
              + vocos_feature_matching_loss(fr_mp, fgb[:5]) / len(fr_mp)
              + mrd_loss_coeff * (vocos_feature_matching_loss(fr_mrd, fgb[5:]) / len(fr_mrd)))
    _close(ours, theirs)
    _grads_close(ours, a[1] + a[3] + _flat(fga), theirs, b[1] + b[3] + _flat(fgb))


# --------------------------------------------------------------------------- R3GAN
# brownvc/R3GAN, R3GAN/Trainer.py (AdversarialTraining; read through its fork Lemutisme/R3GAN,
# whose "softmargin" path with Margin = 0 is the original), training/training_loop.py (the schedule)

def r3gan_zero_centered_gp(samples, critics):
    (gradient,) = torch.autograd.grad(outputs=critics.sum(), inputs=samples, create_graph=True)
    return gradient.square().sum([1, 2, 3])


def r3gan_discriminator_loss(D, real, fake, gamma):
    real = real.detach().requires_grad_(True)
    fake = fake.detach().requires_grad_(True)
    real_logits, fake_logits = D(real), D(fake)
    r1 = r3gan_zero_centered_gp(real, real_logits)
    r2 = r3gan_zero_centered_gp(fake, fake_logits)
    adversarial = TF.softplus(-(real_logits - fake_logits))
    return (adversarial + (gamma / 2) * (r1 + r2)).mean()


def r3gan_generator_loss(D, real, fake):
    fake_logits, real_logits = D(fake), D(real.detach())
    return TF.softplus(-(fake_logits - real_logits)).mean()


def _critic(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 3 * 2, 1)).double()
    return lambda x: net(x).squeeze(1), net


def test_r3gan():
    real, fake = _randn(5, 2, 5, 4, seed=150), _randn(5, 2, 5, 4, seed=151)
    (Da, net_a), (Db, net_b) = _critic(), _critic()
    for nimg in (0, 3_000_000, 30_000_000):
        gamma = schedules.cosine_decay(nimg, 20_000_000, 150.0, 15.0)
        ours = rc.r3gan_d_loss(Da, real, fake, gamma)
        theirs = r3gan_discriminator_loss(Db, real, fake, gamma)
        _close(ours, theirs)
        _grads_close(ours, list(net_a.parameters()), theirs, list(net_b.parameters()))
    fa, fb = _leaf(fake), _leaf(fake)
    ours = rc.r3gan_g_loss(Da(real), Da(fa))
    theirs = r3gan_generator_loss(Db, real, fb)
    _close(ours, theirs)
    _grads_close(ours, [fa], theirs, [fb])


# --------------------------------------------------------------------------- StyleGAN2/3
# NVlabs/stylegan2-ada-pytorch, training/loss.py (StyleGAN2Loss.accumulate_gradients; stylegan3's
# training/loss.py is the same for these phases); the README block is what is tested here

def test_stylegan2_phases():
    torch.manual_seed(0)
    mapping = torch.nn.Linear(4, 3 * 5).double()           # z -> ws (B, num_ws=3, w_dim=5)
    synthesis = torch.nn.Linear(15, 2 * 4 * 4).double()    # ws -> img (B, 2, 4, 4)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 1)).double()
    z, real = _randn(6, 4, seed=160), _randn(6, 2, 4, 4, seed=161)

    def run_g(z):
        ws = mapping(z).view(-1, 3, 5)
        return synthesis(ws.flatten(1)).view(-1, 2, 4, 4), ws

    r1_gamma, pl_weight, pl_decay, pl_batch_shrink, d_reg, g_reg = 10.0, 2.0, 0.01, 2, 16, 4
    # theirs: Gmain, Dmain (separate backward of each half), Dreg and Gpl with their gains
    gen_img, _ = run_g(z)
    loss_gmain = TF.softplus(-D(gen_img)).mean()
    loss_dmain = TF.softplus(D(gen_img.detach())).mean() + TF.softplus(-D(real)).mean()
    real_tmp = real.detach().requires_grad_(True)
    real_logits = D(real_tmp)
    r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_tmp], create_graph=True)[0]
    loss_dr1 = (real_logits * 0 + (r1_grads.square().sum([1, 2, 3]) * (r1_gamma / 2))).mean() * d_reg
    pl_mean = torch.zeros([], dtype=f64)
    batch_size = z.shape[0] // pl_batch_shrink
    gen_img, gen_ws = run_g(z[:batch_size])
    torch.manual_seed(7)
    pl_noise = torch.randn_like(gen_img) / math.sqrt(gen_img.shape[2] * gen_img.shape[3])
    pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True)[0]
    pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
    pl_mean_new = pl_mean.lerp(pl_lengths.mean(), pl_decay)
    loss_gpl = (gen_img[:, 0, 0, 0] * 0 + (pl_lengths - pl_mean_new).square() * pl_weight).mean() * g_reg

    # ours: the README block
    r1 = fastgan.LazyRegularizer(lambda x: fastgan.r1_penalty(D, x, gamma=r1_gamma), every=d_reg)
    pl = fastgan.nn.PathLengthRegularizer(decay=pl_decay, weight=pl_weight).double()
    lazy_pl = fastgan.LazyRegularizer(pl, every=g_reg)
    gen_img, _ = run_g(z)
    ours_gmain = F.bce_g_loss(D(gen_img))
    ours_dmain = F.bce_d_loss(D(real), D(gen_img.detach()))
    ours_dr1 = r1(real)
    gen_img, gen_ws = run_g(z[:batch_size])
    torch.manual_seed(7)
    ours_gpl = lazy_pl(gen_img, gen_ws)
    params_g = list(mapping.parameters()) + list(synthesis.parameters())
    for ours, theirs, params in ((ours_gmain, loss_gmain, params_g), (ours_dmain, loss_dmain, list(D.parameters())),
                                 (ours_dr1, loss_dr1, list(D.parameters())), (ours_gpl, loss_gpl, params_g)):
        _close(ours, theirs)
        _grads_close(ours, params, theirs, params)
    _close(pl.pl_mean, pl_mean_new.detach())
    assert r1(real) is None and lazy_pl(gen_img, gen_ws) is None  # the next (non-regularising) step


# --------------------------------------------------------------------------- DMD2 / LADD
# tianweiy/DMD2, main/edm/edm_guidance.py and main/sd_guidance.py; NVlabs/FastGen,
# fastgen/methods/common_loss.py (gan_loss_generator / gan_loss_discriminator, logits [B, num_heads])

def fastgen_gan_loss_generator(fake_logits):
    assert fake_logits.ndim == 2
    return TF.softplus(-fake_logits).mean()


def fastgen_gan_loss_discriminator(real_logits, fake_logits):
    assert fake_logits.ndim == 2 and real_logits.ndim == 2
    return TF.softplus(fake_logits).mean() + TF.softplus(-real_logits).mean()


def test_dmd2_ladd_multi_head():
    real, fake = _randn(6, 4, seed=170), _randn(6, 4, seed=171)  # 4 heads (discriminator features of 4 blocks)
    a, b = (_leaf(real), _leaf(fake)), (_leaf(real), _leaf(fake))
    ours, theirs = F.bce_d_loss(*a), fastgen_gan_loss_discriminator(*b)
    _close(ours, theirs)
    _grads_close(ours, list(a), theirs, list(b))
    ours, theirs = F.bce_g_loss(a[1]), fastgen_gan_loss_generator(b[1])
    _close(ours, theirs)
    _grads_close(ours, [a[1]], theirs, [b[1]])
    # heads as a list of (B, 1) logits: the list losses sum over heads; FastGen's mean is ÷ heads
    heads_r, heads_f = list(a[0].split(1, dim=1)), list(a[1].split(1, dim=1))
    _close(F.bce_d_loss(heads_r, heads_f) / 4, fastgen_gan_loss_discriminator(*b))


# --------------------------------------------------------------------------- errors, half types, compile

def test_bad_arguments_name_them():
    x = torch.randn(4)
    with pytest.raises(ValueError, match="disc_loss"):
        rc.taming_d_loss(x, x, disc_loss="lsgan")
    with pytest.raises(ValueError, match="gen_adv_loss"):
        rc.llamagen_g_loss(x, gen_adv_loss="vanilla")
    with pytest.raises(TypeError, match="swapped_bce"):
        rc.llamagen_g_loss(x, gen_adv_loss="non-saturating", swapped_bce=1)
    with pytest.raises(TypeError, match="d_fake"):
        rc.dac_discriminator_loss(x, [[x]])
    with pytest.raises(TypeError, match=r"d_real\[0\]"):
        rc.dac_generator_loss([[x]], [x])
    with pytest.raises(ValueError, match="loss"):
        rc.audiocraft_discriminator_loss([x], [x], loss="wgan")
    with pytest.raises(TypeError, match="disc_outputs"):
        rc.vocos_generator_loss(x)
    with pytest.raises(ValueError, match="disc_loss"):
        rc.OpenMAGVIT2GANLoss(0, disc_loss="mse")
    with pytest.raises(TypeError, match="gamma"):
        rc.r3gan_d_loss(lambda v: v.sum(1), x.view(2, 2), x.view(2, 2), "10")
    with pytest.raises(TypeError, match="r1"):
        rc.r3gan_d_loss(lambda v: v.sum(1), x.view(2, 2), x.view(2, 2), 1.0, r1=None)
    with pytest.raises(ValueError, match="last_layer"):
        rc.OpenMAGVIT2GANLoss(0).g_loss(x.sum(), x.view(4, 1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_types(dtype):
    """Scores past 65 504 elements: the recipes' means are finite and equal float32's."""
    gen = _gen(3)
    xs = [torch.randn(70_001, generator=gen).to(dtype) for _ in range(2)]
    fm = [[torch.randn(2, 40_000, generator=gen).to(dtype)]]
    fns = [lambda r, f: rc.vocos_generator_loss([f]), lambda r, f: rc.vocos_discriminator_loss([r], [f]),
           lambda r, f: rc.dac_discriminator_loss([[r]], [[f]]), lambda r, f: rc.bigvgan_generator_loss([f])[0],
           lambda r, f: rc.llamagen_d_loss(r, f, disc_loss="non-saturating", swapped_bce=True),
           lambda r, f: rc.audiocraft_generator_loss([f], fm, [[m * 0.5 for m in fm[0]]], relative=True)[1]]
    for i, fn in enumerate(fns):
        out, want = fn(*xs), fn(*[x.float() for x in xs])
        assert torch.isfinite(out).all(), i
        torch.testing.assert_close(out.float(), want.float(), rtol=2e-2, atol=2e-2)


def test_loss_functions_compile_fullgraph():
    """The logit-level recipes under torch.compile(fullgraph=True): no graph break, hence
    no host synchronisation (BigVGAN's and vocos' .item() lists are gone); values as eager."""
    mod = rc.OpenMAGVIT2GANLoss(disc_start=2, lecam_loss_weight=0.05)
    mod_eager = rc.OpenMAGVIT2GANLoss(disc_start=2, lecam_loss_weight=0.05)

    def step(lr, lf, fr, fg, step_t, m):
        out = rc.taming_d_loss(lr[0], lf[0], global_step=step_t, disc_start=1)
        out = out + rc.llamagen_d_loss(lr[0], lf[0], disc_loss="non-saturating", swapped_bce=True)
        out = out + rc.llamagen_g_loss(lf[0], gen_adv_loss="non-saturating")
        out = out + rc.dac_discriminator_loss([[*fg[0], lf[0]]], [[*fr[0], lr[0]]])
        out = out + sum(rc.dac_generator_loss([[*fg[0], lf[0]]], [[*fr[0], lr[0]]]))
        out = out + rc.audiocraft_discriminator_loss(lr, lf) + sum(rc.audiocraft_generator_loss(lf, fr, fg, relative=True))
        loss, r_l, g_l = rc.bigvgan_discriminator_loss(lr, lf)
        out = out + loss + r_l[0] + g_l[1] + rc.bigvgan_generator_loss(lf)[0] + rc.bigvgan_feature_loss(fr, fg)
        out = out + rc.vocos_discriminator_loss(lr, lf) + rc.vocos_generator_loss(lf) + rc.vocos_feature_loss(fr, fg)
        return out + m.d_loss(lr[0].view(2, 1, 3, 3), lf[0].view(2, 1, 3, 3), global_step=step_t) \
            + rc.r3gan_g_loss(lr[1].flatten(), lf[1].flatten())

    gen = _gen(5)
    lr = [torch.randn(2, 9, generator=gen) for _ in range(2)]
    lf = [torch.randn(2, 9, generator=gen) for _ in range(2)]
    fr = [[torch.randn(2, 3, 4, generator=gen), torch.randn(2, 5, generator=gen)] for _ in range(2)]
    fg = [[torch.randn(2, 3, 4, generator=gen), torch.randn(2, 5, generator=gen)] for _ in range(2)]
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for s in range(3):
        t = torch.tensor(s)
        a = [[_leaf(x) for x in grp] for grp in (lr, lf)]
        b = [[_leaf(x) for x in grp] for grp in (lr, lf)]
        out = compiled(a[0], a[1], fr, fg, t, mod)
        want = step(b[0], b[1], fr, fg, t, mod_eager)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        for x, y in zip(torch.autograd.grad(out, _flat(a)), torch.autograd.grad(want, _flat(b))):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mod.lecam.ema_real, mod_eager.lecam.ema_real)


def test_gradient_taking_recipes_compile_fullgraph_fresh_process():
    """tests/codebases_compile.py: taming's adaptive weight, R3GAN's R1 + R2 and Open-MAGVIT2's
    LeCam step inside ``torch.compile(fullgraph=True)`` (inductor, backward included) in a
    fresh process, equal to eager."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "tests.codebases_compile"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=900)
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert out.returncode == 0 and not fails, "\n".join(fails) + out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "OK 3"
