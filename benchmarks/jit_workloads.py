"""Transform-heavy workloads of ``bench_jit.py``: each written for funcgrad, JAX and PyTorch.

Every workload is the same computation in every library, on the same NumPy data:

* ``per_sample``: ``jit(vmap(grad(loss), in_axes=(None, 0, 0)))``, per-example gradients of a
  784-256-10 tanh MLP with softmax cross-entropy, batch 128 (PyTorch: a loop of
  ``autograd.grad`` per example, and ``torch.func.vmap(torch.func.grad(loss))``);
* ``jacrev``: the 100 x 100 Jacobian of ``x -> tanh(W @ x + b)`` (reverse mode);
* ``hessian``: the 100 x 100 Hessian of ``x -> sum(tanh(W @ x + b) ** 2)``;
* ``wgan_gp``: a WGAN-GP critic SGD step: critic loss plus the gradient penalty
  ``mean((||grad_x critic(x_hat)||_2 - 1) ** 2)`` whose per-example input gradients come from
  ``vmap(grad(critic))``, differentiated with respect to the critic's parameters (a
  second-order derivative); critic 128-256-256-1 tanh MLP, batch 64;
* ``cnn_sgd``: an SGD step of a small CNN: two 3x3 convolutions (1->8->16 channels, ReLU),
  a 2x2 max-pool, a dense layer to 10 classes, softmax cross-entropy; batch 32 of 1x28x28;
* ``lstm_scan``: the gradient of the LSTM of ``bench_scan.py`` (``lax.scan``, T=50, batch 16,
  input 32, hidden 64; PyTorch: a Python loop over the steps).

``make_data(name, small=True)`` gives small sizes for the tests (tests/test_jit_workloads.py).
Each ``*_fns`` function returns thunks that compute the workload and return its outputs;
:func:`leaves` turns any library's outputs into a list of NumPy arrays in a fixed order, so
results can be compared across libraries.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = ("per_sample", "jacrev", "hessian", "wgan_gp", "cnn_sgd", "lstm_scan")

LABELS = {
    "per_sample": "per-sample grads MLP 784-256-10, b128",
    "jacrev": "jacrev tanh(Wx+b), 100->100",
    "hessian": "hessian sum(tanh(Wx+b)^2), 100 in",
    "wgan_gp": "WGAN-GP critic step, 128-256-256-1 b64",
    "cnn_sgd": "CNN (2 conv, pool, dense) SGD, b32",
    "lstm_scan": "LSTM scan grad T50 b16 h64",
}

# Target ratio funcgrad / JAX of each workload.
TARGETS = {"per_sample": 0.5, "jacrev": 1.0, "hessian": 1.0, "wgan_gp": 1.0, "cnn_sgd": 1.0, "lstm_scan": 0.5}

LR = 0.01
GP_WEIGHT = 10.0


# -- data -----------------------------------------------------------------------------------------


def _dense(rng, a, b):
    return (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), np.zeros(b, np.float32)


def make_data(name, small=False, seed=0):
    """The NumPy inputs of workload ``name`` (a dict), at benchmark or at test (``small``) size."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    if name == "per_sample":
        batch, sizes = (8, (20, 16, 10)) if small else (128, (784, 256, 10))
        (w1, b1), (w2, b2) = _dense(rng, sizes[0], sizes[1]), _dense(rng, sizes[1], sizes[2])
        b1 += 0.1 * rng.standard_normal(b1.shape).astype(f32)
        x = rng.standard_normal((batch, sizes[0])).astype(f32)
        y = np.eye(sizes[2], dtype=f32)[rng.integers(0, sizes[2], batch)]
        return {"params": (w1, b1, w2, b2), "x": x, "y": y}
    if name in ("jacrev", "hessian"):
        n = 12 if small else 100
        return {
            "w": (rng.standard_normal((n, n)) / np.sqrt(n)).astype(f32),
            "b": (0.1 * rng.standard_normal(n)).astype(f32),
            "x": rng.standard_normal(n).astype(f32),
        }
    if name == "wgan_gp":
        batch, d, h = (6, 10, 16) if small else (64, 128, 256)
        layers = [_dense(rng, d, h), _dense(rng, h, h), _dense(rng, h, 1)]
        params = tuple(a for layer in layers for a in layer)
        return {
            "params": params,
            "real": rng.standard_normal((batch, d)).astype(f32),
            "fake": (0.5 * rng.standard_normal((batch, d)) + 0.3).astype(f32),
            "eps": rng.uniform(size=batch).astype(f32),
        }
    if name == "cnn_sgd":
        batch, side, c1, c2 = (4, 8, 3, 4) if small else (32, 28, 8, 16)
        w1 = (rng.standard_normal((c1, 1, 3, 3)) / 3.0).astype(f32)
        w2 = (rng.standard_normal((c2, c1, 3, 3)) / np.sqrt(9 * c1)).astype(f32)
        flat = c2 * (side // 2) ** 2
        w3, b3 = _dense(rng, flat, 10)
        params = (
            w1,
            (0.1 * rng.standard_normal(c1)).astype(f32),
            w2,
            (0.1 * rng.standard_normal(c2)).astype(f32),
            w3,
            b3,
        )
        x = rng.standard_normal((batch, 1, side, side)).astype(f32)
        y = np.eye(10, dtype=f32)[rng.integers(0, 10, batch)]
        return {"params": params, "x": x, "y": y}
    if name == "lstm_scan":
        import bench_scan

        if small:
            t, b, d, h = 5, 3, 4, 6
            params = {
                "wx": (rng.standard_normal((d, 4 * h)) / np.sqrt(d)).astype(f32),
                "wh": (rng.standard_normal((h, 4 * h)) / np.sqrt(h)).astype(f32),
                "b": (0.1 * rng.standard_normal(4 * h)).astype(f32),
            }
            return {"params": params, "xs": rng.standard_normal((t, b, d)).astype(f32), "hidden": h}
        params, xs = bench_scan.make_data(seed)
        return {"params": params, "xs": xs, "hidden": bench_scan.H}
    raise ValueError(f"jit_workloads.make_data: unknown workload {name!r}; expected one of {WORKLOADS}")


def leaves(out):
    """Outputs of any library as a flat list of NumPy arrays (dicts in sorted key order)."""
    if isinstance(out, dict):
        return [a for k in sorted(out) for a in leaves(out[k])]
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in leaves(o)]
    if hasattr(out, "detach"):  # a torch tensor
        return [out.detach().numpy()]
    return [np.asarray(out)]


