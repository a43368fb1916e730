"""What the tests, ``fastgan verify`` and ``fastgan bench`` exercise each op with.

One ``OpCases`` per op of the registry (``fastgan.registry.OPS``), declared once here:
the option sets worth exercising, the reductions, how to draw sample inputs, the
tolerances per dtype, the hand-written eager composition users replace (the
benchmark baseline), and the independent oracle of tests/test_oracle.py (special
points and closed forms).  The registry says what an op is; this says how to test it.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ..registry import OPS, OpSpec

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
REDUCTIONS = ("mean", "sum", "none")

# (rtol, atol) of a backend's result against the float64 reference evaluated on the
# same (already rounded) inputs.  Half types: one rounding of the output plus float32
# accumulation; float32: accumulation order; float64: a few ulps of the same formula.
TOLERANCES: Dict[torch.dtype, Tuple[float, float]] = {
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float32: (2e-5, 2e-5),
    torch.float64: (1e-10, 1e-12),
}


def _logits(shape, dtype, device, gen, scale=3.0):
    x = torch.randn(shape, dtype=torch.float64, generator=gen) * scale
    return x.to(device=device, dtype=dtype)


def _unit(shape, dtype, device, gen):
    return torch.rand(shape, dtype=torch.float64, generator=gen).to(device=device, dtype=dtype)


def _bce_sample(shapes, dtype, device, gen):
    shape = shapes[0]
    x = _logits(shape, dtype, device, gen)
    t = _unit(shape, dtype, device, gen)
    return [x, t]


# --- the hand-written compositions users replace (benchmark baselines) -----------
_tF = torch.nn.functional


def _eager_bce_d(real, fake, real_label=1.0, fake_label=0.0, reduction="mean"):
    r = _tF.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label), reduction=reduction)
    f = _tF.binary_cross_entropy_with_logits(fake, torch.full_like(fake, fake_label), reduction=reduction)
    return (r, f) if reduction == "none" else r + f


def _eager_bce_g(fake, saturating=False, reduction="mean"):
    terms = -_tF.softplus(fake) if saturating else _tF.softplus(-fake)
    return terms if reduction == "none" else getattr(terms, reduction)()


def _eager_bce(input, target, weight=None, reduction="mean", pos_weight=None):
    return _tF.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction, pos_weight=pos_weight)


def _eager_penalty(grads, center=1.0, one_sided=False, reduction="mean"):
    d = grads.flatten(1).norm(dim=1) - center
    terms = (torch.relu(d) if one_sided else d) ** 2
    return terms if reduction == "none" else getattr(terms, reduction)()


# --- special points and closed forms: the oracle the reference itself is checked against --
#
# ``special(dtype)`` gives inputs where random sampling never lands: a logit of exactly 0,
# ±1e4, ±inf, the hinge exactly at its margin, labels 0 and 1, zero-norm penalty rows.
# ``closed_form(tensors, options)`` gives, from textbook formulas written independently of
# ``fastgan.reference``, the per-element terms (reduction "none"; the penalty: per sample)
# and for each tensor argument the first derivative of the summed loss and the diagonal
# of its Hessian.  Conventions at kinks are torch's: relu'(0) = 0 (the hinge has zero
# gradient exactly at the margin), and a zero-norm penalty row has derivatives 0.

_INF = math.inf
_LOGITS = (0.0, -0.0, 1e-8, 1.5, -1.5, 30.0, -30.0, 1e4, -1e4, _INF, -_INF)


def _sig(s):
    return torch.sigmoid(s)


def _bce_value(s, t):
    """BCEwithlogits from torch.nn.functional, with its limits at infinite logits
    (torch gives nan there): (1 − t)·∞ at +∞ and t·∞ at −∞, 0·∞ = 0."""
    fin = torch.where(s.isinf(), torch.zeros_like(s), s)
    v = _tF.binary_cross_entropy_with_logits(fin, torch.broadcast_to(torch.as_tensor(t, dtype=s.dtype), s.shape),
                                             reduction="none")
    lim_pos = torch.where(torch.as_tensor(1 - t, dtype=s.dtype) == 0, torch.zeros_like(s), torch.full_like(s, _INF))
    lim_neg = torch.where(torch.as_tensor(t, dtype=s.dtype) == 0, torch.zeros_like(s), torch.full_like(s, _INF))
    return torch.where(s == _INF, lim_pos, torch.where(s == -_INF, lim_neg, v))


def _logits_special(n_args, labels=None):
    def special(dtype):
        x = torch.tensor(_LOGITS, dtype=dtype)
        y = torch.tensor(tuple(reversed(_LOGITS)), dtype=dtype)
        xs = [x, y][:n_args] if n_args == 2 else [x]
        return [(xs, opts, (True,) * n_args) for opts in (labels or ({},))]
    return special


def _bce_d_closed(xs, opts):
    rl, fl = opts.get("real_label", 1.0), opts.get("fake_label", 0.0)
    out = []
    for s, t in zip(xs, (rl, fl)):
        p = _sig(s)
        out.append((_bce_value(s, t), (p - t, p * (1 - p))))
    return (out[0][0], out[1][0]), [out[0][1], out[1][1]]


def _bce_g_closed(xs, opts):
    (y,) = xs
    p = _sig(y)
    if opts.get("saturating", False):
        return -_bce_value(y, 0.0), [(-p, -p * (1 - p))]
    return _bce_value(y, 1.0), [(p - 1, p * (1 - p))]


def _hinge_special(dtype):
    cases = []
    for m in (1.0, 0.5, 3.4442185152504816):
        x = torch.tensor((m, -m, 0.0, m + 1, m - 1, 1e4, -1e4, _INF, -_INF), dtype=dtype)
        cases.append(([x, -x], {"margin": m}, (True, True)))
    return cases


def _hinge_d_closed(xs, opts):
    m = opts.get("margin", 1.0)
    x, y = xs
    zr, zf = m - x, m + y
    gr = -(zr > 0).to(x.dtype)
    gf = (zf > 0).to(y.dtype)
    return (zr.clamp_min(0), zf.clamp_min(0)), [(gr, torch.zeros_like(x)), (gf, torch.zeros_like(y))]


def _linear_closed(signs):
    def closed(xs, opts):
        return (tuple(sg * x for sg, x in zip(signs, xs)) if len(xs) == 2 else signs[0] * xs[0],
                [(torch.full_like(x, sg), torch.zeros_like(x)) for sg, x in zip(signs, xs)])
    return closed


def _lsgan_d_closed(xs, opts):
    a, b = opts.get("a", 0.0), opts.get("b", 1.0)
    x, y = xs
    return ((x - b) ** 2 / 2, (y - a) ** 2 / 2), [(x - b, torch.ones_like(x)), (y - a, torch.ones_like(y))]


def _lsgan_g_closed(xs, opts):
    (y,) = xs
    c = opts.get("c", 1.0)
    return (y - c) ** 2 / 2, [(y - c, torch.ones_like(y))]


def _bce_dropin_special(dtype):
    s = torch.tensor((0.0, 1.5, -1.5, 30.0, -30.0, 1e4, -1e4, 0.0, 2.0), dtype=dtype)
    t = torch.tensor((1.0, 0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 0.5), dtype=dtype)
    w = torch.tensor((1.0, 0.0, 2.5, 1.0, 3.0, 1.0, 0.5, 2.0, 1.0), dtype=dtype)
    p = torch.tensor((1.0, 3.0, 0.0, 2.0, 1.0, 0.5, 4.0, 3.0, 1.0), dtype=dtype)
    inf = torch.tensor((_INF, -_INF, _INF, -_INF, 0.0), dtype=dtype)
    t_inf = torch.tensor((1.0, 0.0, 0.0, 1.0, 1.0), dtype=dtype)
    # weights multiply infinite terms as in torch: w = 0 there is nan, and so is
    # p = 0, t = 1 at s = −∞ (∞ − ∞); w = 0 on a zero term stays 0
    inf_w = torch.tensor((_INF, -_INF, _INF, -_INF, -_INF), dtype=dtype)
    t_w = torch.tensor((0.0, 1.0, 1.0, 1.0, 0.0), dtype=dtype)
    w_w = torch.tensor((0.0, 0.0, 0.0, 1.0, 1.0), dtype=dtype)
    p_w = torch.tensor((1.0, 0.0, 1.0, 0.0, 2.0), dtype=dtype)
    return [([s, t], {}, (True, True)),
            ([s, t], {"weight": w, "pos_weight": p}, (True, True)),
            ([inf, t_inf], {}, (True, False)),  # at ±inf d/dt = −s is infinite: only d/ds
            ([inf_w, t_w], {"weight": w_w, "pos_weight": p_w}, (True, False))]


def _bce_dropin_closed(xs, opts):
    s, t = xs
    w, p = opts.get("weight"), opts.get("pos_weight")
    w = torch.ones_like(s) if w is None else w
    p = torch.ones_like(s) if p is None else p
    lw = 1 + (p - 1) * t

    def mul0(a, b):
        return torch.where(a == 0, torch.zeros_like(b), a * b)

    # w·[(1 − t)·s + lw·softplus(−s)] = w·[BCE(s, t) + (p − 1)·t·softplus(−s)]: labels take
    # the limits (0·∞ = 0), weights are plain products as in torch (0·∞ = nan)
    terms = w * (mul0(1 - t, _bce_value(s, 0.0)) + mul0(t, _bce_value(s, 1.0))
                 + mul0((p - 1) * t, _bce_value(s, 1.0)))
    ds = w * ((1 - t) - lw * _sig(-s))  # d/ds of w·[(1 − t)·s + lw·softplus(−s)]
    dt = w * (-s + (p - 1) * _bce_value(s, 1.0))
    return terms, [(ds, w * lw * _sig(s) * _sig(-s)), (dt, torch.zeros_like(t))]


def _penalty_special(dtype):
    g = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.6, 0.8, 0.0], [1e-3, 0.0, -2e-3]], dtype=dtype)
    # rows: zero norm, norm 5, norm exactly 1 (the one-sided kink at center 1), a small norm
    return [([g], opts, (True,)) for opts in ({}, {"center": 0.0}, {"one_sided": True},
                                              {"center": 0.5, "one_sided": True})]


def _penalty_closed(xs, opts):
    (g,) = xs
    c, one = opts.get("center", 1.0), opts.get("one_sided", False)
    n = g.norm(dim=1, keepdim=True)
    if c == 0:
        return (n * n).squeeze(1), [(2 * g, torch.full_like(g, 2.0))]
    d = n - c
    terms = (d.clamp_min(0) if one else d) ** 2
    active = (n > 0) & (d > 0) if one else (n > 0)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    d1 = torch.where(active, 2 * d / safe * g, torch.zeros_like(g))
    d2 = torch.where(active, 2 * g * g / safe ** 2 + 2 * d * (safe ** 2 - g * g) / safe ** 3, torch.zeros_like(g))
    return terms.squeeze(1), [(d1, d2)]


@dataclass(frozen=True)
class OpCases:
    spec: OpSpec
    options: Tuple[dict, ...] = ({},)        # keyword sets the tests and verify exercise
    reductions: Tuple[str, ...] = REDUCTIONS
    sample: Optional[Callable] = None        # (shapes, dtype, device, gen) -> list of tensors
    eager: Optional[Callable] = None         # what a user writes by hand (the benchmark baseline)
    # the independent oracle (tests/test_oracle.py): inputs at the points where losses go
    # wrong, and the closed-form value and derivatives there (see "special points" above)
    special: Optional[Callable] = None       # dtype -> [(tensors, options, which args are differentiated)]
    closed_form: Optional[Callable] = None   # (tensors, options) -> (terms, [(d1, d2) per argument])
    tolerances: Dict[torch.dtype, Tuple[float, float]] = field(default_factory=lambda: dict(TOLERANCES))
    # options every test and ``fastgan verify`` call includes (an option set may override
    # them): feature matching's ``detach_real=False``, so that both inputs are differentiated
    fixed: Dict[str, object] = field(default_factory=dict)

    # the op's own description, read through (tests and tools iterate CASES)
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def args(self) -> Tuple[str, ...]:
        return self.spec.args

    @property
    def reference(self) -> Callable:
        """The op's reference, with the ``fixed`` options."""
        return functools.partial(self.spec.reference, **self.fixed) if self.fixed else self.spec.reference

    @property
    def is_discriminator(self) -> bool:
        return self.spec.is_discriminator

    @property
    def baseline(self) -> Callable:
        """The hand-written eager composition ``fastgan bench`` compares against
        (the reference where the two coincide)."""
        return self.eager or self.spec.reference

    def make_inputs(self, shapes: Sequence, dtype, device="cpu", gen=None):
        """Sample inputs: ``shapes`` has one shape per tensor argument."""
        if gen is None:
            gen = torch.Generator().manual_seed(0)
        if self.sample is not None:
            return self.sample(shapes, dtype, device, gen)
        return [_logits(s, dtype, device, gen) for s in shapes]


