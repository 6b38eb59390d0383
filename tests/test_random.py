"""Tests for ``funcgrad.random``: Threefry-2x32 keys, bit-exactness against JAX, the
statistics of every sampler, argument errors and the traced (funcgrad-operations) path."""

import math

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import random
from funcgrad.core.array import Array

U32 = np.uint32


def A(x):
    return np.asarray(x)


# -------------------------------------------------------------------------------------------------
# Threefry hash and keys (hard-coded reference values; no JAX needed)
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,count,expected",
    [
        # Known-answer tests of Threefry-2x32 (20 rounds) from Random123 (also in JAX's tests).
        ([0, 0], [0, 0], (0x6B200159, 0x99BA4EFE)),
        ([0xFFFFFFFF, 0xFFFFFFFF], [0xFFFFFFFF, 0xFFFFFFFF], (0x1CB996FC, 0xBB002BE7)),
        ([0x13198A2E, 0x03707344], [0x243F6A88, 0x85A308D3], (0xC4923A9C, 0x483DF7A0)),
    ],
)
def test_threefry_known_answers(key, count, expected):
    out = random.threefry_2x32(np.array(key, U32), np.array(count, U32))
    assert A(out).tolist() == list(expected)
    # the primitive itself (two words in, two words out), bound eagerly
    words = (key[0], key[1], count[0], count[1])
    y1, y2 = random.threefry2x32_p.bind(*(fg.numpy.asarray(np.array(v, U32)) for v in words))
    assert (int(A(y1)), int(A(y2))) == expected


def test_threefry_primitive_abstract_eval():
    from funcgrad.core.abstract import ShapedArray

    a = ShapedArray((3,), U32)
    s = ShapedArray((), U32)
    out = random.threefry2x32_p.abstract_eval(s, s, a, a)
    assert [o.shape for o in out] == [(3,), (3,)] and all(o.dtype == U32 for o in out)
    with pytest.raises(TypeError):
        random.threefry2x32_p.abstract_eval(s, s, a, ShapedArray((3,), np.int32))


@pytest.mark.parametrize(
    "seed,expected",
    [
        (0, [0, 0]),
        (42, [0, 42]),
        (2**31 - 1, [0, 2**31 - 1]),
        (2**32, [1, 0]),
        (2**32 + 7, [1, 7]),
        (2**40 + 5, [256, 5]),
        (2**63 - 1, [2**31 - 1, 2**32 - 1]),
        (-1, [2**32 - 1, 2**32 - 1]),
        (-(2**63), [2**31, 0]),
        (2**64 - 1, [2**32 - 1, 2**32 - 1]),
        (True, [0, 1]),
        (np.int32(-1), [0, 2**32 - 1]),
        (np.int8(-3), [0, 2**32 - 3]),
        (np.uint64(2**64 - 1), [2**32 - 1, 2**32 - 1]),
        (np.int64(-2), [2**32 - 1, 2**32 - 2]),
    ],
)
def test_prngkey_seed_words(seed, expected):
    for make in (random.PRNGKey, random.key):
        k = make(seed)
        assert type(k) is Array and k.dtype == U32 and k.shape == (2,)
        assert A(k).tolist() == expected


def test_reference_values_seed_42():
    """Values produced by jax.random (jax_enable_x64=True) for PRNGKey(42), hard-coded."""
    k = random.PRNGKey(42)
    assert A(random.split(k, 3)).tolist() == [[1832780943, 270669613], [64467757, 2916123636], [2465931498, 255383827]]
    assert A(random.split(random.key(0))).tolist() == [[1797259609, 2579123966], [928981903, 3453687069]]
    assert A(random.fold_in(k, 2**32 - 1)).tolist() == [2398536845, 3890976714]
    assert A(random.fold_in(random.key(0), 1)).tolist() == [928981903, 3453687069]
    assert A(random.bits(k, (5,))).tolist() == [2098992034, 2919706841, 2646866425, 2409546199, 1935504149]
    assert A(random.bits(k, (3,), np.uint64)).tolist() == [
        7871734211187709741,
        276886910877598708,
        10591095138341673235,
    ]
    assert A(random.uniform(k, (3,))).view(U32).tolist() == [1056585764, 1059981104, 1058915320]
    assert A(random.normal(k, (3,))).view(U32).tolist() == [3169312533, 1055861736, 1050109537]
    assert A(random.randint(k, (6,), 0, 100)).tolist() == [85, 18, 3, 71, 5, 46]
    assert A(random.permutation(k, 8)).tolist() == [7, 4, 2, 5, 3, 6, 0, 1]


