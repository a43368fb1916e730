"""The native extension's loader: build ``csrc/`` with ninja, cache it, load it.

Build: ``torch.utils.cpp_extension.load`` on first use (or ``fastgan build`` ahead of
time) into ``$FASTGAN_CACHE_DIR`` (default ``~/.cache/fastgan``), in a folder keyed by
a hash of the sources, the torch and Python versions, the compiler, the build flags
and the CPU's instruction set.  The CUDA part (``cuda.cu``) is compiled only when
torch has CUDA and a CUDA toolkit (nvcc) is present.

The cache is safe to share:

* a build runs under a file lock (``fastgan_native_<hash>.lock``, waited on for at most
  ``$FASTGAN_BUILD_TIMEOUT`` seconds, default 15 minutes), so two processes building at
  once do not collide;
* a finished build gets a record of its ``.so``'s size and sha256 beside it
  (``<name>.so.sha256``); a ``.so`` that does not match its record (a killed build, a
  truncated copy) is never loaded: its folder is deleted and built again;
* a complete build is imported directly, without the lock or ninja, so a read-only
  prebuilt cache works.

A failed build raises ``NativeBuildError`` with the reason (the compiler's message
when the compiler failed); ``status()`` says it without building.

A build says what it does on stderr, through the logger ``fastgan.build`` (level INFO,
with a stderr handler of its own, so it shows by default): one line when it starts
(what is built, where the cache is, that it happens once), a line every
``$FASTGAN_BUILD_HEARTBEAT`` seconds while it runs (default 15; 0 turns them off), and
the elapsed time at the end.  Loading a cached build says nothing.  To silence it:
``logging.getLogger("fastgan.build").setLevel(logging.WARNING)``.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import filelock
import torch


CPU_SOURCES = ("ops.cpp", "cpu.cpp", "multi_cpu.cpp", "relativistic.cpp", "divergence.cpp")
CUDA_SOURCES = ("cuda.cu",)
CFLAGS = ("-O3", "-march=native", "-fopenmp")
CUDA_CFLAGS = ("-O3", "--expt-relaxed-constexpr")
LDFLAGS = ("-fopenmp",)
LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"
BUILD_TIMEOUT_S = 15 * 60  # how long to wait for another process's build (FASTGAN_BUILD_TIMEOUT)
HEARTBEAT_S = 15.0  # a "still building" line this often (FASTGAN_BUILD_HEARTBEAT)


class _StderrHandler(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (not the one at import, which a test or a
    notebook may have replaced since)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - as logging's own handlers do
            self.handleError(record)


log = logging.getLogger("fastgan.build")
if not log.handlers:  # visible by default: a library logger without a handler shows WARNING and above only
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("fastgan: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class NativeBuildError(RuntimeError):
    """The extension could not be built; the message says why and how to fix it."""


_state = {"built": False, "module": None, "error": None, "path": None, "seconds": None, "cuda": False,
          "status": None}


def source_dir() -> Path:
    """The C++ sources: the package ``fastgan.csrc`` (``csrc/``, linked into ``fastgan/``
    in a checkout, copied into it by ``pip install``)."""
    from .. import csrc
    return Path(csrc.__file__).parent


def cache_root() -> Path:
    # an empty FASTGAN_CACHE_DIR is unset (not the current directory)
    return Path(os.environ.get("FASTGAN_CACHE_DIR") or Path.home() / ".cache" / "fastgan")


def nvcc() -> Optional[str]:
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
    compiler = nvcc()
    if compiler is None:
        raise NativeBuildError("no CUDA toolkit (nvcc) found")
    from torch.utils import cpp_extension as ce
    src = source_dir()
    cuda_home = Path(compiler).resolve().parent.parent
    includes = [*ce.include_paths(), str(cuda_home / "include"), str(src), str(src / "compile_check")]
    gencode = [f for a in archs for f in ("-gencode", f"arch=compute_{a},code=sm_{a}")]
    obj = Path(out_dir) / "fastgan_cuda.o"
    cmd = [compiler, "-c", str(src / CUDA_SOURCES[0]), "-o", str(obj), "-std=c++17", *CUDA_CFLAGS,
           f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", "-DTORCH_EXTENSION_NAME=fastgan_check",
           "-Xcompiler", "-fPIC", *ce.COMMON_NVCC_FLAGS, *gencode, *[f"-I{p}" for p in includes]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return {"ok": proc.returncode == 0, "seconds": time.perf_counter() - t0, "object": str(obj),
            "log": (proc.stdout + proc.stderr)[-8000:], "command": " ".join(cmd)}


def with_cuda() -> bool:
    return torch.version.cuda is not None and torch.cuda.is_available() and nvcc() is not None


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


@functools.lru_cache(maxsize=None)
def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def build_key(cuda: bool) -> str:
    h = hashlib.sha256()
    src = source_dir()
    headers = sorted(p.name for p in src.glob("*.h"))
    for name in (*CPU_SOURCES, *headers, *(CUDA_SOURCES if cuda else ())):
        h.update(name.encode())
        h.update((src / name).read_bytes())
    for part in (torch.__version__, sys.version, str(cuda), " ".join(CFLAGS), " ".join(CUDA_CFLAGS),
                 _compiler_version(_compiler() or "c++"), platform.machine(), _cpu_flags()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _key_problem() -> Optional[str]:
    """What stops computing the build key (so finding a build): missing sources or compiler."""
    if not (source_dir() / CPU_SOURCES[0]).exists():
        return f"the C++ sources are missing (looked in {source_dir()})"
    if _compiler() is None:
        cxx = os.environ.get("CXX")
        looked = f"CXX={cxx} not found" if cxx else "no c++ on PATH"
        return f"no C++ compiler found ({looked}; install g++ or clang, or set CXX)"
    return None


def prerequisites() -> Optional[str]:
    """None if a build can be attempted, else what is missing and how to get it."""
    from torch.utils.cpp_extension import is_ninja_available
    problem = _key_problem()
    if problem is None and not is_ninja_available():
        problem = "ninja is not installed (pip install ninja)"
    return problem


def _paths(cuda: bool) -> Tuple[str, Path, Path]:
    """(extension name, build folder, extension file) for this configuration."""
    name = f"fastgan_native_{build_key(cuda)}"
    folder = cache_root() / name
    return name, folder, folder / f"{name}{LIB_EXT}"


def _record_path(so: Path) -> Path:
    return so.with_name(so.name + ".sha256")


def _fingerprint(so: Path) -> str:
    h = hashlib.sha256()
    with open(so, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{so.stat().st_size} {h.hexdigest()}"


def _write_record(so: Path) -> None:
    record = _record_path(so)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(_fingerprint(so) + "\n")
    os.replace(tmp, record)  # atomic: a reader sees no record or a whole one


def _is_complete(so: Path) -> bool:
    """True if ``so`` is a finished build: it matches the record written after the build."""
    try:
        record = _record_path(so).read_text().split()
        if not record or record[0] != str(so.stat().st_size):  # cheap check before hashing
            return False
        return _fingerprint(so) == " ".join(record)
    except OSError:
        return False


def _writable(folder: Path) -> bool:
    """Whether ``folder`` (or, if it does not exist yet, its nearest existing parent) can be written."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


