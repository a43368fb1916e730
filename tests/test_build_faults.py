"""Faults in the native extension's build cache.

Each test gives fastgan its own FASTGAN_CACHE_DIR, breaks it the way real caches break
(a build killed half way, a truncated or empty ``.so``, a read-only folder, no compiler,
two builds at once), runs fastgan in a subprocess and asserts it ends in a working
backend or a clear error within a bounded time.  Every subprocess has its own process
group and a timeout, so a hang fails the test instead of stalling the suite.

The tests marked ``slow`` build the extension (30-90 s each on 2 cores); they run by
default.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import filelock
import pytest

from fastgan.backends import native_loader as nb

from .helpers import FULL_MATRIX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_OK = nb.prerequisites() is None
BUILD_S = 420  # bound on a subprocess that builds the extension
QUICK_S = 120  # bound on one that must not build

needs_native = pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
slow = pytest.mark.slow

# Builds (or loads) the extension, then computes a loss with backend "native":
# prints "NATIVE <correct> <loaded from the cache>".
NATIVE_LOSS = """
    import torch, fastgan
    from fastgan.backends import native_loader as nb
    cached = nb.build()["cached"]
    x = torch.linspace(-3, 3, 50)
    with fastgan.use_backend("native"):
        got = fastgan.F.hinge_d_loss(x, x.flip(0))
    print("NATIVE", torch.allclose(got, fastgan.reference.hinge_d_loss(x, x.flip(0))), cached)
"""

# Asks for "native" by name, then uses "auto": prints the status, the error, the number
# of fastgan warnings and whether auto's result is right.
EXPLICIT_THEN_AUTO = """
    import warnings, torch, fastgan
    ok, reason = fastgan.available_backends()["native"]
    print("STATUS", ok, reason)
    x = torch.linspace(-3, 3, 50)
    try:
        with fastgan.use_backend("native"):
            fastgan.F.hinge_d_loss(x, x)
        print("NO ERROR")
    except RuntimeError as e:
        print("ERR", str(e).replace("\\n", " | "))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = fastgan.F.hinge_d_loss(x, x.flip(0))
        fastgan.F.bce_d_loss(x, x)
    print("WARN", sum(issubclass(m.category, RuntimeWarning) and "fastgan" in str(m.message) for m in w))
    print("AUTO", torch.allclose(a, fastgan.reference.hinge_d_loss(x, x.flip(0))))
"""


def _env(cache, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, FASTGAN_CACHE_DIR=str(cache))
    for name in ("TRITON_INTERPRET", "FASTGAN_BACKEND", "FASTGAN_BUILD_TIMEOUT"):
        env.pop(name, None)
    env.update(extra)
    return env


def _start(code: str, env: dict, **popen) -> subprocess.Popen:
    # a session of its own: a kill reaches ninja and the compiler too
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def _kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL the child and everything it started.  Its process group is not enough: ninja
    runs each compiler in a process group of its own (in the child's session)."""
    os.killpg(proc.pid, signal.SIGKILL)  # the child and ninja: nothing new gets started
    for _ in range(3):
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            try:
                if entry.isdigit() and os.getsid(int(entry)) == proc.pid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:  # gone already
                pass
        time.sleep(0.05)


