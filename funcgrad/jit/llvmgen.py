"""Compile the numba subset that kernels are written in straight to LLVM IR, without numba.

A fused kernel (:mod:`funcgrad.jit.kernels`) is numba source: a loop nest of scalar
expressions from the primitives' templates, calling :mod:`funcgrad.jit.fastmath`. Compiling it
with numba costs its import (~0.2 s), its one-time initialisation (~0.2 s) and per kernel
typing, lowering and optimisation of a large module (~0.1-0.5 s). This module compiles the
*same source* to a small LLVM IR module that llvmlite optimises and assembles in milliseconds:

* the function is parsed with :mod:`ast`; fastmath functions it calls are compiled from
  fastmath.py's own source (specialised per argument types and always inlined, as numba's
  ``forceinline``), its ``@intrinsic`` helpers are implemented here by name;
* **types follow numba's rules**, so that results are numba's: operators pick their signature
  the way numba's ``ConcreteTemplate`` does (the case lists of ``numba/core/typing/builtins.py``
  rated by numba's conversion table, literals included); variables are typed per assignment,
  in SSA form as numba types them, and unify (NumPy's promotion) only where control flow
  merges; NumPy functions choose their ufunc loop as numba does; each operation is lowered to
  the instructions numba emits (``nsw`` signed arithmetic, ``fsub -0.0, x`` negation, integer
  division by zero giving 0, the same intrinsics and libm calls), and llvmlite optimises with
  numba's pipeline settings. Kernel array arguments are ``noalias`` (the executor's outputs are
  fresh arrays): numba's loops check for overlap at run time instead, which changes nothing
  but which NaN an operation on two NaNs returns;
* anything outside the subset raises :class:`Unsupported`, and the caller falls back to numba.

``tests/test_jit_cache.py`` checks the typing tables against numba's typing context and the
kernels against numba's, bit for bit (NaN payloads aside).
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import struct

import numpy as np

from .native import Unsupported

__all__ = ["Unsupported", "compile_kernel", "kernel_module"]


# -- types ---------------------------------------------------------------------------------------

BOOL = "bool"
SIGNED = ("int8", "int16", "int32", "int64")
UNSIGNED = ("uint8", "uint16", "uint32", "uint64")
INTS = SIGNED + UNSIGNED
FLOATS = ("float32", "float64")
NUMBERS = (BOOL,) + INTS + FLOATS
_COMPLEX = ("complex64", "complex128")  # only ever candidates of overload resolution

LL = {"bool": "i1", "float32": "float", "float64": "double"}
LL.update({t: f"i{np.dtype(t).itemsize * 8}" for t in INTS})
_MEM = dict(LL, bool="i8")  # in memory (arrays, numba's data model)


def bits(t):
    return 1 if t == BOOL else np.dtype(t).itemsize * 8


def is_int(t):
    return t in INTS


def is_float(t):
    return t in FLOATS


def signed(t):
    return t in SIGNED


class Lit:
    """numba's ``Literal[int]`` / ``Literal[bool]``: a constant's type before it is unified."""

    __slots__ = ("value", "base")

    def __init__(self, value):
        self.value = value
        if isinstance(value, bool):
            self.base = BOOL
        elif -(1 << 63) <= value < (1 << 63):
            self.base = "int64"
        elif 0 <= value < (1 << 64):
            self.base = "uint64"
        else:
            raise Unsupported(f"integer constant {value} does not fit 64 bits")

    def __eq__(self, other):
        return type(other) is Lit and other.value == self.value and type(other.value) is type(self.value)

    def __hash__(self):
        return hash(("lit", self.value))

    def __repr__(self):
        return f"Literal[{self.base}]({self.value})"


class TupleT:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = tuple(items)

    def __eq__(self, other):
        return type(other) is TupleT and other.items == self.items

    def __hash__(self):
        return hash(self.items)

    def __repr__(self):
        return f"Tuple{self.items}"


class ArrayT:
    """An array: ``ndim`` None for a kernel argument (data pointer and size), else a C-contiguous view."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim

    def __eq__(self, other):
        return type(other) is ArrayT and (other.dtype, other.ndim) == (self.dtype, self.ndim)

    def __hash__(self):
        return hash((self.dtype, self.ndim))

    def __repr__(self):
        return f"array({self.dtype}, {self.ndim})"


def unlit(t):
    return t.base if type(t) is Lit else t


# numba's conversion kinds (numba.core.typeconv.castgraph.Conversion)
EXACT, PROMOTE, SAFE, UNSAFE = 1, 2, 3, 4

# can_convert(from, to) of numba's typing context between the number types: one row per source
# type, columns in _CONV_COLS order (checked against numba by tests/test_jit_cache.py).
_CONV_COLS = NUMBERS + _COMPLEX
_CONV_ROWS = {
    "bool": "1333333333333",
    "int8": "4122244443333",
    "int16": "4412244443333",
    "int32": "4441244444343",
    "int64": "4444144444343",
    "uint8": "4433312223333",
    "uint16": "4443341224343",
    "uint32": "4444344124343",
    "uint64": "4444444414343",
    "float32": "4444444441233",
    "float64": "4444444444143",
}
CONV = {(a, b): int(row[j]) for a, row in _CONV_ROWS.items() for j, b in enumerate(_CONV_COLS) if row[j] != "-"}


def can_convert(a, b):
    """numba's ``typing_context.can_convert`` for numbers and literals (None: never)."""
    if type(a) is Lit:
        c = CONV.get((a.base, b))
        return None if c is None else max(c, PROMOTE)
    if a == b:
        return EXACT
    return CONV.get((a, b))


def resolve(cases, args, unsafe=True):
    """The case numba's ``resolve_overload`` picks: least (unsafe, safe, promote) conversions,
    first listed on ties. ``cases`` are ``(result, *formals)``."""
    best, best_rate = None, None
    for case in cases:
        formals = case[1:]
        if len(formals) != len(args):
            continue
        rate = [0, 0, 0]
        for a, f in zip(args, formals):
            c = can_convert(a, f)
            if c is None or (not unsafe and c >= UNSAFE):
                break
            if c == UNSAFE:
                rate[0] += 1
            elif c == SAFE:
                rate[1] += 1
            elif c == PROMOTE:
                rate[2] += 1
        else:
            if best is None or rate < best_rate:
                best, best_rate = case, rate
    if best is not None and any(t in _COMPLEX for t in best):
        raise Unsupported(f"complex arithmetic for {args}")
    return best


def _choose_int(*ts):
    width = max(64, *(bits(t) for t in ts))
    return f"{'' if any(signed(t) for t in ts) else 'u'}int{width}"


_MACHINE = ("int64", "uint64")
_INT_BINOP = [(_choose_int(a, b), a, b) for a, b in itertools.product(_MACHINE, _MACHINE)]
_REAL = [(t, t, t) for t in FLOATS]
_CPLX = [(t, t, t) for t in _COMPLEX]

CASES = {
    "add": _INT_BINOP + _REAL + _CPLX,
    "sub": _INT_BINOP + _REAL + _CPLX,
    "mul": _INT_BINOP + _REAL + _CPLX,
    "mod": _INT_BINOP + _REAL,
    "floordiv": _INT_BINOP + _REAL,
    "truediv": [("float64", a, b) for a, b in itertools.product(_MACHINE, _MACHINE)] + _REAL + _CPLX,
    "pow": _INT_BINOP
    + [("float32", "float32", t) for t in ("int32", "int64", "uint64")]
    + [("float64", "float64", t) for t in ("int32", "int64", "uint64")]
    + _REAL
    + _CPLX,
    "shift": [("int64", t, t2) for t in SIGNED for t2 in ("uint64", "int64")]
    + [("uint64", t, t2) for t in UNSIGNED for t2 in ("uint64", "int64")],
    "bitwise": [(BOOL, BOOL, BOOL)] + _INT_BINOP,
    "invert": [(BOOL, BOOL)] + [(_choose_int(t), t) for t in UNSIGNED + SIGNED],
    "unary": [(_choose_int(t), t) for t in UNSIGNED + SIGNED]
    + [(t, t) for t in FLOATS]
    + [(t, t) for t in _COMPLEX]
    + [("int64", BOOL)],
    "cmp": [(BOOL, BOOL, BOOL)] + [(BOOL, t, t) for t in SIGNED + UNSIGNED + FLOATS],
    "eq": [(BOOL, BOOL, BOOL)] + [(BOOL, t, t) for t in SIGNED + UNSIGNED + FLOATS + _COMPLEX],
    "abs": [(t, t) for t in SIGNED + UNSIGNED + FLOATS] + [("float32", "complex64"), ("float64", "complex128")],
    "math1": [("float64", "int64"), ("float64", "uint64"), ("float32", "float32"), ("float64", "float64")],
    "math2": [
        ("float64", "int64", "int64"),
        ("float64", "uint64", "uint64"),
        ("float32", "float32", "float32"),
        ("float64", "float64", "float64"),
    ],
}
_NO_UNSAFE = ("shift", "bitwise", "invert")

_BINOPS = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "truediv",
    ast.FloorDiv: "floordiv",
    ast.Mod: "mod",
    ast.Pow: "pow",
    ast.LShift: "shl",
    ast.RShift: "shr",
    ast.BitAnd: "and",
    ast.BitOr: "or",
    ast.BitXor: "xor",
}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def binop_case(op, a, b):
    """(result, formal a, formal b) of numba's typing of ``a <op> b``."""
    kind = {"shl": "shift", "shr": "shift", "and": "bitwise", "or": "bitwise", "xor": "bitwise"}.get(op, op)
    case = resolve(CASES[kind], (a, b), unsafe=kind not in _NO_UNSAFE)
    if case is None:
        raise Unsupported(f"no numba signature for {op}{(a, b)}")
    return case


def cmp_case(op, a, b):
    case = resolve(CASES["eq" if op in ("==", "!=") else "cmp"], (a, b))
    if case is None:
        raise Unsupported(f"no numba signature for {a} {op} {b}")
    return case


def unify(a, b):
    """numba's ``unify_pairs`` for the types here (numbers: NumPy's promotion)."""
    if a == b:
        return a
    if type(a) is TupleT or type(b) is TupleT:
        if type(a) is TupleT and type(b) is TupleT and len(a.items) == len(b.items):
            return TupleT(unify(x, y) for x, y in zip(a.items, b.items))
        raise Unsupported(f"cannot unify {a} and {b}")
    if type(a) is ArrayT or type(b) is ArrayT:
        raise Unsupported(f"cannot unify {a} and {b}")
    return np.promote_types(unlit(a), unlit(b)).name


