"""Backend selection: ``"auto"`` (default), ``"triton"``, ``"native"``, ``"torch"``.

The call path: ``fastgan.functional`` checks the arguments and calls ``run``, which
picks the backend for the tensors' device and calls it once:

* ``"torch"``: the op's reference (``fastgan.reference``);
* a fused backend (``triton_backend``, ``native_backend``): one entry point per op
  family, ``pair_loss(name, kwargs, PairOptions, reduction, real, fake)``,
  ``bce_loss(input, target, weight, pos_weight, reduction)`` or
  ``penalty(grads, center, one_sided, reduction)``,
  ``relativistic(name, real, fake, reduction)``, with the options lowered once
  (``OpSpec.lower``) and the inputs in one dtype; lists of discriminators
  ``pair_loss_list`` (``run_list``) and feature matching ``feature_matching``.

The divergences and the relativistic losses run the reference under ``torch.compile``
(their kernels have no custom op yet) and under ``torch.func`` transforms.

Each backend module also has ``status() -> (usable, reason)`` for this process and
``check_device(device) -> None | reason`` for the tensors at hand.

``"auto"`` picks the fastest usable backend for the tensors' device and never
fails where ``"torch"`` works.  A backend named explicitly never falls back: if it
cannot run, the call raises ``RuntimeError`` saying why and how to fix it.

The selection: ``set_backend`` sets the process default, which every thread uses
unless it is inside a ``use_backend`` block (a per-thread override).  The initial
default is ``FASTGAN_BACKEND`` (else ``"auto"``).

Calls under ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``, ``jvp``, ...)
or forward-mode AD (``torch.autograd.forward_ad``) run on the reference, whatever
the selection: the fused kernels have no batching or forward-derivative rules,
and the reference is differentiable in every mode.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import warnings
from typing import Dict, Iterator, Tuple

import torch

from .. import reference
from ..registry import OPS, Family, OpSpec
from . import native_backend, native_loader, torch_backend, triton_backend
from .modes import transformed

BACKENDS = {"torch": torch_backend, "triton": triton_backend, "native": native_backend}
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
    if native_backend.check_device(device) is not None:
        return None
    ok, reason = native_backend.status()
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
    return native_backend


def _auto(device: torch.device):
    """CPU: native (once it builds), else the reference.  CUDA: triton (no GPU measurement
    has ranked native against it yet), else native, else the reference."""
    if device.type == "cuda":
        if triton_backend.status()[0] and triton_backend.check_device(device) is None:
            return triton_backend
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
    if backend is native_backend:
        native_loader.build()
    return next(name for name, b in BACKENDS.items() if b is backend)


@functools.lru_cache(maxsize=1024)
def _lowered(name: str, options: tuple):
    """``OPS[name].lower(**options)``, remembered: a training loop passes the same options
    every step, and building the ``PairOptions`` costs most of a microsecond."""
    return OPS[name].lower(**dict(options))


def _promoted(a: torch.Tensor, b: torch.Tensor):
    """``a`` and ``b`` in one dtype, as torch promotes ``a.mean() + b.mean()`` (the
    kernels take one dtype; the conversions are differentiable)."""
    if a.dtype == b.dtype:
        return a, b
    dt = torch.promote_types(a.dtype, b.dtype)
    return a.to(dt), b.to(dt)


def _selected(x: torch.Tensor):
    """The backend of the current selection for ``x``'s device (cached, else resolved)."""
    return _resolved.get((_override.name or _process_default(), _device_type(x))) or resolve(x.device)


