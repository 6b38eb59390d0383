"""Products: ``matmul``, ``dot``, ``tensordot``, ``einsum``, ``outer``, ``inner``, ``trace``, ``diagonal``.

Everything lowers to the single ``dot_general`` primitive (plus transposes and sums).
"""

from __future__ import annotations

import string

import numpy as np

from ..core.array import wrap_ndarray
from ..core.dtypes import result_type
from ..core.errors import InvalidValueError, ShapeError
from ..lax import elementwise as lx
from ..lax.dot import dot_general_p
from ..lax.indexing import getitem_p
from ..lax.reductions import reduce_sum
from ..lax.shape import broadcast_in_dim, expand_dims, reshape, squeeze, transpose
from ._util import broadcast_shapes, broadcast_to_shape, canonical_axis, to_array


def _promote2(a, b, name):
    x, y = to_array(a, name), to_array(b, name)
    dt = result_type(x, y)
    return lx.convert_element_type(x, dt), lx.convert_element_type(y, dt)


def _dg(x, y, lc, rc, lb=(), rb=()):
    return dot_general_p.bind(
        x, y, dimension_numbers=((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))), preferred_element_type=None
    )


def matmul(a, b, /):
    """Matrix product with NumPy/PyTorch semantics: batch dims broadcast, 1-D operands are
    promoted to matrices and the added axis removed afterwards.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> (fnp.ones((5, 2, 3)) @ fnp.ones((3, 4))).shape
        (5, 2, 4)
    """
    x, y = _promote2(a, b, "matmul")
    if x.ndim == 0 or y.ndim == 0:
        raise InvalidValueError(
            f"matmul: input operands must not be scalars (got shapes {x.shape} and {y.shape}); use *"
        )
    xv, yv = x.ndim == 1, y.ndim == 1
    if xv:
        x = expand_dims(x, (0,))
    if yv:
        y = expand_dims(y, (1,))
    if x.shape[-1] != y.shape[-2]:
        raise ShapeError(
            f"matmul: contraction dimension mismatch: shapes {tuple(a.shape) if hasattr(a, 'shape') else ()} "
            f"and {tuple(b.shape) if hasattr(b, 'shape') else ()} (size {x.shape[-1]} is different "
            f"from {y.shape[-2]})"
        )
    if y.ndim == 2:
        # (..., M, K) @ (K, N): one contraction, no batch dims, output already in order.
        out = _dg(x, y, (x.ndim - 1,), (0,))
    elif x.ndim == 2:
        out = _dg(x, y, (1,), (y.ndim - 2,))  # (M, batch..., N)
        out = transpose(out, tuple(range(1, y.ndim - 1)) + (0, y.ndim - 1))
    else:
        batch = broadcast_shapes([x.shape[:-2], y.shape[:-2]], "matmul")
        x = broadcast_to_shape(x, batch + x.shape[-2:])
        y = broadcast_to_shape(y, batch + y.shape[-2:])
        nb = len(batch)
        out = _dg(x, y, (nb + 1,), (nb,), tuple(range(nb)), tuple(range(nb)))
    if xv:
        out = squeeze(out, (out.ndim - 2,))
    if yv:
        out = squeeze(out, (out.ndim - 1,))
    return out


def dot(a, b):
    """NumPy's ``dot``: scalars multiply, 1-D inner product, N-D contracts the last axis of ``a``
    with the second-to-last of ``b``.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.dot(fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0]))
        Array(11., dtype=float32)
    """
    x, y = _promote2(a, b, "dot")
    if x.ndim == 0 or y.ndim == 0:
        from .ufuncs import multiply

        return multiply(x, y)
    yc = 0 if y.ndim == 1 else y.ndim - 2
    if x.shape[-1] != y.shape[yc]:
        raise ShapeError(
            f"dot: shapes {x.shape} and {y.shape} not aligned: {x.shape[-1]} (dim {x.ndim - 1}) != "
            f"{y.shape[yc]} (dim {yc})"
        )
    return _dg(x, y, (x.ndim - 1,), (yc,))


def vdot(a, b):
    """Dot product of the flattened arrays, conjugating the first."""
    x, y = _promote2(a, b, "vdot")
    x = x.reshape(-1)
    if x.dtype.kind == "c":
        x = lx.conj(x)
    return dot(x, y.reshape(-1))