CASES: Dict[str, OpCases] = {}


def _cases(name: str, **kw) -> None:
    CASES[name] = OpCases(OPS[name], **kw)


_cases("bce_d_loss", options=({}, {"real_label": 0.9}, {"real_label": 0.9, "fake_label": 0.1}),
       eager=_eager_bce_d,
       special=_logits_special(2, ({}, {"real_label": 0.0, "fake_label": 1.0},
                                   {"real_label": 0.9, "fake_label": 0.1})),
       closed_form=_bce_d_closed)
_cases("bce_g_loss", options=({}, {"saturating": True}), eager=_eager_bce_g,
       special=_logits_special(1, ({}, {"saturating": True})), closed_form=_bce_g_closed)
_cases("hinge_d_loss", options=({}, {"margin": 0.5}), special=_hinge_special, closed_form=_hinge_d_closed)
_cases("hinge_g_loss", special=_logits_special(1), closed_form=_linear_closed((-1.0,)))
_cases("lsgan_d_loss", options=({}, {"a": -1.0, "b": 1.0}),
       special=_logits_special(2, ({}, {"a": -1.0, "b": 1.0})), closed_form=_lsgan_d_closed)
_cases("lsgan_g_loss", options=({}, {"c": 0.0}), special=_logits_special(1, ({}, {"c": 0.0})),
       closed_form=_lsgan_g_closed)
