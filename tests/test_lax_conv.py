"""lax.conv_general_dilated (and wrappers) and lax.reduce_window: values and derivatives.

Values and VJPs are compared with JAX where it is installed; derivatives are also checked
numerically in float64 (finite differences and the inner-product identity), to second order.
"""

import importlib

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.testing import check_grads


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


# (name, lhs shape, rhs shape, kwargs); shapes are in the layout of dimension_numbers.
CONV_CASES = [
    ("valid_2d", (2, 3, 6, 5), (4, 3, 3, 2), dict(window_strides=(1, 1), padding="VALID")),
    ("same_strided", (2, 3, 7, 6), (4, 3, 3, 3), dict(window_strides=(2, 3), padding="SAME")),
    ("same_lower", (1, 2, 6, 5), (3, 2, 2, 3), dict(window_strides=(2, 1), padding="SAME_LOWER")),
    ("explicit_neg_pad", (2, 2, 7, 6), (3, 2, 3, 2), dict(window_strides=(2, 1), padding=((2, -1), (0, 1)))),
    (
        "lhs_dilation",
        (1, 2, 4, 5),
        (3, 2, 3, 3),
        dict(window_strides=(1, 2), padding=((2, 2), (1, 0)), lhs_dilation=(2, 3)),
    ),
    ("rhs_dilation", (2, 2, 8, 7), (3, 2, 3, 2), dict(window_strides=(1, 2), padding="SAME", rhs_dilation=(2, 3))),
    (
        "all_dilations",
        (1, 2, 5, 5),
        (2, 2, 2, 3),
        dict(window_strides=(3, 2), padding=((1, 2), (2, 1)), lhs_dilation=(2, 1), rhs_dilation=(1, 2)),
    ),
    ("groups", (2, 4, 6, 5), (6, 2, 3, 2), dict(window_strides=(1, 2), padding="SAME", feature_group_count=2)),
    (
        "depthwise",
        (2, 3, 5, 5),
        (6, 1, 3, 3),
        dict(window_strides=(2, 2), padding=((1, 1), (1, 1)), feature_group_count=3),
    ),
    ("batch_groups", (4, 3, 5, 4), (6, 3, 2, 2), dict(window_strides=(1, 1), padding="VALID", batch_group_count=2)),
    ("conv_1d", (2, 3, 9), (4, 3, 3), dict(window_strides=(2,), padding="SAME")),
    (
        "conv_1d_dilated",
        (2, 2, 10),
        (4, 1, 4),
        dict(window_strides=(1,), padding=((3, 0),), rhs_dilation=(2,), feature_group_count=2),
    ),
    (
        "conv_3d",
        (1, 2, 5, 4, 6),
        (3, 2, 2, 3, 2),
        dict(window_strides=(2, 1, 2), padding="SAME", rhs_dilation=(1, 1, 2)),
    ),
    (
        "nhwc",
        (2, 6, 5, 3),
        (3, 2, 3, 4),
        dict(window_strides=(1, 2), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
    ),
    (
        "nhwc_groups",
        (2, 5, 5, 4),
        (2, 2, 2, 6),
        dict(
            window_strides=(2, 1),
            padding=((0, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=2,
        ),
    ),
    (
        "mixed_layout",
        (5, 2, 6, 3),
        (4, 3, 2, 3),
        dict(window_strides=(1, 1), padding="VALID", dimension_numbers=("HNWC", "OHWI", "NCWH")),
    ),
    ("empty_output", (1, 2, 3, 3), (2, 2, 4, 2), dict(window_strides=(1, 1), padding="VALID")),
]
CONV_IDS = [c[0] for c in CONV_CASES]


def _operands(lhs_shape, rhs_shape, dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal(lhs_shape).astype(dtype), r.standard_normal(rhs_shape).astype(dtype)


@pytest.mark.parametrize("name,lhs_shape,rhs_shape,kw", CONV_CASES, ids=CONV_IDS)
def test_conv_values_match_jax(jax, name, lhs_shape, rhs_shape, kw):
    x, w = _operands(lhs_shape, rhs_shape)
    out = lax.conv_general_dilated(x, w, **kw)
    expected = jax.lax.conv_general_dilated(x, w, **kw)
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-12, atol=1e-12)
    # abstract evaluation agrees with evaluation
    jaxpr = fg.make_jaxpr(lambda a, b: lax.conv_general_dilated(a, b, **kw))(x, w)
    assert jaxpr.out_avals[0].shape == out.shape


@pytest.mark.parametrize("name,lhs_shape,rhs_shape,kw", CONV_CASES, ids=CONV_IDS)
def test_conv_vjp_matches_jax(jax, name, lhs_shape, rhs_shape, kw):
    x, w = _operands(lhs_shape, rhs_shape)
    out, pullback = fg.vjp(lambda a, b: lax.conv_general_dilated(a, b, **kw), x, w)
    jout, jpullback = jax.vjp(lambda a, b: jax.lax.conv_general_dilated(a, b, **kw), x, w)
    ct = np.random.default_rng(1).standard_normal(jout.shape)
    for got, want in zip(pullback(ct), jpullback(ct)):
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", ["explicit_neg_pad", "all_dilations", "batch_groups", "nhwc_groups"])
def test_conv_second_order_matches_jax(jax, name):
    _, lhs_shape, rhs_shape, kw = CONV_CASES[CONV_IDS.index(name)]
    x, w = _operands(lhs_shape, rhs_shape)
    ct = np.random.default_rng(2).standard_normal(
        jax.eval_shape(lambda a, b: jax.lax.conv_general_dilated(a, b, **kw), x, w).shape
    )

    def make(conv, vjp, np_):
        def f(a, b):
            _, pullback = vjp(lambda a, b: conv(a, b, **kw), a, b)
            ga, gb = pullback(ct)
            return np_.sum(ga * ga * a) + np_.sum(gb * gb * gb)

        return f

    import jax.numpy as jnp

    got = fg.grad(make(lax.conv_general_dilated, fg.vjp, fnp), argnums=(0, 1))(x, w)
    want = jax.grad(make(jax.lax.conv_general_dilated, jax.vjp, jnp), argnums=(0, 1))(x, w)
    for g, h in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "name",
    [
        "same_strided",
        "explicit_neg_pad",
        "lhs_dilation",
        "all_dilations",
        "groups",
        "depthwise",
        "batch_groups",
        "conv_1d",
        "conv_3d",
        "nhwc",
        "mixed_layout",
    ],
)
def test_conv_check_grads(name):
    _, lhs_shape, rhs_shape, kw = CONV_CASES[CONV_IDS.index(name)]
    x, w = _operands(lhs_shape, rhs_shape, seed=3)
    check_grads(lambda a, b: lax.conv_general_dilated(a, b, **kw), (x, w), order=2)
    # a nonlinear function of the convolution, so second derivatives are not trivially zero
    check_grads(lambda a, b: fnp.tanh(lax.conv_general_dilated(a * a, b, **kw)), (x, w), order=2, modes=("rev",))


def test_conv_wrappers_match_jax(jax):
    x, w = _operands((2, 3, 7, 6), (4, 3, 3, 2))
    np.testing.assert_allclose(
        np.asarray(lax.conv(x, w, (2, 1), "SAME")),
        np.asarray(jax.lax.conv(x, w, (2, 1), "SAME")),
        rtol=1e-12,
        atol=1e-12,
    )
    args = ((1, 2), ((1, 0), (2, 1)), (2, 1), (1, 2))
    np.testing.assert_allclose(
        np.asarray(lax.conv_with_general_padding(x, w, *args)),
        np.asarray(jax.lax.conv_with_general_padding(x, w, *args)),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 2), (0, 1))])
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_conv_transpose_matches_jax(jax, padding, transpose_kernel):
    # NHWC input, HWIO kernel (HWOI, in effect, with transpose_kernel: the gradient-of-conv convention)
    x, w = _operands((2, 5, 4, 3), (3, 2, 4, 3) if transpose_kernel else (3, 2, 3, 4))
    got = lax.conv_transpose(x, w, (2, 3), padding, transpose_kernel=transpose_kernel)
    want = jax.lax.conv_transpose(x, w, (2, 3), padding, transpose_kernel=transpose_kernel)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_conv_accepts_jax_dimension_numbers(jax):
    x, w = _operands((2, 6, 5, 3), (3, 2, 3, 4))
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    ours = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    assert tuple(map(tuple, dn)) == tuple(ours)
    np.testing.assert_allclose(
        np.asarray(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)),
        np.asarray(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=ours)),
    )


