"""The pieces of today's training recipes (issue 25), each in float64 against a version
written here by hand from the original repository's code, values and gradients to 1e-10:

- ``adaptive_weight``: CompVis/taming-transformers, ``taming/modules/losses/vqperceptual.py``
  (``VQLPIPSWithDiscriminator.calculate_adaptive_weight``, and its ``try/except RuntimeError``
  giving 0 in evaluation);
- ``lecam_penalty`` / ``LeCamRegularizer``: google/lecam-gan, ``biggan_cifar/losses.py``
  (``lecam_reg``), ``third_party/utils.py`` (``ema_losses.update``) and
  ``stylegan2/lecam_loss.py`` (the moving averages updated before the term);
- ``approx_r1_penalty``: NVlabs/FastGen, ``fastgen/methods/distribution_matching/ladd.py``
  (``_compute_r1_regularization``: ``F.mse_loss(D(x), D(x + α·ε), reduction="mean")``);
- list/tuple critics in ``r1_penalty``/``r2_penalty``/``gradient_penalty``: the gradient of
  the sum of every output's sum (GigaGAN's multi-scale outputs);
- ``PathLengthRegularizer``: NVlabs/stylegan2-ada-pytorch, ``training/loss.py`` (``Gpl``);
- ``GradBalancer``: facebookresearch/audiocraft, ``audiocraft/losses/balancer.py``, with
  flashy's ``utils.averager`` (the bias-corrected EMA).

The DDP checks are in tests/test_recipes_ddp.py, torch.compile in tests/recipes_compile.py
(run here in a fresh process)."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as tF

import fastgan
from fastgan import functional as F
from fastgan import nn as fnn

D = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _close(a, b):
    torch.testing.assert_close(a, b, **TOL)


def _grads_close(ours, theirs, params):
    for p, a, b in zip(params, torch.autograd.grad(ours, params, allow_unused=True),
                       torch.autograd.grad(theirs, params, allow_unused=True)):
        assert (a is None) == (b is None), p.shape
        if a is not None:
            _close(a, b)


# --------------------------------------------------------------------------- adaptive_weight (taming)

def taming_adaptive_weight(nll_loss, g_loss, last_layer):
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    return torch.clamp(d_weight, 0.0, 1e4).detach()


def _decoder(dtype=D):
    torch.manual_seed(0)
    dec = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).to(dtype)
    disc = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.SiLU(), torch.nn.Linear(6, 1)).to(dtype)
    return dec, disc


def _vq_losses(dec, disc, gen, dtype=D):
    z = torch.randn(7, 3, generator=gen, dtype=D).to(dtype)
    x = torch.randn(7, 4, generator=gen, dtype=D).to(dtype)
    rec = dec(z)
    return (x - rec).abs().mean(), -disc(rec).mean()


def test_adaptive_weight_is_tamings_and_keeps_both_graphs():
    dec, disc = _decoder()
    W = dec[2].weight
    for seed, scale in ((1, 1.0), (2, 1e-9), (3, 1e6)):  # 1e-9 / 1e6: the clamp at max_weight and eps
        rec, g = _vq_losses(dec, disc, _gen(seed))
        g = g * scale
        got = F.adaptive_weight(rec, g, W)
        want = taming_adaptive_weight(rec, g, W)
        assert got.shape == () and got.dtype == D and not got.requires_grad
        _close(got, want)
        assert W.grad is None  # autograd.grad, not backward
        (rec + got * g).backward()  # both graphs were kept
        dec.zero_grad(set_to_none=True)
        disc.zero_grad(set_to_none=True)
    rec, g = _vq_losses(dec, disc, _gen(4))
    _close(F.adaptive_weight(rec, g, W, eps=0.5, max_weight=0.3),
           torch.clamp(torch.autograd.grad(rec, W, retain_graph=True)[0].norm()
                       / (torch.autograd.grad(g, W, retain_graph=True)[0].norm() + 0.5), 0, 0.3))


def test_adaptive_weight_is_zero_without_a_graph():
    """taming's evaluation: ``autograd.grad`` raises, ``d_weight = 0``; here no exception."""
    dec, disc = _decoder()
    W = dec[2].weight
    with torch.no_grad():
        rec, g = _vq_losses(dec, disc, _gen(1))
    got = F.adaptive_weight(rec, g, W)
    assert got.shape == () and float(got) == 0.0
    rec, _ = _vq_losses(dec, disc, _gen(1))
    other = disc[0].weight.sum()  # has a graph, but not to W
    assert float(F.adaptive_weight(rec, other, W)) == 0.0
    assert float(F.adaptive_weight(rec.detach(), rec, W)) == 0.0
    with pytest.raises(ValueError, match="rec_loss must be a scalar"):
        F.adaptive_weight(torch.ones(2, requires_grad=True), rec, W)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_adaptive_weight_half_types_and_autocast_in_float32(dtype):
    dec, disc = _decoder(dtype)
    W = dec[2].weight
    rec, g = _vq_losses(dec, disc, _gen(5), dtype)
    got = F.adaptive_weight(rec, g * 1e3, W)  # Σ g² past the float16 range if squared in float16
    assert got.dtype == torch.float32 and torch.isfinite(got)
    g_rec = torch.autograd.grad(rec, W, retain_graph=True)[0].float()
    g_gan = torch.autograd.grad(g * 1e3, W, retain_graph=True)[0].float()
    torch.testing.assert_close(got, torch.clamp(g_rec.norm() / (g_gan.norm() + 1e-4), 0, 1e4))
    # gradients whose float16 norm overflows (100 entries of 1e4: the norm is 1e5 > 65 504)
    W16 = torch.nn.Parameter(torch.ones(100, dtype=dtype))
    big, small = (W16.float() * 1e4).sum(), (W16.float() * 10).sum()
    for a, b, want in ((big, small, 1e5 / (100 + 1e-4)), (small, big, 100 / (1e5 + 1e-4))):
        torch.testing.assert_close(F.adaptive_weight(a, b, W16), torch.tensor(want), rtol=1e-2, atol=0)
    dec32, disc32 = _decoder(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rec, g = _vq_losses(dec32, disc32, _gen(6), torch.float32)
        got = F.adaptive_weight(rec, g, dec32[2].weight)
    assert got.dtype == torch.float32


# --------------------------------------------------------------------------- LeCam (lecam-gan)

def lecam_reg(dis_real, dis_fake, ema_D_real, ema_D_fake):
    return torch.mean(tF.relu(dis_real - ema_D_fake).pow(2)) + torch.mean(tF.relu(ema_D_real - dis_fake).pow(2))


def test_lecam_penalty_is_lecam_gans():
    gen = _gen(7)
    real = torch.randn(5, 1, 3, 3, generator=gen, dtype=D).requires_grad_()
    fake = torch.randn(8, generator=gen, dtype=D).requires_grad_()
    er, ef = torch.tensor(0.3, dtype=D), torch.tensor(-0.2, dtype=D)
    got = F.lecam_penalty(real, fake, er, ef)
    want = lecam_reg(real, fake, 0.3, -0.2)
    _close(got, want)
    _grads_close(got, want, [real, fake])
    _close(F.lecam_penalty(real, fake, 0.3, -0.2), want)  # numbers for the averages
    er_grad = torch.tensor(0.3, dtype=D, requires_grad=True)
    assert torch.autograd.grad(F.lecam_penalty(real, fake, er_grad, ef), real)[0] is not None
    assert not F.lecam_penalty(real.detach(), fake.detach(), er_grad, ef).requires_grad  # averages detached


def lecam_ema_run(batches, decay, update_first):
    """lecam-gan's BigGAN training order (``ema_losses.update`` of the batch means, then
    ``lecam_reg``), with update_first=False the other order; averages start at 0."""
    ema_r = ema_f = 0.0
    out = []
    for real, fake in batches:
        if update_first:
            ema_r = ema_r * decay + real.detach().mean() * (1 - decay)
            ema_f = ema_f * decay + fake.detach().mean() * (1 - decay)
        out.append(lecam_reg(real, fake, ema_r, ema_f))
        if not update_first:
            ema_r = ema_r * decay + real.detach().mean() * (1 - decay)
            ema_f = ema_f * decay + fake.detach().mean() * (1 - decay)
    return out, ema_r, ema_f


@pytest.mark.parametrize("update_first", [True, False])
def test_lecam_regularizer_tracks_the_means(update_first):
    gen = _gen(8)
    batches = [(torch.randn(6, generator=gen, dtype=D) + 1, torch.randn(4, 2, generator=gen, dtype=D) - 1)
               for _ in range(4)]
    reg = fnn.LeCamRegularizer(decay=0.9, update_first=update_first).double()
    want, ema_r, ema_f = lecam_ema_run([(r.requires_grad_(), f.requires_grad_()) for r, f in batches], 0.9,
                                       update_first)
    for (r, f), w in zip(batches, want):
        got = reg(r, f)
        _close(got, w)
        _grads_close(got, w, [r, f])
    _close(reg.ema_real, ema_r)
    _close(reg.ema_fake, ema_f)
    state = reg.state_dict()
    assert set(state) == {"ema_real", "ema_fake"}
    fresh = fnn.LeCamRegularizer(decay=0.9, update_first=update_first).double()
    fresh.load_state_dict(state)
    assert fresh.ema_real == reg.ema_real
    assert "decay=0.9" in repr(reg)
    with pytest.raises(ValueError, match="decay"):
        fnn.LeCamRegularizer(decay=1.5)


def test_lecam_regularizer_half_scores_float32_buffers():
    """70 001 scores of 2 (a float16 sum is past 65 504): means and terms in float32."""
    x = torch.full((70_001,), 2.0, dtype=torch.float16)
    reg = fnn.LeCamRegularizer(decay=0.0)
    out = reg(x, -x)
    assert out.dtype == torch.float16 and float(reg.ema_real) == 2.0 and float(reg.ema_fake) == -2.0
    assert float(out) == 32.0  # relu(2 − (−2))² + relu(2 − (−2))²
    # one term of 299² = 89 401 (past 65 504) among 70 001: the mean, 1.277, is finite
    real = torch.zeros(70_001, dtype=torch.float16)
    real[0] = 300.0
    out = fnn.LeCamRegularizer(decay=0.0)(real, torch.ones(10, dtype=torch.float16))
    torch.testing.assert_close(out, torch.tensor(299.0**2 / 70_001, dtype=torch.float16))


# --------------------------------------------------------------------------- approximate R1 (FastGen / APT)

def _critic(out=1):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, out)).to(D)


