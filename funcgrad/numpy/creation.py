"""Array creation: ``array``, ``zeros``, ``arange``, ``linspace``, ``eye``, ``tril`` ..."""

from __future__ import annotations

import numpy as np

from ..core.array import Array, wrap_ndarray
from ..core.config import config
from ..core.dtypes import canonical_numpy, canonicalize, python_scalar_dtype
from ..core.trace import Tracer
from ..lax.elementwise import convert_element_type
from ._util import to_array
from ..core.errors import InvalidArgumentError, InvalidValueError

_PY = (bool, int, float, complex)


def _reject_torch_kwargs(name, kwargs):
    if not kwargs:
        return
    key = next(iter(kwargs))
    hints = {
        "requires_grad": "funcgrad arrays carry no gradient flag: differentiate with fg.grad(f, argnums=...)",
        "device": "place arrays with fg.device_put(x, device)",
        "generator": "randomness takes an explicit key: funcgrad.random.key(seed)",
        "layout": "funcgrad arrays are always strided (dense)",
        "memory_format": "funcgrad arrays have no memory format",
        "out": "funcgrad is functional: out= is not supported; use the return value",
        "pin_memory": "funcgrad has no pinned memory",
    }
    hint = hints.get(key, "")
    raise InvalidArgumentError(f"{name}() got an unexpected keyword argument {key!r}" + (f"; {hint}" if hint else ""))