def _not_writable(root: Path, why: str = "") -> str:
    why = f" ({why})" if why else ""
    return (f"the C++ extension is not built and the cache folder {root} is not writable{why}: "
            f"set FASTGAN_CACHE_DIR to a writable folder")


def _build_timeout() -> float:
    value = os.environ.get("FASTGAN_BUILD_TIMEOUT", "")
    try:
        seconds = float(value) if value.strip() else float(BUILD_TIMEOUT_S)
    except ValueError:
        seconds = math.nan
    if not (0 <= seconds < math.inf):  # a negative or infinite wait would block forever
        raise NativeBuildError(f"FASTGAN_BUILD_TIMEOUT must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def _heartbeat_s() -> float:
    value = os.environ.get("FASTGAN_BUILD_HEARTBEAT", "")
    try:
        seconds = float(value) if value.strip() else HEARTBEAT_S
    except ValueError:
        seconds = HEARTBEAT_S
    return seconds if 0 < seconds < math.inf else 0.0


class _Progress:
    """The build's lines: a start line now, a heartbeat line every ``_heartbeat_s()`` seconds
    from a daemon thread while the build runs, and the elapsed time at the end."""

    def __init__(self, name: str, folder: Path, cuda: bool):
        where = "CPU and CUDA" if cuda else "CPU only"
        log.info("building the native C++ extension %s (%s) into the cache %s; this happens once for this "
                 "torch, compiler and source version and can take a few minutes (later runs load it from the cache)",
                 name, where, folder)
        self.t0 = time.perf_counter()
        self.done = threading.Event()
        interval = _heartbeat_s()
        self.thread = None
        if interval:
            self.thread = threading.Thread(target=self._beat, args=(interval,), name="fastgan-build-heartbeat",
                                           daemon=True)
            self.thread.start()

    def _beat(self, interval: float) -> None:
        while not self.done.wait(interval):
            log.info("still building the native extension (%.0f s so far)", time.perf_counter() - self.t0)

    def finish(self, ok: bool, folder: Path) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        seconds = time.perf_counter() - self.t0
        if ok:
            log.info("native extension built in %.1f s (%s)", seconds, folder)
        else:
            log.info("native extension build failed after %.1f s", seconds)


def _import(name: str, so: Path, folder: Path):
    """Import a complete build (as cpp_extension does; the module registers torch.ops.fastgan_native)."""
    try:
        spec = importlib.util.spec_from_file_location(name, so)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError) as exc:
        raise NativeBuildError(f"loading the built extension {so} failed ({type(exc).__name__}: {exc}); "
                               f"delete {folder} to build it again") from None
    return module