def fastgen_ar1(discriminator, real_data, noise, alpha):
    perturbed = real_data.add(alpha * noise)
    return tF.mse_loss(discriminator(real_data), discriminator(perturbed), reduction="mean")


@pytest.mark.parametrize("out", [1, 3])
def test_approx_r1_is_fastgens(out):
    critic = _critic(out)
    gen = _gen(9)
    real = torch.randn(6, 4, generator=gen, dtype=D)
    noise = torch.randn(6, 4, generator=gen, dtype=D)
    got = F.approx_r1_penalty(critic, real, sigma=0.3, weight=2.5, noise=noise)
    want = 2.5 * fastgen_ar1(critic, real, noise, 0.3)
    _close(got, want)
    _grads_close(got, want, list(critic.parameters()))
    _close(fnn.ApproxR1Penalty(sigma=0.3, weight=2.5)(critic, real, noise=noise), want)
    torch.manual_seed(3)  # the noise from the global generator, drawn like real
    drawn = fastgan.approx_r1_penalty(critic, real)
    torch.manual_seed(3)
    _close(drawn, fastgen_ar1(critic, real, torch.randn_like(real), 0.1))
    with pytest.raises(ValueError, match="noise"):
        F.approx_r1_penalty(critic, real, noise=noise[:2])