def test_conv_dtypes():
    x, w = _operands((1, 2, 5, 5), (3, 2, 3, 3), dtype=np.float32)
    assert lax.conv(x, w, (1, 1), "SAME").dtype == np.float32
    out = lax.conv_general_dilated(
        x.astype(np.float16), w.astype(np.float16), (1, 1), "SAME", preferred_element_type=np.float32
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.asarray(out), np.asarray(lax.conv(x, w, (1, 1), "SAME")), rtol=2e-2, atol=2e-2)
    xi, wi = np.arange(50).reshape(1, 2, 5, 5), np.ones((1, 2, 2, 2), np.int64)
    out = lax.conv(xi, wi, (1, 1), "VALID")
    assert out.dtype == np.int64 and int(out[0, 0, 0, 0]) == 0 + 1 + 5 + 6 + 25 + 26 + 30 + 31
    # mixed dtypes promote
    assert lax.conv(x, w.astype(np.float64), (1, 1), "SAME").dtype == np.float64
    # the gradient of a float32 convolution is float32
    g = fg.grad(lambda a: fnp.sum(lax.conv(a, w, (2, 2), "SAME")))(x)
    assert g.dtype == np.float32 and g.shape == x.shape


def test_conv_known_values():
    x = fnp.arange(1.0, 6.0).reshape(1, 1, 5)
    w = fnp.array([[[1.0, 0.0, -1.0]]])
    # cross-correlation (no kernel flip), as JAX and PyTorch
    np.testing.assert_array_equal(np.asarray(lax.conv(x, w, (1,), "VALID")), [[[-2.0, -2.0, -2.0]]])
    np.testing.assert_array_equal(np.asarray(lax.conv(x, w, (2,), "SAME")), [[[-2.0, -2.0, 4.0]]])


def test_conv_under_jit_like_tracing():
    x, w = _operands((1, 2, 5, 5), (3, 2, 3, 3))
    jaxpr = fg.make_jaxpr(lambda a, b: lax.conv_general_dilated(a, b, (2, 1), "SAME", feature_group_count=1))(x, w)
    assert "conv_general_dilated" in str(jaxpr)


