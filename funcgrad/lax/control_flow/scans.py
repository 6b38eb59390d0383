"""``lax.scan`` and ``lax.map``: the ``scan`` primitive.

``scan_p.bind(*consts, *init, *xs, jaxpr, length, reverse, num_consts, num_carry, linear,
unroll)`` runs ``jaxpr(*consts, *carry, *x) -> (*carry, *y)`` over the leading axis of the
``xs`` and stacks the ``y``s. Reverse mode: the partial evaluator splits the body into a
known scan that runs now and stacks the per-iteration residuals as extra ``ys``, and a
recorded linear scan over them; its transpose is a scan in the opposite direction whose
carry accumulates the cotangents of the loop-invariant inputs.
"""

from __future__ import annotations

import numpy as np

from ...core.abstract import ShapedArray
from ...core.array import wrap_ndarray
from ...core.errors import InvalidArgumentError, InvalidValueError
from ...core.jaxpr import ClosedJaxpr, eval_jaxpr
from ...core.trace import set_current_trace
from ...transforms.jvp import add_tangents, zeros_like_aval
from ...transforms.transpose import is_undefined
from .._batching import batch_size
from .common import (
    ControlFlowPrimitive,
    types,
    TripCountError,
    aval_of,
    backward_jaxpr,
    batch_jaxpr,
    call_jaxpr,
    check_carry,
    dce,
    flatten_args,
    invariant_outputs,
    jvp_jaxpr,
    leaf_paths,
    partial_eval_jaxpr,
    permute,
    promote_weak_carry,
    split_list,
    stack,
    to_front,
    trace_closed,
    trace_user_fun,
)

scan_p = ControlFlowPrimitive("scan")


def _scan_impl(*args, jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    consts, carry, xs = split_list(args, [num_consts, num_carry])
    xs_vals = [x._value for x in xs]
    y_avals = jaxpr.out_avals[num_carry:]
    ys = [np.empty((length,) + a.shape, a.dtype) for a in y_avals]
    for k in range(length):
        i = length - 1 - k if reverse else k
        outs = eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *consts, *carry, *[wrap_ndarray(x[i]) for x in xs_vals])
        carry = outs[:num_carry]
        for buf, y in zip(ys, outs[num_carry:]):
            buf[i] = np.asarray(y)
    return list(carry) + [wrap_ndarray(y) for y in ys]


