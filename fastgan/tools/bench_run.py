"""A ``fastgan bench`` run: every provider x mode of every case, warmed up, timed in interleaved
rounds (``timing``), turned into rows with their spreads, ratios and bandwidth, and the run's
metadata (device, versions, commit, settings)."""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from . import bandwidth
from .bench_cases import BANDWIDTH_MIN_NUMEL, MODES, Case, cases, leaves, min_bytes, provider_fn, providers
from .timing import NOISY, ROUNDS, SLOWDOWN_ENV, copy_stats, interleaved, parallel_stall, parse_slowdown, \
    slowed, summarize, sync, warm_up

def _callables(fn, xs, mode):
    diff = leaves(xs)
    if mode == "fwd":
        return lambda: fn(*xs)
    if mode == "fwd+bwd":
        return lambda: torch.autograd.grad(fn(*xs), diff)
    out = fn(*xs)
    return lambda: torch.autograd.grad(out, diff, retain_graph=True)


def _peak_memory(fn, xs, device) -> Optional[int]:
    if device != "cuda":
        return None
    diff = leaves(xs)
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


def rows_of(case: Case, per: Dict[tuple, List[float]], warm: Dict[tuple, dict], peak: Dict[str, Optional[int]],
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
    diff = leaves(xs)
    fns: Dict[tuple, Callable[[], object]] = {}
    warm: Dict[tuple, dict] = {}
    peak: Dict[str, Optional[int]] = {}
    errors = []
    for prov in active:
        step(f"{case.id} {prov}")
        try:
            fn = provider_fn(prov, case)
            torch.autograd.grad(fn(*xs), diff)  # the first call (and the compile) outside everything
            sync(device)
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
    rows = rows_of(case, per, warm, peak, False, noisy_at)
    if any(r["noisy"] for r in rows):  # once more, the rounds pooled
        again = interleaved(fns, device, rounds, slot_s, per_call)
        per = {k: per[k] + again[k] for k in per}
        rows = rows_of(case, per, warm, peak, True, noisy_at)
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
    add_model_fraction(rows, meta)
    return {"meta": meta, "rows": rows, "skipped": {p: why for p, why in provs.items() if why is not None}}


def add_model_fraction(rows: List[dict], meta: dict) -> None:
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
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "quick": quick, "min_run_time_s": min_run_time,
            "timer": ("triton.testing.do_bench per round" if device == "cuda"
                      else "time.perf_counter blocks per round")}
