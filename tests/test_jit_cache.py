"""Kernel compilation and its cache: native kernels (funcgrad/jit/llvmgen.py, native.py) against
numba, the disk cache across processes, the trampoline's argument checks.

* **typing**: llvmgen's tables reproduce numba's typing context (conversion kinds, the
  signature each operator picks for every pair of number types and literals, unification);
* **identity**: kernels compiled natively compute what numba compiles from the same source,
  bit for bit (NaN payloads aside: which NaN an operation on two NaNs returns is left open by
  LLVM and differs between numba's own vectorised and scalar loops): every elementwise template
  on special values, the MLP training step's kernels on inputs full of NaN/inf/signed zeros,
  reductions over many lengths, the float32 fast math over sweeps;
* **cache**: a second process loads every kernel from disk without importing numba, llvmlite's
  binding or the compiler, and gets bit-identical results; damaged files are recompiled; an
  unwritable cache directory falls back to a private one; ``FUNCGRAD_JIT_NATIVE=0`` compiles
  with numba;
* **calls**: arguments the compiled signature does not accept raise ``TypeError`` (then
  ``call_retyped`` converts scalars or compiles with numba), bad sizes ``ValueError``; large calls
  release the GIL; the ELF loader and llvmlite's MCJIT load the same code.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import operator
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.scipy.special import logsumexp

sys.path.insert(0, os.path.dirname(__file__))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

fusion = importlib.import_module("funcgrad.jit.fusion")
kernels = importlib.import_module("funcgrad.jit.kernels")
native = importlib.import_module("funcgrad.jit.native")
llvmgen = importlib.import_module("funcgrad.jit.llvmgen")

pytestmark = pytest.mark.skipif(native.runtime() is None, reason="native kernels unavailable on this platform")

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3e38, -3e38, 1.0, -1.0, 0.5, 88.7, -104.0, 1e-8]


# -- helpers ---------------------------------------------------------------------------------------


def _specs(f, *args):
    """The kernel specs of ``f``'s fused groups."""
    jaxpr = fusion.simplify(fg.make_jaxpr(f)(*args).jaxpr)
    return [kernels.build(g) for g in fusion.plan(jaxpr).groups]


def _random(rng, shape, dtype):
    """Values of ``dtype`` with the special ones (NaN, infinities, signed zeros, extremes) mixed in."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "f":
        a = (rng.standard_normal(n) * rng.choice([0.1, 1.0, 10.0, 100.0], n)).astype(dt)
        k = min(n, len(SPECIAL))
        a[rng.choice(n, k, replace=False)] = np.array(SPECIAL[:k]).astype(dt)
    elif dt.kind == "b":
        a = rng.random(n) < 0.5
    else:
        info = np.iinfo(dt)
        a = rng.integers(max(info.min, -1000), min(info.max, 1000) + 1, n).astype(dt)
        for v in (info.min, info.max, 0, 1):
            a[rng.integers(n)] = v
    return a.reshape(shape)


def _same(a, b):
    """Bitwise equal, NaN payloads aside."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        nan = np.array(np.nan, a.dtype)
        a, b = np.where(np.isnan(a), nan, a), np.where(np.isnan(b), nan, b)
    return a.tobytes() == b.tobytes()


def _native(spec):
    kernel = kernels.get_kernels([spec])[0]
    assert kernel in kernels._native_specs, f"{spec.name} ({spec.summary}) is not native"
    return kernel


def _compare_kernels(specs, rng):
    """Run each spec's native kernel and its numba twin on the same special-value inputs."""
    pytest.importorskip("numba")
    for spec in specs:
        nat = _native(spec)
        twin = kernels._numba_kernel(spec)[0]
        ins = [_random(rng, v.aval.shape, v.aval.dtype) for v in spec.array_inputs]
        scalars = [_random(rng, (1,), v.aval.dtype)[0] for v in spec.scalar_inputs]
        outs = [[np.empty(s, d) for _, s, d in spec.outputs] for _ in range(2)]
        n0 = spec.sizes[0] if spec.sizes else 1
        with np.errstate(all="ignore"):
            nat(*outs[0], *ins, *scalars, *spec.sizes, 0, n0)
            twin(*outs[1], *ins, *scalars, *spec.sizes, 0, n0)
        for q, (a, b) in enumerate(zip(*outs)):
            assert _same(a, b), f"{spec.name} ({spec.summary}) output {q}: native {a} != numba {b}"


