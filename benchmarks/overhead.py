"""Eager per-call overhead of the ways to wrap a fused op for autograd (CPU).

Why: the triton backend's autograd layer must keep eager calls cheap and still
compile with torch.compile(fullgraph=True).  Candidates, each forward+backward of
a sum over 4096 + 4096 float32 values, so the arithmetic is negligible:

  bare           x.sum() + y.sum(), .backward()                     (the floor)
  function       a torch.autograd.Function around the same sums
  custom_op      a torch.library.custom_op with register_autograd
  fastgan-torch  fastgan.F.hinge_d_loss, torch backend (reference)
  eager-hinge    the hand-written hinge composition

    python benchmarks/overhead.py [--markdown benchmarks/results/overhead-cpu.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import torch
import torch.utils.benchmark as tb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan.tools.bench import device_name  # noqa: E402



class SumPair(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.shapes = (x.shape, y.shape)
        return x.sum() + y.sum()

    @staticmethod
    def backward(ctx, g):
        return g.expand(ctx.shapes[0]), g.expand(ctx.shapes[1])


@torch.library.custom_op("fastgan_bench::sum_pair", mutates_args=())
def sum_pair(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.sum() + y.sum()


@sum_pair.register_fake
def _(x, y):
    return x.new_empty(())


def _setup(ctx, inputs, output):
    ctx.shapes = (inputs[0].shape, inputs[1].shape)


def _bwd(ctx, g):
    return g.expand(ctx.shapes[0]), g.expand(ctx.shapes[1])


sum_pair.register_autograd(_bwd, setup_context=_setup)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--markdown")
    p.add_argument("--n", type=int, default=4096)
    a = p.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(a.n, requires_grad=True)
    y = torch.randn(a.n, requires_grad=True)
    cases = {
        "bare": "(x.sum() + y.sum()).backward()",
        "function": "SumPair.apply(x, y).backward()",
        "custom_op": "sum_pair(x, y).backward()",
        "eager-hinge": "(torch.relu(1 - x).mean() + torch.relu(1 + y).mean()).backward()",
        "fastgan-torch": "fastgan.F.hinge_d_loss(x, y).backward()",
    }
    rows = []
    with fastgan.use_backend("torch"):
        for name, stmt in cases.items():
            t = tb.Timer(stmt, globals={"x": x, "y": y, "SumPair": SumPair, "sum_pair": sum_pair,
                                        "torch": torch, "fastgan": fastgan})
            m = t.blocked_autorange(min_run_time=1.0)
            rows.append((name, m.median * 1e6, m.iqr * 1e6))
            print(f"{name:<14} {m.median * 1e6:8.1f} us  (IQR {m.iqr * 1e6:.1f})")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(f"# Eager per-call overhead, forward+backward, {a.n}+{a.n} float32, 1 thread\n\n")
            f.write(f"Machine: {device_name('cpu')}, timed on {torch.get_num_threads()} thread, "
                    f"torch {torch.__version__}, python {platform.python_version()}. "
                    f"Command: `python benchmarks/overhead.py --markdown ...`\n\n")
            f.write("| case | median µs | IQR µs |\n|---|---|---|\n")
            for name, med, iqr in rows:
                f.write(f"| {name} | {med:.1f} | {iqr:.1f} |\n")


if __name__ == "__main__":
    main()
