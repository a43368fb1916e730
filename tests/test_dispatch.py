"""The one op interface (fastgan/backends/interface.py): every backend declares every family,
the dispatcher is a lookup that runs an op or says why not, and under torch.compile every
registry op's graph calls a fastgan op, not the reference, where the op declares compile."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

import fastgan
from fastgan import backends, functional as F
from fastgan.backends import interface
from fastgan.registry import OPS, Family
from fastgan.tools.cases import CASES

from .conftest import runnable, usable_backends

ROOT = Path(__file__).resolve().parents[1]
FUSED = [b for b in ("native", "triton") if b in usable_backends() and runnable(b, "cpu")]
FULL = os.environ.get("FASTGAN_FULL_MATRIX") == "1"


@pytest.mark.parametrize("name", list(backends.BACKENDS))
def test_every_backend_declares_every_family(name):
    backend = backends.BACKENDS[name]
    assert set(backend.OPS) == set(Family), name
    for table in (backend.OPS, backend.LIST_OPS):
        for family, op in table.items():
            assert isinstance(op, interface.FamilyOp) and op.family is family
            for device in interface.DEVICES:
                assert device in op.devices, (name, family, device)
            for mode in interface.MODES:
                assert mode in op.modes, (name, family, mode)
            for why in (*op.devices.values(), *op.modes.values()):
                assert why is None or (isinstance(why, str) and len(why) > 10), (name, family, why)


def test_the_fused_backends_run_nothing_under_a_transform():
    """No fused op has batching or forward-derivative rules: each says so, and the reference runs."""
    for name in ("native", "triton"):
        for op in (*backends.BACKENDS[name].OPS.values(), *backends.BACKENDS[name].LIST_OPS.values()):
            assert op.modes["transform"] == interface.NO_TRANSFORMS


def test_plan_gives_the_reason_it_runs_the_reference():
    x = torch.randn(3)
    with fastgan.use_backend("torch"):
        op, why = backends.plan(Family.PAIR, [x, x])
        assert op is backends.BACKENDS["torch"].OPS[Family.PAIR] and why == ""
        op, why = backends.plan(Family.PAIR, [x, x], lists=True)
        assert op is None and "no pair list op" in why
    reference_op = backends.BACKENDS["torch"].OPS[Family.DIVERGENCE]
    if "native" in FUSED:
        with fastgan.use_backend("native"):
            op, why = backends.plan(Family.PAIR, [x, x.double()], lists=True)
            assert op is None and "several dtypes" in why
            assert backends.plan(Family.DIVERGENCE, [x])[0] is backends.BACKENDS["native"].OPS[Family.DIVERGENCE]
            seen = []
            torch.func.grad(lambda a: (seen.append(backends.plan(Family.DIVERGENCE, [a])), a.sum())[1])(x)
            assert seen[0][0] is reference_op and "torch.func" in seen[0][1]


def test_info_ops_prints_every_family_and_every_reason(capsys):
    from fastgan import cli
    assert cli.main(["info", "--ops"]) == 0
    out = capsys.readouterr().out
    for family in Family:
        assert f"\n{family.value} " in out
    for backend in backends.BACKENDS.values():
        for op in (*backend.OPS.values(), *backend.LIST_OPS.values()):
            for why in (*op.devices.values(), *op.modes.values()):
                assert why is None or why in out


# --------------------------------------------------------------------------- the compiled graph

def _ops_in_compiled_graph(fn, args):
    """The ``namespace::op`` of every operator in the forward and backward graphs that
    ``torch.compile(fullgraph=True)`` produces for ``fn(*args)`` and its gradient."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    seen = set()

    def record(gm, example_inputs):
        for node in gm.graph.nodes:
            if node.op == "call_function" and hasattr(node.target, "namespace"):
                seen.add(f"{node.target.namespace}::{node.target._opname}")
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=aot_autograd(fw_compiler=record, bw_compiler=record), fullgraph=True)
    out = compiled(*args)
    torch.autograd.grad(out, [a for a in args if a.requires_grad])
    return seen


def _one_per_family():
    firsts = {}
    for name in CASES:
        firsts.setdefault(OPS[name].family, name)
    return list(firsts.values())


def _graph_cases():
    cases = []
    for backend in FUSED:
        names = list(CASES) if (backend == "native" or FULL) else _one_per_family()
        cases += [(backend, name) for name in names]
    return cases


@pytest.mark.parametrize("backend,name", _graph_cases())
def test_every_registry_op_compiles_to_a_fastgan_op(backend, name):
    case = CASES[name]
    xs = [x.requires_grad_(grad) for x, grad in
          zip(case.make_inputs([(4, 6)] * len(case.args), torch.float32), case.spec.grad_args)]
    fn = getattr(F, name)
    with fastgan.use_backend(backend):
        seen = _ops_in_compiled_graph(lambda *a: fn(*a, **case.fixed), xs)
    ours = [op for op in seen if op.split("::")[0] in ("fastgan", "fastgan_native")]
    assert len(ours) >= 2, (name, sorted(seen))  # a forward and a backward op


@pytest.mark.parametrize("backend", FUSED)
def test_lists_compile_to_one_list_op(backend):
    gen = torch.Generator().manual_seed(0)
    reals = [torch.randn(s, generator=gen, requires_grad=True) for s in ((4, 3), (7,), (2, 2, 2))]
    fakes = [torch.randn(s, generator=gen, requires_grad=True) for s in ((4, 3), (5,), (3,))]
    with fastgan.use_backend(backend):
        seen = _ops_in_compiled_graph(lambda *a: F.hinge_d_loss(list(a[:3]), list(a[3:])), reals + fakes)
    expect = {"native": "fastgan_native::pair_list_fwd", "triton": "fastgan::triton_pair_list"}[backend]
    assert expect in seen, sorted(seen)


# --------------------------------------------------------------------------- the shape of the tree

SOURCES = sorted({p.resolve() for d in ("fastgan", "kernels", "csrc") for p in (ROOT / d).rglob("*")
                  if p.suffix in (".py", ".cpp", ".cu", ".h") and "compile_check" not in p.parts})


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_over_600_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= 600, f"{path.relative_to(ROOT)} has {n} lines: split it by family"


def test_no_private_name_is_imported_from_another_of_our_modules():
    bad = []
    for path in SOURCES:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("fastgan")):
                bad += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad
