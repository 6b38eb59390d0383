"""Special functions as elementwise primitives: ``erf, erfc, erf_inv, lgamma, digamma, polygamma,
igamma, igammac`` (and ``erfcx`` for scaled tails).

NumPy has none of these and SciPy is not a dependency, so the kernels are vectorised NumPy
ports of the classic algorithms, evaluated in float64 and rounded to the input dtype (so
float32, float16 and bfloat16 results are correctly rounded or within an ulp):

* ``erf``/``erfc``/``erfcx``: W. J. Cody's rational Chebyshev approximations (CALERF, 1969/1985),
  with his split of ``x*x`` so ``exp(-x*x)`` keeps full relative accuracy in the far tail.
* ``erf_inv``: M. Giles' approximation ("Approximating the erfinv function", 2010) refined by
  Halley steps on ``erf`` for ``|x| <= 1/2`` and Newton steps on ``log(erfc)`` above, where
  ``1 - |x|`` is exact (full accuracy up to ``1 - ulp``).
* ``lgamma``: a Taylor series of ``lgamma(2 + z)`` on ``[1.5, 2.5)`` (relatively accurate at
  the zeros 1 and 2), the recurrence below 10, Stirling's series above, reflection below 0.
* ``digamma``: the derivative of that Taylor series with the same recurrence below 10, the
  asymptotic series above, a Taylor series around its positive root, reflection below 0.
* ``polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x)`` with the Hurwitz zeta function from the
  Euler-Maclaurin formula; below 0 by differentiating the reflection formula ``n`` times.
* ``igamma``/``igammac`` (regularised incomplete gamma P and Q): series / continued fraction
  (about 1e-12 relative for large ``a``, where ``a log x`` rounds); differentiable in ``x``
  only (the derivative in ``a`` raises ``NotImplementedError``).

Derivatives are written with other primitives, so every order exists:
``erf' = 2/sqrt(pi) exp(-x^2)``, ``erf_inv' = sqrt(pi)/2 exp(erf_inv(x)^2)``,
``lgamma' = digamma``, ``digamma' = polygamma(1, .)``, ``polygamma(n)' = polygamma(n + 1)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.array import as_array, wrap_ndarray
from ..core.dtypes import is_floating
from ..core.errors import ConcretizationError, InvalidArgumentError, InvalidValueError, ShapeError
from ..core.trace import Tracer
from ..transforms.jvp import defjvp
from ._family import CALL_IMPL, elementwise
from .elementwise import _lax_operands, exp, log, mul, neg, scalar_like, select, sub
from .shape import broadcast_in_dim

_SQRT_PI = math.sqrt(math.pi)
_EULER = 0.5772156649015329


def _float64_kernel(fn):
    """Run a float64 kernel and round to the input dtype (float16/bfloat16/float32 gain accuracy)."""

    def impl(*args, **params):
        dtype = args[0].dtype
        with np.errstate(all="ignore"):
            out = fn(*(np.asarray(a, np.float64) for a in args), **params)
        return np.asarray(out).astype(dtype, copy=False)

    impl.__name__ = fn.__name__
    return impl


def _horner(coeffs, x):
    """``coeffs[0] + coeffs[1] x + ...`` (coefficients in increasing order)."""
    acc = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc = acc * x + c
    return acc


# -- erf / erfc / erfcx: Cody's CALERF ---------------------------------------------------------

_ERF_A = (
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_ERF_C = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
)
_ERF_D = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
_ERF_P = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_ERF_Q = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)
_THRESH = 0.46875


def _exp_neg_sq(y):
    """``exp(-y*y)`` accurate to a few ulps even where ``y*y`` is large: y = hi + lo with hi a
    multiple of 1/16, so ``hi*hi`` is exact and the rounding of ``y*y`` never reaches the exponent."""
    hi = np.trunc(y * 16.0) / 16.0
    return np.exp(-hi * hi) * np.exp(-(y - hi) * (y + hi))


def _erf_small(x):
    """erf(x) for |x| <= 0.46875."""
    z = x * x
    num, den = _ERF_A[4] * z, z
    for i in range(3):
        num = (num + _ERF_A[i]) * z
        den = (den + _ERF_B[i]) * z
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _erfcx_pos(y):
    """``exp(y*y) erfc(y)`` for y > 0.46875 (the scaled tail; no exponential involved)."""
    mid = y <= 4.0
    ym = np.where(mid, y, 1.0)
    num, den = _ERF_C[8] * ym, ym
    for i in range(7):
        num = (num + _ERF_C[i]) * ym
        den = (den + _ERF_D[i]) * ym
    r_mid = (num + _ERF_C[7]) / (den + _ERF_D[7])
    yt = np.where(mid, 5.0, y)
    z = 1.0 / (yt * yt)
    num, den = _ERF_P[5] * z, z
    for i in range(4):
        num = (num + _ERF_P[i]) * z
        den = (den + _ERF_Q[i]) * z
    r_tail = (1.0 / _SQRT_PI - z * (num + _ERF_P[4]) / (den + _ERF_Q[4])) / yt
    return np.where(mid, r_mid, r_tail)


def _erfc_pos(y):
    """erfc(y) for y > 0.46875."""
    big = y >= 26.65  # erfc underflows to 0 (and exp(y*y) would overflow)
    ys = np.where(big, 1.0, y)
    return np.where(big, 0.0, _exp_neg_sq(ys) * _erfcx_pos(ys))


def erf_kernel(x):
    ax = np.abs(x)
    small = ax <= _THRESH
    r_small = _erf_small(np.where(small, x, 0.0))
    large = np.where(small, 1.0, ax)
    r_large = np.copysign(1.0 - _erfc_pos(large), x)  # (0.5 - erfc) + 0.5 in Cody: same rounding
    return np.where(small, r_small, np.where(np.isnan(x), x, r_large))


def erfc_kernel(x):
    ax = np.abs(x)
    small = ax <= _THRESH
    r_small = 1.0 - _erf_small(np.where(small, x, 0.0))
    tail = _erfc_pos(np.where(small, 1.0, ax))
    r_large = np.where(x < 0, 2.0 - tail, tail)
    return np.where(small, r_small, np.where(np.isnan(x), x, r_large))


def erfcx_kernel(x):
    ax = np.abs(x)
    small = ax <= _THRESH
    xs = np.where(small, x, 0.0)
    r_small = np.exp(xs * xs) * (1.0 - _erf_small(xs))
    huge = ax >= 6.71e7  # Cody's XHUGE: 1/sqrt(pi)/y is exact to double precision
    tail = np.where(huge, 1.0 / (_SQRT_PI * np.where(huge, ax, 1.0)), _erfcx_pos(np.where(small | huge, 1.0, ax)))
    # Negative x: erfcx(x) = 2 exp(x*x) - erfcx(-x), with exp(x*x) split as in _exp_neg_sq.
    xn = np.where(x < 0, np.maximum(x, -26.7), 0.0)
    hi = np.trunc(xn * 16.0) / 16.0
    e2 = np.exp(hi * hi) * np.exp((xn - hi) * (xn + hi))
    neg = np.where(x < -26.7, np.inf, 2.0 * e2 - tail)
    r_large = np.where(x < 0, neg, tail)
    return np.where(small, r_small, np.where(np.isnan(x), x, r_large))


# -- erf_inv: Giles + Halley -----------------------------------------------------------------------

_GILES_CENTRAL = (
    1.50140941,
    0.246640727,
    -0.00417768164,
    -0.00125372503,
    0.00021858087,
    -4.39150654e-06,
    -3.5233877e-06,
    3.43273939e-07,
    2.81022636e-08,
)
_GILES_TAIL = (
    2.83297682,
    1.00167406,
    0.00943887047,
    -0.0076224613,
    0.00573950773,
    -0.00367342844,
    0.00134934322,
    0.000100950558,
    -0.000200214257,
)


def erf_inv_kernel(x):
    shape = np.shape(x)
    x = np.atleast_1d(x)
    a = np.abs(x)
    inside = a < 1.0
    a_in = np.where(inside, a, 0.0)
    w = -np.log((1.0 - a_in) * (1.0 + a_in))
    central = w < 5.0
    y = a_in * np.where(central, _horner(_GILES_CENTRAL, w - 2.5), _horner(_GILES_TAIL, np.sqrt(w) - 3.0))
    # Refine to float64 (each branch on its own elements only). For a <= 1/2: Halley on
    # erf(y) - a; Giles' guess is good to ~1e-7, so two cubic steps reach full accuracy.
    lower = a_in <= 0.5
    yl, al = y[lower], a_in[lower]
    for _ in range(2):
        u = (erf_kernel(yl) - al) / (2.0 / _SQRT_PI * _exp_neg_sq(yl))
        yl = yl - u / (1.0 + yl * u)
    y[lower] = yl
    # For a > 1/2: Newton on log(erfc(y)) - log(1 - a), where 1 - a is exact and log(erfc) is
    # nearly quadratic, so four steps reach full relative accuracy even from the far-tail guess
    # (a = 1 - ulp, where Giles' single-precision fit is extrapolated).
    upper = ~lower
    yu, log_tail = y[upper], np.log(1.0 - a_in[upper])
    for _ in range(4):
        yu = yu + (np.log(erfc_kernel(yu)) - log_tail) * (_SQRT_PI / 2.0) * erfcx_kernel(yu)
    y[upper] = yu
    y = np.where(a_in == 0.0, 0.0, y)
    out = np.where(inside, y, np.where(a == 1.0, np.inf, np.nan))
    return np.copysign(out, x).reshape(shape)


# -- lgamma ------------------------------------------------------------------------------------------

# B_2, B_4, ..., B_26 (Bernoulli numbers).
_BERNOULLI = (
    1 / 6,
    -1 / 30,
    1 / 42,
    -1 / 30,
    5 / 66,
    -691 / 2730,
    7 / 6,
    -3617 / 510,
    43867 / 798,
    -174611 / 330,
    854513 / 138,
    -236364091 / 2730,
    8553103 / 6,
)


def hurwitz_zeta_kernel(s: float, a):
    """Hurwitz zeta ``sum_k (a + k)^-s`` for a static ``s > 1`` and ``a > 0`` (float64 arrays).

    Euler-Maclaurin: the terms are summed directly until ``a + k >= s + 10``, then the tail is
    an integral plus 12 Bernoulli corrections; the remainder is below 1e-19 relative for every
    ``s`` because the shift grows with ``s``.
    """
    a = np.asarray(a, np.float64)
    thr = s + 10.0
    total = np.zeros_like(a)
    b = a.copy()
    finite = a[np.isfinite(a)]
    steps = int(math.ceil(thr - finite.min())) if finite.size else 0
    for _ in range(max(steps, 0)):
        m = b < thr
        total = total + np.where(m, b**-s, 0.0)
        b = np.where(m, b + 1.0, b)
    bs = b**-s
    tail = b ** (1.0 - s) / (s - 1.0) + 0.5 * bs
    inv_b2 = 1.0 / (b * b)
    p = bs / b
    rising, fact = s, 2.0
    corr = np.zeros_like(a)
    for j, b2j in enumerate(_BERNOULLI[:12], start=1):
        corr = corr + (b2j / fact * rising) * p
        rising *= (s + 2 * j - 1) * (s + 2 * j)
        fact *= (2 * j + 1) * (2 * j + 2)
        p = p * inv_b2
    return total + (tail + corr)


# lgamma(2 + z) = (1 - gamma) z + sum_{k>=2} (-1)^k (zeta(k) - 1) / k z^k, |z| <= 1/2.
_LGAMMA2 = [0.0, 1.0 - _EULER] + [
    (-1) ** k * float(hurwitz_zeta_kernel(float(k), np.array(2.0))) / k for k in range(2, 32)
]
_STIRLING = [b / (2 * k * (2 * k - 1)) for k, b in enumerate(_BERNOULLI[:9], start=1)]
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_PI = math.log(math.pi)


def _sin_pi_abs(x):
    """|sin(pi x)| with exact argument reduction (x - round(x) is exact in floating point)."""
    r = x - np.round(x)
    return np.abs(np.sin(np.pi * r))


def _lgamma_pos(x):
    """log Gamma(x) for x >= 0 (also -0.0)."""
    # Regions: [0, .5), [.5, 1.5), [1.5, 2.5), [2.5, 10), [10, inf].
    a = x < 0.5
    b = (x >= 0.5) & (x < 1.5)
    c = (x >= 1.5) & (x < 10.0)
    d = ~(a | b | c)
    xa = np.where(a, x, 0.25)
    out = np.where(a, _horner(_LGAMMA2, xa) - np.log1p(xa) - np.log(xa), 0.0)
    xb = np.where(b, x, 1.0)
    out = np.where(b, _horner(_LGAMMA2, xb - 1.0) - np.log(xb), out)
    # [1.5, 10): step down to [1.5, 2.5) while collecting log of the product (all factors > 1/2).
    xc = np.where(c, x, 2.0)
    prod = np.ones_like(xc)
    for _ in range(8):
        m = xc >= 2.5
        xc = np.where(m, xc - 1.0, xc)
        prod = np.where(m, prod * xc, prod)
    out = np.where(c, _horner(_LGAMMA2, xc - 2.0) + np.log(prod), out)
    xd = np.where(d, x, 10.0)
    inv = 1.0 / xd
    series = inv * _horner(_STIRLING, inv * inv)
    out = np.where(d, (xd - 0.5) * np.log(xd) - xd + _HALF_LOG_2PI + series, out)
    return np.where(np.isnan(x) | (x == np.inf), x, out)


def lgamma_kernel(x):
    neg = x < 0
    pos = _lgamma_pos(np.where(neg, 1.0 - x, x))
    # Reflection: log|Gamma(x)| = log(pi / |sin(pi x)|) - log Gamma(1 - x); inf at the poles.
    refl = _LOG_PI - np.log(_sin_pi_abs(np.where(neg, x, 0.5))) - pos
    out = np.where(neg, refl, pos)
    return np.where(x == -np.inf, -np.inf, out)  # as SciPy's gammaln


# -- digamma ---------------------------------------------------------------------------------------

_DIGAMMA_ROOT_HI = 1.4616321449683622
_DIGAMMA_ROOT_LO = 9.549995429965697e-17
# psi(x0 + d) = sum_{k>=1} psi^(k)(x0) / k! d^k, and psi^(k)(x0)/k! = (-1)^(k+1) zeta(k+1, x0).
_DIGAMMA_ROOT_SERIES = [0.0] + [
    (-1) ** (k + 1) * float(hurwitz_zeta_kernel(float(k + 1), np.array(_DIGAMMA_ROOT_HI))) for k in range(1, 22)
]
_DIGAMMA_ASYM = [b / (2 * k) for k, b in enumerate(_BERNOULLI[:8], start=1)]
_DIGAMMA2 = [k * c for k, c in enumerate(_LGAMMA2)][1:]  # psi(2 + z) = d/dz lgamma(2 + z)


def _digamma_pos(x):
    """psi(x) for x >= 0 (and -0.0, where it is +inf as the limit from the left).

    The same regions as :func:`_lgamma_pos`, using the derivative of the Taylor series of
    lgamma(2 + z); the recurrence steps down (adding positive terms) rather than up, so there
    is no cancellation except near the root, which :func:`digamma_kernel` handles.
    """
    a = x < 0.5
    b = (x >= 0.5) & (x < 1.5)
    c = (x >= 1.5) & (x < 10.0)
    d = ~(a | b | c)
    xa = np.where(a, x, 0.25)
    out = np.where(a, _horner(_DIGAMMA2, xa) - 1.0 / (xa + 1.0) - 1.0 / xa, 0.0)
    xb = np.where(b, x, 1.0)
    out = np.where(b, _horner(_DIGAMMA2, xb - 1.0) - 1.0 / xb, out)
    xc = np.where(c, x, 2.0)
    acc = np.zeros_like(xc)
    for _ in range(8):
        m = xc >= 2.5
        xc = np.where(m, xc - 1.0, xc)
        acc = np.where(m, acc + 1.0 / xc, acc)
    out = np.where(c, _horner(_DIGAMMA2, xc - 2.0) + acc, out)
    xd = np.where(d, x, 10.0)
    inv2 = 1.0 / (xd * xd)
    out = np.where(d, np.log(xd) - 0.5 / xd - inv2 * _horner(_DIGAMMA_ASYM, inv2), out)
    return np.where(np.isnan(x) | (x == np.inf), x, out)


def digamma_kernel(x):
    neg = x < 0
    pos = _digamma_pos(np.where(neg, 1.0 - x, x))
    # Near the positive root psi(x0) = 0 the recurrence cancels: use the Taylor series there.
    near = np.abs(x - _DIGAMMA_ROOT_HI) < 0.2
    d = (np.where(near, x, _DIGAMMA_ROOT_HI) - _DIGAMMA_ROOT_HI) - _DIGAMMA_ROOT_LO
    pos = np.where(near, _horner(_DIGAMMA_ROOT_SERIES, d), pos)
    xn = np.where(neg, x, 0.5)
    r = xn - np.round(xn)
    refl = pos - np.pi / np.tan(np.pi * r)
    out = np.where(neg, np.where(r == 0.0, np.nan, refl), pos)
    return np.where(x == -np.inf, np.nan, out)


# -- polygamma ---------------------------------------------------------------------------------------


def _cot_derivative_poly(n):
    """Coefficients (increasing order) of P_n with d^n/du^n cot(u) = P_n(cot u)."""
    p = np.array([0.0, 1.0])
    for _ in range(n):
        dp = np.polynomial.polynomial.polyder(p)
        p = -np.polynomial.polynomial.polymul([1.0, 0.0, 1.0], dp)
    return p


def polygamma_kernel(x, n):
    if n == 0:
        return digamma_kernel(x)
    neg = x < 0
    y = np.where(neg, 1.0 - x, x) + 0.0  # -0.0 -> +0.0: the pole value's sign follows SciPy
    sign = 1.0 if n % 2 else -1.0
    pos = sign * math.factorial(n) * hurwitz_zeta_kernel(float(n + 1), y)
    # n-th derivative of psi(1 - x) - psi(x) = pi cot(pi x):
    # psi^(n)(x) = (-1)^n psi^(n)(1 - x) - pi^(n+1) P_n(cot(pi x)).
    xn = np.where(neg, x, 0.5)
    r = xn - np.round(xn)
    cot = 1.0 / np.tan(np.pi * r)
    refl = (-1.0) ** n * pos - np.pi ** (n + 1) * _horner(list(_cot_derivative_poly(n)), cot)
    pole = sign * np.inf  # zeta(n + 1, -k) is infinite at the poles 0, -1, -2, ...
    out = np.where(neg, np.where(r == 0.0, pole, refl), pos)
    return np.where(x == -np.inf, pole, out)  # as SciPy


# -- regularised incomplete gamma ----------------------------------------------------------------


def _igamma_parts(a, x):
    """(P, Q) by the series (x < a + 1) and Lentz's continued fraction (elsewhere)."""
    a = np.asarray(a, np.float64)
    x = np.asarray(x, np.float64)
    a, x = np.broadcast_arrays(a, x)
    valid = (a > 0) & (x >= 0) & np.isfinite(a)
    aa = np.where(valid, a, 1.0)
    xx = np.where(valid & np.isfinite(x), x, 1.0)
    log_pref = aa * np.log(np.where(xx > 0, xx, 1.0)) - xx - lgamma_kernel(aa)
    use_series = xx < aa + 1.0
    # Series: P = x^a e^-x / Gamma(a + 1) * sum_k x^k / ((a+1)...(a+k)).
    term = 1.0 / aa
    total = term.copy()
    ap = aa.copy()
    for _ in range(2000):
        ap = ap + 1.0
        term = term * xx / ap
        total = total + term
        if np.all((np.abs(term) <= np.abs(total) * 1e-17)[use_series]):
            break
    p_series = np.where(xx > 0, total * np.exp(log_pref), 0.0)
    # Continued fraction for Q (modified Lentz).
    tiny = 1e-300
    b = xx + 1.0 - aa
    c = np.full_like(b, 1.0 / tiny)
    d = 1.0 / np.where(b == 0, tiny, b)
    h = d.copy()
    for i in range(1, 2000):
        an = -i * (i - aa)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = b + an / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        delta = d * c
        h = h * delta
        if np.all(np.abs(delta - 1.0)[~use_series] <= 1e-16):
            break
    q_cf = np.exp(log_pref) * h
    p = np.where(use_series, p_series, 1.0 - q_cf)
    q = np.where(use_series, 1.0 - p_series, q_cf)
    p = np.where(x == np.inf, 1.0, p)
    q = np.where(x == np.inf, 0.0, q)
    # JAX/SciPy conventions at the edges: a == 0 gives P = 1 (for x > 0); invalid input is NaN.
    edge = (a == 0) & (x > 0)
    p = np.where(edge, 1.0, np.where(valid, p, np.nan))
    q = np.where(edge, 0.0, np.where(valid, q, np.nan))
    return p, q


