"""Eager-mode overhead and eager MLP gradient, funcgrad against its peers in one run.

Run: ``python benchmarks/bench_eager.py``. Prints absolute times and ratios
(funcgrad / peer; below 1 means funcgrad is faster). Peers that are not installed
are skipped. Only ratios from the same run are meaningful on a noisy machine.

1. 100 chained adds of small (16-element) float32 arrays: per-op dispatch overhead.
2. ``grad`` of a 784-256-10 tanh MLP softmax cross-entropy loss at batch 128.
"""

from __future__ import annotations

import os
import time

import numpy as np

N_CHAIN = 100
BATCH, D_IN, D_HID, D_OUT = 128, 784, 256, 10


def best_time(fn, repeat=7, number=None):
    """Best wall time of one call (seconds), after a warm-up; ``number`` calls per sample."""
    fn()
    if number is None:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        number = max(1, int(0.05 / max(dt, 1e-7)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "w1": (rng.standard_normal((D_IN, D_HID)) / np.sqrt(D_IN)).astype(np.float32),
        "b1": np.zeros(D_HID, np.float32),
        "w2": (rng.standard_normal((D_HID, D_OUT)) / np.sqrt(D_HID)).astype(np.float32),
        "b2": np.zeros(D_OUT, np.float32),
    }
    x = rng.standard_normal((BATCH, D_IN)).astype(np.float32)
    y = rng.integers(0, D_OUT, BATCH)
    return params, x, y


# -- funcgrad --------------------------------------------------------------------------------


def funcgrad_cases(params, x, y):
    import funcgrad as fg
    import funcgrad.numpy as fnp

    a = fnp.ones(16)
    b = fnp.full(16, 1e-3)

    def chain():
        z = a
        for _ in range(N_CHAIN):
            z = z + b
        return z

    p = {k: fnp.asarray(v) for k, v in params.items()}
    xs, onehot = fnp.asarray(x), fnp.asarray(np.eye(D_OUT, dtype=np.float32)[y])

    def loss(p, x, t):
        h = fnp.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        m = fnp.max(logits, axis=1, keepdims=True)
        logp = logits - m - fnp.log(fnp.sum(fnp.exp(logits - m), axis=1, keepdims=True))
        return -fnp.mean(fnp.sum(logp * t, axis=1))

    g = fg.grad(loss)
    return chain, lambda: g(p, xs, onehot)


def numpy_cases(params, x, y):
    a = np.ones(16, np.float32)
    b = np.full(16, 1e-3, np.float32)

    def chain():
        z = a
        for _ in range(N_CHAIN):
            z = z + b
        return z

    return chain, None


def jax_cases(params, x, y):
    import jax
    import jax.numpy as jnp

    a = jnp.ones(16)
    b = jnp.full(16, 1e-3)

    def chain():
        z = a
        for _ in range(N_CHAIN):
            z = z + b
        return z.block_until_ready()

    p = {k: jnp.asarray(v) for k, v in params.items()}
    xs, onehot = jnp.asarray(x), jnp.asarray(np.eye(D_OUT, dtype=np.float32)[y])

    def loss(p, x, t):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.sum(logp * t, axis=1))

    g = jax.grad(loss)  # eager: no jit, op-by-op dispatch like funcgrad's eager mode
    return chain, lambda: jax.block_until_ready(g(p, xs, onehot))


def torch_cases(params, x, y):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a = torch.ones(16)
    b = torch.full((16,), 1e-3)

    def chain():
        z = a
        for _ in range(N_CHAIN):
            z = z + b
        return z

    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xs, yt = torch.tensor(x), torch.tensor(y)

    def step():
        h = torch.tanh(xs @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        loss = torch.nn.functional.cross_entropy(logits, yt)
        return torch.autograd.grad(loss, list(p.values()))

    return chain, step


def autograd_cases(params, x, y):
    import autograd
    import autograd.numpy as anp

    a = np.ones(16, np.float32)
    b = np.full(16, 1e-3, np.float32)

    def chain():
        z = a
        for _ in range(N_CHAIN):
            z = anp.add(z, b)
        return z

    onehot = np.eye(D_OUT, dtype=np.float32)[y]

    def loss(p):
        h = anp.tanh(anp.dot(x, p["w1"]) + p["b1"])
        logits = anp.dot(h, p["w2"]) + p["b2"]
        m = anp.max(logits, axis=1, keepdims=True)
        logp = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=1, keepdims=True))
        return -anp.mean(anp.sum(logp * onehot, axis=1))

    g = autograd.grad(loss)
    return chain, lambda: g(params)


def main():
    params, x, y = make_data()
    peers = {
        "funcgrad": funcgrad_cases,
        "jax": jax_cases,
        "torch": torch_cases,
        "autograd": autograd_cases,
        "numpy": numpy_cases,
    }
    results = {}
    for name, make in peers.items():
        try:
            chain, mlp = make(params, x, y)
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        results[name] = (best_time(chain) / N_CHAIN, best_time(mlp, repeat=5) if mlp else None)
    fg_op, fg_mlp = results["funcgrad"]
    print(f"\n{'library':<10} {'per add (us)':>13} {'MLP grad (ms)':>14} {'fg/peer add':>12} {'fg/peer MLP':>12}")
    for name, (op, mlp) in results.items():
        mlp_s = f"{mlp * 1e3:14.3f}" if mlp else f"{'-':>14}"
        r_op = f"{fg_op / op:12.2f}"
        r_mlp = f"{fg_mlp / mlp:12.2f}" if mlp else f"{'-':>12}"
        print(f"{name:<10} {op * 1e6:13.2f} {mlp_s} {r_op} {r_mlp}")
    if "jax" in results:
        print(f"\nper-op overhead vs JAX eager: {fg_op / results['jax'][0]:.2f}x (target <= 0.5)")
    if "autograd" in results:
        print(f"eager MLP grad vs autograd:   {fg_mlp / results['autograd'][1]:.2f}x (target <= 1.5)")


if __name__ == "__main__":
    main()
