"""``fg.errors``: funcgrad's exception classes (see ``funcgrad.core.errors``)."""

from .core.errors import (  # noqa: F401
    AxisError,
    ConcretizationError,
    DTypeError,
    FuncgradError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    InvalidValueError,
    NaNError,
    ShapeError,
    TracerArrayConversionError,
    UnexpectedTracerError,
)
