"""Elementwise functions with NumPy names, broadcasting and dtype promotion."""

from __future__ import annotations

import numpy as np

from ..core.config import config
from ..core.dtypes import is_inexact
from ..lax import elementwise as lx
from ._util import inexact_operand, operands, to_array
from ..core.errors import InvalidArgumentError, InvalidValueError


def _unary(name, prim, float_only=True, int_passthrough=False):
    def f(x, /):
        if float_only:
            x = inexact_operand(x, name)
        else:
            x = to_array(x, name)
            if int_passthrough and not is_inexact(x.dtype):
                return x
        return prim.bind(x)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = (
        f"Elementwise ``{name}`` (NumPy semantics; integer inputs become the default float).\n\n"
        f"Example:\n    >>> import funcgrad.numpy as fnp\n    >>> fnp.{name}(fnp.array([0.5])).shape\n    (1,)\n"
    )
    return f


def _binary(name, prim, float_only=False, kinds=None):
    def f(x1, x2, /):
        x, y = operands(name, x1, x2)
        if float_only and not is_inexact(x.dtype):
            x, y = (
                lx.convert_element_type(x, config.default_float_dtype),
                lx.convert_element_type(y, config.default_float_dtype),
            )
        if kinds is not None and x.dtype.kind not in kinds:
            raise InvalidArgumentError(
                f"{name}: not supported for dtype {x.dtype} (only {'integer' if 'i' in kinds else kinds} "
                "and bool arrays)"
            )
        return prim.bind(x, y)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = (
        f"Elementwise ``{name}`` with broadcasting and NumPy/JAX dtype promotion.\n\n"
        f"Example:\n    >>> import funcgrad.numpy as fnp\n"
        f"    >>> fnp.{name}(fnp.array([1, 2]), fnp.array([3, 4])).shape\n    (2,)\n"
    )
    return f


add = _binary("add", lx.add_p)
subtract = _binary("subtract", lx.sub_p)
multiply = _binary("multiply", lx.mul_p)
true_divide = _binary("true_divide", lx.div_p, float_only=True)
divide = true_divide
floor_divide = _binary("floor_divide", lx.floor_divide_p)
remainder = _binary("remainder", lx.remainder_p)
mod = remainder
fmod = _binary("fmod", lx.rem_p)
maximum = _binary("maximum", lx.max_p)
minimum = _binary("minimum", lx.min_p)
arctan2 = _binary("arctan2", lx.atan2_p, float_only=True)
nextafter = _binary("nextafter", lx.nextafter_p, float_only=True)
equal = _binary("equal", lx.eq_p)
not_equal = _binary("not_equal", lx.ne_p)
less = _binary("less", lx.lt_p)
less_equal = _binary("less_equal", lx.le_p)
greater = _binary("greater", lx.gt_p)
greater_equal = _binary("greater_equal", lx.ge_p)
bitwise_and = _binary("bitwise_and", lx.and_p, kinds="iub")
bitwise_or = _binary("bitwise_or", lx.or_p, kinds="iub")
bitwise_xor = _binary("bitwise_xor", lx.xor_p, kinds="iub")
left_shift = _binary("left_shift", lx.shift_left_p, kinds="iu")
right_shift = _binary("right_shift", lx.shift_right_arithmetic_p, kinds="iu")

