"""Elementwise primitives: unary math, binary arithmetic, comparisons, bitwise, select, casts.

Each primitive is defined with its NumPy impl, and its JVP (and, for linear ones, its
transpose) right below it. Operands have equal shapes and dtypes, except that a rank-0
operand broadcasts (so ``mul x 2.0`` needs no broadcast equation).
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.dtypes import is_inexact
from ..core.errors import InvalidArgumentError
from ..core.primitive import Primitive
from ..transforms.jvp import defjvp, deflinear, instantiate, add_tangents
from ..transforms.transpose import is_undefined
from ._batching import elementwise_rule
from ._family import CALL_IMPL, _check_dtypes, _shape_of, bool_out, elementwise


def scalar_like(x, value):
    """A rank-0 constant with ``x``'s dtype."""
    return wrap_ndarray(np.asarray(value, dtype=x.dtype))


def _lax_operands(*args):
    """lax functions accept Python scalars: they take the dtype of the array operands."""
    arrays = [a for a in args if not isinstance(a, (bool, int, float, complex))]
    if not arrays:
        return [as_array(a, "lax") for a in args]
    dtype = as_array(arrays[0]).dtype
    return [
        wrap_ndarray(np.asarray(a, dtype)) if isinstance(a, (bool, int, float, complex)) else as_array(a, "lax")
        for a in args
    ]


def _sum_to_aval(ct, aval):
    """Cotangent of a (possibly rank-0, broadcast) operand."""
    if ct is None:
        return None
    if aval.shape == () and ct.shape != ():
        from .reductions import reduce_sum

        return reduce_sum(ct, tuple(range(ct.ndim)))
    return ct


def _aval(x):
    return x.aval


# -- unary --------------------------------------------------------------------------------


def _unary(name, impl, jvp=None, **kw):
    prim = elementwise(name, impl, **kw)
    if jvp is not None:
        defjvp(prim, jvp)
    return prim


neg_p = _unary("neg", np.negative)
deflinear(neg_p, lambda ct, x: [neg(ct)])
sign_p = _unary("sign", np.sign, differentiable=False)
floor_p = _unary("floor", np.floor, differentiable=False)
ceil_p = _unary("ceil", np.ceil, differentiable=False)
round_p = _unary("round", lambda x, decimals=0: np.round(x, decimals), differentiable=False)
is_finite_p = _unary("is_finite", np.isfinite, out_dtype=bool_out, differentiable=False)
isnan_p = _unary("isnan", np.isnan, out_dtype=bool_out, differentiable=False)
not_p = _unary("not", np.invert, differentiable=False)

