"""``funcgrad.scipy``: SciPy-compatible functions on funcgrad arrays (like ``jax.scipy``).

Example:
    >>> import funcgrad.scipy.special as fsp
    >>> fsp.gammaln(5.0)  # log(4!)
    Array(3.1780539, dtype=float32)
"""

from . import special  # noqa: F401
