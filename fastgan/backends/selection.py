"""Backend selection: ``"auto"`` (default), ``"triton"``, ``"native"``, ``"torch"``.

``set_backend`` sets the process default, which every thread uses unless it is inside a
``use_backend`` block (a per-thread override).  The initial default is
``FASTGAN_BACKEND`` (else ``"auto"``), read at import.  ``"auto"`` picks the fastest
usable backend for the tensors' device and never fails where ``"torch"`` works.  A
backend named explicitly never falls back to another backend: if it cannot run on the
tensors' device, the call raises ``RuntimeError`` saying why and how to fix it.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Dict, Iterator, Tuple

import torch

from . import native, native_loader, torch_backend, triton

BACKENDS = {"torch": torch_backend, "triton": triton, "native": native}
NAMES = ("auto", *BACKENDS)


class _Override(threading.local):
    name = None  # per thread: the backend of the innermost use_backend block, else None


_override = _Override()


def _env_default() -> dict:
    """The initial process default, read from ``FASTGAN_BACKEND`` at import: reading it
    at the first call would write module state inside the first ``torch.compile``
    trace, and Dynamo's restart of that trace then diverges from the first pass
    (``SpeculationLogDivergence``).  A bad value is kept as its error, raised at use."""
    env = os.environ.get("FASTGAN_BACKEND", "auto").strip() or "auto"
    try:
        return {"name": _check_name(env), "error": None}
    except ValueError as exc:
        return {"name": None, "error": f"FASTGAN_BACKEND: {exc}"}


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, one of {NAMES}; got {type(name).__name__}")
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {NAMES}")
    return name


_default = _env_default()  # the process default: {"name", "error"}


def _process_default() -> str:
    if _default["name"] is None:
        raise ValueError(_default["error"])
    return _default["name"]


def available_backends() -> Dict[str, Tuple[bool, str]]:
    """Backend name -> ``(usable, reason)`` for this process."""
    return {name: tuple(b.status()) for name, b in BACKENDS.items()}


def get_backend() -> str:
    """The backend of this thread: its ``use_backend`` block's, else the process default."""
    return _override.name or _process_default()


def _check_usable(name: str) -> None:
    if name != "auto":
        ok, reason = BACKENDS[name].status()
        if not ok:
            raise RuntimeError(f"fastgan backend {name!r} cannot run: {reason}")


def set_backend(name: str) -> None:
    """Select the backend for the process (``"auto"``, ``"triton"``, ``"native"``, ``"torch"``):
    every thread uses it, except inside a ``use_backend`` block, whose choice it also
    replaces in the calling thread.

    Raises ``RuntimeError`` at once if a named backend cannot run in this process."""
    _check_name(name)
    _check_usable(name)
    _default["name"] = name
    if _override.name is not None:
        _override.name = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: this thread uses ``name`` inside the block; the previous choice
    is restored after it.  Other threads are not affected."""
    _check_name(name)
    _check_usable(name)
    previous = _override.name
    _override.name = name
    try:
        yield
    finally:
        _override.name = previous


_warned = set()


def _native_if_it_builds(device: torch.device):
    """The native backend if it is usable on ``device`` and builds; otherwise None, with
    one warning naming the cause and the fix."""
    if native.check_device(device) is not None:
        return None
    ok, reason = native.status()
    try:
        if not ok:
            raise native_loader.NativeBuildError(reason)
        native_loader.build()
    except native_loader.NativeBuildError as exc:
        if "native" not in _warned:
            _warned.add("native")
            warnings.warn(f"fastgan: the native extension is not available, so 'auto' uses the next backend. "
                          f"Cause: {str(exc).splitlines()[0]} (`fastgan build` shows the whole message; "
                          f"set FASTGAN_BACKEND=torch to silence this)", RuntimeWarning, stacklevel=5)
        return None
    return native


def _auto(device: torch.device):
    """CPU: native (once it builds), else the reference.  CUDA: triton (no GPU measurement
    has ranked native against it yet), else native, else the reference."""
    if device.type == "cuda":
        if triton.status()[0] and triton.check_device(device) is None:
            return triton
        return _native_if_it_builds(device) or torch_backend
    if device.type == "cpu":
        return _native_if_it_builds(device) or torch_backend
    return torch_backend


# (selection, device type) -> backend.  "auto" is decided once per device type: a build
# only ever moves from "not yet" to "built" or "failed", and both are final for the
# process.  A named backend is cached once its checks pass (a failed native build still
# raises in its run()).
_resolved: Dict[Tuple[str, str], object] = {}


def _device_type(x) -> str:
    # x.is_cpu / x.is_cuda: cheaper per call than building x.device.type
    return "cpu" if x.is_cpu else ("cuda" if x.is_cuda else x.device.type)


def _resolve(name: str, device: torch.device):
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


def resolve(device: torch.device):
    """The backend object that runs ops on ``device`` under the current selection."""
    key = (get_backend(), device.type)
    backend = _resolved.get(key)
    if backend is None:
        backend = _resolved[key] = _resolve(key[0], device)
    return backend


@torch.compiler.assume_constant_result
def _resolve_for_compile(selection: str, device_type: str) -> str:
    """``resolve``, run at trace time rather than traced (it may build the native
    extension: file system calls and hashing Dynamo cannot trace); the backend's name."""
    backend = resolve(torch.device(device_type))
    if backend is native:
        native_loader.build()
    return next(name for name, b in BACKENDS.items() if b is backend)


def selected(x):
    """The backend of the current selection for ``x``'s device (cached, else resolved)."""
    return _resolved.get((_override.name or _process_default(), _device_type(x))) or resolve(x.device)


def for_compile(x):
    """The backend ``resolve`` picks for ``x``, resolved at trace time."""
    return BACKENDS[_resolve_for_compile(get_backend(), x.device.type)]
