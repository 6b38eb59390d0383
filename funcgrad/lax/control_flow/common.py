"""Machinery shared by the control-flow primitives (``cond_p``, ``while_p``, ``scan_p``).

A control-flow primitive carries its bodies as :class:`ClosedJaxpr` parameters. This module
turns user functions into such jaxprs (closure conversion: values the function closes over,
including tracers of enclosing transformations, become explicit operands, so every
transformation sees them) and transforms inner jaxprs for the rules:

* :func:`jvp_jaxpr`: forward mode of a jaxpr, symbolic-zero aware;
* :func:`partial_eval_jaxpr`: split a jaxpr into a known part (run now) and an unknown part
  (recorded), the residuals flowing from one to the other;
* :func:`batch_jaxpr`: the jaxpr on batches (batch dimension 0);
* :func:`backward_jaxpr`: cotangents of a jaxpr's linear inputs (its transpose).
"""

from __future__ import annotations

import numpy as np

from ...core.abstract import ShapedArray
from ...core.array import Array, as_array, wrap_ndarray
from ...core.dtypes import is_inexact
from ...core.errors import ConcretizationError, InvalidArgumentError
from ...core.jaxpr import ClosedJaxpr, Jaxpr, Literal, Var, eval_jaxpr
from ...core.primitive import Primitive
from ...core.pytree import keystr, tree_flatten, tree_flatten_with_path, tree_unflatten
from ...core.trace import (
    Tracer,
    eval_trace,
    get_current_trace,
    new_trace,
    set_current_trace,
    unexpected_tracer,
)
from ...transforms.autodiff import jvp_flat
from ...transforms.batching import BatchTrace, BatchTracer
from ...transforms.jvp import zeros_like_aval
from ...transforms.partial_eval import JaxprTrace, JaxprTracer
from ...transforms.transpose import backward_pass
from .._batching import move_bdim


class ControlFlowPrimitive(Primitive):
    """A primitive whose ``impl`` evaluates inner jaxprs (it receives and returns ``Array``s)."""

    __slots__ = ()

    def __init__(self, name):
        super().__init__(name, multiple_results=True)

    def eval_impl(self, args, params):
        vals = []
        for a in args:
            if isinstance(a, Tracer):
                unexpected_tracer(a, f"primitive '{self.name}'")
            vals.append(as_array(a, self.name))
        with set_current_trace(eval_trace):  # the inner jaxprs run on concrete values
            return self.impl(*vals, **params)


class TripCountError(ConcretizationError):
    """Reverse mode of ``while_loop`` needs its trip count, which is abstract here."""


def aval_of(x) -> ShapedArray:
    x = as_array(x)
    return ShapedArray(x.shape, x.dtype)


def call_jaxpr(cj: ClosedJaxpr, *args):
    return eval_jaxpr(cj.jaxpr, cj.consts, *args)


# -- tracing -------------------------------------------------------------------------------------


def trace_flat(fun, in_avals, name="control_flow"):
    """Trace ``fun(*tracers) -> list`` on abstract values; returns ``(jaxpr, consts)``.

    ``consts`` are the values ``fun`` closed over (concrete arrays or tracers of enclosing
    transformations), matching ``jaxpr.constvars``.
    """
    with new_trace(JaxprTrace, name, fold_known=False) as trace:
        args = [trace.new_arg(a) for a in in_avals]
        with set_current_trace(trace):
            outs = fun(*args)
        jaxpr, consts = trace.to_jaxpr([as_array(o, name) for o in outs])
    return jaxpr, consts


def trace_closed(fun, in_avals, name="control_flow") -> ClosedJaxpr:
    """Trace a rule-internal function (which closes over concrete values only)."""
    jaxpr, consts = trace_flat(fun, in_avals, name)
    for c in consts:
        if isinstance(c, Tracer):  # an internal error: rules pass every traced value explicitly
            raise AssertionError(f"{name}: a tracer {c!r} leaked into an inner jaxpr as a constant")
    return ClosedJaxpr(jaxpr, consts)


def trace_user_fun(fun, in_tree, in_avals, where):
    """Trace ``fun(tree)`` (one pytree argument); closed-over values become leading explicit inputs.

    Returns ``(closed_jaxpr, consts, out_tree)``: the jaxpr takes ``consts`` followed by the
    flat arguments; ``consts`` are passed as operands of the control-flow primitive.
    """
    cell = {}

    def flat_fun(*leaves):
        out = fun(tree_unflatten(in_tree, list(leaves)))
        out_flat, cell["tree"] = tree_flatten(out)
        res = []
        for leaf in out_flat:
            try:
                res.append(as_array(leaf, where))
            except TypeError:
                raise InvalidArgumentError(
                    f"{where} must return arrays (or pytrees of arrays), got a leaf of type "
                    f"{type(leaf).__name__} in its output {cell['tree']}"
                ) from None
        return res

    jaxpr, consts = trace_flat(flat_fun, in_avals, where)
    converted = Jaxpr([], list(jaxpr.constvars) + list(jaxpr.invars), jaxpr.outvars, jaxpr.eqns)
    return ClosedJaxpr(converted, []), list(consts), cell["tree"]


