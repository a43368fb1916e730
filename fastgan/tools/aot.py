"""Ahead-of-time GPU compile of every Triton kernel specialisation fastgan can launch.

The Triton interpreter accepts programs the real compiler rejects, so this
compiles each entry of ``kernels.*.specializations()`` (the same constants the
launchers use) to PTX and a cubin for real GPU targets, on a machine with no
GPU, and reads registers and local memory (spills) of each cubin with
cuobjdump.  Run it in a process without ``TRITON_INTERPRET``:

    python -m fastgan.tools.aot --arch 90 --arch 80 --json out.json

Exit status 1 if any specialisation fails to compile.  ``--ptx`` compiles instead a representative set of every kernel (fp32 and bf16, reduce
and elementwise modes) as the runtime JIT specialises a launch (pointers 16-byte
aligned, integer arguments divisible by 16 marked so, 1 made constants; sizes divisible
by 16 and not), counts the PTX's global loads and stores by width (128-bit, 64, 32 and
narrower), reads registers and spills and models the occupancy on an H100:

    python -m fastgan.tools.aot --ptx --coverage --markdown benchmarks/results/ptx-sm90-sm80.md

``--coverage`` adds every fp32 specialisation (all constexpr combinations) compiled for
sm_90 with aligned pointers and sizes not divisible by 16, counting those without any
128-bit global access (``vector_coverage``; only the kernels of ``NARROW_OK`` may).

Exit status 1 if a specialisation fails to compile, spills, or misses an
expected 128-bit access (``check_ptx``, ``check_coverage``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List

from .aot_text import COVERAGE_PREAMBLE, PTX_PREAMBLE
from .args import positive_int


def _entries():
    from ..kernels import divergence, losses, multi, penalty, relativistic
    for mod in (losses, penalty, multi, relativistic, divergence):
        yield from mod.specializations()


def _cuobjdump() -> str:
    import triton
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    return path if os.path.exists(path) else "cuobjdump"


def _resources(cubin: bytes) -> Dict[str, int]:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        out = subprocess.run([_cuobjdump(), "--dump-resource-usage", path], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    finally:
        os.unlink(path)
    res = {}
    for key in ("REG", "STACK", "LOCAL", "SHARED"):
        m = re.search(rf"\b{key}:(\d+)", out)
        res[key.lower()] = int(m.group(1)) if m else -1
    return res


def _compile_one(args):
    index, arch = args
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    name, fn, signature, constexprs = list(_entries())[index]
    t0 = time.perf_counter()
    row = {"kernel": name, "arch": f"sm_{arch}"}
    try:
        sig = dict(signature)
        for k in constexprs:
            sig[k] = "constexpr"
        src = ASTSource(fn=fn, signature=sig, constexprs=dict(constexprs))
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": _num_warps()})
        row.update(ok=True, **_resources(compiled.asm["cubin"]), ptx_bytes=len(compiled.asm["ptx"]))
    except Exception as exc:  # report every failure, not only the first
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


# --------------------------------------------------------------------------- PTX: the JIT's specialisations
#
# triton's JIT (runtime/jit.py, ``specialize_impl``; backends/compiler.py) marks a
# tensor argument whose data_ptr % 16 == 0 and an int argument whose value % 16 == 0
# with the attribute ``tt.divisibility`` 16 (``parse_attr("D")``), turns an int equal
# to 1 into a constant, and leaves float arguments and ``do_not_specialize``
# parameters alone.  ``jit_specialisation`` reproduces that for given argument values,
# so the PTX compiled here is the PTX a launch with those values gets on a GPU.

H100 = {"regs_per_sm": 65536, "max_warps_per_sm": 64, "max_threads_per_sm": 2048, "max_blocks_per_sm": 32,
        "reg_alloc_unit": 256, "max_regs_per_thread": 255, "shared_per_sm": 233472,
        "shared_reserved_per_block": 1024}


def int_specialisation(value: int) -> str:
    """triton's rule for an int argument: ``"1"`` (becomes a constant), ``"D"``
    (divisible by 16: ``tt.divisibility`` 16) or ``""``."""
    if value == 1:
        return "1"
    return "D" if value % 16 == 0 else ""


def jit_specialisation(fn, signature: dict, constexprs: dict, values: dict, aligned: bool = True):
    """``(signature, constexprs, attrs)`` for ``ASTSource`` as the JIT builds them for a
    launch with these int ``values`` (pointers ``aligned`` to 16 bytes or not)."""
    names = list(fn.arg_names)
    dont = set()
    for i, p in enumerate(getattr(fn, "params", [])):
        if getattr(p, "do_not_specialize", False):
            dont.add(names[i])
    sig, ce, attrs = dict(signature), dict(constexprs), {}
    for k, ty in signature.items():
        idx = (names.index(k),)
        if k in dont or ty.startswith("fp") or ty.startswith("bf"):
            continue
        if ty.startswith("*"):
            if aligned:
                attrs[idx] = [["tt.divisibility", 16]]
            continue
        spec = int_specialisation(int(values[k]))
        if spec == "1":
            sig[k] = "constexpr"
            ce[k] = 1
        elif spec == "D":
            attrs[idx] = [["tt.divisibility", 16]]
    for k in constexprs:
        sig[k] = "constexpr"
    return sig, ce, attrs


_WIDTH = re.compile(r"\b(ld|st)\.global((?:\.[A-Za-z0-9_:]+)*)")


def access_widths(ptx: str) -> Dict[str, Dict[str, int]]:
    """``{"ld": {"v4.b32": 4, "b32": 8}, "st": {...}}``: the global loads and stores of
    the PTX by form (cache qualifiers dropped); ``bits_of`` gives a form's width."""
    out = {"ld": {}, "st": {}}
    for op, quals in _WIDTH.findall(ptx):
        parts = [q for q in quals.split(".") if q and (re.fullmatch(r"v\d+", q) or re.fullmatch(r"[bfsu]\d+", q))]
        form = ".".join(parts)
        out[op][form] = out[op].get(form, 0) + 1
    return out


