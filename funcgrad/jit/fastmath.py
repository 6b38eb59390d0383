"""Vectorizable math for jitted kernels: branch-free float32 approximations numba can inline.

numba lowers ``math.exp`` and friends to scalar libm calls, which stops LLVM's loop
vectorizer: a fused float32 kernel of ``tanh``/``exp``/``sin`` then runs several times slower
than NumPy's SIMD ufuncs. The functions here are straight-line code (selects instead of
branches, bit casts instead of ``ldexp``/``frexp``), so once inlined into a kernel's loop
LLVM vectorizes them. Accuracy (measured by ``tests/test_jit_fastmath.py`` against float64
NumPy over dense sweeps): at most 2 ulp, most within 1 ulp.

* ``exp``, ``log``, ``log1p``, ``expm1``, ``tanh``, ``logistic``: float32 arithmetic with
  Cephes-style range reduction (``x = n ln2 + r`` in two parts, exponent/mantissa split by bit
  casts) and minimax/Taylor polynomials.
* ``sin``, ``cos``: quadrant and reduced argument computed in float64 (a three-part pi/2, exact
  for ``|x| < 2**30``; above, Payne-Hanek with integer arithmetic on a window of the bits of
  2/pi), then Cephes' float32 polynomials.
* ``erf``, ``pow``: evaluated in float64 (Cody's rational erf with a polynomial ``exp``;
  ``exp(y log x)`` with float64 polynomials) and rounded once, because float32 alone cannot
  reach 2 ulp for them.

Float64 kernels do not use this module: they keep numba's accurate libm calls.
Everything is ``@njit(cache=True, forceinline=True)`` (LLVM inlines it into the kernels'
loops: numba's own ``inline="always"`` costs seconds of compile time per call site) and
written without ``and``/``or`` (numba turns them into branches, which can stop the vectorizer).
numba is imported here, so this module is imported only
when a kernel is compiled (``import funcgrad`` stays light).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_jit = njit(cache=True, nogil=True, error_model="numpy", forceinline=True)

# -- bit casts (the vectorizable replacements for ldexp/frexp) ---------------------------------


@intrinsic
def f32_bits(typingctx, x):
    """The bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def f32_from_bits(typingctx, n):
    """The float32 whose bits are the low 32 bits of the integer ``n``."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif v.type.width < 32:
            v = builder.zext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(n), codegen


@intrinsic
def f64_bits(typingctx, x):
    """The bits of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def f64_from_bits(typingctx, n):
    """The float64 whose bits are the integer ``n`` (sign- or zero-extended to 64 bits)."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type.width < 64:
            v = builder.sext(v, ir.IntType(64)) if n.signed else builder.zext(v, ir.IntType(64))
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(n), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``: one vector instruction on FMA hardware)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        name = "llvm.fma.f32" if isinstance(t, ir.FloatType) else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t, t]), name)
        return builder.call(fn, args)

    return a(a, a, a), codegen


@intrinsic
def radd(typingctx, a, b):
    """``a + b`` marked reassociable: the accumulation of a sum reduction, which LLVM may then
    split into vector partial sums. Only this add carries the flag (whole-kernel fastmath would
    also let LLVM undo the exact range reductions above)."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "nsz"))

    return a(a, a), codegen


def _minmax_intrinsic(op):
    def impl(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, sig, args):
            t = args[0].type
            name = f"llvm.{op}.{'f32' if isinstance(t, ir.FloatType) else 'f64'}"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]), name)
            return builder.call(fn, args)

        return a(a, a), codegen

    impl.__name__ = f"r{op[:3]}"
    return intrinsic(impl)


# NaN-propagating max/min (``llvm.maximum``/``llvm.minimum``, as NumPy's max/min): the
# accumulation of a max/min reduction, which LLVM vectorizes (a compare-and-select does not).
rmax = _minmax_intrinsic("maximum")
rmin = _minmax_intrinsic("minimum")


F32 = np.float32
F64 = np.float64
I32 = np.int32
I64 = np.int64

# Adding 1.5 * 2**23 (float32) or 1.5 * 2**52 (float64) rounds to the nearest integer, and that
# integer sits in the low mantissa bits: a branch-free rint that also yields the int.
_MAGIC32 = 12582912.0
_MAGIC32_BITS = 0x4B400000
_MAGIC64 = 6755399441055744.0
_MAGIC64_BITS = 0x4338000000000000