def ufunc_loop(ufunc, args):
    """(input types, output type) of the loop numba's ``ufunc_find_matching_loop`` picks."""
    dts = [np.dtype(unlit(a)) for a in args]
    mixed = any(d.kind in "iu" for d in dts) and any(d.kind in "cf" for d in dts)
    for cand in ufunc.types:
        ins, out = cand[: ufunc.nin], cand[ufunc.nin + 2 :] if "->" in cand else cand[ufunc.nin :]
        if "e" in ins or "O" in ins:
            continue
        ok = True
        for d, c in zip(dts, ins):
            to = np.dtype(c)
            if c in "mM" or not ((mixed and d.kind in "iu" and to.kind in "cf") or np.can_cast(d, to, "safe")):
                ok = False
                break
        if ok:
            names = [np.dtype(c).name for c in ins] + [np.dtype(c).name for c in out]
            if any(n not in NUMBERS for n in names):
                raise Unsupported(f"np.{ufunc.__name__} loop {cand}")
            return names[: ufunc.nin], names[ufunc.nin]
    raise Unsupported(f"no loop of np.{ufunc.__name__} for {args}")


# -- values ----------------------------------------------------------------------------------------


def _fconst(t, v):
    """LLVM text of a float constant of type ``t`` (exact: hexadecimal of the double)."""
    v = float(np.float32(v)) if t == "float32" else float(v)
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", v))[0]


def const(t, v):
    if t == BOOL:
        return "true" if v else "false"
    if is_float(t):
        return _fconst(t, v)
    v = int(v) & ((1 << bits(t)) - 1)
    if v >= 1 << (bits(t) - 1):
        v -= 1 << bits(t)
    return str(v)


class Module:
    """An LLVM module being written: function definitions, declarations and their text."""

    def __init__(self):
        self.decls = {}  # name -> declaration line
        self.defs = []  # definition texts
        self.done = {}  # (function key, arg types) -> (name, return type)
        self.counter = itertools.count()

    def declare(self, name, line):
        self.decls.setdefault(name, line)

    def intrinsic(self, name, ret, args):
        self.declare(name, f"declare {ret} @{name}({', '.join(args)})")
        return name

    def extern_pure(self, name, ret, args):
        # numba's cgutils.insert_pure_function: readonly nounwind
        self.declare(name, f"declare {ret} @{name}({', '.join(args)}) memory(read) nounwind")
        return name

    def text(self):
        return "\n".join(list(self.decls.values()) + self.defs) + "\n"


# -- the environment of a function: globals of its module --------------------------------------------


class JitFunction:
    """A function compiled on demand for the argument types of each call (numba's dispatcher)."""

    def __init__(self, name, node, env, inline):
        self.name, self.node, self.env, self.inline = name, node, env, inline


class Intrinsic:
    def __init__(self, name):
        self.name = name


class PyModule:
    def __init__(self, name, attrs=None):
        self.name, self.attrs = name, attrs or {}


_NP_TYPES = {getattr(np, t) if t != BOOL else np.bool_: t for t in NUMBERS}


def _host_has_avx512():
    from llvmlite import binding

    return "+avx512f" in binding.get_host_cpu_features().flatten()


