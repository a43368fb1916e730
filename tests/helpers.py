"""Shared test helpers: run an op of the registry and compare it to the float64 reference."""
from __future__ import annotations

import torch

import fastgan
from fastgan import functional as F
from fastgan.registry import OPS


def call(spec, tensors, opts, reduction):
    """Call the public function of ``spec`` (not the backend directly)."""
    fn = getattr(F, spec.name)
    return fn(*tensors, **opts, reduction=reduction)


def as_tuple(out):
    return tuple(out) if isinstance(out, tuple) else (out,)


def upstream(outs, gen):
    """A random upstream gradient for each output (the loss scaled by a random tensor)."""
    return [torch.randn(o.shape, dtype=torch.float64, generator=gen) + 1.5 for o in outs]


def tolerance(spec, dtype, ref_magnitude: float):
    rtol, atol = spec.tolerances[dtype]
    fi = torch.finfo(dtype)
    # errors scale with the L1 size of what was summed; half types also round
    # gradients into subnormals, where one ulp is tiny * eps
    return rtol, atol * max(1.0, ref_magnitude) + 2 * fi.tiny * fi.eps


def check_against_reference(spec, backend, tensors, opts, reduction, gen, grads=True):
    """Values and gradients of ``backend`` against the reference evaluated in float64
    on the same (already rounded) inputs, with a random upstream gradient."""
    dtype = tensors[0].dtype
    xs = [t.detach().clone().requires_grad_(grads) for t in tensors]
    refs = [t.detach().double().requires_grad_(grads) for t in tensors]
    with fastgan.use_backend(backend):
        out = as_tuple(call(spec, xs, opts, reduction))
    ref = as_tuple(spec.reference(*refs, **opts, reduction=reduction))
    # L1 magnitude of the summed terms, for the absolute tolerance of reductions
    terms = as_tuple(spec.reference(*[r.detach() for r in refs], **opts, reduction="none"))
    mag = sum(float(t.abs().nan_to_num(0, 0, 0).sum()) for t in terms)
    if reduction == "mean":
        mag = sum(float(t.abs().nan_to_num(0, 0, 0).mean()) for t in terms if t.numel())
    elif reduction == "none":
        mag = max((float(t.abs().nan_to_num(0, 0, 0).max()) for t in terms if t.numel()), default=0.0)
    assert len(out) == len(ref)
    for o, r in zip(out, ref):
        assert o.dtype == dtype, (o.dtype, dtype)
        assert o.shape == r.shape, (o.shape, r.shape)
        rtol, atol = tolerance(spec, o.dtype, mag)
        torch.testing.assert_close(o.detach().double(), r.detach().to(o.dtype).double(), rtol=rtol, atol=atol,
                                   equal_nan=True)
    if not grads:
        return
    ups = upstream(ref, gen)
    g = torch.autograd.grad(out, xs, [u.to(o.dtype) for u, o in zip(ups, out)], allow_unused=True)
    gr = torch.autograd.grad(ref, refs, ups, allow_unused=True)
    # errors are relative to the largest gradient entry of any input
    gmag = max((float(b.abs().nan_to_num(0, 0, 0).max()) for b in gr if b is not None and b.numel()),
               default=0.0)
    for a, b, x in zip(g, gr, xs):
        assert a is not None and b is not None
        assert a.dtype == x.dtype and a.shape == x.shape
        rtol, atol = tolerance(spec, x.dtype, 0.0)
        torch.testing.assert_close(a.double(), b.to(x.dtype).double(), rtol=rtol, atol=atol * max(gmag, 1e-30) +
                                   2 * torch.finfo(x.dtype).tiny * torch.finfo(x.dtype).eps, equal_nan=True)
