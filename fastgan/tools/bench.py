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

Timing (the same method for every provider, mode and device, and for the copy
reference): each callable is first warmed up to a steady state (blocks of calls
until the fastest of the last few is within 10 % of the fastest of the few
before, with a cap; the compile and the slow
first calls of a compiled function fall in there, and the warm-up's length is in
the JSON); then every callable of a case is timed in interleaved rounds
(round-robin, the order rotated each round, so drift on a shared machine hits
every provider alike): a figure is the median of the round values, its spread
their interquartile range, a ratio (vs eager, vs compile) is taken per round.  A
row whose spread exceeds 15 % of its median is measured once more (the rounds
pooled) and, if still over, marked ``noisy``.  A round's value is, on CPU, the
fastest of a few blocks of back-to-back calls (``time.perf_counter``, the garbage
collector off; other processes only ever add time); on CUDA
``triton.testing.do_bench`` (CUDA events, L2 flushed), its median.  For sizes of
2**20 elements and more, the achieved bandwidth from the minimum bytes
(forward: read the inputs; backward: read the inputs, write the gradients) and its
fraction of a device copy of the case's inputs timed in the same rounds.  Peak memory per provider on CUDA.

``--compare OLD.json [NEW.json]`` prints per row the change of the time and of the
speed-up vs eager, and whether each is beyond both runs' noise (their min–max
bands of round values apart, and 10 % or more); ``--fail-on-regression PCT`` makes
it exit 1.

The cases are defined once, in ``cases()``, and each provider's callable in
``provider_fn``; ``benchmarks/`` runs the same cases under pytest-benchmark.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gc
import json
import math
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
from . import bandwidth
from .args import InputJson, OutputFile, nonnegative_float, positive_float, positive_int
from ..registry import Family
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


# the score tensors of HiFi-GAN V1's 8 discriminators (5 multi-period, 3 multi-scale) at batch
# 16 and 8 192-sample segments: a list case of each pair loss (one tensor per discriminator)
HIFIGAN_SCORES = ((16, 102), (16, 102), (16, 105), (16, 105), (16, 110), (16, 128), (16, 65), (16, 33))


@dataclass
class Case:
    op: str
    label: str
    shapes: List[tuple]
    opts: dict = field(default_factory=dict)
    # a list case: ``shapes`` are one discriminator's each, every tensor argument is a list of
    # one tensor per shape; eager and compile loop over the discriminators
    lists: bool = False

    def arg_numels(self) -> List[int]:
        """The elements of each tensor argument (a list argument: of all its tensors)."""
        if self.lists:
            return [sum(_numel(s) for s in self.shapes)] * len(CASES[self.op].args)
        return [_numel(s) for s in self.shapes]

    @property
    def numel(self) -> int:
        return sum(self.arg_numels())

    @property
    def differentiable(self) -> List[bool]:
        """Which inputs get a gradient (``OpSpec.grad_args``)."""
        return list(CASES[self.op].spec.grad_args)

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"

    def inputs(self, device, dtype=torch.float32, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        spec = CASES[self.op]
        if self.lists:
            members = [spec.make_inputs([s] * len(spec.args), dtype, device, gen) for s in self.shapes]
            return [[m[i].requires_grad_(d) for m in members] for i, d in enumerate(self.differentiable)]
        xs = spec.make_inputs(self.shapes, dtype, device, gen)
        return [x.requires_grad_(d) for x, d in zip(xs, self.differentiable)]


def _leaves(xs) -> list:
    """The tensors of a case's inputs that take a gradient (list arguments flattened)."""
    flat = [y for x in xs for y in (x if isinstance(x, list) else [x])]
    return [x for x in flat if x.requires_grad]


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
        if spec.spec.family is Family.PAIR:
            out.append(Case(name, "hifigan-8-lists", list(HIFIGAN_SCORES), lists=True))
    return out


def min_bytes(case: Case, mode: str, itemsize: int = 4) -> int:
    """The least traffic any implementation needs: the forward reads the inputs,
    the backward reads them and writes one gradient per differentiable input."""
    read = case.numel * itemsize
    grads = sum(n for n, diff in zip(case.arg_numels(), case.differentiable) if diff) * itemsize
    return {"fwd": read, "bwd": read + grads, "fwd+bwd": 2 * read + grads}[mode]


# --------------------------------------------------------------------------- providers

def _baseline_fn(case: Case) -> Callable:
    ref = CASES[case.op].baseline
    opts = dict(case.opts)
    if case.lists:  # the loop over discriminators the multi-discriminator codebases write
        def loop(*xs):
            total = 0
            for members in zip(*xs):
                total = total + ref(*members, **opts)
            return total
        return loop

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
#
# One method on every device, for every provider and mode of a case and for the copy
# reference:
#   1. steady state first: call each callable in blocks (~1 ms each) until the fastest
#      of the last WARMUP_WINDOW blocks is within WARMUP_TOL of the fastest of the
#      window before (the best case stopped improving), at most a cap of seconds;
#      torch.compile's first calls (the compile, then calls that still take
#      milliseconds) fall in here.  The warm-up's length goes into the JSON.
#   2. interleaved rounds: each round times every callable once (a short slot: a few
#      blocks of calls, the fastest of them, as interference only adds time), in an
#      order rotated each round, so drift on a shared machine hits every provider
#      alike.  A row's figure is the median of its round values; its spread the
#      interquartile range (IQR) of them.  A ratio (vs eager, vs compile) is taken per
#      round, then its median and IQR.
#   3. noise is reported: a case with a row whose IQR exceeds NOISY of its median (time
#      or ratio) is measured again once, the rounds pooled; a row still over it is
#      marked noisy.
# On CUDA a round's slot is ``triton.testing.do_bench`` (CUDA events, L2 flushed, its
# median); the warm-up blocks are timed with CUDA events.

NOISY = 0.15            # IQR / median above which a row is noisy
ROUNDS = 7              # interleaved rounds per case
BLOCKS_PER_SLOT = 8     # blocks per callable per round on CPU (the fastest is the round value)
WARMUP_BLOCK_S = 1e-3   # warm-up block length
WARMUP_WINDOW = 4       # steady: the fastest of the last 4 warm-up blocks ...
WARMUP_TOL = 0.10       # ... within 10 % of the fastest of the 4 before
WARMUP_MIN_S = 0.02
SLOWDOWN_ENV = "FASTGAN_BENCH_SLOWDOWN"  # test hook: "provider:factor[,provider:factor]"


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _block(fn: Callable[[], object], number: int, device: str) -> float:
    """Seconds per call over ``number`` back-to-back calls (CUDA: events around them).
    The garbage collector is off inside the block, as in ``timeit``."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3 / number
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if was_enabled:
            gc.enable()


def warm_up(fn: Callable[[], object], device: str, max_s: float = 0.3, min_s: float = WARMUP_MIN_S,
            window: int = WARMUP_WINDOW, tol: float = WARMUP_TOL, block_s: float = WARMUP_BLOCK_S) -> dict:
    """Call ``fn`` until consecutive timings agree: blocks of about ``block_s`` seconds; steady
    once the fastest of the last ``window`` blocks is within ``tol`` of the fastest of the
    ``window`` before (the best case has stopped improving: a compiled function's first
    calls, 25 ms, 8 ms, 0.4 ms, are over) and ``min_s`` has passed; at most ``max_s``
    (``steady`` False).  The fastest block rather than all of them, because on a shared
    machine other processes add time to some blocks whatever the warm-up.  Returns the
    warm-up's length (``warmup_s``, ``warmup_calls``), ``steady``, and ``per_call_s`` (the
    median of the last blocks: what the rounds are sized from)."""
    t_start = time.perf_counter()
    calls, number, blocks = 0, 1, []
    while True:
        per = _block(fn, number, device)
        calls += number
        blocks.append(per)
        number = max(1, min(4 * number, int(block_s / max(per, 1e-9))))
        elapsed = time.perf_counter() - t_start
        last, before = blocks[-window:], blocks[-2 * window:-window]
        steady = len(before) == window and min(last) >= (1 - tol) * min(before)
        if (steady and elapsed >= min_s) or elapsed >= max_s:
            return {"warmup_s": elapsed, "warmup_calls": calls, "steady": steady,
                    "per_call_s": statistics.median(last)}


def _slot(fn: Callable[[], object], device: str, slot_s: float, per_call_s: float) -> float:
    """One round's value for one callable, seconds per call, from about ``slot_s`` of calls:
    on CPU the fastest of a few blocks of back-to-back calls (interference from other
    processes only ever adds time); on CUDA ``do_bench``'s median (events, L2 flushed)."""
    if device == "cuda":
        import triton.testing
        return triton.testing.do_bench(fn, warmup=1, rep=max(1.0, slot_s * 1e3), return_mode="median") * 1e-3
    blocks = max(1, min(BLOCKS_PER_SLOT, int(slot_s / max(per_call_s, 1e-9))))
    number = max(1, int(slot_s / blocks / max(per_call_s, 1e-9)))
    return min(_block(fn, number, device) for _ in range(blocks))


