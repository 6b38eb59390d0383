"""``funcgrad.numpy.linalg``: NumPy's ``numpy.linalg`` on funcgrad arrays (like ``jax.numpy.linalg``).

Every function accepts stacks of matrices ``(..., M, N)`` (batch dims broadcast where NumPy
broadcasts them), returns NumPy's values, shapes and result types (``EighResult``,
``QRResult``, ``SlogdetResult``, ``SVDResult``), and is differentiable in forward and reverse
mode, to any order, through the primitives of :mod:`funcgrad.lax.linalg`.

Decisions (JAX's, where JAX and NumPy differ):

* Integer and bool inputs are computed in the default float dtype (float32), float64 stays
  float64; float16/bfloat16 are computed in float32 and cast back.
* A singular matrix (``inv``, ``solve``) or one that is not positive definite (``cholesky``)
  gives NaN for that matrix of the batch instead of raising ``LinAlgError``, so a function
  behaves the same eagerly and under ``jit``/``vmap``.
* ``eigh``, ``eigvalsh`` and ``cholesky`` symmetrize their input, ``(a + a^H) / 2``, by default
  (``symmetrize_input=True``), so their gradients are symmetric matrices; for the Hermitian
  inputs these functions are meant for, the values are NumPy's. With
  ``symmetrize_input=False`` only the ``UPLO`` (lower for ``cholesky``) triangle is read, as
  NumPy does, and gradients flow to that triangle only.
* ``norm`` of a zero vector has a NaN gradient for ``ord=None``/2 (as JAX: the 2-norm is not
  differentiable there); guard with ``fnp.where`` if needed.
* Derivatives of eigenvectors and singular vectors need distinct eigenvalues / distinct
  nonzero singular values, those of ``qr`` a full-rank matrix. The extra columns of a complete
  ``Q`` (``mode='complete'``, tall ``a``) and of ``U``/``Vh`` with ``full_matrices=True`` are not
  unique (LAPACK picks one basis of the orthogonal complement); they get the derivative of a
  smooth orthonormal completion, exact for every basis-independent quantity (such as the
  projector ``U2 @ U2^H``). JAX raises ``NotImplementedError`` there instead.
"""

from __future__ import annotations

import collections
import operator

import numpy as np

from ..core.config import config
from ..core.dtypes import is_inexact, result_type
from ..core.errors import InvalidArgumentError, InvalidValueError, ShapeError
from ..lax import elementwise as lx
from ..lax import linalg as ll
from ..lax.shape import broadcast_in_dim, squeeze
from ._util import broadcast_shapes, broadcast_to_shape, canonical_axis, to_array

__all__ = [
    "EighResult",
    "LinAlgError",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "cond",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "lstsq",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "multi_dot",
    "norm",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensordot",
    "tensorinv",
    "tensorsolve",
    "trace",
    "vecdot",
    "vector_norm",
]

LinAlgError = np.linalg.LinAlgError

EighResult = collections.namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
QRResult = collections.namedtuple("QRResult", ["Q", "R"])
SlogdetResult = collections.namedtuple("SlogdetResult", ["sign", "logabsdet"])
SVDResult = collections.namedtuple("SVDResult", ["U", "S", "Vh"])

_NO_VALUE = object()


# -- argument handling ------------------------------------------------------------------------


def _float(x):
    """Integer/bool data is computed in the default float dtype (linalg is float-only)."""
    if not is_inexact(x.dtype):
        return lx.convert_element_type(x, config.default_float_dtype)
    return x


def _matrix(a, name, square=False, what="a"):
    x = _float(to_array(a, name))
    if x.ndim < 2:
        raise ShapeError(f"linalg.{name}: {what} must have at least 2 dimensions (..., M, N), got shape {x.shape}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ShapeError(
            f"linalg.{name}: {what} must be a square matrix or a stack of them (..., M, M), got shape {x.shape}"
        )
    return x


