"""What the compiler emits for the Triton kernels, checked without a GPU, and the values
of the full-tile / tail split those checks rely on.

1. PTX (``python -m fastgan.tools.aot --ptx``): every kernel of ``kernels/``, compiled
   for sm_90 and sm_80 the way the runtime JIT specialises a launch (pointers 16-byte
   aligned, int sizes divisible by 16 or not).  Fails if a kernel spills, or if a
   bulk load (or elementwise store) has no 128-bit form, for any size: tiles inside a
   side load and store without a mask, only the tail tile is masked.
2. Values around the tile boundaries (0, 1, BLOCK-1, BLOCK, BLOCK+1, sides of
   different sizes, the per-side tiling's extra tile) through the interpreter,
   against the float64 reference.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

from fastgan.tools import aot  # noqa: E402
from fastgan.tools.cases import CASES  # noqa: E402

from .conftest import DEVICES, runnable  # noqa: E402
from .helpers import check_against_reference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PTX_TABLE = os.path.join(ROOT, "benchmarks", "results", "ptx-sm90-sm80.md")


# --------------------------------------------------------------------------- 1. PTX

@pytest.fixture(scope="module")
def ptx_rows(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = tmp_path_factory.mktemp("ptx") / "ptx.json"
    proc = subprocess.run([sys.executable, "-m", "fastgan.tools.aot", "--ptx", "--arch", "90", "--arch", "80",
                           "--json", str(out)], env=env, capture_output=True, text=True, timeout=1800)
    print(proc.stdout)
    rows = json.loads(out.read_text()) if out.exists() else []
    return proc, rows


@pytest.mark.aot
def test_ptx_every_kernel_both_archs(ptx_rows):
    proc, rows = ptx_rows
    assert rows, proc.stdout + proc.stderr[-4000:]
    kernels = aot.ptx_kernels()
    assert set(kernels) >= {"pair_fwd", "pair_bwd", "sum_partials", "bce_fwd", "bce_bwd", "sqnorm_partial",
                            "penalty_finish", "penalty_bwd", "multi_pair_fwd", "multi_pair_bwd", "multi_fm_fwd",
                            "multi_fm_bwd", "multi_sum", "side_sums", "sum_rows", "ragan", "ragan_bwd",
                            "rpgan_fwd", "rpgan_bwd", "gkl_partial", "gkl_bwd", "dist_stats", "dist_fwd",
                            "dist_finish", "dist_bwd"}
    for kernel in kernels:
        for arch in ("sm_90", "sm_80"):
            mine = [r for r in rows if r["kernel"].split("[")[0] == kernel and r["arch"] == arch]
            assert mine, f"no PTX rows for {kernel} on {arch}"
            # both an all-divisible and a not-divisible specialisation
            assert {("÷16" in r["sizes"] and "not" not in r["sizes"]) for r in mine} == {True, False}, kernel
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]][:3]


@pytest.mark.aot
def test_ptx_128_bit_accesses_and_no_spills(ptx_rows):
    """The exit status and ``check_ptx``: no spills; a 128-bit form of every bulk load
    (and elementwise store) for every size."""
    proc, rows = ptx_rows
    problems = aot.check_ptx(rows)
    assert not problems, "\n".join(problems)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]


@pytest.mark.aot
def test_ptx_every_kernel_expects_128_bit(ptx_rows):
    """Every PTX row of every kernel expects 128-bit loads (and stores where the kernel writes
    a tensor), for sizes divisible by 16 and not, except the kernels ``aot.NARROW_OK``
    declares with a reason; so a kernel that loses its vector accesses fails
    ``test_ptx_128_bit_accesses_and_no_spills``."""
    _, rows = ptx_rows
    kernels = set(aot.ptx_kernels())
    assert set(aot.NARROW_OK) <= kernels, set(aot.NARROW_OK) - kernels
    assert all(reason.strip() for reason in aot.NARROW_OK.values())
    for r in rows:
        kernel = r["kernel"].split("[")[0]
        if kernel in aot.NARROW_OK:
            assert not r["expect"], r["kernel"]
        else:
            assert "ld" in r["expect"], (r["kernel"], r["sizes"])


def test_check_coverage_rejects_narrow_kernels():
    good = {"kernel": "dist_bwd[fp32,x]", "arch": "sm_90", "ok": True, "local": 0, "v4": True, "ld": {}, "st": {}}
    assert aot.check_coverage([good]) == []
    assert len(aot.check_coverage([dict(good, v4=False)])) == 1
    assert aot.check_coverage([dict(good, kernel="dist_finish[fp32,x]", v4=False)]) == []
    assert "spills" in aot.check_coverage([dict(good, local=8)])[0]


@pytest.mark.aot
def test_ptx_tail_is_the_only_narrow_path(ptx_rows):
    """Sizes not divisible by 16: the full tiles keep the divisible specialisation's
    128-bit accesses (half of them: one path of two), the tail adds the narrow ones."""
    _, rows = ptx_rows
    for r in rows:
        if r["kernel"].startswith(("pair_", "bce_")) and "not" in r["sizes"]:
            twin = next(q for q in rows if q["kernel"] == r["kernel"] and q["arch"] == r["arch"]
                        and "not" not in q["sizes"])
            wide, wide_div = aot.by_width(r["ld"]).get(128, 0), aot.by_width(twin["ld"]).get(128, 0)
            assert wide >= wide_div // 2 > 0, (r["kernel"], r["sizes"], r["ld"], twin["ld"])
            assert sum(n for b, n in aot.by_width(r["ld"]).items() if b < 128) > 0, r  # the masked tail


def test_jit_specialisation_matches_triton():
    """``aot.int_specialisation`` is triton's own rule for int arguments."""
    try:
        from triton._C.libtriton import native_specialize_impl
        from triton.backends.compiler import BaseBackend
    except ImportError:
        pytest.skip("this triton has no native_specialize_impl")
    for v in (0, 1, 2, 15, 16, 17, 48, 100, 1024, 2 ** 20 + 1, 2 ** 30):
        kind, spec = native_specialize_impl(BaseBackend, v, False, True, True)
        want = "1" if kind == "constexpr" else spec
        assert aot.int_specialisation(v) == want, v


