"""Reductions with NumPy's ``axis`` / ``keepdims`` semantics."""

from __future__ import annotations

import builtins

import numpy as np

from ..core.config import config
from ..core.dtypes import canonicalize, is_inexact
from ..lax import elementwise as lx
from ..lax import reductions as lr
from ..lax.shape import reshape
from ._util import canonical_axes, canonical_axis, to_array
from ..core.errors import InvalidArgumentError, InvalidValueError


def _keep(out, x, axes, keepdims):
    if not keepdims:
        return out
    shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    return reshape(out, shape)


def _sum_dtype(dtype):
    """NumPy's accumulator: small ints and bools sum in int64 (uint64 for unsigned)."""
    if dtype == np.bool_ or (dtype.kind == "i" and dtype.itemsize < 8):
        return np.dtype(np.int64)
    if dtype.kind == "u" and dtype.itemsize < 8:
        return np.dtype(np.uint64)
    return dtype


def _apply_where(x, where, identity):
    if where is None:
        return x
    from .indexing import where as where_

    return where_(where, x, identity)


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum of elements over ``axis`` (all axes by default).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.sum(fnp.array([[1, 2], [3, 4]]), axis=0)
        Array([4, 6], dtype=int64)
    """
    _no_out(out, "sum")
    x = to_array(a, "sum")
    axes = canonical_axes(axis, x.ndim, "sum")
    dt = _sum_dtype(x.dtype) if dtype is None else canonicalize(dtype)
    x = lx.convert_element_type(x, dt)
    x = _apply_where(x, where, 0)
    res = lr.reduce_sum(x, axes)
    if initial is not None:
        res = res + initial
    return _keep(res, x, axes, keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product of elements over ``axis``."""
    _no_out(out, "prod")
    x = to_array(a, "prod")
    axes = canonical_axes(axis, x.ndim, "prod")
    dt = _sum_dtype(x.dtype) if dtype is None else canonicalize(dtype)
    x = _apply_where(lx.convert_element_type(x, dt), where, 1)
    res = lr.reduce_prod(x, axes)
    if initial is not None:
        res = res * initial
    return _keep(res, x, axes, keepdims)


def _extreme(name, reducer, ident_sign):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(out, name)
        x = to_array(a, name)
        axes = canonical_axes(axis, x.ndim, name)
        if where is not None:
            if initial is None:
                raise InvalidValueError(f"{name}: reduction with where= needs an initial value")
            x = _apply_where(x, where, initial)
        if builtins.any(x.shape[i] == 0 for i in axes) and initial is None:
            raise InvalidValueError(
                f"{name}: zero-size array to reduction operation {name} which has no identity "
                f"(shape {x.shape}, axis {axis})"
            )
        res = reducer(x, axes)
        if initial is not None:
            res = (lx.max if ident_sign < 0 else lx.min)(res, lx.scalar_like(res, initial))
        return _keep(res, x, axes, keepdims)

    f.__name__ = name
    f.__doc__ = (
        f"{name.capitalize()} over ``axis``; with ties the gradient is shared equally.\n\n"
        f"Example:\n    >>> import funcgrad.numpy as fnp\n    >>> fnp.{name}(fnp.array([1, 5, 3]))\n"
        f"    Array({5 if name == 'max' else 1}, dtype=int64)\n"
    )
    return f


max = _extreme("max", lr.reduce_max, -1)
min = _extreme("min", lr.reduce_min, 1)
amax, amin = max, min


def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """Arithmetic mean over ``axis`` (integer inputs give the default float dtype).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.mean(fnp.array([1, 2]))
        Array(1.5, dtype=float32)
    """
    _no_out(out, "mean")
    x = to_array(a, "mean")
    axes = canonical_axes(axis, x.ndim, "mean")
    dt = canonicalize(dtype) if dtype is not None else (x.dtype if is_inexact(x.dtype) else config.default_float_dtype)
    x = lx.convert_element_type(x, dt)
    if where is not None:
        total = sum(x, axes, where=where, keepdims=keepdims)
        count = sum(lx.convert_element_type(_broadcast_where(where, x), dt), axes, keepdims=keepdims)
        return total / count
    n = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    res = lr.reduce_sum(x, axes)
    res = lx.div(res, lx.scalar_like(res, n)) if n else lx.div(res, lx.scalar_like(res, np.nan))
    return _keep(res, x, axes, keepdims)


def _broadcast_where(where, x):
    from ._util import broadcast_to_shape

    return broadcast_to_shape(to_array(where), x.shape)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    """Variance over ``axis``; ``ddof`` (or ``correction``, PyTorch's name) sets the divisor ``N - ddof``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.var(fnp.array([1.0, 3.0]))
        Array(1., dtype=float32)
    """
    _no_out(out, "var")
    if correction is not None:
        ddof = correction
    x = to_array(a, "var")
    axes = canonical_axes(axis, x.ndim, "var")
    dt = canonicalize(dtype) if dtype is not None else (x.dtype if is_inexact(x.dtype) else config.default_float_dtype)
    x = lx.convert_element_type(x, dt)
    centered = x - mean(x, axes, keepdims=True)
    sq = lx.real(centered * lx.conj(centered)) if x.dtype.kind == "c" else centered * centered
    n = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    res = lr.reduce_sum(sq, axes)
    res = lx.div(res, lx.scalar_like(res, n - ddof if n - ddof > 0 else np.nan))
    return _keep(res, x, axes, keepdims)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    """Standard deviation: ``sqrt(var(...))``."""
    return lx.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, correction=correction))


