"""Vectorisation: the batching interpreter behind ``fg.vmap``.

A :class:`BatchTracer` holds a value with one extra *batch dimension* (``bdim``; ``None``
when the value is the same for every example). Each primitive has a batching rule
``batch(vals, dims, **params) -> (out, out_dim)`` (lists for multiple results) that runs the
whole batch at once; the rule helpers live in ``funcgrad/lax/_batching.py``.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.array import as_array, wrap_ndarray
from ..core.errors import ConcretizationError, InvalidArgumentError, InvalidValueError
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import Trace, Tracer, check_alive, get_current_trace, set_current_trace


class BatchTracer(Tracer):
    __slots__ = ("val", "bdim")

    def __init__(self, trace, val, bdim):
        self._trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def aval(self):
        from ..core.abstract import ShapedArray

        aval = self.val.aval
        if self.bdim is None:
            return aval
        shape = aval.shape[: self.bdim] + aval.shape[self.bdim + 1 :]
        return ShapedArray(shape, aval.dtype)

    def to_concrete(self, what):
        raise ConcretizationError(
            f"{what} needs a concrete value, but got a per-example value {self.aval.str_short()} inside vmap, "
            "where every example is processed at once. Use fnp.where to select values, or lax.cond / "
            "lax.while_loop for control flow."
        )


class BatchTrace(Trace):
    __slots__ = ("axis_size",)

    def __init__(self, parent, axis_size, name="vmap"):
        super().__init__(parent, name)
        self.axis_size = axis_size

    def unpack(self, args):
        vals, dims, batched = [], [], False
        for a in args:
            if isinstance(a, BatchTracer) and a._trace is self:
                vals.append(a.val)
                dims.append(a.bdim)
                batched = batched or a.bdim is not None
            else:
                if isinstance(a, Tracer):
                    check_alive(a, "vmap")
                vals.append(a)
                dims.append(None)
        return vals, dims, batched

    def wrap(self, val, dim):
        return val if dim is None else BatchTracer(self, val, dim)

    def process_primitive(self, prim, args, params):
        vals, dims, batched = self.unpack(args)
        with set_current_trace(self.parent):
            if not batched:
                return prim.bind(*vals, **params)
            if prim.batch is None:
                raise NotImplementedError(f"Batching rule (vmap) for primitive '{prim.name}' is not implemented")
            out, out_dim = prim.batch(vals, dims, **params)
        if prim.multiple_results:
            return [self.wrap(o, d) for o, d in zip(out, out_dim)]
        return self.wrap(out, out_dim)

    def _batched_fn(self, fn, dims_in):
        """``fn`` on per-example values, run on whole batches at the current level (outputs at dim 0)."""

        def batched(*vals):
            vals = list(vals)
            outs = vmap_flat(fn, vals, dims_in, self.axis_size)
            return outs

        return batched

    def process_custom_jvp_call(self, fun, jvp_rule, args):
        vals, dims, batched = self.unpack(args)
        with set_current_trace(self.parent):
            if not batched:
                return self.parent.process_custom_jvp_call(fun, jvp_rule, vals)
            fun_b = self._batched_fn(fun, dims)

            def jvp_b(primals, tangents):
                n = len(primals)
                outs = vmap_flat(
                    lambda *xs: _flat_pair(jvp_rule(list(xs[:n]), list(xs[n:]))),
                    list(primals) + list(tangents),
                    dims + dims,
                    self.axis_size,
                )
                return outs[: len(outs) // 2], outs[len(outs) // 2 :]

            outs = self.parent.process_custom_jvp_call(fun_b, jvp_b, vals)
        return [self.wrap(o, 0) for o in outs]

    def process_custom_vjp_call(self, fun, fwd, bwd, args, out_avals_cell):
        vals, dims, batched = self.unpack(args)
        with set_current_trace(self.parent):
            if not batched:
                return self.parent.process_custom_vjp_call(fun, fwd, bwd, vals, out_avals_cell)
            fun_b = self._batched_fn(fun, dims)
            n_out = []

            def fwd_b(*primals):
                def f(*xs):
                    outs, res = fwd(*xs)
                    n_out[:] = [len(outs)]
                    return list(outs) + list(res)

                both = vmap_flat(f, list(primals), dims, self.axis_size)
                return both[: n_out[0]], both[n_out[0] :]

            def bwd_b(res, cts):
                n_res = len(res)
                in_cts = vmap_flat(
                    lambda *xs: bwd(list(xs[:n_res]), list(xs[n_res:])),
                    list(res) + list(cts),
                    [0] * (n_res + len(cts)),
                    self.axis_size,
                )
                # An unbatched input was shared by every example: its cotangent is the sum over the batch.
                return [c if d is not None else _unbroadcast_front(c) for c, d in zip(in_cts, dims)]

            outs = self.parent.process_custom_vjp_call(fun_b, fwd_b, bwd_b, vals, out_avals_cell)
        return [self.wrap(o, 0) for o in outs]


def _unbroadcast_front(c):
    """Sum a cotangent over its leading batch axis (zeros for float0 / integer cotangents)."""
    from ..core.dtypes import is_inexact

    if is_inexact(c.dtype):
        from ..lax.reductions import reduce_sum

        return reduce_sum(c, (0,))
    return wrap_ndarray(np.zeros(c.shape[1:], c.dtype))


def _flat_pair(res):
    outs, touts = res
    return list(outs) + list(touts)


def _trace_batched(fun, vals, dims, axis_size):
    """Call ``fun`` on the per-example views of ``vals``; returns its output and the (closed) trace."""
    trace = BatchTrace(get_current_trace(), axis_size)
    try:
        with set_current_trace(trace):
            out = fun(*[v if d is None else BatchTracer(trace, v, d) for v, d in zip(vals, dims)])
    finally:
        trace.alive = False
    return out, trace


def _val_and_dim(out, trace):
    """The batched value behind one output of ``trace`` and its batch dimension (None if unbatched)."""
    if isinstance(out, BatchTracer) and out._trace is trace:
        return out.val, out.bdim
    return as_array(out, "vmap"), None


def vmap_flat(fun, vals, dims, axis_size):
    """Run ``fun`` on per-example slices of ``vals`` (batched along ``dims``); outputs batched at 0."""
    from ..lax._batching import bdim_to_front

    outs, trace = _trace_batched(fun, vals, dims, axis_size)
    return [bdim_to_front(*_val_and_dim(o, trace), axis_size) for o in outs]


# -- the public transformation ----------------------------------------------------------------


def _prefix_axes(prefix, tree, where):
    """Broadcast an ``in_axes``/``out_axes`` prefix over ``tree``: one axis (or None) per leaf."""
    if prefix is None or isinstance(prefix, int):
        return [prefix] * len(tree_flatten(tree)[0])
    p_node, t_node = _node(prefix), _node(tree)
    seq = (tuple, list)
    same_type = type(prefix) is type(tree) or (type(prefix) in seq and type(tree) in seq)
    if (
        p_node is None
        or t_node is None
        or not same_type
        or len(p_node[0]) != len(t_node[0])
        or (isinstance(tree, dict) and p_node[1] != t_node[1])
    ):
        raise InvalidValueError(
            f"vmap {where} specification {prefix!r} is not a tree prefix of the value's structure "
            f"{tree_flatten(tree)[1]}"
        )
    return [a for p, t in zip(p_node[0], t_node[0]) for a in _prefix_axes(p, t, where)]


def _node(x):
    """(children, aux) of a pytree node, or None for a leaf."""
    from ..core.pytree import _node_of

    t, node = _node_of(x)
    if t is False or t is None:
        return None
    children, aux = node.flatten(x)
    return list(children), aux


def _describe_sizes(args, axes_per_arg, names):
    lines = []
    for name, a, axes in zip(names, args, axes_per_arg):
        leaves = tree_flatten(a)[0]
        sizes = sorted({as_array(x).shape[ax] for x, ax in zip(leaves, axes) if ax is not None})
        if sizes:
            lines.append(f"{name} has mapped size{'s' if len(sizes) > 1 else ''} {', '.join(map(str, sizes))}")
    return "; ".join(lines)


def vmap(fun, in_axes=0, out_axes=0, axis_size=None, axis_name=None):
    """Vectorise ``fun`` over a batch axis of its arguments (JAX semantics).

    Args:
        fun: function of arrays/pytrees, written for one example.
        in_axes: int, None, or a (nested) prefix of the arguments' structure giving the
            mapped axis of each argument (None = not mapped, broadcast to every example).
        out_axes: where the batch axis goes in each output (int, None for outputs that do not
            depend on the batch, or a prefix of the output structure).
        axis_size: the batch size when no argument is mapped.

    Keyword arguments are always mapped over their leading axis, as in JAX.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.vmap(lambda x, w: fnp.dot(x, w), in_axes=(0, None))(fnp.ones((4, 3)), fnp.ones(3))
        Array([3., 3., 3., 3.], dtype=float32)
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)

    @functools.wraps(fun)
    def vmapped(*args, **kwargs):
        if isinstance(in_axes, tuple):
            if len(in_axes) != len(args):
                raise InvalidValueError(
                    f"vmap: in_axes {in_axes!r} has {len(in_axes)} entries but the function was "
                    f"called with {len(args)} positional arguments"
                )
            per_arg = [_prefix_axes(p, a, "in_axes") for p, a in zip(in_axes, args)]
        elif in_axes is None or isinstance(in_axes, int):
            per_arg = [_prefix_axes(in_axes, a, "in_axes") for a in args]
        else:
            raise InvalidArgumentError(
                f"vmap: in_axes must be an int, None, or a tuple with one entry per positional "
                f"argument, got {type(in_axes).__name__}"
            )
        # As in JAX, keyword arguments are always mapped over their leading axis.
        kw_names = sorted(kwargs)
        per_arg += [_prefix_axes(0, kwargs[k], "in_axes") for k in kw_names]
        all_args = list(args) + [kwargs[k] for k in kw_names]
        names = [f"argument {i}" for i in range(len(args))] + [f"keyword argument {k!r}" for k in kw_names]
        leaves, in_tree = tree_flatten(all_args)
        leaves = [as_array(x, "vmap") for x in leaves]
        axes = [ax for per in per_arg for ax in per]
        owner = [n for n, per in zip(names, per_arg) for _ in per]
        sizes = set()
        dims = []
        for x, ax, who in zip(leaves, axes, owner):
            if ax is None:
                dims.append(None)
                continue
            if not -x.ndim <= ax < max(x.ndim, 1) or x.ndim == 0:
                raise InvalidValueError(
                    f"vmap: in_axes={ax} is out of range for {who} of shape {x.shape} (rank {x.ndim})"
                )
            d = ax % x.ndim
            dims.append(d)
            sizes.add(x.shape[d])
        if axis_size is not None:
            sizes.add(int(axis_size))
        if not sizes:
            raise InvalidValueError("vmap must have at least one non-None value in in_axes, or be given axis_size")
        if len(sizes) > 1:
            raise InvalidValueError(
                f"vmap got inconsistent sizes for the mapped axes: "
                f"{_describe_sizes(all_args, per_arg, names)}"
                + (f"; axis_size={axis_size}" if axis_size is not None else "")
            )
        size = sizes.pop()

        def call(*ins):
            call_args = tree_unflatten(in_tree, ins)
            return fun(*call_args[: len(args)], **dict(zip(kw_names, call_args[len(args) :])))

        out, trace = _trace_batched(call, leaves, dims, size)
        out_leaves, out_tree = tree_flatten(out)
        out_ax = _prefix_axes(out_axes, out, "out_axes")
        from ..lax._batching import move_bdim

        results = []
        for o, ax in zip(out_leaves, out_ax):
            val, d = _val_and_dim(o, trace)
            if ax is None:
                if d is not None:
                    raise InvalidValueError(
                        f"vmap: out_axes=None for an output of shape {val.shape} that depends on the "
                        "mapped axis; give it an integer out_axes or make it independent of the batch"
                    )
                results.append(val)
                continue
            nd = val.ndim + (1 if d is None else 0)
            if not -nd <= ax < nd:
                raise InvalidValueError(f"vmap: out_axes={ax} is out of range for an output of rank {nd - 1}")
            results.append(move_bdim(val, d, ax % nd, size))
        return tree_unflatten(out_tree, results)

    return vmapped
