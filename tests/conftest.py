"""Shared test fixtures, and one BLAS thread for the whole session."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# The tests' matrices are small: a second BLAS thread gains nothing and, on a busy machine,
# waking it can cost far more than the product itself. One thread also makes timings steady.
_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")


@pytest.fixture
def rng():
    """A seeded generator: every test that draws random numbers is repeatable."""
    return np.random.default_rng(0)
