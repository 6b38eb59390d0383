"""Indexing: ``x[idx]``, ``x.at[idx]`` updates, ``where``, ``take``, ``take_along_axis``, ``nonzero``."""

from __future__ import annotations

import numpy as np

from ..core.array import Array, wrap_ndarray
from ..core.errors import ConcretizationError, IndexOutOfRangeError, InvalidValueError
from ..core.trace import Tracer
from ..lax import elementwise as lx
from ..lax.indexing import along_axis_index, getitem_p, index_update_p
from ._util import broadcast_shapes, broadcast_to_shape, canonical_axis, operands, to_array


def _is_int_scalar(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _static_int(i, n, axis):
    i = int(i)
    if not -n <= i < n:
        raise IndexOutOfRangeError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i % n


def _slice_part(v, what):
    if v is None or _is_int_scalar(v):
        return None if v is None else int(v)
    if isinstance(v, Array) and v.ndim == 0 and v.dtype.kind in "iu":
        return int(v)
    if isinstance(v, Tracer):
        raise ConcretizationError(
            f"indexing: slice {what} must be a concrete integer, got a traced value {v.aval.str_short()}; "
            "use lax.dynamic_slice(x, start_indices, slice_sizes) for traced start positions"
        )
    raise IndexOutOfRangeError(f"indexing: slice {what} must be an integer or None, got {type(v).__name__}")


def normalize_index(x, idx, name="indexing"):
    """Split a NumPy index into a static spec and a list of integer index arrays."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = []
    for e in idx:
        if isinstance(e, list):
            e = to_array(e, name)
        elif isinstance(e, np.ndarray):
            e = wrap_ndarray(np.array(e))
        items.append(e)

    def consumed(e):
        if e is None or e is Ellipsis:
            return 0
        if hasattr(e, "dtype") and e.dtype == np.bool_:
            return max(e.ndim, 1) if e.ndim else 0
        return 1

    n_ell = sum(1 for e in items if e is Ellipsis)
    if n_ell > 1:
        raise IndexOutOfRangeError("an index can only have a single ellipsis ('...')")
    used = sum(consumed(e) for e in items)
    if used > x.ndim:
        raise IndexOutOfRangeError(
            f"too many indices for array: array is {x.ndim}-dimensional, but {used} were indexed"
        )
    if n_ell:
        k = items.index(Ellipsis)
        items = items[:k] + [slice(None)] * (x.ndim - used) + items[k + 1 :]
    spec, arrays, axis = [], [], 0
    for e in items:
        if e is None:
            spec.append(("n",))
        elif isinstance(e, slice):
            spec.append(("s", _slice_part(e.start, "start"), _slice_part(e.stop, "stop"), _slice_part(e.step, "step")))
            if spec[-1][3] == 0:
                raise InvalidValueError("slice step cannot be zero")
            axis += 1
        elif isinstance(e, (bool, np.bool_)):
            raise IndexOutOfRangeError("indexing with a Python bool is not supported; use a boolean array mask")
        elif _is_int_scalar(e):
            spec.append(("i", _static_int(e, x.shape[axis], axis)))
            axis += 1
        elif isinstance(e, (Array, Tracer)):
            if e.dtype == np.bool_:
                if isinstance(e, Tracer):
                    try:
                        mask = np.asarray(e._concrete("boolean mask indexing"))
                    except ConcretizationError:
                        raise ConcretizationError(
                            f"{name}: boolean mask indexing x[mask] has a data-dependent output shape and cannot be "
                            "traced (jit/vmap). Use fnp.where(mask, x, 0), or fnp.nonzero(mask, size=N) for a "
                            "fixed-size index."
                        ) from None
                else:
                    mask = e._value
                expected = x.shape[axis : axis + mask.ndim]
                if mask.shape != expected:
                    raise IndexOutOfRangeError(
                        f"boolean index of shape {mask.shape} does not match the indexed array "
                        f"dimensions {expected} (array shape {x.shape})"
                    )
                if mask.ndim == 0:
                    raise IndexOutOfRangeError("0-d boolean indices are not supported")
                for nz in np.nonzero(mask):
                    spec.append(("a", len(arrays)))
                    arrays.append(wrap_ndarray(nz.astype(np.int64)))
                axis += mask.ndim
            elif e.dtype.kind in "iu":
                spec.append(("a", len(arrays)))
                arrays.append(e)
                axis += 1
            else:
                raise IndexOutOfRangeError(
                    f"{name}: arrays used as indices must be of integer or boolean type, got {e.dtype}"
                )
        else:
            raise IndexOutOfRangeError(
                f"{name}: only integers, slices (':'), ellipsis ('...'), None and integer or boolean "
                f"arrays are valid indices, got {type(e).__name__}"
            )
    while axis < x.ndim:
        spec.append(("s", None, None, None))
        axis += 1
    return tuple(spec), arrays


def _is_identity(spec):
    return all(e == ("s", None, None, None) for e in spec)


def getitem(x, idx, mode=None, fill_value=None):
    """``x[idx]`` with NumPy semantics (basic, advanced and boolean indexing).

    Out-of-range integer-array indices are clamped (``mode="fill"`` fills them with
    ``fill_value``, NaN by default for floats).
    """
    x = to_array(x, "indexing")
    if x.ndim == 0 and idx != () and idx is not Ellipsis and idx is not None:
        if not (isinstance(idx, tuple) and all(e is None or e is Ellipsis for e in idx)):
            raise IndexOutOfRangeError("too many indices for array: array is 0-dimensional")
    spec, arrays = normalize_index(x, idx)
    if _is_identity(spec):
        return x
    if mode not in (None, "clip", "fill", "promise_in_bounds"):
        raise InvalidValueError(f"indexing: mode must be 'clip' or 'fill', got {mode!r}")
    return getitem_p.bind(x, *arrays, spec=spec, mode="fill" if mode == "fill" else "clip", fill_value=fill_value)


def index_update(x, idx, values, op, mode=None):
    """The implementation of ``x.at[idx].set/add/multiply/min/max(values)``."""
    x = to_array(x, f"at[].{op}")
    spec, arrays = normalize_index(x, idx, f"x.at[...].{op}")
    target = getitem_p.abstract_eval(x.aval, *[a.aval for a in arrays], spec=spec, mode="clip", fill_value=None)
    v = to_array(values, f"x.at[...].{op}")
    if v.dtype != x.dtype:
        v = lx.convert_element_type(v, x.dtype)
    if v.shape != target.shape:
        try:
            shape = tuple(np.broadcast_shapes(v.shape, target.shape))
            assert shape == target.shape
        except (ValueError, AssertionError):
            raise InvalidValueError(
                f"x.at[...].{op}: values of shape {v.shape} cannot be broadcast to the indexed shape {target.shape}"
            ) from None
        v = broadcast_to_shape(v, target.shape)
    return index_update_p.bind(x, v, *arrays, spec=spec, op=op)


def where(condition, x=None, y=None, /, *, size=None, fill_value=None):
    """``x`` where ``condition`` else ``y`` (broadcasting); with one argument, :func:`nonzero`.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.where(fnp.array([True, False]), 1.0, 0.0)
        Array([1., 0.], dtype=float32)
    """
    if x is None and y is None:
        return nonzero(condition, size=size, fill_value=fill_value)
    if x is None or y is None:
        raise InvalidValueError("where: either both or neither of x and y must be given")
    c = to_array(condition, "where")
    if c.dtype != np.bool_:
        c = lx.ne(c, lx.scalar_like(c, 0))
    a, b = operands("where", x, y)
    shape = broadcast_shapes([c.shape, a.shape, b.shape], "where")
    c = broadcast_to_shape(c, shape) if c.shape else c
    a = broadcast_to_shape(a, shape) if a.shape else a
    b = broadcast_to_shape(b, shape) if b.shape else b
    out = lx.select_n_p.bind(c, b, a)
    return broadcast_to_shape(out, shape) if out.shape != shape else out


def take(a, indices, axis=None, mode=None, fill_value=None, unique_indices=False, indices_are_sorted=False):
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array when None).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.take(fnp.array([[1, 2], [3, 4]]), fnp.array([1, 0]), axis=1)
        Array([[2, 1],
               [4, 3]], dtype=int64)
    """
    x = to_array(a, "take")
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    ax = canonical_axis(axis, x.ndim, "take")
    idx = to_array(indices, "take")
    if idx.dtype.kind not in "iu":
        raise IndexOutOfRangeError(f"take: indices must be integers, got {idx.dtype}")
    spec = tuple(("s", None, None, None) if d != ax else ("a", 0) for d in range(x.ndim))
    return getitem_p.bind(x, idx, spec=spec, mode="fill" if mode == "fill" else "clip", fill_value=fill_value)


def _along_axis_index(arr, indices, axis, name):
    idx = to_array(indices, name)
    if idx.ndim != arr.ndim:
        raise InvalidValueError(
            f"{name}: indices (shape {idx.shape}) must have the same number of dimensions as the "
            f"array (shape {arr.shape})"
        )
    if idx.dtype.kind not in "iu":
        raise IndexOutOfRangeError(f"{name}: indices must be integers, got {idx.dtype}")
    return along_axis_index(idx, axis, arr.shape)


def take_along_axis(arr, indices, axis, mode=None, fill_value=None):
    """Pick values along ``axis`` with an index array of the same rank (PyTorch's ``gather``
    when ``indices`` has the array's extent on the other axes).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.take_along_axis(fnp.array([[10, 20], [30, 40]]), fnp.array([[1], [0]]), axis=1)
        Array([[20],
               [30]], dtype=int64)
    """
    x = to_array(arr, "take_along_axis")
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    ax = canonical_axis(axis, x.ndim, "take_along_axis")
    spec, arrays = _along_axis_index(x, indices, ax, "take_along_axis")
    return getitem_p.bind(x, *arrays, spec=spec, mode="fill" if mode == "fill" else "clip", fill_value=fill_value)


def put_along_axis(arr, indices, values, axis, inplace=False, mode=None):
    """A new array with ``values`` written at ``indices`` along ``axis`` (functional ``np.put_along_axis``)."""
    if inplace:
        raise InvalidValueError(
            "put_along_axis: inplace=True is impossible for immutable arrays; the result is returned"
        )
    x = to_array(arr, "put_along_axis")
    ax = canonical_axis(axis, x.ndim, "put_along_axis")
    spec, arrays = _along_axis_index(x, indices, ax, "put_along_axis")
    target = getitem_p.abstract_eval(x.aval, *[a.aval for a in arrays], spec=spec, mode="clip", fill_value=None)
    v = to_array(values, "put_along_axis")
    v = broadcast_to_shape(lx.convert_element_type(v, x.dtype), target.shape)
    return index_update_p.bind(x, v, *arrays, spec=spec, op="set")


def nonzero(a, *, size=None, fill_value=None):
    """Indices of the nonzero elements, one int64 array per axis.

    Outside of tracing any size works; under ``jit``/``vmap`` pass ``size=`` (the result is
    truncated or padded with ``fill_value``, 0 by default).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.nonzero(fnp.array([0, 3, 0, 4]))
        (Array([1, 3], dtype=int64),)
    """
    x = to_array(a, "nonzero")
    if x.ndim == 0:
        raise InvalidValueError(
            "nonzero: calling nonzero on 0-d arrays is not allowed; use fnp.atleast_1d(x).nonzero()"
        )
    try:
        v = np.asarray(x._concrete("nonzero")) if isinstance(x, Tracer) else x._value
    except ConcretizationError:
        v = None
    if v is not None:
        nz = [i.astype(np.int64) for i in np.nonzero(v)]
        if size is not None:
            fills = np.broadcast_to(np.asarray(0 if fill_value is None else fill_value), (x.ndim,))
            nz = [np.concatenate([i[:size], np.full(max(size - len(i), 0), f, np.int64)]) for i, f in zip(nz, fills)]
        return tuple(wrap_ndarray(i) for i in nz)
    if size is None:
        raise ConcretizationError(
            "nonzero: the number of nonzero elements is data-dependent, so it cannot be traced (jit/vmap). "
            "Pass size=N (and optionally fill_value) to get a fixed-size result."
        )
    from .reductions import sum as sum_
    from .sorting import argsort

    mask = lx.ne(x, lx.scalar_like(x, 0)) if x.dtype != np.bool_ else x
    flat = mask.reshape(-1)
    order = argsort(lx.convert_element_type(lx.not_p.bind(flat), np.int8), stable=True)
    if size <= order.shape[0]:
        order = order[:size]
    else:
        order = _concat_pad(order, size)
    count = sum_(flat)
    valid = wrap_ndarray(np.arange(size)) < count
    fills = np.broadcast_to(np.asarray(0 if fill_value is None else fill_value), (x.ndim,))
    out, rem = [], order
    strides = np.cumprod((x.shape[1:] + (1,))[::-1])[::-1]
    for st, f in zip(strides, fills):
        coord = rem // int(st)
        rem = rem - coord * int(st)
        out.append(where(valid, coord, int(f)))
    return tuple(out)


def _concat_pad(order, size):
    from .shape_ops import concatenate

    return concatenate([order, wrap_ndarray(np.zeros(size - order.shape[0], np.int64))])


def argwhere(a, *, size=None, fill_value=None):
    """Indices of nonzero elements as an ``(N, ndim)`` int64 array (``torch.nonzero``'s layout)."""
    from .shape_ops import stack

    x = to_array(a, "argwhere")
    if x.ndim == 0:
        x = x.reshape(1)
        nz = nonzero(x, size=size, fill_value=fill_value)
        return stack(nz, -1)[:, :0]
    return stack(nonzero(x, size=size, fill_value=fill_value), -1)


def flatnonzero(a, *, size=None, fill_value=None):
    return nonzero(to_array(a).reshape(-1), size=size, fill_value=fill_value)[0]


def compress(condition, a, axis=None):
    c = np.asarray(to_array(condition)._concrete("compress")).astype(bool)
    return take(a, np.nonzero(c)[0], axis=axis)


def extract(condition, arr):
    return getitem(to_array(arr).reshape(-1), to_array(condition).reshape(-1).astype(bool))
