"""Sorting and searching: ``sort``, ``argsort``, ``searchsorted``, ``unique``."""

from __future__ import annotations

import numpy as np

from ..core.array import wrap_ndarray
from ..core.errors import ConcretizationError, InvalidValueError
from ..core.trace import Tracer
from ..lax.sort import argsort as _lax_argsort, sort as _lax_sort  # lax.sort is also a function name
from ._util import canonical_axis, to_array


def sort(a, axis=-1, kind=None, order=None, *, stable=True, descending=False):
    """Sorted copy of ``a`` along ``axis`` (flattened when None); differentiable.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.sort(fnp.array([3, 1, 2]))
        Array([1, 2, 3], dtype=int64)
    """
    x = to_array(a, "sort")
    if axis is None:
        x, axis = x.reshape(-1), 0
    if x.ndim == 0:
        return x
    ax = canonical_axis(axis, x.ndim, "sort")
    if descending:
        from .shape_ops import flip

        return flip(_lax_sort(flip(x, ax), ax), ax) if stable else flip(_lax_sort(x, ax), ax)
    return _lax_sort(x, ax)


def argsort(a, axis=-1, kind=None, order=None, *, stable=True, descending=False):
    """Indices (int64) that sort ``a`` along ``axis`` (stable)."""
    x = to_array(a, "argsort")
    if axis is None:
        x, axis = x.reshape(-1), 0
    ax = canonical_axis(axis, x.ndim, "argsort")
    if descending:
        from .shape_ops import flip

        n = x.shape[ax]
        return (n - 1) - flip(_lax_argsort(flip(x, ax), ax), ax)
    return _lax_argsort(x, ax)


def searchsorted(a, v, side="left", sorter=None, method=None):
    """Insertion indices of ``v`` into the sorted 1-D ``a`` (int64).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.searchsorted(fnp.array([1, 3, 5]), fnp.array([3, 4]))
        Array([1, 2], dtype=int64)
    """
    from .reductions import sum as sum_
    from .ufuncs import less, less_equal
    from .indexing import take

    x = to_array(a, "searchsorted")
    if x.ndim != 1:
        raise InvalidValueError(f"searchsorted: a must be 1-D, got shape {x.shape}")
    if sorter is not None:
        x = take(x, sorter)
    vals = to_array(v, "searchsorted")
    cmp = less if side == "left" else less_equal
    if side not in ("left", "right"):
        raise InvalidValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    return sum_(cmp(x, vals[..., None]), axis=-1, dtype=np.int64)


def unique(
    ar,
    return_index=False,
    return_inverse=False,
    return_counts=False,
    axis=None,
    *,
    size=None,
    fill_value=None,
    equal_nan=True,
):
    """Sorted unique elements (of the flattened array when ``axis`` is None).

    Under tracing pass ``size=`` (padded with ``fill_value``, by default the smallest unique value).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.unique(fnp.array([3, 1, 3, 2]))
        Array([1, 2, 3], dtype=int64)
    """
    x = to_array(ar, "unique")
    try:
        v = np.asarray(x._concrete("unique")) if isinstance(x, Tracer) else x._value
    except ConcretizationError:
        raise ConcretizationError(
            "unique: the number of unique elements is data-dependent and cannot be traced; compute it outside jit/vmap"
        ) from None
    res = np.unique(v, return_index=return_index, return_inverse=return_inverse, return_counts=return_counts, axis=axis)
    res = list(res) if isinstance(res, tuple) else [res]
    if size is not None:
        vals = res[0]
        n = vals.shape[0]
        fill = vals.min(axis=0) if fill_value is None and n else (0 if fill_value is None else fill_value)
        pad = np.broadcast_to(np.asarray(fill, vals.dtype), (max(size - n, 0),) + vals.shape[1:])
        res[0] = np.concatenate([vals[:size], pad])
        k = 1
        if return_index:
            res[k] = np.concatenate([res[k][:size], np.zeros(max(size - n, 0), res[k].dtype)])
            k += 1
        if return_inverse:
            k += 1
        if return_counts:
            res[k] = np.concatenate([res[k][:size], np.zeros(max(size - n, 0), res[k].dtype)])
    out = [wrap_ndarray(np.asarray(r).astype(np.int64) if i else np.asarray(r)) for i, r in enumerate(res)]
    return out[0] if len(out) == 1 else tuple(out)