@pytest.mark.parametrize(
    "lhs_shape,rhs_shape,kw,match",
    [
        ((1, 3, 5, 5), (2, 4, 3, 3), {}, r"feature dimension \(3\).*\(4\).*lhs shape \(1, 3, 5, 5\)"),
        ((1, 4, 5, 5), (3, 2, 3, 3), dict(feature_group_count=2), r"rhs output feature dimension \(3\).*multiple"),
        ((3, 4, 5, 5), (4, 4, 3, 3), dict(batch_group_count=2), r"lhs batch dimension \(3\).*batch_group_count"),
        ((1, 3, 5, 5), (2, 3, 3), {}, r"same rank.*\(1, 3, 5, 5\).*\(2, 3, 3\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(padding="FULL"), r"conv_general_dilated.*padding.*'FULL'"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(padding=((1, 1),)), r"conv_general_dilated: padding.*2 \(low, high\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(window_strides=(1, 1, 1)), r"window_strides.*needs 2"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(window_strides=(0, 1)), r"window_strides must be positive"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(dimension_numbers=("NCH", "OIHW", "NCHW")), r"layout 'NCH'.*rank 4"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(dimension_numbers=("NCHW", "OIHW", "NCWW")), r"out layout 'NCWW'"),
        ((1, 4, 5, 5), (4, 2, 3, 3), dict(feature_group_count=2, batch_group_count=2), r"at most one"),
    ],
)
def test_conv_errors(lhs_shape, rhs_shape, kw, match):
    x, w = np.ones(lhs_shape), np.ones(rhs_shape)
    kw = dict(dict(window_strides=(1,) * (len(lhs_shape) - 2), padding="SAME"), **kw)
    with pytest.raises((ValueError, TypeError), match=match):
        lax.conv_general_dilated(x, w, **kw)


def test_conv_error_types():
    with pytest.raises(ValueError):
        lax.conv(np.ones((1, 3, 5, 5)), np.ones((2, 4, 3, 3)), (1, 1), "SAME")
    with pytest.raises(ValueError):
        lax.conv(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), (1, 1), "same-ish")
    with pytest.raises(fg.errors.FuncgradError):
        lax.conv(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3)), (1, 1), "SAME")


# -- evaluation strategies: im2col + BLAS, and the direct loop for grouped convolutions --------------

_conv_mod = importlib.import_module("funcgrad.lax.conv")

