"""Structured control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``.

Each is a primitive whose bodies are closed jaxprs (``cond_p``, ``while_p``, ``scan_p``), so
it works under every transformation: ``make_jaxpr`` shows the nested jaxprs, ``vmap``
batches them (a per-example predicate turns ``cond`` into a select and ``while_loop`` into a
masked loop), ``jvp`` differentiates the bodies, and reverse mode splits them into a known
part that runs now and a recorded linear part (see :mod:`.common`). Reverse mode through
``while_loop`` with a data-dependent trip count works (JAX refuses it): see :mod:`.loops`.
"""

from .conditionals import cond, cond_p, switch  # noqa: F401
from .loops import fori_loop, while_loop, while_p  # noqa: F401
from .scans import map, scan, scan_p  # noqa: F401
from .common import partial_eval_jaxpr, jvp_jaxpr, batch_jaxpr  # noqa: F401