def _common(name, *xs):
    """Convert to one inexact dtype (NumPy/JAX promotion, ints to the default float)."""
    arrays = [to_array(x, name) for x in xs]
    dt = result_type(*arrays)
    if not is_inexact(dt):
        dt = np.dtype(config.default_float_dtype)
    return [lx.convert_element_type(x, dt) for x in arrays]


def _mT(x):
    return ll._T(x)


def _mH(x):
    return ll._H(x)


def _eye_like(x):
    """Identity matrices shaped like the square stack ``x``."""
    n = x.shape[-1]
    return ll._const(np.eye(n), x.shape, x.dtype)


def _real_dtype(dtype):
    return ll._real_dtype(dtype)


# -- solve, inv, det, slogdet ------------------------------------------------------------------


def solve(a, b):
    """Solve ``a @ x = b`` for ``x``.

    ``a`` is ``(..., M, M)``; ``b`` is a vector ``(M,)`` or a stack of matrices ``(..., M, K)``
    (NumPy 2 semantics); batch dims broadcast. Differentiable in ``a`` and ``b``.

    Args:
        a: square coefficient matrices.
        b: right-hand sides.

    Returns:
        ``x`` with the broadcast shape of ``b``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.solve(fnp.array([[3.0, 1.0], [1.0, 2.0]]), fnp.array([9.0, 8.0]))
        Array([2., 3.], dtype=float32)
    """
    a, b = _common("solve", a, b)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"linalg.solve: a must be a square matrix or a stack of them (..., M, M), got shape {a.shape}")
    m = a.shape[-1]
    if b.ndim == 0:
        raise ShapeError(f"linalg.solve: b must be a vector (M,) or matrices (..., M, K), got shape {b.shape}")
    vector = b.ndim == 1
    if (b.shape[0] if vector else b.shape[-2]) != m:
        raise ShapeError(
            f"linalg.solve: a {a.shape} and b {b.shape} do not match: b needs {m} rows (b is (M,) or (..., M, K))"
        )
    if vector:
        b = broadcast_in_dim(b, a.shape[:-2] + (m, 1), (a.ndim - 2,))
    batch = broadcast_shapes([a.shape[:-2], b.shape[:-2]], "linalg.solve")
    a = broadcast_to_shape(a, batch + a.shape[-2:])
    b = broadcast_to_shape(b, batch + b.shape[-2:])
    x = ll.solve_p.bind(a, b)
    return squeeze(x, (x.ndim - 1,)) if vector else x


def inv(a):
    """Inverse of a square matrix (or of each matrix in a stack ``(..., M, M)``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.inv(fnp.array([[2.0, 0.0], [0.0, 4.0]]))
        Array([[0.5 , 0.  ],
               [0.  , 0.25]], dtype=float32)
    """
    x = _matrix(a, "inv", square=True)
    return ll.solve_p.bind(x, _eye_like(x))


def det(a):
    """Determinant of a square matrix (or of each matrix in a stack).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.det(fnp.array([[1.0, 2.0], [3.0, 4.0]]))
        Array(-2., dtype=float32)
    """
    return ll.det_p.bind(_matrix(a, "det", square=True))


def slogdet(a):
    """Sign and natural log of the absolute value of the determinant.

    Returns:
        ``SlogdetResult(sign, logabsdet)``; ``logabsdet`` has the real dtype. Its gradient is
        ``inv(a).T``, finite wherever ``a`` is invertible.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.slogdet(fnp.array([[-2.0, 0.0], [0.0, 3.0]])).sign
        Array(-1., dtype=float32)
    """
    sign, logabs = ll.slogdet_p.bind(_matrix(a, "slogdet", square=True))
    return SlogdetResult(sign, logabs)


# -- factorizations ----------------------------------------------------------------------------


