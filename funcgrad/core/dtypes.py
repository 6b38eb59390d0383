"""The dtype policy (API.md section 1).

* Default float dtype float32 (``config.default_float_dtype``), default int int64.
* Python scalars are *weak*: they adopt the dtype of the array they meet (NEP 50).
* Array-array promotion is NumPy's, except that an integer or bool array combined with
  a floating (or complex) array gives the floating dtype, as JAX and PyTorch do
  (NumPy would widen int64 + float32 to float64).
"""

from __future__ import annotations

import functools

import numpy as np

from .config import config
from .errors import DTypeError, InvalidArgumentError

try:  # bfloat16 is provided by ml_dtypes (an optional dependency, installed with jax).
    import ml_dtypes as _ml_dtypes

    bfloat16 = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - exercised only without ml_dtypes
    _ml_dtypes = None
    bfloat16 = None

bool_ = np.dtype(np.bool_)
int8, int16, int32, int64 = (np.dtype(t) for t in ("int8", "int16", "int32", "int64"))
uint8, uint16, uint32, uint64 = (np.dtype(t) for t in ("uint8", "uint16", "uint32", "uint64"))
float16, float32, float64 = (np.dtype(t) for t in ("float16", "float32", "float64"))
complex64, complex128 = np.dtype("complex64"), np.dtype("complex128")

# The dtype of gradients with respect to integer inputs (as JAX's float0): it holds no data.
float0 = np.dtype([("float0", np.void, 0)])

_WEAK_TYPES = (bool, int, float, complex)


def is_floating(dtype) -> bool:
    """True for float16/bfloat16/float32/float64."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == bfloat16


def is_inexact(dtype) -> bool:
    """True for floating and complex dtypes (the ones that can be differentiated)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "fc" or dtype == bfloat16


def is_integer(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"


def default_float():
    return config.default_float_dtype


def canonicalize(dtype) -> np.dtype:
    """Turn a user dtype spec (``float``, ``"float32"``, ``np.int32``...) into a numpy dtype."""
    if dtype is float:
        return config.default_float_dtype
    if dtype is int:
        return int64
    if dtype is complex:
        return config.default_complex_dtype
    if dtype is bool:
        return bool_
    if isinstance(dtype, str) and dtype == "bfloat16":
        if bfloat16 is None:
            raise DTypeError("bfloat16 needs the ml_dtypes package: pip install ml_dtypes")
        return bfloat16
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise DTypeError(f"not a dtype: {dtype!r}") from e


def python_scalar_dtype(x) -> np.dtype:
    """The dtype a lone Python scalar gets (bool, int64, default float, default complex)."""
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return config.default_float_dtype
    if isinstance(x, complex):
        return config.default_complex_dtype
    raise InvalidArgumentError(f"not a Python scalar: {type(x).__name__}")


def _float_of_complex(dtype):
    return float32 if dtype == complex64 else float64


def _complex_of(dtype):
    return complex128 if dtype == float64 else complex64


@functools.lru_cache(maxsize=4096)
def _promote_strong(dtypes: tuple) -> np.dtype:
    inexact = [d for d in dtypes if is_inexact(d)]
    if inexact and len(inexact) < len(dtypes):
        dtypes = tuple(inexact)  # int/bool arrays defer to the floating operands
    if bfloat16 is not None and bfloat16 in dtypes:
        rest = {d for d in dtypes if d != bfloat16}
        if not rest:
            return bfloat16
        # bfloat16 with float16 has no exact common type: use float32 (as JAX does).
        if rest == {float16}:
            return float32
        dtypes = tuple(float32 if d == bfloat16 else d for d in dtypes)
    return np.result_type(*dtypes)


@functools.lru_cache(maxsize=4096)
def _promote(key: tuple, default_float: np.dtype) -> np.dtype:
    # default_float is part of the cache key: the answer depends on it.
    strong = tuple(k for k in key if isinstance(k, np.dtype))
    weak = [k for k in key if not isinstance(k, np.dtype)]
    if not strong:
        # Only Python scalars: the widest kind wins, with funcgrad's defaults.
        for kind, dt in (
            (complex, config.default_complex_dtype),
            (float, config.default_float_dtype),
            (int, int64),
            (bool, bool_),
        ):
            if kind in weak:
                return dt
    result = _promote_strong(strong)
    if complex in weak and result.kind != "c":
        return _complex_of(result) if is_floating(result) else config.default_complex_dtype
    if float in weak and not is_inexact(result):
        return config.default_float_dtype
    if int in weak and result == bool_:
        return int64
    return result


def result_type(*args) -> np.dtype:
    """The dtype of an elementwise operation on ``args`` (arrays, dtypes or Python scalars).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.result_type(fnp.int32, 1.5)
        dtype('float32')
    """
    key = []
    for a in args:
        t = type(a)
        if t in _WEAK_TYPES:
            key.append(t)
        elif isinstance(a, np.dtype):
            key.append(a)
        elif isinstance(a, type):  # a scalar type such as np.int8 (which has a .dtype descriptor)
            key.append(canonicalize(a))
        elif hasattr(a, "dtype"):
            key.append(np.dtype(a.dtype))
        elif isinstance(a, _WEAK_TYPES):  # subclasses of int (e.g. IntEnum)
            key.append(bool if isinstance(a, bool) else int if isinstance(a, int) else float)
        else:
            key.append(canonicalize(a))
    return _promote(tuple(key), config.default_float_dtype)


def dtype_of_data(x) -> np.dtype:
    """The dtype ``fnp.asarray(x)`` gives: numpy/Array dtypes kept, Python data canonicalised."""
    if hasattr(x, "dtype"):
        return np.dtype(x.dtype)
    if type(x) in _WEAK_TYPES:
        return python_scalar_dtype(x)
    return canonical_numpy(np.asarray(x)).dtype


def canonical_numpy(arr: np.ndarray) -> np.ndarray:
    """Map NumPy's Python-data defaults (float64, complex128) to funcgrad's defaults."""
    if arr.dtype == float64 and config.default_float_dtype != float64:
        return arr.astype(config.default_float_dtype)
    if arr.dtype == complex128 and config.default_complex_dtype != complex128:
        return arr.astype(config.default_complex_dtype)
    return arr


def finfo(dtype):
    """Machine limits of a floating dtype (``bits, eps, max, min, tiny, nexp, nmant``)."""
    dtype = canonicalize(dtype)
    if dtype == bfloat16:
        return _ml_dtypes.finfo(dtype)
    return np.finfo(dtype)


def iinfo(dtype):
    """Machine limits of an integer dtype (``bits, min, max``)."""
    return np.iinfo(canonicalize(dtype))
