"""Windowed reductions: ``reduce_window`` (sum, max, min), the building block of pooling.

Three primitives share one window description (``window_dimensions``, ``window_strides``,
``padding`` as ``(low, high)`` pairs, ``base_dilation``, ``window_dilation``) and one
evaluation strategy: dilate and pad the operand with the reduction's identity, expose every
window as a strided view and reduce over the window axes.

* ``reduce_window_sum_p`` is linear; its transpose pads the cotangent (interior padding =
  strides - 1, edge padding from the convolution VJP formula) and sums windows again, as
  JAX's ``_reduce_window_sum_transpose_rule``.
* ``reduce_window_max_p`` / ``reduce_window_min_p`` route each window's tangent from the
  position of its maximum (minimum): a non-differentiable primitive finds that position
  (ties: the first in row-major window order, as PyTorch's max pooling), and the tangent is
  gathered from there. The gather is linear with a scatter-add transpose, so first and
  second derivatives work (the second derivative of a max is zero almost everywhere).
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.errors import InvalidValueError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import deflinear
from .conv import _dilate_shape, _vjp_lhs_padding, dilate_pad_np, padtype_to_pads, windows_np


def _identity(kind, dtype):
    dtype = np.dtype(dtype)
    if kind == "sum":
        return dtype.type(0)
    if dtype.kind in "fc":
        return dtype.type(-np.inf if kind == "max" else np.inf)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return dtype.type(info.min if kind == "max" else info.max)
    if dtype.kind == "b":
        return np.bool_(kind != "max")
    from ..core.dtypes import finfo

    info = finfo(dtype)  # bfloat16 and other ml_dtypes floats
    return dtype.type(-np.inf if kind == "max" else np.inf) if info is not None else dtype.type(0)


def _window_view(x, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    axes = tuple(range(x.ndim))
    xp = dilate_pad_np(x, axes, padding, base_dilation, _identity(kind, x.dtype))
    return windows_np(xp, axes, window_dimensions, window_strides, window_dilation)


def _window_shape(x, name, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    nd = x.ndim
    for what, v in (
        ("window_dimensions", window_dimensions),
        ("window_strides", window_strides),
        ("padding", padding),
        ("base_dilation", base_dilation),
        ("window_dilation", window_dilation),
    ):
        if len(v) != nd:
            raise ShapeError(f"lax.{name}: {what} {tuple(v)} needs {nd} entries for an operand of shape {x.shape}")
    if any(k < 0 for k in window_dimensions):
        raise ShapeError(
            f"lax.{name}: window_dimensions {window_dimensions} must be non-negative (operand shape {x.shape})"
        )
    base = _dilate_shape(x.shape, base_dilation)
    win = _dilate_shape(window_dimensions, window_dilation)
    out = []
    for n, k, s, (lo, hi) in zip(base, win, window_strides, padding):
        padded = n + lo + hi
        if padded < 0:
            raise ShapeError(f"lax.{name}: padding {padding} makes a dimension of operand shape {x.shape} negative")
        out.append(0 if padded < k else (padded - k) // s + 1)
    return tuple(out)


def _make(kind):
    name = f"reduce_window_{kind}"
    prim = Primitive(name)
    reducer = {"sum": np.sum, "max": np.max, "min": np.min}[kind]

    def impl(x, **params):
        win = _window_view(x, kind, **params)
        axes = tuple(range(x.ndim, 2 * x.ndim))
        if win.size == 0:
            return np.full(win.shape[: x.ndim], _identity(kind, x.dtype), x.dtype)
        if kind == "sum":
            return np.asarray(reducer(win, axis=axes, dtype=x.dtype))
        return np.asarray(reducer(win, axis=axes))

    def abstract(x, **params):
        return ShapedArray(_window_shape(x, name, **params), x.dtype)

    prim.impl = impl
    prim.abstract_eval = abstract
    return prim


reduce_window_sum_p = _make("sum")
reduce_window_max_p = _make("max")
reduce_window_min_p = _make("min")


def _reduce_window_sum_transpose(ct, x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    from .shape import pad

    in_shape = x.aval.shape
    pads = _vjp_lhs_padding(
        in_shape, window_dimensions, window_strides, ct.shape, padding, base_dilation, window_dilation
    )
    config = tuple((lo, hi, s - 1) for (lo, hi), s in zip(pads, window_strides))
    padded = pad(ct, wrap_ndarray(np.zeros((), ct.dtype)), config)
    ones = (1,) * len(in_shape)
    out = reduce_window_sum_p.bind(
        padded,
        window_dimensions=window_dimensions,
        window_strides=base_dilation,
        padding=((0, 0),) * len(in_shape),
        base_dilation=ones,
        window_dilation=window_dilation,
    )
    assert out.shape == in_shape, (out.shape, in_shape)
    return [out]


deflinear(reduce_window_sum_p, _reduce_window_sum_transpose)


# -- max / min: the position of each window's winner ------------------------------------------------


def _winner_impl(x, *, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    """Flat index into ``x`` of each window's first max (min); ``x.size`` where it is padding."""
    nd = x.ndim
    win = _window_view(x, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation)
    out_shape = win.shape[:nd]
    ksize = int(np.prod(window_dimensions, dtype=np.int64))
    if win.size == 0 or ksize == 0:
        return np.full(out_shape + (1,), x.size, np.int64)
    flat = np.ascontiguousarray(win).reshape(out_shape + (ksize,))
    local = (np.argmax if kind == "max" else np.argmin)(flat, axis=-1)
    offsets = np.unravel_index(local, tuple(window_dimensions))
    valid = np.ones(out_shape, bool)
    coords = []
    for d in range(nd):
        pos = np.arange(out_shape[d]).reshape([-1 if i == d else 1 for i in range(nd)])
        # Coordinate in the dilated (base_dilation) operand, before padding.
        c = pos * window_strides[d] + offsets[d] * window_dilation[d] - padding[d][0]
        on_grid = (c % base_dilation[d] == 0) & (c >= 0)
        c = c // base_dilation[d]
        valid &= on_grid & (c < x.shape[d])
        coords.append(np.where(on_grid & (c >= 0) & (c < x.shape[d]), c, 0))
    idx = (
        np.ravel_multi_index(tuple(np.broadcast_to(c, out_shape) for c in coords), x.shape)
        if nd
        else np.zeros(out_shape, np.int64)
    )
    return np.where(valid, idx, x.size).astype(np.int64)[..., None]


