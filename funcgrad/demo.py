"""A short tour: gradients, Jacobians and Hessians of a small function."""

import funcgrad as fg
import funcgrad.numpy as fnp


def f(x):
    return fnp.sum(fnp.tanh(x) ** 2) + fnp.prod(fnp.sin(x))


x = fnp.array([0.5, -1.0, 2.0])
print("f(x)          =", f(x))
print("grad f(x)     =", fg.grad(f)(x))
print("jacrev sin(x) =\n", fg.jacrev(fnp.sin)(x))
print("hessian f(x)  =\n", fg.hessian(f)(x))
print("jaxpr of f:\n", fg.make_jaxpr(f)(x))