def test_access_width_parsing():
    ptx = """
    @%p1 ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];
    ld.global.L1::evict_last.b32 { %r5 }, [ %rd2 + 0 ];
    @%p2 st.global.v2.b64 [ %rd3 + 0 ], { %rd4, %rd5 };
    st.global.b16 [ %rd6 + 0 ], { %rs1 };
    ld.shared.v4.b32 { %r1, %r2, %r3, %r4 }, [ %r9 + 0 ];
    """
    forms = aot.access_widths(ptx)
    assert forms == {"ld": {"v4.b32": 1, "b32": 1}, "st": {"v2.b64": 1, "b16": 1}}
    assert aot.by_width(forms["ld"]) == {128: 1, 32: 1}
    assert aot.by_width(forms["st"]) == {128: 1, 16: 1}


def test_occupancy_model():
    # 32 registers x 4 warps: 64 warps (the warp limit); 80 registers: 2560 per warp, 25 warps -> 6 blocks
    assert aot.occupancy_h100(32, 4)["warps"] == 64
    assert aot.occupancy_h100(80, 4) == {"blocks": 6, "warps": 24, "occupancy": 24 / 64, "limit": "registers"}
    assert aot.occupancy_h100(255, 4)["warps"] == 8
    assert aot.occupancy_h100(32, 4, shared=100_000)["limit"] == "shared"


def test_ptx_table_is_committed():
    """benchmarks/results/ptx-sm90-sm80.md, written by `python -m fastgan.tools.aot --ptx --coverage
    --markdown`, has every kernel on both archs."""
    text = open(PTX_TABLE, encoding="utf-8").read()
    assert "python -m fastgan.tools.aot --ptx --coverage --markdown" in text
    for kernel in aot.ptx_kernels():
        for arch in ("sm_90", "sm_80"):
            assert any(line.startswith(f"| {kernel}[") and f"| {arch} |" in line for line in text.splitlines()), \
                (kernel, arch)
    assert "COMPILE FAILED" not in text
    # the coverage of every fp32 specialisation (`--coverage`): none without 128-bit accesses
    # outside the declared finishers
    section = text.split("## Every fp32 specialisation", 1)[1].split("\n\n| kernel | arch | specialisations", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and "sm_90" in line]
    covered = {cells[1].strip(): int(cells[4]) for cells in rows}
    assert set(covered) == set(aot.ptx_kernels()), set(aot.ptx_kernels()) ^ set(covered)
    assert {k: n for k, n in covered.items() if n and k not in aot.NARROW_OK} == {}


# --------------------------------------------------------------------------- 2. values around tile boundaries

BLOCK = 1024  # kernels/losses.py BLOCK (checked below)

