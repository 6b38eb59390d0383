"""Turn a jaxpr into a Python function over NumPy arrays (the code ``fg.jit`` runs).

The generated source has one line per equation with the equation itself as a comment
above it, so ``jitted.lower(*args).as_text()`` shows exactly what runs. Primitive
implementations are called directly on NumPy buffers: no tracing, wrapping or dispatch
per operation.
"""

from __future__ import annotations

import functools
import itertools
import keyword
import linecache
import os

import numpy as np

from ..core.jaxpr import Jaxpr, Literal
from ..core.primitive import Primitive
from . import gemm
from .allocator import nudge_malloc
from .workers import rest

_counter = itertools.count()

# FUNCGRAD_JIT_LOOPS=0 keeps scan/while/cond as Python-level loops over their body (for
# debugging and for measuring what compiled loops buy).
LOOPS_ENABLED = os.environ.get("FUNCGRAD_JIT_LOOPS", "1") != "0"


def _short(aval):
    return aval.str_short()


def _fmt_params(params):
    from ..core.jaxpr import _fmt_param

    if not params:
        return ""
    return "[" + ", ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(params.items())) + "]"


def _takes_arrays(prim: Primitive) -> bool:
    """Primitives whose evaluation runs funcgrad code want funcgrad Arrays, not NumPy buffers."""
    return type(prim).eval_impl is not Primitive.eval_impl


def _array_call(prim, params):
    from ..core.array import Array

    def call(*vals):
        out = prim.eval_impl([Array(v) if isinstance(v, np.ndarray) else v for v in vals], params)
        if prim.multiple_results:
            return [np.asarray(o) for o in out]
        return np.asarray(out)

    return call


