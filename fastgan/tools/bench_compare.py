"""``fastgan bench --compare``: two runs row by row, the change of the time and of the
speed-up vs eager, and whether each is beyond both runs' noise; what a run file must hold to be
compared (``result_problem``); the comparison as JSON and CSV."""
from __future__ import annotations

import csv
import math
from typing import List, Optional

from .bench_cases import MODES, PROVIDERS, provider_label
from .cases import CASES
from .timing import ROUNDS

MIN_CHANGE = 0.10  # a change under 10 % is never reported as one, whatever the noise (asv's default factor)


def _row_key(r):
    return (r["op"], r["size"], r["mode"], r["provider"])


def _noise_band(r, prefix="", scale=1.0):
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
    olds = {_row_key(r): r for r in old["rows"] if "median_us" in r}
    out = []
    for r in new["rows"]:
        if "median_us" not in r or _row_key(r) not in olds:
            continue
        o = olds[_row_key(r)]
        d = {"op": r["op"], "size": r["size"], "mode": r["mode"], "provider": r["provider"],
             "old_us": o["median_us"], "new_us": r["median_us"], "change": r["median_us"] / o["median_us"] - 1,
             "verdict": verdict(o["median_us"], r["median_us"], _noise_band(o), _noise_band(r)),
             "noisy": bool(o.get("noisy") or r.get("noisy"))}
        if r["provider"] != "eager" and "speedup_vs_eager" in r and "speedup_vs_eager" in o:
            d["old_speedup"], d["new_speedup"] = o["speedup_vs_eager"], r["speedup_vs_eager"]
            d["speedup_change"] = r["speedup_vs_eager"] / o["speedup_vs_eager"] - 1
            d["speedup_verdict"] = verdict(o["speedup_vs_eager"], r["speedup_vs_eager"],
                                           _noise_band(o, "speedup_vs_eager"), _noise_band(r, "speedup_vs_eager"),
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


def settings(meta: dict) -> dict:
    return {"device": meta.get("device", "cpu"), "quick": meta.get("quick", False), "ops": meta.get("ops"),
            "modes": tuple(meta.get("modes") or MODES), "min_run_time": meta.get("min_run_time_s"),
            "provider_filter": meta.get("providers"), "rounds": meta.get("rounds", ROUNDS)}


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _names_or_null(v, known) -> bool:
    return v is None or (isinstance(v, list) and all(isinstance(n, str) and n in known for n in v))


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
        if not (_finite_number(r.get("median_us")) and r["median_us"] > 0):
            return f"rows[{i}]['median_us'] is {r.get('median_us', 'missing')!r}, not a positive number"
        for key in ROW_NUMBERS:
            if key in r and not _finite_number(r[key]):
                return f"rows[{i}][{key!r}] is {r[key]!r}, not a finite number"
    m = data["meta"]
    checks = (("device", lambda v: v in ("cpu", "cuda"), "'cpu' or 'cuda'"),
              ("quick", lambda v: isinstance(v, bool), "true or false"),
              ("ops", lambda v: _names_or_null(v, CASES), "null or a list of ops"),
              ("modes", lambda v: _names_or_null(v, MODES), f"null or a list of {', '.join(MODES)}"),
              ("providers", lambda v: _names_or_null(v, PROVIDERS), "null or a list of providers"),
              ("min_run_time_s", lambda v: v is None or (_finite_number(v) and v > 0), "a positive number"),
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
