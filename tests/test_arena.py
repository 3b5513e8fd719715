"""fastoptim.arena.zeros_like_all: views of one buffer that behave like separate zeros."""
import numpy as np
import pytest

from fastoptim import _coefficients as coef
from fastoptim import kernels
from fastoptim._checks import check_arrays
from fastoptim.arena import zeros_like_all


def templates():
    return [np.ones((3, 5), np.float32), np.ones(0, np.float64), np.ones(1, np.float32),
            np.asfortranarray(np.ones((4, 7), np.float64)), np.ones(1001, np.float32),
            np.ones((2, 3, 4), np.float32, order="F")]


def test_views_mimic_the_templates_and_share_one_zeroed_buffer():
    ts = templates()
    views = zeros_like_all(ts)
    assert len(views) == len(ts)
    base = views[0].base
    for t, v in zip(ts, views):
        assert v.shape == t.shape and v.dtype == t.dtype
        assert v.flags.writeable and v.flags.aligned
        assert v.flags.f_contiguous if t.flags.f_contiguous else v.flags.c_contiguous
        assert v.base is base
        assert v.ctypes.data % 64 == 0
        assert not v.any()


def test_views_do_not_overlap():
    views = [v for v in zeros_like_all(templates()) if v.size]
    for i, v in enumerate(views):
        v[...] = i + 1
    for i, v in enumerate(views):
        assert np.all(v == i + 1)
    # the validation layer agrees (it rejects arrays that share memory)
    a, b = zeros_like_all([np.ones(10, np.float32)] * 2)
    check_arrays("f", ("a", "b"), (a, b))


def test_a_step_on_arena_views_equals_a_step_on_separate_arrays(rng):
    params = [rng.standard_normal(n).astype(np.float32) for n in (5, 64, 1000)]
    grads = [rng.standard_normal(p.size).astype(np.float32) for p in params]
    sep_state = [[np.zeros_like(p) for p in params] for _ in range(2)]
    arena_state = [zeros_like_all(params) for _ in range(2)]
    arena_params = zeros_like_all(params)
    for v, p in zip(arena_params, params):
        v[...] = p
    c = coef.adam(1, 1e-2, 0.9, 0.999, 1e-8, 0.0, False, False)
    kernels.adam_multi(params, grads, *sep_state, None, c, num_threads=1)
    kernels.adam_multi(arena_params, grads, *arena_state, None, c, num_threads=1)
    for a, b in zip(arena_params + sum(arena_state, []), params + sum(sep_state, [])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("align", [0, 3, 4])
def test_bad_alignment(align):
    with pytest.raises(ValueError, match="align"):
        zeros_like_all([np.ones(3, np.float64)], align=align)
