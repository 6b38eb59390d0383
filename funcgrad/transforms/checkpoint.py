"""``checkpoint`` (a.k.a. remat): trade compute for memory in reverse mode.

Under linearize only the inputs are kept as residuals; the forward pass is recomputed
during the backward pass (see ``checkpoint_lin_p`` in ``jvp.py``).
"""

from __future__ import annotations

import functools

from ..core.array import as_array
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import get_current_trace
from .jvp import get_checkpoint_handler


def checkpoint(fun, *, prevent_cse=True, policy=None, static_argnums=()):
    """Rematerialise ``fun``'s intermediates in the backward pass instead of storing them.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> f = fg.checkpoint(lambda x: fnp.sin(fnp.sin(x)))
        >>> fg.grad(f)(0.0)
        Array(1., dtype=float32)
    """
    if policy is not None:
        raise NotImplementedError(
            "checkpoint(policy=...): saving policies are not implemented; every intermediate is recomputed"
        )

    @functools.wraps(fun)
    def remat_fun(*args):
        static = {i: args[i] for i in static_argnums}
        dyn = [a for i, a in enumerate(args) if i not in static]
        flat, tree = tree_flatten(dyn)
        flat = [as_array(x, "checkpoint") for x in flat]
        cell = {}

        def flat_fun(*leaves):
            it = iter(tree_unflatten(tree, leaves))
            full = [static[i] if i in static else next(it) for i in range(len(args))]
            out = fun(*full)
            o_flat, cell["tree"] = tree_flatten(out)
            return [as_array(o, "checkpoint") for o in o_flat]

        outs = get_checkpoint_handler(get_current_trace())(flat_fun, flat)
        return tree_unflatten(cell["tree"], outs)

    return remat_fun


remat = checkpoint