negative = _unary("negative", lx.neg_p, float_only=False)
sign = _unary("sign", lx.sign_p, float_only=False)
absolute = _unary("absolute", lx.abs_p, float_only=False)
abs = absolute
exp = _unary("exp", lx.exp_p)
exp2 = _unary("exp2", lx.exp2_p)
expm1 = _unary("expm1", lx.expm1_p)
log = _unary("log", lx.log_p)
log1p = _unary("log1p", lx.log1p_p)
sqrt = _unary("sqrt", lx.sqrt_p)
cbrt = _unary("cbrt", lx.cbrt_p)
sin = _unary("sin", lx.sin_p)
cos = _unary("cos", lx.cos_p)
tan = _unary("tan", lx.tan_p)
arcsin = _unary("arcsin", lx.asin_p)
arccos = _unary("arccos", lx.acos_p)
arctan = _unary("arctan", lx.atan_p)
sinh = _unary("sinh", lx.sinh_p)
cosh = _unary("cosh", lx.cosh_p)
tanh = _unary("tanh", lx.tanh_p)
arcsinh = _unary("arcsinh", lx.asinh_p)
arccosh = _unary("arccosh", lx.acosh_p)
arctanh = _unary("arctanh", lx.atanh_p)
floor = _unary("floor", lx.floor_p, float_only=False, int_passthrough=True)
ceil = _unary("ceil", lx.ceil_p, float_only=False, int_passthrough=True)
rint = _unary("rint", lx.round_p)  # NumPy: integer input gives a float result
isnan = _unary("isnan", lx.isnan_p)
isfinite = _unary("isfinite", lx.is_finite_p)
conj = _unary("conj", lx.conj_p, float_only=False)
conjugate = conj
real = _unary("real", lx.real_p, float_only=False)
imag = _unary("imag", lx.imag_p, float_only=False)
acos, asin, atan, atan2, acosh, asinh, atanh = arccos, arcsin, arctan, arctan2, arccosh, arcsinh, arctanh


def positive(x, /):
    """``+x``."""
    return to_array(x, "positive")


def invert(x, /):
    """Bitwise NOT (logical NOT for bool)."""
    x = to_array(x, "invert")
    if x.dtype.kind not in "iub":
        raise InvalidArgumentError(f"invert (~): not supported for dtype {x.dtype}; use fnp.logical_not or -x")
    return lx.not_p.bind(x)


bitwise_not = invert


def isinf(x, /):
    """True where ``x`` is +inf or -inf."""
    x = inexact_operand(x, "isinf")
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


def isposinf(x, /):
    x = inexact_operand(x, "isposinf")
    return logical_and(isinf(x), greater(x, 0))


def isneginf(x, /):
    x = inexact_operand(x, "isneginf")
    return logical_and(isinf(x), less(x, 0))


def signbit(x, /):
    x = to_array(x, "signbit")
    return (
        less(x, 0)
        if not is_inexact(x.dtype)
        else logical_or(less(x, 0), logical_and(equal(x, 0), less(arctan2(x, -1.0), 0)))
    )


def _to_bool(x, name):
    x = to_array(x, name)
    return x if x.dtype == np.bool_ else lx.ne_p.bind(x, lx.scalar_like(x, 0))


def logical_not(x, /):
    """Elementwise logical NOT (any dtype; nonzero is true)."""
    return lx.not_p.bind(_to_bool(x, "logical_not"))


def _logical(name, prim):
    def f(x1, x2, /):
        a, b = operands(name, _to_bool(x1, name), _to_bool(x2, name))
        return prim.bind(a, b)

    f.__name__ = name
    f.__doc__ = f"Elementwise logical ``{name[8:]}`` (nonzero is true); returns bool."
    return f


logical_and = _logical("logical_and", lx.and_p)
logical_or = _logical("logical_or", lx.or_p)
logical_xor = _logical("logical_xor", lx.xor_p)


def power(x1, x2, /):
    """``x1 ** x2``; a Python-int exponent uses ``integer_pow`` (exact, stable derivatives).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.power(fnp.array([2.0, 3.0]), 2)
        Array([4., 9.], dtype=float32)
    """
    if type(x2) is int and not isinstance(x1, (int, float, complex)):
        x = to_array(x1, "power")
        if x2 < 0 and x.dtype.kind in "iub":
            raise InvalidValueError("power: integers to negative integer powers are not allowed")
        if x.dtype == np.bool_:
            x = lx.convert_element_type(x, np.int64)
        return lx.integer_pow(x, x2)
    x, y = operands("power", x1, x2)
    return lx.pow_p.bind(x, y)


pow = power


def float_power(x1, x2, /):
    """``x1 ** x2`` computed in float64."""
    x, y = operands("float_power", x1, x2, dtype=np.float64)
    return lx.pow_p.bind(x, y)


def square(x, /):
    """``x * x``."""
    x = to_array(x, "square")
    return lx.integer_pow(x, 2)