def generate_source(jaxpr: Jaxpr, name: str, plan=None, kernels=None, loops=None):
    """Source text and namespace of a function ``name(*constvars, *invars) -> tuple``.

    ``plan`` (:func:`funcgrad.jit.fusion.plan`) orders single equations and fused groups;
    ``kernels`` maps each group's id to its compiled kernel ``(spec, dispatcher)``; ``loops``
    maps control-flow equations (by id) to their compiled loops (:mod:`funcgrad.jit.loops`).
    Without a plan every equation is a call of its primitive's impl.
    """
    from .fusion import Plan

    if plan is None:
        plan = Plan([("eqn", e) for e in jaxpr.eqns], [])
    kernels = kernels or {}
    loops = loops or {}
    names = {}
    namespace = {"np": np, "_c": np.ascontiguousarray, "_empty": np.empty, "_matmul": gemm.matmul, "_rest": rest}

    def var(v):
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    def atom(a, k, j):
        if type(a) is Literal:
            key = f"lit{k}_{j}"
            namespace[key] = np.asarray(a.val)
            return key
        return var(a)

    def doc(a):
        return names.get(a, repr(np.asarray(a.val).item()) if type(a) is Literal else "?")

    def eqn_doc(eqn, pad="    # "):
        lhs_doc = " ".join(f"{var(v)}:{_short(v.aval)}" for v in eqn.outvars)
        rhs_doc = " ".join(doc(a) for a in eqn.invars)
        return f"{pad}{lhs_doc} = {eqn.primitive.name}{_fmt_params(eqn.params)} {rhs_doc}"

    # Last use of each variable (by step), to free intermediates as soon as they are dead.
    step_reads = []
    for kind, item in plan.steps:
        if kind == "eqn":
            step_reads.append([a for a in item.invars if type(a) is not Literal])
        else:
            step_reads.append([v for v, _ in item.inputs])
    keep = {a for a in jaxpr.outvars if type(a) is not Literal} | set(jaxpr.constvars) | set(jaxpr.invars)
    last_use = {}
    for i, reads in enumerate(step_reads):
        for v in reads:
            last_use[v] = i
    kernel_outputs = set()  # known C-contiguous arrays
    from .lowering import python_expression

    params_in = [var(v) for v in jaxpr.constvars + jaxpr.invars]
    lines = [f"def {name}({', '.join(params_in)}):"]
    if _calls_blas(plan, loops):
        # BLAS's threads (spinning after each call) would take the workers' cores: products
        # stay on this thread
        namespace["_matmul"] = gemm.matmul_serial
    workers_awake = False  # a _matmul may have left the GEMM's worker threads spinning

    def rest_workers():
        nonlocal workers_awake
        if workers_awake:
            lines.append("    _rest()  # the GEMM's workers sleep: the next step runs threads of its own")
            workers_awake = False

    for i, (kind, item) in enumerate(plan.steps):
        if kind == "eqn":
            eqn, k = item, i
            prim = eqn.primitive
            outs = [var(v) for v in eqn.outvars]
            lines.append(eqn_doc(eqn))
            expr = python_expression(eqn, [atom(a, k, j) for j, a in enumerate(eqn.invars)])
            if expr is not None:
                lines.append(f"    {outs[0]} = {expr}")
                kernel_outputs.add(eqn.outvars[0])  # a fresh C-contiguous array
                workers_awake = workers_awake or "_matmul(" in expr
            else:
                fn = f"{prim.name.replace('-', '_')}_{k}"
                if id(eqn) in loops or prim.name in _THREADED_IMPLS:
                    rest_workers()
                if id(eqn) in loops:
                    fn = f"{prim.name}_loop_{k}"
                    lines.append(f"    # compiled loop: source below ({loops[id(eqn)].key[:12]})")
                    impl = loops[id(eqn)]
                elif _takes_arrays(prim):
                    impl = _array_call(prim, eqn.params)
                else:
                    impl = functools.partial(prim.impl, **eqn.params) if eqn.params else prim.impl
                namespace[fn] = impl
                args = ", ".join(atom(a, k, j) for j, a in enumerate(eqn.invars))
                if prim.multiple_results:
                    target = ", ".join(outs) + ("," if len(outs) == 1 else "") if outs else "_"
                    lines.append(f"    {target} = {fn}({args})")
                else:
                    lines.append(f"    {outs[0]} = {fn}({args})")
        else:
            group = item
            spec, disp = kernels[group.id]
            kname = f"{spec.name}_{i}"
            namespace[kname] = disp
            lines.append(f"    # fused kernel {spec.name} (source below): {spec.summary}")
            for e in group.eqns:
                lines.append(eqn_doc(e, "    #   "))
            outs = []
            for v, shape, dtype in spec.outputs:
                dname = f"dt_{np.dtype(dtype).name}"
                namespace[dname] = np.dtype(dtype)
                lines.append(f"    {var(v)} = _empty({shape!r}, {dname})")
                outs.append(var(v))
                kernel_outputs.add(v)
            ins = [var(v) if v in kernel_outputs else f"_c({var(v)})" for v in spec.array_inputs]
            ins += [
                f"{var(v)}[()]" if len(v.aval.shape) == 0 else f"{var(v)}.reshape(-1)[0]" for v in spec.scalar_inputs
            ]
            arglist = ", ".join(outs + ins)
            sizes = ", ".join(str(s) for s in spec.sizes)
            n0 = spec.sizes[0] if spec.sizes else 1
            call = f"{kname}({arglist}{', ' if arglist else ''}{sizes}{', ' if sizes else ''}0, {n0})"
            args_t = f"({arglist},)"
            sizes_t = f"({sizes},)" if sizes else "()"
            if spec.parallel:
                rest_workers()
                namespace["_parallel"] = _parallel_call()
                call = f"_parallel({kname}, {spec.sizes[0]}, {args_t}, {sizes_t})"
            # Arguments of unexpected types (an impl returning another dtype than its
            # abstract evaluation says) recompile the kernel for them instead of failing.
            namespace["_retype"] = _retype_call()
            lines += [
                "    try:",
                f"        {call}",
                "    except TypeError:",
                f"        _retype({kname}, {args_t}, {sizes_t}, {n0}, {spec.parallel})",
            ]
        dead = [var(v) for v in step_reads[i] if last_use.get(v) == i and v not in keep]
        if dead:
            lines.append(f"    del {', '.join(dict.fromkeys(dead))}")
    rets = []
    for j, a in enumerate(jaxpr.outvars):
        if type(a) is Literal:
            key = f"out_lit{j}"
            namespace[key] = np.asarray(a.val)
            rets.append(key)
        else:
            rets.append(var(a))
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    return "\n".join(lines) + "\n", namespace