def _const_eval(node, env):
    """Value of a module-level constant expression (numbers, tuples, numpy scalar types)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_const_eval(e, env) for e in node.elts)
    if isinstance(node, ast.Name):
        if node.id in env and not isinstance(env[node.id], (JitFunction, Intrinsic, PyModule)):
            return env[node.id]
        raise Unsupported(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np":
        v = getattr(np, node.attr)
        if v in _NP_TYPES or isinstance(v, float):
            return v
        raise Unsupported(f"np.{node.attr}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_const_eval(node.operand, env)
    if isinstance(node, ast.BinOp):
        a, b = _const_eval(node.left, env), _const_eval(node.right, env)
        return _fold(node.op, a, b)
    raise Unsupported(ast.dump(node)[:60])


def _fold(op, a, b):
    if not all(type(x) in (int, float) for x in (a, b)):
        raise Unsupported("constant folding of non-numbers")
    ops = {
        ast.Add: lambda: a + b,
        ast.Sub: lambda: a - b,
        ast.Mult: lambda: a * b,
        ast.Div: lambda: a / b,
        ast.FloorDiv: lambda: a // b,
        ast.Mod: lambda: a % b,
        ast.Pow: lambda: a**b,
        ast.LShift: lambda: a << b,
        ast.RShift: lambda: a >> b,
        ast.BitAnd: lambda: a & b,
        ast.BitOr: lambda: a | b,
        ast.BitXor: lambda: a ^ b,
    }
    if type(op) not in ops:
        raise Unsupported("operator")
    return ops[type(op)]()


_FASTMATH = None


def fastmath_env():
    """The globals of funcgrad/jit/fastmath.py, read from its source (numba is not imported)."""
    global _FASTMATH
    if _FASTMATH is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastmath.py")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        env = {"np": PyModule("np"), "math": PyModule("math")}
        _exec_module(tree.body, env)
        _FASTMATH = env
    return _FASTMATH


def _decorator_name(d):
    if isinstance(d, ast.Call):
        d = d.func
    return d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else None


def _exec_module(body, env):
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef):
            decos = [_decorator_name(d) for d in stmt.decorator_list]
            if "intrinsic" in decos:
                env[stmt.name] = Intrinsic(stmt.name)
            elif "_jit" in decos or "njit" in decos:
                env[stmt.name] = JitFunction(stmt.name, stmt, env, inline=True)
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, v = stmt.targets[0].id, stmt.value
            if isinstance(v, ast.Call) and _decorator_name(v.func) == "_minmax_intrinsic":
                env[name] = Intrinsic(name)  # rmax, rmin
            elif isinstance(v, ast.Call) and _decorator_name(v.func) == "_host_has_avx512":
                env[name] = _host_has_avx512()
            else:
                try:
                    env[name] = _const_eval(v, env)
                except Unsupported:
                    env.pop(name, None)
        elif isinstance(stmt, ast.If):
            cond = _const_eval(stmt.test, env)
            _exec_module(stmt.body if cond else stmt.orelse, env)


def kernel_env():
    """The globals of a generated kernel module (see kernels.build)."""
    return {"np": PyModule("np"), "math": PyModule("math"), "fm": PyModule("fm", fastmath_env())}


# -- function compiler -------------------------------------------------------------------------------


class Value:
    """An SSA value (LLVM text) of a type; arrays carry their data pointer and shape values."""

    __slots__ = ("ref", "type", "shape", "items")

    def __init__(self, ref, type_, shape=None, items=None):
        self.ref, self.type, self.shape, self.items = ref, type_, shape, items


class FunctionCompiler:
    """Compile one function body for given argument types into ``module``.

    Variables are typed as numba types them, in SSA form: each assignment makes a value of its
    own type (``mod = np.fmod(a, b)`` is float32 even if ``mod`` is float64 elsewhere); where
    control flow merges (after an ``if``, at a loop's head) a variable defined differently on
    the incoming paths becomes the unification of their types (a phi: on each path the value,
    converted, is stored to a slot, which is loaded after the merge). The types at a loop's
    head are a fixpoint over its body. A typing pass over the whole body (``emit=False``: types
    only) finds the return type first."""

    def __init__(self, module, fn, argtypes, llname, attrs=""):
        self.m = module
        self.fn = fn
        self.node = fn.node
        self.globals = fn.env
        self.argtypes = list(argtypes)
        self.llname = llname
        self.attrs = attrs
        self.lines = []
        self.cur = self.lines  # where emit() appends (a phi's stores go to their path's end)
        self.tmp = itertools.count()
        self.vars = {}  # name -> Value of its reaching definition
        self.ret = None
        self.block_ended = False
        self.locals = set()
        self.allocas = []

    # -- typing ---------------------------------------------------------------------------------
    def _params(self):
        a = self.node.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            raise Unsupported(f"{self.fn.name}: only plain positional parameters")
        params = [p.arg for p in a.args]
        if len(params) != len(self.argtypes):
            raise Unsupported(f"{self.fn.name}: {len(self.argtypes)} arguments for {len(params)} parameters")
        self.params = params
        self.locals = set(params) | _assigned_names(self.node.body)

    def infer(self):
        """The return type (``self.ret``), from a typing pass over the body."""
        self._params()
        env = {p: Value(None, unlit(t)) for p, t in zip(self.params, self.argtypes)}
        saved = self.vars
        try:
            self._type_block(self.node.body, env)
        finally:
            self.vars = saved
        if self.ret is None:
            self.ret = "none"

    def _type_block(self, body, env):
        """Types through ``body`` from ``env`` (name -> type-only Value): (env after, ended by return)."""
        for s in body:
            self.vars = env
            if isinstance(s, ast.Assign):
                self._check_assign(s)
                self._bind(
                    s.targets[0], self.expr(s.value, emit=False) if not isinstance(s.value, ast.Tuple) else None, s
                )
            elif isinstance(s, ast.AugAssign):
                if not isinstance(s.target, ast.Name):
                    raise Unsupported("augmented assignment target")
                env[s.target.id] = self.expr(ast.BinOp(left=s.target, op=s.op, right=s.value), emit=False)
            elif isinstance(s, ast.If):
                self.expr(s.test, emit=False)
                e1, x1 = self._type_block(s.body, dict(env))
                e2, x2 = self._type_block(s.orelse, dict(env))
                live = [e for e, x in ((e1, x1), (e2, x2)) if not x]
                if not live:
                    return env, True
                env = self._merge_types(live)
            elif isinstance(s, ast.For):
                env = self._type_loop(s, env)
            elif isinstance(s, ast.Return):
                t = "none" if s.value is None else _unlit_deep(self.expr(s.value, emit=False).type)
                self.ret = t if self.ret is None else unify(self.ret, t)
                return env, True
            elif isinstance(s, ast.Expr):
                if not isinstance(s.value, ast.Constant):
                    self.expr(s.value, emit=False)
            elif not isinstance(s, ast.Pass):
                raise Unsupported(type(s).__name__)
        self.vars = env
        return env, False

    def _check_assign(self, s):
        if len(s.targets) != 1:
            raise Unsupported("chained assignment")
        tgt = s.targets[0]
        if isinstance(tgt, ast.Tuple) and not all(isinstance(e, ast.Name) for e in tgt.elts):
            raise Unsupported("tuple target")
        if not isinstance(tgt, (ast.Name, ast.Tuple, ast.Subscript)):
            raise Unsupported("assignment target")

    def _bind(self, tgt, val, s, emit=False):
        """Assign ``val`` (or, for a literal tuple on the right, each element) to ``tgt``."""
        if isinstance(tgt, ast.Name):
            self.vars[tgt.id] = val
        elif isinstance(tgt, ast.Tuple):
            if isinstance(s.value, ast.Tuple):
                if len(s.value.elts) != len(tgt.elts):
                    raise Unsupported("tuple unpacking")
                vals = [self.expr(v, emit=emit) for v in s.value.elts]
            else:
                if type(val.type) is not TupleT or len(val.type.items) != len(tgt.elts):
                    raise Unsupported("tuple unpacking")
                vals = val.items if val.items is not None else [Value(None, t) for t in val.type.items]
            for e, v in zip(tgt.elts, vals):
                self.vars[e.id] = v
        elif emit:
            self.setitem(tgt, val)
        else:
            self._address_type(tgt)

    def _address_type(self, tgt):
        """Type-check an item assignment's target (only kernels index arrays)."""
        raise Unsupported("item assignment")

    @staticmethod
    def _merge_types(envs):
        out = {}
        for k in set.intersection(*[set(e) for e in envs]):
            vals = [e[k] for e in envs]
            if all(v is vals[0] for v in vals):
                out[k] = vals[0]
                continue
            t = vals[0].type
            for v in vals[1:]:
                t = unify(t, v.type)
            out[k] = Value(None, unlit(t))
        return out

    def _type_loop(self, s, env):
        """Env after loop ``s`` (typing pass): the loop-carried variables get their head types,
        the unification of their types before the loop and at the end of its body (a fixpoint)."""
        self._check_range(s)
        self.vars = env
        it = self._range_type([self.expr(a, emit=False).type for a in s.iter.args])
        carried = [k for k in _assigned_names(s.body) if k in env and k != s.target.id]
        head = dict(env)
        for k in carried:
            head[k] = Value(None, unlit(env[k].type))  # a phi
        for _ in range(50):
            body_env = dict(head)
            body_env[s.target.id] = Value(None, it)
            end, ended = self._type_block(s.body, body_env)
            if ended:
                raise Unsupported("return inside a loop")
            changed = False
            for k in carried:
                if k not in end:
                    raise Unsupported(f"{k} undefined after a loop iteration")
                t = unlit(unify(head[k].type, end[k].type))
                if t != head[k].type:
                    head[k], changed = Value(None, t), True
            if not changed:
                break
        else:  # pragma: no cover - types only widen, a few rounds suffice
            raise Unsupported("loop types did not converge")
        self.vars = env
        return {k: v for k, v in head.items() if k in env}

    def _check_range(self, s):
        it = s.iter
        if (
            s.orelse
            or not isinstance(s.target, ast.Name)
            or not isinstance(it, ast.Call)
            or not isinstance(it.func, ast.Name)
            or it.func.id != "range"
            or not 1 <= len(it.args) <= 2
            or it.keywords
        ):
            raise Unsupported("only `for i in range(...)` loops")

    def _range_type(self, ts):
        ts = [unlit(t) for t in ts]
        if not all(is_int(t) for t in ts):
            raise Unsupported(f"range over {ts}")
        if all(not signed(t) for t in ts):
            return "uint64"
        if all(signed(t) for t in ts):
            return "int64"
        raise Unsupported("range over mixed signedness")

    # -- names ------------------------------------------------------------------------------------
    def lookup(self, name):
        if name in self.vars:
            return ("var", self.vars[name])
        if name in self.locals:
            raise Unsupported(f"{name} may be used before it is assigned")
        if name in self.globals:
            return ("global", self.globals[name])
        if name in _BUILTINS:
            return ("builtin", _BUILTINS[name])
        raise Unsupported(f"unknown name {name}")

    def global_value(self, node):
        """The Python object a global name or attribute refers to, or None for locals."""
        if isinstance(node, ast.Name):
            kind, v = self.lookup(node.id)
            return v if kind in ("global", "builtin") else None
        if isinstance(node, ast.Attribute):
            base = self.global_value(node.value)
            if isinstance(base, PyModule):
                if base.name == "np":
                    if not hasattr(np, node.attr):
                        raise Unsupported(f"np.{node.attr}")
                    return getattr(np, node.attr)
                if base.name == "math":
                    if not hasattr(math, node.attr):
                        raise Unsupported(f"math.{node.attr}")
                    return ("math", node.attr)
                if node.attr not in base.attrs:
                    raise Unsupported(f"{base.name}.{node.attr}")
                return base.attrs[node.attr]
        return None

    # -- emission -------------------------------------------------------------------------------------
    def t(self):
        return f"%t{next(self.tmp)}"

    def emit(self, line):
        self.cur.append("  " + line)

    def alloca(self, line):
        """Allocas go to the entry block (SROA promotes only those; one inside a loop would grow
        the stack at every iteration)."""
        self.allocas.append("  " + line)

    def label(self, name):
        self.cur.append(f"{name}:")
        self.block_ended = False

    def newlabel(self, hint):
        return f"{hint}{next(self.tmp)}"

    def _body_text(self):
        out = []
        for x in self.lines:
            if isinstance(x, list):
                out.extend(x)
            else:
                out.append(x)
        return "\n".join(out[:1] + self.allocas + out[1:])

    def compile(self):
        self.infer()
        if not (type(self.ret) is TupleT or self.ret in NUMBERS or self.ret == "none"):
            raise Unsupported(f"return type {self.ret}")
        params = []
        self.emit_prologue(params)
        self.block(self.node.body)
        if not self.block_ended:
            if self.ret != "none":
                raise Unsupported(f"{self.fn.name}: a path without return")
            self.emit(self.ret_void())
        head = f"define internal {self.llret()} @{self.llname}({', '.join(params)}) {self.attrs}"
        self.m.defs.append(f"{head}{{\n{self._body_text()}\n}}\n")

    def llret(self):
        if self.ret == "none":
            return "void"
        if type(self.ret) is TupleT:
            return "{" + ", ".join(LL[t] for t in self.ret.items) + "}"
        return LL[self.ret]

    def ret_void(self):
        return "ret void"

    def emit_prologue(self, params):
        self.label("entry")
        self.vars = {}
        for name, t in zip(self.params, self.argtypes):
            t = unlit(t)
            if t not in NUMBERS:
                raise Unsupported(f"argument of type {t}")
            params.append(f"{LL[t]} %arg.{name}")
            self.vars[name] = Value(f"%arg.{name}", t)

    # statements
    def block(self, body):
        for s in body:
            if self.block_ended:
                return  # dead code after a return
            self.stmt(s)

    def stmt(self, s):
        if isinstance(s, ast.Assign):
            self._check_assign(s)
            tgt = s.targets[0]
            val = None if isinstance(tgt, ast.Tuple) and isinstance(s.value, ast.Tuple) else self.expr(s.value)
            self._bind(tgt, val, s, emit=True)
        elif isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise Unsupported("augmented assignment target")
            self.vars[s.target.id] = self.expr(ast.BinOp(left=s.target, op=s.op, right=s.value))
        elif isinstance(s, ast.For):
            self.for_range(s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.Return):
            self.return_stmt(s)
        elif isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant):
                return  # docstring
            self.expr(s.value)
        elif isinstance(s, ast.Pass):
            pass
        else:
            raise Unsupported(type(s).__name__)

    def return_stmt(self, s):
        if s.value is None:
            self.emit("ret void")
        else:
            v = self.expr(s.value)
            if type(self.ret) is TupleT:
                agg = "undef"
                lt = self.llret()
                for i, (item, ty) in enumerate(zip(v.items, self.ret.items)):
                    c = self.cast(item, ty)
                    r = self.t()
                    self.emit(f"{r} = insertvalue {lt} {agg}, {LL[ty]} {c.ref}, {i}")
                    agg = r
                self.emit(f"ret {lt} {agg}")
            else:
                c = self.cast(v, self.ret)
                self.emit(f"ret {LL[self.ret]} {c.ref}")
        self.block_ended = True

    def cond(self, node):
        """An i1 for ``node`` in a condition: ``and``/``or``/``not`` jump on each operand's truth."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            c = self.cond(node.operand)
            r = self.t()
            self.emit(f"{r} = xor i1 {c}, true")
            return r
        if not isinstance(node, ast.BoolOp):
            return self.truth(self.expr(node))
        is_or = isinstance(node.op, ast.Or)
        slot = f"%cd.{next(self.tmp)}"
        self.alloca(f"{slot} = alloca i1")
        end = self.newlabel("cdend")
        for i, v in enumerate(node.values):
            c = self.cond(v)
            self.emit(f"store i1 {c}, ptr {slot}")
            if i == len(node.values) - 1:
                self.emit(f"br label %{end}")
                break
            nxt = self.newlabel("cdnext")
            if is_or:
                self.emit(f"br i1 {c}, label %{end}, label %{nxt}")
            else:
                self.emit(f"br i1 {c}, label %{nxt}, label %{end}")
            self.label(nxt)
        self.label(end)
        r = self.t()
        self.emit(f"{r} = load i1, ptr {slot}")
        return r

    def _phi(self, incoming):
        """Merge variable environments: ``incoming`` is [(env, hole)], ``hole`` the list where the
        path's stores go before its branch to the merge. Emits the loads (at the merge label)."""
        merged = {}
        envs = [e for e, _ in incoming]
        for k in sorted(set.intersection(*[set(e) for e in envs])):
            vals = [e[k] for e in envs]
            if all(v is vals[0] for v in vals):
                merged[k] = vals[0]
                continue
            t = vals[0].type
            for v in vals[1:]:
                t = unify(t, v.type)
            t = unlit(t)
            if t not in NUMBERS:
                raise Unsupported(f"{k}: merging values of type {t}")
            slot = f"%phi.{k}.{next(self.tmp)}"
            self.alloca(f"{slot} = alloca {LL[t]}")
            for (_, hole), v in zip(incoming, vals):
                saved, self.cur = self.cur, hole
                c = self.cast(v, t)
                self.emit(f"store {LL[t]} {c.ref}, ptr {slot}")
                self.cur = saved
            r = self.t()
            self.emit(f"{r} = load {LL[t]}, ptr {slot}")
            merged[k] = Value(r, t)
        return merged

    def if_stmt(self, s):
        cond = self.cond(s.test)
        then, other, end = self.newlabel("then"), self.newlabel("else"), self.newlabel("endif")
        self.emit(f"br i1 {cond}, label %{then}, label %{other}")
        before = dict(self.vars)
        incoming = []
        for lab, body in ((then, s.body), (other, s.orelse)):
            self.vars = dict(before)
            self.label(lab)
            self.block(body)
            if not self.block_ended:
                hole = []
                self.cur.append(hole)
                self.emit(f"br label %{end}")
                incoming.append((self.vars, hole))
        if not incoming:
            self.block_ended = True
            return
        self.label(end)
        self.vars = self._phi(incoming)

    def for_range(self, s):
        self._check_range(s)
        args = [self.expr(a) for a in s.iter.args]
        it = self._range_type([a.type for a in args])
        if len(args) == 1:
            start, stop = Value(const(it, 0), it), self.cast(args[0], it)
        else:
            start, stop = self.cast(args[0], it), self.cast(args[1], it)
        before = dict(self.vars)
        # the head types of the loop-carried variables (a typing fixpoint over the body)
        saved = self.vars, self.cur
        self.cur = []  # typing only
        head = self._type_loop(s, {k: v for k, v in before.items()})
        self.vars, self.cur = saved
        carried = [k for k in sorted(_assigned_names(s.body)) if k in before and k != s.target.id]
        slots = {}
        for k in carried:
            t = head[k].type
            if t not in NUMBERS:
                raise Unsupported(f"loop-carried {k} of type {t}")
            slots[k] = f"%loop.{k}.{next(self.tmp)}"
            self.alloca(f"{slots[k]} = alloca {LL[t]}")
            c = self.cast(before[k], t)
            self.emit(f"store {LL[t]} {c.ref}, ptr {slots[k]}")
        cmp = "slt" if signed(it) else "ult"
        idx = f"%i.{next(self.tmp)}"
        self.alloca(f"{idx} = alloca i64")
        self.emit(f"store i64 {start.ref}, ptr {idx}")
        head_l, body_l, end_l = self.newlabel("loop"), self.newlabel("body"), self.newlabel("endloop")
        self.emit(f"br label %{head_l}")
        self.label(head_l)
        at_head = dict(before)
        for k in carried:
            r = self.t()
            t = head[k].type
            self.emit(f"{r} = load {LL[t]}, ptr {slots[k]}")
            at_head[k] = Value(r, t)
        i = self.t()
        self.emit(f"{i} = load i64, ptr {idx}")
        c = self.t()
        self.emit(f"{c} = icmp {cmp} i64 {i}, {stop.ref}")
        self.emit(f"br i1 {c}, label %{body_l}, label %{end_l}")
        self.label(body_l)
        self.vars = dict(at_head)
        self.vars[s.target.id] = Value(i, it)
        nxt = self.t()
        self.emit(f"{nxt} = add {'nsw ' if signed(it) else ''}i64 {i}, 1")
        self.emit(f"store i64 {nxt}, ptr {idx}")
        self.block(s.body)
        if self.block_ended:
            raise Unsupported("return inside a loop")
        for k in carried:
            t = head[k].type
            cv = self.cast(self.vars[k], t)
            self.emit(f"store {LL[t]} {cv.ref}, ptr {slots[k]}")
        self.emit(f"br label %{head_l}")
        self.label(end_l)
        self.vars = at_head  # what the loop defined only inside is undefined after it

    # expressions: every method returns a Value; with emit=False only its type is computed
    def expr(self, node, emit=True):
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or isinstance(v, int):
                return Value(None, Lit(v))
            if isinstance(v, float):
                return Value(_fconst("float64", v), "float64")
            raise Unsupported(f"constant {v!r}")
        if isinstance(node, ast.Name):
            if node.id in self.vars:
                return self.vars[node.id]
            g = self.global_value(node)
            return self.global_const(g, node.id)
        if isinstance(node, ast.Attribute):
            g = self.global_value(node)
            if g is None:
                raise Unsupported("attribute of a local value")
            return self.global_const(g, node.attr)
        if isinstance(node, ast.BinOp):
            try:
                folded = _fold(node.op, self._literal(node.left), self._literal(node.right))
            except (Unsupported, _NotLiteral, ZeroDivisionError, OverflowError, ValueError):
                pass
            else:
                return self.expr(ast.Constant(folded), emit)
            a, b = self.expr(node.left, emit), self.expr(node.right, emit)
            return self.binop(_BINOPS.get(type(node.op)), a, b, emit)
        if isinstance(node, ast.UnaryOp):
            try:
                lit = self._literal(node.operand)
            except _NotLiteral:
                lit = None
            if lit is not None and isinstance(node.op, (ast.USub, ast.UAdd)) and type(lit) in (int, float):
                return self.expr(ast.Constant(-lit if isinstance(node.op, ast.USub) else lit), emit)
            return self.unary(node.op, self.expr(node.operand, emit), emit)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise Unsupported("chained comparison")
            op = _CMPOPS.get(type(node.ops[0]))
            if op is None:
                raise Unsupported("comparison operator")
            return self.compare(op, self.expr(node.left, emit), self.expr(node.comparators[0], emit), emit)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node, emit)
        if isinstance(node, ast.IfExp):
            return self.ifexp(node, emit)
        if isinstance(node, ast.Call):
            return self.call(node, emit)
        if isinstance(node, ast.Subscript):
            return self.getitem(node, emit)
        if isinstance(node, ast.Tuple):
            items = [self.expr(e, emit) for e in node.elts]
            return Value(None, TupleT(i.type for i in items), items=items)
        raise Unsupported(type(node).__name__)

    def _literal(self, node):
        """The Python value of a constant expression CPython folds at compile time."""
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            v = self._literal(node.operand)
            return -v
        if isinstance(node, ast.BinOp):
            return _fold(node.op, self._literal(node.left), self._literal(node.right))
        raise _NotLiteral

    def global_const(self, g, name):
        if isinstance(g, bool) or isinstance(g, int):
            return Value(None, Lit(g))
        if isinstance(g, float):
            return Value(_fconst("float64", g), "float64")
        if isinstance(g, tuple):
            items = [self.global_const(x, name) for x in g]
            return Value(None, TupleT(i.type for i in items), items=items)
        if isinstance(g, np.floating):
            t = np.dtype(type(g)).name
            return Value(_fconst(t, float(g)), t)
        raise Unsupported(f"global {name}")

    def materialize(self, v):
        """The LLVM operand of a value (literals become constants of their base type)."""
        if type(v.type) is Lit:
            return Value(const(v.type.base, v.type.value), v.type.base)
        return v

    def cast(self, v, to, emit=True):
        """numba's ``context.cast`` between numbers."""
        fr = v.type
        if not emit:
            return Value(None, to)
        if type(fr) is Lit:
            v = self.materialize(v)
            fr = v.type
        if fr == to:
            return v
        if fr not in NUMBERS or to not in NUMBERS:
            raise Unsupported(f"cast {fr} -> {to}")
        r = self.t()
        if to == BOOL:
            return Value(self.truth(v), BOOL)
        if fr == BOOL:
            self.emit(f"{r} = zext i1 {v.ref} to i32")
            return self.cast(Value(r, "int32"), to)
        if is_int(fr) and is_int(to):
            if bits(fr) == bits(to):
                return Value(v.ref, to)
            op = "trunc" if bits(to) < bits(fr) else ("sext" if signed(fr) else "zext")
            self.emit(f"{r} = {op} {LL[fr]} {v.ref} to {LL[to]}")
        elif is_int(fr):
            self.emit(f"{r} = {'sitofp' if signed(fr) else 'uitofp'} {LL[fr]} {v.ref} to {LL[to]}")
        elif is_int(to):
            self.emit(f"{r} = {'fptosi' if signed(to) else 'fptoui'} {LL[fr]} {v.ref} to {LL[to]}")
        else:
            self.emit(f"{r} = {'fpext' if bits(fr) < bits(to) else 'fptrunc'} {LL[fr]} {v.ref} to {LL[to]}")
        return Value(r, to)

    def truth(self, v):
        """numba's ``is_true``: an i1."""
        v = self.materialize(v)
        t = v.type
        if t == BOOL:
            return v.ref
        r = self.t()
        if is_int(t):
            self.emit(f"{r} = icmp ne {LL[t]} {v.ref}, 0")
        elif is_float(t):
            self.emit(f"{r} = fcmp une {LL[t]} {v.ref}, 0.0")
        else:
            raise Unsupported(f"truth of {t}")
        return r

    def binop(self, op, a, b, emit):
        if op is None:
            raise Unsupported("binary operator")
        if not all(unlit(x.type) in NUMBERS for x in (a, b)):
            raise Unsupported(f"{op} on {a.type}, {b.type}")
        res, fa, fb = binop_case(op, a.type, b.type)
        if not emit:
            return Value(None, res)
        a, b = self.cast(a, fa), self.cast(b, fb)
        r = self.t()
        if op in ("add", "sub", "mul"):
            if is_float(res):
                self.emit(f"{r} = f{op} {LL[res]} {a.ref}, {b.ref}")
            else:
                a, b = self.cast(a, res), self.cast(b, res)
                self.emit(f"{r} = {op} {'nsw ' if signed(res) else ''}{LL[res]} {a.ref}, {b.ref}")
            return Value(r, res)
        if op == "truediv":
            if is_float(fa):
                self.emit(f"{r} = fdiv {LL[res]} {a.ref}, {b.ref}")
                return Value(r, res)
            a, b = self.cast(a, res), self.cast(b, res)
            self.emit(f"{r} = fdiv double {a.ref}, {b.ref}")
            return Value(r, res)
        if op in ("floordiv", "mod"):
            if is_float(res):
                raise Unsupported("float floor division / modulo")
            return self.int_divmod(op, self.cast(a, res), self.cast(b, res), res)
        if op == "pow":
            if is_float(fa) and fa == fb:
                name = self.m.intrinsic(f"llvm.pow.{'f32' if fa == 'float32' else 'f64'}", LL[fa], [LL[fa]] * 2)
                self.emit(f"{r} = call {LL[fa]} @{name}({LL[fa]} {a.ref}, {LL[fa]} {b.ref})")
                return Value(r, res)
            raise Unsupported("integer power")
        if op in ("shl", "shr"):
            a, b = self.cast(a, res), self.cast(b, res)
            ins = "shl" if op == "shl" else ("ashr" if signed(res) else "lshr")
            self.emit(f"{r} = {ins} {LL[res]} {a.ref}, {b.ref}")
            return Value(r, res)
        if op in ("and", "or", "xor"):
            a, b = self.cast(a, res), self.cast(b, res)
            self.emit(f"{r} = {op} {LL[res]} {a.ref}, {b.ref}")
            return Value(r, res)
        raise Unsupported(op)

    def int_divmod(self, op, a, b, t):
        """numba's ``_int_divmod_impl`` (error_model="numpy": a zero divisor gives 0)."""
        lt = LL[t]
        res = f"%dm.{next(self.tmp)}"
        self.alloca(f"{res} = alloca {lt}")
        self.emit(f"store {lt} 0, ptr {res}")
        z = self.t()
        self.emit(f"{z} = icmp eq {lt} {b.ref}, 0")
        nz, end = self.newlabel("nz"), self.newlabel("dmend")
        self.emit(f"br i1 {z}, label %{end}, label %{nz}")
        self.label(nz)
        if not signed(t):
            r = self.t()
            self.emit(f"{r} = {'udiv' if op == 'floordiv' else 'urem'} {lt} {a.ref}, {b.ref}")
            self.emit(f"store {lt} {r}, ptr {res}")
            self.emit(f"br label %{end}")
        else:
            minval = -(1 << (bits(t) - 1))
            c1, c2, ov = self.t(), self.t(), self.t()
            self.emit(f"{c1} = icmp eq {lt} {a.ref}, {minval}")
            self.emit(f"{c2} = icmp eq {lt} {b.ref}, -1")
            self.emit(f"{ov} = and i1 {c1}, {c2}")
            go = self.newlabel("div")
            self.emit(f"br i1 {ov}, label %{end}, label %{go}")
            self.label(go)
            q, m, x, neg, mnz, cond = (self.t() for _ in range(6))
            self.emit(f"{q} = sdiv {lt} {a.ref}, {b.ref}")
            self.emit(f"{m} = srem {lt} {a.ref}, {b.ref}")
            self.emit(f"{x} = xor {lt} {b.ref}, {m}")
            self.emit(f"{neg} = icmp slt {lt} {x}, 0")
            self.emit(f"{mnz} = icmp ne {lt} {m}, 0")
            self.emit(f"{cond} = and i1 {mnz}, {neg}")
            q1, m1, rq, rm = self.t(), self.t(), self.t(), self.t()
            self.emit(f"{q1} = sub {lt} {q}, 1")
            self.emit(f"{m1} = add {lt} {m}, {b.ref}")
            self.emit(f"{rq} = select i1 {cond}, {lt} {q1}, {lt} {q}")
            self.emit(f"{rm} = select i1 {cond}, {lt} {m1}, {lt} {m}")
            self.emit(f"store {lt} {rq if op == 'floordiv' else rm}, ptr {res}")
            self.emit(f"br label %{end}")
        self.label(end)
        out = self.t()
        self.emit(f"{out} = load {lt}, ptr {res}")
        return Value(out, t)

    def unary(self, op, a, emit):
        t = unlit(a.type)
        if t not in NUMBERS:
            raise Unsupported(f"unary operator on {t}")
        if isinstance(op, ast.Not):
            if not emit:
                return Value(None, BOOL)
            c = self.truth(a)
            r = self.t()
            self.emit(f"{r} = xor i1 {c}, true")
            return Value(r, BOOL)
        kind = "invert" if isinstance(op, ast.Invert) else "unary"
        case = resolve(CASES[kind], (a.type,), unsafe=kind not in _NO_UNSAFE)
        if case is None:
            raise Unsupported(f"unary operator on {a.type}")
        res, formal = case
        if not emit:
            return Value(None, res)
        a = self.cast(a, formal)
        r = self.t()
        if isinstance(op, ast.UAdd):
            return self.cast(a, res)
        if isinstance(op, ast.USub):
            if is_float(formal):
                self.emit(f"{r} = fsub {LL[formal]} {_fconst(formal, -0.0)}, {a.ref}")
                return Value(r, res)
            if formal == BOOL:
                c = self.cast(a, res)
                self.emit(f"{r} = sub {LL[res]} 0, {c.ref}")
                return Value(r, res)
            self.emit(f"{r} = sub {LL[formal]} 0, {a.ref}")
            return self.cast(Value(r, formal), res)
        if isinstance(op, ast.Invert):
            self.emit(f"{r} = xor {LL[formal]} {a.ref}, -1" if formal != BOOL else f"{r} = xor i1 {a.ref}, true")
            return self.cast(Value(r, formal), res)
        raise Unsupported("unary operator")

    def compare(self, op, a, b, emit):
        if not all(unlit(x.type) in NUMBERS for x in (a, b)):
            raise Unsupported(f"comparison of {a.type}, {b.type}")
        _, fa, fb = cmp_case(op, a.type, b.type)
        if not emit:
            return Value(None, BOOL)
        a, b = self.cast(a, fa), self.cast(b, fb)
        r = self.t()
        if is_float(fa):
            pred = {"<": "olt", "<=": "ole", ">": "ogt", ">=": "oge", "==": "oeq", "!=": "une"}[op]
            self.emit(f"{r} = fcmp {pred} {LL[fa]} {a.ref}, {b.ref}")
        else:
            s = "s" if signed(fa) else "u"
            pred = {"<": f"{s}lt", "<=": f"{s}le", ">": f"{s}gt", ">=": f"{s}ge", "==": "eq", "!=": "ne"}[op]
            self.emit(f"{r} = icmp {pred} {LL[fa]} {a.ref}, {b.ref}")
        return Value(r, BOOL)

    def boolop(self, node, emit):
        # `a or b`: a if truth(a) else b (short-circuit), typed as the unification of both
        vals = node.values
        types_ = [self.expr(v, emit=False).type for v in vals]
        t = types_[0]
        for x in types_[1:]:
            t = unify(t, x)
        t = unlit(t)
        if not emit:
            return Value(None, t)
        if t not in NUMBERS:
            raise Unsupported("and/or of non-numbers")
        slot = f"%bo.{next(self.tmp)}"
        self.alloca(f"{slot} = alloca {LL[t]}")
        end = self.newlabel("boend")
        is_or = isinstance(node.op, ast.Or)
        for i, v in enumerate(vals):
            val = self.expr(v)
            c = self.cast(val, t)
            self.emit(f"store {LL[t]} {c.ref}, ptr {slot}")
            if i == len(vals) - 1:
                self.emit(f"br label %{end}")
                break
            cond = self.truth(val)
            nxt = self.newlabel("bonext")
            if is_or:
                self.emit(f"br i1 {cond}, label %{end}, label %{nxt}")
            else:
                self.emit(f"br i1 {cond}, label %{nxt}, label %{end}")
            self.label(nxt)
        self.label(end)
        r = self.t()
        self.emit(f"{r} = load {LL[t]}, ptr {slot}")
        return Value(r, t)

    def ifexp(self, node, emit):
        ta, tb = self.expr(node.body, emit=False).type, self.expr(node.orelse, emit=False).type
        t = unify(ta, tb)
        if not emit:
            return Value(None, t)
        if type(t) is Lit:
            t = t.base
        if t not in NUMBERS:
            raise Unsupported("conditional expression of non-numbers")
        cond = self.cond(node.test)
        slot = f"%ie.{next(self.tmp)}"
        self.alloca(f"{slot} = alloca {LL[t]}")
        a, b, end = self.newlabel("ifa"), self.newlabel("ifb"), self.newlabel("ifend")
        self.emit(f"br i1 {cond}, label %{a}, label %{b}")
        for lab, sub in ((a, node.body), (b, node.orelse)):
            self.label(lab)
            v = self.cast(self.expr(sub), t)
            self.emit(f"store {LL[t]} {v.ref}, ptr {slot}")
            self.emit(f"br label %{end}")
        self.label(end)
        r = self.t()
        self.emit(f"{r} = load {LL[t]}, ptr {slot}")
        return Value(r, t)

    # calls
    def call(self, node, emit):
        if node.keywords:
            raise Unsupported("keyword arguments")
        f = node.func
        if isinstance(f, ast.Attribute) and self.global_value(f.value) is None:
            return self.method(f.attr, self.expr(f.value, emit), node.args, emit)
        g = self.global_value(f)
        args = [self.expr(a, emit) for a in node.args]
        if g in _NP_TYPES or g is bool:
            if len(args) != 1:
                raise Unsupported("number constructor arity")
            to = BOOL if g is bool else _NP_TYPES[g]
            a = args[0]
            if unlit(a.type) not in NUMBERS:
                raise Unsupported(f"{to}() of {a.type}")
            return self.cast(a, to, emit)
        if g is abs:
            return self.abs_(args, emit)
        if isinstance(g, tuple) and g[0] == "math":
            return self.math_call(g[1], args, emit)
        if isinstance(g, np.ufunc):
            return self.ufunc_call(g, args, emit)
        if isinstance(g, JitFunction):
            return self.jit_call(g, args, emit)
        if isinstance(g, Intrinsic):
            return self.intrinsic(g.name, args, emit)
        raise Unsupported(f"call of {ast.dump(f)[:60]}")

    def abs_(self, args, emit):
        if len(args) != 1:
            raise Unsupported("abs arity")
        case = resolve(CASES["abs"], (args[0].type,))
        if case is None:
            raise Unsupported(f"abs of {args[0].type}")
        res, formal = case
        if not emit:
            return Value(None, res)
        a = self.cast(args[0], formal)
        if not signed(formal) and not is_float(formal):
            return Value(a.ref, res)
        r = self.t()
        if is_float(formal):
            name = self.m.intrinsic(f"llvm.fabs.{'f32' if formal == 'float32' else 'f64'}", LL[formal], [LL[formal]])
            self.emit(f"{r} = call {LL[formal]} @{name}({LL[formal]} {a.ref})")
            return Value(r, res)
        n, c = self.t(), self.t()
        self.emit(f"{c} = icmp slt {LL[formal]} {a.ref}, 0")
        self.emit(f"{n} = sub {LL[formal]} 0, {a.ref}")
        self.emit(f"{r} = select i1 {c}, {LL[formal]} {n}, {LL[formal]} {a.ref}")
        return Value(r, res)

    _MATH_INTR = {"fabs": "llvm.fabs", "exp": "llvm.exp", "exp2": "llvm.exp2", "log": "llvm.log"}
    _MATH_INTR.update({"log10": "llvm.log10", "sin": "llvm.sin", "cos": "llvm.cos"})
    _MATH_EXTERN = (
        "log1p",
        "expm1",
        "erf",
        "erfc",
        "tan",
        "asin",
        "acos",
        "atan",
        "asinh",
        "acosh",
        "atanh",
        "sinh",
        "cosh",
        "tanh",
        "log2",
        "sqrt",
        "lgamma",
    )

    def math_call(self, name, args, emit):
        if name == "atan2":
            case = resolve(CASES["math2"], tuple(a.type for a in args))
            if case is None:
                raise Unsupported("math.atan2 arguments")
            res = case[0]
            if not emit:
                return Value(None, res)
            vals = [self.cast(self.cast(a, f), res) for a, f in zip(args, case[1:])]
            fname = "atan2f" if res == "float32" else "atan2"
            self.m.extern_pure(fname, LL[res], [LL[res]] * 2)
            r = self.t()
            self.emit(f"{r} = call {LL[res]} @{fname}({LL[res]} {vals[0].ref}, {LL[res]} {vals[1].ref})")
            return Value(r, res)
        if name not in self._MATH_INTR and name not in self._MATH_EXTERN:
            raise Unsupported(f"math.{name}")
        if len(args) != 1:
            raise Unsupported(f"math.{name} arity")
        case = resolve(CASES["math1"], (args[0].type,))
        if case is None:
            raise Unsupported(f"math.{name} of {args[0].type}")
        res, formal = case
        if not emit:
            return Value(None, res)
        a = self.cast(args[0], formal)
        if is_int(formal):  # numba casts integer arguments to float64 first
            a = self.cast(a, "float64")
        ft = "float32" if res == "float32" else "float64"
        return self.cast(self._math_float(name, a, ft), res)

    def _math_float(self, name, a, ft):
        r = self.t()
        lt = LL[ft]
        if name in self._MATH_INTR:
            fname = self.m.intrinsic(f"{self._MATH_INTR[name]}.{'f32' if ft == 'float32' else 'f64'}", lt, [lt])
        else:
            fname = name + ("f" if ft == "float32" else "")
            self.m.extern_pure(fname, lt, [lt])
        self.emit(f"{r} = call {lt} @{fname}({lt} {a.ref})")
        return Value(r, ft)

    _UFUNC_INTR = {"floor": "llvm.floor", "ceil": "llvm.ceil", "rint": "llvm.rint", "trunc": "llvm.trunc"}
    _UFUNC_INTR.update({"exp2": "llvm.exp2", "fabs": "llvm.fabs"})

    def ufunc_call(self, uf, args, emit):
        name = uf.__name__
        if len(args) != uf.nin or uf.nout != 1:
            raise Unsupported(f"np.{name} arity")
        ins, out = ufunc_loop(uf, [a.type for a in args])
        supported = set(self._UFUNC_INTR) | {"isfinite", "isnan", "isinf", "sqrt", "exp", "log", "fmod", "copysign"}
        supported |= {"power"}
        if name not in supported:
            raise Unsupported(f"np.{name}")
        if not emit:
            return Value(None, out)
        vals = [self.cast(a, t) for a, t in zip(args, ins)]
        ft = ins[0]
        if not is_float(ft) or any(t != ft for t in ins):
            raise Unsupported(f"np.{name} loop {ins}")
        lt = LL[ft]
        sfx = "f32" if ft == "float32" else "f64"
        r = self.t()
        if name in self._UFUNC_INTR:
            fname = self.m.intrinsic(f"{self._UFUNC_INTR[name]}.{sfx}", lt, [lt])
            self.emit(f"{r} = call {lt} @{fname}({lt} {vals[0].ref})")
            res = Value(r, ft)
        elif name == "isnan":
            self.emit(f"{r} = fcmp uno {lt} {vals[0].ref}, {vals[0].ref}")
            res = Value(r, BOOL)
        elif name == "isfinite":
            d = self.t()
            self.emit(f"{d} = fsub {lt} {vals[0].ref}, {vals[0].ref}")
            self.emit(f"{r} = fcmp ord {lt} {d}, {d}")
            res = Value(r, BOOL)
        elif name == "isinf":
            p, n = self.t(), self.t()
            self.emit(f"{p} = fcmp oeq {lt} {vals[0].ref}, {_fconst(ft, math.inf)}")
            self.emit(f"{n} = fcmp oeq {lt} {vals[0].ref}, {_fconst(ft, -math.inf)}")
            self.emit(f"{r} = or i1 {p}, {n}")
            res = Value(r, BOOL)
        elif name in ("sqrt",):
            res = self._math_float("sqrt", vals[0], ft)
        elif name in ("exp", "log"):
            res = self._math_float(name, vals[0], ft)
        elif name == "fmod":
            self.emit(f"{r} = frem {lt} {vals[0].ref}, {vals[1].ref}")
            res = Value(r, ft)
        elif name == "copysign":
            fname = self.m.intrinsic(f"llvm.copysign.{sfx}", lt, [lt, lt])
            self.emit(f"{r} = call {lt} @{fname}({lt} {vals[0].ref}, {lt} {vals[1].ref})")
            res = Value(r, ft)
        elif name == "power":
            fname = self.m.intrinsic(f"llvm.pow.{sfx}", lt, [lt, lt])
            self.emit(f"{r} = call {lt} @{fname}({lt} {vals[0].ref}, {lt} {vals[1].ref})")
            res = Value(r, ft)
        else:  # pragma: no cover - filtered above
            raise Unsupported(name)
        return self.cast(res, out)

    def jit_call(self, fn, args, emit):
        argtypes = tuple(unlit(a.type) for a in args)  # numba types calls without literals
        key = (id(fn), argtypes)
        done = self.m.done.get(key)
        if done is None:
            llname = f"fm.{fn.name}.{next(self.m.counter)}"
            fc = FunctionCompiler(self.m, fn, argtypes, llname, attrs="alwaysinline nounwind " if fn.inline else "")
            self.m.done[key] = (llname, None)  # recursion guard
            fc.compile()
            done = self.m.done[key] = (llname, fc.ret)
        llname, ret = done
        if ret is None:
            raise Unsupported("recursive function")
        if not emit:
            if type(ret) is TupleT:
                return Value(None, ret, items=[Value(None, x) for x in ret.items])
            return Value(None, ret)
        vals = [self.cast(a, t) for a, t in zip(args, argtypes)]
        arglist = ", ".join(f"{LL[t]} {v.ref}" for v, t in zip(vals, argtypes))
        if ret == "none":
            self.emit(f"call void @{llname}({arglist})")
            return Value(None, "none")
        r = self.t()
        if type(ret) is TupleT:
            lt = "{" + ", ".join(LL[t] for t in ret.items) + "}"
            self.emit(f"{r} = call {lt} @{llname}({arglist})")
            items = []
            for i, t in enumerate(ret.items):
                x = self.t()
                self.emit(f"{x} = extractvalue {lt} {r}, {i}")
                items.append(Value(x, t))
            return Value(None, ret, items=items)
        self.emit(f"{r} = call {LL[ret]} @{llname}({arglist})")
        return Value(r, ret)

    def intrinsic(self, name, args, emit):
        ts = [unlit(a.type) for a in args]
        lits = [a.type for a in args]
        if emit:
            args = [self.materialize(a) for a in args]
        r = self.t() if emit else None

        def need(cond):
            if not cond:
                raise Unsupported(f"fm.{name}{tuple(lits)}")

        if name in ("f32_bits", "f64_bits"):
            ft, it = ("float32", "int32") if name == "f32_bits" else ("float64", "int64")
            need(len(args) == 1 and lits[0] == ft)
            if emit:
                self.emit(f"{r} = bitcast {LL[ft]} {args[0].ref} to {LL[it]}")
            return Value(r, it)
        if name in ("f32_from_bits", "f64_from_bits"):
            need(len(args) == 1 and is_int(ts[0]))
            ft, w = ("float32", 32) if name == "f32_from_bits" else ("float64", 64)
            if not emit:
                return Value(None, ft)
            v, t = args[0].ref, ts[0]
            if bits(t) > w:
                x = self.t()
                self.emit(f"{x} = trunc {LL[t]} {v} to i{w}")
                v = x
            elif bits(t) < w:
                x = self.t()
                ext = "zext" if name == "f32_from_bits" or not signed(t) else "sext"
                self.emit(f"{x} = {ext} {LL[t]} {v} to i{w}")
                v = x
            self.emit(f"{r} = bitcast i{w} {v} to {LL[ft]}")
            return Value(r, ft)
        if name == "fma":
            need(len(args) == 3 and is_float(lits[0]) and lits[0] == lits[1] == lits[2])
            t = ts[0]
            if emit:
                fname = self.m.intrinsic(f"llvm.fma.{'f32' if t == 'float32' else 'f64'}", LL[t], [LL[t]] * 3)
                self.emit(f"{r} = call {LL[t]} @{fname}({', '.join(f'{LL[t]} {a.ref}' for a in args)})")
            return Value(r, t)
        if name in ("radd", "rmax", "rmin"):
            need(len(args) == 2 and is_float(lits[0]) and lits[0] == lits[1])
            t = ts[0]
            if emit:
                if name == "radd":
                    self.emit(f"{r} = fadd reassoc nsz {LL[t]} {args[0].ref}, {args[1].ref}")
                else:
                    op = "maximum" if name == "rmax" else "minimum"
                    fname = self.m.intrinsic(f"llvm.{op}.{'f32' if t == 'float32' else 'f64'}", LL[t], [LL[t]] * 2)
                    self.emit(f"{r} = call {LL[t]} @{fname}({LL[t]} {args[0].ref}, {LL[t]} {args[1].ref})")
            return Value(r, t)
        if name == "ldexp":
            need(len(args) == 2 and is_float(lits[0]) and is_int(ts[1]))
            t, it = ts[0], ts[1]
            if not emit:
                return Value(None, t)
            k = args[1].ref
            if bits(it) > 32:
                x = self.t()
                self.emit(f"{x} = trunc {LL[it]} {k} to i32")
                k = x
            elif bits(it) < 32:
                x = self.t()
                self.emit(f"{x} = sext {LL[it]} {k} to i32")
                k = x
            sfx = "f32" if t == "float32" else "f64"
            fname = self.m.intrinsic(f"llvm.ldexp.{sfx}.i32", LL[t], [LL[t], "i32"])
            self.emit(f"{r} = call {LL[t]} @{fname}({LL[t]} {args[0].ref}, i32 {k})")
            return Value(r, t)
        raise Unsupported(f"intrinsic {name}")

    # arrays (the kernel function only)
    def method(self, name, obj, args, emit):
        raise Unsupported(f"method {name}")

    def getitem(self, node, emit):
        base = self.expr(node.value, emit)
        if type(base.type) is TupleT:
            try:
                i = self._literal(node.slice)
            except _NotLiteral:
                raise Unsupported("tuple index must be a constant") from None
            if not isinstance(i, int) or not -len(base.items) <= i < len(base.items):
                raise Unsupported("tuple index")
            return base.items[i]
        raise Unsupported("subscript")

    def setitem(self, node, val):
        raise Unsupported("item assignment")


