"""Structured control flow: ``lax.cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``.

Values against Python loops, ``make_jaxpr`` text and type checks of the nested jaxprs, numerical
gradient checks in both modes (float64), reverse mode through ``while_loop`` with a data-dependent
trip count (which JAX refuses), ``vmap`` with per-example predicates and carries against Python
loops, differential tests against JAX (grad, jvp, vmap; an LSTM written with ``scan``), and the
error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import errors, lax
from funcgrad.core.jaxpr import ClosedJaxpr, Jaxpr, typecheck_jaxpr
from funcgrad.lax.control_flow import cond_p, partial_eval_jaxpr, scan_p, while_p
from funcgrad.testing import assert_allclose, check_grads, check_vmap


def f64(x):
    return fnp.asarray(np.asarray(x, dtype=np.float64))


def inner_jaxprs(jaxpr):
    """Every jaxpr nested in ``jaxpr``'s equation parameters, recursively."""
    if isinstance(jaxpr, ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    found = []
    for eqn in jaxpr.eqns:
        for p in eqn.params.values():
            for j in p if isinstance(p, tuple) else (p,):
                if isinstance(j, (Jaxpr, ClosedJaxpr)):
                    j = j.jaxpr if isinstance(j, ClosedJaxpr) else j
                    found.append(j)
                    found += inner_jaxprs(j)
    return found


def typecheck_all(closed):
    typecheck_jaxpr(closed.jaxpr)
    inner = inner_jaxprs(closed)
    for j in inner:
        typecheck_jaxpr(j)
    return inner


# -- the functions under test (each also runs as a Python loop for reference) ----------------------


def newton_sqrt(a):
    """sqrt(a) by Newton's method until converged: a data-dependent trip count."""
    return lax.while_loop(lambda x: fnp.abs(x * x - a) > 1e-12 * a, lambda x: 0.5 * (x + a / x), a)


def grow_until(a, threshold=10.0):
    """Multiply by ``a`` until the value exceeds ``threshold``; returns (value, steps)."""
    return lax.while_loop(lambda c: c[0] < threshold, lambda c: (c[0] * a + 0.1, c[1] + 1), (a, 0))


def rnn_scan(w, xs, h0):
    def step(h, x):
        h = fnp.tanh(h * w + x)
        return h, h**2

    return lax.scan(step, h0, xs)


def rnn_python(w, xs, h0):
    h, ys = h0, []
    for x in xs:
        h = fnp.tanh(h * w + x)
        ys.append(h**2)
    return h, fnp.stack(ys)


# -- values ---------------------------------------------------------------------------------------


def test_cond_and_switch_values():
    assert_allclose(lax.cond(True, fnp.sin, fnp.cos, 0.5), np.sin(0.5))
    assert_allclose(lax.cond(fnp.array(0.0), fnp.sin, fnp.cos, 0.5), np.cos(0.5))  # numbers: nonzero is true
    out = lax.cond(
        fnp.array(3) > 2,
        lambda a, b: {"s": a + b, "d": a - b},
        lambda a, b: {"s": a * b, "d": a / b},
        f64(3.0),
        f64(2.0),
    )
    assert_allclose(out, {"s": 5.0, "d": 1.0})
    branches = [lambda x: x + 1.0, lambda x: x * 2.0, fnp.sin]
    for i, expected in [(-5, 4.0), (0, 4.0), (1, 6.0), (2, np.sin(3.0)), (9, np.sin(3.0))]:
        assert_allclose(lax.switch(i, branches, f64(3.0)), expected)  # the index is clamped, as in JAX
    assert_allclose(lax.switch(0, [lambda: f64(1.0)]), 1.0)
    assert_allclose(lax.cond(False, lambda: f64(1.0), lambda: f64(2.0)), 2.0)  # no operands


def test_cond_branches_close_over_different_values():
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    f = lambda p, x: lax.cond(p, lambda x: x * a, lambda x: x + b, x)
    assert_allclose(f(True, f64(2.0)), [2.0, 4.0])
    assert_allclose(f(False, f64(2.0)), [5.0, 6.0])
    assert_allclose(fg.grad(lambda x: fnp.sum(f(True, x)))(f64(2.0)), 3.0)


def test_while_loop_values():
    assert_allclose(newton_sqrt(f64(2.0)), np.sqrt(2.0), rtol=1e-12)
    value, steps = grow_until(f64(2.0))
    v, n = 2.0, 0
    while v < 10.0:
        v, n = v * 2.0 + 0.1, n + 1
    assert_allclose(value, v)
    assert int(steps) == n
    assert int(lax.while_loop(lambda i: i < 0, lambda i: i + 1, 5)) == 5  # zero iterations
    out = lax.while_loop(
        lambda c: c["i"] < 3, lambda c: {"i": c["i"] + 1, "x": c["x"] * 2.0}, {"i": 0, "x": fnp.ones(2)}
    )
    assert_allclose(out, {"i": 3, "x": [8.0, 8.0]})


def test_fori_loop_values():
    assert int(lax.fori_loop(0, 5, lambda i, x: x + i, 0)) == 10
    assert int(lax.fori_loop(5, 2, lambda i, x: x + i, 7)) == 7  # empty range
    assert_allclose(lax.fori_loop(2, 6, lambda i, x: x * 2.0 + i, f64(1.0)), ((((1 * 2 + 2) * 2 + 3) * 2 + 4) * 2 + 5))
    # Python scalar carries take the body's dtype, as JAX's weak types (no carry type error)
    out = lax.fori_loop(0, 3, lambda i, x: x + f64(0.5), 0.0)
    assert out.dtype == np.float64 and float(out) == 1.5
    # concrete bounds: a scan; traced bounds: a while loop
    assert "scan[" in str(fg.make_jaxpr(lambda x: lax.fori_loop(0, 3, lambda i, c: c * x, x))(1.0))
    assert "while[" in str(fg.make_jaxpr(lambda n, x: lax.fori_loop(0, n, lambda i, c: c * x, x))(3, 1.0))
    assert_allclose(fg.make_jaxpr(lambda n, x: lax.fori_loop(0, n, lambda i, c: c * x, x))(3, 2.0)(3, 2.0), [16.0])


def test_scan_values_match_python_loop(rng):
    w, xs, h0 = f64(rng.normal(size=3)), f64(rng.normal(size=(5, 3))), f64(rng.normal(size=3))
    assert_allclose(rnn_scan(w, xs, h0), rnn_python(w, xs, h0), rtol=1e-12)
    # reverse: iterate from the end, ys stay aligned with xs
    c, ys = lax.scan(lambda c, x: (c * 2.0 + x, c), f64(0.0), f64([1.0, 2.0, 3.0]), reverse=True)
    assert_allclose(c, 17.0)
    assert_allclose(ys, [8.0, 3.0, 0.0])
    # pytrees in and out, no ys, length without xs, length 0
    c, ys = lax.scan(
        lambda c, x: ({"a": c["a"] + x[0], "b": c["b"] * x[1]}, None),
        {"a": f64(0.0), "b": f64(1.0)},
        (f64([1.0, 2.0]), f64([3.0, 4.0])),
    )
    assert ys is None
    assert_allclose(c, {"a": 3.0, "b": 12.0})
    c, ys = lax.scan(lambda c, _: (c + 1, c), 0, None, length=4)
    assert int(c) == 4 and ys.tolist() == [0, 1, 2, 3]
    c, ys = lax.scan(lambda c, x: (c + x, x * 2.0), f64(1.0), f64(np.zeros((0, 2))).sum(1))
    assert_allclose(c, 1.0)
    assert ys.shape == (0,)
    assert_allclose(lax.map(lambda x: {"sq": x * x}, f64([1.0, 2.0])), {"sq": [1.0, 4.0]})
    for bs in (1, 2, 3, 7):  # chunks vmapped, the scan runs over the chunks (and a remainder)
        assert_allclose(
            lax.map(lambda x: fnp.sin(x).sum(), f64(np.ones((5, 2))), batch_size=bs), np.full(5, 2 * np.sin(1.0))
        )


# -- make_jaxpr: readable nested jaxprs, well typed -------------------------------------------------


def test_make_jaxpr_prints_nested_cond():
    closed = fg.make_jaxpr(lambda p, x: lax.cond(p > 0, fnp.sin, fnp.cos, x))(1.0, 2.0)
    text = str(closed)
    assert "cond[\n      branches=(\n        { lambda ; " in text
    assert "sin" in text and "cos" in text and text.rstrip().endswith("}")
    assert len(typecheck_all(closed)) == 2
    assert_allclose(closed(-1.0, 2.0)[0], np.cos(2.0))


def test_make_jaxpr_prints_nested_loops_and_typechecks():
    def f(x, xs):
        y = lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x)
        z = lax.fori_loop(0, 3, lambda i, c: c + x, y)
        return lax.scan(lambda c, xi: (c + xi, lax.cond(xi > 0, lambda: c, lambda: -c)), z, xs)

    closed = fg.make_jaxpr(f)(1.0, fnp.ones(3))
    text = str(closed)
    for piece in (
        "while[",
        "body_jaxpr={ lambda",
        "cond_jaxpr={ lambda",
        "scan[",
        "jaxpr={ lambda",
        "length=3",
        "num_carry=",
        "branches=(",
    ):
        assert piece in text, piece
    names = [line.split("=")[0].strip() for line in text.splitlines()]
    assert names  # every nested line is indented deeper than its equation
    assert len(typecheck_all(closed)) >= 5
    xs = fnp.array([1.0, -1.0, 2.0])
    assert_allclose(tuple(closed(1.0, xs)), f(1.0, xs))


