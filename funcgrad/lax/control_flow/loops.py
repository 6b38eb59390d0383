"""``lax.while_loop`` and ``lax.fori_loop``: the ``while`` primitive.

``while_p.bind(*cond_consts, *body_consts, *init, cond_jaxpr, body_jaxpr, cond_nconsts,
body_nconsts)`` repeats ``carry = body_jaxpr(*body_consts, *carry)`` while
``cond_jaxpr(*cond_consts, *carry)`` is true.

Reverse mode, beyond JAX: the trip count of a while loop is data dependent, so a loop
cannot be transposed as it stands. Under linearization the ``partial_eval`` rule runs the
known (primal) loop *now*, in Python, storing the residuals of every iteration and counting
the iterations; the tangent part is then recorded as a ``scan`` of that length over the
stacked residuals, which transposes like any scan. The trip count must therefore be
concrete when the loop is linearized (eagerly, or under ``jvp``/``grad`` of eager code); under
``jit``/``vmap``/``make_jaxpr`` of a ``grad`` it is abstract and a clear error says so.
"""

from __future__ import annotations

from ...core.array import as_array
from ...core.errors import ConcretizationError, InvalidArgumentError
from ...core.jaxpr import ClosedJaxpr, eval_jaxpr
from ...core.pytree import tree_flatten, tree_unflatten
from ...core.trace import Tracer, set_current_trace
from ...transforms.jvp import zeros_like_aval
from ...transforms.partial_eval import JaxprTracer
from .._batching import batch_size
from .common import (
    ControlFlowPrimitive,
    types,
    TripCountError,
    add_invars,
    aval_of,
    batch_jaxpr,
    call_jaxpr,
    check_carry,
    dce,
    describe_types,
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
from .scans import _params as _scan_params, scan, scan_p

while_p = ControlFlowPrimitive("while")

_TRIP_COUNT_HELP = (
    "Reverse-mode differentiation (grad / vjp / linearize) of lax.while_loop runs the loop forward while "
    "linearizing, to learn its trip count and store the residuals of every iteration; here the loop "
    "predicate is an abstract value ({what}), so the trip count cannot be known. This happens under "
    "jit / vmap / make_jaxpr of a gradient, or when the while_loop is nested in a lax.scan / lax.cond whose "
    "own inputs are abstract. Use lax.fori_loop with static (Python int) bounds or lax.scan with a static "
    "length (a fixed maximum number of iterations, masking the finished ones with lax.cond or fnp.where), "
    "or differentiate outside the transformation."
)


_TANGENT_PREDICATE = (
    "lax.while_loop: the loop predicate depends on a value being linearized (a tangent); "
    "a while_loop's trip count cannot depend on tangents"
)


def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc, carry = split_list(args, [cond_nconsts, body_nconsts])
    while bool(as_array(call_jaxpr(cond_jaxpr, *cc, *carry)[0])._value):
        carry = call_jaxpr(body_jaxpr, *bc, *carry)
    return list(carry)


def _while_abstract(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc, carry = split_list(avals, [cond_nconsts, body_nconsts])
    if list(cond_jaxpr.in_avals) != list(cc) + list(carry):
        raise InvalidArgumentError(
            f"while: cond_jaxpr takes ({types(cond_jaxpr.in_avals)}), the operands give "
            f"({types(list(cc) + list(carry))})"
        )
    if list(body_jaxpr.in_avals) != list(bc) + list(carry) or list(body_jaxpr.out_avals) != list(carry):
        raise InvalidArgumentError(
            f"while: body_jaxpr has type ({types(body_jaxpr.in_avals)}) -> "
            f"({types(body_jaxpr.out_avals)}), the carry is ({types(carry)})"
        )
    out = cond_jaxpr.out_avals
    if len(out) != 1 or out[0].shape != () or out[0].dtype.kind != "b":
        raise InvalidArgumentError(f"while: cond_jaxpr must return one boolean scalar, got ({types(out)})")
    return list(carry)


# -- forward mode ---------------------------------------------------------------------------------


def _while_jvp(primals, tangents, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    nbc = body_nconsts
    cc, bc, carry = split_list(primals, [cond_nconsts, nbc])
    _, bc_t, carry_t = split_list(tangents, [cond_nconsts, nbc])
    bc_nz = [t is not None for t in bc_t]
    carry_nz = [t is not None for t in carry_t]
    ncar = len(carry)
    for _ in range(ncar + 1):
        out_nz = jvp_jaxpr(body_jaxpr, bc_nz + carry_nz, carry_nz)[1]
        new = [a or b for a, b in zip(carry_nz, out_nz)]
        if new == carry_nz:
            break
        carry_nz = new
    body_jvp, carry_nz = jvp_jaxpr(body_jaxpr, bc_nz + carry_nz, carry_nz)
    nbt, nct = sum(bc_nz), sum(carry_nz)
    # body_jvp: [bc, carry, bc_t, carry_t] -> [carry, carry_t]; while wants [bc, bc_t, carry, carry_t].
    n = nbc + ncar
    order = list(range(nbc)) + list(range(n, n + nbt)) + list(range(nbc, n)) + list(range(n + nbt, n + nbt + nct))
    body = permute(body_jvp, order)
    cond = add_invars(cond_jaxpr, [a for a, z in zip(body_jaxpr.out_avals, carry_nz) if z], len(cond_jaxpr.in_avals))
    carry_t = [zeros_like_aval(aval_of(c)) if t is None and z else t for c, t, z in zip(carry, carry_t, carry_nz)]
    carry_t = [t for t, z in zip(carry_t, carry_nz) if z]
    outs = while_p.bind(
        *cc,
        *bc,
        *[t for t in bc_t if t is not None],
        *carry,
        *carry_t,
        cond_jaxpr=cond,
        body_jaxpr=body,
        cond_nconsts=cond_nconsts,
        body_nconsts=nbc + nbt,
    )
    it = iter(outs[ncar:])
    return outs[:ncar], [next(it) if z else None for z in carry_nz]


# -- partial evaluation (reverse mode through data-dependent trip counts) --------------------------


def _concrete_bool(pred):
    try:
        return bool(pred)
    except ConcretizationError as e:
        by = f" traced by {pred._trace.name}" if isinstance(pred, Tracer) else ""
        raise TripCountError(_TRIP_COUNT_HELP.format(what=f"{aval_of(pred).str_short()}{by}")) from e


def _while_partial_eval(trace, args, unknowns, params):
    """Run the known loop now (collecting per-iteration residuals), record the rest as a scan.

    Memory: every iteration's residuals (the primal values the tangent computation needs, e.g.
    the carry at each step) are stored until the backward pass, as for a scan: O(trip count x
    residual size). Residuals computed from loop-invariant values only are stored once.
    """
    cond_jaxpr, body_jaxpr = params["cond_jaxpr"], params["body_jaxpr"]
    ncc, nbc = params["cond_nconsts"], params["body_nconsts"]
    cc, bc, carry = split_list(args, [ncc, nbc])
    cc_uk, bc_uk, carry_uk = split_list(list(unknowns), [ncc, nbc])
    ncar = len(carry)
    try:
        for _ in range(ncar + 1):
            out_uk = partial_eval_jaxpr(body_jaxpr, bc_uk + carry_uk, carry_uk)[2]
            new = [a or b for a, b in zip(carry_uk, out_uk)]
            if new == carry_uk:
                break
            carry_uk = new
        known, unknown, _, nres = partial_eval_jaxpr(body_jaxpr, bc_uk + carry_uk, carry_uk)
        cond_known, _, pred_uk, _ = partial_eval_jaxpr(cond_jaxpr, cc_uk + carry_uk)
    except TripCountError:
        # A while_loop nested in the body needs concrete trip counts: unroll this loop instead.
        return _unrolled_while(trace, args, params)
    if pred_uk[0]:
        raise InvalidArgumentError(_TANGENT_PREDICATE)
    kcc = [c for c, u in zip(cc, cc_uk) if not u]
    kbc = [c for c, u in zip(bc, bc_uk) if not u]
    kcar = [c for c, u in zip(carry, carry_uk) if not u]
    nkcar = len(kcar)
    kj = known.jaxpr
    inv = invariant_outputs(kj, [True] * len(kbc) + [False] * nkcar)[nkcar:]
    cond_k = ClosedJaxpr(dce(cond_known.jaxpr, [True] + [False] * (len(cond_known.out_avals) - 1)), cond_known.consts)
    body_k = ClosedJaxpr(dce(kj, [True] * nkcar + [not i for i in inv]), known.consts)
    with set_current_trace(trace.parent):
        inv_vals = []
        if any(inv):
            inv_j = dce(kj, [False] * nkcar + inv, keep_effects=False)
            inv_vals = eval_jaxpr(inv_j, known.consts, *kbc, *[None] * nkcar)
        steps = []
        while _concrete_bool(call_jaxpr(cond_k, *kcc, *kcar)[0]):
            outs = call_jaxpr(body_k, *kbc, *kcar)
            kcar, res = outs[:nkcar], outs[nkcar:]
            steps.append(res)
        res_avals = [a for a, i in zip(unknown.in_avals[:nres], inv) if not i]
        stacked = [stack([s[j] for s in steps], a) for j, a in enumerate(res_avals)]
    if not any(carry_uk):
        return list(kcar)
    # The tangent loop: a scan over the stacked residuals with the unknown carries.
    ubc = [c for c, u in zip(bc, bc_uk) if u]
    ucar = [c for c, u in zip(carry, carry_uk) if u]
    n_inv, n_ubc, n_ucar = len(inv_vals), len(ubc), len(ucar)

    def body_u(*a):
        inv_r, ubcs, ucars, sres = split_list(a, [n_inv, n_ubc, n_ucar])
        its = {True: iter(inv_r), False: iter(sres)}
        return call_jaxpr(unknown, *[next(its[i]) for i in inv], *ubcs, *ucars)

    avals = [aval_of(v) for v in inv_vals] + [aval_of(c) for c in ubc] + [aval_of(c) for c in ucar] + res_avals
    body = trace_closed(body_u, avals, "while_loop")
    linear = [False] * n_inv + [True] * (n_ubc + n_ucar) + [False] * len(stacked)
    uouts = trace.record(
        scan_p,
        [*inv_vals, *ubc, *ucar, *stacked],
        _scan_params(body, len(steps), False, n_inv + n_ubc, n_ucar, linear, 1),
    )
    k, u = iter(kcar), iter(uouts)
    return [next(u) if m else next(k) for m in carry_uk]


def _unrolled_while(trace, args, params):
    """Linearize a while loop by running its iterations one by one under the partial evaluator."""
    cc, bc, carry = split_list(args, [params["cond_nconsts"], params["body_nconsts"]])
    with set_current_trace(trace):
        while True:
            pred = call_jaxpr(params["cond_jaxpr"], *cc, *carry)[0]
            if isinstance(pred, JaxprTracer) and pred._trace is trace:
                raise InvalidArgumentError(_TANGENT_PREDICATE)
            if not _concrete_bool(pred):
                break
            carry = call_jaxpr(params["body_jaxpr"], *bc, *carry)
    return list(carry)


def _while_transpose(cts, *args, **params):
    raise InvalidArgumentError(
        "lax.while_loop cannot be transposed as it stands (its trip count is data dependent). Reverse-mode "
        "differentiation of while_loop works by linearizing it with a concrete trip count; a while_loop found in "
        "a linear program means that was not possible here. Use lax.fori_loop with static bounds or lax.scan "
        "with a static length."
    )


# -- batching -------------------------------------------------------------------------------------


def _while_batch(vals, dims, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    from ..elementwise import select_n
    from ..reductions import reduce_or
    from ..shape import broadcast_in_dim

    size = batch_size(vals, dims)
    ncc, nbc = cond_nconsts, body_nconsts
    cc, bc, carry = split_list(vals, [ncc, nbc])
    ccd, bcd, card = split_list(dims, [ncc, nbc])
    cc_b, bc_b = [d is not None for d in ccd], [d is not None for d in bcd]
    carry_b = [d is not None for d in card]
    ncar = len(carry)
    for _ in range(ncar + 1):
        out_b = batch_jaxpr(body_jaxpr, size, bc_b + carry_b, carry_b)[1]
        new = [a or b for a, b in zip(carry_b, out_b)]
        if new == carry_b:
            break
        carry_b = new
    pred_b = batch_jaxpr(cond_jaxpr, size, cc_b + carry_b, False)[1][0]
    cc, bc = to_front(cc, ccd, size), to_front(bc, bcd, size)
    if not pred_b:
        body, _ = batch_jaxpr(body_jaxpr, size, bc_b + carry_b, carry_b)
        cond, _ = batch_jaxpr(cond_jaxpr, size, cc_b + carry_b, False)
        carry = to_front(carry, card, size, force=carry_b)
        outs = while_p.bind(*cc, *bc, *carry, cond_jaxpr=cond, body_jaxpr=body, cond_nconsts=ncc, body_nconsts=nbc)
        return outs, [0 if b else None for b in carry_b]
    # A per-example predicate: iterate while any example is unfinished; finished examples keep
    # their carry (the body runs on every example, its results are selected per example).
    carry_b = [True] * ncar
    body_b, _ = batch_jaxpr(body_jaxpr, size, bc_b + carry_b, True)
    cond_b, _ = batch_jaxpr(cond_jaxpr, size, cc_b + carry_b, True)
    carry = to_front(carry, card, size, force=carry_b)
    cc_avals, bc_avals = [aval_of(c) for c in cc], [aval_of(c) for c in bc]
    carry_avals = [aval_of(c) for c in carry]

    def new_cond(*a):
        ccs, cars = a[:ncc], a[ncc:]
        return [reduce_or(call_jaxpr(cond_b, *ccs, *cars)[0], (0,))]

    def new_body(*a):
        ccs, bcs, cars = split_list(a, [ncc, nbc])
        pred = call_jaxpr(cond_b, *ccs, *cars)[0]
        new = call_jaxpr(body_b, *bcs, *cars)
        return [select_n(broadcast_in_dim(pred, o.shape, (0,)), c, o) for c, o in zip(cars, new)]

    cond = trace_closed(new_cond, cc_avals + carry_avals, "vmap")
    body = trace_closed(new_body, cc_avals + bc_avals + carry_avals, "vmap")
    outs = while_p.bind(
        *cc, *cc, *bc, *carry, cond_jaxpr=cond, body_jaxpr=body, cond_nconsts=ncc, body_nconsts=ncc + nbc
    )
    return outs, [0] * ncar


while_p.impl = _while_impl
while_p.abstract_eval = _while_abstract
while_p.jvp = _while_jvp
while_p.partial_eval = _while_partial_eval
while_p.transpose = _while_transpose
while_p.batch = _while_batch


# -- the public functions --------------------------------------------------------------------------


def while_loop(cond_fun, body_fun, init_val):
    """``while cond_fun(val): val = body_fun(val)``, as a traceable primitive.

    ``init_val`` is a pytree; ``body_fun`` must return the same structure, shapes and dtypes and
    ``cond_fun`` a boolean scalar. Works under ``jit``/``vmap``/``make_jaxpr`` (under ``vmap`` with
    a per-example predicate the loop runs until every example is done, finished examples keep
    their value) and under ``jvp``.

    Reverse mode (``grad``/``vjp``), which JAX refuses, works when the trip count is concrete at
    linearization time (eager code, including nested ``grad``): the primal loop runs first and
    stores the residuals of every iteration, then the backward pass runs as a reversed scan.
    Memory grows with the trip count (residuals are kept per iteration, like ``scan``). Under
    ``jit``/``vmap``/``make_jaxpr`` of a gradient the trip count is abstract and a
    :class:`~funcgrad.errors.ConcretizationError` says to use ``fori_loop`` with static bounds or
    ``scan``.

    Example:
        >>> import funcgrad as fg
        >>> from funcgrad import lax
        >>> def sqrt_newton(a):  # iterate until converged: a data-dependent trip count
        ...     body = lambda x: 0.5 * (x + a / x)
        ...     return lax.while_loop(lambda x: abs(x * x - a) > 1e-6, body, a)
        >>> g = fg.grad(sqrt_newton)(4.0)  # d sqrt(a) / da = 1 / (2 sqrt(a))
        >>> round(float(g), 4)
        0.25
    """
    where = "lax.while_loop"
    for fun, name in ((cond_fun, "cond_fun"), (body_fun, "body_fun")):
        if not callable(fun):
            raise InvalidArgumentError(f"{where}: {name} must be callable, got {type(fun).__name__}")
    init, tree = flatten_args(init_val, where)
    avals = [aval_of(x) for x in init]
    cond_cj, cond_consts, cond_tree = trace_user_fun(cond_fun, tree, avals, f"{where}: cond_fun")
    out = cond_cj.out_avals
    if len(out) != 1 or out[0].shape != () or out[0].dtype.kind != "b":
        raise InvalidArgumentError(
            f"{where}: cond_fun must return a boolean scalar, but it returns {describe_types(cond_tree, out)}"
        )
    body_cj, body_consts, body_tree = trace_user_fun(body_fun, tree, avals, f"{where}: body_fun")
    if body_tree == tree:
        init, changed = promote_weak_carry(tree_flatten(init_val)[0], init, body_cj.out_avals)
        if changed:
            avals = [aval_of(x) for x in init]
            cond_cj, cond_consts, _ = trace_user_fun(cond_fun, tree, avals, f"{where}: cond_fun")
            body_cj, body_consts, body_tree = trace_user_fun(body_fun, tree, avals, f"{where}: body_fun")
    check_carry(where, "body_fun", tree, leaf_paths(init_val), avals, body_tree, body_cj.out_avals)
    outs = while_p.bind(
        *cond_consts,
        *body_consts,
        *init,
        cond_jaxpr=cond_cj,
        body_jaxpr=body_cj,
        cond_nconsts=len(cond_consts),
        body_nconsts=len(body_consts),
    )
    return tree_unflatten(tree, outs)


def fori_loop(lower, upper, body_fun, init_val):
    """``for i in range(lower, upper): val = body_fun(i, val)``; returns ``val``.

    With concrete bounds (Python ints or concrete arrays) this is a ``scan`` of static length
    (differentiable in both modes); with traced bounds a ``while_loop``.

    Example:
        >>> from funcgrad import lax
        >>> lax.fori_loop(0, 5, lambda i, x: x + i, 0)
        Array(10, dtype=int64)
    """
    from ...core.dtypes import result_type
    from ..elementwise import add, convert_element_type, lt

    where = "lax.fori_loop"
    if not callable(body_fun):
        raise InvalidArgumentError(f"{where}: body_fun must be callable, got {type(body_fun).__name__}")
    for b, name in ((lower, "lower"), (upper, "upper")):
        a = as_array(b, where)
        if a.shape != () or a.dtype.kind not in "iu":
            raise InvalidArgumentError(f"{where}: {name} must be an integer scalar, got {a.aval.str_short()}")
    dtype = result_type(lower, upper)
    if not isinstance(lower, Tracer) and not isinstance(upper, Tracer):
        lo, hi = int(as_array(lower)._value), int(as_array(upper)._value)
        i0 = convert_element_type(as_array(lo), dtype)

        def step(carry, _):
            i, x = carry
            return (add(i, 1), body_fun(i, x)), None

        (_, val), _ = scan(step, (i0, init_val), None, length=max(hi - lo, 0))
        return val
    lo = convert_element_type(as_array(lower), dtype)
    hi = convert_element_type(as_array(upper), dtype)

    def body(carry):
        i, h, x = carry
        return add(i, 1), h, body_fun(i, x)

    return while_loop(lambda c: lt(c[0], c[1]), body, (lo, hi, init_val))[2]
