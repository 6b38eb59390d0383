"""The fast evaluations of lax.reduce_window_{sum,max,min} and their winners (funcgrad/lax/windowed.py).

The primitives' impls take a NumPy path (one strided view per window offset) or, for the winners
of float windows over at most two axes, a numba loop (funcgrad/jit/window_kernels.py). Both must
give exactly what the reference evaluation (``_reduce_general`` / ``_winner_general``: reduce or
argmax a sliding-window view) gives: same dtypes, same values, same tie-breaking (the first max
in row-major window order; the first NaN; padding that comes first). They are compared here with
the reference on random window configurations and on hand-made ties, NaN and -inf cases, with
JAX where it is installed, and through derivatives, ``jit`` and ``vmap``.
"""

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.core.errors import ShapeError
from funcgrad.lax import windowed as W
from funcgrad.testing import check_grads

PRIMS = {"sum": W.reduce_window_sum_p, "max": W.reduce_window_max_p, "min": W.reduce_window_min_p}


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.fixture(params=["kernel", "numpy"])
def path(request, monkeypatch):
    """Force the fast paths, whatever the sizes: ``kernel`` with the numba winner loop where it
    applies, ``numpy`` without it (the per-offset NumPy winner everywhere)."""
    monkeypatch.setattr(W, "_VALUE_MIN_OUT_PER_OFFSET", 0)
    monkeypatch.setattr(W, "_WINNER_MIN_OUT_PER_OFFSET", 0)
    monkeypatch.setattr(W, "_WINNER_MAX_OFFSETS", 1 << 30)
    if request.param == "numpy":
        monkeypatch.setattr(W, "_kernel_moving", lambda kind, dtype, params: None)
    return request.param


def params(nd, window=None, strides=None, padding=None, base=None, wdil=None):
    def ints(v):
        return tuple(int(i) for i in ((1,) * nd if v is None else v))

    return dict(
        window_dimensions=ints(window),
        window_strides=ints(strides),
        padding=tuple((int(lo), int(hi)) for lo, hi in (((0, 0),) * nd if padding is None else padding)),
        base_dilation=ints(base),
        window_dilation=ints(wdil),
    )


def random_params(rng, shape):
    nd = len(shape)
    while True:
        p = params(
            nd,
            window=rng.integers(1, 4, nd),
            strides=rng.integers(1, 3, nd),
            padding=rng.integers(-1, 3, (nd, 2)),
            base=rng.integers(1, 3, nd),
            wdil=rng.integers(1, 3, nd),
        )
        try:
            if all(n > 0 for n in W._window_shape(np.empty(shape), "test", **p)):
                return p
        except ShapeError:
            continue


def random_operand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # Few distinct values (ties), including the extremes that tie with max/min padding.
        return rng.choice(np.array([info.min, info.max, 0, 1, 2], dtype), shape)
    x = rng.integers(-2, 3, shape).astype(dtype)  # many ties, signed zeros below
    x = np.where(rng.random(shape) < 0.5, x, -x).astype(dtype)
    special = rng.random(shape)
    x[special < 0.08] = np.nan
    x[(special >= 0.08) & (special < 0.16)] = -np.inf
    x[(special >= 0.16) & (special < 0.2)] = np.inf
    return x


def assert_same(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got, want, err_msg=what)