_cases("wasserstein_d_loss", special=_logits_special(2), closed_form=_linear_closed((-1.0, 1.0)))
_cases("wasserstein_g_loss", special=_logits_special(1), closed_form=_linear_closed((-1.0,)))
_cases("binary_cross_entropy_with_logits", sample=_bce_sample, eager=_eager_bce,
       special=_bce_dropin_special, closed_form=_bce_dropin_closed)
_cases("grad_norm_penalty",
       options=({}, {"center": 0.0}, {"one_sided": True}, {"center": 0.5, "one_sided": True}),
       eager=_eager_penalty, special=_penalty_special, closed_form=_penalty_closed)


# --- the relativistic losses and the divergences ------------------------------------------

def _red(terms, reduction):
    return terms if reduction == "none" else getattr(terms, reduction)()


def _eager_ragan(generator):
    def eager(real, fake, reduction="mean"):  # what ESRGAN-style code writes (without its ½)
        u, v = real - fake.mean(), fake - real.mean()
        t_u, t_v = (torch.zeros_like(u), torch.ones_like(v)) if generator else (torch.ones_like(u),
                                                                                 torch.zeros_like(v))
        r = _tF.binary_cross_entropy_with_logits(u, t_u, reduction=reduction)
        f = _tF.binary_cross_entropy_with_logits(v, t_v, reduction=reduction)
        return (r, f) if reduction == "none" else r + f
    return eager


