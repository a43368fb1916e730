"""The test-and-verify helpers, re-exported for the test modules: the comparison with
tolerances lives in ``fastgan.tools.checking`` (``fastgan verify`` uses the same).

And the one sampling rule of the suite's expensive matrices (``sampled`` below; the
hook that applies it is in tests/conftest.py)."""
from __future__ import annotations

import os
from typing import Hashable, Mapping, Optional, Union

import pytest

from fastgan.tools.checking import as_tuple, call, check_against_reference, compare

__all__ = ["as_tuple", "call", "check_against_reference", "compare", "FULL_MATRIX", "sampled", "period", "kept"]

# FASTGAN_FULL_MATRIX=1 runs every parametrisation (CI on a bigger machine); by default
# the expensive axes of the matrices marked ``sampled`` are thinned out as below.
FULL_MATRIX = os.environ.get("FASTGAN_FULL_MATRIX") == "1"


def sampled(*over: str, every: Union[int, Mapping[object, int]], of: Optional[str] = None):
    """Mark a parametrised test whose axes ``over`` are sampled, 1 in ``every``.

    The rule (deterministic, the same on every run and every xdist worker): with ``i_a``
    the index of the test's value on axis ``a`` in its ``parametrize`` list, a test is
    kept iff ``sum(i_a for every parametrised axis a) % every == 0``.  For fixed values
    of the other axes (op, backend, ...) the sum over ``over`` runs through consecutive
    integers, so, as long as ``every`` is at most one plus the sum of (size - 1) of the
    other ``over`` axes, each value of each ``over`` axis is still met for every op x
    backend (and with ``every`` <= 3 on three axes of sizes >= 3, each pair of values
    too); the other axes' indices shift the phase, so different ops and backends meet
    different combinations.  tests/test_sampling.py checks the guarantee for every
    marked test.

    ``every`` may depend on the value of the axis ``of``: ``every={"triton": 6, "*": 3},
    of="backend"`` samples the Triton interpreter 1 in 6, the other backends 1 in 3
    (``1`` runs that part in full).  Tests left out are reported as deselected;
    FASTGAN_FULL_MATRIX=1 keeps them all.
    """
    if isinstance(every, Mapping):
        if of is None or "*" not in every:
            raise ValueError("every as a mapping needs of= and a '*' entry")
        every = dict(every)
    else:
        every = int(every)
    return pytest.mark.sampled(over=tuple(over), every=every, of=of)


def period(params: Mapping[str, object], mark_kwargs: Mapping) -> int:
    """The ``every`` that applies to a test with these parameter values."""
    every = mark_kwargs["every"]
    if isinstance(every, Mapping):
        value = params.get(mark_kwargs["of"])
        return every.get(value, every["*"]) if isinstance(value, Hashable) else every["*"]
    return every


def parametrize_axes(marks) -> list:
    """The ``parametrize`` marks as [(argnames, [values per argname, per entry]), ...]."""
    axes = []
    for mark in marks:
        if mark.name != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = []
        for v in values:
            if hasattr(v, "values") and hasattr(v, "marks"):  # pytest.param(...)
                rows.append(tuple(v.values))
            else:
                rows.append(tuple(v) if len(names) > 1 else (v,))
        axes.append((names, rows))
    return axes


def axis_indices(marks, params: Mapping[str, object]) -> dict:
    """For a test with parameter values ``params``, the index of its value in each
    ``parametrize`` list (pytest's ``callspec.indices`` is not that in pytest 9).  The
    values are pytest's own objects, found by identity (then equality)."""
    indices = {}
    for names, rows in parametrize_axes(marks):
        got = tuple(params[n] for n in names)
        for i, row in enumerate(rows):
            if all(a is b for a, b in zip(row, got)):
                break
        else:
            i = next(i for i, row in enumerate(rows) if row == got)
        for n in names:
            indices[n] = i
    return indices


def kept(indices: Mapping[str, int], params: Mapping[str, object], mark_kwargs: Mapping,
         full: bool = FULL_MATRIX) -> bool:
    """Whether the rule of ``sampled`` keeps the test with these parametrize indices and values."""
    if full:
        return True
    missing = [a for a in mark_kwargs["over"] if a not in indices]
    if missing:
        raise ValueError(f"sampled over {missing}, which are not parametrised")
    # (a combined "name,opts" parametrize gives both names the same index: a phase shift)
    return sum(indices.values()) % period(params, mark_kwargs) == 0
