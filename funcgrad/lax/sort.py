"""Sorting: ``sort`` (values and the stable permutation), ``argsort`` and ``top_k``."""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array
from ..core.primitive import Primitive
from .indexing import take_along_axis_index
from ..core.errors import InvalidValueError


def _sort_impl(x, dimension):
    perm = np.argsort(x, axis=dimension, kind="stable")
    return [np.take_along_axis(x, perm, dimension), perm.astype(np.int64)]


sort_p = Primitive("sort", multiple_results=True)
sort_p.impl = _sort_impl
sort_p.abstract_eval = lambda x, dimension: [ShapedArray(x.shape, x.dtype), ShapedArray(x.shape, np.int64)]


def _sort_jvp(primals, tangents, dimension):
    (x,), (t,) = primals, tangents
    vals, perm = sort_p.bind(x, dimension=dimension)
    return [vals, perm], [take_along_axis_index(t, perm, dimension), None]


sort_p.jvp = _sort_jvp


def sort(operand, dimension=-1):
    """Sort along ``dimension`` (stable; NaNs last)."""
    operand = as_array(operand, "lax.sort")
    return sort_p.bind(operand, dimension=dimension % max(operand.ndim, 1))[0]


def argsort(operand, dimension=-1):
    """Stable sorting permutation along ``dimension`` (int64)."""
    operand = as_array(operand, "lax.argsort")
    return sort_p.bind(operand, dimension=dimension % max(operand.ndim, 1))[1]


def sort_with_indices(operand, dimension=-1):
    operand = as_array(operand, "lax.sort")
    return tuple(sort_p.bind(operand, dimension=dimension % max(operand.ndim, 1)))


def _top_k_impl(x, k):
    # Largest first; among equal values the lower index first (as JAX).
    # (Negating would wrap unsigned and minimum integers: sort the reversed axis ascending instead.)
    n = x.shape[-1]
    perm = (n - 1 - np.argsort(x[..., ::-1], axis=-1, kind="stable"))[..., ::-1][..., :k]
    return [np.take_along_axis(x, perm, -1), perm.astype(np.int64)]


def _top_k_abstract(x, k):
    if x.ndim == 0 or not 0 <= k <= x.shape[-1]:
        raise InvalidValueError(f"lax.top_k: k={k} must be between 0 and the last axis size of shape {x.shape}")
    shape = x.shape[:-1] + (k,)
    return [ShapedArray(shape, x.dtype), ShapedArray(shape, np.int64)]


top_k_p = Primitive("top_k", multiple_results=True)
top_k_p.impl = _top_k_impl
top_k_p.abstract_eval = _top_k_abstract


def _top_k_jvp(primals, tangents, k):
    (x,), (t,) = primals, tangents
    vals, idx = top_k_p.bind(x, k=k)
    return [vals, idx], [take_along_axis_index(t, idx, x.ndim - 1), None]


top_k_p.jvp = _top_k_jvp


def top_k(operand, k):
    """The ``k`` largest entries along the last axis and their int64 indices.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.top_k(fnp.array([1.0, 3.0, 2.0]), 2)
        (Array([3., 2.], dtype=float32), Array([1, 2], dtype=int64))
    """
    operand = as_array(operand, "lax.top_k")
    return tuple(top_k_p.bind(operand, k=int(k)))


def _sort_batch(vals, dims, dimension):
    from ._batching import shift_axis

    (x,), (d,) = vals, dims
    return sort_p.bind(x, dimension=shift_axis(dimension, d)), [d, d]


def _top_k_batch(vals, dims, k):
    from ._batching import bdim_to_front

    (x,), (d,) = vals, dims
    if d == x.ndim - 1:  # top_k works on the last axis: keep the batch axis elsewhere
        x, d = bdim_to_front(x, d, None), 0
    return top_k_p.bind(x, k=k), [d, d]


sort_p.batch = _sort_batch
top_k_p.batch = _top_k_batch
