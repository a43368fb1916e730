"""The ``fastgan bench`` cases (``fastgan.tools.bench``) under pytest-benchmark: forward+backward per
provider, the reference fallback (``fastgan-torch``) included."""
from __future__ import annotations

import pytest
import torch

from fastgan.tools import bench

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROVIDERS = [p for p, why in bench.providers(DEVICE).items() if why is None and p != "compile"]
SMOKE = {("hinge_d_loss", "256"), ("grad_norm_penalty", "64x3x64x64"), ("binary_cross_entropy_with_logits", "256")}


def _params():
    for case in bench.cases():
        for prov in PROVIDERS:
            marks = [pytest.mark.smoke] if (case.op, case.label) in SMOKE else []
            yield pytest.param(case, prov, id=f"{case.id}-{prov}", marks=marks)


@pytest.mark.parametrize("case,provider", list(_params()))
def test_fwd_bwd(benchmark, case, provider):
    xs = case.inputs(DEVICE)
    fn = bench.provider_fn(provider, case)
    diff = [x for x in xs if x.requires_grad]

    def step():
        out = torch.autograd.grad(fn(*xs), diff)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        return out

    grads = benchmark(step)
    assert all(torch.isfinite(g).all() for g in grads)
