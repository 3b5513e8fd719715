"""The Numba backend on its own: parity, lazy import, disk cache, threads, missing numba."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _backends, _cython_parallel, _threads
from fastoptim import reference as ref

from testing_settings import DTYPES, TOLERANCE

SRC = str(Path(fo.__file__).resolve().parent.parent)

# kernel -> [(options, positional state, keyword state)]: every option that changes a formula.
OPTIONS = {
    "sgd": [(dict(lr=0.05, weight_decay=0.1, maximize=m), (), ()) for m in (False, True)],
    "momentum": [(dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05), ("v",), ()),
                 (dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True), ("v",), ())],
    "rmsprop": [(dict(lr=0.01, alpha=0.9, weight_decay=0.1, **kw), ("s",), names)
                for kw, names in [({}, ()), (dict(momentum=0.9), ("momentum_buffer",)),
                                  (dict(centered=True), ("grad_avg",)),
                                  (dict(momentum=0.9, centered=True, maximize=True),
                                   ("momentum_buffer", "grad_avg"))]],
    "adam": [(dict(lr=0.01, weight_decay=0.1, maximize=True), ("m", "v"), ()),
             (dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), ("m", "v"), ()),
             (dict(lr=0.01, amsgrad=True, weight_decay=0.1), ("m", "v"), ("max_exp_avg_sq",))],
    "adagrad": [(dict(lr=0.05, lr_decay=0.01, weight_decay=0.1, maximize=True), ("G",), ())],
    "ewa": [(dict(beta=0.9), (), ())],
}
CASES = [(k, *o) for k, opts in OPTIONS.items() for o in opts]
SHAPES = [((0,), "C"), ((1,), "C"), ((17,), "C"), ((1000,), "C"), ((100003,), "C"),
          ((37, 29), "F")]


def run_steps(kernel, opts, pos, kw, shape, order, dtype, backend, steps, seed=0):
    """``steps`` steps of ``kernel`` from zero state; returns [param, *pos state, *kw state]."""
    rng = np.random.default_rng(seed)
    param = np.asarray(rng.standard_normal(shape), dtype, order=order)
    state = [np.zeros(shape, dtype, order=order) for _ in pos]
    kw_state = {name: np.zeros(shape, dtype, order=order) for name in kw}
    fn = fo.ewa_update if kernel == "ewa" else getattr(fo, f"{kernel}_step")
    for t in range(1, steps + 1):
        grad = np.asarray(rng.standard_normal(shape) + 0.1, dtype, order=order)
        step = dict(step=t) if kernel in ("adam", "adagrad") else {}
        fn(param, grad, *state, backend=backend, **opts, **kw_state, **step)
    return [param, *state, *kw_state.values()]


@pytest.mark.parametrize("shape,order", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel,opts,pos,kw", CASES,
                         ids=[f"{k}-{i}" for k, o in OPTIONS.items() for i in range(len(o))])
def test_parity_with_reference_over_50_steps(kernel, opts, pos, kw, dtype, shape, order):
    ours = run_steps(kernel, opts, pos, kw, shape, order, dtype, "numba", 50)
    expected = run_steps(kernel, opts, pos, kw, shape, order, dtype, "numpy", 50)
    for got, want in zip(ours, expected):
        assert got.dtype == want.dtype and got.flags.f_contiguous == want.flags.f_contiguous
        np.testing.assert_allclose(got, want, **TOLERANCE[np.dtype(dtype)])


def test_updates_in_place_and_matches_cython_bitwise_on_float64_sgd():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(1001)
    g = rng.standard_normal(1001)
    g.flags.writeable = False  # a read-only grad is accepted
    q = p.copy()
    address = p.__array_interface__["data"][0]
    fo.sgd_step(p, g, lr=0.1, weight_decay=0.01, backend="numba")
    fo.sgd_step(q, g, lr=0.1, weight_decay=0.01, backend="cython")
    assert p.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(p, q)


# --------------------------------------------------------------------------------- threads

@pytest.fixture
def threads():
    """Restore fastoptim's thread setting after the test."""
    saved = _threads._num_threads
    yield
    _threads._num_threads = saved


