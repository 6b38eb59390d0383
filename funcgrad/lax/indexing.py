"""NumPy-style indexing primitives: ``getitem`` (gather) and ``index_update`` (scatter).

An index is described by a static *spec* (a tuple) plus the dynamic integer index arrays
it refers to. Spec entries: ``("s", start, stop, step)`` a slice, ``("n",)`` a new axis,
``("i", k)`` a static integer, ``("a", j)`` the j-th index array. Boolean masks are turned
into integer arrays by ``funcgrad.numpy`` before they reach these primitives.

Out-of-range array indices follow JAX: reads clamp (or fill with ``mode="fill"``),
updates drop the out-of-range positions. ``index_update`` with ``op="add"`` (and mul/min/max)
applies every repeated index; ``op="set"`` keeps one of the written values.
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import wrap_ndarray
from ..core.primitive import Primitive
from ..transforms.jvp import instantiate
from ..transforms.transpose import is_undefined
from ..core.errors import IndexOutOfRangeError, InvalidArgumentError, InvalidValueError


def _array_axes(spec, ndim):
    """Map each spec entry to the operand axis it consumes (None for new axes)."""
    axes, d = [], 0
    for e in spec:
        if e[0] == "n":
            axes.append(None)
        else:
            axes.append(d)
            d += 1
    return axes


def _np_index(spec, arrays, shape, mode):
    """Build the NumPy index tuple; array indices are normalised for ``mode``."""
    idx = []
    for e, ax in zip(spec, _array_axes(spec, len(shape))):
        kind = e[0]
        if kind == "s":
            idx.append(slice(e[1], e[2], e[3]))
        elif kind == "n":
            idx.append(None)
        elif kind == "i":
            idx.append(e[1])
        else:
            a = np.asarray(arrays[e[1]])
            n = shape[ax]
            a = np.where(a < 0, a + n, a)
            if mode == "clip":
                a = np.clip(a, 0, max(n - 1, 0))
            elif mode == "pad":  # out-of-range -> the extra slot n of a padded operand
                a = np.where((a < 0) | (a >= n), n, a)
            idx.append(a)
    return tuple(idx)


def _oob_mask(spec, arrays, shape):
    masks = []
    for e, ax in zip(spec, _array_axes(spec, len(shape))):
        if e[0] == "a":
            a = np.asarray(arrays[e[1]])
            n = shape[ax]
            masks.append((a < -n) | (a >= n))
    return masks


def _padded(x, spec, fill):
    """Pad the array-indexed axes with one slot of ``fill`` and pin slices to the old extent."""
    axes = _array_axes(spec, x.ndim)
    adv = {ax for e, ax in zip(spec, axes) if e[0] == "a"}
    padded = np.pad(x, [(0, 1) if d in adv else (0, 0) for d in range(x.ndim)], constant_values=fill)
    spec_p = tuple(
        ("s",) + slice(e[1], e[2], e[3]).indices(x.shape[ax]) if e[0] == "s" else e for e, ax in zip(spec, axes)
    )
    return padded, spec_p


def _any_oob(spec, arrays, shape):
    return any(m.any() for m in _oob_mask(spec, arrays, shape))


def _getitem_impl(x, *arrays, spec, mode, fill_value):
    if mode == "fill" and arrays and _any_oob(spec, arrays, x.shape):
        if fill_value is None:
            fill_value = np.nan if x.dtype.kind in "fc" else (np.iinfo(x.dtype).min if x.dtype.kind in "iu" else True)
        padded, spec_p = _padded(x, spec, fill_value)
        return padded[_np_index(spec_p, arrays, x.shape, "pad")]
    return x[_np_index(spec, arrays, x.shape, "clip")]


def _getitem_abstract(x, *arrays, spec, mode, fill_value):
    for a in arrays:
        if a.dtype.kind not in "iu":
            raise IndexOutOfRangeError(f"indexing: index arrays must be integers, got {a.dtype}")
    probe = np.broadcast_to(np.zeros((), np.int8), tuple(max(s, 1) for s in x.shape))
    dummies = [np.zeros(a.shape, np.int64) for a in arrays]
    out_shape = probe[_np_index(spec, dummies, x.shape, None)].shape
    if 0 in x.shape:
        out_shape = np.empty(x.shape, np.int8)[_np_index(spec, dummies, x.shape, None)].shape
    return ShapedArray(out_shape, x.dtype)


getitem_p = Primitive("getitem")
getitem_p.impl = _getitem_impl
getitem_p.abstract_eval = _getitem_abstract


def _getitem_jvp(primals, tangents, spec, mode, fill_value):
    x, *arrays = primals
    ans = getitem_p.bind(x, *arrays, spec=spec, mode=mode, fill_value=fill_value)
    if tangents[0] is None:
        return ans, None
    fv = None if fill_value is None else 0
    return ans, getitem_p.bind(tangents[0], *arrays, spec=spec, mode=mode, fill_value=fv)


def _clamp_index_arrays(spec, arrays, shape):
    """Clamp array indices into ``[-n, n - 1]``: where a clamped read took a value, its cotangent goes."""
    from .elementwise import clamp

    arrays = list(arrays)
    for e, ax in zip(spec, _array_axes(spec, len(shape))):
        if e[0] == "a":
            a = arrays[e[1]]
            arrays[e[1]] = clamp(0 if a.dtype.kind == "u" else -shape[ax], a, max(shape[ax] - 1, 0))
    return arrays


def _getitem_transpose(ct, x, *arrays, spec, mode, fill_value):
    zeros = wrap_ndarray(np.zeros(x.aval.shape, ct.dtype))
    # index_update drops out-of-range indices: right for mode="fill", but "clip" reads must
    # send the cotangent to the clamped position.
    idx = _clamp_index_arrays(spec, arrays, x.aval.shape) if mode == "clip" and arrays else arrays
    return [index_update_p.bind(zeros, ct, *idx, spec=spec, op="add")] + [None] * len(arrays)


getitem_p.jvp = _getitem_jvp
getitem_p.transpose = _getitem_transpose

# -- index_update --------------------------------------------------------------------------------

_UFUNCS = {"add": np.add, "mul": np.multiply, "min": np.minimum, "max": np.maximum}


def _index_update_impl(x, v, *arrays, spec, op):
    if arrays and _any_oob(spec, arrays, x.shape):  # route out-of-range updates to a dropped slot
        padded, spec_p = _padded(x, spec, 0)
        out = _apply_update(padded, _np_index(spec_p, arrays, x.shape, "pad"), v, op, True)
        return np.ascontiguousarray(out[tuple(slice(0, n) for n in x.shape)])
    return _apply_update(x.copy(), _np_index(spec, arrays, x.shape, None), v, op, bool(arrays))


def _apply_update(out, idx, v, op, may_repeat):
    if op == "set":
        out[idx] = v
    elif not may_repeat:
        view = out[idx]
        out[idx] = _UFUNCS[op](view, v)
    else:
        _UFUNCS[op].at(out, idx, v)
    return out


def _index_update_abstract(x, v, *arrays, spec, op):
    target = _getitem_abstract(x, *arrays, spec=spec, mode="clip", fill_value=None)
    if v.shape != target.shape:
        raise InvalidValueError(
            f"x.at[...].{op}: update of shape {v.shape} does not match the indexed shape {target.shape}"
        )
    if v.dtype != x.dtype:
        raise InvalidArgumentError(f"x.at[...].{op}: update dtype {v.dtype} differs from the array dtype {x.dtype}")
    return ShapedArray(x.shape, x.dtype)


index_update_p = Primitive("index_update")
index_update_p.impl = _index_update_impl
index_update_p.abstract_eval = _index_update_abstract


def _gather(x, arrays, spec):
    return getitem_p.bind(x, *arrays, spec=spec, mode="clip", fill_value=None)


def _update(x, v, arrays, spec, op):
    return index_update_p.bind(x, v, *arrays, spec=spec, op=op)


def _index_update_jvp(primals, tangents, spec, op):
    from .elementwise import convert_element_type, div, eq, mul, select

    x, v, *arrays = primals
    tx, tv = tangents[0], tangents[1]
    ans = _update(x, v, arrays, spec, op)
    if tx is None and tv is None:
        return ans, None
    if op in ("set", "add"):
        return ans, _update(instantiate(tx, x), instantiate(tv, v), arrays, spec, op)
    zeros = wrap_ndarray(np.zeros(x.shape, x.dtype))
    if op == "mul":
        # d(x * prod v) = tx * prod v + sum_k tv_k * x * prod_{j != k} v_j (v_k != 0)
        out = _update(instantiate(tx, x), v, arrays, spec, "mul") if tx is not None else zeros
        if tv is not None:
            out = out + _update(zeros, mul(div(_gather(ans, arrays, spec), v), tv), arrays, spec, "add")
        return ans, out
    # min / max: the winner's tangent; ties share it.
    x_wins = convert_element_type(eq(x, ans), x.dtype)
    v_wins = convert_element_type(eq(v, _gather(ans, arrays, spec)), x.dtype)
    count = x_wins + _update(zeros, v_wins, arrays, spec, "add")
    num = zeros
    if tx is not None:
        num = num + mul(tx, x_wins)
    if tv is not None:
        num = num + _update(zeros, mul(tv, v_wins), arrays, spec, "add")
    return ans, div(num, select(eq(count, zeros), count + 1, count))


def _index_update_transpose(ct, x, v, *arrays, spec, op):
    if op == "mul" and is_undefined(x) and not is_undefined(v):
        # x -> x.at[idx].multiply(v) scales each element by a constant: it is its own transpose.
        return [_update(ct, v, arrays, spec, "mul"), None] + [None] * len(arrays)
    if op not in ("set", "add"):
        raise InvalidArgumentError(f"x.at[...].{op} is not linear and cannot be transposed")
    out = []
    if is_undefined(x):
        if op == "add":
            out.append(ct)
        else:
            v_shape = v.aval.shape if is_undefined(v) else v.shape
            out.append(_update(ct, wrap_ndarray(np.zeros(v_shape, ct.dtype)), arrays, spec, "set"))
    else:
        out.append(None)
    # Updates at out-of-range indices were dropped, so their cotangent is zero (not a clamped read).
    out.append(getitem_p.bind(ct, *arrays, spec=spec, mode="fill", fill_value=0) if is_undefined(v) else None)
    return out + [None] * len(arrays)


index_update_p.jvp = _index_update_jvp
index_update_p.transpose = _index_update_transpose


def along_axis_index(idx, axis, extents):
    """Spec and index arrays that pick ``idx`` along ``axis`` and position ``i`` on every other
    axis ``d`` (for ``i < extents[d]``): the index of ``take_along_axis`` / ``torch.gather``."""
    arrays, spec = [], []
    for d, n in enumerate(extents):
        if d == axis:
            arrays.append(idx)
        else:
            shape = [1] * len(extents)
            shape[d] = n
            arrays.append(wrap_ndarray(np.arange(n, dtype=np.int64).reshape(shape)))
        spec.append(("a", d))
    return tuple(spec), arrays


def take_along_axis_index(x, idx, axis):
    """``np.take_along_axis(x, idx, axis)`` for ``idx`` already broadcast to the output shape."""
    spec, arrays = along_axis_index(idx, axis, idx.shape)
    return getitem_p.bind(x, *arrays, spec=spec, mode="clip", fill_value=None)


# -- batching rules --------------------------------------------------------------------------
#
# The general rule rewrites a per-example index as an equivalent index made only of integer
# arrays, plus one leading ``arange(batch)`` array: every operand axis is then addressed by an
# array, all arrays broadcast to ``(batch, *result_shape)``, and NumPy's placement rules for
# mixed basic/advanced indices are reproduced exactly.


def _result_layout(spec, arrays_shapes, x_shape):
    """Per-example result dims and, for each spec entry, where its dims sit in the result."""
    has_arrays = any(e[0] == "a" for e in spec)
    adv = [j for j, e in enumerate(spec) if has_arrays and e[0] in "ai"]
    adv_shape = (
        tuple(np.broadcast_shapes(*[arrays_shapes[spec[j][1]] for j in adv if spec[j][0] == "a"])) if has_arrays else ()
    )
    adjacent = not adv or adv == list(range(adv[0], adv[-1] + 1))
    axes = _array_axes(spec, len(x_shape))
    basic = []  # (entry index, length) for slices and new axes, in order
    for j, (e, ax) in enumerate(zip(spec, axes)):
        if e[0] == "s":
            basic.append((j, len(range(*slice(e[1], e[2], e[3]).indices(x_shape[ax])))))
        elif e[0] == "n":
            basic.append((j, 1))
    pos, dims = {}, []
    if adv and not adjacent:
        block_start, dims = 0, list(adv_shape)
        for j, n in basic:
            pos[j] = len(dims)
            dims.append(n)
    else:
        block_start = None
        for j, n in basic:
            if adv and block_start is None and j > adv[0]:
                block_start = len(dims)
                dims.extend(adv_shape)
            pos[j] = len(dims)
            dims.append(n)
        if adv and block_start is None:
            block_start = len(dims)
            dims.extend(adv_shape)
    return tuple(dims), pos, block_start, len(adv_shape)


def _batched_full_index(spec, arrays, array_dims, x_shape, size):
    """All-array index (as described above) for a batched operand of per-example shape ``x_shape``."""
    from ._batching import bdim_to_front
    from .shape import broadcast_in_dim

    shapes = [a.shape if d is None else a.shape[:d] + a.shape[d + 1 :] for a, d in zip(arrays, array_dims)]
    result, pos, block_start, block_rank = _result_layout(spec, shapes, x_shape)
    full = (size,) + result
    out = [broadcast_in_dim(wrap_ndarray(np.arange(size, dtype=np.int64)), full, (0,))]
    for e, ax in zip(spec, _array_axes(spec, len(x_shape))):
        if e[0] == "s":
            vals = np.arange(*slice(e[1], e[2], e[3]).indices(x_shape[ax]), dtype=np.int64)
            out.append(broadcast_in_dim(wrap_ndarray(vals), full, (1 + pos[e[-1]],)))
        elif e[0] == "i":
            out.append(broadcast_in_dim(wrap_ndarray(np.asarray(e[1], np.int64)), full, ()))
        elif e[0] == "a":
            a, d = arrays[e[1]], array_dims[e[1]]
            shape = shapes[e[1]]
            first = 1 + block_start + block_rank - len(shape)  # right-aligned inside the block
            if d is None:
                bdims = tuple(range(first, first + len(shape)))
            else:
                a = bdim_to_front(a, d, size)
                bdims = (0,) + tuple(range(first, first + len(shape)))
            from .elementwise import convert_element_type

            a = convert_element_type(a, np.int64)
            out.append(broadcast_in_dim(a, full, bdims) if a.shape != full else a)
    return out, full


def _distinct(spec):
    # Entries can repeat (e.g. two identical full slices); make each one unique for pos lookup.
    return tuple(e + (j,) if e[0] in "sn" else e for j, e in enumerate(spec))


def _getitem_batch(vals, dims, spec, mode, fill_value):
    from ._batching import batch_size, bdim_to_front

    x, *arrays = vals
    dx, *adims = dims
    if all(d is None for d in adims) and not arrays:
        # Basic indexing of a batched operand: keep the batch axis with a full slice.
        consumed, j = 0, 0
        while j < len(spec) and (consumed < dx or spec[j][0] == "n"):
            if spec[j][0] != "n":
                consumed += 1
            j += 1
        new_spec = spec[:j] + (("s", None, None, None),) + spec[j:]
        out_dim = sum(1 for e in spec[:j] if e[0] in "sn")
        return getitem_p.bind(x, spec=new_spec, mode=mode, fill_value=fill_value), out_dim
    size = batch_size(vals, dims)
    x = bdim_to_front(x, dx, size)
    idx, _ = _batched_full_index(_distinct(spec), arrays, adims, x.shape[1:], size)
    new_spec = tuple(("a", k) for k in range(len(idx)))
    return getitem_p.bind(x, *idx, spec=new_spec, mode=mode, fill_value=fill_value), 0


def _index_update_batch(vals, dims, spec, op):
    from ._batching import batch_size, bdim_to_front

    x, v, *arrays = vals
    dx, dv, *adims = dims
    size = batch_size(vals, dims)
    x = bdim_to_front(x, dx, size)
    idx, full = _batched_full_index(_distinct(spec), arrays, adims, x.shape[1:], size)
    v = bdim_to_front(v, dv, size)
    if v.shape != full:
        from .shape import broadcast_in_dim

        v = broadcast_in_dim(v, full, tuple(range(len(full) - v.ndim, len(full))))
    new_spec = tuple(("a", k) for k in range(len(idx)))
    return index_update_p.bind(x, v, *idx, spec=new_spec, op=op), 0


getitem_p.batch = _getitem_batch
index_update_p.batch = _index_update_batch
