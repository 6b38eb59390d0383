"""PyTorch-semantics tensor helpers for porting code (``import funcgrad.compat.torch as ft``).

Thin wrappers over ``funcgrad.numpy`` that keep PyTorch's argument names and orders
(``dim``, ``keepdim``), its shape rules and its error cases, where NumPy's namesakes differ:
``split`` takes chunk lengths, ``squeeze(x, dim)`` is a no-op on a non-1 dim, ``max(x, dim)``
returns ``(values, indices)``, ``expand`` keeps ``-1`` sizes, ``mm``/``bmm``/``mv``/``dot`` are
strict about ranks and dtypes. Everything is functional (no in-place forms) and differentiable
in its floating-point inputs; ``gather``'s gradient scatter-adds, ``scatter``'s gathers.

Index bounds are checked whenever the index is concrete (PyTorch raises for out-of-range
indices); under ``jit``/``vmap`` they cannot be, and out-of-range reads clamp and writes are
dropped, as everywhere in funcgrad.

Example:
    >>> import funcgrad.numpy as fnp
    >>> import funcgrad.compat.torch as ft
    >>> ft.gather(fnp.array([[1, 2], [3, 4]]), 1, fnp.array([[0, 0], [1, 0]]))
    Array([[1, 1],
           [4, 3]], dtype=int64)
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from .. import numpy as fnp
from ..core.array import Array
from ..core.dtypes import is_inexact, result_type
from ..core.errors import (
    ConcretizationError,
    DTypeError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    InvalidValueError,
    ShapeError,
)
from ..core.trace import Tracer
from ..lax import shape as ls
from ..numpy._util import canonical_axis, to_array

__all__ = [
    "add",
    "addcdiv",
    "addcmul",
    "argsort",
    "bmm",
    "cat",
    "chunk",
    "clamp",
    "clip",
    "dot",
    "expand",
    "expand_as",
    "flatten",
    "gather",
    "index_select",
    "masked_fill",
    "masked_select",
    "matmul",
    "max",
    "min",
    "mm",
    "mv",
    "narrow",
    "nonzero",
    "permute",
    "repeat_interleave",
    "scatter",
    "scatter_add",
    "scatter_reduce",
    "sort",
    "split",
    "squeeze",
    "stack",
    "sub",
    "take",
    "tensor_split",
    "unsqueeze",
]


# PyTorch's torch.return_types.max / min / sort: namedtuples (so also pytrees).
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])
sort_result = namedtuple("sort", ["values", "indices"])

_PY_SCALARS = (bool, int, float, complex)


# -- helpers ------------------------------------------------------------------------------------


def _arr(x, name):
    return to_array(x, name)


def _dim(dim, ndim, name):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise InvalidArgumentError(f"{name}: dim must be an int, got {type(dim).__name__}")
    return canonical_axis(dim, ndim, name)


def _concrete_value(x):
    """The NumPy value of ``x`` when it is known now (eagerly or under grad), else None (under jit/vmap)."""
    if type(x) is Array:
        return x._value
    if isinstance(x, Tracer):
        try:
            return np.asarray(x._concrete("index bounds check"))
        except ConcretizationError:
            return None
    return np.asarray(x)


def _index_array(index, name):
    idx = _arr(index, name)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"{name}: index must be an integer array, got dtype {idx.dtype} (shape {idx.shape})")
    return idx


def _check_bounds(idx, size, dim, name):
    v = _concrete_value(idx)
    if v is None or v.size == 0:
        return
    lo, hi = int(v.min()), int(v.max())
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        raise IndexOutOfRangeError(f"{name}: index {bad} is out of bounds for dimension {dim} with size {size}")


def _sizes_arg(sizes, name):
    """Varargs ``f(x, 2, 3)`` or one sequence ``f(x, (2, 3))``, as PyTorch accepts both."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise InvalidArgumentError(f"{name}: sizes must be ints, got {s!r}")
        out.append(int(s))
    return tuple(out)


def _covering_index(idx, dim):
    """Index arrays that address ``out[i0, ..., index[i], ..., ik]`` for every position ``i`` of ``idx``."""
    arrays = []
    for k in range(idx.ndim):
        if k == dim:
            arrays.append(idx)
        else:
            shape = [1] * idx.ndim
            shape[k] = idx.shape[k]
            arrays.append(fnp.arange(idx.shape[k], dtype=np.int64).reshape(shape))
    return tuple(arrays)


# -- indexing ---------------------------------------------------------------------------------