def test_make_jaxpr_of_transformed_control_flow_typechecks(rng):
    w, xs, h0 = f64(rng.normal(size=3)), f64(rng.normal(size=(4, 3))), f64(rng.normal(size=3))
    loss = lambda w, xs: fnp.sum(rnn_scan(w, xs, h0)[1])
    cases = [
        (fg.grad(loss), (w, xs)),
        (lambda w, xs: fg.jvp(loss, (w, xs), (fnp.ones_like(w), fnp.ones_like(xs))), (w, xs)),
        (fg.vmap(loss, (None, 0)), (w, f64(rng.normal(size=(2, 4, 3))))),
        (fg.grad(lambda x: fnp.sum(lax.cond(x[0] > 0, fnp.sin, fnp.cos, x))), (w,)),
        (lambda a: fg.jvp(newton_sqrt, (a,), (f64(1.0),)), (f64(2.0),)),
    ]
    for fun, args in cases:
        closed = fg.make_jaxpr(fun)(*args)
        assert typecheck_all(closed)
        assert_allclose(
            fg.tree_util.tree_unflatten(fg.tree_structure(fun(*args)), closed(*fg.tree_leaves(args))),
            fun(*args),
            rtol=1e-12,
        )


def test_partial_eval_jaxpr_splits_known_and_unknown():
    closed = fg.make_jaxpr(lambda x, t: (fnp.sin(x), fnp.cos(x) * t))(1.0, 2.0)
    known, unknown, out_uk, nres = partial_eval_jaxpr(closed, [False, True])
    assert out_uk == [False, True] and nres == 1
    assert [e.primitive.name for e in unknown.eqns] == ["mul"]
    sin_x, res = known(1.0)
    assert_allclose(unknown(res, 2.0)[0], np.cos(1.0) * 2.0)
    assert_allclose(sin_x, np.sin(1.0))


