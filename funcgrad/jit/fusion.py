"""Fusion: partition a jaxpr into groups of elementwise work that become one loop nest each.

A **fused group** is a set of equations over one iteration space: elementwise primitives
(those with a scalar template, see :mod:`funcgrad.jit.lowering`), optionally ending in
``reduce_sum`` / ``reduce_max`` / ``reduce_min`` over some axes of that space ("elementwise
work feeding a reduction"). Its operands are read by index arithmetic, so the two kinds of
equation that only re-index data never materialize inside a group:

* ``broadcast_in_dim`` (increasing dimensions): the operand is read with its broadcast axes
  ignored (a rank-0 operand is a scalar);
* reshapes that only add or drop size-1 axes (``reshape``, ``squeeze``, a broadcast that
  adds unit axes): the data in C order is unchanged, so they are aliases.

Iteration spaces are compared after dropping size-1 axes (the *canonical shape*), so
``f32[5,1]`` and ``f32[5]`` work fuses. Values a group computes are written to memory only if
something outside the group (or the jaxpr's outputs) needs them; everything else stays in
registers. Equations outside any group run their NumPy impl (BLAS products, gathers...).

When the reduced axes are the last ones, a group may continue after its reductions: row
values (``max(x)``, ``log(sum(...))``) are computed once per row, and further elementwise
work may read them broadcast back along the reduced axes, feeding further reductions. The
kernel then makes several passes over each row while it is in cache (softmax, logsumexp,
layer norm, the loss of a classifier: one kernel each).

The pass is greedy in program order: an equation joins the group that produced one of its
operands, or a group that reads the same input (sibling fusion), if the iteration spaces
agree and joining creates no cycle between groups (tracked with ancestor bitsets), else it
starts a new group; when it reads values of two groups over the same space they are merged
(``b1 * m + (1 - b1) * g`` after ``m`` and ``g`` were computed apart). Groups with fewer than
two computing equations are dissolved (NumPy is as fast for a single operation, and a kernel
costs a compile).

:func:`simplify` runs first: nested ``jit`` equations are inlined, equations on literals are
folded to literals, ``transpose(dot(x, y))`` becomes ``dot(y, x)``, dead code is removed.
"""

from __future__ import annotations

import heapq
import os

import numpy as np

from ..core.jaxpr import Jaxpr, Literal, Var, dce_jaxpr, use_counts
from .lowering import FUSIBLE_DTYPES, scalar_template

# FUNCGRAD_JIT_FUSION=0 turns fusion off (every equation runs its NumPy impl): for debugging
# and for measuring what fusion buys.
ENABLED = os.environ.get("FUNCGRAD_JIT_FUSION", "1") != "0"

# Groups computing fewer equations run their impls instead (tests lower it to 1 to run every
# template through a kernel).
MIN_GROUP_SIZE = 2

REDUCTIONS = ("reduce_sum", "reduce_max", "reduce_min")
_RESHAPES = ("reshape", "squeeze", "expand_dims")


def canon(shape) -> tuple:
    """A shape without its size-1 axes (C-order data is the same)."""
    return tuple(int(d) for d in shape if d != 1)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# -- simplification ------------------------------------------------------------------------------


def simplify(jaxpr: Jaxpr) -> Jaxpr:
    """Inline nested ``jit`` equations, fold rank-0 equations on literals, remove dead code."""
    subst = {}

    def sub(a):
        while type(a) is Var and a in subst:
            a = subst[a]
        return a

    eqns = []
    _inline_into(jaxpr.eqns, sub, subst, eqns)
    outvars = [sub(v) for v in jaxpr.outvars]
    eqns = _fold_transposed_products(eqns, outvars)
    out = Jaxpr(jaxpr.constvars, jaxpr.invars, outvars, eqns)
    return dce_jaxpr(out)