# (name, lhs shape, rhs shape, kwargs): grouped convolutions the rule sends to the direct loop,
# large enough for the threaded path (depthwise 32 channels) or small, strided, dilated, 1-d.
DIRECT_CASES = [
    (
        "depthwise_big",
        (4, 32, 20, 20),
        (32, 1, 3, 3),
        dict(window_strides=(1, 1), padding="SAME", feature_group_count=32),
    ),
    ("grouped_4", (2, 8, 9, 7), (8, 2, 3, 3), dict(window_strides=(1, 1), padding="SAME", feature_group_count=4)),
    (
        "depthwise_strided_dilated",
        (2, 6, 11, 10),
        (12, 1, 3, 2),
        dict(window_strides=(2, 3), padding=((1, 2), (0, 1)), rhs_dilation=(2, 1), feature_group_count=6),
    ),
    (
        "row_stride_only",
        (2, 4, 9, 8),
        (4, 1, 3, 3),
        dict(window_strides=(2, 1), padding="VALID", feature_group_count=4),
    ),
    (
        "lhs_dilated",
        (1, 4, 5, 6),
        (8, 2, 3, 3),
        dict(window_strides=(1, 1), padding=((2, 2), (2, 2)), lhs_dilation=(2, 2), feature_group_count=2),
    ),
    ("conv_1d", (3, 6, 17), (6, 2, 5), dict(window_strides=(1,), padding="SAME", feature_group_count=3)),
    (
        "conv_1d_strided_depthwise",
        (3, 6, 17),
        (12, 1, 5),
        dict(window_strides=(2,), padding="SAME", feature_group_count=6),
    ),
    (
        "nhwc_depthwise",
        (2, 7, 6, 5),
        (3, 3, 1, 10),
        dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=5),
    ),
]
DIRECT_IDS = [c[0] for c in DIRECT_CASES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,lhs_shape,rhs_shape,kw", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_loop_matches_im2col_and_jax(jax, monkeypatch, dtype, name, lhs_shape, rhs_shape, kw):
    x, w = _operands(lhs_shape, rhs_shape, dtype=dtype)
    chosen = []
    rule = _conv_mod._use_direct_loop
    monkeypatch.setattr(_conv_mod, "_use_direct_loop", lambda *a: chosen.append(rule(*a)) or chosen[-1])
    direct = np.asarray(lax.conv_general_dilated(x, w, **kw))
    assert chosen == [True], "the rule should pick the direct loop for this grouped convolution"
    monkeypatch.setattr(_conv_mod, "_use_direct_loop", lambda *a: False)
    im2col = np.asarray(lax.conv_general_dilated(x, w, **kw))
    want = np.asarray(jax.lax.conv_general_dilated(x, w, **kw))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert direct.dtype == im2col.dtype == dtype and direct.shape == want.shape
    np.testing.assert_allclose(direct, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(im2col, want, rtol=tol, atol=tol)


def test_direct_loop_gradients_match_jax(jax):
    """Depthwise convolution: the forward and the input gradient run the direct loop, the
    kernel gradient (a batch-grouped convolution with a large window) runs im2col."""
    name, lhs_shape, rhs_shape, kw = DIRECT_CASES[2]
    x, w = _operands(lhs_shape, rhs_shape, dtype=np.float32)
    ct = (
        np.random.default_rng(3)
        .standard_normal(jax.eval_shape(lambda a, b: jax.lax.conv_general_dilated(a, b, **kw), x, w).shape)
        .astype(np.float32)
    )
    _, pullback = fg.vjp(lambda a, b: lax.conv_general_dilated(a, b, **kw), x, w)
    _, jpullback = jax.vjp(lambda a, b: jax.lax.conv_general_dilated(a, b, **kw), x, w)
    for got, want in zip(pullback(ct), jpullback(ct)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    step = fg.jit(fg.grad(lambda b, a: fnp.sum(lax.conv_general_dilated(a, b, **kw) ** 2)))
    np.testing.assert_allclose(
        np.asarray(step(w, x)),
        np.asarray(jax.grad(lambda b, a: (jax.lax.conv_general_dilated(a, b, **kw) ** 2).sum())(w, x)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_conv_strategy_rule():
    """The documented rule: the direct loop only for 1-d/2-d float32/float64 convolutions with
    feature groups of at most 64 (features x window elements), a window no larger than the
    output, and a column stride of 1 unless depthwise; everything else is im2col + BLAS."""

    def picks_direct(lhs_shape, rhs_shape, g=1, b=1, dtype=np.float32, stride=1):
        x, w = np.zeros(lhs_shape, dtype), np.zeros(rhs_shape, dtype)
        nsp = x.ndim - 2
        strides = (stride,) * nsp
        win = _conv_mod.windows_np(x, tuple(range(2, 2 + nsp)), w.shape[2:], strides, (1,) * nsp)
        return _conv_mod._use_direct_loop(x, w, win.shape, strides, g, b)

    assert picks_direct((2, 16, 28, 28), (16, 1, 3, 3), g=16)  # depthwise
    assert picks_direct((2, 16, 28, 28), (16, 4, 3, 3), g=4)  # 4 features x 9 = 36
    assert picks_direct((2, 16, 28, 28), (16, 1, 3, 3), g=16, dtype=np.float64)
    assert picks_direct((2, 8, 30), (8, 1, 5), g=8)  # 1-d
    assert picks_direct((2, 16, 28, 28), (16, 1, 3, 3), g=16, stride=2)  # strided depthwise
    assert not picks_direct((2, 16, 28, 28), (16, 4, 3, 3), g=4, stride=2)  # strided, 4 features: a tie
    assert not picks_direct((2, 16, 28, 28), (16, 8, 3, 3), g=2)  # 72 > 64: BLAS is as fast
    assert not picks_direct((32, 8, 28, 28), (16, 8, 3, 3))  # ungrouped: one large matmul
    assert not picks_direct((2, 16, 28, 28), (16, 1, 3, 3), g=16, dtype=np.float16)
    assert not picks_direct((2, 16, 28, 28), (16, 1, 3, 3), g=16, dtype=np.int32)
    assert not picks_direct((2, 4, 6, 6, 6), (4, 1, 3, 3, 3), g=4)  # 3-d
    assert not picks_direct((2, 4, 5, 5), (4, 1, 5, 5), g=4)  # a window larger than the output
    assert not picks_direct((4, 4, 9, 9), (8, 4, 3, 3), b=2)  # batch groups


def test_direct_kernel_rejects_what_it_does_not_handle():
    from funcgrad.jit.conv_kernels import grouped_conv

    with pytest.raises(NotImplementedError, match="3-d"):
        grouped_conv(np.zeros((1, 2, 4, 4, 4)), np.zeros((2, 1, 2, 2, 2)), (3, 3, 3), (1,) * 3, (1,) * 3, 2)
    with pytest.raises(NotImplementedError, match="int32"):
        grouped_conv(np.zeros((1, 2, 4, 4), np.int32), np.zeros((2, 1, 2, 2), np.int32), (3, 3), (1, 1), (1, 1), 2)


@pytest.mark.parametrize("chunked", [False, True], ids=["whole_batch_im2col", "chunked_gemm"])
def test_im2col_layouts_agree(jax, monkeypatch, chunked):
    """The whole-batch im2col copies patches with the positions innermost when there are more
    positions than window elements, else the window innermost (a kernel gradient's large
    window); the chunked GEMM path takes these stride-1 convolutions by default. Both give
    JAX's values, in every output layout."""
    if not chunked:
        monkeypatch.setattr(_conv_mod, "_gemm_strategy", lambda *a: None)
    x, w = _operands((3, 4, 9, 8), (6, 4, 3, 3), dtype=np.float32)
    for dn in [None, ("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NHWC"), ("CNHW", "IOHW", "CNHW")]:
        xs = x if dn is None else np.transpose(x, ["NCHW".index(c) for c in dn[0]])
        ws = w if dn is None else np.transpose(w, ["OIHW".index(c) for c in dn[1]])
        got = lax.conv_general_dilated(xs, ws, (1, 1), "SAME", dimension_numbers=dn)
        want = jax.lax.conv_general_dilated(xs, ws, (1, 1), "SAME", dimension_numbers=dn)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    # A large window over few positions (the shape of a kernel gradient).
    a, b = _operands((8, 32, 12, 12), (16, 32, 10, 10), dtype=np.float32)
    got = lax.conv_general_dilated(a, b, (1, 1), ((1, 1), (1, 1)))
    want = jax.lax.conv_general_dilated(a, b, (1, 1), ((1, 1), (1, 1)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


# -- chunked GEMM paths for ungrouped stride-1 convolutions -----------------------------------------

# (name, lhs shape, rhs shape, kwargs, strategy the rule picks). Shapes in the layout of
# dimension_numbers.
GEMM_CASES = [
    ("im2col_same", (5, 3, 9, 8), (6, 3, 3, 3), dict(padding="SAME"), "im2col"),
    ("col2im_same", (5, 6, 9, 8), (3, 6, 3, 3), dict(padding="SAME"), "col2im"),
    ("im2col_valid_rect", (3, 2, 7, 10), (4, 2, 2, 4), dict(padding="VALID"), "im2col"),
    ("col2im_asym_pad", (3, 5, 7, 6), (2, 5, 3, 2), dict(padding=((2, 0), (1, 3))), "col2im"),
    ("im2col_neg_pad", (2, 3, 8, 9), (4, 3, 3, 3), dict(padding=((-1, 2), (1, -2))), "im2col"),
    ("col2im_neg_pad", (2, 5, 8, 9), (2, 5, 2, 3), dict(padding=((0, -2), (-1, 1))), "col2im"),
    ("im2col_dilated", (2, 3, 11, 10), (5, 3, 3, 2), dict(padding="SAME", rhs_dilation=(2, 3)), "im2col"),
    ("col2im_dilated", (2, 6, 11, 10), (3, 6, 2, 3), dict(padding=((1, 1), (2, 2)), rhs_dilation=(3, 2)), "col2im"),
    ("conv_1d_im2col", (3, 2, 17), (5, 2, 4), dict(padding="SAME"), "im2col"),
    ("conv_1d_col2im", (3, 5, 17), (2, 5, 3), dict(padding=((2, 1),), rhs_dilation=(2,)), "col2im"),
    (
        "nhwc_im2col",
        (3, 7, 6, 2),
        (3, 3, 2, 4),
        dict(padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
        "im2col",
    ),
    (
        "nhwc_col2im",
        (3, 7, 6, 5),
        (3, 2, 5, 2),
        dict(padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
        "col2im",
    ),
    # Kernel-gradient shapes: the window (an output cotangent) is larger than the output.
    ("window_kgrad", (6, 4, 9, 8), (5, 4, 9, 8), dict(padding=((1, 1), (1, 1))), "window"),
    ("window_valid", (2, 3, 7, 7), (4, 3, 5, 6), dict(padding="VALID"), "window"),
    ("window_asym_pad", (3, 5, 6, 8), (2, 5, 5, 7), dict(padding=((0, 2), (1, 0))), "window"),
    ("window_1d", (2, 4, 15), (3, 4, 12), dict(padding=((1, 2),)), "window"),
    (
        "window_transposed_layouts",
        (6, 2, 8, 8),
        (6, 3, 8, 8),
        dict(padding=((1, 1), (1, 1)), dimension_numbers=("CNHW", "IOHW", "CNHW")),
        "window",
    ),
]
GEMM_IDS = [c[0] for c in GEMM_CASES]


def _gemm_conv_checked(monkeypatch, x, w, kw, want_strategy):
    """The convolution, asserting the rule picked ``want_strategy``."""
    chosen = []
    rule = _conv_mod._gemm_strategy
    with monkeypatch.context() as m:
        m.setattr(_conv_mod, "_gemm_strategy", lambda *a: chosen.append(rule(*a)) or chosen[-1])
        got = np.asarray(lax.conv_general_dilated(x, w, window_strides=(1,) * (x.ndim - 2), **kw))
    assert chosen == [want_strategy]
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["one_chunk", "chunk_per_image"])
@pytest.mark.parametrize("name,lhs_shape,rhs_shape,kw,strategy", GEMM_CASES, ids=GEMM_IDS)
def test_gemm_paths_match_whole_batch_im2col_and_jax(
    jax, monkeypatch, dtype, chunk_bytes, name, lhs_shape, rhs_shape, kw, strategy
):
    from funcgrad.jit import conv_kernels

    if chunk_bytes is not None:  # every image (feature, for the window path) its own chunk
        monkeypatch.setattr(conv_kernels, "_CHUNK_BYTES", chunk_bytes)
    x, w = _operands(lhs_shape, rhs_shape, dtype=dtype, seed=5)
    got = _gemm_conv_checked(monkeypatch, x, w, kw, strategy)
    strides = (1,) * (x.ndim - 2)
    # The reference in float64: XLA's float32 CPU convolution mishandles a dimension padded
    # negatively on one side and positively on the other (col2im_neg_pad differs by ~3).
    want = np.asarray(jax.lax.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), strides, **kw))
    with monkeypatch.context() as m:
        m.setattr(_conv_mod, "_gemm_strategy", lambda *a: None)
        whole = np.asarray(lax.conv_general_dilated(x, w, strides, **kw))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    np.testing.assert_allclose(got, want.astype(dtype), rtol=tol, atol=tol)
    np.testing.assert_allclose(got, whole, rtol=tol, atol=tol)


@pytest.mark.parametrize("w_out,strategy", [(6, "im2col"), (2, "col2im")], ids=["im2col", "col2im"])
def test_gemm_paths_read_strided_operands(jax, monkeypatch, w_out, strategy):
    """Operands that are reversed or strided views (as rev and slicing give) are read in place."""
    chosen = []
    rule = _conv_mod._gemm_strategy
    monkeypatch.setattr(_conv_mod, "_gemm_strategy", lambda *a: chosen.append(rule(*a)) or chosen[-1])
    r = np.random.default_rng(8)
    x = r.standard_normal((3, 4, 9, 16))[:, ::-1, ::-1, ::-2]
    w = r.standard_normal((w_out, 4, 3, 3))[:, :, ::-1]
    params = dict(
        window_strides=(1, 1),
        padding=((1, 1), (1, 1)),
        lhs_dilation=(1, 1),
        rhs_dilation=(1, 1),
        dimension_numbers=_conv_mod.ConvDimensionNumbers((0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3)),
        feature_group_count=1,
        batch_group_count=1,
        preferred_element_type=None,
    )
    got = _conv_mod._conv_impl(x, w, **params)
    want = jax.lax.conv_general_dilated(np.ascontiguousarray(x), np.ascontiguousarray(w), (1, 1), ((1, 1), (1, 1)))
    assert chosen == [strategy]
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-12)


def test_gemm_paths_low_precision_and_preferred_type(jax):
    """float16 inputs run the chunked path in float32 and round once; a preferred float64
    result computes in float64."""
    x, w = _operands((2, 3, 8, 8), (4, 3, 3, 3), dtype=np.float32, seed=6)
    got = lax.conv_general_dilated(x.astype(np.float16), w.astype(np.float16), (1, 1), "SAME")
    want = jax.lax.conv_general_dilated(x.astype(np.float16), w.astype(np.float16), (1, 1), "SAME")
    assert got.dtype == np.float16
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=1e-2, atol=1e-2)
    got = lax.conv_general_dilated(x, w, (1, 1), "SAME", preferred_element_type=np.float64)
    want = jax.lax.conv_general_dilated(
        x.astype(np.float64), w.astype(np.float64), (1, 1), "SAME", preferred_element_type=np.float64
    )
    assert got.dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_cnn_step_gradients_use_the_gemm_paths_and_match_jax(jax, monkeypatch):
    """A conv-relu-conv loss under jit: the forward convolutions take im2col, the input
    gradient of the second (16 -> 8 features) col2im, the kernel gradients the window path."""
    chosen = []
    rule = _conv_mod._gemm_strategy
    monkeypatch.setattr(_conv_mod, "_gemm_strategy", lambda *a: chosen.append(rule(*a)) or chosen[-1])
    r = np.random.default_rng(7)
    x = r.standard_normal((4, 1, 10, 10)).astype(np.float32)
    w1 = (r.standard_normal((8, 1, 3, 3)) / 3).astype(np.float32)
    w2 = (r.standard_normal((16, 8, 3, 3)) / 8).astype(np.float32)

    def loss(lib_lax, lib_relu, w1, w2, x):
        h = lib_relu(lib_lax.conv_general_dilated(x, w1, (1, 1), "SAME"))
        return (lib_lax.conv_general_dilated(h, w2, (1, 1), "SAME") ** 2).sum()

    got = fg.jit(fg.grad(lambda a, b, c: loss(lax, lambda v: fnp.maximum(v, 0), a, b, c), argnums=(0, 1)))(w1, w2, x)
    want = jax.grad(lambda a, b, c: loss(jax.lax, jax.nn.relu, a, b, c), argnums=(0, 1))(w1, w2, x)
    for g, h in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-4, atol=1e-4)
    assert set(chosen) == {"im2col", "col2im", "window"}


def test_gemm_strategy_rule():
    """The documented rule: ungrouped 1-d/2-d float32/float64 convolutions with unit strides and
    no input dilation take a chunked GEMM path: "im2col" when the output has at least as many
    positions as the window and O >= C, "col2im" when O < C, "window" (no kernel dilation)
    when the window is the larger; padded rows at most twice the useful width. The rest keep
    the whole-batch im2col or the direct loop."""

    def strategy(lhs_shape, rhs_shape, pads=1, strides=1, lhs_dil=1, rhs_dil=1, g=1, b=1, dtype=np.float32):
        x, w = np.zeros(lhs_shape, dtype), np.zeros(rhs_shape, dtype)
        nsp = x.ndim - 2
        padding = ((pads, pads),) * nsp
        out_sp = [
            (x.shape[2 + j] * 1 + 2 * pads - ((w.shape[2 + j] - 1) * rhs_dil + 1)) // strides + 1 for j in range(nsp)
        ]
        args = (padding, (strides,) * nsp, (lhs_dil,) * nsp, (rhs_dil,) * nsp, g, b)
        return _conv_mod._gemm_strategy(x, w, out_sp, *args)

    assert strategy((32, 8, 28, 28), (16, 8, 3, 3)) == "im2col"  # the CNN's forward
    assert strategy((32, 16, 28, 28), (8, 16, 3, 3)) == "col2im"  # its input gradient
    assert strategy((8, 32, 28, 28), (16, 32, 28, 28)) == "window"  # its kernel gradient
    assert strategy((32, 8, 28, 28), (16, 8, 3, 3), dtype=np.float64) == "im2col"
    assert strategy((4, 3, 30), (5, 3, 3)) == "im2col"  # 1-d
    assert strategy((4, 3, 20, 20), (5, 3, 3, 3), rhs_dil=2) == "im2col"
    assert strategy((4, 3, 20, 20), (5, 3, 16, 16), rhs_dil=2, pads=6) is None  # dilated large window
    assert strategy((4, 3, 20, 20), (5, 3, 3, 3), strides=2) is None  # strided
    assert strategy((4, 3, 20, 20), (5, 3, 3, 3), lhs_dil=2) is None  # transposed convolution
    assert strategy((4, 4, 20, 20), (8, 2, 3, 3), g=2) is None  # grouped
    assert strategy((4, 4, 20, 20), (8, 4, 3, 3), b=2) is None  # batch groups
    assert strategy((4, 3, 20, 20), (5, 3, 3, 3), dtype=np.float16) is None  # the impl computes it in float32
    assert strategy((4, 3, 20, 20), (5, 3, 3, 3), dtype=np.int32) is None
    assert strategy((2, 3, 4, 4, 4), (5, 3, 3, 3, 3)) is None  # 3-d
    assert strategy((4, 3, 20, 3), (5, 3, 3, 3), pads=0) is None  # rows 3 wide for 1 output column
    assert strategy((4, 3, 20, 3), (5, 3, 3, 3), pads=3) == "im2col"  # rows 9 wide for 7 output columns
    assert strategy((2, 3, 6, 30), (4, 3, 6, 5), pads=0) is None  # rows 30 wide for a window 5 wide
    assert strategy((2, 3, 6, 9), (4, 3, 6, 5), pads=0) == "window"  # rows 9 wide for a window 5 wide


def test_gemm_kernels_reject_what_they_do_not_handle():
    from funcgrad.jit.conv_kernels import gemm_conv, gemm_conv_window

    f32 = np.float32
    x, w, out = np.zeros((1, 2, 5, 5), f32), np.zeros((3, 2, 3, 3), f32), np.zeros((1, 3, 5, 5), f32)
    pads = ((1, 1), (1, 1))
    with pytest.raises(NotImplementedError, match="2-d"):
        gemm_conv(np.zeros((1, 2, 5, 5, 5), f32), w, pads, (1, 1), out)
    with pytest.raises(NotImplementedError, match="int32"):
        gemm_conv(x.astype(np.int32), w.astype(np.int32), pads, (1, 1), out.astype(np.int32))
    with pytest.raises(ValueError, match="method"):
        gemm_conv(x, w, pads, (1, 1), out, method="fft")
    with pytest.raises(ValueError, match="non-negative"):
        gemm_conv(x, w, ((2, 0), (1, -1)), (1, 1), out)
    with pytest.raises(ValueError, match="does not match"):
        gemm_conv(x, w, pads, (1, 1), np.zeros((1, 3, 4, 5), f32))
    with pytest.raises(ValueError, match="does not match"):
        gemm_conv_window(x, np.zeros((3, 2, 4, 4), f32), pads, np.zeros((1, 3, 2, 2), f32))
    with pytest.raises(NotImplementedError, match="float16"):
        gemm_conv_window(x.astype(np.float16), w.astype(np.float16), pads, out.astype(np.float16))


# -- reduce_window ----------------------------------------------------------------------------------

WINDOW_CASES = [
    ("valid", (2, 6, 5), dict(window_dimensions=(1, 2, 2), window_strides=(1, 2, 2), padding="VALID")),
    ("same_overlap", (2, 6, 5), dict(window_dimensions=(1, 3, 3), window_strides=(1, 1, 2), padding="SAME")),
    ("explicit", (3, 7), dict(window_dimensions=(2, 3), window_strides=(1, 2), padding=((1, 0), (2, 1)))),
    ("neg_pad", (4, 7), dict(window_dimensions=(2, 2), window_strides=(2, 1), padding=((0, -1), (-1, 1)))),
    (
        "base_dilation",
        (3, 5),
        dict(window_dimensions=(2, 3), window_strides=(1, 2), padding=((0, 1), (1, 1)), base_dilation=(2, 1)),
    ),
    (
        "window_dilation",
        (5, 7),
        dict(window_dimensions=(2, 3), window_strides=(1, 1), padding="SAME", window_dilation=(2, 2)),
    ),
    (
        "pool_nchw",
        (2, 3, 6, 6),
        dict(window_dimensions=(1, 1, 3, 3), window_strides=(1, 1, 2, 2), padding=((0, 0), (0, 0), (1, 1), (1, 1))),
    ),
    ("1d", (9,), dict(window_dimensions=(3,), window_strides=(2,), padding="SAME_LOWER")),
]
WINDOW_IDS = [c[0] for c in WINDOW_CASES]
MONOIDS = [("sum", 0.0), ("max", -np.inf), ("min", np.inf)]


def _lax_fn(module, kind):
    return {"sum": module.add, "max": module.max, "min": module.min}[kind]


@pytest.mark.parametrize("kind,init", MONOIDS, ids=[m[0] for m in MONOIDS])
@pytest.mark.parametrize("name,shape,kw", WINDOW_CASES, ids=WINDOW_IDS)
def test_reduce_window_matches_jax(jax, kind, init, name, shape, kw):
    x = np.random.default_rng(0).standard_normal(shape)
    got = lax.reduce_window(x, init, _lax_fn(lax, kind), **kw)
    want = jax.lax.reduce_window(x, init, _lax_fn(jax.lax, kind), **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
    negative_pad = not isinstance(kw["padding"], str) and min(min(p) for p in kw["padding"]) < 0
    if kind != "sum" and ("window_dilation" in kw or "base_dilation" in kw or negative_pad):
        return  # JAX has no VJP for max/min pooling with dilation or cropping; check_grads covers it
    _, pullback = fg.vjp(lambda a: lax.reduce_window(a, init, _lax_fn(lax, kind), **kw), x)
    _, jpullback = jax.vjp(lambda a: jax.lax.reduce_window(a, init, _lax_fn(jax.lax, kind), **kw), x)
    ct = np.random.default_rng(1).standard_normal(want.shape)
    np.testing.assert_allclose(np.asarray(pullback(ct)[0]), np.asarray(jpullback(ct)[0]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("kind", ["sum", "max", "min"])
@pytest.mark.parametrize("name,shape,kw", WINDOW_CASES, ids=WINDOW_IDS)
def test_reduce_window_check_grads(kind, name, shape, kw):
    # Distinct, well-separated values: finite differences must not cross a tie.
    n = int(np.prod(shape))
    x = (np.random.default_rng(4).permutation(n).reshape(shape) + 1.0) / n  # gaps of 1/n >> eps
    fn = {"sum": lax.reduce_window_sum, "max": lax.reduce_window_max, "min": lax.reduce_window_min}[kind]
    check_grads(lambda a: fn(a, **kw), (x,), order=2)
    # a quadratic function of it: non-zero second derivatives, and central differences stay exact
    check_grads(lambda a: fn(a, **kw) ** 2, (x,), order=2)


@pytest.mark.parametrize("comp,init", [("sum", 1.5), ("max", 0.3), ("min", -0.25)])
def test_reduce_window_non_identity_init_matches_jax(jax, comp, init):
    x = np.random.default_rng(0).standard_normal((5, 6))
    kw = dict(window_dimensions=(2, 3), window_strides=(2, 1), padding=((1, 0), (1, 2)))
    got = lax.reduce_window(x, init, _lax_fn(lax, comp), **kw)
    want = jax.lax.reduce_window(x, init, _lax_fn(jax.lax, comp), **kw)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
    check_grads(lambda a: lax.reduce_window(a, init, _lax_fn(lax, comp), **kw), (x,), order=2)


def test_reduce_window_max_ties_route_to_first_max():
    # All-equal windows: like PyTorch's max_pool, the first element of each window wins.
    x = fnp.ones((1, 4), dtype="float64")
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (1, 2), (1, 1), "VALID")))(x)
    np.testing.assert_array_equal(np.asarray(g), [[1.0, 1.0, 1.0, 0.0]])
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_min(a, (1, 2), (1, 2), "VALID")))(x)
    np.testing.assert_array_equal(np.asarray(g), [[1.0, 0.0, 1.0, 0.0]])
    # row-major window order in 2-D
    x = fnp.zeros((2, 2), dtype="float64")
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (2, 2), (1, 1), "VALID")))(x)
    np.testing.assert_array_equal(np.asarray(g), [[1.0, 0.0], [0.0, 0.0]])