def test_split_shapes_and_independence():
    k = random.key(1)
    assert random.split(k).shape == (2, 2)
    assert random.split(k, 5).shape == (5, 2)
    assert random.split(k, (2, 3)).shape == (2, 3, 2)
    assert random.split(k, 0).shape == (0, 2)
    keys = A(random.split(k, 1000))
    assert len({tuple(r) for r in keys.tolist()}) == 1000
    # a split key is itself a valid key; the pieces are reproducible
    assert np.array_equal(A(random.split(random.split(k)[1])), A(random.split(random.split(k)[1])))


def test_fold_in_data_forms():
    k = random.key(7)
    base = A(random.fold_in(k, 5))
    for d in (np.int64(5), np.uint32(5), fg.numpy.asarray(5), np.array(5, np.int8)):
        assert np.array_equal(A(random.fold_in(k, d)), base)
    # wraps modulo 2**32 (as for NumPy integers in JAX)
    assert np.array_equal(A(random.fold_in(k, -1)), A(random.fold_in(k, 2**32 - 1)))
    assert np.array_equal(A(random.fold_in(k, 2**32 + 5)), base)
    assert not np.array_equal(A(random.fold_in(k, 6)), base)


def test_same_key_same_numbers_and_no_state():
    k = random.key(3)
    a = A(random.normal(k, (10,)))
    random.uniform(random.key(99), (100,))
    assert np.array_equal(a, A(random.normal(k, (10,))))
    assert not np.array_equal(a, A(random.normal(random.key(4), (10,))))


def test_bits_dtypes_and_prefix_consistency():
    k = random.key(5)
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        b = random.bits(k, (4, 3), dt)
        assert b.dtype == dt and b.shape == (4, 3)
    assert random.bits(k).shape == () and random.bits(k).dtype == U32
    # counter-based: element i does not depend on the total size (odd and even counts)
    assert np.array_equal(A(random.bits(k, (7,)))[:5], A(random.bits(k, (5,))))
    assert np.array_equal(A(random.bits(k, (6,))), A(random.bits(k, (2, 3))).ravel())


def test_results_are_immutable_arrays_and_inputs_not_frozen():
    x = np.arange(10)
    out = random.permutation(random.key(0), x)
    assert type(out) is Array and x.flags.writeable
    x[0] = 5  # the caller's buffer was neither aliased nor frozen
    one = np.arange(1)
    random.permutation(random.key(0), one)
    assert one.flags.writeable


# -------------------------------------------------------------------------------------------------
# dtypes and shapes
# -------------------------------------------------------------------------------------------------


