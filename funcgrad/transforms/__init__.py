"""Transformations: each one an interpreter of primitives (see DESIGN.md)."""

from .autodiff import grad, jvp, linearize, value_and_grad, vjp  # noqa: F401
from .checkpoint import checkpoint, remat  # noqa: F401
from .custom_derivatives import custom_jvp, custom_vjp  # noqa: F401
from .jacobians import hessian, jacfwd, jacrev  # noqa: F401
from .tracing import make_jaxpr  # noqa: F401
