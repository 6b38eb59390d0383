"""Shape manipulation with NumPy names: reshape, transpose, stack, split, tile, pad, ..."""

from __future__ import annotations

import numpy as np

from ..core.dtypes import result_type
from ..core.errors import InvalidArgumentError, InvalidValueError, ShapeError
from ..core.trace import Tracer
from ..lax import shape as ls
from ..lax.elementwise import convert_element_type
from ._util import broadcast_shapes, broadcast_to_shape, canonical_axis, to_array


def reshape(a, shape=None, order="C", *, newshape=None):
    """Give ``a`` a new shape with the same number of elements; one entry may be -1.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.reshape(fnp.arange(6), (2, -1)).shape
        (2, 3)
    """
    x = to_array(a, "reshape")
    shape = newshape if shape is None else shape
    if order != "C":
        raise NotImplementedError(f"reshape: order={order!r} is not supported (only 'C')")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise InvalidValueError(f"reshape: can only specify one unknown dimension (-1), got {tuple(shape)}")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise ShapeError(
                f"reshape: cannot reshape array of shape {x.shape} (size {x.size}) into shape {tuple(shape)}"
            )
        shape[shape.index(-1)] = x.size // known
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape array of shape {x.shape} (size {x.size}) into shape {tuple(shape)}")
    return ls.reshape(x, tuple(shape))


def ravel(a, order="C"):
    """Flatten to 1-D."""
    x = to_array(a, "ravel")
    return ls.reshape(x, (x.size,))


def transpose(a, axes=None):
    """Permute axes (reverse them by default).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.transpose(fnp.zeros((2, 3, 4)), (1, 0, 2)).shape
        (3, 2, 4)
    """
    x = to_array(a, "transpose")
    if axes is None:
        perm = tuple(reversed(range(x.ndim)))
    else:
        perm = tuple(canonical_axis(ax, x.ndim, "transpose") for ax in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise InvalidValueError(
                f"transpose: axes {tuple(axes)} are not a permutation of the {x.ndim} axes of shape {x.shape}"
            )
    return ls.transpose(x, perm)


def permute_dims(a, axes=None):
    return transpose(a, axes)


def moveaxis(a, source, destination):
    """Move axes ``source`` to positions ``destination``."""
    x = to_array(a, "moveaxis")
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise InvalidValueError("moveaxis: source and destination must have the same number of elements")
    src = [canonical_axis(s, x.ndim, "moveaxis") for s in src]
    dst = [canonical_axis(d, x.ndim, "moveaxis") for d in dst]
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ls.transpose(x, tuple(order))


def swapaxes(a, axis1, axis2):
    """Interchange two axes (PyTorch's ``x.transpose(dim0, dim1)``)."""
    x = to_array(a, "swapaxes")
    a1, a2 = canonical_axis(axis1, x.ndim, "swapaxes"), canonical_axis(axis2, x.ndim, "swapaxes")
    perm = list(range(x.ndim))
    perm[a1], perm[a2] = perm[a2], perm[a1]
    return ls.transpose(x, tuple(perm))


def matrix_transpose(x):
    return swapaxes(x, -1, -2)


def expand_dims(a, axis):
    """Insert size-1 axes; the new axis lands at index ``axis`` of the result (valid range
    ``[-ndim-1, ndim]``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.expand_dims(fnp.zeros((2, 3)), -1).shape
        (2, 3, 1)
    """
    x = to_array(a, "expand_dims")
    axes = [axis] if isinstance(axis, int) else list(axis)
    nd = x.ndim + len(axes)
    axes = [canonical_axis(ax, nd, "expand_dims") for ax in axes]
    return ls.expand_dims(x, axes)


def squeeze(a, axis=None):
    """Remove size-1 axes (all of them, or those in ``axis``; a non-1 axis is an error, as NumPy).

    For PyTorch's no-op-on-non-1 behaviour use ``funcgrad.compat.torch.squeeze``.
    """
    x = to_array(a, "squeeze")
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = tuple(canonical_axis(ax, x.ndim, "squeeze") for ax in ([axis] if isinstance(axis, int) else axis))
        for ax in axes:
            if x.shape[ax] != 1:
                raise InvalidValueError(
                    f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                    f"(axis {ax} of shape {x.shape})"
                )
    return ls.squeeze(x, axes)


def broadcast_to(array, shape):
    """Broadcast ``array`` to ``shape`` (NumPy rules).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.broadcast_to(fnp.array([1, 2]), (3, 2)).shape
        (3, 2)
    """
    x = to_array(array, "broadcast_to")
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    try:
        ok = tuple(np.broadcast_shapes(x.shape, shape)) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"broadcast_to: cannot broadcast an array of shape {x.shape} to shape {shape}")
    return broadcast_to_shape(x, shape)