def flatten_args(tree, where):
    leaves, treedef = tree_flatten(tree)
    return [as_array(x, where) for x in leaves], treedef


def types(avals) -> str:
    """``f32[3], i64[]``: a list of abstract values for error messages."""
    return ", ".join(a.str_short() for a in avals)


def describe_types(tree, avals) -> str:
    return f"{tree} with leaf types ({types(avals)})"


def check_carry(where, what, init_tree, init_paths, in_avals, out_tree, out_avals):
    """The loop body must return the carry's exact pytree structure, shapes and dtypes."""
    if out_tree != init_tree:
        raise InvalidArgumentError(
            f"{where}: {what} must have the same pytree structure as the initial carry: "
            f"the carry is {init_tree}, the body returned {out_tree}"
        )
    for path, a, b in zip(init_paths, in_avals, out_avals):
        if a != b:
            raise InvalidArgumentError(
                f"{where}: the carry must keep its shape and dtype across iterations, but carry{path} enters "
                f"the body as {a.str_short()} (shape {a.shape}, dtype {a.dtype.name}) and {what} returns "
                f"{b.str_short()} (shape {b.shape}, dtype {b.dtype.name}). Cast or reshape it in the body "
                "(or change the initial value) so the types agree."
            )


def promote_weak_carry(raw_leaves, init, out_avals):
    """Carries given as Python scalars take the dtype the body gives them (as JAX's weak types).

    ``fori_loop(0, n, body, 0.0)`` with a float64 body: the initial 0.0 becomes float64 instead
    of failing the carry type check. Returns ``(init, changed)``.
    """
    from ..elementwise import convert_element_type

    new, changed = [], False
    for raw, x, out in zip(raw_leaves, init, out_avals):
        if type(raw) in (bool, int, float, complex) and x.shape == out.shape and x.dtype != out.dtype:
            x = convert_element_type(x, out.dtype)
            changed = True
        new.append(x)
    return new, changed


def leaf_paths(tree):
    return [keystr(p) for p, _ in tree_flatten_with_path(tree)[0]]


def add_invars(cj: ClosedJaxpr, avals, at: int) -> ClosedJaxpr:
    """``cj`` with extra, unused inputs of ``avals`` inserted at position ``at``."""
    j = cj.jaxpr
    extra = [Var(a) for a in avals]
    return ClosedJaxpr(Jaxpr(j.constvars, j.invars[:at] + extra + j.invars[at:], j.outvars, j.eqns), cj.consts)


def permute(cj: ClosedJaxpr, in_order=None, out_order=None) -> ClosedJaxpr:
    """Reorder a jaxpr's inputs/outputs: new position k holds old position ``order[k]``."""
    j = cj.jaxpr
    invars = j.invars if in_order is None else [j.invars[i] for i in in_order]
    outvars = j.outvars if out_order is None else [j.outvars[i] for i in out_order]
    return ClosedJaxpr(Jaxpr(j.constvars, invars, outvars, j.eqns), cj.consts)


def split_list(xs, sizes):
    out, start = [], 0
    for n in sizes:
        out.append(list(xs[start : start + n]))
        start += n
    out.append(list(xs[start:]))
    return out


def dce(jaxpr: Jaxpr, used_outputs, keep_effects=True) -> Jaxpr:
    """Drop outputs not in ``used_outputs`` and the equations only they needed (inputs are kept)."""
    outvars = [v for v, u in zip(jaxpr.outvars, used_outputs) if u]
    live = {v for v in outvars if type(v) is Var}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outvars) or (keep_effects and eqn.primitive.effectful):
            kept.append(eqn)
            live.update(a for a in eqn.invars if type(a) is Var)
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, outvars, kept)


def invariant_outputs(jaxpr: Jaxpr, invariant_inputs):
    """Which outputs depend only on the inputs marked invariant (and on constants)."""
    variant = {v for v, inv in zip(jaxpr.invars, invariant_inputs) if not inv}
    for eqn in jaxpr.eqns:
        if any(type(a) is Var and a in variant for a in eqn.invars):
            variant.update(eqn.outvars)
    return [not (type(v) is Var and v in variant) for v in jaxpr.outvars]


# -- forward mode ---------------------------------------------------------------------------------