def _shape(shape, name):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise InvalidArgumentError(f"{name}: shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise InvalidValueError(f"{name}: negative dimensions are not allowed, got shape {shape}")
    return shape


def _contains_traced(data):
    if isinstance(data, Tracer):
        return True
    if isinstance(data, (list, tuple)):
        return any(_contains_traced(d) for d in data)
    return False


def _has_numpy_leaf(data):
    if isinstance(data, (np.ndarray, np.generic, Array)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_numpy_leaf(d) for d in data)
    return False


def array(object, dtype=None, copy=True, ndmin=0, **kwargs):
    """Create an array (always a new, immutable array; never aliases the input buffer).

    Python data takes funcgrad's defaults (float32, int64); NumPy arrays keep their dtype.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.array([1, 2, 3])
        Array([1, 2, 3], dtype=int64)
        >>> fnp.array([1.0, 2.0]).dtype
        dtype('float32')
    """
    _reject_torch_kwargs("array", kwargs)
    dt = None if dtype is None else canonicalize(dtype)
    if isinstance(object, Tracer) or type(object) is Array:
        out = object if dt is None else convert_element_type(object, dt)
    elif isinstance(object, (list, tuple)) and _contains_traced(object):
        from .shape_ops import stack

        out = stack([array(o, dt) for o in object])
    elif type(object) in _PY:
        out = wrap_ndarray(np.asarray(object, dt or python_scalar_dtype(object)))
    else:
        if isinstance(object, (list, tuple)) and len(object) == 0:
            v = np.zeros((0,), dt or config.default_float_dtype)
        elif isinstance(object, (np.ndarray, np.generic)):
            v = np.array(object, dtype=dt)
        else:
            try:
                v = np.array(object, dtype=dt)
            except ValueError as e:  # ragged nesting: say so in funcgrad's words
                raise InvalidValueError(
                    f"array: cannot build an array from {type(object).__name__}: nested sequences "
                    f"must be rectangular ({e})"
                ) from None
            if dt is None and not _has_numpy_leaf(object):
                v = canonical_numpy(v)
        if v.dtype == np.object_:
            raise InvalidArgumentError(
                f"array: cannot build an array from {type(object).__name__} "
                "(ragged nested sequences or non-numeric data)"
            )
        if v.dtype.kind in "US":
            raise InvalidArgumentError(f"array: string data is not supported (dtype {v.dtype})")
        out = wrap_ndarray(v)
    while out.ndim < ndmin:
        from ..lax.shape import expand_dims

        out = expand_dims(out, (0,))
    return out


def asarray(a, dtype=None, order=None, **kwargs):
    """Like :func:`array`; returns ``a`` itself when it already is an array of that dtype.

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> fnp.asarray(np.arange(3.0)).dtype  # NumPy's float64 is kept
        dtype('float64')
    """
    _reject_torch_kwargs("asarray", kwargs)
    if (type(a) is Array or isinstance(a, Tracer)) and (dtype is None or canonicalize(dtype) == a.dtype):
        return a
    return array(a, dtype)


def _dtype_or_default(dtype):
    return config.default_float_dtype if dtype is None else canonicalize(dtype)


def zeros(shape, dtype=None, **kwargs):
    """Array of zeros (default float dtype).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.zeros((2,))
        Array([0., 0.], dtype=float32)
    """
    _reject_torch_kwargs("zeros", kwargs)
    return wrap_ndarray(np.zeros(_shape(shape, "zeros"), _dtype_or_default(dtype)))


def ones(shape, dtype=None, **kwargs):
    """Array of ones (default float dtype).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.ones((2,), dtype=int)
        Array([1, 1], dtype=int64)
    """
    _reject_torch_kwargs("ones", kwargs)
    return wrap_ndarray(np.ones(_shape(shape, "ones"), _dtype_or_default(dtype)))


def empty(shape, dtype=None, **kwargs):
    """Like :func:`zeros` (funcgrad's ``empty`` is zero-filled, so results are deterministic)."""
    _reject_torch_kwargs("empty", kwargs)
    return zeros(shape, dtype)


def full(shape, fill_value, dtype=None, **kwargs):
    """Array filled with ``fill_value``; the dtype follows the fill (bool, int64, default float).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.full((2,), 7)
        Array([7, 7], dtype=int64)
    """
    _reject_torch_kwargs("full", kwargs)
    shape = _shape(shape, "full")
    if isinstance(fill_value, Tracer) or (type(fill_value) is Array and dtype is None):
        from ._util import broadcast_to_shape

        fv = fill_value if dtype is None else convert_element_type(fill_value, canonicalize(dtype))
        return broadcast_to_shape(fv, shape)
    fv = np.asarray(fill_value)
    if dtype is not None:
        dt = canonicalize(dtype)
    elif type(fill_value) in _PY:
        dt = python_scalar_dtype(fill_value)
    elif isinstance(fill_value, (np.ndarray, np.generic)):
        dt = fv.dtype  # a NumPy-provided dtype is kept (never silently narrowed)
    else:
        dt = canonical_numpy(fv).dtype
    return wrap_ndarray(np.full(shape, fv, dt))


def _like(x, dtype, shape):
    x = to_array(x, "zeros_like")
    return (
        x.shape if shape is None else _shape(shape, "zeros_like"),
        x.dtype if dtype is None else canonicalize(dtype),
    )


def zeros_like(a, dtype=None, shape=None):
    """Zeros with ``a``'s shape and dtype."""
    s, d = _like(a, dtype, shape)
    return wrap_ndarray(np.zeros(s, d))


def ones_like(a, dtype=None, shape=None):
    """Ones with ``a``'s shape and dtype."""
    s, d = _like(a, dtype, shape)
    return wrap_ndarray(np.ones(s, d))


def empty_like(a, dtype=None, shape=None):
    """Zeros with ``a``'s shape and dtype (funcgrad's ``empty`` is zero-filled)."""
    return zeros_like(a, dtype, shape)


def full_like(a, fill_value, dtype=None, shape=None):
    """``fill_value`` with ``a``'s shape and dtype."""
    s, d = _like(a, dtype, shape)
    return full(s, fill_value, d)


def arange(start, stop=None, step=None, dtype=None, **kwargs):
    """Evenly spaced values in ``[start, stop)``; int64 for integer arguments, else the default float.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.arange(3)
        Array([0, 1, 2], dtype=int64)
    """
    _reject_torch_kwargs("arange", kwargs)
    for v in (start, stop, step):
        if isinstance(v, Tracer):
            raise InvalidArgumentError(
                "arange: start/stop/step must be concrete (the length of the result depends on them)"
            )
    vals = [np.asarray(v) for v in (start, stop, step) if v is not None]
    if dtype is None:
        is_int = all(v.dtype.kind in "iub" for v in vals)
        dt = np.dtype(np.int64) if is_int else config.default_float_dtype
    else:
        dt = canonicalize(dtype)
    if step is not None and np.asarray(step) == 0:
        raise InvalidValueError("arange: step must not be zero")
    args = [start] + ([stop] if stop is not None else []) + ([step] if step is not None else [])
    if stop is None and step is not None:
        args = [0, start, step]
    args = [a.item() if hasattr(a, "item") and not isinstance(a, (int, float)) else a for a in args]
    return wrap_ndarray(np.arange(*args).astype(dt))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced samples over ``[start, stop]`` (differentiable in start and stop).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linspace(0.0, 1.0, 3)
        Array([0. , 0.5, 1. ], dtype=float32)
    """
    num = int(num)
    if num < 0:
        raise InvalidValueError(f"linspace: number of samples {num} must be non-negative")
    from ._util import operands

    dt = _dtype_or_default(dtype) if dtype is not None else None
    s, e = operands("linspace", start, stop)
    if dt is None:
        dt = s.dtype if s.dtype.kind in "fc" else config.default_float_dtype
    s, e = (
        convert_element_type(s, dt if dt.kind in "fc" else config.default_float_dtype),
        convert_element_type(e, dt if dt.kind in "fc" else config.default_float_dtype),
    )
    div = (num - 1) if endpoint else num
    step_frac = np.arange(num, dtype=np.float64) / div if div > 0 else np.zeros(num)
    if endpoint and num > 1:
        step_frac[-1] = 1.0
    from .shape_ops import expand_dims, moveaxis

    frac = wrap_ndarray(step_frac.astype(s.dtype).reshape((num,) + (1,) * s.ndim))
    out = expand_dims(s, 0) * (1 - frac) + expand_dims(e, 0) * frac
    if s.ndim and axis != 0:
        out = moveaxis(out, 0, axis)
    if dt.kind not in "fc":
        from .ufuncs import floor

        out = convert_element_type(floor(out), dt)
    if retstep:
        return out, (e - s) / div if div > 0 else np.nan
    return out


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """``base ** linspace(start, stop, num)``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.logspace(0.0, 2.0, 3)
        Array([  1.,  10., 100.], dtype=float32)
    """
    from .ufuncs import power

    out = power(base, linspace(start, stop, num, endpoint, dtype=dtype, axis=axis))
    return out if dtype is None else out.astype(dtype)


def eye(N, M=None, k=0, dtype=None, **kwargs):
    """2-D array with ones on the ``k``-th diagonal.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.eye(2)
        Array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    _reject_torch_kwargs("eye", kwargs)
    return wrap_ndarray(np.eye(int(N), None if M is None else int(M), int(k), dtype=_dtype_or_default(dtype)))


def identity(n, dtype=None):
    """The ``n x n`` identity matrix."""
    return eye(n, dtype=dtype)


def tri(N, M=None, k=0, dtype=None):
    """Lower-triangular matrix of ones (``i >= j - k``)."""
    return wrap_ndarray(np.tri(int(N), None if M is None else int(M), int(k), dtype=_dtype_or_default(dtype)))


def _tri_mask(x, k, lower):
    n, m = x.shape[-2:]
    mask = np.tri(n, m, k, dtype=bool)
    return wrap_ndarray(mask if lower else ~np.tri(n, m, k - 1, dtype=bool))


def tril(m, k=0):
    """Lower triangle of (the last two axes of) ``m``; ``k`` shifts the diagonal.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.tril(fnp.ones((2, 2)))
        Array([[1., 0.],
               [1., 1.]], dtype=float32)
    """
    from .indexing import where

    m = to_array(m, "tril")
    if m.ndim < 2:
        raise InvalidValueError(f"tril: input must be at least 2-D, got shape {m.shape}")
    return where(_tri_mask(m, k, True), m, 0)


def triu(m, k=0):
    """Upper triangle of (the last two axes of) ``m``; ``k`` shifts the diagonal."""
    from .indexing import where

    m = to_array(m, "triu")
    if m.ndim < 2:
        raise InvalidValueError(f"triu: input must be at least 2-D, got shape {m.shape}")
    return where(_tri_mask(m, k, False), m, 0)


def diag(v, k=0):
    """Diagonal of a 2-D array, or a 2-D array with the 1-D ``v`` on its ``k``-th diagonal.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.diag(fnp.array([1, 2]))
        Array([[1, 0],
               [0, 2]], dtype=int64)
    """
    from .products import diagonal

    v = to_array(v, "diag")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise InvalidValueError(f"diag: input must be 1-D or 2-D, got shape {v.shape}")
    n = v.shape[0] + abs(k)
    rows = np.arange(v.shape[0]) + max(-k, 0)
    cols = np.arange(v.shape[0]) + max(k, 0)
    return zeros((n, n), v.dtype).at[wrap_ndarray(rows), wrap_ndarray(cols)].set(v)


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """Coordinate matrices from coordinate vectors (``indexing="xy"`` or ``"ij"``)."""
    from ._util import broadcast_to_shape
    from .shape_ops import reshape

    if indexing not in ("xy", "ij"):
        raise InvalidValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    xs = [to_array(x, "meshgrid").reshape(-1) for x in xi]
    nd = len(xs)
    out = []
    for i, x in enumerate(xs):
        shape = [1] * nd
        shape[i] = x.shape[0]
        if indexing == "xy" and nd > 1 and i < 2:
            shape[0], shape[1] = shape[1], shape[0]
        out.append(reshape(x, shape))
    if sparse:
        return out
    full_shape = tuple(np.broadcast_shapes(*[o.shape for o in out]))
    return [broadcast_to_shape(o, full_shape) for o in out]