_BUILTINS = {"abs": abs, "bool": bool, "range": range}


def _unlit_deep(t):
    if type(t) is TupleT:
        return TupleT(unlit(x) for x in t.items)
    return unlit(t)


def _assigned_names(body):
    """Names a function body assigns (its locals, as Python scopes them)."""
    out = set()
    for node in body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                out.add(sub.id)
    return out


class _NotLiteral(Exception):
    pass


class KernelCompiler(FunctionCompiler):
    """The ``kernel`` function of a generated module: arrays are (data pointer, size) arguments,
    ``.reshape`` makes C-contiguous views, the function returns 0, or 1 when a reshape does not
    match the array's size (numba raises there)."""

    def __init__(self, module, fn, argtypes, llname):
        super().__init__(module, fn, argtypes, llname, attrs="")

    def emit_prologue(self, params):
        self.label("entry")
        self.vars = {}
        for name, t in zip(self.params, self.argtypes):
            if type(t) is ArrayT:
                # noalias: outputs are fresh arrays and inputs are only read, so no memory one
                # argument writes is reached through another (LLVM then needs no runtime
                # overlap checks: smaller code, compiled faster; the arithmetic is the same)
                params += [f"ptr noalias %arg.{name}", f"i64 %size.{name}"]
                self.vars[name] = Value(f"%arg.{name}", t, shape=[f"%size.{name}"])
            else:
                params.append(f"{LL[t]} %arg.{name}")
                self.vars[name] = Value(f"%arg.{name}", t)

    def llret(self):
        return "i32"

    def ret_void(self):
        return "ret i32 0"

    def compile(self):
        self.infer()
        if self.ret != "none":
            raise Unsupported("kernel returns a value")
        params = []
        self.emit_prologue(params)
        self.block(self.node.body)
        if not self.block_ended:
            self.emit("ret i32 0")
        self.lines.append("fail:")
        self.lines.append("  ret i32 1")
        self.m.defs.append(f"define internal i32 @{self.llname}({', '.join(params)}) {{\n{self._body_text()}\n}}\n")

    def _address_type(self, tgt):
        self._address(tgt, emit=False)

    def return_stmt(self, s):
        if s.value is not None:
            raise Unsupported("kernel returns a value")
        self.emit("ret i32 0")
        self.block_ended = True

    def method(self, name, obj, args, emit):
        if type(obj.type) is not ArrayT:
            raise Unsupported(f"method {name} of {obj.type}")
        at = obj.type
        if name == "reshape":
            if len(args) != 1:
                raise Unsupported("reshape arity")
            shape = self.expr(args[0], emit)
            items = shape.items if type(shape.type) is TupleT else [shape]
            if not all(is_int(unlit(i.type)) for i in items):
                raise Unsupported("reshape to non-integer sizes")
            if not emit:
                return Value(None, ArrayT(at.dtype, len(items)))
            dims = [self.cast(i, "int64").ref for i in items]
            total = dims[0]
            for d in dims[1:]:
                r = self.t()
                self.emit(f"{r} = mul i64 {total}, {d}")
                total = r
            size = obj.shape[0] if at.ndim is None else self._size(obj)
            c = self.t()
            ok = self.newlabel("reshaped")
            self.emit(f"{c} = icmp eq i64 {total}, {size}")
            self.emit(f"br i1 {c}, label %{ok}, label %fail")
            self.label(ok)
            return Value(obj.ref, ArrayT(at.dtype, len(items)), shape=dims)
        if name == "fill":
            if len(args) != 1:
                raise Unsupported("fill arity")
            v = self.expr(args[0], emit)
            if not emit:
                return Value(None, "none")
            v = self.cast(v, at.dtype)
            size = obj.shape[0] if at.ndim is None else self._size(obj)
            mt = _MEM[at.dtype]
            if at.dtype == BOOL:
                x = self.t()
                self.emit(f"{x} = zext i1 {v.ref} to i8")
                v = Value(x, at.dtype)
            idx = f"%i.{next(self.tmp)}"
            self.alloca(f"{idx} = alloca i64")
            self.emit(f"store i64 0, ptr {idx}")
            head, body, end = self.newlabel("fill"), self.newlabel("fillbody"), self.newlabel("fillend")
            self.emit(f"br label %{head}")
            self.label(head)
            i, c = self.t(), self.t()
            self.emit(f"{i} = load i64, ptr {idx}")
            self.emit(f"{c} = icmp slt i64 {i}, {size}")
            self.emit(f"br i1 {c}, label %{body}, label %{end}")
            self.label(body)
            p, n = self.t(), self.t()
            self.emit(f"{p} = getelementptr inbounds {mt}, ptr {obj.ref}, i64 {i}")
            self.emit(f"store {mt} {v.ref}, ptr {p}")
            self.emit(f"{n} = add nsw i64 {i}, 1")
            self.emit(f"store i64 {n}, ptr {idx}")
            self.emit(f"br label %{head}")
            self.label(end)
            return Value(None, "none")
        raise Unsupported(f"array method {name}")

    def _size(self, arr):
        total = arr.shape[0]
        for d in arr.shape[1:]:
            r = self.t()
            self.emit(f"{r} = mul i64 {total}, {d}")
            total = r
        return total

    def _address(self, node, emit):
        base = self.expr(node.value, emit)
        if type(base.type) is not ArrayT or base.type.ndim is None:
            raise Unsupported("indexing an array that is not a reshaped view")
        idx = node.slice
        elts = idx.elts if isinstance(idx, ast.Tuple) else [idx]
        if len(elts) != base.type.ndim:
            raise Unsupported("partial indexing")
        vals = [self.expr(e, emit) for e in elts]
        if not all(is_int(unlit(v.type)) for v in vals):
            raise Unsupported("non-integer index")
        if not emit:
            return base, None
        flat = None
        for k, v in enumerate(vals):
            iv = self.cast(v, "uint64" if not signed(unlit(v.type)) else "int64").ref
            if flat is None:
                flat = iv
            else:
                r, r2 = self.t(), self.t()
                self.emit(f"{r} = mul i64 {flat}, {base.shape[k]}")
                self.emit(f"{r2} = add i64 {r}, {iv}")
                flat = r2
        p = self.t()
        self.emit(f"{p} = getelementptr inbounds {_MEM[base.type.dtype]}, ptr {base.ref}, i64 {flat}")
        return base, p

    def getitem(self, node, emit):
        base = self.expr(node.value, emit=False)
        if type(base.type) is TupleT:
            return super().getitem(node, emit)
        arr, p = self._address(node, emit)
        dt = arr.type.dtype
        if not emit:
            return Value(None, dt)
        r = self.t()
        self.emit(f"{r} = load {_MEM[dt]}, ptr {p}")
        if dt == BOOL:
            b = self.t()
            self.emit(f"{b} = icmp ne i8 {r}, 0")
            return Value(b, BOOL)
        return Value(r, dt)

    def setitem(self, node, val):
        arr, p = self._address(node, True)
        dt = arr.type.dtype
        if unlit(val.type) not in NUMBERS:
            raise Unsupported("storing a non-number")
        v = self.cast(val, dt)
        ref = v.ref
        if dt == BOOL:
            ref = self.t()
            self.emit(f"{ref} = zext i1 {v.ref} to i8")
        self.emit(f"store {_MEM[dt]} {ref}, ptr {p}")


