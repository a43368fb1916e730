"""fastgan under torch.distributed, with real processes (issue 15).

Each job starts fresh rank processes (``tests/distributed_worker.py``: ``gloo`` on CPU,
a ``file://`` rendezvous in a temporary folder, one thread per rank, every process
killed after a time limit) that train a small critic and generator for a few steps
with fastgan's losses and penalties.  The parameters afterwards are compared, in
float64, with one process training on the whole batch (``run_scenario`` here, in the
test process, without a process group).

Reductions: DDP *averages* gradients over ranks, so a per-rank ``"mean"`` loss over equal
shards gives exactly the full-batch mean's gradient, and every fastgan penalty is a mean
over the batch, so the same holds for them; a per-rank ``"sum"`` gives the full-batch sum
divided by the world size (multiply by it to get the sum).  ``gradient_penalty`` draws
its ``alpha`` from the process's generator when none is given: to reproduce a
single-process run, pass the global ``alpha`` sliced like the batch.

The jobs run once per pytest worker that needs them (module-scoped fixtures); the whole
file takes well under a minute on a 2-core machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
import torch
from filelock import FileLock

import fastgan
from tests.distributed_worker import LaunchError, launch, run_scenario, scenario as S

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WORLD = 2
TIMEOUT = 240  # seconds for one job, start-up included; a hung rank is killed then
TIGHT = {"rtol": 0.0, "atol": 1e-12}  # float64; measured differences are <= 2e-16


def _triton_ok() -> bool:
    return fastgan.available_backends()["triton"][0]


# name -> (scenario, overrides of the single-process reference it must match, tolerance)
GOOD = {}


def _good(name, ref=None, tol=TIGHT, **kw):
    GOOD[name] = (S(name=name, **kw), ref or {}, tol)


for _loss in ("bce", "hinge", "lsgan", "wasserstein"):
    for _pen in (None, "gp", "lp", "r1", "r2"):
        _good(f"{_loss}-{_pen or 'nopenalty'}", loss=_loss, penalty=_pen)
_good("torch-backend-wasserstein-gp", backend="torch", penalty="gp")
_good("torch-backend-hinge-r1", backend="torch", loss="hinge", penalty="r1")
if _triton_ok():
    _good("triton-backend-bce-gp", backend="triton", loss="bce", penalty="gp", steps=2)
    _good("triton-backend-hinge-r2", backend="triton", loss="hinge", penalty="r2", steps=2)
_good("find_unused_parameters-gp", penalty="gp", find_unused_parameters=True)
_good("find_unused_parameters-r1", penalty="r1", find_unused_parameters=True)
_good("penalty-through-module-joint-gp", penalty="gp", penalty_via="module")
_good("static_graph-penalty-through-module-gp", penalty="gp", penalty_via="module", static_graph=True)
_good("static_graph-penalty-from-step-1-gp", penalty="gp", static_graph=True, penalty_first=1)
# lazy regularisation: the penalty in its own forward and backward after the loss's
_good("separate-backward-r1", penalty="r1", penalty_backward="separate")
_good("separate-backward-every-2nd-step-r1", penalty="r1", penalty_backward="separate", penalty_every=2, steps=4)
_good("separate-backward-find_unused-gp", penalty="gp", penalty_backward="separate", find_unused_parameters=True)
_good("separate-backward-static_graph-from-step-1-gp", penalty="gp", penalty_backward="separate",
      static_graph=True, penalty_first=1)
# reduction="sum": each rank's sum, averaged by DDP, is the full-batch sum / world size
_good("sum-times-world-size-is-full-sum", loss="bce", penalty="r1", reduction="sum", loss_scale=float(WORLD),
      ref={"loss_scale": 1.0})
_good("sum-is-full-sum-over-world-size", loss="hinge", penalty="gp", reduction="sum",
      ref={"loss_scale": 1.0 / WORLD})
# AMP: autocast(cpu, bfloat16) + GradScaler("cpu") passed to the penalty; bfloat16 rounding differs
# between a shard and the full batch (measured <= 1.6e-4 after 3 SGD steps), so the bound is 1e-3
AMP_TOL = {"rtol": 0.0, "atol": 1e-3}
_good("amp-wasserstein-gp", penalty="gp", amp=True, optimizer="sgd", tol=AMP_TOL)
_good("amp-hinge-r1", loss="hinge", penalty="r1", amp=True, optimizer="sgd", tol=AMP_TOL)

# the patterns that cannot be right, and FSDP
ODD = {sc["name"]: sc for sc in [
    S(name="probe-no-collective-in-fastgan-ops", wrap="probe-rank0"),
    S(name="static_graph-first-iteration-gp", penalty="gp", static_graph=True),
    S(name="static_graph-first-iteration-gp-hidden", penalty="gp", static_graph=True, penalty_via="function"),
    S(name="separate-backward-hidden-r1", penalty="r1", penalty_backward="separate", penalty_via="function"),
    S(name="separate-backward-through-module-r1", penalty="r1", penalty_backward="separate", penalty_via="module"),
    S(name="alpha-drawn-per-rank-gp", penalty="gp", alpha="none"),
    S(name="fsdp2-nopenalty", wrap="fsdp2", loss="hinge"),
    S(name="fsdp1-nopenalty", wrap="fsdp1", loss="bce"),
    S(name="fsdp2-gp", wrap="fsdp2", penalty="gp"),
    S(name="fsdp1-r1", wrap="fsdp1", penalty="r1"),
    S(name="fsdp2-gp-hidden", wrap="fsdp2", penalty="gp", penalty_via="function"),
    S(name="fsdp2-keep-unsharded-r1-hidden", wrap="fsdp2-keep", penalty="r1", penalty_via="function"),
    S(name="fsdp1-r1-hidden", wrap="fsdp1", penalty="r1", penalty_via="function"),
    S(name="fsdp1-shard-grad-op-gp-hidden", wrap="fsdp1-grad-op", penalty="gp", penalty_via="function"),
]}

WS1 = ["wasserstein-gp", "hinge-lp", "bce-r1", "lsgan-r2", "separate-backward-r1"]


def _job(request, name, scenarios, world_size):
    """The job's results, run once per test session: under pytest-xdist the first worker
    that needs them runs the job and the others wait for it and read its results (the
    folder above a worker's base temp is the session's, shared by its workers)."""
    tmp_path_factory = request.getfixturevalue("tmp_path_factory")
    if not hasattr(request.config, "workerinput"):  # not a pytest-xdist worker
        return launch(scenarios, world_size, tmp_path_factory.mktemp(name), timeout=TIMEOUT)
    key = hashlib.sha256(json.dumps([scenarios, world_size]).encode()).hexdigest()[:16]
    folder = tmp_path_factory.getbasetemp().parent / f"fastgan-distributed-{name}-{key}"
    with FileLock(f"{folder}.lock", timeout=2 * TIMEOUT):
        done = folder / "results.pt"
        if done.exists():
            return torch.load(done, weights_only=True)
        ranks = launch(scenarios, world_size, folder, timeout=TIMEOUT)
        torch.save(ranks, done)
        return ranks


@pytest.fixture(scope="module")
def good_runs(request):
    return _job(request, "good", [sc for sc, _, _ in GOOD.values()], WORLD)


@pytest.fixture(scope="module")
def odd_runs(request):
    return _job(request, "odd", list(ODD.values()), WORLD)


def _outcome(ranks, name):
    outs = [r[name] for r in ranks]
    for rank, o in enumerate(outs):
        assert o["ok"], f"rank {rank}: {o['error']}\n{o['traceback']}"
    return outs


def _assert_params_equal(got, want, msg, **tol):
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], **tol, msg=lambda m: f"{msg}: {k}: {m}")


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b)


@pytest.mark.parametrize("name", list(GOOD))
def test_ddp_matches_single_process(good_runs, name):
    """DDP over 2 processes, each on half the batch, ends with the parameters of one
    process training on the whole batch; every rank holds the same parameters."""
    sc, ref_overrides, tol = GOOD[name]
    outs = _outcome(good_runs, name)
    ref = run_scenario({**sc, "wrap": "none", **ref_overrides})
    if sc["backend"] == "auto":
        assert outs[0]["backend"] == ref["backend"] == "native"  # what "auto" picks on CPU
    else:
        assert outs[0]["backend"] == {"torch": "torch_backend"}.get(sc["backend"], sc["backend"])
    for rank, o in enumerate(outs):
        _assert_params_equal(o["params"], ref["params"], f"rank {rank} vs single process", **tol)
        _assert_params_equal(o["params"], outs[0]["params"], f"rank {rank} vs rank 0", rtol=0.0, atol=0.0)
    if sc["amp"]:
        assert outs[0]["scale"] == outs[1]["scale"] == ref["scale"]
        assert all(torch.isfinite(o["losses"]).all() for o in outs)


def test_sum_reduction_is_not_the_full_batch_sum(good_runs):
    """The other side of the "sum" scenarios: unscaled, a per-rank sum under DDP is not
    the single-process sum (DDP averages), so the scaling is needed."""
    sc, _, _ = GOOD["sum-is-full-sum-over-world-size"]
    o = _outcome(good_runs, sc["name"])[0]
    assert _max_diff(o["params"], run_scenario({**sc, "wrap": "none"})["params"]) > 1e-3


def test_world_size_1_and_2_agree(good_runs, request):
    """Determinism across world sizes: DDP with one process (the whole batch) and with two
    (half each) give the same parameters, and both those of a plain single process."""
    ranks = _job(request, "world-size-1", [GOOD[n][0] for n in WS1], 1)
    for name in WS1:
        one = _outcome(ranks, name)[0]
        two = _outcome(good_runs, name)[0]
        plain = run_scenario({**GOOD[name][0], "wrap": "none"})
        _assert_params_equal(one["params"], two["params"], f"{name}: world size 1 vs 2", **TIGHT)
        # one DDP process over the whole batch is the plain run, bit for bit
        _assert_params_equal(one["params"], plain["params"], f"{name}: world size 1 vs no DDP", rtol=0.0, atol=0.0)


def test_no_collective_inside_fastgan_ops(odd_runs):
    """Rank 0 alone runs every loss and penalty (plain modules), forward and backward,
    while rank 1 waits at a barrier: had any op run a collective, the ranks would be
    at different collectives and the barrier would fail with the gloo timeout."""
    _outcome(odd_runs, "probe-no-collective-in-fastgan-ops")


def test_static_graph_first_iteration_raises(odd_runs):
    """DDP(static_graph=True) all-reduces the first iteration's gradients at the end of the
    first backward through the module: a penalty's autograd.grad would be that backward and
    the iteration's gradients would not be averaged.  fastgan refuses, naming the fix."""
    for o in (r["static_graph-first-iteration-gp"] for r in odd_runs):
        assert not o["ok"]
        assert o["error"].startswith("ValueError: gradient penalty through DistributedDataParallel(static_graph=True)")
        assert "static_graph=False" in o["error"] and "critic.module" in o["error"]


