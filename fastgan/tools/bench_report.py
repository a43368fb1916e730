"""``fastgan bench``'s table and CSV of a run."""
from __future__ import annotations

import csv

from .bench_cases import PROVIDERS, provider_label
from .timing import NOISY, SLOWDOWN_ENV

def _times_text(v):
    return "" if v is None else f"{v:.2f}x"


def _plus_minus(spread):
    """A spread (IQR / median) shown as ± half of it, in percent."""
    if spread is None:
        return ""
    return "±>999%" if 50 * spread > 999 else f"±{50 * spread:.0f}%"


def _ratio_text(r, ref):
    v = r.get(f"speedup_vs_{ref}")
    if v is None:
        return ""
    if r["provider"] == ref:
        return _times_text(v)
    return f"{_times_text(v)} {_plus_minus(r.get(f'speedup_vs_{ref}_spread'))}"


def _percent(v):
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
                     f"{r['median_us']:>11.1f} {_plus_minus(r.get('spread')):>7} "
                     f"{_ratio_text(r, 'eager'):>12} {_ratio_text(r, 'compile'):>12} "
                     f"{r.get('gb_per_s', ''):>8} {_percent(r.get('frac_of_copy')):>8}  "
                     f"{'noisy' if r.get('noisy') else ''}"
                     f"{'  model ' + _percent(r['frac_of_model']) if 'frac_of_model' in r else ''}")
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"ERROR {r['op']} {r['size']} {r['provider']}: {r['error']}")
    m = result["meta"]
    copy_note = ""
    if "copy_spread" in m:
        copy_note = f" {_plus_minus(m['copy_spread'])}"
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
