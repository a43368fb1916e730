"""``fastgan compare``: measure what the usual guidance claims about GAN losses, on
reproducible small runs with fastgan's own losses.

Every configuration trains the same generator and discriminator (MLPs, 2-d data)
with the same optimiser settings, except where the method itself prescribes
otherwise (stated per configuration: WGAN's RMSprop and n_critic = 5, WGAN-GP's
Adam(0.5, 0.9) and n_critic = 5).  Data: a ring of 8 Gaussians and a 5×5 grid of
25 Gaussians (the standard mode-collapse benchmarks).

Metrics, per run and averaged over seeds (mean ± std):
  modes      modes covered: a mode counts when at least 1 % of the generated samples
             are high-quality samples of it (within 3σ of its centre)
  hq         the fraction of high-quality samples (within 3σ of some mode)
  W1         the exact 1-Wasserstein distance between equal-size generated and real
             samples, by optimal assignment (scipy.optimize.linear_sum_assignment)
  |∇G|       mean per-sample norm of ∂L_G/∂G(z) (the generator's gradient through D)
             over training: the vanishing-gradient evidence
  corr       Pearson correlation over training between −L_D (the critic's estimate
             of the distance) and W1: the "meaningful loss" claim
  time       wall time per run
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from . import functional as F


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Mixture:
    name: str
    centers: torch.Tensor
    std: float

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        k = torch.randint(0, len(self.centers), (n,), generator=gen)
        return self.centers[k] + self.std * torch.randn(n, 2, generator=gen)


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.05) -> Mixture:
    a = 2 * math.pi * torch.arange(modes, dtype=torch.float32) / modes
    return Mixture("ring8", torch.stack([radius * a.cos(), radius * a.sin()], 1), std)


def grid(side: int = 5, spacing: float = 1.0, std: float = 0.05) -> Mixture:
    r = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(r, r, indexing="ij")
    return Mixture("grid25", torch.stack([xx.flatten(), yy.flatten()], 1), std)


DATASETS = {"ring8": ring, "grid25": grid}


# --------------------------------------------------------------------------- metrics

def mode_metrics(samples: torch.Tensor, data: Mixture, min_fraction: float = 0.01) -> Dict[str, float]:
    """Modes covered and the fraction of high-quality samples (within 3σ of a mode)."""
    d = torch.cdist(samples.float(), data.centers)
    near = d.min(dim=1)
    hq = near.values <= 3 * data.std
    counts = torch.bincount(near.indices[hq], minlength=len(data.centers))
    covered = int((counts >= max(1, math.ceil(min_fraction * len(samples)))).sum())
    return {"modes": covered, "hq": float(hq.float().mean())}


def wasserstein1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact W1 between two equal-size point sets (optimal assignment)."""
    from scipy.optimize import linear_sum_assignment
    if len(a) != len(b):
        raise ValueError(f"wasserstein1 needs equal-size sets, got {len(a)} and {len(b)}")
    cost = torch.cdist(a.double(), b.double()).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    if len(x) < 3:
        return float("nan")
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sx = math.sqrt(sum((a - mx) ** 2 for a in x))
    sy = math.sqrt(sum((b - my) ** 2 for b in y))
    if sx == 0 or sy == 0:
        return float("nan")
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sx * sy)


# --------------------------------------------------------------------------- configurations

@dataclass(frozen=True)
class Config:
    name: str
    loss: str                       # the kind of F.d_loss / F.g_loss
    g_kwargs: dict = field(default_factory=dict)
    n_critic: int = 1
    optimizer: str = "adam"
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    spectral_norm: bool = False
    clip: Optional[float] = None
    gp: float = 0.0
    r1: float = 0.0

    def describe(self) -> str:
        opt = (f"Adam(lr={self.lr}, betas={self.betas})" if self.optimizer == "adam"
               else f"RMSprop(lr={self.lr})")
        extra = [f"n_critic={self.n_critic}"]
        if self.spectral_norm:
            extra.append("spectral norm on D")
        if self.clip:
            extra.append(f"weight clipping ±{self.clip}")
        if self.gp:
            extra.append(f"gradient penalty λ={self.gp}")
        if self.r1:
            extra.append(f"R1 γ={self.r1}")
        if self.g_kwargs:
            extra.append(", ".join(f"G {k}={v}" for k, v in self.g_kwargs.items()))
        return f"{self.loss} loss, {opt}, " + ", ".join(extra)