def _eager_rpgan(generator):
    def eager(real, fake, reduction="mean"):  # R3GAN's F.softplus of the paired difference
        return _red(_tF.softplus(real - fake if generator else fake - real), reduction)
    return eager


def _eager_gaussian_kl(mu, logvar, reduction="mean"):
    terms = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=tuple(range(1, mu.dim())))
    return _red(terms, reduction)


def _eager_kl(p_logits, q_logits, dim=-1, reduction="mean"):
    terms = _tF.kl_div(_tF.log_softmax(q_logits, dim), _tF.log_softmax(p_logits, dim), reduction="none",
                       log_target=True).sum(dim)
    return _red(terms, reduction)


def _eager_js(p_logits, q_logits, dim=-1, reduction="mean"):
    p, q = _tF.softmax(p_logits, dim), _tF.softmax(q_logits, dim)
    log_m = ((p + q) / 2).log()
    terms = 0.5 * (_tF.kl_div(log_m, p, reduction="none") + _tF.kl_div(log_m, q, reduction="none")).sum(dim)
    return _red(terms, reduction)


def _kl_sample(shapes, dtype, device, gen):
    return [_logits(s, dtype, device, gen) for s in shapes]


def _gaussian_sample(shapes, dtype, device, gen):
    return [_logits(shapes[0], dtype, device, gen), _logits(shapes[1], dtype, device, gen, scale=1.5)]