exp_p = _unary("exp", np.exp, lambda t, ans, x: mul(t, ans))
exp2_p = _unary("exp2", np.exp2, lambda t, ans, x: mul(t, mul(ans, scalar_like(x, np.log(2)))))
log_p = _unary("log", np.log, lambda t, ans, x: div(t, x))
log1p_p = _unary("log1p", np.log1p, lambda t, ans, x: div(t, add(x, scalar_like(x, 1))))
expm1_p = _unary("expm1", np.expm1, lambda t, ans, x: mul(t, add(ans, scalar_like(x, 1))))
tanh_p = _unary("tanh", np.tanh, lambda t, ans, x: mul(t, sub(scalar_like(x, 1), mul(ans, ans))))
sin_p = _unary("sin", np.sin, lambda t, ans, x: mul(t, cos(x)))
cos_p = _unary("cos", np.cos, lambda t, ans, x: neg(mul(t, sin(x))))
tan_p = _unary("tan", np.tan, lambda t, ans, x: mul(t, add(scalar_like(x, 1), mul(ans, ans))))
asin_p = _unary("asin", np.arcsin, lambda t, ans, x: mul(t, rsqrt(sub(scalar_like(x, 1), mul(x, x)))))
acos_p = _unary("acos", np.arccos, lambda t, ans, x: neg(mul(t, rsqrt(sub(scalar_like(x, 1), mul(x, x))))))
atan_p = _unary("atan", np.arctan, lambda t, ans, x: div(t, add(scalar_like(x, 1), mul(x, x))))
sinh_p = _unary("sinh", np.sinh, lambda t, ans, x: mul(t, cosh(x)))
cosh_p = _unary("cosh", np.cosh, lambda t, ans, x: mul(t, sinh(x)))
asinh_p = _unary("asinh", np.arcsinh, lambda t, ans, x: mul(t, rsqrt(add(mul(x, x), scalar_like(x, 1)))))
acosh_p = _unary(
    "acosh", np.arccosh, lambda t, ans, x: div(t, mul(sqrt(sub(x, scalar_like(x, 1))), sqrt(add(x, scalar_like(x, 1)))))
)
atanh_p = _unary("atanh", np.arctanh, lambda t, ans, x: div(t, sub(scalar_like(x, 1), mul(x, x))))
sqrt_p = _unary("sqrt", np.sqrt, lambda t, ans, x: div(t, mul(ans, scalar_like(x, 2))))
rsqrt_p = _unary(
    "rsqrt", lambda x: np.reciprocal(np.sqrt(x)), lambda t, ans, x: mul(t, mul(div(ans, x), scalar_like(x, -0.5)))
)
cbrt_p = _unary("cbrt", np.cbrt, lambda t, ans, x: div(t, mul(mul(ans, ans), scalar_like(x, 3))))
abs_p = _unary("abs", np.abs, lambda t, ans, x: _abs_jvp(t, x), out_dtype=lambda d: np.abs(np.zeros((), d)).dtype)


def _abs_jvp(t, x):
    # |z| is real: its tangent is Re(conj(z / |z|) dz), not the complex sign(z) dz.
    if x.dtype.kind == "c":
        return real(mul(t, conj(sign(x))))
    return mul(t, sign(x))


def _logistic_impl(x):
    # Numerically stable in both tails: exp is only taken of non-positive numbers.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


logistic_p = _unary("logistic", _logistic_impl, lambda t, ans, x: mul(t, mul(ans, sub(scalar_like(x, 1), ans))))


def _integer_pow_impl(x, y):
    return np.power(x, y).astype(x.dtype) if y >= 0 or x.dtype.kind != "i" else np.power(x.astype(float), y)


integer_pow_p = elementwise("integer_pow", _integer_pow_impl)


def _integer_pow_jvp(t, ans, x, y):
    if y == 0:
        return None
    return mul(t, mul(scalar_like(x, y), integer_pow(x, y - 1) if y != 1 else scalar_like(x, 1)))


defjvp(integer_pow_p, _integer_pow_jvp)

real_p = _unary("real", np.real, out_dtype=lambda d: np.real(np.zeros((), d)).dtype)
imag_p = _unary("imag", np.imag, out_dtype=lambda d: np.imag(np.zeros((), d)).dtype)
conj_p = _unary("conj", np.conj)
# On a real operand real() is the identity and imag() the zero map: their transposes stay real.
deflinear(
    real_p, lambda ct, x: [complex_(ct, wrap_ndarray(np.zeros(ct.shape, ct.dtype))) if x.aval.dtype.kind == "c" else ct]
)
deflinear(
    imag_p,
    lambda ct, x: [complex_(wrap_ndarray(np.zeros(ct.shape, ct.dtype)), neg(ct)) if x.aval.dtype.kind == "c" else None],
)
deflinear(conj_p, lambda ct, x: [conj(ct)])

stop_gradient_p = _unary("stop_gradient", lambda x: x, differentiable=False)

# -- binary -------------------------------------------------------------------------------


def _binary(name, impl, *jvps, **kw):
    prim = elementwise(name, impl, nin=2, **kw)
    if jvps:
        defjvp(prim, *jvps)
    return prim


