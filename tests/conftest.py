"""Shared fixtures; the shared constants live in testing_settings.py."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
