"""A HiFi-GAN-style training step with real modules: a tiny generator and HiFi-GAN V1's
discriminators (5 multi-period + 3 multi-scale, the real kernel sizes, strides, paddings,
groups and periods, so every score tensor and feature map has the real time shape; the
channel widths divided by ``--width-div``), trained one step with the losses written as
HiFi-GAN's Python loops and with fastgan's list losses.

One step = the discriminator update (LSGAN over the 8 discriminators, HiFi-GAN's
``mean((1 − r)²) + mean(g²)``) and the generator update (LSGAN generator loss over the 8
discriminators + 2 × feature matching over the 54 maps; HiFi-GAN's mel L1 term is left
out: it is the same in both).  ``--check`` (also run first by default) computes both in
float64 and compares every parameter gradient of the discriminators and the generator.

    python benchmarks/hifigan_step.py --markdown benchmarks/results/hifigan-step-cpu.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn import functional as tF

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastgan import functional as F  # noqa: E402
from fastgan.tools.bench import device_name  # noqa: E402

LRELU = 0.1


class Generator(nn.Module):
    """Noise ``(B, 8, T/16)`` → waveform ``(B, 1, T)``: transposed convolutions, x16."""

    def __init__(self, ch: int = 16):
        super().__init__()
        self.pre = nn.Conv1d(8, ch, 7, padding=3)
        self.ups = nn.ModuleList([nn.ConvTranspose1d(ch, ch, 8, 4, padding=2),
                                  nn.ConvTranspose1d(ch, ch, 8, 4, padding=2)])
        self.post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, z):
        x = self.pre(z)
        for up in self.ups:
            x = up(tF.leaky_relu(x, LRELU))
        return torch.tanh(self.post(tF.leaky_relu(x, LRELU)))


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's DiscriminatorP: the waveform folded by ``period``, 2-D convolutions
    (5, 1) stride (3, 1), then (5, 1) stride 1 and a (3, 1) output convolution."""

    def __init__(self, period: int, div: int):
        super().__init__()
        self.period = period
        chans = [1] + [max(1, c // div) for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList([nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0))
                                    for i in range(5)])
        self.post = nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x):
        b, c, t = x.shape
        if t % self.period:
            x = tF.pad(x, (0, self.period - t % self.period), "reflect")
            t = x.shape[-1]
        x = x.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = tF.leaky_relu(conv(x), LRELU)
            fmap.append(x)
        x = self.post(x)
        fmap.append(x)
        return x.flatten(1, -1), fmap


