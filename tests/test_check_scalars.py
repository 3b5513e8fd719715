"""The compiled hyperparameter check: its fast path accepts exactly what the Python checks
accept, converts like them and raises their errors."""
import numpy as np
import pytest

from fastoptim import _validation as v

SPEC = v.scalar_spec(lr="nonnegative", beta="unit_interval", eps="positive",
                     damp="closed_unit_interval", x="real", flag="flag", step="step_count")
GOOD = (0.0, 0.5, 1e-8, 1.0, -3.0, True, 1)


def test_canonical_values_come_back_unchanged():
    assert v.check_scalars("f", SPEC, GOOD) is GOOD


def test_other_types_are_converted_like_the_python_checks():
    values = (np.float32(0.5), 0, np.float64(1e-3), 1, np.int8(-2), np.bool_(False),
              np.int64(7))
    out = v.check_scalars("f", SPEC, values)
    expected = tuple(check("f", name, x) for (name, _, check), x in zip(SPEC, values))
    assert out == expected
    assert [type(o) for o in out] == [float, float, float, float, float, bool, int]


@pytest.mark.parametrize("index,bad,exc", [
    (0, -0.1, ValueError), (0, float("nan"), ValueError), (0, True, TypeError),
    (1, 1.0, ValueError), (1, -1e-300, ValueError), (2, 0.0, ValueError),
    (3, 1.0000001, ValueError), (4, float("inf"), ValueError), (4, "1", TypeError),
    (5, 1, TypeError), (5, None, TypeError), (6, 0, ValueError), (6, 1.0, TypeError),
    (6, True, TypeError),
])
def test_bad_values_raise_the_python_checks_error(index, bad, exc):
    values = GOOD[:index] + (bad,) + GOOD[index + 1:]
    name, _, check = SPEC[index]
    with pytest.raises(exc) as compiled:
        v.check_scalars("f", SPEC, values)
    with pytest.raises(exc) as python:
        check("f", name, bad)
    assert str(compiled.value) == str(python.value)
    assert name in str(compiled.value)


def test_spec_and_values_must_match():
    with pytest.raises(ValueError, match="spec"):
        v.check_scalars("f", SPEC, GOOD[:-1])
