"""Eager per-example gradients with vmap(grad), funcgrad against JAX and torch.func in one run.

Run: ``python benchmarks/bench_vmap.py``. Workload: per-example gradients of a 784-256-10
tanh MLP softmax cross-entropy loss at batch 128 (no jit anywhere). Prints times and the
ratios funcgrad / peer (below 1 means funcgrad is faster).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_eager import BATCH, D_OUT, best_time, make_data  # noqa: E402


def funcgrad_case(params, x, y):
    import funcgrad as fg
    import funcgrad.numpy as fnp

    p = {k: fnp.asarray(v) for k, v in params.items()}
    xs, onehot = fnp.asarray(x), fnp.asarray(np.eye(D_OUT, dtype=np.float32)[y])

    def loss(p, x, t):  # one example
        h = fnp.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        logp = logits - fnp.max(logits) - fnp.log(fnp.sum(fnp.exp(logits - fnp.max(logits))))
        return -fnp.sum(logp * t)

    per_example = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))
    return lambda: per_example(p, xs, onehot)


def jax_case(params, x, y):
    import jax
    import jax.numpy as jnp

    p = {k: jnp.asarray(v) for k, v in params.items()}
    xs, onehot = jnp.asarray(x), jnp.asarray(np.eye(D_OUT, dtype=np.float32)[y])

    def loss(p, x, t):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return -jnp.sum(jax.nn.log_softmax(h @ p["w2"] + p["b2"]) * t)

    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
    return lambda: jax.block_until_ready(per_example(p, xs, onehot))


def torch_func_case(params, x, y):
    import torch
    from torch.func import grad, vmap

    p = {k: torch.tensor(v) for k, v in params.items()}
    xs, yt = torch.tensor(x), torch.tensor(y)

    def loss(p, x, t):
        h = torch.tanh(x @ p["w1"] + p["b1"])
        return torch.nn.functional.cross_entropy((h @ p["w2"] + p["b2"])[None], t[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    return lambda: per_example(p, xs, yt)


def main():
    params, x, y = make_data()
    times = {}
    for name, make in [("funcgrad", funcgrad_case), ("jax", jax_case), ("torch.func", torch_func_case)]:
        try:
            times[name] = best_time(make(params, x, y), repeat=5)
        except ImportError:
            print(f"{name}: not installed, skipped")
    print(f"\nper-example gradients, MLP 784-256-10, batch {BATCH} (eager)")
    print(f"{'library':<12} {'time (ms)':>10} {'fg/peer':>8}")
    for name, t in times.items():
        print(f"{name:<12} {t * 1e3:10.3f} {times['funcgrad'] / t:8.2f}")


if __name__ == "__main__":
    main()
