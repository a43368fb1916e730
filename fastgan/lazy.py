"""Lazy regularisation (StyleGAN2, Karras et al. 2020, appendix B): a regulariser such as R1
computed only every ``every``-th minibatch, scaled by ``every`` so that its average
strength is unchanged, with the optimiser's hyper-parameters compensated for the
regularisation steps.

    r1 = fastgan.LazyRegularizer(lambda real: fastgan.r1_penalty(critic, real, gamma=10.0), every=16)
    lr, betas = fastgan.lazy_adam_hparams(0.0025, (0.0, 0.99), every=16)
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    for real, z in loader:
        loss_d = fastgan.F.bce_d_loss(critic(real), critic(gen(z).detach()))
        reg = r1(real)                      # 16·R1 on steps 0, 16, 32, ...; None on the others
        if reg is not None:
            loss_d = loss_d + reg
        opt_d.zero_grad(); loss_d.backward(); opt_d.step()

(StyleGAN2 runs the regularisation as a separate optimiser step on the same optimiser;
adding it to the loss of the step it falls on, as above, is the common simplification.
Both are covered by the same scaling.)
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

from .checks import check_number

__all__ = ["LazyRegularizer", "lazy_adam_hparams"]


def _check_every(every) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    return every


class LazyRegularizer:
    """Call ``penalty_fn`` every ``every``-th call, scaled by ``every``; ``None`` on the others
    (no work: the penalty function is not called).

    ``step`` counts the calls (the next call is step ``step``; steps ``0, every, 2·every, ...``
    regularise); set it when resuming a run.  ``due`` says whether the next call regularises,
    so that inputs needed only by the penalty can be skipped too."""

    def __init__(self, penalty_fn: Callable, every: int = 16):
        if not callable(penalty_fn):
            raise TypeError(f"penalty_fn must be callable, got {type(penalty_fn).__name__}")
        self.penalty_fn = penalty_fn
        self.every = _check_every(every)
        self.step = 0

    @property
    def due(self) -> bool:
        return self.step % self.every == 0

    def __call__(self, *args, **kwargs) -> Optional[object]:
        due = self.due
        self.step += 1
        if not due:
            return None
        return self.penalty_fn(*args, **kwargs) * self.every

    def __repr__(self) -> str:
        return f"LazyRegularizer({self.penalty_fn!r}, every={self.every}, step={self.step})"


def lazy_adam_hparams(lr: float, betas: Tuple[float, float], every: int) -> Tuple[float, Tuple[float, float]]:
    """StyleGAN2's optimiser compensation for a regulariser applied every ``every`` steps:
    with ``c = every / (every + 1)``, the learning rate ``lr·c`` and the betas ``β^c``
    (``β₁^c``, ``β₂^c``).  Returns ``(lr, (beta1, beta2))``."""
    lr = check_number("lr", lr)
    if lr < 0:
        raise ValueError(f"lr must be >= 0, got {lr}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    b1, b2 = (check_number(f"betas[{i}]", b) for i, b in enumerate(betas))
    for i, b in enumerate((b1, b2)):
        if not 0.0 <= b < 1.0:  # torch.optim.Adam's range
            raise ValueError(f"betas[{i}] must be in [0, 1), got {b}")
    c = _check_every(every) / (every + 1)
    return lr * c, (b1 ** c, b2 ** c)
