"""The ``fg.vmap`` API: axis specifications, nesting, composition with autodiff, custom rules, errors.

The per-primitive batching rules are covered by ``tests/test_vmap_rules.py``; here the
reference is always a Python loop over examples (and JAX, where installed).
"""

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.tree_util import tree_leaves, tree_map


def _close(got, want, tol=1e-10):
    got_l, want_l = tree_leaves(got), tree_leaves(want)
    assert fg.tree_util.tree_structure(got) == fg.tree_util.tree_structure(want)
    for g, w in zip(got_l, want_l):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _stack(outs, axis=0):
    return tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs], axis), *outs)


def f_scalar(x):
    """A smooth scalar function of a vector (float64 throughout)."""
    return fnp.sum(fnp.tanh(x) * x**2) + fnp.prod(fnp.cos(x))


def f_vec(x):
    return fnp.sin(x) * fnp.sum(x**2) + fnp.tanh(x[::-1])


# -- axis specifications -------------------------------------------------------------------------


def test_in_axes_int_none_tuple(rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    _close(fg.vmap(lambda a: a * 2)(x), x * 2)
    _close(fg.vmap(lambda a: a.sum(), in_axes=1)(y), y.sum(0))
    _close(fg.vmap(lambda a, b: a @ b, in_axes=(0, None))(x, y), x @ y)
    _close(fg.vmap(lambda a, b: a + b, in_axes=(0, 1))(x, y), x + y.T)
    _close(fg.vmap(lambda a, b: a + b, in_axes=[0, 1])(x, y), x + y.T)  # a list at the top is a tuple
    _close(fg.vmap(lambda a, b: a * b, in_axes=(-1, -2))(y, x), y.T * x)


def test_in_axes_nested_pytree_prefix(rng):
    x, y, z = rng.standard_normal((5, 2)), rng.standard_normal((2, 5)), rng.standard_normal(3)

    def f(params, data):
        return params["w"] * data[0] + params["b"].sum() + data[1][:, None].sum()

    got = fg.vmap(f, in_axes=({"w": 0, "b": None}, [1, None]))({"w": x, "b": z}, [y, z])
    want = _stack([f({"w": x[i], "b": z}, [y[:, i], z]) for i in range(5)])
    _close(got, want)
    # A whole subtree with one axis.
    got = fg.vmap(lambda d: d["a"] + d["b"], in_axes=({"a": 0, "b": 0},))({"a": x, "b": 2 * x})
    _close(got, 3 * x)
    # A prefix that does not match the structure is a clear error.
    with pytest.raises(ValueError, match="not a tree prefix"):
        fg.vmap(f, in_axes=({"w": 0}, 0))({"w": x, "b": z}, [y, z])


def test_out_axes_nonzero_none_and_pytree(rng):
    x = rng.standard_normal((4, 3))
    _close(fg.vmap(lambda a: a * 2, out_axes=1)(x), (x * 2).T)
    _close(fg.vmap(lambda a: a * 2, out_axes=-1)(x), (x * 2).T)
    const = np.arange(3.0)
    got = fg.vmap(lambda a: (a, fnp.asarray(const)), out_axes=(0, None))(x)
    _close(got, (x, const))
    got = fg.vmap(lambda a: {"p": a, "q": [a.sum(), a * 3]}, out_axes={"p": 1, "q": 0})(x)
    _close(got, {"p": x.T, "q": [x.sum(1), 3 * x]})
    # An output that does not depend on the batch is broadcast along the mapped axis.
    _close(fg.vmap(lambda a: fnp.ones(2), out_axes=1)(x), np.ones((2, 4)))


def test_axis_size_with_nothing_mapped(rng):
    w = rng.standard_normal(3)
    _close(fg.vmap(lambda: fnp.ones(2), axis_size=5)(), np.ones((5, 2)))
    _close(fg.vmap(lambda a: a * 2, in_axes=None, axis_size=4)(w), np.broadcast_to(2 * w, (4, 3)))
    _close(fg.vmap(lambda a: a + 1, axis_size=4)(rng.standard_normal((4, 2))).shape, (4, 2))
    with pytest.raises(ValueError, match="axis_size"):
        fg.vmap(lambda a: a, in_axes=None)(w)


def test_keyword_arguments_are_mapped_over_axis_0(rng):
    # As in JAX: keyword arguments are mapped over their leading axis.
    x, s = rng.standard_normal((4, 3)), rng.standard_normal(4)
    _close(fg.vmap(lambda a, scale: a * scale)(x, scale=s), x * s[:, None])
    _close(fg.vmap(lambda a, scale: a * scale, in_axes=(1,))(x.T, scale=s), x * s[:, None])


def test_zero_sized_batch():
    assert fg.vmap(lambda a: a * 2)(np.zeros((0, 3))).shape == (0, 3)


def test_nested_vmap(rng):
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    pairwise = fg.vmap(fg.vmap(lambda a, b: fnp.sum((a - b) ** 2), in_axes=(None, 0)), in_axes=(0, None))
    _close(pairwise(x, y), ((x[:, None] - y[None]) ** 2).sum(-1))
    # Inner and outer mapping over different axes of the same array, with out_axes.
    z = rng.standard_normal((2, 3, 4))
    got = fg.vmap(fg.vmap(lambda v: v * fnp.sum(v), in_axes=1, out_axes=1), in_axes=2, out_axes=0)(z)
    want = np.stack([np.stack([z[:, j, k] * z[:, j, k].sum() for j in range(3)], 1) for k in range(4)])
    _close(got, want)


# -- composition with autodiff -----------------------------------------------------------------------


@pytest.fixture
def xs(rng):
    return rng.standard_normal((4, 3))


def test_vmap_of_grad_and_grad_of_vmap(xs):
    _close(fg.vmap(fg.grad(f_scalar))(xs), _stack([fg.grad(f_scalar)(x) for x in xs]))
    _close(fg.grad(lambda a: fg.vmap(f_scalar)(a).sum())(xs), _stack([fg.grad(f_scalar)(x) for x in xs]))
    # Unbatched parameters, per-example data: the gradient of the sum is the sum of gradients.
    w = xs[0]
    g = fg.grad(lambda w: fg.vmap(lambda x: f_scalar(w * x))(xs).sum())(w)
    _close(g, sum(np.asarray(fg.grad(lambda w, x=x: f_scalar(w * x))(w)) for x in xs))


def test_jacobians_and_hessian(xs):
    _close(fg.vmap(fg.jacrev(f_vec))(xs), _stack([fg.jacrev(f_vec)(x) for x in xs]))
    _close(fg.vmap(fg.jacfwd(f_vec))(xs), _stack([fg.jacfwd(f_vec)(x) for x in xs]))
    _close(fg.vmap(fg.hessian(f_scalar))(xs), _stack([fg.hessian(f_scalar)(x) for x in xs]))
    # Jacobians of a vmapped function are block diagonal over examples.
    full = np.asarray(fg.jacfwd(fg.vmap(f_vec))(xs))
    assert full.shape == (4, 3, 4, 3)
    _close(full, np.asarray(fg.jacrev(fg.vmap(f_vec))(xs)))
    for i in range(4):
        _close(full[i, :, i], fg.jacfwd(f_vec)(xs[i]))
        for j in set(range(4)) - {i}:
            assert not np.any(full[i, :, j])
    h = np.asarray(fg.hessian(lambda a: fg.vmap(f_scalar)(a).sum())(xs))
    for i in range(4):
        _close(h[i, :, i], fg.hessian(f_scalar)(xs[i]))


def test_jvp_vjp_linearize(xs, rng):
    ts = rng.standard_normal(xs.shape)
    want_p = _stack([f_vec(x) for x in xs])
    want_t = _stack([fg.jvp(f_vec, (x,), (t,))[1] for x, t in zip(xs, ts)])
    _close(fg.jvp(fg.vmap(f_vec), (xs,), (ts,)), (want_p, want_t))
    _close(fg.vmap(lambda x, t: fg.jvp(f_vec, (x,), (t,)))(xs, ts), (want_p, want_t))
    _close(
        fg.vmap(lambda x, t: fg.jvp(f_vec, (x,), (t,)), in_axes=(0, None))(xs, ts[0]),
        (want_p, _stack([fg.jvp(f_vec, (x,), (ts[0],))[1] for x in xs])),
    )
    want_v = _stack([fg.vjp(f_vec, x)[1](t)[0] for x, t in zip(xs, ts)])
    _close(fg.vjp(fg.vmap(f_vec), xs)[1](ts)[0], want_v)
    _close(fg.vmap(lambda x, t: fg.vjp(f_vec, x)[1](t)[0])(xs, ts), want_v)
    _close(fg.linearize(fg.vmap(f_vec), xs)[1](ts), want_t)
    _close(fg.vmap(lambda x, t: fg.linearize(f_vec, x)[1](t))(xs, ts), want_t)


def test_deep_nesting(rng):
    xs = rng.standard_normal((2, 3, 4))
    got = fg.vmap(fg.vmap(fg.grad(f_scalar)))(xs)
    _close(got, _stack([_stack([fg.grad(f_scalar)(x) for x in row]) for row in xs]))
    # grad of grad through vmap.
    s = np.float64(1.3)
    d2 = fg.grad(fg.grad(lambda s: fg.vmap(lambda x: f_scalar(s * x))(xs[0]).sum()))(s)
    want = sum(float(fg.grad(fg.grad(lambda s, x=x: f_scalar(s * x)))(s)) for x in xs[0])
    np.testing.assert_allclose(float(d2), want, rtol=1e-9)
    # vmap of jacfwd of jacrev (a per-example Hessian the other way round).
    _close(fg.vmap(fg.jacfwd(fg.jacrev(f_scalar)))(xs[0]), fg.vmap(fg.hessian(f_scalar))(xs[0]))


def test_checkpoint_under_vmap(xs):
    g = fg.checkpoint(f_scalar)
    _close(fg.vmap(fg.grad(g))(xs), fg.vmap(fg.grad(f_scalar))(xs))
    _close(fg.grad(lambda a: fg.vmap(g)(a).sum())(xs), fg.vmap(fg.grad(f_scalar))(xs))


# -- custom_jvp / custom_vjp ---------------------------------------------------------------------------


@fg.custom_jvp
def scaled_sin(x, s):
    return fnp.sin(x) * s


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):
    (x, s), (tx, ts) = primals, tangents
    # A deliberately "wrong" rule (factor 3 on x), so the test can see it is used.
    return scaled_sin(x, s), 3.0 * fnp.cos(x) * s * tx + fnp.sin(x) * ts


