"""Building jaxprs: the tracing interpreter used by ``make_jaxpr``, ``linearize`` and ``jit``.

:class:`JaxprTrace` records every primitive applied to its own tracers as an equation.
Values that are not its tracers (concrete arrays, tracers of enclosing transformations)
become constants of the jaxpr. With ``fold_known=True`` it is a *partial evaluator*: an
operation with no unknown (own-tracer) input is not recorded but handed to the parent
trace and computed now. Linearize runs the JVP interpreter on top of such a trace: the
primal computation is known and runs eagerly, and only the tangent computation, which
is linear, is recorded.
"""

from __future__ import annotations

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import Array, wrap_ndarray
from ..core.dtypes import python_scalar_dtype
from ..core.errors import ConcretizationError, InvalidArgumentError
from ..core.jaxpr import Jaxpr, JaxprEqn, Literal, Var
from ..core.trace import Trace, Tracer, check_alive, set_current_trace

_PY_SCALARS = (bool, int, float, complex)


class JaxprTracer(Tracer):
    __slots__ = ("var",)

    def __init__(self, trace, var):
        self._trace = trace
        self.var = var

    @property
    def aval(self):
        return self.var.aval

    def to_concrete(self, what):
        trace = self._trace
        args = trace.arguments_feeding(self.var)
        origin = f" The value depends on {', '.join(args)}." if args else ""
        raise ConcretizationError(
            f"{what} needs a concrete value, but got an abstract tracer {self.aval.str_short()} "
            f"inside {trace.name}.{origin} Python control flow on traced values is not possible here: "
            "use lax.cond / lax.switch / lax.while_loop / lax.fori_loop for control flow, "
            "fnp.where for selecting values, or mark the argument static."
        )


class JaxprTrace(Trace):
    __slots__ = ("fold_known", "eqns", "invars", "arg_names", "_const_vars", "_consts")

    def __init__(self, parent, name="make_jaxpr", fold_known=False):
        super().__init__(parent, name)
        self.fold_known = fold_known
        self.eqns = []
        self.invars = []
        self.arg_names = []
        self._const_vars = {}  # id(value) -> Var
        self._consts = []  # (Var, value), keeps the values alive

    def new_arg(self, aval: ShapedArray, name: str | None = None) -> JaxprTracer:
        var = Var(aval)
        self.invars.append(var)
        self.arg_names.append(name)
        return JaxprTracer(self, var)

    def to_atom(self, x):
        if isinstance(x, JaxprTracer) and x._trace is self:
            return x.var
        if type(x) in _PY_SCALARS:
            dt = python_scalar_dtype(x)
            return Literal(wrap_ndarray(np.asarray(x, dt)), ShapedArray((), dt))
        if isinstance(x, Tracer):
            check_alive(x, self.name)
        elif type(x) is Array:
            if x._value.ndim == 0:
                return Literal(x, ShapedArray((), x._value.dtype))
        elif isinstance(x, (np.ndarray, np.generic)):
            x = wrap_ndarray(np.array(x))
        else:
            raise InvalidArgumentError(f"{self.name}: value of type {type(x).__name__} is not a valid array")
        var = self._const_vars.get(id(x))
        if var is None:
            var = Var(x.aval)
            self._const_vars[id(x)] = var
            self._consts.append((var, x))
        return var

    def process_primitive(self, prim, args, params):
        if self.fold_known:
            unknown = [isinstance(a, JaxprTracer) and a._trace is self for a in args]
            if not any(unknown):
                with set_current_trace(self.parent):
                    return prim.bind(*args, **params)
            if prim.partial_eval is not None and not all(unknown):
                return prim.partial_eval(self, args, unknown, params)
        return self.record(prim, args, params)

    def record(self, prim, args, params):
        """Record ``prim(*args)`` as an equation of the jaxpr being built; returns its tracers."""
        atoms = [self.to_atom(a) for a in args]
        out_avals = prim.abstract_eval(*[a.aval for a in atoms], **params)
        if prim.multiple_results:
            outvars = [Var(a) for a in out_avals]
            self.eqns.append(JaxprEqn(prim, atoms, params, outvars))
            return [JaxprTracer(self, v) for v in outvars]
        outvar = Var(out_avals)
        self.eqns.append(JaxprEqn(prim, atoms, params, [outvar]))
        return JaxprTracer(self, outvar)

    def process_checkpoint(self, fun, args):
        return fun(*args)

    def to_jaxpr(self, outs):
        """Close the trace into ``(jaxpr, consts)``; non-tracer outputs become constants."""
        outvars = [self.to_atom(o) for o in outs]
        constvars = [v for v, _ in self._consts]
        consts = [c for _, c in self._consts]
        return Jaxpr(constvars, self.invars, outvars, self.eqns), consts

    def arguments_feeding(self, var) -> list[str]:
        """Names of the arguments ``var`` depends on (for error messages; only on error)."""
        needed = {var}
        for eqn in reversed(self.eqns):
            if any(v in needed for v in eqn.outvars):
                needed.update(a for a in eqn.invars if type(a) is Var)
        return [name or f"argument {i}" for i, (v, name) in enumerate(zip(self.invars, self.arg_names)) if v in needed]
