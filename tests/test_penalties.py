"""Gradient penalties: the fused norm penalty against the reference on the shapes that
matter, end-to-end critic gradients against plain PyTorch compositions, AMP, bad input,
and weight clipping."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import fastgan
from fastgan import functional as F
from fastgan.tools.cases import DTYPES, CASES

from .conftest import DEVICES, runnable, usable_backends
from .helpers import check_against_reference, sampled

SPEC = CASES["grad_norm_penalty"]
SHAPES = [(1, 3, 8, 8), (64, 3, 32, 32), (4, 1, 256, 256), (1000, 2)]


# per backend: 1 in 2 of option x shape x dtype, 1 in 6 on the Triton interpreter and
# "auto" (each option, shape and dtype met); in full with FASTGAN_FULL_MATRIX=1
@sampled("opt", "shape", "dtype", every={"triton": 6, "auto": 6, "*": 2}, of="backend")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("opt", range(len(SPEC.options)))
def test_norm_penalty_against_reference(shape, dtype, backend, device, opt):
    if not runnable(backend, device):
        pytest.skip(f"{backend} does not run on {device}")
    gen = torch.Generator().manual_seed(7)
    (g,) = SPEC.make_inputs([shape], dtype, device, gen)
    with torch.no_grad():
        g[0] = 0  # a zero row: finite (zero) gradient, never nan
    for reduction in ("mean", "sum", "none"):
        check_against_reference(SPEC, backend, [g], SPEC.options[opt], reduction, gen)


@pytest.mark.parametrize("backend", [b for b in usable_backends() if runnable(b, "cpu")])
def test_norm_penalty_non_contiguous_and_zero_rows(backend):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(8, 3, 16, 16, generator=gen)
    view = base.permute(0, 2, 3, 1)[:, ::2]  # (8, 8, 16, 3), non-contiguous
    assert not view.is_contiguous()
    check_against_reference(SPEC, backend, [view], {}, "mean", gen)
    zeros = torch.zeros(4, 3, 5, 5, requires_grad=True)
    with fastgan.use_backend(backend):
        p = F.grad_norm_penalty(zeros)
        (g,) = torch.autograd.grad(p, zeros)
    assert float(p.detach()) == 1.0 and torch.isfinite(g).all() and not g.any()
    with fastgan.use_backend(backend):
        assert torch.autograd.gradcheck(lambda x: F.grad_norm_penalty(x, center=0.5),
                                        (torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True),))
        z = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
        (gz,) = torch.autograd.grad(F.grad_norm_penalty(z), z, create_graph=True)
        (ggz,) = torch.autograd.grad(gz.sum(), z)
    assert torch.isfinite(ggz).all()


def test_norm_is_per_sample_over_every_non_batch_dim():
    g = torch.zeros(2, 3, 4, 4)
    g[0, 0, 0, 0] = 3.0
    g[0, 2, 3, 1] = 4.0  # sample 0: norm 5 across channels and pixels
    terms = F.grad_norm_penalty(g, reduction="none")
    assert terms.tolist() == [16.0, 1.0]
    assert F.grad_norm_penalty(g, center=0, reduction="none").tolist() == [25.0, 0.0]
    assert F.grad_norm_penalty(g, one_sided=True, center=6.0, reduction="none").tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- end to end

class ConvCritic(nn.Module):
    def __init__(self, channels: int, size: int = 8):
        super().__init__()
        self.c1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.n1 = nn.LayerNorm([8, size, size])
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.n2 = nn.LayerNorm([8, size // 2, size // 2])
        self.head = nn.Conv2d(8, 1, 3, padding=1)  # a PatchGAN-like map

    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.n1(self.c1(x)), 0.2)
        x = torch.nn.functional.leaky_relu(self.n2(self.c2(x)), 0.2)
        return self.head(x)


def mlp_critic(d: int):
    return nn.Sequential(nn.Linear(d, 32), nn.LayerNorm(32), nn.Tanh(), nn.Linear(32, 1))


def _plain_gp(critic, real, fake, alpha, weight=10.0):
    a = alpha.view(-1, *([1] * (real.dim() - 1)))
    x = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return weight * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _plain_r1(critic, x, gamma=10.0):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return gamma / 2 * g.square().sum(dim=list(range(1, g.dim()))).mean()


def _param_grads(critic, loss):
    # a last-layer bias does not move the input gradient: R1/R2 give it no gradient
    grads = torch.autograd.grad(loss, list(critic.parameters()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, critic.parameters())]


CRITICS = [
    pytest.param(lambda: mlp_critic(5), (6, 5), id="mlp-B6"),
    pytest.param(lambda: mlp_critic(5), (1, 5), id="mlp-B1"),
    pytest.param(lambda: ConvCritic(3), (4, 3, 8, 8), id="conv-3ch"),
    pytest.param(lambda: ConvCritic(1), (2, 1, 8, 8), id="conv-1ch"),
    pytest.param(lambda: ConvCritic(4), (1, 4, 8, 8), id="conv-4ch-B1"),
]


@pytest.mark.parametrize("backend", [b for b in usable_backends() if runnable(b, "cpu")])
@pytest.mark.parametrize("make,shape", CRITICS)
def test_wgan_gp_critic_gradients_match_plain_pytorch(make, shape, backend):
    torch.manual_seed(0)
    critic = make()
    real, fake = torch.randn(shape), torch.randn(shape)
    alpha = torch.rand(shape[0])
    with fastgan.use_backend(backend):
        loss = F.wasserstein_d_loss(critic(real), critic(fake)) + F.gradient_penalty(critic, real, fake, alpha=alpha)
        ours = _param_grads(critic, loss)
    plain = -critic(real).mean() + critic(fake).mean() + _plain_gp(critic, real, fake, alpha)
    theirs = _param_grads(critic, plain)
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", [b for b in usable_backends() if runnable(b, "cpu")])
@pytest.mark.parametrize("make,shape", CRITICS)
def test_r1_r2_match_stylegan2_form(make, shape, backend):
    torch.manual_seed(1)
    critic = make()
    real, fake = torch.randn(shape), torch.randn(shape)
    with fastgan.use_backend(backend):
        r1 = F.r1_penalty(critic, real, gamma=5.0)
        r2 = F.r2_penalty(critic, fake, gamma=5.0)
        ours = _param_grads(critic, r1 + r2)
    plain = _plain_r1(critic, real, 5.0) + _plain_r1(critic, fake, 5.0)
    torch.testing.assert_close(r1 + r2, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(ours, _param_grads(critic, plain)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_one_sided_and_default_alpha():
    torch.manual_seed(0)
    critic = mlp_critic(3)
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    p = F.gradient_penalty(critic, real, fake, one_sided=True, center=1e6)
    assert float(p.detach()) == 0.0  # every norm is below the centre
    torch.manual_seed(5)
    p1 = F.gradient_penalty(critic, real, fake)
    torch.manual_seed(5)
    p2 = F.gradient_penalty(critic, real, fake, alpha=torch.rand(8))
    torch.testing.assert_close(p1, p2)


def test_cpu_bf16_autocast():
    torch.manual_seed(0)
    critic = ConvCritic(3)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    alpha = torch.rand(4)
    ref = F.gradient_penalty(critic, real, fake, alpha=alpha)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = F.gradient_penalty(critic, real, fake, alpha=alpha)
        r1 = F.r1_penalty(critic, real)
    assert torch.isfinite(p) and torch.isfinite(r1)
    torch.testing.assert_close(p.float(), ref, rtol=5e-2, atol=5e-2)
    p.backward()
    assert all(torch.isfinite(q.grad).all() for q in critic.parameters() if q.grad is not None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_amp_with_grad_scaler(dtype):
    torch.manual_seed(0)
    critic = ConvCritic(3).cuda()
    real, fake = torch.randn(8, 3, 8, 8, device="cuda"), torch.randn(8, 3, 8, 8, device="cuda")
    alpha = torch.rand(8, device="cuda")
    ref = F.gradient_penalty(critic, real, fake, alpha=alpha)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 16)
    with torch.autocast("cuda", dtype=dtype):
        p = F.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler)
    torch.testing.assert_close(p.float(), ref, rtol=2e-2, atol=2e-2)
    scaler.scale(p).backward()
    assert all(torch.isfinite(q.grad).all() for q in critic.parameters() if q.grad is not None)


def test_scaler_unscales_on_cpu():
    """A scaler's scale does not leak into the penalty (a CPU GradScaler works the same)."""
    torch.manual_seed(0)
    critic = mlp_critic(4)
    real, fake = torch.randn(5, 4), torch.randn(5, 4)
    alpha = torch.rand(5)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    p = F.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler)
    torch.testing.assert_close(p, F.gradient_penalty(critic, real, fake, alpha=alpha), rtol=1e-5, atol=1e-6)