def _fold_transposed_products(eqns, outvars):
    """``transpose(dot(x, y))`` -> ``dot(y, x)`` for matrices: the product comes out in the
    layout its consumers read (reverse mode transposes weight gradients this way), instead of
    a strided view that must be copied before a kernel can read it."""
    from ..core.jaxpr import JaxprEqn

    uses = use_counts(eqns, outvars, output_weight=2)
    producer = {e.outvars[0]: i for i, e in enumerate(eqns) if len(e.outvars) == 1}
    out = list(eqns)
    for i, e in enumerate(eqns):
        if e.primitive.name != "transpose" or tuple(e.params.get("permutation", ())) != (1, 0):
            continue
        d = e.invars[0]
        j = producer.get(d) if type(d) is Var else None
        if j is None or uses.get(d) != 1 or out[j] is None:
            continue
        dot = out[j]
        if dot.primitive.name != "dot_general" or len(dot.invars) != 2:
            continue
        (lc, rc), (lb, rb) = dot.params["dimension_numbers"]
        x, y = dot.invars
        if lb or rb or len(lc) != 1 or x.aval.ndim != 2 or y.aval.ndim != 2:
            continue
        params = dict(dot.params, dimension_numbers=((tuple(rc), tuple(lc)), ((), ())))
        out[j] = JaxprEqn(dot.primitive, [y, x], params, list(e.outvars))
        out[i] = None
    return [e for e in out if e is not None]


def _inline_into(src_eqns, sub, subst, eqns):
    from ..core.jaxpr import JaxprEqn

    for eqn in src_eqns:
        invars = [sub(a) for a in eqn.invars]
        prim = eqn.primitive
        if prim.name == "jit" and "jaxpr" in eqn.params:
            inner = eqn.params["jaxpr"]
            env = dict(zip(inner.constvars + inner.invars, invars))
            fresh = {}

            def isub(a, env=env, fresh=fresh):
                if type(a) is Literal:
                    return a
                if a in env:
                    return sub(env[a])
                return fresh[a]

            for ie in inner.eqns:
                for v in ie.outvars:
                    fresh[v] = Var(v.aval)
            renamed = [
                JaxprEqn(ie.primitive, list(ie.invars), ie.params, [fresh[v] for v in ie.outvars]) for ie in inner.eqns
            ]
            # Substitute the inner program's operands as it is spliced in.
            _inline_into(
                [JaxprEqn(e.primitive, [isub(a) for a in e.invars], e.params, e.outvars) for e in renamed],
                sub,
                subst,
                eqns,
            )
            for v, a in zip(eqn.outvars, inner.outvars):
                subst[v] = isub(a)
            continue
        if (
            invars
            and all(type(a) is Literal for a in invars)
            and not prim.multiple_results
            and eqn.outvars[0].aval.shape == ()
            and _foldable(prim, invars, eqn)
        ):
            try:
                val = prim.impl(*[np.asarray(a.val) for a in invars], **eqn.params)
            except Exception:  # leave it to run time (and to its error message)
                val = None
            if val is not None:
                aval = eqn.outvars[0].aval
                subst[eqn.outvars[0]] = Literal(np.asarray(val, dtype=aval.dtype), aval)
                continue
        eqns.append(JaxprEqn(prim, invars, eqn.params, eqn.outvars))


def _foldable(prim, invars, eqn):
    if getattr(prim, "effectful", False):
        return False
    if prim.name in ("broadcast_in_dim", "reshape", "squeeze", "expand_dims", "convert_element_type"):
        return True
    return scalar_template(prim, [a.aval.dtype for a in invars], eqn.outvars[0].aval.dtype, eqn.params) is not None


# -- the plan ------------------------------------------------------------------------------------


class Read:
    """How a group reads one operand: a literal, a value computed in the group, or an input
    array indexed along ``amap`` (the canonical iteration axes it varies along)."""

    __slots__ = ("kind", "src", "amap")

    def __init__(self, kind, src, amap=()):
        self.kind, self.src, self.amap = kind, src, tuple(amap)

    def __repr__(self):
        return f"Read({self.kind}, {self.src}, {self.amap})"


class Group:
    """A fused group: member equations over the canonical iteration shape ``shape``."""

    def __init__(self, gid, shape, axes):
        self.id = gid
        self.shape = shape  # canonical iteration shape (no size-1 axes)
        self.axes = axes  # canonical axes reduced by the group's reductions (None: none yet)
        self.eqns = []  # members, in program order
        self.positions = []  # their indices in the jaxpr
        self.reads = {}  # operand Var -> Read (for every Var operand of every member)
        self.produced = set()  # Vars computed by members
        self.reduced = set()  # Vars computed by member reductions
        self.outer = set()  # Vars computed by members over the kept axes (after a reduction)
        self.inputs = []  # [(Var, amap)] distinct array inputs, first use first
        self.outputs = []  # Vars written to memory (filled by plan())

    @property
    def trailing(self):
        """True when the reduced axes are the last ones: each row's reductions complete inside one
        iteration of the kept loops, so later members may use them (multi-stage kernels)."""
        a = self.axes
        return bool(a) and a == tuple(range(len(self.shape) - len(a), len(self.shape)))

    @property
    def kept_shape(self):
        return tuple(d for i, d in enumerate(self.shape) if i not in (self.axes or ()))

    @property
    def compute_count(self):
        return len(self.eqns)

    @property
    def reduce_axes(self):
        return self.axes or ()

    def __repr__(self):
        return f"Group({self.id}, shape={self.shape}, axes={self.axes}, eqns={[e.primitive.name for e in self.eqns]})"


