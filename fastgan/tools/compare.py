"""``fastgan compare``: measure what the usual guidance claims about GAN losses, on
reproducible small runs with fastgan's own losses.

Every configuration trains the same generator and discriminator with the same
optimiser settings, except where the method itself prescribes otherwise (stated per
configuration: WGAN's RMSprop and n_critic = 5, WGAN-GP's Adam(0.5, 0.9) and
n_critic = 5).  Data:
  ring8, grid25  a ring of 8 and a 5×5 grid of 25 Gaussians in 2-d (the standard
                 mode-collapse benchmarks); MLP generator and discriminator
  digits         scikit-learn's bundled 8×8 handwritten digits (1797 images, no
                 download); a small conv generator and discriminator

Metrics, per run and averaged over seeds (mean ± std):
  modes      2-d: modes covered, a mode counts when at least 1 % of the generated
             samples are high-quality samples of it (within 3σ of its centre).
             digits: classes covered, a class counts when at least 1 % of the
             generated images are confidently (p ≥ 0.9) classified as it by a small
             classifier trained once on the bundled data
  hq         2-d: the fraction of high-quality samples; digits: the fraction of
             confidently classified images
  W1         the exact 1-Wasserstein distance between equal-size generated and real
             samples (pixels for digits), by optimal assignment
             (scipy.optimize.linear_sum_assignment)
  FD         digits: the Fréchet distance between Gaussians fitted to the classifier's
             features of generated and real images (FID's formula, in the features of
             a classifier of this data set)
  |∇G|       mean per-sample norm of ∂L_G/∂G(z) (the generator's gradient through D)
             over training: the vanishing-gradient evidence
  corr       Pearson correlation over training between −L_D (the critic's estimate
             of the distance) and W1: the "meaningful loss" claim
  time       wall time per run
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import functional as F
from .args import OutputFile, positive_int


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Mixture:
    """A mixture of 2-d Gaussians; MLP generator and discriminator."""
    name: str
    centers: torch.Tensor
    std: float
    batch: int = 256
    z_dim: int = 8
    final_n: int = 2500   # generated samples the end-of-run metrics use
    keep: int = 1000      # generated samples kept in the result (the figure's scatter)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        k = torch.randint(0, len(self.centers), (n,), generator=gen)
        return self.centers[k] + self.std * torch.randn(n, 2, generator=gen)

    def models(self, cfg: "Config", width: int = 128) -> Tuple[nn.Module, nn.Module]:
        return (mlp(self.z_dim, 2, width, nn.ReLU()),
                mlp(2, 1, width, nn.LeakyReLU(0.2), sn=cfg.spectral_norm))

    def evaluate(self, samples: torch.Tensor) -> Dict[str, float]:
        return {**mode_metrics(samples, self), "fd": float("nan")}


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.05) -> Mixture:
    a = 2 * math.pi * torch.arange(modes, dtype=torch.float32) / modes
    return Mixture("ring8", torch.stack([radius * a.cos(), radius * a.sin()], 1), std)


def grid(side: int = 5, spacing: float = 1.0, std: float = 0.05) -> Mixture:
    r = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(r, r, indexing="ij")
    return Mixture("grid25", torch.stack([xx.flatten(), yy.flatten()], 1), std)


@functools.lru_cache(maxsize=1)
def digits_data() -> Tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8×8 digits: 1797 images (N, 1, 8, 8) scaled from 0..16 to
    [-1, 1], and their labels.  Ships inside scikit-learn: no download.  Read once per
    process; callers do not modify the tensors."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RuntimeError("the digits data set needs scikit-learn: pip install 'fastgan[compare]'") from None
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return x, torch.tensor(d.target, dtype=torch.long)


class Digits:
    """8×8 digits; a small conv generator and discriminator (the same for every loss)."""
    name = "digits"
    batch = 64
    z_dim = 32
    final_n = 1000
    keep = 64

    def __init__(self):
        self.images, self.labels = digits_data()

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self.images[torch.randint(0, len(self.images), (n,), generator=gen)]

    def models(self, cfg: "Config", width: int = 32) -> Tuple[nn.Module, nn.Module]:
        def d(layer):
            return nn.utils.parametrizations.spectral_norm(layer) if cfg.spectral_norm else layer
        G = nn.Sequential(nn.Linear(self.z_dim, 2 * width * 16), nn.ReLU(), nn.Unflatten(1, (2 * width, 4, 4)),
                          nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),  # 4×4 -> 8×8
                          nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())
        D = nn.Sequential(d(nn.Conv2d(1, width, 3, padding=1)), nn.LeakyReLU(0.2),
                          d(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2),  # 8×8 -> 4×4
                          nn.Flatten(), d(nn.Linear(2 * width * 16, 1)))
        return G, D

    def evaluate(self, samples: torch.Tensor) -> Dict[str, float]:
        return digit_metrics(samples)


DATASETS: Dict[str, Callable[[], object]] = {"ring8": ring, "grid25": grid, "digits": Digits}


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


class DigitClassifier(nn.Module):
    """The small CNN whose predictions and 64-d features score generated digits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@contextlib.contextmanager
