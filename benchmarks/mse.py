"""Is a fused MSE worth adding?  torch's ``F.mse_loss`` (one ATen kernel forward, one
backward) against the one fused alternative fastgan already has for the same formula,
``feature_matching_loss(x, y, p=2, detach_real=False)`` (``mean((y − x)²)``, one read of
each input forward, one read and one write of each gradient backward, native C++ ops),
and ``torch.compile`` of ``mse_loss``; forward + backward, float32, at the shapes of the
VAE / reconstruction losses of the seed material, with the gradient of the reconstruction
only (the target is data) and of both inputs.

Interleaved rounds (every provider once per round, the order rotated); a round's value is
the fastest of 5 blocks of calls; the table gives the median over rounds [min–max] and the
per-round ratio mse_loss / alternative.

    python benchmarks/mse.py --markdown benchmarks/results/mse-cpu.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch.nn import functional as tF

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan import functional as F  # noqa: E402
from fastgan.tools.bench import device_name  # noqa: E402

SHAPES = {"mnist-vae 128x784": (128, 784), "celeba-vae 64x3x64x64": (64, 3, 64, 64),
          "image 16x3x256x256": (16, 3, 256, 256)}


def providers():
    def torch_mse(x, y):
        return tF.mse_loss(y, x)

    def fused(x, y):
        with fastgan.use_backend("native"):
            return F.feature_matching_loss(x, y, p=2, detach_real=False)
    return {"mse_loss": torch_mse, "fastgan-native": fused, "compile": torch.compile(torch_mse)}


def _block(fn, x, y, calls):
    wrt = [t for t in (x, y) if t.requires_grad]
    t0 = time.perf_counter()
    for _ in range(calls):
        torch.autograd.grad(fn(x, y), wrt)
    return (time.perf_counter() - t0) / calls


def measure(shape, rounds: int, target_grad: bool):
    """``x`` the target, ``y`` the reconstruction; the target's gradient only if asked."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).requires_grad_(target_grad)
    y = torch.randn(shape, generator=gen).requires_grad_()
    provs = providers()
    for fn in provs.values():  # agreement first, then warm-up (the compile included)
        torch.testing.assert_close(fn(x, y), tF.mse_loss(y, x), rtol=1e-5, atol=1e-6)
        for _ in range(5):
            _block(fn, x, y, 2)
    one = _block(provs["mse_loss"], x, y, 3)
    calls = max(1, int(0.02 / max(one, 1e-7)))
    per = {k: [] for k in provs}
    names = list(provs)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            per[k].append(min(_block(provs[k], x, y, calls) for _ in range(5)))
    return per


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for (label, shape), target_grad in [(item, tg) for item in SHAPES.items() for tg in (False, True)]:
        per = measure(shape, a.rounds, target_grad)
        label = f"{label}, {'both gradients' if target_grad else 'reconstruction gradient'}"
        med = {k: statistics.median(v) * 1e6 for k, v in per.items()}
        r_fused = [m / f for m, f in zip(per["mse_loss"], per["fastgan-native"])]
        r_comp = [m / c for m, c in zip(per["mse_loss"], per["compile"])]
        row = (f"| {label} | " + " | ".join(f"{med[k]:.0f} [{min(v) * 1e6:.0f}–{max(v) * 1e6:.0f}]"
                                            for k, v in per.items())
               + f" | {statistics.median(r_fused):.2f} [{min(r_fused):.2f}–{max(r_fused):.2f}]"
               + f" | {statistics.median(r_comp):.2f} [{min(r_comp):.2f}–{max(r_comp):.2f}] |")
        rows.append(row)
        print(row, flush=True)
    md = ["# MSE: torch's mse_loss against fastgan's fused squared difference (fwd + bwd, float32)", "",
          f"Machine: {device_name('cpu')}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; "
          f"load average at the start {os.getloadavg()[0]:.1f}.",
          f"Command: `python benchmarks/mse.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
          "| shape | mse_loss µs | fastgan-native µs | compile µs | mse_loss / fastgan | mse_loss / compile |",
          "|---|---|---|---|---|---|", *rows, ""]
    text = "\n".join(md)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
