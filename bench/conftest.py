"""pytest-benchmark settings of the ``bench/`` suite.

``pytest bench`` times every kernel x competitor x dtype x size (decades 1e2..1e7), one
pytest-benchmark group per kernel, dtype and size. Under ``--benchmark-disable`` (the CI smoke
test) sizes above ``SMOKE_MAX_SIZE`` are skipped, so every code path runs once, fast.
"""
import pytest

SMOKE_MAX_SIZE = 10**4


def pytest_collection_modifyitems(config, items):
    if not config.getoption("benchmark_disable", default=False):
        return
    skip = pytest.mark.skip(reason=f"size > {SMOKE_MAX_SIZE} skipped under --benchmark-disable")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("n", 0) > SMOKE_MAX_SIZE:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def baseline_times():
    """Median seconds of the naive reference per group, filled as the groups run."""
    return {}
