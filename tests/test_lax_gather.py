"""lax.gather / lax.scatter_add / lax.scatter (JAX signatures): values vs JAX and derivatives."""

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.testing import check_grads


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


_r = np.random.default_rng(0)

# (name, operand shape, start_indices, GatherDimensionNumbers fields, slice_sizes); indices include
# out-of-range values so the modes matter.
GATHER_CASES = [
    (
        "rows",
        (5, 6),
        _r.integers(-2, 7, size=(4, 1)),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 6),
    ),
    (
        "points_window",
        (5, 6),
        _r.integers(-1, 6, size=(3, 2, 2)),
        dict(offset_dims=(2,), collapsed_slice_dims=(0,), start_index_map=(0, 1)),
        (1, 3),
    ),
    (
        "permuted_map",
        (5, 6, 4),
        _r.integers(0, 5, size=(3, 2)),
        dict(offset_dims=(1, 2), collapsed_slice_dims=(1,), start_index_map=(1, 0)),
        (2, 1, 4),
    ),
    (
        "batching",
        (3, 6, 4),
        _r.integers(-1, 7, size=(3, 5, 1)),
        dict(
            offset_dims=(2,),
            collapsed_slice_dims=(1,),
            start_index_map=(1,),
            operand_batching_dims=(0,),
            start_indices_batching_dims=(0,),
        ),
        (1, 1, 4),
    ),
    (
        "offsets_first",
        (5, 6),
        _r.integers(0, 5, size=(2, 3, 1)),
        dict(offset_dims=(0, 3), collapsed_slice_dims=(), start_index_map=(1,)),
        (2, 3),
    ),
    (
        "scalar_points",
        (4, 5),
        _r.integers(0, 4, size=(7, 2)),
        dict(offset_dims=(), collapsed_slice_dims=(0, 1), start_index_map=(0, 1)),
        (1, 1),
    ),
    (
        "no_index_vector",
        (4, 5),
        np.zeros((3, 0), np.int64),
        dict(offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=()),
        (2, 5),
    ),
    (
        "batching_middle",
        (2, 5, 3),
        _r.integers(0, 5, size=(4, 3, 1)),
        dict(
            offset_dims=(2,),
            collapsed_slice_dims=(1,),
            start_index_map=(1,),
            operand_batching_dims=(2,),
            start_indices_batching_dims=(1,),
        ),
        (2, 1, 1),
    ),
]
GATHER_IDS = [c[0] for c in GATHER_CASES]


def _scatter_fields(d):
    return dict(
        update_window_dims=d["offset_dims"],
        inserted_window_dims=d["collapsed_slice_dims"],
        scatter_dims_to_operand_dims=d["start_index_map"],
        operand_batching_dims=d.get("operand_batching_dims", ()),
        scatter_indices_batching_dims=d.get("start_indices_batching_dims", ()),
    )


def _gather_shape(jax, shape, idx, fields, slice_sizes):
    return jax.eval_shape(
        lambda x: jax.lax.gather(x, idx, jax.lax.GatherDimensionNumbers(**fields), slice_sizes), np.zeros(shape)
    ).shape