def _logical_reduce(name, reducer):
    def f(a, axis=None, out=None, keepdims=False, *, where=None):
        _no_out(out, name)
        x = to_array(a, name)
        axes = canonical_axes(axis, x.ndim, name)
        b = x if x.dtype == np.bool_ else lx.ne(x, lx.scalar_like(x, 0))
        if where is not None:
            b = _apply_where(b, where, name == "all")
        return _keep(reducer(b, axes), x, axes, keepdims)

    f.__name__ = name
    f.__doc__ = f"Whether {'any' if name == 'any' else 'all'} elements along ``axis`` are true (nonzero)."
    return f


any = _logical_reduce("any", lr.reduce_or)
all = _logical_reduce("all", lr.reduce_and)


def _arg(name, prim_fn):
    def f(a, axis=None, out=None, keepdims=False):
        _no_out(out, name)
        x = to_array(a, name)
        if axis is None:
            res = prim_fn(reshape(x, (x.size,)), 0)
            return reshape(res, (1,) * x.ndim) if keepdims else res
        ax = canonical_axis(axis, x.ndim, name)
        if x.shape[ax] == 0:
            raise InvalidValueError(
                f"{name}: attempt to get {name} of an empty sequence (shape {x.shape}, axis {axis})"
            )
        return _keep(prim_fn(x, ax), x, (ax,), keepdims)

    f.__name__ = name
    f.__doc__ = f"Index (int64) of the first {name[3:]}imum along ``axis`` (flattened when None)."
    return f


argmax = _arg("argmax", lr.argmax)
argmin = _arg("argmin", lr.argmin)


def _cumulative(name, fn, promote):
    def f(a, axis=None, dtype=None, out=None):
        _no_out(out, name)
        x = to_array(a, name)
        if axis is None:
            x = reshape(x, (x.size,))
            axis = 0
        ax = canonical_axis(axis, x.ndim, name)
        dt = canonicalize(dtype) if dtype is not None else (_sum_dtype(x.dtype) if promote else x.dtype)
        return fn(lx.convert_element_type(x, dt), ax)

    f.__name__ = name
    f.__doc__ = f"Cumulative {name[3:]} along ``axis`` (flattened when None)."
    return f


cumsum = _cumulative("cumsum", lr.cumsum, True)
cumprod = _cumulative("cumprod", lr.cumprod, True)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Median along ``axis`` (mean of the two middle values for even counts, as NumPy).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.median(fnp.array([3.0, 1.0, 2.0, 10.0]))
        Array(2.5, dtype=float32)
    """
    from .sorting import sort

    _no_out(out, "median")
    x = to_array(a, "median")
    if not is_inexact(x.dtype):
        x = lx.convert_element_type(x, config.default_float_dtype)
    if axis is None:
        flat = reshape(x, (x.size,))
        res = median(flat, 0)
        return reshape(res, (1,) * x.ndim) if keepdims else res
    ax = canonical_axis(axis, x.ndim, "median")
    s = sort(x, ax)
    n = x.shape[ax]
    from ..lax.shape import index_in_dim

    lo = index_in_dim(s, (n - 1) // 2, ax, keepdims)
    hi = index_in_dim(s, n // 2, ax, keepdims)
    return (lo + hi) * 0.5


def count_nonzero(a, axis=None, keepdims=False):
    """Number of nonzero elements along ``axis`` (int64)."""
    x = to_array(a, "count_nonzero")
    b = x if x.dtype == np.bool_ else lx.ne(x, lx.scalar_like(x, 0))
    return sum(b, axis, dtype=np.int64, keepdims=keepdims)


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """Weighted average along ``axis``."""
    if weights is None:
        res = mean(a, axis, keepdims=keepdims)
        return (res, res * 0 + (to_array(a).size / res.size)) if returned else res
    x = to_array(a, "average")
    w = to_array(weights, "average")
    if w.shape != x.shape:
        from ._util import broadcast_to_shape

        if axis is None or w.ndim != 1:
            raise InvalidValueError(
                f"average: weights of shape {w.shape} must match a of shape {x.shape} or be 1-D along the given axis"
            )
        ax = canonical_axis(axis, x.ndim, "average")
        shape = [1] * x.ndim
        shape[ax] = w.shape[0]
        w = broadcast_to_shape(reshape(w, shape), x.shape)
    wsum = sum(w, axis, keepdims=keepdims)
    res = sum(x * w, axis, keepdims=keepdims) / wsum
    return (res, wsum) if returned else res


def _no_out(out, name):
    if out is not None:
        raise InvalidArgumentError(
            f"{name}: out= is not supported (funcgrad arrays are immutable); use the return value"
        )
