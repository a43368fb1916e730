"""The backends: ``"torch"`` (the reference), ``"triton"`` (``kernels/``), ``"native"``
(``csrc/``), and ``"auto"``, the fastest usable one for the tensors' device.

The call path: ``fastgan.functional`` checks the arguments and calls ``dispatch.run``,
which looks the op's family up in the selected backend's ``OPS`` and asks that family op
whether it takes the call (``interface.FamilyOp``: declared devices and modes, and why
not); the op's launcher and autograd (``fused.fused`` or the extension's C++ autograd)
then run its kernels.  Where an op refuses, the reference runs, for a reason the op
declares (``fastgan info --ops`` prints them all).

* ``selection``: ``set_backend`` / ``get_backend`` / ``use_backend`` / ``resolve``;
* ``interface``: ``FamilyOp``, the call modes, the support table;
* ``dispatch``: ``run``, ``run_list``, ``feature_matching``;
* ``fused``: the one Python autograd rule; ``families``: the families both fused backends share;
* ``triton/``, ``native/``: one module per family; ``native_loader``: the extension's build.
"""
from __future__ import annotations

from .dispatch import feature_matching, plan, run, run_list
from .interface import support_table
from .modes import transformed
from .selection import (BACKENDS, NAMES, available_backends, get_backend, resolve, set_backend,
                        use_backend)

__all__ = ["available_backends", "get_backend", "set_backend", "use_backend", "resolve", "BACKENDS", "NAMES",
           "run", "run_list", "feature_matching", "plan", "support_table", "transformed"]
