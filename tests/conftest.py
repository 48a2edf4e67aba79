"""Shared test fixtures."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator: every test that draws random numbers is repeatable."""
    return np.random.default_rng(0)
