"""The multi-tensor ops on the extension: a pair loss over lists of discriminators
(``pair_list_fwd``: one parallel pass over every tensor, the N per-discriminator losses;
``pair_list_bwd``: every gradient asked for in one pass) and feature matching
(``fm_fwd``: one read of each map; ``fm_bwd``: one read of each pair, one write of each
gradient), under ``fused.fused``.  The tensors are inputs of their own, so real and
fake of one discriminator may be the same tensor or computed from each other: autograd
adds the paths."""
from __future__ import annotations

from ..families import FeatureMatching, PairList
from ..interface import NO_TRANSFORMS
from .raw import REDUCTION, ops, pybind_or_ops

MODES = {"eager": None, "compile": None, "transform": NO_TRANSFORMS, "capture": None}
LIST_MODES = {**MODES, "capture": "the list op is not verified under CUDA-graph capture: each member is one op"}


class PairListOp(PairList):
    implementation = "csrc pair_list_fwd / pair_list_bwd: one pass over every tensor each way; fused.fused"
    modes = LIST_MODES

    @staticmethod
    def list_forward(reals, fakes, opts, reduction):
        return pybind_or_ops().pair_list_fwd(list(reals), list(fakes), int(opts.kind), opts.params(),
                                             REDUCTION[reduction])

    @staticmethod
    def list_backward(reals, fakes, opts, reduction, up, needs):
        return pybind_or_ops().pair_list_bwd(list(reals), list(fakes), int(opts.kind), opts.params(),
                                             REDUCTION[reduction], up, needs)


def _factors(fakes, reduction: str, scales):
    """Each map's factor: its scale over its size for a mean (the mean of an empty map is
    nan: inf · 0), else its scale."""
    if reduction != "mean":
        return list(scales)
    return [s / g.numel() if g.numel() else float("inf") for s, g in zip(scales, fakes)]


class FeatureMatchingOp(FeatureMatching):
    implementation = "csrc fm_fwd / fm_bwd: one read of every map forward, one pass backward; fused.fused"

    @staticmethod
    def maps_forward(reals, fakes, p, reduction, scales):
        return ops().fm_fwd(list(reals), list(fakes), p, _factors(fakes, reduction, scales))

    @staticmethod
    def maps_backward(reals, fakes, p, reduction, scales, up, needs):
        grads_g = list(ops().fm_bwd(list(reals), list(fakes), p, _factors(fakes, reduction, scales), up))
        return [(-g if need else None) for g, need in zip(grads_g, needs[:len(reals)])] + grads_g


PAIR_LIST = PairListOp()
FEATURE = FeatureMatchingOp()
