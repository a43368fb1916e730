"""Backend selection: names, errors that say why, the context manager, the env variable."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import fastgan
from fastgan import backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_available_backends_shape():
    av = fastgan.available_backends()
    assert set(av) == {"torch", "triton", "native"}
    for name, (ok, reason) in av.items():
        assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert av["torch"][0] is True


def test_set_get_and_context_manager():
    assert fastgan.get_backend() == "auto"
    fastgan.set_backend("torch")
    assert fastgan.get_backend() == "torch"
    with fastgan.use_backend("auto"):
        assert fastgan.get_backend() == "auto"
    assert fastgan.get_backend() == "torch"


def test_context_manager_restores_on_error():
    with pytest.raises(KeyError):
        with fastgan.use_backend("torch"):
            raise KeyError
    assert fastgan.get_backend() == "auto"


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        fastgan.set_backend("cuda")
    with pytest.raises(TypeError, match="backend"):
        fastgan.set_backend(None)


def test_native_not_built_says_so():
    ok, reason = fastgan.available_backends()["native"]
    if ok:
        pytest.skip("native backend is built here")
    with pytest.raises(RuntimeError, match="native.*not built"):
        fastgan.set_backend("native")


def test_auto_on_cpu_works():
    x = torch.randn(10)
    assert backends.resolve(x.device) is not None
    with fastgan.use_backend("auto"):
        fastgan.F.bce_d_loss(x, x)


def test_explicit_triton_on_cpu_without_interpreter_raises():
    """In a process without TRITON_INTERPRET and without a GPU, naming triton raises with the fix."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT
    code = ("import fastgan, torch\n"
            "ok, reason = fastgan.available_backends()['triton']\n"
            "assert not ok, reason\n"
            "try:\n    fastgan.set_backend('triton')\nexcept RuntimeError as e:\n    print('ERR', e)\n"
            "with fastgan.use_backend('auto'):\n    print('AUTO', float(fastgan.F.hinge_d_loss(torch.ones(3), torch.ones(3))))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ERR fastgan backend 'triton' cannot run" in out.stdout
    assert "TRITON_INTERPRET=1" in out.stdout
    assert "AUTO 2.0" in out.stdout


def test_env_variable_sets_initial_backend():
    env = dict(os.environ, FASTGAN_BACKEND="torch", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", "import fastgan; print(fastgan.get_backend())"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "torch", out.stderr
    env["FASTGAN_BACKEND"] = "bogus"
    out = subprocess.run([sys.executable, "-c", "import fastgan; fastgan.get_backend()"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "FASTGAN_BACKEND" in out.stderr
