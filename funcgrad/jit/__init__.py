"""``fg.jit``: trace a function to a jaxpr once per signature and run compiled code.

Modules, in the order a compile goes through them:

* ``api.py``: the transformation, its per-signature cache, ``jit_p``, ``.lower()``;
* ``executor.py``: the generated Python executor (one line per equation) and ``compile_jaxpr``;
* ``fusion.py``: groups of elementwise (+ reduction) equations; ``kernels.py``: their numba
  source, compile cache and thread pool; ``llvmgen.py`` + ``native.py``: that source compiled
  to LLVM IR and cached as object code (numba is the fallback); ``fastmath.py``: float32 math;
* ``loops.py`` + ``scan_rewrite.py``: ``scan``/``while``/``cond`` as compiled loops;
* ``gemm.py`` + ``workers.py``: matrix products compiled for the host CPU, split across native
  worker threads;
* ``lowering.py``: each primitive's lowering rule; ``conv_kernels.py``, ``window_kernels.py``:
  numba loops behind the convolution and pooling impls; ``allocator.py``: host allocator state.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..core.config import config
from .api import JittedFunction, Lowered, jit, jit_p  # noqa: F401


@contextmanager
def disable_jit(disable: bool = True):
    """Context manager under which ``jit``-decorated functions run eagerly.

    Example:
        >>> import funcgrad as fg
        >>> with fg.disable_jit():
        ...     pass
    """
    previous = config.disable_jit
    config.update("disable_jit", disable)
    try:
        yield
    finally:
        config.update("disable_jit", previous)
