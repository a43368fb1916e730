"""Ahead-of-time GPU compile of every Triton kernel specialisation fastgan can launch.

The Triton interpreter accepts programs the real compiler rejects, so this
compiles each entry of ``kernels.*.specializations()`` (the same constants the
launchers use) to PTX and a cubin for real GPU targets, on a machine with no
GPU, and reads registers and local memory (spills) of each cubin with
cuobjdump.  Run it in a process without ``TRITON_INTERPRET``:

    python -m fastgan.tools.aot --arch 90 --arch 80 --json out.json

Exit status 1 if any specialisation fails to compile.
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


def _entries():
    from ..kernels import losses, penalty
    for mod in (losses, penalty):
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


def _num_warps() -> int:
    from ..kernels import losses
    return losses.NUM_WARPS


def compile_all(archs=(90, 80), workers: int = 2) -> List[dict]:
    n = len(list(_entries()))
    jobs = [(i, a) for a in archs for i in range(n)]
    if workers <= 1:
        return [_compile_one(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_compile_one, jobs, chunksize=4))


def to_markdown(rows: List[dict]) -> str:
    lines = ["| kernel | arch | ok | registers | stack | local (spills) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['arch']} | {'yes' if r['ok'] else 'NO'} | {r.get('reg', '')} | "
                     f"{r.get('stack', '')} | {r.get('local', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastgan.tools.aot", description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, action="append", help="compute capability, e.g. 90 (repeatable)")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--markdown", help="write a markdown table here")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        # kernels decorated under the interpreter cannot be compiled: start clean
        env = dict(os.environ)
        env.pop("TRITON_INTERPRET")
        return subprocess.call([sys.executable, "-m", "fastgan.tools.aot", *(argv or sys.argv[1:])], env=env)
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


if __name__ == "__main__":
    sys.exit(main())
