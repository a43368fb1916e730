"""The ``"triton"`` backend: the kernels of ``kernels/``, one module per family, each with
its launchers, the custom ops ``torch.compile`` traces and its family op (the one
interface of ``backends.interface``); every family's autograd is ``fused.fused``.

* ``pair`` / ``bce`` / ``penalty`` / ``relativistic`` / ``divergence``: one op each.
* ``multi``: the multi-tensor ops (a pair loss over lists of discriminators; feature
  matching over every map), one launch each way whatever the number of tensors.
* ``launch``: what the families' launchers share.

``status`` / ``check_device``: can this process and these tensors run the kernels
(CUDA tensors, or CPU tensors through the Triton interpreter, ``TRITON_INTERPRET=1``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ...registry import Family
from . import bce, divergence, multi, pair, penalty, relativistic
from .launch import kernels

OPS = {Family.PAIR: pair.OP, Family.BCE: bce.OP, Family.PENALTY: penalty.OP,
       Family.RELATIVISTIC: relativistic.OP, Family.DIVERGENCE: divergence.OP, Family.FEATURE: multi.FEATURE}
LIST_OPS = {Family.PAIR: multi.PAIR_LIST}

_state = {"import_error": None, "status": None}


def _importable() -> bool:
    if _state["import_error"] is None:
        try:
            kernels("losses")
            _state["import_error"] = ""
        except ModuleNotFoundError as exc:
            hint = "; install it with `pip install triton`" if exc.name == "triton" else ""
            _state["import_error"] = f"{type(exc).__name__}: {exc}{hint}"
        except Exception as exc:  # a broken triton install
            _state["import_error"] = f"{type(exc).__name__}: {exc}"
    return not _state["import_error"]


def interpreted() -> bool:
    return _importable() and type(kernels("losses").pair_fwd_kernel).__name__ == "InterpretedFunction"


def status() -> Tuple[bool, str]:
    """Usable in this process?  Computed once (it cannot change: TRITON_INTERPRET is read at import)."""
    if _state["status"] is None:
        _state["status"] = _compute_status()
    return _state["status"]


def _compute_status() -> Tuple[bool, str]:
    if not _importable():
        return False, f"the Triton kernels cannot be imported ({_state['import_error']})"
    import triton
    if interpreted():
        return True, f"triton {triton.__version__} through the interpreter (TRITON_INTERPRET=1): CPU tensors, slow"
    if torch.cuda.is_available():
        return True, f"triton {triton.__version__} on {torch.cuda.get_device_name()}"
    return False, (f"triton {triton.__version__} is installed but there is no CUDA device; "
                   "set TRITON_INTERPRET=1 before importing fastgan to run the kernels on CPU "
                   "through the Triton interpreter (slow, for tests)")


def check_device(device: torch.device) -> Optional[str]:
    if device.type == "cuda" or (device.type == "cpu" and interpreted()):
        return None
    if device.type == "cpu":
        return ("the triton backend needs CUDA tensors; for CPU tensors set TRITON_INTERPRET=1 "
                "before importing fastgan (the Triton interpreter), or use backend 'torch'")
    return f"the triton backend does not run on {device.type} tensors; use backend 'torch'"
