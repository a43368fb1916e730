"""Schedules of today's GAN recipes: the discriminator start gate of VQGAN-style tokenizers
and R3GAN's cosine decay with linear warm-up (for γ, the learning rate, Adam's β₂, ...).

``step`` is a Python number or a tensor.  With a Python number the result is a Python
float (or ``weight`` itself), computed in float64 as the original code does.  With a
tensor (e.g. a 0-d step counter kept on the GPU) the result is a tensor, computed with
``torch.where`` only: no host synchronisation and no Python branch on its value, so a
training step that calls these compiles with ``torch.compile(fullgraph=True)``.

    disc_factor = fastgan.schedules.adopt_weight(1.0, step, start=50_001)
    gamma = fastgan.schedules.cosine_decay(nimg, total=20_000_000, start_value=0.05, end_value=0.005)
"""
from __future__ import annotations

import math
import numbers
from typing import Union

import torch
from torch import Tensor

from .checks import check_number

__all__ = ["adopt_weight", "cosine_decay"]

Number = Union[int, float]


def _check_step(step):
    if isinstance(step, Tensor):
        if step.dtype == torch.bool or step.is_complex():
            raise TypeError(f"step must be a real number or a real tensor, got a {step.dtype} tensor")
        return step
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a real number or a tensor, got {type(step).__name__}")
    return step


def _float_dtype(*xs) -> torch.dtype:
    """The floating dtype a schedule of tensor arguments computes in: the tensors' floating
    dtype if any has one, else torch's default (an integer step counter gives float32)."""
    dtypes = [x.dtype for x in xs if isinstance(x, Tensor) and x.is_floating_point()]
    if not dtypes:
        return torch.get_default_dtype()
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out


def adopt_weight(weight, step, start, value=0.0):
    """taming-transformers' ``adopt_weight`` (``taming/modules/losses/vqperceptual.py``): the
    discriminator start gate, ``value`` while ``step < start`` and ``weight`` from then on.

    With Python numbers it returns ``weight`` or ``value`` unchanged, as taming does.  When
    ``step`` (or ``start``) is a tensor it returns ``torch.where(step < start, value, weight)``,
    a tensor in the floating dtype of the tensor arguments (torch's default dtype for an
    integer step counter), without a host synchronisation.  ``weight`` and ``value`` may be
    numbers or tensors."""
    _check_step(step)
    if not isinstance(start, Tensor):
        check_number("start", start)
    if not (isinstance(step, Tensor) or isinstance(start, Tensor)):
        return value if step < start else weight
    for name, v in (("weight", weight), ("value", value)):
        if not isinstance(v, Tensor):
            check_number(name, v)
    dtype = _float_dtype(weight, value, step, start)
    device = next(x.device for x in (step, start, weight, value) if isinstance(x, Tensor))
    w, v = (x.to(dtype) if isinstance(x, Tensor) else torch.full((), x, dtype=dtype, device=device)
            for x in (weight, value))  # a fill on the device, not a copy from the host
    return torch.where(step < start, v, w)


def cosine_decay(step, total, start_value, end_value, warmup=0):
    """R3GAN's ``cosine_decay_with_warmup`` (``training/training_loop.py``, with its
    ``warmup_value = 0`` and no hold), as R3GAN schedules γ, the learning rate and β₂
    over the number of images shown:

    - ``step < warmup``: linear warm-up from 0, ``start_value · step / warmup``;
    - ``warmup ≤ step ≤ total``: ``start_value + (1 − ½(1 + cos(π·(step − warmup)/(total − warmup))))
      · (end_value − start_value)``;
    - ``step > total``: ``end_value``.

    ``total``, ``start_value``, ``end_value`` and ``warmup`` are Python numbers (``0 ≤ warmup <
    total``).  A Python ``step`` gives a Python float (float64 arithmetic, as R3GAN's numpy
    code); a tensor ``step`` gives a tensor of its floating dtype (torch's default for an
    integer counter), computed with ``torch.where`` only."""
    _check_step(step)
    total = check_number("total", total)
    start_value = check_number("start_value", start_value)
    end_value = check_number("end_value", end_value)
    warmup = check_number("warmup", warmup)
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if not total > warmup:
        raise ValueError(f"total must be greater than warmup, got total={total} and warmup={warmup}")
    span = float(total - warmup)
    if not isinstance(step, Tensor):
        if step > total:
            return float(end_value)
        if warmup > 0 and step < warmup:
            return start_value / warmup * step
        decay = 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))
        return start_value + (1.0 - decay) * (end_value - start_value)
    s = step.to(_float_dtype(step))
    decay = 0.5 * (1.0 + torch.cos(math.pi * (s - warmup) / span))
    value = start_value + (1.0 - decay) * (end_value - start_value)
    if warmup > 0:  # a Python argument, not the step's value
        value = torch.where(s < warmup, (start_value / warmup) * s, value)
    return torch.where(s > total, torch.full_like(value, end_value), value)
