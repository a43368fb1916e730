"""Shared Triton helpers of the kernel modules, written once and public.

Every kernel module (``losses``, ``relativistic``, ``penalty``, ``divergence``,
``multi``) imports what it shares from here; no module imports another's private
names.  Three groups:

* element formulas: ``relu``, ``mul0``, ``log1p``, ``bce``, ``dbce`` and the pair
  family's per-element term and derivative (``pair_term``, ``pair_dterm``, one
  ``tl.constexpr`` KIND per ``fastgan.registry.Kind``);
* compute type and parameters: ``to_acc`` (float64 for float64 inputs, float32
  otherwise) and ``param`` (a float64 passed as two int32 halves, ``split``);
* tiling: ``tile_load`` (a full tile unmasked or a tail tile masked), the per-side
  tiling of the two-input kernels (``side_blocks``, ``block_end``, ``side_tile``) and
  the aligned row spans of the row kernels (``span_bounds``, ``row_bounds``,
  ``row_body``, ``row_ends``): a row of ``D`` elements that starts at a multiple of ``D`` is read in
  a body whose ends are 16-byte boundaries (128-bit accesses, whatever ``D``) and a
  narrow head and tail of fewer than ``16 / element size`` elements each.

Host side: ``split`` and ``ptr_type`` (a pointer type string of a signature).
"""
# no `from __future__ import annotations`: the Triton interpreter (triton <= 3.1) finds the
# constexpr parameters by their annotation object, and a string annotation reads as a plain argument

import struct

import triton
import triton.language as tl

from ..registry import Kind

# the kinds as compile-time constants of the kernels (the numbers of fastgan.registry.Kind)
BCE: tl.constexpr = tl.constexpr(int(Kind.BCE))
HINGE: tl.constexpr = tl.constexpr(int(Kind.HINGE))
LSGAN: tl.constexpr = tl.constexpr(int(Kind.LSGAN))

NUM_WARPS = 4
FLOAT_DTYPES = ("fp16", "bf16", "fp32", "fp64")

# float parameters passed as int32 halves: never value-specialised (a half equal to 1 would
# become a constexpr, one divisible by 16 another specialisation)
W_PARAMS = ["w_hi", "w_lo"]
ALIGN_BYTES: tl.constexpr = tl.constexpr(16)  # one 128-bit access: 4 fp32, 8 bf16 / fp16, 2 fp64


# --------------------------------------------------------------------------- element formulas

@triton.jit
def relu(z):
    # relu that keeps nan (as torch.relu does)
    return tl.where(z < 0, 0.0, z)


@triton.jit
def mul0(a, b):
    # a * b with 0 * inf = 0 (a is a label)
    return tl.where(a == 0, 0.0, a * b)


@triton.jit
def log1p(z):
    # accurate log(1 + z) for z in [0, 1] from log alone (Goldberg's trick)
    u = 1.0 + z
    d = u - 1.0
    return tl.where(d == 0, z, tl.log(u) * (z / d))


@triton.jit
def dbce(s, t):
    # sigmoid(s) - t without cancellation in the tails: for s > 0 it is
    # (1 - t) - sigmoid(-s), exact for t = 1 where sigmoid(s) - 1 would round to 0
    e = tl.exp(-tl.abs(s))
    small = e / (1.0 + e)  # sigmoid(-|s|)
    return tl.where(s > 0, (1.0 - t) - small, small - t)


@triton.jit
def bce(s, t):
    # BCEwithlogits(s, t) = (1 - t) relu(s) + t relu(-s) + log1p(exp(-|s|)), 0 * inf = 0
    return mul0(1.0 - t, relu(s)) + mul0(t, relu(-s)) + log1p(tl.exp(-tl.abs(s)))


@triton.jit
def pair_term(s, sgn, t, KIND: tl.constexpr):
    if KIND == BCE:
        v = sgn * bce(s, t)
    elif KIND == HINGE:
        v = relu(t + sgn * s)
    elif KIND == LSGAN:
        d = s - t
        v = 0.5 * d * d
    else:  # LINEAR
        v = sgn * s
    return v


@triton.jit
def pair_dterm(s, sgn, t, KIND: tl.constexpr):
    if KIND == BCE:
        v = sgn * dbce(s, t)
    elif KIND == HINGE:
        # torch's threshold_backward: zero where z <= 0 (so exactly at the margin), else pass
        v = tl.where(t + sgn * s <= 0, 0.0, sgn + tl.zeros_like(s))
    elif KIND == LSGAN:
        v = s - t
    else:  # LINEAR
        v = sgn + tl.zeros_like(s)
    return v


# --------------------------------------------------------------------------- compute type, parameters

@triton.jit
def to_acc(x, F64: tl.constexpr):
    # the compute dtype: float64 for float64 inputs, float32 otherwise (scalars too)
    if F64:
        y = tl.cast(x, tl.float64)
    else:
        y = tl.cast(x, tl.float32)
    return y


@triton.jit
def param(hi, lo, F64: tl.constexpr):
    # a float64 parameter from the two int32 halves of its bits (``split``): exact, for
    # every value, where a float32 (hi, lo) pair rounds fp64 margins and overflows at 3.4e38
    bits = (hi.to(tl.int64) << 32) | lo.to(tl.uint32).to(tl.int64)
    v = bits.to(tl.float64, bitcast=True)
    if F64:
        y = v
    else:
        y = v.to(tl.float32)
    return y