def cholesky(a, /, *, upper=False, symmetrize_input=True):
    """Cholesky factor of a Hermitian positive-definite matrix (or stack).

    Args:
        a: ``(..., M, M)`` Hermitian positive-definite matrices.
        upper: return the upper factor ``U = L^H`` (``a = U^H @ U``) instead of ``L``.
        symmetrize_input: use ``(a + a^H) / 2`` (default, as JAX); ``False`` reads only the lower
            triangle, as NumPy.

    Returns:
        ``L`` with ``a = L @ L^H`` (NaN for matrices that are not positive definite).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.cholesky(fnp.array([[4.0, 2.0], [2.0, 5.0]]))
        Array([[2., 0.],
               [1., 2.]], dtype=float32)
    """
    x = _matrix(a, "cholesky", square=True)
    x = ll.symmetrize(x) if symmetrize_input else ll._mirror(x, True)
    L = ll.cholesky_p.bind(x)
    return _mH(L) if upper else L


def qr(a, mode="reduced"):
    """QR decomposition ``a = Q @ R`` with ``Q`` orthonormal and ``R`` upper triangular.

    Args:
        a: ``(..., M, N)`` matrices.
        mode: ``'reduced'`` (``Q (..., M, K)``, ``R (..., K, N)``, ``K = min(M, N)``),
            ``'complete'`` (``Q (..., M, M)``, ``R (..., M, N)``) or ``'r'`` (``R`` only).

    Returns:
        ``QRResult(Q, R)``, or ``R`` for ``mode='r'``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> q, r = fnp.linalg.qr(fnp.ones((3, 2)))
        >>> q.shape, r.shape
        ((3, 2), (2, 2))
    """
    if mode not in ("reduced", "complete", "r"):
        raise InvalidValueError(
            f"linalg.qr: unsupported mode {mode!r} (use 'reduced', 'complete' or 'r'; 'raw' and "
            "'economic' are not supported)"
        )
    x = _matrix(a, "qr")
    m, n = x.shape[-2:]
    # R does not depend on the extra columns of the complete Q, so 'r' uses the reduced factorization.
    full = mode == "complete" or (mode == "r" and m < n)
    q, r = ll.qr_p.bind(x, full_matrices=full)
    return r if mode == "r" else QRResult(q, r)


def eigh(a, UPLO=None, symmetrize_input=True):
    """Eigenvalues (ascending) and eigenvectors of Hermitian matrices.

    Args:
        a: ``(..., M, M)`` Hermitian (real symmetric) matrices.
        UPLO: ``'L'`` (default) or ``'U'``: the triangle read when ``symmetrize_input=False``.
        symmetrize_input: use ``(a + a^H) / 2`` (default, as JAX).

    Returns:
        ``EighResult(eigenvalues, eigenvectors)``: ``(..., M)`` real eigenvalues and the
        eigenvectors as columns of ``(..., M, M)``. Eigenvector derivatives need distinct
        eigenvalues.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.eigh(fnp.array([[2.0, 1.0], [1.0, 2.0]])).eigenvalues
        Array([1., 3.], dtype=float32)
    """
    if UPLO is None:
        UPLO = "L"
    if UPLO not in ("L", "U"):
        raise InvalidValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    x = _matrix(a, "eigh", square=True)
    v, w = ll.eigh(x, lower=UPLO == "L", symmetrize_input=symmetrize_input)
    return EighResult(w, v)


