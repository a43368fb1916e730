"""The pieces of today's training recipes that are compositions of torch ops (no fused
kernel yet): VQGAN's adaptive weight, the LeCam regulariser, StyleGAN2's path-length
regulariser and EnCodec's loss balancer.

Exported as ``fastgan.functional.adaptive_weight`` / ``lecam_penalty``,
``fastgan.nn.LeCamRegularizer`` / ``PathLengthRegularizer`` and ``fastgan.GradBalancer``.
None of them synchronises with the host (no ``.item()``, no Python branch on a tensor's
value): the branches below are on arguments, shapes, dtypes and whether a tensor has a
graph, which ``torch.compile`` treats as static.  Half types accumulate in float32.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from .checks import check_bool, check_number, check_tensor

__all__ = ["adaptive_weight", "lecam_penalty", "LeCamRegularizer", "PathLengthRegularizer", "GradBalancer"]

_HALF = (torch.float16, torch.bfloat16)


def _acc(dtype: torch.dtype) -> torch.dtype:
    """The dtype to accumulate in: float32 for the half types, the dtype otherwise."""
    return torch.float32 if dtype in _HALF else dtype


def _distributed_world() -> int:
    """The default process group's size when one is initialised, else 1 (no collective)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


# --------------------------------------------------------------------------- VQGAN's adaptive weight

def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, *, eps: float = 1e-4,
                    max_weight: float = 1e4) -> Tensor:
    """VQGAN's adaptive weight of the generator's GAN loss (taming-transformers,
    ``VQLPIPSWithDiscriminator.calculate_adaptive_weight``):
    ``λ = clamp(‖∂rec_loss/∂W‖ / (‖∂g_loss/∂W‖ + eps), 0, max_weight)``, detached, with
    ``W = last_layer`` (the decoder's last weight) and Frobenius norms over the whole
    gradient.  Multiply by your ``disc_weight`` yourself, as taming does after this.

    Both gradients are taken with ``retain_graph=True`` and without touching ``.grad``,
    so the caller's ``backward`` of ``rec_loss + λ·g_loss`` follows.  The norms are in
    float32 for half-type gradients and under autocast (autocast is off inside), in
    float64 for float64 ones; λ is a 0-d tensor of that dtype on ``last_layer``'s device.

    ``0`` (a 0-d tensor) when either loss has no graph to ``W``: a loss that does not
    require grad (evaluation under ``torch.no_grad``), or whose graph does not reach
    ``W``.  taming gets the same 0 by catching autograd's ``RuntimeError``; here it is
    decided without an exception and without a host synchronisation, from whether the
    losses require grad and whether autograd finds a path (a property of the graph, not
    of the data).  Under ``torch.compile(fullgraph=True)`` compute the losses inside the
    compiled function and set ``torch._dynamo.config.trace_autograd_ops = True``
    (torch 2.13 breaks the graph at any ``torch.autograd.grad`` otherwise)."""
    check_tensor("rec_loss", rec_loss)
    check_tensor("g_loss", g_loss)
    check_tensor("last_layer", last_layer)
    eps, max_weight = check_number("eps", eps), check_number("max_weight", max_weight)
    for name, loss in (("rec_loss", rec_loss), ("g_loss", g_loss)):
        if loss.numel() != 1:
            raise ValueError(f"{name} must be a scalar loss (one element), got shape {tuple(loss.shape)}")
    acc = torch.float64 if last_layer.dtype == torch.float64 else torch.float32
    zero = torch.zeros((), dtype=acc, device=last_layer.device)
    if not (rec_loss.requires_grad and g_loss.requires_grad and last_layer.requires_grad):
        return zero
    (g_rec,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True, allow_unused=True)
    (g_gan,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True, allow_unused=True)
    if g_rec is None or g_gan is None:
        return zero
    with torch.autocast(last_layer.device.type, enabled=False):
        n_rec = torch.linalg.vector_norm(g_rec.detach().to(acc))
        n_gan = torch.linalg.vector_norm(g_gan.detach().to(acc))
        return torch.clamp(n_rec / (n_gan + eps), 0.0, max_weight)


