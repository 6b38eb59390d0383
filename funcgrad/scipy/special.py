"""``funcgrad.scipy.special``: special functions with SciPy names (as ``jax.scipy.special``).

Inputs broadcast and promote like ``funcgrad.numpy`` (integers become the default float
dtype); every function is differentiable, to any order, in its floating-point arguments.
The values match SciPy's to float64 accuracy (see ``funcgrad.lax.special`` for the kernels);
the derivative conventions at edge points (``xlogy(0, y)``, ``logsumexp`` over ``-inf``) are JAX's.
"""

from __future__ import annotations

import numpy as np

from .. import numpy as fnp
from ..core.config import config
from ..core.dtypes import is_inexact
from ..core.errors import DTypeError
from ..lax import elementwise as lx
from ..lax import special as lsp
from ..numpy._util import canonical_axes, inexact_operand, operands
from ..transforms.custom_derivatives import custom_jvp

__all__ = [
    "betaln",
    "digamma",
    "entr",
    "erf",
    "erfc",
    "erfcx",
    "erfinv",
    "expit",
    "gamma",
    "gammainc",
    "gammaincc",
    "gammaln",
    "log_expit",
    "log_softmax",
    "logit",
    "logsumexp",
    "ndtr",
    "polygamma",
    "psi",
    "rel_entr",
    "softmax",
    "xlog1py",
    "xlogy",
]


_SQRT_HALF = float(np.sqrt(0.5))  # a Python float stays weakly typed (no float64 promotion)


def _real(x, name):
    """A real floating operand: integers and bools become the default float dtype; complex is refused."""
    x = inexact_operand(x, name)
    if x.dtype.kind == "c":
        raise DTypeError(f"{name}: complex inputs are not supported (got {x.dtype.name}, shape {x.shape})")
    return x


def _float_operands(name, *args):
    """Broadcast and promote like NumPy; integer and bool inputs become the default float dtype."""
    xs = operands(name, *args)
    if not is_inexact(xs[0].dtype):
        xs = [lx.convert_element_type(x, config.default_float_dtype) for x in xs]
    if xs[0].dtype.kind == "c":
        raise DTypeError(f"{name}: complex inputs are not supported (got {xs[0].dtype.name})")
    return xs


# -- error function family ----------------------------------------------------------------------


def erf(x):
    """Error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.erf(0.5)
        Array(0.5204999, dtype=float32)
    """
    return lsp.erf_p.bind(_real(x, "erf"))


def erfc(x):
    """Complementary error function ``1 - erf(x)``, accurate where ``erf(x)`` rounds to 1.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.erfc(0.0)
        Array(1., dtype=float32)
    """
    return lsp.erfc_p.bind(_real(x, "erfc"))


def erfcx(x):
    """Scaled complementary error function ``exp(x^2) * erfc(x)``.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.erfcx(0.0)
        Array(1., dtype=float32)
    """
    return lsp.erfcx_p.bind(_real(x, "erfcx"))


def erfinv(y):
    """Inverse error function: ``erf(erfinv(y)) == y`` on ``(-1, 1)``; ``+-inf`` at ``+-1``, NaN outside.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.erfinv(0.5)
        Array(0.47693628, dtype=float32)
    """
    return lsp.erf_inv_p.bind(_real(y, "erfinv"))


def ndtr(x):
    """Standard normal CDF ``(1 + erf(x / sqrt(2))) / 2``, computed as ``erfc(-x / sqrt(2)) / 2`` so the
    lower tail keeps its relative accuracy.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.ndtr(0.0)
        Array(0.5, dtype=float32)
    """
    x = _real(x, "ndtr")
    return fnp.multiply(lsp.erfc_p.bind(fnp.multiply(x, -_SQRT_HALF)), 0.5)


# -- gamma family ----------------------------------------------------------------------------------


def gammaln(x):
    """``log |Gamma(x)|`` (``+inf`` at the poles 0, -1, -2, ...). Its derivative is :func:`digamma`.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.gammaln(5.0)
        Array(3.1780539, dtype=float32)
    """
    return lsp.lgamma_p.bind(_real(x, "gammaln"))


def gamma(x):
    """The gamma function, as ``sign * exp(gammaln(x))`` (relative error grows like ``|gammaln(x)| * eps``).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.gamma(5.0)
        Array(24., dtype=float32)
    """
    x = _real(x, "gamma")
    # Gamma(x) < 0 exactly where floor(x) is odd and x < 0.
    odd = fnp.equal(fnp.remainder(fnp.floor(x), 2.0), 1.0)
    sign = fnp.where(fnp.logical_and(fnp.less(x, 0.0), odd), -1.0, 1.0).astype(x.dtype)
    out = fnp.multiply(sign, fnp.exp(lsp.lgamma_p.bind(x)))
    # Poles: +-inf at zero (by the sign of zero), NaN at the negative integers (as SciPy).
    neg_int = fnp.logical_and(fnp.less(x, 0.0), fnp.equal(x, fnp.floor(x)))
    zero = fnp.equal(x, 0.0)
    pole_zero = fnp.where(fnp.signbit(x), -np.inf, np.inf).astype(x.dtype)
    return fnp.where(neg_int, np.nan, fnp.where(zero, pole_zero, out))


