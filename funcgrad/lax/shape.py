"""Structural primitives: broadcast, reshape, transpose, squeeze, rev, slice, pad,
concatenate, dynamic_slice and dynamic_update_slice. All are linear; each transpose
rule sits next to its primitive.
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.errors import InvalidArgumentError, ShapeError
from ..core.primitive import Primitive
from ..transforms.jvp import deflinear, instantiate
from ..transforms.transpose import is_undefined


def _prim(name, impl, abstract_eval, transpose):
    p = Primitive(name)
    p.impl = impl
    p.abstract_eval = abstract_eval
    deflinear(p, transpose)
    return p


# -- broadcast_in_dim -----------------------------------------------------------------------


def _broadcast_in_dim_impl(x, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape)


def _broadcast_in_dim_abstract(x, shape, broadcast_dimensions):
    if len(broadcast_dimensions) != x.ndim:
        raise ShapeError(
            f"lax.broadcast_in_dim: operand of rank {x.ndim} needs {x.ndim} broadcast_dimensions, "
            f"got {broadcast_dimensions}"
        )
    for i, d in enumerate(broadcast_dimensions):
        if not 0 <= d < len(shape) or x.shape[i] not in (1, shape[d]):
            raise ShapeError(
                f"lax.broadcast_in_dim: cannot broadcast operand shape {x.shape} to {shape} "
                f"with broadcast_dimensions={broadcast_dimensions}"
            )
    return ShapedArray(shape, x.dtype)


def _broadcast_in_dim_transpose(ct, x, shape, broadcast_dimensions):
    from .reductions import reduce_sum

    in_shape = x.aval.shape
    sum_dims = tuple(d for d in range(len(shape)) if d not in broadcast_dimensions)
    unit_dims = tuple(d for i, d in enumerate(broadcast_dimensions) if in_shape[i] == 1 and shape[d] != 1)
    out = reduce_sum(ct, tuple(sorted(sum_dims + unit_dims))) if sum_dims or unit_dims else ct
    return [reshape(out, in_shape) if out.shape != in_shape else out]


broadcast_in_dim_p = _prim(
    "broadcast_in_dim", _broadcast_in_dim_impl, _broadcast_in_dim_abstract, _broadcast_in_dim_transpose
)


def broadcast_in_dim(operand, shape, broadcast_dimensions):
    """Broadcast ``operand`` to ``shape``; operand axis i becomes output axis ``broadcast_dimensions[i]``."""
    operand = as_array(operand, "lax.broadcast_in_dim")
    shape, bdims = tuple(int(s) for s in shape), tuple(int(d) for d in broadcast_dimensions)
    if operand.shape == shape and bdims == tuple(range(len(shape))):
        return operand
    return broadcast_in_dim_p.bind(operand, shape=shape, broadcast_dimensions=bdims)


def broadcast(operand, sizes):
    """Add leading dimensions ``sizes`` (``lax.broadcast``)."""
    operand = as_array(operand, "lax.broadcast")
    sizes = tuple(sizes)
    return broadcast_in_dim(operand, sizes + operand.shape, tuple(range(len(sizes), len(sizes) + operand.ndim)))


# -- reshape -------------------------------------------------------------------------------


def _reshape_abstract(x, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise ShapeError(
            f"lax.reshape: cannot reshape an array of shape {x.shape} ({x.size} elements) into shape {new_sizes}"
        )
    return ShapedArray(new_sizes, x.dtype)


reshape_p = _prim(
    "reshape",
    lambda x, new_sizes: x.reshape(new_sizes),
    _reshape_abstract,
    lambda ct, x, new_sizes: [reshape(ct, x.aval.shape)],
)


def reshape(operand, new_sizes, dimensions=None):
    """Reshape (row-major); ``dimensions`` first transposes the operand, as in JAX."""
    operand = as_array(operand, "lax.reshape")
    if dimensions is not None:
        operand = transpose(operand, dimensions)
    new_sizes = tuple(int(s) for s in new_sizes)
    if operand.shape == new_sizes:
        return operand
    return reshape_p.bind(operand, new_sizes=new_sizes)


# -- transpose ------------------------------------------------------------------------------


def _transpose_abstract(x, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ShapeError(
            f"lax.transpose: permutation {permutation} is not a permutation of the {x.ndim} axes "
            f"of an array of shape {x.shape}"
        )
    return ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype)


transpose_p = _prim(
    "transpose",
    lambda x, permutation: np.transpose(x, permutation),
    _transpose_abstract,
    lambda ct, x, permutation: [transpose(ct, tuple(np.argsort(permutation)))],
)


def transpose(operand, permutation):
    """Permute the axes of ``operand``."""
    operand = as_array(operand, "lax.transpose")
    permutation = tuple(int(p) for p in permutation)
    if permutation == tuple(range(operand.ndim)):
        return operand
    return transpose_p.bind(operand, permutation=permutation)


# -- squeeze / expand_dims ---------------------------------------------------------------------


def _squeeze_abstract(x, dimensions):
    for d in dimensions:
        if x.shape[d] != 1:
            raise ShapeError(f"lax.squeeze: cannot squeeze axis {d} of size {x.shape[d]} (shape {x.shape})")
    return ShapedArray(tuple(s for i, s in enumerate(x.shape) if i not in dimensions), x.dtype)


squeeze_p = _prim(
    "squeeze",
    lambda x, dimensions: np.squeeze(x, dimensions),
    _squeeze_abstract,
    lambda ct, x, dimensions: [reshape(ct, x.aval.shape)],
)


def squeeze(array, dimensions):
    """Remove the size-1 axes ``dimensions``."""
    array = as_array(array, "lax.squeeze")
    dims = tuple(sorted(int(d) % array.ndim for d in dimensions))
    if not dims:
        return array
    return squeeze_p.bind(array, dimensions=dims)


def expand_dims(array, dimensions):
    """Insert size-1 axes at positions ``dimensions`` of the result."""
    array = as_array(array, "lax.expand_dims")
    ndim = array.ndim + len(dimensions)
    dims = sorted(int(d) % ndim for d in dimensions)
    shape = list(array.shape)
    for d in dims:
        shape.insert(d, 1)
    return reshape(array, shape)


# -- rev -----------------------------------------------------------------------------------------

rev_p = _prim(
    "rev",
    lambda x, dimensions: np.flip(x, dimensions),
    lambda x, dimensions: ShapedArray(x.shape, x.dtype),
    lambda ct, x, dimensions: [rev(ct, dimensions)],
)


def rev(operand, dimensions):
    """Reverse ``operand`` along ``dimensions``."""
    operand = as_array(operand, "lax.rev")
    dims = tuple(sorted(int(d) % max(operand.ndim, 1) for d in dimensions))
    if not dims:
        return operand
    return rev_p.bind(operand, dimensions=dims)


# -- slice ----------------------------------------------------------------------------------


def _slice_impl(x, start_indices, limit_indices, strides):
    strides = strides or (1,) * x.ndim
    return x[tuple(np.s_[s:l:st] for s, l, st in zip(start_indices, limit_indices, strides))]


def _slice_abstract(x, start_indices, limit_indices, strides):
    strides = strides or (1,) * x.ndim
    if not (len(start_indices) == len(limit_indices) == len(strides) == x.ndim):
        raise ShapeError(
            f"lax.slice: operand of rank {x.ndim} needs {x.ndim} start and limit indices, got "
            f"{start_indices} and {limit_indices}"
        )
    shape = []
    for s, l, st, n in zip(start_indices, limit_indices, strides, x.shape):
        if not (0 <= s <= l <= n) or st < 1:
            raise ShapeError(f"lax.slice: invalid slice [{s}:{l}:{st}] for an axis of size {n} (shape {x.shape})")
        shape.append(max(0, -(-(l - s) // st)))
    return ShapedArray(tuple(shape), x.dtype)


def _slice_transpose(ct, x, start_indices, limit_indices, strides):
    shape = x.aval.shape
    strides = strides or (1,) * len(shape)
    config = []
    for s, n, st, out in zip(start_indices, shape, strides, ct.shape):
        real_limit = s + (out - 1) * st + 1 if out else s
        config.append((s, n - real_limit, st - 1 if out else 0))
    if any(out == 0 for out in ct.shape):
        return [wrap_ndarray(np.zeros(shape, ct.dtype))]
    zero = wrap_ndarray(np.zeros((), ct.dtype))
    return [pad(ct, zero, tuple(config))]


slice_p = _prim("slice", _slice_impl, _slice_abstract, _slice_transpose)


def slice(operand, start_indices, limit_indices, strides=None):
    """Static slice ``operand[start:limit:stride]`` along every axis."""
    operand = as_array(operand, "lax.slice")
    start = tuple(int(s) for s in start_indices)
    limit = tuple(int(s) for s in limit_indices)
    st = None if strides is None or all(s == 1 for s in strides) else tuple(int(s) for s in strides)
    if start == (0,) * operand.ndim and limit == operand.shape and st is None:
        return operand
    return slice_p.bind(operand, start_indices=start, limit_indices=limit, strides=st)


def slice_in_dim(operand, start_index, limit_index, stride=1, axis=0):
    """Slice along one axis."""
    operand = as_array(operand, "lax.slice_in_dim")
    axis = axis % operand.ndim
    start, limit, strides = [0] * operand.ndim, list(operand.shape), [1] * operand.ndim
    n = operand.shape[axis]
    start[axis] = 0 if start_index is None else (start_index % n if start_index < 0 else start_index)
    limit[axis] = n if limit_index is None else (limit_index % n if limit_index < 0 else limit_index)
    strides[axis] = stride
    return slice(operand, start, limit, strides)


def index_in_dim(operand, index, axis=0, keepdims=True):
    """Take one index along ``axis``."""
    operand = as_array(operand, "lax.index_in_dim")
    out = slice_in_dim(operand, index, index + 1, 1, axis)
    return out if keepdims else squeeze(out, (axis,))


# -- pad ------------------------------------------------------------------------------------


def _pad_impl(x, padding_value, padding_config):
    # Interior padding first, then (possibly negative) edge padding.
    shape = []
    for n, (_, _, interior) in zip(x.shape, padding_config):
        shape.append(n + max(n - 1, 0) * interior)
    core = np.full(shape, padding_value, dtype=x.dtype)
    core[tuple(np.s_[:: interior + 1] for (_, _, interior) in padding_config)] = x
    pads = [(max(lo, 0), max(hi, 0)) for lo, hi, _ in padding_config]
    out = np.pad(core, pads, constant_values=padding_value) if any(p != (0, 0) for p in pads) else core
    crop = tuple(np.s_[-min(lo, 0) : out.shape[i] + min(hi, 0)] for i, (lo, hi, _) in enumerate(padding_config))
    return out[crop]


def _pad_abstract(x, padding_value, padding_config):
    if padding_value.shape != ():
        raise ShapeError(f"lax.pad: padding_value must be a scalar, got shape {padding_value.shape}")
    if len(padding_config) != x.ndim:
        raise ShapeError(f"lax.pad: padding_config needs {x.ndim} entries for shape {x.shape}, got {padding_config}")
    shape = []
    for n, (lo, hi, interior) in zip(x.shape, padding_config):
        if interior < 0:
            raise ShapeError(f"lax.pad: interior padding must be non-negative, got {interior}")
        size = lo + hi + n + max(n - 1, 0) * interior
        if size < 0:
            raise ShapeError(f"lax.pad: padding {padding_config} gives a negative size for shape {x.shape}")
        shape.append(size)
    return ShapedArray(tuple(shape), x.dtype)


def _pad_transpose(ct, x, padding_value, padding_config):
    from .reductions import reduce_sum

    out = []
    if is_undefined(x):
        # Undo edge padding (negative pads become zero-padding), then drop interior padding.
        lo_pads = [(min(lo, 0) * -1, min(hi, 0) * -1, 0) for lo, hi, _ in padding_config]
        zero = wrap_ndarray(np.zeros((), ct.dtype))
        t = pad(ct, zero, tuple(lo_pads)) if any(p != (0, 0, 0) for p in lo_pads) else ct
        start = [max(lo, 0) for lo, _, _ in padding_config]
        limit = [t.shape[i] - max(hi, 0) for i, (_, hi, _) in enumerate(padding_config)]
        strides = [interior + 1 for _, _, interior in padding_config]
        out.append(slice(t, start, limit, strides))
    else:
        out.append(None)
    if is_undefined(padding_value):
        total = reduce_sum(ct, tuple(range(ct.ndim)))
        inner = reduce_sum(out[0], tuple(range(out[0].ndim))) if out[0] is not None else None
        out.append(total if inner is None else total - inner)
    else:
        out.append(None)
    return out


pad_p = Primitive("pad")
pad_p.impl = _pad_impl
pad_p.abstract_eval = _pad_abstract


def _pad_jvp(primals, tangents, padding_config):
    x, pv = primals
    ans = pad(x, pv, padding_config)
    if tangents[0] is None and tangents[1] is None:
        return ans, None
    tx, tpv = instantiate(tangents[0], x), instantiate(tangents[1], pv)
    return ans, pad(tx, tpv, padding_config)


pad_p.jvp = _pad_jvp
pad_p.transpose = _pad_transpose


def pad(operand, padding_value, padding_config):
    """Pad with ``padding_config = [(low, high, interior), ...]``; negative low/high crop."""
    operand = as_array(operand, "lax.pad")
    if isinstance(padding_value, (bool, int, float, complex)):
        padding_value = wrap_ndarray(np.asarray(padding_value, operand.dtype))
    config = tuple((int(lo), int(hi), int(i)) for lo, hi, i in padding_config)
    return pad_p.bind(operand, as_array(padding_value), padding_config=config)


# -- concatenate -------------------------------------------------------------------------------


def _concat_abstract(*xs, dimension):
    ref = xs[0]
    for x in xs:
        if x.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape)) if i != dimension):
            raise ShapeError(
                f"lax.concatenate: all operands must have equal shapes except along axis {dimension}, "
                f"got {', '.join(str(x.shape) for x in xs)}"
            )
        if x.dtype != ref.dtype:
            raise InvalidArgumentError(
                f"lax.concatenate: operands must have equal dtypes, got {', '.join(x.dtype.name for x in xs)}"
            )
    shape = list(ref.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return ShapedArray(tuple(shape), ref.dtype)


def _concat_transpose(ct, *xs, dimension):
    out, offset = [], 0
    for x in xs:
        n = x.aval.shape[dimension] if is_undefined(x) else x.shape[dimension]
        if is_undefined(x):
            out.append(slice_in_dim(ct, offset, offset + n, 1, dimension))
        else:
            out.append(None)
        offset += n
    return out


concatenate_p = _prim(
    "concatenate", lambda *xs, dimension: np.concatenate(xs, dimension), _concat_abstract, _concat_transpose
)


def concatenate(operands, dimension):
    """Join ``operands`` (same dtype and shape except along ``dimension``)."""
    operands = [as_array(x, "lax.concatenate") for x in operands]
    if len(operands) == 1:
        return operands[0]
    return concatenate_p.bind(*operands, dimension=int(dimension))


# -- dynamic_slice / dynamic_update_slice ---------------------------------------------------------


def _clamped_starts(starts, shape, sizes):
    return tuple(int(min(max(int(s), 0), n - k)) for s, n, k in zip(starts, shape, sizes))


def _dynamic_slice_impl(x, *starts, slice_sizes):
    st = _clamped_starts(starts, x.shape, slice_sizes)
    return x[tuple(np.s_[s : s + k] for s, k in zip(st, slice_sizes))]


def _dynamic_slice_abstract(x, *starts, slice_sizes):
    if len(starts) != x.ndim or len(slice_sizes) != x.ndim:
        raise ShapeError(
            f"lax.dynamic_slice: operand of shape {x.shape} needs {x.ndim} start indices and "
            f"slice sizes, got {len(starts)} and {slice_sizes}"
        )
    for s in starts:
        if s.shape != () or s.dtype.kind not in "iu":
            raise InvalidArgumentError(f"lax.dynamic_slice: start indices must be integer scalars, got {s.str_short()}")
    if any(k > n or k < 0 for k, n in zip(slice_sizes, x.shape)):
        raise ShapeError(f"lax.dynamic_slice: slice_sizes {slice_sizes} exceed the operand shape {x.shape}")
    return ShapedArray(tuple(slice_sizes), x.dtype)


dynamic_slice_p = Primitive("dynamic_slice")
dynamic_slice_p.impl = _dynamic_slice_impl
dynamic_slice_p.abstract_eval = _dynamic_slice_abstract


def _dynamic_slice_jvp(primals, tangents, slice_sizes):
    x, *starts = primals
    ans = dynamic_slice_p.bind(x, *starts, slice_sizes=slice_sizes)
    if tangents[0] is None:
        return ans, None
    return ans, dynamic_slice_p.bind(tangents[0], *starts, slice_sizes=slice_sizes)


def _dynamic_slice_transpose(ct, x, *starts, slice_sizes):
    zeros = wrap_ndarray(np.zeros(x.aval.shape, ct.dtype))
    return [dynamic_update_slice_p.bind(zeros, ct, *starts)] + [None] * len(starts)


dynamic_slice_p.jvp = _dynamic_slice_jvp
dynamic_slice_p.transpose = _dynamic_slice_transpose


def _dus_impl(x, update, *starts):
    st = _clamped_starts(starts, x.shape, update.shape)
    out = x.copy()
    out[tuple(np.s_[s : s + k] for s, k in zip(st, update.shape))] = update
    return out


def _dus_abstract(x, update, *starts):
    if update.ndim != x.ndim or any(u > n for u, n in zip(update.shape, x.shape)) or len(starts) != x.ndim:
        raise ShapeError(
            f"lax.dynamic_update_slice: update of shape {update.shape} does not fit the operand "
            f"shape {x.shape} (with {len(starts)} start indices)"
        )
    if update.dtype != x.dtype:
        raise InvalidArgumentError(
            f"lax.dynamic_update_slice: update dtype {update.dtype} differs from operand dtype {x.dtype}"
        )
    return ShapedArray(x.shape, x.dtype)


dynamic_update_slice_p = Primitive("dynamic_update_slice")
dynamic_update_slice_p.impl = _dus_impl
dynamic_update_slice_p.abstract_eval = _dus_abstract


def _dus_jvp(primals, tangents):
    x, u, *starts = primals
    ans = dynamic_update_slice_p.bind(x, u, *starts)
    if tangents[0] is None and tangents[1] is None:
        return ans, None
    return ans, dynamic_update_slice_p.bind(instantiate(tangents[0], x), instantiate(tangents[1], u), *starts)


def _dus_transpose(ct, x, u, *starts):
    u_shape = u.aval.shape if is_undefined(u) else u.shape
    out = []
    if is_undefined(x):
        out.append(dynamic_update_slice_p.bind(ct, wrap_ndarray(np.zeros(u_shape, ct.dtype)), *starts))
    else:
        out.append(None)
    out.append(dynamic_slice_p.bind(ct, *starts, slice_sizes=tuple(u_shape)) if is_undefined(u) else None)
    return out + [None] * len(starts)


dynamic_update_slice_p.jvp = _dus_jvp
dynamic_update_slice_p.transpose = _dus_transpose


def _index_scalars(start_indices, where):
    from ..core.dtypes import is_integer

    out = []
    for s in start_indices:
        s = as_array(s, where)
        if s.shape != () or not is_integer(s.dtype):
            raise InvalidArgumentError(f"{where}: start indices must be integer scalars, got {s.dtype}{list(s.shape)}")
        out.append(s)
    return out


def dynamic_slice(operand, start_indices, slice_sizes):
    """Slice of static size ``slice_sizes`` at traced ``start_indices`` (clamped into range, as JAX)."""
    operand = as_array(operand, "lax.dynamic_slice")
    starts = _index_scalars(start_indices, "lax.dynamic_slice")
    return dynamic_slice_p.bind(operand, *starts, slice_sizes=tuple(int(k) for k in slice_sizes))


def dynamic_update_slice(operand, update, start_indices):
    """Write ``update`` into ``operand`` at traced ``start_indices`` (clamped); returns a new array."""
    operand = as_array(operand, "lax.dynamic_update_slice")
    starts = _index_scalars(start_indices, "lax.dynamic_update_slice")
    return dynamic_update_slice_p.bind(operand, as_array(update), *starts)


def dynamic_slice_in_dim(operand, start_index, slice_size, axis=0):
    operand = as_array(operand)
    starts = [0] * operand.ndim
    starts[axis] = start_index
    sizes = list(operand.shape)
    sizes[axis] = slice_size
    return dynamic_slice(operand, starts, sizes)


def dynamic_update_slice_in_dim(operand, update, start_index, axis):
    operand = as_array(operand)
    starts = [0] * operand.ndim
    starts[axis] = start_index
    return dynamic_update_slice(operand, update, starts)


# -- batching rules --------------------------------------------------------------------------


def _front(vals, dims):
    from ._batching import batch_size, bdim_to_front

    size = batch_size(vals, dims)
    return [bdim_to_front(v, d, size) for v, d in zip(vals, dims)], size


def _broadcast_in_dim_batch(vals, dims, shape, broadcast_dimensions):
    (x,), size = _front(vals, dims)
    return broadcast_in_dim_p.bind(
        x, shape=(size,) + tuple(shape), broadcast_dimensions=(0,) + tuple(b + 1 for b in broadcast_dimensions)
    ), 0


def _reshape_batch(vals, dims, new_sizes):
    (x,), size = _front(vals, dims)
    return reshape_p.bind(x, new_sizes=(size,) + tuple(new_sizes)), 0


def _transpose_batch(vals, dims, permutation):
    (x,), _ = _front(vals, dims)
    return transpose_p.bind(x, permutation=(0,) + tuple(p + 1 for p in permutation)), 0


def _squeeze_batch(vals, dims, dimensions):
    (x,), _ = _front(vals, dims)
    return squeeze_p.bind(x, dimensions=tuple(d + 1 for d in dimensions)), 0


def _rev_batch(vals, dims, dimensions):
    from ._batching import shift_axis

    (x,), (d,) = vals, dims
    return rev_p.bind(x, dimensions=tuple(shift_axis(a, d) for a in dimensions)), d


def _slice_batch(vals, dims, start_indices, limit_indices, strides):
    (x,), (d,) = vals, dims
    start, limit = list(start_indices), list(limit_indices)
    start.insert(d, 0)
    limit.insert(d, x.shape[d])
    st = None if strides is None else tuple(strides[:d]) + (1,) + tuple(strides[d:])
    return slice_p.bind(x, start_indices=tuple(start), limit_indices=tuple(limit), strides=st), d


def _pad_batch(vals, dims, padding_config):
    x, pv = vals
    dx, dpv = dims
    if dpv is None:
        cfg = list(padding_config)
        cfg.insert(dx, (0, 0, 0))
        return pad_p.bind(x, pv, padding_config=tuple(cfg)), dx
    # A per-example padding value: pad with zeros, then select the padding positions.
    from .elementwise import select_n_p

    (x, pv), size = _front([x, pv], [dx, dpv])
    cfg = ((0, 0, 0),) + tuple(padding_config)
    out = pad_p.bind(x, wrap_ndarray(np.zeros((), x.dtype)), padding_config=cfg)
    mask = _pad_impl(np.zeros(x.shape, bool), np.array(True), cfg)
    pv_full = broadcast_in_dim(pv, out.shape, (0,))
    return select_n_p.bind(wrap_ndarray(mask), out, pv_full), 0


def _concatenate_batch(vals, dims, dimension):
    xs, _ = _front(vals, dims)
    return concatenate_p.bind(*xs, dimension=dimension + 1), 0


def _start_index_arrays(starts, sdims, sizes, shape, size):
    """Gather-style index arrays (each of shape ``(size, *sizes)``) for per-example, clamped starts."""
    from ._batching import bdim_to_front
    from .elementwise import add, clamp, convert_element_type

    full = (size,) + tuple(sizes)
    arrays = [broadcast_in_dim(wrap_ndarray(np.arange(size, dtype=np.int64)), full, (0,))]
    for i, (s, sd, k, n) in enumerate(zip(starts, sdims, sizes, shape)):
        s = clamp(0, convert_element_type(s, np.int64), n - k)
        if sd is not None:
            s = broadcast_in_dim(bdim_to_front(s, sd, size), full, (0,))
        arrays.append(add(s, broadcast_in_dim(wrap_ndarray(np.arange(k, dtype=np.int64)), full, (i + 1,))))
    return arrays


def _dynamic_slice_batch(vals, dims, slice_sizes):
    from ._batching import batch_size, bdim_to_front

    x, *starts = vals
    dx, *sdims = dims
    size = batch_size(vals, dims)
    x = bdim_to_front(x, dx, size)
    if all(d is None for d in sdims):
        zero = wrap_ndarray(np.zeros((), starts[0].dtype if starts else np.int64))
        return dynamic_slice_p.bind(x, zero, *starts, slice_sizes=(size,) + tuple(slice_sizes)), 0
    from .indexing import getitem_p

    arrays = _start_index_arrays(starts, sdims, slice_sizes, x.shape[1:], size)
    spec = tuple(("a", k) for k in range(len(arrays)))
    return getitem_p.bind(x, *arrays, spec=spec, mode="clip", fill_value=None), 0


def _dynamic_update_slice_batch(vals, dims):
    from ._batching import batch_size, bdim_to_front

    x, u, *starts = vals
    dx, du, *sdims = dims
    size = batch_size(vals, dims)
    x, u = bdim_to_front(x, dx, size), bdim_to_front(u, du, size)
    if all(d is None for d in sdims):
        zero = wrap_ndarray(np.zeros((), starts[0].dtype if starts else np.int64))
        return dynamic_update_slice_p.bind(x, u, zero, *starts), 0
    from .indexing import index_update_p

    arrays = _start_index_arrays(starts, sdims, u.shape[1:], x.shape[1:], size)
    spec = tuple(("a", k) for k in range(len(arrays)))
    return index_update_p.bind(x, u, *arrays, spec=spec, op="set"), 0


broadcast_in_dim_p.batch = _broadcast_in_dim_batch
reshape_p.batch = _reshape_batch
transpose_p.batch = _transpose_batch
squeeze_p.batch = _squeeze_batch
rev_p.batch = _rev_batch
slice_p.batch = _slice_batch
pad_p.batch = _pad_batch
concatenate_p.batch = _concatenate_batch
dynamic_slice_p.batch = _dynamic_slice_batch
dynamic_update_slice_p.batch = _dynamic_update_slice_batch
