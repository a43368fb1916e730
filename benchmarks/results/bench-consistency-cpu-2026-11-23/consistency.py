"""Side by side: the speed-up ratios of repeated ``fastgan bench --quick`` runs.

    python consistency.py FOLDER > FOLDER/README.md

FOLDER holds idle-1.json ... (consecutive runs) and busy-1.json ... (the same runs while
another process keeps one core busy).  Checks: every ratio of a row not marked noisy is
within ±15 % of the median of the idle runs' ratios (over the idle runs where it is not
noisy), and every busy-run ratio not marked noisy is within 2x of that median.
"""
from __future__ import annotations

import glob
import json
import os
import statistics
import sys

TOL, BUSY_FACTOR = 0.15, 2.0


def load(folder, kind):
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, f"{kind}-*.json"))):
        with open(path) as f:
            runs.append((os.path.basename(path), json.load(f)))
    return runs


def ratios(run, ref):
    out = {}
    for r in run["rows"]:
        if "median_us" in r and r["provider"] != ref and f"speedup_vs_{ref}" in r:
            out[(r["op"], r["size"], r["mode"], r["provider"])] = (r[f"speedup_vs_{ref}"], bool(r.get("noisy")))
    return out


def fmt(v):
    return "" if v is None else (f"{v[0]:.2f}" + (" (noisy)" if v[1] else ""))