def _winner_abstract(x, *, kind, **params):
    return ShapedArray(_window_shape(x, f"reduce_window_{kind}", **params) + (1,), np.dtype(np.int64))


reduce_window_winner_p = Primitive("reduce_window_winner", differentiable=False)
reduce_window_winner_p.impl = _winner_impl
reduce_window_winner_p.abstract_eval = _winner_abstract


def _chooser_jvp(kind):
    prim = reduce_window_max_p if kind == "max" else reduce_window_min_p

    def jvp(primals, tangents, **params):
        from .gather import GatherDimensionNumbers, GatherScatterMode, gather_p
        from .shape import reshape

        (x,), (t,) = primals, tangents
        ans = prim.bind(x, **params)
        idx = reduce_window_winner_p.bind(x, kind=kind, **params)
        # Windows whose winner is padding point past the end: the fill mode gives them a zero tangent.
        dnums = GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,))
        tout = gather_p.bind(
            reshape(t, (x.size,)),
            idx,
            dimension_numbers=dnums,
            slice_sizes=(1,),
            mode=GatherScatterMode.FILL_OR_DROP,
            fill_value=0,
            indices_are_sorted=False,
            unique_indices=False,
        )
        return ans, tout

    return jvp


reduce_window_max_p.jvp = _chooser_jvp("max")
reduce_window_min_p.jvp = _chooser_jvp("min")


# -- batching rules ------------------------------------------------------------------------------