def assert_bitwise(got, want, what):
    """Equal bit for bit (signed zeros included), except for NaN payloads: which NaN an addition of
    two NaNs (or of inf and -inf) yields depends on the operand order the C compiler picked."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan, err_msg=what)
        got, want = got[~nan], want[~nan]
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


# -- fast paths against the reference ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int8", "uint8", "bool"])
def test_fast_matches_reference_on_random_windows(rng, dtype, path):
    checked = 0
    for trial in range(60):
        shape = tuple(int(s) for s in rng.integers(1, 7, rng.integers(1, 5)))
        p = random_params(rng, shape)
        x = random_operand(rng, shape, dtype)
        if trial % 3 == 0:  # a non-contiguous operand
            x = np.asfortranarray(x)
        for kind in ("max", "min"):
            what = f"{kind} {dtype} {shape} {p}"
            assert_same(PRIMS[kind].impl(x, **p), W._reduce_general(x, kind, **p), what)
            assert_same(W._winner_impl(x, kind=kind, **p), W._winner_general(x, kind=kind, **p), "winner " + what)
            checked += W._fast_plan(x, kind, "winner", **p) is not None
        # Sums: integer sums are exact; float sums take the fast path only where they add in the
        # reference's order, so they agree bit for bit (signed zeros included).
        assert_bitwise(PRIMS["sum"].impl(x, **p), W._reduce_general(x, "sum", **p), f"sum {dtype} {shape} {p}")
        if x.dtype.kind == "f":  # values whose sums round: the order of the additions shows
            xn = rng.standard_normal(shape).astype(dtype)
            assert_bitwise(PRIMS["sum"].impl(xn, **p), W._reduce_general(xn, "sum", **p), f"sum {dtype} {shape} {p}")
    assert checked > 60  # most configurations do take the fast path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_max_and_sum_bitwise_on_pooling_shapes(rng, dtype, path):
    # Typical pooling windows (no padding: the sum guard admits them): values whose sums round,
    # signed zeros and ties.
    shape = (2, 3, 12, 10)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.3] = 0.0
    x[rng.random(shape) < 0.3] *= -1
    x[rng.random(shape) < 0.1] = 1.0
    for window, strides in [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 3), (2, 2)), ((2, 3), (1, 2))]:
        p = params(4, window=(1, 1) + window, strides=(1, 1) + strides)
        for kind in ("max", "min", "sum"):
            assert W._fast_plan(x, kind, "value", **p) is not None
            assert_bitwise(PRIMS[kind].impl(x, **p), W._reduce_general(x, kind, **p), f"{kind} {window} {strides}")
        for kind in ("max", "min"):
            assert_same(W._winner_impl(x, kind=kind, **p), W._winner_general(x, kind=kind, **p), f"winner {kind}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_of_negative_zeros_is_positive_zero(dtype, path):
    # The reference adds from +0.0, so windows of -0.0 sum to +0.0; the fast sum matches it.
    x = np.full((2, 6, 4), -0.0, dtype)
    x[0, 0, 0] = 1.0
    p = params(3, window=(1, 2, 2), strides=(1, 2, 1))
    assert W._fast_plan(x, "sum", "value", **p) is not None
    got = PRIMS["sum"].impl(x, **p)
    assert_bitwise(got, W._reduce_general(x, "sum", **p), "sum")
    assert not np.signbit(got).any()


@pytest.mark.parametrize(
    "shape,window,strides",
    [
        ((2, 6, 7, 3), (1, 2, 2, 1), (1, 2, 2, 1)),  # NHWC: channels merge into C
        ((4, 3, 5, 6), (2, 1, 3, 1), (1, 1, 2, 1)),  # an unwindowed axis between the windowed ones
        ((3, 10, 2), (1, 3, 1), (1, 2, 1)),  # one windowed axis
        ((3, 4, 5, 6), (2, 2, 2, 1), (1, 1, 1, 1)),  # three windowed axes: NumPy path
        ((4, 6, 6), (1, 2, 2), (2, 2, 2)),  # a strided unwindowed axis: NumPy path
    ],
)
@pytest.mark.parametrize("pad", [False, True])
def test_layouts(rng, shape, window, strides, pad, path):
    nd = len(shape)
    padding = [(1, 0) if k > 1 else (0, 1) for k in window] if pad else None
    p = params(nd, window=window, strides=strides, padding=padding)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0] = x[0, 0].max()  # a row of ties
    for kind in ("max", "min"):
        assert_same(PRIMS[kind].impl(x, **p), W._reduce_general(x, kind, **p), kind)
        assert_same(W._winner_impl(x, kind=kind, **p), W._winner_general(x, kind=kind, **p), "winner " + kind)


def test_the_cnn_pool_takes_the_fast_paths():
    x = np.zeros((32, 16, 28, 28), np.float32)
    p = params(4, window=(1, 1, 2, 2), strides=(1, 1, 2, 2))
    assert W._fast_plan(x, "max", "value", **p) is not None
    plan = W._fast_plan(x, "max", "winner", **p)
    assert plan is not None and plan.out_shape == (32, 16, 14, 14)
    xp5, out5, window, strides, dilation, moving = plan.kernel_layout()
    assert (xp5.shape, out5, window, strides, dilation, moving) == (
        (512, 28, 1, 28, 1),
        (512, 14, 1, 14, 1),
        (2, 2),
        (2, 2),
        (1, 1),
        [2, 3],
    )


def test_the_reference_keeps_windows_it_is_faster_on():
    # Global pooling: few outputs, long contiguous windows; per-offset passes would not pay.
    x = np.zeros((4, 8, 28, 28), np.int32)
    p = params(4, window=(1, 1, 28, 28))
    assert W._fast_plan(x, "max", "value", **p) is None
    assert W._fast_plan(x, "max", "winner", **p) is None
    # The numba winner loop has no per-offset overhead: float windows over two axes take it.
    assert W._fast_plan(x.astype(np.float32), "max", "winner", **p).kernel_layout() is not None
    # A 3-d window (no kernel) with a small output: the reference.
    y = np.zeros((2, 4, 4, 4), np.float32)
    assert W._fast_plan(y, "max", "winner", **params(4, window=(1, 2, 2, 2), strides=(1, 2, 2, 2))) is None
    # Large 3-d pooling: the per-offset NumPy winner.
    z = np.zeros((4, 8, 16, 16, 16), np.float32)
    q = params(5, window=(1, 1, 2, 2, 2), strides=(1, 1, 2, 2, 2))
    plan = W._fast_plan(z, "max", "winner", **q)
    assert plan is not None and plan.kernel_layout() is None


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_default_selection_matches_reference(rng, dtype):
    # No forcing: whatever path each configuration takes by default gives the reference's result.
    for shape, window, strides in [
        ((4, 8, 28, 28), (1, 1, 28, 28), (1, 1, 1, 1)),
        ((2, 16, 12, 12), (1, 1, 2, 2), (1, 1, 2, 2)),
        ((2, 4, 8, 8, 8), (1, 1, 2, 2, 2), (1, 1, 2, 2, 2)),
        ((3, 5), (2, 2), (1, 1)),
    ]:
        x = random_operand(rng, shape, dtype)
        p = params(len(shape), window=window, strides=strides)
        for kind in ("max", "min", "sum"):
            assert_bitwise(PRIMS[kind].impl(x, **p), W._reduce_general(x, kind, **p), f"{kind} {shape}")
        for kind in ("max", "min"):
            assert_same(W._winner_impl(x, kind=kind, **p), W._winner_general(x, kind=kind, **p), f"winner {shape}")


# -- ties, NaN, -inf and padding ---------------------------------------------------------------------


def test_ties_pick_the_first_in_row_major_window_order(path):
    x = np.array([[1.0, 2.0, 2.0, 0.0], [2.0, 2.0, 0.0, 2.0]], np.float32)
    p = params(2, window=(2, 2), strides=(1, 2))
    np.testing.assert_array_equal(W._winner_impl(x, kind="max", **p)[..., 0], [[1, 2]])
    np.testing.assert_array_equal(W._winner_impl(x, kind="min", **p)[..., 0], [[0, 3]])
    # All equal: the first slot of every window.
    x = np.full((3, 4), 7.0)
    p = params(2, window=(2, 2), strides=(1, 1))
    np.testing.assert_array_equal(W._winner_impl(x, kind="max", **p)[..., 0], [[0, 1, 2], [4, 5, 6]])
    # Signed zeros compare equal: the first one wins.
    x = np.array([[-0.0, 0.0, 0.0, -0.0]])
    np.testing.assert_array_equal(
        W._winner_impl(x, kind="max", **params(2, window=(1, 2), strides=(1, 2))), [[[0], [2]]]
    )


def test_nan_windows_pick_the_first_nan(path):
    nan = np.nan
    x = np.array([[1.0, nan, 3.0, nan], [nan, 5.0, 2.0, 1.0], [0.0, 1.0, 4.0, nan]], np.float64)
    p = params(2, window=(1, 4), strides=(1, 1))
    for kind in ("max", "min"):
        np.testing.assert_array_equal(W._winner_impl(x, kind=kind, **p)[:, 0, 0], [1, 4, 11])
        np.testing.assert_array_equal(PRIMS[kind].impl(x, **p)[:, 0], [nan, nan, nan])
        assert_same(W._winner_impl(x, kind=kind, **p), W._winner_general(x, kind=kind, **p), kind)
    # 2-d windows: the first NaN in row-major order, NaN values.
    x = np.arange(16.0).reshape(4, 4)
    x[1, 0] = x[0, 1] = x[3, 3] = nan
    p = params(2, window=(2, 2), strides=(2, 2))
    np.testing.assert_array_equal(W._winner_impl(x, kind="max", **p)[..., 0], [[1, 7], [13, 15]])
    np.testing.assert_array_equal(PRIMS["max"].impl(x, **p), [[nan, 7.0], [13.0, nan]])


def test_padding_that_ties_first_wins_and_gets_no_index(path):
    # -inf values tie with the max's -inf padding: a window whose padding comes first gets x.size.
    x = np.array([-np.inf, -np.inf, 1.0, -np.inf], np.float32)
    p = params(1, window=(3,), strides=(1,), padding=((1, 1),))
    np.testing.assert_array_equal(W._winner_impl(x, kind="max", **p)[:, 0], [4, 2, 2, 2])
    # +inf ties with the min's padding.
    y = np.array([np.inf, np.inf, 0.0], np.float64)
    np.testing.assert_array_equal(W._winner_impl(y, kind="min", **p)[:, 0], [3, 2, 2])
    # Integers: iinfo.min ties with the max's padding.
    z = np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).min, 5], np.int32)
    np.testing.assert_array_equal(W._winner_impl(z, kind="max", **p)[:, 0], [3, 2, 2])
    # A window of padding only (and base-dilation holes).
    x2 = np.array([[3.0, 1.0], [2.0, 4.0]], np.float32)
    p2 = params(2, window=(2, 2), strides=(2, 2), padding=((2, 1), (0, 1)), base=(2, 1))
    got = W._winner_impl(x2, kind="max", **p2)
    assert_same(got, W._winner_general(x2, kind="max", **p2), "padded")
    np.testing.assert_array_equal(got[..., 0], [[4], [0], [3]])


def test_empty_and_degenerate_windows(path):
    x = np.arange(6.0).reshape(2, 3)
    for p in (params(2, window=(0, 1)), params(2, window=(3, 1)), params(2, window=(1, 1))):
        for kind in ("max", "min", "sum"):
            assert_same(PRIMS[kind].impl(x, **p), W._reduce_general(x, kind, **p), f"{kind} {p}")
        assert_same(W._winner_impl(x, kind="max", **p), W._winner_general(x, kind="max", **p), f"winner {p}")
    # An empty operand with padding: windows of padding only, whose winner is the padding.
    e = np.zeros((0, 3), np.float32)
    p = params(2, window=(1, 2), padding=((1, 1), (0, 0)))
    assert_same(PRIMS["max"].impl(e, **p), np.full((2, 2), -np.inf, np.float32), "empty")
    assert_same(W._winner_impl(e, kind="max", **p), np.zeros((2, 2, 1), np.int64), "empty winner")
    assert_same(W._winner_general(e, kind="max", **p), np.zeros((2, 2, 1), np.int64), "empty reference winner")


def test_bfloat16_takes_the_reference_path():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)
    p = params(2, window=(2, 2), strides=(1, 2))
    assert W._fast_plan(x, "max", "value", **p) is None
    got = PRIMS["max"].impl(x, **p)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.astype(np.float32), [[5.0, 7.0], [9.0, 11.0]])


# -- the numba kernel module --------------------------------------------------------------------------


def test_window_kernels_errors():
    from funcgrad.jit.window_kernels import window_winner

    xp = np.zeros((1, 4, 1, 4, 1), np.float32)
    with pytest.raises(NotImplementedError, match="window_winner: dtype int32"):
        window_winner(xp.astype(np.int32), (1, 2, 1, 2, 1), (2, 2), (2, 2), (1, 1), "max")
    with pytest.raises(ValueError, match="5-d"):
        window_winner(xp[0], (1, 2, 1, 2, 1), (2, 2), (2, 2), (1, 1), "max")
    with pytest.raises(ValueError, match="kind must be"):
        window_winner(xp, (1, 2, 1, 2, 1), (2, 2), (2, 2), (1, 1), "sum")
    with pytest.raises(ValueError, match="overrun"):
        window_winner(xp, (1, 3, 1, 2, 1), (2, 2), (2, 2), (1, 1), "max")
    with pytest.raises(ValueError, match="does not fit"):
        window_winner(xp, (2, 2, 1, 2, 1), (2, 2), (2, 2), (1, 1), "max")
    with pytest.raises(ValueError, match="tables of shapes"):
        tables = (np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64), np.zeros((1, 1), np.int64), 16)
        window_winner(xp, (1, 2, 1, 2, 1), (2, 2), (2, 2), (1, 1), "max", tables)


# -- against JAX ----------------------------------------------------------------------------------------

JAX_CASES = [
    ("pool2x2", (3, 4, 8, 6), dict(window_dimensions=(1, 1, 2, 2), window_strides=(1, 1, 2, 2), padding="VALID")),
    ("pool3x3_same", (2, 3, 7, 7), dict(window_dimensions=(1, 1, 3, 3), window_strides=(1, 1, 2, 2), padding="SAME")),
    ("nhwc", (2, 7, 6, 3), dict(window_dimensions=(1, 3, 2, 1), window_strides=(1, 2, 1, 1), padding="SAME")),
    (
        "dilated",
        (2, 9, 8),
        dict(
            window_dimensions=(1, 2, 3),
            window_strides=(1, 1, 2),
            padding=((0, 0), (1, 1), (2, 0)),
            base_dilation=(1, 2, 1),
            window_dilation=(1, 1, 2),
        ),
    ),
    ("3d", (2, 4, 5, 6), dict(window_dimensions=(1, 2, 2, 2), window_strides=(1, 2, 1, 2), padding="VALID")),
]


def _lax_fn(module, kind):
    return {"sum": module.add, "max": module.max, "min": module.min}[kind]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("name,shape,kw", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_values_match_jax(jax, rng, dtype, name, shape, kw):
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)  # ties
    if dtype != "int32":
        x.ravel()[::7] = -np.inf
    for kind in ("max", "min", "sum"):
        if kind == "sum" and dtype != "int32":
            x = np.where(np.isinf(x), 0, x).astype(dtype)
        init = {"sum": 0, "max": -np.inf, "min": np.inf}[kind]
        if dtype == "int32" and kind != "sum":
            init = np.iinfo(np.int32).min if kind == "max" else np.iinfo(np.int32).max
        got = lax.reduce_window(x, init, _lax_fn(lax, kind), **kw)
        want = jax.lax.reduce_window(x, np.asarray(init, dtype), _lax_fn(jax.lax, kind), **kw)
        assert got.dtype == np.dtype(dtype), (kind, got.dtype)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, err_msg=f"{kind} {name}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape,kw", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_gradients_match_jax(jax, rng, dtype, name, shape, kw):
    x = rng.standard_normal(shape).astype(dtype)  # no ties: the winner is unambiguous
    # JAX has no VJP of max/min windows with window dilation.
    kinds = ("sum",) if any(d > 1 for d in kw.get("window_dilation", ())) else ("max", "min", "sum")
    for kind in kinds:
        init = {"sum": 0.0, "max": -np.inf, "min": np.inf}[kind]
        out, pullback = fg.vjp(lambda a, i=init, k=kind: lax.reduce_window(a, i, _lax_fn(lax, k), **kw), x)
        ct = rng.standard_normal(out.shape).astype(dtype)
        (got,) = pullback(fnp.asarray(ct))
        _, jpullback = jax.vjp(lambda a, i=init, k=kind: jax.lax.reduce_window(a, i, _lax_fn(jax.lax, k), **kw), x)
        (want,) = jpullback(ct)
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol, err_msg=f"{kind} {name}")


# -- derivatives, jit and vmap ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,shape,kw", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_check_grads(rng, name, shape, kw):
    x = rng.standard_normal(shape)  # float64, no ties
    for fn in (lax.reduce_window_max, lax.reduce_window_min, lax.reduce_window_sum):
        check_grads(lambda a, fn=fn: fn(a, **kw), (x,), order=2, modes=("fwd", "rev"))


def test_max_pool_gradient_under_jit_and_vmap_matches_the_reference(rng, monkeypatch):
    x = np.round(rng.standard_normal((4, 3, 8, 8)) * 2).astype(np.float32)  # ties
    x[0, 0, 0, :2] = np.nan
    kw = dict(window_dimensions=(1, 1, 2, 2), window_strides=(1, 1, 2, 2), padding="VALID")

    def loss(a):
        return fnp.sum(lax.reduce_window_max(a, **kw) * fnp.arange(1.0, 17.0).reshape(4, 4))

    eager = np.asarray(fg.grad(loss)(x))
    jitted = np.asarray(fg.jit(fg.grad(loss))(x))
    vmapped = np.asarray(
        fg.vmap(fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (1, 2, 2), (1, 2, 2), "VALID") * 2.0)))(x)
    )
    # The same gradients from the reference evaluation.
    monkeypatch.setattr(W, "_fast_plan", lambda *a, **k: None)
    ref = np.asarray(fg.grad(loss)(x))
    ref_vmapped = np.asarray(
        fg.vmap(fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (1, 2, 2), (1, 2, 2), "VALID") * 2.0)))(x)
    )
    np.testing.assert_array_equal(eager, ref)
    np.testing.assert_array_equal(jitted, ref)
    np.testing.assert_array_equal(vmapped, ref_vmapped)
    # Each window routes its cotangent to one element: the first max (the first NaN in window 0).
    assert eager[0, 0, 0, 0] == 1.0 and eager[0, 0, 0, 1] == 0.0
    assert np.count_nonzero(eager) == 4 * 3 * 16
