"""Global configuration flags (``fg.config.update(name, value)``), as in ``jax.config``."""

from __future__ import annotations

import numpy as np
from .errors import InvalidValueError

_OPTIONS = {
    # name: (default, validator returning the normalised value)
    "default_float_dtype": ("float32", None),
    "debug_nans": (False, bool),
    "log_compiles": (False, bool),
    "disable_jit": (False, bool),
}


def _check_float_dtype(value):
    dtype = np.dtype(value)
    if dtype not in (np.dtype("float32"), np.dtype("float64")):
        raise InvalidValueError(
            f"config.update('default_float_dtype', ...): expected float32 or float64, got {value!r}"
        )
    return dtype


class Config:
    """Holds funcgrad's runtime options.

    Options: ``default_float_dtype`` (``"float32"`` or ``"float64"``), ``debug_nans``
    (raise at the first primitive whose output contains a NaN), ``log_compiles`` and
    ``disable_jit``.

    Example:
        >>> import funcgrad as fg
        >>> fg.config.update("default_float_dtype", "float64")
        >>> fg.config.update("default_float_dtype", "float32")
    """

    def __init__(self):
        self.default_float_dtype = np.dtype("float32")
        self.default_complex_dtype = np.dtype("complex64")
        self.debug_nans = False
        self.log_compiles = False
        self.disable_jit = False

    def update(self, name: str, value) -> None:
        """Set option ``name`` to ``value``; unknown names raise ``KeyError``."""
        if name not in _OPTIONS:
            raise KeyError(f"config.update: unknown option {name!r}; known: {sorted(_OPTIONS)}")
        if name == "default_float_dtype":
            dtype = _check_float_dtype(value)
            self.default_float_dtype = dtype
            self.default_complex_dtype = np.dtype("complex64" if dtype == np.float32 else "complex128")
        else:
            setattr(self, name, _OPTIONS[name][1](value))

    def read(self, name: str):
        """Return the current value of option ``name``."""
        if name not in _OPTIONS:
            raise KeyError(f"config.read: unknown option {name!r}")
        return getattr(self, name)


config = Config()