def test_reduce_window_max_padding_gets_no_gradient():
    # Every value ties with the padding: the first window's winner is its padding slot.
    x = fnp.full((3,), -np.inf, dtype="float64")
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (2,), (1,), ((1, 1),))))(x)
    np.testing.assert_array_equal(np.asarray(g), [1.0, 1.0, 1.0])
    x = fnp.array([1.0, 2.0, 3.0], dtype="float64")
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (3,), (1,), ((2, 2),))))(x)
    np.testing.assert_array_equal(np.asarray(g), [1.0, 1.0, 3.0])
    g = fg.grad(lambda a: fnp.sum(lax.reduce_window_max(a, (2,), (1,), ((1, 0),))))(fnp.full((2,), -np.inf))
    np.testing.assert_array_equal(np.asarray(g), [1.0, 0.0])


def test_reduce_window_jvp_and_second_order_max():
    x = np.random.default_rng(5).permutation(12).reshape(3, 4).astype(np.float64)
    t = np.random.default_rng(6).standard_normal((3, 4))
    f = lambda a: lax.reduce_window_max(a, (2, 2), (1, 1), "SAME")  # noqa: E731
    out, tout = fg.jvp(f, (x,), (t,))
    _, pullback = fg.vjp(f, x)
    ct = np.random.default_rng(7).standard_normal(out.shape)
    np.testing.assert_allclose(np.sum(np.asarray(tout) * ct), np.sum(np.asarray(pullback(ct)[0]) * t), rtol=1e-12)
    # the Hessian of a piecewise-linear function is zero
    h = fg.hessian(lambda a: fnp.sum(f(a) * ct))(x)
    np.testing.assert_array_equal(np.asarray(h), np.zeros((3, 4, 3, 4)))
    # and the Hessian of a smooth function of it is the smooth part, routed through the argmax
    check_grads(lambda a: fnp.sum(f(a) ** 3), (x,), order=2)