def jvp_jaxpr(cj: ClosedJaxpr, nonzeros, instantiate):
    """JVP of a closed jaxpr. Returns ``(jvp_cj, out_nonzeros)``.

    ``jvp_cj`` takes ``[*primals, *tangents of the inputs marked nonzero]`` and returns
    ``[*primal outputs, *tangents of the outputs in out_nonzeros]``; an output tangent is
    present when it is not symbolically zero or when ``instantiate`` asks for it. Integer
    inputs and outputs never carry tangents.
    """
    in_avals = cj.in_avals
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * len(cj.out_avals)
    nonzeros = [bool(nz) and is_inexact(a.dtype) for nz, a in zip(nonzeros, in_avals)]
    instantiate = [bool(i) and is_inexact(a.dtype) for i, a in zip(instantiate, cj.out_avals)]
    n = len(in_avals)
    cell = {}

    def fun(*args):
        primals = list(args[:n])
        it = iter(args[n:])
        tangents = [next(it) if nz else None for nz in nonzeros]
        outs, touts = jvp_flat(lambda *xs: call_jaxpr(cj, *xs), primals, tangents)
        kept, nz_out = [], []
        for t, inst, aval in zip(touts, instantiate, cj.out_avals):
            if not is_inexact(aval.dtype):
                t = None
            elif t is None and inst:
                t = zeros_like_aval(aval)
            nz_out.append(t is not None)
            if t is not None:
                kept.append(t)
        cell["nz"] = nz_out
        return list(outs) + kept

    t_avals = [a for a, nz in zip(in_avals, nonzeros) if nz]
    return trace_closed(fun, list(in_avals) + t_avals, "jvp"), cell["nz"]


# -- partial evaluation ---------------------------------------------------------------------------


def partial_eval_jaxpr(cj: ClosedJaxpr, unknowns, instantiate=False):
    """Split ``cj`` into the work that only needs the known inputs and the rest.

    Returns ``(known_cj, unknown_cj, out_unknowns, num_res)``:
    ``known_cj`` maps the known inputs to ``[*known outputs, *residuals]``;
    ``unknown_cj`` maps ``[*residuals, *unknown inputs]`` to the unknown outputs. An output
    is unknown when it depends on an unknown input, or when ``instantiate`` asks for it
    (a bool, or one bool per output).

    It traces ``eval_jaxpr`` with a partial evaluator (``JaxprTrace(fold_known=True)``)
    whose parent records the known work: operations on known values are recorded in the
    known jaxpr, the others in the unknown one, and the known-side values the unknown side
    uses are the residuals. Nested control flow splits itself through its ``partial_eval``
    rule.
    """
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * len(cj.out_avals)
    in_avals = cj.in_avals
    with new_trace(JaxprTrace, "partial_eval", fold_known=False) as kt:
        known_in = [kt.new_arg(a) for a, u in zip(in_avals, unknowns) if not u]
        with set_current_trace(kt), new_trace(JaxprTrace, "partial_eval", fold_known=True) as ut:
            unknown_in = [ut.new_arg(a) for a, u in zip(in_avals, unknowns) if u]
            k_it, u_it = iter(known_in), iter(unknown_in)
            args = [next(u_it) if u else next(k_it) for u in unknowns]
            with set_current_trace(ut):
                outs = call_jaxpr(cj, *args)
            out_uk = [
                (isinstance(o, JaxprTracer) and o._trace is ut) or bool(inst) for o, inst in zip(outs, instantiate)
            ]
            u_jaxpr, u_consts = ut.to_jaxpr([o for o, u in zip(outs, out_uk) if u])
        u_jaxpr = dce(u_jaxpr, [True] * len(u_jaxpr.outvars))
        used = {a for e in u_jaxpr.eqns for a in e.invars if type(a) is Var}
        used.update(v for v in u_jaxpr.outvars if type(v) is Var)
        res_vars, residuals, const_vars, const_vals = [], [], [], []
        for v, c in zip(u_jaxpr.constvars, u_consts):
            if v not in used:
                continue
            if isinstance(c, JaxprTracer) and c._trace is kt:
                res_vars.append(v)
                residuals.append(c)
            elif isinstance(c, Tracer):
                raise AssertionError(f"partial_eval_jaxpr: unexpected tracer constant {c!r}")
            else:
                const_vars.append(v)
                const_vals.append(c)
        k_outs = [o for o, u in zip(outs, out_uk) if not u] + residuals
        k_jaxpr, k_consts = kt.to_jaxpr(k_outs)
    known = ClosedJaxpr(dce(k_jaxpr, [True] * len(k_jaxpr.outvars)), k_consts)
    unknown = ClosedJaxpr(Jaxpr(const_vars, res_vars + u_jaxpr.invars, u_jaxpr.outvars, u_jaxpr.eqns), const_vals)
    return known, unknown, out_uk, len(residuals)