# -- derivatives: check_grads (finite differences), float64, both modes, order 2 ----------------------


def test_check_grads_cond_and_switch(rng):
    x, y = f64(rng.normal(size=3)), f64(rng.normal(size=3))
    f = lambda x, y: lax.cond(fnp.sum(x) > 0, lambda a, b: fnp.sin(a) * b, lambda a, b: a * fnp.cos(b), x, y)
    check_grads(f, (x, y), order=2)
    check_grads(f, (-x, y), order=2)
    g = lambda i: lambda x: lax.switch(i, [lambda a: a**3, fnp.sin, lambda a: fnp.exp(a) * x[0]], x)
    for i in (0, 1, 2):
        check_grads(g(i), (x,), order=2)


def test_check_grads_scan(rng):
    w, xs, h0 = f64(rng.normal(size=3)), f64(rng.normal(size=(4, 3))), f64(rng.normal(size=3))
    check_grads(rnn_scan, (w, xs, h0), order=2)
    rev = lambda xs, c: lax.scan(lambda c, x: (fnp.sin(c) * x, c * x), c, xs, reverse=True)
    check_grads(rev, (f64(rng.normal(size=5)), f64(0.5)), order=2)


def test_check_grads_fori_loop(rng):
    x = f64(rng.normal(size=3))
    check_grads(lambda x: lax.fori_loop(0, 4, lambda i, c: fnp.sin(c) * x + i, x), (x,), order=2)


def test_check_grads_while_loop_forward_and_reverse():
    # Forward mode of while_loop works as in JAX; reverse mode here too (first and second order).
    check_grads(lambda a: grow_until(a)[0], (f64(1.3),), order=2)
    check_grads(newton_sqrt, (f64(3.0),), order=2)


