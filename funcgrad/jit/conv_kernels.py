"""Numba helpers of ``lax.conv_general_dilated``: direct loops for small grouped convolutions, and
the chunked "wide" im2col/col2im + BLAS path for ungrouped stride-1 convolutions.

**Direct loops** (:func:`grouped_conv`). ``lax.conv_general_dilated`` evaluates most
convolutions as im2col + a matrix product (:mod:`funcgrad.lax.conv`), but a grouped
convolution with few features per group (depthwise, or ``feature_group_count`` close to the
feature count) becomes one tiny matrix product per group: BLAS runs a matrix-vector loop over a
patch matrix that im2col had to write out first. A direct loop reads the padded input in place
and is 2-10x faster there (the measurement is in :mod:`funcgrad.lax.conv`'s docstring, with the
rule that picks it).

Layout (channels-first, already dilated and padded, C-contiguous):
``x: (N, C, H, W)``, ``w: (O, C // groups, KH, KW)``, ``out: (N, O, OH, OW)``. Each kernel
computes the ``(n, o)`` output planes ``t = n * O + o`` for ``t`` in ``[lo, hi)``, so large
convolutions run in chunks on the jit thread pool (:func:`funcgrad.jit.kernels.parallel_call`;
the kernels release the GIL). With a column stride of 1 (any dilation) the innermost loop reads a
contiguous input row and writes a contiguous output row, and LLVM vectorizes it; the strided
kernel reads every ``s``-th input column (splitting the columns into ``s`` contiguous phases
first measured slower: the copy costs more than the gathers).

**Chunked GEMM** (:func:`gemm_conv`, :func:`gemm_conv_window`): the copies around the matrix
products of ungrouped stride-1 convolutions (padding into a reused per-thread buffer, patch
runs, the crop of the wide product, col2im's shifted sums), a few images at a time; see the
section comment below and the measurements in :mod:`funcgrad.lax.conv`.

Imported lazily by the convolution impl only when such a convolution runs: ``import funcgrad``
does not import numba.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

from .allocator import nudge_malloc

__all__ = ["DIRECT_DTYPES", "gemm_conv", "gemm_conv_window", "grouped_conv"]

# Dtypes the kernels are compiled for (others take the im2col path).
DIRECT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})

# Multiply-adds above which a convolution is split over the thread pool.
_PARALLEL_MIN_WORK = 1 << 18


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _grouped_unit_stride(x, w, out, sy, dy, dx, groups, lo, hi):  # pragma: no cover - compiled
    # Column stride 1: the innermost loop reads a contiguous input row (vectorized).
    n_out = w.shape[0]
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    og = n_out // groups
    # A private accumulator: LLVM cannot prove ``out`` and ``x`` apart, and would not vectorize.
    # Indices computed from runtime strides are cast to unsigned: numba then drops its
    # negative-index wraparound, which otherwise keeps the inner loop from vectorizing (4x).
    acc = np.empty((oh, ow), out.dtype)
    for t in range(lo, hi):
        n = t // n_out
        o = t - n * n_out
        c0 = (o // og) * cg
        acc[:, :] = 0
        for c in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    wv = w[o, c, ky, kx]
                    for y in range(oh):
                        iy = np.uint64(y * sy + ky * dy)
                        for xo in range(ow):
                            acc[y, xo] += wv * x[n, c0 + c, iy, np.uint64(xo + kx * dx)]
        out[n, o] = acc


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _grouped_strided(x, w, out, sy, sx, dy, dx, groups, lo, hi):  # pragma: no cover - compiled
    n_out = w.shape[0]
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    og = n_out // groups
    # A private accumulator: LLVM cannot prove ``out`` and ``x`` apart, and would not vectorize.
    # Indices computed from runtime strides are cast to unsigned: numba then drops its
    # negative-index wraparound, which otherwise keeps the inner loop from vectorizing (4x).
    acc = np.empty((oh, ow), out.dtype)
    for t in range(lo, hi):
        n = t // n_out
        o = t - n * n_out
        c0 = (o // og) * cg
        acc[:, :] = 0
        for c in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    wv = w[o, c, ky, kx]
                    for y in range(oh):
                        iy = np.uint64(y * sy + ky * dy)
                        for xo in range(ow):
                            acc[y, xo] += wv * x[n, c0 + c, iy, np.uint64(xo * sx + kx * dx)]
        out[n, o] = acc


def _readonly(a):
    # One compiled signature per dtype: every input is passed as a read-only C-contiguous view
    # (funcgrad's buffers are read-only, freshly padded ones are not).
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


def grouped_conv(x, w, out_spatial, strides, rhs_dilation, groups):
    """Direct convolution of a dilated-and-padded channels-first input ``x`` with ``w``.

    ``x``: ``(N, C, *spatial)``, ``w``: ``(O, C // groups, *window)`` (one or two spatial
    dimensions, float32 or float64, equal dtypes), ``out_spatial``: the output's spatial
    shape. Returns ``(N, O, *out_spatial)``, cross-correlation with the given window strides
    and kernel (``rhs``) dilation, as ``lax.conv_general_dilated`` defines it.

    Example:
        >>> import numpy as np
        >>> from funcgrad.jit.conv_kernels import grouped_conv
        >>> x = np.ones((1, 2, 4, 4), np.float32)
        >>> w = np.ones((2, 1, 3, 3), np.float32)
        >>> grouped_conv(x, w, (2, 2), (1, 1), (1, 1), groups=2)[0, 1]
        array([[9., 9.],
               [9., 9.]], dtype=float32)
    """
    nsp = x.ndim - 2
    if nsp not in (1, 2) or w.ndim != x.ndim:
        raise NotImplementedError(
            f"funcgrad.jit.conv_kernels.grouped_conv: direct convolution of {nsp}-d inputs "
            "(only 1-d and 2-d; lax.conv_general_dilated uses im2col for the others)"
        )
    if x.dtype != w.dtype or x.dtype not in DIRECT_DTYPES:
        raise NotImplementedError(
            f"funcgrad.jit.conv_kernels.grouped_conv: dtypes {x.dtype} and {w.dtype} "
            "(only equal float32 or float64 operands)"
        )
    if nsp == 1:  # a 1-d convolution is a 2-d one over a unit height
        x, w = x[:, :, None, :], w[:, :, None, :]
        out_spatial, strides, rhs_dilation = (
            (1,) + tuple(out_spatial),
            (1,) + tuple(strides),
            (1,) + tuple(rhs_dilation),
        )
    n, o = x.shape[0], w.shape[0]
    oh, ow = out_spatial
    out = np.empty((n, o, oh, ow), x.dtype)
    if out.size:
        sy, sx = (int(s) for s in strides)
        dy, dx = (int(d) for d in rhs_dilation)
        x, w = _readonly(x), _readonly(w)
        if sx == 1:
            kernel, args = _grouped_unit_stride, (x, w, out, sy, dy, dx, int(groups))
        else:
            kernel, args = _grouped_strided, (x, w, out, sy, sx, dy, dx, int(groups))
        work = out.size * w[0].size
        if work >= _PARALLEL_MIN_WORK:
            from .kernels import parallel_call

            parallel_call(kernel, n * o, args, ())
        else:
            kernel(*args, 0, n * o)
    return out[:, :, 0, :] if nsp == 1 else out


# -- chunked "wide" im2col + BLAS for ungrouped stride-1 convolutions --------------------------------
#
# The input of a stride-1 convolution is padded, a chunk of images at a time, into a buffer whose
# rows keep the padded width ``Wp``. A window element (ky, kx) then reads, for every output
# position (y, x) of the *wide* output grid ``(OH, Wp)``, the buffer element at the flat offset
# ``ky*dy*Wp + kx*dx + y*Wp + x``: one contiguous run of ``OH*Wp`` elements per (feature, window
# element). So the patch matrix is built from long memcpy-like runs (no loop over short rows of
# OW elements), one matrix product per chunk gives the wide output, and the ``Wp - OW`` extra
# columns of each row are dropped when the chunk is copied to the output.


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _pad_planes(x, buf, py, px):  # pragma: no cover - compiled
    # buf[a, b] = x[a, b] placed at (py, px), zeros around; x may have any strides.
    na, nb, h, w = x.shape
    hb, wp = buf.shape[2], buf.shape[3]
    for a in range(na):
        for b in range(nb):
            dst = buf[a, b]
            for y in range(py):
                dst[y, :] = 0
            for y in range(h):
                row = dst[py + y]
                src = x[a, b, y]
                for i in range(px):
                    row[i] = 0
                for i in range(w):
                    row[np.uint64(px + i)] = src[np.uint64(i)]
                for i in range(px + w, wp):
                    row[i] = 0
            for y in range(py + h, hb):
                dst[y, :] = 0


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _im2col_wide(buf, offs, cols):  # pragma: no cover - compiled
    # cols[a, b*K + k, i] = buf[a, b, offs[k] + i]: per image, rows (feature, window element)
    # and columns (wide positions).
    na, nb = buf.shape[0], buf.shape[1]
    nk, n = offs.shape[0], cols.shape[2]
    for a in range(na):
        for b in range(nb):
            src = buf[a, b]
            for k in range(nk):
                dst = cols[a, b * nk + k]
                o = offs[k]
                for i in range(n):
                    dst[np.uint64(i)] = src[np.uint64(o + i)]


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _im2col_window(buf, offs, cols):  # pragma: no cover - compiled
    # cols[a, k, b, i] = buf[a, b, offs[k] + i]: rows (batch, output position), columns (feature,
    # wide window position), for a large window over few output positions.
    na, nb = buf.shape[0], buf.shape[1]
    nk, n = offs.shape[0], cols.shape[3]
    for a in range(na):
        for k in range(nk):
            o = offs[k]
            for b in range(nb):
                src = buf[a, b]
                dst = cols[a, k, b]
                for i in range(n):
                    dst[np.uint64(i)] = src[np.uint64(o + i)]


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _crop_wide(res, out, wp):  # pragma: no cover - compiled
    # out[a, o, y, x] = res[a, o, y*wp + x]; out may have any strides.
    na, no, oh, ow = out.shape
    for a in range(na):
        for o in range(no):
            src = res[a, o]
            for y in range(oh):
                row = out[a, o, y]
                base = y * wp
                for x in range(ow):
                    row[np.uint64(x)] = src[np.uint64(base + x)]


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _shift_add(res, offs, out, wp):  # pragma: no cover - compiled
    # out[a, o, y, x] = sum_k res[a, o*K + k, offs[k] + y*wp + x]: col2im of a stride-1
    # convolution; out may have any strides. Three shifted rows are added per pass over the
    # accumulator (a third of its loads and stores; 25% faster than one row per pass), in a
    # fixed order.
    na, no, oh, ow = out.shape
    nk = offs.shape[0]
    n = oh * wp
    acc = np.empty(n, res.dtype)  # private: LLVM vectorizes without overlap checks
    for a in range(na):
        for o in range(no):
            acc[:] = 0
            k = 0
            while k + 3 <= nk:
                s0, s1, s2 = res[a, o * nk + k], res[a, o * nk + k + 1], res[a, o * nk + k + 2]
                f0, f1, f2 = offs[k], offs[k + 1], offs[k + 2]
                for i in range(n):
                    acc[i] += (s0[np.uint64(f0 + i)] + s1[np.uint64(f1 + i)]) + s2[np.uint64(f2 + i)]
                k += 3
            while k < nk:
                s0, f0 = res[a, o * nk + k], offs[k]
                for i in range(n):
                    acc[i] += s0[np.uint64(f0 + i)]
                k += 1
            for y in range(oh):
                row = out[a, o, y]
                base = y * wp
                for x in range(ow):
                    row[np.uint64(x)] = acc[base + x]


# Bytes of scratch (padded input, patch matrix, product) per chunk. On the cnn_sgd step (ms per
# step, one thread, medians of 150): 512 KiB 4.7, 1 MiB 4.5, 2 MiB 4.5, 4 MiB 4.5, 8 MiB 4.9; a
# first version with one BLAS call per image and L2-sized chunks (256-512 KiB) was 20% slower:
# the calls per chunk cost more than the cache saves. The chunks run in order on the calling
# thread: each chunk's product is already spread over BLAS's threads, and chunks on the jit
# thread pool, each with a threaded product, measured 3-5% slower (2 cores).
_CHUNK_BYTES = 2 << 20
# Scratch buffers up to this size are kept per thread and reused (fresh large arrays cost page
# faults on every call); larger ones are allocated per call.
_KEEP_SCRATCH_BYTES = 8 << 20
_scratch = threading.local()


def _scratch_flat(tag, size, dtype):
    """A 1-d uninitialised array of at least ``size`` elements: this thread's scratch buffer ``tag``."""
    if size * dtype.itemsize > _KEEP_SCRATCH_BYTES:
        return np.empty(size, dtype)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    key = (tag, dtype)
    flat = bufs.get(key)
    if flat is None or flat.size < size:
        flat = bufs[key] = np.empty(max(size, 1024), dtype)
    return flat


