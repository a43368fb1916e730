"""The native extension: JIT build into a hashed cache, failures that say why, auto's choice,
and the no-GPU compile check of the CUDA sources."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from fastgan import backends
from fastgan.backends import native_loader as nb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_OK = nb.prerequisites() is None


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
def test_build_reports_where_and_is_cached():
    first = nb.build()
    assert os.path.isdir(first["path"])
    assert any(f.endswith(".so") for f in os.listdir(first["path"]))
    again = nb.build()
    assert again["cached"] and again["path"] == first["path"]
    ok, reason = nb.status()
    assert ok and first["path"] in reason
    assert hasattr(torch.ops.fastgan_native, "pair_loss")


def test_build_key_depends_on_sources_and_flags(tmp_path, monkeypatch):
    src = tmp_path / "csrc"
    shutil.copytree(nb.source_dir(), src)
    monkeypatch.setattr(nb, "source_dir", lambda: src)
    k1 = nb.build_key(cuda=False)
    assert k1 == nb.build_key(cuda=False)
    (src / "cpu.cpp").write_text((src / "cpu.cpp").read_text() + "\n// changed\n")
    k2 = nb.build_key(cuda=False)
    assert k2 != k1
    monkeypatch.setattr(nb, "CFLAGS", nb.CFLAGS + ("-DSOMETHING",))
    assert nb.build_key(cuda=False) != k2


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
def test_auto_picks_native_on_cpu():
    backends.selection._resolved.clear()
    assert backends.resolve(torch.device("cpu")) is backends.native


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_saving_forward_gradients_are_fresh_tensors(dtype):
    """BCE on CPU saves d term / d logit in the forward and scales it in the backward:
    a second backward through a retained graph must not see a first gradient that was
    modified in place (the aliasing that breaks Liger's in-place trick), and both equal
    the reference's."""
    import fastgan
    from fastgan import reference
    real = (torch.randn(300, dtype=torch.float64) * 4).to(dtype).requires_grad_()
    fake = (torch.randn(7, 11, dtype=torch.float64) * 4).to(dtype).requires_grad_()
    with fastgan.use_backend("native"):
        loss = fastgan.F.bce_d_loss(real, fake, real_label=0.9)
    g1 = torch.autograd.grad(loss * 3, [real, fake], retain_graph=True)
    want = torch.autograd.grad(reference.bce_d_loss(real.double(), fake.double(), real_label=0.9) * 3,
                               [real, fake])
    tol = dict(rtol=2e-2, atol=1e-4) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-7)
    for got, ref in zip(g1, want):
        torch.testing.assert_close(got.double(), ref.double(), **tol)
        got.mul_(0).add_(123)
    g2 = torch.autograd.grad(loss * 3, [real, fake])
    for got, ref in zip(g2, want):
        torch.testing.assert_close(got.double(), ref.double(), **tol)


def _run(code: str, tmp_path, **env):
    e = dict(os.environ, PYTHONPATH=ROOT, FASTGAN_CACHE_DIR=str(tmp_path / "cache"), **env)
    e.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=e, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
def test_failed_build_explicit_raises_with_compiler_message_auto_warns_once(tmp_path):
    code = f"""
        import pathlib, shutil, warnings, torch, fastgan
        from fastgan.backends import native_loader as nb
        src = pathlib.Path({str(tmp_path)!r}) / "csrc"
        shutil.copytree(nb.source_dir(), src)
        (src / "cpu.cpp").write_text((src / "cpu.cpp").read_text() + "\\nthis is not C++;\\n")
        nb.source_dir = lambda: src
        x = torch.randn(8)
        try:
            with fastgan.use_backend("native"):
                fastgan.F.hinge_d_loss(x, x)
            print("NO ERROR")
        except RuntimeError as e:
            print("ERR", "native" in str(e), "this is not C++" in str(e) or "error" in str(e))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            a = fastgan.F.hinge_d_loss(x, x)
            b = fastgan.F.bce_d_loss(x, x)
        print("WARN", sum("native extension is not available" in str(m.message) for m in w))
        print("AUTO", float(a) == float(fastgan.reference.hinge_d_loss(x, x)))
        print("STATUS", fastgan.available_backends()["native"][0])
    """
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ERR True True" in out.stdout
    assert "WARN 1" in out.stdout
    assert "AUTO True" in out.stdout
    assert "STATUS False" in out.stdout