def reciprocal(x, /):
    """``1 / x`` (NumPy keeps integer dtypes; so does funcgrad)."""
    x = to_array(x, "reciprocal")
    return lx.div_p.bind(lx.scalar_like(x, 1), x)


def log2(x, /):
    """Base-2 logarithm."""
    x = inexact_operand(x, "log2")
    return lx.div_p.bind(lx.log_p.bind(x), lx.scalar_like(x, np.log(2)))


def log10(x, /):
    """Base-10 logarithm."""
    x = inexact_operand(x, "log10")
    return lx.div_p.bind(lx.log_p.bind(x), lx.scalar_like(x, np.log(10)))


def trunc(x, /):
    """Round toward zero."""
    x = to_array(x, "trunc")
    if not is_inexact(x.dtype):
        return x
    return lx.select(lx.lt(x, lx.scalar_like(x, 0)), lx.ceil_p.bind(x), lx.floor_p.bind(x))


fix = trunc


def round(a, decimals=0):
    """Round half to even to ``decimals`` decimal places (NumPy semantics).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.round(fnp.array([0.5, 1.5, 2.26]), 1)
        Array([0.5, 1.5, 2.3], dtype=float32)
    """
    a = to_array(a, "round")
    if not is_inexact(a.dtype):
        if decimals >= 0:
            return a
        # NumPy rounds integers to a multiple of 10**-decimals (half to even), keeping the dtype.
        scale = lx.scalar_like(lx.convert_element_type(a, np.float64), 10.0**-decimals)
        rounded = lx.mul_p.bind(lx.round_p.bind(lx.div_p.bind(lx.convert_element_type(a, np.float64), scale)), scale)
        return lx.convert_element_type(rounded, a.dtype)
    if decimals == 0:
        return lx.round_p.bind(a)
    scale = lx.scalar_like(a, 10.0**decimals)
    return lx.div_p.bind(lx.round_p.bind(lx.mul_p.bind(a, scale)), scale)


around = round


def clip(a, a_min=None, a_max=None, /, *, min=None, max=None):
    """Limit values to ``[a_min, a_max]`` (either may be None). If ``a_min > a_max`` the result is
    ``a_max`` everywhere, as in NumPy and PyTorch.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.clip(fnp.array([-1.0, 0.5, 2.0]), 0.0, 1.0)
        Array([0. , 0.5, 1. ], dtype=float32)
    """
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    out = to_array(a, "clip")
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return out


def divmod(x1, x2, /):
    """``(floor_divide(x1, x2), remainder(x1, x2))``."""
    return floor_divide(x1, x2), remainder(x1, x2)


def fmax(x1, x2, /):
    """Maximum that ignores NaNs."""
    x, y = operands("fmax", x1, x2)
    return lx.select(isnan(x), y, lx.select(isnan(y), x, maximum(x, y))) if is_inexact(x.dtype) else maximum(x, y)


def fmin(x1, x2, /):
    """Minimum that ignores NaNs."""
    x, y = operands("fmin", x1, x2)
    return lx.select(isnan(x), y, lx.select(isnan(y), x, minimum(x, y))) if is_inexact(x.dtype) else minimum(x, y)


def logaddexp(x1, x2, /):
    """``log(exp(x1) + exp(x2))`` without overflow.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.logaddexp(0.0, 0.0)
        Array(0.6931472, dtype=float32)
    """
    x, y = operands("logaddexp", x1, x2)
    if not is_inexact(x.dtype):
        x, y = (
            lx.convert_element_type(x, config.default_float_dtype),
            lx.convert_element_type(y, config.default_float_dtype),
        )
    amax = maximum(x, y)
    delta = subtract(x, y)
    both_inf = logical_and(isinf(amax), equal(x, y))
    safe = lx.select(both_inf, lx.scalar_like(delta, 0), delta)
    out = add(amax, log1p(exp(negative(absolute(safe)))))
    return lx.select(isnan(delta) & ~both_inf, add(x, y), out)