@contextlib.contextmanager
def _numba_kernels():
    """Within the block, kernels compile with numba (native code off, the memory cache set aside)."""
    saved = native.runtime(), native._runtime_error, dict(kernels._kernels)
    native._runtime, native._runtime_error = None, RuntimeError("numba only, for a test")
    kernels._kernels.clear()
    try:
        yield
    finally:
        native._runtime, native._runtime_error = saved[0], saved[1]
        kernels._kernels.clear()
        kernels._kernels.update(saved[2])


# -- typing: llvmgen's tables are numba's ------------------------------------------------------------


def _typing_context():
    from numba.core.registry import cpu_target

    ctx = cpu_target.typing_context
    ctx.refresh()  # installs the registries of builtin templates (numba does it before typing)
    return ctx


def _nb(t):
    from numba.core import types

    if isinstance(t, llvmgen.Lit):
        return types.literal(t.value)
    return getattr(types, "boolean" if t == "bool" else t)


def test_conversion_table_is_numbas():
    pytest.importorskip("numba")
    ctx = _typing_context()
    sources = list(llvmgen.NUMBERS) + [llvmgen.Lit(5), llvmgen.Lit(True), llvmgen.Lit(1 << 63)]
    for a in sources:
        for b in llvmgen.NUMBERS + llvmgen._COMPLEX:
            want = ctx.can_convert(_nb(a), _nb(b))
            assert llvmgen.can_convert(a, b) == (None if want is None else int(want)), (a, b)


_BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "shl": operator.lshift,
    "shr": operator.rshift,
    "and": operator.and_,
    "or": operator.or_,
    "xor": operator.xor,
}
_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _numba_signature(ctx, fn, args):
    try:
        sig = ctx.resolve_function_type(fn, tuple(_nb(a) for a in args), {})
    except Exception:
        return None
    return sig


def test_operator_signatures_are_numbas():
    """Every binary operator and comparison on every pair of number types and literals picks the
    signature numba picks (or neither types it)."""
    pytest.importorskip("numba")
    from numba.core import types

    ctx = _typing_context()
    operands = list(llvmgen.NUMBERS) + [llvmgen.Lit(3), llvmgen.Lit(False)]
    checked = 0
    for a in operands:
        for b in operands:
            if isinstance(a, llvmgen.Lit) and isinstance(b, llvmgen.Lit):
                continue  # constants fold before typing
            for name, fn in list(_BINARY.items()) + list(_COMPARE.items()):
                sig = _numba_signature(ctx, fn, (a, b))
                try:
                    mine = llvmgen.cmp_case(name, a, b) if name in _COMPARE else llvmgen.binop_case(name, a, b)
                except native.Unsupported:
                    mine = None
                if sig is None or any(isinstance(t, types.Complex) for t in sig.args):
                    assert mine is None, (name, a, b, mine)
                    continue
                want = tuple(str(types.unliteral(t)).replace("boolean", "bool") for t in (sig.return_type, *sig.args))
                assert mine is not None and tuple(mine) == want, (name, a, b, mine, want)
                checked += 1
    assert checked > 1000


def test_unification_is_numbas():
    pytest.importorskip("numba")
    ctx = _typing_context()
    for a in llvmgen.NUMBERS:
        for b in llvmgen.NUMBERS:
            assert llvmgen.unify(a, b) == str(ctx.unify_pairs(_nb(a), _nb(b))).replace("boolean", "bool"), (a, b)


