"""``fg.jit`` against ``jax.jit``, PyTorch eager and NumPy, side by side in one run.

Run: ``python benchmarks/bench_jit.py`` (``--quick``: fewer repeats; ``--threads 1``: every
library single-threaded; ``--no-compile``: skip the compile-latency subprocesses). Prints the best
time per call of each library and each ratio to JAX (funcgrad / JAX: below 1 means funcgrad
is faster). Peers that are not installed are skipped. Only ratios from the same run mean
anything on a noisy machine. Workloads:

1. the elementwise chain ``tanh(x)*exp(-x*x)+sin(x)*0.5-x/(1+x*x)`` on 1M float32;
2. an SGD step (loss, gradient, update) of a 784-256-128-10 ReLU MLP at batch 128;
3. ``logsumexp`` over the last axis of a (4096, 1024) float32 array;
4. call latency of a jitted tiny MLP (16-32-1 tanh, one example);
5. an Adam update over ~1M parameters (a pytree of four arrays);
6. compile latency: the MLP SGD step compiled in a fresh process with an empty kernel cache
   (cold), and a second process's first call with the cache warm (subprocesses; the time
   from calling the jitted function to its result, imports excluded);

and the transform workloads of ``jit_workloads.py`` (funcgrad ``fg.jit``, ``jax.jit``, PyTorch
eager and ``torch.func``; each checked once against JAX's numbers before it is timed), with the
target ratio funcgrad / JAX of each:

7. per-sample gradients ``jit(vmap(grad(loss), in_axes=(None, 0, 0)))`` of a 784-256-10 tanh MLP,
   batch 128 (target <= 0.5, and faster than ``torch.func.vmap(grad)``);
8. ``jacrev`` of ``tanh(W @ x + b)``, 100 -> 100, and 9. ``hessian`` of ``sum(tanh(W @ x + b) ** 2)``,
   100 inputs (targets <= 1);
10. a WGAN-GP critic SGD step (gradient penalty from ``vmap(grad(critic))``, differentiated
    again with respect to the critic's parameters; target <= 1);
11. a small CNN SGD step (two 3x3 convolutions, max-pool, dense, softmax cross-entropy; batch
    32 of 1x28x28; target <= 1);
12. the LSTM ``lax.scan`` gradient of ``bench_scan.py`` (T=50, batch 16, hidden 64; target <= 0.5).

``--workloads a,b`` times only the named workloads (``chain, mlp_sgd, logsumexp, tiny_mlp, adam,
per_sample, jacrev, hessian, wgan_gp, cnn_sgd, lstm_scan``). ``benchmarks/profile_jit.py NAME``
shows which equations of a transform workload's funcgrad executor take the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time


def _thread_count():
    """``--threads N`` caps every library's threads (BLAS, OpenMP, XLA, torch, funcgrad's pool):
    on a small or shared machine the single-threaded comparison is the reproducible one."""
    if "--threads" in sys.argv:
        return int(sys.argv[sys.argv.index("--threads") + 1])
    return None


THREADS = _thread_count()
if THREADS is not None:  # must happen before NumPy (and its BLAS) is imported
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FUNCGRAD_JIT_THREADS"):
        os.environ[var] = str(THREADS)
    if THREADS == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SIZES = (784, 256, 128, 10)
BATCH = 128
LR = 0.01


def best_time(fn, repeat=7, min_time=0.05):
    """Best wall time of one call (seconds) after a warm-up, averaging enough calls per sample."""
    fn()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    number = max(1, int(min_time / max(dt, 1e-7)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


# -- data -----------------------------------------------------------------------------------------


def mlp_data(seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        params.append(((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), np.zeros(b, np.float32)))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    return params, x, y


def adam_data(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(784, 1024), (1024,), (1024, 256), (256,)]  # ~1.07M parameters
    p = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in shapes]
    g = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    m = [np.zeros(s, np.float32) for s in shapes]
    v = [np.zeros(s, np.float32) for s in shapes]
    return p, g, m, v


CHAIN_X = np.random.default_rng(1).standard_normal(1_000_000).astype(np.float32)
LSE_X = np.random.default_rng(2).standard_normal((4096, 1024)).astype(np.float32)
TINY = (
    np.random.default_rng(3).standard_normal((16, 32)).astype(np.float32) * 0.2,
    np.zeros(32, np.float32),
    np.random.default_rng(4).standard_normal((32, 1)).astype(np.float32) * 0.2,
    np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32),
)
B1, B2, EPS, ALR = 0.9, 0.999, 1e-8, 1e-3


# -- funcgrad --------------------------------------------------------------------------------------

FUNCGRAD_MLP = """
import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.scipy.special import logsumexp