def inner(a, b):
    """Inner product over the last axes."""
    x, y = _promote2(a, b, "inner")
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    if x.shape[-1] != y.shape[-1]:
        raise ShapeError(f"inner: last dimensions differ: {x.shape} and {y.shape}")
    return _dg(x, y, (x.ndim - 1,), (y.ndim - 1,))


def outer(a, b):
    """Outer product of the flattened inputs.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.outer(fnp.array([1, 2]), fnp.array([3, 4]))
        Array([[3, 4],
               [6, 8]], dtype=int64)
    """
    x, y = _promote2(a, b, "outer")
    x, y = x.reshape(-1), y.reshape(-1)
    return _dg(expand_dims(x, (1,)), expand_dims(y, (0,)), (1,), (0,))


def tensordot(a, b, axes=2):
    """Sum products over ``axes`` (an int n: last n of a with first n of b; or two axis lists)."""
    x, y = _promote2(a, b, "tensordot")
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        ax_a, ax_b = list(range(x.ndim - n, x.ndim)), list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [canonical_axis(i, x.ndim, "tensordot") for i in ax_a]
    ax_b = [canonical_axis(i, y.ndim, "tensordot") for i in ax_b]
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise ShapeError(f"tensordot: shape mismatch for sum: {x.shape} axis {i} vs {y.shape} axis {j}")
    return _dg(x, y, ax_a, ax_b)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal over ``axis1``/``axis2``, appended as the last axis (NumPy semantics)."""
    x = to_array(a, "diagonal")
    if x.ndim < 2:
        raise InvalidValueError(f"diagonal: array must be at least 2-D, got shape {x.shape}")
    a1, a2 = canonical_axis(axis1, x.ndim, "diagonal"), canonical_axis(axis2, x.ndim, "diagonal")
    if a1 == a2:
        raise InvalidValueError("diagonal: axis1 and axis2 cannot be the same")
    rest = [d for d in range(x.ndim) if d not in (a1, a2)]
    x = transpose(x, tuple(rest) + (a1, a2))
    n, m = x.shape[-2:]
    length = max(0, min(n + min(offset, 0), m - max(offset, 0)))
    rows = np.arange(length, dtype=np.int64) + max(-offset, 0)
    cols = np.arange(length, dtype=np.int64) + max(offset, 0)
    spec = tuple(("s", None, None, None) for _ in rest) + (("a", 0), ("a", 1))
    return getitem_p.bind(x, wrap_ndarray(rows), wrap_ndarray(cols), spec=spec, mode="clip", fill_value=None)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None):
    """Sum along a diagonal."""
    from .reductions import sum as sum_

    return sum_(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def kron(a, b):
    x, y = _promote2(a, b, "kron")
    nd = max(x.ndim, y.ndim)
    x = reshape(x, (1,) * (nd - x.ndim) + x.shape)
    y = reshape(y, (1,) * (nd - y.ndim) + y.shape)
    out = expand_dims(x, tuple(range(1, 2 * nd, 2))) * expand_dims(y, tuple(range(0, 2 * nd, 2)))
    return reshape(out, tuple(i * j for i, j in zip(x.shape, y.shape)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 3-vectors along the last axis."""
    from .shape_ops import stack

    x, y = _promote2(a, b, "cross")
    if x.shape[-1] != 3 or y.shape[-1] != 3:
        raise InvalidValueError(
            f"cross: vectors must have 3 components along the last axis, got {x.shape} and {y.shape}"
        )
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    y0, y1, y2 = y[..., 0], y[..., 1], y[..., 2]
    return stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], -1)


# -- einsum ----------------------------------------------------------------------------------