# (real, fake) sizes: empty, one, a tile less / exactly / more, both sides with a tail whose
# per-side tiles need one more tile than the concatenation (the last program's extra
# tile), a single program with 33 tiles, several programs with an extra tile
PAIR_SIZES = [(0, 1), (1, 0), (1, 1), (BLOCK - 1, BLOCK - 1), (BLOCK, BLOCK), (BLOCK + 1, BLOCK + 1),
              (BLOCK - 1, BLOCK + 1), (BLOCK, 1), (1, BLOCK), (7, 2 * BLOCK + 3), (100, 32 * BLOCK - 100),
              (1500, 33000)]
ONE_SIZES = [0, 1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3, 32 * BLOCK + 1]


def _backend_ok(device):
    if not runnable("triton", device):
        pytest.skip(f"triton does not run on {device} in this process")


def test_block_matches_kernels():
    from fastgan.kernels import losses
    assert losses.BLOCK == BLOCK


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("sizes", PAIR_SIZES, ids=lambda s: f"{s[0]}+{s[1]}")
@pytest.mark.parametrize("name", ["hinge_d_loss", "bce_d_loss"])
@pytest.mark.parametrize("device", DEVICES)
def test_triton_pair_tile_boundaries(name, sizes, reduction, device):
    _backend_ok(device)
    spec = CASES[name]
    nr, nf = sizes
    gen = torch.Generator().manual_seed(nr * 7919 + nf)
    tensors = spec.make_inputs([(nr,), (nf,)], torch.float32, device, gen)
    if reduction == "mean" and 0 in sizes:
        pytest.skip("mean over an empty side is nan (tests/test_errors.py)")
    check_against_reference(spec, "triton", tensors, spec.options[-1], reduction, gen)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK, BLOCK + 1, 32 * BLOCK + 5])
@pytest.mark.parametrize("device", DEVICES)
def test_triton_generator_tile_boundaries(n, reduction, device):
    _backend_ok(device)
    spec = CASES["bce_g_loss"]
    gen = torch.Generator().manual_seed(n)
    tensors = spec.make_inputs([(n,)], torch.bfloat16, device, gen)
    check_against_reference(spec, "triton", tensors, {}, reduction, gen)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("n", ONE_SIZES)
@pytest.mark.parametrize("device", DEVICES)
def test_triton_bce_dropin_tile_boundaries(n, reduction, device):
    _backend_ok(device)
    if n == 0 and reduction == "mean":
        pytest.skip("mean of nothing")
    spec = CASES["binary_cross_entropy_with_logits"]
    gen = torch.Generator().manual_seed(n + 1)
    x, t = spec.make_inputs([(n,)], torch.float32, device, gen)[:2]
    w = (torch.rand(n, generator=gen) + 0.5).to(device)
    pw = (torch.rand(n, generator=gen) + 0.5).to(device)
    for tensors, opts in (([x, t], {}), ([x, t], {"weight": w, "pos_weight": pw})):
        check_against_reference(spec, "triton", tensors, opts, reduction, gen)


# (B, D): every column block; rows a multiple of ROWS and not; D a multiple of BLOCK_D and not
PENALTY_SHAPES = [(1, 1), (3, 15), (64, 16), (65, 17), (17, 64), (5, 255), (4, 256), (3, 257), (2, 1023),
                  (2, 1024), (3, 1025), (2, 3 * 1024 + 7), (1030, 1030)]


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("shape", PENALTY_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("device", DEVICES)
def test_triton_penalty_tile_boundaries(shape, reduction, device):
    _backend_ok(device)
    spec = CASES["grad_norm_penalty"]
    gen = torch.Generator().manual_seed(shape[0] * 4099 + shape[1])
    tensors = spec.make_inputs([shape], torch.float32, device, gen)
    check_against_reference(spec, "triton", tensors, {"center": 1.0}, reduction, gen)


def test_check_ptx_rejects_spills_and_narrow_accesses():
    """``check_ptx`` flags what the suite must reject (rows as ``_ptx_one`` writes them)."""
    good = {"kernel": "k[x]", "arch": "sm_90", "sizes": "n÷16", "ok": True, "local": 0, "expect": ["ld", "st"],
            "ld": {"v4.b32": 2, "b32": 8}, "st": {"v4.b32": 2}}
    assert aot.check_ptx([good]) == []
    spill = dict(good, local=16)
    narrow_ld = dict(good, ld={"b32": 16})
    narrow_st = dict(good, st={"b16": 8})
    failed = dict(good, ok=False, error="CompilationError")
    problems = aot.check_ptx([spill, narrow_ld, narrow_st, failed])
    assert len(problems) == 4
    assert "spills" in problems[0] and "load" in problems[1] and "store" in problems[2] and "compile" in problems[3]
    # a reduction's one scalar store is not required to be 128-bit
    assert aot.check_ptx([dict(good, expect=["ld"], st={"b32": 1})]) == []
