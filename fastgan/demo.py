"""A tiny GAN on synthetic 2-d data (a ring of 8 Gaussians), trained with fastgan losses.

    fastgan demo --loss hinge --steps 300

Prints the discriminator and generator losses as it trains and, at the end, how
many of the 8 modes the generator covers.  Runs in seconds on a CPU.
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from . import functional as F


def ring(n: int, gen: torch.Generator, modes: int = 8, radius: float = 2.0, std: float = 0.05):
    k = torch.randint(0, modes, (n,), generator=gen)
    angle = 2 * math.pi * k.float() / modes
    centers = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return centers + std * torch.randn(n, 2, generator=gen)


def modes_covered(samples: torch.Tensor, modes: int = 8, radius: float = 2.0, std: float = 0.05) -> int:
    angle = 2 * math.pi * torch.arange(modes).float() / modes
    centers = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    d = torch.cdist(samples, centers)
    near = d.min(dim=1)
    hit = near.values < 3 * std
    return int(torch.unique(near.indices[hit]).numel())


def mlp(inp: int, out: int, width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, out))


def train(loss: str = "hinge", steps: int = 300, batch: int = 256, seed: int = 0, log_every: int = 50,
          device: str = "cpu", out=print) -> dict:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = mlp(2, 2).to(device), mlp(2, 1).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        real = ring(batch, gen).to(device)
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
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-0.05, 0.05)
        if step % log_every == 0 or step == steps:
            out(f"step {step:5d}  loss_d {loss_d.item():+.4f}  loss_g {loss_g.item():+.4f}")
    with torch.no_grad():
        samples = G(torch.randn(2048, 2, generator=gen).to(device)).cpu()
    covered = modes_covered(samples)
    seconds = time.perf_counter() - t0
    out(f"{loss}: {covered}/8 modes covered after {steps} steps ({seconds:.1f} s)")
    return {"loss": loss, "steps": steps, "modes_covered": covered, "seconds": seconds,
            "loss_d": loss_d.item(), "loss_g": loss_g.item()}
