"""Windowed reductions: ``reduce_window`` (sum, max, min), the building block of pooling.

Three primitives share one window description (``window_dimensions``, ``window_strides``,
``padding`` as ``(low, high)`` pairs, ``base_dilation``, ``window_dilation``) and one
evaluation strategy: dilate and pad the operand with the reduction's identity, then reduce
every window. The reference evaluation exposes every window as a strided view and reduces
over the window axes; the impls take faster routes to the same results where they can (one
strided view per window offset, or a numba loop for the winners; see "fast evaluation").

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

import itertools
import math

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


# -- fast evaluation ----------------------------------------------------------------------------
#
# The reference evaluation (``_reduce_general``, ``_winner_general``) reduces a sliding-window view
# over its window axes: NumPy then walks tiny, non-contiguous window axes for every output element.
# Two faster evaluations give the same results:
#
# * NumPy, any dtype of ``_FAST_DTYPES``: turn the loop inside out. For each of the K window
#   offsets, the elements every window holds at that offset form one strided view of the
#   (dilated, padded) operand, shaped like the output; a windowed max is K - 1 elementwise
#   ``np.maximum`` calls over whole arrays, and each window's winner is found by comparing
#   every offset's view with the max.
# * numba (:mod:`funcgrad.jit.window_kernels`, imported on first use) for the winners of
#   float32/float64 windows that span at most two axes (the others: window 1, stride 1): one
#   loop over the windows. (A loop for the max itself measured no faster than NumPy's passes.)
#
# Measured on a (32, 16, 28, 28) float32 operand (the max pool of the CNN benchmark: 2x2 windows,
# stride 2; and 3x3 windows, stride 2, padding 1), best of 50, one thread of a shared 2-core
# machine, in ms:
#
#   ====================  ==========================  ==========================
#   primitive             2x2/2: reference -> fast    3x3/2 pad 1: reference -> fast
#   ====================  ==========================  ==========================
#   reduce_window_max     5.9 -> 0.16 (NumPy)         9.4 -> 0.45 (NumPy)
#   reduce_window_sum     2.5 -> 0.16 (NumPy)         3.9 -> 0.47 (NumPy)
#   reduce_window_winner  10.0 -> 0.26 (numba),       12.5 -> 0.69 (numba),
#                         0.57 (NumPy)                1.1 (NumPy)
#   ====================  ==========================  ==========================


class _Plan:
    """A windowed reduction the fast paths can evaluate: the dilated and padded operand ``xp``."""

    __slots__ = ("x", "xp", "kind", "out_shape", "params")

    def __init__(self, x, xp, kind, out_shape, params):
        self.x, self.xp, self.kind, self.out_shape, self.params = x, xp, kind, out_shape, params

    def offsets(self):
        """Window offsets in row-major window order (the order ties are broken in)."""
        return list(itertools.product(*(range(k) for k in self.params["window_dimensions"])))

    def view(self, offset):
        """The element at window offset ``offset`` of every window: a view shaped like the output."""
        p = self.params
        return self.xp[
            tuple(
                slice(w * d, w * d + (o - 1) * s + 1, s)
                for w, d, o, s in zip(offset, p["window_dilation"], self.out_shape, p["window_strides"])
            )
        ]

    def index_terms(self):
        """Per axis, the flat-index contribution (into ``x``) of each (window offset, output position).

        Entry ``[d][w, i]`` is ``coordinate * x-stride`` of the element at offset ``w`` of the
        window at output position ``i`` along axis ``d``, or a negative sentinel (so that any sum
        with it stays negative) where that slot is padding or a base-dilation hole.
        """
        x, p = self.x, self.params
        neg = -(x.size + 1)
        terms = []
        for d in range(x.ndim):
            w = np.arange(p["window_dimensions"][d], dtype=np.int64).reshape(-1, 1)
            pos = np.arange(self.out_shape[d], dtype=np.int64).reshape(1, -1)
            # Coordinate in the dilated (base_dilation) operand, before padding.
            c = pos * p["window_strides"][d] + w * p["window_dilation"][d] - p["padding"][d][0]
            bd = p["base_dilation"][d]
            ok = (c >= 0) & (c % bd == 0) & (c // bd < x.shape[d])
            terms.append(np.where(ok, (c // bd) * int(np.prod(x.shape[d + 1 :], dtype=np.int64)), neg))
        return terms

    def kernel_layout(self):
        """The ``(B, H, M, W, C)`` form of :mod:`funcgrad.jit.window_kernels`, or ``None``.

        Returns ``(xp5, out5, window, strides, dilation, moving)``: the operand and output
        shapes merged around the (one or two) ``moving`` axes, those whose window is longer
        than one; the others must have a stride of one, so that they merge.
        """
        p, xp = self.params, self.xp
        moving = _kernel_moving(self.kind, self.x.dtype, p)
        if moving is None:
            return None
        b = moving[-1]

        def prod(dims):
            return int(np.prod(dims, dtype=np.int64))

        shape, out = xp.shape, self.out_shape
        if len(moving) == 1:  # a dummy H axis of extent 1
            xp5 = (prod(shape[:b]), 1, 1, shape[b], prod(shape[b + 1 :]))
            out5, head = (xp5[0], 1, 1, out[b], xp5[4]), (1, 1, 1)
        else:
            a = moving[0]
            xp5 = (prod(shape[:a]), shape[a], prod(shape[a + 1 : b]), shape[b], prod(shape[b + 1 :]))
            out5 = (xp5[0], out[a], xp5[2], out[b], xp5[4])
            head = (p["window_dimensions"][a], p["window_strides"][a], p["window_dilation"][a])
        window = (head[0], p["window_dimensions"][b])
        strides = (head[1], p["window_strides"][b])
        dilation = (head[2], p["window_dilation"][b])
        return np.ascontiguousarray(xp).reshape(xp5), out5, window, strides, dilation, moving


# Dtypes whose max/min/winner the NumPy fast path computes (elementwise np.maximum/np.minimum
# and == give exactly what the reference reduction and argmax give); others take the reference.
_FAST_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)


# When the per-offset NumPy path pays: each of its K passes over the output costs a few
# microseconds of call overhead, which the reference does not pay; the reference's per-window
# cost is in turn small for long contiguous windows (global pooling). Measured crossovers: the
# windowed max/sum wins from about 16 outputs per window offset on (K = 9..256), the winner, with
# four passes per offset, from about 256 while K <= 64. The numba winner loop has no such
# overhead and is taken whenever it applies.
_VALUE_MIN_OUT_PER_OFFSET = 16
_WINNER_MIN_OUT_PER_OFFSET = 256
_WINNER_MAX_OFFSETS = 64


def _kernel_moving(kind, dtype, params):
    """The windowed axes when :mod:`funcgrad.jit.window_kernels` computes this winner, else ``None``.

    Float32/float64 max/min whose windows span one or two axes; every other axis must have a
    stride of one, so that the kernel's ``(B, H, M, W, C)`` view can merge it.
    """
    if kind == "sum" or dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        return None
    moving = [d for d, k in enumerate(params["window_dimensions"]) if k > 1]
    if not 1 <= len(moving) <= 2:
        return None
    if any(s != 1 for d, s in enumerate(params["window_strides"]) if d not in moving):
        return None
    return moving


def _fast_plan(x, kind, use, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    """A :class:`_Plan` for ``use`` (``"value"`` or ``"winner"``) when a fast path reproduces the
    reference exactly and is expected to be faster, else ``None``."""
    dtype = x.dtype
    if dtype not in _FAST_DTYPES or x.ndim == 0:
        return None
    out_shape = []
    for n, k, s, (lo, hi), bd, wd in zip(
        x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
    ):
        span = (n - 1) * bd + 1 + lo + hi if n else lo + hi  # dilated and padded extent
        eff = (k - 1) * wd + 1 if k else 0
        if k == 0 or span < eff:
            return None  # empty windows or no output: the reference handles them
        out_shape.append((span - eff) // s + 1)
    params = dict(
        window_dimensions=window_dimensions,
        window_strides=window_strides,
        padding=padding,
        base_dilation=base_dilation,
        window_dilation=window_dilation,
    )
    n_off, out_size = math.prod(window_dimensions), math.prod(out_shape)
    if use == "value":
        if out_size < _VALUE_MIN_OUT_PER_OFFSET * n_off:
            return None
    elif _kernel_moving(kind, dtype, params) is None:
        if n_off > _WINNER_MAX_OFFSETS or out_size < _WINNER_MIN_OUT_PER_OFFSET * n_off:
            return None
    xp = dilate_pad_np(x, tuple(range(x.ndim)), padding, base_dilation, _identity(kind, dtype))
    if kind == "sum" and dtype.kind == "f" and not _sum_order_matches(xp, window_dimensions, window_dilation):
        return None
    return _Plan(x, xp, kind, tuple(out_shape), params)


def _sum_order_matches(xp, window_dimensions, window_dilation):
    """Whether the fast sum adds in the reference's order, so that float sums agree bit for bit.

    Integer sums are exact in any order; float sums are not. The reference ``np.sum`` over the
    window axes of a C-contiguous operand without window dilation adds each window row (the last
    window axis, its innermost loop) sequentially from +0.0 while the row is shorter than 8
    (longer rows are summed pairwise), then accumulates the row sums in row-major order. NumPy
    merges the last two window axes into one row when a window row spans the operand's whole
    last axis. Those windows, dilated windows, long rows, float16 (NumPy accumulates it in
    float32) and non-contiguous operands take the reference path.
    """
    if xp.dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not xp.flags.c_contiguous:
        return False
    if any(d != 1 for d in window_dilation):
        return False
    k_last = window_dimensions[-1]
    if k_last >= 8:
        return False
    return not (k_last == xp.shape[-1] and any(k > 1 for k in window_dimensions[:-1]))


def _reduce_fast(plan):
    """Windowed sum/max/min of a :class:`_Plan`: elementwise NumPy over the offset views."""
    kind = plan.kind
    views = [plan.view(w) for w in plan.offsets()]
    if kind == "sum":
        # Sum each window row (last window axis) first, then the rows in order, as the reference.
        k_last = plan.params["window_dimensions"][-1]
        total = None
        for r in range(0, len(views), k_last):
            row = views[r].copy()
            for v in views[r + 1 : r + k_last]:
                np.add(row, v, out=row)
            if total is None:
                total = row
            else:
                np.add(total, row, out=total)
        if total.dtype.kind == "f":
            # The reference starts from +0.0: a window of -0.0s sums to +0.0 (x + 0.0 == x otherwise).
            np.add(total, total.dtype.type(0), out=total)
        return total
    op = np.maximum if kind == "max" else np.minimum
    out = views[0].copy()
    for v in views[1:]:
        op(out, v, out=out)
    return out


def _winner_fast(plan):
    """First max (min) of every window in row-major window order, as a flat index into ``x``.

    NumPy path: each window offset ``k`` of the K scores ``K - k`` where its element equals the
    window's max (or is NaN, when the max is NaN); the largest score is the first such offset,
    as ``argmax`` picks it (its rule for NaN too: the first NaN wins). A padding slot that ties
    with the max wins when it comes first, and then the index is ``x.size``, as in the
    reference. (Scores combined with ``np.maximum`` measured 5x faster than masked
    ``np.copyto``/``np.where``.)
    """
    x, p, out_shape = plan.x, plan.params, plan.out_shape
    nd = x.ndim
    layout = plan.kernel_layout()
    if layout is not None:
        return _winner_kernel(plan, layout)[..., None]
    m = _reduce_fast(plan)
    offsets = np.array(plan.offsets(), np.int64).reshape(-1, nd)
    n_off = len(offsets)
    nan_check = x.dtype.kind == "f" and bool(np.isnan(m).any())
    score_t = np.min_scalar_type(n_off)
    score = np.zeros(out_shape, score_t)
    tmp = np.empty(out_shape, score_t)
    hit = np.empty(out_shape, bool)
    for k, offset in enumerate(offsets):
        v = plan.view(offset)
        np.equal(v, m, out=hit)
        if nan_check:
            hit |= np.isnan(v)
        np.multiply(hit, score_t.type(n_off - k), out=tmp)
        np.maximum(score, tmp, out=score)
    # Axes with a window of one add a term that does not depend on the offset (``fixed``,
    # broadcast over the output); the others (``moving``) go into a table indexed by
    # (offset number, position among the moving axes), gathered with one ``take``.
    terms = plan.index_terms()
    moving = [d for d in range(nd) if p["window_dimensions"][d] > 1]
    fixed = np.zeros((1,) * nd, np.int64)
    for d in range(nd):
        if d not in moving:
            fixed = fixed + terms[d][0].reshape([-1 if e == d else 1 for e in range(nd)])
    table = np.zeros([n_off] + [1] * len(moving), np.int64)
    mpos = np.zeros((1,) * nd, np.intp)
    step = 1
    for i in reversed(range(len(moving))):
        d = moving[i]
        table = table + terms[d][offsets[:, d]].reshape([n_off] + [-1 if j == i else 1 for j in range(len(moving))])
        mpos = mpos + (np.arange(out_shape[d]) * step).reshape([-1 if e == d else 1 for e in range(nd)])
        step *= out_shape[d]
    # Offset number k = n_off - score; its row of the table starts at k * step.
    lin = np.multiply(np.subtract(n_off, score, dtype=np.intp), step)
    lin += mpos
    idx = table.ravel().take(lin)
    idx += fixed
    idx[idx < 0] = x.size
    return idx[..., None]


def _winner_kernel(plan, layout):
    """The winners by :func:`funcgrad.jit.window_kernels.window_winner`, shaped like the output."""
    from ..jit.window_kernels import window_winner  # imports numba: only when needed

    xp5, out5, window, strides, dilation, moving = layout
    if plan.xp is plan.x:
        # No padding or base dilation: a flat index into the operand's (C-order) copy is one into x.
        return window_winner(xp5, out5, window, strides, dilation, plan.kind).reshape(plan.out_shape)
    terms = plan.index_terms()
    nd = plan.x.ndim
    fixed = np.zeros((1,) * nd, np.int64)
    for d in range(nd):
        if d not in moving:
            fixed = fixed + terms[d][0].reshape([-1 if e == d else 1 for e in range(nd)])
    fixed = np.broadcast_to(fixed, [1 if d in moving else n for d, n in enumerate(plan.out_shape)])
    cy = terms[moving[0]].T if len(moving) == 2 else np.zeros((1, 1), np.int64)
    cx = terms[moving[-1]].T
    tables = (cy, cx, fixed.reshape(out5[0], out5[2], out5[4]), plan.x.size)
    return window_winner(xp5, out5, window, strides, dilation, plan.kind, tables).reshape(plan.out_shape)


def _reduce_general(x, kind, **params):
    """The reference evaluation: reduce a strided view of every window over its window axes."""
    win = _window_view(x, kind, **params)
    axes = tuple(range(x.ndim, 2 * x.ndim))
    if win.size == 0:
        return np.full(win.shape[: x.ndim], _identity(kind, x.dtype), x.dtype)
    if kind == "sum":
        return np.asarray(np.sum(win, axis=axes, dtype=x.dtype))
    return np.asarray((np.max if kind == "max" else np.min)(win, axis=axes))


def _make(kind):
    name = f"reduce_window_{kind}"
    prim = Primitive(name)

    def impl(x, **params):
        plan = _fast_plan(x, kind, "value", **params)
        if plan is None:
            return _reduce_general(x, kind, **params)
        return _reduce_fast(plan)

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


def _winner_general(x, *, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation):
    """The reference: ``argmax`` (``argmin``) of each flattened window of the strided view."""
    nd = x.ndim
    win = _window_view(x, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation)
    out_shape = win.shape[:nd]
    ksize = int(np.prod(window_dimensions, dtype=np.int64))
    if win.size == 0 or ksize == 0 or x.size == 0:  # (an empty operand: windows of padding only)
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


def _winner_impl(x, *, kind, **params):
    """Flat index into ``x`` of each window's first max (min); ``x.size`` where it is padding."""
    plan = _fast_plan(x, kind, "winner", **params)
    if plan is None:
        return _winner_general(x, kind=kind, **params)
    return _winner_fast(plan)


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