def compile_kernel(source, argtypes, llname):
    """IR text of the ``kernel`` function of a generated module's ``source`` (a module with
    ``kernel`` calling ``fm`` functions), for argument types ``argtypes`` (``ArrayT(dtype, None)``
    for arrays, number type names for scalars). Raises :class:`Unsupported`."""
    tree = ast.parse(source)
    node = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "kernel"), None)
    if node is None:
        raise Unsupported("no kernel function")
    m = Module()
    fn = JitFunction("kernel", node, kernel_env(), inline=False)
    KernelCompiler(m, fn, argtypes, llname).compile()
    return m


# -- entry points --------------------------------------------------------------------------------


def entry_ir(sym, kernel_fn, sig):
    """``i32 sym(i64 *block)``: the kernel's arguments read from the slots the trampoline fills
    (an array: data pointer, size; a scalar: its bits, zero-extended; an integer)."""
    lines = [f"define i32 @{sym}(ptr %block) {{", "entry:"]
    args, slot = [], 0

    def at(k):
        lines.append(f"  %p{k} = getelementptr i64, ptr %block, i64 {k}")
        return f"%p{k}"

    for _ in sig.arrays:
        lines.append(f"  %a{slot} = load ptr, ptr {at(slot)}")
        lines.append(f"  %a{slot + 1} = load i64, ptr {at(slot + 1)}")
        args += [f"ptr %a{slot}", f"i64 %a{slot + 1}"]
        slot += 2
    for dt in sig.scalars:
        if dt == BOOL:
            lines.append(f"  %b{slot} = load i8, ptr {at(slot)}")
            lines.append(f"  %a{slot} = icmp ne i8 %b{slot}, 0")
        else:
            lines.append(f"  %a{slot} = load {LL[dt]}, ptr {at(slot)}")  # little-endian: the low bytes
        args.append(f"{LL[dt]} %a{slot}")
        slot += 1
    for _ in range(sig.nsizes + 2):
        lines.append(f"  %a{slot} = load i64, ptr {at(slot)}")
        args.append(f"i64 %a{slot}")
        slot += 1
    lines.append(f"  %r = call i32 @{kernel_fn}({', '.join(args)})")
    lines.append("  ret i32 %r")
    lines.append("}")
    return "\n".join(lines) + "\n"


