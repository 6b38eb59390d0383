"""Testing utilities: numerical gradient checks and pytree-aware comparisons.

``check_grads`` checks forward mode against central finite differences in a random
direction and reverse mode through the inner-product identity
``<ct, J t> == <J^T ct, t>``, recursively for higher orders (the scheme of JAX's
``check_grads``). Run it in float64: finite differences in float32 are only good to a
few digits, and the default tolerances for low-precision dtypes are loose accordingly.

Example:
    >>> import numpy as np, funcgrad.numpy as fnp
    >>> from funcgrad.testing import assert_allclose, check_grads
    >>> check_grads(lambda x: fnp.sum(fnp.sin(x) ** 2), (np.linspace(0.0, 1.0, 4),), order=2)
    >>> assert_allclose({"a": fnp.ones(2)}, {"a": np.ones(2)})
"""

from __future__ import annotations

import numpy as np

from .core.dtypes import bfloat16, float0, is_inexact
from .core.pytree import keystr, tree_flatten, tree_flatten_with_path, tree_map, tree_unflatten
from .core.errors import InvalidArgumentError, InvalidValueError

__all__ = ["assert_allclose", "check_grads", "check_jvp", "check_vjp", "check_jit", "check_vmap", "numerical_jvp"]

# Finite-difference step and comparison tolerance per dtype. The tolerance applies both
# absolutely and relatively (as in JAX); the step balances truncation against round-off.
_EPS = {"float16": 1e-1, "bfloat16": 1e-1, "float32": 1e-3, "float64": 1e-4, "complex64": 1e-3, "complex128": 1e-4}
_GRAD_TOL = {"float16": 5e-2, "bfloat16": 1e-1, "float32": 2e-2, "float64": 1e-5, "complex64": 2e-2, "complex128": 1e-5}
# The smallest relative tolerance assert_allclose uses per dtype (its resolution).
_RTOL_FLOOR = {"float16": 1e-3, "bfloat16": 1e-2}
# vmap/jit run the same computation in another order (fused, batched): only round-off may differ.
_SAME_PROGRAM_TOL = {"float16": 1e-3, "bfloat16": 1e-2, "float32": 1e-5}


# -- helpers --------------------------------------------------------------------------------


def _np(x):
    """A NumPy view of a leaf (Array, tracer-free value, NumPy array or Python scalar)."""
    return np.asarray(x)


def _dtype_name(dtype) -> str:
    dtype = np.dtype(dtype)
    return "bfloat16" if bfloat16 is not None and dtype == bfloat16 else dtype.name


def _is_inexact_leaf(x) -> bool:
    dt = _np(x).dtype
    return dt != float0 and is_inexact(dt)


def _lowest_precision(leaves, table, default):
    """The table entry of the least precise inexact dtype among ``leaves``."""
    vals = [table.get(_dtype_name(_np(x).dtype)) for x in leaves if _is_inexact_leaf(x)]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else default


def _as_arrays(tree):
    from .numpy import asarray

    return tree_map(lambda x: asarray(x), tree)


def _rand_like(rng, x):
    """A random direction shaped like ``x``: standard normal for inexact leaves, float0 zeros otherwise."""
    v = _np(x)
    if v.dtype == float0 or not is_inexact(v.dtype):
        return np.zeros(v.shape, float0)
    r = rng.standard_normal(v.shape)
    if v.dtype.kind == "c":
        r = r + 1j * rng.standard_normal(v.shape)
    return np.asarray(r).astype(v.dtype)


def _wrap(x):
    from .core.array import wrap_ndarray

    return wrap_ndarray(np.array(x))


def _scaled_add(x, t, s):
    """``x + s * t`` in ``x``'s dtype (integer leaves are left alone)."""
    v = _np(x)
    if not _is_inexact_leaf(v):
        return x
    return _wrap((v.astype(np.result_type(v.dtype, np.float64)) + s * _np(t)).astype(v.dtype))