def igamma_kernel(a, x):
    return _igamma_parts(a, x)[0]


def igammac_kernel(a, x):
    return _igamma_parts(a, x)[1]


# -- primitives ------------------------------------------------------------------------------------


def _float_only(dtype):
    return is_floating(dtype)


def _special(name, kernel, nin=1, lower=CALL_IMPL):
    # jit lowering: a scalar template where numba has the function (float32 goes through
    # float64 libm, or the vectorizable fastmath erf), else a call of the NumPy kernel.
    return elementwise(name, _float64_kernel(kernel), nin=nin, accepts=_float_only, lower=lower)


erf_p = _special("erf", erf_kernel, lower={"f4": "fm.erf_f32({0})", "f8": "math.erf({0})"})
erfc_p = _special("erfc", erfc_kernel, lower={"f4": "math.erfc(np.float64({0}))", "f8": "math.erfc({0})"})
erfcx_p = _special("erfcx", erfcx_kernel)
erf_inv_p = _special("erf_inv", erf_inv_kernel)
lgamma_p = _special("lgamma", lgamma_kernel, lower={"f4": "math.lgamma(np.float64({0}))", "f8": "math.lgamma({0})"})
digamma_p = _special("digamma", digamma_kernel)
polygamma_p = _special("polygamma", polygamma_kernel)
igamma_p = _special("igamma", igamma_kernel, nin=2)
igammac_p = _special("igammac", igammac_kernel, nin=2)