def kernel_module(source, sig, sym):
    """The IR module of a kernel: ``kernel`` compiled from ``source`` for signature ``sig``
    (:class:`funcgrad.jit.native.Signature`) and its entry point ``sym``. Raises
    :class:`Unsupported` for source outside the subset."""
    argtypes = [ArrayT(d, None) for _, d, _ in sig.arrays] + list(sig.scalars) + ["int64"] * (sig.nsizes + 2)
    try:
        m = compile_kernel(source, argtypes, "kernel")
    except (RecursionError, KeyError, AttributeError, TypeError, ValueError, IndexError) as e:
        # a construct this compiler does not expect: numba compiles the kernel instead
        raise Unsupported(f"{type(e).__name__}: {e}") from None
    return m.text() + "\n" + entry_ir(sym, "kernel", sig)


# -- the trampoline: the CPython function every kernel is called through ---------------------------
#
# PyObject *funcgrad_trampoline(PyObject *self, PyObject *const *args, Py_ssize_t nargs):
# ``self`` is a bytes object holding the kernel's descriptor (native.describe), int64 words:
#   [0] entry point  [1] nargs  [2] arrays  [3] scalars  [4] sizes  [5] offset of the label
#   per array:  required flags, ndim, type number, other type number, offset of its description
#   per scalar: scalar type object, width in bits (1: bool), offset of its description
# (offsets are in bytes from the descriptor's start; the strings follow the words).


