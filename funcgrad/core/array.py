"""``fg.Array``: an immutable n-d array backed by a read-only NumPy buffer.

Operators and methods are shared with tracers through :class:`ArrayOps`, which calls the
``funcgrad.numpy`` functions (bound in ``_fnp`` when that module is imported), so the same
user code runs eagerly and under every transformation.
"""

from __future__ import annotations

import numpy as np

from .device import cpu_device
from .errors import InvalidArgumentError, InvalidValueError

_fnp = None  # funcgrad.numpy, set by funcgrad/numpy/__init__.py (avoids an import cycle)


class ArrayOps:
    """Operators and array methods common to :class:`Array` and tracers."""

    __slots__ = ()
    __array_priority__ = 1000

    # -- arithmetic -------------------------------------------------------------------
    def __add__(self, o):
        return _fnp.add(self, o)

    def __radd__(self, o):
        return _fnp.add(o, self)

    def __sub__(self, o):
        return _fnp.subtract(self, o)

    def __rsub__(self, o):
        return _fnp.subtract(o, self)

    def __mul__(self, o):
        return _fnp.multiply(self, o)

    def __rmul__(self, o):
        return _fnp.multiply(o, self)

    def __truediv__(self, o):
        return _fnp.true_divide(self, o)

    def __rtruediv__(self, o):
        return _fnp.true_divide(o, self)

    def __floordiv__(self, o):
        return _fnp.floor_divide(self, o)

    def __rfloordiv__(self, o):
        return _fnp.floor_divide(o, self)

    def __mod__(self, o):
        return _fnp.remainder(self, o)

    def __rmod__(self, o):
        return _fnp.remainder(o, self)

    def __divmod__(self, o):
        return _fnp.divmod(self, o)

    def __pow__(self, o):
        return _fnp.power(self, o)

    def __rpow__(self, o):
        return _fnp.power(o, self)

    def __matmul__(self, o):
        return _fnp.matmul(self, o)

    def __rmatmul__(self, o):
        return _fnp.matmul(o, self)

    def __neg__(self):
        return _fnp.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _fnp.abs(self)

    def __invert__(self):
        return _fnp.invert(self)

    def __and__(self, o):
        return _fnp.bitwise_and(self, o)

    def __rand__(self, o):
        return _fnp.bitwise_and(o, self)

    def __or__(self, o):
        return _fnp.bitwise_or(self, o)

    def __ror__(self, o):
        return _fnp.bitwise_or(o, self)

    def __xor__(self, o):
        return _fnp.bitwise_xor(self, o)

    def __rxor__(self, o):
        return _fnp.bitwise_xor(o, self)

    def __lshift__(self, o):
        return _fnp.left_shift(self, o)

    def __rshift__(self, o):
        return _fnp.right_shift(self, o)

    def __lt__(self, o):
        return _fnp.less(self, o)

    def __le__(self, o):
        return _fnp.less_equal(self, o)

    def __gt__(self, o):
        return _fnp.greater(self, o)

    def __ge__(self, o):
        return _fnp.greater_equal(self, o)

    def __eq__(self, o):
        return _fnp.equal(self, o)

    def __ne__(self, o):
        return _fnp.not_equal(self, o)

    __hash__ = None  # arrays are unhashable, as in JAX and NumPy

    # -- indexing -----------------------------------------------------------------------
    def __getitem__(self, idx):
        return _fnp.getitem(self, idx)

    def __setitem__(self, idx, value):
        raise InvalidArgumentError(
            "funcgrad arrays are immutable and do not support item assignment "
            f"(x[{_fmt_index(idx)}] = ...). Use the functional form x = x.at[{_fmt_index(idx)}].set(value) "
            "(or .add / .multiply / .min / .max), which returns a new array."
        )

    @property
    def at(self):
        """Functional index updates: ``x.at[idx].set(v)``, ``.add``, ``.multiply``, ``.min``, ``.max``, ``.get``.

        Example:
            >>> import funcgrad.numpy as fnp
            >>> fnp.zeros(3).at[fnp.array([0, 0, 2])].add(1.0)
            Array([2., 0., 1.], dtype=float32)
        """
        return _IndexUpdateHelper(self)

    def __len__(self):
        if not self.shape:
            raise InvalidArgumentError("len() of unsized object (a 0-d array)")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise InvalidArgumentError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # -- conversion to Python -------------------------------------------------------
    def __bool__(self):
        return bool(self._concrete("bool() / if / while"))

    def __int__(self):
        return int(self._concrete("int()"))

    def __float__(self):
        return float(self._concrete("float()"))

    def __complex__(self):
        return complex(self._concrete("complex()"))

    def __index__(self):
        v = self._concrete("using an array as an index (__index__)")
        if v.dtype.kind not in "iub" or v.ndim:
            raise InvalidArgumentError(
                f"only integer scalar arrays can be used as an index, got {v.dtype}{list(v.shape)}"
            )
        return int(v)

    def item(self):
        """The single element as a Python scalar (the array must have exactly one element)."""
        v = self._concrete("item()")
        if v.size != 1:
            raise InvalidValueError(
                f"item(): can only convert an array of size 1 to a Python scalar, got shape {v.shape}"
            )
        return v.item()

    def tolist(self):
        """Nested Python lists of Python scalars."""
        return self._concrete("tolist()").tolist()

    # -- methods ----------------------------------------------------------------------
    @property
    def T(self):
        return _fnp.transpose(self)

    @property
    def mT(self):
        return _fnp.swapaxes(self, -1, -2)

    @property
    def real(self):
        return _fnp.real(self)

    @property
    def imag(self):
        return _fnp.imag(self)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return _fnp.reshape(self, shape, order=order)

    def astype(self, dtype):
        return _fnp.astype(self, dtype)

    def sum(self, axis=None, dtype=None, keepdims=False):
        return _fnp.sum(self, axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False):
        return _fnp.mean(self, axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, keepdims=False):
        return _fnp.prod(self, axis, dtype=dtype, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _fnp.max(self, axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _fnp.min(self, axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _fnp.argmax(self, axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _fnp.argmin(self, axis, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return _fnp.std(self, axis, ddof=ddof, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return _fnp.var(self, axis, ddof=ddof, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return _fnp.any(self, axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _fnp.all(self, axis, keepdims=keepdims)

    def cumsum(self, axis=None, dtype=None):
        return _fnp.cumsum(self, axis, dtype=dtype)

    def cumprod(self, axis=None, dtype=None):
        return _fnp.cumprod(self, axis, dtype=dtype)

    def squeeze(self, axis=None):
        return _fnp.squeeze(self, axis)

    def flatten(self):
        return _fnp.ravel(self)

    def ravel(self):
        return _fnp.ravel(self)

    def clip(self, min=None, max=None):
        return _fnp.clip(self, min, max)

    def round(self, decimals=0):
        return _fnp.round(self, decimals)

    def conj(self):
        return _fnp.conj(self)

    def dot(self, other):
        return _fnp.dot(self, other)

    def swapaxes(self, a, b):
        return _fnp.swapaxes(self, a, b)

    def repeat(self, repeats, axis=None):
        return _fnp.repeat(self, repeats, axis)

    def take(self, indices, axis=None):
        return _fnp.take(self, indices, axis)

    def sort(self, axis=-1):
        return _fnp.sort(self, axis)

    def argsort(self, axis=-1):
        return _fnp.argsort(self, axis)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return _fnp.diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1):
        return _fnp.trace(self, offset, axis1, axis2)

    def nonzero(self, size=None, fill_value=None):
        return _fnp.nonzero(self, size=size, fill_value=fill_value)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], int)):
            axes = axes[0]
        return _fnp.transpose(self, axes or None)


class Array(ArrayOps):
    """An immutable n-d array.

    Arrays are created with ``funcgrad.numpy`` functions; ``np.asarray(x)`` gives a
    read-only view of the data without copying.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> x = fnp.array([1.0, 2.0, 3.0])
        >>> x * 2
        Array([2., 4., 6.], dtype=float32)
    """

    __slots__ = ("_value", "_aval")

    def __init__(self, data, dtype=None):
        self._value = _fnp.asarray(data, dtype=dtype)._value
        self._aval = None

    shape = property(lambda self: self._value.shape)
    dtype = property(lambda self: self._value.dtype)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    device = property(lambda self: cpu_device())
    nbytes = property(lambda self: self._value.nbytes)

    @property
    def aval(self):
        aval = self._aval
        if aval is None:
            from .abstract import ShapedArray

            aval = self._aval = ShapedArray(self._value.shape, self._value.dtype)
        return aval

    def devices(self):
        return {cpu_device()}

    def _concrete(self, what):
        return self._value

    def __array__(self, dtype=None, copy=None):
        v = self._value
        if dtype is not None and np.dtype(dtype) != v.dtype:
            return v.astype(dtype)
        if copy:
            return v.copy()
        return v

    def block_until_ready(self):
        return self

    def __repr__(self):
        v = self._value
        name = v.dtype.name
        if v.size == 0:
            return f"Array([], shape={v.shape}, dtype={name})"
        body = np.array2string(v, separator=", ", prefix="Array(")
        return f"Array({body}, dtype={name})"

    def __str__(self):
        return str(self._value)

    def __format__(self, spec):
        if self._value.ndim == 0:
            return format(self._value.item(), spec)
        return format(str(self), spec)

    def __reduce__(self):  # pickling (multiprocessing), not the checkpoint format
        return (wrap_ndarray, (np.array(self._value),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def wrap_ndarray(v) -> Array:
    """Wrap a NumPy result as an Array without copying (internal; ``v`` must not be shared)."""
    if type(v) is not np.ndarray:
        v = np.asarray(v)
    v.flags.writeable = False
    a = object.__new__(Array)
    a._value = v
    a._aval = None
    return a


def _fmt_index(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for p in parts:
        if isinstance(p, slice):
            out.append(
                ":" if p == slice(None) else f"{'' if p.start is None else p.start}:{'' if p.stop is None else p.stop}"
            )
        elif p is Ellipsis:
            out.append("...")
        elif isinstance(p, (int, type(None))):
            out.append(repr(p))
        else:
            out.append("idx")
    return ", ".join(out)


class _IndexUpdateHelper:
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getitem__(self, idx):
        return _IndexUpdateRef(self.array, idx)


class _IndexUpdateRef:
    """``x.at[idx]``: each method returns a new array; the original is unchanged."""

    __slots__ = ("array", "index")

    def __init__(self, array, index):
        self.array, self.index = array, index

    def get(self, mode=None, fill_value=None):
        return _fnp.getitem(self.array, self.index, mode=mode, fill_value=fill_value)

    def set(self, values, mode=None):
        return _fnp.index_update(self.array, self.index, values, "set", mode)

    def add(self, values, mode=None):
        return _fnp.index_update(self.array, self.index, values, "add", mode)

    def multiply(self, values, mode=None):
        return _fnp.index_update(self.array, self.index, values, "mul", mode)

    mul = multiply

    def min(self, values, mode=None):
        return _fnp.index_update(self.array, self.index, values, "min", mode)

    def max(self, values, mode=None):
        return _fnp.index_update(self.array, self.index, values, "max", mode)


def as_array(x, where: str = "funcgrad"):
    """Arrays and tracers pass through; Python scalars and NumPy data become Arrays."""
    t = type(x)
    if t is Array or isinstance(x, ArrayOps):  # Array or a tracer
        return x
    if t in (bool, int, float, complex):
        from .dtypes import python_scalar_dtype

        return wrap_ndarray(np.asarray(x, python_scalar_dtype(x)))
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype == object:
            raise InvalidArgumentError(f"{where}: object arrays are not supported")
        return wrap_ndarray(np.array(x))
    if isinstance(x, Array):
        return x
    raise InvalidArgumentError(f"{where}: expected an array, a NumPy array or a Python scalar, got {t.__name__}")