def _bcast(t, like):
    """Broadcast a rank-0 tangent to ``like``'s shape (tangents of scalar operands)."""
    if t.shape == like.shape:
        return t
    from .shape import broadcast_in_dim

    return broadcast_in_dim(t, like.shape, ())


add_p = elementwise("add", np.add, nin=2)
sub_p = elementwise("sub", np.subtract, nin=2)


def _add_jvp(primals, tangents):
    x, y = primals
    tx, ty = tangents
    ans = add(x, y)
    tx = None if tx is None else _bcast(tx, ans)
    ty = None if ty is None else _bcast(ty, ans)
    return ans, add_tangents(tx, ty)


def _sub_jvp(primals, tangents):
    x, y = primals
    tx, ty = tangents
    ans = sub(x, y)
    tx = None if tx is None else _bcast(tx, ans)
    ty = None if ty is None else neg(_bcast(ty, ans))
    return ans, add_tangents(tx, ty)


add_p.jvp = _add_jvp
sub_p.jvp = _sub_jvp
add_p.transpose = lambda ct, x, y: [
    _sum_to_aval(ct, x.aval) if is_undefined(x) else None,
    _sum_to_aval(ct, y.aval) if is_undefined(y) else None,
]
sub_p.transpose = lambda ct, x, y: [
    _sum_to_aval(ct, x.aval) if is_undefined(x) else None,
    _sum_to_aval(neg(ct), y.aval) if is_undefined(y) else None,
]

mul_p = _binary("mul", np.multiply, lambda t, ans, x, y: mul(t, y), lambda t, ans, x, y: mul(x, t))


def _mul_transpose(ct, x, y):
    if is_undefined(x) and is_undefined(y):
        raise InvalidArgumentError("lax.mul: transpose of a product of two linear values (the function is not linear)")
    if is_undefined(x):
        return [_sum_to_aval(mul(ct, y), x.aval), None]
    return [None, _sum_to_aval(mul(x, ct), y.aval)]


mul_p.transpose = _mul_transpose


def _div_impl(x, y):
    if x.dtype.kind in "iu":  # lax.div on integers rounds toward zero (C semantics)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.trunc(np.true_divide(x, y))
        return np.where(y == 0, 0, q).astype(x.dtype)
    return np.true_divide(x, y)


div_p = _binary("div", _div_impl, lambda t, ans, x, y: div(t, y), lambda t, ans, x, y: neg(mul(t, div(ans, y))))


def _div_transpose(ct, x, y):
    if is_undefined(y):
        raise InvalidArgumentError("lax.div: transpose with respect to the divisor (the function is not linear)")
    return [_sum_to_aval(div(ct, y), x.aval), None]


div_p.transpose = _div_transpose

rem_p = _binary("rem", np.fmod, lambda t, ans, x, y: _bcast(t, ans), lambda t, ans, x, y: mul(t, neg(trunc_div(x, y))))


def trunc_div(x, y):
    return div(sub(x, rem(x, y)), y)


floor_divide_p = _binary("floor_divide", np.floor_divide, differentiable=False)
remainder_p = _binary(
    "remainder", np.remainder, lambda t, ans, x, y: _bcast(t, ans), lambda t, ans, x, y: mul(t, neg(floor_divide(x, y)))
)


def _pow_jvp_x(t, ans, x, y):
    # y * x**(y-1), written so that x == 0 with y >= 1 gives the right (finite) value.
    one = scalar_like(y, 1)
    return mul(t, mul(y, pow(x, sub(y, one))))


def _pow_jvp_y(t, ans, x, y):
    zero = scalar_like(x, 0)
    safe_log = log(select(eq(x, zero), scalar_like(x, 1), x))
    return mul(t, mul(ans, safe_log))


pow_p = _binary("pow", np.power, _pow_jvp_x, _pow_jvp_y)


def _minmax_jvp(cmp):
    def from_x(t, ans, x, y):
        return mul(t, _pick(x, y, cmp))

    def from_y(t, ans, x, y):
        return mul(t, _pick(y, x, cmp))

    return from_x, from_y