def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim == 0`` (likewise for other dims), as ``torch.gather``.

    ``index`` has the rank of ``input`` and ``index.shape[d] <= input.shape[d]`` for ``d != dim``;
    the output has ``index``'s shape. The gradient scatter-adds into ``input``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.gather(fnp.array([[10., 20.], [30., 40.]]), 1, fnp.array([[1], [0]]))
        Array([[20.],
               [30.]], dtype=float32)
    """
    x = _arr(input, "gather")
    idx = _index_array(index, "gather")
    if x.ndim == 0 and idx.ndim == 0:
        _dim(dim, 1, "gather")
        return gather(x.reshape(1), 0, idx.reshape(1)).reshape(())
    if idx.ndim != x.ndim:
        raise ShapeError(
            f"gather: index (shape {idx.shape}) must have the same number of dimensions as input (shape {x.shape})"
        )
    d = _dim(dim, x.ndim, "gather")
    for k in range(x.ndim):
        if k != d and idx.shape[k] > x.shape[k]:
            raise ShapeError(
                f"gather: index (shape {idx.shape}) is larger than input (shape {x.shape}) in "
                f"dimension {k} (only dimension {d} may be larger)"
            )
    _check_bounds(idx, x.shape[d], d, "gather")
    if any(idx.shape[k] != x.shape[k] for k in range(x.ndim) if k != d):
        x = x[tuple(slice(None) if k == d else slice(0, idx.shape[k]) for k in range(x.ndim))]
    return fnp.take_along_axis(x, idx, d)


def _scatter_operands(input, dim, index, src, name):
    x = _arr(input, name)
    idx = _index_array(index, name)
    if x.ndim == 0 and idx.ndim == 0:
        raise ShapeError(f"{name}: input must have at least one dimension, got shape ()")
    if idx.ndim != x.ndim:
        raise ShapeError(
            f"{name}: index (shape {idx.shape}) must have the same number of dimensions as input (shape {x.shape})"
        )
    d = _dim(dim, x.ndim, name)
    for k in range(x.ndim):
        if k != d and idx.shape[k] > x.shape[k]:
            raise ShapeError(
                f"{name}: index (shape {idx.shape}) is larger than input (shape {x.shape}) in "
                f"dimension {k} (only dimension {d} may be larger)"
            )
    _check_bounds(idx, x.shape[d], d, name)
    if type(src) in _PY_SCALARS or isinstance(src, np.generic):
        # PyTorch's `value` form: one number written at every indexed position.
        v = fnp.full(idx.shape, src, dtype=x.dtype)
    else:
        s = _arr(src, name)
        if s.ndim != idx.ndim:
            raise ShapeError(
                f"{name}: src (shape {s.shape}) must have the same number of dimensions as index (shape {idx.shape})"
            )
        for k in range(idx.ndim):
            if idx.shape[k] > s.shape[k]:
                raise ShapeError(
                    f"{name}: index (shape {idx.shape}) is larger than src (shape {s.shape}) in dimension {k}"
                )
        if s.dtype != x.dtype:
            raise DTypeError(
                f"{name}: src dtype {s.dtype} differs from input dtype {x.dtype}; cast one of them "
                "(PyTorch requires equal dtypes too)"
            )
        if s.shape != idx.shape:  # only the part of src covered by the index is used
            s = s[tuple(slice(0, n) for n in idx.shape)]
        v = s
    return x, d, idx, v


def scatter(input, dim, index, src=None, reduce=None, *, value=None):
    """Write ``src`` into a copy of ``input`` at ``index`` along ``dim``, as ``torch.scatter``.

    ``out[index[i][j][k]][j][k] = src[i][j][k]`` for ``dim == 0``. ``src`` may be a Python
    number (PyTorch's ``value`` form, also accepted as ``value=``). Only the part of ``src``
    covered by ``index`` is used. ``reduce='add'`` or ``'multiply'`` combines with the
    existing values (every repeated index counts); with no ``reduce`` and repeated indices one
    of the written values is kept (PyTorch leaves the order undefined too).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.scatter(fnp.zeros((2, 3)), 1, fnp.array([[2], [0]]), 1.0)
        Array([[0., 0., 1.],
               [1., 0., 0.]], dtype=float32)
    """
    if src is None:
        if value is None:
            raise InvalidArgumentError("scatter: give src (an array or a number) or value=")
        src = value
    if reduce not in (None, "add", "multiply"):
        raise InvalidValueError(
            f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r} "
            "(use scatter_reduce for 'sum', 'prod', 'mean', 'amax', 'amin')"
        )
    x, d, idx, v = _scatter_operands(input, dim, index, src, "scatter")
    ref = x.at[_covering_index(idx, d)]
    if reduce is None:
        return ref.set(v)
    return ref.add(v) if reduce == "add" else ref.multiply(v)


def scatter_add(input, dim, index, src):
    """``scatter(input, dim, index, src, reduce='add')``: repeated indices accumulate (``torch.scatter_add``).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.scatter_add(fnp.zeros(3), 0, fnp.array([0, 0, 2]), fnp.ones(3))
        Array([2., 0., 1.], dtype=float32)
    """
    return scatter(input, dim, index, src, reduce="add")


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """``torch.scatter_reduce``: combine ``src`` into ``input`` with ``'sum'``, ``'prod'``, ``'mean'``,
    ``'amax'`` or ``'amin'``; ``include_self=False`` leaves the old values out at the written positions.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.scatter_reduce(fnp.zeros(2), 0, fnp.array([0, 0]), fnp.array([1.0, 3.0]), "amax")
        Array([3., 0.], dtype=float32)
    """
    ops = {"sum": "add", "prod": "multiply", "mean": "add", "amax": "max", "amin": "min"}
    if reduce not in ops:
        raise InvalidValueError(f"scatter_reduce: reduce must be one of {sorted(ops)}, got {reduce!r}")
    x, d, idx, v = _scatter_operands(input, dim, index, src, "scatter_reduce")
    where = _covering_index(idx, d)
    base = x
    if not include_self:
        if reduce in ("sum", "mean"):
            ident = 0
        elif reduce == "prod":
            ident = 1
        elif is_inexact(x.dtype):
            ident = -np.inf if reduce == "amax" else np.inf
        else:
            info = np.iinfo(x.dtype) if x.dtype != np.bool_ else None
            ident = (info.min if reduce == "amax" else info.max) if info else (reduce == "amin")
        base = x.at[where].set(fnp.full(idx.shape, ident, dtype=x.dtype))
    out = getattr(base.at[where], ops[reduce])(v)
    if reduce != "mean":
        return out
    counts = fnp.zeros(x.shape, x.dtype).at[where].add(fnp.ones(idx.shape, x.dtype))
    if include_self:
        counts = counts + 1
    safe = fnp.where(counts == 0, 1, counts).astype(x.dtype)
    mean = out / safe if is_inexact(x.dtype) else fnp.floor_divide(out, safe)
    return fnp.where(counts == 0, x, mean)


def index_select(input, dim, index):
    """The slices of ``input`` at the 1-D integer ``index`` along ``dim`` (rank kept), as ``torch.index_select``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.index_select(fnp.array([[1, 2], [3, 4]]), 0, fnp.array([1, 1]))
        Array([[3, 4],
               [3, 4]], dtype=int64)
    """
    x = _arr(input, "index_select")
    idx = _index_array(index, "index_select")
    if idx.ndim > 1:
        raise ShapeError(f"index_select: index must be a vector (1-D), got shape {idx.shape}")
    if x.ndim == 0:
        _dim(dim, 1, "index_select")
        return index_select(x.reshape(1), 0, idx).reshape(())
    d = _dim(dim, x.ndim, "index_select")
    _check_bounds(idx, x.shape[d], d, "index_select")
    return fnp.take(x, idx.reshape(-1), axis=d)


def take(input, index):
    """Elements of the flattened ``input`` at ``index``; the output has ``index``'s shape (``torch.take``).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.take(fnp.array([[1, 2], [3, 4]]), fnp.array([0, 3]))
        Array([1, 4], dtype=int64)
    """
    x = _arr(input, "take")
    idx = _index_array(index, "take")
    v = _concrete_value(idx)
    if v is not None and v.size and (v.min() < -x.size or v.max() >= x.size):
        bad = v.min() if v.min() < -x.size else v.max()
        raise IndexOutOfRangeError(f"take: index {bad} is out of range for input with {x.size} elements")
    return fnp.take(x.reshape(-1), idx)


def _bool_mask(mask, name):
    m = _arr(mask, name)
    if m.dtype != np.bool_:
        raise DTypeError(
            f"{name}: mask must be a boolean array, got dtype {m.dtype} (shape {m.shape}); "
            "use mask != 0 or mask.astype(bool)"
        )
    return m


def masked_fill(input, mask, value):
    """``value`` where ``mask`` is true, else ``input`` (mask broadcasts; dtype of ``input``), as ``torch.masked_fill``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.masked_fill(fnp.array([1.0, 2.0]), fnp.array([True, False]), -1.0)
        Array([-1.,  2.], dtype=float32)
    """
    x = _arr(input, "masked_fill")
    m = _bool_mask(mask, "masked_fill")
    v = _arr(value, "masked_fill")
    if v.ndim != 0:
        raise ShapeError(f"masked_fill: value must be a number or a 0-d array, got shape {v.shape}")
    if v.dtype != x.dtype:
        v = v.astype(x.dtype)
    return fnp.where(m, v, x)


def masked_select(input, mask):
    """The elements of ``input`` where ``mask`` is true, as a 1-D array in row-major order (``torch.masked_select``).

    Input and mask broadcast. The length depends on the data, so this works eagerly and under
    ``grad`` (with a concrete mask), but not under ``jit``/``vmap``: use ``fnp.where(mask, x, 0)``
    or ``fnp.nonzero(mask, size=N)`` there.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.masked_select(fnp.array([[1, 2], [3, 4]]), fnp.array([True, False]))
        Array([1, 3], dtype=int64)
    """
    x = _arr(input, "masked_select")
    m = _bool_mask(mask, "masked_select")
    if isinstance(m, Tracer):
        try:
            m = fnp.asarray(np.asarray(m._concrete("masked_select")))
        except ConcretizationError:
            raise ConcretizationError(
                f"masked_select: the mask is a traced value ({m.aval.str_short()}), so the number of selected "
                "elements is unknown while tracing (jit/vmap). Use fnp.where(mask, x, 0) to keep the shape, or "
                "fnp.nonzero(mask, size=N) for a fixed-size index."
            ) from None
    shape = tuple(np.broadcast_shapes(x.shape, m.shape))
    x = fnp.broadcast_to(x, shape)
    m = fnp.broadcast_to(m, shape)
    if not shape:
        return x.reshape(1)[m.reshape(1)]
    return x[m]


def nonzero(input, *, as_tuple=False):
    """Indices of the nonzero elements as an ``(N, ndim)`` int64 array (``torch.nonzero``), or one 1-D
    array per dimension with ``as_tuple=True``. Eager only (the count depends on the data).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.nonzero(fnp.array([[0, 1], [2, 0]]))
        Array([[0, 1],
               [1, 0]], dtype=int64)
    """
    x = _arr(input, "nonzero")
    if as_tuple:
        return fnp.nonzero(x if x.ndim else x.reshape(1))
    return fnp.argwhere(x)


# -- splitting and joining ----------------------------------------------------------------------


def _pieces(x, d, sizes):
    out, start = [], 0
    for s in sizes:
        out.append(ls.slice_in_dim(x, start, start + s, 1, d))
        start += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    """Split into pieces of ``ceil(size / chunks)`` along ``dim`` (the last may be smaller, and there may
    be fewer than ``chunks`` pieces), as ``torch.chunk``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> [c.tolist() for c in ft.chunk(fnp.arange(5), 3)]
        [[0, 1], [2, 3], [4]]
    """
    x = _arr(input, "chunk")
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise InvalidValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if x.ndim == 0:
        raise ShapeError("chunk: expects at least a 1-dimensional array, got shape ()")
    d = _dim(dim, x.ndim, "chunk")
    n = x.shape[d]
    if n == 0:
        return tuple(x for _ in range(int(chunks)))  # PyTorch returns `chunks` empty pieces
    return split(x, -(-n // int(chunks)), d)


def split(tensor, split_size_or_sections, dim=0):
    """Split along ``dim`` into pieces of length ``split_size`` (an int; the last may be smaller) or of
    the given lengths (a list that must sum to the size of ``dim``), as ``torch.split``.

    Note that ``fnp.split`` follows NumPy instead (a number of sections, or split points).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> [c.shape for c in ft.split(fnp.zeros((5, 2)), [1, 4])]
        [(1, 2), (4, 2)]
    """
    x = _arr(tensor, "split")
    if x.ndim == 0:
        raise ShapeError("split: expects at least a 1-dimensional array, got shape ()")
    d = _dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)) and not isinstance(split_size_or_sections, bool):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n > 0):
            raise InvalidValueError(
                f"split: split_size must be a positive int (dimension {d} has size {n}), got {size}"
            )
        if n == 0:
            return (x,)
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        return _pieces(x, d, sizes)
    sizes = [int(s) for s in np.asarray(split_size_or_sections).reshape(-1)]
    if any(s < 0 for s in sizes):
        raise InvalidValueError(f"split: section lengths must be non-negative, got {sizes}")
    if sum(sizes) != n:
        raise InvalidValueError(
            f"split: section lengths {sizes} sum to {sum(sizes)}, but dimension {d} has size {n} "
            f"(input shape {x.shape})"
        )
    return _pieces(x, d, sizes)


def tensor_split(input, indices_or_sections, dim=0):
    """``torch.tensor_split``: an int ``n`` gives ``n`` pieces (the first ``size % n`` one longer); a list or
    1-D integer array gives the split points.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> [c.tolist() for c in ft.tensor_split(fnp.arange(5), 2)]
        [[0, 1, 2], [3, 4]]
    """
    x = _arr(input, "tensor_split")
    if x.ndim == 0:
        raise ShapeError("tensor_split: expects at least a 1-dimensional array, got shape ()")
    d = _dim(dim, x.ndim, "tensor_split")
    ios = indices_or_sections
    if isinstance(ios, (Array, Tracer, np.ndarray)):
        v = _concrete_value(ios)
        if v is None:
            raise ConcretizationError("tensor_split: indices_or_sections must be concrete (not traced)")
        if v.dtype.kind not in "iu":
            raise DTypeError(f"tensor_split: indices_or_sections must hold integers, got dtype {v.dtype}")
        if v.ndim > 1:
            raise ShapeError(f"tensor_split: indices_or_sections must be 0-d or 1-D, got shape {v.shape}")
        ios = int(v) if v.ndim == 0 else [int(i) for i in v]
    if isinstance(ios, (int, np.integer)) and ios <= 0:
        raise InvalidValueError(f"tensor_split: number of sections must be a positive int, got {ios}")
    return tuple(fnp.array_split(x, ios, axis=d))


def cat(tensors, dim=0):
    """Join arrays along an existing ``dim`` (promoting dtypes), as ``torch.cat``.

    Legacy 1-D empty arrays (shape ``(0,)``) are skipped, as PyTorch does.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.cat([fnp.zeros((1, 2)), fnp.ones((2, 2))]).shape
        (3, 2)
    """
    xs = [_arr(t, "cat") for t in tensors]
    if not xs:
        raise InvalidValueError("cat: expected a non-empty sequence of arrays")
    kept = [t for t in xs if not (t.ndim == 1 and t.shape[0] == 0)]
    if not kept:
        return fnp.concatenate(xs, axis=0)
    if len(kept) != len(xs):  # the skipped empties still take part in dtype promotion
        dt = result_type(*xs)
        kept = [t.astype(dt) for t in kept]
    return fnp.concatenate(kept, axis=dim)


def stack(tensors, dim=0):
    """Join equally shaped arrays along a new ``dim``, as ``torch.stack``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.stack([fnp.zeros(3), fnp.ones(3)], dim=1).shape
        (3, 2)
    """
    xs = list(tensors)
    if not xs:
        raise InvalidValueError("stack: expected a non-empty sequence of arrays")
    return fnp.stack(xs, axis=dim)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times (an int, or per-element counts along ``dim``), as
    ``torch.repeat_interleave``; ``dim=None`` flattens first. ``output_size`` (the total length)
    lets traced counts work under ``jit``. With only one argument, ``input`` holds the counts of
    ``arange(len(input))``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.repeat_interleave(fnp.array([[1, 2], [3, 4]]), fnp.array([1, 2]), dim=0)
        Array([[1, 2],
               [3, 4],
               [3, 4]], dtype=int64)
    """
    if repeats is None:
        counts = _index_array(input, "repeat_interleave")
        if counts.ndim != 1:
            raise ShapeError(f"repeat_interleave: repeats must be 1-D, got shape {counts.shape}")
        return repeat_interleave(fnp.arange(counts.shape[0], dtype=np.int64), counts, 0, output_size=output_size)
    x = _arr(input, "repeat_interleave")
    if dim is None:
        x = x.reshape(-1)
        d = 0
    else:
        d = _dim(dim, builtins.max(x.ndim, 1), "repeat_interleave")
        if x.ndim == 0:
            x = x.reshape(1)
    n = x.shape[d]
    if not isinstance(repeats, (int, np.integer)):
        reps = _index_array(repeats, "repeat_interleave")
        if reps.ndim > 1:
            raise ShapeError(f"repeat_interleave: repeats must be 0-d or 1-D, got shape {reps.shape}")
        if reps.ndim == 1 and reps.shape[0] == 1 and n != 1:
            reps = reps.reshape(())
        elif reps.ndim == 1 and reps.shape[0] != n:
            raise ShapeError(f"repeat_interleave: repeats has {reps.shape[0]} entries but dimension {d} has size {n}")
        v = _concrete_value(reps)
        if v is not None:
            if v.size and v.min() < 0:
                raise InvalidValueError("repeat_interleave: repeats may not be negative")
            total = int(v.sum()) * (n if v.ndim == 0 else 1)
            if output_size is not None and int(output_size) != total:
                raise InvalidValueError(
                    f"repeat_interleave: output_size={output_size} but the repeats give {total} elements"
                )
            repeats = int(v) if v.ndim == 0 else fnp.asarray(v)
        else:
            repeats = reps
    elif repeats < 0:
        raise InvalidValueError(f"repeat_interleave: repeats may not be negative, got {repeats}")
    return fnp.repeat(x, repeats, axis=d, total_repeat_length=output_size)


# -- shapes ------------------------------------------------------------------------------------


def narrow(input, dim, start, length):
    """``length`` elements of ``input`` along ``dim`` from ``start`` (negative ``start`` counts from the end),
    as ``torch.narrow``. A traced ``start`` uses ``lax.dynamic_slice`` (clamped).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.narrow(fnp.arange(6), 0, 2, 3)
        Array([2, 3, 4], dtype=int64)
    """
    x = _arr(input, "narrow")
    if x.ndim == 0:
        raise ShapeError("narrow: cannot be applied to a 0-d array")
    d = _dim(dim, x.ndim, "narrow")
    n = x.shape[d]
    length = int(length)
    if length < 0:
        raise InvalidValueError(f"narrow: length must be non-negative, got {length}")
    if isinstance(start, Tracer) and _concrete_value(start) is None:
        if length > n:
            raise InvalidValueError(f"narrow: length ({length}) exceeds dimension size ({n})")
        return ls.dynamic_slice_in_dim(x, start, length, d)
    start = int(_concrete_value(start)) if isinstance(start, (Array, Tracer)) else int(start)
    if not -n <= start <= n:
        raise IndexOutOfRangeError(
            f"narrow: start out of range (expected to be in range of [{-n}, {n}], but got {start})"
        )
    if start < 0:
        start += n
    if start + length > n:
        raise InvalidValueError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n})")
    return ls.slice_in_dim(x, start, start + length, 1, d)


