"""``funcgrad.compat.torch``: every helper against PyTorch (values, shapes, dtypes, error cases),
plus float64 gradient checks and gradients against ``torch.autograd``."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.compat.torch as ft
import funcgrad.numpy as fnp
from funcgrad.core.errors import ConcretizationError, DTypeError, FuncgradError, ShapeError
from funcgrad.testing import check_grads

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter:UserWarning")

RNG = np.random.default_rng(7)


def T(a):
    return torch.from_numpy(np.array(a))


def same(ours, theirs, rtol=1e-12):
    """Equal values, shape and dtype (torch dtype mapped to NumPy)."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), (ours, theirs)
        for o, t in zip(ours, theirs):
            same(o, t, rtol)
        return
    t = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    o = np.asarray(ours)
    assert o.shape == t.shape, (o.shape, t.shape)
    assert o.dtype == t.dtype, (o.dtype, t.dtype)
    if o.dtype.kind == "f":
        np.testing.assert_allclose(o, t, rtol=rtol, atol=0)
    else:
        np.testing.assert_array_equal(o, t)


def torch_grad(fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out = out if isinstance(out, torch.Tensor) else out[0]
    (out * torch.tensor(COT[: out.numel()].reshape(out.shape))).sum().backward()
    return [t.grad.numpy() for t in ts]


def fg_grad(fn, *arrays):
    def loss(*xs):
        out = fn(*xs)
        out = out[0] if isinstance(out, tuple) else out
        return fnp.sum(out * COT[: out.size].reshape(out.shape))

    g = fg.grad(loss, argnums=tuple(range(len(arrays))))(*arrays)
    return [np.asarray(v) for v in g]


COT = RNG.normal(size=1000)


# -- gather / scatter ------------------------------------------------------------------------------

X34 = RNG.normal(size=(3, 4))
X234 = RNG.normal(size=(2, 3, 4))


@pytest.mark.parametrize(
    "dim,index",
    [
        (1, [[0, 3], [2, 1]]),  # index smaller than input on the other dim
        (0, [[2, 0, 1, 1], [0, 0, 2, 2], [1, 1, 1, 1], [0, 2, 0, 2]]),  # larger along dim
        (-1, [[3], [0], [1]]),
        (0, [[1]]),
    ],
)
def test_gather_matches_torch(dim, index):
    idx = np.array(index)
    same(ft.gather(X34, dim, idx), torch.gather(T(X34), dim, T(idx)))
    np.testing.assert_allclose(
        fg_grad(lambda x: ft.gather(x, dim, idx), X34)[0],
        torch_grad(lambda x: torch.gather(x, dim, T(idx)), X34)[0],
        rtol=1e-14,
    )


def test_gather_3d_and_repeated_indices_accumulate_gradient():
    idx = RNG.integers(0, 3, size=(2, 5, 3))
    same(ft.gather(X234, 1, idx), torch.gather(T(X234), 1, T(idx)))
    np.testing.assert_allclose(
        fg_grad(lambda x: ft.gather(x, 1, idx), X234)[0],
        torch_grad(lambda x: torch.gather(x, 1, T(idx)), X234)[0],
        rtol=1e-14,
    )
    check_grads(lambda x: ft.gather(x, 1, idx), (X234,), order=2)
    same(ft.gather(np.array(5.0), 0, np.array(0)), torch.gather(T(5.0), 0, T(0)))


def test_gather_errors():
    with pytest.raises(ShapeError, match="gather.*same number of dimensions"):
        ft.gather(X34, 1, np.array([0, 1]))
    with pytest.raises(ShapeError, match=r"gather.*larger than input.*dimension 0"):
        ft.gather(X34, 1, np.zeros((4, 1), np.int64))
    with pytest.raises(IndexError, match="gather: index 4 is out of bounds for dimension 1 with size 4"):
        ft.gather(X34, 1, np.array([[4]]))
    with pytest.raises(IndexError, match="index -1"):
        ft.gather(X34, 0, np.array([[-1]]))
    with pytest.raises(FuncgradError):
        ft.gather(X34, 0, np.array([[7]]))
    with pytest.raises(DTypeError, match="gather.*integer"):
        ft.gather(X34, 0, np.array([[0.0]]))
    with pytest.raises(IndexError):  # NumPy's AxisError is an IndexError, as PyTorch's dim error
        ft.gather(X34, 2, np.array([[0]]))
    for bad in (lambda: torch.gather(T(X34), 1, T([[4]])), lambda: torch.gather(T(X34), 1, T([0, 1]))):
        with pytest.raises(RuntimeError):
            bad()


@pytest.mark.parametrize("reduce", [None, "add", "multiply"])
def test_scatter_matches_torch(reduce):
    idx = np.array([[0, 1, 2, 0], [2, 0, 0, 1]])
    src = RNG.normal(size=(3, 5))  # larger than index: only the covered part is used
    base = RNG.normal(size=(3, 4))
    if reduce is None:  # unique targets per column, so the set is well defined
        idx = np.array([[0, 1, 2, 0], [2, 0, 0, 1]])
    kw = {} if reduce is None else {"reduce": reduce}
    same(ft.scatter(base, 0, idx, src, **kw), torch.scatter(T(base), 0, T(idx), T(src), **kw))
    same(ft.scatter(base, 0, idx, 2.5, **kw), torch.scatter(T(base), 0, T(idx), 2.5, **kw))
    if reduce != "multiply":
        # PyTorch's own backward needs src shaped like index, and scatter(reduce='add') has no
        # derivative there: compare with scatter_add instead.
        exact = src[:2, :4]
        theirs = (
            (lambda x, s: torch.scatter(x, 0, T(idx), s))
            if reduce is None
            else (lambda x, s: torch.scatter_add(x, 0, T(idx), s))
        )
        gx, gs = fg_grad(lambda x, s: ft.scatter(x, 0, idx, s, **kw), base, exact)
        tx, ts = torch_grad(theirs, base, exact)
        np.testing.assert_allclose(gx, tx, rtol=1e-14)
        np.testing.assert_allclose(gs, ts, rtol=1e-14)
        # With a larger src, its uncovered part gets a zero gradient.
        gs_big = fg_grad(lambda x, s: ft.scatter(x, 0, idx, s, **kw), base, src)[1]
        np.testing.assert_allclose(gs_big[:2, :4], gs, rtol=1e-14)
        assert not gs_big[2:].any() and not gs_big[:, 4:].any()
    check_grads(lambda x, s: ft.scatter(x, 0, idx, s, **kw), (base, src), order=2)


def test_scatter_add_and_value_forms():
    idx = np.array([0, 0, 2, 0])
    src = np.array([1.0, 2.0, 3.0, 4.0])
    same(ft.scatter_add(np.zeros(3), 0, idx, src), torch.scatter_add(T(np.zeros(3)), 0, T(idx), T(src)))
    idx2 = RNG.integers(0, 4, size=(2, 6))
    src2 = RNG.normal(size=(3, 6))
    base = RNG.normal(size=(2, 4))
    same(ft.scatter_add(base, 1, idx2, src2), torch.scatter_add(T(base), 1, T(idx2), T(src2)))
    gx, gs = fg_grad(lambda x, s: ft.scatter_add(x, 1, idx2, s), base, src2[:2])
    tx, ts = torch_grad(lambda x, s: torch.scatter_add(x, 1, T(idx2), s), base, src2[:2])
    np.testing.assert_allclose(gx, tx, rtol=1e-14)
    np.testing.assert_allclose(gs, ts, rtol=1e-14)
    # value= keyword, integer input with an int value, one-hot construction as in the seed notes
    labels = np.array([2, 0, 1])
    one_hot = ft.scatter(fnp.zeros((3, 4), dtype=np.int64), 1, labels[:, None], 1)
    same(one_hot, torch.zeros(3, 4, dtype=torch.int64).scatter(1, T(labels[:, None]), 1))
    same(
        ft.scatter(np.zeros(3), 0, np.array([1]), value=7.0),
        torch.zeros(3, dtype=torch.float64).scatter(0, T([1]), 7.0),
    )


def test_scatter_errors():
    base = np.zeros((3, 4))
    with pytest.raises(DTypeError, match="scatter: src dtype float32 differs from input dtype float64"):
        ft.scatter(base, 0, np.array([[0]]), np.ones((1, 1), np.float32))
    with pytest.raises(ShapeError, match="larger than src"):
        ft.scatter(base, 0, np.zeros((2, 2), np.int64), np.ones((1, 2)))
    with pytest.raises(ShapeError, match="same number of dimensions as index"):
        ft.scatter(base, 0, np.zeros((2, 2), np.int64), np.ones(4))
    with pytest.raises(IndexError, match="scatter: index 3 is out of bounds for dimension 0 with size 3"):
        ft.scatter(base, 0, np.array([[3]]), 1.0)
    with pytest.raises(ValueError, match="reduce must be"):
        ft.scatter(base, 0, np.array([[0]]), 1.0, reduce="mean")
    with pytest.raises(ShapeError, match="larger than input"):
        ft.scatter_add(base, 0, np.zeros((1, 5), np.int64), np.ones((1, 5)))


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_torch(reduce, include_self):
    idx = np.array([0, 2, 0, 2, 2, 1])
    src = RNG.normal(size=6)
    base = RNG.normal(size=4)
    same(
        ft.scatter_reduce(base, 0, idx, src, reduce, include_self=include_self),
        torch.scatter_reduce(T(base), 0, T(idx), T(src), reduce, include_self=include_self),
    )
    ib = np.array([5, -3, 8, 1])
    isrc = np.array([4, 7, -2, 9, 3, 6])
    same(
        ft.scatter_reduce(ib, 0, idx, isrc, reduce, include_self=include_self),
        torch.scatter_reduce(T(ib), 0, T(idx), T(isrc), reduce, include_self=include_self),
    )


def test_index_select_and_take():
    idx = np.array([2, 0, 2])
    same(ft.index_select(X34, 0, idx), torch.index_select(T(X34), 0, T(idx)))
    same(ft.index_select(X34, -1, idx), torch.index_select(T(X34), -1, T(idx)))
    same(ft.index_select(X34, 1, np.array(3)), torch.index_select(T(X34), 1, T(3)))
    np.testing.assert_allclose(
        fg_grad(lambda x: ft.index_select(x, 1, idx), X34)[0],
        torch_grad(lambda x: torch.index_select(x, 1, T(idx)), X34)[0],
        rtol=1e-14,
    )
    with pytest.raises(ShapeError, match="index_select: index must be a vector"):
        ft.index_select(X34, 0, np.zeros((2, 2), np.int64))
    with pytest.raises(IndexError, match="index_select: index 3 is out of bounds for dimension 0 with size 3"):
        ft.index_select(X34, 0, np.array([3]))
    tidx = np.array([[0, 11], [5, -1]])
    same(ft.take(X34, tidx), torch.take(T(X34), T(tidx)))
    with pytest.raises(IndexError, match="take"):
        ft.take(X34, np.array([12]))


def test_masked_fill_and_masked_select():
    mask = X34 > 0
    same(ft.masked_fill(X34, mask, -1.0), T(X34).masked_fill(T(mask), -1.0))
    row = np.array([True, False, True, False])
    same(ft.masked_fill(X34, row, 0), torch.masked_fill(T(X34), T(row), 0))
    same(ft.masked_fill(np.arange(4), row, 9.7), torch.masked_fill(T(np.arange(4)), T(row), 9.7))
    same(ft.masked_fill(X34, row, np.array(3.0)), torch.masked_fill(T(X34), T(row), T(3.0)))
    np.testing.assert_allclose(
        fg_grad(lambda x: ft.masked_fill(x, row, 1.0), X34)[0],
        torch_grad(lambda x: torch.masked_fill(x, T(row), 1.0), X34)[0],
    )
    with pytest.raises(DTypeError, match="masked_fill: mask must be a boolean array"):
        ft.masked_fill(X34, row.astype(np.int64), 0.0)
    with pytest.raises(ShapeError, match="masked_fill: value must be a number or a 0-d array"):
        ft.masked_fill(X34, row, np.ones(2))
    same(ft.masked_select(X34, mask), torch.masked_select(T(X34), T(mask)))
    same(ft.masked_select(X34, row), torch.masked_select(T(X34), T(row)))
    same(ft.masked_select(X34[0], mask), torch.masked_select(T(X34[0]), T(mask)))  # input broadcasts too
    np.testing.assert_allclose(
        fg_grad(lambda x: ft.masked_select(x, mask), X34)[0],
        torch_grad(lambda x: torch.masked_select(x, T(mask)), X34)[0],
    )
    with pytest.raises(DTypeError, match="masked_select"):
        ft.masked_select(X34, X34)


def test_masked_select_under_jit_is_a_clear_error():
    with pytest.raises(ConcretizationError, match="masked_select.*fnp.where"):
        fg.jit(lambda x: ft.masked_select(x, x > 0))(X34)


def test_nonzero():
    x = np.array([[0, 1, 0], [2, 0, 3]])
    same(ft.nonzero(x), torch.nonzero(T(x)))
    same(ft.nonzero(x, as_tuple=True), torch.nonzero(T(x), as_tuple=True))
    same(ft.nonzero(X34 > 0), torch.nonzero(T(X34 > 0)))
    same(ft.nonzero(np.array(3.0)), torch.nonzero(T(3.0)))
    same(ft.nonzero(np.zeros((2, 2))), torch.nonzero(T(np.zeros((2, 2)))))


# -- splitting and joining -----------------------------------------------------------------------


@pytest.mark.parametrize("n,chunks", [(10, 4), (6, 4), (5, 5), (5, 7), (1, 3), (12, 3), (0, 3)])
def test_chunk(n, chunks):
    x = np.arange(n * 2).reshape(n, 2)
    same(ft.chunk(x, chunks), torch.chunk(T(x), chunks))
    same(ft.chunk(x.T, chunks, dim=-1), torch.chunk(T(x.T), chunks, dim=-1))


def test_chunk_errors():
    with pytest.raises(ValueError, match="chunk: chunks must be a positive int"):
        ft.chunk(np.arange(4), 0)
    with pytest.raises(ShapeError):
        ft.chunk(np.array(1.0), 2)


@pytest.mark.parametrize("sizes", [2, 3, 7, 1, [1, 4], [0, 5], [2, 2, 1]])
def test_split(sizes):
    x = RNG.normal(size=(5, 3))
    same(ft.split(x, sizes), torch.split(T(x), sizes))
    same(ft.split(x.T, sizes, dim=1), torch.split(T(x.T), sizes, dim=1))
    same(ft.split(np.zeros((0, 2)), 2), torch.split(T(np.zeros((0, 2))), 2))


def test_split_errors_and_gradient():
    x = RNG.normal(size=(5, 3))
    with pytest.raises(ValueError, match=r"split: section lengths \[2, 2\] sum to 4, but dimension 0 has size 5"):
        ft.split(x, [2, 2])
    with pytest.raises(RuntimeError):
        torch.split(T(x), [2, 2])
    with pytest.raises(ValueError, match="split_size must be a positive int"):
        ft.split(x, 0)
    with pytest.raises(ValueError):
        ft.split(x, [6, -1])
    check_grads(lambda v: ft.split(v, [1, 4])[1] * 2.0 + ft.split(v, 2)[2].sum(), (x,), order=2)


@pytest.mark.parametrize("ios", [1, 2, 3, 5, 6, [1, 4], [0, 2, 2], [3, 10], [-2], (1, 3)])
def test_tensor_split(ios):
    x = np.arange(10).reshape(5, 2)
    same(ft.tensor_split(x, ios), torch.tensor_split(T(x), ios))
    same(ft.tensor_split(x.T, ios, dim=1), torch.tensor_split(T(x.T), ios, dim=1))
    if not isinstance(ios, int):
        same(ft.tensor_split(x, np.array(ios)), torch.tensor_split(T(x), T(ios)))
    with pytest.raises(ValueError):
        ft.tensor_split(x, 0)


def test_cat_and_stack():
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(1, 3))
    same(ft.cat([a, b]), torch.cat([T(a), T(b)]))
    same(ft.cat([a, a], dim=1), torch.cat([T(a), T(a)], dim=1))
    same(ft.cat([a, np.zeros(0)]), torch.cat([T(a), T(np.zeros(0))]))  # legacy empty 1-D skipped
    i32 = np.ones((1, 3), np.int32)
    same(ft.cat([a.astype(np.float32), i32]), torch.cat([T(a.astype(np.float32)), T(i32)]))
    same(ft.stack([a, a], dim=1), torch.stack([T(a), T(a)], dim=1))
    same(ft.stack([a, a], dim=-1), torch.stack([T(a), T(a)], dim=-1))
    with pytest.raises(ValueError):
        ft.cat([a, np.ones((2, 4))])
    with pytest.raises(ValueError):
        ft.stack([a, b])
    with pytest.raises(ValueError):
        ft.cat([])
    check_grads(lambda u, v: ft.cat([u, v]) * 3.0, (a, b), order=2)