def test_source_outside_the_subset_is_left_to_numba():
    src = "def kernel(o0, n0, lo, hi):\n    while n0 > 0:\n        n0 = n0 - 1\n"
    with pytest.raises(native.Unsupported):
        llvmgen.compile_kernel(src, [llvmgen.ArrayT("float32", None), "int64", "int64", "int64"], "k")
    with pytest.raises(native.Unsupported):  # numba implements np.cbrt with fast-math flags
        llvmgen.compile_kernel(
            "import numpy as np\ndef kernel(o0, a0, n0, lo, hi):\n"
            "    y = o0.reshape((n0,))\n    x = a0.reshape((n0,))\n"
            "    for i in range(lo, hi):\n        y[i] = np.cbrt(x[i])\n",
            [llvmgen.ArrayT("float64", None)] * 2 + ["int64"] * 3,
            "k",
        )


def test_unsupported_kernel_runs_on_numba(rng):
    pytest.importorskip("numba")
    x = fnp.asarray(rng.standard_normal(50))
    f = fg.jit(lambda x: fnp.cbrt(x) * 2.0 + 1.0)
    (spec,) = _specs(lambda x: fnp.cbrt(x) * 2.0 + 1.0, x)
    np.testing.assert_allclose(np.asarray(f(x)), np.cbrt(np.asarray(x)) * 2.0 + 1.0, rtol=1e-14, atol=1e-15)
    assert kernels._kernels[(spec.key, spec.signature().key())] not in kernels._native_specs


# -- identity: native kernels compute what numba computes --------------------------------------------

_SLOW_DTYPES = ["float64", "int8", "int16", "int64", "uint8", "uint16", "uint32", "uint64"]


def _template_specs(dtype):
    import test_jit

    x, y, unary, binary = test_jit._special_case(dtype)
    ops = [(n, 1) for n in unary if n != "cbrt"] + [(n, 2) for n in binary]
    if np.dtype(dtype).kind != "b":
        ops += [("integer_pow2", 1), ("integer_pow3", 1), ("select_n", 2)]

    def many(a, b):
        outs = []
        for name, nargs in ops:
            if name.startswith("integer_pow"):
                outs.append(lax.integer_pow(a, int(name[-1])))
            elif name == "select_n":
                outs.append(lax.select(a > b, a, b))
            else:
                p = test_jit._prim(name)
                outs.append(p.bind(a) if nargs == 1 else p.bind(a, b))
        to = np.float32 if np.dtype(dtype) != np.float32 else np.float64
        outs.append(lax.convert_element_type(a, to) * lax.convert_element_type(b, to))
        return outs

    return _specs(many, fnp.asarray(x), fnp.asarray(y))


@pytest.mark.parametrize(
    "dtype", ["float32", "int32", "bool"] + [pytest.param(d, marks=pytest.mark.slow) for d in _SLOW_DTYPES]
)
def test_every_template_matches_numba(dtype, rng):
    _compare_kernels(_template_specs(dtype), rng)


def _mlp_step():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_jit import mlp_data

    def mlp_loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = fnp.maximum(h @ w + b, 0.0)
        w, b = params[-1]
        logits = h @ w + b
        return -fnp.mean(fnp.sum(logits * y, axis=-1) - logsumexp(logits, axis=-1))

    def sgd_step(params, x, y):
        loss, grads = fg.value_and_grad(mlp_loss)(params, x, y)
        return fg.tree_map(lambda p, g: p - 0.01 * g, params, grads), loss

    params, x, y = mlp_data()
    return sgd_step, (fg.tree_map(fnp.asarray, params), fnp.asarray(x), fnp.asarray(y))


def test_training_step_kernels_match_numba(rng):
    f, args = _mlp_step()
    specs = _specs(f, *args)
    assert len(specs) >= 5
    _compare_kernels(specs, rng)


def test_reductions_match_numba_at_every_length(rng):
    """Reassociated sums are vectorised: the same partial sums as numba's at every length (the
    vector loop, its epilogue and the scalar remainder all in play)."""
    specs = []
    for n in (1, 3, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4097):
        a = fnp.ones((3, n), np.float32)
        specs += _specs(lambda a: logsumexp(a * 1.5, axis=-1) + fnp.sum(a * a, axis=-1), a)
        specs += _specs(lambda a: fnp.sum(a * 2.0) - fnp.max(a + 1.0), fnp.ones(n * 3, np.float64))
    _compare_kernels(specs, rng)