# --------------------------------------------------------------------------- LeCam

def _ema_value(name: str, v, like: Tensor) -> Tensor:
    if isinstance(v, Tensor):
        check_tensor(name, v)
        if v.numel() != 1:
            raise ValueError(f"{name} must be a 0-d tensor (one value), got shape {tuple(v.shape)}")
        if v.device != like.device and v.dim() != 0:
            raise ValueError(f"{name} is on {v.device} but the scores are on {like.device}")
        return v.detach().reshape(()).to(like.dtype)
    return torch.full((), check_number(name, v), dtype=like.dtype, device=like.device)  # a fill, no copy


def lecam_penalty(real: Tensor, fake: Tensor, ema_real, ema_fake) -> Tensor:
    """The LeCam regulariser (Tseng et al. 2021; google/lecam-gan ``lecam_reg``):
    ``mean(relu(real − ema_fake)²) + mean(relu(ema_real − fake)²)``.

    ``real``/``fake`` are the discriminator's scores (any shapes, each averaged over all
    its elements); ``ema_real``/``ema_fake`` the moving averages of past mean scores, 0-d
    tensors (or numbers), treated as constants (detached: the lecam-gan code holds them
    as Python floats).  Half types accumulate in float32; the result has the scores'
    promoted dtype.  ``fastgan.nn.LeCamRegularizer`` keeps the averages for you."""
    check_tensor("real", real)
    check_tensor("fake", fake)
    if real.device != fake.device:
        raise ValueError(f"real is on {real.device} but fake is on {fake.device}; move them to one device")
    out = torch.promote_types(real.dtype, fake.dtype)
    r, f = real.to(_acc(real.dtype)), fake.to(_acc(fake.dtype))
    er, ef = _ema_value("ema_real", ema_real, f), _ema_value("ema_fake", ema_fake, r)
    return (torch.relu(r - ef).square().mean() + torch.relu(er - f).square().mean()).to(out)


class LeCamRegularizer(nn.Module):
    """``lecam_penalty`` with its moving averages kept here: ``forward(real, fake)``.

    ``ema_real`` and ``ema_fake`` are buffers (0-d, initially 0, float32 until the module
    is cast, saved in ``state_dict``).  Each call updates them from the batch means of the
    detached scores, ``ema ← decay·ema + (1 − decay)·mean`` (the means in float32 for half
    types), before computing the term when ``update_first`` (lecam-gan's order, in its
    BigGAN and StyleGAN2 code) or after it otherwise, then returns ``lecam_penalty``.
    No ``.item()``: the update stays on the device (the module moves its buffers to the
    scores' device at the first call if you have not).

    ``sync=True``: when a default process group is initialised (DDP), the two batch means
    are averaged over its ranks with one all-reduce before the update, so every rank keeps
    the same averages (the plain mean of the ranks' means: with unequal per-rank batch
    sizes that is not the global batch mean).  Every rank must then call the module the
    same number of times.  Without ``sync`` each rank averages its own scores, as the
    lecam-gan code does."""

    def __init__(self, decay: float = 0.999, update_first: bool = True, sync: bool = False):
        super().__init__()
        decay = check_number("decay", decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.update_first = check_bool("update_first", update_first)
        self.sync = check_bool("sync", sync)
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))

    @torch.no_grad()
    def _update(self, real: Tensor, fake: Tensor) -> None:
        acc = _acc(self.ema_real.dtype)
        means = torch.stack([real.detach().to(_acc(real.dtype)).mean().to(acc),
                             fake.detach().to(_acc(fake.dtype)).mean().to(acc)])
        if self.sync:
            world = _distributed_world()
            if world > 1:
                torch.distributed.all_reduce(means)
                means = means / world
        d = self.decay
        self.ema_real.copy_(d * self.ema_real + (1.0 - d) * means[0])
        self.ema_fake.copy_(d * self.ema_fake + (1.0 - d) * means[1])

    def forward(self, real: Tensor, fake: Tensor) -> Tensor:
        check_tensor("real", real)
        check_tensor("fake", fake)
        if self.ema_real.device != real.device:
            self.to(real.device)
        if self.update_first:
            self._update(real, fake)
        # copies: the update after the term (or the next call's) writes the buffers in place
        out = lecam_penalty(real, fake, self.ema_real.clone(), self.ema_fake.clone())
        if not self.update_first:
            self._update(real, fake)
        return out

    def extra_repr(self) -> str:
        return f"decay={self.decay}, update_first={self.update_first}, sync={self.sync}"