def bits_of(form: str) -> int:
    vec, bits = 1, 0
    for q in form.split("."):
        if q.startswith("v"):
            vec = int(q[1:])
        elif q[:1] in "bfsu" and q[1:].isdigit():
            bits = int(q[1:])
    return vec * bits


def by_width(forms: Dict[str, int]) -> Dict[int, int]:
    out: Dict[int, int] = {}
    for form, n in forms.items():
        out[bits_of(form)] = out.get(bits_of(form), 0) + n
    return out


def occupancy_h100(regs: int, num_warps: int, shared: int = 0) -> dict:
    """Resident warps per SM of an H100 (CUDA occupancy calculator's rules): registers
    allocated per warp in units of 256 (per thread rounded up to 8), 65536 per SM; at
    most 64 warps, 2048 threads, 32 blocks and 228 KiB shared memory (+1 KiB reserved
    per block) per SM."""
    h = H100
    per_warp = -(-max(regs, 1) * 32 // h["reg_alloc_unit"]) * h["reg_alloc_unit"]
    limits = {"registers": (h["regs_per_sm"] // per_warp) // num_warps,
              "warps": h["max_warps_per_sm"] // num_warps,
              "threads": h["max_threads_per_sm"] // (32 * num_warps),
              "blocks": h["max_blocks_per_sm"]}
    if shared > 0:
        limits["shared"] = h["shared_per_sm"] // (shared + h["shared_reserved_per_block"])
    blocks = min(limits.values())
    warps = blocks * num_warps
    return {"blocks": blocks, "warps": warps, "occupancy": warps / h["max_warps_per_sm"],
            "limit": min(limits, key=lambda k: limits[k])}


def _ptx_entries():
    """``(name, sizes, fn, signature, constexprs, int values, expect)``: each kernel of
    ``kernels/`` (fp32 and bf16; reduce and elementwise; hinge and bce pair terms)
    for example sizes whose every size is divisible by 16, and sizes that are not.
    ``expect``: accesses that must be 128-bit ("ld", "st")."""
    from ..kernels import divergence as kd, losses as kl, multi as km, penalty as kp, relativistic as kr
    pair_sizes = (("n÷16: 2^20+2^20", 2 ** 20, 2 ** 20), ("n_real÷16, n_fake not: 2^20+(2^20+1)", 2 ** 20, 2 ** 20 + 1),
                  ("n not÷16: (2^20+1)+(2^20+1)", 2 ** 20 + 1, 2 ** 20 + 1))
    one_sizes = (("n÷16: 2^20", 2 ** 20), ("n not÷16: 2^20+1", 2 ** 20 + 1))
    # (B, D) per column block of the penalty: every size divisible by 16, then not
    pen_sizes = {1024: (("B,D÷16: 64x3x64x64", 64, 12288), ("B,D not÷16: 100x3x30x30", 100, 2700)),
                 64: (("B,D÷16: 256x48", 256, 48), ("B,D not÷16: 100x50", 100, 50))}
    # (R, D) rows of the divergences: vocabulary-sized rows split across programs, short rows packed
    div_sizes = {1024: (("R,D÷16: 64x32000", 64, 32000), ("R,D not÷16: 100x30001", 100, 30001)),
                 64: (("R,D÷16: 256x48", 256, 48), ("R,D not÷16: 100x50", 100, 50))}

    def keep(name):
        dt_ok = re.search(r"[\[,](fp32|bf16)[,\]]", name) or "fp32->fp32" in name or "fp32->bf16" in name
        if not dt_ok or ",final=1" in name:
            return False
        if name.startswith("pair_") and not (name.startswith("pair_fwd[hinge") or name.startswith("pair_bwd[hinge")
                                             or name.startswith("pair_fwd[bce") or name.startswith("pair_bwd[bce")):
            return False
        if name.startswith("bce_") and not ("w=0,pw=0" in name or "w=1,pw=1" in name):
            return False
        if name.startswith("penalty_") and ("one_sided=1" in name or (
                "center0=1" in name and not name.startswith("penalty_finish"))):
            return False
        if "block_d=" in name and not ("block_d=1024" in name or "block_d=64" in name):
            return False
        if name.startswith("multi_pair_") and not name.startswith(("multi_pair_fwd[hinge", "multi_pair_bwd[hinge",
                                                                   "multi_pair_fwd[bce", "multi_pair_bwd[bce")):
            return False
        if ("need=" in name and "need=11" not in name) or "gen=1" in name:
            return False  # one gradient of two, the generator's sign: the same accesses
        if name.startswith("dist_fwd") and "split=1" in name and "block_d=1024" not in name:
            return False  # rows of D <= 256 are never split
        if name.startswith(("gkl_bwd", "dist_bwd")) and "elementwise_up=1" in name:
            return False  # one more row-vector load than elementwise_up=0
        if name.startswith("dist_finish") and "reduce=0" in name:
            return False
        return True

    specs = [s for mod in (kl, kp, km, kr, kd) for s in mod.specializations() if keep(s[0])]
    for name, fn, sig, ce in specs:
        kernel = name.split("[")[0]
        if kernel == "pair_fwd":
            for label, nr, nf in pair_sizes:
                plan = kl.reduce_plan(nr + nf)
                iters = plan.iters if ce["REDUCE"] else 1
                yield (name, label, fn, sig, ce, {"n_real": nr, "n_fake": nf, "iters": iters},
                       ("ld",) if ce["REDUCE"] else ("ld", "st"))
        elif kernel == "pair_bwd":
            for label, nr, nf in pair_sizes:
                yield name, label, fn, sig, ce, {"n_real": nr, "n_fake": nf}, ("ld", "st")
        elif kernel == "bce_fwd":
            for label, n in one_sizes:
                iters = kl.reduce_plan(n).iters if ce["REDUCE"] else 1
                yield name, label, fn, sig, ce, {"n": n, "iters": iters}, ("ld",) if ce["REDUCE"] else ("ld", "st")
        elif kernel == "bce_bwd":
            for label, n in one_sizes:
                yield name, label, fn, sig, ce, {"n": n}, ("ld", "st")
        elif kernel == "sum_partials":
            for label, n in one_sizes:
                yield name, label.split(":")[0] + f": {kl.reduce_plan(n).programs} partials", fn, sig, ce, \
                    {"n": kl.reduce_plan(n).programs}, ("ld",)
        elif kernel in ("sqnorm_partial", "penalty_bwd"):
            for label, B, D in pen_sizes[ce["BLOCK_D"]]:
                plan = kp.row_plan(B, D)
                assert plan.block_d == ce["BLOCK_D"], (name, B, D)
                vals = {"B": B, "D": D, "S": plan.splits, "iters": plan.iters}
                expect = ("ld",) if kernel == "sqnorm_partial" else ("ld", "st")
                yield name, label, fn, sig, ce, vals, expect
        elif kernel in ("multi_pair_fwd", "multi_pair_bwd", "multi_fm_fwd", "multi_fm_bwd"):
            # the sizes are in the table, not arguments (E and iters never specialise): the
            # specialisation is ALIGNED, every address 16-byte aligned (128-bit full tiles) or not
            # (ALIGNED=0 checks each entry's addresses in the kernel: 128-bit tiles for the aligned ones)
            vals = {"E": 54, "iters": 3}
            expect = ("ld",) if kernel.endswith("_fwd") else ("ld", "st")
            if ce["ALIGNED"]:
                yield (name, "÷16: 54 entries, every address 16-byte aligned (ALIGNED=1)", fn, sig, ce, vals, expect)
            else:
                yield name, "not÷16: an address not 16-byte aligned (ALIGNED=0)", fn, sig, ce, vals, expect
        elif kernel == "multi_sum":
            # the partials of one discriminator start anywhere in the buffer: an aligned body, a narrow head
            yield name, "÷16: 8 discriminators", fn, sig, ce, {}, ("ld",)
            yield name, "not÷16: 8 discriminators", fn, sig, ce, {}, ("ld",)
        elif kernel == "penalty_finish":
            for label, B, D in pen_sizes[1024]:
                yield name, label, fn, sig, ce, {"B": B, "S": kp.row_plan(B, D).splits}, ()
        elif kernel in ("gkl_partial", "gkl_bwd", "dist_stats", "dist_fwd", "dist_bwd", "dist_finish"):
            for label, R, D in div_sizes[1024 if kernel == "dist_finish" else ce["BLOCK_D"]]:
                plan = kd.row_plan(R, D)
                rows_arg = "B" if kernel.startswith("gkl") else "R"
                vals = {rows_arg: R, "D": D, "S": plan.splits, "iters": plan.iters}
                vals = {k: v for k, v in vals.items() if k in sig}
                expect = {"gkl_partial": ("ld",), "dist_stats": ("ld",), "dist_fwd": ("ld",),
                          "gkl_bwd": ("ld", "st"), "dist_bwd": ("ld", "st"), "dist_finish": ()}[kernel]
                yield name, label, fn, sig, ce, vals, expect
        elif kernel in ("side_sums", "ragan", "ragan_bwd"):
            for label, nr, nf in pair_sizes:
                plan = kl.reduce_plan(nr + nf)
                if kernel == "ragan_bwd":
                    vals = {"n_real": nr, "n_fake": nf, "b_first": 0, "b_stop": kl.elementwise_grid(nr + nf) + 1}
                else:
                    reduce_ = kernel == "side_sums" or ce["MODE"] != kr.MODE_TERMS
                    vals = {"n_real": nr, "n_fake": nf, "iters": plan.iters if reduce_ else 1,
                            "stride": plan.programs}
                expect = ("ld", "st") if kernel == "ragan_bwd" or ce.get("MODE") == kr.MODE_TERMS else ("ld",)
                yield name, label, fn, sig, ce, vals, expect
        elif kernel == "sum_rows":
            for label, n in one_sizes:
                programs = kl.reduce_plan(2 * n).programs
                yield name, label.split(":")[0] + f": 3 rows of {programs} partials", fn, sig, ce, \
                    {"n": programs}, ("ld",)
        elif kernel == "rpgan_fwd":
            for label, n in one_sizes:
                iters = kl.reduce_plan(n).iters if ce["REDUCE"] else 1
                yield name, label, fn, sig, ce, {"n": n, "iters": iters}, ("ld",) if ce["REDUCE"] else ("ld", "st")
        elif kernel == "rpgan_bwd":
            for label, n in one_sizes:
                yield name, label, fn, sig, ce, {"n": n}, ("ld", "st")
        else:
            raise AssertionError(f"no PTX sizes for {name}: add them to fastgan.tools.aot._ptx_entries")


# kernels allowed no 128-bit access, with the reason (every other kernel's every PTX row
# expects 128-bit loads, and stores where it writes tensors)
NARROW_OK = {
    "penalty_finish": "a reduction-only finisher: one program reads the B·S row partials (a few kB) "
                      "in [rows, splits] tiles with the row stride S",
    "dist_finish": "a reduction-only finisher: one program reads the R·S·2 divergence partials "
                   "(interleaved A, B) in [rows, splits] tiles with the row stride 2·S",
}


def ptx_kernels() -> List[str]:
    """The kernels (``@triton.jit`` functions of kernels/ not starting with ``_``)."""
    from ..kernels import divergence as kd, losses as kl, multi as km, penalty as kp, relativistic as kr
    names = []
    for mod in (kl, kp, km, kr, kd):
        for k, v in vars(mod).items():
            # JITFunction, or InterpretedFunction under TRITON_INTERPRET=1: both wrap .fn
            fn = getattr(v, "fn", None)
            if (type(v).__name__ in ("JITFunction", "InterpretedFunction") and not k.startswith("_")
                    and getattr(fn, "__module__", None) == mod.__name__):
                names.append(k[:-len("_kernel")] if k.endswith("_kernel") else k)
    return sorted(set(names))


def _ptx_one(args):
    index, arch = args
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    name, sizes, fn, signature, constexprs, values, expect = list(_ptx_entries())[index]
    t0 = time.perf_counter()
    row = {"kernel": name, "sizes": sizes, "arch": f"sm_{arch}", "values": values, "expect": list(expect),
           "num_warps": _num_warps()}
    try:
        sig, ce, attrs = jit_specialisation(fn, signature, constexprs, values)
        row["divisible"] = sorted(k for k in signature if not signature[k].startswith("*")
                                  and (fn.arg_names.index(k),) in attrs)
        row["constant_1"] = sorted(k for k in values if ce.get(k) == 1 and k not in constexprs)
        compiled = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=ce, attrs=attrs),
                                  target=GPUTarget("cuda", arch, 32), options={"num_warps": _num_warps()})
        res = _resources(compiled.asm["cubin"])
        forms = access_widths(compiled.asm["ptx"])
        row.update(ok=True, **res, ld=forms["ld"], st=forms["st"],
                   occupancy_h100=occupancy_h100(res["reg"], _num_warps(), max(res["shared"], 0)))
    except Exception as exc:
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _fp32(name: str) -> bool:
    return bool(re.search(r"[\[,]fp32[,\]]", name) or "fp32->" in name)