@intrinsic
def ldexp(typingctx, y, n):
    """``y * 2**n`` rounded once (``llvm.ldexp``: one ``vscalefps`` on AVX-512)."""
    if not (isinstance(y, types.Float) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        i32 = ir.IntType(32)
        k = args[1]
        if k.type.width > 32:
            k = builder.trunc(k, i32)
        elif k.type.width < 32:
            k = builder.sext(k, i32)
        name = "llvm.ldexp.f32.i32" if isinstance(t, ir.FloatType) else "llvm.ldexp.f64.i32"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, i32]), name)
        return builder.call(fn, [args[0], k])

    return y(y, n), codegen


def _host_has_avx512() -> bool:
    try:
        from llvmlite import binding

        return "+avx512f" in binding.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - unknown host
        return False


# Where the CPU scales by a power of two in one vector instruction, use it; elsewhere LLVM would
# expand llvm.ldexp into scalar libm calls, so build 2**n from its bits instead. (numba's
# on-disk cache is keyed by the CPU, so each host compiles its own variant.)
HAS_AVX512 = _host_has_avx512()

if HAS_AVX512:

    @_jit
    def _scale_f32(y, n):
        """``y * 2**n`` for ``-150 <= n <= 128``, rounded once."""
        return ldexp(y, n)
else:

    @_jit
    def _scale_f32(y, n):
        """``y * 2**n`` for ``-150 <= n <= 128`` in two exact steps (subnormal and overflowing
        results round once, at the second step)."""
        n1 = n >> 1
        n2 = n - n1
        y = y * f32_from_bits((n1 + 127) << 23)
        return y * f32_from_bits((n2 + 127) << 23)


# -- exp / expm1 -------------------------------------------------------------------------------


@_jit
def _exp_reduce_f32(x):
    """``x = n ln2 + r`` with ``|r| <= ln2/2``; x must already be clamped to [-104, 89]."""
    t = x * F32(1.44269504088896341) + F32(_MAGIC32)
    n = f32_bits(t) - I32(_MAGIC32_BITS)
    fn = t - F32(_MAGIC32)
    r = fma(-fn, F32(0.693359375), x)  # exact: fn * 0.693359375 has at most 17 bits
    r = fma(-fn, F32(-2.12194440e-4), r)
    return n, r


@_jit
def exp_f32(x):
    """Cephes ``expf``: degree-5 polynomial on ``[-ln2/2, ln2/2]``, then ``* 2**n``."""
    xc = x if x < F32(88.8) else F32(88.8)
    xc = xc if xc > F32(-104.0) else F32(-104.0)
    n, r = _exp_reduce_f32(xc)
    p = F32(1.9875691500e-4)
    p = fma(p, r, F32(1.3981999507e-3))
    p = fma(p, r, F32(8.3334519073e-3))
    p = fma(p, r, F32(4.1665795894e-2))
    p = fma(p, r, F32(1.6666665459e-1))
    p = fma(p, r, F32(5.0000001201e-1))
    y = fma(p, r * r, r) + F32(1.0)
    y = _scale_f32(y, n)
    return y if x == x else x


@_jit
def expm1_f32(x):
    """``exp(x) - 1`` accurate near 0: ``2**n (expm1(r) + 1) - 1`` with a Taylor expm1(r)."""
    xc = x if x < F32(88.8) else F32(88.8)
    xc = xc if xc > F32(-20.0) else F32(-20.0)  # expm1 is -1 in float32 below -17.3
    n, r = _exp_reduce_f32(xc)
    q = F32(1.0 / 5040.0)
    q = fma(q, r, F32(1.0 / 720.0))
    q = fma(q, r, F32(1.0 / 120.0))
    q = fma(q, r, F32(1.0 / 24.0))
    q = fma(q, r, F32(1.0 / 6.0))
    q = fma(q, r, F32(0.5))
    p = r + (r * r) * q  # expm1(r)
    ns = n if n < 25 else 25
    s = f32_from_bits((ns + 127) << 23)  # 2**n, exact for n <= 24
    small = s * p + (s - F32(1.0))
    large = _scale_f32(p + F32(1.0), n) - F32(1.0)
    y = small if n <= 24 else large
    return y if x == x else x


# -- log / log1p -------------------------------------------------------------------------------