# --------------------------------------------------------------------------- StyleGAN2's path length

class PathLengthRegularizer(nn.Module):
    """StyleGAN2's path-length regulariser, as StyleGAN2-ADA's ``training/loss.py`` computes
    it: ``forward(img, w)`` with ``img`` generated from the latents ``w`` (which must
    require grad), ``w`` of shape ``(B, w_dim)`` or ``(B, num_ws, w_dim)``.

    ``y = randn_like(img) / sqrt(H·W)`` (the global generator; for ``img`` of shape
    ``(B, C, *spatial)`` the product of the spatial sizes), ``J = ∂ sum(img·y) / ∂w`` with
    ``create_graph=True``, per sample ``L = sqrt(mean over ws of Σ_d J²)``; the buffer
    ``pl_mean`` (0-d, initially 0) becomes ``pl_mean + decay·(mean(L) − pl_mean)``, and the
    result is ``weight · mean((L − pl_mean_new)²)`` with ``pl_mean_new`` *not* detached
    inside the penalty (as StyleGAN2-ADA; only the stored buffer is detached).  ``L`` and
    the penalty are computed in float32 for half types; the result has ``img``'s dtype.

    As in StyleGAN2-ADA, ``pl_mean`` is per process (not averaged over DDP ranks), and a
    batch where ``J = 0`` for a sample has an infinite derivative of ``sqrt`` there.  Under
    DDP add ``0 * img[:, 0, 0, 0]`` to the penalty before ``backward`` as StyleGAN2-ADA does,
    so that every synthesis parameter gets a gradient.

    ``torch.compile(fullgraph=True)``: compile the whole step, the penalty's ``backward``
    included, with ``torch._dynamo.config.trace_autograd_ops = True`` (tests/recipes_compile.py).
    In torch 2.13 a penalty returned out of a compiled region has lost the graph of its
    ``create_graph`` gradient (no ``grad_fn``): its ``backward`` outside raises, and added to
    another loss it contributes no gradient."""

    def __init__(self, decay: float = 0.01, weight: float = 2.0):
        super().__init__()
        self.decay = check_number("decay", decay)
        self.weight = check_number("weight", weight)
        self.register_buffer("pl_mean", torch.zeros(()))

    def forward(self, img: Tensor, w: Tensor) -> Tensor:
        check_tensor("img", img)
        check_tensor("w", w)
        if img.dim() < 3:
            raise ValueError(f"img must have shape (B, C, H, W) (or (B, C, *spatial)), got {tuple(img.shape)}")
        if w.dim() not in (2, 3) or w.shape[0] != img.shape[0]:
            raise ValueError(f"w must have shape (B, w_dim) or (B, num_ws, w_dim) with img's batch size "
                             f"{img.shape[0]}, got {tuple(w.shape)}")
        if not (img.requires_grad and w.requires_grad):
            raise ValueError("img must be computed from w, and w must require grad: there is no path length "
                             "to penalise" + ("" if torch.is_grad_enabled() else
                                              " (gradients are disabled here: torch.no_grad or inference_mode)"))
        if self.pl_mean.device != img.device:
            self.to(img.device)
        noise = torch.randn_like(img) / math.sqrt(math.prod(img.shape[2:]))
        (J,) = torch.autograd.grad((img * noise).sum(), w, create_graph=True, allow_unused=True)
        if J is None:
            raise ValueError("img does not depend on w: there is no path length to penalise")
        acc = _acc(J.dtype)
        sq = J.to(acc).square()
        lengths = (sq.sum(2).mean(1) if w.dim() == 3 else sq.sum(1)).sqrt()
        pl_mean = self.pl_mean.to(acc).lerp(lengths.mean(), self.decay)
        with torch.no_grad():
            self.pl_mean.copy_(pl_mean.detach())
        return (self.weight * (lengths - pl_mean).square()).mean().to(img.dtype)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, weight={self.weight}"