def test_static_graph_first_iteration_is_silently_wrong_without_the_check(odd_runs):
    """The same set-up with the critic hidden behind a lambda (fastgan cannot see the DDP
    module): no error, and the ranks' parameters drift apart: the check is needed."""
    outs = _outcome(odd_runs, "static_graph-first-iteration-gp-hidden")
    assert _max_diff(outs[0]["params"], outs[1]["params"]) > 1e-3


def test_separate_penalty_backward_without_the_link_fails(odd_runs):
    """A penalty backpropagated on its own (lazy regularisation) through a critic fastgan
    cannot see as DDP: the last layer's bias gets no gradient, and DDP fails at the next
    forward.  (Through the DDP module fastgan links the penalty to the critic's output, and
    the same training matches the single process: ``separate-backward-*`` above.)"""
    for o in (r["separate-backward-hidden-r1"] for r in odd_runs):
        assert not o["ok"]
        assert o["error"].startswith("RuntimeError: Expected to have finished reduction in the prior iteration")


def test_separate_penalty_backward_through_module_is_silently_wrong(odd_runs):
    """The pitfall fastgan cannot detect: a penalty on ``critic.module`` in its own backward
    is never all-reduced (DDP only reduces after a forward through the DDP module); the
    ranks drift apart.  Call the penalty on the DDP module itself."""
    outs = _outcome(odd_runs, "separate-backward-through-module-r1")
    assert _max_diff(outs[0]["params"], outs[1]["params"]) > 1e-3