def _threads(n: int):
    """Run the block on ``n`` threads: CPU kernels may round differently with another
    thread count, and the classifier and its scores must not depend on the caller's."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def digit_classifier() -> dict:
    with _threads(1):
        return _digit_classifier()


@functools.lru_cache(maxsize=1)
def _digit_classifier() -> dict:
    """Trained once per process (fixed seed, about a second): 1400 images for training,
    the other 397 for its held-out accuracy; the features' mean and covariance over all
    1797 real images are the reference of the Fréchet distance."""
    x, y = digits_data()
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=gen)
    train, held = perm[:1400], perm[1400:]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(25):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), 64):
            b = order[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        acc = float((model(x[held]).argmax(1) == y[held]).float().mean())
        f = model.features(x).double()
    return {"model": model, "accuracy": acc, "mu": f.mean(0), "cov": torch.cov(f.T)}


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½ (the formula of FID), in float64.
    tr (Σ₁Σ₂)^½ = Σ √λ over the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (symmetric, PSD)."""
    def sqrt_psd(c):
        w, v = torch.linalg.eigh(c)
        return (v * w.clamp_min(0).sqrt()) @ v.T
    r = sqrt_psd(cov1)
    lam = torch.linalg.eigvalsh(r @ cov2 @ r).clamp_min(0)
    return float(((mu1 - mu2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * lam.sqrt().sum())


def digit_metrics(images: torch.Tensor, min_fraction: float = 0.01, confidence: float = 0.9) -> Dict[str, float]:
    """Classes covered (at least ``min_fraction`` of the images confidently classified as
    the class), the confidently classified fraction, and the Fréchet distance of the
    classifier's features to the real images'."""
    c = digit_classifier()
    with _threads(1), torch.no_grad():
        f = c["model"].features(images.float().reshape(-1, 1, 8, 8))
        p = torch.softmax(c["model"].head(f), 1)
        conf, cls = p.max(1)
        sure = conf >= confidence
        counts = torch.bincount(cls[sure], minlength=10)
        covered = int((counts >= max(1, math.ceil(min_fraction * len(images)))).sum())
        f = f.double()
        fd = frechet_distance(f.mean(0), torch.cov(f.T), c["mu"], c["cov"]) if len(images) > 1 else float("nan")
    return {"modes": covered, "hq": float(sure.float().mean()), "fd": fd}


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
    r2: float = 0.0

    @property
    def relativistic(self) -> bool:
        """RaGAN / RpGAN: the generator's loss takes the real scores too."""
        return self.loss in ("ragan", "rpgan")

    def d_loss(self, d_real, d_fake):
        if self.relativistic:
            return getattr(F, f"{self.loss}_d_loss")(d_real, d_fake)
        return F.d_loss(self.loss, d_real, d_fake)

    def g_loss(self, d_real, d_fake):
        if self.relativistic:
            return getattr(F, f"{self.loss}_g_loss")(d_real, d_fake)
        return F.g_loss(self.loss, d_fake, **self.g_kwargs)

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
        if self.r2:
            extra.append(f"R2 γ={self.r2}")
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
    Config("ragan", "ragan"),                      # ESRGAN's adversarial loss (without its ½)
    Config("rpgan-r1-r2", "rpgan", r1=1.0, r2=1.0),  # the R3GAN recipe: RpGAN + R1 + R2
)}


