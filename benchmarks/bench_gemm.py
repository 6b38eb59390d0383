"""Matrix products: funcgrad's host-compiled GEMM (funcgrad.jit.gemm) against NumPy's BLAS,
``jax.jit(jnp.dot)`` and ``torch.mm``, for the shapes of the jit workloads and around the
``MIN_WORK`` threshold. Prints microseconds per product and the ratio funcgrad/NumPy and
funcgrad/JAX (only ratios from one run mean anything on a noisy machine).

    python benchmarks/bench_gemm.py [--threads N] [--dtype float32|float64]

``--threads 1`` runs every library on one thread (funcgrad without its workers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SHAPES = [  # (M, K, N, transpose A, transpose B): where the workloads use them
    (128, 784, 256, False, False),  # MLP forward, layer 1
    (784, 128, 256, True, False),  # MLP weight gradient, layer 1 (x.T @ g)
    (128, 256, 128, False, True),  # MLP input gradient, layer 2 (g @ w.T)
    (64, 256, 256, False, False),  # WGAN critic
    (256, 64, 256, True, False),  # WGAN weight gradient
    (16, 64, 256, False, False),  # LSTM step
    (16, 256, 64, False, True),  # LSTM step, backward (dh @ W.T)
    (32, 32, 32, False, False),  # the MIN_WORK threshold
    (16, 32, 64, False, False),
    (64, 64, 64, False, False),
    (512, 512, 512, False, False),
]


def _timeit(fn, min_time=0.2):
    fn()
    n, total = 1, 0.0
    while total < min_time:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        total = time.perf_counter() - t0
        n *= 2
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 2):
            fn()
        best = min(best, (time.perf_counter() - t0) / (n // 2))
    return best * 1e6


def _time_shape(a, b, ta, tb):
    """Microseconds per ``op(a) @ op(b)`` in each library installed (a, b stored contiguous)."""
    import numpy as np

    from funcgrad.jit import gemm

    av, bv = (a.T if ta else a), (b.T if tb else b)
    times = {"funcgrad": _timeit(lambda: gemm.matmul(a, b, ta, tb)), "numpy": _timeit(lambda: np.dot(av, bv))}
    try:
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        f = jax.jit(lambda x, y: (x.T if ta else x) @ (y.T if tb else y))
        times["jax"] = _timeit(lambda: f(ja, jb).block_until_ready())
    except ImportError:
        pass
    try:
        import torch

        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        times["torch"] = _timeit(lambda: torch.mm(ta_.T if ta else ta_, tb_.T if tb else tb_))
    except ImportError:
        pass
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FUNCGRAD_JIT_THREADS"):
            os.environ[var] = str(args.threads)
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import numpy as np

    from funcgrad.jit import gemm

    gemm.MIN_WORK = 0  # time the compiled product itself at every size
    try:
        import jax

        jax.config.update("jax_enable_x64", args.dtype == "float64")
    except ImportError:
        pass
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    print(f"{args.dtype}, threads: {args.threads or 'default'}; microseconds per product")
    head = f"{'M x K x N (op)':<26}{'funcgrad':>10}{'numpy':>10}{'jax':>10}{'torch':>10}{'fg/np':>8}{'fg/jax':>8}"
    print(head)
    for m, k, n, ta, tb in SHAPES:
        A = rng.standard_normal((m, k)).astype(args.dtype)
        B = rng.standard_normal((k, n)).astype(args.dtype)
        times = _time_shape(np.ascontiguousarray(A.T) if ta else A, np.ascontiguousarray(B.T) if tb else B, ta, tb)
        label = f"{m}x{k}x{n} ({'t' if ta else 'n'}{'t' if tb else 'n'})"
        libs = ("funcgrad", "numpy", "jax", "torch")
        cols = "".join(f"{times[lib]:10.1f}" if lib in times else f"{'-':>10}" for lib in libs)
        ratios = f"{times['funcgrad'] / times['numpy']:8.2f}"
        ratios += f"{times['funcgrad'] / times['jax']:8.2f}" if "jax" in times else f"{'-':>8}"
        print(f"{label:<26}{cols}{ratios}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