@pytest.mark.parametrize(
    "repeats,dim", [(2, None), (3, 0), (2, 1), ([1, 0, 3], 0), ([2, 1], 1), ([2], 0), ([1, 2, 0, 1, 1, 3], None)]
)
def test_repeat_interleave(repeats, dim):
    x = np.arange(6).reshape(3, 2)
    reps = repeats if isinstance(repeats, int) else np.array(repeats)
    theirs = torch.repeat_interleave(T(x), repeats if isinstance(repeats, int) else T(reps), dim=dim)
    same(ft.repeat_interleave(x, reps, dim=dim), theirs)
    same(ft.repeat_interleave(x, reps, dim=dim, output_size=theirs.shape[0 if dim is None else dim]), theirs)


def test_repeat_interleave_more():
    same(ft.repeat_interleave(np.array([2, 0, 3])), torch.repeat_interleave(T([2, 0, 3])))
    same(ft.repeat_interleave(np.array(5.0), 3), torch.repeat_interleave(T(5.0), 3))
    x = RNG.normal(size=(3, 2))
    reps = np.array([1, 3, 2])
    np.testing.assert_allclose(
        fg_grad(lambda v: ft.repeat_interleave(v, reps, dim=0), x)[0],
        torch_grad(lambda v: torch.repeat_interleave(v, T(reps), dim=0), x)[0],
    )
    with pytest.raises(ShapeError, match="repeat_interleave: repeats has 2 entries but dimension 0 has size 3"):
        ft.repeat_interleave(x, np.array([1, 2]), dim=0)
    with pytest.raises(ValueError, match="negative"):
        ft.repeat_interleave(x, -1)
    with pytest.raises(ValueError, match="output_size"):
        ft.repeat_interleave(x, reps, dim=0, output_size=5)


