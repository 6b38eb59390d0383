"""Public autodiff transformations: ``jvp``, ``linearize``, ``vjp``, ``grad``, ``value_and_grad``.

Reverse mode is linearize (JVP on top of a partial evaluator, see ``partial_eval``)
followed by transposition of the recorded linear jaxpr (``transpose``).
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.abstract import ShapedArray
from ..core.array import as_array, wrap_ndarray
from ..core.dtypes import is_inexact
from ..core.errors import DTypeError, InvalidArgumentError, InvalidValueError, ShapeError
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.trace import Tracer, get_current_trace, set_current_trace
from .jvp import JVPTrace, JVPTracer, instantiate, zeros_like_aval, tangent_aval
from .partial_eval import JaxprTrace
from .transpose import backward_pass


def _flat_outputs(outs, where):
    try:
        return [as_array(o, where) for o in outs]
    except TypeError as e:
        raise InvalidArgumentError(f"{where}: the function must return arrays (or pytrees of arrays): {e}") from None


# -- flat cores (lists of arrays in, lists of arrays out) --------------------------------


def jvp_flat(fun, primals, tangents):
    """Forward mode on flat lists; ``tangents`` entries may be None (symbolic zeros)."""
    trace = JVPTrace(get_current_trace(), "jvp")
    try:
        with set_current_trace(trace):
            ins = [p if t is None else JVPTracer(trace, p, t) for p, t in zip(primals, tangents)]
            outs = fun(*ins)
    finally:
        trace.alive = False
    return split_jvp_outputs(outs, trace)


def split_jvp_outputs(outs, trace):
    """Primal and tangent lists of a JVP trace's outputs (constants get a None tangent)."""
    primals_out, tangents_out = [], []
    for o in outs:
        if isinstance(o, JVPTracer) and o._trace is trace:
            primals_out.append(o.primal)
            tangents_out.append(o.tangent)
        else:
            primals_out.append(o)
            tangents_out.append(None)
    return primals_out, tangents_out


def linearize_flat(fun, primals):
    """Run ``fun`` forward and record its linear tangent map.

    Returns ``(primals_out, jaxpr, consts, in_mask, out_mask)``: the jaxpr maps the tangents
    of the inputs selected by ``in_mask`` (the inexact ones) to the tangents of the outputs
    selected by ``out_mask`` (those that are not symbolically zero).
    """
    pe = JaxprTrace(get_current_trace(), "linearize", fold_known=True)
    jt = JVPTrace(pe, "jvp")
    try:
        in_mask = [is_inexact(p.dtype) for p in primals]
        tangents_in = [pe.new_arg(ShapedArray(p.shape, p.dtype)) if m else None for p, m in zip(primals, in_mask)]
        with set_current_trace(jt):
            ins = [p if t is None else JVPTracer(jt, p, t) for p, t in zip(primals, tangents_in)]
            outs = _flat_outputs(fun(*ins), "vjp")
        jt.alive = False
        primals_out, tangents_out = split_jvp_outputs(outs, jt)
        out_mask = [t is not None for t in tangents_out]
        jaxpr, consts = pe.to_jaxpr([t for t in tangents_out if t is not None])
    finally:
        jt.alive = False
        pe.alive = False
    return primals_out, jaxpr, consts, in_mask, out_mask


def vjp_flat(fun, primals):
    """Returns ``(primals_out, pullback)`` with ``pullback(cts_out) -> cts_in`` (flat lists)."""
    primals_out, jaxpr, consts, in_mask, out_mask = linearize_flat(fun, primals)
    in_avals = [p.aval for p in primals]

    def pullback(cts):
        lin_cts = [ct for ct, m in zip(cts, out_mask) if m]
        cts_in = iter(backward_pass(jaxpr, consts, lin_cts))
        out = []
        for aval, m in zip(in_avals, in_mask):
            ct = next(cts_in) if m else None
            out.append(ct if ct is not None else zeros_like_aval(tangent_aval(aval)))
        return out

    return primals_out, pullback


# -- argument handling -----------------------------------------------------------------


def _flatten_args(args, where):
    leaves, tree = tree_flatten(args)
    return [as_array(x, where) for x in leaves], tree


