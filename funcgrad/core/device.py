"""Devices and backends: ``fg.devices()``, ``fg.default_backend()``, ``fg.device_put``."""

from __future__ import annotations

import functools


class Device:
    """A compute device (``platform`` is ``"cpu"`` or ``"cuda"``)."""

    __slots__ = ("platform", "id")

    def __init__(self, platform: str, id: int = 0):
        self.platform, self.id = platform, id

    def __repr__(self):
        return f"{self.platform.upper() if self.platform == 'cpu' else 'Cuda'}Device(id={self.id})"

    def __eq__(self, other):
        return isinstance(other, Device) and (self.platform, self.id) == (other.platform, other.id)

    def __hash__(self):
        return hash((self.platform, self.id))


@functools.lru_cache(maxsize=None)
def cpu_device() -> Device:
    return Device("cpu", 0)


def _cuda_unavailable_reason():
    try:
        from numba import cuda
    except Exception as e:  # pragma: no cover - numba is a dependency
        return f"numba.cuda could not be imported ({e})"
    try:
        if not cuda.is_available():
            return "numba.cuda found no usable CUDA driver or GPU on this machine"
    except Exception as e:
        return f"numba.cuda failed to initialise ({e})"
    return None


def devices(backend: str | None = None) -> list:
    """The devices of ``backend`` (default: the default backend).

    Example:
        >>> import funcgrad as fg
        >>> fg.devices("cpu")
        [CPUDevice(id=0)]
    """
    backend = backend or default_backend()
    if backend == "cpu":
        return [cpu_device()]
    if backend in ("cuda", "gpu"):
        reason = _cuda_unavailable_reason()
        if reason:
            raise RuntimeError(f"devices('{backend}'): the CUDA backend is not available: {reason}")
        raise NotImplementedError(
            "devices('cuda'): CUDA arrays are not built yet (they arrive with the numba CUDA lowering)"
        )
    raise RuntimeError(f"devices: unknown backend {backend!r}; known backends are 'cpu' and 'cuda'")


def default_backend() -> str:
    """The backend arrays are placed on by default (``"cpu"`` until CUDA arrays exist)."""
    return "cpu"
