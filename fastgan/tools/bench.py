"""``fastgan bench``: every op, forward / backward / forward+backward, over a size sweep,
against eager PyTorch and ``torch.compile``, side by side in one run.

Providers (``PROVIDERS`` describes each; the table ends with that legend):

* ``eager``: the composition a user writes by hand, the op's ``baseline`` in
  ``tools/cases.py``, e.g. ``relu(1 − x).mean() + relu(1 + y).mean()``, or torch's own
  ``binary_cross_entropy_with_logits``;
* ``compile``: ``torch.compile`` of that composition (donated buffers off, so its
  backward can be timed alone);
* ``fastgan-native``, ``fastgan-triton``: fastgan with that fused backend, where it is
  usable on the device (the Triton interpreter is never timed);
* ``fastgan-torch``: fastgan with the ``torch`` backend, the pure-PyTorch reference that
  ``auto`` falls back to when no fused backend can run (no build tools, no Triton).  It
  is timed as a provider of its own and labelled "fallback" in the table, legend and
  plot, so a reader sees what a user gets without the fused kernels (argument checks
  and the reference, no fusion).

Timing: on CUDA ``triton.testing.do_bench`` (CUDA events, warm-up excluded, L2
flushed between repetitions so small inputs are not served from cache): median
and 20/80 % quantiles.  On CPU ``torch.utils.benchmark`` (blocked autorange):
median and quartiles.  For sizes of 2**20 elements and more, the achieved
bandwidth from the minimum bytes (forward: read the inputs; backward: read the
inputs, write the gradients) and its fraction of a device copy measured in the
same run.  Peak memory per provider on CUDA.

The cases are defined once, in ``cases()``, and each provider's callable in
``provider_fn``; ``benchmarks/`` runs the same cases under pytest-benchmark.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .. import backends
from .args import check_outputs
from .cases import CASES

MODES = ("fwd", "bwd", "fwd+bwd")
LOSS_SIZES = (("256", 256), ("patchgan-64x1x30x30", 64 * 30 * 30), ("2^20", 2 ** 20), ("2^24", 2 ** 24))
PENALTY_SHAPES = ((64, 3, 64, 64), (256, 3, 128, 128))
QUICK_LOSS_SIZES = (("4096", 4096),)
QUICK_PENALTY_SHAPES = ((16, 3, 16, 16),)
BANDWIDTH_MIN_NUMEL = 2 ** 20


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass
class Case:
    op: str
    label: str
    shapes: List[tuple]
    opts: dict = field(default_factory=dict)

    @property
    def numel(self) -> int:
        return sum(_numel(s) for s in self.shapes)

    @property
    def differentiable(self) -> List[bool]:
        """Which inputs get a gradient: every score of a GAN loss; only the logits or
        the gradient tensor for the drop-in BCE (not its target) and the penalty."""
        pair = CASES[self.op].is_discriminator
        return [pair or i == 0 for i in range(len(self.shapes))]

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"

    def inputs(self, device, dtype=torch.float32, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        xs = CASES[self.op].make_inputs(self.shapes, dtype, device, gen)
        return [x.requires_grad_(d) for x, d in zip(xs, self.differentiable)]


def cases(quick: bool = False, ops: Optional[Sequence[str]] = None) -> List[Case]:
    """Every benchmark case: each op of the registry over its size sweep."""
    out = []
    for name, spec in CASES.items():
        if ops and name not in ops:
            continue
        if spec.name == "grad_norm_penalty":
            for shape in (QUICK_PENALTY_SHAPES if quick else PENALTY_SHAPES):
                out.append(Case(name, "x".join(map(str, shape)), [shape]))
        else:
            for label, n in (QUICK_LOSS_SIZES if quick else LOSS_SIZES):
                out.append(Case(name, label, [(n,)] * len(spec.args)))
    return out


def min_bytes(case: Case, mode: str, itemsize: int = 4) -> int:
    """The least traffic any implementation needs: the forward reads the inputs,
    the backward reads them and writes one gradient per differentiable input."""
    read = case.numel * itemsize
    grads = sum(_numel(s) for s, diff in zip(case.shapes, case.differentiable) if diff) * itemsize
    return {"fwd": read, "bwd": read + grads, "fwd+bwd": 2 * read + grads}[mode]


# --------------------------------------------------------------------------- providers

def _baseline_fn(case: Case) -> Callable:
    ref = CASES[case.op].baseline
    opts = dict(case.opts)

    def fn(*xs):
        return ref(*xs, **opts)
    return fn


def _fastgan_fn(case: Case, backend: str) -> Callable:
    from .. import functional as F
    public = getattr(F, case.op)
    opts = dict(case.opts)

    def fn(*xs):
        with backends.use_backend(backend):
            return public(*xs, **opts)
    return fn


FALLBACK = "fastgan-torch"  # the reference backend "auto" falls back to
PROVIDERS = {
    "eager": "the hand-written composition (the op's baseline in tools/cases.py)",
    "compile": "torch.compile of that composition",
    "fastgan-native": "fastgan, backend native (C++ extension): what auto runs on CPU once it builds",
    "fastgan-triton": "fastgan, backend triton (Triton kernels): what auto runs on CUDA",
    FALLBACK: "fastgan, backend torch: the reference fallback, what auto runs when no fused backend can",
}


def provider_label(provider: str) -> str:
    """The name shown in the table and the plot: the fallback says it is one."""
    return f"{provider} (fallback)" if provider == FALLBACK else provider


def providers(device: str) -> Dict[str, Optional[str]]:
    """Provider name -> None if it runs here, else the reason it does not.  The fused
    backends first, the fallback (``fastgan-torch``) last."""
    out: Dict[str, Optional[str]] = {"eager": None, "compile": None}
    order = sorted(backends.BACKENDS, key=lambda name: f"fastgan-{name}" == FALLBACK)
    for name in order:
        b = backends.BACKENDS[name]
        ok, reason = b.status()
        problem = None if ok else reason
        if problem is None:
            problem = b.check_device(torch.device(device))
        if problem is None and name == "triton" and device == "cpu":
            problem = "the Triton interpreter is not timed"
        out[f"fastgan-{name}"] = problem
    return out


def provider_fn(provider: str, case: Case) -> Callable:
    """The callable ``provider`` times on ``case``: ``fn(*case.inputs(device))`` -> the loss."""
    if provider == "eager":
        return _baseline_fn(case)
    if provider == "compile":
        return torch.compile(_baseline_fn(case), dynamic=False)
    return _fastgan_fn(case, provider.split("-", 1)[1])


# --------------------------------------------------------------------------- timing

def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, min_run_time: float) -> Dict[str, float]:
    """Median and quartiles in microseconds."""
    if device == "cuda":
        import triton.testing
        rep = max(25, int(min_run_time * 1000))
        q = triton.testing.do_bench(fn, warmup=25, rep=rep, quantiles=[0.5, 0.2, 0.8])
        return {"median_us": q[0] * 1e3, "lo_us": q[1] * 1e3, "hi_us": q[2] * 1e3}
    import torch.utils.benchmark as tb
    # all of torch's threads (Timer's default is one), the same for every provider
    m = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time)
    times = sorted(m.times)
    qs = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_us": m.median * 1e6, "lo_us": qs[0] * 1e6, "hi_us": qs[2] * 1e6}


def copy_bandwidth(device: str, numel: int = 2 ** 24, min_run_time: float = 0.5) -> float:
    """Measured device copy bandwidth in GB/s (read + write of a float32 tensor)."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, min_run_time)
    return 2 * numel * 4 / (t["median_us"] * 1e-6) / 1e9