NOT_DIVISIBLE = 4099  # an int argument not divisible by 16 (and not 1: no constant)


def _vector_one(args):
    """One fp32 specialisation of ``_entries()`` compiled for ``arch`` as the JIT specialises
    a launch with 16-byte aligned pointers and every int argument not divisible by 16:
    its global access forms, registers and spills."""
    index, arch = args
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    name, fn, signature, constexprs = [e for e in _entries() if _fp32(e[0])][index]
    row = {"kernel": name, "arch": f"sm_{arch}"}
    try:
        values = {k: NOT_DIVISIBLE for k, ty in signature.items() if ty[:1] in "iu"}
        sig, ce, attrs = jit_specialisation(fn, signature, constexprs, values)
        compiled = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=ce, attrs=attrs),
                                  target=GPUTarget("cuda", arch, 32), options={"num_warps": _num_warps()})
        forms = access_widths(compiled.asm["ptx"])
        row.update(ok=True, **_resources(compiled.asm["cubin"]), ld=forms["ld"], st=forms["st"],
                   v4=by_width(forms["ld"]).get(128, 0) + by_width(forms["st"]).get(128, 0) > 0)
    except Exception as exc:
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
    return row


def vector_coverage(archs=(90,), workers: int = 2) -> List[dict]:
    """Every fp32 specialisation of every kernel (``_entries()``), compiled as a launch with
    aligned pointers and sizes not divisible by 16: does it issue a 128-bit global access?"""
    n = sum(1 for e in _entries() if _fp32(e[0]))
    return _per_arch(_vector_one, n, archs, workers, chunksize=2)


