"""Turn a jaxpr into a Python function over NumPy arrays (the code ``fg.jit`` runs).

The generated source has one line per equation with the equation itself as a comment
above it, so ``jitted.lower(*args).as_text()`` shows exactly what runs. Primitive
implementations are called directly on NumPy buffers: no tracing, wrapping or dispatch
per operation.
"""

from __future__ import annotations

import functools
import itertools
import linecache

import numpy as np

from ..core.jaxpr import Jaxpr, Literal
from ..core.primitive import Primitive

_counter = itertools.count()


def _short(aval):
    return aval.str_short()


def _fmt_params(params):
    from ..core.jaxpr import _fmt_param

    if not params:
        return ""
    return "[" + ", ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(params.items())) + "]"


def _takes_arrays(prim: Primitive) -> bool:
    """Primitives whose evaluation runs funcgrad code want funcgrad Arrays, not NumPy buffers."""
    return type(prim).eval_impl is not Primitive.eval_impl


def _array_call(prim, params):
    from ..core.array import Array

    def call(*vals):
        out = prim.eval_impl([Array(v) if isinstance(v, np.ndarray) else v for v in vals], params)
        if prim.multiple_results:
            return [np.asarray(o) for o in out]
        return np.asarray(out)

    return call


def generate_source(jaxpr: Jaxpr, name: str):
    """Source text and namespace of a function ``name(*constvars, *invars) -> tuple``."""
    names = {}
    namespace = {"np": np}

    def var(v):
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    def atom(a, k, j):
        if type(a) is Literal:
            key = f"lit{k}_{j}"
            namespace[key] = np.asarray(a.val)
            return key
        return var(a)

    params_in = [var(v) for v in jaxpr.constvars + jaxpr.invars]
    lines = [f"def {name}({', '.join(params_in)}):"]
    for k, eqn in enumerate(jaxpr.eqns):
        prim = eqn.primitive
        fn = f"{prim.name.replace('-', '_')}_{k}"
        impl = _array_call(prim, eqn.params) if _takes_arrays(prim) else (
            functools.partial(prim.impl, **eqn.params) if eqn.params else prim.impl)
        namespace[fn] = impl
        args = ", ".join(atom(a, k, j) for j, a in enumerate(eqn.invars))
        outs = [var(v) for v in eqn.outvars]
        lhs_doc = " ".join(f"{names[v]}:{_short(v.aval)}" for v in eqn.outvars)
        rhs_doc = " ".join(names.get(a, repr(np.asarray(a.val).item()) if type(a) is Literal else "?")
                           for a in eqn.invars)
        lines.append(f"    # {lhs_doc} = {prim.name}{_fmt_params(eqn.params)} {rhs_doc}")
        if prim.multiple_results:
            target = ", ".join(outs) + ("," if len(outs) == 1 else "") if outs else "_"
            lines.append(f"    {target} = {fn}({args})")
        else:
            lines.append(f"    {outs[0]} = {fn}({args})")
    rets = []
    for j, a in enumerate(jaxpr.outvars):
        if type(a) is Literal:
            key = f"out_lit{j}"
            namespace[key] = np.asarray(a.val)
            rets.append(key)
        else:
            rets.append(var(a))
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    return "\n".join(lines) + "\n", namespace


def compile_jaxpr(jaxpr: Jaxpr, name: str = "jitted"):
    """Compile ``jaxpr`` to a callable ``fn(*consts, *args) -> tuple of ndarrays`` and its source."""
    safe = "".join(c if c.isalnum() else "_" for c in name) or "jitted"
    source, namespace = generate_source(jaxpr, safe)
    filename = f"<funcgrad-jit {safe} #{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    exec(compile(source, filename, "exec"), namespace)
    return namespace[safe], source
