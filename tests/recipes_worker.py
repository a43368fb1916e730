"""One rank of the DDP checks of the recipe pieces, for tests/test_recipes_ddp.py.

``launch(world_size, workdir)`` starts ``world_size`` processes (``python -m
tests.recipes_worker``) that join a ``gloo`` process group through a ``file://``
rendezvous in ``workdir`` (as tests/distributed_worker.py does: no TCP port), run
``rank_job`` and save its results to ``workdir/rank{r}.pt``.  Every process is killed
after ``timeout`` seconds; collectives time out after ``gloo_timeout`` seconds.

``rank_job``: a ``GradBalancer`` under a DDP-wrapped codec (per-rank batches of different
sizes, so the batch-size weighting of the norms' average matters) and
``LeCamRegularizer(sync=True)`` (and ``sync=False``, the control) on per-rank scores of
different sizes, for a few steps, in float64.  ``rank_data`` gives each rank's inputs, so
that the test can recompute everything in one process."""
from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
WEIGHTS = {"l1": 1.0, "l2": 4.0, "adv": 2.0}


def batch_size(rank: int) -> int:
    return 3 + 2 * rank


def rank_data(rank: int, step: int):
    """``(x, t, real_scores, fake_scores)`` of ``rank`` at ``step``."""
    import torch
    g = torch.Generator().manual_seed(1000 * rank + step)
    b = batch_size(rank)
    x = torch.randn(b, 3, generator=g, dtype=torch.float64)
    t = torch.randn(b, 2, 5, generator=g, dtype=torch.float64) * (rank + 1)
    real = torch.randn(b + 1, generator=g, dtype=torch.float64) + rank
    fake = torch.randn(2 * b, generator=g, dtype=torch.float64) - 2 * rank
    return x, t, real, fake


def make_codec():
    import torch
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 10)).to(torch.float64)


def codec_losses(model, x, t):
    y = model(x).view(-1, 2, 5)
    return y, {"l1": (y - t).abs().mean(), "l2": (y - t).square().mean() * 3, "adv": -y.mean() * 0.1}


def rank_job(rank: int, world_size: int) -> dict:
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import fastgan
    codec = DDP(make_codec())
    bal = fastgan.GradBalancer(WEIGHTS, ema_decay=0.9)
    synced = fastgan.nn.LeCamRegularizer(decay=0.8, sync=True).double()
    local = fastgan.nn.LeCamRegularizer(decay=0.8, sync=False).double()
    out = {"effective": [], "norms": [], "ema_num": [], "grads": [], "lecam": [], "lecam_emas": [],
           "local_emas": []}
    for step in range(STEPS):
        x, t, real, fake = rank_data(rank, step)
        codec.zero_grad(set_to_none=True)
        y, losses = codec_losses(codec, x, t)
        out["effective"].append(bal.backward(losses, y).detach())
        out["norms"].append(bal.last_norms.clone())
        out["ema_num"].append(bal.ema_num.clone())
        out["grads"].append([p.grad.clone() for p in codec.module.parameters()])
        out["lecam"].append(synced(real, fake).detach())
        out["lecam_emas"].append(torch.stack([synced.ema_real, synced.ema_fake]).clone())
        local(real, fake)
        out["local_emas"].append(torch.stack([local.ema_real, local.ema_fake]).clone())
    return out


def _rank_main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--gloo-timeout", type=float, default=30.0)
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    import torch.distributed as dist
    work = Path(a.workdir)
    dist.init_process_group("gloo", init_method=f"file://{work / 'rendezvous'}", rank=a.rank,
                            world_size=a.world_size, timeout=datetime.timedelta(seconds=a.gloo_timeout))
    try:
        torch.save(rank_job(a.rank, a.world_size), work / f"rank{a.rank}.pt")
    finally:
        dist.destroy_process_group()
    return 0


def launch(world_size: int, workdir, *, timeout: float = 120.0, gloo_timeout: float = 30.0):
    """``[rank0_results, rank1_results, ...]`` of ``rank_job`` on fresh processes."""
    import torch
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    procs, logs = [], []
    try:
        for r in range(world_size):
            logs.append(open(work / f"rank{r}.log", "w"))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.recipes_worker", "--rank", str(r), "--world-size", str(world_size),
                 "--workdir", str(work), "--gloo-timeout", str(gloo_timeout)],
                cwd=str(ROOT), env=env, stdout=logs[-1], stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        for p in procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the rank processes did not finish within {timeout} s; killed.\n{_logs(work, world_size)}")
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the session this launcher started for the rank
                except ProcessLookupError:
                    pass
                p.wait()
        for log in logs:
            log.close()
    bad = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
    if bad:
        raise RuntimeError(f"rank processes exited with {bad}.\n{_logs(work, world_size)}")
    return [torch.load(work / f"rank{r}.pt", weights_only=True) for r in range(world_size)]


def _logs(work: Path, world_size: int) -> str:
    return "\n".join(f"--- rank {r} ---\n{(work / f'rank{r}.log').read_text(errors='replace')[-3000:]}"
                     for r in range(world_size) if (work / f"rank{r}.log").exists())


if __name__ == "__main__":
    sys.exit(_rank_main())
