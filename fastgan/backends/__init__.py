"""Backend selection: ``"auto"`` (default), ``"triton"``, ``"native"``, ``"torch"``.

A backend is a module-like object with

* ``status() -> (usable, reason)`` for this process,
* ``check_device(device) -> None | reason`` for the tensors at hand,
* ``run(spec, tensors, kwargs, reduction)`` implementing the registry's ops.

``"auto"`` picks the fastest usable backend for the tensors' device and never
fails where ``"torch"`` works.  A backend named explicitly never falls back: if it
cannot run, the call raises ``RuntimeError`` saying why and how to fix it.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Dict, Iterator, Tuple

import torch

from ..registry import OpSpec
from . import native_backend, torch_backend, triton_backend

BACKENDS = {"torch": torch_backend, "triton": triton_backend, "native": native_backend}
NAMES = ("auto", *BACKENDS)

_state = threading.local()
_default = {"name": None}


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, one of {NAMES}; got {type(name).__name__}")
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {NAMES}")
    return name


def _initial() -> str:
    if _default["name"] is None:
        env = os.environ.get("FASTGAN_BACKEND", "auto").strip() or "auto"
        try:
            _default["name"] = _check_name(env)
        except ValueError as exc:
            raise ValueError(f"FASTGAN_BACKEND: {exc}") from None
    return _default["name"]


def available_backends() -> Dict[str, Tuple[bool, str]]:
    """Backend name -> ``(usable, reason)`` for this process."""
    out = {name: tuple(b.status()) for name, b in BACKENDS.items()}
    return out


def get_backend() -> str:
    """The current backend name (``"auto"`` unless set)."""
    return getattr(_state, "name", None) or _initial()


def set_backend(name: str) -> None:
    """Select the backend for this thread (``"auto"``, ``"triton"``, ``"native"``, ``"torch"``).

    Raises ``RuntimeError`` at once if a named backend cannot run in this process."""
    _check_name(name)
    if name != "auto":
        ok, reason = BACKENDS[name].status()
        if not ok:
            raise RuntimeError(f"fastgan backend {name!r} cannot run: {reason}")
    _state.name = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: use ``name`` inside the block, restore the previous backend after."""
    previous = getattr(_state, "name", None)
    set_backend(name)
    try:
        yield
    finally:
        _state.name = previous


def _auto(device: torch.device):
    if device.type == "cuda" and triton_backend.status()[0] and triton_backend.check_device(device) is None:
        return triton_backend
    return torch_backend


def resolve(device: torch.device):
    """The backend object that runs ops on ``device`` under the current selection."""
    name = get_backend()
    if name == "auto":
        return _auto(device)
    backend = BACKENDS[name]
    ok, reason = backend.status()
    if not ok:
        raise RuntimeError(f"fastgan backend {name!r} cannot run: {reason}")
    problem = backend.check_device(device)
    if problem is not None:
        raise RuntimeError(f"fastgan backend {name!r} cannot run on {device}: {problem}")
    return backend


def run(spec: OpSpec, tensors, kwargs: dict, reduction: str):
    return resolve(tensors[0].device).run(spec, tensors, kwargs, reduction)


__all__ = ["available_backends", "get_backend", "set_backend", "use_backend", "resolve", "BACKENDS", "NAMES"]
