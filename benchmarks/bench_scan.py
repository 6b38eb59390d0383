"""LSTM written with ``lax.scan``: gradient time, funcgrad against JAX in one run.

Run: ``python benchmarks/bench_scan.py``. Workload: T=50 steps, batch 16, input 32, hidden 64;
``grad`` of the sum of squares of the final hidden state with respect to the weights.
Eager (no jit) for both, plus the jitted versions. Prints ratios funcgrad / JAX.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_eager import best_time  # noqa: E402

T, B, D, H = 50, 16, 32, 64


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "wx": (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(np.float32),
        "wh": (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        "b": np.zeros(4 * H, np.float32),
    }
    xs = rng.standard_normal((T, B, D)).astype(np.float32)
    return params, xs


def lstm_loss(np_mod, scan, sigmoid):
    def loss(p, xs):
        def cell(carry, x):
            h, c = carry
            z = x @ p["wx"] + h @ p["wh"] + p["b"]
            i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            c = sigmoid(f) * c + sigmoid(i) * np_mod.tanh(g)
            h = sigmoid(o) * np_mod.tanh(c)
            return (h, c), None

        zeros = np_mod.zeros((B, H), np_mod.float32)
        (h, _), _ = scan(cell, (zeros, zeros), xs)
        return np_mod.sum(h**2)

    return loss


def funcgrad_cases(params, xs):
    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad import lax

    p = {k: fnp.asarray(v) for k, v in params.items()}
    x = fnp.asarray(xs)
    g = fg.grad(lstm_loss(fnp, lax.scan, lax.logistic))
    gj = fg.jit(g)
    return (lambda: g(p, x)), (lambda: fg.block_until_ready(gj(p, x)))


def jax_cases(params, xs):
    import jax
    import jax.numpy as jnp

    p = {k: jnp.asarray(v) for k, v in params.items()}
    x = jnp.asarray(xs)
    g = jax.grad(lstm_loss(jnp, jax.lax.scan, jax.nn.sigmoid))
    gj = jax.jit(g)
    return (lambda: jax.block_until_ready(g(p, x))), (lambda: jax.block_until_ready(gj(p, x)))


def main():
    params, xs = make_data()
    times = {}
    for name, make in [("funcgrad", funcgrad_cases), ("jax", jax_cases)]:
        try:
            eager, jitted = make(params, xs)
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        times[name] = (best_time(eager, repeat=3), best_time(jitted, repeat=5))
    print(f"\nLSTM scan gradient, T={T} batch={B} hidden={H}")
    print(f"{'library':<10} {'eager (ms)':>11} {'jit (ms)':>10}")
    for name, (e, j) in times.items():
        print(f"{name:<10} {e * 1e3:11.2f} {j * 1e3:10.2f}")
    if "jax" in times:
        fe, fj = times["funcgrad"]
        je, jj = times["jax"]
        print(f"\nfuncgrad/JAX: eager {fe / je:.2f}x, jit {fj / jj:.2f}x")


if __name__ == "__main__":
    main()