def interleaved(fns: Dict[tuple, Callable[[], object]], device: str, rounds: int, slot_s: float,
                per_call_s: Dict[tuple, float]) -> Dict[tuple, List[float]]:
    """Round-robin over ``fns``: ``rounds`` rounds, each timing every callable once for about
    ``slot_s`` seconds, the order rotated by one each round.  Seconds per call, one value
    per round, per callable."""
    keys = list(fns)
    out: Dict[tuple, List[float]] = {k: [] for k in keys}
    for r in range(rounds):
        shift = r % max(len(keys), 1)
        for k in keys[shift:] + keys[:shift]:
            out[k].append(_slot(fns[k], device, slot_s, per_call_s[k]))
    return out


def summarize(values: Sequence[float]) -> dict:
    """Median, quartiles, min, max and ``spread`` (IQR / median) of a list of round values."""
    vals = sorted(values)
    med = statistics.median(vals)
    q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) >= 2 else (vals[0],) * 3
    return {"median": med, "q1": q1, "q3": q3, "min": vals[0], "max": vals[-1],
            "spread": (q3 - q1) / med if med else 0.0}


def time_fn(fn: Callable[[], object], device: str, min_run_time: float, rounds: int = ROUNDS) -> Dict[str, float]:
    """One callable alone: warm-up to steady state, then ``rounds`` rounds sharing
    ``min_run_time`` seconds.  Median and quartiles of the round values, microseconds."""
    w = warm_up(fn, device, max_s=max(0.2, min_run_time))
    per = interleaved({(): fn}, device, rounds, min_run_time / rounds, {(): w["per_call_s"]})[()]
    s = summarize(per)
    return {"median_us": s["median"] * 1e6, "lo_us": s["q1"] * 1e6, "hi_us": s["q3"] * 1e6}