def _inner(xs, ys):
    """``(sum x*y, sum |x*y|)`` over the inexact leaves: the inner product and its scale."""
    total, scale = 0.0, 0.0
    for x, y in zip(xs, ys):
        a, b = _np(x), _np(y)
        if a.dtype == float0 or b.dtype == float0 or not (is_inexact(a.dtype) and is_inexact(b.dtype)):
            continue
        p = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64) * b
        total = total + p.sum()
        scale += float(np.abs(p).sum())
    return total, scale


def numerical_jvp(f, primals, tangents, eps):
    """Central finite difference ``(f(x + eps t) - f(x - eps t)) / 2 eps`` (a pytree like f's output).

    Integer leaves of ``primals`` are not perturbed; integer outputs give float0 zeros.

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> from funcgrad.testing import numerical_jvp
        >>> numerical_jvp(fnp.square, (np.array([3.0]),), (np.array([1.0]),), eps=1e-4)
        array([6.])
    """
    plus = f(*tree_map(lambda x, t: _scaled_add(x, t, eps), primals, tangents))
    minus = f(*tree_map(lambda x, t: _scaled_add(x, t, -eps), primals, tangents))

    def diff(a, b):
        a, b = _np(a), _np(b)
        if a.dtype == float0 or not is_inexact(a.dtype):
            return np.zeros(a.shape, float0)
        wide = np.result_type(a.dtype, np.float64)
        return ((a.astype(wide) - b.astype(wide)) / (2 * eps)).astype(a.dtype)

    return tree_map(diff, plus, minus)


def _tolerances(args, out, atol, rtol, eps):
    """Defaults from the least precise inexact dtype among the inputs (step) and outputs (tolerance)."""
    in_leaves = tree_flatten(args)[0]
    leaves = in_leaves + tree_flatten(out)[0]
    tol = _lowest_precision(leaves, _GRAD_TOL, 1e-5)
    return (
        tol if atol is None else atol,
        tol if rtol is None else rtol,
        _lowest_precision(in_leaves, _EPS, 1e-4) if eps is None else eps,
    )


# -- gradient checks ------------------------------------------------------------------------------


def check_jvp(f, f_jvp, args, atol=None, rtol=None, eps=None, err_msg="", seed=0):
    """Check ``f_jvp(primals, tangents)`` against finite differences of ``f`` in a random direction.

    Example:
        >>> import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
        >>> from funcgrad.testing import check_jvp
        >>> check_jvp(fnp.exp, lambda p, t: fg.jvp(fnp.exp, p, t), (np.array([0.5, 1.0]),))
    """
    rng = np.random.RandomState(seed)
    v_expected = f(*args)
    atol, rtol, eps = _tolerances(args, v_expected, atol, rtol, eps)
    tangents = tree_map(lambda x: _rand_like(rng, x), args)
    v_out, t_out = f_jvp(args, tree_map(_wrap, tangents))
    assert_allclose(v_out, v_expected, rtol=rtol, atol=atol, err_msg=f"{err_msg} primal output of the JVP")
    t_expected = numerical_jvp(f, args, tangents, eps)
    # Tangents of integer outputs are float0 zeros on both sides; assert_allclose skips them.
    assert_allclose(
        t_out,
        t_expected,
        rtol=rtol,
        atol=atol,
        err_msg=f"{err_msg} JVP tangent vs central finite differences (eps={eps})",
    )


