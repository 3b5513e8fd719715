"""Learning-rate schedules: the course's numbers, the formulas, errors, use in optimizers."""
import math

import numpy as np
import pytest

import fastoptim
from fastoptim import schedules as S


def test_inverse_time_decay_course_numbers():
    decay = S.inverse_time_decay(0.2, decay_rate=1.0)
    got = [decay(epoch) for epoch in range(1, 5)]
    assert got == pytest.approx([0.1, 0.0667, 0.05, 0.04], abs=5e-5)
    assert got[1] == pytest.approx(0.2 / 3, rel=1e-15)


def test_inverse_time_decay_staircase_is_the_course_schedule_lr_decay():
    # the course: lr0 / (1 + decay_rate * floor(epoch_num / time_interval))
    decay = S.inverse_time_decay(0.5, decay_rate=0.3, decay_steps=1000, staircase=True)
    for epoch in (1, 999, 1000, 1999, 2000, 10_000):
        assert decay(epoch) == 0.5 / (1 + 0.3 * math.floor(epoch / 1000))
    smooth = S.inverse_time_decay(0.5, decay_rate=0.3, decay_steps=1000)
    assert smooth(1500) == 0.5 / (1 + 0.3 * 1.5)


def test_exponential_decay():
    decay = S.exponential_decay(0.1, 0.95)
    assert [decay(e) for e in (1, 2, 10)] == [0.95 ** e * 0.1 for e in (1, 2, 10)]
    stair = S.exponential_decay(0.1, 0.5, decay_steps=10, staircase=True)
    assert [stair(c) for c in (1, 9, 10, 25)] == [0.1, 0.1, 0.05, 0.025]


def test_inverse_sqrt_decay():
    decay = S.inverse_sqrt_decay(0.3, k=2.0)
    assert [decay(c) for c in (1, 4, 9)] == pytest.approx([0.6, 0.3, 0.2])


def test_step_decay_halves_every_n():
    decay = S.step_decay(1.0, every=3)
    assert [decay(c) for c in range(1, 10)] == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert S.step_decay(1.0, factor=0.1, every=2)(5) == pytest.approx(0.01)


def test_linear_decay():
    decay = S.linear_decay(1.0, 0.01, tau=100)
    assert decay(50) == pytest.approx(0.505)
    assert decay(100) == pytest.approx(0.01)
    assert decay(1000) == pytest.approx(0.01)
    assert decay(1) == pytest.approx(0.99 * 1.0 + 0.01 * 0.01)


def test_piecewise_constant():
    sched = S.piecewise_constant([10, 20], [0.1, 0.01, 0.001])
    assert [sched(c) for c in (1, 9, 10, 19, 20, 500)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_cosine_decay_with_warmup():
    sched = S.cosine_decay(1.0, total=110, lr_min=0.1, warmup=10)
    assert sched(1) == pytest.approx(0.1)
    assert sched(10) == pytest.approx(1.0)
    assert sched(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert sched(110) == pytest.approx(0.1)
    assert sched(500) == pytest.approx(0.1)
    plain = S.cosine_decay(2.0, total=4)
    assert [plain(c) for c in (1, 2, 4)] == pytest.approx(
        [1 + math.cos(math.pi / 4), 1.0, 0.0], abs=1e-15)


def test_repr_and_equality():
    sched = S.inverse_time_decay(0.2, decay_rate=1.0)
    assert repr(sched) == "inverse_time_decay(lr0=0.2, decay_rate=1.0, decay_steps=1, staircase=False)"
    assert sched == S.inverse_time_decay(0.2, 1)
    assert "boundaries=(10,)" in repr(S.piecewise_constant([10], [1, 2]))


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: S.inverse_time_decay(-0.1, 1.0), ValueError, "inverse_time_decay: lr0 must be >= 0"),
    (lambda: S.inverse_time_decay(0.1, 1.0, decay_steps=0), ValueError, "decay_steps must be >= 1"),
    (lambda: S.inverse_time_decay(0.1, 1.0, staircase="yes"), TypeError, "staircase must be a bool"),
    (lambda: S.exponential_decay(0.1, 0.0), ValueError, "decay_rate must be > 0"),
    (lambda: S.inverse_sqrt_decay(0.1, k=0), ValueError, "k must be > 0"),
    (lambda: S.step_decay(0.1, 0.5), TypeError, "every"),
    (lambda: S.step_decay(0.1, every=2.5), TypeError, "every must be an integer"),
    (lambda: S.linear_decay(0.1, 0.01, tau=0), ValueError, "tau must be >= 1"),
    (lambda: S.piecewise_constant([10, 5], [1, 2, 3]), ValueError, "strictly increasing"),
    (lambda: S.piecewise_constant([10], [1]), ValueError, "one more entry"),
    (lambda: S.piecewise_constant(10, [1, 2]), TypeError, "boundaries must be a sequence"),
    (lambda: S.cosine_decay(0.1, total=10, warmup=10), ValueError, "warmup must be < total"),
    (lambda: S.cosine_decay(0.1, total=10, lr_min=0.2), ValueError, "lr_min must be <= lr0"),
    (lambda: S.cosine_decay(0.1, total=10, warmup=-1), ValueError, "warmup must be an integer >= 0"),
])
def test_bad_arguments(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()


@pytest.mark.parametrize("count,exc", [(-1, ValueError), (1.5, TypeError),
                                       (True, TypeError)])
def test_bad_count(count, exc):
    with pytest.raises(exc, match="count"):
        S.exponential_decay(0.1, 0.9)(count)


def test_numpy_integer_count_and_float_result():
    out = S.step_decay(1.0, every=2)(np.int64(3))
    assert type(out) is float and out == 0.5


def test_schedule_as_optimizer_lr_uses_step_count():
    W = np.zeros(1)
    opt = fastoptim.SGD([W], lr=S.inverse_time_decay(0.2, 1.0))
    for _ in range(4):
        opt.step([np.ones(1)])
    assert W[0] == pytest.approx(-(0.1 + 0.2 / 3 + 0.05 + 0.04))
    assert opt.last_lr == pytest.approx(0.04)


def test_public():
    assert fastoptim.schedules is S


@pytest.mark.parametrize("schedule,expected", [
    (S.inverse_time_decay(0.2, 1.0), 0.2),
    (S.inverse_time_decay(0.2, 1.0, decay_steps=3, staircase=True), 0.2),
    (S.exponential_decay(0.1, 0.5), 0.1),
    (S.step_decay(0.1, 0.5, every=2), 0.1),
    (S.linear_decay(0.1, 0.01, tau=10), 0.1),
    (S.piecewise_constant([5], [0.3, 0.1]), 0.3),
    (S.cosine_decay(0.1, total=100), 0.1),
    (S.cosine_decay(0.1, total=100, warmup=10), 0.0),   # the warmup's line starts at 0
], ids=repr)
def test_count_zero_gives_the_starting_value(schedule, expected):
    """A ``for epoch in range(n)`` loop starts at 0 (optax's and Keras's convention)."""
    assert schedule(0) == expected
    assert schedule(np.int64(0)) == expected


def test_inverse_sqrt_decay_refuses_count_zero():
    with pytest.raises(ValueError, match="count must be >= 1"):
        S.inverse_sqrt_decay(0.1)(0)
    assert S.inverse_sqrt_decay(0.1, k=2.0)(4) == pytest.approx(0.1)


@pytest.mark.parametrize("count", [False, 0.0, np.float64(0.0)])
def test_count_zero_must_be_an_integer(count):
    with pytest.raises(TypeError, match="count"):
        S.linear_decay(0.1, 0.01, tau=10)(count)