def _parse_einsum(subscripts, operands):
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        ins, out = subscripts.split("->")
    else:
        ins, out = subscripts, None
    terms = ins.split(",")
    if len(terms) != len(operands):
        raise InvalidValueError(
            f"einsum: {len(terms)} operand subscripts in {subscripts!r} but {len(operands)} operands given"
        )
    used = set(c for c in subscripts if c.isalpha())
    pool = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for t, op in zip(terms, operands):
        if "..." in t:
            n_ell = max(n_ell, op.ndim - len(t.replace("...", "")))
    ell = "".join(pool[:n_ell])
    parsed = []
    for t, op in zip(terms, operands):
        for c in t.replace("...", ""):
            if not c.isalpha():
                raise InvalidValueError(f"einsum: invalid subscript character {c!r} in {subscripts!r}")
        if "..." in t:
            k = op.ndim - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k :] if k else "")
        if len(t) != op.ndim:
            raise InvalidValueError(f"einsum: operand of shape {op.shape} has {op.ndim} dims but subscripts {t!r}")
        parsed.append(t)
    if out is None:
        counts = {}
        for t in parsed:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
        for c in out:
            if not any(c in t for t in parsed):
                raise InvalidValueError(
                    f"einsum: output subscript {c!r} does not appear in the inputs of {subscripts!r}"
                )
    return parsed, out


def _take_diagonals(x, t):
    """Collapse repeated letters in one operand's subscripts (``'ii' -> 'i'``)."""
    while True:
        dup = next((c for c in t if t.count(c) > 1), None)
        if dup is None:
            return x, t
        i = t.index(dup)
        j = t.index(dup, i + 1)
        x = diagonal(x, 0, i, j)  # moves the diagonal to the end
        t = "".join(c for k, c in enumerate(t) if k not in (i, j)) + dup


def _sum_letters(x, t, letters):
    axes = tuple(i for i, c in enumerate(t) if c in letters)
    if not axes:
        return x, t
    return reduce_sum(x, axes), "".join(c for c in t if c not in letters)


def einsum(subscripts, *operands, optimize="auto", precision=None, preferred_element_type=None):
    """Einstein summation (``'ij,jk->ik'``, implicit output, ``...`` broadcasting, repeated indices).

    PyTorch's list form ``einsum(eq, [a, b])`` is accepted too.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> fnp.einsum("ij,jk->ik", fnp.ones((2, 3)), fnp.ones((3, 4))).shape
        (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ops = [to_array(o, "einsum") for o in operands]
    if not ops:
        raise InvalidValueError("einsum: at least one operand is required")
    dt = result_type(*ops)
    ops = [lx.convert_element_type(o, dt) for o in ops]
    terms, out = _parse_einsum(subscripts, ops)
    sizes = {}
    for t, o in zip(terms, ops):
        for c, s in zip(t, o.shape):
            if c in sizes and sizes[c] != s and 1 not in (sizes[c], s):
                raise ShapeError(
                    f"einsum: size of label {c!r} differs between operands ({sizes[c]} vs {s}) in {subscripts!r}"
                )
            sizes[c] = max(sizes.get(c, 1), s)
    prepared = []
    for k, (t, o) in enumerate(zip(terms, ops)):
        o, t = _take_diagonals(o, t)
        others = set(out).union(*[set(tt) for j, tt in enumerate(terms) if j != k])
        o, t = _sum_letters(o, t, set(t) - others)
        prepared.append((o, t))
    acc, at = prepared[0]
    for k in range(1, len(prepared)):
        o, ot = prepared[k]
        later = set(out).union(*[set(tt) for _, tt in prepared[k + 1 :]])
        # broadcast size-1 dims of shared labels
        acc = _broadcast_labels(acc, at, sizes)
        o = _broadcast_labels(o, ot, sizes)
        shared = [c for c in at if c in ot]
        batch = [c for c in shared if c in later]
        contract = [c for c in shared if c not in later]
        acc = _dg(
            acc,
            o,
            [at.index(c) for c in contract],
            [ot.index(c) for c in contract],
            [at.index(c) for c in batch],
            [ot.index(c) for c in batch],
        )
        at = "".join(batch) + "".join(c for c in at if c not in shared) + "".join(c for c in ot if c not in shared)
    acc, at = _sum_letters(acc, at, set(at) - set(out))
    if len(prepared) > 1 or at != out:
        acc = _broadcast_labels(acc, at, sizes) if len(prepared) > 1 else acc
    return transpose(acc, tuple(at.index(c) for c in out)) if at != out else acc


def _broadcast_labels(x, t, sizes):
    target = tuple(sizes[c] for c in t)
    if x.shape == target:
        return x
    return broadcast_in_dim(x, target, tuple(range(x.ndim)))