def _offsets(kh, kw, dy, dx, wp):
    return np.array([ky * dy * wp + kx * dx for ky in range(kh) for kx in range(kw)], np.int64)


def _check_gemm_operands(where, x, w, out, padding):
    if x.ndim != 4 or w.ndim != 4 or out.ndim != 4:
        raise NotImplementedError(f"funcgrad.jit.conv_kernels.{where}: 2-d convolutions only (4-d operands)")
    if len(padding) != 2 or any(len(p) != 2 or p[0] < 0 or p[1] < 0 for p in padding):
        raise ValueError(
            f"funcgrad.jit.conv_kernels.{where}: padding must be two non-negative (low, high) pairs, got {padding!r}"
        )
    if not (x.dtype == w.dtype == out.dtype) or x.dtype not in DIRECT_DTYPES:
        raise NotImplementedError(
            f"funcgrad.jit.conv_kernels.{where}: dtypes {x.dtype}, {w.dtype}, {out.dtype} "
            "(only equal float32 or float64 operands)"
        )


def gemm_conv(x, w, padding, rhs_dilation, out, method="im2col"):
    """Stride-1 convolution ``out = conv(x, w)`` by chunked wide im2col (or col2im) and BLAS.

    ``x``: ``(N, C, H, W)`` (any strides), ``w``: ``(O, C, KH, KW)``, ``padding``: two
    non-negative ``(low, high)`` pairs, ``rhs_dilation``: the kernel dilation, ``out``: the
    ``(N, O, OH, OW)`` result, written in place (any strides, e.g. a transposed view of an
    ``NHWC`` array). ``method="im2col"`` multiplies the kernel with each chunk's patch matrix
    (``C * KH * KW`` rows); ``"col2im"`` multiplies the transposed kernel with the padded input
    (``O * KH * KW`` rows) and sums the shifted rows, less data when ``O < C``.

    Example:
        >>> import numpy as np
        >>> from funcgrad.jit.conv_kernels import gemm_conv
        >>> x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((3, 2, 3, 3), np.float32)
        >>> out = np.empty((1, 3, 4, 4), np.float32)
        >>> gemm_conv(x, w, ((1, 1), (1, 1)), (1, 1), out)[0, 0]
        array([[ 8., 12., 12.,  8.],
               [12., 18., 18., 12.],
               [12., 18., 18., 12.],
               [ 8., 12., 12.,  8.]], dtype=float32)
    """
    _check_gemm_operands("gemm_conv", x, w, out, padding)
    if method not in ("im2col", "col2im"):
        raise ValueError(f"funcgrad.jit.conv_kernels.gemm_conv: method must be 'im2col' or 'col2im', got {method!r}")
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (py0, py1), (px0, px1) = padding
    dy, dx = rhs_dilation
    hp, wp = h + py0 + py1, wd + px0 + px1
    oh, ow = out.shape[2], out.shape[3]
    if (oh, ow) != (hp - (kh - 1) * dy, wp - (kw - 1) * dx) or out.shape[:2] != (n, o) or w.shape[1] != c:
        raise ValueError(
            f"funcgrad.jit.conv_kernels.gemm_conv: out shape {out.shape} does not match x {x.shape}, "
            f"w {w.shape}, padding {padding} and rhs_dilation {rhs_dilation}"
        )
    if out.size == 0:
        return out
    nudge_malloc()
    nk = kh * kw
    wide = oh * wp  # positions of the wide output grid
    hb = hp + 1  # one spare row: the last window's run reaches (kw - 1) * dx past the padded plane
    flat = hb * wp
    offs = _offsets(kh, kw, dy, dx, wp)
    dt = x.dtype
    if method == "im2col":
        kern = np.ascontiguousarray(w.reshape(o, c * nk))
        rows, cols_per_image = c * nk, wide  # patch matrix
    else:
        kern = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o * nk, c))
        rows, cols_per_image = o * nk, flat  # product, before the shifted sum
    res_rows = o if method == "im2col" else 0
    per_image = (c * flat + rows * cols_per_image + res_rows * wide) * dt.itemsize
    chunk = max(1, min(n, _CHUNK_BYTES // per_image))
    fbuf = _scratch_flat("pad", chunk * c * flat, dt)
    fcols = _scratch_flat("cols", chunk * rows * cols_per_image, dt)
    fres = _scratch_flat("res", chunk * res_rows * wide, dt) if res_rows else None
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        buf = fbuf[: m * c * flat].reshape(m, c, hb, wp)
        _pad_planes(x[lo:hi], buf, py0, px0)
        if method == "im2col":
            cols = fcols[: m * rows * wide].reshape(m, rows, wide)
            _im2col_wide(buf.reshape(m, c, flat), offs, cols)
            res = fres[: m * o * wide].reshape(m, o, wide)
            np.matmul(kern, cols, out=res)
            _crop_wide(res, out[lo:hi], wp)
        else:
            res = fcols[: m * rows * flat].reshape(m, rows, flat)
            np.matmul(kern, buf.reshape(m, c, flat), out=res)
            _shift_add(res, offs, out[lo:hi], wp)
    return out


def gemm_conv_window(x, w, padding, out):
    """Stride-1, undilated convolution with a window larger than its output, by chunked im2col and BLAS.

    The shape of a kernel gradient: ``x``: ``(N, C, H, W)``, ``w``: ``(O, C, KH, KW)`` with a
    large window (an output cotangent) and few output positions ``(OH, OW)``. The contraction
    runs over ``C`` and the window, so chunks of features are im2col'd (rows: batch and output
    position; columns: feature and wide window position, the window padded to the input's
    padded width) and their products summed. ``out``: ``(N, O, OH, OW)``, written in place.

    Example:
        >>> import numpy as np
        >>> from funcgrad.jit.conv_kernels import gemm_conv_window
        >>> x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((1, 2, 4, 4), np.float32)
        >>> out = np.empty((1, 1, 3, 3), np.float32)
        >>> gemm_conv_window(x, w, ((1, 1), (1, 1)), out)[0, 0]
        array([[18., 24., 18.],
               [24., 32., 24.],
               [18., 24., 18.]], dtype=float32)
    """
    _check_gemm_operands("gemm_conv_window", x, w, out, padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (py0, py1), (px0, px1) = padding
    hp, wp = h + py0 + py1, wd + px0 + px1
    oh, ow = out.shape[2], out.shape[3]
    if (oh, ow) != (hp - kh + 1, wp - kw + 1) or out.shape[:2] != (n, o) or w.shape[1] != c:
        raise ValueError(
            f"funcgrad.jit.conv_kernels.gemm_conv_window: out shape {out.shape} does not match x {x.shape}, "
            f"w {w.shape} and padding {padding}"
        )
    if out.size == 0:
        return out
    if c == 0:
        out[...] = 0
        return out
    nudge_malloc()
    npos = oh * ow
    wide = kh * wp  # wide window: each of its rows padded to the input's padded width
    hb = hp + 1
    flat = hb * wp
    offs = _offsets(oh, ow, 1, 1, wp)
    dt = x.dtype
    per_feature = (n * flat + o * wide + n * npos * wide) * dt.itemsize
    chunk = max(1, min(c, _CHUNK_BYTES // per_feature))
    fbuf = _scratch_flat("pad", n * chunk * flat, dt)
    fw = _scratch_flat("res", o * chunk * wide, dt)
    fcols = _scratch_flat("cols", n * npos * chunk * wide, dt)
    acc = None
    for lo in range(0, c, chunk):  # the chunks' products summed in order
        hi = min(c, lo + chunk)
        m = hi - lo
        buf = fbuf[: n * m * flat].reshape(n, m, hb, wp)
        _pad_planes(x[:, lo:hi], buf, py0, px0)
        wbuf = fw[: o * m * wide].reshape(o, m, kh, wp)
        _pad_planes(w[:, lo:hi], wbuf, 0, 0)
        cols = fcols[: n * npos * m * wide].reshape(n, npos, m, wide)
        _im2col_window(buf.reshape(n, m, flat), offs, cols)
        prod = np.dot(cols.reshape(n * npos, m * wide), wbuf.reshape(o, m * wide).T)
        acc = prod if acc is None else np.add(acc, prod, out=acc)
    out[...] = acc.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return out