def mlp_loss(params, x, y):
    h = x
    for w, b in params[:-1]:
        h = fnp.maximum(h @ w + b, 0.0)
    w, b = params[-1]
    logits = h @ w + b
    return -fnp.mean(fnp.sum(logits * y, axis=-1) - logsumexp(logits, axis=-1))


@fg.jit
def sgd_step(params, x, y):
    loss, grads = fg.value_and_grad(mlp_loss)(params, x, y)
    new = fg.tree_map(lambda p, g: p - LR * g, params, grads)
    return new, loss
"""


def funcgrad_cases():
    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad.scipy.special import logsumexp

    ns = {"LR": LR}
    exec(FUNCGRAD_MLP, ns)
    params, x, y = mlp_data()
    p = fg.tree_map(fnp.asarray, params)
    xs, ys = fnp.asarray(x), fnp.asarray(y)
    step = ns["sgd_step"]

    chain = fg.jit(lambda x: fnp.tanh(x) * fnp.exp(-x * x) + fnp.sin(x) * 0.5 - x / (1 + x * x))
    cx = fnp.asarray(CHAIN_X)
    lse = fg.jit(lambda a: logsumexp(a, axis=-1))
    la = fnp.asarray(LSE_X)
    w1, b1, w2, xt = (fnp.asarray(a) for a in TINY)
    tiny = fg.jit(lambda w1, b1, w2, x: fnp.tanh(x @ w1 + b1) @ w2)

    @fg.jit
    def adam(p, g, m, v, t):
        m = fg.tree_map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v = fg.tree_map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        c1, c2 = 1 - B1**t, 1 - B2**t
        p = fg.tree_map(lambda p, m, v: p - ALR * (m / c1) / (fnp.sqrt(v / c2) + EPS), p, m, v)
        return p, m, v

    ap, ag, am, av = (fg.tree_map(fnp.asarray, t) for t in adam_data())
    t = fnp.asarray(np.float32(3.0))
    return {
        "chain": lambda: chain(cx),
        "mlp_sgd": lambda: step(p, xs, ys),
        "logsumexp": lambda: lse(la),
        "tiny_mlp": lambda: tiny(w1, b1, w2, xt),
        "adam": lambda: adam(ap, ag, am, av, t),
    }


# -- JAX -------------------------------------------------------------------------------------------


def jax_cases():
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    def mlp_loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = jnp.maximum(h @ w + b, 0.0)
        w, b = params[-1]
        logits = h @ w + b
        return -jnp.mean(jnp.sum(logits * y, axis=-1) - logsumexp(logits, axis=-1))

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss

    params, x, y = mlp_data()
    p = jax.tree_util.tree_map(jnp.asarray, params)
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    chain = jax.jit(lambda x: jnp.tanh(x) * jnp.exp(-x * x) + jnp.sin(x) * 0.5 - x / (1 + x * x))
    cx = jnp.asarray(CHAIN_X)
    lse = jax.jit(lambda a: logsumexp(a, axis=-1))
    la = jnp.asarray(LSE_X)
    w1, b1, w2, xt = (jnp.asarray(a) for a in TINY)
    tiny = jax.jit(lambda w1, b1, w2, x: jnp.tanh(x @ w1 + b1) @ w2)

    @jax.jit
    def adam(p, g, m, v, t):
        tm = jax.tree_util.tree_map
        m = tm(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v = tm(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        c1, c2 = 1 - B1**t, 1 - B2**t
        p = tm(lambda p, m, v: p - ALR * (m / c1) / (jnp.sqrt(v / c2) + EPS), p, m, v)
        return p, m, v

    ap, ag, am, av = (jax.tree_util.tree_map(jnp.asarray, t) for t in adam_data())
    t = jnp.asarray(np.float32(3.0))
    ready = jax.block_until_ready
    return {
        "chain": lambda: ready(chain(cx)),
        "mlp_sgd": lambda: ready(step(p, xs, ys)),
        "logsumexp": lambda: ready(lse(la)),
        "tiny_mlp": lambda: ready(tiny(w1, b1, w2, xt)),
        "adam": lambda: ready(adam(ap, ag, am, av, t)),
    }


# -- PyTorch (eager) -------------------------------------------------------------------------------


def torch_cases():
    import torch

    if THREADS is not None:
        torch.set_num_threads(THREADS)
    torch.set_grad_enabled(True)
    params, x, y = mlp_data()
    p = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in params]
    xs, ys = torch.tensor(x), torch.tensor(y)

    def step():
        h = xs
        for w, b in p[:-1]:
            h = torch.relu(h @ w + b)
        w, b = p[-1]
        logits = h @ w + b
        loss = -torch.mean(torch.sum(logits * ys, -1) - torch.logsumexp(logits, -1))
        grads = torch.autograd.grad(loss, [t for pair in p for t in pair])
        with torch.no_grad():
            return [t - LR * g for t, g in zip([t for pair in p for t in pair], grads)], loss

    cx = torch.tensor(CHAIN_X)
    la = torch.tensor(LSE_X)
    w1, b1, w2, xt = (torch.tensor(a) for a in TINY)
    ap, ag, am, av = ([torch.tensor(a) for a in t] for t in adam_data())

    def adam():
        with torch.no_grad():
            t = 3.0
            m = [B1 * m_ + (1 - B1) * g for m_, g in zip(am, ag)]
            v = [B2 * v_ + (1 - B2) * g * g for v_, g in zip(av, ag)]
            c1, c2 = 1 - B1**t, 1 - B2**t
            return [p_ - ALR * (m_ / c1) / (torch.sqrt(v_ / c2) + EPS) for p_, m_, v_ in zip(ap, m, v)], m, v

    def tiny():
        with torch.no_grad():
            return torch.tanh(xt @ w1 + b1) @ w2

    def chain():
        with torch.no_grad():
            return torch.tanh(cx) * torch.exp(-cx * cx) + torch.sin(cx) * 0.5 - cx / (1 + cx * cx)

    def lse():
        with torch.no_grad():
            return torch.logsumexp(la, -1)

    return {"chain": chain, "mlp_sgd": step, "logsumexp": lse, "tiny_mlp": tiny, "adam": adam}


# -- NumPy -----------------------------------------------------------------------------------------


def numpy_cases():
    x = CHAIN_X
    la = LSE_X
    w1, b1, w2, xt = TINY
    ap, ag, am, av = adam_data()
    params, xs, ys = mlp_data()

    def lse():
        m = la.max(-1, keepdims=True)
        return np.log(np.exp(la - m).sum(-1)) + m[:, 0]

    def adam():
        t = 3.0
        m = [B1 * m_ + (1 - B1) * g for m_, g in zip(am, ag)]
        v = [B2 * v_ + (1 - B2) * g * g for v_, g in zip(av, ag)]
        c1, c2 = 1 - B1**t, 1 - B2**t
        return [p_ - ALR * (m_ / c1) / (np.sqrt(v_ / c2) + EPS) for p_, m_, v_ in zip(ap, m, v)], m, v

    def step():  # hand-written backward pass
        hs, h = [xs], xs
        for w, b in params[:-1]:
            h = np.maximum(h @ w + b, 0)
            hs.append(h)
        w, b = params[-1]
        logits = h @ w + b
        m = logits.max(-1, keepdims=True)
        e = np.exp(logits - m)
        sm = e / e.sum(-1, keepdims=True)
        d = (sm * ys.sum(-1, keepdims=True) - ys) / len(xs)
        new = []
        for i in range(len(params) - 1, -1, -1):
            w, b = params[i]
            gw, gb = hs[i].T @ d, d.sum(0)
            if i:
                d = (d @ w.T) * (hs[i] > 0)
            new.append((w - LR * gw, b - LR * gb))
        return new[::-1]

    return {
        "chain": lambda: np.tanh(x) * np.exp(-x * x) + np.sin(x) * 0.5 - x / (1 + x * x),
        "mlp_sgd": step,
        "logsumexp": lse,
        "tiny_mlp": lambda: np.tanh(xt @ w1 + b1) @ w2,
        "adam": adam,
    }


# -- compile latency (subprocesses) ----------------------------------------------------------------

COMPILE_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np
LR = {lr!r}
exec({mlp!r})
from bench_jit import mlp_data
params, x, y = mlp_data()
p = fg.tree_map(fnp.asarray, params)
xs, ys = fnp.asarray(x), fnp.asarray(y)
t0 = time.perf_counter()
out = sgd_step(p, xs, ys)
fg.block_until_ready(out)
print(json.dumps({{"first_call": time.perf_counter() - t0}}))
"""

