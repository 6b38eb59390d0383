"""Tests for ``funcgrad.numpy.linalg`` and the primitives of ``funcgrad.lax.linalg``.

Values are compared with ``numpy.linalg`` (float32 and float64, batched), derivatives with
finite differences (``check_grads``, float64, both modes, second order), forward against
reverse mode, and gradients against JAX where it is installed.
"""

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.testing import assert_allclose, check_grads

LA = fnp.linalg

# -- inputs ----------------------------------------------------------------------------------


def _rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _well_conditioned(rng, shape, dtype=np.float64):
    """Random square matrices shifted away from singularity."""
    n = shape[-1]
    return (rng.standard_normal(shape) + n * np.eye(n)).astype(dtype)


def _spd(rng, shape, dtype=np.float64):
    a = rng.standard_normal(shape)
    return (a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-10)


DTYPES = [np.float32, np.float64]
SQUARE_SHAPES = [(3, 3), (2, 4, 4), (2, 1, 3, 3)]
RECT_SHAPES = [(4, 3), (3, 5), (2, 5, 3), (2, 3, 4)]


# -- values vs numpy.linalg ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SQUARE_SHAPES)
def test_square_values(rng, shape, dtype):
    a = _well_conditioned(rng, shape, dtype)
    tol = _tol(dtype)
    for name in ("inv", "det"):
        out = getattr(LA, name)(a)
        assert out.dtype == dtype
        assert_allclose(out, getattr(np.linalg, name)(a), **tol)
    sign, logdet = LA.slogdet(a)
    nsign, nlogdet = np.linalg.slogdet(a)
    assert_allclose(sign, nsign, **tol)
    assert_allclose(logdet, nlogdet, **tol)
    assert isinstance(LA.slogdet(a), LA.SlogdetResult)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "a_shape,b_shape",
    [
        ((3, 3), (3,)),
        ((3, 3), (3, 2)),
        ((2, 3, 3), (3,)),
        ((2, 3, 3), (2, 3, 4)),
        ((2, 3, 3), (3, 1)),
        ((3, 3), (5, 3, 2)),
        ((4, 1, 3, 3), (2, 3, 2)),
    ],
)
def test_solve_values(rng, a_shape, b_shape, dtype):
    a = _well_conditioned(rng, a_shape, dtype)
    b = _rand(rng, b_shape, dtype)
    x = LA.solve(a, b)
    expected = np.linalg.solve(a, b)
    assert x.shape == expected.shape and x.dtype == dtype
    assert_allclose(x, expected, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SQUARE_SHAPES)
