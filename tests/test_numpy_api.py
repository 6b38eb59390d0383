"""The Array class (API.md section 1), creation functions and their dtypes, and a property test of
broadcasting binary operations against NumPy."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.testing import assert_allclose


# -- the Array class ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,text",
    [
        (fnp.array([1.0, 2.0, 3.0]), "Array([1., 2., 3.], dtype=float32)"),
        (fnp.array(1), "Array(1, dtype=int64)"),
        (fnp.array([True, False]), "Array([ True, False], dtype=bool)"),
        (fnp.zeros((0, 3)), "Array([], shape=(0, 3), dtype=float32)"),
        (fnp.array([[1, 2], [3, 4]]), "Array([[1, 2],\n       [3, 4]], dtype=int64)"),
        (fnp.asarray(np.array([0.5], np.float64)), "Array([0.5], dtype=float64)"),
    ],
)
def test_repr(value, text):
    assert repr(value) == text


def test_str_and_format():
    assert str(fnp.array([1.0, 2.0])) == "[1. 2.]"
    assert f"{fnp.array(1.5):.2f}" == "1.50"


def test_attributes():
    x = fnp.arange(6.0).reshape(2, 3)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float32
    assert x.T.shape == (3, 2) and x.mT.shape == (3, 2)
    assert x.device == fg.devices()[0] and x.device.platform == "cpu"
    assert isinstance(x, fg.Array) and isinstance(x, fnp.ndarray)


def test_numpy_view_is_read_only_and_not_copied():
    x = fnp.arange(4.0)
    v = np.asarray(x)
    assert v is np.asarray(x) or np.shares_memory(v, np.asarray(x))  # no copy
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v[0] = 10.0
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    c = np.array(x)  # an explicit copy is writable and independent
    c[0] = 10.0
    assert float(x[0]) == 0.0


def test_construction_never_aliases_the_callers_buffer():
    data = np.ones(3)
    for make in (fnp.array, fnp.asarray, fg.Array):
        x = make(data)
        data[0] = 5.0
        assert float(x[0]) == 1.0, make
        data[0] = 1.0
    lst = [1.0, 2.0]
    x = fnp.array(lst)
    lst[0] = 9.0
    assert x.tolist() == [1.0, 2.0]


def test_methods():
    x = fnp.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    n = np.asarray(x)
    assert_allclose(x.reshape(3, 2), n.reshape(3, 2))
    assert_allclose(x.reshape((3, 2)), n.reshape(3, 2))
    assert x.astype(np.int32).dtype == np.int32
    assert_allclose(x.sum(), n.sum())
    assert_allclose(x.sum(axis=0, keepdims=True), n.sum(0, keepdims=True))
    assert_allclose(x.mean(1), n.mean(1))
    assert_allclose(x.max(), 5.0)
    assert_allclose(x.min(axis=1), [-2.0, -6.0])
    assert_allclose(x.prod(), n.prod())
    assert x.argmax() == 4 and x.argmin(axis=1).tolist() == [1, 2]
    assert_allclose(x.std(), n.std(), rtol=1e-6)
    assert_allclose(x.var(ddof=1), n.var(ddof=1), rtol=1e-6)
    assert bool(x.any()) and bool(x.all()) and not bool((x > 0).all())
    assert_allclose(x.cumsum(axis=1), n.cumsum(1))
    assert x.transpose().shape == (3, 2) and x.transpose(1, 0).shape == (3, 2)
    assert x.transpose((1, 0)).shape == (3, 2)
    assert x.reshape(1, 2, 1, 3).squeeze().shape == (2, 3)
    assert x.reshape(1, 6).squeeze(0).shape == (6,)
    assert_allclose(x.flatten(), n.ravel())
    assert_allclose(x.ravel(), n.ravel())
    assert_allclose(x.clip(-1.0, 2.0), n.clip(-1.0, 2.0))
    assert_allclose(fnp.array([0.5, 1.5, 2.567]).round(), [0.0, 2.0, 3.0])
    assert_allclose(fnp.array([0.5, 1.5, 2.567]).round(2), [0.5, 1.5, 2.57], rtol=1e-6)


def test_operators():
    x = fnp.array([[1.0, 2.0], [3.0, 4.0]])
    n = np.asarray(x)
    for op in (
        lambda a: a + 1,
        lambda a: 1 - a,
        lambda a: a * a,
        lambda a: a / 2,
        lambda a: 3 / a,
        lambda a: a // 1.5,
        lambda a: 7.0 // a,
        lambda a: a % 1.5,
        lambda a: 5.0 % a,
        lambda a: a**2,
        lambda a: 2**a,
        lambda a: a @ a,
        lambda a: -a,
        lambda a: +a,
        lambda a: abs(-a),
        lambda a: a < 2,
        lambda a: a <= 2,
        lambda a: a > 2,
        lambda a: a >= 2,
        lambda a: a == 2,
        lambda a: a != 2,
        lambda a: 2 < a,
    ):
        assert_allclose(op(x), op(n), rtol=1e-6)
    q, r = divmod(x, 1.5)
    assert_allclose((q, r), divmod(n, 1.5))
    i = fnp.array([1, 2, 3])
    m = np.asarray(i)
    for op in (
        lambda a: a & 1,
        lambda a: a | 4,
        lambda a: a ^ 3,
        lambda a: ~a,
        lambda a: a << 2,
        lambda a: a >> 1,
        lambda a: 5 & a,
        lambda a: a // 2,
        lambda a: a % 2,
    ):
        assert_allclose(op(i), op(m))
    b = fnp.array([True, False])
    assert (~b).tolist() == [False, True] and (b & True).tolist() == [True, False]
    assert (n @ x).shape == (2, 2)  # a NumPy array on the left defers to Array


def test_python_conversions():
    x = fnp.arange(3.0)
    assert len(x) == 3
    items = list(x)
    assert all(isinstance(v, fg.Array) and v.shape == () for v in items)
    assert [float(v) for v in x] == [0.0, 1.0, 2.0]
    assert x.tolist() == [0.0, 1.0, 2.0] and isinstance(x.tolist()[0], float)
    assert fnp.array([[1, 2]]).tolist() == [[1, 2]]
    assert fnp.array(2.5).item() == 2.5
    assert isinstance(fnp.array([[7]]).item(), int)  # any rank, one element
    assert fnp.array(True).item() is True
    assert float(fnp.array(2.5)) == 2.5 and int(fnp.array(3)) == 3 and bool(fnp.array(1))
    assert complex(fnp.array(1 + 2j)) == 1 + 2j
    assert [10, 20, 30][fnp.array(1)] == 20  # __index__
    with pytest.raises(TypeError):
        hash(fnp.ones(2))
    with pytest.raises(TypeError):
        {fnp.ones(1): 1}


def test_copy_and_pickle():
    x = fnp.arange(3.0)
    assert copy.copy(x) is x and copy.deepcopy(x) is x  # immutable
    y = pickle.loads(pickle.dumps(x))
    assert isinstance(y, fg.Array) and y.dtype == x.dtype
    assert_allclose(y, x)


def test_at_updates_return_new_arrays():
    x = fnp.zeros((2, 3))
    y = x.at[0, 1].set(5.0)
    assert float(y[0, 1]) == 5.0 and float(x[0, 1]) == 0.0
    assert_allclose(x.at[:, 0].add(1.0), [[1, 0, 0], [1, 0, 0]])
    assert_allclose(fnp.ones(3).at[1].multiply(3.0), [1, 3, 1])
    assert_allclose(fnp.ones(3).at[fnp.array([0, 0])].min(-1.0), [-1, 1, 1])
    assert_allclose(fnp.ones(3).at[1:].max(fnp.array([0.0, 4.0])), [1, 1, 4])
    assert_allclose(fnp.arange(4.0).at[::2].get(), [0.0, 2.0])
    assert fnp.arange(3).at[0].set(2.7).dtype == np.int64  # values take the array's dtype


def test_indexing_forms():
    x = fnp.arange(24).reshape(2, 3, 4)
    n = np.arange(24).reshape(2, 3, 4)
    for idx in [
        0,
        -1,
        (1, 2),
        (1, 2, 3),
        np.s_[:, 1],
        np.s_[..., -1],
        np.s_[None, 0],
        np.s_[:, None, :, None],
        np.s_[::-1, ::2],
        np.s_[1, ::-1, 1:3],
        np.s_[[0, 1, 1]],
        np.s_[:, [2, 0], 1:],
        np.s_[[1, 0], [2, 1], [3, 0]],
        np.s_[n[..., 0] > 10],
        np.s_[:, n[0, :, 0] > 3],
        np.s_[np.array(1)],
    ]:
        assert_allclose(x[idx], n[idx], err_msg=repr(idx))
        assert x[idx].dtype == np.int64


# -- creation functions and their dtypes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data,dtype,shape",
    [
        ([1, 2, 3], np.int64, (3,)),
        ([1.0, 2], np.float32, (2,)),
        ([True, False], np.bool_, (2,)),
        ([1 + 1j], np.complex64, (1,)),
        ((1, 2), np.int64, (2,)),
        ([[1, 2], [3, 4]], np.int64, (2, 2)),
        (3, np.int64, ()),
        (2.5, np.float32, ()),
        (False, np.bool_, ()),
        ([], np.float32, (0,)),
        (np.arange(3, dtype=np.int32), np.int32, (3,)),
        (np.ones(2, np.float64), np.float64, (2,)),
        (np.float16(1.0), np.float16, ()),
        ([np.int8(1), np.int8(2)], np.int8, (2,)),
    ],
)
def test_array_infers_dtype_like_torch_tensor(data, dtype, shape):
    x = fnp.array(data)
    assert x.dtype == dtype and x.shape == shape
    assert fnp.asarray(data).dtype == dtype


def test_array_explicit_dtype_and_ndmin():
    assert fnp.array([1, 2], dtype=np.float64).dtype == np.float64
    assert fnp.array([1.7, 2.2], dtype=int).tolist() == [1, 2]
    assert fnp.array([1, 0], dtype=bool).tolist() == [True, False]
    assert fnp.array(fnp.arange(3), dtype=np.float32).dtype == np.float32
    assert fnp.array(1.0, ndmin=2).shape == (1, 1)
    assert fnp.array([fnp.array(1.0), fnp.array(2.0)]).shape == (2,)


def test_zeros_ones_full_empty():
    assert fnp.zeros(3).dtype == np.float32 and fnp.zeros((2, 3)).shape == (2, 3)
    assert fnp.zeros([2, 1]).shape == (2, 1) and fnp.zeros(()).shape == ()
    assert fnp.ones((2,), dtype=int).tolist() == [1, 1]
    assert fnp.full((2,), 7).dtype == np.int64
    assert fnp.full((2,), 7.0).dtype == np.float32
    assert fnp.full((2,), True).dtype == np.bool_
    assert fnp.full((2, 2), fnp.array([1.0, 2.0])).tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert fnp.full(3, 2, dtype=np.float16).dtype == np.float16
    e = fnp.empty((2, 3))
    assert e.shape == (2, 3) and e.dtype == np.float32 and not np.asarray(e).any()  # zero-filled
    assert fnp.empty(()).shape == () and float(fnp.empty(())) == 0.0
    assert not np.asarray(fnp.empty_like(fnp.ones(3))).any()


def test_like_functions():
    x = fnp.arange(3)
    assert fnp.zeros_like(x).dtype == np.int64 and fnp.zeros_like(x).shape == (3,)
    assert fnp.ones_like(x, dtype=np.float32).dtype == np.float32
    assert fnp.full_like(x, 2.5).tolist() == [2, 2, 2]  # NumPy: the fill is cast to x's dtype
    assert fnp.full_like(x, 2.5, dtype=float).tolist() == [2.5, 2.5, 2.5]
    assert fnp.zeros_like(x, shape=(2, 2)).shape == (2, 2)


@pytest.mark.parametrize(
    "args,kwargs,expected,dtype",
    [
        ((5,), {}, [0, 1, 2, 3, 4], np.int64),
        ((2, 5), {}, [2, 3, 4], np.int64),
        ((0, 10, 3), {}, [0, 3, 6, 9], np.int64),
        ((5, 0, -2), {}, [5, 3, 1], np.int64),
        ((0.0, 1.0, 0.25), {}, [0.0, 0.25, 0.5, 0.75], np.float32),
        ((0, 1, 0.5), {}, [0.0, 0.5], np.float32),
        ((3.0,), {}, [0.0, 1.0, 2.0], np.float32),
        ((3,), {"dtype": np.float64}, [0.0, 1.0, 2.0], np.float64),
        ((1, 1), {}, [], np.int64),
    ],
)
def test_arange(args, kwargs, expected, dtype):
    x = fnp.arange(*args, **kwargs)
    assert x.dtype == dtype
    assert x.tolist() == pytest.approx(expected)


def test_linspace_logspace():
    x = fnp.linspace(0.0, 1.0, 5)
    assert x.dtype == np.float32 and x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]  # closed interval
    assert float(fnp.linspace(-3, 7, 11)[-1]) == 7.0
    assert fnp.linspace(0, 1, 4, endpoint=False).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert fnp.linspace(0, 1, 1).tolist() == [0.0]
    assert fnp.linspace(0, 1, 0).shape == (0,)
    assert fnp.linspace(0, 1, 3, dtype=np.float64).dtype == np.float64
    x, step = fnp.linspace(0.0, 2.0, 5, retstep=True)
    assert float(step) == 0.5
    assert_allclose(
        fnp.linspace(fnp.array([0.0, 1.0]), fnp.array([1.0, 3.0]), 3), np.linspace([0.0, 1.0], [1.0, 3.0], 3)
    )
    assert_allclose(fg.grad(lambda b: fnp.sum(fnp.linspace(0.0, b, 5)))(2.0), 2.5)  # differentiable
    assert_allclose(fnp.logspace(0, 2, 3), [1.0, 10.0, 100.0], rtol=1e-6)
    assert_allclose(fnp.logspace(0, 3, 4, base=2.0), [1.0, 2.0, 4.0, 8.0], rtol=1e-6)


def test_eye_identity_tri_diag_meshgrid():
    assert_allclose(fnp.eye(2, 3, 1), np.eye(2, 3, 1))
    assert fnp.eye(2).dtype == np.float32 and fnp.identity(3, dtype=int).dtype == np.int64
    assert_allclose(fnp.tri(3, 4, -1), np.tri(3, 4, -1))
    assert_allclose(fnp.diag(fnp.array([1, 2]), 1), np.diag([1, 2], 1))
    for indexing in ("xy", "ij"):
        got = fnp.meshgrid(fnp.arange(2), fnp.arange(3), fnp.arange(4), indexing=indexing)
        exp = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing=indexing)
        assert_allclose(got, list(exp))
    sparse = fnp.meshgrid(fnp.arange(2), fnp.arange(3), sparse=True)
    assert [s.shape for s in sparse] == [(1, 2), (3, 1)]


def test_zero_size_arrays():
    acc = fnp.zeros((0, 3))
    for i in range(3):
        acc = fnp.concatenate([acc, fnp.full((1, 3), float(i))])
    assert acc.shape == (3, 3)
    assert_allclose(acc[:, 0], [0.0, 1.0, 2.0])
    assert fnp.vstack([fnp.zeros((0, 2)), fnp.ones((1, 2))]).shape == (1, 2)
    assert fnp.sum(fnp.zeros((0, 3))).shape == () and float(fnp.sum(fnp.zeros((0, 3)))) == 0.0
    assert fnp.sum(fnp.zeros((0, 3)), axis=0).shape == (3,)
    assert fnp.zeros((0, 3)).reshape(3, 0).shape == (3, 0)
    assert fnp.zeros((2, 0)) @ fnp.zeros((0, 3)) is not None
    assert_allclose(fnp.zeros((2, 0)) @ fnp.zeros((0, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        fnp.max(fnp.zeros((0,)))
    g = fg.grad(lambda x: fnp.sum(x) + fnp.sum(fnp.zeros((0,))))(fnp.ones(2))
    assert_allclose(g, [1.0, 1.0])


def test_misc_helpers():
    assert bool(fnp.allclose(fnp.ones(3), fnp.ones(3) + 1e-9))
    assert not bool(fnp.allclose(fnp.ones(3), fnp.zeros(3)))
    assert bool(fnp.array_equal(fnp.arange(3), fnp.array([0, 1, 2])))
    assert not bool(fnp.array_equal(fnp.arange(3), fnp.arange(4)))
    assert fnp.isclose(fnp.array([1.0, np.nan]), fnp.array([1.0, np.nan]), equal_nan=True).tolist() == [True, True]
    assert fnp.shape(fnp.ones((2, 3))) == (2, 3) and fnp.ndim([[1]]) == 2 and fnp.size(fnp.ones((2, 3))) == 6
    assert fnp.pi == np.pi and fnp.newaxis is None and np.isnan(fnp.nan)
    assert fnp.count_nonzero(fnp.array([0, 1, 2])).dtype == np.int64


# -- property test: broadcasting of binary ops matches NumPy ---------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

BINARY = {
    "add": (fnp.add, np.add),
    "subtract": (fnp.subtract, np.subtract),
    "multiply": (fnp.multiply, np.multiply),
    "maximum": (fnp.maximum, np.maximum),
    "minimum": (fnp.minimum, np.minimum),
    "less": (fnp.less, np.less),
    "equal": (fnp.equal, np.equal),
    "arctan2": (fnp.arctan2, np.arctan2),
    "hypot": (fnp.hypot, np.hypot),
    "true_divide": (fnp.true_divide, np.true_divide),
    "where_gt": (lambda a, b: fnp.where(a > b, a, b), lambda a, b: np.where(a > b, a, b)),
}


@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
    op=st.sampled_from(sorted(BINARY)),
    dtype=st.sampled_from(["float32", "float64"]),
    data=st.data(),
)
def test_binary_broadcasting_matches_numpy(shapes, op, dtype, data):
    s1, s2 = shapes.input_shapes
    elems = st.floats(-10, 10, width=32, allow_subnormal=False).filter(lambda v: abs(v) > 1e-3)
    a = data.draw(hnp.arrays(dtype, s1, elements=elems))
    b = data.draw(hnp.arrays(dtype, s2, elements=elems))
    f, ref = BINARY[op]
    out = f(fnp.asarray(a), fnp.asarray(b))
    with np.errstate(all="ignore"):
        expected = ref(a, b)
    assert out.shape == expected.shape == shapes.result_shape
    assert out.dtype == expected.dtype
    assert_allclose(out, expected, rtol=1e-6 if dtype == "float32" else 1e-14)


@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    op=st.sampled_from(["add", "multiply", "maximum", "true_divide"]),
)
def test_binary_broadcasting_gradients_sum_over_broadcast_axes(shapes, op):
    s1, s2 = shapes.input_shapes
    rng = np.random.default_rng(0)
    a = fnp.asarray(rng.uniform(0.5, 2.0, s1))
    b = fnp.asarray(rng.uniform(-2.0, -0.5, s2))
    f = BINARY[op][0]
    ga, gb = fg.grad(lambda x, y: fnp.sum(f(x, y)), argnums=(0, 1))(a, b)
    assert ga.shape == a.shape and gb.shape == b.shape
    eps = 1e-6
    for arr, g, which in ((a, ga, 0), (b, gb, 1)):
        base = np.asarray(arr)
        for idx in np.ndindex(base.shape):
            e = np.zeros_like(base)
            e[idx] = eps
            args_p = [a, b]
            args_m = [a, b]
            args_p[which] = fnp.asarray(base + e)
            args_m[which] = fnp.asarray(base - e)
            num = (float(fnp.sum(f(*args_p))) - float(fnp.sum(f(*args_m)))) / (2 * eps)
            assert abs(float(np.asarray(g)[idx]) - num) <= 1e-5 * max(1.0, abs(num))