@pytest.mark.parametrize("mode", ["clip", "fill"])
@pytest.mark.parametrize("name,shape,idx,fields,slice_sizes", GATHER_CASES, ids=GATHER_IDS)
def test_gather_matches_jax(jax, mode, name, shape, idx, fields, slice_sizes):
    x = np.random.default_rng(1).standard_normal(shape)
    dn, jdn = lax.GatherDimensionNumbers(**fields), jax.lax.GatherDimensionNumbers(**fields)
    got = lax.gather(x, idx, dn, slice_sizes, mode=mode)
    want = jax.lax.gather(x, idx, jdn, slice_sizes, mode=mode)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # NaN fills compare equal
    # VJP (a scatter-add) vs JAX
    _, pullback = fg.vjp(lambda a: lax.gather(a, idx, dn, slice_sizes, mode=mode, fill_value=0.0), x)
    _, jpullback = jax.vjp(lambda a: jax.lax.gather(a, idx, jdn, slice_sizes, mode=mode, fill_value=0.0), x)
    ct = np.random.default_rng(2).standard_normal(want.shape)
    np.testing.assert_allclose(np.asarray(pullback(ct)[0]), np.asarray(jpullback(ct)[0]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mode", ["clip", "fill"])
@pytest.mark.parametrize("name,shape,idx,fields,slice_sizes", GATHER_CASES, ids=GATHER_IDS)
def test_scatter_matches_jax(jax, mode, name, shape, idx, fields, slice_sizes):
    r = np.random.default_rng(3)
    x = r.standard_normal(shape)
    u = r.standard_normal(_gather_shape(jax, shape, idx, fields, slice_sizes))
    sf = _scatter_fields(fields)
    dn, jdn = lax.ScatterDimensionNumbers(**sf), jax.lax.ScatterDimensionNumbers(**sf)
    got = lax.scatter_add(x, idx, u, dn, mode=mode)
    want = jax.lax.scatter_add(x, idx, u, jdn, mode=mode)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
    _, pullback = fg.vjp(lambda a, b: lax.scatter_add(a, idx, b, dn, mode=mode), x, u)
    _, jpullback = jax.vjp(lambda a, b: jax.lax.scatter_add(a, idx, b, jdn, mode=mode), x, u)
    ct = r.standard_normal(x.shape)
    for g, w in zip(pullback(ct), jpullback(ct)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-13)
    # scatter (set): compare where the written positions are unambiguous (no repeated windows)
    ones = lax.scatter_add(np.zeros(shape), idx, np.ones(u.shape), dn, mode=mode)
    if np.all(np.asarray(ones) <= 1):
        np.testing.assert_array_equal(
            np.asarray(lax.scatter(x, idx, u, dn, mode=mode)), np.asarray(jax.lax.scatter(x, idx, u, jdn, mode=mode))
        )


@pytest.mark.parametrize("mode", ["clip", "fill"])
@pytest.mark.parametrize("name", ["rows", "points_window", "batching", "offsets_first", "batching_middle"])
def test_gather_scatter_check_grads(name, mode):
    _, shape, idx, fields, slice_sizes = GATHER_CASES[GATHER_IDS.index(name)]
    r = np.random.default_rng(4)
    x = r.standard_normal(shape)
    gdn, sdn = lax.GatherDimensionNumbers(**fields), lax.ScatterDimensionNumbers(**_scatter_fields(fields))

    def g(a):
        return lax.gather(a, idx, gdn, slice_sizes, mode=mode, fill_value=0.0)

    check_grads(g, (x,), order=2)
    check_grads(lambda a: fnp.sin(g(a)) * g(a), (x,), order=2)
    u = r.standard_normal(g(x).shape)
    check_grads(lambda a, b: lax.scatter_add(a, idx, b, sdn, mode=mode), (x, u), order=2)
    check_grads(lambda a, b: lax.scatter_add(a * a, idx, fnp.exp(b), sdn, mode=mode) ** 2, (x, u), order=2)
    check_grads(lambda a, b: lax.scatter(a, idx, b, sdn, mode=mode), (x, u), order=2)
    check_grads(lambda a, b: lax.scatter(a, idx, b * b, sdn, mode=mode) ** 2, (x, u), order=2)


def test_scatter_repeated_indices():
    dn = lax.ScatterDimensionNumbers(
        update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,)
    )
    idx = np.array([[1], [3], [1], [1], [9], [-1]])
    u = np.arange(1.0, 7.0)
    x = np.zeros(5)
    np.testing.assert_array_equal(np.asarray(lax.scatter_add(x, idx, u, dn)), [0.0, 8.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(lax.scatter_add(x, idx, u, dn, mode="clip")), [6.0, 8.0, 0.0, 2.0, 5.0])
    out = np.asarray(lax.scatter(x, idx, u, dn))
    assert out[1] in (1.0, 3.0, 4.0) and out[3] == 2.0 and out[[0, 2, 4]].tolist() == [0.0, 0.0, 0.0]
    # only the update that was written receives a cotangent, and the overwritten operand none
    gx, gu = fg.grad(lambda a, b: fnp.sum(lax.scatter(a, idx, b, dn) * fnp.arange(1.0, 6.0)), argnums=(0, 1))(x, u)
    np.testing.assert_array_equal(np.asarray(gx), [1.0, 0.0, 3.0, 0.0, 5.0])
    written = {1.0: 0, 3.0: 2, 4.0: 3}[out[1]]
    expected = np.zeros(6)
    expected[1], expected[written] = 4.0, 2.0
    np.testing.assert_array_equal(np.asarray(gu), expected)


def test_gather_fill_values_and_dtypes():
    dn = lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,))
    idx = np.array([[0], [3], [-1], [2]])
    xf = fnp.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(lax.gather(xf, idx, dn, (1,))), [1.0, 3.0, 1.0, 3.0])  # clamps
    np.testing.assert_array_equal(np.asarray(lax.gather(xf, idx, dn, (1,), mode="fill")), [1.0, np.nan, np.nan, 3.0])
    np.testing.assert_array_equal(
        np.asarray(lax.gather(xf, idx, dn, (1,), mode="fill", fill_value=-7)), [1.0, -7.0, -7.0, 3.0]
    )
    xi = fnp.array([1, 2, 3], dtype="int32")
    out = lax.gather(xi, idx, dn, (1,), mode=lax.GatherScatterMode.FILL_OR_DROP)
    assert out.dtype == np.int32 and np.asarray(out).tolist() == [1, np.iinfo(np.int32).min, np.iinfo(np.int32).min, 3]
    xu = fnp.array([1, 2, 3], dtype="uint8")
    assert np.asarray(lax.gather(xu, idx, dn, (1,), mode="fill")).tolist() == [1, 255, 255, 3]
    assert np.asarray(lax.gather(xf, idx.astype(np.int32), dn, (1,))).tolist() == [1.0, 3.0, 1.0, 3.0]
    assert lax.gather(xf.astype("float32"), idx, dn, (1,)).dtype == np.float32


