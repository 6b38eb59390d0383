"""The transform workloads of benchmarks/bench_jit.py, at small sizes: jit equals eager and JAX.

The workloads (benchmarks/jit_workloads.py) are per-sample gradients (``jit(vmap(grad))``),
``jacrev``, ``hessian``, a WGAN-GP critic step (a gradient penalty through ``vmap(grad)``,
differentiated again), a CNN SGD step (convolutions, max-pool) and an LSTM ``lax.scan``
gradient. Each is checked here on the code the benchmark times, so a benchmark never times a
wrong computation. PyTorch's versions (the benchmark's other columns) are checked against
JAX too.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import jit_workloads as jw  # noqa: E402

WORKLOADS = list(jw.WORKLOADS)

# Importing torch.func warns about torch.jit.script inside torch itself.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def jax():
    return pytest.importorskip("jax")


@pytest.mark.parametrize("name", WORKLOADS)
def test_workload_jit_equals_eager(name):
    fns = jw.funcgrad_fns(name, jw.make_data(name, small=True))
    jitted, eager = fns["jit"](), fns["eager"]()
    jw.assert_same(jitted, eager, f"{name}: jit against eager")
    assert all(np.all(np.isfinite(a)) for a in jw.leaves(jitted))
    # A second call reuses the compiled executor and gives the same numbers.
    jw.assert_same(fns["jit"](), jitted, f"{name}: second jit call")


@pytest.mark.parametrize("name", WORKLOADS)
def test_workload_matches_jax(jax, name):
    data = jw.make_data(name, small=True)
    want = jw.jax_fn(name, data)()
    jw.assert_same(jw.funcgrad_fns(name, data)["jit"](), want, f"{name}: funcgrad jit against jax")


@pytest.mark.parametrize("name", WORKLOADS)
def test_torch_baselines_match_jax(jax, name):
    pytest.importorskip("torch")
    data = jw.make_data(name, small=True)
    want = jw.jax_fn(name, data)()
    for lib, fn in jw.torch_fns(name, data).items():
        jw.assert_same(fn(), want, f"{name}: {lib} against jax")


def test_workload_outputs_have_the_expected_structure():
    """Each workload returns what it claims: per-example gradients, square Jacobians and
    Hessians (the Hessian symmetric), updated parameters plus a loss, weight gradients."""
    d = jw.make_data("per_sample", small=True)
    grads = jw.funcgrad_fns("per_sample", d)["jit"]()
    batch = d["x"].shape[0]
    assert [g.shape for g in grads] == [(batch,) + p.shape for p in d["params"]]
    d = jw.make_data("hessian", small=True)
    h = np.asarray(jw.funcgrad_fns("hessian", d)["jit"]())
    assert h.shape == (d["x"].size,) * 2
    np.testing.assert_allclose(h, h.T, rtol=1e-5, atol=1e-6)
    for name in ("wgan_gp", "cnn_sgd"):
        d = jw.make_data(name, small=True)
        new, loss = jw.funcgrad_fns(name, d)["jit"]()
        assert [p.shape for p in new] == [p.shape for p in d["params"]]
        assert np.ndim(loss) == 0 and np.isfinite(loss)
        assert any(not np.array_equal(np.asarray(a), b) for a, b in zip(new, d["params"]))
    d = jw.make_data("lstm_scan", small=True)
    g = jw.funcgrad_fns("lstm_scan", d)["jit"]()
    assert sorted(g) == sorted(d["params"]) and all(g[k].shape == d["params"][k].shape for k in g)


def test_per_sample_gradients_are_per_example():
    """Row i of the vmapped gradient is the gradient of example i alone."""
    import funcgrad as fg
    import funcgrad.numpy as fnp

    d = jw.make_data("per_sample", small=True)
    grads = jw.funcgrad_fns("per_sample", d)["jit"]()
    x, y = d["x"], d["y"]
    for i in (0, x.shape[0] - 1):
        one = jw.make_data("per_sample", small=True)
        one["x"], one["y"] = x[i : i + 1], y[i : i + 1]
        gi = jw.funcgrad_fns("per_sample", one)["eager"]()
        for g_all, g_one in zip(grads, gi):
            np.testing.assert_allclose(np.asarray(g_all)[i], np.asarray(g_one)[0], rtol=1e-5, atol=1e-6)
    assert isinstance(grads[0], fg.Array) and grads[0].dtype == fnp.float32


def test_unknown_workload_is_named_in_the_error():
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        jw.make_data("nope")
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        jw.funcgrad_fns("nope", {})