# -- shapes ------------------------------------------------------------------------------------


def test_narrow():
    x = np.arange(24).reshape(4, 6)
    for dim, start, length in [(0, 1, 2), (1, 0, 6), (1, -2, 2), (-1, 3, 0), (0, 4, 0)]:
        same(ft.narrow(x, dim, start, length), torch.narrow(T(x), dim, start, length))
    same(ft.narrow(x, 1, fnp.array(2), 3), torch.narrow(T(x), 1, T(2), 3))
    with pytest.raises(ValueError, match=r"narrow: start \(4\) \+ length \(3\) exceeds dimension size \(6\)"):
        ft.narrow(x, 1, 4, 3)
    with pytest.raises(IndexError, match="narrow: start out of range"):
        ft.narrow(x, 1, 7, 0)
    for bad in (lambda: torch.narrow(T(x), 1, 4, 3), lambda: torch.narrow(T(x), 1, 7, 0)):
        with pytest.raises((RuntimeError, IndexError)):
            bad()
    check_grads(lambda v: ft.narrow(v, 1, 1, 3) ** 2, (RNG.normal(size=(2, 5)),), order=2)


def test_unsqueeze_squeeze_flatten_permute():
    x = RNG.normal(size=(2, 1, 3, 1))
    for d in (0, 2, 4, -1, -5):
        same(ft.unsqueeze(x, d), torch.unsqueeze(T(x), d))
    for bad in (5, -6):
        with pytest.raises(IndexError):
            ft.unsqueeze(x, bad)
        with pytest.raises(IndexError):
            torch.unsqueeze(T(x), bad)
    for d in (None, 0, 1, -1, 2, (1, 3), (0, 1)):
        theirs = torch.squeeze(T(x)) if d is None else torch.squeeze(T(x), d)
        same(ft.squeeze(x, d), theirs)
    same(ft.squeeze(np.array(2.0), 0), torch.squeeze(T(2.0), 0))
    with pytest.raises(IndexError):
        ft.squeeze(x, 4)
    y = RNG.normal(size=(2, 3, 4, 5))
    for s, e in [(0, -1), (1, 2), (1, -1), (2, 2), (-3, -2)]:
        same(ft.flatten(y, s, e), torch.flatten(T(y), s, e))
    same(ft.flatten(np.array(3.0)), torch.flatten(T(3.0)))
    with pytest.raises(ValueError, match="flatten: start_dim"):
        ft.flatten(y, 2, 1)
    same(ft.permute(y, 3, 0, 2, 1), T(y).permute(3, 0, 2, 1))
    same(ft.permute(y, (-1, 0, 1, 2)), torch.permute(T(y), (-1, 0, 1, 2)))
    with pytest.raises(ValueError, match="permute: repeated dim"):
        ft.permute(y, 0, 0, 1, 2)
    with pytest.raises(ValueError, match="permute: the number of dims"):
        ft.permute(y, 0, 1)