def main(folder):
    idle, busy = load(folder, "idle"), load(folder, "busy")
    lines = ["# `fastgan bench --quick`, run after run: are the speed-ups reproducible?", ""]
    m = idle[0][1]["meta"]
    lines += [f"Machine: {m['device_name']}, a VM **shared with three other agents working in the same checkout "
              f"during these runs** (their test runs and builds load the 2 cores: load averages of 3-6 were "
              f"usual), torch {m['torch']}, python {m['python']}, git {str(m.get('git_commit'))[:10]} plus the "
              f"working tree of the bench change.",
              f"Command (the README's main job): `fastgan bench --quick --json idle-N.json --plot idle-N.png` "
              f"(run.sh runs all six), {len(idle)} consecutive runs; then {len(busy)} more while "
              f"`python -c \"while True: pass\"` kept one core busy (killed afterwards).",
              f"Method: a steady-state warm-up per provider and mode, then {m.get('rounds')} interleaved rounds "
              f"(a round's value: the fastest of a few blocks of calls); a row: the median of the round values, "
              f"a ratio: taken per round, then its median; min-run-time {m.get('min_run_time_s')} s "
              f"per provider and mode; noisy: IQR of the round values over {100 * m.get('noisy_threshold', 0.15):.0f}% "
              f"of the median after one re-measure.  The threads column: the run's choice (1 thread when other "
              f"processes hold the cores; see `fastgan bench`'s `parallel_stall`).  copy GB/s: the run's lone copy "
              f"measurement (metadata only: no quick row uses it), which other processes' memory traffic moves "
              f"by 10x between runs.", ""]
    lines += ["| run | wall s | threads | rows | noisy rows | copy GB/s |", "|---|---|---|---|---|---|"]
    for name, run in idle + busy:
        mm = run["meta"]
        rows = [r for r in run["rows"] if "median_us" in r]
        wall = ""
        tpath = os.path.join(folder, name.replace(".json", ".time"))
        if os.path.exists(tpath):
            wall = open(tpath).read().split()[0]
        note = mm.get("threads_note", "")
        lines.append(f"| {name[:-5]} | {wall} | {mm['threads']}{' (' + note.split(':', 1)[1].strip() + ')' if note else ''}"
                     f" | {len(rows)} | {sum(bool(r.get('noisy')) for r in rows)} | {mm['copy_gb_per_s']} |")
    lines.append("")
    summary = []
    for ref in ("eager", "compile"):
        ir = [ratios(run, ref) for _, run in idle]
        br = [ratios(run, ref) for _, run in busy]
        keys = [k for k in ir[0] if all(k in x for x in ir)]
        table = [f"### Speed-up vs {ref} (fwd, bwd, fwd+bwd; >1: faster than {ref})", "",
                 "| op | size | mode | provider | " + " | ".join(n[:-5] for n, _ in idle) + " | idle: max dev | "
                 + " | ".join(n[:-5] for n, _ in busy) + " | busy / idle median |",
                 "|" + "---|" * (6 + len(idle) + len(busy))]
        n_checked = n_bad = n_busy_bad = 0
        worst, worst_busy = (0.0, None), (1.0, None)
        for k in keys:
            clean = [x[k][0] for x in ir if not x[k][1]]
            med = statistics.median(clean) if clean else None
            dev = max(abs(v / med - 1) for v in clean) if clean else None
            if dev is not None:
                n_checked += 1
                n_bad += dev > TOL
                if dev > worst[0]:
                    worst = (dev, k)
            bvals = [x.get(k) for x in br]
            bfac = [v[0] / med for v in bvals if v is not None and not v[1] and med]
            far = max(bfac, key=lambda f: max(f, 1 / f)) if bfac else None
            if far is not None:
                n_busy_bad += max(far, 1 / far) > BUSY_FACTOR
                if max(far, 1 / far) > max(worst_busy[0], 1 / worst_busy[0]):
                    worst_busy = (far, k)
            table.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | " + " | ".join(fmt(x[k]) for x in ir)
                         + f" | {'' if dev is None else f'{100 * dev:.0f}%'}"
                         + ("" if dev is None or dev <= TOL else " **over**") + " | "
                         + " | ".join(fmt(v) for v in bvals)
                         + f" | {'' if far is None else f'{far:.2f}'} |")
        summary.append(f"- vs {ref}: {n_checked} ratios not noisy in at least one idle run; "
                       f"{n_bad} spread more than ±{100 * TOL:.0f}% around their median across the idle runs "
                       f"(largest: {100 * worst[0]:.0f}%, {' '.join(worst[1]) if worst[1] else '-'}); "
                       f"with a busy core, {n_busy_bad} not-noisy ratios off by more than {BUSY_FACTOR:g}x from "
                       f"the idle median (farthest: {worst_busy[0]:.2f}x, "
                       f"{' '.join(worst_busy[1]) if worst_busy[1] else '-'})")
        lines += table + [""]
    out = lines[:]
    pos = out.index("### Speed-up vs eager (fwd, bwd, fwd+bwd; >1: faster than eager)")
    out[pos:pos] = ["## Summary", ""] + summary + ["", "max dev: the largest |ratio / median − 1| over the idle "
                                                     "runs where the row is not noisy; busy / idle median: the "
                                                     "busy run (not noisy) farthest from the idle median.", ""]
    forced = load(folder, "threads2")
    if forced:
        name, run = forced[0]
        rows = [r for r in run["rows"] if "median_us" in r]
        out += ["## With 2 threads forced (`--threads 2`) under the same load", "",
                f"{name}: `fastgan bench --quick --threads 2`, right after the busy runs (the busy process killed, "
                f"the other agents still working, and this session running its unit tests alongside), {open(os.path.join(folder, name.replace('.json', '.time'))).read().split()[0]} s "
                f"wall: parallel regions wait for cores other processes hold.  "
                f"{sum(bool(r.get('noisy')) for r in rows)} of {len(rows)} rows noisy.", ""]
        for ref in ("eager", "compile"):
            ir = [ratios(r, ref) for _, r in idle]
            rt = ratios(run, ref)
            far = []
            for k, (v, noisy) in rt.items():
                med = statistics.median(x[k][0] for x in ir if k in x)
                f = max(max(v, 1e-3) / med, med / max(v, 1e-3))
                far.append((f, noisy, k, v, med))
            over = [x for x in far if x[0] > BUSY_FACTOR]
            unmarked = [x for x in over if not x[1]]
            out.append(f"- vs {ref}: {len(over)} ratios off by more than {BUSY_FACTOR:g}x from the 1-thread idle "
                       f"median, {len(over) - len(unmarked)} of them marked noisy; unmarked: "
                       + ("; ".join(f"{' '.join(x[2])} {x[3]} vs {x[4]}" for x in unmarked) or "none"))
        out.append("")
    before = load(folder, "before")
    if len(before) >= 2:
        out += ["## Before: the same job with the old timing (for comparison)", "",
                f"{', '.join(n for n, _ in before)}: `fastgan bench --quick` at the commit before this change "
                "(`torch.utils.benchmark` blocked_autorange, min_run_time 0.05 s, two warm-up calls, providers "
                "one after another, torch's 2 threads), same machine and day; the first ended 18:02 (load average 0.24 as it "
                "started, 10 ops then), the second 18:18 under the other agents' load (load average about 5, "
                "17 ops).  The new runs above ended between 18:28 and 18:36.", ""]
        for ref in ("eager", "compile"):
            ra, rb = ratios(before[0][1], ref), ratios(before[1][1], ref)
            keys = [k for k in ra if k in rb and ra[k][0] and rb[k][0]]
            f = {k: max(ra[k][0] / rb[k][0], rb[k][0] / ra[k][0]) for k in keys}
            worst = max(keys, key=f.get)
            out.append(f"- vs {ref}: {len(keys)} ratios in both runs; {sum(v > 1 + TOL for v in f.values())} differ "
                       f"by more than {100 * TOL:.0f}%, {sum(v > 2 for v in f.values())} by more than 2x; the "
                       f"farthest {f[worst]:.0f}x ({' '.join(worst)}: {ra[worst][0]} vs {rb[worst][0]}); none "
                       f"marked (the old table had no noise flag)")
        out.append(f"- copy bandwidth: {before[0][1]['meta']['copy_gb_per_s']} vs "
                   f"{before[1][1]['meta']['copy_gb_per_s']} GB/s")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
