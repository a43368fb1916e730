"""The sampled matrices (tests/helpers.py: ``sampled``) still meet, for every op x
backend (every value of the axes not sampled), each value of each sampled axis: a
dtype, a reduction, a shape is never dropped for an op on a backend, only some of
their combinations.  Checked on the full parametrisation, whatever FASTGAN_FULL_MATRIX."""
from __future__ import annotations

import importlib
import itertools
import pkgutil
from pathlib import Path

import pytest

from fastgan.tools.cases import CASES

from .helpers import kept, parametrize_axes

HERE = Path(__file__).resolve().parent

# combinations a test skips at run time: they do not count as meeting a value
RUNTIME_SKIPS = {
    "tests.test_losses.test_against_reference":
        lambda p: p["shape"] == "different-sizes" and not CASES[p["name"]].is_discriminator,
}


def _axes(func):
    return parametrize_axes(getattr(func, "pytestmark", []))


def _marked():
    out = []
    for info in pkgutil.iter_modules([str(HERE)]):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"tests.{info.name}")
        for attr, func in vars(module).items():
            if attr.startswith("test_") and callable(func):
                marks = [m for m in getattr(func, "pytestmark", []) if m.name == "sampled"]
                if marks:
                    out.append(pytest.param(f"tests.{info.name}.{attr}", func, marks[0].kwargs,
                                            id=f"{info.name}::{attr}"))
    return out


MARKED = _marked()


def test_some_matrices_are_sampled():
    assert MARKED, "no test carries the sampled mark"


@pytest.mark.parametrize("qualname,func,kwargs", MARKED)
def test_every_value_of_a_sampled_axis_is_still_met(qualname, func, kwargs):
    axes = _axes(func)
    over = set(kwargs["over"])
    skip = RUNTIME_SKIPS.get(qualname, lambda p: False)
    met, total, kept_n = {}, 0, 0
    for combo in itertools.product(*(range(len(rows)) for _, rows in axes)):
        indices, params = {}, {}
        for (names, rows), i in zip(axes, combo):
            for n, v in zip(names, rows[i]):
                indices[n], params[n] = i, v
        total += 1
        if skip(params):
            continue
        group = tuple(indices[n] for n in indices if n not in over)
        for a in over:
            met.setdefault((group, a, indices[a]), False)
        if not kept(indices, params, kwargs, full=False):
            continue
        kept_n += 1
        for a in over:
            met[(group, a, indices[a])] = True
    never = [key for key, ok in met.items() if not ok]
    assert not never, f"{qualname}: {len(never)} (group, axis, value) never met, e.g. {never[:5]}"
    assert kept_n < total, f"{qualname}: the rule keeps all {total}"
