"""Argument handling shared by the ``funcgrad.numpy`` wrappers.

Broadcasting, dtype promotion and Python-scalar weak typing happen here, once, so the
primitives below always see operands of equal dtype and equal shape (or rank 0).
"""

from __future__ import annotations

import numpy as np

from ..core.array import Array, wrap_ndarray
from ..core.dtypes import canonical_numpy, is_inexact, result_type
from ..core.errors import AxisError, InvalidArgumentError, InvalidValueError, ShapeError
from ..core.trace import Tracer
from ..lax.elementwise import convert_element_type
from ..lax.shape import broadcast_in_dim

_PY = (bool, int, float, complex)


def to_array(x, name="funcgrad.numpy"):
    """Array or tracer from any array-like (Python data is canonicalised to funcgrad dtypes)."""
    t = type(x)
    if t is Array or isinstance(x, Tracer):
        return x
    if t in _PY:
        return _weak_to_array(x, result_type(x))
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype == object:
            raise InvalidArgumentError(f"{name}: object arrays are not supported")
        return wrap_ndarray(np.array(x))
    if isinstance(x, Array):
        return x
    if isinstance(x, (list, tuple)):
        from .creation import array

        return array(x)
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return wrap_ndarray(np.array(x))
    raise InvalidArgumentError(f"{name}: expected an array-like, got {t.__name__}")


def _weak_to_array(x, dtype):
    return wrap_ndarray(np.asarray(x, dtype))


def is_weak(x):
    return type(x) in _PY


def broadcast_shapes(shapes, name):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"{name}: operands could not be broadcast together with shapes {' '.join(str(tuple(s)) for s in shapes)}"
        ) from None


def broadcast_to_shape(x, shape):
    if x.shape == shape:
        return x
    nlead = len(shape) - x.ndim
    return broadcast_in_dim(x, shape, tuple(range(nlead, len(shape))))


def operands(name, *args, dtype=None):
    """Promote dtypes and broadcast shapes; rank-0 operands stay rank 0."""
    if len(args) == 2:  # fast path for the common eager binary case
        x, y = args
        if type(x) is Array and type(y) is Array:
            xv, yv = x._value, y._value
            if xv.dtype == yv.dtype and xv.shape == yv.shape and (dtype is None or dtype == xv.dtype):
                return [x, y]
    arrays = []
    for a in args:
        if type(a) in _PY or type(a) is Array or isinstance(a, Tracer):
            arrays.append(a)
        else:
            arrays.append(to_array(a, name))
    out_dtype = result_type(*arrays) if dtype is None else np.dtype(dtype)
    shapes = [a.shape for a in arrays if not is_weak(a) and a.shape != ()]
    shape = shapes[0] if len(set(shapes)) <= 1 and shapes else broadcast_shapes(shapes, name) if shapes else ()
    out = []
    for a in arrays:
        if is_weak(a):
            out.append(_weak_to_array(a, out_dtype))
            continue
        if a.dtype != out_dtype:
            a = convert_element_type(a, out_dtype)
        if a.shape != () and a.shape != shape:
            a = broadcast_to_shape(a, shape)
        out.append(a)
    return out


def inexact_operand(x, name):
    """Promote integer/bool inputs of float-only functions to the default float dtype."""
    x = to_array(x, name)
    if not is_inexact(x.dtype):
        from ..core.config import config

        x = convert_element_type(x, config.default_float_dtype)
    return x


def canonical_axis(axis, ndim, name):
    try:
        return _norm(axis, ndim, name)
    except TypeError:
        raise InvalidArgumentError(f"{name}: axis must be an integer, got {axis!r}") from None


def _norm(axis, ndim, name):
    a = int(axis)
    if not -ndim <= a < ndim:
        raise AxisError(
            f"{name}: axis {a} is out of bounds for an array of dimension {ndim} (valid range [{-ndim}, {ndim - 1}])"
        )
    return a % ndim


def canonical_axes(axis, ndim, name):
    """``None`` -> all axes; int or tuple -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(_norm(a, ndim, name) for a in axis)
        if len(set(axes)) != len(axes):
            raise InvalidValueError(f"{name}: repeated axis in {axis}")
        return tuple(sorted(axes))
    return (_norm(axis, ndim, name),)


def as_numpy_dtype(x):
    return canonical_numpy(np.asarray(x)).dtype
