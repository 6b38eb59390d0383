"""Structured control flow (``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``).

Not built yet: these arrive with the vmap / control-flow work. Each raises a clear error.
"""


def _missing(name):
    def f(*args, **kwargs):
        raise NotImplementedError(
            f"lax.{name} is not implemented yet (structured control flow lands with vmap support). "
            "Outside jit, plain Python control flow works under grad/jvp/vjp.")

    f.__name__ = name
    f.__doc__ = f"``lax.{name}`` (not implemented yet; raises NotImplementedError)."
    return f


cond = _missing("cond")
switch = _missing("switch")
while_loop = _missing("while_loop")
fori_loop = _missing("fori_loop")
scan = _missing("scan")
map = _missing("map")