def _compile(name: str, folder: Path, cuda: bool, verbose: bool):
    from torch.utils import cpp_extension
    src = source_dir()
    sources = [str(src / s) for s in (*CPU_SOURCES, *(CUDA_SOURCES if cuda else ()))]
    try:
        return cpp_extension.load(name=name, sources=sources, extra_cflags=list(CFLAGS),
                                  extra_cuda_cflags=list(CUDA_CFLAGS), extra_ldflags=list(LDFLAGS),
                                  extra_include_paths=[str(src)], build_directory=str(folder), with_cuda=cuda,
                                  is_python_module=True, verbose=verbose)
    except (subprocess.CalledProcessError, RuntimeError) as exc:  # ninja: the compiler's message, whole
        msg = str(exc)
        if isinstance(exc, subprocess.CalledProcessError) and getattr(exc, "output", None):
            msg = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else str(exc.output)
        raise NativeBuildError(f"building the C++ extension failed ({type(exc).__name__}); build log in {folder}; "
                               f"the compiler said:\n{msg[-6000:]}") from None
    except ImportError as exc:
        raise NativeBuildError(f"the C++ extension was built in {folder} but cannot be loaded "
                               f"({type(exc).__name__}: {exc}); delete {folder} to build it again") from None


def _build_locked(name: str, folder: Path, so: Path, cuda: bool, verbose: bool):
    """Build under the lock (or import what another process built meanwhile); returns (module, cached)."""
    root = folder.parent
    lock_path = root / f"{name}.lock"
    timeout = _build_timeout()
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(lock_path), timeout=timeout)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log.info("waiting for another process's build of the native extension (lock %s)", lock_path)
            lock.acquire()
    except filelock.Timeout:  # before OSError: Timeout is a TimeoutError
        raise NativeBuildError(f"waited {timeout:.0f} s for the build lock {lock_path}: another process (or thread) "
                               f"holds it, building or hung; wait for it or end it (the lock is released when "
                               f"its holder exits; FASTGAN_BUILD_TIMEOUT sets the wait)") from None
    except OSError as exc:
        raise NativeBuildError(_not_writable(root, f"{type(exc).__name__}: {exc}")) from None
    try:
        if _is_complete(so):  # another process finished it while we waited
            return _import(name, so, folder), True
        # We hold the lock, so no one is building here: anything in the folder is stale (a
        # killed build's outputs, whose torch baton file `lock` would make cpp_extension wait
        # forever, or a truncated .so).  Start afresh.
        progress, ok = _Progress(name, folder, cuda), False
        try:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            module = _compile(name, folder, cuda, verbose)
            _write_record(so)
            ok = True
        except OSError as exc:
            raise NativeBuildError(f"building the C++ extension failed: {type(exc).__name__}: {exc} (in {folder}); "
                                   f"check that {root} is writable and has free space, "
                                   f"or set FASTGAN_CACHE_DIR to another folder") from None
        finally:
            progress.finish(ok, folder)
        return module, False
    finally:
        lock.release()


