"""funcgrad: composable function transformations (grad, vjp, jvp, jacobians, vmap, jit) on
immutable NumPy-backed arrays, JAX-style, without XLA.

    >>> import funcgrad as fg, funcgrad.numpy as fnp
    >>> fg.grad(lambda x: fnp.sum(fnp.tanh(x)))(fnp.zeros(3))
    Array([1., 1., 1.], dtype=float32)
"""

from . import numpy  # noqa: F401  (binds the array operators; must come first)
from . import errors, lax, random, scipy, testing, tree_util  # noqa: F401
from .core.array import Array  # noqa: F401
from .core.config import config  # noqa: F401
from .core.device import Device, default_backend, devices  # noqa: F401
from .core.jaxpr import ClosedJaxpr, Jaxpr  # noqa: F401
from .core.pytree import tree_leaves, tree_map, tree_structure  # noqa: F401
from .lax.elementwise import stop_gradient  # noqa: F401
from .transforms import (  # noqa: F401
    checkpoint,
    custom_jvp,
    custom_vjp,
    grad,
    hessian,
    jacfwd,
    jacrev,
    jvp,
    linearize,
    make_jaxpr,
    remat,
    value_and_grad,
    vjp,
)
from .transforms.batching import vmap  # noqa: F401
from .jit import disable_jit, jit  # noqa: F401
from .runtime import block_until_ready, device_put, device_get  # noqa: F401
from . import debug  # noqa: F401

__version__ = "0.1.0"