def _pick(a, b, cmp):
    """1 where ``a`` wins, 0.5 on ties, 0 where it loses (gradient split at ties, as JAX)."""
    dtype = a.dtype
    win = convert_element_type(cmp(a, b), dtype)
    tie = convert_element_type(eq(a, b), dtype)
    out = add(win, mul(tie, scalar_like(a, 0.5)))
    if out.shape == () and (a.shape != () or b.shape != ()):
        out = _bcast(out, a if a.shape else b)
    return out


max_p = _binary("max", np.maximum, *_minmax_jvp(lambda a, b: gt(a, b)))
min_p = _binary("min", np.minimum, *_minmax_jvp(lambda a, b: lt(a, b)))
atan2_p = _binary(
    "atan2",
    np.arctan2,
    lambda t, ans, x, y: mul(t, div(y, add(mul(x, x), mul(y, y)))),
    lambda t, ans, x, y: mul(t, div(neg(x), add(mul(x, x), mul(y, y)))),
)
nextafter_p = _binary("nextafter", np.nextafter, differentiable=False)

complex_p = _binary(
    "complex",
    lambda x, y: (x + 1j * y).astype(np.result_type(x.dtype, np.complex64)),
    out_dtype=lambda d: np.result_type(d, np.complex64),
)
deflinear(
    complex_p, lambda ct, x, y: [real(ct) if is_undefined(x) else None, neg(imag(ct)) if is_undefined(y) else None]
)

eq_p = _binary("eq", np.equal, out_dtype=bool_out, differentiable=False)
ne_p = _binary("ne", np.not_equal, out_dtype=bool_out, differentiable=False)
lt_p = _binary("lt", np.less, out_dtype=bool_out, differentiable=False)
le_p = _binary("le", np.less_equal, out_dtype=bool_out, differentiable=False)
gt_p = _binary("gt", np.greater, out_dtype=bool_out, differentiable=False)
ge_p = _binary("ge", np.greater_equal, out_dtype=bool_out, differentiable=False)
and_p = _binary("and", np.bitwise_and, differentiable=False)
or_p = _binary("or", np.bitwise_or, differentiable=False)
xor_p = _binary("xor", np.bitwise_xor, differentiable=False)
shift_left_p = _binary("shift_left", np.left_shift, differentiable=False)
shift_right_arithmetic_p = _binary("shift_right_arithmetic", np.right_shift, differentiable=False)


def _shift_right_logical_impl(x, y):
    unsigned = np.dtype(f"uint{x.dtype.itemsize * 8}")
    return np.right_shift(x.view(unsigned), y.view(unsigned)).view(x.dtype)


shift_right_logical_p = _binary("shift_right_logical", _shift_right_logical_impl, differentiable=False)
population_count_p = _unary("population_count", lambda x: np.bitwise_count(x).astype(x.dtype), differentiable=False)

# -- select -----------------------------------------------------------------------------


def _select_n_impl(which, *cases):
    if which.dtype == np.bool_:
        return np.where(which, cases[1], cases[0])
    return np.choose(which, cases) if which.shape else cases[int(which)]


def _select_n_abstract(which, *cases):
    shape = _shape_of([which, *cases], "select_n")
    dtype = _check_dtypes(cases, "select_n")
    if which.dtype != np.bool_ and which.dtype.kind not in "iu":
        raise InvalidArgumentError(f"lax.select_n: the selector must be bool or int, got {which.dtype}")
    if which.dtype == np.bool_ and len(cases) != 2:
        raise InvalidArgumentError(f"lax.select_n: a boolean selector needs exactly 2 cases, got {len(cases)}")
    return ShapedArray(shape, dtype)


select_n_p = Primitive("select_n")
select_n_p.impl = _select_n_impl
select_n_p.abstract_eval = _select_n_abstract


