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
        raise ShapeError(f"lax.{name}: operands must have equal shapes (or be scalars), got "
                         f"{', '.join(str(a.shape) for a in avals)}")
    return shapes.pop() if shapes else ()


def _check_dtypes(avals, name, kinds=None):
    dtypes = {a.dtype for a in avals}
    if len(dtypes) > 1:
        raise DTypeError(f"lax.{name}: operands must have equal dtypes, got "
                         f"{', '.join(a.dtype.name for a in avals)}")
    dtype = dtypes.pop()
    if kinds is not None and not kinds(dtype):
        raise DTypeError(f"lax.{name} does not accept dtype {dtype.name}")
    return dtype


def elementwise(name, impl, nin=1, out_dtype=None, accepts=None, differentiable=True) -> Primitive:
    """An elementwise primitive. ``out_dtype(in_dtype)`` maps dtypes (default: unchanged)."""
    prim = Primitive(name, differentiable=differentiable)

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
