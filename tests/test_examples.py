"""Worked examples users come for: per-example gradients, per-sample Jacobians and a
WGAN-GP gradient penalty, checked against Python loops and against JAX."""

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp

RNG = np.random.default_rng(0)


def _mlp_params(sizes, dtype=np.float64):
    return [
        (RNG.standard_normal((m, n)).astype(dtype) / np.sqrt(m), RNG.standard_normal(n).astype(dtype) * 0.1)
        for m, n in zip(sizes[:-1], sizes[1:])
    ]


def _mlp(params, x, np_mod=fnp):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = np_mod.tanh(x)
    return x


def _xent(params, x, t, np_mod=fnp):
    logits = _mlp(params, x, np_mod)
    m = np_mod.max(logits, axis=-1, keepdims=True)
    logp = logits - m - np_mod.log(np_mod.sum(np_mod.exp(logits - m), axis=-1, keepdims=True))
    return -np_mod.sum(logp * t)


def test_per_example_gradients_equal_loop_of_single_example_gradients():
    params = [(fnp.asarray(w), fnp.asarray(b)) for w, b in _mlp_params([20, 16, 5])]
    x = fnp.asarray(RNG.standard_normal((8, 20)))
    t = fnp.asarray(np.eye(5)[RNG.integers(0, 5, 8)])
    batched = fg.vmap(fg.grad(_xent), in_axes=(None, 0, 0))(params, x, t)
    for i in range(8):
        single = fg.grad(_xent)(params, x[i], t[i])
        for (gw, gb), (sw, sb) in zip(batched, single):
            np.testing.assert_allclose(gw[i], sw, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(gb[i], sb, rtol=1e-10, atol=1e-12)


def test_per_sample_jacobians_have_batch_out_feat_shape_and_equal_loop():
    params = [(fnp.asarray(w), fnp.asarray(b)) for w, b in _mlp_params([6, 7, 3])]
    x = fnp.asarray(RNG.standard_normal((4, 6)))
    jac = fg.vmap(fg.jacrev(lambda xi: _mlp(params, xi)))(x)
    assert jac.shape == (4, 3, 6)
    for i in range(4):
        np.testing.assert_allclose(jac[i], fg.jacrev(lambda xi: _mlp(params, xi))(x[i]), rtol=1e-10)
    jac_fwd = fg.vmap(fg.jacfwd(lambda xi: _mlp(params, xi)))(x)
    np.testing.assert_allclose(jac_fwd, jac, rtol=1e-10, atol=1e-12)


def _wgan_gp_loss(critic_params, real, fake, eps, lam, np_mod, grad, vmap):
    def critic(x):  # one example -> scalar score
        return _mlp(critic_params, x, np_mod)[0]

    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    grads = vmap(grad(critic))(x_hat)
    norms = np_mod.sqrt(np_mod.sum(grads**2, axis=1) + 1e-12)
    penalty = np_mod.mean((norms - 1.0) ** 2)
    scores_real = vmap(critic)(real)
    scores_fake = vmap(critic)(fake)
    return np_mod.mean(scores_fake) - np_mod.mean(scores_real) + lam * penalty


def test_wgan_gp_parameter_gradient_matches_jax():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    jax.config.update("jax_enable_x64", True)
    try:
        params = _mlp_params([5, 8, 1])
        real, fake = RNG.standard_normal((6, 5)), RNG.standard_normal((6, 5))
        eps = RNG.uniform(size=6)
        fg_params = [(fnp.asarray(w), fnp.asarray(b)) for w, b in params]
        ours = fg.grad(_wgan_gp_loss)(
            fg_params, fnp.asarray(real), fnp.asarray(fake), fnp.asarray(eps), 10.0, fnp, fg.grad, fg.vmap
        )
        jparams = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
        theirs = jax.grad(_wgan_gp_loss)(
            jparams, jnp.asarray(real), jnp.asarray(fake), jnp.asarray(eps), 10.0, jnp, jax.grad, jax.vmap
        )
        for (a, b), (c, d) in zip(ours, theirs):
            np.testing.assert_allclose(a, np.asarray(c), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(b, np.asarray(d), rtol=1e-9, atol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_wgan_gp_gradient_matches_finite_differences():
    from funcgrad.testing import check_grads

    params = _mlp_params([3, 4, 1])
    real, fake, eps = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3)), RNG.uniform(size=4)
    w0 = params[0][0]

    def f(w):
        p = [(w, fnp.asarray(params[0][1]))] + [(fnp.asarray(a), fnp.asarray(b)) for a, b in params[1:]]
        return _wgan_gp_loss(p, fnp.asarray(real), fnp.asarray(fake), fnp.asarray(eps), 10.0, fnp, fg.grad, fg.vmap)

    check_grads(f, (w0,), order=1, modes=("rev",))