def _select_n_jvp(primals, tangents):
    which, *cases = primals
    ans = select_n(which, *cases)
    if all(t is None for t in tangents[1:]):
        return ans, None
    ts = [_bcast(instantiate(t, c), ans) for t, c in zip(tangents[1:], cases)]
    return ans, select_n(which, *ts)


def _select_n_transpose(ct, which, *cases):
    if is_undefined(which):
        raise InvalidArgumentError("lax.select_n: the selector cannot be linear")
    zeros = wrap_ndarray(np.zeros(ct.shape, ct.dtype))
    out = [None]
    for i, c in enumerate(cases):
        if is_undefined(c):
            branches = [zeros] * len(cases)
            branches[i] = ct
            out.append(_sum_to_aval(select_n(which, *branches), c.aval))
        else:
            out.append(None)
    return out


select_n_p.jvp = _select_n_jvp
select_n_p.transpose = _select_n_transpose
select_n_p.batch = elementwise_rule(select_n_p)

# -- dtype conversion -------------------------------------------------------------------


def _convert_impl(x, new_dtype):
    if new_dtype == np.bool_ or x.dtype.kind == "c" and new_dtype.kind != "c":
        return (x != 0) if new_dtype == np.bool_ else np.real(x).astype(new_dtype)
    return x.astype(new_dtype)


convert_element_type_p = Primitive("convert_element_type")
convert_element_type_p.impl = _convert_impl
convert_element_type_p.abstract_eval = lambda x, new_dtype: ShapedArray(x.shape, new_dtype)


def _convert_jvp(primals, tangents, new_dtype):
    (x,), (t,) = primals, tangents
    ans = convert_element_type(x, new_dtype)
    if t is None or not is_inexact(new_dtype):
        return ans, None
    return ans, convert_element_type(t, new_dtype)


def _convert_transpose(ct, x, new_dtype):
    return [convert_element_type(ct, x.aval.dtype)]


convert_element_type_p.jvp = _convert_jvp
convert_element_type_p.transpose = _convert_transpose
convert_element_type_p.batch = elementwise_rule(convert_element_type_p)

bitcast_convert_type_p = Primitive("bitcast_convert_type", differentiable=False)
bitcast_convert_type_p.impl = lambda x, new_dtype: x.view(new_dtype)


def _bitcast_abstract(x, new_dtype):
    if x.dtype.itemsize != new_dtype.itemsize:
        raise InvalidArgumentError(f"lax.bitcast_convert_type: {x.dtype} and {new_dtype} have different widths")
    return ShapedArray(x.shape, new_dtype)


bitcast_convert_type_p.abstract_eval = _bitcast_abstract
bitcast_convert_type_p.batch = elementwise_rule(bitcast_convert_type_p)

# -- public lax functions ------------------------------------------------------------------


def _un(prim):
    def f(x):
        return prim.bind(as_array(x, f"lax.{prim.name}"))

    f.__name__ = prim.name
    f.__doc__ = f"Elementwise ``{prim.name}`` (lax primitive), e.g. ``lax.{prim.name}(x)``."
    return f


def _bin(prim):
    def f(x, y):
        x, y = _lax_operands(x, y)
        if x.dtype != y.dtype or (x.shape != y.shape and x.shape != () and y.shape != ()):
            # Eager evaluation skips abstract_eval: without this NumPy would broadcast and promote
            # here, and the same call would only fail under tracing.
            prim.abstract_eval(x.aval, y.aval)
        return prim.bind(x, y)

    f.__name__ = prim.name
    f.__doc__ = f"Elementwise ``{prim.name}`` of two operands of equal shape and dtype (lax primitive)."
    return f


