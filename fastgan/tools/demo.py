"""A tiny GAN on synthetic 2-d data (a ring of 8 Gaussians), trained with fastgan losses.

    fastgan demo --loss hinge --steps 300

Prints the discriminator and generator losses as it trains and, at the end, how
many of the 8 modes the generator covers.  Runs in seconds on a CPU.  The data, the
MLPs and the mode count are ``fastgan compare``'s (``compare.ring``, ``compare.mlp``,
``compare.mode_metrics``); a mode counts here when any generated sample lies within
3σ of it.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .. import functional as F
from .compare import mlp, mode_metrics, ring


def train(loss: str = "hinge", steps: int = 300, batch: int = 256, seed: int = 0, log_every: int = 50,
          device: str = "cpu", out=print) -> dict:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = ring()
    G, D = mlp(2, 2, 64, nn.LeakyReLU(0.2)).to(device), mlp(2, 1, 64, nn.LeakyReLU(0.2)).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        real = data.sample(batch, gen).to(device)
        z = torch.randn(batch, 2, generator=gen).to(device)
        fake = G(z)
        loss_d = F.d_loss(loss, D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.g_loss(loss, D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if loss == "wasserstein":  # the original WGAN keeps the critic Lipschitz by clipping
            F.clip_weights_(D, 0.05)
        if step % log_every == 0 or step == steps:
            out(f"step {step:5d}  loss_d {loss_d.item():+.4f}  loss_g {loss_g.item():+.4f}")
    with torch.no_grad():
        samples = G(torch.randn(2048, 2, generator=gen).to(device)).cpu()
    covered = mode_metrics(samples, data, min_fraction=0.0)["modes"]
    seconds = time.perf_counter() - t0
    out(f"{loss}: {covered}/{len(data.centers)} modes covered after {steps} steps ({seconds:.1f} s)")
    return {"loss": loss, "steps": steps, "modes_covered": covered, "seconds": seconds,
            "loss_d": loss_d.item(), "loss_g": loss_g.item()}