def test_grad_of_while_loop_with_data_dependent_trip_count():
    # Newton iteration: d sqrt(a)/da = 1 / (2 sqrt(a)), d2 = -1/4 a^(-3/2)
    for a in (0.5, 2.0, 9.0):
        assert_allclose(fg.grad(newton_sqrt)(f64(a)), 0.5 / np.sqrt(a), rtol=1e-9)
        assert_allclose(fg.grad(fg.grad(newton_sqrt))(f64(a)), -0.25 * a**-1.5, rtol=1e-7)
    # Grow until past a threshold: the trip count changes with a; compare with finite differences
    # (away from the points where it jumps).
    f = lambda a: grow_until(a)[0]
    for a in (1.3, 1.7, 2.5):
        eps = 1e-6
        fd = (float(f(f64(a + eps))) - float(f(f64(a - eps)))) / (2 * eps)
        assert int(grow_until(f64(a + eps))[1]) == int(grow_until(f64(a - eps))[1])
        assert_allclose(fg.grad(f)(f64(a)), fd, rtol=1e-6)
    # linearize / vjp / jacrev / hessian go through the same machinery
    _, f_jvp = fg.linearize(newton_sqrt, f64(4.0))
    assert_allclose(f_jvp(f64(1.0)), 0.25)
    assert_allclose(
        fg.jacrev(lambda v: fnp.stack([newton_sqrt(v[0]), newton_sqrt(v[1])]))(f64([4.0, 16.0])),
        np.diag([0.25, 0.125]),
        atol=1e-12,
    )
    assert_allclose(fg.hessian(newton_sqrt)(f64(4.0)), -0.25 * 4.0**-1.5, rtol=1e-7)


def test_grad_of_while_loop_records_a_scan_over_residuals():
    # The linear (tangent) part of the loop is a scan whose length is the trip count.
    seen = {}

    def f(a):
        out = newton_sqrt(a)
        return out

    from funcgrad.transforms.autodiff import linearize_flat

    _, jaxpr, consts, _, _ = linearize_flat(lambda a: [f(a)], [f64(2.0)])
    scans = [e for e in jaxpr.eqns if e.primitive is scan_p]
    assert len(scans) == 1 and not any(e.primitive is while_p for e in jaxpr.eqns)
    a, n = 2.0, 0
    while abs(a * a - 2.0) > 1e-12 * 2.0:
        a, n = 0.5 * (a + 2.0 / a), n + 1
    seen["length"] = scans[0].params["length"]
    assert seen["length"] == n


def test_grad_of_nested_loops(rng):
    # while inside scan and scan inside while: the inner loops are linearized iteration by iteration
    def while_in_scan(a, xs):
        def body(c, x):
            y = lax.while_loop(lambda v: v < 5.0, lambda v: v * a + x, c)
            return y * 0.1, y

        return fnp.sum(lax.scan(body, f64(1.0), xs)[1])

    def scan_in_while(a):
        body = lambda c: lax.scan(lambda s, x: (s * a + x, s), c, f64([1.0, 1.0]))[0]
        return lax.while_loop(lambda c: c < 50.0, body, a)

    check_grads(while_in_scan, (f64(1.5), f64([0.3, 0.5, 0.7])), order=1, modes=("rev",))
    check_grads(scan_in_while, (f64(1.7),), order=1, modes=("rev",))
    check_grads(lambda x: lax.cond(x > 0, lambda x: newton_sqrt(x), lambda x: -x, x), (f64(2.0),), order=1)


def test_grad_of_closed_over_values_and_integer_carries(rng):
    w = f64(rng.normal(size=2))

    def f(w, x):
        def body(c):
            i, h = c
            return i + 1, fnp.tanh(h * w + x)

        return fnp.sum(lax.while_loop(lambda c: c[0] < 3, body, (0, fnp.zeros(2, dtype=np.float64)))[1])

    check_grads(f, (w, f64(0.3)), order=2)


# -- vmap: batched predicates and carries against Python loops -----------------------------------------


def test_vmap_cond_with_batched_predicate(rng):
    f = lambda p, x: lax.cond(p > 0, lambda x: fnp.sin(x) * 2.0, lambda x: x**2, x)
    check_vmap(f, (f64(rng.normal(size=6)), f64(rng.normal(size=(6, 3)))))
    check_vmap(f, (f64(0.5), f64(rng.normal(size=(6, 3)))), in_axes=(None, 0))  # unbatched predicate
    check_vmap(fg.grad(lambda x, p: fnp.sum(f(p, x))), (f64(rng.normal(size=(5, 3))), f64(rng.normal(size=5))))
    text = str(fg.make_jaxpr(fg.vmap(f))(f64(np.ones(2)), f64(np.ones((2, 3)))))
    assert "select_n" in text and "cond[" not in text  # a per-example predicate becomes a select
    # a traced but unbatched predicate keeps the cond, with batched branches
    closed = fg.make_jaxpr(fg.vmap(f, (None, 0)))(0.5, f64(np.ones((2, 3))))
    assert "cond[" in str(closed) and typecheck_all(closed)
    xs = f64(rng.normal(size=(4, 3)))
    for p in (0.5, -0.5):
        assert_allclose(closed(f64(p), xs)[0], fg.vmap(f, (None, 0))(f64(p), xs))