def eigvalsh(a, UPLO="L", *, symmetrize_input=True):
    """Eigenvalues (ascending) of Hermitian matrices ``(..., M, M)``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.eigvalsh(fnp.array([[2.0, 0.0], [0.0, -1.0]]))
        Array([-1.,  2.], dtype=float32)
    """
    return eigh(a, UPLO, symmetrize_input).eigenvalues


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition ``a = U @ diag(S) @ Vh``.

    Args:
        a: ``(..., M, N)`` matrices.
        full_matrices: ``U (..., M, M)`` and ``Vh (..., N, N)`` if True, else ``K = min(M, N)``
            columns/rows.
        compute_uv: if False return only the singular values.
        hermitian: ``a`` is Hermitian: computed from ``eigh`` as NumPy does.

    Returns:
        ``SVDResult(U, S, Vh)`` with ``S`` descending (real dtype), or ``S``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.svd(fnp.array([[0.0, 2.0], [1.0, 0.0]]), compute_uv=False)
        Array([2., 1.], dtype=float32)
    """
    x = _matrix(a, "svd")
    if hermitian:
        return _svd_hermitian(x, compute_uv)
    outs = ll.svd_p.bind(x, full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))
    if not compute_uv:
        return outs[0]
    s, u, vt = outs
    return SVDResult(u, s, vt)


def _svd_hermitian(x, compute_uv):
    from .indexing import take_along_axis
    from .sorting import argsort
    from .ufuncs import abs as abs_, sign

    if x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"linalg.svd: hermitian=True needs square matrices (..., M, M), got shape {x.shape}")
    v, w = ll.eigh(x)
    s = abs_(w)
    order = argsort(s, axis=-1, descending=True)  # an index: carries no derivative
    s = take_along_axis(s, order, axis=-1)
    if not compute_uv:
        return s
    sgn = take_along_axis(sign(w), order, axis=-1)
    u = take_along_axis(v, order[..., None, :], axis=-1)
    # Singular values are unsigned: the signs of the eigenvalues move into Vh (NumPy's choice).
    vt = _mH(u * lx.convert_element_type(sgn, u.dtype)[..., None, :])
    return SVDResult(u, s, vt)


def svdvals(x, /):
    """Singular values (descending) of ``(..., M, N)`` matrices.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.svdvals(fnp.array([[3.0, 0.0], [0.0, 4.0]]))
        Array([4., 3.], dtype=float32)
    """
    return svd(x, compute_uv=False)


# -- triangular solves ---------------------------------------------------------------------------


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False):
    """Solve ``op(a) @ x = b`` for triangular ``a`` (``scipy.linalg.solve_triangular``'s signature).

    Only the ``lower`` (or upper) triangle of ``a`` is read.

    Args:
        a: ``(..., M, M)`` triangular matrices.
        b: ``(..., M)`` vectors (when ``b.ndim == a.ndim - 1``) or ``(..., M, K)`` matrices.
        trans: ``0``/``'N'`` solves ``a x = b``, ``1``/``'T'`` ``a^T x = b``, ``2``/``'C'`` ``a^H x = b``.
        lower: use the lower triangle (default: upper).
        unit_diagonal: assume ones on the diagonal.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.solve_triangular(fnp.array([[2.0, 0.0], [1.0, 1.0]]), fnp.array([2.0, 3.0]), lower=True)
        Array([1., 2.], dtype=float32)
    """
    a, b = _common("solve_triangular", a, b)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"linalg.solve_triangular: a must be square matrices (..., M, M), got shape {a.shape}")
    trans = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}.get(trans)
    if trans is None:
        raise InvalidValueError("linalg.solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C'")
    vector = b.ndim == a.ndim - 1
    m = a.shape[-1]
    if b.ndim == 0 or (b.shape[-1] if vector else b.shape[-2] if b.ndim >= 2 else -1) != m:
        raise ShapeError(f"linalg.solve_triangular: a {a.shape} and b {b.shape} do not match: b needs {m} rows")
    if vector:
        b = b[..., None]
    batch = broadcast_shapes([a.shape[:-2], b.shape[:-2]], "linalg.solve_triangular")
    a = broadcast_to_shape(a, batch + a.shape[-2:])
    b = broadcast_to_shape(b, batch + b.shape[-2:])
    x = ll.triangular_solve(
        a, b, left_side=True, lower=lower, transpose_a=trans > 0, conjugate_a=trans == 2, unit_diagonal=unit_diagonal
    )
    return x[..., 0] if vector else x


# -- derived functions ---------------------------------------------------------------------------


def matrix_power(a, n):
    """Raise a square matrix (or stack) to the integer power ``n`` (negative: of the inverse).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.matrix_power(fnp.array([[1, 1], [0, 1]]), 3)
        Array([[1, 3],
               [0, 1]], dtype=int64)
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise InvalidArgumentError(
            f"linalg.matrix_power: exponent must be an integer, got {type(n).__name__}"
        ) from None
    x = to_array(a, "matrix_power")
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"linalg.matrix_power: a must be square matrices (..., M, M), got shape {x.shape}")
    if n == 0:
        return ll._const(np.eye(x.shape[-1]), x.shape, x.dtype)
    if n < 0:
        x, n = inv(x), -n
    from .products import matmul

    result, z = None, x
    # Binary exponentiation: O(log n) products.
    while True:
        if n & 1:
            result = z if result is None else matmul(result, z)
        n >>= 1
        if not n:
            return result
        z = matmul(z, z)


