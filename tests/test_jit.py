"""``fg.jit``: compiled code equals eager code, and the machinery around it.

* the op table (tests/test_ops.py) under jit, rows with identical arguments jitted together so
  that their elementwise work lands in shared fused kernels (one numba compile per batch, not
  per row), and every elementwise template on special values (NaN, inf, signed zeros, integer
  extremes) in one kernel per dtype;
* fusion: what becomes one loop nest (elementwise chains, bias + ReLU, softmax and
  logsumexp rows, Adam's per-parameter update), and that the result still equals eager;
* transformations: ``jit(grad(f)) == grad(jit(f))``, ``vmap(jit(f))``, nested jits;
* the trace cache: retrace counts, static arguments, ``disable_jit``, ``log_compiles`` and
  its miss reasons, ``lower().as_text()``;
* the kernel cache: a second process loads kernels from disk (seen in the compile log),
  concurrent compiles from threads and processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.core.pytree import tree_flatten
from funcgrad.testing import assert_allclose

sys.path.insert(0, os.path.dirname(__file__))
import test_ops  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _close(got, want, what, rtol=None):
    g_leaves, g_tree = tree_flatten(got)
    w_leaves, w_tree = tree_flatten(want)
    assert g_tree == w_tree, f"{what}: structure {g_tree} != {w_tree}"
    for k, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype), f"{what} output {k}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
        if w.dtype.kind in "fc":
            tol = rtol if rtol is not None else (3e-6 if w.dtype in (np.float32, np.complex64) else 1e-13)
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=f"{what} output {k}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what} output {k}")


# -- the op table ----------------------------------------------------------------------------------


def _batches(dtype_index):
    """Rows grouped by identical arguments (so one jitted function can share them)."""
    groups = {}
    for row in test_ops.OPS:
        if not row.trace or dtype_index >= len(row.dtypes):
            continue
        dt = row.dtypes[dtype_index]
        args = row.args(dt)
        key = (dt.name,) + tuple((a.shape, a.dtype.str, a.tobytes()) for a in args)
        groups.setdefault(key, (args, []))[1].append(row)
    return [
        pytest.param(args, rows, id=f"{rows[0].name}+{len(rows) - 1}-{key[0]}") for key, (args, rows) in groups.items()
    ]


def _check_batch(args, rows):
    xs = [fnp.asarray(a) for a in args]
    with np.errstate(all="ignore"):
        want = [row.fn(*xs) for row in rows]
        try:
            got = fg.jit(lambda *a: [row.fn(*a) for row in rows])(*xs)
        except Exception:  # find the row that fails alone, for the message
            for row in rows:
                fg.jit(row.fn)(*xs)
            raise
    for row, g, w in zip(rows, got, want):
        _close(
            g,
            w,
            f"jit({row.name})",
            rtol=max(3e-6, row.rtol or 0) if np.asarray(tree_flatten(w)[0][0]).dtype == np.float32 else None,
        )


@pytest.mark.parametrize("args,rows", _batches(0))
def test_op_table_under_jit(args, rows):
    _check_batch(args, rows)


@pytest.mark.slow
@pytest.mark.parametrize("args,rows", _batches(1) + _batches(2) + _batches(3))
def test_op_table_under_jit_other_dtypes(args, rows):
    _check_batch(args, rows)


# Every primitive with a scalar template, on special values, fused into one kernel per dtype.
FLOAT_VALUES = [-np.inf, -3.5, -1.0, -0.75, -0.0, 0.0, 1e-30, 0.3, 0.5, 1.0, 2.5, 40.0, np.inf, np.nan]
INT_VALUES = {np.dtype(t): None for t in ("int8", "int32", "int64", "uint8", "uint32")}
UNARY_FLOAT = [
    "neg",
    "sign",
    "floor",
    "ceil",
    "round",
    "is_finite",
    "exp",
    "exp2",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "logistic",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "sqrt",
    "rsqrt",
    "cbrt",
    "abs",
    "isnan",
    "real",
    "imag",
    "conj",
    "erf",
    "erfc",
    "lgamma",
]
BINARY_FLOAT = [
    "add",
    "sub",
    "mul",
    "div",
    "rem",
    "pow",
    "max",
    "min",
    "atan2",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "floor_divide",
    "remainder",
]
UNARY_INT = ["neg", "sign", "floor", "ceil", "round", "abs", "not", "real", "imag", "conj"]
BINARY_INT = [
    "add",
    "sub",
    "mul",
    "div",
    "rem",
    "max",
    "min",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "xor",
    "shift_left",
    "shift_right_arithmetic",
    "shift_right_logical",
    "floor_divide",
    "remainder",
]
# Transcendental functions: float32 uses fastmath (<= 2 ulp, tests/test_jit_fastmath.py) and both
# widths may differ from NumPy's libm in the last bits.
INEXACT = {
    "exp",
    "exp2",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "logistic",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "cbrt",
    "erf",
    "erfc",
    "lgamma",
    "pow",
    "atan2",
    "integer_pow3",
}


def _prim(name):
    from funcgrad.lax import elementwise, special

    return getattr(elementwise, f"{name}_p", None) or getattr(special, f"{name}_p")


def _int_values(dtype):
    info = np.iinfo(dtype)
    vals = [info.min, info.min + 1, -7, -3, -1, 0, 1, 2, 3, 5, 31, info.max - 1, info.max]
    return np.array([v for v in vals if info.min <= v <= info.max], dtype)


def _special_case(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = np.array(FLOAT_VALUES, dtype)
        unary, binary = UNARY_FLOAT, BINARY_FLOAT
    elif dtype == np.bool_:
        v = np.array([True, False, True, False])
        unary, binary = ["not"], ["and", "or", "xor", "eq", "ne", "lt", "gt", "max", "min"]
    else:
        v = _int_values(dtype)
        unary, binary = UNARY_INT, BINARY_INT
    # every ordered pair of values, flattened
    x, y = np.meshgrid(v, v, indexing="ij")
    return x.ravel(), y.ravel(), unary, binary


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8", "int8", "uint32", "bool"])
def test_every_template_on_special_values(dtype):
    x, y, unary, binary = _special_case(dtype)
    ops = [(n, 1) for n in unary] + [(n, 2) for n in binary]
    if np.dtype(dtype).kind != "b":
        ops += [("integer_pow2", 1), ("integer_pow3", 1), ("select_n", 2), ("convert", 1)]

    def apply(name, nargs, a, b):
        if name.startswith("integer_pow"):
            return lax.integer_pow(a, int(name[-1]))
        if name == "select_n":
            return lax.select(a > b, a, b)
        if name == "convert":
            to = np.float64 if np.dtype(dtype).kind in "iu" else np.int32
            return (
                lax.convert_element_type(lax.max(lax.min(a, b), b), to)
                if False
                else lax.convert_element_type(a, np.float32 if np.dtype(dtype) == np.float64 else np.float64)
            )
        p = _prim(name)
        return p.bind(a) if nargs == 1 else p.bind(a, b)

    def many(a, b):
        return [apply(n, k, a, b) for n, k in ops]

    xa, ya = fnp.asarray(x), fnp.asarray(y)
    with np.errstate(all="ignore"):
        want = many(xa, ya)
        got = fg.jit(many)(xa, ya)
    text = fg.jit(many).lower(xa, ya).as_text()
    assert text.count("def kernel(") >= 1  # they were fused
    for (name, _), g, w in zip(ops, got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, name
        if name == "lgamma":  # log|Gamma(-inf)|: libm says inf, funcgrad's float64 kernel -inf
            keep = np.asarray(x) != -np.inf
            g, w = g[keep], w[keep]
        if g.dtype.kind == "f" and name in INEXACT:
            tol = 4e-7 if g.dtype == np.float32 else 1e-14
            np.testing.assert_allclose(
                g,
                w,
                rtol=tol,
                atol=1e-37 if g.dtype == np.float32 else 1e-300,
                equal_nan=True,
                err_msg=f"{name} {dtype}",
            )
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{name} {dtype}: {x} {y}")


# -- fusion ------------------------------------------------------------------------------------------


def _kernels(text):
    return text.count("def kernel(")


def chain(x):
    return fnp.tanh(x) * fnp.exp(-x * x) + fnp.sin(x) * 0.5 - x / (1 + x * x)


def test_elementwise_chain_is_one_kernel(rng):
    x = fnp.asarray(rng.standard_normal(1000).astype(np.float32))
    text = fg.jit(chain).lower(x).as_text()
    assert _kernels(text) == 1
    assert "fm.tanh_f32" in text and "fm.exp_f32" in text and "fm.sin_f32" in text  # vectorizable float32 math
    assert text.count("_empty(") == 1  # a single output array; the intermediates stay in registers
    _close(fg.jit(chain)(x), chain(x), "chain")
    x64 = fnp.asarray(rng.standard_normal(1000))
    text64 = fg.jit(chain).lower(x64).as_text()
    assert "math.tanh" in text64 and "fm." not in text64.split("# ---- kernel")[1].split("@njit")[1]  # libm
    _close(fg.jit(chain)(x64), chain(x64), "chain f64", rtol=1e-14)


def test_rows_softmax_and_logsumexp_are_one_pass(rng):
    from funcgrad.scipy.special import logsumexp

    a = fnp.asarray(rng.standard_normal((37, 129)).astype(np.float32))
    lse = fg.jit(lambda a: logsumexp(a, axis=-1))
    assert _kernels(lse.lower(a).as_text()) == 1
    _close(lse(a), logsumexp(a, axis=-1), "logsumexp")

    def softmax(x):
        e = fnp.exp(x - fnp.max(x, axis=-1, keepdims=True))
        return e / fnp.sum(e, axis=-1, keepdims=True)

    text = fg.jit(softmax).lower(a).as_text()
    assert _kernels(text) == 1 and "fm.rmax" in text and "fm.radd" in text
    _close(fg.jit(softmax)(a), softmax(a), "softmax")

    # row statistics feeding elementwise work again (layer norm)
    def layer_norm(x):
        return (x - fnp.mean(x, -1, keepdims=True)) / fnp.sqrt(fnp.var(x, -1, keepdims=True) + 1e-5)

    assert _kernels(fg.jit(layer_norm).lower(a).as_text()) == 1
    _close(fg.jit(layer_norm)(a), layer_norm(a), "layer norm", rtol=2e-5)


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2), None])
def test_fused_reductions_over_any_axes(rng, axes):
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    x[1, 2, 3] = np.nan
    xi = rng.integers(-50, 50, (4, 5, 6)).astype(np.int32)

    def f(x, xi):
        y = fnp.exp(x * 0.1) + 1.0
        return (
            fnp.sum(y * y, axis=axes),
            fnp.max(y - 2.0, axis=axes),
            fnp.min(-y, axis=axes),
            fnp.sum(xi * 3, axis=axes),
            fnp.max(xi + 1, axis=axes),
        )

    xa, xia = fnp.asarray(x), fnp.asarray(xi)
    _close(fg.jit(f)(xa, xia), f(xa, xia), f"reductions over {axes}", rtol=1e-5)


def test_mlp_forward_fuses_bias_and_activation(rng):
    w = fnp.asarray(rng.standard_normal((8, 16)).astype(np.float32))
    b = fnp.asarray(rng.standard_normal(16).astype(np.float32))
    x = fnp.asarray(rng.standard_normal((4, 8)).astype(np.float32))
    f = fg.jit(lambda w, b, x: fnp.maximum(x @ w + b, 0.0))
    text = f.lower(w, b, x).as_text()
    assert "_matmul(" in text and _kernels(text) == 1
    assert "broadcast_in_dim_" not in text.split("# ---- kernel")[0].replace("#", "")  # read by index arithmetic
    _close(f(w, b, x), fnp.maximum(x @ w + b, 0.0), "bias+relu")


def test_adam_update_is_one_kernel_per_parameter(rng):
    p, g, m, v = ([fnp.asarray(rng.standard_normal(s).astype(np.float32)) for s in [(6, 5), (5,)]] for _ in range(4))
    v = [fnp.abs(t) for t in v]

    def adam(p, g, m, v, t):
        m = fg.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = fg.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        return fg.tree_map(lambda p, m, v: p - 1e-3 * (m / c1) / (fnp.sqrt(v / c2) + 1e-8), p, m, v), m, v

    t = fnp.asarray(np.float32(3.0))
    text = fg.jit(adam).lower(p, g, m, v, t).as_text()
    executor = text.split("# ---- kernel")[0]
    assert executor.count("# fused kernel") == 3  # one per parameter array (+ the bias-correction scalars)
    _close(fg.jit(adam)(p, g, m, v, t), adam(p, g, m, v, t), "adam", rtol=1e-5)


def test_transposed_products_are_computed_in_place(rng):
    x = fnp.asarray(rng.standard_normal((5, 3)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((3, 4)).astype(np.float32))

    def loss(w, x):
        return fnp.sum(fnp.tanh(x @ w))

    step = fg.jit(lambda w, x: w - 0.1 * fg.grad(loss)(w, x))
    text = step.lower(w, x).as_text()
    assert (
        "transpose" not in text.split("# ---- kernel")[0].replace("# ", "").split("\n", 1)[1]
        or "= transpose_" not in text
    )
    _close(step(w, x), w - 0.1 * fg.grad(loss)(w, x), "sgd step")


def test_parallel_kernels_match_serial(rng, monkeypatch):
    from funcgrad.jit import kernels

    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", 64)
    monkeypatch.setattr(kernels, "_NTHREADS", 3)
    x = fnp.asarray(rng.standard_normal((97, 33)).astype(np.float32))
    f = fg.jit(lambda x: (chain(x), fnp.sum(fnp.exp(x), axis=1), fnp.max(x, axis=1) - fnp.min(x, axis=1)))
    assert "_parallel(" in f.lower(x).as_text()
    _close(
        f(x), (chain(x), fnp.sum(fnp.exp(x), axis=1), fnp.max(x, axis=1) - fnp.min(x, axis=1)), "parallel", rtol=1e-5
    )


def test_non_contiguous_and_scalar_inputs(rng):
    x = rng.standard_normal((6, 8)).astype(np.float32)
    f = fg.jit(lambda a, s, b: fnp.exp(a) * s + b)
    a = fnp.asarray(x)[:, ::2]  # a strided view
    b = fnp.asarray(x[:4, :6]).T  # a transposed one
    s = fnp.asarray(np.float32(2.0))  # rank 0: a scalar argument of the kernel
    assert not np.asarray(a).flags.c_contiguous and not np.asarray(b).flags.c_contiguous
    _close(f(a, s, b), fnp.exp(a) * s + b, "strided inputs")
    _close(f(np.asarray(a), np.float32(2.0), np.asarray(b)), fnp.exp(a) * s + b, "NumPy inputs")


def test_float16_and_complex_run_their_impls(rng):
    x16 = fnp.asarray(rng.standard_normal(8).astype(np.float16))
    xc = fnp.asarray((rng.standard_normal(8) + 1j * rng.standard_normal(8)).astype(np.complex64))
    f = fg.jit(lambda x: fnp.exp(x) * 2 + 1)
    _close(f(x16), fnp.exp(x16) * 2 + 1, "float16", rtol=1e-3)
    _close(f(xc), fnp.exp(xc) * 2 + 1, "complex64")
    assert _kernels(f.lower(x16).as_text()) == 0


# -- transformations -----------------------------------------------------------------------------------


def mlp_loss(params, x, y):
    from funcgrad.scipy.special import logsumexp

    h = x
    for w, b in params[:-1]:
        h = fnp.maximum(h @ w + b, 0.0)
    w, b = params[-1]
    logits = h @ w + b
    return -fnp.mean(fnp.sum(logits * y, axis=-1) - logsumexp(logits, axis=-1))


def _mlp(rng, dtype=np.float64):
    sizes = (7, 6, 5, 3)
    params = [
        (
            fnp.asarray((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)),
            fnp.asarray(rng.standard_normal(b).astype(dtype) * 0.1),
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    x = fnp.asarray(rng.standard_normal((4, sizes[0])).astype(dtype))
    y = fnp.asarray(np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], 4)])
    return params, x, y


def test_jit_of_grad_equals_grad_of_jit(rng):
    params, x, y = _mlp(rng)
    want = fg.grad(mlp_loss)(params, x, y)
    _close(fg.jit(fg.grad(mlp_loss))(params, x, y), want, "jit(grad)", rtol=1e-12)
    _close(fg.grad(fg.jit(mlp_loss))(params, x, y), want, "grad(jit)", rtol=1e-12)
    _close(fg.jit(fg.grad(fg.jit(mlp_loss)))(params, x, y), want, "jit(grad(jit))", rtol=1e-12)
    v, g = fg.jit(fg.value_and_grad(mlp_loss))(params, x, y)
    _close(v, mlp_loss(params, x, y), "value", rtol=1e-12)


def test_vmap_and_jvp_of_jit(rng):
    params, x, y = _mlp(rng)
    per_example = fg.vmap(fg.jit(fg.grad(mlp_loss)), in_axes=(None, 0, 0))
    want = fg.vmap(fg.grad(mlp_loss), in_axes=(None, 0, 0))(params, x[:, None], y[:, None])
    _close(per_example(params, x[:, None], y[:, None]), want, "vmap(jit(grad))", rtol=1e-12)
    t = fnp.ones_like(x)
    _close(fg.jvp(fg.jit(chain), (x,), (t,)), fg.jvp(chain, (x,), (t,)), "jvp(jit)", rtol=1e-12)
    _close(fg.jit(fg.vmap(chain))(x), chain(x), "jit(vmap)", rtol=1e-14)


def test_float32_training_step_matches_eager(rng):
    params, x, y = _mlp(rng, np.float32)

    def step(params, x, y):
        loss, g = fg.value_and_grad(mlp_loss)(params, x, y)
        return fg.tree_map(lambda p, g: p - 0.1 * g, params, g), loss

    _close(fg.jit(step)(params, x, y), step(params, x, y), "sgd step", rtol=2e-5)


# -- the trace cache -----------------------------------------------------------------------------------


def test_traces_once_per_signature():
    calls = []

    @fg.jit
    def f(x, y):
        calls.append(1)
        return fnp.sin(x) * y + 1.0

    a, b = fnp.ones(3), fnp.ones(3)
    for _ in range(3):
        f(a, b)
    assert len(calls) == 1
    f(fnp.ones(4), fnp.ones(4))  # new shape
    f(a, b)
    assert len(calls) == 2
    f(np.ones(3, np.float64), np.ones(3))  # new dtype (and NumPy inputs)
    assert len(calls) == 3
    f(a, 2.0)  # Python scalar: a weak rank-0 float32 (new signature), then cached
    f(a, 3.0)
    assert len(calls) == 4
    assert f._cache_size == 4


def test_static_arguments():
    calls = []

    @fg.jit(static_argnums=1, static_argnames="mode")
    def f(x, n, mode="add"):
        calls.append((n, mode))
        for _ in range(n):  # Python control flow on static values is fine
            x = x + 1.0 if mode == "add" else x * 2.0
        return x

    x = fnp.zeros(2)
    assert_allclose(f(x, 3), [3.0, 3.0])
    assert_allclose(f(x, 3), [3.0, 3.0])
    assert_allclose(f(x, 2, mode="mul"), [0.0, 0.0])
    assert_allclose(f(x + 1, 2, mode="mul"), [4.0, 4.0])
    assert calls == [(3, "add"), (2, "mul")]
    with pytest.raises(TypeError, match="static argument 1 of type list is not hashable"):
        f(x, [1, 2])


def test_bad_jit_arguments_are_named():
    with pytest.raises(TypeError, match="expected a callable"):
        fg.jit(5)
    with pytest.raises(TypeError, match="static_argnums must be an int or a sequence of ints"):
        fg.jit(lambda x: x, static_argnums="0")
    with pytest.raises(TypeError, match="static_argnames must be a str"):
        fg.jit(lambda x: x, static_argnames=3)
    with pytest.raises(TypeError, match="donate_argnums must be an int"):
        fg.jit(lambda x: x, donate_argnums=[0.5])
    with pytest.raises(ValueError, match=r"static_argnums=\(5,\) but the call passes 2 positional"):
        fg.jit(lambda x, n: x * n, static_argnums=5)(fnp.ones(2), 3)


def test_python_control_flow_on_traced_values_points_to_cond():
    @fg.jit
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(fg.errors.ConcretizationError, match="lax.cond") as info:
        f(fnp.asarray(1.0))
    assert isinstance(info.value, TypeError)
    g = fg.jit(lambda x: lax.cond(x > 0, lambda v: v, lambda v: -v, x))
    assert_allclose(g(fnp.asarray(-2.0)), 2.0)


def test_disable_jit_runs_python():
    seen = []

    @fg.jit
    def f(x):
        seen.append(type(x).__name__)
        return x * 2.0

    with fg.disable_jit():
        assert_allclose(f(fnp.ones(2)), [2.0, 2.0])
        assert_allclose(f(fnp.ones(2)), [2.0, 2.0])
    assert seen == ["Array", "Array"]
    f(fnp.ones(2))
    assert seen[-1] != "Array"  # traced


def test_lower_shows_generated_source(rng):
    x = fnp.asarray(rng.standard_normal(16).astype(np.float32))
    lowered = fg.jit(chain).lower(x)
    text = lowered.as_text()
    assert text.startswith("def chain(v0):")
    assert "# ---- kernel k_" in text and "@njit(cache=True" in text and "def kernel(" in text
    # every kernel line is preceded by its equation
    body = text.split("def kernel(")[1]
    assert "# v0:f32 = tanh l0" in body and "v0 = np.float32(fm.tanh_f32(l0))" in body
    assert "tanh" in str(lowered.jaxpr)


def test_log_compiles_reports_miss_reasons(caplog):
    fg.config.update("log_compiles", True)
    try:
        f = fg.jit(lambda x, n: x * n, static_argnums=1)
        with caplog.at_level(logging.WARNING, logger="funcgrad.jit"):
            f(fnp.ones(3), 2)
            f(fnp.ones(3), 2)
            f(fnp.ones(4), 2)
            f(fnp.ones(4), 3)
            f((fnp.ones(4),)[0], 3)
        msgs = [r.getMessage() for r in caplog.records if r.name == "funcgrad.jit" and "Compiling" in r.getMessage()]
    finally:
        fg.config.update("log_compiles", False)
    assert len(msgs) == 3
    assert "first call" in msgs[0]
    assert "argument shapes/dtypes changed from (f32[3]) to (f32[4])" in msgs[1]
    assert "static arguments changed to {1: 3}" in msgs[2]


def test_log_compiles_reports_kernel_compiles(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(tmp_path))
    fg.config.update("log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="funcgrad.jit"):
            # a structure no other test compiles, so it is not in this process's memory cache
            fg.jit(lambda x: fnp.cosh(x) * 3.25 - fnp.arctan(x))(fnp.ones(5))
    finally:
        fg.config.update("log_compiles", False)
    msgs = [r.getMessage() for r in caplog.records if r.name == "funcgrad.jit"]
    assert any("Compiled kernel k_" in m and "cosh" in m for m in msgs), msgs
    assert list(tmp_path.glob("funcgrad_kernel_*.py"))


# -- the kernel cache ----------------------------------------------------------------------------------

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s: %(message)s")
import numpy as np
import funcgrad as fg, funcgrad.numpy as fnp
fg.config.update("log_compiles", True)
f = fg.jit(lambda x: fnp.tanh(x) * 1.5 + fnp.exp(-x) * x)
print("result", float(fnp.sum(f(fnp.linspace(-1.0, 1.0, 11)))))
"""


