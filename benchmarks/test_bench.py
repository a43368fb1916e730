"""The ``fastgan bench`` cases (``fastgan.tools.bench``) under pytest-benchmark: forward+backward per
provider, the reference fallback (``fastgan-torch``) and ``torch.compile`` included.

Each case is first warmed up to a steady state with the same warm-up as ``fastgan bench``
(``bench.warm_up``: until consecutive blocks of calls agree, with a cap; a compiled
function's first slow calls fall in there), then timed by pytest-benchmark.  The smoke run
(``pytest benchmarks/`` without ``--benchmark-only``) runs each smoke case's body once, no
warm-up, no compile.  Saving and comparing runs: see ``conftest.py``."""
from __future__ import annotations

import pytest
import torch

from fastgan.tools import bench, bench_cases

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROVIDERS = [p for p, why in bench.providers(DEVICE).items() if why is None]
SMOKE = {("hinge_d_loss", "256"), ("grad_norm_penalty", "64x3x64x64"), ("binary_cross_entropy_with_logits", "256"),
         ("hinge_d_loss", "hifigan-8-lists")}


def _params():
    for case in bench.cases():
        for prov in PROVIDERS:
            # compile is never a smoke case: it would add a compile per case to the test suite
            smoke = (case.op, case.label) in SMOKE and prov != "compile"
            yield pytest.param(case, prov, id=f"{case.id}-{prov}", marks=[pytest.mark.smoke] if smoke else [])


@pytest.fixture(scope="module", autouse=True)
def _compile_settings():
    """As ``fastgan bench``: donated buffers off, compile in this process, one graph per case."""
    import torch._dynamo.config as dynamo_config
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    saved = (functorch_config.donated_buffer, inductor_config.compile_threads)
    functorch_config.donated_buffer = False
    inductor_config.compile_threads = 1
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, knob):
            setattr(dynamo_config, knob, max(getattr(dynamo_config, knob), 4 * len(bench.cases()) + 8))
    yield
    functorch_config.donated_buffer, inductor_config.compile_threads = saved


@pytest.mark.parametrize("case,provider", list(_params()))
def test_fwd_bwd(benchmark, case, provider):
    xs = case.inputs(DEVICE)
    fn = bench.provider_fn(provider, case)
    diff = bench_cases.leaves(xs)  # a list case's arguments are lists of tensors

    def step():
        out = torch.autograd.grad(fn(*xs), diff)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        return out

    if not benchmark.disabled:
        step()  # the first call (and the compile) outside the warm-up, as in fastgan bench
        benchmark.extra_info["warmup"] = bench.warm_up(step, DEVICE, max_s=2.0)
    grads = benchmark(step)
    assert len(grads) == len(diff) and all(torch.isfinite(g).all() for g in grads)
