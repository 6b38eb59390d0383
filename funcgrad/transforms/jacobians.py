"""Jacobians and Hessians: ``jacrev`` (reverse mode), ``jacfwd`` (forward mode), ``hessian``.

Each Jacobian leaf has shape ``out.shape + in.shape``, as in JAX. The standard basis is
pushed (pulled) through all at once with ``vmap``: one batched JVP (VJP) per input (output)
leaf rather than one per element.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.array import as_array, wrap_ndarray
from ..core.pytree import tree_flatten, tree_unflatten
from .autodiff import _check_grad_inputs, finish_aux, _split_args, _split_aux, jvp_flat, vjp_flat
from .batching import vmap_flat
from .jvp import instantiate


def _basis(aval):
    """The standard basis of ``aval``'s space, stacked: shape ``(size, *aval.shape)``."""
    n = int(np.prod(aval.shape, dtype=np.int64))
    return wrap_ndarray(np.eye(n, dtype=aval.dtype).reshape((n,) + tuple(aval.shape)))


def _block(batched, lead_shape, trail_shape, dtype):
    """Reshape a ``(size, *trail_shape)`` stack of basis responses to ``lead_shape + trail_shape``."""
    from ..numpy import reshape

    if batched is None:
        return wrap_ndarray(np.zeros(tuple(lead_shape) + tuple(trail_shape), dtype))
    return reshape(batched, tuple(lead_shape) + tuple(trail_shape))


def jacrev(fun, argnums=0, has_aux=False):
    """Jacobian by reverse mode: the VJP of every output basis vector, batched with vmap.

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
            if o.size == 0:
                blocks.append([_block(None, o.shape, x.shape, x.dtype) for x in flat])
                continue
            rows = vmap_flat(
                lambda e, i=i: pullback([e if k == i else None for k in range(len(outs))]),
                [_basis(o.aval)],
                [0],
                o.size,
            )
            blocks.append([_block(r, o.shape, x.shape, x.dtype) for r, x in zip(rows, flat)])
        jac = _assemble(blocks, out_tree, tree, single)
        return (jac, finish_aux(cell[1])) if has_aux else jac

    return jacfun


def jacfwd(fun, argnums=0, has_aux=False):
    """Jacobian by forward mode: the JVP of every input basis vector, batched with vmap.

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

        outs = f(*flat)
        out_tree = cell["tree"]
        cols = []  # cols[j][i] = stacked d out_i / d in_j, shape (in_j.size, *out_i.shape)
        for j, x in enumerate(flat):
            if x.size == 0:
                cols.append([None] * len(outs))
                continue

            def push(t, j=j):
                res, touts = jvp_flat(f, flat, [t if k == j else None for k in range(len(flat))])
                return [instantiate(tt, o) for tt, o in zip(touts, res)]

            cols.append(vmap_flat(push, [_basis(x.aval)], [0], x.size))
        from ..numpy import moveaxis

        blocks = []
        for i, o in enumerate(outs):
            row = []
            for j, x in enumerate(flat):
                block = _block(cols[j][i], x.shape, o.shape, o.dtype)  # in_shape + out_shape
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