def test_vmap_switch_with_batched_index(rng):
    f = lambda i, x: lax.switch(i, [lambda x: x + 1.0, lambda x: x * 2.0, fnp.sin], x)
    check_vmap(f, (fnp.array([-3, 0, 1, 2, 7]), f64(rng.normal(size=5))))
    check_vmap(fg.grad(f, 1), (fnp.array([-3, 0, 1, 2, 7]), f64(rng.normal(size=5))))


def test_vmap_while_loop_with_batched_predicate():
    # Each example needs a different number of iterations: the loop runs until all are done.
    check_vmap(newton_sqrt, (f64([0.5, 2.0, 9.0, 100.0]),))
    check_vmap(lambda a: grow_until(a), (f64([1.05, 1.3, 2.0, 5.0]),))
    check_vmap(lambda a, t: grow_until(a, t), (f64([1.5, 1.5, 3.0]), f64([2.0, 50.0, 1000.0])))
    fori = lambda n, x: lax.fori_loop(0, n, lambda i, c: c * x + i, x)
    check_vmap(fori, (fnp.array([0, 1, 4]), f64([1.5, 2.0, 0.5])))
    # batched carry, unbatched predicate: the loop stays a while loop over the batch
    f = lambda x: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0 + 1.0), (0, x))[1]
    check_vmap(f, (f64([1.0, 2.0, 3.0]),))
    text = str(fg.make_jaxpr(fg.vmap(f))(f64([1.0, 2.0])))
    assert "while[" in text and "reduce_or" not in text
    # grad of vmap (the batched loop is linearized with its concrete trip count)
    g = fg.grad(lambda ab: fnp.sum(fg.vmap(newton_sqrt)(ab)))(f64([2.0, 3.0, 9.0]))
    assert_allclose(g, 0.5 / np.sqrt([2.0, 3.0, 9.0]), rtol=1e-9)


def test_vmap_scan_batched_carry_and_xs(rng):
    w = f64(rng.normal(size=3))
    check_vmap(rnn_scan, (w, f64(rng.normal(size=(4, 5, 3))), f64(rng.normal(size=3))), in_axes=(None, 1, None))
    check_vmap(rnn_scan, (w, f64(rng.normal(size=(5, 3))), f64(rng.normal(size=(4, 3)))), in_axes=(None, None, 0))
    check_vmap(
        rnn_scan,
        (f64(rng.normal(size=(4, 3))), f64(rng.normal(size=(5, 3))), f64(rng.normal(size=3))),
        in_axes=(0, None, None),
    )
    check_vmap(
        fg.grad(lambda w, xs: fnp.sum(rnn_scan(w, xs, fnp.zeros(3, dtype=np.float64))[1])),
        (w, f64(rng.normal(size=(3, 5, 3)))),
        in_axes=(None, 0),
    )
    check_vmap(lambda xs: lax.map(fnp.sin, xs), (f64(rng.normal(size=(3, 4))),))


def test_control_flow_under_jit(rng):
    w, xs, h0 = f64(rng.normal(size=3)), f64(rng.normal(size=(4, 3))), f64(rng.normal(size=3))
    assert_allclose(fg.jit(rnn_scan)(w, xs, h0), rnn_scan(w, xs, h0), rtol=1e-12)
    loss = lambda w: fnp.sum(rnn_scan(w, xs, h0)[1])
    assert_allclose(fg.jit(fg.grad(loss))(w), fg.grad(loss)(w), rtol=1e-12)
    assert_allclose(fg.jit(newton_sqrt)(f64(2.0)), np.sqrt(2.0), rtol=1e-12)
    assert_allclose(fg.grad(fg.jit(newton_sqrt))(f64(4.0)), 0.25, rtol=1e-9)
    f = lambda p, x: lax.cond(p > 0, fnp.sin, fnp.cos, x)
    assert_allclose(fg.vmap(fg.jit(f))(f64([1.0, -1.0]), f64([0.0, 0.0])), [0.0, 1.0])
    n = fg.jit(lambda n, x: lax.fori_loop(0, n, lambda i, c: c * x, x))
    assert_allclose(n(3, f64(2.0)), 16.0)