# impls that run BLAS (with its own threads) on large operands
_THREADED_IMPLS = frozenset({"dot_general", "conv_general_dilated"})


def _calls_blas(plan, loops):
    """Whether the executor calls an impl that runs BLAS with threads of its own."""
    from .lowering import matmul_plan

    return any(
        kind == "eqn"
        and item.primitive.name in _THREADED_IMPLS
        and id(item) not in loops
        and (item.primitive.name != "dot_general" or matmul_plan(item) is None)
        for kind, item in plan.steps
    )


def _parallel_call():
    from .kernels import parallel_call

    return parallel_call


def _retype_call():
    from .kernels import call_retyped

    return call_retyped


def _product_dtypes(plan):
    """Dtypes of the matrix products the executor hands to funcgrad.jit.gemm."""
    from .lowering import matmul_plan

    out = []
    for kind, eqn in plan.steps:
        if kind == "eqn" and eqn.primitive.name == "dot_general":
            mm = matmul_plan(eqn)
            if mm is not None and gemm.wanted(np.dtype(eqn.invars[0].aval.dtype), *mm[2:]):
                out.append(eqn.invars[0].aval.dtype)
    return out


def compile_jaxpr(jaxpr: Jaxpr, name: str = "jitted"):
    """Compile ``jaxpr`` to a callable ``fn(*consts, *args) -> tuple of ndarrays`` and its source.

    The jaxpr is simplified (nested jits inlined, literals folded, dead code removed), split
    into fused groups (:mod:`funcgrad.jit.fusion`) whose numba kernels are compiled or loaded
    from the cache (:mod:`funcgrad.jit.kernels`), and the remaining equations call their
    impls. The source returned is the executor's followed by each kernel's.
    """
    from . import fusion

    safe = "".join(c if c.isalnum() else "_" for c in name) or "jitted"
    if keyword.iskeyword(safe) or safe[0].isdigit() or safe in ("np", "_c", "_empty", "_parallel", "_matmul", "_rest"):
        safe = "_" + safe
    nudge_malloc()
    jaxpr = fusion.simplify(jaxpr)
    plan = fusion.plan(jaxpr)
    # the matrix-product code compiles on its own threads while the kernels compile here
    gemm_builds = gemm.prepare(_product_dtypes(plan))
    kernels = {}
    if plan.groups:
        from . import kernels as kernel_lib  # only when there is something to fuse

        specs = [kernel_lib.build(group) for group in plan.groups]
        for group, spec, kernel in zip(plan.groups, specs, kernel_lib.get_kernels(specs)):  # compiled in parallel
            kernels[group.id] = (spec, kernel)
    loops = {}
    if fusion.ENABLED and LOOPS_ENABLED:
        from .loops import CONTROL_FLOW, lower_control_flow

        for kind, eqn in plan.steps:
            if kind == "eqn" and eqn.primitive.name in CONTROL_FLOW:
                loop = lower_control_flow(eqn)
                if loop is not None:
                    loops[id(eqn)] = loop
    for t in gemm_builds:
        t.join()
    source, namespace = generate_source(jaxpr, safe, plan, kernels, loops)
    filename = f"<funcgrad-jit {safe} #{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    exec(compile(source, filename, "exec"), namespace)
    text = source
    seen = set()
    for spec, _ in kernels.values():
        if spec.key not in seen:
            seen.add(spec.key)
            text += f"\n\n# ---- kernel {spec.name} ----\n" + spec.source
    for loop in loops.values():
        text += f"\n\n# ---- compiled loop {loop.key[:12]} ----\n" + loop.source
    return namespace[safe], text
