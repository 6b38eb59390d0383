"""Reductions over static axes, argmax/argmin and cumulative scans."""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.errors import InvalidValueError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import deflinear, defjvp
from .elementwise import convert_element_type, div, eq, mul, select, scalar_like
from ._batching import shift_axis
from .shape import broadcast_in_dim


def _reduced_shape(shape, axes):
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _kept_dims(ndim, axes):
    return tuple(i for i in range(ndim) if i not in axes)


def _check_axes(x, axes, name):
    for a in axes:
        if not 0 <= a < x.ndim:
            raise ShapeError(f"lax.{name}: axis {a} is out of range for an array of shape {x.shape}")


def _reduction(name, impl, out_dtype=None, differentiable=True):
    p = Primitive(name, differentiable=differentiable)
    p.impl = lambda x, axes: np.asarray(impl(x, axis=axes))

    def abstract(x, axes):
        _check_axes(x, axes, name)
        return ShapedArray(_reduced_shape(x.shape, axes), out_dtype(x.dtype) if out_dtype else x.dtype)

    p.abstract_eval = abstract
    return p


def _expand(ans, x, axes):
    return broadcast_in_dim(ans, x.shape, _kept_dims(x.ndim, axes))


reduce_sum_p = _reduction("reduce_sum", lambda x, axis: np.sum(x, axis=axis, dtype=x.dtype))
deflinear(reduce_sum_p, lambda ct, x, axes: [_expand(ct, x.aval, axes)])


def _chooser_jvp(t, ans, x, axes):
    # Ties share the derivative equally (as JAX, and torch's full max()).
    location = convert_element_type(eq(x, _expand(ans, x, axes)), t.dtype)
    counts = reduce_sum(location, axes)
    return div(reduce_sum(mul(t, location), axes), counts)


def _extreme_impl(fn, lowest):
    # An empty reduction gives the identity (-inf / +inf, or the integer limits), as in JAX;
    # NumPy raises instead.
    def impl(x, axis):
        if x.size:
            return fn(x, axis=axis)
        if x.dtype.kind == "f" or x.dtype.kind == "V":
            init = -np.inf if lowest else np.inf
        elif x.dtype == np.bool_:
            init = not lowest
        else:
            info = np.iinfo(x.dtype)
            init = info.min if lowest else info.max
        return fn(x, axis=axis, initial=init)

    return impl


reduce_max_p = _reduction("reduce_max", _extreme_impl(np.max, True))
reduce_min_p = _reduction("reduce_min", _extreme_impl(np.min, False))
defjvp(reduce_max_p, _chooser_jvp)
defjvp(reduce_min_p, _chooser_jvp)

reduce_prod_p = _reduction("reduce_prod", lambda x, axis: np.prod(x, axis=axis, dtype=x.dtype))


def _reduce_prod_jvp(t, ans, x, axes):
    # d prod = sum_i t_i * prod_{j != i} x_j; the exclusive products come from a left and a
    # right cumulative product, which stays exact when some x_j are zero.
    from .shape import reshape, transpose, concatenate

    kept = _kept_dims(x.ndim, axes)
    perm = kept + tuple(axes)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    lead = tuple(x.shape[k] for k in kept)
    xf = reshape(transpose(x, perm), lead + (n,))
    tf = reshape(transpose(t, perm), lead + (n,))
    last = len(lead)
    one = broadcast_in_dim(scalar_like(x, 1), lead + (1,), ())
    from .shape import slice_in_dim

    left = concatenate([one, slice_in_dim(cumprod(xf, last), 0, n - 1, 1, last)], last)
    right = concatenate([slice_in_dim(cumprod(xf, last, reverse=True), 1, n, 1, last), one], last)
    return reduce_sum(mul(tf, mul(left, right)), (last,))


defjvp(reduce_prod_p, _reduce_prod_jvp)

reduce_and_p = _reduction("reduce_and", np.all, differentiable=False)
reduce_or_p = _reduction("reduce_or", np.any, differentiable=False)


def _arg_reduction(name, impl):
    p = Primitive(name, differentiable=False)
    p.impl = lambda x, axis, index_dtype: np.asarray(impl(x, axis=axis)).astype(index_dtype)

    def abstract(x, axis, index_dtype):
        _check_axes(x, (axis,), name)
        if x.shape[axis] == 0:
            raise InvalidValueError(f"lax.{name}: attempt to get {name} of an empty axis (shape {x.shape})")
        return ShapedArray(_reduced_shape(x.shape, (axis,)), index_dtype)

    p.abstract_eval = abstract
    return p


argmax_p = _arg_reduction("argmax", np.argmax)
argmin_p = _arg_reduction("argmin", np.argmin)


# -- cumulative ----------------------------------------------------------------------------


def _cumulative(name, impl):
    p = Primitive(name)

    def run(x, axis, reverse):
        if reverse:
            return np.flip(impl(np.flip(x, axis), axis=axis), axis)
        return impl(x, axis=axis)

    p.impl = lambda x, axis, reverse: np.asarray(run(x, axis, reverse)).astype(x.dtype, copy=False)

    def abstract(x, axis, reverse):
        _check_axes(x, (axis,), name)
        return ShapedArray(x.shape, x.dtype)

    p.abstract_eval = abstract
    return p


cumsum_p = _cumulative("cumsum", np.cumsum)
deflinear(cumsum_p, lambda ct, x, axis, reverse: [cumsum(ct, axis, not reverse)])
cumprod_p = _cumulative("cumprod", np.cumprod)
cummax_p = _cumulative("cummax", np.maximum.accumulate)
cummin_p = _cumulative("cummin", np.minimum.accumulate)


