"""Batching (vmap) rules of conv, reduce_window, gather/scatter, linalg, special functions and random.

Every rule is checked against a Python loop over the examples, stacked, for every placement of
the batch axis (``in_axes`` 0, 1, -1 and None for each operand, ``out_axes`` 0 and 1), and in
composition with ``grad`` both ways round: ``vmap(grad(f))`` equals the loop of gradients, and
``grad`` of a vmapped function equals ``grad`` of the looped one. All in float64, so the
batched and looped programs may differ by round-off only.
"""

import itertools

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax, random
from funcgrad.lax import linalg
from funcgrad.tree_util import tree_leaves

B = 3  # the vmapped size
AXES = (0, 1, -1, None)


# -- harness ----------------------------------------------------------------------------------


def _normal(rng, shape):
    return rng.standard_normal(shape)


def _ints(lo, hi):
    return lambda rng, shape: rng.integers(lo, hi, shape)


def _batched(rng, shape, axis, make):
    """An operand of per-example ``shape`` with a batch axis of size B at ``axis`` (None: no batch axis)."""
    if axis is None:
        return make(rng, shape)
    full = list(shape)
    full.insert(axis % (len(shape) + 1), B)
    return make(rng, tuple(full))


def _slice(x, i, axis):
    return x if axis is None else fnp.take(fnp.asarray(x), i, axis=axis)


def _looped(f, in_axes, out_axes=0):
    """``f`` applied example by example and stacked: the reference for ``vmap(f, in_axes, out_axes)``.

    Written with funcgrad operations, so it can be differentiated too.
    """

    def run(*args):
        outs = [f(*[_slice(a, i, ax) for a, ax in zip(args, in_axes)]) for i in range(B)]
        leaves = [tree_leaves(o) for o in outs]
        stacked = [fnp.stack([fnp.asarray(ls[k]) for ls in leaves], axis=out_axes) for k in range(len(leaves[0]))]
        return fg.tree_util.tree_unflatten(fg.tree_util.tree_structure(outs[0]), stacked)

    return run


def _assert_close(got, want, tol):
    got, want = tree_leaves(got), tree_leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        if g.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(g, w)


def _combos(shapes):
    """Every in_axes tuple over AXES with at least one mapped operand (scalars map only at 0)."""
    out = []
    for axes in itertools.product(AXES, repeat=len(shapes)):
        if all(a is None for a in axes):
            continue
        if any(len(s) == 0 and a not in (0, None) for s, a in zip(shapes, axes)):
            continue
        out.append(axes)
    return out


def _sum_squares(out):
    return sum(fnp.sum(leaf * leaf) for leaf in tree_leaves(out) if np.dtype(leaf.dtype).kind == "f")


def check_rule(f, args, in_axes, diff=(), tol=1e-9, grad_tol=1e-7, out_axes=(0, 1)):
    """vmap vs the loop (each out_axes), vmap(grad) vs the loop of grads, grad(vmap) vs grad(loop)."""
    for oa in out_axes:
        _assert_close(fg.vmap(f, in_axes, oa)(*args), _looped(f, in_axes, oa)(*args), tol)
    if not diff:
        return
    g = fg.grad(lambda *a: _sum_squares(f(*a)), argnums=diff)
    _assert_close(fg.vmap(g, in_axes)(*args), _looped(g, in_axes)(*args), grad_tol)

    oa = out_axes[-1]
    weights = [
        np.random.default_rng(1).standard_normal(np.shape(leaf)) for leaf in tree_leaves(_looped(f, in_axes, oa)(*args))
    ]

    def weighted(fn):
        def h(*a):
            leaves = tree_leaves(fn(*a))
            return sum(fnp.sum(leaf * w) for leaf, w in zip(leaves, weights) if np.dtype(leaf.dtype).kind == "f")

        return fg.grad(h, argnums=diff)

    _assert_close(weighted(fg.vmap(f, in_axes, oa))(*args), weighted(_looped(f, in_axes, oa))(*args), grad_tol)


def make_args(rng, shapes, axes, makers=None):
    makers = makers or [_normal] * len(shapes)
    return [_batched(rng, s, a, m) for s, a, m in zip(shapes, axes, makers)]


# -- conv_general_dilated ------------------------------------------------------------------------