def _scan_abstract(*avals, jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    consts, carry, xs = split_list(avals, [num_consts, num_carry])
    x_avals = []
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            raise InvalidArgumentError(
                f"scan: every xs operand needs a leading axis of length {length}, got {x.str_short()}"
            )
        x_avals.append(ShapedArray(x.shape[1:], x.dtype))
    expected = list(consts) + list(carry) + x_avals
    if list(jaxpr.in_avals) != expected:
        raise InvalidArgumentError(
            f"scan: the body takes ({types(jaxpr.in_avals)}) but the operands give ({types(expected)})"
        )
    if list(jaxpr.out_avals[:num_carry]) != list(carry):
        raise InvalidArgumentError(
            f"scan: the body returns the carry as ({types(jaxpr.out_avals[:num_carry])})"
            f" but it enters as ({types(carry)})"
        )
    ys = [ShapedArray((length,) + a.shape, a.dtype) for a in jaxpr.out_avals[num_carry:]]
    return list(carry) + ys


def _params(jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    return dict(
        jaxpr=jaxpr,
        length=length,
        reverse=reverse,
        num_consts=num_consts,
        num_carry=num_carry,
        linear=tuple(linear),
        unroll=unroll,
    )


# -- forward mode ---------------------------------------------------------------------------------


def _scan_jvp(primals, tangents, jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    nc, ncar = num_consts, num_carry
    nx = len(primals) - nc - ncar
    ny = len(jaxpr.out_avals) - ncar
    nz = [t is not None for t in tangents]
    const_nz, carry_nz, xs_nz = split_list(nz, [nc, ncar])
    # Which carries have nonzero tangents: a fixpoint (a tangent can appear after one iteration).
    for _ in range(ncar + 1):
        _, out_nz = jvp_jaxpr(jaxpr, const_nz + carry_nz + xs_nz, carry_nz + [False] * ny)
        new = [a or b for a, b in zip(carry_nz, out_nz[:ncar])]
        if new == carry_nz:
            break
        carry_nz = new
    jvp_cj, out_nz = jvp_jaxpr(jaxpr, const_nz + carry_nz + xs_nz, carry_nz + [False] * ny)
    carry_nz = out_nz[:ncar]  # integer carries never have tangents
    ys_nz = out_nz[ncar:]
    # jvp_cj: [consts, carry, xs, consts_t, carry_t, xs_t] -> [carry, ys, carry_t, ys_t];
    # scan wants [consts, consts_t, carry, carry_t, xs, xs_t] -> [carry, carry_t, ys, ys_t].
    nct, ncart, nxt = sum(const_nz), sum(carry_nz), sum(xs_nz)
    n = nc + ncar + nx
    idx_c, idx_car, idx_x = list(range(nc)), list(range(nc, nc + ncar)), list(range(nc + ncar, n))
    idx_ct = list(range(n, n + nct))
    idx_cart = list(range(n + nct, n + nct + ncart))
    idx_xt = list(range(n + nct + ncart, n + nct + ncart + nxt))
    nyt = sum(ys_nz)
    out_order = (
        list(range(ncar))
        + list(range(ncar + ny, ncar + ny + ncart))
        + list(range(ncar, ncar + ny))
        + list(range(ncar + ny + ncart, ncar + ny + ncart + nyt))
    )
    body = permute(jvp_cj, idx_c + idx_ct + idx_car + idx_cart + idx_x + idx_xt, out_order)
    consts, carry, xs = split_list(primals, [nc, ncar])
    consts_t, carry_t, xs_t = split_list(tangents, [nc, ncar])
    carry_t = [zeros_like_aval(aval_of(c)) if t is None and z else t for c, t, z in zip(carry, carry_t, carry_nz)]
    pick = lambda ts, mask: [t for t, m in zip(ts, mask) if m]  # noqa: E731
    lin_c, lin_car, lin_x = split_list(linear, [nc, ncar])
    new_linear = lin_c + [True] * nct + lin_car + [True] * ncart + lin_x + [True] * nxt
    outs = scan_p.bind(
        *consts,
        *pick(consts_t, const_nz),
        *carry,
        *pick(carry_t, carry_nz),
        *xs,
        *pick(xs_t, xs_nz),
        **_params(body, length, reverse, nc + nct, ncar + ncart, new_linear, unroll),
    )
    carry_out, carry_t_out, ys_out, ys_t_out = split_list(outs, [ncar, ncart, ny])
    ct_it, yt_it = iter(carry_t_out), iter(ys_t_out)
    return (
        carry_out + ys_out,
        [next(ct_it) if z else None for z in carry_nz] + [next(yt_it) if z else None for z in ys_nz],
    )


# -- partial evaluation (reverse mode) --------------------------------------------------------------


def _scan_partial_eval(trace, args, unknowns, params):
    jaxpr, length, reverse = params["jaxpr"], params["length"], params["reverse"]
    nc, ncar = params["num_consts"], params["num_carry"]
    ny = len(jaxpr.out_avals) - ncar
    const_uk, carry_uk, xs_uk = split_list(list(unknowns), [nc, ncar])
    try:
        for _ in range(ncar + 1):
            out_uk = partial_eval_jaxpr(jaxpr, const_uk + carry_uk + xs_uk, carry_uk + [False] * ny)[2]
            new = [a or b for a, b in zip(carry_uk, out_uk[:ncar])]
            if new == carry_uk:
                break
            carry_uk = new
        known, unknown, out_uk, nres = partial_eval_jaxpr(jaxpr, const_uk + carry_uk + xs_uk, carry_uk + [False] * ny)
    except TripCountError:
        # A while_loop nested in the body needs concrete trip counts: unroll this scan instead.
        return _unrolled_scan(trace, args, params)
    consts, carry, xs = split_list(args, [nc, ncar])
    kc = [c for c, u in zip(consts, const_uk) if not u]
    kcar = [c for c, u in zip(carry, carry_uk) if not u]
    kx = [x for x, u in zip(xs, xs_uk) if not u]
    nko = len(known.out_avals) - nres
    # Residuals: those computed from the known consts only are loop-invariant (computed once),
    # those that are known xs are passed as they are, the others are stacked per iteration.
    kj = known.jaxpr
    inv = invariant_outputs(kj, [True] * len(kc) + [False] * (len(kcar) + len(kx)))[nko:]
    kx_vars = kj.invars[len(kc) + len(kcar) :]
    kinds = []
    for r, var in enumerate(kj.outvars[nko:]):
        if var in kx_vars:
            kinds.append(("xs", kx_vars.index(var)))
        elif inv[r]:
            kinds.append(("inv", None))
        else:
            kinds.append(("stack", None))
    with set_current_trace(trace.parent):
        inv_vals = []
        if any(k == "inv" for k, _ in kinds):
            inv_j = dce(kj, [False] * nko + [k == "inv" for k, _ in kinds], keep_effects=False)
            inv_vals = eval_jaxpr(inv_j, known.consts, *kc, *[None] * (len(kcar) + len(kx)))
        body_k = ClosedJaxpr(dce(kj, [True] * nko + [k == "stack" for k, _ in kinds]), known.consts)
        nkcar = len(kcar)
        kouts = scan_p.bind(
            *kc,
            *kcar,
            *kx,
            **_params(body_k, length, reverse, len(kc), nkcar, [False] * (len(kc) + nkcar + len(kx)), params["unroll"]),
        )
    nky = nko - nkcar
    kcar_out, ky_out, stacked = split_list(kouts, [nkcar, nky])
    if not any(out_uk):
        return _merge(out_uk, kcar_out + ky_out, [])
    res_avals = unknown.in_avals[:nres]
    n_inv = len(inv_vals)
    xs_res = [kx[i] for k, i in kinds if k == "xs"]
    uc = [c for c, u in zip(consts, const_uk) if u]
    ucar = [c for c, u in zip(carry, carry_uk) if u]
    ux = [x for x, u in zip(xs, xs_uk) if u]
    n_xres, n_st = len(xs_res), len(stacked)

    def body_u(*a):
        inv_r, ucs, ucars, uxs, xres, sres = split_list(a, [n_inv, len(uc), len(ucar), len(ux), n_xres])
        its = {"inv": iter(inv_r), "xs": iter(xres), "stack": iter(sres)}
        res = [next(its[k]) for k, _ in kinds]
        return call_jaxpr(unknown, *res, *ucs, *ucars, *uxs)

    def per_iter(vals):
        return [ShapedArray(aval_of(v).shape[1:], aval_of(v).dtype) for v in vals]

    avals = (
        [aval_of(v) for v in inv_vals]
        + [aval_of(c) for c in uc]
        + [aval_of(c) for c in ucar]
        + per_iter(ux)
        + per_iter(xs_res)
        + per_iter(stacked)
    )
    assert len(avals) == n_inv + len(uc) + len(ucar) + len(ux) + n_xres + n_st and len(res_avals) == nres
    body = trace_closed(body_u, avals, "scan")
    linear = [False] * n_inv + [True] * (len(uc) + len(ucar) + len(ux)) + [False] * (n_xres + n_st)
    uouts = trace.record(
        scan_p,
        [*inv_vals, *uc, *ucar, *ux, *xs_res, *stacked],
        _params(body, length, reverse, n_inv + len(uc), len(ucar), linear, params["unroll"]),
    )
    return _merge(out_uk, kcar_out + ky_out, uouts)


def _merge(out_uk, known, unknown):
    """Outputs in their original order, from the known and the unknown lists."""
    k, u = iter(known), iter(unknown)
    return [next(u) if m else next(k) for m in out_uk]


def _unrolled_scan(trace, args, params):
    """Linearize a scan by running its iterations one by one under the partial evaluator."""
    from ..shape import index_in_dim

    jaxpr, length, reverse = params["jaxpr"], params["length"], params["reverse"]
    consts, carry, xs = split_list(args, [params["num_consts"], params["num_carry"]])
    ncar = params["num_carry"]
    steps = [None] * length
    with set_current_trace(trace):
        for k in range(length):
            i = length - 1 - k if reverse else k
            outs = call_jaxpr(jaxpr, *consts, *carry, *[index_in_dim(x, i, 0, keepdims=False) for x in xs])
            carry, steps[i] = outs[:ncar], outs[ncar:]
        ys = [stack([s[j] for s in steps], a) for j, a in enumerate(jaxpr.out_avals[ncar:])]
    return list(carry) + ys


# -- transposition --------------------------------------------------------------------------------


def _scan_transpose(cts, *args, jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    nc, ncar = num_consts, num_carry
    consts, init, xs = split_list(args, [nc, ncar])
    const_lin = [is_undefined(c) for c in consts]
    xs_lin = [is_undefined(x) for x in xs]
    res_c = [c for c, lin in zip(consts, const_lin) if not lin]
    res_x = [x for x, lin in zip(xs, xs_lin) if not lin]
    lin_c_avals = [c.aval for c, lin in zip(consts, const_lin) if lin]
    carry_avals = jaxpr.out_avals[:ncar]
    y_avals = jaxpr.out_avals[ncar:]
    ct_carry, ct_ys = cts[:ncar], cts[ncar:]
    ct_carry = [zeros_like_aval(a) if ct is None else ct for ct, a in zip(ct_carry, carry_avals)]
    ct_ys = [
        zeros_like_aval(ShapedArray((length,) + a.shape, a.dtype)) if ct is None else ct
        for ct, a in zip(ct_ys, y_avals)
    ]
    body_linear = const_lin + [True] * ncar + xs_lin
    n_rc, n_lc, n_rx = len(res_c), len(lin_c_avals), len(res_x)

    # Transposed body: consts = residual consts; carry = (accumulated const cotangents, carry
    # cotangent); xs = (ys cotangents, residual xs) -> ys: cotangents of the linear xs.
    def body_t(*a):
        rc, acc, cc, cy, rx = split_list(a, [n_rc, n_lc, ncar, len(y_avals)])
        rc_it, rx_it = iter(rc), iter(rx)
        nonlin = [next(rc_it) for lin in const_lin if not lin] + [next(rx_it) for lin in xs_lin if not lin]
        cts_in = backward_jaxpr(jaxpr, body_linear, nonlin, list(cc) + list(cy))
        ct_lc, ct_car, ct_lx = split_list(cts_in, [n_lc, ncar])
        return [add_tangents(a_, c) for a_, c in zip(acc, ct_lc)] + ct_car + ct_lx

    avals = (
        [aval_of(c) for c in res_c]
        + lin_c_avals
        + list(carry_avals)
        + list(y_avals)
        + [ShapedArray(aval_of(x).shape[1:], aval_of(x).dtype) for x in res_x]
    )
    body = trace_closed(body_t, avals, "scan transpose")
    lin = [False] * n_rc + [True] * (n_lc + ncar + len(y_avals)) + [False] * n_rx
    outs = scan_p.bind(
        *res_c,
        *[zeros_like_aval(a) for a in lin_c_avals],
        *ct_carry,
        *ct_ys,
        *res_x,
        **_params(body, length, not reverse, n_rc, n_lc + ncar, lin, unroll),
    )
    ct_lc, ct_init, ct_lx = split_list(outs, [n_lc, ncar])
    lc_it, lx_it = iter(ct_lc), iter(ct_lx)
    return (
        [next(lc_it) if lin else None for lin in const_lin]
        + [ct if is_undefined(x) else None for ct, x in zip(ct_init, init)]
        + [next(lx_it) if lin else None for lin in xs_lin]
    )


# -- batching -------------------------------------------------------------------------------------


def _scan_batch(vals, dims, jaxpr, length, reverse, num_consts, num_carry, linear, unroll):
    from .._batching import move_bdim

    nc, ncar = num_consts, num_carry
    ny = len(jaxpr.out_avals) - ncar
    size = batch_size(vals, dims)
    consts, carry, xs = split_list(vals, [nc, ncar])
    cd, card, xd = split_list(dims, [nc, ncar])
    const_b = [d is not None for d in cd]
    carry_b = [d is not None for d in card]
    xs_b = [d is not None for d in xd]
    for _ in range(ncar + 1):
        out_b = batch_jaxpr(jaxpr, size, const_b + carry_b + xs_b, carry_b + [False] * ny)[1]
        new = [a or b for a, b in zip(carry_b, out_b[:ncar])]
        if new == carry_b:
            break
        carry_b = new
    body, out_b = batch_jaxpr(jaxpr, size, const_b + carry_b + xs_b, carry_b + [False] * ny)
    consts = to_front(consts, cd, size)
    carry = to_front(carry, card, size, force=carry_b)
    # The scanned axis stays first: a batched xs carries its batch at axis 1.
    xs = [x if d is None else move_bdim(x, d, 1, size) for x, d in zip(xs, xd)]
    outs = scan_p.bind(*consts, *carry, *xs, **_params(body, length, reverse, nc, ncar, linear, unroll))
    return outs, [0 if b else None for b in out_b[:ncar]] + [1 if b else None for b in out_b[ncar:]]


scan_p.impl = _scan_impl
scan_p.abstract_eval = _scan_abstract
scan_p.jvp = _scan_jvp
scan_p.partial_eval = _scan_partial_eval
scan_p.transpose = _scan_transpose
scan_p.batch = _scan_batch


# -- the public functions --------------------------------------------------------------------------


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; returns ``(carry, stacked ys)``.

    The semantics of ``jax.lax.scan``::

        def scan(f, init, xs, length=None):
            if xs is None:
                xs = [None] * length
            carry, ys = init, []
            for x in xs:
                carry, y = f(carry, x)
                ys.append(y)
            return carry, np.stack(ys)

    ``init``, ``xs`` and the outputs are pytrees; the carry must keep its structure, shapes and
    dtypes. ``reverse=True`` runs from the end (``ys`` stay aligned with ``xs``). Differentiable
    in both modes; reverse mode stores the residuals of every iteration. ``unroll`` is accepted
    for compatibility (a hint for compiled backends).

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.scan(lambda c, x: (c + x, c * x), 0.0, fnp.arange(1.0, 4.0))
        (Array(6., dtype=float32), Array([0., 2., 9.], dtype=float32))
    """
    where = "lax.scan"
    if not callable(f):
        raise InvalidArgumentError(f"{where}: f must be callable, got {type(f).__name__}")
    xs_flat, xs_tree = flatten_args(xs, where)
    lengths = set()
    for x in xs_flat:
        if x.ndim == 0:
            raise InvalidValueError(
                f"{where}: every leaf of xs needs a leading axis to scan over, got a scalar ({x.aval.str_short()})"
            )
        lengths.add(x.shape[0])
    if length is not None:
        length = int(length)
        if lengths and lengths != {length}:
            raise InvalidValueError(
                f"{where}: length={length} does not match the leading axis sizes of xs "
                f"({', '.join(str(x.shape) for x in xs_flat)})"
            )
    elif len(lengths) > 1:
        raise InvalidValueError(
            f"{where}: the leaves of xs must all have the same leading axis size, got shapes "
            f"{', '.join(str(x.shape) for x in xs_flat)}"
        )
    elif not lengths:
        raise InvalidValueError(f"{where}: xs has no arrays to scan over; pass length= to scan without xs")
    else:
        length = lengths.pop()
    init_flat, init_tree = flatten_args(init, where)
    init_avals = [aval_of(c) for c in init_flat]
    x_avals = [ShapedArray(x.shape[1:], x.dtype) for x in xs_flat]
    from ...core.pytree import tree_flatten, tree_structure, tree_unflatten

    cell = {}

    def body(*leaves):
        c = tree_unflatten(init_tree, list(leaves[: len(init_flat)]))
        x = tree_unflatten(xs_tree, list(leaves[len(init_flat) :]))
        out = f(c, x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise InvalidArgumentError(f"{where}: f must return a pair (carry, y), got {type(out).__name__}")
        c_flat, cell["carry"] = tree_flatten(out[0])
        y_flat, cell["ys"] = tree_flatten(out[1])
        cell["nc"] = len(c_flat)
        return c_flat + y_flat

    flat_tree = tree_structure(list(range(len(init_flat) + len(xs_flat))))
    cj, consts, _ = trace_user_fun(lambda a: body(*a), flat_tree, init_avals + x_avals, f"{where}: f")
    nc = cell["nc"]
    if cell["carry"] == init_tree:
        init_flat, changed = promote_weak_carry(tree_flatten(init)[0], init_flat, cj.out_avals[:nc])
        if changed:
            init_avals = [aval_of(c) for c in init_flat]
            cj, consts, _ = trace_user_fun(lambda a: body(*a), flat_tree, init_avals + x_avals, f"{where}: f")
    check_carry(where, "f", init_tree, leaf_paths(init), init_avals, cell["carry"], cj.out_avals[:nc])
    params = _params(
        cj,
        length,
        bool(reverse),
        len(consts),
        len(init_flat),
        [False] * (len(consts) + len(init_flat) + len(xs_flat)),
        int(unroll),
    )
    outs = scan_p.bind(*consts, *init_flat, *xs_flat, **params)
    return tree_unflatten(init_tree, outs[:nc]), tree_unflatten(cell["ys"], outs[nc:])


def map(f, xs, *, batch_size=None):
    """``stack([f(x) for x in xs])`` over the leading axis of ``xs`` (a pytree), as a scan.

    With ``batch_size``, ``f`` is vmapped over chunks of that many elements (the scan runs over
    the chunks; a remainder chunk is vmapped separately), as in JAX.

    Example:
        >>> import funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> lax.map(lambda x: x * 2.0, fnp.arange(3.0))
        Array([0., 2., 4.], dtype=float32)
        >>> lax.map(lambda x: x * 2.0, fnp.arange(5.0), batch_size=2)
        Array([0., 2., 4., 6., 8.], dtype=float32)
    """
    if batch_size is None:
        _, ys = scan(lambda c, x: (c, f(x)), (), xs)
        return ys
    from ...core.pytree import tree_flatten, tree_map, tree_unflatten
    from ...transforms.batching import vmap
    from ..shape import concatenate, reshape, slice_in_dim

    batch_size = int(batch_size)
    if batch_size < 1:
        raise InvalidValueError(f"lax.map: batch_size must be a positive integer, got {batch_size}")
    leaves, _ = flatten_args(xs, "lax.map")
    if not leaves or any(x.ndim == 0 for x in leaves):
        raise InvalidValueError("lax.map: xs must hold arrays with a leading axis to map over")
    n = leaves[0].shape[0]
    num, rem = divmod(n, batch_size)
    fv = vmap(f)
    pieces = []
    if num:
        main = tree_map(
            lambda x: reshape(slice_in_dim(x, 0, num * batch_size, 1, 0), (num, batch_size) + tuple(x.shape[1:])), xs
        )
        ys = scan(lambda c, x: (c, fv(x)), (), main)[1]
        pieces.append(tree_map(lambda y: reshape(y, (num * batch_size,) + tuple(y.shape[2:])), ys))
    if rem:
        pieces.append(fv(tree_map(lambda x: slice_in_dim(x, num * batch_size, n, 1, 0), xs)))
    if len(pieces) == 1:
        return pieces[0]
    flat = [tree_flatten(p)[0] for p in pieces]
    tree = tree_flatten(pieces[0])[1]
    return tree_unflatten(tree, [concatenate([a, b], 0) for a, b in zip(*flat)])