def check_vjp(f, f_vjp, args, atol=None, rtol=None, eps=None, err_msg="", seed=0):
    """Check ``f_vjp(*args) -> (out, vjp_fn)`` through ``<ct, J t> == <J^T ct, t>``.

    ``J t`` comes from finite differences, so this also validates the primal function's
    derivative, not only that the VJP is the transpose of some JVP.

    Example:
        >>> import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
        >>> from funcgrad.testing import check_vjp
        >>> check_vjp(fnp.tanh, lambda *a: fg.vjp(fnp.tanh, *a), (np.array([0.5, 1.0]),))
    """
    rng = np.random.RandomState(seed + 1)
    v_expected = f(*args)
    atol, rtol, eps = _tolerances(args, v_expected, atol, rtol, eps)
    v_out, vjp_fn = f_vjp(*args)
    assert_allclose(v_out, v_expected, rtol=rtol, atol=atol, err_msg=f"{err_msg} primal output of the VJP")
    tangents = tree_map(lambda x: _rand_like(rng, x), args)
    t_out = numerical_jvp(f, args, tangents, eps)
    cotangents = tree_map(lambda x: _rand_like(rng, x), v_out)
    ct_in = vjp_fn(tree_map(lambda c: _wrap(np.conj(c)) if c.dtype != float0 else _wrap(c), cotangents))
    ct_in = tree_map(lambda c: np.conj(_np(c)) if _np(c).dtype != float0 else _np(c), ct_in)
    ip, scale_a = _inner(tree_flatten(tangents)[0], tree_flatten(ct_in)[0])
    ip_expected, scale_b = _inner(tree_flatten(t_out)[0], tree_flatten(cotangents)[0])
    # Cancellation in a long inner product makes a purely relative test meaningless: measure
    # the error against the sum of the magnitudes of the terms instead.
    scale = max(scale_a, scale_b)
    if abs(ip - ip_expected) > atol * max(1.0, scale) + rtol * scale:
        raise AssertionError(
            f"{err_msg} VJP inner-product check failed: <J^T ct, t> = {ip!r} but <ct, J t> (finite differences, "
            f"eps={eps}) = {ip_expected!r}; difference {abs(ip - ip_expected):.3e}, term magnitude {scale:.3e}, "
            f"atol={atol}, rtol={rtol}"
        )


def check_grads(f, args, order=2, modes=("fwd", "rev"), atol=None, rtol=None, eps=None):
    """Check the derivatives of ``f`` at ``args`` numerically, up to ``order``.

    Forward mode (``"fwd"``) compares ``fg.jvp`` with central finite differences in a random
    direction; reverse mode (``"rev"``) checks ``fg.vjp`` through the inner-product identity
    ``<ct, J t> == <J^T ct, t>``. For ``order > 1`` the same checks run on the JVP as a
    function of ``(primals, tangents)`` and on ``x -> vjp_fn(f(x))``, so every derivative
    up to ``order`` is exercised in every mixture of modes.

    Args:
        f: function of the positional ``args`` (pytrees of arrays allowed) returning a pytree.
        args: tuple of arguments. Integer and bool leaves are held fixed.
        order: highest derivative order to check.
        modes: any of ``"fwd"`` and ``"rev"``.
        atol, rtol: tolerances; by default from the least precise inexact dtype among the
            arguments and outputs (1e-5 for float64, 2e-2 for float32), kept for higher orders.
        eps: finite-difference step; by default 1e-4 for float64, 1e-3 for float32.

    Raises:
        AssertionError: naming the mode and order that disagree.

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> from funcgrad.testing import check_grads
        >>> check_grads(lambda x, y: fnp.sum(x * fnp.exp(y)), (np.ones(3), np.zeros(3)), order=2)
    """
    from .transforms.autodiff import jvp, vjp

    if not isinstance(args, (tuple, list)):
        raise InvalidArgumentError(f"check_grads: args must be a tuple of arguments, got {type(args).__name__}")
    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise InvalidValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and/or 'rev'")
    args = tuple(_as_arrays(tuple(args)))

    def _check(f, args, order, msg, tol):
        # A derivative function computes in the precision of every intermediate of f (a float32
        # step inside a float64 function stays float32), so nested levels keep the outer tolerance.
        tol = max(tol, _tolerances(args, f(*args), None, None, None)[0])
        kw = dict(atol=tol if atol is None else atol, rtol=tol if rtol is None else rtol, eps=eps)
        if "fwd" in modes:
            fwd_msg = f"{msg} JVP (order {order_total - order + 1})"
            check_jvp(f, lambda p, t: jvp(f, p, t), args, err_msg=fwd_msg, **kw)
            if order > 1:
                _check(lambda p, t: jvp(f, p, t), (args, _rand_tangents(args)), order - 1, fwd_msg + " ->", tol)
        if "rev" in modes:
            rev_msg = f"{msg} VJP (order {order_total - order + 1})"
            check_vjp(f, lambda *a: vjp(f, *a), args, err_msg=rev_msg, **kw)
            if order > 1:

                def f_vjp(*a):
                    out, vjp_fn = vjp(f, *a)
                    return vjp_fn(_cotangent_from(out))

                _check(f_vjp, args, order - 1, rev_msg + " ->", tol)

    order_total = order
    _check(f, args, order, "check_grads:", 0.0)