def _cumprod_jvp(t, ans, x, axis, reverse):
    # Exact at zeros and to every order: the JVP of a Hillis-Steele scan (log2(n) rounds of
    # multiplying by a copy shifted by 1, 2, 4, ...), which multiplies but never divides.
    from .elementwise import add
    from .shape import pad, rev

    if reverse:
        x, t = rev(x, (axis,)), rev(t, (axis,))
    y, dy, k = x, t, 1
    while k < x.shape[axis]:
        config = [(0, 0, 0)] * x.ndim
        config[axis] = (k, -k, 0)
        y_shift, dy_shift = pad(y, scalar_like(x, 1), config), pad(dy, scalar_like(t, 0), config)
        y, dy = mul(y, y_shift), add(mul(dy, y_shift), mul(y, dy_shift))
        k *= 2
    return rev(dy, (axis,)) if reverse else dy


def _cumchooser_jvp(t, ans, x, axis, reverse):
    # The tangent follows the element currently holding the running max/min.
    from .indexing import take_along_axis_index

    n = x.shape[axis]
    iota = broadcast_in_dim(wrap_ndarray(np.arange(n, dtype=np.int64)), x.shape, (axis,))
    hit = select(
        eq(x, ans),
        iota,
        wrap_ndarray(np.zeros(x.shape, np.int64)) if not reverse else wrap_ndarray(np.full(x.shape, n - 1, np.int64)),
    )
    idx = cummax(hit, axis, reverse) if not reverse else cummin(hit, axis, reverse)
    return take_along_axis_index(t, idx, axis)


defjvp(cumprod_p, _cumprod_jvp)
defjvp(cummax_p, _cumchooser_jvp)
defjvp(cummin_p, _cumchooser_jvp)


# -- public functions ----------------------------------------------------------------------


def _axes(x, axes):
    return tuple(sorted(int(a) % max(x.ndim, 1) for a in axes))


def reduce_sum(operand, axes):
    """Sum over ``axes``."""
    operand = as_array(operand, "lax.reduce_sum")
    axes = _axes(operand, axes)
    return reduce_sum_p.bind(operand, axes=axes) if axes else operand


def reduce_max(operand, axes):
    """Maximum over ``axes``; ties share the gradient equally."""
    operand = as_array(operand, "lax.reduce_max")
    axes = _axes(operand, axes)
    return reduce_max_p.bind(operand, axes=axes) if axes else operand


def reduce_min(operand, axes):
    """Minimum over ``axes``; ties share the gradient equally."""
    operand = as_array(operand, "lax.reduce_min")
    axes = _axes(operand, axes)
    return reduce_min_p.bind(operand, axes=axes) if axes else operand


def reduce_prod(operand, axes):
    """Product over ``axes``."""
    operand = as_array(operand, "lax.reduce_prod")
    axes = _axes(operand, axes)
    return reduce_prod_p.bind(operand, axes=axes) if axes else operand


def reduce_and(operand, axes):
    operand = as_array(operand, "lax.reduce_and")
    return reduce_and_p.bind(operand, axes=_axes(operand, axes))


def reduce_or(operand, axes):
    operand = as_array(operand, "lax.reduce_or")
    return reduce_or_p.bind(operand, axes=_axes(operand, axes))


def argmax(operand, axis, index_dtype=np.int64):
    """Index of the first maximum along ``axis``."""
    operand = as_array(operand, "lax.argmax")
    return argmax_p.bind(operand, axis=int(axis) % operand.ndim, index_dtype=np.dtype(index_dtype))


def argmin(operand, axis, index_dtype=np.int64):
    """Index of the first minimum along ``axis``."""
    operand = as_array(operand, "lax.argmin")
    return argmin_p.bind(operand, axis=int(axis) % operand.ndim, index_dtype=np.dtype(index_dtype))


def _cum(prim, name):
    def f(operand, axis=0, reverse=False):
        operand = as_array(operand, f"lax.{name}")
        return prim.bind(operand, axis=int(axis) % max(operand.ndim, 1), reverse=bool(reverse))

    f.__name__ = name
    f.__doc__ = f"Cumulative ``{name}`` along ``axis`` (``reverse=True`` scans from the end)."
    return f


cumsum = _cum(cumsum_p, "cumsum")
cumprod = _cum(cumprod_p, "cumprod")
cummax = _cum(cummax_p, "cummax")
cummin = _cum(cummin_p, "cummin")


# -- batching rules --------------------------------------------------------------------------


def _reduce_batch(prim):
    def rule(vals, dims, axes):
        (x,), (d,) = vals, dims
        new_axes = tuple(shift_axis(a, d) for a in axes)
        return prim.bind(x, axes=new_axes), d - sum(1 for a in new_axes if a < d)

    return rule


def _arg_batch(prim):
    def rule(vals, dims, axis, index_dtype):
        (x,), (d,) = vals, dims
        ax = shift_axis(axis, d)
        return prim.bind(x, axis=ax, index_dtype=index_dtype), d - (1 if ax < d else 0)

    return rule


def _cumulative_batch(prim):
    def rule(vals, dims, axis, reverse):
        (x,), (d,) = vals, dims
        return prim.bind(x, axis=shift_axis(axis, d), reverse=reverse), d

    return rule


for _p in (reduce_sum_p, reduce_max_p, reduce_min_p, reduce_prod_p, reduce_and_p, reduce_or_p):
    _p.batch = _reduce_batch(_p)
for _p in (argmax_p, argmin_p):
    _p.batch = _arg_batch(_p)
for _p in (cumsum_p, cumprod_p, cummax_p, cummin_p):
    _p.batch = _cumulative_batch(_p)