def copy_stats(device: str, numel: int = 2 ** 24, min_run_time: float = 0.5, rounds: int = ROUNDS) -> dict:
    """Device copy bandwidth (read + write of a float32 tensor), GB/s, over interleaved-style
    rounds: median and quartiles."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    fn = lambda: dst.copy_(src)  # noqa: E731
    w = warm_up(fn, device, max_s=max(0.2, min_run_time))
    per = interleaved({(): fn}, device, rounds, min_run_time / rounds, {(): w["per_call_s"]})[()]
    gbs = [2 * numel * 4 / t / 1e9 for t in per]
    s = summarize(gbs)
    return {"gb_per_s": s["median"], "lo": s["q1"], "hi": s["q3"], "spread": s["spread"]}


def copy_bandwidth(device: str, numel: int = 2 ** 24, min_run_time: float = 0.5) -> float:
    """Measured device copy bandwidth in GB/s (read + write of a float32 tensor)."""
    return copy_stats(device, numel, min_run_time)["gb_per_s"]


def parallel_stall(device: str, threads: int, numel: int = 2 ** 18) -> Optional[str]:
    """CPU: why timing with ``threads`` threads would measure the machine rather than the op,
    or None.  When other processes hold the cores, a parallel region waits for its threads
    to be scheduled (a time slice: milliseconds), and an op that opens one (a 4096-element
    ``log_sigmoid``, the loops ``torch.compile`` generates) takes 10 ms instead of 10 µs,
    in bursts, as the other processes come and go.  Stalled when the load average (other
    processes wanting a core) leaves fewer than ``threads`` cores, or when a probe (an
    in-place multiply over ``numel`` floats, which torch splits across threads, timed call
    by call with ``threads`` threads and with one, alternately) sees a tenth of its
    many-thread calls take over 5x the one-thread median."""
    if device != "cpu" or threads <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    # our own process counts about 1 in the load average once it has run a while
    if load - 1.0 > cores - threads + 0.5:
        return (f"load average {load:.1f} on {cores} cores: other processes hold cores that {threads} threads "
                f"would wait for")
    x = torch.ones(numel)
    fn = lambda: x.mul_(1.0)  # noqa: E731
    old = torch.get_num_threads()
    times: Dict[int, List[float]] = {1: [], threads: []}
    try:
        for _ in range(8):
            for n in (1, threads):
                torch.set_num_threads(n)
                fn()
                times[n] += [_block(fn, 1, device) for _ in range(12)]
    finally:
        torch.set_num_threads(old)
    one = statistics.median(times[1])
    slow = sorted(times[threads])[int(0.9 * len(times[threads]))]
    if slow <= 5 * one:
        return None
    return (f"a multiply over {numel} floats took over {slow * 1e6:.0f} µs in a tenth of the calls with {threads} "
            f"threads, {one * 1e6:.0f} µs with 1: parallel regions wait for cores that other processes hold")


def _callables(fn, xs, mode):
    diff = _leaves(xs)
    if mode == "fwd":
        return lambda: fn(*xs)
    if mode == "fwd+bwd":
        return lambda: torch.autograd.grad(fn(*xs), diff)
    out = fn(*xs)
    return lambda: torch.autograd.grad(out, diff, retain_graph=True)


def parse_slowdown(text: Optional[str]) -> Dict[str, float]:
    """``"fastgan-native:1.3,eager:2"`` -> {provider: factor} (the test hook's format)."""
    out: Dict[str, float] = {}
    for part in filter(None, (text or "").split(",")):
        prov, _, factor = part.partition(":")
        out[prov.strip()] = float(factor)
    return out


def slowed(fn: Callable[[], object], factor: Optional[float]) -> Callable[[], object]:
    """Test hook: ``fn`` doing ``factor`` times its work on average (extra whole calls,
    e.g. 1.3: one extra call every ~3.3 calls), so an injected slowdown is exact and
    proportional, whatever the machine."""
    if not factor or factor == 1.0:
        return fn
    extra, owed = factor - 1.0, [0.0]

    def run():
        owed[0] += extra
        while owed[0] >= 1.0:
            fn()
            owed[0] -= 1.0
        return fn()
    return run


def _peak_memory(fn, xs, device) -> Optional[int]:
    if device != "cuda":
        return None
    diff = _leaves(xs)
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


COPY = ("copy", "copy")  # the copy reference's key among a case's callables


def _rows(case: Case, per: Dict[tuple, List[float]], warm: Dict[tuple, dict], peak: Dict[str, Optional[int]],
          remeasured: bool, noisy_at: float) -> List[dict]:
    """The table rows of one case from its round values (seconds per call)."""
    rows = []
    copy = per.get(COPY)
    for (prov, mode), vals in per.items():
        if (prov, mode) == COPY:
            continue
        s = summarize(vals)
        w = warm[(prov, mode)]
        row = {"op": case.op, "size": case.label, "numel": case.numel, "lists": case.lists, "mode": mode,
               "provider": prov,
               "median_us": round(s["median"] * 1e6, 3), "lo_us": round(s["q1"] * 1e6, 3),
               "hi_us": round(s["q3"] * 1e6, 3), "min_us": round(s["min"] * 1e6, 3),
               "max_us": round(s["max"] * 1e6, 3), "spread": round(s["spread"], 4), "rounds": len(vals),
               "round_us": [round(v * 1e6, 3) for v in vals],
               "warmup_s": round(w["warmup_s"], 4), "warmup_calls": w["warmup_calls"],
               "warmup_steady": w["steady"], "peak_bytes": peak.get(prov), "remeasured": remeasured}
        spreads = [s["spread"]]
        for ref in ("eager", "compile"):
            if (ref, mode) in per:
                r = summarize([a / b for a, b in zip(per[(ref, mode)], vals)])
                row[f"speedup_vs_{ref}"] = round(r["median"], 3)
                row[f"speedup_vs_{ref}_lo"] = round(r["q1"], 3)
                row[f"speedup_vs_{ref}_hi"] = round(r["q3"], 3)
                row[f"speedup_vs_{ref}_spread"] = round(r["spread"], 4)
                spreads.append(r["spread"])
        if copy is not None:
            nbytes = min_bytes(case, mode)
            row["gb_per_s"] = round(nbytes / s["median"] / 1e9, 2)
            copy_gbs = [2 * case.numel * 4 / c / 1e9 for c in copy]
            row["copy_gb_per_s"] = round(statistics.median(copy_gbs), 2)
            frac = summarize([nbytes / v / 1e9 / c for v, c in zip(vals, copy_gbs)])
            row["frac_of_copy"] = round(frac["median"], 3)
            row["frac_of_copy_spread"] = round(frac["spread"], 4)
            spreads.append(frac["spread"])
        row["noisy"] = max(spreads) > noisy_at
        rows.append(row)
    return rows


def measure_case(case: Case, active: Sequence[str], modes: Sequence[str], device: str, min_run_time: float,
                 rounds: int = ROUNDS, warmup_max_s: float = 0.3, noisy_at: float = NOISY,
                 slowdown: Optional[Dict[str, float]] = None, step=lambda what: None) -> List[dict]:
    """Every provider x mode of one case, warmed up to steady state, then timed in
    interleaved rounds (with the copy reference where bandwidth is reported); measured
    once more if a row is noisy.  Returns the rows (a provider that fails: an error row)."""
    slowdown = slowdown or {}
    xs = case.inputs(device)
    diff = _leaves(xs)
    fns: Dict[tuple, Callable[[], object]] = {}
    warm: Dict[tuple, dict] = {}
    peak: Dict[str, Optional[int]] = {}
    errors = []
    for prov in active:
        step(f"{case.id} {prov}")
        try:
            fn = provider_fn(prov, case)
            torch.autograd.grad(fn(*xs), diff)  # the first call (and the compile) outside everything
            _sync(device)
            peak[prov] = _peak_memory(fn, xs, device)
            for mode in modes:
                c = slowed(_callables(fn, xs, mode), slowdown.get(prov))
                warm[(prov, mode)] = warm_up(c, device, max_s=warmup_max_s)
                fns[(prov, mode)] = c
        except Exception as exc:  # a provider that fails is reported, not fatal
            for mode in modes:
                fns.pop((prov, mode), None)
            errors.append({"op": case.op, "size": case.label, "numel": case.numel, "mode": "all",
                           "provider": prov, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
    if fns and case.numel >= BANDWIDTH_MIN_NUMEL:
        src = torch.randn(case.numel, device=device)
        dst = torch.empty_like(src)
        fns[COPY] = lambda: dst.copy_(src)
        warm[COPY] = warm_up(fns[COPY], device, max_s=warmup_max_s)
    if not fns:
        return errors
    per_call = {k: w["per_call_s"] for k, w in warm.items()}
    slot_s = min_run_time / rounds
    per = interleaved(fns, device, rounds, slot_s, per_call)
    rows = _rows(case, per, warm, peak, False, noisy_at)
    if any(r["noisy"] for r in rows):  # once more, the rounds pooled
        again = interleaved(fns, device, rounds, slot_s, per_call)
        per = {k: per[k] + again[k] for k in per}
        rows = _rows(case, per, warm, peak, True, noisy_at)
    return rows + errors


def run(device: str = "cpu", quick: bool = False, ops=None, modes=MODES, min_run_time: Optional[float] = None,
        progress: bool = True, provider_filter=None, rounds: int = ROUNDS, noisy_at: float = NOISY,
        slowdown: Optional[Dict[str, float]] = None, threads: Optional[int] = None) -> dict:
    """Run the benchmark; returns ``{"meta": ..., "rows": [...], "skipped": {...}}``.
    ``min_run_time``: seconds of timing per provider and mode, shared by the rounds.
    ``threads`` (CPU): torch's threads for the whole run; None: torch's current number,
    or 1 where ``parallel_stall`` finds that many threads stall (said in the meta)."""
    if min_run_time is None:
        min_run_time = 0.1 if quick else 0.3
    asked = torch.get_num_threads() if threads is None else threads
    stall = parallel_stall(device, asked) if threads is None else None
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1 if stall else asked)
    try:
        result = _run(device, quick, ops, modes, min_run_time, progress, provider_filter, rounds, noisy_at, slowdown)
    finally:
        torch.set_num_threads(old_threads)
    result["meta"]["threads_asked"] = asked
    if stall:
        result["meta"]["threads_note"] = f"1 thread instead of {asked}: {stall}"
    return result


def _run(device, quick, ops, modes, min_run_time, progress, provider_filter, rounds, noisy_at, slowdown) -> dict:
    if slowdown is None:
        slowdown = parse_slowdown(os.environ.get(SLOWDOWN_ENV))
    provs = providers(device)
    if provider_filter:
        provs = {k: v for k, v in provs.items() if k in provider_filter}
    active = [p for p, why in provs.items() if why is None]
    # the backward is timed alone with retain_graph, which donated buffers forbid
    import torch._functorch.config as functorch_config
    functorch_config.donated_buffer = False
    # compile in this process: a pool of compile workers starting up (importing torch)
    # would take the cores from the timings that follow
    import torch._inductor.config as inductor_config
    inductor_config.compile_threads = 1
    # every case compiles the same wrapper with other ops and sizes: allow one graph per case
    import torch._dynamo.config as dynamo_config
    todo = cases(quick, ops)
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, knob):
            setattr(dynamo_config, knob, max(getattr(dynamo_config, knob), 4 * len(todo) + 8))
    bar = Progress(len(todo) * len(active), enabled=progress)
    t0 = time.perf_counter()
    copy = copy_stats(device, 2 ** 22 if quick else 2 ** 24, min_run_time, rounds)
    warmup_max_s = 0.3 if quick else 2.0
    rows = []
    for case in todo:
        rows += measure_case(case, active, modes, device, min_run_time, rounds, warmup_max_s, noisy_at,
                             slowdown, bar.step)
    bar.close()
    meta = metadata(device, copy["gb_per_s"], quick, min_run_time)
    meta.update({"copy_gb_per_s_lo": round(copy["lo"], 2), "copy_gb_per_s_hi": round(copy["hi"], 2),
                 "rounds": rounds, "noisy_threshold": noisy_at, "warmup_max_s": warmup_max_s,
                 "ops": list(ops) if ops else None, "modes": list(modes),
                 "providers": list(provider_filter) if provider_filter else None,
                 "wall_s": round(time.perf_counter() - t0, 1),
                 "copy_spread": round(copy["spread"], 4), "copy_noisy": copy["spread"] > noisy_at,
                 "method": "steady-state warm-up, then interleaved rounds (a round's value: the fastest of a few "
                           "blocks of calls): median and IQR of the round values; ratios per round"})
    if slowdown:
        meta["injected_slowdown"] = slowdown
    _add_model_fraction(rows, meta)
    return {"meta": meta, "rows": rows, "skipped": {p: why for p, why in provs.items() if why is not None}}


def _add_model_fraction(rows: List[dict], meta: dict) -> None:
    """On a GPU the bandwidth model knows (``fastgan.tools.bandwidth``, an assumed copy
    bandwidth): each row's ``frac_of_model``, the model's predicted time over the measured
    one (1.0 = at the assumed copy bandwidth; float32 bytes, as the bench's inputs)."""
    if meta.get("device") != "cuda":
        return
    try:
        key = bandwidth.device_key(meta["device_name"])
    except KeyError:
        return
    meta["model_bandwidth"] = f"{key}: {bandwidth.COPY_BANDWIDTH[key] / 1e12:.1f} TB/s (assumed)"
    known = {(c.op, c.label): c for c in cases(quick=False) + cases(quick=True)}
    for r in rows:
        if "median_us" not in r or (r["op"], r["size"]) not in known:
            continue
        case = known[(r["op"], r["size"])]
        if case.lists:  # every discriminator's tensors: the bytes of the concatenation
            n = case.arg_numels()
            nbytes = bandwidth.min_bytes(r["op"], n[0], n[1] if len(n) > 1 else None, torch.float32, r["mode"])
        else:
            nbytes = bandwidth.shapes_bytes(r["op"], case.shapes, torch.float32, r["mode"])
        r["frac_of_model"] = round(bandwidth.predicted_seconds(nbytes, meta["device_name"]) / (r["median_us"] * 1e-6),
                                   3)


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
            "timer": ("triton.testing.do_bench per round" if device == "cuda"
                      else "time.perf_counter blocks per round")}