_MESSAGES = {
    "m.nargs": "%s: takes %lld arguments (%lld given)",
    "m.arg": "%s: argument %lld must be %s",
    "m.bounds": "%s: chunk bounds outside the outer loop",
    "m.sizes": "%s: array sizes do not match the loop sizes",
}


def _cstring(name, text):
    data = text.encode() + b"\0"
    body = "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:02X}" for c in data)
    return f'@{name} = private unnamed_addr constant [{len(data)} x i8] c"{body}"'


def _messages():
    return "\n".join(_cstring(k, v) for k, v in _MESSAGES.items())


def trampoline_ir(layout, gil_work, sym="funcgrad_trampoline"):
    """IR of the trampoline (see above), for the measured object ``layout``."""
    L = layout
    return f"""
declare i64 @PyLong_AsLongLong(ptr)
declare ptr @PyErr_Occurred()
declare ptr @PyErr_Format(ptr, ptr, ...)
declare void @Py_IncRef(ptr)
declare ptr @PyEval_SaveThread()
declare void @PyEval_RestoreThread(ptr)
@PyExc_TypeError = external global ptr
@PyExc_ValueError = external global ptr
@_Py_NoneStruct = external global i8
@funcgrad_type_ndarray = external global i8
{_messages()}

define ptr @{sym}(ptr %self, ptr %args, i64 %nargs) {{
entry:
  %d = getelementptr i8, ptr %self, i64 {L["bytes"]}
  %entryp = load ptr, ptr %d
  %pn = getelementptr i64, ptr %d, i64 1
  %n = load i64, ptr %pn
  %pna = getelementptr i64, ptr %d, i64 2
  %na = load i64, ptr %pna
  %pns = getelementptr i64, ptr %d, i64 3
  %ns = load i64, ptr %pns
  %pnz = getelementptr i64, ptr %d, i64 4
  %nz = load i64, ptr %pnz
  %plab = getelementptr i64, ptr %d, i64 5
  %laboff = load i64, ptr %plab
  %label = getelementptr i8, ptr %d, i64 %laboff
  %slots = add i64 %n, %na
  %block = alloca i64, i64 %slots, align 16
  %okn = icmp eq i64 %nargs, %n
  br i1 %okn, label %arrays, label %badn

badn:
  %te0 = load ptr, ptr @PyExc_TypeError
  %x0 = call ptr (ptr, ptr, ...) @PyErr_Format(ptr %te0, ptr @m.nargs, ptr %label, i64 %n, i64 %nargs)
  ret ptr null

arrays:
  %ad = getelementptr i64, ptr %d, i64 6
  br label %aloop

aloop:
  %j = phi i64 [0, %arrays], [%j1, %anext]
  %amore = icmp slt i64 %j, %na
  br i1 %amore, label %abody, label %scalars

abody:
  %pa = getelementptr ptr, ptr %args, i64 %j
  %o = load ptr, ptr %pa
  %e5 = mul i64 %j, 5
  %pneed = getelementptr i64, ptr %ad, i64 %e5
  %need64 = load i64, ptr %pneed
  %need = trunc i64 %need64 to i32
  %e51 = add i64 %e5, 1
  %pndim = getelementptr i64, ptr %ad, i64 %e51
  %ndim64 = load i64, ptr %pndim
  %e52 = add i64 %e5, 2
  %pta = getelementptr i64, ptr %ad, i64 %e52
  %ta64 = load i64, ptr %pta
  %ta = trunc i64 %ta64 to i32
  %e53 = add i64 %e5, 3
  %ptb = getelementptr i64, ptr %ad, i64 %e53
  %tb64 = load i64, ptr %ptb
  %tb = trunc i64 %tb64 to i32
  %pty = getelementptr i8, ptr %o, i64 {L["type"]}
  %ty = load ptr, ptr %pty
  %isarr = icmp eq ptr %ty, @funcgrad_type_ndarray
  br i1 %isarr, label %acheck, label %bada

acheck:
  %pfl = getelementptr i8, ptr %o, i64 {L["flags"]}
  %fl = load i32, ptr %pfl
  %flm = and i32 %fl, %need
  %c1 = icmp eq i32 %flm, %need
  %pnd = getelementptr i8, ptr %o, i64 {L["nd"]}
  %nd = load i32, ptr %pnd
  %nd64 = sext i32 %nd to i64
  %c2 = icmp eq i64 %nd64, %ndim64
  %pdescr = getelementptr i8, ptr %o, i64 {L["descr"]}
  %descr = load ptr, ptr %pdescr
  %ptn = getelementptr i8, ptr %descr, i64 {L["type_num"]}
  %tn = load i32, ptr %ptn
  %c3a = icmp eq i32 %tn, %ta
  %c3b = icmp eq i32 %tn, %tb
  %c3 = or i1 %c3a, %c3b
  %pbo = getelementptr i8, ptr %descr, i64 {L["byteorder"]}
  %bo = load i8, ptr %pbo
  %c4 = icmp ne i8 %bo, 62
  %c12 = and i1 %c1, %c2
  %c34 = and i1 %c3, %c4
  %cok = and i1 %c12, %c34
  br i1 %cok, label %asize, label %bada

asize:
  %pdims = getelementptr i8, ptr %o, i64 {L["dims"]}
  %dims = load ptr, ptr %pdims
  br label %dloop

dloop:
  %k = phi i64 [0, %asize], [%k1, %dbody]
  %size = phi i64 [1, %asize], [%size1, %dbody]
  %dmore = icmp slt i64 %k, %nd64
  br i1 %dmore, label %dbody, label %astore

dbody:
  %pdim = getelementptr i64, ptr %dims, i64 %k
  %dim = load i64, ptr %pdim
  %size1 = mul i64 %size, %dim
  %k1 = add i64 %k, 1
  br label %dloop

astore:
  %pdata = getelementptr i8, ptr %o, i64 {L["data"]}
  %data = load i64, ptr %pdata
  %s2 = shl i64 %j, 1
  %pb0 = getelementptr i64, ptr %block, i64 %s2
  store i64 %data, ptr %pb0
  %s21 = add i64 %s2, 1
  %pb1 = getelementptr i64, ptr %block, i64 %s21
  store i64 %size, ptr %pb1
  br label %anext

anext:
  %j1 = add i64 %j, 1
  br label %aloop

bada:
  %e54 = add i64 %e5, 4
  %pmsg = getelementptr i64, ptr %ad, i64 %e54
  %msgoff = load i64, ptr %pmsg
  %msg = getelementptr i8, ptr %d, i64 %msgoff
  %te1 = load ptr, ptr @PyExc_TypeError
  %x1 = call ptr (ptr, ptr, ...) @PyErr_Format(ptr %te1, ptr @m.arg, ptr %label, i64 %j, ptr %msg)
  ret ptr null

scalars:
  %na5 = mul i64 %na, 5
  %sd = getelementptr i64, ptr %ad, i64 %na5
  %sbase = shl i64 %na, 1
  br label %sloop

sloop:
  %q = phi i64 [0, %scalars], [%q1, %snext]
  %smore = icmp slt i64 %q, %ns
  br i1 %smore, label %sbody, label %ints

sbody:
  %argi = add i64 %na, %q
  %psa = getelementptr ptr, ptr %args, i64 %argi
  %so = load ptr, ptr %psa
  %q3 = mul i64 %q, 3
  %pstype = getelementptr i64, ptr %sd, i64 %q3
  %stype = load ptr, ptr %pstype
  %q31 = add i64 %q3, 1
  %pwidth = getelementptr i64, ptr %sd, i64 %q31
  %width = load i64, ptr %pwidth
  %psty = getelementptr i8, ptr %so, i64 {L["type"]}
  %sty = load ptr, ptr %psty
  %sok = icmp eq ptr %sty, %stype
  br i1 %sok, label %sval, label %bads

sval:
  %pval = getelementptr i8, ptr %so, i64 {L["scalar"]}
  %slot = add i64 %sbase, %q
  %pslot = getelementptr i64, ptr %block, i64 %slot
  switch i64 %width, label %w64 [ i64 1, label %w1
                                   i64 8, label %w8
                                   i64 16, label %w16
                                   i64 32, label %w32 ]
w1:
  %v1 = load i8, ptr %pval
  %v1b = icmp ne i8 %v1, 0
  %v1z = zext i1 %v1b to i64
  store i64 %v1z, ptr %pslot
  br label %snext
w8:
  %v8 = load i8, ptr %pval
  %v8z = zext i8 %v8 to i64
  store i64 %v8z, ptr %pslot
  br label %snext
w16:
  %v16 = load i16, ptr %pval
  %v16z = zext i16 %v16 to i64
  store i64 %v16z, ptr %pslot
  br label %snext
w32:
  %v32 = load i32, ptr %pval
  %v32z = zext i32 %v32 to i64
  store i64 %v32z, ptr %pslot
  br label %snext
w64:
  %v64 = load i64, ptr %pval
  store i64 %v64, ptr %pslot
  br label %snext

snext:
  %q1 = add i64 %q, 1
  br label %sloop

bads:
  %q32 = add i64 %q3, 2
  %psmsg = getelementptr i64, ptr %sd, i64 %q32
  %smsgoff = load i64, ptr %psmsg
  %smsg = getelementptr i8, ptr %d, i64 %smsgoff
  %te2 = load ptr, ptr @PyExc_TypeError
  %x2 = call ptr (ptr, ptr, ...) @PyErr_Format(ptr %te2, ptr @m.arg, ptr %label, i64 %argi, ptr %smsg)
  ret ptr null

ints:
  %ibase = add i64 %sbase, %ns
  %iarg0 = add i64 %na, %ns
  %ni = add i64 %nz, 2
  br label %iloop

iloop:
  %r = phi i64 [0, %ints], [%r1, %inext]
  %imore = icmp slt i64 %r, %ni
  br i1 %imore, label %ibody, label %call

ibody:
  %iarg = add i64 %iarg0, %r
  %pia = getelementptr ptr, ptr %args, i64 %iarg
  %io = load ptr, ptr %pia
  %iv = call i64 @PyLong_AsLongLong(ptr %io)
  %ineg = icmp eq i64 %iv, -1
  br i1 %ineg, label %ierr, label %inext

ierr:
  %occ = call ptr @PyErr_Occurred()
  %noerr = icmp eq ptr %occ, null
  br i1 %noerr, label %inext, label %fail

inext:
  %islot = add i64 %ibase, %r
  %pis = getelementptr i64, ptr %block, i64 %islot
  store i64 %iv, ptr %pis
  %r1 = add i64 %r, 1
  br label %iloop

call:
  %ilast = add i64 %ibase, %nz
  %plo = getelementptr i64, ptr %block, i64 %ilast
  %lo = load i64, ptr %plo
  %ihi = add i64 %ilast, 1
  %phi_ = getelementptr i64, ptr %block, i64 %ihi
  %hi = load i64, ptr %phi_
  %pn0 = getelementptr i64, ptr %block, i64 %ibase
  %n0 = load i64, ptr %pn0
  %b1 = icmp sge i64 %lo, 0
  %nosz = icmp eq i64 %nz, 0
  %b2 = icmp sle i64 %hi, %n0
  %b3 = or i1 %nosz, %b2
  %bok = and i1 %b1, %b3
  br i1 %bok, label %work, label %badb

badb:
  %ve0 = load ptr, ptr @PyExc_ValueError
  %x3 = call ptr (ptr, ptr, ...) @PyErr_Format(ptr %ve0, ptr @m.bounds, ptr %label)
  ret ptr null

work:
  %w0 = sub i64 %hi, %lo
  br label %wloop

wloop:
  %t = phi i64 [1, %work], [%t1, %wbody]
  %wk = phi i64 [%w0, %work], [%wk1, %wbody]
  %wmore = icmp slt i64 %t, %nz
  br i1 %wmore, label %wbody, label %run

wbody:
  %wslot = add i64 %ibase, %t
  %pws = getelementptr i64, ptr %block, i64 %wslot
  %ws = load i64, ptr %pws
  %wk1 = mul i64 %wk, %ws
  %t1 = add i64 %t, 1
  br label %wloop

run:
  %big = icmp sge i64 %wk, {gil_work}
  br i1 %big, label %nogil, label %withgil

nogil:
  %st = call ptr @PyEval_SaveThread()
  %rc1 = call i32 %entryp(ptr %block)
  call void @PyEval_RestoreThread(ptr %st)
  br label %done

withgil:
  %rc2 = call i32 %entryp(ptr %block)
  br label %done

done:
  %rc = phi i32 [%rc1, %nogil], [%rc2, %withgil]
  %rok = icmp eq i32 %rc, 0
  br i1 %rok, label %ret, label %badsz

badsz:
  %ve1 = load ptr, ptr @PyExc_ValueError
  %x4 = call ptr (ptr, ptr, ...) @PyErr_Format(ptr %ve1, ptr @m.sizes, ptr %label)
  ret ptr null

ret:
  call void @Py_IncRef(ptr @_Py_NoneStruct)
  ret ptr @_Py_NoneStruct

fail:
  ret ptr null
}}
"""