def test_cholesky_eigh_values(rng, shape, dtype):
    a = _spd(rng, shape, dtype)
    tol = _tol(dtype)
    L = LA.cholesky(a)
    assert L.dtype == dtype
    assert_allclose(L, np.linalg.cholesky(a), **tol)
    assert_allclose(LA.cholesky(a, upper=True), np.linalg.cholesky(a, upper=True), **tol)
    w, v = LA.eigh(a)
    nw, nv = np.linalg.eigh(a)
    assert isinstance(LA.eigh(a), LA.EighResult) and w.dtype == dtype
    assert_allclose(w, nw, **tol)
    # Eigenvectors are defined up to sign: compare |v| and the reconstruction.
    assert_allclose(fnp.abs(v), np.abs(nv), **tol)
    assert_allclose(v @ (w[..., None] * fnp.swapaxes(v, -1, -2)), a, rtol=tol["rtol"], atol=tol["atol"] * 20)
    assert_allclose(LA.eigvalsh(a), nw, **tol)


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_cholesky_read_one_triangle_without_symmetrize(rng, uplo):
    a = _spd(rng, (2, 4, 4))
    junk = (
        a
        + np.triu(rng.standard_normal((4, 4)), 1) * (uplo == "L")
        + np.tril(rng.standard_normal((4, 4)), -1) * (uplo == "U")
    )
    w, v = LA.eigh(junk, UPLO=uplo, symmetrize_input=False)
    nw, nv = np.linalg.eigh(junk, UPLO=uplo)
    assert_allclose(w, nw, rtol=1e-10, atol=1e-10)
    assert_allclose(fnp.abs(v), np.abs(nv), rtol=1e-10, atol=1e-10)
    if uplo == "L":
        assert_allclose(LA.cholesky(junk, symmetrize_input=False), np.linalg.cholesky(junk), rtol=1e-10, atol=1e-10)
    # Only the chosen triangle receives gradient, and it matches finite differences.
    g = fg.grad(lambda x: fnp.sum(LA.eigvalsh(x, uplo, symmetrize_input=False) ** 3))(junk)
    other = np.triu(np.ones((4, 4)), 1) if uplo == "L" else np.tril(np.ones((4, 4)), -1)
    assert np.all(np.asarray(g) * other == 0)
    check_grads(lambda x: LA.eigvalsh(x, uplo, symmetrize_input=False), (junk,), order=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", RECT_SHAPES + [(3, 3)])
def test_qr_values(rng, shape, dtype):
    a = _rand(rng, shape, dtype)
    tol = _tol(dtype)
    for mode in ("reduced", "complete"):
        q, r = LA.qr(a, mode=mode)
        nq, nr = np.linalg.qr(a, mode=mode)
        assert q.shape == nq.shape and r.shape == nr.shape and q.dtype == dtype
        assert_allclose(q, nq, **tol)
        assert_allclose(r, nr, **tol)
    assert_allclose(LA.qr(a, mode="r"), np.linalg.qr(a, mode="r"), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", RECT_SHAPES + [(3, 3)])
def test_svd_values(rng, shape, dtype):
    a = _rand(rng, shape, dtype)
    tol = _tol(dtype)
    assert_allclose(LA.svd(a, compute_uv=False), np.linalg.svd(a, compute_uv=False), **tol)
    assert_allclose(LA.svdvals(a), np.linalg.svdvals(a), **tol)
    for full in (True, False):
        u, s, vh = LA.svd(a, full_matrices=full)
        nu, ns, nvh = np.linalg.svd(a, full_matrices=full)
        assert (u.shape, s.shape, vh.shape) == (nu.shape, ns.shape, nvh.shape) and u.dtype == dtype
        assert_allclose(s, ns, **tol)
        k = ns.shape[-1]
        assert_allclose(fnp.abs(u[..., :k]), np.abs(nu[..., :k]), **tol)
        assert_allclose((u[..., :k] * s[..., None, :]) @ vh[..., :k, :], a, **tol)


def test_svd_hermitian(rng):
    a = _spd(rng, (2, 4, 4)) - 5 * np.eye(4)  # indefinite: negative eigenvalues move their sign into vh
    u, s, vh = LA.svd(a, hermitian=True)
    nu, ns, nvh = np.linalg.svd(a, hermitian=True)
    assert_allclose(s, ns, rtol=1e-10, atol=1e-10)
    assert_allclose((u * s[..., None, :]) @ vh, a, rtol=1e-10, atol=1e-10)
    assert_allclose(LA.svd(a, compute_uv=False, hermitian=True), ns, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triangular_solve_values(rng, dtype):
    a = _well_conditioned(rng, (2, 4, 4), dtype)
    b = _rand(rng, (2, 4, 3), dtype)
    tol = _tol(dtype)
    low, up = np.tril(a), np.triu(a)
    assert_allclose(LA.solve_triangular(a, b, lower=True), np.linalg.solve(low, b), **tol)
    assert_allclose(LA.solve_triangular(a, b), np.linalg.solve(up, b), **tol)
    assert_allclose(
        LA.solve_triangular(a, b, trans="T", lower=True), np.linalg.solve(np.swapaxes(low, -1, -2), b), **tol
    )
    unit = np.tril(a, -1) + np.eye(4)
    assert_allclose(LA.solve_triangular(a, b, lower=True, unit_diagonal=True), np.linalg.solve(unit, b), **tol)
    assert_allclose(LA.solve_triangular(a, b[..., 0], lower=True), np.linalg.solve(low, b[..., :1])[..., 0], **tol)
    # lax.linalg.triangular_solve, right side: x @ op(a) = b.
    bt = np.swapaxes(b, -1, -2)
    x = lax.linalg.triangular_solve(a, bt, left_side=False, lower=True, transpose_a=True)
    assert_allclose(x @ np.swapaxes(low, -1, -2), bt, **tol)


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 5])
def test_matrix_power(rng, n):
    a = _well_conditioned(rng, (2, 3, 3))
    assert_allclose(LA.matrix_power(a, n), np.linalg.matrix_power(a, n), rtol=1e-9, atol=1e-9)
    ai = np.array([[1, 2], [3, 4]])
    if n >= 0:
        out = LA.matrix_power(ai, n)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, np.linalg.matrix_power(ai, n))