def test_alpha_drawn_per_rank_differs_from_single_process(odd_runs):
    """Without ``alpha`` each rank draws its own from its generator (here seeded alike, so
    every rank draws the same numbers): training is consistent across ranks but is not
    the single-process run; pass the global alpha, sliced like the batch, to reproduce it."""
    outs = _outcome(odd_runs, "alpha-drawn-per-rank-gp")
    assert _max_diff(outs[0]["params"], outs[1]["params"]) == 0.0
    ref = run_scenario({**ODD["alpha-drawn-per-rank-gp"], "wrap": "none"})
    assert _max_diff(outs[0]["params"], ref["params"]) > 1e-3


@pytest.mark.parametrize("name", ["fsdp2-nopenalty", "fsdp1-nopenalty"])
def test_fsdp_losses_match_single_process(odd_runs, name):
    """FSDP (``fully_shard`` per layer and root; ``FullyShardedDataParallel`` with
    ``device_id=cpu``) runs on CPU with gloo: fastgan's losses train to the single-process
    parameters."""
    outs = _outcome(odd_runs, name)
    ref = run_scenario({**ODD[name], "wrap": "none"})
    for rank, o in enumerate(outs):
        _assert_params_equal(o["params"], ref["params"], f"rank {rank} vs single process", **TIGHT)