def unsqueeze(input, dim):
    """Insert a size-1 axis at index ``dim`` of the result (valid range ``[-ndim-1, ndim]``), as ``torch.unsqueeze``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.unsqueeze(fnp.zeros((2, 3)), -1).shape
        (2, 3, 1)
    """
    x = _arr(input, "unsqueeze")
    d = _dim(dim, x.ndim + 1, "unsqueeze")
    return fnp.expand_dims(x, d)


def squeeze(input, dim=None):
    """Remove size-1 axes: all of them, or those among ``dim`` (an int or a tuple); a ``dim`` whose size
    is not 1 is left alone (PyTorch semantics; ``fnp.squeeze`` raises instead).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.squeeze(fnp.zeros((2, 1)), 0).shape
        (2, 1)
    """
    x = _arr(input, "squeeze")
    if dim is None:
        axes = tuple(k for k, s in enumerate(x.shape) if s == 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        if x.ndim == 0:
            for dd in dims:
                _dim(dd, 1, "squeeze")
            return x
        axes = tuple(sorted({_dim(dd, x.ndim, "squeeze") for dd in dims}))
        axes = tuple(k for k in axes if x.shape[k] == 1)
    return ls.squeeze(x, axes) if axes else x


def flatten(input, start_dim=0, end_dim=-1):
    """Merge the axes ``start_dim..end_dim`` (inclusive) into one, as ``torch.flatten``; a 0-d input gives shape (1,).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.flatten(fnp.zeros((2, 3, 4)), 1).shape
        (2, 12)
    """
    x = _arr(input, "flatten")
    if x.ndim == 0:
        _dim(start_dim, 1, "flatten")
        _dim(end_dim, 1, "flatten")
        return x.reshape(1)
    s = _dim(start_dim, x.ndim, "flatten")
    e = _dim(end_dim, x.ndim, "flatten")
    if s > e:
        raise InvalidValueError(
            f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim}) for an input of shape {x.shape}"
        )
    merged = math.prod(x.shape[s : e + 1])
    return x.reshape(x.shape[:s] + (merged,) + x.shape[e + 1 :])