def test_pinv_lstsq_rank_cond(rng):
    for shape in [(5, 3), (3, 5), (2, 4, 4)]:
        a = _rand(rng, shape)
        assert_allclose(LA.pinv(a), np.linalg.pinv(a), rtol=1e-9, atol=1e-9)
        assert_allclose(LA.cond(a), np.linalg.cond(a), rtol=1e-9)
        np.testing.assert_array_equal(LA.matrix_rank(a), np.linalg.matrix_rank(a))
    low_rank = _rand(rng, (5, 2)) @ _rand(rng, (2, 4))
    np.testing.assert_array_equal(LA.matrix_rank(low_rank), 2)
    assert_allclose(LA.pinv(low_rank), np.linalg.pinv(low_rank), rtol=1e-8, atol=1e-8)
    assert_allclose(LA.pinv(low_rank, rtol=None), np.linalg.pinv(low_rank, rtol=None), rtol=1e-8, atol=1e-8)
    sq = _well_conditioned(rng, (3, 3))
    for p in (1, -1, np.inf, -np.inf, "fro", "nuc", -2):
        assert_allclose(LA.cond(sq, p), np.linalg.cond(sq, p), rtol=1e-9)
    a, b = _rand(rng, (6, 3)), _rand(rng, (6, 2))
    x, resid, rank, s = LA.lstsq(a, b)
    nx, nresid, nrank, ns = np.linalg.lstsq(a, b)
    assert_allclose(x, nx, rtol=1e-9, atol=1e-9)
    assert_allclose(resid, nresid, rtol=1e-9)
    assert int(rank) == nrank
    assert_allclose(s, ns, rtol=1e-9)


def test_small_helpers(rng):
    a = _rand(rng, (2, 3, 3))
    assert_allclose(LA.trace(a), np.linalg.trace(a))
    assert_allclose(LA.trace(a, offset=1), np.linalg.trace(a, offset=1))
    assert_allclose(LA.diagonal(a, offset=-1), np.linalg.diagonal(a, offset=-1))
    assert_allclose(LA.matrix_transpose(a), np.linalg.matrix_transpose(a))
    assert_allclose(LA.matmul(a, a), np.linalg.matmul(a, a))
    assert_allclose(LA.vecdot(a, a), np.linalg.vecdot(a, a))
    assert_allclose(LA.outer(a[0, 0], a[0, 1]), np.linalg.outer(a[0, 0], a[0, 1]))
    assert_allclose(LA.cross(a, a[::-1]), np.linalg.cross(a, a[::-1]))
    assert_allclose(LA.tensordot(a, a[0], axes=2), np.linalg.tensordot(a, a[0], axes=2))
    chain = [_rand(rng, (3,)), _rand(rng, (3, 10)), _rand(rng, (10, 2)), _rand(rng, (2,))]
    assert_allclose(LA.multi_dot(chain), np.linalg.multi_dot(chain), rtol=1e-10)
    assert_allclose(LA.multi_dot(chain[1:3]), np.linalg.multi_dot(chain[1:3]), rtol=1e-10)
    t = _well_conditioned(rng, (6, 6)).reshape(6, 2, 3)
    assert_allclose(LA.tensorinv(t, ind=1), np.linalg.tensorinv(t, ind=1), rtol=1e-9, atol=1e-9)
    bt = _rand(rng, (6,))
    assert_allclose(LA.tensorsolve(t, bt), np.linalg.tensorsolve(t, bt), rtol=1e-9, atol=1e-9)


def test_integer_and_half_inputs():
    a = np.array([[2, 1], [1, 3]])
    assert LA.inv(a).dtype == np.float32
    assert_allclose(LA.det(a), 5.0, rtol=1e-6)
    assert LA.norm(np.array([3, 4])).dtype == np.float32
    h = np.array([[2.0, 1.0], [1.0, 3.0]], np.float16)
    out = LA.inv(h)
    assert out.dtype == np.float16
    assert_allclose(out, np.linalg.inv(h.astype(np.float32)), rtol=1e-3, atol=1e-3)
    assert LA.eigh(h).eigenvalues.dtype == np.float16


