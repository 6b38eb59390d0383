"""The jaxpr IR: a small typed, first-order program of primitive equations.

``Jaxpr(constvars, invars, outvars, eqns)``; every variable has an abstract value.
:func:`eval_jaxpr` binds each primitive, so evaluating a jaxpr under a transformation
transforms it. :func:`typecheck_jaxpr` re-runs abstract evaluation on every equation.
"""

from __future__ import annotations

import itertools

import numpy as np

from .abstract import ShapedArray

_var_ids = itertools.count()


class Var:
    __slots__ = ("aval", "id")

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.id = next(_var_ids)

    def __repr__(self):
        return f"Var({self.id}:{self.aval.str_short()})"


class Literal:
    """A constant scalar written into the program text."""

    __slots__ = ("val", "aval")

    def __init__(self, val, aval: ShapedArray):
        self.val, self.aval = val, aval

    def __repr__(self):
        return f"Literal({self.val})"


class JaxprEqn:
    __slots__ = ("primitive", "invars", "params", "outvars")

    def __init__(self, primitive, invars, params, outvars):
        self.primitive, self.invars, self.params, self.outvars = primitive, invars, params, outvars


class Jaxpr:
    __slots__ = ("constvars", "invars", "outvars", "eqns")

    def __init__(self, constvars, invars, outvars, eqns):
        self.constvars, self.invars, self.outvars, self.eqns = list(constvars), list(invars), list(outvars), list(eqns)

    in_avals = property(lambda self: [v.aval for v in self.invars])
    out_avals = property(lambda self: [v.aval for v in self.outvars])

    def __str__(self):
        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars (what ``make_jaxpr`` returns)."""

    __slots__ = ("jaxpr", "consts")

    def __init__(self, jaxpr: Jaxpr, consts):
        self.jaxpr, self.consts = jaxpr, list(consts)

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __call__(self, *args):
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self):
        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def eval_jaxpr(jaxpr: Jaxpr, consts, *args):
    """Evaluate by binding every primitive (so it runs under any active transformation)."""
    env = {}
    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x

    def read(a):
        return a.val if type(a) is Literal else env[a]

    for eqn in jaxpr.eqns:
        outs = eqn.primitive.bind(*[read(a) for a in eqn.invars], **eqn.params)
        if eqn.primitive.multiple_results:
            for v, o in zip(eqn.outvars, outs):
                env[v] = o
        else:
            env[eqn.outvars[0]] = outs
    return [read(a) for a in jaxpr.outvars]


class JaxprTypeError(TypeError):
    pass


def typecheck_jaxpr(jaxpr: Jaxpr) -> None:
    """Check that variables are defined once before use and every equation's types agree."""
    defined = set()

    def define(v):
        if v in defined:
            raise JaxprTypeError(f"variable {v} defined twice")
        defined.add(v)

    def check_atom(a):
        if type(a) is Literal:
            if ShapedArray(np.shape(a.val), a.aval.dtype) != a.aval:
                raise JaxprTypeError(f"literal {a.val!r} does not match its type {a.aval}")
        elif a not in defined:
            raise JaxprTypeError(f"variable {a} used before it is defined")

    for v in jaxpr.constvars + jaxpr.invars:
        define(v)
    for eqn in jaxpr.eqns:
        for a in eqn.invars:
            check_atom(a)
        out = eqn.primitive.abstract_eval(*[a.aval for a in eqn.invars], **eqn.params)
        out = list(out) if eqn.primitive.multiple_results else [out]
        got = [v.aval for v in eqn.outvars]
        if out != got:
            raise JaxprTypeError(
                f"equation {eqn.primitive.name}: abstract evaluation gives {[str(a) for a in out]}, "
                f"the jaxpr declares {[str(a) for a in got]}"
            )
        for v in eqn.outvars:
            define(v)
    for a in jaxpr.outvars:
        check_atom(a)


def use_counts(eqns, outvars, output_weight: int = 1) -> dict:
    """How many times each Var is read by ``eqns``, plus ``output_weight`` per appearance in
    ``outvars`` (rewrites pass 2 so that an output never looks used once)."""
    uses = {}
    for e in eqns:
        for a in e.invars:
            if type(a) is Var:
                uses[a] = uses.get(a, 0) + 1
    for a in outvars:
        if type(a) is Var:
            uses[a] = uses.get(a, 0) + output_weight
    return uses