def _callables(fn, xs, mode):
    diff = [x for x in xs if x.requires_grad]
    if mode == "fwd":
        return lambda: fn(*xs)
    if mode == "fwd+bwd":
        return lambda: torch.autograd.grad(fn(*xs), diff)
    out = fn(*xs)
    return lambda: torch.autograd.grad(out, diff, retain_graph=True)


def _peak_memory(fn, xs, device) -> Optional[int]:
    if device != "cuda":
        return None
    diff = [x for x in xs if x.requires_grad]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    torch.autograd.grad(fn(*xs), diff)
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - base)


class Progress:
    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_pct = -10

    def step(self, what: str):
        self.done += 1
        if not self.enabled:
            return
        pct = 100 * self.done // max(self.total, 1)
        width = 30
        bar = "#" * (width * self.done // max(self.total, 1))
        msg = f"[{bar:<{width}}] {self.done}/{self.total} {time.perf_counter() - self.t0:5.0f}s {what}"
        if self.tty:
            print("\r" + msg[:110].ljust(110), end="", file=sys.stderr, flush=True)
        elif pct >= self.last_pct + 10:
            self.last_pct = pct
            print(msg, file=sys.stderr, flush=True)

    def close(self):
        if self.enabled and self.tty:
            print(file=sys.stderr)


def run(device: str = "cpu", quick: bool = False, ops=None, modes=MODES, min_run_time: Optional[float] = None,
        progress: bool = True, provider_filter=None) -> dict:
    """Run the benchmark; returns ``{"meta": ..., "rows": [...], "skipped": {...}}``."""
    if min_run_time is None:
        min_run_time = 0.05 if quick else 0.3
    provs = providers(device)
    if provider_filter:
        provs = {k: v for k, v in provs.items() if k in provider_filter}
    active = [p for p, why in provs.items() if why is None]
    # the backward is timed alone with retain_graph, which donated buffers forbid
    import torch._functorch.config as functorch_config
    functorch_config.donated_buffer = False
    # every case compiles the same wrapper with other ops and sizes: allow one graph per case
    import torch._dynamo.config as dynamo_config
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, knob):
            setattr(dynamo_config, knob, max(getattr(dynamo_config, knob), 4 * len(cases(quick, ops)) + 8))
    todo = cases(quick, ops)
    bar = Progress(len(todo) * len(active), enabled=progress)
    copy_gbs = copy_bandwidth(device, 2 ** 22 if quick else 2 ** 24, min_run_time)
    rows = []
    for case in todo:
        xs = case.inputs(device)
        by_mode: Dict[str, Dict[str, float]] = {m: {} for m in modes}
        for prov in active:
            bar.step(f"{case.id} {prov}")
            try:
                fn = provider_fn(prov, case)
                for _ in range(2):  # warm-up (and compile) outside the timing
                    torch.autograd.grad(fn(*xs), [x for x in xs if x.requires_grad])
                _sync(device)
                peak = _peak_memory(fn, xs, device)
                for mode in modes:
                    t = time_fn(_callables(fn, xs, mode), device, min_run_time)
                    by_mode[mode][prov] = t["median_us"]
                    row = {"op": case.op, "size": case.label, "numel": case.numel, "mode": mode,
                           "provider": prov, **{k: round(v, 3) for k, v in t.items()}, "peak_bytes": peak}
                    if case.numel >= BANDWIDTH_MIN_NUMEL:
                        gbs = min_bytes(case, mode) / (t["median_us"] * 1e-6) / 1e9
                        row["gb_per_s"] = round(gbs, 2)
                        row["frac_of_copy"] = round(gbs / copy_gbs, 3)
                    rows.append(row)
            except Exception as exc:  # a provider that fails is reported, not fatal
                rows.append({"op": case.op, "size": case.label, "numel": case.numel, "mode": "all",
                             "provider": prov, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        for row in rows:
            if row["op"] == case.op and row["size"] == case.label and "median_us" in row:
                ref = by_mode[row["mode"]]
                if "eager" in ref:
                    row["speedup_vs_eager"] = round(ref["eager"] / row["median_us"], 3)
                if "compile" in ref:
                    row["speedup_vs_compile"] = round(ref["compile"] / row["median_us"], 3)
    bar.close()
    return {"meta": metadata(device, copy_gbs, quick, min_run_time), "rows": rows,
            "skipped": {p: why for p, why in provs.items() if why is not None}}


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def git_commit() -> Optional[str]:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def metadata(device, copy_gbs, quick, min_run_time) -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # noqa: BLE001
        triton_version = None
    from .. import __version__
    return {"device": device, "device_name": device_name(device), "copy_gb_per_s": round(copy_gbs, 2),
            "torch": torch.__version__, "triton": triton_version, "fastgan": __version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "quick": quick, "min_run_time_s": min_run_time,
            "timer": "triton.testing.do_bench" if device == "cuda" else "torch.utils.benchmark"}


# --------------------------------------------------------------------------- output

def format_table(result: dict) -> str:
    rows = [r for r in result["rows"] if "median_us" in r]
    w = max([15] + [len(provider_label(r["provider"])) for r in rows])
    head = (f"{'op':<34} {'size':<20} {'mode':<8} {'provider':<{w}} {'median µs':>11} {'vs eager':>9} "
            f"{'vs compile':>10} {'GB/s':>8} {'of copy':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['op']:<34} {r['size']:<20} {r['mode']:<8} {provider_label(r['provider']):<{w}} "
                     f"{r['median_us']:>11.1f} "
                     f"{_x(r.get('speedup_vs_eager')):>9} {_x(r.get('speedup_vs_compile')):>10} "
                     f"{r.get('gb_per_s', ''):>8} {_pct(r.get('frac_of_copy')):>8}")
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"ERROR {r['op']} {r['size']} {r['provider']}: {r['error']}")
    m = result["meta"]
    lines.append(f"\n{m['device_name']}; copy bandwidth {m['copy_gb_per_s']} GB/s; torch {m['torch']}, "
                 f"triton {m['triton']}; {m['timer']}")
    timed = dict.fromkeys(r["provider"] for r in result["rows"])
    if timed:
        lines.append("providers:")
        lines.extend(f"  {provider_label(p):<{w}} {PROVIDERS.get(p, '')}" for p in timed)
    for p, why in result["skipped"].items():
        lines.append(f"not timed: {provider_label(p)}: {why}")
    return "\n".join(lines)


def _x(v):
    return "" if v is None else f"{v:.2f}x"


def _pct(v):
    return "" if v is None else f"{100 * v:.0f}%"


def write_csv(result: dict, path: str) -> None:
    keys = ["op", "size", "numel", "mode", "provider", "median_us", "lo_us", "hi_us", "speedup_vs_eager",
            "speedup_vs_compile", "gb_per_s", "frac_of_copy", "peak_bytes", "error"]
    meta = result["meta"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + list(meta))
        for r in result["rows"]:
            w.writerow([r.get(k, "") for k in keys] + [meta[k] for k in meta])


def plot(result: dict, path: str, mode: str = "fwd+bwd") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in result["rows"] if r.get("mode") == mode and "median_us" in r]
    ops = list(dict.fromkeys(r["op"] for r in rows))
    cols = 4
    nrows = max(1, (len(ops) + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        sub = [r for r in rows if r["op"] == op]
        for prov in dict.fromkeys(r["provider"] for r in sub):
            pts = sorted((r["numel"], r["median_us"]) for r in sub if r["provider"] == prov)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=provider_label(prov),
                    linestyle="--" if prov == FALLBACK else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("elements (all inputs)", fontsize=8)
        ax.set_ylabel(f"{mode} time (µs)", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    m = result["meta"]
    fig.suptitle(f"fastgan bench ({mode}, median) — {m['device_name']}, torch {m['torch']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fastgan bench", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="one small size per op, short timings (about a minute on CPU)")
    p.add_argument("--op", action="append", choices=list(CASES), help="only this op (repeatable)")
    p.add_argument("--mode", action="append", choices=list(MODES), help="only this mode (repeatable)")
    p.add_argument("--provider", action="append", choices=list(PROVIDERS),
                   help="only this provider (repeatable); fastgan-torch is the reference fallback")
    p.add_argument("--min-run-time", type=float, help="seconds per timing on CPU / ms scale on CUDA")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--csv", help="write the results as CSV here")
    p.add_argument("--plot", help="write a PNG of time vs size per op here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("fastgan bench: --device cuda asked for, but there is no CUDA device", file=sys.stderr)
        return 2
    check_outputs(p, a, ("--json", "--csv", "--plot"))  # before any timing
    result = run(a.device, a.quick, a.op, tuple(a.mode or MODES), a.min_run_time, not a.no_progress, a.provider)
    print(format_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.csv:
        write_csv(result, a.csv)
    if a.plot:
        plot(result, a.plot)
    errors = [r for r in result["rows"] if "error" in r]
    return 1 if errors else 0
