"""What every Triton family's launchers share: the kernel modules (imported on first use,
``TRITON_INTERPRET`` being read when the kernels are decorated), the flattening and
reduction-weight rules, the multi-tensor table, and the custom-op wrapper."""
from __future__ import annotations

import math
import typing
from typing import List, Sequence

import torch
from torch import Tensor


def kernels(name: str):
    """``fastgan.kernels.<name>`` (``losses``, ``penalty``, ``multi``, ``relativistic``,
    ``divergence``), imported on first use (so that this backend imports, and says why it
    cannot run, without triton)."""
    from ...kernels import divergence, losses, multi, penalty, relativistic
    return {"losses": losses, "penalty": penalty, "multi": multi, "relativistic": relativistic,
            "divergence": divergence}[name]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def f64(x: Tensor) -> bool:
    return x.dtype == torch.float64


def flat(x: Tensor) -> Tensor:
    return x.reshape(-1) if x.is_contiguous() else x.contiguous().view(-1)


def weight(reduction: str, n: int) -> float:
    """The reduction's weight of each term: 1/n for a mean, else 1."""
    return 1.0 / n if (reduction == "mean" and n > 0) else 1.0


def member_weight(reduction: str, n: int) -> float:
    """A list member's weight: the mean of an empty tensor is nan, as torch's mean of nothing."""
    return (1.0 / n if n else math.nan) if reduction == "mean" else 1.0


def bias(reduction: str, sizes: Sequence[int]) -> float:
    """What a finisher adds: nan for a mean over an empty side (torch's mean of nothing)."""
    return math.nan if reduction == "mean" and any(n == 0 for n in sizes) else 0.0


def rows(x: Tensor):
    """``(B, D)``: the batch and the size of each sample."""
    B = x.shape[0]
    return B, (x.numel() // B if B else 0)


def one_pass(k, kernel, inputs, n: int, reduction: str, like: Tensor, common: dict) -> Tensor:
    """Launch a one-pass kernel of signature ``(*inputs, out, n, iters, w_hi, w_lo, bias,
    REDUCE=, FINAL=)`` (``k`` its kernel module): the flat terms ("none"), or the reduced
    value (one program when it suffices, else a partial per program and a fixed-order sum)."""
    if reduction == "none":
        out = torch.empty(n, dtype=like.dtype, device=like.device)
        if n:
            kernel[(k.elementwise_grid(n),)](*inputs, out, n, 1, *k.split(1.0), 0.0, REDUCE=0, FINAL=0, **common)
        return out
    ws, b = k.split(weight(reduction, n)), bias(reduction, (n,))
    plan = k.reduce_plan(n)
    out = torch.empty((), dtype=like.dtype, device=like.device)
    if plan.final:
        kernel[(1,)](*inputs, out, n, plan.iters, *ws, b, REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=acc_dtype(like.dtype), device=like.device)
        kernel[(plan.programs,)](*inputs, part, n, plan.iters, *ws, 0.0, REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, b, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def table_on(values: List[int], device: torch.device) -> Tensor:
    """A multi-tensor kernel's int64 table on ``device``, in one copy (on CUDA from pinned
    memory, asynchronously: the caching host allocator keeps the buffer until the copy ran)."""
    if device.type == "cuda":
        return torch.tensor(values, dtype=torch.int64, pin_memory=True).to(device, non_blocking=True)
    return torch.tensor(values, dtype=torch.int64, device=device)


def addresses(xs: Sequence[Tensor]) -> List[int]:
    return [x.data_ptr() for x in xs]


def custom_op(name: str):
    """``torch.library.custom_op(name, mutates_args=())`` with the annotations resolved: the
    family modules' annotations are strings (``from __future__ import annotations``), which
    the schema inference of torch 2.4 rejects."""
    def wrap(fn):
        fn.__annotations__ = typing.get_type_hints(fn)
        return torch.library.custom_op(name, mutates_args=())(fn)
    return wrap


def fake_like(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def empty_for(x, like: Tensor) -> Tensor:
    """A custom op's output slot for an absent gradient: an empty tensor (a custom op
    returns no None in a list)."""
    return x if x is not None else like.new_empty(0)
