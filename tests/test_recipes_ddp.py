"""The recipe pieces that talk to the DDP process group, with 2 real gloo processes
(tests/recipes_worker.py), in float64, against a one-process simulation written here by hand:

- ``GradBalancer``: facebookresearch/audiocraft ``audiocraft/losses/balancer.py`` with
  flashy's ``utils.averager`` (each rank's own bias-corrected EMA) and
  ``distrib.average_metrics(metrics, count)`` (the EMAs averaged over ranks, weighted by
  each rank's batch size): every rank ends with the same averaged norms;
- ``LeCamRegularizer(sync=True)``: the batch means averaged over the ranks before the EMA
  update, so every rank keeps the same EMAs (``sync=False``: each its own, the control)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as tF

from tests import recipes_worker as W

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WORLD = 2
TOL = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return W.launch(WORLD, tmp_path_factory.mktemp("recipes-ddp"), timeout=180)


def audiocraft_two_ranks(beta=0.9, eps=1e-12, total_norm=1.0):
    """Per step: per rank the gradients and per-batch-item norms, each rank's own flashy
    averager, flashy's average_metrics over the ranks (count = batch size), then each
    rank's scaled gradient; DDP averages the parameters' gradients."""
    models = [W.make_codec() for _ in range(WORLD)]
    total = [dict() for _ in range(WORLD)]
    fix = [dict() for _ in range(WORLD)]
    steps = []
    for step in range(W.STEPS):
        per_rank = []
        for r in range(WORLD):
            x, t, _, _ = W.rank_data(r, step)
            y, losses = W.codec_losses(models[r], x, t)
            grads = {k: torch.autograd.grad(v, [y], retain_graph=True)[0] for k, v in losses.items()}
            avg = {}
            for k, g in grads.items():
                total[r][k] = total[r].get(k, 0.0) * beta + float(g.norm(dim=(1, 2), p=2).mean())
                fix[r][k] = fix[r].get(k, 0.0) * beta + 1.0
                avg[k] = total[r][k] / fix[r][k]
            per_rank.append((y, losses, grads, avg, len(x)))
        counts = sum(c for *_, c in per_rank)
        avg = {k: sum(a[k] * c for *_, a, c in per_rank) / counts for k in W.WEIGHTS}
        total_w = sum(W.WEIGHTS.values())
        effective, param_grads = [], []
        for r, (y, losses, grads, _, _) in enumerate(per_rank):
            scale = {k: W.WEIGHTS[k] / total_w * total_norm / (eps + avg[k]) for k in W.WEIGHTS}
            out_grad = sum(grads[k] * scale[k] for k in W.WEIGHTS)
            effective.append(sum(scale[k] * losses[k].detach() for k in W.WEIGHTS))
            param_grads.append(torch.autograd.grad(y, list(models[r].parameters()), out_grad))
        steps.append({"norms": torch.tensor([avg[k] for k in W.WEIGHTS], dtype=torch.float64),
                      "effective": effective,
                      "grads": [sum(gs) / WORLD for gs in zip(*param_grads)]})
    return steps


def lecam_two_ranks(decay=0.8, sync=True):
    """lecam-gan's EMA of the batch means (update, then the term), the means averaged over
    the ranks when ``sync``."""
    ema = [torch.zeros(2, dtype=torch.float64) for _ in range(WORLD)]
    out = []
    for step in range(W.STEPS):
        data = [W.rank_data(r, step)[2:] for r in range(WORLD)]
        means = [torch.stack([real.mean(), fake.mean()]) for real, fake in data]
        if sync:
            means = [sum(means) / WORLD] * WORLD
        ema = [decay * e + (1 - decay) * m for e, m in zip(ema, means)]
        pens = [torch.mean(tF.relu(real - e[1]).pow(2)) + torch.mean(tF.relu(e[0] - fake).pow(2))
                for (real, fake), e in zip(data, ema)]
        out.append((list(ema), pens))
    return out


def test_grad_balancer_norms_are_averaged_over_ranks(ranks):
    want = audiocraft_two_ranks()
    for step, w in enumerate(want):
        for r in range(WORLD):
            got = ranks[r]
            torch.testing.assert_close(got["norms"][step], w["norms"], **TOL)
            torch.testing.assert_close(got["effective"][step], w["effective"][r], **TOL)
            for a, b in zip(got["grads"][step], w["grads"]):
                torch.testing.assert_close(a, b, **TOL)
        # the same averaged norms and (DDP) gradients on every rank, bit for bit
        assert torch.equal(ranks[0]["norms"][step], ranks[1]["norms"][step])
        assert all(torch.equal(a, b) for a, b in zip(ranks[0]["grads"][step], ranks[1]["grads"][step]))
    # each rank's own EMA state differs (audiocraft averages the EMAs, not the state)
    assert not torch.allclose(ranks[0]["ema_num"][-1], ranks[1]["ema_num"][-1])


def test_lecam_sync_keeps_identical_emas(ranks):
    want = lecam_two_ranks(sync=True)
    for step, (emas, pens) in enumerate(want):
        assert torch.equal(ranks[0]["lecam_emas"][step], ranks[1]["lecam_emas"][step])
        for r in range(WORLD):
            torch.testing.assert_close(ranks[r]["lecam_emas"][step], emas[r], **TOL)
            torch.testing.assert_close(ranks[r]["lecam"][step], pens[r], **TOL)
    local = lecam_two_ranks(sync=False)
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r]["local_emas"][-1], local[-1][0][r], **TOL)
    assert not torch.allclose(ranks[0]["local_emas"][-1], ranks[1]["local_emas"][-1])