# --------------------------------------------------------------------------- tiling

@triton.jit
def tile_load(ptr, offs, m, other, MASKED: tl.constexpr):
    # ptr[offs]; with MASKED only where m (else ``other``); without, a full tile
    if MASKED:
        x = tl.load(ptr + offs, mask=m, other=other)
    else:
        x = tl.load(ptr + offs)
    return x


@triton.jit
def side_blocks(n_real, n_fake, BLOCK: tl.constexpr):
    # each side is tiled from its own start (so a full tile of either side is as aligned
    # as the side's pointer): ``nb_r`` real tiles, then the fake tiles, ``nb`` in all
    nb_r = n_real // BLOCK + (n_real % BLOCK != 0)
    nb = nb_r + n_fake // BLOCK + (n_fake % BLOCK != 0)
    return nb_r, nb


@triton.jit
def block_end(pid, b1, nb):
    # tiles [b0, b1) of this program; the last program also takes the tiles past the
    # grid (per-side tiling needs at most one tile more than the virtual concatenation)
    return tl.where(pid == tl.num_programs(0) - 1, nb, tl.minimum(b1, nb))


@triton.jit
def side_tile(b, nb_r, n_real, n_fake, BLOCK: tl.constexpr):
    # tile b of the two sides (real tiles first): is it real, its start in its side,
    # its offsets, its side's size
    is_r = b < nb_r
    start = tl.where(is_r, b, b - nb_r) * BLOCK
    n = tl.where(is_r, n_real, n_fake)
    return is_r, start, start + tl.arange(0, BLOCK), n


@triton.jit
def vec(ptr):
    """Elements of ``ptr``'s type in 16 bytes (4 fp32, 8 bf16 / fp16, 2 fp64): a constexpr,
    ``VEC: tl.constexpr = vec(x_ptr)`` in a kernel."""
    return tl.constexpr(ALIGN_BYTES // (ptr.dtype.element_ty.primitive_bitwidth // 8))


# Rows of a (R, D) tensor, row r at the flat offsets [r·D, (r+1)·D): a row starts at a
# multiple of D, so for D not a multiple of the vector width the compiler cannot prove
# any tile of ``r·D + cols`` aligned and emits scalar accesses.  A program's span of
# each of its rows, the flat range [s, t), is read instead as
#   body [A, E): A the first, E the last 16-byte boundary in [s, t) (A = E if none),
#                 tiles from A with the mask ``offs < E``: both ends multiples of the
#                 vector width, so the loads and stores are 128-bit (masked per vector);
#   ends [s, A) ∪ [E, t): fewer than VEC elements each, one [ROWS, 2·VEC] tile, narrow.
# Each element lies in exactly one of them.  VEC = 16 bytes / element size (``vec``).

@triton.jit
def span_bounds(s, t, VEC: tl.constexpr):
    """The body ``[A, E)`` of the flat spans ``[s, t)``: A the first multiple of VEC at or
    after s, E the last at or before t (E = A when there is none).  triton infers their
    divisibility from the rounding already (the PTX is the same without the hints); the
    hints state it."""
    A = tl.multiple_of((s + VEC - 1) // VEC * VEC, VEC)
    E = tl.multiple_of(tl.maximum(A, t // VEC * VEC), VEC)
    return s, t, A, E


@triton.jit
def row_bounds(rows, row_ok, D, col0, col1, VEC: tl.constexpr):
    """Per row: the span ``[s, t)`` of columns ``[col0, min(col1, D))`` as flat offsets
    (empty for rows past the end) and its body ``[A, E)`` (``span_bounds``)."""
    s = rows * D + col0
    t = tl.where(row_ok, rows * D + tl.minimum(col1, D), s)
    return span_bounds(s, tl.maximum(t, s), VEC)


@triton.jit
def row_body(A, E, i, BLOCK_D: tl.constexpr):
    """Tile i of the rows' bodies: ``[ROWS, BLOCK_D]`` offsets from A and their mask."""
    offs = A[:, None] + i * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]
    return offs, offs < E[:, None]


@triton.jit
def row_ends(s, t, A, E, VEC: tl.constexpr):
    """The rows' heads and tails, ``[s, min(A, t))`` and ``[E, t)``: ``[ROWS, 2·VEC]``
    offsets (columns < VEC the head, the others the tail) and their mask."""
    j = tl.arange(0, 2 * VEC)[None, :]
    head = j < VEC
    offs = tl.where(head, s[:, None] + j, E[:, None] + (j - VEC))
    m = tl.where(head, offs < tl.minimum(A, t)[:, None], offs < t[:, None])
    return offs, m


# --------------------------------------------------------------------------- host side

def split(x: float):
    """``x`` as a float64's bits in two int32 halves ``(hi, lo)`` (``param`` rebuilds it)."""
    bits = struct.unpack("<q", struct.pack("<d", float(x)))[0]
    lo = bits & 0xFFFFFFFF
    return bits >> 32, lo - (1 << 32) if lo >= 1 << 31 else lo


def ptr_type(dt: str) -> str:
    """The signature type of a pointer to ``dt`` elements (``"*fp32"``)."""
    return "*" + dt