_RA_X = (0.0, 1.0, -2.0, 30.0, -30.0, 1e4, -1e4, 0.5)


def _ragan_special(dtype):
    x = torch.tensor(_RA_X, dtype=dtype)
    y = torch.tensor((1.0, 0.0, 2.0, -1.0, 3.0), dtype=dtype)  # mean 1: x − mean(y) = 0 at x = 1
    z = torch.tensor((0.0, 0.0, 0.0), dtype=dtype)              # all scores 0: every shifted logit 0
    return [([x, y], {}, (True, True)), ([z, z.clone()], {}, (True, True))]


def _dsig(z):
    return _sig(z) * _sig(-z)


def _ragan_closed(real_sign):
    """Terms ``softplus(rs·u)``, ``softplus(−rs·v)``, ``u = x − mean(y)``, ``v = y − mean(x)``;
    rs = −1 for D (BCE(u, 1) = softplus(−u)), +1 for G.  With S the sum of all terms:
    dS/dx_i = rs·σ(rs·u_i) + rs·Σ_k σ(−rs·v_k)/n_x (v depends on x through −mean(x)), and
    d²S/dx_i² = σ'(u_i) + Σ_k σ'(v_k)/n_x²; symmetrically for y."""
    def closed(xs, opts):
        x, y = xs
        rs = real_sign
        u, v = x - y.mean(), y - x.mean()
        terms = (_tF.softplus(rs * u), _tF.softplus(-rs * v))
        nx, ny = x.numel(), y.numel()
        dx = rs * _sig(rs * u) + rs * _sig(-rs * v).sum() / nx
        dy = -rs * _sig(-rs * v) - rs * _sig(rs * u).sum() / ny
        d2x = _dsig(u) + _dsig(v).sum() / nx ** 2
        d2y = _dsig(v) + _dsig(u).sum() / ny ** 2
        return terms, [(dx, d2x), (dy, d2y)]
    return closed


def _rpgan_special(dtype):
    x = torch.tensor((0.0, 1.0, -2.0, 30.0, 1e4, -1e4, _INF, -_INF, 3.0), dtype=dtype)
    y = torch.tensor((0.0, 1.0, 2.0, -30.0, -1e4, 1e4, 0.0, 0.0, -_INF), dtype=dtype)
    return [([x, y], {}, (True, True))]


def _rpgan_closed(sign):
    """``softplus(sign·(y − x))``: d/dx = −sign·σ(sign·d), d/dy = sign·σ(sign·d), both second
    derivatives σ'(d), with d = y − x."""
    def closed(xs, opts):
        x, y = xs
        d = y - x
        g = _sig(sign * d)
        return _tF.softplus(sign * d), [(-sign * g, _dsig(d)), (sign * g, _dsig(d))]
    return closed


def _gaussian_special(dtype):
    mu = torch.tensor([[0.0, 0.0], [1e4, -1e4], [3.0, -0.5], [0.0, 1e-8]], dtype=dtype)
    lv = torch.tensor([[0.0, 1e-8], [0.0, -30.0], [30.0, -2.0], [-1e-8, 5.0]], dtype=dtype)
    return [([mu, lv], {}, (True, True))]


