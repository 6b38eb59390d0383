"""One op table drives the tests of every primitive reachable from ``funcgrad.lax`` and ``funcgrad.numpy``.

Each row is ``(name, funcgrad function, NumPy reference, argument generator, dtypes,
differentiable?, linear?)``. For every row:

* ``test_impl``: values and dtypes against NumPy, per dtype;
* ``test_abstract_eval``: ``make_jaxpr(fn)(*args).out_avals`` against the real outputs, and
  ``typecheck_jaxpr`` (every equation's abstract evaluation) on the traced program;
* ``test_grads``: ``check_grads`` in both modes to order 2, in float64;
* ``test_transpose``: ``<ct, L t> == <L^T ct, t>`` with ``L`` from ``fg.linearize`` and
  ``L^T`` from ``fg.vjp`` (exact, so the tolerance is tight), and ``L t == f(t)`` for linear rows.

A coverage test checks that the table reaches every primitive of the core lax modules.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.core.jaxpr import typecheck_jaxpr
from funcgrad.core.pytree import tree_flatten, tree_leaves, tree_map
from funcgrad.testing import assert_allclose, check_grads

F32, F64, I32, I64, U8, BOOL = (np.dtype(t) for t in ("float32", "float64", "int32", "int64", "uint8", "bool"))
FLOAT = (F32, F64)
FLOAT_INT = (F32, F64, I64)
NUM = (F32, F64, I32, I64)
INT = (I32, I64, U8)


# -- argument specs: callables (rng, dtype) -> numpy array -----------------------------------------


def _ints(rng, dtype, shape, lo, hi):
    if np.dtype(dtype).kind == "u":
        lo = max(lo, 0)
    return rng.integers(lo, hi, size=shape).astype(dtype)


def N(*shape):
    """Standard normal (ints in [-4, 5), bools random)."""

    def gen(rng, dtype):
        dtype = np.dtype(dtype)
        if dtype == BOOL:
            return rng.random(shape) < 0.5
        if dtype.kind in "iu":
            return _ints(rng, dtype, shape, -4, 5)
        return rng.standard_normal(shape).astype(dtype)

    return gen


def P(*shape):
    """Positive, away from zero: [0.5, 2) (ints in [1, 5))."""

    def gen(rng, dtype):
        if np.dtype(dtype).kind in "iu":
            return _ints(rng, dtype, shape, 1, 5)
        return rng.uniform(0.5, 2.0, shape).astype(dtype)

    return gen


def NZ(*shape):
    """Nonzero with either sign: +-[0.5, 2) (ints +-[1, 4])."""

    def gen(rng, dtype):
        sign = np.where(rng.random(shape) < 0.5, -1, 1)
        if np.dtype(dtype).kind == "u":
            sign = 1
        if np.dtype(dtype).kind in "iu":
            return (sign * rng.integers(1, 5, size=shape)).astype(dtype)
        return (sign * rng.uniform(0.5, 2.0, shape)).astype(dtype)

    return gen


def U(*shape, lo=-0.9, hi=0.9):
    """Uniform in [lo, hi)."""

    def gen(rng, dtype):
        return rng.uniform(lo, hi, shape).astype(dtype)

    return gen


def D(*shape):
    """Distinct values spaced at least 0.5 apart (no ties: sort, max, argmax are smooth)."""

    def gen(rng, dtype):
        n = int(np.prod(shape, dtype=np.int64))
        v = rng.permutation(n) - n // 2
        if np.dtype(dtype).kind in "iu":
            return (v - v.min() if np.dtype(dtype).kind == "u" else v).astype(dtype).reshape(shape)
        return (0.5 * v + rng.uniform(0, 0.2, n)).astype(dtype).reshape(shape)

    return gen


def IDX(*shape, high, low=0):
    """Integer index array (int64, whatever the row dtype)."""

    def gen(rng, dtype):
        return rng.integers(low, high, size=shape).astype(np.int64)

    return gen


def B(*shape):
    """Random boolean mask."""

    def gen(rng, dtype):
        return rng.random(shape) < 0.5

    return gen


def K(value, dtype=None):
    """A constant (ignores the row dtype unless ``dtype="row"``)."""

    def gen(rng, row_dtype):
        return np.asarray(value, row_dtype if dtype == "row" else dtype)

    return gen


@dataclasses.dataclass
class Op:
    name: str
    fn: Callable
    ref: Callable
    specs: tuple
    dtypes: tuple = FLOAT
    diff: bool = True
    linear: bool = False
    trace: bool = True  # traceable by make_jaxpr (False: data-dependent output shape)
    rtol: float | None = None
    out_dtype: Callable | None = None  # in_dtype -> expected output dtype (overrides the NumPy rule)
    grad_dtype: np.dtype = F64

    def args(self, dtype, seed=0):
        rng = np.random.default_rng(seed)
        return tuple(s(rng, dtype) for s in self.specs)

    def __repr__(self):
        return self.name


OPS: list[Op] = []


def op(name, fn, ref, *specs, **kw):
    OPS.append(Op(name, fn, ref, specs, **kw))


# -- elementwise unary ---------------------------------------------------------------------

for _name, _spec, _kw in [
    ("negative", N, dict(dtypes=NUM, linear=True)),
    ("positive", N, dict(dtypes=NUM, linear=True)),
    ("abs", NZ, dict(dtypes=NUM)),
    ("exp", N, dict(dtypes=FLOAT_INT)),
    ("exp2", N, dict(dtypes=FLOAT_INT)),
    ("expm1", N, dict(dtypes=FLOAT_INT)),
    ("log", P, dict(dtypes=FLOAT_INT)),
    ("log1p", P, dict(dtypes=FLOAT_INT)),
    ("log2", P, dict(dtypes=FLOAT_INT)),
    ("log10", P, dict(dtypes=FLOAT_INT)),
    ("sqrt", P, dict(dtypes=FLOAT_INT)),
    ("cbrt", NZ, dict(dtypes=FLOAT_INT)),
    ("sin", N, dict(dtypes=FLOAT_INT)),
    ("cos", N, dict(dtypes=FLOAT_INT)),
    ("tan", U, dict()),
    ("arcsin", U, dict()),
    ("arccos", U, dict()),
    ("arctan", N, dict(dtypes=FLOAT_INT)),
    ("sinh", N, dict()),
    ("cosh", N, dict()),
    ("tanh", N, dict(dtypes=FLOAT_INT)),
    ("arcsinh", N, dict()),
    ("arctanh", U, dict()),
    ("square", N, dict(dtypes=NUM)),
    ("reciprocal", NZ, dict(dtypes=FLOAT)),
    ("sinc", N, dict()),
    ("deg2rad", N, dict(dtypes=FLOAT_INT, linear=True)),
    ("rad2deg", N, dict(dtypes=FLOAT_INT, linear=True)),
    ("sign", NZ, dict(dtypes=NUM, diff=False)),
    ("floor", N, dict(dtypes=NUM, diff=False)),
    ("ceil", N, dict(dtypes=NUM, diff=False)),
    ("rint", N, dict(dtypes=NUM, diff=False)),
    ("trunc", N, dict(dtypes=NUM, diff=False)),
    ("isnan", N, dict(dtypes=FLOAT, diff=False)),
    ("isfinite", N, dict(dtypes=FLOAT, diff=False)),
    ("isinf", N, dict(dtypes=FLOAT, diff=False)),
    ("signbit", N, dict(dtypes=NUM, diff=False)),
    ("logical_not", N, dict(dtypes=NUM + (BOOL,), diff=False)),
]:
    op(_name, getattr(fnp, _name), getattr(np, _name), _spec(3, 4), **_kw)

op("arccosh", fnp.arccosh, np.arccosh, U(3, 4, lo=1.2, hi=3.0))
op("invert_int", fnp.invert, np.invert, N(5), dtypes=INT + (BOOL,), diff=False)
op("round_decimals", lambda x: fnp.round(x, 2), lambda x: np.round(x, 2), N(6), diff=False)
op("round_int", lambda x: fnp.round(x), lambda x: np.round(x), N(6), dtypes=(I64,), diff=False)
op(
    "round_int_negative_decimals",
    lambda x: fnp.round(x, -2),
    lambda x: np.round(x, -2),
    K([1234, 1250, 1350, -1250, 49, 51], "row"),
    dtypes=(I32, I64),
    diff=False,
)
op(
    "round_negative_decimals",
    lambda x: fnp.round(x, -1),
    lambda x: np.round(x, -1),
    K([12.5, 15.0, -25.0, 4.9], "row"),
    diff=False,
)
op("real_of_real", fnp.real, np.real, N(4), linear=True)
op("imag_of_real", fnp.imag, np.imag, N(4), diff=False)
op("conj_of_real", fnp.conj, np.conj, N(4), linear=True)
op("nan_to_num", fnp.nan_to_num, np.nan_to_num, K([np.nan, np.inf, -np.inf, 1.5, -2.0], "row"), diff=False)
op("isinf_special", fnp.isinf, np.isinf, K([np.nan, np.inf, -np.inf, 0.0], "row"), diff=False)
op("isnan_special", fnp.isnan, np.isnan, K([np.nan, np.inf, -np.inf, 0.0], "row"), diff=False)
op("isfinite_special", fnp.isfinite, np.isfinite, K([np.nan, np.inf, -np.inf, 0.0], "row"), diff=False)
op("signbit_zero", fnp.signbit, np.signbit, K([-0.0, 0.0, -1.0, np.inf, -np.inf], "row"), diff=False)
op("clip", lambda x: fnp.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), N(3, 4), dtypes=NUM)
op("clip_arrays", fnp.clip, np.clip, N(3, 4), U(4, lo=-1.0, hi=-0.1), U(3, 1, lo=0.1, hi=1.0))
op("clip_one_sided", lambda x: fnp.clip(x, max=0.3), lambda x: np.clip(x, None, 0.3), N(5))
op("power_int_exp", lambda x: fnp.power(x, 3), lambda x: np.power(x, 3), N(3, 4), dtypes=NUM)
op("power_neg_exp", lambda x: x**-2, lambda x: x**-2, NZ(3, 4))
op("power_zero_exp", lambda x: x**0, lambda x: x**0, N(3), dtypes=NUM)
op("rpow_scalar_base", lambda x: 2.0**x, lambda x: 2.0**x, N(3, 4))
op("lax.logistic", lax.logistic, lambda x: 1 / (1 + np.exp(-x)), N(3, 4))
op(
    "lax.logistic_tails",
    lax.logistic,
    lambda x: 1 / (1 + np.exp(-x)),
    K([-800.0, -30.0, 0.0, 30.0, 800.0], "row"),
    diff=False,
)
op("lax.rsqrt", lax.rsqrt, lambda x: 1 / np.sqrt(x), P(3, 4))
op("lax.integer_pow", lambda x: lax.integer_pow(x, 5), lambda x: x**5, N(3, 4), dtypes=NUM)
op("lax.integer_pow_neg", lambda x: lax.integer_pow(x, -3), lambda x: x**-3.0, NZ(3, 4))
op("lax.sign", lax.sign, np.sign, NZ(5), dtypes=NUM, diff=False)
op("lax.round", lax.round, np.round, K([0.5, 1.5, 2.5, -0.5, -1.7, 2.2], "row"), diff=False)
op("lax.is_finite", lax.is_finite, np.isfinite, K([np.nan, np.inf, 1.0], "row"), diff=False)
op("lax.population_count", lax.population_count, np.bitwise_count, N(6), dtypes=INT, diff=False, out_dtype=lambda d: d)
op("lax.bitwise_not", lax.bitwise_not, np.invert, N(6), dtypes=INT + (BOOL,), diff=False)
op("lax.exp2", lax.exp2, np.exp2, N(4))
op("lax.cbrt", lax.cbrt, np.cbrt, NZ(4))
op("lax.tan", lax.tan, np.tan, U(4))
op("lax.acos", lax.acos, np.arccos, U(4))
op("lax.atanh", lax.atanh, np.arctanh, U(4))
op("lax.acosh", lax.acosh, np.arccosh, U(4, lo=1.2, hi=3.0))
op("lax.asinh", lax.asinh, np.arcsinh, N(4))
op("lax.cosh", lax.cosh, np.cosh, N(4))
op("lax.sinh", lax.sinh, np.sinh, N(4))
op("lax.abs", lax.abs, np.abs, NZ(4), dtypes=NUM)
op("lax.neg", lax.neg, np.negative, N(4), dtypes=NUM, linear=True)
op("lax.square", lax.square, np.square, N(4), dtypes=NUM)
op("lax.reciprocal", lax.reciprocal, np.reciprocal, NZ(4))
op("lax.floor_ceil", lambda x: (lax.floor(x), lax.ceil(x)), lambda x: (np.floor(x), np.ceil(x)), N(4), diff=False)
op("lax.stop_gradient", lax.stop_gradient, lambda x: x, N(4), diff=False)


# -- elementwise binary, with broadcasting and scalars ------------------------------------------------

BINARY = [
    # name, numpy name, lhs spec, rhs spec, kwargs
    ("add", "add", N, N, dict(dtypes=NUM, linear=True)),
    ("subtract", "subtract", N, N, dict(dtypes=NUM, linear=True)),
    ("multiply", "multiply", N, N, dict(dtypes=NUM)),
    ("divide", "divide", N, NZ, dict(dtypes=FLOAT_INT)),
    ("true_divide", "true_divide", N, NZ, dict(dtypes=(F32, F64, I32))),
    ("floor_divide", "floor_divide", N, NZ, dict(dtypes=NUM, diff=False)),
    ("remainder", "remainder", N, NZ, dict(dtypes=NUM)),
    ("fmod", "fmod", N, NZ, dict(dtypes=NUM)),
    ("power", "power", P, N, dict(dtypes=FLOAT)),
    ("maximum", "maximum", D, D, dict(dtypes=NUM)),
    ("minimum", "minimum", D, D, dict(dtypes=NUM)),
    ("fmax", "fmax", D, D, dict()),
    ("fmin", "fmin", D, D, dict()),
    ("arctan2", "arctan2", NZ, NZ, dict(dtypes=FLOAT_INT)),
    ("hypot", "hypot", NZ, NZ, dict()),
    ("logaddexp", "logaddexp", N, N, dict()),
    ("logaddexp2", "logaddexp2", N, N, dict()),
    ("copysign", "copysign", NZ, NZ, dict()),
    ("heaviside", "heaviside", NZ, N, dict(diff=False)),
    ("nextafter", "nextafter", N, N, dict(diff=False)),
    ("equal", "equal", N, N, dict(dtypes=NUM, diff=False)),
    ("not_equal", "not_equal", N, N, dict(dtypes=NUM, diff=False)),
    ("less", "less", N, N, dict(dtypes=NUM, diff=False)),
    ("less_equal", "less_equal", N, N, dict(dtypes=NUM, diff=False)),
    ("greater", "greater", N, N, dict(dtypes=NUM, diff=False)),
    ("greater_equal", "greater_equal", N, N, dict(dtypes=NUM, diff=False)),
    ("logical_and", "logical_and", N, N, dict(dtypes=NUM + (BOOL,), diff=False)),
    ("logical_or", "logical_or", N, N, dict(dtypes=NUM + (BOOL,), diff=False)),
    ("logical_xor", "logical_xor", N, N, dict(dtypes=NUM + (BOOL,), diff=False)),
    ("bitwise_and", "bitwise_and", N, N, dict(dtypes=INT + (BOOL,), diff=False)),
    ("bitwise_or", "bitwise_or", N, N, dict(dtypes=INT + (BOOL,), diff=False)),
    ("bitwise_xor", "bitwise_xor", N, N, dict(dtypes=INT + (BOOL,), diff=False)),
    ("left_shift", "left_shift", P, P, dict(dtypes=INT, diff=False)),
    ("right_shift", "right_shift", N, P, dict(dtypes=INT, diff=False)),
]

SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (3,)), ((2, 1, 3), (4, 1))]

for _name, _npname, _ls, _rs, _kw in BINARY:
    for _i, (_s1, _s2) in enumerate(SHAPE_PAIRS):
        kw = dict(_kw)
        if _i:  # the broadcasting variants run in one float dtype (dtype coverage is the first shape's job)
            kw["dtypes"] = kw.get("dtypes", FLOAT)[:1]
        op(f"{_name}[{_s1}x{_s2}]", getattr(fnp, _name), getattr(np, _npname), _ls(*_s1), _rs(*_s2), **kw)

# Python scalars are weak: they take the array's dtype (NEP 50), on either side.
for _name, _f, _r in [
    ("add_scalar", lambda x: x + 2.5, lambda x: x + 2.5),
    ("radd_scalar", lambda x: 2.5 + x, lambda x: 2.5 + x),
    ("sub_rscalar", lambda x: 1.5 - x, lambda x: 1.5 - x),
    ("mul_int_scalar", lambda x: x * 3, lambda x: x * 3),
    ("div_scalar", lambda x: x / 4, lambda x: x / 4),
    ("rdiv_scalar", lambda x: 2.0 / x, lambda x: 2.0 / x),
    ("pow_float_scalar", lambda x: x**1.5, lambda x: x**1.5),
    ("max_scalar", lambda x: fnp.maximum(x, 0.0), lambda x: np.maximum(x, 0.0)),
    ("lt_scalar", lambda x: x < 0.25, lambda x: x < 0.25),
    ("eq_int_scalar", lambda x: x == 1, lambda x: x == 1),
]:
    op(
        _name,
        _f,
        _r,
        P(3, 4),
        dtypes=(F32, F64) if "int" not in _name else NUM,
        diff="lt" not in _name and "eq" not in _name,
        linear=_name == "div_scalar",
    )
op("int_array_times_float_scalar", lambda x: x * 1.5, lambda x: x * 1.5, N(4), dtypes=(I32, I64), diff=False)
op("float_power", fnp.float_power, np.float_power, P(3), N(3), dtypes=FLOAT, out_dtype=lambda d: F64)
op("divmod", fnp.divmod, np.divmod, N(5), NZ(5), dtypes=NUM, diff=False)
op("lax.add", lax.add, np.add, N(3, 4), N(3, 4), dtypes=NUM, linear=True)
op("lax.add_rank0", lax.add, np.add, N(3, 4), N(), dtypes=NUM, linear=True)
op("lax.sub_rank0", lambda x, y: lax.sub(y, x), lambda x, y: y - x, N(3, 4), N(), linear=True)
op("lax.mul_rank0", lax.mul, np.multiply, N(3, 4), N(), dtypes=NUM)
op("lax.mul_scalar", lambda x: lax.mul(x, 2), lambda x: x * 2, N(3, 4), dtypes=NUM, linear=True)
op("lax.div_float", lax.div, np.divide, N(3, 4), NZ(3, 4))
op("lax.div_rank0", lax.div, np.divide, N(3, 4), NZ(), linear=False)
op("lax.div_int", lax.div, lambda x, y: np.trunc(x / y).astype(x.dtype), N(8), NZ(8), dtypes=(I32, I64), diff=False)
op("lax.rem", lax.rem, np.fmod, N(3, 4), NZ(3, 4), dtypes=NUM)
op("lax.pow", lax.pow, np.power, P(3, 4), N(3, 4))
op(
    "lax.max_min",
    lambda x, y: (lax.max(x, y), lax.min(x, y)),
    lambda x, y: (np.maximum(x, y), np.minimum(x, y)),
    D(3, 4),
    D(3, 4),
    dtypes=NUM,
)
op("lax.atan2", lax.atan2, np.arctan2, NZ(3, 4), NZ(3, 4))
op("lax.nextafter", lax.nextafter, np.nextafter, N(4), N(4), diff=False)
op(
    "lax.comparisons",
    lambda x, y: (lax.eq(x, y), lax.ne(x, y), lax.lt(x, y), lax.le(x, y), lax.gt(x, y), lax.ge(x, y)),
    lambda x, y: (x == y, x != y, x < y, x <= y, x > y, x >= y),
    N(6),
    N(6),
    dtypes=NUM,
    diff=False,
)
op(
    "lax.bitwise",
    lambda x, y: (lax.bitwise_and(x, y), lax.bitwise_or(x, y), lax.bitwise_xor(x, y)),
    lambda x, y: (x & y, x | y, x ^ y),
    N(6),
    N(6),
    dtypes=INT + (BOOL,),
    diff=False,
)
op(
    "lax.shifts",
    lambda x, y: (lax.shift_left(x, y), lax.shift_right_arithmetic(x, y)),
    lambda x, y: (np.left_shift(x, y), np.right_shift(x, y)),
    N(6),
    P(6),
    dtypes=(I32, I64),
    diff=False,
)
op(
    "lax.shift_right_logical",
    lax.shift_right_logical,
    lambda x, y: (x.view(np.dtype(f"uint{x.dtype.itemsize * 8}")) >> y.astype(f"uint{x.dtype.itemsize * 8}")).view(
        x.dtype
    ),
    N(6),
    P(6),
    dtypes=(I32, I64),
    diff=False,
)
op("lax.clamp", lambda x: lax.clamp(-0.5, x, 0.5), lambda x: np.clip(x, -0.5, 0.5), N(3, 4))
op(
    "lax.complex",
    lax.complex,
    lambda x, y: x + 1j * y,
    N(3),
    N(3),
    diff=False,
    out_dtype=lambda d: np.dtype("complex64") if d == F32 else np.dtype("complex128"),
)
op(
    "lax.real_imag_conj",
    lambda x, y: (
        lax.real(lax.complex(x, y)),
        lax.imag(lax.complex(x, y)),
        lax.real(lax.conj(lax.complex(x, y))),
        lax.imag(lax.conj(lax.complex(x, y))),
    ),
    lambda x, y: (x, y, x, -y),
    N(3),
    N(3),
    linear=True,
)


# -- select / where -----------------------------------------------------------------------------------

op("where", fnp.where, np.where, B(3, 4), N(3, 4), N(3, 4), dtypes=NUM, linear=True)
op("where_broadcast", fnp.where, np.where, B(3, 1), N(4), N(3, 4), linear=True)
op("where_scalars", lambda c, x: fnp.where(c, x, 0.0), lambda c, x: np.where(c, x, 0.0), B(3, 4), N(3, 4), linear=True)
op("where_nonbool_cond", fnp.where, np.where, N(5), N(5), N(5), dtypes=(I64,), diff=False)
op(
    "where_int_float",
    lambda c, x, y: fnp.where(c, x, y.astype(np.int64)),
    lambda c, x, y: np.where(c, x, y.astype(np.int64)).astype(x.dtype),
    B(4),
    N(4),
    N(4),
    dtypes=(F32,),
    diff=False,
)
op("lax.select", lax.select, np.where, B(3, 4), N(3, 4), N(3, 4), dtypes=NUM, linear=True)
op(
    "lax.select_n_int",
    lambda w, a, b, c: lax.select_n(w, a, b, c),
    lambda w, a, b, c: np.choose(w, [a, b, c]),
    IDX(3, 4, high=3),
    N(3, 4),
    N(3, 4),
    N(3, 4),
    linear=True,
)
op(
    "lax.select_n_rank0_pred",
    lambda w, a, b: lax.select_n(w, a, b),
    lambda w, a, b: b if w else a,
    K(True, bool),
    N(3),
    N(3),
    linear=True,
)


# -- reductions ----------------------------------------------------------------------------------------

for _rname in ("sum", "mean", "prod", "max", "min", "std", "var"):
    _spec = D if _rname in ("max", "min") else (P if _rname == "prod" else N)
    for _axis, _keep in [(None, False), (0, False), (-1, True), ((0, 2), False), ((1, 2), True)]:
        _f = getattr(fnp, _rname)
        _r = getattr(np, _rname)
        op(
            f"{_rname}[axis={_axis},keepdims={_keep}]",
            lambda x, _f=_f, _a=_axis, _k=_keep: _f(x, axis=_a, keepdims=_k),
            lambda x, _r=_r, _a=_axis, _k=_keep: _r(x, axis=_a, keepdims=_k),
            _spec(2, 3, 4),
            dtypes=NUM if _axis is None else FLOAT,
            linear=_rname == "sum",
        )
op("sum_int32_accumulates_int64", fnp.sum, np.sum, N(6), dtypes=(I32, U8, BOOL), diff=False)
op(
    "sum_dtype_arg",
    lambda x: fnp.sum(x, dtype=np.float64),
    lambda x: np.sum(x, dtype=np.float64),
    N(5),
    dtypes=(F32, I64),
    linear=True,
    out_dtype=lambda d: F64,
)
op(
    "prod_with_zero",
    lambda x: fnp.prod(x * fnp.array([1.0, 0.0, 1.0, 1.0], dtype=x.dtype), axis=0),
    lambda x: np.prod(x * np.array([1.0, 0.0, 1.0, 1.0], dtype=x.dtype), axis=0),
    N(4),
)
op(
    "prod_two_zeros",
    lambda x: fnp.prod(x * fnp.array([0.0, 0.0, 1.0], dtype=x.dtype)),
    lambda x: np.prod(x * np.array([0.0, 0.0, 1.0], dtype=x.dtype)),
    N(3),
)
op("var_ddof", lambda x: fnp.var(x, axis=1, ddof=1), lambda x: np.var(x, axis=1, ddof=1), N(3, 4))
op("std_ddof", lambda x: fnp.std(x, ddof=1), lambda x: np.std(x, ddof=1), N(3, 4))
op("mean_int", fnp.mean, np.mean, N(3, 4), dtypes=(I32, I64, BOOL), diff=False)
op("median_odd", lambda x: fnp.median(x, axis=1), lambda x: np.median(x, axis=1), D(3, 5))
op("median_even", fnp.median, np.median, D(4, 2))
op(
    "max_ties_value",
    lambda x: fnp.max(x, axis=1),
    lambda x: np.max(x, axis=1),
    K([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], "row"),
    diff=False,
)
for _rname in ("argmax", "argmin"):
    for _axis, _keep in [(None, False), (0, False), (-1, True), (None, True)]:
        op(
            f"{_rname}[axis={_axis},keepdims={_keep}]",
            lambda x, _f=getattr(fnp, _rname), _a=_axis, _k=_keep: _f(x, axis=_a, keepdims=_k),
            lambda x, _r=getattr(np, _rname), _a=_axis, _k=_keep: _r(x, axis=_a, keepdims=_k),
            D(3, 4),
            dtypes=NUM,
            diff=False,
        )
op("argmax_first_of_ties", fnp.argmax, np.argmax, K([1.0, 3.0, 3.0, 0.0], "row"), diff=False)
for _rname in ("any", "all"):
    for _axis in (None, 0, (0, 1)):
        op(
            f"{_rname}[axis={_axis}]",
            lambda x, _f=getattr(fnp, _rname), _a=_axis: _f(x, axis=_a),
            lambda x, _r=getattr(np, _rname), _a=_axis: _r(x, axis=_a),
            B(3, 2),
            dtypes=(BOOL,),
            diff=False,
        )
op(
    "any_nonbool",
    lambda x: fnp.any(x, axis=1, keepdims=True),
    lambda x: np.any(x, axis=1, keepdims=True),
    N(3, 4),
    dtypes=(F32, I64),
    diff=False,
)
op("all_nonbool", fnp.all, np.all, P(3, 4), dtypes=(F32, I64), diff=False)
op(
    "count_nonzero",
    lambda x: fnp.count_nonzero(x, axis=0),
    lambda x: np.count_nonzero(x, axis=0),
    N(3, 4),
    dtypes=(I64,),
    diff=False,
)
op(
    "average_weights",
    lambda x, w: fnp.average(x, axis=1, weights=w),
    lambda x, w: np.average(x, axis=1, weights=w),
    N(3, 4),
    P(4),
)
for _cname in ("cumsum", "cumprod"):
    for _axis in (None, 0, 1, -1):
        op(
            f"{_cname}[axis={_axis}]",
            lambda x, _f=getattr(fnp, _cname), _a=_axis: _f(x, axis=_a),
            lambda x, _r=getattr(np, _cname), _a=_axis: _r(x, axis=_a),
            (NZ if _cname == "cumprod" else N)(3, 4),
            dtypes=NUM if _axis == 1 else FLOAT,
            linear=_cname == "cumsum",
        )
op(
    "cumprod_with_zeros",
    lambda x: fnp.cumprod(x, axis=1),
    lambda x: np.cumprod(x, axis=1),
    K([[1.5, 0.0, 2.0, -1.0], [0.0, 2.0, 0.0, 3.0], [0.5, -2.0, 1.5, 0.0]], "row"),
)
op(
    "lax.reduce_prod_with_zeros",
    lambda x: lax.reduce_prod(x, (0,)),
    lambda x: x.prod(0),
    K([[1.5, 0.0, 2.0, 0.0], [0.0, 2.0, -1.0, 0.0]], "row"),
)
op("cumsum_int32", fnp.cumsum, np.cumsum, N(5), dtypes=(I32, BOOL), diff=False)
op(
    "lax.cumsum_reverse",
    lambda x: lax.cumsum(x, 1, reverse=True),
    lambda x: np.flip(np.cumsum(np.flip(x, 1), 1), 1),
    N(3, 4),
    dtypes=NUM,
    linear=True,
    out_dtype=lambda d: d,
)
op(
    "lax.cumprod_reverse",
    lambda x: lax.cumprod(x, 0, reverse=True),
    lambda x: np.flip(np.cumprod(np.flip(x, 0), 0), 0),
    NZ(3, 4),
)
op("lax.cummax", lambda x: lax.cummax(x, 1), lambda x: np.maximum.accumulate(x, 1), D(3, 4), dtypes=NUM)
op(
    "lax.cummin_reverse",
    lambda x: lax.cummin(x, 1, reverse=True),
    lambda x: np.flip(np.minimum.accumulate(np.flip(x, 1), 1), 1),
    D(3, 4),
    dtypes=NUM,
)
op(
    "lax.reduce_sum",
    lambda x: lax.reduce_sum(x, (0, 2)),
    lambda x: x.sum((0, 2)),
    N(2, 3, 4),
    dtypes=NUM,
    linear=True,
    out_dtype=lambda d: d,
)
op("lax.reduce_max", lambda x: lax.reduce_max(x, (1,)), lambda x: x.max(1), D(2, 3, 4), dtypes=NUM)
op("lax.reduce_min", lambda x: lax.reduce_min(x, (0, 1)), lambda x: x.min((0, 1)), D(2, 3, 4), dtypes=NUM)
op("lax.reduce_prod", lambda x: lax.reduce_prod(x, (1,)), lambda x: x.prod(1), NZ(2, 3, 4))
op(
    "lax.reduce_and_or",
    lambda x: (lax.reduce_and(x, (1,)), lax.reduce_or(x, (0,))),
    lambda x: (x.all(1), x.any(0)),
    B(3, 4),
    dtypes=(BOOL,),
    diff=False,
)
op(
    "lax.argmax_argmin",
    lambda x: (lax.argmax(x, 1), lax.argmin(x, 0, np.int32)),
    lambda x: (x.argmax(1), x.argmin(0).astype(np.int32)),
    D(3, 4),
    dtypes=NUM,
    diff=False,
)


# -- shape ops ------------------------------------------------------------------------------------------

op("reshape", lambda x: fnp.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1)), N(2, 3, 4), dtypes=NUM, linear=True)
op("reshape_method_varargs", lambda x: x.reshape(6, 4), lambda x: x.reshape(6, 4), N(2, 3, 4), linear=True)
op("reshape_to_scalar", lambda x: fnp.reshape(x, ()), lambda x: np.reshape(x, ()), N(1, 1), linear=True)
op("ravel", fnp.ravel, np.ravel, N(2, 3, 4), dtypes=NUM, linear=True)
op("transpose_default", fnp.transpose, np.transpose, N(2, 3, 4), dtypes=NUM, linear=True)
op(
    "transpose_axes",
    lambda x: fnp.transpose(x, (1, 2, 0)),
    lambda x: np.transpose(x, (1, 2, 0)),
    N(2, 3, 4),
    linear=True,
)
op(
    "transpose_neg_axes",
    lambda x: fnp.transpose(x, (-1, 0, 1)),
    lambda x: np.transpose(x, (-1, 0, 1)),
    N(2, 3, 4),
    linear=True,
)
op("T", lambda x: x.T, lambda x: x.T, N(3, 4), linear=True)
op("mT", lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), N(2, 3, 4), linear=True)
op("swapaxes", lambda x: fnp.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1), N(2, 3, 4), linear=True)
op("moveaxis", lambda x: fnp.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1), N(2, 3, 4), linear=True)
op(
    "moveaxis_multi",
    lambda x: fnp.moveaxis(x, (0, 1), (2, 0)),
    lambda x: np.moveaxis(x, (0, 1), (2, 0)),
    N(2, 3, 4),
    linear=True,
)
op("squeeze_all", fnp.squeeze, np.squeeze, N(1, 3, 1, 4), dtypes=NUM, linear=True)
op("squeeze_axis", lambda x: fnp.squeeze(x, -2), lambda x: np.squeeze(x, -2), N(1, 3, 1, 4), linear=True)
op("squeeze_tuple", lambda x: fnp.squeeze(x, (0, 2)), lambda x: np.squeeze(x, (0, 2)), N(1, 3, 1, 4), linear=True)
op("expand_dims", lambda x: fnp.expand_dims(x, 1), lambda x: np.expand_dims(x, 1), N(3, 4), dtypes=NUM, linear=True)
op("expand_dims_neg", lambda x: fnp.expand_dims(x, -1), lambda x: np.expand_dims(x, -1), N(3, 4), linear=True)
op("expand_dims_tuple", lambda x: fnp.expand_dims(x, (0, 3)), lambda x: np.expand_dims(x, (0, 3)), N(3, 4), linear=True)
op(
    "broadcast_to",
    lambda x: fnp.broadcast_to(x, (2, 3, 4)),
    lambda x: np.broadcast_to(x, (2, 3, 4)),
    N(3, 1),
    dtypes=NUM,
    linear=True,
)
op("broadcast_to_scalar", lambda x: fnp.broadcast_to(x, (3,)), lambda x: np.broadcast_to(x, (3,)), N(), linear=True)
op("broadcast_arrays", fnp.broadcast_arrays, lambda *a: list(np.broadcast_arrays(*a)), N(3, 1), N(4), linear=True)
op(
    "concatenate",
    lambda x, y: fnp.concatenate([x, y]),
    lambda x, y: np.concatenate([x, y]),
    N(2, 3),
    N(4, 3),
    dtypes=NUM,
    linear=True,
)
op(
    "concatenate_axis1",
    lambda x, y, z: fnp.concatenate([x, y, z], axis=1),
    lambda x, y, z: np.concatenate([x, y, z], axis=1),
    N(2, 3),
    N(2, 1),
    N(2, 2),
    linear=True,
)
op(
    "concatenate_neg_axis",
    lambda x, y: fnp.concatenate((x, y), axis=-1),
    lambda x, y: np.concatenate((x, y), axis=-1),
    N(2, 3, 1),
    N(2, 3, 2),
    linear=True,
)
op(
    "concatenate_axis_none",
    lambda x, y: fnp.concatenate([x, y], axis=None),
    lambda x, y: np.concatenate([x, y], axis=None),
    N(2, 3),
    N(4),
    linear=True,
)
op(
    "concatenate_zero_size",
    lambda x, y: fnp.concatenate([x, y]),
    lambda x, y: np.concatenate([x, y]),
    N(0, 3),
    N(2, 3),
    linear=True,
)
op(
    "concatenate_mixed_dtypes",
    lambda x, y: fnp.concatenate([x, y.astype(np.int32)]),
    lambda x, y: np.concatenate([x, y.astype(np.int32)]).astype(x.dtype),
    N(2),
    N(3),
    dtypes=FLOAT,
    diff=False,
)
op("stack", lambda x, y: fnp.stack([x, y]), lambda x, y: np.stack([x, y]), N(3, 4), N(3, 4), dtypes=NUM, linear=True)
op(
    "stack_axis1",
    lambda x, y, z: fnp.stack([x, y, z], axis=1),
    lambda x, y, z: np.stack([x, y, z], axis=1),
    N(3, 4),
    N(3, 4),
    N(3, 4),
    linear=True,
)
op(
    "stack_neg_axis",
    lambda x, y: fnp.stack([x, y], axis=-1),
    lambda x, y: np.stack([x, y], axis=-1),
    N(3),
    N(3),
    linear=True,
)
op("stack_scalars", lambda x, y: fnp.stack([x, y]), lambda x, y: np.stack([x, y]), N(), N(), linear=True)
op("vstack", lambda x, y: fnp.vstack([x, y]), lambda x, y: np.vstack([x, y]), N(3), N(2, 3), linear=True)
op("hstack", lambda x, y: fnp.hstack([x, y]), lambda x, y: np.hstack([x, y]), N(3), N(2), linear=True)
op("hstack_2d", lambda x, y: fnp.hstack([x, y]), lambda x, y: np.hstack([x, y]), N(2, 3), N(2, 1), linear=True)
op("dstack", lambda x, y: fnp.dstack([x, y]), lambda x, y: np.dstack([x, y]), N(2, 3), N(2, 3), linear=True)
op(
    "column_stack",
    lambda x, y: fnp.column_stack([x, y]),
    lambda x, y: np.column_stack([x, y]),
    N(3),
    N(3, 2),
    linear=True,
)
op(
    "split_sections",
    lambda x: fnp.split(x, 3, axis=1),
    lambda x: np.split(x, 3, axis=1),
    N(2, 6),
    dtypes=NUM,
    linear=True,
)
op("split_indices", lambda x: fnp.split(x, [1, 4]), lambda x: np.split(x, [1, 4]), N(6, 2), linear=True)
op("split_indices_out_of_range", lambda x: fnp.split(x, [2, 9]), lambda x: np.split(x, [2, 9]), N(6), linear=True)
op("array_split", lambda x: fnp.array_split(x, 4), lambda x: np.array_split(x, 4), N(10), linear=True)
op(
    "hsplit_vsplit",
    lambda x: (fnp.hsplit(x, 2), fnp.vsplit(x, 2)),
    lambda x: (np.hsplit(x, 2), np.vsplit(x, 2)),
    N(4, 4),
    linear=True,
)
op("tile", lambda x: fnp.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)), N(2, 3), dtypes=NUM, linear=True)
op("tile_int", lambda x: fnp.tile(x, 2), lambda x: np.tile(x, 2), N(2, 3), linear=True)
op("tile_more_reps", lambda x: fnp.tile(x, (2, 1, 2)), lambda x: np.tile(x, (2, 1, 2)), N(3), linear=True)
op(
    "repeat_int",
    lambda x: fnp.repeat(x, 2, axis=1),
    lambda x: np.repeat(x, 2, axis=1),
    N(2, 3),
    dtypes=NUM,
    linear=True,
)
op("repeat_flat", lambda x: fnp.repeat(x, 3), lambda x: np.repeat(x, 3), N(2, 2), linear=True)
op(
    "repeat_counts",
    lambda x: fnp.repeat(x, np.array([1, 0, 3]), axis=0),
    lambda x: np.repeat(x, np.array([1, 0, 3]), axis=0),
    N(3, 2),
    linear=True,
)
op("flip_all", fnp.flip, np.flip, N(2, 3, 4), dtypes=NUM, linear=True)
op("flip_axis", lambda x: fnp.flip(x, 1), lambda x: np.flip(x, 1), N(2, 3, 4), linear=True)
op("flip_axes", lambda x: fnp.flip(x, (0, -1)), lambda x: np.flip(x, (0, -1)), N(2, 3, 4), linear=True)
op(
    "fliplr_flipud",
    lambda x: (fnp.fliplr(x), fnp.flipud(x)),
    lambda x: (np.fliplr(x), np.flipud(x)),
    N(3, 4),
    linear=True,
)
op(
    "rot90",
    lambda x: [fnp.rot90(x, k) for k in range(4)],
    lambda x: [np.rot90(x, k) for k in range(4)],
    N(2, 3),
    linear=True,
)
op("roll", lambda x: fnp.roll(x, 2, axis=1), lambda x: np.roll(x, 2, axis=1), N(3, 4), dtypes=NUM, linear=True)
op("roll_negative", lambda x: fnp.roll(x, -1, axis=0), lambda x: np.roll(x, -1, axis=0), N(3, 4), linear=True)
op("roll_flat", lambda x: fnp.roll(x, 5), lambda x: np.roll(x, 5), N(3, 4), linear=True)
op(
    "roll_multi",
    lambda x: fnp.roll(x, (1, -2), axis=(0, 1)),
    lambda x: np.roll(x, (1, -2), axis=(0, 1)),
    N(3, 4),
    linear=True,
)
op("roll_big_shift", lambda x: fnp.roll(x, 13, axis=1), lambda x: np.roll(x, 13, axis=1), N(3, 4), linear=True)
for _mode in ("constant", "edge", "reflect", "symmetric", "wrap"):
    op(
        f"pad[{_mode}]",
        lambda x, _m=_mode: fnp.pad(x, ((1, 2), (3, 0)), mode=_m),
        lambda x, _m=_mode: np.pad(x, ((1, 2), (3, 0)), mode=_m),
        N(3, 4),
        dtypes=NUM,
        linear=True,
    )
    op(
        f"pad[{_mode}]_scalar_width",
        lambda x, _m=_mode: fnp.pad(x, 2, mode=_m),
        lambda x, _m=_mode: np.pad(x, 2, mode=_m),
        N(4),
        linear=True,
    )
op(
    "pad_constant_values",
    lambda x: fnp.pad(x, (1, 2), constant_values=7.5),
    lambda x: np.pad(x, (1, 2), constant_values=7.5),
    N(2, 3),
    diff=True,
)
op(
    "pad_constant_per_axis",
    lambda x: fnp.pad(x, ((1, 0), (0, 2)), constant_values=((1, 2), (3, 4))),
    lambda x: np.pad(x, ((1, 0), (0, 2)), constant_values=((1, 2), (3, 4))),
    N(2, 3),
)
op(
    "pad_traced_constant",
    lambda x, c: fnp.pad(x, ((0, 1), (2, 1)), constant_values=c),
    lambda x, c: np.pad(x, ((0, 1), (2, 1)), constant_values=c),
    N(2, 3),
    N(),
    linear=True,
)
op(
    "pad_traced_constants_per_axis",
    lambda x, c: fnp.pad(x, 1, constant_values=c),
    lambda x, c: np.pad(x, 1, constant_values=c),
    N(2, 3),
    N(2, 2),
    linear=True,
)
op(
    "pad_reflect_wide",
    lambda x: fnp.pad(x, (5, 4), mode="reflect"),
    lambda x: np.pad(x, (5, 4), mode="reflect"),
    N(3),
    linear=True,
)
op(
    "pad_wrap_wide",
    lambda x: fnp.pad(x, (5, 7), mode="wrap"),
    lambda x: np.pad(x, (5, 7), mode="wrap"),
    N(3),
    linear=True,
)
op(
    "tril_triu",
    lambda x: (fnp.tril(x), fnp.triu(x, 1), fnp.tril(x, -1)),
    lambda x: (np.tril(x), np.triu(x, 1), np.tril(x, -1)),
    N(3, 4),
    dtypes=NUM,
    linear=True,
)
op("tril_batched", lambda x: fnp.tril(x), lambda x: np.tril(x), N(2, 3, 3), linear=True)
op(
    "diag_vec",
    lambda x: (fnp.diag(x), fnp.diag(x, 1), fnp.diag(x, -2)),
    lambda x: (np.diag(x), np.diag(x, 1), np.diag(x, -2)),
    N(3),
    dtypes=NUM,
    linear=True,
)
op(
    "diag_mat",
    lambda x: (fnp.diag(x), fnp.diag(x, 1), fnp.diag(x, -1)),
    lambda x: (np.diag(x), np.diag(x, 1), np.diag(x, -1)),
    N(3, 4),
    linear=True,
)
op("diagonal", lambda x: fnp.diagonal(x, 1, 0, 2), lambda x: np.diagonal(x, 1, 0, 2), N(3, 2, 4), linear=True)
op("trace", lambda x: fnp.trace(x), lambda x: np.trace(x), N(3, 4), dtypes=NUM, linear=True)
op("trace_offset", lambda x: fnp.trace(x, -1, 1, 2), lambda x: np.trace(x, -1, 1, 2), N(2, 3, 3), linear=True)
op(
    "atleast_nd",
    lambda x: (fnp.atleast_1d(x), fnp.atleast_2d(x), fnp.atleast_3d(x)),
    lambda x: (np.atleast_1d(x), np.atleast_2d(x), np.atleast_3d(x)),
    N(),
    linear=True,
)
op("kron", fnp.kron, np.kron, N(2, 3), N(3, 2))
op("cross", fnp.cross, np.cross, N(4, 3), N(4, 3))
op(
    "lax.broadcast_in_dim",
    lambda x: lax.broadcast_in_dim(x, (2, 3, 4), (1, 2)),
    lambda x: np.broadcast_to(x, (2, 3, 4)),
    N(3, 1),
    dtypes=NUM,
    linear=True,
)
op(
    "lax.broadcast_in_dim_middle",
    lambda x: lax.broadcast_in_dim(x, (2, 3, 4), (1,)),
    lambda x: np.broadcast_to(x[None, :, None], (2, 3, 4)),
    N(3),
    linear=True,
)
op("lax.broadcast", lambda x: lax.broadcast(x, (2,)), lambda x: np.broadcast_to(x, (2,) + x.shape), N(3), linear=True)
op(
    "lax.reshape_dimensions",
    lambda x: lax.reshape(x, (4, 3), dimensions=(1, 0)),
    lambda x: x.T.reshape(4, 3),
    N(3, 4),
    linear=True,
)
op(
    "lax.transpose",
    lambda x: lax.transpose(x, (2, 0, 1)),
    lambda x: np.transpose(x, (2, 0, 1)),
    N(2, 3, 4),
    dtypes=NUM,
    linear=True,
)
op("lax.squeeze", lambda x: lax.squeeze(x, (0, -1)), lambda x: x[0, ..., 0], N(1, 3, 1), linear=True)
op("lax.expand_dims", lambda x: lax.expand_dims(x, (0, 2)), lambda x: np.expand_dims(x, (0, 2)), N(3, 4), linear=True)
op("lax.rev", lambda x: lax.rev(x, (0, 2)), lambda x: np.flip(x, (0, 2)), N(2, 3, 4), dtypes=NUM, linear=True)
op(
    "lax.concatenate",
    lambda x, y: lax.concatenate([x, y], 1),
    lambda x, y: np.concatenate([x, y], 1),
    N(2, 3),
    N(2, 2),
    dtypes=NUM,
    linear=True,
)
op("lax.slice", lambda x: lax.slice(x, (1, 0), (3, 4)), lambda x: x[1:3, 0:4], N(4, 5), dtypes=NUM, linear=True)
op("lax.slice_strides", lambda x: lax.slice(x, (0, 1), (5, 5), (2, 3)), lambda x: x[0:5:2, 1:5:3], N(5, 6), linear=True)
op("lax.slice_strides_uneven", lambda x: lax.slice(x, (1,), (8,), (3,)), lambda x: x[1:8:3], N(9), linear=True)
op("lax.slice_empty", lambda x: lax.slice(x, (2, 0), (2, 3)), lambda x: x[2:2, 0:3], N(4, 3), linear=True)
op("lax.slice_in_dim", lambda x: lax.slice_in_dim(x, 1, None, 2, axis=1), lambda x: x[:, 1::2], N(3, 6), linear=True)
op("lax.index_in_dim", lambda x: lax.index_in_dim(x, 2, 1, keepdims=False), lambda x: x[:, 2], N(3, 4), linear=True)


def _np_lax_pad(x, value, config):
    """Reference lax.pad: interior padding, then edge padding where negative values crop."""
    for ax, (lo, hi, interior) in enumerate(config):
        n = x.shape[ax]
        size = n + max(n - 1, 0) * interior
        shape = list(x.shape)
        shape[ax] = size
        core = np.full(shape, value, x.dtype)
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(None, None, interior + 1)
        core[tuple(idx)] = x
        widths = [(0, 0)] * x.ndim
        widths[ax] = (max(lo, 0), max(hi, 0))
        core = np.pad(core, widths, constant_values=value)
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(-min(lo, 0), core.shape[ax] + min(hi, 0))
        x = core[tuple(idx)]
    return x


for _cfg in [
    ((1, 2, 0), (0, 1, 0)),
    ((0, 0, 1), (2, 0, 2)),
    ((-1, 0, 0), (1, -2, 0)),
    ((-2, 1, 1), (1, -3, 2)),
    ((0, 0, 0), (-1, -1, 1)),
]:
    op(
        f"lax.pad{_cfg}",
        lambda x, _c=_cfg: lax.pad(x, 0.5, _c),
        lambda x, _c=_cfg: _np_lax_pad(x, 0.5, _c),
        N(3, 4),
        dtypes=FLOAT,
        linear=False,
    )
op(
    "lax.pad_linear",
    lambda x, v: lax.pad(x, v, ((1, -1, 1), (-1, 2, 0))),
    lambda x, v: _np_lax_pad(x, v, ((1, -1, 1), (-1, 2, 0))),
    N(3, 4),
    N(),
    linear=True,
)
op(
    "lax.pad_int",
    lambda x: lax.pad(x, 7, ((1, 1, 1),)),
    lambda x: _np_lax_pad(x, 7, ((1, 1, 1),)),
    N(3),
    dtypes=(I32, I64),
    diff=False,
)


def _np_dynamic_slice(x, starts, sizes):
    starts = [min(max(int(s), 0), n - k) for s, n, k in zip(starts, x.shape, sizes)]
    return x[tuple(slice(s, s + k) for s, k in zip(starts, sizes))]


def _np_dus(x, u, starts):
    starts = [min(max(int(s), 0), n - k) for s, n, k in zip(starts, x.shape, u.shape)]
    out = x.copy()
    out[tuple(slice(s, s + k) for s, k in zip(starts, u.shape))] = u
    return out


for _starts in [(1, 2), (-3, 1), (5, 9)]:  # in range, clamped low, clamped high (JAX semantics)
    op(
        f"lax.dynamic_slice{_starts}",
        lambda x, i, j: lax.dynamic_slice(x, (i, j), (2, 3)),
        lambda x, i, j: _np_dynamic_slice(x, (i, j), (2, 3)),
        N(4, 5),
        K(_starts[0], np.int64),
        K(_starts[1], np.int32),
        dtypes=NUM,
        linear=True,
    )
    op(
        f"lax.dynamic_update_slice{_starts}",
        lambda x, u, i, j: lax.dynamic_update_slice(x, u, (i, j)),
        lambda x, u, i, j: _np_dus(x, u, (i, j)),
        N(4, 5),
        N(2, 3),
        K(_starts[0], np.int64),
        K(_starts[1], np.int64),
        dtypes=NUM,
        linear=True,
    )
op(
    "lax.dynamic_slice_in_dim",
    lambda x, i: lax.dynamic_slice_in_dim(x, i, 2, axis=1),
    lambda x, i: x[:, int(i) : int(i) + 2],
    N(3, 5),
    K(2, np.int64),
    linear=True,
)
op(
    "lax.dynamic_update_slice_in_dim",
    lambda x, u, i: lax.dynamic_update_slice_in_dim(x, u, i, axis=0),
    lambda x, u, i: _np_dus(x, u, (i, 0)),
    N(4, 2),
    N(1, 2),
    K(3, np.int64),
    linear=True,
)


# -- indexing -----------------------------------------------------------------------------------------

for _label, _idx in [
    ("int", 1),
    ("neg_int", -1),
    ("slice", np.s_[1:3]),
    ("neg_step", np.s_[::-1]),
    ("neg_step_range", np.s_[3:0:-2]),
    ("step_and_int", np.s_[::2, 1]),
    ("none", np.s_[None, :, None]),
    ("ellipsis", np.s_[..., 0]),
    ("ellipsis_none", np.s_[0, ..., None]),
    ("ellipsis_only", Ellipsis),
    ("empty_tuple", ()),
    ("int_list", [0, 2, 2]),
    ("int_array_2d", np.array([[0, 1], [3, 3]])),
    ("cols", np.s_[:, [2, 0]]),
    ("two_arrays", (np.array([0, 1, 3]), np.array([1, 2, 0]))),
    ("array_broadcast", (np.array([[0], [2]]), [1, 2])),
    ("separated_arrays", np.s_[[0, 1], :, [1, 0]]),
    ("neg_array", np.array([-1, -4, 0])),
    ("slice_out_of_range", np.s_[2:10]),
    ("empty_slice", np.s_[3:1]),
    ("np_int", np.int64(2)),
    ("array_then_slice", np.s_[[1, 0], 1:]),
]:
    _shape = (4, 3, 2) if _label == "separated_arrays" else (4, 3)
    op(f"getitem[{_label}]", lambda x, _i=_idx: x[_i], lambda x, _i=_idx: x[_i], N(*_shape), dtypes=NUM, linear=True)
op("getitem_traced_index", lambda x, i: x[i], lambda x, i: x[i], N(5, 2), IDX(2, 3, high=5), linear=True)
op(
    "getitem_traced_index_pair",
    lambda x, i, j: x[i, j],
    lambda x, i, j: x[i, j],
    N(3, 4),
    IDX(5, high=3),
    IDX(5, high=4),
    linear=True,
)
op("getitem_scalar_index_array", lambda x, i: x[i], lambda x, i: x[i], N(4, 2), K(3, np.int64), linear=True)
op("getitem_bool_mask", lambda x, m: x[m], lambda x, m: x[m], N(3, 4), B(3, 4), dtypes=NUM, trace=False, linear=True)
op("getitem_bool_rows", lambda x, m: x[m], lambda x, m: x[m], N(3, 4), K([True, False, True]), trace=False, linear=True)
op(
    "getitem_bool_cols_with_slice",
    lambda x, m: x[1:, m],
    lambda x, m: x[1:, m],
    N(3, 4),
    K([True, False, True, True]),
    trace=False,
    linear=True,
)
op("getitem_comparison_mask", lambda x: x[x > 0], lambda x: x[x > 0], N(3, 4), trace=False, linear=False)
op(
    "getitem_fill_mode",
    lambda x: x.at[np.array([0, 5, -7])].get(mode="fill", fill_value=-1.0),
    lambda x: np.array([x[0], -1.0, -1.0], x.dtype),
    N(4),
    linear=False,
)
op("getitem_clamped", lambda x, i: x[i], lambda x, i: x[np.clip(i, -4, 3)], N(4), K([0, 9, -9]), linear=True)

_UPD = [
    ("set_int", 1, N(3)),
    ("set_slice", np.s_[1:3], N(2, 3)),
    ("set_neg_step", np.s_[::-2], N(2, 3)),
    ("set_broadcast_row", np.s_[:, 1], N()),
    ("set_array", np.array([0, 2]), N(2, 3)),
    ("set_pairs", (np.array([0, 1, 3]), np.array([2, 0, 1])), N(3)),
    ("set_ellipsis_none", np.s_[..., None, 0], N(4, 1)),
]
for _label, _idx, _vspec in _UPD:

    def _ref(x, v, _i=_idx):
        out = x.copy()
        out[_i] = v
        return out

    op(f"at.{_label}", lambda x, v, _i=_idx: x.at[_i].set(v), _ref, N(4, 3), _vspec, dtypes=NUM, linear=True)

_REPEATED = np.array([0, 2, 0, 0, 3])
for _method, _ufunc, _spec in [
    ("add", np.add, N),
    ("multiply", np.multiply, NZ),
    ("min", np.minimum, D),
    ("max", np.maximum, D),
]:

    def _ref(x, v, _u=_ufunc):
        out = x.copy()
        _u.at(out, _REPEATED, v)
        return out

    op(
        f"at.{_method}_repeated",
        lambda x, v, _m=_method: getattr(x.at[_REPEATED], _m)(v),
        _ref,
        _spec(5, 2),
        _spec(5, 2),
        dtypes=NUM,
        linear=_method == "add",
    )
    op(
        f"at.{_method}_slice",
        lambda x, v, _m=_method: getattr(x.at[1:, 0], _m)(v),
        lambda x, v, _u=_ufunc: np.concatenate([x[:1], np.stack([_u(x[1:, 0], v), x[1:, 1]], 1)]),
        _spec(5, 2),
        _spec(4),
        linear=_method == "add",
    )
op(
    "at.add_scalar_value",
    lambda x: x.at[np.array([1, 1, 2])].add(1.0),
    lambda x: x + np.array([0.0, 2.0, 1.0], x.dtype),
    N(3),
    linear=False,
)
op(
    "at.set_repeated_same_value",
    lambda x: x.at[np.array([1, 1])].set(5.0),
    lambda x: np.where(np.arange(3) == 1, 5.0, x).astype(x.dtype),
    N(3),
    linear=False,
)
op(
    "at.add_traced_index",
    lambda x, i, v: x.at[i].add(v),
    lambda x, i, v: _np_add_at(x, i, v),
    N(4, 2),
    IDX(6, high=4),
    N(6, 2),
    linear=True,
)
op(
    "at.set_out_of_range_dropped",
    lambda x, v: x.at[np.array([1, 7])].set(v),
    lambda x, v: np.where(np.arange(3) == 1, v[0], x),
    N(3),
    N(2),
    linear=True,
)
op("at.get", lambda x: x.at[1:, ::2].get(), lambda x: x[1:, ::2], N(3, 4), linear=True)


def _np_add_at(x, i, v):
    out = x.copy()
    np.add.at(out, i, v)
    return out


op(
    "take_flat",
    lambda x, i: fnp.take(x, i),
    lambda x, i: np.take(x, i),
    N(3, 4),
    IDX(2, 3, high=12),
    dtypes=NUM,
    linear=True,
)
op(
    "take_axis",
    lambda x, i: fnp.take(x, i, axis=1),
    lambda x, i: np.take(x, i, axis=1),
    N(3, 4),
    IDX(5, high=4),
    linear=True,
)
op(
    "take_neg_axis_repeated",
    lambda x, i: fnp.take(x, i, axis=-1),
    lambda x, i: np.take(x, i, axis=-1),
    N(2, 3),
    K([2, 2, 0, 2]),
    linear=True,
)
op(
    "take_along_axis",
    lambda x, i: fnp.take_along_axis(x, i, 1),
    lambda x, i: np.take_along_axis(x, i, 1),
    N(3, 4),
    IDX(3, 6, high=4),
    dtypes=NUM,
    linear=True,
)
op(
    "take_along_axis_broadcast",
    lambda x, i: fnp.take_along_axis(x, i, 0),
    lambda x, i: np.take_along_axis(x, i, 0),
    N(3, 4),
    IDX(2, 1, high=3),
    linear=True,
)
op(
    "take_along_axis_argsort",
    lambda x: fnp.take_along_axis(x, fnp.argsort(x, axis=0), 0),
    lambda x: np.take_along_axis(x, np.argsort(x, axis=0), 0),
    D(3, 4),
)


def _np_put_along_axis(x, i, v, axis):
    out = x.copy()
    np.put_along_axis(out, i, v, axis)
    return out


op(
    "put_along_axis",
    lambda x, i, v: fnp.put_along_axis(x, i, v, 1),
    lambda x, i, v: _np_put_along_axis(x, i, v, 1),
    N(3, 4),
    K([[0], [3], [1]]),
    N(3, 1),
    dtypes=NUM,
    linear=True,
)
op(
    "put_along_axis_scalar_value",
    lambda x, i: fnp.put_along_axis(x, i, 0.0, 0),
    lambda x, i: _np_put_along_axis(x, i, 0.0, 0),
    N(3, 4),
    K([[2, 0, 1, 1]]),
    linear=False,
)
op(
    "nonzero_size",
    lambda x: fnp.nonzero(x > 0, size=6, fill_value=-1),
    lambda x: tuple(np.concatenate([i[:6], np.full(max(0, 6 - len(i)), -1)]) for i in np.nonzero(x > 0)),
    N(3, 4),
    diff=False,
)
op("nonzero_eager", lambda x: fnp.nonzero(x > 0), lambda x: np.nonzero(x > 0), N(3, 4), diff=False, trace=False)
op("where_one_arg", lambda x: fnp.where(x > 0), lambda x: np.where(x > 0), N(5), diff=False, trace=False)
op("argwhere", lambda x: fnp.argwhere(x > 0), lambda x: np.argwhere(x > 0), N(3, 4), diff=False, trace=False)
op(
    "flatnonzero",
    lambda x: fnp.flatnonzero(x),
    lambda x: np.flatnonzero(x),
    N(3, 4),
    dtypes=(I64,),
    diff=False,
    trace=False,
)
op(
    "searchsorted",
    lambda a, v: fnp.searchsorted(a, v),
    lambda a, v: np.searchsorted(a, v),
    K([0.0, 1.0, 1.0, 3.0]),
    K([-1.0, 1.0, 2.0, 5.0]),
    diff=False,
)
op(
    "searchsorted_right",
    lambda a, v: fnp.searchsorted(a, v, side="right"),
    lambda a, v: np.searchsorted(a, v, side="right"),
    K([0.0, 1.0, 1.0, 3.0]),
    K([[-1.0, 1.0], [2.0, 3.0]]),
    diff=False,
)
op(
    "unique",
    lambda x: fnp.unique(x),
    lambda x: np.unique(x),
    K([3, 1, 3, 2, 1], "row"),
    dtypes=NUM,
    diff=False,
    trace=False,
)
op(
    "unique_counts",
    lambda x: fnp.unique(x, return_counts=True),
    lambda x: np.unique(x, return_counts=True),
    K([3, 1, 3, 2, 1], "row"),
    dtypes=(I64,),
    diff=False,
    trace=False,
)
op(
    "compress_extract",
    lambda x: (fnp.compress([True, False, True], x, axis=0), fnp.extract(x > 0, x)),
    lambda x: (np.compress([True, False, True], x, axis=0), np.extract(x > 0, x)),
    N(3, 2),
    diff=False,
    trace=False,
)


# -- products --------------------------------------------------------------------------------------------

for _shapes in [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
]:
    op(
        f"matmul{_shapes}",
        fnp.matmul,
        np.matmul,
        N(*_shapes[0]),
        N(*_shapes[1]),
        dtypes=NUM if _shapes[0] == (3, 4) and _shapes[1] == (4, 5) else FLOAT,
    )
op("matmul_operator", lambda x, y: x @ y, lambda x, y: x @ y, N(2, 3), N(3, 2))
op(
    "matmul_mixed_dtypes",
    lambda x, y: fnp.matmul(x, y.astype(np.int32)),
    lambda x, y: np.matmul(x, y.astype(np.int32)).astype(x.dtype),
    N(2, 3),
    N(3, 2),
    diff=False,
)
for _shapes in [((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 3, 4), (5, 4, 6)), ((), (3,)), ((3,), (3, 2))]:
    op(f"dot{_shapes}", fnp.dot, np.dot, N(*_shapes[0]), N(*_shapes[1]), dtypes=FLOAT)
op("vdot", fnp.vdot, np.vdot, N(2, 3), N(3, 2))
op("inner", fnp.inner, np.inner, N(3, 4), N(5, 4))
op("inner_vec", fnp.inner, np.inner, N(4), N(4), dtypes=NUM)
op("outer", fnp.outer, np.outer, N(3), N(2, 2), dtypes=NUM)
for _axes in [2, 1, 0, ((1, 0), (0, 1)), ([2], [0]), (-1, 0)]:
    op(
        f"tensordot[{_axes}]",
        lambda x, y, _a=_axes: fnp.tensordot(x, y, _a),
        lambda x, y, _a=_axes: np.tensordot(x, y, _a),
        N(2, 3, 4),
        N(3, 4, 2)
        if _axes in (2,)
        else (N(4, 3, 2) if _axes in (1, ([2], [0]), (-1, 0)) else (N(3, 2, 4) if _axes != 0 else N(2))),
    )

EINSUM = [
    ("ij->ji", [(3, 4)]),
    ("ii->", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("bii->bi", [(2, 3, 3)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(4,), (4,)]),
    ("i,i", [(4,), (4,)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...i,...i->...", [(2, 3), (3,)]),
    ("i...->...", [(3, 2, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i,j,k->ijk", [(2,), (3,), (2,)]),
    ("ij,ji->", [(3, 4), (4, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ab,cd->abcd", [(2, 3), (2, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
]
for _eq, _shapes in EINSUM:
    op(
        f"einsum[{_eq}]",
        lambda *a, _e=_eq: fnp.einsum(_e, *a),
        lambda *a, _e=_eq: np.einsum(_e, *a),
        *[N(*s) for s in _shapes],
        dtypes=FLOAT if len(_shapes) > 1 else NUM,
        linear=len(_shapes) == 1,
    )
op(
    "einsum_list_form",
    lambda x, y: fnp.einsum("ij,jk->ik", [x, y]),
    lambda x, y: np.einsum("ij,jk->ik", x, y),
    N(2, 3),
    N(3, 2),
)
op(
    "einsum_size1_broadcast",
    lambda x, y: fnp.einsum("ij,ij->ij", x, y),
    lambda x, y: np.einsum("ij,ij->ij", x, y),
    N(1, 4),
    N(3, 4),
)
op(
    "lax.dot_general_batch",
    lambda x, y: lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,)))),
    lambda x, y: np.einsum("bij,bjk->bik", x, y),
    N(2, 3, 4),
    N(2, 4, 5),
    dtypes=NUM,
)
op(
    "lax.dot_general_odd",
    lambda x, y: lax.dot_general(x, y, (((0, 2), (3, 0)), ((1,), (1,)))),
    lambda x, y: np.einsum("ibj,jbki->bk", x, y),
    N(3, 2, 4),
    N(4, 2, 5, 3),
)
op(
    "lax.dot_general_outer",
    lambda x, y: lax.dot_general(x, y, (((), ()), ((), ()))),
    lambda x, y: np.multiply.outer(x, y),
    N(2, 3),
    N(4),
)
op(
    "lax.dot_general_preferred",
    lambda x, y: lax.dot_general(x, y, (((1,), (0,)), ((), ())), preferred_element_type=np.float64),
    lambda x, y: x.astype(np.float64) @ y.astype(np.float64),
    N(2, 3),
    N(3, 2),
    dtypes=(F32,),
    diff=False,
    out_dtype=lambda d: F64,
)
op("lax.dot", lax.dot, np.dot, N(2, 3), N(3, 4), dtypes=NUM)


# -- sorting ---------------------------------------------------------------------------------------------

op("sort", fnp.sort, np.sort, D(3, 5), dtypes=NUM)
op("sort_axis0", lambda x: fnp.sort(x, axis=0), lambda x: np.sort(x, axis=0), D(3, 5))
op("sort_axis_none", lambda x: fnp.sort(x, axis=None), lambda x: np.sort(x, axis=None), D(3, 5))
op("sort_descending", lambda x: fnp.sort(x, descending=True), lambda x: -np.sort(-x), D(3, 5))
op("sort_with_nan", fnp.sort, np.sort, K([3.0, np.nan, 1.0, -np.inf, 2.0], "row"), diff=False)
op("argsort", fnp.argsort, lambda x: np.argsort(x, kind="stable"), D(3, 5), dtypes=NUM, diff=False)
op(
    "argsort_ties_stable",
    lambda x: fnp.argsort(x, axis=0),
    lambda x: np.argsort(x, axis=0, kind="stable"),
    K([[1, 0], [0, 0], [1, 0], [0, 1]], "row"),
    dtypes=NUM,
    diff=False,
)
op(
    "argsort_descending",
    lambda x: fnp.argsort(x, descending=True),
    lambda x: np.argsort(-x, kind="stable"),
    K([1.0, 3.0, 3.0, 0.0, 1.0], "row"),
    diff=False,
)
op("lax.sort", lambda x: lax.sort(x, 0), lambda x: np.sort(x, 0), D(4, 3), dtypes=NUM)
op(
    "lax.top_k",
    lambda x: lax.top_k(x, 3),
    lambda x: (-np.sort(-x)[..., :3], np.argsort(-x, kind="stable")[..., :3]),
    D(2, 5),
    dtypes=NUM,
)
op(
    "lax.top_k_ties",
    lambda x: lax.top_k(x, 2),
    lambda x: (np.array([3, 3], x.dtype), np.array([1, 3])),
    K([1, 3, 0, 3], "row"),
    dtypes=(F32, I32),
    diff=False,
)
op(
    "lax.top_k_unsigned",
    lambda x: lax.top_k(x, 2),
    lambda x: (-np.sort(-x.astype(np.int64))[:2].astype(x.dtype), np.argsort(-x.astype(np.int64), kind="stable")[:2]),
    K([0, 200, 7, 255, 1], np.uint8),
    dtypes=(U8,),
    diff=False,
)


# -- dtype conversions ---------------------------------------------------------------------------------

op(
    "astype_f64",
    lambda x: x.astype(np.float64),
    lambda x: x.astype(np.float64),
    N(3),
    dtypes=(F32, I64, BOOL),
    linear=True,
    out_dtype=lambda d: F64,
)
op("astype_f32", lambda x: x.astype("float32"), lambda x: x.astype("float32"), N(3), dtypes=(F64,), linear=True)
op("astype_int", lambda x: x.astype(np.int32), lambda x: x.astype(np.int32), N(5), diff=False)
op("astype_bool", lambda x: x.astype(bool), lambda x: x.astype(bool), K([0.0, -0.0, 0.5, np.nan], "row"), diff=False)
op(
    "lax.convert_element_type",
    lambda x: lax.convert_element_type(x, np.float64),
    lambda x: x.astype(np.float64),
    N(4),
    dtypes=(F32, I32, BOOL),
    linear=True,
    out_dtype=lambda d: F64,
)
op(
    "lax.convert_to_int",
    lambda x: lax.convert_element_type(x, np.int64),
    lambda x: x.astype(np.int64),
    K([1.7, -1.7, 0.2, 3.0], "row"),
    diff=False,
)
op(
    "lax.convert_complex_to_real",
    lambda x, y: lax.convert_element_type(lax.complex(x, y), x.dtype),
    lambda x, y: x,
    N(3),
    N(3),
    diff=False,
)
op(
    "lax.bitcast_convert_type",
    lambda x: lax.bitcast_convert_type(x, np.int32),
    lambda x: x.view(np.int32),
    N(4),
    dtypes=(F32,),
    diff=False,
)


OPS_BY_NAME = {o.name: o for o in OPS}
assert len(OPS_BY_NAME) == len(OPS), "op names must be unique"


def _cases(pred=lambda o: True, all_dtypes=True):
    out = []
    for o in OPS:
        if not pred(o):
            continue
        for dt in o.dtypes if all_dtypes else o.dtypes[:1]:
            out.append(pytest.param(o, dt, id=f"{o.name}-{dt.name}"))
    return out


def _expected_dtype(np_out, in_dtypes, row, in_dtype):
    """funcgrad's dtype for a result NumPy computes: NumPy's, except that float64 (complex128)
    appears only when an input is float64 (complex128): Python data and int-to-float promotion
    give the default float32 (complex64)."""
    if row.out_dtype is not None:
        return np.dtype(row.out_dtype(in_dtype))
    dt = np_out.dtype
    if dt == F64 and F64 not in in_dtypes and np.dtype("complex128") not in in_dtypes:
        return F32
    if dt == np.dtype("complex128") and F64 not in in_dtypes and np.dtype("complex128") not in in_dtypes:
        return np.dtype("complex64")
    return dt


def _rtol(row, dtype):
    if row.rtol is not None:
        return row.rtol
    return {F32: 2e-5, F64: 1e-12}.get(np.dtype(dtype), 0)


# -- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row,dtype", _cases())
def test_impl(row, dtype):
    args = row.args(dtype)
    with np.errstate(all="ignore"):
        expected = row.ref(*[a.copy() for a in args])
    got = row.fn(*[fnp.asarray(a) for a in args])
    exp_leaves, exp_tree = tree_flatten(expected)
    got_leaves, got_tree = tree_flatten(got)
    assert got_tree == exp_tree, f"{row.name}: output structure {got_tree}, NumPy gives {exp_tree}"
    in_dtypes = [a.dtype for a in args]
    for k, (g, e) in enumerate(zip(got_leaves, exp_leaves)):
        assert isinstance(g, fg.Array), f"{row.name}: output {k} is a {type(g).__name__}, not an Array"
        e = np.asarray(e)
        want = _expected_dtype(e, in_dtypes, row, np.dtype(dtype))
        assert g.dtype == want, f"{row.name}: output {k} has dtype {g.dtype}, expected {want} (NumPy: {e.dtype})"
        assert g.shape == e.shape, f"{row.name}: output {k} has shape {g.shape}, NumPy gives {e.shape}"
        tol = max(_rtol(row, want), _rtol(row, dtype)) if want.kind in "fc" else 0
        assert_allclose(g, e.astype(want), rtol=tol, atol=tol, err_msg=f"{row.name} output {k}")


@pytest.mark.parametrize("row,dtype", _cases(lambda o: o.trace, all_dtypes=True))
def test_abstract_eval(row, dtype):
    args = [fnp.asarray(a) for a in row.args(dtype)]
    closed = fg.make_jaxpr(row.fn)(*args)
    typecheck_jaxpr(closed.jaxpr)
    real = tree_leaves(row.fn(*args))
    assert [(a.shape, a.dtype) for a in closed.out_avals] == [(r.shape, r.dtype) for r in real], (
        f"{row.name}: abstract evaluation {[str(a) for a in closed.out_avals]} disagrees with the outputs "
        f"{[(r.shape, r.dtype.name) for r in real]}"
    )
    # The traced program computes the same values as eager evaluation.
    assert_allclose(closed(*args), real, rtol=1e-6, atol=0, err_msg=f"{row.name}: evaluating the jaxpr")


def _eval_checking_avals(closed, args, what):
    """Evaluate a jaxpr equation by equation, checking each declared type against the computed value."""
    jaxpr = closed.jaxpr
    env = dict(zip(jaxpr.constvars, closed.consts))
    env.update(zip(jaxpr.invars, args))

    def read(a):
        return a.val if type(a).__name__ == "Literal" else env[a]

    for eqn in jaxpr.eqns:
        out = eqn.primitive.bind(*[read(a) for a in eqn.invars], **eqn.params)
        outs = out if eqn.primitive.multiple_results else [out]
        for var, val in zip(eqn.outvars, outs):
            assert (val.shape, val.dtype) == (var.aval.shape, var.aval.dtype), (
                f"{what}: equation '{eqn.primitive.name}' declares {var.aval} but computes "
                f"{val.dtype.name}{list(val.shape)} (inputs {[str(a.aval) for a in eqn.invars]})"
            )
            env[var] = val
    return [read(a) for a in jaxpr.outvars]


def _jvp_and_pullback(row, args):
    rng = np.random.default_rng(5)
    tangents = [
        fnp.asarray(rng.standard_normal(a.shape).astype(a.dtype))
        if a.dtype.kind == "f"
        else np.zeros(a.shape, fnp.float0)
        for a in args
    ]

    def jvp_fn(*xs):
        return fg.jvp(row.fn, tuple(xs), tuple(tangents))

    def pullback_fn(*xs):
        out, f_vjp = fg.vjp(row.fn, *xs)
        return f_vjp(tree_map(lambda o: o if o.dtype.kind == "f" else np.zeros(o.shape, fnp.float0), out))

    return jvp_fn, pullback_fn


@pytest.mark.parametrize("row", [pytest.param(o, id=o.name) for o in OPS if o.trace])
def test_jaxpr_types_match_values(row):
    """Every equation's abstract value equals what its impl computes, in the function and in its
    JVP and VJP programs (a wrong rule that NumPy broadcasting hides shows up here)."""
    args = [fnp.asarray(a) for a in row.args(row.grad_dtype if row.diff else row.dtypes[0])]
    fns = [("f", row.fn)]
    if row.diff:
        fns += list(zip(("jvp", "vjp"), _jvp_and_pullback(row, args)))
    for what, fn in fns:
        closed = fg.make_jaxpr(fn)(*args)
        typecheck_jaxpr(closed.jaxpr)
        got = _eval_checking_avals(closed, args, f"{row.name} {what}")
        assert_allclose(got, tree_leaves(fn(*args)), rtol=1e-12, err_msg=f"{row.name} {what}: jaxpr vs eager")


@pytest.mark.parametrize("row", [pytest.param(o, id=o.name) for o in OPS if o.diff])
def test_grads(row):
    args = row.args(row.grad_dtype, seed=1)
    check_grads(row.fn, args, order=2, modes=("fwd", "rev"))


def _rand_like(rng, x):
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        return None
    return rng.standard_normal(x.shape).astype(x.dtype)


def _inner(xs, ys):
    tot, mag = 0.0, 0.0
    for x, y in zip(xs, ys):
        if x is None or y is None:
            continue
        p = np.asarray(x, np.float64) * np.asarray(y, np.float64)
        tot += p.sum()
        mag += np.abs(p).sum()
    return tot, mag


@pytest.mark.parametrize("row", [pytest.param(o, id=o.name) for o in OPS if o.diff or o.linear])
def test_transpose(row):
    """linearize's forward map and vjp's transposed map are adjoint: <ct, L t> == <L^T ct, t>."""
    rng = np.random.default_rng(3)
    args = [fnp.asarray(a) for a in row.args(row.grad_dtype, seed=2)]
    out, f_jvp = fg.linearize(row.fn, *args)
    out2, f_vjp = fg.vjp(row.fn, *args)
    assert_allclose(out, out2, err_msg=f"{row.name}: linearize and vjp primal outputs")
    tangents = [_rand_like(rng, a) for a in args]
    float0 = fnp.float0
    lin_in = [fnp.asarray(t) if t is not None else np.zeros(a.shape, float0) for t, a in zip(tangents, args)]
    lt = f_jvp(*lin_in)
    out_leaves, out_tree = tree_flatten(out)
    cts = [_rand_like(rng, o) for o in out_leaves]
    ct_tree = out_tree.unflatten(
        [fnp.asarray(c) if c is not None else np.zeros(o.shape, float0) for c, o in zip(cts, out_leaves)]
    )
    lct = f_vjp(ct_tree)
    ip_fwd, mag_fwd = _inner(cts, [np.asarray(v) for v in tree_leaves(lt)])
    ip_rev, mag_rev = _inner(tangents, [np.asarray(v) if t is not None else None for v, t in zip(lct, tangents)])
    scale = max(mag_fwd, mag_rev, 1e-300)
    tol = 1e-6 if any(o.dtype == F32 for o in out_leaves) else 1e-10
    assert abs(ip_fwd - ip_rev) <= tol * scale + 1e-12, (
        f"{row.name}: <ct, L t> = {ip_fwd} but <L^T ct, t> = {ip_rev} (term magnitude {scale})"
    )
    if row.linear:
        # A linear function is its own linearization: L t == f(t) (non-float arguments kept).
        t_args = [fnp.asarray(t) if t is not None else a for t, a in zip(tangents, args)]
        tol = 1e-6 if any(o.dtype == F32 for o in out_leaves) else 1e-12
        assert_allclose(lt, row.fn(*t_args), rtol=tol, atol=tol, err_msg=f"{row.name}: L t vs f(t)")


# -- coverage: the table reaches every primitive of the core lax modules ---------------------------------------


def _core_primitives():
    import importlib

    from funcgrad.core.primitive import Primitive

    prims = {}
    for mod in ("elementwise", "shape", "reductions", "indexing", "dot", "sort"):
        m = importlib.import_module(f"funcgrad.lax.{mod}")
        for v in vars(m).values():
            if isinstance(v, Primitive):
                prims[v.name] = v
    return prims


def _primitives_in(jaxpr, acc):
    for eqn in jaxpr.eqns:
        acc.add(eqn.primitive.name)
    return acc


def test_op_table_covers_every_core_primitive():
    seen = set()
    for row in OPS:
        if not row.trace:
            continue
        args = [fnp.asarray(a) for a in row.args(row.dtypes[0])]
        _primitives_in(fg.make_jaxpr(row.fn)(*args).jaxpr, seen)
        if row.diff:
            # Tangent and transpose rules bind further primitives (e.g. the scatter behind a gather).
            fargs = [fnp.asarray(a) for a in row.args(row.grad_dtype)]

            def pulled(*xs, row=row):
                out, f_vjp = fg.vjp(row.fn, *xs)
                return f_vjp(
                    tree_map(
                        lambda o: o if fnp.issubdtype(o.dtype, fnp.inexact) else np.zeros(o.shape, fnp.float0), out
                    )
                )

            _primitives_in(fg.make_jaxpr(pulled)(*fargs).jaxpr, seen)
    missing = sorted(set(_core_primitives()) - seen)
    assert not missing, f"primitives without a row in the op table (add one to tests/test_ops.py): {missing}"


# -- dtype policy (API.md section 1) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lhs,rhs,expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.int64, np.float32, np.float32),  # int + float array -> that float (not float64 as NumPy)
        (np.int32, np.float16, np.float16),
        (np.bool_, np.float32, np.float32),
        (np.bool_, np.int8, np.int8),
        (np.int16, np.int64, np.int64),
        (np.uint8, np.int8, np.int16),
        (np.uint8, np.uint16, np.uint16),
        (np.int64, np.complex64, np.complex64),
        (np.float64, np.complex64, np.complex128),
        (np.float16, np.float32, np.float32),
    ],
)
def test_array_promotion(lhs, rhs, expected):
    x = fnp.ones(3, dtype=lhs)
    y = fnp.ones(3, dtype=rhs)
    assert (x + y).dtype == expected
    assert (y * x).dtype == expected
    assert fnp.result_type(x, y) == expected
    assert fnp.concatenate([x, y]).dtype == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_weak_python_scalars(dtype, scalar):
    """NEP 50: a Python scalar takes the array's dtype; a float scalar with an int array gives the default float."""
    x = fnp.ones(3, dtype=dtype)
    out = x * scalar
    if isinstance(scalar, float) and np.dtype(dtype).kind in "iu":
        assert out.dtype == np.float32
    else:
        assert out.dtype == dtype
    assert (scalar + x).dtype == out.dtype