# -- batching -------------------------------------------------------------------------------------


def batch_jaxpr(cj: ClosedJaxpr, size: int, in_batched, force_out):
    """``cj`` on batches: inputs marked batched (and the outputs it reports batched) carry the
    batch at dimension 0. ``force_out`` (a bool or one per output) broadcasts unbatched outputs.
    Returns ``(batched_cj, out_batched)``."""
    if isinstance(force_out, bool):
        force_out = [force_out] * len(cj.out_avals)
    cell = {}

    def fun(*args):
        trace = BatchTrace(get_current_trace(), size)
        try:
            ins = [BatchTracer(trace, a, 0) if b else a for a, b in zip(args, in_batched)]
            with set_current_trace(trace):
                outs = call_jaxpr(cj, *ins)
        finally:
            trace.alive = False
        res, ob = [], []
        for o, f in zip(outs, force_out):
            if isinstance(o, BatchTracer) and o._trace is trace:
                res.append(move_bdim(o.val, o.bdim, 0, size))
                ob.append(True)
            elif f:
                res.append(move_bdim(as_array(o), None, 0, size))
                ob.append(True)
            else:
                res.append(o)
                ob.append(False)
        cell["ob"] = ob
        return res

    avals = [ShapedArray((size,) + a.shape, a.dtype) if b else a for a, b in zip(cj.in_avals, in_batched)]
    return trace_closed(fun, avals, "vmap"), cell["ob"]


def to_front(vals, dims, size, force=None):
    """Move every batch dimension to 0 (broadcasting the unbatched values marked in ``force``)."""
    out = []
    for i, (v, d) in enumerate(zip(vals, dims)):
        if d is not None:
            out.append(move_bdim(v, d, 0, size))
        elif force is not None and force[i]:
            out.append(move_bdim(as_array(v), None, 0, size))
        else:
            out.append(v)
    return out


# -- transposition --------------------------------------------------------------------------------


def backward_jaxpr(cj: ClosedJaxpr, linear, nonlinear_vals, cts):
    """Cotangents of the inputs of ``cj`` marked ``linear`` (zeros instantiated).

    ``nonlinear_vals`` are the values of the other inputs, ``cts`` the output cotangents
    (``None`` = zero). Equations that do not depend on linear inputs are evaluated first
    (forward), then :func:`backward_pass` walks the linear ones backwards.
    """
    jaxpr = cj.jaxpr
    lin = {v for v, m in zip(jaxpr.invars, linear) if m}
    env = dict(zip(jaxpr.constvars, cj.consts))
    env.update(zip([v for v, m in zip(jaxpr.invars, linear) if not m], nonlinear_vals))
    lin_eqns, fwd_eqns = [], []
    for eqn in jaxpr.eqns:
        if any(type(a) is Var and a in lin for a in eqn.invars):
            lin.update(eqn.outvars)
            lin_eqns.append(eqn)
        else:
            fwd_eqns.append(eqn)
    needed = {a for e in lin_eqns for a in e.invars if type(a) is Var and a not in lin}
    live = []
    for eqn in reversed(fwd_eqns):
        if any(v in needed for v in eqn.outvars):
            live.append(eqn)
            needed.update(a for a in eqn.invars if type(a) is Var)
    for eqn in reversed(live):
        ins = [a.val if type(a) is Literal else env[a] for a in eqn.invars]
        outs = eqn.primitive.bind(*ins, **eqn.params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        env.update(zip(eqn.outvars, outs))
    lin_invars = [v for v, m in zip(jaxpr.invars, linear) if m]
    lin_jaxpr = Jaxpr(list(env), lin_invars, jaxpr.outvars, lin_eqns)
    cts_in = backward_pass(lin_jaxpr, list(env.values()), list(cts))
    return [zeros_like_aval(v.aval) if ct is None else ct for v, ct in zip(lin_invars, cts_in)]


# -- stacking per-iteration values ------------------------------------------------------------------


def stack(values, aval: ShapedArray):
    """Stack a list of per-iteration values along a new leading axis (under the current trace)."""
    if not values:
        return wrap_ndarray(np.zeros((0,) + aval.shape, aval.dtype))
    if all(type(v) is Array for v in values):
        return wrap_ndarray(np.stack([v._value for v in values]))
    from ..shape import broadcast_in_dim, concatenate

    dims = tuple(range(1, len(aval.shape) + 1))
    return concatenate([broadcast_in_dim(as_array(v), (1,) + aval.shape, dims) for v in values], 0)
