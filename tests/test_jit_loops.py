"""Control flow compiled into numba loops (funcgrad/jit/loops.py): jit equals eager, the loop
really is compiled (the lowered text names the compiled loop), unsupported bodies fall back
to the Python-level loop with the reason in the compile log, and a second process loads the
loop module from the disk cache."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.testing import assert_allclose


def f64(x):
    return fnp.asarray(np.asarray(x, np.float64))


def _gemm_on():
    from funcgrad.jit import gemm, native

    return native.runtime() is not None and gemm.ENABLED


# the loop module's own products (post_/block_ helpers) need the compiled GEMM
needs_gemm = pytest.mark.skipif(not _gemm_on(), reason="the compiled GEMM is off on this platform or by configuration")


def compiled_equals_eager(f, *args, rtol=1e-12, loops=1):
    """``fg.jit(f)`` runs ``loops`` compiled loops and agrees with eager ``f``."""
    jitted = fg.jit(f)
    text = jitted.lower(*args).as_text()
    assert text.count("# compiled loop:") == loops, text
    got, want = jitted(*args), f(*args)
    for g, w in zip(fg.tree_leaves(got), fg.tree_leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert_allclose(g, w, rtol=rtol, atol=rtol)
    return text


def rnn(w, u, xs, h0):
    def cell(h, x):
        h = fnp.tanh(x @ w + h @ u)
        return h, fnp.sum(h * h)

    return lax.scan(cell, h0, xs)


def test_scan_forward_and_gradient(rng):
    w, u = f64(rng.standard_normal((3, 4))), f64(rng.standard_normal((4, 4)) * 0.5)
    xs, h0 = f64(rng.standard_normal((6, 2, 3))), f64(np.zeros((2, 4)))
    compiled_equals_eager(rnn, w, u, xs, h0)

    def loss(w, u):
        h, norms = rnn(w, u, xs, h0)
        return fnp.sum(h**2) + fnp.sum(norms)

    # the forward scan and the transposed (reverse) scan are both compiled
    compiled_equals_eager(fg.grad(loss, argnums=(0, 1)), w, u, loops=2)


def test_lstm_cell_slices_and_index_updates(rng):
    hidden = 3

    def loss(wx, wh, b, xs):
        def cell(carry, x):
            h, c = carry
            z = x @ wx + h @ wh + b
            i, f, g, o = (z[:, k * hidden : (k + 1) * hidden] for k in range(4))
            c = lax.logistic(f) * c + lax.logistic(i) * fnp.tanh(g)
            h = lax.logistic(o) * fnp.tanh(c)
            return (h, c), None

        zeros = fnp.zeros((2, hidden), fnp.float64)
        (h, _), _ = lax.scan(cell, (zeros, zeros), xs)
        return fnp.sum(h**2)

    args = (
        f64(rng.standard_normal((5, 4 * hidden))),
        f64(rng.standard_normal((hidden, 4 * hidden))),
        f64(rng.standard_normal(4 * hidden)),
        f64(rng.standard_normal((7, 2, 5))),
    )
    text = compiled_equals_eager(fg.grad(loss, argnums=(0, 1, 2)), *args, loops=2)
    assert "scatter_sum_of_slices" in text and "np.dot" in text  # the gate cotangents share one buffer
    assert "the sum of the stacked" in text  # the bias gradient: one sum after the loop
    # the gate cotangents are written by their kernel into the columns of the matrix they form
    (bwd,) = [b.split("\ndef ")[0] for b in text.split("def scan_body")[1:] if "= scatter_sum_of_slices" in b]
    dz = re.search(r"# (v\d+):\S+ = scatter_sum_of_slices", bwd).group(1)
    assert "for j_" not in bwd and re.search(rf"k_\w+\(.*({dz}, ){{3}}", bwd)
    # the gates kernel reads the column slices of z in place (its call passes z, not copies)
    (body,) = [b for b in text.split("def scan_body")[1:] if re.search(r"= v\d+\[:, \d+:\d+\]", b)]
    body = body.split("\ndef ")[0]
    gates = re.findall(r"(v\d+) = v\d+\[:, \d+:\d+\]", body)
    assert len(gates) == 4 and not any(f"np.ascontiguousarray({g})" in body for g in gates)


def _gru_loss(hidden):
    def loss(p, xs):
        def cell(h, x):
            zx = x @ p["wx"] + p["b"]
            zh = h @ p["wh"]
            r = lax.logistic(zx[:, :hidden] + zh[:, :hidden])
            u = lax.logistic(zx[:, hidden : 2 * hidden] + zh[:, hidden : 2 * hidden])
            n = fnp.tanh(zx[:, 2 * hidden :] + r * zh[:, 2 * hidden :])
            return (1 - u) * n + u * h, None

        h, _ = lax.scan(cell, fnp.zeros((xs.shape[1], hidden), xs.dtype), xs, reverse=True)
        return fnp.sum(h**3)

    return loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(6, 1, 5, 7), (9, 3, 17, 33), (13, 16, 32, 64)])
def test_gru_gradients_with_gate_slices_match_eager(rng, shape, dtype):
    """A GRU (reverse scan) whose gates are column slices of two products, at sizes that are
    no multiples of the vector width and with one row (no column windows): jit(grad) equals
    grad and gives the same bits on every call."""
    T, B, D, H = shape
    p = {
        "wx": fnp.asarray((rng.standard_normal((D, 3 * H)) / np.sqrt(D)).astype(dtype)),
        "wh": fnp.asarray((rng.standard_normal((H, 3 * H)) / np.sqrt(H)).astype(dtype)),
        "b": fnp.asarray((rng.standard_normal(3 * H) * 0.1).astype(dtype)),
    }
    xs = fnp.asarray(rng.standard_normal((T, B, D)).astype(dtype))
    grad = fg.grad(_gru_loss(H))
    want, got, again = grad(p, xs), fg.jit(grad)(p, xs), fg.jit(grad)(p, xs)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for k in p:
        assert_allclose(got[k], want[k], rtol=tol, atol=tol)
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(again[k]))


def test_reverse_scan_with_rank0_carry_xs_and_ys():
    def f(xs):
        return lax.scan(lambda c, x: (c * 0.5 + x, c * x), f64(1.0), xs, reverse=True)

    compiled_equals_eager(f, f64(np.arange(5.0)))


def test_scan_of_length_zero_returns_the_initial_carry():
    compiled_equals_eager(lambda xs: lax.scan(lambda c, x: (c + x, x), f64([1.0, 2.0]), xs), f64(np.zeros((0, 2))))


def test_scan_closing_over_a_concrete_array(rng):
    table = np.linspace(0.0, 1.0, 4)  # a NumPy constant captured by the body: hoisted to an argument

    def f(xs):
        return lax.scan(lambda c, x: (c + x * fnp.asarray(table), None), fnp.zeros(4, fnp.float64), xs)[0]

    compiled_equals_eager(f, f64(rng.standard_normal(3)))


def test_fori_loop_while_loop_and_integer_carries():
    compiled_equals_eager(lambda x: lax.fori_loop(0, 5, lambda i, c: c * 2.0 + i, x), f64([1.0, -1.0]))

    def newton_sqrt(a):
        def body(state):
            x, n = state
            return 0.5 * (x + a / x), n + 1

        return lax.while_loop(lambda s: fnp.abs(s[0] * s[0] - a) > 1e-12, body, (a, 0))

    x, n = fg.jit(newton_sqrt)(f64(2.0))
    assert_allclose(x, np.sqrt(2.0), rtol=1e-12)
    assert int(n) == int(newton_sqrt(f64(2.0))[1])
    compiled_equals_eager(newton_sqrt, f64(9.0))

    # a data-dependent trip count: the bound is an argument
    compiled_equals_eager(lambda n, x: lax.fori_loop(0, n, lambda i, c: c + i, x), 4, f64(0.5))


def test_cond_and_switch_with_clamped_index(rng):
    x = f64(rng.standard_normal(3))
    for p in (-1.0, 1.0):
        compiled_equals_eager(lambda p, x: lax.cond(p > 0, lambda x: x * 2, lambda x: fnp.sin(x) - 1, x), f64(p), x)
    branches = [lambda x: x + 1, lambda x: x * x, lambda x: fnp.exp(x)]
    for i in (-3, 0, 1, 2, 7):  # out-of-range indices clamp, as in lax.switch
        compiled_equals_eager(lambda i, x: lax.switch(i, branches, x), i, x)


def test_nested_loops_and_cond_inside_scan(rng):
    def f(xs):
        def step(c, x):
            inner = lax.fori_loop(0, 3, lambda i, a: a * 0.5 + x, c)
            return lax.cond(fnp.sum(inner) > 0, lambda v: v - 1.0, lambda v: v + 1.0, inner), fnp.max(inner)

        return lax.scan(step, fnp.zeros(2, fnp.float64), xs)

    compiled_equals_eager(f, f64(rng.standard_normal((4, 2))))


def test_shape_operations_inside_a_loop(rng):
    def body(c, x):
        y = fnp.concatenate([c[1:], x[:1]])  # slices and concatenate
        z = fnp.pad(y, (1, 2))[1:-2]  # pad
        t = fnp.reshape(fnp.outer(z, x), (-1,))[: c.shape[0]]  # dot of vectors, reshape
        m = fnp.broadcast_to(x[:, None], (3, 3)).T @ z  # broadcast, transpose, matrix-vector
        d = lax.dynamic_slice(fnp.concatenate([c, c]), (fnp.argmax(x),), (3,))
        u = lax.dynamic_update_slice(c, x[1:2] * 2.0, (1,))
        w = c.at[0].add(1.0).at[2].set(x[0])
        return t + m + d + u + w, fnp.stack([y, z])

    xs = f64(rng.standard_normal((4, 3)))
    compiled_equals_eager(lambda xs: lax.scan(body, fnp.zeros(3, fnp.float64), xs), xs)


def test_float32_and_bool_values(rng):
    def f(xs):
        def step(c, x):
            flag = x > 0
            return fnp.where(flag, c + fnp.tanh(x), c * 0.5), flag

        return lax.scan(step, fnp.zeros(4, fnp.float32), xs)

    xs = fnp.asarray(rng.standard_normal((5, 4)).astype(np.float32))
    compiled_equals_eager(f, xs, rtol=1e-6)


def test_unsupported_body_keeps_the_python_loop(rng, caplog):
    fg.config.update("log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="funcgrad.jit"):

            def f(xs):
                return lax.scan(lambda c, x: (c + fnp.sort(x), None), fnp.zeros(3), xs)[0]

            xs = fnp.asarray(rng.standard_normal((4, 3)).astype(np.float32))
            compiled_equals_eager(f, xs, rtol=1e-6, loops=0)
    finally:
        fg.config.update("log_compiles", False)
    assert any("stays a Python-level loop" in r.getMessage() and "sort" in r.getMessage() for r in caplog.records)


def test_loops_can_be_turned_off(rng):
    code = textwrap.dedent(
        """
        import funcgrad as fg, funcgrad.numpy as fnp
        from funcgrad import lax
        f = fg.jit(lambda xs: lax.scan(lambda c, x: (c + x, None), fnp.zeros(2), xs)[0])
        text = f.lower(fnp.ones((3, 2))).as_text()
        assert "compiled loop" not in text
        print(f(fnp.ones((3, 2))))
        """
    )
    env = dict(os.environ, FUNCGRAD_JIT_LOOPS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[3. 3.]" in out.stdout


@pytest.mark.slow
def test_second_process_loads_the_loop_module_from_disk(tmp_path):
    code = textwrap.dedent(
        """
        import logging, sys
        import funcgrad as fg, funcgrad.numpy as fnp
        from funcgrad import lax
        logging.basicConfig(stream=sys.stdout, format="%(message)s")
        fg.config.update("log_compiles", True)
        f = fg.jit(lambda xs: lax.scan(lambda c, x: (fnp.tanh(c * x), None), fnp.ones(2), xs)[0])
        print(f(fnp.ones((3, 2))))
        """
    )
    env = dict(os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)]
    runs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert "Compiled the scan loop module" in runs[0].stdout
    assert "Loaded the scan loop module" in runs[1].stdout and "from the disk cache" in runs[1].stdout


def test_matrix_products_move_out_of_the_loop(rng):
    """x_t @ W (carry-independent) runs batched before the loop; the weight-gradient
    accumulators of the reverse scan become one product after it."""
    w, u = f64(rng.standard_normal((3, 4))), f64(rng.standard_normal((4, 4)) * 0.5)
    xs, h0 = f64(rng.standard_normal((6, 2, 3))), f64(np.zeros((2, 4)))
    text = compiled_equals_eager(rnn, w, u, xs, h0)
    assert "before the loop (hoisted" in text

    def loss(w, u):
        h, norms = rnn(w, u, xs, h0)
        return fnp.sum(h**2) + fnp.sum(norms)

    text = compiled_equals_eager(fg.grad(loss, argnums=(0, 1)), w, u, loops=2)
    assert "after the loop: carry" in text


@needs_gemm
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_gradient_sums_run_inside_the_loop(rng, dtype):
    """Weight gradients large enough for the compiled GEMM are summed by the loop module itself
    (chunks of steps posted to a worker while the loop goes on, the rest after it): the same
    gradients as eager, in a reverse scan (the transposed accumulators of jax-style grad)."""
    T, B, D, H = 13, 8, 24, 32
    w = fnp.asarray((rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype))
    u = fnp.asarray((rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype))
    xs = fnp.asarray(rng.standard_normal((T, B, D)).astype(dtype))
    h0 = fnp.asarray(np.zeros((B, H), dtype))

    def loss(w, u):
        h, norms = rnn(w, u, xs, h0)
        return fnp.sum(h**2) + fnp.sum(norms)

    tol = 1e-12 if dtype == np.float64 else 2e-5
    text = compiled_equals_eager(fg.grad(loss, argnums=(0, 1)), w, u, loops=2, rtol=tol)
    assert f"post_{np.dtype(dtype).name}(" in text and "after the loop: carry" not in text


@needs_gemm
def test_sums_inside_loops_called_from_several_threads(rng):
    """Threads running the same jitted scan at once share the worker pool: a thread finding it
    busy sums its chunks itself. Every thread gets the single-threaded result."""
    import threading

    T, B, D, H = 12, 16, 32, 48
    w = fnp.asarray(rng.standard_normal((D, H)) / np.sqrt(D))
    u = fnp.asarray(rng.standard_normal((H, H)) / np.sqrt(H))
    xs = [fnp.asarray(rng.standard_normal((T, B, D))) for _ in range(4)]
    h0 = fnp.asarray(np.zeros((B, H)))

    def loss(w, u, xs):
        h, norms = rnn(w, u, xs, h0)
        return fnp.sum(h**2) + fnp.sum(norms)

    grad = fg.jit(fg.grad(loss, argnums=(0, 1)))
    assert "post_float64(" in grad.lower(w, u, xs[0]).as_text()
    want = [grad(w, u, x) for x in xs]
    got = [None] * len(xs)

    def run(k):
        for _ in range(20):
            got[k] = grad(w, u, xs[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, e in zip(got, want):
        for a, b in zip(g, e):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@needs_gemm
def test_sums_in_a_forward_scan_and_without_workers(rng):
    """A forward scan accumulating ``acc + x_t.T @ h_t`` (``h`` from the carry: the products are
    summed in the loop), run here and in a process with one thread (no workers: the loop sums
    everything at its end)."""
    code = textwrap.dedent(
        """
        import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
        from funcgrad import lax

        def f(w, xs):
            def step(carry, x):
                h, acc = carry
                h = fnp.tanh(x @ w + h * 0.5)
                return (h, acc + lax.dot_general(x, h, (((0,), (0,)), ((), ())))), fnp.sum(h)

            return lax.scan(step, (fnp.zeros((16, 48), "float64"), fnp.ones((40, 48), "float64")), xs)

        rng = np.random.default_rng(0)
        w = fnp.asarray(rng.standard_normal((40, 48)) / 7)
        xs = fnp.asarray(rng.standard_normal((9, 16, 40)))
        text = fg.jit(f).lower(w, xs).as_text()
        got, want = fg.jit(f)(w, xs), f(w, xs)
        close = [np.allclose(np.asarray(g), np.asarray(e), rtol=1e-12, atol=1e-12)
                 for g, e in zip(fg.tree_leaves(got), fg.tree_leaves(want))]
        print("post_float64(" in text, all(close))
        """
    )
    for threads in ("2", "1"):
        env = dict(os.environ, FUNCGRAD_JIT_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0 and out.stdout.split() == ["True", "True"], (threads, out.stdout, out.stderr)


def test_reduce_sum_accumulators_become_one_sum_after_the_loop(rng):
    """A carry updated as ``c + sum(x_t, axes)`` with ``x_t`` an input is summed over the stacked
    input after the loop; one whose operand is computed in the loop (and not stacked for another
    reason) stays a per-step sum: stacking it would take ``length`` times the memory."""

    def f(xs, h0):
        def step(carry, x):
            h, total, col = carry
            h = fnp.tanh(h * 0.9 + x)
            return (h, total + fnp.sum(h * x, axis=1), col + fnp.sum(x, axis=0)), None

        init = (h0, fnp.zeros(4, fnp.float64), fnp.ones(5, fnp.float64))
        return lax.scan(step, init, xs)[0]

    text = compiled_equals_eager(f, f64(rng.standard_normal((7, 4, 5))), f64(rng.standard_normal((4, 5))))
    assert text.count("the sum of the stacked") == 1 and "('xs', 0)" in text.split("the sum of the stacked")[1]


@needs_gemm
def test_sums_when_numba_rejects_the_loop_module(rng, monkeypatch):
    """If numba rejects a loop module whose driver sums products, the scan runs from Python and
    the products are summed after it."""
    from numba.core.errors import TypingError

    from funcgrad.jit import kernels

    class Rejected:
        def __getattr__(self, name):
            def driver(*args):
                raise TypingError("rejected for the test")

            return driver

    monkeypatch.setattr(kernels, "_load_module", lambda *a: Rejected())
    w, xs = f64(rng.standard_normal((40, 48)) / 7), f64(rng.standard_normal((6, 16, 40)))

    def f(w, xs):
        def step(carry, x):
            h, acc = carry
            h = fnp.tanh(x @ w + h * 0.5)
            return (h, acc + lax.dot_general(x, h, (((0,), (0,)), ((), ())))), None

        return lax.scan(step, (fnp.zeros((16, 48), fnp.float64), fnp.ones((40, 48), fnp.float64)), xs)[0]

    text = compiled_equals_eager(f, w, xs)
    assert "post_float64(" in text


def test_hoisted_values_feeding_stacked_outputs_and_constants(rng):
    w = f64(rng.standard_normal((3, 3)))

    def f(w, xs):
        def step(c, x):
            proj = x @ w  # per-step input only: hoisted and batched
            wt = w.T @ w  # loop-invariant: computed once
            return c @ wt * 0.1 + proj, proj

        return lax.scan(step, fnp.zeros(3, fnp.float64), xs)

    text = compiled_equals_eager(f, w, f64(rng.standard_normal((5, 3))))
    assert "before the loop (hoisted" in text


def test_boolean_reductions_and_reversal_in_a_while_condition(rng):
    def f(x):
        def cond(state):
            v, n = state
            return fnp.any(fnp.abs(v) > 1e-3) & (n < 100)

        return lax.while_loop(cond, lambda s: (s[0][::-1] * 0.5, s[1] + 1), (x, 0))

    compiled_equals_eager(f, f64(rng.standard_normal(4)))
    compiled_equals_eager(
        lambda xs: lax.scan(lambda c, x: (c * fnp.prod(x), fnp.all(x > 0)), f64(1.0), xs), f64(rng.random((3, 2)))
    )


def test_batched_products_inside_a_loop(rng):
    """vmap of a scan with per-example weights: its body's products carry a batch axis."""

    def rnn_one(w, xs):
        return lax.scan(lambda h, x: (fnp.tanh(w @ h + x), w.T @ h), fnp.zeros(3, fnp.float64), xs)

    ws = f64(rng.standard_normal((4, 3, 3)) * 0.5)
    xs = f64(rng.standard_normal((4, 5, 3)))
    compiled_equals_eager(fg.vmap(rnn_one), ws, xs)


def test_infinite_and_nan_literals_in_a_loop():
    def f(xs):
        def step(c, x):
            padded = fnp.pad(x, (1, 1), constant_values=-np.inf)  # a -inf literal operand
            return fnp.maximum(c, fnp.max(padded)), fnp.where(x > 0, x, np.nan)

        return lax.scan(step, f64(-np.inf), xs)

    compiled_equals_eager(f, f64([[1.0, -2.0], [-3.0, 0.5]]))
