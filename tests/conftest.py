"""Shared fixtures; the shared constants live in testing_settings.py."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


# Hypothesis profiles for tests/test_properties.py. "ci" (the default) is a fixed, derandomized
# budget that keeps `.ci/run` well inside its time limit; FASTOPTIM_HYPOTHESIS_PROFILE=thorough
# runs a larger, randomized search, and FASTOPTIM_HYPOTHESIS_EXAMPLES=N sets the budget directly.
try:
    from hypothesis import HealthCheck, settings as _hyp_settings
except ImportError:  # hypothesis is in the test extra; other tests run without it
    pass
else:
    import os as _os

    _common = dict(deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
    _hyp_settings.register_profile("ci", max_examples=15, derandomize=True, **_common)
    _hyp_settings.register_profile("thorough", max_examples=400, derandomize=False, **_common)
    _hyp_settings.load_profile(_os.environ.get("FASTOPTIM_HYPOTHESIS_PROFILE", "ci"))
    _examples = _os.environ.get("FASTOPTIM_HYPOTHESIS_EXAMPLES")
    if _examples:
        _hyp_settings.register_profile(
            "examples", _hyp_settings(_hyp_settings.default, max_examples=int(_examples)))
        _hyp_settings.load_profile("examples")