def check_coverage(rows: List[dict]) -> List[str]:
    """A failed compile, a spill, or a specialisation without a 128-bit access outside ``NARROW_OK``."""
    problems = []
    for r in rows:
        where = f"{r['kernel']} {r['arch']} [fp32, aligned, sizes not ÷16]"
        if not r["ok"]:
            problems.append(f"{where}: does not compile: {r['error']}")
        elif r.get("local", 0) > 0:
            problems.append(f"{where}: spills ({r['local']} bytes of local memory per thread)")
        elif not r["v4"] and r["kernel"].split("[")[0] not in NARROW_OK:
            problems.append(f"{where}: no 128-bit global access ({r['ld']}, {r['st']})")
    return problems


def coverage_summary(rows: List[dict]) -> List[str]:
    """Per kernel: fp32 specialisations, how many have no 128-bit global access, registers, spills."""
    lines = ["| kernel | arch | fp32 specialisations | without 128-bit ld/st | registers | spills |",
             "|---|---|---|---|---|---|"]
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["kernel"].split("[")[0], r["arch"]), []).append(r)
    for (kernel, arch), rs in groups.items():
        ok = [r for r in rs if r["ok"]]
        regs = [r["reg"] for r in ok]
        lines.append(f"| {kernel} | {arch} | {len(rs)} | {sum(not r['v4'] for r in ok) + len(rs) - len(ok)} | "
                     f"{min(regs, default=0)}–{max(regs, default=0)} | {sum(r['local'] > 0 for r in ok)} |")
    return lines