JAX_COMPILE_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp
from jax.scipy.special import logsumexp
from bench_jit import mlp_data, LR
def mlp_loss(params, x, y):
    h = x
    for w, b in params[:-1]:
        h = jnp.maximum(h @ w + b, 0.0)
    w, b = params[-1]
    logits = h @ w + b
    return -jnp.mean(jnp.sum(logits * y, axis=-1) - logsumexp(logits, axis=-1))
@jax.jit
def step(params, x, y):
    loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss
params, x, y = mlp_data()
p = jax.tree_util.tree_map(jnp.asarray, params)
xs, ys = jnp.asarray(x), jnp.asarray(y)
jnp.zeros(1).block_until_ready()  # backend initialization is not compilation
t0 = time.perf_counter()
jax.block_until_ready(step(p, xs, ys))
print(json.dumps({{"first_call": time.perf_counter() - t0}}))
"""


def _run_script(code, env):
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=os.path.join(ROOT, "benchmarks"),
    )
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])["first_call"]


def compile_latency():
    out = {}
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, bench_dir, os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as cache:
        env["FUNCGRAD_CACHE_DIR"] = cache
        code = COMPILE_SCRIPT.format(root=ROOT, lr=LR, mlp=textwrap.dedent(FUNCGRAD_MLP))
        out["funcgrad cold compile"] = _run_script(code, env)
        out["funcgrad 2nd process first call"] = min(_run_script(code, env) for _ in range(3))
    try:
        import jax  # noqa: F401

        code = JAX_COMPILE_SCRIPT.format(root=ROOT)
        jenv = dict(env, JAX_ENABLE_COMPILATION_CACHE="false")
        out["jax cold compile"] = min(_run_script(code, jenv) for _ in range(2))
    except ImportError:
        pass
    return out


def _transform_cases(workloads):
    """Thunks of the transform workloads (``jit_workloads.py``) per library, each checked once
    against JAX (funcgrad and the PyTorch variants must give JAX's numbers) before timing."""
    import jit_workloads as jw

    cases = {w: {} for w in workloads}
    for w in workloads:
        data = jw.make_data(w)
        cases[w]["funcgrad"] = jw.funcgrad_fns(w, data)["jit"]
        try:
            cases[w]["jax"] = jw.jax_fn(w, data)
        except ImportError:
            pass
        try:
            cases[w].update(jw.torch_fns(w, data))
        except ImportError:
            pass
        if "jax" in cases[w]:
            want = cases[w]["jax"]()
            for lib, fn in cases[w].items():
                if lib != "jax":
                    jw.assert_same(fn(), want, f"bench_jit {w}: {lib} against jax")
    return cases


def main():
    import jit_workloads as jw

    quick = "--quick" in sys.argv
    repeat = 3 if quick else 7
    only = None
    if "--workloads" in sys.argv:
        only = set(sys.argv[sys.argv.index("--workloads") + 1].split(","))
        unknown = only - {"chain", "mlp_sgd", "logsumexp", "tiny_mlp", "adam", *jw.WORKLOADS}
        if unknown:
            sys.exit(f"bench_jit.py: unknown --workloads {sorted(unknown)}")
    libs = {}
    for name, make in [
        ("funcgrad", funcgrad_cases),
        ("jax", jax_cases),
        ("torch", torch_cases),
        ("numpy", numpy_cases),
    ]:
        try:
            libs[name] = make()
        except ImportError as e:
            print(f"{name}: not installed ({e}), skipped")
    basic = [w for w in ("chain", "mlp_sgd", "logsumexp", "tiny_mlp", "adam") if only is None or w in only]
    transforms = [w for w in jw.WORKLOADS if only is None or w in only]
    cases = {w: {name: c[w] for name, c in libs.items()} for w in basic}
    cases.update(_transform_cases(transforms))
    workloads = basic + transforms
    times = {w: {} for w in workloads}
    for w in workloads:
        for name, fn in cases[w].items():
            times[w][name] = best_time(fn, repeat=repeat)
    labels = {
        "chain": "elementwise chain, 1M f32",
        "mlp_sgd": "MLP 784-256-128-10 SGD step, batch 128",
        "logsumexp": "logsumexp (4096, 1024)",
        "tiny_mlp": "tiny MLP call latency",
        "adam": "Adam update, 1.07M params",
        **jw.LABELS,
    }
    names = [n for n in ("funcgrad", "jax", "torch", "torch.func", "numpy") if any(n in times[w] for w in workloads)]
    print(f"\n{'workload':<42}" + "".join(f"{n:>12}" for n in names) + f"{'fg/jax':>9}{'target':>8}")
    ratios = []
    for w in workloads:
        row = f"{labels[w]:<42}"
        row += "".join(f"{times[w][n] * 1e3:10.3f}ms" if n in times[w] else f"{'-':>12}" for n in names)
        if "jax" in times[w]:
            r = times[w]["funcgrad"] / times[w]["jax"]
            ratios.append(r)
            row += f"{r:9.2f}"
            if w in jw.TARGETS:
                row += f"{'<=' + str(jw.TARGETS[w]):>8}" + ("" if r <= jw.TARGETS[w] else "  missed")
        print(row)
    if ratios:
        print(f"{'geometric mean of fg/jax ratios':<42}{np.exp(np.mean(np.log(ratios))):.2f}")
    if "per_sample" in times and "torch.func" in times["per_sample"]:
        r = times["per_sample"]["funcgrad"] / times["per_sample"]["torch.func"]
        print(f"{'per-sample grads fg/torch.func':<42}{r:.2f}  (target < 1)")
    if THREADS is not None:
        print(f"(--threads {THREADS}: XLA's CPU runtime may still use more threads for its matrix products)")
    if "--no-compile" not in sys.argv:
        lat = compile_latency()
        print()
        for k, v in lat.items():
            print(f"{k:<40}{v * 1e3:10.1f} ms")
        if "jax cold compile" in lat:
            print(f"{'cold compile fg/jax':<40}{lat['funcgrad cold compile'] / lat['jax cold compile']:10.2f}")


if __name__ == "__main__":
    main()