def betaln(a, b):
    """``log |B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b)``.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.betaln(1.0, 2.0)  # log(1/2)
        Array(-0.6931472, dtype=float32)
    """
    a, b = _float_operands("betaln", a, b)
    return lsp.lgamma_p.bind(a) + lsp.lgamma_p.bind(b) - lsp.lgamma_p.bind(a + b)


def digamma(x):
    """The digamma function ``psi(x) = d/dx gammaln(x)`` (``-inf`` at +0, NaN at -1, -2, ...).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.digamma(1.0)  # -euler_gamma
        Array(-0.5772157, dtype=float32)
    """
    return lsp.digamma_p.bind(_real(x, "digamma"))


psi = digamma


def polygamma(n, x):
    """The polygamma function ``psi^(n)(x)``, the n-th derivative of :func:`digamma`.

    ``n`` holds non-negative integers and must be concrete (not traced); it broadcasts with
    ``x``. The result is differentiable in ``x`` to any order.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.polygamma(1, 1.0)  # pi^2 / 6
        Array(1.644934, dtype=float32)
    """
    return lsp.polygamma(n, _real(x, "polygamma"))


def gammainc(a, x):
    """Regularised lower incomplete gamma function ``P(a, x)`` (differentiable in ``x``).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.gammainc(1.0, 1.0)  # 1 - exp(-1)
        Array(0.63212055, dtype=float32)
    """
    a, x = _float_operands("gammainc", a, x)
    return lsp.igamma_p.bind(a, x)


def gammaincc(a, x):
    """Regularised upper incomplete gamma function ``Q(a, x) = 1 - P(a, x)`` (differentiable in ``x``).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.gammaincc(1.0, 1.0)  # exp(-1)
        Array(0.36787945, dtype=float32)
    """
    a, x = _float_operands("gammaincc", a, x)
    return lsp.igammac_p.bind(a, x)


# -- logistic --------------------------------------------------------------------------------------