def compile_ptx(archs=(90, 80), workers: int = 2) -> List[dict]:
    return _per_arch(_ptx_one, len(list(_ptx_entries())), archs, workers, chunksize=2)


def check_ptx(rows: List[dict]) -> List[str]:
    """What the suite rejects: a failed compile, local memory (spills), or an access
    expected 128-bit with none of that width (for every size: the full tiles load and
    store without a mask, so sizes not divisible by 16 keep them outside the tail)."""
    problems = []
    for r in rows:
        where = f"{r['kernel']} {r['arch']} [{r['sizes']}]"
        if not r["ok"]:
            problems.append(f"{where}: does not compile: {r['error']}")
            continue
        if r.get("local", 0) > 0:
            problems.append(f"{where}: spills ({r['local']} bytes of local memory per thread)")
        for op in r["expect"]:
            if by_width(r[op]).get(128, 0) == 0:
                problems.append(f"{where}: no 128-bit global {'load' if op == 'ld' else 'store'} ({r[op]})")
    return problems


def _forms(forms: Dict[str, int]) -> str:
    items = sorted(forms.items(), key=lambda kv: (-bits_of(kv[0]), kv[0]))
    return ", ".join(f"{n}× {f}" for f, n in items) or "–"


def ptx_summary(rows: List[dict]) -> List[str]:
    """Per kernel and arch: specialisations, how many have 128-bit loads (sizes divisible
    by 16 / not), registers, spills, the lowest modelled H100 occupancy."""
    lines = ["| kernel | arch | specialisations | 128-bit loads: sizes ÷16 | 128-bit loads: sizes not ÷16 | "
             "registers | spills | lowest H100 warps/SM |", "|---|---|---|---|---|---|---|---|"]
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["kernel"].split("[")[0], r["arch"]), []).append(r)
    for (kernel, arch), rs in groups.items():
        ok = [r for r in rs if r["ok"]]
        div = [r for r in ok if "not" not in r["sizes"]]
        nd = [r for r in ok if "not" in r["sizes"]]
        wide = lambda xs: sum(by_width(r["ld"]).get(128, 0) > 0 for r in xs)
        regs = [r["reg"] for r in ok]
        lines.append(f"| {kernel} | {arch} | {len(rs)} | {wide(div)}/{len(div)} | {wide(nd)}/{len(nd)} | "
                     f"{min(regs, default=0)}–{max(regs, default=0)} | {sum(r['local'] > 0 for r in ok)} | "
                     f"{min((r['occupancy_h100']['warps'] for r in ok), default=0)} |")
    return lines