CONFIGS: Dict[str, Config] = {c.name: c for c in (
    Config("bce-minimax", "bce", {"saturating": True}),
    Config("bce-ns", "bce"),
    Config("lsgan", "lsgan"),
    Config("hinge", "hinge"),
    Config("hinge-sn", "hinge", spectral_norm=True),
    Config("wgan-clip", "wasserstein", n_critic=5, optimizer="rmsprop", lr=5e-5, clip=0.01),
    Config("wgan-gp", "wasserstein", n_critic=5, lr=1e-4, betas=(0.5, 0.9), gp=10.0),
    Config("bce-ns-r1", "bce", r1=1.0),
)}


def mlp(inp: int, out: int, width: int, act: nn.Module, sn: bool = False) -> nn.Sequential:
    def lin(a, b):
        layer = nn.Linear(a, b)
        return nn.utils.parametrizations.spectral_norm(layer) if sn else layer
    return nn.Sequential(lin(inp, width), act, lin(width, width), act, lin(width, out))


# --------------------------------------------------------------------------- training

def train_one(cfg: Config, data: Mixture, seed: int, steps: int, batch: int = 256, width: int = 128,
              z_dim: int = 8, evals: int = 10, eval_n: int = 512, device: str = "cpu") -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G = mlp(z_dim, 2, width, nn.ReLU()).to(device)
    D = mlp(2, 1, width, nn.LeakyReLU(0.2), sn=cfg.spectral_norm).to(device)
    if cfg.optimizer == "adam":
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    else:
        opt_g = torch.optim.RMSprop(G.parameters(), lr=cfg.lr)
        opt_d = torch.optim.RMSprop(D.parameters(), lr=cfg.lr)
    eval_z = torch.randn(eval_n, z_dim, generator=gen).to(device)
    eval_real = data.sample(eval_n, gen)
    curve = {"step": [], "w1": [], "neg_loss_d": [], "grad_g": []}
    grad_norms: List[float] = []
    t0 = time.perf_counter()
    every = max(1, steps // evals)
    for step in range(1, steps + 1):
        for _ in range(cfg.n_critic):
            real = data.sample(batch, gen).to(device)
            with torch.no_grad():
                fake = G(torch.randn(batch, z_dim, generator=gen).to(device))
            loss_d = F.d_loss(cfg.loss, D(real), D(fake))
            if cfg.gp:
                loss_d = loss_d + F.gradient_penalty(D, real, fake, weight=cfg.gp,
                                                     alpha=torch.rand(batch, generator=gen).to(device))
            if cfg.r1:
                loss_d = loss_d + F.r1_penalty(D, real, gamma=cfg.r1)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if cfg.clip:
                F.clip_weights_(D, cfg.clip)
        fake = G(torch.randn(batch, z_dim, generator=gen).to(device))
        fake.retain_grad()
        loss_g = F.g_loss(cfg.loss, D(fake), **cfg.g_kwargs)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # ∂L_G/∂G(z) per sample, scaled by the batch so it does not depend on the mean's 1/B
        grad_norms.append(float(fake.grad.norm(dim=1).mean()) * batch)
        if step % every == 0 or step == steps:
            with torch.no_grad():
                samples = G(eval_z).cpu()
                real = eval_real.to(device)
                est = -float(F.d_loss(cfg.loss, D(real), D(samples.to(device))))
            curve["step"].append(step)
            curve["w1"].append(wasserstein1(samples, eval_real))
            curve["neg_loss_d"].append(est)
            curve["grad_g"].append(statistics.fmean(grad_norms[-every:]))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = G(torch.randn(2500, z_dim, generator=gen).to(device)).cpu()
    m = mode_metrics(final, data)
    return {"config": cfg.name, "data": data.name, "seed": seed, "steps": steps, **m,
            "w1": wasserstein1(final[:eval_n], eval_real), "grad_g": statistics.fmean(grad_norms),
            "corr": pearson(curve["neg_loss_d"], curve["w1"]), "seconds": seconds, "curve": curve,
            "samples": final[:1000].tolist()}


def _agg(values: List[float]) -> Dict[str, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}


def run(configs: Sequence[str] = tuple(CONFIGS), datasets: Sequence[str] = tuple(DATASETS), seeds: int = 2,
        steps: int = 1500, device: str = "cpu", progress: bool = True, threads: int = 1) -> dict:
    """Train every (data set, configuration, seed); small MLPs run fastest on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(configs, datasets, seeds, steps, device, progress)
    finally:
        torch.set_num_threads(before)


def _run(configs, datasets, seeds, steps, device, progress) -> dict:
    runs = []
    total = len(configs) * len(datasets) * seeds
    t0 = time.perf_counter()
    for di, dname in enumerate(datasets):
        data = DATASETS[dname]()
        for cname in configs:
            for seed in range(seeds):
                if progress:
                    done = len(runs)
                    print(f"[{done + 1}/{total}] {dname} {cname} seed {seed} ({time.perf_counter() - t0:.0f} s)",
                          file=sys.stderr, flush=True)
                runs.append(train_one(CONFIGS[cname], data, seed, steps, device=device))
    summary = []
    for dname in datasets:
        for cname in configs:
            rs = [r for r in runs if r["config"] == cname and r["data"] == dname]
            summary.append({"data": dname, "config": cname,
                            **{k: _agg([r[k] for r in rs]) for k in ("modes", "hq", "w1", "grad_g", "corr", "seconds")}})
    return {"meta": {"seeds": seeds, "steps": steps, "device": device, "torch": torch.__version__,
                     "configs": {c: CONFIGS[c].describe() for c in configs},
                     "total_seconds": time.perf_counter() - t0},
            "summary": summary, "runs": runs}


# --------------------------------------------------------------------------- output

def format_table(result: dict) -> str:
    def f(a, digits=2):
        return f"{a['mean']:.{digits}f}±{a['std']:.{digits}f}"
    head = (f"{'data':<7} {'config':<12} {'modes':>11} {'hq':>11} {'W1':>11} {'|∇G|':>13} {'corr(-L_D,W1)':>14} "
            f"{'time s':>8}")
    lines = [head, "-" * len(head)]
    for s in result["summary"]:
        lines.append(f"{s['data']:<7} {s['config']:<12} {f(s['modes'], 1):>11} {f(s['hq']):>11} {f(s['w1'], 3):>11} "
                     f"{f(s['grad_g'], 3):>13} {f(s['corr']):>14} {s['seconds']['mean']:>8.1f}")
    m = result["meta"]
    lines.append(f"\n{m['seeds']} seed(s) x {m['steps']} generator steps, {m['device']}, torch {m['torch']}, "
                 f"{m['total_seconds']:.0f} s in all")
    for c, d in m["configs"].items():
        lines.append(f"  {c:<12} {d}")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(s["data"] for s in result["summary"]))
    configs = list(dict.fromkeys(s["config"] for s in result["summary"]))
    fig, axes = plt.subplots(len(datasets) + 1, max(len(configs), 2),
                             figsize=(2.2 * max(len(configs), 2), 2.3 * (len(datasets) + 1)), squeeze=False)
    for i, d in enumerate(datasets):
        data = DATASETS[d]()
        for j, c in enumerate(configs):
            ax = axes[i][j]
            r = next(r for r in result["runs"] if r["data"] == d and r["config"] == c)
            pts = torch.tensor(r["samples"])
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
            ax.scatter(data.centers[:, 0], data.centers[:, 1], s=8, c="red", marker="x")
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(c, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{d} (seed 0)", fontsize=8)
    axw, axg = axes[-1][0], axes[-1][1]
    for c in configs:
        r = next(r for r in result["runs"] if r["data"] == datasets[0] and r["config"] == c)
        axw.plot(r["curve"]["step"], r["curve"]["w1"], label=c)
        axg.plot(r["curve"]["step"], r["curve"]["grad_g"], label=c)
    axw.set_title(f"W1 over training ({datasets[0]})", fontsize=8)
    axg.set_title(f"|dL_G/dG(z)| ({datasets[0]})", fontsize=8)
    axg.set_yscale("log")
    axw.legend(fontsize=5)
    for ax in list(axes[-1])[2:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fastgan compare", description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", choices=list(CONFIGS), help="only this configuration (repeatable)")
    p.add_argument("--data", action="append", choices=list(DATASETS), help="only this data set (repeatable)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=1500, help="generator steps per run")
    p.add_argument("--quick", action="store_true", help="1 seed, 200 steps (under a minute on a CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the summary and every run as JSON here")
    p.add_argument("--plot", help="write a PNG (samples per configuration, W1 and |∇G| curves) here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    seeds, steps = (1, 200) if a.quick else (a.seeds, a.steps)
    result = run(a.config or tuple(CONFIGS), a.data or tuple(DATASETS), seeds, steps, a.device, not a.no_progress)
    print(format_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)
    if a.plot:
        plot(result, a.plot)
    return 0
