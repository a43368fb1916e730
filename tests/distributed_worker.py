"""One rank of a small multi-process GAN training job, for ``tests/test_distributed.py``.

``launch(scenarios, world_size, workdir)`` starts ``world_size`` processes
(``python -m tests.distributed_worker``), each of which joins a ``gloo`` process group
through a ``file://`` rendezvous in ``workdir`` (no TCP port, so parallel test workers
cannot collide), runs every scenario in order and saves each scenario's outcome (the
trained parameters, or the error) to ``workdir/rank{r}.pt`` as soon as it is done.
``launch`` waits at most ``timeout`` seconds, then kills every process it started and
raises with their logs: a hung rank never hangs the test suite.  Collectives time out
after ``gloo_timeout`` seconds, so a rank stuck in an all-reduce ends with an error.

A scenario is a dict (``scenario(...)`` fills in the defaults): a critic and a
generator (two small MLPs in float64, tanh/SiLU so second derivatives are not
trivially zero) trained for ``steps`` steps with Adam on fastgan's ``d_loss``/``g_loss``
of ``loss`` kind plus an optional penalty, the global batch of ``batch`` samples split
into equal contiguous shards, one per rank.  ``wrap``: ``"ddp"`` (both models in
``DistributedDataParallel``), ``"fsdp2"`` (``torch.distributed.fsdp.fully_shard``),
``"fsdp1"`` (``FullyShardedDataParallel``) or ``"none"`` (plain modules; with world
size 1 and no process group this is the single-process reference, ``run_scenario``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULTS = {
    "name": None,
    "loss": "wasserstein",      # fastgan d_loss / g_loss kind
    "penalty": None,            # None, "gp", "lp" (one-sided gp), "r1", "r2"
    "weight": 10.0,             # gp / lp weight, r1 / r2 gamma
    "alpha": "sharded",         # gp / lp: "sharded" (the global alpha, sliced per rank) or "none" (drawn)
    "wrap": "ddp",              # "ddp", "fsdp2", "fsdp1", "none"
    "find_unused_parameters": False,
    "static_graph": False,
    "penalty_via": "wrapper",   # "wrapper": the DDP/FSDP module; "module": critic.module; "function":
                                # lambda x: wrapper(x) (a plain callable: fastgan cannot see the wrapper)
    "penalty_backward": "joint",  # "joint": (d_loss + penalty).backward(); "separate": its own forward + backward
    "reduction": "mean",
    "loss_scale": 1.0,          # multiplies the D and G losses (e.g. world_size with reduction="sum")
    "backend": "auto",
    "amp": False,               # autocast(cpu, bfloat16) + GradScaler("cpu") (scaler passed to the penalty)
    "penalty_every": 1,         # the penalty on steps where (step - penalty_first) % penalty_every == 0
    "penalty_first": 0,
    "optimizer": "adam",        # "adam" (lr 1e-2, betas (0.5, 0.9)) or "sgd" (lr 1e-2)
    "steps": 3,
    "batch": 8,                 # global batch, split into equal shards
    "seed": 0,
    "data_seed": 1234,
}

IN, LATENT = 4, 3


def scenario(**kw) -> dict:
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise KeyError(f"unknown scenario keys {sorted(unknown)}")
    sc = {**DEFAULTS, **kw}
    if sc["name"] is None:
        sc["name"] = "-".join(f"{k}={v}" for k, v in kw.items())
    return sc


def make_models():
    import torch
    from torch import nn
    critic = nn.Sequential(nn.Linear(IN, 16), nn.Tanh(), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 1))
    gen = nn.Sequential(nn.Linear(LATENT, 16), nn.Tanh(), nn.Linear(16, IN))
    return critic.to(torch.float64), gen.to(torch.float64)


def make_data(sc):
    """The global batches of every step: real samples, latents and interpolation weights."""
    import torch
    g = torch.Generator().manual_seed(sc["data_seed"])
    n, s = sc["batch"], sc["steps"]
    real = torch.randn(s, n, IN, generator=g, dtype=torch.float64) * 0.7 + 0.5
    z = torch.randn(s, n, LATENT, generator=g, dtype=torch.float64)
    alpha = torch.rand(s, n, generator=g, dtype=torch.float64)
    return real, z, alpha


def _penalty(sc, critic, real, fake, alpha, scaler):
    import fastgan
    kind = sc["penalty"]
    if kind in ("gp", "lp"):
        return fastgan.gradient_penalty(critic, real, fake, weight=sc["weight"], one_sided=kind == "lp",
                                        alpha=None if sc["alpha"] == "none" else alpha, scaler=scaler)
    if kind == "r1":
        return fastgan.r1_penalty(critic, real, gamma=sc["weight"], scaler=scaler)
    if kind == "r2":
        return fastgan.r2_penalty(critic, fake, gamma=sc["weight"], scaler=scaler)
    raise ValueError(f"unknown penalty {kind!r}")


def _wrap(sc, critic, gen):
    import torch
    wrap = sc["wrap"]
    if wrap == "none":
        return critic, gen
    if wrap == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        opts = {"find_unused_parameters": sc["find_unused_parameters"], "static_graph": sc["static_graph"]}
        return DDP(critic, **opts), DDP(gen, **opts)
    if wrap in ("fsdp2", "fsdp2-keep"):
        from torch.distributed.fsdp import fully_shard
        keep = {"reshard_after_forward": False} if wrap == "fsdp2-keep" else {}
        for m in (critic, gen):
            for layer in m:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer, **keep)
            fully_shard(m, **keep)
        return critic, gen
    if wrap in ("fsdp1", "fsdp1-grad-op"):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, ShardingStrategy
        kw = {"device_id": torch.device("cpu"), "use_orig_params": True}
        if wrap == "fsdp1-grad-op":  # parameters stay unsharded between forward and backward
            kw["sharding_strategy"] = ShardingStrategy.SHARD_GRAD_OP
        return FSDP(critic, **kw), FSDP(gen, **kw)
    raise ValueError(f"unknown wrap {wrap!r}")


def _full_params(sc, critic, gen):
    """Every parameter as a plain (unsharded) tensor, named ``critic.0.weight``..."""
    out = {}
    if sc["wrap"].startswith("fsdp1"):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        for tag, m in (("critic", critic), ("gen", gen)):
            with FSDP.summon_full_params(m):
                for n, p in m.named_parameters():
                    out[f"{tag}.{n.replace('_fsdp_wrapped_module.', '')}"] = p.detach().clone()
        return out
    for tag, m in (("critic", critic), ("gen", gen)):
        m = getattr(m, "module", m) if sc["wrap"] == "ddp" else m
        for n, p in m.named_parameters():
            if hasattr(p, "full_tensor"):  # an FSDP2 DTensor shard
                p = p.full_tensor()
            out[f"{tag}.{n}"] = p.detach().clone()
    return out


def run_scenario(sc: dict, rank: int = 0, world_size: int = 1) -> dict:
    """Train as ``sc`` says on this rank's shard; the parameters afterwards (plus the
    backend that ran the ops and the per-step losses)."""
    import torch
    import fastgan
    from fastgan import backends

    F = fastgan.F
    if sc["wrap"] == "sleep":  # a hung rank, for the launcher's time limit
        time.sleep(600)
    if sc["wrap"] == "probe-rank0":
        return _probe_rank0(sc, rank)
    torch.manual_seed(sc["seed"])
    critic, gen = make_models()
    amp = sc["amp"]
    if amp:  # AMP in float32 (bfloat16 autocast does not touch float64); before wrapping (DDP's buckets)
        critic.float(), gen.float()
    critic, gen = _wrap(sc, critic, gen)
    pen_critic = critic
    if sc["penalty_via"] == "module" and sc["wrap"] == "ddp":
        pen_critic = critic.module
    elif sc["penalty_via"] == "function":
        pen_critic = lambda x: critic(x)  # noqa: E731
    if sc["optimizer"] == "adam":
        opt_d = torch.optim.Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9))
        opt_g = torch.optim.Adam(gen.parameters(), lr=1e-2, betas=(0.5, 0.9))
    else:
        opt_d = torch.optim.SGD(critic.parameters(), lr=1e-2)
        opt_g = torch.optim.SGD(gen.parameters(), lr=1e-2)
    real_all, z_all, alpha_all = make_data(sc)
    n = sc["batch"]
    if n % world_size:
        raise ValueError(f"batch {n} does not split into {world_size} equal shards")
    lo, hi = rank * n // world_size, (rank + 1) * n // world_size
    red, scale, kind = sc["reduction"], sc["loss_scale"], sc["loss"]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10) if amp else None
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else None
    dt = torch.float32 if amp else torch.float64
    losses = []
    with fastgan.use_backend(sc["backend"]):
        used = backends.resolve(torch.device("cpu")).__name__.rsplit(".", 1)[-1]
        for step in range(sc["steps"]):
            real = real_all[step, lo:hi].to(dt)
            z = z_all[step, lo:hi].to(dt)
            alpha = alpha_all[step, lo:hi].to(dt)
            # discriminator / critic step
            ctx = autocast() if amp else _null()
            with ctx:
                fake = gen(z)
                d_loss = F.d_loss(kind, critic(real), critic(fake.detach()), reduction=red) * scale
                pen = None
                with_pen = bool(sc["penalty"]) and step >= sc["penalty_first"] and \
                    (step - sc["penalty_first"]) % sc["penalty_every"] == 0
                if with_pen and sc["penalty_backward"] == "joint":
                    pen = _penalty(sc, pen_critic, real, fake.detach(), alpha, scaler)
                    d_total = d_loss + pen
                else:
                    d_total = d_loss
            opt_d.zero_grad()
            _backward(d_total, scaler)
            if with_pen and sc["penalty_backward"] == "separate":
                with (autocast() if amp else _null()):
                    pen = _penalty(sc, pen_critic, real, fake.detach(), alpha, scaler)
                _backward(pen, scaler)
            _step(opt_d, scaler)
            # generator step
            with (autocast() if amp else _null()):
                g_loss = F.g_loss(kind, critic(fake), reduction=red) * scale
            opt_g.zero_grad()
            _backward(g_loss, scaler)
            _step(opt_g, scaler)
            if scaler is not None:
                scaler.update()
            losses.append([float(d_loss.detach()), float(pen.detach()) if pen is not None else 0.0,
                           float(g_loss.detach())])
    out = {"params": _full_params(sc, critic, gen), "backend": used, "losses": torch.tensor(losses)}
    if scaler is not None:
        out["scale"] = float(scaler.get_scale())
    return out


def _probe_rank0(sc, rank):
    """Every fastgan loss and penalty, forward and backward, on rank 0 only, then a barrier:
    if any of them ran a collective, the ranks would be at different collectives and the
    barrier (or the next scenario's DDP constructor) would fail with the gloo timeout."""
    import torch
    import torch.distributed as dist
    import fastgan
    F = fastgan.F
    if rank == 0:
        torch.manual_seed(sc["seed"])
        critic, _ = make_models()
        r, f = torch.randn(6, dtype=torch.float64, requires_grad=True), torch.randn(6, dtype=torch.float64)
        x = torch.randn(5, IN, dtype=torch.float64)
        with fastgan.use_backend(sc["backend"]):
            total = sum(F.d_loss(k, r, f) + F.g_loss(k, r) for k in ("bce", "hinge", "lsgan", "wasserstein"))
            total = total + F.binary_cross_entropy_with_logits(r, torch.rand(6, dtype=torch.float64))
            total = total + fastgan.gradient_penalty(critic, x, x.flip(0)) + fastgan.r1_penalty(critic, x) \
                + fastgan.r2_penalty(critic, x) + fastgan.gradient_penalty(critic, x, x.flip(0), one_sided=True) \
                + fastgan.grad_norm_penalty(torch.randn(5, 3, dtype=torch.float64, requires_grad=True))
            total.backward()
            fastgan.clip_weights_(critic)
    dist.barrier()
    return {"params": {}, "backend": sc["backend"], "losses": torch.zeros(0)}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _backward(loss, scaler):
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _step(opt, scaler):
    if scaler is not None:
        scaler.step(opt)
    else:
        opt.step()


# ---------------------------------------------------------------- the rank process


def _rank_main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--gloo-timeout", type=float, default=30.0)
    a = p.parse_args(argv)
    work = Path(a.workdir)
    import torch
    torch.set_num_threads(1)
    import torch.distributed as dist

    scenarios = json.loads((work / "job.json").read_text())
    out_path = work / f"rank{a.rank}.pt"
    dist.init_process_group("gloo", init_method=f"file://{work / 'rendezvous'}", rank=a.rank,
                            world_size=a.world_size, timeout=datetime.timedelta(seconds=a.gloo_timeout))
    results = {}
    try:
        for sc in scenarios:
            t0 = time.perf_counter()
            try:
                res = {"ok": True, **run_scenario(sc, a.rank, a.world_size)}
            except Exception as exc:  # noqa: BLE001 -- the test inspects the error
                res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            res["seconds"] = time.perf_counter() - t0
            results[sc["name"]] = res
            torch.save(results, out_path)
            print(f"rank {a.rank}: {sc['name']}: {'ok' if res['ok'] else res['error'].splitlines()[0]} "
                  f"({res['seconds']:.2f} s)", flush=True)
            if not res["ok"]:
                # a failed scenario can leave the ranks at different collectives: resynchronise
                # (a rank stuck in a collective ends with the gloo timeout instead of a hang)
                try:
                    dist.barrier()
                except Exception as exc:  # noqa: BLE001
                    print(f"rank {a.rank}: barrier after failure: {exc}", flush=True)
                    raise
    finally:
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass
    return 0


# ---------------------------------------------------------------- the launcher


class LaunchError(RuntimeError):
    """The rank processes failed or ran out of time; ``pids``: the processes started."""

    def __init__(self, message, pids=()):
        super().__init__(message)
        self.pids = list(pids)


def launch(scenarios, world_size: int, workdir, *, timeout: float = 150.0, gloo_timeout: float = 30.0,
           backend_env: dict | None = None):
    """Run ``scenarios`` on ``world_size`` fresh processes; ``[rank0_results, rank1_results, ...]``,
    each a dict ``name -> outcome``.  Every process is killed after ``timeout`` seconds."""
    import torch
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "job.json").write_text(json.dumps(list(scenarios)))
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))})
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the loopback interface: no network needed
    env.update(backend_env or {})
    procs, logs = [], []
    try:
        for r in range(world_size):
            log = open(work / f"rank{r}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.distributed_worker", "--rank", str(r), "--world-size",
                 str(world_size), "--workdir", str(work), "--gloo-timeout", str(gloo_timeout)],
                cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise LaunchError(f"the {world_size} rank processes did not finish within {timeout} s; "
                                  f"killed.\n{_logs(work, world_size)}", [q.pid for q in procs]) from None
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
        raise LaunchError(f"rank processes exited with {bad}.\n{_logs(work, world_size)}", [p.pid for p in procs])
    return [torch.load(work / f"rank{r}.pt", weights_only=True) for r in range(world_size)]


def _logs(work: Path, world_size: int) -> str:
    parts = []
    for r in range(world_size):
        f = work / f"rank{r}.log"
        text = f.read_text(errors="replace") if f.exists() else "(no log)"
        parts.append(f"--- rank {r} log (last 3000 chars) ---\n{text[-3000:]}")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(_rank_main())
