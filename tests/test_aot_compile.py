"""Every Triton kernel specialisation the launchers can produce compiles for real GPU
targets (sm_90, sm_80) on this CPU-only machine; registers and spills are recorded.

The interpreter accepts programs the compiler rejects, so this is the check that a
kernel would build on a GPU.  The list comes from ``kernels.*.specializations()``,
the constants the launchers use, so a new kernel cannot be forgotten."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.aot
def test_every_specialisation_compiles_for_sm90_and_sm80(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out_json = tmp_path / "aot.json"
    proc = subprocess.run([sys.executable, "-m", "fastgan.tools.aot", "--arch", "90", "--arch", "80",
                           "--json", str(out_json)], env=env, capture_output=True, text=True, timeout=3000)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    rows = json.loads(out_json.read_text())
    names = {r["kernel"] for r in rows}
    # every kernel of the launchers is in the list
    for prefix in ("pair_fwd[", "pair_bwd[", "sum_partials[", "bce_fwd[", "bce_bwd[", "sqnorm_partial[",
                   "penalty_finish[", "penalty_bwd["):
        assert any(n.startswith(prefix) for n in names), prefix
    assert {r["arch"] for r in rows} == {"sm_90", "sm_80"}
    assert all(r["ok"] and r["reg"] > 0 for r in rows)
    # no specialisation spills (local memory per thread; tests/test_ptx.py checks the
    # aligned specialisations the runtime JIT makes, this the unaligned worst case)
    spills = [(r["kernel"], r["arch"], r["local"]) for r in rows if r["local"] != 0]
    assert not spills, spills


def test_python_dash_m_entry_point_starts():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fastgan.tools.aot", "--help"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "python -m fastgan.tools.aot" in proc.stdout


def test_launchers_only_use_listed_specialisations():
    """The launch plan's constants are the ones the AOT list enumerates."""
    from fastgan.kernels import losses as k
    from fastgan.registry import Kind
    specs = list(k.specializations())
    blocks = {ce.get("BLOCK") for _, _, _, ce in specs}
    assert blocks == {k.BLOCK, k.PARTIALS_BLOCK}
    kinds = {ce["KIND"] for _, _, _, ce in specs if "KIND" in ce}
    assert kinds == {int(kind) for kind in Kind}
    for total in (0, 1, k.SINGLE_PROGRAM_MAX, k.SINGLE_PROGRAM_MAX + 1, 2 ** 24, 2 ** 31 + 7):
        plan = k.reduce_plan(total)
        assert plan.programs * plan.iters * k.BLOCK >= total
        assert plan.programs <= k.MAX_PROGRAMS
        assert (plan.programs - 1) * plan.iters * k.BLOCK < max(total, 1)  # no empty program
