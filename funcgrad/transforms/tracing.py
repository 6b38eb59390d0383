"""``make_jaxpr``: trace a function into the jaxpr IR."""

from __future__ import annotations

import functools
import inspect

from ..core.abstract import ShapedArray
from ..core.array import as_array
from ..core.jaxpr import ClosedJaxpr
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import new_trace, set_current_trace
from .partial_eval import JaxprTrace


def _arg_names(fun, n):
    try:
        params = list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        params = []
    return [f"argument '{params[i]}'" if i < len(params) else f"argument {i}" for i in range(n)]


def trace_to_jaxpr(fun, args, static_argnums=(), name="make_jaxpr"):
    """Trace ``fun(*args)`` abstractly. Returns ``(closed_jaxpr, in_tree, out_tree)``."""
    static = set(static_argnums)
    names = _arg_names(fun, len(args))
    dyn = [(i, a) for i, a in enumerate(args) if i not in static]
    leaves, in_tree = tree_flatten([a for _, a in dyn])
    leaf_names = []
    for i, a in dyn:
        leaf_names.extend([names[i]] * len(tree_flatten(a)[0]))
    with new_trace(JaxprTrace, name, fold_known=False) as trace:
        tracers = []
        for x, nm in zip(leaves, leaf_names):
            x = as_array(x, name)
            tracers.append(trace.new_arg(ShapedArray(x.shape, x.dtype), nm))
        it = iter(tree_unflatten(in_tree, tracers))
        full = [args[i] if i in static else next(it) for i in range(len(args))]
        with set_current_trace(trace):
            out = fun(*full)
        out_flat, out_tree = tree_flatten(out)
        jaxpr, consts = trace.to_jaxpr([as_array(o, name) for o in out_flat])
    return ClosedJaxpr(jaxpr, consts), in_tree, out_tree


def make_jaxpr(fun, static_argnums=()):
    """Return a function that traces ``fun`` and gives its (printable) jaxpr.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> print(fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(1.0))
        { lambda ; a:f32[]. let
            b:f32[] = sin a
            c:f32[] = mul b 2.0
          in (c) }
    """
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)

    @functools.wraps(fun)
    def make(*args):
        return trace_to_jaxpr(fun, args, static_argnums)[0]

    return make
