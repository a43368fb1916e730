"""Argument checks shared by ``fastgan.functional`` and ``fastgan.penalties``.

Every check raises ``TypeError`` or ``ValueError`` naming the argument.  The
drop-in ``binary_cross_entropy_with_logits`` raises the two classes below where
torch's own function raises ``RuntimeError``, so ``except RuntimeError`` clauses
written for torch still catch them, and so do ``except TypeError`` /
``except ValueError``.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
FLOAT_SET = frozenset(FLOAT_DTYPES)
REDUCTIONS = ("mean", "sum", "none")


class DTypeError(TypeError, RuntimeError):
    """A tensor of a dtype the op does not take (a ``TypeError`` and a ``RuntimeError``)."""


class ShapeError(ValueError, RuntimeError):
    """Shapes that do not broadcast (a ``ValueError`` and a ``RuntimeError``)."""


def check_tensor(name: str, x, error=TypeError) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_SET:
        raise error(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), "
                    f"got dtype {x.dtype}")
    return x


def check_real_tensor(name: str, x) -> Tensor:
    """A tensor of real numbers, integer or bool included (a weight, as torch accepts)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise DTypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
    return x


def check_same_device(names, tensors) -> None:
    first = tensors[0].device
    for name, x in zip(names[1:], tensors[1:]):
        if x.device != first:
            raise ValueError(f"{names[0]} is on {first} but {name} is on {x.device}; fastgan never copies "
                             f"across devices: move them to one device first")


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_number(name: str, v) -> float:
    if type(v) is float or (type(v) is int and torch.compiler.is_compiling()):
        # under torch.compile a float option may be symbolic (dynamic shapes, or a value
        # that changed between calls): finiteness cannot be read without a guard, so it
        # is checked in eager mode only
        if torch.compiler.is_compiling() or math.isfinite(v):
            return v
    if isinstance(v, (torch.SymFloat, torch.SymInt)):  # symbolic under torch.compile: see above
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float), got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def check_bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return v


def check_p(p) -> int:
    """Feature matching's exponent: 1 or 2, as an int (``2.0`` and numpy scalars are
    accepted and become ``2``: every backend takes the int)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a number (1 or 2), got {type(p).__name__}")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    return int(p)
