"""Transposition of linear jaxprs: the backward pass of reverse mode.

The linear jaxpr produced by linearize has the residuals as constvars and the tangent
inputs as invars. Walking it backwards, each equation's ``transpose`` rule turns output
cotangents into input cotangents for its linear operands (marked :class:`UndefinedPrimal`).
Equations that receive no cotangent are skipped, so dead tangent code costs nothing.
"""

from __future__ import annotations

from ..core.jaxpr import Jaxpr, Literal
from .jvp import add_tangents


class UndefinedPrimal:
    """Stands for a linear operand in a transpose rule: only its abstract value is known."""

    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval

    def __repr__(self):
        return f"UndefinedPrimal({self.aval})"


def is_undefined(x) -> bool:
    return type(x) is UndefinedPrimal


def backward_pass(jaxpr: Jaxpr, consts, cts_out):
    """Cotangents of ``jaxpr``'s invars given cotangents of its outvars (``None`` = zero)."""
    const_env = dict(zip(jaxpr.constvars, consts))
    ct_env = {}

    def write(v, ct):
        if ct is None or type(v) is Literal or v in const_env:
            return
        ct_env[v] = add_tangents(ct_env.get(v), ct)

    for v, ct in zip(jaxpr.outvars, cts_out):
        write(v, ct)

    for eqn in reversed(jaxpr.eqns):
        if eqn.primitive.multiple_results:
            cts = [ct_env.pop(v, None) for v in eqn.outvars]
            if all(ct is None for ct in cts):
                continue
        else:
            cts = ct_env.pop(eqn.outvars[0], None)
            if cts is None:
                continue
        invals = []
        for a in eqn.invars:
            if type(a) is Literal:
                invals.append(a.val)
            elif a in const_env:
                invals.append(const_env[a])
            else:
                invals.append(UndefinedPrimal(a.aval))
        rule = eqn.primitive.transpose
        if rule is None:
            raise NotImplementedError(
                f"Transpose rule (reverse-mode differentiation) for '{eqn.primitive.name}' is not implemented"
            )
        cts_in = rule(cts, *invals, **eqn.params)
        for a, x, ct in zip(eqn.invars, invals, cts_in):
            if type(x) is UndefinedPrimal:
                write(a, ct)
    return [ct_env.get(v) for v in jaxpr.invars]