def test_jacobians_of_scan(rng):
    f = lambda x: lax.scan(lambda c, xi: (c * xi + fnp.sin(c), c**2), x[0], x)[1]
    x = f64(rng.normal(size=4))
    assert_allclose(fg.jacfwd(f)(x), fg.jacrev(f)(x), rtol=1e-12)
    assert_allclose(fg.hessian(lambda x: fnp.sum(f(x)))(x), fg.jacfwd(fg.jacrev(lambda x: fnp.sum(f(x))))(x))


# -- differential tests against JAX -----------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_ns():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax, jnp
    jax.config.update("jax_enable_x64", previous)


def _programs(xp, lx):
    """The same programs written against (numpy module, lax module) of funcgrad or JAX."""

    def cond_prog(x, y):
        out = lx.cond(xp.sum(x) > 0, lambda a, b: xp.sin(a) * b, lambda a, b: a * xp.cos(b), x, y)
        return xp.sum(out**2)

    def switch_prog(i, x):
        return xp.sum(lx.switch(i, [lambda a: a**2, xp.tanh, lambda a: xp.exp(-a)], x))

    def scan_prog(w, xs):
        def step(c, x):
            h, s = c
            h = xp.tanh(h @ w + x)
            return (h, s + xp.sum(h)), xp.sin(h)

        (h, s), ys = lx.scan(step, (xp.zeros(w.shape[0], dtype=w.dtype), 0.0 * w[0, 0]), xs)
        return xp.sum(ys**2) + s * xp.sum(h)

    def fori_prog(x):
        return xp.sum(lx.fori_loop(0, 4, lambda i, c: xp.sin(c) * x + i, x))

    def while_prog(a):
        return lx.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * a + 0.1, c[1] + c[0]), (a, 0.0 * a))[1]

    return dict(cond=cond_prog, switch=switch_prog, scan=scan_prog, fori=fori_prog, while_=while_prog)


def lstm_loss(xp, lx, params, xs, ys):
    """A one-layer LSTM (PyTorch gate order i, f, g, o) over a (time, batch, features) sequence."""
    w_ih, w_hh, b, w_out = params["w_ih"], params["w_hh"], params["b"], params["w_out"]
    hidden = w_hh.shape[1]

    def cell(carry, x):
        h, c = carry
        gates = x @ w_ih.T + h @ w_hh.T + b
        i = 1.0 / (1.0 + xp.exp(-gates[:, :hidden]))
        f = 1.0 / (1.0 + xp.exp(-gates[:, hidden : 2 * hidden]))
        g = xp.tanh(gates[:, 2 * hidden : 3 * hidden])
        o = 1.0 / (1.0 + xp.exp(-gates[:, 3 * hidden :]))
        c = f * c + i * g
        h = o * xp.tanh(c)
        return (h, c), h @ w_out

    batch = xs.shape[1]
    zeros = xp.zeros((batch, hidden), dtype=xs.dtype)
    _, preds = lx.scan(cell, (zeros, zeros), xs)
    return xp.mean((preds - ys) ** 2)


def _lstm_args(rng, t=5, batch=2, features=3, hidden=4):
    params = {
        "w_ih": rng.normal(size=(4 * hidden, features)) * 0.5,
        "w_hh": rng.normal(size=(4 * hidden, hidden)) * 0.5,
        "b": rng.normal(size=4 * hidden) * 0.1,
        "w_out": rng.normal(size=(hidden, 1)),
    }
    return params, rng.normal(size=(t, batch, features)), rng.normal(size=(t, batch, 1))


def test_grads_match_jax(jax_ns, rng):
    jax, jnp = jax_ns
    ours, theirs = _programs(fnp, lax), _programs(jnp, jax.lax)
    x, y = rng.normal(size=3), rng.normal(size=3)
    w, xs = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(4, 3))
    cases = [("cond", (x, y), (0, 1)), ("cond", (-x, y), (0, 1)), ("scan", (w, xs), (0, 1)), ("fori", (x,), 0)]
    cases += [("switch", (i, x), 1) for i in (-1, 0, 1, 2, 5)]
    for name, args, argnums in cases:
        g_ours = fg.grad(ours[name], argnums)(*[f64(a) if np.ndim(a) or isinstance(a, float) else a for a in args])
        g_jax = jax.jit(jax.grad(theirs[name], argnums))(*[jnp.asarray(a) for a in args])
        assert_allclose(g_ours, jax.tree_util.tree_map(np.asarray, g_jax), rtol=1e-10, atol=1e-12, err_msg=name)
    # while_loop: JAX has forward mode only; our reverse mode must agree with it
    for a in (1.3, 2.2):
        assert_allclose(fg.grad(ours["while_"])(f64(a)), np.asarray(jax.jacfwd(theirs["while_"])(a)), rtol=1e-10)