@fg.custom_vjp
def weird_mul(x, y):
    return x * y


weird_mul.defvjp(lambda x, y: (x * y, (x, y)), lambda res, ct: (5.0 * ct * res[1], ct * res[0]))


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0), (1, 0)], ids=str)
def test_custom_jvp_under_vmap(in_axes, rng):
    x = rng.standard_normal((4, 3) if in_axes[0] != 1 else (3, 4)) if in_axes[0] is not None else rng.standard_normal(3)
    s = rng.standard_normal((4, 3)) if in_axes[1] is not None else rng.standard_normal(3)
    args = (x, s)

    def ex(i):
        return [a if ax is None else np.take(a, i, ax) for a, ax in zip(args, in_axes)]

    _close(fg.vmap(scaled_sin, in_axes)(*args), _stack([scaled_sin(*ex(i)) for i in range(4)]))
    loss = lambda x, s: fnp.sum(scaled_sin(x, s))  # noqa: E731
    grads = fg.vmap(fg.grad(loss, argnums=(0, 1)), in_axes)(*args)
    _close(grads, _stack([fg.grad(loss, argnums=(0, 1))(*ex(i)) for i in range(4)]))
    assert np.allclose(
        np.asarray(grads[0]), 3 * np.cos(_stack([ex(i)[0] for i in range(4)])) * _stack([ex(i)[1] for i in range(4)])
    )
    # grad of the vmapped function: unbatched arguments get the sum over examples.
    got = fg.grad(lambda x, s: fg.vmap(scaled_sin, in_axes)(x, s).sum(), argnums=(0, 1))(*args)
    want = fg.grad(
        lambda x, s: sum(
            loss(*[a if ax is None else a[(slice(None),) * ax + (i,)] for a, ax in zip((x, s), in_axes)])
            for i in range(4)
        ),
        argnums=(0, 1),
    )(*args)
    _close(got, want)
    # Forward mode through the vmapped function.
    t = (np.ones_like(x), np.zeros_like(s))
    _close(
        fg.jvp(fg.vmap(scaled_sin, in_axes), args, t)[1], _stack([3.0 * np.cos(ex(i)[0]) * ex(i)[1] for i in range(4)])
    )


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)], ids=str)
def test_custom_vjp_under_vmap(in_axes, rng):
    x = rng.standard_normal((4, 3)) if in_axes[0] is not None else rng.standard_normal(3)
    y = rng.standard_normal((4, 3)) if in_axes[1] is not None else rng.standard_normal(3)

    def ex(i):
        return [a if ax is None else a[i] for a, ax in zip((x, y), in_axes)]

    loss = lambda x, y: fnp.sum(weird_mul(x, y) ** 2)  # noqa: E731
    _close(fg.vmap(weird_mul, in_axes)(x, y), _stack([weird_mul(*ex(i)) for i in range(4)]))
    got = fg.vmap(fg.grad(loss, argnums=(0, 1)), in_axes)(x, y)
    _close(got, _stack([fg.grad(loss, argnums=(0, 1))(*ex(i)) for i in range(4)]))
    # grad of vmap: the cotangent of an unbatched argument is summed over the batch.
    got = fg.grad(lambda x, y: fg.vmap(weird_mul, in_axes)(x, y).sum(), argnums=(0, 1))(x, y)
    per = [fg.grad(lambda x, y: weird_mul(x, y).sum(), argnums=(0, 1))(*ex(i)) for i in range(4)]
    want = tuple(
        sum(np.asarray(p[k]) for p in per) if ax is None else _stack([p[k] for p in per])
        for k, ax in enumerate(in_axes)
    )
    _close(got, want)
    assert got[0].shape == x.shape and got[1].shape == y.shape


