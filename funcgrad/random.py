"""``funcgrad.random``: counter-based pseudo-random numbers with explicit keys.

The generator is Threefry-2x32 (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011), the default of JAX. There is no global state: every function takes
a *key*, and the same key always gives the same numbers. New keys come from
:func:`split` and :func:`fold_in`; a key should be used once.

Keys
    A key is a ``uint32`` array of shape ``(2,)`` (JAX's "legacy raw key").
    :func:`key` and :func:`PRNGKey` both return one (funcgrad has no separate typed-key
    dtype), and :func:`split` returns ``num`` of them stacked, shape ``(num, 2)``.

Compatibility with JAX (its default settings, ``jax_threefry_partitionable=True``)
    * :func:`PRNGKey` / :func:`key`, :func:`split`, :func:`fold_in` and :func:`bits` are
      bit-identical to ``jax.random`` with ``jax_enable_x64=True``: a 64-bit seed is
      split into its high and low 32-bit words (JAX without x64 keeps only the low 32
      bits of a Python int seed). Python int seeds in ``[2**63, 2**64)`` are accepted
      and read as ``uint64`` (JAX raises ``OverflowError``); ``fold_in`` takes its data
      modulo ``2**32`` (JAX raises for Python ints outside ``[0, 2**32)``).
    * The samplers use JAX's algorithms on the same bits. Bit-identical to JAX on CPU:
      :func:`uniform` (every float dtype, any bounds; XLA's fused multiply-add is
      reproduced), :func:`randint`, :func:`bernoulli`, :func:`permutation`,
      :func:`choice`, and, in float32/float16/bfloat16/complex64, :func:`normal`,
      :func:`gumbel`, :func:`exponential` and :func:`categorical` (XLA's ``erf_inv``,
      ``log`` and ``log1p`` approximations are reproduced). Within a few ulp:
      float64 :func:`normal` / :func:`gumbel` / :func:`exponential`,
      :func:`truncated_normal` (``erf`` of the bounds), :func:`gamma`,
      :func:`loggamma` and :func:`beta` (rejection sampling with JAX's key schedule).
      JAX on GPU/TPU itself differs from JAX on CPU in the last bits of these.
    * Defaults differ where JAX's depend on ``jax_enable_x64``: floats default to
      ``fg.config.default_float_dtype`` (float32), integers to int64 (also the dtype of
      :func:`categorical` indices), :func:`bits` to uint32. A Python float probability
      ``p`` (bernoulli) uses the default float dtype.

Implementation: the Threefry hash is the primitive :data:`threefry2x32_p`; everything
else is ordinary array arithmetic. With a concrete key the whole computation runs in
NumPy; with a traced key (inside a transformation) the same code runs on
``funcgrad.numpy`` / ``funcgrad.lax`` operations.

Example:
    >>> from funcgrad import random
    >>> key = random.key(0)
    >>> key, sub = random.split(key)
    >>> x = random.normal(sub, (3,))
    >>> x.shape, x.dtype
    ((3,), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .core.abstract import ShapedArray
from .core.array import Array, wrap_ndarray
from .core.config import config
from .core.dtypes import bfloat16, canonical_numpy, canonicalize
from .core.errors import DTypeError, InvalidArgumentError, InvalidValueError, ShapeError
from .core.primitive import Primitive
from .core.trace import Tracer

__all__ = [
    "key",
    "PRNGKey",
    "key_data",
    "split",
    "fold_in",
    "bits",
    "uniform",
    "normal",
    "randint",
    "bernoulli",
    "categorical",
    "gumbel",
    "exponential",
    "permutation",
    "choice",
    "truncated_normal",
    "gamma",
    "loggamma",
    "beta",
    "threefry2x32_p",
    "threefry_2x32",
]

_U32 = np.dtype(np.uint32)
_UINT = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16), 32: _U32, 64: np.dtype(np.uint64)}
_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

# =========================================================================================
# The Threefry-2x32 hash
# =========================================================================================

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KS_PARITY = np.uint32(0x1BD11BDA)


def _threefry2x32_numpy(k1, k2, x1, x2):
    """Threefry-2x32 with 20 rounds on uint32 arrays (broadcast together)."""
    k1, k2, x1, x2 = (np.asarray(a, _U32) for a in (k1, k2, x1, x2))
    shape = np.broadcast_shapes(k1.shape, k2.shape, x1.shape, x2.shape)
    ks = (k1, k2, k1 ^ k2 ^ _KS_PARITY)
    with np.errstate(over="ignore"):
        # Fresh, writable 1-d buffers of the output shape (0-d arithmetic would give
        # NumPy scalars, which warn on wrap-around).
        y1 = np.add(np.broadcast_to(x1, shape), ks[0], dtype=_U32).reshape(-1)
        y2 = np.add(np.broadcast_to(x2, shape), ks[1], dtype=_U32).reshape(-1)
        ks = tuple(np.broadcast_to(k, shape).reshape(-1) if k.size > 1 else k.reshape(-1) for k in ks)
        tmp = np.empty_like(y2)
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                np.add(y1, y2, out=y1)
                np.left_shift(y2, np.uint32(r), out=tmp)
                np.right_shift(y2, np.uint32(32 - r), out=y2)
                np.bitwise_or(y2, tmp, out=y2)
                np.bitwise_xor(y2, y1, out=y2)
            np.add(y1, ks[(i + 1) % 3], out=y1)
            np.add(y2, ks[(i + 2) % 3], out=y2)
            np.add(y2, np.uint32(i + 1), out=y2)
    return y1.reshape(shape), y2.reshape(shape)


def _threefry2x32_abstract_eval(k1, k2, x1, x2):
    """Elementwise: equal shapes (rank-0 operands broadcast), all uint32; two outputs."""
    avals = (k1, k2, x1, x2)
    for a in avals:
        if a.dtype != _U32:
            raise DTypeError("threefry2x32: all operands must be uint32, got " + ", ".join(b.dtype.name for b in avals))
    shapes = {tuple(a.shape) for a in avals if tuple(a.shape) != ()}
    if len(shapes) > 1:
        raise ShapeError(
            "threefry2x32: operands must have equal shapes (or be scalars), got "
            + ", ".join(str(tuple(b.shape)) for b in avals)
        )
    aval = ShapedArray(shapes.pop() if shapes else (), _U32)
    return [aval, aval]


threefry2x32_p = Primitive("threefry2x32", multiple_results=True, differentiable=False)
threefry2x32_p.impl = lambda k1, k2, x1, x2: list(_threefry2x32_numpy(k1, k2, x1, x2))
threefry2x32_p.abstract_eval = _threefry2x32_abstract_eval


def _threefry2x32_batch(vals, dims):
    # Elementwise in all four operands: the single-output elementwise rule, applied to both outputs.
    from .lax._batching import elementwise_rule

    outs, d = elementwise_rule(threefry2x32_p)(vals, dims)
    return outs, [d, d]


threefry2x32_p.batch = _threefry2x32_batch


def threefry_2x32(keypair, count):
    """Apply the Threefry-2x32 hash to ``count`` (JAX's ``jax.random.threefry_2x32``).

    The flattened counts are split into two halves (an odd count is padded with a zero)
    that form the two input words; the two output words are concatenated again.

    Args:
        keypair: a key, a uint32 array of shape ``(2,)``.
        count: a uint32 array of any shape.

    Returns:
        A uint32 array of the shape of ``count``.

    Example:
        >>> import numpy as np
        >>> from funcgrad import random
        >>> random.threefry_2x32(random.key(0), np.arange(4, dtype=np.uint32)).shape
        (4,)
    """
    k = _key_value(keypair, "threefry_2x32", "keypair")
    xp = _ops(k, count)
    c = xp.asarray(count)
    if c.dtype != _U32:
        raise DTypeError(f"random.threefry_2x32: count must be uint32, got {c.dtype}")
    shape = tuple(c.shape)
    n = math.prod(shape)
    with xp.errstate():
        flat = xp.reshape(c, (n,))
        if n % 2:
            flat = xp.concatenate([flat, xp.const(np.zeros(1), _U32)], 0)
        half = (n + 1) // 2
        y1, y2 = xp.threefry(k[0], k[1], flat[:half], flat[half:])
        out = xp.concatenate([y1, y2], 0)[:n]
        return xp.wrap(xp.reshape(out, shape), _U32)


# =========================================================================================
# Array backends: NumPy for concrete keys, funcgrad operations for traced ones
# =========================================================================================


def _to_numpy(x):
    """NumPy value of an Array / NumPy / Python argument (Python data canonicalised)."""
    if type(x) is Array or isinstance(x, Array):
        return x._value
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if isinstance(x, bool):
        return np.asarray(x)
    if isinstance(x, int):
        return np.asarray(x, np.int64)
    if isinstance(x, float):
        return np.asarray(x, config.default_float_dtype)
    if isinstance(x, complex):
        return np.asarray(x, config.default_complex_dtype)
    return canonical_numpy(np.asarray(x))


def _erf_numpy(x):
    x = np.asarray(x)
    out = np.frompyfunc(math.erf, 1, 1)(x.astype(np.float64))
    return np.asarray(out, np.float64).astype(x.dtype)


class _NumpyOps:
    """Array operations on NumPy values (concrete keys)."""

    traced = False

    @staticmethod
    def asarray(x):
        return _to_numpy(x)

    @staticmethod
    def const(value, dtype):
        return np.asarray(value, dtype)

    threefry = staticmethod(_threefry2x32_numpy)

    @staticmethod
    def convert(x, dtype):
        x = np.asarray(x)
        if dtype == np.bool_:
            return x != 0
        return x.astype(dtype)

    @staticmethod
    def bitcast(x, dtype):
        return np.asarray(x).view(dtype)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis)

    @staticmethod
    def concatenate(xs, axis):
        return np.concatenate(xs, axis)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def expand_dims(x, axes):
        return np.expand_dims(x, axes)

    @staticmethod
    def moveaxis(x, src, dst):
        return np.moveaxis(x, src, dst)

    log, log1p, exp, sqrt, abs = np.log, np.log1p, np.exp, np.sqrt, np.abs
    maximum, minimum, power, nextafter = np.maximum, np.minimum, np.power, np.nextafter
    erf = staticmethod(_erf_numpy)

    @staticmethod
    def clip(x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)

    @staticmethod
    def argmax(x, axis):
        return np.argmax(x, axis=axis).astype(np.int64)

    @staticmethod
    def sort_key_val(keys, vals, axis):
        perm = np.argsort(keys, axis=axis, kind="stable")
        return np.take_along_axis(vals, perm, axis=axis)

    @staticmethod
    def take(x, idx, axis):
        return np.take(x, idx, axis=axis)

    @staticmethod
    def cumsum(x):
        return np.cumsum(x, dtype=x.dtype)

    @staticmethod
    def searchsorted_left(sorted_1d, v):
        return np.searchsorted(sorted_1d, v, side="left").astype(np.int64)

    @staticmethod
    def top_k_indices(x, k):
        # largest first; among equal values the lower index first (XLA's TopK).
        return np.argsort(-x, axis=-1, kind="stable")[..., :k].astype(np.int64)

    @staticmethod
    def wrap(x, dtype=None):
        x = np.asarray(x)
        if dtype is not None and x.dtype != dtype:
            x = x.astype(dtype)
        return wrap_ndarray(x)

    @staticmethod
    def errstate():
        return np.errstate(all="ignore")


class _FuncgradOps:
    """The same operations on funcgrad arrays and tracers (used when a key is traced)."""

    traced = True

    def __init__(self):
        import funcgrad.numpy as fnp  # imported lazily: funcgrad.numpy imports the core
        from .lax import elementwise as lax_ew

        self.fnp, self.lax = fnp, lax_ew

    def asarray(self, x):
        if isinstance(x, (Tracer, Array)):
            return x
        return wrap_ndarray(_to_numpy(x).copy())

    @staticmethod
    def const(value, dtype):
        return wrap_ndarray(np.asarray(value, dtype))

    def threefry(self, k1, k2, x1, x2):
        args = [self.convert(self.asarray(a), _U32) for a in (k1, k2, x1, x2)]
        shape = np.broadcast_shapes(*(a.shape for a in args))
        args = [a if a.shape == shape else self.fnp.broadcast_to(a, shape) for a in args]
        y1, y2 = threefry2x32_p.bind(*args)
        return y1, y2

    def convert(self, x, dtype):
        x = self.asarray(x)
        return x if x.dtype == dtype else self.lax.convert_element_type(x, dtype)

    def bitcast(self, x, dtype):
        return self.lax.bitcast_convert_type(x, dtype)

    def stack(self, xs, axis):
        return self.fnp.stack(xs, axis)

    def concatenate(self, xs, axis):
        return self.fnp.concatenate(xs, axis)

    def where(self, c, a, b):
        return self.fnp.where(c, a, b)

    def reshape(self, x, shape):
        return self.fnp.reshape(x, shape)

    def broadcast_to(self, x, shape):
        return self.fnp.broadcast_to(x, shape)

    def expand_dims(self, x, axes):
        return self.fnp.expand_dims(x, axes)

    def moveaxis(self, x, src, dst):
        return self.fnp.moveaxis(x, src, dst)

    def log(self, x):
        return self.fnp.log(x)

    def log1p(self, x):
        return self.fnp.log1p(x)

    def exp(self, x):
        return self.fnp.exp(x)

    def sqrt(self, x):
        return self.fnp.sqrt(x)

    def abs(self, x):
        return self.fnp.abs(x)

    def maximum(self, x, y):
        return self.fnp.maximum(x, y)

    def minimum(self, x, y):
        return self.fnp.minimum(x, y)

    def power(self, x, y):
        return self.fnp.power(x, y)

    def nextafter(self, x, y):
        return self.lax.nextafter(*[self.asarray(a) for a in (x, y)])

    def erf(self, x):
        try:
            from .lax import erf
        except ImportError:  # pragma: no cover - depends on the core's progress
            from .lax.special import erf
        return erf(x)

    def clip(self, x, lo, hi):
        return self.fnp.minimum(self.fnp.maximum(x, lo), hi)

    def argmax(self, x, axis):
        return self.convert(self.fnp.argmax(x, axis=axis), np.dtype(np.int64))

    def sort_key_val(self, keys, vals, axis):
        from .lax.sort import argsort

        perm = argsort(keys, axis)  # stable, as lax.sort_key_val
        return self.fnp.take_along_axis(vals, perm, axis=axis)

    def take(self, x, idx, axis):
        return self.fnp.take(x, idx, axis=axis)

    def cumsum(self, x):
        return self.fnp.cumsum(x)

    def searchsorted_left(self, sorted_1d, v):
        # number of entries strictly below v (searchsorted side='left')
        less = self.fnp.expand_dims(sorted_1d, tuple(range(len(v.shape)))) < self.fnp.expand_dims(v, -1)
        return self.convert(self.fnp.sum(self.convert(less, np.dtype(np.int64)), axis=-1), np.dtype(np.int64))

    def top_k_indices(self, x, k):
        from .lax.sort import top_k

        return self.convert(top_k(x, k)[1], np.dtype(np.int64))

    @staticmethod
    def wrap(x, dtype=None):
        return x

    @staticmethod
    def errstate():
        return np.errstate(all="ignore")


_NP = _NumpyOps()
_FG = None
_FORCE_FUNCGRAD_OPS = False  # tests flip this to run the traced code path eagerly


def _ops(*values):
    """NumPy operations unless a value is traced (then funcgrad operations)."""
    global _FG
    if _FORCE_FUNCGRAD_OPS or any(isinstance(v, Tracer) for v in values):
        if _FG is None:
            _FG = _FuncgradOps()
        return _FG
    return _NP


# =========================================================================================
# Argument checking
# =========================================================================================


def _fn(name):
    return f"random.{name}"


def _key_value(key, name, arg="key"):
    """The key as a NumPy uint32[2] array (or the tracer), with clear errors."""
    if isinstance(key, Tracer):
        aval = key.aval
        dtype, shape = aval.dtype, aval.shape
        value = key
    else:
        if type(key) is Array or isinstance(key, Array):
            value = key._value
        elif isinstance(key, (np.ndarray, np.generic)):
            value = np.asarray(key)
        elif isinstance(key, (bool, int, np.integer)):
            raise InvalidArgumentError(
                f"{_fn(name)}: argument '{arg}' must be a PRNG key, got the integer {key!r}; "
                f"create a key with random.key({key!r}) and pass that"
            )
        elif hasattr(key, "__array__") and hasattr(key, "dtype") and hasattr(key, "shape"):
            try:
                value = np.asarray(key)
            except Exception:
                raise InvalidArgumentError(
                    f"{_fn(name)}: argument '{arg}' must be a raw uint32 key array of shape (2,), "
                    f"got {type(key).__name__} with dtype {key.dtype} (for a JAX typed key, pass "
                    "jax.random.key_data(key))"
                ) from None
        else:
            raise InvalidArgumentError(
                f"{_fn(name)}: argument '{arg}' must be a PRNG key (a uint32 array of shape (2,) "
                f"from random.key / random.PRNGKey / random.split), got {type(key).__name__}"
            )
        dtype, shape = value.dtype, value.shape
    if dtype != _U32:
        raise DTypeError(
            f"{_fn(name)}: argument '{arg}' must be a PRNG key with dtype uint32 and shape (2,), "
            f"got dtype {dtype} (create keys with random.key(seed))"
        )
    if tuple(shape) != (2,):
        if len(shape) >= 2 and shape[-1] == 2:
            raise ShapeError(
                f"{_fn(name)}: argument '{arg}' must be a single key of shape (2,), got an array "
                f"of keys with shape {tuple(shape)}; pass one key (keys[i]) or map over them with vmap"
            )
        raise ShapeError(f"{_fn(name)}: argument '{arg}' must be a PRNG key of shape (2,), got shape {tuple(shape)}")
    return value


def _shape_arg(shape, name, arg="shape"):
    """A tuple of non-negative Python ints."""
    if isinstance(shape, (bool, np.bool_)) or isinstance(shape, (int, np.integer)):
        raise InvalidArgumentError(
            f"{_fn(name)}: {arg} must be a tuple of ints, got the int {shape!r}; write ({int(shape)},) for a 1-D result"
        )
    if (
        isinstance(shape, (str, bytes))
        or not isinstance(shape, (Sequence, np.ndarray))
        or (isinstance(shape, np.ndarray) and shape.ndim != 1)
    ):
        raise InvalidArgumentError(f"{_fn(name)}: {arg} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    dims = []
    for d in shape:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise InvalidArgumentError(
                f"{_fn(name)}: {arg} must be a tuple of ints, got {tuple(shape)!r} "
                f"(element {d!r} of type {type(d).__name__})"
            )
        if d < 0:
            raise InvalidValueError(f"{_fn(name)}: {arg} must contain non-negative sizes, got {tuple(shape)!r}")
        dims.append(int(d))
    return tuple(dims)


def _is_floating(dtype):
    return dtype.kind == "f" or (bfloat16 is not None and dtype == bfloat16)


def _dtype_arg(dtype, name):
    try:
        return canonicalize(dtype)
    except TypeError:
        raise DTypeError(f"{_fn(name)}: dtype {dtype!r} is not a valid dtype") from None


def _float_dtype(dtype, name, allow_complex=False):
    if dtype is None:
        return config.default_float_dtype
    dt = _dtype_arg(dtype, name)
    if _is_floating(dt) or (allow_complex and dt.kind == "c"):
        return dt
    kinds = "floating or complex" if allow_complex else "floating"
    raise DTypeError(
        f"{_fn(name)}: dtype must be a {kinds} dtype (float16, bfloat16, float32, float64"
        f"{', complex64, complex128' if allow_complex else ''}), got {dt}; "
        "for integers use random.randint"
    )


def _int_dtype(dtype, name):
    if dtype is None:
        return np.dtype(np.int64)
    dt = _dtype_arg(dtype, name)
    if dt.kind not in "iu":
        raise DTypeError(
            f"{_fn(name)}: dtype must be an integer dtype (int8 ... int64, uint8 ... uint64), "
            f"got {dt}; for floating values use random.uniform"
        )
    return dt


def _broadcast_shape(name, shape, *param_shapes):
    """``shape`` (or the broadcast of the parameter shapes when it is None), checked."""
    try:
        bshape = np.broadcast_shapes(*param_shapes) if param_shapes else ()
    except ValueError:
        raise ShapeError(
            f"{_fn(name)}: parameter shapes {', '.join(map(str, param_shapes))} do not broadcast together"
        ) from None
    if shape is None:
        return tuple(bshape)
    shape = _shape_arg(shape, name)
    try:
        full = np.broadcast_shapes(shape, *param_shapes)
    except ValueError:
        full = None
    if full != shape:
        raise ShapeError(
            f"{_fn(name)}: parameter shapes {', '.join(map(str, param_shapes))} must broadcast "
            f"to the requested shape {shape}"
        )
    return shape


def _shape_of(x):
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


# =========================================================================================
# Core algorithms (written once for both backends). ``keys`` has shape batch + (2,).
# =========================================================================================


def _iota_2x32(shape):
    """High and low 32-bit words of ``arange(prod(shape), dtype=uint64).reshape(shape)``."""
    n = math.prod(shape)
    if n > 2**64:
        raise NotImplementedError("random bits array of size exceeding 2 ** 64")
    c = np.arange(n, dtype=np.uint64).reshape(shape)
    return (c >> np.uint64(32)).astype(_U32), (c & np.uint64(0xFFFFFFFF)).astype(_U32)


def _key_words(xp, keys, extra_ndim):
    k1, k2 = keys[..., 0], keys[..., 1]
    if extra_ndim:
        batch = tuple(keys.shape[:-1])
        k1 = xp.reshape(k1, batch + (1,) * extra_ndim)
        k2 = xp.reshape(k2, batch + (1,) * extra_ndim)
    return k1, k2


def _hash_iota(xp, keys, shape):
    k1, k2 = _key_words(xp, keys, len(shape))
    hi, lo = _iota_2x32(shape)
    return xp.threefry(k1, k2, hi, lo)


def _split_keys(xp, keys, shape):
    b1, b2 = _hash_iota(xp, keys, shape)
    return xp.stack([b1, b2], -1)


def _fold_in_keys(xp, keys, data_u32):
    k1, k2 = keys[..., 0], keys[..., 1]
    b1, b2 = xp.threefry(k1, k2, xp.const(0, _U32), data_u32)
    return xp.stack([b1, b2], -1)


def _random_bits(xp, keys, bit_width, shape):
    b1, b2 = _hash_iota(xp, keys, shape)
    dtype = _UINT[bit_width]
    if bit_width == 64:
        hi = xp.convert(b1, dtype)
        lo = xp.convert(b2, dtype)
        return (hi << xp.const(32, dtype)) | lo
    out = b1 ^ b2
    return out if bit_width == 32 else xp.convert(out, dtype)


def _finfo(dtype):
    if bfloat16 is not None and dtype == bfloat16:
        import ml_dtypes

        return ml_dtypes.finfo(dtype)
    return np.finfo(dtype)


def _uniform_impl(xp, keys, shape, dtype, minval, maxval):
    """JAX's uniform: random mantissa bits with exponent 0 give [1, 2), minus 1, scaled."""
    fi = _finfo(dtype)
    nbits, nmant = int(fi.bits), int(fi.nmant)
    if nbits not in (16, 32, 64):
        raise DTypeError(f"uniform: unsupported floating dtype {dtype}")
    rng_bits = 8 if nmant < 8 else nbits
    uint_dtype = _UINT[nbits]
    bits_ = _random_bits(xp, keys, rng_bits, shape)
    if rng_bits != nbits:
        bits_ = xp.convert(bits_, uint_dtype)
    one_bits = np.array(1.0, dtype).view(uint_dtype)
    float_bits = (bits_ >> xp.const(rng_bits - nmant, uint_dtype)) | xp.const(one_bits, uint_dtype)
    floats = xp.bitcast(float_bits, dtype) - xp.const(1, dtype)
    minval = xp.convert(minval, dtype)
    maxval = xp.convert(maxval, dtype)
    return xp.maximum(minval, _fma(xp, floats, maxval - minval, minval))


_VELTKAMP = 2.0**27 + 1.0


def _fma(xp, a, b, c):
    """``a * b + c`` rounded once, as XLA's CPU backend computes it (fused multiply-add).

    float32 goes through float64 (where the product is exact); float64 uses Dekker's
    exact product and Knuth's two-sum (exact up to rare ties). XLA rounds half-precision
    products and sums separately, so float16/bfloat16 use plain operations.
    """
    dtype = a.dtype
    if dtype != _F64 and dtype != _F32:
        return a * b + c
    if dtype == _F32:
        w = lambda v: xp.convert(v, _F64)  # noqa: E731
        return xp.convert(w(a) * w(b) + w(c), dtype)
    f = xp.const(_VELTKAMP, dtype)

    def halves(v):
        t = f * v
        hi = t - (t - v)
        return hi, v - hi

    p = a * b
    ah, al = halves(a)
    bh, bl = halves(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    r = s + (t + e)
    return xp.where(xp.abs(r) < xp.const(np.inf, dtype), r, s)  # overflow in the split: plain result


# XLA's ErfInv32 / ErfInv64 (M. Giles, "Approximating the erfinv function").
_ERFINV32_LT5 = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_ERFINV32_GT5 = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)
_ERFINV64_LT625 = (
    -3.6444120640178196996e-21,
    -1.685059138182016589e-19,
    1.2858480715256400167e-18,
    1.115787767802518096e-17,
    -1.333171662854620906e-16,
    2.0972767875968561637e-17,
    6.6376381343583238325e-15,
    -4.0545662729752068639e-14,
    -8.1519341976054721522e-14,
    2.6335093153082322977e-12,
    -1.2975133253453532498e-11,
    -5.4154120542946279317e-11,
    1.051212273321532285e-09,
    -4.1126339803469836976e-09,
    -2.9070369957882005086e-08,
    4.2347877827932403518e-07,
    -1.3654692000834678645e-06,
    -1.3882523362786468719e-05,
    0.0001867342080340571352,
    -0.00074070253416626697512,
    -0.0060336708714301490533,
    0.24015818242558961693,
    1.6536545626831027356,
)
_ERFINV64_LT16 = (
    2.2137376921775787049e-09,
    9.0756561938885390979e-08,
    -2.7517406297064545428e-07,
    1.8239629214389227755e-08,
    1.5027403968909827627e-06,
    -4.013867526981545969e-06,
    2.9234449089955446044e-06,
    1.2475304481671778723e-05,
    -4.7318229009055733981e-05,
    6.8284851459573175448e-05,
    2.4031110387097893999e-05,
    -0.0003550375203628474796,
    0.00095328937973738049703,
    -0.0016882755560235047313,
    0.0024914420961078508066,
    -0.0037512085075692412107,
    0.005370914553590063617,
    1.0052589676941592334,
    3.0838856104922207635,
)
_ERFINV64_GT16 = (
    -2.7109920616438573243e-11,
    -2.5556418169965252055e-10,
    1.5076572693500548083e-09,
    -3.7894654401267369937e-09,
    7.6157012080783393804e-09,
    -1.4960026627149240478e-08,
    2.9147953450901080826e-08,
    -6.7711997758452339498e-08,
    2.2900482228026654717e-07,
    -9.9298272942317002539e-07,
    4.5260625972231537039e-06,
    -1.9681778105531670567e-05,
    7.5995277030017761139e-05,
    -0.00021503011930044477347,
    -0.00013871931833623122026,
    1.0103004648645343977,
    4.8499064014085844221,
)


def _fma32(xp, a, b, c):
    """Fused ``a * b + c`` for float32 operands (exact product in float64, one rounding)."""
    w = lambda v: xp.convert(v, _F64)  # noqa: E731
    return xp.convert(w(a) * w(b) + w(c), _F32)


# XLA's CPU float32 log (Cephes/Eigen polynomial with fused multiply-adds) and log1p
# (Cephes rational approximation below sqrt(2) - 1): reproducing them makes normal,
# gumbel and exponential samples bit-identical to JAX on CPU.
_LOG_P = (
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
)
_LOG1P_NUM = (
    4.5270000862445199635215e-5,
    4.9854102823193375972212e-1,
    6.5787325942061044846969e0,
    2.9911919328553073277375e1,
    6.0949667980987787057556e1,
    5.7112963590585538103336e1,
    2.0039553499201281259648e1,
)
_LOG1P_DEN = (
    1.0,
    1.5062909083469192043167e1,
    8.3047565967967209469434e1,
    2.2176239823732856465394e2,
    3.0909872225312059774938e2,
    2.1642788614495947685003e2,
    6.0118660497603843919306e1,
)


def _log(xp, x):
    """Natural log; float32 reproduces XLA's CPU implementation bit for bit."""
    dtype = x.dtype
    if dtype == _F64:
        return xp.log(x)
    if dtype != _F32:
        return xp.convert(_log(xp, xp.convert(x, _F32)), dtype)
    c = lambda v: xp.const(v, _F32)  # noqa: E731
    u = lambda v: xp.const(v, _U32)  # noqa: E731
    xm = xp.maximum(x, c(np.uint32(0x00800000).view(np.float32)))  # smallest normal
    ib = xp.bitcast(xm, _U32)
    e = xp.convert(xp.convert((ib >> u(23)) & u(0xFF), np.dtype(np.int32)) - xp.const(126, np.int32), _F32)
    m = xp.bitcast((ib & u(0x807FFFFF)) | u(0x3F000000), _F32)  # in [0.5, 1)
    small = m < c(0.707106781186547524)
    tmp = xp.where(small, m, c(0.0))
    m = m - c(1.0)
    e = e - xp.where(small, c(1.0), c(0.0))
    m = m + tmp
    m2 = m * m
    m3 = m2 * m
    P = [c(v) for v in _LOG_P]
    y = _fma32(xp, P[0], m, P[1])
    y1 = _fma32(xp, P[3], m, P[4])
    y2 = _fma32(xp, P[6], m, P[7])
    y = _fma32(xp, y, m, P[2])
    y1 = _fma32(xp, y1, m, P[5])
    y2 = _fma32(xp, y2, m, P[8])
    y = _fma32(xp, y, m3, y1)
    y = _fma32(xp, y, m3, y2)
    y = _fma32(xp, y, m3, e * c(-2.12194440e-4))
    r = m - m2 * c(0.5)
    r = r + y
    r = r + e * c(0.693359375)
    r = xp.where(x == c(0.0), c(-np.inf), r)
    r = xp.where(x == c(np.inf), x, r)
    return xp.where((x < c(0.0)) | (x != x), c(np.nan), r)


def _log1p(xp, x):
    """``log(1 + x)``; float32 reproduces XLA's CPU implementation bit for bit."""
    dtype = x.dtype
    if dtype == _F64:
        return xp.log1p(x)
    if dtype != _F32:
        return xp.convert(_log1p(xp, xp.convert(x, _F32)), dtype)
    c = lambda v: xp.const(v, _F32)  # noqa: E731
    large = _log(xp, x + c(1.0))

    def poly(coefs):  # Horner, highest degree first
        r = c(coefs[0])
        for v in coefs[1:]:
            r = _fma32(xp, r, x, c(v))
        return r

    x2 = x * x
    small = poly(_LOG1P_NUM) / poly(_LOG1P_DEN)
    small = (x * x2) * small
    small = _fma32(xp, c(-0.5), x2, small)
    small = x + small
    return xp.where(xp.abs(x) < c(0.41421356237309504880), small, large)


def _erfinv(xp, x):
    """Inverse error function with XLA's polynomial (half precision computed in float32)."""
    dtype = x.dtype
    if dtype != _F64 and dtype != _F32:
        return xp.convert(_erfinv(xp, xp.convert(x, _F32)), dtype)
    c = lambda v: xp.const(v, dtype)  # noqa: E731
    w = -_log1p(xp, -(x * x))
    if dtype == _F32:
        lt = w < c(5.0)
        w = xp.where(lt, w - c(2.5), xp.sqrt(w) - c(3.0))
        p = xp.where(lt, c(_ERFINV32_LT5[0]), c(_ERFINV32_GT5[0]))
        for a, b in zip(_ERFINV32_LT5[1:], _ERFINV32_GT5[1:]):
            p = _fma32(xp, p, w, xp.where(lt, c(a), c(b)))
    else:
        lt625 = w < c(6.25)
        lt16 = w < c(16.0)
        sqrt_w = xp.sqrt(w)
        w = xp.where(lt625, w - c(3.125), sqrt_w - xp.where(lt16, c(3.25), c(5.0)))

        def coef(i):
            v = c(_ERFINV64_LT625[i])
            if i < 19:
                v = xp.where(lt625, v, c(_ERFINV64_LT16[i]))
            if i < 17:
                v = xp.where(lt16, v, c(_ERFINV64_GT16[i]))
            return v

        p = coef(0)
        for i in range(1, 17):
            p = coef(i) + p * w
        for i in range(17, 19):
            p = xp.where(lt16, coef(i) + p * w, p)
        for i in range(19, 23):
            p = xp.where(lt625, coef(i) + p * w, p)
    result = p * x
    return xp.where(xp.abs(x) == c(1.0), x * c(np.finfo(dtype).max), result)


def _normal_real(xp, keys, shape, dtype):
    fi = _finfo(dtype)
    lo = -(1.0 - 2.0 ** -(int(fi.nmant) + 1))  # nextafter(-1, 0) in dtype
    u = _uniform_impl(xp, keys, shape, dtype, xp.const(lo, dtype), xp.const(1.0, dtype))
    return xp.const(np.sqrt(2.0), dtype) * _erfinv(xp, u)


def _normal_impl(xp, keys, shape, dtype):
    if dtype.kind == "c":
        real = np.dtype(np.float32 if dtype == np.complex64 else np.float64)
        sub = _split_keys(xp, keys, (2,))
        re = xp.convert(_normal_real(xp, sub[..., 0, :], shape, real), dtype)
        im = xp.convert(_normal_real(xp, sub[..., 1, :], shape, real), dtype)
        return (re + xp.const(1j, dtype) * im) / xp.const(np.sqrt(2.0), dtype)
    return _normal_real(xp, keys, shape, dtype)


def _gumbel_impl(xp, keys, shape, dtype):
    tiny = _finfo(dtype).tiny
    u = _uniform_impl(xp, keys, shape, dtype, xp.const(tiny, dtype), xp.const(1.0, dtype))
    return -_log(xp, -_log(xp, u))


def _exponential_impl(xp, keys, shape, dtype):
    u = _uniform_impl(xp, keys, shape, dtype, xp.const(0.0, dtype), xp.const(1.0, dtype))
    return -_log1p(xp, -u)


def _first_key(xp, keys):
    """The two keys of split(key) as ``keys[..., 0, :]`` and ``keys[..., 1, :]``."""
    sub = _split_keys(xp, keys, (2,))
    return sub[..., 0, :], sub[..., 1, :]


# =========================================================================================
# Public API: keys
# =========================================================================================


def _seed_words(seed, name):
    """(hi, lo) uint32 words of an integer seed, as JAX's threefry_seed with x64."""
    if isinstance(seed, Tracer):
        raise InvalidArgumentError(
            f"{_fn(name)}: the seed must be a concrete integer, got a traced value "
            f"{seed.aval.str_short()}; create keys outside the transformation (or pass a key "
            "and use random.fold_in)"
        )
    if isinstance(seed, (bool, np.bool_)):
        return 0, int(seed)
    if isinstance(seed, int):
        if not -(2**63) <= seed < 2**64:
            raise OverflowError(f"{_fn(name)}: seed {seed} does not fit in 64 bits")
        v = seed % 2**64
        return v >> 32, v & 0xFFFFFFFF
    if isinstance(seed, (Array, np.ndarray, np.generic)) or (hasattr(seed, "__array__") and hasattr(seed, "dtype")):
        arr = np.asarray(seed)
        if arr.ndim:
            raise InvalidArgumentError(
                f"{_fn(name)}: the seed must be a scalar integer, got an array of shape {arr.shape}; "
                "split one key with random.split or use random.fold_in for several streams"
            )
        if arr.dtype == np.bool_:
            return 0, int(arr)
        if arr.dtype.kind not in "iu":
            raise InvalidArgumentError(f"{_fn(name)}: the seed must be an integer, got dtype {arr.dtype}")
        if arr.dtype.itemsize == 8:
            v = int(arr) % 2**64
            return v >> 32, v & 0xFFFFFFFF
        # 8-, 16- and 32-bit seeds: a logical shift by 32 gives 0; the low word wraps.
        return 0, int(arr) % 2**32
    raise InvalidArgumentError(f"{_fn(name)}: the seed must be an integer, got {type(seed).__name__} {seed!r}")


def PRNGKey(seed) -> Array:
    """Create a PRNG key (a uint32 array of shape ``(2,)``) from an integer seed.

    The key holds the seed's high and low 32-bit words (a seed of 32 bits or fewer gives
    ``[0, seed]``), exactly as ``jax.random.PRNGKey`` with ``jax_enable_x64`` enabled.
    Negative seeds are read in two's complement.

    Args:
        seed: a Python int in ``[-2**63, 2**64)``, a NumPy integer or a 0-d integer array.

    Returns:
        The key, ``Array`` of dtype uint32 and shape ``(2,)``.

    Raises:
        TypeError: for a non-integer or non-scalar seed.
        OverflowError: for a Python int outside 64 bits.

    Example:
        >>> from funcgrad import random
        >>> random.PRNGKey(42)
        Array([ 0, 42], dtype=uint32)
        >>> random.PRNGKey(2**32 + 7)
        Array([1, 7], dtype=uint32)
    """
    hi, lo = _seed_words(seed, "PRNGKey")
    return wrap_ndarray(np.array([hi, lo], _U32))


def key(seed) -> Array:
    """Create a PRNG key from an integer seed (same result as :func:`PRNGKey`).

    funcgrad has no separate typed-key dtype: ``key`` returns the raw uint32 array of
    shape ``(2,)`` that :func:`PRNGKey` returns (``jax.random.key_data(jax.random.key(s))``
    in JAX terms), usable with every function of this module.

    Args:
        seed: an integer seed (see :func:`PRNGKey`).

    Returns:
        The key, ``Array`` of dtype uint32 and shape ``(2,)``.

    Example:
        >>> from funcgrad import random
        >>> random.key(0)
        Array([0, 0], dtype=uint32)
    """
    hi, lo = _seed_words(seed, "key")
    return wrap_ndarray(np.array([hi, lo], _U32))


def key_data(keys) -> Array:
    """The raw uint32 data of a key or an array of keys (the identity: keys are raw data).

    Args:
        keys: a key or stacked keys (uint32, last axis of size 2).

    Returns:
        The same uint32 array.

    Example:
        >>> from funcgrad import random
        >>> random.key_data(random.key(3))
        Array([0, 3], dtype=uint32)
    """
    if isinstance(keys, (Tracer, Array)):
        v = keys
    else:
        v = wrap_ndarray(np.array(keys))
    if v.dtype != _U32 or not v.shape or v.shape[-1] != 2:
        raise InvalidArgumentError(
            f"random.key_data: expected uint32 keys with a last axis of size 2, got {v.dtype}{list(v.shape)}"
        )
    return v


def split(key, num=2) -> Array:
    """Split a key into ``num`` new, independent keys.

    Bit-identical to ``jax.random.split`` (Threefry-2x32, JAX's default
    ``jax_threefry_partitionable=True`` scheme).

    Args:
        key: a PRNG key.
        num: the number of keys (an int), or a tuple giving the shape of the key array.

    Returns:
        uint32 ``Array`` of shape ``(num, 2)`` (or ``(*num, 2)`` for a tuple).

    Example:
        >>> from funcgrad import random
        >>> key, sub = random.split(random.key(0))
        >>> random.split(random.key(0), 3).shape
        (3, 2)
    """
    k = _key_value(key, "split")
    if isinstance(num, (Sequence, np.ndarray)) and not isinstance(num, (str, bytes)):
        shape = _shape_arg(num, "split", "num")
    else:
        if isinstance(num, (bool, np.bool_)) or not isinstance(num, (int, np.integer)):
            raise InvalidArgumentError(
                f"random.split: num must be an int or a tuple of ints, got {type(num).__name__} {num!r}"
            )
        if num < 0:
            raise InvalidValueError(f"random.split: num must be non-negative, got {num}")
        shape = (int(num),)
    xp = _ops(k)
    with xp.errstate():
        return xp.wrap(_split_keys(xp, k, shape))


def fold_in(key, data) -> Array:
    """Derive a new key from ``key`` and an integer ``data`` (e.g. a step or layer index).

    Bit-identical to ``jax.random.fold_in``. ``data`` is taken modulo ``2**32``
    (JAX raises ``OverflowError`` for Python ints outside ``[0, 2**32)`` and wraps
    NumPy integers).

    Args:
        key: a PRNG key.
        data: a scalar integer (Python int, NumPy integer or 0-d integer array; may be
            traced).

    Returns:
        A new key, uint32 ``Array`` of shape ``(2,)``.

    Example:
        >>> from funcgrad import random
        >>> k = random.key(0)
        >>> k1, k2 = random.fold_in(k, 1), random.fold_in(k, 2)
        >>> bool((k1 == k2).all())
        False
    """
    k = _key_value(key, "fold_in")
    if isinstance(data, Tracer):
        if data.shape != ():
            raise ShapeError(f"random.fold_in: data must be a scalar, got shape {data.shape}")
        if data.dtype.kind not in "iub":
            raise InvalidArgumentError(f"random.fold_in: data must be an integer, got dtype {data.dtype}")
        xp = _ops(k, data)
        d = xp.convert(data, np.dtype(np.uint64)) if data.dtype.kind == "i" else data
        d = xp.convert(d, _U32)
    else:
        if isinstance(data, (bool, np.bool_)):
            v = int(data)
        elif isinstance(data, int):
            v = data % 2**32
        else:
            arr = _to_numpy(data) if not isinstance(data, (list, tuple)) else np.asarray(data)
            if arr.ndim:
                raise ShapeError(f"random.fold_in: data must be a scalar integer, got an array of shape {arr.shape}")
            if arr.dtype.kind not in "iub":
                raise InvalidArgumentError(f"random.fold_in: data must be an integer, got dtype {arr.dtype}")
            v = int(arr) % 2**32
        xp = _ops(k)
        d = xp.const(v, _U32)
    with xp.errstate():
        return xp.wrap(_fold_in_keys(xp, k, d))


def bits(key, shape=(), dtype=None) -> Array:
    """Uniformly random unsigned integers (all bits random), as ``jax.random.bits``.

    Bit-identical to JAX for every unsigned dtype. 64-bit values combine the two
    Threefry output words (high word first).

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints.
        dtype: uint8, uint16, uint32 (default) or uint64. (JAX defaults to uint64 when
            ``jax_enable_x64`` is on.)

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> random.bits(random.key(0), (2,)).dtype
        dtype('uint32')
    """
    k = _key_value(key, "bits")
    shape = _shape_arg(shape, "bits")
    dt = _U32 if dtype is None else _dtype_arg(dtype, "bits")
    if dt.kind != "u":
        raise DTypeError(
            f"random.bits: dtype must be an unsigned integer dtype (uint8, uint16, uint32, uint64), got {dt}"
        )
    xp = _ops(k)
    with xp.errstate():
        return xp.wrap(_random_bits(xp, k, dt.itemsize * 8, shape), dt)


# =========================================================================================
# Public API: distributions
# =========================================================================================


def uniform(key, shape=(), dtype=None, minval=0.0, maxval=1.0) -> Array:
    """Uniform random values in ``[minval, maxval)``, as ``jax.random.uniform``.

    The mantissa of a float in ``[1, 2)`` is filled with random bits and 1 subtracted,
    so values are multiples of ``2**-nmant`` (float32: ``2**-23``); the same values as
    JAX. ``torch.rand(*size)`` is ``uniform(key, size)``.

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints (default ``()``).
        dtype: a floating dtype (default: the default float dtype, float32). Integer
            dtypes raise ``TypeError`` (use :func:`randint`).
        minval: lower bound (inclusive), a scalar or an array broadcastable to ``shape``.
        maxval: upper bound (exclusive), likewise.

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> x = random.uniform(random.key(0), (2, 3), minval=-1.0, maxval=1.0)
        >>> x.shape, bool(((x >= -1) & (x < 1)).all())
        ((2, 3), True)
    """
    k = _key_value(key, "uniform")
    shape = _shape_arg(shape, "uniform")
    dtype = _float_dtype(dtype, "uniform")
    _broadcast_shape("uniform", shape, _shape_of(minval), _shape_of(maxval))
    xp = _ops(k, minval, maxval)
    with xp.errstate():
        lo = _float_array_arg(xp, minval, "uniform", "minval", dtype)
        hi = _float_array_arg(xp, maxval, "uniform", "maxval", dtype)
        out = _uniform_impl(xp, k, shape, dtype, lo, hi)
        return xp.wrap(xp.broadcast_to(out, shape) if tuple(out.shape) != shape else out, dtype)


def normal(key, shape=(), dtype=None) -> Array:
    """Standard normal random values, as ``jax.random.normal``.

    Computed as ``sqrt(2) * erfinv(u)`` with ``u`` uniform in ``(-1, 1)`` and XLA's
    ``erf_inv`` polynomial: bit-identical to JAX on CPU for float32 and narrower dtypes,
    within a few ulp for float64. Complex dtypes give
    real and imaginary parts each of variance 1/2. ``torch.randn(*size)`` is
    ``normal(key, size)``; ``torch.normal(mean, std, size)`` is
    ``mean + std * normal(key, size)``.

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints (default ``()``).
        dtype: a floating or complex dtype (default: the default float dtype). Integer
            dtypes raise ``TypeError``.

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> random.normal(random.key(0), (1000,)).std() > 0.9
        Array(True, dtype=bool)
    """
    k = _key_value(key, "normal")
    shape = _shape_arg(shape, "normal")
    dtype = _float_dtype(dtype, "normal", allow_complex=True)
    xp = _ops(k)
    with xp.errstate():
        return xp.wrap(_normal_impl(xp, k, shape, dtype), dtype)


def _clip_convert_int(xp, val, dtype):
    """Convert an integer array to ``dtype``, clipping to its range instead of wrapping."""
    vi, di = np.iinfo(val.dtype), np.iinfo(dtype)
    lo, hi = max(int(vi.min), int(di.min)), min(int(vi.max), int(di.max))
    return xp.convert(xp.clip(val, xp.const(lo, val.dtype), xp.const(hi, val.dtype)), dtype)


def _urem(xp, x, y):
    """``x % y`` for unsigned arrays with XLA's ``x % 0 == x``."""
    zero = y == xp.const(0, y.dtype)
    safe = xp.where(zero, xp.const(1, y.dtype), y)
    return xp.where(zero, x, x % safe)


def _randint_impl(xp, keys, shape, minval, maxval, dtype):
    nbits = np.iinfo(dtype).bits
    unsigned = _UINT[nbits]
    if minval.dtype.kind not in "iu":
        minval = xp.convert(minval, np.dtype(np.int64))
    if maxval.dtype.kind not in "iu":
        maxval = xp.convert(maxval, np.dtype(np.int64))
    # maxval above dtype's range (e.g. randint(key, s, 0, 256, uint8)) widens the span by 1.
    top = int(np.iinfo(dtype).max)
    top_in_maxval = min(top, int(np.iinfo(maxval.dtype).max))
    maxval_out_of_range = maxval > xp.const(top_in_maxval, maxval.dtype)
    minval = _clip_convert_int(xp, minval, dtype)
    maxval = _clip_convert_int(xp, maxval, dtype)

    k1, k2 = _first_key(xp, keys)
    higher = _random_bits(xp, k1, nbits, shape)
    lower = _random_bits(xp, k2, nbits, shape)

    span = xp.convert(maxval - minval, unsigned)
    one = xp.const(1, unsigned)
    span = xp.where(maxval <= minval, one, span)
    span = xp.where(maxval_out_of_range & (maxval > minval), span + one, span)
    multiplier = _urem(xp, xp.const(2 ** (nbits // 2), unsigned), span)
    multiplier = _urem(xp, multiplier * multiplier, span)
    offset = _urem(xp, higher, span) * multiplier + _urem(xp, lower, span)
    offset = _urem(xp, offset, span)
    return minval + xp.convert(offset, dtype)


def randint(key, shape, minval, maxval, dtype=None) -> Array:
    """Uniform random integers in ``[minval, maxval)``, as ``jax.random.randint``.

    Uses JAX's algorithm (two words of random bits reduced modulo the span), so the
    values equal JAX's. ``torch.randint(low, high, size)`` is
    ``randint(key, size, low, high)``.

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints.
        minval: inclusive lower bound(s), integer scalar or array broadcastable to shape.
        maxval: exclusive upper bound(s); where ``maxval <= minval`` the result is
            ``minval``. Bounds outside the dtype's range are clipped to it (so
            ``randint(key, s, 0, 256, uint8)`` covers all of uint8).
        dtype: an integer dtype (default int64). Floating dtypes raise ``TypeError``.

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> x = random.randint(random.key(0), (5,), 0, 10)
        >>> x.dtype, bool(((x >= 0) & (x < 10)).all())
        (dtype('int64'), True)
    """
    k = _key_value(key, "randint")
    shape = _shape_arg(shape, "randint")
    dtype = _int_dtype(dtype, "randint")
    for nm, v in (("minval", minval), ("maxval", maxval)):
        dt = np.dtype(v.dtype) if hasattr(v, "dtype") else np.asarray(v).dtype
        if dt.kind not in "iub" and not (dt.kind == "f" and not isinstance(v, (Tracer, Array, np.ndarray))):
            raise DTypeError(f"random.randint: {nm} must be an integer (or integer array), got dtype {dt}")
    _broadcast_shape("randint", shape, _shape_of(minval), _shape_of(maxval))
    xp = _ops(k, minval, maxval)
    info = np.iinfo(dtype)
    with xp.errstate():
        lo, hi = xp.asarray(minval), xp.asarray(maxval)
        sample_dtype = dtype
        if info.bits < 32:
            # Sample in 32 bits to avoid biased results (as JAX).
            sample_dtype = np.dtype(np.int32)
            i32 = np.dtype(np.int32)
            lo = xp.clip(xp.convert(lo, i32), xp.const(int(info.min), i32), xp.const(int(info.max), i32))
            hi = xp.clip(xp.convert(hi, i32), xp.const(int(info.min), i32), xp.const(int(info.max) + 1, i32))
        out = _randint_impl(xp, k, shape, lo, hi, sample_dtype)
        out = xp.convert(out, dtype)
        return xp.wrap(xp.broadcast_to(out, shape) if tuple(out.shape) != shape else out, dtype)


def _prob_arg(xp, p, name):
    """A floating probability array (Python numbers use the default float dtype)."""
    if isinstance(p, (Tracer, Array, np.ndarray, np.generic)):
        dt = np.dtype(p.dtype)
        if not _is_floating(dt):
            raise DTypeError(f"random.{name}: p must have a floating dtype, got {dt}")
        return xp.asarray(p)
    arr = np.asarray(p)
    if arr.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"random.{name}: p must be a real number or array, got {type(p).__name__}")
    return xp.asarray(arr.astype(config.default_float_dtype))


def bernoulli(key, p=0.5, shape=None) -> Array:
    """Random booleans that are True with probability ``p``, as ``jax.random.bernoulli``.

    Computed as ``uniform(key, shape, p.dtype) < p``. ``torch.bernoulli(p)`` (a tensor of
    probabilities) is ``bernoulli(key, p)``.

    Args:
        key: a PRNG key.
        p: probability of True, a float or a floating array broadcastable to ``shape``.
            Python numbers use the default float dtype; integer arrays raise
            ``TypeError``.
        shape: the result shape (default: ``p``'s shape).

    Returns:
        bool ``Array``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import random
        >>> random.bernoulli(random.key(0), fnp.array([0.0, 1.0]))
        Array([False,  True], dtype=bool)
    """
    k = _key_value(key, "bernoulli")
    xp = _ops(k, p)
    with xp.errstate():
        p = _prob_arg(xp, p, "bernoulli")
        shape = _broadcast_shape("bernoulli", shape, tuple(p.shape))
        u = _uniform_impl(xp, k, shape, p.dtype, xp.const(0.0, p.dtype), xp.const(1.0, p.dtype))
        out = u < p
        return xp.wrap(xp.broadcast_to(out, shape) if tuple(out.shape) != shape else out, np.dtype(bool))


def _float_array_arg(xp, x, name, arg, dtype=None):
    """A floating array from user data (integers and Python data use the default float)."""
    if isinstance(x, (Tracer, Array, np.ndarray, np.generic)):
        dt = np.dtype(x.dtype)
        arr = xp.asarray(x)
    else:
        raw = np.asarray(x)
        if dtype is not None and raw.dtype.kind in "biuf":
            return xp.const(raw, dtype)  # Python numbers convert straight to dtype (0.1 stays exact)
        arr = xp.asarray(_to_numpy(x))
        dt = arr.dtype
    if dt.kind == "c" or dt.kind not in "biuf" and not _is_floating(dt):
        raise DTypeError(f"random.{name}: {arg} must be real, got dtype {dt}")
    target = dtype if dtype is not None else (dt if _is_floating(dt) else config.default_float_dtype)
    return xp.convert(arr, target)


def gumbel(key, shape=(), dtype=None) -> Array:
    """Standard Gumbel random values (``-log(-log(u))``), as ``jax.random.gumbel`` (mode "low").

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints.
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> random.gumbel(random.key(0), (2,)).shape
        (2,)
    """
    k = _key_value(key, "gumbel")
    shape = _shape_arg(shape, "gumbel")
    dtype = _float_dtype(dtype, "gumbel")
    xp = _ops(k)
    with xp.errstate():
        return xp.wrap(_gumbel_impl(xp, k, shape, dtype), dtype)


def exponential(key, shape=(), dtype=None) -> Array:
    """Standard exponential random values (``-log1p(-u)``), as ``jax.random.exponential``.

    Args:
        key: a PRNG key.
        shape: the result shape, a tuple of ints.
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> bool((random.exponential(random.key(0), (100,)) >= 0).all())
        True
    """
    k = _key_value(key, "exponential")
    shape = _shape_arg(shape, "exponential")
    dtype = _float_dtype(dtype, "exponential")
    xp = _ops(k)
    with xp.errstate():
        return xp.wrap(_exponential_impl(xp, k, shape, dtype), dtype)


def categorical(key, logits, axis=-1, shape=None, replace=True) -> Array:
    """Sample class indices with probabilities ``softmax(logits, axis)`` (Gumbel-max trick).

    As ``jax.random.categorical``: ``argmax(logits + gumbel)`` along ``axis``; with
    ``replace=False`` the Gumbel top-k trick draws distinct classes.

    Args:
        key: a PRNG key.
        logits: unnormalised log-probabilities; ``axis`` indexes the classes.
        axis: the class axis (default -1).
        shape: the result shape; must broadcast with the batch shape (``logits.shape``
            without ``axis``) and end with it. Default: the batch shape.
        replace: sample with replacement (default) or without (then the leading
            ``shape`` entries enumerate distinct draws).

    Returns:
        int64 ``Array`` of class indices.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import random
        >>> random.categorical(random.key(0), fnp.log(fnp.array([0.2, 0.8])), shape=(4,)).shape
        (4,)
    """
    k = _key_value(key, "categorical")
    xp = _ops(k, logits)
    with xp.errstate():
        logits = _float_array_arg(xp, logits, "categorical", "logits")
        nd = len(logits.shape)
        if nd == 0:
            raise ShapeError("random.categorical: logits must have at least one dimension (the classes)")
        if not -nd <= axis < nd:
            raise InvalidValueError(f"random.categorical: axis {axis} is out of bounds for logits of rank {nd}")
        axis = axis % nd
        batch_shape = tuple(np.delete(np.array(logits.shape, dtype=np.int64), axis).tolist())
        shape = batch_shape if shape is None else _shape_arg(shape, "categorical")
        if shape is not batch_shape:
            _broadcast_shape("categorical", shape, batch_shape)
        prefix = shape[: len(shape) - len(batch_shape)]
        dtype = logits.dtype
        if replace:
            logits_shape = list(shape[len(shape) - len(batch_shape) :])
            logits_shape.insert(axis, logits.shape[axis])
            g = _gumbel_impl(xp, k, (*prefix, *logits_shape), dtype)
            expanded = xp.expand_dims(logits, tuple(range(len(prefix)))) if prefix else logits
            out = xp.argmax(g + expanded, axis=len(prefix) + axis)
        else:
            n = math.prod(prefix)
            if n > logits.shape[axis]:
                raise InvalidValueError(
                    f"random.categorical: number of samples without replacement ({n}) cannot "
                    f"exceed the number of categories ({logits.shape[axis]})"
                )
            g = logits + _gumbel_impl(xp, k, tuple(logits.shape), dtype)
            idx = xp.top_k_indices(xp.moveaxis(g, axis, -1), n)  # batch_shape + (n,)
            idx = xp.moveaxis(idx, -1, 0)
            out = xp.reshape(idx, shape)
        return xp.wrap(out, np.dtype(np.int64))


def _shuffle(xp, keys, x, axis):
    """JAX's sort-based shuffle: rounds of sorting by fresh random 32-bit keys."""
    exponent = 3
    uint32max = np.iinfo(np.uint32).max
    size = math.prod(x.shape)
    num_rounds = int(np.ceil(exponent * np.log(max(1, size)) / np.log(uint32max)))
    for _ in range(num_rounds):
        keys, subkey = _first_key(xp, keys)
        sort_keys = _random_bits(xp, subkey, 32, tuple(x.shape))
        x = xp.sort_key_val(sort_keys, x, axis)
    return x


def permutation(key, x, axis=0, independent=False) -> Array:
    """A random permutation of ``range(x)`` or of ``x``'s entries along ``axis``.

    As ``jax.random.permutation`` (sort-based shuffle; the same result as JAX).
    ``torch.randperm(n)`` is ``permutation(key, n)`` (int64).

    Args:
        key: a PRNG key.
        x: an int ``n`` (permute ``arange(n)``) or an array.
        axis: the axis of ``x`` to shuffle along.
        independent: shuffle every slice along ``axis`` independently.

    Returns:
        ``Array``: the permuted range (int64) or the shuffled array.

    Example:
        >>> from funcgrad import random
        >>> sorted(random.permutation(random.key(0), 5).tolist())
        [0, 1, 2, 3, 4]
    """
    k = _key_value(key, "permutation")
    xp = _ops(k, x)
    with xp.errstate():
        if isinstance(x, (Tracer, Array, np.ndarray, np.generic)):
            arr = xp.asarray(x)
            if not isinstance(arr, Tracer) and type(arr) is not Array:
                arr = np.array(arr)  # never alias (and later freeze) the caller's buffer
        elif isinstance(x, (bool, np.bool_)):
            raise InvalidArgumentError("random.permutation: x must be an integer or an array, got a bool")
        elif isinstance(x, int):
            arr = None
        else:
            arr = xp.asarray(x)
        if arr is None or len(arr.shape) == 0:
            if arr is not None:
                if arr.dtype.kind not in "iu":
                    raise InvalidArgumentError(
                        f"random.permutation: x must be an integer or at least 1-dimensional, "
                        f"got a scalar of dtype {arr.dtype}"
                    )
                if isinstance(arr, Tracer):
                    raise InvalidArgumentError("random.permutation: the size n must be concrete, got a traced value")
                n = int(np.asarray(arr._value if type(arr) is Array else arr))
            else:
                n = x
            if n < 0:
                raise InvalidValueError(f"random.permutation: n must be non-negative, got {n}")
            if axis not in (0, -1):
                raise InvalidValueError(f"random.permutation: axis {axis} is out of bounds for a 1-D range")
            out = _shuffle(xp, k, xp.const(np.arange(n, dtype=np.int64), np.int64), 0)
            return xp.wrap(out, np.dtype(np.int64))
        nd = len(arr.shape)
        if not -nd <= axis < nd:
            raise InvalidValueError(f"random.permutation: axis {axis} is out of bounds for an array of rank {nd}")
        axis = axis % nd
        if independent or nd == 1:
            out = _shuffle(xp, k, arr, axis)
        else:
            ind = _shuffle(xp, k, xp.const(np.arange(arr.shape[axis], dtype=np.int64), np.int64), 0)
            out = xp.take(arr, ind, axis)
        return xp.wrap(out)


def choice(key, a, shape=(), replace=True, p=None, axis=0) -> Array:
    """Random sample from ``a`` (an int ``n`` meaning ``arange(n)``, or an array), as ``jax.random.choice``.

    Args:
        key: a PRNG key.
        a: an int or an array; samples are taken along ``axis``.
        shape: the sample shape, a tuple of ints (default ``()``, one sample).
        replace: sample with replacement (default) or without (then the samples are
            distinct entries; needs ``prod(shape) <= n``).
        p: optional probabilities of the ``n`` entries (1-D; need not be normalised).
        axis: the axis of ``a`` to sample along.

    Returns:
        ``Array`` of shape ``shape`` (int input) or ``a.shape[:axis] + shape +
        a.shape[axis+1:]``.

    Example:
        >>> from funcgrad import random
        >>> s = random.choice(random.key(0), 10, (5,), replace=False)
        >>> len(set(s.tolist()))
        5
    """
    k = _key_value(key, "choice")
    shape = _shape_arg(shape, "choice")
    xp = _ops(k, a, p)
    with xp.errstate():
        if isinstance(a, (bool, np.bool_)):
            raise InvalidArgumentError("random.choice: a must be an integer or an array, got a bool")
        if isinstance(a, int):
            arr = None
            n_inputs = a
        else:
            arr = xp.asarray(a)
            if not isinstance(arr, Tracer) and type(arr) is not Array:
                arr = np.array(arr)
            if len(arr.shape) == 0:
                if isinstance(arr, Tracer):
                    raise InvalidArgumentError(
                        "random.choice: the population size a must be concrete, got a traced value"
                    )
                if arr.dtype.kind not in "iu":
                    raise InvalidArgumentError(
                        f"random.choice: a must be an integer or an array, got a scalar of dtype {arr.dtype}"
                    )
                n_inputs = int(np.asarray(arr._value if type(arr) is Array else arr))
                arr = None
            else:
                nd = len(arr.shape)
                if not -nd <= axis < nd:
                    raise InvalidValueError(f"random.choice: axis {axis} is out of bounds for an array of rank {nd}")
                axis = axis % nd
                n_inputs = arr.shape[axis]
        n_draws = math.prod(shape)
        if arr is None:
            out_shape = shape
            out_dtype = np.dtype(np.int64)
        else:
            out_shape = tuple(arr.shape[:axis]) + shape + tuple(arr.shape[axis + 1 :])
            out_dtype = arr.dtype
        if n_draws == 0:
            return xp.wrap(xp.const(np.zeros(out_shape, out_dtype), out_dtype))
        if n_inputs <= 0:
            raise InvalidValueError("random.choice: a must be greater than 0 unless no samples are taken")
        if not replace and n_draws > n_inputs:
            raise InvalidValueError(
                f"random.choice: cannot take a larger sample (size {n_draws}) than the "
                f"population (size {n_inputs}) when replace=False"
            )
        if p is None:
            if replace:
                ind = _randint_impl(
                    xp, k, shape, xp.const(0, np.int64), xp.const(n_inputs, np.int64), np.dtype(np.int64)
                )
                result = ind if arr is None else xp.take(arr, ind, axis)
            else:
                src = xp.const(np.arange(n_inputs, dtype=np.int64), np.int64) if arr is None else arr
                ax = 0 if arr is None else axis
                if arr is None or len(arr.shape) == 1:
                    perm = _shuffle(xp, k, src, ax)
                else:
                    ind = _shuffle(xp, k, xp.const(np.arange(n_inputs, dtype=np.int64), np.int64), 0)
                    perm = xp.take(src, ind, ax)
                slices = (slice(None),) * ax + (slice(n_draws),)
                result = perm[slices]
        else:
            p_arr = _float_array_arg(xp, p, "choice", "p")
            if tuple(p_arr.shape) != (n_inputs,):
                raise ShapeError(
                    f"random.choice: p must be None or a 1-D array of the population size "
                    f"{n_inputs}, got shape {tuple(p_arr.shape)}"
                )
            if replace:
                p_cuml = xp.cumsum(p_arr)
                total = p_cuml[-1]
                u = _uniform_impl(xp, k, shape, p_arr.dtype, xp.const(0.0, p_arr.dtype), xp.const(1.0, p_arr.dtype))
                r = total * (xp.const(1.0, p_arr.dtype) - u)
                ind = xp.searchsorted_left(p_cuml, r)
            else:
                g = _gumbel_impl(xp, k, (n_inputs,), p_arr.dtype) + _log(xp, p_arr)
                ind = xp.top_k_indices(g, n_draws)
            result = ind if arr is None else xp.take(arr, ind, axis)
        return xp.wrap(xp.reshape(result, out_shape), out_dtype)


def truncated_normal(key, lower, upper, shape=None, dtype=None) -> Array:
    """Standard normal values truncated to the open interval ``(lower, upper)``.

    As ``jax.random.truncated_normal``: inverse-CDF sampling ``sqrt(2) * erfinv(u)`` with
    ``u`` uniform in ``(erf(lower/sqrt2), erf(upper/sqrt2))``, clipped into the open
    interval. ``nn.init.trunc_normal`` builds on it.

    Args:
        key: a PRNG key.
        lower: lower bound(s), a float or array.
        upper: upper bound(s), a float or array broadcastable with ``lower``.
        shape: the result shape (default: the broadcast shape of the bounds).
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype, strictly inside the bounds.

    Example:
        >>> from funcgrad import random
        >>> x = random.truncated_normal(random.key(0), -2.0, 2.0, (100,))
        >>> bool(((x > -2) & (x < 2)).all())
        True
    """
    k = _key_value(key, "truncated_normal")
    dtype = _float_dtype(dtype, "truncated_normal")
    shape = _broadcast_shape("truncated_normal", shape, _shape_of(lower), _shape_of(upper))
    xp = _ops(k, lower, upper)
    with xp.errstate():
        lo = _float_array_arg(xp, lower, "truncated_normal", "lower", dtype)
        hi = _float_array_arg(xp, upper, "truncated_normal", "upper", dtype)
        sqrt2 = xp.const(np.sqrt(2.0), dtype)
        a = xp.erf(lo / sqrt2)
        b = xp.erf(hi / sqrt2)
        u = _uniform_impl(xp, k, shape, dtype, a, b)
        out = sqrt2 * _erfinv(xp, u)
        out = xp.clip(out, xp.nextafter(lo, xp.const(np.inf, dtype)), xp.nextafter(hi, xp.const(-np.inf, dtype)))
        return xp.wrap(xp.broadcast_to(out, shape) if tuple(out.shape) != shape else out, dtype)


# -- gamma and beta (Marsaglia-Tsang, JAX's per-element rejection loop) ----------------------


def _not_traceable(name):
    raise NotImplementedError(
        f"random.{name} needs concrete arguments (its rejection loop is not yet "
        "traceable under jit/vmap); draw the sample outside the transformation and "
        "pass it in"
    )


def _gamma_batched(xp, keys, alpha, log_space):
    """One Gamma(alpha) sample per key (keys: (n, 2), alpha: (n,)), as JAX's ``_gamma_one``.

    JAX runs the rejection loop per element; here all elements advance together and
    finished ones are frozen, which consumes the keys exactly as JAX does.
    """
    if xp.traced:
        _not_traceable("gamma")
    dtype = alpha.dtype
    c_ = lambda v: np.asarray(v, dtype)  # noqa: E731
    one, zero = c_(1), c_(0)
    boost_mask = alpha >= one
    alpha_orig = alpha
    alpha = np.where(boost_mask, alpha, alpha + one)
    d = alpha - c_(1.0 / 3.0)
    c = c_(1.0 / 3.0) / np.sqrt(d)

    keys, subkey = _first_key(xp, keys)
    n = alpha.shape[0]
    V = np.ones(n, dtype)
    active = np.ones(n, bool)
    keys = np.array(keys)
    while active.any():
        idx = np.nonzero(active)[0]
        k3 = _split_keys(xp, keys[idx], (3,))
        keys[idx] = k3[:, 0]
        x_key, u_key = k3[:, 1], k3[:, 2]
        # inner loop: x ~ N(0, 1) until v = 1 + x*c > 0
        x = np.zeros(idx.size, dtype)
        v = np.full(idx.size, -1, dtype)
        cc = c[idx]
        inner = np.ones(idx.size, bool)
        xk = np.array(x_key)
        while inner.any():
            j = np.nonzero(inner)[0]
            kk, sub = _first_key(xp, xk[j])
            xk[j] = kk
            xs = _normal_real(xp, sub, (), dtype)
            x[j] = xs
            v[j] = _fma(xp, xs, cc[j], np.broadcast_to(one, xs.shape))
            inner = v <= zero
        X = x * x
        Vn = v * v * v
        U = _uniform_impl(xp, u_key, (), dtype, c_(0.0), c_(1.0))
        V[idx] = Vn
        dd = d[idx]
        reject = (U >= one - c_(0.0331) * (X * X)) & (_log(xp, U) >= X * c_(0.5) + dd * (one - Vn + _log(xp, Vn)))
        active[idx] = reject
    if log_space:
        log_samples = -_exponential_impl(xp, subkey, (), dtype)
        log_boost = np.where(boost_mask | (log_samples == zero), zero, log_samples * (one / alpha_orig))
        return _log(xp, d) + _log(xp, V) + log_boost
    samples = one - _uniform_impl(xp, subkey, (), dtype, c_(0.0), c_(1.0))
    boost = np.where(boost_mask, one, np.power(samples, one / alpha_orig))
    return d * V * boost


def _gamma_impl(xp, k, a, shape, dtype, log_space):
    a = xp.broadcast_to(xp.convert(a, dtype), shape)
    n = math.prod(shape)
    keys = _split_keys(xp, k, (n,))
    flat = np.reshape(np.asarray(a), (n,))
    samples = _gamma_batched(xp, keys, flat, log_space)
    return np.reshape(samples, shape)


def _gamma_public(key, a, shape, dtype, name, log_space):
    k = _key_value(key, name)
    dtype = _float_dtype(dtype, name)
    shape = _broadcast_shape(name, shape, _shape_of(a))
    xp = _ops(k, a)
    if xp.traced:
        _not_traceable(name)
    with xp.errstate():
        a = _float_array_arg(xp, a, name, "a", dtype)
        return xp.wrap(_gamma_impl(xp, k, a, shape, dtype, log_space), dtype)


def gamma(key, a, shape=None, dtype=None) -> Array:
    """Gamma(a, 1) random values (shape parameter ``a``, unit scale), as ``jax.random.gamma``.

    Marsaglia-Tsang rejection sampling run per element with JAX's key schedule, so the
    values agree with JAX to rounding. For a scale ``theta`` multiply by it. Needs a
    concrete key (not yet traceable under ``jit``/``vmap``).

    Args:
        key: a PRNG key.
        a: shape parameter(s) > 0, a float or array broadcastable to ``shape``.
        shape: the result shape (default: ``a``'s shape).
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> x = random.gamma(random.key(0), 2.0, (1000,))
        >>> bool(abs(float(x.mean()) - 2.0) < 0.2)
        True
    """
    return _gamma_public(key, a, shape, dtype, "gamma", False)


def loggamma(key, a, shape=None, dtype=None) -> Array:
    """Logarithms of Gamma(a, 1) random values, accurate for small ``a``, as ``jax.random.loggamma``.

    Args:
        key: a PRNG key.
        a: shape parameter(s) > 0, a float or array broadcastable to ``shape``.
        shape: the result shape (default: ``a``'s shape).
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> random.loggamma(random.key(0), 0.01, (3,)).shape
        (3,)
    """
    return _gamma_public(key, a, shape, dtype, "loggamma", True)


def beta(key, a, b, shape=None, dtype=None) -> Array:
    """Beta(a, b) random values in ``[0, 1]``, as ``jax.random.beta``.

    Computed from two log-gamma samples, ``Ga / (Ga + Gb)``, scaled for precision. The
    mixup coefficient ``torch.distributions.Beta(alpha, alpha).sample()`` is
    ``beta(key, alpha, alpha)``. Needs a concrete key (not yet traceable).

    Args:
        key: a PRNG key.
        a: first shape parameter(s) ("alpha") > 0.
        b: second shape parameter(s) ("beta") > 0, broadcastable with ``a``.
        shape: the result shape (default: the broadcast shape of ``a`` and ``b``).
        dtype: a floating dtype (default: the default float dtype).

    Returns:
        ``Array`` of the given shape and dtype.

    Example:
        >>> from funcgrad import random
        >>> lam = random.beta(random.key(0), 0.4, 0.4)
        >>> bool(0.0 <= float(lam) <= 1.0)
        True
    """
    k = _key_value(key, "beta")
    dtype = _float_dtype(dtype, "beta")
    shape = _broadcast_shape("beta", shape, _shape_of(a), _shape_of(b))
    xp = _ops(k, a, b)
    if xp.traced:
        _not_traceable("beta")
    with xp.errstate():
        a = _float_array_arg(xp, a, "beta", "a", dtype)
        b = _float_array_arg(xp, b, "beta", "b", dtype)
        key_a, key_b = _first_key(xp, k)
        log_ga = _gamma_impl(xp, key_a, a, shape, dtype, True)
        log_gb = _gamma_impl(xp, key_b, b, shape, dtype, True)
        log_max = np.maximum(log_ga, log_gb)
        ga = np.exp(log_ga - log_max)
        gb = np.exp(log_gb - log_max)
        return xp.wrap(ga / (ga + gb), dtype)