def assert_same(got, want, what):
    """``got`` equals ``want`` (outputs of two libraries) to float32 accuracy."""
    g, w = leaves(got), leaves(want)
    assert len(g) == len(w), f"{what}: {len(g)} outputs, expected {len(w)}"
    for i, (a, b) in enumerate(zip(g, w)):
        assert a.shape == b.shape, f"{what}: output {i} has shape {a.shape}, expected {b.shape}"
        scale = float(np.max(np.abs(b))) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * max(scale, 1.0), err_msg=f"{what}: output {i}")


# -- the models, written once against a numpy-like module -----------------------------------------


def _mlp_logits(m, p, x):
    w1, b1, w2, b2 = p
    return m.tanh(x @ w1 + b1) @ w2 + b2


def _critic(m, p, x):
    w1, b1, w2, b2, w3, b3 = p
    h = m.tanh(x @ w1 + b1)
    h = m.tanh(h @ w2 + b2)
    return (h @ w3 + b3)[..., 0]


def _gp_loss(m, grad, vmap, p, real, fake, eps):
    e = eps[:, None]
    x_hat = e * real + (1 - e) * fake
    gx = vmap(grad(lambda p, x: _critic(m, p, x), argnums=1), in_axes=(None, 0))(p, x_hat)
    norm = m.sqrt(m.sum(gx * gx, axis=-1) + 1e-12)
    gp = m.mean((norm - 1.0) ** 2)
    return m.mean(_critic(m, p, fake)) - m.mean(_critic(m, p, real)) + GP_WEIGHT * gp


