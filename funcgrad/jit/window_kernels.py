"""Direct-loop numba kernels for the winners of windowed max/min (max pooling's gradient).

``reduce_window_winner`` (the flat position of each window's first max or min, which routes
the gradient of ``lax.reduce_window_max`` / ``reduce_window_min``) is evaluated in NumPy by
:mod:`funcgrad.lax.windowed` as several elementwise passes per window offset (compare, score,
combine) plus index arithmetic; one loop over the windows does it in one pass, about 2x faster
(the measurement is in :mod:`funcgrad.lax.windowed`). The windowed max itself stays in NumPy: a
loop measured no faster than its ``np.maximum`` passes.

Layout: the dilated and padded operand is viewed as ``(B, H, M, W, C)``, C-contiguous, where
``H`` and ``W`` are the (at most two) axes with a window longer than one and the other axes,
which must have a window of one and a stride of one, are merged into ``B`` (before ``H``),
``M`` (between) and ``C`` (after). With a single windowed axis, ``H`` is a dummy of extent 1.
The output is ``(B, OH, M, OW, C)``. The kernels compute the output rows ``t = b * OH + oh``
for ``t`` in ``[lo, hi)``, so very large inputs run in chunks on the jit thread pool
(:func:`funcgrad.jit.kernels.parallel_call`; the kernels release the GIL). Channels-first
pooling (``M = C = 1``) has a kernel of its own without the two unit loops (1.5x faster).

Semantics are those of ``np.argmax`` (``np.argmin``) over each window flattened in row-major
order: the first element strictly greater (smaller) than every earlier one wins, a NaN beats
any number, and the first NaN wins.

Imported lazily by :mod:`funcgrad.lax.windowed` only when such a winner is computed:
``import funcgrad`` does not import numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["KERNEL_DTYPES", "window_winner"]

# Dtypes the kernels are compiled for (others take the NumPy path).
KERNEL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})

# Window element visits above which a reduction is split over the thread pool.
_PARALLEL_MIN_WORK = 1 << 20


# The kernels index the flattened operand with unsigned offsets: numba then drops its
# negative-index wraparound checks. ``woff[k]`` is the element offset of window slot ``k``
# (row-major window order) from the window's first element; ``syel``/``sxel`` are the element
# steps between output rows/columns and ``sb``/``sm`` those of the ``B`` and ``M`` axes.


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always")
def _first_best(xf, base, woff, is_max, maybe_nan):  # pragma: no cover - compiled
    """Window slot of the first max (min) of the window starting at ``xf[base]``."""
    best = xf[base]
    bk = 0
    # A branch-free first-strictly-better scan. A leading NaN is already right (nothing compares
    # greater than it); a later one is not, so when the operand has NaNs the scan flags windows
    # holding one, and those are rescanned with argmax's NaN rule. (Flagging costs 1.4x: an
    # operand without NaNs skips it; the loops are written out twice to keep the test out of them.)
    if not maybe_nan:
        for k in range(1, woff.shape[0]):
            v = xf[base + np.uint64(woff[k])]
            better = (v > best) if is_max else (v < best)
            best = v if better else best
            bk = k if better else bk
        return bk
    nan = False
    for k in range(1, woff.shape[0]):
        v = xf[base + np.uint64(woff[k])]
        better = (v > best) if is_max else (v < best)
        nan |= v != v
        best = v if better else best
        bk = k if better else bk
    if nan:
        best = xf[base]
        bk = 0
        for k in range(1, woff.shape[0]):
            v = xf[base + np.uint64(woff[k])]
            if best == best and (v != v or ((v > best) if is_max else (v < best))):
                best = v
                bk = k
    return bk


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _winner_kernel(
    xf,
    woff,
    wy,
    wx,
    cy,
    cx,
    fixed,
    out,
    oh_n,
    m_n,
    ow_n,
    c_n,
    sb,
    sm,
    syel,
    sxel,
    size,
    direct,
    is_max,
    maybe_nan,
    lo,
    hi,
):  # pragma: no cover - compiled
    o = np.uint64(lo * m_n * ow_n * c_n)
    for t in range(lo, hi):
        b = t // oh_n
        oh = t - b * oh_n
        row = b * sb + oh * syel
        for m in range(m_n):
            for ow in range(ow_n):
                base0 = row + m * sm + ow * sxel
                for c in range(c_n):
                    bk = _first_best(xf, np.uint64(base0 + c), woff, is_max, maybe_nan)
                    if direct:
                        out[o] = base0 + c + woff[bk]
                    else:
                        idx = fixed[(b * m_n + m) * c_n + c] + cy[oh, wy[bk]] + cx[ow, wx[bk]]
                        out[o] = size if idx < 0 else idx
                    o += np.uint64(1)


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _winner_kernel_planes(
    xf, woff, wy, wx, cy, cx, fixed, out, oh_n, ow_n, sb, syel, sxel, size, direct, is_max, maybe_nan, lo, hi
):  # pragma: no cover - compiled
    # M = C = 1 (channels-first pooling): the same loop without its two unit loops, 1.5x faster.
    o = np.uint64(lo * ow_n)
    for t in range(lo, hi):
        b = t // oh_n
        oh = t - b * oh_n
        row = b * sb + oh * syel
        for ow in range(ow_n):
            base0 = row + ow * sxel
            bk = _first_best(xf, np.uint64(base0), woff, is_max, maybe_nan)
            if direct:
                out[o] = base0 + woff[bk]
            else:
                idx = fixed[b] + cy[oh, wy[bk]] + cx[ow, wx[bk]]
                out[o] = size if idx < 0 else idx
            o += np.uint64(1)


def _readonly(a):
    # One compiled signature per dtype: every array is passed as a read-only C-contiguous view
    # (funcgrad's buffers are read-only, freshly padded ones are not).
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


def _run(kernel, args, rows, work):
    if work >= _PARALLEL_MIN_WORK:
        from .kernels import parallel_call

        parallel_call(kernel, rows, args, ())
    else:
        kernel(*args, 0, rows)


def _layout(where, xp, out_shape, window, strides, dilation, kind):
    """Validated geometry: the flat operand, window slot offsets and element steps."""
    if xp.ndim != 5 or len(out_shape) != 5:
        raise ValueError(
            f"funcgrad.jit.window_kernels.{where}: xp and out_shape must be 5-d (B, H, M, W, C), "
            f"got {xp.shape} and {tuple(out_shape)}"
        )
    if xp.dtype not in KERNEL_DTYPES:
        raise NotImplementedError(
            f"funcgrad.jit.window_kernels.{where}: dtype {xp.dtype} (only float32 and float64; "
            "lax.reduce_window_* evaluates the others in NumPy)"
        )
    if kind not in ("max", "min"):
        raise ValueError(f"funcgrad.jit.window_kernels.{where}: kind must be 'max' or 'min', got {kind!r}")
    if len(window) != 2 or len(strides) != 2 or len(dilation) != 2:
        raise ValueError(f"funcgrad.jit.window_kernels.{where}: window, strides and dilation need 2 entries (H, W)")
    (kh, kw), (sy, sx), (dy, dx) = ((int(a), int(b)) for a, b in (window, strides, dilation))
    b_n, h_n, m_n, w_n, c_n = xp.shape
    ob, oh_n, om, ow_n, oc = out_shape
    if (ob, om, oc) != (b_n, m_n, c_n) or min(kh, kw, sy, sx, dy, dx) < 1:
        raise ValueError(f"funcgrad.jit.window_kernels.{where}: out_shape {tuple(out_shape)} does not fit {xp.shape}")
    if oh_n and ow_n and ((oh_n - 1) * sy + (kh - 1) * dy >= h_n or (ow_n - 1) * sx + (kw - 1) * dx >= w_n):
        raise ValueError(
            f"funcgrad.jit.window_kernels.{where}: windows {window} (strides {strides}, dilation {dilation}) "
            f"of out_shape {tuple(out_shape)} overrun the operand {xp.shape}"
        )
    sw = c_n
    sm, sh = w_n * sw, m_n * w_n * sw
    sb = h_n * sh
    ky, kx = np.divmod(np.arange(kh * kw, dtype=np.int64), kw)
    woff = ky * (dy * sh) + kx * (dx * sw)
    xf = _readonly(xp).reshape(-1)
    geometry = (oh_n, m_n, ow_n, c_n, sb, sm, sy * sh, sx * sw)
    return xf, woff, ky, kx, geometry


def window_winner(xp, out_shape, window, strides, dilation, kind, tables=None):
    """Index of the first max (``kind="max"``) or min of every window, in row-major window order.

    ``xp`` is the padded ``(B, H, M, W, C)`` operand (float32 or float64), ``out_shape`` is
    ``(B, OH, M, OW, C)``; ``window``, ``strides`` and ``dilation`` are the ``(H, W)`` window
    extents, steps and window dilations; ``kind`` is ``"max"`` or ``"min"``. Without
    ``tables`` the result is the winner's flat index into ``xp``. With ``tables=(cy, cx,
    fixed, size)`` (int64 arrays of shapes ``(OH, kh)``, ``(OW, kw)`` and ``(B, M, C)``), the
    winner at window offset ``(ky, kx)`` of output ``(b, oh, m, ow, c)`` gets ``fixed[b, m, c]
    + cy[oh, ky] + cx[ow, kx]``, or ``size`` where that is negative: this maps into an
    unpadded operand, negative entries marking padding. Returns int64 of ``out_shape``.

    Example:
        >>> import numpy as np
        >>> from funcgrad.jit.window_kernels import window_winner
        >>> xp = np.array([1.0, 3.0, 3.0, 2.0]).reshape(1, 1, 1, 4, 1)
        >>> window_winner(xp, (1, 1, 1, 3, 1), (1, 2), (1, 1), (1, 1), "max").ravel()
        array([1, 1, 2])
    """
    xf, woff, ky, kx, geometry = _layout("window_winner", xp, out_shape, window, strides, dilation, kind)
    out = np.empty(out_shape, np.int64)
    if not out.size:
        return out
    if tables is None:
        direct, size = True, 0
        cy = np.zeros((1, window[0]), np.int64)
        cx = np.zeros((1, window[1]), np.int64)
        fixed = np.zeros(1, np.int64)
    else:
        cy, cx, fixed, size = tables
        direct, size = False, int(size)
        want = ((out_shape[1], window[0]), (out_shape[3], window[1]), (out_shape[0], out_shape[2], out_shape[4]))
        if tuple(np.shape(cy)) != want[0] or tuple(np.shape(cx)) != want[1] or tuple(np.shape(fixed)) != want[2]:
            raise ValueError(
                f"funcgrad.jit.window_kernels.window_winner: tables of shapes {np.shape(cy)}, {np.shape(cx)}, "
                f"{np.shape(fixed)}, expected {want[0]}, {want[1]}, {want[2]}"
            )
        fixed = np.asarray(fixed, np.int64).reshape(-1)
    cy, cx, fixed = (_readonly(np.asarray(t, np.int64)) for t in (cy, cx, fixed))
    # One max over the operand (NaN iff it holds a NaN) lets NaN-free windows skip the NaN flag.
    tail = (size, direct, kind == "max", bool(np.isnan(xf.max())))
    oh_n, m_n, ow_n, c_n, sb, sm, syel, sxel = geometry
    if m_n == 1 and c_n == 1:
        kernel, geometry = _winner_kernel_planes, (oh_n, ow_n, sb, syel, sxel)
    else:
        kernel = _winner_kernel
    args = (xf, woff, ky, kx, cy, cx, fixed, out.reshape(-1)) + geometry + tail
    _run(kernel, args, out_shape[0] * out_shape[1], out.size * len(woff))
    return out