def _rand_tangents(args):
    rng = np.random.RandomState(2)
    return tree_map(lambda x: _wrap(_rand_like(rng, x)), args)


def _cotangent_from(out):
    """A cotangent that depends differentiably on the output (the output itself; float0 for ints)."""
    from .core.array import as_array

    def ct(o):
        o = as_array(o)
        return o if is_inexact(o.dtype) else _wrap(np.zeros(o.shape, float0))

    return tree_map(ct, out)


# -- comparisons ------------------------------------------------------------------------------------


def assert_allclose(actual, desired, rtol=1e-6, atol=0, err_msg="", check_dtypes=False):
    """Assert that two pytrees have the same structure and element-wise close leaves.

    Leaves are compared with ``numpy.testing.assert_allclose``. For float16 and bfloat16
    leaves ``rtol`` is raised to at least the dtype's resolution (1e-3 and 1e-2), so the
    defaults work for every dtype; integer and bool leaves must match exactly within
    ``atol``. The message names the path of the first differing leaf. A (nested) list of
    Python numbers compared with a single array is read as array data, as NumPy does.

    Args:
        actual, desired: pytrees of arrays, NumPy arrays or Python scalars.
        rtol, atol: relative and absolute tolerance.
        err_msg: prefix for the failure message.
        check_dtypes: also require equal dtypes leaf by leaf.

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> from funcgrad.testing import assert_allclose
        >>> assert_allclose((fnp.array([1.0, 2.0]), {"b": 3}), (np.array([1.0, 2.0]), {"b": 3}))
    """
    actual, desired = _as_array_data(actual, desired), _as_array_data(desired, actual)
    a_pairs, a_tree = tree_flatten_with_path(actual)
    d_leaves, d_tree = tree_flatten(desired)
    if a_tree != d_tree:
        raise AssertionError(
            f"{err_msg}{': ' if err_msg else ''}pytree structures differ: actual {a_tree}, desired {d_tree}"
        )
    for (path, a), d in zip(a_pairs, d_leaves):
        where = f"leaf {keystr(path) or '<root>'}"
        av, dv = _np(a), _np(d)
        prefix = f"{err_msg}{': ' if err_msg else ''}{where}"
        if check_dtypes and av.dtype != dv.dtype:
            raise AssertionError(f"{prefix}: dtypes differ: actual {av.dtype}, desired {dv.dtype}")
        if av.shape != dv.shape:
            raise AssertionError(f"{prefix}: shapes differ: actual {av.shape}, desired {dv.shape}")
        if av.dtype == float0 or dv.dtype == float0:
            continue
        r = max([rtol] + [_RTOL_FLOOR.get(_dtype_name(v.dtype), 0.0) for v in (av, dv)])
        np.testing.assert_allclose(
            _comparable(av), _comparable(dv), rtol=r, atol=atol, err_msg=f"{prefix} (dtype {av.dtype} vs {dv.dtype})"
        )


