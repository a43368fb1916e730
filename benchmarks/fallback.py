"""The last resort of backend "auto": is the reference (fastgan.reference) as fast as
what a user writes by hand?  CPU, float32, forward+backward.

For every op of the registry, at N = 2^12, 2^20 and 2^24 logits per tensor argument
(grad_norm_penalty: grads of shape (16, 256), (64, 3*64*64) and (256, 65536)):

  reference   fastgan.reference.<op> (the "torch" backend, auto's fallback)
  eager       the hand-written composition a user writes (EAGER below)
  compile     torch.compile(fastgan.reference.<op>, dynamic=False)
  before      (only with --before PATH) another copy of reference.py, e.g. the last
              committed one: git show HEAD:fastgan/reference.py > /tmp/reference_before.py

Each call is ``torch.autograd.grad(op(*inputs), inputs)`` with the op's default options
and reduction "mean".  Timing is in interleaved rounds: each round times every
provider once (round-robin, a few calls each, the round's median), so drift of a
shared machine hits all providers alike.  The table gives the median over rounds of
the round medians and their min-max spread; the ratio reference/eager is taken per
round (median and min-max of the per-round ratios).

    python benchmarks/fallback.py --markdown benchmarks/results/fallback-cpu.md
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastgan import reference  # noqa: E402
from fastgan.registry import OPS  # noqa: E402


# --- what a user writes by hand, default options, reduction "mean" ---------------------

def _eager_bce_d(real, fake):
    return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, 1.0))
            + F.binary_cross_entropy_with_logits(fake, torch.full_like(fake, 0.0)))


EAGER = {
    "bce_d_loss": _eager_bce_d,
    "bce_g_loss": lambda fake: F.softplus(-fake).mean(),
    "hinge_d_loss": lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
    "hinge_g_loss": lambda fake: -fake.mean(),
    "lsgan_d_loss": lambda real, fake: 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean(),
    "lsgan_g_loss": lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
    "wasserstein_d_loss": lambda real, fake: fake.mean() - real.mean(),
    "wasserstein_g_loss": lambda fake: -fake.mean(),
    "binary_cross_entropy_with_logits": lambda input, target: F.binary_cross_entropy_with_logits(input, target),
    "grad_norm_penalty": lambda grads: ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean(),
}

SIZES = {"4096": 2 ** 12, "2^20": 2 ** 20, "2^24": 2 ** 24}
PENALTY_SHAPES = {"4096": (16, 256), "2^20": (64, 3 * 64 * 64), "2^24": (256, 65536)}


def inputs(op: str, size: str, gen: torch.Generator):
    """Leaf tensors to differentiate, and the extra (non-differentiated) arguments."""
    if op == "grad_norm_penalty":
        return [torch.randn(PENALTY_SHAPES[size], generator=gen).requires_grad_()], []
    n = SIZES[size]
    if op == "binary_cross_entropy_with_logits":
        return [(torch.randn(n, generator=gen) * 3).requires_grad_()], [torch.rand(n, generator=gen)]
    return [(torch.randn(n, generator=gen) * 3).requires_grad_() for _ in OPS[op].args], []


def _load(path: str):
    spec = importlib.util.spec_from_file_location("fastgan_reference_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def time_call(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def bench(op, size, providers_of, rounds, budget_s):
    gen = torch.Generator().manual_seed(0)
    xs, extra = inputs(op, size, gen)
    fns = {name: (lambda f=f: torch.autograd.grad(f(*xs, *extra), xs)) for name, f in providers_of(op, size).items()}
    # warm-up (and the compile), then the calls per provider per round from one timed call
    first = {}
    for name, fn in fns.items():
        fn()
        first[name] = time_call(fn, 1)
    reps = max(1, min(50, int(budget_s * 1e3 / max(first.values()))))
    per = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            per[name].append(time_call(fns[name], reps))
    return per


def fmt(xs):
    med = statistics.median(xs)
    return f"{med:.3g} [{min(xs):.3g}–{max(xs):.3g}]"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", nargs="*", default=list(OPS))
    p.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--budget", type=float, default=0.05, help="seconds per provider per round (approx.)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--before", help="path of another reference.py, timed as provider 'before'")
    p.add_argument("--markdown", help="write the table (and the machine) to this file")
    a = p.parse_args()

    before = _load(a.before) if a.before else None

    def providers_of(op, size):
        ref = getattr(reference, op)
        out = {"reference": ref, "eager": EAGER[op]}
        if before is not None:
            out["before"] = getattr(before, op)
        if not a.no_compile:
            torch._dynamo.reset()
            out["compile"] = torch.compile(ref, dynamic=False)
        return out

    cols = ["reference", "eager"] + (["before"] if before else []) + ([] if a.no_compile else ["compile"])
    head = ("| op | N | " + " | ".join(f"{c} ms" for c in cols) + " | reference/eager"
            + (" | before/eager" if before else "") + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    print(lines[0]), print(lines[1])
    for op in a.ops:
        for size in a.sizes:
            per = bench(op, size, providers_of, a.rounds, a.budget)
            ratio = [r / e for r, e in zip(per["reference"], per["eager"])]
            row = f"| {op} | {size} | " + " | ".join(fmt(per[c]) for c in cols) + f" | {fmt(ratio)}"
            if before:
                row += f" | {fmt([b / e for b, e in zip(per['before'], per['eager'])])}"
            row += " |"
            lines.append(row)
            print(row, flush=True)
    if a.markdown:
        model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
                     platform.processor())
        with open(a.markdown, "w") as f:
            f.write("# The reference (auto's fallback) against hand-written eager, CPU float32, fwd+bwd\n\n")
            f.write(f"Machine: {model}, {os.cpu_count()} cores (shared with other work: timings are noisy), "
                    f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
                    f"python {platform.python_version()}.\n")
            f.write(f"Command: `python benchmarks/fallback.py {' '.join(sys.argv[1:])}`\n\n")
            f.write(f"Interleaved rounds ({a.rounds}); each cell: median of the round medians "
                    "[min–max of the round medians], ms; ratios per round.\n\n")
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
