"""Kernels: readable numba source for each fused group, compiled once and cached on disk.

A fused group (:mod:`funcgrad.jit.fusion`) becomes one ``@njit`` function, a loop nest over
the group's iteration space:

* size-1 axes are dropped and adjacent axes every operand reads the same way are collapsed
  (an all-elementwise group is one flat loop); the sizes are arguments, so one kernel serves
  every shape with the same structure (layer 1 and layer 2 of an MLP, any batch size);
* inputs are read by index arithmetic on C-contiguous arrays reshaped inside the kernel (a
  broadcast operand is indexed by the axes it varies along only); rank-0 inputs are scalars;
* each equation is one line, preceded by the equation as a comment, and is computed at the
  shallowest loop depth its operands allow (loop-invariant work is hoisted);
* reductions keep a scalar accumulator over their trailing reduced axes (its add carries the
  only reassociation flag, so LLVM vectorizes it) or accumulate into the output;
* float32 transcendental functions call :mod:`funcgrad.jit.fastmath`, so the loop vectorizes.

Compilation (``get_kernels``): the source is numba source, and numba compiles it where needed,
but first :mod:`funcgrad.jit.llvmgen` compiles the same source straight to LLVM IR with numba's
typing rules, and :mod:`funcgrad.jit.native` optimises and assembles it with llvmlite (numba's
settings, so the results are numba's) into machine code called through one shared CPython
trampoline: milliseconds per kernel instead of numba's import, initialisation and pipeline, and
a second process loads the machine code from disk with neither numba nor llvmlite. The kernels
of one jitted function compile in parallel. Source outside that subset (``np.cbrt``...) goes to
numba, as before.

Cache: the key is a hash of the kernel's source, which encodes only the group's structure
(primitive names and parameters, dtypes, ranks, literals, the read pattern), salted with the
generator, fastmath and NumPy versions. Kernels live in memory for the process (dicts behind a
lock, so concurrent threads compile each once) and on disk in ``$FUNCGRAD_CACHE_DIR`` (default
``~/.cache/funcgrad/kernels``, a private temporary directory when that one cannot be written):
``funcgrad_kernel_<hash>.<tag>.o``, the object code (checksummed; the tag covers the argument
dtypes and the machine), next to ``funcgrad_kernel_<hash>.py``, the readable source. Files are
written to a temporary name and renamed (``os.replace``), so processes racing on the same kernel
never see a partial file. A kernel that goes to numba is imported as the module
``funcgrad_kernel_<hash>`` and compiled with ``njit(cache=True)``, numba caching its machine code
next to the source. With ``fg.config.update("log_compiles", True)`` each compile and each disk
hit is logged through the ``funcgrad.jit`` logger.

Threads: large kernels run over chunks of their outermost axis on a small thread pool
(``nogil`` kernels; the calling thread works too, chunks are taken dynamically). This is the
role ``parallel=True``/``prange`` would play; a pool of our own keeps one compiled kernel for
the serial and parallel cases (parfors roughly triples compile time and its outlined loops did
not vectorize), never runs while NumPy's BLAS threads do (kernels and BLAS calls alternate in
the executor), and stays safe when several Python threads call jitted code at once.
``FUNCGRAD_JIT_THREADS`` sets the pool size (default: the CPUs this process may use).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.config import config
from ..core.jaxpr import Literal, _fmt_param
from .fusion import REDUCTIONS
from .lowering import dtype_ctor, scalar_template

logger = logging.getLogger("funcgrad.jit")

GENERATOR_VERSION = "1"

# Work (iteration-space elements) above which a kernel runs on the thread pool.
PARALLEL_MIN_SIZE = 1 << 18

_FASTMATH_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastmath.py")


def _salt() -> str:
    # fastmath.py is read, not imported: importing it imports numba. (numba's own cache next
    # to each kernel's source checks numba's version itself.)
    with open(_FASTMATH_PATH, "rb") as f:
        fm = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"gen{GENERATOR_VERSION}-fm{fm}-np{np.__version__}"


_SALT = _salt()


def cache_dir() -> str:
    d = os.environ.get("FUNCGRAD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "funcgrad", "kernels")
    return d


# -- source generation -------------------------------------------------------------------------


def _literal(val, dtype) -> str:
    dtype = np.dtype(dtype)
    v = np.asarray(val).astype(dtype).item()
    if dtype == np.bool_:
        return "True" if v else "False"
    ctor = dtype_ctor(dtype)
    if dtype.kind == "f":
        if v != v:
            return f"{ctor}(np.nan)"
        if v in (float("inf"), float("-inf")):
            return f"{ctor}({'' if v > 0 else '-'}np.inf)"
        return f"{ctor}({float(v)!r})"
    return f"{ctor}({int(v)})"


def _short_dtype(dtype) -> str:
    from ..core.abstract import ShapedArray

    return ShapedArray((), dtype).str_short().split("[")[0]


def _init(name, dtype):
    dtype = np.dtype(dtype)
    if name == "reduce_sum":
        return _literal(0, dtype)
    lowest = name == "reduce_max"
    if dtype == np.bool_:
        return "False" if lowest else "True"
    if dtype.kind == "f":
        return _literal(-np.inf if lowest else np.inf, dtype)
    info = np.iinfo(dtype)
    return _literal(info.min if lowest else info.max, dtype)


def _combine(name, dtype, acc, v):
    dtype = np.dtype(dtype)
    if name == "reduce_sum":
        if dtype.kind == "f":
            return f"fm.radd({acc}, {v})"
        return f"{dtype_ctor(dtype)}({acc} + {v})"
    op = ">" if name == "reduce_max" else "<"
    if dtype.kind == "f":  # NaN propagates, as in NumPy (llvm.maximum/minimum, vectorizable)
        return f"fm.{'rmax' if name == 'reduce_max' else 'rmin'}({acc}, {v})"
    return f"({v} if {v} {op} {acc} else {acc})"


def _expression(e, operands):
    """The typed scalar expression of an elementwise equation over operand expressions."""
    dtype = e.outvars[0].aval.dtype
    if e.primitive.name in REDUCTIONS:  # every reduced axis has size 1: a copy
        return f"{dtype_ctor(dtype)}({operands[0]})"
    tmpl = scalar_template(e.primitive, [a.aval.dtype for a in e.invars], dtype, e.params)
    return f"{dtype_ctor(dtype)}({tmpl.format(*operands)})"


class KernelSpec:
    """The generated source of one fused group and how to call it."""

    def __init__(self, source, key, sizes, outputs, array_inputs, scalar_inputs, parallel, summary):
        self.source = source  # full module text
        self.key = key  # structural hash (file and module name)
        self.sizes = sizes  # collapsed loop sizes (ints, this instance)
        self.outputs = outputs  # [(Var, native shape, dtype)]
        self.array_inputs = array_inputs  # [Var]
        self.scalar_inputs = scalar_inputs  # [Var]
        self.parallel = parallel
        self.summary = summary
        self.windowed = []  # array inputs read as column windows: pass their base arrays (build)
        self.out_windowed = []  # outputs written as column windows: pass their base arrays

    @property
    def name(self):
        return f"k_{self.key[:12]}"

    @property
    def arg_types(self):
        """The numba signature of ``kernel`` for this instance (imports numba)."""
        import numba
        from numba import types

        def arr_t(dtype, ndim, readonly):
            return types.Array(numba.from_dtype(np.dtype(dtype)), ndim, "C", readonly=readonly)

        return tuple(
            [arr_t(dt, len(shp_), False) for _, shp_, dt in self.outputs]
            + [arr_t(v.aval.dtype, len(v.aval.shape), True) for v in self.array_inputs]
            + [numba.from_dtype(np.dtype(v.aval.dtype)) for v in self.scalar_inputs]
            + [types.int64] * (len(self.sizes) + 2)
        )

    def signature(self):
        """The argument types of the native kernel (:class:`funcgrad.jit.native.Signature`)."""
        from .native import Signature

        arrays = [("out", dt, len(shp_)) for _, shp_, dt in self.outputs]
        arrays += [("in", v.aval.dtype, len(v.aval.shape)) for v in self.array_inputs]
        return Signature(arrays, [v.aval.dtype for v in self.scalar_inputs], len(self.sizes))


def build(group, windows=None, out_windows=None) -> KernelSpec:
    """Generate the kernel of ``group`` (a :class:`funcgrad.jit.fusion.Group`).

    ``windows`` maps array inputs (of the group's rank-2 shape) to ``(row_length, offset)``: the
    kernel reads them as the columns ``[offset, offset + cols)`` of a C-contiguous base array
    with rows of ``row_length`` elements, which the caller passes instead (a slice of a fused
    loop's product, ``z[:, 64:128]``, read in place rather than copied). Row length and offset
    are extra size arguments (``rw<j>``, ``co<j>``, after the loop sizes), so one kernel serves
    every window of the same structure. ``out_windows`` does the same for elementwise outputs
    (``orw<q>``, ``oco<q>``): the kernel writes the columns of a base array the caller passes
    (the gate cotangents written straight into the matrix they are concatenated into).

    Loop structure: the collapsed axes are looped in order; ``t`` is where the trailing run of
    reduced axes starts. Statements that depend only on the first ``d`` indices are emitted
    at depth ``d``. At depth ``t`` the work comes in *stages*: stage k loops over the reduced
    axes to compute its reductions, then the row values that use them are computed, which
    stage k + 1 may read (``max``, then ``sum(exp(x - max))``, then ``log``: one pass per row
    over data that stays in cache).
    """
    from .fusion import Read

    shape = group.shape
    n = len(shape)
    red = set(group.reduce_axes)
    arr_in = [(v, amap) for v, amap in group.inputs if amap]
    sc_in = [v for v, amap in group.inputs if not amap]
    amaps = [set(amap) for _, amap in arr_in]
    windows, out_windows = windows or {}, out_windows or {}
    windowed = [j for j, (v, amap) in enumerate(arr_in) if v in windows and tuple(amap) == (0, 1) and n == 2]
    out_windowed = [q for q, v in enumerate(group.outputs) if v in out_windows and n == 2 and not red]

    # Collapse adjacent axes that every input reads alike (and that agree on being reduced); a
    # window's rows and columns stay two axes.
    split = bool(windowed or out_windowed)
    cols = [(k in red, tuple(k in s for s in amaps), k if split else -1) for k in range(n)]
    collapsed = []
    for k in range(n):
        if collapsed and cols[collapsed[-1][-1]] == cols[k]:
            collapsed[-1].append(k)
        else:
            collapsed.append([k])
    m = len(collapsed)
    axis_of = {k: j for j, axes in enumerate(collapsed) for k in axes}
    cred = [cols[axes[0]][0] for axes in collapsed]
    sizes = [int(np.prod([shape[k] for k in axes], dtype=np.int64)) for axes in collapsed]
    t = m
    while t > 0 and cred[t - 1]:
        t -= 1
    accumulate_in_output = any(cred[:t])
    kept = [j for j in range(m) if not cred[j]]
    idx_all = ", ".join(f"i{j}" for j in range(m)) if m else "0"
    idx_kept = ", ".join(f"i{j}" for j in kept) if kept else "0"

    def idx_out(q):  # where output q's element (i0, i1...) goes
        return f"i0, oco{q} + i1" if q in out_windowed else idx_all

    def shp(axes):
        return "(" + ", ".join(f"n{j}" for j in axes) + ("," if len(axes) == 1 else "") + ")" if axes else "(1,)"

    outputs = [(v, tuple(v.aval.shape), v.aval.dtype) for v in group.outputs]
    out_index = {v: q for q, (v, _, _) in enumerate(outputs)}
    row_vals = group.reduced | group.outer  # values over the kept axes only

    # Statement buckets. pre[d] (d < t): shared by all stages. At depth t, per stage k:
    # head[k], then loops t..m-1 with body[k][d], then tail[k]; row[k] holds the row values
    # computed from stage k's reductions (row[0]: before any stage).
    pre = [[] for _ in range(m + 1)]
    head, body, tail, row = {}, {}, {}, {0: []}

    def stage_lists(k):
        if k not in head:
            head[k], tail[k], row[k] = [], [], row.get(k, [])
            body[k] = [[] for _ in range(m + 1)]
        return head[k], body[k], tail[k]

    def place(stmt, d, k, is_row=False):
        """Emit ``stmt`` at depth ``d`` for stage ``k`` (row statements: after stage k)."""
        if d < t and (k <= 1 or is_row and k == 0):
            pre[d].append(stmt)
        elif is_row:
            row.setdefault(k, []).append(stmt)
        elif d <= t:
            stage_lists(k)[0].append(stmt)
        else:
            stage_lists(k)[1][d].append(stmt)

    head_lines = []
    names, depth, stage = {}, {}, {}
    loads = {}

    for j, (v, amap) in enumerate(arr_in):
        cax = sorted({axis_of[k] for k in amap})
        if j in windowed:  # the base array's rows; columns read from offset co<j>
            head_lines.append(f"    x{j} = a{j}.reshape((n{cax[0]}, rw{j}))")
        else:
            head_lines.append(f"    x{j} = a{j}.reshape({shp(cax)})")
        arr_in[j] = (v, cax)
    for j, v in enumerate(sc_in):
        names[("s", v)] = f"s{j}"

    info = {}  # inner value Var -> (equation, reads, depth, stage)
    recomputed = {}  # (Var, stage) -> name of a per-element value recomputed in a later stage

    def operand(read, k):
        """(expression, depth) of an operand for a statement of stage ``k``."""
        if read.kind == "const":
            return _literal(read.src.val, read.src.aval.dtype), 0
        if read.kind == "local":
            v = read.src
            nm = names[v]
            if v in row_vals or depth[nm] <= t or stage[nm] == k:
                return nm, depth[nm]
            # A per-element value of an earlier stage: its loop is over, recompute it here
            # (from the inputs, which stay in cache) rather than storing it.
            if (v, k) not in recomputed:
                e, reads, d, _ = info[v]
                ops = [operand(r, k) for r in reads]
                name2 = f"{nm}_{k}"
                stage_lists(k)[1][d].append(f"{name2} = {_expression(e, [o for o, _ in ops])}")
                recomputed[(v, k)] = name2
            return recomputed[(v, k)], depth[nm]
        v = read.src
        if not read.amap:
            return names[("s", v)], 0
        cset = {axis_of[a] for a in read.amap}
        j = next(i for i, (w, cax) in enumerate(arr_in) if w is v and set(cax) == cset)
        cax = arr_in[j][1]
        d = max(cax) + 1
        key = (j, 0 if d <= t else k)
        if key not in loads:
            nm = f"l{j}" if key[1] == 0 else f"l{j}_{key[1]}"
            loads[key] = nm
            depth[nm] = d
            if j in windowed:
                stmt = f"{nm} = x{j}[i{cax[0]}, co{j} + i{cax[1]}]"
            else:
                stmt = f"{nm} = x{j}[{', '.join(f'i{c}' for c in cax)}]"
            if d < t:
                pre[d].append(stmt)
            elif d == t:
                row[0].append(stmt)
            else:
                stage_lists(k)[1][d].append(stmt)
        return loads[key], depth[loads[key]]

    red_q = set()
    counter = 0
    for e in group.eqns:
        reads = [group.reads[a] if type(a) is not Literal else Read("const", a) for a in e.invars]
        out = e.outvars[0]
        dtype = out.aval.dtype
        is_row = out in group.outer
        name = e.primitive.name
        # The stage: one more than any row value it reads per element (row members: the
        # largest stage of what they read); at least 1 for per-element work.
        k = 0
        for r in reads:
            if r.kind == "local":
                nm_ = names[r.src]
                if r.src in row_vals:
                    k = max(k, stage[nm_] if is_row else stage[nm_] + 1)
                elif depth[nm_] > t:
                    k = max(k, stage[nm_])
        if not is_row:
            k = max(k, 1)
        ops = [operand(r, k) for r in reads]
        nm = f"v{counter}"
        counter += 1
        names[out] = nm
        params = ", ".join(f"{p}={_fmt_param(v)}" for p, v in sorted(e.params.items()))
        params = f"[{params}]" if params else ""
        doc = f"# {nm}:{_short_dtype(dtype)} = {name}{params} {' '.join(o for o, _ in ops)}"
        if name in REDUCTIONS and red:
            val = ops[0][0]
            q = out_index.get(out)
            h, b, tl = stage_lists(k)
            if t < m:
                acc = nm
                h.append(f"{acc} = {_init(name, dtype)}")
                b[m].append(doc)
                b[m].append(f"{acc} = {_combine(name, dtype, acc, val)}")
                if accumulate_in_output:
                    cur = f"y{q}[{idx_kept}]"
                    tl.append(f"{cur} = {_combine(name, dtype, cur, acc)}")
                elif q is not None:
                    tl.append(f"y{q}[{idx_kept}] = {acc}")
            else:  # no trailing reduced axes: accumulate straight into the output
                cur = f"y{q}[{idx_kept}]"
                target = b[m] if m > t else h
                target.append(doc)
                target.append(f"{cur} = {_combine(name, dtype, cur, val)}")
            if accumulate_in_output:
                head_lines.append(f"    o{q}.fill({_init(name, dtype)})")
            if q is not None:
                red_q.add(q)
            depth[nm], stage[nm] = t, k
            continue
        d = max([dd for _, dd in ops], default=0)
        if is_row:
            d = min(d, t)
        if k >= 2 or (is_row and k >= 1):
            d = max(d, t)  # it reads a row value, available from depth t on
        place(doc, d, k, is_row)
        place(f"{nm} = {_expression(e, [o for o, _ in ops])}", d, k, is_row)
        depth[nm], stage[nm] = d, k
        info[out] = (e, reads, d, k)
        if out in out_index:
            q = out_index[out]
            if is_row:
                row.setdefault(k, []).append(f"y{q}[{idx_kept}] = {nm}")
                red_q.add(q)
            elif m > t:
                stage_lists(k)[1][m].append(f"y{q}[{idx_out(q)}] = {nm}")
            else:
                stage_lists(k)[0].append(f"y{q}[{idx_out(q)}] = {nm}")

    out_heads = []
    for q in range(len(outputs)):
        axes = kept if q in red_q else list(range(m))
        if q in out_windowed:  # the base array's rows; columns written from offset oco<q>
            out_heads.append(f"    y{q} = o{q}.reshape((n0, orw{q}))")
        else:
            out_heads.append(f"    y{q} = o{q}.reshape({shp(axes)})")

    args = (
        [f"o{q}" for q in range(len(outputs))]
        + [f"a{j}" for j in range(len(arr_in))]
        + [f"s{j}" for j in range(len(sc_in))]
        + [f"n{j}" for j in range(m)]
        + [f"{p}{j}" for j in windowed for p in ("rw", "co")]
        + [f"{p}{q}" for q in out_windowed for p in ("orw", "oco")]
        + ["lo", "hi"]
    )
    lines = [f"def kernel({', '.join(args)}):"] + out_heads + head_lines

    def loop(d, ind):
        if d == 0:
            lines.append(" " * ind + "for i0 in range(np.uint64(lo), np.uint64(hi)):")
        else:
            lines.append(" " * ind + f"for i{d} in range(n{d}):")

    def emit_inner(k, d, ind):
        for s_ in body[k][d]:
            lines.append(" " * ind + s_)
        if d < m:
            loop(d, ind)
            emit_inner(k, d + 1, ind + 4)

    def emit(d, ind):
        for s_ in pre[d]:
            lines.append(" " * ind + s_)
        if d < t:
            loop(d, ind)
            emit(d + 1, ind + 4)
            return
        for s_ in row.get(0, []):
            lines.append(" " * ind + s_)
        for k in sorted(set(head) | set(row)):
            if k == 0:
                continue
            if k in head:
                for s_ in head[k]:
                    lines.append(" " * ind + s_)
                if t < m:
                    loop(t, ind)
                    emit_inner(k, t + 1, ind + 4)
                for s_ in tail[k]:
                    lines.append(" " * ind + s_)
            for s_ in row.get(k, []):
                lines.append(" " * ind + s_)

    emit(0, 4)
    func = "\n".join(lines) + "\n"
    key = hashlib.sha256((_SALT + "\n" + func).encode()).hexdigest()[:32]
    dts = sorted({_short_dtype(e.outvars[0].aval.dtype) for e in group.eqns})
    summary = (
        f"{len(group.eqns)} equations ({', '.join(dict.fromkeys(e.primitive.name for e in group.eqns))}) "
        f"over {tuple(shape)}" + (f" reducing axes {tuple(sorted(red))}" if red else "") + f", {'/'.join(dts)}"
    )
    # The file holds structure only (its name is the structural hash): no shapes in it.
    structure = (
        f"{len(group.eqns)} equations ({', '.join(dict.fromkeys(e.primitive.name for e in group.eqns))}) "
        f"over a rank-{m} loop nest" + (f" reducing {sum(cred)} of its axes" if red else "") + f", {'/'.join(dts)}"
    )
    source = (
        f'"""funcgrad fused kernel {key}: {structure}.\n\n'
        "Generated by funcgrad/jit/kernels.py from the structure of a fused group: primitive\n"
        "names, parameters, dtypes and ranks; array sizes are arguments (n0, n1, ...), outputs\n"
        'come first (o0, ...), then array inputs (a0, ...), scalar inputs (s0, ...).\n"""\n'
        "import math\n\nimport numpy as np\nfrom numba import njit\n\nfrom funcgrad.jit import fastmath as fm\n\n\n"
        f'@njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)\n{func}'
    )

    parallel = (
        m > 0
        and not cred[0]
        and not accumulate_in_output
        and sizes[0] > 1
        and int(np.prod(shape, dtype=np.int64)) >= PARALLEL_MIN_SIZE
    )
    sizes += [int(x) for j in windowed for x in windows[arr_in[j][0]]]
    sizes += [int(x) for q in out_windowed for x in out_windows[outputs[q][0]]]
    spec = KernelSpec(source, key, sizes, outputs, [v for v, _ in arr_in], sc_in, parallel, summary)
    spec.windowed = [arr_in[j][0] for j in windowed]
    spec.out_windowed = [outputs[q][0] for q in out_windowed]
    return spec


# -- compile cache -----------------------------------------------------------------------------

_lock = threading.RLock()
_kernels = {}  # (key, native signature) -> callable kernel (native or numba dispatcher)
_dispatchers = {}  # key -> numba dispatcher (kernels native compilation does not cover)
_compiled = set()  # (key, numba signature) compiled in this process
_native_specs = {}  # native kernel -> (spec, signature), for call_retyped
_entries = {}  # native entry symbol -> address of the loaded code


def _private_dir():
    return os.path.join(tempfile.gettempdir(), f"funcgrad-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}")


_writable = {}  # cache directory -> whether this process can write there


def _cache_dirs():
    """Where kernels are looked up, in order: the cache directory, and a private temporary one
    when the cache directory cannot be written (it may still hold kernels to read)."""
    d = cache_dir()
    ok = _writable.get(d)
    if ok is None:
        try:
            os.makedirs(d, exist_ok=True)
            ok = os.access(d, os.W_OK)
        except OSError:
            ok = False
        _writable[d] = ok
    return [d] if ok else [d, _private_dir()]


def _write_source(path, source):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == source:
                return
    except OSError:
        pass
    from .native import replace_file

    replace_file(path, source.encode("utf-8"), ".py")


def _load_module(key, source):
    modname = f"funcgrad_kernel_{key}"
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    path = os.path.join(cache_dir(), modname + ".py")
    try:
        _write_source(path, source)
    except OSError:
        # An unwritable cache directory: fall back to a private temporary one.
        path = os.path.join(_private_dir(), modname + ".py")
        _write_source(path, source)
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


def _numba_kernel(spec):
    """The numba dispatcher of ``spec``, compiled (or loaded from numba's cache) for its signature."""
    sig = spec.arg_types
    disp = _dispatchers.get(spec.key)
    if disp is None:
        disp = _load_module(spec.key, spec.source).kernel
        _dispatchers[spec.key] = disp
    if (spec.key, sig) in _compiled:
        return disp, False, None
    hits = sum(disp.stats.cache_hits.values())
    disp.disable_compile(False)
    try:
        disp.compile(sig)
    finally:
        # Calls never compile: mutable arrays convert to the read-only signature.
        disp.disable_compile(True)
    _compiled.add((spec.key, sig))
    hit = sum(disp.stats.cache_hits.values()) > hits
    return disp, hit, disp.stats.cache_path


def get_kernel(spec: KernelSpec):
    """The compiled kernel of ``spec`` (see :func:`get_kernels`)."""
    return get_kernels([spec])[0]


def get_kernels(specs):
    """The compiled kernels of ``specs``, in order: native code (:mod:`funcgrad.jit.native`) where
    the kernel's source is in the subset :mod:`funcgrad.jit.llvmgen` compiles, else numba
    dispatchers; each compiled or loaded from disk at most once per process. Kernels that must
    be compiled are compiled in parallel (LLVM runs without the GIL), on up to as many threads
    as this process may use CPUs. Native kernels assume what the executor guarantees: outputs
    are fresh arrays, overlapping no input."""
    out = [None] * len(specs)
    todo = []
    for i, spec in enumerate(specs):
        sig = spec.signature()
        ck = (spec.key, sig.key())
        kernel = _kernels.get(ck)
        if kernel is None:
            todo.append((i, spec, sig, ck))
        else:
            out[i] = kernel
    if todo:
        with _lock:
            _build_kernels(todo, out)
    return out


def _log(spec, source, elapsed):
    if not config.log_compiles or source == "memory":
        return
    if source == "compiled":
        logger.warning(
            "Compiled kernel %s in %.3f s (not in the memory or disk cache): %s", spec.name, elapsed, spec.summary
        )
    else:
        logger.warning(
            "Loaded kernel %s from the disk cache (%s) in %.3f s: %s", spec.name, source, elapsed, spec.summary
        )


def _build_kernels(todo, out):
    from . import native

    rt = native.runtime()
    dirs = _cache_dirs()
    natives = []  # (i, spec, sig, ck, sym, entry or None, source, start)
    jobs = {}  # sym -> [object code, seconds]: kernels being compiled
    compiler = None
    for i, spec, sig, ck in todo:
        kernel = _kernels.get(ck)
        if kernel is not None:  # twice in this batch
            out[i] = kernel
            continue
        start = time.perf_counter()
        if rt is not None:
            tag = native.tag(sig)
            sym = native.symbol(spec.key, tag)
            entry, source = _entries.get(sym), "memory"  # the same code for arrays of other ranks
            if entry is None and sym not in jobs:
                entry, source = _load_object(spec, tag, sym, dirs)
            if entry is not None or sym in jobs:
                natives.append((i, spec, sig, ck, sym, entry, source, start))
                continue
            try:
                ir_text = native.kernel_ir(spec.source, sig, sym)
            except native.Unsupported as e:
                logger.debug("Kernel %s goes to numba: %s", spec.name, e)
            else:
                if compiler is None:  # the first kernel to compile: start the compile threads
                    compiler = _Compiles(rt, dirs)
                jobs[sym] = [None, 0.0]
                compiler.submit(sym, ir_text)  # compiled while the next kernels are generated
                natives.append((i, spec, sig, ck, sym, None, "compiled", start))
                for d in dirs:
                    try:  # the readable source next to the object code (what numba would compile)
                        _write_source(os.path.join(d, f"funcgrad_kernel_{spec.key}.py"), spec.source)
                        break
                    except OSError:
                        continue
                continue
        kernel, hit, path = _numba_kernel(spec)
        _kernels[ck] = out[i] = kernel
        _log(spec, path if hit else "compiled", time.perf_counter() - start)
    if not natives:
        return
    try:
        if compiler is not None:
            for sym, obj, seconds in compiler.finish():
                jobs[sym] = [obj, seconds]
        elif not rt.trampoline_cached(dirs):
            rt.trampoline_install(rt.trampoline_compile(), dirs)
        _finish_natives(natives, jobs, dirs, out)
    except native.LoadError as e:
        # This process cannot run the code it compiled (no executable memory...): numba then.
        logger.warning("Native kernels are off for this process (%s); numba compiles them", e)
        native.disable(e)
        for i, spec, _, ck, *_ in natives:
            if out[i] is None:
                start = time.perf_counter()
                kernel, hit, path = _numba_kernel(spec)
                _kernels[ck] = out[i] = kernel
                _log(spec, path if hit else "compiled", time.perf_counter() - start)


def _finish_natives(natives, jobs, dirs, out):
    """Load the compiled kernels of a batch and make their callables."""
    from . import native

    for i, spec, sig, ck, sym, entry, source, start in natives:
        if entry is None and sym not in _entries and jobs[sym][0] is None:
            kernel, hit, path = _numba_kernel(spec)  # LLVM rejected the module
            _kernels[ck] = out[i] = kernel
            _log(spec, path if hit else "compiled", time.perf_counter() - start)
            continue
        if entry is None:
            entry = _entries.get(sym)
            if entry is None:
                obj, seconds = jobs[sym]
                for d in dirs:
                    try:
                        native.write_atomic(native.object_path(d, spec.key, native.tag(sig)), obj)
                        break
                    except OSError:  # an unwritable cache directory: fall back to a private one
                        continue
                entry = native.load(obj, sym)
                start = time.perf_counter() - seconds  # its own compile time, not the batch's
        _entries[sym] = entry
        kernel = native.function(entry, sig, spec.name, dirs)
        _native_specs[kernel] = (spec, sig)
        _kernels[ck] = out[i] = kernel
        _log(spec, source, time.perf_counter() - start)


_compile_pool = None


class _Compiles:
    """LLVM compiles of one batch on up to ``num_threads()`` threads, fed as their IR is
    generated (the GIL is free while LLVM works, so generating the next kernel's IR overlaps
    compiling the previous ones); the calling thread joins in at :meth:`finish`. The trampoline,
    when not cached, is compiled first."""

    def __init__(self, rt, dirs):
        global _compile_pool
        import queue

        self.rt, self.dirs = rt, dirs
        self.queue = queue.Queue()
        self.results = []
        self.lock = threading.Lock()
        rt.compiler()  # llvmlite is imported (only) when something must be compiled
        self.tramp = not rt.trampoline_cached(dirs)
        if self.tramp:
            self.queue.put(("trampoline", None))
        self.workers = []
        if _NTHREADS > 1:
            if _compile_pool is None:
                _compile_pool = ThreadPoolExecutor(max_workers=_NTHREADS - 1, thread_name_prefix="funcgrad-compile")
            self.workers = [_compile_pool.submit(self._work) for _ in range(_NTHREADS - 1)]

    def submit(self, sym, ir_text):
        self.queue.put((sym, ir_text))

    def _run(self, item):
        sym, ir_text = item
        t0 = time.perf_counter()
        try:
            with self.rt.compiler().parallel():
                obj = self.rt.trampoline_compile() if ir_text is None else self.rt.compiler().compile(ir_text)
        except RuntimeError as e:  # LLVM rejected the module: numba compiles the kernel instead
            if ir_text is None:
                raise
            logger.warning("LLVM could not compile kernel %s (numba will): %s", sym, e)
            obj = None
        with self.lock:
            self.results.append((sym, obj, time.perf_counter() - t0))

    def _work(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._run(item)

    def finish(self):
        """Compile what is left (this thread too), wait; the results [(symbol, object code, seconds)]."""
        import queue

        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            self._run(item)
        for _ in self.workers:
            self.queue.put(None)
        for w in self.workers:
            w.result()
        results = []
        for sym, obj, seconds in self.results:
            if sym == "trampoline":
                self.rt.trampoline_install(obj, self.dirs)
            else:
                results.append((sym, obj, seconds))
        return results


def _load_object(spec, tag, sym, dirs):
    """(entry address, path) of a kernel's object code on disk, or (None, None)."""
    from . import native

    for d in dirs:
        path = native.object_path(d, spec.key, tag)
        obj = native.read_object(path)
        if obj is not None:
            try:
                return native.load(obj, sym), path
            except native.LoadError:  # code this process cannot load: compile it again
                logger.debug("Could not load %s; compiling kernel %s again", path, spec.name, exc_info=True)
                return None, None
    return None, None


def native_entry(spec):
    """The address of ``spec``'s kernel compiled to native code (``i32 entry(i64 *slots)``, the
    slots as :func:`funcgrad.jit.llvmgen.entry_ir` reads them), compiling or loading it; None
    where numba compiles it instead. For code that calls kernels without Python (compiled loops).
    """
    from . import native

    kernel = get_kernels([spec])[0]
    info = _native_specs.get(kernel)
    if info is None:
        return None
    spec_, sig = info
    return _entries.get(native.symbol(spec_.key, native.tag(sig)))


def _native_arguments(args, spec, sig):
    """``args`` made acceptable to the native kernel when only their scalars are of other types
    (converted as a numba dispatcher converts them), else None."""
    arrays = len(sig.arrays)
    out = list(args)
    for a, (role, dt, ndim) in zip(args[:arrays], sig.arrays):
        if (
            type(a) is not np.ndarray
            or a.dtype != dt
            or a.ndim != ndim
            or not (a.flags.c_contiguous and a.flags.aligned)
            or (role == "out" and not a.flags.writeable)
        ):
            return None
    for k, dt in enumerate(sig.scalars):
        a = args[arrays + k]
        if type(a) is not np.dtype(dt).type:
            try:
                out[arrays + k] = np.asarray(a).astype(dt)[()]
            except (TypeError, ValueError):
                return None
    return out


def call_retyped(kernel, args, sizes, n0, parallel):
    """Call ``kernel`` on arguments its compiled signature does not accept, compiling for them."""
    native_spec = _native_specs.get(kernel)
    if native_spec is not None:
        spec, sig = native_spec
        fixed = _native_arguments(args, spec, sig)
        if fixed is not None:
            args = fixed
        else:
            import numba

            with _lock:
                if config.log_compiles:
                    logger.warning(
                        "Recompiling kernel %s with numba for argument types %s",
                        spec.name,
                        [numba.typeof(a) for a in args],
                    )
                disp = _dispatchers.get(spec.key)
                if disp is None:
                    disp = _dispatchers[spec.key] = _load_module(spec.key, spec.source).kernel
                kernel = disp
                _compile_for(kernel, args, sizes)
    else:
        with _lock:
            if config.log_compiles:
                import numba

                logger.warning(
                    "Recompiling kernel %s for argument types %s",
                    kernel.py_func.__module__,
                    [numba.typeof(a) for a in args],
                )
            _compile_for(kernel, args, sizes)
    if parallel:
        parallel_call(kernel, n0, args, sizes)
    else:
        kernel(*args, *sizes, 0, n0)


def _compile_for(disp, args, sizes):
    import numba
    from numba import types

    disp.disable_compile(False)
    try:
        disp.compile(tuple(numba.typeof(a) for a in args) + (types.int64,) * (len(sizes) + 2))
    finally:
        disp.disable_compile(True)


# -- parallel execution ------------------------------------------------------------------------

_pool = None
_pool_lock = threading.Lock()


def num_threads() -> int:
    env = os.environ.get("FUNCGRAD_JIT_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_NTHREADS = num_threads()


def _after_fork_in_child():
    """A forked child has only the forking thread: the pools' threads, and any lock another
    thread held, do not exist there. Fresh ones are made on demand."""
    global _pool, _compile_pool, _lock, _pool_lock
    _pool = _compile_pool = None
    _lock, _pool_lock = threading.RLock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _get_pool():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, _NTHREADS - 1), thread_name_prefix="funcgrad-jit")
    return _pool


def parallel_call(kernel, n0, args, sizes):
    """Run ``kernel(*args, *sizes, lo, hi)`` over chunks of ``[0, n0)`` on the pool and this thread."""
    nthreads = _NTHREADS
    if nthreads <= 1 or n0 < 2:
        kernel(*args, *sizes, 0, n0)
        return
    nchunks = min(n0, 4 * nthreads)
    bounds = [(n0 * i // nchunks, n0 * (i + 1) // nchunks) for i in range(nchunks)]
    it = iter(bounds)  # shared: each thread takes the next chunk (under the GIL)

    def work():
        for lo, hi in it:
            kernel(*args, *sizes, lo, hi)

    pool = _get_pool()
    futures = [pool.submit(work) for _ in range(min(nthreads - 1, nchunks - 1))]
    work()
    for f in futures:
        f.result()