def _quiet(make):
    with warnings.catch_warnings():  # the legacy class is deprecated; a CUDA scaler without CUDA warns
        warnings.simplefilter("ignore")
        return make()


DISABLED_SCALERS = [
    pytest.param(lambda: torch.amp.GradScaler(enabled=False), id="amp-disabled"),
    pytest.param(lambda: torch.amp.GradScaler("cpu", enabled=False), id="amp-cpu-disabled"),
    pytest.param(lambda: torch.cuda.amp.GradScaler(enabled=False), id="legacy-cuda-disabled"),
    pytest.param(lambda: torch.amp.GradScaler("cuda"), id="cuda-without-cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="enabled where CUDA is present")),
]


@pytest.mark.parametrize("make_scaler", DISABLED_SCALERS)
@pytest.mark.parametrize("which", ["gp", "r1", "r2"])
def test_disabled_scaler_is_no_scaler(make_scaler, which):
    """GradScaler(enabled=use_amp) with use_amp False: exactly the scaler=None result."""
    scaler = _quiet(make_scaler)
    assert not scaler.is_enabled()
    torch.manual_seed(0)
    critic = mlp_critic(4)
    real, fake = torch.randn(5, 4), torch.randn(5, 4)
    alpha = torch.rand(5)

    def penalty(**kw):
        if which == "gp":
            return F.gradient_penalty(critic, real, fake, alpha=alpha, **kw)
        return (F.r1_penalty(critic, real, **kw) if which == "r1" else F.r2_penalty(critic, fake, **kw))

    ref = penalty()
    p = penalty(scaler=scaler)
    assert torch.equal(p, ref)
    for a, b in zip(_param_grads(critic, p), _param_grads(critic, ref)):
        assert torch.equal(a, b)


def test_enabled_scaler_still_scales_and_unscales():
    torch.manual_seed(0)
    critic = mlp_critic(4)
    real = torch.randn(5, 4)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    seen = []
    real_scale = scaler.scale
    scaler.scale = lambda t: seen.append(t) or real_scale(t)
    p = F.r1_penalty(critic, real, scaler=scaler)
    assert len(seen) == 1  # the output was scaled before autograd.grad ...
    torch.testing.assert_close(p, F.r1_penalty(critic, real), rtol=1e-5, atol=1e-6)  # ... and unscaled after


@pytest.mark.parametrize("bad", ["amp", 1024.0, object(), torch.tensor(1024.0)], ids=type)
def test_scaler_must_be_a_grad_scaler(bad):
    critic = mlp_critic(3)
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(TypeError, match="scaler"):
        F.gradient_penalty(critic, real, fake, scaler=bad)
    with pytest.raises(TypeError, match="scaler"):
        F.r1_penalty(critic, real, scaler=bad)
    with pytest.raises(TypeError, match="scaler"):
        F.r2_penalty(critic, fake, scaler=bad)


# --------------------------------------------------------------------------- bad input

def test_bad_input():
    critic = mlp_critic(3)
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="alpha"):
        F.gradient_penalty(critic, real, fake, alpha=torch.rand(3))
    with pytest.raises(ValueError, match="alpha"):
        F.gradient_penalty(critic, real, fake, alpha=torch.rand(4, 1))
    with pytest.raises(ValueError, match="same shape"):
        F.gradient_penalty(critic, real, torch.randn(5, 3))
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.gradient_penalty(lambda x: critic.weight_sum if False else torch.ones(x.shape[0], requires_grad=True),
                           real, fake)
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.r1_penalty(lambda x: torch.zeros(()).requires_grad_(), real)
    with pytest.raises(ValueError, match="batch dimension"):
        F.grad_norm_penalty(torch.tensor(3.0))
    with pytest.raises(TypeError, match="grads"):
        F.grad_norm_penalty(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="critic"):
        F.gradient_penalty("not a critic", real, fake)
    with pytest.raises(ValueError, match="reduction"):
        F.grad_norm_penalty(real, reduction="avg")
    with pytest.raises(TypeError, match="one_sided"):
        F.grad_norm_penalty(real, one_sided="yes")
    with pytest.raises(ValueError, match="real.*fake"):
        F.gradient_penalty(critic, real, torch.randn(4, 3, device="meta"))


