"""``lax.cond`` and ``lax.switch``: the ``cond`` primitive, whose branches are closed jaxprs.

``cond_p.bind(index, *operands, branches=(ClosedJaxpr, ...))`` evaluates
``branches[index](*operands)``. Every branch takes all operands (the values each branch
closes over are operands too, ignored by the other branches) and returns the same types.
"""

from __future__ import annotations

import numpy as np

from ...core.array import Array, as_array
from ...core.errors import InvalidArgumentError, InvalidValueError
from ...core.trace import set_current_trace
from ...transforms.autodiff import jvp_flat
from ...transforms.batching import vmap_flat
from ...transforms.jvp import zeros_like_aval
from ...transforms.transpose import is_undefined
from .._batching import batch_size
from .common import (
    ControlFlowPrimitive,
    types,
    add_invars,
    aval_of,
    backward_jaxpr,
    batch_jaxpr,
    call_jaxpr,
    describe_types,
    flatten_args,
    jvp_jaxpr,
    partial_eval_jaxpr,
    to_front,
    trace_closed,
    trace_user_fun,
)

cond_p = ControlFlowPrimitive("cond")


def _concrete_index(index, n):
    """The branch a concrete index selects (clamped, as the wrappers already do)."""
    return int(np.clip(np.asarray(index._value).item(), 0, n - 1))


def _cond_impl(index, *ops, branches):
    return call_jaxpr(branches[_concrete_index(index, len(branches))], *ops)


def _cond_abstract(index, *ops, branches):
    if index.shape != () or index.dtype.kind not in "iu":
        raise InvalidArgumentError(f"cond: the branch index must be an integer scalar, got {index.str_short()}")
    for i, b in enumerate(branches):
        if list(b.in_avals) != list(ops):
            raise InvalidArgumentError(
                f"cond: branch {i} takes ({types(b.in_avals)}) but the operands are ({types(ops)})"
            )
        if list(b.out_avals) != list(branches[0].out_avals):
            raise InvalidArgumentError(
                f"cond: branch {i} returns ({types(b.out_avals)}), branch 0 returns ({types(branches[0].out_avals)})"
            )
    return list(branches[0].out_avals)


def _cond_jvp(primals, tangents, branches):
    index, ops, op_t = primals[0], list(primals[1:]), list(tangents[1:])
    if type(index) is Array:  # the branch is known: differentiate it alone
        b = branches[_concrete_index(index, len(branches))]
        return jvp_flat(lambda *xs: call_jaxpr(b, *xs), ops, op_t)
    nz = [t is not None for t in op_t]
    out_nz = [False] * len(branches[0].out_avals)
    for b in branches:
        out_nz = [a or c for a, c in zip(out_nz, jvp_jaxpr(b, nz, False)[1])]
    new = tuple(jvp_jaxpr(b, nz, out_nz)[0] for b in branches)
    outs = cond_p.bind(index, *ops, *[t for t in op_t if t is not None], branches=new)
    n = len(out_nz)
    it = iter(outs[n:])
    return outs[:n], [next(it) if z else None for z in out_nz]