def broadcast_arrays(*args):
    """Broadcast arrays against each other."""
    xs = [to_array(a, "broadcast_arrays") for a in args]
    shape = broadcast_shapes([x.shape for x in xs], "broadcast_arrays")
    return [broadcast_to_shape(x, shape) for x in xs]


def _promote_all(xs, name):
    xs = [to_array(x, name) for x in xs]
    if not xs:
        raise InvalidValueError(f"{name}: need at least one array")
    dt = result_type(*xs)
    return [convert_element_type(x, dt) for x in xs]


def concatenate(arrays, axis=0, dtype=None):
    """Join arrays along an existing axis (dtypes promote to the widest; zero-size operands allowed).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.concatenate([fnp.zeros((0, 2)), fnp.ones((1, 2))]).shape
        (1, 2)
    """
    xs = _promote_all(list(arrays), "concatenate")
    if dtype is not None:
        xs = [convert_element_type(x, dtype) for x in xs]
    if axis is None:
        xs = [ravel(x) for x in xs]
        axis = 0
    if xs[0].ndim == 0:
        raise InvalidValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    ax = canonical_axis(axis, xs[0].ndim, "concatenate")
    for x in xs:
        if x.ndim != xs[0].ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != ax):
            raise ShapeError(
                f"concatenate: all input array dimensions except axis {ax} must match, got shapes "
                f"{[tuple(x.shape) for x in xs]}"
            )
    return ls.concatenate(xs, ax)


def stack(arrays, axis=0, dtype=None):
    """Join equal-shape arrays along a new axis.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.stack([fnp.zeros(2), fnp.ones(2)], axis=1).shape
        (2, 2)
    """
    xs = _promote_all(list(arrays), "stack")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all input arrays must have the same shape, got {[tuple(x.shape) for x in xs]}")
    ax = canonical_axis(axis, xs[0].ndim + 1, "stack")
    out = concatenate([ls.expand_dims(x, (ax,)) for x in xs], ax)
    return out if dtype is None else convert_element_type(out, dtype)


