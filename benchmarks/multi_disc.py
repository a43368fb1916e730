"""The losses of a multi-discriminator training step, with fastgan's list losses against the
Python loops the well-known codebases write, eager and under torch.compile.

Shapes are those of the real models' discriminators (recorded from their architectures,
random data in place of activations):

  hifigan-b16   HiFi-GAN V1, batch 16, 8 192-sample segments: 5 multi-period (periods 2,
                3, 5, 7, 11; 6 feature maps each) + 3 multi-scale discriminators (8 maps
                each): 8 score tensors, 54 feature maps
  hifigan-b1    the same at batch 1 (where launch and autograd overhead dominate)
  pix2pixhd     3-scale PatchGAN (n_layers 3, ndf 64), batch 1, 512x512 input: 3 scores,
                12 intermediate maps

One step = the LSGAN discriminator loss over all discriminators (HiFi-GAN's convention:
``mean((1 − r)²) + mean(g²)``, no ½), the generator loss and feature matching
(``2·Σ mean|f_r − f_g|``), forward and backward, float32:

  loops     HiFi-GAN's discriminator_loss / generator_loss / feature_loss as written
  compile   torch.compile of ``loops``
  fastgan   F.lsgan_d_loss / F.lsgan_g_loss on the lists (×2 for the missing ½) and
            F.feature_matching_loss(weight=2)

Interleaved rounds (each round times every provider); the table gives the median over
rounds of the round medians, their min–max, and the per-round ratio loops/fastgan.
``--check`` first verifies, in float64 on the small shapes, that both give the same
loss and the same gradients to every score and feature map.

    python benchmarks/multi_disc.py --markdown benchmarks/results/multi-disc-cpu.md
    python benchmarks/multi_disc.py --device cuda --markdown multi-disc-cuda.md   (benchmarks/gpu_run.sh)
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastgan import functional as F  # noqa: E402
from fastgan.tools.bench import device_name  # noqa: E402


def _conv_len(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def hifigan_shapes(batch: int, segment: int = 8192):
    """(score shapes, feature-map shapes per discriminator) of HiFi-GAN V1's MPD + MSD."""
    scores, maps = [], []
    for period in (2, 3, 5, 7, 11):
        t = math.ceil(segment / period)
        group = []
        for c in (32, 128, 512, 1024):
            t = _conv_len(t, 5, 3, 2)
            group.append((batch, c, t, period))
        group.append((batch, 1024, t, period))      # conv (5, 1), stride 1
        group.append((batch, 1, t, period))         # conv_post
        maps.append(group)
        scores.append((batch, t * period))          # conv_post flattened
    for scale in range(3):
        n = segment // 2 ** scale
        group = []
        for c, k, s in ((128, 15, 1), (128, 41, 2), (256, 41, 2), (512, 41, 4), (1024, 41, 4), (1024, 41, 1),
                        (1024, 5, 1)):
            n = _conv_len(n, k, s, k // 2)
            group.append((batch, c, n))
        group.append((batch, 1, n))                 # conv_post
        maps.append(group)
        scores.append((batch, n))
    return scores, maps


def pix2pixhd_shapes(size: int = 512):
    scores, maps = [], []
    for scale in range(3):
        n = size // 2 ** scale
        group = []
        for c, s in ((64, 2), (128, 2), (256, 2), (512, 1)):
            n = _conv_len(n, 4, s, 2)
            group.append((1, c, n, n))
        n = _conv_len(n, 4, 1, 2)
        maps.append(group)
        scores.append((1, 1, n, n))
    return scores, maps


CASES = {"hifigan-b1": lambda: hifigan_shapes(1), "hifigan-b16": lambda: hifigan_shapes(16),
         "pix2pixhd": pix2pixhd_shapes}


def make(case: str, dtype, gen, device="cpu"):
    scores, maps = CASES[case]()

    def t(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
    return {"d_real": [t(s) for s in scores], "d_fake": [t(s) for s in scores], "g_fake": [t(s) for s in scores],
            "f_real": [[t(s) for s in g] for g in maps], "f_fake": [[t(s) for s in g] for g in maps]}


# --- the hand-written loops (HiFi-GAN's models.py functions, written from their convention) --

def loops(d_real, d_fake, g_fake, f_real, f_fake):
    loss_d = 0
    for dr, dg in zip(d_real, d_fake):
        loss_d = loss_d + torch.mean((1 - dr) ** 2) + torch.mean(dg ** 2)
    loss_g = 0
    for dg in g_fake:
        loss_g = loss_g + torch.mean((1 - dg) ** 2)
    loss_fm = 0
    for dr, dg in zip(f_real, f_fake):
        for rl, gl in zip(dr, dg):
            loss_fm = loss_fm + torch.mean(torch.abs(rl.detach() - gl))
    return loss_d + loss_g + 2 * loss_fm


def fused(d_real, d_fake, g_fake, f_real, f_fake):
    return (2 * F.lsgan_d_loss(d_real, d_fake) + 2 * F.lsgan_g_loss(g_fake, c=1.0)
            + F.feature_matching_loss(f_real, f_fake, weight=2.0))


def _leaves(inputs):
    return {k: ([[x.detach().clone().requires_grad_() for x in g] for g in v] if isinstance(v[0], list)
                else [x.detach().clone().requires_grad_() for x in v]) for k, v in inputs.items()}


def _flat(inputs):
    out = []
    for k in ("d_real", "d_fake", "g_fake", "f_real", "f_fake"):
        v = inputs[k]
        out.extend(x for g in v for x in g) if isinstance(v[0], list) else out.extend(v)
    return out


def check(case: str, device="cpu") -> float:
    """float64: the same loss and gradients; returns the largest difference."""
    gen = torch.Generator().manual_seed(0)
    base = make(case, torch.float64, gen, device)
    a, b = _leaves(base), _leaves(base)
    la, lb = loops(**a), fused(**b)
    worst = abs(float((la - lb).detach()))
    ga = torch.autograd.grad(la, _flat(a), allow_unused=True)
    gb = torch.autograd.grad(lb, _flat(b), allow_unused=True)
    for x, y in zip(ga, gb):
        if (x is None) != (y is None):
            raise AssertionError("a gradient is missing on one side")
        if x is not None:
            worst = max(worst, float((x - y).abs().max()))
    if worst > 1e-10:
        raise AssertionError(f"{case}: fastgan and the loops differ by {worst:.3e}")
    return worst


def _step(fn, leaves, flat):
    """One forward and backward on prepared leaves (``autograd.grad``: nothing accumulates);
    on a GPU, waits for it to finish (the timings are wall-clock)."""
    loss = fn(**leaves)
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    if loss.is_cuda:
        torch.cuda.synchronize(loss.device)
    return grads


def time_case(case: str, rounds: int, calls: int, providers, device="cpu"):
    gen = torch.Generator().manual_seed(1)
    leaves = _leaves(make(case, torch.float32, gen, device))
    flat = _flat(leaves)
    for fn in providers.values():  # warm-up (compile included) until two consecutive calls agree
        last = None
        for _ in range(30):
            t0 = time.perf_counter()
            _step(fn, leaves, flat)
            dt = time.perf_counter() - t0
            if last is not None and abs(dt - last) < 0.1 * last:
                break
            last = dt
    per = {name: [] for name in providers}
    for _ in range(rounds):
        for name, fn in providers.items():
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                _step(fn, leaves, flat)
                ts.append(time.perf_counter() - t0)
            per[name].append(statistics.median(ts))
    return per


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", choices=list(CASES))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    cases = a.case or list(CASES)
    lines = []
    for case in ("hifigan-b1", "pix2pixhd"):
        lines.append(f"check {case} (float64, {a.device}): max difference {check(case, a.device):.1e}")
    providers = {"loops": loops, "fastgan": fused}
    if not a.no_compile:
        providers["compile"] = torch.compile(loops)
    rows = []
    for case in cases:
        rounds, calls = (a.rounds, a.calls) if case != "hifigan-b16" else (max(3, a.rounds // 2), 2)
        per = time_case(case, rounds, calls, providers, a.device)
        med = {k: statistics.median(v) for k, v in per.items()}
        ratio = [lo / fu for lo, fu in zip(per["loops"], per["fastgan"])]
        row = f"| {case} | " + " | ".join(
            f"{med[k] * 1e3:.3g} [{min(v) * 1e3:.3g}–{max(v) * 1e3:.3g}]" for k, v in per.items())
        row += f" | {statistics.median(ratio):.2f} [{min(ratio):.2f}–{max(ratio):.2f}] |"
        if "compile" in per:
            rc = [c / fu for c, fu in zip(per["compile"], per["fastgan"])]
            row += f" {statistics.median(rc):.2f} [{min(rc):.2f}–{max(rc):.2f}] |"
        rows.append(row)
        print(row, flush=True)
    head = "| case | " + " | ".join(f"{k} ms" for k in providers) + " | loops / fastgan |"
    head += " compile / fastgan |" if "compile" in providers else ""
    sep = "|" + "---|" * (head.count("|") - 1)
    md = ["# Multi-discriminator step losses (D + G + feature matching, fwd+bwd, float32)", "",
          f"Machine: {device_name(a.device)}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"load average at the start {os.getloadavg()[0]:.1f}.",
          f"Command: `python benchmarks/multi_disc.py {' '.join(argv or sys.argv[1:])}`", "",
          *lines, "", "Interleaved rounds; each cell: median of round medians [min–max], ms; ratios per round.", "",
          head, sep, *rows, ""]
    text = "\n".join(md)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
