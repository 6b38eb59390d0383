"""``fg.jit``: trace once per signature, compile the jaxpr, run the compiled code.

``jit`` is itself a primitive (``jit_p``, whose parameter is the traced jaxpr), so every
transformation composes with it: ``grad(jit(f))``, ``vmap(jit(f))``, ``jit(grad(jit(f)))``.
Under a transformation the jitted function's jaxpr is evaluated by that transformation.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading

from ..core.array import Array, as_array, wrap_ndarray
from ..core.config import config
from ..core.jaxpr import ClosedJaxpr, Jaxpr, dce_jaxpr, eval_jaxpr
from ..core.errors import InvalidArgumentError, InvalidValueError
from ..core.primitive import Primitive
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import Tracer, eval_trace, get_current_trace
from ..transforms.tracing import trace_to_jaxpr
from .executor import compile_jaxpr

logger = logging.getLogger("funcgrad.jit")


# -- the primitive -----------------------------------------------------------------------------

jit_p = Primitive("jit", multiple_results=True)


def _jit_impl(*vals, jaxpr, name, executor):
    return executor(*vals)


def _jit_abstract(*avals, jaxpr, name, executor):
    return jaxpr.out_avals


def _jit_jvp(primals, tangents, jaxpr, name, executor):
    from ..transforms.autodiff import jvp_flat

    return jvp_flat(lambda *xs: eval_jaxpr(jaxpr, [], *xs), list(primals), list(tangents))


def _jit_batch(vals, dims, jaxpr, name, executor):
    from ..lax._batching import batch_size
    from ..transforms.batching import vmap_flat

    outs = vmap_flat(lambda *xs: eval_jaxpr(jaxpr, [], *xs), list(vals), list(dims), batch_size(vals, dims))
    return outs, [0] * len(outs)


def _jit_transpose(cts, *args, jaxpr, name, executor):
    # Only reached when a jitted function is applied to linear (tangent) values.
    from ..transforms.transpose import backward_pass, is_undefined

    known = [(v, a) for v, a in zip(jaxpr.invars, args) if not is_undefined(a)]
    linear = [v for v, a in zip(jaxpr.invars, args) if is_undefined(a)]
    inner = Jaxpr([v for v, _ in known], linear, jaxpr.outvars, jaxpr.eqns)
    lin_cts = iter(backward_pass(inner, [a for _, a in known], list(cts)))
    return [next(lin_cts) if is_undefined(a) else None for a in args]


jit_p.impl = _jit_impl
jit_p.abstract_eval = _jit_abstract
jit_p.jvp = _jit_jvp
jit_p.batch = _jit_batch
jit_p.transpose = _jit_transpose


# -- the user-facing wrapper -------------------------------------------------------------------


class _Compiled:
    __slots__ = ("jaxpr", "consts", "out_tree", "name", "_executor", "_source", "_lock", "const_values")

    def __init__(self, closed: ClosedJaxpr, out_tree, name):
        # Tracing records everything the Python function computed, e.g. the loss value that a
        # gradient does not return: compile only what the outputs need.
        self.jaxpr = dce_jaxpr(closed.jaxpr)
        self.consts = closed.consts
        self.out_tree = out_tree
        self.name = name
        # Code generation (and numba compilation) waits for the first execution: under grad,
        # vmap or an enclosing jit the jaxpr is transformed or inlined and never runs as is.
        self._executor = self._source = None
        self._lock = threading.Lock()
        # The buffers of concrete constants, for calls outside any transformation (None: some
        # constant is a tracer of an enclosing transformation).
        self.const_values = [c._value for c in closed.consts] if all(type(c) is Array for c in closed.consts) else None

    def _build(self):
        with self._lock:
            if self._executor is None:
                self._executor, self._source = compile_jaxpr(self.jaxpr, self.name)

    @property
    def executor(self):
        if self._executor is None:
            self._build()
        return self._executor

    @property
    def source(self):
        if self._source is None:
            self._build()
        return self._source

    def run(self, *vals):
        """The executor, compiled on first use (what ``jit_p`` carries as its parameter)."""
        return (self._executor or self.executor)(*vals)


# The structure key of a pytree leaf (``PyTreeDef._key()`` of a leaf): arguments that are all
# Arrays get their key without flattening.
_LEAF_KEY = (False, None, ())


class Lowered:
    """What ``jitted.lower(*args)`` returns: the traced program and its generated code."""

    def __init__(self, compiled: _Compiled):
        self._compiled = compiled

    @property
    def jaxpr(self):
        return ClosedJaxpr(self._compiled.jaxpr, self._compiled.consts)

    def as_text(self) -> str:
        """The generated Python source of the compiled function."""
        return self._compiled.source

    def compile(self):
        return self


def _describe(avals):
    return "(" + ", ".join(a.str_short() for a in avals) + ")"


def _tuple_of(value, kind, what):
    """``value`` (one ``kind`` or a sequence of them) as a tuple; TypeError naming ``what`` otherwise."""
    values = (value,) if isinstance(value, kind) else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if values is None or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        name = kind.__name__
        article = "an" if name[0] in "aeiou" else "a"
        raise TypeError(f"{what} must be {article} {name} or a sequence of {name}s, got {value!r}")
    return values


class JittedFunction:
    """A function compiled on first call for each new argument signature.

    Signature = pytree structure, shapes and dtypes of the array arguments, and the values of
    the static arguments. ``fg.config.update("log_compiles", True)`` logs each compilation with
    the reason the cache missed.
    """

    def __init__(self, fun, static_argnums=(), static_argnames=(), donate_argnums=(), backend=None):
        if not callable(fun):
            raise TypeError(f"jit: expected a callable to compile, got {type(fun).__name__} {fun!r}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        name = getattr(fun, "__name__", "jitted")
        self.static_argnums = _tuple_of(static_argnums, int, f"jit({name}): static_argnums")
        self.static_argnames = _tuple_of(static_argnames, str, f"jit({name}): static_argnames")
        # accepted and validated; buffers are never aliased to inputs (documented)
        self.donate_argnums = _tuple_of(donate_argnums, int, f"jit({name}): donate_argnums")
        if backend not in (None, "cpu"):
            from ..core.device import devices

            devices(backend)  # raises RuntimeError / NotImplementedError with the reason
        self._cache = {}
        self._name = getattr(fun, "__name__", "jitted")
        try:
            self._signature = inspect.signature(fun)
        except (TypeError, ValueError):
            self._signature = None

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def _normalize(self, args, kwargs):
        """Flat positional values, the function that takes them, static indices and the keyword layout.

        Keyword arguments (keyword-only parameters and ``**kwargs`` included) are appended after the
        positional ones; their names are part of the cache key.
        """
        fun, names = self.fun, ()
        if kwargs:
            if self._signature is None:
                raise InvalidArgumentError(f"jit({self._name}): keyword arguments need an inspectable signature")
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            kw = bound.kwargs
            names = tuple(kw)
            npos = len(bound.args)
            args = tuple(bound.args) + tuple(kw[n] for n in names)

            def fun(*vals, _f=self.fun, _n=npos, _names=names):
                return _f(*vals[:_n], **dict(zip(_names, vals[_n:])))

        npos = len(args) - len(names)
        bad = [i for i in self.static_argnums if not -npos <= i < npos]
        if bad:
            raise InvalidValueError(
                f"jit({self._name}): static_argnums={self.static_argnums} but the call passes {npos} positional "
                f"argument(s); index {bad[0]} is out of range"
            )
        static = {i % npos for i in self.static_argnums}
        if self.static_argnames:
            params = list(self._signature.parameters) if self._signature is not None else []
            for n in self.static_argnames:
                if n in names:
                    static.add(npos + names.index(n))
                elif n in params and params.index(n) < npos:
                    static.add(params.index(n))
        return fun, tuple(args), tuple(sorted(static)), names

    def _key(self, args, static, kw_names=()):
        statics = []
        for i in static:
            try:
                hash(args[i])
            except TypeError:
                raise InvalidArgumentError(
                    f"jit({self._name}): static argument {i} of type {type(args[i]).__name__} is not "
                    f"hashable ({args[i]!r:.60}); static arguments must be hashable (use a tuple instead "
                    "of a list, or make the argument non-static)"
                ) from None
            statics.append((i, args[i]))
        dyn = [a for i, a in enumerate(args) if i not in static] if static else list(args)
        if all(type(a) is Array for a in dyn):  # the common case, without flattening
            leaves, tree_key = dyn, (list, None, (_LEAF_KEY,) * len(dyn))
        else:
            leaves, tree = tree_flatten(dyn)
            leaves = [as_array(x, f"jit({self._name})") for x in leaves]
            tree_key = tree._key()  # nested tuples: hashed and compared in C on every call
        avals = tuple(x.aval for x in leaves)
        return (tree_key + (kw_names,) if kw_names else tree_key, avals, tuple(statics)), leaves

    def _miss_reason(self, key):
        if not self._cache:
            return "first call"
        tree, avals, statics = key
        same_tree = [k for k in self._cache if k[0] == tree]
        if not same_tree:
            return "pytree structure of the arguments changed"
        same_statics = [k for k in same_tree if k[2] == statics]
        if not same_statics:
            return f"static arguments changed to {dict(statics)}"
        return f"argument shapes/dtypes changed from {_describe(same_statics[-1][1])} to {_describe(avals)}"

    def _compile(self, key, fun, args, static):
        closed, _, out_tree = trace_to_jaxpr(fun, args, static, name=f"jit({self._name})")
        if config.log_compiles:
            logger.warning("Compiling %s for args %s: %s", self._name, _describe(key[1]), self._miss_reason(key))
        compiled = _Compiled(closed, out_tree, self._name)
        # Closed-over tracers of an enclosing transformation belong to this call only.
        if not any(isinstance(c, Tracer) for c in closed.consts):
            self._cache[key] = compiled
        return compiled

    def _get(self, args, kwargs):
        fun, args, static, kw_names = self._normalize(args, kwargs)
        key, leaves = self._key(args, static, kw_names)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compile(key, fun, args, static)
        return compiled, leaves

    def __call__(self, *args, **kwargs):
        if config.disable_jit:
            return self.fun(*args, **kwargs)
        compiled, leaves = self._get(args, kwargs)
        if (
            get_current_trace() is eval_trace
            and compiled.const_values is not None
            and not config.debug_nans
            and all(type(x) is Array for x in leaves)
        ):
            # No transformation is active: run the executor directly (what binding jit_p to the
            # evaluation trace does, without its dispatch).
            outs = (compiled._executor or compiled.executor)(*compiled.const_values, *[x._value for x in leaves])
            outs = [wrap_ndarray(o) for o in outs]
        else:
            outs = jit_p.bind(*compiled.consts, *leaves, jaxpr=compiled.jaxpr, name=self._name, executor=compiled.run)
        return tree_unflatten(compiled.out_tree, outs)

    def lower(self, *args, **kwargs):
        """Trace and compile for these arguments; ``.as_text()`` gives the generated source."""
        compiled, _ = self._get(args, kwargs)
        return Lowered(compiled)

    def clear_cache(self):
        self._cache.clear()

    @property
    def _cache_size(self):
        return len(self._cache)


def jit(fun=None, *, static_argnums=(), static_argnames=(), donate_argnums=(), backend=None):
    """Compile ``fun``: trace it once per argument signature and run the compiled program.

    Python control flow on traced values raises ``fg.errors.ConcretizationError`` (use
    ``lax.cond`` / ``lax.while_loop``, or mark the argument static).

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> f = fg.jit(lambda x: fnp.sin(x) * 2.0)
        >>> f(0.0)
        Array(0., dtype=float32)
        >>> print(f.lower(0.0).as_text().splitlines()[0])
        def _lambda_(v0):
    """
    if fun is None:
        return functools.partial(
            jit,
            static_argnums=static_argnums,
            static_argnames=static_argnames,
            donate_argnums=donate_argnums,
            backend=backend,
        )
    return JittedFunction(fun, static_argnums, static_argnames, donate_argnums, backend)