@_jit
def _log_core_f32(u, c):
    """``log(u) + c`` for finite ``u > 0`` (c: a small correction added before rounding)."""
    sub = u < F32(1.17549435e-38)
    us = u * F32(8388608.0) if sub else u  # scale subnormals by 2**23
    bits = f32_bits(us)
    e = ((bits >> 23) & 0xFF) - 126 - (23 if sub else 0)
    m = f32_from_bits((bits & 0x007FFFFF) | 0x3F000000)  # in [0.5, 1)
    lo = m < F32(0.707106781186547524)
    e = e - 1 if lo else e
    f = (m + m - F32(1.0)) if lo else (m - F32(1.0))  # exact
    ef = F32(e)
    z = f * f
    p = F32(7.0376836292e-2)
    p = fma(p, f, -F32(1.1514610310e-1))
    p = fma(p, f, F32(1.1676998740e-1))
    p = fma(p, f, -F32(1.2420140846e-1))
    p = fma(p, f, F32(1.4249322787e-1))
    p = fma(p, f, -F32(1.6668057665e-1))
    p = fma(p, f, F32(2.0000714765e-1))
    p = fma(p, f, -F32(2.4999993993e-1))
    p = fma(p, f, F32(3.3333331174e-1))
    y = f * z * p
    y = y + ef * F32(-2.12194440e-4)
    y = y - F32(0.5) * z
    y = y + c
    return (f + y) + ef * F32(0.693359375)


@_jit
def log_f32(x):
    """Cephes ``logf``: ``x = m 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)), degree-8 polynomial."""
    xs = x if ((x > F32(0.0)) & (x < F32(np.inf))) else F32(1.0)
    y = _log_core_f32(xs, F32(0.0))
    y = F32(-np.inf) if x == F32(0.0) else y
    y = F32(np.nan) if x < F32(0.0) else y
    return x if ((x == F32(np.inf)) | (x != x)) else y


@_jit
def log1p_f32(x):
    """``log(1 + x)``: ``log(u)`` of ``u = fl(1 + x)`` plus the rounding error ``(x - (u - 1)) / u``."""
    u = x + F32(1.0)
    ok = (u > F32(0.0)) & (u < F32(np.inf))
    us = u if ok else F32(1.0)
    c = (x - (us - F32(1.0))) / us if ok else F32(0.0)
    y = _log_core_f32(us, c)
    y = F32(-np.inf) if u == F32(0.0) else y
    y = F32(np.nan) if x < F32(-1.0) else y
    return x if ((x == F32(np.inf)) | (x != x)) else y


# -- tanh / logistic ---------------------------------------------------------------------------


@_jit
def tanh_f32(x):
    """Cephes ``tanhf``: odd polynomial below 0.625, ``1 - 2 / (exp(2|x|) + 1)`` above."""
    ax = abs(x)
    z = x * x
    p = F32(-5.70498872745e-3)
    p = fma(p, z, F32(2.06390887954e-2))
    p = fma(p, z, -F32(5.37397155531e-2))
    p = fma(p, z, F32(1.33314422036e-1))
    p = fma(p, z, -F32(3.33332819422e-1))
    small = x + x * z * p
    a2 = ax + ax
    a2 = a2 if a2 < F32(40.0) else F32(40.0)
    big = F32(1.0) - F32(2.0) / (exp_f32(a2) + F32(1.0))
    big = big if x >= F32(0.0) else -big
    y = small if ax < F32(0.625) else big
    return y if x == x else x


@_jit
def logistic_f64(x):
    """Numerically stable logistic in float64 (libm exp; the same formula as the NumPy impl)."""
    e = np.exp(-abs(x))
    d = 1.0 + e
    return (1.0 / d) if x >= 0.0 else (e / d)


# -- sin / cos ---------------------------------------------------------------------------------

# pi/2 = _P1 + _P2 + _P3, the first two with 23 significant bits (so j * _P1, j * _P2 are exact
# in float64 for |j| < 2**30).
_TWO_OVER_PI = 0.6366197723675814
_P1 = 1.570796251296997  # 0x1.921fb4p+0
_P2 = 7.549789415861596e-08  # 0x1.4442dp-24
_P3 = 5.390302858158119e-15  # 0x1.8469898cc517p-48


# 2/pi in binary: the 128-bit pairs (A, B) of words w, w+1 and w+2, w+3 of its first 256 bits
# (0xA2F9836E 4E441529 FC2757D1 F534DDC0 DB629599 3C439041 FE5163AB DEBBC561), for Payne-Hanek
# reduction of large arguments. Picked by selects: a table lookup would not vectorize.
_U = np.uint64
_PI_A = (0xA2F9836E4E441529, 0x4E441529FC2757D1, 0xFC2757D1F534DDC0, 0xF534DDC0DB629599)
_PI_B = (0xFC2757D1F534DDC0, 0xF534DDC0DB629599, 0xDB6295993C439041, 0x3C439041FE5163AB)