def test_jvp_and_vmap_match_jax(jax_ns, rng):
    jax, jnp = jax_ns
    ours, theirs = _programs(fnp, lax), _programs(jnp, jax.lax)
    w, xs = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(4, 3))
    tw, txs = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    out, t = fg.jvp(ours["scan"], (f64(w), f64(xs)), (f64(tw), f64(txs)))
    out_j, t_j = jax.jvp(theirs["scan"], (w, xs), (tw, txs))
    assert_allclose((out, t), (np.asarray(out_j), np.asarray(t_j)), rtol=1e-10)
    out, t = fg.jvp(ours["while_"], (f64(1.7),), (f64(1.0),))
    out_j, t_j = jax.jvp(theirs["while_"], (1.7,), (1.0,))
    assert_allclose((out, t), (np.asarray(out_j), np.asarray(t_j)), rtol=1e-10)
    a = rng.uniform(1.05, 3.0, size=6)
    assert_allclose(fg.vmap(ours["while_"])(f64(a)), np.asarray(jax.vmap(theirs["while_"])(a)), rtol=1e-12)
    xb, yb = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    assert_allclose(fg.vmap(ours["cond"])(f64(xb), f64(yb)), np.asarray(jax.vmap(theirs["cond"])(xb, yb)), rtol=1e-12)
    ib = np.array([0, 2, 1, -1, 3])
    assert_allclose(
        fg.vmap(ours["switch"])(fnp.asarray(ib), f64(xb)), np.asarray(jax.vmap(theirs["switch"])(ib, xb)), rtol=1e-12
    )
    xsb = rng.normal(size=(2, 4, 3))
    g = fg.vmap(fg.grad(ours["scan"]), (None, 0))(f64(w), f64(xsb))
    g_j = jax.vmap(jax.grad(theirs["scan"]), (None, 0))(w, xsb)
    assert_allclose(g, np.asarray(g_j), rtol=1e-10)


def test_lstm_gradient_matches_jax_and_finite_differences(jax_ns, rng):
    jax, jnp = jax_ns
    params, xs, ys = _lstm_args(rng)
    p_fg = {k: f64(v) for k, v in params.items()}
    loss_fg = lambda p: lstm_loss(fnp, lax, p, f64(xs), f64(ys))
    value, grads = fg.value_and_grad(loss_fg)(p_fg)
    v_jax, g_jax = jax.jit(jax.value_and_grad(lambda p: lstm_loss(jnp, jax.lax, p, xs, ys)))(params)
    assert_allclose(value, np.asarray(v_jax), rtol=1e-12)
    assert_allclose(grads, {k: np.asarray(v) for k, v in g_jax.items()}, rtol=1e-9, atol=1e-12)
    check_grads(loss_fg, (p_fg,), order=1, modes=("rev",))


def test_lstm_gradient_matches_finite_differences_without_jax(rng):
    params, xs, ys = _lstm_args(rng, t=4, hidden=3)
    p_fg = {k: f64(v) for k, v in params.items()}
    check_grads(lambda p: lstm_loss(fnp, lax, p, f64(xs), f64(ys)), (p_fg,), order=1)


# -- errors -----------------------------------------------------------------------------------------


def test_cond_branch_type_mismatch_lists_both():
    with pytest.raises(TypeError, match=r"true_fun returns .*f32\[3\].* false_fun returns .*f32\[2\]") as info:
        lax.cond(True, lambda x: x, lambda x: x[:2], fnp.ones(3))
    assert isinstance(info.value, errors.FuncgradError)
    with pytest.raises(TypeError, match=r"i64\[\].*f32\[\]"):
        lax.cond(True, lambda: fnp.array(1), lambda: fnp.array(1.0))
    with pytest.raises(TypeError, match="pytree structure"):
        lax.cond(True, lambda x: (x, x), lambda x: x, 1.0)
    with pytest.raises(TypeError, match=r"branches\[0\] returns .* branches\[2\] returns"):
        lax.switch(0, [lambda x: x, lambda x: x, lambda x: x.astype(np.float64)], fnp.ones(2))