def test_approx_r1_approximates_r1_for_small_sigma():
    """For small sigma, ``E_ε (D(x) − D(x + σε))² ≈ σ²‖∇D(x)‖²``: with ``weight = γ/(2σ²)``,
    averaged over many draws, the R1 value (the README's translation between the two)."""
    critic = _critic()
    real = torch.randn(4, 4, generator=_gen(10), dtype=D)
    sigma, gamma = 1e-4, 10.0
    noise = torch.randn(4000, 4, 4, generator=_gen(11), dtype=D)
    vals = torch.stack([F.approx_r1_penalty(critic, real, sigma=sigma, weight=gamma / (2 * sigma**2), noise=n)
                        for n in noise]).detach()
    r1 = F.r1_penalty(critic, real, gamma=gamma).detach()
    torch.testing.assert_close(vals.mean(), r1, rtol=0.05, atol=0)


# --------------------------------------------------------------------------- list/tuple critics

class MultiScale(torch.nn.Module):
    """GigaGAN-style: several heads at several scales, a list (or tuple) of outputs."""

    def __init__(self, kind=list):
        super().__init__()
        torch.manual_seed(2)
        self.a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(D)
        self.b = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.SiLU(), torch.nn.Linear(5, 1)).to(D)
        self.kind = kind

    def forward(self, x):
        return self.kind([self.a(x), self.b(x[:, ::2] * 0.5), self.a(x * x).sum(1, keepdim=True)])


