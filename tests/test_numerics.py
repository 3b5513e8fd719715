"""Non-finite numbers through every kernel, backend and SIMD level.

* AMSGrad's running maximum propagates NaN like ``np.maximum`` / ``torch.maximum`` (it used
  to keep the old finite maximum, turning a NaN second moment into a jump of ``lr/eps``);
* with ``weight_decay == 0`` the term ``weight_decay * param`` is never computed, so an
  ``inf`` parameter puts no NaN in the state, as in the reference and torch (``0 * inf`` is
  NaN); AdamW's decoupled decay with ``weight_decay == 0`` leaves ``inf`` as it is.

Bad elements sit both in the vector body and in the scalar tail of the loops.
"""
import numpy as np
import pytest
from kernel_cases import CASES, case_id, make_arrays, step

import fastoptim as fo
from fastoptim import kernels
from fastoptim._registry import KERNELS

SIZES = [37, 67, 1003]
BACKENDS = ["numba", "numpy", "auto"] + [f"cython:{t}" for t in kernels.simd_targets()]


@pytest.fixture
def run_backend():
    """Run ``fn(backend)`` with the SIMD level of a "cython:<level>" backend selected."""
    def run(backend, fn):
        if backend.startswith("cython:"):
            previous = kernels._select_simd_target(backend.split(":")[1])
            try:
                return fn("cython")
            finally:
                kernels._select_simd_target(previous)
        return fn(backend)
    return run


def _bad_positions(n):
    return [1, n // 2, n - 1]          # body, middle, last element of the tail


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_amsgrad_propagates_nan_like_the_reference(backend, dtype, n, bad, run_backend):
    rng = np.random.default_rng(n)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    grads[1][_bad_positions(n)] = bad

    def run(b):
        p = np.linspace(-1, 1, n, dtype=dtype)
        m, v, vmax = (np.zeros(n, dtype) for _ in range(3))
        for t, g in enumerate(grads, 1):
            fo.adam_step(p, g, m, v, step=t, lr=0.1, amsgrad=True, max_exp_avg_sq=vmax,
                         backend=b)
        return p, vmax

    p, vmax = run_backend(backend, run)
    p_ref, vmax_ref = run("numpy")
    np.testing.assert_array_equal(np.isnan(vmax), np.isnan(vmax_ref))
    np.testing.assert_array_equal(np.isnan(p), np.isnan(p_ref))
    if bad != bad:   # a NaN gradient: NaN second moment, NaN max, NaN parameter there
        assert np.isnan(vmax[_bad_positions(n)]).all()
        assert np.isnan(p[_bad_positions(n)]).all()


def _zero_weight_decay_cases():
    """Every example of a kernel with weight decay, with weight_decay=0 (AdamW's decoupled
    decay included), without duplicates."""
    out = []
    for kernel, opts in CASES:
        if any(h.name == "weight_decay" for h in KERNELS[kernel].hyperparameters):
            case = (kernel, dict(opts, weight_decay=0.0))
            if case not in out:
                out.append(case)
    return out


WD_ZERO_CASES = _zero_weight_decay_cases()


@pytest.mark.parametrize("n", [37, 1003])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", WD_ZERO_CASES, ids=case_id)
def test_inf_parameter_with_zero_weight_decay_keeps_the_state_finite(case, backend, n,
                                                                     run_backend):
    kernel, opts = case
    rng = np.random.default_rng(0)

    def run(b):
        param, states, kw = make_arrays(kernel, opts, (n,), np.float32, "C", rng)
        param[_bad_positions(n)] = np.inf
        param[0] = -np.inf
        grad = np.full(n, 0.5, np.float32)
        for t in (1, 2):
            step(kernel, opts, param, grad, states, kw, t, b)
        return param, states + list(kw.values())

    param, states = run_backend(backend, run)
    ref_param, ref_states = run("numpy")
    for s, r in zip(states, ref_states):
        # the reference, as torch, puts no NaN in the state; a state that averages the
        # parameters holds their infinities
        assert not np.isnan(r).any()
        assert not np.isnan(s).any()
        np.testing.assert_array_equal(np.isinf(s), np.isinf(r))
    np.testing.assert_array_equal(np.isinf(param), np.isinf(ref_param))


@pytest.mark.parametrize("num_threads", [1, 2])
def test_multi_tensor_path_and_classes(num_threads):
    """The optimizer classes step through kernels.<kernel>_multi: same rules there."""
    fo.set_num_threads(num_threads)
    try:
        p = np.ones(1003, np.float32)
        p[[5, 1001]] = np.inf
        opt = fo.SGD([p], lr=0.1, momentum=0.9)
        opt.step([np.full(1003, 0.5, np.float32)])
        assert np.isfinite(opt._state["momentum_buffer"][0]).all()
        q = np.ones(1003, np.float32)
        g = np.ones(1003, np.float32)
        g[[7, 1002]] = np.nan
        adam = fo.Adam([q], lr=0.1, amsgrad=True)
        adam.step([g])
        vmax = adam._state["max_exp_avg_sq"][0]
        assert np.isnan(vmax[[7, 1002]]).all() and np.isfinite(np.delete(vmax, [7, 1002])).all()
    finally:
        fo.set_num_threads(None)