def test_gather_under_make_jaxpr_and_jvp():
    dn = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,))
    x, idx = np.random.default_rng(5).standard_normal((5, 3)), np.array([[4], [0], [4]])
    jaxpr = fg.make_jaxpr(lambda a, i: lax.gather(a, i, dn, (1, 3)))(x, idx)
    assert "gather" in str(jaxpr) and jaxpr.out_avals[0].shape == (3, 3)
    t = np.ones_like(x)
    out, tout = fg.jvp(lambda a: lax.gather(a, idx, dn, (1, 3)), (x,), (t,))
    np.testing.assert_array_equal(np.asarray(out), x[[4, 0, 4]])
    np.testing.assert_array_equal(np.asarray(tout), np.ones((3, 3)))
    g = fg.grad(lambda a: fnp.sum(lax.gather(a, idx, dn, (1, 3))))(x)
    np.testing.assert_array_equal(np.asarray(g), [[1.0] * 3, [0.0] * 3, [0.0] * 3, [0.0] * 3, [2.0] * 3])


GATHER_ERRORS = [
    (
        np.ones((4, 5)),
        np.ones((3, 1)),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 5),
        TypeError,
        r"lax.gather: indices must have an integer dtype, got float64",
    ),
    (
        np.ones((4, 5)),
        np.zeros((3, 2), int),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 5),
        ValueError,
        r"lax.gather: the index vector .*\(3, 2\).*2 entries.*start_index_map \(0,\) has 1",
    ),
    (
        np.ones((4, 5)),
        np.zeros((3, 1), int),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 6),
        ValueError,
        r"lax.gather: slice_sizes \(1, 6\) do not fit operand shape \(4, 5\)",
    ),
    (
        np.ones((4, 5)),
        np.zeros((3, 1), int),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (2, 5),
        ValueError,
        r"collapsed_slice_dims \(0,\) needs slice size <= 1",
    ),
    (
        np.ones((4, 5)),
        np.zeros((3, 1), int),
        dict(offset_dims=(1,), collapsed_slice_dims=(), start_index_map=(0,)),
        (1, 5),
        ValueError,
        r"account for the 2 axes of operand shape \(4, 5\)",
    ),
    (
        np.ones((4, 5)),
        np.zeros((3, 1), int),
        dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 5, 1),
        ValueError,
        r"slice_sizes \(1, 5, 1\) needs one entry per axis of operand shape \(4, 5\)",
    ),
]


@pytest.mark.parametrize("x,idx,fields,slice_sizes,exc,match", GATHER_ERRORS)
def test_gather_errors(x, idx, fields, slice_sizes, exc, match):
    with pytest.raises(exc, match=match):
        lax.gather(x, idx, lax.GatherDimensionNumbers(**fields), slice_sizes)


def test_scatter_errors():
    dn = lax.ScatterDimensionNumbers(
        update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,)
    )
    x, idx = np.zeros((4, 5)), np.zeros((3, 1), int)
    with pytest.raises(TypeError, match=r"lax.scatter_add: updates dtype float32 differs from operand dtype float64"):
        lax.scatter_add(x, idx, np.ones((3, 5), np.float32), dn)
    with pytest.raises(ValueError, match=r"lax.scatter_add: updates scatter axis 0 has size 2.*indices shape \(3, 1\)"):
        lax.scatter_add(x, idx, np.ones((2, 5)), dn)
    with pytest.raises(ValueError, match=r"lax.scatter: update window size 6 exceeds operand axis 1"):
        lax.scatter(x, idx, np.ones((3, 6)), dn)
    with pytest.raises(ValueError, match=r"lax.scatter_add: updates must have rank 2"):
        lax.scatter_add(x, idx, np.ones((3,)), dn)
    with pytest.raises(TypeError, match=r"lax.scatter_add: dimension_numbers must be a lax.ScatterDimensionNumbers"):
        lax.scatter_add(x, idx, np.ones((3, 5)), ((1,), (0,), (0,)))
    with pytest.raises(ValueError, match=r"unknown gather/scatter mode 'wrap'"):
        lax.scatter_add(x, idx, np.ones((3, 5)), dn, mode="wrap")