def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
    """Moore-Penrose pseudo-inverse ``(..., N, M)`` of ``(..., M, N)`` matrices.

    Singular values at most ``rcond * max(S)`` count as zero; NumPy's defaults: ``rcond=1e-15``,
    or ``max(M, N) * eps`` when ``rtol=None`` is passed. Differentiable where the rank does
    not change (Golub & Pereyra). ``hermitian`` is accepted for NumPy compatibility.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.pinv(fnp.array([[2.0], [0.0]]))
        Array([[0.5, 0. ]], dtype=float32)
    """
    x = _matrix(a, "pinv")
    if rcond is not None and rtol is not _NO_VALUE:
        raise InvalidValueError("linalg.pinv: rtol and rcond can't both be set")
    if rcond is None:
        if rtol is _NO_VALUE:
            rcond = 1e-15
        elif rtol is None:
            rcond = max(x.shape[-2:]) * float(np.finfo(x.dtype).eps)
        else:
            rcond = rtol
    try:
        rcond = float(rcond)
    except TypeError:
        raise InvalidArgumentError("linalg.pinv: rcond/rtol must be a Python number (one for all matrices)") from None
    return ll.pinv_p.bind(x, rcond=rcond)


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """Number of singular values above ``tol`` (default ``S.max() * max(M, N) * eps``), as int64.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.matrix_rank(fnp.array([[1.0, 2.0], [2.0, 4.0]]))
        Array(1, dtype=int64)
    """
    from .reductions import any as any_, count_nonzero, max as max_

    x = _float(to_array(A, "matrix_rank"))
    if x.ndim < 2:
        return lx.convert_element_type(any_(x != 0), np.int64)
    s = svdvals(x)
    if tol is None:
        if rtol is None:
            rtol = max(x.shape[-2:]) * float(np.finfo(s.dtype).eps)
        else:
            rtol = to_array(rtol, "matrix_rank")[..., None]
        tol = max_(s, axis=-1, keepdims=True) * rtol
    else:
        tol = to_array(tol, "matrix_rank")[..., None]
    return count_nonzero(s > tol, axis=-1)