def test_default_dtypes_and_config():
    k = random.key(0)
    assert random.uniform(k, (2,)).dtype == np.float32
    assert random.normal(k, (2,)).dtype == np.float32
    assert random.randint(k, (2,), 0, 3).dtype == np.int64
    assert random.bernoulli(k, 0.5, (2,)).dtype == np.bool_
    assert random.categorical(k, np.zeros(3, np.float32)).dtype == np.int64
    assert random.permutation(k, 4).dtype == np.int64
    fg.config.update("default_float_dtype", "float64")
    try:
        assert random.uniform(k, (2,)).dtype == np.float64
        assert random.normal(k, (2,)).dtype == np.float64
        assert random.truncated_normal(k, -1.0, 1.0, (2,)).dtype == np.float64
    finally:
        fg.config.update("default_float_dtype", "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_uniform_dtypes_in_range(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    x = random.uniform(random.key(1), (1000,), dtype, minval=-2.0, maxval=3.0)
    assert str(x.dtype) == dtype
    v = A(x).astype(np.float64)
    assert v.min() >= -2.0 and v.max() < 3.0


def test_uniform_exact_python_bounds_float64():
    # Python bounds convert straight to float64 (0.1 is not rounded through float32)
    x = A(random.uniform(random.key(0), (100,), "float64", minval=0.1, maxval=0.1))
    assert np.all(x == 0.1)


def test_normal_complex():
    z = A(random.normal(random.key(2), (20000,), np.complex64))
    assert z.dtype == np.complex64
    assert abs(z.real.var() - 0.5) < 0.03 and abs(z.imag.var() - 0.5) < 0.03


def test_param_broadcasting():
    k = random.key(0)
    lo = np.array([0.0, 10.0, 20.0], np.float32)
    x = A(random.uniform(k, (4, 3), minval=lo, maxval=lo + 1))
    assert x.shape == (4, 3) and np.all((x >= lo) & (x < lo + 1))
    r = A(random.randint(k, (5, 3), np.array([0, 10, 100]), np.array([1, 12, 200])))
    assert np.all(r[:, 0] == 0) and np.all((r[:, 1] >= 10) & (r[:, 1] < 12))
    assert A(random.bernoulli(k, np.array([0.0, 1.0], np.float32))).tolist() == [False, True]
    assert random.bernoulli(k, np.full((2, 3), 0.5, np.float32)).shape == (2, 3)
    t = A(random.truncated_normal(k, np.array([-1.0, 0.0], np.float32), 1.0))
    assert t.shape == (2,)


# -------------------------------------------------------------------------------------------------
# statistics (fixed keys: deterministic)
# -------------------------------------------------------------------------------------------------


def _ks_statistic(samples, cdf):
    s = np.sort(np.asarray(samples, np.float64))
    n = s.size
    f = cdf(s)
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


def _normal_cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def test_uniform_statistics():
    n = 100_000
    x = A(random.uniform(random.key(11), (n,))).astype(np.float64)
    assert abs(x.mean() - 0.5) < 0.005 and abs(x.var() - 1 / 12) < 0.002
    assert _ks_statistic(x, lambda s: s) < 1.63 / math.sqrt(n)
    y = A(random.uniform(random.key(12), (n,), minval=-3.0, maxval=5.0)).astype(np.float64)
    assert abs(y.mean() - 1.0) < 0.05 and abs(y.var() - 64 / 12) < 0.1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_statistics(dtype):
    n = 50_000
    x = A(random.normal(random.key(13), (n,), dtype)).astype(np.float64)
    assert abs(x.mean()) < 0.02 and abs(x.var() - 1.0) < 0.03
    assert _ks_statistic(x, _normal_cdf) < 1.63 / math.sqrt(n)
    assert np.all(np.isfinite(x))


def test_randint_range_and_uniformity():
    n = 60_000
    x = A(random.randint(random.key(14), (n,), 3, 13))
    assert x.min() == 3 and x.max() == 12
    counts = np.bincount(x - 3, minlength=10)
    expected = n / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square 9 dof, p = 0.001
    # full dtype range and maxval beyond the dtype (all of uint8)
    u8 = A(random.randint(random.key(15), (20_000,), 0, 256, np.uint8))
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    # maxval <= minval gives minval
    assert np.all(A(random.randint(random.key(16), (10,), 5, 5)) == 5)
    i8 = A(random.randint(random.key(17), (1000,), -128, 128, np.int8))
    assert i8.min() == -128 and i8.max() == 127


def test_bernoulli_rate():
    n = 100_000
    for p in (0.1, 0.5, 0.9):
        rate = A(random.bernoulli(random.key(18), p, (n,))).mean()
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert not A(random.bernoulli(random.key(18), 0.0, (1000,))).any()
    assert A(random.bernoulli(random.key(18), 1.0, (1000,))).all()


def test_categorical_frequencies_match_softmax():
    logits = np.array([1.0, -0.5, 0.0, 2.0], np.float32)
    probs = np.exp(logits) / np.exp(logits).sum()
    n = 60_000
    s = A(random.categorical(random.key(19), logits, shape=(n,)))
    assert s.dtype == np.int64 and s.shape == (n,)
    freq = np.bincount(s, minlength=4) / n
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / n))
    # batches along axis 0, classes along axis 1 / axis 0
    batch = np.log(np.array([[0.9, 0.1], [0.1, 0.9]], np.float32))
    s2 = A(random.categorical(random.key(20), batch, axis=-1, shape=(5000, 2)))
    assert abs(s2[:, 0].mean() - 0.1) < 0.02 and abs(s2[:, 1].mean() - 0.9) < 0.02
    s3 = A(random.categorical(random.key(20), batch.T, axis=0, shape=(5000, 2)))
    assert abs(s3[:, 0].mean() - 0.1) < 0.02 and abs(s3[:, 1].mean() - 0.9) < 0.02
    # without replacement: distinct classes
    s4 = A(random.categorical(random.key(21), np.zeros(6, np.float32), shape=(6,), replace=False))
    assert sorted(s4.tolist()) == list(range(6))