def _sweep():
    lin = np.linspace(-120, 120, 1 << 15, dtype=np.float64).astype(np.float32)
    binades = np.geomspace(1e-38, 3e38, 1 << 14).astype(np.float32)
    return np.concatenate([lin, binades, -binades, np.array(SPECIAL, np.float32)])


def test_fast_math_matches_numba_over_sweeps():
    """The float32 polynomials (fastmath.py), compiled from their source, give numba's bits."""
    pytest.importorskip("numba")
    x = fnp.asarray(_sweep())
    y = fnp.asarray(np.roll(_sweep(), 12345))

    def f(x, y):
        ax = fnp.abs(x)
        return [
            fnp.exp(x * 0.25),
            fnp.log(ax),
            fnp.log1p(ax),
            fnp.expm1(x * 0.125),
            fnp.tanh(x),
            lax.logistic(x),
            fnp.sin(x),
            fnp.cos(x),
            lax.erf(x * 0.05),
            fnp.power(ax * 0.01, y * 0.01),
            fnp.floor_divide(x, y),
            fnp.remainder(x, y),
        ]

    with np.errstate(all="ignore"):
        got = fg.jit(f)(x, y)
        with _numba_kernels():
            want = fg.jit(f)(x, y)
    for spec in _specs(f, x, y):
        _native(spec)
    for k, (g, w) in enumerate(zip(got, want)):
        assert _same(g, w), f"output {k}"


# -- the disk cache across processes -------------------------------------------------------------------

SCRIPT = """
import hashlib, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s: %(message)s")
import numpy as np
import funcgrad as fg, funcgrad.numpy as fnp
from funcgrad.scipy.special import logsumexp
fg.config.update("log_compiles", True)
x = fnp.asarray(np.linspace(-3, 3, 3000).reshape(30, 100).astype(np.float32))
out = [
    fg.jit(lambda x: fnp.tanh(x) * 1.5 + fnp.exp(-x) * x)(x),
    fg.jit(lambda x: logsumexp(x * 2.0, axis=-1))(x),
    fg.jit(lambda x: fnp.sum(fnp.sin(x) * x))(x),
    fg.jit(lambda x: fnp.maximum(x @ x.T + 1.0, 0.0))(x),
]
print("digest", hashlib.sha256(b"".join(np.asarray(o).tobytes() for o in out)).hexdigest())
print("modules", [m for m in ("numba", "llvmlite.binding", "funcgrad.jit.llvmgen") if m in sys.modules])
"""


def _run(code, env):
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _env(cache, **extra):
    return dict(
        os.environ,
        FUNCGRAD_CACHE_DIR=str(cache),
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **extra,
    )


def _digest(out):
    return out.split("digest ")[1].split()[0]


def test_second_process_loads_native_code_without_any_compiler(tmp_path):
    first = _run(SCRIPT, _env(tmp_path))
    assert "Compiled kernel k_" in first and "Loaded kernel" not in first, first
    assert "numba" not in first.split("modules")[1], first  # numba is not needed to compile either
    objects = list(tmp_path.glob("funcgrad_kernel_*.o"))
    assert len(objects) == first.count("Compiled kernel") >= 3
    assert list(tmp_path.glob("funcgrad_trampoline.*.o"))
    second = _run(SCRIPT, _env(tmp_path))
    assert "Compiled kernel" not in second and second.count("Loaded kernel k_") == len(objects), second
    assert "modules []" in second, second  # neither numba nor llvmlite's binding nor the compiler
    assert _digest(first) == _digest(second)


def test_numba_and_native_processes_agree(tmp_path):
    pytest.importorskip("numba")
    nat = _run(SCRIPT, _env(tmp_path / "native"))
    nb = _run(SCRIPT, _env(tmp_path / "numba", FUNCGRAD_JIT_NATIVE="0"))
    assert "numba" in nb.split("modules")[1] and not list((tmp_path / "numba").glob("*.o"))
    assert list((tmp_path / "numba").glob("funcgrad_kernel_*.py"))
    assert _digest(nat) == _digest(nb)


