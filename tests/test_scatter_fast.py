"""The single-element fast path of scatter / scatter_add (funcgrad/lax/gather.py).

A scatter whose every update is one operand element (no update window, no batching dims)
computes flat indices straight from the index columns. These tests check that the fast path
is taken, that it gives exactly what the general path gives (bit for bit: ``np.add.at`` adds
repeated indices one at a time, in order), that out-of-bounds updates are dropped (or clamped
with ``mode='clip'``) as before, and that the values match JAX.
"""

import importlib

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax

_gather_mod = importlib.import_module("funcgrad.lax.gather")


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _dn(operand_ndim, order=None):
    order = tuple(range(operand_ndim)) if order is None else tuple(order)
    return lax.ScatterDimensionNumbers(
        update_window_dims=(), inserted_window_dims=tuple(range(operand_ndim)), scatter_dims_to_operand_dims=order
    )


def _general(monkeypatch, fn):
    """``fn()`` evaluated with the fast path switched off (the general index construction)."""
    with monkeypatch.context() as m:
        m.setattr(_gather_mod, "_scalar_scatter_flat", lambda *a: None)
        return np.asarray(fn())


def _fast(monkeypatch, fn):
    """``fn()``, asserting that it never reaches the general index construction."""

    def boom(*a, **k):
        raise AssertionError("the single-element scatter should take the fast path")

    with monkeypatch.context() as m:
        m.setattr(_gather_mod, "_scatter_indices", boom)
        return np.asarray(fn())


def _sequential_add(operand, flat, updates):
    """Reference: add each update in order, in the operand's dtype (what np.add.at does)."""
    out = operand.copy().reshape(-1)
    for i, u in zip(flat, updates):
        out[i] = out[i] + u
    return out.reshape(operand.shape)


# (operand shape, index columns order, mode): one flat axis (the max-pool gradient), two axes in
# either order, three axes.
CASES = [
    ((50,), None, None),
    ((50,), None, "clip"),
    ((6, 7), None, None),
    ((6, 7), (1, 0), "clip"),
    ((3, 4, 5), (2, 0, 1), None),
]


@pytest.mark.parametrize("shape,order,mode", CASES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fast_path_matches_general_path_bitwise(monkeypatch, shape, order, mode, index_dtype):
    rng = np.random.default_rng(0)
    nd = len(shape)
    order = tuple(range(nd)) if order is None else order
    # Repeated and out-of-bounds indices (negative and too large) along every axis.
    idx = np.stack([rng.integers(-2, shape[d] + 2, size=(40, 3)) for d in order], axis=-1).astype(index_dtype)
    operand = rng.standard_normal(shape).astype(np.float32)
    updates = rng.standard_normal((40, 3)).astype(np.float32)

    def run():
        return lax.scatter_add(operand, idx, updates, _dn(nd, order), mode=mode)

    fast = _fast(monkeypatch, run)
    general = _general(monkeypatch, run)
    assert fast.dtype == np.float32
    np.testing.assert_array_equal(fast, general)


def test_max_pool_shaped_scatter_is_sequential_float32_addition(monkeypatch):
    """The cnn_sgd case: many cotangents into a flat float32 operand, many repeated indices;
    the sums are float32 additions in update order (not float64 sums rounded once)."""
    rng = np.random.default_rng(1)
    n = 1000
    flat = rng.integers(0, 37, size=(20, 8, 10))  # every index repeated ~40 times
    updates = (rng.standard_normal((20, 8, 10)) * 10.0 ** rng.integers(-4, 4, size=(20, 8, 10))).astype(np.float32)
    operand = rng.standard_normal(n).astype(np.float32)
    got = _fast(monkeypatch, lambda: lax.scatter_add(operand, flat[..., None], updates, _dn(1)))
    want = _sequential_add(operand, flat.reshape(-1), updates.reshape(-1))
    np.testing.assert_array_equal(got, want)
    # A float64 accumulation (np.bincount) rounds differently here: the order is observable.
    f64 = (operand.astype(np.float64) + np.bincount(flat.reshape(-1), updates.reshape(-1), n)).astype(np.float32)
    assert not np.array_equal(f64, want)


def test_out_of_bounds_updates_are_dropped_or_clamped(monkeypatch):
    operand = np.zeros(5, np.float32)
    idx = np.array([[-1], [0], [4], [5], [2], [-7], [100]])
    upd = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], np.float32)
    dropped = _fast(monkeypatch, lambda: lax.scatter_add(operand, idx, upd, _dn(1)))
    np.testing.assert_array_equal(dropped, [2.0, 0.0, 5.0, 0.0, 3.0])
    for mode in ("fill", "drop", "promise_in_bounds"):
        np.testing.assert_array_equal(
            _fast(monkeypatch, lambda m=mode: lax.scatter_add(operand, idx, upd, _dn(1), mode=m)), dropped
        )
    clipped = _fast(monkeypatch, lambda: lax.scatter_add(operand, idx, upd, _dn(1), mode="clip"))
    np.testing.assert_array_equal(clipped, [1.0 + 2.0 + 6.0, 0.0, 5.0, 0.0, 3.0 + 4.0 + 7.0])
    # Two axes: an update is dropped when any coordinate is out of bounds.
    op2 = np.zeros((2, 3), np.float32)
    idx2 = np.array([[0, 0], [1, 3], [2, 0], [1, 2], [-1, 1]])
    upd2 = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    np.testing.assert_array_equal(
        _fast(monkeypatch, lambda: lax.scatter_add(op2, idx2, upd2, _dn(2))), [[1.0, 0.0, 0.0], [0.0, 0.0, 4.0]]
    )
    np.testing.assert_array_equal(
        _fast(monkeypatch, lambda: lax.scatter_add(op2, idx2, upd2, _dn(2), mode="clip")),
        [[1.0, 5.0, 0.0], [3.0, 0.0, 2.0 + 4.0]],
    )


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.complex64])
def test_fast_path_other_dtypes(monkeypatch, dtype):
    rng = np.random.default_rng(2)
    operand = (rng.standard_normal((4, 5)) * 10).astype(dtype)
    idx = np.stack([rng.integers(-1, 5, 30), rng.integers(0, 6, 30)], axis=-1)
    updates = (rng.standard_normal(30) * 10).astype(dtype)

    def run():
        return lax.scatter_add(operand, idx, updates, _dn(2))

    got = _fast(monkeypatch, run)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, _general(monkeypatch, run))