def atleast_1d(*arys):
    out = [reshape(a, (1,)) if to_array(a).ndim == 0 else to_array(a) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    out = []
    for a in arys:
        x = to_array(a)
        out.append(reshape(x, (1, 1)) if x.ndim == 0 else reshape(x, (1, -1)) if x.ndim == 1 else x)
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    out = []
    for a in arys:
        x = to_array(a)
        out.append(
            reshape(x, (1, 1, 1))
            if x.ndim == 0
            else reshape(x, (1, -1, 1))
            if x.ndim == 1
            else expand_dims(x, -1)
            if x.ndim == 2
            else x
        )
    return out[0] if len(out) == 1 else out


def vstack(tup, dtype=None):
    """Stack rows (1-D inputs become rows)."""
    return concatenate([atleast_2d(x) for x in tup], 0, dtype)


row_stack = vstack


def hstack(tup, dtype=None):
    """Stack columns (1-D inputs are joined along axis 0)."""
    xs = [atleast_1d(x) for x in tup]
    return concatenate(xs, 0 if xs[0].ndim == 1 else 1, dtype)


def dstack(tup, dtype=None):
    return concatenate([atleast_3d(x) for x in tup], 2, dtype)


def column_stack(tup):
    xs = [to_array(x) for x in tup]
    return concatenate([reshape(x, (-1, 1)) if x.ndim < 2 else x for x in xs], 1)


def _split_points(n, indices_or_sections, name, even):
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise InvalidValueError(f"{name}: number of sections must be larger than 0, got {k}")
        if even and n % k:
            raise InvalidValueError(
                f"{name}: array of size {n} along the axis does not divide into {k} equal sections (use array_split)"
            )
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        return list(np.cumsum(sizes)[:-1])
    if isinstance(indices_or_sections, Tracer):
        raise InvalidArgumentError(f"{name}: split indices must be concrete")
    return [int(i) for i in np.asarray(indices_or_sections)]


def _split(a, indices_or_sections, axis, name, even):
    x = to_array(a, name)
    ax = canonical_axis(axis, x.ndim, name)
    n = x.shape[ax]
    points = _split_points(n, indices_or_sections, name, even)
    bounds = [0] + [min(max(p if p >= 0 else p + n, 0), n) for p in points] + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        out.append(ls.slice_in_dim(x, lo, max(lo, hi), 1, ax))
    return out


def split(ary, indices_or_sections, axis=0):
    """Split into equal sections (an int) or at indices (a list), NumPy semantics.

    For PyTorch's ``torch.split`` (chunk lengths) use ``funcgrad.compat.torch.split``.
    """
    return _split(ary, indices_or_sections, axis, "split", True)


def array_split(ary, indices_or_sections, axis=0):
    """Like :func:`split`, but an int need not divide the axis: the first ``n % k`` parts get one more
    element (``torch.tensor_split``)."""
    return _split(ary, indices_or_sections, axis, "array_split", False)


def hsplit(ary, indices_or_sections):
    x = to_array(ary)
    return split(x, indices_or_sections, 1 if x.ndim > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, 0)


def tile(A, reps):
    """Repeat the whole array ``reps`` times along each axis (PyTorch's ``x.repeat``).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.tile(fnp.array([1, 2]), 2)
        Array([1, 2, 1, 2], dtype=int64)
    """
    x = to_array(A, "tile")
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    nd = max(x.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    x = reshape(x, (1,) * (nd - x.ndim) + x.shape)
    # broadcast each axis to (rep, size), then merge
    inter = []
    for r, s in zip(reps, x.shape):
        inter += [r, s]
    expanded = ls.broadcast_in_dim(x, tuple(inter), tuple(range(1, 2 * nd, 2)))
    return reshape(expanded, tuple(r * s for r, s in zip(reps, x.shape)))


def repeat(a, repeats, axis=None, *, total_repeat_length=None):
    """Repeat each element ``repeats`` times (an int or per-element counts) along ``axis``.

    Per-element counts that are traced need ``total_repeat_length`` (the output length).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.repeat(fnp.array([1, 2]), 2)
        Array([1, 1, 2, 2], dtype=int64)
    """
    x = to_array(a, "repeat")
    if axis is None:
        x = ravel(x)
        axis = 0
    ax = canonical_axis(axis, x.ndim, "repeat")
    n = x.shape[ax]
    if isinstance(repeats, (int, np.integer)):
        if repeats < 0:
            raise InvalidValueError(f"repeat: repeats may not be negative, got {repeats}")
        shape = x.shape[: ax + 1] + (int(repeats),) + x.shape[ax + 1 :]
        expanded = ls.broadcast_in_dim(x, shape, tuple(i if i <= ax else i + 1 for i in range(x.ndim)))
        return reshape(expanded, x.shape[:ax] + (n * int(repeats),) + x.shape[ax + 1 :])
    reps = to_array(repeats, "repeat")
    if reps.ndim == 0:
        return repeat(x, int(reps), ax)
    if reps.shape != (n,):
        raise InvalidValueError(
            f"repeat: repeats of shape {reps.shape} must have one entry per element along axis {ax} ({n})"
        )
    if isinstance(reps, Tracer):
        if total_repeat_length is None:
            raise InvalidArgumentError(
                "repeat: traced per-element repeats need total_repeat_length= (the output length)"
            )
        from .indexing import take
        from .sorting import searchsorted
        from .reductions import cumsum

        ends = cumsum(reps)
        idx = searchsorted(ends, np.arange(total_repeat_length), side="right")
        return take(x, idx, axis=ax, mode="clip")
    counts = np.asarray(reps._value)
    idx = np.repeat(np.arange(n), counts)
    if total_repeat_length is not None:
        idx = np.resize(idx, total_repeat_length) if len(idx) else np.zeros(total_repeat_length, np.int64)
    from .indexing import take

    return take(x, idx, axis=ax)


def flip(m, axis=None):
    """Reverse the order of elements along ``axis`` (all axes by default)."""
    x = to_array(m, "flip")
    axes = range(x.ndim) if axis is None else ([axis] if isinstance(axis, int) else axis)
    return ls.rev(x, tuple(canonical_axis(ax, x.ndim, "flip") for ax in axes))


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


def roll(a, shift, axis=None):
    """Roll elements along ``axis`` (flattened when None), NumPy semantics."""
    x = to_array(a, "roll")
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), x.shape)
    shifts = [shift] if isinstance(shift, int) else list(shift)
    axes = [axis] if isinstance(axis, int) else list(axis)
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    for s, ax in zip(shifts, axes):
        ax = canonical_axis(ax, x.ndim, "roll")
        n = x.shape[ax]
        if n == 0:
            continue
        s = int(s) % n
        if s:
            x = ls.concatenate([ls.slice_in_dim(x, n - s, n, 1, ax), ls.slice_in_dim(x, 0, n - s, 1, ax)], ax)
    return x


