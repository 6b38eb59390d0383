"""Move matrix products out of compiled ``scan`` loops, where BLAS is several times faster.

A matrix product inside a loop body runs once per step on small operands (an RNN's
``x_t @ W_x`` is a 16x32 by 32x256 product), where BLAS reaches a fraction of the speed it
has on one large product, and on one thread. Two rewrites turn such per-step products into
one large product outside the loop, without changing what the scan computes:

* **Hoisting** (:func:`hoist_scan`): body equations that depend only on the loop's constants
  and its per-step inputs ``xs`` (not on the carry) are taken out of the body. The
  constants-only ones run once before the loop; the ``xs``-dependent ones run batched over
  all steps (through :func:`funcgrad.lax.control_flow.common.batch_jaxpr`, so ``x_t @ W``
  becomes one ``(T*B, D) @ (D, H)`` product) and their results enter the loop as new ``xs``.
  Only done when the hoisted part contains a ``dot_general``.
* **Sinking accumulators** (:func:`sink_accumulators`): a carry updated only as
  ``c + dot_general(a_t, b_t)`` (optionally transposed), with ``a_t`` and ``b_t`` computed in
  the loop or read from ``xs``, is an accumulator: its final value is
  ``c0 + sum_t a_t . b_t``, a single product contracting the step axis too. The loop stacks
  ``a_t`` and ``b_t`` as extra outputs instead (an ``xs`` operand is already stacked), and
  the product runs after the loop. This is the weight gradient of a reverse-mode scan; a carry
  updated as ``c + reduce_sum(a_t)`` (a bias gradient) becomes one sum over the stacked ``a_t``.

The sum over steps is then computed in BLAS's order rather than step by step, so float32
results may differ from the step-by-step loop in the last bits (as with XLA's reassociation).
Both rewrites return the pieces :class:`funcgrad.jit.loops` runs: a ``pre`` jaxpr, the new scan
equation and a ``post`` description.
"""

from __future__ import annotations

from ..core.jaxpr import ClosedJaxpr, Jaxpr, JaxprEqn, Var, use_counts
from ..core.abstract import ShapedArray

_CONTROL_FLOW = ("scan", "while", "cond")


class Hoisted:
    """The result of :func:`hoist_scan`: ``pre`` (a ClosedJaxpr over the scan's constants and
    ``xs`` with the batch axis first) produces new constants (``pre_batched[k]`` False) and new
    ``xs`` (True); ``eqn`` is the scan taking ``[consts, new consts, carry, xs, new xs]``."""

    def __init__(self, pre, pre_batched, eqn):
        self.pre, self.pre_batched, self.eqn = pre, pre_batched, eqn


def _scan_eqn(eqn, body: Jaxpr, consts, linear, invars, outvars, **params):
    """``eqn`` with a new body, operands and results (and any other parameters changed)."""
    params = dict(eqn.params, jaxpr=ClosedJaxpr(body, consts), linear=tuple(linear), **params)
    return JaxprEqn(eqn.primitive, list(invars), params, list(outvars))


def hoist_scan(eqn):
    """Hoist the carry-independent work containing a matrix product out of a scan (see the
    module docstring); None when there is none."""
    from ..lax.control_flow.common import batch_jaxpr

    p = eqn.params
    cj, nconst, ncarry, length = p["jaxpr"], p["num_consts"], p["num_carry"], p["length"]
    body = cj.jaxpr
    consts_in, carry_in, xs_in = (
        body.invars[:nconst],
        body.invars[nconst : nconst + ncarry],
        body.invars[nconst + ncarry :],
    )
    status = {v: "inv" for v in list(body.constvars) + consts_in}
    status.update({v: "xs" for v in xs_in})
    status.update({v: "var" for v in carry_in})
    hoisted, kept = [], []
    for e in body.eqns:
        kinds = {status[a] for a in e.invars if type(a) is Var}
        if "var" in kinds or e.primitive.effectful or e.primitive.name in _CONTROL_FLOW:
            kind = "var"
        else:
            kind = "xs" if "xs" in kinds else "inv"
        for v in e.outvars:
            status[v] = kind
        (kept if kind == "var" else hoisted).append(e)
    if not any(e.primitive.name == "dot_general" for e in hoisted):
        return None
    # Values the remaining body reads from the hoisted part.
    produced = {v for e in hoisted for v in e.outvars}
    needed = []
    for a in [a for e in kept for a in e.invars] + list(body.outvars):
        if type(a) is Var and a in produced and a not in needed:
            needed.append(a)
    if not needed:
        return None
    pre_jaxpr = Jaxpr(body.constvars, consts_in + xs_in, needed, hoisted)
    pre, batched = batch_jaxpr(ClosedJaxpr(pre_jaxpr, cj.consts), length, [False] * nconst + [True] * len(xs_in), False)
    new_consts = [v for v, b in zip(needed, batched) if not b]
    new_xs = [v for v, b in zip(needed, batched) if b]
    new_body = Jaxpr(body.constvars, consts_in + new_consts + carry_in + xs_in + new_xs, body.outvars, kept)
    lin = list(p["linear"])
    linear = lin[:nconst] + [False] * len(new_consts) + lin[nconst:] + [False] * len(new_xs)
    # The new scan's operands: placeholders for the pre outputs (the caller feeds them).
    ops = list(eqn.invars)
    new_const_ops = [Var(v.aval) for v in new_consts]
    new_xs_ops = [Var(ShapedArray((length,) + tuple(v.aval.shape), v.aval.dtype)) for v in new_xs]
    invars = ops[:nconst] + new_const_ops + ops[nconst:] + new_xs_ops
    new_eqn = _scan_eqn(eqn, new_body, cj.consts, linear, invars, eqn.outvars, num_consts=nconst + len(new_consts))
    return Hoisted(pre, batched, new_eqn)