# -- per-example gradients and Jacobians ---------------------------------------------------------------


def _mlp(params, x):
    (w1, b1), (w2, b2) = params
    h = fnp.tanh(x @ w1.T + b1)
    return h @ w2.T + b2


def test_per_example_gradients_of_an_mlp(rng):
    params = (
        (rng.standard_normal((256, 784)) * 0.05, rng.standard_normal(256) * 0.1),
        (rng.standard_normal((10, 256)) * 0.05, rng.standard_normal(10) * 0.1),
    )
    xb, yb = rng.standard_normal((6, 784)), rng.integers(0, 10, 6)

    def loss(params, x, y):
        logits = _mlp(params, x)
        return fg.scipy.special.logsumexp(logits) - logits[y]

    per_example = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))(params, xb, yb)
    leaves = tree_leaves(per_example)
    assert [leaf.shape for leaf in leaves] == [(6, 256, 784), (6, 256), (6, 10, 256), (6, 10)]
    _close(per_example, _stack([fg.grad(loss)(params, xb[i], yb[i]) for i in range(6)]), 1e-9)
    # Their mean is the gradient of the mean loss.
    mean_grad = fg.grad(lambda p: fg.vmap(loss, in_axes=(None, 0, 0))(p, xb, yb).mean())(params)
    _close(mean_grad, tree_map(lambda g: np.asarray(g).mean(0), per_example), 1e-9)