@pytest.mark.parametrize("const", [lambda x: torch.ones(x.shape[0]), lambda x: torch.ones(x.shape[0]).sum() * 0 + 3,
                                   lambda x: x.detach().sum(dim=1)], ids=["ones", "scalar", "detached"])
def test_critic_output_not_depending_on_its_input(const):
    """An output without a graph to the input: the promised ValueError, not autograd's RuntimeError."""
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.r1_penalty(const, real)
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.r2_penalty(const, fake)
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.gradient_penalty(const, real, fake)
    scaler = torch.amp.GradScaler("cpu")
    with pytest.raises(ValueError, match="does not depend on its input"):
        F.r1_penalty(const, real, scaler=scaler)
    with torch.no_grad(), pytest.raises(ValueError, match="gradients are disabled"):
        F.r1_penalty(mlp_critic(3), real)
    with pytest.raises(TypeError, match="floating-point"):
        F.r1_penalty(lambda x: (x > 0).long().sum(dim=1), real)


def test_empty_batch_is_an_error():
    critic = mlp_critic(3)
    empty = torch.randn(0, 3)
    with pytest.raises(ValueError, match="real.*batch"):
        F.r1_penalty(critic, empty)
    with pytest.raises(ValueError, match="fake.*batch"):
        F.r2_penalty(critic, empty)
    with pytest.raises(ValueError, match="real.*batch"):
        F.gradient_penalty(critic, empty, empty)
    with pytest.raises(ValueError, match="real.*batch"):
        F.r1_penalty(ConvCritic(3), torch.randn(0, 3, 8, 8))


