"""The per-call cost of the two autograd mechanisms of the native backend, measured on the
same kernels: forward+backward of RpGAN and RaGAN (discriminator) on N + N float32 logits,
one thread.

  eager        the hand-written composition (softplus / BCE of the shifted scores)
  compile      torch.compile of that composition
  native-cpp   fastgan.F.<loss> on the native backend: C++ autograd (RaganFn / RpganFn in
               csrc/relativistic.cpp), one node, the raw ops called from C++
  native-fused the same raw ops (torch.ops.fastgan_native.*_fwd / *_bwd) under the Python
               autograd rule of the other families, fastgan.backends.fused.fused

Providers are timed in interleaved rounds (each round times every provider once); the
figure is the minimum over rounds of each round's median (interference on a shared
machine only adds time), with the median over rounds beside it.

    python benchmarks/autograd_cost.py --markdown benchmarks/results/autograd-cost-cpu.md
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import torch
import torch.nn.functional as TF
import torch.utils.benchmark as tb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan import functional as F  # noqa: E402
from fastgan.backends.families import RAGAN_LABELS, RPGAN_GEN, Relativistic  # noqa: E402
from fastgan.backends.native import raw  # noqa: E402


class FusedRaw(Relativistic):
    """The native raw ops under fused.fused (what the native relativistic family ran before
    its C++ autograd): the alternative being measured."""

    @staticmethod
    def forward(static, tensors):
        name, reduction = static
        real, fake = tensors
        if name in RAGAN_LABELS:
            out = raw.ops().ragan_fwd(real, fake, list(RAGAN_LABELS[name]), raw.REDUCTION[reduction])
            return out[0], (out[-1],)
        return raw.ops().rpgan_fwd(real, fake, bool(RPGAN_GEN[name]), raw.REDUCTION[reduction]), ()

    @staticmethod
    def backward(static, inputs, saved, grads, needs):
        name, reduction = static
        real, fake = inputs
        if name in RAGAN_LABELS:
            return raw.ops().ragan_bwd(real, fake, list(RAGAN_LABELS[name]), raw.REDUCTION[reduction], saved[0],
                                       list(grads), list(needs))
        return raw.ops().rpgan_bwd(real, fake, bool(RPGAN_GEN[name]), raw.REDUCTION[reduction], grads[0],
                                   list(needs))


def eager(name):
    if name == "rpgan_d_loss":
        return lambda x, y: TF.softplus(y - x).mean()
    return lambda x, y: (TF.binary_cross_entropy_with_logits(x - y.mean(), torch.ones_like(x))
                         + TF.binary_cross_entropy_with_logits(y - x.mean(), torch.zeros_like(y)))


def providers(name):
    fused = FusedRaw()
    comp = torch.compile(eager(name))
    return {"eager": eager(name), "compile": comp, "native-cpp": getattr(F, name),
            "native-fused": lambda x, y: fused.call((name, "mean"), x, y)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4096, 2 ** 20])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--min-run-time", type=float, default=0.1)
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fastgan.set_backend("native")
    rows = []
    for name in ("rpgan_d_loss", "ragan_d_loss"):
        provs = providers(name)
        for n in args.sizes:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(n, generator=gen, requires_grad=True)
            y = torch.randn(n, generator=gen, requires_grad=True)
            steps = {k: (lambda f=f: torch.autograd.grad(f(x, y), [x, y])) for k, f in provs.items()}
            ref = torch.autograd.grad(provs["eager"](x, y), [x, y])
            for k, step in steps.items():  # warm-up, and every provider gives eager's gradients
                for a, b in zip(step(), ref):
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
            times = {k: [] for k in steps}
            for _ in range(args.rounds):
                for k, step in steps.items():
                    m = tb.Timer("f()", globals={"f": step}, num_threads=1).blocked_autorange(
                        min_run_time=args.min_run_time)
                    times[k].append(m.median * 1e6)
            best = {k: min(v) for k, v in times.items()}
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append((name, n, best, med))
            print(name, n, {k: round(v, 1) for k, v in best.items()}, flush=True)
    lines = ["# Native autograd: C++ vs fused.fused (Python), forward+backward, N + N float32 logits\n",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread, torch "
             f"{torch.__version__}; load average at the end {os.getloadavg()[0]:.1f}.  Minimum over "
             f"{args.rounds} interleaved rounds of each round's median (median over rounds in brackets).",
             "Command: `python benchmarks/autograd_cost.py --markdown benchmarks/results/autograd-cost-cpu.md`\n",
             "| loss | N | eager µs | compile µs | native-cpp µs | native-fused µs | cpp vs eager | cpp vs compile "
             "| fused − cpp µs |", "|---|---|---|---|---|---|---|---|---|"]
    for name, n, b, m in rows:
        lines.append(f"| {name} | {n} | {b['eager']:.1f} ({m['eager']:.1f}) | {b['compile']:.1f} ({m['compile']:.1f}) "
                     f"| {b['native-cpp']:.1f} ({m['native-cpp']:.1f}) | {b['native-fused']:.1f} "
                     f"({m['native-fused']:.1f}) | {b['eager'] / b['native-cpp']:.2f}x "
                     f"| {b['compile'] / b['native-cpp']:.2f}x | {b['native-fused'] - b['native-cpp']:+.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