def logaddexp2(x1, x2, /):
    """``log2(2**x1 + 2**x2)``."""
    ln2 = float(np.log(2))  # a Python float stays weak (a NumPy float64 would promote)
    return true_divide(logaddexp(multiply(x1, ln2), multiply(x2, ln2)), ln2)


def hypot(x1, x2, /):
    """``sqrt(x1**2 + x2**2)`` without intermediate overflow."""
    x, y = operands("hypot", x1, x2)
    x, y = absolute(inexact_operand(x, "hypot")), absolute(inexact_operand(y, "hypot"))
    big, small = maximum(x, y), minimum(x, y)
    safe_big = lx.select(equal(big, 0), lx.scalar_like(big, 1), big)
    r = true_divide(small, safe_big)
    return lx.select(equal(big, 0), big, multiply(big, sqrt(add(1.0, multiply(r, r)))))


def deg2rad(x, /):
    return multiply(inexact_operand(x, "deg2rad"), np.pi / 180)


def rad2deg(x, /):
    return multiply(inexact_operand(x, "rad2deg"), 180 / np.pi)


radians, degrees = deg2rad, rad2deg


def sinc(x, /):
    """``sin(pi x) / (pi x)`` with ``sinc(0) = 1``."""
    x = inexact_operand(x, "sinc")
    is_zero = equal(x, 0)
    safe = lx.select(is_zero, lx.scalar_like(x, 1), x)
    pix = multiply(safe, np.pi)
    return lx.select(is_zero, lx.scalar_like(x, 1), true_divide(sin(pix), pix))


def heaviside(x1, x2, /):
    """Heaviside step: 0 for x1 < 0, ``x2`` at 0, 1 for x1 > 0."""
    x, h0 = operands("heaviside", x1, x2)
    zero, one = lx.scalar_like(x, 0), lx.scalar_like(x, 1)
    return lx.select(less(x, 0), zero, lx.select(greater(x, 0), one, h0))


def copysign(x1, x2, /):
    x, y = operands("copysign", x1, x2)
    return lx.select(signbit(y), negative(absolute(x)), absolute(x))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Replace NaN and infinities by finite numbers."""
    x = to_array(x, "nan_to_num")
    if not is_inexact(x.dtype):
        return x
    info = np.finfo(x.dtype) if x.dtype.kind == "f" else np.finfo(np.float32)
    out = lx.select(isnan(x), lx.scalar_like(x, nan), x)
    out = lx.select(isposinf(x), lx.scalar_like(x, info.max if posinf is None else posinf), out)
    return lx.select(isneginf(x), lx.scalar_like(x, info.min if neginf is None else neginf), out)


def astype(x, dtype, copy=True):
    """Cast ``x`` to ``dtype`` (a new array; differentiable between float dtypes)."""
    from ..core.dtypes import canonicalize

    return lx.convert_element_type(to_array(x, "astype"), canonicalize(dtype))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|a - b| <= atol + rtol * |b|``."""
    x, y = operands("isclose", a, b)
    if not is_inexact(x.dtype):
        return equal(x, y)
    close = less_equal(absolute(subtract(x, y)), add(atol, multiply(rtol, absolute(y))))
    close = logical_or(close, logical_and(equal(x, y), isinf(x)))  # equal infinities
    if equal_nan:
        close = logical_or(close, logical_and(isnan(x), isnan(y)))
    return close


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True if every element of ``a`` and ``b`` is close (``torch.allclose``)."""
    from .reductions import all as all_

    return all_(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a1, a2, equal_nan=False):
    """True if both arrays have the same shape and elements (``torch.equal``)."""
    from .reductions import all as all_

    a, b = to_array(a1, "array_equal"), to_array(a2, "array_equal")
    if a.shape != b.shape:
        return to_array(False)
    eq = equal(a, b)
    if equal_nan and is_inexact(a.dtype):
        eq = logical_or(eq, logical_and(isnan(a), isnan(b)))
    return all_(eq)


def array_equiv(a1, a2):
    """True if the arrays broadcast to each other and are equal."""
    from .reductions import all as all_

    try:
        return all_(equal(a1, a2))
    except ValueError:
        return to_array(False)