def test_damaged_object_files_are_compiled_again(tmp_path):
    first = _run(SCRIPT, _env(tmp_path))
    victim, other = sorted(tmp_path.glob("funcgrad_kernel_*.o"))[:2]
    size = len(victim.read_bytes())
    victim.write_bytes(victim.read_bytes()[:-100] + b"\0" * 100)  # damaged code
    other.write_bytes(other.read_bytes()[:50])  # truncated
    (tramp,) = tmp_path.glob("funcgrad_trampoline.*.o")
    tramp.write_bytes(b"not an object file")
    second = _run(SCRIPT, _env(tmp_path))
    assert second.count("Compiled kernel k_") == 2, second
    assert _digest(first) == _digest(second)
    assert len(victim.read_bytes()) == size  # rewritten


def test_unwritable_cache_directory_falls_back_to_a_private_one(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    out = _run(SCRIPT, _env(blocker / "kernels"))
    private = kernels._private_dir()
    assert all(private in line for line in out.splitlines() if "Loaded kernel" in line), out
    assert list((tmp_path / "fresh").glob("*")) == []
    assert _digest(out) == _digest(_run(SCRIPT, _env(tmp_path / "fresh")))
    assert list((tmp_path / "fresh").glob("funcgrad_kernel_*.o"))


def test_without_executable_memory_numba_takes_over(tmp_path):
    """Where the process may not map code (SELinux's execmem...), loading fails: native kernels
    turn off and numba compiles every kernel."""
    pytest.importorskip("numba")
    code = (
        """
import importlib
native = importlib.import_module("funcgrad.jit.native")

def refuse(self, obj):
    raise native.LoadError("mprotect failed")

native._Runtime._load_elf = refuse
native._Runtime._load_mcjit = lambda self, obj, symbol: refuse(self, obj)
"""
        + SCRIPT
    )
    out = _run(code, _env(tmp_path))
    assert "Native kernels are off for this process" in out and "numba" in out.split("modules")[1], out
    assert _digest(out) == _digest(_run(SCRIPT, _env(tmp_path / "other")))


def test_compile_threads_skip_llvmlites_lock(axpy):
    """The kernels of a batch compile in parallel: a compile thread does not wait for llvmlite's
    process-wide lock (here held by this thread all along)."""
    _, spec = axpy
    comp = native.runtime().compiler()
    ir_text = native.kernel_ir(spec.source, spec.signature(), "bypass_test")
    if comp.bypass is None:
        # An llvmlite whose internals are not the expected layout: no bypass, kernels compile one
        # at a time under llvmlite's lock, and still compile.
        with comp.parallel():
            assert len(comp.compile(ir_text)) > 0
        return
    done = []

    def work():
        with comp.parallel():
            done.append(comp.compile(ir_text))

    with comp.bypass.inner:
        t = threading.Thread(target=work)
        t.start()
        for _ in range(12000):  # the result, not the thread's end: its exit frees its target
            if done:  # machine, which (outside a compile) takes llvmlite's lock again
                break
            time.sleep(0.01)
        finished = bool(done)
    t.join()
    assert finished, "the compile thread waited for llvmlite's lock"
    if native.runtime().elf:
        assert done[0][:4] == b"\x7fELF"


FORK_SCRIPT = """
import multiprocessing, numpy as np
import funcgrad as fg, funcgrad.numpy as fnp

def child(x):
    a = fg.jit(lambda x: fnp.sinh(x) * 0.5 + fnp.cos(x))(fnp.asarray(x))  # compiled in the child
    b = fg.jit(lambda x: fnp.log1p(fnp.abs(x)) * 3.0 - x)(fnp.asarray(x))  # parallel (large)
    return [np.asarray(a), np.asarray(b)]

if __name__ == "__main__":
    x = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
    fg.jit(lambda x: fnp.tanh(x) * 1.25 - fnp.exp(x * 0.5))(fnp.asarray(x))  # the parent's pools
    with multiprocessing.get_context("fork").Pool(1) as pool:
        a, b = pool.apply_async(child, (x,)).get(timeout=120)
    np.testing.assert_allclose(a, np.sinh(x) * 0.5 + np.cos(x), rtol=3e-6, atol=1e-6)
    np.testing.assert_allclose(b, np.log1p(np.abs(x)) * 3.0 - x, rtol=3e-6, atol=1e-6)
    print("child ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_children_compile_and_run_kernels(tmp_path):
    """A child forked after the parent compiled (and ran the thread pools) compiles new kernels
    and runs parallel ones: the pools are made again in the child (a fresh interpreter: this
    process may run threads, e.g. JAX's, that make forking it unsafe)."""
    script = tmp_path / "fork_script.py"
    script.write_text(FORK_SCRIPT)
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=_env(tmp_path / "cache"), timeout=300
    )
    assert res.returncode == 0 and "child ok" in res.stdout, res.stderr[-3000:]


def test_threads_compile_distinct_kernels_at_once(rng):
    x = fnp.asarray(rng.standard_normal((6, 7)).astype(np.float32))
    results, errors = {}, []
    exprs = [
        lambda x, c: fnp.cosh(x) * c - fnp.arctan(x),
        lambda x, c: fnp.log1p(fnp.abs(x)) * c + x,
        lambda x, c: fnp.sqrt(fnp.abs(x) + c) - fnp.sign(x),
        lambda x, c: fnp.expm1(x * c) / (1.0 + x * x),
    ]

    def work(i):
        try:
            c = 0.5 + 0.125 * i
            results[i] = np.asarray(fg.jit(exprs[i % 4])(x, c))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(8):
        with np.errstate(all="ignore"):
            want = np.asarray(exprs[i % 4](x, 0.5 + 0.125 * i))
        np.testing.assert_allclose(results[i], want, rtol=3e-6, atol=1e-6)


# -- calls -------------------------------------------------------------------------------------------


@pytest.fixture
def axpy():
    """A native kernel ``y = a * x + s`` (arrays a, x; scalar s) and its spec."""
    a, x = fnp.ones((4, 5), np.float32), fnp.ones((4, 5), np.float32)
    s = fnp.asarray(np.float32(2.0))
    (spec,) = _specs(lambda a, x, s: a * x + s, a, x, s)
    assert len(spec.array_inputs) == 2 and len(spec.scalar_inputs) == 1
    return _native(spec), spec


def test_kernel_calls_check_their_arguments(axpy):
    kernel, spec = axpy
    n = spec.sizes
    a, x, out = np.ones((4, 5), np.float32), np.full((4, 5), 2.0, np.float32), np.empty((4, 5), np.float32)
    s = np.float32(0.5)
    kernel(out, a, x, s, *n, 0, n[0])
    np.testing.assert_array_equal(out, np.full((4, 5), 2.5, np.float32))
    bad = [
        ((out, a, x, s, *n, 0), "takes"),
        ((out, a.astype(np.float64), x, s, *n, 0, n[0]), "argument 1 must be a C-contiguous aligned float32 array"),
        ((out, a, np.ones((5, 4), np.float32).T, s, *n, 0, n[0]), "argument 2"),
        ((np.empty((4, 5), np.float32)[:, :], a.reshape(20), x, s, *n, 0, n[0]), "rank 2"),
        ((out, a, x, np.float64(0.5), *n, 0, n[0]), "numpy.float32 scalar"),
        ((out, a, x, 0.5, *n, 0, n[0]), "numpy.float32 scalar"),
        ((out, a, x, s, *n, 0.0, n[0]), "integer"),
        ((out, [1.0] * 20, x, s, *n, 0, n[0]), "argument 1"),
    ]
    ro = np.empty((4, 5), np.float32)
    ro.flags.writeable = False
    bad.append(((ro, a, x, s, *n, 0, n[0]), "argument 0 must be a writeable"))
    for args, msg in bad:
        with pytest.raises(TypeError, match=msg):
            kernel(*args)
    with pytest.raises(ValueError, match="chunk bounds"):
        kernel(out, a, x, s, *n, 0, n[0] + 1)
    with pytest.raises(ValueError, match="array sizes"):
        kernel(out, a, x, s, n[0] + 1, 0, n[0])
    with pytest.raises(ValueError, match="array sizes"):
        kernel(np.empty((4, 6), np.float32), a, x, s, *n, 0, n[0])


def test_retyped_calls_convert_scalars_or_compile_with_numba(axpy):
    kernel, spec = axpy
    n = spec.sizes
    a, x = np.ones((4, 5), np.float32), np.full((4, 5), 2.0, np.float32)
    out = np.empty((4, 5), np.float32)
    kernels.call_retyped(kernel, (out, a, x, 0.5), tuple(n), n[0], False)  # a Python float scalar
    np.testing.assert_array_equal(out, np.full((4, 5), 2.5, np.float32))
    pytest.importorskip("numba")
    out64 = np.empty((4, 5), np.float32)
    kernels.call_retyped(kernel, (out64, a.astype(np.float64), x, np.float32(0.5)), tuple(n), n[0], False)
    np.testing.assert_array_equal(out64, np.full((4, 5), 2.5, np.float32))


def test_large_calls_release_the_gil_and_run_on_threads(rng):
    """Big kernels run on the pool (the GIL released); the result equals the serial one."""
    x = fnp.asarray(rng.standard_normal((512, 1024)).astype(np.float32))
    f = fg.jit(lambda x: fnp.tanh(x) * 2.0 + fnp.exp(x * 0.5))
    (spec,) = _specs(lambda x: fnp.tanh(x) * 2.0 + fnp.exp(x * 0.5), x)
    assert spec.parallel
    got = np.asarray(f(x))
    serial = np.empty_like(got)
    _native(spec)(serial, np.asarray(x), *spec.sizes, 0, spec.sizes[0])
    assert _same(got, serial)
    hold = threading.Event()
    ticks = []

    def ticker():  # runs while the kernel holds no GIL
        while not hold.is_set():
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    for _ in range(20):
        _native(spec)(serial, np.asarray(x), *spec.sizes, 0, spec.sizes[0])
    hold.set()
    t.join()
    assert ticks


def test_elf_loader_and_mcjit_load_the_same_code(axpy, tmp_path):
    kernel, spec = axpy
    rt = native.runtime()
    sig = spec.signature()
    tag = native.tag(sig)
    sym = native.symbol(spec.key, tag)
    obj = native.compile_object(spec.source, sig, sym)
    a, x = np.arange(20, dtype=np.float32).reshape(4, 5), np.full((4, 5), -1.5, np.float32)
    results = []
    for load in (rt._load_mcjit, lambda o, s: rt._load_elf(o)[s]) if rt.elf else (rt._load_mcjit,):
        fn = rt.function(rt.trampoline([str(tmp_path)]), load(obj, sym), sig, "k")
        out = np.empty((4, 5), np.float32)
        fn(out, a, x, np.float32(0.25), *spec.sizes, 0, spec.sizes[0])
        results.append(out)
    for r in results:
        np.testing.assert_array_equal(r, a * x + np.float32(0.25))
    if rt.elf:
        with pytest.raises(native.LoadError):
            rt._load_elf(b"\x7fELF\x02\x01" + b"\0" * 58)


def test_log_reports_loads_and_compiles(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernels, "_kernels", {})
    monkeypatch.setattr(kernels, "_entries", {})
    fg.config.update("log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="funcgrad.jit"):
            f = lambda x: fnp.sinh(x) * 0.75 - fnp.arcsinh(x)  # noqa: E731
            fg.jit(f)(fnp.ones(5))
            kernels._kernels.clear()
            kernels._entries.clear()
            fg.jit(f)(fnp.ones(6))
        msgs = [r.getMessage() for r in caplog.records if r.name == "funcgrad.jit"]
    finally:
        fg.config.update("log_compiles", False)
    assert any("Compiled kernel k_" in m for m in msgs), msgs
    assert any("Loaded kernel k_" in m and str(tmp_path) in m for m in msgs), msgs