def test_per_sample_jacobians(rng):
    w = rng.standard_normal((5, 7))  # OUT=5, FEAT=7

    def f(x):
        return fnp.tanh(w @ x) * fnp.sum(x)

    xs = rng.standard_normal((8, 7))
    jac = fg.vmap(fg.jacrev(f))(xs)
    assert jac.shape == (8, 5, 7)
    _close(jac, _stack([fg.jacrev(f)(x) for x in xs]))
    _close(fg.vmap(fg.jacfwd(f))(xs), jac)


# -- errors --------------------------------------------------------------------------------------------


def test_inconsistent_sizes_lists_every_argument(rng):
    with pytest.raises(ValueError, match="inconsistent sizes") as e:
        fg.vmap(lambda a, b, c: a + b + c, in_axes=(0, 0, None))(np.ones((4, 3)), np.ones((3, 3)), np.ones(3))
    msg = str(e.value)
    assert "argument 0 has mapped size 4" in msg and "argument 1 has mapped size 3" in msg
    with pytest.raises(ValueError, match="argument 0 has mapped sizes 2, 3"):
        fg.vmap(lambda t: t[0] + t[1])((np.ones((2,)), np.ones((3,))))
    with pytest.raises(ValueError, match="axis_size=5"):
        fg.vmap(lambda a: a, axis_size=5)(np.ones(4))
    assert issubclass(fg.errors.FuncgradError, Exception)


def test_out_axes_none_on_a_mapped_output():
    with pytest.raises(ValueError, match="out_axes=None"):
        fg.vmap(lambda a: a * 2, out_axes=None)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="out of range"):
        fg.vmap(lambda a: a, out_axes=2)(np.ones((4, 3)))