# --------------------------------------------------------------------------- output

def _x(v):
    return "" if v is None else f"{v:.2f}x"


def _pm(spread):
    """A spread (IQR / median) shown as ± half of it, in percent."""
    if spread is None:
        return ""
    return "±>999%" if 50 * spread > 999 else f"±{50 * spread:.0f}%"


def _ratio(r, ref):
    v = r.get(f"speedup_vs_{ref}")
    if v is None:
        return ""
    if r["provider"] == ref:
        return _x(v)
    return f"{_x(v)} {_pm(r.get(f'speedup_vs_{ref}_spread'))}"


def _pct(v):
    return "" if v is None else f"{100 * v:.0f}%"


def noisy_summary(result: dict) -> str:
    rows = [r for r in result["rows"] if "median_us" in r]
    noisy = [r for r in rows if r.get("noisy")]
    thr = result["meta"].get("noisy_threshold", NOISY)
    line = (f"{len(rows)} rows, {len(noisy)} noisy (interquartile range of the round values over "
            f"{100 * thr:.0f}% of the median, after one re-measure)")
    if noisy:
        mrt = result["meta"].get("min_run_time_s") or 0.1
        line += (f": their figures are not to be trusted; rerun on a quieter machine or with a longer "
                 f"--min-run-time (e.g. --min-run-time {max(0.5, 4 * mrt):g})")
    return line