def ptx_markdown(rows: List[dict]) -> str:
    lines = ptx_summary(rows) + ["", "| kernel | sizes (specialisation) | arch | global loads | global stores | "
                                     "128-bit ld / st | registers | spills (local B) | H100 occupancy (warps/SM) |",
                                 "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spec = "; ".join(x for x in (("÷16: " + ", ".join(r.get("divisible", []))) if r.get("divisible") else "",
                                     ("=1: " + ", ".join(r.get("constant_1", []))) if r.get("constant_1") else "") if x)
        sizes = f"{r['sizes']} [{spec}]" if spec else r["sizes"]
        if not r["ok"]:
            lines.append(f"| {r['kernel']} | {sizes} | {r['arch']} | COMPILE FAILED | | | | | |")
            continue
        occ = r["occupancy_h100"]
        lines.append(f"| {r['kernel']} | {sizes} | {r['arch']} | {_forms(r['ld'])} | {_forms(r['st'])} | "
                     f"{by_width(r['ld']).get(128, 0)} / {by_width(r['st']).get(128, 0)} | {r['reg']} | "
                     f"{r['local']} | {occ['occupancy']:.0%} ({occ['warps']}, {occ['limit']}) |")
    return "\n".join(lines) + "\n"


def _num_warps() -> int:
    from ..kernels import losses
    return losses.NUM_WARPS