def _gauss(x):
    """2/sqrt(pi) exp(-x^2): the derivative of erf."""
    return mul(scalar_like(x, 2.0 / _SQRT_PI), exp(neg(mul(x, x))))


defjvp(erf_p, lambda t, ans, x: mul(t, _gauss(x)))
defjvp(erfc_p, lambda t, ans, x: neg(mul(t, _gauss(x))))
# erfcx' = 2 x erfcx(x) - 2/sqrt(pi)
defjvp(erfcx_p, lambda t, ans, x: mul(t, sub(mul(scalar_like(x, 2.0), mul(x, ans)), scalar_like(x, 2.0 / _SQRT_PI))))
defjvp(erf_inv_p, lambda t, ans, x: mul(t, mul(scalar_like(x, _SQRT_PI / 2.0), exp(mul(ans, ans)))))
defjvp(lgamma_p, lambda t, ans, x: mul(t, digamma(x)))
defjvp(digamma_p, lambda t, ans, x: mul(t, polygamma_p.bind(x, n=1)))
defjvp(polygamma_p, lambda t, ans, x, n: mul(t, polygamma_p.bind(x, n=n + 1)))


def _igamma_dx(a, x):
    """d/dx P(a, x) = x^(a-1) e^(-x) / Gamma(a)."""
    return exp(sub(sub(mul(sub(a, scalar_like(a, 1.0)), log(x)), x), lgamma(a)))


