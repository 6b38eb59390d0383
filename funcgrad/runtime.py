"""Host/device helpers: ``device_put``, ``device_get``, ``block_until_ready``."""

from __future__ import annotations

import numpy as np

from .core.array import Array, as_array
from .core.device import Device, devices
from .core.pytree import tree_map


def device_put(x, device=None):
    """Place a pytree of arrays on ``device`` (a :class:`Device` or a backend name).

    Example:
        >>> import funcgrad as fg
        >>> fg.device_put([1.0, 2.0], "cpu")
        [Array(1., dtype=float32), Array(2., dtype=float32)]
    """
    if device is not None:
        platform = device.platform if isinstance(device, Device) else str(device)
        devices(platform)  # raises RuntimeError / NotImplementedError for absent backends
    return tree_map(lambda v: as_array(v, "device_put") if not isinstance(v, Array) else v, x)


def device_get(x):
    """Copy a pytree of arrays to host NumPy arrays."""
    return tree_map(lambda v: np.asarray(v), x)


def block_until_ready(x):
    """Wait for every array in the pytree (CPU arrays are always ready); returns ``x``."""
    return x