# --------------------------------------------------------------------------- EnCodec's balancer

class GradBalancer(nn.Module):
    """EnCodec's loss balancer (audiocraft ``audiocraft/losses/balancer.py``, ``Balancer``),
    with the same arguments and semantics, as a Module whose moving averages are buffers.

    ``backward(losses, output)``: for each loss (a dict ``name → scalar``, every name in
    ``weights``) its gradient ``g`` with respect to the model output ``output``, and its
    norm: per batch item (over every dim but the first) averaged over the batch when
    ``per_batch_item``, else over the whole tensor.  The norms feed a bias-corrected EMA
    (flashy's ``averager``: ``num ← β·num + ‖g‖``, ``den ← β·den + 1``, ``ema = num/den``,
    β = ``ema_decay``), which under DDP is then averaged over the default process group's
    ranks, weighted by each rank's batch size (``per_batch_item``) or equally (flashy's
    ``average_metrics``; every rank keeps its own ``num``/``den`` as audiocraft does, and
    after the all-reduce every rank has the same averaged norms).  With ``balance_grads``
    each gradient is scaled by ``w/Σw · total_norm / (epsilon + ema)`` (``Σw`` over the
    losses given), else by its weight; the scaled gradients are summed and backpropagated
    through ``output`` once; the effective loss ``Σ scale·loss.detach()`` is returned.

    As in audiocraft: ``ema_decay`` of 0 or None is 1 (a plain running mean, flashy's
    ``averager(ema_decay or 1.)``), ``total_norm`` of 0 or None is 1, and the norms are
    averaged over ranks after the EMA (not their squares).  Differences: a loss without a
    weight raises ``ValueError`` (audiocraft: ``KeyError``); the norms are in float32 for
    half types; the EMA and the rank average are float64 tensors on the device (audiocraft:
    Python floats, a float32 all-reduce, ``.tolist()``), so nothing waits for the device;
    only the given losses' averages are updated and used.  ``ema_norms`` (the rank-averaged
    averages of the last call, by name) is for monitoring.  Every rank must call
    ``backward`` with the same loss names in the same order.

    ``torch.compile(fullgraph=True)`` of a step calling it needs the losses computed inside
    the compiled function and ``torch._dynamo.config.trace_autograd_ops = True``."""

    def __init__(self, weights: Dict[str, float], *, balance_grads: bool = True, total_norm: float = 1.0,
                 ema_decay: float = 0.999, per_batch_item: bool = True, epsilon: float = 1e-12):
        super().__init__()
        if not isinstance(weights, dict) or not weights:
            raise TypeError(f"weights must be a non-empty dict (loss name -> weight), got {weights!r}")
        self.weights = {}
        for k, v in weights.items():
            if not isinstance(k, str):
                raise TypeError(f"weights: loss names must be strings, got {k!r}")
            self.weights[k] = check_number(f"weights[{k!r}]", v)
        self.balance_grads = check_bool("balance_grads", balance_grads)
        self.total_norm = check_number("total_norm", total_norm) if total_norm else 1.0
        self.ema_decay = check_number("ema_decay", ema_decay) if ema_decay else 1.0
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1], got {ema_decay}")
        self.per_batch_item = check_bool("per_batch_item", per_batch_item)
        self.epsilon = check_number("epsilon", epsilon)
        self._index = {k: i for i, k in enumerate(self.weights)}
        n = len(self.weights)
        self.register_buffer("ema_num", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("ema_den", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("last_norms", torch.zeros(n, dtype=torch.float64), persistent=False)

    @property
    def ema_norms(self) -> Dict[str, Tensor]:
        """The rank-averaged norm averages of the last ``backward``, by loss name."""
        return {k: self.last_norms[i] for k, i in self._index.items()}

    def _norm(self, grad: Tensor) -> Tensor:
        g = grad.detach()
        acc = _acc(g.dtype)
        if self.per_batch_item and g.dim() > 1:
            return torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim())), dtype=acc).mean()
        return torch.linalg.vector_norm(g, dtype=acc)  # a 1-d output: its norm, as grad.norm(dim=())

    def backward(self, losses: Dict[str, Tensor], output: Tensor) -> Tensor:
        if not isinstance(losses, dict) or not losses:
            raise ValueError("losses must be a non-empty dict (loss name -> scalar loss)")
        check_tensor("output", output)
        for name in losses:
            if name not in self._index:
                raise ValueError(f"loss {name!r} has no weight: the weights are for {sorted(self.weights)}")
        total_weight = sum(self.weights[k] for k in losses)
        if not total_weight > 0:
            raise ValueError(f"the weights of the losses given sum to {total_weight}; they must sum to > 0")
        if self.ema_num.device != output.device:
            state_dtype = torch.float32 if output.device.type == "mps" else torch.float64
            self.to(device=output.device, dtype=state_dtype)
        grads, norms = {}, []
        for name, loss in losses.items():
            check_tensor(f"losses[{name!r}]", loss)
            (g,) = torch.autograd.grad(loss, [output], retain_graph=True, allow_unused=True)
            if g is None:
                raise ValueError(f"loss {name!r} does not depend on output: the balancer needs each loss's "
                                 "gradient with respect to the model output")
            grads[name] = g
            norms.append(self._norm(g))
        beta = self.ema_decay
        with torch.no_grad():
            num, den = self.ema_num.clone(), self.ema_den.clone()
            for name, norm in zip(losses, norms):  # Python indices: no index tensor to copy to the device
                i = self._index[name]
                num[i] = num[i] * beta + norm.to(num.dtype)
                den[i] = den[i] * beta + 1.0
            self.ema_num.copy_(num)
            self.ema_den.copy_(den)
            avg = torch.stack([num[self._index[k]] / den[self._index[k]] for k in losses])
            if _distributed_world() > 1:
                count = float(output.shape[0]) if self.per_batch_item else 1.0
                packed = torch.cat([avg * count, avg.new_full((1,), count)])
                torch.distributed.all_reduce(packed)
                avg = packed[:-1] / packed[-1]
            for j, name in enumerate(losses):
                self.last_norms[self._index[name]] = avg[j]
        gdt = _acc(output.dtype)
        out_grad = torch.zeros_like(output, dtype=gdt)
        effective = torch.zeros((), dtype=avg.dtype, device=output.device)
        for j, (name, loss) in enumerate(losses.items()):
            if self.balance_grads:
                scale = (self.weights[name] / total_weight) * self.total_norm / (self.epsilon + avg[j])
                out_grad = out_grad + grads[name].to(gdt) * scale.to(gdt)
            else:
                scale = self.weights[name]
                out_grad = out_grad + grads[name].to(gdt) * scale
            effective = effective + scale * loss.detach().to(avg.dtype)
        output.backward(out_grad.to(output.dtype))
        return effective.to(output.dtype)

    def forward(self, losses: Dict[str, Tensor], output: Tensor) -> Tensor:
        """``backward(losses, output)``."""
        return self.backward(losses, output)

    def extra_repr(self) -> str:
        return (f"weights={self.weights}, balance_grads={self.balance_grads}, total_norm={self.total_norm}, "
                f"ema_decay={self.ema_decay}, per_batch_item={self.per_batch_item}, epsilon={self.epsilon}")
