"""User-defined derivative rules: ``custom_jvp`` and ``custom_vjp`` (JAX semantics)."""

from __future__ import annotations

import functools
import inspect

from ..core.array import as_array
from ..core.dtypes import is_inexact
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import get_current_trace
from .jvp import zeros_like_aval, tangent_aval
from ..core.errors import InvalidArgumentError, InvalidValueError


def _resolve_args(fun, args, kwargs):
    if not kwargs:
        return args
    sig = inspect.signature(fun)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.args


def _split_nondiff(args, nondiff_argnums):
    nondiff = tuple(args[i] for i in nondiff_argnums)
    diff = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
    return nondiff, diff


def _merge(nondiff, diff, nondiff_argnums, n):
    out, it_d, it_n = [], iter(diff), iter(nondiff)
    for i in range(n):
        out.append(next(it_n) if i in nondiff_argnums else next(it_d))
    return out


class custom_jvp:
    """A function with a user-supplied JVP rule.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> @fg.custom_jvp
        ... def f(x):
        ...     return fnp.sin(x)
        >>> @f.defjvp
        ... def f_jvp(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     return f(x), 2.0 * t
        >>> fg.grad(f)(0.0)
        Array(2., dtype=float32)
    """

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp):
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (primal_out, tangent_out)``."""
        self.jvp = jvp
        return jvp

    def defjvps(self, *tangent_fns):
        """Set the rule from one ``fn(tangent, primal_out, *primals)`` per argument (None = no dependence)."""

        def jvp(primals, tangents):
            ans = self(*primals)
            out = None
            for fn, t in zip(tangent_fns, tangents):
                if fn is not None:
                    c = fn(t, ans, *primals)
                    out = c if out is None else out + c
            return ans, out if out is not None else zeros_like_aval(tangent_aval(as_array(ans).aval))

        self.jvp = jvp

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if self.jvp is None:
            raise AttributeError(f"custom_jvp function {self.__name__} has no JVP rule: call .defjvp(rule) first")
        args = _resolve_args(self.fun, args, kwargs)
        n = len(args)
        nondiff, diff = _split_nondiff(args, self.nondiff_argnums)
        flat, in_tree = tree_flatten(diff)
        flat = [as_array(x, self.__name__) for x in flat]
        cell = {}

        def flat_fun(*leaves):
            out = self.fun(*_merge(nondiff, tree_unflatten(in_tree, leaves), self.nondiff_argnums, n))
            o_flat, cell["tree"] = tree_flatten(out)
            return [as_array(o, self.__name__) for o in o_flat]

        def flat_jvp(primals, tangents):
            p = tuple(tree_unflatten(in_tree, primals))
            t = tuple(tree_unflatten(in_tree, tangents))
            res = self.jvp(*nondiff, p, t)
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise InvalidArgumentError(f"custom_jvp rule of {self.__name__} must return (primal_out, tangent_out)")
            o_flat, o_tree = tree_flatten(res[0])
            t_flat, t_tree = tree_flatten(res[1])
            if o_tree != t_tree:
                raise InvalidArgumentError(
                    f"custom_jvp rule of {self.__name__}: primal output structure {o_tree} and "
                    f"tangent output structure {t_tree} differ"
                )
            cell["tree"] = o_tree
            o_flat = [as_array(o) for o in o_flat]
            t_flat = [as_array(t) for t in t_flat]
            for o, t in zip(o_flat, t_flat):
                if o.shape != t.shape:
                    raise InvalidValueError(
                        f"custom_jvp rule of {self.__name__}: tangent shape {t.shape} does not match "
                        f"primal output shape {o.shape}"
                    )
            return o_flat, t_flat

        outs = get_current_trace().process_custom_jvp_call(flat_fun, flat_jvp, flat)
        return tree_unflatten(cell["tree"], outs)


class custom_vjp:
    """A function with a user-supplied VJP: ``f.defvjp(fwd, bwd)``.

    ``fwd(*args) -> (out, residuals)``; ``bwd(*nondiff_args, residuals, ct) -> tuple`` with one
    cotangent per differentiable argument. Forward mode (jvp/jacfwd) is not available, as in JAX.

    Example (a gradient-reversal layer):
        >>> import funcgrad as fg
        >>> @fg.custom_vjp
        ... def reverse(x):
        ...     return x
        >>> reverse.defvjp(lambda x: (x, None), lambda res, g: (-g,))
        >>> fg.grad(lambda x: reverse(x) * 3.0)(1.0)
        Array(-3., dtype=float32)
    """

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if self.fwd is None:
            raise AttributeError(f"custom_vjp function {self.__name__} has no VJP: call .defvjp(fwd, bwd) first")
        args = _resolve_args(self.fun, args, kwargs)
        n = len(args)
        nondiff, diff = _split_nondiff(args, self.nondiff_argnums)
        flat, in_tree = tree_flatten(diff)
        flat = [as_array(x, self.__name__) for x in flat]
        in_avals = [x.aval for x in flat]
        cell = {}
        name = self.__name__

        def full_args(leaves):
            return _merge(nondiff, tree_unflatten(in_tree, leaves), self.nondiff_argnums, n)

        def flat_fun(*leaves):
            out = self.fun(*full_args(leaves))
            o_flat, cell["tree"] = tree_flatten(out)
            return [as_array(o, name) for o in o_flat]

        def flat_fwd(*leaves):
            res = self.fwd(*full_args(leaves))
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise InvalidArgumentError(f"custom_vjp fwd of {name} must return (output, residuals)")
            out, residuals = res
            o_flat, cell["tree"] = tree_flatten(out)
            r_flat, cell["res_tree"] = tree_flatten(residuals)
            return [as_array(o, name) for o in o_flat], [as_array(r, name) for r in r_flat]

        def flat_bwd(res_flat, cts_flat):
            residuals = tree_unflatten(cell["res_tree"], res_flat)
            ct = tree_unflatten(cell["tree"], cts_flat)
            in_cts = self.bwd(*nondiff, residuals, ct)
            if not isinstance(in_cts, (tuple, list)) or len(in_cts) != len(diff):
                raise InvalidArgumentError(
                    f"custom_vjp bwd of {name} must return a tuple with one cotangent per "
                    f"differentiable argument ({len(diff)}), got {type(in_cts).__name__}"
                    f"{'' if not isinstance(in_cts, (tuple, list)) else ' of length ' + str(len(in_cts))}"
                )
            out = []
            for d, c in zip(diff, in_cts):
                d_flat, d_tree = tree_flatten(d)
                if c is None:
                    out.extend([None] * len(d_flat))
                    continue
                c_flat, c_tree = tree_flatten(c, is_leaf=lambda x: x is None)
                if len(c_flat) != len(d_flat):
                    raise InvalidArgumentError(
                        f"custom_vjp bwd of {name}: cotangent structure {c_tree} does not match the "
                        f"argument structure {d_tree}"
                    )
                out.extend(c_flat)
            result = []
            for c, aval in zip(out, in_avals):
                if c is None or not is_inexact(aval.dtype):
                    result.append(zeros_like_aval(tangent_aval(aval)))
                else:
                    c = as_array(c, name)
                    if c.shape != aval.shape:
                        raise InvalidValueError(
                            f"custom_vjp bwd of {name}: cotangent shape {c.shape} does not match "
                            f"the argument shape {aval.shape}"
                        )
                    result.append(c.astype(aval.dtype) if c.dtype != aval.dtype else c)
            return result

        outs = get_current_trace().process_custom_vjp_call(flat_fun, flat_fwd, flat_bwd, flat, cell)
        return tree_unflatten(cell["tree"], outs)