def _no_grad_a(name):
    def rule(t, ans, a, x):
        raise NotImplementedError(
            f"lax.{name}: the derivative with respect to the shape parameter a is not "
            "implemented (only with respect to x); wrap a in fg.stop_gradient"
        )

    return rule


defjvp(igamma_p, _no_grad_a("igamma"), lambda t, ans, a, x: mul(t, _igamma_dx(a, x)))
defjvp(igammac_p, _no_grad_a("igammac"), lambda t, ans, a, x: neg(mul(t, _igamma_dx(a, x))))


# -- public lax functions ----------------------------------------------------------------------------


def _operand(x, name):
    x = as_array(x, f"lax.{name}")
    if not is_floating(x.dtype):
        raise InvalidArgumentError(
            f"lax.{name}: expected a floating-point operand, got dtype {x.dtype.name} "
            f"(shape {x.shape}); cast it first, e.g. x.astype('float32')"
        )
    return x


def erf(x):
    """Error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt`` (lax primitive).

    Example:
        >>> from funcgrad import lax
        >>> lax.erf(0.5)
        Array(0.5204999, dtype=float32)
    """
    return erf_p.bind(_operand(x, "erf"))


def erfc(x):
    """Complementary error function ``1 - erf(x)``, accurate in the tail where ``erf(x)`` rounds to 1.

    Example:
        >>> from funcgrad import lax
        >>> float(lax.erfc(10.0)) > 0
        True
    """
    return erfc_p.bind(_operand(x, "erfc"))


