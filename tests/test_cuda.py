"""CUDA-only checks (skipped without a GPU): int64 offsets past 2**31 elements, CUDA-graph
capture of a training step (no host sync on the hot path), triton and native agreeing."""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan import functional as F

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

GPU_BACKENDS = [b for b in ("triton", "native")
                if torch.cuda.is_available() and fastgan.available_backends()[b][0]
                and fastgan.backends.BACKENDS[b].check_device(torch.device("cuda")) is None]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_more_than_2_pow_31_elements(backend):
    n = 2 ** 31 + 64
    free, _ = torch.cuda.mem_get_info()
    if free < 4 * n * 2 + (1 << 30):
        pytest.skip("not enough GPU memory")
    fake = torch.zeros(n, dtype=torch.bfloat16, device="cuda")
    fake[-1] = 3.0  # only the last element, past 2**31, is non-zero
    with fastgan.use_backend(backend):
        s = F.wasserstein_g_loss(fake, reduction="sum")
        fake.requires_grad_(True)
        (g,) = torch.autograd.grad(F.hinge_g_loss(fake, reduction="sum"), fake)
    assert float(s) == -3.0
    assert float(g[-1]) == -1.0 and float(g[0]) == -1.0
    del fake, g
    torch.cuda.empty_cache()


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cuda_graph_capture_of_a_training_step(backend):
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.LeakyReLU(0.2), torch.nn.Linear(32, 1)).cuda()
    opt = torch.optim.SGD(D.parameters(), lr=0.01)
    real = torch.randn(64, 8, device="cuda")
    fake = torch.randn(64, 8, device="cuda")

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.hinge_d_loss(D(real), D(fake)) + F.bce_d_loss(D(real), D(fake))
        loss.backward()
        opt.step()
        return loss

    with fastgan.use_backend(backend):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        before = [p.detach().clone() for p in D.parameters()]
        graph.replay()
        torch.cuda.synchronize()
    assert torch.isfinite(out)
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))


@pytest.mark.parametrize("name", sorted(fastgan.OPS))
def test_triton_and_native_agree_on_cuda(name):
    if len(GPU_BACKENDS) < 2:
        pytest.skip("needs both triton and native on CUDA")
    from fastgan.tools.checking import call
    spec = fastgan.OPS[name]
    xs = spec.make_inputs([(4096,)] * len(spec.args), torch.float32, "cuda")
    outs = []
    for b in GPU_BACKENDS:
        with fastgan.use_backend(b):
            outs.append(call(spec, xs, {}, "mean"))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
