"""``dot_general``: batched tensor contraction (the one matrix-product primitive).

``dimension_numbers = ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))``. The output
axes are batch, then lhs free, then rhs free (as XLA/JAX). Evaluation reshapes to a batched
matrix product so NumPy's BLAS does the work.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array
from ..core.dtypes import bfloat16, float16
from ..core.errors import InvalidArgumentError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import add_tangents
from ..transforms.transpose import is_undefined
from .shape import transpose


def _free(ndim, contract, batch):
    return [d for d in range(ndim) if d not in contract and d not in batch]


@functools.lru_cache(maxsize=4096)
def _contraction_plan(lhs_shape, rhs_shape, dimension_numbers):
    """How to evaluate a dot_general as one (batched) matrix product: the operand permutations
    (None when already in order), the 3-D shapes (B, M, K) and (B, K, N), and the output shape.
    Cached per shapes, so a call does only the array work."""
    (lc, rc), (lb, rb) = dimension_numbers
    lf, rf = _free(len(lhs_shape), lc, lb), _free(len(rhs_shape), rc, rb)
    lperm, rperm = list(lb) + lf + list(lc), list(rb) + list(rc) + rf
    bshape = [lhs_shape[d] for d in lb]
    B = int(np.prod(bshape, dtype=np.int64))
    M = int(np.prod([lhs_shape[d] for d in lf], dtype=np.int64))
    N = int(np.prod([rhs_shape[d] for d in rf], dtype=np.int64))
    K = int(np.prod([lhs_shape[d] for d in lc], dtype=np.int64))
    out_shape = tuple(bshape + [lhs_shape[d] for d in lf] + [rhs_shape[d] for d in rf])
    lperm = None if lperm == sorted(lperm) else tuple(lperm)
    rperm = None if rperm == sorted(rperm) else tuple(rperm)
    # Without batch axes, operands whose contracting axes come first (lhs) or last (rhs) are
    # passed to BLAS as transposed 2-D views instead of being copied into order.
    lhs_t = not lb and list(lc) + lf == list(range(len(lhs_shape)))
    rhs_t = not rb and rf + list(rc) == list(range(len(rhs_shape)))
    return lperm, rperm, (B, M, K), (B, K, N), out_shape, lhs_t, rhs_t


def _dot_general_impl(lhs, rhs, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    out_dtype = preferred_element_type or lhs.dtype
    if lhs.dtype in (float16, bfloat16):  # accumulate low-precision products in float32
        lhs, rhs = lhs.astype(np.float32), rhs.astype(np.float32)
    if not lb and lhs.ndim == 2 and rhs.ndim == 2 and len(lc) == 1:
        # Plain matrix product: transposed operands are passed as views, so BLAS reads
        # them with its transpose flags instead of copying.
        return np.dot(lhs if lc == (1,) else lhs.T, rhs if rc == (0,) else rhs.T).astype(out_dtype, copy=False)
    lperm, rperm, lshape, rshape, out_shape, lhs_t, rhs_t = _contraction_plan(lhs.shape, rhs.shape, dimension_numbers)
    if (lhs_t or rhs_t) and lshape[2] > 1:
        _, M, K = lshape
        N = rshape[2]
        L = lhs.reshape(K, M).T if lhs_t else (lhs if lperm is None else lhs.transpose(lperm)).reshape(M, K)
        R = rhs.reshape(N, K).T if rhs_t else (rhs if rperm is None else rhs.transpose(rperm)).reshape(K, N)
        return np.dot(L, R).reshape(out_shape).astype(out_dtype, copy=False)
    L = (lhs if lperm is None else lhs.transpose(lperm)).reshape(lshape)
    R = (rhs if rperm is None else rhs.transpose(rperm)).reshape(rshape)
    if lshape[2] == 1:
        # With nothing to contract (outer products, e.g. per-example weight gradients) a broadcast
        # multiply is an order of magnitude faster than a batched matmul with K = 1.
        out = L * R
    elif lshape[0] == 1:
        out = np.dot(L[0], R[0])  # one matrix product: np.dot has less overhead than matmul
    else:
        out = np.matmul(L, R)
    return out.reshape(out_shape).astype(out_dtype, copy=False)


def _dot_general_abstract(lhs, rhs, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ShapeError(f"lax.dot_general: contracting/batch dimension lists differ in length: {dimension_numbers}")
    for a, b, what in [(lc, rc, "contracting"), (lb, rb, "batch")]:
        for i, j in zip(a, b):
            if not (0 <= i < lhs.ndim and 0 <= j < rhs.ndim) or lhs.shape[i] != rhs.shape[j]:
                raise ShapeError(
                    f"lax.dot_general: {what} dimensions {a} of lhs {lhs.shape} and {b} of rhs {rhs.shape} do not match"
                )
    if lhs.dtype != rhs.dtype:
        raise InvalidArgumentError(f"lax.dot_general: operands must have equal dtypes, got {lhs.dtype} and {rhs.dtype}")
    lf, rf = _free(lhs.ndim, lc, lb), _free(rhs.ndim, rc, rb)
    shape = [lhs.shape[d] for d in lb] + [lhs.shape[d] for d in lf] + [rhs.shape[d] for d in rf]
    return ShapedArray(tuple(shape), preferred_element_type or lhs.dtype)


def _ranges_like(*xs):
    start = 0
    for x in xs:
        yield list(range(start, start + len(x)))
        start += len(x)


def _transpose_lhs(g, y, x_ndim, y_ndim, dimension_numbers, preferred_element_type, swap_ans=False):
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    x_kept = _free(x_ndim, x_contract, x_batch)
    y_kept = _free(y_ndim, y_contract, y_batch)
    if swap_ans:
        ans_batch, ans_y, _ = _ranges_like(x_batch, y_kept, x_kept)
    else:
        ans_batch, _, ans_y = _ranges_like(x_batch, x_kept, y_kept)
    dims = ((tuple(ans_y), tuple(y_kept)), (tuple(ans_batch), tuple(y_batch)))
    x_contract_sorted_by_y = list(np.take(x_contract, np.argsort(y_contract))) if x_contract else []
    out_axes = np.argsort(list(x_batch) + x_kept + x_contract_sorted_by_y)
    return transpose(
        dot_general_p.bind(g, y, dimension_numbers=dims, preferred_element_type=None), tuple(int(a) for a in out_axes)
    )


def _dot_general_transpose(ct, x, y, dimension_numbers, preferred_element_type):
    (xc, yc), (xb, yb) = dimension_numbers
    x_ndim = x.aval.ndim if is_undefined(x) else x.ndim
    y_ndim = y.aval.ndim if is_undefined(y) else y.ndim
    if is_undefined(x) and is_undefined(y):
        raise InvalidArgumentError("lax.dot_general: transpose of a product of two linear values (not linear)")
    if is_undefined(x):
        out = _transpose_lhs(ct, y, x_ndim, y_ndim, dimension_numbers, preferred_element_type)
        return [out.astype(x.aval.dtype) if out.dtype != x.aval.dtype else out, None]
    swapped = ((yc, xc), (yb, xb))
    out = _transpose_lhs(ct, x, y_ndim, x_ndim, swapped, preferred_element_type, swap_ans=True)
    return [None, out.astype(y.aval.dtype) if out.dtype != y.aval.dtype else out]


def _dot_general_jvp(primals, tangents, dimension_numbers, preferred_element_type):
    x, y = primals
    tx, ty = tangents
    kw = dict(dimension_numbers=dimension_numbers, preferred_element_type=preferred_element_type)
    ans = dot_general_p.bind(x, y, **kw)
    out = None
    if tx is not None:
        out = dot_general_p.bind(tx, y, **kw)
    if ty is not None:
        out = add_tangents(out, dot_general_p.bind(x, ty, **kw))
    return ans, out


dot_general_p = Primitive("dot_general")
dot_general_p.impl = _dot_general_impl
dot_general_p.abstract_eval = _dot_general_abstract
dot_general_p.jvp = _dot_general_jvp
dot_general_p.transpose = _dot_general_transpose


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """General tensor contraction with JAX's ``dimension_numbers``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.dot_general(fnp.ones((2, 3)), fnp.ones((3, 4)), (((1,), (0,)), ((), ()))).shape
        (2, 4)
    """
    lhs, rhs = as_array(lhs, "lax.dot_general"), as_array(rhs, "lax.dot_general")
    (lc, rc), (lb, rb) = dimension_numbers
    dn = (
        (tuple(int(d) for d in lc), tuple(int(d) for d in rc)),
        (tuple(int(d) for d in lb), tuple(int(d) for d in rb)),
    )
    pet = None if preferred_element_type is None else np.dtype(preferred_element_type)
    if lhs.dtype != rhs.dtype:
        from ..core.dtypes import result_type
        from .elementwise import convert_element_type

        dt = result_type(lhs.dtype, rhs.dtype)
        lhs, rhs = convert_element_type(lhs, dt), convert_element_type(rhs, dt)
    # Eager evaluation skips abstract_eval; check here (funcgrad.numpy binds the primitive directly).
    dot_general_p.abstract_eval(lhs.aval, rhs.aval, dimension_numbers=dn, preferred_element_type=pet)
    return dot_general_p.bind(lhs, rhs, dimension_numbers=dn, preferred_element_type=pet)


def dot(lhs, rhs, precision=None, preferred_element_type=None):
    """Vector/matrix product of rank-1 or rank-2 operands (``lax.dot``)."""
    lhs, rhs = as_array(lhs), as_array(rhs)
    return dot_general(lhs, rhs, (((lhs.ndim - 1,), (0,)), ((), ())), precision, preferred_element_type)


def _dot_general_batch(vals, dims, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    x, y = vals
    dx, dy = dims
    kw = dict(preferred_element_type=preferred_element_type)
    if dx is not None and dy is not None:
        # Both batched: the vmapped axis becomes a new leading batch dimension.
        from ._batching import bdim_to_front

        x, y = bdim_to_front(x, dx, None), bdim_to_front(y, dy, None)
        dn = (
            (tuple(c + 1 for c in lc), tuple(c + 1 for c in rc)),
            ((0,) + tuple(b + 1 for b in lb), (0,) + tuple(b + 1 for b in rb)),
        )
        return dot_general_p.bind(x, y, dimension_numbers=dn, **kw), 0
    from ._batching import shift_axis

    if dx is not None:
        # The batch axis of lhs is one more free dimension of lhs.
        lc2, lb2 = tuple(shift_axis(c, dx) for c in lc), tuple(shift_axis(b, dx) for b in lb)
        free = [a for a in range(x.ndim) if a not in lc2 and a not in lb2]
        out_dim = len(lb) + free.index(dx)
        return dot_general_p.bind(x, y, dimension_numbers=((lc2, rc), (lb2, rb)), **kw), out_dim
    rc2, rb2 = tuple(shift_axis(c, dy) for c in rc), tuple(shift_axis(b, dy) for b in rb)
    free = [a for a in range(y.ndim) if a not in rc2 and a not in rb2]
    n_lhs_free = x.ndim - len(lc) - len(lb)
    out_dim = len(lb) + n_lhs_free + free.index(dy)
    return dot_general_p.bind(x, y, dimension_numbers=((lc, rc2), (lb, rb2)), **kw), out_dim


dot_general_p.batch = _dot_general_batch