def expit(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))``, stable in both tails.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.expit(0.0)
        Array(0.5, dtype=float32)
    """
    return lx.logistic_p.bind(_real(x, "expit"))


def log_expit(x):
    """``log(expit(x)) = -log1p(exp(-x))``, stable for large ``|x|``.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.log_expit(0.0)
        Array(-0.6931472, dtype=float32)
    """
    x = _real(x, "log_expit")
    return fnp.negative(fnp.logaddexp(0.0, fnp.negative(x)))


def logit(p):
    """The inverse of :func:`expit`: ``log(p / (1 - p))`` (``-inf`` at 0, ``+inf`` at 1).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.logit(0.5)
        Array(0., dtype=float32)
    """
    return _logit(_real(p, "logit"))


@custom_jvp
def _logit(p):
    return fnp.log(fnp.true_divide(p, fnp.subtract(1.0, p)))


@_logit.defjvp
def _logit_jvp(primals, tangents):
    # 1 / (p (1 - p)) directly: the chain rule through log(p / (1 - p)) gives 0 * inf = NaN at p = 0.
    (p,), (t,) = primals, tangents
    return _logit(p), fnp.true_divide(t, fnp.multiply(p, fnp.subtract(1.0, p)))


# -- x log y ----------------------------------------------------------------------------------------


@custom_jvp
def _xlogy(x, y):
    return fnp.where(fnp.not_equal(x, 0.0), fnp.multiply(x, fnp.log(y)), fnp.zeros_like(x))


@_xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    # JAX's rule: the tangent formula is used everywhere, so d/dx at x = 0 is log(y).
    (x, y), (tx, ty) = primals, tangents
    return _xlogy(x, y), fnp.add(fnp.multiply(tx, fnp.log(y)), fnp.true_divide(fnp.multiply(ty, x), y))


def xlogy(x, y):
    """``x * log(y)``, defined as 0 where ``x == 0`` (even for ``y == 0``).

    The derivative follows JAX: ``d/dx = log(y)`` and ``d/dy = x / y`` everywhere (so the
    gradient in ``x`` at ``x = 0, y > 0`` is finite).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.xlogy(0.0, 0.0)
        Array(0., dtype=float32)
    """
    x, y = _float_operands("xlogy", x, y)
    return _xlogy(x, y)


@custom_jvp
def _xlog1py(x, y):
    return fnp.where(fnp.not_equal(x, 0.0), fnp.multiply(x, fnp.log1p(y)), fnp.zeros_like(x))


@_xlog1py.defjvp
def _xlog1py_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return _xlog1py(x, y), fnp.add(
        fnp.multiply(tx, fnp.log1p(y)), fnp.true_divide(fnp.multiply(ty, x), fnp.add(y, 1.0))
    )


def xlog1py(x, y):
    """``x * log1p(y)``, defined as 0 where ``x == 0`` (even for ``y == -1``).

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.xlog1py(0.0, -1.0)
        Array(0., dtype=float32)
    """
    x, y = _float_operands("xlog1py", x, y)
    return _xlog1py(x, y)


@custom_jvp
def _xlogx(x):
    return _xlogy(x, x)


@_xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _xlogx(x), fnp.multiply(t, fnp.add(fnp.log(x), 1.0))


def entr(x):
    """Elementwise entropy ``-x log x`` for ``x > 0``, 0 at 0 and ``-inf`` for ``x < 0``.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.entr(1.0)
        Array(-0., dtype=float32)
    """
    x = _real(x, "entr")
    return fnp.where(fnp.less(x, 0.0), -np.inf, fnp.negative(_xlogx(x)))


def rel_entr(x, y):
    """Elementwise relative entropy: ``x log(x / y)`` for ``x, y > 0``, 0 for ``x == 0, y >= 0``,
    ``+inf`` otherwise.

    Example:
        >>> import funcgrad.scipy.special as fsp
        >>> fsp.rel_entr(1.0, 1.0)
        Array(0., dtype=float32)
    """
    x, y = _float_operands("rel_entr", x, y)
    both_pos = fnp.logical_and(fnp.greater(x, 0.0), fnp.greater(y, 0.0))
    safe_x = fnp.where(both_pos, x, 1.0)
    safe_y = fnp.where(both_pos, y, 1.0)
    inner = fnp.multiply(safe_x, fnp.log(fnp.true_divide(safe_x, safe_y)))
    zero = fnp.logical_and(fnp.equal(x, 0.0), fnp.greater_equal(y, 0.0))
    return fnp.where(both_pos, inner, fnp.where(zero, 0.0, np.inf))


# -- log-sum-exp and softmax ------------------------------------------------------------------------


def _stable_max(x, axes):
    """The max over ``axes`` (keepdims), with non-finite maxima replaced by 0 and no gradient."""
    amax = fnp.max(x, axis=axes, keepdims=True, initial=-np.inf)
    return lx.stop_gradient(fnp.where(fnp.isfinite(amax), amax, 0.0))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a), axis))`` without overflow, as ``scipy.special.logsumexp``.

    Args:
        a: the input array.
        axis: an int, a tuple of ints or None (all axes).
        b: optional scaling factors, broadcast against ``a`` (may be negative).
        keepdims: keep the reduced axes as size 1.
        return_sign: also return the sign of the sum; the result is then ``log|sum|``.

    Returns:
        The log of the (absolute) sum, and its sign when ``return_sign`` is true. With ``b``
        and a negative sum (and ``return_sign=False``) the result is NaN. Entries equal to
        ``-inf`` contribute nothing and get a zero gradient; an all ``-inf`` slice gives
        ``-inf`` (and NaN gradients, as in JAX).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.scipy.special as fsp
        >>> fsp.logsumexp(fnp.array([0.0, 0.0]))
        Array(0.6931472, dtype=float32)
    """
    if b is not None:
        a, b = _float_operands("logsumexp", a, b)
        a = fnp.where(fnp.not_equal(b, 0.0), a, -np.inf)  # zero weights drop out, even against +inf
    else:
        a = _real(a, "logsumexp")
    axes = canonical_axes(axis, a.ndim, "logsumexp")
    amax = _stable_max(a, axes)
    exp_a = fnp.exp(fnp.subtract(a, amax))
    if b is not None:
        exp_a = fnp.multiply(exp_a, b)
    sumexp = fnp.sum(exp_a, axis=axes, keepdims=keepdims)
    sign = fnp.sign(sumexp)
    shift = amax if keepdims else fnp.reshape(amax, sumexp.shape)
    out = fnp.add(fnp.log(fnp.abs(sumexp)), shift)
    if return_sign:
        return out, sign
    if b is not None:
        out = fnp.where(fnp.less(sign, 0.0), np.nan, out)
    return out


def softmax(x, axis=None):
    """``exp(x) / sum(exp(x), axis)``, computed stably (SciPy's default ``axis=None`` is all axes).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.scipy.special as fsp
        >>> fsp.softmax(fnp.array([0.0, 0.0]))
        Array([0.5, 0.5], dtype=float32)
    """
    x = _real(x, "softmax")
    axes = canonical_axes(axis, x.ndim, "softmax")
    unnormalized = fnp.exp(fnp.subtract(x, _stable_max(x, axes)))
    return fnp.true_divide(unnormalized, fnp.sum(unnormalized, axis=axes, keepdims=True))


def log_softmax(x, axis=None):
    """``x - logsumexp(x, axis)``, computed stably (SciPy's default ``axis=None`` is all axes).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.scipy.special as fsp
        >>> fsp.log_softmax(fnp.array([0.0, 0.0]))
        Array([-0.6931472, -0.6931472], dtype=float32)
    """
    x = _real(x, "log_softmax")
    axes = canonical_axes(axis, x.ndim, "log_softmax")
    shifted = fnp.subtract(x, _stable_max(x, axes))
    return fnp.subtract(shifted, fnp.log(fnp.sum(fnp.exp(shifted), axis=axes, keepdims=True)))
