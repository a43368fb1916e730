"""Triton kernels of fastgan (installed as ``fastgan.kernels``).

Importing this package imports triton.  ``TRITON_INTERPRET`` is read when the
kernels are decorated, so set it before the first import to run them on CPU.
"""



def _interpreter_numpy_check() -> None:
    """Refuse the Triton interpreter of triton < 3.2 under numpy >= 2: it runs, but its
    stores write nothing (wrong results, no error).  Raised at import, the triton backend
    reports it as unusable with this reason."""
    import os
    if os.environ.get("TRITON_INTERPRET", "0") != "1":  # how triton < 3.2 reads it
        return
    import triton
    try:
        version = tuple(int(p) for p in triton.__version__.split(".")[:2])
        import numpy as np
        numpy_major = int(np.__version__.split(".")[0])
    except (ValueError, ImportError):
        return
    if version < (3, 2) and numpy_major >= 2:
        raise ImportError(f"the Triton interpreter of triton {triton.__version__} computes wrong results "
                          f"with numpy {np.__version__}: install numpy<2 (pip install 'numpy<2') or triton>=3.2")

def _interpreter_index_fix() -> None:
    """Let the Triton interpreter of triton < 3.7 take loop bounds under numpy >= 2.4.

    That interpreter holds every scalar (a kernel's int arguments, ``tl.program_id``) as a
    one-element 1-d numpy array and gives ``tl.tensor.__index__`` as ``int(array)``, which
    numpy 2.4 refuses for a 1-d array ("only 0-dimensional arrays can be converted to
    Python scalars"): every ``range(...)`` over a kernel argument fails.  Later triton
    squeezes the array first; this installs that ``__index__`` when the interpreter patches
    ``tl.tensor`` (only while it runs a kernel: compiled kernels never see it)."""
    try:
        import numpy as np
        int(np.zeros(1, dtype=np.int32))
        return  # this numpy still converts a one-element array
    except TypeError:
        pass
    except ImportError:  # the interpreter needs numpy; triton says so itself
        return
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_fastgan_index_fix", False):
        return

    def _index(self):
        return int(self.handle.data.reshape(()))

    def _patch_lang_tensor(tensor, *scope):
        original(tensor, *scope)
        if scope:  # triton >= 3.4: patches are made (and undone) through a scope
            scope[0].set_attr(tensor, "__index__", _index)
        else:
            tensor.__index__ = _index

    _patch_lang_tensor._fastgan_index_fix = True
    interpreter._patch_lang_tensor = _patch_lang_tensor


_interpreter_numpy_check()
_interpreter_index_fix()
