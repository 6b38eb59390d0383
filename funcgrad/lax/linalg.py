"""Linear-algebra primitives (``funcgrad.lax.linalg``), after JAX's ``jax.lax.linalg``.

Every primitive works on stacks of matrices ``(..., M, N)`` whose leading (batch) dims are
equal across operands (broadcasting happens in :mod:`funcgrad.numpy.linalg`) and is
evaluated with ``numpy.linalg``. Nonlinear primitives get a JVP rule written with funcgrad
primitives only (``dot_general``, ``triangular_solve``, ``solve``, elementwise ops), so the
rules are themselves differentiable and derivatives of any order work; the primitives that
are linear in an operand (``triangular_solve`` and ``solve`` in ``b``) get a transpose rule,
which is all reverse mode needs (JVP + partial evaluation + transpose).

Primitives: ``cholesky``, ``triangular_solve``, ``solve`` (LU), ``det``, ``slogdet``, ``qr``,
``eigh``, ``svd``, ``pinv``.

Numerical failures (a singular matrix to ``solve``, a matrix that is not positive definite to
``cholesky``) never raise: as in JAX, the affected matrices of a batch come out as NaN and the
others are unaffected, so the functions behave the same eagerly and under transformations.
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.dtypes import bfloat16, float16, is_inexact
from ..core.errors import DTypeError, InvalidArgumentError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import add_tangents
from ..transforms.transpose import is_undefined
from ._batching import move_bdim, multi_output_front_rule
from .dot import dot_general_p
from .elementwise import (
    add,
    conj,
    convert_element_type,
    div,
    eq,
    integer_pow,
    mul,
    neg,
    real,
    sub,
)
from .reductions import reduce_sum
from .shape import broadcast_in_dim, concatenate, slice_in_dim, transpose

__all__ = ["cholesky", "det", "eigh", "pinv", "qr", "slogdet", "solve", "svd", "triangular_solve"]


# -- helpers on numpy arrays (impls) ----------------------------------------------------------

_LOW_PRECISION = tuple(d for d in (float16, bfloat16) if d is not None)


def _up(x):
    """LAPACK has no half-precision routines: compute float16/bfloat16 in float32."""
    return x.astype(np.float32) if x.dtype in _LOW_PRECISION else x


def _down(y, dtype):
    """Cast a LAPACK result back to the dtype of the (possibly half-precision) input."""
    if dtype in _LOW_PRECISION and y.dtype.kind == "f":
        return y.astype(dtype)
    return y


def _per_matrix(fn, out_shapes, out_dtypes, *args):
    """Apply ``fn`` matrix by matrix, filling the outputs of matrices where it fails with NaN.

    Used only after the batched numpy call raised ``LinAlgError``: one bad matrix in a batch
    must not poison the others, nor raise (JAX returns non-finite values, never raises).
    """
    batch = args[0].shape[:-2]
    outs = [np.full(batch + s, np.nan, dtype=d) for s, d in zip(out_shapes, out_dtypes)]
    for idx in np.ndindex(*batch):
        try:
            res = fn(*(a[idx] for a in args))
        except np.linalg.LinAlgError:
            continue
        res = res if isinstance(res, tuple) else (res,)
        for o, r in zip(outs, res):
            o[idx] = r
    return outs


def _np_solve(a, b):
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return _per_matrix(np.linalg.solve, [b.shape[-2:]], [np.result_type(a, b)], a, b)[0]


def _swap(x):
    return np.swapaxes(x, -1, -2)


# -- helpers on funcgrad values (rules) -------------------------------------------------------


def _mm(a, b):
    """Batched matrix product of ``(..., m, k)`` and ``(..., k, n)`` with equal batch dims."""
    nb = a.ndim - 2
    bd = tuple(range(nb))
    return dot_general_p.bind(a, b, dimension_numbers=(((nb + 1,), (nb,)), (bd, bd)), preferred_element_type=None)


def _T(x):
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm)


def _is_complex(x):
    return np.dtype(x.dtype).kind == "c"


def _H(x):
    return conj(_T(x)) if _is_complex(x) else _T(x)


def _const(arr, shape, dtype):
    """A constant (no derivative) broadcast to ``shape``."""
    return wrap_ndarray(np.broadcast_to(np.asarray(arr, dtype), shape))


def _eye(shape, dtype):
    return _const(np.eye(shape[-2], shape[-1]), shape, dtype)


def _tril(x, k=0):
    n, m = x.shape[-2:]
    return mul(x, _const(np.tri(n, m, k), x.shape, x.dtype))


def _diag(x):
    """The diagonal ``(..., n)`` of square matrices ``(..., n, n)`` (linear, transposable)."""
    return reduce_sum(mul(x, _eye(x.shape, x.dtype)), (x.ndim - 1,))


def _trace(x):
    return reduce_sum(mul(x, _eye(x.shape, x.dtype)), (x.ndim - 2, x.ndim - 1))


def _rows(v, n):
    """``out[..., i, j] = v[..., j]`` for ``i < n`` (v[..., None, :] broadcast)."""
    nb = v.ndim - 1
    return broadcast_in_dim(v, v.shape[:-1] + (n, v.shape[-1]), tuple(range(nb)) + (nb + 1,))


def _cols(v, n):
    """``out[..., i, j] = v[..., i]`` for ``j < n`` (v[..., :, None] broadcast)."""
    nb = v.ndim - 1
    return broadcast_in_dim(v, v.shape + (n,), tuple(range(nb + 1)))


def _embed_diag(v):
    n = v.shape[-1]
    return mul(_cols(v, n), _eye(v.shape + (n,), v.dtype))


def _to(x, dtype):
    return convert_element_type(x, dtype) if x.dtype != dtype else x


def _check_matrix(name, aval, square=False, what="a"):
    if aval.ndim < 2:
        raise ShapeError(f"{name}: {what} must have at least 2 dimensions (..., M, N), got shape {aval.shape}")
    if square and aval.shape[-1] != aval.shape[-2]:
        raise ShapeError(f"{name}: {what} must be a stack of square matrices (..., M, M), got shape {aval.shape}")
    if not is_inexact(aval.dtype):
        raise DTypeError(f"{name}: {what} must have a floating or complex dtype, got {aval.dtype.name}")


def _real_dtype(dtype):
    return np.finfo(dtype).dtype if np.dtype(dtype).kind == "c" else np.dtype(dtype)


# -- triangular_solve -----------------------------------------------------------------------------


def _op_a(a, lower, transpose_a, conjugate_a, unit_diagonal):
    """The matrix a triangular solve uses: one triangle of ``a``, transformed as asked."""
    n = a.shape[-1]
    keep = np.tri(n, dtype=bool) if lower else np.tri(n, dtype=bool).T
    a = np.where(keep, a, np.zeros((), a.dtype))
    if unit_diagonal:
        a = np.where(np.eye(n, dtype=bool), np.ones((), a.dtype), a)
    if conjugate_a:
        a = np.conj(a)
    return _swap(a) if transpose_a else a


def _triangular_solve_impl(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    dtype = a.dtype
    op = _op_a(_up(a), lower, transpose_a, conjugate_a, unit_diagonal)
    b = _up(b)
    # numpy.linalg has no triangular solver; LU with partial pivoting of a triangular matrix is
    # backward stable too, and costs about one matrix product more.
    out = _np_solve(op, b) if left_side else _swap(_np_solve(_swap(op), _swap(b)))
    return _down(out, dtype)


def _triangular_solve_abstract(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    name = "lax.linalg.triangular_solve"
    _check_matrix(name, a, square=True)
    _check_matrix(name, b, what="b")
    if a.dtype != b.dtype:
        raise DTypeError(f"{name}: a and b must have equal dtypes, got {a.dtype.name} and {b.dtype.name}")
    k = b.shape[-2] if left_side else b.shape[-1]
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != k:
        side = "b.shape[-2]" if left_side else "b.shape[-1]"
        raise ShapeError(
            f"{name}: a {a.shape} and b {b.shape} do not match (need equal batch dims and "
            f"a.shape[-1] == {side} with left_side={left_side})"
        )
    return ShapedArray(b.shape, b.dtype)


def _triangular_solve_jvp(primals, tangents, **params):
    a, b = primals
    ta, tb = tangents
    ans = triangular_solve_p.bind(a, b, **params)
    out = None if tb is None else triangular_solve_p.bind(a, tb, **params)
    if ta is not None:
        out = add_tangents(out, _triangular_solve_jvp_a(ta, ans, a, **params))
    return ans, out


def _triangular_solve_jvp_a(g_a, ans, a, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    # d(op(A)^-1 B) = -op(A)^-1 op(dA) op(A)^-1 B, with dA restricted to the triangle that is read.
    n = a.shape[-1]
    k = 1 if unit_diagonal else 0
    mask = np.tri(n, n, -k) if lower else 1 - np.tri(n, n, k - 1)
    g_a = neg(mul(g_a, _const(mask, g_a.shape, g_a.dtype)))
    g_a = _T(g_a) if transpose_a else g_a
    g_a = conj(g_a) if conjugate_a and _is_complex(g_a) else g_a
    params = dict(
        left_side=left_side, lower=lower, transpose_a=transpose_a, conjugate_a=conjugate_a, unit_diagonal=unit_diagonal
    )
    m, p = ans.shape[-2:]
    # A triangular solve costs about as much as a product: choose the cheaper association.
    if left_side:
        if m > p:
            return triangular_solve_p.bind(a, _mm(g_a, ans), **params)
        return _mm(triangular_solve_p.bind(a, g_a, **params), ans)
    if m < p:
        return triangular_solve_p.bind(a, _mm(ans, g_a), **params)
    return _mm(ans, triangular_solve_p.bind(a, g_a, **params))


def _triangular_solve_transpose(ct, a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    # Linear in b only (like div in its numerator): the transpose solves with op(A)^T.
    if is_undefined(a):
        raise InvalidArgumentError(
            "lax.linalg.triangular_solve: transpose with respect to the matrix a (the solve is linear only in b)"
        )
    ct_b = triangular_solve_p.bind(
        a,
        ct,
        left_side=left_side,
        lower=lower,
        transpose_a=not transpose_a,
        conjugate_a=conjugate_a,
        unit_diagonal=unit_diagonal,
    )
    return [None, ct_b]


triangular_solve_p = Primitive("triangular_solve")
triangular_solve_p.impl = _triangular_solve_impl
triangular_solve_p.abstract_eval = _triangular_solve_abstract
triangular_solve_p.jvp = _triangular_solve_jvp
triangular_solve_p.transpose = _triangular_solve_transpose


def triangular_solve(a, b, *, left_side=False, lower=False, transpose_a=False, conjugate_a=False, unit_diagonal=False):
    """Solve ``op(a) @ x = b`` (``left_side=True``) or ``x @ op(a) = b`` for triangular ``a``.

    Only the ``lower`` (or upper) triangle of ``a`` is read; ``op`` transposes and/or conjugates
    it as asked, and ``unit_diagonal`` assumes ones on the diagonal. JAX's signature and
    defaults (note ``left_side=False``).

    Args:
        a: ``(..., k, k)`` triangular matrices.
        b: ``(..., m, n)`` right-hand sides, with ``k == m`` if ``left_side`` else ``k == n``.

    Returns:
        ``x`` with ``b``'s shape.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.triangular_solve(fnp.array([[2.0, 0.0], [1.0, 1.0]]), fnp.array([[2.0], [3.0]]),
        ...                             left_side=True, lower=True)
        Array([[1.],
               [2.]], dtype=float32)
    """
    a, b = as_array(a, "lax.linalg.triangular_solve"), as_array(b, "lax.linalg.triangular_solve")
    params = dict(
        left_side=bool(left_side),
        lower=bool(lower),
        transpose_a=bool(transpose_a),
        conjugate_a=bool(conjugate_a),
        unit_diagonal=bool(unit_diagonal),
    )
    # Eager evaluation skips abstract_eval: validate here so errors name the function and shapes.
    _triangular_solve_abstract(a.aval, b.aval, **params)
    return triangular_solve_p.bind(a, b, **params)


# -- solve (LU) ------------------------------------------------------------------------------------


def _solve_impl(a, b):
    return _down(_np_solve(_up(a), _up(b)), a.dtype)


def _solve_abstract(a, b):
    name = "solve"
    _check_matrix(name, a, square=True)
    _check_matrix(name, b, what="b")
    if a.dtype != b.dtype:
        raise DTypeError(f"{name}: a and b must have equal dtypes, got {a.dtype.name} and {b.dtype.name}")
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"{name}: a {a.shape} and b {b.shape} do not match (need a (..., M, M) and "
            f"b (..., M, K) with equal batch dims)"
        )
    return ShapedArray(b.shape, b.dtype)


def _solve_jvp(primals, tangents):
    # x = A^-1 b  =>  dx = A^-1 (db - dA x): one more solve with the same A, linear in its rhs.
    a, b = primals
    ta, tb = tangents
    ans = solve_p.bind(a, b)
    rhs = tb
    if ta is not None:
        rhs = add_tangents(rhs, neg(_mm(ta, ans)))
    return ans, solve_p.bind(a, rhs)


def _solve_transpose(ct, a, b):
    if is_undefined(a):
        raise InvalidArgumentError("solve: transpose with respect to the matrix a (the solve is linear only in b)")
    # The transpose of b -> A^-1 b is (A^-1)^T = (A^T)^-1 (a plain transpose, no conjugation).
    return [None, solve_p.bind(_T(a), ct)]


solve_p = Primitive("solve")
solve_p.impl = _solve_impl
solve_p.abstract_eval = _solve_abstract
solve_p.jvp = _solve_jvp
solve_p.transpose = _solve_transpose


def solve(a, b):
    """Solve ``a @ x = b`` for stacks of square ``a (..., M, M)`` and ``b (..., M, K)`` (equal batch dims).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.solve(fnp.array([[2.0, 0.0], [0.0, 4.0]]), fnp.array([[2.0], [2.0]]))
        Array([[1. ],
               [0.5]], dtype=float32)
    """
    a, b = as_array(a, "solve"), as_array(b, "solve")
    _solve_abstract(a.aval, b.aval)
    return solve_p.bind(a, b)


# -- det / slogdet ---------------------------------------------------------------------------------


def _det_abstract(a):
    _check_matrix("det", a, square=True)
    return ShapedArray(a.shape[:-2], a.dtype)


def _det_jvp(primals, tangents):
    # d det(A) = det(A) tr(A^-1 dA) (Jacobi's formula).
    (a,), (ta,) = primals, tangents
    ans = det_p.bind(a)
    return ans, mul(ans, _trace(solve_p.bind(a, ta)))


det_p = Primitive("det")
det_p.impl = lambda a: _down(np.asarray(np.linalg.det(_up(a))), a.dtype)
det_p.abstract_eval = _det_abstract
det_p.jvp = _det_jvp


def det(a):
    """Determinant of square matrices ``(..., M, M)``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.det(fnp.array([[2.0, 1.0], [1.0, 1.0]]))
        Array(1., dtype=float32)
    """
    a = as_array(a, "det")
    _det_abstract(a.aval)
    return det_p.bind(a)


def _slogdet_impl(a):
    sign, logabs = np.linalg.slogdet(_up(a))
    return [_down(np.asarray(sign), a.dtype), _down(np.asarray(logabs), a.dtype)]


def _slogdet_abstract(a):
    _check_matrix("slogdet", a, square=True)
    return [ShapedArray(a.shape[:-2], a.dtype), ShapedArray(a.shape[:-2], _real_dtype(a.dtype))]


def _slogdet_jvp(primals, tangents):
    (a,), (ta,) = primals, tangents
    sign, logabs = slogdet_p.bind(a)
    tr = _trace(solve_p.bind(a, ta))
    if not _is_complex(a):
        return [sign, logabs], [None, tr]  # the sign of a real determinant is locally constant
    # d log det = tr(A^-1 dA) = d log|det| + i d arg(det).
    dsign = mul(sign, sub(tr, _to(real(tr), tr.dtype)))
    return [sign, logabs], [dsign, real(tr)]


slogdet_p = Primitive("slogdet", multiple_results=True)
slogdet_p.impl = _slogdet_impl
slogdet_p.abstract_eval = _slogdet_abstract
slogdet_p.jvp = _slogdet_jvp


def slogdet(a):
    """``(sign, log|det|)`` of square matrices ``(..., M, M)``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.slogdet(fnp.array([[-2.0, 0.0], [0.0, 1.0]]))[0]
        Array(-1., dtype=float32)
    """
    a = as_array(a, "slogdet")
    _slogdet_abstract(a.aval)
    sign, logabs = slogdet_p.bind(a)
    return sign, logabs


# -- cholesky ----------------------------------------------------------------------------------------


def _np_cholesky(a):
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return _per_matrix(np.linalg.cholesky, [a.shape[-2:]], [a.dtype], a)[0]


def _cholesky_abstract(a):
    _check_matrix("lax.linalg.cholesky", a, square=True)
    return ShapedArray(a.shape, a.dtype)


def _cholesky_jvp(primals, tangents):
    # L dL^H + dL L^H = dS  =>  dL = L phi(L^-1 dS L^-H), phi = lower triangle with halved diagonal.
    (x,), (sigma_dot,) = primals, tangents
    L = cholesky_p.bind(x)
    sigma_dot = mul(add(sigma_dot, _H(sigma_dot)), 0.5)
    tmp = triangular_solve_p.bind(
        L, sigma_dot, left_side=False, lower=True, transpose_a=True, conjugate_a=True, unit_diagonal=False
    )
    inner = triangular_solve_p.bind(
        L, tmp, left_side=True, lower=True, transpose_a=False, conjugate_a=False, unit_diagonal=False
    )
    n = x.shape[-1]
    phi = _const(np.tri(n) - 0.5 * np.eye(n), x.shape, x.dtype)
    return L, _mm(L, mul(inner, phi))


cholesky_p = Primitive("cholesky")
cholesky_p.impl = lambda a: _down(_np_cholesky(_up(a)), a.dtype)
cholesky_p.abstract_eval = _cholesky_abstract
cholesky_p.jvp = _cholesky_jvp


def symmetrize(x):
    """``(x + x^H) / 2`` over the last two axes."""
    return mul(add(x, _H(x)), 0.5)


def cholesky(x, *, symmetrize_input=True):
    """Lower Cholesky factor ``L`` (``x = L @ L^H``) of Hermitian positive-definite ``x (..., M, M)``.

    With ``symmetrize_input`` (the default, as JAX) ``x`` is replaced by ``(x + x^H) / 2`` first,
    so gradients are symmetric; otherwise only the lower triangle is read. Matrices that are not
    positive definite give NaN.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.cholesky(fnp.array([[4.0, 2.0], [2.0, 2.0]]))
        Array([[2., 0.],
               [1., 1.]], dtype=float32)
    """
    x = as_array(x, "lax.linalg.cholesky")
    _check_matrix("lax.linalg.cholesky", x.aval, square=True, what="x")
    if symmetrize_input:
        x = symmetrize(x)
    return cholesky_p.bind(x)


# -- qr ------------------------------------------------------------------------------------------------


def _qr_impl(a, *, full_matrices):
    q, r = np.linalg.qr(_up(a), mode="complete" if full_matrices else "reduced")
    return [_down(q, a.dtype), _down(r, a.dtype)]


def _qr_abstract(a, *, full_matrices):
    _check_matrix("lax.linalg.qr", a)
    m, n = a.shape[-2:]
    k = m if full_matrices else min(m, n)
    return [ShapedArray(a.shape[:-2] + (m, k), a.dtype), ShapedArray(a.shape[:-2] + (k, n), a.dtype)]


def _qr_square_jvp(q, r, dx):
    # q (..., m, n), r (..., n, n) with m >= n; see j-towns.github.io/papers/qr-derivative.pdf.
    dx_rinv = triangular_solve_p.bind(
        r, dx, left_side=False, lower=False, transpose_a=False, conjugate_a=False, unit_diagonal=False
    )
    qt_dx_rinv = _mm(_H(q), dx_rinv)
    low = _tril(qt_dx_rinv, -1)
    do = sub(low, _H(low))  # skew-Hermitian
    if _is_complex(qt_dx_rinv):
        do = add(do, mul(_eye(do.shape, do.dtype), sub(qt_dx_rinv, _to(real(qt_dx_rinv), do.dtype))))
    dq = add(_mm(q, sub(do, qt_dx_rinv)), dx_rinv)
    dr = _mm(sub(qt_dx_rinv, do), r)
    return dq, dr


def _qr_jvp(primals, tangents, *, full_matrices):
    (x,), (dx,) = primals, tangents
    m, n = x.shape[-2:]
    q, r = qr_p.bind(x, full_matrices=full_matrices)
    ax = x.ndim - 1
    if m > n and full_matrices:
        # Complete QR of a tall matrix: the first n columns of q and rows of r are the reduced
        # factorization; the other columns of q complete the basis (not unique, see
        # _complete_basis_jvp) and the other rows of r are zero.
        q_n, r_n = slice_in_dim(q, 0, n, axis=ax), slice_in_dim(r, 0, n, axis=ax - 1)
        dq, dr = _qr_square_jvp(q_n, r_n, dx)
        dq = _complete_basis_jvp(q_n, dq, slice_in_dim(q, n, m, axis=ax))
        dr = concatenate([dr, _const(0, x.shape[:-2] + (m - n, n), x.dtype)], ax - 1)
        return [q, r], [dq, dr]
    if m >= n:
        return [q, r], list(_qr_square_jvp(q, r, dx))
    # Wide x = [X | Y]: q, r_X come from X alone and r_Y = q^H Y.
    y, dx_x, dy = slice_in_dim(x, m, n, axis=ax), slice_in_dim(dx, 0, m, axis=ax), slice_in_dim(dx, m, n, axis=ax)
    dq, dr_x = _qr_square_jvp(q, slice_in_dim(r, 0, m, axis=ax), dx_x)
    dr_y = add(_mm(_H(dq), y), _mm(_H(q), dy))
    return [q, r], [dq, concatenate([dr_x, dr_y], ax)]


qr_p = Primitive("qr", multiple_results=True)
qr_p.impl = _qr_impl
qr_p.abstract_eval = _qr_abstract
qr_p.jvp = _qr_jvp


def qr(x, *, pivoting=False, full_matrices=True):
    """QR decomposition ``x = q @ r`` of ``(..., M, N)`` matrices; returns ``(q, r)``.

    ``full_matrices=True`` (JAX's default) gives ``q (..., M, M)``, ``r (..., M, N)``; otherwise
    ``K = min(M, N)`` columns of ``q`` and rows of ``r``. Differentiable for full-rank matrices;
    the extra columns of a complete ``q`` (tall ``x``) are not unique and get the derivative of a
    smooth orthonormal completion (exact for basis-independent quantities such as ``q2 @ q2^H``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> q, r = lax.linalg.qr(fnp.eye(2))
        >>> fnp.abs(r)
        Array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    if pivoting:
        raise NotImplementedError("lax.linalg.qr: pivoting=True is not supported")
    x = as_array(x, "lax.linalg.qr")
    params = dict(full_matrices=bool(full_matrices))
    _qr_abstract(x.aval, **params)
    q, r = qr_p.bind(x, **params)
    return q, r


# -- eigh ----------------------------------------------------------------------------------------------


def _eigh_impl(a, *, lower):
    w, v = np.linalg.eigh(_up(a), UPLO="L" if lower else "U")
    return [_down(v, a.dtype), _down(w, a.dtype)]


def _eigh_abstract(a, *, lower):
    _check_matrix("lax.linalg.eigh", a, square=True)
    return [ShapedArray(a.shape, a.dtype), ShapedArray(a.shape[:-1], _real_dtype(a.dtype))]


def _eigh_jvp(primals, tangents, *, lower):
    # dw = diag(V^H dA V); dV = V (F * (V^H dA V)) with F_ij = 1 / (w_j - w_i) off the diagonal.
    (a,), (a_dot,) = primals, tangents
    v, w = eigh_p.bind(a, lower=lower)
    n = a.shape[-1]
    wc = _to(w, a.dtype)
    eye = _eye(a.shape, a.dtype)
    # Adding the identity before inverting keeps the diagonal finite (it is removed again).
    f = sub(integer_pow(add(eye, sub(_rows(wc, n), _cols(wc, n))), -1), eye)
    vh_adot_v = _mm(_mm(_H(v), a_dot), v)
    dv = _mm(v, mul(f, vh_adot_v))
    dw = _diag(vh_adot_v)
    if _is_complex(dw):
        dw = real(dw)
    return [v, w], [dv, dw]


eigh_p = Primitive("eigh", multiple_results=True)
eigh_p.impl = _eigh_impl
eigh_p.abstract_eval = _eigh_abstract
eigh_p.jvp = _eigh_jvp


def _mirror(x, lower):
    """The Hermitian matrix defined by one triangle of ``x`` (NumPy's ``UPLO`` semantics)."""
    if not lower:  # the upper triangle of x is the lower triangle of x^H
        x = _H(x)
    low = _tril(x, -1)
    eye = _eye(x.shape, x.dtype)
    diag = mul(eye, _to(real(x), x.dtype)) if _is_complex(x) else mul(eye, x)  # LAPACK ignores imag(diag)
    return add(add(low, _H(low)), diag)


def eigh(x, *, lower=True, symmetrize_input=True, sort_eigenvalues=True):
    """Eigendecomposition of Hermitian matrices ``(..., M, M)``; returns ``(v, w)`` as JAX.

    ``w`` are the eigenvalues in ascending order (real dtype) and the columns of ``v`` the
    eigenvectors. With ``symmetrize_input`` (default) ``x`` is replaced by ``(x + x^H) / 2``;
    otherwise only the ``lower`` (or upper) triangle is read. Derivatives need distinct eigenvalues.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> v, w = lax.linalg.eigh(fnp.array([[2.0, 0.0], [0.0, 1.0]]))
        >>> w
        Array([1., 2.], dtype=float32)
    """
    x = as_array(x, "lax.linalg.eigh")
    _check_matrix("lax.linalg.eigh", x.aval, square=True, what="x")
    x = symmetrize(x) if symmetrize_input else _mirror(x, lower)
    v, w = eigh_p.bind(x, lower=bool(lower))
    return v, w


# -- svd ------------------------------------------------------------------------------------------------


def _svd_impl(a, *, full_matrices, compute_uv):
    if not compute_uv:
        return [_down(np.linalg.svd(_up(a), compute_uv=False), a.dtype)]
    u, s, vt = np.linalg.svd(_up(a), full_matrices=full_matrices)
    return [_down(s, a.dtype), _down(u, a.dtype), _down(vt, a.dtype)]


def _svd_abstract(a, *, full_matrices, compute_uv):
    _check_matrix("lax.linalg.svd", a)
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    s = ShapedArray(batch + (k,), _real_dtype(a.dtype))
    if not compute_uv:
        return [s]
    mu, nv = (m, n) if full_matrices else (k, k)
    return [s, ShapedArray(batch + (m, mu), a.dtype), ShapedArray(batch + (nv, n), a.dtype)]


def _svd_jvp(primals, tangents, *, full_matrices, compute_uv):
    (a,), (da,) = primals, tangents
    m, n = a.shape[-2:]
    k = min(m, n)
    full = compute_uv and full_matrices and m != n
    outs = svd_p.bind(a, full_matrices=full, compute_uv=True)
    s, u, vt = outs
    if full:  # the first k singular vectors are the reduced decomposition
        u_full, vt_full = u, vt
        u, vt = slice_in_dim(u, 0, k, axis=u.ndim - 1), slice_in_dim(vt, 0, k, axis=vt.ndim - 2)
    ut, v = _H(u), _H(vt)
    ds_mat = _mm(_mm(ut, da), v)  # (..., k, k)
    ds = _diag(ds_mat)
    if _is_complex(ds):
        ds = real(ds)
    if not compute_uv:
        return [s], [ds]
    dt = a.dtype
    s_row, s_col = _rows(s, k), _cols(s, k)  # s_j and s_i at [i, j]
    eye = _eye(s_row.shape, s.dtype)
    # F_ij = 1 / (s_j^2 - s_i^2) off the diagonal, 0 on it.
    f = _to(sub(div(1, add(mul(add(s_row, s_col), sub(s_row, s_col)), eye)), eye), dt)
    s_zero = _to(eq(s, 0), s.dtype)
    s_inv = sub(div(1, add(s, s_zero)), s_zero)
    dss = mul(_to(s_row, dt), ds_mat)
    sds = mul(_to(s_col, dt), ds_mat)
    du_dv_diag = mul(mul(sub(ds_mat, _H(ds_mat)), 0.5), _to(_embed_diag(s_inv), dt))
    du = _mm(u, add(mul(f, add(dss, _H(dss))), du_dv_diag))
    dv = _mm(v, mul(f, add(sds, _H(sds))))
    if m > n:  # the part of du outside span(u)
        dav = _mm(da, v)
        du = add(du, div(sub(dav, _mm(u, _mm(ut, dav))), _to(_rows(s, m), dt)))
    if n > m:
        dahu = _mm(_H(da), u)
        dv = add(dv, div(sub(dahu, _mm(v, _mm(vt, dahu))), _to(_rows(s, n), dt)))
    if full and m > n:
        du = _complete_basis_jvp(u, du, slice_in_dim(u_full, k, m, axis=u_full.ndim - 1))
    if full and n > m:
        dv = _complete_basis_jvp(v, dv, _H(slice_in_dim(vt_full, k, n, axis=vt_full.ndim - 2)))
    return list(outs), [ds, du, _H(dv)]


def _complete_basis_jvp(q1, dq1, q2):
    """Tangent of ``[q1 | q2]`` where ``q2`` is any orthonormal basis of the complement of ``q1``.

    ``q2`` is not unique (LAPACK picks one), so it has no derivative of its own; the tangent
    ``dq2 = -q1 dq1^H q2`` is that of a smooth orthonormal completion: it keeps ``[q1 | q2]``
    unitary to first order and gives exact derivatives of every basis-independent quantity
    (such as the projector ``q2 q2^H``). Both modes use it, so they agree.
    """
    dq2 = neg(_mm(q1, _mm(_H(dq1), q2)))
    return concatenate([dq1, dq2], dq1.ndim - 1)


svd_p = Primitive("svd", multiple_results=True)
svd_p.impl = _svd_impl
svd_p.abstract_eval = _svd_abstract
svd_p.jvp = _svd_jvp


def svd(x, *, full_matrices=True, compute_uv=True):
    """Singular value decomposition ``x = u @ diag(s) @ vh`` of ``(..., M, N)`` matrices.

    Returns ``(u, s, vh)``, or ``s`` alone when ``compute_uv=False`` (JAX's order). Singular
    values are descending. Derivatives of ``u``/``vh`` need distinct nonzero singular values; with
    ``full_matrices=True`` the extra (non-unique) singular vectors of a non-square ``x`` get the
    derivative of a smooth orthonormal completion (exact for basis-independent quantities).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.svd(fnp.array([[3.0, 0.0], [0.0, -4.0]]), compute_uv=False)
        Array([4., 3.], dtype=float32)
    """
    x = as_array(x, "lax.linalg.svd")
    params = dict(full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))
    _svd_abstract(x.aval, **params)
    outs = svd_p.bind(x, **params)
    if not compute_uv:
        return outs[0]
    s, u, vt = outs
    return u, s, vt


# -- pinv ------------------------------------------------------------------------------------------------


def _pinv_abstract(a, *, rcond):
    _check_matrix("pinv", a)
    return ShapedArray(a.shape[:-2] + (a.shape[-1], a.shape[-2]), a.dtype)


def _pinv_jvp(primals, tangents, *, rcond):
    # Golub & Pereyra (1973): valid where the rank is locally constant (JAX's rule).
    (a,), (a_dot,) = primals, tangents
    p = pinv_p.bind(a, rcond=rcond)
    m, n = a.shape[-2:]
    adh = _H(a_dot)
    if m >= n:
        s = _mm(_mm(p, _H(p)), adh)
        t = _mm(_mm(adh, _H(p)), p)
        p_dot = add(sub(add(sub(s, _mm(_mm(s, a), p)), t), _mm(_mm(p, a), t)), neg(_mm(_mm(p, a_dot), p)))
    else:
        s = _mm(p, _mm(_H(p), adh))
        t = _mm(adh, _mm(_H(p), p))
        p_dot = add(sub(add(sub(s, _mm(s, _mm(a, p))), t), _mm(p, _mm(a, t))), neg(_mm(p, _mm(a_dot, p))))
    return p, p_dot


pinv_p = Primitive("pinv")
pinv_p.impl = lambda a, rcond: _down(np.linalg.pinv(_up(a), rcond=rcond), a.dtype)
pinv_p.abstract_eval = _pinv_abstract
pinv_p.jvp = _pinv_jvp


def pinv(a, rcond=1e-15):
    """Moore-Penrose pseudo-inverse ``(..., N, M)`` of ``(..., M, N)`` matrices.

    Singular values below ``rcond * max(s)`` are treated as zero (NumPy's rule).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.linalg.pinv(fnp.array([[2.0, 0.0], [0.0, 0.0]]))
        Array([[0.5, 0. ],
               [0. , 0. ]], dtype=float32)
    """
    a = as_array(a, "pinv")
    _pinv_abstract(a.aval, rcond=rcond)
    return pinv_p.bind(a, rcond=float(rcond))


# -- batching rules ----------------------------------------------------------------------------------
# Every primitive already treats leading axes as batch axes: move the vmapped axis to the
# front (broadcasting an unbatched operand). A solve with a shared matrix and per-example
# right-hand sides instead folds the vmapped axis into b's columns (rows for a right-side
# triangular solve), so the matrix is factored once.


def _fold_rhs_batch(vals, dims, bind, fold_rows):
    """``a`` unbatched, ``b`` batched: solve one wider system and unfold the result."""
    from .shape import reshape

    a, b = vals
    d = dims[1]
    size = b.shape[d]
    nd = b.ndim  # batched rank; per-example b is (..., M, K)
    dst = nd - 3 if fold_rows else nd - 2  # the vmapped axis sits just before the axis it merges into
    b = move_bdim(b, d, dst, size)
    shape = b.shape
    merged = shape[:dst] + (shape[dst] * shape[dst + 1],) + shape[dst + 2 :]
    out = bind(a, reshape(b, merged))
    return reshape(out, shape), dst


def _triangular_solve_batch(vals, dims, **params):
    if dims[0] is None:
        return _fold_rhs_batch(
            vals, dims, lambda a, b: triangular_solve_p.bind(a, b, **params), fold_rows=not params["left_side"]
        )
    return multi_output_front_rule(triangular_solve_p, 1)(vals, dims, **params)


def _solve_batch(vals, dims):
    if dims[0] is None:
        return _fold_rhs_batch(vals, dims, solve_p.bind, fold_rows=False)
    return multi_output_front_rule(solve_p, 1)(vals, dims)


triangular_solve_p.batch = _triangular_solve_batch
solve_p.batch = _solve_batch
det_p.batch = multi_output_front_rule(det_p, 1)
slogdet_p.batch = multi_output_front_rule(slogdet_p, 2)
cholesky_p.batch = multi_output_front_rule(cholesky_p, 1)
qr_p.batch = multi_output_front_rule(qr_p, 2)
eigh_p.batch = multi_output_front_rule(eigh_p, 2)
pinv_p.batch = multi_output_front_rule(pinv_p, 1)


def _svd_batch(vals, dims, *, full_matrices, compute_uv):
    from ._batching import bdim_to_front

    (a,), (d,) = vals, dims
    outs = svd_p.bind(bdim_to_front(a, d, None), full_matrices=full_matrices, compute_uv=compute_uv)
    return outs, [0] * len(outs)


svd_p.batch = _svd_batch