def test_scatter_set_fast_path(monkeypatch):
    """lax.scatter (set) shares the flat indices: unique in-bounds indices are written, the
    out-of-bounds ones dropped."""
    operand = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[0, 1], [2, 3], [3, 0], [1, -1], [1, 2]])
    upd = np.array([-1.0, -2.0, -3.0, -4.0, -5.0], np.float32)
    got = _fast(monkeypatch, lambda: lax.scatter(operand, idx, upd, _dn(2)))
    want = operand.copy()
    want[0, 1], want[2, 3], want[1, 2] = -1.0, -2.0, -5.0
    np.testing.assert_array_equal(got, want)


def test_windowed_scatter_keeps_the_general_path(monkeypatch):
    """Scatters with update windows are not single-element scatters."""
    calls = []
    real = _gather_mod._scatter_indices
    monkeypatch.setattr(_gather_mod, "_scatter_indices", lambda *a: calls.append(1) or real(*a))
    dn = lax.ScatterDimensionNumbers(
        update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,)
    )
    got = lax.scatter_add(np.zeros((4, 3), np.float32), np.array([[1], [3], [1]]), np.ones((3, 3), np.float32), dn)
    assert calls == [1]
    np.testing.assert_array_equal(np.asarray(got), [[0, 0, 0], [2, 2, 2], [0, 0, 0], [1, 1, 1]])


@pytest.mark.parametrize("shape,order,mode", CASES)
def test_fast_path_matches_jax(jax, shape, order, mode):
    rng = np.random.default_rng(3)
    nd = len(shape)
    order_t = tuple(range(nd)) if order is None else order
    idx = np.stack([rng.integers(-1, shape[d] + 1, size=25) for d in order_t], axis=-1)
    operand = rng.standard_normal(shape)
    updates = rng.standard_normal(25)
    got = lax.scatter_add(operand, idx, updates, _dn(nd, order_t), mode=mode)
    jdn = jax.lax.ScatterDimensionNumbers(
        update_window_dims=(), inserted_window_dims=tuple(range(nd)), scatter_dims_to_operand_dims=order_t
    )
    want = jax.lax.scatter_add(operand, idx, updates, jdn, mode=mode)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_max_pool_gradient_through_jit_matches_jax(jax, monkeypatch):
    """The scatter the max-pool gradient produces, end to end under fg.jit, takes the fast path."""
    hits = []
    real = _gather_mod._scalar_scatter_flat
    monkeypatch.setattr(_gather_mod, "_scalar_scatter_flat", lambda *a: hits.append(real(*a) is not None) or real(*a))

    def pool_loss(lib, x):
        lax_ = lib.lax
        y = lax_.reduce_window(x, -np.inf, lax_.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return (y * y).sum()

    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6)).astype(np.float32)
    got = fg.jit(fg.grad(lambda a: pool_loss(fg, a)))(x)
    want = jax.grad(lambda a: pool_loss(jax, a))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    assert np.asarray(got).dtype == np.float32
    assert hits == [True]