def test_in_axes_out_of_range():
    for ax in (2, -3):
        with pytest.raises(ValueError, match=f"in_axes={ax} is out of range for argument 0 of shape \\(4, 3\\)"):
            fg.vmap(lambda a: a, in_axes=ax)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="out of range"):
        fg.vmap(lambda a: a)(2.0)
    with pytest.raises(ValueError, match="has 1 entries but the function was called with 2"):
        fg.vmap(lambda a, b: a, in_axes=(0,))(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="in_axes must be"):
        fg.vmap(lambda a: a, in_axes="0")(np.ones(2))


def test_python_control_flow_on_a_batched_value():
    x = np.ones((4, 3))

    def branchy(a):
        if a.sum() > 0:
            return a
        return -a

    with pytest.raises(fg.errors.ConcretizationError, match="inside vmap"):
        fg.vmap(branchy)(x)
    with pytest.raises(fg.errors.ConcretizationError):
        fg.vmap(lambda a: bool(a[0]))(x)
    with pytest.raises(fg.errors.ConcretizationError):
        fg.vmap(lambda a: float(a[0]))(x)
    with pytest.raises(TypeError):  # ConcretizationError is also a TypeError, as JAX's
        fg.vmap(lambda a: np.asarray(a))(x)
    # Control flow on an unbatched argument is fine: it is the same for every example.
    fg.vmap(lambda a, flag: a if flag.sum() > 0 else -a, in_axes=(0, None))(x, np.ones(2))


def test_leaked_batch_tracer():
    leaked = []
    fg.vmap(lambda a: leaked.append(a) or a)(np.ones((2, 3)))
    with pytest.raises(fg.errors.UnexpectedTracerError):
        fnp.sin(leaked[0]) + 1


# -- differential checks against JAX -------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def test_vmap_grad_matches_jax(jax, rng):
    jnp = jax.numpy
    xs, w = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))

    def make(np_):
        def loss(w, x):
            h = np_.tanh(w @ x)
            return np_.sum(h**2) + np_.max(x) * np_.sum(np_.sin(w))

        return loss

    for in_axes in [(None, 0), (0, 0)]:
        wb = w if in_axes[0] is None else np.stack([w * (i + 1) for i in range(5)])
        got = fg.vmap(fg.grad(make(fnp), argnums=(0, 1)), in_axes)(wb, xs)
        want = jax.vmap(jax.grad(make(jnp), argnums=(0, 1)), in_axes)(wb, xs)
        _close(got, tuple(np.asarray(v) for v in want), 1e-10)
    got = fg.grad(lambda w: fg.vmap(make(fnp), (None, 0))(w, xs).mean())(w)
    want = jax.grad(lambda w: jax.vmap(make(jnp), (None, 0))(w, xs).mean())(w)
    _close(got, np.asarray(want), 1e-10)


def test_vmap_hessian_and_jacrev_match_jax(jax, rng):
    jnp = jax.numpy
    xs = rng.standard_normal((3, 4))

    def make(np_):
        return lambda x: np_.sum(np_.exp(-(x**2)) * np_.cumsum(x)) + np_.prod(np_.cos(x[1:]))

    _close(fg.vmap(fg.hessian(make(fnp)))(xs), np.asarray(jax.vmap(jax.hessian(make(jnp)))(xs)), 1e-10)
    g = lambda np_: lambda x: np_.sort(x) * np_.linalg.norm(x)  # noqa: E731
    _close(
        fg.vmap(fg.jacrev(g(fnp)), in_axes=1)(xs.T), np.asarray(jax.vmap(jax.jacrev(g(jnp)), in_axes=1)(xs.T)), 1e-10
    )


def test_vmap_grad_of_conv_and_gather_matches_jax(jax, rng):
    jnp, jlax = jax.numpy, jax.lax
    from funcgrad import lax

    xs, w = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    idx = rng.integers(0, 3, (4, 5))

    def make(np_, lax_):
        def loss(w, x, i):
            y = lax_.conv_general_dilated(x[None], w, (1, 1), "SAME")[0]
            pooled = lax_.reduce_window(y, -np_.inf, lax_.max, (1, 2, 2), (1, 2, 2), "VALID")
            return np_.sum(np_.take(pooled.reshape(-1), i) ** 2)

        return loss

    got = fg.vmap(fg.grad(make(fnp, lax)), (None, 0, 0))(w, xs, idx)
    want = jax.vmap(jax.grad(make(jnp, jlax)), (None, 0, 0))(w, xs, idx)
    _close(got, np.asarray(want), 1e-9)