def test_permutation_is_a_permutation():
    for n in (0, 1, 2, 7, 1000):
        p = A(random.permutation(random.key(22), n))
        assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(n))
    x = np.arange(20).reshape(4, 5)
    rows = A(random.permutation(random.key(23), x))
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, x.tolist()))
    cols = A(random.permutation(random.key(23), x, axis=1))
    assert sorted(map(tuple, cols.T.tolist())) == sorted(map(tuple, x.T.tolist()))
    ind = A(random.permutation(random.key(23), x, axis=1, independent=True))
    assert all(sorted(r) == sorted(o) for r, o in zip(ind.tolist(), x.tolist()))
    # all orders of 3 elements appear with roughly equal frequency
    keys = random.split(random.key(24), 600)
    seen = {}
    for i in range(600):
        t = tuple(A(random.permutation(keys[i], 3)).tolist())
        seen[t] = seen.get(t, 0) + 1
    assert len(seen) == 6 and min(seen.values()) > 60


def test_choice():
    k = random.key(25)
    s = A(random.choice(k, 10, (10,), replace=False))
    assert sorted(s.tolist()) == list(range(10))
    s = A(random.choice(k, 50, (2, 10), replace=False))
    assert s.shape == (2, 10) and len(set(s.ravel().tolist())) == 20
    a = np.arange(12.0).reshape(3, 4)
    c = A(random.choice(k, a, (2,), replace=False, axis=1))
    assert c.shape == (3, 2) and len({tuple(col) for col in c.T.tolist()}) == 2
    assert random.choice(k, 5).shape == ()
    assert random.choice(k, a, (0,)).shape == (0, 4)
    p = np.array([0.1, 0.2, 0.7], np.float32)
    n = 30_000
    w = A(random.choice(random.key(26), 3, (n,), p=p))
    freq = np.bincount(w, minlength=3) / n
    assert np.all(np.abs(freq - p) < 0.015)
    w = A(random.choice(random.key(27), 3, (3,), replace=False, p=p))
    assert sorted(w.tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="larger sample"):
        random.choice(k, 3, (4,), replace=False)


def test_truncated_normal_bounds_and_moments():
    n = 50_000
    lo, hi = -0.5, 1.5
    x = A(random.truncated_normal(random.key(28), lo, hi, (n,))).astype(np.float64)
    assert x.min() > lo and x.max() < hi
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = 0.5 * (math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)))
    mean = (phi(lo) - phi(hi)) / z
    assert abs(x.mean() - mean) < 0.01
    # tight bounds stay inside the open interval
    y = A(random.truncated_normal(random.key(29), 2.0, 2.001, (1000,)))
    assert np.all((y > 2.0) & (y < 2.001))


def test_gamma_and_beta_moments():
    n = 20_000
    for a in (0.3, 1.0, 4.0):
        g = A(random.gamma(random.key(30), a, (n,))).astype(np.float64)
        assert np.all(g >= 0)
        assert abs(g.mean() - a) < 5 * math.sqrt(a / n) and abs(g.var() - a) < 0.1 * a
    for a, b in ((0.4, 0.4), (2.0, 5.0)):
        x = A(random.beta(random.key(31), a, b, (n,))).astype(np.float64)
        assert np.all((x >= 0) & (x <= 1))
        m = a / (a + b)
        v = a * b / ((a + b) ** 2 * (a + b + 1))
        assert abs(x.mean() - m) < 0.01 and abs(x.var() - v) < 0.01
    lam = random.beta(random.key(32), 0.2, 0.2)  # mixup coefficient
    assert lam.shape == () and 0.0 <= float(lam) <= 1.0
    lg = A(random.loggamma(random.key(33), 0.01, (1000,)))
    assert np.all(np.isfinite(lg)) and lg.mean() < -10  # tiny shape: log samples far below 0


