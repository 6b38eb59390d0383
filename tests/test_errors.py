"""Error classes and messages (API.md section 2): each names the function, the argument and the
shapes or dtypes involved, and derives from ``fg.errors.FuncgradError`` and the matching builtin."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import errors, lax

BUILTIN_OF = {
    "ConcretizationError": TypeError,
    "TracerArrayConversionError": TypeError,
    "InvalidArgumentError": TypeError,
    "InvalidValueError": ValueError,
    "IndexOutOfRangeError": IndexError,
    "UnexpectedTracerError": RuntimeError,
    "ShapeError": ValueError,
    "DTypeError": TypeError,
    "NaNError": FloatingPointError,
    "AxisError": (ValueError, IndexError),
}


def test_every_error_class_derives_from_funcgrad_error_and_a_builtin():
    classes = {n: c for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, Exception)}
    assert "FuncgradError" in classes
    for name, cls in classes.items():
        assert issubclass(cls, errors.FuncgradError), name
        if cls is errors.FuncgradError:
            continue
        assert name in BUILTIN_OF, f"{name}: add it to BUILTIN_OF with the builtin it must derive from"
        builtins = BUILTIN_OF[name] if isinstance(BUILTIN_OF[name], tuple) else (BUILTIN_OF[name],)
        for b in builtins:
            assert issubclass(cls, b), f"{name} must also derive from {b.__name__}"
    assert issubclass(errors.AxisError, np.exceptions.AxisError)  # code catching NumPy's AxisError keeps working


# -- transformations --------------------------------------------------------------------------------


def test_grad_of_non_scalar_output():
    with pytest.raises(TypeError, match=r"scalar.*\(3,\)"):
        fg.grad(lambda x: x * 2.0)(fnp.ones(3))
    with pytest.raises(TypeError, match=r"\(2, 1\)"):
        fg.value_and_grad(lambda x: fnp.ones((2, 1)) * x)(1.0)


def test_grad_of_non_float_output():
    with pytest.raises(TypeError, match="bool"):
        fg.grad(lambda x: fnp.sum(x) > 0)(fnp.ones(3))


def test_grad_with_respect_to_integer_input():
    with pytest.raises(TypeError, match="int64") as info:
        fg.grad(lambda x: x * 2.0)(fnp.array(3))
    assert isinstance(info.value, errors.FuncgradError)
    assert "argnums=0" in str(info.value)
    with pytest.raises(TypeError, match=r"argnums=1.*int32"):
        fg.grad(lambda x, i: x * i, argnums=1)(1.0, fnp.array(2, dtype=np.int32))
    with pytest.raises(TypeError, match="int"):
        fg.jacrev(lambda x: x * 2.0)(fnp.arange(3))
    with pytest.raises(TypeError, match="int"):
        fg.jacfwd(lambda x: x * 2.0)(fnp.arange(3))


def test_grad_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums"):
        fg.grad(lambda x: x, argnums=2)(1.0)
    with pytest.raises(TypeError, match="argnums"):
        fg.grad(lambda x: x, argnums="0")(1.0)


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="has_aux"):
        fg.grad(lambda x: x * 2.0, has_aux=True)(1.0)


def test_concretization_error_names_the_argument():
    def f(x, y):
        if fnp.sum(y) > 0:
            return x
        return -x

    with pytest.raises(errors.ConcretizationError) as info:
        fg.make_jaxpr(f)(1.0, fnp.ones(3))
    msg = str(info.value)
    assert "'y'" in msg and "'x'" not in msg
    assert "lax.cond" in msg and "lax.while_loop" in msg
    assert isinstance(info.value, TypeError)
    for conv in (float, int, bool):
        with pytest.raises(errors.ConcretizationError, match="argument 'x'"):
            fg.make_jaxpr(lambda x, conv=conv: conv(x))(1.0)
    with pytest.raises(errors.ConcretizationError):
        fg.make_jaxpr(lambda x: np.asarray(x))(1.0)
    with pytest.raises(errors.ConcretizationError, match="boolean mask"):
        fg.make_jaxpr(lambda x: x[x > 0])(fnp.ones(3))
    with pytest.raises(errors.ConcretizationError, match="size="):
        fg.make_jaxpr(lambda x: fnp.nonzero(x))(fnp.ones(3))
    with pytest.raises(errors.ConcretizationError, match="dynamic_slice"):
        fg.make_jaxpr(lambda x, i: x[i : i + 2])(fnp.ones(3), 1)


def test_control_flow_under_grad_is_fine():
    assert float(fg.grad(lambda x: x * 2.0 if x > 0 else x)(1.0)) == 2.0


def test_leaked_tracer():
    box = []
    fg.grad(lambda x: box.append(x) or x * 1.0)(1.0)
    with pytest.raises(errors.UnexpectedTracerError, match="leaked") as info:
        box[0] * 2
    assert isinstance(info.value, RuntimeError)
    box.clear()
    fg.make_jaxpr(lambda x: box.append(x) or x)(fnp.ones(2))
    with pytest.raises(errors.UnexpectedTracerError, match="make_jaxpr"):
        fnp.sum(box[0])


def test_vjp_and_jvp_argument_errors():
    _, f_vjp = fg.vjp(lambda x: x * 2.0, fnp.ones(3))
    with pytest.raises(errors.ShapeError, match=r"\(2,\).*\(3,\)"):
        f_vjp(fnp.ones(2))
    with pytest.raises(errors.DTypeError, match="float64"):
        f_vjp(fnp.ones(3, dtype=np.float64))
    with pytest.raises(TypeError, match="structure"):
        f_vjp([fnp.ones(3)])
    with pytest.raises(errors.ShapeError, match="tangent shape"):
        fg.jvp(fnp.sin, (fnp.ones(2),), (fnp.ones(3),))
    with pytest.raises(TypeError, match="tuples"):
        fg.jvp(fnp.sin, fnp.ones(2), fnp.ones(2))


# -- arrays ---------------------------------------------------------------------------------------------


def test_item_assignment_names_the_functional_form():
    x = fnp.zeros(3)
    with pytest.raises(TypeError, match=r"\.at\[") as info:
        x[1] = 2.0
    assert "x.at[1].set" in str(info.value)
    with pytest.raises(TypeError, match=r"\.at\[0, :\]\.set"):
        fnp.zeros((2, 2))[0, :] = 1.0
    assert float(x[1]) == 0.0


def test_conversion_errors():
    with pytest.raises(TypeError, match="0-d"):
        len(fnp.array(1.0))
    with pytest.raises(TypeError, match="0-d"):
        iter(fnp.array(1.0))
    with pytest.raises(TypeError, match="unhashable"):
        hash(fnp.ones(2))
    with pytest.raises(ValueError, match=r"size 1.*\(3,\)"):
        fnp.ones(3).item()
    with pytest.raises(TypeError):
        int(fnp.ones(3))
    with pytest.raises(TypeError, match="integer"):
        [0, 1][fnp.array(0.5)]


@pytest.mark.parametrize(
    "fn,pattern",
    [
        (lambda: fnp.ones(3) + fnp.ones(4), r"add.*\(3,\).*\(4,\)"),
        (lambda: fnp.multiply(fnp.ones((2, 3)), fnp.ones((3, 2))), r"multiply.*\(2, 3\).*\(3, 2\)"),
        (lambda: fnp.where(fnp.ones(3) > 0, fnp.ones(2), 1.0), r"where.*\(3,\).*\(2,\)"),
        (lambda: fnp.ones((2, 3)) @ fnp.ones((2, 3)), r"matmul.*\(2, 3\).*\(2, 3\)"),
        (lambda: fnp.matmul(fnp.ones((4, 2, 3)), fnp.ones((5, 3, 2))), r"matmul.*\(4,\).*\(5,\)"),
        (lambda: fnp.dot(fnp.ones((2, 3)), fnp.ones((4, 2))), r"dot.*\(2, 3\).*\(4, 2\)"),
        (lambda: fnp.concatenate([fnp.ones((2, 3)), fnp.ones((2, 4))]), r"concatenate.*\(2, 3\).*\(2, 4\)"),
        (lambda: fnp.stack([fnp.ones(3), fnp.ones(2)]), r"stack.*\(3,\).*\(2,\)"),
        (lambda: fnp.reshape(fnp.ones(3), (2, 2)), r"reshape.*\(3,\).*\(2, 2\)"),
        (lambda: fnp.broadcast_to(fnp.ones(3), (2, 4)), r"broadcast_to.*\(3,\).*\(2, 4\)"),
        (lambda: fnp.einsum("ij,jk", fnp.ones((2, 3)), fnp.ones((4, 2))), r"einsum.*'j'.*3.*4"),
        (lambda: fnp.tensordot(fnp.ones((2, 3)), fnp.ones((4, 2)), 1), r"tensordot.*\(2, 3\).*\(4, 2\)"),
        (lambda: lax.add(fnp.ones(3), fnp.ones(4)), r"lax\.add.*\(3,\).*\(4,\)"),
        (lambda: lax.add(fnp.ones((3, 1)), fnp.ones(4)), r"lax\.add.*\(3, 1\).*\(4,\)"),
        (
            lambda: lax.dot_general(fnp.ones((2, 3)), fnp.ones((4, 2)), (((1,), (0,)), ((), ()))),
            r"dot_general.*\(2, 3\).*\(4, 2\)",
        ),
        (lambda: fnp.zeros(3).at[fnp.array([0, 1])].set(fnp.ones(3)), r"\(3,\).*\(2,\)"),
    ],
)
def test_shape_mismatch_errors_name_op_and_shapes(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert isinstance(info.value, errors.FuncgradError) or "at[" in str(info.value), type(info.value)


def test_shape_errors_under_tracing_match_eager():
    for fn, args in [
        (lambda a, b: a + b, (fnp.ones(3), fnp.ones(4))),
        (lambda a, b: a @ b, (fnp.ones((2, 3)), fnp.ones((2, 3)))),
        (lambda a, b: lax.add(a, b), (fnp.ones((3, 1)), fnp.ones(4))),
    ]:
        with pytest.raises(errors.ShapeError):
            fn(*args)
        with pytest.raises(errors.ShapeError):
            fg.make_jaxpr(fn)(*args)


def test_dtype_errors():
    with pytest.raises(errors.DTypeError, match=r"lax\.mul.*float32.*float64"):
        lax.mul(fnp.ones(3), fnp.ones(3, dtype=np.float64))
    with pytest.raises(TypeError, match=r"bitwise_and.*float32"):
        fnp.bitwise_and(fnp.ones(2), fnp.ones(2))
    with pytest.raises(TypeError, match="invert"):
        ~fnp.ones(2)
    with pytest.raises(errors.DTypeError, match="foo"):
        fnp.ones(2).astype("foo")
    with pytest.raises(IndexError, match="float32"):
        fnp.ones(3)[fnp.array([0.5])]
    with pytest.raises(IndexError, match="float32"):
        fnp.take(fnp.ones(3), fnp.array([0.5]))


@pytest.mark.parametrize(
    "fn,axis_text,range_text",
    [
        (lambda: fnp.sum(fnp.ones((2, 3)), axis=2), "axis 2", "[-2, 1]"),
        (lambda: fnp.mean(fnp.ones((2, 3)), axis=-3), "axis -3", "[-2, 1]"),
        (lambda: fnp.argmax(fnp.ones(3), axis=1), "axis 1", "[-1, 0]"),
        (lambda: fnp.expand_dims(fnp.ones((2, 3)), 4), "axis 4", "[-3, 2]"),
        (lambda: fnp.concatenate([fnp.ones(2), fnp.ones(2)], axis=1), "axis 1", "[-1, 0]"),
        (lambda: fnp.stack([fnp.ones(2), fnp.ones(2)], axis=3), "axis 3", "[-2, 1]"),
        (lambda: fnp.squeeze(fnp.ones((1, 2)), 2), "axis 2", "[-2, 1]"),
        (lambda: fnp.moveaxis(fnp.ones((1, 2)), 0, 5), "axis 5", "[-2, 1]"),
        (lambda: fnp.cumsum(fnp.ones(3), axis=1), "axis 1", "[-1, 0]"),
        (lambda: fnp.flip(fnp.ones(3), 1), "axis 1", "[-1, 0]"),
        (lambda: fnp.sort(fnp.ones(3), axis=1), "axis 1", "[-1, 0]"),
        (lambda: fnp.take(fnp.ones(3), fnp.array([0]), axis=1), "axis 1", "[-1, 0]"),
    ],
)
def test_bad_axis(fn, axis_text, range_text):
    with pytest.raises(errors.AxisError) as info:
        fn()
    msg = str(info.value)
    assert axis_text in msg and range_text in msg, msg
    assert isinstance(info.value, IndexError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, np.exceptions.AxisError)


def test_indexing_errors():
    x = fnp.ones(3)
    with pytest.raises(IndexError, match=r"index 5 .* axis 0 with size 3"):
        x[5]
    with pytest.raises(IndexError, match="too many indices"):
        x[1, 2]
    with pytest.raises(IndexError, match="ellipsis"):
        fnp.ones((2, 2))[..., ...]
    with pytest.raises(IndexError, match="boolean index"):
        x[fnp.array([True, False])]


def test_creation_errors():
    with pytest.raises(ValueError, match="array: .*rectangular"):
        fnp.array([[1, 2], [3]])
    with pytest.raises(TypeError, match="string"):
        fnp.array(["a", "b"])
    with pytest.raises(ValueError, match="negative"):
        fnp.zeros((2, -1))
    with pytest.raises(TypeError, match="device_put"):
        fnp.zeros(3, device="cpu")
    with pytest.raises(TypeError, match="fg.grad"):
        fnp.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="step"):
        fnp.arange(0, 3, 0)


def test_absent_backend_is_a_runtime_error():
    try:
        fg.devices("cuda")
    except RuntimeError as e:
        assert "cuda" in str(e).lower()
    else:  # a machine with a GPU: nothing to check here
        pass
    with pytest.raises((RuntimeError, ValueError)):
        fg.devices("tpu")


def test_config_errors():
    with pytest.raises(KeyError, match="unknown option"):
        fg.config.update("no_such_option", 1)
    with pytest.raises(ValueError, match="float32 or float64"):
        fg.config.update("default_float_dtype", "float16")
