"""The ``"triton"`` backend: the kernels of ``kernels/`` with their launchers, autograd
and torch.compile wrappers, read top to bottom.

* ``status`` / ``check_device``: can this process and these tensors run the kernels.
* Launchers: tensors and ``PairOptions`` → kernel arguments → kernel launches.
* Custom ops (``fastgan::triton_*``): the launchers as opaque ops with fake
  implementations, so that under ``torch.compile`` Dynamo captures a loss without
  graph breaks.  In eager mode the autograd Functions call the launchers directly
  (the custom-op round trip costs per call; benchmarks/results/overhead-cpu.md).
* Autograd Functions: the forward is the fused kernel; so is the backward, except
  where a graph of the backward is requested (``create_graph=True``), under a
  ``torch.func`` transform or ``vmap``, or where the target / weights of the drop-in
  BCE need gradients: there the backward is the vector-Jacobian product of the
  reference (``fastgan.reference``), differentiable to any order and the same rule
  as the ``"torch"`` backend.
* ``pair_loss`` / ``bce_loss`` / ``penalty``: the entry points ``fastgan.backends.run``
  calls; ``pair_loss_list`` (a pair loss over lists of discriminators) and
  ``feature_matching``: one multi-tensor launch over every tensor of the lists
  (``kernels/multi.py``), forward and backward, eager only.
"""
from __future__ import annotations

import math
import typing
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .. import reference
from ..registry import OPS, Kind, PairOptions, Side
from .modes import compiling, op_vjp, reference_vjp, vmapped

_import_error: Optional[str] = None
_status: Optional[Tuple[bool, str]] = None


def _kernels():
    """``(fastgan.kernels.losses, fastgan.kernels.penalty)``, imported on first use:
    ``TRITON_INTERPRET`` is read when the kernels are decorated."""
    from ..kernels import losses, penalty
    return losses, penalty


def _importable() -> bool:
    global _import_error
    if _import_error is None:
        try:
            _kernels()
            _import_error = ""
        except ModuleNotFoundError as exc:
            hint = "; install it with `pip install triton`" if exc.name == "triton" else ""
            _import_error = f"{type(exc).__name__}: {exc}{hint}"
        except Exception as exc:  # a broken triton install
            _import_error = f"{type(exc).__name__}: {exc}"
    return not _import_error


def interpreted() -> bool:
    return _importable() and type(_kernels()[0].pair_fwd_kernel).__name__ == "InterpretedFunction"


def status() -> Tuple[bool, str]:
    """Usable in this process?  Computed once (it cannot change: TRITON_INTERPRET is read at import)."""
    global _status
    if _status is None:
        _status = _compute_status()
    return _status


def _compute_status() -> Tuple[bool, str]:
    if not _importable():
        return False, f"the Triton kernels cannot be imported ({_import_error})"
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


# --------------------------------------------------------------------------- launchers

def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1) if x.is_contiguous() else x.contiguous().view(-1)


def _weight(reduction: str, n: int) -> float:
    """The reduction's weight of each term: 1/n for a mean, else 1."""
    return 1.0 / n if (reduction == "mean" and n > 0) else 1.0


def _bias(reduction: str, sizes: Sequence[int]) -> float:
    # mean over an empty side is nan, as torch's mean of nothing
    return math.nan if reduction == "mean" and any(n == 0 for n in sizes) else 0.0


def _side_args(k, side: Optional[Side], n: int, reduction: str):
    """One side's kernel scalars: sgn, label (hi, lo), weight (hi, lo)."""
    side = side or Side(1.0, 0.0)  # no real side: no element reads it
    return (float(side.sgn), *k.split(side.label), *k.split(_weight(reduction, n)))


def _pair_operands(k, real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str):
    """Flat real and fake (fake again in the real slot without real), their sizes, and
    both sides' kernel scalars."""
    fk = _flat(fake)
    rk = _flat(real) if real is not None else fk
    n_r = real.numel() if real is not None else 0
    n_f = fake.numel()
    return rk, fk, n_r, n_f, (*_side_args(k, opts.real, n_r, reduction), *_side_args(k, opts.fake, n_f, reduction))