def format_table(result: dict) -> str:
    rows = [r for r in result["rows"] if "median_us" in r]
    w = max([15] + [len(provider_label(r["provider"])) for r in rows])
    ws = max([6] + [len(r["size"]) for r in rows])
    wo = max([4] + [len(r["op"]) for r in rows])
    head = (f"{'op':<{wo}} {'size':<{ws}} {'mode':<8} {'provider':<{w}} {'median µs':>11} {'spread':>7} "
            f"{'vs eager':>12} {'vs compile':>12} {'GB/s':>8} {'of copy':>8}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['op']:<{wo}} {r['size']:<{ws}} {r['mode']:<8} {provider_label(r['provider']):<{w}} "
                     f"{r['median_us']:>11.1f} {_pm(r.get('spread')):>7} "
                     f"{_ratio(r, 'eager'):>12} {_ratio(r, 'compile'):>12} "
                     f"{r.get('gb_per_s', ''):>8} {_pct(r.get('frac_of_copy')):>8}  "
                     f"{'noisy' if r.get('noisy') else ''}"
                     f"{'  model ' + _pct(r['frac_of_model']) if 'frac_of_model' in r else ''}")
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"ERROR {r['op']} {r['size']} {r['provider']}: {r['error']}")
    m = result["meta"]
    copy_note = ""
    if "copy_spread" in m:
        copy_note = f" {_pm(m['copy_spread'])}"
        if m["copy_noisy"]:
            copy_note += " (noisy: memory traffic of other processes)"
    lines.append(f"\n{m['device_name']}; {m['threads']} torch thread{'s' if m['threads'] != 1 else ''}; copy "
                 f"bandwidth {m['copy_gb_per_s']} GB/s{copy_note}; torch {m['torch']}, triton {m['triton']}; "
                 f"{m['timer']}")
    if m.get("threads_note"):
        lines.append(f"threads: {m['threads_note']} (--threads N to insist)")
    if "rounds" in m:
        lines.append(f"median of {m['rounds']} interleaved rounds after a steady-state warm-up; spread and ± on "
                     f"ratios: half the interquartile range of the round values (ratios taken per round); "
                     f"noisy: interquartile range over {100 * m['noisy_threshold']:.0f}% of the median")
    if m.get("injected_slowdown"):
        lines.append(f"INJECTED SLOWDOWN (test hook {SLOWDOWN_ENV}): {m['injected_slowdown']}")
    timed = dict.fromkeys(r["provider"] for r in result["rows"])
    if timed:
        lines.append("providers:")
        lines.extend(f"  {provider_label(p):<{w}} {PROVIDERS.get(p, '')}" for p in timed)
    for p, why in result["skipped"].items():
        lines.append(f"not timed: {provider_label(p)}: {why}")
    if rows:
        warm = sorted(rows, key=lambda r: r.get("warmup_s", 0))
        unsteady = sum(1 for r in rows if r.get("warmup_steady") is False)
        if "warmup_s" in warm[-1]:
            lines.append(f"warm-up: median {1e3 * warm[len(warm) // 2]['warmup_s']:.0f} ms, longest "
                         f"{1e3 * warm[-1]['warmup_s']:.0f} ms ({warm[-1]['op']} {warm[-1]['provider']} "
                         f"{warm[-1]['mode']}); {unsteady} not steady by the cap")
        lines.append(noisy_summary(result))
    return "\n".join(lines)


CSV_KEYS = ["op", "size", "numel", "mode", "provider", "median_us", "lo_us", "hi_us", "min_us", "max_us", "spread",
            "rounds", "noisy", "remeasured", "speedup_vs_eager", "speedup_vs_eager_lo", "speedup_vs_eager_hi",
            "speedup_vs_compile", "speedup_vs_compile_lo", "speedup_vs_compile_hi", "gb_per_s", "frac_of_copy",
            "frac_of_copy_spread", "frac_of_model",
            "warmup_s", "warmup_calls", "warmup_steady", "peak_bytes", "error"]


def write_csv(result: dict, path: str) -> None:
    meta = {k: v for k, v in result["meta"].items() if k not in CSV_KEYS}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_KEYS + list(meta))
        for r in result["rows"]:
            w.writerow([r.get(k, "") for k in CSV_KEYS] + [meta[k] for k in meta])


def list_row(r: dict) -> bool:
    """Whether a row is of a list case (one tensor per discriminator): its own bar, never a point
    of a size sweep.  Rows of older runs do not say: their size label tells."""
    if "lists" in r:
        return bool(r["lists"])
    return r["size"] in {c.label for c in cases(True) + cases(False) if c.lists}


def layout(result: dict, mode: str = "fwd+bwd") -> dict:
    """What ``plot`` draws, as data.  ``kind`` "speedups" when every op has one size besides its
    list cases (the quick run): ``groups``, one per op and size, a list case a group of its own
    (``lists`` True); ``bars`` per reference ("eager", "compile"): one per group and provider
    with the median of the per-round ratios, its quartiles (``lo``, ``hi``: the error bar) and
    ``noisy``.  Else ``kind`` "sweep": per op, ``lines`` (provider -> [(elements, µs, lo, hi,
    noisy)] over the sizes) and ``points`` (the list cases: provider -> [(size, elements, µs)]),
    never joined to the lines."""
    rows = [r for r in result["rows"] if r.get("mode") == mode and "median_us" in r]
    sizes: Dict[str, set] = {}
    for r in rows:
        if not list_row(r):
            sizes.setdefault(r["op"], set()).add(r["size"])
    provs = list(dict.fromkeys(r["provider"] for r in rows))
    if all(len(s) <= 1 for s in sizes.values()):
        groups = list(dict.fromkeys((r["op"], r["size"], list_row(r)) for r in rows))
        refs = [ref for ref in ("eager", "compile") if any(f"speedup_vs_{ref}" in r for r in rows)]
        bars = {}
        for ref in refs:
            bars[ref] = [{"group": i, "provider": r["provider"], "value": r[f"speedup_vs_{ref}"],
                          "lo": r.get(f"speedup_vs_{ref}_lo", r[f"speedup_vs_{ref}"]),
                          "hi": r.get(f"speedup_vs_{ref}_hi", r[f"speedup_vs_{ref}"]), "noisy": bool(r.get("noisy"))}
                         for i, (op, size, _) in enumerate(groups) for r in rows
                         if (r["op"], r["size"]) == (op, size) and r["provider"] != ref and f"speedup_vs_{ref}" in r]
        return {"kind": "speedups", "mode": mode, "providers": provs,
                "groups": [{"op": op, "size": size, "lists": lists} for op, size, lists in groups],
                "refs": refs, "bars": bars}
    panels = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        lines: Dict[str, list] = {}
        points: Dict[str, list] = {}
        for r in rows:
            if r["op"] != op:
                continue
            if list_row(r):
                points.setdefault(r["provider"], []).append((r["size"], r["numel"], r["median_us"]))
            else:
                lines.setdefault(r["provider"], []).append(
                    (r["numel"], r["median_us"], r.get("lo_us", r["median_us"]), r.get("hi_us", r["median_us"]),
                     bool(r.get("noisy"))))
        bound = sorted({(r["numel"], min_bytes_of_row(r) / (r["copy_gb_per_s"] * 1e9) * 1e6)
                        for r in rows if r["op"] == op and r.get("copy_gb_per_s") and not list_row(r)})
        panels[op] = {"lines": {p: sorted(v) for p, v in lines.items()}, "points": points, "copy_bound": bound}
    return {"kind": "sweep", "mode": mode, "providers": provs, "panels": panels}