def erfcx(x):
    """Scaled complementary error function ``exp(x^2) * erfc(x)`` (no overflow or underflow for large x).

    Example:
        >>> from funcgrad import lax
        >>> lax.erfcx(0.0)
        Array(1., dtype=float32)
    """
    return erfcx_p.bind(_operand(x, "erfcx"))


def erf_inv(x):
    """Inverse error function on ``(-1, 1)`` (``+-inf`` at ``+-1``, NaN outside).

    Example:
        >>> from funcgrad import lax
        >>> lax.erf_inv(lax.erf(0.3))
        Array(0.3, dtype=float32)
    """
    return erf_inv_p.bind(_operand(x, "erf_inv"))


def lgamma(x):
    """``log |Gamma(x)|`` (``+inf`` at the poles 0, -1, -2, ...). Its derivative is :func:`digamma`.

    Example:
        >>> from funcgrad import lax
        >>> lax.lgamma(5.0)  # log(4!)
        Array(3.1780539, dtype=float32)
    """
    return lgamma_p.bind(_operand(x, "lgamma"))


def digamma(x):
    """The digamma function ``psi(x) = d/dx log Gamma(x)`` (NaN at the poles -1, -2, ...).

    Example:
        >>> from funcgrad import lax
        >>> lax.digamma(1.0)  # -euler_gamma
        Array(-0.5772157, dtype=float32)
    """
    return digamma_p.bind(_operand(x, "digamma"))


