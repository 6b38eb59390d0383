"""Convolution: ``conv_general_dilated`` (JAX/XLA semantics) and its convenience wrappers.

One primitive, ``conv_general_dilated_p``, covers every convolution: any number of
spatial dimensions, any layout (``dimension_numbers``), strides, explicit (possibly
negative) padding, input ("lhs", transposed-convolution) dilation, kernel ("rhs", atrous)
dilation, feature groups (grouped / depthwise) and batch groups.

Evaluation (the impl, which ``fg.jit`` calls as it is: the primitive lowers to ``CALL_IMPL``)
takes one of three strategies, chosen per convolution by a fixed rule:

* **chunked GEMM** (:func:`funcgrad.jit.conv_kernels.gemm_conv` / ``gemm_conv_window``, numba
  helpers imported on first use) for ungrouped (no feature or batch groups) 1-d/2-d
  float32/float64 convolutions with unit window strides and no input dilation, whose padded
  rows are at most twice as wide as the output's (the window's, below). A few images at a
  time (about 2 MiB of scratch, reused per thread) are padded into a buffer that keeps the
  padded row width ``Wp``; then every window element reads one contiguous run of ``OH * Wp``
  buffer elements for the *wide* output grid ``(OH, Wp)``, so patches are copied as long runs
  instead of ``OW``-element rows, and the ``Wp - OW`` surplus columns are dropped when the
  chunk's product is copied into the output (in any layout). Three variants:

  - ``"im2col"`` (window no larger than the output, ``O >= C``): the ``(C * K, OH * Wp)`` patch
    matrix of each image, multiplied by the ``(O, C * K)`` kernel;
  - ``"col2im"`` (the same, ``O < C``; e.g. an input gradient, whose output has fewer features):
    the ``(O * K, C)`` transposed kernel times the padded images, then each output row is the
    sum of ``K`` shifted rows of that product: ``O * K`` rows of data instead of ``C * K``;
  - ``"window"`` (window larger than the output, no kernel dilation; a kernel gradient, whose
    window is an output cotangent): chunks of ``F`` input features, each a ``(N * K, F * KH * Wp)``
    patch matrix (``K`` output positions) times the window, its rows padded to the wide width
    ``Wp``; the chunks' products are summed in a fixed order.

* **a direct numba loop** (:mod:`funcgrad.jit.conv_kernels`, imported on first use) when
  ``feature_group_count > 1`` (no batch groups), 1 or 2 spatial dimensions, float32/float64,
  ``features per group * window elements <= 64``, a window no larger than the output, and a
  column stride of 1 unless depthwise (one feature per group). Those become many tiny
  matrix products that BLAS runs badly, after an im2col copy as large as for a full
  convolution.
* **whole-batch im2col + BLAS** for everything else (strided, input-dilated, grouped with
  many features, 3-d, integer...). The input is dilated and padded once, every window is a
  strided view (``sliding_window_view``), copied once into a patch matrix and multiplied with
  the kernel in one (batched over groups) ``np.matmul``. The copy's innermost axes are the
  larger of the output positions and the window, so it streams along input rows: a forward
  convolution puts the positions innermost (``(groups, features * window, batch * positions)``),
  a kernel gradient, whose "window" is the whole output, puts the window innermost. The
  product gives ``(groups, out features, batch, positions)``, moved to the output layout by
  one copy (none when the layout already matches, as for kernel gradients).

The convolutions of the ``cnn_sgd`` step of ``benchmarks/bench_jit.py`` (batch 32, 28x28,
3x3, SAME: forward, input gradient, kernel gradients), ms, best quartile of 60 calls of the
impl, ``OPENBLAS_NUM_THREADS=1 FUNCGRAD_JIT_THREADS=1`` (2 threads in brackets)::

    convolution                                   whole-batch    chunked        variant
    fwd (32,1,28,28) * (8,1,3,3)                  0.17 (0.14)    0.13 (0.13)    im2col
    fwd (32,8,28,28) * (16,8,3,3)                 1.13 (0.82)    0.88 (0.67)    im2col  (col2im 1.23)
    input grad (32,16,28,28) * (8,16,3,3)         2.03 (1.45)    1.01 (0.78)    col2im  (im2col 1.18)
    kernel grad 8x32x28x28 * 16x32x28x28          1.25 (0.97)    1.00 (0.83)    window
    kernel grad 1x32x28x28 * 8x32x28x28           0.25 (0.23)    0.21 (0.22)    window

(the whole cnn_sgd step, chunked path off / on: 6.6 / 4.4 ms on one thread). Most of what remains is the matrix
products themselves (OpenBLAS at ~75% of its peak on these shapes); the copies around them
take 0.15-0.3 ms per convolution. Chunks of 1-4 MiB measured alike, 256-512 KiB (L2-sized)
slower: the Python calls per chunk cost more than the cache saves. The chunks run in order on
the calling thread, each product on BLAS's threads (chunks on the jit thread pool, each with
a threaded product, measured 3-5% slower on 2 cores).

Measured for the direct-loop rule (ms, float32, best of 21, 2 cores: ``OPENBLAS_NUM_THREADS=1
FUNCGRAD_JIT_THREADS=1`` in brackets; "old" is an earlier im2col with the window innermost and
the ``(batch * positions, features * window)`` matrix on the left; the first five rows are now
served by the chunked path, measured above)::

    convolution                                   old            im2col         direct   rule
    fwd (32,1,28,28) * (8,1,3,3) SAME             0.65 (0.43)    0.23 (0.15)    0.26 (0.26)  im2col
    fwd (32,8,28,28) * (16,8,3,3) SAME            4.4  (3.3)     1.27 (1.07)    1.68 (2.91)  im2col
    input grad (32,16,28,28) * (8,16,3,3)         6.7  (6.9)     2.23 (1.77)    2.92 (2.87)  im2col
    kernel grad 8x32x28x28 * 16x32x28x28          1.54 (1.07)    1.70 (1.09)    8.9  (17.4)  im2col
    kernel grad 1x32x28x28 * 8x32x28x28           0.34 (0.19)    0.21 (0.20)    0.69 (1.11)  im2col
    lhs-dilated 2x (32,16,14,14) * (8,16,3,3)     7.2  (6.8)     2.18 (1.73)    2.91 (2.83)  im2col
    depthwise (32,16,28,28) * (16,1,3,3)          5.7  (6.2)     1.26 (1.10)    0.61 (0.57)  direct
    depthwise stride 2, same                      1.51 (1.57)    0.51 (0.49)    0.52 (0.48)  direct
    depthwise (16,64,32,32) * (64,1,3,3)         15.8  (15.5)    6.0  (6.3)     0.73 (1.09)  direct
    depthwise 5x5 (16,32,32,32)                  14.9  (14.8)    7.8  (7.4)     0.64 (1.03)  direct
    4 groups of 4 (32,16,28,28) * (16,4,3,3)      7.7  (5.8)     2.53 (1.67)    1.61 (1.55)  direct
    8 groups of 4 (32,32,28,28) * (32,4,3,3)     10.9  (11.4)    3.64 (4.51)    1.81 (3.31)  direct
    2 groups of 8 (32,16,28,28) * (16,8,3,3)      6.1  (6.2)     1.54 (1.98)    1.60 (2.98)  im2col

So ungrouped convolutions stay on im2col + BLAS (one large matrix product beats the
vectorized loop), and grouped convolutions with few features per group take the loop.

The convolution is bilinear, so its JVP is two convolutions and its transposes are
convolutions too (JAX's ``_conv_general_dilated_transpose_lhs/rhs``): the input
cotangent is a convolution of the output cotangent with the flipped kernel, dilated by
the strides; the kernel cotangent is a convolution of the input with the output
cotangent, using batch groups for grouped convolutions. Because the transposes are built
from the primitive itself, derivatives of any order work.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array
from ..core.dtypes import bfloat16, float16
from ..core.errors import DTypeError, InvalidArgumentError, InvalidValueError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import add_tangents
from ..transforms.transpose import is_undefined

_NAME = "lax.conv_general_dilated"


class ConvDimensionNumbers(NamedTuple):
    """Axis layout of a convolution, as axis indices (JAX's ``ConvDimensionNumbers``).

    ``lhs_spec = (batch, feature, spatial...)``, ``rhs_spec = (out feature, in feature,
    spatial...)``, ``out_spec = (batch, feature, spatial...)``; the spatial axes of the three
    are listed in matching order.

    Example:
        >>> from funcgrad import lax
        >>> lax.conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 8), ("NHWC", "HWIO", "NHWC"))
        ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))
    """

    lhs_spec: tuple
    rhs_spec: tuple
    out_spec: tuple


def _conv_general_permutations(specs):
    """Axis permutations from layout strings such as ``("NCHW", "OIHW", "NCHW")``."""
    lhs_spec, rhs_spec, out_spec = specs
    charpairs = (("N", "C"), ("O", "I"), ("N", "C"))
    for name, spec, (a, b) in zip(("lhs", "rhs", "out"), specs, charpairs):
        if not isinstance(spec, str):
            raise InvalidArgumentError(
                f"{_NAME}: dimension_numbers must be a ConvDimensionNumbers or three layout strings, got {specs!r}"
            )
        if spec.count(a) != 1 or spec.count(b) != 1:
            raise InvalidArgumentError(f"{_NAME}: the {name} layout {spec!r} must contain '{a}' and '{b}' exactly once")
        if len(spec) != len(set(spec)):
            raise InvalidArgumentError(f"{_NAME}: the {name} layout {spec!r} repeats a dimension")
    if not set(lhs_spec) - {"N", "C"} == set(rhs_spec) - {"O", "I"} == set(out_spec) - {"N", "C"}:
        raise InvalidArgumentError(f"{_NAME}: the spatial dimensions of the layouts {specs!r} do not match")

    def perm(spec, pair):
        spatial = [i for i, c in enumerate(spec) if c not in pair]
        if spec is not rhs_spec:
            spatial = sorted(spatial, key=lambda i: rhs_spec.index(spec[i]))
        return (spec.index(pair[0]), spec.index(pair[1])) + tuple(spatial)

    return tuple(perm(s, p) for s, p in zip(specs, charpairs))


def conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers) -> ConvDimensionNumbers:
    """Normalise ``dimension_numbers`` (None, layout strings or ConvDimensionNumbers) to axis indices.

    ``None`` means the channels-first layouts ``("NC...", "OI...", "NC...")``.

    Example:
        >>> from funcgrad import lax
        >>> lax.conv_dimension_numbers((1, 3, 5, 5), (8, 3, 3, 3), None)
        ConvDimensionNumbers(lhs_spec=(0, 1, 2, 3), rhs_spec=(0, 1, 2, 3), out_spec=(0, 1, 2, 3))
    """
    lhs_shape, rhs_shape = tuple(lhs_shape), tuple(rhs_shape)
    if len(lhs_shape) != len(rhs_shape):
        raise ShapeError(
            f"{_NAME}: lhs and rhs must have the same rank, got lhs shape {lhs_shape} and rhs shape {rhs_shape}"
        )
    if len(lhs_shape) < 2:
        raise ShapeError(f"{_NAME}: operands need rank >= 2 (batch and feature dimensions), got lhs shape {lhs_shape}")
    nd = len(lhs_shape)
    if dimension_numbers is None:
        iota = tuple(range(nd))
        return ConvDimensionNumbers(iota, iota, iota)
    if (
        isinstance(dimension_numbers, (tuple, list))
        and len(dimension_numbers) == 3
        and all(not isinstance(s, str) for s in dimension_numbers)
    ):
        # A ConvDimensionNumbers (ours or JAX's) or any triple of axis-index sequences.
        try:
            dn = ConvDimensionNumbers(*(tuple(int(i) for i in s) for s in dimension_numbers))
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"{_NAME}: dimension_numbers must be None, a ConvDimensionNumbers or three layout "
                f"strings, got {dimension_numbers!r}"
            ) from None
        for name, spec in zip(("lhs_spec", "rhs_spec", "out_spec"), dn):
            if sorted(spec) != list(range(nd)):
                raise ShapeError(
                    f"{_NAME}: dimension_numbers.{name}={spec} is not a permutation of the {nd} axes "
                    f"of lhs shape {lhs_shape} / rhs shape {rhs_shape}"
                )
        return dn
    if not isinstance(dimension_numbers, (tuple, list)) or len(dimension_numbers) != 3:
        raise InvalidArgumentError(
            f"{_NAME}: dimension_numbers must be None, a ConvDimensionNumbers or three layout strings, "
            f"got {dimension_numbers!r}"
        )
    for name, spec in zip(("lhs", "rhs", "out"), dimension_numbers):
        if isinstance(spec, str) and len(spec) != nd:
            raise ShapeError(
                f"{_NAME}: the {name} layout {spec!r} has {len(spec)} dimensions but the operands have "
                f"rank {nd} (lhs shape {lhs_shape}, rhs shape {rhs_shape})"
            )
    return ConvDimensionNumbers(*_conv_general_permutations(tuple(dimension_numbers)))


def _dilate_shape(shape, dilation):
    return tuple(0 if d == 0 else 1 + r * (d - 1) for d, r in zip(shape, dilation))


def _ceil_div(a, b):
    return -(-a // b)


def padtype_to_pads(in_shape, window_shape, window_strides, padding):
    """Explicit ``(low, high)`` pads for a padding name ``'SAME'``, ``'SAME_LOWER'`` or ``'VALID'``.

    Example:
        >>> from funcgrad import lax
        >>> lax.padtype_to_pads((5, 6), (3, 3), (1, 2), "SAME")
        [(1, 1), (0, 1)]
    """
    kind = padding.upper() if isinstance(padding, str) else padding
    if kind == "VALID":
        return [(0, 0)] * len(in_shape)
    if kind in ("SAME", "SAME_LOWER"):
        pads = []
        for n, k, s in zip(in_shape, window_shape, window_strides):
            total = max((_ceil_div(n, s) - 1) * s + k - n, 0)
            lo, hi = total // 2, total - total // 2
            pads.append((lo, hi) if kind == "SAME" else (hi, lo))
        return pads
    raise InvalidValueError(
        f"padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of (low, high) pairs, got {padding!r}"
    )


def _explicit_padding(padding, nsp, where):
    try:
        pads = [(int(lo), int(hi)) for lo, hi in padding]
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"{where}: padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of (low, high) "
            f"pairs, got {padding!r}"
        ) from None
    if len(pads) != nsp:
        raise InvalidValueError(
            f"{where}: padding {padding!r} needs {nsp} (low, high) pairs, one per spatial dimension"
        )
    return tuple(pads)


def _int_tuple(values, n, default, what, where):
    if values is None:
        return (default,) * n
    if isinstance(values, (int, np.integer)):
        values = (values,) * n
    out = tuple(int(v) for v in values)
    if len(out) != n:
        raise InvalidValueError(f"{where}: {what} {tuple(values)} needs {n} entries, one per spatial dimension")
    if any(v < 1 for v in out):
        raise InvalidValueError(f"{where}: {what} must be positive, got {out}")
    return out


# -- numpy evaluation ------------------------------------------------------------------------


def dilate_pad_np(x, axes, pads, dilation, value):
    """Dilate ``x`` along ``axes`` (``dilation - 1`` holes between elements), then pad or crop.

    ``pads`` are ``(low, high)`` pairs; negative entries crop. Holes and pads hold ``value``.
    """
    if all(d == 1 for d in dilation) and all(p == (0, 0) for p in pads):
        return x
    shape = list(x.shape)
    for ax, d in zip(axes, dilation):
        shape[ax] = _dilate_shape((x.shape[ax],), (d,))[0]
    grown = list(shape)
    for ax, (lo, hi) in zip(axes, pads):
        grown[ax] += max(lo, 0) + max(hi, 0)
    out = np.full(grown, value, dtype=x.dtype)
    dst = [np.s_[:]] * x.ndim
    for ax, (lo, _), d in zip(axes, pads, dilation):
        dst[ax] = np.s_[max(lo, 0) : max(lo, 0) + shape[ax] : d]
    out[tuple(dst)] = x
    crop = [np.s_[:]] * x.ndim
    for ax, (lo, hi) in zip(axes, pads):
        crop[ax] = np.s_[-min(lo, 0) : grown[ax] + min(hi, 0)]
    return out[tuple(crop)]


def windows_np(x, axes, window, strides, window_dilation):
    """Strided view ``x.shape[non-window axes] + out positions + window`` of every window (no copy).

    The window axes come last, in the order of ``axes``; the position axes replace ``axes``.
    """
    eff = _dilate_shape(window, window_dilation)
    counts = [max((x.shape[ax] - e) // s + 1, 0) for ax, e, s in zip(axes, eff, strides)]
    if any(c == 0 for c in counts) or any(e == 0 for e in eff):
        shape = list(x.shape)
        for ax, c in zip(axes, counts):
            shape[ax] = c
        return np.zeros(tuple(shape) + tuple(window), x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, eff, axis=axes)
    sel = [np.s_[:]] * x.ndim
    for ax, s in zip(axes, strides):
        sel[ax] = np.s_[::s]
    sel += [np.s_[::d] for d in window_dilation]
    return view[tuple(sel)]


def _compute_dtype(dtype, preferred):
    if preferred is not None and np.dtype(preferred).itemsize > np.dtype(dtype).itemsize:
        return np.dtype(preferred)
    if dtype in (float16, bfloat16):  # accumulate low-precision products in float32
        return np.dtype(np.float32)
    return np.dtype(dtype)


def _use_direct_loop(x, w, win_shape, window_strides, feature_group_count, batch_group_count):
    """The rule of the module docstring: a direct loop for 1-d/2-d float convolutions with
    feature groups of few features and a window no larger than the output; with a column
    stride above 1 only for depthwise ones (one feature per group)."""
    nsp = x.ndim - 2
    if feature_group_count == 1 or batch_group_count != 1 or nsp not in (1, 2):
        return False
    if x.dtype not in _DIRECT_DTYPES or x.dtype != w.dtype:
        return False
    ksize = int(np.prod(w.shape[2:], dtype=np.int64))
    npos = int(np.prod(win_shape[2 : 2 + nsp], dtype=np.int64))
    if window_strides[-1] != 1 and w.shape[1] != 1:
        return False
    return w.shape[1] * ksize <= _DIRECT_MAX_GROUP_WINDOW and ksize <= npos


_DIRECT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_DIRECT_MAX_GROUP_WINDOW = 64  # features per group x window elements


def _gemm_strategy(x, w, out_sp, pads, window_strides, lhs_dilation, rhs_dilation, g, b):
    """The chunked-GEMM rule of the module docstring: ``"im2col"``, ``"col2im"``, ``"window"`` or
    None (the whole-batch im2col or the direct loop).

    ``x``/``w`` are channels-first (``(N, C, spatial...)``, ``(O, I, spatial...)``), unpadded;
    ``out_sp`` is the output's spatial shape and ``pads`` the ``(low, high)`` pairs."""
    nsp = x.ndim - 2
    if g != 1 or b != 1 or nsp not in (1, 2):
        return None
    if x.dtype not in _DIRECT_DTYPES or x.dtype != w.dtype:
        return None
    if any(s != 1 for s in window_strides) or any(d != 1 for d in lhs_dilation):
        return None
    if x.size == 0 or w.size == 0 or 0 in out_sp:
        return None
    npos, ksize = math.prod(out_sp), math.prod(w.shape[2:])
    # The padded width of the wide grid: at most twice the useful width (the output's, or the
    # window's when the window is the larger).
    wp = x.shape[-1] + pads[-1][0] + pads[-1][1]
    if npos >= ksize:
        if wp > 2 * out_sp[-1]:
            return None
        return "col2im" if w.shape[0] < w.shape[1] else "im2col"
    if any(d != 1 for d in rhs_dilation) or wp > 2 * w.shape[-1]:
        return None
    return "window"


