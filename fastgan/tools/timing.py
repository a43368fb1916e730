"""How ``fastgan bench`` times: one method on every device, for every provider and mode of a
case and for the copy reference.

1. steady state first: call each callable in blocks (~1 ms each) until the fastest of the last
   WARMUP_WINDOW blocks is within WARMUP_TOL of the fastest of the window before (the best case
   stopped improving), at most a cap of seconds; torch.compile's first calls (the compile, then
   calls that still take milliseconds) fall in here.  The warm-up's length goes into the JSON.
2. interleaved rounds: each round times every callable once (a short slot: a few blocks of
   calls, the fastest of them, as interference only adds time), in an order rotated each round,
   so drift on a shared machine hits every provider alike.  A row's figure is the median of its
   round values; its spread the interquartile range (IQR) of them.  A ratio (vs eager, vs
   compile) is taken per round, then its median and IQR.
3. noise is reported: a case with a row whose IQR exceeds NOISY of its median (time or ratio)
   is measured again once, the rounds pooled; a row still over it is marked noisy
   (``bench_run.measure_case``).

On CUDA a round's slot is ``triton.testing.do_bench`` (CUDA events, L2 flushed, its median);
the warm-up blocks are timed with CUDA events.  Also here: the copy bandwidth, the check for
parallel regions that stall on a busy machine, and the test hook that slows a provider down.
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

NOISY = 0.15            # IQR / median above which a row is noisy
ROUNDS = 7              # interleaved rounds per case
BLOCKS_PER_SLOT = 8     # blocks per callable per round on CPU (the fastest is the round value)
WARMUP_BLOCK_S = 1e-3   # warm-up block length
WARMUP_WINDOW = 4       # steady: the fastest of the last 4 warm-up blocks ...
WARMUP_TOL = 0.10       # ... within 10 % of the fastest of the 4 before
WARMUP_MIN_S = 0.02
SLOWDOWN_ENV = "FASTGAN_BENCH_SLOWDOWN"  # test hook: "provider:factor[,provider:factor]"


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def block(fn: Callable[[], object], number: int, device: str) -> float:
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
        per = block(fn, number, device)
        calls += number
        blocks.append(per)
        number = max(1, min(4 * number, int(block_s / max(per, 1e-9))))
        elapsed = time.perf_counter() - t_start
        last, before = blocks[-window:], blocks[-2 * window:-window]
        steady = len(before) == window and min(last) >= (1 - tol) * min(before)
        if (steady and elapsed >= min_s) or elapsed >= max_s:
            return {"warmup_s": elapsed, "warmup_calls": calls, "steady": steady,
                    "per_call_s": statistics.median(last)}


def slot(fn: Callable[[], object], device: str, slot_s: float, per_call_s: float) -> float:
    """One round's value for one callable, seconds per call, from about ``slot_s`` of calls:
    on CPU the fastest of a few blocks of back-to-back calls (interference from other
    processes only ever adds time); on CUDA ``do_bench``'s median (events, L2 flushed)."""
    if device == "cuda":
        import triton.testing
        return triton.testing.do_bench(fn, warmup=1, rep=max(1.0, slot_s * 1e3), return_mode="median") * 1e-3
    blocks = max(1, min(BLOCKS_PER_SLOT, int(slot_s / max(per_call_s, 1e-9))))
    number = max(1, int(slot_s / blocks / max(per_call_s, 1e-9)))
    return min(block(fn, number, device) for _ in range(blocks))


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
            out[k].append(slot(fns[k], device, slot_s, per_call_s[k]))
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
                times[n] += [block(fn, 1, device) for _ in range(12)]
    finally:
        torch.set_num_threads(old)
    one = statistics.median(times[1])
    slow = sorted(times[threads])[int(0.9 * len(times[threads]))]
    if slow <= 5 * one:
        return None
    return (f"a multiply over {numel} floats took over {slow * 1e6:.0f} µs in a tenth of the calls with {threads} "
            f"threads, {one * 1e6:.0f} µs with 1: parallel regions wait for cores that other processes hold")


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