@_jit
def _sincos_f32(x, shift):
    """``sin(x)`` (shift 0) or ``cos(x)`` (shift 1) of a float32, in one function: reduction by
    pi/2, then Cephes' polynomials. (One body rather than helpers: LLVM vectorizes it better.)

    Small arguments: quadrant and reduced argument in float64 with a three-part pi/2 (exact
    for ``|x| < 2**30``). Large ones (``|x| >= 2**30``, finite): Payne-Hanek with integer
    arithmetic. ``|x| = m 2**k``; the bits of 2/pi whose products with m matter modulo 4 form
    a 96-bit window W; ``m W mod 2**96`` holds the quadrant in its top two bits and the
    fraction below (to ~2**-70, far beyond float32's needs)."""
    finite = abs(x) < F32(np.inf)
    xs = x if finite else F32(0.0)
    ax = abs(xs)
    large = ax >= F32(1073741824.0)
    # small arguments
    xd = F64(xs if not large else F32(0.0))
    t = xd * _TWO_OVER_PI + _MAGIC64
    q1 = f64_bits(t) & 3
    j = t - _MAGIC64
    r1 = ((xd - j * _P1) - j * _P2) - j * _P3
    # large arguments
    bits = f32_bits(ax if large else F32(1073741824.0))
    e = (bits >> 23) & 0xFF
    m = _U((bits & 0x7FFFFF) | 0x800000)
    idx = _U(e - 152)  # the window starts at bit e - 151 of 2/pi (bit 1 = 2**-1)
    w = idx >> _U(5)
    o = idx & _U(31)
    # Masks rather than selects, which LLVM turns into a lookup table (a load per lane).
    m0, m1 = _U(0) - _U(w == 0), _U(0) - _U(w == 1)
    m2, m3 = _U(0) - _U(w == 2), _U(0) - _U(w == 3)
    a = (_U(_PI_A[0]) & m0) | (_U(_PI_A[1]) & m1) | (_U(_PI_A[2]) & m2) | (_U(_PI_A[3]) & m3)
    b = (_U(_PI_B[0]) & m0) | (_U(_PI_B[1]) & m1) | (_U(_PI_B[2]) & m2) | (_U(_PI_B[3]) & m3)
    top = (a << o) | ((b >> _U(1)) >> (_U(63) - o))  # the first 64 window bits (no shift by 64)
    nxt = (b << o) >> _U(32)  # the next 32
    # 32 x 32 -> 64-bit products only (one vector instruction each; a 64-bit multiply is not)
    lo = m * nxt
    p_lo = lo & _U(0xFFFFFFFF)
    p_hi = m * (top & _U(0xFFFFFFFF)) + ((m * (top >> _U(32))) << _U(32)) + (lo >> _U(32))
    q2 = I64(((p_hi + _U(1 << 61)) >> _U(62)) & _U(3))  # nearest quadrant
    frac = F64(I64(p_hi << _U(2))) + F64(p_lo) * 9.313225746154785e-10  # * 2**-30; signed
    r2 = frac * 8.515303950216386e-20  # * pi/2 * 2**-64
    q2 = (-q2) & 3 if xs < F32(0.0) else q2
    r2 = -r2 if xs < F32(0.0) else r2
    q = (q2 if large else q1) + shift
    r = F32(r2 if large else r1)
    z = r * r
    p = F32(-1.9515295891e-4)
    p = fma(p, z, F32(8.3321608736e-3))
    p = fma(p, z, -F32(1.6666654611e-1))
    s = r + r * z * p
    p = F32(2.443315711809948e-5)
    p = fma(p, z, -F32(1.388731625493765e-3))
    p = fma(p, z, F32(4.166664568298827e-2))
    c = (F32(1.0) - F32(0.5) * z) + z * z * p
    y = c if (q & 1) else s
    y = -y if (q & 2) else y
    return y if finite else (F32(np.nan) if x == x else x)


@_jit
def sin_f32(x):
    """``sin`` with exact argument reduction for every float32 (see ``_sincos_f32``)."""
    return _sincos_f32(x, 0)