def _batched_window(d, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    """Window parameters for an operand with a batch axis at ``d``: a window of 1, stride 1 there."""

    def ins(v, x):
        v = list(v)
        v.insert(d, x)
        return tuple(v)

    return dict(
        window_dimensions=ins(window_dimensions, 1),
        window_strides=ins(window_strides, 1),
        padding=ins(padding, (0, 0)),
        base_dilation=ins(base_dilation, 1),
        window_dilation=ins(window_dilation, 1),
    )


def _reduce_window_batch(prim):
    def rule(vals, dims, **params):
        (x,), (d,) = vals, dims
        return prim.bind(x, **_batched_window(d, **params)), d

    return rule


for _p in (reduce_window_sum_p, reduce_window_max_p, reduce_window_min_p):
    _p.batch = _reduce_window_batch(_p)


def _winner_batch(vals, dims, *, kind, **params):
    # Run on the whole batch (batch axis first), then turn flat indices into the batched
    # operand into per-example flat indices; the padding sentinel becomes the example's size.
    from . import elementwise as ew
    from ._batching import bdim_to_front

    (x,), (d,) = vals, dims
    x = bdim_to_front(x, d, None)
    size, per = x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))
    idx = reduce_window_winner_p.bind(x, kind=kind, **_batched_window(0, **params))
    offsets = np.broadcast_to(
        (np.arange(size, dtype=np.int64) * per).reshape((size,) + (1,) * (idx.ndim - 1)), idx.shape
    )
    local = ew.sub(idx, wrap_ndarray(np.ascontiguousarray(offsets)))
    return ew.min(local, wrap_ndarray(np.asarray(per, np.int64))), 0


reduce_window_winner_p.batch = _winner_batch


# -- public API ----------------------------------------------------------------------------------


def _window_params(operand, window_dimensions, window_strides, padding, base_dilation, window_dilation, where):
    nd = operand.ndim

    def ints(v, what, default):
        if v is None:
            return (default,) * nd
        out = tuple(int(i) for i in v)
        if len(out) != nd:
            raise ShapeError(f"{where}: {what} {out} needs {nd} entries for an operand of shape {operand.shape}")
        if what != "window_dimensions" and any(i < 1 for i in out):
            raise InvalidValueError(f"{where}: {what} must be positive, got {out}")
        return out

    dims = ints(window_dimensions, "window_dimensions", 1)
    strides = ints(window_strides, "window_strides", 1)
    base = ints(base_dilation, "base_dilation", 1)
    wdil = ints(window_dilation, "window_dilation", 1)
    if isinstance(padding, str):
        try:
            # As JAX: the dilated window, the undilated operand.
            pads = tuple(padtype_to_pads(operand.shape, _dilate_shape(dims, wdil), strides, padding))
        except ValueError as e:
            raise InvalidValueError(f"{where}: {e} (operand shape {operand.shape})") from None
    else:
        try:
            pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        except (TypeError, ValueError):
            raise InvalidValueError(
                f"{where}: padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of (low, high) "
                f"pairs, got {padding!r}"
            ) from None
        if len(pads) != nd:
            raise ShapeError(
                f"{where}: padding {padding!r} needs {nd} (low, high) pairs for an operand of shape {operand.shape}"
            )
    return dict(window_dimensions=dims, window_strides=strides, padding=pads, base_dilation=base, window_dilation=wdil)