neg, sign, floor, ceil, is_finite, exp, exp2, log, log1p, expm1, tanh, logistic = map(
    _un, (neg_p, sign_p, floor_p, ceil_p, is_finite_p, exp_p, exp2_p, log_p, log1p_p, expm1_p, tanh_p, logistic_p)
)
sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh = map(
    _un, (sin_p, cos_p, tan_p, asin_p, acos_p, atan_p, sinh_p, cosh_p, asinh_p, acosh_p, atanh_p)
)
sqrt, rsqrt, cbrt, abs, real, imag, conj, bitwise_not, population_count = map(
    _un, (sqrt_p, rsqrt_p, cbrt_p, abs_p, real_p, imag_p, conj_p, not_p, population_count_p)
)
add, sub, mul, div, rem, pow, max, min, atan2, nextafter = map(
    _bin, (add_p, sub_p, mul_p, div_p, rem_p, pow_p, max_p, min_p, atan2_p, nextafter_p)
)
eq, ne, lt, le, gt, ge, bitwise_and, bitwise_or, bitwise_xor = map(
    _bin, (eq_p, ne_p, lt_p, le_p, gt_p, ge_p, and_p, or_p, xor_p)
)
shift_left, shift_right_logical, shift_right_arithmetic = map(
    _bin, (shift_left_p, shift_right_logical_p, shift_right_arithmetic_p)
)
floor_divide, remainder = map(_bin, (floor_divide_p, remainder_p))
complex_ = _bin(complex_p)
isnan = _un(isnan_p)


def round_(x, rounding_method=0):
    """Round to the nearest integer, half to even (lax.round with ROUND_TO_NEAREST_EVEN)."""
    return round_p.bind(as_array(x, "lax.round"))


def integer_pow(x, y: int):
    """``x ** y`` for a static Python integer ``y``."""
    return integer_pow_p.bind(as_array(x, "lax.integer_pow"), y=int(y))


def square(x):
    """``x * x``."""
    return integer_pow(x, 2)


def reciprocal(x):
    """``1 / x``."""
    x = as_array(x, "lax.reciprocal")
    return div(scalar_like(x, 1), x)


def select_n(which, *cases):
    """``cases[which]`` elementwise; ``which`` is bool (2 cases) or an integer array."""
    return select_n_p.bind(as_array(which, "lax.select_n"), *_lax_operands(*cases))


def select(pred, on_true, on_false):
    """``on_true`` where ``pred`` else ``on_false`` (JAX's argument order)."""
    return select_n(pred, on_false, on_true)


def convert_element_type(x, new_dtype):
    """Cast ``x`` to ``new_dtype``; differentiable between floating dtypes.

    Example:
        >>> from funcgrad import lax
        >>> lax.convert_element_type(1.7, "int32")
        Array(1, dtype=int32)
    """
    from ..core.dtypes import canonicalize

    x = as_array(x, "lax.convert_element_type")
    new_dtype = canonicalize(new_dtype)
    if x.dtype == new_dtype:
        return x
    return convert_element_type_p.bind(x, new_dtype=new_dtype)


def bitcast_convert_type(x, new_dtype):
    """Reinterpret the bits of ``x`` as ``new_dtype`` (same width)."""
    from ..core.dtypes import canonicalize

    return bitcast_convert_type_p.bind(as_array(x, "lax.bitcast_convert_type"), new_dtype=canonicalize(new_dtype))


def stop_gradient(x):
    """Identity whose derivative is zero (``x.detach()`` in PyTorch). Works on pytrees.

    Example:
        >>> import funcgrad as fg
        >>> fg.grad(lambda x: x * fg.stop_gradient(x))(3.0)
        Array(3., dtype=float32)
    """
    from ..core.pytree import tree_map

    return tree_map(lambda v: stop_gradient_p.bind(as_array(v, "stop_gradient")), x)


def clamp(min, x, max):
    """``min(max(x, min), max)`` (JAX's argument order)."""
    return min_(max_(x, min), max)


max_ = max
min_ = min


