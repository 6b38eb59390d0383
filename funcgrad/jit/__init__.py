"""``fg.jit``: compilation of jaxprs to numba kernels (not built yet).

``fg.jit`` raises ``NotImplementedError`` until the numba lowering lands;
``fg.disable_jit()`` already exists so code can be written against it.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..core.config import config


def jit(fun=None, *, static_argnums=(), static_argnames=(), donate_argnums=(), backend=None):
    """Compile ``fun`` (not implemented yet: raises ``NotImplementedError``)."""
    raise NotImplementedError(
        "fg.jit is not implemented yet: the numba lowering of jaxprs is still being built. "
        "Run the function eagerly (transformations such as grad, jacrev and hessian work without jit).")


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