def test_complex_values(rng):
    a = (rng.standard_normal((2, 3, 3)) + 1j * rng.standard_normal((2, 3, 3))).astype(np.complex128)
    herm = a @ np.conj(np.swapaxes(a, -1, -2)) + 3 * np.eye(3)
    assert_allclose(LA.inv(a), np.linalg.inv(a), rtol=1e-10)
    assert_allclose(LA.det(a), np.linalg.det(a), rtol=1e-10)
    sign, logdet = LA.slogdet(a)
    nsign, nlogdet = np.linalg.slogdet(a)
    assert_allclose(sign, nsign, rtol=1e-10)
    assert logdet.dtype == np.float64
    assert_allclose(logdet, nlogdet, rtol=1e-10)
    assert_allclose(LA.cholesky(herm), np.linalg.cholesky(herm), rtol=1e-10)
    w = LA.eigvalsh(herm)
    assert w.dtype == np.float64
    assert_allclose(w, np.linalg.eigvalsh(herm), rtol=1e-10)
    assert_allclose(LA.svdvals(a), np.linalg.svdvals(a), rtol=1e-10)
    assert_allclose(LA.norm(a), np.linalg.norm(a), rtol=1e-10)
    assert_allclose(LA.norm(a, axis=(-2, -1), ord="nuc"), np.linalg.norm(a, axis=(-2, -1), ord="nuc"), rtol=1e-10)


# -- norms -----------------------------------------------------------------------------------

VECTOR_ORDS = [None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, -1]
MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]


@pytest.mark.parametrize("keepdims", [False, True])
@np.errstate(divide="ignore")  # negative orders of a vector with a zero (NumPy warns too)
def test_norm_matches_numpy(rng, keepdims):
    x = _rand(rng, (2, 3, 4))
    x[0, 0, 0] = 0.0
    assert_allclose(LA.norm(x, keepdims=keepdims), np.linalg.norm(x, keepdims=keepdims), rtol=1e-12)
    for ord in VECTOR_ORDS:
        for axis in (0, -1, 1):
            assert_allclose(
                LA.norm(x, ord, axis, keepdims),
                np.linalg.norm(x, ord, axis, keepdims),
                rtol=1e-12,
                err_msg=f"ord={ord} axis={axis}",
            )
        assert_allclose(
            LA.norm(x[0, 0], ord, keepdims=keepdims), np.linalg.norm(x[0, 0], ord, keepdims=keepdims), rtol=1e-12
        )
    for ord in MATRIX_ORDS:
        for axis in ((1, 2), (2, 0), (-1, -2)):
            assert_allclose(
                LA.norm(x, ord, axis, keepdims),
                np.linalg.norm(x, ord, axis, keepdims),
                rtol=1e-10,
                err_msg=f"ord={ord} axis={axis}",
            )
        assert_allclose(LA.norm(x[0], ord, keepdims=keepdims), np.linalg.norm(x[0], ord, keepdims=keepdims), rtol=1e-10)
    assert_allclose(LA.vector_norm(x, ord=1, axis=(0, 2)), np.linalg.vector_norm(x, ord=1, axis=(0, 2)), rtol=1e-12)
    assert_allclose(LA.vector_norm(x, ord=np.inf), np.linalg.vector_norm(x, ord=np.inf), rtol=1e-12)
    assert_allclose(
        LA.matrix_norm(x, ord="nuc", keepdims=keepdims),
        np.linalg.matrix_norm(x, ord="nuc", keepdims=keepdims),
        rtol=1e-10,
    )
    x32 = x.astype(np.float32)
    assert LA.norm(x32).dtype == np.float32


def test_norm_errors():
    x = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="improper number of dimensions"):
        LA.norm(x, ord=2)
    with pytest.raises(ValueError, match="invalid norm order 'fro' for vectors"):
        LA.norm(x, ord="fro", axis=0)
    with pytest.raises(ValueError, match="invalid norm order 3 for matrices"):
        LA.norm(x, ord=3, axis=(0, 1))
    with pytest.raises(ValueError, match="duplicate axes"):
        LA.norm(x, axis=(1, -2))
    with pytest.raises(ValueError, match="improper number of dimensions"):
        LA.norm(x, axis=(0, 1, 2))


def test_norm_gradient_at_zero_is_nan_like_jax():
    g = fg.grad(lambda x: LA.norm(x))(np.zeros(3))
    assert np.all(np.isnan(np.asarray(g)))
    g1 = fg.grad(lambda x: LA.norm(x, 1))(np.array([1.0, -2.0, 3.0]))
    assert_allclose(g1, np.array([1.0, -1.0, 1.0]))