def _gaussian_closed(xs, opts):
    """Per sample ½ Σ (mu² + e^lv − 1 − lv) (the sum of KL(N(mu, σ²) ‖ N(0, 1)) over dims):
    d/dmu = mu, d²/dmu² = 1; d/dlv = ½(e^lv − 1), d²/dlv² = ½ e^lv."""
    mu, lv = xs
    per_dim = 0.5 * (mu ** 2 + torch.expm1(lv) - lv)
    return per_dim.sum(dim=1), [(mu, torch.ones_like(mu)), (0.5 * torch.expm1(lv), 0.5 * lv.exp())]


def _dist_special(dtype):
    p = torch.tensor([[0.0, 0.0, 0.0], [1e4, -1e4, 0.0], [2.0, -1.0, 0.5], [0.0, 3.0, -1e4]], dtype=dtype)
    q = torch.tensor([[1.0, 0.0, -1.0], [-1e4, 1e4, 0.0], [2.0, -1.0, 0.5], [1e4, 0.0, 0.0]], dtype=dtype)
    # zero-probability entries (−inf logits): in P alone, in both, and in Q where P is 0
    # too (where Q alone is 0 and P is not, KL is +inf: no derivative to check)
    pz = torch.tensor([[0.0, -_INF, -_INF], [1.0, 2.0, 3.0], [-_INF, 0.0, 1.0], [-_INF, -_INF, 5.0]], dtype=dtype)
    qz = torch.tensor([[0.0, 1.0, -_INF], [1.0, 2.0, 0.0], [-_INF, 0.5, 2.0], [0.0, -_INF, -1e4]], dtype=dtype)
    return [([p, q], {}, (True, True)), ([p.t().contiguous(), q.t().contiguous()], {"dim": 0}, (True, True)),
            ([pz, qz], {}, (True, True))]


def _softmaxes(xs, opts):
    dim = opts.get("dim", -1)
    p, q = (_tF.softmax(x, dim) for x in xs)
    return p, q, dim


def _kl_closed(xs, opts):
    """KL = Σ_j P_j (log P_j − log Q_j) per row, with 0·log 0 = 0.  Through the softmaxes:
    dKL/dp_j = P_j (a_j − KL) with a_j = log P_j − log Q_j, dKL/dq_j = Q_j − P_j;
    d²KL/dq_j² = Q_j (1 − Q_j), d²KL/dp_j² = P_j(1 − P_j)(a_j − KL) + P_j(1 − P_j − P_j(a_j − KL))."""
    p, q, dim = _softmaxes(xs, opts)
    lp, lq = (_tF.log_softmax(x, dim) for x in xs)
    a = torch.where(p == 0, torch.zeros_like(p), lp - lq)
    kl = (p * a).sum(dim, keepdim=True)
    b = a - kl
    dp = p * b
    d2p = p * (1 - p) * b + p * (1 - p - p * b)
    return kl.squeeze(dim), [(dp, d2p), (q - p, q * (1 - q))]


def _js_one_side(p, q, lp, lm, dim):
    """dJS/dp_j and d²JS/dp_j² through P's softmax.  With g_j = ½ log(P_j / M_j) (the
    derivative of JS in P_j) and ḡ = Σ_k P_k g_k: dJS/dp_j = P_j (g_j − ḡ);
    dg_k/dp_j = ½ (δ_kj − P_j) Q_k / (P_k + Q_k), so
    dḡ/dp_j = P_j (g_j − ḡ) + ½ [P_j Q_j/(P_j + Q_j) − P_j Σ_k P_k Q_k/(P_k + Q_k)]."""
    g = torch.where(p == 0, torch.zeros_like(p), 0.5 * (lp - lm))
    gbar = (p * g).sum(dim, keepdim=True)
    r = torch.where(p + q == 0, torch.zeros_like(p), q / (p + q))
    d1 = p * (g - gbar)
    dg_jj = 0.5 * (1 - p) * r
    dgbar = d1 + 0.5 * (p * r - p * (p * r).sum(dim, keepdim=True))
    d2 = p * (1 - p) * (g - gbar) + p * (dg_jj - dgbar)
    return d1, d2


