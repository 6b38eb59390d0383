"""``funcgrad.numpy``: the NumPy API on immutable, differentiable arrays (like ``jax.numpy``).

Results match NumPy's values and dtypes, except for funcgrad's dtype defaults (float32,
int64) and the int-with-float promotion rule (see ``funcgrad.core.dtypes``).
"""

import numpy as _np

from ..core import array as _array_module
from ..core.array import Array as ndarray  # noqa: F401
from ..core.dtypes import (  # noqa: F401
    bfloat16,
    bool_,
    complex64,
    complex128,
    finfo,
    float0,
    float16,
    float32,
    float64,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from .creation import (  # noqa: F401
    arange,
    array,
    asarray,
    diag,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    identity,
    linspace,
    logspace,
    meshgrid,
    ones,
    ones_like,
    tri,
    tril,
    triu,
    zeros,
    zeros_like,
)
from .indexing import (  # noqa: F401
    argwhere,
    compress,
    extract,
    flatnonzero,
    getitem,
    index_update,
    nonzero,
    put_along_axis,
    take,
    take_along_axis,
    where,
)
from .products import cross, diagonal, dot, einsum, inner, kron, matmul, outer, tensordot, trace, vdot  # noqa: F401
from .reductions import (  # noqa: F401
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    average,
    count_nonzero,
    cumprod,
    cumsum,
    max,
    mean,
    median,
    min,
    prod,
    std,
    sum,
    var,
)
from .shape_ops import (  # noqa: F401
    array_split,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    broadcast_arrays,
    broadcast_to,
    column_stack,
    concatenate,
    dstack,
    expand_dims,
    flip,
    fliplr,
    flipud,
    hsplit,
    hstack,
    matrix_transpose,
    moveaxis,
    pad,
    permute_dims,
    ravel,
    repeat,
    reshape,
    roll,
    rot90,
    row_stack,
    split,
    squeeze,
    stack,
    swapaxes,
    tile,
    transpose,
    vsplit,
    vstack,
)
from .sorting import argsort, searchsorted, sort, unique  # noqa: F401
from .ufuncs import (  # noqa: F401
    abs,
    absolute,
    acos,
    acosh,
    add,
    allclose,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    around,
    array_equal,
    array_equiv,
    asin,
    asinh,
    astype,
    atan,
    atan2,
    atanh,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    cbrt,
    ceil,
    clip,
    conj,
    conjugate,
    copysign,
    cos,
    cosh,
    deg2rad,
    degrees,
    divide,
    divmod,
    equal,
    exp,
    exp2,
    expm1,
    fix,
    float_power,
    floor,
    floor_divide,
    fmax,
    fmin,
    fmod,
    greater,
    greater_equal,
    heaviside,
    hypot,
    imag,
    invert,
    isclose,
    isfinite,
    isinf,
    isnan,
    isneginf,
    isposinf,
    left_shift,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    nan_to_num,
    negative,
    nextafter,
    not_equal,
    positive,
    pow,
    power,
    rad2deg,
    radians,
    real,
    reciprocal,
    remainder,
    right_shift,
    rint,
    round,
    sign,
    signbit,
    sin,
    sinc,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    true_divide,
    trunc,
)
from . import linalg  # noqa: F401,E402

pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
newaxis = None
euler_gamma = _np.euler_gamma
dtype = _np.dtype
integer, floating, inexact, number, signedinteger, unsignedinteger, complexfloating = (
    _np.integer,
    _np.floating,
    _np.inexact,
    _np.number,
    _np.signedinteger,
    _np.unsignedinteger,
    _np.complexfloating,
)


def issubdtype(arg1, arg2):
    """``np.issubdtype`` that also knows bfloat16 is a floating type."""
    if bfloat16 is not None and _np.dtype(arg1) == bfloat16:
        if isinstance(arg2, type) and issubclass(arg2, _np.generic):
            return arg2 in (_np.floating, _np.inexact, _np.number, _np.generic)
        return _np.dtype(arg2) == bfloat16
    return _np.issubdtype(arg1, arg2)


def shape(a):
    return asarray(a).shape


def ndim(a):
    return asarray(a).ndim


def size(a, axis=None):
    x = asarray(a)
    return x.size if axis is None else x.shape[axis]


def isscalar(element):
    return _np.isscalar(element) or (hasattr(element, "ndim") and element.ndim == 0)


_array_module._fnp = __import__(__name__, fromlist=["_"])
