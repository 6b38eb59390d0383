"""Primitives: named operations whose rules for every interpreter live side by side.

A primitive carries
* ``impl(*ndarrays, **params)``: evaluation on NumPy arrays;
* ``abstract_eval(*avals, **params)``: output shape and dtype;
* ``jvp(primals, tangents, **params)``: forward-mode rule (tangents may be symbolic Zero);
* ``transpose(cts, *args, **params)``: for primitives linear in some inputs;
* ``batch``: the vmap rule; ``lower``: the jit lowering.

Family helpers in :mod:`funcgrad.lax` fill most rules in one line.
"""

from __future__ import annotations

import numpy as np

from .abstract import aval_of_value
from .array import Array, wrap_ndarray
from .config import config
from .errors import NaNError
from .trace import Tracer, get_current_trace, unexpected_tracer


class Primitive:
    __slots__ = (
        "name",
        "multiple_results",
        "impl",
        "abstract_eval",
        "jvp",
        "transpose",
        "batch",
        "lower",
        "differentiable",
        "effectful",
        "partial_eval",
    )

    def __init__(self, name: str, multiple_results: bool = False, differentiable: bool = True):
        self.name = name
        self.multiple_results = multiple_results
        self.impl = None
        self.abstract_eval = None
        self.jvp = None
        self.transpose = None
        self.batch = None
        self.lower = None
        # False for primitives whose outputs carry no derivative (comparisons, integer ops):
        # their JVP is a symbolic zero and they need no JVP rule.
        self.differentiable = differentiable
        # True for primitives with side effects (printing): never removed as dead code.
        self.effectful = False
        # Optional rule for the linearizing JaxprTrace when some operands are known and some
        # unknown: partial_eval(trace, args, unknown_mask, params). Primitives with inner
        # jaxprs (control flow) use it to run their known part now and record only the rest.
        self.partial_eval = None

    def __repr__(self):
        return self.name

    def bind(self, *args, **params):
        return get_current_trace().process_primitive(self, args, params)

    def eval_impl(self, args, params):
        """Evaluate on concrete values (the EvalTrace rule)."""
        vals = []
        for a in args:
            if type(a) is Array:
                vals.append(a._value)
            elif isinstance(a, Tracer):
                unexpected_tracer(a, f"primitive '{self.name}'")
            else:
                vals.append(a)
        try:
            out = self.impl(*vals, **params)
        except Exception:
            # Eager evaluation skips abstract evaluation for speed; on failure, run it so that
            # invalid operands get funcgrad's error naming the primitive and the shapes.
            self.abstract_eval(*[aval_of_value(v) for v in vals], **params)
            raise
        if self.multiple_results:
            outs = [wrap_ndarray(o) for o in out]
            if config.debug_nans:
                for o in outs:
                    _check_nans(self, o, vals)
            return outs
        out = wrap_ndarray(out)
        if config.debug_nans:
            _check_nans(self, out, vals)
        return out


def _check_nans(prim, out, in_vals):
    v = out._value
    if v.dtype.kind in "fc" and np.isnan(v).any():
        if any(np.isnan(np.asarray(x)).any() for x in in_vals if np.asarray(x).dtype.kind in "fc"):
            return  # NaN came in: only report where it is first produced
        shapes = ", ".join(f"{np.asarray(x).dtype}{list(np.shape(x))}" for x in in_vals)
        raise NaNError(f"debug_nans: primitive '{prim.name}' produced a NaN from inputs ({shapes})")