def test_cond_and_switch_argument_errors():
    with pytest.raises(TypeError, match=r"pred must be a scalar.*\(3,\).*where"):
        lax.cond(fnp.ones(3) > 0, fnp.sin, fnp.cos, 1.0)
    with pytest.raises(TypeError, match="callable"):
        lax.cond(True, 1.0, fnp.cos, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        lax.switch(0, [], 1.0)
    with pytest.raises(TypeError, match="integer scalar"):
        lax.switch(1.5, [fnp.sin], 1.0)


def test_while_loop_carry_type_errors_name_the_carry():
    init = (fnp.zeros(2), {"h": fnp.zeros(3)})
    with pytest.raises(TypeError, match=r"carry\[1\]\['h'\].*f32\[3\].*\(3,\).*f32\[4\].*\(4,\)") as info:
        lax.while_loop(lambda c: False, lambda c: (c[0], {"h": fnp.zeros(4)}), init)
    assert isinstance(info.value, errors.FuncgradError)
    with pytest.raises(TypeError, match=r"carry\[0\].*float32.*float64"):
        lax.while_loop(lambda c: False, lambda c: (c[0].astype(np.float64), c[1]), init)
    with pytest.raises(TypeError, match="pytree structure"):
        lax.while_loop(lambda c: False, lambda c: c[0], init)
    with pytest.raises(TypeError, match=r"cond_fun must return a boolean scalar.*f32\[\]"):
        lax.while_loop(lambda c: c[0].sum(), lambda c: c, init)
    with pytest.raises(TypeError, match=r"cond_fun must return a boolean scalar.*bool\[2\]"):
        lax.while_loop(lambda c: c[0] > 0, lambda c: c, init)
    with pytest.raises(TypeError, match="upper must be an integer scalar"):
        lax.fori_loop(0, 2.5, lambda i, x: x, 1.0)


def test_scan_errors():
    with pytest.raises(TypeError, match=r"carry\['c'\].*f32\[\].*f32\[2\]"):
        lax.scan(lambda c, x: ({"c": c["c"] * x}, x), {"c": fnp.array(1.0)}, fnp.ones((3, 2)))
    with pytest.raises(TypeError, match="pair"):
        lax.scan(lambda c, x: c + x, 0.0, fnp.ones(3))
    with pytest.raises(ValueError, match=r"same leading axis.*\(3,\).*\(4,\)"):
        lax.scan(lambda c, x: (c, None), 0.0, (fnp.ones(3), fnp.ones(4)))
    with pytest.raises(ValueError, match="length=2"):
        lax.scan(lambda c, x: (c, None), 0.0, fnp.ones(3), length=2)
    with pytest.raises(ValueError, match="length="):
        lax.scan(lambda c, x: (c, None), 0.0, None)
    with pytest.raises(ValueError, match="leading axis"):
        lax.scan(lambda c, x: (c, None), 0.0, fnp.array(1.0))


def test_python_control_flow_inside_bodies_is_a_concretization_error():
    with pytest.raises(errors.ConcretizationError, match="lax.cond"):
        lax.while_loop(lambda x: x < 3.0, lambda x: x + 1.0 if x > 0 else x, 0.0)


@pytest.mark.parametrize("how", ["make_jaxpr", "vmap", "jit"])
def test_reverse_mode_of_while_loop_with_abstract_trip_count_is_a_clear_error(how):
    g = fg.grad(newton_sqrt)
    run = {
        "make_jaxpr": lambda: fg.make_jaxpr(g)(f64(2.0)),
        "vmap": lambda: fg.vmap(g)(f64([2.0, 3.0])),
        "jit": lambda: fg.jit(g)(f64(2.0)),
    }[how]
    with pytest.raises(errors.ConcretizationError, match=r"while_loop.*fori_loop.*scan") as info:
        run()
    assert "trip count" in str(info.value) and isinstance(info.value, TypeError)
    # the forward mode of the same loop works under every transformation
    fwd = lambda a: fg.jvp(newton_sqrt, (a,), (fnp.ones_like(a),))[1]
    assert_allclose(fg.vmap(fwd)(f64([4.0, 16.0])), [0.25, 0.125], rtol=1e-9)


def test_transposing_a_while_loop_is_a_clear_error():
    closed = fg.make_jaxpr(newton_sqrt)(2.0)
    eqn = closed.eqns[0]
    assert eqn.primitive is while_p
    with pytest.raises(TypeError, match=r"while_loop cannot be transposed.*fori_loop.*scan"):
        while_p.transpose([None], *[None] * len(eqn.invars), **eqn.params)


def test_control_flow_primitives_are_registered():
    for prim in (cond_p, while_p, scan_p):
        assert prim.impl and prim.abstract_eval and prim.jvp and prim.batch and prim.partial_eval
    assert cond_p.transpose and scan_p.transpose
