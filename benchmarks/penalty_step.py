"""WGAN-GP critic step and weight clipping, fastgan versus the plain PyTorch composition.

  clip       clip_weights_ (fused torch._foreach clamps) vs a Python loop of p.data.clamp_
             over a DCGAN-sized critic's parameters
  gp-step    one WGAN-GP critic step (DCGAN 64x64 critic with LayerNorm, batch B):
             wasserstein_d_loss + gradient_penalty, forward and backward, fastgan (backend
             auto) vs the plain composition (per-sample g.flatten(1).norm(dim=1))
  penalty    the penalty arithmetic alone: grad_norm_penalty forward+backward on a
             gradient of the same shape, to say how much of the step it is

    python benchmarks/penalty_step.py --batch 64 --markdown benchmarks/results/penalty-step-cpu.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan.tools import bench  # noqa: E402


def dcgan_critic(size: int = 64) -> nn.Module:
    layers, c, s = [], 3, size
    for out in (64, 128, 256, 512):
        s //= 2
        layers += [nn.Conv2d(c, out, 4, 2, 1), nn.LayerNorm([out, s, s]), nn.LeakyReLU(0.2)]
        c = out
    layers += [nn.Conv2d(c, 1, s, 1, 0)]
    return nn.Sequential(*layers)


def plain_gp(critic, real, fake, alpha, weight=10.0):
    a = alpha.view(-1, 1, 1, 1)
    x = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return weight * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def timeit(fn, device, min_run_time):
    return bench.time_fn(fn, device, min_run_time)["median_us"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--min-run-time", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the whole-step timing")
    p.add_argument("--markdown")
    a = p.parse_args()
    dev = a.device
    torch.manual_seed(0)
    critic = dcgan_critic().to(dev)
    params = list(critic.parameters())
    nparams = sum(q.numel() for q in params)
    real = torch.randn(a.batch, 3, 64, 64, device=dev)
    fake = torch.randn(a.batch, 3, 64, 64, device=dev)
    alpha = torch.rand(a.batch, device=dev)

    def loop_clip():
        for q in params:
            q.data.clamp_(-0.01, 0.01)

    t_loop = timeit(loop_clip, dev, a.min_run_time)
    t_fused = timeit(lambda: fastgan.clip_weights_(critic, 0.01), dev, a.min_run_time)
    critic = dcgan_critic().to(dev)  # fresh weights for the step

    def step_fastgan():
        loss = fastgan.F.wasserstein_d_loss(critic(real), critic(fake)) + \
            fastgan.gradient_penalty(critic, real, fake, alpha=alpha)
        return torch.autograd.grad(loss, list(critic.parameters()))

    def step_plain():
        loss = -critic(real).mean() + critic(fake).mean() + plain_gp(critic, real, fake, alpha)
        return torch.autograd.grad(loss, list(critic.parameters()))

    # the step takes ~1 s on CPU and this machine's speed drifts by tens of percent over
    # minutes: interleave the two, several rounds, and take each one's median
    rounds = {"f": [], "p": []}
    for r in range(a.rounds):
        order = (("f", step_fastgan), ("p", step_plain)) if r % 2 == 0 else (("p", step_plain), ("f", step_fastgan))
        for key, fn in order:
            fn()
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev == "cuda":
                torch.cuda.synchronize()
            rounds[key].append((time.perf_counter() - t0) * 1e6)
    t_step_f = statistics.median(rounds["f"])
    t_step_p = statistics.median(rounds["p"])
    g = torch.randn(a.batch, 3, 64, 64, device=dev, requires_grad=True)
    t_pen_f = timeit(lambda: torch.autograd.grad(fastgan.grad_norm_penalty(g), g), dev, a.min_run_time)
    t_pen_p = timeit(lambda: torch.autograd.grad(((g.flatten(1).norm(dim=1) - 1) ** 2).mean(), g), dev,
                     a.min_run_time)
    backend = fastgan.backends.resolve(real.device).__name__.rsplit(".", 1)[-1].replace("_backend", "")
    lines = [
        f"| clip, {nparams / 1e6:.2f} M parameters in {len(params)} tensors | {t_fused:.1f} | {t_loop:.1f} | "
        f"{t_loop / t_fused:.2f}x |",
        f"| WGAN-GP critic step, batch {a.batch}, 64x64 (median of {a.rounds} interleaved rounds) | {t_step_f:.0f} | "
        f"{t_step_p:.0f} | {t_step_p / t_step_f:.2f}x |",
        f"| penalty arithmetic alone, grad of {a.batch}x3x64x64 | {t_pen_f:.0f} | {t_pen_p:.0f} | "
        f"{t_pen_p / t_pen_f:.2f}x |",
    ]
    for line in lines:
        print(line)
    print(f"penalty arithmetic is {100 * t_pen_f / t_step_f:.1f}% of the fastgan step "
          f"({100 * t_pen_p / t_step_p:.1f}% of the plain one); backend {backend}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(f"# WGAN-GP critic step and weight clipping ({dev})\n\n")
            f.write(f"Machine: {bench.device_name(dev)}, {torch.get_num_threads()} threads, torch {torch.__version__},"
                    f" fastgan backend `{backend}` (auto). Medians, {bench.metadata(dev, 0, False, a.min_run_time)['timer']}."
                    f"\nCommand: `python benchmarks/penalty_step.py --batch {a.batch} --markdown ...`\n\n")
            f.write("| case | fastgan µs | plain PyTorch µs | speed-up |\n|---|---|---|---|\n")
            f.write("\n".join(lines) + "\n\n")
            f.write(f"The penalty arithmetic (norms, penalty, its backward) is {100 * t_pen_f / t_step_f:.1f}% of the "
                    f"fastgan step and {100 * t_pen_p / t_step_p:.1f}% of the plain one: the critic's forward and "
                    f"double backward dominate, so a faster penalty moves the whole step by at most that much.\n")


if __name__ == "__main__":
    main()