def _bind(kind, operand, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    where = f"lax.reduce_window_{kind}"
    operand = as_array(operand, where)
    params = _window_params(operand, window_dimensions, window_strides, padding, base_dilation, window_dilation, where)
    prim = {"sum": reduce_window_sum_p, "max": reduce_window_max_p, "min": reduce_window_min_p}[kind]
    prim.abstract_eval(operand.aval, **params)  # validate here: eager evaluation skips abstract_eval
    return prim.bind(operand, **params)


def reduce_window_sum(
    operand, window_dimensions, window_strides=None, padding="VALID", base_dilation=None, window_dilation=None
):
    """Sum over every window (the core of average pooling); padding counts as zero.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.reduce_window_sum(fnp.arange(5.0), (2,), (1,), "VALID")
        Array([1., 3., 5., 7.], dtype=float32)
    """
    return _bind("sum", operand, window_dimensions, window_strides, padding, base_dilation, window_dilation)


def reduce_window_max(
    operand, window_dimensions, window_strides=None, padding="VALID", base_dilation=None, window_dilation=None
):
    """Maximum over every window (max pooling); padding never wins.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.reduce_window_max(fnp.array([1.0, 3.0, 2.0, 5.0]), (2,), (2,), "VALID")
        Array([3., 5.], dtype=float32)
    """
    return _bind("max", operand, window_dimensions, window_strides, padding, base_dilation, window_dilation)


def reduce_window_min(
    operand, window_dimensions, window_strides=None, padding="VALID", base_dilation=None, window_dilation=None
):
    """Minimum over every window; padding never wins.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.reduce_window_min(fnp.array([1.0, 3.0, 2.0, 5.0]), (2,), (2,), "VALID")
        Array([1., 2.], dtype=float32)
    """
    return _bind("min", operand, window_dimensions, window_strides, padding, base_dilation, window_dilation)


def _computation_kind(computation):
    from . import elementwise as ew

    kinds = {ew.add: "sum", ew.max: "max", ew.min: "min"}
    try:
        from .. import numpy as fnp

        kinds.update({fnp.add: "sum", fnp.maximum: "max", fnp.minimum: "min"})
    except ImportError:  # pragma: no cover - funcgrad.numpy is always importable once funcgrad is
        pass
    import operator

    kinds.update({operator.add: "sum", np.add: "sum", np.maximum: "max", np.minimum: "min"})
    for fn, kind in kinds.items():
        if computation is fn:
            return kind
    return None


def reduce_window(
    operand,
    init_value,
    computation,
    window_dimensions,
    window_strides,
    padding,
    base_dilation=None,
    window_dilation=None,
):
    """Reduce every window of ``operand`` with ``computation`` (JAX's ``lax.reduce_window``).

    ``computation`` must be ``lax.add``, ``lax.max`` or ``lax.min`` (or their ``funcgrad.numpy`` /
    NumPy / ``operator`` equivalents). As JAX (XLA on CPU) does, each window's reduction starts
    from ``init_value`` once and padded positions are skipped; with the identity (0 for add,
    ``-inf`` for max, ``+inf`` for min) that is the plain windowed reduction.

    Args:
        operand: the array to reduce.
        init_value: scalar start value of every window's reduction.
        computation: ``lax.add``, ``lax.max`` or ``lax.min``.
        window_dimensions: window size per axis.
        window_strides: step per axis.
        padding: ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'`` or ``(low, high)`` pairs.
        base_dilation: operand dilation per axis (holes are skipped), default 1.
        window_dilation: window dilation per axis, default 1.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> x = fnp.arange(16.0).reshape(4, 4)
        >>> lax.reduce_window(x, -fnp.inf, lax.max, (2, 2), (2, 2), "VALID")
        Array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """
    where = "lax.reduce_window"
    kind = _computation_kind(computation)
    if kind is None:
        raise NotImplementedError(
            f"{where}: only lax.add, lax.max and lax.min are supported as the computation, got "
            f"{getattr(computation, '__name__', computation)!r}; compose other window reductions from "
            "these (e.g. a product as exp of a windowed sum of logs) or from lax.conv_general_dilated"
        )
    operand = as_array(operand, where)
    params = _window_params(operand, window_dimensions, window_strides, padding, base_dilation, window_dilation, where)
    prim = {"sum": reduce_window_sum_p, "max": reduce_window_max_p, "min": reduce_window_min_p}[kind]
    prim.abstract_eval(operand.aval, **params)  # validate here: eager evaluation skips abstract_eval
    out = prim.bind(operand, **params)
    from ..core.trace import Tracer

    identity = _identity(kind, operand.dtype)
    if not isinstance(init_value, Tracer):
        init_np = np.asarray(init_value)
        if init_np.shape != ():
            raise ShapeError(f"{where}: init_value must be a scalar, got shape {init_np.shape}")
        if init_np.astype(operand.dtype) == identity:
            return out
    if isinstance(init_value, (bool, int, float, complex)):
        init = wrap_ndarray(np.asarray(init_value, operand.dtype))
    else:
        init = as_array(init_value, where)
    if init.shape != ():
        raise ShapeError(f"{where}: init_value must be a scalar, got shape {init.shape}")
    from . import elementwise as ew

    init = ew.convert_element_type(init, operand.dtype)
    # XLA starts every window's reduction from init_value once; padded and hole positions
    # are skipped (they hold the identity), as JAX's reduce_window does on CPU.
    combine = {"sum": ew.add, "max": ew.max, "min": ew.min}[kind]
    return combine(out, init)
