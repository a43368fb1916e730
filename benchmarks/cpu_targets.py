"""The CPU figures the native backend is held to, measured in one run (torch.utils.benchmark).

For bce_d_loss and hinge_d_loss, forward+backward on N + N float32 logits:
  floor     (real.sum() + fake.sum()).backward() on the same tensors: the least any op costs
  eager     the hand-written composition (the registry's baseline)
  compile   torch.compile of that composition
  native    fastgan.F.<loss>, backend "native" (argument checks, C++ kernels, autograd in C++)
  cpp-fn    the native op called directly (autograd registered in C++), no argument checks
  python-fn the same kernels behind a Python torch.autograd.Function (the other binding),
            called directly, no argument checks: compare with cpp-fn
Targets (issue 4): N = 4096: native >= 2.5x faster than eager and <= 1.3x the floor;
N = 2**22: native >= 2x faster than eager and not slower than compile.

    python benchmarks/cpu_targets.py --markdown benchmarks/results/native-cpu.md
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.utils.benchmark as tb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan import bench  # noqa: E402
from fastgan.backends import _fused, native_backend  # noqa: E402
from fastgan.registry import OPS  # noqa: E402


def measure(stmt_fn, min_run_time):
    m = tb.Timer(stmt="f()", globals={"f": stmt_fn}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--markdown")
    p.add_argument("--min-run-time", type=float, default=1.0)
    a = p.parse_args()
    native_backend.build()
    rows = []
    for n in (4096, 2 ** 22):
        gen = torch.Generator().manual_seed(0)
        real = (torch.randn(n, generator=gen) * 3).requires_grad_()
        fake = (torch.randn(n, generator=gen) * 3).requires_grad_()
        xs = [real, fake]
        floor = measure(lambda: torch.autograd.grad(real.sum() + fake.sum(), xs), a.min_run_time)
        for op in ("bce_d_loss", "hinge_d_loss"):
            spec = OPS[op]
            eager_fn = spec.baseline
            compiled = torch.compile(spec.baseline, dynamic=False)
            public = getattr(fastgan.F, op)
            for _ in range(2):
                torch.autograd.grad(compiled(real, fake), xs)

            def native():
                with fastgan.use_backend("native"):
                    return torch.autograd.grad(public(real, fake), xs)

            def python_fn():
                return torch.autograd.grad(_fused.run("native", spec, xs, {}, "mean"), xs)

            def cpp_fn():
                return torch.autograd.grad(native_backend.run(spec, xs, {}, "mean"), xs)

            t = {
                "floor": floor,
                "eager": measure(lambda: torch.autograd.grad(eager_fn(real, fake), xs), a.min_run_time),
                "compile": measure(lambda: torch.autograd.grad(compiled(real, fake), xs), a.min_run_time),
                "native": measure(native, a.min_run_time),
                "cpp-fn": measure(cpp_fn, a.min_run_time),
                "python-fn": measure(python_fn, a.min_run_time),
            }
            rows.append((op, n, t))
            print(f"{op:<13} N={n:<8} " + "  ".join(f"{k} {v:9.1f} us" for k, v in t.items())
                  + f"  | native vs eager {t['eager'] / t['native']:.2f}x, vs floor {t['native'] / t['floor']:.2f}x,"
                    f" vs compile {t['compile'] / t['native']:.2f}x")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("# Native CPU backend: forward+backward, N + N float32 logits\n\n")
            f.write(f"Machine: {bench.device_name('cpu')}, {torch.get_num_threads()} threads, torch {torch.__version__}."
                    f" Median of torch.utils.benchmark blocked_autorange ({a.min_run_time} s per figure), one run.\n"
                    f"Command: `python benchmarks/cpu_targets.py --markdown {a.markdown}`\n\n")
            f.write("| loss | N | floor µs | eager µs | compile µs | native µs | cpp-fn µs | python-fn µs | "
                    "native vs eager | native / floor | native vs compile |\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|\n")
            for op, n, t in rows:
                f.write(f"| {op} | {n} | {t['floor']:.1f} | {t['eager']:.1f} | {t['compile']:.1f} | {t['native']:.1f} | "
                        f"{t['cpp-fn']:.1f} | {t['python-fn']:.1f} | {t['eager'] / t['native']:.2f}x | "
                        f"{t['native'] / t['floor']:.2f} | {t['compile'] / t['native']:.2f}x |\n")


if __name__ == "__main__":
    main()