def test_reduce_window_sum_is_avg_pool_numerator():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    kw = dict(window_dimensions=(1, 1, 2, 2), window_strides=(1, 1, 2, 2), padding="VALID")
    got = lax.reduce_window(x, 0.0, lax.add, **kw) / 4
    np.testing.assert_array_equal(np.asarray(got), [[[[2.5, 4.5], [10.5, 12.5]]]])
    assert lax.reduce_window(np.arange(6, dtype=np.int64), 0, lax.add, (2,), (2,), "VALID").dtype == np.int64
    np.testing.assert_array_equal(np.asarray(lax.reduce_window_max(np.arange(6, dtype=np.int32), (3,), (3,))), [2, 5])
    # fnp and numpy reducers are recognised too
    np.testing.assert_array_equal(
        np.asarray(lax.reduce_window(x, -np.inf, fnp.maximum, **kw)), [[[[5.0, 7.0], [13.0, 15.0]]]]
    )


def test_reduce_window_errors():
    x = np.ones((4, 4))
    with pytest.raises(NotImplementedError, match="lax.reduce_window.*lax.add, lax.max and lax.min"):
        lax.reduce_window(x, 1.0, lambda a, b: a * b, (2, 2), (1, 1), "VALID")
    with pytest.raises(ValueError, match=r"lax.reduce_window: window_dimensions \(2,\) needs 2 entries.*\(4, 4\)"):
        lax.reduce_window(x, 0.0, lax.add, (2,), (1, 1), "VALID")
    with pytest.raises(ValueError, match=r"lax.reduce_window: .*padding.*'HALF'.*\(4, 4\)"):
        lax.reduce_window(x, 0.0, lax.add, (2, 2), (1, 1), "HALF")
    with pytest.raises(ValueError, match=r"window_strides must be positive"):
        lax.reduce_window_max(x, (2, 2), (0, 1))
    with pytest.raises(ValueError, match=r"init_value must be a scalar"):
        lax.reduce_window(x, np.zeros(2), lax.add, (2, 2), (1, 1), "VALID")