@pytest.mark.parametrize("kernel,opts,pos,kw", [CASES[3], CASES[7], CASES[9]],
                         ids=["momentum-nesterov", "rmsprop-centered-momentum", "adam-amsgrad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_results_are_bitwise_identical_for_1_and_2_threads(threads, kernel, opts, pos, kw,
                                                           dtype):
    results = []
    for n in (1, 2):
        fo.set_num_threads(n)
        results.append(run_steps(kernel, opts, pos, kw, (100003,), "C", dtype, "numba", 5))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_kernel_runs_on_fastoptim_threads_and_restores_numbas_count(threads):
    import numba
    nk = _backends.numba_backend()

    @numba.njit
    def probe():
        return numba.get_num_threads()

    numba.set_num_threads(1)
    try:
        fo.set_num_threads(2)
        assert nk._run(probe) == min(2, numba.config.NUMBA_NUM_THREADS)
        assert numba.get_num_threads() == 1  # the user's numba setting is untouched
        fo.set_num_threads(1)
        assert nk._run(probe) == 1
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_python_threads_may_step_different_arrays_concurrently(threads, n_threads):
    import threading
    fo.set_num_threads(n_threads)  # 1: every call also sets and restores numba's count
    matches = {}
    tol = TOLERANCE[np.dtype(np.float32)]

    def train(seed):
        ours = run_steps("adam", *CASES[9][1:], (50001,), "C", np.float32, "numba", 40, seed)
        want = run_steps("adam", *CASES[9][1:], (50001,), "C", np.float32, "numpy", 40, seed)
        matches[seed] = all(np.allclose(a, b, **tol) for a, b in zip(ours, want))

    workers = [threading.Thread(target=train, args=(seed,)) for seed in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert matches == {0: True, 1: True, 2: True, 3: True}


def test_set_num_threads_validates_and_none_restores_default(threads, monkeypatch):
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    fo.set_num_threads(3)
    assert fo.get_num_threads() == 3
    for bad, exc in [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                     ("2", TypeError)]:
        with pytest.raises(exc, match="set_num_threads: n"):
            fo.set_num_threads(bad)
        assert fo.get_num_threads() == 3  # nothing changed
    fo.set_num_threads(None)
    assert fo.get_num_threads() == len(os.sched_getaffinity(0))


def test_environment_variable_sets_the_default(threads, monkeypatch):
    monkeypatch.setenv(_threads.ENV_VAR, "1")
    fo.set_num_threads(None)
    assert fo.get_num_threads() == 1
    monkeypatch.setenv(_threads.ENV_VAR, "zero")
    fo.set_num_threads(None)
    with pytest.raises(ValueError, match="FASTOPTIM_NUM_THREADS must be a positive integer"):
        fo.get_num_threads()


# ------------------------------------------------------------------------------------ auto

@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("n_arrays", [2, 4, 5])
def test_auto_picks_serial_below_the_crossover_and_parallel_above(threads, monkeypatch,
                                                                   itemsize, n_arrays):
    monkeypatch.setattr(_backends, "DEFAULT_BACKEND", "auto")
    n_x = _backends.crossover(itemsize, n_arrays)
    assert n_x * itemsize * (2 * n_arrays - 1) >= _backends.PARALLEL_MIN_TRAFFIC
    fo.set_num_threads(2)
    assert _backends.select("f", "auto", n_x - 1, itemsize, n_arrays) is _backends._cython
    assert _backends.select("f", "auto", n_x, itemsize, n_arrays) is _cython_parallel
    fo.set_num_threads(1)  # threads cannot pay with one thread
    assert _backends.select("f", "auto", 10 * n_x, itemsize, n_arrays) is _backends._cython


def test_environment_backend_overrides_auto(monkeypatch):
    monkeypatch.setattr(_backends, "DEFAULT_BACKEND", "numba")
    assert _backends.select("f", "auto", 1, 4) is _backends.numba_backend()
    monkeypatch.setattr(_backends, "DEFAULT_BACKEND", "cython")
    assert _backends.select("f", "auto", 10**9, 4) is _backends._cython


def test_warmup_compiles_every_variant():
    assert fo.warmup() >= 40  # 2 dtypes x 2 grad kinds x 10 option variants


def test_show_config_lists_numba_threads_and_crossovers(capsys):
    fo.show_config()
    out = capsys.readouterr().out
    assert "numba" in out and f"threads   {fo.get_num_threads()}" in out
    assert f"{_backends.PARALLEL_MIN_TRAFFIC} bytes" in out


# ------------------------------------------------------------------- fresh subprocesses

def run_python(code, **env):
    environ = dict(os.environ, PYTHONPATH=SRC, **env)
    environ.pop("FASTOPTIM_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_fastoptim_does_not_import_numba():
    loaded = run_python("""
        import json, sys
        import numpy as np, fastoptim
        before = "numba" in sys.modules
        p = np.zeros(10, np.float32)
        fastoptim.adam_step(p, np.ones_like(p), np.zeros_like(p), np.zeros_like(p), step=1)
        fastoptim.sgd_step(p, np.ones_like(p), lr=0.1, backend="cython")
        print(json.dumps([before, "numba" in sys.modules]))
    """)
    assert loaded == [False, False]  # nor does a small "auto" or a "cython" call


def test_second_process_loads_compiled_code_from_disk_cache(tmp_path):
    code = """
        import json, numpy as np, fastoptim
        p = np.zeros(100, np.float32)
        fastoptim.adam_step(p, np.ones_like(p), np.zeros_like(p), np.zeros_like(p), step=1,
                            backend="numba")
        from fastoptim.numba_kernels import adam_kernel
        print(json.dumps([len(adam_kernel.stats.cache_misses),
                          len(adam_kernel.stats.cache_hits)]))
    """
    first = run_python(code, NUMBA_CACHE_DIR=str(tmp_path))
    second = run_python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert first == [1, 0]   # compiled, then saved
    assert second == [0, 1]  # loaded, not recompiled


def test_without_numba_backend_numba_raises_and_auto_uses_cython():
    result = run_python("""
        import json, sys
        sys.modules["numba"] = None  # numba cannot be imported
        import numpy as np, fastoptim
        from fastoptim import _backends
        fastoptim.set_num_threads(2)
        n = 2 * _backends.crossover(8)
        p, q = np.linspace(-1, 1, n), np.linspace(-1, 1, n)
        g = np.ones(n)
        try:
            fastoptim.sgd_step(p, g, lr=0.5, backend="numba")
            message = None
        except ImportError as exc:
            message = str(exc)
        untouched = bool((p == q).all())
        fastoptim.sgd_step(p, g, lr=0.5)                    # auto, above the crossover
        fastoptim.sgd_step(q, g, lr=0.5, backend="cython")
        try:
            fastoptim.warmup()
            warm = "no error"
        except ImportError:
            warm = "ImportError"
        print(json.dumps([message, untouched, bool((p == q).all()), warm]))
    """)
    message, untouched, same, warm = result
    assert message is not None and "backend='numba' needs the numba package" in message
    assert untouched and same and warm == "ImportError"
