"""Abstract values: what a tracer knows about an array (its shape and dtype)."""

from __future__ import annotations

import numpy as np

_SHORT = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "bfloat16": "bf16",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "bool": "bool",
    "complex64": "c64",
    "complex128": "c128",
}


class ShapedArray:
    """The abstract value of an array: ``shape`` and ``dtype``, nothing about its data."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def __eq__(self, other):
        return type(other) is ShapedArray and self.shape == other.shape and self.dtype == other.dtype

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def str_short(self) -> str:
        name = _SHORT.get(self.dtype.name, self.dtype.name)
        return f"{name}[{','.join(map(str, self.shape))}]"

    __str__ = str_short

    def __repr__(self):
        return f"ShapedArray({self.shape}, {self.dtype.name})"


def aval_of_value(x) -> ShapedArray:
    """Abstract value of a concrete array, numpy array or Python scalar."""
    aval = getattr(x, "aval", None)
    if aval is not None:
        return aval
    from .dtypes import dtype_of_data

    return ShapedArray(np.shape(x), dtype_of_data(x))
