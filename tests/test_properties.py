"""Property-based: the triton backend against the reference on random shapes and values."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgan
from fastgan.tools.cases import CASES

from .conftest import runnable
from .helpers import check_against_reference

if not (fastgan.available_backends()["triton"][0] and runnable("triton", "cpu")):
    pytest.skip("the triton backend does not run on CPU here", allow_module_level=True)

shapes = st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CASES)), shape_r=shapes, shape_f=shapes,
       dtype=st.sampled_from([torch.float32, torch.float64]),
       reduction=st.sampled_from(["mean", "sum", "none"]),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]), seed=st.integers(0, 2 ** 16),
       opt=st.integers(0, 2))
def test_triton_matches_reference(name, shape_r, shape_f, dtype, reduction, scale, seed, opt):
    spec = CASES[name]
    if spec.name in ("grad_norm_penalty", "gaussian_kl", "kl_div_logits", "js_div_logits") and not shape_r:
        # a batch / distribution dimension is required (0-d input is a ValueError, tested elsewhere)
        shape_r = (1,)
    gen = torch.Generator().manual_seed(seed)
    shapes_ = [shape_r, shape_f] if spec.is_discriminator else [shape_r] * len(spec.args)
    tensors = spec.make_inputs(shapes_, torch.float64, "cpu", gen)
    tensors = [(t * scale if i == 0 or spec.is_discriminator else t).to(dtype) for i, t in enumerate(tensors)]
    opts = spec.options[opt % len(spec.options)]
    check_against_reference(spec, "triton", tensors, opts, reduction, gen)
