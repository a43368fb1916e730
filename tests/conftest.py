"""Test configuration.

Without a GPU the Triton kernels run on CPU through the Triton interpreter.
TRITON_INTERPRET is read when the kernels are decorated, so it is set here,
before anything imports ``fastgan.kernels``.  On a GPU machine the kernels are
compiled for real (set FASTGAN_TEST_INTERPRET=1 to force the interpreter).
"""
import os

import torch

if os.environ.get("FASTGAN_TEST_INTERPRET") == "1" or not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

import fastgan  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def usable_backends():
    """Every backend usable in this process, plus "auto"."""
    return [name for name, (ok, _) in fastgan.available_backends().items() if ok] + ["auto"]


def runnable(backend: str, device: str) -> bool:
    if backend == "auto":
        return True
    from fastgan.backends import BACKENDS
    return BACKENDS[backend].check_device(torch.device(device)) is None


@pytest.fixture(autouse=True)
def _restore_backend():
    before = fastgan.get_backend()
    yield
    fastgan.set_backend(before)