def _gemm_conv(x, w, out_sp, pads, rhs_dilation, out_spec, strategy):
    """Run a :func:`_gemm_strategy` convolution; returns the output in ``out_spec``'s layout."""
    from ..jit import conv_kernels  # imports numba: only when needed

    nsp = x.ndim - 2
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        # Negative padding crops: take a view of the input and pad by the non-negative parts.
        crop = tuple(np.s_[max(-lo, 0) : x.shape[2 + j] - max(-hi, 0)] for j, (lo, hi) in enumerate(pads))
        x = x[(np.s_[:], np.s_[:]) + crop]
        pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    canonical = (x.shape[0], w.shape[0]) + tuple(out_sp)
    shape = [0] * len(canonical)
    for j, ax in enumerate(out_spec):
        shape[ax] = canonical[j]
    out = np.empty(shape, x.dtype)
    view = np.transpose(out, out_spec)  # (N, O, spatial...), written in place
    if nsp == 1:  # a 1-d convolution is a 2-d one over a unit height
        x, w, view = x[:, :, None], w[:, :, None], view[:, :, None]
        pads, rhs_dilation = ((0, 0),) + pads, (1,) + tuple(rhs_dilation)
    if strategy == "window":
        conv_kernels.gemm_conv_window(x, w, pads, view)
    else:
        conv_kernels.gemm_conv(x, w, pads, tuple(rhs_dilation), view, strategy)
    return out