def _argnums_tuple(argnums, nargs, where):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not isinstance(a, int):
            raise InvalidArgumentError(f"{where}: argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -nargs <= a < nargs:
            raise InvalidValueError(
                f"{where}: argnums={argnums!r} is out of range for a function called with {nargs} positional arguments"
            )
    return single, tuple(a % nargs for a in nums)


def _split_args(fun, args, argnums, where):
    """Flat differentiable leaves plus a flat function of them (other args closed over)."""
    single, nums = _argnums_tuple(argnums, len(args), where)
    diff_args = tuple(args[i] for i in nums)
    flat, tree = _flatten_args(diff_args, where)

    def flat_fun(*leaves):
        new = list(args)
        for i, v in zip(nums, tree_unflatten(tree, leaves)):
            new[i] = v
        return fun(*new)

    return single, nums, flat, tree, flat_fun


def _check_grad_inputs(flat, tree, nums, where):
    for x in flat:
        if not is_inexact(x.dtype):
            argpos = nums[0] if len(nums) == 1 else nums
            raise DTypeError(
                f"{where} requires real- or complex-valued inputs (a floating dtype), but the differentiated "
                f"argument (argnums={argpos}) has a leaf of dtype {x.dtype}{list(x.shape)}. "
                "Convert it with .astype(float) or differentiate with respect to another argument."
            )


# -- public API --------------------------------------------------------------------------


def jvp(fun, primals, tangents, has_aux=False):
    """Jacobian-vector product: ``(fun(*primals), J @ tangents)``.

    Args:
        fun: function of arrays (pytrees allowed).
        primals: tuple of arguments.
        tangents: tuple with the same structure, shapes and dtypes as ``primals``.
        has_aux: ``fun`` returns ``(out, aux)``; aux is returned undifferentiated.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.jvp(fnp.sin, (0.0,), (1.0,))
        (Array(0., dtype=float32), Array(1., dtype=float32))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise InvalidArgumentError(
            "jvp: primals and tangents must be tuples (or lists) of arguments, "
            f"got {type(primals).__name__} and {type(tangents).__name__}"
        )
    p_flat, p_tree = _flatten_args(tuple(primals), "jvp")
    t_flat, t_tree = _flatten_args(tuple(tangents), "jvp")
    if p_tree != t_tree:
        raise InvalidArgumentError(f"jvp: primals and tangents must have the same structure, got {p_tree} and {t_tree}")
    tans = []
    for p, t in zip(p_flat, t_flat):
        if p.shape != t.shape:
            raise ShapeError(f"jvp: tangent shape {t.shape} does not match primal shape {p.shape}")
        if is_inexact(p.dtype):
            if t.dtype != p.dtype:
                raise DTypeError(f"jvp: tangent dtype {t.dtype} does not match primal dtype {p.dtype}")
            tans.append(t)
        else:
            tans.append(None)  # integer inputs have no tangent space
    aux_cell = []

    def flat_fun(*leaves):
        out = fun(*tree_unflatten(p_tree, leaves))
        if has_aux:
            out, aux = _split_aux(out, "jvp")
            aux_cell.append(aux)
        flat, tree = tree_flatten(out)
        aux_cell.insert(0, tree)
        return _flat_outputs(flat, "jvp")

    outs, touts = jvp_flat(flat_fun, p_flat, tans)
    out_tree = aux_cell[0]
    touts = [instantiate(t, o) for t, o in zip(touts, outs)]
    result = (tree_unflatten(out_tree, outs), tree_unflatten(out_tree, touts))
    return result + (finish_aux(aux_cell[1]),) if has_aux else result


def _split_aux(out, where):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise InvalidArgumentError(
            f"{where} with has_aux=True: the function must return a pair (output, aux), got {type(out).__name__}"
        )
    return out[0], out[1]


def finish_aux(aux):
    """Aux outputs leave their (now finished) transformations as primal values, as in JAX."""

    def unwrap(x):
        while isinstance(x, JVPTracer) and not x._trace.alive:
            x = x.primal
        return x

    from ..core.pytree import tree_map

    return tree_map(unwrap, aux)


def linearize(fun, *primals):
    """Evaluate ``fun`` and return its linear approximation ``f_jvp(*tangents)``.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> y, f_jvp = fg.linearize(fnp.sin, 0.0)
        >>> f_jvp(2.0)
        Array(2., dtype=float32)
    """
    flat, tree = _flatten_args(primals, "linearize")
    cell = []

    def flat_fun(*leaves):
        out = fun(*tree_unflatten(tree, leaves))
        o_flat, o_tree = tree_flatten(out)
        cell.append(o_tree)
        return o_flat

    outs, jaxpr, consts, in_mask, out_mask = linearize_flat(flat_fun, flat)
    out_tree = cell[0]
    from ..core.jaxpr import eval_jaxpr

    def f_jvp(*tangents):
        t_flat, t_tree = _flatten_args(tangents, "linearize f_jvp")
        if t_tree != tree:
            raise InvalidArgumentError(f"linearize: tangents must have the primals' structure {tree}, got {t_tree}")
        lin_in = [t for t, m in zip(t_flat, in_mask) if m]
        lin_out = iter(eval_jaxpr(jaxpr, consts, *lin_in))
        res = [next(lin_out) if m else zeros_like_aval(tangent_aval(o.aval)) for o, m in zip(outs, out_mask)]
        return tree_unflatten(out_tree, res)

    return tree_unflatten(out_tree, outs), f_jvp


def vjp(fun, *primals, has_aux=False):
    """Vector-Jacobian product: ``(fun(*primals), vjp_fn)`` with ``vjp_fn(ct) -> tuple of cotangents``.

    ``vjp_fn`` may be called any number of times; ``ct`` must match the output's structure,
    shapes and dtypes exactly. Integer inputs receive ``float0`` zeros.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> y, vjp_fn = fg.vjp(lambda x: x * x, fnp.array([1.0, 2.0]))
        >>> vjp_fn(fnp.ones(2))
        (Array([2., 4.], dtype=float32),)
    """
    flat, tree = _flatten_args(primals, "vjp")
    cell = []

    def flat_fun(*leaves):
        out = fun(*tree_unflatten(tree, leaves))
        if has_aux:
            out, aux = _split_aux(out, "vjp")
            cell.append(aux)
        o_flat, o_tree = tree_flatten(out)
        cell.insert(0, o_tree)
        return o_flat

    outs, pullback = vjp_flat(flat_fun, flat)
    out_tree = cell[0]
    out_avals = [o.aval for o in outs]

    def vjp_fn(ct):
        ct_flat, ct_tree = tree_flatten(ct)
        if ct_tree != out_tree:
            raise InvalidArgumentError(
                f"vjp_fn: cotangent structure {ct_tree} does not match the output structure {out_tree}"
            )
        cts = []
        for c, aval in zip(ct_flat, out_avals):
            c = as_array(c, "vjp_fn")
            if c.shape != aval.shape:
                raise ShapeError(f"vjp_fn: cotangent shape {c.shape} does not match the output shape {aval.shape}")
            if is_inexact(aval.dtype):
                if c.dtype != aval.dtype:
                    raise DTypeError(
                        f"vjp_fn: cotangent dtype {c.dtype} does not match the output dtype "
                        f"{aval.dtype} (shape {aval.shape})"
                    )
                cts.append(c)
            else:
                cts.append(None)
        return tuple(tree_unflatten(tree, pullback(cts)))

    primal_out = tree_unflatten(out_tree, outs)
    return (primal_out, vjp_fn, finish_aux(cell[1])) if has_aux else (primal_out, vjp_fn)


def _scalar_seed(out, where):
    if not isinstance(out, (Tracer,)) and not hasattr(out, "shape"):
        out = as_array(out, where)
    if out.shape != ():
        raise InvalidArgumentError(
            f"{where} requires a scalar (shape ()) output, got an output of shape {out.shape}. "
            "Reduce it (e.g. .sum() or .mean()), or use fg.vjp / fg.jacrev for non-scalar outputs."
        )
    if not is_inexact(out.dtype) or np.dtype(out.dtype).kind == "c":
        raise InvalidArgumentError(
            f"{where} requires a real floating-point output, got dtype {out.dtype}. Use fg.vjp for complex outputs."
        )
    return np.ones((), out.dtype)


def value_and_grad(fun, argnums=0, has_aux=False):
    """Like :func:`grad` but returns ``(value, gradient)`` (or ``((value, aux), gradient)``).

    Example:
        >>> import funcgrad as fg
        >>> fg.value_and_grad(lambda x: x ** 2)(3.0)
        (Array(9., dtype=float32), Array(6., dtype=float32))
    """
    where = "value_and_grad"

    @functools.wraps(fun)
    def value_and_grad_f(*args, **kwargs):
        if kwargs:
            fun_ = functools.partial(fun, **kwargs)
        else:
            fun_ = fun
        single, nums, flat, tree, flat_fun = _split_args(fun_, args, argnums, where)
        _check_grad_inputs(flat, tree, nums, "grad")
        cell = []

        def f(*leaves):
            out = flat_fun(*leaves)
            if has_aux:
                out, aux = _split_aux(out, "grad")
                cell.append(aux)
            cell.insert(0, out)
            return [as_array(out, "grad")]

        outs, pullback = vjp_flat(f, flat)
        seed = _scalar_seed(outs[0], "grad")
        cts = pullback([wrap_ndarray(seed)])
        g = tree_unflatten(tree, cts)
        g = g[0] if single else tuple(g)
        value = outs[0]
        return ((value, finish_aux(cell[1])), g) if has_aux else (value, g)

    return value_and_grad_f


def grad(fun, argnums=0, has_aux=False):
    """Gradient of a scalar-valued function with respect to argument(s) ``argnums``.

    The gradient has the structure of the differentiated argument (pytrees allowed).
    Python control flow on concrete values works inside ``fun``, as in JAX.

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> fg.grad(lambda x: fnp.sum(x ** 3))(fnp.array([1.0, 2.0]))
        Array([ 3., 12.], dtype=float32)
        >>> fg.grad(fg.grad(fnp.sin))(0.5)  # any order
        Array(-0.47942555, dtype=float32)
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        if has_aux:
            return g, value[1]
        return g

    return grad_f