def plot(result: dict, path: str, mode: str = "fwd+bwd") -> dict:
    """Write the PNG: the quick run's speed-up bars, or a size sweep's time vs size per op
    (``layout`` says which, and is returned)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lay = layout(result, mode)
    fig = figure(result, lay)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return lay


def figure(result: dict, lay: dict):
    """The matplotlib figure of ``layout(result)``."""
    return (_speedup_figure if lay["kind"] == "speedups" else _sweep_figure)(result, lay)


def _speedup_figure(result, lay):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    groups, mode = lay["groups"], lay["mode"]
    colors = {p: f"C{i}" for i, p in enumerate(lay["providers"])}
    refs = lay["refs"] or ["eager"]
    fig, axes = plt.subplots(len(refs), 1, figsize=(max(9, 0.75 * len(groups) + 3), 3.8 * len(refs)), squeeze=False)
    noisy_any = any(b["noisy"] for bars in lay["bars"].values() for b in bars)
    for ax, ref in zip(axes[:, 0], refs):
        bars = lay["bars"].get(ref, [])
        shown = list(dict.fromkeys(b["provider"] for b in bars))
        width = 0.8 / max(len(shown), 1)
        lo_all, hi_all = [1.0], [1.0]
        for i, g in enumerate(groups):
            if g["lists"]:
                ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0)
        for b in bars:
            v, lo, hi = b["value"], b["lo"], b["hi"]
            x = b["group"] - 0.4 + width * (shown.index(b["provider"]) + 0.5)
            ax.bar(x, v - 1.0, width, bottom=1.0, color=colors[b["provider"]], alpha=0.45 if b["noisy"] else 0.9,
                   hatch="//" if b["noisy"] else None, edgecolor="k", linewidth=0.4, label=b["provider"])
            ax.errorbar(x, v, yerr=[[v - lo], [hi - v]], fmt="none", ecolor="k", capsize=2, lw=0.8)
            lo_all.append(lo)
            hi_all.append(hi)
            up = v >= 1.0
            ax.annotate(f"{v:.2f}", (x, hi if up else lo), xytext=(0, 2 if up else -2), textcoords="offset points",
                        ha="center", va="bottom" if up else "top", fontsize=5.5, rotation=90)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        lo_lim, hi_lim = min(lo_all) / 1.5, max(hi_all) * 1.5
        ax.set_ylim(lo_lim, hi_lim)
        ticks = [t for t in (0.1, 0.2, 0.25, 0.5, 1, 2, 3, 4, 5, 10, 20, 50) if lo_lim <= t <= hi_lim]
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{g['op']}\n[{g['size']}]" if g["lists"] else g["op"] for g in groups],
                           rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(f"speed-up vs {ref}\n(>1: faster than {ref})", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        handles = [Patch(facecolor=colors[p], edgecolor="k", label=provider_label(p)) for p in shown]
        if noisy_any:
            handles.append(Patch(facecolor="white", edgecolor="k", hatch="//", label="noisy"))
        if any(g["lists"] for g in groups):
            handles.append(Patch(facecolor="0.92", label="list case (one tensor per discriminator)"))
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    m = result["meta"]
    sizes = ", ".join(dict.fromkeys(g["size"] for g in groups if not g["lists"]))
    fig.suptitle(f"fastgan bench: how much faster ({mode}, size {sizes}; median of {m.get('rounds', '?')} "
                 f"interleaved rounds, bars: interquartile range of per-round ratios)\n"
                 f"{m.get('device_name')}, torch {m.get('torch')}, {str(m.get('timestamp', ''))[:10]}", fontsize=9)
    fig.tight_layout()
    return fig


def _sweep_figure(result, lay):
    import matplotlib.pyplot as plt
    panels, mode = lay["panels"], lay["mode"]
    cols = max(1, min(4, len(panels)))
    nrows = max(1, (len(panels) + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    colors = {p: f"C{i}" for i, p in enumerate(lay["providers"])}
    for ax, (op, panel) in zip(axes.flat, panels.items()):
        for prov, pts in panel["lines"].items():
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                        yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], marker="o", ms=4, capsize=2,
                        color=colors[prov], label=provider_label(prov), linestyle="--" if prov == FALLBACK else "-")
            noisy = [p for p in pts if p[4]]
            if noisy:
                ax.plot([p[0] for p in noisy], [p[1] for p in noisy], "x", color=colors[prov], ms=9)
        for prov, pts in panel["points"].items():  # list cases: markers of their own, never on a line
            ax.plot([p[1] for p in pts], [p[2] for p in pts], "*", color=colors[prov], ms=9, linestyle="none",
                    label=None if prov in panel["lines"] else provider_label(prov))
            for size, numel, us in pts:
                ax.annotate(size, (numel, us), xytext=(4, 0), textcoords="offset points", fontsize=5)
        if panel["copy_bound"]:
            ax.plot(*zip(*panel["copy_bound"]), color="grey", lw=2, alpha=0.6, ls=":",
                    label="copy-bound (min bytes / copy GB/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("elements (all inputs)", fontsize=8)
        ax.set_ylabel(f"{mode} time (µs)", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    m = result["meta"]
    fig.suptitle(f"fastgan bench ({mode}; median of interleaved rounds, bars: IQR; x: noisy; *: list case, "
                 f"not on the size sweep)\n{m.get('device_name')}, torch {m.get('torch')}",
                 fontsize=10 if cols > 2 else 8)
    fig.tight_layout()
    return fig


def min_bytes_of_row(r: dict) -> int:
    case = next((c for c in cases(False) + cases(True) if c.op == r["op"] and c.label == r["size"]), None)
    return min_bytes(case, r["mode"]) if case else 0


# --------------------------------------------------------------------------- comparing runs

MIN_CHANGE = 0.10  # a change under 10 % is never reported as one, whatever the noise (asv's default factor)


def _key(r):
    return (r["op"], r["size"], r["mode"], r["provider"])


def _range(r, prefix="", scale=1.0):
    """The row's noise band: min–max of its round values (old files: the quartiles)."""
    if prefix:
        return r.get(f"{prefix}_lo"), r.get(f"{prefix}_hi")
    lo = r.get("min_us", r.get("lo_us"))
    hi = r.get("max_us", r.get("hi_us"))
    return lo, hi