def _cond_partial_eval(trace, args, unknowns, params):
    branches = params["branches"]
    index, ops = args[0], list(args[1:])
    if unknowns[0]:  # the branch choice itself is unknown: nothing can run now
        return trace.record(cond_p, args, params)
    if type(index) is Array:  # the branch is known: partially evaluate it alone
        with set_current_trace(trace):
            return call_jaxpr(branches[_concrete_index(index, len(branches))], *ops)
    ops_uk = list(unknowns[1:])
    out_uk = [False] * len(branches[0].out_avals)
    for b in branches:
        out_uk = [a or c for a, c in zip(out_uk, partial_eval_jaxpr(b, ops_uk)[2])]
    splits = [partial_eval_jaxpr(b, ops_uk, out_uk) for b in branches]
    # Each branch has its own residuals: the known cond returns all of them (zeros for the
    # branches not taken) and each unknown branch reads its own slice.
    res_avals = [s[1].in_avals[: s[3]] for s in splits]
    offsets = np.cumsum([0] + [len(r) for r in res_avals]).tolist()
    all_res_avals = [a for r in res_avals for a in r]
    known_avals = [aval_of(o) for o, u in zip(ops, ops_uk) if not u]
    uk_avals = [aval_of(o) for o, u in zip(ops, ops_uk) if u]
    known_branches, unknown_branches = [], []
    for i, (known, unknown, _, nres) in enumerate(splits):

        def kfun(*xs, known=known, i=i, nres=nres):
            outs = call_jaxpr(known, *xs)
            nko = len(outs) - nres
            res = []
            for j, avals in enumerate(res_avals):
                res += outs[nko:] if j == i else [zeros_like_aval(a) for a in avals]
            return outs[:nko] + res

        def ufun(*xs, unknown=unknown, i=i):
            own = xs[offsets[i] : offsets[i + 1]]
            return call_jaxpr(unknown, *own, *xs[len(all_res_avals) :])

        known_branches.append(trace_closed(kfun, known_avals, "cond"))
        unknown_branches.append(trace_closed(ufun, all_res_avals + uk_avals, "cond"))
    with set_current_trace(trace.parent):
        kouts = cond_p.bind(index, *[o for o, u in zip(ops, ops_uk) if not u], branches=tuple(known_branches))
    nko = len(out_uk) - sum(out_uk)
    known_outs, res = iter(kouts[:nko]), kouts[nko:]
    uouts = iter(
        trace.record(
            cond_p, [index, *res, *[o for o, u in zip(ops, ops_uk) if u]], dict(branches=tuple(unknown_branches))
        )
        if any(out_uk)
        else []
    )
    return [next(uouts) if u else next(known_outs) for u in out_uk]


def _cond_transpose(cts, index, *ops, branches):
    if is_undefined(index):
        raise InvalidArgumentError("cond: the branch index cannot be a linear input (transpose)")
    linear = [is_undefined(o) for o in ops]
    res = [o for o, lin in zip(ops, linear) if not lin]
    out_avals = branches[0].out_avals
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in zip(cts, out_avals)]
    if type(index) is Array:
        lin_cts = backward_jaxpr(branches[_concrete_index(index, len(branches))], linear, res, cts)
    else:
        nres = len(res)
        avals = [aval_of(r) for r in res] + list(out_avals)
        transposed = tuple(
            trace_closed(lambda *xs, b=b: backward_jaxpr(b, linear, xs[:nres], xs[nres:]), avals, "cond transpose")
            for b in branches
        )
        lin_cts = cond_p.bind(index, *res, *cts, branches=transposed)
    it = iter(lin_cts)
    return [None] + [next(it) if lin else None for lin in linear]


def _cond_batch(vals, dims, branches):
    from ..elementwise import select_n
    from ..shape import broadcast_in_dim

    index, ops, op_dims = vals[0], list(vals[1:]), list(dims[1:])
    size = batch_size(vals, dims)
    nout = len(branches[0].out_avals)
    if dims[0] is None:
        if type(index) is Array:
            b = branches[_concrete_index(index, len(branches))]
            return vmap_flat(lambda *xs: call_jaxpr(b, *xs), ops, op_dims, size), [0] * nout
        in_b = [d is not None for d in op_dims]
        ops = to_front(ops, op_dims, size)
        out_b = [False] * nout
        for b in branches:
            out_b = [a or c for a, c in zip(out_b, batch_jaxpr(b, size, in_b, False)[1])]
        new = tuple(batch_jaxpr(b, size, in_b, out_b)[0] for b in branches)
        outs = cond_p.bind(index, *ops, branches=new)
        return outs, [0 if b else None for b in out_b]
    # A per-example predicate: every branch runs on the whole batch (branches are pure), and
    # each example selects its branch's outputs.
    index = to_front([index], [dims[0]], size)[0]
    results = [vmap_flat(lambda *xs, b=b: call_jaxpr(b, *xs), ops, op_dims, size) for b in branches]
    outs = []
    for k in range(nout):
        cases = [r[k] for r in results]
        which = broadcast_in_dim(index, cases[0].shape, (0,))
        outs.append(select_n(which, *cases))
    return outs, [0] * nout


cond_p.impl = _cond_impl
cond_p.abstract_eval = _cond_abstract
cond_p.jvp = _cond_jvp
cond_p.partial_eval = _cond_partial_eval
cond_p.transpose = _cond_transpose
cond_p.batch = _cond_batch