class _Planner:
    def __init__(self, jaxpr: Jaxpr):
        self.jaxpr = jaxpr
        self.eqns = jaxpr.eqns
        self.producer = {}  # Var -> eqn index
        for k, e in enumerate(self.eqns):
            for v in e.outvars:
                self.producer[v] = k
        self.virtual = {}  # eqn index -> "alias" | "bcast"
        self.groups = []
        self.group_of = {}  # eqn index -> Group
        self.node_of_eqn = {}  # eqn index -> node id (group id or own)
        self.anc = []  # node id -> int bitset of ancestor node ids
        self.members = []  # node id -> Group or eqn index
        self.readers = {}  # input Var -> [groups reading it]

    # -- node bookkeeping -------------------------------------------------------------------
    def _new_node(self, member):
        nid = len(self.anc)
        self.anc.append(0)
        self.members.append(member)
        return nid

    def _root(self, a):
        """Follow alias equations (unit-axis reshapes) back to the value they view."""
        while type(a) is Var and a in self.producer and self.virtual.get(self.producer[a]) == "alias":
            a = self.eqns[self.producer[a]].invars[0]
        return a

    def _node_of_var(self, v):
        """The node an operand's data comes from (aliases and broadcasts are transparent)."""
        v = self._root(v)
        if type(v) is not Var or v not in self.producer:
            return None
        k = self.producer[v]
        if self.virtual.get(k) == "bcast":
            return self._node_of_var(self.eqns[k].invars[0])
        return self.node_of_eqn[k]

    def _add_deps(self, nid, preds):
        new = 0
        for p in preds:
            if p is not None and p != nid:
                new |= self.anc[p] | (1 << p)
        new &= ~self.anc[nid]
        if not new:
            return
        bit = 1 << nid
        for n in range(len(self.anc)):
            if n == nid or self.anc[n] & bit:
                self.anc[n] |= new

    # -- classification ---------------------------------------------------------------------
    def _classify(self, k, e):
        name = e.primitive.name
        if name in _RESHAPES or name == "broadcast_in_dim":
            x, out = e.invars[0], e.outvars[0]
            if canon(x.aval.shape) == canon(out.aval.shape):
                return "alias"
            if name == "broadcast_in_dim":
                bd = e.params["broadcast_dimensions"]
                if list(bd) == sorted(bd) and len(set(bd)) == len(bd):
                    return "bcast"
            return None
        if e.primitive.multiple_results or len(e.outvars) != 1:
            return None
        out = e.outvars[0].aval
        if _size(out.shape) == 0 or out.dtype not in FUSIBLE_DTYPES:
            return None
        if name in REDUCTIONS:
            x = e.invars[0]
            if type(x) is Literal or x.aval.dtype not in FUSIBLE_DTYPES or _size(x.aval.shape) == 0:
                return None
            if name == "reduce_sum" and x.aval.dtype == np.bool_:
                return None
            return "reduce"
        dtypes = [a.aval.dtype for a in e.invars]
        if scalar_template(e.primitive, dtypes, out.dtype, e.params) is None:
            return None
        return "elementwise"

    def _iteration(self, e, kind):
        """(canonical iteration shape, canonical reduced axes or None) of a computing equation."""
        if kind == "reduce":
            shape = e.invars[0].aval.shape
            cpos = {d: i for i, d in enumerate([d for d in range(len(shape)) if shape[d] != 1])}
            axes = tuple(sorted(cpos[a] for a in e.params["axes"] if a in cpos))
            return canon(shape), axes
        return canon(e.outvars[0].aval.shape), None

    def _bcast_amap(self, beqn):
        """Canonical output axes a broadcast_in_dim's operand varies along."""
        x = beqn.invars[0]
        shape = beqn.outvars[0].aval.shape
        cpos = {d: i for i, d in enumerate([d for d in range(len(shape)) if shape[d] != 1])}
        bd = beqn.params["broadcast_dimensions"]
        return tuple(cpos[bd[i]] for i, s in enumerate(x.aval.shape) if s != 1)

    def _resolve(self, a, g, shape, outer=False):
        """How group ``g`` (or a new group when None) reads atom ``a`` for a member over
        ``shape`` (``outer``: a member over the kept axes of ``g``); None when it cannot."""
        a = self._root(a)
        if type(a) is Literal:
            return Read("const", a)
        if g is not None and a in g.produced:
            is_outer = a in g.reduced or a in g.outer
            if is_outer != outer:
                return None  # an inner value cannot be read per row, nor a row value per element
            return Read("local", a)
        k = self.producer.get(a)
        if k is not None and self.virtual.get(k) == "bcast":
            beqn = self.eqns[k]
            if canon(beqn.outvars[0].aval.shape) != shape:
                return None
            u = self._root(beqn.invars[0])
            if type(u) is Literal:
                return Read("const", u)
            if u in self.producer and self.virtual.get(self.producer[u]) == "bcast":
                return None  # a broadcast of a broadcast: materialize the inner one
            amap = self._bcast_amap(beqn)
            if g is not None and u in g.produced:
                # A row value (reduction result) broadcast back along the reduced axes.
                kept = tuple(i for i in range(len(g.shape)) if i not in (g.axes or ()))
                if not outer and g.trailing and (u in g.reduced or u in g.outer) and amap == kept:
                    return Read("local", u)
                return None
            return Read("input", u, amap)
        c = canon(a.aval.shape)
        if c == shape:
            return Read("input", a, range(len(shape)))
        if c == ():
            return Read("input", a, ())
        return None

    # -- grouping ---------------------------------------------------------------------------
    def run(self):
        for k, e in enumerate(self.eqns):
            kind = self._classify(k, e)
            if kind in ("alias", "bcast"):
                self.virtual[k] = kind
                continue
            if kind is None:
                nid = self._new_node(k)
                self.node_of_eqn[k] = nid
                self._add_deps(nid, [self._node_of_var(a) for a in e.invars])
                continue
            self._place(k, e, kind)
        return self

    def _candidates(self, e, shape):
        seen, out = set(), []
        for a in e.invars:
            r = self._root(a)
            if type(r) is not Var:
                continue
            k = self.producer.get(r)
            if k is not None and self.virtual.get(k) == "bcast":
                r = self._root(self.eqns[k].invars[0])
                k = self.producer.get(r) if type(r) is Var else None
            if k is not None and k in self.group_of:
                g = self.group_of[k]
                if g.id not in seen:
                    seen.add(g.id)
                    out.append(g)
        for a in e.invars:  # siblings: groups reading the same input array
            read = self._resolve(a, None, shape)
            if read is not None and read.kind == "input":
                for g in reversed(self.readers.get(read.src, [])):
                    if g.id not in seen:
                        seen.add(g.id)
                        out.append(g)
        return out

    def _try_join(self, g, e, kind, shape, axes):
        outer = False
        if g.shape != shape:
            # A member over the kept axes, after the group's reductions (softmax, logsumexp).
            if kind == "reduce" or not g.trailing or shape != g.kept_shape:
                return None
            outer = True
        if kind == "reduce" and g.axes is not None and g.axes != axes:
            return None
        if kind == "reduce" and g.outer and not (axes and axes == tuple(range(len(shape) - len(axes), len(shape)))):
            return None
        reads = []
        for a in e.invars:
            r = self._resolve(a, g, shape, outer)
            if r is None:
                return None
            reads.append((a, r))
        gbit = 1 << g.node
        for _, r in reads:
            if r.kind == "input":
                p = self._node_of_var(r.src)
                if p is not None and p != g.node and self.anc[p] & gbit:
                    return None  # the input depends on the group: joining would make a cycle
        return reads, outer

    def _place(self, k, e, kind):
        shape, axes = self._iteration(e, kind)
        chosen, reads, outer = None, None, False
        for g in self._candidates(e, shape):
            joined = self._try_join(g, e, kind, shape, axes)
            if joined is not None:
                chosen, (reads, outer) = g, joined
                break
        if chosen is None:
            reads = []
            for a in e.invars:
                r = self._resolve(a, None, shape)
                if r is None:  # cannot be fused at all (e.g. operand of another shape)
                    nid = self._new_node(k)
                    self.node_of_eqn[k] = nid
                    self._add_deps(nid, [self._node_of_var(x) for x in e.invars])
                    return
                reads.append((a, r))
            chosen = Group(len(self.groups), shape, None)
            chosen.node = self._new_node(chosen)
            self.groups.append(chosen)
        g = chosen
        if kind == "reduce":
            g.axes = axes
            g.reduced.add(e.outvars[0])
        if outer:
            g.outer.add(e.outvars[0])
        g.eqns.append(e)
        g.positions.append(k)
        g.produced.add(e.outvars[0])
        self.group_of[k] = g
        self.node_of_eqn[k] = g.node
        preds = []
        for a, r in reads:
            if type(a) is Var:
                g.reads[a] = r
            if r.kind == "input":
                if all(r.src is not v or r.amap != m for v, m in g.inputs):
                    g.inputs.append((r.src, r.amap))
                lst = self.readers.setdefault(r.src, [])
                if g not in lst:
                    lst.append(g)
                preds.append(self._node_of_var(r.src))
        self._add_deps(g.node, preds)
        # The equation may also read values of other groups over the same space (the two halves
        # of ``m * b1 + g * (1 - b1)``): merge them, so that they become one loop.
        for a in e.invars:
            r = self._root(a)
            pk = self.producer.get(r) if type(r) is Var else None
            h = self.group_of.get(pk) if pk is not None else None
            if h is not None and h is not g and self._can_merge(g, h):
                self._merge(g, h)

    def _bits(self, mask):
        while mask:
            low = mask & -mask
            yield low.bit_length() - 1
            mask ^= low

    def _can_merge(self, g, h):
        if g.shape != h.shape or g.outer or h.outer:
            return False
        if g.axes is not None and h.axes is not None and g.axes != h.axes:
            return False
        # Reads across the two groups must be plain element reads (no broadcast of a row value).
        n = len(g.shape)
        for x, y in ((g, h), (h, g)):
            for v, amap in x.inputs:
                if v in y.produced and (tuple(amap) != tuple(range(n)) or v in y.reduced):
                    return False
        # No path between them through a third node (it would become a cycle).
        bg, bh = 1 << g.node, 1 << h.node
        for x, other in ((g, bh), (h, bg)):
            for node in self._bits(self.anc[x.node] & ~other):
                if self.anc[node] & other:
                    return False
        return True

    def _merge(self, g, h):
        order = sorted(zip(g.positions + h.positions, g.eqns + h.eqns), key=lambda pe: pe[0])
        g.positions = [p for p, _ in order]
        g.eqns = [e for _, e in order]
        g.produced |= h.produced
        g.reduced |= h.reduced
        if g.axes is None:
            g.axes = h.axes
        reads = dict(h.reads)
        reads.update(g.reads)
        for v, r in reads.items():
            if r.kind == "input" and r.src in g.produced:
                reads[v] = Read("local", r.src)
        g.reads = reads
        inputs = []
        for v, amap in g.inputs + h.inputs:
            if v not in g.produced and all(v is not w or tuple(amap) != tuple(m) for w, m in inputs):
                inputs.append((v, amap))
        g.inputs = inputs
        for lst in self.readers.values():
            if h in lst:
                lst.remove(h)
                if g not in lst:
                    lst.append(g)
        for k in h.positions:
            self.group_of[k] = g
            self.node_of_eqn[k] = g.node
        bg, bh = 1 << g.node, 1 << h.node
        merged = (self.anc[g.node] | self.anc[h.node]) & ~(bg | bh)
        self.anc[g.node] = merged
        for node in range(len(self.anc)):
            if self.anc[node] & (bg | bh) and node != g.node:
                self.anc[node] |= merged | bg
        h.eqns, h.positions, h.dead = [], [], True