def build(verbose: bool = False) -> dict:
    """Build (or load the cached build of) the extension into this process.

    Returns ``{"path", "seconds", "cuda", "cached"}``; raises ``NativeBuildError``."""
    if _state["built"]:
        return {"path": _state["path"], "seconds": 0.0, "cuda": _state["cuda"], "cached": True}
    if _state["error"] is not None:
        raise NativeBuildError(_state["error"])
    t0 = time.perf_counter()
    cuda = with_cuda()
    try:
        problem = _key_problem()
        if problem:
            raise NativeBuildError(problem)
        name, folder, so = _paths(cuda)
        if _is_complete(so):  # no lock, no ninja: works in a read-only cache
            module, cached = _import(name, so, folder), True
        else:
            problem = prerequisites()
            if problem:
                raise NativeBuildError(problem)
            module, cached = _build_locked(name, folder, so, cuda, verbose)
    except NativeBuildError as exc:
        _state["error"] = str(exc)
        raise
    seconds = time.perf_counter() - t0
    _state.update(built=True, module=module, path=str(folder), seconds=seconds, cuda=cuda)
    return {"path": str(folder), "seconds": seconds, "cuda": cuda, "cached": cached}


def _find_status() -> Tuple[bool, str]:
    problem = _key_problem()
    if problem:
        return False, problem
    cuda = with_cuda()
    where = "CPU and CUDA" if cuda else "CPU only"
    name, folder, so = _paths(cuda)
    if _is_complete(so):
        return True, f"C++ extension built ({where}) in {folder}"
    if not _writable(folder.parent):
        return False, _not_writable(folder.parent)
    problem = prerequisites()
    if problem:
        return False, problem
    return True, "C++ extension, JIT-built with ninja on first use (a few minutes, once; `fastgan build` builds it now)"


def status() -> Tuple[bool, str]:
    """(usable, reason) without building: computed once per cache folder and process."""
    if _state["built"]:
        where = "CPU and CUDA" if _state["cuda"] else "CPU only"
        return True, f"C++ extension built ({where}) in {_state['path']}"
    if _state["error"] is not None:
        return False, _state["error"].splitlines()[0]
    root = str(cache_root())
    if _state["status"] is None or _state["status"][0] != root:
        _state["status"] = (root, _find_status())
    return _state["status"][1]


def module():
    """The extension's Python module (pybind11 functions), built on first use; raises
    ``RuntimeError`` saying why it cannot be built."""
    if _state["module"] is None:
        try:
            build()
        except NativeBuildError as exc:
            raise RuntimeError(f"fastgan backend 'native' cannot run: {exc}") from None
    return _state["module"]