def _static_order(m, name):
    if isinstance(m, Tracer):
        try:
            m = m._concrete(f"lax.{name} order")
        except ConcretizationError:
            raise ConcretizationError(
                f"lax.{name}: the order m must be concrete (static) under jit/vmap; got a "
                f"traced value {m.aval.str_short()}"
            ) from None
    arr = np.asarray(m)
    if arr.dtype.kind not in "iuf" or not np.all(arr == np.round(arr)) or np.any(arr < 0):
        raise InvalidValueError(f"lax.{name}: the order m must hold non-negative integers, got {m!r}")
    return arr.astype(np.int64)


def polygamma(m, x):
    """The polygamma function ``psi^(m)(x)``, the m-th derivative of :func:`digamma` (m >= 0).

    ``m`` must be concrete (a Python int or a concrete integer array broadcastable with ``x``);
    the result is differentiable in ``x`` to any order.

    Example:
        >>> from funcgrad import lax
        >>> lax.polygamma(1, 1.0)  # pi^2 / 6
        Array(1.644934, dtype=float32)
    """
    x = _operand(x, "polygamma")
    orders = _static_order(m, "polygamma")
    if orders.ndim == 0:
        return polygamma_p.bind(x, n=int(orders))
    # An array of orders: one primitive per distinct order, merged with selects.
    try:
        shape = tuple(np.broadcast_shapes(orders.shape, x.shape))
    except ValueError:
        raise ShapeError(
            f"lax.polygamma: orders of shape {orders.shape} and x of shape {x.shape} do not broadcast together"
        ) from None
    xb = broadcast_in_dim(x, shape, tuple(range(len(shape) - x.ndim, len(shape))))
    ob = np.broadcast_to(orders, shape)
    out = None
    for k in np.unique(ob):
        val = polygamma_p.bind(xb, n=int(k))
        out = val if out is None else select(wrap_ndarray(ob == k), val, out)
    return out


def igamma(a, x):
    """Regularised lower incomplete gamma function ``P(a, x)`` (differentiable in ``x``).

    Example:
        >>> from funcgrad import lax
        >>> lax.igamma(1.0, 1.0)  # 1 - exp(-1)
        Array(0.63212055, dtype=float32)
    """
    a, x = _lax_operands(a, x)
    return igamma_p.bind(_operand(a, "igamma"), _operand(x, "igamma"))


def igammac(a, x):
    """Regularised upper incomplete gamma function ``Q(a, x) = 1 - P(a, x)`` (differentiable in ``x``).

    Example:
        >>> from funcgrad import lax
        >>> lax.igammac(1.0, 1.0)  # exp(-1)
        Array(0.36787945, dtype=float32)
    """
    a, x = _lax_operands(a, x)
    return igammac_p.bind(_operand(a, "igammac"), _operand(x, "igammac"))
