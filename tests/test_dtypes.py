"""The dtype policy (API.md section 1): supported dtypes, defaults, NEP 50 weak scalars, promotion."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.testing import assert_allclose

BF16 = fnp.bfloat16
needs_bf16 = pytest.mark.skipif(BF16 is None, reason="bfloat16 needs ml_dtypes")

INTS = [np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")]
FLOATS = [np.dtype(t) for t in ("float16", "float32", "float64")] + ([BF16] if BF16 is not None else [])
COMPLEX = [np.dtype("complex64"), np.dtype("complex128")]
ALL = [np.dtype(bool)] + INTS + FLOATS + COMPLEX


def test_dtype_names_exported():
    for name in (
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "float0",
    ):
        assert isinstance(getattr(fnp, name), np.dtype), name
    assert fnp.float32 == np.float32 and fnp.int64 == np.int64
    assert fnp.dtype("float32") == np.float32


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_every_supported_dtype_round_trips(dtype):
    data = np.array([0, 1, 1, 0]).astype(dtype)
    x = fnp.asarray(data)
    assert x.dtype == dtype
    assert (x + x).dtype == dtype
    assert x.astype(np.float32).dtype == np.float32
    assert fnp.zeros(2, dtype=dtype).dtype == dtype
    assert fnp.ones((2, 2), dtype=dtype).dtype == dtype
    assert fnp.full(2, 1, dtype=dtype).dtype == dtype
    assert np.asarray(x).dtype == dtype
    assert_allclose(np.real(np.asarray(x)).astype(np.float64), np.real(data).astype(np.float64))
    assert fnp.concatenate([x, x]).dtype == dtype
    assert x[::2].dtype == dtype and x.reshape(2, 2).T.dtype == dtype
    assert fnp.where(x == x, x, x).dtype == dtype


@pytest.mark.parametrize("a,b", list(itertools.combinations_with_replacement(ALL, 2)), ids=str)
def test_promotion_table(a, b):
    """NumPy's promotion, except that an int/bool array meeting an inexact array takes the inexact
    dtype (JAX and PyTorch), and bfloat16 meets float16 at float32 (JAX)."""
    x, y = fnp.ones(2, dtype=a), fnp.ones(2, dtype=b)
    inexact = [d for d in (a, b) if d.kind in "fc" or d == BF16]
    if len(inexact) == 1:
        expected = inexact[0]
    elif BF16 is not None and BF16 in (a, b):
        other = b if a == BF16 else a
        expected = {BF16: BF16, np.dtype("float16"): np.dtype("float32")}.get(other) or np.result_type(
            np.float32, other
        )
    else:
        expected = np.result_type(a, b)
    assert (x + y).dtype == expected
    assert (y + x).dtype == expected
    assert fnp.result_type(a, b) == expected


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_weak_scalars(dtype):
    x = fnp.ones(2, dtype=dtype)
    kind = "b" if dtype == np.bool_ else ("f" if dtype == BF16 else dtype.kind)
    # int scalar: keeps any int/float/complex dtype; bool arrays become int64
    assert (x + 1).dtype == (np.int64 if kind == "b" else dtype)
    # float scalar: keeps inexact dtypes; int/bool arrays get the default float
    assert (x * 0.5).dtype == (dtype if kind in "fc" else np.float32)
    # complex scalar: complex of the same precision; int/bool arrays get the default complex
    expected_c = {np.dtype("float64"): np.complex128, np.dtype("complex128"): np.complex128}.get(dtype, np.complex64)
    assert (x + 1j).dtype == expected_c
    # bool scalar never changes the dtype
    assert (x * True).dtype == (dtype if kind != "b" else np.bool_)


def test_python_scalar_defaults():
    assert fnp.array(1).dtype == np.int64
    assert fnp.array(1.0).dtype == np.float32
    assert fnp.array(True).dtype == np.bool_
    assert fnp.array(1j).dtype == np.complex64
    assert fnp.result_type(1, 2.0) == np.float32
    assert fnp.result_type(True, 1) == np.int64
    assert fnp.result_type(1.0, 1j) == np.complex64
    assert fnp.result_type(np.int8, np.uint8) == np.int16  # scalar types are accepted as dtypes
    assert fnp.result_type(fnp.int32, 1.5) == np.float32
    assert fnp.result_type(np.float64, 1) == np.float64


def test_default_float_dtype_config():
    fg.config.update("default_float_dtype", "float64")
    assert fg.config.read("default_float_dtype") == np.float64
    assert fnp.array(1.0).dtype == np.float64
    assert fnp.array(1j).dtype == np.complex128
    assert fnp.array([1.0, 2.0]).dtype == np.float64
    assert fnp.zeros(2).dtype == np.float64
    assert fnp.linspace(0, 1, 3).dtype == np.float64
    assert fnp.arange(0.0, 2.0).dtype == np.float64
    assert (fnp.arange(3) * 0.5).dtype == np.float64
    assert fnp.mean(fnp.arange(3)).dtype == np.float64
    assert fnp.result_type(float) == np.float64
    fg.config.update("default_float_dtype", np.float32)
    assert fnp.array(1.0).dtype == np.float32
    assert fnp.array(1j).dtype == np.complex64


def test_float64_is_never_silently_truncated():
    x64 = np.arange(3.0)
    assert fnp.asarray(x64).dtype == np.float64
    assert fnp.array(x64).dtype == np.float64
    assert fnp.array(np.float64(2.0)).dtype == np.float64
    assert fnp.array([np.float64(1.0), 2.0]).dtype == np.float64
    assert fnp.full(2, np.float64(1.0)).dtype == np.float64
    assert (fnp.asarray(x64) * 2.0).dtype == np.float64
    assert (fnp.asarray(x64) + fnp.ones(3)).dtype == np.float64
    assert fnp.sum(fnp.asarray(x64)).dtype == np.float64
    assert fg.grad(lambda x: fnp.sum(x * x))(fnp.asarray(x64)).dtype == np.float64
    assert fnp.array([1.0, 2.0], dtype=np.float64).dtype == np.float64


def test_integer_accumulators_match_numpy():
    for dt in ("int8", "int32", "uint8", "uint32", "bool"):
        x = np.ones(3, dtype=dt)
        assert fnp.sum(fnp.asarray(x)).dtype == np.sum(x).dtype, dt
        assert fnp.cumsum(fnp.asarray(x)).dtype == np.cumsum(x).dtype, dt
        assert fnp.prod(fnp.asarray(x)).dtype == np.prod(x).dtype, dt
    assert fnp.argmax(fnp.ones(3)).dtype == np.int64  # index results are int64
    assert fnp.argsort(fnp.ones(3)).dtype == np.int64
    assert fnp.nonzero(fnp.ones(3))[0].dtype == np.int64
    assert fg.lax.top_k(fnp.ones(3), 2)[1].dtype == np.int64


def test_finfo_iinfo():
    for dt, bits, nmant in (("float16", 16, 10), ("float32", 32, 23), ("float64", 64, 52)):
        fi = fnp.finfo(dt)
        assert fi.bits == bits and fi.nmant == nmant
        assert fi.eps == np.finfo(dt).eps and fi.max == np.finfo(dt).max and fi.tiny == np.finfo(dt).tiny
    assert fnp.finfo(float).bits == 32  # Python float means the default float dtype
    assert fnp.iinfo(fnp.int8).min == -128 and fnp.iinfo("uint16").max == 65535
    assert fnp.iinfo(int).bits == 64


@needs_bf16
def test_bfloat16():
    fi = fnp.finfo(BF16)
    assert fi.bits == 16 and fi.nexp == 8 and fi.nmant == 7
    assert float(fi.max) > 3e38  # float32's range with less precision
    assert fnp.finfo("bfloat16").eps == fi.eps == 2.0**-7
    assert fnp.issubdtype(BF16, fnp.floating) and fnp.issubdtype(BF16, fnp.inexact)
    assert not fnp.issubdtype(BF16, fnp.integer)
    x = fnp.array([1.0, 2.0, 3.0], dtype="bfloat16")
    assert x.dtype == BF16
    assert (x * 2.5).dtype == BF16 and fnp.sum(x).dtype == BF16 and fnp.exp(x).dtype == BF16
    assert (x @ x).dtype == BF16
    assert_allclose(x @ x, 14.0)
    assert (x + fnp.ones(3, dtype=np.float16)).dtype == np.float32
    assert (x + fnp.ones(3, dtype=np.float32)).dtype == np.float32
    assert (x + fnp.arange(3)).dtype == BF16
    g = fg.grad(lambda v: fnp.sum(v * v))(x)
    assert g.dtype == BF16
    assert_allclose(g, [2.0, 4.0, 6.0])
    assert "bfloat16" in repr(x)


def test_complex():
    c = fnp.array([1 + 2j, 3j])
    assert c.dtype == np.complex64
    assert fnp.abs(c).dtype == np.float32
    assert_allclose(fnp.abs(c), [np.sqrt(5), 3.0], rtol=1e-6)
    assert_allclose(fnp.real(c), [1.0, 0.0])
    assert_allclose(fnp.imag(c), [2.0, 3.0])
    assert_allclose(fnp.conj(c), [1 - 2j, -3j])
    assert (c * 2.0).dtype == np.complex64
    assert (c * fnp.ones(2, dtype=np.float64)).dtype == np.complex128
    assert_allclose(fnp.exp(c), np.exp(np.array([1 + 2j, 3j], np.complex64)), rtol=1e-6)
    assert_allclose(c @ c, np.dot([1 + 2j, 3j], [1 + 2j, 3j]), rtol=1e-6)


def test_float0_gradients_of_integer_inputs():
    _, f_vjp = fg.vjp(lambda x, n: x * n, fnp.ones(2), fnp.array([1, 2]))
    _, cn = f_vjp(fnp.ones(2))
    assert cn.dtype == fnp.float0 and cn.shape == (2,)


def test_astype_and_casts():
    x = fnp.array([1.7, -1.7, 0.0])
    assert_allclose(x.astype(np.int32), [1, -1, 0])
    assert x.astype(bool).tolist() == [True, True, False]
    assert x.astype(float).dtype == np.float32 and x.astype(int).dtype == np.int64
    assert fnp.array([1, 2]).astype(np.float16).dtype == np.float16
    assert_allclose(fg.grad(lambda v: fnp.sum(v.astype(np.float64) ** 2))(x), 2 * np.asarray(x))
    assert fg.grad(lambda v: fnp.sum(v.astype(np.float64) ** 2))(x).dtype == np.float32
    with pytest.raises(TypeError):
        fnp.ones(2).astype("not-a-dtype")
