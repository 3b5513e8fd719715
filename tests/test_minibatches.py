"""minibatches: one shared permutation, every example once, reproducible, one batch of memory."""
import tracemalloc

import numpy as np
import pytest

import fastoptim
from fastoptim import minibatches


def course_data(m=1000, n_x=3):
    """Columns are examples (the course's layout); row 0 of X and Y both hold the example id."""
    X = np.vstack([np.arange(m, dtype=float), np.random.default_rng(0).standard_normal((n_x - 1, m))])
    Y = np.arange(m).reshape(1, m) * 10
    return X, Y


@pytest.mark.parametrize("m,batch_size", [(1000, 64), (128, 64), (5, 1), (5, 7)])
def test_every_example_once_and_shorter_last_batch(m, batch_size):
    X, Y = course_data(m)
    batches = list(minibatches(X, Y, batch_size, axis=1, seed=3))
    sizes = [xb.shape[1] for xb, _ in batches]
    full, rest = divmod(m, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest else [])
    ids = np.concatenate([xb[0] for xb, _ in batches]).astype(int)
    assert sorted(ids) == list(range(m))
    assert not np.array_equal(ids, np.arange(m)) or m < 3
    for xb, yb in batches:                                   # X and Y shuffled together
        np.testing.assert_array_equal(yb[0], xb[0] * 10)
        np.testing.assert_array_equal(xb, X[:, xb[0].astype(int)])
        assert xb.shape[0] == 3 and yb.shape[0] == 1


def test_axis0_and_x_only():
    X = np.arange(20).reshape(10, 2)
    batches = list(minibatches(X, batch_size=4, seed=1))
    assert [b.shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert sorted(np.concatenate(batches)[:, 0].tolist()) == list(range(0, 20, 2))


def test_seed_reproducible_and_shuffle_false_keeps_order():
    X, Y = course_data(50)
    a = [xb[0].tolist() for xb, _ in minibatches(X, Y, 8, axis=1, seed=7)]
    b = [xb[0].tolist() for xb, _ in minibatches(X, Y, 8, axis=1, seed=7)]
    c = [xb[0].tolist() for xb, _ in minibatches(X, Y, 8, axis=1, seed=8)]
    assert a == b and a != c
    rng = np.random.default_rng(0)
    e1 = [x[0].tolist() for x, _ in minibatches(X, Y, 50, axis=1, seed=rng)]
    e2 = [x[0].tolist() for x, _ in minibatches(X, Y, 50, axis=1, seed=rng)]
    assert e1 != e2                                         # a shared Generator moves on
    ordered = np.concatenate([xb[0] for xb, _ in minibatches(X, Y, 8, axis=-1, shuffle=False)])
    np.testing.assert_array_equal(ordered, np.arange(50))


def test_batches_are_copies():
    X = np.zeros((4, 6))
    for xb in minibatches(X, batch_size=6, axis=1):
        xb += 1
    assert not X.any()


def test_memory_is_one_batch_not_the_data_set():
    X = np.random.default_rng(0).standard_normal((100, 20_000))   # 16 MB, examples in columns
    Y = np.ones((1, 20_000))
    batch_bytes = 100 * 256 * 8
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        n = 0
        for xb, yb in minibatches(X, Y, 256, axis=1, seed=0):
            n += xb.shape[1]
            del xb, yb
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert n == 20_000
    # one batch of X and Y plus the permutation (8 bytes per example), far below X.nbytes
    assert peak < 2 * batch_bytes + 20_000 * 8 * 2 + 64_000
    assert peak < X.nbytes / 20


@pytest.mark.parametrize("call,exc,msg", [
    (lambda X, Y: minibatches(X, Y[:, :9], axis=1), ValueError, r"same number of examples along axis 1, got 10 .* and 9"),
    (lambda X, Y: minibatches(X, Y, 0, axis=1), ValueError, "batch_size must be >= 1, got 0"),
    (lambda X, Y: minibatches(X, Y, 2.0, axis=1), TypeError, "batch_size must be an integer"),
    (lambda X, Y: minibatches(X, Y, axis=2), ValueError, "axis=2 is out of range for X"),
    (lambda X, Y: minibatches(X, Y, axis=1.0), TypeError, "axis must be an integer"),
    (lambda X, Y: minibatches(X.tolist(), Y), TypeError, "X must be a numpy.ndarray"),
    (lambda X, Y: minibatches(X, Y, axis=1, shuffle=1), TypeError, "shuffle must be a bool"),
])
def test_errors_raise_at_the_call_not_at_first_batch(call, exc, msg):
    X, Y = np.zeros((3, 10)), np.zeros((1, 10))
    with pytest.raises(exc, match=msg):
        call(X, Y)


def test_public():
    assert fastoptim.minibatches is minibatches
