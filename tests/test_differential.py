"""Differential tests: gradients, Jacobians and Hessians against JAX (float64) and HIPS autograd.

Each test function is written once against a NumPy-like module ``xp`` (``funcgrad.numpy``,
``jax.numpy`` or ``autograd.numpy``), so the three libraries run the same program. The oracles
are optional: the tests skip cleanly where JAX or autograd is not installed. JAX runs under
``jax.jit`` (its eager op-by-op dispatch would dominate the run time).
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.testing import assert_allclose


def _rng():
    return np.random.default_rng(42)


# -- the functions: (xp, *args) -> scalar (or vector for the Jacobian tests) -------------------------------


def mlp(xp, w1, b1, w2, x):
    h = xp.tanh(x @ w1 + b1)
    out = h @ w2
    return xp.sum(out**2) / out.shape[0]


def softmax_cross_entropy(xp, logits, onehot):
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
    return -xp.mean(xp.sum(onehot * logp, axis=-1))


def logsumexp(xp, x):
    m = xp.max(x, axis=1, keepdims=True)
    return xp.sum(m[:, 0] + xp.log(xp.sum(xp.exp(x - m), axis=1)))


def norms(xp, x):
    return xp.sqrt(xp.sum(x**2)) + xp.sum(xp.abs(x)) + xp.max(xp.abs(x)) + xp.sqrt(xp.sum(x * x, axis=0)).sum()


def polynomial(xp, x):
    return xp.sum(3.0 * x**4 - 2.0 * x**3 + 0.5 * x**2 - x + 1.0)


def trig_chain(xp, x):
    return xp.sum(xp.sin(xp.cos(xp.tanh(x))) * xp.exp(-(x**2)) + xp.arctan(x) * xp.cosh(0.3 * x))


def indexing_heavy(xp, x):
    a = x[::2] * x[1::2]
    b = x[xp.array([0, 2, 2, 5])] * x[-1]
    c = x[::-1][None, :, None][0, 1:4, 0]
    return xp.sum(a**2) + xp.sum(b) + xp.sum(c * x[:3]) + x[3] * x[4]


def einsum_contractions(xp, a, b, c):
    t1 = xp.einsum("ij,jk->ik", a, b)
    t2 = xp.einsum("ik,kl,il->i", t1, c, t1 @ c)
    return xp.sum(t2) + xp.einsum("ij,ij->", a, a) + xp.sum(xp.einsum("ij,k->ikj", b, c[0]) ** 2)


def einsum_diagonals(xp, a, b):
    # repeated indices (traces and diagonals); autograd's einsum cannot differentiate these
    return (
        xp.einsum("ii->", a @ a.T)
        + xp.sum(xp.einsum("ii->i", a) ** 3)
        + xp.sum(xp.einsum("bii->bi", b) * xp.einsum("bij->bj", b))
        + xp.einsum("ii", a * a)
    )


def where_maximum_ties(xp, x):
    # x holds exact ties with the constant 0.5 and with each other: gradients split evenly.
    leaky = xp.where(x > 0, x, 0.1 * x)
    return xp.sum(leaky**2) + xp.sum(xp.maximum(x, 0.5)) + xp.max(x) + xp.sum(xp.minimum(x, x[::-1]))


def cumulative(xp, x):
    return xp.sum(xp.cumsum(x, axis=1) ** 2) + xp.sum(xp.cumsum(x[::-1], axis=0) * x)


def cumprod_fn(xp, x):
    return xp.sum(xp.cumprod(x, axis=1)) + xp.sum(xp.cumprod(x[:, ::-1], axis=0) ** 2)


def sort_based(xp, x):
    s = xp.sort(x)
    w = xp.arange(x.shape[0]) * 1.0 + 1.0
    return xp.sum(s * w) + xp.sum(xp.sort(x * x)[-3:]) + xp.median(x)


def layer_norm(xp, x, gamma):
    mu = xp.mean(x, axis=-1, keepdims=True)
    var = xp.var(x, axis=-1, keepdims=True)
    return xp.sum(((x - mu) / xp.sqrt(var + 1e-5) * gamma) ** 3)


def attention(xp, q, k, v):
    s = q @ k.T / np.sqrt(q.shape[-1])
    s = s - xp.max(s, axis=-1, keepdims=True)
    p = xp.exp(s) / xp.sum(xp.exp(s), axis=-1, keepdims=True)
    return xp.sum((p @ v) ** 2)


def products_and_powers(xp, x):
    return xp.prod(x[:4]) + xp.sum(x**2.5 / (1.0 + x**2)) + xp.sum(xp.sqrt(x) * xp.log1p(x)) + xp.std(x)


def stacking(xp, x, y):
    z = xp.concatenate([x, y, x * y], axis=0)
    s = xp.stack([x, y], axis=1)
    t = xp.transpose(xp.reshape(z, (3, 2, 2)), (2, 0, 1))
    return xp.sum(s**3) + xp.sum(t * xp.arange(12.0).reshape(2, 3, 2)) + xp.sum(xp.tile(x, 2) * xp.repeat(y, 2))


def vector_fn(xp, x):  # vector output, for Jacobians
    return xp.concatenate([xp.sin(x) * x[::-1], xp.cumsum(x**2), xp.tanh(x[:2] @ xp.ones((2, 3)))])


# name -> (function, argument builder, libraries that support every op used)
ALL = ("jax", "autograd")
CASES = {
    "mlp": (
        mlp,
        lambda r: (r.normal(size=(3, 4)), r.normal(size=4), r.normal(size=(4, 2)), r.normal(size=(5, 3))),
        ALL,
    ),
    "softmax_cross_entropy": (
        softmax_cross_entropy,
        lambda r: (r.normal(size=(4, 5)), np.eye(5)[r.integers(0, 5, 4)]),
        ALL,
    ),
    "logsumexp": (logsumexp, lambda r: (r.normal(size=(3, 4)) * 3,), ALL),
    "norms": (norms, lambda r: (r.normal(size=(3, 2)),), ALL),
    "polynomial": (polynomial, lambda r: (r.normal(size=6),), ALL),
    "trig_chain": (trig_chain, lambda r: (r.normal(size=5),), ALL),
    "indexing_heavy": (indexing_heavy, lambda r: (r.normal(size=6),), ALL),
    "einsum_contractions": (
        einsum_contractions,
        lambda r: (r.normal(size=(3, 3)), r.normal(size=(3, 2)), r.normal(size=(2, 4))),
        ALL,
    ),
    "einsum_diagonals": (einsum_diagonals, lambda r: (r.normal(size=(3, 3)), r.normal(size=(2, 3, 3))), ("jax",)),
    "where_maximum_ties": (where_maximum_ties, lambda r: (np.array([0.5, -1.0, 0.5, 2.0, 2.0, 0.3]),), ALL),
    "cumulative": (cumulative, lambda r: (r.normal(size=(3, 4)),), ALL),
    "cumprod": (cumprod_fn, lambda r: (r.uniform(0.5, 1.5, (3, 4)),), ("jax",)),
    "cumprod_with_zeros": (cumprod_fn, lambda r: (np.array([[1.5, 0.0, 2.0], [0.0, -1.0, 0.0]]),), ("jax",)),
    "sort_based": (sort_based, lambda r: (r.permutation(7) * 0.3 + r.uniform(0, 0.1, 7),), ("jax",)),
    "layer_norm": (layer_norm, lambda r: (r.normal(size=(2, 5)), r.normal(size=5)), ALL),
    "attention": (attention, lambda r: (r.normal(size=(3, 4)), r.normal(size=(5, 4)), r.normal(size=(5, 2))), ALL),
    "products_and_powers": (products_and_powers, lambda r: (r.uniform(0.5, 2.0, 6),), ALL),
    "stacking": (stacking, lambda r: (r.normal(size=4), r.normal(size=4)), ALL),
}


# -- oracles --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_ns():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax, jnp
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def autograd_ns():
    autograd = pytest.importorskip("autograd")
    import autograd.numpy as anp

    return autograd, anp


def _fg_args(args):
    return tuple(fnp.asarray(np.asarray(a, np.float64)) for a in args)


def _argnums(args):
    return tuple(range(len(args)))


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if "jax" in CASES[n][2]])
def test_gradients_match_jax(name, jax_ns):
    jax, jnp = jax_ns
    fn, build, libs = CASES[name]
    args = build(_rng())
    nums = _argnums(args)
    v_fg, g_fg = fg.value_and_grad(lambda *a: fn(fnp, *a), argnums=nums)(*_fg_args(args))
    v_jax, g_jax = jax.jit(jax.value_and_grad(lambda *a: fn(jnp, *a), argnums=nums))(*[jnp.asarray(a) for a in args])
    assert_allclose(v_fg, np.asarray(v_jax), rtol=1e-12, err_msg=f"{name} value")
    assert_allclose(
        tuple(g_fg), tuple(np.asarray(g) for g in g_jax), rtol=1e-10, atol=1e-12, err_msg=f"{name} gradient"
    )


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if "jax" in CASES[n][2]])
def test_hessians_match_jax(name, jax_ns):
    jax, jnp = jax_ns
    fn, build, libs = CASES[name]
    args = build(_rng())
    x0 = args[0]
    rest_fg, rest_jax = _fg_args(args[1:]), [jnp.asarray(a) for a in args[1:]]
    h_fg = fg.hessian(lambda x: fn(fnp, x, *rest_fg))(fnp.asarray(np.asarray(x0, np.float64)))
    h_jax = jax.jit(jax.hessian(lambda x: fn(jnp, x, *rest_jax)))(jnp.asarray(x0))
    assert_allclose(h_fg, np.asarray(h_jax), rtol=1e-9, atol=1e-10, err_msg=f"{name} hessian")
    h_rev = fg.jacrev(fg.jacrev(lambda x: fn(fnp, x, *rest_fg)))(fnp.asarray(np.asarray(x0, np.float64)))
    assert_allclose(h_rev, np.asarray(h_jax), rtol=1e-9, atol=1e-10, err_msg=f"{name} jacrev(jacrev)")


def test_jacobians_match_jax(jax_ns):
    jax, jnp = jax_ns
    x = _rng().normal(size=4)
    j_expected = np.asarray(jax.jit(jax.jacfwd(lambda v: vector_fn(jnp, v)))(jnp.asarray(x)))
    assert_allclose(fg.jacrev(lambda v: vector_fn(fnp, v))(fnp.asarray(x)), j_expected, rtol=1e-12)
    assert_allclose(fg.jacfwd(lambda v: vector_fn(fnp, v))(fnp.asarray(x)), j_expected, rtol=1e-12)
    # second-order Jacobian of a vector function (a 3-tensor)
    h_expected = np.asarray(jax.jit(jax.jacfwd(jax.jacrev(lambda v: vector_fn(jnp, v))))(jnp.asarray(x)))
    assert_allclose(
        fg.jacfwd(fg.jacrev(lambda v: vector_fn(fnp, v)))(fnp.asarray(x)), h_expected, rtol=1e-10, atol=1e-12
    )


def test_jvp_vjp_match_jax(jax_ns):
    jax, jnp = jax_ns
    r = _rng()
    x, t, ct = r.normal(size=4), r.normal(size=4), r.normal(size=11)
    y_fg, t_fg = fg.jvp(lambda v: vector_fn(fnp, v), (fnp.asarray(x),), (fnp.asarray(t),))
    y_jax, t_jax = jax.jvp(lambda v: vector_fn(jnp, v), (jnp.asarray(x),), (jnp.asarray(t),))
    assert_allclose((y_fg, t_fg), (np.asarray(y_jax), np.asarray(t_jax)), rtol=1e-12)
    _, f_vjp = fg.vjp(lambda v: vector_fn(fnp, v), fnp.asarray(x))
    _, j_vjp = jax.vjp(lambda v: vector_fn(jnp, v), jnp.asarray(x))
    assert_allclose(f_vjp(fnp.asarray(ct))[0], np.asarray(j_vjp(jnp.asarray(ct))[0]), rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if "autograd" in CASES[n][2]])
def test_gradients_and_hessians_match_autograd(name, autograd_ns):
    autograd, anp = autograd_ns
    fn, build, libs = CASES[name]
    args = build(_rng())
    nums = _argnums(args)
    g_fg = fg.grad(lambda *a: fn(fnp, *a), argnums=nums)(*_fg_args(args))
    for i in nums:
        g_ag = autograd.grad(lambda *a: fn(anp, *a), i)(*args)
        assert_allclose(g_fg[i], g_ag, rtol=1e-10, atol=1e-12, err_msg=f"{name} gradient wrt argument {i}")
    rest = args[1:]
    h_ag = autograd.hessian(lambda x: fn(anp, x, *rest))(args[0])
    h_fg = fg.hessian(lambda x: fn(fnp, x, *_fg_args(rest)))(fnp.asarray(np.asarray(args[0], np.float64)))
    assert_allclose(h_fg, h_ag, rtol=1e-9, atol=1e-10, err_msg=f"{name} hessian")


def test_jacobian_matches_autograd(autograd_ns):
    autograd, anp = autograd_ns
    x = _rng().normal(size=4)
    expected = autograd.jacobian(lambda v: vector_fn(anp, v))(x)
    assert_allclose(fg.jacrev(lambda v: vector_fn(fnp, v))(fnp.asarray(x)), expected, rtol=1e-12)
    assert_allclose(fg.jacfwd(lambda v: vector_fn(fnp, v))(fnp.asarray(x)), expected, rtol=1e-12)