def _js_closed(xs, opts):
    p, q, dim = _softmaxes(xs, opts)
    lp, lq = (_tF.log_softmax(x, dim) for x in xs)
    lm = ((p + q) / 2).log()

    def xlog(a, la):
        return torch.where(a == 0, torch.zeros_like(a), a * (la - lm))
    js = 0.5 * (xlog(p, lp) + xlog(q, lq)).sum(dim)
    return js, [_js_one_side(p, q, lp, lm, dim), _js_one_side(q, p, lq, lm, dim)]


_cases("ragan_d_loss", eager=_eager_ragan(False), special=_ragan_special, closed_form=_ragan_closed(-1.0))
_cases("ragan_g_loss", eager=_eager_ragan(True), special=_ragan_special, closed_form=_ragan_closed(1.0))
_cases("rpgan_d_loss", eager=_eager_rpgan(False), special=_rpgan_special, closed_form=_rpgan_closed(1.0))
_cases("rpgan_g_loss", eager=_eager_rpgan(True), special=_rpgan_special, closed_form=_rpgan_closed(-1.0))
_cases("gaussian_kl", sample=_gaussian_sample, eager=_eager_gaussian_kl, special=_gaussian_special,
       closed_form=_gaussian_closed)
_cases("kl_div_logits", options=({}, {"dim": 0}), sample=_kl_sample, eager=_eager_kl, special=_dist_special,
       closed_form=_kl_closed)
# float32: the gradient P_j·(g_j − ḡ) subtracts ḡ, a float32 sum over the whole row (65 539
# terms in the tests): 4e-7 off at gradients of 0.02, past 2e-5 relative
_cases("js_div_logits", options=({}, {"dim": 0}), sample=_kl_sample, eager=_eager_js, special=_dist_special,
       closed_form=_js_closed, tolerances={**TOLERANCES, torch.float32: (1e-4, 1e-4)})


# --- feature matching (a tensor per side here: one map; lists in tests/test_lists.py) -----

def _eager_fm(real, fake, reduction="mean", weight=1.0, detach_real=True, p=1):
    """What HiFi-GAN / pix2pixHD write per map: ``mean(|r − g|)`` (``torch.mean(torch.abs(...))``)."""
    d = fake - (real.detach() if detach_real else real)
    return weight * _red(d.abs() if p == 1 else d * d, reduction)


def _fm_special(dtype):
    r = torch.tensor([0.0, 1.0, -2.0, 1e4, 3.0, -1e-8, 7.0], dtype=dtype)
    g = torch.tensor([0.0, 1.5, -2.0, -1e4, 1e-8, 1e-8, -7.0], dtype=dtype)  # equal at 0 and 2: the kink
    both = (True, True)
    return [([r, g], {"detach_real": False}, both), ([r, g], {"detach_real": False, "p": 2}, both),
            ([r, g], {"detach_real": False, "weight": 2.0}, both)]


def _fm_closed(xs, opts):
    """Terms ``w·|g − r|^p``; d/dg = w·sign(g − r) (torch's |·|'(0) = 0) or 2w(g − r),
    d/dr its negative; second derivatives 0 (p = 1) or 2w."""
    r, g = xs
    w, d = opts.get("weight", 1.0), g - r
    if opts.get("p", 1) == 1:
        d1, d2 = w * torch.sign(d), torch.zeros_like(d)
        terms = w * d.abs()
    else:
        d1, d2 = 2 * w * d, torch.full_like(d, 2 * w)
        terms = w * d * d
    return terms, [(-d1, d2), (d1, d2)]


_cases("feature_matching_loss", options=({}, {"p": 2}, {"weight": 2.0}), fixed={"detach_real": False},
       eager=_eager_fm, special=_fm_special, closed_form=_fm_closed)

_missing = set(OPS) ^ set(CASES)
if _missing:
    raise RuntimeError(f"ops and their cases disagree: {sorted(_missing)}")