def _sum_of_sums_grad(critic, x):
    x = x.detach().requires_grad_()
    total = sum(o.sum() for o in critic(x))
    return torch.autograd.grad(total, x, create_graph=True)[0]


@pytest.mark.parametrize("kind", [list, tuple])
def test_list_critics_in_r1_r2_and_gp(kind):
    critic = MultiScale(kind)
    gen = _gen(12)
    real, fake = torch.randn(5, 4, generator=gen, dtype=D), torch.randn(5, 4, generator=gen, dtype=D)
    alpha = torch.rand(5, generator=gen, dtype=D)
    params = list(critic.parameters())
    g = _sum_of_sums_grad(critic, real)
    want = 10.0 / 2 * g.square().sum(1).mean()
    got = F.r1_penalty(critic, real)
    _close(got, want)
    _grads_close(got, want, params)
    g = _sum_of_sums_grad(critic, fake)
    _close(F.r2_penalty(critic, fake, gamma=3.0), 1.5 * g.square().sum(1).mean())
    x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    g = _sum_of_sums_grad(critic, x_hat)
    want = 10.0 * (g.norm(dim=1) - 1).square().mean()
    got = F.gradient_penalty(critic, real, fake, alpha=alpha)
    _close(got, want)
    _grads_close(got, want, params)


def test_list_critic_errors():
    real = torch.randn(3, 4, dtype=D)
    with pytest.raises(TypeError, match="empty"):
        F.r1_penalty(lambda x: [], real)
    with pytest.raises(TypeError, match=r"output \[1\] is a str"):
        F.r1_penalty(lambda x: [x.sum(), "no"], real)
    with pytest.raises(ValueError, match="does not depend"):
        F.r1_penalty(lambda x: (torch.zeros(2), torch.ones(1)), real)


# --------------------------------------------------------------------------- path length (StyleGAN2-ADA)

class Synthesis(torch.nn.Module):
    def __init__(self, num_ws):
        super().__init__()
        torch.manual_seed(4)
        self.num_ws = num_ws
        self.fc = torch.nn.Linear(6 * max(num_ws, 1), 2 * 4 * 5).to(D)

    def forward(self, ws):
        return torch.tanh(self.fc(ws.reshape(ws.shape[0], -1))).view(-1, 2, 4, 5)