@pytest.mark.parametrize("name", ["fsdp2-gp", "fsdp1-r1"])
def test_fsdp_penalty_raises(odd_runs, name):
    """A penalty needs a double backward, which FSDP does not support (it frees the unsharded
    parameters after the first): fastgan says so before torch's obscure failure."""
    for o in (r[name] for r in odd_runs):
        assert not o["ok"]
        assert o["error"].startswith("RuntimeError: gradient penalty through an FSDP-sharded critic")
        assert "DistributedDataParallel" in o["error"]


@pytest.mark.parametrize("name", ["fsdp2-gp-hidden", "fsdp2-keep-unsharded-r1-hidden", "fsdp1-r1-hidden",
                                  "fsdp1-shard-grad-op-gp-hidden"])
def test_fsdp_penalty_hidden_fails_in_torch(odd_runs, name):
    """What torch itself does with the FSDP critic hidden behind a lambda, for
    ``fully_shard`` (also with ``reshard_after_forward=False``) and ``FullyShardedDataParallel``
    (``FULL_SHARD``, ``SHARD_GRAD_OP``).  If this starts to pass, torch supports a double
    backward through FSDP: lift fastgan's FSDP check."""
    for o in (r[name] for r in odd_runs):
        assert not o["ok"]
        assert o["error"].startswith("RuntimeError: setStorage:") and "storage of size 0" in o["error"]


def test_hung_rank_is_killed(tmp_path):
    """The launcher's time limit: a rank that never finishes is killed, with its log in the
    error, and no process is left behind."""
    t0 = time.perf_counter()
    with pytest.raises(LaunchError, match="did not finish within 8") as info:
        launch([S(name="hang", wrap="sleep")], WORLD, tmp_path, timeout=8)
    assert time.perf_counter() - t0 < 30
    assert len(info.value.pids) == WORLD
    for pid in info.value.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