class Plan:
    """The executable schedule: ``steps`` is a list of ("eqn", eqn) and ("group", Group)."""

    def __init__(self, steps, groups):
        self.steps = steps
        self.groups = groups


def plan(jaxpr: Jaxpr, enabled: bool | None = None, min_group_size: int | None = None) -> Plan:
    """Partition ``jaxpr`` (already simplified) into fused groups and single equations.

    ``min_group_size`` (default :data:`MIN_GROUP_SIZE`) is the fewest computing equations a group
    keeps; loop bodies compiled whole (:mod:`funcgrad.jit.loops`) use 1, so every elementwise
    equation becomes kernel code."""
    min_group_size = MIN_GROUP_SIZE if min_group_size is None else min_group_size
    eqns = jaxpr.eqns
    if not (ENABLED if enabled is None else enabled):
        return Plan([("eqn", e) for e in eqns], [])
    p = _Planner(jaxpr).run()
    # Dissolve groups that would compute a single equation: NumPy does that as well.
    groups = []
    for g in p.groups:
        if getattr(g, "dead", False):
            continue
        # A lone equation reading a broadcast operand stays a kernel: run alone, the broadcast
        # would be materialized first (the gradient of a bias add, of jacrev's rows).
        broadcasting = any(len(amap) < len(g.shape) for _, amap in g.inputs)
        if g.compute_count >= min_group_size or broadcasting:
            groups.append(g)
        else:
            for k in g.positions:
                del p.group_of[k]
    group_of = p.group_of

    # Which virtual equations (aliases, broadcasts) must be materialized, and which group
    # values must be written to memory: anything read by a non-member.
    need_virtual = set()

    def mark_var(v):
        """``v`` is needed as an actual array: materialize the virtual chain producing it."""
        while type(v) is Var and v in p.producer:
            k = p.producer[v]
            if k in p.virtual:
                if k in need_virtual:
                    return
                need_virtual.add(k)
                v = eqns[k].invars[0]
            else:
                return

    for k, e in enumerate(eqns):
        if k in p.virtual or k in group_of:
            continue
        for a in e.invars:
            mark_var(a)
    for a in jaxpr.outvars:
        mark_var(a)
    for g in groups:
        for v, _ in g.inputs:
            mark_var(v)  # inputs are roots: only a materialized alias chain could be below

    needed_outside = set()
    for k in need_virtual:
        a = eqns[k].invars[0]
        if type(a) is Var:
            needed_outside.add(a)
    for k, e in enumerate(eqns):
        if k in p.virtual or k in group_of:
            continue
        needed_outside.update(a for a in e.invars if type(a) is Var)
    needed_outside.update(a for a in jaxpr.outvars if type(a) is Var)
    for g in groups:
        needed_outside.update(v for v, _ in g.inputs)
    for g in groups:
        g.outputs = [e.outvars[0] for e in g.eqns if e.outvars[0] in needed_outside]

    # Schedule: topological order of groups and single equations (original order breaks ties).
    nodes = []  # (key, first position, kind, payload)
    pos_node = {}
    for g in groups:
        key = ("g", g.id)
        nodes.append((key, min(g.positions), "group", g))
        for k in g.positions:
            pos_node[k] = key
    for k, e in enumerate(eqns):
        if k in group_of or (k in p.virtual and k not in need_virtual):
            continue
        key = ("e", k)
        nodes.append((key, k, "eqn", e))
        pos_node[k] = key

    def producer_node(v):
        if type(v) is not Var or v not in p.producer:
            return None
        k = p.producer[v]
        if k in pos_node:
            return pos_node[k]
        # a virtual equation that is not materialized: its data comes from its operand
        return producer_node(eqns[k].invars[0])

    deps = {}
    for key, _, kind, payload in nodes:
        if kind == "group":
            srcs = [v for v, _ in payload.inputs]
        else:
            srcs = [a for a in payload.invars]
        deps[key] = {d for d in (producer_node(v) for v in srcs) if d is not None and d != key}
    users = {key: [] for key, *_ in nodes}
    indeg = {}
    for key, ds in deps.items():
        indeg[key] = len(ds)
        for d in ds:
            users[d].append(key)
    info = {key: (pos, kind, payload) for key, pos, kind, payload in nodes}
    heap = [(info[key][0], key) for key in info if indeg[key] == 0]
    heapq.heapify(heap)
    steps = []
    while heap:
        _, key = heapq.heappop(heap)
        pos, kind, payload = info[key]
        steps.append((kind, payload))
        for u in users[key]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, (info[u][0], u))
    if len(steps) != len(nodes):  # pragma: no cover - the ancestor check prevents this
        raise RuntimeError("jit fusion produced a cyclic schedule")
    return Plan(steps, groups)