def test_expand():
    x = RNG.normal(size=(3, 1))
    same(ft.expand(x, 3, 4), T(x).expand(3, 4))
    same(ft.expand(x, (2, -1, 5)), T(x).expand((2, -1, 5)))
    same(ft.expand(x, -1, -1), T(x).expand(-1, -1))
    same(ft.expand(np.array(1.5), 2, 2), T(1.5).expand(2, 2))
    same(ft.expand_as(x, np.zeros((2, 3, 6))), T(x).expand_as(T(np.zeros((2, 3, 6)))))
    for bad in [(4, 4), (-1, 3, 4), (3,)]:
        with pytest.raises(ShapeError, match="expand"):
            ft.expand(x, *bad)
        with pytest.raises(RuntimeError):
            T(x).expand(*bad)
    np.testing.assert_allclose(
        fg_grad(lambda v: ft.expand(v, 2, 3, 4), x)[0], torch_grad(lambda v: v.expand(2, 3, 4), x)[0], rtol=1e-14
    )


# -- arithmetic ---------------------------------------------------------------------------------


def test_clamp():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan])
    for lo, hi in [(-1.0, 1.0), (None, 0.5), (0.0, None), (1.0, -1.0)]:
        same(ft.clamp(x, lo, hi), torch.clamp(T(x), lo, hi))
        same(ft.clamp(x, min=lo, max=hi), T(x).clamp(min=lo, max=hi))
    ints = np.array([-3, 0, 5])
    same(ft.clamp(ints, -1, 2), torch.clamp(T(ints), -1, 2))
    same(ft.clamp(ints, 0.5), torch.clamp(T(ints), 0.5).numpy().astype(np.float32))
    lo_t, hi_t = np.array([0.0, -1.0, 0.0, 0.0, 2.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 1.0])
    same(ft.clamp(x, lo_t, hi_t), torch.clamp(T(x), T(lo_t), T(hi_t)))
    # Gradient passes at the boundaries (PyTorch), unlike fnp.clip's tie sharing.
    xs = np.array([-2.0, -1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(
        fg_grad(lambda v: ft.clamp(v, -1.0, 1.0), xs)[0], torch_grad(lambda v: torch.clamp(v, -1.0, 1.0), xs)[0]
    )
    lo2 = np.array([-1.0, 0.0, 0.5, 1.0, 0.0])
    g_ours = fg_grad(lambda v, m: ft.clamp(v, m, 2.0), xs, lo2)
    g_torch = torch_grad(lambda v, m: torch.clamp(v, m, T(2.0)), xs, lo2)
    for a, b in zip(g_ours, g_torch):
        np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="clamp: at least one"):
        ft.clamp(x)


def test_add_sub_addcmul_addcdiv():
    a, b, c = RNG.normal(size=(2, 3)), RNG.normal(size=3), RNG.normal(size=(2, 1)) + 3
    same(ft.add(a, b, alpha=2.5), torch.add(T(a), T(b), alpha=2.5))
    same(ft.add(a, 1.0), torch.add(T(a), 1.0))
    same(ft.sub(a, b, alpha=-2), torch.sub(T(a), T(b), alpha=-2))
    ia = np.array([1, 2])
    same(ft.add(ia, ia, alpha=3), torch.add(T(ia), T(ia), alpha=3))
    with pytest.raises(TypeError, match="alpha"):
        ft.add(ia, ia, alpha=0.5)
    same(ft.addcmul(a, b, c, value=0.5), torch.addcmul(T(a), T(b), T(c), value=0.5))
    same(ft.addcmul(a, b, c), torch.addcmul(T(a), T(b), T(c)))
    same(ft.addcdiv(a, b, c, value=-2), torch.addcdiv(T(a), T(b), T(c), value=-2))
    with pytest.raises(DTypeError, match="addcdiv: integer division"):
        ft.addcdiv(ia, ia, ia)
    with pytest.raises(RuntimeError):
        torch.addcdiv(T(ia), T(ia), T(ia))
    for ours, theirs in [
        (lambda x, y, z: ft.addcmul(x, y, z, value=0.5), lambda x, y, z: torch.addcmul(x, y, z, value=0.5)),
        (lambda x, y, z: ft.addcdiv(x, y, z, value=2), lambda x, y, z: torch.addcdiv(x, y, z, value=2)),
    ]:
        for g1, g2 in zip(fg_grad(ours, a, b, c), torch_grad(theirs, a, b, c)):
            np.testing.assert_allclose(g1, g2, rtol=1e-13)
    check_grads(lambda x, y, z: ft.addcdiv(x, y, z, value=2), (a, b, c), order=2)


# -- products --------------------------------------------------------------------------------------


def test_mm_bmm_mv_dot_matmul():
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(3, 4))
    same(ft.mm(a, b), torch.mm(T(a), T(b)))
    ba, bb = RNG.normal(size=(5, 2, 3)), RNG.normal(size=(5, 3, 4))
    same(ft.bmm(ba, bb), torch.bmm(T(ba), T(bb)))
    v = RNG.normal(size=3)
    same(ft.mv(a, v), torch.mv(T(a), T(v)))
    same(ft.dot(v, v), torch.dot(T(v), T(v)))
    same(ft.dot(np.array([1, 2]), np.array([3, 4])), torch.dot(T([1, 2]), T([3, 4])))
    same(ft.matmul(ba, v), torch.matmul(T(ba), T(v)))
    for g1, g2 in zip(fg_grad(ft.bmm, ba, bb), torch_grad(torch.bmm, ba, bb)):
        np.testing.assert_allclose(g1, g2, rtol=1e-13)
    check_grads(ft.mm, (a, b), order=2)
    errors = [
        (lambda: ft.mm(a, v), lambda: torch.mm(T(a), T(v)), ShapeError, "mm: expected 2-D"),
        (lambda: ft.mm(a, a), lambda: torch.mm(T(a), T(a)), ShapeError, "cannot be multiplied"),
        (
            lambda: ft.mm(a, b.astype(np.float32)),
            lambda: torch.mm(T(a), T(b.astype(np.float32))),
            DTypeError,
            "same dtype",
        ),
        (lambda: ft.bmm(ba, bb[:4]), lambda: torch.bmm(T(ba), T(bb[:4])), ShapeError, "batch sizes differ"),
        (lambda: ft.bmm(a, b), lambda: torch.bmm(T(a), T(b)), ShapeError, "3-D"),
        (lambda: ft.mv(a, a), lambda: torch.mv(T(a), T(a)), ShapeError, "mv"),
        (lambda: ft.mv(a, np.ones(4)), lambda: torch.mv(T(a), T(np.ones(4))), ShapeError, "cannot be multiplied"),
        (lambda: ft.dot(a, a), lambda: torch.dot(T(a), T(a)), ShapeError, "dot: expected 1-D"),
        (lambda: ft.dot(v, np.ones(4)), lambda: torch.dot(T(v), T(np.ones(4))), ShapeError, "inconsistent"),
        (
            lambda: ft.dot(v, v.astype(np.float32)),
            lambda: torch.dot(T(v), T(v.astype(np.float32))),
            DTypeError,
            "same dtype",
        ),
    ]
    for ours, theirs, exc, msg in errors:
        with pytest.raises(exc, match=msg):
            ours()
        with pytest.raises(RuntimeError):
            theirs()


