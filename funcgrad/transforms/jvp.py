"""Forward-mode automatic differentiation: the JVP interpreter and rule helpers.

A :class:`JVPTracer` carries a primal and a tangent. Symbolic zero tangents are
represented by ``None`` inside rules (so nothing is computed for them) and instantiated
only when a rule needs an actual array. JVP rules run with the *parent* trace current:
primal computations go to the parent, and when the parent is a linearizing
:class:`~funcgrad.transforms.partial_eval.JaxprTrace`, tangent computations are recorded
into a linear jaxpr (this is how reverse mode is built: JVP + partial evaluation).
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import Array, wrap_ndarray
from ..core.dtypes import float0, is_inexact
from ..core.primitive import Primitive
from ..core.trace import Trace, Tracer, check_alive, set_current_trace
from ..core.errors import InvalidArgumentError


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self):
        return self.primal.aval

    def to_concrete(self, what):
        # Under grad/jvp the primal is concrete (as in JAX): Python control flow works.
        return self.primal._concrete(what)


class JVPTrace(Trace):
    __slots__ = ()

    def __init__(self, parent, name="jvp"):
        super().__init__(parent, name)

    def _split(self, args):
        primals, tangents, nonzero = [], [], False
        for a in args:
            if isinstance(a, JVPTracer) and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
                nonzero = nonzero or a.tangent is not None
            else:
                if isinstance(a, Tracer):
                    check_alive(a, "jvp")
                primals.append(a)
                tangents.append(None)
        return primals, tangents, nonzero

    def _wrap(self, primal, tangent):
        return primal if tangent is None else JVPTracer(self, primal, tangent)

    def process_primitive(self, prim, args, params):
        primals, tangents, nonzero = self._split(args)
        parent = self.parent
        if not nonzero or not prim.differentiable:
            with set_current_trace(parent):
                return prim.bind(*primals, **params)
        if prim.jvp is None:
            raise NotImplementedError(f"Differentiation rule for primitive '{prim.name}' is not implemented")
        with set_current_trace(parent):
            out, tout = prim.jvp(primals, tangents, **params)
        if prim.multiple_results:
            return [self._wrap(o, t) for o, t in zip(out, tout)]
        return self._wrap(out, tout)

    def process_custom_jvp_call(self, fun, jvp_rule, args):
        primals, tangents, nonzero = self._split(args)
        with set_current_trace(self.parent):
            if not nonzero:
                return self.parent.process_custom_jvp_call(fun, jvp_rule, primals)
            tangents = [instantiate(t, p) for t, p in zip(tangents, primals)]
            outs, touts = jvp_rule(primals, tangents)
        return [self._wrap(o, t) for o, t in zip(outs, touts)]

    def process_custom_vjp_call(self, fun, fwd, bwd, args, out_avals_cell):
        primals, tangents, nonzero = self._split(args)
        with set_current_trace(self.parent):
            if not nonzero:
                return self.parent.process_custom_vjp_call(fun, fwd, bwd, primals, out_avals_cell)
            outs, residuals = fwd(*primals)
            lin_tangents = [instantiate(t, p) for t, p in zip(tangents, primals) if is_inexact(p.dtype)]
            touts = custom_lin_p.bind(
                *residuals,
                *lin_tangents,
                num_res=len(residuals),
                bwd=bwd,
                out_avals=tuple(o.aval for o in outs),
                diff_mask=tuple(is_inexact(p.dtype) for p in primals),
            )
        return [self._wrap(o, t if is_inexact(o.dtype) else None) for o, t in zip(outs, touts)]

    def process_checkpoint(self, fun, args):
        primals, tangents, nonzero = self._split(args)
        with set_current_trace(self.parent):
            if not nonzero:
                return get_checkpoint_handler(self.parent)(fun, primals)
            outs = fun(*primals)
            lin = [instantiate(t, p) for t, p in zip(tangents, primals) if is_inexact(p.dtype)]
            mask = tuple(is_inexact(p.dtype) for p in primals)
            touts = checkpoint_lin_p.bind(
                *primals, *lin, fun=fun, diff_mask=mask, out_avals=tuple(o.aval for o in outs)
            )
        return [self._wrap(o, t if is_inexact(o.dtype) else None) for o, t in zip(outs, touts)]


def get_checkpoint_handler(trace):
    handler = getattr(trace, "process_checkpoint", None)
    if handler is not None:
        return handler
    return lambda fun, args: fun(*args)


# -- rule helpers -----------------------------------------------------------------------


def tangent_aval(aval: ShapedArray) -> ShapedArray:
    return aval if is_inexact(aval.dtype) else ShapedArray(aval.shape, float0)


def zeros_like_aval(aval: ShapedArray) -> Array:
    return wrap_ndarray(np.zeros(aval.shape, aval.dtype))


def instantiate(t, primal):
    """Turn a symbolic zero (None) into an array of zeros shaped like ``primal``."""
    if t is not None:
        return t
    return zeros_like_aval(
        tangent_aval(
            primal.aval if hasattr(primal, "aval") else ShapedArray(np.shape(primal), np.asarray(primal).dtype)
        )
    )


def add_tangents(a, b):
    """Sum of two tangents/cotangents, either of which may be a symbolic zero (None)."""
    if a is None:
        return b
    if b is None:
        return a
    return add_any_p.bind(a, b)


def defjvp(prim: Primitive, *rules):
    """Give ``prim`` a JVP from one rule per operand: ``rule(tangent, ans, *primals, **params)``.

    Rules for operands whose tangent is a symbolic zero are never called; ``None`` marks an
    operand the output does not depend on differentiably.
    """

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        out = None
        for rule, t in zip(rules, tangents):
            if t is not None and rule is not None:
                out = add_tangents(out, rule(t, ans, *primals, **params))
        return ans, out

    prim.jvp = jvp


def defjvp_ans(prim: Primitive, rule):
    """JVP of a unary primitive from ``rule(tangent, ans, x, **params)`` (alias of :func:`defjvp`)."""
    defjvp(prim, rule)


def deflinear(prim: Primitive, transpose_rule):
    """Mark ``prim`` linear in all operands: its JVP applies ``prim`` to the tangents."""

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        if all(t is None for t in tangents):
            return ans, None
        ts = [instantiate(t, p) for t, p in zip(tangents, primals)]
        return ans, prim.bind(*ts, **params)

    prim.jvp = jvp
    prim.transpose = transpose_rule


# -- generic primitives owned by the AD machinery ------------------------------------


def _vmap_impl_batch(prim):
    """Batching rule for a primitive whose evaluation is funcgrad code: vectorise that code.
    (The helper lives in lax, which is imported after the AD machinery: import it when used.)"""

    def rule(vals, dims, **params):
        from ..lax._batching import vmap_impl_rule

        return vmap_impl_rule(prim)(vals, dims, **params)

    return rule


add_any_p = Primitive("add_any")
add_any_p.impl = lambda a, b: np.add(a, b)


def _add_any_abstract(a, b):
    if a != b:  # a rule produced a mistyped (co)tangent: fail where it happens
        raise InvalidArgumentError(f"add_any: (co)tangents to accumulate differ in type: {a} and {b}")
    return a


add_any_p.abstract_eval = _add_any_abstract
deflinear(add_any_p, lambda ct, a, b: [ct, ct])


def _add_any_batch(vals, dims):
    # Both operands at batch dim 0 (an unbatched one broadcast): add_any takes equal types only,
    # so a batched (co)tangent and an unbatched rank-0 one cannot be added as they are.
    from ..lax._batching import batch_size, bdim_to_front

    size = batch_size(vals, dims)
    return add_any_p.bind(*[bdim_to_front(v, d, size) for v, d in zip(vals, dims)]), 0


add_any_p.batch = _add_any_batch


def _custom_lin_impl(*args, num_res, bwd, out_avals, diff_mask):
    raise InvalidArgumentError(
        "can't apply forward-mode autodiff (jvp / jacfwd / hessian) to a custom_vjp function; "
        "define the function with custom_jvp instead, or use reverse mode (grad / vjp / jacrev)"
    )


def _custom_lin_transpose(cts, *args, num_res, bwd, out_avals, diff_mask):
    res = args[:num_res]
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in zip(cts, out_avals)]
    in_cts = bwd(res, cts)  # one per primal input
    lin_cts = [ct for ct, m in zip(in_cts, diff_mask) if m]
    return [None] * num_res + lin_cts


custom_lin_p = Primitive("custom_lin", multiple_results=True)
custom_lin_p.impl = _custom_lin_impl
custom_lin_p.abstract_eval = lambda *avals, num_res, bwd, out_avals, diff_mask: list(out_avals)
custom_lin_p.transpose = _custom_lin_transpose
custom_lin_p.batch = _vmap_impl_batch(custom_lin_p)
custom_lin_p.jvp = lambda primals, tangents, **params: _custom_lin_impl(**params)  # the same clear TypeError


def _checkpoint_lin_eval(*args, fun, diff_mask, out_avals):
    from .autodiff import jvp_flat

    n = len(diff_mask)
    primals, lin = list(args[:n]), iter(args[n:])
    tangents = [next(lin) if m else None for m in diff_mask]
    _, touts = jvp_flat(fun, primals, tangents)
    return [instantiate(t, zeros_like_aval(a)) for t, a in zip(touts, out_avals)]


def _checkpoint_lin_transpose(cts, *args, fun, diff_mask, out_avals):
    # Rematerialisation: the forward pass is recomputed now, from the saved inputs only.
    from .autodiff import vjp_flat

    n = len(diff_mask)
    primals = list(args[:n])
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in zip(cts, out_avals)]
    _, pullback = vjp_flat(fun, primals)
    in_cts = pullback(cts)
    return [None] * n + [ct for ct, m in zip(in_cts, diff_mask) if m]


class _ReentrantPrimitive(Primitive):
    """A primitive whose evaluation runs funcgrad code (transformations) rather than NumPy."""

    __slots__ = ()

    def eval_impl(self, args, params):
        return self.impl(*args, **params)


checkpoint_lin_p = _ReentrantPrimitive("checkpoint_lin", multiple_results=True)
checkpoint_lin_p.impl = _checkpoint_lin_eval
checkpoint_lin_p.abstract_eval = lambda *avals, fun, diff_mask, out_avals: list(out_avals)
checkpoint_lin_p.transpose = _checkpoint_lin_transpose


def _checkpoint_lin_jvp(primals, tangents, fun, diff_mask, out_avals):
    from .autodiff import jvp_flat

    def g(*xs):
        return _checkpoint_lin_eval(*xs, fun=fun, diff_mask=diff_mask, out_avals=out_avals)

    return jvp_flat(g, list(primals), list(tangents))


checkpoint_lin_p.jvp = _checkpoint_lin_jvp
checkpoint_lin_p.batch = _vmap_impl_batch(checkpoint_lin_p)
