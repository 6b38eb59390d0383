"""``funcgrad.compat``: helpers with other libraries' semantics, for porting code.

``funcgrad.compat.torch`` (import as ``ft``) holds PyTorch-semantics tensor functions
(``gather``, ``scatter``, ``chunk``, ``split``, ``expand``, ``max(x, dim)`` ...).

Example:
    >>> import funcgrad.numpy as fnp
    >>> import funcgrad.compat.torch as ft
    >>> [c.shape for c in ft.chunk(fnp.arange(5), 2)]
    [(3,), (2,)]
"""

from . import torch  # noqa: F401
