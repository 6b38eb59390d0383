"""Control flow inside kernels: ``scan``, ``while`` (``fori_loop``) and ``cond`` as numba code.

Without this module a jitted ``lax.scan`` runs its body jaxpr once per iteration from Python
(each equation a NumPy call): tens of microseconds of interpreter overhead per step, which
dominates small recurrent models. Here a control-flow equation becomes one numba module:

* every jaxpr involved (the loop body, the condition, the branches, nested loops) becomes an
  ``@njit`` function ``body_k(K..., args...) -> tuple``: its elementwise work is planned by
  :mod:`funcgrad.jit.fusion` with single-equation groups allowed, so every elementwise
  equation is a loop of the fused kernels of :mod:`funcgrad.jit.kernels`, called through
  their native entry points (passed like the constants; ``noalias`` code that vectorizes
  where numba's copy of a many-array kernel does not) or, without native code, embedded as
  numba source; matrix products call funcgrad.jit.gemm's
  compiled product (its entry points, a per-thread workspace and the worker pool's state are
  passed to every function after the constants) or, for small or batched ones, ``np.dot``
  (BLAS through numba); slicing, index updates, reshapes, broadcasts, transposes, pads, concatenations and
  dynamic slices have direct numba translations (:data:`_EMITTERS`);
* the driver is a real loop: ``for i in range(length)`` over the body with the carry in local
  variables and the stacked outputs preallocated (``scan``), ``while cond(...): body(...)``
  (``while``), or an ``if``/``elif`` chain on the clamped branch index (``cond``). Work that
  is the same every step is done once before the loop: constants and stacked inputs made
  contiguous, a scan's weights packed as the GEMM's B operand (:meth:`_FunctionBuilder.packed_operand`);
  fused kernels read column slices of a value (an LSTM's gates) in place
  (:meth:`_FunctionBuilder.column_window`); a scan's weight-gradient sums run on a worker
  thread during the loop (:class:`_LoopSum`);
* closed-over constants of inner jaxprs are hoisted to extra leading arguments (``K0, K1...``),
  so the generated source holds structure only and is cached on disk like any kernel (the
  module's name is the hash of its source; ``njit(cache=True)``).

A loop whose body uses something without a translation here (advanced integer indexing, a
batched matrix product, sorting, linear algebra, random bits, float16 or complex values, debug
callbacks) keeps the Python-level loop: :func:`lower_control_flow` returns None and the
executor calls the primitive's impl, with the reason in the compile log. The same happens if
numba rejects the generated module when it is first called.

Values are immutable, so no function writes into an argument: results are fresh arrays or
views of arguments, and a function's outputs that might be views (or read-only) are copied so
loop-carried values keep one numba type across iterations and branches.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import time

import numpy as np

from ..core.config import config
from ..core.jaxpr import ClosedJaxpr, Jaxpr, Literal, Var
from ..core.primitive import Primitive
from .lowering import FUSIBLE_DTYPES, dtype_ctor

logger = logging.getLogger("funcgrad.jit")

CONTROL_FLOW = ("scan", "while", "cond")

_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)  # native entry points: i32 (i64 *slots)


class NotLowerable(Exception):
    """A jaxpr uses something this module cannot translate to numba (the message says what)."""


def _np_dtype(dtype) -> str:
    """Source of the NumPy dtype object inside numba code (``np.float32``, ``np.bool_``)."""
    d = np.dtype(dtype)
    return "np.bool_" if d == np.dtype(bool) else dtype_ctor(d)


def _scalar_text(val, dtype) -> str:
    """Source of a literal scalar of ``dtype`` (``np.float32(0.5)``, ``-np.inf``, ``True``)."""
    d = np.dtype(dtype)
    v = np.asarray(val, d).item()
    if d.kind == "f":
        text = repr(float(v)) if np.isfinite(v) else ("np.nan" if np.isnan(v) else ("np.inf" if v > 0 else "-np.inf"))
    elif d.kind == "b":
        return repr(bool(v))
    else:
        text = repr(int(v))
    return f"{dtype_ctor(d)}({text})"


def _literal(val, dtype) -> str:
    """Source of a rank-0 array holding a literal."""
    return f"np.full((), {_scalar_text(val, dtype)}, {_np_dtype(dtype)})"


class _Module:
    """The numba module being generated for one control-flow equation."""

    def __init__(self):
        self.defs = []  # function sources, callees first
        self.kernel_names = {}  # kernel key -> function name
        self.consts = []  # hoisted constants (NumPy arrays), passed as K0, K1, ...
        self.products = {}  # dtype -> funcgrad.jit.gemm.Product of the matrix products called
        self.async_blocks = 0  # the most blocks posted at once (each has a workspace part of its own)
        self.helpers = set()  # names of the helper functions emitted once (packing, copying)
        self.slots = 16  # words of the SL scratch: the most any helper fills (16: a GEMM call)
        self.native_kernels = {}  # parameter name -> ctypes pointer to a native kernel's entry
        self.native_names = set()  # the functions calling them (they take __KP__ first)
        self.count = 0

    def fresh_name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def hoist(self, value) -> str:
        self.consts.append(np.asarray(value))
        return f"K{len(self.consts) - 1}"

    def kernel(self, spec) -> str:
        """The name of ``spec``'s fused kernel in this module. Where the kernel has native code
        (and no scalar arguments), a function calling it through its entry point, passed to
        every function of the module after the constants like the GEMM's (``noalias``
        arguments: it vectorizes where numba's copy of the source may not); else its numba
        source, embedded once. Call it as ``name(__KP__outs..., ins..., sizes..., lo, hi)``."""
        name = self.kernel_names.get(spec.key)
        if name is None and not spec.scalar_inputs:
            from . import native
            from .kernels import native_entry

            entry = native_entry(spec) if native.runtime() is not None else None
            if entry is not None:
                name = f"k_{spec.key[:16]}"
                pointer = f"NK_{spec.key[:16]}"
                self.native_kernels[pointer] = _ENTRY_TYPE(entry)
                self.slots = max(self.slots, 2 * (len(spec.outputs) + len(spec.array_inputs)) + len(spec.sizes) + 2)
                self.native_names.add(name)
                self.defs.append(_native_kernel_call_source(name, pointer, spec))
                self.kernel_names[spec.key] = name
        if name is None:
            name = f"k_{spec.key[:16]}"
            body = spec.source.split("\ndef kernel(", 1)
            if len(body) != 2:  # pragma: no cover - kernels.build always emits `def kernel(`
                raise NotLowerable("a fused kernel's source has no `def kernel(`")
            self.defs.append(f"{_DECORATOR}\ndef {name}(" + body[1])
            self.kernel_names[spec.key] = name
        return name

    def gemm(self, product) -> str:
        """The name of the helper calling ``product`` (funcgrad.jit.gemm) from numba: the
        compiled entry points, this thread's workspace and the worker pool's state are
        passed to every function of the module after the constants (:meth:`gemm_params`)."""
        dt = product.profile.dtype.name
        name = f"gemm_{dt}"
        if dt not in self.products:
            self.products[dt] = product
            self.defs.append(_gemm_helper_source(name, dt, product.profile.nr))
        return name

    def gemm_async(self, product) -> str:
        """The dtype suffix of the helpers handing ``product``'s blocks to the workers while the
        loop goes on (``block_<dt>`` fills one, ``post_<dt>`` posts them, ``join_<dt>`` waits):
        see :func:`_async_helpers_source`."""
        dt = product.profile.dtype.name
        self.gemm(product)
        if f"post_{dt}" not in self.helpers:
            self.helpers.add(f"post_{dt}")
            self.defs.append(_async_helpers_source(dt, product.profile.workspace, product.profile.dtype.itemsize))
        return dt

    def gemm_pack(self, product) -> str:
        """The name of the helper packing a product's B operand once (``gemm_pack``), for
        products flagged prepacked (a loop's weights, the same every step)."""
        dt = product.profile.dtype.name
        self.gemm(product)
        name = f"packb_{dt}"
        if name not in self.helpers:
            self.helpers.add(name)
            self.defs.append(_pack_helper_source(name, dt))
        return name

    def copy_helper(self) -> str:
        """The name of an @njit function copying an array into a C-contiguous one of its shape."""
        if "copy_into" not in self.helpers:
            self.helpers.add("copy_into")
            self.defs.append(
                f"{_DECORATOR}\ndef copy_into(dst, src):\n    d = dst.reshape(-1)\n"
                "    s = np.ascontiguousarray(src).reshape(-1)\n    for q in range(d.size):\n        d[q] = s[q]\n"
            )
        return "copy_into"

    def gemm_params(self):
        names = [f"G{k}_{dt}" for dt in self.products for k in ("s", "p", "a", "j", "k", "w")]
        return names + (["Gst"] if self.products else [])

    def extra_params(self):
        """The parameters after the constants: the GEMM's, the native kernels' entries, then
        ``SL``, a scratch int64 array each call of the driver gets for the slots the native
        entry points read (the helpers fill it in turn; none calls another while it is filled)."""
        return self.gemm_params() + list(self.native_kernels) + ["SL"]

    def source(self) -> str:
        kparams = "".join(f"K{i}, " for i in range(len(self.consts)))
        kparams += "".join(f"{p}, " for p in self.extra_params())
        header = (
            '"""funcgrad loop module: control flow lowered to numba by funcgrad/jit/loops.py."""\n'
            "import math\n\nimport numpy as np\nfrom numba import njit\n\nfrom funcgrad.jit import fastmath as fm\n\n"
        )
        return header + "\n\n".join(d.replace("__KP__", kparams) for d in self.defs) + "\n"


def _check_dtypes(avals, where):
    for a in avals:
        if np.dtype(a.dtype) not in FUSIBLE_DTYPES:
            raise NotLowerable(
                f"{where} uses a {np.dtype(a.dtype).name} value (numba loops handle bool, ints, float32/64)"
            )


class _FunctionBuilder:
    """Source of one ``@njit`` function computing a (closed) jaxpr."""

    def __init__(self, module: _Module, closed: ClosedJaxpr | Jaxpr, prefix: str, num_invariant=None):
        """``num_invariant``: for a scan body, how many leading inputs are its constants; with the
        closed-over constants they are the same every step, and products' B operands among them
        are packed once by the driver (None: no packing)."""
        from . import fusion

        self.module = module
        if isinstance(closed, ClosedJaxpr):
            jaxpr, consts = closed.jaxpr, closed.consts
        else:
            jaxpr, consts = closed, []
        self.names = {}
        for v, c in zip(jaxpr.constvars, consts):
            self.names[v] = module.hoist(c)
        jaxpr = _merge_zero_scatters(fusion.simplify(jaxpr), dict(zip(jaxpr.constvars, consts)))
        self.jaxpr = jaxpr
        self.fresh = set()  # Vars known to be new, writable, C-contiguous arrays
        self.lines = []
        self.name = module.fresh_name(prefix)
        _check_dtypes([v.aval for v in jaxpr.invars + jaxpr.constvars], f"the {prefix} jaxpr")
        for e in jaxpr.eqns:
            _check_dtypes([v.aval for v in e.outvars], f"{e.primitive.name} in a loop body")
        self.plan = fusion.plan(jaxpr, min_group_size=1)
        self.producer = {v: e for e in jaxpr.eqns for v in e.outvars}
        self.invariant = set()  # Vars the same on every step (a scan's constants)
        if num_invariant is not None:
            self.invariant = set(jaxpr.invars[:num_invariant]) | set(jaxpr.constvars)
        self.packed = []  # [(Var, parameter name, trans_b, k, n, product)]: B operands packed by the caller

    def packed_operand(self, v, trans_b, k, n, product):
        """The name of a parameter holding loop-invariant ``v`` packed as the B operand of a
        ``k x n`` product (the driver packs it once before the loop)."""
        for w, name, t, kk, nn, _ in self.packed:
            if w is v and (t, kk, nn) == (trans_b, k, n):
                return name
        name = f"pk{len(self.packed)}"
        self.packed.append((v, name, trans_b, k, n, product))
        return name

    def column_window(self, v):
        """``(base, row_length, offset)`` when ``v`` is the column slice ``base[:, a:b]`` of a 2-D
        array computed here (a kernel can read it in place: see ``kernels.build``), else None."""
        e = self.producer.get(v)
        if e is None or len(e.invars) != 1 or type(e.invars[0]) is not Var or v.aval.ndim != 2:
            return None
        base = e.invars[0]
        if base.aval.ndim != 2 or base not in self.fresh:
            return None
        rows, width = base.aval.shape
        if e.primitive.name == "getitem" and [k for k, *_ in e.params["spec"]] == ["s", "s"]:
            (_, r0, r1, rs), (_, c0, c1, cs) = e.params["spec"]
            row_range, col_range = slice(r0, r1, rs).indices(rows), slice(c0, c1, cs).indices(width)
        elif e.primitive.name == "slice" and not any(s not in (None, 1) for s in (e.params.get("strides") or ())):
            (r0, c0), (r1, c1) = e.params["start_indices"], e.params["limit_indices"]
            row_range, col_range = (r0, r1, 1), (c0, c1, 1)
        else:
            return None
        if row_range != (0, rows, 1) or col_range[2] != 1 or rows == 1:
            return None
        return base, width, col_range[0]

    # -- naming ------------------------------------------------------------------------------
    def var(self, v):
        if v not in self.names:
            self.names[v] = f"v{len(self.names)}"
        return self.names[v]

    def atom(self, a):
        """Source of an operand as an array (literals become rank-0 arrays)."""
        if type(a) is Literal:
            return _literal(a.val, a.aval.dtype)
        return self.var(a)

    def contiguous(self, a):
        if a in self.fresh or type(a) is Literal or not a.aval.shape:
            return self.atom(a)  # rank 0: contiguous (and np.ascontiguousarray would make it rank 1)
        return f"np.ascontiguousarray({self.atom(a)})"

    def scalar(self, a):
        """Source of a size-1 operand as a scalar."""
        if type(a) is Literal:
            return _scalar_text(a.val, a.aval.dtype)
        if len(a.aval.shape) == 0:
            return f"{self.var(a)}[()]"
        return f"np.ascontiguousarray({self.var(a)}).reshape(-1)[0]"

    def emit(self, line):
        self.lines.append("    " + line)

    # -- building ----------------------------------------------------------------------------
    def build(self, owned=None, buffers=0) -> str:
        """Emit the function; return its name.

        ``owned``: indices of the outputs returned as fresh C arrays (default: all), for values
        whose numba type must stay the same across iterations or branches. ``buffers``: the
        function takes that many extra arrays ``ob0, ob1...``, one per output starting at output
        ``len(outvars) - buffers`` (a scan's stacked outputs, ``ys[i]``): a kernel computing such an
        output writes into the buffer directly; :attr:`direct` lists the outputs written so.
        """
        from . import kernels as kernel_lib
        from .executor import _fmt_params

        jaxpr = self.jaxpr
        nout = len(jaxpr.outvars)
        owned = set(range(nout)) if owned is None else set(owned)
        params = [self.var(v) for v in jaxpr.invars]
        self.buffer_of = buffer_of = {}  # Var -> (output index, buffer name): its first output position
        for k in range(nout - buffers, nout):
            v = jaxpr.outvars[k]
            params.append(f"ob{k - (nout - buffers)}")
            if type(v) is Var and v not in buffer_of and v.aval.shape and v not in jaxpr.invars:
                buffer_of[v] = (k, params[-1])
        self.direct = set()
        self.scatter_into = self._scatter_targets()
        self.written = set()  # pieces of scatters written in place by their kernels
        self.allocated = set()  # scatter results allocated before the scatter (scatter_base)
        for kind, item in self.plan.steps:
            if kind == "group":
                windows = {}  # column slices read in place from their base arrays
                for v, amap in item.inputs:
                    found = self.column_window(v) if amap else None
                    if found is not None and tuple(v.aval.shape) == tuple(item.shape):
                        windows[v] = found
                # outputs concatenated into one matrix by a scatter: written into its columns
                out_windows = {v: self.scatter_into[v][1:] for v in item.outputs if v in self.scatter_into}
                spec = kernel_lib.build(item, {v: w[1:] for v, w in windows.items()}, out_windows)
                kname = self.module.kernel(spec)
                self.emit(f"# fused kernel ({spec.summary})")
                for e in item.eqns:
                    self.emit("#   " + self._eqn_doc(e, _fmt_params))
                outs = []
                for v, shape, dtype in spec.outputs:
                    if v in spec.out_windowed:
                        outs.append(self.scatter_base(self.scatter_into[v][0]))
                        self.written.add(v)
                        continue
                    if v in buffer_of and tuple(shape) == tuple(v.aval.shape):
                        self.emit(f"{self.var(v)} = {buffer_of[v][1]}")
                        self.direct.add(buffer_of[v][0])
                    else:
                        self.emit(f"{self.var(v)} = np.empty({tuple(shape)!r}, {_np_dtype(dtype)})")
                    self.fresh.add(v)
                    outs.append(self.var(v))
                ins = [self.var(windows[v][0]) if v in spec.windowed else self.contiguous(v) for v in spec.array_inputs]
                ins += [self.scalar(v) for v in spec.scalar_inputs]
                sizes = [str(s) for s in spec.sizes]
                n0 = spec.sizes[0] if spec.sizes else 1
                kp = "__KP__" if kname in self.module.native_names else ""
                self.emit(f"{kname}({kp}{', '.join(outs + ins + sizes + ['0', str(n0)])})")
            else:
                eqn = item
                self.emit("# " + self._eqn_doc(eqn, _fmt_params))
                rule = _EMITTERS.get(eqn.primitive.name)
                if rule is None:
                    raise NotLowerable(f"{eqn.primitive.name} has no numba loop translation")
                rule(self, eqn)
        rets = []
        # outputs a kernel wrote into their buffer are not returned (no array to pass back)
        self.returned = [k for k in range(nout) if k not in self.direct]
        for k, a in enumerate(jaxpr.outvars):
            if k in self.direct:
                continue
            if type(a) is Literal:
                rets.append(_literal(a.val, a.aval.dtype))
            elif a in self.fresh or k not in owned:
                rets.append(self.var(a))
            else:  # an argument or a view: copy, so loop-carried types stay fresh C arrays
                rets.append(_owned(self.var(a), a.aval))
        self.emit(f"return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
        params += [name for _, name, *_ in self.packed]
        head = f"{_DECORATOR}\ndef {self.name}(__KP__{', '.join(params)}):"
        self.module.defs.append("\n".join([head] + self.lines))
        return self.name

    def _scatter_targets(self):
        """``{piece: (scatter result, row length, column offset)}`` for the pieces of covering
        scatters of 2-D values (:func:`_scatter_sum`) that are column blocks computed by a
        fused kernel and used nowhere else: the kernel writes them into the result in place."""
        from ..core.jaxpr import use_counts

        kernel_outputs = {v for kind, item in self.plan.steps if kind == "group" for v in item.outputs}
        uses = use_counts(self.jaxpr.eqns, self.jaxpr.outvars, output_weight=2)
        found = {}
        for e in self.jaxpr.eqns:
            out = e.outvars[0]
            if e.primitive is not _scatter_sum_p or out.aval.ndim != 2 or not _covers(e):
                continue
            rows, width = out.aval.shape
            for spec, u in zip(e.params["specs"], e.invars):
                box = _unit_box(spec, out.aval.shape)
                if (
                    type(u) is Var
                    and u in kernel_outputs
                    and uses.get(u) == 1
                    and rows > 1
                    and box is not None
                    and box[0] == (0, rows)
                    and tuple(u.aval.shape) == (rows, box[1][1] - box[1][0])
                ):
                    found[u] = (out, width, box[1][0])
        return found

    def scatter_base(self, out):
        """The name of scatter result ``out``, allocated here on first use (a stacked output's
        buffer where it is one)."""
        o = self.var(out)
        if out not in self.allocated:
            self.allocated.add(out)
            if out in self.buffer_of:
                index, buffer = self.buffer_of[out]
                self.emit(f"{o} = {buffer}")
                self.direct.add(index)
            else:
                self.emit(f"{o} = np.empty({tuple(out.aval.shape)!r}, {_np_dtype(out.aval.dtype)})")
        return o

    def _eqn_doc(self, eqn, fmt_params):
        lhs = " ".join(f"{self.var(v)}:{v.aval.str_short()}" for v in eqn.outvars)
        rhs = " ".join(self.var(a) if type(a) is not Literal else repr(np.asarray(a.val).item()) for a in eqn.invars)
        params = {k: v for k, v in eqn.params.items() if not _is_program(v)}
        return f"{lhs} = {eqn.primitive.name}{fmt_params(params)} {rhs}"

    def outputs(self, eqn, call):
        """Emit ``outs = call`` for a multiple-result call (its results are fresh arrays)."""
        outs = [self.var(v) for v in eqn.outvars]
        if outs:
            self.emit(f"{', '.join(outs)}{',' if len(outs) == 1 else ''} = {call}")
        else:
            self.emit(call)
        self.fresh.update(eqn.outvars)


def _is_program(v):
    return isinstance(v, (ClosedJaxpr, Jaxpr)) or (
        isinstance(v, tuple) and v and all(isinstance(b, (ClosedJaxpr, Jaxpr)) for b in v)
    )


# -- a rewrite of loop bodies ----------------------------------------------------------------------

# Sums of pieces scattered into zeros, ``zeros.at[s1].add(a) + zeros.at[s2].add(b) + ...`` over
# disjoint slices: the cotangent of slicing one array into parts (an LSTM's four gates). One
# buffer takes every piece instead of one zero-filled copy per piece plus their sum; the values
# are the same (each element is ``0 + piece``, as before).
# A marker for the generated code only: it never leaves this module (never bound or evaluated),
# so it carries no transformation rules.
_scatter_sum_p = Primitive("scatter_sum_of_slices", multiple_results=False)


def _basic_index(spec):
    return all(e[0] in "si" for e in spec)


def _merge_zero_scatters(jaxpr: Jaxpr, const_values) -> Jaxpr:
    from ..core.jaxpr import JaxprEqn, use_counts

    uses = use_counts(jaxpr.eqns, jaxpr.outvars, output_weight=2)  # outputs are never merged away
    pieces = {}  # Var -> [(spec, update Var)] of a zero array it is the sum of
    dropped = set()
    merged_at = {}  # id(add eqn) -> new eqn
    for e in jaxpr.eqns:
        name = e.primitive.name
        if name == "index_update" and e.params["op"] == "add" and len(e.invars) == 2 and _basic_index(e.params["spec"]):
            z = e.invars[0]
            val = const_values.get(z) if type(z) is Var else None
            if val is not None and not np.any(np.asarray(val)):
                pieces[e.outvars[0]] = [(e.params["spec"], e.invars[1], e)]
        elif name in ("add", "add_any") and all(type(a) is Var and a in pieces and uses[a] == 1 for a in e.invars):
            a, b = e.invars
            if a is b:
                continue
            merged = pieces[a] + pieces[b]
            mask = np.zeros(e.outvars[0].aval.shape, np.int8)
            for spec, _, _ in merged:
                mask[_slices(spec)] += 1
            if mask.max() > 1:  # overlapping pieces: keep the sums as they are
                continue
            pieces[e.outvars[0]] = merged
            for v in (a, b):
                src = pieces.pop(v)
                dropped.update(id(x) for _, _, x in src)
                for eq in list(merged_at):
                    if merged_at[eq].outvars[0] is v:
                        dropped.add(eq)
            out = e.outvars[0]
            specs = tuple(spec for spec, _, _ in merged)
            merged_at[id(e)] = JaxprEqn(_scatter_sum_p, [u for _, u, _ in merged], {"specs": specs}, [out])
    if not merged_at:
        return jaxpr
    eqns = []
    for e in jaxpr.eqns:
        if id(e) in merged_at and id(e) not in dropped:
            eqns.append(merged_at[id(e)])
        elif id(e) not in dropped and id(e) not in merged_at:
            eqns.append(e)
    return Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars, eqns)


def _slices(spec):
    return tuple(slice(e[1], e[2], e[3]) if e[0] == "s" else e[1] for e in spec)


def _scatter_sum(fb, eqn):
    """The pieces (disjoint, see _merge_zero_scatters) written into a zero array; where they
    cover it, into an uninitialised one. A piece that is a unit-step box is copied by a loop nest
    (numba compiles it to vector copies; its slice assignment is an element-wise broadcasting
    loop several times slower)."""
    out = eqn.outvars[0]
    shape = tuple(out.aval.shape)
    if _covers(eqn):  # uninitialised (a stacked output: written in place, ys[i])
        o = fb.scatter_base(out)
    else:
        o = fb.var(out)
        fb.emit(f"{o} = np.zeros({shape!r}, {_np_dtype(out.aval.dtype)})")
    for spec, u in zip(eqn.params["specs"], eqn.invars):
        if u in fb.written:  # its kernel wrote it in place
            continue
        box = _unit_box(spec, shape) if u.aval.shape else None
        if box is None or tuple(u.aval.shape) != tuple(stop - start for start, stop in box):
            val = fb.scalar(u) if not u.aval.shape else fb.atom(u)
            fb.emit(f"{o}[{_index_text(spec)}] = {val}")
            continue
        src, ks = fb.atom(u), [fb.module.fresh_name("j") for _ in box]
        for depth, (k, (start, stop)) in enumerate(zip(ks, box)):
            fb.emit(" " * 4 * depth + f"for {k} in range({stop - start}):")
        dst = ", ".join(f"{start} + {k}" for k, (start, _) in zip(ks, box))
        fb.emit(" " * 4 * len(box) + f"{o}[{dst}] = {src}[{', '.join(ks)}]")
    fb.fresh.add(out)


def _covers(eqn):
    """Whether a scatter's pieces (disjoint) cover its whole result."""
    total = sum(int(np.prod(u.aval.shape, dtype=np.int64)) for u in eqn.invars)
    return total == int(np.prod(eqn.outvars[0].aval.shape, dtype=np.int64))


def _unit_box(spec, shape):
    """``[(start, stop)]`` per axis of ``shape`` when ``spec`` is unit-step slices (trailing axes
    whole), else None."""
    if len(spec) > len(shape) or any(e[0] != "s" for e in spec):
        return None
    box = []
    for k, dim in enumerate(shape):
        start, stop, step = slice(*spec[k][1:]).indices(dim) if k < len(spec) else (0, dim, 1)
        if step != 1 or stop <= start:
            return None
        box.append((start, stop))
    return box


# -- translations of single equations -------------------------------------------------------------


def _out(fb, eqn, expr, fresh=False):
    fb.emit(f"{fb.var(eqn.outvars[0])} = {expr}")
    if fresh:
        fb.fresh.add(eqn.outvars[0])


def _reshape(fb, eqn, **_):
    shape = eqn.outvars[0].aval.shape
    _out(fb, eqn, f"{fb.contiguous(eqn.invars[0])}.reshape({tuple(shape)!r})")


def _broadcast_in_dim(fb, eqn):
    x = eqn.invars[0]
    shape = tuple(eqn.params["shape"])
    dims = eqn.params["broadcast_dimensions"]
    expanded = [1] * len(shape)
    for d, n in zip(dims, x.aval.shape):
        expanded[d] = n
    o = fb.var(eqn.outvars[0])
    fb.emit(f"{o} = np.empty({shape!r}, {_np_dtype(x.aval.dtype)})")
    if len(x.aval.shape) == 0:
        fb.emit(f"{o}[...] = {fb.scalar(x)}")
    else:
        fb.emit(f"{o}[...] = np.broadcast_to({fb.contiguous(x)}.reshape({tuple(expanded)!r}), {shape!r})")
    fb.fresh.add(eqn.outvars[0])


def _transpose(fb, eqn):
    perm = tuple(eqn.params["permutation"])
    _out(fb, eqn, f"np.ascontiguousarray(np.transpose({fb.atom(eqn.invars[0])}, {perm!r}))")


def _copy(fb, eqn):
    _out(fb, eqn, _owned(fb.atom(eqn.invars[0]), eqn.invars[0].aval), fresh=True)


def _slot_lines(target, arrays=(), values=(), base=None):
    """Source lines storing into consecutive words of the int64 array ``target`` (from index
    ``base``, an expression, or 0): each of ``arrays`` as its data pointer and size, then each of
    ``values`` (expressions) as it is: the slots a native entry point reads."""
    words = [w for a in arrays for w in (f"{a}.ctypes.data", f"{a}.size")] + list(values)
    index = (lambda k: f"{base} + {k}" if k else base) if base else str
    return [f"    {target}[{index(k)}] = {w}" for k, w in enumerate(words)]


def _native_kernel_call_source(name, pointer, spec):
    """An @njit function filling a native kernel's slots (data pointer and size per array, the
    loop sizes, lo, hi; see llvmgen.entry_ir) and calling its entry point ``pointer``."""
    arrays = [f"o{k}" for k in range(len(spec.outputs))] + [f"a{k}" for k in range(len(spec.array_inputs))]
    sizes = [f"n{k}" for k in range(len(spec.sizes))]
    lines = [f"{_DECORATOR}", f"def {name}(__KP__{', '.join(arrays + sizes + ['lo', 'hi'])}):"]
    lines.append("    slots = SL  # this call's scratch (see _CompiledLoop._leading)")
    lines += _slot_lines("slots", arrays, sizes + ["lo", "hi"])
    lines.append(f"    {pointer}(slots.ctypes.data)")
    return "\n".join(lines) + "\n"


def _gemm_helper_source(name, dt, nr):
    """An @njit function calling funcgrad.jit.gemm's serial or parallel entry point for
    ``c = op(a) @ op(b)`` (the slots its trampoline would fill, see gemm._module); it splits
    as :func:`funcgrad.jit.gemm.splits` does."""
    from .gemm import PARALLEL_WORK, ROW_STRIP

    fill = "\n".join(_slot_lines("slots", ["c", "a", "b", f"Gw_{dt}"]))
    return f"""{_DECORATOR}
def {name}(__KP__c, a, b, n, m, k, flags):
    slots = SL
{fill}
    parallel = m * n * k >= {PARALLEL_WORK} and max(n // {nr}, m // {ROW_STRIP}) >= 2 and Gst.size > 0
    at = 8
    if parallel:  # the workers' state words come before the sizes
        slots[8] = Gst.ctypes.data
        slots[9] = Gst.size
        at = 10
    slots[at] = n
    slots[at + 1] = m
    slots[at + 2] = k
    slots[at + 3] = flags
    slots[at + 4] = 0
    slots[at + 5] = n
    if parallel:
        Gp_{dt}(slots.ctypes.data)
    else:
        Gs_{dt}(slots.ctypes.data)
"""


def _pack_helper_source(name, dt):
    """An @njit function packing ``b`` (``k x n``, or ``n x k`` stored when ``trans``) into ``out``
    with funcgrad.jit.gemm's ``gemm_pack`` entry."""
    fill = "\n".join(_slot_lines("slots", ["out", "b"], ["k", "n", "trans"]))
    return f"""{_DECORATOR}
def {name}(__KP__out, b, k, n, trans):
    slots = SL
{fill}
    Gk_{dt}(slots.ctypes.data)
"""


def _async_helpers_source(dt, workspace, itemsize):
    """@njit helpers posting whole products to the worker pool while the loop runs on
    (funcgrad.jit.gemm's ``gemm_post``/``gemm_join`` entries): ``block_<dt>`` writes the slots of
    block ``q`` of ``job`` (``c (+)= op(a) @ op(b)``, with the workspace part after the workers'
    ones), ``post_<dt>`` posts the first ``nq`` blocks (False: the pool was busy and they ran
    here), ``join_<dt>`` waits for them."""
    block = "\n".join(
        _slot_lines(
            "job",
            ["c", "a", "b"],
            [f"Gw_{dt}.ctypes.data + part * {workspace * itemsize}", workspace, "n", "m", "k", "flags", 0, "n", 0, "m"],
            base="at",
        )
    )
    post = "\n".join(_slot_lines("slots", (), ["Gst.ctypes.data", "job.ctypes.data", "nq"]))
    join = "\n".join(_slot_lines("slots", (), ["Gst.ctypes.data", "nq"]))
    return f"""{_DECORATOR}
def block_{dt}(__KP__job, q, c, a, b, n, m, k, flags):
    at = 16 * q
    part = Gst[9] + 1 + q
{block}


{_DECORATOR}
def post_{dt}(__KP__job, nq):
    slots = SL
{post}
    return Ga_{dt}(slots.ctypes.data) != 0


{_DECORATOR}
def join_{dt}(__KP__nq):
    slots = SL
{join}
    Gj_{dt}(slots.ctypes.data)
"""


def _gemm_product(eqn):
    """``(product, trans_a, trans_b, m, k, n)`` for a dot_general of 2-D operands inside a loop
    that funcgrad.jit.gemm runs (:func:`funcgrad.jit.gemm.takes`), or None for ``np.dot``."""
    from . import gemm
    from .lowering import matmul_plan

    x, y = eqn.invars
    plan = matmul_plan(eqn) if x.aval.ndim == 2 and y.aval.ndim == 2 else None
    if plan is None:
        return None
    prod = gemm.takes(np.dtype(x.aval.dtype), *plan[2:])
    return None if prod is None else (prod, *plan)


def _dot_general(fb, eqn):
    """``np.dot`` (BLAS) for products of vectors and matrices, or funcgrad.jit.gemm's product
    for large enough 2-D ones; with one leading batch axis on both operands, a loop of np.dot."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, y = eqn.invars
    pet = eqn.params.get("preferred_element_type")
    dt = x.aval.dtype
    batched = tuple(lb) == (0,) and tuple(rb) == (0,)
    nb = int(batched)
    if (
        not (batched or (not lb and not rb))
        or len(lc) != 1
        or x.aval.ndim - nb not in (1, 2)
        or y.aval.ndim - nb not in (1, 2)
        or dt != y.aval.dtype
        or np.dtype(dt).kind != "f"
        or (pet is not None and np.dtype(pet) != dt)
    ):
        raise NotLowerable(
            f"dot_general{eqn.params['dimension_numbers']} on {x.aval.str_short()} x {y.aval.str_short()}"
        )
    a, b = fb.contiguous(x), fb.contiguous(y)
    found = None if batched else _gemm_product(eqn)
    if found is not None:
        from .gemm import KC, NC

        product, ta, tb, m, k, n = found
        helper = fb.module.gemm(product)
        o = fb.var(eqn.outvars[0])
        flags = 1 + ta + 2 * tb
        if y in fb.invariant and k <= KC and n <= NC:  # the loop's weights: packed once, before it
            b, flags = fb.packed_operand(y, tb, k, n, product), flags + 8
        fb.emit(f"{o} = np.empty(({m}, {n}), {_np_dtype(dt)})")
        fb.emit(f"{helper}(__KP__{o}, {a}, {b}, {n}, {m}, {k}, {flags})")
        fb.fresh.add(eqn.outvars[0])
        return
    if batched:
        k = fb.module.fresh_name("b")
        a, b = f"{a}[{k}]", f"{b}[{k}]"
    # np.dot contracts the last axis of a with the first (or only) axis of b.
    if x.aval.ndim - nb == 2 and lc[0] == nb:
        a += ".T"
    if y.aval.ndim - nb == 2 and rc[0] == nb + 1:
        b += ".T"
    if not batched:
        _out(fb, eqn, f"np.dot({a}, {b})", fresh=True)
        return
    out = eqn.outvars[0]
    o = fb.var(out)
    fb.emit(f"{o} = np.empty({tuple(out.aval.shape)!r}, {_np_dtype(out.aval.dtype)})")
    fb.emit(f"for {k} in range({out.aval.shape[0]}):")
    fb.emit(f"    {o}[{k}] = np.dot({a}, {b})")
    fb.fresh.add(out)


def _index_text(spec, new_axes=False):
    """Source of a basic index (slices and integers; new axes skipped if ``new_axes``), or None
    for index arrays."""
    parts = []
    for e in spec:
        if e[0] == "s":
            parts.append(
                ":".join("" if v is None else repr(int(v)) for v in e[1:3]) + ("" if e[3] is None else f":{e[3]}")
            )
        elif e[0] == "i":
            parts.append(repr(int(e[1])))
        elif e[0] != "n" or not new_axes:
            return None
    return ", ".join(parts) if parts else "()"


def _getitem(fb, eqn):
    spec = eqn.params["spec"]
    idx = _index_text(spec, new_axes=True) if len(eqn.invars) == 1 else None
    if idx is None:
        raise NotLowerable("getitem with index arrays")
    out = eqn.outvars[0]
    x = fb.atom(eqn.invars[0])
    if not out.aval.shape:
        _out(fb, eqn, f"np.asarray({x}[{idx}])", fresh=True)
    elif any(e[0] == "n" for e in spec):  # index, then add the new unit axes by a reshape
        _out(fb, eqn, f"np.ascontiguousarray({x}[{idx}]).reshape({tuple(out.aval.shape)!r})")
    else:
        _out(fb, eqn, f"{x}[{idx}]")


_UPDATE = {"set": "{v}", "add": "{o}[{i}] + {v}", "mul": "{o}[{i}] * {v}", "min": "np.minimum({o}[{i}], {v})",
           "max": "np.maximum({o}[{i}], {v})"}  # fmt: skip


def _index_update(fb, eqn):
    spec, op = eqn.params["spec"], eqn.params["op"]
    idx = _index_text(spec) if len(eqn.invars) == 2 else None
    if idx is None or op not in _UPDATE:
        raise NotLowerable(f"index_update[op={op}] with index arrays or new axes")
    x, v = eqn.invars
    o = fb.var(eqn.outvars[0])
    val = fb.scalar(v) if not v.aval.shape else fb.atom(v)
    fb.emit(f"{o} = {_owned(fb.atom(x), x.aval)}")
    fb.emit(f"{o}[{idx}] = " + _UPDATE[op].format(o=o, i=idx, v=val))
    fb.fresh.add(eqn.outvars[0])


def _slice(fb, eqn):
    p = eqn.params
    strides = p.get("strides") or (1,) * len(p["start_indices"])
    idx = ", ".join(f"{a}:{b}:{s}" for a, b, s in zip(p["start_indices"], p["limit_indices"], strides))
    _out(fb, eqn, f"{fb.atom(eqn.invars[0])}[{idx}]")


def _pad(fb, eqn):
    x, pv = eqn.invars
    cfg = eqn.params["padding_config"]
    if any(lo < 0 or hi < 0 or interior for lo, hi, interior in cfg):
        raise NotLowerable("pad with negative or interior padding")
    shape = eqn.outvars[0].aval.shape
    o = fb.var(eqn.outvars[0])
    fb.emit(f"{o} = np.full({tuple(shape)!r}, {fb.scalar(pv)}, {_np_dtype(x.aval.dtype)})")
    idx = ", ".join(f"{lo}:{lo + n}" for (lo, _, _), n in zip(cfg, x.aval.shape))
    if x.aval.shape:
        fb.emit(f"{o}[{idx}] = {fb.atom(x)}")
    else:
        fb.emit(f"{o}[()] = {fb.scalar(x)}")
    fb.fresh.add(eqn.outvars[0])


def _concatenate(fb, eqn):
    parts = ", ".join(fb.contiguous(a) for a in eqn.invars)
    _out(fb, eqn, f"np.concatenate(({parts},), axis={int(eqn.params['dimension'])})", fresh=True)


def _clamped_starts(fb, starts, shape, sizes):
    """Emit the start indices clamped as ``lax.dynamic_slice`` does; return their names."""
    names = []
    for s, n, k in zip(starts, shape, sizes):
        name = fb.module.fresh_name("start")
        fb.emit(f"{name} = min(max(int({fb.scalar(s)}), 0), {n - k})")
        names.append(name)
    return names


def _dynamic_slice(fb, eqn):
    x, *starts = eqn.invars
    sizes = eqn.params["slice_sizes"]
    names = _clamped_starts(fb, starts, x.aval.shape, sizes)
    idx = ", ".join(f"{n}:{n} + {k}" for n, k in zip(names, sizes))
    _out(fb, eqn, f"{fb.atom(x)}[{idx}]" if idx else fb.atom(x))


def _dynamic_update_slice(fb, eqn):
    x, u, *starts = eqn.invars
    o = fb.var(eqn.outvars[0])
    fb.emit(f"{o} = {_owned(fb.atom(x), x.aval)}")
    if not u.aval.shape:
        fb.emit(f"{o}[()] = {fb.scalar(u)}")
    else:
        names = _clamped_starts(fb, starts, x.aval.shape, u.aval.shape)
        idx = ", ".join(f"{n}:{n} + {k}" for n, k in zip(names, u.aval.shape))
        fb.emit(f"{o}[{idx}] = {fb.atom(u)}")
    fb.fresh.add(eqn.outvars[0])


def _arg_reduction(fb, eqn):
    x = eqn.invars[0]
    axis = int(eqn.params["axis"])
    fn = "np.argmax" if eqn.primitive.name == "argmax" else "np.argmin"
    dt = _np_dtype(eqn.outvars[0].aval.dtype)
    if x.aval.ndim == 1:
        _out(fb, eqn, f"np.full((), {fn}({fb.atom(x)}), {dt})", fresh=True)
    else:
        _out(fb, eqn, f"{fn}({fb.contiguous(x)}, axis={axis}).astype({dt})", fresh=True)


def _rev(fb, eqn):
    x = eqn.invars[0]
    dims = set(eqn.params["dimensions"])
    idx = ", ".join("::-1" if d in dims else ":" for d in range(x.aval.ndim))
    _out(fb, eqn, f"{fb.atom(x)}[{idx}]" if idx else fb.atom(x))


_FULL_REDUCTIONS = {"reduce_and": "np.all", "reduce_or": "np.any", "reduce_prod": "np.prod",
                    "reduce_sum": "np.sum", "reduce_max": "np.max", "reduce_min": "np.min"}  # fmt: skip


def _reduction(fb, eqn):
    """Reductions outside fused groups (booleans, products): over every axis only."""
    x = eqn.invars[0]
    if tuple(sorted(eqn.params["axes"])) != tuple(range(x.aval.ndim)) or not x.aval.shape:
        raise NotLowerable(f"{eqn.primitive.name} over some of the axes of a {x.aval.str_short()} value")
    dt = _np_dtype(eqn.outvars[0].aval.dtype)
    _out(fb, eqn, f"np.full((), {_FULL_REDUCTIONS[eqn.primitive.name]}({fb.atom(x)}), {dt})", fresh=True)


def _scan(fb, eqn):
    call = _scan_driver(fb.module, eqn)
    fb.outputs(eqn, f"{call}(__KP__{', '.join(fb.atom(a) for a in eqn.invars)})")


def _while(fb, eqn):
    call = _while_driver(fb.module, eqn)
    fb.outputs(eqn, f"{call}(__KP__{', '.join(fb.atom(a) for a in eqn.invars)})")


def _cond(fb, eqn):
    call = _cond_driver(fb.module, eqn)
    fb.outputs(eqn, f"{call}(__KP__{', '.join(fb.atom(a) for a in eqn.invars)})")


_EMITTERS = {
    "reshape": _reshape,
    "squeeze": _reshape,
    "expand_dims": _reshape,
    "broadcast_in_dim": _broadcast_in_dim,
    "transpose": _transpose,
    "copy": _copy,
    "dot_general": _dot_general,
    "getitem": _getitem,
    "index_update": _index_update,
    "scatter_sum_of_slices": _scatter_sum,
    "slice": _slice,
    "pad": _pad,
    "concatenate": _concatenate,
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "rev": _rev,
    **{name: _reduction for name in _FULL_REDUCTIONS},
    "argmax": _arg_reduction,
    "argmin": _arg_reduction,
    "scan": _scan,
    "while": _while,
    "cond": _cond,
}


# -- drivers -------------------------------------------------------------------------------------

_DECORATOR = "@njit(cache=True, nogil=True, error_model='numpy', boundscheck=False)"


def _owned(name, aval):
    """A loop-carried value as a fresh writable C array (arguments may be read-only views)."""
    return f"np.ascontiguousarray({name}).copy()" if aval.shape else f"{name}.copy()"


def _contiguous_once(lines, eqn, args, *groups):
    """Driver lines making the array operands named in ``groups`` (lists of names from ``args``,
    renamed in place) C arrays once, before the loop: not a strided copy per step where the body
    needs them contiguous (a broadcast bias is a view with zero strides)."""
    for group in groups:
        for j, a in enumerate(group):
            if eqn.invars[args.index(a)].aval.shape:
                lines.append(f"    {a}c = np.ascontiguousarray({a})")
                group[j] = f"{a}c"


def _scan_driver(module: _Module, eqn, sums=()) -> str:
    """The driver of a scan. ``sums``: :class:`_LoopSum` products the driver accumulates itself
    (their initial values are extra trailing arguments, their totals extra trailing results)."""
    p = eqn.params
    nconst, ncarry, length = p["num_consts"], p["num_carry"], p["length"]
    y_avals = [v.aval for v in eqn.outvars[ncarry:]]
    # Stacked outputs of rank >= 1 per step are written by the body's kernels straight into ys[i].
    nbuf = len(y_avals) if all(len(a.shape) > 1 for a in y_avals) else 0
    builder = _FunctionBuilder(module, p["jaxpr"], "scan_body", num_invariant=nconst)
    body = builder.build(owned=range(ncarry), buffers=nbuf)
    args = [f"a{i}" for i in range(len(eqn.invars))]
    consts, carry, xs = args[:nconst], args[nconst : nconst + ncarry], args[nconst + ncarry :]
    name = module.fresh_name("scan")
    lines = [f"{_DECORATOR}\ndef {name}(__KP__{', '.join(args)}):"]
    cs = [f"c{j}" for j in range(ncarry)]
    for c, a, v in zip(cs, carry, eqn.invars[nconst : nconst + ncarry]):
        lines.append(f"    {c} = {_owned(a, v.aval)}")
    _contiguous_once(lines, eqn, args, consts, xs)
    ys = [f"y{j}" for j in range(len(y_avals))]
    for y, aval in zip(ys, y_avals):
        lines.append(f"    {y} = np.empty({tuple(aval.shape)!r}, {_np_dtype(aval.dtype)})")
    sums_text = _LoopSum.driver_lines(module, sums, xs, ys, length, p["reverse"]) if sums else None
    if sums_text is not None:
        lines[0] = lines[0][:-2] + "".join(f", z{q}" for q in range(len(sums))) + "):"
        lines += sums_text[0]
    const_names = dict(zip(builder.jaxpr.invars[:nconst], consts))
    for v, packed, trans_b, k, n, product in builder.packed:  # loop-invariant B operands, packed once
        nr = product.profile.nr
        src = const_names.get(v) or builder.names[v]
        lines.append(f"    {packed} = np.empty({k * (-(-n // nr)) * nr}, {_np_dtype(product.profile.dtype)})")
        lines.append(f"    {module.gemm_pack(product)}(__KP__{packed}, {src}, {k}, {n}, {int(trans_b)})")
    lines.append(f"    for k in range({length}):")
    lines.append(f"        i = {length - 1} - k" if p["reverse"] else "        i = k")
    x_reads = [
        f"{x}[i]" if len(v.aval.shape) > 1 else f"np.asarray({x}[i])" for x, v in zip(xs, eqn.invars[nconst + ncarry :])
    ]
    buffers = [f"{y}[i]" for y in ys] if nbuf else []
    buffers += [name for _, name, *_ in builder.packed]
    lines.append(f"        out = {body}(__KP__{', '.join(consts + cs + x_reads + buffers)})")
    at = {k: i for i, k in enumerate(builder.returned)}  # output index -> position in `out`
    for j, c in enumerate(cs):
        lines.append(f"        {c} = out[{at[j]}]")
    for j, (y, aval) in enumerate(zip(ys, y_avals)):
        if ncarry + j in builder.direct:
            continue
        if len(aval.shape) == 1:
            lines.append(f"        {y}[i] = out[{at[ncarry + j]}][()]")
        else:  # numba's array assignment is an element-wise broadcasting loop: a vector copy instead
            lines.append(f"        {module.copy_helper()}({y}[i], out[{at[ncarry + j]}])")
    rets = cs + ys
    if sums_text is not None:
        lines += sums_text[1] + sums_text[2]
        rets += [f"acc{q}" for q in range(len(sums))]
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    module.defs.append("\n".join(lines))
    return name


def _while_driver(module: _Module, eqn) -> str:
    p = eqn.params
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    cond = _FunctionBuilder(module, p["cond_jaxpr"], "while_cond").build(owned=())
    body = _FunctionBuilder(module, p["body_jaxpr"], "while_body").build()
    args = [f"a{i}" for i in range(len(eqn.invars))]
    cc, bc, carry = args[:ncc], args[ncc : ncc + nbc], args[ncc + nbc :]
    name = module.fresh_name("while_loop")
    cs = [f"c{j}" for j in range(len(carry))]
    lines = [f"{_DECORATOR}\ndef {name}(__KP__{', '.join(args)}):"]
    for c, a, v in zip(cs, carry, eqn.invars[ncc + nbc :]):
        lines.append(f"    {c} = {_owned(a, v.aval)}")
    _contiguous_once(lines, eqn, args, cc, bc)
    lines.append(f"    while {cond}(__KP__{', '.join(cc + cs)})[0][()]:")
    lines.append(f"        out = {body}(__KP__{', '.join(bc + cs)})")
    for j, c in enumerate(cs):
        lines.append(f"        {c} = out[{j}]")
    lines.append(f"    return ({', '.join(cs)}{',' if len(cs) == 1 else ''})")
    module.defs.append("\n".join(lines))
    return name


def _cond_driver(module: _Module, eqn) -> str:
    branches = eqn.params["branches"]
    names = [_FunctionBuilder(module, b, f"branch{j}").build() for j, b in enumerate(branches)]
    args = [f"a{i}" for i in range(len(eqn.invars))]
    name = module.fresh_name("cond")
    ops = ", ".join(args[1:])
    lines = [f"{_DECORATOR}\ndef {name}(__KP__{', '.join(args)}):", "    i = a0[()]"]
    for j, b in enumerate(names):
        if j == 0:
            test = "    if i <= 0:" if len(names) > 1 else None
        elif j == len(names) - 1:
            test = "    else:"
        else:
            test = f"    elif i == {j}:"
        if test is None:
            lines.append(f"    return {b}(__KP__{ops})")
        else:
            lines += [test, f"        return {b}(__KP__{ops})"]
    module.defs.append("\n".join(lines))
    return name


# -- entry point --------------------------------------------------------------------------------


def lower_control_flow(eqn):
    """A callable ``fn(*operands) -> tuple of arrays`` running ``eqn`` (a ``scan``, ``while`` or
    ``cond`` equation) as one compiled numba loop, or None when its body uses something without
    a numba translation (the executor then calls the primitive's impl; the reason is logged
    when ``log_compiles`` is on).

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> from funcgrad import lax
        >>> f = fg.jit(lambda x: lax.fori_loop(0, 3, lambda i, c: c * 2.0, x))
        >>> f(fnp.ones(2))  # the loop runs inside one compiled function
        Array([8., 8.], dtype=float32)
    """
    name = eqn.primitive.name
    if name not in CONTROL_FLOW:
        return None
    if name == "scan":
        rewritten = _RewrittenScan.of(eqn)
        if rewritten is not None:
            return rewritten
    return _compile_loop(eqn)


def _compile_loop(eqn, sums=()):
    name = eqn.primitive.name
    module = _Module()
    try:
        _check_dtypes([a.aval for a in eqn.invars] + [v.aval for v in eqn.outvars], name)
        if name == "scan":
            driver = _scan_driver(module, eqn, sums)
        else:
            driver = {"while": _while_driver, "cond": _cond_driver}[name](module, eqn)
    except NotLowerable as e:
        if config.log_compiles:
            logger.warning("%s stays a Python-level loop in jitted code: %s", name, e)
        return None
    source = module.source()
    key = hashlib.sha256(source.encode()).hexdigest()[:32]
    return _CompiledLoop(
        name,
        key,
        source,
        driver,
        module.consts,
        eqn,
        list(module.products.values()),
        list(module.native_kernels.values()),
        sums,
        module.async_blocks,
        module.slots,
    )


_NO_POOL = np.zeros(0, np.int64)  # the pool state passed where there are no workers


def _contract(fa, fb, axes):
    """``np.tensordot(fa, fb, axes)``; when the contracted axes lead both operands (the stacked
    factors of a sunk accumulator: steps, then batch), one ``fa.T @ fb`` product through
    funcgrad.jit.gemm."""
    from .gemm import matmul

    ax_a, ax_b = (tuple(ax) for ax in axes)
    n = len(ax_a)
    if ax_a != tuple(range(n)) or ax_b != tuple(range(n)) or fa.ndim == n or fb.ndim == n:
        return np.tensordot(fa, fb, axes=axes)
    k = int(np.prod(fa.shape[:n]))
    a = np.ascontiguousarray(fa).reshape(k, -1)
    b = np.ascontiguousarray(fb).reshape(k, -1)
    return matmul(a, b, True, False).reshape(fa.shape[n:] + fb.shape[n:])


class _CompiledLoop:
    """Calls the loop module's driver, loading and compiling it on first use (numba, disk-cached);
    runs the primitive's impl instead if numba rejects the generated code."""

    def __init__(
        self, what, key, source, driver, consts, eqn, products=(), kernel_entries=(), sums=(), async_blocks=0, slots=16
    ):
        self.what, self.key, self.source, self.driver_name = what, key, source, driver
        self.slots = slots  # words of the per-call scratch for the native entry points' slots
        self.sums = tuple(sums)  # _LoopSum products the driver accumulates (extra arguments and results)
        self.async_blocks = async_blocks  # workspace parts for products posted to the workers
        self.consts = tuple(consts)
        self.kernel_entries = tuple(kernel_entries)
        self.eqn = eqn
        self.products = tuple(products)
        # without matrix products the leading arguments are the same for every call
        self.fixed_leading = None if self.products else self.consts + self.kernel_entries
        self.driver = None
        self.fallback = None

    def _leading(self):
        """The constants, what the module's matrix products need in this thread, the native
        kernels' entry points and this call's slots scratch (the order of ``_Module.source``'s
        parameters)."""
        scratch = np.empty(self.slots, np.int64)
        if self.fixed_leading is not None:
            return (*self.fixed_leading, scratch)
        from .gemm import _workspace

        out = list(self.consts)
        pool = self.products[0].pool
        parts = (pool.count + 1 + self.async_blocks) if pool else 1
        for prod in self.products:
            out += [*prod.entry_pointers, _workspace(prod.profile, parts)]
        out.append(pool.state if pool is not None else _NO_POOL)
        out += self.kernel_entries
        out.append(scratch)
        return out

    def __call__(self, *args):
        if self.driver is not None:
            return self.driver(*self._leading(), *args)
        if self.fallback is not None:
            return self.fallback(*args)
        return self._first_call(args)

    def _first_call(self, args):
        from numba.core.errors import NumbaError

        from . import kernels as kernel_lib
        from .executor import _array_call

        start = time.perf_counter()
        with kernel_lib._lock:
            driver = getattr(kernel_lib._load_module("loop_" + self.key, self.source), self.driver_name)
            try:
                out = driver(*self._leading(), *args)
            except NumbaError as e:
                logger.warning("%s: numba rejected the generated loop (%s); it runs from Python", self.what, e)
                impl = _array_call(self.eqn.primitive, self.eqn.params)
                self.fallback = impl if not self.sums else lambda *a: _LoopSum.run_after(self.eqn, self.sums, impl, a)
                return self.fallback(*args)
        self.driver = driver
        if config.log_compiles:
            how = "Loaded" if sum(driver.stats.cache_hits.values()) else "Compiled"
            where = " from the disk cache" if how == "Loaded" else ""
            elapsed = time.perf_counter() - start
            logger.warning("%s the %s loop module %s%s in %.3f s", how, self.what, self.key[:12], where, elapsed)
        return out


class _LoopSum:
    """A sunk accumulator (:func:`funcgrad.jit.scan_rewrite.sink_accumulators`) whose product the
    loop module computes itself: ``acc (+)= A.T @ B`` over the rows of the stacked factors
    (``A``: ``(length * rows, m)``, ``B``: ``(length * rows, n)``). Every ``chunk`` steps the rows
    of the steps just finished are handed to a worker thread (funcgrad.jit.gemm's posted
    products) while the loop runs on, so on a machine with a spare core the weight gradients of
    a recurrent network cost little beyond the loop itself; the rows left at the end are added
    after it. The chunks are fixed (not sized by how fast the worker is), so the sums run in the
    same order, and give the same bits, on every call whichever thread runs them. ``a``/``b``
    say where the factors are (``("xs", k)`` or ``("ys", k)`` of the scan, all its ys counted);
    ``index`` is the accumulator's position in ``Sunk.accumulators``."""

    CHUNKS = 8  # posts per loop: the last chunk's product is what the loop waits for at the end
    # (A loop body cannot raise between a post and its join: its shapes are static and its
    # numba code has no checks that raise, so a posted product never outlives its arrays.)

    def __init__(self, index, product, a, b, rows, m, n):
        self.index, self.product, self.a, self.b = index, product, a, b
        self.rows, self.m, self.n = rows, m, n

    @classmethod
    def plan(cls, sunk):
        """The accumulators of ``sunk`` the loop can sum itself: contracted axes leading both
        per-step factors (the stacked factors are then matrices whose rows are whole steps),
        one float dtype for the factors and the carry, a product funcgrad.jit.gemm runs, and
        the same dtype as the first such accumulator (one posted job per chunk)."""
        from . import gemm

        eqn = sunk.eqn
        p = eqn.params
        nconst, ncarry = p["num_consts"], p["num_carry"]
        xs_avals = [v.aval for v in eqn.invars[nconst + ncarry :]]
        ys_avals = [v.aval for v in eqn.outvars[ncarry:]]
        first_extra = len(ys_avals) - sunk.num_extra_ys
        length = p["length"]
        found = []
        for index, (_, (lc, rc), transposed, a, b) in enumerate(sunk.accumulators):
            # positions among the scan's xs and all its ys (the driver's a/y arrays)
            a, b = ((w, k if w == "xs" else first_extra + k) for w, k in (a, b))
            fa, fb = ((xs_avals if w == "xs" else ys_avals)[k] for w, k in (a, b))
            step_a, step_b = fa.shape[1:], fb.shape[1:]
            if tuple(lc) != tuple(range(len(lc))) or tuple(rc) != tuple(range(len(rc))):
                continue
            if len(step_a) == len(lc) or len(step_b) == len(rc) or fa.dtype != fb.dtype:
                continue
            rows = int(np.prod(step_a[: len(lc)], dtype=np.int64))
            m = int(np.prod(step_a[len(lc) :], dtype=np.int64))
            n = int(np.prod(step_b[len(rc) :], dtype=np.int64))
            if transposed:
                a, b, m, n = b, a, n, m
            dt = np.dtype(fa.dtype)
            if found and found[0].product.profile.dtype != dt:
                continue
            product = gemm.takes(dt, m, length * rows, n)
            if product is not None and length >= 4:
                found.append(cls(index, product, a, b, rows, m, n))
        return found

    @staticmethod
    def run_after(eqn, sums, run_scan, args):
        """What the driver returns, computed from Python: ``run_scan`` (the scan without the
        sums) on ``args`` less the initial values, then each product (numba rejected the
        module)."""
        p = eqn.params
        xs = args[p["num_consts"] + p["num_carry"] : len(args) - len(sums)]
        outs = list(run_scan(*args[: len(args) - len(sums)]))
        ys = outs[p["num_carry"] :]
        for s, init in zip(sums, args[len(args) - len(sums) :]):
            fa, fb = ((xs if w == "xs" else ys)[k] for w, k in (s.a, s.b))
            total = np.dot(np.reshape(fa, (-1, s.m)).T, np.reshape(fb, (-1, s.n)))
            outs.append((np.reshape(init, (s.m, s.n)) + total).astype(init.dtype, copy=False))
        return tuple(outs)

    @staticmethod
    def driver_lines(module, sums, xs, ys, length, reverse):
        """The scan driver's lines for ``sums``: before the loop, in it (after each step) and
        after it. The accumulators start from the driver's arguments ``z0, z1...``."""
        dt = module.gemm_async(sums[0].product)
        profile = sums[0].product.profile
        nq = len(sums)
        module.async_blocks = max(module.async_blocks, nq)
        ws = profile.workspace
        chunk = max(2, -(-length // _LoopSum.CHUNKS))
        ndt = _np_dtype(profile.dtype)

        def rows(where):
            w, k = where
            return ys[k] if w == "ys" else xs[k]

        before = [f"    job = np.empty({16 * nq}, np.int64)"]
        for q, s in enumerate(sums):
            before += [
                f"    acc{q} = np.ascontiguousarray(z{q}).reshape(({s.m}, {s.n})).astype({ndt})",
                f"    fa{q} = np.ascontiguousarray({rows(s.a)}).reshape(({length * s.rows}, {s.m}))",
                f"    fb{q} = np.ascontiguousarray({rows(s.b)}).reshape(({length * s.rows}, {s.n}))",
            ]
        before += [
            f"    overlap = Gst.size > 0 and Gw_{dt}.size >= (Gst[9] + {1 + nq}) * {ws}",
            "    posted = False",
            "    done = 0",
        ]
        span = "k + 1 - done"
        lo, hi = (f"{length - 1} - k", f"{length} - done") if reverse else ("done", "k + 1")
        inside = [
            f"        if overlap and {span} >= {chunk} and k + 1 < {length}:",
            "            if posted:",
            f"                join_{dt}(__KP__{nq})",
            f"            r0, r1 = ({lo}) * {sums[0].rows}, ({hi}) * {sums[0].rows}",
        ]
        for q, s in enumerate(sums):
            r0, r1 = ("r0", "r1") if s.rows == sums[0].rows else (f"({lo}) * {s.rows}", f"({hi}) * {s.rows}")
            inside.append(
                f"            block_{dt}(__KP__job, {q}, acc{q}, fa{q}[{r0}:{r1}], fb{q}[{r0}:{r1}], "
                f"{s.n}, {s.m}, {r1} - {r0}, 6)"
            )
        inside += [f"            posted = post_{dt}(__KP__job, {nq})", "            done = k + 1"]
        lo, hi = ("0", f"{length} - done") if reverse else ("done", f"{length}")
        after = ["    if posted:", f"        join_{dt}(__KP__{nq})", f"    if {lo} < {hi}:"]
        for q, s in enumerate(sums):
            after.append(
                f"        gemm_{dt}(__KP__acc{q}, fa{q}[({lo}) * {s.rows}:({hi}) * {s.rows}], "
                f"fb{q}[({lo}) * {s.rows}:({hi}) * {s.rows}], {s.n}, {s.m}, (({hi}) - ({lo})) * {s.rows}, 6)"
            )
        return before, inside, after


class _RewrittenScan:
    """A scan whose matrix products were moved out of the loop (:mod:`funcgrad.jit.scan_rewrite`):
    the hoisted part runs before the loop (compiled like any jitted code), the accumulator
    products in the loop module on a worker (:class:`_LoopSum`) or after it."""

    def __init__(self, eqn, hoisted, sunk, loop):
        from .executor import compile_jaxpr

        self.num_consts, self.num_carry = eqn.params["num_consts"], eqn.params["num_carry"]
        self.hoisted, self.sunk, self.loop = hoisted, sunk, loop
        self.key, self.source = loop.key, loop.source
        if hoisted is not None:
            self.pre_fn, pre_text = compile_jaxpr(hoisted.pre.jaxpr, "scan_hoisted")
            self.pre_consts = [np.asarray(c) for c in hoisted.pre.consts]
            self.source = f"# before the loop (hoisted, batched over the steps):\n{pre_text}\n\n{self.source}"
        if sunk is not None:
            # Per accumulator: its carry index and the tensordot axes over (steps, contracted axes).
            self.sums = [
                (j, t, a, b, ((0,) + tuple(d + 1 for d in lc), (0,) + tuple(d + 1 for d in rc)))
                for j, (lc, rc), t, a, b in sunk.accumulators
            ]
            summed = {j for j, *_ in self.sums} | {j for j, *_ in sunk.sums}
            self.keep = [k for k in range(self.num_carry) if k not in summed]
            # the accumulators the loop module sums itself (by their carry index)
            self.in_loop = {self.sums[s.index][0]: s for s in loop.sums}
            after = [
                f"carry {j} += dot_general{dims} of the stacked {a} and {b}" + (" (transposed)" if t else "")
                for j, dims, t, a, b in sunk.accumulators
                if j not in self.in_loop
            ]
            after += [
                f"carry {j} += the sum of the stacked {a} over the steps and axes {axes}" for j, axes, a in sunk.sums
            ]
            if after:
                self.source += "\n# after the loop: " + "; ".join(after)

    @classmethod
    def of(cls, eqn):
        from .scan_rewrite import hoist_scan, sink_accumulators

        hoisted = hoist_scan(eqn)
        inner = hoisted.eqn if hoisted is not None else eqn
        sunk = sink_accumulators(inner)
        if hoisted is None and sunk is None:
            return None
        loop = _compile_loop(sunk.eqn, _LoopSum.plan(sunk)) if sunk is not None else _compile_loop(inner)
        if loop is None:
            return None
        return cls(eqn, hoisted, sunk, loop)

    def __call__(self, *ops):
        nconst, ncarry = self.num_consts, self.num_carry
        ops = list(ops)
        if self.hoisted is not None:
            pre = self.pre_fn(*self.pre_consts, *ops[:nconst], *ops[nconst + ncarry :])
            new_consts = [o for o, b in zip(pre, self.hoisted.pre_batched) if not b]
            new_xs = [o for o, b in zip(pre, self.hoisted.pre_batched) if b]
            ops = ops[:nconst] + new_consts + ops[nconst:] + new_xs
            nconst += len(new_consts)
        if self.sunk is None:
            return self.loop(*ops)
        keep, in_loop = self.keep, self.in_loop
        xs = ops[nconst + ncarry :]
        inits = [ops[nconst + j] for j in in_loop]
        outs = list(self.loop(*ops[:nconst], *[ops[nconst + k] for k in keep], *xs, *inits))
        carries = {
            j: np.reshape(total, ops[nconst + j].shape) for j, total in zip(in_loop, outs[len(outs) - len(inits) :])
        }
        outs = outs[: len(outs) - len(inits)]
        n_extra = self.sunk.num_extra_ys
        kept, ys, extra = outs[: len(keep)], outs[len(keep) : len(outs) - n_extra], outs[len(outs) - n_extra :]
        carries.update(zip(keep, kept))
        for j, transposed, a, b, axes in self.sums:
            if j in in_loop:
                continue
            fa, fb = ((xs if w == "xs" else extra)[k] for w, k in (a, b))
            total = _contract(fa, fb, axes)
            if transposed:
                total = total.T
            init = ops[nconst + j]
            carries[j] = (init + total.astype(init.dtype, copy=False)).astype(init.dtype, copy=False)
        for j, axes, (w, k) in self.sunk.sums:
            stacked = (xs if w == "xs" else extra)[k]
            init = ops[nconst + j]
            total = np.sum(stacked, axis=(0,) + tuple(a + 1 for a in axes), dtype=init.dtype)
            carries[j] = (init + total).astype(init.dtype, copy=False)
        return tuple(carries[k] for k in range(ncarry)) + tuple(ys)