CONV_CASES = {
    "plain": ((2, 4, 5, 6), (6, 4, 3, 2), dict(window_strides=(1, 2), padding="SAME", rhs_dilation=(2, 1))),
    "feature_groups": ((2, 4, 5, 6), (6, 2, 3, 2), dict(window_strides=(1, 1), padding="VALID", feature_group_count=2)),
    "batch_groups": ((4, 4, 5, 4), (6, 4, 2, 2), dict(window_strides=(1, 1), padding="VALID", batch_group_count=2)),
    "nhwc_groups": (
        (2, 5, 6, 4),
        (3, 2, 2, 6),
        dict(
            window_strides=(2, 1),
            padding=((1, 0), (2, 1)),
            lhs_dilation=(2, 1),
            feature_group_count=2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ),
    ),
    "conv_1d_depthwise": ((2, 3, 7), (6, 1, 3), dict(window_strides=(2,), padding=((1, 2),), feature_group_count=3)),
}


@pytest.mark.parametrize("in_axes", _combos([(0, 0), (0, 0)]), ids=str)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_general_dilated(case, in_axes, rng):
    lhs_shape, rhs_shape, kw = CONV_CASES[case]

    def f(x, w):
        return lax.conv_general_dilated(x, w, **kw)

    args = make_args(rng, [lhs_shape, rhs_shape], in_axes)
    check_rule(f, args, in_axes, diff=(0, 1))


