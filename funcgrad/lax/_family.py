"""Factories that build whole primitive families (abstract eval + impl) in one line.

Elementwise primitives take operands of equal shape and dtype; a rank-0 operand is
also accepted and broadcast (as in JAX's jaxprs, where scalar literals appear).
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.errors import DTypeError, ShapeError
from ..core.primitive import Primitive
from ._batching import elementwise_rule


def _shape_of(avals, name):
    shapes = {a.shape for a in avals if a.shape != ()}
    if len(shapes) > 1:
        raise ShapeError(
            f"lax.{name}: operands must have equal shapes (or be scalars), got {', '.join(str(a.shape) for a in avals)}"
        )
    return shapes.pop() if shapes else ()


def _check_dtypes(avals, name, kinds=None):
    dtypes = {a.dtype for a in avals}
    if len(dtypes) > 1:
        raise DTypeError(f"lax.{name}: operands must have equal dtypes, got {', '.join(a.dtype.name for a in avals)}")
    dtype = dtypes.pop()
    if kinds is not None and not kinds(dtype):
        raise DTypeError(f"lax.{name} does not accept dtype {dtype.name}")
    return dtype


class _CallImpl:
    """Marker for ``Primitive.lower``: jitted code calls the primitive's NumPy impl."""

    __slots__ = ()

    def __repr__(self):
        return "CALL_IMPL"


# The generic lowering: one call of ``prim.impl`` from the Python-level executor (used by
# structured primitives, and by special functions without a numba-friendly scalar form).
CALL_IMPL = _CallImpl()


def elementwise(name, impl, nin=1, out_dtype=None, accepts=None, differentiable=True, lower=None) -> Primitive:
    """An elementwise primitive. ``out_dtype(in_dtype)`` maps dtypes (default: unchanged).

    ``lower`` is its jit lowering: a scalar source template such as ``"({0} + {1})"``, a dict
    of templates keyed by dtype (see ``funcgrad/jit/lowering.py``), or ``CALL_IMPL``.
    """
    prim = Primitive(name, differentiable=differentiable)
    prim.lower = lower

    def abstract_eval(*avals, **params):
        shape = _shape_of(avals, name)
        dtype = _check_dtypes(avals, name, accepts)
        return ShapedArray(shape, out_dtype(dtype) if out_dtype else dtype)

    if nin == 1:

        def impl_(x, **params):
            return impl(x, **params)
    else:
        impl_ = impl
    prim.impl = impl_
    prim.abstract_eval = abstract_eval
    prim.batch = elementwise_rule(prim)
    return prim


def bool_out(_dtype):
    return np.dtype(bool)