def permute(input, *dims):
    """Reorder the axes (``dims`` as varargs or one sequence; negative entries allowed), as ``torch.permute``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.permute(fnp.zeros((2, 3, 4)), 2, 0, 1).shape
        (4, 2, 3)
    """
    x = _arr(input, "permute")
    perm = _sizes_arg(dims, "permute")
    if len(perm) != x.ndim:
        raise InvalidValueError(
            f"permute: the number of dims ({len(perm)}) must equal the number of dimensions of the "
            f"input ({x.ndim}, shape {x.shape})"
        )
    axes = tuple(_dim(p, x.ndim, "permute") for p in perm) if x.ndim else ()
    if len(set(axes)) != len(axes):
        raise InvalidValueError(f"permute: repeated dim in {perm}")
    return fnp.transpose(x, axes)


def expand(input, *sizes):
    """Broadcast singleton axes to ``sizes`` (varargs or one tuple); ``-1`` keeps an axis's size and new
    leading axes may be added, as ``Tensor.expand``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.expand(fnp.zeros((3, 1)), 2, -1, 4).shape
        (2, 3, 4)
    """
    x = _arr(input, "expand")
    target = _sizes_arg(sizes, "expand")
    if len(target) < x.ndim:
        raise ShapeError(
            f"expand: the number of sizes provided ({len(target)}) must be greater or equal to the "
            f"number of dimensions of the input ({x.ndim}, shape {x.shape})"
        )
    lead = len(target) - x.ndim
    shape = []
    for k, t in enumerate(target):
        if k < lead:
            if t < 0:
                raise ShapeError(f"expand: the size {t} is not allowed for a new leading dimension ({k}) in {target}")
            shape.append(t)
            continue
        s = x.shape[k - lead]
        if t == -1:
            shape.append(s)
        elif t < 0:
            raise ShapeError(f"expand: invalid size {t} in {target}")
        elif s != 1 and s != t:
            raise ShapeError(
                f"expand: the expanded size ({t}) must match the existing size ({s}) at non-singleton "
                f"dimension {k}; target sizes {target}, input shape {x.shape}"
            )
        else:
            shape.append(t)
    return fnp.broadcast_to(x, tuple(shape))