def _finish(proc: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_all(proc)
        out, err = proc.communicate()
        pytest.fail(f"fastgan hung: no result after {timeout} s\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run(code: str, env: dict, timeout: float, **popen) -> subprocess.CompletedProcess:
    return _finish(_start(code, env, **popen), timeout)


def _line(out: subprocess.CompletedProcess, tag: str) -> str:
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(tag + " ")]
    assert lines, f"no {tag} line\nstdout:\n{out.stdout[-2000:]}\nstderr:\n{out.stderr[-3000:]}"
    return lines[0]


def _ok(out: subprocess.CompletedProcess) -> None:
    # returncode -7 would be SIGBUS from loading a truncated .so
    assert out.returncode == 0, f"returncode {out.returncode}\nstdout:\n{out.stdout[-2000:]}\nstderr:\n{out.stderr[-3000:]}"


def _drop_permission_override() -> None:
    # Runs in the child before exec: without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in
    # the bounding set, the exec'd root process obeys permission bits like any user.
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_unprivileged(code: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run where a read-only folder is read-only: root ignores permission bits, so as
    root the child drops the capabilities that let it."""
    if os.geteuid() != 0:
        return _run(code, env, timeout)
    try:
        return _run(code, env, timeout, preexec_fn=_drop_permission_override)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"running as root and cannot drop the permission override here: {exc}")


@pytest.fixture
def shared_tmp():
    """A temp folder readable by everyone (pytest's tmp_path is 0o700), removed afterwards
    even where the test made parts of it read-only."""
    base = Path(tempfile.mkdtemp(prefix="fastgan-faults-"))
    base.chmod(0o755)
    yield base
    for d, _, _ in os.walk(base):
        os.chmod(d, 0o755)
    shutil.rmtree(base, ignore_errors=True)


def _make_read_only(folder: Path) -> None:
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            os.chmod(p, 0o555 if os.access(p, os.X_OK) else 0o444)
    for d, _, _ in os.walk(folder, topdown=False):
        os.chmod(d, 0o555)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder holding one complete build.  It is built (or found) in the default
    cache, which is made for sharing (lock + validated .so), so pytest-xdist workers and
    test_native.py build it once between them; each test then copies it."""
    if not NATIVE_OK:
        pytest.skip("no compiler or ninja")
    default = nb.cache_root()
    out = _run('from fastgan.backends import native_loader as nb; print("PATH", nb.build()["path"])',
               _env(default), BUILD_S)
    _ok(out)
    folder = Path(_line(out, "PATH").split(" ", 1)[1])
    cache = tmp_path_factory.mktemp("built") / "cache"
    shutil.copytree(folder, cache / folder.name)
    assert nb._is_complete(cache / folder.name / f"{folder.name}{nb.LIB_EXT}")
    return cache


@needs_native
@slow
def test_build_killed_mid_way_then_next_process_builds(tmp_path):
    cache = tmp_path / "cache"
    env = _env(cache)
    proc = _start('from fastgan.backends import native_loader as nb; nb.build()', env)
    deadline = time.monotonic() + QUICK_S
    while not list(cache.glob("fastgan_native_*/lock")):  # torch's build baton: the compiler is running
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_all(proc)
            out, err = proc.communicate()
            pytest.fail(f"no build baton appeared (returncode {proc.returncode})\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.02)
    _kill_all(proc)
    proc.communicate()
    assert list(cache.glob("fastgan_native_*/lock")), "the killed build left no baton: nothing tested"

    t0 = time.perf_counter()
    out = _run(NATIVE_LOSS, env, BUILD_S)
    _ok(out)
    assert _line(out, "NATIVE") == "NATIVE True False"  # built afresh, correct
    print(f"rebuild after a killed build: {time.perf_counter() - t0:.1f} s")


@needs_native
@slow
@pytest.mark.parametrize("damage", ["truncated"] + (["empty"] if FULL_MATRIX else []))  # a build each
def test_bad_so_in_cache_is_rebuilt(built, tmp_path, damage):
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)
    (so,) = cache.glob(f"fastgan_native_*/*{nb.LIB_EXT}")
    data = so.read_bytes()
    so.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")

    out = _run(NATIVE_LOSS, _env(cache), BUILD_S)
    _ok(out)  # not killed by SIGBUS
    assert _line(out, "NATIVE") == "NATIVE True False"  # rebuilt, correct
    assert nb._is_complete(so)


def _fastgan_lines(err: str) -> list:
    return [ln for ln in err.splitlines() if ln.startswith("fastgan: ")]


def _assert_build_messages(stderr: str, cache: Path) -> None:
    """A build prints (by default, on stderr) what it builds and where, that it happens once,
    a heartbeat while it runs and the elapsed time at the end."""
    lines = _fastgan_lines(stderr)
    assert len(lines) >= 3, stderr[-3000:]
    (folder,) = [p for p in cache.glob("fastgan_native_*") if p.is_dir()]
    first, beats, last = lines[0], lines[1:-1], lines[-1]
    assert first.startswith("fastgan: building the native C++ extension"), first
    assert str(folder) in first and "once" in first, first
    assert beats and all(re.fullmatch(r"fastgan: still building the native extension \(\d+ s so far\)", b)
                         for b in beats), beats
    assert re.fullmatch(rf"fastgan: native extension built in \d+\.\d s \({re.escape(str(folder))}\)", last), last


@needs_native
def test_cache_hit_is_quiet(built, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)
    out = _run(NATIVE_LOSS, _env(cache, FASTGAN_BUILD_HEARTBEAT="0.5"), QUICK_S)
    _ok(out)
    assert _line(out, "NATIVE") == "NATIVE True True"  # loaded from the cache
    assert _fastgan_lines(out.stderr) == [], out.stderr[-3000:]


@needs_native
def test_read_only_prebuilt_cache_loads_without_lock(built, shared_tmp):
    cache = shared_tmp / "cache"
    shutil.copytree(built, cache)
    _make_read_only(cache)
    code = 'from fastgan.backends import native_loader as nb; print("STATUS", *nb.status())\n'
    code += textwrap.dedent(NATIVE_LOSS)
    out = _run_unprivileged(code, _env(cache, HOME=str(shared_tmp)), QUICK_S)
    _ok(out)
    assert _line(out, "STATUS").startswith("STATUS True C++ extension built"), out.stdout
    assert _line(out, "NATIVE") == "NATIVE True True"  # loaded from the cache, correct
    assert not list(cache.glob("*.lock"))


@needs_native
@pytest.mark.parametrize("where", ["root", "below"])
def test_read_only_empty_cache_is_a_clear_error(shared_tmp, where):
    ro = shared_tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cache = ro if where == "root" else ro / "not-yet" / "fastgan"
    out = _run_unprivileged(EXPLICIT_THEN_AUTO, _env(cache, HOME=str(shared_tmp)), QUICK_S)
    _ok(out)
    status, err = _line(out, "STATUS"), _line(out, "ERR")
    assert status.startswith("STATUS False") and "not writable" in status
    assert "FASTGAN_CACHE_DIR" in err and str(ro) in err and "not writable" in err
    assert "compiler said" not in out.stdout
    assert _line(out, "WARN") == "WARN 1"
    assert _line(out, "AUTO") == "AUTO True"


@pytest.mark.parametrize("how", ["CXX", "PATH"])
def test_no_compiler(tmp_path, how):
    if how == "CXX":
        extra, named = {"CXX": "/nonexistent/c++"}, "/nonexistent/c++"
    else:
        path = os.path.dirname(sys.executable)
        if shutil.which("c++", path=path) or "CXX" in os.environ:
            pytest.skip("a compiler sits beside python (or CXX is set)")
        extra, named = {"PATH": path}, "no c++ on PATH"
    out = _run(EXPLICIT_THEN_AUTO, _env(tmp_path / "cache", **extra), QUICK_S)
    _ok(out)
    status, err = _line(out, "STATUS"), _line(out, "ERR")
    assert status.startswith("STATUS False no C++ compiler found") and named in status
    assert "fastgan backend 'native' cannot run: no C++ compiler found" in err and named in err
    assert _line(out, "WARN") == "WARN 1"
    assert _line(out, "AUTO") == "AUTO True"
    assert not (tmp_path / "cache").exists()  # nothing attempted


@needs_native
@slow
def test_two_processes_build_into_one_empty_cache(tmp_path):
    """Two processes, one empty cache: one builds (and says so on stderr, with a heartbeat:
    the check of the build's messages rides on this build, to build once less), the
    other waits for the lock and loads that build."""
    env = _env(tmp_path / "cache", FASTGAN_BUILD_HEARTBEAT="0.5")
    procs = [_start(NATIVE_LOSS, env) for _ in range(2)]
    outs = [_finish(p, BUILD_S) for p in procs]
    for out in outs:
        _ok(out)
    # both correct; one built, the other waited for the lock and loaded that build
    assert sorted(_line(out, "NATIVE") for out in outs) == ["NATIVE True False", "NATIVE True True"]
    (builder,) = [out for out in outs if _line(out, "NATIVE") == "NATIVE True False"]
    _assert_build_messages(builder.stderr, tmp_path / "cache")


@needs_native
def test_build_lock_held_too_long_is_an_error_not_a_hang(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    lock_path = cache / f"fastgan_native_{nb.build_key(nb.with_cuda())}.lock"
    with filelock.FileLock(str(lock_path)):
        t0 = time.perf_counter()
        out = _run(EXPLICIT_THEN_AUTO, _env(cache, FASTGAN_BUILD_TIMEOUT="2"), QUICK_S)
        seconds = time.perf_counter() - t0
    _ok(out)
    err = _line(out, "ERR")
    assert str(lock_path) in err and "FASTGAN_BUILD_TIMEOUT" in err and "compiler said" not in err
    assert _line(out, "WARN") == "WARN 1"
    assert _line(out, "AUTO") == "AUTO True"
    assert seconds < 60


def test_empty_cache_dir_variable_is_unset(monkeypatch):
    """``FASTGAN_CACHE_DIR=`` (empty) means the default cache, not the current directory."""
    from pathlib import Path

    from fastgan.backends import native_loader
    monkeypatch.setenv("FASTGAN_CACHE_DIR", "")
    assert native_loader.cache_root() == Path.home() / ".cache" / "fastgan"
    monkeypatch.setenv("FASTGAN_CACHE_DIR", "/x/y")
    assert native_loader.cache_root() == Path("/x/y")
