"""``fg.vmap`` (not built yet: the batching interpreter lands with structured control flow)."""


def vmap(fun, in_axes=0, out_axes=0, axis_size=None):
    """Vectorising map (not implemented yet: raises ``NotImplementedError``)."""
    raise NotImplementedError(
        "fg.vmap is not implemented yet: the batching interpreter is still being built. "
        "Use a Python loop with fnp.stack in the meantime (e.g. for per-example gradients).")
