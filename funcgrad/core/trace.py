"""Interpreters: traces, tracers and the current trace.

Every transformation is an interpreter (a :class:`Trace`) with one rule per primitive.
The current trace lives in a ``contextvars.ContextVar`` (JAX's "stackless" core): a
trace knows its ``parent``; values that are not its own tracers are constants to it and
are handed on to the parent. A trace is marked dead when its transformation returns,
so a tracer that leaked out of it is detected the first time it is used.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from .array import ArrayOps
from .errors import ConcretizationError, TracerArrayConversionError, UnexpectedTracerError


class Trace:
    """Base class of interpreters. ``parent`` is the trace that runs this one's output ops."""

    __slots__ = ("parent", "alive", "name")

    def __init__(self, parent, name):
        self.parent = parent
        self.alive = True
        self.name = name

    def process_primitive(self, primitive, args, params):
        raise NotImplementedError

    def process_custom_jvp_call(self, fun, jvp_rule, args):
        """Default: run the function in this trace (only differentiation uses the rule)."""
        return fun(*args)

    def process_custom_vjp_call(self, fun, fwd, bwd, args, out_tree_cell):
        return fun(*args)

    def is_own(self, x) -> bool:
        return isinstance(x, Tracer) and x._trace is self


class Tracer(ArrayOps):
    """A value flowing through a trace. Subclasses define ``aval``."""

    __slots__ = ("_trace",)
    __array_priority__ = 1000

    @property
    def aval(self):
        raise NotImplementedError

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)

    def to_concrete(self, what: str):
        """The concrete value behind this tracer, or ConcretizationError."""
        raise ConcretizationError(
            f"{what} needs a concrete value, but got an abstract tracer {self.aval.str_short()} "
            f"inside {self._trace.name}. Python control flow on traced values is not possible here: "
            "use lax.cond / lax.switch / lax.while_loop / lax.fori_loop, or fnp.where for values."
        )

    def __array__(self, dtype=None, copy=None):
        # Even where the value is concrete (under grad), handing it to NumPy would silently
        # drop its derivative: refuse, and point to the funcgrad function.
        raise TracerArrayConversionError(
            f"a traced value {self.aval.str_short()} inside {self._trace.name} was passed to NumPy "
            "(np.asarray, a NumPy function or a NumPy ufunc). NumPy cannot follow transformations: use the "
            "funcgrad.numpy function of the same name (import funcgrad.numpy as fnp), or fg.stop_gradient "
            "and take the value outside the transformation."
        )

    def _concrete(self, what):
        return self.to_concrete(what)

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}>with<{self._trace.name}>"

    __hash__ = None


def check_alive(tracer, where: str):
    """Raise UnexpectedTracerError if ``tracer``'s transformation has already returned."""
    trace = tracer._trace
    if not trace.alive:
        raise UnexpectedTracerError(
            f"{where}: encountered a tracer {tracer.aval.str_short()} created by a {trace.name} "
            "transformation that has already returned (a leaked tracer). Tracers must not escape "
            "the function being transformed: return them as outputs instead of storing them "
            "in globals, closures or object attributes."
        )


class EvalTrace(Trace):
    """The bottom interpreter: evaluates primitives on concrete arrays with their ``impl``."""

    __slots__ = ()

    def __init__(self):
        super().__init__(None, "eval")

    def process_primitive(self, primitive, args, params):
        return primitive.eval_impl(args, params)


eval_trace = EvalTrace()
_current_trace = contextvars.ContextVar("funcgrad_current_trace", default=eval_trace)
get_current_trace = _current_trace.get


@contextmanager
def set_current_trace(trace):
    token = _current_trace.set(trace)
    try:
        yield trace
    finally:
        _current_trace.reset(token)


@contextmanager
def new_trace(trace_cls, *args, **kwargs):
    """Open a child trace of the current one; mark it dead on exit (leak detection)."""
    trace = trace_cls(get_current_trace(), *args, **kwargs)
    try:
        yield trace
    finally:
        trace.alive = False


def unexpected_tracer(x, where):
    check_alive(x, where)
    raise UnexpectedTracerError(
        f"{where}: a tracer {x.aval.str_short()} from an inactive {x._trace.name} transformation "
        "reached concrete evaluation. This usually means a tracer escaped its transformation."
    )
