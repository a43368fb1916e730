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

This module is the command (its parser and ``main``); the rest lives by concern:
``bench_cases`` (the cases, ``cases()``, and each provider's callable, ``provider_fn``;
``benchmarks/`` runs the same cases under pytest-benchmark), ``timing`` (warm-up, interleaved
rounds, the copy bandwidth), ``bench_run`` (a run: rows and metadata), ``bench_report`` (table,
CSV), ``bench_plot`` (the picture) and ``bench_compare`` (two runs).  The names scripts use
(``cases``, ``run``, ``device_name``, ``time_fn``, ...) are importable from here too.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import torch

from .args import InputJson, OutputFile, nonnegative_float, positive_float, positive_int
from .bench_cases import (FALLBACK, LOSS_SIZES, MODES, PENALTY_SHAPES, PROVIDERS, Case, cases, min_bytes,
                          provider_fn, provider_label, providers)
from .bench_compare import BENCH_JSON, compare, comparison, format_compare, result_problem, settings, verdict, \
    write_compare_csv
from .bench_plot import figure, layout, plot
from .bench_report import format_table, write_csv
from .bench_run import device_name, git_commit, measure_case, metadata, run
from .cases import CASES
from .timing import ROUNDS, copy_bandwidth, parse_slowdown, slowed, summarize, time_fn, warm_up

# what scripts and tests use from here (the command's module); each lives in the module named
__all__ = ["FALLBACK", "LOSS_SIZES", "MODES", "PENALTY_SHAPES", "PROVIDERS", "ROUNDS", "Case", "build_parser",
           "cases", "compare", "copy_bandwidth", "device_name", "figure", "format_compare", "format_table",
           "git_commit", "layout", "main", "measure_case", "metadata", "min_bytes", "parse_slowdown", "plot",
           "provider_fn", "provider_label", "providers", "run", "slowed", "summarize", "time_fn", "verdict",
           "warm_up", "write_csv"]

RUN_OPTIONS = ("--device", "--quick", "--op", "--mode", "--provider", "--min-run-time", "--rounds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastgan bench", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda where there is one, else cpu")
    p.add_argument("--quick", action="store_true", help="one small size per op, short timings (about a minute on CPU)")
    p.add_argument("--op", action="append", choices=list(CASES), help="only this op (repeatable)")
    p.add_argument("--mode", action="append", choices=list(MODES), help="only this mode (repeatable)")
    p.add_argument("--provider", action="append", choices=list(PROVIDERS),
                   help="only this provider (repeatable); fastgan-torch is the reference fallback")
    p.add_argument("--min-run-time", type=positive_float,
                   help="seconds of timing per provider and mode, shared by the rounds (default 0.1 quick, 0.3)")
    p.add_argument("--rounds", type=positive_int,
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
    p.add_argument("--compare-by", choices=["time", "speedup"],
                   help="with --compare: what --fail-on-regression looks at (default time): the time, or the speed-up vs eager (which cancels "
                        "drift of a shared machine between the runs)")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads on CPU (default: torch's number, or 1 where that many stall on a busy machine)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.compare and len(a.compare) > 2:
        p.error("argument --compare: at most two files (OLD.json [NEW.json])")
    for opt in ("--fail-on-regression", "--compare-by"):
        if getattr(a, opt[2:].replace("-", "_")) is not None and not a.compare:
            p.error(f"argument {opt}: only with --compare")
    a.compare_by = a.compare_by or "time"
    if a.plot and a.compare:
        p.error("argument --plot: not with --compare (the picture is of one run: fastgan bench ... --plot P.png)")
    old, new = (a.compare + [None])[:2] if a.compare else (None, None)
    # what a run takes: with --compare, OLD's settings (one file) or no run at all (two)
    for opt in RUN_OPTIONS + (("--threads",) if new is not None else ()):
        if old is not None and getattr(a, opt[2:].replace("-", "_")) not in (None, False):
            p.error(f"argument {opt}: not with --compare " + ("OLD NEW (nothing is run)" if new is not None else
                                                             "OLD (the fresh run takes OLD's settings)"))
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if new is None and a.device == "cuda" and not torch.cuda.is_available():
        print("fastgan bench: --device cuda asked for, but there is no CUDA device", file=sys.stderr)
        return 2
    if new is not None:
        result = new.data
    else:
        if old is not None:
            s = settings(old.data["meta"])
            if s["device"] == "cuda" and not torch.cuda.is_available():
                print("fastgan bench: the old run is on CUDA, and there is no CUDA device", file=sys.stderr)
                return 2
            result = run(s["device"], s["quick"], s["ops"], s["modes"], s["min_run_time"], not a.no_progress,
                         s["provider_filter"], s["rounds"], threads=a.threads)
        else:
            result = run(a.device, a.quick, a.op, tuple(a.mode or MODES), a.min_run_time, not a.no_progress,
                         a.provider, a.rounds or ROUNDS, threads=a.threads)
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