def mlp(inp: int, out: int, width: int, act: nn.Module, sn: bool = False) -> nn.Sequential:
    def lin(a, b):
        layer = nn.Linear(a, b)
        return nn.utils.parametrizations.spectral_norm(layer) if sn else layer
    return nn.Sequential(lin(inp, width), act, lin(width, width), act, lin(width, out))


# --------------------------------------------------------------------------- training

def train_one(cfg: Config, data, seed: int, steps: int, evals: int = 10, eval_n: int = 512,
              device: str = "cpu") -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    batch, z_dim = data.batch, data.z_dim
    G, D = (m.to(device) for m in data.models(cfg))
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
            loss_d = cfg.d_loss(D(real), D(fake))
            if cfg.gp:
                loss_d = loss_d + F.gradient_penalty(D, real, fake, weight=cfg.gp,
                                                     alpha=torch.rand(batch, generator=gen).to(device))
            if cfg.r1:
                loss_d = loss_d + F.r1_penalty(D, real, gamma=cfg.r1)
            if cfg.r2:
                loss_d = loss_d + F.r2_penalty(D, fake, gamma=cfg.r2)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if cfg.clip:
                F.clip_weights_(D, cfg.clip)
        fake = G(torch.randn(batch, z_dim, generator=gen).to(device))
        fake.retain_grad()
        d_real = D(data.sample(batch, gen).to(device)) if cfg.relativistic else None
        loss_g = cfg.g_loss(d_real, D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # ∂L_G/∂G(z) per sample, scaled by the batch so it does not depend on the mean's 1/B
        grad_norms.append(float(fake.grad.flatten(1).norm(dim=1).mean()) * batch)
        if step % every == 0 or step == steps:
            with torch.no_grad():
                samples = G(eval_z).cpu()
                real = eval_real.to(device)
                est = -float(cfg.d_loss(D(real), D(samples.to(device))))
            curve["step"].append(step)
            curve["w1"].append(wasserstein1(samples.flatten(1), eval_real.flatten(1)))
            curve["neg_loss_d"].append(est)
            curve["grad_g"].append(statistics.fmean(grad_norms[-every:]))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = G(torch.randn(data.final_n, z_dim, generator=gen).to(device)).cpu()
    m = data.evaluate(final)
    return {"config": cfg.name, "data": data.name, "seed": seed, "steps": steps, **m,
            "w1": wasserstein1(final[:eval_n].flatten(1), eval_real.flatten(1)),
            "grad_g": statistics.fmean(grad_norms),
            "corr": pearson(curve["neg_loss_d"], curve["w1"]), "seconds": seconds, "curve": curve,
            "samples": final[:data.keep].tolist()}


def reference_metrics(data, seed: int = 0, eval_n: int = 512) -> dict:
    """The metrics of real samples in place of generated ones: what a perfect generator
    would score (W1 and FD of two finite real samples are not 0)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    final = data.sample(data.final_n, gen)
    m = data.evaluate(final)
    return {**m, "w1": wasserstein1(final[:eval_n].flatten(1), data.sample(eval_n, gen).flatten(1))}


def _agg(values: List[float]) -> Dict[str, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}


METRICS = ("modes", "hq", "w1", "fd", "grad_g", "corr", "seconds")


def _task(job) -> dict:
    """One training run, in a worker process or in this one."""
    cname, dname, seed, steps, device, threads = job
    torch.set_num_threads(threads)
    return train_one(CONFIGS[cname], _dataset(dname), seed, steps, device=device)


@functools.lru_cache(maxsize=None)
def _dataset(name: str):
    return DATASETS[name]()


def run(configs: Sequence[str] = tuple(CONFIGS), datasets: Sequence[str] = tuple(DATASETS), seeds: int = 2,
        steps: int = 1000, device: str = "cpu", progress: bool = True, threads: int = 1,
        jobs: Optional[int] = None) -> dict:
    """Train every (data set, configuration, seed).  Small models run fastest on one
    thread each, so on CPU the runs are spread over ``jobs`` worker processes (default:
    one per core); every run is seeded on its own, so the results do not depend on
    ``jobs``.  On CUDA the runs go one after the other."""
    if jobs is None:
        jobs = 1 if device != "cpu" else max(1, min(os.cpu_count() or 1, 8))
    todo = [(c, d, seed, steps, device, threads) for d in datasets for c in configs for seed in range(seeds)]
    t0 = time.perf_counter()
    done: Dict[tuple, dict] = {}

    def report(job, r):
        done[job] = r
        if progress:
            print(f"[{len(done)}/{len(todo)}] {job[1]} {job[0]} seed {job[2]}: W1 {r['w1']:.3f}, "
                  f"modes {r['modes']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    with _threads(threads):
        if jobs > 1 and len(todo) > 1:
            import concurrent.futures as cf
            import multiprocessing as mp
            # the slowest configurations first, so the workers finish together
            order = sorted(todo, key=lambda j: -CONFIGS[j[0]].n_critic * (1 + bool(CONFIGS[j[0]].gp)))
            with cf.ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_task, job): job for job in order}
                for fut in cf.as_completed(futures):
                    report(futures[fut], fut.result())
        else:
            for job in todo:
                report(job, _task(job))
        runs = [done[job] for job in todo]
        reference = {d: reference_metrics(_dataset(d)) for d in datasets}
    summary = []
    for dname in datasets:
        for cname in configs:
            rs = [r for r in runs if r["config"] == cname and r["data"] == dname]
            summary.append({"data": dname, "config": cname, **{k: _agg([r[k] for r in rs]) for k in METRICS}})
    meta = {"seeds": seeds, "steps": steps, "device": device, "torch": torch.__version__, "jobs": jobs,
            "threads_per_run": threads, "configs": {c: CONFIGS[c].describe() for c in configs},
            "total_seconds": time.perf_counter() - t0}
    if "digits" in datasets:
        meta["digit_classifier_accuracy"] = digit_classifier()["accuracy"]
    return {"meta": meta, "reference": reference, "summary": summary, "runs": runs}


# --------------------------------------------------------------------------- output

def format_table(result: dict) -> str:
    def f(a, digits=2):
        if math.isnan(a["mean"]):
            return "-"
        return f"{a['mean']:.{digits}f}±{a['std']:.{digits}f}"
    head = (f"{'data':<7} {'config':<12} {'modes':>11} {'hq':>11} {'W1':>11} {'FD':>13} {'|∇G|':>13} "
            f"{'corr(-L_D,W1)':>14} {'time s':>8}")
    lines = [head, "-" * len(head)]
    for dname in dict.fromkeys(s["data"] for s in result["summary"]):
        ref = result.get("reference", {}).get(dname)
        if ref is not None:  # what real samples score: the best a generator can do
            one = lambda v, d: "-" if math.isnan(v) else f"{v:.{d}f}"  # noqa: E731
            lines.append(f"{dname:<7} {'(real data)':<12} {one(ref['modes'], 0):>11} {one(ref['hq'], 2):>11} "
                         f"{one(ref['w1'], 3):>11} {one(ref['fd'], 1):>13} {'':>13} {'':>14} {'':>8}")
        for s in result["summary"]:
            if s["data"] != dname:
                continue
            lines.append(f"{s['data']:<7} {s['config']:<12} {f(s['modes'], 1):>11} {f(s['hq']):>11} "
                         f"{f(s['w1'], 3):>11} {f(s['fd'], 1):>13} {f(s['grad_g'], 3):>13} {f(s['corr']):>14} "
                         f"{s['seconds']['mean']:>8.1f}")
    m = result["meta"]
    lines.append(f"\n{m['seeds']} seed(s) x {m['steps']} generator steps, {m['device']}, torch {m['torch']}, "
                 f"{m.get('jobs', 1)} job(s), {m['total_seconds']:.0f} s in all")
    if "digit_classifier_accuracy" in m:
        lines.append(f"digits classifier (modes, hq, FD): {100 * m['digit_classifier_accuracy']:.1f} % held-out accuracy")
    for c, d in m["configs"].items():
        lines.append(f"  {c:<12} {d}")
    return "\n".join(lines)


def _mosaic(images: torch.Tensor, cols: int = 8) -> torch.Tensor:
    """(N, 64) or (N, 1, 8, 8) images in [-1, 1] -> one (rows·9, cols·9) array, 1-pixel gaps."""
    x = images.reshape(-1, 8, 8)
    rows = math.ceil(len(x) / cols)
    out = torch.full((rows * 9, cols * 9), -1.0)
    for i, im in enumerate(x):
        r, c = divmod(i, cols)
        out[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = im
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(s["data"] for s in result["summary"]))
    configs = list(dict.fromkeys(s["config"] for s in result["summary"]))
    fig, axes = plt.subplots(len(datasets) + 1, max(len(configs), 3),
                             figsize=(2.2 * max(len(configs), 3), 2.3 * (len(datasets) + 1)), squeeze=False)
    for i, d in enumerate(datasets):
        data = _dataset(d)
        for j, c in enumerate(configs):
            ax = axes[i][j]
            r = next(r for r in result["runs"] if r["data"] == d and r["config"] == c)
            pts = torch.tensor(r["samples"])
            if isinstance(data, Mixture):
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
                ax.scatter(data.centers[:, 0], data.centers[:, 1], s=8, c="red", marker="x")
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
            else:
                ax.imshow(_mosaic(pts), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(c, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{d} (seed 0)", fontsize=8)
        for ax in list(axes[i])[len(configs):]:
            ax.axis("off")
    axw, axg, axd = axes[-1][0], axes[-1][1], axes[-1][2]
    for c in configs:
        r = next(r for r in result["runs"] if r["data"] == datasets[0] and r["config"] == c)
        axw.plot(r["curve"]["step"], r["curve"]["w1"], label=c)
        axg.plot(r["curve"]["step"], r["curve"]["grad_g"], label=c)
        r = next(r for r in result["runs"] if r["data"] == datasets[-1] and r["config"] == c)
        axd.plot(r["curve"]["step"], r["curve"]["w1"], label=c)
    axw.set_title(f"W1 over training ({datasets[0]})", fontsize=8)
    axg.set_title(f"|dL_G/dG(z)| ({datasets[0]})", fontsize=8)
    axd.set_title(f"W1 over training ({datasets[-1]})", fontsize=8)
    axg.set_yscale("log")
    axw.legend(fontsize=5)
    for ax in list(axes[-1])[3:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fastgan compare", description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", choices=list(CONFIGS), help="only this configuration (repeatable)")
    p.add_argument("--data", action="append", choices=list(DATASETS), help="only this data set (repeatable)")
    p.add_argument("--seeds", type=positive_int, help="seeds per configuration and data set (default 2)")
    p.add_argument("--steps", type=positive_int, help="generator steps per run (default 1000)")
    p.add_argument("--quick", action="store_true", help="1 seed, 120 steps (under a minute on a 2-core CPU)")
    p.add_argument("--jobs", type=positive_int, help="worker processes on CPU (default: one per core)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=OutputFile(), help="write the summary and every run as JSON here")
    p.add_argument("--plot", type=OutputFile("matplotlib"), help="write a PNG (samples per configuration, W1 and |∇G| curves) here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    for opt in ("--seeds", "--steps"):
        if a.quick and getattr(a, opt[2:]) is not None:
            p.error(f"argument {opt}: not with --quick (it is 1 seed, 120 steps)")
    seeds, steps = (1, 120) if a.quick else (a.seeds or 2, a.steps or 1000)
    result = run(a.config or tuple(CONFIGS), a.data or tuple(DATASETS), seeds, steps, a.device, not a.no_progress,
                 jobs=a.jobs)
    print(format_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)
    if a.plot:
        plot(result, a.plot)
    return 0