class ScaleDiscriminator(nn.Module):
    """HiFi-GAN's DiscriminatorS: grouped 1-D convolutions of kernel 15 / 41 / 5."""

    SPEC = ((128, 15, 1, 1, 7), (128, 41, 2, 4, 20), (256, 41, 2, 16, 20), (512, 41, 4, 16, 20),
            (1024, 41, 4, 16, 20), (1024, 41, 1, 16, 20), (1024, 5, 1, 1, 2))

    def __init__(self, div: int):
        super().__init__()
        layers, c_in = [], 1
        for c, k, s, g, p in self.SPEC:
            c_out = max(1, c // div)
            groups = max(1, min(g, c_in // 2)) if c_in > 1 else 1
            while c_in % groups or c_out % groups:
                groups -= 1
            layers.append(nn.Conv1d(c_in, c_out, k, s, groups=groups, padding=p))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.post = nn.Conv1d(c_in, 1, 3, 1, padding=1)

    def forward(self, x):
        fmap = []
        for conv in self.convs:
            x = tF.leaky_relu(conv(x), LRELU)
            fmap.append(x)
        x = self.post(x)
        fmap.append(x)
        return x.flatten(1, -1), fmap


class Discriminators(nn.Module):
    """MPD (periods 2, 3, 5, 7, 11) + MSD (3 scales, average pooling between): 8 scores,
    5 × 6 + 3 × 8 = 54 feature maps."""

    def __init__(self, div: int):
        super().__init__()
        self.mpd = nn.ModuleList([PeriodDiscriminator(p, div) for p in (2, 3, 5, 7, 11)])
        self.msd = nn.ModuleList([ScaleDiscriminator(div) for _ in range(3)])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, y, y_hat):
        rs, gs, frs, fgs = [], [], [], []
        for d in self.mpd:
            for x, scores, fmaps in ((y, rs, frs), (y_hat, gs, fgs)):
                s, f = d(x)
                scores.append(s)
                fmaps.append(f)
        for i, d in enumerate(self.msd):
            if i:
                y, y_hat = self.pool(y), self.pool(y_hat)
            for x, scores, fmaps in ((y, rs, frs), (y_hat, gs, fgs)):
                s, f = d(x)
                scores.append(s)
                fmaps.append(f)
        return rs, gs, frs, fgs


# --- the losses: HiFi-GAN's loops (written from its convention) and fastgan -----------------

def loops_d(rs, gs):
    loss = 0
    for dr, dg in zip(rs, gs):
        loss = loss + torch.mean((1 - dr) ** 2) + torch.mean(dg ** 2)
    return loss


def loops_g(gs, frs, fgs):
    loss_gen = 0
    for dg in gs:
        loss_gen = loss_gen + torch.mean((1 - dg) ** 2)
    loss_fm = 0
    for dr, dg in zip(frs, fgs):
        for rl, gl in zip(dr, dg):
            loss_fm = loss_fm + torch.mean(torch.abs(rl - gl))
    return loss_gen + 2 * loss_fm


def fused_d(rs, gs):
    return 2 * F.lsgan_d_loss(rs, gs)          # fastgan's LSGAN has the ½: ×2 is HiFi-GAN's


def fused_g(gs, frs, fgs):
    # HiFi-GAN keeps the real features' gradient path (its feature_loss does not detach):
    # in the generator step the real features do not depend on the generator, so it is 0
    return 2 * F.lsgan_g_loss(gs) + F.feature_matching_loss(frs, fgs, weight=2.0, detach_real=False)


LOSSES = {"loops": (loops_d, loops_g), "fastgan": (fused_d, fused_g)}


def step(gen, disc, z, y, losses):
    """One D update's and one G update's gradients (``autograd.grad``: nothing accumulates)."""
    loss_d_fn, loss_g_fn = losses
    y_hat = gen(z)
    rs, gs, _, _ = disc(y, y_hat.detach())
    loss_d = loss_d_fn(rs, gs)
    grads_d = torch.autograd.grad(loss_d, list(disc.parameters()))
    _, gs, frs, fgs = disc(y, y_hat)
    loss_g = loss_g_fn(gs, frs, fgs)
    grads_g = torch.autograd.grad(loss_g, list(gen.parameters()))
    return loss_d, loss_g, grads_d, grads_g


def build(batch: int, segment: int, div: int, dtype, seed: int = 0):
    torch.manual_seed(seed)
    gen, disc = Generator().to(dtype), Discriminators(div).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(batch, 8, segment // 16, generator=g, dtype=dtype)
    y = torch.randn(batch, 1, segment, generator=g, dtype=dtype).tanh()
    return gen, disc, z, y


def check(batch: int = 1, segment: int = 8192, div: int = 32) -> float:
    """float64: the largest relative difference over both losses and every parameter
    gradient between the loops and fastgan; raises if it is above 1e-10."""
    gen, disc, z, y = build(batch, segment, div, torch.float64)
    a = step(gen, disc, z, y, LOSSES["loops"])
    b = step(gen, disc, z, y, LOSSES["fastgan"])
    worst = 0.0
    for x, w in zip([a[0], a[1], *a[2], *a[3]], [b[0], b[1], *b[2], *b[3]]):
        x, w = x.detach(), w.detach()
        worst = max(worst, float((x - w).abs().max()) / max(float(x.abs().max()), 1e-300))
    if worst > 1e-10:
        raise AssertionError(f"the loops and fastgan differ: largest relative difference {worst:.3e}")
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, action="append", help="batch sizes to time (default 1 and 16)")
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--width-div", type=int, default=32, help="divide HiFi-GAN V1's channel widths by this")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    n_maps = sum(len(f) for f in Discriminators(a.width_div)(torch.zeros(1, 1, a.segment),
                                                            torch.zeros(1, 1, a.segment))[2])
    worst = check(1, a.segment, a.width_div)
    lines = [f"check (float64, batch 1): largest relative difference of the losses and of every "
             f"parameter gradient, loops vs fastgan: {worst:.1e}"]
    print(lines[0], flush=True)
    rows = []
    for batch in a.batch or [1, 16]:
        gen, disc, z, y = build(batch, a.segment, a.width_div, torch.float32)
        for losses in LOSSES.values():  # warm-up
            for _ in range(3):
                step(gen, disc, z, y, losses)
        per = {k: [] for k in LOSSES}
        for _ in range(a.rounds):
            for name, losses in LOSSES.items():
                t0 = time.perf_counter()
                step(gen, disc, z, y, losses)
                per[name].append(time.perf_counter() - t0)
        ratio = [lo / fu for lo, fu in zip(per["loops"], per["fastgan"])]
        med = {k: statistics.median(v) * 1e3 for k, v in per.items()}
        row = (f"| {batch} | {med['loops']:.1f} [{min(per['loops']) * 1e3:.1f}–{max(per['loops']) * 1e3:.1f}] | "
               f"{med['fastgan']:.1f} [{min(per['fastgan']) * 1e3:.1f}–{max(per['fastgan']) * 1e3:.1f}] | "
               f"{statistics.median(ratio):.2f} [{min(ratio):.2f}–{max(ratio):.2f}] |")
        rows.append(row)
        print(row, flush=True)
    md = ["# A HiFi-GAN-style training step: HiFi-GAN's loss loops vs fastgan's list losses", "",
          f"Machine: {device_name('cpu')}, {torch.get_num_threads()} torch threads, torch {torch.__version__}.",
          f"Command: `python benchmarks/hifigan_step.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
          f"Models: a tiny generator; HiFi-GAN V1's 8 discriminators with their real kernels, strides, "
          f"periods and groups, channel widths / {a.width_div} ({n_maps} feature maps), segment {a.segment}.",
          "One step: D forward + loss + parameter gradients, then G forward through D + loss + parameter "
          "gradients (float32).", "", *lines, "",
          "Interleaved rounds (one step per provider per round); ms, median [min–max]; ratio per round.", "",
          "| batch | loops ms | fastgan ms | loops / fastgan |", "|---|---|---|---|", *rows, ""]
    text = "\n".join(md)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