def _conv_impl(
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    out_dtype = np.dtype(preferred_element_type or lhs.dtype)
    cdt = _compute_dtype(lhs.dtype, preferred_element_type)
    x = np.transpose(lhs, lhs_spec).astype(cdt, copy=False)  # (N, C, spatial...)
    w = np.transpose(rhs, rhs_spec).astype(cdt, copy=False)  # (O, I, spatial...)
    nsp = x.ndim - 2
    g, b = feature_group_count, batch_group_count
    out_sp = []  # as _conv_shape, without its validation (done at bind time)
    for size, k, s, ld, rd, (lo, hi) in zip(
        x.shape[2:], w.shape[2:], window_strides, lhs_dilation, rhs_dilation, padding
    ):
        padded = (size and (size - 1) * ld + 1) + lo + hi
        k_eff = k and (k - 1) * rd + 1
        out_sp.append(0 if padded < k_eff else (padded - k_eff) // s + 1)
    strategy = _gemm_strategy(x, w, out_sp, padding, window_strides, lhs_dilation, rhs_dilation, g, b)
    if strategy is not None:
        out = _gemm_conv(x, w, out_sp, padding, rhs_dilation, out_spec, strategy)
        return out.astype(out_dtype, copy=False)
    sp_axes = tuple(range(2, 2 + nsp))
    x = dilate_pad_np(x, sp_axes, padding, lhs_dilation, 0)
    win = windows_np(x, sp_axes, w.shape[2:], window_strides, rhs_dilation)  # (N, C, P..., K...)
    n, c = win.shape[:2]
    pos = win.shape[2 : 2 + nsp]
    ks = win.shape[2 + nsp :]
    o, i = w.shape[:2]
    q = max(g, b)
    if _use_direct_loop(x, w, win.shape, window_strides, g, b):
        from ..jit.conv_kernels import grouped_conv  # imports numba: only when needed

        out = grouped_conv(x, w, pos, window_strides, rhs_dilation, g)  # (N, O, P...)
        return np.ascontiguousarray(np.transpose(out, np.argsort(out_spec))).astype(out_dtype, copy=False)
    npos = int(np.prod(pos, dtype=np.int64))
    ksize = int(np.prod(ks, dtype=np.int64))
    # Group axis Q first: from the features for feature groups, from the batch for batch groups.
    if g > 1:
        v = win.reshape((n, g, c // g) + win.shape[2:])  # (N, G, Cq, P..., K...)
        q_ax, n_ax, nq, cq = 1, 0, n, c // g
    else:
        v = win.reshape((b, n // b, c) + win.shape[2:])  # (B, Nq, C, P..., K...)
        q_ax, n_ax, nq, cq = 0, 1, n // b, c
    p_axes = tuple(range(3, 3 + nsp))
    k_axes = tuple(range(3 + nsp, 3 + 2 * nsp))
    kern = w.reshape(q, o // q, i * ksize)  # (Q, Oq, Cq*K)
    # im2col, one copy, whose innermost axes are the larger of the positions and the window:
    # the copy then runs along long (usually unit-stride) rows of the input.
    if npos >= ksize:
        cols = np.empty((q, cq) + ks + (nq,) + pos, cdt)
        cols[...] = v.transpose((q_ax, 2) + k_axes + (n_ax,) + p_axes)
        out = np.matmul(kern, cols.reshape(q, cq * ksize, nq * npos))
    else:
        cols = np.empty((q, nq) + pos + (cq,) + ks, cdt)
        cols[...] = v.transpose((q_ax, n_ax) + p_axes + (2,) + k_axes)
        out = np.matmul(kern, cols.reshape(q, nq * npos, cq * ksize).transpose(0, 2, 1))
    out = out.reshape((q, o // q, nq) + pos)  # (Q, Oq, Nq, P...): output features O = (Q, Oq)
    # One copy to the output layout: logical axis 0 (batch) is axis 2 here, axis 1 (features)
    # is axes (0, 1), spatial axis j is axis 3 + j - 2.
    perm = []
    for ax in np.argsort(out_spec):
        perm += [2] if ax == 0 else [0, 1] if ax == 1 else [int(ax) + 1]
    shape = [0] * (nsp + 2)
    for ax, size in zip(out_spec, (nq, o) + pos):
        shape[ax] = size
    return np.ascontiguousarray(out.transpose(perm)).reshape(shape).astype(out_dtype, copy=False)


def _conv_shape(
    lhs_shape,
    rhs_shape,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
):
    """Output shape, with JAX-like validation (errors name the shapes involved)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    shapes = f"lhs shape {tuple(lhs_shape)}, rhs shape {tuple(rhs_shape)}"
    if len(lhs_shape) != len(rhs_shape):
        raise ShapeError(f"{_NAME}: lhs and rhs must have the same rank ({shapes})")
    nsp = len(lhs_shape) - 2
    for what, v in (
        ("window_strides", window_strides),
        ("padding", padding),
        ("lhs_dilation", lhs_dilation),
        ("rhs_dilation", rhs_dilation),
    ):
        if len(v) != nsp:
            raise ShapeError(f"{_NAME}: {what} {tuple(v)} needs {nsp} entries, one per spatial dimension ({shapes})")
    g, b = feature_group_count, batch_group_count
    if g < 1 or b < 1:
        raise InvalidValueError(f"{_NAME}: feature_group_count and batch_group_count must be positive, got {g} and {b}")
    if g > 1 and b > 1:
        raise InvalidValueError(
            f"{_NAME}: at most one of feature_group_count ({g}) and batch_group_count ({b}) may exceed 1"
        )
    n, c = lhs_shape[lhs_spec[0]], lhs_shape[lhs_spec[1]]
    o, i = rhs_shape[rhs_spec[0]], rhs_shape[rhs_spec[1]]
    if c % g:
        raise ShapeError(
            f"{_NAME}: lhs feature dimension ({c}) must be a multiple of feature_group_count ({g}) ({shapes})"
        )
    if c // g != i:
        raise ShapeError(
            f"{_NAME}: lhs feature dimension ({c}) divided by feature_group_count ({g}) must equal "
            f"the rhs input feature dimension ({i}) ({shapes})"
        )
    if o % g:
        raise ShapeError(
            f"{_NAME}: rhs output feature dimension ({o}) must be a multiple of feature_group_count ({g}) ({shapes})"
        )
    if n % b:
        raise ShapeError(f"{_NAME}: lhs batch dimension ({n}) must be a multiple of batch_group_count ({b}) ({shapes})")
    if o % b:
        raise ShapeError(
            f"{_NAME}: rhs output feature dimension ({o}) must be a multiple of batch_group_count ({b}) ({shapes})"
        )
    lhs_sp = [lhs_shape[d] for d in lhs_spec[2:]]
    rhs_sp = [rhs_shape[d] for d in rhs_spec[2:]]
    in_eff = _dilate_shape(lhs_sp, lhs_dilation)
    k_eff = _dilate_shape(rhs_sp, rhs_dilation)
    out_sp = []
    for size, k, s, (lo, hi) in zip(in_eff, k_eff, window_strides, padding):
        padded = size + lo + hi
        if padded < 0:
            raise ShapeError(f"{_NAME}: padding {tuple(padding)} makes a spatial dimension negative ({shapes})")
        out_sp.append(0 if padded < k else (padded - k) // s + 1)
    canonical = (n // b, o) + tuple(out_sp)
    out = [0] * len(canonical)
    for j, ax in enumerate(out_spec):
        out[ax] = canonical[j]
    return tuple(out)


def _conv_abstract(
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    if lhs.dtype != rhs.dtype:
        raise DTypeError(f"{_NAME}: lhs and rhs must have equal dtypes, got {lhs.dtype} and {rhs.dtype}")
    shape = _conv_shape(
        lhs.shape,
        rhs.shape,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        batch_group_count,
    )
    return ShapedArray(shape, preferred_element_type or lhs.dtype)


# -- differentiation ----------------------------------------------------------------------------


def _conv_jvp(primals, tangents, **params):
    lhs, rhs = primals
    tl, tr = tangents
    ans = conv_general_dilated_p.bind(lhs, rhs, **params)
    out = None
    if tl is not None:
        out = conv_general_dilated_p.bind(tl, rhs, **params)
    if tr is not None:
        out = add_tangents(out, conv_general_dilated_p.bind(lhs, tr, **params))
    return ans, out


def _spec_transpose(spec):
    return (spec[1], spec[0]) + tuple(spec[2:])


def _reshape_axis_out_of(src, size1, x):
    from .shape import reshape

    shape = list(x.shape)
    shape[src : src + 1] = [size1, shape[src] // size1]
    return reshape(x, shape)


def _reshape_axis_into(src, dst, x):
    """Merge axis ``src`` into axis ``dst`` (numbered after removing ``src``) as its major part."""
    from .shape import reshape

    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    new_shape = [s for i, s in enumerate(x.shape) if i != src]
    new_shape[dst] *= x.shape[src]
    return reshape(x, new_shape, perm)


def _vjp_lhs_padding(in_shape, window_dimensions, window_strides, out_shape, padding, lhs_dilation, rhs_dilation):
    lhs_d = _dilate_shape(in_shape, lhs_dilation)
    rhs_d = _dilate_shape(window_dimensions, rhs_dilation)
    out_d = _dilate_shape(out_shape, window_strides)
    before = [k - lo - 1 for k, (lo, _) in zip(rhs_d, padding)]
    after = [i + k - 1 - o - b for i, k, o, b in zip(lhs_d, rhs_d, out_d, before)]
    return tuple(zip(before, after))


def _vjp_rhs_padding(in_shape, window_dimensions, window_strides, out_shape, padding, lhs_dilation, rhs_dilation):
    lhs_d = _dilate_shape(in_shape, lhs_dilation)
    rhs_d = _dilate_shape(window_dimensions, rhs_dilation)
    out_d = _dilate_shape(out_shape, window_strides)
    los = [lo for lo, _ in padding]
    his = [o - i + k - lo - 1 for o, i, k, lo in zip(out_d, lhs_d, rhs_d, los)]
    return tuple(zip(los, his))


def _cast_to(x, dtype):
    from .elementwise import convert_element_type

    return x if x.dtype == dtype else convert_element_type(x, dtype)


def _conv_transpose_lhs(
    g,
    rhs,
    lhs_aval,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    from .shape import rev

    lhs_spec, rhs_spec, out_spec = dimension_numbers
    rhs = _cast_to(rhs, g.dtype)
    t_rhs_spec = _spec_transpose(rhs_spec)
    groups = feature_group_count
    if feature_group_count > 1 or batch_group_count > 1:
        # Move the group axis of the kernel's output features into its input features, which
        # are the output features of the transposed convolution.
        q = max(feature_group_count, batch_group_count)
        rhs = _reshape_axis_out_of(rhs_spec[0], q, rhs)
        rhs = _reshape_axis_into(rhs_spec[0], rhs_spec[1], rhs)
        groups = q
    trans_dn = ConvDimensionNumbers(out_spec, t_rhs_spec, lhs_spec)
    pads = _vjp_lhs_padding(
        [lhs_aval.shape[d] for d in lhs_spec[2:]],
        [rhs.shape[d] for d in rhs_spec[2:]],
        window_strides,
        [g.shape[d] for d in out_spec[2:]],
        padding,
        lhs_dilation,
        rhs_dilation,
    )
    revd = rev(rhs, tuple(rhs_spec[2:]))
    out = conv_general_dilated_p.bind(
        g,
        revd,
        window_strides=lhs_dilation,
        padding=pads,
        lhs_dilation=window_strides,
        rhs_dilation=rhs_dilation,
        dimension_numbers=trans_dn,
        feature_group_count=groups,
        batch_group_count=1,
        preferred_element_type=None,
    )
    if batch_group_count > 1:
        out = _reshape_axis_out_of(lhs_spec[1], batch_group_count, out)
        out = _reshape_axis_into(lhs_spec[1], lhs_spec[0], out)
    return _cast_to(out, lhs_aval.dtype)


def _conv_transpose_rhs(
    g,
    lhs,
    rhs_aval,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    lhs = _cast_to(lhs, g.dtype)
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    lhs_t, rhs_t, out_t = map(_spec_transpose, dimension_numbers)
    # Feature groups of the forward convolution become batch groups of the kernel gradient
    # (and vice versa): each group's kernel slice only sees its own features.
    fgc, bgc = batch_group_count, feature_group_count
    trans_dn = ConvDimensionNumbers(lhs_t, out_t, rhs_t)
    pads = _vjp_rhs_padding(
        [lhs.shape[d] for d in lhs_spec[2:]],
        [rhs_aval.shape[d] for d in rhs_spec[2:]],
        window_strides,
        [g.shape[d] for d in out_spec[2:]],
        padding,
        lhs_dilation,
        rhs_dilation,
    )
    out = conv_general_dilated_p.bind(
        lhs,
        g,
        window_strides=rhs_dilation,
        padding=pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=window_strides,
        dimension_numbers=trans_dn,
        feature_group_count=fgc,
        batch_group_count=bgc,
        preferred_element_type=None,
    )
    return _cast_to(out, rhs_aval.dtype)


def _conv_transpose(ct, lhs, rhs, **params):
    if is_undefined(lhs) and is_undefined(rhs):
        raise InvalidArgumentError(
            f"{_NAME}: cannot transpose a convolution of two linear values (it is bilinear, not linear)"
        )
    if is_undefined(lhs):
        return [_conv_transpose_lhs(ct, rhs, lhs.aval, **params), None]
    if 0 in ct.shape:
        from ..transforms.jvp import zeros_like_aval

        return [None, zeros_like_aval(rhs.aval)]
    return [None, _conv_transpose_rhs(ct, lhs, rhs.aval, **params)]


conv_general_dilated_p = Primitive("conv_general_dilated")
conv_general_dilated_p.impl = _conv_impl
conv_general_dilated_p.abstract_eval = _conv_abstract
conv_general_dilated_p.jvp = _conv_jvp
conv_general_dilated_p.transpose = _conv_transpose


def _conv_batch(
    vals,
    dims,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    """vmap rule (JAX's ``_conv_general_dilated_batch_rule``): fold the vmapped axis into an existing one.

    A batched input folds into the batch dimension N; a batched kernel folds into the output
    features O; both batched become feature (or batch) groups, one per example, so every case
    is a single convolution.
    """
    lhs, rhs = vals
    lhs_bdim, rhs_bdim = dims
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    g, b = feature_group_count, batch_group_count

    def conv(new_lhs, new_rhs, fgc=g, bgc=b):
        return conv_general_dilated_p.bind(
            new_lhs,
            new_rhs,
            window_strides=window_strides,
            padding=padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=fgc,
            batch_group_count=bgc,
            preferred_element_type=preferred_element_type,
        )

    if lhs_bdim is not None and rhs_bdim is not None:
        size = lhs.shape[lhs_bdim]
        if b > 1:
            new_lhs = _reshape_axis_into(lhs_bdim, lhs_spec[0], lhs)
            b *= size
        else:
            new_lhs = _reshape_axis_into(lhs_bdim, lhs_spec[1], lhs)
            g *= size
        new_rhs = _reshape_axis_into(rhs_bdim, rhs_spec[0], rhs)
        out = conv(new_lhs, new_rhs, g, b)
        return _reshape_axis_out_of(out_spec[1], size, out), out_spec[1]
    if lhs_bdim is not None:
        size = lhs.shape[lhs_bdim]
        if b == 1:
            out = conv(_reshape_axis_into(lhs_bdim, lhs_spec[0], lhs), rhs)
        else:
            # Batch groups must stay outermost in N: split them out, put the vmapped axis
            # inside each group, and merge again.
            new_lhs = _reshape_axis_out_of(lhs_spec[0] + int(lhs_bdim <= lhs_spec[0]), b, lhs)
            new_lhs = _reshape_axis_into(lhs_bdim + int(lhs_spec[0] < lhs_bdim), lhs_spec[0] + 1, new_lhs)
            new_lhs = _reshape_axis_into(lhs_spec[0], lhs_spec[0], new_lhs)
            out = conv(new_lhs, rhs)
        return _reshape_axis_out_of(out_spec[0], size, out), out_spec[0]
    size = rhs.shape[rhs_bdim]
    if g == 1 and b == 1:
        out = conv(lhs, _reshape_axis_into(rhs_bdim, rhs_spec[0], rhs))
        return _reshape_axis_out_of(out_spec[1], size, out), out_spec[1]
    # Groups must stay outermost in O: factor them out of the kernel's output features, fold
    # the vmapped axis into what remains, put the groups back; undo the same on the output.
    q = max(g, b)
    new_rhs = _reshape_axis_out_of(rhs_spec[0] + int(rhs_bdim <= rhs_spec[0]), q, rhs)
    new_rhs = _reshape_axis_into(rhs_bdim + int(rhs_spec[0] < rhs_bdim), rhs_spec[0] + 1, new_rhs)
    new_rhs = _reshape_axis_into(rhs_spec[0], rhs_spec[0], new_rhs)
    out = conv(lhs, new_rhs)
    out = _reshape_axis_out_of(out_spec[1], q, out)
    out = _reshape_axis_out_of(out_spec[1] + 1, size, out)
    out = _reshape_axis_into(out_spec[1], out_spec[1] + 1, out)
    return out, out_spec[1]


conv_general_dilated_p.batch = _conv_batch


# -- public API ----------------------------------------------------------------------------------


def conv_general_dilated(
    lhs,
    rhs,
    window_strides: Sequence[int],
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
):
    """General n-d convolution with JAX's (XLA's) semantics.

    Computes a cross-correlation (no kernel flip), as JAX and PyTorch do.

    Args:
        lhs: input, rank ``n + 2`` (batch, feature and ``n`` spatial dimensions in the layout
            given by ``dimension_numbers``).
        rhs: kernel, rank ``n + 2`` (output feature, input feature and spatial dimensions).
        window_strides: ``n`` strides.
        padding: ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'`` or ``n`` ``(low, high)`` pairs (negative
            values crop).
        lhs_dilation: ``n`` input dilation factors (transposed convolution), default 1.
        rhs_dilation: ``n`` kernel dilation factors (atrous convolution), default 1.
        dimension_numbers: ``None`` (``NCHW``/``OIHW``/``NCHW``), a :class:`ConvDimensionNumbers` or
            three layout strings such as ``("NHWC", "HWIO", "NHWC")``.
        feature_group_count: split the input features into this many groups (grouped and depthwise
            convolution).
        batch_group_count: split the batch into this many groups, each convolved with its slice of
            the output features (used by the kernel gradient of grouped convolutions).
        precision: accepted for JAX compatibility and ignored.
        preferred_element_type: result (and accumulation) dtype.

    Returns:
        The convolution, laid out as ``dimension_numbers``' output spec.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> x, w = fnp.ones((1, 1, 4, 4)), fnp.ones((2, 1, 3, 3))
        >>> lax.conv_general_dilated(x, w, (1, 1), "SAME").shape
        (1, 2, 4, 4)
        >>> lax.conv_general_dilated(x, w, (1, 1), "VALID")[0, 0]
        Array([[9., 9.],
               [9., 9.]], dtype=float32)
    """
    lhs, rhs = as_array(lhs, _NAME), as_array(rhs, _NAME)
    dn = conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    nsp = lhs.ndim - 2
    strides = _int_tuple(window_strides, nsp, 1, "window_strides", _NAME)
    lhs_dil = _int_tuple(lhs_dilation, nsp, 1, "lhs_dilation", _NAME)
    rhs_dil = _int_tuple(rhs_dilation, nsp, 1, "rhs_dilation", _NAME)
    if isinstance(padding, str):
        rhs_sp = [rhs.shape[d] for d in dn.rhs_spec[2:]]
        try:
            pads = padtype_to_pads(
                [lhs.shape[d] for d in dn.lhs_spec[2:]], _dilate_shape(rhs_sp, rhs_dil), strides, padding
            )
        except ValueError as e:
            raise InvalidValueError(f"{_NAME}: {e} (lhs shape {lhs.shape}, rhs shape {rhs.shape})") from None
        pads = tuple(pads)
    else:
        pads = _explicit_padding(padding, nsp, _NAME)
    if lhs.dtype != rhs.dtype:
        from ..core.dtypes import result_type
        from .elementwise import convert_element_type

        dt = result_type(lhs.dtype, rhs.dtype)
        lhs, rhs = convert_element_type(lhs, dt), convert_element_type(rhs, dt)
    if lhs.dtype == np.bool_:
        raise DTypeError(f"{_NAME} does not accept bool operands (lhs shape {lhs.shape}, rhs shape {rhs.shape})")
    pet = None if preferred_element_type is None else np.dtype(preferred_element_type)
    if pet == lhs.dtype:
        pet = None
    params = dict(
        window_strides=strides,
        padding=pads,
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil,
        dimension_numbers=dn,
        feature_group_count=int(feature_group_count),
        batch_group_count=int(batch_group_count),
        preferred_element_type=pet,
    )
    _conv_abstract(lhs.aval, rhs.aval, **params)  # validate here: eager evaluation skips abstract_eval
    return conv_general_dilated_p.bind(lhs, rhs, **params)


def conv(lhs, rhs, window_strides, padding, precision=None, preferred_element_type=None):
    """Channels-first convolution (``NC...`` input, ``OI...`` kernel) without dilation.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.conv(fnp.ones((2, 3, 8)), fnp.ones((4, 3, 3)), (2,), "SAME").shape
        (2, 4, 4)
    """
    return conv_general_dilated(
        lhs, rhs, window_strides, padding, precision=precision, preferred_element_type=preferred_element_type
    )


def conv_with_general_padding(
    lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, precision=None, preferred_element_type=None
):
    """Channels-first convolution with explicit padding and input/kernel dilation.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.conv_with_general_padding(fnp.ones((1, 1, 5, 5)), fnp.ones((1, 1, 3, 3)), (1, 1),
        ...                               [(1, 1), (0, 0)], (1, 1), (2, 2)).shape
        (1, 1, 3, 1)
    """
    return conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def _conv_transpose_padding(k, s, padding):
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else _ceil_div(pad_len, 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    else:
        raise InvalidValueError(
            f"lax.conv_transpose: padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}"
        )
    return pad_a, pad_len - pad_a


def conv_transpose(
    lhs,
    rhs,
    strides,
    padding,
    rhs_dilation=None,
    dimension_numbers=None,
    transpose_kernel: bool = False,
    precision=None,
    preferred_element_type=None,
):
    """Transposed ("deconvolution") convolution, with JAX's ``lax.conv_transpose`` semantics.

    Implemented as a convolution with ``lhs_dilation = strides``. Default layouts are
    channels-last (``NHWC``/``HWIO``), as in JAX; ``transpose_kernel=True`` flips the kernel
    spatially and swaps its feature axes (the gradient-of-convolution convention, as
    PyTorch's ``conv_transpose2d``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.conv_transpose(fnp.ones((1, 4, 4, 2)), fnp.ones((3, 3, 2, 5)), (2, 2), "SAME").shape
        (1, 8, 8, 5)
    """
    where = "lax.conv_transpose"
    lhs, rhs = as_array(lhs, where), as_array(rhs, where)
    nd = lhs.ndim
    if dimension_numbers is None:
        defaults = {
            2: ("NC", "IO", "NC"),
            3: ("NHC", "HIO", "NHC"),
            4: ("NHWC", "HWIO", "NHWC"),
            5: ("NHWDC", "HWDIO", "NHWDC"),
        }
        if nd not in defaults or rhs.ndim != nd:
            raise InvalidValueError(
                f"{where}: no default dimension_numbers for lhs shape {lhs.shape} and rhs shape "
                f"{rhs.shape}; pass dimension_numbers"
            )
        dimension_numbers = defaults[nd]
    dn = conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    nsp = nd - 2
    strides = _int_tuple(strides, nsp, 1, "strides", where)
    rhs_dil = _int_tuple(rhs_dilation, nsp, 1, "rhs_dilation", where)
    if isinstance(padding, str):
        k_eff = _dilate_shape([rhs.shape[d] for d in dn.rhs_spec[2:]], rhs_dil)
        pads = [_conv_transpose_padding(k, s, padding.upper()) for k, s in zip(k_eff, strides)]
    else:
        pads = padding
    if transpose_kernel:
        from .shape import rev, transpose

        rhs = rev(rhs, tuple(dn.rhs_spec[2:]))
        perm = list(range(nd))
        perm[dn.rhs_spec[0]], perm[dn.rhs_spec[1]] = perm[dn.rhs_spec[1]], perm[dn.rhs_spec[0]]
        rhs = transpose(rhs, perm)
    return conv_general_dilated(
        lhs,
        rhs,
        (1,) * nsp,
        pads,
        strides,
        rhs_dil,
        dn,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