def run(spec: OpSpec, tensors, kwargs: dict, reduction: str):
    """Run ``spec`` on the backend selected for the tensors' device."""
    x = tensors[0]
    compiling = torch.compiler.is_compiling()
    if compiling and spec.family in (Family.RELATIVISTIC, Family.DIVERGENCE):  # no custom op for their kernels yet
        return spec.reference(*tensors, **kwargs, reduction=reduction)
    if compiling:
        backend = BACKENDS[_resolve_for_compile(get_backend(), x.device.type)]
    elif transformed():
        backend = torch_backend
    else:
        backend = _selected(x)
    if backend is torch_backend:
        return spec.reference(*tensors, **kwargs, reduction=reduction)
    if spec.family is Family.PAIR:
        # under compile the options may be symbolic: lowered in the trace, not remembered
        opts = spec.lower(**kwargs) if compiling else _lowered(spec.name, tuple(kwargs.items()))
        if len(tensors) == 1:
            return backend.pair_loss(spec.name, kwargs, opts, reduction, None, tensors[0])
        real, fake = _promoted(*tensors)
        out = backend.pair_loss(spec.name, kwargs, opts, reduction, real, fake)
        if reduction == "none" and tensors[0].dtype != tensors[1].dtype:
            # "none" of inputs of two dtypes: each side's terms in its input's dtype
            return out[0].to(tensors[0].dtype), out[1].to(tensors[1].dtype)
        return out
    if spec.family is Family.DIVERGENCE:
        return backend.divergence(spec.name, _promoted(*tensors), kwargs, reduction)
    if spec.family is Family.RELATIVISTIC:
        real, fake = _promoted(*tensors)
        out = backend.relativistic(spec.name, real, fake, reduction)
        if reduction == "none" and spec.two_sided and tensors[0].dtype != tensors[1].dtype:
            return out[0].to(tensors[0].dtype), out[1].to(tensors[1].dtype)
        return out
    if spec.family is Family.BCE:
        x, t = _promoted(*tensors)
        out = backend.bce_loss(x, t, kwargs["weight"], kwargs["pos_weight"], reduction)
        return out.to(tensors[1].dtype)  # torch's drop-in: the result has the target's dtype
    return backend.penalty(tensors[0], float(kwargs.get("center", 1.0)), bool(kwargs.get("one_sided", False)),
                           reduction)


def _capturing(x: torch.Tensor) -> bool:
    """A CUDA graph is being captured: the multi-tensor ops copy a per-call table from a
    host buffer, which a replay would read after it is freed, so lists go per member."""
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def run_list(spec: OpSpec, lists, kwargs: dict, reduction: str):
    """A pair loss over lists of score tensors, one per discriminator (``lists`` is
    ``(reals, fakes)`` or ``(fakes,)``), reduced ("mean" or "sum"): ``(total, per-discriminator
    losses)``, the sum and the list of each discriminator's loss.

    On a fused backend, with every tensor of one dtype on one device, one multi-tensor op
    computes all of them (one forward and one backward over every tensor,
    ``pair_loss_list``).  Otherwise (the reference, ``torch.compile``, ``torch.func``,
    mixed dtypes, CUDA-graph capture) each discriminator is one ``run``."""
    fakes = lists[-1]
    g = fakes[0]
    if not (torch.compiler.is_compiling() or transformed() or _capturing(g)):
        backend = _selected(g)
        if backend is not torch_backend and all(x.dtype == g.dtype and x.device == g.device
                                                for xs in lists for x in xs):
            opts = _lowered(spec.name, tuple(kwargs.items()))
            reals = lists[0] if len(lists) == 2 else None
            per = backend.pair_loss_list(spec.name, kwargs, opts, reduction, reals, fakes)
            return per.sum(), list(per.unbind(0))
    per = [run(spec, members, kwargs, reduction) for members in zip(*lists)]
    total = per[0]
    for loss in per[1:]:
        total = total + loss
    return total, per


def feature_matching(reals, fakes, p: int, reduction: str, scales=None):
    """Feature matching over flat lists of maps, ``Σ_m s_m · reduce(|g_m − r_m|^p)``, on the
    backend selected for their device: the native extension's fused ops, the Triton kernels
    (maps of one dtype; not while a CUDA graph is captured), else the reference ("none",
    compile and transforms too: the reference's terms, unscaled).  ``scales``: per-map
    Python floats (default 1); the fused ops run once per distinct factor."""
    if scales is not None and reduction != "none" and any(s != 1.0 for s in scales):
        groups = {}
        for r, x, s in zip(reals, fakes, scales):
            rs, xs = groups.setdefault(s, ([], []))
            rs.append(r)
            xs.append(x)
        total = None
        for s, (rs, xs) in groups.items():
            out = feature_matching(rs, xs, p, reduction)
            out = out * s if s != 1.0 else out
            total = out if total is None else total + out
        return total
    g = fakes[0]
    if reduction == "none" or transformed() or torch.compiler.is_compiling():
        backend = torch_backend
    else:
        backend = _selected(g)
    if backend is native_backend:
        return native_backend.feature_matching(reals, fakes, p, reduction)
    if backend is triton_backend and all(x.dtype == g.dtype for x in fakes) and not _capturing(g):
        return triton_backend.feature_matching(reals, fakes, p, reduction)
    return reference.feature_matching_maps(reals, fakes, p=p, reduction=reduction)


__all__ = ["available_backends", "get_backend", "set_backend", "use_backend", "resolve", "BACKENDS", "NAMES"]
