"""funcgrad.jit.gemm: the host-compiled matrix product used by jitted code, and its worker pool."""

import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.jit import gemm, kernels, native, workers

needs_native = pytest.mark.skipif(
    native.runtime() is None or not gemm.ENABLED, reason="native code is off on this platform or by configuration"
)

needs_workers = pytest.mark.skipif(
    not workers.AVAILABLE or kernels.num_threads() < 2, reason="worker threads need Linux x86-64 and two CPUs"
)

TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]
# shapes around the blocking: MR (6 or 14), NR (16..32), KC (256), MC (168 or 162), NC (1024)
# few rows (B read in place, a partial last panel packed), K and N past one block, many rows
SHAPES = [
    (1, 40, 1),
    (3, 1000, 5),
    (2, 70, 100),
    (14, 256, 32),
    (15, 257, 33),
    (28, 300, 1030),
    (29, 300, 65),
    (170, 70, 40),
    (40, 520, 1030),
]


def _operands(rng, m, k, n, dtype, trans_a, trans_b):
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    a = np.ascontiguousarray(A.T) if trans_a else A
    b = np.ascontiguousarray(B.T) if trans_b else B
    return A, B, a, b


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_float64_reference(monkeypatch, dtype, trans_a, trans_b, shape):
    monkeypatch.setattr(gemm, "MIN_WORK", 0)
    rng = np.random.default_rng(sum(shape))
    A, B, a, b = _operands(rng, *shape, dtype, trans_a, trans_b)
    got = gemm.matmul(a, b, trans_a, trans_b)
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    scale = np.sqrt(shape[1])  # sums of k products of unit normals
    tol = (2e-6 if dtype == np.float32 else 1e-14) * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, np.abs(want).max()))


@needs_native
@needs_workers
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("m,k,n", [(130, 600, 300), (301, 500, 20)])  # split by columns / by rows
def test_parallel_split_is_bitwise_the_serial_product(trans_a, trans_b, m, k, n):
    """Parts split among the workers are computed exactly as the serial kernel computes them."""
    prod = gemm.product(np.dtype(np.float32))
    rng = np.random.default_rng(1)
    _, _, a, b = _operands(rng, m, k, n, np.float32, trans_a, trans_b)
    flags = 1 + trans_a + 2 * trans_b
    serial = np.empty((m, n), np.float32)
    parallel = np.empty((m, n), np.float32)
    prod.serial(serial, a, b, gemm._workspace(prod.profile, 1), n, m, k, flags, 0, n)
    ws = gemm._workspace(prod.profile, prod.pool.count + 1)
    for _ in range(20):  # workers awake, asleep, racing for blocks
        prod.parallel(parallel, a, b, ws, prod.pool.state, n, m, k, flags, 0, n)
        np.testing.assert_array_equal(parallel, serial)


@needs_native
def test_concurrent_callers_share_the_pool(monkeypatch):
    """Python threads calling at once: one uses the workers, the others find them busy and run
    alone; every result is right."""
    monkeypatch.setattr(gemm, "PARALLEL_WORK", 1)
    rng = np.random.default_rng(2)
    pairs = [
        (rng.standard_normal((64, 200)).astype(np.float32), rng.standard_normal((200, 96)).astype(np.float32))
        for _ in range(4)
    ]
    errors = []

    def work(a, b):
        want = a.astype(np.float64) @ b.astype(np.float64)
        for _ in range(50):
            got = gemm.matmul(a, b)
            if not np.allclose(got, want, rtol=1e-5, atol=1e-4):
                errors.append(np.abs(got - want).max())

    threads = [threading.Thread(target=work, args=p) for p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a matmul call hung"
    assert errors == []


FORK_SCRIPT = """
import os, sys
import numpy as np
from funcgrad.jit import gemm
gemm.PARALLEL_WORK = 1
a, b = np.ones((64, 300), np.float32), np.ones((300, 128), np.float32)
gemm.matmul(a, b)  # the parent's workers are running
pid = os.fork()
if pid == 0:
    ok = gemm.matmul(a, b)[0, 0] == 300.0
    pool = gemm.product(np.dtype(np.float32)).pool
    os._exit(0 if ok and pool is not None and all(t.is_alive() for t in pool.threads) else 3)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@needs_native
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_workers():
    """A child forked after the parent started its workers has none of them: it makes new ones
    instead of waiting forever for threads that do not exist. (In a fresh interpreter: this
    test process runs JAX's threads, which should not be forked.)"""
    try:
        r = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child hung in matmul")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "child exit 0"


def test_falls_back_to_numpy_where_it_does_not_apply():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 300))
    y = rng.standard_normal((300, 100))
    # integers, mixed dtypes, non-contiguous operands, tiny products: np.dot's answer
    xi, yi = (x * 10).astype(np.int64), (y * 10).astype(np.int64)
    np.testing.assert_array_equal(gemm.matmul(xi, yi), xi @ yi)
    np.testing.assert_allclose(gemm.matmul(x.astype(np.float32), y), x.astype(np.float32) @ y, rtol=1e-6)
    np.testing.assert_allclose(gemm.matmul(x[:, ::2], y[::2]), x[:, ::2] @ y[::2], rtol=1e-12)
    np.testing.assert_allclose(gemm.matmul(x[:2, :3], y[:3, :2]), x[:2, :3] @ y[:3, :2], rtol=1e-12)
    np.testing.assert_allclose(gemm.matmul(y, x, True, True), (x @ y).T, rtol=0, atol=1e-12)  # y.T @ x.T


