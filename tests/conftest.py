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


def pytest_configure(config):
    config.addinivalue_line("markers", "sampled(over, every, when): an expensive matrix sampled by the rule "
                                       "of tests/helpers.py (FASTGAN_FULL_MATRIX=1 runs all of it)")


def pytest_report_header(config):
    from .helpers import FULL_MATRIX
    return ("fastgan: FASTGAN_FULL_MATRIX=1, every parametrisation runs" if FULL_MATRIX else
            "fastgan: sampled matrices (tests/helpers.py: sampled); FASTGAN_FULL_MATRIX=1 runs them in full")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Deselect what the rule of ``helpers.sampled`` leaves out of a marked matrix."""
    from .helpers import axis_indices, kept
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("sampled")
        callspec = getattr(item, "callspec", None)
        if mark is None or callspec is None or kept(
                axis_indices(item.iter_markers("parametrize"), callspec.params), callspec.params, mark.kwargs):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