# -- the public functions --------------------------------------------------------------------------


def _bind_cond(index, funs, names, operands, where, ref=0):
    ops, ops_tree = flatten_args(list(operands), where)
    avals = [aval_of(x) for x in ops]
    traced = []
    for fun, name in zip(funs, names):
        if not callable(fun):
            raise InvalidArgumentError(f"{where}: {name} must be callable, got {type(fun).__name__}")
        traced.append(trace_user_fun(lambda args, fun=fun: fun(*args), ops_tree, avals, f"{where}: {name}"))
    cj0, _, tree0 = traced[ref]
    for (cj, _, tree), name in zip(traced, names):
        if tree != tree0 or list(cj.out_avals) != list(cj0.out_avals):
            raise InvalidArgumentError(
                f"{where}: every branch must return the same types (pytree structure, shapes and dtypes), but "
                f"{names[ref]} returns {describe_types(tree0, cj0.out_avals)} and {name} returns "
                f"{describe_types(tree, cj.out_avals)}"
            )
    # Each branch closes over its own values; all of them become operands of the one cond.
    const_avals = [[aval_of(c) for c in consts] for _, consts, _ in traced]
    branches = []
    for i, (cj, consts, _) in enumerate(traced):
        before = [a for avals in const_avals[:i] for a in avals]
        after = [a for avals in const_avals[i + 1 :] for a in avals]
        cj = add_invars(cj, before, 0)
        branches.append(add_invars(cj, after, len(before) + len(consts)))
    all_consts = [c for _, consts, _ in traced for c in consts]
    outs = cond_p.bind(index, *all_consts, *ops, branches=tuple(branches))
    from ...core.pytree import tree_unflatten

    return tree_unflatten(tree0, outs)


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as a traceable primitive.

    Unlike a Python ``if``, works on traced predicates (``jit``, ``vmap``, ``make_jaxpr``).
    Both branches are traced and must return the same pytree structure, shapes and dtypes.
    Under ``vmap`` with a per-example ``pred`` both branches run and the results are selected
    per example (so branches must be free of side effects). Differentiable in both modes.

    Args:
        pred: a scalar boolean (or number: nonzero is true).
        true_fun, false_fun: functions of ``*operands`` (pytrees of arrays).
        operands: the branches' arguments.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.cond(fnp.array(2.0) > 1.0, fnp.sin, fnp.cos, 0.0)
        Array(0., dtype=float32)
    """
    from ..elementwise import convert_element_type, ne

    pred = as_array(pred, "lax.cond")
    if pred.shape != ():
        raise InvalidArgumentError(
            f"lax.cond: pred must be a scalar (shape ()), got shape {pred.shape} "
            f"({pred.aval.str_short()}). Use fnp.where to select elementwise, or vmap the "
            "cond to apply it per example."
        )
    if pred.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"lax.cond: pred must be a boolean (or a number), got dtype {pred.dtype.name}")
    if pred.dtype.kind != "b":
        pred = ne(pred, 0)
    index = convert_element_type(pred, np.int32)
    return _bind_cond(index, (false_fun, true_fun), ("false_fun", "true_fun"), operands, "lax.cond", ref=1)


def switch(index, branches, *operands):
    """``branches[index](*operands)`` with ``index`` clamped into ``[0, len(branches) - 1]`` (as JAX).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.switch(5, [fnp.sin, fnp.cos, fnp.negative], 1.0)  # clamped to the last branch
        Array(-1., dtype=float32)
    """
    from ..elementwise import clamp, convert_element_type

    branches = tuple(branches)
    if not branches:
        raise InvalidValueError("lax.switch: branches must be a non-empty sequence of callables")
    index = as_array(index, "lax.switch")
    if index.shape != () or index.dtype.kind not in "iu":
        raise InvalidArgumentError(f"lax.switch: index must be an integer scalar, got {index.aval.str_short()}")
    index = convert_element_type(index, np.int32)
    index = clamp(0, index, len(branches) - 1)
    names = tuple(f"branches[{i}]" for i in range(len(branches)))
    return _bind_cond(index, branches, names, operands, "lax.switch")