@_jit
def cos_f32(x):
    """``cos`` with exact argument reduction for every float32 (see ``_sincos_f32``)."""
    return _sincos_f32(x, 1)


# -- float64 helpers for erf and pow (evaluated in float64, rounded once to float32) -----------


@_jit
def _exp_f64(t):
    """``exp(t)`` for float64 ``t`` in [-700, 700] to ~1e-14 (vectorizable; used for float32 results)."""
    tc = t if t < 700.0 else 700.0
    tc = tc if tc > -700.0 else -700.0
    u = tc * 1.4426950408889634 + _MAGIC64
    n = f64_bits(u) - I64(_MAGIC64_BITS)
    fn = u - _MAGIC64
    r = (tc - fn * 0.6931471803691238) - fn * 1.9082149292705877e-10
    p = 1.0 / 39916800.0
    p = fma(p, r, 1.0 / 3628800.0)
    p = fma(p, r, 1.0 / 362880.0)
    p = fma(p, r, 1.0 / 40320.0)
    p = fma(p, r, 1.0 / 5040.0)
    p = fma(p, r, 1.0 / 720.0)
    p = fma(p, r, 1.0 / 120.0)
    p = fma(p, r, 1.0 / 24.0)
    p = fma(p, r, 1.0 / 6.0)
    p = fma(p, r, 0.5)
    p = fma(p, r, 1.0)
    p = fma(p, r, 1.0)
    y = ldexp(p, n) if HAS_AVX512 else p * f64_from_bits((n + 1023) << 52)
    return y if t == t else t