def _run(code, env):
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_second_process_loads_kernels_from_disk(tmp_path):
    env = dict(
        os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    first = _run(SCRIPT, env)
    assert "Compiled kernel k_" in first and "Loaded kernel" not in first, first
    second = _run(SCRIPT, env)
    assert "Loaded kernel k_" in second and "from the disk cache" in second, second
    assert "Compiled kernel" not in second, second
    assert first.split("result")[1] == second.split("result")[1]
    (src,) = tmp_path.glob("funcgrad_kernel_*.py")
    assert "def kernel(" in src.read_text()


def test_processes_compiling_the_same_kernel_at_once(tmp_path):
    env = dict(
        os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert len({o.split("result")[1] for o, _ in outs}) == 1
    assert not list(tmp_path.glob(".tmp-*"))  # temporary files were renamed into place


def test_threads_share_the_compile_cache(rng):
    from funcgrad.jit import kernels

    x = fnp.asarray(rng.standard_normal((8, 9)).astype(np.float32))
    errors, results = [], []

    def work(i):
        try:
            # each thread its own jitted function, all with the same kernel structure
            f = fg.jit(lambda x: fnp.sinh(x) * 0.25 + fnp.abs(x) ** 3)
            results.append(np.asarray(f(x + float(i))))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(6):
        want = np.asarray(fnp.sinh(x + float(i)) * 0.25 + fnp.abs(x + float(i)) ** 3)
        assert any(np.allclose(r, want, rtol=1e-6) for r in results)
    keys = [k for k, d in kernels._dispatchers.items()]
    assert len(keys) == len(set(keys))


def test_jit_without_fusible_work_does_not_import_numba():
    out = _run(
        """
        import sys
        import funcgrad as fg, funcgrad.numpy as fnp
        f = fg.jit(lambda a, b: a @ b)
        f(fnp.ones((2, 3)), fnp.ones((3, 2)))
        print("numba" in sys.modules)
    """,
        dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")),
    )
    assert out.strip() == "False"


def test_kernels_are_shape_generic(caplog):
    """One kernel serves every shape with the same structure (sizes are arguments)."""
    fg.config.update("log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="funcgrad.jit"):
            f = fg.jit(lambda x, b: fnp.logaddexp(x * 1.75, b) - 0.5)
            f(fnp.ones((3, 4)), fnp.ones(4))
            f(fnp.ones((5, 6)), fnp.ones(6))  # new shapes: traced again, no new kernel
        msgs = [r.getMessage() for r in caplog.records if r.name == "funcgrad.jit"]
    finally:
        fg.config.update("log_compiles", False)
    assert sum("Compiling <lambda>" in m for m in msgs) == 2
    assert sum(("Compiled kernel" in m or "Loaded kernel" in m) for m in msgs) <= 1, msgs


def test_impl_returning_an_unexpected_dtype_recompiles_the_kernel(monkeypatch):
    from funcgrad.jit.lowering import CALL_IMPL
    from funcgrad.lax import elementwise

    monkeypatch.setattr(elementwise.sinh_p, "lower", CALL_IMPL)  # runs its impl...
    monkeypatch.setattr(elementwise.sinh_p, "impl", lambda x: np.sinh(x.astype(np.float64)))  # ...in float64
    f = fg.jit(lambda x: fnp.sinh(x) * 2.5 + 1.0)
    x = fnp.linspace(-1.0, 1.0, 5)
    _close(f(x), (np.sinh(np.asarray(x, np.float64)) * 2.5 + 1.0).astype(np.float32), "retyped kernel")


def test_keyword_only_and_defaulted_arguments():
    f = fg.jit(lambda x, *, scale=2.0: x * scale, static_argnames="scale")
    np.testing.assert_allclose(f(fnp.ones(2), scale=3.0), [3.0, 3.0])
    np.testing.assert_allclose(f(fnp.ones(2)), [2.0, 2.0])
    g = fg.jit(lambda x, y=1.0: x * y)
    np.testing.assert_allclose(g(fnp.ones(2), y=fnp.full(2, 4.0)), [4.0, 4.0])
    np.testing.assert_allclose(g(fnp.ones(2)), [1.0, 1.0])
    h = fg.jit(lambda x, n: x * n, static_argnames="n")
    np.testing.assert_allclose(h(fnp.ones(2), n=3), h(fnp.ones(2), 3))
