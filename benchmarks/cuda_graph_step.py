"""CUDA-graph capture of a discriminator training step with fastgan losses.

One D step (a small DCGAN-style critic on 32x32 images, ``hinge_d_loss`` plus a
label-smoothed ``bce_d_loss``, backward, Adam with ``capturable=True``) is captured
with ``torch.cuda.graph`` for each fastgan backend and replayed; an identical model
steps eagerly next to it.  Reports whether capture works (no host sync, no
allocation outside the graph's pool), whether the replayed losses and the final
parameters match the eager ones, and the time per step (CUDA events, median).

    python benchmarks/cuda_graph_step.py --json out.json --markdown out.md

Exit status 1 if a backend that is usable on CUDA fails to capture or differs.
Needs a CUDA device (exit status 1 without one).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastgan  # noqa: E402
from fastgan import F  # noqa: E402


def critic(size: int = 32) -> nn.Module:
    layers, c, s = [], 3, size
    for out in (64, 128, 256):
        s //= 2
        layers += [nn.Conv2d(c, out, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = out
    layers += [nn.Conv2d(c, 1, s, 1, 0), nn.Flatten()]
    return nn.Sequential(*layers)


def make(seed: int, device):
    torch.manual_seed(seed)
    d = critic().to(device)
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=True)
    return d, opt


def step(d, opt, real, fake):
    opt.zero_grad(set_to_none=False)
    loss = F.hinge_d_loss(d(real), d(fake)) + F.bce_d_loss(d(real), d(fake), real_label=0.9)
    loss.backward()
    opt.step()
    return loss


def _time(fn, iters: int):
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)  # µs
    return statistics.median(times)


def run_backend(backend: str, batch: int, steps: int, iters: int) -> dict:
    dev = torch.device("cuda")
    row = {"backend": backend, "batch": batch, "device": torch.cuda.get_device_name()}
    gen = torch.Generator(device=dev).manual_seed(1)
    real = torch.randn(batch, 3, 32, 32, device=dev, generator=gen)
    fake = torch.randn(batch, 3, 32, 32, device=dev, generator=gen)
    with fastgan.use_backend(backend):
        try:
            dg, og = make(0, dev)   # captured
            de, oe = make(0, dev)   # eager twin
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up (kernels compiled, optimizer state allocated)
                    step(dg, og, real, fake)
                    step(de, oe, real, fake)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_loss = step(dg, og, real, fake)
            row["captured"] = True
        except Exception as exc:
            row.update(captured=False, error=f"{type(exc).__name__}: {exc}"[:2000])
            return row
        diffs = []
        for _ in range(steps):
            graph.replay()
            le = step(de, oe, real, fake)
            diffs.append(abs(static_loss.item() - le.item()) / max(1e-12, abs(le.item())))
        pdiff = max(((pg - pe).abs().max() / pe.abs().max().clamp_min(1e-12)).item()
                    for pg, pe in zip(dg.parameters(), de.parameters()))
        row.update(loss_rel_diff=max(diffs), param_rel_diff=pdiff,
                   matches=max(diffs) < 1e-4 and pdiff < 1e-4,
                   eager_us=round(_time(lambda: step(de, oe, real, fake), iters), 1),
                   graph_us=round(_time(graph.replay, iters), 1))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="cuda_graph_step.py", description=__doc__.splitlines()[0])
    p.add_argument("--backend", action="append", choices=["triton", "native", "torch", "auto"],
                   help="backend to capture (repeatable; default triton, native, auto)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="replayed steps compared with eager ones")
    p.add_argument("--iters", type=int, default=50, help="timed steps")
    p.add_argument("--json")
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_graph_step.py needs a CUDA device (torch.cuda.is_available() is False)")
        return 1
    rows = []
    for backend in a.backend or ["triton", "native", "auto"]:
        ok, why = fastgan.available_backends().get(backend, (True, ""))
        if not ok:
            rows.append({"backend": backend, "skipped": why})
            continue
        rows.append(run_backend(backend, a.batch, a.steps, a.iters))
        print(json.dumps(rows[-1]))
    lines = [f"# CUDA-graph capture of a D step ({torch.cuda.get_device_name()}, batch {a.batch})", "",
             "| backend | captured | replay matches eager | eager µs/step | graph µs/step | note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r.get('captured', '-')} | {r.get('matches', '-')} | "
                     f"{r.get('eager_us', '-')} | {r.get('graph_us', '-')} | "
                     f"{r.get('skipped') or r.get('error', '')} |")
    print("\n".join(lines))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    bad = [r for r in rows if "skipped" not in r and not (r.get("captured") and r.get("matches"))]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