def verdict(old: float, new: float, old_band, new_band, higher_is_better: bool = False,
            min_change: float = MIN_CHANGE) -> str:
    """"slower" / "faster" when the change is beyond both runs' noise (their bands do not
    overlap) and at least ``min_change``; "" otherwise."""
    if None in (old, new) or None in (*old_band, *new_band) or not old:
        return ""
    change = new / old - 1
    if abs(change) < min_change:
        return ""
    apart = new_band[0] > old_band[1] or new_band[1] < old_band[0]
    if not apart:
        return ""
    worse = change < 0 if higher_is_better else change > 0
    return "slower" if worse else "faster"


def compare(old: dict, new: dict, by: str = "time") -> List[dict]:
    """Per row of both runs: the time change and the speed-up (vs eager) change, each with
    its verdict; ``regression`` is the change the failing threshold applies to (``by``)."""
    olds = {_key(r): r for r in old["rows"] if "median_us" in r}
    out = []
    for r in new["rows"]:
        if "median_us" not in r or _key(r) not in olds:
            continue
        o = olds[_key(r)]
        d = {"op": r["op"], "size": r["size"], "mode": r["mode"], "provider": r["provider"],
             "old_us": o["median_us"], "new_us": r["median_us"], "change": r["median_us"] / o["median_us"] - 1,
             "verdict": verdict(o["median_us"], r["median_us"], _range(o), _range(r)),
             "noisy": bool(o.get("noisy") or r.get("noisy"))}
        if r["provider"] != "eager" and "speedup_vs_eager" in r and "speedup_vs_eager" in o:
            d["old_speedup"], d["new_speedup"] = o["speedup_vs_eager"], r["speedup_vs_eager"]
            d["speedup_change"] = r["speedup_vs_eager"] / o["speedup_vs_eager"] - 1
            d["speedup_verdict"] = verdict(o["speedup_vs_eager"], r["speedup_vs_eager"],
                                           _range(o, "speedup_vs_eager"), _range(r, "speedup_vs_eager"),
                                           higher_is_better=True)
        if by == "speedup":
            d["regression"] = -d.get("speedup_change", 0.0) if d.get("speedup_verdict") == "slower" else 0.0
        else:
            d["regression"] = d["change"] if d["verdict"] == "slower" else 0.0
        out.append(d)
    return out


def format_compare(diffs: List[dict], old: dict, new: dict) -> str:
    wo = max([4] + [len(d["op"]) for d in diffs])
    ws = max([6] + [len(d["size"]) for d in diffs])
    w = max([15] + [len(provider_label(d["provider"])) for d in diffs])
    head = (f"{'op':<{wo}} {'size':<{ws}} {'mode':<8} {'provider':<{w}} {'old µs':>10} {'new µs':>10} "
            f"{'change':>8} {'':<7} {'vs eager old→new':>17} {'change':>8} {'':<7} note")
    lines = [head, "-" * len(head)]
    for d in diffs:
        sp = spc = ""
        if "old_speedup" in d:
            sp = f"{d['old_speedup']:.2f}x→{d['new_speedup']:.2f}x"
            spc = f"{100 * d['speedup_change']:+.1f}%"
        lines.append(f"{d['op']:<{wo}} {d['size']:<{ws}} {d['mode']:<8} {provider_label(d['provider']):<{w}} "
                     f"{d['old_us']:>10.1f} {d['new_us']:>10.1f} {100 * d['change']:>+7.1f}% {d['verdict']:<7} "
                     f"{sp:>17} "
                     f"{spc:>8} "
                     f"{d.get('speedup_verdict', ''):<7} {'noisy' if d['noisy'] else ''}")
    om, nm = old["meta"], new["meta"]
    lines.append(f"\nold: {om.get('timestamp')} {om.get('git_commit', '')[:10] if om.get('git_commit') else ''} "
                 f"{om.get('device_name')}\nnew: {nm.get('timestamp')} "
                 f"{nm.get('git_commit', '')[:10] if nm.get('git_commit') else ''} {nm.get('device_name')}")
    slower = sum(d["verdict"] == "slower" for d in diffs)
    faster = sum(d["verdict"] == "faster" for d in diffs)
    lines.append(f"{len(diffs)} rows compared: {slower} slower, {faster} faster beyond both runs' noise "
                 f"(min–max of the round values apart, and a change of {100 * MIN_CHANGE:.0f}% or more); "
                 f"the rest within noise.  The speed-up columns cancel drift of the machine between the runs.")
    return "\n".join(lines)


def _settings(meta: dict) -> dict:
    return {"device": meta.get("device", "cpu"), "quick": meta.get("quick", False), "ops": meta.get("ops"),
            "modes": tuple(meta.get("modes") or MODES), "min_run_time": meta.get("min_run_time_s"),
            "provider_filter": meta.get("providers"), "rounds": meta.get("rounds", ROUNDS)}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


ROW_TEXT = ("op", "size", "mode", "provider")
ROW_NUMBERS = ("median_us", "lo_us", "hi_us", "min_us", "max_us", "speedup_vs_eager", "speedup_vs_eager_lo",
               "speedup_vs_eager_hi")