def expand_as(input, other):
    """``expand(input, other.shape)``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.expand_as(fnp.zeros(3), fnp.zeros((2, 3))).shape
        (2, 3)
    """
    return expand(input, tuple(_arr(other, "expand_as").shape))


# -- arithmetic ----------------------------------------------------------------------------------


def clamp(input, min=None, max=None):
    """Limit to ``[min, max]`` (either may be None; numbers or arrays that broadcast), as ``torch.clamp``.

    If ``min > max`` the result is ``max``. As in PyTorch, the gradient passes to ``input``
    wherever ``min <= input <= max`` (boundaries included) and NaN propagates.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.clamp(fnp.array([-1.0, 0.5, 2.0]), min=0.0)
        Array([0. , 0.5, 2. ], dtype=float32)
    """
    if min is None and max is None:
        raise InvalidValueError("clamp: at least one of 'min' or 'max' must not be None")
    out = _arr(input, "clamp")
    if min is not None:
        out = fnp.where(fnp.less(out, min), min, out)
    if max is not None:
        out = fnp.where(fnp.greater(out, max), max, out)
    return out


clip = clamp


def add(input, other, *, alpha=1):
    """``input + alpha * other``, as ``torch.add``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.add(fnp.array([1.0, 2.0]), fnp.array([1.0, 1.0]), alpha=10)
        Array([11., 12.], dtype=float32)
    """
    return fnp.add(input, _scaled(input, other, alpha, "add"))