def _per_arch(fn, n: int, archs, workers: int, chunksize: int) -> List[dict]:
    """``fn((index, arch))`` for every entry index and arch, in a worker pool unless
    ``workers <= 1``; rows in job order."""
    jobs = [(i, a) for a in archs for i in range(n)]
    if workers <= 1:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs, chunksize=chunksize))


def compile_all(archs=(90, 80), workers: int = 2) -> List[dict]:
    return _per_arch(_compile_one, len(list(_entries())), archs, workers, chunksize=4)


def to_markdown(rows: List[dict]) -> str:
    lines = ["| kernel | arch | ok | registers | stack | local (spills) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['arch']} | {'yes' if r['ok'] else 'NO'} | {r.get('reg', '')} | "
                     f"{r.get('stack', '')} | {r.get('local', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastgan.tools.aot", description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=positive_int, action="append", help="compute capability, e.g. 90 (repeatable)")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--markdown", help="write a markdown table here")
    p.add_argument("--workers", type=positive_int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--ptx", action="store_true",
                   help="the runtime JIT's specialisations of each kernel: global access widths, "
                        "registers, spills, H100 occupancy (markdown/json as above)")
    p.add_argument("--coverage", action="store_true",
                   help="with --ptx: also compile every fp32 specialisation for sm_90 with aligned pointers "
                        "and sizes not divisible by 16, and count those without a 128-bit global access")
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        # kernels decorated under the interpreter cannot be compiled: start clean
        env = dict(os.environ)
        env.pop("TRITON_INTERPRET")
        return subprocess.call([sys.executable, "-m", "fastgan.tools.aot", *(argv or sys.argv[1:])], env=env)
    if a.ptx:
        return _main_ptx(a)
    rows = compile_all(tuple(a.arch or (90, 80)), a.workers)
    bad = [r for r in rows if not r["ok"]]
    spills = [r for r in rows if r["ok"] and (r.get("local", 0) > 0 or r.get("stack", 0) > 0)]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(to_markdown(rows))
    regs = [r["reg"] for r in rows if r["ok"]]
    print(f"compiled {len(rows) - len(bad)}/{len(rows)} specialisations; registers "
          f"{min(regs, default=0)}..{max(regs, default=0)}; {len(spills)} with local memory (spills)")
    for r in bad:
        print(f"FAILED {r['kernel']} {r['arch']}: {r['error']}")
    for r in spills:
        print(f"spill: {r['kernel']} {r['arch']} local={r['local']} stack={r['stack']}")
    return 1 if bad else 0


def _main_ptx(a) -> int:
    import triton
    t0 = time.perf_counter()
    rows = compile_ptx(tuple(a.arch or (90, 80)), a.workers)
    wall = time.perf_counter() - t0
    problems = check_ptx(rows)
    coverage = vector_coverage((90,), a.workers) if a.coverage else []
    problems += check_coverage(coverage)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(f"<!-- generated by `python -m fastgan.tools.aot --ptx{' --coverage' if a.coverage else ''} "
                    f"--markdown {a.markdown}` "
                    f"(triton {triton.__version__}) -->\n")
            f.write(PTX_PREAMBLE)
            if coverage:
                f.write(COVERAGE_PREAMBLE + "\n".join(coverage_summary(coverage)) + "\n\n")
            f.write(ptx_markdown(rows))
    print(f"compiled {sum(r['ok'] for r in rows)}/{len(rows)} specialisations in {wall:.1f} s; "
          f"{len(problems)} problems")
    for msg in problems:
        print("PROBLEM", msg)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