@_jit
def _log_f64(a):
    """``log(a)`` for float64 ``a`` > 0, finite and normal, to ~1e-13 (atanh series)."""
    bits = f64_bits(a)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = f64_from_bits((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # [1, 2)
    hi = m > 1.4142135623730951
    m = m * 0.5 if hi else m
    e = e + 1 if hi else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = 2.0 / 15.0
    p = fma(p, s2, 2.0 / 13.0)
    p = fma(p, s2, 2.0 / 11.0)
    p = fma(p, s2, 2.0 / 9.0)
    p = fma(p, s2, 2.0 / 7.0)
    p = fma(p, s2, 2.0 / 5.0)
    p = fma(p, s2, 2.0 / 3.0)
    p = fma(p, s2, 2.0)
    return s * p + F64(e) * 0.6931471805599453


@_jit
def logistic_f32(x):
    """``1 / (1 + exp(-|x|))`` for x >= 0, ``e / (1 + e)`` with ``e = exp(-|x|)`` below, in
    float32 with the quotient corrected once: ``1 + e`` is kept as an exact pair (Fast2Sum) and
    the division's residual is added back with a fused multiply-add, so only ``exp``'s error and
    one rounding remain (rounding ``1 + e`` and the quotient plainly can reach 2.2 ulp)."""
    e = exp_f32(-abs(x))
    d = F32(1.0) + e
    d_lo = (F32(1.0) - d) + e  # d + d_lo == 1 + e exactly (1 >= e)
    num = F32(1.0) if x >= F32(0.0) else e
    inv = F32(1.0) / d
    q = num * inv
    r = fma(-q, d, num) - q * d_lo  # num - q * (1 + e)
    y = fma(r, inv, q)
    return y if x == x else x


@_jit
def pow_f32(x, y):
    """``x ** y`` (C99 ``powf`` special cases) as ``exp(y log|x|)`` in float64, rounded once."""
    ax = F64(abs(x))
    yd = F64(y)
    axs = ax if ((ax > 0.0) & (ax < np.inf)) else 1.0
    lg = _log_f64(axs)
    lg = -np.inf if ax == 0.0 else lg
    lg = np.inf if ax == np.inf else lg
    lg = lg if ax == ax else ax
    t = yd * lg
    tc = t if t < 200.0 else 200.0
    tc = tc if tc > -200.0 else -200.0
    r = _exp_f64(tc)
    r = r if t == t else t
    yt = np.trunc(y)
    y_int = y == yt
    half = y * F32(0.5)
    y_odd = y_int & (np.trunc(half) != half)
    neg = f32_bits(x) < 0
    r = -r if (neg & y_odd) else r
    r = np.nan if ((x < F32(0.0)) & (ax != np.inf) & (y != yt)) else r  # (-0 and -inf are fine)
    r = 1.0 if ((ax == 1.0) & (abs(y) == F32(np.inf))) else r
    r = 1.0 if ((y == F32(0.0)) | (x == F32(1.0))) else r
    return F32(r)


# Cody's erf coefficients (CALERF, as in funcgrad.lax.special).
@_jit
def erf_f32(x):
    """``erf``: Cody's rational approximations in float64, rounded once to float32."""
    xd = F64(x)
    ax = abs(xd)
    # |x| <= 0.46875: x P(x^2) / Q(x^2)
    z = xd * xd
    num = 1.85777706184603153e-1 * z
    den = z
    num = (num + 3.16112374387056560e00) * z
    den = (den + 2.36012909523441209e01) * z
    num = (num + 1.13864154151050156e02) * z
    den = (den + 2.44024637934444173e02) * z
    num = (num + 3.77485237685302021e02) * z
    den = (den + 1.28261652607737228e03) * z
    small = xd * (num + 3.20937758913846947e03) / (den + 2.84423683343917062e03)
    # 0.46875 < |x| < 4: 1 - exp(-x^2) R(|x|)
    y = ax if ax < 4.0 else 4.0
    y = y if y > 0.46875 else 0.46875
    num = 2.15311535474403846e-8 * y
    den = y
    num = (num + 5.64188496988670089e-1) * y
    den = (den + 1.57449261107098347e01) * y
    num = (num + 8.88314979438837594e00) * y
    den = (den + 1.17693950891312499e02) * y
    num = (num + 6.61191906371416295e01) * y
    den = (den + 5.37181101862009858e02) * y
    num = (num + 2.98635138197400131e02) * y
    den = (den + 1.62138957456669019e03) * y
    num = (num + 8.81952221241769090e02) * y
    den = (den + 3.29079923573345963e03) * y
    num = (num + 1.71204761263407058e03) * y
    den = (den + 4.36261909014324716e03) * y
    num = (num + 2.05107837782607147e03) * y
    den = (den + 3.43936767414372164e03) * y
    erfc_mid = _exp_f64(-(y * y)) * (num + 1.23033935479799725e03) / (den + 1.23033935480374942e03)
    mid = 1.0 - erfc_mid
    mid = mid if ax < 4.0 else 1.0  # erf(4) rounds to 1 in float32
    mid = mid if xd >= 0.0 else -mid
    r = small if ax <= 0.46875 else mid
    return F32(r) if x == x else x


# Names the kernel generator calls, per float32 primitive (float64 keeps libm).
FLOAT32_FUNCTIONS = (
    "exp_f32",
    "log_f32",
    "log1p_f32",
    "expm1_f32",
    "tanh_f32",
    "logistic_f32",
    "sin_f32",
    "cos_f32",
    "erf_f32",
    "pow_f32",
)


# -- integer division without hardware traps ---------------------------------------------------
# x86 integer division traps on a zero divisor and on MIN / -1; NumPy returns 0 (with a
# warning) for the former and wraps for the latter. These follow NumPy, branch-free where the
# compiler can manage.


@_jit
def ifloordiv(x, y):
    """``np.floor_divide`` for signed integers."""
    if y == 0:
        return x - x
    if y == -1:
        return -x
    return x // y


@_jit
def iremainder(x, y):
    """``np.remainder`` (the sign of the divisor) for signed integers."""
    if y == 0 or y == -1:
        return x - x
    return x % y


@_jit
def ifmod(x, y):
    """``np.fmod`` (the sign of the dividend) for signed integers."""
    if y == 0 or y == -1:
        return x - x
    r = x % y
    if r != 0 and (x < 0) != (y < 0):
        r = r - y
    return r


# -- float floor division as NumPy computes it (npy_divmod) ------------------------------------


@_jit
def _fdivmod(a, b):
    mod = np.fmod(a, b)
    if not b:
        return a / b, mod
    div = (a - mod) / b
    if mod:
        if (b < 0) != (mod < 0):
            mod += b
            div -= 1.0
    else:
        mod = np.copysign(0.0, b)
    if div:
        floordiv = np.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = np.copysign(0.0, a / b)
    return floordiv, mod


@_jit
def ffloordiv(a, b):
    """``np.floor_divide`` for floats (NaN for infinite operands, as NumPy)."""
    return _fdivmod(a, b)[0]


@_jit
def fremainder(a, b):
    """``np.remainder`` for floats (the sign of the divisor, as NumPy)."""
    if not b:
        return np.fmod(a, b)
    return _fdivmod(a, b)[1]
