"""``fastgan bench --plot``: the quick run's speed-up bars (per op, vs eager and vs
torch.compile, forward+backward, error bars from the per-round ratios, noisy rows hatched,
list cases as bars of their own) or a size sweep's time vs size per op (list cases as markers
of their own, never on the sweep's line).  ``layout`` is the picture as data; ``figure`` the
matplotlib figure; ``plot`` writes the PNG."""
from __future__ import annotations

from typing import Dict

from .bench_cases import FALLBACK, cases, min_bytes, provider_label

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
