"""Helpers for batching (vmap) rules: moving batch dimensions and common rule families.

A rule has the signature ``rule(vals, dims, **params) -> (out, out_dim)``; ``dims[i]`` is
the batch dimension of ``vals[i]`` or None when that operand is the same for every example.
"""

from __future__ import annotations

import numpy as np
from ..core.errors import InvalidValueError


def batch_size(vals, dims):
    return next(v.shape[d] for v, d in zip(vals, dims) if d is not None)


def move_bdim(x, src, dst, size):
    """Move the batch dimension ``src`` of ``x`` to ``dst`` (broadcasting when ``src`` is None)."""
    from .shape import broadcast_in_dim, transpose

    if src is None:
        if size is None:
            raise InvalidValueError("move_bdim: an unbatched value needs the batch size")
        shape = list(x.shape)
        shape.insert(dst, size)
        return broadcast_in_dim(x, tuple(shape), tuple(i for i in range(len(shape)) if i != dst))
    if src == dst:
        return x
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return transpose(x, tuple(perm))


def bdim_to_front(x, d, size):
    return move_bdim(x, d, 0, size)


def shift_axis(a, d):
    """Per-example axis ``a`` as an axis of the batched array whose batch dim is ``d``."""
    return a + 1 if a >= d else a


def elementwise_rule(prim):
    """Elementwise primitives: batched operands at the front, unbatched non-scalars broadcast."""

    def rule(vals, dims, **params):
        first = next(i for i, d in enumerate(dims) if d is not None)
        d0, shape0 = dims[first], vals[first].shape
        if all(d == d0 and v.shape == shape0 for v, d in zip(vals, dims) if d is not None) and all(
            v.ndim == 0 for v, d in zip(vals, dims) if d is None
        ):
            return prim.bind(*vals, **params), d0
        size = batch_size(vals, dims)
        elem_shape = ()
        for v, d in zip(vals, dims):
            s = v.shape if d is None else v.shape[:d] + v.shape[d + 1 :]
            if s:
                elem_shape = s
        from .shape import broadcast_in_dim

        args = []
        for v, d in zip(vals, dims):
            if d is None:
                args.append(v if v.ndim == 0 else move_bdim(v, None, 0, size))
            else:
                v = bdim_to_front(v, d, size)
                if v.ndim == 1 and elem_shape:
                    v = broadcast_in_dim(v, (size,) + elem_shape, (0,))
                args.append(v)
        return prim.bind(*args, **params), 0

    return rule


def multi_output_front_rule(prim, n_out):
    """Primitives that already treat leading axes as batch dims (linalg, sorting along the last axis)."""

    def rule(vals, dims, **params):
        size = batch_size(vals, dims)
        args = [bdim_to_front(v, d, size) for v, d in zip(vals, dims)]
        out = prim.bind(*args, **params)
        return (out, [0] * n_out) if prim.multiple_results else (out, 0)

    return rule


def vmap_impl_rule(prim):
    """For primitives whose implementation is funcgrad code: vectorise that code itself."""

    def rule(vals, dims, **params):
        from ..transforms.batching import vmap_flat

        size = batch_size(vals, dims)
        outs = vmap_flat(lambda *xs: _as_list(prim.impl(*xs, **params), prim), vals, dims, size)
        return (outs, [0] * len(outs)) if prim.multiple_results else (outs[0], 0)

    return rule


def _as_list(out, prim):
    return list(out) if prim.multiple_results else [out]


def arange_index(size, ndim, axis):
    """``arange(size)`` shaped to broadcast along ``axis`` of a rank-``ndim`` index."""
    from ..core.array import wrap_ndarray

    shape = [1] * ndim
    shape[axis] = size
    return wrap_ndarray(np.arange(size, dtype=np.int64).reshape(shape))