def test_default_dtypes_and_float64_kept():
    assert fnp.array(1.0).dtype == np.float32
    assert fnp.array([1, 2]).dtype == np.int64
    assert fnp.array(True).dtype == np.bool_
    assert fnp.array(1 + 2j).dtype == np.complex64
    assert fnp.asarray(np.ones(2)).dtype == np.float64  # a numpy float64 is never truncated
    assert fnp.array([1.0], dtype=np.float64).dtype == np.float64
    assert (fnp.asarray(np.ones(2)) + 1.0).dtype == np.float64
    assert fnp.sin(fnp.asarray(np.ones(2))).dtype == np.float64
    assert fnp.sqrt(fnp.arange(3)).dtype == np.float32  # int into a float function: default float
    assert fnp.mean(fnp.arange(3)).dtype == np.float32
    assert (fnp.arange(3) / 2).dtype == np.float32
    assert (fnp.arange(3) // 2).dtype == np.int64
    assert fnp.result_type(fnp.int32, 1.5) == np.float32
    assert fnp.result_type(1, 2.0) == np.float32
    assert fnp.result_type(1, True) == np.int64


def test_default_float_dtype_switch():
    fg.config.update("default_float_dtype", "float64")
    assert fnp.array(1.0).dtype == np.float64
    assert fnp.zeros(2).dtype == np.float64
    assert (fnp.arange(3) * 1.5).dtype == np.float64
    assert fnp.sqrt(fnp.arange(3)).dtype == np.float64
    fg.config.update("default_float_dtype", "float32")
    assert fnp.array(1.0).dtype == np.float32
    assert (fnp.arange(3) * 1.5).dtype == np.float32
    with pytest.raises(ValueError):
        fg.config.update("default_float_dtype", "int32")


@pytest.mark.parametrize(
    "dtype",
    [
        "float16",
        pytest.param("bfloat16", marks=pytest.mark.skipif(fnp.bfloat16 is None, reason="bfloat16 needs ml_dtypes")),
    ],
)
def test_low_precision_arithmetic(dtype):
    dt = fnp.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = fnp.asarray(np.array([0.5, 1.0, 2.0]).astype(dt))
    for f, ref in [(lambda a: a * 2 + 1, lambda a: a * 2 + 1), (fnp.exp, np.exp), (fnp.sum, np.sum)]:
        out = f(x)
        assert out.dtype == dt
        assert_allclose(out, ref(np.asarray(x).astype(np.float32)), rtol=1e-2)
    assert (x @ x).dtype == dt
    assert_allclose(x @ x, 5.25, rtol=1e-2)
    g = fg.grad(lambda a: fnp.sum(a * a))(x)
    assert g.dtype == dt
    assert_allclose(g, [1.0, 2.0, 4.0], rtol=1e-2)


# -- behaviour that NumPy has no reference for --------------------------------------------------------------


def test_at_add_repeated_indices_accumulate_and_grads():
    x = fnp.zeros(4)
    idx = fnp.array([0, 0, 0, 3, 3])
    assert_allclose(x.at[idx].add(1.0), [3.0, 0.0, 0.0, 2.0])
    assert_allclose(x.at[idx].add(fnp.arange(5.0)), [3.0, 0.0, 0.0, 7.0])
    assert_allclose(fnp.ones(4).at[idx].multiply(2.0), [8.0, 1.0, 1.0, 4.0])
    # The cotangent of the values gathers; every repeated slot gets the cotangent of its target.
    g = fg.grad(lambda v: fnp.sum(fnp.arange(4.0) * x.at[idx].add(v)))(fnp.ones(5))
    assert_allclose(g, [0.0, 0.0, 0.0, 3.0, 3.0])
    # .set with repeated indices keeps one of the written values
    out = x.at[fnp.array([1, 1])].set(fnp.array([5.0, 6.0]))
    assert float(out[1]) in (5.0, 6.0) and float(out[0]) == 0.0
    assert_allclose(x, np.zeros(4))  # the original is unchanged


def test_out_of_range_indices_follow_jax():
    x = fnp.arange(4.0)
    assert_allclose(x[fnp.array([5, -9])], [3.0, 0.0])  # reads clamp
    assert_allclose(x.at[fnp.array([5])].get(mode="fill", fill_value=-1.0), [-1.0])
    assert np.isnan(np.asarray(x.at[fnp.array([9])].get(mode="fill"))).all()
    assert_allclose(x.at[fnp.array([1, 9])].set(7.0), [0.0, 7.0, 2.0, 3.0])  # updates drop
    assert_allclose(x.at[fnp.array([1, 9])].add(7.0), [0.0, 8.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        x[4]  # a static out-of-range integer is an error, as in NumPy


def test_max_ties_share_gradient():
    x = fnp.array([1.0, 3.0, 3.0, 0.0])
    assert_allclose(fg.grad(fnp.max)(x), [0.0, 0.5, 0.5, 0.0])
    assert_allclose(fg.grad(lambda a: fnp.sum(fnp.maximum(a, 1.0)))(x), [0.5, 1.0, 1.0, 0.0])
    assert_allclose(fg.grad(lambda a: fnp.sum(fnp.minimum(a, a)))(x), [1.0, 1.0, 1.0, 1.0])


def test_nondifferentiable_ops_have_zero_gradients():
    x = fnp.array([0.3, 1.7, -2.2])
    for f in (fnp.floor, fnp.ceil, fnp.round, fnp.sign, fnp.trunc, fnp.rint, lambda a: fnp.floor_divide(a, 0.7)):
        assert_allclose(fg.grad(lambda a, f=f: fnp.sum(f(a)))(x), np.zeros(3))
    assert_allclose(fg.grad(lambda a: fnp.sum(fnp.where(a > 0, a, 0.0)))(x), [1.0, 1.0, 0.0])
    assert_allclose(fg.grad(lambda a: fnp.sum(a * (a > 0)))(x), [1.0, 1.0, 0.0])


def test_special_derivative_values():
    # sqrt, abs, pow at awkward points: JAX's conventions
    assert_allclose(fg.grad(lambda x: x**2)(0.0), 0.0)
    assert_allclose(fg.grad(lambda x: fnp.power(x, 2.0))(0.0), 0.0)
    assert_allclose(fg.grad(lambda y: fnp.power(0.0, y))(2.0), 0.0)
    assert_allclose(fg.grad(fnp.abs)(0.0), 0.0)
    assert_allclose(fg.grad(lambda x: fnp.prod(x))(fnp.array([0.0, 2.0, 3.0])), [6.0, 0.0, 0.0])
    assert_allclose(fg.grad(lambda x: fnp.prod(x))(fnp.array([0.0, 0.0, 3.0])), [0.0, 0.0, 0.0])
    assert_allclose(fg.grad(lax.logistic)(1000.0), 0.0)
    assert np.isfinite(float(fg.grad(lambda x: fnp.logaddexp(x, x))(1000.0)))
    assert_allclose(fg.grad(lambda x: fnp.logaddexp(x, 0.0))(0.0), 0.5)


def test_eager_primitives_return_read_only_arrays():
    for out in (fnp.sin(fnp.ones(3)), fnp.ones(3) + 1, fnp.sort(fnp.ones(3)), fnp.arange(3)[::-1]):
        v = np.asarray(out)
        assert not v.flags.writeable


# -- vmap: the table's rows against a Python loop, for several batch-dim placements ---------------------------

VMAP_PLACEMENTS = ("all_first", "all_last", "first_only")


@pytest.mark.parametrize("placement", VMAP_PLACEMENTS)
@pytest.mark.parametrize("row", [pytest.param(o, id=o.name) for o in OPS if o.trace])
def test_vmap(row, placement):
    from funcgrad.testing import check_vmap

    dtype = row.dtypes[0]
    examples = [row.args(dtype, seed=s) for s in range(3)]
    n = len(examples[0])
    if placement == "all_first":
        axes = (0,) * n
    elif placement == "all_last":
        axes = tuple(a.ndim for a in examples[0])
    else:
        axes = (0,) + (None,) * (n - 1)
    batched = tuple(
        np.stack([ex[k] for ex in examples], axis=ax) if ax is not None else examples[0][k] for k, ax in enumerate(axes)
    )
    check_vmap(row.fn, batched, in_axes=axes)
