"""The ``"native"`` backend: the C++/CUDA extension in ``csrc/``, JIT-built with ninja.

Build: ``torch.utils.cpp_extension.load`` on first use (or ``fastgan build`` ahead of
time) into ``$FASTGAN_CACHE_DIR`` (default ``~/.cache/fastgan``), in a folder keyed by
a hash of the sources, the torch and Python versions, the compiler, the build flags
and the CPU's instruction set, under a file lock so two processes building at once
do not collide.  The CUDA part (``cuda.cu``) is compiled only when torch has CUDA and
a CUDA toolkit (nvcc) is present.

Autograd is registered in C++ for the Autograd dispatch key (csrc/ops.cpp); an eager
call reaches it through the extension's pybind11 functions (cheaper per call than the
boxed ``torch.ops`` call), one dispatcher round trip.  Under ``torch.compile`` the same
kernels are reached through the shared custom-op path (``_fused.py``).

A failed build: ``"auto"`` falls back to the next backend with one warning naming
the cause and the fix; an explicit ``"native"`` raises with the compiler's message.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import _fused
from ..registry import OpSpec

KINDS = {"bce": 0, "hinge": 1, "lsgan": 2, "linear": 3}
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
CPU_SOURCES = ("ops.cpp", "cpu.cpp")
CUDA_SOURCES = ("cuda.cu",)
HEADERS = ("fastgan.h",)
CFLAGS = ("-O3", "-march=native", "-fopenmp")
CUDA_CFLAGS = ("-O3", "--expt-relaxed-constexpr")
LDFLAGS = ("-fopenmp",)


class NativeBuildError(RuntimeError):
    """The extension could not be built; the message says why and how to fix it."""


_state = {"built": False, "module": None, "error": None, "path": None, "seconds": None, "cuda": False}


def source_dir() -> Path:
    """``fastgan/csrc`` when installed, ``csrc/`` beside ``fastgan/`` in a checkout."""
    try:
        import fastgan.csrc as pkg  # noqa: WPS433
        d = Path(pkg.__file__).parent
        if (d / CPU_SOURCES[0]).exists():
            return d
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "csrc"


def cache_root() -> Path:
    return Path(os.environ.get("FASTGAN_CACHE_DIR", Path.home() / ".cache" / "fastgan"))


def _nvcc() -> Optional[str]:
    from torch.utils.cpp_extension import CUDA_HOME
    for home in (CUDA_HOME, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


def compile_check(out_dir: str, archs: Sequence[int] = (90, 80)) -> dict:
    """Compile ``csrc/cuda.cu`` to object code for ``archs`` with nvcc, without a GPU and
    without a CUDA build of torch, so a CUDA compile error is caught on a CPU machine.

    CPU-only torch wheels lack one CMake-generated CUDA header; ``csrc/compile_check/``
    holds a stand-in used by this check only.  Returns ``{"ok", "seconds", "object",
    "log"}``."""
    nvcc = _nvcc()
    if nvcc is None:
        raise NativeBuildError("no CUDA toolkit (nvcc) found")
    from torch.utils import cpp_extension as ce
    src = source_dir()
    cuda_home = Path(nvcc).resolve().parent.parent
    includes = [*ce.include_paths(), str(cuda_home / "include"), str(src), str(src / "compile_check")]
    gencode = [f for a in archs for f in ("-gencode", f"arch=compute_{a},code=sm_{a}")]
    obj = Path(out_dir) / "fastgan_cuda.o"
    cmd = [nvcc, "-c", str(src / CUDA_SOURCES[0]), "-o", str(obj), "-std=c++17", *CUDA_CFLAGS,
           f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", "-DTORCH_EXTENSION_NAME=fastgan_check",
           "-Xcompiler", "-fPIC", *ce.COMMON_NVCC_FLAGS, *gencode, *[f"-I{p}" for p in includes]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return {"ok": proc.returncode == 0, "seconds": time.perf_counter() - t0, "object": str(obj),
            "log": (proc.stdout + proc.stderr)[-8000:], "command": " ".join(cmd)}


def with_cuda() -> bool:
    return torch.version.cuda is not None and torch.cuda.is_available() and _nvcc() is not None


def _compiler() -> Optional[str]:
    return shutil.which(os.environ.get("CXX", "c++"))


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def build_key(cuda: bool) -> str:
    h = hashlib.sha256()
    src = source_dir()
    for name in (*CPU_SOURCES, *HEADERS, *(CUDA_SOURCES if cuda else ())):
        h.update(name.encode())
        h.update((src / name).read_bytes())
    for part in (torch.__version__, sys.version, str(cuda), " ".join(CFLAGS), " ".join(CUDA_CFLAGS),
                 _compiler_version(_compiler() or "c++"), platform.machine(), _cpu_flags()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def prerequisites() -> Optional[str]:
    """None if a build can be attempted, else what is missing and how to get it."""
    from torch.utils.cpp_extension import is_ninja_available
    if _compiler() is None:
        return "no C++ compiler found (install g++ or clang, or set CXX)"
    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    if not (source_dir() / CPU_SOURCES[0]).exists():
        return f"the C++ sources are missing (looked in {source_dir()})"
    return None


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: cpp_extension's own baton still guards the build
            pass
        yield


def build(verbose: bool = False) -> dict:
    """Build (or load the cached build of) the extension into this process.

    Returns ``{"path", "seconds", "cuda", "cached"}``; raises ``NativeBuildError``."""
    if _state["built"]:
        return {"path": _state["path"], "seconds": 0.0, "cuda": _state["cuda"], "cached": True}
    if _state["error"] is not None:
        raise NativeBuildError(_state["error"])
    problem = prerequisites()
    if problem:
        _state["error"] = problem
        raise NativeBuildError(problem)
    cuda = with_cuda()
    key = build_key(cuda)
    name = f"fastgan_native_{key}"
    folder = cache_root() / name
    src = source_dir()
    sources = [str(src / s) for s in (*CPU_SOURCES, *(CUDA_SOURCES if cuda else ()))]
    t0 = time.perf_counter()
    from torch.utils import cpp_extension
    try:
        with _file_lock(cache_root() / f"{name}.lock"):
            folder.mkdir(parents=True, exist_ok=True)
            cached = (folder / f"{name}.so").exists()
            module = cpp_extension.load(name=name, sources=sources, extra_cflags=list(CFLAGS),
                               extra_cuda_cflags=list(CUDA_CFLAGS), extra_ldflags=list(LDFLAGS),
                               extra_include_paths=[str(src)], build_directory=str(folder), with_cuda=cuda,
                               is_python_module=True, verbose=verbose)
    except Exception as exc:  # the compiler's message, whole
        msg = str(exc)
        if isinstance(exc, subprocess.CalledProcessError) and getattr(exc, "output", None):
            msg = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else str(exc.output)
        _state["error"] = (f"building the C++ extension failed ({type(exc).__name__}); build log in {folder}; "
                           f"the compiler said:\n{msg[-6000:]}")
        raise NativeBuildError(_state["error"]) from None
    seconds = time.perf_counter() - t0
    _state.update(built=True, module=module, path=str(folder), seconds=seconds, cuda=cuda)
    return {"path": str(folder), "seconds": seconds, "cuda": cuda, "cached": cached}


def status() -> Tuple[bool, str]:
    if _state["built"]:
        where = "CPU and CUDA" if _state["cuda"] else "CPU only"
        return True, f"C++ extension built ({where}) in {_state['path']}"
    if _state["error"] is not None:
        return False, _state["error"].splitlines()[0]
    problem = prerequisites()
    if problem:
        return False, problem
    return True, "C++ extension, JIT-built with ninja on first use (about a minute; `fastgan build` builds it now)"


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if torch.version.cuda is None:
            return "this torch has no CUDA"
        if _nvcc() is None:
            return "no CUDA toolkit (nvcc) found: the CUDA part of the extension cannot be built; use 'triton'"
        return None
    return f"the native backend has no kernels for {device.type} tensors"


def ensure_built() -> None:
    build()


# --------------------------------------------------------------------------- launchers for the compile path

def _ops():
    return torch.ops.fastgan_native


def pair_forward(kind, real, fake, side_r, side_f, reduction) -> List[Tensor]:
    out = _ops().pair_fwd(real, fake, KINDS[kind], _params(side_r, side_f), REDUCTIONS[reduction])
    if reduction == "none" and real is None:
        return [fake.new_empty(0), out[0]]
    return list(out)


def pair_backward(kind, real, fake, side_r, side_f, reduction, grads) -> List[Tensor]:
    return list(_ops().pair_bwd(real, fake, KINDS[kind], _params(side_r, side_f), REDUCTIONS[reduction], list(grads)))


def bce_forward(x, t, weight, pos_weight, reduction) -> List[Tensor]:
    return [_ops().bce_fwd(x, t, weight, pos_weight, REDUCTIONS[reduction])]


def bce_backward(x, t, weight, pos_weight, reduction, up) -> Tensor:
    return _ops().bce_bwd(x, t, weight, pos_weight, REDUCTIONS[reduction], up)


def penalty_forward(g, center, one_sided, reduction) -> List[Tensor]:
    return list(_ops().penalty_fwd(g, float(center), bool(one_sided), REDUCTIONS[reduction]))


def penalty_backward(g, sq, center, one_sided, reduction, up) -> Tensor:
    return _ops().penalty_bwd(g, sq, float(center), bool(one_sided), REDUCTIONS[reduction], up)


def _params(side_r, side_f) -> List[float]:
    r = side_r if side_r is not None else (1.0, 0.0)
    return [float(r[0]), float(r[1]), float(side_f[0]), float(side_f[1])]


_fused.register_impl("native", sys.modules[__name__])


# --------------------------------------------------------------------------- backend entry

def _module():
    module = _state["module"]
    if module is None:
        try:
            build()
        except NativeBuildError as exc:
            raise RuntimeError(f"fastgan backend 'native' cannot run: {exc}") from None
        module = _state["module"]
    return module


def run(spec: OpSpec, tensors: Sequence[Tensor], kwargs: dict, reduction: str):
    # eager calls reach the autograd ops through the extension's pybind11 functions, a
    # few µs cheaper per call than torch.ops (benchmarks/results/native-cpu.md)
    ext = _module()
    if torch.compiler.is_compiling():
        return _fused.run("native", spec, tensors, kwargs, reduction)
    red = REDUCTIONS[reduction]
    if spec.family == "pair":
        kind, side_r, side_f = spec.lower(**kwargs)
        if len(tensors) == 2:
            real, fake = tensors
            if real.dtype != fake.dtype:
                dt = torch.promote_types(real.dtype, fake.dtype)
                real, fake = real.to(dt), fake.to(dt)
        else:
            real, fake = None, tensors[0]
        out = ext.pair_loss(real, fake, KINDS[kind], _params(side_r, side_f), red)
        if reduction == "none":
            return (out[0], out[1]) if real is not None else out[0]
        return out[0]
    if spec.family == "bce":
        x, t = tensors
        return ext.bce_loss(x, t, kwargs.get("weight"), kwargs.get("pos_weight"), red)
    if spec.family == "penalty":
        return ext.penalty(tensors[0], float(kwargs.get("center", 1.0)), bool(kwargs.get("one_sided", False)), red)
    raise NotImplementedError(f"the native backend has no kernel for op {spec.name!r}")