def test_exponential_and_gumbel_moments():
    n = 50_000
    e = A(random.exponential(random.key(34), (n,))).astype(np.float64)
    assert e.min() >= 0 and abs(e.mean() - 1) < 0.02
    g = A(random.gumbel(random.key(35), (n,))).astype(np.float64)
    assert abs(g.mean() - 0.5772156649) < 0.03


# -------------------------------------------------------------------------------------------------
# errors
# -------------------------------------------------------------------------------------------------


def test_bad_keys():
    with pytest.raises(TypeError, match=r"random\.uniform.*'key'.*random\.key\(0\)"):
        random.uniform(0, (2,))
    with pytest.raises(TypeError, match=r"random\.normal.*'key'.*uint32"):
        random.normal(np.array([0, 1], np.int64))
    with pytest.raises(ValueError, match=r"random\.split.*'key'.*shape \(3,\)"):
        random.split(np.zeros(3, U32))
    with pytest.raises(ValueError, match=r"random\.bits.*array of keys.*\(4, 2\)"):
        random.bits(random.split(random.key(0), 4))
    with pytest.raises(TypeError, match=r"random\.fold_in.*'key'"):
        random.fold_in([0, 1], 3)
    with pytest.raises(fg.errors.FuncgradError):
        random.normal(np.zeros(2, np.float32))


def test_bad_seeds():
    with pytest.raises(TypeError, match="integer"):
        random.key(1.5)
    with pytest.raises(TypeError, match="scalar"):
        random.PRNGKey(np.array([1, 2]))
    with pytest.raises(OverflowError):
        random.key(2**64)


def test_dtype_errors():
    k = random.key(0)
    with pytest.raises(TypeError, match=r"random\.uniform.*floating.*int32"):
        random.uniform(k, (2,), np.int32)
    with pytest.raises(TypeError, match=r"random\.normal"):
        random.normal(k, (2,), "int64")
    with pytest.raises(TypeError, match=r"random\.randint.*integer.*float32"):
        random.randint(k, (2,), 0, 5, np.float32)
    with pytest.raises(TypeError, match=r"random\.bits.*unsigned"):
        random.bits(k, (2,), np.int32)
    with pytest.raises(TypeError, match=r"random\.bernoulli.*floating"):
        random.bernoulli(k, np.array([1, 0]))
    with pytest.raises(TypeError, match=r"random\.randint.*minval"):
        random.randint(k, (2,), np.array([0.5]), 3)


def test_shape_errors():
    k = random.key(0)
    with pytest.raises(TypeError, match=r"random\.uniform.*tuple of ints.*\(3,\)"):
        random.uniform(k, 3)
    with pytest.raises(TypeError, match=r"random\.normal.*tuple of ints"):
        random.normal(k, (2.0, 3))
    with pytest.raises(TypeError, match=r"random\.normal.*tuple of ints"):
        random.normal(k, "ab")
    with pytest.raises(ValueError, match="non-negative"):
        random.bits(k, (-1,))
    with pytest.raises(ValueError, match="broadcast"):
        random.uniform(k, (2,), minval=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="broadcast"):
        random.bernoulli(k, np.full(3, 0.5, np.float32), (2,))
    with pytest.raises(ValueError):
        random.split(k, -1)
    with pytest.raises(TypeError):
        random.split(k, 2.0)
    assert random.normal(k, [2, 3]).shape == (2, 3)  # lists are fine


# -------------------------------------------------------------------------------------------------
# the traced code path (funcgrad operations instead of NumPy)
# -------------------------------------------------------------------------------------------------