def sub(input, other, *, alpha=1):
    """``input - alpha * other``, as ``torch.sub``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.sub(fnp.array([1.0, 2.0]), 1.0, alpha=2)
        Array([-1.,  0.], dtype=float32)
    """
    return fnp.subtract(input, _scaled(input, other, alpha, "sub"))


def _scaled(input, other, alpha, name):
    if isinstance(alpha, float) and not is_inexact(result_type(input, other)):
        raise InvalidArgumentError(f"{name}: for integer inputs alpha must be an integer, got {alpha!r}")
    return other if (type(alpha) in (int, bool) and alpha == 1) else fnp.multiply(alpha, other)


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``, as ``torch.addcmul``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.addcmul(fnp.ones(2), fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0]), value=0.5)
        Array([2.5, 5. ], dtype=float32)
    """
    prod = fnp.multiply(tensor1, tensor2)
    return fnp.add(input, prod if (type(value) is int and value == 1) else fnp.multiply(value, prod))


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``, as ``torch.addcdiv`` (integer division is refused, as in PyTorch).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.addcdiv(fnp.zeros(2), fnp.array([1.0, 2.0]), fnp.array([4.0, 4.0]), value=2)
        Array([0.5, 1. ], dtype=float32)
    """
    t1, t2 = _arr(tensor1, "addcdiv"), _arr(tensor2, "addcdiv")
    if not is_inexact(t1.dtype) and not is_inexact(t2.dtype):
        raise DTypeError(
            f"addcdiv: integer division ({t1.dtype} / {t2.dtype}) is not supported; cast tensor1 or "
            "tensor2 to a floating dtype"
        )
    quot = fnp.true_divide(t1, t2)
    return fnp.add(input, quot if (type(value) is int and value == 1) else fnp.multiply(value, quot))