def pair_forward(real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str) -> List[Tensor]:
    """``[loss]``, or with ``"none"`` ``[real terms (empty without real), fake terms]``."""
    k, _ = _kernels()
    rk, fk, n_r, n_f, scalars = _pair_operands(k, real, fake, opts, reduction)
    common = dict(KIND=int(opts.kind), F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
        out_f = torch.empty_like(fk)
        if n_r + n_f:
            k.pair_fwd_kernel[(k.elementwise_grid(n_r + n_f),)](
                rk, fk, out_r, out_f, out_f, n_r, n_f, 1, *scalars, 0.0, REDUCE=0, FINAL=0, **common)
        return [out_r.view(real.shape) if real is not None else out_r, out_f.view(fake.shape)]
    bias = _bias(reduction, (n_r, n_f) if real is not None else (n_f,))
    plan = k.reduce_plan(n_r + n_f)
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.pair_fwd_kernel[(1,)](rk, fk, rk, fk, out, n_r, n_f, plan.iters, *scalars, bias,
                                REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(fake.dtype), device=fake.device)
        k.pair_fwd_kernel[(plan.programs,)](rk, fk, rk, fk, part, n_r, n_f, plan.iters, *scalars, 0.0,
                                            REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return [out]


def pair_backward(real: Optional[Tensor], fake: Tensor, opts: PairOptions, reduction: str,
                  grads: Sequence[Tensor]) -> List[Tensor]:
    """``[d real (empty without real), d fake]`` for the upstream ``grads`` (one 0-d
    tensor; with ``"none"`` one per output)."""
    k, _ = _kernels()
    rk, fk, n_r, n_f, scalars = _pair_operands(k, real, fake, opts, reduction)
    g_r = torch.empty_like(rk) if real is not None else rk.new_empty(0)
    g_f = torch.empty_like(fk)
    if reduction == "none":
        up = grads[-1]
        up_r = _flat(grads[0].to(rk.dtype)) if real is not None else fk
        up_f = _flat(grads[-1].to(fk.dtype))
    else:
        up = grads[0].to(fk.dtype)
        up_r = up_f = fk
    if n_r + n_f:
        k.pair_bwd_kernel[(k.elementwise_grid(n_r + n_f),)](
            rk, fk, up, up_r, up_f, g_r, g_f, n_r, n_f, *scalars, KIND=int(opts.kind),
            ELEMENTWISE_UP=int(reduction == "none"), F64=fk.dtype == torch.float64, BLOCK=k.BLOCK,
            num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if real is not None else g_r, g_f.view(fake.shape)]


def _bce_operands(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor]):
    """Flat operands; the target, weight and pos_weight in the accumulation dtype, so a
    weight of 1e5 or 1e-8 or a label of 0.9 is never rounded to a half type first."""
    acc = _acc_dtype(x.dtype)
    tk = _flat(t.to(acc))
    wk = _flat(weight.to(acc).expand(x.shape)) if weight is not None else tk
    pk = _flat(pos_weight.to(acc).expand(x.shape)) if pos_weight is not None else tk
    return _flat(x), tk, wk, pk


def bce_forward(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                reduction: str) -> Tensor:
    k, _ = _kernels()
    xk, tk, wk, pk = _bce_operands(x, t, weight, pos_weight)
    n = x.numel()
    common = dict(HAS_W=int(weight is not None), HAS_PW=int(pos_weight is not None),
                  F64=x.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out = torch.empty_like(xk)
        if n:
            k.bce_fwd_kernel[(k.elementwise_grid(n),)](xk, tk, wk, pk, out, n, 1, *k.split(1.0), 0.0,
                                                       REDUCE=0, FINAL=0, **common)
        return out.view(x.shape)
    w = k.split(_weight(reduction, n))
    bias = _bias(reduction, (n,))
    plan = k.reduce_plan(n)
    out = torch.empty((), dtype=x.dtype, device=x.device)
    if plan.final:
        k.bce_fwd_kernel[(1,)](xk, tk, wk, pk, out, n, plan.iters, *w, bias, REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(x.dtype), device=x.device)
        k.bce_fwd_kernel[(plan.programs,)](xk, tk, wk, pk, part, n, plan.iters, *w, 0.0,
                                           REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def bce_backward(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                 reduction: str, up: Tensor) -> Tensor:
    """The gradient of the input (the kernel has no other)."""
    k, _ = _kernels()
    xk, tk, wk, pk = _bce_operands(x, t, weight, pos_weight)
    n = x.numel()
    g = torch.empty_like(xk)
    ew = int(reduction == "none")
    upk = _flat(up.to(x.dtype)) if ew else up.to(x.dtype)
    if n:
        k.bce_bwd_kernel[(k.elementwise_grid(n),)](
            xk, tk, wk, pk, upk, g, n, *k.split(_weight(reduction, n)), HAS_W=int(weight is not None),
            HAS_PW=int(pos_weight is not None), ELEMENTWISE_UP=ew, F64=x.dtype == torch.float64,
            BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return g.view(x.shape)


def _rows(g: Tensor) -> Tuple[int, int]:
    B = g.shape[0]
    return B, (g.numel() // B if B else 0)


def _center_flags(center: float, one_sided: bool) -> Tuple[int, int]:
    # c = 0 is the squared norm, whether one-sided or not (n >= 0)
    return int(center == 0), (0 if center == 0 else int(one_sided))


def penalty_forward(g: Tensor, center: float, one_sided: bool, reduction: str) -> List[Tensor]:
    """``[penalty (or per-sample terms), per-sample squared norms]``."""
    _, kp = _kernels()
    B, D = _rows(g)
    acc = _acc_dtype(g.dtype)
    f64 = g.dtype == torch.float64
    plan = kp.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=g.device)
    kp.sqnorm_partial_kernel[plan.grid](_flat(g), part, B, D, plan.splits, plan.iters, F64=f64, ROWS=plan.rows,
                                        BLOCK_D=plan.block_d, num_warps=kp.NUM_WARPS)
    sq = torch.empty(B, dtype=acc, device=g.device)
    center_zero, one = _center_flags(center, one_sided)
    out = torch.empty((B,) if reduction == "none" else (), dtype=g.dtype, device=g.device)
    kp.penalty_finish_kernel[(1,)](part, sq, out, out, B, plan.splits, *kp.split(center),
                                   *kp.split(_weight(reduction, B)), _bias(reduction, (B,)), ONE_SIDED=one,
                                   CENTER_ZERO=center_zero, REDUCE=int(reduction != "none"), F64=f64,
                                   ROWS=kp.FINISH_ROWS, SPLITS=kp.FINISH_SPLITS, num_warps=kp.NUM_WARPS)
    return [out, sq]


def penalty_backward(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str,
                     up: Tensor) -> Tensor:
    _, kp = _kernels()
    B, D = _rows(g)
    gk = _flat(g)
    dg = torch.empty_like(gk)
    plan = kp.row_plan(B, D)
    center_zero, one = _center_flags(center, one_sided)
    if gk.numel():
        kp.penalty_bwd_kernel[plan.grid](gk, sq, up.to(g.dtype).contiguous(), dg, B, D, plan.splits, plan.iters,
                                         *kp.split(center), *kp.split(_weight(reduction, B)), ONE_SIDED=one,
                                         CENTER_ZERO=center_zero, ELEMENTWISE_UP=int(reduction == "none"),
                                         F64=g.dtype == torch.float64, ROWS=plan.rows, BLOCK_D=plan.block_d,
                                         num_warps=kp.NUM_WARPS)
    return dg.view(g.shape)


def _multi():
    """``fastgan.kernels.multi``, imported on first use like ``_kernels``."""
    from ..kernels import multi
    return multi


def _table_on(values: List[int], device: torch.device) -> Tensor:
    """A multi-tensor kernel's int64 table on ``device``, in one copy (on CUDA from pinned
    memory, asynchronously: the caching host allocator keeps the buffer until the copy ran)."""
    if device.type == "cuda":
        return torch.tensor(values, dtype=torch.int64, pin_memory=True).to(device, non_blocking=True)
    return torch.tensor(values, dtype=torch.int64, device=device)


def _member_weight(reduction: str, n: int) -> float:
    # the mean of an empty tensor is nan, as torch's mean of nothing
    return (1.0 / n if n else math.nan) if reduction == "mean" else 1.0


def _addresses(xs: Sequence[Tensor]) -> List[int]:
    return [x.data_ptr() for x in xs]


def _launch_common(m, like: Tensor, addresses: Sequence[int]) -> dict:
    return dict(F64=like.dtype == torch.float64, ALIGNED=m.aligned(addresses), BLOCK=m.BLOCK, CHUNK=m.CHUNK,
                num_warps=m.NUM_WARPS)


def _pair_list_entries(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions):
    """``(tensor, side, discriminator, input index)`` per entry: per discriminator its real
    tensor (a discriminator loss), then its fake tensor.  Input index: the position in
    ``(*reals, *fakes)``."""
    entries = []
    n = len(fakes)
    for d, fake in enumerate(fakes):
        if reals is not None:
            entries.append((reals[d], opts.real, d, d))
        entries.append((fake, opts.fake, d, d + (n if reals is not None else 0)))
    return entries


def pair_list_forward(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions,
                      reduction: str) -> Tensor:
    """The per-discriminator reduced losses, shape ``(N,)``: one multi-tensor launch over every
    real and fake tensor (a weighted partial per program), one launch summing each
    discriminator's partials in a fixed order."""
    m = _multi()
    like = fakes[0]
    entries = _pair_list_entries(reals, fakes, opts)
    xs = [_flat(x) for x, _, _, _ in entries]  # contiguous copies of strided members live until the launch
    sizes = [x.numel() for x in xs]
    iters, firsts = m.plan(sizes)
    programs = firsts[-1]
    per = 2 if reals is not None else 1
    seg = [firsts[d * per] for d in range(len(fakes))] + [programs]  # each discriminator's programs
    addrs = _addresses(xs)
    values = m.pair_table(firsts[:-1], sizes, [_member_weight(reduction, n) for n in sizes], addrs,
                          [side.sgn for _, side, _, _ in entries], [side.label for _, side, _, _ in entries],
                          [d for _, _, d, _ in entries], [0] * len(entries), seg)
    meta = _table_on(values, like.device)
    part = torch.empty(programs, dtype=_acc_dtype(like.dtype), device=like.device)
    out = torch.empty(len(fakes), dtype=like.dtype, device=like.device)
    used = [a for a, n in zip(addrs, sizes) if n]
    m.multi_pair_fwd_kernel[(programs,)](meta, xs[0], part, len(entries), iters, KIND=int(opts.kind),
                                         **_launch_common(m, like, used))
    m.multi_sum_kernel[(len(fakes),)](part, meta[m.PAIR_COLUMNS * len(entries):], out, BLOCK=m.PARTIALS_BLOCK,
                                      num_warps=m.NUM_WARPS)
    return out


def pair_list_backward(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], opts: PairOptions,
                       reduction: str, up: Tensor, needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """The gradient of each input of ``(*reals, *fakes)`` whose ``needs`` is set (else None)
    for the upstream gradient ``up`` of the ``(N,)`` losses: one launch writing all of them."""
    m = _multi()
    like = fakes[0]
    grads: List[Optional[Tensor]] = [None] * len(needs)
    rows = []
    for x, side, d, i in _pair_list_entries(reals, fakes, opts):
        if needs[i]:
            grads[i] = torch.empty(x.shape, dtype=x.dtype, device=x.device)
            if x.numel():
                rows.append((_flat(x), side, d, grads[i]))
    if rows:
        xs = [x for x, _, _, _ in rows]
        sizes = [x.numel() for x in xs]
        iters, firsts = m.plan(sizes, m.BWD_MAX_PROGRAMS)
        addrs, g_addrs = _addresses(xs), _addresses([g for _, _, _, g in rows])
        values = m.pair_table(firsts[:-1], sizes, [_member_weight(reduction, n) for n in sizes], addrs,
                              [side.sgn for _, side, _, _ in rows], [side.label for _, side, _, _ in rows],
                              [d for _, _, d, _ in rows], g_addrs)
        meta = _table_on(values, like.device)
        m.multi_pair_bwd_kernel[(firsts[-1],)](meta, xs[0], up.to(like.dtype).contiguous(), len(rows), iters,
                                               KIND=int(opts.kind), **_launch_common(m, like, addrs + g_addrs))
    return grads


def _fm_weights(fakes: Sequence[Tensor], reduction: str) -> List[float]:
    return [_member_weight(reduction, g.numel()) for g in fakes]


def fm_forward(reals: Sequence[Tensor], fakes: Sequence[Tensor], p: int, reduction: str) -> Tensor:
    """``Σ_m w_m · Σ |g − r|^p``: one multi-tensor launch over every map (a weighted partial
    per program), one launch summing the partials in a fixed order."""
    m, k = _multi(), _kernels()[0]
    like = fakes[0]
    rs, gs = [_flat(r) for r in reals], [_flat(g) for g in fakes]
    sizes = [g.numel() for g in gs]
    iters, firsts = m.plan(sizes)
    programs = firsts[-1]
    r_addrs, g_addrs = _addresses(rs), _addresses(gs)
    zeros = [0] * len(gs)
    meta = _table_on(m.fm_table(firsts[:-1], sizes, _fm_weights(fakes, reduction), r_addrs, g_addrs, zeros, zeros),
                     like.device)
    part = torch.empty(programs, dtype=_acc_dtype(like.dtype), device=like.device)
    used = [a for a, n in zip(r_addrs + g_addrs, sizes + sizes) if n]
    m.multi_fm_fwd_kernel[(programs,)](meta, gs[0], part, len(gs), iters, P=p, **_launch_common(m, like, used))
    out = torch.empty((), dtype=like.dtype, device=like.device)
    k.sum_partials_kernel[(1,)](part, out, programs, 0.0, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def fm_backward(reals: Sequence[Tensor], fakes: Sequence[Tensor], p: int, reduction: str, up: Tensor,
                needs_r: Sequence[bool], needs_g: Sequence[bool]) -> Tuple[List[Optional[Tensor]],
                                                                             List[Optional[Tensor]]]:
    """``(real grads, fake grads)``, each None where not needed: one launch writing every
    fake map's gradient ``u · w · d|g − r|^p / dg`` and the real maps' (its negation)."""
    m = _multi()
    like = fakes[0]
    grads_r: List[Optional[Tensor]] = [None] * len(fakes)
    grads_g: List[Optional[Tensor]] = [None] * len(fakes)
    rows = []
    for i, (r, g) in enumerate(zip(reals, fakes)):
        if needs_r[i]:
            grads_r[i] = torch.empty(g.shape, dtype=g.dtype, device=g.device)
        if needs_g[i]:
            grads_g[i] = torch.empty(g.shape, dtype=g.dtype, device=g.device)
        if (needs_r[i] or needs_g[i]) and g.numel():
            rows.append((_flat(r), _flat(g), _member_weight(reduction, g.numel()), grads_g[i], grads_r[i]))
    if rows:
        sizes = [g.numel() for _, g, _, _, _ in rows]
        iters, firsts = m.plan(sizes, m.BWD_MAX_PROGRAMS)
        addrs = [_addresses(col) for col in ([r for r, _, _, _, _ in rows], [g for _, g, _, _, _ in rows])]
        outs = [[o.data_ptr() if o is not None else 0 for o in col]
                for col in ([gg for _, _, _, gg, _ in rows], [gr for _, _, _, _, gr in rows])]
        meta = _table_on(m.fm_table(firsts[:-1], sizes, [w for _, _, w, _, _ in rows], *addrs, *outs), like.device)
        m.multi_fm_bwd_kernel[(firsts[-1],)](meta, rows[0][1], up.to(like.dtype), len(rows), iters, P=p,
                                             **_launch_common(m, like, [a for col in addrs + outs for a in col]))
    return grads_r, grads_g


# --------------------------------------------------------------------------- custom ops (torch.compile)
#
# A custom op takes primitive arguments: PairOptions crosses as (kind, params) and is
# rebuilt on the other side, the one conversion of the typed value.

def _unpack(kind: int, params: Sequence[float], has_real: bool) -> PairOptions:
    real = Side(params[0], params[1]) if has_real else None
    return PairOptions(Kind(kind), real, Side(params[2], params[3]))


def _custom_op(name: str):
    """``torch.library.custom_op(name, mutates_args=())`` with the annotations resolved: this
    module's annotations are strings (``from __future__ import annotations``), which the
    schema inference of torch 2.4 rejects."""
    def wrap(fn):
        fn.__annotations__ = typing.get_type_hints(fn)
        return torch.library.custom_op(name, mutates_args=())(fn)
    return wrap


def _fake_like(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@_custom_op("fastgan::triton_pair_loss")
def _pair_loss_op(real: Optional[Tensor], fake: Tensor, kind: int, params: List[float],
                  reduction: str) -> List[Tensor]:
    return pair_forward(real, fake, _unpack(kind, params, real is not None), reduction)


@_pair_loss_op.register_fake
def _(real, fake, kind, params, reduction):
    if reduction == "none":
        return [_fake_like(real) if real is not None else fake.new_empty(0), _fake_like(fake)]
    return [fake.new_empty(())]


@_custom_op("fastgan::triton_pair_loss_backward")
def _pair_loss_bwd_op(real: Optional[Tensor], fake: Tensor, kind: int, params: List[float], reduction: str,
                      grads: List[Tensor]) -> List[Tensor]:
    return pair_backward(real, fake, _unpack(kind, params, real is not None), reduction, grads)


@_pair_loss_bwd_op.register_fake
def _(real, fake, kind, params, reduction, grads):
    return [_fake_like(real) if real is not None else fake.new_empty(0), _fake_like(fake)]


@_custom_op("fastgan::triton_bce_with_logits")
def _bce_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
            reduction: str) -> Tensor:
    return bce_forward(x, t, weight, pos_weight, reduction)


@_bce_op.register_fake
def _(x, t, weight, pos_weight, reduction):
    return _fake_like(x) if reduction == "none" else x.new_empty(())


@_custom_op("fastgan::triton_bce_with_logits_backward")
def _bce_bwd_op(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                reduction: str, up: Tensor, needs: List[bool]) -> List[Tensor]:
    """The gradients ``needs`` asks for, in the order (input, target, weight, pos_weight);
    an empty tensor where none is asked for.  The input's alone come from the fused
    kernel; the others from the reference's VJP, evaluated here, outside the trace."""
    if not any(needs[1:]):
        grads = [bce_backward(x, t, weight, pos_weight, reduction, up), None, None, None]
    else:
        # torch.func's vjp: plain autograd is switched off inside a custom op
        given = [v for v in (x, t, weight, pos_weight) if v is not None]

        def loss(*a):
            it = iter(a)
            x_, t_, w_, p_ = [next(it) if v is not None else None for v in (x, t, weight, pos_weight)]
            return reference.binary_cross_entropy_with_logits(x_, t_, w_, reduction, p_)

        res = iter(torch.func.vjp(loss, *given)[1](up))
        grads = [next(res) if v is not None else None for v in (x, t, weight, pos_weight)]
        grads = [g if need else None for g, need in zip(grads, needs)]
    # contiguous, as the fake implementation says (the VJP keeps a transposed input's strides)
    return [g.contiguous() if g is not None else x.new_empty(0) for g in grads]


@_bce_bwd_op.register_fake
def _(x, t, weight, pos_weight, reduction, up, needs):
    likes = (x, t, weight, pos_weight)
    return [_fake_like(v) if (need and v is not None) else x.new_empty(0) for v, need in zip(likes, needs)]


@_custom_op("fastgan::triton_grad_norm_penalty")
def _penalty_op(g: Tensor, center: float, one_sided: bool, reduction: str) -> List[Tensor]:
    return penalty_forward(g, center, one_sided, reduction)


@_penalty_op.register_fake
def _(g, center, one_sided, reduction):
    B = g.shape[0]
    out = g.new_empty((B,)) if reduction == "none" else g.new_empty(())
    return [out, g.new_empty((B,), dtype=_acc_dtype(g.dtype))]


@_custom_op("fastgan::triton_grad_norm_penalty_backward")
def _penalty_bwd_op(g: Tensor, sq: Tensor, center: float, one_sided: bool, reduction: str, up: Tensor) -> Tensor:
    return penalty_backward(g, sq, center, one_sided, reduction, up)


@_penalty_bwd_op.register_fake
def _(g, sq, center, one_sided, reduction, up):
    return _fake_like(g)


# --------------------------------------------------------------------------- autograd

class _PairLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, kwargs: dict, opts: PairOptions, reduction: str, real, fake):
        ctx.meta = (name, kwargs, opts, reduction)
        ctx.save_for_backward(real, fake)
        if compiling():
            outs = _pair_loss_op(real, fake, int(opts.kind), opts.params(), reduction)
        else:
            outs = pair_forward(real, fake, opts, reduction)
        if reduction == "none":
            return (outs[0], outs[1]) if real is not None else outs[1]
        return outs[0]

    @staticmethod
    def backward(ctx, *grads):
        name, kwargs, opts, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        if compiling():
            g_r, g_f = _pair_loss_bwd_op(real, fake, int(opts.kind), opts.params(), reduction, list(grads))
        elif torch.is_grad_enabled() or vmapped(grads):
            inputs = [real, fake] if real is not None else [fake]
            needs = ctx.needs_input_grad[4:] if real is not None else ctx.needs_input_grad[5:]
            res = op_vjp(name, kwargs, reduction, inputs, grads, needs)
            g_r, g_f = res if real is not None else (None, res[0])
        else:
            g_r, g_f = pair_backward(real, fake, opts, reduction, grads)
        return None, None, None, None, (g_r if real is not None else None), g_f


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, reduction: str, x, t, weight, pos_weight):
        ctx.reduction = reduction
        ctx.save_for_backward(x, t, weight, pos_weight)
        if compiling():
            return _bce_op(x, t, weight, pos_weight, reduction)
        return bce_forward(x, t, weight, pos_weight, reduction)

    @staticmethod
    def backward(ctx, up):
        x, t, weight, pos_weight = ctx.saved_tensors
        reduction = ctx.reduction
        needs = ctx.needs_input_grad[1:]
        if compiling():
            grads = _bce_bwd_op(x, t, weight, pos_weight, reduction, up, list(needs))
            return (None, *[g if need else None for g, need in zip(grads, needs)])
        if any(needs[1:]) or torch.is_grad_enabled() or vmapped([up]):
            # gradients of target / weight / pos_weight, or a graph of the backward
            return (None, *reference_vjp(
                lambda a, b, w, p: reference.binary_cross_entropy_with_logits(a, b, w, reduction, p),
                [x, t, weight, pos_weight], [up], needs))
        return None, bce_backward(x, t, weight, pos_weight, reduction, up), None, None, None


class _GradNormPenalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, center: float, one_sided: bool, reduction: str, g):
        if compiling():
            out, sq = _penalty_op(g, center, one_sided, reduction)
        else:
            out, sq = penalty_forward(g, center, one_sided, reduction)
        ctx.meta = (center, one_sided, reduction)
        ctx.save_for_backward(g, sq)
        return out

    @staticmethod
    def backward(ctx, up):
        center, one_sided, reduction = ctx.meta
        g, sq = ctx.saved_tensors
        if compiling():
            return None, None, None, _penalty_bwd_op(g, sq, center, one_sided, reduction, up)
        if torch.is_grad_enabled() or vmapped([up]):
            (dg,) = reference_vjp(lambda x: reference.grad_norm_penalty(
                x, center=center, one_sided=one_sided, reduction=reduction), [g], [up], [True])
            return None, None, None, dg
        return None, None, None, penalty_backward(g, sq, center, one_sided, reduction, up)


class _FeatureMatching(torch.autograd.Function):
    """Feature matching over lists of maps (eager only: ``backends.feature_matching``
    sends compile and transforms to the reference): one forward launch over every map
    (+ one sum), one backward launch writing every gradient."""

    @staticmethod
    def forward(ctx, p: int, reduction: str, n: int, *maps):
        ctx.meta = (p, reduction, n)
        ctx.save_for_backward(*maps)
        return fm_forward(maps[:n], maps[n:], p, reduction)

    @staticmethod
    def backward(ctx, up):
        p, reduction, n = ctx.meta
        maps = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled() or vmapped([up]):
            grads = reference_vjp(lambda *xs: reference.feature_matching_maps(xs[:n], xs[n:], p=p,
                                                                               reduction=reduction),
                                   list(maps), [up], needs)
            return (None, None, None, *grads)
        grads_r, grads_g = fm_backward(maps[:n], maps[n:], p, reduction, up, needs[:n], needs[n:])
        return (None, None, None, *grads_r, *grads_g)


class _PairLossList(torch.autograd.Function):
    """A pair loss over lists of tensors, one real and one fake per discriminator (a
    generator loss: fakes only): the ``(N,)`` per-discriminator losses from one
    multi-tensor forward (+ one sum), gradients from one multi-tensor backward launch;
    with a graph of the backward or under vmap, the reference's VJP."""

    @staticmethod
    def forward(ctx, name: str, kwargs: dict, opts: PairOptions, reduction: str, has_real: bool, *tensors):
        ctx.meta = (name, kwargs, opts, reduction, has_real)
        ctx.save_for_backward(*tensors)
        n = len(tensors) // 2 if has_real else len(tensors)
        return pair_list_forward(tensors[:n] if has_real else None, tensors[n:] if has_real else tensors, opts,
                                 reduction)

    @staticmethod
    def backward(ctx, up):
        name, kwargs, opts, reduction, has_real = ctx.meta
        tensors = ctx.saved_tensors
        needs = ctx.needs_input_grad[5:]
        n = len(tensors) // 2 if has_real else len(tensors)
        if torch.is_grad_enabled() or vmapped([up]):
            ref = OPS[name].reference

            def losses(*xs):
                members = zip(xs[:n], xs[n:]) if has_real else zip(xs)
                return torch.stack([ref(*mem, **kwargs, reduction=reduction) for mem in members])
            grads = reference_vjp(losses, tensors, [up], needs)
        else:
            grads = pair_list_backward(tensors[:n] if has_real else None, tensors[n:] if has_real else tensors,
                                       opts, reduction, up, needs)
        return (None, None, None, None, None, *grads)


# --------------------------------------------------------------------------- relativistic losses (RaGAN, RpGAN)
#
# The batch sums, the fused BCE terms on the shifted scores with Σa, Σb in the same pass,
# then one element-wise backward (the math is in kernels/relativistic.py's docstring);
# RpGAN one pass over x and y each way.  Every scalar stays on the device.

# RaGAN labels (t_r, t_f); RpGAN: generator (s = y − x) or discriminator (s = x − y)
RAGAN_LABELS = {"ragan_d_loss": (1.0, 0.0), "ragan_g_loss": (0.0, 1.0)}
RPGAN_GEN = {"rpgan_d_loss": 0, "rpgan_g_loss": 1}


def _rel_kernels():
    """``fastgan.kernels.relativistic``, imported on first use (``TRITON_INTERPRET`` is read
    when the kernels are decorated)."""
    from ..kernels import relativistic
    return relativistic


# --------------------------------------------------------------------------- RaGAN launchers

def _ragan_params(k, labels: Tuple[float, float], reduction: str, n_r: int, n_f: int):
    return (*k.split(labels[0]), *k.split(_weight(reduction, n_r)),
            *k.split(labels[1]), *k.split(_weight(reduction, n_f)))


def ragan_forward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str):
    """``(outs, stats)``: ``outs`` is ``[loss]`` or, with ``"none"``, ``[real terms, fake
    terms]``; ``stats`` (accumulation dtype, on the device) is ``(Σx, Σy, Σa, Σb)``
    (``Σa``, ``Σb`` only when reduced), what the backward reads."""
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    acc = _acc_dtype(fake.dtype)
    common = dict(F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    finish = dict(BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    stats = torch.empty(4, dtype=acc, device=fake.device)
    ab = stats[2:]
    plan = k.reduce_plan(n_r + n_f)
    part = None
    # stage 1: Σx, Σy
    if plan.final:
        k.side_sums_kernel[(1,)](rk, fk, stats, n_r, n_f, plan.iters, 1, **common)
    else:
        part = torch.empty(3 * plan.programs, dtype=acc, device=fake.device)
        k.side_sums_kernel[(plan.programs,)](rk, fk, part, n_r, n_f, plan.iters, plan.programs, **common)
        k.sum_rows_kernel[(2,)](part, stats, stats[1:], plan.programs, 0.0, **finish)
    params = _ragan_params(k, labels, reduction, n_r, n_f)
    if reduction == "none":
        out_r, out_f = torch.empty_like(rk), torch.empty_like(fk)
        if n_r + n_f:
            k.ragan_kernel[(k.elementwise_grid(n_r + n_f),)](
                rk, fk, stats, rk, fk, out_r, out_f, ab, stats, n_r, n_f, 1, 1, *params, 0.0,
                MODE=k.MODE_TERMS, FINAL=0, **common)
        return [out_r.view(real.shape), out_f.view(fake.shape)], stats
    # stages 2 and 3: the loss, Σa, Σb
    bias = _bias(reduction, (n_r, n_f))
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.ragan_kernel[(1,)](rk, fk, stats, rk, fk, out, out, ab, ab, n_r, n_f, plan.iters, 1, *params, bias,
                             MODE=k.MODE_LOSS, FINAL=1, **common)
    else:
        k.ragan_kernel[(plan.programs,)](rk, fk, stats, rk, fk, out, out, ab, part, n_r, n_f, plan.iters,
                                         plan.programs, *params, 0.0, MODE=k.MODE_LOSS, FINAL=0, **common)
        k.sum_rows_kernel[(3,)](part, out, ab, plan.programs, bias, **finish)
    return [out], stats


def ragan_backward(real: Tensor, fake: Tensor, labels: Tuple[float, float], reduction: str, stats: Tensor,
                   grads: Sequence[Tensor], needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[d real, d fake]`` (None where ``needs`` is unset) for the upstream ``grads``
    (one 0-d tensor; with ``"none"`` one per output)."""
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n_r, n_f = rk.numel(), fk.numel()
    common = dict(F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    params = _ragan_params(k, labels, reduction, n_r, n_f)
    ew = reduction == "none"
    if ew:
        # Σ g_r·a and Σ g_f·b: one reduction launch (and its finish above one program)
        up = fk
        up_r, up_f = _flat(grads[0].to(rk.dtype)), _flat(grads[1].to(fk.dtype))
        ab = torch.empty(2, dtype=stats.dtype, device=fake.device)
        plan = k.reduce_plan(n_r + n_f)
        if plan.final:
            k.ragan_kernel[(1,)](rk, fk, stats, up_r, up_f, rk, fk, ab, ab, n_r, n_f, plan.iters, 1, *params, 0.0,
                                 MODE=k.MODE_DOT, FINAL=1, **common)
        else:
            part = torch.empty(2 * plan.programs, dtype=stats.dtype, device=fake.device)
            k.ragan_kernel[(plan.programs,)](rk, fk, stats, up_r, up_f, rk, fk, ab, part, n_r, n_f, plan.iters,
                                             plan.programs, *params, 0.0, MODE=k.MODE_DOT, FINAL=0, **common)
            k.sum_rows_kernel[(2,)](part, ab, ab[1:], plan.programs, 0.0, BLOCK=k.PARTIALS_BLOCK,
                                    num_warps=k.NUM_WARPS)
    else:
        up = grads[0].to(fk.dtype)
        up_r = up_f = fk
        ab = stats[2:]
    need_r, need_f = needs
    g_r = torch.empty_like(rk) if need_r else None
    g_f = torch.empty_like(fk) if need_f else None
    nb_r = k.elementwise_grid(n_r) if n_r else 0
    # the tiles of the sides whose gradient is needed
    if need_r and need_f:
        b_first, b_stop, grid = 0, nb_r + (k.elementwise_grid(n_f) if n_f else 0), k.elementwise_grid(n_r + n_f)
    elif need_r:
        b_first, b_stop, grid = 0, nb_r, nb_r
    else:
        b_first, b_stop = nb_r, nb_r + (k.elementwise_grid(n_f) if n_f else 0)
        grid = b_stop - b_first
    if b_stop > b_first:
        k.ragan_bwd_kernel[(grid,)](
            rk, fk, stats, ab, up, up_r, up_f, g_r if need_r else fk, g_f if need_f else fk,
            n_r, n_f, b_first, b_stop, *params, ELEMENTWISE_UP=int(ew), **common)
    return [g_r.view(real.shape) if need_r else None, g_f.view(fake.shape) if need_f else None]


# --------------------------------------------------------------------------- RpGAN launchers

def rpgan_forward(real: Tensor, fake: Tensor, gen: int, reduction: str) -> Tensor:
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n = rk.numel()
    common = dict(GEN=gen, F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    if reduction == "none":
        out = torch.empty_like(rk)
        if n:
            k.rpgan_fwd_kernel[(k.elementwise_grid(n),)](rk, fk, out, n, 1, *k.split(1.0), 0.0,
                                                         REDUCE=0, FINAL=0, **common)
        return out.view(real.shape)
    w = k.split(_weight(reduction, n))
    bias = _bias(reduction, (n,))
    plan = k.reduce_plan(n)
    out = torch.empty((), dtype=fake.dtype, device=fake.device)
    if plan.final:
        k.rpgan_fwd_kernel[(1,)](rk, fk, out, n, plan.iters, *w, bias, REDUCE=1, FINAL=1, **common)
    else:
        part = torch.empty(plan.programs, dtype=_acc_dtype(fake.dtype), device=fake.device)
        k.rpgan_fwd_kernel[(plan.programs,)](rk, fk, part, n, plan.iters, *w, 0.0, REDUCE=1, FINAL=0, **common)
        k.sum_partials_kernel[(1,)](part, out, plan.programs, bias, BLOCK=k.PARTIALS_BLOCK, num_warps=k.NUM_WARPS)
    return out


def rpgan_backward(real: Tensor, fake: Tensor, gen: int, reduction: str, up: Tensor,
                   needs: Sequence[bool]) -> List[Optional[Tensor]]:
    k = _rel_kernels()
    rk, fk = _flat(real), _flat(fake)
    n = rk.numel()
    ew = reduction == "none"
    upk = _flat(up.to(fk.dtype)) if ew else up.to(fk.dtype)
    need_r, need_f = needs
    g_r = torch.empty_like(rk) if need_r else None
    g_f = torch.empty_like(fk) if need_f else None
    if n:
        k.rpgan_bwd_kernel[(k.elementwise_grid(n),)](
            rk, fk, upk, g_r if need_r else fk, g_f if need_f else fk, n, *k.split(_weight(reduction, n)),
            GEN=gen, ELEMENTWISE_UP=int(ew), NEED_R=int(need_r), NEED_F=int(need_f),
            F64=fake.dtype == torch.float64, BLOCK=k.BLOCK, num_warps=k.NUM_WARPS)
    return [g_r.view(real.shape) if need_r else None, g_f.view(fake.shape) if need_f else None]


# --------------------------------------------------------------------------- autograd

class _RaGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        outs, stats = ragan_forward(real, fake, RAGAN_LABELS[name], reduction)
        ctx.meta = (name, reduction)
        ctx.stats = stats
        ctx.save_for_backward(real, fake)
        return (outs[0], outs[1]) if reduction == "none" else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped(grads):
            g_r, g_f = op_vjp(name, {}, reduction, [real, fake], grads, needs)
        else:
            g_r, g_f = ragan_backward(real, fake, RAGAN_LABELS[name], reduction, ctx.stats, grads, needs)
        return None, None, g_r, g_f


class _RpGAN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, reduction: str, real, fake):
        ctx.meta = (name, reduction)
        ctx.save_for_backward(real, fake)
        return rpgan_forward(real, fake, RPGAN_GEN[name], reduction)

    @staticmethod
    def backward(ctx, up):
        name, reduction = ctx.meta
        real, fake = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled() or vmapped([up]):
            g_r, g_f = op_vjp(name, {}, reduction, [real, fake], [up], needs)
        else:
            g_r, g_f = rpgan_backward(real, fake, RPGAN_GEN[name], reduction, up, needs)
        return None, None, g_r, g_f


# --------------------------------------------------------------------------- divergences
#
# gaussian_kl: a (B, D) view, forward gkl_partial + penalty_finish (its CENTER_ZERO term is the
# row sum itself), backward gkl_bwd: one read of each input, one write of each gradient asked
# for.  kl_div_logits / js_div_logits: the distribution dim moved last and made contiguous
# (one copy when dim is not last or the input is not contiguous), rows of length D; forward
# dist_stats (only when rows are split across programs) + dist_fwd + dist_finish, the per-row
# statistics and divergences saved for the one-pass backward dist_bwd.

def _div_kernels():
    """``fastgan.kernels.divergence``, imported on first use (``TRITON_INTERPRET`` is read
    when the kernels are decorated)."""
    from ..kernels import divergence
    return divergence


def _f64(x: Tensor) -> bool:
    return x.dtype == torch.float64


# --------------------------------------------------------------------------- gaussian_kl

def _batch_rows(x: Tensor) -> Tuple[int, int]:
    B = x.shape[0]
    return B, (x.numel() // B if B else 0)


def gkl_forward(mu: Tensor, lv: Tensor, reduction: str) -> Tensor:
    """``Σ_j ½(mu² + expm1(lv) − lv)`` per sample, reduced over the batch."""
    k = _div_kernels()
    B, D = _batch_rows(mu)
    acc = _acc_dtype(mu.dtype)
    plan = k.row_plan(B, D)
    part = torch.empty(B * plan.splits, dtype=acc, device=mu.device)
    k.gkl_partial_kernel[plan.grid](_flat(mu), _flat(lv), part, B, D, plan.splits, plan.iters, F64=_f64(mu),
                                    ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    rowsum = torch.empty(B, dtype=acc, device=mu.device)
    out = torch.empty((B,) if reduction == "none" else (), dtype=mu.dtype, device=mu.device)
    k.penalty_finish_kernel[(1,)](part, rowsum, out, out, B, plan.splits, *k.split(0.0),
                                  *k.split(_weight(reduction, B)), _bias(reduction, (B,)), ONE_SIDED=0,
                                  CENTER_ZERO=1, REDUCE=int(reduction != "none"), F64=_f64(mu),
                                  ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out


def gkl_backward(mu: Tensor, lv: Tensor, reduction: str, up: Tensor,
                 needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂mu, ∂logvar]`` (None where not asked for): ``mu·u_b·w``, ``½ expm1(lv)·u_b·w``."""
    k = _div_kernels()
    B, D = _batch_rows(mu)
    mk, lk = _flat(mu), _flat(lv)
    gmu = torch.empty_like(mk) if needs[0] else None
    glv = torch.empty_like(lk) if needs[1] else None
    plan = k.row_plan(B, D)
    ew = int(reduction == "none")
    upk = _flat(up.to(mu.dtype)) if ew else up.to(mu.dtype)
    if mk.numel():
        k.gkl_bwd_kernel[plan.grid](mk, lk, upk, gmu if gmu is not None else mk, glv if glv is not None else lk,
                                    B, D, plan.iters, *k.split(_weight(reduction, B)), NEED_MU=int(needs[0]),
                                    NEED_LV=int(needs[1]), ELEMENTWISE_UP=ew, F64=_f64(mu), ROWS=plan.rows,
                                    BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.view(mu.shape) if g is not None else None for g in (gmu, glv)]


# --------------------------------------------------------------------------- kl / js

def _dist_rows(x: Tensor, dim: int) -> Tuple[Tensor, int, int]:
    """``x`` with ``dim`` moved last, contiguous (a copy unless it already is), and its
    ``(rows, D)``."""
    xm = x.movedim(dim, -1).contiguous()
    D = xm.shape[-1]
    R = xm.numel() // D if D else int(torch.Size(xm.shape[:-1]).numel())
    return xm, R, D


def dist_forward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str) -> Tuple[Tensor, Tensor, Tensor]:
    """``(loss or per-row terms, row statistics (R, 4), row divergences (R, 2))``."""
    k = _div_kernels()
    xm, R, D = _dist_rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    acc = _acc_dtype(p.dtype)
    f64 = _f64(p)
    plan = k.row_plan(R, D)
    S = plan.splits
    common = dict(F64=f64, ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    stat = torch.empty(R, k.STATS, dtype=acc, device=p.device)
    div = torch.empty(R * S, k.PARTS, dtype=acc, device=p.device)
    if S > 1:
        part = torch.empty(R * S, k.STATS, dtype=acc, device=p.device)
        k.dist_stats_kernel[plan.grid](xm, ym, part, R, D, S, plan.iters, **common)
    else:
        part = stat  # not read
    k.dist_fwd_kernel[plan.grid](xm, ym, part, stat, div, R, D, S, plan.iters, JS=int(js), SPLIT=int(S > 1),
                                 SPLITS=k.FINISH_SPLITS, **common)
    rowdiv = torch.empty(R, k.PARTS, dtype=acc, device=p.device)
    none = reduction == "none"
    out = torch.empty(xm.shape[:-1] if none else (), dtype=p.dtype, device=p.device)
    k.dist_finish_kernel[(1,)](div, rowdiv, out, out, R, S, *k.split(_weight(reduction, R)),
                               _bias(reduction, (R,)), JS=int(js), REDUCE=int(not none), F64=f64,
                               ROWS=k.FINISH_ROWS, SPLITS=k.FINISH_SPLITS, num_warps=k.NUM_WARPS)
    return out, stat, rowdiv


def dist_backward(p: Tensor, q: Tensor, dim: int, js: bool, reduction: str, stat: Tensor, rowdiv: Tensor,
                  up: Tensor, needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """``[∂p_logits, ∂q_logits]`` (None where not asked for), shaped like the inputs (views
    with ``dim`` moved back)."""
    k = _div_kernels()
    xm, R, D = _dist_rows(p, dim)
    ym = q.movedim(dim, -1).contiguous()
    gx = torch.empty_like(xm) if needs[0] else None
    gy = torch.empty_like(ym) if needs[1] else None
    plan = k.row_plan(R, D)
    ew = int(reduction == "none")
    upk = _flat(up.to(p.dtype)) if ew else up.to(p.dtype)
    if xm.numel():
        k.dist_bwd_kernel[plan.grid](xm, ym, stat, rowdiv, upk, gx if gx is not None else xm,
                                     gy if gy is not None else ym, R, D, plan.iters, *k.split(_weight(reduction, R)),
                                     JS=int(js), NEED_P=int(needs[0]), NEED_Q=int(needs[1]), ELEMENTWISE_UP=ew,
                                     F64=_f64(p), ROWS=plan.rows, BLOCK_D=plan.block_d, num_warps=k.NUM_WARPS)
    return [g.movedim(-1, dim) if g is not None else None for g in (gx, gy)]


# --------------------------------------------------------------------------- autograd

class _Divergence(torch.autograd.Function):
    """One op of the three: forward and backward the fused kernels; a backward that
    records a graph, or runs under vmap, is the reference's VJP."""

    @staticmethod
    def forward(ctx, name: str, dim: int, reduction: str, a, b):
        if name == "gaussian_kl":
            out = gkl_forward(a, b, reduction)
            saved = ()
        else:
            out, stat, rowdiv = dist_forward(a, b, dim, name == "js_div_logits", reduction)
            saved = (stat, rowdiv)
        ctx.meta = (name, dim, reduction)
        ctx.save_for_backward(a, b, *saved)
        return out

    @staticmethod
    def backward(ctx, up):
        name, dim, reduction = ctx.meta
        a, b, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled() or vmapped([up]):
            kw = {} if name == "gaussian_kl" else {"dim": dim}
            grads = op_vjp(name, kw, reduction, [a, b], [up], needs)
        elif name == "gaussian_kl":
            grads = gkl_backward(a, b, reduction, up, needs)
        else:
            grads = dist_backward(a, b, dim, name == "js_div_logits", reduction, *saved, up, needs)
        return (None, None, None, *grads)


# --------------------------------------------------------------------------- entry points

def pair_loss(name: str, kwargs: dict, opts: PairOptions, reduction: str, real: Optional[Tensor], fake: Tensor):
    """A pair loss with autograd; ``real`` and ``fake`` in one dtype (``backends.run``
    promotes).  ``name`` and ``kwargs`` select the reference for the VJP backward."""
    return _PairLoss.apply(name, kwargs, opts, reduction, real, fake)


def pair_loss_list(name: str, kwargs: dict, opts: PairOptions, reduction: str,
                   reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor]) -> Tensor:
    """A pair loss over lists (one real and one fake per discriminator; ``reals`` None for
    a generator loss), all of one dtype and device, any shapes: the 1-D tensor of the N
    per-discriminator reduced losses (``reduction`` "mean" or "sum"), differentiable.
    One multi-tensor launch + one sum forward, one launch backward, whatever N."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"pair_loss_list: reduction must be 'mean' or 'sum', got {reduction!r}")
    if reals is not None:
        if len(reals) != len(fakes):
            raise ValueError(f"pair_loss_list: {len(reals)} real and {len(fakes)} fake tensors")
        return _PairLossList.apply(name, kwargs, opts, reduction, True, *reals, *fakes)
    return _PairLossList.apply(name, kwargs, opts, reduction, False, *fakes)


def bce_loss(x: Tensor, t: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor], reduction: str):
    return _BCEWithLogits.apply(reduction, x, t, weight, pos_weight)


def penalty(g: Tensor, center: float, one_sided: bool, reduction: str):
    return _GradNormPenalty.apply(center, one_sided, reduction, g)


def feature_matching(reals: Sequence[Tensor], fakes: Sequence[Tensor], p: int, reduction: str):
    """``Σ_m reduce(|g_m − r_m|^p)`` over flat lists of same-shaped maps of one dtype."""
    return _FeatureMatching.apply(p, reduction, len(reals), *reals, *fakes)


def relativistic(name: str, real: Tensor, fake: Tensor, reduction: str):
    """A relativistic loss (``ragan_d_loss``, ``ragan_g_loss``, ``rpgan_d_loss``,
    ``rpgan_g_loss``) with autograd, fused forward and backward; ``real`` and ``fake``
    in one dtype (``backends.run`` promotes).  ``"none"``: RaGAN the tuple of both
    sides' terms, RpGAN the paired terms."""
    if name in RAGAN_LABELS:
        return _RaGAN.apply(name, reduction, real, fake)
    return _RpGAN.apply(name, reduction, real, fake)


def divergence(name: str, tensors: tuple, kwargs: dict, reduction: str) -> Tensor:
    """``name`` (``gaussian_kl``, ``kl_div_logits``, ``js_div_logits``) on the fused kernels,
    with autograd; the two tensors in one dtype (``backends.run`` promotes)."""
    a, b = tensors
    dim = kwargs.get("dim", -1)
    if name != "gaussian_kl":
        dim = dim % a.dim()
    return _Divergence.apply(name, dim, reduction, a, b)