# -- reductions and sorting -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min(name):
    ours, theirs = getattr(ft, name), getattr(torch, name)
    x = RNG.normal(size=(3, 4, 5))
    same(ours(x), theirs(T(x)))
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            o, t = ours(x, dim, keepdim), theirs(T(x), dim, keepdim)
            same(o.values, t.values)
            same(o.indices, t.indices)
            same(tuple(o), tuple(t))
    r = ours(x, dim=1)
    assert r._fields == ("values", "indices")
    y = RNG.normal(size=(3, 4, 5))
    same(ours(x, y), theirs(T(x), T(y)))
    # max(dim): the whole gradient goes to the returned index; max(): ties share it (PyTorch).
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    np.testing.assert_allclose(
        fg_grad(lambda v: ours(v, 1).values, ties)[0], torch_grad(lambda v: theirs(v, 1).values, ties)[0]
    )
    same(ours(ties, 1).indices, theirs(T(ties), 1).indices)
    tv = torch.tensor(ties, requires_grad=True)
    theirs(tv).backward()
    np.testing.assert_allclose(np.asarray(fg.grad(lambda v: ours(v))(ties)), tv.grad.numpy())
    same(tuple(ours(np.array(2.0), 0)), tuple(theirs(T(2.0), 0)))
    withnan = np.array([[1.0, np.nan, 3.0], [0.0, 5.0, 1.0]])
    same(tuple(ours(withnan, 1)), tuple(theirs(T(withnan), 1)))
    with pytest.raises(ShapeError):
        ours(np.zeros((2, 0)), 1)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort(descending):
    x = RNG.normal(size=(4, 6))
    for dim in (0, 1, -1):
        o, t = ft.sort(x, dim, descending), torch.sort(T(x), dim, descending)
        same(tuple(o), tuple(t))
        same(ft.argsort(x, dim, descending), torch.argsort(T(x), dim, descending))
    ties = np.array([3, 1, 2, 1, 3, np.nan, 0])
    same(
        tuple(ft.sort(ties, descending=descending, stable=True)),
        tuple(torch.sort(T(ties), descending=descending, stable=True)),
    )
    np.testing.assert_allclose(
        fg_grad(lambda v: ft.sort(v, 0, descending).values, x)[0],
        torch_grad(lambda v: torch.sort(v, 0, descending).values, x)[0],
    )
    o = ft.sort(x)
    assert o._fields == ("values", "indices") and o.indices.dtype == np.int64


# -- composition with transforms ----------------------------------------------------------------------


def test_helpers_under_grad_of_grad_and_jacobians():
    x = RNG.normal(size=(3, 4))
    idx = np.array([[0, 3], [2, 2], [1, 0]])

    def f(v):
        g = ft.gather(v, 1, idx)
        s = ft.scatter_add(fnp.zeros_like(v), 1, idx, g * g)
        return fnp.sum(ft.clamp(s, max=5.0) * v)

    check_grads(f, (x,), order=2)
    jac = fg.jacrev(lambda v: ft.gather(v, 1, idx))(x)
    assert jac.shape == (3, 2, 3, 4)
    np.testing.assert_allclose(
        np.asarray(jac).sum(axis=(0, 1)), np.asarray(ft.scatter_add(np.zeros((3, 4)), 1, idx, np.ones((3, 2))))
    )
