"""Direct-loop numba kernels for grouped convolutions with few input features per group.

``lax.conv_general_dilated`` evaluates convolutions as im2col + one batched matmul
(:mod:`funcgrad.lax.conv`). That is the fastest way for ordinary convolutions, whose
products are large matrix products, but a grouped convolution with few features per group
(depthwise, or ``feature_group_count`` close to the feature count) becomes one tiny matrix
product per group: BLAS runs a matrix-vector loop over a patch matrix that im2col had to
write out first. A direct loop reads the padded input in place and is 2-10x faster there
(the measurement is in :mod:`funcgrad.lax.conv`'s docstring, with the rule that picks it).

Layout (channels-first, already dilated and padded, C-contiguous):
``x: (N, C, H, W)``, ``w: (O, C // groups, KH, KW)``, ``out: (N, O, OH, OW)``. Each kernel
computes the ``(n, o)`` output planes ``t = n * O + o`` for ``t`` in ``[lo, hi)``, so large
convolutions run in chunks on the jit thread pool (:func:`funcgrad.jit.kernels.parallel_call`;
the kernels release the GIL). With a column stride of 1 (any dilation) the innermost loop reads a
contiguous input row and writes a contiguous output row, and LLVM vectorizes it; the strided
kernel reads every ``s``-th input column (splitting the columns into ``s`` contiguous phases
first measured slower: the copy costs more than the gathers).

Imported lazily by the convolution impl only when such a convolution runs: ``import funcgrad``
does not import numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["DIRECT_DTYPES", "grouped_conv"]

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