def rot90(m, k=1, axes=(0, 1)):
    x = to_array(m, "rot90")
    k = k % 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, axes[0]), axes[1])
    if k == 1:
        return swapaxes(flip(x, axes[1]), axes[0], axes[1])
    return flip(swapaxes(x, axes[0], axes[1]), axes[1])


def _pad_width(pad_width, ndim):
    pw = np.asarray(pad_width, dtype=np.int64)
    if pw.ndim == 0:
        pw = np.full((ndim, 2), int(pw))
    elif pw.shape == (2,) or pw.shape == (1, 2):
        pw = np.tile(pw.reshape(1, 2), (ndim, 1))
    elif pw.shape == (1,):
        pw = np.full((ndim, 2), int(pw[0]))
    if pw.shape != (ndim, 2):
        raise InvalidValueError(f"pad: pad_width {pad_width!r} does not fit an array of rank {ndim}")
    if (pw < 0).any():
        raise InvalidValueError(f"pad: pad widths must be non-negative, got {pad_width!r}")
    return pw


def pad(array, pad_width, mode="constant", **kwargs):
    """Pad an array; modes ``constant`` (``constant_values``), ``edge``, ``reflect``, ``symmetric``, ``wrap``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.pad(fnp.array([1, 2]), 1)
        Array([0, 1, 2, 0], dtype=int64)
    """
    x = to_array(array, "pad")
    pw = _pad_width(pad_width, x.ndim)
    if mode == "constant":
        cv = to_array(kwargs.get("constant_values", 0), "pad")  # may be traced (differentiable)
        if cv.ndim == 0:
            return ls.pad(x, convert_element_type(cv, x.dtype), [(int(lo), int(hi), 0) for lo, hi in pw])
        # per-axis (before, after) constants: pad one axis at a time
        cvs = broadcast_to(cv, (x.ndim, 2))
        out = x
        for ax in range(x.ndim):
            lo, hi = pw[ax]
            for side, width in ((0, lo), (1, hi)):
                if width:
                    cfg = [(0, 0, 0)] * x.ndim
                    cfg[ax] = (int(width), 0, 0) if side == 0 else (0, int(width), 0)
                    out = ls.pad(out, convert_element_type(cvs[ax, side], x.dtype), cfg)
        return out
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise NotImplementedError(f"pad: mode={mode!r} is not supported (constant, edge, reflect, symmetric, wrap)")
    from .indexing import take

    out = x
    for ax in range(x.ndim):
        lo, hi = int(pw[ax][0]), int(pw[ax][1])
        if lo or hi:
            # NumPy computes the source index of every padded position for us.
            idx = np.pad(np.arange(x.shape[ax]), (lo, hi), mode=mode)
            out = take(out, idx, axis=ax)
    return out
