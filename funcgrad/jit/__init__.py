"""``fg.jit``: trace a function to a jaxpr once per signature and run compiled code.

See ``api.py`` (the transformation and its cache) and ``executor.py`` (code generation).
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
