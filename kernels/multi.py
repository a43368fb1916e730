"""Multi-tensor Triton kernels: one launch over every tensor of a list loss.

A multi-discriminator GAN (HiFi-GAN: 8 score tensors, 54 feature maps) reduces lists
of tensors of different shapes.  These kernels take the whole list in one launch, as
``torch._foreach`` and apex's multi-tensor apply do: a small int64 table on the
device holds, per *entry* (one tensor, or one pair of same-shaped maps), its
address, its size, its scalars and its first program; program ``pid`` finds its
entry by counting the entries whose first program is ``<= pid`` (one vector load and
a sum per ``CHUNK`` entries) and reads its tensor through the address, cast to a
pointer of the element type of ``x0_ptr`` (any member: only its type is used).

* Entries of a pair loss: per discriminator its real tensor (a discriminator loss)
  and its fake tensor, each with its side's ``sgn`` and label, its reduction weight
  (1/n for "mean", 1 for "sum", nan for an empty tensor's mean: torch's mean of
  nothing) and its slot (the discriminator's index).  Entries of feature matching:
  per map the (real, fake) pair and its weight.
* Programs: each entry gets ``max(1, ceil(tiles / iters))`` programs, ``iters`` tiles
  each (``plan``: one ``iters`` for the call, so at most ``MAX_PROGRAMS`` + entries
  programs); a big tensor gets many programs, a tiny one one.
* Forward: each program writes its weighted partial ``w · Σ terms`` to ``part[pid]``;
  a second launch sums, per discriminator, the partials of its entries in a fixed
  order (``multi_sum_kernel``; feature matching, one output: ``sum_partials_kernel``).
  No atomics: bit-identical results run after run.
* Backward: one launch; each program reads the upstream gradient of its entry's
  slot and writes the gradient of its tensor (feature matching: of the fake and, if
  asked, the real map) through the table's output addresses.
* Tiles inside a tensor load and store without a mask, the last, partial tile of
  each tensor masked; int64 offsets.  ``ALIGNED`` (every address of the table
  16-byte aligned, checked on the host) lets the compiler use 128-bit accesses for
  the full tiles; a member at an odd address (a view with a storage offset) selects
  the ``ALIGNED=0`` specialisation, correct for any address, in which each program
  checks its own entry's addresses and takes the 128-bit path when they are aligned
  (so one odd view narrows only its own entry's accesses).

The element formulas are those of ``kernels/common.py`` (``pair_term``, ``pair_dterm``) and
``kernels/feature.py`` (``diff``, ``fm_term``, ``grad``), written once.
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

import struct
from typing import List, Sequence, Tuple

import triton
import triton.language as tl

from ..registry import Kind
from .common import (FLOAT_DTYPES, NUM_WARPS, pair_dterm, pair_term, ptr_type, row_body, row_ends,  # noqa: F401
                     span_bounds, to_acc, vec)
from .feature import diff, fm_term, grad
from .losses import BLOCK, MAX_PROGRAMS, PARTIALS_BLOCK, sum_partials_kernel  # noqa: F401

CHUNK = 256             # entries the lookup compares per step (one step up to 256 entries)
# programs of a backward launch at most (+ entries): no partials to sum there, so more
# programs than the forward's MAX_PROGRAMS, each still several tiles of a big tensor
# (the lookup amortised): HiFi-GAN's 54 maps at batch 16 (123 M elements), 8 tiles each
BWD_MAX_PROGRAMS = 16 * MAX_PROGRAMS
ALIGN_BYTES = 16        # ALIGNED: every address of the table a multiple of this
ALIGN16: tl.constexpr = tl.constexpr(ALIGN_BYTES)

# the table's columns (column c of entry e at meta[c·E + e]); common to both families
START: tl.constexpr = tl.constexpr(0)   # the entry's first program
N: tl.constexpr = tl.constexpr(1)       # its number of elements
W: tl.constexpr = tl.constexpr(2)       # its reduction weight (float64 bits)
# pair losses
X: tl.constexpr = tl.constexpr(3)       # address of the scores
SGN: tl.constexpr = tl.constexpr(4)     # the side's sgn (float64 bits)
LABEL: tl.constexpr = tl.constexpr(5)   # the side's label (float64 bits)
SLOT: tl.constexpr = tl.constexpr(6)    # the discriminator (index of the output / upstream gradient)
GX: tl.constexpr = tl.constexpr(7)      # address of the gradient (backward)
PAIR_COLUMNS = 8
# feature matching
R: tl.constexpr = tl.constexpr(3)       # address of the real map
G: tl.constexpr = tl.constexpr(4)       # address of the fake map
GG: tl.constexpr = tl.constexpr(5)      # address of the fake map's gradient (0: not wanted)
GR: tl.constexpr = tl.constexpr(6)      # address of the real map's gradient (0: not wanted)
FM_COLUMNS = 7

# int arguments that never specialise (1 or a multiple of 16 would compile another variant)
TABLE_INTS = ["E", "iters"]


# --------------------------------------------------------------------------- device helpers
# (few and flat: each call of a helper costs the Triton interpreter a fraction of a ms)

@triton.jit
def _locate(meta_ptr, E, iters, F64: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    """This program's ``(entry, size, weight, first tile, end tile)``.  The entry is the
    last one whose first program is ``<= pid`` (first programs ascend), found by counting
    them ``CHUNK`` at a time; the program takes ``iters`` tiles of the entry's share,
    the entry's last program the rest."""
    pid = tl.program_id(0).to(tl.int64)
    count = tl.program_id(0) * 0
    for c in range(0, E, CHUNK):
        idx = c + tl.arange(0, CHUNK)
        m = idx < E
        first = tl.load(meta_ptr + START * E + idx, mask=m, other=0)
        count += tl.sum(((first <= pid) & m).to(tl.int32), axis=0)
    e = count - 1
    n = tl.load(meta_ptr + N * E + e)
    w = tl.load(meta_ptr + W * E + e).to(tl.float64, bitcast=True)
    if not F64:
        w = w.to(tl.float32)
    b0 = (pid - tl.load(meta_ptr + START * E + e)) * iters
    b1 = tl.minimum(b0 + iters, (n + BLOCK - 1) // BLOCK)
    return pid, e, n, w, b0, b1


@triton.jit
def _float(meta_ptr, col, E, e, F64: tl.constexpr):
    """A float64 stored as its bits, in the compute dtype (exact for float64 inputs,
    rounded once for the others, as ``common.param``)."""
    v = tl.load(meta_ptr + col * E + e).to(tl.float64, bitcast=True)
    if not F64:
        v = v.to(tl.float32)
    return v


@triton.jit
def _address(meta_ptr, col, E, e, like_ptr, ALIGNED: tl.constexpr):
    """The address in column ``col`` as a pointer of ``like_ptr``'s type; with ALIGNED
    known to be 16-byte aligned (full tiles then load and store 128 bits at a time)."""
    p = tl.load(meta_ptr + col * E + e).to(like_ptr.dtype)
    if ALIGNED:
        p = tl.multiple_of(p, 16)
    return p


@triton.jit
def _on16(meta_ptr, col, E, e):
    """Is the address in column ``col`` 16-byte aligned (0, no address, is)?"""
    return tl.load(meta_ptr + col * E + e) % ALIGN16 == 0


# --------------------------------------------------------------------------- pair losses
# ALIGNED=0 (some address of the call not 16-byte aligned): each program checks its own
# entry's addresses and runs the tile loop on pointers hinted 16-byte aligned when they
# are (128-bit full tiles), on the plain pointers otherwise; ALIGNED=1 skips the check.

@triton.jit
def _pair_fwd_tiles(x_ptr, n, b0, b1, sgn, t, KIND: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    acc = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    for b in range(b0, b1):
        offs = b * BLOCK + tl.arange(0, BLOCK)
        if b * BLOCK + BLOCK <= n:
            acc += pair_term(to_acc(tl.load(x_ptr + offs), F64), sgn, t, KIND)
        else:
            m = offs < n
            v = pair_term(to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64), sgn, t, KIND)
            acc += tl.where(m, v, 0.0)
    return acc


@triton.jit(do_not_specialize=TABLE_INTS)
def multi_pair_fwd_kernel(meta_ptr, x0_ptr, part_ptr, E, iters,
                          KIND: tl.constexpr, F64: tl.constexpr, ALIGNED: tl.constexpr,
                          BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    """part[pid] = w · Σ term(x; sgn, label) over this program's tiles of its entry."""
    pid, e, n, w, b0, b1 = _locate(meta_ptr, E, iters, F64, BLOCK, CHUNK)
    x_ptr = _address(meta_ptr, X, E, e, x0_ptr, ALIGNED)
    sgn = _float(meta_ptr, SGN, E, e, F64)
    t = _float(meta_ptr, LABEL, E, e, F64)
    if ALIGNED:
        acc = _pair_fwd_tiles(x_ptr, n, b0, b1, sgn, t, KIND, F64, BLOCK)
    elif _on16(meta_ptr, X, E, e):
        acc = _pair_fwd_tiles(tl.multiple_of(x_ptr, 16), n, b0, b1, sgn, t, KIND, F64, BLOCK)
    else:
        acc = _pair_fwd_tiles(x_ptr, n, b0, b1, sgn, t, KIND, F64, BLOCK)
    tl.store(part_ptr + pid, w * tl.sum(acc, axis=0))


@triton.jit
def _pair_bwd_tiles(x_ptr, g_ptr, n, b0, b1, sgn, t, uw, x0_ptr, KIND: tl.constexpr, F64: tl.constexpr,
                    BLOCK: tl.constexpr):
    for b in range(b0, b1):
        offs = b * BLOCK + tl.arange(0, BLOCK)
        if b * BLOCK + BLOCK <= n:
            g = uw * pair_dterm(to_acc(tl.load(x_ptr + offs), F64), sgn, t, KIND)
            tl.store(g_ptr + offs, g.to(x0_ptr.dtype.element_ty))
        else:
            m = offs < n
            g = uw * pair_dterm(to_acc(tl.load(x_ptr + offs, mask=m, other=0.0), F64), sgn, t, KIND)
            tl.store(g_ptr + offs, g.to(x0_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=TABLE_INTS)
def multi_pair_bwd_kernel(meta_ptr, x0_ptr, up_ptr, E, iters,
                          KIND: tl.constexpr, F64: tl.constexpr, ALIGNED: tl.constexpr,
                          BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    """grad = up[slot] · w · d term / d x over this program's tiles, recomputed from
    the scores, written through the entry's gradient address."""
    pid, e, n, w, b0, b1 = _locate(meta_ptr, E, iters, F64, BLOCK, CHUNK)
    x_ptr = _address(meta_ptr, X, E, e, x0_ptr, ALIGNED)
    g_ptr = _address(meta_ptr, GX, E, e, x0_ptr, ALIGNED)
    sgn = _float(meta_ptr, SGN, E, e, F64)
    t = _float(meta_ptr, LABEL, E, e, F64)
    uw = to_acc(tl.load(up_ptr + tl.load(meta_ptr + SLOT * E + e)), F64) * w
    if ALIGNED:
        _pair_bwd_tiles(x_ptr, g_ptr, n, b0, b1, sgn, t, uw, x0_ptr, KIND, F64, BLOCK)
    elif _on16(meta_ptr, X, E, e) & _on16(meta_ptr, GX, E, e):
        _pair_bwd_tiles(tl.multiple_of(x_ptr, 16), tl.multiple_of(g_ptr, 16), n, b0, b1, sgn, t, uw, x0_ptr,
                        KIND, F64, BLOCK)
    else:
        _pair_bwd_tiles(x_ptr, g_ptr, n, b0, b1, sgn, t, uw, x0_ptr, KIND, F64, BLOCK)


@triton.jit
def multi_sum_kernel(part_ptr, seg_ptr, out_ptr, BLOCK: tl.constexpr):
    """out[d] = Σ part[seg[d]:seg[d+1]] in a fixed order (program d): the loss of
    discriminator d from the partials of its entries.  The partials start at any index:
    a body between 16-byte boundaries (128-bit loads) and a narrow head and tail
    (``common.span_bounds``)."""
    VEC: tl.constexpr = vec(part_ptr)
    d = tl.program_id(0)
    s0 = tl.load(seg_ptr + d)
    s1 = tl.load(seg_ptr + d + 1)
    one = tl.zeros([1], dtype=tl.int64)
    s, t, A, E = span_bounds(s0 + one, s1 + one, VEC)
    acc = tl.zeros([1, BLOCK], dtype=part_ptr.dtype.element_ty)
    for i in range(0, (s1 - s0 + BLOCK - 1) // BLOCK):
        offs, m = row_body(A, E, i, BLOCK)
        acc += tl.load(part_ptr + offs, mask=m, other=0.0)
    offs, m = row_ends(s, t, A, E, VEC)
    total = tl.sum(tl.sum(acc, axis=1), axis=0) + tl.sum(tl.sum(tl.load(part_ptr + offs, mask=m, other=0.0), axis=1),
                                                         axis=0)
    tl.store(out_ptr + d, total.to(out_ptr.dtype.element_ty))


# --------------------------------------------------------------------------- feature matching

@triton.jit
def _fm_fwd_tiles(r_ptr, g_ptr, n, b0, b1, P: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    acc = to_acc(tl.zeros([BLOCK], dtype=tl.float32), F64)
    for b in range(b0, b1):
        offs = b * BLOCK + tl.arange(0, BLOCK)
        if b * BLOCK + BLOCK <= n:
            acc += fm_term(diff(r_ptr, g_ptr, offs, n, False, F64), P)
        else:
            acc += fm_term(diff(r_ptr, g_ptr, offs, n, True, F64), P)
    return acc


@triton.jit(do_not_specialize=TABLE_INTS)
def multi_fm_fwd_kernel(meta_ptr, x0_ptr, part_ptr, E, iters,
                        P: tl.constexpr, F64: tl.constexpr, ALIGNED: tl.constexpr,
                        BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    """part[pid] = w · Σ |g − r|^P over this program's tiles of its map."""
    pid, e, n, w, b0, b1 = _locate(meta_ptr, E, iters, F64, BLOCK, CHUNK)
    r_ptr = _address(meta_ptr, R, E, e, x0_ptr, ALIGNED)
    g_ptr = _address(meta_ptr, G, E, e, x0_ptr, ALIGNED)
    if ALIGNED:
        acc = _fm_fwd_tiles(r_ptr, g_ptr, n, b0, b1, P, F64, BLOCK)
    elif _on16(meta_ptr, R, E, e) & _on16(meta_ptr, G, E, e):
        acc = _fm_fwd_tiles(tl.multiple_of(r_ptr, 16), tl.multiple_of(g_ptr, 16), n, b0, b1, P, F64, BLOCK)
    else:
        acc = _fm_fwd_tiles(r_ptr, g_ptr, n, b0, b1, P, F64, BLOCK)
    tl.store(part_ptr + pid, w * tl.sum(acc, axis=0))


@triton.jit
def _fm_bwd_tiles(r_ptr, g_ptr, gg_ptr, gr_ptr, has_g, has_r, n, b0, b1, c, x0_ptr, P: tl.constexpr,
                  F64: tl.constexpr, BLOCK: tl.constexpr):
    for b in range(b0, b1):
        offs = b * BLOCK + tl.arange(0, BLOCK)
        if b * BLOCK + BLOCK <= n:
            v = grad(diff(r_ptr, g_ptr, offs, n, False, F64), c, P)
            if has_g:
                tl.store(gg_ptr + offs, v.to(x0_ptr.dtype.element_ty))
            if has_r:
                tl.store(gr_ptr + offs, (-v).to(x0_ptr.dtype.element_ty))
        else:
            m = offs < n
            v = grad(diff(r_ptr, g_ptr, offs, n, True, F64), c, P)
            if has_g:
                tl.store(gg_ptr + offs, v.to(x0_ptr.dtype.element_ty), mask=m)
            if has_r:
                tl.store(gr_ptr + offs, (-v).to(x0_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=TABLE_INTS)
def multi_fm_bwd_kernel(meta_ptr, x0_ptr, up_ptr, E, iters,
                        P: tl.constexpr, F64: tl.constexpr, ALIGNED: tl.constexpr,
                        BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    """∂/∂g = u · w · sign(g − r) (P = 1) or u · w · 2(g − r), ∂/∂r its negation,
    each written where its address is not 0."""
    pid, e, n, w, b0, b1 = _locate(meta_ptr, E, iters, F64, BLOCK, CHUNK)
    r_ptr = _address(meta_ptr, R, E, e, x0_ptr, ALIGNED)
    g_ptr = _address(meta_ptr, G, E, e, x0_ptr, ALIGNED)
    gg_ptr = _address(meta_ptr, GG, E, e, x0_ptr, ALIGNED)
    gr_ptr = _address(meta_ptr, GR, E, e, x0_ptr, ALIGNED)
    has_g = tl.load(meta_ptr + GG * E + e) != 0
    has_r = tl.load(meta_ptr + GR * E + e) != 0
    c = to_acc(tl.load(up_ptr), F64) * w
    if ALIGNED:
        _fm_bwd_tiles(r_ptr, g_ptr, gg_ptr, gr_ptr, has_g, has_r, n, b0, b1, c, x0_ptr, P, F64, BLOCK)
    elif _on16(meta_ptr, R, E, e) & _on16(meta_ptr, G, E, e) & _on16(meta_ptr, GG, E, e) & _on16(meta_ptr, GR, E, e):
        _fm_bwd_tiles(tl.multiple_of(r_ptr, 16), tl.multiple_of(g_ptr, 16), tl.multiple_of(gg_ptr, 16),
                      tl.multiple_of(gr_ptr, 16), has_g, has_r, n, b0, b1, c, x0_ptr, P, F64, BLOCK)
    else:
        _fm_bwd_tiles(r_ptr, g_ptr, gg_ptr, gr_ptr, has_g, has_r, n, b0, b1, c, x0_ptr, P, F64, BLOCK)


# --------------------------------------------------------------------------- host side: plan and table

def plan(sizes: Sequence[int], max_programs: int = MAX_PROGRAMS) -> Tuple[int, List[int]]:
    """``(iters, firsts)``: tiles per program, and each entry's first program followed by
    the number of programs.  Each entry gets ``max(1, ceil(tiles / iters))`` programs
    with ``iters = ceil(all tiles / max_programs)``, so a call has at most
    ``max_programs`` + entries programs (the forward: ``MAX_PROGRAMS`` partials; the
    backward: ``BWD_MAX_PROGRAMS``).  Depends on the sizes alone (reproducible)."""
    tiles = [triton.cdiv(n, BLOCK) for n in sizes]
    iters = max(1, triton.cdiv(sum(tiles), max_programs))
    firsts = [0]
    for t in tiles:
        firsts.append(firsts[-1] + max(1, triton.cdiv(t, iters)))
    return iters, firsts


def bits(x: float) -> int:
    """A float64's bits as a signed int64 (``_float`` reads them back)."""
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def table(columns: Sequence[Sequence[int]], tail: Sequence[int] = ()) -> List[int]:
    """The columns one after the other (column c of entry e at ``c·E + e``), then ``tail``."""
    out: List[int] = []
    for col in columns:
        out.extend(col)
    out.extend(tail)
    return out


def pair_table(firsts, sizes, weights, xs, sgns, labels, slots, grads, tail=()) -> List[int]:
    """The pair kernels' table from one list per column (floats as float64 bits)."""
    cols = [None] * PAIR_COLUMNS
    for c, v in ((START, firsts), (N, sizes), (W, [bits(w) for w in weights]), (X, xs),
                 (SGN, [bits(s) for s in sgns]), (LABEL, [bits(t) for t in labels]), (SLOT, slots), (GX, grads)):
        cols[c.value] = v
    return table(cols, tail)


def fm_table(firsts, sizes, weights, rs, gs, grads_g, grads_r) -> List[int]:
    """The feature-matching kernels' table from one list per column (0: no gradient)."""
    cols = [None] * FM_COLUMNS
    for c, v in ((START, firsts), (N, sizes), (W, [bits(w) for w in weights]), (R, rs), (G, gs), (GG, grads_g),
                 (GR, grads_r)):
        cols[c.value] = v
    return table(cols)


def aligned(addresses: Sequence[int]) -> int:
    """ALIGNED: 1 if every address is a multiple of 16 bytes."""
    return int(all(a % ALIGN_BYTES == 0 for a in addresses))


# --------------------------------------------------------------------------- specialisations

def specializations():
    """Yield ``(name, kernel, signature, constexprs)`` for every launchable specialisation."""
    for dt in FLOAT_DTYPES:
        acc = "fp64" if dt == "fp64" else "fp32"
        f64 = dt == "fp64"
        for al in (0, 1):
            common = {"F64": f64, "ALIGNED": al, "BLOCK": BLOCK, "CHUNK": CHUNK}
            for kind in Kind:
                ce = {"KIND": int(kind), **common}
                sig = {"meta_ptr": "*i64", "x0_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "E": "i32", "iters": "i32"}
                yield f"multi_pair_fwd[{kind.name.lower()},{dt},aligned={al}]", multi_pair_fwd_kernel, sig, ce
                sig = {"meta_ptr": "*i64", "x0_ptr": ptr_type(dt), "up_ptr": ptr_type(dt), "E": "i32", "iters": "i32"}
                yield f"multi_pair_bwd[{kind.name.lower()},{dt},aligned={al}]", multi_pair_bwd_kernel, sig, ce
            for p in (1, 2):
                ce = {"P": p, **common}
                sig = {"meta_ptr": "*i64", "x0_ptr": ptr_type(dt), "part_ptr": ptr_type(acc), "E": "i32", "iters": "i32"}
                yield f"multi_fm_fwd[{dt},p={p},aligned={al}]", multi_fm_fwd_kernel, sig, ce
                sig = {"meta_ptr": "*i64", "x0_ptr": ptr_type(dt), "up_ptr": ptr_type(dt), "E": "i32", "iters": "i32"}
                yield f"multi_fm_bwd[{dt},p={p},aligned={al}]", multi_fm_bwd_kernel, sig, ce
        sig = {"part_ptr": ptr_type(acc), "seg_ptr": "*i64", "out_ptr": ptr_type(dt)}
        yield f"multi_sum[{acc}->{dt}]", multi_sum_kernel, sig, {"BLOCK": PARTIALS_BLOCK}
