"""Shared fixtures: a seeded NumPy generator, config isolation and hypothesis settings."""

import numpy as np
import pytest

import funcgrad as fg

try:
    from hypothesis import settings

    # Tracing-free eager ops are fast, but the first call of a code path can be slow on a
    # loaded CI machine: no per-example deadline, and few examples so the suite stays quick.
    settings.register_profile("funcgrad", deadline=None, max_examples=60, derandomize=True)
    settings.load_profile("funcgrad")
except ImportError:  # hypothesis is part of the test extra; its tests importorskip it
    pass


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed (each test gets a fresh one)."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _restore_config():
    """Every test starts from, and leaves behind, funcgrad's default configuration."""
    saved = {name: fg.config.read(name) for name in ("default_float_dtype", "debug_nans")}
    yield
    for name, value in saved.items():
        fg.config.update(name, value)