def dce_jaxpr(jaxpr: Jaxpr, used_outputs=None) -> Jaxpr:
    """Dead-code elimination: drop equations none of whose outputs are used."""
    outvars = jaxpr.outvars if used_outputs is None else [v for v, u in zip(jaxpr.outvars, used_outputs) if u]
    live = {v for v in outvars if type(v) is Var}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outvars) or getattr(eqn.primitive, "effectful", False):
            kept.append(eqn)
            live.update(a for a in eqn.invars if type(a) is Var)
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, outvars, kept)


# -- pretty-printing ------------------------------------------------------------------


def _names():
    for n in itertools.count():
        s, k = "", n
        while True:
            s = chr(ord("a") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        yield s


def _fmt_param(v):
    if isinstance(v, Jaxpr):
        return "{ jaxpr }"
    if isinstance(v, ClosedJaxpr):
        return "{ closed jaxpr }"
    if _is_jaxpr_param(v):  # a tuple of jaxprs (cond branches): keep it on one line
        return "(" + ", ".join(_fmt_param(j) for j in v) + ")"
    if isinstance(v, np.dtype):
        return v.name
    if callable(v) and not isinstance(v, type):
        return getattr(v, "__name__", "fn")
    return repr(v)


def _is_jaxpr_param(v) -> bool:
    if isinstance(v, (Jaxpr, ClosedJaxpr)):
        return True
    return isinstance(v, tuple) and len(v) > 0 and all(isinstance(j, (Jaxpr, ClosedJaxpr)) for j in v)


def pp_jaxpr(jaxpr) -> str:
    """Readable text of a jaxpr; jaxpr-valued parameters (control flow) print as nested jaxprs.

    Example (``fg.make_jaxpr`` of a function calling ``lax.cond``)::

        { lambda ; a:f32[] b:f32[]. let
            c:i32[] = convert_element_type[new_dtype=int32] a
            d:f32[] = cond[
              branches=(
                { lambda ; e:f32[]. let
                    f:f32[] = cos e
                  in (f) }
                { lambda ; g:f32[]. let
                    h:f32[] = sin g
                  in (h) }
              )
            ] c b
          in (d) }
    """
    if isinstance(jaxpr, ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    return _pp_jaxpr(jaxpr, {}, _names(), 0)


def _pp_jaxpr(jaxpr: Jaxpr, names, gen, indent: int) -> str:
    # ``names``/``gen`` are shared with nested jaxprs, so every variable has one unique name.
    pad = " " * indent

    def name(v):
        if type(v) is Literal:
            val = v.val
            return repr(np.asarray(val).item())
        if v not in names:
            names[v] = next(gen)
        return names[v]

    def decl(v):
        return f"{name(v)}:{v.aval.str_short()}"

    consts = " ".join(decl(v) for v in jaxpr.constvars)
    ins = " ".join(decl(v) for v in jaxpr.invars)
    lines = [f"{{ lambda {consts}; {ins}. let"]
    for eqn in jaxpr.eqns:
        lhs = " ".join(decl(v) for v in eqn.outvars)
        rhs = " ".join(name(a) for a in eqn.invars)
        items = sorted(eqn.params.items())
        if not any(_is_jaxpr_param(p) for _, p in items):
            params = ", ".join(f"{k}={_fmt_param(p)}" for k, p in items)
            params = f"[{params}]" if params else ""
            lines.append(f"{pad}    {lhs} = {eqn.primitive.name}{params} {rhs}")
            continue
        # One parameter per line; nested jaxprs indented below their parameter name.
        lines.append(f"{pad}    {lhs} = {eqn.primitive.name}[")
        for k, p in items:
            if isinstance(p, (Jaxpr, ClosedJaxpr)):
                inner = p.jaxpr if isinstance(p, ClosedJaxpr) else p
                lines.append(f"{pad}      {k}=" + _pp_jaxpr(inner, names, gen, indent + 6))
            elif _is_jaxpr_param(p):
                lines.append(f"{pad}      {k}=(")
                for j in p:
                    inner = j.jaxpr if isinstance(j, ClosedJaxpr) else j
                    lines.append(f"{pad}        " + _pp_jaxpr(inner, names, gen, indent + 8))
                lines.append(f"{pad}      )")
            else:
                lines.append(f"{pad}      {k}={_fmt_param(p)}")
        lines.append(f"{pad}    ] {rhs}")
    outs = " ".join(name(a) for a in jaxpr.outvars)
    lines.append(f"{pad}  in ({outs}) }}")
    return "\n".join(lines)
