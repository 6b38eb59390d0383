"""``funcgrad.lax``: the primitive operations, with JAX's names and argument orders."""

from .control_flow import cond, fori_loop, map, scan, switch, while_loop  # noqa: F401
from .dot import dot, dot_general  # noqa: F401
from .elementwise import (  # noqa: F401
    abs, acos, acosh, add, asin, asinh, atan, atan2, atanh, bitcast_convert_type, bitwise_and, bitwise_not,
    bitwise_or, bitwise_xor, cbrt, ceil, clamp, complex_ as complex, conj, convert_element_type, cos, cosh, div,
    eq, exp, exp2, expm1, floor, ge, gt, imag, integer_pow, is_finite, isnan, le, log, log1p, logistic, lt, max,
    min, mul, ne, neg, nextafter, population_count, pow, real, reciprocal, rem, round_ as round, rsqrt, select,
    select_n, shift_left, shift_right_arithmetic, shift_right_logical, sign, sin, sinh, sqrt, square,
    stop_gradient, sub, tan, tanh,
)
from .reductions import (  # noqa: F401
    argmax, argmin, cummax, cummin, cumprod, cumsum, reduce_and, reduce_max, reduce_min, reduce_or,
    reduce_prod, reduce_sum,
)
from .shape import (  # noqa: F401
    broadcast, broadcast_in_dim, concatenate, dynamic_slice, dynamic_slice_in_dim, dynamic_update_slice,
    dynamic_update_slice_in_dim, expand_dims, index_in_dim, pad, reshape, rev, slice, slice_in_dim, squeeze,
    transpose,
)
from .sort import argsort, sort, top_k  # noqa: F401

from .linalg import cholesky, eigh, qr, svd, triangular_solve  # noqa: E402,F401
from .conv import (  # noqa: E402,F401
    ConvDimensionNumbers, conv, conv_dimension_numbers, conv_general_dilated, conv_transpose,
    conv_with_general_padding, padtype_to_pads,
)
from .windowed import reduce_window, reduce_window_max, reduce_window_min, reduce_window_sum  # noqa: E402,F401
from .gather import (  # noqa: E402,F401
    GatherDimensionNumbers, GatherScatterMode, ScatterDimensionNumbers, gather, scatter, scatter_add,
)
from .special import digamma, erf, erf_inv, erfc, erfcx, igamma, igammac, lgamma, polygamma  # noqa: E402,F401