# -- products --------------------------------------------------------------------------------------


def _same_dtype(a, b, name):
    if a.dtype != b.dtype:
        raise DTypeError(f"{name}: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")


def mm(input, mat2):
    """Matrix product of two 2-D arrays (no broadcasting, equal dtypes), as ``torch.mm``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.mm(fnp.ones((2, 3)), fnp.ones((3, 4))).shape
        (2, 4)
    """
    a, b = _arr(input, "mm"), _arr(mat2, "mm")
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(
            f"mm: expected 2-D matrices, got shapes {a.shape} and {b.shape} "
            "(use mv for matrix @ vector, bmm for batches, matmul to broadcast)"
        )
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"mm: shapes {a.shape} and {b.shape} cannot be multiplied ({a.shape[1]} != {b.shape[0]})")
    _same_dtype(a, b, "mm")
    return fnp.matmul(a, b)


def bmm(input, mat2):
    """Batched matrix product of two 3-D arrays with equal batch sizes, as ``torch.bmm``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.bmm(fnp.ones((5, 2, 3)), fnp.ones((5, 3, 4))).shape
        (5, 2, 4)
    """
    a, b = _arr(input, "bmm"), _arr(mat2, "bmm")
    if a.ndim != 3 or b.ndim != 3:
        raise ShapeError(f"bmm: expected 3-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"bmm: batch sizes differ: shapes {a.shape} and {b.shape}")
    if a.shape[2] != b.shape[1]:
        raise ShapeError(f"bmm: shapes {a.shape} and {b.shape} cannot be multiplied ({a.shape[2]} != {b.shape[1]})")
    _same_dtype(a, b, "bmm")
    return fnp.matmul(a, b)


def mv(input, vec):
    """Product of a 2-D matrix and a 1-D vector, as ``torch.mv``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.mv(fnp.ones((2, 3)), fnp.ones(3))
        Array([3., 3.], dtype=float32)
    """
    a, v = _arr(input, "mv"), _arr(vec, "mv")
    if a.ndim != 2 or v.ndim != 1:
        raise ShapeError(f"mv: expected a 2-D matrix and a 1-D vector, got shapes {a.shape} and {v.shape}")
    if a.shape[1] != v.shape[0]:
        raise ShapeError(f"mv: shapes {a.shape} and {v.shape} cannot be multiplied ({a.shape[1]} != {v.shape[0]})")
    _same_dtype(a, v, "mv")
    return fnp.matmul(a, v)


def dot(input, other):
    """Inner product of two 1-D arrays of equal length and dtype (a 0-d result), as ``torch.dot``.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.dot(fnp.array([1, 2]), fnp.array([3, 4]))
        Array(11, dtype=int64)
    """
    a, b = _arr(input, "dot"), _arr(other, "dot")
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expected 1-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"dot: inconsistent sizes {a.shape[0]} and {b.shape[0]}")
    _same_dtype(a, b, "dot")
    return fnp.dot(a, b)