_TRACED_CASES = {
    "split": lambda k: random.split(k, 3),
    "fold_in": lambda k: random.fold_in(k, 7),
    "bits64": lambda k: random.bits(k, (5,), np.uint64),
    "bits8": lambda k: random.bits(k, (5,), np.uint8),
    "uniform": lambda k: random.uniform(k, (5,), minval=-2.0, maxval=3.0),
    "uniform64": lambda k: random.uniform(k, (5,), "float64"),
    "normal": lambda k: random.normal(k, (7,)),
    "normal64": lambda k: random.normal(k, (7,), "float64"),
    "normal16": lambda k: random.normal(k, (7,), "float16"),
    "randint": lambda k: random.randint(k, (6,), 0, 10),
    "randint8": lambda k: random.randint(k, (6,), -5, 300, np.int8),
    "bernoulli": lambda k: random.bernoulli(k, 0.3, (8,)),
    "categorical": lambda k: random.categorical(k, np.log(np.array([[0.2, 0.3, 0.5]] * 2, np.float32)), shape=(4, 2)),
    "categorical_norep": lambda k: random.categorical(k, np.zeros((2, 5), np.float32), shape=(3, 2), replace=False),
    "permutation": lambda k: random.permutation(k, 10),
    "permutation_axis": lambda k: random.permutation(k, np.arange(12.0).reshape(3, 4), axis=1),
    "choice": lambda k: random.choice(k, 10, (4,)),
    "choice_norep": lambda k: random.choice(k, 10, (4,), replace=False),
    "choice_p": lambda k: random.choice(k, 4, (6,), p=np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
    "choice_p_norep": lambda k: random.choice(k, 4, (3,), replace=False, p=np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
    "gumbel": lambda k: random.gumbel(k, (4,)),
    "exponential": lambda k: random.exponential(k, (4,)),
    "truncated_normal": lambda k: random.truncated_normal(k, -1.0, 2.0, (6,)),
}


@pytest.mark.parametrize("name", sorted(_TRACED_CASES))
def test_funcgrad_ops_path_matches_numpy_path(name, monkeypatch):
    f = _TRACED_CASES[name]
    k = random.key(42)
    ref = A(f(k))
    monkeypatch.setattr(random, "_FORCE_FUNCGRAD_OPS", True)
    out = A(f(k))
    assert out.dtype == ref.dtype and out.shape == ref.shape
    if name == "truncated_normal":  # erf of the bounds comes from lax.erf: within an ulp
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    else:
        assert np.array_equal(out, ref)


@pytest.mark.parametrize(
    "name", ["split", "fold_in", "uniform", "normal", "randint", "bernoulli", "categorical", "permutation", "choice_p"]
)
def test_traceable_with_make_jaxpr(name):
    k = random.key(0)
    jaxpr = fg.make_jaxpr(_TRACED_CASES[name])(k)
    assert "threefry2x32" in str(jaxpr)


def test_traced_fold_in_data_and_seedless_errors():
    jaxpr = fg.make_jaxpr(lambda k, i: random.fold_in(k, i))(random.key(0), 3)
    assert "threefry2x32" in str(jaxpr)
    with pytest.raises(TypeError, match="concrete"):
        fg.make_jaxpr(lambda s: random.key(s))(3)
    with pytest.raises(NotImplementedError, match="gamma"):
        fg.make_jaxpr(lambda k: random.gamma(k, 2.0))(random.key(0))


# -------------------------------------------------------------------------------------------------
# differential tests against JAX (jax_enable_x64=True semantics)
# -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_x64():
    jax = pytest.importorskip("jax")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", previous)


SEEDS = [0, 42, 2**31 - 1, 2**32 + 7, 2**40 + 5, 2**63 - 1, -1]


def _same(ours, theirs):
    a, b = A(ours), A(theirs)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_jax_keys_split_fold_in(jax_x64, seed):
    jr = jax_x64.random
    k = jr.PRNGKey(seed)
    _same(random.PRNGKey(seed), k)
    _same(random.key(seed), jr.key_data(jr.key(seed)))
    fk = random.PRNGKey(seed)
    for num in (1, 2, 3, (2, 3)):
        _same(random.split(fk, num), jr.split(k, num))
    for d in (0, 1, 12345, 2**32 - 1):
        _same(random.fold_in(fk, d), jr.fold_in(k, d))


@pytest.mark.parametrize("seed", [0, 42, 2**40 + 5])
def test_jax_bits_uniform_randint(jax_x64, seed):
    jr, jnp = jax_x64.random, jax_x64.numpy
    k, fk = jr.PRNGKey(seed), random.PRNGKey(seed)
    # odd and even element counts, every bit width
    for shape, dtypes in [
        ((), (jnp.uint32,)),
        ((5,), (jnp.uint8, jnp.uint16, jnp.uint32, jnp.uint64)),
        ((2, 3), (jnp.uint32, jnp.uint64)),
    ]:
        for dt in dtypes:
            _same(random.bits(fk, shape, dt), jr.bits(k, shape, dt))
    for shape, dtypes in [
        ((), (jnp.float32,)),
        ((5,), (jnp.float32, jnp.float64, jnp.float16, jnp.bfloat16)),
        ((2, 3), (jnp.float32, jnp.float64)),
    ]:
        for dt in dtypes:
            _same(random.uniform(fk, shape, dt, -2.5, 3.0), jr.uniform(k, shape, dt, -2.5, 3.0))
    for shape, dtypes in [((5,), (jnp.int64, jnp.int8, jnp.uint32)), ((2, 3), (jnp.int64,))]:
        for dt in dtypes:
            _same(random.randint(fk, shape, -3, 1000, dt), jr.randint(k, shape, -3, 1000, dt))


@pytest.mark.parametrize("seed", [0, 2**40 + 5])
def test_jax_samplers(jax_x64, seed):
    jr, jnp = jax_x64.random, jax_x64.numpy
    k, fk = jr.PRNGKey(seed), random.PRNGKey(seed)
    n = 2001  # odd count
    # bit-identical on CPU: float32 / half normal, gumbel, exponential; discrete samplers
    for dt in (jnp.float32, jnp.float16, jnp.bfloat16, jnp.complex64):
        _same(random.normal(fk, (n,), dt), jr.normal(k, (n,), dt))
    _same(random.gumbel(fk, (n,)), jr.gumbel(k, (n,), jnp.float32))
    _same(random.exponential(fk, (n,)), jr.exponential(k, (n,), jnp.float32))
    p = np.array([0.1, 0.5, 0.9], np.float32)
    _same(random.bernoulli(fk, p, (100, 3)), jr.bernoulli(k, p, (100, 3)))
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], np.float32))
    _same(random.categorical(fk, logits, shape=(50, 2)), jr.categorical(k, logits, shape=(50, 2)))
    for m in (2, 100):
        _same(random.permutation(fk, m), jr.permutation(k, m))
    x = np.arange(24.0).reshape(4, 6)
    _same(random.permutation(fk, x, axis=1), jr.permutation(k, x, axis=1))
    _same(random.choice(fk, 10, (2, 3), replace=False), jr.choice(k, 10, (2, 3), replace=False))
    _same(random.choice(fk, x, (2,), axis=1), jr.choice(k, x, (2,), axis=1))
    pp = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    _same(random.choice(fk, 4, (50,), p=pp), jr.choice(k, 4, (50,), p=pp))
    np.testing.assert_array_equal(
        A(random.choice(fk, 4, (3,), replace=False, p=pp)), A(jr.choice(k, 4, (3,), replace=False, p=pp))
    )
    # within a few ulp: float64 normal, truncated normal, gamma / beta
    np.testing.assert_allclose(
        A(random.normal(fk, (n,), jnp.float64)), A(jr.normal(k, (n,), jnp.float64)), rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(
        A(random.truncated_normal(fk, -1.5, 2.0, (n,))),
        A(jr.truncated_normal(k, -1.5, 2.0, (n,), jnp.float32)),
        rtol=1e-5,
        atol=2e-6,
    )
    a = np.array([0.3, 1.0, 2.5, 10.0], np.float32)
    np.testing.assert_allclose(A(random.gamma(fk, a, (50, 4))), A(jr.gamma(k, a, (50, 4), jnp.float32)), rtol=1e-5)
    np.testing.assert_allclose(
        A(random.beta(fk, 0.4, 0.4, (200,))),
        A(jr.beta(k, np.float32(0.4), np.float32(0.4), (200,), jnp.float32)),
        rtol=1e-4,
        atol=1e-6,
    )