@needs_native
def test_kernel_rejects_arrays_of_other_sizes():
    prod = gemm.product(np.dtype(np.float64))
    a, b = np.ones((4, 5)), np.ones((5, 6))
    c = np.empty((4, 6))
    ws = gemm._workspace(prod.profile, 1)
    with pytest.raises(ValueError, match="sizes"):
        prod.serial(c, a, b, ws, 6, 4, 7, 1, 0, 6)  # K says 7
    with pytest.raises(ValueError, match="sizes"):
        prod.serial(c, a, b, ws[:10], 6, 4, 5, 1, 0, 6)  # workspace too small
    with pytest.raises(TypeError):
        prod.serial(c, a.astype(np.float32), b, ws, 6, 4, 5, 1, 0, 6)
    if prod.pool is not None:
        big = gemm._workspace(prod.profile, prod.pool.count + 1)
        with pytest.raises(ValueError, match="sizes"):
            prod.parallel(c, a, b, big, prod.pool.state, 6, 4, 7, 1, 0, 6)


@needs_native
def test_second_process_loads_the_product_from_the_cache(tmp_path):
    code = textwrap.dedent(
        """
        import logging, numpy as np
        from funcgrad.jit import gemm, native
        gemm.matmul(np.ones((64, 300), np.float32), np.ones((300, 128), np.float32))
        import sys
        print("compiler" if native.runtime()._compiler is not None else "no compiler")
        """
    )
    env = dict(os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        for _ in range(2)
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout.strip() == "compiler"
    assert runs[1].stdout.strip() == "no compiler"  # loaded from disk, LLVM never started
    assert any(p.name.startswith("funcgrad_native_gemm_float32") for p in tmp_path.iterdir())


# -- jitted code -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lhs_shape,rhs_shape,dims",
    [
        ((64, 200), (200, 48), (((1,), (0,)), ((), ()))),  # x @ w
        ((200, 64), (200, 48), (((0,), (0,)), ((), ()))),  # x.T @ g
        ((64, 200), (48, 200), (((1,), (1,)), ((), ()))),  # g @ w.T
        ((32, 2, 100), (100, 48), (((2,), (0,)), ((), ()))),  # a 3-D lhs: rows of a matrix
        ((32, 2, 100), (32, 2, 48), (((0, 1), (0, 1)), ((), ()))),  # leading axes contracted
        ((64, 5, 20), (48, 5, 20), (((1, 2), (1, 2)), ((), ()))),  # trailing axes of both
        ((100,), (100, 300), (((0,), (0,)), ((), ()))),  # a vector
        ((100, 100, 1), (100, 100), (((1,), (0,)), ((), ()))),  # a unit axis after the contracted one
        ((1, 64, 100), (48, 1, 100), (((2,), (2,)), ((), ()))),  # unit axes on both sides
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_products_equal_eager(lhs_shape, rhs_shape, dims, dtype):
    rng = np.random.default_rng(4)
    x = fnp.asarray(rng.standard_normal(lhs_shape).astype(dtype))
    y = fnp.asarray(rng.standard_normal(rhs_shape).astype(dtype))

    def f(x, y):
        return lax.dot_general(x, y, dims)

    got = np.asarray(fg.jit(f)(x, y))
    want = np.asarray(f(x, y))
    assert got.shape == want.shape and got.dtype == want.dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)


def test_jit_source_names_the_product():
    f = fg.jit(lambda x, w: fnp.tanh(x @ w))
    text = f.lower(fnp.ones((64, 200)), fnp.ones((200, 48))).as_text()
    assert "_matmul(" in text


@needs_native
@needs_workers
def test_worker_pool_state_is_sane():
    pool = workers.pool()
    assert pool.count >= 1 and pool.state[9] == pool.count
    assert pool.state.ctypes.data % 64 == 0
    assert all(t.is_alive() and t.daemon for t in pool.threads)


@needs_native
@pytest.mark.parametrize("transposed", [False, True])
def test_products_inside_compiled_loops_use_it(transposed):
    """A scan body's matrix products call the GEMM from the numba loop (both entry points:
    the small product runs serially, the large one is split among the workers)."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 256)).astype(np.float32) * 0.1
    v = rng.standard_normal((512, 256)).astype(np.float32) * 0.05
    h0 = rng.standard_normal((16, 64)).astype(np.float32)

    def f(h0, w, v, vt):
        def body(h, _):
            u = fnp.tanh(h @ w)  # 16 x 64 x 256: serial
            z = u @ v.T if transposed else u @ vt  # 16 x 256 x 512, B read transposed or not
            big = fnp.tanh(fnp.tile(z, (8, 1)) @ v)  # 128 x 512 x 256: split among the workers
            return fnp.tanh(z[:, :64] + big[:16, :64]), None

        return lax.scan(body, h0, None, length=6)[0]

    args = [fnp.asarray(a) for a in (h0, w, v, np.ascontiguousarray(v.T))]
    jitted = fg.jit(f)
    text = jitted.lower(*args).as_text()
    assert "gemm_float32(" in text
    np.testing.assert_allclose(np.asarray(jitted(*args)), np.asarray(f(*args)), rtol=2e-5, atol=2e-5)


@needs_native
@pytest.mark.parametrize("transposed", [False, True])
def test_loop_weights_are_packed_once_before_the_loop(transposed):
    """A product whose B operand is a constant of the loop (its weights) reads B packed once by
    the driver (``gemm_pack``; stored as is or transposed) instead of packing it every step."""
    rng = np.random.default_rng(8)
    w = fnp.asarray((rng.standard_normal((96, 96)) * 0.1).astype(np.float32))
    h0 = fnp.asarray(rng.standard_normal((16, 96)).astype(np.float32))
    dims = (((1,), (1 if transposed else 0,)), ((), ()))

    def f(h0, w):
        return lax.scan(lambda h, _: (fnp.tanh(lax.dot_general(h, w, dims)), None), h0, None, length=5)[0]

    text = fg.jit(f).lower(h0, w).as_text()
    assert re.search(rf"packb_float32\(.*, 96, 96, {int(transposed)}\)", text)
    np.testing.assert_allclose(np.asarray(fg.jit(f)(h0, w)), np.asarray(f(h0, w)), rtol=2e-5, atol=2e-5)


@needs_native
def test_module_without_workers_needs_no_os_threads(monkeypatch):
    """Where there are no worker threads (not Linux x86-64) the module holds no futex calls or
    x86 pause instructions, and its serial entry computes the product."""
    monkeypatch.setattr(workers, "AVAILABLE", False)
    prof = gemm.profile(np.dtype(np.float64))
    ir_text = gemm._module(
        prof, "fg_test_gemm", "fg_test_gemm_par", "fg_test_gemm_post", "fg_test_gemm_join", "fg_test_pack"
    )
    assert "syscall" not in ir_text and "pause" not in ir_text
    serial, _ = native.runtime().load_symbols(native.compile_ir(ir_text, False), ["fg_test_gemm", "fg_test_gemm_par"])
    fn = native.function(serial, gemm._signature(np.dtype(np.float64), False), "test gemm", kernels._cache_dirs())
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((20, 30)), rng.standard_normal((30, 40))
    c = np.empty((20, 40))
    fn(c, a, b, gemm._workspace(prof, 1), 40, 20, 30, 1, 0, 40)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


def test_functions_calling_blas_keep_products_on_the_calling_thread():
    """A jitted function with a convolution (BLAS with threads of its own) binds the serial
    product; one without binds the splitting one."""
    from funcgrad.jit.executor import compile_jaxpr

    def conv_then_dense(x, k, w):
        y = lax.conv_general_dilated(x, k, (1, 1), "SAME")
        return y.reshape(y.shape[0], -1) @ w

    args = (fnp.ones((4, 1, 8, 8)), fnp.ones((2, 1, 3, 3)), fnp.ones((128, 64)))
    fn, _ = compile_jaxpr(fg.make_jaxpr(conv_then_dense)(*args).jaxpr)
    assert fn.__globals__["_matmul"] is gemm.matmul_serial
    fn, _ = compile_jaxpr(fg.make_jaxpr(lambda x, w: fnp.tanh(x @ w))(fnp.ones((64, 128)), fnp.ones((128, 64))).jaxpr)
    assert fn.__globals__["_matmul"] is gemm.matmul