# -- jit lowering --------------------------------------------------------------------------------
# Scalar source templates for fused numba kernels (funcgrad/jit/kernels.py). ``{0}``, ``{1}`` are
# the operands; ``{T}`` is the operand dtype's constructor (``np.float32``), ``{U}`` its unsigned
# twin, ``{bits}`` its width; ``fm`` is funcgrad.jit.fastmath (vectorizable float32 math). A
# dict picks a template by operand dtype: 'f4'/'f8', then the kind 'f', 'i', 'u', 'b', then
# 'int' (signed or unsigned); a dtype without an entry runs the NumPy impl (CALL_IMPL).


def _libm(name, f4=None):
    """libm in float64; float32 uses the fastmath version ``f4`` when there is one."""
    return {"f4": f"fm.{f4}({{0}})" if f4 else f"math.{name}({{0}})", "f8": f"math.{name}({{0}})"}


def _integer_pow_lower(in_dtypes, out_dtype, y):
    if y < 0 and in_dtypes[0].kind != "f":
        return None
    # Repeated squaring, as the NumPy impl's ``x ** 2`` and JAX's integer_pow.
    acc, base, n = None, "{0}", abs(y)
    while n:
        if n & 1:
            acc = base if acc is None else f"({acc} * {base})"
        n >>= 1
        if n:
            base = f"({base} * {base})"
    acc = acc or "{T}(1)"
    return f"({{T}}(1) / {acc})" if y < 0 else acc


def _select_n_lower(in_dtypes, out_dtype):
    n = len(in_dtypes) - 1
    if in_dtypes[0] == np.bool_:
        return "({2} if {0} else {1})"
    expr = f"{{{n}}}"
    for i in range(n - 2, -1, -1):
        expr = f"({{{i + 1}}} if {{0}} == {i} else {expr})"
    return expr


def _convert_lower(in_dtypes, out_dtype, new_dtype):
    if in_dtypes[0].kind == "c" or new_dtype.kind == "c":
        return None
    return "({0} != 0)" if new_dtype == np.bool_ else "{O}({0})"


_FLOAT_SIGN = "({T}(1) if {0} > 0 else ({T}(-1) if {0} < 0 else ({0} if {0} != {0} else {T}(0))))"

