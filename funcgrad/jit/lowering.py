"""Lowering rules: how each primitive runs inside jitted code.

Every primitive carries a ``lower`` rule (the registry test fails on one without):

* elementwise primitives: a **scalar source template** set next to their definition
  (``funcgrad/lax/elementwise.py``, ``funcgrad/lax/special.py``) through the family factory's
  ``lower=`` argument or the table at the end of the file. A template is

  - a string such as ``"({0} + {1})"`` (``{0}``, ``{1}``: the operands; ``{T}``: the operand
    dtype's constructor, e.g. ``np.float32``; ``{O}``: the output dtype's; ``{U}``: the
    unsigned type of the operand's width; ``{bits}``: that width; ``fm``:
    :mod:`funcgrad.jit.fastmath`, ``math`` and ``np`` are in scope),
  - a dict of such strings keyed by operand dtype (``'f4'``, ``'f8'``, then the kind ``'f'``,
    ``'i'``, ``'u'``, ``'b'``, then ``'int'`` for either integer kind); a dtype without an
    entry runs the NumPy impl,
  - or a function ``(in_dtypes, out_dtype, **params) -> str | None``.

  Fused groups of them become one numba loop nest (:mod:`funcgrad.jit.fusion`,
  :mod:`funcgrad.jit.kernels`).
* everything else: ``CALL_IMPL``, the generic lowering, marked explicitly: the Python-level
  executor calls the primitive's NumPy impl (BLAS products, data movement, sorting, linear
  algebra, random bits; control flow, unless :mod:`funcgrad.jit.loops` compiles it into a
  loop). The table below lists them by name, because their
  definitions live in files whose rules are not about jit; ``broadcast_in_dim``,
  ``reduce_sum``, ``reduce_max``, ``reduce_min`` and the shape-preserving reshapes are also
  understood structurally by the fusion pass (index arithmetic, reductions inside a kernel)
  and fall back to their impl when not fused.

This module imports neither numba nor the lax modules.
"""

from __future__ import annotations

import numpy as np

from ..lax._family import CALL_IMPL

__all__ = ["CALL_IMPL", "CALL_IMPL_PRIMITIVES", "EXTRA_TEMPLATES", "lowering_of", "scalar_template", "FUSIBLE_DTYPES"]

# Primitives lowered as a call of their NumPy impl, by name.
CALL_IMPL_PRIMITIVES = frozenset(
    {
        # structured array work: numpy is already as fast as a loop nest (or BLAS/LAPACK)
        "dot_general",
        "conv_general_dilated",
        "broadcast_in_dim",
        "reshape",
        "squeeze",
        "expand_dims",
        "transpose",
        "rev",
        "slice",
        "pad",
        "concatenate",
        "dynamic_slice",
        "dynamic_update_slice",
        "copy",
        "gather",
        "scatter",
        "scatter_add",
        "getitem",
        "index_update",
        # reductions and scans (reduce_sum/max/min also fuse with the elementwise work feeding them)
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_and",
        "reduce_or",
        "argmax",
        "argmin",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "reduce_window_sum",
        "reduce_window_max",
        "reduce_window_min",
        "reduce_window_winner",
        "sort",
        "top_k",
        "cholesky",
        "det",
        "eigh",
        "pinv",
        "qr",
        "slogdet",
        "solve",
        "svd",
        "triangular_solve",
        "threefry2x32",
        # primitives whose parameters are programs: their impl runs the inner jaxpr
        "cond",
        "while",
        "scan",
        "jit",
        "custom_lin",
        "checkpoint_lin",
        "custom_jvp_call",
        "custom_vjp_call",
        "checkpoint",
        "remat",
        # effects
        "debug_print",
    }
)

# Elementwise primitives defined outside funcgrad.lax (the autodiff accumulator).
EXTRA_TEMPLATES = {
    "add_any": {"f": "({0} + {1})", "int": "({0} + {1})"},
}

# The dtypes numba kernels handle (float16, bfloat16 and complex run their NumPy impls).
FUSIBLE_DTYPES = frozenset(
    np.dtype(t)
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")
)


def lowering_of(prim):
    """The ``lower`` rule of ``prim`` (filling it from the tables above), or None if it has none."""
    if prim.lower is None:
        if prim.name in EXTRA_TEMPLATES:
            prim.lower = EXTRA_TEMPLATES[prim.name]
        elif prim.name in CALL_IMPL_PRIMITIVES:
            prim.lower = CALL_IMPL
    return prim.lower


_CTOR = {
    np.dtype(t): f"np.{t}"
    for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")
}
_CTOR[np.dtype(bool)] = "bool"


def dtype_ctor(dtype) -> str:
    """Source text of the numba-side constructor of a dtype (``np.float32``, ``bool``)."""
    return _CTOR[np.dtype(dtype)]


def _dtype_keys(dtype):
    kind = dtype.kind
    keys = [f"{kind}{dtype.itemsize}", kind]
    if kind in "iu":
        keys.append("int")
    return keys