def test_conv_per_example_kernel_grads(rng):
    # The classic use: per-example gradients of a convolution's kernel.
    x = rng.standard_normal((5, 1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))

    def loss(w, x):
        return fnp.sum(fnp.tanh(lax.conv_general_dilated(x, w, (1, 1), "SAME")) ** 2)

    got = fg.vmap(fg.grad(loss), in_axes=(None, 0))(w, x)
    want = np.stack([np.asarray(fg.grad(loss)(w, x[i])) for i in range(5)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-9)


# -- reduce_window ---------------------------------------------------------------------------------

WINDOW_CASES = {
    "strided_same": dict(window_dimensions=(2, 3), window_strides=(1, 2), padding="SAME"),
    "dilated": dict(
        window_dimensions=(2, 2),
        window_strides=(2, 1),
        padding=((1, 0), (0, 2)),
        base_dilation=(2, 1),
        window_dilation=(1, 2),
    ),
}


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("case", list(WINDOW_CASES))
@pytest.mark.parametrize("kind", ["sum", "max", "min"])
def test_reduce_window(kind, case, axis, rng):
    fn = getattr(lax, f"reduce_window_{kind}")
    kw = WINDOW_CASES[case]

    def f(x):
        return fn(x, **kw)

    # Distinct values: the derivative of a max/min is defined by a unique winner.
    x = _batched(rng, (4, 5), axis, lambda r, s: r.permutation(int(np.prod(s))).reshape(s) * 0.1)
    check_rule(f, [x], (axis,), diff=(0,))


@pytest.mark.parametrize("in_axes", _combos([(4, 5), ()]), ids=str)
def test_reduce_window_with_init_value(in_axes, rng):
    def f(x, init):
        return lax.reduce_window(x, init, lax.max, (2, 2), (1, 1), "SAME")

    args = make_args(rng, [(4, 5), ()], in_axes)
    check_rule(f, args, in_axes, diff=(0, 1))


def test_max_pool_second_order_under_vmap(rng):
    # vmap(hessian) goes through the winner primitive, gather and scatter_add batching rules.
    x = rng.permutation(2 * 16).reshape(2, 4, 4) * 0.1

    def f(x):
        return fnp.sum(lax.reduce_window_max(x, (2, 2), (2, 2), "VALID") ** 3)

    got = fg.vmap(fg.hessian(f))(x)
    want = np.stack([np.asarray(fg.hessian(f)(x[i])) for i in range(2)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9)


# -- gather / scatter --------------------------------------------------------------------------------

GD, SD = lax.GatherDimensionNumbers, lax.ScatterDimensionNumbers

GATHER_CASES = {
    # name: (dimension numbers, operand shape, indices shape, slice sizes, index maker, mode)
    "rows": (GD((1,), (0,), (0,)), (3, 4), (2, 1), (1, 4), _ints(0, 3), None),
    "operand_batching_dims": (GD((2,), (1,), (1,), (0,), (0,)), (2, 3, 4), (2, 5, 1), (1, 1, 4), _ints(0, 3), None),
    "fill_out_of_bounds": (GD((1, 2), (), (0,)), (5, 4), (3, 1), (2, 4), _ints(-2, 6), "fill"),
    "clip_out_of_bounds": (GD((1, 2), (), (0,)), (5, 4), (3, 1), (2, 4), _ints(-2, 6), "clip"),
    "vector_index": (GD((0, 1), (), (0, 1)), (5, 4), (2,), (2, 3), _ints(0, 4), None),
}


@pytest.mark.parametrize("in_axes", _combos([(0, 0), (0, 0)]), ids=str)
@pytest.mark.parametrize("case", list(GATHER_CASES))
def test_gather(case, in_axes, rng):
    dn, op_shape, idx_shape, sizes, make_idx, mode = GATHER_CASES[case]

    def f(x, idx):
        return lax.gather(x, idx, dn, sizes, mode=mode, fill_value=None if mode != "fill" else -1.0)

    args = make_args(rng, [op_shape, idx_shape], in_axes, [_normal, make_idx])
    check_rule(f, args, in_axes, diff=(0,))


def _unique_rows(rng, shape):
    # Indices (..., 4, 1) without repeats within each example (scatter's winner is then defined).
    n = int(np.prod(shape[:-2], dtype=np.int64))
    rows = [rng.permutation(6)[:4] - 1 for _ in range(max(n, 1))]  # -1 is out of bounds
    idx = np.stack(rows).reshape(shape[:-2] + (4,))
    return idx[..., None]


def _unique_indices(rng, shape):
    # shape is (4, 1) with the batch axis inserted anywhere: build it batch-first, then move it.
    if len(shape) == 2:
        return _unique_rows(rng, shape)
    axis = next(i for i, n in enumerate(shape) if n == B)
    return np.moveaxis(_unique_rows(rng, (B, 4, 1)), 0, axis)


SCATTER_CASES = {
    # name: (function, dimension numbers, operand, indices, updates shapes, index maker)
    "scatter_add": (lax.scatter_add, SD((1,), (0,), (0,)), (5, 3), (4, 1), (4, 3), _ints(-1, 6)),
    "scatter": (lax.scatter, SD((1,), (0,), (0,)), (5, 3), (4, 1), (4, 3), _unique_indices),
    "scatter_add_batching_dims": (
        lax.scatter_add,
        SD((2,), (1,), (1,), (0,), (0,)),
        (2, 5, 3),
        (2, 4, 1),
        (2, 4, 3),
        _ints(0, 5),
    ),
}


@pytest.mark.parametrize("in_axes", _combos([(0, 0), (0, 0), (0, 0)]), ids=str)
@pytest.mark.parametrize("case", list(SCATTER_CASES))
def test_scatter(case, in_axes, rng):
    prim, dn, op_shape, idx_shape, up_shape, make_idx = SCATTER_CASES[case]
    args = make_args(rng, [op_shape, idx_shape, up_shape], in_axes, [_normal, make_idx, _normal])
    for mode in (None, "clip"):

        def f(x, idx, u, mode=mode):
            return prim(x, idx, u, dn, mode=mode)

        check_rule(f, args, in_axes, diff=(0, 2))


# -- linalg --------------------------------------------------------------------------------------------


def _spd(rng, shape):
    a = rng.standard_normal(shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def _batched_spd(rng, n, axis):
    if axis is None:
        return _spd(rng, (n, n))
    return np.moveaxis(_spd(rng, (B, n, n)), 0, axis)


def _abs_leaves(out):
    # Singular / eigen / QR vectors are defined up to sign: differentiate sign-invariant values.
    return [fnp.abs(leaf) for leaf in tree_leaves(out)]


UNARY_LINALG = {
    "cholesky": (lambda a: linalg.cholesky(a), True),
    "det": (lambda a: linalg.det(a), True),
    "slogdet": (lambda a: linalg.slogdet(a), True),
    "qr": (lambda a: linalg.qr(a), False),
    "qr_reduced_tall": (lambda a: linalg.qr(a[:, :3], full_matrices=False), False),
    "eigh": (lambda a: linalg.eigh(a), False),
    "svd": (lambda a: linalg.svd(a), False),
    "svd_values_tall": (lambda a: linalg.svd(a[:, :3], compute_uv=False), True),
    "pinv_wide": (lambda a: linalg.pinv(a[:3]), True),
    "inv": (lambda a: fnp.linalg.inv(a), True),
}


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", list(UNARY_LINALG))
def test_linalg_unary(name, axis, rng):
    f, scalar_free = UNARY_LINALG[name]
    a = _batched_spd(rng, 4, axis)
    out_axes = (0, -1) if name in ("det", "slogdet") else (0, 1)
    check_rule(f, [a], (axis,), out_axes=out_axes)
    # Derivatives of sign-invariant functions of the outputs.
    g = fg.grad(lambda a: _sum_squares(f(a) if scalar_free else _abs_leaves(f(a))))
    _assert_close(fg.vmap(g, (axis,))(a), _looped(g, (axis,))(a), 1e-7)
    h = fg.grad(lambda a: _sum_squares(fg.vmap(lambda m: _abs_leaves(f(m)), (axis,))(a)))
    h_ref = fg.grad(lambda a: _sum_squares(_looped(lambda m: _abs_leaves(f(m)), (axis,))(a)))
    _assert_close(h(a), h_ref(a), 1e-7)


SOLVES = {
    "solve": (lambda a, b: linalg.solve(a, b), (3, 2)),
    "tri_left_lower": (lambda a, b: linalg.triangular_solve(a, b, left_side=True, lower=True), (3, 2)),
    "tri_right_upper_transposed": (
        lambda a, b: linalg.triangular_solve(a, b, left_side=False, lower=False, transpose_a=True),
        (2, 3),
    ),
    "tri_left_unit_diag": (
        lambda a, b: linalg.triangular_solve(a, b, left_side=True, lower=False, unit_diagonal=True),
        (3, 4),
    ),
    "fnp_solve_vector": (lambda a, b: fnp.linalg.solve(a, b[:, 0]), (3, 2)),
}


@pytest.mark.parametrize("in_axes", _combos([(0, 0), (0, 0)]), ids=str)
@pytest.mark.parametrize("name", list(SOLVES))
def test_linalg_solves(name, in_axes, rng):
    f, b_shape = SOLVES[name]
    a = _batched_spd(rng, 3, in_axes[0])
    b = _batched(rng, b_shape, in_axes[1], _normal)
    check_rule(f, [a, b], in_axes, diff=(0, 1))


def test_linalg_failure_is_per_example():
    # One matrix that is not positive definite makes only its own example NaN.
    good = np.eye(2) * 2.0
    bad = -np.eye(2)
    out = np.asarray(fg.vmap(linalg.cholesky)(np.stack([good, bad, good])))
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()


# -- special functions -------------------------------------------------------------------------------


@pytest.mark.parametrize("in_axes", _combos([(0, 0), (0, 0)]), ids=str)
@pytest.mark.parametrize("name", ["igamma", "igammac", "polygamma", "lgamma_digamma"])
def test_special(name, in_axes, rng):
    fns = {
        "igamma": lambda a, x: lax.igamma(a, x),
        "igammac": lambda a, x: lax.igammac(a, x),
        # The order of polygamma is static (a Python int), as documented.
        "polygamma": lambda a, x: lax.polygamma(2, x) * a,
        "lgamma_digamma": lambda a, x: lax.lgamma(a) + lax.digamma(x) + lax.erf_inv(fnp.tanh(a)),
    }
    positive = lambda r, s: np.abs(r.standard_normal(s)) + 0.5  # noqa: E731
    args = make_args(rng, [(2, 3), (2, 3)], in_axes, [positive, positive])
    check_rule(fns[name], args, in_axes, diff=(1,), grad_tol=1e-6)


def test_polygamma_batched_order_is_a_clear_error():
    with pytest.raises(fg.errors.ConcretizationError, match="order m must be concrete"):
        fg.vmap(lax.polygamma)(np.arange(3.0), np.ones(3))


# -- random --------------------------------------------------------------------------------------------

SAMPLERS = {
    "normal": lambda k: random.normal(k, (3,)),
    "normal_f64": lambda k: random.normal(k, (2, 2), dtype=np.float64),
    "uniform": lambda k: random.uniform(k, (2, 3), minval=-1.0, maxval=2.0),
    "randint": lambda k: random.randint(k, (4,), 0, 10),
    "bernoulli": lambda k: random.bernoulli(k, 0.3, (6,)),
    "categorical": lambda k: random.categorical(k, fnp.array([0.1, 0.5, -1.0]), shape=(4,)),
    "permutation": lambda k: random.permutation(k, 7),
    "choice": lambda k: random.choice(k, 5, (3,), replace=False),
    "choice_p": lambda k: random.choice(k, 5, (3,), p=fnp.array([0.1, 0.2, 0.3, 0.2, 0.2])),
    "truncated_normal": lambda k: random.truncated_normal(k, -1.0, 2.0, (3,)),
    "split": lambda k: random.split(k, 3),
    "fold_in": lambda k: random.fold_in(k, 7),
    "bits": lambda k: random.bits(k, (3,)),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_random_over_split_keys(name):
    f = SAMPLERS[name]
    keys = random.split(random.PRNGKey(0), 5)
    want = np.stack([np.asarray(f(keys[i])) for i in range(5)])
    np.testing.assert_array_equal(np.asarray(fg.vmap(f)(keys)), want)
    np.testing.assert_array_equal(np.asarray(fg.vmap(f, in_axes=1)(keys.T)), want)
    np.testing.assert_array_equal(np.asarray(fg.vmap(f, out_axes=1)(keys)), np.moveaxis(want, 0, 1))


def test_random_normal_over_split_keys_matches_stacked_draws():
    key = random.PRNGKey(42)
    got = fg.vmap(lambda k: random.normal(k, (3,)))(random.split(key, 5))
    want = np.stack([np.asarray(random.normal(k, (3,))) for k in random.split(key, 5)])
    assert got.shape == (5, 3)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_random_nested_vmap_and_batched_parameters():
    keys = random.split(random.PRNGKey(1), 6).reshape(2, 3, 2)
    got = fg.vmap(fg.vmap(lambda k: random.uniform(k, (2,))))(keys)
    want = np.stack([np.stack([np.asarray(random.uniform(keys[i, j], (2,))) for j in range(3)]) for i in range(2)])
    np.testing.assert_array_equal(np.asarray(got), want)

    # One key, per-example parameters and fold_in data.
    key = random.PRNGKey(3)
    lo, hi = np.array([0.0, 1.0, 5.0]), np.array([1.0, 3.0, 6.0])
    got = fg.vmap(lambda a, b: random.uniform(key, (4,), minval=a, maxval=b))(lo, hi)
    want = np.stack([np.asarray(random.uniform(key, (4,), minval=a, maxval=b)) for a, b in zip(lo, hi)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    got = fg.vmap(lambda d: random.fold_in(key, d))(fnp.arange(4))
    want = np.stack([np.asarray(random.fold_in(key, i)) for i in range(4)])
    np.testing.assert_array_equal(np.asarray(got), want)
    p = np.array([0.1, 0.5, 0.9])
    got = fg.vmap(lambda p: random.bernoulli(key, p, (8,)))(p)
    np.testing.assert_array_equal(np.asarray(got), np.stack([np.asarray(random.bernoulli(key, q, (8,))) for q in p]))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0), (None, 1)], ids=str)
def test_threefry_2x32(in_axes):
    keys = np.asarray(random.split(random.PRNGKey(0), B))
    counts = np.arange(B * 4, dtype=np.uint32).reshape(B, 4)
    args = [
        keys if in_axes[0] == 0 else keys[0],
        counts if in_axes[1] == 0 else (counts.T if in_axes[1] == 1 else counts[0]),
    ]
    check_rule(random.threefry_2x32, args, in_axes)


def test_grad_through_samples_under_vmap():
    keys = random.split(random.PRNGKey(0), 4)

    def loss(mu, k):
        return fnp.sum((mu + random.normal(k, (3,), dtype=np.float64)) ** 2)

    mu = np.array([0.5, -1.0, 2.0])
    got = fg.vmap(fg.grad(loss), in_axes=(None, 0))(mu, keys)
    want = np.stack([np.asarray(fg.grad(loss)(mu, keys[i])) for i in range(4)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