def matmul(input, other):
    """``torch.matmul`` (NumPy's ``matmul`` rules: 1-D operands are promoted and removed, batches broadcast).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.matmul(fnp.ones((4, 2, 3)), fnp.ones(3)).shape
        (4, 2)
    """
    return fnp.matmul(input, other)


# -- reductions and sorting -------------------------------------------------------------------------


def _extreme(x, dim, keepdim, name, argfn, result):
    x = _arr(x, name)
    if x.ndim == 0:
        _dim(dim, 1, name)
        return result(x, fnp.zeros((), np.int64))
    d = _dim(dim, x.ndim, name)
    if x.shape[d] == 0:
        raise ShapeError(f"{name}: cannot reduce over dimension {d} of size 0 (input shape {x.shape})")
    idx = argfn(x, axis=d, keepdims=True)
    # Picking the value by its index sends the whole gradient to that one element, as PyTorch
    # does for max(dim)/min(dim) (the full reduction max() shares it among ties instead).
    values = fnp.take_along_axis(x, idx, d)
    if not keepdim:
        values, idx = ls.squeeze(values, (d,)), ls.squeeze(idx, (d,))
    return result(values, idx)


def max(input, dim=None, keepdim=False):
    """``torch.max``: the overall maximum (``dim=None``; ties share the gradient), or ``(values, indices)``
    along ``dim``; with an array as the second argument, the elementwise maximum.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.max(fnp.array([[1, 5], [7, 2]]), 1)
        max(values=Array([5, 7], dtype=int64), indices=Array([1, 0], dtype=int64))
    """
    if dim is None:
        return fnp.max(_arr(input, "max"))
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        return fnp.maximum(input, dim)
    return _extreme(input, dim, keepdim, "max", fnp.argmax, max_result)


def min(input, dim=None, keepdim=False):
    """``torch.min``: the overall minimum (``dim=None``), or ``(values, indices)`` along ``dim``; with an
    array as the second argument, the elementwise minimum.

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.min(fnp.array([[1, 5], [7, 2]]), 0).values
        Array([1, 2], dtype=int64)
    """
    if dim is None:
        return fnp.min(_arr(input, "min"))
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        return fnp.minimum(input, dim)
    return _extreme(input, dim, keepdim, "min", fnp.argmin, min_result)


def sort(input, dim=-1, descending=False, stable=False):
    """``torch.sort``: ``(values, indices)`` along ``dim`` (always stable here; NaN sorts as the largest).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.sort(fnp.array([3, 1, 2]), descending=True)
        sort(values=Array([3, 2, 1], dtype=int64), indices=Array([0, 2, 1], dtype=int64))
    """
    x = _arr(input, "sort")
    if x.ndim == 0:
        _dim(dim, 1, "sort")
        return sort_result(x, fnp.zeros((), np.int64))
    d = _dim(dim, x.ndim, "sort")
    idx = fnp.argsort(x, axis=d, descending=descending, stable=True)
    return sort_result(fnp.take_along_axis(x, idx, d), idx)


def argsort(input, dim=-1, descending=False, stable=False):
    """``torch.argsort``: int64 indices that sort ``input`` along ``dim`` (always stable here).

    Example:
        >>> import funcgrad.numpy as fnp, funcgrad.compat.torch as ft
        >>> ft.argsort(fnp.array([3, 1, 2]))
        Array([1, 2, 0], dtype=int64)
    """
    return sort(input, dim, descending, stable).indices
