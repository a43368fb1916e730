"""The CPU figures the native backend is held to, measured in one run (torch.utils.benchmark).

For bce_d_loss and hinge_d_loss, forward+backward on N + N float32 logits:
  floor       (real.sum() + fake.sum()) differentiated on the same tensors: the least any op costs
  eager       the hand-written composition (the registry's baseline)
  compile     torch.compile of that composition
  native      fastgan.F.<loss> with the default backend ("auto" = native on CPU): argument
              checks, backend choice, C++ kernels, autograd in C++
  op-pybind   the native autograd op called directly through the extension's pybind11
              function (what `native` calls), no argument checks
  op-torch.ops  the same op through torch.ops (the boxed call): compare with op-pybind
  python-fn   the same kernels behind a Python torch.autograd.Function (``PythonPairLoss``
              below) calling the raw ops torch.ops.fastgan_native.pair_fwd / pair_bwd:
              compare with op-torch.ops (C++ autograd vs Python autograd)
Providers are timed in interleaved rounds (each round times every provider once), so a
drift of the machine hits all of them alike.  The figures are the minimum over rounds of
each round's median: on this shared VM interference only ever adds time, by tens of
percent for seconds at a time.  The ratio of the medians over rounds is given too.
Targets (issue 4): N = 4096: native >= 2.5x faster than eager and <= 1.3x the floor;
N = 2**22: native >= 2x faster than eager and not slower than compile.

    python benchmarks/cpu_targets.py --markdown benchmarks/results/native-cpu.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
import torch.utils.benchmark as tb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan.backends import native, native_loader  # noqa: E402
from fastgan.registry import OPS, Reduction  # noqa: E402
from fastgan.tools import bench  # noqa: E402
from fastgan.tools.cases import CASES  # noqa: E402


class PythonPairLoss(torch.autograd.Function):
    """The native kernels with autograd in Python: forward and backward call the raw ops
    (no autograd of their own) through torch.ops, as the C++ autograd op calls them."""

    @staticmethod
    def forward(ctx, real, fake, kind, params, reduction):
        ctx.save_for_backward(real, fake)
        ctx.args = (kind, params, reduction)
        return tuple(torch.ops.fastgan_native.pair_fwd(real, fake, kind, params, reduction))

    @staticmethod
    def backward(ctx, *grads):
        real, fake = ctx.saved_tensors
        g_real, g_fake = torch.ops.fastgan_native.pair_bwd(real, fake, *ctx.args, list(grads))
        return g_real, g_fake, None, None, None


def measure(stmt_fn, min_run_time):
    m = tb.Timer(stmt="f()", globals={"f": stmt_fn}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown")
    p.add_argument("--min-run-time", type=float, default=0.1, help="seconds per provider per round")
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    ext = native_loader.module()  # builds the extension (or loads it from the cache)
    ops = torch.ops.fastgan_native
    rows = []
    for n in (4096, 2 ** 22):
        gen = torch.Generator().manual_seed(0)
        real = (torch.randn(n, generator=gen) * 3).requires_grad_()
        fake = (torch.randn(n, generator=gen) * 3).requires_grad_()
        xs = [real, fake]
        for op in ("bce_d_loss", "hinge_d_loss"):
            spec = CASES[op]
            eager_fn = spec.baseline
            compiled = torch.compile(spec.baseline, dynamic=False)
            public = getattr(fastgan.F, op)
            lowered = OPS[op].lower()
            k, params, mean = int(lowered.kind), lowered.params(), int(Reduction.MEAN)
            for _ in range(2):
                torch.autograd.grad(compiled(real, fake), xs)
            providers = {
                "floor": lambda: torch.autograd.grad(real.sum() + fake.sum(), xs),
                "eager": lambda: torch.autograd.grad(eager_fn(real, fake), xs),
                "compile": lambda: torch.autograd.grad(compiled(real, fake), xs),
                "native": lambda: torch.autograd.grad(public(real, fake), xs),
                "op-pybind": lambda: torch.autograd.grad(ext.pair_loss(real, fake, k, params, mean)[0], xs),
                "op-torch.ops": lambda: torch.autograd.grad(ops.pair_loss.default(real, fake, k, params, mean)[0],
                                                            xs),
                "python-fn": lambda: torch.autograd.grad(PythonPairLoss.apply(real, fake, k, params, mean)[0], xs),
            }
            assert fastgan.backends.resolve(real.device) is native
            for g_py, g_native in zip(providers["python-fn"](), providers["native"]()):
                torch.testing.assert_close(g_py, g_native)  # the same gradients, other autograd
            rounds = {name: [] for name in providers}
            for _ in range(a.rounds):
                for name, fn in providers.items():
                    rounds[name].append(measure(fn, a.min_run_time))
            t = {name: min(v) for name, v in rounds.items()}
            t["median native / floor"] = statistics.median(rounds["native"]) / statistics.median(rounds["floor"])
            rows.append((op, n, t))
            print(f"{op:<13} N={n:<8} " + "  ".join(f"{k} {v:9.1f} us" for k, v in t.items() if k in providers)
                  + f"  | native vs eager {t['eager'] / t['native']:.2f}x, vs floor {t['native'] / t['floor']:.2f}x,"
                    f" vs compile {t['compile'] / t['native']:.2f}x", flush=True)
    if a.markdown:
        cols = ("floor", "eager", "compile", "native", "op-pybind", "op-torch.ops", "python-fn")
        with open(a.markdown, "w") as f:
            f.write("# Native CPU backend: forward+backward, N + N float32 logits\n\n")
            f.write(f"Machine: {bench.device_name('cpu')}, {torch.get_num_threads()} threads, torch {torch.__version__}."
                    f" torch.utils.benchmark blocked_autorange ({a.min_run_time} s per figure), minimum over"
                    f" {a.rounds} interleaved rounds of each round's median.\n"
                    f"Command: `python benchmarks/cpu_targets.py --markdown {a.markdown}` (columns: see its docstring)\n\n")
            f.write("| loss | N | " + " | ".join(f"{c} µs" for c in cols)
                    + " | native vs eager | native / floor | native vs compile | native / floor, medians |\n|---|---|"
                    + "---|" * (len(cols) + 4) + "\n")
            for op, n, t in rows:
                f.write(f"| {op} | {n} | " + " | ".join(f"{t[c]:.1f}" for c in cols)
                        + f" | {t['eager'] / t['native']:.2f}x | {t['native'] / t['floor']:.2f} |"
                          f" {t['compile'] / t['native']:.2f}x | {t['median native / floor']:.2f} |\n")


if __name__ == "__main__":
    main()
