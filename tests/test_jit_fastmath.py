"""Accuracy of the vectorizable float32 math in jitted kernels (funcgrad/jit/fastmath.py).

Each function runs over a dense sweep of float32 inputs (evenly spaced over its working range,
log-spaced over many binades of both signs, and the special values) and is compared with the
float64 NumPy result: the error in units in the last place of the float32 result must be at
most 2 (the functions are within 1.7; most within 1). The float64 path keeps libm and is
checked against NumPy to float64 precision through a fused kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38], np.float32
)


def _linear(lo, hi, n=1 << 18):
    return np.linspace(lo, hi, n, dtype=np.float64).astype(np.float32)


def _binades(lo, hi, n=1 << 17, signed=True):
    a = np.geomspace(lo, hi, n).astype(np.float32)
    return np.concatenate([a, -a]) if signed else a


def _ulp_error(got, ref64):
    """|got - ref| in units of the float32 spacing at the (rounded) reference."""
    ref32 = ref64.astype(np.float32)
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.abs(ref32)).astype(np.float64)
        err = np.abs(got.astype(np.float64) - ref64) / spacing
    both_nan = np.isnan(got) & np.isnan(ref64)
    same_inf = np.isinf(ref64) & (got.astype(np.float64) == ref64)
    # overflow: the float64 result is finite but beyond float32 (rounds to inf)
    overflow = np.isinf(ref32) & ~np.isinf(ref64) & (got == ref32)
    err = np.where(both_nan | same_inf | overflow, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)  # a NaN where the reference has a number


def _run(fn, *args):
    from numba import njit

    @njit(error_model="numpy")
    def sweep1(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = fn(x[i])
        return out

    @njit(error_model="numpy")
    def sweep2(x, y):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = fn(x[i], y[i])
        return out

    return sweep1(*args) if len(args) == 1 else sweep2(*args)


def _expit(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _erf(x):
    import math

    return np.vectorize(math.erf, otypes=[np.float64])(x)


CASES = {
    "exp_f32": (np.exp, [_linear(-104, 89), _binades(1e-30, 104)]),
    "expm1_f32": (np.expm1, [_linear(-20, 89), _binades(1e-30, 89)]),
    "log_f32": (np.log, [_linear(0, 4), _binades(1e-45, 3.4e38, signed=False), -_binades(1e-3, 10, 1 << 10)]),
    "log1p_f32": (np.log1p, [_linear(-1, 4), _binades(1e-30, 3e38, signed=False), -_binades(1e-30, 1, signed=False)]),
    "tanh_f32": (np.tanh, [_linear(-10, 10), _binades(1e-30, 100)]),
    "logistic_f32": (_expit, [_linear(-104, 89), _binades(1e-30, 200)]),
    "sin_f32": (np.sin, [_linear(-100, 100), _linear(-1e5, 1e5), _binades(1e-30, 3.4e38)]),
    "cos_f32": (np.cos, [_linear(-100, 100), _linear(-1e5, 1e5), _binades(1e-30, 3.4e38)]),
    "erf_f32": (_erf, [_linear(-6, 6, 1 << 16), _binades(1e-30, 10, 1 << 14)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_float32_functions_within_two_ulp(name):
    from funcgrad.jit import fastmath

    ref_fn, parts = CASES[name]
    x = np.concatenate(parts + [SPECIAL])
    got = _run(getattr(fastmath, name), x)
    with np.errstate(all="ignore"):
        ref = ref_fn(x.astype(np.float64))
    err = _ulp_error(got, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= 2.0, (
        f"{name}: {err[worst]:.2f} ulp at x={x[worst]!r}: got {got[worst]!r}, float64 says {ref[worst]!r}"
    )


def test_pow_within_two_ulp_and_special_cases():
    from funcgrad.jit import fastmath

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 10, 1 << 17), rng.uniform(-3, 3, 1 << 15), np.geomspace(1e-30, 1e30, 1 << 14)])
    y = np.concatenate(
        [rng.uniform(-30, 30, 1 << 17), np.round(rng.uniform(-12, 12, 1 << 15)), rng.uniform(-2, 2, 1 << 14)]
    )
    vals = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, np.inf, -np.inf, np.nan, 2.5, -2.5])
    sx, sy = (a.ravel() for a in np.meshgrid(vals, vals))  # every special pairing (C99 powf)
    x = np.concatenate([x, sx]).astype(np.float32)
    y = np.concatenate([y, sy]).astype(np.float32)
    got = _run(fastmath.pow_f32, x, y)
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(np.float64), y.astype(np.float64))
    err = _ulp_error(got, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= 2.0, f"pow: {err[worst]:.2f} ulp at ({x[worst]!r}, {y[worst]!r}): {got[worst]!r}"


def test_kernels_use_fastmath_in_float32_and_libm_in_float64():
    import funcgrad as fg
    import funcgrad.numpy as fnp

    def f(x):
        return fnp.exp(fnp.sin(x)) + fnp.log1p(fnp.tanh(x) ** 2) - fnp.cos(x) * x

    x64 = np.linspace(-50, 50, 4097)
    got = np.asarray(fg.jit(f)(fnp.asarray(x64)))
    np.testing.assert_allclose(got, np.asarray(f(fnp.asarray(x64))), rtol=2e-15, atol=1e-15)
    text64 = fg.jit(f).lower(fnp.asarray(x64)).as_text().split("def kernel(")[1]
    assert "math.exp(" in text64 and "fm." not in text64
    x32 = fnp.asarray(x64.astype(np.float32))
    text32 = fg.jit(f).lower(x32).as_text().split("def kernel(")[1]
    assert "fm.exp_f32(" in text32 and "math." not in text32
    np.testing.assert_allclose(np.asarray(fg.jit(f)(x32)), np.asarray(f(x32)), rtol=3e-6, atol=3e-6)
