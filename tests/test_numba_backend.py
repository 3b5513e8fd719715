"""The Numba backend on its own: in place, lazy import, disk cache, threads, missing numba."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _backends, _cython_parallel, _threads, kernels

from fastoptim._registry import KERNELS
from kernel_cases import CASES, FULL_CASES, case_id, make_arrays, make_grad, step
from testing_settings import DTYPES, TOLERANCE

SRC = str(Path(fo.__file__).resolve().parent.parent)

# Parity of every numba kernel with the reference is in test_parity.py, whose backend list
# (testing_settings.COMPILED_BACKENDS) includes "numba"; this file tests what is numba's own.


def run_steps(case, dtype, backend, steps, shape=(100003,), seed=0):
    """``steps`` steps of ``case`` from zero state; returns [param, *state, *keyword state]."""
    kernel, opts = case
    rng = np.random.default_rng(seed)
    param, state, kw_state = make_arrays(kernel, opts, shape, dtype, "C", rng)
    for t in range(1, steps + 1):
        step(kernel, opts, param, make_grad(shape, dtype, "C", rng), state, kw_state, t,
             backend)
    return [param, *state, *kw_state.values()]


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


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_results_are_bitwise_identical_for_1_and_2_threads(threads, case, dtype):
    results = []
    for n in (1, 2):
        fo.set_num_threads(n)
        results.append(run_steps(case, dtype, "numba", 5))
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
@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
def test_python_threads_may_step_different_arrays_concurrently(threads, case, n_threads):
    import threading
    fo.set_num_threads(n_threads)  # 1: every call also sets and restores numba's count
    matches = {}
    tol = TOLERANCE[np.dtype(np.float32)]

    def train(seed):
        ours = run_steps(case, np.float32, "numba", 40, (50001,), seed)
        want = run_steps(case, np.float32, "numpy", 40, (50001,), seed)
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
    monkeypatch.setenv(_threads.ENV_VAR, str(_threads.max_threads() + 1))
    fo.set_num_threads(None)
    with pytest.raises(ValueError, match="FASTOPTIM_NUM_THREADS must be at most"):
        fo.get_num_threads()


def test_thread_counts_past_the_bound_are_refused_before_any_kernel_runs(threads):
    """Tens of thousands of OpenMP threads abort or crash the process: set_num_threads
    refuses more than max_threads() (8 per CPU, at least 64), naming the bound, and keeps
    the count it had; the bound itself is accepted."""
    bound = _threads.max_threads()
    assert bound >= 64 and bound >= 8 * (os.cpu_count() or 1)
    fo.set_num_threads(3)
    for bad in (bound + 1, 100_000, 3 * 10 ** 9):
        with pytest.raises(ValueError, match=f"set_num_threads: n must be at most {bound}"):
            fo.set_num_threads(bad)
        assert fo.get_num_threads() == 3
    fo.set_num_threads(bound)
    assert fo.get_num_threads() == bound


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
    # per kernel: 2 dtypes x 2 grad kinds (writeable, read-only) x each set of optional states
    variants = sum(2 * 2 * 2 ** len(spec.optional_states) for spec in KERNELS.values())
    assert fo.warmup() >= variants


def test_show_config_lists_numba_threads_and_crossovers(capsys):
    fo.show_config()
    out = capsys.readouterr().out
    assert "numba" in out and f"threads   {fo.get_num_threads()}" in out
    assert f"{_backends.PARALLEL_MIN_TRAFFIC} bytes" in out
    assert ("openmp    yes" in out) == kernels.openmp_enabled()
    assert (f"prefetch  into {kernels.prefetch_target()}, {kernels.PREFETCH_AHEAD:,} "
            "elements") in out
    from fastoptim import _lowmem
    assert (f"int8      the {_lowmem.nearest_code_search()} nearest-code search "
            f"(compressed-state loops at {_lowmem.simd_target()})") in out


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_openmp_enabled_says_whether_an_openmp_runtime_is_loaded():
    """kernels.openmp_enabled() is the build's _OPENMP: an OpenMP build links the runtime
    (libgomp, or clang's libomp), which is then mapped into a process that imports
    fastoptim and nothing that could bring a runtime of its own (Numba, torch)."""
    seen = run_python("""
        import json, sys
        import fastoptim
        from fastoptim import kernels
        maps = open("/proc/self/maps").read()
        loaded = any(name in maps for name in ("libgomp", "libomp", "libiomp"))
        print(json.dumps([kernels.openmp_enabled(), loaded,
                          "numba" in sys.modules or "torch" in sys.modules]))
        """)
    assert seen == [seen[1], seen[1], False]


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


def test_import_fastoptim_does_not_import_ml_dtypes():
    # ml_dtypes takes about half a second to import: only bfloat16 state or parameters need it
    loaded = run_python("""
        import json, sys
        import numpy as np, fastoptim
        before = "ml_dtypes" in sys.modules
        p = np.zeros(10, np.float32)
        opt = fastoptim.Adam([p], lr=0.1)
        opt.step([np.ones_like(p)])
        print(json.dumps([before, "ml_dtypes" in sys.modules]))
    """)
    assert loaded == [False, False]


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