class Sunk:
    """The result of :func:`sink_accumulators`: ``eqn`` is the scan without the accumulator
    carries and with extra stacked outputs; ``accumulators`` lists, per removed carry updated by
    a product, ``(carry index, dimension_numbers, transposed, a, b)`` where ``a``/``b`` say where
    each stacked factor is: ``("ys", k)`` (the new scan's k-th extra output) or ``("xs", k)`` (its
    k-th ``xs``); ``sums`` lists, per removed carry updated by a ``reduce_sum``, ``(carry index,
    axes, a)`` (a bias gradient: the stacked operand summed over the steps and ``axes``)."""

    def __init__(self, eqn, accumulators, num_extra_ys, sums=()):
        self.eqn, self.accumulators, self.num_extra_ys = eqn, accumulators, num_extra_ys
        self.sums = list(sums)


def sink_accumulators(eqn):
    """Take carries updated as ``c + dot_general(a_t, b_t)`` out of a scan (see the module
    docstring); None when there are none."""
    p = eqn.params
    cj, nconst, ncarry = p["jaxpr"], p["num_consts"], p["num_carry"]
    body = cj.jaxpr
    carry_in = body.invars[nconst : nconst + ncarry]
    xs_in = body.invars[nconst + ncarry :]
    producer = {v: e for e in body.eqns for v in e.outvars}
    uses = use_counts(body.eqns, body.outvars)
    carried = set(carry_in)
    found = []  # (carry index, removed eqns, dimension_numbers, transposed, a, b)
    for j, (c, out) in enumerate(zip(carry_in, body.outvars[:ncarry])):
        add = producer.get(out) if type(out) is Var else None
        if add is None or add.primitive.name not in ("add", "add_any") or uses.get(c, 0) != 1 or uses[out] != 1:
            continue
        if c not in add.invars:
            continue
        t = add.invars[1] if add.invars[0] is c else add.invars[0]
        if type(t) is not Var or t is c or uses.get(t) != 1 or t not in producer:
            continue
        removed, transposed = [add], False
        dot = producer[t]
        if dot.primitive.name == "reduce_sum":  # c + sum(a_t, axes): the sum over the steps after the loop
            a = dot.invars[0]
            if type(a) is Var and a not in carried and a not in body.invars[:nconst] and a not in body.constvars:
                found.append((j, [add, dot], dot.params["axes"], None, a, None))
            continue
        if dot.primitive.name == "transpose" and tuple(dot.params["permutation"]) == (1, 0):
            inner = dot.invars[0]
            if type(inner) is not Var or uses.get(inner) != 1 or inner not in producer:
                continue
            removed.append(dot)
            transposed, dot = True, producer[inner]
        if dot.primitive.name != "dot_general" or dot.params.get("preferred_element_type") not in (None,):
            continue
        (lc, rc), (lb, rb) = dot.params["dimension_numbers"]
        a, b = dot.invars
        if lb or rb or type(a) is not Var or type(b) is not Var or a in carried or b in carried:
            continue
        if a in body.invars[:nconst] or b in body.invars[:nconst] or a in body.constvars or b in body.constvars:
            continue  # a loop-invariant factor: not a per-step product worth stacking
        removed.append(dot)
        found.append((j, removed, (lc, rc), transposed, a, b))
    # A bias-gradient sum is sunk only when its operand is stacked anyway (an xs, or a factor of
    # a sunk product): stacking it just to sum it after the loop would take length times the
    # memory the loop needs.
    factors = {f for _, _, _, _, a, b in found if b is not None for f in (a, b)}
    found = [entry for entry in found if entry[5] is not None or entry[4] in factors or entry[4] in xs_in]
    if not found:
        return None
    removed_eqns = {id(e) for _, rem, *_ in found for e in rem}
    kept = [e for e in body.eqns if id(e) not in removed_eqns]
    drop = {j for j, *_ in found}
    extra_ys, accumulators, sums = [], [], []
    for j, _, dims, transposed, a, b in found:
        where = []
        for f in (a, b) if b is not None else (a,):
            if f in xs_in:
                where.append(("xs", xs_in.index(f)))
            else:
                if f not in extra_ys:
                    extra_ys.append(f)
                where.append(("ys", extra_ys.index(f)))
        if b is None:
            sums.append((j, tuple(dims), where[0]))
        else:
            accumulators.append((j, dims, transposed, where[0], where[1]))
    keep_carry = [k for k in range(ncarry) if k not in drop]
    new_body = Jaxpr(
        body.constvars,
        body.invars[:nconst] + [carry_in[k] for k in keep_carry] + xs_in,
        [body.outvars[k] for k in keep_carry] + list(body.outvars[ncarry:]) + extra_ys,
        kept,
    )
    ops = list(eqn.invars)
    invars = ops[:nconst] + [ops[nconst + k] for k in keep_carry] + ops[nconst + ncarry :]
    lin = list(p["linear"])
    linear = lin[:nconst] + [lin[nconst + k] for k in keep_carry] + lin[nconst + ncarry :]
    length = p["length"]
    outvars = (
        [eqn.outvars[k] for k in keep_carry]
        + list(eqn.outvars[ncarry:])
        + [Var(ShapedArray((length,) + tuple(v.aval.shape), v.aval.dtype)) for v in extra_ys]
    )
    new_eqn = _scan_eqn(eqn, new_body, cj.consts, linear, invars, outvars, num_carry=len(keep_carry))
    return Sunk(new_eqn, accumulators, len(extra_ys), sums)