def result_problem(data) -> Optional[str]:
    """Why ``data`` (a parsed JSON file) is not a bench run that ``--compare`` can read, or None:
    an object with ``meta`` (an object; the settings a re-run takes from it of their types) and
    ``rows`` (a list of objects: op, size, mode, provider as text; a time, or an error)."""
    if isinstance(data, dict) and "diffs" in data:
        return "it is a comparison (written by --compare ... --json), not a run"
    if not isinstance(data, dict):
        return f"the top level is {type(data).__name__ if data is not None else 'null'}, not an object"
    for key, kind in (("meta", dict), ("rows", list)):
        if not isinstance(data.get(key), kind):
            return f"{key!r} is {'missing' if key not in data else type(data[key]).__name__}, not " \
                   f"{'an object' if kind is dict else 'a list'}"
    for i, r in enumerate(data["rows"]):
        if not isinstance(r, dict):
            return f"rows[{i}] is {type(r).__name__}, not an object"
        for key in ROW_TEXT:
            if not isinstance(r.get(key), str):
                return f"rows[{i}][{key!r}] is {'missing' if key not in r else type(r[key]).__name__}, not text"
        if "error" in r:
            continue
        if not (_number(r.get("median_us")) and r["median_us"] > 0):
            return f"rows[{i}]['median_us'] is {r.get('median_us', 'missing')!r}, not a positive number"
        for key in ROW_NUMBERS:
            if key in r and not _number(r[key]):
                return f"rows[{i}][{key!r}] is {r[key]!r}, not a finite number"
    m = data["meta"]
    checks = (("device", lambda v: v in ("cpu", "cuda"), "'cpu' or 'cuda'"),
              ("quick", lambda v: isinstance(v, bool), "true or false"),
              ("ops", lambda v: v is None or (isinstance(v, list) and set(v) <= set(CASES)), "null or a list of ops"),
              ("modes", lambda v: v is None or (isinstance(v, list) and set(v) <= set(MODES)),
               f"null or a list of {', '.join(MODES)}"),
              ("providers", lambda v: v is None or (isinstance(v, list) and set(v) <= set(PROVIDERS)),
               "null or a list of providers"),
              ("min_run_time_s", lambda v: v is None or (_number(v) and v > 0), "a positive number"),
              ("rounds", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
              ("timestamp", lambda v: v is None or isinstance(v, str), "text"),
              ("git_commit", lambda v: v is None or isinstance(v, str), "text"),
              ("device_name", lambda v: v is None or isinstance(v, str), "text"))
    for key, ok, what in checks:
        if key in m and not ok(m[key]):
            return f"meta[{key!r}] is {m[key]!r}, not {what}"
    return None


BENCH_JSON = "a fastgan bench JSON file"
COMPARE_KEYS = ["op", "size", "mode", "provider", "old_us", "new_us", "change", "verdict", "old_speedup",
                "new_speedup", "speedup_change", "speedup_verdict", "noisy", "regression"]


def comparison(diffs: List[dict], old, new, new_result: dict, by: str, threshold: Optional[float]) -> dict:
    """What ``--compare ... --json`` writes: both runs' files and meta, the settings of the
    comparison and its rows (``diffs``); after a fresh run (one file given), that run too."""
    out = {"kind": "fastgan bench --compare", "old": {"path": old.path, "meta": old.data["meta"]},
           "new": {"path": new.path if new else None, "meta": new_result["meta"]}, "by": by,
           "min_change": MIN_CHANGE, "fail_on_regression_pct": threshold,
           "slower": sum(d["verdict"] == "slower" for d in diffs),
           "faster": sum(d["verdict"] == "faster" for d in diffs), "diffs": diffs}
    if new is None:
        out["new_run"] = new_result
    return out


def write_compare_csv(diffs: List[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COMPARE_KEYS)
        for d in diffs:
            w.writerow([d.get(k, "") for k in COMPARE_KEYS])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fastgan bench", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="one small size per op, short timings (about a minute on CPU)")
    p.add_argument("--op", action="append", choices=list(CASES), help="only this op (repeatable)")
    p.add_argument("--mode", action="append", choices=list(MODES), help="only this mode (repeatable)")
    p.add_argument("--provider", action="append", choices=list(PROVIDERS),
                   help="only this provider (repeatable); fastgan-torch is the reference fallback")
    p.add_argument("--min-run-time", type=positive_float,
                   help="seconds of timing per provider and mode, shared by the rounds (default 0.1 quick, 0.3)")
    p.add_argument("--rounds", type=positive_int, default=ROUNDS,
                   help=f"interleaved rounds per case (default {ROUNDS})")
    p.add_argument("--json", type=OutputFile(), help="write the results as JSON here (with --compare: the comparison)")
    p.add_argument("--csv", type=OutputFile(), help="write the results as CSV here (with --compare: the comparison)")
    p.add_argument("--plot", type=OutputFile("matplotlib"),
                   help="write a PNG here: speed-up bars (one size per op) or time vs size per op (not with --compare)")
    p.add_argument("--compare", nargs="+", metavar="JSON", type=InputJson(result_problem, BENCH_JSON),
                   help="OLD.json [NEW.json]: per row, the change and whether it is beyond both runs' noise; "
                        "with one file, against a fresh run with OLD's settings")
    p.add_argument("--fail-on-regression", type=nonnegative_float, metavar="PCT",
                   help="with --compare: exit 1 if a row is slower by more than PCT %% beyond noise")
    p.add_argument("--compare-by", choices=["time", "speedup"], default="time",
                   help="what --fail-on-regression looks at: the time, or the speed-up vs eager (which cancels "
                        "drift of a shared machine between the runs)")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads on CPU (default: torch's number, or 1 where that many stall on a busy machine)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.compare and len(a.compare) > 2:
        p.error("argument --compare: at most two files (OLD.json [NEW.json])")
    if a.fail_on_regression is not None and not a.compare:
        p.error("argument --fail-on-regression: only with --compare")
    if a.plot and a.compare:
        p.error("argument --plot: not with --compare (the picture is of one run: fastgan bench ... --plot P.png)")
    old, new = (a.compare + [None])[:2] if a.compare else (None, None)
    if new is None and a.device == "cuda" and not torch.cuda.is_available():
        print("fastgan bench: --device cuda asked for, but there is no CUDA device", file=sys.stderr)
        return 2
    if new is not None:
        result = new.data
    else:
        if old is not None:
            s = _settings(old.data["meta"])
            if s["device"] == "cuda" and not torch.cuda.is_available():
                print("fastgan bench: the old run is on CUDA, and there is no CUDA device", file=sys.stderr)
                return 2
            result = run(s["device"], s["quick"], s["ops"], s["modes"], s["min_run_time"], not a.no_progress,
                         s["provider_filter"], s["rounds"], threads=a.threads)
        else:
            result = run(a.device, a.quick, a.op, tuple(a.mode or MODES), a.min_run_time, not a.no_progress,
                         a.provider, a.rounds, threads=a.threads)
        print(format_table(result))
    errors = [r for r in result["rows"] if "error" in r]
    if old is None:
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        if a.csv:
            write_csv(result, a.csv)
        if a.plot:
            plot(result, a.plot)
        return 1 if errors else 0
    diffs = compare(old.data, result, a.compare_by)
    print(("\n" if new is None else "") + format_compare(diffs, old.data, result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(comparison(diffs, old, new, result, a.compare_by, a.fail_on_regression), f, indent=1)
    if a.csv:
        write_compare_csv(diffs, a.csv)
    if a.fail_on_regression is not None:
        bad = [d for d in diffs if 100 * d["regression"] > a.fail_on_regression]
        if bad:
            print(f"{len(bad)} rows regressed by more than {a.fail_on_regression:g}% beyond noise "
                  f"(by {a.compare_by}): " + ", ".join(f"{d['op']}[{d['size']}] {d['mode']} {d['provider']}"
                                                      for d in bad[:10]))
            return 1
    return 1 if errors else 0
