"""Autodiff transformations: grad, value_and_grad, vjp, jvp, linearize, jacrev, jacfwd, hessian,
their compositions, custom rules, checkpoint, symbolic zeros, tracing and debugging aids."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.core.jaxpr import typecheck_jaxpr
from funcgrad.testing import assert_allclose, check_grads, check_jit, check_vmap

Params = collections.namedtuple("Params", ["w", "b"])


def f64(x):
    return fnp.asarray(np.asarray(x, np.float64))


def numeric_grad(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(f(f64(x + e))) - float(f(f64(x - e)))) / (2 * eps)
    return g


def mlp(params, x):
    h = fnp.tanh(x @ params["w1"] + params["b1"])
    return fnp.sum((h @ params["w2"]) ** 2)


@pytest.fixture
def mlp_params(rng):
    return {
        "w1": f64(rng.standard_normal((3, 4))),
        "b1": f64(rng.standard_normal(4)),
        "w2": f64(rng.standard_normal((4, 2))),
    }


# -- grad / value_and_grad -------------------------------------------------------------------


def test_grad_matches_finite_differences(rng):
    x = rng.standard_normal(5)
    f = lambda x: fnp.sum(fnp.sin(x) * fnp.exp(x / 3) + x**3)  # noqa: E731
    assert_allclose(fg.grad(f)(f64(x)), numeric_grad(f, x), rtol=1e-6)


def test_value_and_grad():
    v, g = fg.value_and_grad(lambda x: x**3)(2.0)
    assert_allclose(v, 8.0)
    assert_allclose(g, 12.0)
    assert v.dtype == g.dtype == np.float32


@pytest.mark.parametrize(
    "argnums,expected", [(0, 6.0), (1, 10.0), ((0, 1), (6.0, 10.0)), ((1, 0), (10.0, 6.0)), (-1, 10.0)]
)
def test_grad_argnums(argnums, expected):
    f = lambda x, y: x * x * y + y  # noqa: E731
    g = fg.grad(f, argnums=argnums)(3.0, 1.0)
    if isinstance(argnums, tuple):
        assert isinstance(g, tuple) and len(g) == len(argnums)
    assert_allclose(g, expected)


def test_grad_has_aux():
    def f(x):
        return fnp.sum(x**2), {"mean": fnp.mean(x), "n": 3}

    g, aux = fg.grad(f, has_aux=True)(fnp.array([1.0, 2.0, 3.0]))
    assert_allclose(g, [2.0, 4.0, 6.0])
    assert_allclose(aux["mean"], 2.0)
    assert aux["n"] == 3
    assert type(aux["mean"]) is fg.Array  # aux leaves are plain values, not tracers
    (v, aux2), g2 = fg.value_and_grad(f, has_aux=True)(fnp.array([1.0, 2.0, 3.0]))
    assert_allclose(v, 14.0)
    assert_allclose(g2, g)


def test_grad_of_pytrees(mlp_params, rng):
    x = f64(rng.standard_normal((2, 3)))
    g = fg.grad(mlp)(mlp_params, x)
    assert set(g) == set(mlp_params)
    for k in mlp_params:
        assert g[k].shape == mlp_params[k].shape and g[k].dtype == np.float64
        base = np.asarray(mlp_params[k])
        num = numeric_grad(lambda v, k=k: mlp({**mlp_params, k: v}, x), base)
        assert_allclose(g[k], num, rtol=1e-5, atol=1e-8, err_msg=k)


def test_grad_namedtuple_and_tuple_args():
    p = Params(w=fnp.array([1.0, 2.0]), b=fnp.array(0.5))
    g = fg.grad(lambda p, x: fnp.sum(p.w * x) + p.b * 2)(p, fnp.array([3.0, 4.0]))
    assert type(g) is Params
    assert_allclose(g.w, [3.0, 4.0])
    assert_allclose(g.b, 2.0)
    g = fg.grad(lambda t: t[0] * t[1][0])((2.0, [5.0]))
    assert isinstance(g, tuple) and isinstance(g[1], list)
    assert_allclose(g, (5.0, [2.0]))


def test_grad_keyword_arguments_are_closed_over():
    g = fg.grad(lambda x, scale=1.0: scale * x * x)(3.0, scale=2.0)
    assert_allclose(g, 12.0)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_grad_any_order(order):
    f = fnp.sin
    for _ in range(order):
        f = fg.grad(f)
    expected = [math.cos, lambda v: -math.sin(v), lambda v: -math.cos(v), math.sin][order - 1](0.7)
    assert_allclose(f(0.7), expected, rtol=1e-5)
    f = lambda x: x**5  # noqa: E731
    for _ in range(order):
        f = fg.grad(f)
    assert_allclose(f(2.0), [80.0, 160.0, 240.0, 240.0][order - 1], rtol=1e-6)


def test_grad_of_grad_mixed_arguments():
    f = lambda x, y: fnp.sin(x * y)  # noqa: E731
    dxdy = fg.grad(fg.grad(f, 0), 1)(0.3, 0.5)
    assert_allclose(dxdy, math.cos(0.15) - 0.15 * math.sin(0.15), rtol=1e-6)
    # perturbation confusion: the inner derivative must not see the outer x
    g = fg.grad(lambda x: x * fg.grad(lambda y: x * y)(2.0))(3.0)
    assert_allclose(g, 6.0)


def test_python_control_flow_on_concrete_values():
    def f(x, n):
        out = x
        for _ in range(n):
            if out > 1.0:
                out = out * 0.5
            else:
                out = out * out
        while fnp.abs(out) < 1e-3:
            out = out * 10
        return out if float(out) > 0 else -out

    assert_allclose(fg.grad(f)(3.0, 2), 0.25)
    assert_allclose(fg.grad(f)(0.9, 1), 1.8, rtol=1e-6)
    assert_allclose(fg.grad(lambda x: x * int(x))(2.5), 2.0)


def test_stop_gradient():
    assert_allclose(fg.grad(lambda x: x * fg.stop_gradient(x))(3.0), 3.0)
    assert_allclose(fg.grad(lambda x: fg.stop_gradient(x * x))(3.0), 0.0)
    tree = fg.stop_gradient({"a": fnp.ones(2), "b": (fnp.zeros(1),)})
    assert set(tree) == {"a", "b"}
    assert_allclose(fg.grad(lambda x: lax.stop_gradient(x) ** 2 + x)(3.0), 1.0)
    assert_allclose(fg.jacfwd(lambda x: x * fg.stop_gradient(x))(fnp.array([2.0, 3.0])), np.diag([2.0, 3.0]))
    # second order: stop_gradient also blocks the derivative of the derivative
    assert_allclose(fg.grad(fg.grad(lambda x: fg.stop_gradient(x) * x**2))(3.0), 6.0)


def test_unused_inputs_get_zero_gradients():
    g = fg.grad(lambda x, y: fnp.sum(x * 2.0), argnums=(0, 1))(fnp.ones(2), fnp.ones(3))
    assert_allclose(g, (np.full(2, 2.0), np.zeros(3)))
    assert g[1].dtype == np.float32 and g[1].shape == (3,)
    g = fg.grad(lambda p: p["used"] * 3.0)({"used": 1.0, "unused": fnp.ones((2, 2))})
    assert_allclose(g, {"used": 3.0, "unused": np.zeros((2, 2))})
    assert_allclose(fg.grad(lambda x: 5.0)(2.0), 0.0)  # a constant function
    assert_allclose(fg.grad(lambda x: fnp.sum(fnp.zeros(3) * 0.0) + x * 0.0)(2.0), 0.0)
    _, t = fg.jvp(lambda x, y: x, (1.0, 2.0), (0.5, 1.0))
    assert_allclose(t, 0.5)
    _, t = fg.jvp(lambda x: fnp.ones(2), (1.0,), (1.0,))
    assert_allclose(t, [0.0, 0.0])


def test_grad_requires_scalar_float_output_and_float_input():
    with pytest.raises(TypeError, match=r"\(3,\)"):
        fg.grad(lambda x: x * 2)(fnp.ones(3))
    with pytest.raises(TypeError, match="int"):
        fg.grad(lambda x: x * 2.0)(fnp.array(3))
    with pytest.raises(TypeError):
        fg.grad(lambda x: fnp.sum(x > 0))(fnp.ones(3))


# -- vjp / jvp / linearize ------------------------------------------------------------------------


def test_vjp_basic_and_pytrees():
    y, f_vjp = fg.vjp(lambda a, b: {"p": a * b, "s": a + b}, fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0]))
    assert_allclose(y, {"p": [3.0, 8.0], "s": [4.0, 6.0]})
    ca, cb = f_vjp({"p": fnp.ones(2), "s": fnp.array([10.0, 20.0])})
    assert_allclose(ca, [13.0, 24.0])
    assert_allclose(cb, [11.0, 22.0])


def test_vjp_fn_reusable():
    x = fnp.array([0.5, -1.0, 2.0])
    _, f_vjp = fg.vjp(lambda x: fnp.tanh(x) * fnp.exp(x), x)
    first = f_vjp(fnp.ones(3))
    for _ in range(3):
        assert_allclose(f_vjp(fnp.ones(3)), first, rtol=0)
    other = f_vjp(fnp.array([1.0, 0.0, 2.0]))
    assert_allclose(other[0], np.asarray(first[0]) * [1.0, 0.0, 2.0], rtol=1e-6)


def test_vjp_float0_cotangents_for_integer_inputs():
    _, f_vjp = fg.vjp(lambda x, i, b: x * i, fnp.ones(2), fnp.arange(2), fnp.array([True, False]))
    cx, ci, cb = f_vjp(fnp.ones(2))
    assert_allclose(cx, [0.0, 1.0])
    assert ci.dtype == fnp.float0 and ci.shape == (2,)
    assert cb.dtype == fnp.float0 and cb.shape == (2,)


def test_vjp_checks_cotangent():
    _, f_vjp = fg.vjp(lambda x: x * 2, fnp.ones(3))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        f_vjp(fnp.ones(2))
    with pytest.raises(TypeError, match="float64"):
        f_vjp(fnp.ones(3, dtype=np.float64))
    with pytest.raises(TypeError):
        f_vjp((fnp.ones(3),))


def test_vjp_has_aux():
    y, f_vjp, aux = fg.vjp(lambda x: (x * 3, x + 1), 2.0, has_aux=True)
    assert_allclose((y, aux), (6.0, 3.0))
    assert_allclose(f_vjp(fnp.array(1.0)), (3.0,))


def test_jvp_basic_and_has_aux():
    y, t = fg.jvp(
        lambda x, y: x * y,
        (fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0])),
        (fnp.array([1.0, 0.0]), fnp.array([0.0, 1.0])),
    )
    assert_allclose(y, [3.0, 8.0])
    assert_allclose(t, [3.0, 2.0])
    y, t, aux = fg.jvp(lambda x: (x**2, x > 1), (3.0,), (1.0,), has_aux=True)
    assert_allclose((y, t), (9.0, 6.0))
    assert bool(aux)
    with pytest.raises(TypeError):
        fg.jvp(fnp.sin, 1.0, 1.0)
    with pytest.raises(ValueError):
        fg.jvp(fnp.sin, (fnp.ones(2),), (fnp.ones(3),))
    with pytest.raises(TypeError):
        fg.jvp(fnp.sin, (fnp.ones(2),), (fnp.ones(2, dtype=np.float64),))


def test_linearize():
    x = fnp.array([0.3, 1.2])
    y, f_jvp = fg.linearize(lambda x: fnp.sin(x) * x, x)
    assert_allclose(y, np.sin([0.3, 1.2]) * [0.3, 1.2], rtol=1e-6)
    for t in ([1.0, 0.0], [0.0, 2.0], [1.0, 1.0]):
        _, expected = fg.jvp(lambda x: fnp.sin(x) * x, (x,), (fnp.array(t),))
        assert_allclose(f_jvp(fnp.array(t)), expected, rtol=1e-6)
    y, f_jvp = fg.linearize(lambda a, b: {"o": a * b}, 2.0, 3.0)
    assert_allclose(f_jvp(1.0, 0.0), {"o": 3.0})
    assert_allclose(f_jvp(0.0, 1.0), {"o": 2.0})


# -- jacobians ----------------------------------------------------------------------------------------


def _f_vec(x):
    return fnp.stack([x[0] * x[1], fnp.sin(x[2]), fnp.sum(x**2)])


def test_jacobians_agree(rng):
    x = f64(rng.standard_normal(3))
    jr = fg.jacrev(_f_vec)(x)
    jf = fg.jacfwd(_f_vec)(x)
    xv = np.asarray(x)
    expected = np.array([[xv[1], xv[0], 0], [0, 0, np.cos(xv[2])], 2 * xv])
    assert_allclose(jr, expected, rtol=1e-12)
    assert_allclose(jf, expected, rtol=1e-12)


def test_jacobian_shapes_and_pytrees(rng):
    x = f64(rng.standard_normal((2, 3)))
    for jac in (fg.jacrev, fg.jacfwd):
        j = jac(lambda x: fnp.sum(x, axis=0) * 2)(x)
        assert j.shape == (3, 2, 3)
        j = jac(lambda d: {"y": d["a"] * d["b"]})({"a": fnp.ones(2), "b": fnp.full(2, 3.0)})
        assert_allclose(j, {"y": {"a": np.diag([3.0, 3.0]), "b": np.eye(2)}})
        j = jac(lambda a, b: a * b, argnums=(0, 1))(fnp.ones(2), fnp.full(2, 2.0))
        assert_allclose(j, (np.diag([2.0, 2.0]), np.eye(2)))
        j, aux = jac(lambda a: (a * 2, "aux"), has_aux=True)(fnp.ones(2))
        assert aux == "aux" and j.shape == (2, 2)
        j = jac(lambda a: a[0] * a[1])(fnp.array([2.0, 5.0]))  # scalar output
        assert_allclose(j, [5.0, 2.0])


def test_hessian(rng):
    x = f64(rng.standard_normal(3))
    a = rng.standard_normal((3, 3))
    a = a + a.T
    f = lambda x: 0.5 * x @ fnp.asarray(a) @ x + fnp.sum(x**3)  # noqa: E731
    expected = a + np.diag(6 * np.asarray(x))
    assert_allclose(fg.hessian(f)(x), expected, rtol=1e-10)
    assert_allclose(fg.jacfwd(fg.jacrev(f))(x), expected, rtol=1e-10)
    assert_allclose(fg.jacrev(fg.jacfwd(f))(x), expected, rtol=1e-10)
    assert_allclose(fg.jacrev(fg.jacrev(f))(x), expected, rtol=1e-10)
    assert_allclose(fg.jacfwd(fg.jacfwd(f))(x), expected, rtol=1e-10)
    h = fg.hessian(lambda x, y: fnp.sum(x * x * y), argnums=1)(fnp.ones(2), fnp.ones(2))
    assert_allclose(h, np.zeros((2, 2)))


# -- compositions ------------------------------------------------------------------------------------


def test_jvp_of_vjp_and_vjp_of_jvp(rng):
    f = lambda x: fnp.sin(x) * fnp.sum(x**2)  # noqa: E731
    x = f64(rng.standard_normal(3))
    ct = f64(rng.standard_normal(3))
    t = f64(rng.standard_normal(3))
    hess_vec = fg.jacfwd(fg.jacrev(f))(x)  # (3, 3, 3)

    def pullback(x):
        return fg.vjp(f, x)[1](ct)[0]

    _, jv = fg.jvp(pullback, (x,), (t,))
    assert_allclose(jv, np.einsum("i,ijk,k->j", np.asarray(ct), np.asarray(hess_vec), np.asarray(t)), rtol=1e-10)

    def pushforward(x):
        return fg.jvp(f, (x,), (t,))[1]

    _, f_vjp = fg.vjp(pushforward, x)
    (vj,) = f_vjp(ct)
    assert_allclose(vj, np.einsum("i,ijk,j->k", np.asarray(ct), np.asarray(hess_vec), np.asarray(t)), rtol=1e-10)
    check_grads(pullback, (x,), order=2)
    check_grads(pushforward, (x,), order=2)


def test_grad_of_linearize_and_linearize_of_grad():
    def g(x):
        _, f_jvp = fg.linearize(lambda y: fnp.sin(y) * y, x)
        return f_jvp(1.0)  # d/dy (y sin y) = sin y + y cos y

    assert_allclose(g(0.5), math.sin(0.5) + 0.5 * math.cos(0.5), rtol=1e-6)
    assert_allclose(fg.grad(g)(0.5), 2 * math.cos(0.5) - 0.5 * math.sin(0.5), rtol=1e-6)
    _, f_jvp = fg.linearize(fg.grad(lambda y: y**4), 2.0)
    assert_allclose(f_jvp(1.0), 48.0)


def test_deep_composition(rng):
    x = f64(rng.standard_normal(2))

    def f(x):
        return fnp.sum(fnp.exp(x) * fnp.cos(x))

    g1 = fg.grad(f)
    g2 = lambda x: fg.jvp(g1, (x,), (fnp.ones_like(x),))[1]  # noqa: E731
    g3 = fg.grad(lambda x: fnp.sum(g2(x)))
    # f = sum_i e^x cos x: d/dx (e^x cos x) = e^x (cos - sin); second derivative -2 e^x sin; third -2 e^x (sin + cos)
    xv = np.asarray(x)
    assert_allclose(g3(x), -2 * np.exp(xv) * (np.sin(xv) + np.cos(xv)), rtol=1e-10)


# -- custom rules ---------------------------------------------------------------------------------------


def test_custom_jvp():
    @fg.custom_jvp
    def log1pexp(x):
        return fnp.log1p(fnp.exp(x))

    @log1pexp.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * (1 - 1 / (1 + fnp.exp(x)))

    assert_allclose(fg.grad(log1pexp)(100.0), 1.0)  # the naive rule gives nan here
    assert_allclose(fg.grad(log1pexp)(0.0), 0.5)
    assert_allclose(fg.jvp(log1pexp, (0.0,), (2.0,))[1], 1.0)
    assert_allclose(fg.grad(fg.grad(log1pexp))(0.0), 0.25, rtol=1e-6)
    check_grads(log1pexp, (np.array([-1.0, 0.5, 3.0]),), order=2)
    print(fg.make_jaxpr(log1pexp)(1.0))  # tracing a custom_jvp function works


def test_custom_jvp_nondiff_argnums_and_defjvps():
    @fg.custom_jvp
    def scale(x, k):
        return x * k

    scale.defjvps(lambda t, ans, x, k: t * k, lambda t, ans, x, k: t * x)
    assert_allclose(fg.grad(scale, argnums=(0, 1))(2.0, 3.0), (3.0, 2.0))

    def power(n, x):
        return x**n

    power = fg.custom_jvp(power, nondiff_argnums=(0,))

    @power.defjvp
    def _(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(n, x), n * x ** (n - 1) * t

    assert_allclose(fg.grad(power, argnums=1)(3, 2.0), 12.0)
    assert_allclose(fg.grad(fg.grad(power, argnums=1), argnums=1)(3, 2.0), 12.0)


def test_custom_vjp_and_gradient_reversal():
    @fg.custom_vjp
    def grad_reverse(x, lam):
        return x

    def fwd(x, lam):
        return x, lam

    def bwd(lam, g):
        return (-lam * g, None)

    grad_reverse.defvjp(fwd, bwd)
    f = lambda x: fnp.sum(grad_reverse(x, 0.5) ** 2)  # noqa: E731
    x = fnp.array([1.0, -2.0])
    assert_allclose(f(x), 5.0)
    assert_allclose(fg.grad(f)(x), [-1.0, 2.0])
    assert_allclose(fg.grad(lambda lam: grad_reverse(1.0, lam))(0.5), 0.0)  # None -> zero cotangent


def test_custom_vjp_nondiff_argnums_residuals_pytrees():
    def clip_grad(limit, x):
        return x

    clip_grad = fg.custom_vjp(clip_grad, nondiff_argnums=(0,))
    clip_grad.defvjp(lambda limit, x: (x, None), lambda limit, res, g: (fnp.clip(g, -limit, limit),))
    assert_allclose(fg.grad(lambda x: fnp.sum(clip_grad(1.0, x) * 5.0))(fnp.ones(2)), [1.0, 1.0])

    @fg.custom_vjp
    def f(d):
        return {"s": d["a"] * d["b"]}

    f.defvjp(lambda d: (f(d), (d["a"], d["b"])), lambda res, ct: ({"a": ct["s"] * res[1], "b": ct["s"] * res[0]},))
    g = fg.grad(lambda d: f(d)["s"])({"a": 2.0, "b": 3.0})
    assert_allclose(g, {"a": 3.0, "b": 2.0})


def test_custom_vjp_higher_order_and_forward_mode_error():
    @fg.custom_vjp
    def f(x):
        return fnp.sin(x)

    f.defvjp(lambda x: (fnp.sin(x), x), lambda x, g: (g * fnp.cos(x),))
    assert_allclose(fg.grad(f)(1.0), math.cos(1.0), rtol=1e-6)
    assert_allclose(fg.grad(fg.grad(f))(1.0), -math.sin(1.0), rtol=1e-6)  # bwd is itself differentiable
    with pytest.raises(TypeError, match="custom_vjp"):
        fg.jvp(f, (1.0,), (1.0,))
    with pytest.raises(TypeError, match="custom_vjp"):
        fg.jacfwd(f)(fnp.ones(2))
    check_grads(f, (np.array([0.3, 1.0]),), order=2, modes=("rev",))


def test_custom_rules_validate_outputs():
    @fg.custom_jvp
    def bad(x):
        return x

    bad.defjvp(lambda p, t: (p[0], fnp.ones(3)))
    with pytest.raises(ValueError, match="shape"):
        fg.jvp(bad, (fnp.ones(2),), (fnp.ones(2),))

    @fg.custom_vjp
    def bad2(x, y):
        return x * y

    bad2.defvjp(lambda x, y: (x * y, None), lambda res, g: (g,))
    with pytest.raises(TypeError, match="one cotangent per"):
        fg.grad(bad2)(1.0, 2.0)


# -- checkpoint -----------------------------------------------------------------------------------------


def test_checkpoint_same_gradients(mlp_params, rng):
    x = f64(rng.standard_normal((2, 3)))
    g_plain = fg.grad(mlp)(mlp_params, x)
    g_remat = fg.grad(fg.checkpoint(mlp))(mlp_params, x)
    assert_allclose(g_remat, g_plain, rtol=1e-12)

    def block(x):
        return fnp.tanh(fnp.sin(x) * 2.0)

    inner = fg.checkpoint(block)
    nested = fg.checkpoint(lambda x: fnp.sum(inner(inner(x)) ** 2))
    plain = lambda x: fnp.sum(block(block(x)) ** 2)  # noqa: E731
    x = f64(rng.standard_normal(4))
    assert_allclose(nested(x), plain(x), rtol=1e-12)
    assert_allclose(fg.grad(nested)(x), fg.grad(plain)(x), rtol=1e-12)
    assert_allclose(fg.hessian(nested)(x), fg.hessian(plain)(x), rtol=1e-10)
    assert_allclose(
        fg.jvp(nested, (x,), (fnp.ones_like(x),))[1], fg.jvp(plain, (x,), (fnp.ones_like(x),))[1], rtol=1e-12
    )
    assert fg.remat is fg.checkpoint


def test_checkpoint_recomputes_in_backward_pass():
    calls = []

    def f(x):
        calls.append(1)
        return fnp.sin(x) * 2.0

    g = fg.grad(lambda x: fnp.sum(fg.checkpoint(f)(x)))
    calls.clear()
    assert_allclose(g(fnp.ones(2)), 2 * np.cos(np.ones(2)), rtol=1e-6)
    assert len(calls) >= 2  # the forward pass ran again to produce the backward pass


def test_checkpoint_static_argnums_and_integer_inputs():
    f = fg.checkpoint(lambda x, n: x**n, static_argnums=(1,))
    assert_allclose(fg.grad(f)(2.0, 3), 12.0)
    h = fg.checkpoint(lambda x, i: x[i] * 2.0)
    assert_allclose(fg.grad(lambda x: fnp.sum(h(x, fnp.array([0, 0]))))(fnp.ones(3)), [4.0, 0.0, 0.0])


# -- tracing ------------------------------------------------------------------------------------------


def test_make_jaxpr_prints_and_typechecks(mlp_params, rng):
    x = f64(rng.standard_normal((2, 3)))
    for fun, args in [
        (mlp, (mlp_params, x)),
        (fg.grad(mlp), (mlp_params, x)),
        (
            fg.grad(
                fg.grad(
                    lambda x: fnp.sum(fnp.sin(x)) ** 2,
                )
            ),
            (f64(0.3),),
        ),
        (lambda x: fg.jvp(fnp.tanh, (x,), (fnp.ones_like(x),)), (fnp.ones(3),)),
        (fg.jacrev(lambda x: x[::-1] * x), (fnp.ones(3),)),
        (fg.hessian(lambda x: fnp.prod(x)), (fnp.ones(3),)),
        (lambda x: x.at[fnp.array([0, 0])].add(1.0) @ fnp.ones((3, 2)), (fnp.ones(3),)),
    ]:
        closed = fg.make_jaxpr(fun)(*args)
        typecheck_jaxpr(closed.jaxpr)
        text = str(closed)
        assert text.startswith("{ lambda") and text.rstrip().endswith("}")
        assert_allclose(
            fg.tree_util.tree_unflatten(fg.tree_structure(fun(*args)), closed(*fg.tree_leaves(args))),
            fun(*args),
            rtol=1e-12,
        )


def test_make_jaxpr_text():
    text = str(fg.make_jaxpr(lambda x, y: fnp.sin(x) * y + 1.0)(1.0, fnp.ones(3)))
    assert "a:f32[]" in text and "b:f32[3]" in text
    assert "sin a" in text and "mul" in text and "add" in text
    assert "in (" in text
    closed = fg.make_jaxpr(lambda x: x * 2, static_argnums=())(fnp.ones((2, 2), dtype=np.float64))
    assert [str(a) for a in closed.in_avals] == ["f64[2,2]"]
    assert [str(a) for a in closed.out_avals] == ["f64[2,2]"]


def test_typecheck_rejects_broken_jaxprs():
    from funcgrad.core.abstract import ShapedArray
    from funcgrad.core.jaxpr import JaxprTypeError

    closed = fg.make_jaxpr(lambda x: fnp.sin(x) + 1.0)(fnp.ones(3))
    jaxpr = closed.jaxpr
    eqn = jaxpr.eqns[0]
    eqn.outvars[0].aval = ShapedArray((4,), np.float32)  # corrupt the declared type
    with pytest.raises(JaxprTypeError, match="sin"):
        typecheck_jaxpr(jaxpr)
    jaxpr2 = fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(fnp.ones(3)).jaxpr
    jaxpr2.eqns.reverse()  # use before definition
    with pytest.raises(JaxprTypeError, match="before"):
        typecheck_jaxpr(jaxpr2)


def test_leaked_tracer_raises():
    leaked = []

    def f(x):
        leaked.append(x)
        return fnp.sum(x * 2)

    fg.grad(f)(fnp.ones(2))
    fg.make_jaxpr(f)(fnp.ones(2))
    fg.jvp(f, (fnp.ones(2),), (fnp.ones(2),))
    assert len(leaked) == 3
    for t in leaked:
        with pytest.raises(fg.errors.UnexpectedTracerError):
            t + 1.0
        with pytest.raises(fg.errors.UnexpectedTracerError):
            fnp.sin(t)
    with pytest.raises(fg.errors.UnexpectedTracerError):
        fg.grad(lambda y: fnp.sum(leaked[0] * y))(fnp.ones(2))


def test_debug_print_under_transforms(capsys):
    def f(x):
        fg.debug.print("x = {}", x)
        fg.debug.print("sum = {s}", s=fnp.sum(x))
        return fnp.sum(x * x)

    g = fg.grad(f)(fnp.array([1.0, 2.0]))
    assert_allclose(g, [2.0, 4.0])
    out = capsys.readouterr().out
    assert "x = [1. 2.]" in out and "sum = 3.0" in out
    fg.jvp(f, (fnp.array([1.0, 2.0]),), (fnp.ones(2),))
    assert "x = [1. 2.]" in capsys.readouterr().out
    fg.grad(fg.grad(lambda x: (fg.debug.print("in {}", x), x**3)[1]))(2.0)
    assert "in 2.0" in capsys.readouterr().out
    closed = fg.make_jaxpr(f)(fnp.array([1.0, 2.0]))
    assert "debug_print" in str(closed)
    assert capsys.readouterr().out == ""  # tracing records the print ...
    closed(fnp.array([5.0, 6.0]))
    assert "x = [5. 6.]" in capsys.readouterr().out  # ... and running the program prints


def test_debug_nans():
    fg.config.update("debug_nans", True)
    try:
        assert_allclose(fnp.log(fnp.array([1.0])), [0.0])  # no NaN: nothing raised
        with pytest.raises(fg.errors.NaNError, match="log") as info:
            fnp.exp(fnp.log(fnp.array([-1.0, 1.0])))
        assert isinstance(info.value, FloatingPointError)
        with pytest.raises(FloatingPointError, match="div"):
            fnp.array([0.0]) / fnp.array([0.0])
        with pytest.raises(FloatingPointError):
            fg.grad(lambda x: fnp.sum(fnp.log(x)))(fnp.array([-1.0]))
        # a NaN made only by the backward pass (0 * inf in the cotangent of sqrt at 0)
        with pytest.raises(fg.errors.NaNError, match="div"):
            fg.grad(lambda x: fnp.sqrt(x) * 0.0)(0.0)
    finally:
        fg.config.update("debug_nans", False)
    assert np.isnan(float(fnp.log(-1.0)))  # off again: NaNs propagate silently


# -- the testing toolkit itself ---------------------------------------------------------------------------


def _wrong_sin(scale_first=1.0, block_second=False):
    @fg.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        xx = fg.stop_gradient(x) if block_second else x
        return f(x), scale_first * fnp.cos(xx) * t

    return f


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_check_grads_catches_wrong_rules(mode):
    x = (np.linspace(0.1, 1.0, 4),)
    check_grads(_wrong_sin(), x, order=2, modes=(mode,))
    with pytest.raises(AssertionError, match="order 1"):
        check_grads(_wrong_sin(scale_first=1.01), x, order=1, modes=(mode,))
    check_grads(_wrong_sin(block_second=True), x, order=1, modes=(mode,))
    with pytest.raises(AssertionError, match="order 2"):
        check_grads(_wrong_sin(block_second=True), x, order=2, modes=(mode,))


def test_check_grads_pytrees_ints_and_float32():
    check_grads(
        lambda d, i: {"o": d["a"][i] * d["b"]}, ({"a": np.arange(4.0), "b": np.float64(2.0)}, np.array([0, 3])), order=2
    )
    check_grads(lambda x: fnp.tanh(x), (np.linspace(-1, 1, 3).astype(np.float32),), order=2)
    with pytest.raises(TypeError):
        check_grads(fnp.sin, np.ones(2))
    with pytest.raises(ValueError):
        check_grads(fnp.sin, (np.ones(2),), modes=("sideways",))


def test_assert_allclose():
    assert_allclose({"a": fnp.ones(2), "b": [1, (2.0,)]}, {"a": np.ones(2), "b": [1, (2.0,)]})
    assert_allclose(fnp.array([1.0, 2.0]), [1.0, 2.0])
    with pytest.raises(AssertionError, match=r"\['a'\]\[1\]"):
        assert_allclose({"a": [fnp.ones(1), fnp.ones(2)]}, {"a": [np.ones(1), np.zeros(2)]})
    with pytest.raises(AssertionError, match="structure"):
        assert_allclose((fnp.ones(2),), [fnp.ones(2)])
    with pytest.raises(AssertionError, match="shape"):
        assert_allclose(fnp.ones(2), np.ones(3))
    with pytest.raises(AssertionError, match="dtype"):
        assert_allclose(fnp.ones(2), np.ones(2), check_dtypes=True)
    assert_allclose(fnp.array([1.0], dtype=np.float16), np.array([1.0004]))  # float16 resolution
    with pytest.raises(AssertionError):
        assert_allclose(np.array([1.0]), np.array([1.0004]))
    assert_allclose(np.array([1.0]), np.array([1.0004]), rtol=1e-3)
    assert_allclose(np.array([0.0]), np.array([1e-9]), atol=1e-8)


def test_check_vmap_and_check_jit():
    x = np.linspace(0.0, 1.0, 6).reshape(3, 2)
    check_vmap(fnp.sin, (x,))
    check_vmap(lambda a, b: a * b, (x, np.ones(2)), in_axes=(0, None))
    check_jit(fnp.sin, (x,))
    with pytest.raises(AssertionError):
        check_jit(lambda a: a + 1.0 if not isinstance(a, fg.core.trace.Tracer) else a, (x,))


def test_vmap_composes_with_autodiff(rng):
    w = f64(rng.standard_normal((3, 2)))
    xs = f64(rng.standard_normal((4, 3)))

    def f(w, x):
        return fnp.sum(fnp.tanh(x @ w) ** 2)

    per_example = fg.vmap(fg.grad(f), in_axes=(None, 0))(w, xs)
    loop = fnp.stack([fg.grad(f)(w, x) for x in xs])
    assert_allclose(per_example, loop, rtol=1e-12)
    total = fg.grad(lambda w: fnp.sum(fg.vmap(f, in_axes=(None, 0))(w, xs)))(w)
    assert_allclose(total, fnp.sum(loop, axis=0), rtol=1e-12)
    hess = fg.vmap(fg.hessian(lambda x: f(w, x)))(xs)
    assert_allclose(hess, fnp.stack([fg.hessian(lambda x: f(w, x))(x) for x in xs]), rtol=1e-12)
    t = f64(rng.standard_normal((4, 3)))
    _, jv = fg.jvp(lambda xs: fg.vmap(lambda x: f(w, x))(xs), (xs,), (t,))
    vj = fg.vmap(lambda x, tx: fg.jvp(lambda x: f(w, x), (x,), (tx,))[1])(xs, t)
    assert_allclose(jv, vj, rtol=1e-12)
    jac = fg.jacrev(lambda xs: fg.vmap(lambda x: f(w, x))(xs))(xs)
    assert_allclose(
        jac,
        np.einsum("ij,ik->ijk", np.eye(4), np.asarray(fg.vmap(fg.grad(lambda x: f(w, x)))(xs))),
        rtol=1e-12,
        atol=1e-15,
    )