# -- derivatives: finite differences, both modes, second order ---------------------------------------


def _sym_loss_eigh(a):
    w, v = LA.eigh(a)
    # Sign-invariant functions of the eigenvectors.
    return w, v * v, v[..., :, :1] * v[..., 1:2, :1]


def _uv_loss(a):
    u, s, vh = LA.svd(a, full_matrices=False)
    return s, u * u, vh * vh, u[..., :, :1] * vh[..., :1, :]


GRAD_CASES = {
    "solve": (lambda a, b: LA.solve(a, b), lambda r: (_well_conditioned(r, (2, 3, 3)), _rand(r, (2, 3, 2)))),
    "solve_vec": (lambda a, b: LA.solve(a, b), lambda r: (_well_conditioned(r, (3, 3)), _rand(r, (3,)))),
    "solve_bcast": (lambda a, b: LA.solve(a, b), lambda r: (_well_conditioned(r, (3, 3)), _rand(r, (2, 3, 2)))),
    "inv": (LA.inv, lambda r: (_well_conditioned(r, (2, 3, 3)),)),
    "det": (LA.det, lambda r: (_rand(r, (2, 3, 3)),)),
    "slogdet": (lambda a: LA.slogdet(a)[1], lambda r: (_rand(r, (2, 3, 3)),)),
    "cholesky": (LA.cholesky, lambda r: (_spd(r, (2, 3, 3)),)),
    "cholesky_upper": (lambda a: LA.cholesky(a, upper=True), lambda r: (_spd(r, (3, 3)),)),
    "eigh": (_sym_loss_eigh, lambda r: (_spd(r, (2, 3, 3)),)),
    "eigvalsh_nonsym_input": (LA.eigvalsh, lambda r: (_rand(r, (3, 3)),)),
    "qr_tall": (lambda a: LA.qr(a), lambda r: (_rand(r, (2, 4, 3)),)),
    "qr_square": (lambda a: LA.qr(a, mode="complete"), lambda r: (_rand(r, (3, 3)),)),
    "qr_wide": (lambda a: LA.qr(a), lambda r: (_rand(r, (2, 3, 5)),)),
    "qr_r": (lambda a: LA.qr(a, mode="r"), lambda r: (_rand(r, (4, 3)),)),
    "svd_tall": (_uv_loss, lambda r: (_rand(r, (2, 4, 3)),)),
    "svd_wide": (_uv_loss, lambda r: (_rand(r, (3, 5)),)),
    "svd_square_full": (lambda a: LA.svd(a)[0] ** 2, lambda r: (_rand(r, (3, 3)),)),
    "svdvals": (LA.svdvals, lambda r: (_rand(r, (2, 3, 5)),)),
    "triangular": (
        lambda a, b: LA.solve_triangular(a, b, lower=True),
        lambda r: (_well_conditioned(r, (2, 3, 3)), _rand(r, (2, 3, 2))),
    ),
    "triangular_upper_T": (
        lambda a, b: LA.solve_triangular(a, b, trans=1, unit_diagonal=True),
        lambda r: (_rand(r, (3, 3)), _rand(r, (3, 4))),
    ),
    "triangular_right": (
        lambda a, b: lax.linalg.triangular_solve(a, b, lower=True, transpose_a=True),
        lambda r: (_well_conditioned(r, (2, 3, 3)), _rand(r, (2, 4, 3))),
    ),
    "pinv_tall": (LA.pinv, lambda r: (_rand(r, (4, 3)),)),
    "pinv_wide": (LA.pinv, lambda r: (_rand(r, (2, 3, 4)),)),
    "matrix_power": (lambda a: LA.matrix_power(a, -3), lambda r: (_well_conditioned(r, (3, 3)),)),
    "norm_fro": (lambda x: LA.norm(x), lambda r: (_rand(r, (3, 4)),)),
    "norm_2": (lambda x: LA.norm(x, 2), lambda r: (_rand(r, (3, 4)),)),
    "norm_nuc": (lambda x: LA.norm(x, "nuc", axis=(0, 2)), lambda r: (_rand(r, (3, 2, 4)),)),
    "norm_p": (lambda x: LA.norm(x, 3.5, axis=-1), lambda r: (_rand(r, (3, 4)),)),
    "norm_1_matrix": (lambda x: LA.norm(x, 1), lambda r: (_rand(r, (3, 4)),)),
    "lstsq": (lambda a, b: LA.lstsq(a, b)[0], lambda r: (_rand(r, (5, 3)), _rand(r, (5,)))),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_check_grads(rng, name):
    f, make = GRAD_CASES[name]
    check_grads(f, make(rng), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize(
    "name", ["solve", "inv", "det", "slogdet", "cholesky", "eigh", "qr_tall", "svd_tall", "triangular", "pinv_wide"]
)
def test_jacfwd_matches_jacrev(rng, name):
    f, make = GRAD_CASES[name]
    args = make(rng)
    argnums = tuple(range(len(args)))
    fwd = fg.jacfwd(f, argnums=argnums)(*args)
    rev = fg.jacrev(f, argnums=argnums)(*args)
    assert_allclose(fwd, rev, rtol=1e-9, atol=1e-9)


def test_hessian_logdet(rng):
    # d^2 log det(A) [E, F] = -tr(A^-1 E A^-1 F): the Hessian is -(A^-T (x) A^-1) with an index swap.
    a = _well_conditioned(rng, (3, 3))
    h = np.asarray(fg.hessian(lambda x: LA.slogdet(x)[1])(a))
    ainv = np.linalg.inv(a)
    expected = -np.einsum("li,jk->ijkl", ainv, ainv)
    assert_allclose(h, expected, rtol=1e-9, atol=1e-9)


def test_grads_of_known_formulas(rng):
    a = _well_conditioned(rng, (2, 3, 3))
    ainv_t = np.swapaxes(np.linalg.inv(a), -1, -2)
    assert_allclose(fg.grad(lambda x: fnp.sum(LA.slogdet(x)[1]))(a), ainv_t, rtol=1e-10)
    assert_allclose(fg.grad(lambda x: fnp.sum(LA.det(x)))(a), np.linalg.det(a)[:, None, None] * ainv_t, rtol=1e-10)
    s = _spd(rng, (3, 3))
    # d/dA sum(eigvalsh(A)) = I (trace); d/dA max eigenvalue = v v^T.
    assert_allclose(fg.grad(lambda x: fnp.sum(LA.eigvalsh(x)))(s), np.eye(3), atol=1e-10)
    w, v = np.linalg.eigh(s)
    assert_allclose(fg.grad(lambda x: LA.eigvalsh(x)[-1])(s), np.outer(v[:, -1], v[:, -1]), atol=1e-10)
    # d/dA ||A||_* = U V^T.
    m = _rand(rng, (4, 3))
    u, _, vh = np.linalg.svd(m, full_matrices=False)
    assert_allclose(fg.grad(lambda x: LA.norm(x, "nuc"))(m), u @ vh, rtol=1e-10, atol=1e-10)


def test_make_jaxpr_and_linearize(rng):
    a = _spd(rng, (3, 3))
    text = str(fg.make_jaxpr(lambda x: LA.cholesky(x) @ LA.inv(x))(a))
    assert "cholesky" in text and "solve" in text
    text = str(fg.make_jaxpr(lambda x: LA.svd(x)[1])(a))
    assert "svd" in text
    y, f_lin = fg.linearize(lambda x: LA.eigh(x)[0], a)
    t = _rand(rng, (3, 3))
    _, expected = fg.jvp(lambda x: LA.eigh(x)[0], (a,), (t,))
    assert_allclose(f_lin(t), expected, rtol=1e-10)


# -- numerical failure and errors ------------------------------------------------------------------


def test_singular_and_not_positive_definite_give_nan_per_matrix(rng):
    a = np.stack([_well_conditioned(rng, (3, 3)), np.ones((3, 3))])
    out = np.asarray(LA.inv(a))
    assert_allclose(out[0], np.linalg.inv(a[0]), rtol=1e-10)
    assert np.all(np.isnan(out[1]))
    assert np.asarray(LA.det(a))[1] == 0.0
    p = np.stack([_spd(rng, (3, 3)), -np.eye(3)])
    L = np.asarray(LA.cholesky(p))
    assert_allclose(L[0], np.linalg.cholesky(p[0]), rtol=1e-10)
    assert np.all(np.isnan(L[1]))


@pytest.mark.parametrize(
    "fn,name",
    [
        (LA.inv, "inv"),
        (LA.det, "det"),
        (LA.slogdet, "slogdet"),
        (LA.cholesky, "cholesky"),
        (LA.eigh, "eigh"),
        (LA.eigvalsh, "eigh"),
    ],
)
def test_non_square_errors(fn, name):
    with pytest.raises(ValueError, match=rf"linalg\.{name}: a must be a square matrix.*\(2, 3\)"):
        fn(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"linalg\.{name}: a must have at least 2 dimensions.*\(3,\)"):
        fn(np.ones(3))


def test_solve_errors():
    with pytest.raises(ValueError, match=r"linalg\.solve: a \(3, 3\) and b \(4,\) do not match"):
        LA.solve(np.eye(3), np.ones(4))
    with pytest.raises(ValueError, match=r"linalg\.solve: a \(3, 3\) and b \(2, 4\) do not match"):
        LA.solve(np.eye(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"linalg\.solve: a must be a square matrix.*\(3, 2\)"):
        LA.solve(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="could not be broadcast"):
        LA.solve(np.ones((2, 3, 3)), np.ones((4, 3, 1)))
    with pytest.raises(ValueError, match=r"lax\.linalg\.triangular_solve: a \(3, 3\) and b \(3, 2\) do not match"):
        lax.linalg.triangular_solve(np.eye(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="unsupported mode 'raw'"):
        LA.qr(np.eye(2), mode="raw")
    with pytest.raises(TypeError, match="exponent must be an integer"):
        LA.matrix_power(np.eye(2), 1.5)


@pytest.mark.parametrize("shape", [(4, 2), (2, 4), (2, 5, 3)])
def test_full_matrices_derivatives(rng, shape):
    # The extra singular vectors / Q columns are not unique, but basis-independent quantities
    # (s, the leading vectors, the projector onto the complement) have exact derivatives.
    a = _rand(rng, shape)
    k = min(shape[-2:])

    def svd_invariants(x):
        u, s, vh = LA.svd(x, full_matrices=True)
        u2, v2 = u[..., :, k:], fnp.swapaxes(vh[..., k:, :], -1, -2)
        return s, u[..., :, :k] * u[..., :, :k], u2 @ fnp.swapaxes(u2, -1, -2), v2 @ fnp.swapaxes(v2, -1, -2)

    check_grads(svd_invariants, (a,), order=2)
    if shape[-2] > shape[-1]:

        def qr_invariants(x):
            q, r = LA.qr(x, mode="complete")
            q2 = q[..., :, k:]
            return q[..., :, :k], r, q2 @ fnp.swapaxes(q2, -1, -2)

        check_grads(qr_invariants, (a,), order=2)
        # The completed basis stays orthonormal to first order.
        q, dq = fg.jvp(lambda x: LA.qr(x, mode="complete").Q, (a,), (_rand(rng, shape),))
        skew = np.swapaxes(np.asarray(q), -1, -2) @ np.asarray(dq)
        assert_allclose(skew, -np.swapaxes(skew, -1, -2), atol=1e-12)
    assert_allclose(fg.jacfwd(lambda x: LA.svd(x)[0])(a), fg.jacrev(lambda x: LA.svd(x)[0])(a), atol=1e-10)


# -- differential tests against JAX ----------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_mods():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


def _jax_case(rng, name):
    a = _well_conditioned(rng, (2, 4, 4))
    s = _spd(rng, (2, 4, 4))
    m = _rand(rng, (2, 5, 3))
    b = _rand(rng, (2, 4, 2))
    cases = {
        "logdet": (lambda L, x: L.slogdet(x)[1].sum(), s),
        "det": (lambda L, x: (L.det(x) ** 2).sum(), a),
        "solve": (lambda L, x: (L.solve(x, b) ** 3).sum(), a),
        "inv": (lambda L, x: (L.inv(x) * b[..., :1]).sum(), a),
        "eigh": (
            lambda L, x: (L.eigh(x)[0] * np.arange(4.0)).sum() + (L.eigh(x)[1][..., 0, :] ** 2 * np.arange(4.0)).sum(),
            s,
        ),
        "cholesky": (lambda L, x: (L.cholesky(x) ** 2 * np.arange(16.0).reshape(4, 4)).sum(), s),
        "nuclear": (lambda L, x: L.norm(x, "nuc", axis=(-2, -1)).sum(), m),
        "spectral": (lambda L, x: L.norm(x, 2, axis=(-2, -1)).sum(), m),
        "svd_u": (lambda L, x: (L.svd(x, full_matrices=False)[0] ** 2 * np.arange(3.0)).sum(), m),
        "qr": (lambda L, x: (L.qr(x)[1] * np.arange(3.0)).sum() + (L.qr(x)[0] ** 3).sum(), m),
        "pinv": (lambda L, x: (L.pinv(x) ** 2 * np.arange(5.0)).sum(), m),
    }
    return cases[name]


@pytest.mark.parametrize(
    "name", ["logdet", "det", "solve", "inv", "eigh", "cholesky", "nuclear", "spectral", "svd_u", "qr", "pinv"]
)
def test_gradients_match_jax(rng, jax_mods, name):
    jax, jnp = jax_mods
    loss, x = _jax_case(rng, name)
    ours = fg.grad(lambda v: loss(LA, v))(x)
    theirs = jax.jit(jax.grad(lambda v: loss(jnp.linalg, v)))(jnp.asarray(x))  # one compile, not one per op
    assert_allclose(ours, np.asarray(theirs), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["logdet", "solve", "eigh", "cholesky", "nuclear"])
def test_hessian_vector_products_match_jax(rng, jax_mods, name):
    jax, jnp = jax_mods
    loss, x = _jax_case(rng, name)
    t = _rand(rng, x.shape)
    _, ours = fg.jvp(fg.grad(lambda v: loss(LA, v)), (x,), (t,))
    _, theirs = jax.jit(lambda p, d: jax.jvp(jax.grad(lambda v: loss(jnp.linalg, v)), (p,), (d,)))(x, t)
    assert_allclose(ours, np.asarray(theirs), rtol=1e-7, atol=1e-7)


def _complex_cases(rng):
    def c(shape):
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    a = c((2, 3, 3)) + 3 * np.eye(3)
    h = a @ np.conj(np.swapaxes(a, -1, -2)) + 3 * np.eye(3)
    w = c((2, 4, 3))
    b = c((2, 3, 2))
    return {
        "cholesky": (lambda L, x: L.cholesky(x), h),
        "eigh": (lambda L, x: (L.eigh(x)[0], abs(L.eigh(x)[1]) ** 2), h),
        "slogdet": (lambda L, x: tuple(L.slogdet(x)), a),
        "det": (lambda L, x: L.det(x), a),
        "solve": (lambda L, x: L.solve(x, b), a),
        "qr": (lambda L, x: tuple(L.qr(x)), w),
        "svd": (lambda L, x: (L.svd(x, compute_uv=False), abs(L.svd(x, full_matrices=False)[0]) ** 2), w),
        "pinv": (lambda L, x: L.pinv(x), w),
        "nuclear": (lambda L, x: L.norm(x, "nuc", axis=(-2, -1)), w),
    }


@pytest.mark.parametrize("name", ["cholesky", "eigh", "slogdet", "det", "solve", "qr", "svd", "pinv", "nuclear"])
def test_complex_jvp_vjp_match_jax(rng, jax_mods, name):
    jax, jnp = jax_mods
    f, x = _complex_cases(rng)[name]
    t = x * 0.1 + 0.05j * x.real
    jf = lambda v: f(jnp.linalg, v)
    _, ours = fg.jvp(lambda v: f(LA, v), (x,), (t,))
    _, theirs = jax.jit(lambda p, d: jax.jvp(jf, (p,), (d,)))(x, t)
    assert_allclose(
        tuple(fg.tree_leaves(ours)),
        tuple(np.asarray(v) for v in jax.tree_util.tree_leaves(theirs)),
        rtol=1e-9,
        atol=1e-9,
    )
    out = jax.eval_shape(jf, x)
    cts = jax.tree_util.tree_map(
        lambda o: np.asarray(
            rng.standard_normal(o.shape) + (1j * rng.standard_normal(o.shape) if o.dtype.kind == "c" else 0), o.dtype
        ),
        out,
    )
    theirs = jax.jit(lambda p, c: jax.vjp(jf, p)[1](c)[0])(x, cts)
    ours = fg.vjp(lambda v: f(LA, v), x)[1](jax.tree_util.tree_map(fnp.asarray, cts))[0]
    assert_allclose(ours, np.asarray(theirs), rtol=1e-9, atol=1e-9)
