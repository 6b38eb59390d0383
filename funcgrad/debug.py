"""Debugging helpers: ``fg.debug.print`` works inside every transformation."""

from __future__ import annotations

import builtins

import numpy as np

from .core.array import as_array
from .core.primitive import Primitive


def _debug_print_impl(*args, fmt, kwarg_names):
    n = len(args) - len(kwarg_names)
    pos = [np.asarray(a) for a in args[:n]]
    kw = {k: np.asarray(v) for k, v in zip(kwarg_names, args[n:])}
    builtins.print(fmt.format(*pos, **kw))
    return []


debug_print_p = Primitive("debug_print", multiple_results=True, differentiable=False)
debug_print_p.impl = _debug_print_impl
debug_print_p.abstract_eval = lambda *avals, fmt, kwarg_names: []
debug_print_p.effectful = True


def _debug_print_batch(vals, dims, fmt, kwarg_names):
    # Print the whole batch at once (batch dimension first), as one line per call.
    from .lax._batching import batch_size, bdim_to_front

    size = batch_size(vals, dims)
    debug_print_p.bind(*[bdim_to_front(v, d, size) for v, d in zip(vals, dims)], fmt=fmt, kwarg_names=kwarg_names)
    return [], []


debug_print_p.batch = _debug_print_batch


def print(fmt: str, *args, **kwargs) -> None:  # noqa: A001 - mirrors jax.debug.print
    """Print values from inside transformed code, with ``str.format`` syntax.

    Under ``grad``/``jvp`` the primal values are printed; under tracing (``make_jaxpr``,
    later ``jit``) the print is recorded in the program and happens when it runs.

    Example:
        >>> import funcgrad as fg
        >>> fg.debug.print("x = {}", 1.5)
        x = 1.5
    """
    vals = [as_array(a, "debug.print") for a in args] + [as_array(v, "debug.print") for v in kwargs.values()]
    debug_print_p.bind(*vals, fmt=fmt, kwarg_names=tuple(kwargs))
