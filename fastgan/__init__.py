"""fastgan: fused, numerically stable GAN losses for PyTorch.

    import fastgan
    loss_d = fastgan.F.hinge_d_loss(d_real, d_fake)
    loss_g = fastgan.F.hinge_g_loss(d_fake_for_g)

See ``fastgan.functional`` for the losses and ``fastgan.set_backend`` for who computes them.
"""
from . import functional
from . import functional as F
from . import compat, nn
from . import reference
from .lazy import LazyRegularizer, lazy_adam_hparams
from .backends import available_backends, get_backend, set_backend, use_backend
from . import schedules
from .penalties import (approx_r1_penalty, clip_weights_, dragan_penalty, drift_penalty, grad_norm_penalty,
                        gradient_penalty, r1_penalty, r2_penalty)
from .recipes import GradBalancer
from .registry import OPS

__version__ = "0.1.0"

__all__ = ["functional", "F", "nn", "compat", "reference", "available_backends", "get_backend", "set_backend",
           "use_backend", "OPS", "__version__", "grad_norm_penalty", "gradient_penalty", "r1_penalty",
           "r2_penalty", "clip_weights_", "dragan_penalty", "drift_penalty", "LazyRegularizer", "lazy_adam_hparams",
           "approx_r1_penalty", "GradBalancer", "schedules"]