def stylegan2_ada_pl(gen_img, gen_ws, pl_mean_buf, pl_decay, pl_weight):
    """StyleGAN2-ADA's Gpl phase (its ``gen_ws`` is (B, num_ws, w_dim); for (B, w_dim) the
    mean over ws is over one)."""
    pl_noise = torch.randn_like(gen_img) / math.sqrt(gen_img.shape[2] * gen_img.shape[3])
    pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True)[0]
    ws_grads = pl_grads if pl_grads.dim() == 3 else pl_grads[:, None]
    pl_lengths = ws_grads.square().sum(2).mean(1).sqrt()
    pl_mean = pl_mean_buf.lerp(pl_lengths.mean(), pl_decay)
    pl_mean_buf.copy_(pl_mean.detach())
    return (((pl_lengths - pl_mean).square()) * pl_weight).mean()


@pytest.mark.parametrize("num_ws", [0, 3])
def test_path_length_is_stylegan2_adas(num_ws):
    synth = Synthesis(num_ws)
    reg = fnn.PathLengthRegularizer(decay=0.3, weight=1.5).double()
    buf = torch.zeros((), dtype=D)
    gen = _gen(13)
    for step in range(3):
        shape = (5, num_ws, 6) if num_ws else (5, 6)
        ws = torch.randn(shape, generator=gen, dtype=D).requires_grad_()
        torch.manual_seed(100 + step)
        got = reg(synth(ws), ws)
        torch.manual_seed(100 + step)
        want = stylegan2_ada_pl(synth(ws), ws, buf, 0.3, 1.5)
        _close(got, want)
        _close(reg.pl_mean, buf)
        _grads_close(got, want, [ws] + list(synth.parameters()))
    assert set(reg.state_dict()) == {"pl_mean"}


def test_path_length_errors_and_half():
    reg = fnn.PathLengthRegularizer()
    ws = torch.randn(2, 6, dtype=D)
    with pytest.raises(ValueError, match="require grad"):
        reg(Synthesis(0)(ws), ws)
    with pytest.raises(ValueError, match="w must have shape"):
        reg(torch.zeros(3, 1, 2, 2, requires_grad=True), torch.zeros(2, 6, requires_grad=True))
    # J of about 1000 per entry: its float16 square overflows, L (about 2800) does not
    w = torch.randn(4, 8, dtype=torch.float16, requires_grad=True)
    img = (w[:, :, None, None] * torch.ones(4, 8, 30, 30, dtype=torch.float16) * 1000).sum(1, keepdim=True)
    torch.manual_seed(0)
    out = fnn.PathLengthRegularizer(weight=1e-4)(img, w)
    torch.manual_seed(0)
    noise = torch.randn_like(img).double() / 30  # the same draw, the rest in float64
    w64 = w.detach().double().requires_grad_()
    img64 = (w64[:, :, None, None] * torch.ones(4, 8, 30, 30, dtype=D) * 1000).sum(1, keepdim=True)
    J = torch.autograd.grad((img64 * noise).sum(), w64)[0]
    lengths = J.square().sum(1).sqrt()
    want = 1e-4 * (lengths - 0.01 * lengths.mean()).square().mean()
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.double(), want, rtol=2e-2, atol=0)


# --------------------------------------------------------------------------- GradBalancer (audiocraft)

class AudiocraftBalancer:
    """audiocraft's ``Balancer.backward`` with flashy's ``averager`` (one process), by hand."""

    def __init__(self, weights, balance_grads=True, total_norm=1.0, ema_decay=0.999, per_batch_item=True,
                 epsilon=1e-12):
        self.weights, self.balance_grads = weights, balance_grads
        self.total_norm, self.beta = total_norm or 1.0, ema_decay or 1.0
        self.per_batch_item, self.epsilon = per_batch_item, epsilon
        self.total, self.fix = {}, {}

    def backward(self, losses, output):
        norms, grads = {}, {}
        for name, loss in losses.items():
            grad = torch.autograd.grad(loss, [output], retain_graph=True)[0]
            norms[name] = (grad.norm(dim=tuple(range(1, grad.dim())), p=2).mean() if self.per_batch_item
                           else grad.norm(p=2))
            grads[name] = grad
        avg = {}
        for k, v in norms.items():
            self.total[k] = self.total.get(k, 0.0) * self.beta + float(v)
            self.fix[k] = self.fix.get(k, 0.0) * self.beta + 1.0
            avg[k] = self.total[k] / self.fix[k]
        total_weights = sum(self.weights[k] for k in avg)
        out_grad = torch.zeros_like(output)
        effective = torch.tensor(0.0, dtype=output.dtype)
        for name, a in avg.items():
            scale = (self.weights[name] / total_weights * self.total_norm / (self.epsilon + a)
                     if self.balance_grads else self.weights[name])
            out_grad.add_(grads[name], alpha=scale)
            effective += scale * losses[name].detach()
        output.backward(out_grad)
        return effective, avg


