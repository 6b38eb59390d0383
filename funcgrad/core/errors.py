"""funcgrad's exception classes.

Every error derives from :class:`FuncgradError` and from the builtin exception a
Python user would catch for the same mistake (``TypeError``, ``ValueError``, ...).
"""

import numpy as _np


class FuncgradError(Exception):
    """Base class of every funcgrad error."""


class InvalidArgumentError(FuncgradError, TypeError):
    """An argument has the wrong type or kind (a funcgrad ``TypeError``)."""


class InvalidValueError(FuncgradError, ValueError):
    """An argument has an invalid value (a funcgrad ``ValueError``)."""


class IndexOutOfRangeError(FuncgradError, IndexError):
    """An index is invalid or out of range (a funcgrad ``IndexError``)."""


class ConcretizationError(FuncgradError, TypeError):
    """A concrete Python value was needed from a traced (abstract) value.

    Raised for ``if``/``while``/``bool()``/``int()``/``float()`` on a value traced by
    ``jit``, ``vmap`` or ``make_jaxpr``; use ``lax.cond``, ``lax.while_loop`` or
    ``fnp.where`` instead.
    """


class TracerArrayConversionError(ConcretizationError):
    """A traced value was handed to NumPy (``np.asarray``, a NumPy function or ufunc)."""


class UnexpectedTracerError(FuncgradError, RuntimeError):
    """A tracer escaped the transformation that created it and was used later."""


class ShapeError(FuncgradError, ValueError):
    """Operands have incompatible shapes."""


class DTypeError(FuncgradError, TypeError):
    """Operands have incompatible or unsupported dtypes."""


class AxisError(FuncgradError, _np.exceptions.AxisError):
    """An axis argument is out of range (also a ``ValueError`` and ``IndexError``, as NumPy's AxisError)."""


class NaNError(FuncgradError, FloatingPointError):
    """``debug_nans`` found a NaN in a primitive's output."""
