"""The prose heading the tables ``python -m fastgan.tools.aot`` writes (its PTX table and
its coverage section), kept apart from the code that measures them."""

PTX_PREAMBLE = """# Global access widths of the Triton kernels as the runtime JIT specialises them (sm_90, sm_80)

Compiled ahead of time on a machine without a GPU.  Each row is one kernel
specialisation for an example launch: pointers 16-byte aligned, every int argument
divisible by 16 marked `tt.divisibility` 16 and an int equal to 1 made a constant,
as triton's JIT does (`fastgan.tools.aot.jit_specialisation`).  "global loads" and
"global stores" count the PTX instructions by form: `v4.b32` and `v2.b64` are
128-bit (8 bf16, 4 fp32 or 2 fp64 per instruction), `b32` a single fp32 (or a bf16
pair), `b16` a single bf16.  The instruction counts are static (code paths, not
executions): a kernel with a full-tile path and a masked tail path shows both.
Registers and local memory (spills) are from `cuobjdump --dump-resource-usage` of
the cubin; the occupancy is a model (`occupancy_h100`: 65536 registers per SM
allocated per warp in units of 256, at most 64 warps, 2048 threads and 32 blocks per
SM) with the limiting resource, for 4 warps per program.  Checked by
tests/test_ptx.py (`check_ptx`): no spills, and every bulk load (and elementwise
store) has a 128-bit form for every size.

Sizes not divisible by 16 keep 128-bit accesses outside the tail: a tile that lies
inside its side loads and stores without a mask; only the partial tail tile takes the
masked, narrower path, so such a row shows both forms.  The row kernels (penalty,
Gaussian KL, KL/JS: rows start at multiples of D) read each program's span of each
row as a body between the span's first and last 16-byte boundaries (128-bit, masked
per vector) and a head and tail of fewer than 16 bytes (`kernels/common.py`,
`row_bounds`), so any D keeps 128-bit accesses, one row per program or several.

The multi-tensor kernels (`multi_*`, one launch over every tensor of a list loss) read
their tensors' addresses and sizes from a table, so no size specialises them: their
rows are `ALIGNED=1` (every address 16-byte aligned, checked on the host: 128-bit
full tiles for any sizes) and `ALIGNED=0` (some address not aligned: each program
checks its own entry's addresses and takes the 128-bit path when they are aligned, the
scalar path otherwise); `multi_sum` reads a discriminator's partials from any offset
(an aligned body and a narrow head).

Declared without 128-bit accesses (`fastgan.tools.aot.NARROW_OK`): `penalty_finish`
and `dist_finish`, one-program finishers that read a few kB of row partials with a
row stride.

"""

COVERAGE_PREAMBLE = """## Every fp32 specialisation, sizes not divisible by 16 (sm_90)

`python -m fastgan.tools.aot --ptx --coverage`: every fp32 entry of the kernels'
`specializations()` (all constexpr combinations the launchers use), compiled for sm_90
as the JIT specialises a launch with 16-byte aligned pointers and every int argument
4099 (not divisible by 16, not 1): how many issue no 128-bit global load or store at
all.  Before the full-width work of issue 26 (measured at 52c7d19: main's kernels with the
shared helpers moved to `kernels/common.py`): 142 of 235 (the
issue's 132 of 210 without the two finishers): `dist_bwd` 48, `dist_fwd` 16,
`dist_stats` 4, `gkl_bwd` 24, `gkl_partial` 4, `penalty_bwd` 18, `sqnorm_partial` 3,
`multi_pair_fwd` 4, `multi_pair_bwd` 4, `multi_fm_fwd` 2, `multi_fm_bwd` 2,
`multi_sum` 3, `penalty_finish` 6, `dist_finish` 4.

"""