def cond(x, p=None):
    """Condition number of square (or, for ``p`` in ``None, 2, -2``, any) matrices.

    ``p`` as in :func:`norm`: ``None``/2 is the ratio of the largest to the smallest singular value.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.cond(fnp.array([[2.0, 0.0], [0.0, 0.5]]))
        Array(4., dtype=float32)
    """
    x = _matrix(x, "cond")
    if p is None or p == 2 or p == -2:
        s = svdvals(x)
        return s[..., 0] / s[..., -1] if p != -2 else s[..., -1] / s[..., 0]
    if x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"linalg.cond: p={p!r} needs square matrices (..., M, M), got shape {x.shape}")
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def lstsq(a, b, rcond=None):
    """Least-squares solution of ``a @ x = b`` for 2-D ``a (M, N)`` and ``b (M,)`` or ``(M, K)``.

    Returns ``(x, residuals, rank, s)`` like NumPy, except that ``residuals`` (the squared
    2-norm of ``b - a @ x`` per column) is always computed, as JAX does (NumPy returns an empty
    array when ``rank < N`` or ``M <= N``). ``rcond`` defaults to ``eps * max(M, N)``.
    Differentiable in ``a`` and ``b`` where the rank does not change.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> x, res, rank, s = fnp.linalg.lstsq(fnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),
        ...                                    fnp.array([1.0, 2.0, 3.0]))
        >>> x
        Array([1., 2.], dtype=float32)
    """
    from .products import matmul
    from .reductions import sum as sum_

    a, b = _common("lstsq", a, b)
    if a.ndim != 2 or b.ndim not in (1, 2):
        raise ShapeError(f"linalg.lstsq: a must be 2-D and b 1-D or 2-D, got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"linalg.lstsq: a {a.shape} and b {b.shape} do not match: need the same number of rows")
    if rcond is None:
        rcond = float(np.finfo(a.dtype).eps) * max(a.shape)
    s = svdvals(a)
    x = matmul(pinv(a, rcond), b)
    r = b - matmul(a, x)
    resid = sum_(lx.real(r * lx.conj(r)) if r.dtype.kind == "c" else r * r, axis=0)
    if b.ndim == 1:  # one column: shape (1,), as NumPy and JAX
        resid = resid.reshape(1)
    rank = matrix_rank(a, tol=s[0] * rcond)
    return x, resid, rank, s


def multi_dot(arrays, *, out=None):
    """Product of two or more matrices in the cheapest association order (NumPy's ``multi_dot``).

    The first array may be 1-D (a row vector) and the last 1-D (a column vector).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.multi_dot([fnp.ones((2, 3)), fnp.ones((3, 4)), fnp.ones(4)])
        Array([12., 12.], dtype=float32)
    """
    from .products import matmul

    if out is not None:
        raise InvalidArgumentError("linalg.multi_dot: out= is not supported (arrays are immutable)")
    xs = [to_array(x, "multi_dot") for x in arrays]
    if len(xs) < 2:
        raise InvalidValueError("linalg.multi_dot: expecting at least two arrays")
    first_vec, last_vec = xs[0].ndim == 1, xs[-1].ndim == 1
    if first_vec:
        xs[0] = xs[0][None, :]
    if last_vec:
        xs[-1] = xs[-1][:, None]
    for i, x in enumerate(xs):
        if x.ndim != 2:
            raise ShapeError(
                f"linalg.multi_dot: array {i} must be 2-D (the first and last may be 1-D), got shape {x.shape}"
            )
    n = len(xs)
    dims = [xs[0].shape[0]] + [x.shape[1] for x in xs]
    # Matrix-chain dynamic programme over split points (as NumPy).
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def product(i, j):
        if i == j:
            return xs[i]
        k = split[i][j]
        return matmul(product(i, k), product(k + 1, j))

    res = product(0, n - 1)
    if first_vec:
        res = res[0]
    if last_vec:
        res = res[..., 0]
    return res


def tensorinv(a, ind=2):
    """Inverse of a tensor viewed as the matrix ``(prod(shape[:ind]), prod(shape[ind:]))``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.tensorinv(fnp.eye(4).reshape(4, 2, 2), ind=1).shape
        (2, 2, 4)
    """
    x = _float(to_array(a, "tensorinv"))
    if ind <= 0:
        raise InvalidValueError(f"linalg.tensorinv: ind must be a positive integer, got {ind}")
    inv_shape = x.shape[ind:] + x.shape[:ind]
    rows = int(np.prod(x.shape[:ind]))
    cols = int(np.prod(x.shape[ind:]))
    if rows != cols:
        raise ShapeError(f"linalg.tensorinv: shape {x.shape} with ind={ind} is not square ({rows} x {cols})")
    return inv(x.reshape(rows, cols)).reshape(inv_shape)


def tensorsolve(a, b, axes=None):
    """Solve the tensor equation ``tensordot(a, x, x.ndim) = b`` for ``x``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.tensorsolve(fnp.eye(6).reshape(6, 2, 3), fnp.ones(6)).shape
        (2, 3)
    """
    from .shape_ops import moveaxis

    a, b = _common("tensorsolve", a, b)
    if axes is not None:
        axes = [canonical_axis(ax, a.ndim, "tensorsolve") for ax in axes]
        a = moveaxis(a, axes, list(range(a.ndim - len(axes), a.ndim)))
    x_shape = a.shape[b.ndim :]
    rows = int(np.prod(a.shape[: b.ndim]))
    cols = int(np.prod(x_shape))
    if a.shape[: b.ndim] != b.shape or rows != cols:
        raise ShapeError(f"linalg.tensorsolve: a {a.shape} and b {b.shape} do not define a square system")
    return solve(a.reshape(rows, cols), b.reshape(rows)).reshape(x_shape)


# -- norms ---------------------------------------------------------------------------------------


def _abs(x):
    from .ufuncs import abs as abs_

    return abs_(x)


def _abs2(x):
    return lx.real(x * lx.conj(x)) if x.dtype.kind == "c" else x * x


def _vector_norm(x, ord, axes, keepdims):
    from .reductions import max as max_, min as min_, sum as sum_
    from .ufuncs import sqrt

    if ord is None or ord == 2:
        return sqrt(sum_(_abs2(x), axis=axes, keepdims=keepdims))
    if isinstance(ord, str):
        raise InvalidValueError(f"linalg.norm: invalid norm order {ord!r} for vectors")
    if ord == np.inf:
        return max_(_abs(x), axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return min_(_abs(x), axis=axes, keepdims=keepdims)
    if ord == 0:
        return lx.convert_element_type(sum_(x != 0, axis=axes, keepdims=keepdims), _real_dtype(x.dtype))
    if ord == 1:
        return sum_(_abs(x), axis=axes, keepdims=keepdims)
    ord = float(ord)
    return sum_(_abs(x) ** ord, axis=axes, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, row, col, keepdims):
    from .reductions import max as max_, min as min_, sum as sum_
    from .shape_ops import expand_dims, moveaxis
    from .ufuncs import sqrt

    if row == col:
        raise InvalidValueError("linalg.norm: duplicate axes given")
    if ord in (2, -2, "nuc"):
        s = svdvals(moveaxis(x, (row, col), (-2, -1)))
        if ord == 2:
            out = max_(s, axis=-1)
        elif ord == -2:
            out = min_(s, axis=-1)
        else:
            out = sum_(s, axis=-1)
        return expand_dims(out, sorted((row, col))) if keepdims else out
    if ord in (None, "fro", "f"):
        return sqrt(sum_(_abs2(x), axis=(row, col), keepdims=keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        # ord 1: max over columns of the column sums; inf: max over rows of the row sums.
        summed, other = (row, col) if ord in (1, -1) else (col, row)
        red = max_ if ord in (1, np.inf) else min_
        out = red(sum_(_abs(x), axis=summed, keepdims=True), axis=other, keepdims=True)
        if not keepdims:
            out = out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in (row, col)))
        return out
    raise InvalidValueError(f"linalg.norm: invalid norm order {ord!r} for matrices")


def norm(x, ord=None, axis=None, keepdims=False):
    """Matrix or vector norm with NumPy's semantics.

    Args:
        x: input array (integers are computed in the default float dtype).
        ord: vectors: ``None``/2, 1, ``inf``, ``-inf``, 0 (count of nonzeros) or any real ``p``;
            matrices: ``None``/``'fro'``, ``'nuc'``, 1, -1, 2, -2, ``inf``, ``-inf``.
        axis: ``None`` (the 2-norm of the flattened array when ``ord`` is None; otherwise ``x``
            must be 1-D or 2-D), an int (vector norms) or a pair of ints (matrix norms).
        keepdims: keep the reduced axes with size one.

    Returns:
        The norm, with the real dtype of ``x``. Its gradient at a zero vector is NaN for the
        2-norm (as JAX).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.norm(fnp.array([3.0, 4.0]))
        Array(5., dtype=float32)
    """
    x = _float(to_array(x, "norm"))
    nd = x.ndim
    if axis is None:
        if ord is None:
            out = _vector_norm(x.reshape(-1), None, 0, False)
            return out.reshape((1,) * nd) if keepdims else out
        if nd not in (1, 2):
            raise InvalidValueError(
                f"linalg.norm: improper number of dimensions to norm: ord={ord!r} with axis=None needs "
                f"a 1-D or 2-D array, got shape {x.shape}"
            )
        axis = tuple(range(nd))
    elif not isinstance(axis, (tuple, list)):
        axis = (axis,)
    axis = tuple(canonical_axis(a, nd, "linalg.norm") for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis, keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis[0], axis[1], keepdims)
    raise InvalidValueError(f"linalg.norm: improper number of dimensions to norm: axis={axis}")


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """Vector norm over ``axis`` (all axes by default, as if flattened) (array API).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.vector_norm(fnp.ones((2, 2)), ord=1)
        Array(4., dtype=float32)
    """
    x = _float(to_array(x, "vector_norm"))
    if axis is None:
        out = _vector_norm(x.reshape(-1), ord, 0, False)
        return out.reshape((1,) * x.ndim) if keepdims else out
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(canonical_axis(a, x.ndim, "linalg.vector_norm") for a in axes)
    return _vector_norm(x, ord, axes, keepdims)


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """Matrix norm over the last two axes (array API).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.matrix_norm(fnp.eye(3), ord="nuc")
        Array(3., dtype=float32)
    """
    x = _matrix(x, "matrix_norm", what="x")
    return _matrix_norm(x, ord, x.ndim - 2, x.ndim - 1, keepdims)


# -- array-API aliases on the last two axes ------------------------------------------------------


def trace(x, /, *, offset=0, dtype=None):
    """Sum of the ``offset`` diagonal of each matrix (the last two axes).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.trace(fnp.eye(3))
        Array(3., dtype=float32)
    """
    from .products import trace as trace_

    x = to_array(x, "trace")
    return trace_(x, offset, -2, -1, dtype)


def diagonal(x, /, *, offset=0):
    """The ``offset`` diagonal of each matrix (the last two axes).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.diagonal(fnp.eye(2))
        Array([1., 1.], dtype=float32)
    """
    from .products import diagonal as diagonal_

    return diagonal_(to_array(x, "diagonal"), offset, -2, -1)


def matrix_transpose(x, /):
    """Swap the last two axes.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.matrix_transpose(fnp.ones((2, 3))).shape
        (3, 2)
    """
    from .shape_ops import matrix_transpose as mt

    return mt(x)


def matmul(x1, x2, /):
    """Matrix product (``fnp.matmul``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.matmul(fnp.eye(2), fnp.ones((2, 1))).shape
        (2, 1)
    """
    from .products import matmul as mm

    return mm(x1, x2)


def outer(x1, x2, /):
    """Outer product of two 1-D arrays.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.outer(fnp.ones(2), fnp.ones(3)).shape
        (2, 3)
    """
    from .products import outer as outer_

    a, b = to_array(x1, "outer"), to_array(x2, "outer")
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"linalg.outer: both inputs must be 1-D, got shapes {a.shape} and {b.shape}")
    return outer_(a, b)


def vecdot(x1, x2, /, *, axis=-1):
    """Dot product ``sum(conj(x1) * x2)`` over ``axis``, broadcasting the other axes.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.vecdot(fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0]))
        Array(11., dtype=float32)
    """
    from .reductions import sum as sum_

    a, b = to_array(x1, "vecdot"), to_array(x2, "vecdot")
    if a.dtype.kind == "c":
        a = lx.conj(a)
    return sum_(a * b, axis=axis)


def tensordot(x1, x2, /, *, axes=2):
    """Tensor contraction (``fnp.tensordot``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.tensordot(fnp.ones((2, 3)), fnp.ones((3, 2)), axes=1).shape
        (2, 2)
    """
    from .products import tensordot as td

    return td(x1, x2, axes)


def cross(x1, x2, /, *, axis=-1):
    """Cross product of 3-vectors along ``axis``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.linalg.cross(fnp.array([1.0, 0.0, 0.0]), fnp.array([0.0, 1.0, 0.0]))
        Array([0., 0., 1.], dtype=float32)
    """
    from .products import cross as cross_
    from .shape_ops import moveaxis

    a, b = to_array(x1, "cross"), to_array(x2, "cross")
    if axis != -1:
        a, b = moveaxis(a, axis, -1), moveaxis(b, axis, -1)
        return moveaxis(cross_(a, b), -1, axis)
    return cross_(a, b)