def _codec():
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2 * 5)).to(D)


def _codec_losses(model, x, t):
    y = model(x).view(-1, 2, 5)
    return y, {"l1": (y - t).abs().mean(), "l2": (y - t).square().mean() * 3, "adv": -y.mean() * 0.1}


@pytest.mark.parametrize("opts", [{}, {"balance_grads": False}, {"per_batch_item": False, "total_norm": 2.0},
                                  {"ema_decay": 0.5, "epsilon": 1e-3}, {"ema_decay": 0}])
def test_grad_balancer_is_audiocrafts(opts):
    weights = {"l1": 1.0, "l2": 4.0, "adv": 2.0}
    ours_model, theirs_model = _codec(), _codec()
    ours, theirs = fastgan.GradBalancer(weights, **opts), AudiocraftBalancer(weights, **opts)
    gen = _gen(14)
    for step in range(4):
        x, t = torch.randn(4, 3, generator=gen, dtype=D), torch.randn(4, 2, 5, generator=gen, dtype=D) * (step + 1)
        y1, l1 = _codec_losses(ours_model, x, t)
        y2, l2 = _codec_losses(theirs_model, x, t)
        if step == 3:  # a subset of the losses, in another order
            l1, l2 = {k: l1[k] for k in ("adv", "l1")}, {k: l2[k] for k in ("adv", "l1")}
        got = ours.backward(l1, y1)
        want, avg = theirs.backward(l2, y2)
        _close(got, want)
        for k, v in avg.items():
            _close(ours.ema_norms[k], torch.tensor(v, dtype=D))
        for p, q in zip(ours_model.parameters(), theirs_model.parameters()):
            _close(p.grad, q.grad)
    assert set(ours.state_dict()) == {"ema_num", "ema_den"}


def test_grad_balancer_errors_and_half():
    with pytest.raises(ValueError, match="'nope' has no weight"):
        fastgan.GradBalancer({"a": 1.0}).backward({"nope": torch.zeros((), requires_grad=True)},
                                                   torch.zeros(2, requires_grad=True))
    with pytest.raises(TypeError, match="weights"):
        fastgan.GradBalancer([("a", 1.0)])
    # a gradient of 1000 per entry: its norm, 4.6e5, is past the float16 range
    y = torch.randn(3, 70_001, dtype=torch.float16).requires_grad_()
    bal = fastgan.GradBalancer({"a": 1.0, "b": 1.0}, per_batch_item=False)
    eff = bal.backward({"a": y.float().square().sum() * 1e-3, "b": y.float().sum() * 1e3}, y)
    torch.testing.assert_close(bal.ema_norms["b"], torch.tensor(1e3 * (3 * 70_001) ** 0.5, dtype=D), rtol=1e-4,
                               atol=0)
    assert eff.dtype == torch.float16 and torch.isfinite(eff) and torch.isfinite(y.grad).all()
    assert all(torch.isfinite(v) and v > 0 for v in bal.ema_norms.values())


# --------------------------------------------------------------------------- torch.compile, fresh process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_piece_compiles_fullgraph_fresh_process():
    """tests/recipes_compile.py: each piece inside ``torch.compile(fullgraph=True)`` (inductor)
    in a fresh process, values equal eager; a host synchronisation or a Python branch on a
    tensor's value would be a graph break, which fullgraph=True turns into an error."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "tests.recipes_compile"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert out.returncode == 0 and not fails, "\n".join(fails) + out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("OK ")
