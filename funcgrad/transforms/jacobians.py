"""Jacobians and Hessians: ``jacrev`` (reverse mode), ``jacfwd`` (forward mode), ``hessian``.

Each Jacobian leaf has shape ``out.shape + in.shape``, as in JAX. The basis vectors are
pushed (pulled) through one at a time.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.array import as_array, wrap_ndarray
from ..core.pytree import tree_flatten, tree_unflatten
from .autodiff import _check_grad_inputs, finish_aux, _split_args, _split_aux, jvp_flat, vjp_flat
from .jvp import instantiate


def _stack(rows, out_shape, in_shape, dtype):
    """Stack per-basis-vector results into a Jacobian block of shape out_shape + in_shape."""
    from ..numpy import reshape, stack

    if not rows:
        return wrap_ndarray(np.zeros(tuple(out_shape) + tuple(in_shape), dtype))
    return reshape(stack(rows), tuple(out_shape) + tuple(in_shape))


def _basis(aval):
    n = int(np.prod(aval.shape, dtype=np.int64))
    for k in range(n):
        e = np.zeros(n, aval.dtype)
        e[k] = 1
        yield wrap_ndarray(e.reshape(aval.shape))


def jacrev(fun, argnums=0, has_aux=False):
    """Jacobian by reverse mode: one VJP per output element.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.jacrev(lambda x: x ** 2)(fnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 4.]], dtype=float32)
    """

    @functools.wraps(fun)
    def jacfun(*args):
        single, nums, flat, tree, flat_fun = _split_args(fun, args, argnums, "jacrev")
        _check_grad_inputs(flat, tree, nums, "jacrev")
        cell = []

        def f(*leaves):
            out = flat_fun(*leaves)
            if has_aux:
                out, aux = _split_aux(out, "jacrev")
                cell.append(aux)
            o_flat, o_tree = tree_flatten(out)
            cell.insert(0, o_tree)
            return [as_array(o, "jacrev") for o in o_flat]

        outs, pullback = vjp_flat(f, flat)
        out_tree = cell[0]
        blocks = []  # blocks[i][j] = d out_i / d in_j
        for i, o in enumerate(outs):
            rows = [[] for _ in flat]
            for e in _basis(o.aval):
                cts = [e if k == i else None for k in range(len(outs))]
                for j, ct in enumerate(pullback(cts)):
                    rows[j].append(ct)
            blocks.append([_stack(rows[j], o.shape, x.shape, x.dtype) for j, x in enumerate(flat)])
        jac = _assemble(blocks, out_tree, tree, single)
        return (jac, finish_aux(cell[1])) if has_aux else jac

    return jacfun


def jacfwd(fun, argnums=0, has_aux=False):
    """Jacobian by forward mode: one JVP per input element.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.jacfwd(lambda x: fnp.sin(x))(fnp.array([0.0, 0.0]))
        Array([[1., 0.],
               [0., 1.]], dtype=float32)
    """

    @functools.wraps(fun)
    def jacfun(*args):
        single, nums, flat, tree, flat_fun = _split_args(fun, args, argnums, "jacfwd")
        _check_grad_inputs(flat, tree, nums, "jacfwd")
        cell = {}

        def f(*leaves):
            out = flat_fun(*leaves)
            if has_aux:
                out, cell["aux"] = _split_aux(out, "jacfwd")
            o_flat, cell["tree"] = tree_flatten(out)
            return [as_array(o, "jacfwd") for o in o_flat]

        cols = [[] for _ in flat]  # cols[j] = list over basis of [tangent_out_i]
        outs = None
        for j, x in enumerate(flat):
            for e in _basis(x.aval):
                tangents = [e if k == j else None for k in range(len(flat))]
                outs, touts = jvp_flat(f, flat, tangents)
                cols[j].append([instantiate(t, o) for t, o in zip(touts, outs)])
        if outs is None:  # no input elements at all: evaluate once for the output structure
            outs = f(*flat)
        out_tree = cell["tree"]
        blocks = []
        from ..numpy import moveaxis

        for i, o in enumerate(outs):
            row = []
            for j, x in enumerate(flat):
                col = [c[i] for c in cols[j]]
                block = _stack(col, x.shape, o.shape, o.dtype)  # in_shape + out_shape
                nin = len(x.shape)
                row.append(moveaxis(block, tuple(range(nin)), tuple(range(-nin, 0))) if nin else block)
            blocks.append(row)
        jac = _assemble(blocks, out_tree, tree, single)
        return (jac, finish_aux(cell["aux"])) if has_aux else jac

    return jacfun


def _assemble(blocks, out_tree, in_tree, single):
    """Nest blocks as JAX does: output structure outside, input structure inside."""
    per_out = []
    for row in blocks:
        inner = tree_unflatten(in_tree, row)
        per_out.append(inner[0] if single else tuple(inner))
    return tree_unflatten(out_tree, per_out)


def hessian(fun, argnums=0, has_aux=False):
    """Hessian: ``jacfwd(jacrev(fun))``.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.hessian(lambda x: fnp.sum(x ** 3))(fnp.array([1.0, 2.0]))
        Array([[ 6.,  0.],
               [ 0., 12.]], dtype=float32)
    """
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux)