_LOWER = {
    neg_p: {"f": "(-{0})", "int": "(-{0})"},
    sign_p: {
        "f": _FLOAT_SIGN,
        "i": "({T}(1) if {0} > 0 else ({T}(-1) if {0} < 0 else {T}(0)))",
        "u": "({T}(1) if {0} > 0 else {T}(0))",
    },
    floor_p: {"f": "np.floor({0})", "int": "{0}"},
    ceil_p: {"f": "np.ceil({0})", "int": "{0}"},
    round_p: {"f": "np.rint({0})", "int": "{0}"},
    is_finite_p: {"f": "np.isfinite({0})"},
    isnan_p: {"f": "({0} != {0})"},
    not_p: {"b": "(not {0})", "int": "(~{0})"},
    exp_p: _libm("exp", "exp_f32"),
    exp2_p: {"f": "np.exp2({0})"},
    log_p: _libm("log", "log_f32"),
    log1p_p: _libm("log1p", "log1p_f32"),
    expm1_p: _libm("expm1", "expm1_f32"),
    tanh_p: _libm("tanh", "tanh_f32"),
    sin_p: _libm("sin", "sin_f32"),
    cos_p: _libm("cos", "cos_f32"),
    tan_p: _libm("tan"),
    asin_p: _libm("asin"),
    acos_p: _libm("acos"),
    atan_p: _libm("atan"),
    sinh_p: _libm("sinh"),
    cosh_p: _libm("cosh"),
    asinh_p: _libm("asinh"),
    acosh_p: _libm("acosh"),
    atanh_p: _libm("atanh"),
    sqrt_p: {"f": "np.sqrt({0})"},
    rsqrt_p: {"f": "({T}(1) / np.sqrt({0}))"},
    cbrt_p: {"f": "np.cbrt({0})"},
    abs_p: {"f": "abs({0})", "i": "abs({0})", "u": "{0}"},
    logistic_p: {"f4": "fm.logistic_f32({0})", "f8": "fm.logistic_f64({0})"},
    integer_pow_p: _integer_pow_lower,
    real_p: {"f": "{0}", "int": "{0}"},
    imag_p: {"f": "{T}(0)", "int": "{T}(0)"},
    conj_p: {"f": "{0}", "int": "{0}"},
    stop_gradient_p: "{0}",
    population_count_p: CALL_IMPL,
    add_p: {"f": "({0} + {1})", "int": "({0} + {1})"},
    sub_p: {"f": "({0} - {1})", "int": "({0} - {1})"},
    mul_p: {"f": "({0} * {1})", "int": "({0} * {1})"},
    # Integer division as the impl: the float64 quotient truncated, 0 for a zero divisor.
    div_p: {"f": "({0} / {1})", "int": "(np.trunc(np.float64({0}) / np.float64({1})) if {1} != 0 else 0.0)"},
    # Signed integer division: NumPy's results for a zero divisor and MIN / -1, where the
    # hardware would trap (funcgrad/jit/fastmath.py).
    rem_p: {"f": "np.fmod({0}, {1})", "i": "fm.ifmod({0}, {1})", "u": "({0} % {1} if {1} != 0 else {T}(0))"},
    floor_divide_p: {
        "f": "fm.ffloordiv({0}, {1})",
        "i": "fm.ifloordiv({0}, {1})",
        "u": "({0} // {1} if {1} != 0 else {T}(0))",
    },
    remainder_p: {
        "f": "fm.fremainder({0}, {1})",
        "i": "fm.iremainder({0}, {1})",
        "u": "({0} % {1} if {1} != 0 else {T}(0))",
    },
    pow_p: {"f4": "fm.pow_f32({0}, {1})", "f8": "np.power({0}, {1})"},
    # NumPy's maximum/minimum propagate NaN from either side.
    max_p: {
        "f": "({0} if ({0} >= {1} or {0} != {0}) else {1})",
        "int": "({0} if {0} >= {1} else {1})",
        "b": "({0} or {1})",
    },
    min_p: {
        "f": "({0} if ({0} <= {1} or {0} != {0}) else {1})",
        "int": "({0} if {0} <= {1} else {1})",
        "b": "({0} and {1})",
    },
    atan2_p: {"f": "math.atan2({0}, {1})"},
    nextafter_p: CALL_IMPL,
    complex_p: CALL_IMPL,
    eq_p: "({0} == {1})",
    ne_p: "({0} != {1})",
    lt_p: "({0} < {1})",
    le_p: "({0} <= {1})",
    gt_p: "({0} > {1})",
    ge_p: "({0} >= {1})",
    and_p: {"b": "({0} & {1})", "int": "({0} & {1})"},
    or_p: {"b": "({0} | {1})", "int": "({0} | {1})"},
    xor_p: {"b": "({0} ^ {1})", "int": "({0} ^ {1})"},
    # Shifts by a negative amount or by the width or more: as NumPy (0, or -1 for negative x).
    shift_left_p: {"int": "(({0} << {1}) if ({1} >= 0 and {1} < {bits}) else {T}(0))"},
    shift_right_arithmetic_p: {
        "i": "(({0} >> {1}) if ({1} >= 0 and {1} < {bits}) else ({T}(-1) if {0} < 0 else {T}(0)))",
        "u": "(({0} >> {1}) if {1} < {bits} else {T}(0))",
    },
    shift_right_logical_p: {"int": "(({U}({0}) >> {U}({1})) if {U}({1}) < {bits} else {U}(0))"},
    select_n_p: _select_n_lower,
    convert_element_type_p: _convert_lower,
    bitcast_convert_type_p: CALL_IMPL,
}
for _prim, _rule in _LOWER.items():
    _prim.lower = _rule
del _prim, _rule