def scalar_template(prim, in_dtypes, out_dtype, params):
    """The formatted-ready template of an elementwise equation, or None when it must run its impl.

    The result still contains ``{0}``, ``{1}``...: the caller substitutes operand expressions.
    """
    rule = lowering_of(prim)
    if rule is None or rule is CALL_IMPL:
        return None
    in_dtypes = [np.dtype(d) for d in in_dtypes]
    out_dtype = np.dtype(out_dtype)
    if any(d not in FUSIBLE_DTYPES for d in in_dtypes) or out_dtype not in FUSIBLE_DTYPES:
        return None
    if callable(rule):
        rule = rule(in_dtypes, out_dtype, **params)
        if rule is None:
            return None
    elif isinstance(rule, dict):
        key = next((k for k in _dtype_keys(in_dtypes[0]) if k in rule), None)
        if key is None:
            return None
        rule = rule[key]
        if rule is None:
            return None
    elif not isinstance(rule, str):
        return None
    d0 = in_dtypes[0] if in_dtypes else out_dtype
    fields = {
        "T": dtype_ctor(d0),
        "O": dtype_ctor(out_dtype),
        "bits": str(d0.itemsize * 8),
        "U": f"np.uint{d0.itemsize * 8}" if d0.kind in "iu" else "",
    }
    # Substitute the named fields now, keeping the positional ones for the operands.
    out = rule
    for k, v in fields.items():
        out = out.replace("{" + k + "}", v)
    return out


def python_expression(eqn, args):
    """Source of an expression the executor may use instead of calling ``eqn``'s impl (a Python
    call and its argument handling saved per equation), or None. ``args`` are the operand
    expressions. The result equals the impl's (matrix products up to the order of their sums)."""
    name = eqn.primitive.name
    if name == "dot_general":
        return _matmul_expression(eqn, args)
    return None


def matmul_plan(eqn):
    """``(trans_a, trans_b, m, k, n)`` when ``eqn`` (a dot_general) is one ``(m, k) @ (k, n)``
    product of its reshaped operands, else None: no batch axes, each operand's contracted axes
    leading or trailing it (free axes of size 1 aside; a lhs contracted on its leading axes is
    stored (K, M), a rhs contracted on its trailing axes (N, K)), one dtype throughout."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, y = eqn.invars
    out = eqn.outvars[0].aval
    pet = eqn.params.get("preferred_element_type")
    dt = x.aval.dtype
    if (
        lb
        or rb
        or not lc
        or y.aval.dtype != dt
        or dt not in FUSIBLE_DTYPES
        or out.dtype != dt
        or (pet is not None and np.dtype(pet) != dt)
    ):
        return None
    xs, ys = x.aval.shape, y.aval.shape
    if list(lc) != sorted(lc) or list(rc) != sorted(rc):
        return None  # the contracted axes flatten in the same order on both sides
    # (100, 100, 1) contracted on axis 1 is a plain (100, 100): a reshape drops unit axes
    lead_a = _contracted_at(xs, lc, prefer_leading=False)
    lead_b = _contracted_at(ys, rc, prefer_leading=True)
    if lead_a is None or lead_b is None:
        return None
    m = int(np.prod([xs[d] for d in range(len(xs)) if d not in lc], dtype=np.int64))
    k = int(np.prod([xs[d] for d in lc], dtype=np.int64))
    n = int(np.prod([ys[d] for d in range(len(ys)) if d not in rc], dtype=np.int64))
    return lead_a, not lead_b, m, k, n


def _matmul_expression(eqn, args):
    """``_matmul`` (funcgrad.jit.gemm) on the reshaped operands of a dot_general that is one
    matrix product (:func:`matmul_plan`), or None."""
    plan = matmul_plan(eqn)
    if plan is None:
        return None
    trans_a, trans_b, m, k, n = plan
    (x, y), out = eqn.invars, eqn.outvars[0].aval
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    a = args[0] if x.aval.shape == a_shape else f"{args[0]}.reshape({a_shape})"
    b = args[1] if y.aval.shape == b_shape else f"{args[1]}.reshape({b_shape})"
    expr = f"_matmul({a}, {b}, {trans_a}, {trans_b})"
    return expr if out.shape == (m, n) else f"{expr}.reshape({out.shape})"


def _contracted_at(shape, contract, prefer_leading):
    """True if the ``contract`` axes of ``shape`` lead it, False if they trail it (free axes of
    size 1 ignored; when both hold, ``prefer_leading`` decides), None otherwise."""
    kept = [d for d in range(len(shape)) if d in contract or shape[d] != 1]
    at = [kept.index(d) for d in contract]
    leading = at == list(range(len(contract)))
    trailing = at == list(range(len(kept) - len(contract), len(kept)))
    if leading and trailing:
        return prefer_leading
    return True if leading else False if trailing else None