# -- funcgrad ---------------------------------------------------------------------------------------


def funcgrad_fns(name, data):
    """``{"jit": thunk, "eager": thunk}`` for workload ``name`` in funcgrad (public API only)."""
    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad import lax
    from funcgrad.scipy.special import logsumexp

    arr = lambda t: fg.tree_map(fnp.asarray, t)  # noqa: E731
    if name == "per_sample":

        def loss(p, x, y):
            logits = _mlp_logits(fnp, p, x)
            return logsumexp(logits) - fnp.sum(logits * y)

        fn = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))
        args = (arr(data["params"]), fnp.asarray(data["x"]), fnp.asarray(data["y"]))
    elif name in ("jacrev", "hessian"):
        if name == "jacrev":
            fn = fg.jacrev(lambda w, b, x: fnp.tanh(w @ x + b), argnums=2)
        else:
            fn = fg.hessian(lambda w, b, x: fnp.sum(fnp.tanh(w @ x + b) ** 2), argnums=2)
        args = tuple(fnp.asarray(data[k]) for k in ("w", "b", "x"))
    elif name == "wgan_gp":

        def fn(p, real, fake, eps):
            loss, g = fg.value_and_grad(lambda p: _gp_loss(fnp, fg.grad, fg.vmap, p, real, fake, eps))(p)
            return fg.tree_map(lambda a, b: a - LR * b, p, g), loss

        args = (arr(data["params"]),) + tuple(fnp.asarray(data[k]) for k in ("real", "fake", "eps"))
    elif name == "cnn_sgd":

        def loss(p, x, y):
            w1, b1, w2, b2, w3, b3 = p
            h = fnp.maximum(lax.conv_general_dilated(x, w1, (1, 1), "SAME") + b1[:, None, None], 0.0)
            h = fnp.maximum(lax.conv_general_dilated(h, w2, (1, 1), "SAME") + b2[:, None, None], 0.0)
            h = lax.reduce_window(h, -fnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            logits = h.reshape(h.shape[0], -1) @ w3 + b3
            return fnp.mean(logsumexp(logits, axis=-1) - fnp.sum(logits * y, axis=-1))

        def fn(p, x, y):
            loss_val, g = fg.value_and_grad(loss)(p, x, y)
            return fg.tree_map(lambda a, b: a - LR * b, p, g), loss_val

        args = (arr(data["params"]), fnp.asarray(data["x"]), fnp.asarray(data["y"]))
    elif name == "lstm_scan":
        import bench_scan

        fn = fg.grad(_lstm_loss(bench_scan, fnp, lax.scan, lax.logistic, data))
        args = (arr(data["params"]), fnp.asarray(data["xs"]))
    else:
        raise ValueError(f"jit_workloads.funcgrad_fns: unknown workload {name!r}")
    jitted = fg.jit(fn)
    return {"jit": lambda: jitted(*args), "eager": lambda: fn(*args), "jitted": jitted, "args": args}


def _lstm_loss(bench_scan, m, scan, sigmoid, data):
    """bench_scan's LSTM loss (its module constants set the hidden and batch sizes)."""
    h = data["hidden"]
    if h == bench_scan.H and data["xs"].shape[1] == bench_scan.B:
        return bench_scan.lstm_loss(m, scan, sigmoid)

    def loss(p, xs):  # the same model at other (test) sizes
        def cell(carry, x):
            hh, c = carry
            z = x @ p["wx"] + hh @ p["wh"] + p["b"]
            i, f, g, o = z[:, :h], z[:, h : 2 * h], z[:, 2 * h : 3 * h], z[:, 3 * h :]
            c = sigmoid(f) * c + sigmoid(i) * m.tanh(g)
            hh = sigmoid(o) * m.tanh(c)
            return (hh, c), None

        zeros = m.zeros((xs.shape[1], h), m.float32)
        (hh, _), _ = scan(cell, (zeros, zeros), xs)
        return m.sum(hh**2)

    return loss


# -- JAX --------------------------------------------------------------------------------------------


def jax_fn(name, data):
    """A thunk running workload ``name`` with ``jax.jit`` (blocking until the result is ready)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    arr = lambda t: jax.tree_util.tree_map(jnp.asarray, t)  # noqa: E731
    if name == "per_sample":

        def loss(p, x, y):
            logits = _mlp_logits(jnp, p, x)
            return logsumexp(logits) - jnp.sum(logits * y)

        fn = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
        args = (arr(data["params"]), jnp.asarray(data["x"]), jnp.asarray(data["y"]))
    elif name in ("jacrev", "hessian"):
        if name == "jacrev":
            fn = jax.jacrev(lambda w, b, x: jnp.tanh(w @ x + b), argnums=2)
        else:
            fn = jax.hessian(lambda w, b, x: jnp.sum(jnp.tanh(w @ x + b) ** 2), argnums=2)
        args = tuple(jnp.asarray(data[k]) for k in ("w", "b", "x"))
    elif name == "wgan_gp":

        def fn(p, real, fake, eps):
            loss, g = jax.value_and_grad(lambda p: _gp_loss(jnp, jax.grad, jax.vmap, p, real, fake, eps))(p)
            return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss

        args = (arr(data["params"]),) + tuple(jnp.asarray(data[k]) for k in ("real", "fake", "eps"))
    elif name == "cnn_sgd":
        lax = jax.lax

        def loss(p, x, y):
            w1, b1, w2, b2, w3, b3 = p
            h = jnp.maximum(lax.conv_general_dilated(x, w1, (1, 1), "SAME") + b1[:, None, None], 0.0)
            h = jnp.maximum(lax.conv_general_dilated(h, w2, (1, 1), "SAME") + b2[:, None, None], 0.0)
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            logits = h.reshape(h.shape[0], -1) @ w3 + b3
            return jnp.mean(logsumexp(logits, axis=-1) - jnp.sum(logits * y, axis=-1))

        def fn(p, x, y):
            loss_val, g = jax.value_and_grad(loss)(p, x, y)
            return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss_val

        args = (arr(data["params"]), jnp.asarray(data["x"]), jnp.asarray(data["y"]))
    elif name == "lstm_scan":
        import bench_scan

        fn = jax.grad(_lstm_loss(bench_scan, jnp, jax.lax.scan, jax.nn.sigmoid, data))
        args = (arr(data["params"]), jnp.asarray(data["xs"]))
    else:
        raise ValueError(f"jit_workloads.jax_fn: unknown workload {name!r}")
    jitted = jax.jit(fn)
    return lambda: jax.block_until_ready(jitted(*args))


# -- PyTorch ----------------------------------------------------------------------------------------


def torch_fns(name, data):
    """``{"torch": eager thunk, "torch.func": thunk}`` (the latter where torch.func applies)."""
    import torch
    import torch.nn.functional as F
    from torch import func as tf

    tree = lambda t: tuple(torch.tensor(a) for a in t)  # noqa: E731
    out = {}
    if name == "per_sample":
        p = tree(data["params"])
        x, y = torch.tensor(data["x"]), torch.tensor(data["y"])

        def loss(p, x, y):
            logits = _mlp_logits(torch, p, x)
            return torch.logsumexp(logits, -1) - torch.sum(logits * y, -1)

        pg = tuple(t.clone().requires_grad_(True) for t in p)

        def eager():
            per = [torch.autograd.grad(loss(pg, x[i], y[i]), pg) for i in range(x.shape[0])]
            return tuple(torch.stack(gs) for gs in zip(*per))

        vg = tf.vmap(tf.grad(loss), in_dims=(None, 0, 0))
        out["torch"] = eager
        out["torch.func"] = lambda: vg(p, x, y)
    elif name in ("jacrev", "hessian"):
        w, b, x = (torch.tensor(data[k]) for k in ("w", "b", "x"))
        if name == "jacrev":
            f = lambda w, b, x: torch.tanh(w @ x + b)  # noqa: E731
            out["torch"] = lambda: torch.autograd.functional.jacobian(lambda x: f(w, b, x), x)
            jf = tf.jacrev(f, argnums=2)
        else:
            f = lambda w, b, x: torch.sum(torch.tanh(w @ x + b) ** 2)  # noqa: E731
            out["torch"] = lambda: torch.autograd.functional.hessian(lambda x: f(w, b, x), x)
            jf = tf.hessian(f, argnums=2)
        out["torch.func"] = lambda: jf(w, b, x)
    elif name == "wgan_gp":
        p = tree(data["params"])
        real, fake, eps = (torch.tensor(data[k]) for k in ("real", "fake", "eps"))
        pg = tuple(t.clone().requires_grad_(True) for t in p)

        def eager():  # the usual PyTorch WGAN-GP: input gradients of the summed critic, create_graph
            e = eps[:, None]
            x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
            (gx,) = torch.autograd.grad(_critic(torch, pg, x_hat).sum(), x_hat, create_graph=True)
            gp = torch.mean((torch.sqrt(torch.sum(gx * gx, -1) + 1e-12) - 1.0) ** 2)
            loss = torch.mean(_critic(torch, pg, fake)) - torch.mean(_critic(torch, pg, real)) + GP_WEIGHT * gp
            grads = torch.autograd.grad(loss, pg)
            with torch.no_grad():
                return tuple(a - LR * g for a, g in zip(pg, grads)), loss.detach()

        def tgrad(f, argnums=0):
            return tf.grad(f, argnums=argnums)

        def tvmap(f, in_axes):
            return tf.vmap(f, in_dims=in_axes)

        def func_step(p):
            g, loss = tf.grad_and_value(lambda p: _gp_loss(_TorchNp, tgrad, tvmap, p, real, fake, eps))(p)
            return tuple(a - LR * b for a, b in zip(p, g)), loss

        out["torch"] = eager
        out["torch.func"] = lambda: func_step(p)
    elif name == "cnn_sgd":
        pg = tuple(t.requires_grad_(True) for t in tree(data["params"]))
        x, y = torch.tensor(data["x"]), torch.tensor(data["y"])

        def eager():
            w1, b1, w2, b2, w3, b3 = pg
            h = F.relu(F.conv2d(x, w1, b1, padding=1))
            h = F.relu(F.conv2d(h, w2, b2, padding=1))
            h = F.max_pool2d(h, 2)
            logits = h.reshape(h.shape[0], -1) @ w3 + b3
            loss = torch.mean(torch.logsumexp(logits, -1) - torch.sum(logits * y, -1))
            grads = torch.autograd.grad(loss, pg)
            with torch.no_grad():
                return tuple(a - LR * g for a, g in zip(pg, grads)), loss.detach()

        out["torch"] = eager
    elif name == "lstm_scan":
        p = {k: torch.tensor(v).requires_grad_(True) for k, v in data["params"].items()}
        xs = torch.tensor(data["xs"])
        h = data["hidden"]

        def eager():
            hh = c = torch.zeros((xs.shape[1], h))
            for t in range(xs.shape[0]):
                z = xs[t] @ p["wx"] + hh @ p["wh"] + p["b"]
                i, f, g, o = z[:, :h], z[:, h : 2 * h], z[:, 2 * h : 3 * h], z[:, 3 * h :]
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                hh = torch.sigmoid(o) * torch.tanh(c)
            keys = sorted(p)
            grads = torch.autograd.grad(torch.sum(hh**2), [p[k] for k in keys])
            return dict(zip(keys, grads))

        out["torch"] = eager
    else:
        raise ValueError(f"jit_workloads.torch_fns: unknown workload {name!r}")
    return out


class _TorchNp:
    """The few numpy-style functions the shared model code calls, for torch tensors."""

    @staticmethod
    def tanh(x):
        import torch

        return torch.tanh(x)

    @staticmethod
    def sqrt(x):
        import torch

        return torch.sqrt(x)

    @staticmethod
    def sum(x, axis=None):
        import torch

        return torch.sum(x) if axis is None else torch.sum(x, dim=axis)

    @staticmethod
    def mean(x):
        import torch

        return torch.mean(x)