def _as_array_data(x, other):
    """Where ``other`` has a single array and ``x`` a (nested) list or tuple of Python numbers, read
    ``x`` as array data, as NumPy does (so ``assert_allclose(y, [1.0, 2.0])`` works, also inside dicts)."""
    if isinstance(x, (list, tuple)) and tree_flatten(other)[1] == _LEAF_DEF:
        numbers = all(isinstance(v, (bool, int, float, complex, np.generic)) for v in tree_flatten(x)[0])
        return np.asarray(x) if numbers and not hasattr(x, "_fields") else x
    if isinstance(x, dict) and isinstance(other, dict) and set(x) == set(other):
        return {k: _as_array_data(v, other[k]) for k, v in x.items()}
    if type(x) in (list, tuple) and type(other) in (list, tuple) and len(x) == len(other):
        return type(x)(_as_array_data(a, b) for a, b in zip(x, other))
    return x


_LEAF_DEF = tree_flatten(0)[1]


def _comparable(v):
    if bfloat16 is not None and v.dtype == bfloat16:
        return v.astype(np.float32)
    return v


# -- vmap / jit checks ---------------------------------------------------------------------------


def check_vmap(f, args, in_axes=0, out_axes=0, atol=None, rtol=None):
    """Check ``fg.vmap(f)`` against a Python loop over the mapped axis.

    ``in_axes`` is an int, None, or one int/None per positional argument (the axis applies to
    every leaf of that argument).

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> from funcgrad.testing import check_vmap
        >>> check_vmap(fnp.sin, (np.ones((3, 2)),))
    """
    from .numpy import moveaxis, stack
    from .transforms.batching import vmap

    args = tuple(_as_arrays(tuple(args)))
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    sizes = {tree_flatten(a)[0][0].shape[ax] for a, ax in zip(args, axes) if ax is not None}
    if len(sizes) != 1:
        raise InvalidValueError(f"check_vmap: mapped axes have inconsistent sizes {sorted(sizes)}")
    n = sizes.pop()

    def slice_arg(a, ax, i):
        return a if ax is None else tree_map(lambda x: moveaxis(x, ax, 0)[i], a)

    rows = [f(*[slice_arg(a, ax, i) for a, ax in zip(args, axes)]) for i in range(n)]
    flat_rows = [tree_flatten(r)[0] for r in rows]
    expected = tree_unflatten(
        tree_flatten(rows[0])[1],
        [moveaxis(stack([r[k] for r in flat_rows]), 0, out_axes) for k in range(len(flat_rows[0]))],
    )
    got = vmap(f, in_axes=in_axes, out_axes=out_axes)(*args)
    _assert_same_program(got, expected, args, rtol, atol, "check_vmap: vmap(f) vs a loop over f")


def _assert_same_program(got, expected, args, rtol, atol, err_msg):
    """Two evaluations of the same program: tolerances from the lowest input precision."""
    tol = _lowest_precision(tree_flatten(args)[0], _SAME_PROGRAM_TOL, 1e-7)
    assert_allclose(
        got,
        expected,
        rtol=tol if rtol is None else rtol,
        atol=tol if atol is None else atol,
        err_msg=err_msg,
        check_dtypes=True,
    )


def check_jit(f, args, atol=None, rtol=None, **jit_kwargs):
    """Check ``fg.jit(f)`` against eager ``f``.

    Example:
        >>> import numpy as np, funcgrad.numpy as fnp
        >>> from funcgrad.testing import check_jit
        >>> check_jit(fnp.sin, (np.ones(3),))
    """
    from .jit.api import jit

    args = tuple(_as_arrays(tuple(args)))
    expected = f(*args)
    got = jit(f, **jit_kwargs)(*args)
    _assert_same_program(got, expected, args, rtol, atol, "check_jit: jit(f) vs eager f")
