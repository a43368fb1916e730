"""Shared test helpers: the comparison is fastgan.verify's, asserted."""
from __future__ import annotations

from fastgan.verify import _as_tuple as as_tuple  # noqa: F401
from fastgan.verify import call, compare  # noqa: F401


def check_against_reference(spec, backend, tensors, opts, reduction, gen, grads=True):
    """Values and gradients of ``backend`` against the reference evaluated in float64 on the
    same (already rounded) inputs, with a random upstream gradient and per-dtype tolerances."""
    for what, max_abs, max_rel, ok, note in compare(spec, backend, tensors, opts, reduction, gen, grads):
        assert ok, (f"{spec.name} [{backend}, {tensors[0].dtype}, {reduction}, {opts}] {what}: "
                    f"max abs {max_abs:.3e}, max rel {max_rel:.3e} {note}")
