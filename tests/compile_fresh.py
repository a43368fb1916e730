"""Run by tests/test_compile.py in a fresh process (``python -m tests.compile_fresh BACKEND [--quick]``):
torch.compile(fullgraph=True) of every op with every differentiable argument requiring
grad, before any eager call in the process, with dynamic=False, dynamic=True and
automatic dynamic shapes (a second size and another float option), compared with eager.
Prints one line per failure and ``OK <count>`` at the end.

By default one op per family (a different one for each backend, by the sampling rule of
tests/helpers.py); every op with FASTGAN_FULL_MATRIX=1."""
from __future__ import annotations

import sys

import torch

import fastgan
from fastgan.tools.cases import CASES

from .helpers import FULL_MATRIX, kept

BACKEND_ORDER = ("torch", "native", "triton", "auto")  # the phase of the rotation


def selected(backend: str, full: bool = FULL_MATRIX) -> list:
    """The ops compiled for ``backend``: all with ``full``, else one per family, the
    family's ops taken in turn by the backends."""
    families = {}
    for name, spec in CASES.items():
        families.setdefault(spec.spec.family, []).append(name)
    b = BACKEND_ORDER.index(backend) if backend in BACKEND_ORDER else 0
    rule = {"over": ("op",), "every": 1}
    return [name for names in families.values() for j, name in enumerate(names)
            if kept({"op": j, "backend": b}, {}, {**rule, "every": len(names)}, full=full)]


def _args(spec, n, gen):
    if spec.name == "binary_cross_entropy_with_logits":
        x, t = spec.make_inputs([(n,), (n,)], torch.float32, "cpu", gen)
        w = torch.rand(n, generator=gen) + 0.5
        p = torch.rand(n, generator=gen) * 2
        return [x, t, w, p]
    shapes = [(n,), (n + 3,)] if spec.is_discriminator else [(n, 3)] * len(spec.args)
    return spec.make_inputs(shapes, torch.float32, "cpu", gen)


def _fn(spec, opts, reduction):
    fn = getattr(fastgan.F, spec.name)
    if spec.name == "binary_cross_entropy_with_logits":
        def loss(x, t, w, p):
            return fn(x, t, weight=w, pos_weight=p, reduction=reduction).sum()
    else:
        def loss(*xs):
            out = fn(*xs, **{**spec.fixed, **opts}, reduction=reduction)
            return sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    return loss


def check_compiled(name, fn, compiled, args, failures):
    leaves = [a.detach().clone().requires_grad_() for a in args]
    out = compiled(*leaves)
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    ref_leaves = [a.detach().clone().requires_grad_() for a in args]
    ref = fn(*ref_leaves)
    ref_grads = torch.autograd.grad(ref, ref_leaves, allow_unused=True)
    if not torch.allclose(out, ref, rtol=1e-5, atol=1e-5):
        failures.append(f"{name}: value {float(out)} vs eager {float(ref)}")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        if g is None or r is None:
            if not (g is None and r is None):
                failures.append(f"{name}: gradient of argument {i} is {'None' if g is None else 'set'} compiled, "
                                f"{'None' if r is None else 'set'} eager")
        elif not torch.allclose(g, r, rtol=1e-5, atol=1e-5):
            failures.append(f"{name}: gradient of argument {i} differs by {float((g - r).abs().max()):.3e}")


def main(backend: str, quick: bool = False) -> int:
    fastgan.set_backend(backend)
    gen = torch.Generator().manual_seed(0)
    failures, count = [], 0

    # first thing in the process: an inductor compile of a whole D step (no eager call before)
    def d_step(real, fake, x, t):
        return (fastgan.F.hinge_d_loss(real, fake) + fastgan.F.bce_d_loss(real, fake, real_label=0.9)
                + fastgan.F.binary_cross_entropy_with_logits(x, t))
    real, fake, x, t = [torch.randn(n, generator=gen) for n in (16, 9, 8, 8)]
    check_compiled("inductor d_step", d_step, torch.compile(d_step, fullgraph=True), [real, fake, x, t.sigmoid()], failures)
    count += 1

    # dynamic=False in its static form is also tests/test_compile.py's (after an eager call)
    plan = {True: (2, ("mean", "none")), None: (2, ("mean", "none")), False: (1, ("mean",))}
    ops = selected(backend)
    for dynamic, (n_opts, reductions) in plan.items():
        if quick and dynamic is not None:
            continue
        for name, spec in CASES.items():
            if name not in ops:
                continue
            for oi, opts in enumerate(spec.options[:n_opts]):
                for reduction in reductions:
                    torch._dynamo.reset()
                    fn = _fn(spec, opts, reduction)
                    compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic, backend="aot_eager")
                    tag = f"{name} opt{oi} {reduction} dynamic={dynamic}"
                    try:
                        for n in (6, 11):  # a second size: automatic dynamic shapes recompile
                            check_compiled(f"{tag} n={n}", fn, compiled, _args(spec, n, gen), failures)
                            count += 1
                    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                        failures.append(f"{tag}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    # a float option that changes between calls (symbolic under automatic dynamic)
    torch._dynamo.reset()
    hinge = torch.compile(lambda r, f, m: fastgan.F.hinge_d_loss(r, f, margin=m), fullgraph=True, backend="aot_eager")
    for m in (1.0, 0.5, 0.25):
        r, f = torch.randn(7, generator=gen), torch.randn(5, generator=gen)
        try:
            check_compiled(f"hinge margin={m}", lambda a, b: fastgan.F.hinge_d_loss(a, b, margin=m),
                   lambda a, b: hinge(a, b, m), [r, f], failures)
            count += 1
        except Exception as exc:  # noqa: BLE001
            failures.append(f"hinge margin={m}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    for line in failures:
        print("FAIL", line)
    print(f"ops: {' '.join(ops)}")
    print(f"OK {count}" if not failures else f"FAILED {len(failures)} of {count}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--quick" in sys.argv[2:]))