# --------------------------------------------------------------------------- weight clipping

def test_clip_weights_():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    expect = [p.detach().clone().clamp_(-0.05, 0.05) for p in m.parameters()]
    assert F.clip_weights_(m, 0.05) is None
    for p, e in zip(m.parameters(), expect):
        assert torch.equal(p, e)
    ps = [torch.randn(3, 3, dtype=torch.float64), torch.randn(5)]
    expect = [p.clamp(-0.1, 0.1) for p in ps]
    fastgan.clip_weights_(ps, clip=0.1)
    assert all(torch.equal(p, e) for p, e in zip(ps, expect))
    with pytest.raises(ValueError, match="clip"):
        F.clip_weights_(m, -1.0)
    with pytest.raises(TypeError, match="params_or_module"):
        F.clip_weights_([1.0, 2.0])


# --------------------------------------------------------------------------- DRAGAN and drift

def _dragan_by_hand(critic, real, alpha, noise, c, weight):
    """The authors' form written out (kodalinaveen3/DRAGAN, DRAGAN.ipynb's perturbation
    ``X + 0.5 * X.std() * np.random.random(X.shape)``: numpy's std, ddof 0):
    x_p = x + c·std(x)·u, x̂ = x + alpha·(x_p − x)."""
    import numpy as np
    x_p = real + c * float(np.std(real.detach().numpy())) * noise
    a = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (real + a * (x_p - real)).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_dragan_matches_the_hand_written_form(backend):
    gen = torch.Generator().manual_seed(4)
    critic = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                 torch.nn.Linear(3 * 4 * 4, 1)).double()
    real = torch.randn(6, 2, 6, 6, generator=gen, dtype=torch.float64)
    alpha = torch.rand(6, generator=gen, dtype=torch.float64)
    noise = torch.rand(6, 2, 6, 6, generator=gen, dtype=torch.float64)
    with fastgan.use_backend(backend):
        ours = F.dragan_penalty(critic, real, weight=5.0, c=0.5, alpha=alpha, noise=noise)
    theirs = _dragan_by_hand(critic, real, alpha, noise, 0.5, 5.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    params = list(critic.parameters())
    for a, b in zip(torch.autograd.grad(ours, params, allow_unused=True),
                    torch.autograd.grad(theirs, params, allow_unused=True)):
        assert (a is None) == (b is None)  # the last bias does not enter ∂D/∂x
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    drawn = F.dragan_penalty(critic, real)  # drawn alpha and noise: finite, non-negative
    assert drawn.isfinite() and drawn >= 0
    with pytest.raises(ValueError, match="noise must have real's shape"):
        F.dragan_penalty(critic, real, noise=noise[:3])
    with pytest.raises(ValueError, match="alpha must have shape"):
        F.dragan_penalty(critic, real, alpha=alpha[:2])


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_drift_penalty(backend):
    x = torch.tensor([0.0, 3.0, -2.0, 1e4], dtype=torch.float64, requires_grad=True)
    with fastgan.use_backend(backend):
        p = F.drift_penalty(x, eps=1e-3)
    torch.testing.assert_close(p, 1e-3 * (x.detach() ** 2).mean(), rtol=1e-14, atol=0)
    (g,) = torch.autograd.grad(p, x)
    torch.testing.assert_close(g, 2e-3 * x.detach() / 4, rtol=1e-14, atol=0)
    assert F.drift_penalty(x.detach().half()).dtype == torch.float16
    with pytest.raises(TypeError, match="eps"):
        F.drift_penalty(x, eps="small")