def test_missing_ninja_is_named(tmp_path):
    code = """
        import torch.utils.cpp_extension as ce, fastgan
        ce.is_ninja_available = lambda: False
        ok, reason = fastgan.available_backends()["native"]
        print("STATUS", ok, reason)
        try:
            fastgan.set_backend("native")
        except RuntimeError as e:
            print("ERR", e)
    """
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "STATUS False ninja is not installed (pip install ninja)" in out.stdout
    assert "ERR fastgan backend 'native' cannot run: ninja" in out.stdout


@pytest.mark.skipif(nb.nvcc() is None, reason="no nvcc: the CUDA compile check needs the CUDA toolkit")
def test_cuda_sources_compile_for_sm90_and_sm80(tmp_path):
    """Catches a CUDA compile error without a GPU (the CI machine has nvcc)."""
    res = nb.compile_check(str(tmp_path), archs=(90, 80))
    assert res["ok"], res["log"]
    assert os.path.getsize(res["object"]) > 0


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
def test_build_command(capsys):
    from fastgan import cli
    assert cli.main(["build"]) == 0
    out = capsys.readouterr().out
    assert "s: " in out and "fastgan_native_" in out


def _fresh_state(monkeypatch, cache):
    """This process's native backend as if nothing were built or decided yet, on ``cache``."""
    monkeypatch.setattr(nb, "_state", dict(nb._state, built=False, module=None, error=None, status=None))
    monkeypatch.setenv("FASTGAN_CACHE_DIR", str(cache))


@pytest.mark.skipif(not NATIVE_OK, reason="no compiler or ninja")
def test_status_is_honest_without_building(tmp_path, monkeypatch):
    _fresh_state(monkeypatch, tmp_path / "cache")
    ok, reason = nb.status()
    assert ok and "first use" in reason
    assert not (tmp_path / "cache").exists()  # status builds nothing
    name, folder, so = nb._paths(nb.with_cuda())
    folder.mkdir(parents=True)
    so.write_bytes(b"\x7fELF" + bytes(4096))  # a .so without a record: not a finished build
    _fresh_state(monkeypatch, tmp_path / "cache")
    assert "first use" in nb.status()[1]
    nb._write_record(so)
    _fresh_state(monkeypatch, tmp_path / "cache")
    ok, reason = nb.status()
    assert ok and reason.startswith("C++ extension built") and str(folder) in reason


def test_build_record_catches_a_changed_so(tmp_path):
    so = tmp_path / "ext.so"
    so.write_bytes(b"x" * 10000)
    assert not nb._is_complete(so)  # no record
    nb._write_record(so)
    assert nb._is_complete(so)
    so.write_bytes(b"x" * 5000)  # truncated
    assert not nb._is_complete(so)
    so.write_bytes(b"y" * 10000)  # same size, other bytes
    assert not nb._is_complete(so)
    so.unlink()
    assert not nb._is_complete(so)


def test_status_is_cheap(tmp_path, monkeypatch):
    """The compiler's version is asked once per process; status() is computed once per cache folder."""
    nb.build_key(cuda=False)
    asked = nb._compiler_version.cache_info().misses
    nb.build_key(cuda=False)
    assert nb._compiler_version.cache_info().misses == asked
    _fresh_state(monkeypatch, tmp_path / "cache")
    first = nb.status()
    monkeypatch.setattr(nb, "_find_status", lambda: pytest.fail("status() recomputed"))
    assert nb.status() == first
