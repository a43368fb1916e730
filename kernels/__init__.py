"""Triton kernels of fastgan (installed as ``fastgan.kernels``).

Importing this package imports triton.  ``TRITON_INTERPRET`` is read when the
kernels are decorated, so set it before the first import to run them on CPU.
"""
