"""The pure-PyTorch reference: the specification of every fastgan op, in code.

Each function is written plainly from its formula with ordinary torch ops, so it
is differentiable to any order and is the oracle every test, ``fastgan verify``
and ``fastgan bench`` compare against.  It is also the ``"torch"`` backend.

Two deliberate choices, both from the API contract:

* ``0 · ∞ = 0`` in the label products of BCE, so that ``BCEwithlogits(+∞, 1) = 0``
  and ``BCEwithlogits(−∞, 0) = 0`` (what the stable formula means), where a naive
  ``max(s, 0) − s·t`` gives ``∞ − ∞ = nan``.  ``torch.nn.functional`` returns nan
  there; fastgan does not.
* Half-precision inputs are computed in float32 and the result is cast back to
  the input's dtype; float64 stays float64.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "log_sigmoid", "softplus", "bce_log_likelihood", "bce_terms", "reduce_pair", "reduce_one",
    "bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss",
    "lsgan_d_loss", "lsgan_g_loss", "wasserstein_d_loss", "wasserstein_g_loss",
    "binary_cross_entropy_with_logits", "grad_norm_penalty",
]


def _compute_dtype_of(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _compute_dtype(x: Tensor) -> torch.dtype:
    return _compute_dtype_of(x.dtype)


def _up(x: Tensor) -> Tensor:
    return x.to(_compute_dtype(x))


def _mul0(a: Tensor, b: Tensor) -> Tensor:
    """``a · b`` with ``0 · ∞ = 0`` (``a`` a label or a label weight).

    Only where ``a = 0`` and ``b`` is infinite is the product replaced by 0 (there the
    derivative with respect to ``a``, ``b = ±∞``, is not finite anyway); everywhere else
    it is the product, so a label of exactly 0 or 1 still gets its gradient ``b``."""
    return torch.where((a == 0) & b.isinf(), 0.0, a * b)


def log_sigmoid(s: Tensor) -> Tensor:
    """``log σ(s) = −softplus(−s)``, stable, with the true derivative ``σ(−s)`` at every
    point, to every order: ATen's fused ``log_sigmoid``.

    It is one pass, ``min(s, 0) − log1p(exp(−|s|))`` (full accuracy, also in float64, no
    linearisation), and keeps ``exp(−|s|)`` for its backward, which is written per
    branch (``σ(−s)`` is ½ at ``s = 0``, where a composition of ``relu``/``abs`` would get
    autograd's kink conventions, ``relu'(0) = abs'(0) = 0``, and give 0).  Its second
    derivative is ``σ(s)·(σ(s) − 1)``: ``−¼`` at 0, 0 in the tails, never nan
    (tests/test_oracle.py checks all of this against closed forms)."""
    return F.logsigmoid(s)


def softplus(s: Tensor) -> Tensor:
    """``softplus(s) = log(1 + exp(s)) = −log σ(−s)``; see ``log_sigmoid``.  (The losses
    use ``log_sigmoid`` directly and negate after the reduction: one pass less.)"""
    return -log_sigmoid(-s)


def bce_log_likelihood(s: Tensor, t) -> Tensor:
    """``−BCEwithlogits(s, t) = (1 − t)·log σ(−s) + t·log σ(s)`` (smooth, exact derivative
    ``t − σ(s)`` everywhere), with ``0·∞ = 0``, so that ``BCE(+∞, 1) = BCE(−∞, 0) = 0``.
    The losses reduce this and negate the result (``−Σx = Σ(−x)`` exactly)."""
    if not isinstance(t, Tensor):  # a label: skip the side it multiplies by 0
        if t == 1:
            return log_sigmoid(s)
        if t == 0:
            return log_sigmoid(-s)
        return (1 - t) * log_sigmoid(-s) + t * log_sigmoid(s)
    return _mul0(1 - t, log_sigmoid(-s)) + _mul0(t, log_sigmoid(s))


def bce_terms(s: Tensor, t) -> Tensor:
    """``BCEwithlogits(s, t) = (1 − t)·softplus(s) + t·softplus(−s)``, ``0·∞ = 0``."""
    return -bce_log_likelihood(s, t)


def _reduce(terms: Tensor, reduction: str, sign: float = 1.0) -> Tensor:
    """``sign · terms``, summed, averaged or per element.

    The sign is applied after the reduction (a negation commutes exactly with the
    rounding of a sum): one scalar op instead of a pass over the terms.  The mean is
    ``sum / numel`` (what ``mean`` computes): the backward of ``sum`` is a broadcast view
    of the scalar gradient, where ``mean``'s divides a whole tensor."""
    if reduction == "none":
        return -terms if sign < 0 else terms
    out = terms.sum()
    if reduction == "mean":
        out = out / terms.numel()
    return -out if sign < 0 else out


def reduce_one(terms: Tensor, like: Tensor, reduction: str, sign: float = 1.0) -> Tensor:
    """Reduce one tensor of per-element terms (times ``sign``), cast to ``like``'s dtype."""
    return _reduce(terms, reduction, sign).to(like.dtype)


def reduce_pair(real_terms: Tensor, fake_terms: Tensor, real: Tensor, fake: Tensor, reduction: str,
                real_sign: float = 1.0, fake_sign: float = 1.0):
    """Discriminator reduction: ``mean(real) + mean(fake)``, ``sum + sum``, or the tuple."""
    return _join(_reduce(real_terms, reduction, real_sign), _reduce(fake_terms, reduction, fake_sign),
                 real, fake, reduction)


def _join(real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor, reduction: str):
    """The two reduced sides of a discriminator loss: their sum, or the tuple for "none"."""
    if reduction == "none":
        return real_out.to(real.dtype), fake_out.to(fake.dtype)
    return (real_out + fake_out).to(torch.promote_types(real.dtype, fake.dtype))


# --- vanilla GAN (stable BCE with logits) -----------------------------------

def bce_d_loss(real: Tensor, fake: Tensor, *, real_label: float = 1.0, fake_label: float = 0.0,
               reduction: str = "mean"):
    """``BCEwithlogits(x, real_label)`` and ``BCEwithlogits(y, fake_label)``."""
    return reduce_pair(bce_log_likelihood(_up(real), real_label), bce_log_likelihood(_up(fake), fake_label),
                       real, fake, reduction, -1.0, -1.0)


def bce_g_loss(fake: Tensor, *, saturating: bool = False, reduction: str = "mean"):
    """Non-saturating ``softplus(−y) = −log σ(y)``; saturating (minimax)
    ``−softplus(y) = log σ(−y)``."""
    y = _up(fake)
    if saturating:
        return reduce_one(log_sigmoid(-y), fake, reduction)
    return reduce_one(log_sigmoid(y), fake, reduction, -1.0)


# --- hinge ------------------------------------------------------------------

def hinge_d_loss(real: Tensor, fake: Tensor, *, margin: float = 1.0, reduction: str = "mean"):
    """``relu(margin − x)`` and ``relu(margin + y)``."""
    return reduce_pair(torch.relu(margin - _up(real)), torch.relu(margin + _up(fake)),
                       real, fake, reduction)


def hinge_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """``−y``."""
    return reduce_one(_up(fake), fake, reduction, -1.0)


# --- least squares ----------------------------------------------------------

def _half_square(x: Tensor, c: float, reduction: str) -> Tensor:
    """``½(x − c)²``, reduced.  ``F.mse_loss`` against ``c`` broadcast (no copy) is one
    fused pass forward and one backward, ``2(x − c)``; a composition ``(x − c)**2`` costs
    three passes each way.  The ½ (exact) is applied after the reduction."""
    target = torch.full((), c, dtype=x.dtype, device=x.device).expand_as(x)
    out = 0.5 * F.mse_loss(x, target, reduction="none" if reduction == "none" else "sum")
    return out / x.numel() if reduction == "mean" else out


def lsgan_d_loss(real: Tensor, fake: Tensor, *, a: float = 0.0, b: float = 1.0, reduction: str = "mean"):
    """``½(x − b)²`` and ``½(y − a)²``."""
    return _join(_half_square(_up(real), b, reduction), _half_square(_up(fake), a, reduction),
                 real, fake, reduction)


def lsgan_g_loss(fake: Tensor, *, c: float = 1.0, reduction: str = "mean"):
    """``½(y − c)²``."""
    return _half_square(_up(fake), c, reduction).to(fake.dtype)


# --- Wasserstein --------------------------------------------------------------

def wasserstein_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """``−x`` and ``y``: the critic minimises ``E[D(G(z))] − E[D(x)]``."""
    return reduce_pair(_up(real), _up(fake), real, fake, reduction, -1.0, 1.0)


def wasserstein_g_loss(fake: Tensor, *, reduction: str = "mean"):
    """``−y``."""
    return reduce_one(_up(fake), fake, reduction, -1.0)


# --- relativistic losses -------------------------------------------------------

def _relativistic(real: Tensor, fake: Tensor, real_sign: float, reduction: str):
    """``softplus(real_sign·(x − mean(y)))`` and ``softplus(−real_sign·(y − mean(x)))``,
    reduced per side; the batch means are plain means whatever the reduction."""
    x, y = _up(real), _up(fake)
    u, v = x - y.mean(), y - x.mean()
    # softplus(z) = −log σ(−z): the terms are −log σ(−real_sign·u) and −log σ(real_sign·v)
    return reduce_pair(log_sigmoid(-real_sign * u), log_sigmoid(real_sign * v), real, fake, reduction,
                       -1.0, -1.0)


def ragan_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic average GAN, discriminator: ``BCE(x − mean(y), 1)`` and ``BCE(y − mean(x), 0)``
    (Jolicoeur-Martineau 2018, eq. for RaSGAN; ESRGAN/BasicSR use the same terms times ½)."""
    return _relativistic(real, fake, -1.0, reduction)


def ragan_g_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic average GAN, generator: the labels swapped, ``BCE(x − mean(y), 0)`` and
    ``BCE(y − mean(x), 1)``."""
    return _relativistic(real, fake, 1.0, reduction)


def _paired(real: Tensor, fake: Tensor, sign: float, reduction: str):
    """``softplus(sign·(y − x))`` per element of same-shaped ``real``/``fake``."""
    d = _up(real) - _up(fake)
    out = _reduce(log_sigmoid(sign * d), reduction, -1.0)  # softplus(sign·(y − x)) = −log σ(sign·(x − y))
    return out.to(torch.promote_types(real.dtype, fake.dtype))


def rpgan_d_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic pairing GAN, discriminator: ``softplus(y − x)`` per pair (Jolicoeur-Martineau
    2018's RpGAN with f = softplus, the loss of R3GAN, Huang et al. 2024)."""
    return _paired(real, fake, 1.0, reduction)


def rpgan_g_loss(real: Tensor, fake: Tensor, *, reduction: str = "mean"):
    """Relativistic pairing GAN, generator: ``softplus(x − y)`` per pair."""
    return _paired(real, fake, -1.0, reduction)


# --- divergences -------------------------------------------------------------------

def gaussian_kl(mu: Tensor, logvar: Tensor, *, reduction: str = "mean"):
    """VAE KL(N(mu, exp(logvar)) ‖ N(0, I)) per sample: ``−½ Σ_j (1 + logvar − mu² − exp(logvar))``
    over every non-batch dim (Kingma & Welling 2014, appendix B), then reduced over the batch
    (dim 0).  Written ``½ Σ_j (mu² + expm1(logvar) − logvar)`` (no cancellation of the 1)."""
    m, lv = _up(mu), _up(logvar)
    terms = 0.5 * (m * m + torch.expm1(lv) - lv)
    terms = terms.flatten(1).sum(dim=1) if terms.dim() > 1 else terms
    return _reduce(terms, reduction).to(torch.promote_types(mu.dtype, logvar.dtype))


def _rows(terms: Tensor, dim: int, reduction: str, like: Tensor) -> Tensor:
    """Sum over the distribution dim; "mean" averages over the distributions (every position
    but ``dim``: torch's "batchmean" only for 2-D logits with ``dim=-1``)."""
    return _reduce(terms.sum(dim=dim), reduction).to(like.dtype)


def _xlogy_ratio(p: Tensor, lp: Tensor, lq: Tensor) -> Tensor:
    """``p · (lp − lq)`` with ``0 · log 0 = 0``: where ``p = 0`` the term and its gradients are 0
    (the difference is zeroed first, so no ``0 · ∞`` reaches autograd)."""
    return p * torch.where(p == 0, torch.zeros_like(lp), lp - lq)


def kl_div_logits(p_logits: Tensor, q_logits: Tensor, *, dim: int = -1, reduction: str = "mean"):
    """KL(P ‖ Q) = ``Σ P·(log P − log Q)`` between ``softmax(p_logits)`` and ``softmax(q_logits)``
    along ``dim``, from ``log_softmax`` (stable at logits of ±1e4; ``0·log 0 = 0``).
    "mean" averages over the distributions (every position but ``dim``; see ``_rows``)."""
    lp = torch.log_softmax(_up(p_logits), dim=dim)
    lq = torch.log_softmax(_up(q_logits), dim=dim)
    return _rows(_xlogy_ratio(lp.exp(), lp, lq), dim, reduction,
                 torch.empty((), dtype=torch.promote_types(p_logits.dtype, q_logits.dtype)))


def js_div_logits(p_logits: Tensor, q_logits: Tensor, *, dim: int = -1, reduction: str = "mean"):
    """Jensen–Shannon divergence ``½ KL(P ‖ M) + ½ KL(Q ‖ M)``, ``M = ½(P + Q)``, between the
    softmax distributions along ``dim`` (natural log: at most log 2), with
    ``log M = logsumexp(log P, log Q) − log 2`` (``logsumexp``, not ``logaddexp``: the
    latter's second derivative is inf/inf = nan where the two differ by ~1e4)."""
    lp = torch.log_softmax(_up(p_logits), dim=dim)
    lq = torch.log_softmax(_up(q_logits), dim=dim)
    # where P = Q = 0 (both −inf) the terms are 0 whatever log M is, but logsumexp's
    # derivative there is exp(−inf − (−inf)) = nan, and 0·nan reaches the gradient: such
    # entries take log M of two zeros instead (the double-where, exact to every order)
    both = (lp == -math.inf) & (lq == -math.inf)
    zero = torch.zeros_like(lp)
    lm = torch.logsumexp(torch.stack((torch.where(both, zero, lp), torch.where(both, zero, lq))), dim=0) \
        - math.log(2.0)
    terms = 0.5 * (_xlogy_ratio(lp.exp(), lp, lm) + _xlogy_ratio(lq.exp(), lq, lm))
    return _rows(terms, dim, reduction, torch.empty((), dtype=torch.promote_types(p_logits.dtype, q_logits.dtype)))


# --- feature matching -------------------------------------------------------------

def feature_matching_maps(reals, fakes, *, p: int = 1, reduction: str = "mean", scales=None):
    """``Σ_m s_m · reduce(|g_m − r_m|^p)`` over flat lists of same-shaped maps (the reals
    already detached if they should be): "mean" averages each map, "sum" sums it; "none"
    gives the list of per-element terms (unscaled).  ``scales``: the per-map factors
    ``s_m`` (default 1).  Each map in its accumulation dtype; the total in the promoted
    dtype of the fakes.  (What the fused backends compute and differentiate.)"""
    terms = []
    for r, g in zip(reals, fakes):
        d = _up(g) - _up(r)
        terms.append(d.abs() if p == 1 else d * d)
    if reduction == "none":
        return [t.to(g.dtype) for t, g in zip(terms, fakes)]
    total = None
    for m, t in enumerate(terms):
        out = t.sum() / t.numel() if reduction == "mean" else t.sum()
        if scales is not None and scales[m] != 1.0:
            out = out * scales[m]
        total = out if total is None else total + out
    dt = fakes[0].dtype
    for g in fakes[1:]:
        dt = torch.promote_types(dt, g.dtype)
    return total.to(dt)


def feature_matching_scales(counts, over_maps: str = "sum", over_discriminators: str = "sum") -> list:
    """The per-map factors of ``feature_matching_loss``'s ``over_maps`` /
    ``over_discriminators``, flat over the maps of every discriminator: ``counts[d]`` is
    discriminator ``d``'s number of maps; each of its maps gets ``1/counts[d]`` when
    ``over_maps="mean"`` and ``1/len(counts)`` when ``over_discriminators="mean"`` (Python
    floats, 1.0 where neither applies)."""
    out = []
    for n in counts:
        s = 1.0
        if over_maps == "mean":
            s = s / n
        if over_discriminators == "mean":
            s = s / len(counts)
        out.extend([s] * n)
    return out


def feature_matching_relative(reals, fakes, *, p: int = 1, reduction: str = "mean", scales=None):
    """EnCodec's normalised feature loss over flat lists of maps: each map's reduced term
    ``reduce(|g_m − r_m|^p)`` divided by ``mean(|r_m|)`` of its real map, times ``s_m``,
    summed ("none": each map's per-element terms divided by its ``mean(|r_m|)`` and times
    ``s_m``).  Accumulation and result dtypes as ``feature_matching_maps``.  A real map of
    zeros divides by 0 (inf or nan), as the formula does; EnCodec adds no epsilon."""
    if scales is None:
        scales = [1.0] * len(fakes)
    parts = []
    for r, g, s in zip(reals, fakes, scales):
        ru = _up(r)
        d = _up(g) - ru
        t = d.abs() if p == 1 else d * d
        if reduction != "none":
            t = t.sum() / t.numel() if reduction == "mean" else t.sum()
        t = t / (ru.abs().sum() / ru.numel())
        parts.append(t * s if s != 1.0 else t)
    if reduction == "none":
        return [t.to(g.dtype) for t, g in zip(parts, fakes)]
    total = parts[0]
    for t in parts[1:]:
        total = total + t
    dt = fakes[0].dtype
    for g in fakes[1:]:
        dt = torch.promote_types(dt, g.dtype)
    return total.to(dt)


def feature_matching_loss(real_feats, fake_feats, *, reduction: str = "mean", weight: float = 1.0,
                          detach_real: bool = True, p: int = 1, over_maps: str = "sum",
                          over_discriminators: str = "sum", relative: bool = False):
    """Feature matching, the public function's spec:
    ``weight · Σ_d c_d · Σ_{m of d} a_d · reduce(|f_g − f_r|^p) / n_m`` over the maps of every
    discriminator (a tensor, a list of maps, or a list per discriminator of lists of maps),
    with ``a_d = 1/(maps of d)`` when ``over_maps="mean"`` (else 1), ``c_d = 1/(number of
    discriminators)`` when ``over_discriminators="mean"`` (else 1), and ``n_m = mean|f_r|`` of
    the map's real map when ``relative`` (else 1); the real maps detached unless
    ``detach_real=False``.  "none": each map's per-element terms times the same factors
    (``weight · a_d · c_d / n_m``), a tensor for tensor inputs, else nested as the inputs (per
    discriminator a list of maps), so that the "mean" loss is the sum of each map's mean."""
    def nested(feats):
        return [[feats]] if isinstance(feats, Tensor) else \
            [list(f) if isinstance(f, (list, tuple)) else [f] for f in feats]

    reals, fakes = nested(real_feats), nested(fake_feats)
    flat_r = [r.detach() if detach_real else r for rs in reals for r in rs]
    flat_g = [g for gs in fakes for g in gs]
    scales = feature_matching_scales([len(gs) for gs in fakes], over_maps, over_discriminators)
    if relative:
        out = feature_matching_relative(flat_r, flat_g, p=p, reduction=reduction, scales=scales)
    elif reduction == "none":
        out = [o * s if s != 1.0 else o for o, s in
               zip(feature_matching_maps(flat_r, flat_g, p=p, reduction=reduction), scales)]
    else:
        out = feature_matching_maps(flat_r, flat_g, p=p, reduction=reduction, scales=scales)
    if reduction != "none":
        return out * weight if weight != 1.0 else out
    out = [o * weight for o in out] if weight != 1.0 else out
    return nest_like(fake_feats, out)


def nest_like(feats, flat: list):
    """The flat list of per-map results ``flat`` nested as ``feats`` was: a tensor for a
    tensor, a list for a flat list, and per discriminator a list of maps for a nested one."""
    if isinstance(feats, Tensor):
        return flat[0]
    grouped, k = [], 0
    for f in feats:
        if isinstance(f, Tensor):
            grouped.append(flat[k])
            k += 1
        else:
            grouped.append(flat[k:k + len(f)])
            k += len(f)
    return grouped


# --- drop-in binary_cross_entropy_with_logits ---------------------------------

def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """``w · [BCEwithlogits(s, t) + (p − 1)·t·softplus(−s)]``: torch's
    ``w · [(1 − t)·s + (1 + (p − 1)·t)·softplus(−s)]``.

    Labels take the limits of the math at infinite logits (``0·∞ = 0`` in
    ``BCEwithlogits``, where torch gives nan: ``BCE(+∞, 1) = 0``).  The weights multiply
    as plain products, as in torch: a weight ``w = 0`` on an infinite term, or
    ``(p − 1)·t·softplus(−s) = −∞`` against ``BCE = +∞`` (``p = 0``, ``t = 1``, ``s = −∞``),
    is nan, as torch gives; a zero weight is not a mask for infinite logits.  dtypes as
    torch's function: computed in the accumulation dtype of ``input`` and ``target``
    promoted (weights and labels never rounded to a half type first), the result has
    ``target``'s dtype.
    """
    acc = _compute_dtype_of(torch.promote_types(input.dtype, target.dtype))
    s, t = input.to(acc), target.to(acc)
    loglik = bce_log_likelihood(s, t)
    if pos_weight is not None:  # the extra weight (p − 1)·t on log σ(s) = −softplus(−s)
        loglik = loglik + _mul0((pos_weight.to(acc) - 1) * t, log_sigmoid(s))
    if weight is not None:
        loglik = weight.to(acc) * loglik
    return reduce_one(loglik, target, reduction, -1.0)


# --- gradient-norm penalty ------------------------------------------------------

def grad_norm_penalty(grads: Tensor, *, center: float = 1.0, one_sided: bool = False,
                      reduction: str = "mean") -> Tensor:
    """Per sample ``n_i = ‖grads[i]‖₂`` over every non-batch dim; ``(n_i − center)²``,
    or ``max(0, n_i − center)²`` if ``one_sided``; ``center = 0`` is the squared norm."""
    g = _up(grads).reshape(grads.shape[0], math.prod(grads.shape[1:]))
    sq = (g * g).sum(dim=1)
    if center == 0:
        terms = sq  # the squared norm, one-sided or not (n ≥ 0); no square root, gradient 2·g
    else:
        # sqrt'(0) = ∞ would give 0·∞ = nan at a zero row; the norm's gradient there is 0.
        # (torch.linalg.vector_norm, one fused pass, has a nan second derivative at a zero
        # row: the squared sum it is.)
        zero = sq == 0
        n = torch.where(zero, torch.zeros_like(sq), torch.where(zero, torch.ones_like(sq), sq).sqrt())
        d = n - center
        terms = torch.relu(d) ** 2 if one_sided else d * d
    return reduce_one(terms, grads, reduction)
